/* Recon's copy of OM's DB (DESIGN.md §9; Ozone's OzoneManagerServiceProvider).
 *
 * Every ozone.recon.om.snapshot.task.interval.delay (or when triggered)
 * the sync thread finds the OM leader of the service
 * (recon_om_service_leader: Roles, following the leader each OM names),
 * asks the leader's GetVersion who it is (node id, versions, HTTP
 * address), chooses a mode with recon_om_sync_mode() and then, always
 * from the leader:
 *   - incremental: DBUpdates(from = the sequence the copy holds) until
 *     caught up, each write batch applied atomically together with the new
 *     sequence number (#RECON_OM_SEQUENCE in the copy's metaTable);
 *   - full: GET /dbCheckpoint into <recon>/om.download.tar, check the
 *     archive (structure, names, sizes, the trailer's CRC32C and length),
 *     extract it into a new <recon>/om.db.<generation>, open it, record the
 *     sequence and source node, point <recon>/om.current at it (written to
 *     a temporary file, fsynced and renamed) and swap the copy under
 *     om_lock; the old copy is closed and removed afterwards.
 * A full sync is taken (recon_om_full_reason) when there is no copy, when
 * the leader is not the OM the copy came from, when the OM says
 * UPDATES_NOT_AVAILABLE (its WAL moved on), when a delta does not follow
 * on from the copy or cannot be applied (e.g. a column family the copy
 * lacks), and when asked for. After a leader change the copy is never
 * continued with the new leader's deltas: every OM applies the Raft log to
 * its own RocksDB in its own write batches (and writes local keys of its
 * own), so sequence number N names different states in two OMs' DBs and
 * no number of the new leader's can be shown to continue the copy. The
 * new leader's checkpoint replaces it (what Ozone's Recon does when the
 * sequence numbers do not line up). If leadership comes back to the OM
 * the copy is of before Recon synced from another, deltas go on.
 * Any failure leaves the current copy in place and serving; the next
 * interval retries. Failures and successes are in /api/v1/task/status.
 */
#include "recon_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "http_client.h"
#include "log.h"
#include "om.pb-c.h"
#include "tar.h"

#define META_SEQUENCE "#RECON_OM_SEQUENCE"
#define META_NODE "#RECON_OM_NODE"
#define TRAILER_MAX 4096
#define MAX_DELTA_CALLS 100
#define OM_TABLES 4

static const char *const om_tables[OM_TABLES] = {"volumeTable", "bucketTable",
                                                 "keyTable", "openKeyTable"};

/* ---- the decision (DESIGN.md §2.1) ---- */

enum recon_sync_mode recon_om_sync_mode(uint32_t om_apparent,
                                        uint32_t om_software,
                                        uint32_t unimplemented_at_software,
                                        char *reason,
                                        size_t size)
{
    char dummy[8];

    if (reason == NULL) {
        reason = dummy;
        size = sizeof(dummy);
    }
    if (om_apparent < VERSION_ZDU_READY) {
        snprintf(reason, size,
                 "OM apparent version %u predates DBUpdates (version %d, "
                 "ZDU_READY): full syncs only",
                 om_apparent, VERSION_ZDU_READY);
        return RECON_SYNC_FULL_ONLY;
    }
    if (unimplemented_at_software != 0 &&
        unimplemented_at_software == om_software) {
        snprintf(reason, size,
                 "OM software version %u answered UNIMPLEMENTED for "
                 "DBUpdates: full syncs only until it runs other bits",
                 om_software);
        return RECON_SYNC_FULL_ONLY;
    }
    snprintf(reason, size,
             "OM apparent version %u offers DBUpdates: incremental",
             om_apparent);
    return RECON_SYNC_INCREMENTAL;
}

enum recon_full_reason recon_om_full_reason(bool have_copy,
                                            const char *copy_node,
                                            const char *leader_node,
                                            enum recon_sync_mode mode,
                                            bool asked,
                                            char *reason,
                                            size_t size)
{
    char dummy[8];

    if (reason == NULL || size == 0) {
        reason = dummy;
        size = sizeof(dummy);
    }
    reason[0] = '\0';
    if (!have_copy) {
        snprintf(reason, size, "no copy of OM's DB yet");
        return RECON_FULL_NO_COPY;
    }
    if (strcmp(copy_node, leader_node) != 0) {
        /* Sequence numbers are per OM DB (see the top of this file). */
        snprintf(reason, size,
                 "the copy is of OM '%s', the leader is now '%s' (sequence "
                 "numbers differ between OMs' DBs)",
                 copy_node, leader_node);
        return RECON_FULL_OTHER_OM;
    }
    if (asked) {
        snprintf(reason, size, "a full sync was asked for");
        return RECON_FULL_ASKED;
    }
    if (mode == RECON_SYNC_FULL_ONLY) {
        snprintf(reason, size, "OM '%s' offers full syncs only", leader_node);
        return RECON_FULL_ONLY;
    }
    return RECON_FULL_NONE;
}

/* ---- sync thread state (owned by the thread) ---- */

struct om_sync
{
    struct recon_om_service oms;
    uint32_t unimpl_software; /* see recon_om_sync_mode */
    char unimpl_node[RECON_ID_MAX];
    uint64_t generation;
    char last_logged[512];
    /* An asked-for full sync failed and is retried every interval; the
     * copy in place keeps taking deltas meanwhile. */
    bool full_retry;
};

static struct om_sync sync_state;

/* ---- files ---- */

static int rm_entry(const char *path,
                    const struct stat *st,
                    int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP) {
        rmdir(path);
    } else {
        unlink(path);
    }
    return 0;
}

static void remove_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_current(struct recon *r, const char *name, char *errmsg)
{
    char tmp[4300], path[4300];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/om.current.tmp", r->d->storage_dir);
    snprintf(path, sizeof(path), "%s/om.current", r->d->storage_dir);
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%s\n", name) < 0 || fflush(f) != 0 ||
        fsync(fileno(f)) != 0) {
        oz_errmsg_printf(errmsg, "cannot write '%s': %s", tmp, strerror(errno));
        if (f != NULL) {
            fclose(f);
        }
        return OZ_EIO;
    }
    fclose(f);
    if (rename(tmp, path) != 0) {
        oz_errmsg_printf(errmsg, "cannot rename '%s': %s", tmp,
                         strerror(errno));
        return OZ_EIO;
    }
    int dfd = open(r->d->storage_dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* ---- the copy ---- */

static int read_meta(struct kv *kv, uint64_t *seq, char *node, size_t size)
{
    int cf = kv_cf(kv, KV_META_CF);
    void *v = NULL;
    size_t len = 0;

    if (cf < 0 ||
        kv_get(kv, cf, META_SEQUENCE, strlen(META_SEQUENCE), &v, &len) != 0) {
        return OZ_ENOTFOUND;
    }
    *seq = strtoull(v, NULL, 10);
    free(v);
    if (kv_get(kv, cf, META_NODE, strlen(META_NODE), &v, &len) != 0) {
        return OZ_ENOTFOUND;
    }
    oz_strlcpy(node, v, size);
    free(v);
    return 0;
}

static void meta_batch(struct kv *kv,
                       struct kv_batch *b,
                       uint64_t seq,
                       const char *node)
{
    char text[32];
    int cf = kv_cf(kv, KV_META_CF);
    int n = snprintf(text, sizeof(text), "%" PRIu64, seq);

    kv_batch_put(b, cf, META_SEQUENCE, strlen(META_SEQUENCE), text, (size_t)n);
    if (node != NULL) {
        kv_batch_put(b, cf, META_NODE, strlen(META_NODE), node, strlen(node));
    }
}

static int open_copy(const char *dir, struct kv **out, char *errmsg)
{
    int rc = kv_open(out, dir, NULL, 0, 0, errmsg);

    if (rc != 0) {
        return rc;
    }
    for (int i = 0; i < OM_TABLES; i++) {
        if (kv_cf(*out, om_tables[i]) < 0 || kv_cf(*out, KV_META_CF) < 0) {
            oz_errmsg_printf(errmsg,
                             "checkpoint '%s' is not an OM DB: no table '%s'",
                             dir, om_tables[i]);
            kv_close(*out);
            *out = NULL;
            return OZ_ECORRUPT;
        }
    }
    return 0;
}

static uint64_t count_table(struct kv *kv, const char *table)
{
    int cf = kv_cf(kv, table);
    uint64_t n = 0;

    if (cf < 0) {
        return 0;
    }
    struct kv_iter *it = kv_iter_new(kv, cf);
    if (it == NULL) {
        return 0;
    }
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        n++;
    }
    kv_iter_free(it);
    return n;
}

/* Recounts the tables into the view (om_lock held shared by the caller). */
static void refresh_counts(struct recon *r, struct kv *kv)
{
    uint64_t c[OM_TABLES];

    for (int i = 0; i < OM_TABLES; i++) {
        c[i] = count_table(kv, om_tables[i]);
    }
    pthread_mutex_lock(&r->lock);
    r->om.volumes = c[0];
    r->om.buckets = c[1];
    r->om.keys = c[2];
    r->om.open_keys = c[3];
    pthread_mutex_unlock(&r->lock);
}

/* Opens the copy named by om.current and removes leftovers. */
static void load_copy(struct recon *r)
{
    char path[4300], name[256] = "", dir[4300];
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct kv *kv = NULL;
    uint64_t seq = 0;
    char node[RECON_ID_MAX] = "";
    FILE *f;

    snprintf(path, sizeof(path), "%s/om.current", r->d->storage_dir);
    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(name, sizeof(name), f) == NULL) {
            name[0] = '\0';
        }
        fclose(f);
        name[strcspn(name, "\n")] = '\0';
    }
    /* Leftovers of an interrupted sync: never the current copy. */
    DIR *dp = opendir(r->d->storage_dir);
    struct dirent *de;
    while (dp != NULL && (de = readdir(dp)) != NULL) {
        if ((strncmp(de->d_name, "om.db.", 6) == 0 &&
             strcmp(de->d_name, name) != 0) ||
            strcmp(de->d_name, "om.download.tar") == 0) {
            snprintf(dir, sizeof(dir), "%s/%s", r->d->storage_dir, de->d_name);
            log_info("removing '%s' left by an earlier run", dir);
            remove_tree(dir);
        }
        if (strncmp(de->d_name, "om.db.", 6) == 0) {
            uint64_t g = strtoull(de->d_name + 6, NULL, 10);
            if (g > sync_state.generation) {
                sync_state.generation = g;
            }
        }
    }
    if (dp != NULL) {
        closedir(dp);
    }
    if (name[0] == '\0' || strncmp(name, "om.db.", 6) != 0 ||
        strchr(name, '/') != NULL) {
        return;
    }
    snprintf(dir, sizeof(dir), "%s/%s", r->d->storage_dir, name);
    if (open_copy(dir, &kv, errmsg) != 0 ||
        read_meta(kv, &seq, node, sizeof(node)) != 0) {
        log_warn(
            "cannot use Recon's copy of OM's DB '%s' (%s); a full sync "
            "rebuilds it",
            dir, errmsg[0] ? errmsg : "no sync marker");
        kv_close(kv);
        remove_tree(dir);
        return;
    }
    struct recon_om_copy *copy = calloc(1, sizeof(*copy));
    if (copy == NULL) {
        kv_close(kv);
        return;
    }
    copy->kv = kv;
    oz_strlcpy(copy->dir, dir, sizeof(copy->dir));
    r->om_copy = copy;
    refresh_counts(r, kv);
    pthread_mutex_lock(&r->lock);
    r->om.present = true;
    r->om.sequence = seq;
    oz_strlcpy(r->om.source_node, node, sizeof(r->om.source_node));
    pthread_mutex_unlock(&r->lock);
    log_info("opened Recon's copy of OM's DB '%s' at sequence %" PRIu64
             " (from OM '%s')",
             dir, seq, node);
}

/* ---- full sync ---- */

static int parse_trailer(const char *text,
                         uint64_t *seq,
                         uint32_t *crc,
                         uint64_t *length)
{
    bool have_seq = false, have_crc = false, have_len = false;
    const char *p = text;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char line[128];
        if (len < sizeof(line)) {
            memcpy(line, p, len);
            line[len] = '\0';
            char *end = NULL;
            if (strncmp(line, "sequence=", 9) == 0) {
                *seq = strtoull(line + 9, &end, 10);
                have_seq = end != line + 9 && *end == '\0';
            } else if (strncmp(line, "crc32c=", 7) == 0) {
                *crc = (uint32_t)strtoul(line + 7, &end, 16);
                have_crc = end == line + 15 && *end == '\0';
            } else if (strncmp(line, "length=", 7) == 0) {
                *length = strtoull(line + 7, &end, 10);
                have_len = end != line + 7 && *end == '\0';
            }
        }
        p += len;
        if (*p == '\n') {
            p++;
        }
    }
    return have_seq && have_crc && have_len ? 0 : OZ_ECORRUPT;
}

/* Checks the downloaded archive; entries (caller frees) and the trailer's
 * sequence on success. */
static int verify_archive(struct recon *r,
                          const char *path,
                          struct tar_entry **entries,
                          size_t *n,
                          uint64_t *seq,
                          char *errmsg)
{
    struct tar_limits lim = {(uint64_t)r->cfg.checkpoint_max,
                             (uint64_t)r->cfg.checkpoint_max, 100000};
    char *trailer = NULL;
    uint32_t crc = 0, actual = 0;
    uint64_t length = 0;
    int rc = tar_list(path, &lim, entries, n, errmsg);

    if (rc != 0) {
        return rc;
    }
    const struct tar_entry *last = *n > 0 ? &(*entries)[*n - 1] : NULL;
    if (last == NULL || strcmp(last->name, TAR_CHECKPOINT_TRAILER) != 0) {
        oz_errmsg_printf(errmsg,
                         "checkpoint archive has no '%s' trailer: "
                         "incomplete or not from an OM",
                         TAR_CHECKPOINT_TRAILER);
        rc = OZ_ECORRUPT;
    } else if ((rc = tar_read_member(path, last, TRAILER_MAX, &trailer,
                                     errmsg)) == 0) {
        if (parse_trailer(trailer, seq, &crc, &length) != 0) {
            oz_errmsg_printf(errmsg, "checkpoint trailer is malformed");
            rc = OZ_ECORRUPT;
        } else if (length != last->header_offset) {
            oz_errmsg_printf(errmsg,
                             "checkpoint trailer covers %" PRIu64
                             " bytes, the archive has %" PRIu64 " before it",
                             length, last->header_offset);
            rc = OZ_ECORRUPT;
        } else if ((rc = tar_file_crc(path, length, &actual, errmsg)) == 0 &&
                   actual != crc) {
            oz_errmsg_printf(errmsg,
                             "checkpoint checksum mismatch: CRC32C %08x, "
                             "trailer says %08x",
                             actual, crc);
            rc = OZ_ECORRUPT;
        }
        free(trailer);
    }
    if (rc != 0) {
        free(*entries);
        *entries = NULL;
        *n = 0;
    }
    return rc;
}

/* Installs a verified, opened copy: om.current, then the pointer swap. */
static int install_copy(struct recon *r,
                        struct kv *kv,
                        const char *dir,
                        uint64_t gen,
                        uint64_t seq,
                        const char *node,
                        char *errmsg)
{
    struct recon_om_copy *copy = calloc(1, sizeof(*copy));
    char name[64];
    int rc;

    if (copy == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    snprintf(name, sizeof(name), "om.db.%" PRIu64, gen);
    rc = write_current(r, name, errmsg);
    if (rc != 0) {
        free(copy);
        return rc;
    }
    copy->kv = kv;
    copy->generation = gen;
    oz_strlcpy(copy->dir, dir, sizeof(copy->dir));
    pthread_rwlock_wrlock(&r->om_lock);
    struct recon_om_copy *old = r->om_copy;
    r->om_copy = copy;
    pthread_rwlock_unlock(&r->om_lock);
    pthread_mutex_lock(&r->lock);
    r->om.present = true;
    r->om.sequence = seq;
    r->om.synced_ms = recon_now_ms();
    oz_strlcpy(r->om.source_node, node, sizeof(r->om.source_node));
    pthread_mutex_unlock(&r->lock);
    if (old != NULL) {
        kv_close(old->kv);
        remove_tree(old->dir);
        free(old);
    }
    return 0;
}

static int full_sync(struct recon *r,
                     const char *http_addr,
                     const char *node,
                     char *errmsg)
{
    char url[512], download[4300], dir[4300];
    struct http_client_result res;
    struct tar_entry *entries = NULL;
    size_t n = 0;
    uint64_t seq = 0;
    struct kv *kv = NULL;
    uint64_t gen = ++sync_state.generation;
    int rc;

    snprintf(url, sizeof(url), "http://%s/dbCheckpoint", http_addr);
    snprintf(download, sizeof(download), "%s/om.download.tar",
             r->d->storage_dir);
    snprintf(dir, sizeof(dir), "%s/om.db.%" PRIu64, r->d->storage_dir, gen);
    rc = http_client_get_file(url, download, (uint64_t)r->cfg.checkpoint_max,
                              (int)r->cfg.http_timeout_ms, &res, errmsg);
    if (rc == 0) {
        rc = fault_hit("recon.om.after_download");
    }
    if (rc == 0) {
        rc = verify_archive(r, download, &entries, &n, &seq, errmsg);
    }
    if (rc == 0 && mkdir(dir, 0700) != 0) {
        oz_errmsg_printf(errmsg, "cannot create '%s': %s", dir,
                         strerror(errno));
        rc = OZ_EIO;
    }
    if (rc == 0) {
        rc = tar_extract(download, entries, n, dir, TAR_CHECKPOINT_TRAILER,
                         errmsg);
    }
    free(entries);
    unlink(download);
    if (rc == 0) {
        rc = open_copy(dir, &kv, errmsg);
    }
    if (rc == 0) {
        struct kv_batch *b = kv_batch_new();
        if (b == NULL) {
            rc = OZ_ENOMEM;
        } else {
            meta_batch(kv, b, seq, node);
            rc = kv_write(kv, b, true, errmsg);
            kv_batch_free(b);
        }
    }
    if (rc == 0) {
        refresh_counts(r, kv);
        rc = install_copy(r, kv, dir, gen, seq, node, errmsg);
    }
    if (rc != 0) {
        kv_close(kv);
        remove_tree(dir);
        return rc;
    }
    log_info("full sync from OM '%s' at '%s': %" PRIu64
             " bytes, sequence %" PRIu64,
             node, url, res.bytes, seq);
    return 0;
}

/* ---- incremental sync ---- */

enum delta_result { DELTA_OK, DELTA_NEED_FULL, DELTA_FAILED };

static enum delta_result apply_batches(struct recon *r,
                                       struct kv *kv,
                                       const Ozone__Om__DBUpdatesResponse *resp,
                                       uint64_t *seq,
                                       char *errmsg)
{
    for (size_t i = 0; i < resp->n_batches; i++) {
        const Ozone__Om__DBUpdateBatch *b = resp->batches[i];
        if (b == NULL || b->count == 0) {
            continue;
        }
        /* Each batch must follow on from what the copy holds (it may
         * overlap: replaying puts and deletes is harmless). */
        if (b->sequence > *seq + 1) {
            oz_errmsg_printf(errmsg,
                             "OM sent updates from sequence %" PRIu64
                             ", the copy holds up to %" PRIu64 ": a gap",
                             b->sequence, *seq);
            return DELTA_NEED_FULL;
        }
        uint64_t end = b->sequence + b->count - 1;
        if (end <= *seq) {
            continue;
        }
        struct kv_batch *extra = kv_batch_new();
        if (extra == NULL) {
            oz_errmsg_printf(errmsg, "out of memory");
            return DELTA_FAILED;
        }
        meta_batch(kv, extra, end, NULL);
        int rc =
            kv_write_raw(kv, b->data.data, b->data.len, extra, false, errmsg);
        kv_batch_free(extra);
        if (rc != 0) {
            /* A batch the copy cannot take (e.g. a table it lacks): start
             * over from a checkpoint. */
            return rc == OZ_ECORRUPT ? DELTA_NEED_FULL : DELTA_FAILED;
        }
        *seq = end;
        metrics_add(r->m_updates_applied, 1);
    }
    return DELTA_OK;
}

static enum delta_result delta_sync(struct recon *r,
                                    struct rpc_client *client,
                                    const char *node,
                                    uint32_t om_software,
                                    char *errmsg)
{
    uint64_t seq;
    enum delta_result dr = DELTA_OK;

    pthread_mutex_lock(&r->lock);
    seq = r->om.sequence;
    pthread_mutex_unlock(&r->lock);
    uint64_t start = seq;
    pthread_rwlock_rdlock(&r->om_lock);
    struct kv *kv = r->om_copy != NULL ? r->om_copy->kv : NULL;
    for (int call = 0; kv != NULL && call < MAX_DELTA_CALLS; call++) {
        Ozone__Om__DBUpdatesRequest req = OZONE__OM__DBUPDATES_REQUEST__INIT;
        ProtobufCMessage *resp_msg = NULL;
        struct rpc_error err;
        req.from_sequence = seq;
        req.limit = (uint64_t)r->cfg.om_updates_limit;
        int rc = rpc_client_call(client, &ozone__om__om_db_service__descriptor,
                                 "DBUpdates", &req.base, &resp_msg, &err);
        if (rc != 0) {
            if (err.status == RPC_STATUS_UNIMPLEMENTED) {
                sync_state.unimpl_software = om_software;
                oz_strlcpy(sync_state.unimpl_node, node,
                           sizeof(sync_state.unimpl_node));
                oz_errmsg_printf(errmsg,
                                 "OM '%s' does not implement DBUpdates: "
                                 "switching to full syncs",
                                 node);
                dr = DELTA_NEED_FULL;
            } else if (err.code == OZONE__RESULT_CODE__UPDATES_NOT_AVAILABLE) {
                oz_errmsg_printf(errmsg, "%s", err.message);
                dr = DELTA_NEED_FULL;
            } else if (err.code == OZONE__RESULT_CODE__NOT_LEADER) {
                /* An OM that serves DBUpdates on the leader only: the next
                 * round finds the new leader. */
                oz_errmsg_printf(errmsg, "DBUpdates at '%s': %s", err.address,
                                 err.message);
                dr = DELTA_FAILED;
            } else {
                oz_errmsg_printf(
                    errmsg, "DBUpdates failed at '%s': %s", err.address,
                    err.message[0] ? err.message : oz_strerror(rc));
                dr = DELTA_FAILED;
            }
            break;
        }
        const Ozone__Om__DBUpdatesResponse *resp =
            (const Ozone__Om__DBUpdatesResponse *)resp_msg;
        if (resp->hdr == NULL || resp->hdr->node_id == NULL ||
            strcmp(resp->hdr->node_id, node) != 0) {
            oz_errmsg_printf(
                errmsg,
                "DBUpdates answered by OM '%s', the copy is of "
                "'%s'",
                resp->hdr && resp->hdr->node_id ? resp->hdr->node_id : "?",
                node);
            rpc_message_free(resp_msg);
            dr = DELTA_NEED_FULL;
            break;
        }
        if (resp->latest_sequence < seq) {
            /* The OM's DB went back in time (restored, re-created): the
             * copy holds writes it no longer has. */
            oz_errmsg_printf(errmsg,
                             "OM '%s' is at sequence %" PRIu64
                             ", behind the copy (%" PRIu64 ")",
                             node, resp->latest_sequence, seq);
            rpc_message_free(resp_msg);
            dr = DELTA_NEED_FULL;
            break;
        }
        uint64_t before = seq;
        dr = apply_batches(r, kv, resp, &seq, errmsg);
        uint64_t latest = resp->latest_sequence;
        rpc_message_free(resp_msg);
        pthread_mutex_lock(&r->lock);
        r->om.sequence = seq;
        r->om.om_latest = latest > seq ? latest : seq;
        pthread_mutex_unlock(&r->lock);
        if (dr != DELTA_OK || seq >= latest || seq == before) {
            break;
        }
    }
    if (kv != NULL && dr != DELTA_NEED_FULL && seq != start) {
        refresh_counts(r, kv);
    }
    pthread_rwlock_unlock(&r->om_lock);
    if (kv == NULL) {
        oz_errmsg_printf(errmsg, "no copy of OM's DB yet");
        return DELTA_NEED_FULL;
    }
    return dr;
}

/* ---- one round ---- */

static void log_once(const char *text)
{
    if (strcmp(text, sync_state.last_logged) != 0) {
        log_warn("OM sync: %s", text);
        oz_strlcpy(sync_state.last_logged, text,
                   sizeof(sync_state.last_logged));
    }
}

static void task_failed(struct recon *r, const char *text, int64_t now)
{
    pthread_mutex_lock(&r->lock);
    bool have = r->om.present;
    pthread_mutex_unlock(&r->lock);
    log_once(text);
    recon_task_failed(r, have ? RECON_TASK_OM_DELTA : RECON_TASK_OM_SNAPSHOT,
                      text, now);
}

/* The leader's GetVersion: its node id, versions and HTTP address (the
 * address it serves /dbCheckpoint on; else the configured one). */
static int leader_version(struct recon *r,
                          const struct recon_om_node *leader,
                          struct rpc_client *client,
                          char *node,
                          char *http,
                          uint32_t *sw,
                          uint32_t *ap,
                          char *text,
                          size_t size)
{
    Ozone__GetVersionRequest vreq = OZONE__GET_VERSION_REQUEST__INIT;
    ProtobufCMessage *vresp = NULL;
    struct rpc_error err;
    int rc = rpc_client_call(client, &ozone__version_service__descriptor,
                             "GetVersion", &vreq.base, &vresp, &err);

    if (rc != 0) {
        snprintf(text, size, "OM%s%s%s unreachable at '%s': %s",
                 leader->node_id[0] ? " '" : "", leader->node_id,
                 leader->node_id[0] ? "'" : "", leader->rpc_address,
                 err.message[0] ? err.message : oz_strerror(rc));
        return rc;
    }
    const Ozone__GetVersionResponse *v =
        (const Ozone__GetVersionResponse *)vresp;
    *sw = v->hdr ? v->hdr->software_version : 0;
    *ap = v->hdr ? v->hdr->apparent_version : 0;
    oz_strlcpy(node, v->hdr && v->hdr->node_id ? v->hdr->node_id : "",
               RECON_ID_MAX);
    if (v->http_address != NULL && v->http_address[0] != '\0') {
        daemon_dial_address(v->http_address, http, RECON_ADDR_MAX);
    } else if (leader->http_address[0] != '\0') {
        oz_strlcpy(http, leader->http_address, RECON_ADDR_MAX);
    } else {
        daemon_dial_address(
            conf_get_str(r->d->conf, "ozone.om.http-address", "0.0.0.0:9874"),
            http, RECON_ADDR_MAX);
    }
    rpc_message_free(vresp);
    return 0;
}

/* Records the leader for the API; logs a change. */
static void note_leader(struct recon *r, const char *node, const char *addr)
{
    char was[RECON_ID_MAX];

    pthread_mutex_lock(&r->lock);
    oz_strlcpy(was, r->om.leader_node, sizeof(was));
    oz_strlcpy(r->om.leader_node, node, sizeof(r->om.leader_node));
    pthread_mutex_unlock(&r->lock);
    if (strcmp(was, node) == 0) {
        return;
    }
    if (sync_state.oms.n > 1) {
        log_info(
            "OM sync: OM '%s' at '%s' leads OM service '%s'%s%s%s; "
            "syncing from it",
            node, addr, sync_state.oms.service_id, was[0] ? " (was '" : "", was,
            was[0] ? "')" : "");
        if (was[0] != '\0') {
            metrics_add(
                metrics_get("ozone_recon_om_leader_changes_total", "",
                            METRIC_COUNTER, "OM leader changes Recon followed"),
                1);
        }
    }
}

/* One incremental step (the task's bookkeeping included); the result
 * tells whether a full sync must follow. */
static enum delta_result run_delta(struct recon *r,
                                   struct rpc_client *client,
                                   const char *node,
                                   uint32_t sw,
                                   char *errmsg)
{
    recon_task_start(r, RECON_TASK_OM_DELTA);
    enum delta_result dr = delta_sync(r, client, node, sw, errmsg);
    int64_t now = recon_now_ms();
    if (dr == DELTA_OK) {
        pthread_mutex_lock(&r->lock);
        uint64_t seq = r->om.sequence;
        r->om.synced_ms = now;
        pthread_mutex_unlock(&r->lock);
        recon_task_ok(r, RECON_TASK_OM_DELTA, seq, now);
        metrics_add(r->m_delta_syncs, 1);
        sync_state.last_logged[0] = '\0';
        return dr;
    }
    recon_task_failed(r, RECON_TASK_OM_DELTA, errmsg, now);
    metrics_add(r->m_delta_failures, 1);
    if (dr == DELTA_FAILED) {
        log_once(errmsg);
    }
    return dr;
}

static void run_once(struct recon *r, bool force_full)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char node[RECON_ID_MAX], http[RECON_ADDR_MAX], reason[256];
    char text[600];
    uint32_t sw = 0, ap = 0;
    size_t li;
    int64_t now = recon_now_ms();

    int rc = recon_om_service_leader(&sync_state.oms, &li, errmsg);
    if (rc != 0) {
        snprintf(text, sizeof(text), "OM leader unknown: %s", errmsg);
        task_failed(r, text, now);
        return;
    }
    const struct recon_om_node *leader = &sync_state.oms.nodes[li];
    struct rpc_client *client = sync_state.oms.clients[li];
    if (leader_version(r, leader, client, node, http, &sw, &ap, text,
                       sizeof(text)) != 0) {
        task_failed(r, text, recon_now_ms());
        return;
    }
    note_leader(r, node, leader->rpc_address);
    enum recon_sync_mode mode = recon_om_sync_mode(
        ap, sw,
        strcmp(sync_state.unimpl_node, node) == 0 ? sync_state.unimpl_software
                                                  : 0,
        reason, sizeof(reason));
    pthread_mutex_lock(&r->lock);
    enum recon_full_reason why =
        recon_om_full_reason(r->om.present, r->om.source_node, node, mode,
                             force_full, errmsg, sizeof(errmsg));
    if (r->om.mode != mode || strcmp(r->om.mode_reason, reason) != 0) {
        log_info("OM sync mode for OM '%s': %s", node, reason);
    }
    r->om.mode = mode;
    oz_strlcpy(r->om.mode_reason, reason, sizeof(r->om.mode_reason));
    r->om.om_software = sw;
    r->om.om_apparent = ap;
    pthread_mutex_unlock(&r->lock);

    bool retry = why == RECON_FULL_ASKED && sync_state.full_retry;
    if (retry && mode == RECON_SYNC_INCREMENTAL) {
        /* Keep the copy in place fresh before trying the full sync again. */
        char derr[OZ_ERRMSG_SIZE] = "";
        char logged[sizeof(sync_state.last_logged)];
        oz_strlcpy(logged, sync_state.last_logged, sizeof(logged));
        if (run_delta(r, client, node, sw, derr) == DELTA_NEED_FULL) {
            log_info("OM sync: %s; taking a full sync from OM '%s'", derr,
                     node);
        }
        /* The failed full sync is logged once, not once per retry. */
        oz_strlcpy(sync_state.last_logged, logged, sizeof(logged));
    }
    if (why == RECON_FULL_NONE) {
        enum delta_result dr = run_delta(r, client, node, sw, errmsg);
        if (dr != DELTA_NEED_FULL) {
            return;
        }
        log_info("OM sync: %s; taking a full sync from OM '%s'", errmsg, node);
    } else if (why == RECON_FULL_OTHER_OM ||
               (why == RECON_FULL_ASKED && !retry)) {
        log_info("OM sync: %s; taking a full sync from OM '%s'", errmsg, node);
    }
    errmsg[0] = '\0';
    recon_task_start(r, RECON_TASK_OM_SNAPSHOT);
    rc = full_sync(r, http, node, errmsg);
    now = recon_now_ms();
    if (rc != 0) {
        snprintf(text, sizeof(text), "full sync from OM '%s' failed: %s", node,
                 errmsg);
        log_once(text);
        recon_task_failed(r, RECON_TASK_OM_SNAPSHOT, text, now);
        metrics_add(r->m_full_failures, 1);
        if (why == RECON_FULL_ASKED) {
            /* The operator asked for one: try again next interval (the
             * copy in place keeps serving and taking deltas meanwhile). */
            sync_state.full_retry = true;
            pthread_mutex_lock(&r->lock);
            r->om_trigger_full = true;
            pthread_mutex_unlock(&r->lock);
        }
        return;
    }
    sync_state.full_retry = false;
    pthread_mutex_lock(&r->lock);
    uint64_t seq = r->om.sequence;
    if (r->om.om_latest < seq) {
        r->om.om_latest = seq;
    }
    pthread_mutex_unlock(&r->lock);
    sync_state.last_logged[0] = '\0';
    recon_task_ok(r, RECON_TASK_OM_SNAPSHOT, seq, now);
    metrics_add(r->m_full_syncs, 1);
    /* Catch up at once with what was written during the download. */
    if (mode == RECON_SYNC_INCREMENTAL) {
        if (delta_sync(r, client, node, sw, errmsg) == DELTA_OK) {
            pthread_mutex_lock(&r->lock);
            seq = r->om.sequence;
            pthread_mutex_unlock(&r->lock);
            recon_task_ok(r, RECON_TASK_OM_DELTA, seq, recon_now_ms());
        }
    }
}

static void *sync_main(void *arg)
{
    struct recon *r = arg;
    bool first = true;

    for (;;) {
        bool full = false;
        if (!recon__wait(r, first ? 0 : r->cfg.om_interval_ms,
                         &r->om_trigger)) {
            break;
        }
        first = false;
        pthread_mutex_lock(&r->lock);
        full = r->om_trigger_full;
        r->om_trigger = false;
        r->om_trigger_full = false;
        pthread_mutex_unlock(&r->lock);
        run_once(r, full);
    }
    return NULL;
}

/* ---- public ---- */

static double gauge_lag(void *ctx)
{
    struct recon *r = ctx;

    pthread_mutex_lock(&r->lock);
    double lag = r->om.om_latest > r->om.sequence
                     ? (double)(r->om.om_latest - r->om.sequence)
                     : 0.0;
    pthread_mutex_unlock(&r->lock);
    return lag;
}

static double gauge_seq(void *ctx)
{
    struct recon *r = ctx;

    pthread_mutex_lock(&r->lock);
    double v = (double)r->om.sequence;
    pthread_mutex_unlock(&r->lock);
    return v;
}

int recon_om_sync_start(struct recon *r, char *errmsg)
{
    char list[1024] = "";
    int rc;

    memset(&sync_state, 0, sizeof(sync_state));
    load_copy(r);
    rc = recon_om_service_open(&sync_state.oms, r->d, errmsg);
    if (rc != 0) {
        return rc;
    }
    metrics_register_fn("ozone_recon_om_sync_lag", "",
                        "OM's latest sequence number minus the one Recon's "
                        "copy holds",
                        gauge_lag, r);
    metrics_register_fn("ozone_recon_om_sequence", "",
                        "OM sequence number Recon's copy holds", gauge_seq, r);
    if (pthread_create(&r->om_thread, NULL, sync_main, r) != 0) {
        oz_errmsg_printf(errmsg, "cannot start the OM sync thread");
        return OZ_ENOMEM;
    }
    r->om_started = true;
    for (size_t i = 0; i < sync_state.oms.n; i++) {
        size_t len = strlen(list);
        const struct recon_om_node *o = &sync_state.oms.nodes[i];
        snprintf(list + len, sizeof(list) - len, "%s%s%s%s", i ? ", " : "",
                 o->node_id, o->node_id[0] ? " at " : "", o->rpc_address);
    }
    if (sync_state.oms.n > 1) {
        log_info(
            "syncing OM's DB from the leader of OM service '%s' (%s) "
            "every %lld ms (%lld updates per call)",
            sync_state.oms.service_id, list, r->cfg.om_interval_ms,
            r->cfg.om_updates_limit);
    } else {
        log_info(
            "syncing OM's DB from '%s' every %lld ms (%lld updates per "
            "call)",
            list, r->cfg.om_interval_ms, r->cfg.om_updates_limit);
    }
    return 0;
}

void recon_om_sync_stop(struct recon *r)
{
    if (r->om_started) {
        pthread_join(r->om_thread, NULL);
        r->om_started = false;
    }
    recon_om_service_close(&sync_state.oms);
}

void recon_om_sync_trigger(struct recon *r, bool full)
{
    pthread_mutex_lock(&r->lock);
    r->om_trigger = true;
    r->om_trigger_full = r->om_trigger_full || full;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

int recon_om_scan(struct recon *r,
                  const char *table,
                  const char *prev,
                  bool (*fn)(void *ctx,
                             const void *key,
                             size_t klen,
                             const void *val,
                             size_t vlen),
                  void *ctx)
{
    int rc = 0;

    pthread_rwlock_rdlock(&r->om_lock);
    if (r->om_copy == NULL) {
        pthread_rwlock_unlock(&r->om_lock);
        return OZ_ENOTFOUND;
    }
    int cf = kv_cf(r->om_copy->kv, table);
    struct kv_iter *it = cf >= 0 ? kv_iter_new(r->om_copy->kv, cf) : NULL;
    if (it == NULL) {
        rc = OZ_ENOTFOUND;
    } else {
        if (prev != NULL && prev[0] != '\0') {
            kv_iter_seek(it, prev, strlen(prev));
            size_t klen;
            const void *k = kv_iter_valid(it) ? kv_iter_key(it, &klen) : NULL;
            if (k != NULL && klen == strlen(prev) &&
                memcmp(k, prev, klen) == 0) {
                kv_iter_next(it);
            }
        } else {
            kv_iter_seek_first(it);
        }
        for (; kv_iter_valid(it); kv_iter_next(it)) {
            size_t klen, vlen;
            const void *k = kv_iter_key(it, &klen);
            const void *v = kv_iter_value(it, &vlen);
            if (!fn(ctx, k, klen, v, vlen)) {
                break;
            }
        }
        kv_iter_free(it);
    }
    pthread_rwlock_unlock(&r->om_lock);
    return rc;
}
