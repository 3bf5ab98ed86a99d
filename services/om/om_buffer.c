/* The OM double buffer (om_state.h "Double buffer"; DESIGN.md §8; Ozone's
 * OzoneManagerDoubleBuffer).
 *
 * Applies put their batch into the kv overlay (kv.h "Overlay") on the raft
 * thread and return: every reader sees it at once, and the client's answer
 * goes out once the entry is committed and applied, not flushed. One
 * flusher thread writes what accumulated with kv_overlay_flush: one
 * RocksDB write holding many entries and the #TRANSACTIONINFO of the
 * newest, when max_entries are pending or interval_ms after the first of
 * them. Past OM_BUFFER_CAP_FACTOR times max_entries the applying thread
 * flushes itself (a bounded buffer: back-pressure on raft rather than
 * unbounded memory when the disk is slower than the log).
 *
 * Sync policy: flushes do not fsync the RocksDB WAL. The raft log is the
 * durable record (raft fsyncs every entry before it commits); a process
 * crash keeps the WAL in the page cache, and after a machine crash that
 * lost the unsynced tail, the DB is at or past the last raft snapshot
 * (snapshots flush, checkpoint and are fsynced by raft; a DB behind it is
 * restored from the snapshot at start) and raft re-applies every entry
 * after it: om_apply skips those at or below the stored #TRANSACTIONINFO.
 * Flushes that must survive on their own (prepare, shutdown) pass sync.
 *
 * A failed flush keeps its batches visible (kv retries them first); the
 * flusher retries every OM_BUFFER_RETRY_MS and stops the OM after
 * OM_BUFFER_MAX_FAILURES in a row, as Ozone terminates on a double-buffer
 * flush failure: the tables can no longer follow the log. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "om_state.h"

#define OM_BUFFER_CAP_FACTOR 16
#define OM_BUFFER_RETRY_MS 100
#define OM_BUFFER_MAX_FAILURES 50

struct om_buffer
{
    struct om *om;
    struct om_buffer_config cfg;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu; /* stop, urgent and the flusher's sleep */
    pthread_cond_t cv;
    bool stop;
    bool urgent; /* max_entries reached: flush without waiting */
    _Atomic uint64_t flushed_index;
    pthread_mutex_t stats_mu; /* largest batch */
    uint64_t max_batch;
    struct metric *flushes;
    struct metric *flushed_entries;
    struct metric *last_batch;
    struct metric *max_batch_m;
    struct metric *flushed_index_m;
    struct metric *pending_m;
};

static void record_flush(struct om_buffer *b,
                         const struct kv_overlay_stats *st,
                         bool sync)
{
    uint64_t max;

    metrics_add(b->flushes, 1);
    metrics_add(b->flushed_entries, (double)st->batches);
    metrics_set(b->last_batch, (double)st->batches);
    pthread_mutex_lock(&b->stats_mu);
    if (st->batches > b->max_batch) {
        b->max_batch = st->batches;
    }
    max = b->max_batch;
    pthread_mutex_unlock(&b->stats_mu);
    metrics_set(b->max_batch_m, (double)max);
    if (st->last_tag > atomic_load(&b->flushed_index)) {
        atomic_store(&b->flushed_index, st->last_tag);
    }
    metrics_set(b->flushed_index_m, (double)atomic_load(&b->flushed_index));
    {
        struct kv_overlay_stats now;
        kv_overlay_pending(b->om->kv, &now);
        metrics_set(b->pending_m, (double)now.batches);
    }
    log_debug("om double buffer: flushed %" PRIu64 " entries (%" PRIu64
              " operations, %" PRIu64 " bytes) up to index %" PRIu64 "%s",
              st->batches, st->ops, st->bytes, st->last_tag,
              sync ? ", synced" : "");
}

int om_buffer_flush(struct om *om, bool sync, char *errmsg)
{
    struct om_buffer *b = om->buffer;
    struct kv_overlay_stats st;
    int rc;

    if (b == NULL) {
        return kv_overlay_flush(om->kv, sync, NULL, errmsg);
    }
    kv_overlay_pending(om->kv, &st);
    if (st.batches > 0) {
        /* Crash tests: die with applied (and acknowledged) entries in
         * memory only. */
        rc = fault_hit("om.flush.before_write");
        if (rc != 0) {
            oz_errmsg_printf(errmsg, "injected fault 'om.flush.before_write'");
            return rc;
        }
    }
    rc = kv_overlay_flush(om->kv, sync, &st, errmsg);
    if (rc == 0 && st.batches > 0) {
        record_flush(b, &st, sync);
    }
    return rc;
}

uint64_t om_buffer_flushed_index(struct om *om)
{
    if (om->buffer == NULL) {
        uint64_t applied;
        pthread_mutex_lock(&om->write_lock);
        applied = om->applied_index;
        pthread_mutex_unlock(&om->write_lock);
        return applied;
    }
    return atomic_load(&om->buffer->flushed_index);
}

void om_buffer_set_flushed(struct om *om, uint64_t index)
{
    if (om->buffer != NULL) {
        atomic_store(&om->buffer->flushed_index, index);
        metrics_set(om->buffer->flushed_index_m, (double)index);
    }
}

void om_buffer__applied(struct om *om, const struct kv_overlay_stats *pending)
{
    struct om_buffer *b = om->buffer;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    metrics_set(b->pending_m, (double)pending->batches);
    if (pending->batches >= b->cfg.max_entries * OM_BUFFER_CAP_FACTOR) {
        /* The flusher is behind: this thread writes (back-pressure). */
        if (om_buffer_flush(om, false, errmsg) != 0) {
            log_warn("om double buffer: inline flush failed: %s", errmsg);
        }
        return;
    }
    /* The flusher sleeps while nothing is pending and then for at most
     * interval_ms: wake it for the first entry and at the limit. */
    if (pending->batches == 1 || pending->batches >= b->cfg.max_entries) {
        pthread_mutex_lock(&b->mu);
        if (pending->batches >= b->cfg.max_entries) {
            b->urgent = true;
        }
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
    }
}

static void deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* One flush by the flusher thread, with its failure policy. */
static void flusher_flush(struct om_buffer *b, unsigned *failures)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct timespec ts = {0, OM_BUFFER_RETRY_MS * 1000000L};

    if (om_buffer_flush(b->om, false, errmsg) == 0) {
        *failures = 0;
        return;
    }
    (*failures)++;
    log_error("om double buffer: flush failed (%u in a row): %s", *failures,
              errmsg);
    if (*failures >= OM_BUFFER_MAX_FAILURES) {
        log_error(
            "FATAL: the OM metadata DB refuses writes: stopping this OM; "
            "check its disk, then restart it (raft re-applies the "
            "unflushed entries)");
        abort();
    }
    nanosleep(&ts, NULL);
}

static void *flusher_main(void *arg)
{
    struct om_buffer *b = arg;
    struct kv_overlay_stats st;
    struct timespec deadline;
    unsigned failures = 0;

    pthread_mutex_lock(&b->mu);
    while (!b->stop) {
        kv_overlay_pending(b->om->kv, &st);
        if (st.batches == 0) {
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        if (st.batches < b->cfg.max_entries && !b->urgent) {
            /* Let entries accumulate for at most interval_ms. */
            deadline_after(&deadline, b->cfg.interval_ms);
            while (!b->stop && !b->urgent &&
                   pthread_cond_timedwait(&b->cv, &b->mu, &deadline) !=
                       ETIMEDOUT) {
            }
        }
        b->urgent = false;
        pthread_mutex_unlock(&b->mu);
        flusher_flush(b, &failures);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int om_buffer_start(struct om *om,
                    const struct om_buffer_config *cfg,
                    char *errmsg)
{
    struct om_buffer *b;
    pthread_condattr_t attr;
    int rc;

    if (cfg->max_entries == 0 || cfg->interval_ms == 0) {
        oz_errmsg_printf(errmsg,
                         "invalid OM double buffer settings: %" PRIu64
                         " entries, %u ms; both must be positive",
                         cfg->max_entries, cfg->interval_ms);
        return OZ_EINVAL;
    }
    rc = kv_overlay_enable(om->kv, errmsg);
    if (rc != 0) {
        return rc;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    b->om = om;
    b->cfg = *cfg;
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->stats_mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&b->flushed_index, om->applied_index);
    b->flushes = metrics_get("ozone_om_double_buffer_flush_operations_total",
                             "", METRIC_COUNTER,
                             "Double buffer flushes (one RocksDB write each)");
    b->flushed_entries = metrics_get(
        "ozone_om_double_buffer_flushed_transactions_total", "", METRIC_COUNTER,
        "Applied raft entries written by double buffer flushes");
    b->last_batch = metrics_get(
        "ozone_om_double_buffer_last_flush_transactions", "", METRIC_GAUGE,
        "Entries written by the latest double buffer flush");
    b->max_batch_m = metrics_get(
        "ozone_om_double_buffer_max_flush_transactions", "", METRIC_GAUGE,
        "Most entries written by one double buffer flush");
    b->flushed_index_m =
        metrics_get("ozone_om_double_buffer_flushed_index", "", METRIC_GAUGE,
                    "Newest raft index whose changes are in RocksDB");
    metrics_set(b->flushed_index_m, (double)om->applied_index);
    b->pending_m = metrics_get(
        "ozone_om_double_buffer_pending_transactions", "", METRIC_GAUGE,
        "Applied raft entries not yet flushed to RocksDB");
    om->buffer = b;
    rc = pthread_create(&b->thread, NULL, flusher_main, b);
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot start the double buffer flusher: %s",
                         strerror(rc));
        om->buffer = NULL;
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        pthread_mutex_destroy(&b->stats_mu);
        free(b);
        return OZ_ENOMEM;
    }
    b->running = true;
    log_info("om double buffer: flushing every %" PRIu64
             " entries or %u ms (flushed index %" PRIu64 ")",
             cfg->max_entries, cfg->interval_ms, om->applied_index);
    return 0;
}

void om_buffer_stop(struct om *om)
{
    struct om_buffer *b = om->buffer;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    if (b == NULL) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (b->running) {
        pthread_join(b->thread, NULL);
    }
    if (om_buffer_flush(om, true, errmsg) != 0) {
        log_error(
            "om double buffer: final flush failed: %s; raft re-applies "
            "the unflushed entries at the next start",
            errmsg);
    }
    log_info("om double buffer stopped at flushed index %" PRIu64,
             atomic_load(&b->flushed_index));
    om->buffer = NULL;
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->stats_mu);
    free(b);
}
