/* GET /dbCheckpoint: a RocksDB checkpoint of the OM's tables as a ustar
 * archive (DESIGN.md §4, §8, §9), for Recon's full sync and, later, a
 * follower OM installing the leader's snapshot.
 *
 * Each request: take the latest sequence number, checkpoint the DB into
 * <storage>/checkpoints/ckpt-<n>, archive its files in name order into
 * ckpt-<n>.tar followed by the trailer member OM_CHECKPOINT_TRAILER
 * (om_recon.h), remove the directory and stream the archive. The sequence
 * is read before the checkpoint, so the checkpoint holds at least every
 * write up to it; a reader that replays updates after it may replay a few
 * it already has, which is harmless for puts and deletes (the OM writes
 * nothing else). The trailer's CRC32C lets the reader detect a truncated
 * or damaged download without HTTP headers of our own (common/http.h
 * streams a file with its length only).
 *
 * Archives cannot be removed when the response ends (http.h has no
 * completion hook), so each request removes those older than
 * KEEP_SECONDS, and start-up removes all. Unlinking an archive that is
 * still being sent is harmless (the server reads from its open file); the
 * few seconds only cover the moment between this handler returning the
 * path and the server opening it. One checkpoint is built at a
 * time (build_lock); MHD runs each connection on its own thread, so a slow
 * build never blocks /prom.
 */
#include "om_recon.h"
#include "om_service.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "tar.h"

#define KEEP_SECONDS 10

static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long build_counter;

/* Removes dir and the plain files in it (a checkpoint is flat). */
static void remove_flat_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    char path[4352];

    if (dp == NULL) {
        return;
    }
    while ((de = readdir(dp)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(dp);
    rmdir(dir);
}

/* Removes checkpoints and archives older than max_age seconds (all when
 * max_age is negative). */
static void remove_old(const char *base, long max_age)
{
    DIR *dp = opendir(base);
    struct dirent *de;
    time_t now = time(NULL);
    char path[4352];
    struct stat st;

    if (dp == NULL) {
        return;
    }
    while ((de = readdir(dp)) != NULL) {
        if (strncmp(de->d_name, "ckpt-", 5) != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
        if (lstat(path, &st) != 0 ||
            (max_age >= 0 && now - st.st_mtime < max_age)) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            remove_flat_dir(path);
        } else {
            unlink(path);
        }
    }
    closedir(dp);
}

static int only_files(const struct dirent *de)
{
    return strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
}

/* Archives the files of dir into tar_path with the trailer. */
static int archive(const char *dir,
                   const char *tar_path,
                   uint64_t sequence,
                   char *errmsg)
{
    struct dirent **names = NULL;
    struct tar_writer *w = NULL;
    char path[4352];
    char trailer[256];
    int n = scandir(dir, &names, only_files, alphasort);
    int rc;

    if (n < 0) {
        oz_errmsg_printf(errmsg, "cannot list checkpoint '%s': %s", dir,
                         strerror(errno));
        return OZ_EIO;
    }
    rc = tar_writer_open(&w, tar_path, errmsg);
    for (int i = 0; rc == 0 && i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        rc = tar_writer_add_file(w, names[i]->d_name, path, errmsg);
    }
    if (rc == 0) {
        int len = snprintf(
            trailer, sizeof(trailer),
            "sequence=%" PRIu64 "\ncrc32c=%08x\nlength=%" PRIu64 "\nfiles=%d\n",
            sequence, (unsigned)tar_writer_crc(w), tar_writer_offset(w), n);
        rc = tar_writer_add_data(w, OM_CHECKPOINT_TRAILER, trailer, (size_t)len,
                                 errmsg);
    }
    if (rc == 0) {
        rc = tar_writer_finish(w, errmsg);
    }
    tar_writer_free(w);
    for (int i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Fault point: leave half an archive, as a dropped connection would. */
static void maybe_truncate(const char *tar_path)
{
    struct stat st;

    if (fault_hit(OM_CHECKPOINT_FAULT_TRUNCATE) != 0 &&
        stat(tar_path, &st) == 0) {
        if (truncate(tar_path, st.st_size / 2) == 0) {
            log_warn("fault '%s': serving checkpoint '%s' cut to %lld bytes",
                     OM_CHECKPOINT_FAULT_TRUNCATE, tar_path,
                     (long long)(st.st_size / 2));
        }
    }
}

static void http_db_checkpoint(void *data,
                               const struct http_request *req,
                               struct http_response *resp)
{
    struct daemon *d = data;
    char base[4200];
    char dir[4300];
    char tar_path[4320];
    char errmsg[OZ_ERRMSG_SIZE] = "";
    uint64_t seq;
    int rc;

    (void)req;
    metrics_add(
        metrics_get("ozone_om_db_checkpoint_requests_total", "", METRIC_COUNTER,
                    "GET /dbCheckpoint requests (Recon full syncs)"),
        1);
    snprintf(base, sizeof(base), "%s/checkpoints", d->storage_dir);
    pthread_mutex_lock(&build_lock);
    remove_old(base, KEEP_SECONDS);
    if (mkdir(base, 0700) != 0 && errno != EEXIST) {
        pthread_mutex_unlock(&build_lock);
        http_response_printf(resp, 500, "text/plain",
                             "cannot create '%s': %s\n", base, strerror(errno));
        return;
    }
    snprintf(dir, sizeof(dir), "%s/ckpt-%lld-%llu", base, (long long)time(NULL),
             ++build_counter);
    snprintf(tar_path, sizeof(tar_path), "%s.tar", dir);
    /* Applied entries in the double buffer go to RocksDB first, so the
     * sequence read next covers them and the checkpoint holds them. */
    rc = om_buffer_flush(&((struct om_service *)d->state)->om, false, errmsg);
    seq = kv_latest_sequence(d->kv);
    if (rc == 0) {
        rc = kv_checkpoint(d->kv, dir, errmsg);
    }
    if (rc == 0) {
        rc = archive(dir, tar_path, seq, errmsg);
    }
    remove_flat_dir(dir);
    if (rc == 0) {
        maybe_truncate(tar_path);
    } else {
        unlink(tar_path);
    }
    pthread_mutex_unlock(&build_lock);
    if (rc != 0) {
        log_error("cannot serve /dbCheckpoint: %s", errmsg);
        http_response_printf(resp, 500, "text/plain",
                             "cannot create checkpoint: %s\n", errmsg);
        return;
    }
    log_info("serving checkpoint '%s' at sequence %" PRIu64, tar_path, seq);
    resp->status = 200;
    resp->content_type = "application/x-tar";
    resp->file_path = strdup(tar_path);
    if (resp->file_path == NULL) {
        http_response_printf(resp, 500, "text/plain", "out of memory\n");
        return;
    }
    struct stat st;
    if (fault_hit(OM_CHECKPOINT_FAULT_CUT) != 0 && stat(tar_path, &st) == 0) {
        resp->cut_after = (uint64_t)st.st_size / 2;
        log_warn(
            "fault '%s': closing the connection after %llu of %lld "
            "bytes of checkpoint '%s'",
            OM_CHECKPOINT_FAULT_CUT, (unsigned long long)resp->cut_after,
            (long long)st.st_size, tar_path);
    }
}

int om_checkpoint_register(struct daemon *d, char *errmsg)
{
    char base[4200];

    snprintf(base, sizeof(base), "%s/checkpoints", d->storage_dir);
    remove_old(base, -1);
    rmdir(base);
    if (http_server_route(d->http, "GET", "/dbCheckpoint", http_db_checkpoint,
                          d) != 0) {
        oz_errmsg_printf(errmsg, "cannot register /dbCheckpoint");
        return OZ_ENOMEM;
    }
    return 0;
}
