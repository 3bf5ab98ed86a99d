/* Upgrade commands (DESIGN.md §6.5-§6.7, §10):
 *
 *   ozone admin scm finalizeupgrade       SCM FinalizeUpgrade, Ozone's texts
 *   ozone admin scm finalizationstatus    one word
 *   ozone admin upgrade status [-v]       every component's part
 *
 * `upgrade status` is assembled from parts (one per component, in upgrade
 * order: SCM and datanodes here; OM adds its own part to status_parts[]):
 * each part prints its lines, adds its JSON object, its blockers and
 * whether it still allows a downgrade.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "cmd_upgrade_journal.h"
#include "cmd_upgrade_om.h"
#include "orch.h"
#include "err.h"
#include "version.h"

/* "NAME (n)" of an HDDS version. */
static const char *hdds_name(unsigned v, char *buf, size_t size)
{
    const struct version_feature *f = version_catalog_find(
        version_builtin_catalog(VERSION_CATALOG_HDDS), (int)v);

    snprintf(buf, size, "%s (%u)", f != NULL ? f->name : "UNKNOWN", v);
    return buf;
}

static const char *status_name(Ozone__Scm__FinalizationStatus s)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
        &ozone__scm__finalization_status__descriptor, (int)s);

    return ev != NULL ? ev->name : "UNKNOWN";
}

static const char *node_state(Ozone__Hdds__NodeState s)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
        &ozone__hdds__node_state__descriptor, (int)s);

    return ev != NULL ? ev->name : "UNKNOWN";
}

/* ---- ozone admin scm ---- */

static int scm_finalize(struct cli *cli, struct oz_client *c)
{
    Ozone__Scm__FinalizeUpgradeResponse *r = NULL;
    struct oz_error err;

    memset(&err, 0, sizeof(err));
    if (!cli->json) {
        printf("Starting Finalization\n");
        fflush(stdout);
    }
    if (oz_admin_scm_finalize(c, "ozone admin scm finalizeupgrade", &r, &err) !=
        0) {
        int rc = cli_fail_oz(&err);
        fprintf(stderr, "Finalization was not successful.\n");
        return rc;
    }
    const Ozone__Scm__UpgradeStatus *st = r->status;
    Ozone__Scm__FinalizationStatus s =
        st != NULL
            ? st->status
            : OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_STATUS_UNSPECIFIED;
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
        cJSON_AddStringToObject(o, "status", status_name(s));
        for (size_t i = 0; i < r->n_messages; i++) {
            cJSON_AddItemToArray(msgs, cJSON_CreateString(r->messages[i]));
        }
        if (st != NULL) {
            cJSON_AddNumberToObject(o, "datanodesFinalized",
                                    st->datanodes_finalized);
            cJSON_AddNumberToObject(o, "datanodesTotal", st->datanodes_total);
        }
        cli_print_json(o);
    } else if (s == OZONE__SCM__FINALIZATION_STATUS__ALREADY_FINALIZED) {
        printf("Upgrade has already been finalized.\n");
        printf("Exiting...\n");
    } else {
        for (size_t i = 0; i < r->n_messages; i++) {
            printf("%s\n", r->messages[i]);
        }
        printf("Finalization of SCM's metadata upgrade finished.\n");
        printf("Status: %s\n", status_name(s));
    }
    oz_client_free_msg(r);
    return CLI_OK;
}

static int scm_finalization_status(struct cli *cli, struct oz_client *c)
{
    Ozone__Scm__QueryUpgradeStatusResponse *r = NULL;
    struct oz_error err;

    memset(&err, 0, sizeof(err));
    if (oz_admin_scm_upgrade_status(c, &r, &err) != 0) {
        return cli_fail_oz(&err);
    }
    const char *word = status_name(
        r->status != NULL
            ? r->status->status
            : OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_STATUS_UNSPECIFIED);
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", word);
        cli_print_json(o);
    } else {
        printf("%s\n", word);
    }
    oz_client_free_msg(r);
    return CLI_OK;
}

static void scm_usage(FILE *f)
{
    fputs(
        "Usage: ozone admin scm COMMAND\n\n"
        "Commands:\n"
        "  finalizeupgrade       finalize SCM's upgrade; datanodes follow on\n"
        "                        their next heartbeat (refused unless every\n"
        "                        live datanode runs SCM's software version)\n"
        "  finalizationstatus    FINALIZATION_REQUIRED, "
        "FINALIZATION_IN_PROGRESS,\n"
        "                        FINALIZATION_DONE or ALREADY_FINALIZED\n",
        f);
}

int cmd_admin_scm(struct cli *cli, int argc, char **argv)
{
    struct oz_client *c = NULL;
    char *pos[1];
    size_t n_pos = 0;
    bool help = false;
    char cmd[64];
    int rc;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "--help") == 0) {
        scm_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "finalizeupgrade") != 0 &&
        strcmp(argv[1], "finalizationstatus") != 0) {
        return cli_fail(CLI_USAGE,
                        "unknown command 'ozone admin scm %s'; see 'ozone "
                        "admin scm --help'",
                        argv[1]);
    }
    snprintf(cmd, sizeof(cmd), "ozone admin scm %s", argv[1]);
    rc = cli_parse(cmd, argc - 1, argv + 1, NULL, 0, pos, 0, &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        scm_usage(stdout);
        return CLI_OK;
    }
    rc = cli_open_client(cli, NULL, &c);
    if (rc != CLI_OK) {
        return rc;
    }
    rc = strcmp(argv[1], "finalizeupgrade") == 0
             ? scm_finalize(cli, c)
             : scm_finalization_status(cli, c);
    oz_client_free(c);
    return rc;
}

/* ---- ozone admin upgrade status ---- */

/* What the parts of `upgrade status` build together. */
struct status_report
{
    struct cli *cli;
    struct oz_client *c;
    bool verbose;
    cJSON *root;     /* --json output */
    cJSON *blockers; /* array of strings, every part's */
    /* The first part that rules a downgrade out says why. */
    bool downgrade_possible;
    char downgrade_why[128];
};

static void add_blocker(struct status_report *r, const char *text)
{
    cJSON_AddItemToArray(r->blockers, cJSON_CreateString(text));
}

/* HDDS software version of the newest release before the one that ships
 * software; software itself when no older release exists. */
static unsigned previous_release_hdds(unsigned software)
{
    size_t n;
    const struct version_release *rel = version_releases(&n);
    unsigned best = 0;
    bool found = false;

    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned)rel[i].software[VERSION_CATALOG_HDDS];
        if (v < software && (!found || v > best)) {
            best = v;
            found = true;
        }
    }
    return found ? best : software;
}

/* SCM and datanodes (HDDS). */
static int scm_part(struct status_report *r)
{
    Ozone__Scm__QueryUpgradeStatusResponse *resp = NULL;
    struct oz_error err;
    char sw[96], ap[96];

    memset(&err, 0, sizeof(err));
    if (oz_admin_scm_upgrade_status(r->c, &resp, &err) != 0) {
        return cli_fail_oz(&err);
    }
    const Ozone__Scm__UpgradeStatus *st = resp->status;
    if (st == NULL) {
        oz_client_free_msg(resp);
        return cli_fail(CLI_FAILED, "SCM sent no upgrade status");
    }
    hdds_name(st->software_version, sw, sizeof(sw));
    hdds_name(st->apparent_version, ap, sizeof(ap));
    cJSON *scm = cJSON_AddObjectToObject(r->root, "scm");
    cJSON_AddStringToObject(scm, "status", status_name(st->status));
    cJSON_AddNumberToObject(scm, "softwareVersion", st->software_version);
    cJSON_AddStringToObject(scm, "softwareVersionName", sw);
    cJSON_AddNumberToObject(scm, "apparentVersion", st->apparent_version);
    cJSON_AddStringToObject(scm, "apparentVersionName", ap);
    /* "" from an SCM that records nobody or predates the field. */
    cJSON_AddStringToObject(scm, "finalizationRequestedBy",
                            st->finalization_requested_by);
    cJSON *dns = cJSON_AddObjectToObject(r->root, "datanodes");
    cJSON_AddNumberToObject(dns, "finalized", st->datanodes_finalized);
    cJSON_AddNumberToObject(dns, "total", st->datanodes_total);
    cJSON *list = cJSON_AddArrayToObject(dns, "nodes");
    if (!r->cli->json) {
        printf("SCM status: %s\n", status_name(st->status));
        if (r->verbose) {
            printf("SCM apparent version: %s\n", ap);
            printf("SCM software version: %s\n", sw);
            if (st->finalization_requested_by[0] != '\0') {
                printf("SCM finalization requested by: %s\n",
                       st->finalization_requested_by);
            }
        }
        printf("Datanodes finalized: %u/%u\n", st->datanodes_finalized,
               st->datanodes_total);
    }
    for (size_t i = 0; i < st->n_datanodes; i++) {
        const Ozone__Scm__DatanodeUpgradeInfo *d = st->datanodes[i];
        char dsw[96], dap[96];
        hdds_name(d->software_version, dsw, sizeof(dsw));
        hdds_name(d->apparent_version, dap, sizeof(dap));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "uuid", d->uuid);
        cJSON_AddStringToObject(o, "state", node_state(d->state));
        cJSON_AddNumberToObject(o, "softwareVersion", d->software_version);
        cJSON_AddNumberToObject(o, "apparentVersion", d->apparent_version);
        cJSON_AddBoolToObject(o, "finalized", d->finalized);
        cJSON_AddItemToArray(list, o);
        if (r->verbose && !r->cli->json) {
            printf(
                "  datanode %s: %s, apparent version %s, software version "
                "%s\n",
                d->uuid, node_state(d->state), dap, dsw);
        }
    }
    for (size_t i = 0; i < st->n_blockers; i++) {
        add_blocker(r, st->blockers[i]);
    }
    /* A downgrade goes back to the previous release: possible while SCM's
     * apparent version is one that release still runs (DESIGN.md §6.4). */
    if (st->apparent_version > previous_release_hdds(st->software_version) &&
        r->downgrade_possible) {
        r->downgrade_possible = false;
        snprintf(r->downgrade_why, sizeof(r->downgrade_why), "HDDS finalized");
    }
    oz_client_free_msg(resp);
    return CLI_OK;
}

/* OMs and the cluster line (cmd_upgrade_om.c). */
static int om_part(struct status_report *r)
{
    return cmd_upgrade_om_status(r->cli, r->c, r->verbose, r->root, r->blockers,
                                 &r->downgrade_possible, r->downgrade_why,
                                 sizeof(r->downgrade_why));
}

/* The rolling-upgrade orchestrator's run (cmd_upgrade_journal.c). */
static int rolling_part(struct status_report *r)
{
    return cmd_upgrade_journal_status(r->cli, r->c, r->root, r->blockers);
}

/* In upgrade order (DESIGN.md §2.1). */
static const struct
{
    const char *name;
    int (*run)(struct status_report *r);
} status_parts[] = {
    {"scm", scm_part},
    {"om", om_part},
    {"rolling upgrade", rolling_part},
};

static int upgrade_status(struct cli *cli, struct oz_client *c, bool verbose)
{
    struct status_report r;
    int rc = CLI_OK;

    memset(&r, 0, sizeof(r));
    r.cli = cli;
    r.c = c;
    r.verbose = verbose;
    r.root = cJSON_CreateObject();
    r.blockers = cJSON_CreateArray();
    r.downgrade_possible = true;
    for (size_t i = 0; i < sizeof(status_parts) / sizeof(status_parts[0]);
         i++) {
        rc = status_parts[i].run(&r);
        if (rc != CLI_OK) {
            cJSON_Delete(r.root);
            cJSON_Delete(r.blockers);
            return rc;
        }
    }
    const char *downgrade = r.downgrade_possible ? "yes, until finalize" : NULL;
    char no[160];
    if (downgrade == NULL) {
        snprintf(no, sizeof(no), "no: %s", r.downgrade_why);
        downgrade = no;
    }
    if (cli->json) {
        cJSON_AddItemToObject(r.root, "blockers", r.blockers);
        cJSON_AddBoolToObject(r.root, "downgradePossible",
                              r.downgrade_possible);
        cJSON_AddStringToObject(r.root, "downgrade", downgrade);
        cli_print_json(r.root);
        return CLI_OK;
    }
    int n = cJSON_GetArraySize(r.blockers);
    if (n > 0) {
        printf("Blockers:\n");
        for (int i = 0; i < n; i++) {
            printf("  %s\n", cJSON_GetArrayItem(r.blockers, i)->valuestring);
        }
    }
    printf("Downgrade possible: %s\n", downgrade);
    cJSON_Delete(r.root);
    cJSON_Delete(r.blockers);
    return CLI_OK;
}

static void upgrade_usage(FILE *f)
{
    fputs(
        "Usage: ozone admin upgrade COMMAND [OPTIONS]\n\n"
        "Commands ('ozone admin upgrade COMMAND --help' for each):\n"
        "  status [-v] [--json]\n"
        "      finalization state of every component, what it waits for,\n"
        "      and whether a downgrade is still possible (-v: each\n"
        "      component's apparent and software version)\n"
        "  plan [--new-bin DIR|TAG] [--backend B] [--json]\n"
        "      the order and checks of a rolling upgrade of the live cluster\n"
        "  run --new-bin DIR|TAG --backend local|systemd|compose [...]\n"
        "      the rolling upgrade itself, one node at a time, with safety\n"
        "      gates; --resume, --rollback\n"
        "  journal [--all] [--limit N] [--json]\n"
        "      every step of the rolling-upgrade runs, kept in OM\n"
        "  finalize [--wait] [--timeout S]\n"
        "      finalize SCM, the datanodes and the OMs: the point of no\n"
        "      return\n",
        f);
}

static void status_usage(FILE *f)
{
    fputs(
        "Usage: ozone admin upgrade status [-v] [--json]\n\n"
        "  status     finalization state of every component, what it waits\n"
        "             for, and whether a downgrade is still possible\n"
        "  -v         each component's apparent and software version\n"
        "  --json     the same as one JSON document\n",
        f);
}

int cmd_admin_upgrade(struct cli *cli, int argc, char **argv)
{
    struct oz_client *c = NULL;
    bool verbose = false, help = false;
    const struct cli_opt opts[] = {{"-v", "--verbose", NULL, &verbose}};
    char *pos[1];
    size_t n_pos = 0;
    int rc;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "--help") == 0) {
        upgrade_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "finalize") == 0) {
        return cmd_upgrade_finalize(cli, argc, argv);
    }
    if (strcmp(argv[1], "plan") == 0) {
        return orch_cmd_plan(cli, argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "run") == 0) {
        return orch_cmd_run(cli, argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "journal") == 0) {
        return cmd_upgrade_journal(cli, argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "status") != 0) {
        return cli_fail(CLI_USAGE,
                        "unknown command 'ozone admin upgrade %s'; see "
                        "'ozone admin upgrade --help'",
                        argv[1]);
    }
    rc = cli_parse("ozone admin upgrade status", argc - 1, argv + 1, opts, 1,
                   pos, 0, &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        status_usage(stdout);
        return CLI_OK;
    }
    rc = cli_open_client(cli, NULL, &c);
    if (rc != CLI_OK) {
        return rc;
    }
    rc = upgrade_status(cli, c, verbose);
    oz_client_free(c);
    return rc;
}
