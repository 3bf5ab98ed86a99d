/* Unit tests for common/metrics.c: exposition format, lock-free counters,
 * fn gauges, reset. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "metrics.h"

static int teardown(void **state)
{
    (void)state;
    metrics_reset();
    return 0;
}

static char *render(void)
{
    char *out = NULL;
    size_t len = 0;

    assert_int_equal(metrics_render(&out, &len), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

static void test_render_format(void **state)
{
    struct metric *a;
    struct metric *b;
    struct metric *c;
    struct metric *g;
    char *out;

    (void)state;
    a = metrics_get("ozone_rpc_calls_total", "method=\"GetVersion\"",
                    METRIC_COUNTER, "RPC calls");
    b = metrics_get("ozone_rpc_calls_total", "method=\"CreateKey\"",
                    METRIC_COUNTER, "RPC calls");
    g = metrics_get("ozone_software_version", "", METRIC_GAUGE,
                    "software layout version");
    c = metrics_get("ozone_rpc_calls_total", "method=\"GetVersion\"",
                    METRIC_COUNTER, "RPC calls");
    assert_ptr_equal(a, c); /* same name and labels: same series */
    assert_ptr_not_equal(a, b);

    metrics_add(a, 3);
    metrics_add(b, 1);
    metrics_add(c, 2);
    metrics_set(g, 105);
    assert_true(metrics_value(a) == 5.0);
    assert_true(metrics_value(g) == 105.0);

    out = render();
    assert_string_equal(out,
                        "# HELP ozone_rpc_calls_total RPC calls\n"
                        "# TYPE ozone_rpc_calls_total counter\n"
                        "ozone_rpc_calls_total{method=\"GetVersion\"} 5\n"
                        "ozone_rpc_calls_total{method=\"CreateKey\"} 1\n"
                        "# HELP ozone_software_version software layout "
                        "version\n"
                        "# TYPE ozone_software_version gauge\n"
                        "ozone_software_version 105\n");
    free(out);
}

static const struct value_case
{
    double v;
    const char *text;
} value_cases[] = {
    {0, "0"},
    {1, "1"},
    {-7, "-7"},
    {1e15, "1000000000000000"},
    {9007199254740993.0, "9007199254740992"}, /* 2^53 + 1 rounds */
    {0.5, "0.5"},
    {0.1, "0.1"},
    {1.0 / 3.0, "0.33333333333333331"},
    {1e300, "1e+300"},
    {-2.5e-7, "-2.5e-07"},
};

static void test_value_format(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++) {
        char line[128];
        char *out;

        metrics_reset();
        metrics_set(metrics_get("v", "", METRIC_GAUGE, "h"), value_cases[i].v);
        out = render();
        snprintf(line, sizeof(line), "\nv %s\n", value_cases[i].text);
        if (strstr(out, line) == NULL) {
            fail_msg("case %zu: expected '%s' in:\n%s", i, value_cases[i].text,
                     out);
        }
        free(out);
    }
}

static void test_help_escaped(void **state)
{
    char *out;

    (void)state;
    metrics_get("x_total", "", METRIC_COUNTER, "line one\nback\\slash");
    out = render();
    assert_non_null(strstr(out, "# HELP x_total line one\\nback\\\\slash\n"));
    free(out);
}

#define ADDERS 4
#define ADDS_PER_THREAD 100000

static void *adder(void *arg)
{
    struct metric *m = arg;

    for (int i = 0; i < ADDS_PER_THREAD; i++) {
        metrics_add(m, 1);
    }
    return NULL;
}

static void test_concurrent_adds(void **state)
{
    pthread_t th[ADDERS];
    struct metric *m;

    (void)state;
    m = metrics_get("ozone_test_total", "", METRIC_COUNTER, "test");
    for (int i = 0; i < ADDERS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, adder, m), 0);
    }
    for (int i = 0; i < ADDERS; i++) {
        pthread_join(th[i], NULL);
    }
    assert_true(metrics_value(m) == (double)ADDERS * ADDS_PER_THREAD);
}

static double fn_value(void *ctx)
{
    int *calls = ctx;
    (*calls)++;
    return 42.5 + *calls;
}

static void test_fn_gauge(void **state)
{
    int calls = 0;
    char *out;

    (void)state;
    metrics_register_fn("ozone_dn_healthy", "state=\"healthy\"", "DNs",
                        fn_value, &calls);
    assert_int_equal(calls, 0); /* not evaluated at registration */
    out = render();
    assert_int_equal(calls, 1);
    assert_non_null(strstr(out, "# TYPE ozone_dn_healthy gauge\n"));
    assert_non_null(strstr(out, "ozone_dn_healthy{state=\"healthy\"} 43.5\n"));
    free(out);
    out = render();
    assert_non_null(strstr(out, "ozone_dn_healthy{state=\"healthy\"} 44.5\n"));
    free(out);
}

static void test_histogram(void **state)
{
    struct metric *h =
        metrics_get("lat_seconds", "m=\"x\"", METRIC_HISTOGRAM, "latency");
    char *out;

    (void)state;
    metrics_observe(h, 0.0002); /* le 0.0005 */
    metrics_observe(h, 0.0005); /* le 0.0005: bounds are inclusive */
    metrics_observe(h, 0.003);  /* le 0.005 */
    metrics_observe(h, 42);     /* +Inf only */
    out = render();
    assert_non_null(strstr(out, "# TYPE lat_seconds histogram\n"));
    assert_non_null(
        strstr(out, "lat_seconds_bucket{m=\"x\",le=\"0.0005\"} 2\n"));
    assert_non_null(
        strstr(out, "lat_seconds_bucket{m=\"x\",le=\"0.0025\"} 2\n"));
    assert_non_null(
        strstr(out, "lat_seconds_bucket{m=\"x\",le=\"0.005\"} 3\n"));
    assert_non_null(strstr(out, "lat_seconds_bucket{m=\"x\",le=\"10\"} 3\n"));
    assert_non_null(strstr(out, "lat_seconds_bucket{m=\"x\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(out, "lat_seconds_sum{m=\"x\"} 42.0037\n"));
    assert_non_null(strstr(out, "lat_seconds_count{m=\"x\"} 4\n"));
    free(out);
}

static void test_reset(void **state)
{
    struct metric *m;
    char *out;

    (void)state;
    m = metrics_get("a_total", "", METRIC_COUNTER, "a");
    metrics_add(m, 10);
    metrics_reset();
    out = render();
    assert_string_equal(out, "");
    free(out);
    m = metrics_get("a_total", "", METRIC_COUNTER, "a");
    assert_true(metrics_value(m) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_render_format, teardown),
        cmocka_unit_test_teardown(test_value_format, teardown),
        cmocka_unit_test_teardown(test_help_escaped, teardown),
        cmocka_unit_test_teardown(test_concurrent_adds, teardown),
        cmocka_unit_test_teardown(test_fn_gauge, teardown),
        cmocka_unit_test_teardown(test_histogram, teardown),
        cmocka_unit_test_teardown(test_reset, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
