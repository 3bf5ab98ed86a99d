/* The datanode's HDDS catalog with its upgrade actions, the container
 * checksum files of CONTAINER_CHECKSUM, and finalization on SCM's
 * FINALIZE_UPGRADE command (DESIGN.md §6.1, §6.3, §6.5).
 *
 * Features (numbers and names live in common/version_catalogs.c):
 *   101 CHUNK_CHECKSUM_SHA256: WriteChunk/PutBlock accept SHA256 chunk
 *       checksums (dn_block.c gates them by apparent version). No action:
 *       chunks written before finalization are CRC32C and stay readable.
 *   102 CONTAINER_CHECKSUM: a CLOSED container gets
 *       <data dir>/hdds/<cluster id>/checksums/<container id>.checksum, a
 *       SHA-256 over its committed blocks' chunk checksums, served by
 *       GetContainerChecksum and ContainerInfo.
 *       VALIDATE_IN_PREFINALIZE: every data directory is writable (else
 *         refuse to start: finalization will have to write there).
 *       ON_FIRST_UPGRADE_START: create the checksums directories (old bits
 *         ignore them; recorded in VERSION firstUpgradeDone).
 *       ON_FINALIZE: write the checksum file of every CLOSED container
 *         (migrates existing data), after checking no container is OPEN
 *         or CLOSING: like Ozone's datanode finalization, it waits until
 *         SCM has closed the containers of the pipelines it closed when
 *         the datanode became HEALTHY_READONLY.
 *
 * Threading: FINALIZE_UPGRADE runs on the SCM heartbeat thread, like
 * CLOSE_CONTAINER, so no container closes while ON_FINALIZE scans them.
 * Fault points: datanode.finalize.before, datanode.finalize.after.
 */
#include "dn_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checksum.h"
#include "daemon.h"
#include "fault.h"
#include "log.h"
#include "props.h"

#define CHECKSUM_COMMENT \
    "ozone-c container checksum (HDDS CONTAINER_CHECKSUM); do not edit"
#define MAX_FEATURES 32

/* ---- data directories from the configuration ---- */

/* Calls fn for each directory of hdds.datanode.dir (or the fallback
 * <storage>/data), stopping at the first failure. */
static int each_data_dir(struct daemon *d,
                         int (*fn)(struct daemon *d,
                                   const char *dir,
                                   char *errmsg),
                         char *errmsg)
{
    const char *conf = conf_get(d->conf, "hdds.datanode.dir");
    char buf[DN_MAX_VOLUMES * 256];
    char *p, *next;

    if (conf == NULL || conf[0] == '\0') {
        snprintf(buf, sizeof(buf), "%s/data", d->storage_dir);
    } else if (oz_strlcpy(buf, conf, sizeof(buf)) >= sizeof(buf)) {
        oz_errmsg_printf(errmsg, "'hdds.datanode.dir' is too long");
        return OZ_ECONFIG;
    }
    for (p = buf; p != NULL; p = next) {
        next = strchr(p, ',');
        if (next != NULL) {
            *next++ = '\0';
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            p[--len] = '\0';
        }
        if (len == 0) {
            continue;
        }
        int rc = fn(d, p, errmsg);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int probe_writable(struct daemon *d, const char *dir, char *errmsg)
{
    char probe[PATH_MAX];
    FILE *f;

    (void)d;
    if (oz_mkdirs(dir, errmsg) != 0) {
        oz_errmsg_printf(errmsg,
                         "data directory '%s' cannot be created (%s): "
                         "CONTAINER_CHECKSUM writes checksum files there at "
                         "finalization; fix the directory or its "
                         "permissions",
                         dir, strerror(errno));
        return OZ_EIO;
    }
    snprintf(probe, sizeof(probe), "%s/.ozone-write-probe", dir);
    f = fopen(probe, "w");
    if (f == NULL || fclose(f) != 0 || unlink(probe) != 0) {
        oz_errmsg_printf(errmsg,
                         "data directory '%s' is not writable (%s): "
                         "CONTAINER_CHECKSUM writes checksum files there at "
                         "finalization; fix its permissions",
                         dir, strerror(errno));
        return OZ_EIO;
    }
    return 0;
}

/* VALIDATE_IN_PREFINALIZE of CONTAINER_CHECKSUM. */
static int validate_dirs(void *ctx,
                         const struct version_feature *f,
                         char *errmsg)
{
    (void)f;
    return each_data_dir(ctx, probe_writable, errmsg);
}

static int checksums_dir_of(const char *data_dir,
                            const char *cluster_id,
                            char *out,
                            size_t size)
{
    int n = snprintf(out, size, "%s/hdds/%s/checksums", data_dir, cluster_id);

    return n < 0 || (size_t)n >= size ? OZ_ETOOBIG : 0;
}

static int make_checksums_dir(struct daemon *d, const char *dir, char *errmsg)
{
    char cid[128];
    char path[PATH_MAX];

    /* Runs while the manager opens: d->vm holds VERSION already. */
    version_manager_prop(&d->vm, "clusterID", cid, sizeof(cid));
    if (checksums_dir_of(dir, cid, path, sizeof(path)) != 0) {
        oz_errmsg_printf(errmsg, "data directory '%s' is too long", dir);
        return OZ_ETOOBIG;
    }
    return oz_mkdirs(path, errmsg);
}

/* ON_FIRST_UPGRADE_START of CONTAINER_CHECKSUM: old bits ignore the
 * directories, so the data stays readable by them (DESIGN.md §6.3). */
static int first_start_dirs(void *ctx,
                            const struct version_feature *f,
                            char *errmsg)
{
    (void)f;
    return each_data_dir(ctx, make_checksums_dir, errmsg);
}

/* ---- container checksum files ---- */

static int checksum_path(const struct dn_store *s,
                         const struct dn_container *c,
                         char *dir,
                         size_t dir_size,
                         char *file,
                         size_t file_size)
{
    if (c->volume < 0 || checksums_dir_of(s->volumes[c->volume].path,
                                          s->cluster_id, dir, dir_size) != 0) {
        return OZ_ENOTFOUND;
    }
    int n = snprintf(file, file_size, "%s/%" PRIu64 ".checksum", dir, c->id);
    return n < 0 || (size_t)n >= file_size ? OZ_ETOOBIG : 0;
}

static void feed_be64(struct oz_sha256 *h, uint64_t v)
{
    uint8_t b[8];

    dn__put_be64(b, v);
    oz_sha256_update(h, b, sizeof(b));
}

/* SHA-256 over (local id, then per chunk offset, length, type and
 * checksum) of every committed block of c, in local id order. */
static int compute(struct dn_store *s,
                   const struct dn_container *c,
                   struct dn_checksum *out,
                   struct dn_result *res)
{
    struct oz_sha256 *h = oz_sha256_new();
    struct kv_iter *it;
    uint8_t key[8], digest[OZ_SHA256_LEN];
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (h == NULL || (it = kv_iter_new(s->kv, s->cf_blocks)) == NULL) {
        oz_sha256_free(h);
        return dn__fail(res, OZ_ENOMEM, OZONE__RESULT_CODE__INTERNAL_ERROR,
                        "out of memory");
    }
    dn__put_be64(key, c->id);
    for (kv_iter_seek(it, key, sizeof(key)); kv_iter_valid(it);
         kv_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = kv_iter_key(it, &klen);
        const void *v = kv_iter_value(it, &vlen);
        if (klen != 16 || dn__get_be64(k) != c->id) {
            break;
        }
        Ozone__Datanode__BlockData *bd =
            ozone__datanode__block_data__unpack(NULL, vlen, v);
        if (bd == NULL) {
            rc = dn__fail(res, OZ_ECORRUPT, OZONE__RESULT_CODE__IO_EXCEPTION,
                          "block record %" PRIu64 "/%" PRIu64
                          " is corrupt: cannot compute the container "
                          "checksum",
                          c->id, dn__get_be64(k + 8));
            break;
        }
        feed_be64(h, dn__get_be64(k + 8));
        for (size_t i = 0; i < bd->n_chunks; i++) {
            const Ozone__Datanode__ChunkInfo *ch = bd->chunks[i];
            uint8_t type = (uint8_t)ch->checksum_type;
            feed_be64(h, ch->offset);
            feed_be64(h, ch->length);
            oz_sha256_update(h, &type, 1);
            if (ch->checksum_type == OZONE__DATANODE__CHECKSUM_TYPE__SHA256) {
                oz_sha256_update(h, ch->checksum_bytes.data,
                                 ch->checksum_bytes.len);
            } else {
                feed_be64(h, ch->checksum);
            }
        }
        out->blocks++;
        out->bytes += bd->size;
        ozone__datanode__block_data__free_unpacked(bd, NULL);
    }
    kv_iter_free(it);
    if (rc != 0) {
        oz_sha256_free(h);
        return rc;
    }
    oz_sha256_final(h, digest);
    oz_hex(digest, sizeof(digest), out->hex);
    return 0;
}

int dn_container_checksum_read(struct dn_store *s,
                               const struct dn_container *c,
                               struct dn_checksum *out)
{
    char dir[PATH_MAX], file[PATH_MAX + 32], errmsg[OZ_ERRMSG_SIZE];
    struct props *p = malloc(sizeof(*p));
    const char *hex, *blocks, *bytes;
    int rc;

    memset(out, 0, sizeof(*out));
    if (p == NULL) {
        return OZ_ENOMEM;
    }
    rc = checksum_path(s, c, dir, sizeof(dir), file, sizeof(file));
    if (rc == 0) {
        props_init(p);
        rc = props_load(p, file, errmsg);
    }
    if (rc == 0) {
        hex = props_get(p, "checksum");
        blocks = props_get(p, "blocks");
        bytes = props_get(p, "bytes");
        if (hex == NULL || strlen(hex) != OZ_SHA256_HEX_LEN - 1 ||
            blocks == NULL || bytes == NULL) {
            log_warn(
                "container checksum file '%s' is incomplete; it is "
                "computed again",
                file);
            rc = OZ_ECORRUPT;
        } else {
            oz_strlcpy(out->hex, hex, sizeof(out->hex));
            out->blocks = strtoull(blocks, NULL, 10);
            out->bytes = strtoull(bytes, NULL, 10);
        }
    }
    free(p);
    return rc;
}

int dn_container_checksum_write(struct dn_store *s,
                                const struct dn_container *c,
                                struct dn_checksum *out,
                                struct dn_result *res)
{
    char dir[PATH_MAX], file[PATH_MAX + 32], num[32], id[32];
    struct props *p;
    int rc = compute(s, c, out, res);

    if (rc != 0) {
        return rc;
    }
    if (checksum_path(s, c, dir, sizeof(dir), file, sizeof(file)) != 0) {
        return dn__fail(res, OZ_ENOTFOUND, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "container %" PRIu64 " has no usable volume", c->id);
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return dn__fail(res, OZ_ENOMEM, OZONE__RESULT_CODE__INTERNAL_ERROR,
                        "out of memory");
    }
    props_init(p);
    snprintf(id, sizeof(id), "%" PRIu64, c->id);
    props_set(p, "containerID", id);
    props_set(p, "algorithm", "SHA256");
    props_set(p, "checksum", out->hex);
    snprintf(num, sizeof(num), "%" PRIu64, out->blocks);
    props_set(p, "blocks", num);
    snprintf(num, sizeof(num), "%" PRIu64, out->bytes);
    props_set(p, "bytes", num);
    rc = oz_mkdirs(dir, res->msg);
    if (rc == 0) {
        rc = props_save(p, file, CHECKSUM_COMMENT, res->msg);
    }
    free(p);
    if (rc != 0) {
        res->code = OZONE__RESULT_CODE__IO_EXCEPTION;
        oz_errmsg_wrapf(res->msg, "cannot write the checksum of container %llu",
                        (unsigned long long)c->id);
        return rc;
    }
    return 0;
}

int dn_container_checksum_get(struct dn_store *s,
                              struct dn_container *c,
                              struct dn_checksum *out,
                              struct dn_result *res)
{
    pthread_mutex_lock(&c->meta_lock);
    Ozone__Hdds__ContainerState st = c->state;
    pthread_mutex_unlock(&c->meta_lock);

    if (st != OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED) {
        return dn__fail(res, OZ_ESTATE, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "container %" PRIu64
                        " is %s on datanode '%s': its checksum is computed "
                        "when it closes",
                        c->id, dn_state_name(st), s->node_id);
    }
    if (dn_container_checksum_read(s, c, out) == 0) {
        return 0;
    }
    /* Closed before the file could be written (a crash): write it now. */
    return dn_container_checksum_write(s, c, out, res);
}

void dn__checksum_on_close(struct dn_store *s, struct dn_container *c)
{
    struct dn_checksum sum;
    struct dn_result res = {OZONE__RESULT_CODE__OK, ""};

    if (s->vm == NULL ||
        !version_manager_is_allowed(s->vm, VERSION_HDDS_CONTAINER_CHECKSUM)) {
        return; /* pre-finalized: the old on-disk format, no file */
    }
    if (dn_container_checksum_write(s, c, &sum, &res) != 0) {
        log_warn("%s; it is written when first asked for", res.msg);
        return;
    }
    log_info("container %" PRIu64 " checksum %.16s... (%" PRIu64
             " blocks, %" PRIu64 " bytes)",
             c->id, sum.hex, sum.blocks, sum.bytes);
}

/* ---- finalization ---- */

/* The containers that hold finalization back: OPEN or CLOSING ones.
 * Returns their count and describes the first in what. */
static size_t open_containers(struct dn_store *s, char *what, size_t size)
{
    size_t count = 0;

    what[0] = '\0';
    pthread_rwlock_rdlock(&s->set_lock);
    for (size_t i = 0; i < s->n_containers; i++) {
        struct dn_container *c = s->containers[i];
        pthread_mutex_lock(&c->meta_lock);
        Ozone__Hdds__ContainerState st = c->state;
        pthread_mutex_unlock(&c->meta_lock);
        if (st == OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN ||
            st == OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING) {
            if (count == 0) {
                snprintf(what, size, "container %" PRIu64 " is %s", c->id,
                         dn_state_name(st));
            }
            count++;
        }
    }
    pthread_rwlock_unlock(&s->set_lock);
    return count;
}

static int precondition(struct dn_store *s, char *errmsg)
{
    char first[96];
    size_t n = open_containers(s, first, sizeof(first));

    if (n == 0) {
        return 0;
    }
    oz_errmsg_printf(errmsg,
                     "%zu container(s) are OPEN or CLOSING (%s): "
                     "CONTAINER_CHECKSUM finalizes once SCM has closed them",
                     n, first);
    return OZ_ESTATE;
}

/* ON_FINALIZE of CONTAINER_CHECKSUM: the checksum file of every CLOSED
 * container (idempotent: a rerun after a crash writes the same bytes). */
static int finalize_checksums(void *ctx,
                              const struct version_feature *f,
                              char *errmsg)
{
    struct dn_store *s = dn__daemon_store(ctx);
    size_t written = 0;
    int rc;

    (void)f;
    if (s == NULL) {
        oz_errmsg_printf(errmsg, "the container store is not open yet");
        return OZ_ESTATE;
    }
    if ((rc = precondition(s, errmsg)) != 0) {
        return rc;
    }
    /* Containers are never freed before the store: copy the pointers
     * and work without set_lock (the heartbeat thread is the only one
     * that closes containers, and it runs this). */
    pthread_rwlock_rdlock(&s->set_lock);
    size_t n = s->n_containers;
    struct dn_container **cs = malloc((n + 1) * sizeof(*cs));
    if (cs != NULL && n > 0) {
        memcpy(cs, s->containers, n * sizeof(*cs));
    }
    pthread_rwlock_unlock(&s->set_lock);
    if (cs == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct dn_checksum sum;
        struct dn_result res = {OZONE__RESULT_CODE__OK, ""};
        pthread_mutex_lock(&cs[i]->meta_lock);
        bool closed =
            cs[i]->state == OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED;
        pthread_mutex_unlock(&cs[i]->meta_lock);
        if (!closed) {
            continue; /* UNHEALTHY: nothing trustworthy to sum */
        }
        rc = dn_container_checksum_write(s, cs[i], &sum, &res);
        if (rc != 0) {
            oz_strlcpy(errmsg, res.msg, OZ_ERRMSG_SIZE);
        } else {
            written++;
        }
    }
    free(cs);
    if (rc == 0) {
        log_info(
            "CONTAINER_CHECKSUM: checksum files written for %zu closed "
            "containers",
            written);
    }
    return rc;
}

static const struct version_actions dn_actions[] = {
    {VERSION_HDDS_CONTAINER_CHECKSUM, validate_dirs, first_start_dirs,
     finalize_checksums},
};

const struct version_catalog *dn_upgrade_catalog(void)
{
    static struct version_feature features[MAX_FEATURES];
    static struct version_catalog catalog;

    /* Called once by the main thread at start-up, before other threads. */
    if (catalog.features == NULL &&
        version_catalog_build(VERSION_CATALOG_HDDS, dn_actions,
                              sizeof(dn_actions) / sizeof(dn_actions[0]),
                              features, MAX_FEATURES, &catalog) != 0) {
        log_error("BUG: the datanode's HDDS actions do not match the catalog");
        abort();
    }
    return &catalog;
}

int dn_upgrade_finalize(struct daemon *d,
                        struct dn_store *s,
                        unsigned target,
                        char *errmsg)
{
    int software = version_manager_software(&d->vm);
    int apparent = version_manager_apparent(&d->vm);
    char from[96], to[96];
    int rc;

    if ((int)target <= apparent) {
        return 0;
    }
    if ((int)target > software) {
        /* SCM fences such a datanode; never finalize past our bits. */
        oz_errmsg_printf(errmsg,
                         "SCM asks to finalize to HDDS version %u but this "
                         "datanode's software is %d: upgrade it first",
                         target, software);
        return OZ_EVERSION;
    }
    if (version_manager_is_allowed(&d->vm, VERSION_HDDS_CONTAINER_CHECKSUM) ==
            false &&
        (int)target >= VERSION_HDDS_CONTAINER_CHECKSUM &&
        (rc = precondition(s, errmsg)) != 0) {
        oz_errmsg_wrapf(errmsg,
                        "cannot finalize yet (retried on SCM's next "
                        "command)");
        return rc;
    }
    version_manager_describe(&d->vm, apparent, from, sizeof(from));
    version_manager_describe(&d->vm, (int)target, to, sizeof(to));
    log_info("finalizing on SCM's command: HDDS apparent version %s -> %s",
             from, to);
    if (fault_hit("datanode.finalize.before") != 0) {
        oz_errmsg_printf(errmsg,
                         "interrupted (fault "
                         "'datanode.finalize.before')");
        return OZ_EFAULT;
    }
    rc = version_manager_finalize(&d->vm, (int)target, errmsg);
    if (rc != 0) {
        return rc;
    }
    if (fault_hit("datanode.finalize.after") != 0) {
        oz_errmsg_printf(errmsg,
                         "interrupted (fault "
                         "'datanode.finalize.after')");
        return OZ_EFAULT;
    }
    log_info(
        "finalized: HDDS apparent version %s; reporting it to SCM in the "
        "next heartbeat",
        to);
    return 0;
}
