/* Recon's state and the interfaces between its files (DESIGN.md §9).
 * Private to services/recon.
 *
 *   recon_state.c    datanodes, containers, pipelines, components, the
 *                    journal and task status, under recon->lock, persisted
 *                    in Recon's own DB (d->kv)
 *   recon_om_sync.c  the OM copy: full sync from /dbCheckpoint, DBUpdates
 *                    deltas, the version-aware choice between them
 *   recon_om_service.c the OM service's nodes and which one leads
 *   recon_scm_sync.c polls SCM (containers, pipelines, datanodes, versions)
 *                    and every OM's GetVersion
 *   recon_dn.c       ScmDatanodeService for datanode reports
 *   recon_api.c      the JSON API (/api/v1/...), cJSON only here
 *   recon_web.c      the dashboard's static files
 *
 * Locks: recon->lock guards every in-memory table and the numbers shown
 * about the OM copy; it is held only to copy in or out, never across a
 * call to another daemon or a disk scan. recon->om_lock (rwlock) guards
 * the OM copy's kv pointer: readers (API listings, delta applies) hold it
 * shared, the swap after a full sync holds it exclusively. Order: om_lock
 * before lock.
 */
#ifndef OZONE_RECON_INTERNAL_H
#define OZONE_RECON_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "hdds.pb-c.h"
#include "kv.h"
#include "metrics.h"
#include "om.pb-c.h"
#include "rpc.h"
#include "scm.pb-c.h"

/* Recon's own tables (column families of d->kv). */
#define RECON_CF_DATANODES "reconDatanodes"
#define RECON_CF_SCM "reconScm"
#define RECON_CF_COMPONENTS "reconComponents"
#define RECON_CF_JOURNAL "reconJournal"
extern const char *const recon_cf_names[4];

#define RECON_JOURNAL_MAX 1000
#define RECON_ID_MAX 128
#define RECON_ADDR_MAX 256
#define RECON_MAX_MEMBERS 8

/* ---- configuration ---- */

struct recon_config
{
    long long om_interval_ms; /* ozone.recon.om.snapshot.task.interval.delay */
    long long om_updates_limit;  /* ozone.recon.om.db.updates.limit */
    long long scm_interval_ms;   /* ozone.recon.scm.poll.interval */
    long long stale_ms, dead_ms; /* ozone.scm.{stale,dead}.node.interval */
    long long checkpoint_max;    /* ozone.recon.om.checkpoint.max.size */
    long long http_timeout_ms;   /* ozone.recon.om.checkpoint.timeout */
};

int recon_config_load(struct recon_config *cfg,
                      const struct conf *conf,
                      char *errmsg);

/* ---- tables ---- */

struct recon_dn
{
    char uuid[RECON_ID_MAX];
    char hostname[RECON_ADDR_MAX];
    char ip[64];
    char location[RECON_ADDR_MAX];
    uint32_t container_port, http_port;
    uint32_t software_version, apparent_version;
    int64_t last_report_ms;   /* wall clock of the last report to Recon; 0 */
    int64_t scm_heartbeat_ms; /* last heartbeat SCM saw; 0 */
    Ozone__Hdds__NodeState scm_state; /* UNSPECIFIED: SCM never listed it */
    uint64_t capacity, used, remaining;
    uint64_t n_containers;
    char **pipeline_ids;
    size_t n_pipeline_ids;
    uint64_t *container_ids; /* reported to Recon, sorted */
    size_t n_container_ids;
};

struct recon_container
{
    uint64_t id;
    Ozone__Hdds__ContainerState state;
    char pipeline_id[RECON_ID_MAX];
    uint32_t factor;
    uint64_t used_bytes, key_count;
    char replicas[RECON_MAX_MEMBERS][RECON_ID_MAX];
    size_t n_replicas;
};

struct recon_pipeline
{
    char id[RECON_ID_MAX];
    uint32_t factor;
    Ozone__Hdds__PipelineState state;
    uint64_t created_ms;
    char members[RECON_MAX_MEMBERS][RECON_ID_MAX];
    char hostnames[RECON_MAX_MEMBERS][RECON_ADDR_MAX];
    size_t n_members;
};

/* A process Recon knows of: every OM, SCM, datanode and Recon itself. */
struct recon_component
{
    char type[16]; /* "OM", "SCM", "DATANODE", "RECON" */
    char node_id[RECON_ID_MAX];
    char address[RECON_ADDR_MAX];
    char release[32];
    uint32_t software_version, apparent_version;
    char health[24]; /* "HEALTHY", "UNREACHABLE", datanode states */
    int64_t last_seen_ms;
    /* SCM and OM: the finalization status they last reported
     * (QueryUpgradeStatus), "UNKNOWN" when they cannot say (an older
     * build answered UNIMPLEMENTED); "" before asked. Not persisted. */
    char finalization[32];
    /* ... and who they say asked for their current or last finalization;
     * "" when they do not say (nothing recorded, an older build). Not
     * persisted. */
    char finalization_requested_by[256];
};

/* A blocker of finalization reported by SCM or an OM. */
#define RECON_MAX_FIN_BLOCKERS 32
struct recon_fin_blocker
{
    char type[16]; /* "SCM", "OM" */
    char node_id[RECON_ID_MAX];
    char reason[256];
};

struct recon_event
{
    uint64_t seq;
    int64_t time_ms;
    char component[16];
    char node_id[RECON_ID_MAX];
    char event[256];
};

enum recon_task_id {
    RECON_TASK_OM_SNAPSHOT, /* full sync */
    RECON_TASK_OM_DELTA,    /* DBUpdates */
    RECON_TASK_SCM_SYNC,
    RECON_TASK_COUNT
};

struct recon_task
{
    const char *name;
    int64_t last_updated_ms; /* last success */
    uint64_t last_seq;
    char status[16]; /* NEVER_RUN, RUNNING, OK, FAILED */
    char last_error[512];
    int64_t last_error_ms;
    uint64_t runs, failures;
};

/* How Recon syncs from the OM it talks to (recon_om_sync_mode). */
enum recon_sync_mode {
    RECON_SYNC_INCREMENTAL, /* checkpoint once, then DBUpdates */
    RECON_SYNC_FULL_ONLY,   /* a checkpoint every interval */
};

/* What is known about the OM copy (numbers only; the kv is om_copy). */
struct recon_om_view
{
    bool present;
    char source_node[RECON_ID_MAX]; /* the OM the copy is of */
    char leader_node[RECON_ID_MAX]; /* the OM leader last found; "" */
    uint64_t sequence;              /* OM sequence applied */
    uint64_t om_latest;             /* OM's latest sequence when last asked */
    uint64_t volumes, buckets, keys, open_keys;
    int64_t synced_ms;
    enum recon_sync_mode mode;
    char mode_reason[256];
    uint32_t om_software, om_apparent;
};

struct recon_om_copy
{
    struct kv *kv;
    char dir[4200];
    uint64_t generation;
};

struct recon
{
    struct daemon *d; /* borrowed */
    struct recon_config cfg;
    int cf[4]; /* recon_cf_names in d->kv; -1 without a kv */

    pthread_mutex_t lock;
    struct recon_dn **dns;
    size_t n_dns, cap_dns;
    struct recon_container *containers; /* sorted by id */
    size_t n_containers;
    struct recon_pipeline *pipelines;
    size_t n_pipelines;
    struct recon_component *components;
    size_t n_components, cap_components;
    struct recon_event journal[RECON_JOURNAL_MAX]; /* ring */
    size_t journal_start, journal_len;
    uint64_t journal_seq;
    struct recon_task tasks[RECON_TASK_COUNT];
    struct recon_om_view om;
    uint32_t hdds_apparent_from_scm; /* 0 until SCM answered */
    uint32_t hdds_software_of_scm;
    char scm_cluster_id[RECON_ID_MAX];
    /* SCM's QueryUpgradeStatus: status name ("" before the first answer,
     * "UNKNOWN" when SCM answered UNIMPLEMENTED), datanode counts. */
    char scm_finalization[32];
    uint32_t scm_dns_finalized, scm_dns_total;
    struct recon_fin_blocker fin_blockers[RECON_MAX_FIN_BLOCKERS];
    size_t n_fin_blockers;
    /* The rolling-upgrade orchestrator's newest run as the OM leader's
     * journal last gave it (recon_json_rolling's document, NULL before the
     * first poll), and what was journaled of it last. Not persisted. */
    char *rolling_json;
    char rolling_run[RECON_ID_MAX];
    char rolling_state[24];
    uint32_t rolling_step;

    pthread_rwlock_t om_lock;
    struct recon_om_copy *om_copy; /* under om_lock */

    /* The two sync threads. */
    pthread_cond_t cond; /* CLOCK_MONOTONIC, with lock */
    bool stop;
    bool om_trigger, om_trigger_full;
    bool scm_trigger;
    pthread_t om_thread, scm_thread;
    bool om_started, scm_started;

    struct metric *m_full_syncs, *m_full_failures;
    struct metric *m_delta_syncs, *m_delta_failures;
    struct metric *m_updates_applied;
    struct metric *m_scm_failures;
    struct metric *m_dn_reports;
};

/* ---- recon_state.c ---- */

/* Creates the state; kv may be NULL (unit tests: nothing persisted). On
 * success *out is freed with recon_free. Loads what kv holds. */
int recon_new(struct recon **out,
              struct daemon *d,
              struct kv *kv,
              const struct recon_config *cfg,
              char *errmsg);
/* Threads must be stopped. r may be NULL. */
void recon_free(struct recon *r);

int64_t recon_now_ms(void); /* wall clock, ms since the epoch */

/* Under r->lock. Finds or adds a datanode by uuid (NULL on OOM). */
struct recon_dn *recon__dn_get(struct recon *r, const char *uuid, bool add);

/* Health of dn at now: Recon's own judgement from the last report with
 * SCM's stale/dead intervals when the datanode reports to Recon, else
 * SCM's state. HEALTHY_READONLY when behind SCM's HDDS apparent version.
 * Under r->lock. */
Ozone__Hdds__NodeState recon_dn_state(const struct recon *r,
                                      const struct recon_dn *dn,
                                      int64_t now_ms);
const char *recon_node_state_name(Ozone__Hdds__NodeState s);

/* Records a datanode report (register or heartbeat). Takes r->lock. */
void recon_dn_report(struct recon *r,
                     const Ozone__VersionHeader *peer,
                     const Ozone__Hdds__DatanodeDetails *details,
                     const char *uuid,
                     Ozone__Hdds__StorageReport *const *storage,
                     size_t n_storage,
                     Ozone__Hdds__ContainerReplicaReport *const *containers,
                     size_t n_containers,
                     char *const *pipeline_ids,
                     size_t n_pipeline_ids,
                     bool registration,
                     int64_t now_ms);

/* Replaces SCM's tables (ownership of nothing; copied). Takes r->lock. */
void recon_set_scm_nodes(struct recon *r,
                         Ozone__Scm__DatanodeInfo *const *nodes,
                         size_t n,
                         int64_t now_ms);
void recon_set_scm_containers(struct recon *r,
                              Ozone__Hdds__ContainerInfo *const *c,
                              size_t n);
void recon_set_scm_pipelines(struct recon *r,
                             Ozone__Hdds__Pipeline *const *p,
                             size_t n);

/* Records what Recon saw of a component and journals changes: first
 * sight, another software version (a restart with new or old bits), a
 * new apparent version (finalization), health changes. address/release
 * may be NULL (kept). Takes r->lock. */
void recon_observe(struct recon *r,
                   const char *type,
                   const char *node_id,
                   const char *address,
                   const char *release,
                   uint32_t software,
                   uint32_t apparent,
                   const char *health,
                   int64_t now_ms);
/* Marks a component unreachable (journaled once per change). */
void recon_observe_unreachable(struct recon *r,
                               const char *type,
                               const char *node_id,
                               const char *address,
                               int64_t now_ms);

/* Appends to the journal (and persists it). Under r->lock. */
void recon__journal(struct recon *r,
                    int64_t now_ms,
                    const char *component,
                    const char *node_id,
                    const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

/* Records a finalization status reported by SCM or an OM (status NULL:
 * "UNKNOWN") and replaces that node's blockers; journals status changes
 * ("SCM finalization started by 'OM om1/ozone admin upgrade finalize'",
 * "SCM finalized to HDDS 102"). apparent and software are the reporter's
 * own versions; requested_by who it says asked for its current or last
 * finalization (borrowed; NULL or "" when it does not say: the journal
 * then names nobody). Takes r->lock. */
void recon_observe_finalization(struct recon *r,
                                const char *type,
                                const char *node_id,
                                const char *status,
                                uint32_t software,
                                uint32_t apparent,
                                char *const *blockers,
                                size_t n_blockers,
                                const char *requested_by,
                                int64_t now_ms);

/* Replaces the rolling-upgrade document (json: recon_json_rolling's,
 * ownership taken; NULL leaves the old one) and journals a change of the
 * newest run's state or step (component ORCHESTRATOR, node the run id:
 * "rolling upgrade PAUSED at step 7/9 om1"). run_id "" when there is no
 * run. Takes r->lock. */
void recon_observe_rolling(struct recon *r,
                           char *json,
                           const char *run_id,
                           const char *state,
                           uint32_t step,
                           uint32_t steps,
                           const char *node,
                           int64_t now_ms);

/* Re-judges every datanode's health and journals changes (a datanode
 * that stops reporting turns STALE, then DEAD). Takes r->lock. */
void recon_refresh_health(struct recon *r, int64_t now_ms);

/* Task bookkeeping. Take r->lock. */
void recon_task_start(struct recon *r, enum recon_task_id t);
void recon_task_ok(struct recon *r,
                   enum recon_task_id t,
                   uint64_t seq,
                   int64_t now_ms);
void recon_task_failed(struct recon *r,
                       enum recon_task_id t,
                       const char *msg,
                       int64_t now_ms);

/* Whether a container counts as missing: it holds data (blocks or bytes)
 * and no replica of it is on a datanode that is not DEAD. Under r->lock. */
bool recon_container_missing(const struct recon *r,
                             const struct recon_container *c,
                             int64_t now_ms);

/* ---- recon_om_sync.c ---- */

/* DESIGN.md §2.1: Recon is upgraded before OM, so the OM may be older.
 * The rule: DBUpdates exists from OM version ZDU_READY (100, release
 * 1.0.0); an OM whose apparent OM version is below it (a pre-ZDU layout)
 * gets full syncs only. An OM that answered UNIMPLEMENTED for DBUpdates
 * (a build without OmDbService) also gets full syncs only, for as long as
 * it runs the software version it ran then (unimplemented_at_software; 0
 * when never seen). reason (may be NULL, size bytes) says why. */
enum recon_sync_mode recon_om_sync_mode(uint32_t om_apparent,
                                        uint32_t om_software,
                                        uint32_t unimplemented_at_software,
                                        char *reason,
                                        size_t size);

/* Why the next sync must take a full checkpoint instead of continuing the
 * copy with DBUpdates, checked in this order. */
enum recon_full_reason {
    RECON_FULL_NONE,     /* DBUpdates may continue the copy */
    RECON_FULL_NO_COPY,  /* no copy yet */
    RECON_FULL_OTHER_OM, /* the copy is of another OM than the leader */
    RECON_FULL_ASKED,    /* triggerdbsync with a full sync */
    RECON_FULL_ONLY,     /* mode RECON_SYNC_FULL_ONLY */
};

/* The choice for a copy of copy_node (when have_copy) while leader_node
 * leads: sequence numbers are per OM DB, so a copy of another OM is never
 * continued with the leader's deltas (recon_om_sync.c says why). reason
 * (may be NULL, size bytes) says why; "" for RECON_FULL_NONE. */
enum recon_full_reason recon_om_full_reason(bool have_copy,
                                            const char *copy_node,
                                            const char *leader_node,
                                            enum recon_sync_mode mode,
                                            bool asked,
                                            char *reason,
                                            size_t size);

/* Opens the OM copy left by an earlier run (if any) and starts the sync
 * thread. */
int recon_om_sync_start(struct recon *r, char *errmsg);
void recon_om_sync_stop(struct recon *r);
/* Asks the sync thread to run now (full: a checkpoint). */
void recon_om_sync_trigger(struct recon *r, bool full);

/* Calls fn for up to limit entries of an OM table of the copy, from the
 * first key after prev (NULL: from the start), under om_lock (shared).
 * fn returns false to stop. Returns OZ_ENOTFOUND when there is no copy. */
int recon_om_scan(struct recon *r,
                  const char *table,
                  const char *prev,
                  bool (*fn)(void *ctx,
                             const void *key,
                             size_t klen,
                             const void *val,
                             size_t vlen),
                  void *ctx);

/* ---- recon_om_service.c ---- */

#define RECON_MAX_OMS 8

/* One OM of the service as Recon's configuration names it. */
struct recon_om_node
{
    char node_id[RECON_ID_MAX];        /* "" for a lone OM (no service) */
    char rpc_address[RECON_ADDR_MAX];  /* dialable host:port */
    char http_address[RECON_ADDR_MAX]; /* dialable; "" when not configured */
};

/* The OMs from the configuration: the first service of
 * ozone.om.service.ids with each node's ozone.om.address.<sid>.<node> and
 * ozone.om.http-address.<sid>.<node>, else one node from
 * ozone.om.address and ozone.om.http-address. Returns the count (at least
 * 1 when max > 0, at most max). service (may be NULL) receives the
 * service id, "" without one. */
size_t recon_om_nodes(const struct conf *conf,
                      struct recon_om_node *nodes,
                      size_t max,
                      char *service,
                      size_t size);

/* The RPC addresses of recon_om_nodes. Returns the count (at most max). */
size_t recon_om_addresses(const struct conf *conf,
                          char addrs[][RECON_ADDR_MAX],
                          size_t max);

enum recon_roles_verdict {
    RECON_ROLES_SELF,     /* the node asked is the leader */
    RECON_ROLES_REDIRECT, /* it names another node of nodes: *next */
    RECON_ROLES_NONE,     /* it knows no leader, or one not in nodes */
};

/* Judges the Roles answer of nodes[asked]: the leader it names, matched
 * by node id, else by the RPC address the answer gives for it. *next is
 * the leader's index (asked for SELF; n for NONE); reason says what the
 * answer said, for the log and the task status. */
enum recon_roles_verdict recon_om_roles_verdict(
    const Ozone__Om__OmRolesResponse *resp,
    const struct recon_om_node *nodes,
    size_t n,
    size_t asked,
    size_t *next,
    char *reason,
    size_t size);

/* The service and a client per node (one attempt per call: an answer
 * comes from the node asked). Owned by the OM sync thread. */
struct recon_om_service
{
    struct recon_om_node nodes[RECON_MAX_OMS];
    struct rpc_client *clients[RECON_MAX_OMS];
    size_t n;
    char service_id[128];
    size_t leader; /* the last leader found; n before the first */
};

/* Reads the nodes from d's configuration and creates the clients. On
 * failure everything is released. */
int recon_om_service_open(struct recon_om_service *s,
                          struct daemon *d,
                          char *errmsg);
void recon_om_service_close(struct recon_om_service *s);

/* Finds the leader with Roles (see recon_om_service.c): 0 and its index
 * in s->nodes, remembered in s->leader; OZ_EUNAVAILABLE with errmsg
 * naming what each node answered when no node names itself leader. A
 * lone OM is the leader without a call. Blocks on RPCs. */
int recon_om_service_leader(struct recon_om_service *s,
                            size_t *index,
                            char *errmsg);

/* ---- recon_scm_sync.c ---- */

int recon_scm_sync_start(struct recon *r, char *errmsg);
void recon_scm_sync_stop(struct recon *r);

/* Sleeps up to ms on r->cond or until stop/trigger flag *flag is set;
 * false when stopping. Caller does not hold r->lock. */
bool recon__wait(struct recon *r, long long ms, bool *flag);

/* ---- recon_dn.c ---- */

int recon_dn_service_register(struct recon *r, char *errmsg);

/* ---- recon_api.c ---- */

/* JSON documents (malloc'd, caller frees; NULL on OOM). now_ms is the
 * time health is judged at. Take r->lock. */
char *recon_json_cluster_state(struct recon *r, int64_t now_ms);
char *recon_json_datanodes(struct recon *r, int64_t now_ms);
char *recon_json_pipelines(struct recon *r, int64_t now_ms);
char *recon_json_containers(struct recon *r, uint64_t prev_key, size_t limit);
char *recon_json_missing_containers(struct recon *r, int64_t now_ms);
char *recon_json_task_status(struct recon *r);
char *recon_json_upgrade(struct recon *r, int64_t now_ms);
/* The "rollingUpgrade" object of /api/v1/upgrade from a journal read of
 * the newest run (view; NULL: unavailable, reason says why): the run's
 * state, step, lease and its last RECON_ROLLING_ENTRIES entries; source
 * names the OM that answered. Malloc'd text, NULL on OOM. */
#define RECON_ROLLING_ENTRIES 50
char *recon_json_rolling(const Ozone__Om__OmUpgradeJournalReadResponse *view,
                         const char *source,
                         const char *reason,
                         int64_t now_ms);
/* Open keys of the OM copy (takes om_lock). */
char *recon_json_open_keys(struct recon *r, const char *prev_key, size_t limit);
char *recon_json_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

void recon_api_register(struct recon *r);

/* ---- recon_web.c ---- */

/* Serves / and the /static/ files from the web directory (ozone.recon.web.dir,
 * else the installed one, else the source tree's). */
void recon_web_register(struct recon *r);

#endif
