/* SCM state shared by the files of services/scm (DESIGN.md §7):
 *
 *   scm_state.c      struct scm lifecycle, configuration, loading from
 *                    RocksDB, the background tick thread, metrics
 *   scm_node.c       datanode registry, the health state machine,
 *                    registration, heartbeats and per-node command queues
 *   scm_pipeline.c   pipelines: placement, creation, opening, closing,
 *                    persistence
 *   scm_container.c  containers (reports, closing) and the local id
 *                    counter
 *   scm_block.c      AllocateBlock: pipeline and container choice,
 *                    reservation, exclude lists and their errors
 *   scm_service.c    RPC handlers (ScmDatanodeService, ScmBlockService,
 *                    ScmAdminService)
 *   scm_upgrade.c    HDDS finalization (ScmUpgradeService), fencing of
 *                    datanodes by version, FINALIZE_UPGRADE commands
 *
 * Locking (CONVENTIONS.md "Concurrency"): one mutex, scm->lock, guards
 * every field of struct scm except the local id allocator, which has its
 * own id_lock because refilling it costs a synced write. Functions named
 * scm__*_locked and every callback documented as "under the lock" run with
 * scm->lock held; nothing holds it across an RPC or a synced write. Writes
 * done under the lock are RocksDB puts without sync (WAL only): pipeline and
 * container records change rarely and a lost unsynced write after a power
 * failure only loses accounting, never a block id (those are synced).
 *
 * Ownership: struct scm owns every node, pipeline and container record;
 * pointers to them are valid only while the lock is held.
 */
#ifndef OZONE_SCM_INTERNAL_H
#define OZONE_SCM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "conf.h"
#include "err.h"
#include "hdds.pb-c.h"
#include "kv.h"
#include "rpc.h"
#include "scm.pb-c.h"
#include "version.h"

#define SCM_ID_MAX 64    /* datanode uuids, pipeline ids (+ NUL) */
#define SCM_HOST_MAX 256 /* host names, addresses */
#define SCM_MAX_NODES 4096
#define SCM_MAX_STORAGE 16 /* storage reports kept per datanode */
#define SCM_MAX_NODE_PIPELINES 64
#define SCM_MAX_NODE_COMMANDS 1024
#define SCM_MAX_HB_COMMANDS 256 /* commands sent in one heartbeat response */
#define SCM_MAX_MEMBERS 3
#define SCM_MAX_BLOCKS_PER_CALL 128
#define SCM_MAX_PIPELINES 65536
#define SCM_LOCAL_ID_BATCH 1000

/* Column families of SCM's RocksDB (main.c passes them to daemon). */
#define SCM_CF_PIPELINES "pipelineTable"
#define SCM_CF_CONTAINERS "containerTable"
#define SCM_CF_META "scmMeta"
#define SCM_META_LOCAL_ID_HIGH "localIdHighMark"
/* The datanodes a finalization must see finalized (scm_upgrade.c). */
#define SCM_META_FINALIZING_DNS "#FINALIZINGDATANODES"
#define SCM_FINALIZING_DNS_MAX 4096 /* cap of that list (read from disk) */
/* Who asked for the current or last finalization, as SCM logs it;
 * written with SCM_META_FINALIZING_DNS, kept after the finalization. */
#define SCM_META_FINALIZATION_REQUESTED_BY "#FINALIZATIONREQUESTEDBY"
#define SCM_REQUESTED_BY_MAX 256 /* with the NUL; longer values are cut */

struct scm_config
{
    long long block_size;       /* ozone.scm.block.size */
    long long container_size;   /* ozone.scm.container.size */
    long long heartbeat_ms;     /* hdds.heartbeat.interval */
    long long stale_ms;         /* ozone.scm.stale.node.interval */
    long long dead_ms;          /* ozone.scm.dead.node.interval */
    long long owner_containers; /* ozone.scm.pipeline.owner.container.count */
    long long pipeline_limit;   /* ozone.scm.datanode.pipeline.limit */
};

/* A copy of a datanode's DatanodeDetails. */
struct scm_node_addr
{
    char uuid[SCM_ID_MAX];
    char hostname[SCM_HOST_MAX];
    char ip[SCM_HOST_MAX];
    uint32_t container_port;
    uint32_t http_port;
    char location[SCM_HOST_MAX];
};

struct scm_storage
{
    char location[512];
    uint64_t capacity;
    uint64_t used;
    uint64_t remaining;
    bool failed;
};

/* A command queued for one datanode, resent until acked by id or until
 * the datanode's reports show its effect. */
struct scm_command
{
    uint64_t id;
    Ozone__Scm__CommandType type;
    uint64_t container_id;        /* CLOSE_CONTAINER */
    char pipeline_id[SCM_ID_MAX]; /* CREATE_PIPELINE, CLOSE_PIPELINE */
    uint32_t target_version;      /* FINALIZE_UPGRADE */
    int64_t last_sent_ms;         /* monotonic; 0 = never sent */
};

struct scm_node
{
    struct scm_node_addr addr;
    Ozone__Hdds__NodeState state;
    int64_t last_hb_ms;        /* monotonic clock */
    uint64_t last_hb_wall_ms;  /* wall clock, for ListDatanodes */
    uint32_t software_version; /* from the datanode's version header */
    uint32_t apparent_version;
    struct scm_storage storage[SCM_MAX_STORAGE];
    size_t n_storage;
    char pipeline_ids[SCM_MAX_NODE_PIPELINES][SCM_ID_MAX]; /* last report */
    size_t n_pipeline_ids;
    uint64_t container_count; /* containers in the last report */
    struct scm_command *cmds;
    size_t n_cmds;
    size_t cap_cmds;
    uint32_t finalize_told; /* last FINALIZE_UPGRADE target logged */
};

struct scm_pipeline
{
    char id[SCM_ID_MAX];
    Ozone__Hdds__ReplicationFactor factor;
    Ozone__Hdds__PipelineState state;
    struct scm_node_addr members[SCM_MAX_MEMBERS];
    size_t n_members;
    bool reported[SCM_MAX_MEMBERS]; /* member reported the id (ALLOCATED) */
    uint64_t created_ms;            /* wall clock */
    int64_t allocated_mono_ms;      /* when it became ALLOCATED (monotonic) */
    int64_t closed_mono_ms;         /* when it became CLOSED (monotonic) */
};

struct scm_container
{
    uint64_t id;
    Ozone__Hdds__ContainerState state;
    char pipeline_id[SCM_ID_MAX];
    Ozone__Hdds__ReplicationFactor factor;
    uint64_t used_bytes; /* reserved by AllocateBlock */
    uint64_t key_count;  /* blocks allocated */
    uint64_t size_limit;
    /* Expected replicas: the pipeline's members at creation. */
    char members[SCM_MAX_MEMBERS][SCM_ID_MAX];
    size_t n_members;
    /* Per member: state last reported (UNSPECIFIED: never reported) and
     * whether it acked a CLOSE_CONTAINER. */
    Ozone__Hdds__ContainerState reported[SCM_MAX_MEMBERS];
    bool close_acked[SCM_MAX_MEMBERS];
};

/* An error for an RPC answer: gRPC status, Ozone code, message. */
struct scm_error
{
    enum rpc_status status;
    Ozone__ResultCode code;
    char message[OZ_ERRMSG_SIZE];
};

/* One allocated block (a copy made under the lock). */
struct scm_block
{
    uint64_t container_id;
    uint64_t local_id;
    uint64_t length;
    struct scm_pipeline pipeline;
};

struct scm_gauge
{
    struct scm *scm;
    int kind; /* 0 datanodes, 1 pipelines, 2 containers */
    int state;
};

struct scm
{
    struct scm_config cfg;
    struct kv *kv; /* borrowed; outlives struct scm */
    int cf_pipelines, cf_containers, cf_meta;
    char cluster_id[128];
    /* SCM's apparent HDDS version, read at each use (finalization may
     * raise it while running). */
    unsigned (*apparent)(void *ctx);
    void *apparent_ctx;

    pthread_mutex_t lock;
    struct scm_node **nodes;
    size_t n_nodes;
    size_t cap_nodes;
    struct scm_pipeline **pipelines;
    size_t n_pipelines;
    size_t cap_pipelines;
    struct scm_container *containers; /* sorted by id (ids only grow) */
    size_t n_containers;
    size_t cap_containers;
    uint64_t next_container_id;
    uint64_t next_command_id;
    size_t pipeline_cursor; /* round-robin among candidates */
    int64_t start_mono_ms;  /* when this SCM started (restart grace) */

    pthread_mutex_t id_lock; /* guards the two fields below only */
    uint64_t next_local_id;
    uint64_t local_id_high; /* persisted: ids below it may be in use */

    /* Background tick thread (scm_background_start/stop). */
    pthread_t thread;
    bool thread_running;
    bool thread_stop;
    pthread_cond_t thread_cond;

    struct scm_gauge gauges[16];
    size_t n_gauges;

    /* HDDS upgrade (scm_upgrade.c). vm: SCM's version manager (borrowed;
     * NULL in unit tests, which then get no fencing and no finalization).
     * finalizing is guarded by lock; upgrade_lock serialises
     * FinalizeUpgrade calls and is taken before lock, never inside it. */
    struct version_manager *vm;
    bool finalizing;
    pthread_mutex_t upgrade_lock;
    /* The datanodes registered when SCM last finalized that have not
     * reported its apparent version since (guarded by lock; persisted as
     * SCM_META_FINALIZING_DNS): after a restart SCM knows no datanode
     * until it registers, and must not call HDDS finalized meanwhile. */
    char (*finalizing_dns)[SCM_ID_MAX];
    size_t n_finalizing_dns;
    /* Who asked for the current or last finalization (guarded by lock;
     * persisted as SCM_META_FINALIZATION_REQUESTED_BY); "" when none is
     * recorded. */
    char finalization_requested_by[SCM_REQUESTED_BY_MAX];
};

/* ---- scm_state.c ---- */

/* Reads and validates the keys of struct scm_config. OZ_ECONFIG with
 * errmsg naming the key on an invalid value. */
int scm_config_load(struct scm_config *cfg,
                    const struct conf *conf,
                    char *errmsg);

/* Creates the state and loads pipelines, containers and the local id high
 * mark from kv, which must have the SCM_CF_* families (borrowed, must
 * outlive the state). apparent() gives SCM's apparent version. OZ_ECORRUPT
 * with errmsg when a stored record cannot be decoded. now_mono_ms: the
 * monotonic clock at start (restart grace for unregistered members). */
int scm_state_new(struct scm **out,
                  const struct scm_config *cfg,
                  struct kv *kv,
                  const char *cluster_id,
                  unsigned (*apparent)(void *ctx),
                  void *apparent_ctx,
                  int64_t now_mono_ms,
                  char *errmsg);
/* Stops the background thread if running and frees; scm may be NULL. */
void scm_state_free(struct scm *scm);

/* One pass of the periodic work: node health, pipeline and container
 * upkeep. Takes the lock. */
void scm_tick(struct scm *scm, int64_t now_mono_ms, uint64_t now_wall_ms);

/* Starts/stops the thread that calls scm_tick every min(heartbeat/2, 1s). */
int scm_background_start(struct scm *scm, char *errmsg);
void scm_background_stop(struct scm *scm);

/* Registers the ozone_scm_* gauges (process-wide registry); the state
 * must outlive every later metrics_render. */
void scm_register_metrics(struct scm *scm);

/* Names for logs and errors. */
const char *scm__node_state_name(Ozone__Hdds__NodeState s);
const char *scm__pipeline_state_name(Ozone__Hdds__PipelineState s);
const char *scm__container_state_name(Ozone__Hdds__ContainerState s);
const char *scm__factor_name(Ozone__Hdds__ReplicationFactor f);
void scm__error(struct scm_error *err,
                enum rpc_status status,
                Ozone__ResultCode code,
                const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

/* ---- scm_node.c: the health state machine (pure) ---- */

/* True when the table allows from -> to. UNSPECIFIED as from means a
 * datanode not yet known (first registration). */
bool scm_node_transition_allowed(Ozone__Hdds__NodeState from,
                                 Ozone__Hdds__NodeState to);

/* The state a datanode should be in now: DEAD after dead_ms without a
 * heartbeat, STALE after stale_ms, else HEALTHY_READONLY when readonly
 * (apparent version below SCM's), else HEALTHY. */
Ozone__Hdds__NodeState scm_node_health_target(int64_t now_ms,
                                              int64_t last_hb_ms,
                                              int64_t stale_ms,
                                              int64_t dead_ms,
                                              bool readonly);

/* The next state on the way from -> target: target itself when the table
 * allows it, STALE on the way from a healthy state to DEAD, else from (no
 * move possible). */
Ozone__Hdds__NodeState scm_node_next_step(Ozone__Hdds__NodeState from,
                                          Ozone__Hdds__NodeState target);

/* ---- scm_node.c: registry, registration, heartbeats ---- */

/* Under the lock. NULL when unknown. */
struct scm_node *scm__node_find(struct scm *scm, const char *uuid);

/* Brings n to the state its last heartbeat and versions call for, moving
 * one allowed step at a time; every move is logged and a move out of the
 * writable states closes the node's pipelines. Under the lock. Returns the
 * number of moves. */
int scm__node_update(struct scm *scm, struct scm_node *n, int64_t now_ms);

/* Queues a command for n unless an identical one is queued. Under the
 * lock. */
void scm__node_queue(struct scm *scm,
                     struct scm_node *n,
                     Ozone__Scm__CommandType type,
                     uint64_t container_id,
                     const char *pipeline_id);

/* Handles RegisterDatanode: checks the cluster id and the details, adds
 * or refreshes the datanode, applies its reports. 0, or an error in err
 * (CLUSTER_ID_MISMATCH, INVALID_ARGUMENT, ...). Takes the lock. */
int scm_register_datanode(struct scm *scm,
                          const Ozone__VersionHeader *hdr,
                          const Ozone__Scm__RegisterRequest *req,
                          int64_t now_ms,
                          uint64_t now_wall_ms,
                          struct scm_error *err);

/* Called for each command to send, under the lock; p is the pipeline of a
 * pipeline command (NULL otherwise, or when the pipeline is gone). */
typedef void (*scm_emit_fn)(void *ctx,
                            const struct scm_command *cmd,
                            const struct scm_pipeline *p);

/* Handles Heartbeat: refreshes health and reports, drops acked commands,
 * and emits the commands due (at most SCM_MAX_HB_COMMANDS). An unknown
 * datanode gets one REREGISTER command. Takes the lock. */
int scm_heartbeat(struct scm *scm,
                  const Ozone__VersionHeader *hdr,
                  const Ozone__Scm__HeartbeatRequest *req,
                  int64_t now_ms,
                  uint64_t now_wall_ms,
                  scm_emit_fn emit,
                  void *emit_ctx,
                  struct scm_error *err);

/* Health pass over every node. Under the lock. */
void scm__nodes_tick(struct scm *scm, int64_t now_ms);

/* Whether a member is gone for good: DEAD, or not registered although SCM
 * has run longer than the dead interval. Under the lock. */
bool scm__member_gone(struct scm *scm, const char *uuid, int64_t now_ms);

/* ---- scm_pipeline.c ---- */

struct scm_pipeline *scm__pipeline_find(struct scm *scm, const char *id);
/* Active = ALLOCATED or OPEN. */
bool scm__pipeline_active(const struct scm_pipeline *p);
bool scm__pipeline_has(const struct scm_pipeline *p, const char *uuid);

/* Placement (pure): picks want of the n candidates (indexes into counts
 * and uuids) with the fewest active pipelines, skipping any set equal to
 * one of the taken sets (each n_members uuids). Writes the chosen indexes
 * to out, in candidate order. Returns 0 or OZ_ENOTFOUND. */
int scm_pipeline_place(const char *const *uuids,
                       const size_t *counts,
                       size_t n,
                       size_t want,
                       const char *const *taken_sets,
                       size_t n_taken,
                       size_t *out);

/* Creates an ALLOCATED pipeline of the given members (nodes, want of
 * them), persists it and queues CREATE_PIPELINE to each. Under the lock.
 * NULL on failure (logged). */
struct scm_pipeline *scm__pipeline_create(struct scm *scm,
                                          Ozone__Hdds__ReplicationFactor f,
                                          struct scm_node *const *members,
                                          size_t n,
                                          int64_t now_ms,
                                          uint64_t now_wall_ms);

/* Closes p (logs why), persists, sends CLOSE_PIPELINE to its members and
 * moves its open containers to CLOSING. Under the lock. */
void scm__pipeline_close(struct scm *scm,
                         struct scm_pipeline *p,
                         const char *reason,
                         int64_t now_ms);

/* Closes every active pipeline with uuid as a member. Under the lock. */
void scm__pipelines_close_for_node(struct scm *scm,
                                   const char *uuid,
                                   const char *reason,
                                   int64_t now_ms);

/* A datanode reported these pipeline ids: opens ALLOCATED pipelines that
 * every member reported, asks the node to close pipelines SCM has closed
 * or does not know. Under the lock. */
void scm__pipelines_report(struct scm *scm,
                           struct scm_node *n,
                           char *const *ids,
                           size_t n_ids);

/* Creates the pipelines healthy datanodes allow (ONE: one per node;
 * THREE: up to the per-node limit), closes ALLOCATED pipelines that did
 * not open in time and pipelines with members gone, forgets CLOSED ones
 * nobody reports any more. Under the lock. */
void scm__pipelines_tick(struct scm *scm, int64_t now_ms, uint64_t now_wall_ms);

/* Tries to create a pipeline of factor f avoiding the excluded datanodes
 * (AllocateBlock found none). Under the lock. NULL if not enough nodes. */
struct scm_pipeline *scm__pipeline_create_excluding(
    struct scm *scm,
    Ozone__Hdds__ReplicationFactor f,
    const Ozone__Hdds__ExcludeList *ex,
    int64_t now_ms,
    uint64_t now_wall_ms);

/* Updates the stored address of node uuid in every pipeline (a datanode
 * restarted on another port). Under the lock. */
void scm__pipelines_update_member(struct scm *scm,
                                  const struct scm_node_addr *addr);

/* Loads pipelineTable. OZ_ECORRUPT with errmsg on a bad record. */
int scm__pipelines_load(struct scm *scm, char *errmsg);
void scm__pipeline_persist(struct scm *scm, const struct scm_pipeline *p);

/* ---- scm_container.c, scm_block.c ---- */

struct scm_container *scm__container_find(struct scm *scm, uint64_t id);
/* Index of the first container with id >= id. */
size_t scm__container_lower_bound(struct scm *scm, uint64_t id);

/* Creates an OPEN container on p and persists it. Under the lock. */
struct scm_container *scm__container_create(struct scm *scm,
                                            const struct scm_pipeline *p);
/* OPEN -> CLOSING (logged with the reason) and CLOSE_CONTAINER to the
 * members. Under the lock. */
void scm__container_close(struct scm *scm,
                          struct scm_container *c,
                          const char *reason);
/* A datanode's container report / a CLOSE_CONTAINER ack. Under the
 * lock. */
void scm__containers_report(struct scm *scm,
                            struct scm_node *n,
                            Ozone__Hdds__ContainerReplicaReport *const *r,
                            size_t n_reports,
                            int64_t now_ms);
void scm__container_close_acked(struct scm *scm,
                                struct scm_node *n,
                                uint64_t container_id,
                                int64_t now_ms);
/* Keeps owner_containers OPEN containers on every OPEN pipeline; moves
 * CLOSING containers whose replicas are all closed to CLOSED. Under the
 * lock. */
void scm__containers_tick(struct scm *scm, int64_t now_ms);

/* AllocateBlock: n blocks (1..SCM_MAX_BLOCKS_PER_CALL) of replication f
 * avoiding ex (may be NULL). out has n entries. Takes the lock (and
 * id_lock). 0, or an error in err: FAILED_TO_FIND_HEALTHY_NODES,
 * UNAVAILABLE (a pipeline is being created: retry), INVALID_ARGUMENT. */
int scm_allocate_blocks(struct scm *scm,
                        Ozone__Hdds__ReplicationFactor f,
                        uint64_t size,
                        size_t n,
                        const Ozone__Hdds__ExcludeList *ex,
                        struct scm_block *out,
                        struct scm_error *err);

/* Hands out the next block local id (monotonic across restarts: batches
 * of SCM_LOCAL_ID_BATCH are reserved with a synced write). Takes
 * id_lock only. */
int scm__next_local_id(struct scm *scm, uint64_t *out, char *errmsg);

int scm__containers_load(struct scm *scm, char *errmsg);
int scm__local_id_load(struct scm *scm, char *errmsg);
void scm__container_persist(struct scm *scm, const struct scm_container *c);

/* ---- scm_upgrade.c: fencing and finalization (DESIGN.md §6.5-§6.7) ---- */

#define SCM_UPGRADE_MAX_BLOCKERS 32
#define SCM_UPGRADE_BLOCKER_LEN 192

/* The fencing decision for a datanode at registration and heartbeat
 * (DESIGN.md §6.6), pure. */
enum scm_fence {
    SCM_FENCE_OK = 0,
    SCM_FENCE_UPGRADE_SCM_FIRST, /* datanode software newer than SCM's */
    SCM_FENCE_UPGRADE_DATANODE,  /* SCM finalized past the datanode's bits */
    SCM_FENCE_FINALIZE_SCM_FIRST /* datanode apparent above SCM's */
};
enum scm_fence scm_fence_decide(unsigned scm_software,
                                unsigned scm_apparent,
                                unsigned dn_software,
                                unsigned dn_apparent);
/* The refusal text of a decision other than SCM_FENCE_OK, naming the
 * datanode and both versions, ending with the §6.6 sentence. */
void scm_fence_message(enum scm_fence f,
                       const char *uuid,
                       unsigned scm_software,
                       unsigned scm_apparent,
                       unsigned dn_software,
                       unsigned dn_apparent,
                       char *out,
                       size_t size);
/* Checks hdr of datanode uuid against SCM's versions: 0, or
 * OZ_EREFUSED with err (FAILED_PRECONDITION, UPGRADE_ORDER_VIOLATION).
 * Lock not needed. No-op when scm->vm is NULL. */
int scm__fence(struct scm *scm,
               const Ozone__VersionHeader *hdr,
               const char *uuid,
               struct scm_error *err);

/* One datanode as the status aggregation sees it. */
struct scm_upgrade_node
{
    const char *uuid;
    Ozone__Hdds__NodeState state;
    unsigned software;
    unsigned apparent;
    /* Registered when SCM finalized, not registered since SCM started
     * (state, software and apparent are unknown). */
    bool unseen;
};

struct scm_upgrade_summary
{
    Ozone__Scm__FinalizationStatus status;
    unsigned finalized; /* not DEAD, apparent >= SCM's apparent */
    unsigned total;     /* not DEAD */
    char blockers[SCM_UPGRADE_MAX_BLOCKERS][SCM_UPGRADE_BLOCKER_LEN];
    size_t n_blockers;
};

/* Pure status aggregation: FINALIZATION_REQUIRED while SCM is
 * pre-finalized (IN_PROGRESS while finalizing), then IN_PROGRESS until
 * every HEALTHY or HEALTHY_READONLY datanode reports SCM's apparent
 * version, then DONE. STALE and DEAD ones do not hold DONE back: they are
 * told when they return; unseen ones do (the caller passes them only
 * while they could still be alive). blockers name what finalization
 * waits for. */
void scm_upgrade_summarize(unsigned scm_software,
                           unsigned scm_apparent,
                           bool finalizing,
                           const struct scm_upgrade_node *nodes,
                           size_t n,
                           struct scm_upgrade_summary *out);

/* Under the lock, from a heartbeat: emits FINALIZE_UPGRADE to n while its
 * apparent version is below SCM's (every heartbeat until it reports). */
void scm__emit_finalize(struct scm *scm,
                        struct scm_node *n,
                        scm_emit_fn emit,
                        void *emit_ctx);

/* Loads SCM_META_FINALIZING_DNS into scm->finalizing_dns and
 * SCM_META_FINALIZATION_REQUESTED_BY into scm->finalization_requested_by
 * at start. OZ_ECORRUPT with errmsg when the stored list is malformed. */
int scm__upgrade_load(struct scm *scm, char *errmsg);

/* Registers ScmUpgradeService. scm->vm must be set. */
int scm_upgrade_register(struct scm *scm, struct rpc_server *srv, char *errmsg);

/* Registers the finalization gauges (DESIGN.md §12). */
void scm_upgrade_register_metrics(struct scm *scm);

/* ---- scm_service.c ---- */

/* Registers ScmDatanodeService, ScmBlockService and ScmAdminService on
 * srv with scm as handler data. */
int scm_service_register(struct scm *scm, struct rpc_server *srv, char *errmsg);

#endif
