/* consensus: entry frames and the raft FSM glue (consensus.h "Entries",
 * PITFALLS.md: entry lengths must be multiples of 8). Everything but the
 * frame codec runs on the raft thread. */
#include "consensus.h"
#include "consensus_internal.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "err.h"
#include "log.h"

#define SNAPSHOT_MAGIC 0x53435a4fu /* "OZCS" little endian */
#define SNAPSHOT_VERSION 1u
#define SNAPSHOT_HEADER 24 /* magic, version, index, user length */

/* ---- frames ---- */

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

size_t consensus_frame_size(size_t len)
{
    return CONSENSUS_FRAME_HEADER + ((len + 7) & ~(size_t)7);
}

void consensus_frame_encode(void *dst,
                            uint32_t type,
                            const void *payload,
                            size_t len)
{
    unsigned char *p = dst;
    size_t size = consensus_frame_size(len);

    assert(len <= CONSENSUS_MAX_ENTRY);
    put_u32(p, (uint32_t)len);
    put_u32(p + 4, type);
    if (len > 0) {
        memcpy(p + CONSENSUS_FRAME_HEADER, payload, len);
    }
    memset(p + CONSENSUS_FRAME_HEADER + len, 0,
           size - CONSENSUS_FRAME_HEADER - len);
}

int consensus_frame_decode(const void *buf,
                           size_t buf_len,
                           uint32_t *type,
                           const void **payload,
                           size_t *len)
{
    const unsigned char *p = buf;
    size_t n, i;

    *type = 0;
    *payload = NULL;
    *len = 0;
    if (buf == NULL || buf_len < CONSENSUS_FRAME_HEADER || buf_len % 8 != 0) {
        return OZ_ECORRUPT;
    }
    n = get_u32(p);
    if (n > CONSENSUS_MAX_ENTRY || n > buf_len - CONSENSUS_FRAME_HEADER ||
        consensus_frame_size(n) != buf_len) {
        return OZ_ECORRUPT;
    }
    for (i = CONSENSUS_FRAME_HEADER + n; i < buf_len; i++) {
        if (p[i] != 0) {
            return OZ_ECORRUPT;
        }
    }
    *type = get_u32(p + 4);
    *payload = p + CONSENSUS_FRAME_HEADER;
    *len = n;
    return 0;
}

/* ---- FSM glue (raft thread) ---- */

/* Term of the entry at index in raft's in-memory log (struct raft_log of
 * raft.h: a circular buffer of entries front..back, the first holding
 * offset + 1); 0 if it is not there. The entry being applied always is:
 * raft compacts only applied entries. */
static uint64_t entry_term(const struct raft_log *l, uint64_t index)
{
    size_t n =
        l->back >= l->front ? l->back - l->front : l->size - l->front + l->back;

    if (index <= l->offset || index - l->offset > n) {
        return index == l->snapshot.last_index ? l->snapshot.last_term : 0;
    }
    return l->entries[(l->front + (size_t)(index - l->offset - 1)) % l->size]
        .term;
}

int consensus__fsm_apply(struct raft_fsm *f,
                         const struct raft_buffer *buf,
                         void **result)
{
    struct consensus *c = f->data;
    /* raft 0.15 advances last_applied right after this call returns. */
    uint64_t index = raft_last_applied(&c->raft) + 1;
    const void *payload;
    uint32_t type;
    size_t len;
    int rc;

    rc = consensus_frame_decode(buf->base, buf->len, &type, &payload, &len);
    if (rc != 0) {
        /* Never apply garbage: this node stops applying here (raft retries
         * the same index and fails again) until an operator acts. */
        if (c->corrupt_index != index) {
            log_error(
                "consensus '%s': refusing corrupt entry at index "
                "%" PRIu64 " (%zu bytes): node stops applying",
                c->name, index, buf->len);
            c->corrupt_index = index;
        }
        return RAFT_CORRUPT;
    }
    c->in_apply = true;
    rc = c->fsm.apply(c->fsm.ctx, index, entry_term(&c->raft.log, index), type,
                      payload, len);
    c->in_apply = false;
    *result = (void *)(intptr_t)rc;
    return 0;
}

int consensus_writer_append(struct consensus_writer *w,
                            const void *data,
                            size_t len)
{
    if (len > SIZE_MAX / 2 - w->len) {
        return OZ_ETOOBIG;
    }
    if (w->len + len > w->cap) {
        size_t cap = w->cap > 0 ? w->cap : 4096;
        char *base;

        while (cap < w->len + len) {
            cap *= 2;
        }
        base = raft_realloc(w->base, cap);
        if (base == NULL) {
            return OZ_ENOMEM;
        }
        w->base = base;
        w->cap = cap;
    }
    if (len > 0) {
        memcpy(w->base + w->len, data, len);
    }
    w->len += len;
    return 0;
}

int consensus__fsm_snapshot(struct raft_fsm *f,
                            struct raft_buffer *bufs[],
                            unsigned *n_bufs)
{
    struct consensus *c = f->data;
    uint64_t index = raft_last_applied(&c->raft);
    struct consensus_writer w = {NULL, 0, 0};
    unsigned char header[SNAPSHOT_HEADER] = {0};
    int rc;

    rc = consensus_writer_append(&w, header, sizeof(header));
    if (rc == 0) {
        rc = c->fsm.snapshot(c->fsm.ctx, index, &w);
    }
    if (rc == 0) {
        *bufs = raft_malloc(sizeof(**bufs));
        if (*bufs == NULL) {
            rc = OZ_ENOMEM;
        }
    }
    if (rc != 0) {
        log_warn("consensus '%s': snapshot at index %" PRIu64 " skipped: %s",
                 c->name, index, oz_strerror(rc));
        raft_free(w.base);
        return RAFT_BUSY; /* raft 0.15: transient, retried later */
    }
    put_u32(header, SNAPSHOT_MAGIC);
    put_u32(header + 4, SNAPSHOT_VERSION);
    put_u64(header + 8, index);
    put_u64(header + 16, (uint64_t)(w.len - SNAPSHOT_HEADER));
    memcpy(w.base, header, sizeof(header));
    (*bufs)[0].base = w.base;
    (*bufs)[0].len = w.len;
    *n_bufs = 1;
    log_info("consensus '%s': snapshot taken at index %" PRIu64 " (%zu bytes)",
             c->name, index, w.len);
    return 0;
}

int consensus__fsm_restore(struct raft_fsm *f, struct raft_buffer *buf)
{
    struct consensus *c = f->data;
    const unsigned char *p = buf->base;
    uint64_t index, len;
    int rc;

    if (buf->len < SNAPSHOT_HEADER || get_u32(p) != SNAPSHOT_MAGIC ||
        get_u32(p + 4) != SNAPSHOT_VERSION ||
        (len = get_u64(p + 16)) != buf->len - SNAPSHOT_HEADER) {
        log_error("consensus '%s': refusing corrupt snapshot (%zu bytes)",
                  c->name, buf->len);
        return RAFT_CORRUPT;
    }
    index = get_u64(p + 8);
    rc = c->fsm.restore(c->fsm.ctx, index, p + SNAPSHOT_HEADER, (size_t)len);
    if (rc != 0) {
        log_error("consensus '%s': restoring snapshot at index %" PRIu64
                  " failed: %s",
                  c->name, index, oz_strerror(rc));
        return RAFT_IOERR;
    }
    log_info("consensus '%s': restored snapshot at index %" PRIu64
             " (%zu bytes)",
             c->name, index, buf->len);
    /* On success the buffer is ours (raft 0.15 snapshotRestore). */
    raft_free(buf->base);
    buf->base = NULL;
    return 0;
}
