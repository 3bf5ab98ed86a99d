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

/* RocksDB checkpoint into dir, which must not exist (OZ_EEXIST). */
int kv_checkpoint(struct kv *kv, const char *dir, char *errmsg);

/* Latest sequence number (for Recon's incremental sync). */
uint64_t kv_latest_sequence(struct kv *kv);

/* #LAYOUTVERSION in KV_META_CF. get: OZ_ENOTFOUND if absent, OZ_ECORRUPT
 * if not a number. batch_put adds it to a batch (same-batch write with the
 * finalize transaction, DESIGN.md §6.2). */
int kv_get_layout_version(struct kv *kv, int *out);
void kv_batch_put_layout_version(struct kv *kv,
                                 struct kv_batch *b,
                                 int version);

#endif
