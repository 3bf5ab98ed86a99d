/* SCM pipelines, containers and AllocateBlock (DESIGN.md §7): placement,
 * reservation and closing of full containers, exclude lists and their
 * errors, persistence across a restart, and the local id counter. */
#include "scm_fixture.h"

#define PS(x) OZONE__HDDS__PIPELINE_STATE__PIPELINE_##x
#define CS(x) OZONE__HDDS__CONTAINER_STATE__CONTAINER_##x
#define ONE OZONE__HDDS__REPLICATION_FACTOR__ONE
#define THREE OZONE__HDDS__REPLICATION_FACTOR__THREE

/* ---- placement (pure) ---- */

static void test_place(void **state)
{
    static const char *const uuids[] = {"a", "b", "c", "d", "e"};
    static const struct
    {
        size_t counts[5];
        size_t n, want;
        const char *taken[6]; /* up to 2 sets of 3 */
        size_t n_taken;
        int rc;
        const char *want_set; /* chosen uuids, in candidate order */
    } cases[] = {
        {{0, 0, 0, 0, 0}, 3, 3, {NULL}, 0, 0, "abc"},
        {{0, 0, 0, 0, 0}, 2, 3, {NULL}, 0, OZ_ENOTFOUND, ""},
        {{0, 0, 0, 0, 0}, 3, 3, {"c", "b", "a"}, 1, OZ_ENOTFOUND, ""},
        {{1, 1, 1, 0, 0}, 4, 3, {"a", "b", "c"}, 1, 0, "dab"},
        {{2, 0, 1, 0, 1}, 5, 3, {NULL}, 0, 0, "bdc"},
        {{0, 0, 0, 0, 0}, 5, 3, {"a", "b", "c", "a", "b", "d"}, 2, 0, "abe"},
        {{0, 0, 0, 0, 0}, 5, 1, {NULL}, 0, 0, "a"},
        {{3, 2, 9, 9, 9}, 5, 1, {NULL}, 0, 0, "b"},
        {{0, 0, 0, 0, 0}, 5, 0, {NULL}, 0, OZ_ENOTFOUND, ""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t out[3] = {99, 99, 99};
        char got[4] = "";
        int rc = scm_pipeline_place(uuids, cases[i].counts, cases[i].n,
                                    cases[i].want, cases[i].taken,
                                    cases[i].n_taken, out);
        if (rc != cases[i].rc) {
            fail_msg("row %zu: rc %d, want %d", i, rc, cases[i].rc);
        }
        for (size_t k = 0; rc == 0 && k < cases[i].want; k++) {
            got[k] = uuids[out[k]][0];
            got[k + 1] = '\0';
        }
        if (rc == 0 && strcmp(got, cases[i].want_set) != 0) {
            fail_msg("row %zu: chose '%s', want '%s'", i, got,
                     cases[i].want_set);
        }
    }
}

/* ---- helpers ---- */

/* Three (or n) registered nodes with open pipelines and containers. */
static struct fx *cluster(size_t n)
{
    static const char *const names[] = {"dn1", "dn2", "dn3", "dn4"};
    struct fx *f = fx_new();

    for (size_t i = 0; i < n; i++) {
        fx_register(f, names[i], 0);
    }
    scm_tick(f->scm, 100, 0);
    fx_open_pipelines(f, 200);
    scm_tick(f->scm, 300, 0);
    return f;
}

static int alloc(struct fx *f,
                 Ozone__Hdds__ReplicationFactor factor,
                 size_t n,
                 const Ozone__Hdds__ExcludeList *ex,
                 struct scm_block *out,
                 struct scm_error *err)
{
    return scm_allocate_blocks(f->scm, factor, 1024, n, ex, out, err);
}

static const struct scm_container *container(struct fx *f, uint64_t id)
{
    const struct scm_container *c = scm__container_find(f->scm, id);

    assert_non_null(c);
    return c;
}

/* ---- allocation ---- */

static void test_allocate_fills_and_closes(void **state)
{
    struct fx *f = cluster(3);
    struct scm_block b[5];
    struct scm_error err;

    (void)state;
    /* The container holds 4 blocks of 256 MB (1 GB). */
    assert_int_equal(alloc(f, THREE, 4, NULL, b, &err), 0);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(b[i].container_id, b[0].container_id);
        assert_int_equal(b[i].local_id, i + 1);
        assert_int_equal(b[i].length, 256u << 20);
        assert_int_equal(b[i].pipeline.factor, THREE);
        assert_int_equal(b[i].pipeline.n_members, 3);
        assert_int_equal(b[i].pipeline.state, PS(OPEN));
    }
    const struct scm_container *c = container(f, b[0].container_id);
    assert_int_equal(c->state, CS(CLOSING));
    assert_int_equal(c->used_bytes, 1u << 30);
    assert_int_equal(c->key_count, 4);
    uint64_t full = b[0].container_id;
    /* The next block goes to a new container on the same pipeline. */
    assert_int_equal(alloc(f, THREE, 1, NULL, &b[4], &err), 0);
    assert_int_not_equal(b[4].container_id, full);
    assert_string_equal(b[4].pipeline.id, b[0].pipeline.id);
    assert_int_equal(b[4].local_id, 5);
    /* Members are told to close it and it is CLOSED once all report. */
    static const Ozone__Hdds__ContainerState closed[] = {CS(CLOSED)};
    static const char *const dns[] = {"dn1", "dn2", "dn3"};
    for (size_t i = 0; i < 3; i++) {
        fx_heartbeat(f, dns[i], 400);
        bool told = false;
        for (size_t k = 0; k < f->n_cmds; k++) {
            told |=
                f->cmds[k].type == OZONE__SCM__COMMAND_TYPE__CLOSE_CONTAINER &&
                f->cmds[k].container_id == full;
        }
        assert_true(told);
        assert_int_equal(container(f, full)->state, CS(CLOSING));
        assert_int_equal(fx_heartbeat_full(f, dns[i], 500, NULL, 0, &full,
                                           closed, 1, NULL, 0, &err),
                         0);
    }
    assert_int_equal(container(f, full)->state, CS(CLOSED));
    fx_free(f);
}

static void test_close_by_ack(void **state)
{
    struct fx *f = cluster(1);
    struct scm_block b[4];
    struct scm_error err;

    (void)state;
    assert_int_equal(alloc(f, ONE, 4, NULL, b, &err), 0);
    uint64_t id = b[0].container_id;
    assert_int_equal(container(f, id)->state, CS(CLOSING));
    fx_heartbeat(f, "dn1", 400);
    uint64_t ack = 0;
    for (size_t k = 0; k < f->n_cmds; k++) {
        if (f->cmds[k].type == OZONE__SCM__COMMAND_TYPE__CLOSE_CONTAINER) {
            ack = f->cmds[k].id;
        }
    }
    assert_int_not_equal(ack, 0);
    /* Unacked and not done: resent after the resend interval only. */
    fx_heartbeat(f, "dn1", 600);
    assert_int_equal(f->n_cmds, 0);
    fx_heartbeat(f, "dn1", 2000);
    assert_int_equal(f->n_cmds, 1);
    /* The datanode never held the container: its ack closes it. */
    assert_int_equal(fx_heartbeat_full(f, "dn1", 2100, NULL, 0, NULL, NULL, 0,
                                       &ack, 1, &err),
                     0);
    assert_int_equal(container(f, id)->state, CS(CLOSED));
    fx_heartbeat(f, "dn1", 9000);
    assert_int_equal(f->n_cmds, 0);
    fx_free(f);
}

static void test_exclusions(void **state)
{
    struct fx *f = cluster(3);
    struct scm_block b;
    struct scm_error err;
    Ozone__Hdds__ExcludeList ex = OZONE__HDDS__EXCLUDE_LIST__INIT;
    char *dn1[] = {(char *)"dn1"};

    (void)state;
    ex.datanode_uuids = dn1;
    ex.n_datanode_uuids = 1;
    assert_int_not_equal(alloc(f, THREE, 1, &ex, &b, &err), 0);
    assert_int_equal(err.code,
                     OZONE__RESULT_CODE__FAILED_TO_FIND_HEALTHY_NODES);
    assert_string_equal(err.message,
                        "cannot allocate a block with replication THREE: 2 "
                        "healthy datanodes, 3 needed (excluded: 'dn1')");
    /* ONE avoids dn1. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(alloc(f, ONE, 1, &ex, &b, &err), 0);
        assert_string_not_equal(b.pipeline.members[0].uuid, "dn1");
    }
    /* An excluded container: a new one on the same pipeline. */
    ex.n_datanode_uuids = 0;
    assert_int_equal(alloc(f, THREE, 1, &ex, &b, &err), 0);
    uint64_t first = b.container_id;
    ex.container_ids = &first;
    ex.n_container_ids = 1;
    assert_int_equal(alloc(f, THREE, 1, &ex, &b, &err), 0);
    assert_int_not_equal(b.container_id, first);
    /* The only THREE pipeline excluded: no other set of 3 exists. */
    char *pipe[] = {b.pipeline.id};
    ex.pipeline_ids = pipe;
    ex.n_pipeline_ids = 1;
    assert_int_not_equal(alloc(f, THREE, 1, &ex, &b, &err), 0);
    assert_int_equal(err.code,
                     OZONE__RESULT_CODE__FAILED_TO_FIND_HEALTHY_NODES);
    assert_non_null(strstr(err.message, "avoids the exclude list"));
    fx_free(f);
}

static void test_exclusion_creates_pipeline(void **state)
{
    struct fx *f = cluster(4);
    struct scm_block b;
    struct scm_error err;
    Ozone__Hdds__ExcludeList ex = OZONE__HDDS__EXCLUDE_LIST__INIT;

    (void)state;
    /* 4 nodes, limit 2: two THREE pipelines; exclude a node in both. */
    assert_int_equal(fx_count_pipelines(f, THREE, PS(OPEN)), 2);
    const char *common = NULL;
    for (size_t i = 0; i < f->scm->n_nodes && common == NULL; i++) {
        const char *u = f->scm->nodes[i]->addr.uuid;
        size_t in = 0;
        for (size_t p = 0; p < f->scm->n_pipelines; p++) {
            in += f->scm->pipelines[p]->factor == THREE &&
                  scm__pipeline_has(f->scm->pipelines[p], u);
        }
        common = in == 2 ? u : NULL;
    }
    assert_non_null(common);
    char *excl[] = {(char *)common};
    ex.datanode_uuids = excl;
    ex.n_datanode_uuids = 1;
    size_t before = f->scm->n_pipelines;
    assert_int_not_equal(alloc(f, THREE, 1, &ex, &b, &err), 0);
    assert_int_equal(err.status, RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(err.message, "retry shortly"));
    assert_int_equal(f->scm->n_pipelines, before + 1);
    /* Once its members report it, the retry succeeds without the node. */
    fx_open_pipelines(f, 400);
    assert_int_equal(alloc(f, THREE, 1, &ex, &b, &err), 0);
    for (size_t m = 0; m < 3; m++) {
        assert_string_not_equal(b.pipeline.members[m].uuid, common);
    }
    fx_free(f);
}

static void test_invalid_requests(void **state)
{
    struct fx *f = fx_new();
    struct scm_block b;
    struct scm_error err;

    (void)state;
    assert_int_not_equal(alloc(f, THREE, 1, NULL, &b, &err), 0);
    assert_string_equal(err.message,
                        "cannot allocate a block with replication THREE: 0 "
                        "healthy datanodes, 3 needed (excluded: none)");
    assert_int_not_equal(
        alloc(f, (Ozone__Hdds__ReplicationFactor)2, 1, NULL, &b, &err), 0);
    assert_int_equal(err.code, OZONE__RESULT_CODE__INVALID_ARGUMENT);
    assert_int_not_equal(alloc(f, ONE, 0, NULL, &b, &err), 0);
    assert_int_not_equal(
        alloc(f, ONE, SCM_MAX_BLOCKS_PER_CALL + 1, NULL, &b, &err), 0);
    assert_int_not_equal(
        scm_allocate_blocks(f->scm, ONE, (256u << 20) + 1, 1, NULL, &b, &err),
        0);
    assert_non_null(strstr(err.message, "ozone.scm.block.size"));
    fx_free(f);
}

/* ---- persistence ---- */

static void test_restart_keeps_state(void **state)
{
    struct fx *f = cluster(3);
    struct scm_block b[2];
    struct scm_error err;
    char three[SCM_ID_MAX];

    (void)state;
    assert_int_equal(alloc(f, THREE, 2, NULL, b, &err), 0);
    oz_strlcpy(three, b[0].pipeline.id, sizeof(three));
    size_t pipes = f->scm->n_pipelines, conts = f->scm->n_containers;
    fx_close(f);
    fx_open(f, 0);
    assert_int_equal(f->scm->n_pipelines, pipes);
    assert_int_equal(f->scm->n_containers, conts);
    assert_int_equal(f->scm->n_nodes, 0); /* nodes re-register */
    const struct scm_container *c = container(f, b[0].container_id);
    assert_int_equal(c->state, CS(OPEN));
    assert_int_equal(c->used_bytes, 512u << 20);
    assert_int_equal(c->n_members, 3);
    struct scm_pipeline *p = scm__pipeline_find(f->scm, three);
    assert_non_null(p);
    assert_int_equal(p->state, PS(OPEN));
    assert_int_equal(p->n_members, 3);
    assert_int_equal(p->members[0].container_port,
                     b[0].pipeline.members[0].container_port);
    /* Nobody registered yet: no healthy datanode. */
    assert_int_not_equal(alloc(f, THREE, 1, NULL, b, &err), 0);
    fx_register(f, "dn1", 10);
    fx_register(f, "dn2", 10);
    fx_register(f, "dn3", 10);
    /* Same pipeline and container; ids continue above the high mark. */
    assert_int_equal(alloc(f, THREE, 1, NULL, &b[1], &err), 0);
    assert_string_equal(b[1].pipeline.id, three);
    assert_int_equal(b[1].container_id, b[0].container_id);
    assert_true(b[1].local_id > SCM_LOCAL_ID_BATCH);
    fx_free(f);
}

static void test_unregistered_members_close_after_restart(void **state)
{
    struct fx *f = cluster(3);

    (void)state;
    fx_close(f);
    fx_open(f, 0);
    fx_register(f, "dn1", 10);
    scm_tick(f->scm, 2999, 0);
    assert_int_equal(fx_count_pipelines(f, THREE, PS(OPEN)), 1);
    fx_heartbeat(f, "dn1", 2999);
    scm_tick(f->scm, 3000, 0);
    /* dn2 and dn3 never came back: their pipelines close, dn1's stays. */
    assert_int_equal(fx_count_pipelines(f, THREE, PS(OPEN)), 0);
    assert_int_equal(fx_count_pipelines(f, ONE, PS(OPEN)), 1);
    fx_free(f);
}

static void test_local_ids_batches(void **state)
{
    struct fx *f = fx_new();
    char errmsg[OZ_ERRMSG_SIZE];
    uint64_t id = 0, prev = 0;

    (void)state;
    for (int i = 0; i < 2500; i++) {
        assert_int_equal(scm__next_local_id(f->scm, &id, errmsg), 0);
        assert_true(id > prev);
        prev = id;
    }
    assert_int_equal(id, 2500);
    assert_int_equal(f->scm->local_id_high, 3001);
    fx_close(f);
    fx_open(f, 0);
    assert_int_equal(scm__next_local_id(f->scm, &id, errmsg), 0);
    assert_int_equal(id, 3001);
    fx_free(f);
}

static void test_corrupt_record_refuses_start(void **state)
{
    struct fx *f = fx_new();
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct scm *scm = NULL;

    (void)state;
    assert_int_equal(
        kv_put(f->kv, f->scm->cf_pipelines, "p1", 2, "\xff\xff\xff", 3), 0);
    assert_int_equal(scm_state_new(&scm, &f->cfg, f->kv, FX_CLUSTER,
                                   fx_apparent, f, 0, errmsg),
                     OZ_ECORRUPT);
    assert_null(scm);
    assert_non_null(strstr(errmsg,
                           "corrupt record in SCM table "
                           "'pipelineTable'"));
    fx_free(f);
}

static void test_config_validation(void **state)
{
    static const struct
    {
        const char *key, *value, *needle;
    } cases[] = {
        {"ozone.scm.block.size", "8GB", "ozone.scm.block.size"},
        {"ozone.scm.dead.node.interval", "1m", "dead.node.interval"},
        {"ozone.scm.stale.node.interval", "10s", "stale.node.interval"},
        {"ozone.scm.datanode.pipeline.limit", "0", "pipeline.limit"},
        {"hdds.heartbeat.interval", "soon", "hdds.heartbeat.interval"},
        {NULL, NULL, NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf *conf = conf_new();
        struct scm_config cfg;
        char errmsg[OZ_ERRMSG_SIZE] = "";
        assert_non_null(conf);
        conf_set(conf, "hdds.heartbeat.interval", "30s");
        if (cases[i].key != NULL) {
            conf_set(conf, cases[i].key, cases[i].value);
        }
        int rc = scm_config_load(&cfg, conf, errmsg);
        conf_free(conf);
        if (cases[i].key == NULL) {
            assert_int_equal(rc, 0);
            assert_int_equal(cfg.stale_ms, 300000);
            assert_int_equal(cfg.pipeline_limit, 2);
            continue;
        }
        if (rc == 0 || strstr(errmsg, cases[i].needle) == NULL) {
            fail_msg("row %zu: rc %d, message '%s'", i, rc, errmsg);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_place),
        cmocka_unit_test(test_allocate_fills_and_closes),
        cmocka_unit_test(test_close_by_ack),
        cmocka_unit_test(test_exclusions),
        cmocka_unit_test(test_exclusion_creates_pipeline),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_restart_keeps_state),
        cmocka_unit_test(test_unregistered_members_close_after_restart),
        cmocka_unit_test(test_local_ids_batches),
        cmocka_unit_test(test_corrupt_record_refuses_start),
        cmocka_unit_test(test_config_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
