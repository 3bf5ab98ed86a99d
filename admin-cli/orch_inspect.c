/* orch_inspect.c: the live cluster as the orchestrator sees it (orch.h).
 *
 * Everything is asked with short deadlines (ORCH_CALL_MS, one attempt per
 * daemon) so that a node that is down costs at most a couple of seconds
 * and a node SCM already reports DEAD is not called at all: `upgrade plan`
 * must answer quickly precisely when the cluster is in trouble.
 *
 * Sources: SCM from configuration the way the client library finds it
 * (first entry of ozone.scm.names, else ozone.scm.client.address); the
 * datanodes from SCM's ListDatanodes; the OMs from configuration
 * (cmd_om.h), each asked for its raft role and applied index (Roles) and
 * its versions (GetVersion, every daemon's VersionService); Recon at
 * ozone.recon.address when it is set. */
#include "orch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "cmd_om.h"
#include "err.h"

/* Deadline of one call to one daemon while inspecting. */
#define ORCH_CALL_MS 2000
/* `<dir>/ozone version --json` must answer within this. */
#define TARGET_TIMEOUT_MS 10000
#define TARGET_MAX_OUTPUT (64u << 10)

const char *orch_kind_name(enum orch_kind k)
{
    switch (k) {
        case ORCH_SCM:
            return "SCM";
        case ORCH_RECON:
            return "RECON";
        case ORCH_DATANODE:
            return "DATANODE";
        case ORCH_OM:
            return "OM";
    }
    return "UNKNOWN";
}

/* "0.0.0.0:p" (a listen address) -> "127.0.0.1:p"; else a copy. */
static void dial(const char *a, char *out, size_t size)
{
    if (strncmp(a, "0.0.0.0:", 8) == 0) {
        snprintf(out, size, "127.0.0.1:%s", a + 8);
    } else {
        oz_strlcpy(out, a, size);
    }
}

static void host_of(const char *addr, char *out, size_t size)
{
    const char *colon = strrchr(addr, ':');
    size_t n = colon != NULL ? (size_t)(colon - addr) : strlen(addr);

    if (n >= size) {
        n = size - 1;
    }
    memcpy(out, addr, n);
    out[n] = '\0';
}

/* The SCM the client library talks to (client.c scm_addr): the first
 * entry of ozone.scm.names (port 9860 when it has none), else
 * ozone.scm.client.address. */
static void scm_address(const struct conf *conf, char *out, size_t size)
{
    const char *names = conf_get(conf, "ozone.scm.names");
    char first[ORCH_ADDR_SIZE];

    if (names != NULL) {
        const char *p = names + strspn(names, " \t\n");
        size_t n = strcspn(p, ",");
        while (n > 0 && strchr(" \t\n", p[n - 1]) != NULL) {
            n--;
        }
        if (n > 0 && n < sizeof(first)) {
            memcpy(first, p, n);
            first[n] = '\0';
            if (strchr(first, ':') == NULL) {
                snprintf(out, size, "%s:9860", first);
            } else {
                dial(first, out, size);
            }
            return;
        }
    }
    dial(conf_get_str(conf, "ozone.scm.client.address", "0.0.0.0:9860"), out,
         size);
}

int orch_client_open(struct cli *cli,
                     const char *om_target,
                     struct oz_client **out,
                     char *errmsg)
{
    struct conf *conf = conf_new();
    char ms[32];
    int rc;

    *out = NULL;
    if (conf == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    for (size_t i = 0; i < conf_count(cli->conf); i++) {
        const char *key = conf_key_at(cli->conf, i);
        conf_set(conf, key, conf_get(cli->conf, key));
    }
    snprintf(ms, sizeof(ms), "%dms", ORCH_CALL_MS);
    conf_set(conf, "ozone.rpc.timeout", ms);
    conf_set(conf, "ozone.client.om.wait.timeout", "0s");
    rc = oz_client_new(out, conf, om_target, &cli->identity, errmsg);
    conf_free(conf);
    return rc;
}

/* GetVersion of the daemon at n->rpc_address, one attempt: fills
 * release, versions and (when n has none yet) http_address. */
static int get_version(struct cli *cli, struct orch_node *n)
{
    const char *addrs[1] = {n->rpc_address};
    struct rpc_client_config cfg;
    struct rpc_client *client = NULL;
    Ozone__GetVersionRequest req = OZONE__GET_VERSION_REQUEST__INIT;
    ProtobufCMessage *msg = NULL;
    struct rpc_error err;
    char errmsg[OZ_ERRMSG_SIZE];
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    cfg.addrs = addrs;
    cfg.n_addrs = 1;
    cfg.identity = &cli->identity;
    cfg.deadline_ms = ORCH_CALL_MS;
    cfg.max_attempts = 1;
    if ((rc = rpc_client_new(&client, &cfg, errmsg)) != 0) {
        return rc;
    }
    rc = rpc_client_call(client, &ozone__version_service__descriptor,
                         "GetVersion", &req.base, &msg, &err);
    rpc_client_free(client);
    if (rc != 0) {
        return rc;
    }
    const Ozone__GetVersionResponse *v = (const Ozone__GetVersionResponse *)msg;
    n->reachable = true;
    oz_strlcpy(n->release, v->release != NULL ? v->release : "",
               sizeof(n->release));
    for (size_t i = 0; i < v->n_catalogs; i++) {
        for (int k = 0; k < VERSION_CATALOG_COUNT; k++) {
            const char *name =
                version_builtin_catalog((enum version_catalog_id)k)->name;
            if (v->catalogs[i]->name != NULL &&
                strcmp(v->catalogs[i]->name, name) == 0) {
                n->software[k] = v->catalogs[i]->software_version;
                n->apparent[k] = v->catalogs[i]->apparent_version;
            }
        }
    }
    if (n->http_address[0] == '\0' && v->http_address != NULL) {
        dial(v->http_address, n->http_address, sizeof(n->http_address));
    }
    rpc_message_free(msg);
    return 0;
}

static struct orch_node *node_add(struct orch_cluster *c,
                                  size_t *cap,
                                  enum orch_kind kind,
                                  const char *name,
                                  const char *rpc_address)
{
    if (c->n == *cap) {
        size_t ncap = *cap > 0 ? *cap * 2 : 16;
        struct orch_node *grown = realloc(c->nodes, ncap * sizeof(*grown));
        if (grown == NULL) {
            return NULL;
        }
        c->nodes = grown;
        *cap = ncap;
    }
    struct orch_node *n = &c->nodes[c->n++];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    oz_strlcpy(n->name, name, sizeof(n->name));
    oz_strlcpy(n->rpc_address, rpc_address, sizeof(n->rpc_address));
    host_of(n->rpc_address, n->host, sizeof(n->host));
    return n;
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);

    return ev != NULL ? ev->name : "UNKNOWN";
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct orch_node *)a)->name,
                  ((const struct orch_node *)b)->name);
}

/* SCM's view: finalization status, datanodes, OPEN pipelines. */
static int inspect_scm(struct cli *cli,
                       struct oz_client *client,
                       struct orch_cluster *c,
                       size_t *cap,
                       char *errmsg)
{
    Ozone__Scm__QueryUpgradeStatusResponse *st = NULL;
    Ozone__Scm__ListDatanodesResponse *dns = NULL;
    Ozone__Scm__ListPipelinesResponse *ps = NULL;
    struct oz_error err;
    size_t first_dn;

    memset(&err, 0, sizeof(err));
    oz_strlcpy(c->scm_status, "UNKNOWN", sizeof(c->scm_status));
    if (oz_admin_scm_upgrade_status(client, &st, &err) == 0) {
        if (st->status != NULL) {
            oz_strlcpy(c->scm_status,
                       enum_name(&ozone__scm__finalization_status__descriptor,
                                 (int)st->status->status),
                       sizeof(c->scm_status));
        }
        oz_client_free_msg(st);
    }
    if (oz_admin_list_datanodes(client,
                                OZONE__HDDS__NODE_STATE__NODE_STATE_UNSPECIFIED,
                                &dns, &err) != 0) {
        oz_errmsg_printf(errmsg,
                         "SCM answered but cannot list datanodes: %s: %s",
                         oz_result_name(err.code), err.message);
        return OZ_EUNAVAILABLE;
    }
    first_dn = c->n;
    for (size_t i = 0; i < dns->n_datanodes; i++) {
        const Ozone__Scm__DatanodeInfo *d = dns->datanodes[i];
        const Ozone__Hdds__DatanodeDetails *det = d->details;
        char addr[ORCH_ADDR_SIZE];

        if (det == NULL || det->uuid == NULL) {
            continue;
        }
        const char *ip = det->ip_address != NULL && det->ip_address[0] != '\0'
                             ? det->ip_address
                         : det->hostname != NULL ? det->hostname
                                                 : "";
        snprintf(addr, sizeof(addr), "%s:%u", ip, det->container_port);
        struct orch_node *n = node_add(c, cap, ORCH_DATANODE, det->uuid, addr);
        if (n == NULL) {
            oz_client_free_msg(dns);
            oz_errmsg_printf(errmsg, "out of memory");
            return OZ_ENOMEM;
        }
        if (det->http_port != 0) {
            snprintf(n->http_address, sizeof(n->http_address), "%s:%u", ip,
                     det->http_port);
        }
        oz_strlcpy(
            n->state,
            enum_name(&ozone__hdds__node_state__descriptor, (int)d->state),
            sizeof(n->state));
        oz_strlcpy(n->op_state,
                   enum_name(&ozone__hdds__node_operational_state__descriptor,
                             (int)d->op_state),
                   sizeof(n->op_state));
        /* SCM's record of its last heartbeat: known even when the
         * datanode does not answer now. */
        n->software[VERSION_CATALOG_HDDS] = d->software_version;
        n->apparent[VERSION_CATALOG_HDDS] = d->apparent_version;
    }
    oz_client_free_msg(dns);
    qsort(c->nodes + first_dn, c->n - first_dn, sizeof(*c->nodes), by_name);
    for (size_t i = first_dn; i < c->n; i++) {
        /* No call to a node SCM knows is down (DESIGN.md §7 DEAD). */
        if (strcmp(c->nodes[i].state, "DEAD") != 0) {
            (void)get_version(cli, &c->nodes[i]);
        }
    }
    if (oz_admin_list_pipelines(client, &ps, &err) == 0) {
        for (size_t i = 0; i < ps->n_pipelines; i++) {
            if (ps->pipelines[i]->state ==
                OZONE__HDDS__PIPELINE_STATE__PIPELINE_OPEN) {
                c->pipelines_open++;
            }
        }
        oz_client_free_msg(ps);
    }
    return 0;
}

/* Every OM's role, applied index and versions; the leader. */
static int inspect_oms(struct cli *cli,
                       struct orch_cluster *c,
                       size_t *cap,
                       char *errmsg)
{
    struct om_target t;
    size_t first_om = c->n;

    if (cmd_om_resolve(cli, NULL, &t) != CLI_OK) {
        oz_errmsg_printf(errmsg,
                         "cannot find the OMs in the configuration: set "
                         "ozone.om.address or ozone.om.service.ids");
        return OZ_ECONFIG;
    }
    oz_strlcpy(c->om_service_id, t.sid, sizeof(c->om_service_id));
    for (size_t i = 0; i < t.n; i++) {
        Ozone__Om__OmRolesRequest req = OZONE__OM__OM_ROLES_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        struct rpc_error err;
        struct orch_node *n = node_add(c, cap, ORCH_OM, t.names[i], t.addrs[i]);

        if (n == NULL) {
            oz_errmsg_printf(errmsg, "out of memory");
            return OZ_ENOMEM;
        }
        oz_strlcpy(n->state, "UNKNOWN", sizeof(n->state));
        if (cmd_om_call_node_timed(
                cli, &t, i, &ozone__om__om_admin_service__descriptor, "Roles",
                &req.base, &resp, ORCH_CALL_MS, 1, &err) != 0) {
            continue; /* down: GetVersion would fail the same way */
        }
        const Ozone__Om__OmRolesResponse *r =
            (const Ozone__Om__OmRolesResponse *)resp;
        n->applied_index = r->applied_index;
        for (size_t k = 0; k < r->n_roles; k++) {
            if (r->roles[k]->node_id != NULL &&
                (strcmp(r->roles[k]->node_id, n->name) == 0 ||
                 (t.n == 1 && r->n_roles == 1))) {
                oz_strlcpy(n->state, r->roles[k]->server_role,
                           sizeof(n->state));
            }
        }
        /* Only an OM that says it leads is taken for the leader: a
         * follower's idea of the leader may be stale. */
        if (strcmp(n->state, "LEADER") == 0) {
            n->leader = true;
            oz_strlcpy(c->om_leader, n->name, sizeof(c->om_leader));
            c->om_leader_applied = n->applied_index;
        }
        rpc_message_free(resp);
        (void)get_version(cli, n);
    }
    qsort(c->nodes + first_om, c->n - first_om, sizeof(*c->nodes), by_name);
    return 0;
}

/* OM's upgrade status, from the leader. */
static void inspect_om_status(struct cli *cli, struct orch_cluster *c)
{
    const struct orch_node *leader = orch_cluster_find(c, c->om_leader);
    Ozone__Om__OmQueryUpgradeStatusResponse *r = NULL;
    struct oz_client *client = NULL;
    struct oz_error err;
    char errmsg[OZ_ERRMSG_SIZE];

    oz_strlcpy(c->om_status, "UNKNOWN", sizeof(c->om_status));
    if (leader == NULL ||
        orch_client_open(cli, leader->rpc_address, &client, errmsg) != 0) {
        return;
    }
    memset(&err, 0, sizeof(err));
    if (oz_om_upgrade_status(client, false, &r, &err) == 0) {
        if (r->status != NULL && r->status->status != NULL) {
            oz_strlcpy(c->om_status, r->status->status, sizeof(c->om_status));
        }
        oz_client_free_msg(r);
    }
    oz_client_free(client);
}

int orch_inspect(struct cli *cli, struct orch_cluster *out, char *errmsg)
{
    struct oz_client *client = NULL;
    struct orch_node *scm;
    char addr[ORCH_ADDR_SIZE];
    size_t cap = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    scm_address(cli->conf, addr, sizeof(addr));
    scm = node_add(out, &cap, ORCH_SCM, "scm", addr);
    if (scm == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    if (get_version(cli, scm) != 0) {
        oz_errmsg_printf(errmsg,
                         "cannot reach SCM at '%s': start SCM, or set "
                         "ozone.scm.names / ozone.scm.client.address to its "
                         "address",
                         addr);
        rc = OZ_EUNAVAILABLE;
        goto err_after_cluster;
    }
    oz_strlcpy(scm->state, "RUNNING", sizeof(scm->state));
    const char *recon = conf_get(cli->conf, "ozone.recon.address");
    if (recon != NULL && recon[0] != '\0') {
        char raddr[ORCH_ADDR_SIZE];
        dial(recon, raddr, sizeof(raddr));
        struct orch_node *n = node_add(out, &cap, ORCH_RECON, "recon", raddr);
        if (n == NULL) {
            oz_errmsg_printf(errmsg, "out of memory");
            rc = OZ_ENOMEM;
            goto err_after_cluster;
        }
        oz_strlcpy(n->state, get_version(cli, n) == 0 ? "RUNNING" : "DOWN",
                   sizeof(n->state));
    }
    if ((rc = orch_client_open(cli, NULL, &client, errmsg)) != 0) {
        goto err_after_cluster;
    }
    rc = inspect_scm(cli, client, out, &cap, errmsg);
    oz_client_free(client);
    if (rc != 0) {
        goto err_after_cluster;
    }
    if ((rc = inspect_oms(cli, out, &cap, errmsg)) != 0) {
        goto err_after_cluster;
    }
    inspect_om_status(cli, out);
    return 0;

err_after_cluster:
    orch_cluster_free(out);
    return rc;
}

void orch_cluster_free(struct orch_cluster *c)
{
    if (c == NULL) {
        return;
    }
    free(c->nodes);
    memset(c, 0, sizeof(*c));
}

const struct orch_node *orch_cluster_find(const struct orch_cluster *c,
                                          const char *name)
{
    if (name == NULL || name[0] == '\0') {
        return NULL;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->nodes[i].name, name) == 0) {
            return &c->nodes[i];
        }
    }
    return NULL;
}

/* ---- the target binary ---- */

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct capture
{
    char *buf;
    size_t len;
    bool open;
};

/* Reads what is ready on fd into c (capped; the rest is drained). */
static void capture_read(int fd, struct capture *c)
{
    char tmp[4096];
    ssize_t got = read(fd, tmp, sizeof(tmp));

    if (got < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (got <= 0) {
        c->open = false;
        return;
    }
    size_t take = (size_t)got;
    if (c->len + take > TARGET_MAX_OUTPUT) {
        take = TARGET_MAX_OUTPUT - c->len;
    }
    memcpy(c->buf + c->len, tmp, take);
    c->len += take;
    c->buf[c->len] = '\0';
}

/* Runs argv[0] with a deadline, collecting stdout and stderr. 0 with the
 * exit status in *status, or an error with errmsg. */
static int run_capture(char *const argv[],
                       struct capture *out,
                       struct capture *err,
                       int *status,
                       char *errmsg)
{
    int po[2], pe[2];
    pid_t pid;

    if (pipe(po) != 0) {
        oz_errmsg_printf(errmsg, "cannot create a pipe: %s", strerror(errno));
        return OZ_EIO;
    }
    if (pipe(pe) != 0) {
        oz_errmsg_printf(errmsg, "cannot create a pipe: %s", strerror(errno));
        close(po[0]);
        close(po[1]);
        return OZ_EIO;
    }
    pid = fork();
    if (pid < 0) {
        oz_errmsg_printf(errmsg, "cannot fork: %s", strerror(errno));
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        return OZ_EIO;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
        }
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        execv(argv[0], argv);
        dprintf(2, "cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    out->open = err->open = true;
    long long deadline = mono_ms() + TARGET_TIMEOUT_MS;
    while (out->open || err->open) {
        struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
        long long left = deadline - mono_ms();
        if (left <= 0) {
            break;
        }
        int n = poll(fds, 2, (int)left);
        if (n < 0 && errno != EINTR) {
            break;
        }
        if (out->open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            capture_read(po[0], out);
        }
        if (err->open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            capture_read(pe[0], err);
        }
    }
    close(po[0]);
    close(pe[0]);
    if (out->open || err->open) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        oz_errmsg_printf(errmsg,
                         "'%s version --json' did not answer within %d s: "
                         "check that it is an ozone-c binary that runs here",
                         argv[0], TARGET_TIMEOUT_MS / 1000);
        return OZ_ETIMEDOUT;
    }
    while (waitpid(pid, status, 0) < 0) {
        if (errno != EINTR) {
            oz_errmsg_printf(errmsg, "cannot wait for '%s': %s", argv[0],
                             strerror(errno));
            return OZ_EIO;
        }
    }
    return 0;
}

/* `ozone version --json`: [ {"release": "1.1.0", "softwareVersions":
 * {"OM": 102, "HDDS": 102, "CLIENT": 100}, ...} ]. */
static bool parse_version_json(const char *text, struct orch_target *t)
{
    cJSON *root = cJSON_Parse(text);
    bool ok = false;

    if (root == NULL) {
        return false;
    }
    const cJSON *o = cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : root;
    const cJSON *rel = cJSON_GetObjectItemCaseSensitive(o, "release");
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(o, "softwareVersions");
    if (cJSON_IsString(rel) && cJSON_IsObject(sw)) {
        ok = true;
        oz_strlcpy(t->release, rel->valuestring, sizeof(t->release));
        for (int k = 0; k < VERSION_CATALOG_COUNT; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(
                sw, version_builtin_catalog((enum version_catalog_id)k)->name);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
                v->valuedouble > 1e6) {
                ok = false;
                break;
            }
            t->software[k] = (unsigned)v->valuedouble;
        }
    }
    cJSON_Delete(root);
    return ok;
}

/* First line of s, at most 160 characters, for messages. */
static void first_line(const char *s, char *out, size_t size)
{
    size_t n = strcspn(s, "\n");

    if (n > 160) {
        n = 160;
    }
    if (n >= size) {
        n = size - 1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

int orch_target_read(const char *backend,
                     const char *bin,
                     struct orch_target *t,
                     char *errmsg)
{
    char path[ORCH_PATH_SIZE + 16];
    struct capture out = {0}, err = {0};
    struct stat st;
    int status = 0;
    int rc;

    memset(t, 0, sizeof(*t));
    if (bin == NULL || bin[0] == '\0') {
        oz_errmsg_printf(errmsg,
                         "no new binary given: pass --new-bin with the "
                         "directory holding the new release's 'ozone' (or "
                         "the image tag with --backend compose)");
        return OZ_EINVAL;
    }
    if (strlen(bin) >= sizeof(t->bin)) {
        oz_errmsg_printf(errmsg, "--new-bin path is too long (%zu bytes)",
                         strlen(bin));
        return OZ_EINVAL;
    }
    oz_strlcpy(t->bin, bin, sizeof(t->bin));
    if (backend != NULL && strcmp(backend, "compose") == 0) {
        return 0; /* an image tag: versions known once a node runs it */
    }
    if (stat(bin, &st) != 0) {
        oz_errmsg_printf(errmsg,
                         "new binary directory '%s' does not exist: give "
                         "--new-bin the directory that holds the new "
                         "release's 'ozone'",
                         bin);
        return OZ_ENOTFOUND;
    }
    if (!S_ISDIR(st.st_mode)) {
        oz_errmsg_printf(errmsg,
                         "'%s' is not a directory: give --new-bin the "
                         "directory that holds the new 'ozone', not the file",
                         bin);
        return OZ_EINVAL;
    }
    snprintf(path, sizeof(path), "%s/ozone", bin);
    if (access(path, X_OK) != 0) {
        oz_errmsg_printf(errmsg,
                         "no executable 'ozone' in '%s': install the new "
                         "release there (or link its 'ozone' binary into it)",
                         bin);
        return OZ_ENOTFOUND;
    }
    out.buf = calloc(1, TARGET_MAX_OUTPUT + 1);
    err.buf = calloc(1, TARGET_MAX_OUTPUT + 1);
    if (out.buf == NULL || err.buf == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        rc = OZ_ENOMEM;
        goto done;
    }
    char *argv[] = {path, "version", "--json", NULL};
    if ((rc = run_capture(argv, &out, &err, &status, errmsg)) != 0) {
        goto done;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char line[200];
        first_line(err.len > 0 ? err.buf : out.buf, line, sizeof(line));
        oz_errmsg_printf(
            errmsg, "'%s version --json' failed (%s %d): %s", path,
            WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
            line[0] != '\0' ? line : "no output");
        rc = OZ_ERPC;
        goto done;
    }
    if (!parse_version_json(out.buf, t)) {
        char line[200];
        first_line(out.buf, line, sizeof(line));
        oz_errmsg_printf(errmsg,
                         "cannot parse the output of '%s version --json' "
                         "(expected [{\"release\": ..., \"softwareVersions\": "
                         "{...}}]): '%s'",
                         path, line);
        memset(t->software, 0, sizeof(t->software));
        t->release[0] = '\0';
        rc = OZ_ECORRUPT;
        goto done;
    }
    t->known = true;
    rc = 0;
done:
    free(out.buf);
    free(err.buf);
    return rc;
}
