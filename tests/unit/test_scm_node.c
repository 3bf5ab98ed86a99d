/* SCM datanode health: the transition table, the target state for a
 * given silence, the step function, and whole lifecycles through the
 * registration and heartbeat entry points (time passed in; no sleeping).
 * DESIGN.md §7: HEALTHY -> STALE -> DEAD -> HEALTHY, HEALTHY_READONLY. */
#include "scm_fixture.h"

#define NS(x) OZONE__HDDS__NODE_STATE__##x
#define PS(x) OZONE__HDDS__PIPELINE_STATE__PIPELINE_##x
#define ONE OZONE__HDDS__REPLICATION_FACTOR__ONE
#define THREE OZONE__HDDS__REPLICATION_FACTOR__THREE

/* ---- pure functions ---- */

static void test_transition_table(void **state)
{
    static const struct
    {
        Ozone__Hdds__NodeState from, to;
        bool allowed;
    } cases[] = {
        {NS(NODE_STATE_UNSPECIFIED), NS(HEALTHY), true},
        {NS(NODE_STATE_UNSPECIFIED), NS(HEALTHY_READONLY), true},
        {NS(NODE_STATE_UNSPECIFIED), NS(STALE), false},
        {NS(NODE_STATE_UNSPECIFIED), NS(DEAD), false},
        {NS(HEALTHY), NS(HEALTHY_READONLY), true},
        {NS(HEALTHY), NS(STALE), true},
        {NS(HEALTHY), NS(DEAD), false},
        {NS(HEALTHY), NS(NODE_STATE_UNSPECIFIED), false},
        {NS(HEALTHY), NS(HEALTHY), false},
        {NS(HEALTHY_READONLY), NS(HEALTHY), true},
        {NS(HEALTHY_READONLY), NS(STALE), true},
        {NS(HEALTHY_READONLY), NS(DEAD), false},
        {NS(STALE), NS(HEALTHY), true},
        {NS(STALE), NS(HEALTHY_READONLY), true},
        {NS(STALE), NS(DEAD), true},
        {NS(STALE), NS(NODE_STATE_UNSPECIFIED), false},
        {NS(DEAD), NS(HEALTHY), true},
        {NS(DEAD), NS(HEALTHY_READONLY), true},
        {NS(DEAD), NS(STALE), false},
        {NS(DEAD), NS(NODE_STATE_UNSPECIFIED), false},
        {(Ozone__Hdds__NodeState)7, NS(HEALTHY), false},
        {NS(HEALTHY), (Ozone__Hdds__NodeState)-1, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (scm_node_transition_allowed(cases[i].from, cases[i].to) !=
            cases[i].allowed) {
            fail_msg("row %zu: %d -> %d should be %s", i, (int)cases[i].from,
                     (int)cases[i].to,
                     cases[i].allowed ? "allowed" : "refused");
        }
    }
}

static void test_health_target(void **state)
{
    static const struct
    {
        int64_t now, last_hb;
        bool readonly;
        Ozone__Hdds__NodeState want;
    } cases[] = {
        {0, 0, false, NS(HEALTHY)},
        {2999, 0, false, NS(HEALTHY)},
        {2999, 0, true, NS(HEALTHY_READONLY)},
        {3000, 0, false, NS(STALE)},
        {3000, 0, true, NS(STALE)},
        {5999, 0, false, NS(STALE)},
        {6000, 0, false, NS(DEAD)},
        {60000, 0, true, NS(DEAD)},
        {10000, 9000, false, NS(HEALTHY)},
        {10000, 7000, false, NS(STALE)},
        {10000, 4000, false, NS(DEAD)},
        /* A heartbeat stamped after "now" (clock race) is healthy. */
        {1000, 1500, false, NS(HEALTHY)},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Ozone__Hdds__NodeState got = scm_node_health_target(
            cases[i].now, cases[i].last_hb, 3000, 6000, cases[i].readonly);
        if (got != cases[i].want) {
            fail_msg("row %zu: got %s, want %s", i, scm__node_state_name(got),
                     scm__node_state_name(cases[i].want));
        }
    }
}

static void test_next_step(void **state)
{
    static const struct
    {
        Ozone__Hdds__NodeState from, target, want;
    } cases[] = {
        {NS(HEALTHY), NS(HEALTHY), NS(HEALTHY)},
        {NS(HEALTHY), NS(STALE), NS(STALE)},
        {NS(HEALTHY), NS(DEAD), NS(STALE)}, /* never skips STALE */
        {NS(HEALTHY_READONLY), NS(DEAD), NS(STALE)},
        {NS(STALE), NS(DEAD), NS(DEAD)},
        {NS(STALE), NS(HEALTHY), NS(HEALTHY)},
        {NS(DEAD), NS(HEALTHY), NS(HEALTHY)},
        {NS(DEAD), NS(HEALTHY_READONLY), NS(HEALTHY_READONLY)},
        {NS(DEAD), NS(STALE), NS(DEAD)}, /* impossible: stays */
        {NS(NODE_STATE_UNSPECIFIED), NS(HEALTHY), NS(HEALTHY)},
        {NS(NODE_STATE_UNSPECIFIED), NS(DEAD), NS(NODE_STATE_UNSPECIFIED)},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Ozone__Hdds__NodeState got =
            scm_node_next_step(cases[i].from, cases[i].target);
        if (got != cases[i].want) {
            fail_msg("row %zu: got %s, want %s", i, scm__node_state_name(got),
                     scm__node_state_name(cases[i].want));
        }
    }
}

/* ---- lifecycles ---- */

static void test_stale_dead_and_back(void **state)
{
    struct fx *f = fx_new();

    (void)state;
    fx_register(f, "dn1", 0);
    assert_int_equal(fx_state(f, "dn1"), NS(HEALTHY));
    fx_heartbeat(f, "dn1", 1000);
    scm_tick(f->scm, 3999, 0);
    assert_int_equal(fx_state(f, "dn1"), NS(HEALTHY));
    scm_tick(f->scm, 4000, 0);
    assert_int_equal(fx_state(f, "dn1"), NS(STALE));
    /* A heartbeat brings a STALE node back at once. */
    fx_heartbeat(f, "dn1", 4500);
    assert_int_equal(fx_state(f, "dn1"), NS(HEALTHY));
    scm_tick(f->scm, 7500, 0);
    assert_int_equal(fx_state(f, "dn1"), NS(STALE));
    scm_tick(f->scm, 10500, 0);
    assert_int_equal(fx_state(f, "dn1"), NS(DEAD));
    /* A DEAD node that heartbeats is revived and asked to re-register. */
    fx_heartbeat(f, "dn1", 20000);
    assert_int_equal(fx_state(f, "dn1"), NS(HEALTHY));
    assert_true(f->n_cmds >= 1);
    assert_int_equal(f->cmds[0].type, OZONE__SCM__COMMAND_TYPE__REREGISTER);
    /* A late tick long past the dead interval still goes via STALE. */
    struct scm_node *n = scm__node_find(f->scm, "dn1");
    assert_int_equal(scm__node_update(f->scm, n, 90000), 2);
    assert_int_equal(fx_state(f, "dn1"), NS(DEAD));
    /* Registering again also revives it. */
    fx_register(f, "dn1", 91000);
    assert_int_equal(fx_state(f, "dn1"), NS(HEALTHY));
    fx_free(f);
}

static void test_unknown_node_gets_reregister(void **state)
{
    struct fx *f = fx_new();

    (void)state;
    fx_heartbeat(f, "ghost", 100);
    assert_int_equal(f->n_cmds, 1);
    assert_int_equal(f->cmds[0].type, OZONE__SCM__COMMAND_TYPE__REREGISTER);
    assert_int_equal(fx_state(f, "ghost"),
                     NS(NODE_STATE_UNSPECIFIED)); /* not added */
    fx_free(f);
}

static void test_refusals(void **state)
{
    struct fx *f = fx_new();
    struct scm_error err;
    Ozone__VersionHeader hdr;
    Ozone__Hdds__DatanodeDetails d = OZONE__HDDS__DATANODE_DETAILS__INIT;
    Ozone__Scm__RegisterRequest req = OZONE__SCM__REGISTER_REQUEST__INIT;

    (void)state;
    fx_hdr(&hdr, "dn1", 100);
    d.uuid = (char *)"dn1";
    d.ip_address = (char *)"127.0.0.1";
    d.container_port = 9859;
    req.datanode = &d;
    hdr.cluster_id = (char *)"CID-other";
    assert_int_not_equal(scm_register_datanode(f->scm, &hdr, &req, 0, 0, &err),
                         0);
    assert_int_equal(err.code, OZONE__RESULT_CODE__CLUSTER_ID_MISMATCH);
    assert_non_null(strstr(err.message, "'CID-other'"));
    assert_non_null(strstr(err.message, "'" FX_CLUSTER "'"));
    hdr.cluster_id = (char *)FX_CLUSTER;
    hdr.component = OZONE__COMPONENT__OM;
    assert_int_not_equal(scm_register_datanode(f->scm, &hdr, &req, 0, 0, &err),
                         0);
    assert_int_equal(err.code, OZONE__RESULT_CODE__INVALID_ARGUMENT);
    hdr.component = OZONE__COMPONENT__DATANODE;
    d.container_port = 0;
    assert_int_not_equal(scm_register_datanode(f->scm, &hdr, &req, 0, 0, &err),
                         0);
    assert_non_null(strstr(err.message, "container port"));
    d.container_port = 9859;
    req.datanode = NULL;
    assert_int_not_equal(scm_register_datanode(f->scm, &hdr, &req, 0, 0, &err),
                         0);
    assert_int_equal(f->scm->n_nodes, 0);
    req.datanode = &d;
    assert_int_equal(scm_register_datanode(f->scm, &hdr, &req, 0, 0, &err), 0);
    assert_int_equal(f->scm->n_nodes, 1);
    fx_free(f);
}

static void test_readonly_when_behind_scm(void **state)
{
    struct fx *f = fx_new();
    struct scm_error err;

    (void)state;
    f->apparent = 101; /* SCM finalized beyond the datanode */
    assert_int_equal(fx_register_v(f, "old", 100, 0, &err), 0);
    assert_int_equal(fx_state(f, "old"), NS(HEALTHY_READONLY));
    fx_register(f, "new1", 0);
    fx_register(f, "new2", 0);
    scm_tick(f->scm, 100, 0);
    /* Never placed in a new pipeline: only the two current nodes get ONE
     * pipelines and there is no THREE pipeline. */
    assert_int_equal(fx_count_pipelines(f, ONE, PS(ALLOCATED)), 2);
    assert_int_equal(fx_count_pipelines(f, THREE, PS(ALLOCATED)), 0);
    /* It finalizes: fx_heartbeat reports SCM's apparent version (101). */
    fx_heartbeat(f, "old", 200);
    assert_int_equal(fx_state(f, "old"), NS(HEALTHY));
    scm_tick(f->scm, 300, 0);
    assert_int_equal(fx_count_pipelines(f, ONE, PS(ALLOCATED)), 3);
    assert_int_equal(fx_count_pipelines(f, THREE, PS(ALLOCATED)), 1);
    fx_free(f);
}

static void test_stale_member_closes_pipelines(void **state)
{
    struct fx *f = fx_new();

    (void)state;
    fx_register(f, "dn1", 0);
    fx_register(f, "dn2", 0);
    fx_register(f, "dn3", 0);
    scm_tick(f->scm, 100, 0);
    fx_open_pipelines(f, 200);
    assert_int_equal(fx_count_pipelines(f, ONE, PS(OPEN)), 3);
    assert_int_equal(fx_count_pipelines(f, THREE, PS(OPEN)), 1);
    scm_tick(f->scm, 300, 0); /* containers for the open pipelines */
    assert_int_equal(f->scm->n_containers, 4);
    /* dn1 and dn2 keep heartbeating, dn3 is silent since 200. */
    fx_heartbeat(f, "dn1", 3100);
    fx_heartbeat(f, "dn2", 3100);
    scm_tick(f->scm, 3200, 0);
    assert_int_equal(fx_state(f, "dn3"), NS(STALE));
    assert_int_equal(fx_count_pipelines(f, ONE, PS(OPEN)), 2);
    assert_int_equal(fx_count_pipelines(f, THREE, PS(OPEN)), 0);
    size_t closing = 0;
    for (size_t i = 0; i < f->scm->n_containers; i++) {
        closing += f->scm->containers[i].state ==
                   OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING;
    }
    assert_int_equal(closing, 2); /* dn3's ONE and the THREE container */
    /* dn1, which still holds the THREE pipeline, is told to close it and
     * its container; once it stops reporting the pipeline, no more. */
    const char *three = NULL;
    for (size_t i = 0; i < f->scm->n_pipelines; i++) {
        if (f->scm->pipelines[i]->factor == THREE) {
            three = f->scm->pipelines[i]->id;
        }
    }
    assert_non_null(three);
    struct scm_error err;
    assert_int_equal(fx_heartbeat_full(f, "dn1", 3300, &three, 1, NULL, NULL, 0,
                                       NULL, 0, &err),
                     0);
    bool close_pipe = false, close_cont = false;
    for (size_t i = 0; i < f->n_cmds; i++) {
        close_pipe |=
            f->cmds[i].type == OZONE__SCM__COMMAND_TYPE__CLOSE_PIPELINE &&
            strcmp(f->cmds[i].pipeline_id, three) == 0;
        close_cont |=
            f->cmds[i].type == OZONE__SCM__COMMAND_TYPE__CLOSE_CONTAINER;
    }
    assert_true(close_pipe);
    assert_true(close_cont);
    fx_heartbeat(f, "dn1", 9000);
    for (size_t i = 0; i < f->n_cmds; i++) {
        assert_int_not_equal(f->cmds[i].type,
                             OZONE__SCM__COMMAND_TYPE__CLOSE_PIPELINE);
    }
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_health_target),
        cmocka_unit_test(test_next_step),
        cmocka_unit_test(test_stale_dead_and_back),
        cmocka_unit_test(test_unknown_node_gets_reregister),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_readonly_when_behind_scm),
        cmocka_unit_test(test_stale_member_closes_pipelines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
