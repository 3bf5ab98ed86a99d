/* The rolling-upgrade orchestrator's lease and journal in OM
 * (services/om/om_orch.c), applied through om_submit to a real RocksDB in
 * a temporary directory: lease acquire / held / expiry / takeover / renew /
 * release, input limits, journal append with and without the lease, seq
 * and time assignment, reads (paging, last run), trimming to the newest
 * OM_ORCH_JOURNAL_MAX entries, determinism (the same ops on two DBs give
 * the same bytes, DESIGN.md §8.1) and acceptance while prepared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kv.h"
#include "om_orch.h"
#include "om_state.h"
#include "test_tmpdir.h"

#define OK OZONE__RESULT_CODE__OK
#define HELD OZONE__RESULT_CODE__UPGRADE_LEASE_HELD
#define LOST OZONE__RESULT_CODE__UPGRADE_LEASE_LOST
#define INVALID OZONE__RESULT_CODE__INVALID_ARGUMENT
#define ACQUIRE OZONE__OM__OM_LEASE_ACTION__LEASE_ACQUIRE
#define RENEW OZONE__OM__OM_LEASE_ACTION__LEASE_RENEW
#define RELEASE OZONE__OM__OM_LEASE_ACTION__LEASE_RELEASE
/* 2023-11-14T22:13:20Z */
#define T0 1700000000000ull

struct fixture
{
    char dir[64];
    char db[128];
    struct kv *kv;
    struct om om;
    struct om_result res; /* outcome of the last op */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char errmsg[OZ_ERRMSG_SIZE] = "";

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_om_orch.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/db", f->dir);
    if (kv_open(&f->kv, f->db, om_cf_names, OM_N_CFS, KV_CREATE, errmsg) != 0 ||
        om_init(&f->om, f->kv, errmsg) != 0) {
        fail_msg("cannot open the OM DB: %s", errmsg);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    om_release(&f->om);
    kv_close(f->kv);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static Ozone__ResultCode submit(struct fixture *f,
                                Ozone__Om__OmWriteOp *op,
                                uint64_t now)
{
    op->time_ms = now;
    op->index = 0;
    assert_int_equal(om_submit(&f->om, op, &f->res), 0);
    return f->res.code;
}

static Ozone__ResultCode lease_op(struct fixture *f,
                                  Ozone__Om__OmLeaseAction action,
                                  const char *holder,
                                  uint64_t ttl,
                                  const char *takeover_from,
                                  uint64_t now)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmUpgradeLeaseOp r = OZONE__OM__OM_UPGRADE_LEASE_OP__INIT;
    Ozone__Om__OmUpgradeLease l = OZONE__OM__OM_UPGRADE_LEASE__INIT;
    char host[64], run[64];

    /* Host and run follow from the holder's name: "A" runs on host-A. */
    snprintf(host, sizeof(host), "host-%s", holder);
    snprintf(run, sizeof(run), "R-%s", holder);
    l.holder = (char *)holder;
    l.host = host;
    l.pid = 4242;
    l.run_id = run;
    r.action = action;
    r.lease = &l;
    r.ttl_ms = ttl;
    r.takeover_from = (char *)(takeover_from != NULL ? takeover_from : "");
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_UPGRADE_LEASE;
    op.upgrade_lease = &r;
    return submit(f, &op, now);
}

static Ozone__ResultCode acquire(struct fixture *f,
                                 const char *holder,
                                 uint64_t ttl,
                                 uint64_t now)
{
    return lease_op(f, ACQUIRE, holder, ttl, NULL, now);
}

/* Appends n entries (step 1..n of run, action "stop", status "OK"). */
static Ozone__ResultCode append(struct fixture *f,
                                const char *holder,
                                const char *run,
                                size_t n,
                                uint64_t now)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmUpgradeJournalAppendRequest r =
        OZONE__OM__OM_UPGRADE_JOURNAL_APPEND_REQUEST__INIT;
    Ozone__Om__OmUpgradeJournalEntry *e = calloc(n + 1, sizeof(*e));
    Ozone__Om__OmUpgradeJournalEntry **p = calloc(n + 1, sizeof(*p));
    Ozone__ResultCode code;

    assert_non_null(e);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        ozone__om__om_upgrade_journal_entry__init(&e[i]);
        e[i].seq = 999; /* assigned at apply: ignored */
        e[i].time_ms = 1;
        e[i].run_id = (char *)run;
        e[i].holder = "someone else";
        e[i].step = (uint32_t)(i + 1);
        e[i].steps = (uint32_t)n;
        e[i].node = "dn1";
        e[i].kind = "DATANODE";
        e[i].action = "stop";
        e[i].status = "OK";
        e[i].detail = "stopped";
        e[i].backend = "local";
        p[i] = &e[i];
    }
    r.holder = (char *)holder;
    r.entries = p;
    r.n_entries = n;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_UPGRADE_JOURNAL;
    op.upgrade_journal = &r;
    code = submit(f, &op, now);
    free(p);
    free(e);
    return code;
}

static Ozone__Om__OmUpgradeLease *lease_now(struct fixture *f)
{
    Ozone__Om__OmUpgradeJournalReadResponse out =
        OZONE__OM__OM_UPGRADE_JOURNAL_READ_RESPONSE__INIT;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    assert_int_equal(om_orch_read(&f->om, 0, 1, false, NULL, &out, errmsg), 0);
    Ozone__Om__OmUpgradeLease *l = out.lease;
    out.lease = NULL;
    om_orch_read_release(&out);
    return l;
}

static void assert_message_has(struct fixture *f, const char *text)
{
    if (strstr(f->res.message, text) == NULL) {
        fail_msg("message '%s' lacks '%s'", f->res.message, text);
    }
}

static void test_lease(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__OmUpgradeLease *l;

    /* Granted when free. */
    assert_int_equal(acquire(f, "A", 10000, T0), OK);
    l = lease_now(f);
    assert_non_null(l);
    assert_string_equal(l->holder, "A");
    assert_string_equal(l->host, "host-A");
    assert_int_equal(l->pid, 4242);
    assert_string_equal(l->run_id, "R-A");
    assert_true(l->acquired_ms == T0);
    assert_true(l->expires_ms == T0 + 10000);
    om_msg_free(&l->base);

    /* Held: the refusal names the holder, its host, pid, run, expiry and
     * what to do. */
    assert_int_equal(acquire(f, "B", 10000, T0 + 1), HELD);
    assert_message_has(f, "held by 'A' (host host-A, pid 4242, run R-A)");
    assert_message_has(f, "until 2023-11-14T22:13:30Z");
    assert_message_has(f, "ozone admin upgrade run --resume' on host-A");

    /* Acquire again by the holder: extends, keeps acquired_ms. */
    assert_int_equal(acquire(f, "A", 10000, T0 + 2000), OK);
    l = lease_now(f);
    assert_true(l->acquired_ms == T0);
    assert_true(l->expires_ms == T0 + 12000);
    om_msg_free(&l->base);

    /* Renew by a non-holder: LOST naming the holder. */
    assert_int_equal(lease_op(f, RENEW, "B", 10000, NULL, T0 + 3000), LOST);
    assert_message_has(f, "'B' does not hold the upgrade lease");
    assert_message_has(f, "held by 'A'");
    /* Renew by the holder. */
    assert_int_equal(lease_op(f, RENEW, "A", 10000, NULL, T0 + 5000), OK);
    l = lease_now(f);
    assert_true(l->acquired_ms == T0);
    assert_true(l->expires_ms == T0 + 15000);
    om_msg_free(&l->base);

    /* Expiry is judged at the op's time: one ms before, still held. */
    assert_int_equal(acquire(f, "B", 10000, T0 + 14999), HELD);
    assert_int_equal(acquire(f, "B", 10000, T0 + 15000), OK);
    l = lease_now(f);
    assert_string_equal(l->holder, "B");
    assert_true(l->acquired_ms == T0 + 15000);
    om_msg_free(&l->base);

    /* A's renew after losing it: LOST naming B. */
    assert_int_equal(lease_op(f, RENEW, "A", 10000, NULL, T0 + 16000), LOST);
    assert_message_has(f, "held by 'B' (host host-B");

    /* Takeover names the current holder; a wrong name is refused. */
    assert_int_equal(lease_op(f, ACQUIRE, "C", 10000, "A", T0 + 17000), HELD);
    assert_int_equal(lease_op(f, ACQUIRE, "C", 10000, "B", T0 + 17000), OK);
    l = lease_now(f);
    assert_string_equal(l->holder, "C");
    om_msg_free(&l->base);

    /* Renew by the holder after expiry: LOST saying it expired. */
    assert_int_equal(lease_op(f, RENEW, "C", 10000, NULL, T0 + 27000), LOST);
    assert_message_has(f, "it expired at 2023-11-14T22:13:47Z");

    /* Release: non-holder refused; holder frees it; nothing left. */
    assert_int_equal(acquire(f, "C", 10000, T0 + 30000), OK);
    assert_int_equal(lease_op(f, RELEASE, "B", 0, NULL, T0 + 30001), LOST);
    assert_int_equal(lease_op(f, RELEASE, "C", 0, NULL, T0 + 30002), OK);
    assert_null(lease_now(f));
    assert_int_equal(lease_op(f, RELEASE, "C", 0, NULL, T0 + 30003), LOST);
    assert_message_has(f, "nobody holds it");
    /* A released lease is free at once. */
    assert_int_equal(acquire(f, "D", 10000, T0 + 30004), OK);
}

static const struct lease_case
{
    Ozone__Om__OmLeaseAction action;
    const char *holder;
    uint64_t ttl;
    const char *needle;
} lease_cases[] = {
    {ACQUIRE, "", 10000, "lease holder is empty"},
    {ACQUIRE, "A", 999, "ttl 999 ms is out of range"},
    {ACQUIRE, "A", 3600001, "ttl 3600001 ms is out of range"},
    {RENEW, "A", 0, "ttl 0 ms is out of range"},
    {(Ozone__Om__OmLeaseAction)7, "A", 10000, "unknown upgrade lease action"},
    {ACQUIRE, "LONG", 10000, "lease holder is 300 bytes long"},
};

static void test_lease_invalid(void **state)
{
    struct fixture *f = *state;
    char longname[301];
    uint64_t applied = 0;

    memset(longname, 'x', 300);
    longname[300] = '\0';
    /* Limits are accepted at both ends. */
    assert_int_equal(acquire(f, "A", OM_ORCH_TTL_MIN_MS, T0), OK);
    assert_int_equal(acquire(f, "A", OM_ORCH_TTL_MAX_MS, T0 + 1), OK);
    assert_int_equal(lease_op(f, RELEASE, "A", 0, NULL, T0 + 2), OK);
    for (size_t i = 0; i < sizeof(lease_cases) / sizeof(lease_cases[0]); i++) {
        const struct lease_case *c = &lease_cases[i];
        const char *holder =
            strcmp(c->holder, "LONG") == 0 ? longname : c->holder;
        Ozone__ResultCode code =
            lease_op(f, c->action, holder, c->ttl, NULL, T0 + 10 + i);
        if (code != INVALID || strstr(f->res.message, c->needle) == NULL) {
            fail_msg(
                "case %zu: code %d message '%s', want INVALID_ARGUMENT "
                "with '%s'",
                i, (int)code, f->res.message, c->needle);
        }
        /* Refused, yet the index is consumed like any refused op. */
        assert_int_equal(om_read_applied_index(&f->om, &applied), 0);
        assert_true(applied == 4 + i);
    }
    assert_null(lease_now(f));
}

static void test_journal_append(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__OmUpgradeJournalReadResponse out =
        OZONE__OM__OM_UPGRADE_JOURNAL_READ_RESPONSE__INIT;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    /* No lease: refused, nothing stored. */
    assert_int_equal(append(f, "A", "R-1", 2, T0), LOST);
    assert_message_has(f, "journal append refused: 'A' does not hold");
    assert_int_equal(om_orch_read(&f->om, 0, 0, false, NULL, &out, errmsg), 0);
    assert_int_equal(out.n_entries, 0);
    om_orch_read_release(&out);

    assert_int_equal(acquire(f, "A", 10000, T0), OK);
    /* Another holder's append: refused naming A. */
    assert_int_equal(append(f, "B", "R-1", 1, T0 + 1), LOST);
    assert_message_has(f, "held by 'A'");
    assert_int_equal(append(f, "A", "R-1", 3, T0 + 100), OK);
    assert_message_has(f, "as seq 1 to seq 3");
    /* run_id empty: the lease's run. */
    assert_int_equal(append(f, "A", "", 2, T0 + 200), OK);
    assert_message_has(f, "as seq 4 to seq 5");
    /* Expired at the op's time: refused. */
    assert_int_equal(append(f, "A", "R-1", 1, T0 + 10000), LOST);
    assert_message_has(f, "it expired at");

    assert_int_equal(om_orch_read(&f->om, 0, 0, false, NULL, &out, errmsg), 0);
    assert_int_equal(out.n_entries, 5);
    for (size_t i = 0; i < out.n_entries; i++) {
        const Ozone__Om__OmUpgradeJournalEntry *e = out.entries[i];
        assert_true(e->seq == i + 1);
        assert_true(e->time_ms == (i < 3 ? T0 + 100 : T0 + 200));
        assert_string_equal(e->holder, "A"); /* the appender, not the body */
        assert_string_equal(e->run_id, i < 3 ? "R-1" : "R-A");
        assert_string_equal(e->action, "stop");
        assert_string_equal(e->node, "dn1");
    }
    assert_non_null(out.lease);
    assert_string_equal(out.lease->holder, "A");
    om_orch_read_release(&out);

    /* Paging: after_seq and limit. */
    assert_int_equal(om_orch_read(&f->om, 2, 2, false, NULL, &out, errmsg), 0);
    assert_int_equal(out.n_entries, 2);
    assert_true(out.entries[0]->seq == 3 && out.entries[1]->seq == 4);
    om_orch_read_release(&out);
    assert_int_equal(om_orch_read(&f->om, 5, 0, false, NULL, &out, errmsg), 0);
    assert_int_equal(out.n_entries, 0);
    om_orch_read_release(&out);

    /* last_run: only the newest entry's run. */
    assert_int_equal(om_orch_read(&f->om, 0, 0, true, NULL, &out, errmsg), 0);
    assert_int_equal(out.n_entries, 2);
    assert_true(out.entries[0]->seq == 4);
    assert_string_equal(out.entries[1]->run_id, "R-A");
    om_orch_read_release(&out);

    /* The lease is reported even once expired (readers judge it). */
    assert_int_equal(acquire(f, "B", 10000, T0 + 20000), OK);
    assert_int_equal(append(f, "B", "R-2", 1, T0 + 20001), OK);
    assert_message_has(f, "as seq 6 to seq 6");
    assert_int_equal(om_orch_read(&f->om, 0, 0, true, NULL, &out, errmsg), 0);
    assert_int_equal(out.n_entries, 1);
    assert_string_equal(out.entries[0]->run_id, "R-2");
    assert_string_equal(out.lease->holder, "B");
    om_orch_read_release(&out);
}

static const struct append_case
{
    size_t n;
    const char *field; /* NULL: entry count; else set to a bad value */
    const char *needle;
} append_cases[] = {
    {0, NULL, "carries 0 entries; send 1 to 100"},
    {101, NULL, "carries 101 entries; send 1 to 100"},
    {1, "action", "has no action or no status"},
    {1, "status", "has no action or no status"},
    {1, "detail", "detail is 3000 bytes long"},
    {1, "node", "node is 3000 bytes long"},
    {1, "holder", "journal holder is empty"},
};

static void test_append_invalid(void **state)
{
    struct fixture *f = *state;
    static char big[3001];
    Ozone__Om__OmUpgradeJournalEntry e =
        OZONE__OM__OM_UPGRADE_JOURNAL_ENTRY__INIT;
    Ozone__Om__OmUpgradeJournalEntry *p[101];

    memset(big, 'd', 3000);
    assert_int_equal(acquire(f, "A", 10000, T0), OK);
    for (size_t i = 0; i < sizeof(append_cases) / sizeof(append_cases[0]);
         i++) {
        const struct append_case *c = &append_cases[i];
        Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
        Ozone__Om__OmUpgradeJournalAppendRequest r =
            OZONE__OM__OM_UPGRADE_JOURNAL_APPEND_REQUEST__INIT;

        ozone__om__om_upgrade_journal_entry__init(&e);
        e.action = "stop";
        e.status = "OK";
        r.holder = "A";
        if (c->field != NULL && strcmp(c->field, "action") == 0) {
            e.action = "";
        } else if (c->field != NULL && strcmp(c->field, "status") == 0) {
            e.status = "";
        } else if (c->field != NULL && strcmp(c->field, "detail") == 0) {
            e.detail = big;
        } else if (c->field != NULL && strcmp(c->field, "node") == 0) {
            e.node = big;
        } else if (c->field != NULL && strcmp(c->field, "holder") == 0) {
            r.holder = "";
        }
        for (size_t j = 0; j < c->n; j++) {
            p[j] = &e;
        }
        r.entries = p;
        r.n_entries = c->n;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_UPGRADE_JOURNAL;
        op.upgrade_journal = &r;
        Ozone__ResultCode code = submit(f, &op, T0 + 1 + i);
        if (code != INVALID || strstr(f->res.message, c->needle) == NULL) {
            fail_msg(
                "case %zu: code %d message '%s', want INVALID_ARGUMENT "
                "with '%s'",
                i, (int)code, f->res.message, c->needle);
        }
    }
    /* 100 is the largest accepted append. */
    assert_int_equal(append(f, "A", "R", OM_ORCH_APPEND_MAX, T0 + 100), OK);
}

static size_t count_journal_keys(struct fixture *f, uint64_t *first)
{
    struct kv_iter *it = kv_iter_new(f->kv, f->om.cf[OM_META_TABLE]);
    size_t plen = strlen(OM_ORCH_JOURNAL_PREFIX), n = 0;

    assert_non_null(it);
    *first = 0;
    for (kv_iter_seek(it, OM_ORCH_JOURNAL_PREFIX, plen); kv_iter_valid(it);
         kv_iter_next(it)) {
        size_t klen = 0;
        const char *k = kv_iter_key(it, &klen);
        if (klen < plen || memcmp(k, OM_ORCH_JOURNAL_PREFIX, plen) != 0) {
            break;
        }
        if (n++ == 0) {
            char digits[32] = ""; /* keys are not NUL-terminated */
            assert_true(klen - plen < sizeof(digits));
            memcpy(digits, k + plen, klen - plen);
            *first = strtoull(digits, NULL, 10);
        }
    }
    kv_iter_free(it);
    return n;
}

static void test_trim(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__OmUpgradeJournalReadResponse out =
        OZONE__OM__OM_UPGRADE_JOURNAL_READ_RESPONSE__INIT;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    size_t appends = OM_ORCH_JOURNAL_MAX / OM_ORCH_APPEND_MAX;
    uint64_t first = 0;

    assert_int_equal(acquire(f, "A", OM_ORCH_TTL_MAX_MS, T0), OK);
    for (size_t i = 0; i < appends; i++) {
        assert_int_equal(append(f, "A", "R", OM_ORCH_APPEND_MAX, T0 + 1 + i),
                         OK);
    }
    assert_int_equal(count_journal_keys(f, &first), OM_ORCH_JOURNAL_MAX);
    assert_true(first == 1);
    /* Past the limit, the oldest go in the same batch. */
    assert_int_equal(append(f, "A", "R", 30, T0 + 5000), OK);
    assert_int_equal(count_journal_keys(f, &first), OM_ORCH_JOURNAL_MAX);
    assert_true(first == 31);
    assert_int_equal(append(f, "A", "R2", 1, T0 + 5001), OK);
    assert_int_equal(count_journal_keys(f, &first), OM_ORCH_JOURNAL_MAX);
    assert_true(first == 32);
    /* Reads still work from a trimmed start; the cap holds. */
    assert_int_equal(om_orch_read(&f->om, 0, 50000, false, NULL, &out, errmsg),
                     0);
    assert_int_equal(out.n_entries, OM_ORCH_READ_MAX);
    assert_true(out.entries[0]->seq == 32);
    assert_true(out.entries[out.n_entries - 1]->seq == 10031);
    om_orch_read_release(&out);
    assert_int_equal(om_orch_read(&f->om, 0, 0, true, NULL, &out, errmsg), 0);
    assert_int_equal(out.n_entries, 1);
    assert_true(out.entries[0]->seq == 10031);
    om_orch_read_release(&out);
}

/* FNV-1a over every entry of every table. */
static uint64_t digest(struct fixture *f)
{
    uint64_t h = 1469598103934665603ull;

    for (int t = 0; t < OM_TABLE_COUNT; t++) {
        struct kv_iter *it = kv_iter_new(f->kv, f->om.cf[t]);
        assert_non_null(it);
        for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
            size_t kl = 0, vl = 0;
            const unsigned char *k = kv_iter_key(it, &kl);
            const unsigned char *v = kv_iter_value(it, &vl);
            for (size_t i = 0; i < kl; i++) {
                h = (h ^ k[i]) * 1099511628211ull;
            }
            for (size_t i = 0; i < vl; i++) {
                h = (h ^ v[i]) * 1099511628211ull;
            }
            h = (h ^ (uint64_t)t) * 1099511628211ull;
        }
        kv_iter_free(it);
    }
    return h;
}

static void workload(struct fixture *f, uint64_t base)
{
    assert_int_equal(append(f, "A", "R-1", 1, base), LOST);
    assert_int_equal(acquire(f, "A", 5000, base + 1), OK);
    assert_int_equal(append(f, "A", "R-1", 4, base + 2), OK);
    assert_int_equal(acquire(f, "B", 5000, base + 3), HELD);
    assert_int_equal(lease_op(f, RENEW, "A", 5000, NULL, base + 4), OK);
    assert_int_equal(acquire(f, "B", 5000, base + 6000), OK);
    assert_int_equal(append(f, "A", "R-1", 1, base + 6001), LOST);
    assert_int_equal(append(f, "B", "R-2", 2, base + 6002), OK);
    assert_int_equal(lease_op(f, RELEASE, "B", 0, NULL, base + 6003), OK);
}

static void test_deterministic(void **state)
{
    struct fixture *f = *state;
    struct fixture *g = NULL;

    workload(f, T0);
    assert_int_equal(setup((void **)&g), 0);
    workload(g, T0);
    assert_true(digest(f) == digest(g));
    /* The digest sees the op times (they are stored): another clock gives
     * other bytes. */
    assert_int_equal(acquire(f, "C", 5000, T0 + 7000), OK);
    assert_int_equal(acquire(g, "C", 5000, T0 + 7001), OK);
    assert_false(digest(f) == digest(g));
    teardown((void **)&g);
}

static void test_accepted_while_prepared(void **state)
{
    struct fixture *f = *state;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmPrepareOp prep = OZONE__OM__OM_PREPARE_OP__INIT;
    Ozone__Om__CreateVolumeRequest cv = OZONE__OM__CREATE_VOLUME_REQUEST__INIT;
    Ozone__Om__VolumeInfo v = OZONE__OM__VOLUME_INFO__INIT;
    uint64_t prepared = 0;

    op.op_case = OZONE__OM__OM_WRITE_OP__OP_PREPARE;
    op.prepare = &prep;
    assert_int_equal(submit(f, &op, T0), OK);
    assert_int_equal(om_read_prepared_index(&f->om, &prepared), 0);
    /* A namespace write is refused... */
    v.name = "vol";
    v.owner = "o";
    v.admin = "ozone";
    cv.volume = &v;
    op = (Ozone__Om__OmWriteOp)OZONE__OM__OM_WRITE_OP__INIT;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_CREATE_VOLUME;
    op.create_volume = &cv;
    assert_int_equal(submit(f, &op, T0 + 1),
                     OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_WHEN_PREPARED);
    /* ...the orchestrator's lease and journal are not. */
    assert_int_equal(acquire(f, "A", 10000, T0 + 2), OK);
    assert_int_equal(append(f, "A", "R-1", 2, T0 + 3), OK);
    assert_int_equal(lease_op(f, RENEW, "A", 10000, NULL, T0 + 4), OK);
    assert_int_equal(lease_op(f, RELEASE, "A", 0, NULL, T0 + 5), OK);
}

static void test_op_names(void **state)
{
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmUpgradeLeaseOp l = OZONE__OM__OM_UPGRADE_LEASE_OP__INIT;
    Ozone__Om__OmUpgradeJournalAppendRequest j =
        OZONE__OM__OM_UPGRADE_JOURNAL_APPEND_REQUEST__INIT;

    (void)state;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_UPGRADE_LEASE;
    op.upgrade_lease = &l;
    assert_string_equal(om_op_name(&op), "UpgradeLease");
    assert_true(om_orch_is_orch_op(&op));
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_UPGRADE_JOURNAL;
    op.upgrade_journal = &j;
    assert_string_equal(om_op_name(&op), "UpgradeJournalAppend");
    assert_non_null(om_orch_apply_for(&op));
    op.upgrade_journal = NULL; /* no body: no apply function */
    assert_null(om_orch_apply_for(&op));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accepted_while_prepared, setup,
                                        teardown),
        cmocka_unit_test(test_op_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
