/* kv_updates_since / kv_write_raw (Recon's incremental sync of OM, DESIGN.md
 * §9): a copy restored from a checkpoint and fed the WAL batches written
 * after it ends up equal to the source, each batch applied atomically with
 * extra operations; limits split the stream; a sequence the WAL no longer
 * holds (the checkpoint's flush removed it) is OZ_ENOTFOUND, never a
 * silent gap; garbage is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "kv.h"

static const char *const cfs[] = {"volumeTable", "keyTable"};
static char base[256];

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/test_kv_updates.XXXXXX");
    return mkdtemp(base) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static void put_batch(struct kv *kv, int first, int n)
{
    struct kv_batch *b = kv_batch_new();
    char key[32], val[32];
    char errmsg[OZ_ERRMSG_SIZE];

    for (int i = first; i < first + n; i++) {
        int k = snprintf(key, sizeof(key), "/k%04d", i);
        int v = snprintf(val, sizeof(val), "v%d", i);
        kv_batch_put(b, i % 2, key, (size_t)k, val, (size_t)v);
    }
    if (first > 0) {
        kv_batch_delete(b, 0, "/k0000", 6);
    }
    assert_int_equal(kv_write(kv, b, false, errmsg), 0);
    kv_batch_free(b);
}

/* Same keys and values in both families. */
static void assert_same(struct kv *a, struct kv *b)
{
    for (int cf = 0; cf < 2; cf++) {
        /* By name: a copy opened without a list orders families as found
         * on disk. */
        struct kv_iter *ia = kv_iter_new(a, kv_cf(a, cfs[cf]));
        struct kv_iter *ib = kv_iter_new(b, kv_cf(b, cfs[cf]));
        kv_iter_seek_first(ia);
        kv_iter_seek_first(ib);
        while (kv_iter_valid(ia) && kv_iter_valid(ib)) {
            size_t la, lb;
            const void *ka = kv_iter_key(ia, &la);
            const void *kb = kv_iter_key(ib, &lb);
            assert_int_equal(la, lb);
            assert_memory_equal(ka, kb, la);
            ka = kv_iter_value(ia, &la);
            kb = kv_iter_value(ib, &lb);
            assert_int_equal(la, lb);
            assert_memory_equal(ka, kb, la);
            kv_iter_next(ia);
            kv_iter_next(ib);
        }
        assert_false(kv_iter_valid(ia));
        assert_false(kv_iter_valid(ib));
        kv_iter_free(ia);
        kv_iter_free(ib);
    }
}

static void test_replay_onto_checkpoint(void **state)
{
    char src[300], copy[300], errmsg[OZ_ERRMSG_SIZE];
    struct kv *a = NULL, *b = NULL;
    struct kv_update *u = NULL;
    size_t n = 0;

    (void)state;
    snprintf(src, sizeof(src), "%s/src", base);
    snprintf(copy, sizeof(copy), "%s/copy", base);
    assert_int_equal(kv_open(&a, src, cfs, 2, KV_CREATE, errmsg), 0);
    put_batch(a, 0, 3);
    uint64_t at = kv_latest_sequence(a);
    assert_int_equal(kv_checkpoint(a, copy, errmsg), 0);
    /* Up to date: nothing, no error. */
    assert_int_equal(kv_updates_since(a, at, 100, 1 << 20, &u, &n, errmsg), 0);
    assert_int_equal(n, 0);
    for (int i = 1; i <= 10; i++) {
        put_batch(a, i * 10, 4); /* 4 puts and a delete */
    }
    /* A limit of 12 operations: three batches of 5. */
    assert_int_equal(kv_updates_since(a, at, 12, 1 << 20, &u, &n, errmsg), 0);
    assert_int_equal(n, 3);
    assert_int_equal(u[0].sequence, at + 1);
    assert_int_equal(u[0].count, 5);
    assert_int_equal(u[1].sequence, at + 6);
    kv_updates_free(u, n);

    assert_int_equal(kv_open(&b, copy, NULL, 0, 0, errmsg), 0);
    uint64_t seq = at;
    for (;;) {
        assert_int_equal(kv_updates_since(a, seq, 7, 1 << 20, &u, &n, errmsg),
                         0);
        if (n == 0) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            struct kv_batch *extra = kv_batch_new();
            kv_batch_put(extra, kv_cf(b, KV_META_CF), "#SEQ", 4, "x", 1);
            assert_int_equal(
                kv_write_raw(b, u[i].data, u[i].len, extra, false, errmsg), 0);
            kv_batch_free(extra);
            seq = u[i].sequence + u[i].count - 1;
        }
        kv_updates_free(u, n);
    }
    assert_int_equal(seq, kv_latest_sequence(a));
    assert_same(a, b);
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(kv_get(b, kv_cf(b, KV_META_CF), "#SEQ", 4, &v, &vl), 0);
    free(v);

    /* Garbage is not a batch. */
    assert_int_equal(kv_write_raw(b, "short", 5, NULL, false, errmsg),
                     OZ_ECORRUPT);
    kv_close(b);
    kv_close(a);
}

static void test_gap_is_not_found(void **state)
{
    char src[300], cp[300], errmsg[OZ_ERRMSG_SIZE];
    struct kv *a = NULL;
    struct kv_update *u = NULL;
    size_t n = 0;

    (void)state;
    snprintf(src, sizeof(src), "%s/gap", base);
    snprintf(cp, sizeof(cp), "%s/gap-cp", base);
    assert_int_equal(kv_open(&a, src, cfs, 2, KV_CREATE, errmsg), 0);
    put_batch(a, 0, 3);
    put_batch(a, 10, 3);
    /* The checkpoint flushes the memtable: the old WAL goes away. */
    assert_int_equal(kv_checkpoint(a, cp, errmsg), 0);
    put_batch(a, 20, 3);
    assert_int_equal(kv_updates_since(a, 1, 100, 1 << 20, &u, &n, errmsg),
                     OZ_ENOTFOUND);
    assert_null(u);
    assert_non_null(strstr(errmsg, "no longer holds"));
    kv_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_onto_checkpoint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gap_is_not_found, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
