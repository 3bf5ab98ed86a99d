/* Unit tests of the client library's set-up (common/client.h): settings
 * read from configuration, OM address resolution (single OM, service ids,
 * o3:// hosts, wildcards) and error reporting. The data path itself is
 * exercised against real daemons in tests/integration/test_datapath.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client.h"
#include "conf.h"
#include "err.h"

static const struct rpc_identity identity = {
    .component = OZONE__COMPONENT__CLIENT,
    .node_id = "test-client",
    .cluster_id = "",
    .software_version = 100,
    .apparent_version = 100,
};

static struct conf *conf_of(const char *const *kv)
{
    struct conf *c = conf_new();
    char errmsg[OZ_ERRMSG_SIZE];

    assert_non_null(c);
    /* Unreachable OMs answer at once (connection refused) and quickly;
     * no waiting for a restarting OM here. */
    assert_int_equal(conf_set(c, "ozone.rpc.timeout", "2s"), 0);
    assert_int_equal(conf_set(c, "ozone.client.om.wait.timeout", "0s"), 0);
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i++) {
        assert_int_equal(conf_set_override(c, kv[i], errmsg), 0);
    }
    return c;
}

static void test_parse_replication(void **state)
{
    static const struct
    {
        const char *text;
        int rc;
        Ozone__Hdds__ReplicationFactor f;
    } cases[] = {
        {"ONE", 0, OZONE__HDDS__REPLICATION_FACTOR__ONE},
        {"one", 0, OZONE__HDDS__REPLICATION_FACTOR__ONE},
        {"1", 0, OZONE__HDDS__REPLICATION_FACTOR__ONE},
        {"THREE", 0, OZONE__HDDS__REPLICATION_FACTOR__THREE},
        {"Three", 0, OZONE__HDDS__REPLICATION_FACTOR__THREE},
        {"3", 0, OZONE__HDDS__REPLICATION_FACTOR__THREE},
        {"TWO", OZ_EINVAL, 0},
        {"", OZ_EINVAL, 0},
        {"RATIS", OZ_EINVAL, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Ozone__Hdds__ReplicationFactor f = 0;
        int rc = oz_parse_replication(cases[i].text, &f);
        if (rc != cases[i].rc || (rc == 0 && f != cases[i].f)) {
            fail_msg("case %zu '%s': rc %d factor %d", i, cases[i].text, rc,
                     (int)f);
        }
    }
    assert_string_equal(oz_replication_name(3), "THREE");
    assert_string_equal(oz_result_name(OZONE__RESULT_CODE__VOLUME_NOT_FOUND),
                        "VOLUME_NOT_FOUND");
    assert_string_equal(oz_result_name((Ozone__ResultCode)9999),
                        "UNKNOWN_RESULT");
}

static void test_settings(void **state)
{
    static const char *const sizes[] = {"ozone.scm.chunk.size=256KB",
                                        "ozone.replication=ONE", NULL};
    struct conf *conf = conf_of(sizes);
    struct oz_client *c = NULL;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    (void)state;
    assert_int_equal(oz_client_new(&c, conf, NULL, &identity, errmsg), 0);
    assert_int_equal(oz_client_chunk_size(c), 256 * 1024);
    assert_int_equal(oz_client_default_replication(c),
                     OZONE__HDDS__REPLICATION_FACTOR__ONE);
    oz_client_free(c);
    conf_free(conf);

    conf = conf_of(NULL);
    assert_int_equal(oz_client_new(&c, conf, NULL, &identity, errmsg), 0);
    assert_int_equal(oz_client_chunk_size(c), 4 * 1024 * 1024);
    assert_int_equal(oz_client_default_replication(c),
                     OZONE__HDDS__REPLICATION_FACTOR__THREE);
    oz_client_free(c);
    conf_free(conf);
}

static void test_bad_settings(void **state)
{
    static const struct
    {
        const char *kv[3];
        const char *target;
        const char *text; /* in errmsg */
    } cases[] = {
        {{"ozone.scm.chunk.size=0"}, NULL, "'ozone.scm.chunk.size'"},
        {{"ozone.scm.chunk.size=64MB"}, NULL, "'ozone.scm.chunk.size'"},
        {{"ozone.scm.chunk.size=lots"}, NULL, "ozone.scm.chunk.size"},
        {{"ozone.replication=TWO"}, NULL, "'ozone.replication'"},
        {{"ozone.rpc.max.message.size=1KB"},
         NULL,
         "'ozone.rpc.max.message.size'"},
        {{"ozone.om.service.ids=svc"}, NULL, "OM service 'svc' has no node"},
        {{"ozone.om.service.ids=svc", "ozone.om.nodes.svc=a,b"},
         "svc",
         "ozone.om.address.svc.<node>"},
        {{NULL}, "nosuchservice", "unknown OM service id 'nosuchservice'"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf *conf = conf_of(cases[i].kv);
        struct oz_client *c = NULL;
        char errmsg[OZ_ERRMSG_SIZE] = "";
        int rc = oz_client_new(&c, conf, cases[i].target, &identity, errmsg);
        if (rc != OZ_ECONFIG || c != NULL ||
            strstr(errmsg, cases[i].text) == NULL) {
            fail_msg("case %zu: rc %d, message '%s'", i, rc, errmsg);
        }
        conf_free(conf);
    }
}

/* The OM a client talks to shows in the error of an unreachable one. */
static void test_om_addresses(void **state)
{
    static const struct
    {
        const char *kv[5];
        const char *target;
        const char *addr; /* expected in the error message */
    } cases[] = {
        {{"ozone.om.address=127.0.0.1:1"}, NULL, "'127.0.0.1:1'"},
        {{"ozone.om.address=0.0.0.0:1"}, NULL, "'127.0.0.1:1'"},
        {{"ozone.om.address=127.0.0.1:1"}, "127.0.0.1:2", "'127.0.0.1:2'"},
        {{"ozone.om.address=127.0.0.1:1"}, "127.0.0.1", "'127.0.0.1:9862'"},
        {{"ozone.om.service.ids=svc", "ozone.om.nodes.svc=a",
          "ozone.om.address.svc.a=127.0.0.1:3"},
         NULL,
         "'127.0.0.1:3'"},
        {{"ozone.om.service.ids=other,svc", "ozone.om.nodes.svc=x",
          "ozone.om.address.svc.x=127.0.0.1:4", "ozone.om.nodes.other=y"},
         "svc",
         "'127.0.0.1:4'"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf *conf = conf_of(cases[i].kv);
        struct oz_client *c = NULL;
        Ozone__Om__VolumeInfo *v = NULL;
        struct oz_error err;
        char errmsg[OZ_ERRMSG_SIZE] = "";
        int rc;

        if (oz_client_new(&c, conf, cases[i].target, &identity, errmsg) != 0) {
            fail_msg("case %zu: %s", i, errmsg);
        }
        memset(&err, 0, sizeof(err));
        rc = oz_volume_info(c, "vol1", &v, &err);
        if (rc != OZ_EUNAVAILABLE || v != NULL ||
            err.code != OZONE__RESULT_CODE__UNAVAILABLE ||
            strstr(err.message, cases[i].addr) == NULL) {
            fail_msg("case %zu: rc %d code %s message '%s'", i, rc,
                     oz_result_name(err.code), err.message);
        }
        oz_client_free(c);
        conf_free(conf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_replication),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_om_addresses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
