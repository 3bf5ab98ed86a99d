/* Unit tests of kv, the RocksDB adapter: every test gets a fresh temporary
 * directory (mkdtemp) that is removed afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fault.h"
#include "kv.h"
#include "test_tmpdir.h"

struct fixture
{
    char dir[64];
    char db[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_kv.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static struct kv *open_ok(const char *path,
                          const char *const *cfs,
                          size_t n,
                          int flags)
{
    struct kv *kv = NULL;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    int rc = kv_open(&kv, path, cfs, n, flags, errmsg);

    if (rc != 0) {
        fail_msg("kv_open('%s') = %d: %s", path, rc, errmsg);
    }
    assert_non_null(kv);
    return kv;
}

static void put_str(struct kv *kv, int cf, const char *k, const char *v)
{
    assert_int_equal(kv_put(kv, cf, k, strlen(k), v, strlen(v)), 0);
}

/* Asserts that key has value v (NULL: absent). */
static void expect_str(struct kv *kv, int cf, const char *k, const char *v)
{
    void *val = (void *)1;
    size_t len = 1;
    int rc = kv_get(kv, cf, k, strlen(k), &val, &len);

    if (v == NULL) {
        assert_int_equal(rc, OZ_ENOTFOUND);
        assert_null(val);
        assert_int_equal(len, 0);
        return;
    }
    if (rc != 0) {
        fail_msg("kv_get('%s') = %d, expected '%s'", k, rc, v);
    }
    assert_int_equal(len, strlen(v));
    assert_memory_equal(val, v, len);
    assert_int_equal(((char *)val)[len], '\0');
    free(val);
}

static void test_open_missing_and_create(void **state)
{
    struct fixture *f = *state;
    static const char *const cfs[] = {"keyTable", "bucketTable"};
    struct kv *kv = (struct kv *)1;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    assert_int_equal(kv_open(&kv, f->db, cfs, 2, 0, errmsg), OZ_ENOTFOUND);
    assert_null(kv);
    assert_non_null(strstr(errmsg, f->db));
    assert_non_null(strstr(errmsg, "does not exist"));

    kv = open_ok(f->db, cfs, 2, KV_CREATE);
    assert_int_equal(kv_cf(kv, "keyTable"), 0);
    assert_int_equal(kv_cf(kv, "bucketTable"), 1);
    assert_int_equal(kv_cf(kv, "default"), 2);
    assert_int_equal(kv_cf(kv, KV_META_CF), 3);
    assert_int_equal(kv_cf(kv, "nope"), OZ_ENOTFOUND);
    kv_close(kv);
    kv_close(NULL);
}

static void test_families_on_reopen(void **state)
{
    struct fixture *f = *state;
    static const char *const ab[] = {"a", "b"};
    static const char *const b_only[] = {"b", "default"};
    static const char *const c_new[] = {"c"};
    struct kv *kv = open_ok(f->db, ab, 2, KV_CREATE);
    char errmsg[OZ_ERRMSG_SIZE] = "";

    put_str(kv, kv_cf(kv, "b"), "k", "in b");
    kv_close(kv);

    /* Nothing listed: every family on disk is opened. */
    kv = open_ok(f->db, NULL, 0, 0);
    assert_true(kv_cf(kv, "a") >= 0);
    assert_true(kv_cf(kv, "b") >= 0);
    assert_true(kv_cf(kv, KV_META_CF) >= 0);
    expect_str(kv, kv_cf(kv, "b"), "k", "in b");
    expect_str(kv, kv_cf(kv, "a"), "k", NULL);
    kv_close(kv);

    /* Listed ones come first, in the caller's order; unlisted stay. */
    kv = open_ok(f->db, b_only, 2, 0);
    assert_int_equal(kv_cf(kv, "b"), 0);
    assert_int_equal(kv_cf(kv, "default"), 1);
    assert_true(kv_cf(kv, "a") >= 2);
    expect_str(kv, 0, "k", "in b");
    kv_close(kv);

    /* A new family needs KV_CREATE. */
    kv = (struct kv *)1;
    assert_int_equal(kv_open(&kv, f->db, c_new, 1, 0, errmsg), OZ_ENOTFOUND);
    assert_null(kv);
    assert_non_null(strstr(errmsg, f->db));
    kv = open_ok(f->db, c_new, 1, KV_CREATE);
    assert_int_equal(kv_cf(kv, "c"), 0);
    assert_true(kv_cf(kv, "a") >= 0);
    kv_close(kv);
}

static void test_put_get_delete(void **state)
{
    struct fixture *f = *state;
    static const char *const cfs[] = {"t"};
    static const unsigned char bin_key[] = {0, 1, 0, 255};
    static const unsigned char bin_val[] = {9, 0, 9};
    struct kv *kv = open_ok(f->db, cfs, 1, KV_CREATE | KV_SYNC);
    void *val;
    size_t len;

    expect_str(kv, 0, "missing", NULL);
    put_str(kv, 0, "k1", "v1");
    expect_str(kv, 0, "k1", "v1");
    /* Families are separate key spaces. */
    expect_str(kv, kv_cf(kv, "default"), "k1", NULL);
    put_str(kv, 0, "k1", "v2");
    expect_str(kv, 0, "k1", "v2");
    put_str(kv, 0, "empty", "");
    expect_str(kv, 0, "empty", "");

    assert_int_equal(
        kv_put(kv, 0, bin_key, sizeof(bin_key), bin_val, sizeof(bin_val)), 0);
    assert_int_equal(kv_get(kv, 0, bin_key, sizeof(bin_key), &val, &len), 0);
    assert_int_equal(len, sizeof(bin_val));
    assert_memory_equal(val, bin_val, len);
    free(val);

    assert_int_equal(kv_delete(kv, 0, "k1", 2), 0);
    expect_str(kv, 0, "k1", NULL);
    /* Deleting a missing key is not an error (RocksDB tombstone). */
    assert_int_equal(kv_delete(kv, 0, "k1", 2), 0);

    /* Bad family indexes are refused, not a crash. */
    assert_int_equal(kv_put(kv, 99, "k", 1, "v", 1), OZ_EINVAL);
    assert_int_equal(kv_put(kv, -1, "k", 1, "v", 1), OZ_EINVAL);
    assert_int_equal(kv_get(kv, 99, "k", 1, &val, &len), OZ_EINVAL);
    assert_int_equal(kv_delete(kv, 99, "k", 1), OZ_EINVAL);
    assert_null(kv_iter_new(kv, 99));
    kv_close(kv);
}

static void test_batch_atomic(void **state)
{
    struct fixture *f = *state;
    static const char *const cfs[] = {"x", "y"};
    struct kv *kv = open_ok(f->db, cfs, 2, KV_CREATE);
    struct kv_batch *b = kv_batch_new();
    char errmsg[OZ_ERRMSG_SIZE] = "";

    put_str(kv, 1, "gone", "soon");
    assert_int_equal(kv_batch_count(b), 0);
    kv_batch_put(b, 0, "a", 1, "1", 1);
    kv_batch_put(b, 1, "b", 1, "2", 1);
    kv_batch_delete(b, 1, "gone", 4);
    assert_int_equal(kv_batch_count(b), 3);
    /* Nothing is visible before kv_write. */
    expect_str(kv, 0, "a", NULL);
    expect_str(kv, 1, "gone", "soon");
    assert_int_equal(kv_write(kv, b, true, errmsg), 0);
    expect_str(kv, 0, "a", "1");
    expect_str(kv, 1, "b", "2");
    expect_str(kv, 1, "gone", NULL);
    kv_batch_free(b);

    /* One bad operation fails the whole batch: nothing is applied. */
    b = kv_batch_new();
    kv_batch_put(b, 0, "c", 1, "3", 1);
    kv_batch_put(b, 42, "d", 1, "4", 1);
    assert_int_equal(kv_write(kv, b, false, errmsg), OZ_EINVAL);
    assert_non_null(strstr(errmsg, f->db));
    assert_non_null(strstr(errmsg, "42"));
    expect_str(kv, 0, "c", NULL);
    kv_batch_free(b);

    /* Many operations, written without sync. */
    b = kv_batch_new();
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "n%04d", i);
        kv_batch_put(b, 0, k, strlen(k), k, strlen(k));
    }
    assert_int_equal(kv_batch_count(b), 1000);
    assert_int_equal(kv_write(kv, b, false, NULL), 0);
    expect_str(kv, 0, "n0999", "n0999");
    kv_batch_free(b);
    kv_batch_free(NULL);
    kv_close(kv);
}

static void test_iterator_order_and_seek(void **state)
{
    struct fixture *f = *state;
    static const char *const cfs[] = {"t"};
    static const char *const keys[] = {"d", "a", "c", "e", "b"};
    static const char *const sorted[] = {"a", "b", "c", "d", "e"};
    static const struct
    {
        const char *seek;
        const char *expect; /* NULL: past the end */
    } seeks[] = {
        {"", "a"}, {"a", "a"}, {"bb", "c"}, {"e", "e"}, {"f", NULL},
    };
    struct kv *kv = open_ok(f->db, cfs, 1, KV_CREATE);
    struct kv_iter *it;
    size_t i;
    size_t len;
    const char *p;

    for (i = 0; i < 5; i++) {
        put_str(kv, 0, keys[i], keys[i]);
    }
    put_str(kv, kv_cf(kv, "default"), "zz-other-family", "x");
    it = kv_iter_new(kv, 0);
    assert_non_null(it);
    /* The iterator sees a snapshot: later writes are invisible. */
    put_str(kv, 0, "aa", "late");

    assert_false(kv_iter_valid(it));
    kv_iter_seek_first(it);
    for (i = 0; kv_iter_valid(it); i++, kv_iter_next(it)) {
        assert_true(i < 5);
        p = kv_iter_key(it, &len);
        assert_int_equal(len, 1);
        assert_memory_equal(p, sorted[i], 1);
        p = kv_iter_value(it, &len);
        assert_memory_equal(p, sorted[i], 1);
    }
    assert_int_equal(i, 5);
    kv_iter_next(it); /* past the end stays invalid */
    assert_false(kv_iter_valid(it));

    for (i = 0; i < sizeof(seeks) / sizeof(seeks[0]); i++) {
        kv_iter_seek(it, seeks[i].seek, strlen(seeks[i].seek));
        if (seeks[i].expect == NULL) {
            if (kv_iter_valid(it)) {
                fail_msg("seek row %zu: expected the end", i);
            }
            continue;
        }
        if (!kv_iter_valid(it)) {
            fail_msg("seek row %zu: unexpected end", i);
        }
        p = kv_iter_key(it, &len);
        if (len != strlen(seeks[i].expect) ||
            memcmp(p, seeks[i].expect, len) != 0) {
            fail_msg("seek row %zu: got '%.*s', expected '%s'", i, (int)len, p,
                     seeks[i].expect);
        }
    }
    kv_iter_free(it);

    /* A new iterator sees the late write. */
    it = kv_iter_new(kv, 0);
    kv_iter_seek(it, "aa", 2);
    assert_true(kv_iter_valid(it));
    p = kv_iter_value(it, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(p, "late", 4);
    kv_iter_free(it);
    kv_iter_free(NULL);
    kv_close(kv);
}

static void test_checkpoint(void **state)
{
    struct fixture *f = *state;
    static const char *const cfs[] = {"t"};
    char cp[192];
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct kv *kv = open_ok(f->db, cfs, 1, KV_CREATE);
    struct kv *ck;

    snprintf(cp, sizeof(cp), "%s/checkpoint", f->dir);
    put_str(kv, 0, "before", "1");
    assert_int_equal(kv_checkpoint(kv, cp, errmsg), 0);
    put_str(kv, 0, "after", "2");

    assert_int_equal(kv_checkpoint(kv, cp, errmsg), OZ_EEXIST);
    assert_non_null(strstr(errmsg, cp));
    assert_non_null(strstr(errmsg, "already exists"));
    assert_int_equal(kv_checkpoint(kv, f->dir, errmsg), OZ_EEXIST);

    ck = open_ok(cp, NULL, 0, KV_READ_ONLY);
    assert_true(kv_cf(ck, "t") >= 0);
    expect_str(ck, kv_cf(ck, "t"), "before", "1");
    expect_str(ck, kv_cf(ck, "t"), "after", NULL);
    kv_close(ck);
    kv_close(kv);
}

static void test_reopen_persistence_and_sequence(void **state)
{
    struct fixture *f = *state;
    static const char *const cfs[] = {"t"};
    struct kv *kv = open_ok(f->db, cfs, 1, KV_CREATE | KV_SYNC);
    uint64_t seq0 = kv_latest_sequence(kv);
    uint64_t seq1;
    char k[16];

    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        put_str(kv, 0, k, k);
    }
    seq1 = kv_latest_sequence(kv);
    assert_int_equal(seq1, seq0 + 100);
    kv_close(kv);

    kv = open_ok(f->db, cfs, 1, 0);
    assert_int_equal(kv_latest_sequence(kv), seq1);
    expect_str(kv, 0, "k000", "k000");
    expect_str(kv, 0, "k099", "k099");
    kv_close(kv);
}

static void test_layout_version(void **state)
{
    struct fixture *f = *state;
    static const struct
    {
        const char *stored;
        int rc;
        int version;
    } rows[] = {
        {"0", 0, 0},
        {"100", 0, 100},
        {"2147483647", 0, 2147483647},
        {"2147483648", OZ_ECORRUPT, 0},
        {"", OZ_ECORRUPT, 0},
        {"abc", OZ_ECORRUPT, 0},
        {"-1", OZ_ECORRUPT, 0},
        {"12 ", OZ_ECORRUPT, 0},
        {"99999999999999999999", OZ_ECORRUPT, 0},
    };
    struct kv *kv = open_ok(f->db, NULL, 0, KV_CREATE);
    int meta = kv_cf(kv, KV_META_CF);
    struct kv_batch *b;
    int v = -1;
    size_t i;

    assert_int_equal(kv_get_layout_version(kv, &v), OZ_ENOTFOUND);
    b = kv_batch_new();
    kv_batch_put_layout_version(kv, b, 105);
    assert_int_equal(kv_batch_count(b), 1);
    assert_int_equal(kv_write(kv, b, true, NULL), 0);
    kv_batch_free(b);
    assert_int_equal(kv_get_layout_version(kv, &v), 0);
    assert_int_equal(v, 105);
    /* Stored as decimal text, like Ozone. */
    expect_str(kv, meta, KV_LAYOUT_VERSION_KEY, "105");
    kv_close(kv);

    kv = open_ok(f->db, NULL, 0, 0);
    assert_int_equal(kv_get_layout_version(kv, &v), 0);
    assert_int_equal(v, 105);
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int rc;
        put_str(kv, meta, KV_LAYOUT_VERSION_KEY, rows[i].stored);
        v = -1;
        rc = kv_get_layout_version(kv, &v);
        if (rc != rows[i].rc || v != rows[i].version) {
            fail_msg("row %zu ('%s'): rc %d version %d, expected %d %d", i,
                     rows[i].stored, rc, v, rows[i].rc, rows[i].version);
        }
    }
    kv_close(kv);
}

/* Damaged or foreign directories give an error naming the path. */
static void test_corrupt_directory(void **state)
{
    struct fixture *f = *state;
    static const struct
    {
        const char *file; /* relative to the DB; NULL: the DB path itself */
        const char *text;
    } rows[] = {
        {"CURRENT", "junk\n"},
        {"CURRENT", "MANIFEST-000099\n"},
        {"CURRENT", ""},
        {"CURRENT", "\x01\x02\x03 not rocksdb at all"},
        {NULL, "a regular file, not a directory"},
    };
    char path[256];
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct kv *kv = NULL;
        char errmsg[OZ_ERRMSG_SIZE] = "";
        int rc;

        snprintf(f->db, sizeof(f->db), "%s/db%zu", f->dir, i);
        if (rows[i].file != NULL) {
            kv = open_ok(f->db, NULL, 0, KV_CREATE);
            put_str(kv, 0, "k", "v");
            kv_close(kv);
            kv = NULL;
            snprintf(path, sizeof(path), "%s/%s", f->db, rows[i].file);
            write_file(path, rows[i].text);
        } else {
            write_file(f->db, rows[i].text);
        }
        for (int flags = 0; flags <= KV_CREATE; flags += KV_CREATE) {
            rc = kv_open(&kv, f->db, NULL, 0, flags, errmsg);
            if (rc != OZ_ECORRUPT && rc != OZ_EIO) {
                fail_msg("row %zu flags %d: rc %d (%s)", i, flags, rc, errmsg);
            }
            assert_null(kv);
            if (strstr(errmsg, f->db) == NULL) {
                fail_msg("row %zu: message '%s' does not name '%s'", i, errmsg,
                         f->db);
            }
        }
    }
}

static void test_read_only_and_lock(void **state)
{
    struct fixture *f = *state;
    static const char *const cfs[] = {"t"};
    static const char *const missing[] = {"nope"};
    struct kv *kv = open_ok(f->db, cfs, 1, KV_CREATE);
    struct kv *other = NULL;
    struct kv *ro;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    put_str(kv, 0, "k", "v");
    /* RocksDB's LOCK: a second writer is refused with a message. */
    assert_int_equal(kv_open(&other, f->db, cfs, 1, KV_CREATE, errmsg), OZ_EIO);
    assert_null(other);
    assert_non_null(strstr(errmsg, f->db));
    kv_close(kv);

    ro = open_ok(f->db, cfs, 1, KV_READ_ONLY);
    expect_str(ro, 0, "k", "v");
    assert_int_not_equal(kv_put(ro, 0, "k", 1, "w", 1), 0);
    expect_str(ro, 0, "k", "v");
    kv_close(ro);

    assert_int_equal(
        kv_open(&ro, f->db, missing, 1, KV_READ_ONLY | KV_CREATE, errmsg),
        OZ_ENOTFOUND);
    assert_non_null(strstr(errmsg, "'nope'"));
}

static void test_fault_points(void **state)
{
    struct fixture *f = *state;
    struct kv *kv = open_ok(f->db, NULL, 0, KV_CREATE);
    struct kv_batch *b = kv_batch_new();
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char cp[192];
    int v;

    snprintf(cp, sizeof(cp), "%s/checkpoint", f->dir);
    kv_batch_put_layout_version(kv, b, 3);
    fault_set("kv.write", FAULT_ERROR);
    assert_int_equal(kv_write(kv, b, true, errmsg), OZ_EFAULT);
    assert_non_null(strstr(errmsg, f->db));
    assert_int_equal(kv_get_layout_version(kv, &v), OZ_ENOTFOUND);
    fault_set("kv.checkpoint", FAULT_ERROR);
    assert_int_equal(kv_checkpoint(kv, cp, errmsg), OZ_EFAULT);
    fault_clear_all();
    assert_int_equal(kv_write(kv, b, true, errmsg), 0);
    assert_int_equal(kv_get_layout_version(kv, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(kv_checkpoint(kv, cp, errmsg), 0);
    kv_batch_free(b);
    kv_close(kv);
}

struct thread_arg
{
    struct kv *kv;
    int id;
    int failures;
};

static void *writer(void *p)
{
    struct thread_arg *a = p;

    for (int i = 0; i < 500; i++) {
        char k[32];
        void *val;
        size_t len;
        snprintf(k, sizeof(k), "t%d-%d", a->id, i);
        if (kv_put(a->kv, 0, k, strlen(k), k, strlen(k)) != 0 ||
            kv_get(a->kv, 0, k, strlen(k), &val, &len) != 0) {
            a->failures++;
            continue;
        }
        if (len != strlen(k) || memcmp(val, k, len) != 0) {
            a->failures++;
        }
        free(val);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct fixture *f = *state;
    static const char *const cfs[] = {"t"};
    struct kv *kv = open_ok(f->db, cfs, 1, KV_CREATE);
    pthread_t th[4];
    struct thread_arg args[4];
    struct kv_iter *it;
    int n = 0;

    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){.kv = kv, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, writer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    it = kv_iter_new(kv, 0);
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        n++;
    }
    kv_iter_free(it);
    assert_int_equal(n, 2000);
    kv_close(kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_missing_and_create, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_families_on_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_order_and_seek, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_persistence_and_sequence,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_only_and_lock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fault_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
