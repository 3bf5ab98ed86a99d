/* kv: the only module that calls rocksdb_* (CONVENTIONS.md adapters;
 * PITFALLS.md "RocksDB 7.8 C API").
 *
 * A database with named column families, addressed by index (the order
 * given to kv_open). Every database also has the "default" family and a
 * meta family KV_META_CF holding e.g. #LAYOUTVERSION (DESIGN.md §6.2);
 * kv_open adds both when the caller does not list them. Values returned
 * are copies in malloc'd memory the caller frees with free().
 */
#ifndef OZONE_KV_H
#define OZONE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_META_CF "metaTable"
#define KV_LAYOUT_VERSION_KEY "#LAYOUTVERSION"

struct kv;
struct kv_batch;
struct kv_iter;

enum kv_flags {
    KV_CREATE = 1 << 0,    /* create the DB and missing families */
    KV_SYNC = 1 << 1,      /* every write is fsynced (WAL sync) */
    KV_READ_ONLY = 1 << 2, /* open read-only */
};

/* Opens path with the given column families (names copied). Families
 * that exist on disk but are not listed are opened too (never dropped).
 * OZ_ENOTFOUND when the DB does not exist and KV_CREATE is not set;
 * OZ_ECORRUPT / OZ_EIO with errmsg otherwise. */
int kv_open(struct kv **out,
            const char *path,
            const char *const *cfs,
            size_t n_cfs,
            int flags,
            char *errmsg);
/* Closes and frees; kv may be NULL. */
void kv_close(struct kv *kv);

/* Index of a family by name; OZ_ENOTFOUND if absent. */
int kv_cf(const struct kv *kv, const char *name);

/* *val is malloc'd (caller frees) and NUL-terminated past vlen for
 * convenience. OZ_ENOTFOUND when absent. */
int kv_get(struct kv *kv,
           int cf,
           const void *key,
           size_t klen,
           void **val,
           size_t *vlen);
int kv_put(struct kv *kv,
           int cf,
           const void *key,
           size_t klen,
           const void *val,
           size_t vlen);
int kv_delete(struct kv *kv, int cf, const void *key, size_t klen);

struct kv_batch *kv_batch_new(void);
void kv_batch_free(struct kv_batch *b);
void kv_batch_put(struct kv_batch *b,
                  int cf,
                  const void *key,
                  size_t klen,
                  const void *val,
                  size_t vlen);
void kv_batch_delete(struct kv_batch *b, int cf, const void *key, size_t klen);
size_t kv_batch_count(const struct kv_batch *b);
/* Applies atomically; sync forces an fsync of the WAL. */
int kv_write(struct kv *kv, struct kv_batch *b, bool sync, char *errmsg);

/* Iterator over one family, positioned by a seek. Valid until freed; sees
 * a consistent snapshot. */
struct kv_iter *kv_iter_new(struct kv *kv, int cf);
void kv_iter_free(struct kv_iter *it);
void kv_iter_seek_first(struct kv_iter *it);
void kv_iter_seek(struct kv_iter *it, const void *key, size_t klen);
bool kv_iter_valid(const struct kv_iter *it);
void kv_iter_next(struct kv_iter *it);
/* Borrowed until the next move or free. */
const void *kv_iter_key(const struct kv_iter *it, size_t *len);
const void *kv_iter_value(const struct kv_iter *it, size_t *len);

/* RocksDB checkpoint into dir, which must not exist (OZ_EEXIST). With an
 * overlay, the overlay is flushed first, so the checkpoint holds every
 * write applied before the call. */
int kv_checkpoint(struct kv *kv, const char *dir, char *errmsg);

/* Latest sequence number (for Recon's incremental sync). Counts written
 * batches only: overlay writes get theirs when flushed. */
uint64_t kv_latest_sequence(struct kv *kv);

/* ---- Overlay: applied but not yet written (DESIGN.md §8 double buffer) --
 *
 * An overlay makes kv_overlay_apply() cheap: the batch goes into memory
 * (a RocksDB WriteBatchWithIndex) and is visible at once to every reader
 * of this kv, kv_get and kv_iter_* included, so modules that read the
 * database need not know the overlay exists. kv_overlay_flush() writes
 * everything applied so far to RocksDB with one atomic write. A crash
 * loses what was not flushed: the caller must be able to apply it again
 * (the OM re-applies raft entries after the flushed #TRANSACTIONINFO).
 *
 * With an overlay attached:
 * - kv_write, kv_put and kv_delete apply their batch to the overlay and
 *   flush it (sync as asked): older applies reach the disk first, in order.
 * - kv_checkpoint flushes first; kv_close flushes (synced) before closing.
 * - kv_write_raw is refused (OZ_ESTATE).
 * - An iterator opened while the overlay holds writes keeps a read lock
 *   until kv_iter_free (call it on the thread that opened it): applies
 *   and flushes wait for it, and so do new readers on other threads once
 *   one of those waits (the lock prefers writers). Keep such iterators
 *   short, and never apply, flush or write this kv from a thread that
 *   holds one (it would wait for itself). Gets and iterators nested inside
 *   an open iterator on the same thread are fine.
 * - Flushes are serialised; applies and reads continue during a flush's
 *   disk write (it writes a frozen copy while new applies go to a fresh
 *   batch). */

/* Counts of applied batches (kv_overlay_apply calls), their operations
 * and encoded bytes, and the tag of the latest one. */
struct kv_overlay_stats
{
    uint64_t batches;
    uint64_t ops;
    uint64_t bytes;
    uint64_t last_tag;
};

/* Attaches an empty overlay. Call before other threads use kv. 0 (also
 * when one is attached already), OZ_EINVAL for a read-only kv, OZ_ENOMEM.
 * It lives until kv_close. */
int kv_overlay_enable(struct kv *kv, char *errmsg);
bool kv_overlay_enabled(const struct kv *kv);

/* Adds b (borrowed; not modified) to the overlay atomically: a reader
 * sees all of b or none of it. tag is the caller's label, e.g. the raft
 * index of the entry b applies; UINT64_MAX is reserved. *pending (may be
 * NULL) gets what is now unflushed. OZ_ESTATE without an overlay; a batch
 * that failed to build or names a family that is not open is refused whole
 * like kv_write. */
int kv_overlay_apply(struct kv *kv,
                     const struct kv_batch *b,
                     uint64_t tag,
                     struct kv_overlay_stats *pending,
                     char *errmsg);

/* Writes every applied batch to RocksDB in one atomic write (sync: fsync
 * the WAL; also when nothing is pending, so earlier unsynced flushes
 * become durable). *flushed (may be NULL) gets what was written, last_tag
 * being the tag of the newest batch written. 0 without an overlay or
 * with nothing to write. On failure (OZ_EIO..., or OZ_EFAULT from fault
 * point "kv.overlay.flush") nothing is lost: the batches stay visible and
 * the next flush retries them first. */
int kv_overlay_flush(struct kv *kv,
                     bool sync,
                     struct kv_overlay_stats *flushed,
                     char *errmsg);

/* What is applied and not yet flushed (zeros without an overlay). */
void kv_overlay_pending(struct kv *kv, struct kv_overlay_stats *out);

/* ---- WAL updates (Recon's incremental sync of OM, DESIGN.md §9) ---- */

/* One write batch read from the write-ahead log: its first sequence
 * number, the number of operations it holds and its raw RocksDB encoding
 * (malloc'd). */
struct kv_update
{
    uint64_t sequence;
    uint64_t count;
    void *data;
    size_t len;
};

/* The write batches after sequence number from, in order: the first one
 * holds from + 1 (it may start earlier: replaying puts and deletes that are
 * already applied is harmless), each next one follows the previous without
 * a gap. Stops once max_ops operations or max_bytes bytes are collected
 * (at least one batch is returned when there is any). *out (free with
 * kv_updates_free) gets *n batches; none when from is the latest sequence.
 * OZ_ENOTFOUND (with errmsg) when the WAL no longer holds from + 1, e.g.
 * after a flush deleted old WAL files: the caller needs a checkpoint. */
int kv_updates_since(struct kv *kv,
                     uint64_t from,
                     uint64_t max_ops,
                     size_t max_bytes,
                     struct kv_update **out,
                     size_t *n,
                     char *errmsg);
void kv_updates_free(struct kv_update *u, size_t n);

/* Applies a raw write batch (kv_update.data, read from a database whose
 * column families have the same ids, e.g. one restored from its
 * checkpoint) together with the operations of extra (may be NULL) in one
 * atomic write. OZ_ECORRUPT when data is not a valid batch or names a
 * column family this database lacks. */
int kv_write_raw(struct kv *kv,
                 const void *data,
                 size_t len,
                 struct kv_batch *extra,
                 bool sync,
                 char *errmsg);

/* #LAYOUTVERSION in KV_META_CF. get: OZ_ENOTFOUND if absent, OZ_ECORRUPT
 * if not a number. batch_put adds it to a batch (same-batch write with the
 * finalize transaction, DESIGN.md §6.2). */
int kv_get_layout_version(struct kv *kv, int *out);
void kv_batch_put_layout_version(struct kv *kv,
                                 struct kv_batch *b,
                                 int version);

#endif
