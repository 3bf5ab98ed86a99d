/* The OM side of the upgrade commands (DESIGN.md §6.7, §10):
 *
 *   ozone admin upgrade finalize [--wait] [--timeout S]
 *       cluster finalization: OM leader -> SCM FinalizeUpgrade -> marker;
 *       --wait polls until the OM is finalized
 *   ozone admin om finalizeupgrade [-id SID]
 *       legacy path: refused while SCM is not finalized
 *   ozone admin om finalizationstatus [-id SID]
 *       one word
 *   the OM lines of `ozone admin upgrade status` (cmd_upgrade.c's parts)
 *
 * And the user commands of the OM features above ZDU_READY:
 *   ozone sh bucket setquota --space-quota SIZE [--namespace-quota N] /v/b
 *   ozone sh key settags /v/b/k K=V[,K=V...]    (empty: remove every tag)
 *   ozone sh key gettags /v/b/k
 */
#include "cmd_upgrade_om.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "client_upgrade.h"
#include "clock.h"
#include "conf.h"
#include "err.h"
#include "version.h"

#define WAIT_POLL_MS 500

static const char *om_name(unsigned v, char *buf, size_t size)
{
    const struct version_feature *f = version_catalog_find(
        version_builtin_catalog(VERSION_CATALOG_OM), (int)v);

    snprintf(buf, size, "%s (%u)", f != NULL ? f->name : "UNKNOWN", v);
    return buf;
}

static bool finished(const char *status)
{
    return strcmp(status, "FINALIZATION_DONE") == 0 ||
           strcmp(status, "ALREADY_FINALIZED") == 0;
}

/* ---- finalize ---- */

/* Polls the OM until it is finalized or timeout_s passes. */
static int wait_finalized(struct cli *cli, struct oz_client *c, long timeout_s)
{
    long long deadline = oz_mono_ms() + timeout_s * 1000LL;
    char last[256] = "";

    for (;;) {
        Ozone__Om__OmQueryUpgradeStatusResponse *r = NULL;
        struct oz_error err;
        char line[256];

        memset(&err, 0, sizeof(err));
        if (oz_om_upgrade_status(c, false, &r, &err) != 0) {
            /* A leader change or an OM restart: keep waiting. */
            snprintf(line, sizeof(line), "OM not answering: %s", err.message);
        } else {
            const Ozone__Om__OmUpgradeStatus *st = r->status;
            bool done = st != NULL && finished(st->status);
            snprintf(line, sizeof(line), "OM status: %s%s%s",
                     st != NULL ? st->status : "UNKNOWN",
                     st != NULL && st->n_blockers > 0 ? "; " : "",
                     st != NULL && st->n_blockers > 0 ? st->blockers[0] : "");
            oz_client_free_msg(r);
            if (done) {
                if (!cli->json) {
                    printf("Cluster finalization is done.\n");
                }
                return CLI_OK;
            }
        }
        if (!cli->json && strcmp(line, last) != 0) {
            printf("%s\n", line);
            fflush(stdout);
            oz_strlcpy(last, line, sizeof(last));
        }
        if (oz_mono_ms() >= deadline) {
            return cli_fail(CLI_FAILED,
                            "finalization did not finish within %ld s (%s); "
                            "check 'ozone admin upgrade status'",
                            timeout_s, line);
        }
        oz_sleep_ms(WAIT_POLL_MS);
    }
}

static int finalize(struct cli *cli,
                    const char *sid,
                    bool legacy,
                    bool wait,
                    long timeout_s)
{
    Ozone__Om__OmFinalizeUpgradeResponse *r = NULL;
    struct oz_client *c = NULL;
    struct oz_error err;
    int rc = cli_open_client(cli, sid, &c);

    if (rc != CLI_OK) {
        return rc;
    }
    memset(&err, 0, sizeof(err));
    if (!cli->json && legacy) {
        printf("Finalizing the OM upgrade\n");
        fflush(stdout);
    }
    if (oz_om_finalize(c,
                       legacy ? "ozone admin om finalizeupgrade"
                              : "ozone admin upgrade finalize",
                       legacy, &r, &err) != 0) {
        rc = cli_fail_oz(&err);
        if (!cli->json) {
            fprintf(stderr, "Finalization was not successful.\n");
        }
        oz_client_free(c);
        return rc;
    }
    const char *status = r->status != NULL ? r->status->status : "UNKNOWN";
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
        cJSON_AddStringToObject(o, "status", status);
        for (size_t i = 0; i < r->n_messages; i++) {
            cJSON_AddItemToArray(msgs, cJSON_CreateString(r->messages[i]));
        }
        cli_print_json(o);
    } else if (strcmp(status, "ALREADY_FINALIZED") == 0 ||
               strcmp(status, "FINALIZATION_DONE") == 0) {
        for (size_t i = 0; i < r->n_messages; i++) {
            printf("%s\n", r->messages[i]);
        }
        printf("Upgrade has already been finalized.\n");
    } else {
        for (size_t i = 0; i < r->n_messages; i++) {
            printf("%s\n", r->messages[i]);
        }
        if (!wait) {
            printf(
                "Check progress with 'ozone admin upgrade status' or "
                "'ozone admin om finalizationstatus'.\n");
        }
    }
    oz_client_free_msg(r);
    if (wait) {
        rc = wait_finalized(cli, c, timeout_s);
    }
    oz_client_free(c);
    return rc;
}

static int finalization_status(struct cli *cli, const char *sid)
{
    Ozone__Om__OmQueryUpgradeStatusResponse *r = NULL;
    struct oz_client *c = NULL;
    struct oz_error err;
    int rc = cli_open_client(cli, sid, &c);

    if (rc != CLI_OK) {
        return rc;
    }
    memset(&err, 0, sizeof(err));
    if (oz_om_upgrade_status(c, false, &r, &err) != 0) {
        rc = cli_fail_oz(&err);
        oz_client_free(c);
        return rc;
    }
    const char *word = r->status != NULL ? r->status->status : "UNKNOWN";
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", word);
        cli_print_json(o);
    } else {
        printf("%s\n", word);
    }
    oz_client_free_msg(r);
    oz_client_free(c);
    return CLI_OK;
}

int cmd_om_upgrade(struct cli *cli, int argc, char **argv)
{
    const char *sid = NULL;
    bool help = false;
    const struct cli_opt opts[] = {
        {"-id", "--service-id", &sid, NULL},
    };
    char cmd[64];
    char *pos[1];
    size_t n_pos = 0;
    int rc;

    snprintf(cmd, sizeof(cmd), "ozone admin om %s", argv[1]);
    rc = cli_parse(cmd, argc - 1, argv + 1, opts, 1, pos, 0, &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        printf(
            "Usage: ozone admin om finalizeupgrade [-id SID]\n"
            "       ozone admin om finalizationstatus [-id SID]\n\n"
            "finalizeupgrade finalizes the OMs once SCM is finalized "
            "(run 'ozone admin\nscm finalizeupgrade' first); "
            "finalizationstatus prints one word.\n");
        return CLI_OK;
    }
    if (strcmp(argv[1], "finalizeupgrade") == 0) {
        return finalize(cli, sid, true, false, 0);
    }
    return finalization_status(cli, sid);
}

int cmd_upgrade_finalize(struct cli *cli, int argc, char **argv)
{
    const char *sid = NULL, *timeout = NULL;
    bool help = false, wait = false;
    const struct cli_opt opts[] = {
        {"-id", "--service-id", &sid, NULL},
        {NULL, "--wait", NULL, &wait},
        {NULL, "--timeout", &timeout, NULL},
    };
    long long timeout_s = 600;
    char *pos[1];
    size_t n_pos = 0;
    int rc;

    rc = cli_parse("ozone admin upgrade finalize", argc - 1, argv + 1, opts,
                   sizeof(opts) / sizeof(opts[0]), pos, 0, &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        printf(
            "Usage: ozone admin upgrade finalize [--wait] [--timeout S] "
            "[-id SID]\n\n"
            "Finalizes the whole cluster: the OM leader checks that every "
            "OM runs the\nnew release, asks SCM to finalize (datanodes "
            "follow over heartbeats), and\nfinalizes the OMs once HDDS is "
            "finalized. This is the point of no return:\nafterwards the "
            "old release cannot read the data. --wait returns when the\n"
            "OMs are finalized (at most --timeout seconds, default "
            "600).\n");
        return CLI_OK;
    }
    if (timeout != NULL && !cli_parse_count(timeout, 1, 86400, &timeout_s)) {
        return cli_fail(CLI_USAGE,
                        "invalid value '%s' for '--timeout': give seconds",
                        timeout);
    }
    return finalize(cli, sid, false, wait, (long)timeout_s);
}

/* ---- the OM part of `ozone admin upgrade status` ---- */

int cmd_upgrade_om_status(struct cli *cli,
                          struct oz_client *c,
                          bool verbose,
                          cJSON *root,
                          cJSON *blockers,
                          bool *downgrade_possible,
                          char *why,
                          size_t why_size)
{
    Ozone__Om__OmQueryUpgradeStatusResponse *resp = NULL;
    struct oz_error err;
    char sw[96], ap[96];

    memset(&err, 0, sizeof(err));
    if (oz_om_upgrade_status(c, true, &resp, &err) != 0) {
        return cli_fail_oz(&err);
    }
    const Ozone__Om__OmUpgradeStatus *st = resp->status;
    if (st == NULL) {
        oz_client_free_msg(resp);
        return cli_fail(CLI_FAILED, "OM sent no upgrade status");
    }
    om_name(st->software_version, sw, sizeof(sw));
    om_name(st->apparent_version, ap, sizeof(ap));
    cJSON *om = cJSON_AddObjectToObject(root, "om");
    cJSON_AddStringToObject(om, "status", st->status);
    cJSON_AddNumberToObject(om, "softwareVersion", st->software_version);
    cJSON_AddStringToObject(om, "softwareVersionName", sw);
    cJSON_AddNumberToObject(om, "apparentVersion", st->apparent_version);
    cJSON_AddStringToObject(om, "apparentVersionName", ap);
    cJSON_AddBoolToObject(om, "finalizationInProgress",
                          st->finalization_in_progress);
    cJSON_AddStringToObject(om, "orderViolation", st->order_violation);
    /* "" from an OM that records nobody or predates the field. */
    cJSON_AddStringToObject(om, "finalizationRequestedBy",
                            st->finalization_requested_by);
    cJSON *list = cJSON_AddArrayToObject(om, "nodes");
    if (!cli->json) {
        printf("OM status: %s\n", st->status);
        if (verbose) {
            printf("OM apparent version: %s\n", ap);
            printf("OM software version: %s\n", sw);
            if (st->finalization_requested_by[0] != '\0') {
                printf("OM finalization requested by: %s\n",
                       st->finalization_requested_by);
            }
        }
    }
    for (size_t i = 0; i < st->n_oms; i++) {
        const Ozone__Om__OmPeerVersion *p = st->oms[i];
        char psw[96], pap[96];
        om_name(p->software_version, psw, sizeof(psw));
        om_name(p->apparent_version, pap, sizeof(pap));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "nodeId", p->node_id);
        cJSON_AddStringToObject(o, "rpcAddress", p->rpc_address);
        cJSON_AddBoolToObject(o, "reachable", p->reachable);
        cJSON_AddNumberToObject(o, "softwareVersion", p->software_version);
        cJSON_AddNumberToObject(o, "apparentVersion", p->apparent_version);
        cJSON_AddItemToArray(list, o);
        if (verbose && !cli->json) {
            if (p->reachable) {
                printf("  om %s: apparent version %s, software version %s\n",
                       p->node_id, pap, psw);
            } else {
                printf("  om %s: unreachable (%s)\n", p->node_id, p->error);
            }
        }
    }
    for (size_t i = 0; i < st->n_blockers; i++) {
        cJSON_AddItemToArray(blockers, cJSON_CreateString(st->blockers[i]));
    }
    /* Cluster status: the least advanced of SCM's and the OM's. */
    const cJSON *scm = cJSON_GetObjectItemCaseSensitive(root, "scm");
    const cJSON *scm_status =
        scm != NULL ? cJSON_GetObjectItemCaseSensitive(scm, "status") : NULL;
    const char *ss =
        cJSON_IsString(scm_status) ? scm_status->valuestring : st->status;
    const char *cluster = st->status;
    if (strcmp(ss, "FINALIZATION_REQUIRED") == 0 ||
        strcmp(st->status, "FINALIZATION_REQUIRED") == 0) {
        cluster = strcmp(st->status, "FINALIZATION_IN_PROGRESS") == 0
                      ? "FINALIZATION_IN_PROGRESS"
                      : "FINALIZATION_REQUIRED";
    } else if (strcmp(ss, "FINALIZATION_IN_PROGRESS") == 0 ||
               strcmp(st->status, "FINALIZATION_IN_PROGRESS") == 0) {
        cluster = "FINALIZATION_IN_PROGRESS";
    } else if (strcmp(ss, "FINALIZATION_DONE") == 0) {
        cluster = "FINALIZATION_DONE";
    }
    cJSON_AddStringToObject(root, "cluster", cluster);
    if (!cli->json) {
        printf("Cluster status: %s\n", cluster);
    }
    if (st->finalization_in_progress ||
        st->apparent_version >= st->software_version) {
        if (*downgrade_possible) {
            *downgrade_possible = false;
            snprintf(why, why_size, "%s",
                     st->finalization_in_progress ? "finalization has started"
                                                  : "OM finalized");
        }
    }
    oz_client_free_msg(resp);
    return CLI_OK;
}

/* ---- ozone sh bucket setquota, key settags|gettags ---- */

/* "/vol/bucket[/key]" into parts (borrowed copies in buf). */
static int split_path(const char *path,
                      char *buf,
                      size_t size,
                      char **vol,
                      char **bucket,
                      char **key)
{
    const char *p = path;

    while (*p == '/') {
        p++;
    }
    if (oz_strlcpy(buf, p, size) >= size) {
        return CLI_USAGE;
    }
    *vol = buf;
    char *s = strchr(buf, '/');
    if (s == NULL) {
        return CLI_USAGE;
    }
    *s++ = '\0';
    *bucket = s;
    s = strchr(s, '/');
    if (key == NULL) {
        if (s != NULL && s[1] != '\0') {
            return CLI_USAGE;
        }
        if (s != NULL) {
            *s = '\0';
        }
        return (*vol)[0] && (*bucket)[0] ? CLI_OK : CLI_USAGE;
    }
    if (s == NULL || s[1] == '\0') {
        return CLI_USAGE;
    }
    *s++ = '\0';
    *key = s;
    return (*vol)[0] && (*bucket)[0] ? CLI_OK : CLI_USAGE;
}

static int bucket_setquota(struct cli *cli, int argc, char **argv)
{
    const char *space = NULL, *ns = NULL;
    bool help = false;
    const struct cli_opt opts[] = {
        {"-sq", "--space-quota", &space, NULL},
        {"-nq", "--namespace-quota", &ns, NULL},
    };
    char *pos[1];
    size_t n_pos = 0;
    char buf[1024];
    char *vol, *bucket;
    long long bytes = 0, keys = 0;
    char errmsg[OZ_ERRMSG_SIZE];
    struct oz_client *c = NULL;
    struct oz_error err;
    int rc;

    rc = cli_parse("ozone sh bucket setquota", argc, argv, opts, 2, pos, 1,
                   &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help || n_pos != 1) {
        printf(
            "Usage: ozone sh bucket setquota [--space-quota SIZE] "
            "[--namespace-quota N] /VOLUME/BUCKET\n"
            "Sets a bucket's quota (OM feature BUCKET_QUOTA); 0 removes "
            "it.\n");
        return help ? CLI_OK : CLI_USAGE;
    }
    if (split_path(pos[0], buf, sizeof(buf), &vol, &bucket, NULL) != CLI_OK) {
        return cli_fail(CLI_USAGE,
                        "invalid bucket path '%s': expected "
                        "/VOLUME/BUCKET",
                        pos[0]);
    }
    if (space == NULL && ns == NULL) {
        return cli_fail(CLI_USAGE,
                        "give --space-quota SIZE and/or --namespace-quota N");
    }
    if (space != NULL) {
        struct conf *tmp = conf_new();
        conf_set(tmp, "q", space);
        rc = conf_get_size(tmp, "q", "0", &bytes, errmsg);
        conf_free(tmp);
        if (rc != 0 || bytes < 0) {
            return cli_fail(CLI_USAGE,
                            "invalid value '%s' for '--space-quota': give a "
                            "size like 10GB",
                            space);
        }
    }
    if (ns != NULL && !cli_parse_count(ns, 0, INT64_MAX, &keys)) {
        return cli_fail(CLI_USAGE,
                        "invalid value '%s' for '--namespace-quota': give a "
                        "count",
                        ns);
    }
    rc = cli_open_client(cli, NULL, &c);
    if (rc != CLI_OK) {
        return rc;
    }
    memset(&err, 0, sizeof(err));
    if (oz_bucket_set_quota(c, vol, bucket, (uint64_t)bytes, (uint64_t)keys,
                            &err) != 0) {
        rc = cli_fail_oz(&err);
    }
    oz_client_free(c);
    return rc;
}

static int key_settags(struct cli *cli, int argc, char **argv)
{
    bool help = false;
    char *pos[2];
    size_t n_pos = 0;
    char buf[2048];
    char *vol, *bucket, *key;
    const char *keys[16], *values[16];
    char tagbuf[4096];
    size_t n = 0;
    struct oz_client *c = NULL;
    struct oz_error err;
    int rc;

    rc = cli_parse("ozone sh key settags", argc, argv, NULL, 0, pos, 2, &n_pos,
                   &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help || n_pos < 1) {
        printf(
            "Usage: ozone sh key settags /VOLUME/BUCKET/KEY "
            "[K=V[,K=V...]]\n"
            "Replaces the key's tags (OM feature KEY_TAGS); no tags "
            "removes them.\n");
        return help ? CLI_OK : CLI_USAGE;
    }
    if (split_path(pos[0], buf, sizeof(buf), &vol, &bucket, &key) != CLI_OK) {
        return cli_fail(CLI_USAGE,
                        "invalid key path '%s': expected /VOLUME/BUCKET/KEY",
                        pos[0]);
    }
    if (n_pos == 2 && pos[1][0] != '\0') {
        if (oz_strlcpy(tagbuf, pos[1], sizeof(tagbuf)) >= sizeof(tagbuf)) {
            return cli_fail(CLI_USAGE, "tags are too long");
        }
        for (char *t = tagbuf; t != NULL && *t != '\0';) {
            char *next = strchr(t, ',');
            if (next != NULL) {
                *next++ = '\0';
            }
            char *eq = strchr(t, '=');
            if (eq == NULL || n == 16) {
                return cli_fail(CLI_USAGE,
                                "invalid tag '%s': expected KEY=VALUE (at "
                                "most 16)",
                                t);
            }
            *eq = '\0';
            keys[n] = t;
            values[n++] = eq + 1;
            t = next;
        }
    }
    rc = cli_open_client(cli, NULL, &c);
    if (rc != CLI_OK) {
        return rc;
    }
    memset(&err, 0, sizeof(err));
    if (oz_key_put_tagging(c, vol, bucket, key, keys, values, n, &err) != 0) {
        rc = cli_fail_oz(&err);
    }
    oz_client_free(c);
    return rc;
}

static int key_gettags(struct cli *cli, int argc, char **argv)
{
    bool help = false;
    char *pos[1];
    size_t n_pos = 0;
    char buf[2048];
    char *vol, *bucket, *key;
    Ozone__Om__GetObjectTaggingResponse *r = NULL;
    struct oz_client *c = NULL;
    struct oz_error err;
    int rc;

    rc = cli_parse("ozone sh key gettags", argc, argv, NULL, 0, pos, 1, &n_pos,
                   &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help || n_pos != 1) {
        printf(
            "Usage: ozone sh key gettags /VOLUME/BUCKET/KEY\n"
            "Prints the key's tags as JSON (OM feature KEY_TAGS).\n");
        return help ? CLI_OK : CLI_USAGE;
    }
    if (split_path(pos[0], buf, sizeof(buf), &vol, &bucket, &key) != CLI_OK) {
        return cli_fail(CLI_USAGE,
                        "invalid key path '%s': expected /VOLUME/BUCKET/KEY",
                        pos[0]);
    }
    rc = cli_open_client(cli, NULL, &c);
    if (rc != CLI_OK) {
        return rc;
    }
    memset(&err, 0, sizeof(err));
    if (oz_key_get_tagging(c, vol, bucket, key, &r, &err) != 0) {
        rc = cli_fail_oz(&err);
    } else {
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; i < r->n_tags; i++) {
            cJSON_AddStringToObject(o, r->tags[i]->key, r->tags[i]->value);
        }
        cli_print_json(o);
        oz_client_free_msg(r);
    }
    oz_client_free(c);
    return rc;
}

int cmd_sh_upgrade_features(struct cli *cli,
                            const char *what,
                            int argc,
                            char **argv)
{
    if (strcmp(what, "setquota") == 0) {
        return bucket_setquota(cli, argc, argv);
    }
    if (strcmp(what, "settags") == 0) {
        return key_settags(cli, argc, argv);
    }
    return key_gettags(cli, argc, argv);
}
