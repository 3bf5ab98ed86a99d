/* daemon: the skeleton every ozone-c daemon shares (CONVENTIONS.md "Every
 * daemon has the same skeleton"; DESIGN.md §4 start-up order):
 *
 *   parse args and config -> open storage (VERSION, RocksDB) -> check
 *   versions (§6.4) -> service setup -> start gRPC and HTTP servers ->
 *   announce ready -> wait for signals -> drain and close.
 *
 * Threading: the main thread owns start-up and shutdown and then only waits
 * for signals (SIGTERM/SIGINT stop, SIGHUP reopens logs); every signal is
 * blocked in all other threads. RPC handlers run on the rpc module's
 * completion-queue threads, HTTP handlers on libmicrohttpd's threads;
 * services add their own threads in setup() and join them in teardown().
 */
#ifndef OZONE_DAEMON_H
#define OZONE_DAEMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "http.h"
#include "kv.h"
#include "rpc.h"
#include "version.h"

#define DAEMON_MAX_RPC_ADDRS 4

struct daemon;

/* Static description of one daemon kind. */
struct daemon_def
{
    const char *name;  /* "om": subdirectory, log component */
    const char *title; /* "Ozone Manager" */
    Ozone__Component component;
    enum version_catalog_id catalog;
    const char *node_type; /* VERSION nodeType: "OM" */
    const char *id_key;    /* VERSION node id key: "omUuid" */
    /* true: storage is created only by --init (OM, SCM); false: created at
     * the first start (datanode, Recon). */
    bool needs_init;
    const char *dir_key; /* e.g. "ozone.om.db.dirs"; falls back to
                            ozone.metadata.dirs */
    /* gRPC addresses to bind: config keys and their defaults. */
    const char *rpc_addr_keys[DAEMON_MAX_RPC_ADDRS];
    const char *rpc_addr_defaults[DAEMON_MAX_RPC_ADDRS];
    const char *http_addr_key;
    const char *http_addr_default;
    /* Column families of the daemon's RocksDB (besides default/meta). */
    const char *const *kv_cfs;
    size_t n_kv_cfs;
    /* Extra usage text for daemon-specific options. */
    const char *usage;
    /* Daemon-specific option at argv[*i]: return 1 if consumed (advance
     * *i past any value), 0 if unknown, negative on a bad value (errmsg). */
    int (*parse_arg)(struct daemon *d,
                     int argc,
                     char **argv,
                     int *i,
                     char *errmsg);
    /* After the configuration is read and validated, before storage:
     * e.g. OM resolves its node of an OM service and points the address
     * keys above at it. 0, or a negative code with errmsg (stops). */
    int (*configure)(struct daemon *d, char *errmsg);
    /* Cluster id for a new storage (--init or first start). Default:
     * --clusterid or a fresh "CID-<uuid>". OM, datanodes and Recon ask SCM. */
    int (*fetch_cluster_id)(struct daemon *d,
                            char *out,
                            size_t size,
                            char *errmsg);
    /* After storage and version checks, before the servers start: register
     * services (rpc_server_add_service on d->rpc), HTTP routes, threads. */
    int (*setup)(struct daemon *d, char *errmsg);
    /* After the servers have stopped. */
    void (*teardown)(struct daemon *d);
    /* Called right before the servers stop (e.g. OM leader transfer). */
    void (*drain)(struct daemon *d);
    /* The daemon's own version catalog with its upgrade actions (built
     * with version_catalog_build from the built-in one, so numbers and
     * names have one source); NULL: the built-in catalog, no actions.
     * Actions get the struct daemon as ctx. */
    const struct version_catalog *(*version_catalog)(void);
    /* Optional version_manager_config.on_persist (ctx: struct daemon),
     * e.g. SCM writes #LAYOUTVERSION into its RocksDB. */
    int (*on_persist)(void *ctx, int apparent, char *errmsg);
};

struct daemon
{
    const struct daemon_def *def;
    struct conf *conf;
    char storage_dir[4096]; /* <dir>/<name> */
    char node_id[128];
    char cluster_id[128];
    struct version_manager vm;
    bool vm_open;
    const struct version_release *release; /* row acted as */
    struct kv *kv;
    struct rpc_identity identity;
    struct rpc_server *rpc;
    struct http_server *http;
    char rpc_address[256]; /* first bound address, "127.0.0.1:9862" */
    char http_address[256];
    int testing_software_version;
    bool init_only;
    char cluster_id_arg[128];
    volatile sig_atomic_t stopping;
    volatile sig_atomic_t exit_status; /* set by daemon_request_exit */
    void *state;                       /* the service's own state */
    char errmsg[OZ_ERRMSG_SIZE];
};

/* Runs a daemon to completion: returns the process exit status (0 clean
 * stop, 1 failure with a logged message, 2 bad usage). */
int daemon_main(const struct daemon_def *def, int argc, char **argv);

/* Asks the main thread to drain and stop with exit status status (e.g. a
 * datanode that SCM will never accept). Callable from any thread. */
void daemon_request_exit(struct daemon *d, int status);

/* Software version of catalog id as this process acts (release row). */
int daemon_software_of(const struct daemon *d, enum version_catalog_id id);

/* An rpc client configuration for another service's addresses with this
 * daemon's identity and the configured timeouts. addrs borrowed. */
void daemon_client_config(struct daemon *d,
                          const char *const *addrs,
                          size_t n,
                          struct rpc_client_config *cfg);

/* "host:port" of SCM for internal clients: first of ozone.scm.names, else
 * ozone.scm.client.address (0.0.0.0 replaced by 127.0.0.1). */
void daemon_scm_address(struct daemon *d, char *out, size_t size);

/* Replaces a wildcard host ("0.0.0.0", "", "*") by 127.0.0.1 for dialing. */
void daemon_dial_address(const char *addr, char *out, size_t size);

/* fetch_cluster_id implementation for daemons that join an existing
 * cluster (OM --init, first start of a datanode or Recon): asks SCM's
 * GetVersion, waiting up to ozone.scm.join.timeout (default 60s) for SCM
 * to come up. */
int daemon_fetch_scm_cluster_id(struct daemon *d,
                                char *out,
                                size_t size,
                                char *errmsg);

/* Common usage text printed by --help for every daemon. */
void daemon_print_usage(const struct daemon_def *def, const char *prog);

#endif
