/* Name rules of the OM (services/om/om_names.c): every rule of volume and
 * bucket names with its message, key name limits, and quoting of names
 * in messages. Table-driven; the row index is in every failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "om_names.h"

#define OK OZONE__RESULT_CODE__OK
#define BAD_VOL OZONE__RESULT_CODE__INVALID_VOLUME_NAME
#define BAD_BUCKET OZONE__RESULT_CODE__INVALID_BUCKET_NAME
#define BAD_KEY OZONE__RESULT_CODE__INVALID_KEY_NAME

static const char *const long64 =
    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd";

static void test_resource_names(void **state)
{
    static const struct
    {
        enum om_name_kind kind;
        const char *name;
        Ozone__ResultCode code;
        const char *message; /* exact message when code is not OK */
    } cases[] = {
        {OM_NAME_VOLUME, "vol1", OK, NULL},
        {OM_NAME_VOLUME, "abc", OK, NULL},
        {OM_NAME_VOLUME, "a.b-c.9", OK, NULL},
        {OM_NAME_BUCKET, "my-bucket.2024", OK, NULL},
        {OM_NAME_VOLUME, "1.2.3.x", OK, NULL},
        {OM_NAME_VOLUME, "ab", BAD_VOL,
         "invalid volume name 'ab': it is 2 characters long; use 3 to 63 "
         "characters"},
        {OM_NAME_BUCKET, "", BAD_BUCKET,
         "invalid bucket name '': it is 0 characters long; use 3 to 63 "
         "characters"},
        {OM_NAME_VOLUME, "Vol1", BAD_VOL,
         "invalid volume name 'Vol1': upper case letter 'V' is not allowed; "
         "use lower case letters, digits, '-' and '.'"},
        {OM_NAME_BUCKET, "buck_et", BAD_BUCKET,
         "invalid bucket name 'buck_et': character '_' is not allowed; use "
         "lower case letters, digits, '-' and '.'"},
        {OM_NAME_BUCKET, "a/b/c", BAD_BUCKET,
         "invalid bucket name 'a/b/c': character '/' is not allowed; use "
         "lower case letters, digits, '-' and '.'"},
        {OM_NAME_VOLUME, "caf\xc3\xa9", BAD_VOL,
         "invalid volume name 'caf?"
         "?': byte 0xc3 is not allowed; use lower "
         "case letters, digits, '-' and '.'"},
        {OM_NAME_VOLUME, ".vol", BAD_VOL,
         "invalid volume name '.vol': it starts with a period or dash; start "
         "with a letter or digit"},
        {OM_NAME_BUCKET, "-bucket", BAD_BUCKET,
         "invalid bucket name '-bucket': it starts with a period or dash; "
         "start with a letter or digit"},
        {OM_NAME_VOLUME, "vol.", BAD_VOL,
         "invalid volume name 'vol.': it ends with a period or dash; end "
         "with a letter or digit"},
        {OM_NAME_BUCKET, "bucket-", BAD_BUCKET,
         "invalid bucket name 'bucket-': it ends with a period or dash; end "
         "with a letter or digit"},
        {OM_NAME_VOLUME, "a..b", BAD_VOL,
         "invalid volume name 'a..b': it has two consecutive periods; remove "
         "one"},
        {OM_NAME_BUCKET, "a-.b", BAD_BUCKET,
         "invalid bucket name 'a-.b': it has a period next to a dash; "
         "separate them"},
        {OM_NAME_BUCKET, "a.-b", BAD_BUCKET,
         "invalid bucket name 'a.-b': it has a period next to a dash; "
         "separate them"},
        {OM_NAME_VOLUME, "192.168.1.1", BAD_VOL,
         "invalid volume name '192.168.1.1': it is an IPv4 address or all "
         "numeric; add a letter"},
        {OM_NAME_BUCKET, "12345", BAD_BUCKET,
         "invalid bucket name '12345': it is an IPv4 address or all "
         "numeric; add a letter"},
    };
    char errmsg[OZ_ERRMSG_SIZE];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        errmsg[0] = '\0';
        Ozone__ResultCode got = om_check_resource_name(
            cases[i].kind, cases[i].name, strlen(cases[i].name), errmsg);
        if (got != cases[i].code) {
            fail_msg("case %zu '%s': code %d, want %d (%s)", i, cases[i].name,
                     (int)got, (int)cases[i].code, errmsg);
        }
        if (cases[i].message != NULL && strcmp(errmsg, cases[i].message) != 0) {
            fail_msg("case %zu: message\n  '%s'\nwant\n  '%s'", i, errmsg,
                     cases[i].message);
        }
    }
}

static void test_resource_length_bounds(void **state)
{
    char errmsg[OZ_ERRMSG_SIZE];

    (void)state;
    /* 63 characters is the longest valid name, 64 is refused. */
    assert_int_equal(om_check_resource_name(OM_NAME_VOLUME, long64, 63, errmsg),
                     OK);
    assert_int_equal(om_check_resource_name(OM_NAME_BUCKET, long64, 64, errmsg),
                     BAD_BUCKET);
    assert_non_null(strstr(errmsg, "it is 64 characters long; use 3 to 63"));
    /* A NUL inside the given length is a bad byte, not the end. */
    assert_int_equal(
        om_check_resource_name(OM_NAME_VOLUME, "ab\0cd", 5, errmsg), BAD_VOL);
    assert_non_null(strstr(errmsg, "byte 0x00 is not allowed"));
    assert_int_equal(om_check_resource_name(OM_NAME_VOLUME, NULL, 0, errmsg),
                     BAD_VOL);
}

static void test_key_names(void **state)
{
    static char big[OM_MAX_KEY_NAME + 2];
    static const struct
    {
        const char *name;
        size_t len; /* 0: strlen */
        Ozone__ResultCode code;
        const char *message; /* substring */
    } cases[] = {
        {"k", 0, OK, NULL},
        {"dir/sub/file.txt", 0, OK, NULL},
        {"Upper Case and spaces", 0, OK, NULL},
        {"", 0, BAD_KEY,
         "invalid key name '': it is empty; give the key a "
         "name"},
        {"a\0b", 3, BAD_KEY,
         "invalid key name 'a?b': it contains a NUL "
         "byte; remove it"},
        {big, OM_MAX_KEY_NAME, OK, NULL},
        {big, OM_MAX_KEY_NAME + 1, BAD_KEY,
         "': it is 1025 bytes long; use at most 1024 bytes"},
    };
    char errmsg[OZ_ERRMSG_SIZE];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].name);
        errmsg[0] = '\0';
        Ozone__ResultCode got = om_check_key_name(cases[i].name, len, errmsg);
        if (got != cases[i].code) {
            fail_msg("case %zu: code %d, want %d (%s)", i, (int)got,
                     (int)cases[i].code, errmsg);
        }
        if (cases[i].message != NULL &&
            strstr(errmsg, cases[i].message) == NULL) {
            fail_msg("case %zu: message '%s' lacks '%s'", i, errmsg,
                     cases[i].message);
        }
    }
    assert_int_equal(om_check_key_name(NULL, 0, errmsg), BAD_KEY);
}

static void test_quote(void **state)
{
    char out[80];

    (void)state;
    assert_string_equal(om_quote_name("a\nb", 3, out, sizeof(out)), "a?b");
    om_quote_name(long64, 64, out, sizeof(out));
    assert_string_equal(out, long64);
    om_quote_name(long64, 64 + 1, out, sizeof(out)); /* reads 64 */
    assert_int_equal(strlen(out), 64 + 3);
    assert_string_equal(out + 64, "...");
    /* A small buffer is never overrun. */
    assert_string_equal(om_quote_name("abcdef", 6, out, 4), "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource_names),
        cmocka_unit_test(test_resource_length_bounds),
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
