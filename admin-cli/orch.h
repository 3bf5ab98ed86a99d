/* orch: the rolling-upgrade orchestrator (issue 7, DESIGN.md §2.1, §6.7):
 *
 *   ozone admin upgrade plan [--new-bin DIR|TAG] [--backend B] [--json]
 *   ozone admin upgrade run  --new-bin DIR|TAG --backend local|systemd|compose
 *                            [--dry-run] [--yes] [gate and timeout options]
 *   ozone admin upgrade run  --resume | --rollback
 *
 * Pieces (one file each):
 *   orch_inspect.c  the live cluster as a list of nodes with versions/state
 *   orch_plan.c     the ordered steps, refusals, checks, time estimate,
 *                   text and JSON output (`upgrade plan`)
 *   orch_gate.c     the safety gate: /prom snapshots, error rate and p99
 *   orch_backend.c  local / systemd / compose: stop, swap binary, start
 *   orch_run.c      executes a plan step by step under the OM lease,
 *                   journals every step in OM, --resume, --rollback
 *
 * Upgrade order SCM -> Recon -> datanodes -> OMs (followers first, the
 * leader last after its leadership is transferred to an upgraded
 * follower); rollback is the reverse. Finalize is never run from here.
 */
#ifndef OZONE_ORCH_H
#define OZONE_ORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "client_upgrade.h"
#include "version.h"

#define ORCH_NAME_SIZE 64
#define ORCH_ADDR_SIZE 256
#define ORCH_PATH_SIZE 1024
#define ORCH_MSG_SIZE 512
/* errmsg of the orch_backend_* calls: room for the tail of a node's log. */
#define ORCH_ERRMSG_SIZE 4096

/* Journal actions and statuses (OmUpgradeJournalEntry.action / status). */
#define ORCH_ACT_RUN "run"           /* step 0: run started/resumed/ended */
#define ORCH_ACT_PRECHECK "precheck" /* cluster checks before a step */
#define ORCH_ACT_TRANSFER "transfer" /* OM leadership moved away */
#define ORCH_ACT_STOP "stop"
#define ORCH_ACT_SWAP "swap" /* from_bin -> to_bin recorded */
#define ORCH_ACT_START "start"
#define ORCH_ACT_WAIT "wait"   /* node back and caught up */
#define ORCH_ACT_CHECK "check" /* cluster checks after a step */
#define ORCH_ACT_GATE "gate"   /* safety gate verdict */
#define ORCH_ACT_STEP "step"   /* the step as a whole */
#define ORCH_ACT_ROLLBACK "rollback"
#define ORCH_ST_BEGIN "BEGIN"
#define ORCH_ST_OK "OK"
#define ORCH_ST_FAILED "FAILED"
#define ORCH_ST_PAUSED "PAUSED" /* run-level: stopped, resumable */
#define ORCH_ST_DONE "DONE"     /* run-level: every step done */
#define ORCH_ST_ROLLED_BACK "ROLLED_BACK"

/* Exit statuses of `upgrade run` beyond cli.h's: the roll paused (gate or a
 * failed step; the journal says where; --resume / --rollback continue). */
enum { ORCH_EXIT_PAUSED = 3 };

enum orch_kind { ORCH_SCM = 0, ORCH_RECON, ORCH_DATANODE, ORCH_OM };
const char *orch_kind_name(enum orch_kind k); /* "SCM", "RECON", ... */

/* One daemon of the live cluster. */
struct orch_node
{
    enum orch_kind kind;
    char name[ORCH_NAME_SIZE];         /* "scm", "recon", DN uuid ("dn1"), OM
                                        * node id ("om1") */
    char rpc_address[ORCH_ADDR_SIZE];  /* host:port */
    char http_address[ORCH_ADDR_SIZE]; /* host:port of /prom, /healthz; ""
                                        * when unknown */
    char host[ORCH_ADDR_SIZE];         /* host part of rpc_address */
    bool reachable;                    /* answered GetVersion just now */
    char release[32];                  /* "1.0.0" from GetVersion */
    /* Indexed by enum version_catalog_id (OM, HDDS, CLIENT); 0 unknown. */
    unsigned software[3];
    unsigned apparent[3];
    /* DN: SCM's HEALTHY / STALE / DEAD / HEALTHY_READONLY and operational
     * state IN_SERVICE / DECOMMISSIONED / ...; OM: LEADER / FOLLOWER /
     * CANDIDATE / UNKNOWN; SCM and Recon: RUNNING or DOWN. */
    char state[32];
    char op_state[32];
    bool leader;            /* OM leader */
    uint64_t applied_index; /* OM: its own applied index */
};

struct orch_cluster
{
    struct orch_node *nodes; /* in upgrade order: SCM, Recon, DNs by name,
                              * OMs by name */
    size_t n;
    char scm_status[48]; /* SCM FinalizationStatus name */
    char om_status[48];  /* OM upgrade status ("FINALIZATION_REQUIRED"...) */
    char om_service_id[128]; /* "" single OM */
    char om_leader[ORCH_NAME_SIZE];
    uint64_t om_leader_applied;
    int pipelines_open; /* SCM's OPEN pipelines */
};

/* Reads the cluster from configuration and the daemons (SCM: version,
 * datanodes, pipelines, finalization status; OM: roles of every OM, each
 * OM's GetVersion and applied index; Recon at ozone.recon.address if set).
 * A daemon that does not answer is listed with reachable = false. Fails
 * (message in errmsg) only when SCM cannot be reached. */
int orch_inspect(struct cli *cli, struct orch_cluster *out, char *errmsg);
/* A client library handle with the orchestrator's short deadlines (2 s a
 * call, no waiting for a restarting OM), for om_target (NULL: the
 * configured OMs; "host:port": one OM, e.g. the leader's rpc_address).
 * 0, or a negative code with errmsg (OZ_ERRMSG_SIZE bytes, as for every
 * errmsg of this header). Free with oz_client_free(). */
int orch_client_open(struct cli *cli,
                     const char *om_target,
                     struct oz_client **out,
                     char *errmsg);
void orch_cluster_free(struct orch_cluster *c);
const struct orch_node *orch_cluster_find(const struct orch_cluster *c,
                                          const char *name);

/* What the roll moves to. */
struct orch_target
{
    char bin[ORCH_PATH_SIZE]; /* --new-bin as given: a directory holding
                               * `ozone` (local, systemd) or an image tag
                               * (compose) */
    bool known;               /* versions below were read from the binary */
    char release[32];
    unsigned software[3]; /* from `<bin>/ozone version --json` */
};

/* Runs `<dir>/ozone version --json` (local, systemd) and fills t; for
 * compose (an image tag) leaves t->known false. Fails with a message when
 * the binary is missing, not executable or does not answer. */
int orch_target_read(const char *backend,
                     const char *bin,
                     struct orch_target *t,
                     char *errmsg);

/* Knobs of plan and run (defaults from configuration keys
 * ozone.upgrade.*, overridden by CLI options). */
struct orch_options
{
    char backend[16];      /* local, systemd, compose; "" for plan */
    long step_timeout_ms;  /* ozone.upgrade.step.timeout (5m) */
    long dwell_ms;         /* ozone.upgrade.gate.window (10s) */
    double max_error_rate; /* ozone.upgrade.gate.max.error.rate
                            * (0.01 = 1% of client RPCs) */
    long max_p99_ms;       /* ozone.upgrade.gate.max.p99 (2s) */
    uint64_t max_om_lag;   /* ozone.upgrade.max.om.lag (10000) */
    long lease_ttl_ms;     /* ozone.upgrade.lease.timeout (2m) */
    bool dry_run;
    long dn_heartbeat_ms; /* hdds.heartbeat.interval (30s): the
                           * default estimate of a datanode step */
};
void orch_options_defaults(struct cli *cli, struct orch_options *o);
/* The same, but an invalid value of any key is an error: returns 0, or
 * OZ_EINVAL with errmsg naming the key, its value and what is expected
 * (o then holds the defaults for the keys that were invalid). */
int orch_options_read(struct cli *cli, struct orch_options *o, char *errmsg);

/* One step: restart one node on the target binary (or, rolling back, on
 * the binary it ran before). */
struct orch_step
{
    unsigned index; /* 1-based */
    size_t node;    /* index into cluster->nodes */
    char name[ORCH_NAME_SIZE];
    enum orch_kind kind;
    bool already_done;    /* the node already runs the target software */
    bool transfer_leader; /* OM leader: move leadership away first */
    long estimate_ms;
    char pre_checks[ORCH_MSG_SIZE];  /* one line: what is checked before */
    char post_checks[ORCH_MSG_SIZE]; /* one line: what is checked after */
};

struct orch_plan
{
    struct orch_step *steps;
    size_t n;
    long estimate_ms;         /* whole roll, steps not already done */
    char estimate_basis[128]; /* "defaults" or "measured in run R-..." */
    bool refused;
    char refusal[ORCH_MSG_SIZE * 2]; /* every reason, "; "-separated */
    bool rollback;                   /* built with rollback = true */
    char backend[16];                /* o->backend ("" when none) */
    /* What "cluster healthy" and "safety gate" stand for in the steps'
     * checks (the text output prints them once). */
    char health_checks[ORCH_MSG_SIZE / 2];
    char gate_checks[ORCH_MSG_SIZE / 2];
};

/* Builds the plan for moving cluster to target (t may be !known: every
 * node is a step). history (may be NULL): the journal of earlier runs,
 * for measured step durations. Always fills out; out->refused says whether
 * the roll may start. rollback: the reverse order over nodes that run
 * the target (used by --rollback). */
int orch_plan_build(const struct orch_cluster *c,
                    const struct orch_target *t,
                    const struct orch_options *o,
                    const Ozone__Om__OmUpgradeJournalReadResponse *history,
                    bool rollback,
                    struct orch_plan *out);
void orch_plan_free(struct orch_plan *p);
/* `upgrade plan` output: the text form (order, checks, point of no
 * return, estimate) to stdout, or the JSON object. */
void orch_plan_print(const struct orch_cluster *c,
                     const struct orch_target *t,
                     const struct orch_plan *p);
cJSON *orch_plan_json(const struct orch_cluster *c,
                      const struct orch_target *t,
                      const struct orch_plan *p);

/* Cluster checks used before and after each step. Returns true when the
 * cluster may go on; otherwise why (one sentence naming the node and what
 * to do). Checks: SCM reachable; every IN_SERVICE datanode HEALTHY (or
 * HEALTHY_READONLY); an OPEN pipeline when there are datanodes; an OM
 * leader; every OM reachable and within max_om_lag of the leader;
 * versions form a valid upgrade state (orch_versions_valid). */
bool orch_cluster_healthy(const struct orch_cluster *c,
                          const struct orch_options *o,
                          char *why,
                          size_t why_size);
/* A valid mid-roll state: along SCM -> Recon -> DNs -> OMs, no node runs
 * newer software than a node before it in the order (DESIGN.md §2.1). */
bool orch_versions_valid(const struct orch_cluster *c,
                         char *why,
                         size_t why_size);

/* ---- safety gate (orch_gate.c) ---- */

/* Counters summed over the client-facing RPC services (OzoneManagerService
 * on OMs, DatanodeService on datanodes) of every reachable daemon's /prom:
 * requests, server-side errors (ozone_rpc_server_errors_total) and the
 * latency histogram, per instance so a restarted daemon (counters reset)
 * is handled like Prometheus' increase(). */
struct orch_prom_snapshot;
/* Fetches /prom of every reachable OM and datanode with an http_address
 * (2 s each; a daemon that does not answer is left out). 0, or OZ_ENOMEM.
 * *out: caller frees with orch_gate_snapshot_free(). */
int orch_gate_snapshot(const struct orch_cluster *c,
                       struct orch_prom_snapshot **out);
void orch_gate_snapshot_free(struct orch_prom_snapshot *s);
/* The pure parts of orch_gate_snapshot, for tests and other sources: an
 * empty snapshot (NULL on OOM), and adding one instance's /prom text
 * (borrowed) under a name (copied; the same name twice replaces it).
 * 0, or OZ_ENOMEM. */
struct orch_prom_snapshot *orch_gate_snapshot_new(void);
int orch_gate_snapshot_add(struct orch_prom_snapshot *s,
                           const char *instance,
                           const char *prom_text);
/* Instances held (those that answered). */
size_t orch_gate_snapshot_count(const struct orch_prom_snapshot *s);

struct orch_gate_result
{
    uint64_t requests;
    uint64_t errors;
    double error_rate; /* errors / requests; 0 with no requests */
    double p99_ms;     /* from the latency histogram delta; 0 no data */
    bool pass;
    char why[ORCH_MSG_SIZE]; /* when !pass: which threshold, measured */
    size_t instances;        /* daemons measured (in the after snapshot) */
    size_t restarted;        /* of them, counters reset since before */
};
void orch_gate_eval(const struct orch_prom_snapshot *before,
                    const struct orch_prom_snapshot *after,
                    const struct orch_options *o,
                    struct orch_gate_result *r);

/* ---- backends (orch_backend.c) ---- */

/* The local backend's manifest, written by deploy/local/ozone_local.py at
 * every start/stop and rewritten (atomically: temp file + rename) by the
 * local backend after it stops or starts a node:
 *
 *   {"version": 1, "conf_dir": "/abs/conf",
 *    "nodes": [{"name": "dn1", "kind": "datanode",
 *               "binary": "/abs/old-bin/ozone",     // the executable
 *               "args": ["datanode", "--conf", "/abs/conf", "-D", "k=v"],
 *               "env": {"OZONE_FAULT": "..."},      // added to environ
 *               "log": "/abs/logs/dn1.log",         // stdout+stderr, append
 *               "pid": 1234,                        // 0: not running
 *               "rpc_address": "127.0.0.1:p", "http_address": "127.0.0.1:p"}]}
 *
 * kind is scm, om, datanode or recon; name matches orch_node.name. The
 * backend starts a node as `<dir>/ozone <args...>` in a new session
 * (double fork, so it outlives the orchestrator), and the binary it records
 * is `<dir>/ozone`; orch_backend_current_bin() returns the directory. */
struct orch_backend;
/* local: --local-manifest PATH (default <conf dir>/../cluster.json, the
 * file deploy/local/ozone_local.py writes); systemd: --systemd-unit-dir
 * (default /etc/systemd/system); compose: --compose-dir (default
 * deploy/compose of the install, holding the compose files and .env). */
struct orch_backend_args
{
    const char *name; /* local, systemd, compose */
    const char *local_manifest;
    const char *systemd_unit_dir;
    const char *compose_dir;
    bool dry_run; /* print each command/file instead of doing it */
    FILE *out;    /* where dry-run lines go; NULL: stdout */
};
int orch_backend_open(struct cli *cli,
                      const struct orch_backend_args *a,
                      struct orch_backend **out,
                      char *errmsg);
void orch_backend_close(struct orch_backend *b);
/* The binary (dir or tag) node runs now, per the backend's records. */
int orch_backend_current_bin(struct orch_backend *b,
                             const struct orch_node *n,
                             char *out,
                             size_t size,
                             char *errmsg);
/* Stops node (SIGTERM, drain, wait up to timeout_ms, then SIGKILL). */
int orch_backend_stop(struct orch_backend *b,
                      const struct orch_node *n,
                      long timeout_ms,
                      char *errmsg);
/* Starts node on bin (records bin as its binary). Returns once the
 * process runs; errmsg carries the tail of its log when it exits at once. */
int orch_backend_start(struct orch_backend *b,
                       const struct orch_node *n,
                       const char *bin,
                       char *errmsg);
/* Whether the node's process still runs (false also when unknown). */
bool orch_backend_alive(struct orch_backend *b, const struct orch_node *n);

/* Every errmsg above is ORCH_ERRMSG_SIZE bytes. Calls return 0, or
 * OZ_EINVAL (bad bin/tag, node not in the manifest), OZ_ENOTFOUND (missing
 * manifest, unit dir, compose files or executable), OZ_EIO (a command or
 * file operation failed), OZ_ETIMEDOUT (a command or stop ran out of
 * time), OZ_ESTATE (start of a node that runs already, or a node that
 * exited at once: errmsg holds the last lines of its log).
 *
 * Helpers of the backends, exposed for their tests: */

/* systemd: the unit that runs n ("ozone-scm.service", "ozone-recon.service",
 * "ozone-datanode.service", "ozone-om@<name>.service"). */
int orch_systemd_unit(const struct orch_node *n, char *out, size_t size);
/* systemd: the drop-in 50-ozone-upgrade.conf that makes n's unit run
 * <bin>/ozone with the shipped unit's arguments (deploy/systemd). bin must
 * be an absolute directory without whitespace, quotes or backslashes
 * (OZ_EINVAL with errmsg otherwise); '%' is escaped for systemd. */
int orch_systemd_dropin(const struct orch_node *n,
                        const char *bin,
                        char *out,
                        size_t size,
                        char *errmsg);
/* compose: sets NAME=value in the dotenv file path (replaces the first
 * NAME= line and drops later ones, or appends it; creates the file),
 * atomically (temp file, fsync, rename). value must not hold whitespace,
 * quotes, '$', '#' or a backslash (OZ_EINVAL). */
int orch_env_file_set(const char *path,
                      const char *name,
                      const char *value,
                      char *errmsg);

/* ---- commands; argv[0] is "plan" / "run" / "journal" ---- */
int orch_cmd_plan(struct cli *cli, int argc, char **argv); /* orch_plan.c */
int orch_cmd_run(struct cli *cli, int argc, char **argv);  /* orch_run.c */
/* cmd_upgrade_journal.c */
int cmd_upgrade_journal(struct cli *cli, int argc, char **argv);

#endif
