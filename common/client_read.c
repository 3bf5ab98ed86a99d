/* client key read: LookupKey, then each block from its replicas in order,
 * falling back to the next member on any error (client.h; DESIGN.md §7).
 *
 * The chunk list comes from the first member whose committed block covers
 * the key's length in that block; every chunk's bytes are checked against
 * its CRC32C here as well as on the datanode, so a corrupt replica is
 * never passed on, and the read moves on to another replica for that
 * chunk. The bytes of a chunk reach the writer only once verified, so a
 * fallback never repeats or skips output.
 */
#include "client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checksum.h"
#include "err.h"
#include "log.h"

#define MAX_MEMBERS 16

struct get
{
    struct oz_client *c;
    const char *volume, *bucket, *key;
    oz_writer_fn writer;
    void *writer_ctx;
    /* Per-member errors of the chunk being read, for the final message. */
    struct oz_error member_err[MAX_MEMBERS];
    bool member_failed[MAX_MEMBERS];
};

static bool sha256_matches(const Ozone__Datanode__ChunkInfo *ci,
                           const uint8_t *data,
                           size_t len)
{
    uint8_t d[OZ_SHA256_LEN];

    if (ci->checksum_bytes.len != OZ_SHA256_LEN) {
        return false;
    }
    oz_sha256(data, len, d);
    return memcmp(d, ci->checksum_bytes.data, OZ_SHA256_LEN) == 0;
}
static const char *dn_name(const Ozone__Hdds__DatanodeDetails *dn)
{
    return dn != NULL && dn->uuid != NULL ? dn->uuid : "?";
}

/* The message when every member failed: each member with its error. */
static void all_failed(struct get *g,
                       const Ozone__Om__KeyLocation *loc,
                       const char *what,
                       struct oz_error *err)
{
    const Ozone__Hdds__Pipeline *pl = loc->pipeline;
    size_t used;
    Ozone__ResultCode code = OZONE__RESULT_CODE__IO_EXCEPTION;

    snprintf(err->message, sizeof(err->message),
             "cannot read %s of block %" PRIu64 "/%" PRIu64
             ": all %zu replicas failed",
             what, loc->block_id->container_id, loc->block_id->local_id,
             pl->n_members);
    for (size_t i = 0; i < pl->n_members && i < MAX_MEMBERS; i++) {
        if (!g->member_failed[i]) {
            continue;
        }
        used = strlen(err->message);
        snprintf(err->message + used, sizeof(err->message) - used,
                 "%s datanode '%s': %s: %s", i == 0 ? ":" : ";",
                 dn_name(pl->members[i]), oz_result_name(g->member_err[i].code),
                 g->member_err[i].message);
        if (code == OZONE__RESULT_CODE__IO_EXCEPTION) {
            code = g->member_err[i].code;
        }
    }
    err->code = code;
}

static void member_fail(struct get *g,
                        size_t m,
                        Ozone__ResultCode code,
                        const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

static void member_fail(struct get *g,
                        size_t m,
                        Ozone__ResultCode code,
                        const char *fmt,
                        ...)
{
    va_list ap;

    g->member_failed[m] = true;
    g->member_err[m].code = code;
    va_start(ap, fmt);
    vsnprintf(g->member_err[m].message, sizeof(g->member_err[m].message), fmt,
              ap);
    va_end(ap);
}

/* Checks that a committed chunk list is contiguous from 0 and covers
 * length bytes. */
static bool chunks_cover(const Ozone__Datanode__BlockData *bd,
                         uint64_t length,
                         char *why,
                         size_t why_size)
{
    uint64_t off = 0;

    for (size_t i = 0; i < bd->n_chunks && off < length; i++) {
        const Ozone__Datanode__ChunkInfo *ci = bd->chunks[i];
        if (ci == NULL || ci->offset != off || ci->length == 0 ||
            ci->length > OZ_CLIENT_MAX_CHUNK) {
            snprintf(why, why_size,
                     "chunk %zu of the committed block is malformed "
                     "(offset %" PRIu64 ", length %" PRIu64 ")",
                     i, ci != NULL ? ci->offset : 0,
                     ci != NULL ? ci->length : 0);
            return false;
        }
        off += ci->length;
    }
    if (off < length) {
        snprintf(why, why_size,
                 "committed block holds %" PRIu64 " bytes, key needs %" PRIu64,
                 off, length);
        return false;
    }
    return true;
}

/* GetBlock from the members in order; *resp holds the first good one. */
static int get_block_data(struct get *g,
                          const Ozone__Om__KeyLocation *loc,
                          ProtobufCMessage **resp,
                          size_t *member,
                          struct oz_error *err)
{
    const Ozone__Hdds__Pipeline *pl = loc->pipeline;

    for (size_t m = 0; m < pl->n_members; m++) {
        Ozone__Datanode__GetBlockRequest req =
            OZONE__DATANODE__GET_BLOCK_REQUEST__INIT;
        Ozone__Datanode__GetBlockResponse *r;
        struct oz_error e;
        char why[256];

        req.block_id = loc->block_id;
        if (oz__dn_call(g->c, pl->members[m], "GetBlock", &req.base, resp,
                        &e) != 0) {
            member_fail(g, m, e.code, "%s", e.message);
            continue;
        }
        r = (Ozone__Datanode__GetBlockResponse *)*resp;
        if (r->block == NULL) {
            member_fail(g, m, OZONE__RESULT_CODE__BLOCK_NOT_FOUND,
                        "answered GetBlock without block data");
        } else if (!chunks_cover(r->block, loc->length, why, sizeof(why))) {
            member_fail(g, m, OZONE__RESULT_CODE__IO_EXCEPTION, "%s", why);
        } else {
            *member = m;
            return 0;
        }
        oz_client_free_msg(*resp);
        *resp = NULL;
    }
    all_failed(g, loc, "the chunk list", err);
    return OZ_EIO;
}

/* Reads one chunk from member m and verifies it; 0 and *resp, or fills the
 * member's error. */
static int read_chunk_from(struct get *g,
                           const Ozone__Om__KeyLocation *loc,
                           size_t m,
                           Ozone__Datanode__ChunkInfo *ci,
                           ProtobufCMessage **resp)
{
    Ozone__Datanode__ReadChunkRequest req =
        OZONE__DATANODE__READ_CHUNK_REQUEST__INIT;
    Ozone__Datanode__ReadChunkResponse *r;
    struct oz_error e;
    uint32_t crc;

    req.block_id = loc->block_id;
    req.chunk = ci;
    if (oz__dn_call(g->c, loc->pipeline->members[m], "ReadChunk", &req.base,
                    resp, &e) != 0) {
        member_fail(g, m, e.code, "%s", e.message);
        return OZ_EIO;
    }
    r = (Ozone__Datanode__ReadChunkResponse *)*resp;
    if (r->data.len != ci->length) {
        member_fail(g, m, OZONE__RESULT_CODE__IO_EXCEPTION,
                    "chunk %s: got %zu bytes, expected %" PRIu64, ci->name,
                    r->data.len, ci->length);
    } else if (ci->checksum_type == OZONE__DATANODE__CHECKSUM_TYPE__CRC32C &&
               (crc = crc32c(0, r->data.data, r->data.len)) != ci->checksum) {
        member_fail(g, m, OZONE__RESULT_CODE__CHECKSUM_MISMATCH,
                    "chunk %s is corrupt: CRC32C %08x, expected %08x", ci->name,
                    crc, ci->checksum);
    } else if (ci->checksum_type == OZONE__DATANODE__CHECKSUM_TYPE__SHA256 &&
               !sha256_matches(ci, r->data.data, r->data.len)) {
        member_fail(g, m, OZONE__RESULT_CODE__CHECKSUM_MISMATCH,
                    "chunk %s is corrupt: its SHA256 does not match", ci->name);
    } else {
        return 0;
    }
    oz_client_free_msg(*resp);
    *resp = NULL;
    return OZ_EIO;
}

static int read_block(struct get *g,
                      const Ozone__Om__KeyLocation *loc,
                      struct oz_error *err)
{
    const Ozone__Hdds__Pipeline *pl = loc->pipeline;
    ProtobufCMessage *bresp = NULL;
    const Ozone__Datanode__BlockData *bd;
    size_t preferred = 0;
    uint64_t off = 0;
    int rc;

    memset(g->member_failed, 0, sizeof(g->member_failed));
    rc = get_block_data(g, loc, &bresp, &preferred, err);
    if (rc != 0) {
        return rc;
    }
    bd = ((Ozone__Datanode__GetBlockResponse *)bresp)->block;
    for (size_t i = 0; rc == 0 && off < loc->length; i++) {
        Ozone__Datanode__ChunkInfo *ci = bd->chunks[i];
        ProtobufCMessage *cresp = NULL;
        size_t tries;

        memset(g->member_failed, 0, sizeof(g->member_failed));
        for (tries = 0; tries < pl->n_members; tries++) {
            size_t m = (preferred + tries) % pl->n_members;
            if (read_chunk_from(g, loc, m, ci, &cresp) == 0) {
                preferred = m;
                break;
            }
            log_warn(
                "client: datanode '%s' failed chunk %s of key "
                "'%s/%s/%s': %s: %s; trying the next replica",
                dn_name(pl->members[m]), ci->name, g->volume, g->bucket, g->key,
                oz_result_name(g->member_err[m].code),
                g->member_err[m].message);
        }
        if (cresp == NULL) {
            char what[128];
            snprintf(what, sizeof(what), "chunk %s", ci->name);
            all_failed(g, loc, what, err);
            rc = OZ_EIO;
            break;
        }
        {
            const uint8_t *data =
                ((Ozone__Datanode__ReadChunkResponse *)cresp)->data.data;
            uint64_t n = ci->length;
            const char *msg = "write failed";
            if (n > loc->length - off) {
                n = loc->length - off;
            }
            if (g->writer(g->writer_ctx, data, (size_t)n, &msg) != 0) {
                oz__set_error(err, OZONE__RESULT_CODE__IO_EXCEPTION,
                              "cannot write the data read: %s", msg);
                rc = OZ_EIO;
            }
            off += n;
        }
        oz_client_free_msg(cresp);
    }
    oz_client_free_msg(bresp);
    return rc;
}

/* Validates the locations OM returned before any byte is read. */
static int check_locations(const Ozone__Om__KeyInfo *ki, struct oz_error *err)
{
    uint64_t off = 0;

    for (size_t i = 0; i < ki->n_locations; i++) {
        const Ozone__Om__KeyLocation *loc = ki->locations[i];
        if (loc == NULL || loc->block_id == NULL || loc->pipeline == NULL ||
            loc->pipeline->n_members == 0 ||
            loc->pipeline->n_members > MAX_MEMBERS || loc->offset != off) {
            oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "OM returned a malformed location %zu for key "
                          "'%s/%s/%s'",
                          i, ki->volume, ki->bucket, ki->name);
            return OZ_ECORRUPT;
        }
        off += loc->length;
    }
    if (off != ki->data_size) {
        oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "key '%s/%s/%s' has %" PRIu64
                      " bytes in its blocks but a size of %" PRIu64,
                      ki->volume, ki->bucket, ki->name, off, ki->data_size);
        return OZ_ECORRUPT;
    }
    return 0;
}

int oz_key_get(struct oz_client *c,
               const char *volume,
               const char *bucket,
               const char *key,
               oz_writer_fn writer,
               void *writer_ctx,
               uint64_t *size_out,
               struct oz_error *err)
{
    Ozone__Om__KeyInfo *ki = NULL;
    struct get *g;
    int rc;

    memset(err, 0, sizeof(*err));
    rc = oz_key_info(c, volume, bucket, key, &ki, err);
    if (rc != 0) {
        return rc;
    }
    rc = check_locations(ki, err);
    if (rc != 0) {
        oz_client_free_msg(ki);
        return rc;
    }
    if (size_out != NULL) {
        *size_out = ki->data_size;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        oz_client_free_msg(ki);
        oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR, "out of memory");
        return OZ_ENOMEM;
    }
    g->c = c;
    g->volume = volume;
    g->bucket = bucket;
    g->key = key;
    g->writer = writer;
    g->writer_ctx = writer_ctx;
    for (size_t i = 0; rc == 0 && i < ki->n_locations; i++) {
        if (ki->locations[i]->length > 0) {
            rc = read_block(g, ki->locations[i], err);
        }
    }
    if (rc != 0) {
        oz__wrap_error(err, "cannot get key '%s/%s/%s'", volume, bucket, key);
    }
    free(g);
    oz_client_free_msg(ki);
    return rc;
}

static int fd_writer(void *ctx, const void *buf, size_t n, const char **msg)
{
    int fd = *(int *)ctx;
    const uint8_t *p = buf;

    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            *msg = strerror(errno);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int oz_key_get_fd(struct oz_client *c,
                  const char *volume,
                  const char *bucket,
                  const char *key,
                  int fd,
                  uint64_t *size_out,
                  struct oz_error *err)
{
    return oz_key_get(c, volume, bucket, key, fd_writer, &fd, size_out, err);
}
