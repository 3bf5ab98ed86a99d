/* Recon's poll of SCM and of every OM's version (DESIGN.md §9, §6.7).
 *
 * Every ozone.recon.scm.poll.interval: SCM's GetVersion (its software and
 * HDDS apparent version, which Recon adopts as its view of HDDS
 * finalization; Recon's own storage is finalized by the upgrade code, not
 * from here), ListDatanodes, ListContainers (paged), ListPipelines; then
 * SCM's QueryUpgradeStatus (finalization status and blockers); then
 * GetVersion and QueryUpgradeStatus of each OM node for the upgrade view
 * (an older SCM or OM answering UNIMPLEMENTED: status UNKNOWN); then
 * datanode health
 * is re-judged so that silent datanodes turn STALE and DEAD in the
 * journal. Each OM node has its own client with one attempt, so a down OM
 * is reported as UNREACHABLE instead of hiding behind fail-over.
 */
#include "recon_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "om.pb-c.h"
#include "upgrade_journal.h"

#define MAX_OMS 8
#define CONTAINER_PAGE 1000
#define MAX_CONTAINERS 1000000

struct scm_sync
{
    struct rpc_client *scm;
    char scm_addr[RECON_ADDR_MAX];
    char scm_node[RECON_ID_MAX]; /* as SCM's GetVersion last named it */
    struct rpc_client *oms[MAX_OMS];
    char om_addrs[MAX_OMS][RECON_ADDR_MAX];
    size_t n_oms;
    char last_error[512];
};

static struct scm_sync scm_state;

/* ---- shared helpers ---- */

bool recon__wait(struct recon *r, long long ms, bool *flag)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->lock);
    while (!r->stop && !*flag && ms > 0) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    bool go_on = !r->stop;
    pthread_mutex_unlock(&r->lock);
    return go_on;
}

/* ---- one poll ---- */

static int call(struct rpc_client *c,
                const ProtobufCServiceDescriptor *svc,
                const char *method,
                ProtobufCMessage *req,
                ProtobufCMessage **resp,
                char *errmsg)
{
    struct rpc_error err;
    int rc = rpc_client_call(c, svc, method, req, resp, &err);

    if (rc != 0) {
        oz_errmsg_printf(errmsg, "%s at '%s': %s", method, err.address,
                         err.message[0] ? err.message : oz_strerror(rc));
    }
    return rc;
}

static const Ozone__CatalogVersion *catalog(const Ozone__GetVersionResponse *v,
                                            const char *name)
{
    for (size_t i = 0; i < v->n_catalogs; i++) {
        if (v->catalogs[i] != NULL && v->catalogs[i]->name != NULL &&
            strcmp(v->catalogs[i]->name, name) == 0) {
            return v->catalogs[i];
        }
    }
    return NULL;
}

static int poll_scm_version(struct recon *r, char *errmsg)
{
    Ozone__GetVersionRequest req = OZONE__GET_VERSION_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int64_t now = recon_now_ms();
    int rc = call(scm_state.scm, &ozone__version_service__descriptor,
                  "GetVersion", &req.base, &resp, errmsg);

    if (rc != 0) {
        recon_observe_unreachable(r, "SCM", "scm", scm_state.scm_addr, now);
        return rc;
    }
    const Ozone__GetVersionResponse *v =
        (const Ozone__GetVersionResponse *)resp;
    const Ozone__CatalogVersion *hdds = catalog(v, "HDDS");
    const char *node = v->hdr && v->hdr->node_id ? v->hdr->node_id : "scm";
    oz_strlcpy(scm_state.scm_node, node, sizeof(scm_state.scm_node));
    uint32_t sw = v->hdr ? v->hdr->software_version : 0;
    uint32_t ap = v->hdr ? v->hdr->apparent_version : 0;
    if (hdds != NULL && hdds->apparent_version != 0) {
        sw = hdds->software_version;
        ap = hdds->apparent_version;
    }
    pthread_mutex_lock(&r->lock);
    if (r->hdds_apparent_from_scm != 0 && r->hdds_apparent_from_scm != ap) {
        recon__journal(r, now, "RECON", r->d->node_id,
                       "adopted SCM's HDDS apparent version %u (was %u)", ap,
                       r->hdds_apparent_from_scm);
    }
    r->hdds_apparent_from_scm = ap;
    r->hdds_software_of_scm = sw;
    if (v->hdr != NULL && v->hdr->cluster_id != NULL) {
        oz_strlcpy(r->scm_cluster_id, v->hdr->cluster_id,
                   sizeof(r->scm_cluster_id));
    }
    pthread_mutex_unlock(&r->lock);
    recon_observe(r, "SCM", node,
                  v->rpc_address && v->rpc_address[0] ? v->rpc_address
                                                      : scm_state.scm_addr,
                  v->release, sw, ap, "HEALTHY", now);
    rpc_message_free(resp);
    return 0;
}

/* SCM's finalization status (ScmUpgradeService.QueryUpgradeStatus). An
 * older SCM without the service answers UNIMPLEMENTED: status UNKNOWN.
 * Other failures keep what was last known; the next poll asks again. */
static void poll_scm_upgrade(struct recon *r)
{
    Ozone__Scm__QueryUpgradeStatusRequest req =
        OZONE__SCM__QUERY_UPGRADE_STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    int64_t now = recon_now_ms();
    const char *node = scm_state.scm_node;

    if (node[0] == '\0') {
        return;
    }
    memset(&err, 0, sizeof(err));
    if (rpc_client_call(scm_state.scm,
                        &ozone__scm__scm_upgrade_service__descriptor,
                        "QueryUpgradeStatus", &req.base, &resp, &err) != 0) {
        if (err.status == RPC_STATUS_UNIMPLEMENTED) {
            pthread_mutex_lock(&r->lock);
            oz_strlcpy(r->scm_finalization, "UNKNOWN",
                       sizeof(r->scm_finalization));
            r->scm_dns_finalized = r->scm_dns_total = 0;
            pthread_mutex_unlock(&r->lock);
            recon_observe_finalization(r, "SCM", node, NULL, 0, 0, NULL, 0,
                                       NULL, now);
        } else {
            log_debug("SCM QueryUpgradeStatus: %s", err.message);
        }
        return;
    }
    const Ozone__Scm__UpgradeStatus *st =
        ((const Ozone__Scm__QueryUpgradeStatusResponse *)resp)->status;
    const ProtobufCEnumValue *v =
        st != NULL
            ? protobuf_c_enum_descriptor_get_value(
                  &ozone__scm__finalization_status__descriptor, (int)st->status)
            : NULL;
    const char *name = v != NULL && st->status != 0 ? v->name : "UNKNOWN";
    pthread_mutex_lock(&r->lock);
    oz_strlcpy(r->scm_finalization, name, sizeof(r->scm_finalization));
    r->scm_dns_finalized = st != NULL ? st->datanodes_finalized : 0;
    r->scm_dns_total = st != NULL ? st->datanodes_total : 0;
    pthread_mutex_unlock(&r->lock);
    /* finalization_requested_by is "" from an SCM that predates it. */
    recon_observe_finalization(
        r, "SCM", node, name, st != NULL ? st->software_version : 0,
        st != NULL ? st->apparent_version : 0, st != NULL ? st->blockers : NULL,
        st != NULL ? st->n_blockers : 0,
        st != NULL ? st->finalization_requested_by : NULL, now);
    rpc_message_free(resp);
}

/* One OM's finalization status (OmUpgradeService.QueryUpgradeStatus,
 * without peers); UNIMPLEMENTED (an older OM): UNKNOWN. */
static void poll_om_upgrade(struct recon *r, size_t i, const char *node)
{
    Ozone__Om__OmQueryUpgradeStatusRequest req =
        OZONE__OM__OM_QUERY_UPGRADE_STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;

    req.this_node = true; /* each OM's own view, followers too */
    memset(&err, 0, sizeof(err));
    if (rpc_client_call(scm_state.oms[i],
                        &ozone__om__om_upgrade_service__descriptor,
                        "QueryUpgradeStatus", &req.base, &resp, &err) != 0) {
        if (err.status == RPC_STATUS_UNIMPLEMENTED) {
            recon_observe_finalization(r, "OM", node, NULL, 0, 0, NULL, 0, NULL,
                                       recon_now_ms());
        }
        return;
    }
    const Ozone__Om__OmUpgradeStatus *st =
        ((const Ozone__Om__OmQueryUpgradeStatusResponse *)resp)->status;
    if (st != NULL) {
        /* finalization_requested_by is "" from an OM that predates it. */
        recon_observe_finalization(
            r, "OM", node, st->status, st->software_version,
            st->apparent_version, st->blockers, st->n_blockers,
            st->finalization_requested_by, recon_now_ms());
    }
    rpc_message_free(resp);
}

static int poll_scm_tables(struct recon *r, char *errmsg)
{
    ProtobufCMessage *resp = NULL;
    int rc;

    Ozone__Scm__ListDatanodesRequest dreq =
        OZONE__SCM__LIST_DATANODES_REQUEST__INIT;
    rc = call(scm_state.scm, &ozone__scm__scm_admin_service__descriptor,
              "ListDatanodes", &dreq.base, &resp, errmsg);
    if (rc != 0) {
        return rc;
    }
    const Ozone__Scm__ListDatanodesResponse *dn =
        (const Ozone__Scm__ListDatanodesResponse *)resp;
    recon_set_scm_nodes(r, dn->datanodes, dn->n_datanodes, recon_now_ms());
    rpc_message_free(resp);

    Ozone__Scm__ListPipelinesRequest preq =
        OZONE__SCM__LIST_PIPELINES_REQUEST__INIT;
    rc = call(scm_state.scm, &ozone__scm__scm_admin_service__descriptor,
              "ListPipelines", &preq.base, &resp, errmsg);
    if (rc != 0) {
        return rc;
    }
    const Ozone__Scm__ListPipelinesResponse *pl =
        (const Ozone__Scm__ListPipelinesResponse *)resp;
    recon_set_scm_pipelines(r, pl->pipelines, pl->n_pipelines);
    rpc_message_free(resp);

    /* Containers, page by page, gathered before replacing the table. */
    ProtobufCMessage *pages[MAX_CONTAINERS / CONTAINER_PAGE];
    size_t n_pages = 0, total = 0;
    uint64_t start = 0;
    for (;;) {
        Ozone__Scm__ListContainersRequest creq =
            OZONE__SCM__LIST_CONTAINERS_REQUEST__INIT;
        creq.start_id = start;
        creq.count = CONTAINER_PAGE;
        rc = call(scm_state.scm, &ozone__scm__scm_admin_service__descriptor,
                  "ListContainers", &creq.base, &resp, errmsg);
        if (rc != 0) {
            break;
        }
        const Ozone__Scm__ListContainersResponse *cl =
            (const Ozone__Scm__ListContainersResponse *)resp;
        pages[n_pages++] = resp;
        total += cl->n_containers;
        if (cl->n_containers < CONTAINER_PAGE ||
            n_pages == sizeof(pages) / sizeof(pages[0])) {
            break;
        }
        start = cl->containers[cl->n_containers - 1]->id + 1;
    }
    if (rc == 0) {
        Ozone__Hdds__ContainerInfo **all = calloc(total + 1, sizeof(*all));
        size_t k = 0;
        if (all != NULL) {
            for (size_t p = 0; p < n_pages; p++) {
                const Ozone__Scm__ListContainersResponse *cl =
                    (const Ozone__Scm__ListContainersResponse *)pages[p];
                for (size_t i = 0; i < cl->n_containers; i++) {
                    all[k++] = cl->containers[i];
                }
            }
            recon_set_scm_containers(r, all, k);
            free(all);
        }
    }
    for (size_t p = 0; p < n_pages; p++) {
        rpc_message_free(pages[p]);
    }
    return rc;
}

static void poll_oms(struct recon *r)
{
    for (size_t i = 0; i < scm_state.n_oms; i++) {
        Ozone__GetVersionRequest req = OZONE__GET_VERSION_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        char errmsg[OZ_ERRMSG_SIZE];
        int64_t now = recon_now_ms();

        if (call(scm_state.oms[i], &ozone__version_service__descriptor,
                 "GetVersion", &req.base, &resp, errmsg) != 0) {
            /* The node id is unknown until it answers once: use the
             * address, or the id it had at this address. */
            char node[RECON_ID_MAX] = "";
            pthread_mutex_lock(&r->lock);
            for (size_t c = 0; c < r->n_components; c++) {
                if (strcmp(r->components[c].type, "OM") == 0 &&
                    strcmp(r->components[c].address, scm_state.om_addrs[i]) ==
                        0) {
                    oz_strlcpy(node, r->components[c].node_id, sizeof(node));
                }
            }
            pthread_mutex_unlock(&r->lock);
            recon_observe_unreachable(r, "OM",
                                      node[0] ? node : scm_state.om_addrs[i],
                                      scm_state.om_addrs[i], now);
            continue;
        }
        const Ozone__GetVersionResponse *v =
            (const Ozone__GetVersionResponse *)resp;
        if (v->hdr != NULL && v->hdr->node_id != NULL) {
            recon_observe(r, "OM", v->hdr->node_id, scm_state.om_addrs[i],
                          v->release, v->hdr->software_version,
                          v->hdr->apparent_version, "HEALTHY", now);
            char node[RECON_ID_MAX];
            oz_strlcpy(node, v->hdr->node_id, sizeof(node));
            rpc_message_free(resp);
            poll_om_upgrade(r, i, node);
            continue;
        }
        rpc_message_free(resp);
    }
}

/* The rolling-upgrade orchestrator's newest run from the OM leader's
 * journal (OmUpgradeService.UpgradeJournalRead, paged). Only the leader
 * answers: the OMs are asked in turn, the one that answered last first.
 * An OM that answers UNIMPLEMENTED keeps no journal (an older release:
 * "not available"); when no OM answers the last document stays. */
#define ROLLING_PAGE 1000u
#define ROLLING_MAX_PAGES 12

static size_t rolling_leader; /* index of the OM that answered last */

static int read_journal(struct rpc_client *om,
                        Ozone__Om__OmUpgradeJournalReadResponse **pages,
                        size_t *n_pages,
                        struct rpc_error *err)
{
    uint64_t after = 0;

    *n_pages = 0;
    while (*n_pages < ROLLING_MAX_PAGES) {
        Ozone__Om__OmUpgradeJournalReadRequest req =
            OZONE__OM__OM_UPGRADE_JOURNAL_READ_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        req.after_seq = after;
        req.limit = ROLLING_PAGE;
        req.last_run = true;
        if (rpc_client_call(om, &ozone__om__om_upgrade_service__descriptor,
                            "UpgradeJournalRead", &req.base, &resp, err) != 0) {
            return OZ_EUNAVAILABLE;
        }
        Ozone__Om__OmUpgradeJournalReadResponse *p =
            (Ozone__Om__OmUpgradeJournalReadResponse *)resp;
        pages[(*n_pages)++] = p;
        if (p->n_entries < ROLLING_PAGE) {
            break;
        }
        after = p->entries[p->n_entries - 1]->seq;
    }
    return 0;
}

static void poll_rolling(struct recon *r)
{
    Ozone__Om__OmUpgradeJournalReadResponse *pages[ROLLING_MAX_PAGES];
    Ozone__Om__OmUpgradeJournalReadResponse view;
    struct rpc_error err;
    size_t n_pages = 0, unimplemented = 0;
    int64_t now = recon_now_ms();
    char *json = NULL;

    memset(&err, 0, sizeof(err));
    for (size_t k = 0; k < scm_state.n_oms; k++) {
        size_t i = (rolling_leader + k) % scm_state.n_oms;
        if (read_journal(scm_state.oms[i], pages, &n_pages, &err) == 0) {
            rolling_leader = i;
            break;
        }
        for (size_t p = 0; p < n_pages; p++) {
            rpc_message_free(&pages[p]->base);
        }
        n_pages = 0;
        if (err.status == RPC_STATUS_UNIMPLEMENTED) {
            unimplemented++;
        }
    }
    if (n_pages > 0 && upgrade_journal_view(pages, n_pages, &view) == 0) {
        struct upgrade_journal_summary s;
        upgrade_journal_summarize(&view, &s);
        const Ozone__Om__OmUpgradeJournalEntry *st = s.step_entry;
        json = recon_json_rolling(&view, scm_state.om_addrs[rolling_leader],
                                  NULL, now);
        recon_observe_rolling(
            r, json, s.run_id, s.state, st != NULL ? st->step : 0,
            st != NULL ? st->steps : 0, st != NULL ? st->node : "", now);
        upgrade_journal_view_release(&view);
    } else if (n_pages == 0 && unimplemented > 0 &&
               unimplemented == scm_state.n_oms) {
        json = recon_json_rolling(NULL, NULL,
                                  "the OMs run a release that keeps no "
                                  "rolling-upgrade journal",
                                  now);
        recon_observe_rolling(r, json, "", "", 0, 0, "", now);
    } else if (n_pages == 0 && scm_state.n_oms > 0) {
        /* Keep what the leader said last; say why only if nothing yet. */
        pthread_mutex_lock(&r->lock);
        bool never = r->rolling_json == NULL;
        pthread_mutex_unlock(&r->lock);
        log_debug("no OM answered UpgradeJournalRead: %s", err.message);
        if (never) {
            char reason[600];
            snprintf(reason, sizeof(reason), "no OM answered: %s", err.message);
            json = recon_json_rolling(NULL, NULL, reason, now);
            recon_observe_rolling(r, json, "", "", 0, 0, "", now);
        }
    }
    for (size_t p = 0; p < n_pages; p++) {
        rpc_message_free(&pages[p]->base);
    }
}

static void poll_once(struct recon *r)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    int64_t now;

    recon_task_start(r, RECON_TASK_SCM_SYNC);
    int rc = poll_scm_version(r, errmsg);
    if (rc == 0) {
        rc = poll_scm_tables(r, errmsg);
    }
    if (rc == 0) {
        poll_scm_upgrade(r);
    }
    now = recon_now_ms();
    if (rc == 0) {
        pthread_mutex_lock(&r->lock);
        uint64_t n = r->n_containers;
        pthread_mutex_unlock(&r->lock);
        recon_task_ok(r, RECON_TASK_SCM_SYNC, n, now);
        if (scm_state.last_error[0] != '\0') {
            log_info("SCM at '%s' reachable again", scm_state.scm_addr);
            scm_state.last_error[0] = '\0';
        }
    } else {
        recon_task_failed(r, RECON_TASK_SCM_SYNC, errmsg, now);
        metrics_add(r->m_scm_failures, 1);
        if (strcmp(errmsg, scm_state.last_error) != 0) {
            log_warn("SCM poll failed: %s; retrying", errmsg);
            oz_strlcpy(scm_state.last_error, errmsg,
                       sizeof(scm_state.last_error));
        }
    }
    poll_oms(r);
    poll_rolling(r);
    /* Recon itself. Its address from the configuration: d->rpc_address
     * is written by the main thread once the servers run. */
    char self[RECON_ADDR_MAX];
    daemon_dial_address(
        conf_get_str(r->d->conf, "ozone.recon.address", "0.0.0.0:9891"), self,
        sizeof(self));
    recon_observe(r, "RECON", r->d->node_id, self, r->d->release->release,
                  (uint32_t)version_manager_software(&r->d->vm),
                  (uint32_t)version_manager_apparent(&r->d->vm), "HEALTHY",
                  now);
    recon_refresh_health(r, now);
}

static void *poll_main(void *arg)
{
    struct recon *r = arg;
    bool first = true;

    for (;;) {
        if (!recon__wait(r, first ? 0 : r->cfg.scm_interval_ms,
                         &r->scm_trigger)) {
            break;
        }
        first = false;
        pthread_mutex_lock(&r->lock);
        r->scm_trigger = false;
        pthread_mutex_unlock(&r->lock);
        poll_once(r);
    }
    return NULL;
}

int recon_scm_sync_start(struct recon *r, char *errmsg)
{
    struct rpc_client_config cfg;
    const char *addrs[1];
    int rc;

    memset(&scm_state, 0, sizeof(scm_state));
    daemon_scm_address(r->d, scm_state.scm_addr, sizeof(scm_state.scm_addr));
    addrs[0] = scm_state.scm_addr;
    daemon_client_config(r->d, addrs, 1, &cfg);
    cfg.max_attempts = 2;
    rc = rpc_client_new(&scm_state.scm, &cfg, errmsg);
    if (rc != 0) {
        return rc;
    }
    scm_state.n_oms =
        recon_om_addresses(r->d->conf, scm_state.om_addrs, MAX_OMS);
    for (size_t i = 0; i < scm_state.n_oms; i++) {
        addrs[0] = scm_state.om_addrs[i];
        daemon_client_config(r->d, addrs, 1, &cfg);
        cfg.max_attempts = 1;
        if (cfg.deadline_ms > 5000) {
            cfg.deadline_ms = 5000;
        }
        rc = rpc_client_new(&scm_state.oms[i], &cfg, errmsg);
        if (rc != 0) {
            return rc;
        }
    }
    if (pthread_create(&r->scm_thread, NULL, poll_main, r) != 0) {
        oz_errmsg_printf(errmsg, "cannot start the SCM poll thread");
        return OZ_ENOMEM;
    }
    r->scm_started = true;
    log_info("polling SCM at '%s' every %lld ms", scm_state.scm_addr,
             r->cfg.scm_interval_ms);
    return 0;
}

void recon_scm_sync_stop(struct recon *r)
{
    if (r->scm_started) {
        pthread_join(r->scm_thread, NULL);
        r->scm_started = false;
    }
    rpc_client_free(scm_state.scm);
    scm_state.scm = NULL;
    for (size_t i = 0; i < scm_state.n_oms; i++) {
        rpc_client_free(scm_state.oms[i]);
        scm_state.oms[i] = NULL;
    }
}
