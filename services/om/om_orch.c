/* The rolling-upgrade orchestrator's lease and journal in the OM's
 * replicated state (om_orch.h): validation, the two apply functions, the
 * journal read, and the three OmUpgradeService handlers.
 *
 * The apply functions are pure functions of (op, tables) like every other
 * (DESIGN.md §8.1): lease expiry is judged against op->time_ms, the
 * proposer's clock carried in the entry, and seq numbers come from the
 * replicated counter, so every OM of a ring writes the same bytes. */
#include "om_orch.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "om_service.h"

/* "#UPGRADEJOURNAL/" + 20 digits. */
#define JOURNAL_KEY_SIZE 48
#define SEQ_DIGITS 20

/* ---- keys and small helpers ---- */

static size_t journal_key(char *out, uint64_t seq)
{
    int n = snprintf(out, JOURNAL_KEY_SIZE, "%s%020" PRIu64,
                     OM_ORCH_JOURNAL_PREFIX, seq);

    return n > 0 ? (size_t)n : 0;
}

/* seq of a journal table key, or false when key is not one. */
static bool journal_seq_of(const char *key, size_t klen, uint64_t *seq)
{
    size_t plen = strlen(OM_ORCH_JOURNAL_PREFIX);
    uint64_t v = 0;

    if (klen != plen + SEQ_DIGITS ||
        memcmp(key, OM_ORCH_JOURNAL_PREFIX, plen) != 0) {
        return false;
    }
    for (size_t i = plen; i < klen; i++) {
        if (key[i] < '0' || key[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(key[i] - '0');
    }
    *seq = v;
    return true;
}

static size_t len_of(const char *s)
{
    return s != NULL ? strlen(s) : 0;
}

static const char *str_or(const char *s, const char *dflt)
{
    return s != NULL && s[0] != '\0' ? s : dflt;
}

/* ms since the epoch as "2026-11-22T08:01:02Z" (UTC: no time zone, so
 * the text is the same on every OM). */
static const char *utc_text(uint64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(buf, size, "%" PRIu64 " ms", ms);
    }
    return buf;
}

/* "'<holder>' (host H, pid P, run R) until <time>" of a lease. */
static void describe_lease(const Ozone__Om__OmUpgradeLease *l,
                           char *out,
                           size_t size)
{
    char when[48];

    snprintf(out, size, "'%s' (host %s, pid %u, run %s) until %s", l->holder,
             str_or(l->host, "?"), l->pid, str_or(l->run_id, "?"),
             utc_text(l->expires_ms, when, sizeof(when)));
}

/* The current lease (NULL when there is none), malloc'd: free with
 * om_msg_free. false with res INTERNAL_ERROR when it cannot be read. */
static bool read_lease(struct om *om,
                       ProtobufCAllocator *alloc,
                       Ozone__Om__OmUpgradeLease **out,
                       struct om_result *res)
{
    ProtobufCMessage *m = NULL;
    int rc = om_db_get(om, OM_META_TABLE, OM_ORCH_LEASE_KEY,
                       strlen(OM_ORCH_LEASE_KEY),
                       &ozone__om__om_upgrade_lease__descriptor, alloc, &m);

    *out = NULL;
    if (rc == OZ_ENOTFOUND) {
        return true;
    }
    if (rc != 0) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot read the upgrade lease '%s' from the OM "
                      "metadata DB: %s",
                      OM_ORCH_LEASE_KEY, oz_strerror(rc));
        return false;
    }
    *out = (Ozone__Om__OmUpgradeLease *)m;
    return true;
}

/* The last seq assigned (0: none yet). 0, or OZ_ECORRUPT / OZ_EIO. */
static int read_last_seq(struct om *om, uint64_t *out)
{
    void *val = NULL;
    size_t len = 0;
    char *end = NULL;
    int rc;

    *out = 0;
    rc = kv_get(om->kv, om->cf[OM_META_TABLE], OM_ORCH_JOURNAL_SEQ_KEY,
                strlen(OM_ORCH_JOURNAL_SEQ_KEY), &val, &len);
    if (rc == OZ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    unsigned long long v = strtoull(val, &end, 10);
    rc = len == 0 || len > SEQ_DIGITS || end != (char *)val + len ? OZ_ECORRUPT
                                                                  : 0;
    free(val);
    if (rc == 0) {
        *out = v;
    }
    return rc;
}

/* ---- validation ---- */

static bool check_len(const char *field,
                      const char *value,
                      size_t max,
                      bool required,
                      struct om_result *res)
{
    size_t n = len_of(value);

    if (required && n == 0) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "%s is empty; the orchestrator must name itself "
                      "(\"<host>:<pid>:<random hex>\")",
                      field);
        return false;
    }
    if (n > max) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "%s is %zu bytes long; at most %zu are accepted", field,
                      n, max);
        return false;
    }
    return true;
}

bool om_orch_lease_op_valid(const Ozone__Om__OmUpgradeLeaseOp *op,
                            struct om_result *res)
{
    const Ozone__Om__OmUpgradeLease *l = op->lease;

    if (op->action != OZONE__OM__OM_LEASE_ACTION__LEASE_ACQUIRE &&
        op->action != OZONE__OM__OM_LEASE_ACTION__LEASE_RENEW &&
        op->action != OZONE__OM__OM_LEASE_ACTION__LEASE_RELEASE) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "unknown upgrade lease action %d; use ACQUIRE, RENEW "
                      "or RELEASE",
                      (int)op->action);
        return false;
    }
    if (l == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "upgrade lease operation names no holder");
        return false;
    }
    if (!check_len("lease holder", l->holder, OM_ORCH_ID_MAX, true, res) ||
        !check_len("lease host", l->host, OM_ORCH_ID_MAX, false, res) ||
        !check_len("lease run id", l->run_id, OM_ORCH_ID_MAX, false, res) ||
        !check_len("takeover_from", op->takeover_from, OM_ORCH_ID_MAX, false,
                   res)) {
        return false;
    }
    if (op->action != OZONE__OM__OM_LEASE_ACTION__LEASE_RELEASE &&
        (op->ttl_ms < OM_ORCH_TTL_MIN_MS || op->ttl_ms > OM_ORCH_TTL_MAX_MS)) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "upgrade lease ttl %" PRIu64
                      " ms is out of range; use %u "
                      "to %u ms (ozone.upgrade.lease.timeout)",
                      op->ttl_ms, OM_ORCH_TTL_MIN_MS, OM_ORCH_TTL_MAX_MS);
        return false;
    }
    return true;
}

static bool entry_valid(size_t i,
                        const Ozone__Om__OmUpgradeJournalEntry *e,
                        struct om_result *res)
{
    static const struct
    {
        const char *name;
        size_t offset;
        size_t max;
    } fields[] = {
        {"run_id", offsetof(Ozone__Om__OmUpgradeJournalEntry, run_id),
         OM_ORCH_ID_MAX},
        {"holder", offsetof(Ozone__Om__OmUpgradeJournalEntry, holder),
         OM_ORCH_ID_MAX},
        {"node", offsetof(Ozone__Om__OmUpgradeJournalEntry, node),
         OM_ORCH_WORD_MAX},
        {"kind", offsetof(Ozone__Om__OmUpgradeJournalEntry, kind),
         OM_ORCH_WORD_MAX},
        {"action", offsetof(Ozone__Om__OmUpgradeJournalEntry, action),
         OM_ORCH_WORD_MAX},
        {"status", offsetof(Ozone__Om__OmUpgradeJournalEntry, status),
         OM_ORCH_WORD_MAX},
        {"detail", offsetof(Ozone__Om__OmUpgradeJournalEntry, detail),
         OM_ORCH_TEXT_MAX},
        {"from_bin", offsetof(Ozone__Om__OmUpgradeJournalEntry, from_bin),
         OM_ORCH_PATH_MAX},
        {"to_bin", offsetof(Ozone__Om__OmUpgradeJournalEntry, to_bin),
         OM_ORCH_PATH_MAX},
        {"backend", offsetof(Ozone__Om__OmUpgradeJournalEntry, backend),
         OM_ORCH_WORD_MAX},
    };

    if (e == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "journal entry %zu is missing", i);
        return false;
    }
    if (len_of(e->action) == 0 || len_of(e->status) == 0) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "journal entry %zu has no action or no status; every "
                      "entry says what was done and how it ended",
                      i);
        return false;
    }
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        const char *v =
            *(const char *const *)((const char *)e + fields[f].offset);
        if (len_of(v) > fields[f].max) {
            om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                          "journal entry %zu: %s is %zu bytes long; at most "
                          "%zu are accepted",
                          i, fields[f].name, len_of(v), fields[f].max);
            return false;
        }
    }
    return true;
}

bool om_orch_append_valid(const Ozone__Om__OmUpgradeJournalAppendRequest *r,
                          struct om_result *res)
{
    if (!check_len("journal holder", r->holder, OM_ORCH_ID_MAX, true, res)) {
        return false;
    }
    if (r->n_entries == 0 || r->n_entries > OM_ORCH_APPEND_MAX) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "a journal append carries %zu entries; send 1 to %u",
                      r->n_entries, OM_ORCH_APPEND_MAX);
        return false;
    }
    for (size_t i = 0; i < r->n_entries; i++) {
        if (!entry_valid(i, r->entries[i], res)) {
            return false;
        }
    }
    return true;
}

/* ---- apply: the lease ---- */

static bool lease_live(const Ozone__Om__OmUpgradeLease *l, uint64_t now)
{
    return l != NULL && now < l->expires_ms;
}

/* The refusal texts. The apply functions put them in om_result.message
 * (OZ_ERRMSG_SIZE bytes: long names get cut); the handlers write them
 * again at full length into the RPC error (REFUSAL_SIZE, what an rpc
 * error message holds) from the lease as it is then. */
#define REFUSAL_SIZE 512

/* UPGRADE_LEASE_HELD: who holds it, until when, what to do. */
static void held_text(char *out,
                      size_t size,
                      const Ozone__Om__OmUpgradeLease *cur)
{
    char desc[REFUSAL_SIZE];

    describe_lease(cur, desc, sizeof(desc));
    snprintf(out, size,
             "the upgrade lease is held by %s; wait for it to expire, or if "
             "that orchestrator is gone run 'ozone admin upgrade run "
             "--resume' on %s",
             desc, str_or(cur->host, "its host"));
}

/* UPGRADE_LEASE_LOST for caller: why it does not hold the lease. */
static void lost_text(char *out,
                      size_t size,
                      const char *what,
                      const char *caller,
                      const Ozone__Om__OmUpgradeLease *cur,
                      uint64_t now)
{
    char desc[REFUSAL_SIZE], held[REFUSAL_SIZE], when[48];

    if (cur == NULL) {
        snprintf(desc, sizeof(desc), "nobody holds it");
    } else if (strcmp(cur->holder, caller) == 0) {
        snprintf(desc, sizeof(desc), "it expired at %s",
                 utc_text(cur->expires_ms, when, sizeof(when)));
    } else {
        describe_lease(cur, held, sizeof(held));
        snprintf(desc, sizeof(desc), "it is %s by %s",
                 lease_live(cur, now) ? "held" : "was last held", held);
    }
    snprintf(out, size,
             "%s refused: '%s' does not hold the upgrade lease (%s); stop "
             "this run and continue it with 'ozone admin upgrade run "
             "--resume'",
             what, caller, desc);
}

static void set_lost(struct om_result *res,
                     const char *what,
                     const char *caller,
                     const Ozone__Om__OmUpgradeLease *cur,
                     uint64_t now)
{
    res->code = OZONE__RESULT_CODE__UPGRADE_LEASE_LOST;
    lost_text(res->message, sizeof(res->message), what, caller, cur, now);
}

static const char *lease_what(Ozone__Om__OmLeaseAction a)
{
    return a == OZONE__OM__OM_LEASE_ACTION__LEASE_RENEW
               ? "upgrade lease renewal"
               : "upgrade lease release";
}

static void apply_lease(struct om *om,
                        const Ozone__Om__OmWriteOp *op,
                        struct kv_batch *b,
                        struct om_result *res)
{
    const Ozone__Om__OmUpgradeLeaseOp *r = op->upgrade_lease;
    const uint64_t now = op->time_ms;
    Ozone__Om__OmUpgradeLease *cur = NULL;
    Ozone__Om__OmUpgradeLease nl = OZONE__OM__OM_UPGRADE_LEASE__INIT;
    char when[48];

    if (!om_orch_lease_op_valid(r, res) || !read_lease(om, NULL, &cur, res)) {
        return;
    }
    const char *caller = r->lease->holder;
    bool live = lease_live(cur, now);
    bool mine = cur != NULL && strcmp(cur->holder, caller) == 0;

    switch (r->action) {
        case OZONE__OM__OM_LEASE_ACTION__LEASE_ACQUIRE: {
            bool takeover = live && !mine && len_of(r->takeover_from) > 0 &&
                            strcmp(r->takeover_from, cur->holder) == 0;
            if (live && !mine && !takeover) {
                res->code = OZONE__RESULT_CODE__UPGRADE_LEASE_HELD;
                held_text(res->message, sizeof(res->message), cur);
                log_info(
                    "upgrade lease refused to '%s': held by '%s' until "
                    "%s (index %" PRIu64 ")",
                    caller, cur->holder,
                    utc_text(cur->expires_ms, when, sizeof(when)), op->index);
                break;
            }
            nl.holder = r->lease->holder;
            nl.host = r->lease->host;
            nl.pid = r->lease->pid;
            nl.run_id = r->lease->run_id;
            nl.acquired_ms = live && mine ? cur->acquired_ms : now;
            nl.expires_ms = now + r->ttl_ms;
            om_db_put(om, b, OM_META_TABLE, OM_ORCH_LEASE_KEY,
                      strlen(OM_ORCH_LEASE_KEY), &nl.base);
            om_result_set(res, OZONE__RESULT_CODE__OK,
                          "upgrade lease granted to '%s' until %s", caller,
                          utc_text(nl.expires_ms, when, sizeof(when)));
            log_info(
                "upgrade lease acquired by '%s' (host %s, pid %u, run "
                "%s) until %s%s%s%s (index %" PRIu64 ")",
                caller, str_or(nl.host, "?"), nl.pid, str_or(nl.run_id, "?"),
                when, takeover ? ", taken over from '" : "",
                takeover ? cur->holder : "", takeover ? "'" : "", op->index);
            break;
        }
        case OZONE__OM__OM_LEASE_ACTION__LEASE_RENEW:
            if (!live || !mine) {
                set_lost(res, lease_what(r->action), caller, cur, now);
                break;
            }
            nl = *cur;
            nl.expires_ms = now + r->ttl_ms;
            om_db_put(om, b, OM_META_TABLE, OM_ORCH_LEASE_KEY,
                      strlen(OM_ORCH_LEASE_KEY), &nl.base);
            om_result_set(res, OZONE__RESULT_CODE__OK,
                          "upgrade lease of '%s' renewed until %s", caller,
                          utc_text(nl.expires_ms, when, sizeof(when)));
            log_debug("upgrade lease of '%s' renewed until %s (index %" PRIu64
                      ")",
                      caller, when, op->index);
            break;
        default: /* LEASE_RELEASE (om_orch_lease_op_valid) */
            if (!live || !mine) {
                set_lost(res, lease_what(r->action), caller, cur, now);
                break;
            }
            kv_batch_delete(b, om->cf[OM_META_TABLE], OM_ORCH_LEASE_KEY,
                            strlen(OM_ORCH_LEASE_KEY));
            res->code = OZONE__RESULT_CODE__OK;
            log_info("upgrade lease released by '%s' (run %s, index %" PRIu64
                     ")",
                     caller, str_or(cur->run_id, "?"), op->index);
            break;
    }
    om_msg_free(cur != NULL ? &cur->base : NULL);
}

/* ---- apply: the journal ---- */

/* Deletes the entries with seq <= cutoff (the oldest: seqs are dense from
 * the first kept one up). A delete the tables already lack is harmless. */
static int trim_journal(struct om *om, struct kv_batch *b, uint64_t cutoff)
{
    struct kv_iter *it = kv_iter_new(om->kv, om->cf[OM_META_TABLE]);
    size_t plen = strlen(OM_ORCH_JOURNAL_PREFIX);
    unsigned deleted = 0;

    if (it == NULL) {
        return OZ_ENOMEM;
    }
    for (kv_iter_seek(it, OM_ORCH_JOURNAL_PREFIX, plen); kv_iter_valid(it);
         kv_iter_next(it)) {
        size_t klen = 0;
        const char *k = kv_iter_key(it, &klen);
        uint64_t seq = 0;
        if (klen < plen || memcmp(k, OM_ORCH_JOURNAL_PREFIX, plen) != 0) {
            break;
        }
        if (journal_seq_of(k, klen, &seq) && seq > cutoff) {
            break;
        }
        /* Keys under the prefix that are not ours go too: the prefix
         * belongs to the journal. */
        kv_batch_delete(b, om->cf[OM_META_TABLE], k, klen);
        deleted++;
    }
    kv_iter_free(it);
    if (deleted > 0) {
        log_debug("upgrade journal trimmed: %u entries up to seq %" PRIu64
                  " deleted",
                  deleted, cutoff);
    }
    return 0;
}

static void apply_journal(struct om *om,
                          const Ozone__Om__OmWriteOp *op,
                          struct kv_batch *b,
                          struct om_result *res)
{
    const Ozone__Om__OmUpgradeJournalAppendRequest *r = op->upgrade_journal;
    Ozone__Om__OmUpgradeLease *cur = NULL;
    char key[JOURNAL_KEY_SIZE], text[32];
    uint64_t last = 0;
    int rc, n;

    if (!om_orch_append_valid(r, res) || !read_lease(om, NULL, &cur, res)) {
        return;
    }
    if (!lease_live(cur, op->time_ms) || strcmp(cur->holder, r->holder) != 0) {
        set_lost(res, "journal append", r->holder, cur, op->time_ms);
        log_info(
            "upgrade journal append of %zu entries by '%s' refused: "
            "no lease (index %" PRIu64 ")",
            r->n_entries, r->holder, op->index);
        goto out;
    }
    rc = read_last_seq(om, &last);
    if (rc != 0) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot read '%s' from the OM metadata DB: %s",
                      OM_ORCH_JOURNAL_SEQ_KEY, oz_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < r->n_entries; i++) {
        Ozone__Om__OmUpgradeJournalEntry e = *r->entries[i];
        e.seq = last + 1 + i;
        e.time_ms = op->time_ms;
        e.holder = r->holder;
        if (len_of(e.run_id) == 0) {
            e.run_id = cur->run_id;
        }
        om_db_put(om, b, OM_META_TABLE, key, journal_key(key, e.seq), &e.base);
        log_info("upgrade journal %" PRIu64 ": run %s step %u/%u %s %s %s%s%s",
                 e.seq, str_or(e.run_id, "?"), e.step, e.steps,
                 str_or(e.node, "-"), e.action, e.status,
                 len_of(e.detail) > 0 ? ": " : "", str_or(e.detail, ""));
    }
    uint64_t first = last + 1;
    last += r->n_entries;
    n = snprintf(text, sizeof(text), "%" PRIu64, last);
    kv_batch_put(b, om->cf[OM_META_TABLE], OM_ORCH_JOURNAL_SEQ_KEY,
                 strlen(OM_ORCH_JOURNAL_SEQ_KEY), text, (size_t)n);
    if (last > OM_ORCH_JOURNAL_MAX &&
        trim_journal(om, b, last - OM_ORCH_JOURNAL_MAX) != 0) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "out of memory trimming the upgrade journal");
        goto out;
    }
    /* The handler reads last_seq from this text (om_orch_append_handler). */
    om_result_set(res, OZONE__RESULT_CODE__OK,
                  "appended %zu journal entries as seq %" PRIu64
                  " to seq %" PRIu64,
                  r->n_entries, first, last);
out:
    om_msg_free(cur != NULL ? &cur->base : NULL);
}

om_upgrade_apply_fn om_orch_apply_for(const Ozone__Om__OmWriteOp *op)
{
    switch (op->op_case) {
        case OZONE__OM__OM_WRITE_OP__OP_UPGRADE_LEASE:
            return op->upgrade_lease ? apply_lease : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_UPGRADE_JOURNAL:
            return op->upgrade_journal ? apply_journal : NULL;
        default:
            return NULL;
    }
}

const char *om_orch_op_name(const Ozone__Om__OmWriteOp *op)
{
    switch (op->op_case) {
        case OZONE__OM__OM_WRITE_OP__OP_UPGRADE_LEASE:
            return "UpgradeLease";
        case OZONE__OM__OM_WRITE_OP__OP_UPGRADE_JOURNAL:
            return "UpgradeJournalAppend";
        default:
            return NULL;
    }
}

bool om_orch_is_orch_op(const Ozone__Om__OmWriteOp *op)
{
    return op->op_case == OZONE__OM__OM_WRITE_OP__OP_UPGRADE_LEASE ||
           op->op_case == OZONE__OM__OM_WRITE_OP__OP_UPGRADE_JOURNAL;
}

/* ---- read ---- */

static void *xalloc(ProtobufCAllocator *alloc, size_t size)
{
    void *p = alloc != NULL ? alloc->alloc(alloc->allocator_data, size)
                            : malloc(size);

    if (p != NULL) {
        memset(p, 0, size);
    }
    return p;
}

static Ozone__Om__OmUpgradeJournalEntry *unpack_entry(ProtobufCAllocator *a,
                                                      const void *v,
                                                      size_t vlen)
{
    return (Ozone__Om__OmUpgradeJournalEntry *)protobuf_c_message_unpack(
        &ozone__om__om_upgrade_journal_entry__descriptor, a, vlen, v);
}

/* run_id of the newest entry into out ("" when the journal is empty). */
static int newest_run(struct om *om, char *out, size_t size, char *errmsg)
{
    ProtobufCMessage *m = NULL;
    char key[JOURNAL_KEY_SIZE];
    uint64_t last = 0;
    int rc = read_last_seq(om, &last);

    out[0] = '\0';
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot read '%s': %s",
                         OM_ORCH_JOURNAL_SEQ_KEY, oz_strerror(rc));
        return rc;
    }
    if (last == 0) {
        return 0;
    }
    rc = om_db_get(om, OM_META_TABLE, key, journal_key(key, last),
                   &ozone__om__om_upgrade_journal_entry__descriptor, NULL, &m);
    if (rc == OZ_ENOTFOUND) {
        return 0; /* counter ahead of a trimmed journal: no run */
    }
    if (rc != 0) {
        oz_errmsg_printf(errmsg,
                         "cannot read upgrade journal entry %" PRIu64 ": %s",
                         last, oz_strerror(rc));
        return rc;
    }
    oz_strlcpy(out, ((Ozone__Om__OmUpgradeJournalEntry *)m)->run_id, size);
    om_msg_free(m);
    return 0;
}

int om_orch_read(struct om *om,
                 uint64_t after_seq,
                 uint32_t limit,
                 bool last_run,
                 ProtobufCAllocator *alloc,
                 Ozone__Om__OmUpgradeJournalReadResponse *out,
                 char *errmsg)
{
    struct om_result res;
    char run[OM_ORCH_ID_MAX + 1] = "", key[JOURNAL_KEY_SIZE];
    size_t plen = strlen(OM_ORCH_JOURNAL_PREFIX);
    struct kv_iter *it = NULL;
    uint64_t last = 0;
    size_t cap;
    int rc;

    out->entries = NULL;
    out->n_entries = 0;
    out->lease = NULL;
    if (!read_lease(om, alloc, &out->lease, &res)) {
        oz_errmsg_printf(errmsg, "%s", res.message);
        return OZ_ECORRUPT;
    }
    rc = read_last_seq(om, &last);
    if (rc == 0 && last_run) {
        rc = newest_run(om, run, sizeof(run), errmsg);
    } else if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot read '%s': %s",
                         OM_ORCH_JOURNAL_SEQ_KEY, oz_strerror(rc));
    }
    if (rc != 0) {
        goto err;
    }
    limit = limit == 0 ? OM_ORCH_READ_DEFAULT : limit;
    limit = limit > OM_ORCH_READ_MAX ? OM_ORCH_READ_MAX : limit;
    cap = last > after_seq ? (size_t)(last - after_seq) : 0;
    cap = cap < limit ? cap : limit;
    if (cap == 0) {
        return 0;
    }
    out->entries = xalloc(alloc, cap * sizeof(*out->entries));
    it = kv_iter_new(om->kv, om->cf[OM_META_TABLE]);
    if (out->entries == NULL || it == NULL) {
        kv_iter_free(it);
        oz_errmsg_printf(errmsg, "out of memory reading the upgrade journal");
        rc = OZ_ENOMEM;
        goto err;
    }
    for (kv_iter_seek(it, key, journal_key(key, after_seq + 1));
         kv_iter_valid(it) && out->n_entries < cap; kv_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const char *k = kv_iter_key(it, &klen);
        const void *v = kv_iter_value(it, &vlen);
        uint64_t seq = 0;
        if (klen < plen || memcmp(k, OM_ORCH_JOURNAL_PREFIX, plen) != 0) {
            break;
        }
        if (!journal_seq_of(k, klen, &seq)) {
            continue;
        }
        /* Entries of other runs are decoded with malloc, so that a
         * last-run read does not fill the call's arena with them. */
        Ozone__Om__OmUpgradeJournalEntry *e =
            unpack_entry(last_run && alloc != NULL ? NULL : alloc, v, vlen);
        if (e == NULL) {
            oz_errmsg_printf(errmsg,
                             "upgrade journal entry %" PRIu64
                             " is undecodable; the OM metadata DB is damaged",
                             seq);
            rc = OZ_ECORRUPT;
            break;
        }
        if (last_run && strcmp(e->run_id, run) != 0) {
            om_msg_free(&e->base); /* decoded with malloc, see above */
            continue;
        }
        if (last_run && alloc != NULL) {
            om_msg_free(&e->base);
            e = unpack_entry(alloc, v, vlen);
            if (e == NULL) {
                oz_errmsg_printf(errmsg,
                                 "out of memory reading the upgrade "
                                 "journal");
                rc = OZ_ENOMEM;
                break;
            }
        }
        out->entries[out->n_entries++] = e;
    }
    kv_iter_free(it);
    if (rc == 0) {
        return 0;
    }
err:
    if (alloc == NULL) {
        om_orch_read_release(out);
    }
    out->entries = NULL;
    out->n_entries = 0;
    out->lease = NULL;
    return rc;
}

void om_orch_read_release(Ozone__Om__OmUpgradeJournalReadResponse *out)
{
    for (size_t i = 0; i < out->n_entries; i++) {
        om_msg_free(&out->entries[i]->base);
    }
    free(out->entries);
    om_msg_free(out->lease != NULL ? &out->lease->base : NULL);
    out->entries = NULL;
    out->n_entries = 0;
    out->lease = NULL;
}

/* ---- handlers ---- */

/* A lease refusal at full length (see REFUSAL_SIZE) into out, from the
 * lease as it is now; false when it changed so that res's own text is the
 * better one (e.g. released since). */
static bool refusal_text(struct om_service *s,
                         const struct om_result *res,
                         const char *what,
                         const char *caller,
                         uint64_t now,
                         char *out,
                         size_t size)
{
    Ozone__Om__OmUpgradeLease *cur = NULL;
    struct om_result rres;
    bool ok = false;

    if ((res->code != OZONE__RESULT_CODE__UPGRADE_LEASE_HELD &&
         res->code != OZONE__RESULT_CODE__UPGRADE_LEASE_LOST) ||
        !read_lease(&s->om, NULL, &cur, &rres)) {
        return false;
    }
    if (res->code == OZONE__RESULT_CODE__UPGRADE_LEASE_HELD) {
        ok = cur != NULL && strcmp(cur->holder, caller) != 0;
        if (ok) {
            held_text(out, size, cur);
        }
    } else {
        lost_text(out, size, what, caller, cur, now);
        ok = true;
    }
    om_msg_free(cur != NULL ? &cur->base : NULL);
    return ok;
}

/* Our two codes are refusals of a precondition, like the other upgrade
 * refusals; the rest as the OzoneManagerService maps them. text: the
 * message when not NULL, else res's. */
static enum rpc_handler_result finish(struct rpc_call *call,
                                      const char *method,
                                      const struct om_result *res,
                                      const char *text)
{
    enum rpc_status status;

    if (res->code == OZONE__RESULT_CODE__OK) {
        return RPC_HANDLER_DONE;
    }
    if (res->code == OZONE__RESULT_CODE__UPGRADE_LEASE_HELD ||
        res->code == OZONE__RESULT_CODE__UPGRADE_LEASE_LOST) {
        status = RPC_STATUS_FAILED_PRECONDITION;
    } else {
        status = om__status_for(res->code);
    }
    text = text != NULL ? text : res->message;
    if (res->code != OZONE__RESULT_CODE__NOT_LEADER) {
        log_debug("%s refused: %s", method, text);
    }
    rpc_call_set_error(call, status, res->code,
                       res->leader_hint[0] != '\0' ? res->leader_hint : NULL,
                       "%s", text);
    return RPC_HANDLER_DONE;
}

enum rpc_handler_result om_orch_lease_handler(struct om_service *s,
                                              struct rpc_call *call,
                                              const ProtobufCMessage *req_msg,
                                              ProtobufCMessage *resp_msg)
{
    const Ozone__Om__OmUpgradeLeaseRequest *req =
        (const Ozone__Om__OmUpgradeLeaseRequest *)req_msg;
    Ozone__Om__OmUpgradeLeaseResponse *resp =
        (Ozone__Om__OmUpgradeLeaseResponse *)resp_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmUpgradeLeaseOp body = OZONE__OM__OM_UPGRADE_LEASE_OP__INIT;
    Ozone__Om__OmUpgradeLease want = OZONE__OM__OM_UPGRADE_LEASE__INIT;
    Ozone__Om__OmUpgradeLease *got = NULL;
    ProtobufCAllocator alloc;
    struct om_result res;
    char text[REFUSAL_SIZE];

    memset(&res, 0, sizeof(res));
    want.holder = req->holder;
    want.host = req->host;
    want.pid = req->pid;
    want.run_id = req->run_id;
    body.action = req->action;
    body.lease = &want;
    body.ttl_ms = req->ttl_ms;
    body.takeover_from = req->takeover_from;
    if (!om_orch_lease_op_valid(&body, &res)) {
        return finish(call, "UpgradeLease", &res, NULL);
    }
    /* Writes need no om_ha_check: om_ha_submit answers NOT_LEADER on a
     * follower, and the prepared gate does not apply (om_orch.h). */
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_UPGRADE_LEASE;
    op.upgrade_lease = &body;
    om__submit(s, &op, &res);
    if (res.code == OZONE__RESULT_CODE__OK &&
        req->action != OZONE__OM__OM_LEASE_ACTION__LEASE_RELEASE) {
        om__call_allocator(call, &alloc);
        struct om_result rres;
        if (read_lease(&s->om, &alloc, &got, &rres) && got != NULL &&
            strcmp(got->holder, req->holder) == 0) {
            resp->lease = got;
        } else {
            /* Taken over since: answer with what was granted. */
            Ozone__Om__OmUpgradeLease *l = rpc_call_alloc(call, sizeof(*l));
            *l = want;
            l->acquired_ms = op.time_ms;
            l->expires_ms = op.time_ms + req->ttl_ms;
            resp->lease = l;
        }
    }
    bool full = refusal_text(s, &res, lease_what(req->action), req->holder,
                             op.time_ms, text, sizeof(text));
    return finish(call, "UpgradeLease", &res, full ? text : NULL);
}

enum rpc_handler_result om_orch_append_handler(struct om_service *s,
                                               struct rpc_call *call,
                                               const ProtobufCMessage *req_msg,
                                               ProtobufCMessage *resp_msg)
{
    const Ozone__Om__OmUpgradeJournalAppendRequest *req =
        (const Ozone__Om__OmUpgradeJournalAppendRequest *)req_msg;
    Ozone__Om__OmUpgradeJournalAppendResponse *resp =
        (Ozone__Om__OmUpgradeJournalAppendResponse *)resp_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmUpgradeJournalAppendRequest body = *req;
    struct om_result res;
    char text[REFUSAL_SIZE];

    memset(&res, 0, sizeof(res));
    if (!om_orch_append_valid(req, &res)) {
        return finish(call, "UpgradeJournalAppend", &res, NULL);
    }
    body.hdr = NULL;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_UPGRADE_JOURNAL;
    op.upgrade_journal = &body;
    om__submit(s, &op, &res);
    if (res.code == OZONE__RESULT_CODE__OK) {
        const char *p = strstr(res.message, " to seq ");
        unsigned long long seq = 0;
        if (p != NULL && sscanf(p, " to seq %llu", &seq) == 1) {
            resp->last_seq = seq;
        } else {
            /* The apply outcome's text was not kept (e.g. the results
             * ring moved on): the counter is ours unless another holder
             * took the lease over and appended since. */
            uint64_t last = 0;
            read_last_seq(&s->om, &last);
            resp->last_seq = last;
        }
    }
    bool full = refusal_text(s, &res, "journal append", req->holder, op.time_ms,
                             text, sizeof(text));
    return finish(call, "UpgradeJournalAppend", &res, full ? text : NULL);
}

enum rpc_handler_result om_orch_read_handler(struct om_service *s,
                                             struct rpc_call *call,
                                             const ProtobufCMessage *req_msg,
                                             ProtobufCMessage *resp_msg)
{
    const Ozone__Om__OmUpgradeJournalReadRequest *req =
        (const Ozone__Om__OmUpgradeJournalReadRequest *)req_msg;
    Ozone__Om__OmUpgradeJournalReadResponse *resp =
        (Ozone__Om__OmUpgradeJournalReadResponse *)resp_msg;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    ProtobufCAllocator alloc;
    struct om_result res;
    int rc;

    /* Served like the other reads: by the leader after its read barrier,
     * so a journal read sees every append acknowledged before it. */
    if (!om_ha_check(&s->ha, false, "UpgradeJournalRead", &res)) {
        return finish(call, "UpgradeJournalRead", &res, NULL);
    }
    om__call_allocator(call, &alloc);
    rc = om_orch_read(&s->om, req->after_seq, req->limit, req->last_run, &alloc,
                      resp, errmsg);
    if (rc != 0) {
        om_result_set(&res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot read the upgrade journal: %s", errmsg);
        log_error("%s", res.message);
        return finish(call, "UpgradeJournalRead", &res, NULL);
    }
    resp->now_ms = om__now_ms();
    return RPC_HANDLER_DONE;
}
