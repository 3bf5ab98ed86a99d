/* Recon without a daemon: the version-aware sync decision (DESIGN.md
 * §2.1, table-driven), when a copy needs a full sync, the OM service
 * from the configuration and the leader a Roles answer names, datanode
 * health from report times, the journal of
 * component changes, and the JSON builders of the API parsed back and
 * checked field by field (shapes of docs/recon.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "recon_internal.h"

#define NOW 1700000000000LL

static struct recon *new_recon(void)
{
    struct recon_config cfg;
    struct recon *r = NULL;
    char errmsg[OZ_ERRMSG_SIZE];

    memset(&cfg, 0, sizeof(cfg));
    cfg.stale_ms = 6000;
    cfg.dead_ms = 12000;
    cfg.om_interval_ms = 1000;
    cfg.scm_interval_ms = 1000;
    cfg.om_updates_limit = 50000;
    assert_int_equal(recon_new(&r, NULL, NULL, &cfg, errmsg), 0);
    return r;
}

static cJSON *parse(char *text)
{
    assert_non_null(text);
    cJSON *j = cJSON_Parse(text);
    if (j == NULL) {
        fail_msg("not JSON: %s", text);
    }
    free(text);
    return j;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v)) {
        fail_msg("field '%s' is not a number", name);
    }
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v)) {
        fail_msg("field '%s' is not a string", name);
    }
    return v->valuestring;
}

static void test_sync_mode(void **state)
{
    static const struct
    {
        uint32_t apparent, software, unimpl;
        enum recon_sync_mode want;
        const char *reason_has;
    } cases[] = {
        {100, 100, 0, RECON_SYNC_INCREMENTAL, "incremental"},
        {102, 102, 0, RECON_SYNC_INCREMENTAL, "incremental"},
        {100, 102, 0, RECON_SYNC_INCREMENTAL, "incremental"},  /* pre-final */
        {2, 2, 0, RECON_SYNC_FULL_ONLY, "predates DBUpdates"}, /* 0.9.0 */
        {0, 0, 0, RECON_SYNC_FULL_ONLY, "predates"},
        {99, 100, 0, RECON_SYNC_FULL_ONLY, "predates"},
        {100, 100, 100, RECON_SYNC_FULL_ONLY, "UNIMPLEMENTED"},
        /* The OM restarted with other bits: probe DBUpdates again. */
        {100, 102, 100, RECON_SYNC_INCREMENTAL, "incremental"},
    };
    char reason[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum recon_sync_mode m =
            recon_om_sync_mode(cases[i].apparent, cases[i].software,
                               cases[i].unimpl, reason, sizeof(reason));
        if (m != cases[i].want || strstr(reason, cases[i].reason_has) == NULL) {
            fail_msg("case %zu: mode %d (%s), want %d with '%s'", i, (int)m,
                     reason, (int)cases[i].want, cases[i].reason_has);
        }
    }
    assert_int_equal(recon_om_sync_mode(100, 100, 0, NULL, 0),
                     RECON_SYNC_INCREMENTAL);
}

/* Whether the copy may go on with the leader's deltas (recon_om_sync.c:
 * sequence numbers are per OM DB, so another OM's copy never does). */
static void test_full_reason(void **state)
{
    static const struct
    {
        bool have;
        const char *copy, *leader;
        enum recon_sync_mode mode;
        bool asked;
        enum recon_full_reason want;
        const char *reason_has;
    } cases[] = {
        {true, "om1", "om1", RECON_SYNC_INCREMENTAL, false, RECON_FULL_NONE,
         ""},
        {false, "", "om1", RECON_SYNC_INCREMENTAL, false, RECON_FULL_NO_COPY,
         "no copy"},
        /* A leader change: the new leader's numbers do not continue it. */
        {true, "om1", "om2", RECON_SYNC_INCREMENTAL, false, RECON_FULL_OTHER_OM,
         "the copy is of OM 'om1', the leader is now "
         "'om2'"},
        {true, "om1", "om2", RECON_SYNC_FULL_ONLY, true, RECON_FULL_OTHER_OM,
         "sequence numbers"},
        {true, "om2", "om2", RECON_SYNC_INCREMENTAL, true, RECON_FULL_ASKED,
         "asked"},
        {true, "om2", "om2", RECON_SYNC_FULL_ONLY, false, RECON_FULL_ONLY,
         "full syncs only"},
        {false, "", "om1", RECON_SYNC_FULL_ONLY, true, RECON_FULL_NO_COPY,
         "no copy"},
    };
    char reason[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum recon_full_reason w = recon_om_full_reason(
            cases[i].have, cases[i].copy, cases[i].leader, cases[i].mode,
            cases[i].asked, reason, sizeof(reason));
        if (w != cases[i].want || strstr(reason, cases[i].reason_has) == NULL ||
            (w == RECON_FULL_NONE && reason[0] != '\0')) {
            fail_msg("case %zu: %d (%s), want %d with '%s'", i, (int)w, reason,
                     (int)cases[i].want, cases[i].reason_has);
        }
    }
    assert_int_equal(
        recon_om_full_reason(true, "om1", "om3", RECON_SYNC_INCREMENTAL, false,
                             NULL, 0),
        RECON_FULL_OTHER_OM);
}

/* The OM service from Recon's configuration, as the client reads it. */
static void test_om_nodes(void **state)
{
    struct recon_om_node nodes[RECON_MAX_OMS];
    char sid[128], addrs[2][RECON_ADDR_MAX];
    struct conf *c = conf_new();
    size_t n;

    (void)state;
    /* No service: ozone.om.address and ozone.om.http-address. */
    n = recon_om_nodes(c, nodes, RECON_MAX_OMS, sid, sizeof(sid));
    assert_int_equal(n, 1);
    assert_string_equal(sid, "");
    assert_string_equal(nodes[0].node_id, "");
    assert_string_equal(nodes[0].rpc_address, "127.0.0.1:9862");
    assert_string_equal(nodes[0].http_address, "127.0.0.1:9874");
    conf_set(c, "ozone.om.address", "omhost");
    conf_set(c, "ozone.om.http-address", "omhost:19874");
    n = recon_om_nodes(c, nodes, RECON_MAX_OMS, sid, sizeof(sid));
    assert_int_equal(n, 1);
    assert_string_equal(nodes[0].rpc_address, "omhost:9862");
    assert_string_equal(nodes[0].http_address, "omhost:19874");

    /* A service: its nodes in order, each with its own HTTP address; the
     * plain keys are ignored; a node without an address is left out. */
    conf_set(c, "ozone.om.service.ids", "svc, other");
    conf_set(c, "ozone.om.nodes.svc", "a,b, c,d");
    conf_set(c, "ozone.om.address.svc.a", "0.0.0.0:1001");
    conf_set(c, "ozone.om.http-address.svc.a", "0.0.0.0:2001");
    conf_set(c, "ozone.om.address.svc.b", "hostb");
    conf_set(c, "ozone.om.address.svc.c", "hostc:1003");
    conf_set(c, "ozone.om.http-address.svc.c", "hostc:2003");
    n = recon_om_nodes(c, nodes, RECON_MAX_OMS, sid, sizeof(sid));
    assert_int_equal(n, 3);
    assert_string_equal(sid, "svc");
    static const char *const want[3][3] = {
        {"a", "127.0.0.1:1001", "127.0.0.1:2001"},
        {"b", "hostb:9862", ""},
        {"c", "hostc:1003", "hostc:2003"},
    };
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(nodes[i].node_id, want[i][0]) != 0 ||
            strcmp(nodes[i].rpc_address, want[i][1]) != 0 ||
            strcmp(nodes[i].http_address, want[i][2]) != 0) {
            fail_msg("node %zu: '%s' '%s' '%s'", i, nodes[i].node_id,
                     nodes[i].rpc_address, nodes[i].http_address);
        }
    }
    assert_int_equal(recon_om_nodes(c, nodes, 2, NULL, 0), 2);
    assert_int_equal(recon_om_addresses(c, addrs, 2), 2);
    assert_string_equal(addrs[1], "hostb:9862");

    /* A service without usable nodes: the plain address. */
    conf_set(c, "ozone.om.service.ids", "empty");
    n = recon_om_nodes(c, nodes, RECON_MAX_OMS, sid, sizeof(sid));
    assert_int_equal(n, 1);
    assert_string_equal(sid, "");
    assert_string_equal(nodes[0].rpc_address, "omhost:9862");
    conf_free(c);
}

/* Which OM a Roles answer sends Recon to. */
static void test_roles_verdict(void **state)
{
    static const struct recon_om_node nodes[3] = {
        {"om1", "127.0.0.1:1001", ""},
        {"om2", "127.0.0.1:1002", ""},
        {"om3", "127.0.0.1:1003", ""},
    };
    static const struct
    {
        const char *self, *leader;
        const char *role_id, *role_rpc; /* one role entry; NULL: none */
        size_t asked;
        enum recon_roles_verdict want;
        size_t next;
        const char *reason_has;
    } cases[] = {
        {"om1", "om1", NULL, NULL, 0, RECON_ROLES_SELF, 0, "is the leader"},
        {"om1", "om2", NULL, NULL, 0, RECON_ROLES_REDIRECT, 1,
         "names leader 'om2'"},
        {"om3", "om1", "om1", "127.0.0.1:1001", 2, RECON_ROLES_REDIRECT, 0,
         "om1"},
        /* An election: nobody to follow. */
        {"om2", "", NULL, NULL, 1, RECON_ROLES_NONE, 3, "knows no leader"},
        /* A leader Recon's configuration lacks (added by --bootstrap). */
        {"om1", "om4", "om4", "127.0.0.1:1004", 0, RECON_ROLES_NONE, 3,
         "'om4' at '127.0.0.1:1004', which is not an OM of Recon's"},
        /* The OMs name a node differently: matched by its address. */
        {"om1", "x2", "x2", "127.0.0.1:1002", 0, RECON_ROLES_REDIRECT, 1,
         "'x2'"},
        {"x2", "x2", NULL, NULL, 1, RECON_ROLES_SELF, 1, "is the leader"},
        {"x1", "om1", NULL, NULL, 0, RECON_ROLES_SELF, 0, "is the leader"},
    };
    char reason[384];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Ozone__VersionHeader hdr = OZONE__VERSION_HEADER__INIT;
        Ozone__Om__OmRolesResponse resp = OZONE__OM__OM_ROLES_RESPONSE__INIT;
        Ozone__Om__OmRole role = OZONE__OM__OM_ROLE__INIT;
        Ozone__Om__OmRole *roles[1] = {&role};
        size_t next = 99;

        hdr.node_id = (char *)cases[i].self;
        resp.hdr = &hdr;
        resp.leader = (char *)cases[i].leader;
        if (cases[i].role_id != NULL) {
            role.node_id = (char *)cases[i].role_id;
            role.rpc_address = (char *)cases[i].role_rpc;
            resp.roles = roles;
            resp.n_roles = 1;
        }
        enum recon_roles_verdict v = recon_om_roles_verdict(
            &resp, nodes, 3, cases[i].asked, &next, reason, sizeof(reason));
        if (v != cases[i].want || next != cases[i].next ||
            strstr(reason, cases[i].reason_has) == NULL) {
            fail_msg(
                "case %zu: verdict %d next %zu (%s), want %d next %zu "
                "with '%s'",
                i, (int)v, next, reason, (int)cases[i].want, cases[i].next,
                cases[i].reason_has);
        }
    }
}

static void report(struct recon *r,
                   const char *uuid,
                   uint32_t sw,
                   uint32_t ap,
                   int64_t now,
                   bool reg,
                   uint64_t container)
{
    Ozone__VersionHeader hdr = OZONE__VERSION_HEADER__INIT;
    Ozone__Hdds__DatanodeDetails dd = OZONE__HDDS__DATANODE_DETAILS__INIT;
    Ozone__Hdds__StorageReport s = OZONE__HDDS__STORAGE_REPORT__INIT;
    Ozone__Hdds__StorageReport *sp[1] = {&s};
    Ozone__Hdds__ContainerReplicaReport c =
        OZONE__HDDS__CONTAINER_REPLICA_REPORT__INIT;
    Ozone__Hdds__ContainerReplicaReport *cp[1] = {&c};
    char *pipes[1] = {(char *)"pipe-1"};

    hdr.component = OZONE__COMPONENT__DATANODE;
    hdr.node_id = (char *)uuid;
    hdr.software_version = sw;
    hdr.apparent_version = ap;
    dd.uuid = (char *)uuid;
    dd.hostname = (char *)"host";
    dd.ip_address = (char *)"127.0.0.1";
    dd.container_port = 9859;
    s.capacity = 1000;
    s.used = 100;
    s.remaining = 900;
    c.container_id = container;
    recon_dn_report(r, &hdr, reg ? &dd : NULL, uuid, sp, 1, cp,
                    container != 0 ? 1 : 0, pipes, 1, reg, now);
}

static void set_scm(struct recon *r)
{
    Ozone__Hdds__ContainerInfo c1 = OZONE__HDDS__CONTAINER_INFO__INIT;
    Ozone__Hdds__ContainerInfo c2 = OZONE__HDDS__CONTAINER_INFO__INIT;
    Ozone__Hdds__ContainerInfo c3 = OZONE__HDDS__CONTAINER_INFO__INIT;
    Ozone__Hdds__ContainerInfo *cs[3] = {&c1, &c2, &c3};
    char *reps1[1] = {(char *)"dn1"};
    char *reps2[1] = {(char *)"dn2"};
    Ozone__Hdds__Pipeline p = OZONE__HDDS__PIPELINE__INIT;
    Ozone__Hdds__DatanodeDetails m = OZONE__HDDS__DATANODE_DETAILS__INIT;
    Ozone__Hdds__DatanodeDetails *ms[1] = {&m};
    Ozone__Hdds__Pipeline *ps[1] = {&p};

    c1.id = 1;
    c1.state = OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN;
    c1.pipeline_id = (char *)"pipe-1";
    c1.factor = OZONE__HDDS__REPLICATION_FACTOR__ONE;
    c1.key_count = 3;
    c1.replica_uuids = reps1;
    c1.n_replica_uuids = 1;
    c2.id = 2;
    c2.state = OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED;
    c2.pipeline_id = (char *)"pipe-1";
    c2.key_count = 5;
    c2.replica_uuids = reps2; /* dn2 never reports: missing once dead */
    c2.n_replica_uuids = 1;
    c3.id = 3; /* empty: never missing */
    c3.state = OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN;
    c3.pipeline_id = (char *)"pipe-1";
    recon_set_scm_containers(r, cs, 3);
    p.id = (char *)"pipe-1";
    p.factor = OZONE__HDDS__REPLICATION_FACTOR__ONE;
    p.state = OZONE__HDDS__PIPELINE_STATE__PIPELINE_OPEN;
    p.created_ms = (uint64_t)NOW - 5000;
    m.uuid = (char *)"dn1";
    m.hostname = (char *)"host";
    p.members = ms;
    p.n_members = 1;
    recon_set_scm_pipelines(r, ps, 1);
}

static void test_health_and_cluster_state(void **state)
{
    struct recon *r = new_recon();

    (void)state;
    report(r, "dn1", 102, 102, NOW, true, 1);
    report(r, "dn2", 102, 100, NOW - 7000, true, 0); /* STALE */
    set_scm(r);
    r->hdds_apparent_from_scm = 102;

    cJSON *cs = parse(recon_json_cluster_state(r, NOW));
    assert_int_equal((int)num(cs, "totalDatanodes"), 2);
    assert_int_equal((int)num(cs, "healthyDatanodes"), 1);
    assert_int_equal((int)num(cs, "pipelines"), 1);
    assert_int_equal((int)num(cs, "containers"), 3);
    assert_int_equal((int)num(cs, "openContainers"), 2);
    assert_int_equal((int)num(cs, "missingContainers"), 0);
    assert_int_equal((int)num(cs, "volumes"), 0);
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(cs, "storageReport");
    assert_int_equal((int)num(sr, "capacity"), 2000);
    assert_int_equal((int)num(sr, "used"), 200);
    assert_string_equal(str(cs, "omServiceId"), "");
    cJSON_Delete(cs);

    /* dn2 silent past the dead interval: its container is missing. */
    cs = parse(recon_json_cluster_state(r, NOW + 6000));
    assert_int_equal((int)num(cs, "missingContainers"), 1);
    assert_int_equal((int)num(cs, "healthyDatanodes"), 0); /* dn1 STALE */
    cJSON_Delete(cs);
    cJSON *miss = parse(recon_json_missing_containers(r, NOW + 6000));
    assert_int_equal((int)num(miss, "totalCount"), 1);
    const cJSON *first =
        cJSON_GetArrayItem(cJSON_GetObjectItem(miss, "containers"), 0);
    assert_int_equal((int)num(first, "containerID"), 2);
    cJSON_Delete(miss);

    cJSON *dns = parse(recon_json_datanodes(r, NOW));
    assert_int_equal((int)num(dns, "totalCount"), 2);
    const cJSON *arr = cJSON_GetObjectItem(dns, "datanodes");
    const cJSON *d1 = cJSON_GetArrayItem(arr, 0);
    const cJSON *d2 = cJSON_GetArrayItem(arr, 1);
    assert_string_equal(str(d1, "uuid"), "dn1");
    assert_string_equal(str(d1, "state"), "HEALTHY");
    assert_string_equal(str(d1, "opState"), "IN_SERVICE");
    assert_int_equal((int)num(d1, "softwareVersion"), 102);
    assert_int_equal((int)num(d1, "apparentVersion"), 102);
    assert_int_equal((int)num(d1, "containers"), 1);
    assert_string_equal(str(d2, "state"), "STALE");
    const cJSON *pl =
        cJSON_GetArrayItem(cJSON_GetObjectItem(d1, "pipelines"), 0);
    assert_string_equal(str(pl, "pipelineID"), "pipe-1");
    cJSON_Delete(dns);

    /* Behind SCM's HDDS apparent version and reporting: read-only. */
    report(r, "dn2", 102, 100, NOW, false, 0);
    dns = parse(recon_json_datanodes(r, NOW));
    d2 = cJSON_GetArrayItem(cJSON_GetObjectItem(dns, "datanodes"), 1);
    assert_string_equal(str(d2, "state"), "HEALTHY_READONLY");
    cJSON_Delete(dns);
    recon_free(r);
}

static void test_containers_paging_and_pipelines(void **state)
{
    struct recon *r = new_recon();

    (void)state;
    set_scm(r);
    cJSON *c = parse(recon_json_containers(r, 0, 2));
    const cJSON *data = cJSON_GetObjectItem(c, "data");
    assert_int_equal((int)num(data, "totalCount"), 3);
    assert_int_equal((int)num(data, "prevKey"), 2);
    const cJSON *list = cJSON_GetObjectItem(data, "containers");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    assert_int_equal((int)num(cJSON_GetArrayItem(list, 0), "ContainerID"), 1);
    assert_int_equal((int)num(cJSON_GetArrayItem(list, 0), "NumberOfKeys"), 3);
    cJSON_Delete(c);
    c = parse(recon_json_containers(r, 2, 2));
    data = cJSON_GetObjectItem(c, "data");
    list = cJSON_GetObjectItem(data, "containers");
    assert_int_equal(cJSON_GetArraySize(list), 1);
    assert_int_equal((int)num(cJSON_GetArrayItem(list, 0), "ContainerID"), 3);
    assert_int_equal((int)num(data, "prevKey"), 3);
    cJSON_Delete(c);

    cJSON *p = parse(recon_json_pipelines(r, NOW));
    assert_int_equal((int)num(p, "totalCount"), 1);
    const cJSON *p0 =
        cJSON_GetArrayItem(cJSON_GetObjectItem(p, "pipelines"), 0);
    assert_string_equal(str(p0, "pipelineId"), "pipe-1");
    assert_string_equal(str(p0, "status"), "OPEN");
    assert_string_equal(str(p0, "replicationFactor"), "ONE");
    assert_int_equal((int)num(p0, "containers"), 3);
    assert_int_equal((int)num(p0, "duration"), 5000);
    cJSON_Delete(p);

    /* No OM copy yet: an empty, well-formed listing. */
    cJSON *ok = parse(recon_json_open_keys(r, NULL, 10));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(ok, "nonFSO")), 0);
    cJSON_Delete(ok);
    cJSON *e = parse(recon_json_error("no API endpoint '%s'", "/x"));
    assert_string_equal(str(e, "error"), "no API endpoint '/x'");
    cJSON_Delete(e);
    recon_free(r);
}

static bool journal_has(const cJSON *up, const char *node, const char *text)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, cJSON_GetObjectItem(up, "journal"))
    {
        if (strcmp(str(e, "nodeId"), node) == 0 &&
            strstr(str(e, "event"), text) != NULL) {
            return true;
        }
    }
    return false;
}

static void test_upgrade_and_journal(void **state)
{
    struct recon *r = new_recon();

    (void)state;
    /* An OM down from the start is listed under its address until it
     * answers with its node id. */
    recon_observe_unreachable(r, "OM", "127.0.0.1:9862", "127.0.0.1:9862",
                              NOW - 1000);
    recon_observe(r, "OM", "om1", "127.0.0.1:9862", "1.0.0", 100, 100,
                  "HEALTHY", NOW);
    recon_observe(r, "SCM", "scm", "127.0.0.1:9860", "1.1.0", 102, 100,
                  "HEALTHY", NOW);
    report(r, "dn1", 102, 100, NOW, true, 0);
    report(r, "dn2", 100, 100, NOW, true, 0);
    /* om1 restarts with new bits, then finalizes. */
    recon_observe(r, "OM", "om1", NULL, "1.1.0", 102, 100, "HEALTHY",
                  NOW + 1000);
    recon_observe(r, "OM", "om1", NULL, NULL, 102, 102, "HEALTHY", NOW + 2000);
    recon_observe_unreachable(r, "SCM", "scm", "127.0.0.1:9860", NOW + 3000);
    recon_observe_unreachable(r, "SCM", "scm", "127.0.0.1:9860", NOW + 3500);
    /* A datanode that registers again while alive restarted. */
    report(r, "dn2", 102, 100, NOW + 4000, true, 0);

    cJSON *up = parse(recon_json_upgrade(r, NOW + 4000));
    const cJSON *comps = cJSON_GetObjectItem(up, "components");
    assert_int_equal(cJSON_GetArraySize(comps), 4);
    const cJSON *om = cJSON_GetArrayItem(comps, 0);
    assert_string_equal(str(om, "type"), "OM");
    assert_string_equal(str(om, "nodeId"), "om1");
    assert_int_equal((int)num(om, "softwareVersion"), 102);
    assert_int_equal((int)num(om, "apparentVersion"), 102);
    assert_string_equal(str(om, "version"), "102/102");
    assert_string_equal(str(om, "release"), "1.1.0");
    const cJSON *scm = cJSON_GetArrayItem(comps, 1); /* OM, SCM, DNs */
    assert_string_equal(str(scm, "health"), "UNREACHABLE");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(scm, "preFinalized")));
    const cJSON *cl = cJSON_GetObjectItem(up, "cluster");
    assert_string_equal(str(cl, "status"), "FINALIZATION_REQUIRED");
    /* Every HDDS component runs 102: nothing blocks. */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(up, "blockers")),
                     0);
    assert_true(journal_has(up, "om1", "appeared: software version 100"));
    assert_true(journal_has(up, "om1",
                            "restarted with software version 102 "
                            "(was 100)"));
    assert_true(journal_has(up, "om1",
                            "apparent version changed from 100 "
                            "to 102 (finalized)"));
    assert_true(journal_has(up, "scm", "unreachable"));
    assert_true(journal_has(up, "dn2", "registered again (restart)"));
    assert_true(journal_has(up, "dn2", "restarted with software version 102"));
    /* Unreachable is journaled once per change. */
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(up, "journal"))
    {
        n += strcmp(str(e, "nodeId"), "scm") == 0 &&
             strstr(str(e, "event"), "unreachable") != NULL;
    }
    assert_int_equal(n, 1);
    cJSON_Delete(up);

    /* dn1 goes silent: DEAD in the journal, and old bits block. */
    report(r, "dn3", 100, 100, NOW + 4000, true, 0);
    recon_refresh_health(r, NOW + 20000);
    up = parse(recon_json_upgrade(r, NOW + 20000));
    assert_true(journal_has(up, "dn1", "health HEALTHY_READONLY -> DEAD") ||
                journal_has(up, "dn1", "-> DEAD"));
    /* dn3 is dead too now (silent 16 s): dead datanodes do not block. */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(up, "blockers")),
                     0);
    cJSON_Delete(up);
    report(r, "dn3", 100, 100, NOW + 20000, false, 0);
    up = parse(recon_json_upgrade(r, NOW + 20000));
    const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItem(up, "blockers"), 0);
    assert_non_null(b);
    assert_string_equal(str(b, "nodeId"), "dn3");
    cJSON_Delete(up);

    recon_task_failed(r, RECON_TASK_OM_SNAPSHOT, "checkpoint truncated", NOW);
    recon_task_ok(r, RECON_TASK_OM_DELTA, 42, NOW);
    cJSON *ts = parse(recon_json_task_status(r));
    assert_int_equal(cJSON_GetArraySize(ts), RECON_TASK_COUNT);
    const cJSON *t0 = cJSON_GetArrayItem(ts, 0);
    assert_string_equal(str(t0, "taskName"), "OmSnapshotRequest");
    assert_string_equal(str(t0, "status"), "FAILED");
    assert_string_equal(str(t0, "lastError"), "checkpoint truncated");
    const cJSON *t1 = cJSON_GetArrayItem(ts, 1);
    assert_string_equal(str(t1, "status"), "OK");
    assert_int_equal((int)num(t1, "lastUpdatedSeqNumber"), 42);
    cJSON_Delete(ts);
    recon_free(r);
}

/* The event of node's journal lines that starts with prefix, or NULL. */
static const char *journal_line(const cJSON *up,
                                const char *node,
                                const char *prefix)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, cJSON_GetObjectItem(up, "journal"))
    {
        if (strcmp(str(e, "nodeId"), node) == 0 &&
            strncmp(str(e, "event"), prefix, strlen(prefix)) == 0) {
            return str(e, "event");
        }
    }
    return NULL;
}

/* Who started a finalization, as SCM and the OMs report it, in the
 * journal line of the start and in the component's
 * finalizationRequestedBy; an older server that does not say ("" or no
 * answer) gives the line without a name. */
static void test_finalization_requested_by(void **state)
{
    static const struct
    {
        const char *type, *node;
        const char *s1, *by1; /* first answer (s1 NULL: none) */
        const char *s2, *by2; /* second answer (s2 NULL: none) */
        const char *want;     /* the node's "<type> finalization" line */
    } cases[] = {
        /* The OM keeps the last requester: not journaled until a new
         * finalization starts. */
        {"OM", "om1", "FINALIZATION_REQUIRED", "alice",
         "FINALIZATION_IN_PROGRESS", "ozone admin upgrade finalize",
         "OM finalization started by 'ozone admin upgrade finalize'"},
        /* Recon missed IN_PROGRESS: the kept requester names the start. */
        {"OM", "om2", "FINALIZATION_REQUIRED", "", "FINALIZATION_DONE", "bob",
         "OM finalization started by 'bob'"},
        {"SCM", "scm1", "FINALIZATION_REQUIRED", "", "FINALIZATION_IN_PROGRESS",
         "CLIENT ozone-cli/ozone admin scm x",
         "SCM finalization started by 'CLIENT ozone-cli/ozone admin scm x'"},
        /* Older servers send no name. */
        {"OM", "om3", "FINALIZATION_REQUIRED", "", "FINALIZATION_IN_PROGRESS",
         "", "OM finalization started"},
        {"SCM", "scm2", "FINALIZATION_REQUIRED", NULL,
         "FINALIZATION_IN_PROGRESS", NULL, "SCM finalization started"},
        /* First answer while in progress: who started it. */
        {"OM", "om4", "FINALIZATION_IN_PROGRESS", "carol", NULL, NULL,
         "OM finalization status FINALIZATION_IN_PROGRESS (OM apparent 100, "
         "software 102), started by 'carol'"},
        {"OM", "om5", "FINALIZATION_REQUIRED", "dave", NULL, NULL,
         "OM finalization status FINALIZATION_REQUIRED (OM apparent 100, "
         "software 102)"},
    };
    struct recon *r = new_recon();

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        recon_observe(r, cases[i].type, cases[i].node, "127.0.0.1:1", "1.1.0",
                      102, 100, "HEALTHY", NOW);
        recon_observe_finalization(r, cases[i].type, cases[i].node, cases[i].s1,
                                   102, 100, NULL, 0, cases[i].by1, NOW);
        if (cases[i].s2 != NULL) {
            uint32_t ap =
                strcmp(cases[i].s2, "FINALIZATION_DONE") == 0 ? 102 : 100;
            recon_observe_finalization(r, cases[i].type, cases[i].node,
                                       cases[i].s2, 102, ap, NULL, 0,
                                       cases[i].by2, NOW + 1000);
        }
    }
    cJSON *up = parse(recon_json_upgrade(r, NOW + 1000));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char prefix[32];
        bool started = cases[i].s2 != NULL;
        snprintf(prefix, sizeof(prefix), "%s finalization %s", cases[i].type,
                 started ? "started" : "status");
        const char *line = journal_line(up, cases[i].node, prefix);
        if (line == NULL || strcmp(line, cases[i].want) != 0) {
            fail_msg("row %zu: journal line '%s', want '%s'", i,
                     line != NULL ? line : "(none)", cases[i].want);
        }
        const char *last = started ? cases[i].by2 : cases[i].by1;
        const char *got = NULL;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(up, "components"))
        {
            if (strcmp(str(c, "nodeId"), cases[i].node) == 0) {
                got = str(c, "finalizationRequestedBy");
            }
        }
        if (got == NULL || strcmp(got, last != NULL ? last : "") != 0) {
            fail_msg("row %zu: finalizationRequestedBy '%s', want '%s'", i,
                     got != NULL ? got : "(none)", last != NULL ? last : "");
        }
    }
    /* The requester kept from the last finalization is not journaled. */
    assert_false(journal_has(up, "om1", "alice"));
    assert_false(journal_has(up, "om5", "dave"));
    /* Components that do not finalize by themselves name nobody. */
    report(r, "dn1", 102, 102, NOW + 1000, true, 0);
    cJSON_Delete(up);
    up = parse(recon_json_upgrade(r, NOW + 1000));
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(up, "components"))
    {
        if (strcmp(str(c, "type"), "DATANODE") == 0) {
            assert_string_equal(str(c, "finalizationRequestedBy"), "");
        }
    }
    cJSON_Delete(up);
    recon_free(r);
}

/* The rolling-upgrade orchestrator's run in /api/v1/upgrade: "not
 * polled yet", then the OM leader's journal (last entries, state, step,
 * the lease judged at render time), journaled once per change; an older
 * OM: not available. */
static void test_rolling_upgrade(void **state)
{
    struct recon *r = new_recon();
    Ozone__Om__OmUpgradeJournalEntry e[60];
    Ozone__Om__OmUpgradeJournalEntry *p[60];
    Ozone__Om__OmUpgradeJournalReadResponse v =
        OZONE__OM__OM_UPGRADE_JOURNAL_READ_RESPONSE__INIT;
    Ozone__Om__OmUpgradeLease l = OZONE__OM__OM_UPGRADE_LEASE__INIT;

    (void)state;
    cJSON *up = parse(recon_json_upgrade(r, NOW));
    const cJSON *ru = cJSON_GetObjectItem(up, "rollingUpgrade");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(ru, "available")));
    assert_string_equal(str(ru, "state"), "UNKNOWN");
    cJSON_Delete(up);

    /* 60 entries: run BEGIN, then steps; the last 50 are kept. */
    for (size_t i = 0; i < 60; i++) {
        ozone__om__om_upgrade_journal_entry__init(&e[i]);
        e[i].seq = i + 1;
        e[i].time_ms = (uint64_t)NOW + i;
        e[i].run_id = "R-7";
        e[i].step = i == 0 ? 0 : (uint32_t)(i + 1) / 2;
        e[i].steps = 30;
        e[i].node = i == 0 ? "" : "dn1";
        e[i].kind = i == 0 ? "" : "DATANODE";
        e[i].action = i == 0 ? "run" : "stop";
        e[i].status = i == 0 ? "BEGIN" : "OK";
        e[i].to_bin = i == 0 ? "/opt/new" : "";
        e[i].backend = "local";
        p[i] = &e[i];
    }
    l.holder = "host:1:ab";
    l.host = "host";
    l.pid = 1;
    l.run_id = "R-7";
    l.expires_ms = (uint64_t)NOW + 10000;
    v.entries = p;
    v.n_entries = 60;
    v.lease = &l;
    v.now_ms = (uint64_t)NOW;
    recon_observe_rolling(r,
                          recon_json_rolling(&v, "127.0.0.1:9862", NULL, NOW),
                          "R-7", "RUNNING", 30, 30, "dn1", NOW);
    /* The same again: no second journal line. */
    recon_observe_rolling(r,
                          recon_json_rolling(&v, "127.0.0.1:9862", NULL, NOW),
                          "R-7", "RUNNING", 30, 30, "dn1", NOW + 1);
    up = parse(recon_json_upgrade(r, NOW + 5000));
    ru = cJSON_GetObjectItem(up, "rollingUpgrade");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(ru, "available")));
    assert_string_equal(str(ru, "runId"), "R-7");
    assert_string_equal(str(ru, "state"), "RUNNING");
    assert_int_equal((int)num(ru, "step"), 30);
    assert_int_equal((int)num(ru, "steps"), 30);
    assert_string_equal(str(ru, "node"), "dn1");
    assert_string_equal(str(ru, "toBin"), "/opt/new");
    assert_string_equal(str(ru, "source"), "127.0.0.1:9862");
    const cJSON *entries = cJSON_GetObjectItem(ru, "entries");
    assert_int_equal(cJSON_GetArraySize(entries), RECON_ROLLING_ENTRIES);
    assert_int_equal((int)num(cJSON_GetArrayItem(entries, 0), "seq"), 11);
    const cJSON *lease = cJSON_GetObjectItem(ru, "lease");
    assert_string_equal(str(lease, "holder"), "host:1:ab");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(lease, "expired")));
    assert_int_equal((int)num(lease, "expiresInMs"), 5000);
    int n = 0;
    const cJSON *j;
    cJSON_ArrayForEach(j, cJSON_GetObjectItem(up, "journal"))
    {
        n += strcmp(str(j, "component"), "ORCHESTRATOR") == 0;
    }
    assert_int_equal(n, 1);
    assert_true(journal_has(up, "R-7",
                            "rolling upgrade RUNNING at step "
                            "30/30 dn1"));
    cJSON_Delete(up);
    /* Later the lease has run out: judged when rendered. */
    up = parse(recon_json_upgrade(r, NOW + 20000));
    lease =
        cJSON_GetObjectItem(cJSON_GetObjectItem(up, "rollingUpgrade"), "lease");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(lease, "expired")));
    cJSON_Delete(up);

    /* An OM without the journal. */
    recon_observe_rolling(r, recon_json_rolling(NULL, NULL, "older OM", NOW),
                          "", "", 0, 0, "", NOW);
    up = parse(recon_json_upgrade(r, NOW));
    ru = cJSON_GetObjectItem(up, "rollingUpgrade");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(ru, "available")));
    assert_string_equal(str(ru, "reason"), "older OM");
    cJSON_Delete(up);
    recon_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_mode),
        cmocka_unit_test(test_full_reason),
        cmocka_unit_test(test_om_nodes),
        cmocka_unit_test(test_roles_verdict),
        cmocka_unit_test(test_health_and_cluster_state),
        cmocka_unit_test(test_containers_paging_and_pipelines),
        cmocka_unit_test(test_upgrade_and_journal),
        cmocka_unit_test(test_finalization_requested_by),
        cmocka_unit_test(test_rolling_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
