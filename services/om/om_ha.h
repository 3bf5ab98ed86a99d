/* om_ha: the OM's replicated log (DESIGN.md §8, §6.8) on common/consensus.
 * Private to services/om.
 *
 * Every OM, single or in a service, runs the same path: a write handler
 * builds an OmWriteOp, om_ha_submit() proposes it to the raft group and
 * waits; the FSM apply callback (raft thread) runs om_apply() on every OM
 * at the entry's raft index and term and puts the batch, with
 * #TRANSACTIONINFO "<term>#<index>", into the double buffer (om_buffer.c),
 * which a flusher thread writes to RocksDB in batches.
 *
 * Configuration (Ozone's keys, DESIGN.md §8): with ozone.om.service.ids
 * set, the service is its first id <sid>; ozone.om.nodes.<sid> lists the
 * node ids and ozone.om.node.id says which one this process is (optional
 * when the service has one node). Raft ids are positions in that list,
 * starting at 1: the list may only grow at its end (ozone om --bootstrap
 * adds the new node last), never be reordered. Each node's RPC, HTTP and
 * Raft addresses are ozone.om.address.<sid>.<node>,
 * ozone.om.http-address.<sid>.<node> and the host of the former with
 * ozone.om.ratis.port.<sid>.<node> (else ozone.om.ratis.port, 9872).
 * Without a service id the OM is a one-node group "om1" (raft id 1,
 * ozone.om.node.id overrides the name) bootstrapped on its first start;
 * its raft port is ozone.om.ratis.port when set, else any free port
 * (nobody else dials a one-node group).
 *
 * Raft state lives in <OM storage dir>/ratis.
 *
 * Reads: linearizable on the leader. In a service every read first passes
 * a raft barrier (consensus_barrier_wait; concurrent readers share one
 * barrier); a one-node group needs none (no other node can lead).
 * Followers answer reads and writes with NOT_LEADER and the leader's RPC
 * address as leader_hint.
 *
 * Snapshots: a RocksDB checkpoint of the OM DB packed as a tar (common/tar)
 * and handed to libraft, which compacts its log and sends it to a follower
 * that is too far behind; restore unpacks it into a temporary directory,
 * checks it, and replaces the contents of every OM table by the
 * snapshot's in one atomic RocksDB batch (the DB stays open, so other
 * modules holding the kv handle are not disturbed).
 *
 * Prepare (DESIGN.md §6.8): a Prepare entry stores #PREPAREDINFO (its
 * index) in the applying batch; om_apply then refuses every other write on
 * every OM. Applying it also flushes (synced) the double buffer and asks
 * consensus for a snapshot and a log purge up to it; once done this node
 * writes current/prepareMarker and reports PREPARE_COMPLETED (before:
 * PREPARE_GATE_ENABLED). CancelPrepare deletes key and marker. A snapshot
 * installed from the leader sets the state from its #PREPAREDINFO (raft
 * keeps no entry at or below it: prepared means PREPARE_COMPLETED).
 *
 * Open key cleanup (om_cleanup.c): the leader deletes expired open keys
 * through DeleteOpenKeys entries.
 *
 * Threads: handlers (rpc threads) call om_ha_submit/om_ha_check; the FSM
 * callbacks and consensus completions run on the raft thread;
 * om->write_lock serialises applies with snapshot restore; the double
 * buffer's flusher and the open key cleanup have a thread each.
 */
#ifndef OZONE_OM_HA_H
#define OZONE_OM_HA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "consensus.h"
#include "daemon.h"
#include "metrics.h"
#include "om_state.h"

#define OM_HA_MAX_NODES CONSENSUS_MAX_MEMBERS
#define OM_HA_RESULTS 512 /* apply outcomes kept for their submitters */

struct om_ha_node
{
    char name[CONSENSUS_NAME_MAX];
    uint64_t raft_id;
    char rpc_address[256];  /* dialable host:port */
    char http_address[256]; /* dialable host:port, may be empty */
    char raft_address[CONSENSUS_ADDRESS_MAX];
};

struct om_ha_result
{
    uint64_t index;
    Ozone__ResultCode code;
    char message[OZ_ERRMSG_SIZE];
};

enum om_prepare_state {
    OM_NOT_PREPARED = 0,
    OM_PREPARE_GATE_ENABLED, /* entry applied, snapshot and purge running */
    OM_PREPARE_COMPLETED,
};

struct om_ha
{
    struct daemon *d; /* borrowed */
    struct om *om;    /* borrowed */
    bool has_service; /* ozone.om.service.ids set */
    char service_id[128];
    struct om_ha_node nodes[OM_HA_MAX_NODES];
    unsigned n_nodes;
    unsigned self; /* index into nodes */
    char raft_dir[4096];
    char marker_path[4096];
    struct consensus *c;
    /* The thread running om_ha_open: an FSM restore on it is of the local
     * snapshot (during consensus_open), on any other thread an install
     * from the leader. */
    pthread_t opener;

    pthread_mutex_t mu; /* results, prepare state, read barrier */
    struct om_ha_result results[OM_HA_RESULTS];
    uint64_t prepared_index;   /* 0: not prepared */
    uint64_t prepare_pending;  /* prepare applied, log purge running */
    uint64_t prepare_snapshot; /* first snapshot at or past it */
    /* Shared read barrier (see the top comment). */
    pthread_cond_t read_cond;
    uint64_t read_seq;
    uint64_t read_done;
    bool read_inflight;

    struct metric *snapshot_installs;
    struct metric *snapshots_taken;
    struct metric *snapshot_index;         /* latest snapshot taken */
    struct metric *prepare_snapshot_index; /* first one at/after prepare */
    struct metric *prepare_purged_index;   /* log purged up to (prepare) */
    struct om_cleanup *cleanup;            /* om_cleanup.c */
    /* ozone om --upgrade on a prepared OM: leaving prepare mode is a
     * CancelPrepare entry, proposed by this OM once it leads (a local
     * change would let OMs apply the same entry differently, §8.1). */
    bool leave_prepare;
    bool leave_started;
    pthread_t leave_thread;
    atomic_bool leave_stop;
};

/* Daemon configure hook (before storage and servers): resolves this node
 * of the service and points ozone.om.address / ozone.om.http-address at
 * its own addresses so the daemon binds them. 0 or OZ_ECONFIG. */
int om_ha_configure(struct daemon *d, char *errmsg);

/* Opens the raft group over om (whose kv is open). upgrade: leave prepare
 * mode at start (ozone om --upgrade); bootstrap: join an existing service
 * (ozone om --bootstrap) instead of bootstrapping a new group. 0 or OZ_E*
 * with errmsg. */
int om_ha_open(struct om_ha *ha,
               struct daemon *d,
               struct om *om,
               bool upgrade,
               bool bootstrap,
               char *errmsg);
/* Stops raft (transferring leadership first when leading); ha may be
 * partly opened. */
void om_ha_close(struct om_ha *ha);

/* Hands leadership away if this node leads a group with other voters
 * (SIGTERM drain). */
void om_ha_drain(struct om_ha *ha);

/* Proposes op (time set by the caller; index decided by the log) and
 * waits until it is applied here: res gets the outcome, NOT_LEADER with
 * res->leader_hint on a follower. */
void om_ha_submit(struct om_ha *ha,
                  Ozone__Om__OmWriteOp *op,
                  struct om_result *res);

/* Gate for a request: true when this node may serve it now (a read: after
 * the read barrier). Else res is set (NOT_LEADER with the hint, or
 * NOT_SUPPORTED_OPERATION_WHEN_PREPARED for a write while prepared). */
bool om_ha_check(struct om_ha *ha,
                 bool write,
                 const char *method,
                 struct om_result *res);

/* Fills res with NOT_LEADER and the leader's address as this node knows. */
void om_ha_not_leader(struct om_ha *ha, struct om_result *res);

/* The node of the service named name, or NULL. */
const struct om_ha_node *om_ha_node_by_name(const struct om_ha *ha,
                                            const char *name);

enum om_prepare_state om_ha_prepare_state(struct om_ha *ha,
                                          uint64_t *prepared_index);

/* Proposes a Prepare (cancel false) or CancelPrepare entry and waits until
 * it is applied here; res as om_ha_submit(), *index the entry's index. */
void om_ha_submit_prepare(struct om_ha *ha,
                          bool cancel,
                          struct om_result *res,
                          uint64_t *index);

/* OpenKeyCleanupService (om_cleanup.c): starts / stops its thread. */
int om_cleanup_start(struct om_ha *ha, char *errmsg);
void om_cleanup_stop(struct om_ha *ha);

/* Registers ozone.om.OmAdminService on d->rpc (om_admin.c). */
int om_admin_register(struct om_ha *ha, char *errmsg);

#endif
