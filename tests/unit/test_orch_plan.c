/* Unit tests of the rolling-upgrade plan and safety gate (admin-cli
 * orch_plan.c, orch_gate.c, orch_inspect.c's target reading; issue 7):
 * order with the OM leader last, nodes already on the target, refusals,
 * valid mid-roll version states, rollback order, estimates from defaults
 * and from the journal, options from configuration, the target binary's
 * versions, and the gate's arithmetic on /prom texts (counter reset,
 * histogram_quantile interpolation), including the text the real metrics
 * registry renders. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "http.h"
#include "metrics.h"
#include "orch.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- synthetic clusters ---- */

static const unsigned OLD_SW[3] = {100, 100, 100};
static const unsigned NEW_SW[3] = {102, 102, 100};

static void set_release(struct orch_node *n, bool new_bits)
{
    strcpy(n->release, new_bits ? "1.1.0" : "1.0.0");
    memcpy(n->software, new_bits ? NEW_SW : OLD_SW, sizeof(n->software));
}

static struct orch_node *add(struct orch_cluster *c,
                             enum orch_kind kind,
                             const char *name,
                             const char *state)
{
    struct orch_node *n = &c->nodes[c->n++];

    memset(n, 0, sizeof(*n));
    n->kind = kind;
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->rpc_address, sizeof(n->rpc_address), "127.0.0.1:%zu",
             9000 + c->n);
    snprintf(n->state, sizeof(n->state), "%s", state);
    if (kind == ORCH_DATANODE) {
        strcpy(n->op_state, "IN_SERVICE");
    }
    n->reachable = true;
    set_release(n, false);
    return n;
}

/* SCM, Recon, dn1..dn3, om1..om3 with om2 leading; all on 1.0.0. */
static void base_cluster(struct orch_cluster *c)
{
    memset(c, 0, sizeof(*c));
    c->nodes = calloc(16, sizeof(*c->nodes));
    assert_non_null(c->nodes);
    add(c, ORCH_SCM, "scm", "RUNNING");
    add(c, ORCH_RECON, "recon", "RUNNING");
    add(c, ORCH_DATANODE, "dn1", "HEALTHY");
    add(c, ORCH_DATANODE, "dn2", "HEALTHY");
    add(c, ORCH_DATANODE, "dn3", "HEALTHY");
    add(c, ORCH_OM, "om1", "FOLLOWER")->applied_index = 500;
    struct orch_node *l = add(c, ORCH_OM, "om2", "LEADER");
    l->leader = true;
    l->applied_index = 510;
    add(c, ORCH_OM, "om3", "FOLLOWER")->applied_index = 505;
    strcpy(c->scm_status, "FINALIZATION_DONE");
    strcpy(c->om_status, "ALREADY_FINALIZED");
    strcpy(c->om_service_id, "omservice");
    strcpy(c->om_leader, "om2");
    c->om_leader_applied = 510;
    c->pipelines_open = 2;
}

static struct orch_node *node(struct orch_cluster *c, const char *name)
{
    return (struct orch_node *)orch_cluster_find(c, name);
}

static void target_new(struct orch_target *t)
{
    memset(t, 0, sizeof(*t));
    strcpy(t->bin, "/opt/ozone-1.1.0");
    t->known = true;
    strcpy(t->release, "1.1.0");
    memcpy(t->software, NEW_SW, sizeof(t->software));
}

static void options(struct orch_options *o)
{
    memset(o, 0, sizeof(*o));
    strcpy(o->backend, "local");
    o->step_timeout_ms = 300000;
    o->dwell_ms = 10000;
    o->max_error_rate = 0.01;
    o->max_p99_ms = 2000;
    o->max_om_lag = 10000;
    o->lease_ttl_ms = 120000;
    o->dn_heartbeat_ms = 30000;
}

static void expect_order(const struct orch_plan *p,
                         const char *const *names,
                         size_t n)
{
    assert_int_equal(p->n, n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(p->steps[i].name, names[i]) != 0) {
            fail_msg("step %zu is '%s', expected '%s'", i + 1, p->steps[i].name,
                     names[i]);
        }
        assert_int_equal(p->steps[i].index, i + 1);
    }
}

/* ---- order, leader last, estimates ---- */

static void test_order_leader_last(void **state)
{
    static const char *const want[] = {"scm", "recon", "dn1", "dn2",
                                       "dn3", "om1",   "om3", "om2"};
    struct orch_cluster c;
    struct orch_target t;
    struct orch_options o;
    struct orch_plan p;
    char why[ORCH_MSG_SIZE];

    (void)state;
    base_cluster(&c);
    target_new(&t);
    options(&o);
    assert_int_equal(orch_plan_build(&c, &t, &o, NULL, false, &p), 0);
    expect_order(&p, want, ARRAY_LEN(want));
    assert_false(p.refused);
    assert_string_equal(p.refusal, "");
    for (size_t i = 0; i < p.n; i++) {
        assert_false(p.steps[i].already_done);
        assert_int_equal(p.steps[i].transfer_leader,
                         strcmp(p.steps[i].name, "om2") == 0);
        assert_string_equal(c.nodes[p.steps[i].node].name, p.steps[i].name);
        assert_true(strlen(p.steps[i].pre_checks) > 0);
        assert_true(strlen(p.steps[i].post_checks) > 0);
    }
    assert_non_null(strstr(p.steps[7].pre_checks, "transfer leadership"));
    /* Defaults: SCM 15 s, Recon 10 s, DN 3 heartbeats + 5 s, OM 10 s,
     * +2 s for the transfer, each + the 10 s gate window. */
    assert_int_equal(p.steps[0].estimate_ms, 25000);
    assert_int_equal(p.steps[1].estimate_ms, 20000);
    assert_int_equal(p.steps[2].estimate_ms, 105000);
    assert_int_equal(p.steps[5].estimate_ms, 20000);
    assert_int_equal(p.steps[7].estimate_ms, 22000);
    assert_int_equal(p.estimate_ms,
                     25000 + 20000 + 3 * 105000 + 2 * 20000 + 22000);
    assert_string_equal(p.estimate_basis, "defaults");
    assert_true(orch_cluster_healthy(&c, &o, why, sizeof(why)));
    assert_string_equal(why, "");
    orch_plan_free(&p);

    /* A single OM leads, but has nobody to hand leadership to. */
    c.n = 6;
    assert_int_equal(orch_plan_build(&c, &t, &o, NULL, false, &p), 0);
    assert_int_equal(p.n, 6);
    assert_string_equal(p.steps[5].name, "om1");
    assert_false(p.steps[5].transfer_leader);
    orch_plan_free(&p);
    free(c.nodes);
}

static void test_already_done(void **state)
{
    struct orch_cluster c;
    struct orch_target t;
    struct orch_options o;
    struct orch_plan p;

    (void)state;
    base_cluster(&c);
    target_new(&t);
    options(&o);
    /* SCM, Recon and one datanode were rolled (or --resume after
     * them). */
    set_release(node(&c, "scm"), true);
    set_release(node(&c, "recon"), true);
    set_release(node(&c, "dn2"), true);
    assert_int_equal(orch_plan_build(&c, &t, &o, NULL, false, &p), 0);
    assert_int_equal(p.n, 8);
    for (size_t i = 0; i < p.n; i++) {
        bool done = strcmp(p.steps[i].name, "scm") == 0 ||
                    strcmp(p.steps[i].name, "recon") == 0 ||
                    strcmp(p.steps[i].name, "dn2") == 0;
        if (p.steps[i].already_done != done) {
            fail_msg("step %s: already_done %d", p.steps[i].name,
                     p.steps[i].already_done);
        }
    }
    assert_false(p.refused);
    assert_int_equal(p.estimate_ms, 2 * 105000 + 2 * 20000 + 22000);
    orch_plan_free(&p);

    /* Without the release (a datanode known only from SCM's record), the
     * own catalog's software version decides. */
    node(&c, "dn2")->release[0] = '\0';
    memset(node(&c, "dn2")->software, 0, sizeof(unsigned[3]));
    node(&c, "dn2")->software[VERSION_CATALOG_HDDS] = 102;
    assert_int_equal(orch_plan_build(&c, &t, &o, NULL, false, &p), 0);
    assert_true(p.steps[3].already_done);
    orch_plan_free(&p);

    /* The leader already rolled: no transfer for it. */
    set_release(node(&c, "om2"), true);
    set_release(node(&c, "dn1"), true);
    set_release(node(&c, "dn3"), true);
    assert_int_equal(orch_plan_build(&c, &t, &o, NULL, false, &p), 0);
    assert_string_equal(p.steps[7].name, "om2");
    assert_true(p.steps[7].already_done);
    assert_false(p.steps[7].transfer_leader);
    assert_false(p.refused);
    orch_plan_free(&p);

    /* An unknown target (compose image tag): every node is a step. */
    t.known = false;
    assert_int_equal(orch_plan_build(&c, &t, &o, NULL, false, &p), 0);
    for (size_t i = 0; i < p.n; i++) {
        assert_false(p.steps[i].already_done);
    }
    orch_plan_free(&p);
    free(c.nodes);
}

static void test_rollback_order(void **state)
{
    static const char *const want[] = {"om1", "om2", "dn1", "recon", "scm"};
    struct orch_cluster c;
    struct orch_target t;
    struct orch_options o;
    struct orch_plan p;

    (void)state;
    base_cluster(&c);
    target_new(&t);
    options(&o);
    /* Paused mid-roll: SCM, Recon, dn1, om1 and the leader om2 rolled. */
    set_release(node(&c, "scm"), true);
    set_release(node(&c, "recon"), true);
    set_release(node(&c, "dn1"), true);
    set_release(node(&c, "om1"), true);
    set_release(node(&c, "om2"), true);
    assert_int_equal(orch_plan_build(&c, &t, &o, NULL, true, &p), 0);
    assert_true(p.rollback);
    expect_order(&p, want, ARRAY_LEN(want));
    assert_true(p.steps[1].transfer_leader);
    for (size_t i = 0; i < p.n; i++) {
        assert_false(p.steps[i].already_done);
    }
    orch_plan_free(&p);
    free(c.nodes);
}

/* ---- refusals ---- */

enum mutation {
    M_NONE,
    M_DN_DEAD,
    M_DN_STALE,
    M_DN_DEAD_DECOMMISSIONED,
    M_DN_DEAD_MAINTENANCE,
    M_OM_LAG,
    M_OM_DOWN,
    M_NO_LEADER,
    M_SCM_FINALIZING,
    M_OM_FINALIZING,
    M_OM_NEW_DN_OLD,
    M_DN_NEW_SCM_OLD,
    M_DN_NEW_RECON_OLD,
    M_NEWER_THAN_TARGET,
    M_DEAD_AND_FINALIZING,
};

static void mutate(struct orch_cluster *c, enum mutation m)
{
    switch (m) {
        case M_NONE:
            break;
        case M_DN_DEAD:
            strcpy(node(c, "dn2")->state, "DEAD");
            node(c, "dn2")->reachable = false;
            break;
        case M_DN_STALE:
            strcpy(node(c, "dn3")->state, "STALE");
            break;
        case M_DN_DEAD_DECOMMISSIONED:
            strcpy(node(c, "dn2")->state, "DEAD");
            strcpy(node(c, "dn2")->op_state, "DECOMMISSIONED");
            node(c, "dn2")->reachable = false;
            break;
        case M_DN_DEAD_MAINTENANCE:
            strcpy(node(c, "dn2")->state, "DEAD");
            strcpy(node(c, "dn2")->op_state, "IN_MAINTENANCE");
            break;
        case M_OM_LAG:
            node(c, "om3")->applied_index = 10;
            c->om_leader_applied = 20010;
            node(c, "om2")->applied_index = 20010;
            break;
        case M_OM_DOWN:
            node(c, "om3")->reachable = false;
            strcpy(node(c, "om3")->state, "UNKNOWN");
            break;
        case M_NO_LEADER:
            node(c, "om2")->leader = false;
            c->om_leader[0] = '\0';
            break;
        case M_SCM_FINALIZING:
            strcpy(c->scm_status, "FINALIZATION_IN_PROGRESS");
            break;
        case M_OM_FINALIZING:
            strcpy(c->om_status, "FINALIZATION_IN_PROGRESS");
            break;
        case M_OM_NEW_DN_OLD:
            set_release(node(c, "scm"), true);
            set_release(node(c, "recon"), true);
            set_release(node(c, "dn1"), true);
            set_release(node(c, "om1"), true);
            break;
        case M_DN_NEW_SCM_OLD:
            set_release(node(c, "dn3"), true);
            break;
        case M_DN_NEW_RECON_OLD:
            /* Recon takes the datanodes' reports: it goes first too. */
            set_release(node(c, "scm"), true);
            set_release(node(c, "dn1"), true);
            break;
        case M_NEWER_THAN_TARGET:
            node(c, "dn1")->software[VERSION_CATALOG_HDDS] = 103;
            strcpy(node(c, "dn1")->release, "1.2.0");
            /* keep the state valid otherwise: everything before it too */
            node(c, "scm")->software[VERSION_CATALOG_HDDS] = 103;
            node(c, "recon")->software[VERSION_CATALOG_HDDS] = 103;
            strcpy(node(c, "scm")->release, "1.2.0");
            strcpy(node(c, "recon")->release, "1.2.0");
            break;
        case M_DEAD_AND_FINALIZING:
            mutate(c, M_DN_DEAD);
            mutate(c, M_OM_FINALIZING);
            break;
    }
}

static void test_refusals(void **state)
{
    static const struct
    {
        enum mutation m;
        bool refused;
        const char *want[3]; /* substrings of the refusal */
    } cases[] = {
        {M_NONE, false, {NULL}},
        {M_DN_DEAD, true, {"datanode 'dn2' is DEAD at SCM", "decommission"}},
        {M_DN_STALE, true, {"datanode 'dn3' is STALE at SCM"}},
        {M_DN_DEAD_DECOMMISSIONED, false, {NULL}},
        {M_DN_DEAD_MAINTENANCE, false, {NULL}},
        {M_OM_LAG,
         true,
         {"OM 'om3' is 20000 log entries behind the leader",
          "ozone.upgrade.max.om.lag"}},
        {M_OM_DOWN, true, {"OM 'om3' at '127.0.0.1:", "does not answer"}},
        {M_NO_LEADER, true, {"no OM leader"}},
        {M_SCM_FINALIZING, true, {"SCM finalization is in progress"}},
        {M_OM_FINALIZING, true, {"OM finalization is in progress"}},
        {M_OM_NEW_DN_OLD,
         true,
         {"om1 runs 1.1.0 (OM 102) but dn2, dn3, earlier in the upgrade order",
          "run 1.0.0 (HDDS 100): upgrade them first or roll om1 back"}},
        {M_DN_NEW_SCM_OLD,
         true,
         {"dn3 runs 1.1.0 (HDDS 102) but scm, recon", "roll dn3 back"}},
        {M_DN_NEW_RECON_OLD,
         true,
         {"dn1 runs 1.1.0 (HDDS 102) but recon, earlier in the upgrade "
          "order (SCM, Recon, datanodes, OMs), runs 1.0.0 (HDDS 100): "
          "upgrade it first or roll dn1 back"}},
        {M_NEWER_THAN_TARGET,
         true,
         {"dn1 runs 1.2.0 (HDDS 103), newer than the target 1.1.0 (HDDS 102)",
          "scm runs 1.2.0"}},
        {M_DEAD_AND_FINALIZING,
         true,
         {"OM finalization is in progress", "datanode 'dn2' is DEAD"}},
    };
    struct orch_target t;
    struct orch_options o;

    (void)state;
    target_new(&t);
    options(&o);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct orch_cluster c;
        struct orch_plan p;

        base_cluster(&c);
        mutate(&c, cases[i].m);
        assert_int_equal(orch_plan_build(&c, &t, &o, NULL, false, &p), 0);
        if (p.refused != cases[i].refused) {
            fail_msg("case %zu: refused %d, want %d (%s)", i, p.refused,
                     cases[i].refused, p.refusal);
        }
        if (!p.refused && p.refusal[0] != '\0') {
            fail_msg("case %zu: refusal text without refusal: %s", i,
                     p.refusal);
        }
        for (size_t k = 0; k < 3 && cases[i].want[k] != NULL; k++) {
            if (strstr(p.refusal, cases[i].want[k]) == NULL) {
                fail_msg("case %zu: refusal '%s' lacks '%s'", i, p.refusal,
                         cases[i].want[k]);
            }
        }
        /* The plan is always built, refused or not. */
        assert_int_equal(p.n, 8);
        orch_plan_free(&p);
        free(c.nodes);
    }
}

/* ---- versions and health ---- */

static void test_versions_valid(void **state)
{
    struct orch_cluster c;
    char why[ORCH_MSG_SIZE];

    (void)state;
    base_cluster(&c);
    assert_true(orch_versions_valid(&c, why, sizeof(why)));
    assert_string_equal(why, "");
    /* Every prefix of the order on new bits is a valid mid-roll state. */
    const char *order[] = {"scm", "recon", "dn2", "dn1", "dn3", "om3", "om1"};
    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        set_release(node(&c, order[i]), true);
        if (!orch_versions_valid(&c, why, sizeof(why))) {
            fail_msg("after %s: %s", order[i], why);
        }
    }
    free(c.nodes);

    /* Recon newer than SCM. */
    base_cluster(&c);
    set_release(node(&c, "recon"), true);
    assert_false(orch_versions_valid(&c, why, sizeof(why)));
    assert_non_null(strstr(why, "recon runs 1.1.0 (HDDS 102) but scm,"));
    /* A decommissioned datanode on old bits does not hold anything up;
     * an unreachable one without versions is not judged. */
    set_release(node(&c, "scm"), true);
    set_release(node(&c, "dn1"), true);
    set_release(node(&c, "dn2"), true);
    strcpy(node(&c, "dn3")->op_state, "DECOMMISSIONED");
    set_release(node(&c, "om1"), true);
    assert_true(orch_versions_valid(&c, why, sizeof(why)));
    strcpy(node(&c, "dn3")->op_state, "IN_SERVICE");
    memset(node(&c, "dn3")->software, 0, sizeof(unsigned[3]));
    node(&c, "dn3")->release[0] = '\0';
    assert_true(orch_versions_valid(&c, why, sizeof(why)));
    /* A small buffer is cut, not overrun. */
    set_release(node(&c, "scm"), false);
    char tiny[16];
    assert_false(orch_versions_valid(&c, tiny, sizeof(tiny)));
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    assert_false(orch_versions_valid(&c, NULL, 0));
    free(c.nodes);
}

static void test_cluster_healthy(void **state)
{
    struct orch_cluster c;
    struct orch_options o;
    char why[ORCH_MSG_SIZE];

    (void)state;
    options(&o);
    base_cluster(&c);
    c.pipelines_open = 0;
    strcpy(node(&c, "dn1")->state, "HEALTHY_READONLY"); /* finalizing: ok */
    node(&c, "scm")->reachable = false;
    assert_false(orch_cluster_healthy(&c, &o, why, sizeof(why)));
    assert_non_null(strstr(why, "no OPEN pipeline"));
    assert_non_null(strstr(why, "SCM at '127.0.0.1:"));
    assert_null(strstr(why, "dn1"));
    free(c.nodes);

    base_cluster(&c);
    node(&c, "om1")->applied_index = 0;
    c.om_leader_applied = 10000; /* exactly the allowed lag */
    assert_true(orch_cluster_healthy(&c, &o, why, sizeof(why)));
    c.om_leader_applied = 10001;
    assert_false(orch_cluster_healthy(&c, &o, why, sizeof(why)));
    assert_non_null(strstr(why, "OM 'om1' is 10001 log entries behind"));
    free(c.nodes);
}

/* ---- estimates from the journal ---- */

static Ozone__Om__OmUpgradeJournalEntry *entry(uint64_t seq,
                                               const char *run,
                                               unsigned step,
                                               const char *node_name,
                                               const char *kind,
                                               const char *status,
                                               uint64_t t_ms)
{
    Ozone__Om__OmUpgradeJournalEntry *e = calloc(1, sizeof(*e));

    assert_non_null(e);
    ozone__om__om_upgrade_journal_entry__init(e);
    e->seq = seq;
    e->time_ms = t_ms;
    e->run_id = (char *)run;
    e->step = step;
    e->node = (char *)node_name;
    e->kind = (char *)kind;
    e->action = (char *)ORCH_ACT_STEP;
    e->status = (char *)status;
    return e;
}

static void test_estimate_measured(void **state)
{
    Ozone__Om__OmUpgradeJournalEntry *e[12];
    Ozone__Om__OmUpgradeJournalReadResponse h =
        OZONE__OM__OM_UPGRADE_JOURNAL_READ_RESPONSE__INIT;
    struct orch_cluster c;
    struct orch_target t;
    struct orch_options o;
    struct orch_plan p;
    size_t n = 0;

    (void)state;
    /* Run R-1: SCM took 20 s, two datanodes 8 s and 10 s; a gate entry
     * between BEGIN and OK is not a step. Run R-2 (newer): one datanode,
     * 4 s, and a datanode step that FAILED (not a measurement). */
    e[n++] = entry(1, "R-1", 1, "scm", "SCM", ORCH_ST_BEGIN, 1000);
    e[n++] = entry(2, "R-1", 1, "scm", "SCM", ORCH_ST_OK, 21000);
    e[n++] = entry(3, "R-1", 3, "dn1", "DATANODE", ORCH_ST_BEGIN, 30000);
    e[n++] = entry(4, "R-1", 3, "dn1", "DATANODE", ORCH_ST_OK, 38000);
    e[n++] = entry(5, "R-1", 4, "dn2", "DATANODE", ORCH_ST_BEGIN, 40000);
    e[n] = entry(6, "R-1", 4, "dn2", "DATANODE", ORCH_ST_OK, 45000);
    e[n++]->action = (char *)ORCH_ACT_GATE;
    e[n++] = entry(7, "R-1", 4, "dn2", "DATANODE", ORCH_ST_OK, 50000);
    e[n++] = entry(8, "R-2", 3, "dn1", "DATANODE", ORCH_ST_BEGIN, 100000);
    e[n++] = entry(9, "R-2", 3, "dn1", "DATANODE", ORCH_ST_OK, 104000);
    e[n++] = entry(10, "R-2", 4, "dn2", "DATANODE", ORCH_ST_BEGIN, 110000);
    e[n++] = entry(11, "R-2", 4, "dn2", "DATANODE", ORCH_ST_FAILED, 190000);
    h.entries = e;
    h.n_entries = n;

    base_cluster(&c);
    target_new(&t);
    options(&o);
    assert_int_equal(orch_plan_build(&c, &t, &o, &h, false, &p), 0);
    assert_int_equal(p.steps[0].estimate_ms, 20000); /* SCM from R-1 */
    assert_int_equal(p.steps[2].estimate_ms, 4000);  /* DN from R-2 */
    assert_int_equal(p.steps[1].estimate_ms, 20000); /* Recon: default */
    assert_int_equal(p.steps[7].estimate_ms, 22000); /* OM: default */
    assert_int_equal(p.estimate_ms,
                     20000 + 20000 + 3 * 4000 + 2 * 20000 + 22000);
    assert_string_equal(p.estimate_basis,
                        "measured in runs R-1, R-2; defaults for RECON, OM");
    orch_plan_free(&p);

    /* Only kinds that still need a step count for the basis. */
    set_release(node(&c, "recon"), true);
    set_release(node(&c, "om1"), true);
    set_release(node(&c, "om2"), true);
    set_release(node(&c, "om3"), true);
    set_release(node(&c, "scm"), true);
    assert_int_equal(orch_plan_build(&c, &t, &o, &h, false, &p), 0);
    assert_string_equal(p.estimate_basis, "measured in run R-2");
    assert_int_equal(p.estimate_ms, 3 * 4000);
    orch_plan_free(&p);

    /* An empty journal: defaults. */
    h.n_entries = 0;
    assert_int_equal(orch_plan_build(&c, &t, &o, &h, false, &p), 0);
    assert_string_equal(p.estimate_basis, "defaults");
    orch_plan_free(&p);
    for (size_t i = 0; i < n; i++) {
        free(e[i]);
    }
    free(c.nodes);
}

/* ---- options ---- */

static void test_options(void **state)
{
    struct cli cli;
    struct orch_options o;
    char errmsg[OZ_ERRMSG_SIZE];

    (void)state;
    memset(&cli, 0, sizeof(cli));
    cli.conf = conf_new();
    assert_non_null(cli.conf);
    assert_int_equal(orch_options_read(&cli, &o, errmsg), 0);
    assert_int_equal(o.step_timeout_ms, 300000);
    assert_int_equal(o.dwell_ms, 10000);
    assert_true(o.max_error_rate > 0.00999 && o.max_error_rate < 0.01001);
    assert_int_equal(o.max_p99_ms, 2000);
    assert_int_equal(o.max_om_lag, 10000);
    assert_int_equal(o.lease_ttl_ms, 120000);
    assert_int_equal(o.dn_heartbeat_ms, 30000);

    conf_set(cli.conf, "ozone.upgrade.gate.window", "3s");
    conf_set(cli.conf, "ozone.upgrade.gate.max.error.rate", "5%");
    conf_set(cli.conf, "ozone.upgrade.gate.max.p99", "750ms");
    conf_set(cli.conf, "ozone.upgrade.max.om.lag", "42");
    conf_set(cli.conf, "hdds.heartbeat.interval", "500ms");
    assert_int_equal(orch_options_read(&cli, &o, errmsg), 0);
    assert_int_equal(o.dwell_ms, 3000);
    assert_true(o.max_error_rate > 0.0499 && o.max_error_rate < 0.0501);
    assert_int_equal(o.max_p99_ms, 750);
    assert_int_equal(o.max_om_lag, 42);
    assert_int_equal(o.dn_heartbeat_ms, 500);

    static const struct
    {
        const char *key, *value, *want;
    } bad[] = {
        {"ozone.upgrade.gate.max.error.rate", "2", "expected a fraction"},
        {"ozone.upgrade.gate.max.error.rate", "lots", "expected a fraction"},
        {"ozone.upgrade.gate.window", "ten", "ozone.upgrade.gate.window"},
        {"ozone.upgrade.max.om.lag", "-1", "ozone.upgrade.max.om.lag"},
        {"ozone.upgrade.step.timeout", "5x", "ozone.upgrade.step.timeout"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct conf *saved = cli.conf;
        cli.conf = conf_new();
        conf_set(cli.conf, bad[i].key, bad[i].value);
        if (orch_options_read(&cli, &o, errmsg) != OZ_EINVAL ||
            strstr(errmsg, bad[i].want) == NULL) {
            fail_msg("case %zu: '%s'", i, errmsg);
        }
        /* The bad key keeps its default. */
        assert_int_equal(o.dwell_ms, 10000);
        assert_int_equal(o.max_om_lag, 10000);
        conf_free(cli.conf);
        cli.conf = saved;
    }
    conf_free(cli.conf);
}

/* ---- the target binary ---- */

static void write_script(const char *dir, const char *body)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/ozone", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
}

static void test_target_read(void **state)
{
    char dir[64] = "/tmp/oz-orch-target-XXXXXX";
    char path[128], missing[128];
    struct orch_target t;
    char errmsg[OZ_ERRMSG_SIZE];

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    assert_int_equal(orch_target_read("local", missing, &t, errmsg),
                     OZ_ENOTFOUND);
    assert_non_null(strstr(errmsg, "does not exist"));
    assert_non_null(strstr(errmsg, missing));
    assert_false(t.known);

    assert_int_equal(orch_target_read("local", dir, &t, errmsg), OZ_ENOTFOUND);
    assert_non_null(strstr(errmsg, "no executable 'ozone' in"));

    write_script(dir,
                 "[ \"$1 $2\" = 'version --json' ] || exit 9\n"
                 "echo '[ {\"component\" : \"CLIENT\", \"release\" : "
                 "\"9.9.0\", \"softwareVersions\" : {\"OM\" : 120, \"HDDS\" : "
                 "110, \"CLIENT\" : 101}} ]'");
    assert_int_equal(orch_target_read("systemd", dir, &t, errmsg), 0);
    assert_true(t.known);
    assert_string_equal(t.release, "9.9.0");
    assert_int_equal(t.software[VERSION_CATALOG_OM], 120);
    assert_int_equal(t.software[VERSION_CATALOG_HDDS], 110);
    assert_int_equal(t.software[VERSION_CATALOG_CLIENT], 101);
    assert_string_equal(t.bin, dir);

    snprintf(path, sizeof(path), "%s/ozone", dir);
    assert_int_equal(orch_target_read("local", path, &t, errmsg), OZ_EINVAL);
    assert_non_null(strstr(errmsg, "is not a directory"));

    write_script(dir, "echo 'cannot load libfoo.so' >&2; exit 3");
    assert_int_equal(orch_target_read("local", dir, &t, errmsg), OZ_ERPC);
    assert_non_null(strstr(errmsg, "exit status 3"));
    assert_non_null(strstr(errmsg, "cannot load libfoo.so"));

    write_script(dir, "echo 'ozone-c 1.1.0'");
    assert_int_equal(orch_target_read("local", dir, &t, errmsg), OZ_ECORRUPT);
    assert_non_null(strstr(errmsg, "cannot parse"));
    assert_false(t.known);

    /* compose: an image tag, nothing to run. */
    assert_int_equal(orch_target_read("compose", "ozone-c:1.1.0", &t, errmsg),
                     0);
    assert_false(t.known);
    assert_string_equal(t.bin, "ozone-c:1.1.0");
    assert_int_equal(orch_target_read("local", "", &t, errmsg), OZ_EINVAL);

    unlink(path);
    rmdir(dir);
}

/* ---- the safety gate ---- */

static const double BOUNDS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};

/* /prom text of one daemon: the gate's series for service (split over
 * two methods), cum[] cumulative bucket counts (15 with +Inf), plus
 * series the gate must ignore. */
static char *prom(const char *service,
                  double requests,
                  double server_errors,
                  const double *cum)
{
    size_t cap = 16384, len = 0;
    char *s = malloc(cap);

    assert_non_null(s);
#define P(...) len += (size_t)snprintf(s + len, cap - len, __VA_ARGS__)
    P("# HELP ozone_rpc_requests_total RPC requests answered, by method\n");
    P("# TYPE ozone_rpc_requests_total counter\n");
    P("ozone_rpc_requests_total{service=\"%s\",method=\"A\"} %.17g\n", service,
      requests - 1);
    P("ozone_rpc_requests_total{service=\"%s\",method=\"B\"} 1\n", service);
    P("ozone_rpc_requests_total{service=\"ozone.om.OmAdminService\","
      "method=\"Roles\"} 99999\n");
    P("ozone_rpc_errors_total{service=\"%s\",method=\"A\"} 77777\n", service);
    P("ozone_rpc_server_errors_total{service=\"%s\",method=\"A\"} %.17g\n",
      service, server_errors);
    P("ozone_rpc_server_errors_total{service=\"ozone.VersionService\","
      "method=\"GetVersion\"} 5555\n");
    for (size_t i = 0; i <= ARRAY_LEN(BOUNDS); i++) {
        char le[32];
        if (i < ARRAY_LEN(BOUNDS)) {
            snprintf(le, sizeof(le), "%g", BOUNDS[i]);
        } else {
            snprintf(le, sizeof(le), "+Inf");
        }
        /* Method A holds everything, B nothing: merged = cum. */
        P("ozone_rpc_latency_seconds_bucket{service=\"%s\",method=\"A\","
          "le=\"%s\"} %.17g\n",
          service, le, cum[i]);
        P("ozone_rpc_latency_seconds_bucket{service=\"%s\",method=\"B\","
          "le=\"%s\"} 0\n",
          service, le);
        P("ozone_rpc_latency_seconds_bucket{service=\"ozone.scm."
          "ScmAdminService\",method=\"X\",le=\"%s\"} 1000000\n",
          le);
    }
    P("ozone_rpc_latency_seconds_sum{service=\"%s\",method=\"A\"} 1.5\n",
      service);
    P("ozone_rpc_latency_seconds_count{service=\"%s\",method=\"A\"} %.17g\n",
      service, cum[ARRAY_LEN(BOUNDS)]);
#undef P
    return s;
}

/* Cumulative counts with n_below observations at or under bound index
 * k_full and the rest spread so that the top is total. */
static void cumulative(double *cum, const double *per_bucket)
{
    double c = 0;

    for (size_t i = 0; i <= ARRAY_LEN(BOUNDS); i++) {
        c += per_bucket[i];
        cum[i] = c;
    }
}

static void add_prom(struct orch_prom_snapshot *s,
                     const char *name,
                     const char *service,
                     double req,
                     double err,
                     const double *per_bucket)
{
    double cum[ARRAY_LEN(BOUNDS) + 1];

    cumulative(cum, per_bucket);
    char *text = prom(service, req, err, cum);
    assert_int_equal(orch_gate_snapshot_add(s, name, text), 0);
    free(text);
}

static void test_gate_eval(void **state)
{
    static const char OM[] = "ozone.om.OzoneManagerService";
    static const char DN[] = "ozone.datanode.DatanodeService";
    double zero[15] = {0};
    double b_om[15] = {0}, a_om[15] = {0}, b_dn[15] = {0}, a_dn[15] = {0};
    struct orch_options o;
    struct orch_gate_result r;

    (void)state;
    options(&o);
    /* om1: 1000 more requests, 5 more server errors; of them 900 took
     * <= 10 ms and 100 took (10, 25] ms. dn1 restarted: its counters
     * start again from 0 and hold 300 requests, 30 errors, all (5, 10]
     * ms. Merged delta: 1300 requests, 35 errors, buckets <=10 ms: 1200,
     * (10,25]: 100. p99: rank 1287 in (10, 25] ms: 10 + 15 * 87/100. */
    b_om[3] = 400;
    a_om[3] = 400;
    a_om[4] = 900;
    a_om[5] = 100;
    b_dn[6] = 5000;
    a_dn[4] = 300;
    struct orch_prom_snapshot *before = orch_gate_snapshot_new();
    struct orch_prom_snapshot *after = orch_gate_snapshot_new();
    assert_non_null(before);
    assert_non_null(after);
    add_prom(before, "om1", OM, 400, 1, b_om);
    add_prom(before, "dn1", DN, 5000, 0, b_dn);
    add_prom(after, "om1", OM, 1400, 6, a_om);
    add_prom(after, "dn1", DN, 300, 30, a_dn);
    assert_int_equal(orch_gate_snapshot_count(after), 2);
    orch_gate_eval(before, after, &o, &r);
    assert_int_equal(r.requests, 1300);
    assert_int_equal(r.errors, 35);
    assert_int_equal(r.instances, 2);
    assert_int_equal(r.restarted, 1);
    assert_true(r.error_rate > 35.0 / 1300 - 1e-9 &&
                r.error_rate < 35.0 / 1300 + 1e-9);
    assert_true(r.p99_ms > 23.05 - 1e-6 && r.p99_ms < 23.05 + 1e-6);
    assert_false(r.pass);
    assert_non_null(strstr(r.why, "2.69% of client RPCs (35 of 1300)"));
    assert_non_null(strstr(r.why, "ozone.upgrade.gate.max.error.rate 1.00%"));
    assert_null(strstr(r.why, "p99"));

    /* Within the error budget, over the latency one. */
    o.max_error_rate = 0.05;
    o.max_p99_ms = 20;
    orch_gate_eval(before, after, &o, &r);
    assert_false(r.pass);
    assert_null(strstr(r.why, "error"));
    assert_non_null(strstr(r.why, "p99 latency 23 ms"));
    assert_non_null(strstr(r.why, "ozone.upgrade.gate.max.p99 20 ms"));
    o.max_p99_ms = 2000;
    orch_gate_eval(before, after, &o, &r);
    assert_true(r.pass);
    assert_string_equal(r.why, "");

    /* Nothing happened: pass with no data. */
    orch_gate_eval(after, after, &o, &r);
    assert_true(r.pass);
    assert_int_equal(r.requests, 0);
    assert_true(r.error_rate == 0 && r.p99_ms == 0);
    assert_int_equal(r.restarted, 0);

    /* A daemon seen only after (it was down before): all of it counts. */
    orch_gate_snapshot_free(before);
    before = orch_gate_snapshot_new();
    add_prom(before, "om1", OM, 1400, 6, a_om);
    orch_gate_eval(before, after, &o, &r);
    assert_int_equal(r.requests, 300);
    assert_int_equal(r.errors, 30);
    assert_int_equal(r.restarted, 0);
    /* All 300 in (5, 10] ms: rank 297 -> 5 + 5 * 297/300. */
    assert_true(r.p99_ms > 9.95 - 1e-6 && r.p99_ms < 9.95 + 1e-6);

    /* Slow beyond the last bound: histogram_quantile gives the highest
     * finite bound (10 s). */
    double slow[15] = {0};
    slow[14] = 50;
    orch_gate_snapshot_free(after);
    after = orch_gate_snapshot_new();
    add_prom(after, "om1", OM, 1450, 6, zero);
    add_prom(after, "om1", OM, 1450, 6, slow); /* same name: replaced */
    assert_int_equal(orch_gate_snapshot_count(after), 1);
    orch_gate_snapshot_free(before);
    before = orch_gate_snapshot_new();
    add_prom(before, "om1", OM, 1400, 6, zero);
    orch_gate_eval(before, after, &o, &r);
    assert_int_equal(r.requests, 50);
    assert_true(r.p99_ms > 9999.0 && r.p99_ms < 10001.0);
    assert_false(r.pass);
    orch_gate_snapshot_free(before);
    orch_gate_snapshot_free(after);
    (void)b_dn;
}

/* The text the real registry renders (common/metrics.c), with the labels
 * common/rpc_server.c registers. */
static void test_gate_real_registry(void **state)
{
    static const char LABELS[] =
        "service=\"ozone.om.OzoneManagerService\",method=\"CreateKey\"";
    struct orch_prom_snapshot *before, *after;
    struct orch_options o;
    struct orch_gate_result r;
    char *text = NULL;
    size_t len = 0;

    (void)state;
    options(&o);
    metrics_reset();
    struct metric *req = metrics_get("ozone_rpc_requests_total", LABELS,
                                     METRIC_COUNTER, "requests");
    struct metric *err = metrics_get("ozone_rpc_server_errors_total", LABELS,
                                     METRIC_COUNTER, "server errors");
    struct metric *client_err =
        metrics_get("ozone_rpc_errors_total", LABELS, METRIC_COUNTER, "errors");
    struct metric *lat = metrics_get("ozone_rpc_latency_seconds", LABELS,
                                     METRIC_HISTOGRAM, "latency");
    before = orch_gate_snapshot_new();
    after = orch_gate_snapshot_new();
    assert_int_equal(metrics_render(&text, &len), 0);
    assert_int_equal(orch_gate_snapshot_add(before, "om1", text), 0);
    free(text);
    for (int i = 0; i < 200; i++) {
        metrics_add(req, 1);
        metrics_observe(lat, i < 196 ? 0.002 : 0.7); /* 4 slow: 2% */
    }
    metrics_add(err, 1);
    metrics_add(client_err, 50); /* KEY_NOT_FOUND and friends */
    assert_int_equal(metrics_render(&text, &len), 0);
    assert_int_equal(orch_gate_snapshot_add(after, "om1", text), 0);
    free(text);
    orch_gate_eval(before, after, &o, &r);
    assert_int_equal(r.requests, 200);
    assert_int_equal(r.errors, 1);
    assert_true(r.pass);
    /* rank 198 of 200 falls in (0.5, 1] s: 500 + 500 * 2/4 ms. */
    assert_true(r.p99_ms > 749.9 && r.p99_ms < 750.1);
    orch_gate_snapshot_free(before);
    orch_gate_snapshot_free(after);
    metrics_reset();
}

static void serve_prom(void *data,
                       const struct http_request *req,
                       struct http_response *resp)
{
    char *text = NULL;
    size_t len = 0;

    (void)data;
    (void)req;
    assert_int_equal(metrics_render(&text, &len), 0);
    http_response_take(resp, 200, "text/plain; version=0.0.4", text, len);
}

/* orch_gate_snapshot over HTTP: only reachable OMs and datanodes with an
 * HTTP address are asked; one that does not answer is left out. */
static void test_gate_snapshot_http(void **state)
{
    static const char LABELS[] =
        "service=\"ozone.datanode.DatanodeService\",method=\"WriteChunk\"";
    struct http_server *srv = NULL, *gone = NULL;
    struct orch_prom_snapshot *before = NULL, *after = NULL;
    struct orch_cluster c;
    struct orch_options o;
    struct orch_gate_result r;
    char errmsg[OZ_ERRMSG_SIZE];

    (void)state;
    options(&o);
    metrics_reset();
    struct metric *req = metrics_get("ozone_rpc_requests_total", LABELS,
                                     METRIC_COUNTER, "requests");
    struct metric *err = metrics_get("ozone_rpc_server_errors_total", LABELS,
                                     METRIC_COUNTER, "server errors");
    assert_int_equal(http_server_new(&srv, "127.0.0.1:0", errmsg), 0);
    assert_int_equal(http_server_route(srv, "GET", "/prom", serve_prom, NULL),
                     0);
    assert_int_equal(http_server_start(srv, errmsg), 0);
    assert_int_equal(http_server_new(&gone, "127.0.0.1:0", errmsg), 0);
    assert_int_equal(http_server_start(gone, errmsg), 0);
    int closed_port = http_server_port(gone);
    http_server_free(gone);

    base_cluster(&c);
    snprintf(node(&c, "dn1")->http_address, ORCH_ADDR_SIZE, "127.0.0.1:%d",
             http_server_port(srv));
    snprintf(node(&c, "scm")->http_address, ORCH_ADDR_SIZE, "127.0.0.1:%d",
             http_server_port(srv)); /* not a gate service's daemon */
    snprintf(node(&c, "dn2")->http_address, ORCH_ADDR_SIZE, "127.0.0.1:%d",
             http_server_port(srv));
    node(&c, "dn2")->reachable = false; /* DEAD at SCM: not asked */
    snprintf(node(&c, "dn3")->http_address, ORCH_ADDR_SIZE, "127.0.0.1:%d",
             closed_port);
    assert_int_equal(orch_gate_snapshot(&c, &before), 0);
    assert_int_equal(orch_gate_snapshot_count(before), 1);
    metrics_add(req, 40);
    metrics_add(err, 2);
    assert_int_equal(orch_gate_snapshot(&c, &after), 0);
    orch_gate_eval(before, after, &o, &r);
    assert_int_equal(r.requests, 40);
    assert_int_equal(r.errors, 2);
    assert_int_equal(r.instances, 1);
    assert_false(r.pass);
    assert_non_null(strstr(r.why, "5.00% of client RPCs (2 of 40)"));
    orch_gate_snapshot_free(before);
    orch_gate_snapshot_free(after);
    http_server_free(srv);
    free(c.nodes);
    metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_leader_last),
        cmocka_unit_test(test_already_done),
        cmocka_unit_test(test_rollback_order),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_versions_valid),
        cmocka_unit_test(test_cluster_healthy),
        cmocka_unit_test(test_estimate_measured),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_target_read),
        cmocka_unit_test(test_gate_eval),
        cmocka_unit_test(test_gate_real_registry),
        cmocka_unit_test(test_gate_snapshot_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
