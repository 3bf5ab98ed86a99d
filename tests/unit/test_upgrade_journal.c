/* Reading the orchestrator's journal (common/upgrade_journal.c): the run
 * state of the newest run (table-driven), the step it stands at, backend
 * and target, what to do next, joined pages, and the JSON shapes shared by
 * `ozone admin upgrade journal|status` and Recon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upgrade_journal.h"

#define NOW 1700000000000ull

/* One journal line: run, step, node, action, status. */
struct line
{
    const char *run;
    uint32_t step;
    const char *node;
    const char *action;
    const char *status;
};

#define MAX_LINES 8

static const struct state_case
{
    struct line lines[MAX_LINES];
    const char *state;
    uint32_t step; /* of the step entry; 0 none */
    const char *next_has;
} state_cases[] = {
    {{{NULL, 0, NULL, NULL, NULL}}, "NONE", 0, ""},
    {{{"R1", 0, "", "run", "BEGIN"}, {"R1", 1, "scm", "stop", "OK"}},
     "RUNNING",
     1,
     "--resume"},
    {{{"R1", 0, "", "run", "BEGIN"},
      {"R1", 2, "dn1", "gate", "FAILED"},
      {"R1", 0, "", "run", "PAUSED"}},
     "PAUSED",
     2,
     "--rollback"},
    {{{"R1", 0, "", "run", "BEGIN"},
      {"R1", 3, "om1", "step", "OK"},
      {"R1", 0, "", "run", "DONE"}},
     "DONE",
     3,
     "finalize"},
    {{{"R1", 0, "", "run", "BEGIN"}, {"R1", 0, "", "run", "FAILED"}},
     "FAILED",
     0,
     "--resume"},
    {{{"R1", 0, "", "run", "BEGIN"},
      {"R1", 1, "scm", "rollback", "OK"},
      {"R1", 0, "", "run", "ROLLED_BACK"}},
     "ROLLED_BACK",
     1,
     "rolled back"},
    /* Only the newest run counts: R1 was done, R2 began. */
    {{{"R1", 0, "", "run", "DONE"},
      {"R2", 0, "", "run", "BEGIN"},
      {"R2", 1, "scm", "stop", "OK"}},
     "RUNNING",
     1,
     "--resume"},
    /* Steps journaled without a run-level entry: it runs. */
    {{{"R3", 2, "dn2", "start", "OK"}}, "RUNNING", 2, "--resume"},
    /* A resumed run (run OK after PAUSED) runs again. */
    {{{"R1", 0, "", "run", "PAUSED"}, {"R1", 0, "", "run", "OK"}},
     "RUNNING",
     0,
     "--resume"},
};

/* Builds a response of the case's lines in e/p (caller storage). */
static void build(const struct line *lines,
                  Ozone__Om__OmUpgradeJournalEntry *e,
                  Ozone__Om__OmUpgradeJournalEntry **p,
                  Ozone__Om__OmUpgradeJournalReadResponse *r)
{
    ozone__om__om_upgrade_journal_read_response__init(r);
    r->now_ms = NOW;
    r->entries = p;
    for (size_t i = 0; i < MAX_LINES && lines[i].run != NULL; i++) {
        ozone__om__om_upgrade_journal_entry__init(&e[i]);
        e[i].seq = i + 1;
        e[i].time_ms = NOW - 1000 + i;
        e[i].run_id = (char *)lines[i].run;
        e[i].step = lines[i].step;
        e[i].steps = 3;
        e[i].node = (char *)lines[i].node;
        e[i].action = (char *)lines[i].action;
        e[i].status = (char *)lines[i].status;
        e[i].detail = "d";
        p[i] = &e[i];
        r->n_entries = i + 1;
    }
}

static void test_states(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(state_cases) / sizeof(state_cases[0]); i++) {
        const struct state_case *c = &state_cases[i];
        Ozone__Om__OmUpgradeJournalEntry e[MAX_LINES];
        Ozone__Om__OmUpgradeJournalEntry *p[MAX_LINES];
        Ozone__Om__OmUpgradeJournalReadResponse r;
        struct upgrade_journal_summary s;

        build(c->lines, e, p, &r);
        upgrade_journal_summarize(&r, &s);
        if (strcmp(s.state, c->state) != 0) {
            fail_msg("case %zu: state %s, want %s", i, s.state, c->state);
        }
        uint32_t step = s.step_entry != NULL ? s.step_entry->step : 0;
        if (step != c->step) {
            fail_msg("case %zu: step %u, want %u", i, step, c->step);
        }
        if (strstr(upgrade_journal_next(&s), c->next_has) == NULL) {
            fail_msg("case %zu: next '%s' lacks '%s'", i,
                     upgrade_journal_next(&s), c->next_has);
        }
    }
}

static void test_lease_and_target(void **state)
{
    struct line lines[MAX_LINES] = {{"R1", 0, "", "run", "BEGIN"},
                                    {"R1", 1, "scm", "swap", "OK"}};
    Ozone__Om__OmUpgradeJournalEntry e[MAX_LINES];
    Ozone__Om__OmUpgradeJournalEntry *p[MAX_LINES];
    Ozone__Om__OmUpgradeJournalReadResponse r;
    Ozone__Om__OmUpgradeLease l = OZONE__OM__OM_UPGRADE_LEASE__INIT;
    struct upgrade_journal_summary s;

    (void)state;
    build(lines, e, p, &r);
    e[0].to_bin = "/opt/new";
    e[0].backend = "local";
    e[1].to_bin = "/opt/other";
    /* A live lease of this run: in progress. */
    l.holder = "h";
    l.host = "host1";
    l.pid = 7;
    l.run_id = "R1";
    l.expires_ms = NOW + 5000;
    r.lease = &l;
    upgrade_journal_summarize(&r, &s);
    assert_string_equal(s.to_bin, "/opt/new"); /* the run's BEGIN */
    assert_string_equal(s.backend, "local");
    assert_true(s.lease_live && s.lease_is_runs);
    assert_non_null(strstr(upgrade_journal_next(&s), "in progress"));
    /* Expired: the orchestrator is gone. */
    l.expires_ms = NOW;
    upgrade_journal_summarize(&r, &s);
    assert_false(s.lease_live);
    assert_non_null(strstr(upgrade_journal_next(&s), "lease is gone"));

    cJSON *o = upgrade_journal_summary_json(&s, NOW + 1);
    assert_non_null(o);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(o, "state")->valuestring, "RUNNING");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "step")->valuedouble,
                     1);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(o, "node")->valuestring, "scm");
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(o, "toBin")->valuestring, "/opt/new");
    cJSON *lease = cJSON_GetObjectItemCaseSensitive(o, "lease");
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(lease, "expired")));
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(lease, "holder")->valuestring, "h");
    cJSON_Delete(o);

    /* No lease: a JSON null. */
    o = upgrade_journal_lease_json(NULL, NOW);
    assert_true(cJSON_IsNull(o));
    cJSON_Delete(o);
    /* A live one counts down. */
    l.expires_ms = NOW + 1500;
    o = upgrade_journal_lease_json(&l, NOW);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "expired")));
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(o, "expiresInMs")->valuedouble, 1500);
    cJSON_Delete(o);
}

static void test_entry_json_and_time(void **state)
{
    Ozone__Om__OmUpgradeJournalEntry e =
        OZONE__OM__OM_UPGRADE_JOURNAL_ENTRY__INIT;
    char buf[48];

    (void)state;
    assert_string_equal(upgrade_journal_time(NOW, buf, sizeof(buf)),
                        "2023-11-14T22:13:20Z");
    e.seq = 12;
    e.time_ms = NOW;
    e.run_id = "R1";
    e.holder = "h";
    e.step = 3;
    e.steps = 9;
    e.node = "dn1";
    e.kind = "DATANODE";
    e.action = "stop";
    e.status = "OK";
    e.detail = "stopped";
    e.from_bin = "/old";
    e.to_bin = "/new";
    e.backend = "local";
    cJSON *o = upgrade_journal_entry_json(&e);
    static const char *const keys[] = {
        "seq",  "timeMs", "runId",  "holder", "step",    "steps", "node",
        "kind", "action", "status", "detail", "fromBin", "toBin", "backend"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (cJSON_GetObjectItemCaseSensitive(o, keys[i]) == NULL) {
            fail_msg("entry JSON lacks '%s'", keys[i]);
        }
    }
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "seq")->valuedouble,
                     12);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(o, "time")->valuestring,
        "2023-11-14T22:13:20Z");
    cJSON_Delete(o);
}

static void test_view(void **state)
{
    struct line a[MAX_LINES] = {{"R1", 0, "", "run", "BEGIN"},
                                {"R1", 1, "scm", "stop", "OK"}};
    struct line b[MAX_LINES] = {{"R1", 0, "", "run", "PAUSED"}};
    Ozone__Om__OmUpgradeJournalEntry ea[MAX_LINES], eb[MAX_LINES];
    Ozone__Om__OmUpgradeJournalEntry *pa[MAX_LINES], *pb[MAX_LINES];
    Ozone__Om__OmUpgradeJournalReadResponse ra, rb, view;
    Ozone__Om__OmUpgradeLease l = OZONE__OM__OM_UPGRADE_LEASE__INIT;
    struct upgrade_journal_summary s;

    (void)state;
    build(a, ea, pa, &ra);
    build(b, eb, pb, &rb);
    ra.lease = &l;
    rb.now_ms = NOW + 99;
    Ozone__Om__OmUpgradeJournalReadResponse *pages[] = {&ra, &rb};
    assert_int_equal(upgrade_journal_view(pages, 2, &view), 0);
    assert_int_equal(view.n_entries, 3);
    assert_ptr_equal(view.entries[2], &eb[0]);
    assert_ptr_equal(view.lease, &l); /* the first page's */
    assert_true(view.now_ms == NOW);
    upgrade_journal_summarize(&view, &s);
    assert_string_equal(s.state, "PAUSED");
    upgrade_journal_view_release(&view);
    assert_null(view.entries);
    /* No page at all: an empty view. */
    assert_int_equal(upgrade_journal_view(pages, 0, &view), 0);
    assert_int_equal(view.n_entries, 0);
    upgrade_journal_view_release(&view);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_lease_and_target),
        cmocka_unit_test(test_entry_json_and_time),
        cmocka_unit_test(test_view),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
