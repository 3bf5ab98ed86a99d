/* Unit tests for props (VERSION file format) and fault injection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "fault.h"
#include "props.h"
#include "test_tmpdir.h"

/* ---- helpers ---- */

static int setup_tmp(void **state)
{
    char *dir = strdup("/tmp/oz-props-XXXXXX");
    if (dir == NULL || mkdtemp(dir) == NULL) {
        free(dir);
        return -1;
    }
    *state = dir;
    fault_clear_all();
    return 0;
}

static int teardown_tmp(void **state)
{
    char *dir = *state;
    test_tmpdir_remove(dir);
    free(dir);
    fault_clear_all();
    return 0;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static size_t read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    assert_non_null(f);
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n;
}

static size_t count_entries(const char *dir)
{
    char cmd[512];
    FILE *p;
    size_t n = 0;
    int c;

    snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    while ((c = fgetc(p)) != EOF) {
        n += c == '\n';
    }
    pclose(p);
    return n;
}

/* ---- props: parsing ---- */

struct parse_case
{
    const char *input;
    int rc;
    const char *key; /* checked when rc == 0 and key != NULL */
    const char *value;
    size_t n;        /* number of entries when rc == 0 */
    const char *msg; /* exact message when rc != 0 */
};

static const struct parse_case parse_cases[] = {
    {"", 0, NULL, NULL, 0, NULL},
    {"\n\n   \n", 0, NULL, NULL, 0, NULL},
    {"# comment\n! other comment\nk=v\n", 0, "k", "v", 1, NULL},
    {"k=v", 0, "k", "v", 1, NULL},
    {"k:v\r\n", 0, "k", "v", 1, NULL},
    {"  k  =  v w  \n", 0, "k", "v w  ", 1, NULL},
    {"k = v\rj = w\r", 0, "j", "w", 2, NULL},
    {"k=\n", 0, "k", "", 1, NULL},
    {"k=a=b:c\n", 0, "k", "a=b:c", 1, NULL},
    {"k=a\\=b\\:c\\\\d\\n\\t\\r\\#\\!\\ \n", 0, "k", "a=b:c\\d\n\t\r#! ", 1,
     NULL},
    {"a\\ b\\=c=1\n", 0, "a b=c", "1", 1, NULL},
    {"k=\\ lead\n", 0, "k", " lead", 1, NULL},
    {"nodeType=OM\nclusterID=CID-1\ncTime=1700000000000\nlayoutVersion=100\n",
     0, "layoutVersion", "100", 4, NULL},
    {"novalue\n", OZ_ECORRUPT, NULL, NULL, 0,
     "line 1: expected key=value, found no '='"},
    {"a=1\nb=2\njunk here\n", OZ_ECORRUPT, NULL, NULL, 0,
     "line 3: expected key=value, found no '='"},
    {"=v\n", OZ_ECORRUPT, NULL, NULL, 0, "line 1: empty key"},
    {"a=1\r\n  : v\r\n", OZ_ECORRUPT, NULL, NULL, 0, "line 2: empty key"},
    {"k=v\\\n", OZ_ECORRUPT, NULL, NULL, 0,
     "line 1: backslash at end of value"},
    {"k\\", OZ_ECORRUPT, NULL, NULL, 0, "line 1: backslash at end of key"},
    {"k=\\x\n", OZ_ECORRUPT, NULL, NULL, 0,
     "line 1: unknown escape '\\x' in value"},
    {"\\q=1\n", OZ_ECORRUPT, NULL, NULL, 0,
     "line 1: unknown escape '\\q' in key"},
    {"a=1\na=2\n", OZ_ECORRUPT, NULL, NULL, 0, "line 2: duplicate key 'a'"},
};

static void test_props_parse_table(void **state)
{
    (void)state;
    struct props *p = malloc(sizeof(*p));
    assert_non_null(p);
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        char errmsg[OZ_ERRMSG_SIZE] = "";
        int rc = props_parse(p, c->input, strlen(c->input), errmsg);
        if (rc != c->rc) {
            fail_msg("row %zu: rc %d, want %d (%s)", i, rc, c->rc, errmsg);
        }
        if (rc == 0) {
            if (p->n != c->n) {
                fail_msg("row %zu: %zu entries, want %zu", i, p->n, c->n);
            }
            if (c->key != NULL) {
                const char *v = props_get(p, c->key);
                if (v == NULL || strcmp(v, c->value) != 0) {
                    fail_msg("row %zu: %s='%s', want '%s'", i, c->key,
                             v != NULL ? v : "(absent)", c->value);
                }
            }
        } else {
            if (strcmp(errmsg, c->msg) != 0) {
                fail_msg("row %zu: message '%s', want '%s'", i, errmsg, c->msg);
            }
            if (p->n != 0) {
                fail_msg("row %zu: entries left after a failed parse", i);
            }
        }
    }
    free(p);
}

static void test_props_parse_nul_and_caps(void **state)
{
    (void)state;
    struct props *p = malloc(sizeof(*p));
    char errmsg[OZ_ERRMSG_SIZE];
    char *buf = malloc(PROPS_MAX_FILE + 16);
    size_t pos;

    assert_non_null(p);
    assert_non_null(buf);

    /* NUL byte, counted line. */
    assert_int_equal(props_parse(p, "a=1\nb=\0\n", 8, errmsg), OZ_ECORRUPT);
    assert_string_equal(errmsg, "line 2: NUL byte");

    /* Longest key fits, one more does not. */
    memset(buf, 'k', PROPS_MAX_KEY - 1);
    memcpy(buf + PROPS_MAX_KEY - 1, "=v", 2);
    assert_int_equal(props_parse(p, buf, PROPS_MAX_KEY + 1, errmsg), 0);
    memset(buf, 'k', PROPS_MAX_KEY);
    memcpy(buf + PROPS_MAX_KEY, "=v", 2);
    assert_int_equal(props_parse(p, buf, PROPS_MAX_KEY + 2, errmsg),
                     OZ_ECORRUPT);
    assert_string_equal(errmsg, "line 1: key longer than 127 bytes");

    /* Longest value fits, one more does not. */
    memcpy(buf, "k=", 2);
    memset(buf + 2, 'v', PROPS_MAX_VALUE - 1);
    assert_int_equal(props_parse(p, buf, PROPS_MAX_VALUE + 1, errmsg), 0);
    assert_int_equal(strlen(props_get(p, "k")), PROPS_MAX_VALUE - 1);
    memset(buf + 2, 'v', PROPS_MAX_VALUE);
    assert_int_equal(props_parse(p, buf, PROPS_MAX_VALUE + 2, errmsg),
                     OZ_ECORRUPT);
    assert_string_equal(errmsg, "line 1: value longer than 1023 bytes");

    /* Entry count cap. */
    pos = 0;
    for (int i = 0; i < PROPS_MAX_ENTRIES; i++) {
        pos += (size_t)sprintf(buf + pos, "k%d=%d\n", i, i);
    }
    assert_int_equal(props_parse(p, buf, pos, errmsg), 0);
    assert_int_equal(p->n, PROPS_MAX_ENTRIES);
    pos += (size_t)sprintf(buf + pos, "extra=1\n");
    assert_int_equal(props_parse(p, buf, pos, errmsg), OZ_ECORRUPT);
    assert_string_equal(errmsg, "line 65: more than 64 entries");

    /* File size cap: comments only, so only the size is wrong. */
    memset(buf, '#', PROPS_MAX_FILE + 1);
    assert_int_equal(props_parse(p, buf, PROPS_MAX_FILE, errmsg), 0);
    assert_int_equal(props_parse(p, buf, PROPS_MAX_FILE + 1, errmsg),
                     OZ_ECORRUPT);
    assert_string_equal(errmsg,
                        "file is 65537 bytes, more than the 65536-byte limit");
    free(buf);
    free(p);
}

static void test_props_set_get(void **state)
{
    (void)state;
    struct props *p = malloc(sizeof(*p));
    char big[PROPS_MAX_VALUE + 1];
    char key[32];

    assert_non_null(p);
    props_init(p);
    assert_null(props_get(p, "a"));
    assert_int_equal(props_set(p, "a", "1"), 0);
    assert_int_equal(props_set(p, "a", "2"), 0);
    assert_int_equal(p->n, 1);
    assert_string_equal(props_get(p, "a"), "2");
    assert_int_equal(props_set(p, "", "x"), OZ_ETOOBIG);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(props_set(p, "a", big), OZ_ETOOBIG);
    assert_int_equal(props_set(p, big + (PROPS_MAX_VALUE - PROPS_MAX_KEY), "v"),
                     OZ_ETOOBIG);
    for (int i = 1; i < PROPS_MAX_ENTRIES; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(props_set(p, key, "v"), 0);
    }
    assert_int_equal(props_set(p, "one-too-many", "v"), OZ_ETOOBIG);
    assert_int_equal(props_set(p, "a", "replace-still-works"), 0);
    free(p);
}

/* ---- props: files ---- */

static void test_props_save_load_round_trip(void **state)
{
    const char *dir = *state;
    struct props *p = malloc(sizeof(*p));
    struct props *q = malloc(sizeof(*q));
    static const char *const kv[][2] = {
        {"nodeType", "OM"},
        {"clusterID", "CID-0b1c2d3e"},
        {"plain", "a b c"},
        {"escapes", "back\\slash=eq:colon"},
        {"lines", "one\ntwo\r\nthree\tTab"},
        {"lead", "  two leading spaces"},
        {"trail", "trailing  "},
        {"hash", "#not a comment"},
        {"key with spaces", "v"},
        {"#hashkey", "v"},
        {"k=eq:colon", "v"},
        {"empty", ""},
        {"utf8", "h\xc3\xa9llo"},
    };
    const size_t n = sizeof(kv) / sizeof(kv[0]);
    char path[512];
    char errmsg[OZ_ERRMSG_SIZE];
    char text[4096];

    assert_non_null(p);
    assert_non_null(q);
    props_init(p);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(props_set(p, kv[i][0], kv[i][1]), 0);
    }
    snprintf(path, sizeof(path), "%s/VERSION", dir);
    assert_int_equal(props_save(p, path, "a comment\nwith a newline", errmsg),
                     0);
    assert_int_equal(props_load(q, path, errmsg), 0);
    assert_int_equal(q->n, n);
    for (size_t i = 0; i < n; i++) {
        const char *v = props_get(q, kv[i][0]);
        if (v == NULL || strcmp(v, kv[i][1]) != 0) {
            fail_msg("row %zu: '%s' read back as '%s'", i, kv[i][0],
                     v != NULL ? v : "(absent)");
        }
        /* Order is kept. */
        assert_string_equal(q->e[i].key, kv[i][0]);
    }
    read_file(path, text, sizeof(text));
    assert_non_null(strstr(text, "#a comment with a newline\n"));
    assert_non_null(strstr(text, "nodeType=OM\n"));
    assert_non_null(strstr(text, "escapes=back\\\\slash\\=eq\\:colon\n"));
    assert_non_null(strstr(text, "lines=one\\ntwo\\r\\nthree\\tTab\n"));
    assert_non_null(strstr(text, "lead=\\  two leading spaces\n"));
    assert_non_null(strstr(text, "key\\ with\\ spaces=v\n"));
    assert_non_null(strstr(text, "\\#hashkey=v\n"));

    /* Overwrite: the new content replaces the old, no temp files remain. */
    assert_int_equal(props_set(p, "nodeType", "SCM"), 0);
    assert_int_equal(props_save(p, path, NULL, errmsg), 0);
    assert_int_equal(props_load(q, path, errmsg), 0);
    assert_string_equal(props_get(q, "nodeType"), "SCM");
    assert_int_equal(count_entries(dir), 1);
    free(p);
    free(q);
}

static void test_props_load_errors(void **state)
{
    const char *dir = *state;
    struct props *p = malloc(sizeof(*p));
    char path[512];
    char errmsg[OZ_ERRMSG_SIZE];
    char *big;

    assert_non_null(p);
    snprintf(path, sizeof(path), "%s/absent", dir);
    assert_int_equal(props_load(p, path, errmsg), OZ_ENOTFOUND);

    snprintf(path, sizeof(path), "%s/bad", dir);
    write_file(path, "a=1\nb\n", 6);
    assert_int_equal(props_load(p, path, errmsg), OZ_ECORRUPT);
    assert_string_equal(errmsg, "line 2: expected key=value, found no '='");

    /* A directory is not readable as a file. */
    assert_int_equal(props_load(p, dir, errmsg), OZ_EIO);

    /* Oversized file. */
    big = malloc(PROPS_MAX_FILE + 100);
    assert_non_null(big);
    memset(big, '#', PROPS_MAX_FILE + 100);
    write_file(path, big, PROPS_MAX_FILE + 100);
    assert_int_equal(props_load(p, path, errmsg), OZ_ECORRUPT);
    assert_non_null(strstr(errmsg, "more than the 65536-byte limit"));
    free(big);
    free(p);
}

static void test_props_save_fault_keeps_old_file(void **state)
{
    const char *dir = *state;
    struct props *p = malloc(sizeof(*p));
    char path[512];
    char errmsg[OZ_ERRMSG_SIZE];
    char text[256];

    assert_non_null(p);
    snprintf(path, sizeof(path), "%s/VERSION", dir);
    props_init(p);
    assert_int_equal(props_set(p, "layoutVersion", "100"), 0);
    assert_int_equal(props_save(p, path, NULL, errmsg), 0);

    fault_set("props.save.before_rename", FAULT_ERROR);
    assert_int_equal(props_set(p, "layoutVersion", "101"), 0);
    assert_int_equal(props_save(p, path, NULL, errmsg), OZ_EFAULT);
    assert_non_null(strstr(errmsg, "props.save.before_rename"));
    read_file(path, text, sizeof(text));
    assert_string_equal(text, "layoutVersion=100\n");
    assert_int_equal(count_entries(dir), 1); /* temp file removed */

    fault_set("props.save.before_rename", FAULT_OFF);
    assert_int_equal(props_save(p, path, NULL, errmsg), 0);
    read_file(path, text, sizeof(text));
    assert_string_equal(text, "layoutVersion=101\n");

    /* No such directory. */
    snprintf(path, sizeof(path), "%s/missing/VERSION", dir);
    assert_int_equal(props_save(p, path, NULL, errmsg), OZ_EIO);
    free(p);
}

static void test_mkdirs(void **state)
{
    const char *dir = *state;
    char path[512];
    char errmsg[OZ_ERRMSG_SIZE];
    struct stat st;

    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    assert_int_equal(oz_mkdirs(path, errmsg), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(oz_mkdirs(path, errmsg), 0); /* idempotent */
    snprintf(path, sizeof(path), "%s/a/b/c/", dir);
    assert_int_equal(oz_mkdirs(path, errmsg), 0); /* trailing slash */
    assert_int_equal(oz_fsync_dir(path), 0);

    snprintf(path, sizeof(path), "%s/file", dir);
    write_file(path, "x", 1);
    assert_int_equal(oz_mkdirs(path, errmsg), OZ_EIO);
    snprintf(path, sizeof(path), "%s/file/sub", dir);
    assert_int_equal(oz_mkdirs(path, errmsg), OZ_EIO);
    assert_non_null(strstr(errmsg, "file"));
    assert_int_equal(oz_mkdirs("", errmsg), OZ_EIO);
    assert_int_equal(oz_fsync_dir("/nonexistent-oz-dir"), OZ_EIO);
}

/* ---- fault ---- */

static void test_fault_env_parsing(void **state)
{
    (void)state;
    setenv("OZONE_FAULT", " a , b:crash,c:error ,d:bogus,,e : error", 1);
    fault_clear_all(); /* re-read the environment */
    assert_int_equal(fault_hit("a"), OZ_EFAULT);
    assert_int_equal(fault_hit("c"), OZ_EFAULT);
    assert_int_equal(fault_hit("d"), 0); /* unknown mode: ignored */
    assert_int_equal(fault_hit("e"), OZ_EFAULT);
    assert_int_equal(fault_hit("zzz"), 0);
    assert_int_equal(fault_hit("a:crash"), 0);

    /* fault_set overrides the environment. */
    fault_set("a", FAULT_OFF);
    assert_int_equal(fault_hit("a"), 0);
    fault_set("b", FAULT_ERROR);
    assert_int_equal(fault_hit("b"), OZ_EFAULT);

    unsetenv("OZONE_FAULT");
    fault_clear_all();
    assert_int_equal(fault_hit("c"), 0);
    assert_int_equal(fault_hit("b"), 0);
}

static void test_fault_crash_exits_86(void **state)
{
    (void)state;
    int status = 0;
    pid_t pid;

    setenv("OZONE_FAULT", "x.y:crash", 1);
    fault_clear_all();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2); /* keep the test output clean */
        fault_hit("x.y");
        _exit(0); /* not reached */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 86);
    unsetenv("OZONE_FAULT");
    fault_clear_all();

    /* Programmatic crash point too. */
    fault_set("p.q", FAULT_CRASH);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        fault_hit("p.q");
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 86);
    fault_clear_all();
}

static void test_fault_crash_log_line(void **state)
{
    const char *dir = *state;
    char path[512];
    char text[1024];
    int status = 0;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/stderr", dir);
    fault_set("version.finalize.after_action", FAULT_CRASH);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        fault_hit("version.finalize.after_action");
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 86);
    read_file(path, text, sizeof(text));
    assert_non_null(strstr(text, "ERROR"));
    assert_non_null(strstr(text,
                           "fault point 'version.finalize.after_action' "
                           "hit: crashing (OZONE_FAULT)"));
}

static void test_fault_set_many(void **state)
{
    (void)state;
    char name[32];

    fault_clear_all();
    for (int i = 0; i < 40; i++) { /* more than the table holds */
        snprintf(name, sizeof(name), "p%d", i);
        fault_set(name, FAULT_ERROR);
    }
    assert_int_equal(fault_hit("p0"), OZ_EFAULT);
    assert_int_equal(fault_hit("p31"), OZ_EFAULT);
    assert_int_equal(fault_hit("p39"), 0); /* dropped with a warning */
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        fault_set(name, FAULT_OFF);
    }
    assert_int_equal(fault_hit("p0"), 0);
    fault_clear_all();
}

static void *hammer(void *arg)
{
    long hits = 0;
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        hits += fault_hit("t.point") != 0;
        if (i % 1000 == 0) {
            fault_set("t.other", (i / 1000) % 2 ? FAULT_ERROR : FAULT_OFF);
        }
    }
    return (void *)hits;
}

static void test_fault_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    void *ret;

    fault_clear_all();
    fault_set("t.point", FAULT_ERROR);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_int_equal((long)ret, 20000);
    }
    fault_clear_all();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_props_parse_table),
        cmocka_unit_test(test_props_parse_nul_and_caps),
        cmocka_unit_test(test_props_set_get),
        cmocka_unit_test_setup_teardown(test_props_save_load_round_trip,
                                        setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_props_load_errors, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_props_save_fault_keeps_old_file,
                                        setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_mkdirs, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_fault_env_parsing),
        cmocka_unit_test(test_fault_crash_exits_86),
        cmocka_unit_test_setup_teardown(test_fault_crash_log_line, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test(test_fault_set_many),
        cmocka_unit_test(test_fault_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
