/* consensus: handing work to the raft thread from any thread, and the
 * blocking (*_wait) variants built on a reference-counted waiter. */
#include "consensus.h"
#include "consensus_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
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

/* Waits and drops the waiting thread's reference. OZ_ETIMEDOUT both when
 * the operation completed with it and when timeout_ms passed first;
 * *finished (may be NULL) tells which. */
static int waiter_wait(struct waiter *w,
                       int timeout_ms,
                       uint64_t *index,
                       int *result,
                       bool *finished)
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
    if (finished != NULL) {
        *finished = false;
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
        if (finished != NULL) {
            *finished = true;
        }
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
            rc_ = waiter_wait(w, timeout_ms, index, result, NULL);         \
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

/* One raft transfer to target (0: any voter but exclude), waited for up
 * to wait_ms. *to is the server raft tried, *behind how many entries it
 * lacked when the attempt lapsed; finished and behind may be NULL. */
static int transfer_attempt(struct consensus *c,
                            uint64_t target,
                            uint64_t exclude,
                            int wait_ms,
                            bool *finished,
                            uint64_t *to,
                            int *behind)
{
    struct waiter *w = waiter_new();
    struct op *op = consensus__op_new(c, OP_TRANSFER);
    int rc;

    if (finished != NULL) {
        *finished = true;
    }
    if (w == NULL || op == NULL) {
        if (w != NULL) {
            waiter_put(w);
            waiter_put(w);
        }
        free(op);
        return OZ_ENOMEM;
    }
    op->id = target;
    op->exclude = exclude;
    op->submit_cb = waiter_submit_cb;
    op->arg = w;
    rc = consensus__enqueue(c, op);
    if (rc != 0) {
        waiter_put(w);
        waiter_put(w);
        return rc;
    }
    return waiter_wait(w, wait_ms, to, behind, finished);
}

static void member_name(struct consensus *c,
                        uint64_t id,
                        char *out,
                        size_t size)
{
    struct consensus_member members[CONSENSUS_MAX_MEMBERS];
    unsigned n = consensus_members(c, members, CONSENSUS_MAX_MEMBERS);

    if (id == 0) {
        snprintf(out, size, "any voter");
        return;
    }
    snprintf(out, size, "server %" PRIu64, id);
    for (unsigned i = 0; i < n && i < CONSENSUS_MAX_MEMBERS; i++) {
        if (members[i].id == id) {
            snprintf(out, size, "'%s'", members[i].name);
        }
    }
}

static void transfer_errmsg(struct consensus *c,
                            int rc,
                            bool finished,
                            uint64_t target,
                            uint64_t to,
                            int behind,
                            unsigned lapsed,
                            int64_t elapsed_ms,
                            char *errmsg)
{
    char who[CONSENSUS_NAME_MAX + 32];

    member_name(c, target != 0 ? target : to, who, sizeof(who));
    if (rc == OZ_ETIMEDOUT && finished && behind > 0) {
        oz_errmsg_printf(errmsg,
                         "leadership transfer to %s on '%s' did not complete "
                         "in %" PRId64
                         " ms: %s did not catch up with the log (%d entries "
                         "behind after %u attempts of %u ms); check that it "
                         "runs and reaches '%s', then retry",
                         who, c->name, elapsed_ms, who, behind, lapsed,
                         c->election_timeout_ms, c->name);
    } else if (rc == OZ_ETIMEDOUT && finished) {
        oz_errmsg_printf(errmsg,
                         "leadership transfer to %s on '%s' did not complete "
                         "in %" PRId64
                         " ms: %s holds the whole log but did not take over "
                         "after %u attempts of %u ms; check that it runs and "
                         "reaches '%s', then retry",
                         who, c->name, elapsed_ms, who, lapsed,
                         c->election_timeout_ms, c->name);
    } else if (rc == OZ_ETIMEDOUT) {
        oz_errmsg_printf(errmsg,
                         "leadership transfer to %s on '%s' got no answer "
                         "from raft in %" PRId64
                         " ms: the outcome is unknown; check which server "
                         "leads before retrying",
                         who, c->name, elapsed_ms);
    } else {
        wait_errmsg(c, rc, "leadership transfer", 0, errmsg);
    }
}

/* raft 0.15 gives a transfer one election timeout: it sends TimeoutNow
 * only once the target's log matches the leader's, and lapses otherwise.
 * A target that has just (re)started is usually still catching up then,
 * so an attempt that lapsed while this node still leads is repeated until
 * timeout_ms; each attempt is waited for until raft reports it (an
 * election timeout, plus margin), so the outcome is known. */
int consensus_transfer_wait(struct consensus *c,
                            uint64_t target,
                            int timeout_ms,
                            char *errmsg)
{
    int64_t start = oz_mono_ms();
    int64_t deadline = start + (timeout_ms > 0 ? timeout_ms : 0);
    int margin = 2 * (int)c->election_timeout_ms + 1000;
    unsigned lapsed = 0;
    bool finished = true;
    uint64_t to = 0;
    int behind = 0;
    int rc;

    if (errmsg != NULL) {
        errmsg[0] = '\0';
    }
    if (consensus__on_raft_thread(c)) {
        if (errmsg != NULL) {
            oz_errmsg_printf(errmsg,
                             "leadership transfer: blocking call on the raft "
                             "thread");
        }
        return OZ_ESTATE;
    }
    for (;;) {
        int64_t left = deadline - oz_mono_ms();
        rc = transfer_attempt(c, target, 0, (int)(left > 0 ? left : 0) + margin,
                              &finished, &to, &behind);
        if (rc != OZ_ETIMEDOUT || !finished) {
            break;
        }
        lapsed++;
        /* Let the writes queued behind the transfer in (raft refuses them
         * while one runs), then try again. */
        if (timeout_ms <= 0 ||
            oz_mono_ms() + (int64_t)c->heartbeat_timeout_ms >= deadline) {
            break;
        }
        oz_sleep_ms((long)c->heartbeat_timeout_ms);
    }
    if (rc == OZ_ENOTLEADER && lapsed > 0) {
        /* Leadership moved between two attempts: done if it went where
         * it was asked to. */
        uint64_t id = 0;
        if (consensus_leader(c, &id, NULL, 0, NULL, 0) == 0 &&
            (target != 0 ? id == target : id != c->id)) {
            rc = 0;
        }
    }
    if (rc == 0 && lapsed > 0) {
        log_info(
            "consensus '%s': leadership transfer done after %u lapsed "
            "attempts (%" PRId64 " ms)",
            c->name, lapsed, oz_mono_ms() - start);
    }
    if (rc != 0 && errmsg != NULL) {
        transfer_errmsg(c, rc, finished, target, to, behind, lapsed,
                        oz_mono_ms() - start, errmsg);
    }
    return rc;
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
        if (!consensus_is_leader(c) || consensus__count_voters(c) < 2) {
            return;
        }
        rc = transfer_attempt(c, 0, target, (int)(2 * c->election_timeout_ms),
                              NULL, &target, NULL);
        if (rc == 0) {
            return;
        }
    }
    log_warn("consensus '%s': closing without handing over leadership: %s",
             c->name, oz_strerror(rc));
}
