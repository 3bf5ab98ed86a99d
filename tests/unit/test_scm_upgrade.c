/* SCM's upgrade logic (DESIGN.md §6.6, §6.7): the fencing decision at
 * registration and heartbeat, its messages, and the aggregation of the
 * finalization status with its blockers (pure functions, table-driven);
 * who asked for the last finalization, read back at start (a real SCM
 * state over RocksDB, scm_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "scm_fixture.h"
#include "scm_internal.h"

#define NS(x) OZONE__HDDS__NODE_STATE__##x
#define FS(x) OZONE__SCM__FINALIZATION_STATUS__##x
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void test_fence_decide(void **state)
{
    static const struct
    {
        unsigned scm_sw, scm_ap, dn_sw, dn_ap;
        enum scm_fence want;
    } cases[] = {
        /* Same release, finalized. */
        {102, 102, 102, 102, SCM_FENCE_OK},
        /* Rolling upgrade: new SCM pre-finalized, old datanode. */
        {102, 100, 100, 100, SCM_FENCE_OK},
        /* New datanode on a pre-finalized new SCM. */
        {102, 100, 102, 100, SCM_FENCE_OK},
        /* Datanode upgraded before SCM. */
        {100, 100, 102, 100, SCM_FENCE_UPGRADE_SCM_FIRST},
        {100, 100, 101, 100, SCM_FENCE_UPGRADE_SCM_FIRST},
        /* SCM finalized: old bits can never join. */
        {102, 102, 100, 100, SCM_FENCE_UPGRADE_DATANODE},
        {102, 101, 100, 100, SCM_FENCE_UPGRADE_DATANODE},
        /* Finalized SCM, new datanode not finalized yet: allowed, it is
         * told to finalize. */
        {102, 102, 102, 100, SCM_FENCE_OK},
        /* Datanode finalized past SCM. */
        {102, 100, 102, 102, SCM_FENCE_FINALIZE_SCM_FIRST},
        {102, 101, 102, 102, SCM_FENCE_FINALIZE_SCM_FIRST},
        /* Legacy: a 0.9 datanode (HDDS 4) on a 1.0 SCM pre-finalized. */
        {100, 4, 4, 4, SCM_FENCE_OK},
        {100, 100, 4, 4, SCM_FENCE_UPGRADE_DATANODE},
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        enum scm_fence got = scm_fence_decide(cases[i].scm_sw, cases[i].scm_ap,
                                              cases[i].dn_sw, cases[i].dn_ap);
        if (got != cases[i].want) {
            fail_msg("row %zu: got %d, want %d", i, (int)got,
                     (int)cases[i].want);
        }
    }
}

static void test_fence_messages(void **state)
{
    static const struct
    {
        enum scm_fence f;
        unsigned scm_sw, scm_ap, dn_sw, dn_ap;
        const char *want;
    } cases[] = {
        {SCM_FENCE_UPGRADE_SCM_FIRST, 100, 100, 102, 100,
         "datanode 'dn3' runs HDDS software version 102 but SCM runs 100: "
         "SCM must be upgraded before datanodes"},
        {SCM_FENCE_UPGRADE_DATANODE, 102, 102, 100, 100,
         "datanode 'dn3' runs HDDS software version 100 but SCM is "
         "finalized at apparent version 102: datanode must be upgraded to "
         "join the cluster"},
        {SCM_FENCE_FINALIZE_SCM_FIRST, 102, 100, 102, 102,
         "datanode 'dn3' has HDDS apparent version 102 but SCM has 100: SCM "
         "must finalize before datanodes"},
    };
    char buf[512];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        scm_fence_message(cases[i].f, "dn3", cases[i].scm_sw, cases[i].scm_ap,
                          cases[i].dn_sw, cases[i].dn_ap, buf, sizeof(buf));
        if (strcmp(buf, cases[i].want) != 0) {
            fail_msg("row %zu: got '%s'", i, buf);
        }
    }
}

#define MAX_NODES 4

static void test_summarize(void **state)
{
    static const struct
    {
        const char *name;
        unsigned scm_sw, scm_ap;
        bool finalizing;
        struct scm_upgrade_node nodes[MAX_NODES];
        size_t n;
        Ozone__Scm__FinalizationStatus want;
        unsigned finalized, total;
        const char *blockers[MAX_NODES]; /* in order */
    } cases[] = {
        {"fresh cluster",
         102,
         102,
         false,
         {{"dn1", NS(HEALTHY), 102, 102, false},
          {"dn2", NS(HEALTHY), 102, 102, false}},
         2,
         FS(FINALIZATION_DONE),
         2,
         2,
         {NULL}},
        {"no datanodes",
         102,
         102,
         false,
         {{NULL, 0, 0, 0, false}},
         0,
         FS(FINALIZATION_DONE),
         0,
         0,
         {NULL}},
        {"pre-finalized, all upgraded",
         102,
         100,
         false,
         {{"dn1", NS(HEALTHY), 102, 100, false},
          {"dn2", NS(HEALTHY), 102, 100, false}},
         2,
         FS(FINALIZATION_REQUIRED),
         2,
         2,
         {NULL}},
        {"pre-finalized, one laggard",
         102,
         100,
         false,
         {{"dn1", NS(HEALTHY), 102, 100, false},
          {"dn2", NS(HEALTHY), 100, 100, false}},
         2,
         FS(FINALIZATION_REQUIRED),
         2,
         2,
         {"datanode 'dn2' runs software 100, needs 102"}},
        {"pre-finalized, dead laggard ignored",
         102,
         100,
         false,
         {{"dn1", NS(HEALTHY), 102, 100, false},
          {"dn2", NS(DEAD), 100, 100, false}},
         2,
         FS(FINALIZATION_REQUIRED),
         1,
         1,
         {NULL}},
        {"SCM finalizing",
         102,
         100,
         true,
         {{"dn1", NS(HEALTHY), 102, 100, false}},
         1,
         FS(FINALIZATION_IN_PROGRESS),
         1,
         1,
         {NULL}},
        {"datanodes finalizing",
         102,
         102,
         false,
         {{"dn1", NS(HEALTHY), 102, 102, false},
          {"dn2", NS(HEALTHY_READONLY), 102, 100, false}},
         2,
         FS(FINALIZATION_IN_PROGRESS),
         1,
         2,
         {"datanode 'dn2' is HEALTHY_READONLY at apparent version 100, "
          "finalizing to 102 on its next heartbeat"}},
        {"stale datanode does not hold DONE back",
         102,
         102,
         false,
         {{"dn1", NS(HEALTHY), 102, 102, false},
          {"dn3", NS(STALE), 102, 100, false}},
         2,
         FS(FINALIZATION_DONE),
         1,
         2,
         {"datanode 'dn3' is STALE, will finalize when it returns"}},
        {"unseen datanode holds DONE back",
         102,
         102,
         false,
         {{"dn1", NS(HEALTHY), 102, 102, false},
          {"dn2", NS(NODE_STATE_UNSPECIFIED), 0, 0, true}},
         2,
         FS(FINALIZATION_IN_PROGRESS),
         1,
         2,
         {"datanode 'dn2' has not registered since SCM started, finalizing "
          "to 102 when it does"}},
        {"unseen datanode before SCM finalizes: counted only",
         102,
         100,
         false,
         {{"dn1", NS(HEALTHY), 102, 100, false},
          {"dn2", NS(NODE_STATE_UNSPECIFIED), 0, 0, true}},
         2,
         FS(FINALIZATION_REQUIRED),
         1,
         2,
         {NULL}},
        {"dead datanode: not counted, named",
         102,
         102,
         false,
         {{"dn1", NS(HEALTHY), 102, 102, false},
          {"dn3", NS(DEAD), 102, 100, false}},
         2,
         FS(FINALIZATION_DONE),
         1,
         1,
         {"datanode 'dn3' is DEAD, will finalize when it returns"}},
    };
    struct scm_upgrade_summary sum;

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        scm_upgrade_summarize(cases[i].scm_sw, cases[i].scm_ap,
                              cases[i].finalizing, cases[i].nodes, cases[i].n,
                              &sum);
        if (sum.status != cases[i].want ||
            sum.finalized != cases[i].finalized ||
            sum.total != cases[i].total) {
            fail_msg("row %zu (%s): status %d finalized %u/%u", i,
                     cases[i].name, (int)sum.status, sum.finalized, sum.total);
        }
        size_t want_n = 0;
        while (want_n < MAX_NODES && cases[i].blockers[want_n] != NULL) {
            want_n++;
        }
        if (sum.n_blockers != want_n) {
            fail_msg("row %zu (%s): %zu blockers, want %zu (first '%s')", i,
                     cases[i].name, sum.n_blockers, want_n,
                     sum.n_blockers > 0 ? sum.blockers[0] : "");
        }
        for (size_t b = 0; b < want_n; b++) {
            if (strcmp(sum.blockers[b], cases[i].blockers[b]) != 0) {
                fail_msg("row %zu (%s): blocker %zu is '%s'", i, cases[i].name,
                         b, sum.blockers[b]);
            }
        }
    }
}

static void test_summarize_caps_blockers(void **state)
{
    struct scm_upgrade_node nodes[100];
    struct scm_upgrade_summary sum;
    char names[100][16];

    (void)state;
    memset(nodes, 0, sizeof(nodes));
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof(names[i]), "dn%d", i);
        nodes[i].uuid = names[i];
        nodes[i].state = NS(HEALTHY);
        nodes[i].software = 100;
        nodes[i].apparent = 100;
    }
    scm_upgrade_summarize(102, 100, false, nodes, 100, &sum);
    assert_int_equal(sum.n_blockers, SCM_UPGRADE_MAX_BLOCKERS);
    assert_string_equal(sum.blockers[SCM_UPGRADE_MAX_BLOCKERS - 1],
                        "and 69 more");
    assert_int_equal(sum.total, 100);
}

/* SCM_META_FINALIZATION_REQUESTED_BY survives a restart; what is read
 * from disk stops at a NUL and is cut to the buffer. */
static void test_requested_by_load(void **state)
{
    static char long_value[SCM_REQUESTED_BY_MAX * 2];
    static char long_want[SCM_REQUESTED_BY_MAX];
    static const struct
    {
        const char *value; /* NULL: no key */
        size_t len;
        const char *want;
    } cases[] = {
        {NULL, 0, ""},
        {"OM om1/ozone admin upgrade finalize", 35,
         "OM om1/ozone admin upgrade finalize"},
        {"", 0, ""},
        {"abc\0def", 7, "abc"},
        {long_value, sizeof(long_value), long_want},
    };

    (void)state;
    memset(long_value, 'x', sizeof(long_value));
    memset(long_want, 'x', sizeof(long_want) - 1);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct fx *f = fx_new();
        assert_string_equal(f->scm->finalization_requested_by, "");
        if (cases[i].value != NULL) {
            assert_int_equal(kv_put(f->kv, f->scm->cf_meta,
                                    SCM_META_FINALIZATION_REQUESTED_BY,
                                    strlen(SCM_META_FINALIZATION_REQUESTED_BY),
                                    cases[i].value, cases[i].len),
                             0);
        }
        fx_close(f);
        fx_open(f, 0);
        if (strcmp(f->scm->finalization_requested_by, cases[i].want) != 0) {
            fail_msg("row %zu: '%s', want '%s'", i,
                     f->scm->finalization_requested_by, cases[i].want);
        }
        fx_free(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fence_decide),
        cmocka_unit_test(test_fence_messages),
        cmocka_unit_test(test_summarize),
        cmocka_unit_test(test_summarize_caps_blockers),
        cmocka_unit_test(test_requested_by_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
