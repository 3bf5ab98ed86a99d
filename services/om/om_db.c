/* The OM tables: key layout, value codec and reads with Ozone's result
 * codes (DESIGN.md §7). Values are om.proto messages so that Recon and a
 * future OM read the same bytes; table keys follow Ozone's
 * "/volume/bucket/key" layout so listing is a prefix scan in key order. */
#include "om_state.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const char *const om_cf_names[OM_N_CFS] = {"volumeTable", "bucketTable",
                                           "keyTable", "openKeyTable"};

int om_init(struct om *om, struct kv *kv, char *errmsg)
{
    memset(om, 0, sizeof(*om));
    om->kv = kv;
    for (int i = 0; i < OM_TABLE_COUNT; i++) {
        const char *name = i == OM_META_TABLE ? KV_META_CF : om_cf_names[i];
        int cf = kv_cf(kv, name);
        if (cf < 0) {
            oz_errmsg_printf(errmsg,
                             "OM metadata DB has no table '%s'; it was not "
                             "created by an OM",
                             name);
            om->kv = NULL;
            return OZ_ENOTFOUND;
        }
        om->cf[i] = cf;
    }
    if (om_read_applied_index(om, &om->applied_index) != 0) {
        oz_errmsg_printf(errmsg,
                         "OM metadata DB has a corrupt '%s' entry; restore "
                         "the OM from a checkpoint",
                         OM_TRANSACTION_INFO_KEY);
        om->kv = NULL; /* om_release() has nothing to release */
        return OZ_ECORRUPT;
    }
    pthread_mutex_init(&om->write_lock, NULL);
    return 0;
}

void om_release(struct om *om)
{
    if (om->kv != NULL) {
        pthread_mutex_destroy(&om->write_lock);
        om->kv = NULL;
    }
}

void om_result_set(struct om_result *res,
                   Ozone__ResultCode code,
                   const char *fmt,
                   ...)
{
    va_list ap;

    res->code = code;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
}

/* ---- applied index: Ozone's TransactionInfo "<term>#<index>" ---- */

int om_read_applied_index(struct om *om, uint64_t *out)
{
    uint64_t term = 0;

    return om_read_transaction_info(om, &term, out);
}

int om_read_transaction_info(struct om *om, uint64_t *term, uint64_t *out)
{
    void *val = NULL;
    size_t len = 0;
    int rc;

    *out = 0;
    *term = 0;
    rc = kv_get(om->kv, om->cf[OM_META_TABLE], OM_TRANSACTION_INFO_KEY,
                strlen(OM_TRANSACTION_INFO_KEY), &val, &len);
    if (rc == OZ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    /* kv_get NUL-terminates past len. */
    const char *hash = memchr(val, '#', len);
    char *end = NULL, *tend = NULL;
    unsigned long long index = 0, t = 0;
    if (hash != NULL && hash[1] >= '0' && hash[1] <= '9') {
        index = strtoull(hash + 1, &end, 10);
    }
    if (hash != NULL && hash != (const char *)val &&
        ((const char *)val)[0] >= '0' && ((const char *)val)[0] <= '9') {
        t = strtoull(val, &tend, 10);
    }
    if (end == NULL || end != (char *)val + len || tend != hash) {
        free(val);
        return OZ_ECORRUPT;
    }
    free(val);
    *out = index;
    *term = t;
    return 0;
}

/* ---- table keys ---- */

static size_t join_key(char *out, const char *const *parts, size_t n)
{
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(parts[i]);
        if (len + 1 + pl >= OM_DB_KEY_MAX) {
            out[0] = '\0';
            return 0;
        }
        out[len++] = '/';
        memcpy(out + len, parts[i], pl);
        len += pl;
    }
    out[len] = '\0';
    return len;
}

size_t om_volume_key(char *out, const char *vol)
{
    const char *parts[] = {vol};
    return join_key(out, parts, 1);
}

size_t om_bucket_key(char *out, const char *vol, const char *bucket)
{
    const char *parts[] = {vol, bucket};
    return join_key(out, parts, 2);
}

size_t om_key_key(char *out,
                  const char *vol,
                  const char *bucket,
                  const char *key)
{
    const char *parts[] = {vol, bucket, key};
    return join_key(out, parts, 3);
}

size_t om_open_key_key(char *out,
                       const char *vol,
                       const char *bucket,
                       const char *key,
                       uint64_t client_id)
{
    char id[24];
    const char *parts[] = {vol, bucket, key, id};

    snprintf(id, sizeof(id), "%" PRIu64, client_id);
    return join_key(out, parts, 4);
}

/* ---- values ---- */

static void *xalloc(ProtobufCAllocator *alloc, size_t size)
{
    if (alloc == NULL) {
        return calloc(1, size);
    }
    void *p = alloc->alloc(alloc->allocator_data, size);
    if (p != NULL) {
        memset(p, 0, size);
    }
    return p;
}

int om_db_get(struct om *om,
              enum om_table t,
              const char *key,
              size_t klen,
              const ProtobufCMessageDescriptor *desc,
              ProtobufCAllocator *alloc,
              ProtobufCMessage **out)
{
    void *val = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    rc = kv_get(om->kv, om->cf[t], key, klen, &val, &len);
    if (rc != 0) {
        return rc;
    }
    *out = protobuf_c_message_unpack(desc, alloc, len, val);
    free(val);
    if (*out == NULL) {
        log_error("undecodable %s value for '%.*s' in %s", desc->name,
                  (int)klen, key, om_cf_names[t]);
        return OZ_ECORRUPT;
    }
    return 0;
}

void om_db_put(struct om *om,
               struct kv_batch *b,
               enum om_table t,
               const char *key,
               size_t klen,
               const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t small[512];
    uint8_t *buf = len <= sizeof(small) ? small : malloc(len);

    if (buf == NULL) {
        /* DESIGN.md has no degraded mode for an OM without memory. */
        log_error("out of memory encoding a %zu-byte %s; stopping", len,
                  msg->descriptor->name);
        abort();
    }
    protobuf_c_message_pack(msg, buf);
    kv_batch_put(b, om->cf[t], key, klen, buf, len);
    if (buf != small) {
        free(buf);
    }
}

int om_db_has_prefix(struct om *om,
                     enum om_table t,
                     const char *prefix,
                     size_t plen)
{
    struct kv_iter *it = kv_iter_new(om->kv, om->cf[t]);
    int found = 0;

    if (it == NULL) {
        return OZ_ENOMEM;
    }
    kv_iter_seek(it, prefix, plen);
    if (kv_iter_valid(it)) {
        size_t klen = 0;
        const void *k = kv_iter_key(it, &klen);
        found = klen >= plen && memcmp(k, prefix, plen) == 0;
    }
    kv_iter_free(it);
    return found;
}

void om_msg_free(ProtobufCMessage *msg)
{
    if (msg != NULL) {
        protobuf_c_message_free_unpacked(msg, NULL);
    }
}

/* ---- reads with result codes ---- */

/* Maps a storage failure to INTERNAL_ERROR with the table named. */
static Ozone__ResultCode storage_error(struct om_result *res,
                                       int rc,
                                       const char *what,
                                       const char *key)
{
    om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                  "cannot read %s '%s' from the OM metadata DB: %s", what, key,
                  oz_strerror(rc));
    return res->code;
}

Ozone__ResultCode om_get_volume(struct om *om,
                                const char *vol,
                                ProtobufCAllocator *alloc,
                                Ozone__Om__VolumeInfo **out,
                                struct om_result *res)
{
    char k[OM_DB_KEY_MAX];
    size_t klen = om_volume_key(k, vol);
    ProtobufCMessage *m = NULL;
    int rc;

    *out = NULL;
    rc = klen == 0 ? OZ_ENOTFOUND
                   : om_db_get(om, OM_VOLUME_TABLE, k, klen,
                               &ozone__om__volume_info__descriptor, alloc, &m);
    if (rc == OZ_ENOTFOUND) {
        om_result_set(res, OZONE__RESULT_CODE__VOLUME_NOT_FOUND,
                      "volume '%s' not found; create it first or check the "
                      "name",
                      vol);
        return res->code;
    }
    if (rc != 0) {
        return storage_error(res, rc, "volume", vol);
    }
    *out = (Ozone__Om__VolumeInfo *)m;
    res->code = OZONE__RESULT_CODE__OK;
    return res->code;
}

Ozone__ResultCode om_get_bucket(struct om *om,
                                const char *vol,
                                const char *bucket,
                                ProtobufCAllocator *alloc,
                                Ozone__Om__BucketInfo **out,
                                struct om_result *res)
{
    char k[OM_DB_KEY_MAX];
    size_t klen = om_bucket_key(k, vol, bucket);
    ProtobufCMessage *m = NULL;
    int rc;

    *out = NULL;
    rc = klen == 0 ? OZ_ENOTFOUND
                   : om_db_get(om, OM_BUCKET_TABLE, k, klen,
                               &ozone__om__bucket_info__descriptor, alloc, &m);
    if (rc == OZ_ENOTFOUND) {
        /* Ozone names the missing volume first. */
        Ozone__Om__VolumeInfo *v = NULL;
        if (om_get_volume(om, vol, NULL, &v, res) != OZONE__RESULT_CODE__OK) {
            return res->code;
        }
        om_msg_free(&v->base);
        om_result_set(res, OZONE__RESULT_CODE__BUCKET_NOT_FOUND,
                      "bucket '%s' not found in volume '%s'; create it first "
                      "or check the name",
                      bucket, vol);
        return res->code;
    }
    if (rc != 0) {
        return storage_error(res, rc, "bucket", k);
    }
    *out = (Ozone__Om__BucketInfo *)m;
    res->code = OZONE__RESULT_CODE__OK;
    return res->code;
}

/* Key or open key: KEY_NOT_FOUND after checking volume and bucket. */
static Ozone__ResultCode get_key_in(struct om *om,
                                    enum om_table t,
                                    const char *vol,
                                    const char *bucket,
                                    const char *key,
                                    const char *k,
                                    size_t klen,
                                    ProtobufCAllocator *alloc,
                                    Ozone__Om__KeyInfo **out,
                                    struct om_result *res)
{
    ProtobufCMessage *m = NULL;
    int rc;

    *out = NULL;
    rc = klen == 0 ? OZ_ENOTFOUND
                   : om_db_get(om, t, k, klen, &ozone__om__key_info__descriptor,
                               alloc, &m);
    if (rc == OZ_ENOTFOUND) {
        Ozone__Om__BucketInfo *b = NULL;
        if (om_get_bucket(om, vol, bucket, NULL, &b, res) !=
            OZONE__RESULT_CODE__OK) {
            return res->code;
        }
        om_msg_free(&b->base);
        res->code = OZONE__RESULT_CODE__KEY_NOT_FOUND;
        return res->code;
    }
    if (rc != 0) {
        return storage_error(res, rc, "key", k);
    }
    *out = (Ozone__Om__KeyInfo *)m;
    res->code = OZONE__RESULT_CODE__OK;
    return res->code;
}

Ozone__ResultCode om_get_key(struct om *om,
                             const char *vol,
                             const char *bucket,
                             const char *key,
                             ProtobufCAllocator *alloc,
                             Ozone__Om__KeyInfo **out,
                             struct om_result *res)
{
    char k[OM_DB_KEY_MAX];
    size_t klen = om_key_key(k, vol, bucket, key);

    if (get_key_in(om, OM_KEY_TABLE, vol, bucket, key, k, klen, alloc, out,
                   res) == OZONE__RESULT_CODE__KEY_NOT_FOUND) {
        om_result_set(res, OZONE__RESULT_CODE__KEY_NOT_FOUND,
                      "key '%s' not found in bucket '/%s/%s'", key, vol,
                      bucket);
    }
    return res->code;
}

Ozone__ResultCode om_get_open_key(struct om *om,
                                  const char *vol,
                                  const char *bucket,
                                  const char *key,
                                  uint64_t client_id,
                                  ProtobufCAllocator *alloc,
                                  Ozone__Om__KeyInfo **out,
                                  struct om_result *res)
{
    char k[OM_DB_KEY_MAX];
    size_t klen = om_open_key_key(k, vol, bucket, key, client_id);

    if (get_key_in(om, OM_OPEN_KEY_TABLE, vol, bucket, key, k, klen, alloc, out,
                   res) == OZONE__RESULT_CODE__KEY_NOT_FOUND) {
        om_result_set(res, OZONE__RESULT_CODE__KEY_NOT_FOUND,
                      "key '/%s/%s/%s' has no open write session %" PRIu64
                      "; it was committed already or never created: create "
                      "the key again",
                      vol, bucket, key, client_id);
    }
    return res->code;
}

/* ---- listing ---- */

/* Positions it at the first entry after parent+start_after that starts
 * with parent+prefix. */
static void list_seek(struct kv_iter *it,
                      const char *from,
                      size_t flen,
                      const char *after,
                      size_t alen)
{
    size_t common = alen < flen ? alen : flen;
    int cmp = alen == 0 ? -1 : memcmp(after, from, common);

    /* Start at the larger of the two; start_after itself is excluded. */
    if (cmp > 0 || (cmp == 0 && alen >= flen)) {
        kv_iter_seek(it, after, alen);
        size_t klen = 0;
        const void *k = kv_iter_valid(it) ? kv_iter_key(it, &klen) : NULL;
        if (k != NULL && klen == alen && memcmp(k, after, alen) == 0) {
            kv_iter_next(it);
        }
        return;
    }
    kv_iter_seek(it, from, flen);
}

int om_list(struct om *om,
            enum om_table t,
            const char *parent,
            const char *prefix,
            const char *start_after,
            uint32_t max,
            const ProtobufCMessageDescriptor *desc,
            ProtobufCAllocator *alloc,
            ProtobufCMessage ***items,
            size_t *n_items)
{
    char from[OM_DB_KEY_MAX], after[OM_DB_KEY_MAX];
    int flen = snprintf(from, sizeof(from), "%s%s", parent, prefix);
    int alen = 0;
    size_t cap = (max == 0 || max > OM_LIST_MAX) ? OM_LIST_MAX : max;
    size_t n = 0;
    int rc = 0;

    *items = NULL;
    *n_items = 0;
    if (start_after[0] != '\0') {
        alen = snprintf(after, sizeof(after), "%s%s", parent, start_after);
    }
    if (flen < 0 || (size_t)flen >= sizeof(from) || alen < 0 ||
        (size_t)alen >= sizeof(after)) {
        return OZ_ETOOBIG;
    }
    ProtobufCMessage **arr = xalloc(alloc, cap * sizeof(*arr));
    struct kv_iter *it = kv_iter_new(om->kv, om->cf[t]);
    if (arr == NULL || it == NULL) {
        rc = OZ_ENOMEM;
        goto out;
    }
    list_seek(it, from, (size_t)flen, after, (size_t)alen);
    for (; n < cap && kv_iter_valid(it); kv_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const char *k = kv_iter_key(it, &klen);
        if (klen < (size_t)flen || memcmp(k, from, (size_t)flen) != 0) {
            break;
        }
        const void *v = kv_iter_value(it, &vlen);
        arr[n] = protobuf_c_message_unpack(desc, alloc, vlen, v);
        if (arr[n] == NULL) {
            log_error("undecodable %s value for '%.*s' in %s", desc->name,
                      (int)klen, k, om_cf_names[t]);
            rc = OZ_ECORRUPT;
            goto out;
        }
        n++;
    }
out:
    kv_iter_free(it);
    if (rc != 0 && alloc == NULL && arr != NULL) {
        for (size_t i = 0; i < n; i++) {
            om_msg_free(arr[i]);
        }
        free(arr);
        arr = NULL;
        n = 0;
    }
    if (rc == 0) {
        *items = arr;
        *n_items = n;
    }
    return rc;
}
