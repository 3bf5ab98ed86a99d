/* Unit tests of the kv overlay (common/kv.h "Overlay", the OM's double
 * buffer): reads through applied-but-unflushed batches (gets and
 * iterators, deletes hiding DB values), flushes with their stats, a failed
 * flush leaving a frozen batch under newer applies (three layers read at
 * once), kv_write ordering behind pending applies, close and checkpoint
 * flushing, refusals, and readers racing applies and flushes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fault.h"
#include "kv.h"
#include "test_tmpdir.h"

static const char *const cfs[] = {"t", "u"};

struct fixture
{
    char dir[64];
    char db[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_kv_overlay.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fault_clear_all();
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static struct kv *open_db(const char *path, int flags, bool overlay)
{
    struct kv *kv = NULL;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    if (kv_open(&kv, path, cfs, 2, flags, errmsg) != 0) {
        fail_msg("kv_open('%s'): %s", path, errmsg);
    }
    if (overlay && kv_overlay_enable(kv, errmsg) != 0) {
        fail_msg("kv_overlay_enable: %s", errmsg);
    }
    return kv;
}

static void expect_str(struct kv *kv, int cf, const char *k, const char *v)
{
    void *val = NULL;
    size_t len = 0;
    int rc = kv_get(kv, cf, k, strlen(k), &val, &len);

    if (v == NULL) {
        if (rc != OZ_ENOTFOUND) {
            fail_msg("'%s' should be absent, got rc %d", k, rc);
        }
        return;
    }
    if (rc != 0) {
        fail_msg("kv_get('%s') = %d, expected '%s'", k, rc, v);
    }
    if (len != strlen(v) || memcmp(val, v, len) != 0) {
        fail_msg("'%s' is '%.*s', expected '%s'", k, (int)len, (char *)val, v);
    }
    assert_int_equal(((char *)val)[len], '\0');
    free(val);
}

/* Every key=value of family cf in order, as "k=v," text. */
static void expect_scan(struct kv *kv, int cf, const char *want)
{
    char got[512] = "";
    size_t used = 0;
    struct kv_iter *it = kv_iter_new(kv, cf);

    assert_non_null(it);
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        size_t kl = 0, vl = 0;
        const char *k = kv_iter_key(it, &kl);
        const char *v = kv_iter_value(it, &vl);
        used += (size_t)snprintf(got + used, sizeof(got) - used, "%.*s=%.*s,",
                                 (int)kl, k, (int)vl, v);
    }
    kv_iter_free(it);
    if (strcmp(got, want) != 0) {
        fail_msg("scan of family %d is '%s', expected '%s'", cf, got, want);
    }
}

/* The next space-separated word of *p into w (false at the end). */
static bool next_word(const char **p, char *w, size_t size)
{
    size_t n;

    while (**p == ' ') {
        (*p)++;
    }
    n = strcspn(*p, " ");
    if (n == 0 || n >= size) {
        return false;
    }
    memcpy(w, *p, n);
    w[n] = '\0';
    *p += n;
    return true;
}

/* puts: "k=v k=v", dels: "k k" (family 0), applied as one batch. */
static void apply(struct kv *kv,
                  uint64_t tag,
                  const char *puts,
                  const char *dels)
{
    struct kv_batch *b = kv_batch_new();
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char w[64];
    const char *p;

    assert_non_null(b);
    for (p = puts != NULL ? puts : ""; next_word(&p, w, sizeof(w));) {
        char *eq = strchr(w, '=');
        assert_non_null(eq);
        kv_batch_put(b, 0, w, (size_t)(eq - w), eq + 1, strlen(eq + 1));
    }
    for (p = dels != NULL ? dels : ""; next_word(&p, w, sizeof(w));) {
        kv_batch_delete(b, 0, w, strlen(w));
    }
    if (kv_overlay_apply(kv, b, tag, NULL, errmsg) != 0) {
        fail_msg("kv_overlay_apply: %s", errmsg);
    }
    kv_batch_free(b);
}

static void seed(struct kv *kv)
{
    assert_int_equal(kv_put(kv, 0, "a", 1, "1", 1), 0);
    assert_int_equal(kv_put(kv, 0, "b", 1, "2", 1), 0);
    assert_int_equal(kv_put(kv, 0, "c", 1, "3", 1), 0);
    assert_int_equal(kv_put(kv, 1, "x", 1, "9", 1), 0);
}

static void test_reads_see_applied(void **state)
{
    struct fixture *f = *state;
    struct kv *kv = open_db(f->db, KV_CREATE, false);
    struct kv_overlay_stats st;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    uint64_t seq;

    seed(kv);
    assert_int_equal(kv_overlay_enable(kv, errmsg), 0);
    assert_true(kv_overlay_enabled(kv));
    seq = kv_latest_sequence(kv);
    apply(kv, 7, "b=20 d=4", "c");
    /* Visible at once, without a RocksDB write. */
    assert_int_equal(kv_latest_sequence(kv), seq);
    expect_str(kv, 0, "a", "1");
    expect_str(kv, 0, "b", "20");
    expect_str(kv, 0, "c", NULL);
    expect_str(kv, 0, "d", "4");
    expect_str(kv, 1, "x", "9");
    expect_scan(kv, 0, "a=1,b=20,d=4,");
    expect_scan(kv, 1, "x=9,");
    struct kv_iter *it = kv_iter_new(kv, 0);
    kv_iter_seek(it, "c", 1);
    assert_true(kv_iter_valid(it));
    size_t kl = 0;
    assert_memory_equal(kv_iter_key(it, &kl), "d", 1);
    kv_iter_free(it);
    kv_overlay_pending(kv, &st);
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.ops, 3);
    assert_true(st.bytes > 0);
    assert_int_equal(st.last_tag, 7);

    assert_int_equal(kv_overlay_flush(kv, false, &st, errmsg), 0);
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.ops, 3);
    assert_int_equal(st.last_tag, 7);
    assert_true(kv_latest_sequence(kv) == seq + 3);
    kv_overlay_pending(kv, &st);
    assert_int_equal(st.batches, 0);
    /* Nothing left: a second flush writes nothing. */
    assert_int_equal(kv_overlay_flush(kv, true, &st, errmsg), 0);
    assert_int_equal(st.batches, 0);
    expect_scan(kv, 0, "a=1,b=20,d=4,");
    kv_close(kv);
    kv = open_db(f->db, 0, false);
    expect_scan(kv, 0, "a=1,b=20,d=4,");
    kv_close(kv);
}

/* A failed flush keeps its batch frozen; newer applies go above it and
 * reads combine the three layers until a flush succeeds. */
static void test_failed_flush_three_layers(void **state)
{
    struct fixture *f = *state;
    struct kv *kv = open_db(f->db, KV_CREATE, false);
    struct kv_overlay_stats st;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    seed(kv);
    assert_int_equal(kv_overlay_enable(kv, errmsg), 0);
    apply(kv, 1, "b=20 e=5", NULL);
    fault_set("kv.overlay.flush", FAULT_ERROR);
    assert_int_equal(kv_overlay_flush(kv, false, &st, errmsg), OZ_EFAULT);
    assert_non_null(strstr(errmsg, "cannot flush the overlay"));
    assert_int_equal(st.batches, 0);
    expect_scan(kv, 0, "a=1,b=20,c=3,e=5,");
    /* Above the frozen batch: overwrite its b, delete its e and a DB
     * key, re-create a. */
    apply(kv, 2, "b=200", "a e");
    expect_str(kv, 0, "a", NULL);
    expect_str(kv, 0, "b", "200");
    expect_str(kv, 0, "e", NULL);
    expect_str(kv, 0, "c", "3");
    apply(kv, 3, "a=again", "c");
    expect_str(kv, 0, "a", "again");
    expect_str(kv, 0, "c", NULL);
    expect_scan(kv, 0, "a=again,b=200,");
    kv_overlay_pending(kv, &st);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.last_tag, 3);
    /* Still failing: nothing lost, nothing written. */
    assert_int_equal(kv_overlay_flush(kv, false, &st, errmsg), OZ_EFAULT);
    expect_scan(kv, 0, "a=again,b=200,");
    fault_clear_all();
    assert_int_equal(kv_overlay_flush(kv, false, &st, errmsg), 0);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.last_tag, 3);
    kv_overlay_pending(kv, &st);
    assert_int_equal(st.batches, 0);
    expect_scan(kv, 0, "a=again,b=200,");
    kv_close(kv);
    kv = open_db(f->db, 0, false);
    expect_scan(kv, 0, "a=again,b=200,");
    kv_close(kv);
}

/* kv_write, kv_put and kv_delete go behind pending applies, and close and
 * checkpoint flush. */
static void test_write_order_close_checkpoint(void **state)
{
    struct fixture *f = *state;
    struct kv *kv = open_db(f->db, KV_CREATE, true);
    struct kv_batch *b = kv_batch_new();
    struct kv_overlay_stats st;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char cp[160];

    apply(kv, 5, "k=applied j=1", NULL);
    kv_batch_put(b, 0, "k", 1, "written", 7);
    assert_int_equal(kv_write(kv, b, false, errmsg), 0);
    kv_batch_free(b);
    expect_str(kv, 0, "k", "written");
    kv_overlay_pending(kv, &st);
    assert_int_equal(st.batches, 0);
    assert_int_equal(kv_delete(kv, 0, "j", 1), 0);
    apply(kv, 6, "m=pending", NULL);
    assert_int_equal(kv_put(kv, 0, "n", 1, "put", 3), 0);
    /* The checkpoint holds the applied state. */
    snprintf(cp, sizeof(cp), "%s/cp", f->dir);
    apply(kv, 7, "o=in-checkpoint", NULL);
    assert_int_equal(kv_checkpoint(kv, cp, errmsg), 0);
    struct kv *c = open_db(cp, KV_READ_ONLY, false);
    expect_scan(c, 0, "k=written,m=pending,n=put,o=in-checkpoint,");
    kv_close(c);
    /* Close flushes what is still pending. */
    apply(kv, 8, "p=at-close", NULL);
    kv_close(kv);
    kv = open_db(f->db, 0, false);
    expect_scan(kv, 0, "k=written,m=pending,n=put,o=in-checkpoint,p=at-close,");
    kv_close(kv);
}

static void test_refusals(void **state)
{
    struct fixture *f = *state;
    struct kv *kv = open_db(f->db, KV_CREATE, false);
    struct kv_batch *b = kv_batch_new();
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct kv_overlay_stats st;
    struct kv *ro;

    kv_batch_put(b, 0, "k", 1, "v", 1);
    assert_int_equal(kv_overlay_apply(kv, b, 1, NULL, errmsg), OZ_ESTATE);
    assert_non_null(strstr(errmsg, "no overlay"));
    assert_int_equal(kv_overlay_flush(kv, true, &st, errmsg), 0);
    assert_int_equal(kv_overlay_enable(kv, errmsg), 0);
    assert_int_equal(kv_overlay_enable(kv, errmsg), 0); /* idempotent */
    /* A family that is not open refuses the whole batch. */
    kv_batch_put(b, 42, "z", 1, "v", 1);
    assert_int_equal(kv_overlay_apply(kv, b, 1, &st, errmsg), OZ_EINVAL);
    expect_str(kv, 0, "k", NULL);
    kv_overlay_pending(kv, &st);
    assert_int_equal(st.batches, 0);
    assert_int_equal(kv_write_raw(kv, "012345678901", 12, NULL, false, errmsg),
                     OZ_ESTATE);
    kv_batch_free(b);
    kv_close(kv);
    ro = open_db(f->db, KV_READ_ONLY, false);
    assert_int_equal(kv_overlay_enable(ro, errmsg), OZ_EINVAL);
    kv_close(ro);
}

/* ---- readers racing applies and flushes ---- */

#define RACE_APPLIES 3000

struct race
{
    struct kv *kv;
    atomic_int stop;
    atomic_int failures;
    atomic_int flushes;
};

static uint64_t read_counter(struct kv *kv)
{
    void *val = NULL;
    size_t len = 0;
    uint64_t v = 0;

    if (kv_get(kv, 0, "counter", 7, &val, &len) == 0) {
        v = strtoull(val, NULL, 10);
        free(val);
    }
    return v;
}

/* Each apply i puts key%05d and counter=i together: a reader that sees
 * counter c must see key c (batches are atomic), counters never go back
 * and a scan never holds fewer keys than the counter it saw before. */
static void *reader(void *arg)
{
    struct race *r = arg;
    uint64_t last = 0;

    while (!atomic_load(&r->stop)) {
        uint64_t c = read_counter(r->kv);
        char k[16];
        void *val = NULL;
        size_t len = 0;
        if (c < last) {
            atomic_fetch_add(&r->failures, 1);
        }
        last = c;
        if (c > 0) {
            snprintf(k, sizeof(k), "key%05llu", (unsigned long long)c);
            if (kv_get(r->kv, 0, k, strlen(k), &val, &len) != 0) {
                atomic_fetch_add(&r->failures, 1);
            }
            free(val);
        }
        struct kv_iter *it = kv_iter_new(r->kv, 0);
        uint64_t n = 0;
        for (kv_iter_seek(it, "key", 3); kv_iter_valid(it); kv_iter_next(it)) {
            n++;
        }
        kv_iter_free(it);
        if (n < c) {
            atomic_fetch_add(&r->failures, 1);
        }
    }
    return NULL;
}

static void *flusher(void *arg)
{
    struct race *r = arg;
    char errmsg[OZ_ERRMSG_SIZE];

    while (!atomic_load(&r->stop)) {
        if (kv_overlay_flush(r->kv, false, NULL, errmsg) != 0) {
            atomic_fetch_add(&r->failures, 1);
        }
        atomic_fetch_add(&r->flushes, 1);
        usleep(200);
    }
    return NULL;
}

static void test_race(void **state)
{
    struct fixture *f = *state;
    struct race r = {.kv = open_db(f->db, KV_CREATE, true)};
    pthread_t th[3];
    char errmsg[OZ_ERRMSG_SIZE] = "";

    atomic_init(&r.stop, 0);
    atomic_init(&r.failures, 0);
    atomic_init(&r.flushes, 0);
    assert_int_equal(pthread_create(&th[0], NULL, reader, &r), 0);
    assert_int_equal(pthread_create(&th[1], NULL, reader, &r), 0);
    assert_int_equal(pthread_create(&th[2], NULL, flusher, &r), 0);
    for (uint64_t i = 1; i <= RACE_APPLIES; i++) {
        struct kv_batch *b = kv_batch_new();
        char k[16], v[24];
        snprintf(k, sizeof(k), "key%05llu", (unsigned long long)i);
        snprintf(v, sizeof(v), "%llu", (unsigned long long)i);
        kv_batch_put(b, 0, k, strlen(k), v, strlen(v));
        kv_batch_put(b, 0, "counter", 7, v, strlen(v));
        assert_int_equal(kv_overlay_apply(r.kv, b, i, NULL, errmsg), 0);
        kv_batch_free(b);
    }
    atomic_store(&r.stop, 1);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(atomic_load(&r.failures), 0);
    assert_true(atomic_load(&r.flushes) > 0);
    kv_close(r.kv);
    r.kv = open_db(f->db, 0, false);
    assert_int_equal(read_counter(r.kv), RACE_APPLIES);
    kv_close(r.kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_see_applied, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_flush_three_layers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_order_close_checkpoint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_race, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
