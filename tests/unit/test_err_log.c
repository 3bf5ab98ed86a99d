/* Unit tests for common/err.c and common/log.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

/* ---- err ---- */

static const struct strerror_case
{
    int rc;
    const char *text;
} strerror_cases[] = {
#define ERR_CASE(name, value, text) {name, text},
    OZ_ERRORS(ERR_CASE)
#undef ERR_CASE
        {0, "ok"},
    {1, "unknown error"},
    {-1000, "unknown error"},
};

static void test_strerror_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(strerror_cases) / sizeof(strerror_cases[0]);
         i++) {
        const char *got = oz_strerror(strerror_cases[i].rc);
        if (strcmp(got, strerror_cases[i].text) != 0) {
            fail_msg("case %zu: rc %d gave '%s', want '%s'", i,
                     strerror_cases[i].rc, got, strerror_cases[i].text);
        }
    }
    /* Codes are distinct and negative. */
    static const int codes[] = {
#define ERR_CODE(name, value, text) name,
        OZ_ERRORS(ERR_CODE)
#undef ERR_CODE
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_true(codes[i] < 0);
        for (size_t j = i + 1; j < sizeof(codes) / sizeof(codes[0]); j++) {
            assert_int_not_equal(codes[i], codes[j]);
        }
    }
}

static void test_errmsg_wrap_chain(void **state)
{
    char buf[OZ_ERRMSG_SIZE];

    (void)state;
    oz_errmsg_printf(buf, "datanode '%s' runs software version %d, needs %d",
                     "dn3", 100, 105);
    oz_errmsg_wrapf(buf, "finalize refused");
    assert_string_equal(buf,
                        "finalize refused: datanode 'dn3' runs software "
                        "version 100, needs 105");
    oz_errmsg_wrapf(buf, "cannot finalize '%s'", "om1");
    assert_string_equal(buf,
                        "cannot finalize 'om1': finalize refused: datanode "
                        "'dn3' runs software version 100, needs 105");

    /* Wrapping an empty message gives the prefix alone. */
    buf[0] = '\0';
    oz_errmsg_wrapf(buf, "outer %d", 1);
    assert_string_equal(buf, "outer 1");
}

static void test_errmsg_truncation(void **state)
{
    char buf[OZ_ERRMSG_SIZE + 16];
    char big[600];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memset(buf, 'G', sizeof(buf)); /* guard bytes after OZ_ERRMSG_SIZE */

    oz_errmsg_printf(buf, "%s", big);
    assert_int_equal(strlen(buf), OZ_ERRMSG_SIZE - 1);
    assert_int_equal(buf[OZ_ERRMSG_SIZE], 'G');

    oz_errmsg_wrapf(buf, "prefix");
    assert_int_equal(strlen(buf), OZ_ERRMSG_SIZE - 1);
    assert_memory_equal(buf, "prefix: xxx", 11);
    assert_int_equal(buf[OZ_ERRMSG_SIZE], 'G');

    oz_errmsg_printf(buf, "short");
    oz_errmsg_wrapf(buf, "%s", big); /* prefix alone overflows */
    assert_int_equal(strlen(buf), OZ_ERRMSG_SIZE - 1);
    assert_int_equal(buf[OZ_ERRMSG_SIZE], 'G');
}

static const struct strlcpy_case
{
    const char *src;
    size_t dst_size;
    const char *want;
} strlcpy_cases[] = {
    {"hello", 16, "hello"}, {"hello", 6, "hello"}, {"hello", 5, "hell"},
    {"hello", 1, ""},       {"", 4, ""},
};

static void test_strlcpy(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(strlcpy_cases) / sizeof(strlcpy_cases[0]);
         i++) {
        const struct strlcpy_case *c = &strlcpy_cases[i];
        char dst[32];
        size_t n;

        memset(dst, 'Z', sizeof(dst));
        n = oz_strlcpy(dst, c->src, c->dst_size);
        if (n != strlen(c->src) || strcmp(dst, c->want) != 0 ||
            dst[c->dst_size] != 'Z') {
            fail_msg("case %zu: got '%s' (%zu)", i, dst, n);
        }
    }
}

/* ---- log ---- */

struct tmp
{
    char dir[64];
    char path[128];
    char rotated[128];
};

static int log_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    snprintf(t->dir, sizeof(t->dir), "/tmp/oz_test_log.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/om.log", t->dir);
    snprintf(t->rotated, sizeof(t->rotated), "%s/om.log.1", t->dir);
    *state = t;
    return 0;
}

static int log_teardown(void **state)
{
    struct tmp *t = *state;

    log_close();
    log_init("ozone", NULL, NULL, LOG_LEVEL_INFO);
    unlink(t->path);
    unlink(t->rotated);
    rmdir(t->dir);
    free(t);
    return 0;
}

/* Reads a whole (small) file; caller frees. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    assert_non_null(f);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;

    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    if (regexec(&re, text, 0, NULL, 0) != 0) {
        regfree(&re);
        fail_msg("'%s' does not match /%s/", text, pattern);
    }
    regfree(&re);
}

#define TS "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "

static void test_log_line_format(void **state)
{
    struct tmp *t = *state;
    char *text;

    assert_int_equal(log_init("om", "om1", t->path, LOG_LEVEL_INFO), 0);
    log_info("started: software %d, apparent %d", 100, 100);
    log_close();
    text = slurp(t->path);
    assert_matches(text, TS
                   "INFO  om\\[om1\\] started: software 100, "
                   "apparent 100\n$");
    free(text);
}

static void test_log_node_id(void **state)
{
    struct tmp *t = *state;
    char *text;

    assert_int_equal(log_init("scm", NULL, t->path, LOG_LEVEL_DEBUG), 0);
    log_debug("no node yet");
    log_set_node_id("scm2");
    log_error("boom");
    log_close();
    text = slurp(t->path);
    assert_matches(text, TS
                   "DEBUG scm no node yet\n"
                   "[0-9T:.Z-]+ ERROR scm\\[scm2\\] boom\n$");
    free(text);
}

static void test_log_folds_newlines(void **state)
{
    struct tmp *t = *state;
    char *text;

    assert_int_equal(log_init("dn", "dn1", t->path, LOG_LEVEL_INFO), 0);
    log_warn("first\nsecond\r\nthird");
    log_close();
    text = slurp(t->path);
    assert_matches(text, TS "WARN  dn\\[dn1\\] first second  third\n$");
    free(text);
}

static const struct filter_case
{
    enum log_level min;
    const char *want; /* levels written, in order */
} filter_cases[] = {
    {LOG_LEVEL_DEBUG, "DEBUG,INFO,WARN,ERROR,"},
    {LOG_LEVEL_INFO, "INFO,WARN,ERROR,"},
    {LOG_LEVEL_WARN, "WARN,ERROR,"},
    {LOG_LEVEL_ERROR, "ERROR,"},
};

static void test_log_level_filter(void **state)
{
    struct tmp *t = *state;

    for (size_t i = 0; i < sizeof(filter_cases) / sizeof(filter_cases[0]);
         i++) {
        char got[64] = "";
        char *text;
        char *line;
        char *save = NULL;

        unlink(t->path);
        assert_int_equal(log_init("om", "om1", t->path, filter_cases[i].min),
                         0);
        log_debug("m");
        log_info("m");
        log_warn("m");
        log_error("m");
        log_close();
        text = slurp(t->path);
        for (line = strtok_r(text, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            char level[8] = "";
            const char *sp = strchr(line, ' ');
            assert_non_null(sp);
            sscanf(sp + 1, "%7s", level);
            size_t used = strlen(got);
            snprintf(got + used, sizeof(got) - used, "%s,", level);
        }
        if (strcmp(got, filter_cases[i].want) != 0) {
            fail_msg("case %zu: wrote %s, want %s", i, got,
                     filter_cases[i].want);
        }
        free(text);
    }
}

/* SIGHUP rotation: logrotate renames the file, then the daemon reopens. */
static void test_log_reopen_after_rename(void **state)
{
    struct tmp *t = *state;
    char *old;
    char *cur;

    assert_int_equal(log_init("om", "om1", t->path, LOG_LEVEL_INFO), 0);
    log_info("before rotation");
    assert_int_equal(rename(t->path, t->rotated), 0);
    log_info("still old file");
    assert_int_equal(log_reopen(), 0);
    log_info("after rotation");
    log_close();

    old = slurp(t->rotated);
    cur = slurp(t->path);
    assert_non_null(strstr(old, "before rotation\n"));
    assert_non_null(strstr(old, "still old file\n"));
    assert_null(strstr(old, "after rotation"));
    assert_matches(cur, TS "INFO  om\\[om1\\] after rotation\n$");
    free(old);
    free(cur);
}

static void test_log_init_unwritable(void **state)
{
    struct tmp *t = *state;
    char bad[192];

    snprintf(bad, sizeof(bad), "%s/no/such/dir/x.log", t->dir);
    assert_int_equal(log_init("om", "om1", bad, LOG_LEVEL_INFO), OZ_EIO);
    /* Reopen with no file open is a no-op. */
    assert_int_equal(log_reopen(), 0);
}

static void test_log_close_stops_file(void **state)
{
    struct tmp *t = *state;
    char *text;

    assert_int_equal(log_init("om", "om1", t->path, LOG_LEVEL_INFO), 0);
    log_info("in file");
    log_close();
    log_info("to stderr after close");
    text = slurp(t->path);
    assert_non_null(strstr(text, "in file"));
    assert_null(strstr(text, "after close"));
    free(text);
}

static const struct level_case
{
    const char *text;
    int rc;
    enum log_level level;
} level_cases[] = {
    {"DEBUG", 0, LOG_LEVEL_DEBUG},        {"info", 0, LOG_LEVEL_INFO},
    {"Warn", 0, LOG_LEVEL_WARN},          {"WARNING", 0, LOG_LEVEL_WARN},
    {"error", 0, LOG_LEVEL_ERROR},        {"", OZ_EINVAL, LOG_LEVEL_INFO},
    {"TRACE", OZ_EINVAL, LOG_LEVEL_INFO}, {"INFO ", OZ_EINVAL, LOG_LEVEL_INFO},
};

static void test_log_parse_level(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(level_cases) / sizeof(level_cases[0]); i++) {
        enum log_level lvl = LOG_LEVEL_INFO;
        int rc = log_parse_level(level_cases[i].text, &lvl);
        if (rc != level_cases[i].rc ||
            (rc == 0 && lvl != level_cases[i].level)) {
            fail_msg("case %zu ('%s'): rc %d level %d", i, level_cases[i].text,
                     rc, (int)lvl);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_table),
        cmocka_unit_test(test_errmsg_wrap_chain),
        cmocka_unit_test(test_errmsg_truncation),
        cmocka_unit_test(test_strlcpy),
        cmocka_unit_test_setup_teardown(test_log_line_format, log_setup,
                                        log_teardown),
        cmocka_unit_test_setup_teardown(test_log_node_id, log_setup,
                                        log_teardown),
        cmocka_unit_test_setup_teardown(test_log_folds_newlines, log_setup,
                                        log_teardown),
        cmocka_unit_test_setup_teardown(test_log_level_filter, log_setup,
                                        log_teardown),
        cmocka_unit_test_setup_teardown(test_log_reopen_after_rename, log_setup,
                                        log_teardown),
        cmocka_unit_test_setup_teardown(test_log_init_unwritable, log_setup,
                                        log_teardown),
        cmocka_unit_test_setup_teardown(test_log_close_stops_file, log_setup,
                                        log_teardown),
        cmocka_unit_test(test_log_parse_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
