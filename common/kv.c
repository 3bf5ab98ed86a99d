/* kv: the RocksDB adapter (CONVENTIONS.md "Layout"; PITFALLS.md "RocksDB 7.8
 * C API"). Nothing else in ozone-c calls rocksdb_*, and nothing allocated by
 * RocksDB leaves this file: values are copied into malloc'd buffers and the
 * originals released here.
 *
 * Errors: RocksDB reports a malloc'd string in errptr. take_err() turns it
 * into a project code by its status prefix ("Corruption: ", "IO error: ",
 * ...), copies the text into errmsg (or the log when the call has no
 * errmsg), frees it and resets the pointer to NULL, so the variable can be
 * reused.
 *
 * Threads: after kv_open a struct kv is immutable (handles, options, names),
 * and RocksDB's own calls are thread-safe, so every function may be called
 * from any thread. Batches and iterators belong to one thread at a time.
 *
 * Overlay (kv.h "Overlay", the OM's double buffer, DESIGN.md §8): two
 * RocksDB WriteBatchWithIndex objects. `cur` takes kv_overlay_apply();
 * a flush moves it to `frozen` (a pointer swap under the write lock),
 * writes `frozen` with one rocksdb_write outside the lock, and drops it
 * under the lock again. Readers take the read lock and read cur, then
 * frozen, then the DB: with no frozen batch one
 * rocksdb_writebatch_wi_get_from_batch_and_db_cf call; during a flush a
 * chain of two base-delta iterators over a DB iterator, seeked to the key
 * (a WriteBatchWithIndex cannot say "deleted here" apart from "absent
 * here", an iterator can). A WriteBatchWithIndex may be read by several
 * threads but not read while written, so an iterator over a non-empty
 * overlay keeps the read lock until it is freed. The lock (struct
 * ov_lock) prefers writers, so readers cannot starve applies, and lets a
 * thread holding an iterator open another one or get. Lock order:
 * flush_mu, then the overlay lock.
 *
 * This file is past 1500 lines because the overlay must see the
 * batch and iterator internals and call rocksdb_* (CONVENTIONS.md
 * adapters: one file owns RocksDB).
 */
#include "kv.h"

#include "err.h"
#include "fault.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <rocksdb/c.h>

struct kv
{
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wopts;      /* sync per KV_SYNC */
    rocksdb_writeoptions_t *wopts_sync; /* always sync */
    rocksdb_readoptions_t *ropts;
    size_t n_cf;
    char **cf_names;
    rocksdb_column_family_handle_t **cf;
    int flags;
    atomic_int n_iters; /* open iterators, checked at close */
    char *path;
    struct kv_overlay *ov; /* NULL until kv_overlay_enable */
};

/* A readers-writer lock that prefers writers (a stream of readers cannot
 * starve the applying thread) yet lets a thread that already reads take it
 * again for reading (an open iterator, then a get): the read depth of each
 * thread is kept in thread-local slots. Locked for reading means: by this
 * thread, on entry to ov_read_lock, depth 0. */
struct ov_lock
{
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int readers;
    int writers_waiting;
    bool writer;
};

#define OV_TLS_SLOTS 4

static _Thread_local struct
{
    const struct ov_lock *lock;
    int depth;
} ov_tls[OV_TLS_SLOTS];

static int *ov_depth(const struct ov_lock *l)
{
    int free_slot = -1;

    for (int i = 0; i < OV_TLS_SLOTS; i++) {
        if (ov_tls[i].lock == l && ov_tls[i].depth > 0) {
            return &ov_tls[i].depth;
        }
        if (ov_tls[i].depth == 0 && free_slot < 0) {
            free_slot = i;
        }
    }
    if (free_slot < 0) {
        /* Our own bug: one thread reading through more overlays at once
         * than this file expects. */
        fprintf(stderr, "%s:%d: too many overlays read by one thread\n",
                __FILE__, __LINE__);
        abort();
    }
    ov_tls[free_slot].lock = l;
    return &ov_tls[free_slot].depth;
}

static void ov_lock_init(struct ov_lock *l)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->readers = 0;
    l->writers_waiting = 0;
    l->writer = false;
}

static void ov_lock_destroy(struct ov_lock *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

static void ov_read_lock(struct ov_lock *l)
{
    int *depth = ov_depth(l);

    pthread_mutex_lock(&l->mu);
    if (*depth == 0) {
        while (l->writer || l->writers_waiting > 0) {
            pthread_cond_wait(&l->cv, &l->mu);
        }
    }
    l->readers++;
    pthread_mutex_unlock(&l->mu);
    (*depth)++;
}

static void ov_read_unlock(struct ov_lock *l)
{
    int *depth = ov_depth(l);

    (*depth)--;
    pthread_mutex_lock(&l->mu);
    if (--l->readers == 0) {
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
}

static void ov_write_lock(struct ov_lock *l)
{
    pthread_mutex_lock(&l->mu);
    l->writers_waiting++;
    while (l->writer || l->readers > 0) {
        pthread_cond_wait(&l->cv, &l->mu);
    }
    l->writers_waiting--;
    l->writer = true;
    pthread_mutex_unlock(&l->mu);
}

static void ov_write_unlock(struct ov_lock *l)
{
    pthread_mutex_lock(&l->mu);
    l->writer = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* See the top comment. cur_st/frozen_st count what each batch holds. */
struct kv_overlay
{
    struct ov_lock lock;      /* cur, frozen, spare and their stats */
    pthread_mutex_t flush_mu; /* one flush or exclusive write at a time */
    rocksdb_writebatch_wi_t *cur;
    rocksdb_writebatch_wi_t *frozen; /* NULL: no flush in progress */
    rocksdb_writebatch_wi_t *spare;  /* empty, reused as the next cur */
    struct kv_overlay_stats cur_st, frozen_st;
    uint64_t last_tag; /* of the latest apply */
};

/* A batch is a log of operations by family index: kv_batch_new() has no
 * kv, so the family handles are only known at kv_write(). */
enum batch_op_type { BATCH_PUT, BATCH_DELETE };

struct batch_op
{
    enum batch_op_type type;
    int cf;
    size_t key_off, klen;
    size_t val_off, vlen;
};

struct kv_batch
{
    struct batch_op *ops;
    size_t n_ops, cap_ops;
    char *data; /* keys and values, back to back */
    size_t len, cap;
    int failed; /* first error while building, returned by kv_write */
};

struct kv_iter
{
    struct kv *kv;
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ropts;
    const rocksdb_snapshot_t *snap;
    bool locked; /* holds kv->ov->lock for reading (non-empty overlay) */
};

/* Overlay internals (defined at the end of the file). */
static int overlay_get(struct kv *kv,
                       int cf,
                       const void *key,
                       size_t klen,
                       void **val,
                       size_t *vlen);
static int overlay_write(struct kv *kv,
                         struct kv_batch *b,
                         bool sync,
                         char *errmsg);
static void overlay_free(struct kv *kv);

static void set_errmsg(char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_errmsg(char *errmsg, const char *fmt, ...)
{
    va_list ap;

    if (errmsg == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg, OZ_ERRMSG_SIZE, fmt, ap);
    va_end(ap);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Maps a RocksDB status text (Status::ToString) to a project code. */
static int status_code(const char *e)
{
    if (starts_with(e, "Corruption")) {
        return OZ_ECORRUPT;
    }
    if (starts_with(e, "Not found")) {
        return OZ_ENOTFOUND;
    }
    if (starts_with(e, "Not implemented") ||
        strstr(e, "Not supported") != NULL) {
        return OZ_ENOTSUPPORTED;
    }
    if (starts_with(e, "Invalid argument")) {
        if (strstr(e, "does not exist") != NULL ||
            strstr(e, "not found") != NULL) {
            return OZ_ENOTFOUND;
        }
        if (strstr(e, "exists") != NULL) {
            return OZ_EEXIST;
        }
        return OZ_EINVAL;
    }
    if (starts_with(e, "Operation timed out") || starts_with(e, "Timed out")) {
        return OZ_ETIMEDOUT;
    }
    return OZ_EIO;
}

/* Converts *errptr (non-NULL) into a code, puts "<what>: <text>" in errmsg
 * or, when errmsg is NULL, in the log; frees *errptr and resets it. */
static int take_err(char **errptr,
                    char *errmsg,
                    const char *what,
                    const char *path)
{
    int rc = status_code(*errptr);

    if (errmsg != NULL) {
        set_errmsg(errmsg, "%s '%s': %s", what, path, *errptr);
    } else {
        log_error("kv: %s '%s': %s", what, path, *errptr);
    }
    rocksdb_free(*errptr);
    *errptr = NULL;
    return rc;
}

/* ---- open / close ------------------------------------------------------ */

static int add_name(char ***names, size_t *n, const char *name)
{
    size_t i;
    char **nn;

    for (i = 0; i < *n; i++) {
        if (strcmp((*names)[i], name) == 0) {
            return 0;
        }
    }
    nn = realloc(*names, (*n + 1) * sizeof(*nn));
    if (nn == NULL) {
        return OZ_ENOMEM;
    }
    *names = nn;
    nn[*n] = strdup(name);
    if (nn[*n] == NULL) {
        return OZ_ENOMEM;
    }
    (*n)++;
    return 0;
}

static bool name_in(char **list, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(list[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* The families to open: the caller's, in their order (so that their
 * indexes match), then "default" and KV_META_CF, then any other family
 * found on disk (never dropped). A read-only open cannot create a family,
 * so there the built-in ones are only added when they exist. */
static int family_list(struct kv *kv,
                       const char *const *cfs,
                       size_t n_cfs,
                       bool exists,
                       char *errmsg)
{
    char **on_disk = NULL;
    size_t n_disk = 0;
    char *err = NULL;
    bool ro = (kv->flags & KV_READ_ONLY) != 0;
    int rc = 0;
    size_t i;

    if (exists) {
        on_disk =
            rocksdb_list_column_families(kv->opts, kv->path, &n_disk, &err);
        if (err != NULL) {
            /* RocksDB allocates the (empty) list even when it fails. */
            if (on_disk != NULL) {
                rocksdb_list_column_families_destroy(on_disk, n_disk);
            }
            /* The DB exists (CURRENT is there), so a missing file or "not
             * found" here means a broken one, not an I/O failure. */
            bool missing_file = strstr(err, "No such file") != NULL;
            rc = take_err(&err, errmsg, "cannot open database", kv->path);
            return rc == OZ_EIO && !missing_file ? OZ_EIO : OZ_ECORRUPT;
        }
    }
    for (i = 0; rc == 0 && i < n_cfs; i++) {
        if (ro && !name_in(on_disk, n_disk, cfs[i])) {
            set_errmsg(errmsg,
                       "cannot open database '%s' read-only: column family "
                       "'%s' does not exist",
                       kv->path, cfs[i]);
            rc = OZ_ENOTFOUND;
            break;
        }
        rc = add_name(&kv->cf_names, &kv->n_cf, cfs[i]);
    }
    if (rc == 0 && (!ro || name_in(on_disk, n_disk, "default"))) {
        rc = add_name(&kv->cf_names, &kv->n_cf, "default");
    }
    if (rc == 0 && (!ro || name_in(on_disk, n_disk, KV_META_CF))) {
        rc = add_name(&kv->cf_names, &kv->n_cf, KV_META_CF);
    }
    for (i = 0; rc == 0 && i < n_disk; i++) {
        rc = add_name(&kv->cf_names, &kv->n_cf, on_disk[i]);
    }
    if (on_disk != NULL) {
        rocksdb_list_column_families_destroy(on_disk, n_disk);
    }
    return rc;
}

static void kv_free_struct(struct kv *kv)
{
    size_t i;

    for (i = 0; kv->cf != NULL && i < kv->n_cf; i++) {
        if (kv->cf[i] != NULL) {
            rocksdb_column_family_handle_destroy(kv->cf[i]);
        }
    }
    /* PITFALLS.md: handles are destroyed before the DB is closed. */
    if (kv->db != NULL) {
        rocksdb_close(kv->db);
    }
    for (i = 0; kv->cf_names != NULL && i < kv->n_cf; i++) {
        free(kv->cf_names[i]);
    }
    free(kv->cf_names);
    free(kv->cf);
    if (kv->ropts != NULL) {
        rocksdb_readoptions_destroy(kv->ropts);
    }
    if (kv->wopts != NULL) {
        rocksdb_writeoptions_destroy(kv->wopts);
    }
    if (kv->wopts_sync != NULL) {
        rocksdb_writeoptions_destroy(kv->wopts_sync);
    }
    if (kv->opts != NULL) {
        rocksdb_options_destroy(kv->opts);
    }
    free(kv->path);
    free(kv);
}

static int make_options(struct kv *kv)
{
    kv->opts = rocksdb_options_create();
    kv->ropts = rocksdb_readoptions_create();
    kv->wopts = rocksdb_writeoptions_create();
    kv->wopts_sync = rocksdb_writeoptions_create();
    if (kv->opts == NULL || kv->ropts == NULL || kv->wopts == NULL ||
        kv->wopts_sync == NULL) {
        return OZ_ENOMEM;
    }
    rocksdb_options_set_create_if_missing(kv->opts,
                                          (kv->flags & KV_CREATE) != 0);
    rocksdb_options_set_create_missing_column_families(
        kv->opts, (kv->flags & KV_CREATE) != 0);
    /* Daemons run for months: bound RocksDB's own LOG files. */
    rocksdb_options_set_keep_log_file_num(kv->opts, 5);
    rocksdb_options_set_max_log_file_size(kv->opts, 16u << 20);
    rocksdb_writeoptions_set_sync(kv->wopts, (kv->flags & KV_SYNC) != 0);
    rocksdb_writeoptions_set_sync(kv->wopts_sync, 1);
    return 0;
}

/* Whether path holds a database: 1 yes, 0 no, or an error. */
static int db_exists(const char *path, char *errmsg)
{
    struct stat st;
    size_t len = strlen(path) + sizeof("/CURRENT");
    char *current;
    int rc;

    if (stat(path, &st) != 0) {
        if (errno == ENOENT) {
            return 0;
        }
        set_errmsg(errmsg, "cannot open database '%s': %s", path,
                   strerror(errno));
        return OZ_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        set_errmsg(errmsg, "cannot open database '%s': not a directory", path);
        return OZ_EIO;
    }
    current = malloc(len);
    if (current == NULL) {
        return OZ_ENOMEM;
    }
    snprintf(current, len, "%s/CURRENT", path);
    rc = stat(current, &st) == 0 ? 1 : 0;
    if (rc == 0 && errno != ENOENT) {
        set_errmsg(errmsg, "cannot open database '%s': %s", path,
                   strerror(errno));
        rc = OZ_EIO;
    }
    free(current);
    return rc;
}

int kv_open(struct kv **out,
            const char *path,
            const char *const *cfs,
            size_t n_cfs,
            int flags,
            char *errmsg)
{
    struct kv *kv;
    char *err = NULL;
    const rocksdb_options_t **cf_opts = NULL;
    int exists;
    int rc;
    size_t i;

    *out = NULL;
    exists = db_exists(path, errmsg);
    if (exists < 0) {
        return exists;
    }
    if (!exists && (!(flags & KV_CREATE) || (flags & KV_READ_ONLY))) {
        set_errmsg(errmsg, "database '%s' does not exist", path);
        return OZ_ENOTFOUND;
    }
    kv = calloc(1, sizeof(*kv));
    if (kv == NULL) {
        return OZ_ENOMEM;
    }
    kv->flags = flags;
    atomic_init(&kv->n_iters, 0);
    kv->path = strdup(path);
    if (kv->path == NULL || make_options(kv) != 0) {
        rc = OZ_ENOMEM;
        goto err_after_alloc;
    }
    rc = family_list(kv, cfs, n_cfs, exists == 1, errmsg);
    if (rc != 0) {
        goto err_after_alloc;
    }
    if (kv->n_cf > INT_MAX) {
        rc = OZ_EINVAL;
        goto err_after_alloc;
    }
    kv->cf = calloc(kv->n_cf, sizeof(*kv->cf));
    cf_opts = calloc(kv->n_cf, sizeof(*cf_opts));
    if (kv->cf == NULL || cf_opts == NULL) {
        rc = OZ_ENOMEM;
        goto err_after_alloc;
    }
    for (i = 0; i < kv->n_cf; i++) {
        cf_opts[i] = kv->opts;
    }
    if (flags & KV_READ_ONLY) {
        kv->db = rocksdb_open_for_read_only_column_families(
            kv->opts, path, (int)kv->n_cf, (const char *const *)kv->cf_names,
            cf_opts, kv->cf, 0, &err);
    } else {
        kv->db = rocksdb_open_column_families(kv->opts, path, (int)kv->n_cf,
                                              (const char *const *)kv->cf_names,
                                              cf_opts, kv->cf, &err);
    }
    if (err != NULL) {
        rc = take_err(&err, errmsg, "cannot open database", path);
        /* Everything but a missing family (no KV_CREATE) and a plain I/O
         * failure (e.g. the lock is held) means the directory is not a
         * usable RocksDB. */
        if (rc != OZ_ENOTFOUND && rc != OZ_EIO) {
            rc = OZ_ECORRUPT;
        }
        kv->db = NULL;
        memset(kv->cf, 0, kv->n_cf * sizeof(*kv->cf));
        goto err_after_alloc;
    }
    free(cf_opts);
    *out = kv;
    return 0;

err_after_alloc:
    free(cf_opts);
    kv_free_struct(kv);
    return rc;
}

void kv_close(struct kv *kv)
{
    int n;

    if (kv == NULL) {
        return;
    }
    n = atomic_load(&kv->n_iters);
    if (n != 0) {
        /* Our own bug: an iterator outlives its DB. Stop loudly. */
        log_error("kv: closing '%s' with %d open iterator(s)", kv->path, n);
        fprintf(stderr, "%s:%d: kv_close with open iterators\n", __FILE__,
                __LINE__);
        abort();
    }
    if (kv->ov != NULL) {
        char errmsg[OZ_ERRMSG_SIZE] = "";
        struct kv_overlay_stats st;
        /* Whatever was applied and not flushed yet is written now. */
        if (kv_overlay_flush(kv, true, &st, errmsg) != 0) {
            log_error("kv: closing '%s' lost unflushed overlay writes: %s",
                      kv->path, errmsg);
        }
        overlay_free(kv);
    }
    kv_free_struct(kv);
}

int kv_cf(const struct kv *kv, const char *name)
{
    size_t i;

    for (i = 0; i < kv->n_cf; i++) {
        if (kv->cf[i] != NULL && strcmp(kv->cf_names[i], name) == 0) {
            return (int)i;
        }
    }
    return OZ_ENOTFOUND;
}

static bool cf_ok(const struct kv *kv, int cf)
{
    return cf >= 0 && (size_t)cf < kv->n_cf && kv->cf[cf] != NULL;
}

/* ---- single operations ------------------------------------------------- */

int kv_get(struct kv *kv,
           int cf,
           const void *key,
           size_t klen,
           void **val,
           size_t *vlen)
{
    rocksdb_pinnableslice_t *ps;
    char *err = NULL;
    const char *v;
    size_t n = 0;
    char *copy;

    *val = NULL;
    *vlen = 0;
    if (!cf_ok(kv, cf)) {
        return OZ_EINVAL;
    }
    if (kv->ov != NULL) {
        return overlay_get(kv, cf, key, klen, val, vlen);
    }
    ps = rocksdb_get_pinned_cf(kv->db, kv->ropts, kv->cf[cf], key, klen, &err);
    if (err != NULL) {
        return take_err(&err, NULL, "get failed in", kv->path);
    }
    if (ps == NULL) {
        return OZ_ENOTFOUND;
    }
    v = rocksdb_pinnableslice_value(ps, &n);
    copy = malloc(n + 1);
    if (copy == NULL) {
        rocksdb_pinnableslice_destroy(ps);
        return OZ_ENOMEM;
    }
    if (n > 0) {
        memcpy(copy, v, n);
    }
    copy[n] = '\0';
    rocksdb_pinnableslice_destroy(ps);
    *val = copy;
    *vlen = n;
    return 0;
}

int kv_put(struct kv *kv,
           int cf,
           const void *key,
           size_t klen,
           const void *val,
           size_t vlen)
{
    char *err = NULL;

    if (!cf_ok(kv, cf)) {
        return OZ_EINVAL;
    }
    if (kv->ov != NULL) {
        struct kv_batch *b = kv_batch_new();
        int rc;
        if (b == NULL) {
            return OZ_ENOMEM;
        }
        kv_batch_put(b, cf, key, klen, val, vlen);
        rc = overlay_write(kv, b, false, NULL);
        kv_batch_free(b);
        return rc;
    }
    rocksdb_put_cf(kv->db, kv->wopts, kv->cf[cf], key, klen, val, vlen, &err);
    if (err != NULL) {
        return take_err(&err, NULL, "put failed in", kv->path);
    }
    return 0;
}

int kv_delete(struct kv *kv, int cf, const void *key, size_t klen)
{
    char *err = NULL;

    if (!cf_ok(kv, cf)) {
        return OZ_EINVAL;
    }
    if (kv->ov != NULL) {
        struct kv_batch *b = kv_batch_new();
        int rc;
        if (b == NULL) {
            return OZ_ENOMEM;
        }
        kv_batch_delete(b, cf, key, klen);
        rc = overlay_write(kv, b, false, NULL);
        kv_batch_free(b);
        return rc;
    }
    rocksdb_delete_cf(kv->db, kv->wopts, kv->cf[cf], key, klen, &err);
    if (err != NULL) {
        return take_err(&err, NULL, "delete failed in", kv->path);
    }
    return 0;
}

/* ---- batches ----------------------------------------------------------- */

struct kv_batch *kv_batch_new(void)
{
    return calloc(1, sizeof(struct kv_batch));
}

void kv_batch_free(struct kv_batch *b)
{
    if (b == NULL) {
        return;
    }
    free(b->ops);
    free(b->data);
    free(b);
}

/* Appends n bytes to the batch data; the offset goes to *off. */
static int batch_append(struct kv_batch *b,
                        const void *p,
                        size_t n,
                        size_t *off)
{
    if (n > SIZE_MAX / 2 - b->len) {
        return OZ_ETOOBIG;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap == 0 ? 256 : b->cap;
        char *d;
        while (cap < b->len + n) {
            cap *= 2;
        }
        d = realloc(b->data, cap);
        if (d == NULL) {
            return OZ_ENOMEM;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    *off = b->len;
    b->len += n;
    return 0;
}

static void batch_add(struct kv_batch *b,
                      enum batch_op_type type,
                      int cf,
                      const void *key,
                      size_t klen,
                      const void *val,
                      size_t vlen)
{
    struct batch_op op = {.type = type, .cf = cf, .klen = klen, .vlen = vlen};
    int rc;

    if (b->failed != 0) {
        return;
    }
    if (b->n_ops == b->cap_ops) {
        size_t cap = b->cap_ops == 0 ? 16 : b->cap_ops * 2;
        struct batch_op *ops = realloc(b->ops, cap * sizeof(*ops));
        if (ops == NULL) {
            b->failed = OZ_ENOMEM;
            return;
        }
        b->ops = ops;
        b->cap_ops = cap;
    }
    rc = batch_append(b, key, klen, &op.key_off);
    if (rc == 0) {
        rc = batch_append(b, val, vlen, &op.val_off);
    }
    if (rc != 0) {
        b->failed = rc;
        return;
    }
    b->ops[b->n_ops++] = op;
}

void kv_batch_put(struct kv_batch *b,
                  int cf,
                  const void *key,
                  size_t klen,
                  const void *val,
                  size_t vlen)
{
    batch_add(b, BATCH_PUT, cf, key, klen, val, vlen);
}

void kv_batch_delete(struct kv_batch *b, int cf, const void *key, size_t klen)
{
    batch_add(b, BATCH_DELETE, cf, key, klen, NULL, 0);
}

size_t kv_batch_count(const struct kv_batch *b)
{
    return b->n_ops;
}

/* A batch that failed to build or names a family that is not open is
 * refused whole. */
static int check_batch(struct kv *kv, const struct kv_batch *b, char *errmsg)
{
    size_t i;

    if (b->failed != 0) {
        set_errmsg(errmsg,
                   "cannot write batch to '%s': building it failed: "
                   "%s",
                   kv->path, oz_strerror(b->failed));
        return b->failed;
    }
    for (i = 0; i < b->n_ops; i++) {
        if (!cf_ok(kv, b->ops[i].cf)) {
            set_errmsg(errmsg,
                       "cannot write batch to '%s': operation %zu names "
                       "column family %d, which is not open",
                       kv->path, i, b->ops[i].cf);
            return OZ_EINVAL;
        }
    }
    return 0;
}

int kv_write(struct kv *kv, struct kv_batch *b, bool sync, char *errmsg)
{
    rocksdb_writebatch_t *wb;
    char *err = NULL;
    size_t i;
    int rc;

    rc = check_batch(kv, b, errmsg);
    if (rc != 0) {
        return rc;
    }
    /* Fault point: a failed batch write, e.g. the finalize transaction
     * (DESIGN.md §6.2). Batches are the double buffer's unit, not one per
     * request, so the lookup cost does not matter. */
    rc = fault_hit("kv.write");
    if (rc != 0) {
        set_errmsg(errmsg, "cannot write batch to '%s': %s", kv->path,
                   oz_strerror(rc));
        return rc;
    }
    if (kv->ov != NULL) {
        return overlay_write(kv, b, sync, errmsg);
    }
    wb = rocksdb_writebatch_create();
    if (wb == NULL) {
        return OZ_ENOMEM;
    }
    for (i = 0; i < b->n_ops; i++) {
        const struct batch_op *op = &b->ops[i];
        if (op->type == BATCH_PUT) {
            rocksdb_writebatch_put_cf(wb, kv->cf[op->cf], b->data + op->key_off,
                                      op->klen, b->data + op->val_off,
                                      op->vlen);
        } else {
            rocksdb_writebatch_delete_cf(wb, kv->cf[op->cf],
                                         b->data + op->key_off, op->klen);
        }
    }
    rocksdb_write(kv->db, sync ? kv->wopts_sync : kv->wopts, wb, &err);
    rocksdb_writebatch_destroy(wb);
    if (err != NULL) {
        return take_err(&err, errmsg, "cannot write batch to", kv->path);
    }
    return 0;
}

/* ---- iterators --------------------------------------------------------- */

struct kv_iter *kv_iter_new(struct kv *kv, int cf)
{
    struct kv_iter *it;

    if (!cf_ok(kv, cf)) {
        return NULL;
    }
    it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return NULL;
    }
    it->kv = kv;
    it->ropts = rocksdb_readoptions_create();
    if (it->ropts == NULL) {
        free(it);
        return NULL;
    }
    if (kv->ov != NULL) {
        /* An empty overlay needs no lock: the DB snapshot alone is the
         * view, and later applies do not belong in it. */
        ov_read_lock(&kv->ov->lock);
        it->locked = kv->ov->frozen != NULL ||
                     rocksdb_writebatch_wi_count(kv->ov->cur) > 0;
        if (!it->locked) {
            ov_read_unlock(&kv->ov->lock);
        }
    }
    it->snap = rocksdb_create_snapshot(kv->db);
    rocksdb_readoptions_set_snapshot(it->ropts, it->snap);
    it->it = rocksdb_create_iterator_cf(kv->db, it->ropts, kv->cf[cf]);
    if (it->it != NULL && it->locked) {
        /* Newest first: cur over frozen over the DB. Each call takes over
         * (and later destroys) the iterator it wraps. */
        if (kv->ov->frozen != NULL) {
            it->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(
                kv->ov->frozen, it->it, kv->cf[cf]);
        }
        it->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(
            kv->ov->cur, it->it, kv->cf[cf]);
    }
    if (it->it == NULL) {
        if (it->locked) {
            ov_read_unlock(&kv->ov->lock);
        }
        rocksdb_release_snapshot(kv->db, it->snap);
        rocksdb_readoptions_destroy(it->ropts);
        free(it);
        return NULL;
    }
    atomic_fetch_add(&kv->n_iters, 1);
    return it;
}

void kv_iter_free(struct kv_iter *it)
{
    if (it == NULL) {
        return;
    }
    /* The iterator reads through the snapshot: destroy it first. */
    rocksdb_iter_destroy(it->it);
    if (it->snap != NULL) {
        rocksdb_release_snapshot(it->kv->db, it->snap);
    }
    rocksdb_readoptions_destroy(it->ropts);
    if (it->locked) {
        ov_read_unlock(&it->kv->ov->lock);
    }
    atomic_fetch_sub(&it->kv->n_iters, 1);
    free(it);
}

/* An iterator that stops on an error looks like the end; say so. */
static void check_iter(struct kv_iter *it)
{
    char *err = NULL;

    if (rocksdb_iter_valid(it->it)) {
        return;
    }
    rocksdb_iter_get_error(it->it, &err);
    if (err != NULL) {
        take_err(&err, NULL, "iteration stopped in", it->kv->path);
    }
}

void kv_iter_seek_first(struct kv_iter *it)
{
    rocksdb_iter_seek_to_first(it->it);
    check_iter(it);
}

void kv_iter_seek(struct kv_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek(it->it, key, klen);
    check_iter(it);
}

bool kv_iter_valid(const struct kv_iter *it)
{
    return rocksdb_iter_valid(it->it) != 0;
}

void kv_iter_next(struct kv_iter *it)
{
    if (!rocksdb_iter_valid(it->it)) {
        return;
    }
    rocksdb_iter_next(it->it);
    check_iter(it);
}

const void *kv_iter_key(const struct kv_iter *it, size_t *len)
{
    return rocksdb_iter_key(it->it, len);
}

const void *kv_iter_value(const struct kv_iter *it, size_t *len)
{
    return rocksdb_iter_value(it->it, len);
}

/* ---- checkpoints, sequence, layout version ----------------------------- */

int kv_checkpoint(struct kv *kv, const char *dir, char *errmsg)
{
    struct stat st;
    rocksdb_checkpoint_t *cp;
    char *err = NULL;
    int rc;

    if (stat(dir, &st) == 0 || errno != ENOENT) {
        set_errmsg(errmsg,
                   "cannot create checkpoint '%s': the target already "
                   "exists; remove it or choose a new directory",
                   dir);
        return OZ_EEXIST;
    }
    /* The checkpoint holds what readers of this kv see. */
    rc = kv_overlay_flush(kv, false, NULL, errmsg);
    if (rc != 0) {
        return rc;
    }
    rc = fault_hit("kv.checkpoint");
    if (rc != 0) {
        set_errmsg(errmsg, "cannot create checkpoint '%s' of '%s': %s", dir,
                   kv->path, oz_strerror(rc));
        return rc;
    }
    cp = rocksdb_checkpoint_object_create(kv->db, &err);
    if (err != NULL) {
        return take_err(&err, errmsg, "cannot checkpoint", kv->path);
    }
    /* 0: always flush the memtables, so the checkpoint needs no WAL. */
    rocksdb_checkpoint_create(cp, dir, 0, &err);
    rocksdb_checkpoint_object_destroy(cp);
    if (err != NULL) {
        rc = status_code(err);
        set_errmsg(errmsg, "cannot create checkpoint '%s' of '%s': %s", dir,
                   kv->path, err);
        rocksdb_free(err);
        err = NULL;
        return rc == OZ_EEXIST ? OZ_EEXIST : OZ_EIO;
    }
    return 0;
}

uint64_t kv_latest_sequence(struct kv *kv)
{
    return rocksdb_get_latest_sequence_number(kv->db);
}

int kv_get_layout_version(struct kv *kv, int *out)
{
    int cf = kv_cf(kv, KV_META_CF);
    void *val;
    size_t len;
    size_t i;
    long long v = 0;
    int rc;

    *out = 0;
    if (cf < 0) {
        return OZ_ENOTFOUND;
    }
    rc = kv_get(kv, cf, KV_LAYOUT_VERSION_KEY, strlen(KV_LAYOUT_VERSION_KEY),
                &val, &len);
    if (rc != 0) {
        return rc;
    }
    /* Decimal text, as Ozone stores it; anything else is damage. */
    for (i = 0; i < len && rc == 0; i++) {
        const char ch = ((const char *)val)[i];
        if (ch < '0' || ch > '9' || v > INT_MAX / 10) {
            rc = OZ_ECORRUPT;
        } else {
            v = v * 10 + (ch - '0');
        }
    }
    if (len == 0 || v > INT_MAX) {
        rc = OZ_ECORRUPT;
    }
    free(val);
    if (rc != 0) {
        log_error("kv: '%s' has a corrupt %s in %s", kv->path,
                  KV_LAYOUT_VERSION_KEY, KV_META_CF);
        return rc;
    }
    *out = (int)v;
    return 0;
}

void kv_batch_put_layout_version(struct kv *kv, struct kv_batch *b, int version)
{
    char text[16];
    int cf = kv_cf(kv, KV_META_CF);
    int n;

    if (cf < 0 || version < 0) {
        /* Read-only DB without the meta family, or a caller bug: the
         * batch fails as a whole at kv_write. */
        if (b->failed == 0) {
            b->failed = cf < 0 ? OZ_ENOTFOUND : OZ_EINVAL;
        }
        return;
    }
    n = snprintf(text, sizeof(text), "%d", version);
    kv_batch_put(b, cf, KV_LAYOUT_VERSION_KEY, strlen(KV_LAYOUT_VERSION_KEY),
                 text, (size_t)n);
}

/* ---- WAL updates (Recon's incremental sync) ---------------------------- */

void kv_updates_free(struct kv_update *u, size_t n)
{
    for (size_t i = 0; u != NULL && i < n; i++) {
        free(u[i].data);
    }
    free(u);
}

/* Copies one WAL batch into v[*n]; the caller checks order. */
static int update_push(struct kv_update **v,
                       size_t *n,
                       size_t *cap,
                       uint64_t seq,
                       rocksdb_writebatch_t *wb)
{
    size_t len = 0;
    const char *data = rocksdb_writebatch_data(wb, &len);
    int count = rocksdb_writebatch_count(wb);

    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct kv_update *nv = realloc(*v, nc * sizeof(*nv));
        if (nv == NULL) {
            return OZ_ENOMEM;
        }
        *v = nv;
        *cap = nc;
    }
    struct kv_update *u = &(*v)[*n];
    u->data = malloc(len ? len : 1);
    if (u->data == NULL) {
        return OZ_ENOMEM;
    }
    memcpy(u->data, data, len);
    u->len = len;
    u->sequence = seq;
    u->count = count < 0 ? 0 : (uint64_t)count;
    (*n)++;
    return 0;
}

int kv_updates_since(struct kv *kv,
                     uint64_t from,
                     uint64_t max_ops,
                     size_t max_bytes,
                     struct kv_update **out,
                     size_t *n,
                     char *errmsg)
{
    struct kv_update *v = NULL;
    size_t nv = 0, cap = 0, bytes = 0;
    uint64_t ops = 0, next = from + 1;
    rocksdb_wal_iterator_t *it;
    char *err = NULL;
    int rc = 0;

    *out = NULL;
    *n = 0;
    /* RocksDB answers "not yet written" for a sequence past the latest:
     * being up to date is not an error. */
    if (from >= rocksdb_get_latest_sequence_number(kv->db)) {
        return 0;
    }
    it = rocksdb_get_updates_since(kv->db, next, NULL, &err);
    if (err != NULL) {
        rc = take_err(&err, errmsg, "cannot read the WAL of", kv->path);
        return rc == OZ_ENOTFOUND ? OZ_ENOTFOUND : rc;
    }
    while (rc == 0 && rocksdb_wal_iter_valid(it)) {
        uint64_t seq = 0;
        rocksdb_writebatch_t *wb = rocksdb_wal_iter_get_batch(it, &seq);
        /* RocksDB silently starts at the oldest WAL it still has: a batch
         * that starts after the one we need means the ones between are
         * gone (measured on 7.8; see the header). */
        if (seq > next) {
            set_errmsg(errmsg,
                       "the WAL of '%s' no longer holds sequence %llu (the "
                       "oldest kept is %llu): take a checkpoint instead",
                       kv->path, (unsigned long long)next,
                       (unsigned long long)seq);
            rc = OZ_ENOTFOUND;
        } else {
            rc = update_push(&v, &nv, &cap, seq, wb);
            if (rc == 0) {
                uint64_t end = seq + v[nv - 1].count;
                next = end > next ? end : next;
                ops += v[nv - 1].count;
                bytes += v[nv - 1].len;
            }
        }
        rocksdb_writebatch_destroy(wb);
        if (rc != 0 || ops >= max_ops || bytes >= max_bytes) {
            break;
        }
        rocksdb_wal_iter_next(it);
    }
    if (rc == 0) {
        rocksdb_wal_iter_status(it, &err);
        if (err != NULL) {
            rc = take_err(&err, errmsg, "cannot read the WAL of", kv->path);
        }
    }
    rocksdb_wal_iter_destroy(it);
    if (rc == 0 && nv == 0) {
        /* The latest sequence is past from, yet nothing was found. */
        set_errmsg(errmsg,
                   "the WAL of '%s' no longer holds sequence %llu: take a "
                   "checkpoint instead",
                   kv->path, (unsigned long long)(from + 1));
        rc = OZ_ENOTFOUND;
    }
    if (rc != 0) {
        kv_updates_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

int kv_write_raw(struct kv *kv,
                 const void *data,
                 size_t len,
                 struct kv_batch *extra,
                 bool sync,
                 char *errmsg)
{
    rocksdb_writebatch_t *wb;
    char *err = NULL;
    int rc;

    if (kv->ov != NULL) {
        /* Raw batches bypass the overlay's ordering; only Recon's copy of
         * the OM DB takes them, and it has no overlay. */
        set_errmsg(errmsg,
                   "cannot apply a raw write batch to '%s': it has an "
                   "overlay; flush and write through kv_write instead",
                   kv->path);
        return OZ_ESTATE;
    }
    /* RocksDB's batch header: 8-byte sequence and 4-byte count. */
    if (len < 12) {
        set_errmsg(errmsg,
                   "cannot apply a write batch to '%s': %zu bytes is "
                   "too short to be one",
                   kv->path, len);
        return OZ_ECORRUPT;
    }
    if (extra != NULL) {
        if (extra->failed != 0) {
            set_errmsg(errmsg,
                       "cannot write batch to '%s': building it "
                       "failed: %s",
                       kv->path, oz_strerror(extra->failed));
            return extra->failed;
        }
        for (size_t i = 0; i < extra->n_ops; i++) {
            if (!cf_ok(kv, extra->ops[i].cf)) {
                set_errmsg(errmsg,
                           "cannot write batch to '%s': operation "
                           "%zu names a column family that is not open",
                           kv->path, i);
                return OZ_EINVAL;
            }
        }
    }
    rc = fault_hit("kv.write");
    if (rc != 0) {
        set_errmsg(errmsg, "cannot write batch to '%s': %s", kv->path,
                   oz_strerror(rc));
        return rc;
    }
    wb = rocksdb_writebatch_create_from(data, len);
    if (wb == NULL) {
        return OZ_ENOMEM;
    }
    for (size_t i = 0; extra != NULL && i < extra->n_ops; i++) {
        const struct batch_op *op = &extra->ops[i];
        if (op->type == BATCH_PUT) {
            rocksdb_writebatch_put_cf(wb, kv->cf[op->cf],
                                      extra->data + op->key_off, op->klen,
                                      extra->data + op->val_off, op->vlen);
        } else {
            rocksdb_writebatch_delete_cf(wb, kv->cf[op->cf],
                                         extra->data + op->key_off, op->klen);
        }
    }
    rocksdb_write(kv->db, sync ? kv->wopts_sync : kv->wopts, wb, &err);
    rocksdb_writebatch_destroy(wb);
    if (err != NULL) {
        rc = take_err(&err, errmsg, "cannot apply a write batch to", kv->path);
        /* A malformed batch or an unknown column family id. */
        return rc == OZ_EIO ? OZ_EIO : OZ_ECORRUPT;
    }
    return 0;
}

/* ---- overlay (kv.h "Overlay"; the top comment) ------------------------- */

/* kv_overlay_apply's tag for kv_write through an overlay: the batch keeps
 * the latest caller tag (kv.h reserves UINT64_MAX). */
#define KEEP_TAG UINT64_MAX

static rocksdb_writebatch_wi_t *new_wbwi(void)
{
    /* overwrite_keys: one index entry per key, the latest operation. */
    return rocksdb_writebatch_wi_create(0, 1);
}

int kv_overlay_enable(struct kv *kv, char *errmsg)
{
    struct kv_overlay *ov;

    if (kv->ov != NULL) {
        return 0;
    }
    if (kv->flags & KV_READ_ONLY) {
        set_errmsg(errmsg,
                   "cannot add an overlay to '%s': it is open read-only",
                   kv->path);
        return OZ_EINVAL;
    }
    ov = calloc(1, sizeof(*ov));
    if (ov == NULL) {
        return OZ_ENOMEM;
    }
    ov->cur = new_wbwi();
    ov->spare = new_wbwi();
    if (ov->cur == NULL || ov->spare == NULL) {
        if (ov->cur != NULL) {
            rocksdb_writebatch_wi_destroy(ov->cur);
        }
        if (ov->spare != NULL) {
            rocksdb_writebatch_wi_destroy(ov->spare);
        }
        free(ov);
        return OZ_ENOMEM;
    }
    ov_lock_init(&ov->lock);
    pthread_mutex_init(&ov->flush_mu, NULL);
    kv->ov = ov;
    return 0;
}

bool kv_overlay_enabled(const struct kv *kv)
{
    return kv->ov != NULL;
}

static void overlay_free(struct kv *kv)
{
    struct kv_overlay *ov = kv->ov;

    rocksdb_writebatch_wi_destroy(ov->cur);
    if (ov->frozen != NULL) {
        rocksdb_writebatch_wi_destroy(ov->frozen);
    }
    if (ov->spare != NULL) {
        rocksdb_writebatch_wi_destroy(ov->spare);
    }
    ov_lock_destroy(&ov->lock);
    pthread_mutex_destroy(&ov->flush_mu);
    free(ov);
    kv->ov = NULL;
}

static void stats_add(struct kv_overlay_stats *to,
                      const struct kv_overlay_stats *from)
{
    to->batches += from->batches;
    to->ops += from->ops;
    to->bytes += from->bytes;
    if (from->batches > 0) {
        to->last_tag = from->last_tag;
    }
}

/* Copies a value RocksDB allocated into our own NUL-terminated buffer. */
static int copy_value(const char *v, size_t n, void **val, size_t *vlen)
{
    char *copy = malloc(n + 1);

    if (copy == NULL) {
        return OZ_ENOMEM;
    }
    if (n > 0) {
        memcpy(copy, v, n);
    }
    copy[n] = '\0';
    *val = copy;
    *vlen = n;
    return 0;
}

/* cur over frozen over the DB, for one key: an iterator chain seeked to
 * it (only during a flush). Called with the read lock held. */
static int get_through_frozen(struct kv *kv,
                              int cf,
                              const void *key,
                              size_t klen,
                              void **val,
                              size_t *vlen)
{
    struct kv_overlay *ov = kv->ov;
    rocksdb_iterator_t *it;
    char *err = NULL;
    size_t kl = 0, vl = 0;
    const char *k;
    int rc = OZ_ENOTFOUND;

    it = rocksdb_create_iterator_cf(kv->db, kv->ropts, kv->cf[cf]);
    if (it == NULL) {
        return OZ_ENOMEM;
    }
    it = rocksdb_writebatch_wi_create_iterator_with_base_cf(ov->frozen, it,
                                                            kv->cf[cf]);
    it = rocksdb_writebatch_wi_create_iterator_with_base_cf(ov->cur, it,
                                                            kv->cf[cf]);
    rocksdb_iter_seek(it, key, klen);
    if (rocksdb_iter_valid(it)) {
        k = rocksdb_iter_key(it, &kl);
        if (kl == klen && memcmp(k, key, klen) == 0) {
            const char *v = rocksdb_iter_value(it, &vl);
            rc = copy_value(v, vl, val, vlen);
        }
    } else {
        rocksdb_iter_get_error(it, &err);
        if (err != NULL) {
            rc = take_err(&err, NULL, "get failed in", kv->path);
        }
    }
    rocksdb_iter_destroy(it);
    return rc;
}

static int overlay_get(struct kv *kv,
                       int cf,
                       const void *key,
                       size_t klen,
                       void **val,
                       size_t *vlen)
{
    struct kv_overlay *ov = kv->ov;
    char *err = NULL;
    char *v;
    size_t n = 0;
    int rc;

    ov_read_lock(&ov->lock);
    if (ov->frozen != NULL) {
        rc = get_through_frozen(kv, cf, key, klen, val, vlen);
        ov_read_unlock(&ov->lock);
        return rc;
    }
    v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(
        ov->cur, kv->db, kv->ropts, kv->cf[cf], key, klen, &n, &err);
    ov_read_unlock(&ov->lock);
    if (err != NULL) {
        return take_err(&err, NULL, "get failed in", kv->path);
    }
    if (v == NULL) {
        return OZ_ENOTFOUND;
    }
    rc = copy_value(v, n, val, vlen);
    rocksdb_free(v);
    return rc;
}

/* Adds b to cur; called with the write lock held. */
static void add_to_cur(struct kv *kv, const struct kv_batch *b)
{
    struct kv_overlay *ov = kv->ov;
    size_t before = 0, after = 0;

    rocksdb_writebatch_wi_data(ov->cur, &before);
    for (size_t i = 0; i < b->n_ops; i++) {
        const struct batch_op *op = &b->ops[i];
        if (op->type == BATCH_PUT) {
            rocksdb_writebatch_wi_put_cf(ov->cur, kv->cf[op->cf],
                                         b->data + op->key_off, op->klen,
                                         b->data + op->val_off, op->vlen);
        } else {
            rocksdb_writebatch_wi_delete_cf(ov->cur, kv->cf[op->cf],
                                            b->data + op->key_off, op->klen);
        }
    }
    rocksdb_writebatch_wi_data(ov->cur, &after);
    ov->cur_st.ops += b->n_ops;
    ov->cur_st.bytes += after - before;
}

int kv_overlay_apply(struct kv *kv,
                     const struct kv_batch *b,
                     uint64_t tag,
                     struct kv_overlay_stats *pending,
                     char *errmsg)
{
    struct kv_overlay *ov = kv->ov;
    int rc;

    if (pending != NULL) {
        memset(pending, 0, sizeof(*pending));
    }
    if (ov == NULL) {
        set_errmsg(errmsg, "'%s' has no overlay: call kv_overlay_enable",
                   kv->path);
        return OZ_ESTATE;
    }
    rc = check_batch(kv, b, errmsg);
    if (rc != 0) {
        return rc;
    }
    ov_write_lock(&ov->lock);
    add_to_cur(kv, b);
    ov->cur_st.batches++;
    if (tag == KEEP_TAG) {
        tag = ov->last_tag;
    }
    ov->cur_st.last_tag = tag;
    ov->last_tag = tag;
    if (pending != NULL) {
        if (ov->frozen != NULL) {
            *pending = ov->frozen_st;
        }
        stats_add(pending, &ov->cur_st);
    }
    ov_write_unlock(&ov->lock);
    return 0;
}

void kv_overlay_pending(struct kv *kv, struct kv_overlay_stats *out)
{
    struct kv_overlay *ov = kv->ov;

    memset(out, 0, sizeof(*out));
    if (ov == NULL) {
        return;
    }
    ov_read_lock(&ov->lock);
    if (ov->frozen != NULL) {
        *out = ov->frozen_st;
    }
    stats_add(out, &ov->cur_st);
    ov_read_unlock(&ov->lock);
}

/* Writes ov->frozen (set) with one rocksdb_write, then drops it. Called
 * with flush_mu held and the overlay lock not held. On failure frozen stays
 * (readers keep seeing it; the next flush retries it first). */
static int write_frozen(struct kv *kv,
                        bool sync,
                        struct kv_overlay_stats *done,
                        char *errmsg)
{
    struct kv_overlay *ov = kv->ov;
    char *err = NULL;
    int rc;

    rc = fault_hit("kv.overlay.flush");
    if (rc != 0) {
        set_errmsg(errmsg, "cannot flush the overlay of '%s': %s", kv->path,
                   oz_strerror(rc));
        return rc;
    }
    /* Nobody writes frozen: reading it here without the lock is safe. */
    rocksdb_write_writebatch_wi(kv->db, sync ? kv->wopts_sync : kv->wopts,
                                ov->frozen, &err);
    if (err != NULL) {
        return take_err(&err, errmsg, "cannot flush the overlay of", kv->path);
    }
    ov_write_lock(&ov->lock);
    stats_add(done, &ov->frozen_st);
    rocksdb_writebatch_wi_clear(ov->frozen);
    if (ov->spare == NULL) {
        ov->spare = ov->frozen;
    } else {
        rocksdb_writebatch_wi_destroy(ov->frozen);
    }
    ov->frozen = NULL;
    memset(&ov->frozen_st, 0, sizeof(ov->frozen_st));
    ov_write_unlock(&ov->lock);
    return 0;
}

int kv_overlay_flush(struct kv *kv,
                     bool sync,
                     struct kv_overlay_stats *flushed,
                     char *errmsg)
{
    struct kv_overlay *ov = kv->ov;
    struct kv_overlay_stats done = {0, 0, 0, 0};
    int rc = 0;

    if (flushed != NULL) {
        memset(flushed, 0, sizeof(*flushed));
    }
    if (ov == NULL) {
        return 0;
    }
    pthread_mutex_lock(&ov->flush_mu);
    /* A batch left by a failed flush goes first: it is older. */
    if (ov->frozen != NULL) {
        rc = write_frozen(kv, sync, &done, errmsg);
    }
    if (rc == 0) {
        bool any;
        ov_write_lock(&ov->lock);
        any = rocksdb_writebatch_wi_count(ov->cur) > 0;
        if (any) {
            ov->frozen = ov->cur;
            ov->frozen_st = ov->cur_st;
            ov->cur = ov->spare != NULL ? ov->spare : new_wbwi();
            ov->spare = NULL;
            memset(&ov->cur_st, 0, sizeof(ov->cur_st));
            if (ov->cur == NULL) {
                /* Keep the overlay usable: undo the swap. */
                ov->cur = ov->frozen;
                ov->cur_st = ov->frozen_st;
                ov->frozen = NULL;
                memset(&ov->frozen_st, 0, sizeof(ov->frozen_st));
                rc = OZ_ENOMEM;
                any = false;
            }
        } else if (ov->cur_st.batches > 0) {
            /* Applies that changed nothing count as flushed. */
            stats_add(&done, &ov->cur_st);
            memset(&ov->cur_st, 0, sizeof(ov->cur_st));
        }
        ov_write_unlock(&ov->lock);
        if (any) {
            rc = write_frozen(kv, sync, &done, errmsg);
        } else if (rc == 0 && sync && done.batches == 0) {
            /* Nothing pending, but the caller wants what was flushed
             * before (without fsync) to be durable too. */
            char *err = NULL;
            rocksdb_flush_wal(kv->db, 1, &err);
            if (err != NULL) {
                rc = take_err(&err, errmsg, "cannot sync the WAL of", kv->path);
            }
        }
    }
    pthread_mutex_unlock(&ov->flush_mu);
    if (flushed != NULL) {
        *flushed = done;
    }
    return rc;
}

static int overlay_write(struct kv *kv,
                         struct kv_batch *b,
                         bool sync,
                         char *errmsg)
{
    int rc;

    /* The overlay holds older applies: b goes after them (keeping the
     * latest tag), and the flush writes them all in order. */
    rc = kv_overlay_apply(kv, b, KEEP_TAG, NULL, errmsg);
    if (rc == 0) {
        rc = kv_overlay_flush(kv, sync, NULL, errmsg);
    }
    return rc;
}
