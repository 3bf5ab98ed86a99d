/* client key I/O: the streaming write with failover to new blocks and the
 * read with fallback between replicas (client.h; DESIGN.md §7).
 *
 * Why the write looks like this: there is no replication among datanodes
 * (no Ratis), so the client itself sends every chunk to every member of
 * the pipeline, in parallel, and makes it durable there with PutBlock
 * before it reads the next chunk. A chunk is acknowledged only once it is
 * on every replica, so the length kept for a block after a failure is
 * exactly what every member holds, and the failed chunk (still in the
 * one chunk buffer) is sent again to a fresh block on other datanodes.
 */
#include "client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checksum.h"
#include "err.h"
#include "log.h"

/* Hard caps: locations of one key and chunks of one block. */
#define MAX_LOCATIONS 65536
#define MAX_CHUNKS_PER_BLOCK 65536
#define MAX_MEMBERS 16
#define MAX_EXCLUDES 256

/* ---- one block being written ---- */

struct cur_block
{
    const Ozone__Om__KeyLocation *loc; /* borrowed from a kept response */
    uint64_t capacity;
    uint64_t written; /* committed on every member */
    Ozone__Datanode__ChunkInfo *chunks;
    Ozone__Datanode__ChunkInfo **chunk_ptrs;
    size_t n_chunks, cap_chunks;
};

struct put
{
    struct oz_client *c;
    const char *volume, *bucket, *key;
    uint64_t client_id;
    /* Responses whose locations are referenced (CreateKey, AllocateBlock). */
    ProtobufCMessage **kept;
    size_t n_kept, cap_kept;
    /* Pre-allocated locations from CreateKey not used yet. */
    Ozone__Om__KeyLocation **prealloc;
    size_t n_prealloc, next_prealloc;
    /* Locations to commit (block id and pipeline borrowed from kept). */
    Ozone__Om__KeyLocation *done;
    size_t n_done, cap_done;
    uint64_t total;
    /* Ozone's ExcludeList, grown as datanodes or containers fail. */
    char *ex_dns[MAX_EXCLUDES];
    uint64_t ex_containers[MAX_EXCLUDES];
    size_t n_ex_dns, n_ex_containers;
    struct cur_block cur;
    struct oz_put_stats stats;
};

static int keep(struct put *p, ProtobufCMessage *m, struct oz_error *err)
{
    if (p->n_kept == p->cap_kept) {
        size_t cap = p->cap_kept != 0 ? p->cap_kept * 2 : 8;
        ProtobufCMessage **k = realloc(p->kept, cap * sizeof(*k));
        if (k == NULL) {
            oz_client_free_msg(m);
            oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "out of memory");
            return OZ_ENOMEM;
        }
        p->kept = k;
        p->cap_kept = cap;
    }
    p->kept[p->n_kept++] = m;
    return 0;
}

static void cur_reset(struct cur_block *b)
{
    for (size_t i = 0; i < b->n_chunks; i++) {
        free(b->chunks[i].name);
        free(b->chunks[i].checksum_bytes.data);
    }
    b->n_chunks = 0;
    b->loc = NULL;
    b->capacity = 0;
    b->written = 0;
}

static void put_release(struct put *p)
{
    cur_reset(&p->cur);
    free(p->cur.chunks);
    free(p->cur.chunk_ptrs);
    for (size_t i = 0; i < p->n_kept; i++) {
        oz_client_free_msg(p->kept[i]);
    }
    free(p->kept);
    free(p->done);
    for (size_t i = 0; i < p->n_ex_dns; i++) {
        free(p->ex_dns[i]);
    }
}

static bool dn_excluded(const struct put *p, const char *uuid)
{
    for (size_t i = 0; i < p->n_ex_dns; i++) {
        if (strcmp(p->ex_dns[i], uuid) == 0) {
            return true;
        }
    }
    return false;
}

static void exclude_dn(struct put *p, const char *uuid)
{
    if (uuid == NULL || dn_excluded(p, uuid) || p->n_ex_dns == MAX_EXCLUDES) {
        return;
    }
    p->ex_dns[p->n_ex_dns] = strdup(uuid);
    if (p->ex_dns[p->n_ex_dns] != NULL) {
        p->n_ex_dns++;
    }
}

static void exclude_container(struct put *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_ex_containers; i++) {
        if (p->ex_containers[i] == id) {
            return;
        }
    }
    if (p->n_ex_containers < MAX_EXCLUDES) {
        p->ex_containers[p->n_ex_containers++] = id;
    }
}

/* Whether a location can take writes given what failed so far. */
static bool location_usable(const struct put *p,
                            const Ozone__Om__KeyLocation *loc)
{
    if (loc->block_id == NULL || loc->pipeline == NULL ||
        loc->pipeline->n_members == 0 ||
        loc->pipeline->n_members > MAX_MEMBERS) {
        return false;
    }
    for (size_t i = 0; i < p->n_ex_containers; i++) {
        if (p->ex_containers[i] == loc->block_id->container_id) {
            return false;
        }
    }
    for (size_t i = 0; i < loc->pipeline->n_members; i++) {
        const Ozone__Hdds__DatanodeDetails *m = loc->pipeline->members[i];
        if (m == NULL || m->uuid == NULL || dn_excluded(p, m->uuid)) {
            return false;
        }
    }
    return true;
}

static void cur_start(struct put *p, const Ozone__Om__KeyLocation *loc)
{
    cur_reset(&p->cur);
    p->cur.loc = loc;
    /* OM reports the reserved length of a fresh block; a server that
     * leaves it 0 gets the configured block size (DESIGN.md §7). */
    p->cur.capacity = loc->length > 0 ? loc->length : oz__block_size(p->c);
}

/* Moves the current block, if it holds data, to the committed list. */
static int cur_finish(struct put *p, struct oz_error *err)
{
    Ozone__Om__KeyLocation *d;

    if (p->cur.loc == NULL || p->cur.written == 0) {
        cur_reset(&p->cur);
        return 0;
    }
    if (p->n_done == MAX_LOCATIONS) {
        oz__set_error(err, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "key '%s/%s/%s' needs more than %d blocks", p->volume,
                      p->bucket, p->key, MAX_LOCATIONS);
        return OZ_ETOOBIG;
    }
    if (p->n_done == p->cap_done) {
        size_t cap = p->cap_done != 0 ? p->cap_done * 2 : 8;
        d = realloc(p->done, cap * sizeof(*d));
        if (d == NULL) {
            oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "out of memory");
            return OZ_ENOMEM;
        }
        p->done = d;
        p->cap_done = cap;
    }
    d = &p->done[p->n_done++];
    ozone__om__key_location__init(d);
    d->block_id = p->cur.loc->block_id;
    d->pipeline = p->cur.loc->pipeline;
    d->offset = p->total;
    d->length = p->cur.written;
    p->total += p->cur.written;
    p->stats.blocks++;
    cur_reset(&p->cur);
    return 0;
}

/* Sleeps before the next ask for a block; false once wait_ms is spent.
 * SCM may need a heartbeat or two to open a pipeline that avoids a
 * failed datanode (DESIGN.md §7), so "no healthy nodes" is retried for a
 * bounded time before a put fails. */
static bool wait_for_pipeline(const struct put *p,
                              long long *waited_ms,
                              long long *backoff_ms)
{
    long long wait = oz__alloc_wait_ms(p->c);
    struct timespec ts;

    if (*waited_ms >= wait) {
        return false;
    }
    if (*backoff_ms > wait - *waited_ms) {
        *backoff_ms = wait - *waited_ms;
    }
    ts.tv_sec = (time_t)(*backoff_ms / 1000);
    ts.tv_nsec = (long)(*backoff_ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
    *waited_ms += *backoff_ms;
    *backoff_ms = *backoff_ms * 2 > 2000 ? 2000 : *backoff_ms * 2;
    return true;
}

static bool no_pipeline_yet(int rc, const struct oz_error *err)
{
    /* UNAVAILABLE answered by the OM: SCM is restarting or has no open
     * pipeline yet (e.g. right after HDDS finalization closed them), a
     * transient state of a rolling upgrade (DESIGN.md §6.7). */
    return (rc == OZ_ERPC &&
            err->code == OZONE__RESULT_CODE__FAILED_TO_FIND_HEALTHY_NODES) ||
           (rc == OZ_EUNAVAILABLE &&
            err->code == OZONE__RESULT_CODE__UNAVAILABLE);
}

static int allocate_block_once(struct put *p, struct oz_error *err);

/* Too few datanodes are left without the excluded ones: those may have
 * come back since (a restart in a rolling upgrade, DESIGN.md §6.7); one
 * that still fails is excluded again. */
static void forget_excluded_dns(struct put *p)
{
    for (size_t i = 0; i < p->n_ex_dns; i++) {
        free(p->ex_dns[i]);
        p->ex_dns[i] = NULL;
    }
    p->n_ex_dns = 0;
}

static int allocate_block(struct put *p, struct oz_error *err)
{
    long long waited = 0, backoff = 100;
    int rc;

    while ((rc = allocate_block_once(p, err)) != 0 &&
           no_pipeline_yet(rc, err) &&
           wait_for_pipeline(p, &waited, &backoff)) {
        if (err->code == OZONE__RESULT_CODE__FAILED_TO_FIND_HEALTHY_NODES) {
            forget_excluded_dns(p);
        }
    }
    return rc;
}

/* Asks OM for a new block that avoids everything excluded so far. */
static int allocate_block_once(struct put *p, struct oz_error *err)
{
    Ozone__Om__AllocateBlockRequest req =
        OZONE__OM__ALLOCATE_BLOCK_REQUEST__INIT;
    Ozone__Hdds__ExcludeList ex = OZONE__HDDS__EXCLUDE_LIST__INIT;
    ProtobufCMessage *resp = NULL;
    Ozone__Om__AllocateBlockResponse *r;
    int rc;

    req.volume = (char *)p->volume;
    req.bucket = (char *)p->bucket;
    req.key = (char *)p->key;
    req.client_id = p->client_id;
    ex.datanode_uuids = p->ex_dns;
    ex.n_datanode_uuids = p->n_ex_dns;
    ex.container_ids = p->ex_containers;
    ex.n_container_ids = p->n_ex_containers;
    req.exclude = &ex;
    rc = oz__om_call(p->c, "AllocateBlock", &req.base, &resp, err);
    if (rc != 0) {
        return rc;
    }
    rc = keep(p, resp, err);
    if (rc != 0) {
        return rc;
    }
    r = (Ozone__Om__AllocateBlockResponse *)resp;
    if (r->location == NULL || !location_usable(p, r->location)) {
        oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "OM allocated no usable block for key '%s/%s/%s' "
                      "(missing pipeline, or one already excluded)",
                      p->volume, p->bucket, p->key);
        return OZ_EINVAL;
    }
    cur_start(p, r->location);
    return 0;
}

/* Makes sure there is a current block with room. */
static int ensure_block(struct put *p, struct oz_error *err)
{
    if (p->cur.loc != NULL && p->cur.written < p->cur.capacity) {
        return 0;
    }
    if (p->cur.loc != NULL) {
        int rc = cur_finish(p, err);
        if (rc != 0) {
            return rc;
        }
    }
    while (p->next_prealloc < p->n_prealloc) {
        const Ozone__Om__KeyLocation *loc = p->prealloc[p->next_prealloc++];
        if (location_usable(p, loc)) {
            cur_start(p, loc);
            return 0;
        }
    }
    return allocate_block(p, err);
}

/* ---- writing one chunk to every member ---- */

struct member_job
{
    struct put *p;
    const Ozone__Hdds__DatanodeDetails *dn;
    Ozone__Datanode__ChunkInfo *chunk;
    const uint8_t *data;
    pthread_t thread;
    bool started;
    int rc;
    struct oz_error err;
};

static void member_write(struct member_job *j)
{
    struct put *p = j->p;
    const Ozone__Om__KeyLocation *loc = p->cur.loc;
    Ozone__Datanode__WriteChunkRequest wr =
        OZONE__DATANODE__WRITE_CHUNK_REQUEST__INIT;
    Ozone__Datanode__PutBlockRequest pb =
        OZONE__DATANODE__PUT_BLOCK_REQUEST__INIT;
    Ozone__Datanode__BlockData bd = OZONE__DATANODE__BLOCK_DATA__INIT;
    ProtobufCMessage *resp = NULL;
    uint64_t want = j->chunk->offset + j->chunk->length;
    uint64_t got;

    wr.block_id = loc->block_id;
    wr.chunk = j->chunk;
    wr.data.data = (uint8_t *)j->data;
    wr.data.len = j->chunk->length;
    wr.pipeline_id = loc->pipeline->id;
    j->rc = oz__dn_call(p->c, j->dn, "WriteChunk", &wr.base, &resp, &j->err);
    oz_client_free_msg(resp);
    resp = NULL;
    if (j->rc != 0) {
        return;
    }
    /* The full chunk list so far: PutBlock replaces a shorter one. */
    bd.block_id = loc->block_id;
    bd.chunks = p->cur.chunk_ptrs;
    bd.n_chunks = p->cur.n_chunks;
    bd.size = want;
    pb.block = &bd;
    j->rc = oz__dn_call(p->c, j->dn, "PutBlock", &pb.base, &resp, &j->err);
    if (j->rc == 0) {
        got = ((Ozone__Datanode__PutBlockResponse *)resp)->committed_length;
        if (got != want) {
            oz__set_error(&j->err, OZONE__RESULT_CODE__IO_EXCEPTION,
                          "committed %" PRIu64 " bytes, expected %" PRIu64, got,
                          want);
            j->rc = OZ_EIO;
        }
    }
    oz_client_free_msg(resp);
}

static void *member_thread(void *arg)
{
    member_write(arg);
    return NULL;
}

/* Appends the chunk descriptor for the next len bytes of the block. */
static int add_chunk(struct put *p,
                     const uint8_t *data,
                     size_t len,
                     struct oz_error *err)
{
    struct cur_block *b = &p->cur;
    Ozone__Datanode__ChunkInfo *ci;
    char name[64];

    if (b->n_chunks == MAX_CHUNKS_PER_BLOCK) {
        oz__set_error(err, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "block has more than %d chunks; raise "
                      "ozone.scm.chunk.size",
                      MAX_CHUNKS_PER_BLOCK);
        return OZ_ETOOBIG;
    }
    if (b->n_chunks == b->cap_chunks) {
        size_t cap = b->cap_chunks != 0 ? b->cap_chunks * 2 : 16;
        Ozone__Datanode__ChunkInfo *c2 = malloc(cap * sizeof(*c2));
        Ozone__Datanode__ChunkInfo **p2 = malloc(cap * sizeof(*p2));
        if (c2 == NULL || p2 == NULL) {
            free(c2);
            free(p2);
            oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "out of memory");
            return OZ_ENOMEM;
        }
        if (b->n_chunks > 0) {
            memcpy(c2, b->chunks, b->n_chunks * sizeof(*c2));
        }
        free(b->chunks);
        free(b->chunk_ptrs);
        b->chunks = c2;
        b->chunk_ptrs = p2;
        b->cap_chunks = cap;
        for (size_t i = 0; i < b->n_chunks; i++) {
            b->chunk_ptrs[i] = &b->chunks[i];
        }
    }
    snprintf(name, sizeof(name), "%" PRIu64 "_chunk_%zu",
             b->loc->block_id->local_id, b->n_chunks + 1);
    ci = &b->chunks[b->n_chunks];
    ozone__datanode__chunk_info__init(ci);
    ci->name = strdup(name);
    if (ci->name == NULL) {
        oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR, "out of memory");
        return OZ_ENOMEM;
    }
    ci->offset = b->written;
    ci->length = len;
    ci->checksum_type = oz__checksum_type(p->c);
    if (ci->checksum_type == OZONE__DATANODE__CHECKSUM_TYPE__SHA256) {
        ci->checksum_bytes.data = malloc(OZ_SHA256_LEN);
        if (ci->checksum_bytes.data == NULL) {
            free(ci->name);
            oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "out of memory");
            return OZ_ENOMEM;
        }
        ci->checksum_bytes.len = OZ_SHA256_LEN;
        oz_sha256(data, len, ci->checksum_bytes.data);
    } else {
        ci->checksum = crc32c(0, data, len);
    }
    b->chunk_ptrs[b->n_chunks] = ci;
    b->n_chunks++;
    return 0;
}

/* Writes data as the block's next chunk on every member. On failure the
 * chunk is dropped from the list, every failed member is excluded, and
 * err names the first one. */
static int write_chunk(struct put *p,
                       const uint8_t *data,
                       size_t len,
                       struct oz_error *err)
{
    const Ozone__Hdds__Pipeline *pl = p->cur.loc->pipeline;
    struct member_job jobs[MAX_MEMBERS];
    size_t n = pl->n_members;
    int rc = add_chunk(p, data, len, err);
    int first_failed = -1;

    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].p = p;
        jobs[i].dn = pl->members[i];
        jobs[i].chunk = p->cur.chunk_ptrs[p->cur.n_chunks - 1];
        jobs[i].data = data;
    }
    /* Members 1.. run on threads of their own, member 0 on this one, so
     * replication THREE costs one round trip, not three. */
    for (size_t i = 1; i < n; i++) {
        jobs[i].started =
            pthread_create(&jobs[i].thread, NULL, member_thread, &jobs[i]) == 0;
        if (!jobs[i].started) {
            member_write(&jobs[i]);
        }
    }
    member_write(&jobs[0]);
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].started) {
            pthread_join(jobs[i].thread, NULL);
        }
        if (jobs[i].rc == 0) {
            continue;
        }
        if (jobs[i].err.code == OZONE__RESULT_CODE__CONTAINER_NOT_OPEN) {
            exclude_container(p, p->cur.loc->block_id->container_id);
        } else {
            exclude_dn(p, jobs[i].dn->uuid);
        }
        if (first_failed < 0) {
            first_failed = (int)i;
        }
    }
    if (first_failed >= 0) {
        const struct member_job *j = &jobs[first_failed];
        oz__set_error(err, j->err.code,
                      "datanode '%s' failed chunk %s of block %" PRIu64
                      "/%" PRIu64 ": %s",
                      j->dn->uuid, j->chunk->name,
                      p->cur.loc->block_id->container_id,
                      p->cur.loc->block_id->local_id, j->err.message);
        free(p->cur.chunks[p->cur.n_chunks - 1].name);
        free(p->cur.chunks[p->cur.n_chunks - 1].checksum_bytes.data);
        p->cur.n_chunks--;
        return j->rc;
    }
    p->cur.written += len;
    return 0;
}

/* Writes len bytes (a part of the chunk buffer) at the current position,
 * moving to new blocks on failure (DESIGN.md §7: a datanode failure never
 * fails a write while SCM can allocate elsewhere). */
static int write_bytes(struct put *p,
                       const uint8_t *data,
                       size_t len,
                       struct oz_error *err)
{
    while (len > 0) {
        struct oz_error werr;
        size_t n;
        int rc = ensure_block(p, err);

        if (rc != 0) {
            return rc;
        }
        n = len;
        if ((uint64_t)n > p->cur.capacity - p->cur.written) {
            n = (size_t)(p->cur.capacity - p->cur.written);
        }
        rc = write_chunk(p, data, n, &werr);
        if (rc == 0) {
            data += n;
            len -= n;
            continue;
        }
        /* A refusal by version is the cluster's answer, not a failing
         * datanode: another block would get the same (DESIGN.md §6.1). */
        if (rc == OZ_ENOMEM || rc == OZ_ETOOBIG ||
            werr.code ==
                OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION ||
            p->stats.reallocated >= OZ_CLIENT_MAX_REALLOCATIONS) {
            *err = werr;
            return rc;
        }
        log_warn("client: %s: %s; continuing key '%s/%s/%s' on a new block",
                 oz_result_name(werr.code), werr.message, p->volume, p->bucket,
                 p->key);
        rc = cur_finish(p, err);
        if (rc != 0) {
            return rc;
        }
        p->stats.reallocated++;
        rc = allocate_block(p, err);
        if (rc != 0) {
            oz__wrap_error(err, "%s; no other block could be allocated",
                           werr.message);
            return rc;
        }
    }
    return 0;
}

/* Fills buf from the reader up to n bytes or the end. */
static int fill(oz_reader_fn reader,
                void *ctx,
                uint8_t *buf,
                size_t n,
                size_t *got,
                bool *eof,
                struct oz_error *err)
{
    *got = 0;
    while (*got < n) {
        const char *msg = "read failed";
        ssize_t r = reader(ctx, buf + *got, n - *got, &msg);
        if (r < 0) {
            oz__set_error(err, OZONE__RESULT_CODE__IO_EXCEPTION,
                          "cannot read the data to put: %s", msg);
            return OZ_EIO;
        }
        if (r == 0) {
            *eof = true;
            break;
        }
        *got += (size_t)r;
    }
    return 0;
}

static int create_key(struct put *p,
                      Ozone__Hdds__ReplicationFactor repl,
                      uint64_t size_hint,
                      struct oz_error *err)
{
    Ozone__Om__CreateKeyRequest req = OZONE__OM__CREATE_KEY_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    Ozone__Om__CreateKeyResponse *r;
    int rc;

    req.volume = (char *)p->volume;
    req.bucket = (char *)p->bucket;
    req.key = (char *)p->key;
    req.data_size = size_hint;
    req.replication = repl;
    {
        long long waited = 0, backoff = 100;
        while ((rc = oz__om_call(p->c, "CreateKey", &req.base, &resp, err)) !=
                   0 &&
               no_pipeline_yet(rc, err) &&
               wait_for_pipeline(p, &waited, &backoff)) {
        }
    }
    if (rc != 0) {
        return rc;
    }
    rc = keep(p, resp, err);
    if (rc != 0) {
        return rc;
    }
    r = (Ozone__Om__CreateKeyResponse *)resp;
    p->client_id = r->client_id;
    if (r->key != NULL) {
        p->prealloc = r->key->locations;
        p->n_prealloc = r->key->n_locations;
    }
    return 0;
}

static int commit_key(struct put *p, struct oz_error *err)
{
    Ozone__Om__CommitKeyRequest req = OZONE__OM__COMMIT_KEY_REQUEST__INIT;
    Ozone__Om__KeyLocation **ptrs = NULL;
    ProtobufCMessage *resp = NULL;
    int rc;

    if (p->n_done > 0) {
        ptrs = malloc(p->n_done * sizeof(*ptrs));
        if (ptrs == NULL) {
            oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "out of memory");
            return OZ_ENOMEM;
        }
        for (size_t i = 0; i < p->n_done; i++) {
            ptrs[i] = &p->done[i];
        }
    }
    req.volume = (char *)p->volume;
    req.bucket = (char *)p->bucket;
    req.key = (char *)p->key;
    req.client_id = p->client_id;
    req.data_size = p->total;
    req.locations = ptrs;
    req.n_locations = p->n_done;
    rc = oz__om_call(p->c, "CommitKey", &req.base, &resp, err);
    oz_client_free_msg(resp);
    free(ptrs);
    return rc;
}

int oz_key_put(struct oz_client *c,
               const char *volume,
               const char *bucket,
               const char *key,
               Ozone__Hdds__ReplicationFactor replication,
               uint64_t size_hint,
               oz_reader_fn reader,
               void *reader_ctx,
               struct oz_put_stats *stats,
               struct oz_error *err)
{
    size_t chunk = oz_client_chunk_size(c);
    struct put p;
    uint8_t *buf;
    bool eof = false;
    int rc;

    memset(&p, 0, sizeof(p));
    memset(err, 0, sizeof(*err));
    p.c = c;
    p.volume = volume;
    p.bucket = bucket;
    p.key = key;
    buf = malloc(chunk);
    if (buf == NULL) {
        oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "out of memory for a %zu-byte chunk", chunk);
        return OZ_ENOMEM;
    }
    rc = create_key(&p, replication, size_hint, err);
    while (rc == 0 && !eof) {
        size_t got = 0;
        rc = fill(reader, reader_ctx, buf, chunk, &got, &eof, err);
        if (rc == 0 && got > 0) {
            rc = write_bytes(&p, buf, got, err);
        }
    }
    if (rc == 0) {
        rc = cur_finish(&p, err);
    }
    if (rc == 0) {
        rc = commit_key(&p, err);
    }
    if (rc != 0 && err->message[0] != '\0') {
        oz__wrap_error(err, "cannot put key '%s/%s/%s'", volume, bucket, key);
    }
    p.stats.bytes = p.total;
    if (stats != NULL) {
        *stats = p.stats;
    }
    put_release(&p);
    free(buf);
    return rc;
}

/* ---- convenience sources ---- */

static ssize_t fd_reader(void *ctx, void *buf, size_t n, const char **msg)
{
    int fd = *(int *)ctx;

    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0) {
            return r;
        }
        if (errno != EINTR) {
            *msg = strerror(errno);
            return -1;
        }
    }
}

struct buf_src
{
    const uint8_t *data;
    size_t len, pos;
};

static ssize_t buf_reader(void *ctx, void *buf, size_t n, const char **msg)
{
    struct buf_src *s = ctx;
    size_t left = s->len - s->pos;

    (void)msg;
    if (n > left) {
        n = left;
    }
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

int oz_key_put_fd(struct oz_client *c,
                  const char *volume,
                  const char *bucket,
                  const char *key,
                  Ozone__Hdds__ReplicationFactor replication,
                  int fd,
                  struct oz_put_stats *stats,
                  struct oz_error *err)
{
    struct stat st;
    uint64_t hint = 0;

    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        hint = (uint64_t)st.st_size;
    }
    return oz_key_put(c, volume, bucket, key, replication, hint, fd_reader, &fd,
                      stats, err);
}

int oz_key_put_buf(struct oz_client *c,
                   const char *volume,
                   const char *bucket,
                   const char *key,
                   Ozone__Hdds__ReplicationFactor replication,
                   const void *buf,
                   size_t len,
                   struct oz_put_stats *stats,
                   struct oz_error *err)
{
    struct buf_src s = {buf, len, 0};

    return oz_key_put(c, volume, bucket, key, replication, len, buf_reader, &s,
                      stats, err);
}
