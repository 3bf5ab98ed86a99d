/* consensus: handing work to the raft thread from any thread, and the
 * blocking (*_wait) variants built on a reference-counted waiter. */
#include "consensus.h"
#include "consensus_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"

/* ---- submitting (any thread) ---- */

struct op *consensus__op_new(struct consensus *c, enum op_kind kind)
{
    struct op *op = calloc(1, sizeof(*op));

    if (op != NULL) {
        op->kind = kind;
        op->c = c;
    }
    return op;
}

/* Takes ownership of op in every case; on failure it is freed (with its
 * frame) and its callback is not called. */
int consensus__enqueue(struct consensus *c, struct op *op)
{
    pthread_mutex_lock(&c->mu);
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        if (op->buf.base != NULL) {
            raft_free(op->buf.base);
        }
        free(op);
        return OZ_EUNAVAILABLE;
    }
    consensus__list_push(&c->queue, op);
    /* Under the lock so that it cannot race with uv_close (on_raft_closed). */
    uv_async_send(&c->async);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int consensus_submit(struct consensus *c,
                     uint32_t type,
                     const void *payload,
                     size_t len,
                     consensus_submit_cb cb,
                     void *arg)
{
    struct op *op;
    size_t size;

    if (c == NULL || cb == NULL || (payload == NULL && len > 0)) {
        return OZ_EINVAL;
    }
    if (len > CONSENSUS_MAX_ENTRY) {
        return OZ_ETOOBIG;
    }
    op = consensus__op_new(c, OP_SUBMIT);
    if (op == NULL) {
        return OZ_ENOMEM;
    }
    size = consensus_frame_size(len);
    /* PITFALLS.md: raft 0.15 needs entry lengths that are multiples of 8
     * and buffers from raft_malloc (raft frees them). */
    op->buf.base = raft_malloc(size);
    if (op->buf.base == NULL) {
        free(op);
        return OZ_ENOMEM;
    }
    op->buf.len = size;
    consensus_frame_encode(op->buf.base, type, payload, len);
    op->submit_cb = cb;
    op->arg = arg;
    return consensus__enqueue(c, op);
}

static int submit_done_op(struct consensus *c,
                          enum op_kind kind,
                          uint64_t id,
                          const char *name,
                          const char *address,
                          consensus_done_cb cb,
                          void *arg)
{
    struct op *op;

    if (c == NULL) {
        return OZ_EINVAL;
    }
    op = consensus__op_new(c, kind);
    if (op == NULL) {
        return OZ_ENOMEM;
    }
    op->id = id;
    op->done_cb = cb;
    op->arg = arg;
    if (kind == OP_ADD) {
        if (id == 0 || name == NULL || name[0] == '\0' ||
            strchr(name, '@') != NULL || address == NULL ||
            address[0] == '\0' || strlen(name) >= CONSENSUS_NAME_MAX ||
            strlen(address) >= CONSENSUS_ADDRESS_MAX) {
            free(op);
            return OZ_EINVAL;
        }
        snprintf(op->raft_address, sizeof(op->raft_address), "%s@%s", name,
                 address);
    }
    return consensus__enqueue(c, op);
}

int consensus_barrier(struct consensus *c, consensus_done_cb cb, void *arg)
{
    return submit_done_op(c, OP_BARRIER, 0, NULL, NULL, cb, arg);
}

int consensus_snapshot_now(struct consensus *c,
                           uint64_t index,
                           consensus_done_cb cb,
                           void *arg)
{
    struct op *op;

    if (c == NULL || cb == NULL) {
        return OZ_EINVAL;
    }
    if (!consensus__on_raft_thread(c)) {
        return submit_done_op(c, OP_SNAPSHOT, index, NULL, NULL, cb, arg);
    }
    /* On the raft thread, typically inside the FSM apply of the entry at
     * index: lower the threshold now, so the snapshot follows this very
     * apply loop instead of waiting for the next entry. */
    op = consensus__op_new(c, OP_SNAPSHOT);
    if (op == NULL) {
        return OZ_ENOMEM;
    }
    op->id = index;
    op->done_cb = cb;
    op->arg = arg;
    consensus__dispatch(c, op);
    return 0;
}

int consensus_add_voter(struct consensus *c,
                        uint64_t id,
                        const char *name,
                        const char *address,
                        consensus_done_cb cb,
                        void *arg)
{
    return submit_done_op(c, OP_ADD, id, name, address, cb, arg);
}

int consensus_remove(struct consensus *c,
                     uint64_t id,
                     consensus_done_cb cb,
                     void *arg)
{
    if (id == 0) {
        return OZ_EINVAL;
    }
    return submit_done_op(c, OP_REMOVE, id, NULL, NULL, cb, arg);
}

int consensus_transfer(struct consensus *c,
                       uint64_t target,
                       consensus_done_cb cb,
                       void *arg)
{
    return submit_done_op(c, OP_TRANSFER, target, NULL, NULL, cb, arg);
}

/* ---- blocking variants ---- */

/* Shared by the waiting thread and the callback; the last one frees it, so
 * a waiter that timed out does not leave the callback a dangling pointer. */
struct waiter
{
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done;
    int status;
    uint64_t index;
    int result;
};

static struct waiter *waiter_new(void)
{
    struct waiter *w = calloc(1, sizeof(*w));
    pthread_condattr_t attr;

    if (w == NULL) {
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    w->refs = 2;
    return w;
}

static void waiter_put(struct waiter *w)
{
    bool last;

    pthread_mutex_lock(&w->mu);
    last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (last) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
}

static void waiter_submit_cb(void *arg, int status, uint64_t index, int result)
{
    struct waiter *w = arg;

    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->status = status;
    w->index = index;
    w->result = result;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    waiter_put(w);
}

static void waiter_done_cb(void *arg, int status)
{
    waiter_submit_cb(arg, status, 0, 0);
}

/* Waits and drops the waiting thread's reference. */
static int waiter_wait(struct waiter *w,
                       int timeout_ms,
                       uint64_t *index,
                       int *result)
{
    struct timespec deadline;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&w->mu);
    while (!w->done && rc == 0) {
        if (timeout_ms > 0) {
            rc = pthread_cond_timedwait(&w->cv, &w->mu, &deadline);
        } else {
            pthread_cond_wait(&w->cv, &w->mu);
        }
    }
    if (w->done) {
        rc = w->status;
        if (index != NULL) {
            *index = w->index;
        }
        if (result != NULL) {
            *result = w->result;
        }
    } else {
        rc = OZ_ETIMEDOUT;
    }
    pthread_mutex_unlock(&w->mu);
    waiter_put(w);
    return rc;
}

static void wait_errmsg(struct consensus *c,
                        int rc,
                        const char *what,
                        int timeout_ms,
                        char *errmsg)
{
    char name[CONSENSUS_NAME_MAX], address[CONSENSUS_ADDRESS_MAX];

    if (errmsg == NULL || rc == 0) {
        return;
    }
    if (rc == OZ_ENOTLEADER) {
        if (consensus_leader(c, NULL, name, sizeof(name), address,
                             sizeof(address)) == 0) {
            oz_errmsg_printf(errmsg,
                             "%s refused: '%s' is not the leader, the leader "
                             "is '%s' at %s",
                             what, c->name, name, address);
        } else {
            oz_errmsg_printf(errmsg,
                             "%s refused: '%s' is not the leader and no "
                             "leader is known, retry later",
                             what, c->name);
        }
    } else if (rc == OZ_ETIMEDOUT) {
        oz_errmsg_printf(errmsg,
                         "%s on '%s' timed out after %d ms: the outcome is "
                         "unknown",
                         what, c->name, timeout_ms);
    } else {
        oz_errmsg_printf(errmsg, "%s on '%s' failed: %s", what, c->name,
                         oz_strerror(rc));
    }
}

/* Runs start(w) and waits. */
#define WAIT_FOR(c, what, timeout_ms, errmsg, index, result, start_expr)   \
    do {                                                                   \
        struct waiter *w;                                                  \
        int rc_;                                                           \
        if (errmsg != NULL) {                                              \
            errmsg[0] = '\0';                                              \
        }                                                                  \
        if (consensus__on_raft_thread(c)) {                                \
            if (errmsg != NULL) {                                          \
                oz_errmsg_printf(                                          \
                    errmsg, "%s: blocking call on the raft thread", what); \
            }                                                              \
            return OZ_ESTATE;                                              \
        }                                                                  \
        w = waiter_new();                                                  \
        if (w == NULL) {                                                   \
            return OZ_ENOMEM;                                              \
        }                                                                  \
        rc_ = (start_expr);                                                \
        if (rc_ != 0) {                                                    \
            waiter_put(w);                                                 \
            waiter_put(w);                                                 \
        } else {                                                           \
            rc_ = waiter_wait(w, timeout_ms, index, result);               \
        }                                                                  \
        wait_errmsg(c, rc_, what, timeout_ms, errmsg);                     \
        return rc_;                                                        \
    } while (0)

int consensus_submit_wait(struct consensus *c,
                          uint32_t type,
                          const void *payload,
                          size_t len,
                          int timeout_ms,
                          uint64_t *index,
                          int *result,
                          char *errmsg)
{
    if (index != NULL) {
        *index = 0;
    }
    if (result != NULL) {
        *result = 0;
    }
    WAIT_FOR(c, "submit", timeout_ms, errmsg, index, result,
             consensus_submit(c, type, payload, len, waiter_submit_cb, w));
}

int consensus_barrier_wait(struct consensus *c, int timeout_ms, char *errmsg)
{
    WAIT_FOR(c, "barrier", timeout_ms, errmsg, NULL, NULL,
             consensus_barrier(c, waiter_done_cb, w));
}

int consensus_snapshot_now_wait(struct consensus *c,
                                uint64_t index,
                                int timeout_ms,
                                char *errmsg)
{
    WAIT_FOR(c, "log purge", timeout_ms, errmsg, NULL, NULL,
             consensus_snapshot_now(c, index, waiter_done_cb, w));
}

int consensus_add_voter_wait(struct consensus *c,
                             uint64_t id,
                             const char *name,
                             const char *address,
                             int timeout_ms,
                             char *errmsg)
{
    WAIT_FOR(c, "add voter", timeout_ms, errmsg, NULL, NULL,
             consensus_add_voter(c, id, name, address, waiter_done_cb, w));
}

int consensus_remove_wait(struct consensus *c,
                          uint64_t id,
                          int timeout_ms,
                          char *errmsg)
{
    WAIT_FOR(c, "remove server", timeout_ms, errmsg, NULL, NULL,
             consensus_remove(c, id, waiter_done_cb, w));
}

int consensus_transfer_wait(struct consensus *c,
                            uint64_t target,
                            int timeout_ms,
                            char *errmsg)
{
    WAIT_FOR(c, "leadership transfer", timeout_ms, errmsg, NULL, NULL,
             consensus_transfer(c, target, waiter_done_cb, w));
}

/* DESIGN.md §8: a planned stop of the leader transfers leadership. A
 * barrier first shows which voters are alive (they acknowledge it) and
 * that there is a quorum to hand over to at all; then two attempts, the
 * second avoiding the first target. */
void consensus__hand_over(struct consensus *c)
{
    uint64_t target = 0;
    int attempt, rc;

    if (!consensus_is_leader(c) || consensus__count_voters(c) < 2) {
        return;
    }
    rc = consensus_barrier_wait(c, (int)c->election_timeout_ms, NULL);
    if (rc != 0) {
        log_warn(
            "consensus '%s': closing without handing over leadership: "
            "no quorum (%s)",
            c->name, oz_strerror(rc));
        return;
    }

    for (attempt = 0; attempt < 2; attempt++) {
        struct waiter *w;
        struct op *op;

        if (!consensus_is_leader(c) || consensus__count_voters(c) < 2) {
            return;
        }
        w = waiter_new();
        op = consensus__op_new(c, OP_TRANSFER);
        if (w == NULL || op == NULL) {
            if (w != NULL) {
                waiter_put(w);
                waiter_put(w);
            }
            free(op);
            return;
        }
        op->exclude = target;
        op->submit_cb = waiter_submit_cb;
        op->arg = w;
        rc = consensus__enqueue(c, op);
        if (rc != 0) {
            waiter_put(w);
            waiter_put(w);
            break;
        }
        rc = waiter_wait(w, (int)(2 * c->election_timeout_ms), &target, NULL);
        if (rc == 0) {
            return;
        }
    }
    log_warn("consensus '%s': closing without handing over leadership: %s",
             c->name, oz_strerror(rc));
}
