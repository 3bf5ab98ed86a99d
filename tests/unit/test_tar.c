/* tar: round trip (files and in-memory members, read back byte for byte,
 * the writer's running CRC32C equals the file's), names that would leave
 * the target directory refused by the writer and the reader (hand-built
 * headers), non-regular members refused, truncation at every kind of
 * boundary detected, bad header checksums and size limits, and an
 * extraction that never overwrites. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "tar.h"

static char base[256];

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/test_tar.XXXXXX");
    return mkdtemp(base) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", base, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Builds an archive with three members: a file of 1000 bytes, an empty
 * one and 513 bytes of data. */
static void build(const char *archive, uint32_t *crc)
{
    char src[300], errmsg[OZ_ERRMSG_SIZE];
    char big[1000], odd[513];
    struct tar_writer *w = NULL;

    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (char)(i * 31 + 7);
    }
    memset(odd, 'z', sizeof(odd));
    path_of(src, sizeof(src), "src.bin");
    write_file(src, big, sizeof(big));
    assert_int_equal(tar_writer_open(&w, archive, errmsg), 0);
    assert_int_equal(tar_writer_add_file(w, "000012.sst", src, errmsg), 0);
    assert_int_equal(tar_writer_add_data(w, "CURRENT", "", 0, errmsg), 0);
    assert_int_equal(tar_writer_add_data(w, "odd", odd, sizeof(odd), errmsg),
                     0);
    *crc = tar_writer_crc(w);
    assert_int_equal(tar_writer_offset(w), 512 + 1024 + 512 + 512 + 1024);
    assert_int_equal(tar_writer_finish(w, errmsg), 0);
    tar_writer_free(w);
}

static void test_round_trip(void **state)
{
    char archive[300], dest[300], p[400], errmsg[OZ_ERRMSG_SIZE];
    struct tar_entry *e = NULL;
    size_t n = 0, len;
    uint32_t crc = 0, file_crc = 0;

    (void)state;
    path_of(archive, sizeof(archive), "a.tar");
    build(archive, &crc);
    assert_int_equal(tar_list(archive, NULL, &e, &n, errmsg), 0);
    assert_int_equal(n, 3);
    assert_string_equal(e[0].name, "000012.sst");
    assert_int_equal(e[0].size, 1000);
    assert_string_equal(e[1].name, "CURRENT");
    assert_int_equal(e[1].size, 0);
    assert_string_equal(e[2].name, "odd");
    assert_int_equal(e[2].size, 513);
    assert_int_equal(e[2].header_offset, 512 + 1024 + 512);
    /* The running CRC covers exactly the bytes written before finish. */
    assert_int_equal(
        tar_file_crc(archive, 512 + 1024 + 512 + 512 + 1024, &file_crc, errmsg),
        0);
    assert_int_equal(file_crc, crc);
    char *small = NULL;
    assert_int_equal(tar_read_member(archive, &e[2], 1024, &small, errmsg), 0);
    assert_int_equal(strlen(small), 513);
    free(small);
    assert_int_equal(tar_read_member(archive, &e[2], 100, &small, errmsg),
                     OZ_ETOOBIG);

    path_of(dest, sizeof(dest), "out");
    assert_int_equal(mkdir(dest, 0700), 0);
    assert_int_equal(tar_extract(archive, e, n, dest, "odd", errmsg), 0);
    snprintf(p, sizeof(p), "%s/000012.sst", dest);
    char *got = read_file(p, &len);
    assert_int_equal(len, 1000);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(got[i], (char)(i * 31 + 7));
    }
    free(got);
    snprintf(p, sizeof(p), "%s/CURRENT", dest);
    got = read_file(p, &len);
    assert_int_equal(len, 0);
    free(got);
    snprintf(p, sizeof(p), "%s/odd", dest);
    assert_int_not_equal(access(p, F_OK), 0); /* skipped */
    /* Never overwrites: a second extraction into the same place fails. */
    assert_int_equal(tar_extract(archive, e, n, dest, NULL, errmsg), OZ_EEXIST);
    free(e);
}

static void test_writer_refuses_names(void **state)
{
    /* 100 characters: one more than ustar's name field holds. */
    static const char long_name[] =
        "0123456789012345678901234567890123456789012345678901234567890123"
        "456789012345678901234567890123456789";
    static const char *const bad[] = {
        "", ".", "..", "../x", "/etc/passwd", "a/b", "a\\b", "x\ny", long_name,
    };
    char archive[300], errmsg[OZ_ERRMSG_SIZE];
    struct tar_writer *w = NULL;

    (void)state;
    path_of(archive, sizeof(archive), "names.tar");
    assert_int_equal(tar_writer_open(&w, archive, errmsg), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = tar_writer_add_data(w, bad[i], "x", 1, errmsg);
        if (rc != OZ_EINVAL) {
            fail_msg("case %zu ('%s'): rc %d, want OZ_EINVAL", i, bad[i], rc);
        }
    }
    assert_true(tar_name_ok("MANIFEST-000005"));
    assert_true(tar_name_ok("..hidden-but-plain"));
    tar_writer_free(w);
}

/* A hand-made ustar header (the writer refuses these names). */
static void raw_header(unsigned char *h,
                       const char *name,
                       char type,
                       size_t size)
{
    unsigned sum = 0;

    memset(h, 0, 512);
    memcpy(h, name, strlen(name));
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 124, 12, "%011zo", size);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    for (int i = 0; i < 512; i++) {
        sum += h[i];
    }
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

static void write_raw(const char *path, const char *name, char type)
{
    unsigned char buf[512 * 4];

    memset(buf, 0, sizeof(buf));
    raw_header(buf, name, type, 5);
    memcpy(buf + 512, "hello", 5);
    write_file(path, buf, sizeof(buf));
}

static void test_reader_refuses_traversal(void **state)
{
    static const struct
    {
        const char *name;
        char type;
    } cases[] = {
        {"../evil", '0'}, {"/etc/passwd", '0'}, {"a/../../b", '0'},
        {"..", '0'},      {"dir/", '5'},        {"link", '2'},
        {"hard", '1'},    {"dev", '3'},
    };
    char archive[300], errmsg[OZ_ERRMSG_SIZE];
    struct tar_entry *e = NULL;
    size_t n = 0;

    (void)state;
    path_of(archive, sizeof(archive), "evil.tar");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_raw(archive, cases[i].name, cases[i].type);
        int rc = tar_list(archive, NULL, &e, &n, errmsg);
        if (rc != OZ_ECORRUPT || e != NULL) {
            fail_msg("case %zu ('%s'): rc %d, want OZ_ECORRUPT", i,
                     cases[i].name, rc);
        }
    }
    /* The same archive with a plain name is fine. */
    write_raw(archive, "good", '0');
    assert_int_equal(tar_list(archive, NULL, &e, &n, errmsg), 0);
    assert_int_equal(n, 1);
    free(e);
    /* tar_extract re-checks names it is handed. */
    struct tar_entry forged = {"../x", 5, 0, 512};
    char dest[300];
    path_of(dest, sizeof(dest), "forged");
    assert_int_equal(mkdir(dest, 0700), 0);
    assert_int_equal(tar_extract(archive, &forged, 1, dest, NULL, errmsg),
                     OZ_EINVAL);
}

static void test_truncated(void **state)
{
    char archive[300], cut[300], errmsg[OZ_ERRMSG_SIZE];
    struct tar_entry *e = NULL;
    size_t n = 0, len;
    uint32_t crc;

    (void)state;
    path_of(archive, sizeof(archive), "whole.tar");
    path_of(cut, sizeof(cut), "cut.tar");
    build(archive, &crc);
    char *whole = read_file(archive, &len);
    /* Every cut: inside a header, inside data, between members, before
     * or inside the end-of-archive marker. */
    static const size_t cuts[] = {0,    1,    100,  511,  512,
                                  700,  1535, 1536, 2047, 2048,
                                  3000, 3583, 3584, 4000, 4607};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        assert_true(cuts[i] < len);
        write_file(cut, whole, cuts[i]);
        int rc = tar_list(cut, NULL, &e, &n, errmsg);
        if (rc != OZ_ECORRUPT) {
            fail_msg("cut at %zu of %zu: rc %d, want OZ_ECORRUPT", cuts[i], len,
                     rc);
        }
        assert_null(e);
    }
    /* A flipped bit in a header fails its checksum. */
    whole[10] ^= 1;
    write_file(cut, whole, len);
    assert_int_equal(tar_list(cut, NULL, &e, &n, errmsg), OZ_ECORRUPT);
    assert_non_null(strstr(errmsg, "checksum"));
    free(whole);
}

static void test_limits(void **state)
{
    char archive[300], errmsg[OZ_ERRMSG_SIZE];
    struct tar_entry *e = NULL;
    size_t n = 0;
    uint32_t crc;
    struct tar_limits member = {999, 0, 0};
    struct tar_limits total = {0, 1200, 0};
    struct tar_limits count = {0, 0, 2};

    (void)state;
    path_of(archive, sizeof(archive), "lim.tar");
    build(archive, &crc);
    assert_int_equal(tar_list(archive, &member, &e, &n, errmsg), OZ_ETOOBIG);
    assert_int_equal(tar_list(archive, &total, &e, &n, errmsg), OZ_ETOOBIG);
    assert_int_equal(tar_list(archive, &count, &e, &n, errmsg), OZ_ETOOBIG);
    assert_null(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_refuses_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reader_refuses_traversal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
