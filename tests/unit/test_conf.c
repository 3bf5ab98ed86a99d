/* Unit tests of conf: ozone-site.xml parsing, overrides, unit parsers,
 * typed getters and unknown-key warnings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "conf_keys.h"
#include "err.h"
#include "test_tmpdir.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct conf *load_ok(const char *xml)
{
    struct conf *c = conf_new();
    char errmsg[OZ_ERRMSG_SIZE] = "";
    int rc;

    assert_non_null(c);
    rc = conf_load_buffer(c, xml, strlen(xml), "test.xml", errmsg);
    if (rc != 0) {
        fail_msg("load failed %d: %s", rc, errmsg);
    }
    return c;
}

static void test_parse_valid(void **state)
{
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<?xml-stylesheet type=\"text/xsl\" href=\"configuration.xsl\"?>\n"
        "<!-- a comment -->\n"
        "<configuration>\n"
        "  <property>\n"
        "    <name>ozone.om.address</name>\n"
        "    <value>om1:9862</value>\n"
        "    <description>the OM</description>\n"
        "    <final>true</final>\n"
        "  </property>\n"
        "  <property>\n"
        "    <name>\n  ozone.metadata.dirs \t</name>\n"
        "    <value>\n   /data/meta  \n</value>\n"
        "  </property>\n"
        "  <property name=\"ozone.rpc.timeout\" value=\"15s\"/>\n"
        "  <property><name>a.amp</name><value>x &amp; &lt;y&gt;</value>"
        "</property>\n"
        "  <property><name>a.cdata</name><value><![CDATA[<raw>]]></value>"
        "</property>\n"
        "  <property><name>a.empty</name><value/></property>\n"
        "  <property><name>a.novalue</name></property>\n"
        "  <other>ignored</other>\n"
        "  <property><name>a.twice</name><value>1</value></property>\n"
        "  <property><name>a.twice</name><value>2</value></property>\n"
        "</configuration>\n";
    static const struct
    {
        const char *key;
        const char *value;
    } want[] = {
        {"ozone.om.address", "om1:9862"},
        {"ozone.metadata.dirs", "/data/meta"},
        {"ozone.rpc.timeout", "15s"},
        {"a.amp", "x & <y>"},
        {"a.cdata", "<raw>"},
        {"a.empty", ""},
        {"a.twice", "2"},
    };
    struct conf *c = load_ok(xml);
    size_t i;

    (void)state;
    assert_int_equal(conf_count(c), ARRAY_LEN(want));
    for (i = 0; i < ARRAY_LEN(want); i++) {
        const char *v = conf_get(c, want[i].key);
        if (v == NULL || strcmp(v, want[i].value) != 0) {
            fail_msg("row %zu: '%s' = '%s', expected '%s'", i, want[i].key,
                     v == NULL ? "(null)" : v, want[i].value);
        }
        /* Insertion order. */
        if (strcmp(conf_key_at(c, i), want[i].key) != 0) {
            fail_msg("row %zu: key_at '%s', expected '%s'", i,
                     conf_key_at(c, i), want[i].key);
        }
    }
    assert_null(conf_key_at(c, ARRAY_LEN(want)));
    assert_null(conf_get(c, "a.novalue"));
    assert_null(conf_get(c, "unset"));
    assert_string_equal(conf_get_str(c, "unset", "def"), "def");
    assert_string_equal(conf_get_str(c, "a.twice", "def"), "2");
    conf_free(c);
    conf_free(NULL);
}

static void test_parse_malformed(void **state)
{
    static const struct
    {
        const char *xml;
        int rc;
        const char *msg; /* the whole message */
    } rows[] = {
        {"", OZ_ECORRUPT,
         "malformed XML in 'bad.xml' at line 1: document is empty"},
        {"<configuration><property><name>a</name>", OZ_ECORRUPT,
         "malformed XML in 'bad.xml' at line 1: premature end of data in "
         "tag property line 1"},
        {"<configuration>\n<property>\n<name>a</nme>", OZ_ECORRUPT,
         "malformed XML in 'bad.xml' at line 3: opening and ending tag "
         "mismatch: name line 3 and nme"},
        {"<configuration/><configuration/>", OZ_ECORRUPT,
         "malformed XML in 'bad.xml' at line 1: extra content at the end of "
         "the document"},
        {"not xml", OZ_ECORRUPT,
         "malformed XML in 'bad.xml' at line 1: start tag expected, '<' not "
         "found"},
        {"<configuration><property><name>&x;</name></property>"
         "</configuration>",
         OZ_ECORRUPT,
         "malformed XML in 'bad.xml' at line 1: entity 'x' not defined"},
        {"<config><property><name>a</name><value>b</value></property>"
         "</config>",
         OZ_ECORRUPT,
         "malformed configuration 'bad.xml': root element is 'config', "
         "expected 'configuration'"},
        {"<configuration>\n<property><name>a</name><value>1</value>"
         "</property>\n<property><value>b</value></property>"
         "</configuration>",
         OZ_ECORRUPT,
         "malformed configuration 'bad.xml': property 2 (line 3) has no "
         "name"},
        {"<configuration><property><name> \n </name><value>b</value>"
         "</property></configuration>",
         OZ_ECORRUPT,
         "malformed configuration 'bad.xml': property 1 (line 1) has no "
         "name"},
        {"<!DOCTYPE configuration [<!ENTITY e SYSTEM "
         "\"file:///etc/passwd\">]><configuration><property><name>a</name>"
         "<value>&e;</value></property></configuration>",
         OZ_ECORRUPT,
         "refusing 'bad.xml': a DOCTYPE is not allowed in a configuration "
         "file"},
        {"<!DOCTYPE configuration SYSTEM \"http://127.0.0.1:1/x.dtd\">"
         "<configuration/>",
         OZ_ECORRUPT,
         "refusing 'bad.xml': a DOCTYPE is not allowed in a configuration "
         "file"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        struct conf *c = conf_new();
        char errmsg[OZ_ERRMSG_SIZE] = "";
        int rc;

        conf_set(c, "before", "kept");
        rc = conf_load_buffer(c, rows[i].xml, strlen(rows[i].xml), "bad.xml",
                              errmsg);
        if (rc != rows[i].rc || strcmp(errmsg, rows[i].msg) != 0) {
            fail_msg("row %zu: rc %d message '%s', expected %d '%s'", i, rc,
                     errmsg, rows[i].rc, rows[i].msg);
        }
        /* A bad file changes nothing. */
        if (conf_count(c) != 1 || conf_get(c, "a") != NULL) {
            fail_msg("row %zu: configuration changed by a bad file", i);
        }
        conf_free(c);
    }
}

static char *many_properties(size_t n)
{
    size_t cap = 64 + n * 80;
    char *buf = malloc(cap);
    size_t len;

    assert_non_null(buf);
    len = (size_t)snprintf(buf, cap, "<configuration>");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(buf + len, cap - len,
                                "<property><name>k%zu</name><value>%zu"
                                "</value></property>\n",
                                i, i);
    }
    snprintf(buf + len, cap - len, "</configuration>");
    return buf;
}

static void test_caps(void **state)
{
    struct conf *c = conf_new();
    char errmsg[OZ_ERRMSG_SIZE] = "";
    size_t big = 4 * 1024 * 1024 + 1;
    char *buf = calloc(1, big);
    char *xml;

    (void)state;
    assert_non_null(buf);
    assert_int_equal(conf_load_buffer(c, buf, big, "big.xml", errmsg),
                     OZ_ETOOBIG);
    assert_string_equal(errmsg,
                        "configuration 'big.xml' is too large: 4194305 "
                        "bytes, the limit is 4194304");
    free(buf);

    xml = many_properties(4096);
    assert_int_equal(conf_load_buffer(c, xml, strlen(xml), "max.xml", errmsg),
                     0);
    assert_int_equal(conf_count(c), 4096);
    assert_string_equal(conf_get(c, "k4095"), "4095");
    free(xml);
    conf_free(c);

    c = conf_new();
    xml = many_properties(4097);
    assert_int_equal(conf_load_buffer(c, xml, strlen(xml), "many.xml", errmsg),
                     OZ_ETOOBIG);
    assert_string_equal(errmsg,
                        "configuration 'many.xml' is too large: more than "
                        "4096 properties");
    assert_int_equal(conf_count(c), 0);
    free(xml);
    conf_free(c);
}

static void test_overrides(void **state)
{
    static const char file1[] =
        "<configuration>"
        "<property><name>a</name><value>file1</value></property>"
        "<property><name>b</name><value>file1</value></property>"
        "<property><name>c</name><value>file1</value></property>"
        "</configuration>";
    static const char file2[] =
        "<configuration>"
        "<property><name>a</name><value>file2</value></property>"
        "<property><name>b</name><value>file2</value></property>"
        "</configuration>";
    struct conf *c = conf_new();
    char errmsg[OZ_ERRMSG_SIZE] = "";

    (void)state;
    /* -D before the file still wins over it. */
    assert_int_equal(conf_set_override(c, "a=cli", errmsg), 0);
    assert_int_equal(conf_load_buffer(c, file1, strlen(file1), "1", errmsg), 0);
    assert_string_equal(conf_get(c, "a"), "cli");
    assert_string_equal(conf_get(c, "b"), "file1");
    /* A later file wins over an earlier one, but not over -D. */
    assert_int_equal(conf_load_buffer(c, file2, strlen(file2), "2", errmsg), 0);
    assert_string_equal(conf_get(c, "a"), "cli");
    assert_string_equal(conf_get(c, "b"), "file2");
    assert_string_equal(conf_get(c, "c"), "file1");
    /* -D after the file wins; the last -D wins. */
    assert_int_equal(conf_set_override(c, "c=cli1", errmsg), 0);
    assert_int_equal(conf_set_override(c, " c = cli2 ", errmsg), 0);
    assert_string_equal(conf_get(c, "c"), "cli2");
    /* conf_set (programmatic) always sets. */
    assert_int_equal(conf_set(c, "a", "set"), 0);
    assert_string_equal(conf_get(c, "a"), "set");
    assert_int_equal(conf_set(c, "", "x"), OZ_EINVAL);
    assert_int_equal(conf_count(c), 3);
    conf_free(c);
}

static void test_override_syntax(void **state)
{
    static const struct
    {
        const char *arg;
        int rc;
        const char *key;
        const char *value; /* or the error message */
    } rows[] = {
        {"k=v", 0, "k", "v"},
        {"k=", 0, "k", ""},
        {"k=a=b", 0, "k", "a=b"},
        {"  k  =  v  ", 0, "k", "v"},
        {"ozone.om.address=host:1", 0, "ozone.om.address", "host:1"},
        {"novalue", OZ_EINVAL, NULL,
         "invalid override 'novalue': expected key=value"},
        {"", OZ_EINVAL, NULL, "invalid override '': expected key=value"},
        {"=v", OZ_EINVAL, NULL, "invalid override '=v': the key is empty"},
        {"   =v", OZ_EINVAL, NULL,
         "invalid override '   =v': the key is empty"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        struct conf *c = conf_new();
        char errmsg[OZ_ERRMSG_SIZE] = "";
        int rc = conf_set_override(c, rows[i].arg, errmsg);

        if (rc != rows[i].rc) {
            fail_msg("row %zu: rc %d, expected %d", i, rc, rows[i].rc);
        }
        if (rc == 0) {
            const char *v = conf_get(c, rows[i].key);
            if (v == NULL || strcmp(v, rows[i].value) != 0) {
                fail_msg("row %zu: '%s' = '%s'", i, rows[i].key,
                         v == NULL ? "(null)" : v);
            }
        } else if (strcmp(errmsg, rows[i].value) != 0 || conf_count(c)) {
            fail_msg("row %zu: message '%s', expected '%s'", i, errmsg,
                     rows[i].value);
        }
        conf_free(c);
    }
}

static void test_files_and_dirs(void **state)
{
    char dir[64];
    char path[128];
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char want[OZ_ERRMSG_SIZE];
    struct conf *c = conf_new();
    FILE *f;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_conf.XXXXXX");
    assert_non_null(mkdtemp(dir));

    /* A directory without ozone-site.xml: defaults only. */
    assert_int_equal(conf_load_dir(c, dir, errmsg), 0);
    assert_int_equal(conf_count(c), 0);

    snprintf(path, sizeof(path), "%s/ozone-site.xml", dir);
    assert_int_equal(conf_load_file(c, path, errmsg), OZ_ENOTFOUND);
    snprintf(want, sizeof(want),
             "cannot open configuration '%s': No such file or directory", path);
    assert_string_equal(errmsg, want);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs(
        "<configuration><property><name>hdds.heartbeat.interval</name>"
        "<value>10s</value></property></configuration>",
        f);
    fclose(f);
    assert_int_equal(conf_load_dir(c, dir, errmsg), 0);
    assert_string_equal(conf_get(c, "hdds.heartbeat.interval"), "10s");

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("<configuration>", f);
    fclose(f);
    assert_int_equal(conf_load_dir(c, dir, errmsg), OZ_ECORRUPT);
    assert_non_null(strstr(errmsg, path));

    /* A directory given as a file. */
    assert_int_equal(conf_load_file(c, dir, errmsg), OZ_EIO);
    assert_non_null(strstr(errmsg, dir));

    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(conf_load_dir(c, path, errmsg), OZ_ENOTFOUND);
    snprintf(want, sizeof(want),
             "configuration directory '%s' does not exist; check --conf or "
             "OZONE_CONF_DIR",
             path);
    assert_string_equal(errmsg, want);

    conf_free(c);
    test_tmpdir_remove(dir);
}

static void test_parse_duration(void **state)
{
    static const struct
    {
        const char *s;
        int rc;
        long long ms;
    } rows[] = {
        {"0", 0, 0},
        {"500", 0, 500},
        {"500ms", 0, 500},
        {"500MS", 0, 500},
        {"30s", 0, 30000},
        {"30S", 0, 30000},
        {"5m", 0, 300000},
        {"1h", 0, 3600000},
        {"2d", 0, 172800000},
        {" 30s ", 0, 30000},
        {"30 s", 0, 30000},
        {"9223372036854775807", 0, 9223372036854775807LL},
        {"9223372036854775807ms", 0, 9223372036854775807LL},
        {"106751991167d", 0, 106751991167LL * 86400000},
        {"9223372036854775808", OZ_EINVAL, 0},
        {"9223372036854775807s", OZ_EINVAL, 0},
        {"106751991168d", OZ_EINVAL, 0},
        {"", OZ_EINVAL, 0},
        {"   ", OZ_EINVAL, 0},
        {"s", OZ_EINVAL, 0},
        {"abc", OZ_EINVAL, 0},
        {"-5s", OZ_EINVAL, 0},
        {"+5s", OZ_EINVAL, 0},
        {"1.5s", OZ_EINVAL, 0},
        {"5sec", OZ_EINVAL, 0},
        {"5 m s", OZ_EINVAL, 0},
        {"5w", OZ_EINVAL, 0},
        {"0x10", OZ_EINVAL, 0},
        {"5ms5", OZ_EINVAL, 0},
    };
    size_t i;
    long long v;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        int rc = conf_parse_duration_ms(rows[i].s, &v);
        if (rc != rows[i].rc || v != rows[i].ms) {
            fail_msg("row %zu '%s': rc %d value %lld, expected %d %lld", i,
                     rows[i].s, rc, v, rows[i].rc, rows[i].ms);
        }
    }
    assert_int_equal(conf_parse_duration_ms(NULL, &v), OZ_EINVAL);
}

static void test_parse_size(void **state)
{
    static const struct
    {
        const char *s;
        int rc;
        long long bytes;
    } rows[] = {
        {"0", 0, 0},
        {"4096", 0, 4096},
        {"10B", 0, 10},
        {"10b", 0, 10},
        {"512KB", 0, 512 * 1024},
        {"512kb", 0, 512 * 1024},
        {"512K", 0, 512 * 1024},
        {"512KiB", 0, 512 * 1024},
        {"64MB", 0, 64LL << 20},
        {"64mib", 0, 64LL << 20},
        {"64m", 0, 64LL << 20},
        {"1GB", 0, 1LL << 30},
        {"5GB", 0, 5LL << 30},
        {"1gib", 0, 1LL << 30},
        {"2TB", 0, 2LL << 40},
        {"3PB", 0, 3LL << 50},
        {" 4 MB ", 0, 4LL << 20},
        {"8191PB", 0, 8191LL << 50},
        {"8192PB", OZ_EINVAL, 0},
        {"9223372036854775807", 0, 9223372036854775807LL},
        {"9223372036854775808", OZ_EINVAL, 0},
        {"9007199254740992KB", OZ_EINVAL, 0},
        {"", OZ_EINVAL, 0},
        {"MB", OZ_EINVAL, 0},
        {"-1", OZ_EINVAL, 0},
        {"1.5GB", OZ_EINVAL, 0},
        {"64XB", OZ_EINVAL, 0},
        {"64MBB", OZ_EINVAL, 0},
        {"64Mi", OZ_EINVAL, 0},
        {"64iB", OZ_EINVAL, 0},
        {"1EB", OZ_EINVAL, 0},
        {"ten", OZ_EINVAL, 0},
    };
    size_t i;
    long long v;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        int rc = conf_parse_size(rows[i].s, &v);
        if (rc != rows[i].rc || v != rows[i].bytes) {
            fail_msg("row %zu '%s': rc %d value %lld, expected %d %lld", i,
                     rows[i].s, rc, v, rows[i].rc, rows[i].bytes);
        }
    }
    assert_int_equal(conf_parse_size(NULL, &v), OZ_EINVAL);
}

enum getter { GET_INT, GET_BOOL, GET_DURATION, GET_SIZE };

static void test_getters(void **state)
{
    static const struct
    {
        enum getter g;
        const char *value; /* NULL: unset, the default applies */
        int rc;
        long long out;
        const char *msg;
    } rows[] = {
        {GET_INT, "42", 0, 42, ""},
        {GET_INT, "-7", 0, -7, ""},
        {GET_INT, NULL, 0, 99, ""},
        {GET_INT, "abc", OZ_EINVAL, 0,
         "invalid value 'abc' for 'the.key': expected an integer"},
        {GET_INT, "", OZ_EINVAL, 0,
         "invalid value '' for 'the.key': expected an integer"},
        {GET_INT, "12x", OZ_EINVAL, 0,
         "invalid value '12x' for 'the.key': expected an integer"},
        {GET_INT, "99999999999999999999", OZ_EINVAL, 0,
         "invalid value '99999999999999999999' for 'the.key': integer out "
         "of range"},
        {GET_BOOL, "true", 0, 1, ""},
        {GET_BOOL, "TRUE", 0, 1, ""},
        {GET_BOOL, "False", 0, 0, ""},
        {GET_BOOL, NULL, 0, 1, ""},
        {GET_BOOL, "yes", OZ_EINVAL, 0,
         "invalid value 'yes' for 'the.key': expected true or false"},
        {GET_BOOL, "1", OZ_EINVAL, 0,
         "invalid value '1' for 'the.key': expected true or false"},
        {GET_DURATION, "30s", 0, 30000, ""},
        {GET_DURATION, NULL, 0, 5000, ""},
        {GET_DURATION, "abc", OZ_EINVAL, 0,
         "invalid value 'abc' for 'the.key': expected a duration like 30s "
         "or 500ms"},
        {GET_DURATION, "-1s", OZ_EINVAL, 0,
         "invalid value '-1s' for 'the.key': expected a duration like 30s "
         "or 500ms"},
        {GET_SIZE, "64MB", 0, 64LL << 20, ""},
        {GET_SIZE, NULL, 0, 1LL << 30, ""},
        {GET_SIZE, "lots", OZ_EINVAL, 0,
         "invalid value 'lots' for 'the.key': expected a size like 64MB or "
         "1GB"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        struct conf *c = conf_new();
        char errmsg[OZ_ERRMSG_SIZE] = "";
        long long out = -12345;
        bool b = true;
        int rc = 0;

        if (rows[i].value != NULL) {
            conf_set(c, "the.key", rows[i].value);
        }
        switch (rows[i].g) {
            case GET_INT:
                rc = conf_get_int(c, "the.key", 99, &out, errmsg);
                break;
            case GET_BOOL:
                rc = conf_get_bool(c, "the.key", true, &b, errmsg);
                out = b;
                break;
            case GET_DURATION:
                rc = conf_get_duration_ms(c, "the.key", "5s", &out, errmsg);
                break;
            case GET_SIZE:
                rc = conf_get_size(c, "the.key", "1GB", &out, errmsg);
                break;
        }
        if (rc != rows[i].rc || out != rows[i].out ||
            strcmp(errmsg, rows[i].msg) != 0) {
            fail_msg("row %zu: rc %d out %lld '%s', expected %d %lld '%s'", i,
                     rc, out, errmsg, rows[i].rc, rows[i].out, rows[i].msg);
        }
        conf_free(c);
    }
}

static void test_getter_messages(void **state)
{
    struct conf *c = conf_new();
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char longval[1000];
    long long v;

    (void)state;
    /* The example of conf.h, word for word. */
    conf_set(c, "hdds.heartbeat.interval", "abc");
    assert_int_equal(
        conf_get_duration_ms(c, "hdds.heartbeat.interval", "30s", &v, errmsg),
        OZ_EINVAL);
    assert_string_equal(errmsg,
                        "invalid value 'abc' for 'hdds.heartbeat.interval': "
                        "expected a duration like 30s or 500ms");

    /* A huge value is cut so that the key still shows. */
    memset(longval, 'x', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    conf_set(c, "ozone.scm.block.size", longval);
    assert_int_equal(
        conf_get_size(c, "ozone.scm.block.size", "256MB", &v, errmsg),
        OZ_EINVAL);
    assert_non_null(strstr(errmsg, "'ozone.scm.block.size'"));

    /* An invalid default is reported like a bad value. */
    assert_int_equal(conf_get_duration_ms(c, "unset", "soon", &v, errmsg),
                     OZ_EINVAL);
    assert_string_equal(errmsg,
                        "invalid value 'soon' for 'unset': expected a "
                        "duration like 30s or 500ms");
    /* No value and no default. */
    assert_int_equal(conf_get_size(c, "unset", NULL, &v, errmsg), OZ_ENOTFOUND);
    assert_string_equal(errmsg, "'unset' is not set and has no default");
    /* errmsg may be NULL. */
    assert_int_equal(conf_get_size(c, "ozone.scm.block.size", "1", &v, NULL),
                     OZ_EINVAL);
    conf_free(c);
}

static char warned[16][128];
static size_t n_warned;

static void record_warning(const char *key)
{
    assert_true(n_warned < ARRAY_LEN(warned));
    snprintf(warned[n_warned++], sizeof(warned[0]), "%s", key);
}

static void test_warn_unknown(void **state)
{
    static const struct
    {
        const char *key;
        bool warned;
    } rows[] = {
        {"ozone.om.address", false},         /* built-in key */
        {"ozone.om.address.svc.om1", false}, /* built-in prefix */
        {"ozone.om.nodes.svc", false},       /* built-in prefix */
        {"ozone.om.nodes.", true},           /* prefix alone */
        {"ozone.om.addressx", true},         /* not a prefix match */
        {"testing.om.init.apparent.version", false},
        {"my.key", false},       /* caller's key */
        {"my.keyx", true},       /* caller's key, exact */
        {"app.anything", false}, /* caller's "app.*" */
        {"app.", true},
        {"svc.x.y", false},        /* caller's "svc." */
        {"ozone.om.adress", true}, /* typo */
        {"hdds.unknown", true},
    };
    static const char *const known[] = {"my.key", "app.*", "svc.", NULL};
    struct conf *c = conf_new();
    size_t i;
    size_t w = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        conf_set(c, rows[i].key, "v");
    }
    n_warned = 0;
    conf_warn_unknown(c, known, record_warning);
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        if (!rows[i].warned) {
            continue;
        }
        if (w >= n_warned || strcmp(warned[w], rows[i].key) != 0) {
            fail_msg("row %zu: expected a warning for '%s'", i, rows[i].key);
        }
        w++;
    }
    assert_int_equal(w, n_warned);

    /* Without a caller list only the built-in table counts. */
    n_warned = 0;
    conf_warn_unknown(c, NULL, record_warning);
    assert_int_equal(n_warned, w + 3);
    conf_free(c);
}

static void test_known_keys_table(void **state)
{
    static const struct
    {
        const char *name;
        const char *def;
    } rows[] = {
        {"ozone.metadata.dirs", NULL},
        {"ozone.om.db.dirs", NULL},
        {"ozone.scm.db.dirs", NULL},
        {"ozone.recon.db.dir", NULL},
        {"hdds.datanode.dir", NULL},
        {"ozone.om.address", "0.0.0.0:9862"},
        {"ozone.om.http-address", "0.0.0.0:9874"},
        {"ozone.om.ratis.port", "9872"},
        {"ozone.om.service.ids", NULL},
        {"ozone.om.nodes.", NULL},
        {"ozone.om.address.", NULL},
        {"ozone.om.http-address.", NULL},
        {"ozone.om.ratis.port.", NULL},
        {"ozone.om.node.id", NULL},
        {"ozone.scm.client.address", "0.0.0.0:9860"},
        {"ozone.scm.block.client.address", "0.0.0.0:9863"},
        {"ozone.scm.datanode.address", "0.0.0.0:9861"},
        {"ozone.scm.http-address", "0.0.0.0:9876"},
        {"ozone.scm.names", NULL},
        {"ozone.scm.ratis.port", "9894"},
        {"hdds.container.ipc.port", "9859"},
        {"hdds.datanode.http-address", "0.0.0.0:9882"},
        {"ozone.recon.address", "0.0.0.0:9891"},
        {"ozone.recon.http-address", "0.0.0.0:9888"},
        {"ozone.recon.om.snapshot.task.interval.delay", "10s"},
        {"hdds.heartbeat.interval", "30s"},
        {"ozone.scm.stale.node.interval", "5m"},
        {"ozone.scm.dead.node.interval", "10m"},
        {"ozone.scm.container.size", "5GB"},
        {"ozone.scm.block.size", "256MB"},
        {"ozone.scm.chunk.size", "4MB"},
        {"ozone.replication", "THREE"},
        {"ozone.om.upgrade.finalization.check.interval", "5s"},
        {"ozone.rpc.max.message.size", "32MB"},
        {"ozone.rpc.handler.count", "8"},
        {"ozone.rpc.timeout", "10s"},
        {"ozone.log.level", "INFO"},
        {"ozone.log.file", NULL},
        {"hdds.datanode.id", NULL},
        {"testing.om.init.apparent.version", NULL},
        {"testing.scm.init.apparent.version", NULL},
        {"testing.datanode.init.apparent.version", NULL},
        {"testing.recon.init.apparent.version", NULL},
        {"ozone.scm.pipeline.owner.container.count", "1"},
        {"ozone.scm.datanode.pipeline.limit", "2"},
    };
    size_t n = 0;
    const struct conf_key_info *t = conf_known_keys(&n);
    size_t i, j;

    (void)state;
    assert_non_null(t);
    assert_true(n >= ARRAY_LEN(rows));
    assert_ptr_equal(conf_known_keys(NULL), t);
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        const struct conf_key_info *k = conf_key_lookup(rows[i].name);
        if (k == NULL || strcmp(k->name, rows[i].name) != 0) {
            fail_msg("row %zu: '%s' missing from the table", i, rows[i].name);
        }
        if ((k->def == NULL) != (rows[i].def == NULL) ||
            (k->def != NULL && strcmp(k->def, rows[i].def) != 0)) {
            fail_msg("row %zu: '%s' default '%s', expected '%s'", i,
                     rows[i].name, k->def ? k->def : "(none)",
                     rows[i].def ? rows[i].def : "(none)");
        }
    }
    for (i = 0; i < n; i++) {
        if (t[i].description == NULL || t[i].description[0] == '\0') {
            fail_msg("entry %zu '%s' has no description", i, t[i].name);
        }
        for (j = i + 1; j < n; j++) {
            if (strcmp(t[i].name, t[j].name) == 0) {
                fail_msg("entry %zu '%s' appears twice", i, t[i].name);
            }
        }
    }
    /* A prefix entry answers for the keys under it. */
    assert_string_equal(conf_key_lookup("ozone.om.address.svc.om1")->name,
                        "ozone.om.address.");
    assert_null(conf_key_lookup("no.such.key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_override_syntax),
        cmocka_unit_test(test_files_and_dirs),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_getter_messages),
        cmocka_unit_test(test_warn_unknown),
        cmocka_unit_test(test_known_keys_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
