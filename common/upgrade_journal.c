/* Reading the orchestrator's journal (upgrade_journal.h). The action and
 * status words are those of admin-cli/orch.h (ORCH_ACT_*, ORCH_ST_*),
 * which the orchestrator writes; they are spelled out here because common/
 * does not include the CLI's headers. */
#include "upgrade_journal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"

#define ACT_RUN "run"
#define ST_BEGIN "BEGIN"

static const char *s_or(const char *s)
{
    return s != NULL ? s : "";
}

static bool is(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

const char *upgrade_journal_time(uint64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(buf, size, "%" PRIu64, ms);
    }
    return buf;
}

int upgrade_journal_view(Ozone__Om__OmUpgradeJournalReadResponse *const *pages,
                         size_t n_pages,
                         Ozone__Om__OmUpgradeJournalReadResponse *view)
{
    size_t n = 0, k = 0;

    ozone__om__om_upgrade_journal_read_response__init(view);
    for (size_t p = 0; p < n_pages; p++) {
        n += pages[p]->n_entries;
    }
    if (n_pages > 0) {
        view->lease = pages[0]->lease;
        view->now_ms = pages[0]->now_ms;
    }
    if (n == 0) {
        return 0;
    }
    view->entries = malloc(n * sizeof(*view->entries));
    if (view->entries == NULL) {
        return OZ_ENOMEM;
    }
    for (size_t p = 0; p < n_pages; p++) {
        memcpy(view->entries + k, pages[p]->entries,
               pages[p]->n_entries * sizeof(*view->entries));
        k += pages[p]->n_entries;
    }
    view->n_entries = n;
    return 0;
}

void upgrade_journal_view_release(Ozone__Om__OmUpgradeJournalReadResponse *view)
{
    free(view->entries);
    view->entries = NULL;
    view->n_entries = 0;
}

/* A run-level status as the run's state. */
static const char *state_of(const char *status)
{
    static const char *const known[] = {"PAUSED", "DONE", "ROLLED_BACK",
                                        "FAILED"};

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (is(status, known[i])) {
            return known[i];
        }
    }
    /* BEGIN, and OK of a resumed run: it runs. */
    return "RUNNING";
}

void upgrade_journal_summarize(const Ozone__Om__OmUpgradeJournalReadResponse *r,
                               struct upgrade_journal_summary *out)
{
    const Ozone__Om__OmUpgradeJournalEntry *run_entry = NULL;
    const char *begin_to = NULL;

    memset(out, 0, sizeof(*out));
    out->state = "NONE";
    out->run_id = "";
    out->backend = "";
    out->to_bin = "";
    out->lease = r->lease;
    if (r->lease != NULL) {
        out->lease_live = r->now_ms < r->lease->expires_ms;
    }
    if (r->n_entries == 0) {
        return;
    }
    out->newest = r->entries[r->n_entries - 1];
    out->run_id = s_or(out->newest->run_id);
    /* Newest first, over the newest run's entries only. */
    for (size_t i = r->n_entries; i-- > 0;) {
        const Ozone__Om__OmUpgradeJournalEntry *e = r->entries[i];
        if (!is(e->run_id, out->run_id)) {
            continue;
        }
        if (run_entry == NULL && is(e->action, ACT_RUN)) {
            run_entry = e;
        }
        if (out->step_entry == NULL && e->step > 0) {
            out->step_entry = e;
        }
        if (out->backend[0] == '\0' && e->backend != NULL) {
            out->backend = e->backend;
        }
        if (out->to_bin[0] == '\0' && e->to_bin != NULL) {
            out->to_bin = e->to_bin;
        }
        if (begin_to == NULL && is(e->action, ACT_RUN) &&
            is(e->status, ST_BEGIN) && e->to_bin != NULL &&
            e->to_bin[0] != '\0') {
            begin_to = e->to_bin;
        }
    }
    if (begin_to != NULL) {
        out->to_bin = begin_to;
    }
    out->state = run_entry != NULL ? state_of(run_entry->status) : "RUNNING";
    out->lease_is_runs = r->lease != NULL && is(r->lease->run_id, out->run_id);
}

const char *upgrade_journal_next(const struct upgrade_journal_summary *s)
{
    if (is(s->state, "NONE")) {
        return "";
    }
    if (is(s->state, "RUNNING")) {
        return s->lease_live && s->lease_is_runs
                   ? "in progress; follow it with 'ozone admin upgrade "
                     "journal'"
                   : "the orchestrator stopped without finishing (its lease "
                     "is gone); continue with 'ozone admin upgrade run "
                     "--resume' or undo with 'ozone admin upgrade run "
                     "--rollback'";
    }
    if (is(s->state, "PAUSED") || is(s->state, "FAILED")) {
        return "continue with 'ozone admin upgrade run --resume' or undo "
               "with 'ozone admin upgrade run --rollback'";
    }
    if (is(s->state, "DONE")) {
        return "every node runs the new software; finalize with 'ozone "
               "admin upgrade finalize' once it is proven";
    }
    return "rolled back: the nodes run their previous software again";
}

static void add_u64(cJSON *o, const char *name, uint64_t v)
{
    /* Doubles hold integers exactly up to 2^53: ms and seqs fit. */
    cJSON_AddNumberToObject(o, name, (double)v);
}

cJSON *upgrade_journal_entry_json(const Ozone__Om__OmUpgradeJournalEntry *e)
{
    cJSON *o = cJSON_CreateObject();
    char when[48];

    if (o == NULL) {
        return NULL;
    }
    add_u64(o, "seq", e->seq);
    add_u64(o, "timeMs", e->time_ms);
    cJSON_AddStringToObject(
        o, "time", upgrade_journal_time(e->time_ms, when, sizeof(when)));
    cJSON_AddStringToObject(o, "runId", s_or(e->run_id));
    cJSON_AddStringToObject(o, "holder", s_or(e->holder));
    cJSON_AddNumberToObject(o, "step", e->step);
    cJSON_AddNumberToObject(o, "steps", e->steps);
    cJSON_AddStringToObject(o, "node", s_or(e->node));
    cJSON_AddStringToObject(o, "kind", s_or(e->kind));
    cJSON_AddStringToObject(o, "action", s_or(e->action));
    cJSON_AddStringToObject(o, "status", s_or(e->status));
    cJSON_AddStringToObject(o, "detail", s_or(e->detail));
    cJSON_AddStringToObject(o, "fromBin", s_or(e->from_bin));
    cJSON_AddStringToObject(o, "toBin", s_or(e->to_bin));
    cJSON_AddStringToObject(o, "backend", s_or(e->backend));
    return o;
}

cJSON *upgrade_journal_lease_json(const Ozone__Om__OmUpgradeLease *l,
                                  uint64_t now_ms)
{
    if (l == NULL) {
        return cJSON_CreateNull();
    }
    cJSON *o = cJSON_CreateObject();
    char when[48];
    bool expired = now_ms >= l->expires_ms;

    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "holder", s_or(l->holder));
    cJSON_AddStringToObject(o, "host", s_or(l->host));
    cJSON_AddNumberToObject(o, "pid", l->pid);
    cJSON_AddStringToObject(o, "runId", s_or(l->run_id));
    add_u64(o, "acquiredMs", l->acquired_ms);
    add_u64(o, "expiresMs", l->expires_ms);
    cJSON_AddStringToObject(
        o, "expires", upgrade_journal_time(l->expires_ms, when, sizeof(when)));
    cJSON_AddBoolToObject(o, "expired", expired);
    add_u64(o, "expiresInMs", expired ? 0 : l->expires_ms - now_ms);
    return o;
}

cJSON *upgrade_journal_summary_json(const struct upgrade_journal_summary *s,
                                    uint64_t now_ms)
{
    const Ozone__Om__OmUpgradeJournalEntry *st = s->step_entry;
    const Ozone__Om__OmUpgradeJournalEntry *nw = s->newest;
    cJSON *o = cJSON_CreateObject();

    if (o == NULL) {
        return NULL;
    }
    cJSON_AddBoolToObject(o, "available", true);
    cJSON_AddStringToObject(o, "runId", s->run_id);
    cJSON_AddStringToObject(o, "state", s->state);
    cJSON_AddNumberToObject(o, "step", st != NULL ? st->step : 0);
    cJSON_AddNumberToObject(o, "steps",
                            st != NULL   ? st->steps
                            : nw != NULL ? nw->steps
                                         : 0);
    cJSON_AddStringToObject(o, "node", st != NULL ? s_or(st->node) : "");
    cJSON_AddStringToObject(o, "kind", st != NULL ? s_or(st->kind) : "");
    cJSON_AddStringToObject(o, "action", st != NULL ? s_or(st->action) : "");
    cJSON_AddStringToObject(o, "status", nw != NULL ? s_or(nw->status) : "");
    cJSON_AddStringToObject(o, "detail", nw != NULL ? s_or(nw->detail) : "");
    add_u64(o, "updatedMs", nw != NULL ? nw->time_ms : 0);
    cJSON_AddStringToObject(o, "backend", s->backend);
    cJSON_AddStringToObject(o, "toBin", s->to_bin);
    cJSON_AddItemToObject(o, "lease",
                          upgrade_journal_lease_json(s->lease, now_ms));
    cJSON_AddStringToObject(o, "next", upgrade_journal_next(s));
    return o;
}
