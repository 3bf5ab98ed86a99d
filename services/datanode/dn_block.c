/* Chunks and blocks of the datanode (DESIGN.md §7): WriteChunk checks the
 * CRC32C of the received bytes and pwrites them into the block's file
 * without fsync; PutBlock makes the chunks durable (fsync of the block
 * file, and of the chunks directory for a new block) before a synced
 * RocksDB write of the BlockData, so an answered PutBlock survives a
 * kill -9; ReadChunk re-verifies the CRC32C of the bytes on disk against
 * the committed checksum and never returns corrupt data.
 *
 * Everything in a request is validated here: lengths, offsets, the chunk
 * list's shape. The caps are in dn_internal.h. */
#include "dn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "fault.h"
#include "log.h"
#include "metrics.h"

/* ---- helpers ---- */

static void block_key(uint8_t key[16], uint64_t cid, uint64_t lid)
{
    dn__put_be64(key, cid);
    dn__put_be64(key + 8, lid);
}

static const char *name_of(const Ozone__Datanode__ChunkInfo *ch)
{
    return ch->name != NULL ? ch->name : "";
}

/* Whether the chunk's checksum type is allowed: CRC32C always, SHA256
 * once HDDS CHUNK_CHECKSUM_SHA256 is finalized (DESIGN.md §6.1). */
static int check_checksum_type(const struct dn_store *s,
                               const Ozone__Datanode__ChunkInfo *ch,
                               const char *op,
                               struct dn_result *res)
{
    char what[128];

    if (ch->checksum_type == OZONE__DATANODE__CHECKSUM_TYPE__CRC32C) {
        return 0;
    }
    if (ch->checksum_type != OZONE__DATANODE__CHECKSUM_TYPE__SHA256) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "chunk '%s' has no CRC32C or SHA256 checksum: every "
                        "chunk needs one",
                        name_of(ch));
    }
    snprintf(what, sizeof(what), "%s with SHA256 checksum", op);
    if (s->vm != NULL &&
        version_manager_check_feature(s->vm, VERSION_HDDS_CHUNK_CHECKSUM_SHA256,
                                      what, res->msg) != 0) {
        res->code =
            OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION;
        return OZ_ENOTSUPPORTED;
    }
    if (ch->checksum_bytes.len != OZ_SHA256_LEN) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "chunk '%s' declares a SHA256 checksum of %zu bytes: "
                        "expected %d",
                        name_of(ch), ch->checksum_bytes.len, OZ_SHA256_LEN);
    }
    return 0;
}

/* Whether data matches ch's checksum; detail describes both sides. */
static bool checksum_matches(const Ozone__Datanode__ChunkInfo *ch,
                             const uint8_t *data,
                             size_t len,
                             char *detail,
                             size_t size)
{
    if (ch->checksum_type == OZONE__DATANODE__CHECKSUM_TYPE__SHA256) {
        uint8_t d[OZ_SHA256_LEN];
        char got[OZ_SHA256_HEX_LEN], want[OZ_SHA256_HEX_LEN] = "";
        oz_sha256(data, len, d);
        if (ch->checksum_bytes.len == OZ_SHA256_LEN &&
            memcmp(d, ch->checksum_bytes.data, OZ_SHA256_LEN) == 0) {
            return true;
        }
        oz_hex(d, OZ_SHA256_LEN, got);
        if (ch->checksum_bytes.len == OZ_SHA256_LEN) {
            oz_hex(ch->checksum_bytes.data, OZ_SHA256_LEN, want);
        }
        snprintf(detail, size, "SHA256 %.16s..., declared %.16s...", got, want);
        return false;
    }
    uint32_t crc = crc32c(0, data, len);
    if (crc == ch->checksum) {
        return true;
    }
    snprintf(detail, size, "CRC32C 0x%08x, declared 0x%08x", crc, ch->checksum);
    return false;
}

/* Shape of one chunk descriptor from a client. */
static int check_chunk(const struct dn_store *s,
                       const Ozone__Datanode__ChunkInfo *ch,
                       const char *op,
                       struct dn_result *res)
{
    if (strlen(name_of(ch)) >= DN_MAX_NAME) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "chunk name of %zu bytes is too long (limit %d)",
                        strlen(name_of(ch)), DN_MAX_NAME - 1);
    }
    if (ch->length == 0 || ch->length > s->max_chunk_bytes) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "chunk '%s' has length %llu: expected 1 to %zu bytes "
                        "(ozone.rpc.max.message.size)",
                        name_of(ch), (unsigned long long)ch->length,
                        s->max_chunk_bytes);
    }
    if (ch->offset > DN_MAX_BLOCK_BYTES - ch->length) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "chunk '%s' ends past the largest block a datanode "
                        "stores (%llu bytes)",
                        name_of(ch), (unsigned long long)DN_MAX_BLOCK_BYTES);
    }
    return check_checksum_type(s, ch, op, res);
}

static int check_block_id(const Ozone__Hdds__BlockID *bid,
                          struct dn_result *res)
{
    if (bid == NULL || bid->container_id == 0) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "missing block id or container id 0");
    }
    return 0;
}

/* Loads the committed BlockData of (cid, lid). OZ_ENOTFOUND when none. */
static int load_block(struct dn_store *s,
                      uint64_t cid,
                      uint64_t lid,
                      ProtobufCAllocator *alloc,
                      Ozone__Datanode__BlockData **out,
                      struct dn_result *res)
{
    uint8_t key[16];
    void *val = NULL;
    size_t vlen = 0;

    *out = NULL;
    block_key(key, cid, lid);
    int rc = kv_get(s->kv, s->cf_blocks, key, sizeof(key), &val, &vlen);
    if (rc == OZ_ENOTFOUND) {
        return dn__fail(res, rc, OZONE__RESULT_CODE__BLOCK_NOT_FOUND,
                        "block %llu/%llu is not committed on datanode '%s'",
                        (unsigned long long)cid, (unsigned long long)lid,
                        s->node_id);
    }
    if (rc != 0) {
        return dn__fail(res, rc, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "cannot read block %llu/%llu on datanode '%s': %s",
                        (unsigned long long)cid, (unsigned long long)lid,
                        s->node_id, oz_strerror(rc));
    }
    *out = ozone__datanode__block_data__unpack(alloc, vlen, val);
    free(val);
    if (*out == NULL) {
        return dn__fail(res, OZ_ECORRUPT, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "record of block %llu/%llu on datanode '%s' is "
                        "corrupt",
                        (unsigned long long)cid, (unsigned long long)lid,
                        s->node_id);
    }
    return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return OZ_EIO;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Bytes read (short at end of file), or -1. */
static ssize_t pread_all(int fd, uint8_t *p, size_t len, uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static bool same_chunk(const Ozone__Datanode__ChunkInfo *a,
                       const Ozone__Datanode__ChunkInfo *b)
{
    return a->offset == b->offset && a->length == b->length &&
           a->checksum_type == b->checksum_type && a->checksum == b->checksum &&
           a->checksum_bytes.len == b->checksum_bytes.len &&
           (a->checksum_bytes.len == 0 ||
            memcmp(a->checksum_bytes.data, b->checksum_bytes.data,
                   a->checksum_bytes.len) == 0);
}

/* ---- WriteChunk ---- */

/* A write over committed bytes is refused unless it repeats a committed
 * chunk exactly (a retry): *dup says so. Caller holds c->io_lock. */
static int check_overwrite(struct dn_store *s,
                           const Ozone__Hdds__BlockID *bid,
                           const Ozone__Datanode__ChunkInfo *ch,
                           bool *dup,
                           struct dn_result *res)
{
    Ozone__Datanode__BlockData *bd = NULL;
    int rc = load_block(s, bid->container_id, bid->local_id, NULL, &bd, res);

    *dup = false;
    if (rc == OZ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (ch->offset < bd->size) {
        rc = dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "chunk '%s' at offset %llu overwrites committed data "
                      "of block %llu/%llu (%llu bytes committed)",
                      name_of(ch), (unsigned long long)ch->offset,
                      (unsigned long long)bid->container_id,
                      (unsigned long long)bid->local_id,
                      (unsigned long long)bd->size);
        for (size_t i = 0; i < bd->n_chunks; i++) {
            if (same_chunk(bd->chunks[i], ch)) {
                *dup = true;
                rc = 0;
            }
        }
    }
    ozone__datanode__block_data__free_unpacked(bd, NULL);
    return rc;
}

static int write_locked(struct dn_store *s,
                        struct dn_container *c,
                        const Ozone__Hdds__BlockID *bid,
                        const Ozone__Datanode__ChunkInfo *ch,
                        const uint8_t *data,
                        size_t len,
                        struct dn_result *res)
{
    char path[PATH_MAX];
    bool dup = false;

    pthread_mutex_lock(&c->meta_lock);
    Ozone__Hdds__ContainerState st = c->state;
    pthread_mutex_unlock(&c->meta_lock);
    if (st != OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN) {
        return dn__fail(res, OZ_ESTATE, OZONE__RESULT_CODE__CONTAINER_NOT_OPEN,
                        "container %llu on datanode '%s' is %s: cannot "
                        "write; allocate a new block",
                        (unsigned long long)c->id, s->node_id,
                        dn_state_name(st));
    }
    int rc = check_overwrite(s, bid, ch, &dup, res);
    if (rc != 0 || dup) {
        return rc;
    }
    if (dn__block_path(s, c, bid->local_id, path, sizeof(path)) != 0) {
        return dn__fail(res, OZ_EIO, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "container %llu has no usable directory",
                        (unsigned long long)c->id);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return dn__fail(res, OZ_EIO, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "cannot open block file '%s': %s", path,
                        strerror(errno));
    }
    rc = pwrite_all(fd, data, len, ch->offset);
    int err = errno;
    close(fd);
    if (rc != 0) {
        return dn__fail(res, rc, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "cannot write chunk '%s' to '%s': %s", name_of(ch),
                        path, strerror(err));
    }
    return 0;
}

int dn_store_write_chunk(struct dn_store *s,
                         const Ozone__Hdds__BlockID *bid,
                         const Ozone__Datanode__ChunkInfo *chunk,
                         const uint8_t *data,
                         size_t len,
                         const char *pipeline_id,
                         struct dn_result *res)
{
    struct dn_container *c = NULL;
    int rc;

    if ((rc = check_block_id(bid, res)) != 0) {
        return rc;
    }
    if (chunk == NULL) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "missing chunk info");
    }
    if (chunk->length != len) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "chunk '%s' declares %llu bytes but carries %zu",
                        name_of(chunk), (unsigned long long)chunk->length, len);
    }
    if ((rc = check_chunk(s, chunk, "WriteChunk", res)) != 0) {
        return rc;
    }
    if (pipeline_id != NULL && strlen(pipeline_id) >= DN_MAX_NAME) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "pipeline id is too long");
    }
    char detail[160];
    if (!checksum_matches(chunk, data, len, detail, sizeof(detail))) {
        metrics_add(dn__metrics.checksum_failures, 1);
        return dn__fail(res, OZ_ECORRUPT, OZONE__RESULT_CODE__CHECKSUM_MISMATCH,
                        "chunk '%s' of block %llu/%llu arrived corrupt at "
                        "datanode '%s': %s; resend it",
                        name_of(chunk), (unsigned long long)bid->container_id,
                        (unsigned long long)bid->local_id, s->node_id, detail);
    }
    if (fault_hit("datanode.write_chunk") != 0) {
        return dn__fail(res, OZ_EFAULT, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "injected fault 'datanode.write_chunk'");
    }
    rc = dn_store_get_or_create(s, bid->container_id, pipeline_id, &c, res);
    if (rc != 0) {
        return rc;
    }
    pthread_rwlock_rdlock(&c->io_lock);
    rc = write_locked(s, c, bid, chunk, data, len, res);
    pthread_rwlock_unlock(&c->io_lock);
    if (rc == 0) {
        metrics_add(dn__metrics.bytes_written, (double)len);
        metrics_add(dn__metrics.write_ops, 1);
    }
    return rc;
}

/* ---- PutBlock ---- */

/* The chunk list must tile [0, size) in order. */
static int check_block_data(struct dn_store *s,
                            const Ozone__Datanode__BlockData *bd,
                            struct dn_result *res)
{
    uint64_t expect = 0;
    int rc;

    if (bd == NULL) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "missing block data");
    }
    if ((rc = check_block_id(bd->block_id, res)) != 0) {
        return rc;
    }
    if (bd->n_chunks == 0 || bd->n_chunks > DN_MAX_CHUNKS_PER_BLOCK) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "block %llu/%llu lists %zu chunks: expected 1 to %d",
                        (unsigned long long)bd->block_id->container_id,
                        (unsigned long long)bd->block_id->local_id,
                        bd->n_chunks, DN_MAX_CHUNKS_PER_BLOCK);
    }
    for (size_t i = 0; i < bd->n_chunks; i++) {
        const Ozone__Datanode__ChunkInfo *ch = bd->chunks[i];
        if ((rc = check_chunk(s, ch, "PutBlock", res)) != 0) {
            return rc;
        }
        if (ch->offset != expect) {
            return dn__fail(res, OZ_EINVAL,
                            OZONE__RESULT_CODE__INVALID_ARGUMENT,
                            "chunk '%s' starts at %llu but the previous "
                            "chunks end at %llu: chunks must be contiguous",
                            name_of(ch), (unsigned long long)ch->offset,
                            (unsigned long long)expect);
        }
        expect += ch->length;
    }
    if (bd->size != expect) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "block size %llu differs from the sum of its chunk "
                        "lengths %llu",
                        (unsigned long long)bd->size,
                        (unsigned long long)expect);
    }
    return 0;
}

/* fsyncs the block file after checking that it holds every listed byte. */
static int sync_block_file(struct dn_store *s,
                           struct dn_container *c,
                           const Ozone__Datanode__BlockData *bd,
                           struct dn_result *res)
{
    char path[PATH_MAX];
    struct stat st;
    uint64_t lid = bd->block_id->local_id;

    if (dn__block_path(s, c, lid, path, sizeof(path)) != 0) {
        return dn__fail(res, OZ_EIO, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "container %llu has no usable directory",
                        (unsigned long long)c->id);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size < bd->size) {
        uint64_t have = fd >= 0 ? (uint64_t)st.st_size : 0;
        if (fd >= 0) {
            close(fd);
        }
        return dn__fail(res, OZ_ENOTFOUND, OZONE__RESULT_CODE__CHUNK_NOT_FOUND,
                        "block %llu/%llu on datanode '%s' holds %llu bytes, "
                        "%llu listed: write every chunk before PutBlock",
                        (unsigned long long)c->id, (unsigned long long)lid,
                        s->node_id, (unsigned long long)have,
                        (unsigned long long)bd->size);
    }
    int rc = fsync(fd) == 0 ? 0 : OZ_EIO;
    int err = errno;
    close(fd);
    if (rc != 0) {
        return dn__fail(res, rc, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "cannot fsync '%s': %s", path, strerror(err));
    }
    return 0;
}

/* Compares with the committed list. *skip when nothing new to commit. */
static int compare_committed(const Ozone__Datanode__BlockData *old,
                             const Ozone__Datanode__BlockData *bd,
                             bool *skip,
                             struct dn_result *res)
{
    size_t n = old->n_chunks < bd->n_chunks ? old->n_chunks : bd->n_chunks;

    for (size_t i = 0; i < n; i++) {
        if (!same_chunk(old->chunks[i], bd->chunks[i])) {
            return dn__fail(res, OZ_EINVAL,
                            OZONE__RESULT_CODE__INVALID_ARGUMENT,
                            "chunk %zu ('%s') of block %llu/%llu differs "
                            "from the committed one",
                            i, name_of(bd->chunks[i]),
                            (unsigned long long)bd->block_id->container_id,
                            (unsigned long long)bd->block_id->local_id);
        }
    }
    *skip = bd->n_chunks <= old->n_chunks;
    return 0;
}

/* fsyncs the container's chunks directory: a new block file's entry. */
static int sync_chunks_dir(struct dn_store *s,
                           struct dn_container *c,
                           struct dn_result *res)
{
    char cdir[PATH_MAX], dir[PATH_MAX];
    int n = -1;

    if (dn__container_dir(s, c, cdir, sizeof(cdir)) == 0) {
        n = snprintf(dir, sizeof(dir), "%s/chunks", cdir);
    }
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        return dn__fail(res, OZ_EIO, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "container %llu has no usable directory",
                        (unsigned long long)c->id);
    }
    if (dn__fsync_dir(dir) != 0) {
        return dn__fail(res, OZ_EIO, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "cannot fsync '%s': %s", dir, strerror(errno));
    }
    return 0;
}

/* Writes the block record and the container's new counters in one
 * synced batch; the counters change only once it is durable. */
static int write_record(struct dn_store *s,
                        struct dn_container *c,
                        const Ozone__Datanode__BlockData *bd,
                        uint64_t used,
                        uint64_t blocks,
                        struct dn_result *res)
{
    const Ozone__Hdds__BlockID *bid = bd->block_id;
    size_t len = ozone__datanode__block_data__get_packed_size(bd);
    uint8_t *buf = malloc(len);
    struct kv_batch *b = kv_batch_new();
    uint64_t old_used = c->used_bytes, old_blocks = c->block_count;
    uint8_t key[16];
    int rc = OZ_ENOMEM;

    if (buf != NULL && b != NULL) {
        ozone__datanode__block_data__pack(bd, buf);
        block_key(key, bid->container_id, bid->local_id);
        kv_batch_put(b, s->cf_blocks, key, sizeof(key), buf, len);
        c->used_bytes = used;
        c->block_count = blocks;
        dn__container_record_put(s, c, b);
        rc = fault_hit("datanode.put_block.before_commit");
        if (rc == 0) {
            rc = kv_write(s->kv, b, true, res->msg);
        }
    }
    free(buf);
    kv_batch_free(b);
    if (rc != 0) {
        c->used_bytes = old_used;
        c->block_count = old_blocks;
        return dn__fail(res, rc, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "cannot commit block %llu/%llu: %s",
                        (unsigned long long)bid->container_id,
                        (unsigned long long)bid->local_id, oz_strerror(rc));
    }
    return 0;
}

/* The read-modify-write of the block record and the container's
 * counters. Caller holds c->meta_lock. */
static int commit_locked(struct dn_store *s,
                         struct dn_container *c,
                         const Ozone__Datanode__BlockData *bd,
                         uint64_t *committed,
                         struct dn_result *res)
{
    const Ozone__Hdds__BlockID *bid = bd->block_id;
    Ozone__Datanode__BlockData *old = NULL;
    uint64_t used = c->used_bytes, blocks = c->block_count;
    bool skip = false;

    int rc = load_block(s, bid->container_id, bid->local_id, NULL, &old, res);
    if (rc != 0 && rc != OZ_ENOTFOUND) {
        return rc;
    }
    if (old != NULL) {
        rc = compare_committed(old, bd, &skip, res);
        uint64_t old_size = old->size;
        ozone__datanode__block_data__free_unpacked(old, NULL);
        if (rc != 0 || skip) {
            *committed = old_size;
            return rc;
        }
        used -= old_size < used ? old_size : used;
    } else {
        /* A new block file: make its directory entry durable too. */
        if ((rc = sync_chunks_dir(s, c, res)) != 0) {
            return rc;
        }
        blocks++;
    }
    rc = write_record(s, c, bd, used + bd->size, blocks, res);
    if (rc == 0) {
        *committed = bd->size;
    }
    return rc;
}

int dn_store_put_block(struct dn_store *s,
                       const Ozone__Datanode__BlockData *bd,
                       uint64_t *committed,
                       struct dn_result *res)
{
    int rc = check_block_data(s, bd, res);

    *committed = 0;
    if (rc != 0) {
        return rc;
    }
    struct dn_container *c = dn_store_find(s, bd->block_id->container_id);
    if (c == NULL) {
        return dn__fail(
            res, OZ_ENOTFOUND, OZONE__RESULT_CODE__CONTAINER_NOT_FOUND,
            "container %llu does not exist on datanode '%s': "
            "write the block's chunks first",
            (unsigned long long)bd->block_id->container_id, s->node_id);
    }
    pthread_rwlock_rdlock(&c->io_lock);
    pthread_mutex_lock(&c->meta_lock);
    Ozone__Hdds__ContainerState st = c->state;
    pthread_mutex_unlock(&c->meta_lock);
    if (st != OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN) {
        rc = dn__fail(res, OZ_ESTATE, OZONE__RESULT_CODE__CONTAINER_NOT_OPEN,
                      "container %llu on datanode '%s' is %s: cannot commit "
                      "a block; allocate a new block",
                      (unsigned long long)c->id, s->node_id, dn_state_name(st));
    } else {
        /* fsync outside meta_lock: blocks of one container sync in
         * parallel; only the small record update is serialised. */
        rc = sync_block_file(s, c, bd, res);
        if (rc == 0) {
            pthread_mutex_lock(&c->meta_lock);
            rc = commit_locked(s, c, bd, committed, res);
            pthread_mutex_unlock(&c->meta_lock);
        }
    }
    pthread_rwlock_unlock(&c->io_lock);
    if (rc == 0) {
        metrics_add(dn__metrics.put_blocks, 1);
    }
    return rc;
}

/* ---- GetBlock, ListBlock ---- */

int dn_store_get_block(struct dn_store *s,
                       const Ozone__Hdds__BlockID *bid,
                       ProtobufCAllocator *alloc,
                       Ozone__Datanode__BlockData **out,
                       struct dn_result *res)
{
    int rc = check_block_id(bid, res);

    *out = NULL;
    if (rc != 0) {
        return rc;
    }
    return load_block(s, bid->container_id, bid->local_id, alloc, out, res);
}

int dn_store_list_blocks(struct dn_store *s,
                         uint64_t container_id,
                         uint64_t start_local_id,
                         size_t max,
                         ProtobufCAllocator *alloc,
                         Ozone__Datanode__BlockData ***out,
                         size_t *n,
                         struct dn_result *res)
{
    uint8_t key[16];
    int rc = 0;

    *out = NULL;
    *n = 0;
    if (dn_store_find(s, container_id) == NULL) {
        return dn__fail(res, OZ_ENOTFOUND,
                        OZONE__RESULT_CODE__CONTAINER_NOT_FOUND,
                        "container %llu does not exist on datanode '%s'",
                        (unsigned long long)container_id, s->node_id);
    }
    if (max == 0 || max > DN_LIST_BLOCK_MAX) {
        max = DN_LIST_BLOCK_MAX;
    }
    Ozone__Datanode__BlockData **arr =
        alloc != NULL ? alloc->alloc(alloc->allocator_data, max * sizeof(*arr))
                      : calloc(max, sizeof(*arr));
    if (arr == NULL) {
        return dn__fail(res, OZ_ENOMEM, OZONE__RESULT_CODE__INTERNAL_ERROR,
                        "out of memory");
    }
    struct kv_iter *it = kv_iter_new(s->kv, s->cf_blocks);
    size_t count = 0;
    if (it == NULL) {
        if (alloc == NULL) {
            free(arr);
        }
        return dn__fail(res, OZ_ENOMEM, OZONE__RESULT_CODE__INTERNAL_ERROR,
                        "out of memory");
    }
    block_key(key, container_id, start_local_id);
    for (kv_iter_seek(it, key, sizeof(key)); kv_iter_valid(it) && count < max;
         kv_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = kv_iter_key(it, &klen);
        const void *v = kv_iter_value(it, &vlen);
        if (klen != 16 || dn__get_be64(k) != container_id) {
            break;
        }
        arr[count] = ozone__datanode__block_data__unpack(alloc, vlen, v);
        if (arr[count] == NULL) {
            rc = dn__fail(res, OZ_ECORRUPT, OZONE__RESULT_CODE__IO_EXCEPTION,
                          "record of block %llu/%llu on datanode '%s' is "
                          "corrupt",
                          (unsigned long long)container_id,
                          (unsigned long long)dn__get_be64(k + 8), s->node_id);
            break;
        }
        count++;
    }
    kv_iter_free(it);
    if (rc != 0 && alloc == NULL) {
        for (size_t i = 0; i < count; i++) {
            ozone__datanode__block_data__free_unpacked(arr[i], NULL);
        }
        free(arr);
        return rc;
    }
    *out = arr;
    *n = count;
    return rc;
}

/* ---- ReadChunk ---- */

/* The committed chunk holding [off, off + len), or NULL. */
static const Ozone__Datanode__ChunkInfo *
covering_chunk(const Ozone__Datanode__BlockData *bd, uint64_t off, uint64_t len)
{
    for (size_t i = 0; i < bd->n_chunks; i++) {
        const Ozone__Datanode__ChunkInfo *ch = bd->chunks[i];
        if (ch->offset <= off && off - ch->offset <= ch->length &&
            len <= ch->length - (off - ch->offset)) {
            return ch;
        }
    }
    return NULL;
}

/* Reads the whole committed chunk ch into buf and verifies it. */
static int read_verified(struct dn_store *s,
                         const Ozone__Hdds__BlockID *bid,
                         const Ozone__Datanode__ChunkInfo *ch,
                         uint8_t *buf,
                         struct dn_result *res)
{
    char path[PATH_MAX];
    struct dn_container *c = dn_store_find(s, bid->container_id);

    if (c == NULL ||
        dn__block_path(s, c, bid->local_id, path, sizeof(path)) != 0) {
        return dn__fail(res, OZ_ENOTFOUND,
                        OZONE__RESULT_CODE__CONTAINER_NOT_FOUND,
                        "container %llu has no usable directory on datanode "
                        "'%s'",
                        (unsigned long long)bid->container_id, s->node_id);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return dn__fail(res, OZ_EIO, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "cannot open block file '%s': %s", path,
                        strerror(errno));
    }
    ssize_t got = pread_all(fd, buf, ch->length, ch->offset);
    close(fd);
    char detail[160] = "";
    if (got == (ssize_t)ch->length &&
        checksum_matches(ch, buf, (size_t)got, detail, sizeof(detail))) {
        return 0;
    }
    metrics_add(dn__metrics.checksum_failures, 1);
    if (got == (ssize_t)ch->length) {
        dn__fail(res, OZ_ECORRUPT, OZONE__RESULT_CODE__CHECKSUM_MISMATCH,
                 "chunk '%s' of block %llu/%llu on datanode '%s' is corrupt: "
                 "%s (on disk, committed)",
                 name_of(ch), (unsigned long long)bid->container_id,
                 (unsigned long long)bid->local_id, s->node_id, detail);
    } else {
        dn__fail(res, OZ_ECORRUPT, OZONE__RESULT_CODE__CHECKSUM_MISMATCH,
                 "chunk '%s' of block %llu/%llu on datanode '%s' is corrupt: "
                 "%zd of %llu bytes on disk",
                 name_of(ch), (unsigned long long)bid->container_id,
                 (unsigned long long)bid->local_id, s->node_id, got,
                 (unsigned long long)ch->length);
    }
    log_warn("%s", res->msg);
    return OZ_ECORRUPT;
}

int dn_store_read_chunk(struct dn_store *s,
                        const Ozone__Hdds__BlockID *bid,
                        const Ozone__Datanode__ChunkInfo *chunk,
                        uint8_t *buf,
                        struct dn_result *res)
{
    Ozone__Datanode__BlockData *bd = NULL;
    int rc = check_block_id(bid, res);

    if (rc != 0) {
        return rc;
    }
    if (chunk == NULL || chunk->length == 0 ||
        chunk->length > s->max_chunk_bytes) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "chunk to read must have a length of 1 to %zu bytes",
                        s->max_chunk_bytes);
    }
    rc = load_block(s, bid->container_id, bid->local_id, NULL, &bd, res);
    if (rc != 0) {
        return rc;
    }
    const Ozone__Datanode__ChunkInfo *ch =
        covering_chunk(bd, chunk->offset, chunk->length);
    if (ch == NULL) {
        rc = dn__fail(res, OZ_ENOTFOUND, OZONE__RESULT_CODE__CHUNK_NOT_FOUND,
                      "bytes %llu+%llu of block %llu/%llu are not within one "
                      "committed chunk on datanode '%s'",
                      (unsigned long long)chunk->offset,
                      (unsigned long long)chunk->length,
                      (unsigned long long)bid->container_id,
                      (unsigned long long)bid->local_id, s->node_id);
    } else if (ch->offset == chunk->offset && ch->length == chunk->length) {
        rc = read_verified(s, bid, ch, buf, res);
    } else if (ch->length > s->max_chunk_bytes) {
        rc = dn__fail(res, OZ_ETOOBIG, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "committed chunk '%s' of %llu bytes exceeds "
                      "ozone.rpc.max.message.size: read it whole",
                      name_of(ch), (unsigned long long)ch->length);
    } else {
        /* A part of a chunk: verify the whole chunk, return the part. */
        uint8_t *whole = malloc(ch->length);
        rc = whole == NULL
                 ? dn__fail(res, OZ_ENOMEM, OZONE__RESULT_CODE__INTERNAL_ERROR,
                            "out of memory")
                 : read_verified(s, bid, ch, whole, res);
        if (rc == 0) {
            memcpy(buf, whole + (chunk->offset - ch->offset), chunk->length);
        }
        free(whole);
    }
    ozone__datanode__block_data__free_unpacked(bd, NULL);
    if (rc == 0) {
        metrics_add(dn__metrics.bytes_read, (double)chunk->length);
        metrics_add(dn__metrics.read_ops, 1);
    }
    return rc;
}
