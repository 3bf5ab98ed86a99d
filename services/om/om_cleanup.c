/* OpenKeyCleanupService (Ozone's name): open keys of CreateKey calls that
 * were never committed - the client died, or retried CreateKey and
 * committed the other session - would stay in openKeyTable forever. The
 * leader looks for open keys older than ozone.om.open.key.expire.threshold
 * every ozone.om.open.key.cleanup.service.interval and deletes up to
 * ozone.om.open.key.cleanup.limit.per.task of them per run through one
 * replicated DeleteOpenKeys entry, so every OM deletes the same keys
 * (DESIGN.md §8.1): the entry names the keys and the cut-off time, and
 * applying it deletes a named key only if it is still open and older
 * than the cut-off, whatever happened between the scan and the commit.
 *
 * Threads: one service thread per OM; it scans on the leader only and
 * not while the OM is prepared (the entry would be refused). The scan
 * reads through the double buffer in chunks, so an iterator never holds
 * off applies for long (kv.h "Overlay"). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "om_ha_internal.h"

#define SCAN_CHUNK 4096 /* open-key entries read per iterator */

struct om_cleanup
{
    struct om_ha *ha;
    long long interval_ms;
    long long threshold_ms;
    long long limit;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct metric *runs;
    struct metric *deleted;
};

/* ---- the replicated op (pure: om_apply.c dispatches here) ---- */

void om_apply_delete_open_keys(struct om *om,
                               const Ozone__Om__OmWriteOp *op,
                               struct kv_batch *b,
                               struct om_result *res)
{
    const Ozone__Om__OmDeleteOpenKeysOp *d = op->delete_open_keys;
    char k[OM_DB_KEY_MAX];
    size_t deleted = 0;

    for (size_t i = 0; i < d->n_keys; i++) {
        const Ozone__Om__OmOpenKeyRef *r = d->keys[i];
        ProtobufCMessage *m = NULL;
        size_t klen;

        if (r == NULL || r->volume == NULL || r->bucket == NULL ||
            r->key == NULL) {
            continue;
        }
        klen = om_open_key_key(k, r->volume, r->bucket, r->key, r->client_id);
        if (klen == 0 ||
            om_db_get(om, OM_OPEN_KEY_TABLE, k, klen,
                      &ozone__om__key_info__descriptor, NULL, &m) != 0) {
            continue; /* committed or deleted since the scan */
        }
        const Ozone__Om__KeyInfo *ki = (const Ozone__Om__KeyInfo *)m;
        if (ki->creation_time < d->expire_before_ms) {
            kv_batch_delete(b, om->cf[OM_OPEN_KEY_TABLE], k, klen);
            deleted++;
        }
        om_msg_free(m);
    }
    om_result_set(res, OZONE__RESULT_CODE__OK,
                  "deleted %zu of %zu expired open keys", deleted, d->n_keys);
    if (deleted > 0) {
        log_info("deleted %zu expired open key(s) created before %" PRIu64
                 " ms (index %" PRIu64 ")",
                 deleted, d->expire_before_ms, op->index);
    }
}

/* ---- the scan (leader) ---- */

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The client id of an open-key table key: its last '/' part. */
static bool client_id_of(const char *k, size_t klen, uint64_t *id)
{
    size_t i = klen;
    uint64_t v = 0;

    while (i > 0 && k[i - 1] != '/') {
        i--;
    }
    if (i == 0 || i == klen) {
        return false;
    }
    for (; i < klen; i++) {
        if (k[i] < '0' || k[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    *id = v;
    return true;
}

/* Adds up to limit expired open keys to op's key list, reading the table
 * SCAN_CHUNK entries per iterator. The refs and their strings are
 * malloc'd: free with free_refs. */
static int collect(struct om *om,
                   uint64_t before_ms,
                   size_t limit,
                   Ozone__Om__OmDeleteOpenKeysOp *d)
{
    char resume[OM_DB_KEY_MAX];
    size_t rlen = 0;
    bool more = true;

    d->keys = calloc(limit, sizeof(*d->keys));
    if (d->keys == NULL) {
        return OZ_ENOMEM;
    }
    while (more && d->n_keys < limit) {
        struct kv_iter *it = kv_iter_new(om->kv, om->cf[OM_OPEN_KEY_TABLE]);
        size_t seen = 0;

        if (it == NULL) {
            return OZ_ENOMEM;
        }
        if (rlen == 0) {
            kv_iter_seek_first(it);
        } else {
            kv_iter_seek(it, resume, rlen);
            if (kv_iter_valid(it)) {
                size_t kl = 0;
                const char *k = kv_iter_key(it, &kl);
                if (kl == rlen && memcmp(k, resume, rlen) == 0) {
                    kv_iter_next(it);
                }
            }
        }
        for (; kv_iter_valid(it) && seen < SCAN_CHUNK && d->n_keys < limit;
             kv_iter_next(it), seen++) {
            size_t kl = 0, vl = 0;
            const char *k = kv_iter_key(it, &kl);
            const void *v = kv_iter_value(it, &vl);
            uint64_t client_id = 0;
            Ozone__Om__KeyInfo *ki;

            if (kl < sizeof(resume)) {
                memcpy(resume, k, kl);
                rlen = kl;
            }
            if (!client_id_of(k, kl, &client_id)) {
                continue;
            }
            ki = ozone__om__key_info__unpack(NULL, vl, v);
            if (ki == NULL) {
                log_warn("open key cleanup: undecodable open key '%.*s'",
                         (int)kl, k);
                continue;
            }
            if (ki->creation_time < before_ms) {
                Ozone__Om__OmOpenKeyRef *r = malloc(sizeof(*r));
                if (r != NULL) {
                    ozone__om__om_open_key_ref__init(r);
                    r->volume = strdup(ki->volume);
                    r->bucket = strdup(ki->bucket);
                    r->key = strdup(ki->name);
                    r->client_id = client_id;
                    d->keys[d->n_keys++] = r;
                }
            }
            ozone__om__key_info__free_unpacked(ki, NULL);
        }
        more = kv_iter_valid(it);
        kv_iter_free(it);
    }
    return 0;
}

static void free_refs(Ozone__Om__OmDeleteOpenKeysOp *d)
{
    for (size_t i = 0; i < d->n_keys; i++) {
        free(d->keys[i]->volume);
        free(d->keys[i]->bucket);
        free(d->keys[i]->key);
        free(d->keys[i]);
    }
    free(d->keys);
    d->keys = NULL;
    d->n_keys = 0;
}

/* One run: returns how many keys the entry named (deleted unless they
 * were committed meanwhile). */
static size_t run_once(struct om_cleanup *cl)
{
    struct om_ha *ha = cl->ha;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmDeleteOpenKeysOp d = OZONE__OM__OM_DELETE_OPEN_KEYS_OP__INIT;
    struct om_result res;
    uint64_t now = wall_ms();
    size_t n;

    if (!consensus_is_leader(ha->c) ||
        om_ha_prepare_state(ha, NULL) != OM_NOT_PREPARED) {
        return 0;
    }
    metrics_add(cl->runs, 1);
    d.expire_before_ms =
        now > (uint64_t)cl->threshold_ms ? now - (uint64_t)cl->threshold_ms : 0;
    if (collect(ha->om, d.expire_before_ms, (size_t)cl->limit, &d) != 0) {
        log_warn("open key cleanup: out of memory scanning open keys");
        free_refs(&d);
        return 0;
    }
    n = d.n_keys;
    if (n > 0) {
        op.time_ms = now;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_DELETE_OPEN_KEYS;
        op.delete_open_keys = &d;
        om_ha_submit(ha, &op, &res);
        if (res.code == OZONE__RESULT_CODE__OK) {
            metrics_add(cl->deleted, (double)n);
            log_info("open key cleanup: %s", res.message);
        } else {
            log_warn("open key cleanup: DeleteOpenKeys of %zu keys failed: %s",
                     n, res.message);
            n = 0;
        }
    }
    free_refs(&d);
    return n;
}

static void *cleanup_main(void *arg)
{
    struct om_cleanup *cl = arg;
    struct timespec deadline;

    pthread_mutex_lock(&cl->mu);
    while (!cl->stop) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += cl->interval_ms / 1000;
        deadline.tv_nsec += (cl->interval_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!cl->stop && pthread_cond_timedwait(&cl->cv, &cl->mu,
                                                   &deadline) != ETIMEDOUT) {
        }
        if (cl->stop) {
            break;
        }
        pthread_mutex_unlock(&cl->mu);
        run_once(cl);
        pthread_mutex_lock(&cl->mu);
    }
    pthread_mutex_unlock(&cl->mu);
    return NULL;
}

int om_cleanup_start(struct om_ha *ha, char *errmsg)
{
    struct conf *conf = ha->d->conf;
    struct om_cleanup *cl = calloc(1, sizeof(*cl));
    pthread_condattr_t attr;
    int rc;

    if (cl == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    cl->ha = ha;
    if ((rc = conf_get_duration_ms(conf,
                                   "ozone.om.open.key.cleanup.service.interval",
                                   "24h", &cl->interval_ms, errmsg)) != 0 ||
        (rc = conf_get_duration_ms(conf, "ozone.om.open.key.expire.threshold",
                                   "7d", &cl->threshold_ms, errmsg)) != 0 ||
        (rc = conf_get_int(conf, "ozone.om.open.key.cleanup.limit.per.task",
                           1000, &cl->limit, errmsg)) != 0) {
        free(cl);
        return rc;
    }
    if (cl->interval_ms < 100 || cl->threshold_ms < 0 || cl->limit < 1 ||
        cl->limit > 100000) {
        oz_errmsg_printf(errmsg,
                         "invalid open key cleanup settings: interval %lld ms "
                         "(at least 100), expire threshold %lld ms (>= 0), "
                         "limit per task %lld (1..100000)",
                         cl->interval_ms, cl->threshold_ms, cl->limit);
        free(cl);
        return OZ_ECONFIG;
    }
    cl->runs =
        metrics_get("ozone_om_open_key_cleanup_runs_total", "", METRIC_COUNTER,
                    "OpenKeyCleanupService scans run by this OM (leader)");
    cl->deleted = metrics_get(
        "ozone_om_open_keys_deleted_total", "", METRIC_COUNTER,
        "Expired open keys deleted by OpenKeyCleanupService entries");
    pthread_mutex_init(&cl->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cl->cv, &attr);
    pthread_condattr_destroy(&attr);
    rc = pthread_create(&cl->thread, NULL, cleanup_main, cl);
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot start the open key cleanup: %s",
                         strerror(rc));
        pthread_cond_destroy(&cl->cv);
        pthread_mutex_destroy(&cl->mu);
        free(cl);
        return OZ_ENOMEM;
    }
    ha->cleanup = cl;
    log_info(
        "open key cleanup: every %lld ms, keys open longer than %lld ms, "
        "at most %lld per run",
        cl->interval_ms, cl->threshold_ms, cl->limit);
    return 0;
}

void om_cleanup_stop(struct om_ha *ha)
{
    struct om_cleanup *cl = ha->cleanup;

    if (cl == NULL) {
        return;
    }
    pthread_mutex_lock(&cl->mu);
    cl->stop = true;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    pthread_join(cl->thread, NULL);
    pthread_cond_destroy(&cl->cv);
    pthread_mutex_destroy(&cl->mu);
    free(cl);
    ha->cleanup = NULL;
}
