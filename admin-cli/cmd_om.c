/* `ozone admin om roles|transfer|prepare|cancelprepare|digest` (DESIGN.md
 * §6.8, §8, §10): the OM service's raft ring. Outputs copy Ozone's
 * (GetServiceRolesSubcommand, TransferOmLeaderSubCommand,
 * PrepareSubCommand, CancelPrepareSubCommand) because operators' scripts
 * grep them. `digest` is ours: every OM's table digest, for checks that
 * the OMs hold the same data (DESIGN.md §8.1). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cmd_om.h"
#include "cmd_upgrade_om.h"
#include "err.h"
#include "om.pb-c.h"

#define OM_MAX_NODES CMD_OM_MAX_NODES
#define ADDR_SIZE CMD_OM_ADDR_SIZE

static bool list_item(const char *list, size_t i, char *out, size_t size)
{
    const char *p = list;

    for (size_t k = 0; k < i; k++) {
        p = strchr(p, ',');
        if (p == NULL) {
            return false;
        }
        p++;
    }
    while (*p == ' ' || *p == '\t' || *p == '\n') {
        p++;
    }
    size_t n = strcspn(p, ",");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n')) {
        n--;
    }
    if (n == 0 || n >= size) {
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static void dial(const char *a, char *out, size_t size)
{
    if (strncmp(a, "0.0.0.0:", 8) == 0) {
        snprintf(out, size, "127.0.0.1:%s", a + 8);
    } else {
        oz_strlcpy(out, a, size);
    }
}

/* The OMs of service sid (NULL: the first configured service, else the
 * single OM of ozone.om.address). */
int cmd_om_resolve(struct cli *cli, const char *sid, struct om_target *t)
{
    const char *ids = conf_get(cli->conf, "ozone.om.service.ids");
    char key[512];
    char name[64];

    memset(t, 0, sizeof(*t));
    if (sid == NULL &&
        (ids == NULL || !list_item(ids, 0, t->sid, sizeof(t->sid)))) {
        oz_strlcpy(t->names[0], "om1", sizeof(t->names[0]));
        dial(conf_get_str(cli->conf, "ozone.om.address", "0.0.0.0:9862"),
             t->addrs[0], ADDR_SIZE);
        t->n = 1;
        return CLI_OK;
    }
    if (sid != NULL) {
        oz_strlcpy(t->sid, sid, sizeof(t->sid));
    }
    snprintf(key, sizeof(key), "ozone.om.nodes.%s", t->sid);
    const char *nodes = conf_get(cli->conf, key);
    for (size_t i = 0; nodes != NULL && t->n < OM_MAX_NODES &&
                       list_item(nodes, i, name, sizeof(name));
         i++) {
        snprintf(key, sizeof(key), "ozone.om.address.%s.%s", t->sid, name);
        const char *a = conf_get(cli->conf, key);
        if (a != NULL) {
            oz_strlcpy(t->names[t->n], name, sizeof(t->names[0]));
            dial(a, t->addrs[t->n], ADDR_SIZE);
            t->n++;
        }
    }
    if (t->n == 0) {
        return cli_fail(CLI_USAGE,
                        "unknown OM service id '%s': set ozone.om.nodes.%s "
                        "and ozone.om.address.%s.<node>",
                        t->sid, t->sid, t->sid);
    }
    return CLI_OK;
}

/* attempts 0: enough to ride out an election (DESIGN.md §5). */
static int new_client(struct cli *cli,
                      const char *const *addrs,
                      size_t n,
                      int deadline_ms,
                      int attempts,
                      struct rpc_client **out)
{
    struct rpc_client_config cfg;
    char errmsg[OZ_ERRMSG_SIZE];

    memset(&cfg, 0, sizeof(cfg));
    cfg.addrs = addrs;
    cfg.n_addrs = n;
    cfg.identity = &cli->identity;
    cfg.deadline_ms = deadline_ms;
    cfg.max_attempts = attempts > 0 ? attempts : (n > 1 ? 8 * (int)n + 6 : 3);
    if (rpc_client_new(out, &cfg, errmsg) != 0) {
        return cli_fail(CLI_FAILED, "%s", errmsg);
    }
    return CLI_OK;
}

/* Calls method on the service (failing over to the leader). */
static int call_service(struct cli *cli,
                        const struct om_target *t,
                        const char *method,
                        ProtobufCMessage *req,
                        ProtobufCMessage **resp)
{
    const char *addrs[OM_MAX_NODES];
    struct rpc_client *c = NULL;
    struct rpc_error err;
    int rc;

    for (size_t i = 0; i < t->n; i++) {
        addrs[i] = t->addrs[i];
    }
    if ((rc = new_client(cli, addrs, t->n, 60000, 0, &c)) != CLI_OK) {
        return rc;
    }
    rc = rpc_client_call(c, &ozone__om__om_admin_service__descriptor, method,
                         req, resp, &err);
    rpc_client_free(c);
    if (rc != 0) {
        return cli_fail(CLI_FAILED, "%s", err.message);
    }
    return CLI_OK;
}

int cmd_om_call_node_timed(struct cli *cli,
                           const struct om_target *t,
                           size_t i,
                           const ProtobufCServiceDescriptor *service,
                           const char *method,
                           ProtobufCMessage *req,
                           ProtobufCMessage **resp,
                           int deadline_ms,
                           int attempts,
                           struct rpc_error *err)
{
    const char *addr = t->addrs[i];
    struct rpc_client *c = NULL;
    int rc;

    memset(err, 0, sizeof(*err));
    if ((rc = new_client(cli, &addr, 1, deadline_ms, attempts, &c)) != CLI_OK) {
        snprintf(err->message, sizeof(err->message),
                 "cannot create a client for OM '%s' at '%s'", t->names[i],
                 addr);
        return OZ_EINVAL;
    }
    rc = rpc_client_call(c, service, method, req, resp, err);
    rpc_client_free(c);
    return rc;
}

/* Calls method on node i only; errors go to err. */
int cmd_om_call_node(struct cli *cli,
                     const struct om_target *t,
                     size_t i,
                     const char *method,
                     ProtobufCMessage *req,
                     ProtobufCMessage **resp,
                     struct rpc_error *err)
{
    return cmd_om_call_node_timed(cli, t, i,
                                  &ozone__om__om_admin_service__descriptor,
                                  method, req, resp, 5000, 3, err);
}

/* ---- roles ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void center(const char *s, size_t width)
{
    size_t len = strlen(s);
    size_t pads = width > len ? width - len : 0;

    printf("%*s%s%*s", (int)(pads / 2), "", s, (int)(pads - pads / 2), "");
}

static void border(const size_t *w, size_t n)
{
    putchar('+');
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < w[i] + 2; j++) {
            putchar('-');
        }
        putchar('+');
    }
    putchar('\n');
}

static void row(const char *const *cells, const size_t *w, size_t n)
{
    putchar('|');
    for (size_t i = 0; i < n; i++) {
        center(cells[i], w[i] + 2);
        putchar('|');
    }
    putchar('\n');
}

/* Ozone's FormattingCLIUtils box: title, header, rows. */
static void print_roles_table(const Ozone__Om__OmRolesResponse *r)
{
    static const char *const header[3] = {"Host Name", "Node ID", "Role"};
    const char *title = "Ozone Manager Roles";
    size_t w[3];
    char cut[64];

    for (size_t i = 0; i < 3; i++) {
        w[i] = strlen(header[i]);
    }
    for (size_t k = 0; k < r->n_roles; k++) {
        const char *cells[3] = {r->roles[k]->hostname, r->roles[k]->node_id,
                                r->roles[k]->server_role};
        for (size_t i = 0; i < 3; i++) {
            if (strlen(cells[i]) > w[i]) {
                w[i] = strlen(cells[i]);
            }
        }
    }
    size_t tw = w[0] + w[1] + w[2] + 6;
    oz_strlcpy(cut, title, tw + 1 < sizeof(cut) ? tw + 1 : sizeof(cut));
    putchar('+');
    for (size_t j = 0; j < tw + 2; j++) {
        putchar('-');
    }
    printf("+\n|");
    center(cut, tw + 2);
    printf("|\n");
    border(w, 3);
    row(header, w, 3);
    border(w, 3);
    for (size_t k = 0; k < r->n_roles; k++) {
        const char *cells[3] = {r->roles[k]->hostname, r->roles[k]->node_id,
                                r->roles[k]->server_role};
        row(cells, w, 3);
    }
    if (r->n_roles > 0) {
        border(w, 3);
    }
}

static int om_roles(struct cli *cli, const struct om_target *t, bool table)
{
    Ozone__Om__OmRolesRequest req = OZONE__OM__OM_ROLES_REQUEST__INIT;
    Ozone__Om__OmRolesResponse *r = NULL;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    int rc = OZ_EUNAVAILABLE;

    /* Any reachable OM knows the ring; ask until one knows a leader,
     * waiting out an election (up to 10 s). */
    double end = now_s() + 10.0;
    for (;;) {
        for (size_t i = 0; i < t->n && r == NULL; i++) {
            rc = cmd_om_call_node(cli, t, i, "Roles", &req.base, &resp, &err);
            if (rc != 0) {
                continue;
            }
            r = (Ozone__Om__OmRolesResponse *)resp;
            if (r->leader[0] == '\0') {
                rpc_message_free(resp);
                r = NULL;
                resp = NULL;
            }
        }
        if (r != NULL || now_s() > end) {
            break;
        }
        sleep_ms(200);
    }
    if (r == NULL) {
        return cli_fail(CLI_FAILED, "no OM of service '%s' knows a leader: %s",
                        t->sid[0] != '\0' ? t->sid : "(single OM)",
                        rc == 0 ? "election in progress; retry" : err.message);
    }
    if (cli->json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t k = 0; k < r->n_roles; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON *info = cJSON_CreateObject();
            cJSON_AddStringToObject(info, "serverRole",
                                    r->roles[k]->server_role);
            cJSON_AddStringToObject(info, "hostname", r->roles[k]->hostname);
            cJSON_AddItemToObject(o, r->roles[k]->node_id, info);
            cJSON_AddItemToArray(arr, o);
        }
        cli_print_json(arr);
    } else if (table) {
        print_roles_table(r);
    } else {
        for (size_t k = 0; k < r->n_roles; k++) {
            printf("%s : %s (%s)\n", r->roles[k]->node_id,
                   r->roles[k]->server_role, r->roles[k]->hostname);
        }
    }
    rpc_message_free(resp);
    return CLI_OK;
}

/* ---- transfer ---- */

static int om_transfer(struct cli *cli,
                       const struct om_target *t,
                       const char *node,
                       bool random)
{
    Ozone__Om__OmTransferRequest req = OZONE__OM__OM_TRANSFER_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    if ((node == NULL) == !random) {
        return cli_fail(CLI_USAGE,
                        "give exactly one of -n NODE and -r; see 'ozone admin "
                        "om transfer --help'");
    }
    req.node_id = (char *)(node != NULL ? node : "");
    req.random = random;
    rc = call_service(cli, t, "Transfer", &req.base, &resp);
    if (rc != CLI_OK) {
        return rc;
    }
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(
            o, "newLeader",
            ((Ozone__Om__OmTransferResponse *)resp)->new_leader);
        cli_print_json(o);
    } else {
        printf("Transfer leadership successfully to %s.\n",
               random ? "random node" : node);
    }
    rpc_message_free(resp);
    return CLI_OK;
}

/* ---- prepare ---- */

static int om_prepare(struct cli *cli,
                      const struct om_target *t,
                      long long timeout_s,
                      long long interval_s)
{
    Ozone__Om__OmPrepareRequest req = OZONE__OM__OM_PREPARE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    bool done[OM_MAX_NODES] = {false};
    size_t n_done = 0;
    uint64_t txn;
    int rc;

    rc = call_service(cli, t, "Prepare", &req.base, &resp);
    if (rc != CLI_OK) {
        return rc;
    }
    txn = ((Ozone__Om__OmPrepareResponse *)resp)->txn_id;
    rpc_message_free(resp);
    printf(
        "Ozone Manager Prepare Request successfully returned with "
        "Transaction Id : [%" PRIu64 "].\n",
        txn);
    printf(
        "\nChecking individual OM instances for prepare request "
        "completion...\n");
    double end = now_s() + (double)timeout_s;
    while (now_s() < end && n_done < t->n) {
        for (size_t i = 0; i < t->n; i++) {
            Ozone__Om__OmPrepareStatusRequest sreq =
                OZONE__OM__OM_PREPARE_STATUS_REQUEST__INIT;
            struct rpc_error err;

            if (done[i]) {
                continue;
            }
            sreq.txn_id = txn;
            if (cmd_om_call_node(cli, t, i, "PrepareStatus", &sreq.base, &resp,
                                 &err) != 0) {
                printf(
                    "Exception while checking preparation completeness "
                    "for [%s], Error : [%s]\n",
                    t->addrs[i], err.message);
                continue;
            }
            Ozone__Om__OmPrepareStatusResponse *s =
                (Ozone__Om__OmPrepareStatusResponse *)resp;
            printf(
                "OM : [%s], Prepare Status : [%s], Current Transaction Id "
                ": [%" PRIu64 "]\n",
                t->names[i], s->status, s->applied_index);
            if (strcmp(s->status, "PREPARE_COMPLETED") == 0) {
                done[i] = true;
                n_done++;
            }
            rpc_message_free(resp);
        }
        if (n_done < t->n) {
            printf("Waiting for %lld seconds before retrying...\n", interval_s);
            fflush(stdout);
            sleep_ms((long)(interval_s * 1000));
        }
    }
    if (n_done < t->n / 2 + 1) {
        char names[512] = "";
        for (size_t i = 0; i < t->n; i++) {
            if (!done[i]) {
                size_t used = strlen(names);
                snprintf(names + used, sizeof(names) - used, "%s%s",
                         used > 0 ? ", " : "", t->names[i]);
            }
        }
        fflush(stdout);
        return cli_fail(CLI_FAILED,
                        "OM Preparation failed since a majority OMs are not "
                        "prepared yet: not prepared: %s",
                        names);
    }
    printf("\nOM Preparation successful! \n");
    if (n_done == t->n) {
        printf("All OMs are prepared\n");
    } else {
        printf("A majority of OMs are prepared. OMs that are not prepared : ");
        for (size_t i = 0, k = 0; i < t->n; i++) {
            if (!done[i]) {
                printf("%s%s", k++ > 0 ? "," : "", t->names[i]);
            }
        }
        printf("\n");
    }
    printf(
        "No new write requests will be allowed until preparation is "
        "cancelled or upgrade/downgrade is done.\n");
    return CLI_OK;
}

static int om_cancel_prepare(struct cli *cli, const struct om_target *t)
{
    Ozone__Om__OmCancelPrepareRequest req =
        OZONE__OM__OM_CANCEL_PREPARE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc = call_service(cli, t, "CancelPrepare", &req.base, &resp);

    if (rc != CLI_OK) {
        return rc;
    }
    rpc_message_free(resp);
    printf(
        "Cancel prepare succeeded, cluster can now accept write "
        "requests.\n");
    return CLI_OK;
}

/* ---- digest ---- */

static int om_digest(struct cli *cli, const struct om_target *t)
{
    cJSON *arr = cli->json ? cJSON_CreateArray() : NULL;
    int status = CLI_OK;

    for (size_t i = 0; i < t->n; i++) {
        Ozone__Om__OmDigestRequest req = OZONE__OM__OM_DIGEST_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        struct rpc_error err;

        if (cmd_om_call_node(cli, t, i, "Digest", &req.base, &resp, &err) !=
            0) {
            fprintf(stderr, "ozone: cannot reach OM '%s' at '%s': %s\n",
                    t->names[i], t->addrs[i], err.message);
            status = CLI_FAILED;
            continue;
        }
        Ozone__Om__OmDigestResponse *d = (Ozone__Om__OmDigestResponse *)resp;
        if (arr != NULL) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "nodeId", t->names[i]);
            cJSON_AddStringToObject(o, "digest", d->digest);
            cJSON_AddNumberToObject(o, "appliedIndex",
                                    (double)d->applied_index);
            cJSON_AddNumberToObject(o, "entries", (double)d->entries);
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("%s : %s (applied index %" PRIu64 ", %" PRIu64 " entries)\n",
                   t->names[i], d->digest, d->applied_index, d->entries);
        }
        rpc_message_free(resp);
    }
    if (arr != NULL) {
        cli_print_json(arr);
    }
    return status;
}

/* ---- dispatch ---- */

static void om_usage(FILE *f)
{
    fputs(
        "usage: ozone admin om COMMAND [--service-id ID] [OPTIONS]\n"
        "  roles [--table | --json]\n"
        "      every OM of the service and its raft role\n"
        "  transfer (-n NODE | -r)\n"
        "      hand OM leadership to NODE or to a random OM\n"
        "  prepare [--prepare-timeout S] [--prepare-check-interval S]\n"
        "      prepare every OM for an upgrade (writes stop)\n"
        "  cancelprepare\n"
        "      leave prepare mode cluster-wide\n"
        "  digest [--json]\n"
        "      every OM's table digest and applied index\n"
        "  finalizeupgrade | finalizationstatus\n"
        "      finalize the OMs' upgrade or show its state\n",
        f);
}

int cmd_admin_om(struct cli *cli, int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : NULL;
    const char *sid = NULL, *node = NULL, *timeout = NULL, *interval = NULL;
    bool table = false, random = false, help = false;
    const struct cli_opt opts[] = {
        {"-id", "--service-id", &sid, NULL},
        {NULL, "--table", NULL, &table},
        {"-n", "--new-leader-id", &node, NULL},
        {NULL, "--newLeaderId", &node, NULL},
        {"-r", "--random", NULL, &random},
        {"-pt", "--prepare-timeout", &timeout, NULL},
        {"-pct", "--prepare-check-interval", &interval, NULL},
    };
    struct om_target t;
    long long timeout_s = 300, interval_s = 1;
    char cmd[64];
    char *pos[1];
    size_t n_pos = 0;
    int rc;

    if (what == NULL || strcmp(what, "-h") == 0 ||
        strcmp(what, "--help") == 0) {
        om_usage(what != NULL ? stdout : stderr);
        return what != NULL ? CLI_OK : CLI_USAGE;
    }
    /* OM finalization: cmd_upgrade_om.c. */
    if (strcmp(what, "finalizeupgrade") == 0 ||
        strcmp(what, "finalizationstatus") == 0) {
        return cmd_om_upgrade(cli, argc, argv);
    }
    if (strcmp(what, "roles") != 0 && strcmp(what, "getserviceroles") != 0 &&
        strcmp(what, "transfer") != 0 && strcmp(what, "prepare") != 0 &&
        strcmp(what, "cancelprepare") != 0 && strcmp(what, "digest") != 0) {
        return cli_fail(CLI_USAGE,
                        "unknown command 'ozone admin om %s'; see 'ozone "
                        "admin om --help'",
                        what);
    }
    snprintf(cmd, sizeof(cmd), "ozone admin om %s", what);
    rc = cli_parse(cmd, argc - 1, argv + 1, opts, sizeof(opts) / sizeof(*opts),
                   pos, 0, &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        om_usage(stdout);
        return CLI_OK;
    }
    if ((timeout != NULL && !cli_parse_count(timeout, 0, 86400, &timeout_s)) ||
        (interval != NULL &&
         !cli_parse_count(interval, 0, 3600, &interval_s))) {
        return cli_fail(CLI_USAGE,
                        "invalid prepare timeout or check interval: give "
                        "seconds");
    }
    if ((rc = cmd_om_resolve(cli, sid, &t)) != CLI_OK) {
        return rc;
    }
    if (strcmp(what, "roles") == 0 || strcmp(what, "getserviceroles") == 0) {
        return om_roles(cli, &t, table);
    }
    if (strcmp(what, "transfer") == 0) {
        return om_transfer(cli, &t, node, random);
    }
    if (strcmp(what, "prepare") == 0) {
        return om_prepare(cli, &t, timeout_s, interval_s);
    }
    if (strcmp(what, "cancelprepare") == 0) {
        return om_cancel_prepare(cli, &t);
    }
    return om_digest(cli, &t);
}
