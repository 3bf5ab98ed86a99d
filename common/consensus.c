/* consensus: one canonical raft 0.15 server on its own thread and uv loop
 * (contract in consensus.h; DESIGN.md §4, §8; PITFALLS.md "canonical raft
 * 0.15").
 *
 * Threads. The raft thread runs c->loop and is the only one touching
 * c->raft, c->io and the transport. Other threads hand it work as `struct
 * op`s on a mutex-protected queue followed by uv_async_send, and read a
 * status copy (c->status) that the raft thread refreshes under the same
 * mutex after every loop iteration (uv_check) and before completing an
 * operation. Nothing of this module holds c->mu while calling user code.
 *
 * Memory. An op is malloc'd by the caller's thread and freed by
 * consensus__op_complete on the raft thread after its callback; raft holds
 * pointers into it (the embedded raft request) until raft's callback fires,
 * which raft guarantees to do at the latest during raft_close. Ops that
 * raft has seen sit on a "live" list, so anything left after the loop ends
 * is still completed and freed (a safety net; it should stay empty).
 *
 * Files: this one runs the loop, the operations and open/close;
 * consensus_submit.c hands work over (and the *_wait variants),
 * consensus_status.c the status copy and queries, consensus_fsm.c frames
 * and FSM glue, consensus_snapshot.c snapshots on demand,
 * consensus_transport.c the TCP_NODELAY transport.
 */
#include "consensus.h"
#include "consensus_internal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <uv.h>

#include "err.h"
#include "log.h"

/* ---- small helpers ---- */

int consensus__map_raft_err(int rv)
{
    switch (rv) {
        case 0:
            return 0;
        case RAFT_NOMEM:
            return OZ_ENOMEM;
        case RAFT_NOTLEADER:
        case RAFT_LEADERSHIPLOST:
            return OZ_ENOTLEADER;
        case RAFT_SHUTDOWN:
        case RAFT_CANCELED:
        case RAFT_NOCONNECTION:
            return OZ_EUNAVAILABLE;
        case RAFT_BADID:
        case RAFT_BADROLE:
        case RAFT_INVALID:
            return OZ_EINVAL;
        case RAFT_DUPLICATEID:
        case RAFT_DUPLICATEADDRESS:
            return OZ_EEXIST;
        case RAFT_CANTCHANGE:
        case RAFT_BUSY:
            return OZ_ESTATE;
        case RAFT_CORRUPT:
        case RAFT_MALFORMED:
            return OZ_ECORRUPT;
        case RAFT_NOTFOUND:
            return OZ_ENOTFOUND;
        case RAFT_TOOBIG:
        case RAFT_NAMETOOLONG:
            return OZ_ETOOBIG;
        default:
            return OZ_EIO;
    }
}

static void live_add(struct consensus *c, struct op *op)
{
    op->live_prev = NULL;
    op->live_next = c->live;
    if (c->live != NULL) {
        c->live->live_prev = op;
    }
    c->live = op;
}

void consensus__live_remove(struct consensus *c, struct op *op)
{
    if (op->live_prev != NULL) {
        op->live_prev->live_next = op->live_next;
    } else if (c->live == op) {
        c->live = op->live_next;
    }
    if (op->live_next != NULL) {
        op->live_next->live_prev = op->live_prev;
    }
    op->live_prev = op->live_next = NULL;
}

bool consensus__on_raft_thread(const struct consensus *c)
{
    return c->thread_started && pthread_equal(pthread_self(), c->thread);
}

/* ---- operations (raft thread) ---- */

void consensus__op_complete(struct op *op,
                            int status,
                            uint64_t index,
                            int result)
{
    struct consensus *c = op->c;

    consensus__live_remove(c, op);
    consensus__status_refresh(c);
    if (op->buf.base != NULL) {
        raft_free(op->buf.base);
        op->buf.base = NULL;
    }
    if (op->submit_cb != NULL) {
        op->submit_cb(op->arg, status, index, result);
    } else if (op->done_cb != NULL) {
        op->done_cb(op->arg, status);
    }
    free(op);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct op *op = req->data;

    if (status == 0) {
        consensus__op_complete(op, 0, req->index, (int)(intptr_t)result);
    } else {
        consensus__op_complete(op, consensus__map_raft_err(status), 0, 0);
    }
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    consensus__op_complete(req->data, consensus__map_raft_err(status), 0, 0);
}

static void transfer_cb(struct raft_transfer *req)
{
    struct op *op = req->data;
    struct consensus *c = op->c;
    int status, behind = 0;

    if (c->loop_closing) {
        status = OZ_EUNAVAILABLE;
    } else if (raft_state(&c->raft) == RAFT_LEADER) {
        status = OZ_ETIMEDOUT;
    } else {
        status = 0;
    }
    if (status == OZ_ETIMEDOUT) {
        const struct raft_configuration *conf = &c->raft.configuration;
        raft_index last = raft_last_index(&c->raft), match = last;
        for (unsigned i = 0; i < conf->n; i++) {
            if (conf->servers[i].id == op->id) {
                match = c->raft.leader_state.progress[i].match_index;
            }
        }
        /* raft 0.15 sends TimeoutNow only to a target whose log matches
         * ours, and gives up after one election timeout. */
        behind = match < last
                     ? (last - match > INT_MAX ? INT_MAX : (int)(last - match))
                     : 0;
        log_info("consensus '%s': leadership transfer to %" PRIu64
                 " lapsed after the %u ms election timeout: it holds the "
                 "log up to index %llu of %llu (%s)",
                 c->name, op->id, c->election_timeout_ms, match, last,
                 behind > 0 ? "not caught up" : "did not take over");
    } else {
        log_info("consensus '%s': leadership transfer to %" PRIu64 " %s",
                 c->name, op->id, status == 0 ? "done" : oz_strerror(status));
    }
    consensus__op_complete(op, status, op->id, behind);
}

static void wake(struct consensus *c)
{
    pthread_mutex_lock(&c->mu);
    uv_async_send(&c->async);
    pthread_mutex_unlock(&c->mu);
}

static void change_done(struct op *op, int status)
{
    struct consensus *c = op->c;
    struct op *next;

    if (status == 0) {
        log_info("consensus '%s': %s of server %" PRIu64 " committed", c->name,
                 op->kind == OP_ADD ? "addition" : "removal", op->id);
    } else {
        log_warn("consensus '%s': %s of server %" PRIu64 " failed: %s", c->name,
                 op->kind == OP_ADD ? "addition" : "removal", op->id,
                 oz_strerror(status));
    }
    c->change_busy = false;
    consensus__op_complete(op, status, 0, 0);
    if (!c->loop_closing && (next = consensus__list_pop(&c->changes)) != NULL) {
        c->change_busy = true;
        live_add(c, next);
        consensus__list_push(&c->deferred, next);
        wake(c);
    }
}

static void change_step(struct op *op);

static void change_cb(struct raft_change *req, int status)
{
    struct op *op = req->data;
    struct consensus *c = op->c;

    if (status != 0) {
        change_done(op, consensus__map_raft_err(status));
    } else if (op->kind == OP_ADD && op->step == 0 && !c->loop_closing) {
        log_info("consensus '%s': server %" PRIu64
                 " added as spare, promoting to voter",
                 c->name, op->id);
        /* Resume outside raft's callback: one change at a time. */
        consensus__list_push(&c->deferred, op);
        wake(c);
    } else {
        change_done(op, c->loop_closing ? OZ_EUNAVAILABLE : 0);
    }
}

static const struct raft_server *find_server(struct consensus *c, uint64_t id)
{
    const struct raft_configuration *conf = &c->raft.configuration;
    unsigned i;

    for (i = 0; i < conf->n; i++) {
        if (conf->servers[i].id == id) {
            return &conf->servers[i];
        }
    }
    return NULL;
}

static void change_step(struct op *op)
{
    struct consensus *c = op->c;
    struct raft *r = &c->raft;
    const struct raft_server *s = find_server(c, op->id);
    int rv;

    if (c->loop_closing) {
        change_done(op, OZ_EUNAVAILABLE);
        return;
    }
    if (raft_state(r) != RAFT_LEADER) {
        change_done(op, OZ_ENOTLEADER);
        return;
    }
    op->req.change.data = op;
    if (op->kind == OP_REMOVE) {
        if (s == NULL) {
            change_done(op, OZ_ENOTFOUND);
            return;
        }
        if (op->id == c->id) {
            change_done(op, OZ_EINVAL);
            return;
        }
        rv = raft_remove(r, &op->req.change, op->id, change_cb);
    } else if (s == NULL) {
        op->step = 0;
        rv = raft_add(r, &op->req.change, op->id, op->raft_address, change_cb);
    } else if (strcmp(s->address, op->raft_address) != 0) {
        change_done(op, OZ_EEXIST);
        return;
    } else if (s->role == RAFT_VOTER) {
        change_done(op, 0);
        return;
    } else {
        op->step = 1;
        rv = raft_assign(r, &op->req.change, op->id, RAFT_VOTER, change_cb);
    }
    if (rv != 0) {
        change_done(op, consensus__map_raft_err(rv));
    }
}

/* The voter to hand leadership to when the caller does not care: one we
 * heard from within the last election timeout, with the longest log (after
 * a barrier, one that acknowledged it), preferring pipeline replication.
 * raft 0.15's own choice (id 0) may pick a server that is down. */
static uint64_t pick_transferee(struct consensus *c, uint64_t exclude)
{
    struct raft *r = &c->raft;
    const struct raft_configuration *conf = &r->configuration;
    uint64_t best = 0;
    raft_index best_match = 0;
    bool best_pipeline = false;
    unsigned i;

    if (raft_state(r) != RAFT_LEADER) {
        return 0;
    }
    for (i = 0; i < conf->n; i++) {
        const struct raft_progress *p = &r->leader_state.progress[i];
        bool pipeline = p->state == 1; /* raft's PROGRESS__PIPELINE */
        if (conf->servers[i].id == c->id || conf->servers[i].id == exclude ||
            conf->servers[i].role != RAFT_VOTER || !p->recent_recv) {
            continue;
        }
        if (best == 0 || p->match_index > best_match ||
            (p->match_index == best_match && pipeline && !best_pipeline)) {
            best = conf->servers[i].id;
            best_match = p->match_index;
            best_pipeline = pipeline;
        }
    }
    return best;
}

static void on_raft_closed(struct raft *r)
{
    struct consensus *c = r->data;

    raft_uv_close(&c->io);
    consensus__transport_release(&c->xport);
    c->raft_closed = true;
    pthread_mutex_lock(&c->mu);
    c->status.role = CONSENSUS_UNAVAILABLE;
    c->status.leader_id = 0;
    c->status.leader_name[0] = '\0';
    c->status.leader_address[0] = '\0';
    /* No enqueue can race: c->closing was set before the close op. */
    uv_close((uv_handle_t *)&c->async, NULL);
    pthread_mutex_unlock(&c->mu);
    uv_close((uv_handle_t *)&c->check, NULL);
    log_info("consensus '%s': stopped", c->name);
}

void consensus__dispatch(struct consensus *c, struct op *op)
{
    struct raft *r = &c->raft;
    int rv = 0;

    if (op->kind == OP_CLOSE) {
        struct op *pending;

        c->loop_closing = true;
        consensus__snapshot_cancel(c, OZ_EUNAVAILABLE);
        while ((pending = consensus__list_pop(&c->deferred)) != NULL) {
            consensus__op_complete(pending, OZ_EUNAVAILABLE, 0, 0);
        }
        while ((pending = consensus__list_pop(&c->changes)) != NULL) {
            live_add(c, pending);
            consensus__op_complete(pending, OZ_EUNAVAILABLE, 0, 0);
        }
        raft_close(r, on_raft_closed);
        return;
    }
    live_add(c, op);
    if (c->loop_closing) {
        consensus__op_complete(op, OZ_EUNAVAILABLE, 0, 0);
        return;
    }
    switch (op->kind) {
        case OP_SUBMIT:
            op->req.apply.data = op;
            rv = raft_apply(r, &op->req.apply, &op->buf, 1, apply_cb);
            if (rv == 0) {
                op->buf.base = NULL; /* raft owns it now */
            }
            break;
        case OP_BARRIER:
            op->req.barrier.data = op;
            rv = raft_barrier(r, &op->req.barrier, barrier_cb);
            break;
        case OP_TRANSFER:
            if (op->id == 0) {
                op->id = pick_transferee(c, op->exclude);
            }
            op->req.transfer.data = op;
            rv = raft_transfer(r, &op->req.transfer, op->id, transfer_cb);
            if (rv == 0) {
                log_info("consensus '%s': transferring leadership to %" PRIu64
                         " in term %llu",
                         c->name, op->id, r->current_term);
            }
            break;
        case OP_SNAPSHOT:
            consensus__snapshot_start(c, op);
            return;
        case OP_ADD:
        case OP_REMOVE:
            if (c->change_busy) {
                consensus__live_remove(c, op);
                consensus__list_push(&c->changes, op);
            } else {
                c->change_busy = true;
                change_step(op);
            }
            return;
        case OP_CLOSE:
            break;
    }
    if (rv != 0) {
        consensus__op_complete(op, consensus__map_raft_err(rv), 0, 0);
    }
}

static void async_cb(uv_async_t *handle)
{
    struct consensus *c = handle->data;
    struct op_list batch;
    struct op *op;

    /* Resumed membership steps first: they are already live. */
    while ((op = consensus__list_pop(&c->deferred)) != NULL) {
        change_step(op);
    }
    pthread_mutex_lock(&c->mu);
    batch = c->queue;
    c->queue.head = c->queue.tail = NULL;
    pthread_mutex_unlock(&c->mu);
    while ((op = consensus__list_pop(&batch)) != NULL) {
        consensus__dispatch(c, op);
    }
}

static void check_cb(uv_check_t *handle)
{
    struct consensus *c = handle->data;

    if (!c->loop_closing && !c->raft_closed) {
        consensus__snapshot_progress(c);
    }
    consensus__status_refresh(c);
}

static void *loop_main(void *arg)
{
    struct consensus *c = arg;

    uv_run(&c->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- open and close ---- */

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t i, n = oz_strlcpy(buf, path, sizeof(buf));

    if (n >= sizeof(buf)) {
        return -1;
    }
    for (i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char saved = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                return -1;
            }
            buf[i] = saved;
        }
    }
    return 0;
}

static int check_peer(const char *what,
                      uint64_t id,
                      const char *name,
                      const char *address,
                      char *errmsg)
{
    if (id == 0) {
        oz_errmsg_printf(errmsg, "%s: raft id must be > 0", what);
        return OZ_ECONFIG;
    }
    if (name == NULL || name[0] == '\0' || strchr(name, '@') != NULL ||
        strlen(name) >= CONSENSUS_NAME_MAX) {
        oz_errmsg_printf(errmsg,
                         "%s: name '%s' is invalid: give 1 to %d characters "
                         "without '@'",
                         what, name != NULL ? name : "",
                         CONSENSUS_NAME_MAX - 1);
        return OZ_ECONFIG;
    }
    if (address == NULL || strchr(address, ':') == NULL ||
        strlen(address) >= CONSENSUS_ADDRESS_MAX) {
        oz_errmsg_printf(errmsg,
                         "%s: address '%s' of '%s' is invalid: give "
                         "host:port",
                         what, address != NULL ? address : "", name);
        return OZ_ECONFIG;
    }
    return 0;
}

static int check_config(const struct consensus_config *cfg, char *errmsg)
{
    bool self_found = false;
    unsigned i, j;
    int rc;

    rc = check_peer("consensus config", cfg->id, cfg->name, cfg->address,
                    errmsg);
    if (rc != 0) {
        return rc;
    }
    if (cfg->data_dir == NULL || cfg->data_dir[0] == '\0') {
        oz_errmsg_printf(errmsg, "consensus config: data dir is missing");
        return OZ_ECONFIG;
    }
    if (cfg->fsm.apply == NULL || cfg->fsm.snapshot == NULL ||
        cfg->fsm.restore == NULL) {
        oz_errmsg_printf(errmsg,
                         "consensus config: fsm apply, snapshot and restore "
                         "are required");
        return OZ_ECONFIG;
    }
    if (cfg->n_cluster > CONSENSUS_MAX_MEMBERS ||
        (cfg->n_cluster > 0 && cfg->cluster == NULL)) {
        oz_errmsg_printf(errmsg,
                         "consensus config: cluster of %u servers is invalid "
                         "(at most %d)",
                         cfg->n_cluster, CONSENSUS_MAX_MEMBERS);
        return OZ_ECONFIG;
    }
    for (i = 0; i < cfg->n_cluster; i++) {
        const struct consensus_peer *p = &cfg->cluster[i];
        rc =
            check_peer("consensus cluster", p->id, p->name, p->address, errmsg);
        if (rc != 0) {
            return rc;
        }
        for (j = 0; j < i; j++) {
            if (cfg->cluster[j].id == p->id ||
                strcmp(cfg->cluster[j].name, p->name) == 0) {
                oz_errmsg_printf(errmsg,
                                 "consensus cluster: server '%s' (id %" PRIu64
                                 ") is listed twice",
                                 p->name, p->id);
                return OZ_ECONFIG;
            }
        }
        if (p->id == cfg->id) {
            if (strcmp(p->name, cfg->name) != 0 ||
                strcmp(p->address, cfg->address) != 0) {
                oz_errmsg_printf(errmsg,
                                 "consensus cluster: id %" PRIu64
                                 " is '%s' at %s there but this server is "
                                 "'%s' at %s",
                                 p->id, p->name, p->address, cfg->name,
                                 cfg->address);
                return OZ_ECONFIG;
            }
            self_found = true;
        }
    }
    if (cfg->mode == CONSENSUS_BOOTSTRAP && cfg->n_cluster > 0 && !self_found) {
        oz_errmsg_printf(errmsg,
                         "consensus cluster: this server '%s' (id %" PRIu64
                         ") is not in the initial cluster",
                         cfg->name, cfg->id);
        return OZ_ECONFIG;
    }
    return 0;
}

/* The best text raft left about failure rv. */
static const char *raft_why(struct consensus *c, int rv)
{
    const char *msg = raft_errmsg(&c->raft);

    if (msg == NULL || msg[0] == '\0') {
        msg = c->io.errmsg;
    }
    if (msg[0] == '\0') {
        msg = raft_strerror(rv);
    }
    return msg;
}

static int bootstrap(struct consensus *c,
                     const struct consensus_config *cfg,
                     char *errmsg)
{
    struct raft_configuration conf;
    char addr[RAFT_ADDRESS_MAX];
    unsigned i;
    int rv = 0;

    raft_configuration_init(&conf);
    if (cfg->n_cluster == 0) {
        rv = raft_configuration_add(&conf, c->id, c->raft_address, RAFT_VOTER);
    }
    for (i = 0; i < cfg->n_cluster && rv == 0; i++) {
        snprintf(addr, sizeof(addr), "%s@%s", cfg->cluster[i].name,
                 cfg->cluster[i].address);
        rv =
            raft_configuration_add(&conf, cfg->cluster[i].id, addr, RAFT_VOTER);
    }
    if (rv == 0) {
        rv = raft_bootstrap(&c->raft, &conf);
        if (rv == 0) {
            log_info("consensus '%s': bootstrapped a cluster of %u servers",
                     c->name, conf.n);
        } else if (rv == RAFT_CANTBOOTSTRAP) {
            rv = 0; /* existing state: a restart */
        }
    }
    raft_configuration_close(&conf);
    if (rv != 0) {
        oz_errmsg_printf(errmsg, "bootstrap of '%s' in '%s' failed: %s",
                         c->name, c->data_dir, raft_why(c, rv));
    }
    return rv;
}

/* Closes an initialized raft from the opener's thread (no loop thread). */
static void abort_after_raft_init(struct consensus *c)
{
    raft_close(&c->raft, on_raft_closed);
    uv_run(&c->loop, UV_RUN_DEFAULT);
}

static void free_consensus(struct consensus *c)
{
    if (uv_loop_close(&c->loop) != 0) {
        log_warn("consensus '%s': event loop still had handles at close",
                 c->name);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->data_dir);
    free(c);
}

int consensus_open(const struct consensus_config *cfg,
                   struct consensus **out,
                   char *errmsg)
{
    const char *bind;
    struct consensus *c;
    int rv;

    *out = NULL;
    errmsg[0] = '\0';
    rv = check_config(cfg, errmsg);
    if (rv != 0) {
        return rv;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->data_dir = strdup(cfg->data_dir)) == NULL) {
        free(c);
        return OZ_ENOMEM;
    }
    c->id = cfg->id;
    oz_strlcpy(c->name, cfg->name, sizeof(c->name));
    oz_strlcpy(c->address, cfg->address, sizeof(c->address));
    snprintf(c->raft_address, sizeof(c->raft_address), "%s@%s", cfg->name,
             cfg->address);
    c->fsm = cfg->fsm;
    c->election_timeout_ms =
        cfg->election_timeout_ms > 0 ? cfg->election_timeout_ms : 1000;
    c->seen_state = -1;
    pthread_mutex_init(&c->mu, NULL);
    c->close_op.kind = OP_CLOSE;
    c->close_op.c = c;

    if (mkdir_p(c->data_dir) != 0) {
        oz_errmsg_printf(errmsg, "cannot create raft dir '%s': %s", c->data_dir,
                         strerror(errno));
        pthread_mutex_destroy(&c->mu);
        free(c->data_dir);
        free(c);
        return OZ_EIO;
    }
    rv = uv_loop_init(&c->loop);
    if (rv != 0) {
        oz_errmsg_printf(errmsg, "uv_loop_init: %s", uv_strerror(rv));
        pthread_mutex_destroy(&c->mu);
        free(c->data_dir);
        free(c);
        return OZ_EIO;
    }
    bind = cfg->bind_address != NULL ? cfg->bind_address : cfg->address;
    rv = consensus__transport_init(&c->xport, &c->loop, bind);
    if (rv != 0) {
        oz_errmsg_printf(errmsg, "raft transport on '%s': %s", bind,
                         raft_strerror(rv));
        goto err_after_loop;
    }
    rv = raft_uv_init(&c->io, &c->loop, c->data_dir, &c->xport.outer);
    if (rv != 0) {
        oz_errmsg_printf(errmsg, "raft storage '%s': %s", c->data_dir,
                         c->io.errmsg);
        goto err_after_transport;
    }
    c->raft_fsm.version = 1;
    c->raft_fsm.data = c;
    c->raft_fsm.apply = consensus__fsm_apply;
    c->raft_fsm.snapshot = consensus__fsm_snapshot;
    c->raft_fsm.restore = consensus__fsm_restore;
    rv = raft_init(&c->raft, &c->io, &c->raft_fsm, c->id, c->raft_address);
    if (rv != 0) {
        oz_errmsg_printf(errmsg, "raft init of '%s' in '%s': %s", c->name,
                         c->data_dir, raft_why(c, rv));
        goto err_after_io;
    }
    c->raft.data = c;
    raft_set_election_timeout(&c->raft, c->election_timeout_ms);
    c->heartbeat_timeout_ms =
        cfg->heartbeat_timeout_ms > 0 ? cfg->heartbeat_timeout_ms : 100;
    c->snapshot_threshold =
        cfg->snapshot_threshold > 0 ? cfg->snapshot_threshold : 1024;
    c->snapshot_trailing =
        cfg->snapshot_trailing > 0 ? cfg->snapshot_trailing : 2048;
    raft_set_heartbeat_timeout(&c->raft, c->heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&c->raft, c->snapshot_threshold);
    raft_set_snapshot_trailing(&c->raft, c->snapshot_trailing);
    raft_set_pre_vote(&c->raft, true);
    raft_uv_set_connect_retry_delay(&c->io, 250);

    if (cfg->mode == CONSENSUS_BOOTSTRAP) {
        rv = bootstrap(c, cfg, errmsg);
        if (rv != 0) {
            goto err_after_raft;
        }
    }
    rv = raft_start(&c->raft);
    if (rv != 0) {
        const char *why = raft_why(c, rv);

        if (rv == RAFT_CORRUPT || strstr(why, "segment") != NULL) {
            /* A torn or truncated log file: never repaired silently (an
             * entry this node acknowledged may be in it), but the way out
             * is named: the rest of the group holds the log. */
            oz_errmsg_printf(
                errmsg,
                "raft log '%s' is damaged: move it aside and restart "
                "this node to rejoin and catch up from the leader by "
                "snapshot (%s)",
                c->data_dir, why);
        } else {
            oz_errmsg_printf(errmsg,
                             "raft start of '%s' failed: %s: check that %s is "
                             "free and '%s' readable",
                             c->name, why, bind, c->data_dir);
        }
        goto err_after_raft;
    }
    uv_async_init(&c->loop, &c->async, async_cb);
    c->async.data = c;
    uv_check_init(&c->loop, &c->check);
    c->check.data = c;
    uv_check_start(&c->check, check_cb);
    consensus__status_refresh(c);
    rv = pthread_create(&c->thread, NULL, loop_main, c);
    if (rv != 0) {
        oz_errmsg_printf(errmsg, "cannot start the raft thread: %s",
                         strerror(rv));
        abort_after_raft_init(c); /* also closes async and check */
        free_consensus(c);
        return OZ_ENOMEM;
    }
    c->thread_started = true;
    log_info("consensus '%s': started (id %" PRIu64 ", %s, dir '%s')", c->name,
             c->id, c->address, c->data_dir);
    *out = c;
    return 0;

err_after_raft:
    /* on_raft_closed closes async and check: init them so it can. */
    uv_async_init(&c->loop, &c->async, async_cb);
    uv_check_init(&c->loop, &c->check);
    abort_after_raft_init(c);
    free_consensus(c);
    return consensus__map_raft_err(rv);

err_after_io:
    raft_uv_close(&c->io);
err_after_transport:
    consensus__transport_release(&c->xport);
err_after_loop:
    uv_run(&c->loop, UV_RUN_DEFAULT);
    free_consensus(c);
    return rv == RAFT_NOMEM ? OZ_ENOMEM : OZ_EIO;
}

void consensus_close(struct consensus *c)
{
    struct op *op;

    if (c == NULL) {
        return;
    }
    if (consensus__on_raft_thread(c)) {
        log_error(
            "consensus '%s': consensus_close called on the raft "
            "thread (%s:%d)",
            c->name, __FILE__, __LINE__);
        abort();
    }
    consensus__hand_over(c);
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    consensus__list_push(&c->queue, &c->close_op);
    uv_async_send(&c->async);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);

    /* Safety net: raft promises to fire every callback by the end of
     * raft_close, so this should find nothing. */
    while ((op = c->live) != NULL) {
        log_warn("consensus '%s': request without completion at close",
                 c->name);
        consensus__op_complete(op, OZ_EUNAVAILABLE, 0, 0);
    }
    free_consensus(c);
}
