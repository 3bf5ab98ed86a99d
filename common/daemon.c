#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"

#define DAEMON_SHUTDOWN_GRACE_MS 5000

/* ---- identity and versions ---- */

static void identity_versions(void *ctx, unsigned *software, unsigned *apparent)
{
    struct daemon *d = ctx;

    *software = (unsigned)version_manager_software(&d->vm);
    *apparent = (unsigned)version_manager_apparent(&d->vm);
}

void daemon_request_exit(struct daemon *d, int status)
{
    d->exit_status = status;
    kill(getpid(), SIGTERM);
}

int daemon_software_of(const struct daemon *d, enum version_catalog_id id)
{
    return d->release->software[id];
}

void daemon_dial_address(const char *addr, char *out, size_t size)
{
    const char *colon = strrchr(addr, ':');

    if (colon == NULL) {
        oz_strlcpy(out, addr, size);
        return;
    }
    size_t hlen = (size_t)(colon - addr);
    if (hlen == 0 || (hlen == 7 && strncmp(addr, "0.0.0.0", 7) == 0) ||
        (hlen == 1 && addr[0] == '*')) {
        snprintf(out, size, "127.0.0.1%s", colon);
    } else {
        oz_strlcpy(out, addr, size);
    }
}

void daemon_scm_address(struct daemon *d, char *out, size_t size)
{
    const char *names = conf_get(d->conf, "ozone.scm.names");

    if (names != NULL && names[0] != '\0') {
        char first[256];
        size_t n = strcspn(names, ",");
        if (n >= sizeof(first)) {
            n = sizeof(first) - 1;
        }
        memcpy(first, names, n);
        first[n] = '\0';
        if (strchr(first, ':') == NULL) {
            snprintf(out, size, "%s:9860", first);
            return;
        }
        daemon_dial_address(first, out, size);
        return;
    }
    daemon_dial_address(
        conf_get_str(d->conf, "ozone.scm.client.address", "0.0.0.0:9860"), out,
        size);
}

void daemon_client_config(struct daemon *d,
                          const char *const *addrs,
                          size_t n,
                          struct rpc_client_config *cfg)
{
    long long timeout_ms = 10000;
    long long max_msg = 32LL << 20;
    char ignored[OZ_ERRMSG_SIZE];

    /* Both keys were validated at start-up; defaults on error. */
    conf_get_duration_ms(d->conf, "ozone.rpc.timeout", "10s", &timeout_ms,
                         ignored);
    conf_get_size(d->conf, "ozone.rpc.max.message.size", "32MB", &max_msg,
                  ignored);
    memset(cfg, 0, sizeof(*cfg));
    cfg->addrs = addrs;
    cfg->n_addrs = n;
    cfg->identity = &d->identity;
    cfg->deadline_ms = (int)timeout_ms;
    cfg->max_message_bytes = (size_t)max_msg;
}

int daemon_fetch_scm_cluster_id(struct daemon *d,
                                char *out,
                                size_t size,
                                char *errmsg)
{
    char addr[256];
    const char *addrs[1] = {addr};
    struct rpc_client_config cfg;
    struct rpc_client *client = NULL;
    Ozone__GetVersionRequest req = OZONE__GET_VERSION_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    long long wait_ms = 60000;
    int64_t start;
    int rc;

    rc = conf_get_duration_ms(d->conf, "ozone.scm.join.timeout", "60s",
                              &wait_ms, errmsg);
    if (rc != 0) {
        return rc;
    }
    daemon_scm_address(d, addr, sizeof(addr));
    daemon_client_config(d, addrs, 1, &cfg);
    cfg.wait_for_ready = true;
    cfg.deadline_ms = 2000;
    rc = rpc_client_new(&client, &cfg, errmsg);
    if (rc != 0) {
        return rc;
    }
    start = oz_mono_ms();
    for (;;) {
        rc = rpc_client_call(client, &ozone__version_service__descriptor,
                             "GetVersion", &req.base, &resp, &err);
        if (rc == 0) {
            break;
        }
        long long waited = oz_mono_ms() - start;
        if (rc != OZ_EUNAVAILABLE && rc != OZ_ETIMEDOUT) {
            oz_errmsg_printf(errmsg, "SCM at '%s' refused GetVersion: %s", addr,
                             err.message);
            rpc_client_free(client);
            return rc;
        }
        if (waited >= wait_ms) {
            oz_errmsg_printf(errmsg,
                             "SCM at '%s' is not reachable after %lld ms: "
                             "start SCM first (upgrade and start order: SCM, "
                             "Recon, datanodes, OM) or check "
                             "ozone.scm.names",
                             addr, waited);
            rpc_client_free(client);
            return OZ_EUNAVAILABLE;
        }
        log_info("waiting for SCM at '%s' to learn the cluster id: %s", addr,
                 err.message);
        oz_sleep_ms(500);
    }
    Ozone__GetVersionResponse *v = (Ozone__GetVersionResponse *)resp;
    if (v->hdr == NULL || v->hdr->cluster_id == NULL ||
        v->hdr->cluster_id[0] == '\0') {
        oz_errmsg_printf(errmsg, "SCM at '%s' has no cluster id", addr);
        rc = OZ_EINVAL;
    } else {
        oz_strlcpy(out, v->hdr->cluster_id, size);
        log_info("joined cluster %s (SCM at '%s', SCM software version %u)",
                 out, addr, v->hdr->software_version);
    }
    rpc_message_free(resp);
    rpc_client_free(client);
    return rc;
}

/* ---- GetVersion (every daemon) ---- */

static enum rpc_handler_result handle_get_version(void *data,
                                                  struct rpc_call *call,
                                                  const ProtobufCMessage *req,
                                                  ProtobufCMessage *resp_msg)
{
    struct daemon *d = data;
    Ozone__GetVersionResponse *resp = (Ozone__GetVersionResponse *)resp_msg;
    const struct version_catalog *own =
        version_builtin_catalog(d->def->catalog);

    (void)req;
    resp->release = rpc_call_strdup(call, d->release->release);
    resp->git_commit = rpc_call_strdup(call, OZONE_GIT_COMMIT);
    resp->rpc_address = rpc_call_strdup(call, d->rpc_address);
    resp->http_address = rpc_call_strdup(call, d->http_address);
    resp->pre_finalized = version_manager_needs_finalization(&d->vm);
    resp->n_catalogs = VERSION_CATALOG_COUNT;
    resp->catalogs =
        rpc_call_alloc(call, sizeof(*resp->catalogs) * VERSION_CATALOG_COUNT);
    for (int i = 0; i < VERSION_CATALOG_COUNT; i++) {
        Ozone__CatalogVersion *cv = rpc_call_alloc(call, sizeof(*cv));
        ozone__catalog_version__init(cv);
        cv->name = rpc_call_strdup(
            call, version_builtin_catalog((enum version_catalog_id)i)->name);
        cv->software_version = (uint32_t)d->release->software[i];
        if ((enum version_catalog_id)i == d->def->catalog) {
            cv->software_version = (uint32_t)version_manager_software(&d->vm);
            cv->apparent_version = (uint32_t)version_manager_apparent(&d->vm);
        }
        resp->catalogs[i] = cv;
    }
    (void)own;
    return RPC_HANDLER_DONE;
}

static const rpc_handler_fn version_handlers[] = {handle_get_version};

/* ---- HTTP: /healthz, /version, /prom ---- */

static void http_healthz(void *data,
                         const struct http_request *req,
                         struct http_response *resp)
{
    struct daemon *d = data;

    (void)req;
    if (d->stopping) {
        http_response_printf(resp, 503, "text/plain", "stopping\n");
    } else {
        http_response_printf(resp, 200, "text/plain", "OK\n");
    }
}

static cJSON *version_json(struct daemon *d)
{
    cJSON *o = cJSON_CreateObject();
    char buf[128];
    int sw = version_manager_software(&d->vm);
    int ap = version_manager_apparent(&d->vm);
    cJSON *cats = cJSON_AddObjectToObject(o, "catalogs");

    cJSON_AddStringToObject(o, "component",
                            rpc_component_name(d->def->component));
    cJSON_AddStringToObject(o, "nodeId", d->node_id);
    cJSON_AddStringToObject(o, "clusterId", d->cluster_id);
    cJSON_AddStringToObject(o, "release", d->release->release);
    cJSON_AddStringToObject(o, "gitCommit", OZONE_GIT_COMMIT);
    cJSON_AddNumberToObject(o, "softwareVersion", sw);
    cJSON_AddNumberToObject(o, "apparentVersion", ap);
    version_manager_describe(&d->vm, sw, buf, sizeof(buf));
    cJSON_AddStringToObject(o, "softwareVersionName", buf);
    version_manager_describe(&d->vm, ap, buf, sizeof(buf));
    cJSON_AddStringToObject(o, "apparentVersionName", buf);
    cJSON_AddBoolToObject(o, "preFinalized", ap < sw);
    cJSON_AddStringToObject(o, "rpcAddress", d->rpc_address);
    cJSON_AddStringToObject(o, "httpAddress", d->http_address);
    for (int i = 0; i < VERSION_CATALOG_COUNT; i++) {
        cJSON_AddNumberToObject(
            cats, version_builtin_catalog((enum version_catalog_id)i)->name,
            (enum version_catalog_id)i == d->def->catalog
                ? sw
                : d->release->software[i]);
    }
    return o;
}

static void http_version(void *data,
                         const struct http_request *req,
                         struct http_response *resp)
{
    cJSON *o = version_json(data);
    char *text = cJSON_PrintUnformatted(o);

    (void)req;
    cJSON_Delete(o);
    if (text == NULL) {
        http_response_printf(resp, 500, "text/plain", "out of memory\n");
        return;
    }
    http_response_take(resp, 200, "application/json", text, strlen(text));
}

static void http_prom(void *data,
                      const struct http_request *req,
                      struct http_response *resp)
{
    char *text = NULL;
    size_t len = 0;

    (void)data;
    (void)req;
    if (metrics_render(&text, &len) != 0) {
        http_response_printf(resp, 500, "text/plain", "cannot render\n");
        return;
    }
    http_response_take(resp, 200, "text/plain; version=0.0.4", text, len);
}

static double gauge_software(void *ctx)
{
    return version_manager_software(&((struct daemon *)ctx)->vm);
}

static double gauge_apparent(void *ctx)
{
    return version_manager_apparent(&((struct daemon *)ctx)->vm);
}

static void register_metrics(struct daemon *d)
{
    char labels[512];

    snprintf(labels, sizeof(labels), "component=\"%s\",node=\"%s\"",
             rpc_component_name(d->def->component), d->node_id);
    metrics_register_fn("ozone_software_version", labels,
                        "software version of this process (its catalog)",
                        gauge_software, d);
    metrics_register_fn("ozone_apparent_version", labels,
                        "apparent (finalized) version of this process",
                        gauge_apparent, d);
    snprintf(labels, sizeof(labels),
             "component=\"%s\",node=\"%s\",release=\"%s\",commit=\"%s\"",
             rpc_component_name(d->def->component), d->node_id,
             d->release->release, OZONE_GIT_COMMIT);
    metrics_set(metrics_get("ozone_build_info", labels, METRIC_GAUGE,
                            "build information, value is always 1"),
                1);
}

/* ---- arguments ---- */

void daemon_print_usage(const struct daemon_def *def, const char *prog)
{
    printf(
        "Usage: %s [OPTIONS]\n"
        "Starts the %s.\n\n"
        "Options:\n"
        "  --conf DIR                    configuration directory holding "
        "ozone-site.xml\n"
        "                                (default: $OZONE_CONF_DIR)\n"
        "  -D KEY=VALUE                  set a configuration key\n"
        "%s"
        "  --testing-software-version N  testing only: act as the "
        "newest release whose\n"
        "                                %s version is N\n"
        "  -h, --help                    show this help\n",
        prog, def->title,
        def->needs_init
            ? "  --init                        initialise storage and "
              "exit\n"
              "  --clusterid ID                cluster id for --init\n"
            : "",
        version_builtin_catalog(def->catalog)->name);
    if (def->usage != NULL) {
        fputs(def->usage, stdout);
    }
}

static int parse_int_arg(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 1000000) {
        return OZ_EINVAL;
    }
    *out = (int)v;
    return 0;
}

/* 0 ok, 1 help printed, 2 usage error (message printed). */
static int parse_args(struct daemon *d, int argc, char **argv)
{
    const char *conf_dir = getenv("OZONE_CONF_DIR");
    char errmsg[OZ_ERRMSG_SIZE] = "";
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            daemon_print_usage(d->def, argv[0]);
            return 1;
        } else if (strcmp(a, "--conf") == 0 && i + 1 < argc) {
            conf_dir = argv[++i];
        } else if (strcmp(a, "-D") == 0 && i + 1 < argc) {
            if (conf_set_override(d->conf, argv[++i], errmsg) != 0) {
                goto bad;
            }
        } else if (strncmp(a, "-D", 2) == 0 && a[2] != '\0') {
            if (conf_set_override(d->conf, a + 2, errmsg) != 0) {
                goto bad;
            }
        } else if (strcmp(a, "--init") == 0 && d->def->needs_init) {
            d->init_only = true;
        } else if (strcmp(a, "--clusterid") == 0 && i + 1 < argc) {
            oz_strlcpy(d->cluster_id_arg, argv[++i], sizeof(d->cluster_id_arg));
        } else if (strcmp(a, "--testing-software-version") == 0 &&
                   i + 1 < argc) {
            if (parse_int_arg(argv[++i], &d->testing_software_version) != 0) {
                oz_errmsg_printf(errmsg,
                                 "invalid --testing-software-version '%s': "
                                 "expected a version number",
                                 argv[i]);
                goto bad;
            }
        } else if (d->def->parse_arg != NULL &&
                   (rc = d->def->parse_arg(d, argc, argv, &i, errmsg)) != 0) {
            if (rc < 0) {
                goto bad;
            }
        } else {
            oz_errmsg_printf(errmsg,
                             "unknown option '%s' (or missing value); see "
                             "--help",
                             a);
            goto bad;
        }
    }
    if (conf_dir != NULL && conf_dir[0] != '\0') {
        /* Overrides were set first; reload so the file sits below them. */
        struct conf *file_conf = conf_new();
        if (file_conf == NULL) {
            oz_errmsg_printf(errmsg, "out of memory");
            goto bad;
        }
        if (conf_load_dir(file_conf, conf_dir, errmsg) != 0) {
            conf_free(file_conf);
            goto bad;
        }
        for (size_t k = 0; k < conf_count(d->conf); k++) {
            const char *key = conf_key_at(d->conf, k);
            conf_set(file_conf, key, conf_get(d->conf, key));
        }
        conf_free(d->conf);
        d->conf = file_conf;
    }
    return 0;
bad:
    fprintf(stderr, "%s: %s\n", d->def->name, errmsg);
    return 2;
}

/* ---- storage ---- */

static void new_uuid(char *out, size_t size)
{
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, b, sizeof(b)) : -1;

    if (fd >= 0) {
        close(fd);
    }
    if (n != (ssize_t)sizeof(b)) {
        /* /dev/urandom unavailable: fall back to time and pid. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        for (size_t i = 0; i < sizeof(b); i++) {
            b[i] = (unsigned char)((ts.tv_nsec >> (i % 8)) ^ (getpid() >> i) ^
                                   (int)(i * 37));
        }
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, size,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
             "%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}

static int resolve_storage_dir(struct daemon *d, char *errmsg)
{
    const char *dir = conf_get(d->conf, d->def->dir_key);

    if (dir == NULL || dir[0] == '\0') {
        dir = conf_get(d->conf, "ozone.metadata.dirs");
    }
    if (dir == NULL || dir[0] == '\0') {
        oz_errmsg_printf(errmsg,
                         "no storage directory configured: set '%s' or "
                         "'ozone.metadata.dirs'",
                         d->def->dir_key);
        return OZ_ECONFIG;
    }
    char first[3800];
    size_t n = strcspn(dir, ",");
    if (n >= sizeof(first)) {
        oz_errmsg_printf(errmsg, "'%s' is too long", d->def->dir_key);
        return OZ_ECONFIG;
    }
    memcpy(first, dir, n);
    first[n] = '\0';
    snprintf(d->storage_dir, sizeof(d->storage_dir), "%s/%s", first,
             d->def->name);
    return 0;
}

static void manager_config(struct daemon *d, struct version_manager_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->catalog = d->def->version_catalog != NULL
                       ? d->def->version_catalog()
                       : version_builtin_catalog(d->def->catalog);
    cfg->on_persist = d->def->on_persist;
    cfg->testing_software_version = d->testing_software_version;
    cfg->storage_dir = d->storage_dir;
    cfg->node_type = d->def->node_type;
    cfg->action_ctx = d;
}

static int init_storage(struct daemon *d, char *errmsg)
{
    struct version_manager_config cfg;
    char key[128];
    char node_id[128];
    long long init_apparent = -1;
    int rc;

    manager_config(d, &cfg);
    snprintf(key, sizeof(key), "testing.%s.init.apparent.version",
             d->def->name);
    rc = conf_get_int(d->conf, key, -1, &init_apparent, errmsg);
    if (rc != 0) {
        return rc;
    }
    if (init_apparent >= 0) {
        log_warn(
            "testing only: '%s' initialises storage at apparent "
            "version %lld",
            key, init_apparent);
    }
    if (d->cluster_id_arg[0] != '\0') {
        oz_strlcpy(d->cluster_id, d->cluster_id_arg, sizeof(d->cluster_id));
    } else if (d->def->fetch_cluster_id != NULL) {
        rc = d->def->fetch_cluster_id(d, d->cluster_id, sizeof(d->cluster_id),
                                      errmsg);
        if (rc != 0) {
            return rc;
        }
    } else {
        char uuid[64];
        new_uuid(uuid, sizeof(uuid));
        snprintf(d->cluster_id, sizeof(d->cluster_id), "CID-%s", uuid);
    }
    const char *conf_id = NULL;
    if (strcmp(d->def->name, "om") == 0) {
        conf_id = conf_get(d->conf, "ozone.om.node.id");
    } else if (strcmp(d->def->name, "datanode") == 0) {
        conf_id = conf_get(d->conf, "hdds.datanode.id");
    }
    if (conf_id != NULL && conf_id[0] != '\0') {
        oz_strlcpy(node_id, conf_id, sizeof(node_id));
    } else {
        new_uuid(node_id, sizeof(node_id));
    }
    rc = version_storage_init(&cfg, d->cluster_id, d->def->id_key, node_id,
                              (int)init_apparent, errmsg);
    if (rc != 0) {
        return rc;
    }
    log_info("initialised %s storage in '%s': cluster id %s, node id %s",
             d->def->title, d->storage_dir, d->cluster_id, node_id);
    return 0;
}

static int open_storage(struct daemon *d, char *errmsg)
{
    struct version_manager_config cfg;
    char db_path[4200];
    int rc;

    manager_config(d, &cfg);
    if (d->testing_software_version > 0) {
        d->release =
            version_release_for(d->def->catalog, d->testing_software_version);
        if (d->release == NULL) {
            oz_errmsg_printf(errmsg,
                             "--testing-software-version %d: no ozone-c "
                             "release ships %s version %d",
                             d->testing_software_version,
                             version_builtin_catalog(d->def->catalog)->name,
                             d->testing_software_version);
            return OZ_EINVAL;
        }
        log_warn(
            "testing only: acting as release %s (%s software version "
            "%d)",
            d->release->release, version_builtin_catalog(d->def->catalog)->name,
            d->testing_software_version);
    }
    if (!version_storage_exists(d->storage_dir)) {
        /* A directory that holds data but no VERSION is refused by the
         * manager (§6.4: never re-initialise silently); only an empty or
         * absent one may be initialised. */
        rc = version_manager_open(&d->vm, &cfg, errmsg);
        if (rc != OZ_ENOTFOUND) {
            if (rc == 0) {
                version_manager_close(&d->vm);
                oz_errmsg_printf(errmsg,
                                 "VERSION appeared in '%s' during "
                                 "start-up: is another process using it?",
                                 d->storage_dir);
                rc = OZ_ESTATE;
            }
            return rc;
        }
        errmsg[0] = '\0';
        if (d->def->needs_init && !d->init_only) {
            oz_errmsg_printf(errmsg,
                             "no %s storage in '%s': run 'ozone %s --init' "
                             "first",
                             d->def->title, d->storage_dir, d->def->name);
            return OZ_ENOTFOUND;
        }
        rc = init_storage(d, errmsg);
        if (rc != 0) {
            return rc;
        }
    } else if (d->init_only) {
        log_info("%s storage in '%s' is already initialised; nothing to do",
                 d->def->title, d->storage_dir);
    }
    rc = version_manager_open(&d->vm, &cfg, errmsg);
    if (rc != 0) {
        return rc;
    }
    d->vm_open = true;
    version_manager_prop(&d->vm, "clusterID", d->cluster_id,
                         sizeof(d->cluster_id));
    version_manager_prop(&d->vm, d->def->id_key, d->node_id,
                         sizeof(d->node_id));
    log_set_node_id(d->node_id);
    if (d->init_only) {
        return 0;
    }
    snprintf(db_path, sizeof(db_path), "%s/db", d->storage_dir);
    rc = kv_open(&d->kv, db_path, d->def->kv_cfs, d->def->n_kv_cfs, KV_CREATE,
                 errmsg);
    if (rc != 0) {
        oz_errmsg_wrapf(errmsg, "cannot open metadata DB '%s'", db_path);
        return rc;
    }
    return 0;
}

/* ---- servers ---- */

static int start_servers(struct daemon *d, char *errmsg)
{
    const char *addrs[DAEMON_MAX_RPC_ADDRS];
    char addr_buf[DAEMON_MAX_RPC_ADDRS][64];
    struct rpc_server_config cfg;
    long long handlers = 8;
    long long max_msg = 32LL << 20;
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < DAEMON_MAX_RPC_ADDRS; i++) {
        if (d->def->rpc_addr_keys[i] == NULL) {
            break;
        }
        const char *a = conf_get_str(d->conf, d->def->rpc_addr_keys[i],
                                     d->def->rpc_addr_defaults[i]);
        if (strchr(a, ':') == NULL) {
            /* A port-only key such as hdds.container.ipc.port. */
            snprintf(addr_buf[n], sizeof(addr_buf[n]), "0.0.0.0:%s", a);
            a = addr_buf[n];
        }
        addrs[n++] = a;
    }
    rc = conf_get_int(d->conf, "ozone.rpc.handler.count", 8, &handlers, errmsg);
    if (rc == 0) {
        rc = conf_get_size(d->conf, "ozone.rpc.max.message.size", "32MB",
                           &max_msg, errmsg);
    }
    if (rc != 0) {
        return rc;
    }
    if (handlers < 1 || handlers > 256) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%lld' for 'ozone.rpc.handler.count': "
                         "expected 1 to 256",
                         handlers);
        return OZ_ECONFIG;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen_addrs = addrs;
    cfg.n_listen_addrs = n;
    cfg.n_threads = (unsigned)handlers;
    cfg.max_message_bytes = (size_t)max_msg;
    cfg.identity = &d->identity;
    rc = rpc_server_new(&d->rpc, &cfg, errmsg);
    if (rc != 0) {
        return rc;
    }
    rc = rpc_server_add_service(d->rpc, &ozone__version_service__descriptor,
                                version_handlers, d, errmsg);
    if (rc != 0) {
        return rc;
    }
    rc = http_server_new(
        &d->http,
        conf_get_str(d->conf, d->def->http_addr_key, d->def->http_addr_default),
        errmsg);
    if (rc != 0) {
        return rc;
    }
    http_server_route(d->http, "GET", "/healthz", http_healthz, d);
    http_server_route(d->http, "GET", "/version", http_version, d);
    http_server_route(d->http, "GET", "/prom", http_prom, d);
    register_metrics(d);
    if (d->def->setup != NULL) {
        rc = d->def->setup(d, errmsg);
        if (rc != 0) {
            return rc;
        }
    }
    rc = rpc_server_start(d->rpc, errmsg);
    if (rc != 0) {
        return rc;
    }
    rc = http_server_start(d->http, errmsg);
    if (rc != 0) {
        return rc;
    }
    char host[256];
    daemon_dial_address(addrs[0], host, sizeof(host));
    char *colon = strrchr(host, ':');
    if (colon != NULL) {
        *colon = '\0';
    }
    snprintf(d->rpc_address, sizeof(d->rpc_address), "%s:%d", host,
             rpc_server_port(d->rpc, 0));
    daemon_dial_address(
        conf_get_str(d->conf, d->def->http_addr_key, d->def->http_addr_default),
        host, sizeof(host));
    colon = strrchr(host, ':');
    if (colon != NULL) {
        *colon = '\0';
    }
    snprintf(d->http_address, sizeof(d->http_address), "%s:%d", host,
             http_server_port(d->http));
    return 0;
}

/* ---- main ---- */

static void warn_unknown_key(const char *key)
{
    log_warn("unknown configuration key '%s' is ignored; check its spelling",
             key);
}

static int setup_logging(struct daemon *d)
{
    enum log_level level = LOG_LEVEL_INFO;
    const char *lv = conf_get_str(d->conf, "ozone.log.level", "INFO");

    if (log_parse_level(lv, &level) != 0) {
        fprintf(stderr,
                "%s: invalid value '%s' for 'ozone.log.level': expected "
                "DEBUG, INFO, WARN or ERROR\n",
                d->def->name, lv);
        return 2;
    }
    if (log_init(d->def->name, NULL, conf_get(d->conf, "ozone.log.file"),
                 level) != 0) {
        fprintf(stderr, "%s: cannot open log file '%s'\n", d->def->name,
                conf_get(d->conf, "ozone.log.file"));
        return 1;
    }
    return 0;
}

static void wait_for_stop(struct daemon *d, sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            /* Type=notify units: ExecReload sends SIGHUP; tell systemd when
             * the reload starts and ends (DESIGN.md §4). */
            notify_reloading();
            if (log_reopen() != 0) {
                log_error(
                    "SIGHUP: cannot reopen the log file; still "
                    "writing to the old one");
            } else {
                log_info("SIGHUP: log file reopened");
            }
            notify_ready(NULL);
            continue;
        }
        log_info("received %s: draining and stopping",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
        d->stopping = 1;
        notify_stopping();
        return;
    }
}

static void shutdown_daemon(struct daemon *d)
{
    if (d->def->drain != NULL && d->rpc != NULL) {
        d->def->drain(d);
    }
    http_server_free(d->http);
    d->http = NULL;
    rpc_server_free(d->rpc, DAEMON_SHUTDOWN_GRACE_MS);
    d->rpc = NULL;
    if (d->def->teardown != NULL) {
        d->def->teardown(d);
    }
    kv_close(d->kv);
    d->kv = NULL;
    if (d->vm_open) {
        version_manager_close(&d->vm);
        d->vm_open = false;
    }
}

int daemon_main(const struct daemon_def *def, int argc, char **argv)
{
    struct daemon *d = calloc(1, sizeof(*d));
    char errmsg[OZ_ERRMSG_SIZE] = "";
    sigset_t set;
    int status = 1;
    int rc;

    if (d == NULL) {
        fprintf(stderr, "%s: out of memory\n", def->name);
        return 1;
    }
    d->def = def;
    d->release = version_release_current();
    d->conf = conf_new();
    if (d->conf == NULL) {
        free(d);
        return 1;
    }
    rc = parse_args(d, argc, argv);
    if (rc != 0) {
        status = rc == 1 ? 0 : 2;
        goto out;
    }
    rc = setup_logging(d);
    if (rc != 0) {
        status = rc;
        goto out;
    }
    conf_warn_unknown(d->conf, NULL, warn_unknown_key);
    if (conf_validate(d->conf, errmsg) != 0) {
        log_error("cannot start %s: %s", def->title, errmsg);
        fprintf(stderr, "%s: %s\n", def->name, errmsg);
        status = 2;
        goto out;
    }
    if (def->configure != NULL && def->configure(d, errmsg) != 0) {
        log_error("cannot start %s: %s", def->title, errmsg);
        fprintf(stderr, "%s: %s\n", def->name, errmsg);
        status = 2;
        goto out;
    }

    /* Signals are handled by the main thread only: block them before any
     * thread exists so every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    d->identity.component = def->component;
    d->identity.node_id = d->node_id;
    d->identity.cluster_id = d->cluster_id;
    d->identity.versions = identity_versions;
    d->identity.versions_ctx = d;
    d->identity.software_version = (unsigned)d->release->software[def->catalog];

    if ((rc = resolve_storage_dir(d, errmsg)) != 0 ||
        (rc = open_storage(d, errmsg)) != 0) {
        log_error("cannot start %s: %s", def->title, errmsg);
        fprintf(stderr, "%s: %s\n", def->name, errmsg);
        goto out;
    }
    if (d->init_only) {
        printf("%s storage initialised in '%s' (cluster id %s, node id %s)\n",
               def->title, d->storage_dir, d->cluster_id, d->node_id);
        status = 0;
        goto out;
    }
    rc = start_servers(d, errmsg);
    if (rc != 0) {
        log_error("cannot start %s: %s", def->title, errmsg);
        fprintf(stderr, "%s: %s\n", def->name, errmsg);
        goto out;
    }
    {
        char sw[96], ap[96];
        version_manager_describe(&d->vm, version_manager_software(&d->vm), sw,
                                 sizeof(sw));
        version_manager_describe(&d->vm, version_manager_apparent(&d->vm), ap,
                                 sizeof(ap));
        log_info(
            "%s ready: rpc %s, http %s, release %s (%s), cluster %s, "
            "%s software version %s, apparent version %s%s",
            def->title, d->rpc_address, d->http_address, d->release->release,
            OZONE_GIT_COMMIT, d->cluster_id,
            version_builtin_catalog(def->catalog)->name, sw, ap,
            version_manager_needs_finalization(&d->vm)
                ? " (pre-finalized: finalize the upgrade when every "
                  "component runs the new release)"
                : "");
        /* After the "ready" line: systemd Type=notify units start their
         * dependents now (DESIGN.md §4; a no-op outside systemd). */
        char ready[256];
        snprintf(ready, sizeof(ready),
                 "%s ready: rpc %s, http %s, %s software %s, apparent %s",
                 def->title, d->rpc_address, d->http_address,
                 version_builtin_catalog(def->catalog)->name, sw, ap);
        notify_ready(ready);
    }
    wait_for_stop(d, &set);
    status = d->exit_status;
out:
    shutdown_daemon(d);
    if (status == 0 && !d->init_only && d->rpc_address[0] != '\0') {
        log_info("%s stopped", def->title);
    }
    conf_free(d->conf);
    free(d);
    metrics_reset();
    log_close();
    return status;
}
