/* Private to common/consensus*.c: the server struct, operations and the
 * TCP transport wrapper (contract of the module in consensus.h). */
#ifndef OZONE_CONSENSUS_INTERNAL_H
#define OZONE_CONSENSUS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "consensus.h"

/* raft_uv_tcp with TCP_NODELAY on every connection (PITFALLS.md: raft's
 * TCP transport never sets it and commits drop ~10x with entries in
 * flight). `outer` is what raft_uv_init gets; it forwards to `inner`. It
 * also strips the "name@" prefix this module puts in raft addresses
 * before connecting (consensus.h "Names"). */
struct consensus__transport
{
    struct raft_uv_transport outer;
    struct raft_uv_transport inner;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
};

/* Initializes both transports on loop, listening on bind_address
 * ("host:port", copied). Raft error code with x->outer.errmsg set. */
int consensus__transport_init(struct consensus__transport *x,
                              struct uv_loop_s *loop,
                              const char *bind_address);

/* Frees what consensus__transport_init allocated, once raft_uv is closed
 * (or was never initialized). */
void consensus__transport_release(struct consensus__transport *x);

/* The host:port part of a "name@host:port" raft address. */
const char *consensus__strip_name(const char *raft_address);

/* ---- the server (consensus.c) ---- */

#define RAFT_ADDRESS_MAX (CONSENSUS_NAME_MAX + CONSENSUS_ADDRESS_MAX)

enum op_kind {
    OP_SUBMIT,
    OP_BARRIER,
    OP_ADD,
    OP_REMOVE,
    OP_TRANSFER,
    OP_SNAPSHOT,
    OP_CLOSE
};

struct op
{
    struct op *next;                  /* queue, deferred or changes list */
    struct op *live_prev, *live_next; /* raft thread: c->live */
    enum op_kind kind;
    struct consensus *c;
    union {
        struct raft_apply apply;
        struct raft_barrier barrier;
        struct raft_change change;
        struct raft_transfer transfer;
    } req;
    struct raft_buffer buf; /* OP_SUBMIT: the frame until raft owns it */
    uint64_t id;      /* OP_ADD, OP_REMOVE, OP_TRANSFER target, OP_SNAPSHOT
                         index */
    uint64_t exclude; /* OP_TRANSFER to any: not this one */
    char raft_address[RAFT_ADDRESS_MAX]; /* OP_ADD: "name@host:port" */
    int step;                            /* OP_ADD: 0 add spare, 1 assign */
    consensus_submit_cb submit_cb;
    consensus_done_cb done_cb;
    void *arg;
};

struct op_list
{
    struct op *head, *tail;
};

struct consensus_writer
{
    char *base; /* raft_malloc'd: raft frees it after storing */
    size_t len, cap;
};

struct consensus
{
    /* Immutable after open. */
    uint64_t id;
    char name[CONSENSUS_NAME_MAX];
    char address[CONSENSUS_ADDRESS_MAX];
    char raft_address[RAFT_ADDRESS_MAX];
    char *data_dir;
    struct consensus_fsm fsm;
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    unsigned snapshot_threshold; /* configured; forced snapshots lower it */
    unsigned snapshot_trailing;
    pthread_t thread;
    bool thread_started;

    /* Raft thread only (and the opener before the thread starts). */
    uv_loop_t loop;
    uv_async_t async;
    uv_check_t check;
    struct consensus__transport xport;
    struct raft_io io;
    struct raft_fsm raft_fsm;
    struct raft raft;
    bool loop_closing; /* raft_close called */
    bool raft_closed;  /* raft_close's callback fired */
    struct op *live;
    struct op_list deferred; /* membership steps to resume */
    struct op_list changes;  /* membership changes waiting their turn */
    bool change_busy;
    int seen_state;
    uint64_t seen_term, seen_leader;
    uint64_t seen_conf_index, seen_conf_uncommitted;
    unsigned seen_conf_n;
    uint64_t corrupt_index;
    bool in_apply; /* inside the FSM apply callback */
    /* consensus_snapshot_now (consensus_snapshot.c). */
    struct op_list snap_waiters;
    bool snap_forcing;         /* threshold and trailing lowered */
    bool snap_barrier_busy;    /* a barrier of ours is in flight */
    uint64_t snap_barrier_ms;  /* when the last one was issued */
    uint64_t snap_assist_ms;   /* leader: keep appending until then */
    uint64_t snap_disk_index;  /* snapshot index of the last disk check */
    uint64_t snap_disk_oldest; /* oldest index on disk then (0: none) */

    /* Shared, under mu. */
    pthread_mutex_t mu;
    struct op_list queue;
    bool closing; /* no new operations */
    struct consensus_status status;
    struct op close_op;
};

static inline void consensus__list_push(struct op_list *l, struct op *op)
{
    op->next = NULL;
    if (l->tail != NULL) {
        l->tail->next = op;
    } else {
        l->head = op;
    }
    l->tail = op;
}

static inline struct op *consensus__list_pop(struct op_list *l)
{
    struct op *op = l->head;

    if (op != NULL) {
        l->head = op->next;
        if (l->head == NULL) {
            l->tail = NULL;
        }
        op->next = NULL;
    }
    return op;
}

/* consensus.c */
int consensus__map_raft_err(int rv);
bool consensus__on_raft_thread(const struct consensus *c);
void consensus__live_remove(struct consensus *c, struct op *op);
/* Completes an op on the raft thread: its callback, then free. */
void consensus__op_complete(struct op *op,
                            int status,
                            uint64_t index,
                            int result);

/* consensus_submit.c */
struct op *consensus__op_new(struct consensus *c, enum op_kind kind);
/* Takes ownership of op in every case (freed on failure, no callback). */
int consensus__enqueue(struct consensus *c, struct op *op);
/* Best-effort leadership hand-over before close (any thread but raft's). */
void consensus__hand_over(struct consensus *c);

/* consensus_snapshot.c (raft thread) */
/* Queues an OP_SNAPSHOT op that dispatch handed over. */
void consensus__snapshot_start(struct consensus *c, struct op *op);
/* Completes the waiters that are done and keeps the others moving; run
 * after every loop iteration. */
void consensus__snapshot_progress(struct consensus *c);
/* Completes every waiter with status (close). */
void consensus__snapshot_cancel(struct consensus *c, int status);
/* consensus.c: dispatches an op on the raft thread. */
void consensus__dispatch(struct consensus *c, struct op *op);

/* consensus_status.c */
/* Copies raft's state to c->status and logs role/membership changes. */
void consensus__status_refresh(struct consensus *c);
void consensus__split_raft_address(const char *raft_address,
                                   char *name,
                                   size_t name_size,
                                   char *address,
                                   size_t address_size);
unsigned consensus__count_voters(struct consensus *c);

/* consensus_fsm.c: the raft_fsm (version 1) callbacks. */
int consensus__fsm_apply(struct raft_fsm *f,
                         const struct raft_buffer *buf,
                         void **result);
int consensus__fsm_snapshot(struct raft_fsm *f,
                            struct raft_buffer *bufs[],
                            unsigned *n_bufs);
int consensus__fsm_restore(struct raft_fsm *f, struct raft_buffer *buf);

#endif
