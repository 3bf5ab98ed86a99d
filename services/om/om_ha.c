/* om_ha: the OM on the raft log (contract and design in om_ha.h; DESIGN.md
 * §8, §6.8; PITFALLS.md "canonical raft 0.15"). This file holds the
 * configuration, open/close, submission and the gates; the FSM callbacks
 * and snapshots are in om_ha_fsm.c. */
#include "om_ha.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "om_ha_internal.h"

#define SUBMIT_TIMEOUT_MS 30000
#define BARRIER_TIMEOUT_MS 5000

/* ---- configuration ---- */

/* Item i of a comma-separated list, trimmed; false past the end. */
static bool list_item(const char *list, size_t i, char *out, size_t size)
{
    const char *p = list;

    for (size_t k = 0; k < i; k++) {
        p = strchr(p, ',');
        if (p == NULL) {
            return false;
        }
        p++;
    }
    while (*p == ' ' || *p == '\t' || *p == '\n') {
        p++;
    }
    size_t n = strcspn(p, ",");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n')) {
        n--;
    }
    if (n == 0 || n >= size) {
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static void host_of(const char *addr, char *out, size_t size)
{
    char dial[256];

    daemon_dial_address(addr, dial, sizeof(dial));
    oz_strlcpy(out, dial, size);
    char *colon = strrchr(out, ':');
    if (colon != NULL) {
        *colon = '\0';
    }
}

static int ratis_port(const struct conf *conf,
                      const char *sid,
                      const char *node,
                      long long *port,
                      bool *set,
                      char *errmsg)
{
    char key[512];
    const char *v = NULL;

    if (sid != NULL) {
        snprintf(key, sizeof(key), "ozone.om.ratis.port.%s.%s", sid, node);
        v = conf_get(conf, key);
    }
    if (v == NULL) {
        oz_strlcpy(key, "ozone.om.ratis.port", sizeof(key));
        v = conf_get(conf, key);
    }
    *set = v != NULL;
    *port = 9872;
    if (v == NULL) {
        return 0;
    }
    char *end = NULL;
    long long p = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || p < 0 || p > 65535) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%s' for '%s': expected a port "
                         "number",
                         v, key);
        return OZ_ECONFIG;
    }
    *port = p;
    return 0;
}

/* Reads the service (or the one-node group) into ha->nodes. */
static int read_nodes(struct om_ha *ha, struct conf *conf, char *errmsg)
{
    const char *ids = conf_get(conf, "ozone.om.service.ids");
    const char *self = conf_get(conf, "ozone.om.node.id");
    char key[512];
    char name[CONSENSUS_NAME_MAX];
    long long port = 0;
    bool port_set = false;
    int rc;

    ha->n_nodes = 0;
    if (ids == NULL ||
        !list_item(ids, 0, ha->service_id, sizeof(ha->service_id))) {
        struct om_ha_node *n = &ha->nodes[0];
        char host[256];

        ha->has_service = false;
        oz_strlcpy(n->name, self != NULL && self[0] != '\0' ? self : "om1",
                   sizeof(n->name));
        n->raft_id = 1;
        daemon_dial_address(
            conf_get_str(conf, "ozone.om.address", "0.0.0.0:9862"),
            n->rpc_address, sizeof(n->rpc_address));
        host_of(conf_get_str(conf, "ozone.om.address", "0.0.0.0:9862"), host,
                sizeof(host));
        if ((rc = ratis_port(conf, NULL, NULL, &port, &port_set, errmsg)) !=
            0) {
            return rc;
        }
        snprintf(n->raft_address, sizeof(n->raft_address), "%s:%lld", host,
                 port_set ? port : 0LL);
        ha->n_nodes = 1;
        ha->self = 0;
        return 0;
    }
    ha->has_service = true;
    snprintf(key, sizeof(key), "ozone.om.nodes.%s", ha->service_id);
    const char *nodes = conf_get(conf, key);
    for (size_t i = 0; nodes != NULL && list_item(nodes, i, name, sizeof(name));
         i++) {
        struct om_ha_node *n = &ha->nodes[ha->n_nodes];
        char host[256];

        if (ha->n_nodes == OM_HA_MAX_NODES) {
            oz_errmsg_printf(errmsg, "'%s' lists more than %d OMs; remove some",
                             key, OM_HA_MAX_NODES);
            return OZ_ECONFIG;
        }
        if (strchr(name, '@') != NULL) {
            oz_errmsg_printf(errmsg, "invalid OM node id '%s' in '%s'", name,
                             key);
            return OZ_ECONFIG;
        }
        oz_strlcpy(n->name, name, sizeof(n->name));
        n->raft_id = ha->n_nodes + 1;
        snprintf(key, sizeof(key), "ozone.om.address.%s.%s", ha->service_id,
                 name);
        const char *a = conf_get(conf, key);
        if (a == NULL || a[0] == '\0') {
            oz_errmsg_printf(errmsg,
                             "OM '%s' of service '%s' has no address; set "
                             "'%s'",
                             name, ha->service_id, key);
            return OZ_ECONFIG;
        }
        daemon_dial_address(a, n->rpc_address, sizeof(n->rpc_address));
        host_of(a, host, sizeof(host));
        snprintf(key, sizeof(key), "ozone.om.http-address.%s.%s",
                 ha->service_id, name);
        const char *h = conf_get(conf, key);
        if (h != NULL) {
            daemon_dial_address(h, n->http_address, sizeof(n->http_address));
        }
        rc = ratis_port(conf, ha->service_id, name, &port, &port_set, errmsg);
        if (rc != 0) {
            return rc;
        }
        snprintf(n->raft_address, sizeof(n->raft_address), "%s:%lld", host,
                 port);
        ha->n_nodes++;
        snprintf(key, sizeof(key), "ozone.om.nodes.%s", ha->service_id);
    }
    if (ha->n_nodes == 0) {
        oz_errmsg_printf(errmsg,
                         "OM service '%s' lists no nodes; set "
                         "'ozone.om.nodes.%s'",
                         ha->service_id, ha->service_id);
        return OZ_ECONFIG;
    }
    if (self == NULL || self[0] == '\0') {
        if (ha->n_nodes > 1) {
            oz_errmsg_printf(errmsg,
                             "OM service '%s' has %u nodes: set "
                             "'ozone.om.node.id' to say which one this OM is",
                             ha->service_id, ha->n_nodes);
            return OZ_ECONFIG;
        }
        ha->self = 0;
        return 0;
    }
    for (unsigned i = 0; i < ha->n_nodes; i++) {
        if (strcmp(ha->nodes[i].name, self) == 0) {
            ha->self = i;
            return 0;
        }
    }
    oz_errmsg_printf(errmsg,
                     "'ozone.om.node.id' is '%s' but 'ozone.om.nodes.%s' does "
                     "not list it; add it",
                     self, ha->service_id);
    return OZ_ECONFIG;
}

int om_ha_configure(struct daemon *d, char *errmsg)
{
    struct om_ha *ha = calloc(1, sizeof(*ha));
    char key[512];
    int rc;

    if (ha == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    rc = read_nodes(ha, d->conf, errmsg);
    if (rc == 0 && ha->has_service) {
        const struct om_ha_node *n = &ha->nodes[ha->self];
        /* Ozone binds the node's own keys; the daemon binds these. */
        snprintf(key, sizeof(key), "ozone.om.address.%s.%s", ha->service_id,
                 n->name);
        conf_set(d->conf, "ozone.om.address", conf_get(d->conf, key));
        snprintf(key, sizeof(key), "ozone.om.http-address.%s.%s",
                 ha->service_id, n->name);
        if (conf_get(d->conf, key) != NULL) {
            conf_set(d->conf, "ozone.om.http-address", conf_get(d->conf, key));
        }
    }
    free(ha);
    return rc;
}

const struct om_ha_node *om_ha_node_by_name(const struct om_ha *ha,
                                            const char *name)
{
    for (unsigned i = 0; i < ha->n_nodes; i++) {
        if (strcmp(ha->nodes[i].name, name) == 0) {
            return &ha->nodes[i];
        }
    }
    return NULL;
}

/* ---- prepare marker (DESIGN.md §6.8) ---- */

int om_ha__write_marker(struct om_ha *ha, uint64_t index)
{
    char tmp[4200];
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", index);
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.tmp", ha->marker_path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        return OZ_EIO;
    }
    if (write(fd, text, (size_t)n) != n || fsync(fd) != 0) {
        close(fd);
        return OZ_EIO;
    }
    close(fd);
    if (rename(tmp, ha->marker_path) != 0) {
        return OZ_EIO;
    }
    return 0;
}

void om_ha__remove_marker(struct om_ha *ha)
{
    if (unlink(ha->marker_path) != 0 && errno != ENOENT) {
        log_warn("cannot remove prepare marker '%s': %s", ha->marker_path,
                 strerror(errno));
    }
}

/* The start-up cases of DESIGN.md §6.8 (Ozone's OzoneManagerPrepareState):
 * marker and key: prepared; marker alone: corrupt; key alone: unprepared
 * (the key is deleted). */
static int load_prepare_state(struct om_ha *ha, bool upgrade, char *errmsg)
{
    struct stat st;
    bool marker = stat(ha->marker_path, &st) == 0;
    uint64_t index = 0;
    int rc = om_read_prepared_index(ha->om, &index);
    bool key = rc == 0;

    if (rc != 0 && rc != OZ_ENOTFOUND) {
        oz_errmsg_printf(errmsg,
                         "corrupt prepare state: '%s' in the OM DB is not "
                         "an index; restore the OM from a checkpoint",
                         OM_PREPARED_INFO_KEY);
        return OZ_ECORRUPT;
    }
    /* #PREPAREDINFO is replicated state: om_apply refuses writes while it
     * is present, on every OM alike (DESIGN.md §8.1). It is therefore
     * never deleted here, only by a CancelPrepare entry. */
    if (upgrade && key) {
        ha->prepared_index = index;
        ha->leave_prepare = true;
        log_info("--upgrade: leaving prepare mode (prepared at index %" PRIu64
                 "): this OM commits a CancelPrepare entry once it leads; "
                 "writes stay refused until then",
                 index);
        return 0;
    }
    if (upgrade && marker) {
        log_info(
            "--upgrade: removing prepare marker '%s' (the OM DB is not "
            "prepared)",
            ha->marker_path);
        om_ha__remove_marker(ha);
        return 0;
    }
    if (marker && !key) {
        oz_errmsg_printf(errmsg,
                         "corrupt prepare state: marker '%s' exists but the "
                         "OM DB has no '%s'; remove the marker to start "
                         "unprepared",
                         ha->marker_path, OM_PREPARED_INFO_KEY);
        return OZ_ECORRUPT;
    }
    if (key && !marker) {
        /* The prepare entry was applied (on every OM: writes are refused
         * cluster-wide) but this OM stopped before its snapshot and
         * marker. Its gate stays closed, as the DB says. */
        ha->prepared_index = index;
        ha->prepare_pending = index;
        log_warn("'%s' (index %" PRIu64
                 ") found without prepare marker '%s': the OM stopped "
                 "before its prepare snapshot; writes stay refused "
                 "(PREPARE_GATE_ENABLED): run 'ozone admin om prepare' again "
                 "to complete it, or 'ozone admin om cancelprepare'",
                 OM_PREPARED_INFO_KEY, index, ha->marker_path);
        return 0;
    }
    if (key) {
        ha->prepared_index = index;
        log_info("OM is prepared for upgrade (prepare index %" PRIu64
                 "): writes are refused until cancelprepare or --upgrade",
                 index);
    }
    return 0;
}

/* ---- leaving prepare mode (ozone om --upgrade) ---- */

void om_ha_submit_prepare(struct om_ha *ha,
                          bool cancel,
                          struct om_result *res,
                          uint64_t *index)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmPrepareOp p = OZONE__OM__OM_PREPARE_OP__INIT;
    Ozone__Om__OmCancelPrepareOp cp = OZONE__OM__OM_CANCEL_PREPARE_OP__INIT;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    op.time_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    if (cancel) {
        cp.requested_ms = op.time_ms;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_CANCEL_PREPARE;
        op.cancel_prepare = &cp;
    } else {
        p.requested_ms = op.time_ms;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_PREPARE;
        op.prepare = &p;
    }
    om_ha_submit(ha, &op, res);
    if (index != NULL) {
        *index = op.index;
    }
}

/* One try; true when nothing is left to do. */
static bool leave_prepare_once(struct om_ha *ha, bool *warned)
{
    struct om_result res;
    uint64_t index = 0;

    if (om_ha_prepare_state(ha, NULL) == OM_NOT_PREPARED) {
        return true; /* cancelled meanwhile, by another OM or an admin */
    }
    if (!consensus_is_leader(ha->c)) {
        if (!*warned) {
            log_info(
                "--upgrade: waiting to lead the OM service to cancel "
                "prepare; 'ozone admin om cancelprepare' does it from "
                "any OM");
            *warned = true;
        }
        return false;
    }
    om_ha_submit_prepare(ha, true, &res, &index);
    if (res.code != OZONE__RESULT_CODE__OK) {
        log_warn("--upgrade: CancelPrepare failed, retrying: %s", res.message);
        return false;
    }
    log_info("--upgrade: prepare cancelled at index %" PRIu64
             ": writes accepted",
             index);
    return true;
}

static void *leave_prepare_main(void *arg)
{
    struct om_ha *ha = arg;
    bool warned = false;

    while (!atomic_load(&ha->leave_stop) && !leave_prepare_once(ha, &warned)) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* A one-node group leads at once: cancel before serving, so the first
 * client write after start-up is accepted. Otherwise a thread tries until
 * this OM leads or prepare was cancelled. */
static void start_leave_prepare(struct om_ha *ha)
{
    bool warned = true;

    if (!ha->leave_prepare ||
        (!ha->has_service && leave_prepare_once(ha, &warned))) {
        return;
    }
    atomic_store(&ha->leave_stop, false);
    if (pthread_create(&ha->leave_thread, NULL, leave_prepare_main, ha) != 0) {
        log_error(
            "--upgrade: cannot start a thread to cancel prepare; run "
            "'ozone admin om cancelprepare'");
        return;
    }
    ha->leave_started = true;
}

/* ---- open / close ---- */

static int wait_for_leader(struct om_ha *ha, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (consensus_is_leader(ha->c)) {
            return 0;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return OZ_ETIMEDOUT;
}

int om_ha_open(struct om_ha *ha,
               struct daemon *d,
               struct om *om,
               bool upgrade,
               bool bootstrap,
               char *errmsg)
{
    struct consensus_peer peers[OM_HA_MAX_NODES];
    struct consensus_config cfg;
    struct om_buffer_config buf_cfg;
    long long threshold = 0;
    long long trailing = 0;
    long long election_ms = 0;
    long long buf_entries = 0;
    long long buf_ms = 0;
    int rc;

    memset(ha, 0, sizeof(*ha));
    ha->d = d;
    ha->om = om;
    pthread_mutex_init(&ha->mu, NULL);
    pthread_cond_init(&ha->read_cond, NULL);
    if ((rc = read_nodes(ha, d->conf, errmsg)) != 0) {
        return rc;
    }
    if ((rc = conf_get_int(d->conf,
                           "ozone.om.ratis.snapshot.auto.trigger.threshold",
                           10000, &threshold, errmsg)) != 0 ||
        (rc = conf_get_int(d->conf,
                           "ozone.om.ratis.log.purge.preservation.log.num",
                           1024, &trailing, errmsg)) != 0 ||
        (rc = conf_get_duration_ms(d->conf, "ozone.om.ratis.minimum.timeout",
                                   "1s", &election_ms, errmsg)) != 0 ||
        (rc = conf_get_int(d->conf, "ozone.om.ratis.double.buffer.max.entries",
                           1000, &buf_entries, errmsg)) != 0 ||
        (rc = conf_get_duration_ms(
             d->conf, "ozone.om.ratis.double.buffer.flush.interval", "10ms",
             &buf_ms, errmsg)) != 0) {
        return rc;
    }
    if (buf_entries < 1 || buf_entries > 1000000 || buf_ms < 1 ||
        buf_ms > 60000) {
        oz_errmsg_printf(errmsg,
                         "invalid OM double buffer settings: "
                         "'ozone.om.ratis.double.buffer.max.entries' %lld "
                         "(1..1000000), "
                         "'ozone.om.ratis.double.buffer.flush.interval' %lld "
                         "ms (1..60000)",
                         buf_entries, buf_ms);
        return OZ_ECONFIG;
    }
    if (threshold < 1 || threshold > 100000000 || trailing < 0 ||
        trailing > 100000000 || election_ms < 100 || election_ms > 60000) {
        oz_errmsg_printf(errmsg,
                         "invalid OM raft settings: snapshot threshold %lld "
                         "(1..1e8), preserved log entries %lld (0..1e8), "
                         "minimum timeout %lld ms (100..60000)",
                         threshold, trailing, election_ms);
        return OZ_ECONFIG;
    }
    snprintf(ha->raft_dir, sizeof(ha->raft_dir), "%s/ratis", d->storage_dir);
    snprintf(ha->marker_path, sizeof(ha->marker_path),
             "%s/current/prepareMarker", d->storage_dir);
    rc = load_prepare_state(ha, upgrade, errmsg);
    if (rc != 0) {
        return rc;
    }
    ha->snapshot_installs = metrics_get(
        "ozone_om_snapshot_installs_total", NULL, METRIC_COUNTER,
        "Raft snapshots from the leader installed by this OM (catch-up)");
    ha->snapshots_taken =
        metrics_get("ozone_om_snapshots_total", NULL, METRIC_COUNTER,
                    "Raft snapshots (RocksDB checkpoints) taken by this OM");
    ha->snapshot_index =
        metrics_get("ozone_om_snapshot_index", NULL, METRIC_GAUGE,
                    "Raft index of the latest snapshot this OM took");
    ha->prepare_snapshot_index = metrics_get(
        "ozone_om_prepare_snapshot_index", NULL, METRIC_GAUGE,
        "Index of the snapshot taken for the latest prepare (0: none)");
    ha->prepare_purged_index = metrics_get(
        "ozone_om_prepare_purged_index", NULL, METRIC_GAUGE,
        "Prepare index up to which this OM purged its raft log (0: none)");
    /* Double buffer (om_buffer.c) before raft: restore and apply may run
     * during consensus_open. */
    buf_cfg.max_entries = (uint64_t)buf_entries;
    buf_cfg.interval_ms = (unsigned)buf_ms;
    rc = om_buffer_start(om, &buf_cfg, errmsg);
    if (rc != 0) {
        return rc;
    }

    for (unsigned i = 0; i < ha->n_nodes; i++) {
        peers[i].id = ha->nodes[i].raft_id;
        peers[i].name = ha->nodes[i].name;
        peers[i].address = ha->nodes[i].raft_address;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = ha->nodes[ha->self].raft_id;
    cfg.name = ha->nodes[ha->self].name;
    cfg.address = ha->nodes[ha->self].raft_address;
    cfg.data_dir = ha->raft_dir;
    cfg.cluster = peers;
    cfg.n_cluster = ha->n_nodes;
    cfg.mode = bootstrap ? CONSENSUS_JOIN : CONSENSUS_BOOTSTRAP;
    cfg.election_timeout_ms = (unsigned)election_ms;
    cfg.heartbeat_timeout_ms = (unsigned)(election_ms / 10);
    cfg.snapshot_threshold = (unsigned)threshold;
    cfg.snapshot_trailing = trailing > 0 ? (unsigned)trailing : 1;
    om_ha__fsm_init(ha, &cfg.fsm);
    ha->opener = pthread_self(); /* before the raft thread exists */
    rc = consensus_open(&cfg, &ha->c, errmsg);
    if (rc != 0) {
        oz_errmsg_wrapf(errmsg, "cannot start the OM raft server '%s'",
                        cfg.name);
        om_buffer_stop(om);
        return rc;
    }
    if (!ha->has_service && wait_for_leader(ha, 10000) != 0) {
        log_warn("one-node OM raft group did not elect itself within 10s");
    }
    start_leave_prepare(ha);
    rc = om_cleanup_start(ha, errmsg);
    if (rc != 0) {
        if (ha->leave_started) {
            atomic_store(&ha->leave_stop, true);
            pthread_join(ha->leave_thread, NULL);
            ha->leave_started = false;
        }
        consensus_close(ha->c);
        ha->c = NULL;
        om_buffer_stop(om);
        return rc;
    }
    log_info("OM raft server '%s' (raft id %" PRIu64
             ", %s) started: %s, %u node(s), applied index %" PRIu64,
             cfg.name, cfg.id, cfg.address,
             ha->has_service ? ha->service_id : "single OM", ha->n_nodes,
             om->applied_index);
    return 0;
}

void om_ha_drain(struct om_ha *ha)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct consensus_status st;
    unsigned voters = 0;

    if (ha == NULL || ha->c == NULL || !consensus_is_leader(ha->c)) {
        return;
    }
    consensus_status(ha->c, &st);
    for (unsigned i = 0; i < st.n_members; i++) {
        voters += st.members[i].role == CONSENSUS_VOTER;
    }
    if (voters < 2) {
        return;
    }
    log_info("stopping: transferring OM leadership");
    int rc = consensus_transfer_wait(ha->c, 0, 5000, errmsg);
    if (rc != 0) {
        log_warn("leadership transfer before stop failed: %s", errmsg);
    }
}

void om_ha_close(struct om_ha *ha)
{
    if (ha == NULL || ha->d == NULL) {
        return;
    }
    om_cleanup_stop(ha);
    if (ha->leave_started) {
        atomic_store(&ha->leave_stop, true);
        pthread_join(ha->leave_thread, NULL);
        ha->leave_started = false;
    }
    consensus_close(ha->c); /* transfers leadership first when leading */
    ha->c = NULL;
    om_buffer_stop(ha->om); /* no apply runs any more: flush, synced */
    pthread_cond_destroy(&ha->read_cond);
    pthread_mutex_destroy(&ha->mu);
    ha->d = NULL;
}

/* ---- gates and submission ---- */

void om_ha_not_leader(struct om_ha *ha, struct om_result *res)
{
    char name[CONSENSUS_NAME_MAX] = "";
    uint64_t id = 0;
    const struct om_ha_node *n = NULL;

    if (consensus_leader(ha->c, &id, name, sizeof(name), NULL, 0) == 0 &&
        id != ha->nodes[ha->self].raft_id) {
        n = om_ha_node_by_name(ha, name);
    }
    if (n != NULL) {
        oz_strlcpy(res->leader_hint, n->rpc_address, sizeof(res->leader_hint));
        om_result_set(res, OZONE__RESULT_CODE__NOT_LEADER,
                      "OM '%s' is not the leader; the leader is '%s' at '%s'",
                      ha->nodes[ha->self].name, n->name, n->rpc_address);
    } else {
        res->leader_hint[0] = '\0';
        om_result_set(res, OZONE__RESULT_CODE__NOT_LEADER,
                      "OM '%s' is not the leader and knows no leader yet; "
                      "retry another OM of the service",
                      ha->nodes[ha->self].name);
    }
}

enum om_prepare_state om_ha_prepare_state(struct om_ha *ha,
                                          uint64_t *prepared_index)
{
    pthread_mutex_lock(&ha->mu);
    uint64_t p = ha->prepared_index;
    uint64_t pending = ha->prepare_pending;
    pthread_mutex_unlock(&ha->mu);
    if (prepared_index != NULL) {
        *prepared_index = p > 0 ? p : pending;
    }
    if (p > 0 && pending == 0) {
        return OM_PREPARE_COMPLETED;
    }
    return pending > 0 ? OM_PREPARE_GATE_ENABLED : OM_NOT_PREPARED;
}

/* One barrier for every reader that arrived before it was issued. */
static int read_barrier(struct om_ha *ha, char *errmsg)
{
    int rc = 0;

    pthread_mutex_lock(&ha->mu);
    uint64_t mine = ++ha->read_seq;
    while (ha->read_done < mine) {
        if (ha->read_inflight) {
            pthread_cond_wait(&ha->read_cond, &ha->mu);
            continue;
        }
        uint64_t covers = ha->read_seq;
        ha->read_inflight = true;
        pthread_mutex_unlock(&ha->mu);
        rc = consensus_barrier_wait(ha->c, BARRIER_TIMEOUT_MS, errmsg);
        pthread_mutex_lock(&ha->mu);
        ha->read_inflight = false;
        if (rc == 0 && covers > ha->read_done) {
            ha->read_done = covers;
        }
        pthread_cond_broadcast(&ha->read_cond);
        if (rc != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&ha->mu);
    return rc;
}

bool om_ha_check(struct om_ha *ha,
                 bool write,
                 const char *method,
                 struct om_result *res)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";

    memset(res, 0, sizeof(*res));
    if (!consensus_is_leader(ha->c)) {
        om_ha_not_leader(ha, res);
        return false;
    }
    if (write) {
        if (om_ha_prepare_state(ha, NULL) != OM_NOT_PREPARED) {
            om_result_set(
                res, OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_WHEN_PREPARED,
                "cannot apply write request %s: OM is prepared for upgrade; "
                "run 'ozone admin om cancelprepare' or finish the upgrade",
                method);
            return false;
        }
        return true;
    }
    if (!ha->has_service) {
        return true; /* a one-node group: no other node can lead */
    }
    int rc = read_barrier(ha, errmsg);
    if (rc == OZ_ENOTLEADER) {
        om_ha_not_leader(ha, res);
        return false;
    }
    if (rc != 0) {
        om_result_set(res, OZONE__RESULT_CODE__UNAVAILABLE,
                      "OM '%s' cannot confirm its leadership for a read: %s; "
                      "retry",
                      ha->nodes[ha->self].name, errmsg);
        return false;
    }
    return true;
}

void om_ha_submit(struct om_ha *ha,
                  Ozone__Om__OmWriteOp *op,
                  struct om_result *res)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    uint64_t index = 0;
    int result = 0;
    size_t len;
    void *buf;
    int rc;

    memset(res, 0, sizeof(*res));
    op->index = 0; /* decided by the log */
    len = protobuf_c_message_get_packed_size(&op->base);
    buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "out of memory preparing a write");
        return;
    }
    protobuf_c_message_pack(&op->base, buf);
    rc = consensus_submit_wait(ha->c, OM_HA_ENTRY_WRITE_OP, buf, len,
                               SUBMIT_TIMEOUT_MS, &index, &result, errmsg);
    free(buf);
    if (rc == OZ_ENOTLEADER) {
        om_ha_not_leader(ha, res);
        return;
    }
    if (rc == OZ_ETIMEDOUT) {
        om_result_set(res, OZONE__RESULT_CODE__TIMEOUT,
                      "write %s was not committed within %d ms (no quorum?); "
                      "it may still be applied, check before retrying",
                      om_op_name(op), SUBMIT_TIMEOUT_MS);
        return;
    }
    if (rc != 0) {
        om_result_set(res, OZONE__RESULT_CODE__UNAVAILABLE,
                      "cannot replicate write %s: %s: %s; retry",
                      om_op_name(op), oz_strerror(rc), errmsg);
        return;
    }
    op->index = index;
    om_ha__take_result(ha, index, result, res);
}
