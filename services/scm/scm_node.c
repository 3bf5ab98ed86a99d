/* Datanode registry and health (DESIGN.md §7, §6.7 step 4).
 *
 * Health is an explicit state machine (CONVENTIONS.md "Concurrency"): the
 * table below lists every allowed move, scm_node_health_target() says
 * where a node should be given its last heartbeat, and node_move() is the
 * only place that changes a node's state; it checks the table and logs.
 *
 *   (new) -> HEALTHY | HEALTHY_READONLY        registration
 *   HEALTHY <-> HEALTHY_READONLY               apparent version vs SCM's
 *   HEALTHY | HEALTHY_READONLY -> STALE        no heartbeat for stale interval
 *   STALE -> DEAD                              no heartbeat for dead interval
 *   STALE | DEAD -> HEALTHY | HEALTHY_READONLY a heartbeat arrives
 *
 * Nodes are not persisted: after an SCM restart every datanode's next
 * heartbeat gets REREGISTER (Ozone does the same).
 */
#include "scm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define NS(x) OZONE__HDDS__NODE_STATE__##x
#define N_STATES 5

/* allowed[from][to], indexed by the protobuf enum values. */
static const bool allowed[N_STATES][N_STATES] = {
    [NS(NODE_STATE_UNSPECIFIED)] = {[NS(HEALTHY)] = true,
                                    [NS(HEALTHY_READONLY)] = true},
    [NS(HEALTHY)] = {[NS(HEALTHY_READONLY)] = true, [NS(STALE)] = true},
    [NS(HEALTHY_READONLY)] = {[NS(HEALTHY)] = true, [NS(STALE)] = true},
    [NS(STALE)] = {[NS(HEALTHY)] = true,
                   [NS(HEALTHY_READONLY)] = true,
                   [NS(DEAD)] = true},
    [NS(DEAD)] = {[NS(HEALTHY)] = true, [NS(HEALTHY_READONLY)] = true},
};

bool scm_node_transition_allowed(Ozone__Hdds__NodeState from,
                                 Ozone__Hdds__NodeState to)
{
    if ((unsigned)from >= N_STATES || (unsigned)to >= N_STATES) {
        return false;
    }
    return allowed[from][to];
}

Ozone__Hdds__NodeState scm_node_health_target(int64_t now_ms,
                                              int64_t last_hb_ms,
                                              int64_t stale_ms,
                                              int64_t dead_ms,
                                              bool readonly)
{
    int64_t silent = now_ms - last_hb_ms;

    if (silent >= dead_ms) {
        return NS(DEAD);
    }
    if (silent >= stale_ms) {
        return NS(STALE);
    }
    return readonly ? NS(HEALTHY_READONLY) : NS(HEALTHY);
}

Ozone__Hdds__NodeState scm_node_next_step(Ozone__Hdds__NodeState from,
                                          Ozone__Hdds__NodeState target)
{
    if (from == target || scm_node_transition_allowed(from, target)) {
        return target;
    }
    /* A tick that comes late may find a healthy node already past the
     * dead interval: it still goes through STALE, so that the pipelines
     * are closed and both moves are logged. */
    if (target == NS(DEAD) && scm_node_transition_allowed(from, NS(STALE))) {
        return NS(STALE);
    }
    return from;
}

/* ---- registry ---- */

struct scm_node *scm__node_find(struct scm *scm, const char *uuid)
{
    for (size_t i = 0; i < scm->n_nodes; i++) {
        if (strcmp(scm->nodes[i]->addr.uuid, uuid) == 0) {
            return scm->nodes[i];
        }
    }
    return NULL;
}

static struct scm_node *node_add(struct scm *scm, const char *uuid)
{
    struct scm_node *n;

    if (scm->n_nodes >= SCM_MAX_NODES) {
        return NULL;
    }
    if (scm->n_nodes == scm->cap_nodes) {
        size_t cap = scm->cap_nodes ? scm->cap_nodes * 2 : 16;
        struct scm_node **nodes = realloc(scm->nodes, cap * sizeof(*nodes));
        if (nodes == NULL) {
            return NULL;
        }
        scm->nodes = nodes;
        scm->cap_nodes = cap;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return NULL;
    }
    oz_strlcpy(n->addr.uuid, uuid, sizeof(n->addr.uuid));
    n->state = NS(NODE_STATE_UNSPECIFIED);
    scm->nodes[scm->n_nodes++] = n;
    return n;
}

bool scm__member_gone(struct scm *scm, const char *uuid, int64_t now_ms)
{
    const struct scm_node *n = scm__node_find(scm, uuid);

    if (n != NULL) {
        return n->state == NS(DEAD);
    }
    /* Not registered since SCM started: treat it as dead once a live node
     * would have been declared dead. */
    return now_ms - scm->start_mono_ms >= scm->cfg.dead_ms;
}

/* ---- moves ---- */

static bool node_readonly(struct scm *scm, const struct scm_node *n)
{
    /* DESIGN.md §6.7 step 4: a datanode behind SCM's apparent version is
     * readable but never placed in a new write pipeline. */
    return n->apparent_version < scm->apparent(scm->apparent_ctx);
}

static void move_reason(struct scm *scm,
                        const struct scm_node *n,
                        Ozone__Hdds__NodeState to,
                        int64_t now_ms,
                        char *buf,
                        size_t size)
{
    long long silent = (long long)(now_ms - n->last_hb_ms);
    unsigned scm_apparent = scm->apparent(scm->apparent_ctx);

    if (to == NS(STALE)) {
        snprintf(buf, size, "no heartbeat for %lld ms (stale interval %lld ms)",
                 silent, scm->cfg.stale_ms);
    } else if (to == NS(DEAD)) {
        snprintf(buf, size, "no heartbeat for %lld ms (dead interval %lld ms)",
                 silent, scm->cfg.dead_ms);
    } else if (to == NS(HEALTHY_READONLY)) {
        snprintf(buf, size,
                 "apparent version %u is below SCM's apparent version %u: "
                 "readable, not placed in new pipelines until it finalizes",
                 n->apparent_version, scm_apparent);
    } else if (n->state == NS(HEALTHY_READONLY)) {
        snprintf(buf, size, "apparent version %u reached SCM's %u",
                 n->apparent_version, scm_apparent);
    } else {
        snprintf(buf, size, "heartbeat received");
    }
}

static void node_move(struct scm *scm,
                      struct scm_node *n,
                      Ozone__Hdds__NodeState to,
                      int64_t now_ms)
{
    char reason[256];
    char why[320];
    Ozone__Hdds__NodeState from = n->state;

    if (!scm_node_transition_allowed(from, to)) {
        /* Callers only pass steps from scm_node_next_step(). */
        log_error("BUG: datanode '%s' cannot move from %s to %s", n->addr.uuid,
                  scm__node_state_name(from), scm__node_state_name(to));
        abort();
    }
    move_reason(scm, n, to, now_ms, reason, sizeof(reason));
    n->state = to;
    if (from == NS(NODE_STATE_UNSPECIFIED)) {
        log_info(
            "datanode '%s' registered at %s:%u (host '%s'): %s, "
            "software version %u, apparent version %u",
            n->addr.uuid, n->addr.ip, n->addr.container_port, n->addr.hostname,
            scm__node_state_name(to), n->software_version, n->apparent_version);
    } else {
        log_info(
            "datanode '%s' (%s:%u) %s -> %s: %s; software version %u, "
            "apparent version %u",
            n->addr.uuid, n->addr.ip, n->addr.container_port,
            scm__node_state_name(from), scm__node_state_name(to), reason,
            n->software_version, n->apparent_version);
    }
    if (to != NS(HEALTHY)) {
        /* A pipeline needs every member writable (DESIGN.md §7). */
        snprintf(why, sizeof(why), "member '%s' is %s", n->addr.uuid,
                 scm__node_state_name(to));
        scm__pipelines_close_for_node(scm, n->addr.uuid, why, now_ms);
    }
}

int scm__node_update(struct scm *scm, struct scm_node *n, int64_t now_ms)
{
    int moves = 0;

    for (;;) {
        Ozone__Hdds__NodeState target =
            scm_node_health_target(now_ms, n->last_hb_ms, scm->cfg.stale_ms,
                                   scm->cfg.dead_ms, node_readonly(scm, n));
        Ozone__Hdds__NodeState step = scm_node_next_step(n->state, target);
        if (step == n->state || moves >= N_STATES) {
            return moves;
        }
        node_move(scm, n, step, now_ms);
        moves++;
    }
}

void scm__nodes_tick(struct scm *scm, int64_t now_ms)
{
    for (size_t i = 0; i < scm->n_nodes; i++) {
        scm__node_update(scm, scm->nodes[i], now_ms);
    }
}

/* ---- command queue ---- */

void scm__node_queue(struct scm *scm,
                     struct scm_node *n,
                     Ozone__Scm__CommandType type,
                     uint64_t container_id,
                     const char *pipeline_id)
{
    struct scm_command *c;
    const char *pid = pipeline_id != NULL ? pipeline_id : "";

    for (size_t i = 0; i < n->n_cmds; i++) {
        c = &n->cmds[i];
        if (c->type == type && c->container_id == container_id &&
            strcmp(c->pipeline_id, pid) == 0) {
            return;
        }
    }
    if (n->n_cmds >= SCM_MAX_NODE_COMMANDS) {
        log_warn(
            "command queue of datanode '%s' is full (%d commands): "
            "dropping a new command of type %d; it is queued again "
            "when the datanode reports",
            n->addr.uuid, SCM_MAX_NODE_COMMANDS, (int)type);
        return;
    }
    if (n->n_cmds == n->cap_cmds) {
        size_t cap = n->cap_cmds ? n->cap_cmds * 2 : 8;
        struct scm_command *cmds = realloc(n->cmds, cap * sizeof(*cmds));
        if (cmds == NULL) {
            log_error("out of memory queueing a command for datanode '%s'",
                      n->addr.uuid);
            return;
        }
        n->cmds = cmds;
        n->cap_cmds = cap;
    }
    c = &n->cmds[n->n_cmds++];
    memset(c, 0, sizeof(*c));
    c->id = scm->next_command_id++;
    c->type = type;
    c->container_id = container_id;
    oz_strlcpy(c->pipeline_id, pid, sizeof(c->pipeline_id));
}

static void drop_command(struct scm_node *n, size_t i)
{
    n->cmds[i] = n->cmds[n->n_cmds - 1];
    n->n_cmds--;
}

static bool node_reports_pipeline(const struct scm_node *n, const char *id)
{
    for (size_t i = 0; i < n->n_pipeline_ids; i++) {
        if (strcmp(n->pipeline_ids[i], id) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether the node's reports show the command took effect. */
static bool command_done(struct scm *scm,
                         const struct scm_node *n,
                         const struct scm_command *c)
{
    const struct scm_pipeline *p;
    const struct scm_container *ct;

    switch (c->type) {
        case OZONE__SCM__COMMAND_TYPE__CREATE_PIPELINE:
            p = scm__pipeline_find(scm, c->pipeline_id);
            return p == NULL || !scm__pipeline_active(p) ||
                   node_reports_pipeline(n, c->pipeline_id);
        case OZONE__SCM__COMMAND_TYPE__CLOSE_PIPELINE:
            return !node_reports_pipeline(n, c->pipeline_id);
        case OZONE__SCM__COMMAND_TYPE__CLOSE_CONTAINER:
            ct = scm__container_find(scm, c->container_id);
            if (ct == NULL) {
                return true;
            }
            for (size_t m = 0; m < ct->n_members; m++) {
                if (strcmp(ct->members[m], n->addr.uuid) == 0) {
                    return ct->reported[m] ==
                               OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED ||
                           ct->close_acked[m];
                }
            }
            return false;
        default:
            return false;
    }
}

static void apply_acks(struct scm *scm,
                       struct scm_node *n,
                       const uint64_t *ids,
                       size_t n_ids,
                       int64_t now_ms)
{
    for (size_t k = 0; k < n_ids; k++) {
        for (size_t i = 0; i < n->n_cmds; i++) {
            if (n->cmds[i].id != ids[k]) {
                continue;
            }
            if (n->cmds[i].type == OZONE__SCM__COMMAND_TYPE__CLOSE_CONTAINER) {
                scm__container_close_acked(scm, n, n->cmds[i].container_id,
                                           now_ms);
            }
            drop_command(n, i);
            break;
        }
    }
}

static void emit_due(struct scm *scm,
                     struct scm_node *n,
                     int64_t now_ms,
                     scm_emit_fn emit,
                     void *ctx)
{
    /* Resend a command the datanode has not acted on after a few
     * heartbeats; datanodes execute them idempotently. */
    int64_t resend_ms = scm->cfg.heartbeat_ms * 3;
    size_t sent = 0;

    if (resend_ms < 1000) {
        resend_ms = 1000;
    }
    for (size_t i = 0; i < n->n_cmds;) {
        struct scm_command *c = &n->cmds[i];
        if (command_done(scm, n, c)) {
            drop_command(n, i);
            continue;
        }
        if (sent < SCM_MAX_HB_COMMANDS &&
            (c->last_sent_ms == 0 || now_ms - c->last_sent_ms >= resend_ms)) {
            const struct scm_pipeline *p =
                c->pipeline_id[0] ? scm__pipeline_find(scm, c->pipeline_id)
                                  : NULL;
            c->last_sent_ms = now_ms;
            emit(ctx, c, p);
            sent++;
        }
        i++;
    }
}

/* ---- reports ---- */

static void apply_storage(struct scm_node *n,
                          Ozone__Hdds__StorageReport *const *r,
                          size_t count)
{
    n->n_storage = 0;
    for (size_t i = 0; i < count && n->n_storage < SCM_MAX_STORAGE; i++) {
        struct scm_storage *s = &n->storage[n->n_storage++];
        oz_strlcpy(s->location,
                   r[i]->storage_location ? r[i]->storage_location : "",
                   sizeof(s->location));
        s->capacity = r[i]->capacity;
        s->used = r[i]->used;
        s->remaining = r[i]->remaining;
        s->failed = r[i]->failed;
    }
}

static void apply_reports(struct scm *scm,
                          struct scm_node *n,
                          Ozone__Hdds__StorageReport *const *storage,
                          size_t n_storage,
                          Ozone__Hdds__ContainerReplicaReport *const *conts,
                          size_t n_conts,
                          char *const *pipes,
                          size_t n_pipes,
                          int64_t now_ms)
{
    apply_storage(n, storage, n_storage);
    n->n_pipeline_ids = 0;
    for (size_t i = 0; i < n_pipes; i++) {
        if (n->n_pipeline_ids < SCM_MAX_NODE_PIPELINES && pipes[i] != NULL &&
            strlen(pipes[i]) < SCM_ID_MAX) {
            oz_strlcpy(n->pipeline_ids[n->n_pipeline_ids++], pipes[i],
                       SCM_ID_MAX);
        }
    }
    n->container_count = n_conts;
    scm__pipelines_report(scm, n, pipes, n_pipes);
    scm__containers_report(scm, n, conts, n_conts, now_ms);
}

/* ---- registration and heartbeats ---- */

static int check_peer(struct scm *scm,
                      const Ozone__VersionHeader *hdr,
                      const char *uuid,
                      struct scm_error *err)
{
    if (hdr->component != OZONE__COMPONENT__DATANODE) {
        scm__error(err, RPC_STATUS_INVALID_ARGUMENT,
                   OZONE__RESULT_CODE__INVALID_ARGUMENT,
                   "only datanodes register and heartbeat; '%s' is a %s",
                   hdr->node_id ? hdr->node_id : "",
                   rpc_component_name(hdr->component));
        return OZ_EINVAL;
    }
    if (hdr->cluster_id == NULL ||
        strcmp(hdr->cluster_id, scm->cluster_id) != 0) {
        scm__error(err, RPC_STATUS_FAILED_PRECONDITION,
                   OZONE__RESULT_CODE__CLUSTER_ID_MISMATCH,
                   "datanode '%s' belongs to cluster '%s' but this SCM "
                   "manages cluster '%s': point it at its own SCM "
                   "(ozone.scm.names) or give it empty storage to join "
                   "this cluster",
                   uuid, hdr->cluster_id ? hdr->cluster_id : "",
                   scm->cluster_id);
        return OZ_EREFUSED;
    }
    return 0;
}

static int check_details(const Ozone__Hdds__DatanodeDetails *d,
                         struct scm_error *err)
{
    const char *bad = NULL;

    if (d == NULL) {
        bad = "no datanode details";
    } else if (d->uuid == NULL || d->uuid[0] == '\0' ||
               strlen(d->uuid) >= SCM_ID_MAX) {
        bad = "the uuid is empty or longer than 63 bytes";
    } else if (d->ip_address == NULL || d->ip_address[0] == '\0' ||
               strlen(d->ip_address) >= SCM_HOST_MAX) {
        bad = "the ip address is empty or too long";
    } else if ((d->hostname && strlen(d->hostname) >= SCM_HOST_MAX) ||
               (d->network_location &&
                strlen(d->network_location) >= SCM_HOST_MAX)) {
        bad = "the host name or network location is too long";
    } else if (d->container_port == 0 || d->container_port > 65535 ||
               d->http_port > 65535) {
        bad = "the container port is not 1 to 65535";
    }
    if (bad != NULL) {
        scm__error(err, RPC_STATUS_INVALID_ARGUMENT,
                   OZONE__RESULT_CODE__INVALID_ARGUMENT,
                   "invalid registration of datanode '%s': %s",
                   d && d->uuid ? d->uuid : "", bad);
        return OZ_EINVAL;
    }
    return 0;
}

static void copy_details(struct scm_node_addr *a,
                         const Ozone__Hdds__DatanodeDetails *d)
{
    oz_strlcpy(a->uuid, d->uuid, sizeof(a->uuid));
    oz_strlcpy(a->hostname, d->hostname ? d->hostname : "",
               sizeof(a->hostname));
    oz_strlcpy(a->ip, d->ip_address, sizeof(a->ip));
    a->container_port = d->container_port;
    a->http_port = d->http_port;
    oz_strlcpy(a->location, d->network_location ? d->network_location : "",
               sizeof(a->location));
}

/* After (re-)registration: commands lost with an SCM restart or queued
 * while the node was away are queued again from the persisted state. */
static void requeue_for_node(struct scm *scm, struct scm_node *n)
{
    for (size_t i = 0; i < scm->n_pipelines; i++) {
        struct scm_pipeline *p = scm->pipelines[i];
        if (p->state == OZONE__HDDS__PIPELINE_STATE__PIPELINE_ALLOCATED &&
            scm__pipeline_has(p, n->addr.uuid)) {
            scm__node_queue(scm, n, OZONE__SCM__COMMAND_TYPE__CREATE_PIPELINE,
                            0, p->id);
        }
    }
    for (size_t i = 0; i < scm->n_containers; i++) {
        struct scm_container *c = &scm->containers[i];
        if (c->state != OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING) {
            continue;
        }
        for (size_t m = 0; m < c->n_members; m++) {
            if (strcmp(c->members[m], n->addr.uuid) == 0) {
                scm__node_queue(scm, n,
                                OZONE__SCM__COMMAND_TYPE__CLOSE_CONTAINER,
                                c->id, NULL);
            }
        }
    }
}

int scm_register_datanode(struct scm *scm,
                          const Ozone__VersionHeader *hdr,
                          const Ozone__Scm__RegisterRequest *req,
                          int64_t now_ms,
                          uint64_t now_wall_ms,
                          struct scm_error *err)
{
    const Ozone__Hdds__DatanodeDetails *d = req->datanode;
    struct scm_node *n;
    int rc;

    if ((rc = check_details(d, err)) != 0 ||
        (rc = check_peer(scm, hdr, d->uuid, err)) != 0 ||
        (rc = scm__fence(scm, hdr, d->uuid, err)) != 0) {
        return rc;
    }
    pthread_mutex_lock(&scm->lock);
    n = scm__node_find(scm, d->uuid);
    if (n == NULL && (n = node_add(scm, d->uuid)) == NULL) {
        pthread_mutex_unlock(&scm->lock);
        scm__error(err, RPC_STATUS_RESOURCE_EXHAUSTED,
                   OZONE__RESULT_CODE__INTERNAL_ERROR,
                   "cannot register datanode '%s': SCM tracks at most %d "
                   "datanodes",
                   d->uuid, SCM_MAX_NODES);
        return OZ_ENOMEM;
    }
    if (n->state != NS(NODE_STATE_UNSPECIFIED)) {
        log_info("datanode '%s' registers again at %s:%u (was %s, %s:%u)",
                 d->uuid, d->ip_address, d->container_port,
                 scm__node_state_name(n->state), n->addr.ip,
                 n->addr.container_port);
    }
    copy_details(&n->addr, d);
    n->software_version = hdr->software_version;
    n->apparent_version = hdr->apparent_version;
    n->last_hb_ms = now_ms;
    n->last_hb_wall_ms = now_wall_ms;
    scm__pipelines_update_member(scm, &n->addr);
    scm__node_update(scm, n, now_ms);
    requeue_for_node(scm, n);
    apply_reports(scm, n, req->storage, req->n_storage, req->containers,
                  req->n_containers, req->pipeline_ids, req->n_pipeline_ids,
                  now_ms);
    pthread_mutex_unlock(&scm->lock);
    return 0;
}

static void emit_reregister(struct scm *scm, scm_emit_fn emit, void *ctx)
{
    struct scm_command c;

    memset(&c, 0, sizeof(c));
    c.type = OZONE__SCM__COMMAND_TYPE__REREGISTER;
    c.id = scm->next_command_id++;
    emit(ctx, &c, NULL);
}

int scm_heartbeat(struct scm *scm,
                  const Ozone__VersionHeader *hdr,
                  const Ozone__Scm__HeartbeatRequest *req,
                  int64_t now_ms,
                  uint64_t now_wall_ms,
                  scm_emit_fn emit,
                  void *emit_ctx,
                  struct scm_error *err)
{
    const char *uuid = req->datanode_uuid ? req->datanode_uuid : "";
    struct scm_node *n;
    int rc;

    if (uuid[0] == '\0' || strlen(uuid) >= SCM_ID_MAX) {
        scm__error(err, RPC_STATUS_INVALID_ARGUMENT,
                   OZONE__RESULT_CODE__INVALID_ARGUMENT,
                   "heartbeat without a valid datanode uuid (1 to 63 "
                   "bytes)");
        return OZ_EINVAL;
    }
    if ((rc = check_peer(scm, hdr, uuid, err)) != 0 ||
        (rc = scm__fence(scm, hdr, uuid, err)) != 0) {
        return rc;
    }
    pthread_mutex_lock(&scm->lock);
    n = scm__node_find(scm, uuid);
    if (n == NULL) {
        log_info(
            "heartbeat from unknown datanode '%s': asking it to "
            "register",
            uuid);
        emit_reregister(scm, emit, emit_ctx);
        pthread_mutex_unlock(&scm->lock);
        return 0;
    }
    if (n->state == NS(DEAD)) {
        /* It comes back (DESIGN.md §7): revive it on this heartbeat, and
         * ask for a registration so that changed details are learnt. */
        emit_reregister(scm, emit, emit_ctx);
    }
    n->software_version = hdr->software_version;
    n->apparent_version = hdr->apparent_version;
    n->last_hb_ms = now_ms;
    n->last_hb_wall_ms = now_wall_ms;
    scm__node_update(scm, n, now_ms);
    apply_acks(scm, n, req->completed_command_ids, req->n_completed_command_ids,
               now_ms);
    apply_reports(scm, n, req->storage, req->n_storage, req->containers,
                  req->n_containers, req->pipeline_ids, req->n_pipeline_ids,
                  now_ms);
    emit_due(scm, n, now_ms, emit, emit_ctx);
    /* After the queued commands: CLOSE_CONTAINER runs first on the
     * datanode, so a finalization that waits for closed containers can
     * succeed in the same heartbeat (DESIGN.md §6.5). */
    scm__emit_finalize(scm, n, emit, emit_ctx);
    pthread_mutex_unlock(&scm->lock);
    return 0;
}
