/* om_ha: the raft FSM of the OM (om_ha.h): apply, snapshot and restore.
 * All three run on the raft thread (restore of the local snapshot also on
 * the opener's thread during consensus_open, before handlers run).
 *
 * Prepare (DESIGN.md §6.8): applying the Prepare entry stores
 * #PREPAREDINFO in its batch (om_apply: every OM refuses later writes the
 * same way), flushes and fsyncs the double buffer (applied and flushed
 * index reach the entry), and asks consensus to snapshot and purge the log
 * up to it; once that completed, prepare_purged() writes
 * current/prepareMarker and closes the handlers' write gate: the OM
 * reports PREPARE_COMPLETED. A snapshot installed from the leader
 * replaces that state by its own (restored_prepare_state).
 *
 * Snapshot format: a tar (common/tar.h) of a RocksDB checkpoint of the OM
 * DB, flat files only. Its metaTable holds the raft index of the snapshot
 * (OM_RAFT_SNAPSHOT_KEY), which can be past #TRANSACTIONINFO: raft's own
 * entries (barriers, configuration changes) are not applied to the
 * tables. Restore checks the archive, opens the checkpoint read-only,
 * checks both indexes and replaces every OM table's contents in one
 * atomic batch. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "om_ha_internal.h"
#include "tar.h"

#define SNAPSHOT_CHUNK (1u << 20)
#define SNAPSHOT_MAX_BYTES (8ull << 30)

/* ---- results for submitters ---- */

static void put_result(struct om_ha *ha,
                       uint64_t index,
                       const struct om_result *res)
{
    struct om_ha_result *r = &ha->results[index % OM_HA_RESULTS];

    pthread_mutex_lock(&ha->mu);
    r->index = index;
    r->code = res->code;
    oz_strlcpy(r->message, res->message, sizeof(r->message));
    pthread_mutex_unlock(&ha->mu);
}

void om_ha__take_result(struct om_ha *ha,
                        uint64_t index,
                        int result,
                        struct om_result *res)
{
    struct om_ha_result *r = &ha->results[index % OM_HA_RESULTS];

    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&ha->mu);
    if (r->index == index) {
        res->code = r->code;
        oz_strlcpy(res->message, r->message, sizeof(res->message));
    } else {
        res->code = (Ozone__ResultCode)result;
        if (result != OZONE__RESULT_CODE__OK) {
            snprintf(res->message, sizeof(res->message),
                     "write at index %" PRIu64 " was refused (code %d)", index,
                     result);
        }
    }
    pthread_mutex_unlock(&ha->mu);
}

/* ---- apply ---- */

/* The log holds no entry at or below the prepare index any more (raft
 * thread): writes current/prepareMarker, then reports PREPARE_COMPLETED.
 * snap and first describe the log for the log line. If the marker cannot
 * be written the OM stays PREPARE_GATE_ENABLED. */
static void prepare_complete(struct om_ha *ha,
                             uint64_t index,
                             uint64_t snap,
                             uint64_t first,
                             const char *how)
{
    if (om_ha__write_marker(ha, index) != 0) {
        log_error(
            "cannot write prepare marker '%s' for the prepare at index "
            "%" PRIu64
            ": %s; the OM stays PREPARE_GATE_ENABLED: fix the "
            "directory and run 'ozone admin om prepare' again",
            ha->marker_path, index, strerror(errno));
        return;
    }
    metrics_set(ha->prepare_purged_index, (double)index);
    pthread_mutex_lock(&ha->mu);
    ha->prepared_index = index;
    if (ha->prepare_pending == index) {
        ha->prepare_pending = 0;
    }
    pthread_mutex_unlock(&ha->mu);
    log_info("OM prepared for upgrade at index %" PRIu64
             ": snapshot at %" PRIu64
             ", raft log purged (first entry kept %" PRIu64
             "%s), prepare status PREPARE_COMPLETED, writes refused",
             index, snap, first, how);
}

struct purge_req
{
    struct om_ha *ha;
    uint64_t index; /* the prepare entry the purge was asked for */
};

/* consensus_snapshot_now's completion (raft thread) for req->index. */
static void prepare_purged(void *arg, int status)
{
    struct purge_req *req = arg;
    struct om_ha *ha = req->ha;
    uint64_t index = req->index, pending, in_db = 0;
    struct consensus_status st;

    free(req);
    pthread_mutex_lock(&ha->mu);
    pending = ha->prepare_pending;
    pthread_mutex_unlock(&ha->mu);
    if (pending != index) {
        /* Cancelled, prepared again, or completed by a snapshot install
         * meanwhile: that event decides. */
        return;
    }
    if (status != 0) {
        log_warn("prepare at index %" PRIu64
                 ": snapshot and log purge did not complete: %s; the OM "
                 "stays PREPARE_GATE_ENABLED",
                 index, oz_strerror(status));
        return;
    }
    if (om_read_prepared_index(ha->om, &in_db) != 0 || in_db != index) {
        return;
    }
    consensus_status(ha->c, &st);
    prepare_complete(ha, index, st.snapshot_index, st.first_index, "");
}

static void after_prepare_change(struct om_ha *ha,
                                 const Ozone__Om__OmWriteOp *op,
                                 uint64_t index)
{
    if (op->op_case == OZONE__OM__OM_WRITE_OP__OP_PREPARE) {
        pthread_mutex_lock(&ha->mu);
        ha->prepare_pending = index;
        ha->prepare_snapshot = 0;
        pthread_mutex_unlock(&ha->mu);
        log_info("prepare entry applied at index %" PRIu64
                 " and flushed: taking a snapshot and purging the raft log "
                 "(PREPARE_GATE_ENABLED)",
                 index);
        /* Inside this apply: the snapshot follows it in raft's loop. */
        struct purge_req *req = malloc(sizeof(*req));
        int rc = OZ_ENOMEM;
        if (req != NULL) {
            req->ha = ha;
            req->index = index;
            rc = consensus_snapshot_now(ha->c, index, prepare_purged, req);
        }
        if (rc != 0 && req != NULL) {
            prepare_purged(req, rc);
        } else if (rc != 0) {
            log_warn("prepare at index %" PRIu64
                     ": cannot ask for a snapshot and log purge: %s; the OM "
                     "stays PREPARE_GATE_ENABLED",
                     index, oz_strerror(rc));
        }
    } else {
        /* Gate first, marker after: a marker gone means writes are open. */
        pthread_mutex_lock(&ha->mu);
        ha->prepared_index = 0;
        ha->prepare_pending = 0;
        pthread_mutex_unlock(&ha->mu);
        om_ha__remove_marker(ha);
        log_info("prepare cancelled at index %" PRIu64 ": writes accepted",
                 index);
    }
}

static int fsm_apply(void *ctx,
                     uint64_t index,
                     uint64_t term,
                     uint32_t type,
                     const void *payload,
                     size_t len)
{
    struct om_ha *ha = ctx;
    Ozone__Om__OmWriteOp empty = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmWriteOp *op = NULL;
    struct om_result res;
    bool prepare_change;

    if (type == OM_HA_ENTRY_WRITE_OP) {
        op = ozone__om__om_write_op__unpack(NULL, len, payload);
    }
    if (op == NULL) {
        /* Deterministic on every OM: the index is consumed, the entry
         * refused (om_apply: "no known body"). */
        log_error("raft entry %" PRIu64
                  " (type %u, %zu bytes) is not an OM "
                  "write op; refusing it",
                  index, type, len);
    }
    Ozone__Om__OmWriteOp *use = op != NULL ? op : &empty;
    use->index = index;
    prepare_change = use->op_case == OZONE__OM__OM_WRITE_OP__OP_PREPARE ||
                     use->op_case == OZONE__OM__OM_WRITE_OP__OP_CANCEL_PREPARE;
    /* Prepare: synced, so the applied and flushed index reach it. */
    if (om_apply_write(ha->om, use, term, prepare_change, &res) != 0) {
        /* The log holds an entry this node cannot store: continuing would
         * make its tables differ from the others' (DESIGN.md §8.1). */
        log_error("FATAL: cannot store raft entry %" PRIu64
                  " in the OM DB: %s; stopping this OM",
                  index, res.message);
        abort();
    }
    if (prepare_change && !res.replayed && res.code == OZONE__RESULT_CODE__OK) {
        after_prepare_change(ha, use, index);
    }
    put_result(ha, index, &res);
    if (op != NULL) {
        ozone__om__om_write_op__free_unpacked(op, NULL);
    }
    return (int)res.code;
}

/* ---- snapshot ---- */

/* The raft snapshot index recorded in a DB's metaTable, 0 when absent. */
static uint64_t raft_snapshot_index(struct kv *kv, int meta_cf)
{
    void *val = NULL;
    size_t len = 0;
    char *end = NULL;
    uint64_t v = 0;

    if (kv_get(kv, meta_cf, OM_RAFT_SNAPSHOT_KEY, strlen(OM_RAFT_SNAPSHOT_KEY),
               &val, &len) == 0) {
        v = strtoull(val, &end, 10);
        if (len == 0 || end != (char *)val + len) {
            v = 0;
        }
        free(val);
    }
    return v;
}

static void remove_tree(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    char path[4400];

    if (dh == NULL) {
        return;
    }
    while ((e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(dh);
    rmdir(dir);
}

static int pack_dir(const char *dir, const char *tar_path, char *errmsg)
{
    struct tar_writer *w = NULL;
    DIR *dh = opendir(dir);
    struct dirent *e;
    char path[4400];
    int rc;

    if (dh == NULL) {
        oz_errmsg_printf(errmsg, "cannot read '%s': %s", dir, strerror(errno));
        return OZ_EIO;
    }
    rc = tar_writer_open(&w, tar_path, errmsg);
    while (rc == 0 && (e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        rc = tar_writer_add_file(w, e->d_name, path, errmsg);
    }
    closedir(dh);
    if (rc == 0) {
        rc = tar_writer_finish(w, errmsg);
    }
    tar_writer_free(w);
    return rc;
}

static int append_file(struct consensus_writer *cw,
                       const char *path,
                       char *errmsg)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    int rc = 0;

    if (f == NULL) {
        oz_errmsg_printf(errmsg, "cannot open '%s': %s", path, strerror(errno));
        return OZ_EIO;
    }
    buf = malloc(SNAPSHOT_CHUNK);
    if (buf == NULL) {
        fclose(f);
        return OZ_ENOMEM;
    }
    while (rc == 0 && (n = fread(buf, 1, SNAPSHOT_CHUNK, f)) > 0) {
        rc = consensus_writer_append(cw, buf, n);
    }
    if (rc == 0 && ferror(f)) {
        oz_errmsg_printf(errmsg, "cannot read '%s'", path);
        rc = OZ_EIO;
    }
    free(buf);
    fclose(f);
    return rc;
}

static int fsm_snapshot(void *ctx, uint64_t index, struct consensus_writer *w)
{
    struct om_ha *ha = ctx;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char dir[4200];
    char tar_path[4200];
    int rc;

    snprintf(dir, sizeof(dir), "%s/snapshot.tmp", ha->d->storage_dir);
    snprintf(tar_path, sizeof(tar_path), "%s/snapshot.tmp.tar",
             ha->d->storage_dir);
    remove_tree(dir);
    /* Applies run on this thread too: after the flush the DB is exactly
     * at index (the double buffer holds nothing newer). */
    rc = om_buffer_flush(ha->om, false, errmsg);
    if (rc == 0) {
        char text[24];
        int n = snprintf(text, sizeof(text), "%" PRIu64, index);
        rc = kv_put(ha->om->kv, ha->om->cf[OM_META_TABLE], OM_RAFT_SNAPSHOT_KEY,
                    strlen(OM_RAFT_SNAPSHOT_KEY), text, (size_t)n);
    }
    if (rc == 0) {
        rc = kv_checkpoint(ha->om->kv, dir, errmsg);
    }
    if (rc == 0) {
        rc = pack_dir(dir, tar_path, errmsg);
    }
    if (rc == 0) {
        rc = append_file(w, tar_path, errmsg);
    }
    remove_tree(dir);
    unlink(tar_path);
    if (rc != 0) {
        log_warn("OM snapshot at index %" PRIu64 " failed: %s", index,
                 errmsg[0] != '\0' ? errmsg : oz_strerror(rc));
        return rc;
    }
    metrics_add(ha->snapshots_taken, 1);
    metrics_set(ha->snapshot_index, (double)index);
    pthread_mutex_lock(&ha->mu);
    if (ha->prepare_pending != 0 && ha->prepare_snapshot == 0 &&
        index >= ha->prepare_pending) {
        ha->prepare_snapshot = index;
        metrics_set(ha->prepare_snapshot_index, (double)index);
    }
    pthread_mutex_unlock(&ha->mu);
    return 0;
}

/* ---- restore ---- */

static int write_file(const char *path,
                      const void *data,
                      size_t len,
                      char *errmsg)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL) {
        oz_errmsg_printf(errmsg, "cannot create '%s': %s", path,
                         strerror(errno));
        return OZ_EIO;
    }
    if (len > 0 && fwrite(data, 1, len, f) != len) {
        fclose(f);
        oz_errmsg_printf(errmsg, "cannot write '%s'", path);
        return OZ_EIO;
    }
    if (fclose(f) != 0) {
        oz_errmsg_printf(errmsg, "cannot write '%s'", path);
        return OZ_EIO;
    }
    return 0;
}

static int unpack_snapshot(const char *tar_path, const char *dir, char *errmsg)
{
    struct tar_limits lim = {SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_BYTES, 100000};
    struct tar_entry *entries = NULL;
    size_t n = 0;
    int rc = tar_list(tar_path, &lim, &entries, &n, errmsg);

    if (rc != 0) {
        return rc;
    }
    if (mkdir(dir, 0755) != 0) {
        oz_errmsg_printf(errmsg, "cannot create '%s': %s", dir,
                         strerror(errno));
        free(entries);
        return OZ_EIO;
    }
    rc = tar_extract(tar_path, entries, n, dir, NULL, errmsg);
    free(entries);
    return rc;
}

/* Replaces table t of om by the same table of snap in b. */
static int replace_table(struct om *om,
                         struct om *snap,
                         enum om_table t,
                         struct kv_batch *b,
                         uint64_t *count)
{
    struct kv_iter *it = kv_iter_new(om->kv, om->cf[t]);
    size_t klen, vlen;

    if (it == NULL) {
        return OZ_ENOMEM;
    }
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        const void *k = kv_iter_key(it, &klen);
        kv_batch_delete(b, om->cf[t], k, klen);
    }
    kv_iter_free(it);
    it = kv_iter_new(snap->kv, snap->cf[t]);
    if (it == NULL) {
        return OZ_ENOMEM;
    }
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        const void *k = kv_iter_key(it, &klen);
        const void *v = kv_iter_value(it, &vlen);
        kv_batch_put(b, om->cf[t], k, klen, v, vlen);
        (*count)++;
    }
    kv_iter_free(it);
    return 0;
}

static void copy_meta(struct om *om,
                      struct kv *snap_kv,
                      int snap_cf,
                      const char *key,
                      struct kv_batch *b)
{
    void *val = NULL;
    size_t len = 0;

    if (kv_get(snap_kv, snap_cf, key, strlen(key), &val, &len) == 0) {
        kv_batch_put(b, om->cf[OM_META_TABLE], key, strlen(key), val, len);
        free(val);
    } else {
        kv_batch_delete(b, om->cf[OM_META_TABLE], key, strlen(key));
    }
}

static int install(struct om_ha *ha,
                   uint64_t index,
                   const char *dir,
                   uint64_t *count,
                   uint64_t *prepared,
                   uint64_t *applied,
                   char *errmsg)
{
    struct kv *snap_kv = NULL;
    struct om snap;
    struct kv_batch *b = NULL;
    int rc;

    rc = kv_open(&snap_kv, dir, om_cf_names, OM_N_CFS, KV_READ_ONLY, errmsg);
    if (rc != 0) {
        return rc;
    }
    rc = om_init(&snap, snap_kv, errmsg);
    if (rc != 0) {
        goto out_kv;
    }
    /* Snapshots before OM_RAFT_SNAPSHOT_KEY existed were taken right
     * after an applied entry. */
    uint64_t snap_raft = raft_snapshot_index(snap_kv, snap.cf[OM_META_TABLE]);
    if (snap.applied_index > index ||
        (snap_raft != 0 ? snap_raft != index : snap.applied_index != index)) {
        oz_errmsg_printf(errmsg,
                         "snapshot for index %" PRIu64
                         " holds tables at index %" PRIu64
                         " taken at raft index %" PRIu64,
                         index, snap.applied_index, snap_raft);
        rc = OZ_ECORRUPT;
        goto out_om;
    }
    *applied = snap.applied_index;
    if (om_read_prepared_index(&snap, prepared) != 0) {
        *prepared = 0;
    }
    b = kv_batch_new();
    if (b == NULL) {
        rc = OZ_ENOMEM;
        goto out_om;
    }
    pthread_mutex_lock(&ha->om->write_lock);
    for (int t = 0; t < OM_N_CFS && rc == 0; t++) {
        rc = replace_table(ha->om, &snap, (enum om_table)t, b, count);
    }
    if (rc == 0) {
        copy_meta(ha->om, snap_kv, snap.cf[OM_META_TABLE],
                  OM_TRANSACTION_INFO_KEY, b);
        copy_meta(ha->om, snap_kv, snap.cf[OM_META_TABLE], OM_PREPARED_INFO_KEY,
                  b);
        copy_meta(ha->om, snap_kv, snap.cf[OM_META_TABLE], OM_RAFT_SNAPSHOT_KEY,
                  b);
        /* Applied entries still in the double buffer go first (kv_write
         * would write them too, in order; this keeps the figures). */
        rc = om_buffer_flush(ha->om, false, errmsg);
    }
    if (rc == 0) {
        rc = kv_write(ha->om->kv, b, true, errmsg);
    }
    if (rc == 0) {
        ha->om->applied_index = *applied;
        om_buffer_set_flushed(ha->om, *applied);
    }
    pthread_mutex_unlock(&ha->om->write_lock);
    kv_batch_free(b);
out_om:
    om_release(&snap);
out_kv:
    kv_close(snap_kv);
    return rc;
}

/* The prepare state after the tables were replaced by a snapshot taken at
 * index whose #PREPAREDINFO is prepared (0: none). The snapshot decides,
 * whatever this OM was doing: a purge it waited for, or a prepare it found
 * without marker at start-up, no longer matters. */
static void restored_prepare_state(struct om_ha *ha,
                                   uint64_t index,
                                   uint64_t prepared)
{
    struct stat st;

    pthread_mutex_lock(&ha->mu);
    ha->prepared_index = prepared;
    ha->prepare_pending = prepared; /* gate closed until complete */
    ha->prepare_snapshot = prepared > 0 ? index : 0;
    pthread_mutex_unlock(&ha->mu);
    if (prepared == 0) {
        om_ha__remove_marker(ha); /* gate first, marker after */
        return;
    }
    if (pthread_equal(pthread_self(), ha->opener)) {
        /* The local snapshot, during consensus_open: raft may keep log
         * entries at or below the prepare index after it, so this is the
         * start-up case of load_prepare_state (prepared with the marker,
         * PREPARE_GATE_ENABLED without). */
        if (stat(ha->marker_path, &st) == 0) {
            pthread_mutex_lock(&ha->mu);
            ha->prepare_pending = 0;
            pthread_mutex_unlock(&ha->mu);
        }
        return;
    }
    /* Installed from the leader: raft 0.15 deleted every segment up to
     * index before calling restore and restarts its log after it, so the
     * log holds no entry at or below the prepare index: prepared, as if
     * this OM had applied the entry and purged (the prepare CLI waits for
     * PREPARE_COMPLETED on every OM). */
    metrics_set(ha->prepare_snapshot_index, (double)index);
    prepare_complete(ha, prepared, index, index + 1,
                     ", snapshot installed from the leader");
}

static int fsm_restore(void *ctx, uint64_t index, const void *data, size_t len)
{
    struct om_ha *ha = ctx;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char dir[4200];
    char tar_path[4200];
    uint64_t count = 0;
    uint64_t prepared = 0;
    uint64_t applied = 0;
    int rc;

    if (ha->om->applied_index >= index ||
        raft_snapshot_index(ha->om->kv, ha->om->cf[OM_META_TABLE]) >= index) {
        /* Our tables already hold it (the local snapshot at start-up). */
        return 0;
    }
    log_info("installing OM snapshot at index %" PRIu64
             " (%zu bytes; applied index %" PRIu64 ")",
             index, len, ha->om->applied_index);
    snprintf(dir, sizeof(dir), "%s/snapshot.restore", ha->d->storage_dir);
    snprintf(tar_path, sizeof(tar_path), "%s/snapshot.restore.tar",
             ha->d->storage_dir);
    remove_tree(dir);
    rc = write_file(tar_path, data, len, errmsg);
    if (rc == 0 && fault_hit("om.snapshot.cut") != 0) {
        /* Tests: the snapshot arrived cut off (half its bytes). */
        if (truncate(tar_path, (off_t)(len / 2)) != 0) {
            rc = OZ_EIO;
        }
    }
    if (rc == 0) {
        rc = unpack_snapshot(tar_path, dir, errmsg);
    }
    if (rc == 0) {
        rc = install(ha, index, dir, &count, &prepared, &applied, errmsg);
    }
    remove_tree(dir);
    unlink(tar_path);
    if (rc != 0) {
        log_error("refusing OM snapshot at index %" PRIu64 ": %s", index,
                  errmsg[0] != '\0' ? errmsg : oz_strerror(rc));
        return rc;
    }
    restored_prepare_state(ha, index, prepared);
    metrics_add(ha->snapshot_installs, 1);
    log_info("installed OM snapshot at index %" PRIu64 ": %" PRIu64
             " table entries%s",
             index, count, prepared > 0 ? ", prepared for upgrade" : "");
    return 0;
}

void om_ha__fsm_init(struct om_ha *ha, struct consensus_fsm *fsm)
{
    fsm->ctx = ha;
    fsm->apply = fsm_apply;
    fsm->snapshot = fsm_snapshot;
    fsm->restore = fsm_restore;
}
