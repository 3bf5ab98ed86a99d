/* OM finalization and upgrade-order enforcement (DESIGN.md §6.5-§6.7,
 * §6.6): ozone.om.OmUpgradeService, the poller thread, the write gate, and
 * keeping the version manager in step with the replicated
 * #LAYOUTVERSION. See om_upgrade.h for the flow.
 *
 * Fault points (OZONE_FAULT, common/fault.h), in the order they are met:
 *   om.finalize.before_scm     leader, before SCM FinalizeUpgrade
 *   om.finalize.after_scm      leader, SCM accepted, marker not committed
 *   om.finalize.after_marker   leader, marker committed, not answered
 *   om.finalize.before_apply   poller, HDDS finalized, entry not submitted
 *   om.finalize.after_apply    poller, entry applied, VERSION not moved
 * A crash at any of them converges: SCM's finalization is persisted and
 * idempotent, the marker is replicated (the poller resumes), the finalize
 * entry is idempotent, and VERSION follows #LAYOUTVERSION at start-up.
 */
#include "om_upgrade.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "om_orch.h"
#include "om_service.h"
#include "scm.pb-c.h"

#define MAX_PEERS 8
#define TICK_MS 250
#define PEER_DEADLINE_MS 3000
#define SCM_DEADLINE_MS 5000

struct peer
{
    char node_id[128];
    char address[256];
};

struct om_upgrade
{
    struct om_service *s; /* borrowed */
    struct daemon *d;     /* borrowed */
    struct rpc_client *scm;
    char scm_address[256];
    struct peer peers[MAX_PEERS];
    size_t n_peers;
    long long check_ms;
    int expected_hdds; /* HDDS software this OM's release was built with */

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cond;
    bool stop;
    bool wake;
    char violation[512];  /* "" when the order is fine */
    bool violation_scm;   /* ... and it is SCM that runs older HDDS bits */
    char scm_status[256]; /* what the poller last heard from SCM */
    bool version_error_logged;
};

/* ---- small helpers ---- */

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *feature_name(int v)
{
    const struct version_feature *f =
        version_catalog_find(version_builtin_catalog(VERSION_CATALOG_OM), v);

    return f != NULL ? f->name : "UNKNOWN";
}

static bool marker_present(struct om *om, int *target)
{
    void *val = NULL;
    size_t len = 0;

    if (kv_get(om->kv, om->cf[OM_META_TABLE], OM_FINALIZATION_MARKER_KEY,
               strlen(OM_FINALIZATION_MARKER_KEY), &val, &len) != 0) {
        return false;
    }
    if (target != NULL) {
        char text[16] = "";
        memcpy(text, val, len < sizeof(text) - 1 ? len : sizeof(text) - 1);
        *target = atoi(text);
    }
    free(val);
    return true;
}

/* Who asked for the current or last finalization, in call memory; "" when
 * none is recorded. The value is the OM's own (apply caps it), but is read
 * from disk: capped again. */
static char *requested_by(struct om *om, struct rpc_call *call)
{
    void *val = NULL;
    size_t len = 0;

    if (kv_get(om->kv, om->cf[OM_META_TABLE], OM_FINALIZATION_REQUESTED_BY_KEY,
               strlen(OM_FINALIZATION_REQUESTED_BY_KEY), &val, &len) != 0) {
        return rpc_call_strdup(call, "");
    }
    if (len > OM_REQUESTED_BY_MAX - 1) {
        len = OM_REQUESTED_BY_MAX - 1;
    }
    char *out = rpc_call_printf(call, "%.*s", (int)len, (const char *)val);
    free(val);
    return out;
}

static bool finalization_done_recorded(struct om *om)
{
    void *val = NULL;
    size_t len = 0;

    if (kv_get(om->kv, om->cf[OM_META_TABLE], OM_FINALIZATION_DONE_KEY,
               strlen(OM_FINALIZATION_DONE_KEY), &val, &len) != 0) {
        return false;
    }
    free(val);
    return true;
}

/* Only the leader finalizes (and not while prepared); res gets
 * NOT_LEADER with the leader's address on a follower (om_ha.h). */
static bool leads(struct om_upgrade *u, struct om_result *res)
{
    struct om_result ignored;

    return !u->s->ha_ready || om_ha_check(&u->s->ha, true, "FinalizeUpgrade",
                                          res != NULL ? res : &ignored);
}

/* ---- the version manager follows #LAYOUTVERSION (DESIGN.md §6.2) ---- */

static void reconcile(struct om_upgrade *u)
{
    struct version_manager *vm = &u->d->vm;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    int layout = 0;

    if (om_read_layout_version(&u->s->om, &layout) != 0 ||
        layout <= version_manager_apparent(vm)) {
        return;
    }
    if (layout > version_manager_software(vm)) {
        pthread_mutex_lock(&u->mu);
        bool logged = u->version_error_logged;
        u->version_error_logged = true;
        pthread_mutex_unlock(&u->mu);
        if (!logged) {
            log_error(
                "the OM ring finalized to version %d but this OM runs "
                "software version %d: restart it with the new release",
                layout, version_manager_software(vm));
        }
        return;
    }
    if (version_manager_finalize(vm, layout, errmsg) != 0) {
        log_error(
            "cannot move this OM's VERSION to the replicated layout "
            "version %d: %s",
            layout, errmsg);
    }
}

/* Start-up: seed #LAYOUTVERSION on a DB that has none (written by a
 * release without it), or bring VERSION up to it (a follower that
 * installed a snapshot, a crash between the finalize batch and VERSION). */
static int seed_or_reconcile(struct om_upgrade *u, char *errmsg)
{
    struct version_manager *vm = &u->d->vm;
    int apparent = version_manager_apparent(vm);
    int software = version_manager_software(vm);
    int layout = 0;
    int rc = om_read_layout_version(&u->s->om, &layout);

    if (rc == OZ_ENOTFOUND || (rc == 0 && layout < apparent)) {
        struct kv_batch *b = kv_batch_new();
        const struct version_catalog *cat =
            version_builtin_catalog(VERSION_CATALOG_OM);
        if (b == NULL) {
            oz_errmsg_printf(errmsg, "out of memory");
            return OZ_ENOMEM;
        }
        bool absent = rc == OZ_ENOTFOUND;
        rc = 0;
        if (!absent) {
            /* Only a DB restored from an older backup gets here: bring
             * it to VERSION with the same migrations. */
            log_warn(
                "OM DB layout version %d is below VERSION's %d: "
                "running the finalize migrations locally",
                layout, apparent);
            for (int v = version_catalog_next(cat, layout);
                 rc == 0 && v > 0 && v <= apparent;
                 v = version_catalog_next(cat, v)) {
                rc = om_feature_migrate(&u->s->om, v, u->s->om.applied_index, b,
                                        errmsg);
            }
        }
        kv_batch_put_layout_version(u->s->om.kv, b, apparent);
        if (rc == 0) {
            rc = kv_write(u->s->om.kv, b, true, errmsg);
        }
        kv_batch_free(b);
        if (rc != 0) {
            oz_errmsg_wrapf(errmsg, "cannot write the OM layout version");
            return rc;
        }
        log_info("OM DB layout version set to %s (%d) from VERSION",
                 feature_name(apparent), apparent);
        return 0;
    }
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "the OM DB's %s is unreadable: %s",
                         KV_LAYOUT_VERSION_KEY, oz_strerror(rc));
        return rc;
    }
    if (layout > software) {
        /* DESIGN.md §6.4, first rule, for the replicated state. */
        oz_errmsg_printf(errmsg,
                         "cannot start: on-disk apparent version %d is newer "
                         "than this software (version %d); this component "
                         "was finalized by a newer release and cannot be "
                         "downgraded",
                         layout, software);
        return OZ_EVERSION;
    }
    if (layout > apparent) {
        log_info(
            "OM DB layout version %d is ahead of VERSION's %d: "
            "finalizing this OM to it",
            layout, apparent);
        rc = version_manager_finalize(vm, layout, errmsg);
    }
    return rc;
}

/* ---- SCM and peers ---- */

static int scm_call(struct om_upgrade *u,
                    const ProtobufCServiceDescriptor *svc,
                    const char *method,
                    ProtobufCMessage *req,
                    ProtobufCMessage **resp,
                    struct rpc_error *err)
{
    memset(err, 0, sizeof(*err));
    return rpc_client_call(u->scm, svc, method, req, resp, err);
}

/* SCM's upgrade status; *out freed by the caller with rpc_message_free. */
static int scm_query(struct om_upgrade *u,
                     Ozone__Scm__QueryUpgradeStatusResponse **out,
                     struct rpc_error *err)
{
    Ozone__Scm__QueryUpgradeStatusRequest req =
        OZONE__SCM__QUERY_UPGRADE_STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc = scm_call(u, &ozone__scm__scm_upgrade_service__descriptor,
                      "QueryUpgradeStatus", &req.base, &resp, err);

    *out = rc == 0 ? (Ozone__Scm__QueryUpgradeStatusResponse *)resp : NULL;
    return rc;
}

static const char *scm_status_name(Ozone__Scm__FinalizationStatus st)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &ozone__scm__finalization_status__descriptor, (int)st);

    return v != NULL ? v->name : "UNKNOWN";
}

/* HDDS finalized: SCM finalized and every healthy datanode too. */
static bool hdds_finalized(const Ozone__Scm__UpgradeStatus *st)
{
    return st != NULL &&
           (st->status == OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_DONE ||
            st->status == OZONE__SCM__FINALIZATION_STATUS__ALREADY_FINALIZED) &&
           st->apparent_version >= st->software_version;
}

/* Asks one peer OM for its versions. */
static void peer_versions(struct om_upgrade *u,
                          const struct peer *p,
                          Ozone__Om__OmPeerVersion *out,
                          char *errbuf,
                          size_t errsize)
{
    const char *addrs[1] = {p->address};
    struct rpc_client_config cfg;
    struct rpc_client *c = NULL;
    Ozone__GetVersionRequest req = OZONE__GET_VERSION_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    char errmsg[OZ_ERRMSG_SIZE];

    errbuf[0] = '\0';
    daemon_client_config(u->d, addrs, 1, &cfg);
    cfg.deadline_ms = PEER_DEADLINE_MS;
    cfg.max_attempts = 2;
    memset(&err, 0, sizeof(err));
    if (rpc_client_new(&c, &cfg, errmsg) != 0) {
        snprintf(errbuf, errsize, "%s", errmsg);
        return;
    }
    if (rpc_client_call(c, &ozone__version_service__descriptor, "GetVersion",
                        &req.base, &resp, &err) != 0) {
        snprintf(errbuf, errsize, "%s", err.message);
    } else {
        const Ozone__GetVersionResponse *v =
            (const Ozone__GetVersionResponse *)resp;
        out->reachable = true;
        if (v->hdr != NULL) {
            out->software_version = v->hdr->software_version;
            out->apparent_version = v->hdr->apparent_version;
        }
        for (size_t i = 0; i < v->n_catalogs; i++) {
            if (v->catalogs[i] != NULL && v->catalogs[i]->name != NULL &&
                strcmp(v->catalogs[i]->name, "OM") == 0) {
                out->software_version = v->catalogs[i]->software_version;
                out->apparent_version = v->catalogs[i]->apparent_version;
            }
        }
        rpc_message_free(resp);
    }
    rpc_client_free(c);
}

/* Fills the peers (self included) into an rpc call's memory and the
 * laggard sentences into blockers (invariant 2, DESIGN.md §6.6): every OM
 * must run the newest software version among them; an unreachable OM is
 * a laggard too. */
static void collect_peers(struct om_upgrade *u,
                          struct rpc_call *call,
                          Ozone__Om__OmUpgradeStatus *st,
                          char ***blockers,
                          size_t *n_blockers)
{
    int needed = version_manager_software(&u->d->vm);
    size_t n = u->n_peers + 1;

    st->oms = rpc_call_alloc(call, n * sizeof(*st->oms));
    *blockers = rpc_call_alloc(call, (n + 4) * sizeof(**blockers));
    for (size_t i = 0; i < n; i++) {
        Ozone__Om__OmPeerVersion *p = rpc_call_alloc(call, sizeof(*p));
        ozone__om__om_peer_version__init(p);
        if (i == 0) {
            p->node_id = rpc_call_strdup(call, u->d->node_id);
            p->rpc_address = rpc_call_strdup(call, u->d->rpc_address);
            p->software_version = (uint32_t)version_manager_software(&u->d->vm);
            p->apparent_version = (uint32_t)version_manager_apparent(&u->d->vm);
            p->reachable = true;
            p->error = rpc_call_strdup(call, "");
        } else {
            const struct peer *pe = &u->peers[i - 1];
            char err[512];
            p->node_id = rpc_call_strdup(call, pe->node_id);
            p->rpc_address = rpc_call_strdup(call, pe->address);
            peer_versions(u, pe, p, err, sizeof(err));
            p->error = rpc_call_strdup(call, err);
        }
        if (p->reachable && (int)p->software_version > needed) {
            needed = (int)p->software_version;
        }
        st->oms[i] = p;
    }
    st->n_oms = n;
    for (size_t i = 0; i < n; i++) {
        const Ozone__Om__OmPeerVersion *p = st->oms[i];
        if (!p->reachable) {
            (*blockers)[(*n_blockers)++] = rpc_call_printf(
                call, "%s is unreachable (%s), needs software %d", p->node_id,
                p->error, needed);
        } else if ((int)p->software_version != needed) {
            (*blockers)[(*n_blockers)++] =
                rpc_call_printf(call, "%s runs software %u, needs %d",
                                p->node_id, p->software_version, needed);
        }
    }
}

/* ---- order enforcement (DESIGN.md §6.6) ---- */

static void set_violation(struct om_upgrade *u, const char *text, bool scm)
{
    pthread_mutex_lock(&u->mu);
    bool changed = strcmp(u->violation, text) != 0;
    if (changed) {
        oz_strlcpy(u->violation, text, sizeof(u->violation));
    }
    u->violation_scm = scm && text[0] != '\0';
    pthread_mutex_unlock(&u->mu);
    if (changed && text[0] != '\0') {
        log_warn("refusing writes: %s", text);
    } else if (changed) {
        log_info(
            "upgrade order is fine again (SCM and every live datanode "
            "run HDDS software %d or newer): writes accepted",
            u->expected_hdds);
    }
}

static void check_order(struct om_upgrade *u)
{
    Ozone__GetVersionRequest vreq = OZONE__GET_VERSION_REQUEST__INIT;
    Ozone__Scm__ListDatanodesRequest lreq =
        OZONE__SCM__LIST_DATANODES_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    char text[512] = "";
    unsigned scm_sw = 0;

    if (scm_call(u, &ozone__version_service__descriptor, "GetVersion",
                 &vreq.base, &resp, &err) != 0) {
        return; /* SCM unreachable: keep what we knew (writes fail anyway) */
    }
    const Ozone__GetVersionResponse *v =
        (const Ozone__GetVersionResponse *)resp;
    scm_sw = v->hdr != NULL ? v->hdr->software_version : 0;
    rpc_message_free(resp);
    resp = NULL;
    if ((int)scm_sw < u->expected_hdds) {
        snprintf(text, sizeof(text),
                 "upgrade order violation: upgrade SCM and datanodes before "
                 "OM (SCM runs HDDS software version %u, this OM was built "
                 "with %d)",
                 scm_sw, u->expected_hdds);
        set_violation(u, text, true);
        return;
    }
    if (scm_call(u, &ozone__scm__scm_admin_service__descriptor, "ListDatanodes",
                 &lreq.base, &resp, &err) != 0) {
        return;
    }
    const Ozone__Scm__ListDatanodesResponse *l =
        (const Ozone__Scm__ListDatanodesResponse *)resp;
    for (size_t i = 0; i < l->n_datanodes; i++) {
        const Ozone__Scm__DatanodeInfo *dn = l->datanodes[i];
        if (dn == NULL || dn->state == OZONE__HDDS__NODE_STATE__DEAD ||
            (int)dn->software_version >= u->expected_hdds) {
            continue;
        }
        snprintf(text, sizeof(text),
                 "upgrade order violation: upgrade SCM and datanodes before "
                 "OM (datanode '%s' runs HDDS software version %u, this OM "
                 "was built with %d)",
                 dn->details != NULL ? dn->details->uuid : "?",
                 dn->software_version, u->expected_hdds);
        break;
    }
    rpc_message_free(resp);
    set_violation(u, text, false);
}

bool om_upgrade_write_allowed(struct om_service *s,
                              const Ozone__Om__OmWriteOp *op,
                              struct om_result *res)
{
    struct om_upgrade *u = s->upgrade;

    if (u == NULL ||
        op->op_case == OZONE__OM__OM_WRITE_OP__OP_START_FINALIZATION ||
        op->op_case == OZONE__OM__OM_WRITE_OP__OP_FINALIZE ||
        om_orch_is_orch_op(op)) {
        return true;
    }
    pthread_mutex_lock(&u->mu);
    bool ok = u->violation[0] == '\0';
    if (!ok) {
        om_result_set(res, OZONE__RESULT_CODE__UPGRADE_ORDER_VIOLATION, "%s",
                      u->violation);
    }
    pthread_mutex_unlock(&u->mu);
    return ok;
}

/* ---- the poller ---- */

static void finalize_when_ready(struct om_upgrade *u)
{
    Ozone__Scm__QueryUpgradeStatusResponse *q = NULL;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmFinalizeOp body = OZONE__OM__OM_FINALIZE_OP__INIT;
    struct rpc_error err;
    struct om_result res;
    char line[256];
    int target = 0;

    if (!marker_present(&u->s->om, &target) || !leads(u, NULL)) {
        return;
    }
    if (scm_query(u, &q, &err) != 0) {
        snprintf(line, sizeof(line), "SCM at '%s' did not answer: %s",
                 u->scm_address, err.message);
    } else {
        const Ozone__Scm__UpgradeStatus *st = q->status;
        snprintf(line, sizeof(line),
                 "SCM reports %s, datanodes finalized %u/%u",
                 st != NULL ? scm_status_name(st->status) : "nothing",
                 st != NULL ? st->datanodes_finalized : 0,
                 st != NULL ? st->datanodes_total : 0);
    }
    pthread_mutex_lock(&u->mu);
    oz_strlcpy(u->scm_status, line, sizeof(u->scm_status));
    pthread_mutex_unlock(&u->mu);
    if (q == NULL || !hdds_finalized(q->status)) {
        log_debug("OM finalization waits for HDDS: %s", line);
        rpc_message_free(q ? &q->base : NULL);
        return;
    }
    rpc_message_free(&q->base);
    if (fault_hit("om.finalize.before_apply") != 0) {
        log_warn(
            "OM finalize entry not submitted (fault "
            "'om.finalize.before_apply')");
        return;
    }
    log_info(
        "HDDS is finalized (%s): committing the OM finalize entry to %s "
        "(%d)",
        line, feature_name(target), target);
    body.target_version = (uint32_t)target;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_FINALIZE;
    op.finalize = &body;
    om__submit(u->s, &op, &res);
    if (res.code != OZONE__RESULT_CODE__OK) {
        log_warn("OM finalize entry failed (retried): %s", res.message);
        return;
    }
    if (fault_hit("om.finalize.after_apply") != 0) {
        log_warn("VERSION not moved yet (fault 'om.finalize.after_apply')");
        return;
    }
    reconcile(u);
}

static void *poller_main(void *arg)
{
    struct om_upgrade *u = arg;
    long long next_check = 0;

    pthread_mutex_lock(&u->mu);
    while (!u->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long tick = u->check_ms < TICK_MS ? u->check_ms : TICK_MS;
        ts.tv_nsec += (tick % 1000) * 1000000L;
        ts.tv_sec += tick / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (!u->wake) {
            pthread_cond_timedwait(&u->cond, &u->mu, &ts);
        }
        if (u->stop) {
            break;
        }
        bool woken = u->wake;
        u->wake = false;
        pthread_mutex_unlock(&u->mu);
        reconcile(u);
        if (woken || mono_ms() >= next_check) {
            check_order(u);
            finalize_when_ready(u);
            next_check = mono_ms() + u->check_ms;
        }
        pthread_mutex_lock(&u->mu);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

static void wake_poller(struct om_upgrade *u)
{
    pthread_mutex_lock(&u->mu);
    u->wake = true;
    pthread_cond_signal(&u->cond);
    pthread_mutex_unlock(&u->mu);
}

/* ---- OmUpgradeService ---- */

static const char *status_word(struct om_upgrade *u, int layout, bool marker)
{
    if (layout >= version_manager_software(&u->d->vm)) {
        return finalization_done_recorded(&u->s->om) ? "FINALIZATION_DONE"
                                                     : "ALREADY_FINALIZED";
    }
    return marker ? "FINALIZATION_IN_PROGRESS" : "FINALIZATION_REQUIRED";
}

/* Fills st (call memory) with this OM's view; peers when with_peers. */
static void fill_status(struct om_upgrade *u,
                        struct rpc_call *call,
                        bool with_peers,
                        Ozone__Om__OmUpgradeStatus *st)
{
    int layout = 0;
    int software = version_manager_software(&u->d->vm);
    bool marker = marker_present(&u->s->om, NULL);
    char **blockers = NULL;
    size_t n_blockers = 0;

    /* VERSION follows #LAYOUTVERSION: catch up now so that a status
     * never says finalized before this OM's VERSION does. */
    reconcile(u);
    om_read_layout_version(&u->s->om, &layout);
    if (version_manager_apparent(&u->d->vm) < layout) {
        layout = version_manager_apparent(&u->d->vm);
    }
    st->software_version = (uint32_t)software;
    st->apparent_version = (uint32_t)layout;
    st->finalization_in_progress = marker;
    st->status = rpc_call_strdup(call, status_word(u, layout, marker));
    st->node_id = rpc_call_strdup(call, u->d->node_id);
    st->expected_hdds_version = (uint32_t)u->expected_hdds;
    st->finalization_requested_by = requested_by(&u->s->om, call);
    if (with_peers) {
        collect_peers(u, call, st, &blockers, &n_blockers);
    } else {
        blockers = rpc_call_alloc(call, 4 * sizeof(*blockers));
    }
    pthread_mutex_lock(&u->mu);
    st->order_violation = rpc_call_strdup(call, u->violation);
    if (u->violation[0] != '\0') {
        blockers[n_blockers++] = rpc_call_strdup(call, u->violation);
    }
    if (marker) {
        blockers[n_blockers++] = rpc_call_printf(
            call, "OM waits for SCM to report HDDS finalized (%s)",
            u->scm_status[0] != '\0' ? u->scm_status : "not polled yet");
    }
    pthread_mutex_unlock(&u->mu);
    st->blockers = blockers;
    st->n_blockers = n_blockers;
}

static enum rpc_handler_result query_status(void *data,
                                            struct rpc_call *call,
                                            const ProtobufCMessage *req_msg,
                                            ProtobufCMessage *resp_msg)
{
    struct om_upgrade *u = data;
    const Ozone__Om__OmQueryUpgradeStatusRequest *req =
        (const Ozone__Om__OmQueryUpgradeStatusRequest *)req_msg;
    Ozone__Om__OmQueryUpgradeStatusResponse *resp =
        (Ozone__Om__OmQueryUpgradeStatusResponse *)resp_msg;
    struct om_result res;

    /* The service's status is the leader's, as for every other read: a
     * follower may not have applied the marker or the finalize entry yet,
     * and only the leader's poller knows what SCM said. */
    if (!req->this_node && u->s->ha_ready &&
        !om_ha_check(&u->s->ha, false, "QueryUpgradeStatus", &res)) {
        rpc_call_set_error(call, om__status_for(res.code), res.code,
                           res.leader_hint[0] ? res.leader_hint : NULL, "%s",
                           res.message);
        return RPC_HANDLER_DONE;
    }
    resp->status = rpc_call_alloc(call, sizeof(*resp->status));
    ozone__om__om_upgrade_status__init(resp->status);
    fill_status(u, call, req->with_peers, resp->status);
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result refuse(struct rpc_call *call,
                                      Ozone__ResultCode code,
                                      const char *message)
{
    log_warn("finalize refused: %s", message);
    rpc_call_set_error(call,
                       code == OZONE__RESULT_CODE__UNAVAILABLE
                           ? RPC_STATUS_UNAVAILABLE
                           : RPC_STATUS_FAILED_PRECONDITION,
                       code, NULL, "%s", message);
    return RPC_HANDLER_DONE;
}

/* Legacy path: SCM must be finalized already (invariant 3). */
static bool scm_finalized_or_refuse(struct om_upgrade *u,
                                    struct rpc_call *call,
                                    enum rpc_handler_result *out)
{
    Ozone__Scm__QueryUpgradeStatusResponse *q = NULL;
    struct rpc_error err;
    char msg[512];

    if (scm_query(u, &q, &err) != 0) {
        snprintf(msg, sizeof(msg),
                 "cannot ask SCM at '%s' whether it is finalized: %s",
                 u->scm_address, err.message);
        *out = refuse(call,
                      err.code != OZONE__RESULT_CODE__OK
                          ? err.code
                          : OZONE__RESULT_CODE__UNAVAILABLE,
                      msg);
        return false;
    }
    const Ozone__Scm__UpgradeStatus *st = q->status;
    bool ok =
        st != NULL && st->apparent_version >= st->software_version &&
        st->status != OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_REQUIRED;
    if (!ok) {
        snprintf(msg, sizeof(msg),
                 "finalize refused: SCM is not finalized (HDDS apparent "
                 "version %u, software version %u); run 'ozone admin scm "
                 "finalizeupgrade' first (servers finalize before clients)",
                 st != NULL ? st->apparent_version : 0,
                 st != NULL ? st->software_version : 0);
        *out = refuse(call, OZONE__RESULT_CODE__FINALIZE_REJECTED, msg);
    }
    rpc_message_free(&q->base);
    return ok;
}

/* Non-legacy path: SCM FinalizeUpgrade, synchronously; SCM's refusal is
 * returned unchanged. messages gets SCM's progress lines. */
static bool scm_finalize(struct om_upgrade *u,
                         struct rpc_call *call,
                         const char *client_id,
                         Ozone__Om__OmFinalizeUpgradeResponse *resp,
                         enum rpc_handler_result *out)
{
    Ozone__Scm__FinalizeUpgradeRequest req =
        OZONE__SCM__FINALIZE_UPGRADE_REQUEST__INIT;
    ProtobufCMessage *r = NULL;
    struct rpc_error err;

    req.upgrade_client_id = (char *)client_id;
    if (scm_call(u, &ozone__scm__scm_upgrade_service__descriptor,
                 "FinalizeUpgrade", &req.base, &r, &err) != 0) {
        log_warn("SCM refused FinalizeUpgrade: %s", err.message);
        rpc_call_set_error(
            call,
            err.status != RPC_STATUS_OK ? err.status : RPC_STATUS_UNAVAILABLE,
            err.code != OZONE__RESULT_CODE__OK
                ? err.code
                : OZONE__RESULT_CODE__UNAVAILABLE,
            NULL, "%s", err.message);
        *out = RPC_HANDLER_DONE;
        return false;
    }
    const Ozone__Scm__FinalizeUpgradeResponse *f =
        (const Ozone__Scm__FinalizeUpgradeResponse *)r;
    resp->messages =
        rpc_call_alloc(call, (f->n_messages + 2) * sizeof(*resp->messages));
    for (size_t i = 0; i < f->n_messages; i++) {
        resp->messages[resp->n_messages++] =
            rpc_call_printf(call, "SCM: %s", f->messages[i]);
    }
    rpc_message_free(r);
    return true;
}

static enum rpc_handler_result finalize_upgrade(void *data,
                                                struct rpc_call *call,
                                                const ProtobufCMessage *req_msg,
                                                ProtobufCMessage *resp_msg)
{
    struct om_upgrade *u = data;
    const Ozone__Om__OmFinalizeUpgradeRequest *req =
        (const Ozone__Om__OmFinalizeUpgradeRequest *)req_msg;
    Ozone__Om__OmFinalizeUpgradeResponse *resp =
        (Ozone__Om__OmFinalizeUpgradeResponse *)resp_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmStartFinalizationOp body =
        OZONE__OM__OM_START_FINALIZATION_OP__INIT;
    Ozone__Om__OmUpgradeStatus *st;
    enum rpc_handler_result out = RPC_HANDLER_DONE;
    const char *who = req->upgrade_client_id[0] != '\0'
                          ? req->upgrade_client_id
                          : rpc_call_peer(call)->node_id;
    int software = version_manager_software(&u->d->vm);
    int layout = 0;
    struct om_result res;

    if (!leads(u, &res)) {
        rpc_call_set_error(call, om__status_for(res.code), res.code,
                           res.leader_hint[0] ? res.leader_hint : NULL, "%s",
                           res.message);
        return RPC_HANDLER_DONE;
    }
    log_info("finalize requested by '%s'%s", who,
             req->require_scm_finalized ? " (om finalizeupgrade)" : "");
    st = rpc_call_alloc(call, sizeof(*st));
    ozone__om__om_upgrade_status__init(st);
    resp->status = st;
    fill_status(u, call, true, st);
    om_read_layout_version(&u->s->om, &layout);
    if (st->finalization_in_progress) {
        resp->messages = rpc_call_alloc(call, sizeof(*resp->messages));
        resp->messages[resp->n_messages++] = rpc_call_strdup(
            call, "cluster finalization is already in progress");
        return RPC_HANDLER_DONE;
    }
    /* Invariant 2 (DESIGN.md §6.6): every OM peer runs our software, and
     * SCM runs the HDDS software this OM was built with (an old SCM would
     * finalize HDDS at its own, older version and let the OM finalize
     * with HDDS not upgraded). A datanode on older bits is SCM's to
     * refuse: its check names every laggard, not just the first. */
    size_t laggards = 0;
    char msg[1024] = "finalize refused: ";
    pthread_mutex_lock(&u->mu);
    bool scm_old = u->violation_scm;
    pthread_mutex_unlock(&u->mu);
    for (size_t i = 0; i < st->n_blockers; i++) {
        if (strstr(st->blockers[i], "upgrade order violation") == NULL ||
            scm_old) {
            size_t len = strlen(msg);
            snprintf(msg + len, sizeof(msg) - len, "%s%s",
                     laggards > 0 ? "; " : "", st->blockers[i]);
            laggards++;
        }
    }
    if (laggards > 0) {
        return refuse(call, OZONE__RESULT_CODE__FINALIZE_REJECTED, msg);
    }
    if (fault_hit("om.finalize.before_scm") != 0) {
        return refuse(call, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "finalize interrupted before SCM (fault "
                      "'om.finalize.before_scm')");
    }
    if (req->require_scm_finalized) {
        if (!scm_finalized_or_refuse(u, call, &out)) {
            return out;
        }
    } else if (!scm_finalize(u, call, who, resp, &out)) {
        return out;
    }
    if (fault_hit("om.finalize.after_scm") != 0) {
        return refuse(call, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "finalize interrupted after SCM (fault "
                      "'om.finalize.after_scm')");
    }
    if (resp->messages == NULL) {
        resp->messages = rpc_call_alloc(call, 2 * sizeof(*resp->messages));
    }
    if (layout >= software) {
        resp->messages[resp->n_messages++] =
            rpc_call_printf(call, "OM is already finalized at %s (%d)",
                            feature_name(layout), layout);
        return RPC_HANDLER_DONE;
    }
    body.target_version = (uint32_t)software;
    body.requested_by = (char *)who;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_START_FINALIZATION;
    op.start_finalization = &body;
    om__submit(u->s, &op, &res);
    if (res.code != OZONE__RESULT_CODE__OK) {
        rpc_call_set_error(call, om__status_for(res.code), res.code,
                           res.leader_hint[0] ? res.leader_hint : NULL, "%s",
                           res.message);
        return RPC_HANDLER_DONE;
    }
    if (fault_hit("om.finalize.after_marker") != 0) {
        return refuse(call, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "finalize interrupted after the marker (fault "
                      "'om.finalize.after_marker')");
    }
    st->finalization_in_progress = true;
    st->status = rpc_call_strdup(call, "FINALIZATION_IN_PROGRESS");
    resp->messages[resp->n_messages++] =
        rpc_call_strdup(call, "cluster finalization has been started");
    wake_poller(u);
    return RPC_HANDLER_DONE;
}

/* The orchestrator's lease and journal (om_orch.c) take the service. */
static enum rpc_handler_result upgrade_lease(void *data,
                                             struct rpc_call *call,
                                             const ProtobufCMessage *req,
                                             ProtobufCMessage *resp)
{
    return om_orch_lease_handler(((struct om_upgrade *)data)->s, call, req,
                                 resp);
}

static enum rpc_handler_result journal_append(void *data,
                                              struct rpc_call *call,
                                              const ProtobufCMessage *req,
                                              ProtobufCMessage *resp)
{
    return om_orch_append_handler(((struct om_upgrade *)data)->s, call, req,
                                  resp);
}

static enum rpc_handler_result journal_read(void *data,
                                            struct rpc_call *call,
                                            const ProtobufCMessage *req,
                                            ProtobufCMessage *resp)
{
    return om_orch_read_handler(((struct om_upgrade *)data)->s, call, req,
                                resp);
}

static const rpc_handler_fn upgrade_handlers[] = {finalize_upgrade,
                                                  query_status, upgrade_lease,
                                                  journal_append, journal_read};

/* ---- set-up ---- */

static double gauge_in_progress(void *ctx)
{
    struct om_upgrade *u = ctx;

    return marker_present(&u->s->om, NULL) ? 1 : 0;
}

static double gauge_order_violation(void *ctx)
{
    struct om_upgrade *u = ctx;

    pthread_mutex_lock(&u->mu);
    double v = u->violation[0] != '\0' ? 1 : 0;
    pthread_mutex_unlock(&u->mu);
    return v;
}

/* OM peers of the service (every node of ozone.om.nodes.<sid> but this
 * one), from the configuration. */
static void read_peers(struct om_upgrade *u)
{
    const struct conf *conf = u->d->conf;
    const char *ids = conf_get(conf, "ozone.om.service.ids");
    const char *self = conf_get(conf, "ozone.om.node.id");
    char sid[128], key[512], node[128];

    if (ids == NULL || ids[0] == '\0') {
        return;
    }
    size_t n = strcspn(ids, ",");
    snprintf(sid, sizeof(sid), "%.*s", (int)(n < 127 ? n : 127), ids);
    snprintf(key, sizeof(key), "ozone.om.nodes.%s", sid);
    const char *nodes = conf_get(conf, key);
    for (const char *p = nodes;
         p != NULL && *p != '\0' && u->n_peers < MAX_PEERS;) {
        size_t len = strcspn(p, ",");
        snprintf(node, sizeof(node), "%.*s", (int)(len < 127 ? len : 127), p);
        p += len + (p[len] == ',' ? 1 : 0);
        char *s = node;
        while (*s == ' ') {
            s++;
        }
        if (*s == '\0' || (self != NULL && strcmp(s, self) == 0) ||
            strcmp(s, u->d->node_id) == 0) {
            continue;
        }
        snprintf(key, sizeof(key), "ozone.om.address.%s.%s", sid, s);
        const char *addr = conf_get(conf, key);
        if (addr == NULL) {
            continue;
        }
        struct peer *pe = &u->peers[u->n_peers++];
        oz_strlcpy(pe->node_id, s, sizeof(pe->node_id));
        daemon_dial_address(addr, pe->address, sizeof(pe->address));
    }
}

int om_upgrade_start(struct om_service *s, char *errmsg)
{
    struct daemon *d = s->d;
    struct om_upgrade *u = calloc(1, sizeof(*u));
    const char *addrs[1];
    struct rpc_client_config cfg;
    char labels[256];
    int rc;

    if (u == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    u->s = s;
    u->d = d;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cond, NULL);
    u->expected_hdds = daemon_software_of(d, VERSION_CATALOG_HDDS);
    rc = conf_get_duration_ms(d->conf,
                              "ozone.om.upgrade.finalization.check.interval",
                              "5s", &u->check_ms, errmsg);
    if (rc != 0) {
        goto err;
    }
    if (u->check_ms < 10) {
        u->check_ms = 10;
    }
    rc = seed_or_reconcile(u, errmsg);
    if (rc != 0) {
        goto err;
    }
    read_peers(u);
    daemon_scm_address(d, u->scm_address, sizeof(u->scm_address));
    addrs[0] = u->scm_address;
    daemon_client_config(d, addrs, 1, &cfg);
    cfg.deadline_ms = SCM_DEADLINE_MS;
    cfg.max_attempts = 2;
    rc = rpc_client_new(&u->scm, &cfg, errmsg);
    if (rc != 0) {
        goto err;
    }
    rc = rpc_server_add_service(d->rpc,
                                &ozone__om__om_upgrade_service__descriptor,
                                upgrade_handlers, u, errmsg);
    if (rc != 0) {
        goto err;
    }
    snprintf(labels, sizeof(labels), "component=\"OM\",node=\"%s\"",
             d->node_id);
    metrics_register_fn("ozone_finalization_in_progress", labels,
                        "1 while the #FINALIZATION_IN_PROGRESS marker exists",
                        gauge_in_progress, u);
    metrics_register_fn("ozone_upgrade_order_violation", labels,
                        "1 while writes are refused because SCM or a "
                        "datanode runs older HDDS software",
                        gauge_order_violation, u);
    s->upgrade = u;
    check_order(u); /* before serving: refuse writes from the start */
    rc = pthread_create(&u->thread, NULL, poller_main, u);
    if (rc != 0) {
        s->upgrade = NULL;
        oz_errmsg_printf(errmsg, "cannot start the OM upgrade poller: %s",
                         strerror(rc));
        rc = OZ_EIO;
        goto err;
    }
    u->thread_started = true;
    log_info(
        "OM upgrade: layout %s, expects HDDS software %d or newer, "
        "checks SCM every %lld ms, %zu OM peers",
        version_manager_needs_finalization(&d->vm) ? "pre-finalized"
                                                   : "finalized",
        u->expected_hdds, u->check_ms, u->n_peers);
    return 0;
err:
    rpc_client_free(u->scm);
    pthread_cond_destroy(&u->cond);
    pthread_mutex_destroy(&u->mu);
    free(u);
    return rc;
}

void om_upgrade_stop(struct om_service *s)
{
    struct om_upgrade *u = s != NULL ? s->upgrade : NULL;

    if (u == NULL) {
        return;
    }
    if (u->thread_started) {
        pthread_mutex_lock(&u->mu);
        u->stop = true;
        pthread_cond_signal(&u->cond);
        pthread_mutex_unlock(&u->mu);
        pthread_join(u->thread, NULL);
    }
    s->upgrade = NULL;
    rpc_client_free(u->scm);
    pthread_cond_destroy(&u->cond);
    pthread_mutex_destroy(&u->mu);
    free(u);
}
