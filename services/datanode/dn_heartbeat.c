/* Datanode -> SCM and datanode -> Recon reports (DESIGN.md §2, §7).
 *
 * One thread per endpoint, each with its own rpc client, so Recon being
 * slow, down or old never delays SCM heartbeats or the data path. Each
 * thread registers (retrying with backoff while the endpoint is down: a
 * datanode never exits because SCM is down), then heartbeats every
 * hdds.heartbeat.interval with storage reports, container reports, its
 * pipeline ids and, to SCM, the ids of the commands it executed since the
 * last heartbeat that got through. Only SCM's commands are executed:
 * CLOSE_CONTAINER, CREATE_PIPELINE, CLOSE_PIPELINE, REREGISTER and
 * FINALIZE_UPGRADE (dn_upgrade.c; re-sent by SCM on every heartbeat until
 * this datanode's version header reports the target). Every command is
 * idempotent here, so a command SCM resends before it sees the ack does
 * no harm. A refusal by version (UPGRADE_ORDER_VIOLATION, DESIGN.md §6.6)
 * is retried while it may resolve and ends the process when it cannot.
 *
 * Failures are logged once per change of error, and recovery once, so a
 * long SCM outage does not flood the log (DESIGN.md §12).
 */
#include "dn_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "rpc.h"
#include "scm.pb-c.h"

#define MAX_ACKS 1024
#define FIRST_BACKOFF_MS 200
#define RECON_SLOW_FACTOR 10

struct dn_heartbeat;

struct endpoint
{
    struct dn_heartbeat *hb;
    const char *name; /* "SCM", "Recon" */
    bool is_scm;
    char addr[256];
    struct rpc_client *client;
    pthread_t thread;
    bool started;
    bool registered;
    bool unimplemented; /* Recon without the service: slow retry */
    uint64_t acks[MAX_ACKS];
    size_t n_acks;
    char last_error[512];        /* what was logged last, for de-duplication */
    uint64_t unsupported_logged; /* command types warned about */
    char last_finalize_error[512];
};

struct dn_heartbeat
{
    struct daemon *d;
    struct dn_store *s;
    long long interval_ms;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled at stop */
    bool stop;
    char hostname[256];
    char ip[256];
    long long container_port; /* 0 until known (see resolve_ports) */
    long long http_port;
    struct endpoint scm;
    struct endpoint recon;
};

/* ---- waiting ---- */

/* Sleeps up to ms; false when the datanode is stopping. */
static bool pause_ms(struct dn_heartbeat *hb, long long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&hb->lock);
    while (!hb->stop) {
        if (pthread_cond_timedwait(&hb->cond, &hb->lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    bool go_on = !hb->stop;
    pthread_mutex_unlock(&hb->lock);
    return go_on;
}

static bool stopping(struct dn_heartbeat *hb)
{
    pthread_mutex_lock(&hb->lock);
    bool stop = hb->stop;
    pthread_mutex_unlock(&hb->lock);
    return stop;
}

/* ---- who we are ---- */

/* Port of "host:port" or of a bare port; -1 when malformed. */
static long long port_of(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    const char *p = colon != NULL ? colon + 1 : addr;
    char *end;

    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno != 0 || end == p || *end != '\0' || v < 0 || v > 65535) {
        return -1;
    }
    return v;
}

/* The address clients dial (DESIGN.md §7): hdds.datanode.advertise.address,
 * else the host of the container port when it names one that is not a
 * wildcard, else 127.0.0.1. */
static int resolve_identity(struct dn_heartbeat *hb, char *errmsg)
{
    struct conf *conf = hb->d->conf;
    const char *adv = conf_get(conf, "hdds.datanode.advertise.address");
    const char *ipc = conf_get_str(conf, "hdds.container.ipc.port", "9859");
    const char *http =
        conf_get_str(conf, "hdds.datanode.http-address", "0.0.0.0:9882");
    const char *colon = strrchr(ipc, ':');

    if (gethostname(hb->hostname, sizeof(hb->hostname) - 1) != 0) {
        oz_strlcpy(hb->hostname, "localhost", sizeof(hb->hostname));
    }
    if (adv != NULL && adv[0] != '\0') {
        if (oz_strlcpy(hb->ip, adv, sizeof(hb->ip)) >= sizeof(hb->ip)) {
            oz_errmsg_printf(errmsg,
                             "invalid value for "
                             "'hdds.datanode.advertise.address': too long");
            return OZ_ECONFIG;
        }
    } else if (colon != NULL && colon != ipc &&
               !(colon - ipc == 7 && strncmp(ipc, "0.0.0.0", 7) == 0) &&
               !(colon - ipc == 1 && ipc[0] == '*') &&
               (size_t)(colon - ipc) < sizeof(hb->ip)) {
        memcpy(hb->ip, ipc, (size_t)(colon - ipc));
        hb->ip[colon - ipc] = '\0';
    } else {
        oz_strlcpy(hb->ip, "127.0.0.1", sizeof(hb->ip));
    }
    hb->container_port = port_of(ipc);
    hb->http_port = port_of(http);
    if (hb->container_port < 0 || hb->http_port < 0) {
        oz_errmsg_printf(errmsg,
                         "invalid port in 'hdds.container.ipc.port' ('%s') "
                         "or 'hdds.datanode.http-address' ('%s')",
                         ipc, http);
        return OZ_ECONFIG;
    }
    return 0;
}

/* A configured port of 0 is only known once the servers have started,
 * after setup() returned: poll until then. */
static bool resolve_ports(struct dn_heartbeat *hb)
{
    for (;;) {
        pthread_mutex_lock(&hb->lock);
        if (hb->container_port == 0) {
            hb->container_port = rpc_server_port(hb->d->rpc, 0);
        }
        if (hb->http_port == 0) {
            hb->http_port = http_server_port(hb->d->http);
        }
        bool known = hb->container_port != 0 && hb->http_port != 0;
        pthread_mutex_unlock(&hb->lock);
        if (known) {
            return true;
        }
        if (!pause_ms(hb, 50)) {
            return false;
        }
    }
}

static void fill_details(struct dn_heartbeat *hb,
                         Ozone__Hdds__DatanodeDetails *dd)
{
    ozone__hdds__datanode_details__init(dd);
    dd->uuid = hb->d->node_id;
    dd->hostname = hb->hostname;
    dd->ip_address = hb->ip;
    dd->container_port = (uint32_t)hb->container_port;
    dd->http_port = (uint32_t)hb->http_port;
}

/* ---- reports ---- */

struct reports
{
    struct dn_reports containers;
    struct dn_storage storage;
    char **pipes;
    size_t n_pipes;
};

static int reports_build(struct dn_store *s, struct reports *r)
{
    memset(r, 0, sizeof(*r));
    if (dn_store_container_reports(s, &r->containers) != 0 ||
        dn_store_storage_reports(s, &r->storage) != 0 ||
        dn_store_pipeline_ids(s, &r->pipes, &r->n_pipes) != 0) {
        dn_reports_free(&r->containers);
        dn_storage_free(&r->storage);
        return OZ_ENOMEM;
    }
    return 0;
}

static void reports_free(struct reports *r)
{
    dn_reports_free(&r->containers);
    dn_storage_free(&r->storage);
    dn_ids_free(r->pipes, r->n_pipes);
}

/* ---- logging ---- */

static void log_failure(struct endpoint *ep,
                        const char *what,
                        const struct rpc_error *err)
{
    char text[512];

    snprintf(text, sizeof(text), "cannot %s %s at '%s': %s", what, ep->name,
             ep->addr, err->message[0] ? err->message : "no answer");
    if (strcmp(text, ep->last_error) != 0) {
        log_warn("%s; retrying", text);
        oz_strlcpy(ep->last_error, text, sizeof(ep->last_error));
    }
}

static void log_recovered(struct endpoint *ep)
{
    if (ep->last_error[0] != '\0') {
        log_info("%s at '%s' reachable again", ep->name, ep->addr);
        ep->last_error[0] = '\0';
    }
}

/* ---- upgrade order (DESIGN.md §6.6) ---- */

/* SCM's HDDS apparent version from its GetVersion answer; -1 if unknown. */
static int scm_apparent(struct endpoint *ep)
{
    Ozone__GetVersionRequest req = OZONE__GET_VERSION_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    int v = -1;

    if (rpc_client_call(ep->client, &ozone__version_service__descriptor,
                        "GetVersion", &req.base, &resp, &err) == 0) {
        Ozone__GetVersionResponse *r = (Ozone__GetVersionResponse *)resp;
        if (r->hdr != NULL) {
            v = (int)r->hdr->apparent_version;
        }
        rpc_message_free(resp);
    }
    return v;
}

/* SCM refused this datanode by version. While SCM may still change (it is
 * being upgraded, or will finalize) the datanode keeps retrying; once SCM
 * is finalized past this software it can never join: exit with a message
 * (issue 5: "a DN whose software does not match the version SCM expects
 * exits with a message"). */
static void order_violation(struct endpoint *ep,
                            const char *what,
                            const struct rpc_error *err)
{
    struct daemon *d = ep->hb->d;
    int software = version_manager_software(&d->vm);
    int scm = ep->is_scm ? scm_apparent(ep) : -1;

    if (scm > software) {
        const struct version_release *r =
            version_release_for(VERSION_CATALOG_HDDS, scm);
        log_error(
            "cannot join the cluster: %s at '%s' refused: %s; this datanode "
            "can never join a cluster finalized at HDDS version %d "
            "(its software is %d): install release %s or newer and start it "
            "again; exiting",
            ep->name, ep->addr, err->message, scm, software,
            r != NULL ? r->release : "?");
        daemon_request_exit(d, 1);
        return;
    }
    char text[512];
    snprintf(text, sizeof(text),
             "UPGRADE_ORDER_VIOLATION: %s at '%s' refused to %s: %s", ep->name,
             ep->addr, what, err->message);
    if (strcmp(text, ep->last_error) != 0) {
        log_error("%s; retrying until the cluster's versions allow it", text);
        oz_strlcpy(ep->last_error, text, sizeof(ep->last_error));
    }
}

/* ---- register ---- */

static int do_register(struct endpoint *ep)
{
    struct dn_heartbeat *hb = ep->hb;
    Ozone__Scm__RegisterRequest req = OZONE__SCM__REGISTER_REQUEST__INIT;
    Ozone__Hdds__DatanodeDetails dd;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    struct reports r;

    if (reports_build(hb->s, &r) != 0) {
        return OZ_ENOMEM;
    }
    fill_details(hb, &dd);
    req.datanode = &dd;
    req.storage = r.storage.ptrs;
    req.n_storage = r.storage.n;
    req.containers = r.containers.ptrs;
    req.n_containers = r.containers.n;
    req.pipeline_ids = r.pipes;
    req.n_pipeline_ids = r.n_pipes;
    size_t n_containers = r.containers.n;
    int rc = rpc_client_call(ep->client,
                             &ozone__scm__scm_datanode_service__descriptor,
                             "RegisterDatanode", &req.base, &resp, &err);
    reports_free(&r);
    if (rc != 0) {
        if (err.status == RPC_STATUS_UNIMPLEMENTED && !ep->is_scm) {
            if (!ep->unimplemented) {
                log_info(
                    "Recon at '%s' does not take datanode reports "
                    "(UNIMPLEMENTED); retrying every %lld ms",
                    ep->addr, hb->interval_ms * RECON_SLOW_FACTOR);
            }
            ep->unimplemented = true;
            return rc;
        }
        if (err.code == OZONE__RESULT_CODE__UPGRADE_ORDER_VIOLATION) {
            order_violation(ep, "register with", &err);
            return rc;
        }
        log_failure(ep, "register with", &err);
        return rc;
    }
    Ozone__Scm__RegisterResponse *rr = (Ozone__Scm__RegisterResponse *)resp;
    if (rr->cluster_id != NULL && rr->cluster_id[0] != '\0' &&
        strcmp(rr->cluster_id, hb->d->cluster_id) != 0) {
        snprintf(err.message, sizeof(err.message),
                 "it is in cluster '%s', this datanode in '%s': point "
                 "ozone.scm.names at this cluster's SCM",
                 rr->cluster_id, hb->d->cluster_id);
        log_failure(ep, "register with", &err);
        rpc_message_free(resp);
        return OZ_EREFUSED;
    }
    log_recovered(ep);
    ep->unimplemented = false;
    log_info(
        "registered with %s at '%s' as %s (%s:%lld): %zu containers, "
        "%s software version %u",
        ep->name, ep->addr, hb->d->node_id, hb->ip, hb->container_port,
        n_containers, ep->name, rr->hdr ? rr->hdr->software_version : 0);
    rpc_message_free(resp);
    ep->registered = true;
    return 0;
}

/* ---- commands ---- */

static void ack(struct endpoint *ep, uint64_t id)
{
    for (size_t i = 0; i < ep->n_acks; i++) {
        if (ep->acks[i] == id) {
            return;
        }
    }
    /* Full: not acked now, SCM resends and the command runs again. */
    if (ep->n_acks < MAX_ACKS) {
        ep->acks[ep->n_acks++] = id;
    }
}

static void run_command(struct endpoint *ep, const Ozone__Scm__Command *cmd)
{
    struct dn_store *s = ep->hb->s;
    struct dn_result res = {OZONE__RESULT_CODE__OK, ""};
    const char *pid = cmd->pipeline != NULL && cmd->pipeline->id != NULL
                          ? cmd->pipeline->id
                          : "";
    int rc;

    switch (cmd->type) {
        case OZONE__SCM__COMMAND_TYPE__CLOSE_CONTAINER:
            rc = dn_store_close_container(s, cmd->container_id, &res);
            log_info("command %llu CLOSE_CONTAINER %llu: %s",
                     (unsigned long long)cmd->id,
                     (unsigned long long)cmd->container_id,
                     rc == 0 ? "done" : res.msg);
            break;
        case OZONE__SCM__COMMAND_TYPE__CREATE_PIPELINE:
            rc = cmd->pipeline == NULL
                     ? OZ_EINVAL
                     : dn_store_add_pipeline(s, cmd->pipeline, res.msg);
            log_info("command %llu CREATE_PIPELINE '%s': %s",
                     (unsigned long long)cmd->id, pid,
                     rc == 0 ? "done" : "failed");
            break;
        case OZONE__SCM__COMMAND_TYPE__CLOSE_PIPELINE:
            rc = dn_store_remove_pipeline(s, pid, res.msg);
            log_info("command %llu CLOSE_PIPELINE '%s': %s",
                     (unsigned long long)cmd->id, pid,
                     rc == 0 ? "done" : "failed");
            break;
        case OZONE__SCM__COMMAND_TYPE__FINALIZE_UPGRADE:
            rc =
                dn_upgrade_finalize(ep->hb->d, s, cmd->target_version, res.msg);
            if (rc != 0) {
                /* SCM resends it on every heartbeat: log each change. */
                char text[512];
                snprintf(text, sizeof(text),
                         "FINALIZE_UPGRADE to HDDS version %u: %s",
                         cmd->target_version, res.msg);
                if (strcmp(text, ep->last_finalize_error) != 0) {
                    log_warn("command %llu %s", (unsigned long long)cmd->id,
                             text);
                    oz_strlcpy(ep->last_finalize_error, text,
                               sizeof(ep->last_finalize_error));
                }
                return;
            }
            ep->last_finalize_error[0] = '\0';
            break;
        case OZONE__SCM__COMMAND_TYPE__REREGISTER:
            log_info(
                "command %llu REREGISTER: SCM at '%s' does not know this "
                "datanode; registering again",
                (unsigned long long)cmd->id, ep->addr);
            ep->registered = false;
            rc = 0;
            break;
        default:
            /* SCM resends what is not acked: warn once per type. */
            if ((unsigned)cmd->type < 64 &&
                !(ep->unsupported_logged & (1ULL << cmd->type))) {
                ep->unsupported_logged |= 1ULL << cmd->type;
                log_warn(
                    "command %llu of type %d is not supported by this "
                    "datanode; ignored (logged once per type)",
                    (unsigned long long)cmd->id, (int)cmd->type);
            }
            return;
    }
    if (rc == 0) {
        ack(ep, cmd->id);
    }
}

/* ---- heartbeat ---- */

static int do_heartbeat(struct endpoint *ep)
{
    struct dn_heartbeat *hb = ep->hb;
    Ozone__Scm__HeartbeatRequest req = OZONE__SCM__HEARTBEAT_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    struct reports r;
    size_t n_sent = ep->n_acks;

    if (reports_build(hb->s, &r) != 0) {
        return OZ_ENOMEM;
    }
    req.datanode_uuid = hb->d->node_id;
    req.storage = r.storage.ptrs;
    req.n_storage = r.storage.n;
    req.containers = r.containers.ptrs;
    req.n_containers = r.containers.n;
    req.pipeline_ids = r.pipes;
    req.n_pipeline_ids = r.n_pipes;
    req.completed_command_ids = ep->acks;
    req.n_completed_command_ids = n_sent;
    int rc = rpc_client_call(ep->client,
                             &ozone__scm__scm_datanode_service__descriptor,
                             "Heartbeat", &req.base, &resp, &err);
    reports_free(&r);
    if (rc != 0) {
        if (err.code == OZONE__RESULT_CODE__DATANODE_NOT_REGISTERED) {
            ep->registered = false;
        }
        if (err.code == OZONE__RESULT_CODE__UPGRADE_ORDER_VIOLATION) {
            order_violation(ep, "heartbeat to", &err);
            return rc;
        }
        log_failure(ep, "heartbeat to", &err);
        return rc;
    }
    log_recovered(ep);
    /* The acks sent are delivered; keep those added meanwhile (none: one
     * thread per endpoint) by shifting. */
    memmove(ep->acks, ep->acks + n_sent,
            (ep->n_acks - n_sent) * sizeof(ep->acks[0]));
    ep->n_acks -= n_sent;
    Ozone__Scm__HeartbeatResponse *hr = (Ozone__Scm__HeartbeatResponse *)resp;
    for (size_t i = 0; ep->is_scm && i < hr->n_commands; i++) {
        if (hr->commands[i] != NULL) {
            run_command(ep, hr->commands[i]);
        }
    }
    rpc_message_free(resp);
    return 0;
}

static void *endpoint_main(void *arg)
{
    struct endpoint *ep = arg;
    struct dn_heartbeat *hb = ep->hb;
    long long backoff = FIRST_BACKOFF_MS;
    long long max_backoff = hb->interval_ms < 1000    ? 1000
                            : hb->interval_ms > 10000 ? 10000
                                                      : hb->interval_ms;

    if (!resolve_ports(hb)) {
        return NULL;
    }
    /* A registration is followed by a heartbeat right away, and a
     * REREGISTER by a registration right away, but never twice in a row
     * without a pause: a confused peer cannot make this loop spin. */
    bool skipped_pause = false;
    while (!stopping(hb)) {
        long long wait = hb->interval_ms;
        if (!ep->registered) {
            if (do_register(ep) == 0) {
                backoff = FIRST_BACKOFF_MS;
                if (!skipped_pause) {
                    skipped_pause = true;
                    continue;
                }
            } else {
                wait = backoff;
                backoff = backoff * 2 > max_backoff ? max_backoff : backoff * 2;
            }
        } else {
            do_heartbeat(ep);
            if (!ep->registered && !skipped_pause) {
                skipped_pause = true;
                continue;
            }
        }
        skipped_pause = false;
        if (ep->unimplemented) {
            wait = hb->interval_ms * RECON_SLOW_FACTOR;
        }
        if (!pause_ms(hb, wait)) {
            break;
        }
    }
    return NULL;
}

/* ---- start and stop ---- */

static int endpoint_start(struct dn_heartbeat *hb,
                          struct endpoint *ep,
                          const char *name,
                          bool is_scm,
                          const char *addr,
                          char *errmsg)
{
    struct rpc_client_config cfg;
    const char *addrs[1];

    ep->hb = hb;
    ep->name = name;
    ep->is_scm = is_scm;
    daemon_dial_address(addr, ep->addr, sizeof(ep->addr));
    addrs[0] = ep->addr;
    daemon_client_config(hb->d, addrs, 1, &cfg);
    /* One attempt per call: this loop does its own backoff, and a short
     * deadline keeps shutdown prompt when the peer hangs. */
    cfg.max_attempts = 1;
    if (cfg.deadline_ms > hb->interval_ms * 2 + 2000) {
        cfg.deadline_ms = (int)(hb->interval_ms * 2 + 2000);
    }
    int rc = rpc_client_new(&ep->client, &cfg, errmsg);
    if (rc != 0) {
        return rc;
    }
    if (pthread_create(&ep->thread, NULL, endpoint_main, ep) != 0) {
        oz_errmsg_printf(errmsg, "cannot start the %s heartbeat thread", name);
        return OZ_ENOMEM;
    }
    ep->started = true;
    log_info("heartbeating to %s at '%s' every %lld ms", name, ep->addr,
             hb->interval_ms);
    return 0;
}

int dn_heartbeat_start(struct dn_heartbeat **out,
                       struct daemon *d,
                       struct dn_store *s,
                       char *errmsg)
{
    struct dn_heartbeat *hb = calloc(1, sizeof(*hb));
    pthread_condattr_t attr;
    char scm[256];
    int rc;

    *out = NULL;
    if (hb == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    hb->d = d;
    hb->s = s;
    pthread_mutex_init(&hb->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&hb->cond, &attr);
    pthread_condattr_destroy(&attr);
    *out = hb; /* from here dn_heartbeat_stop cleans up */
    rc = conf_get_duration_ms(d->conf, "hdds.heartbeat.interval", "30s",
                              &hb->interval_ms, errmsg);
    if (rc == 0 && (hb->interval_ms < 100 || hb->interval_ms > 3600000)) {
        oz_errmsg_printf(errmsg,
                         "invalid value for 'hdds.heartbeat.interval': "
                         "expected 100ms to 1h");
        rc = OZ_ECONFIG;
    }
    if (rc == 0) {
        rc = resolve_identity(hb, errmsg);
    }
    if (rc != 0) {
        return rc;
    }
    daemon_scm_address(d, scm, sizeof(scm));
    rc = endpoint_start(hb, &hb->scm, "SCM", true, scm, errmsg);
    const char *recon = conf_get(d->conf, "ozone.recon.address");
    if (rc == 0 && recon != NULL && recon[0] != '\0') {
        rc = endpoint_start(hb, &hb->recon, "Recon", false, recon, errmsg);
    }
    return rc;
}

void dn_heartbeat_stop(struct dn_heartbeat *hb)
{
    if (hb == NULL) {
        return;
    }
    pthread_mutex_lock(&hb->lock);
    hb->stop = true;
    pthread_cond_broadcast(&hb->cond);
    pthread_mutex_unlock(&hb->lock);
    struct endpoint *eps[2] = {&hb->scm, &hb->recon};
    for (int i = 0; i < 2; i++) {
        if (eps[i]->started) {
            pthread_join(eps[i]->thread, NULL);
        }
        rpc_client_free(eps[i]->client);
    }
    pthread_cond_destroy(&hb->cond);
    pthread_mutex_destroy(&hb->lock);
    free(hb);
}
