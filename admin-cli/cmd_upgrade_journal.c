/* `ozone admin upgrade journal` and the rolling-upgrade part of `upgrade
 * status` (issue 7): the orchestrator's journal and lease kept in OM
 * (proto/om.proto OmUpgradeJournalRead), read page by page from the OM
 * leader.
 *
 *   ozone admin upgrade journal [--all] [--limit N] [--json]
 *       the newest run's entries (every run's with --all), oldest first;
 *       --limit N: only the last N
 */
#include "cmd_upgrade_journal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_upgrade.h"
#include "err.h"
#include "orch.h"
#include "upgrade_journal.h"

/* Entries asked for per call; the OM keeps at most 10000. */
#define PAGE 1000u
#define MAX_PAGES 16

/* Every page of one read, and a view over all their entries. */
struct journal_read
{
    Ozone__Om__OmUpgradeJournalReadResponse *pages[MAX_PAGES];
    size_t n_pages;
    Ozone__Om__OmUpgradeJournalReadResponse view; /* borrows from pages */
};

static void journal_read_free(struct journal_read *j)
{
    upgrade_journal_view_release(&j->view);
    for (size_t i = 0; i < j->n_pages; i++) {
        oz_client_free_msg(j->pages[i]);
        j->pages[i] = NULL;
    }
    j->n_pages = 0;
}

/* Reads the journal (the newest run's entries when last_run) page by
 * page. 0 or the client's code with err filled. */
static int journal_fetch(struct oz_client *c,
                         bool last_run,
                         struct journal_read *j,
                         struct oz_error *err)
{
    uint64_t after = 0;
    int rc;

    memset(j, 0, sizeof(*j));
    ozone__om__om_upgrade_journal_read_response__init(&j->view);
    while (j->n_pages < MAX_PAGES) {
        Ozone__Om__OmUpgradeJournalReadResponse *p = NULL;
        rc = oz_upgrade_journal_read(c, after, PAGE, last_run, &p, err);
        if (rc != 0) {
            journal_read_free(j);
            return rc;
        }
        j->pages[j->n_pages++] = p;
        if (p->n_entries < PAGE) {
            break;
        }
        after = p->entries[p->n_entries - 1]->seq;
    }
    rc = upgrade_journal_view(j->pages, j->n_pages, &j->view);
    if (rc != 0) {
        journal_read_free(j);
        snprintf(err->message, sizeof(err->message),
                 "out of memory reading the upgrade journal");
        err->code = OZONE__RESULT_CODE__INTERNAL_ERROR;
    }
    return rc;
}

/* Why the journal cannot be read, as one phrase. */
static void unavailable_reason(const struct oz_error *err,
                               char *out,
                               size_t size)
{
    if (err->code == OZONE__RESULT_CODE__UNKNOWN_METHOD) {
        snprintf(out, size,
                 "the OM runs a release that keeps no rolling-upgrade "
                 "journal");
    } else {
        snprintf(out, size, "%s: %s", oz_result_name(err->code), err->message);
    }
}

/* "held by 'h' (host H, pid P, run R), expires in 42s" and the like. */
static void lease_text(const Ozone__Om__OmUpgradeLease *l,
                       uint64_t now_ms,
                       char *out,
                       size_t size)
{
    if (l == NULL) {
        snprintf(out, size, "free");
    } else if (now_ms < l->expires_ms) {
        snprintf(out, size,
                 "held by '%s' (host %s, pid %u, run %s), expires in %" PRIu64
                 "s",
                 l->holder, l->host, l->pid, l->run_id,
                 (l->expires_ms - now_ms + 999) / 1000);
    } else {
        snprintf(out, size,
                 "expired (last held by '%s' (host %s, pid %u, run "
                 "%s))",
                 l->holder, l->host, l->pid, l->run_id);
    }
}

/* "step 3/9" or "run" for run-level entries. */
static const char *step_text(const Ozone__Om__OmUpgradeJournalEntry *e,
                             char *out,
                             size_t size)
{
    if (e->step == 0) {
        snprintf(out, size, "run");
    } else {
        snprintf(out, size, "step %u/%u", e->step, e->steps);
    }
    return out;
}

/* "dn1 (DATANODE)", or "-" without a node. */
static const char *node_text(const Ozone__Om__OmUpgradeJournalEntry *e,
                             char *out,
                             size_t size)
{
    if (e->node[0] == '\0') {
        snprintf(out, size, "-");
    } else if (e->kind[0] == '\0') {
        snprintf(out, size, "%s", e->node);
    } else {
        snprintf(out, size, "%s (%s)", e->node, e->kind);
    }
    return out;
}

static void print_entry(const Ozone__Om__OmUpgradeJournalEntry *e)
{
    char when[48], step[32], node[160];

    printf("%s  %s  %s  %s  %s  %s%s%s\n",
           upgrade_journal_time(e->time_ms, when, sizeof(when)), e->run_id,
           step_text(e, step, sizeof(step)), node_text(e, node, sizeof(node)),
           e->action, e->status, e->detail[0] != '\0' ? "  " : "", e->detail);
}

/* ---- ozone admin upgrade journal ---- */

static void journal_usage(FILE *f)
{
    fputs(
        "Usage: ozone admin upgrade journal [--all] [--limit N] [--json]\n\n"
        "The rolling-upgrade orchestrator's journal kept in OM: every step\n"
        "of 'ozone admin upgrade run', oldest first, with the lease.\n\n"
        "  --all       every run the journal holds (default: the newest)\n"
        "  --limit N   only the last N entries\n"
        "  --json      {\"lease\", \"state\", \"entries\": [...]}\n",
        f);
}

static void journal_print_json(const struct upgrade_journal_summary *s,
                               const Ozone__Om__OmUpgradeJournalReadResponse *v,
                               size_t first)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *entries;

    cJSON_AddItemToObject(o, "lease",
                          upgrade_journal_lease_json(v->lease, v->now_ms));
    cJSON_AddStringToObject(o, "state", s->state);
    cJSON_AddStringToObject(o, "runId", s->run_id);
    cJSON_AddStringToObject(o, "next", upgrade_journal_next(s));
    cJSON_AddNumberToObject(o, "nowMs", (double)v->now_ms);
    entries = cJSON_AddArrayToObject(o, "entries");
    for (size_t i = first; i < v->n_entries; i++) {
        cJSON_AddItemToArray(entries,
                             upgrade_journal_entry_json(v->entries[i]));
    }
    cli_print_json(o);
}

static void journal_print_text(const struct upgrade_journal_summary *s,
                               const Ozone__Om__OmUpgradeJournalReadResponse *v,
                               size_t first,
                               bool all)
{
    char lease[512];

    lease_text(v->lease, v->now_ms, lease, sizeof(lease));
    printf("Upgrade lease: %s\n", lease);
    if (v->n_entries == 0) {
        printf("Run state: NONE (no rolling upgrade recorded)\n");
        return;
    }
    printf("Run state: %s (run %s)\n", s->state, s->run_id);
    if (upgrade_journal_next(s)[0] != '\0') {
        printf("Next: %s\n", upgrade_journal_next(s));
    }
    if (first > 0) {
        printf("(%zu older %s not shown; see --limit%s)\n", first,
               first == 1 ? "entry" : "entries", all ? "" : " and --all");
    }
    for (size_t i = first; i < v->n_entries; i++) {
        print_entry(v->entries[i]);
    }
}

int cmd_upgrade_journal(struct cli *cli, int argc, char **argv)
{
    const char *limit_arg = NULL;
    bool all = false, help = false;
    const struct cli_opt opts[] = {{NULL, "--all", NULL, &all},
                                   {NULL, "--limit", &limit_arg, NULL}};
    struct upgrade_journal_summary s;
    struct journal_read j;
    struct oz_client *c = NULL;
    struct oz_error err;
    long long limit = 0;
    char *pos[1];
    size_t n_pos = 0, first = 0;
    int rc;

    rc = cli_parse("ozone admin upgrade journal", argc, argv, opts,
                   sizeof(opts) / sizeof(opts[0]), pos, 0, &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        journal_usage(stdout);
        return CLI_OK;
    }
    if (limit_arg != NULL && !cli_parse_count(limit_arg, 1, 10000, &limit)) {
        return cli_fail(CLI_USAGE,
                        "--limit '%s' is not a count from 1 to 10000; see "
                        "'ozone admin upgrade journal --help'",
                        limit_arg);
    }
    rc = cli_open_client(cli, NULL, &c);
    if (rc != CLI_OK) {
        return rc;
    }
    memset(&err, 0, sizeof(err));
    if (journal_fetch(c, !all, &j, &err) != 0) {
        oz_client_free(c);
        if (err.code == OZONE__RESULT_CODE__UNKNOWN_METHOD) {
            return cli_fail(CLI_FAILED,
                            "the OM keeps no rolling-upgrade journal: it "
                            "runs an older release; upgrade the OMs or use "
                            "'ozone admin upgrade status'");
        }
        return cli_fail_oz(&err);
    }
    upgrade_journal_summarize(&j.view, &s);
    if (limit > 0 && j.view.n_entries > (size_t)limit) {
        first = j.view.n_entries - (size_t)limit;
    }
    if (cli->json) {
        journal_print_json(&s, &j.view, first);
    } else {
        journal_print_text(&s, &j.view, first, all);
    }
    journal_read_free(&j);
    oz_client_free(c);
    return CLI_OK;
}

/* ---- the part of `ozone admin upgrade status` ---- */

static bool unfinished(const char *state)
{
    return strcmp(state, "RUNNING") == 0 || strcmp(state, "PAUSED") == 0 ||
           strcmp(state, "FAILED") == 0;
}

int cmd_upgrade_journal_status(struct cli *cli,
                               struct oz_client *c,
                               cJSON *root,
                               cJSON *blockers)
{
    struct upgrade_journal_summary s;
    struct journal_read j;
    struct oz_error err;
    char why[1200], lease[512], step[32];

    memset(&err, 0, sizeof(err));
    if (journal_fetch(c, true, &j, &err) != 0) {
        cJSON *o = cJSON_AddObjectToObject(root, "rollingUpgrade");
        unavailable_reason(&err, why, sizeof(why));
        cJSON_AddBoolToObject(o, "available", false);
        cJSON_AddStringToObject(o, "state", "UNKNOWN");
        cJSON_AddStringToObject(o, "reason", why);
        if (!cli->json) {
            printf("Rolling upgrade: not available (%s)\n", why);
        }
        return CLI_OK;
    }
    upgrade_journal_summarize(&j.view, &s);
    cJSON_AddItemToObject(root, "rollingUpgrade",
                          upgrade_journal_summary_json(&s, j.view.now_ms));
    const Ozone__Om__OmUpgradeJournalEntry *st = s.step_entry;
    if (st != NULL) {
        snprintf(step, sizeof(step), "step %u/%u", st->step, st->steps);
    }
    if (unfinished(s.state)) {
        snprintf(why, sizeof(why),
                 "rolling upgrade run %s is %s%s%s%s%s; finish it with "
                 "'ozone admin upgrade run --resume' or undo it with "
                 "'ozone admin upgrade run --rollback' before finalizing",
                 s.run_id, s.state, st != NULL ? " at " : "",
                 st != NULL ? step : "", st != NULL ? " " : "",
                 st != NULL ? st->node : "");
        cJSON_AddItemToArray(blockers, cJSON_CreateString(why));
    }
    if (!cli->json) {
        if (s.newest == NULL) {
            printf("Rolling upgrade: none recorded\n");
        } else {
            printf("Rolling upgrade: run %s (backend %s, to %s): %s", s.run_id,
                   s.backend[0] != '\0' ? s.backend : "?",
                   s.to_bin[0] != '\0' ? s.to_bin : "?", s.state);
            if (st != NULL) {
                printf(" at %s %s (%s)", step, st->node, st->action);
            }
            printf("%s%s\n", s.newest->detail[0] != '\0' ? ": " : "",
                   s.newest->detail);
            if (s.lease != NULL) {
                lease_text(s.lease, j.view.now_ms, lease, sizeof(lease));
                printf("  lease: %s\n", lease);
            }
            printf("  next: %s\n", upgrade_journal_next(&s));
        }
    }
    journal_read_free(&j);
    return CLI_OK;
}
