/* consensus: the only module that calls raft_* (canonical raft 0.15) and
 * the libuv loop it runs on (CONVENTIONS.md adapters; DESIGN.md §4, §8;
 * PITFALLS.md "canonical raft 0.15").
 *
 * One struct consensus is one raft server. It runs on its own thread with
 * its own uv_loop; other threads reach it only through uv_async_send
 * (DESIGN.md §4): every call below may be made from any thread unless it
 * says otherwise, and the *_wait variants block the caller (never call them
 * from the raft thread, i.e. from inside an FSM or completion callback:
 * they return OZ_ESTATE there).
 *
 * Threading of callbacks: the FSM callbacks (apply, snapshot, restore) and
 * every completion callback (consensus_submit_cb, consensus_done_cb) run on
 * the raft thread (FSM restore of the local snapshot also during
 * consensus_open, on the opener's thread, before the raft thread exists),
 * one at a time, with no lock of this module held; they
 * must not block for long (they stall replication) and may call the query
 * functions and the asynchronous functions of this module.
 *
 * Entries: a payload of up to CONSENSUS_MAX_ENTRY bytes with a 32-bit type
 * chosen by the user. On the log it is framed as
 *   [u32 len LE][u32 type LE][payload][zero padding to a multiple of 8]
 * (raft 0.15 silently corrupts entries whose length is not a multiple of 8).
 * A frame that fails validation on apply is never given to the FSM: it is
 * logged as an error and this node stops applying at that index.
 *
 * Names: each server has a numeric raft id, a name ("om1") and an address
 * ("host:port"). The name travels inside the raft address ("om1@host:port")
 * so every node, including ones that joined later, knows every member's
 * name; names may not contain '@'.
 *
 * Idempotency: after a restart raft re-applies the entries that follow the
 * last snapshot once the commit index is known again. The FSM must store
 * the index of the last entry it applied durably with the state it changed
 * and skip entries at or below it (PITFALLS.md).
 */
#ifndef OZONE_CONSENSUS_H
#define OZONE_CONSENSUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONSENSUS_MAX_ENTRY (64u << 20) /* payload bytes per entry */
#define CONSENSUS_MAX_MEMBERS 16
#define CONSENSUS_NAME_MAX 64     /* including the terminating NUL */
#define CONSENSUS_ADDRESS_MAX 128 /* "host:port", including the NUL */
#define CONSENSUS_FRAME_HEADER 8

struct consensus;
struct consensus_writer;

/* Role of this server in the protocol. */
enum consensus_role {
    CONSENSUS_UNAVAILABLE = 0, /* not started or shutting down */
    CONSENSUS_FOLLOWER,
    CONSENSUS_CANDIDATE,
    CONSENSUS_LEADER,
};

/* Role of a member in the configuration (raft's values). */
enum consensus_member_role {
    CONSENSUS_STANDBY = 0, /* replicates the log, does not vote */
    CONSENSUS_VOTER = 1,   /* replicates the log and votes */
    CONSENSUS_SPARE = 2,   /* neither: being added, or parked */
};

enum consensus_start_mode {
    /* Bootstrap the cluster from cfg->cluster when data_dir holds no raft
     * state; when it does, simply restart from it. */
    CONSENSUS_BOOTSTRAP = 0,
    /* Never bootstrap: the node waits until a leader adds it
     * (consensus_add_voter on the leader). */
    CONSENSUS_JOIN = 1,
};

/* The replicated state machine, supplied by the user. All three run on the
 * raft thread. */
struct consensus_fsm
{
    void *ctx; /* passed back untouched */

    /* Applies a committed entry. term is the raft term the entry was
     * appended in (the same on every node: Ozone's TransactionInfo
     * "<term>#<index>"). payload is borrowed for the call only. The return
     * value is the application's result for this entry (0 or an
     * application error); it is handed to the submitter's callback and
     * does NOT stop replication, so it must be deterministic: every node
     * returns the same result for the same entry and state. */
    int (*apply)(void *ctx,
                 uint64_t index,
                 uint64_t term,
                 uint32_t type,
                 const void *payload,
                 size_t len);

    /* Writes a snapshot of the whole state as of index (the last applied
     * entry) with consensus_writer_append. Format is the user's. Return 0,
     * or a negative code to skip this snapshot (raft retries later). */
    int (*snapshot)(void *ctx, uint64_t index, struct consensus_writer *w);

    /* Replaces the whole state with a snapshot taken at index (on start-up
     * from the local snapshot, or when the leader installs one). data is
     * borrowed for the call only. A state that is already at or past index
     * may keep itself and return 0. Nonzero refuses the snapshot. */
    int (*restore)(void *ctx, uint64_t index, const void *data, size_t len);
};

/* A known server: used to bootstrap, and as the directory of peers. */
struct consensus_peer
{
    uint64_t id;         /* raft id, > 0, unique */
    const char *name;    /* non-empty, no '@', < CONSENSUS_NAME_MAX */
    const char *address; /* "host:port" (IPv4 or resolvable host) */
};

struct consensus_config
{
    uint64_t id;              /* this server's raft id (> 0) */
    const char *name;         /* this server's name */
    const char *address;      /* advertised "host:port" */
    const char *bind_address; /* NULL: listen on address */
    const char *data_dir;     /* raft's log/snapshot dir (created) */
    /* Initial voters, used by CONSENSUS_BOOTSTRAP on an empty data_dir
     * (must include this server; empty means a single-node cluster). */
    const struct consensus_peer *cluster;
    unsigned n_cluster;
    enum consensus_start_mode mode;
    unsigned election_timeout_ms;  /* 0: 1000 */
    unsigned heartbeat_timeout_ms; /* 0: 100 */
    unsigned snapshot_threshold;   /* entries between snapshots; 0: 1024 */
    unsigned snapshot_trailing;    /* entries kept after one; 0: 2048 */
    struct consensus_fsm fsm;
};

/* A member of the current (latest, possibly uncommitted) configuration. */
struct consensus_member
{
    uint64_t id;
    char name[CONSENSUS_NAME_MAX];
    char address[CONSENSUS_ADDRESS_MAX];
    enum consensus_member_role role;
    bool is_leader; /* as known by this node */
};

/* A consistent copy of this node's view, taken on the raft thread at most
 * one loop iteration ago. */
struct consensus_status
{
    enum consensus_role role;
    uint64_t term;
    uint64_t commit_index;
    uint64_t last_applied;
    uint64_t last_index;
    uint64_t snapshot_index; /* last snapshot taken or installed, 0: none */
    uint64_t first_index;    /* oldest entry kept in memory, 0: none */
    uint64_t leader_id;      /* 0: no leader known */
    char leader_name[CONSENSUS_NAME_MAX];
    char leader_address[CONSENSUS_ADDRESS_MAX];
    unsigned n_members;
    struct consensus_member members[CONSENSUS_MAX_MEMBERS];
};

/* Completion of consensus_submit, on the raft thread, exactly once when
 * consensus_submit returned 0. status 0: the entry was committed at index
 * and applied locally, result is the FSM's apply result. Otherwise status
 * is OZ_ENOTLEADER (this node is not the leader, see consensus_leader; or
 * it lost leadership before the entry committed, in which case a new
 * leader may still commit it), OZ_EUNAVAILABLE (shutting down), OZ_ENOMEM
 * or OZ_EIO; index and result are then 0. */
typedef void (*consensus_submit_cb)(void *arg,
                                    int status,
                                    uint64_t index,
                                    int result);

/* Completion of the other asynchronous calls, same rules. */
typedef void (*consensus_done_cb)(void *arg, int status);

/* ---- lifecycle ---- */

/* Validates cfg (all strings are copied), opens the raft state in
 * cfg->data_dir, bootstraps if asked and possible, starts listening and
 * starts the raft thread. On success *out is the new server, to be freed
 * with consensus_close. OZ_ECONFIG (bad cfg), OZ_EIO (dir, port in use),
 * OZ_ECORRUPT (damaged raft state), OZ_ENOMEM, with errmsg
 * (OZ_ERRMSG_SIZE bytes). The process must ignore SIGPIPE (daemon.c
 * does): raft_uv writes to sockets that peers may have closed. */
int consensus_open(const struct consensus_config *cfg,
                   struct consensus **out,
                   char *errmsg);

/* Stops the server and frees it (c may be NULL). If this node leads a
 * cluster with other voters it first transfers leadership (best effort,
 * bounded by a few election timeouts). Calls not yet completed complete
 * with OZ_EUNAVAILABLE before it returns. Not from the raft thread. */
void consensus_close(struct consensus *c);

/* ---- replication ---- */

/* Copies payload (len <= CONSENSUS_MAX_ENTRY) and proposes it. Returns 0
 * and later calls cb exactly once (see consensus_submit_cb), or returns
 * OZ_EINVAL / OZ_ETOOBIG / OZ_ENOMEM / OZ_EUNAVAILABLE (closing) and never
 * calls cb. */
int consensus_submit(struct consensus *c,
                     uint32_t type,
                     const void *payload,
                     size_t len,
                     consensus_submit_cb cb,
                     void *arg);

/* Blocking consensus_submit: 0 once committed and applied here, with
 * *index and *result (either may be NULL). OZ_ETIMEDOUT after timeout_ms
 * (<= 0: no limit): the entry may still commit later. Other codes as for
 * the callback. errmsg (may be NULL) names the leader on OZ_ENOTLEADER. */
int consensus_submit_wait(struct consensus *c,
                          uint32_t type,
                          const void *payload,
                          size_t len,
                          int timeout_ms,
                          uint64_t *index,
                          int *result,
                          char *errmsg);

/* Linearizable read point: completes with 0 once this node, as leader,
 * has committed a barrier entry in its current term and applied every
 * entry before it; a read of the FSM made after that sees every write
 * acknowledged before the call. OZ_ENOTLEADER on a follower. */
int consensus_barrier(struct consensus *c, consensus_done_cb cb, void *arg);
int consensus_barrier_wait(struct consensus *c, int timeout_ms, char *errmsg);

/* ---- log compaction on demand ---- */

/* Takes a snapshot now and purges the log up to index (0: the last applied
 * index at the time of the call): completes with 0 once this node's log
 * holds no entry at or below index, neither in memory nor in its segment
 * files on disk, then restores the configured snapshot threshold and
 * trailing amount.
 *
 * libraft 0.15 has no "snapshot now" call; this uses raft's own snapshot
 * path: the snapshot threshold drops to 1 and the trailing amount to 1
 * while a request waits, so raft snapshots after every apply, and each
 * snapshot deletes the closed segments before it. A snapshot needs a new
 * applied entry, so the leader appends barrier entries (one per heartbeat)
 * while it waits and for a few election timeouts after, so followers that
 * were asked for the same index get entries too. Purging up to index
 * takes a snapshot past it (two, when the segment holding index was still
 * open at the first): a follower completes once the leader appended those
 * entries.
 *
 * May be called from any thread, including inside the FSM apply of the
 * entry at index (then the first snapshot follows that apply). cb runs on
 * the raft thread; OZ_EUNAVAILABLE when the node closes first. */
int consensus_snapshot_now(struct consensus *c,
                           uint64_t index,
                           consensus_done_cb cb,
                           void *arg);
int consensus_snapshot_now_wait(struct consensus *c,
                                uint64_t index,
                                int timeout_ms,
                                char *errmsg);

/* ---- membership and leadership (leader only; OZ_ENOTLEADER otherwise).
 * Changes are serialized here, one at a time, in the order submitted. */

/* Adds a server (started in CONSENSUS_JOIN mode) as a spare, then promotes
 * it to voter once it caught up. Already a voter: 0. OZ_EEXIST when the id
 * or address belongs to another member. */
int consensus_add_voter(struct consensus *c,
                        uint64_t id,
                        const char *name,
                        const char *address,
                        consensus_done_cb cb,
                        void *arg);
int consensus_add_voter_wait(struct consensus *c,
                             uint64_t id,
                             const char *name,
                             const char *address,
                             int timeout_ms,
                             char *errmsg);

/* Removes a member. Removing the leader itself is refused (OZ_EINVAL):
 * transfer leadership first. OZ_ENOTFOUND for an unknown id. */
int consensus_remove(struct consensus *c,
                     uint64_t id,
                     consensus_done_cb cb,
                     void *arg);
int consensus_remove_wait(struct consensus *c,
                          uint64_t id,
                          int timeout_ms,
                          char *errmsg);

/* Hands leadership to voter target (0: the most up-to-date voter). Status
 * 0 once this node no longer leads; OZ_ETIMEDOUT if the transfer lapsed
 * (raft gives one attempt an election timeout for the target to catch up).
 *
 * consensus_transfer_wait repeats lapsed attempts until timeout_ms has
 * passed (timeout_ms <= 0: one attempt), so a target that is still
 * catching up after a restart gets leadership once it has. It waits for
 * raft's answer to the last attempt (at most an election timeout more).
 * OZ_ETIMEDOUT with errmsg naming the target, how long it tried and how
 * many attempts lapsed; OZ_ENOTLEADER when this node does not lead. */
int consensus_transfer(struct consensus *c,
                       uint64_t target,
                       consensus_done_cb cb,
                       void *arg);
int consensus_transfer_wait(struct consensus *c,
                            uint64_t target,
                            int timeout_ms,
                            char *errmsg);

/* ---- queries (any thread, cheap, never block on the raft thread) ---- */

void consensus_status(struct consensus *c, struct consensus_status *out);
bool consensus_is_leader(struct consensus *c);
enum consensus_role consensus_role(struct consensus *c);
uint64_t consensus_term(struct consensus *c);
uint64_t consensus_commit_index(struct consensus *c);
uint64_t consensus_last_applied(struct consensus *c);
/* The leader as known by this node: 0 with *id and copies of its name and
 * address (each buffer may be NULL), or OZ_ENOTFOUND (none known). */
int consensus_leader(struct consensus *c,
                     uint64_t *id,
                     char *name,
                     size_t name_size,
                     char *address,
                     size_t address_size);
/* Copies up to max members; returns how many there are. */
unsigned consensus_members(struct consensus *c,
                           struct consensus_member *out,
                           unsigned max);
/* This server's id and name (borrowed, valid until consensus_close). */
uint64_t consensus_id(const struct consensus *c);
const char *consensus_name(const struct consensus *c);

const char *consensus_role_name(enum consensus_role role);
const char *consensus_member_role_name(enum consensus_member_role role);

/* ---- snapshot writer (inside consensus_fsm.snapshot only) ---- */

/* Appends len bytes to the snapshot. OZ_ENOMEM / OZ_ETOOBIG. */
int consensus_writer_append(struct consensus_writer *w,
                            const void *data,
                            size_t len);

/* ---- entry frames (exposed for tests and fuzzing) ---- */

/* Bytes of the frame for a payload of len bytes (a multiple of 8). */
size_t consensus_frame_size(size_t len);
/* Writes the frame into dst (consensus_frame_size(len) bytes). */
void consensus_frame_encode(void *dst,
                            uint32_t type,
                            const void *payload,
                            size_t len);
/* Validates a frame of buf_len bytes: length a multiple of 8, declared
 * payload length within the buffer and <= CONSENSUS_MAX_ENTRY, padding of
 * exactly the right size and all zero. 0 with *type, *payload (borrowed,
 * points into buf) and *len; OZ_ECORRUPT otherwise (out-parameters zeroed).
 * Never reads outside [buf, buf + buf_len). */
int consensus_frame_decode(const void *buf,
                           size_t buf_len,
                           uint32_t *type,
                           const void **payload,
                           size_t *len);

#endif
