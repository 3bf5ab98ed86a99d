/* The one way the OM tables change: om_submit() and the pure om_apply()
 * (DESIGN.md §8, §8.1). Each apply_* function checks Ozone's rules against
 * the current tables and adds its changes to the batch; none reads the
 * clock, configuration or local files: time and every other
 * non-deterministic value come in the op, decided by the handler. */
#include "om_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "log.h"
#include "om_names.h"
#include "om_upgrade.h"

/* Blocks one key may have; 4096 blocks of 256 MB make 1 TB. */
#define OM_MAX_KEY_BLOCKS 4096

/* Ozone's OmUtils.getObjectIdFromTxId: the low 8 bits leave room for
 * several objects created by one transaction. */
static uint64_t object_id(uint64_t index)
{
    return index << 8;
}

static bool valid_factor(Ozone__Hdds__ReplicationFactor f)
{
    return f == OZONE__HDDS__REPLICATION_FACTOR__ONE ||
           f == OZONE__HDDS__REPLICATION_FACTOR__THREE;
}

/* Bytes a key takes on datanodes: Ozone's bucket usedBytes counts
 * replicas. */
static uint64_t replicated_size(const Ozone__Om__KeyInfo *k)
{
    return k->data_size * (valid_factor(k->replication) ? k->replication : 1);
}

static uint64_t sub_floor0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* Names are checked again at apply: an op is a self-contained input. */
static bool check_names(const char *vol,
                        const char *bucket,
                        const char *key,
                        struct om_result *res)
{
    Ozone__ResultCode c = om_check_resource_name(
        OM_NAME_VOLUME, vol, vol ? strlen(vol) : 0, res->message);
    if (c == OZONE__RESULT_CODE__OK && bucket != NULL) {
        c = om_check_resource_name(OM_NAME_BUCKET, bucket, strlen(bucket),
                                   res->message);
    }
    if (c == OZONE__RESULT_CODE__OK && key != NULL) {
        c = om_check_key_name(key, strlen(key), res->message);
    }
    res->code = c;
    return c == OZONE__RESULT_CODE__OK;
}

static bool check_empty(struct om *om,
                        enum om_table t,
                        const char *prefix,
                        struct om_result *res)
{
    int found = om_db_has_prefix(om, t, prefix, strlen(prefix));

    if (found < 0) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot scan %s: %s", om_cf_names[t], oz_strerror(found));
        return false;
    }
    return found == 0;
}

/* ---- volumes ---- */

static void apply_create_volume(struct om *om,
                                const Ozone__Om__OmWriteOp *op,
                                struct kv_batch *b,
                                struct om_result *res)
{
    const Ozone__Om__VolumeInfo *in = op->create_volume->volume;
    char k[OM_DB_KEY_MAX];
    Ozone__Om__VolumeInfo *old = NULL;

    if (in == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "create volume request has no volume; name one");
        return;
    }
    if (!check_names(in->name, NULL, NULL, res)) {
        return;
    }
    if (om_get_volume(om, in->name, NULL, &old, res) ==
        OZONE__RESULT_CODE__OK) {
        om_msg_free(&old->base);
        om_result_set(res, OZONE__RESULT_CODE__VOLUME_ALREADY_EXISTS,
                      "volume '%s' already exists; choose another name",
                      in->name);
        return;
    }
    if (res->code != OZONE__RESULT_CODE__VOLUME_NOT_FOUND) {
        return;
    }
    Ozone__Om__VolumeInfo v = *in;
    v.creation_time = op->time_ms;
    v.modification_time = op->time_ms;
    v.object_id = object_id(op->index);
    v.update_id = op->index;
    om_db_put(om, b, OM_VOLUME_TABLE, k, om_volume_key(k, in->name), &v.base);
    res->code = OZONE__RESULT_CODE__OK;
    log_info("created volume '%s' (owner '%s', index %" PRIu64 ")", v.name,
             v.owner, op->index);
}

static void apply_delete_volume(struct om *om,
                                const Ozone__Om__OmWriteOp *op,
                                struct kv_batch *b,
                                struct om_result *res)
{
    const char *vol = op->delete_volume->volume;
    Ozone__Om__VolumeInfo *v = NULL;
    char k[OM_DB_KEY_MAX], prefix[OM_DB_KEY_MAX + 1];

    if (!check_names(vol, NULL, NULL, res) ||
        om_get_volume(om, vol, NULL, &v, res) != OZONE__RESULT_CODE__OK) {
        return;
    }
    om_msg_free(&v->base);
    size_t klen = om_volume_key(k, vol);
    snprintf(prefix, sizeof(prefix), "%s/", k);
    if (!check_empty(om, OM_BUCKET_TABLE, prefix, res)) {
        if (res->code == OZONE__RESULT_CODE__OK) {
            om_result_set(res, OZONE__RESULT_CODE__VOLUME_NOT_EMPTY,
                          "volume '%s' is not empty: it has buckets; delete "
                          "them first",
                          vol);
        }
        return;
    }
    kv_batch_delete(b, om->cf[OM_VOLUME_TABLE], k, klen);
    log_info("deleted volume '%s' (index %" PRIu64 ")", vol, op->index);
}

/* ---- buckets ---- */

static void apply_create_bucket(struct om *om,
                                const Ozone__Om__OmWriteOp *op,
                                struct kv_batch *b,
                                struct om_result *res)
{
    const Ozone__Om__BucketInfo *in = op->create_bucket->bucket;
    Ozone__Om__VolumeInfo *v = NULL;
    Ozone__Om__BucketInfo *old = NULL;
    char k[OM_DB_KEY_MAX];

    if (in == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "create bucket request has no bucket; name one");
        return;
    }
    if (!check_names(in->volume, in->name, NULL, res) ||
        om_get_volume(om, in->volume, NULL, &v, res) !=
            OZONE__RESULT_CODE__OK) {
        return;
    }
    if (!valid_factor(in->replication)) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "invalid replication %d for bucket '%s'; use ONE or "
                      "THREE",
                      (int)in->replication, in->name);
    } else if (om_get_bucket(om, in->volume, in->name, NULL, &old, res) ==
               OZONE__RESULT_CODE__OK) {
        om_msg_free(&old->base);
        om_result_set(res, OZONE__RESULT_CODE__BUCKET_ALREADY_EXISTS,
                      "bucket '%s' already exists in volume '%s'; choose "
                      "another name",
                      in->name, in->volume);
    } else if (res->code == OZONE__RESULT_CODE__BUCKET_NOT_FOUND) {
        Ozone__Om__BucketInfo nb = *in;
        nb.creation_time = op->time_ms;
        nb.modification_time = op->time_ms;
        nb.object_id = object_id(op->index);
        nb.update_id = op->index;
        nb.used_bytes = 0;
        nb.used_namespace = 0;
        if (nb.owner == NULL || nb.owner[0] == '\0') {
            nb.owner = v->owner; /* Ozone: the volume owner by default. */
        }
        om_db_put(om, b, OM_BUCKET_TABLE, k,
                  om_bucket_key(k, in->volume, in->name), &nb.base);
        res->code = OZONE__RESULT_CODE__OK;
        log_info("created bucket '/%s/%s' (replication %s, index %" PRIu64 ")",
                 nb.volume, nb.name,
                 nb.replication == OZONE__HDDS__REPLICATION_FACTOR__ONE
                     ? "ONE"
                     : "THREE",
                 op->index);
    }
    om_msg_free(&v->base);
}

static void apply_delete_bucket(struct om *om,
                                const Ozone__Om__OmWriteOp *op,
                                struct kv_batch *b,
                                struct om_result *res)
{
    const Ozone__Om__DeleteBucketRequest *r = op->delete_bucket;
    Ozone__Om__BucketInfo *bk = NULL;
    char k[OM_DB_KEY_MAX], prefix[OM_DB_KEY_MAX + 1];

    if (!check_names(r->volume, r->bucket, NULL, res) ||
        om_get_bucket(om, r->volume, r->bucket, NULL, &bk, res) !=
            OZONE__RESULT_CODE__OK) {
        return;
    }
    om_msg_free(&bk->base);
    size_t klen = om_bucket_key(k, r->volume, r->bucket);
    snprintf(prefix, sizeof(prefix), "%s/", k);
    if (!check_empty(om, OM_KEY_TABLE, prefix, res)) {
        if (res->code == OZONE__RESULT_CODE__OK) {
            om_result_set(res, OZONE__RESULT_CODE__BUCKET_NOT_EMPTY,
                          "bucket '/%s/%s' is not empty: it has keys; delete "
                          "them first",
                          r->volume, r->bucket);
        }
        return;
    }
    kv_batch_delete(b, om->cf[OM_BUCKET_TABLE], k, klen);
    log_info("deleted bucket '/%s/%s' (index %" PRIu64 ")", r->volume,
             r->bucket, op->index);
}

/* ---- keys ---- */

static bool check_location(const Ozone__Om__KeyLocation *l,
                           struct om_result *res)
{
    if (l == NULL || l->block_id == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "key location without a block id; send the block ids "
                      "OM allocated");
        return false;
    }
    return true;
}

static void apply_open_key(struct om *om,
                           const Ozone__Om__OmWriteOp *op,
                           struct kv_batch *b,
                           struct om_result *res)
{
    const Ozone__Om__OmOpenKeyOp *o = op->open_key;
    const Ozone__Om__KeyInfo *in = o->key;
    Ozone__Om__BucketInfo *bk = NULL;
    Ozone__Om__KeyInfo *old = NULL;
    char k[OM_DB_KEY_MAX];

    if (in == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "open key operation has no key");
        return;
    }
    if (!check_names(in->volume, in->bucket, in->name, res) ||
        om_get_bucket(om, in->volume, in->bucket, NULL, &bk, res) !=
            OZONE__RESULT_CODE__OK) {
        return;
    }
    om_msg_free(&bk->base);
    if (!valid_factor(in->replication)) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "invalid replication %d for key '%s'; use ONE or THREE",
                      (int)in->replication, in->name);
        return;
    }
    for (size_t i = 0; i < in->n_locations; i++) {
        if (!check_location(in->locations[i], res)) {
            return;
        }
    }
    if (om_get_open_key(om, in->volume, in->bucket, in->name, o->client_id,
                        NULL, &old, res) == OZONE__RESULT_CODE__OK) {
        om_msg_free(&old->base);
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "client id %" PRIu64
                      " of key '%s' is already in use; "
                      "create the key again",
                      o->client_id, in->name);
        return;
    }
    if (res->code != OZONE__RESULT_CODE__KEY_NOT_FOUND) {
        return;
    }
    /* OM KEY_TAGS (102), om_upgrade.h. */
    if (in->n_tags > 0 && (!om_feature_allowed(om, VERSION_OM_KEY_TAGS,
                                               "CreateKey with tags", res) ||
                           !om_tags_valid(in->tags, in->n_tags, res))) {
        return;
    }
    Ozone__Om__KeyInfo nk = *in;
    nk.creation_time = op->time_ms;
    nk.modification_time = op->time_ms;
    nk.object_id = object_id(op->index);
    nk.update_id = op->index;
    om_db_put(
        om, b, OM_OPEN_KEY_TABLE, k,
        om_open_key_key(k, in->volume, in->bucket, in->name, o->client_id),
        &nk.base);
    res->code = OZONE__RESULT_CODE__OK;
    log_debug("opened key '/%s/%s/%s' session %" PRIu64 " (index %" PRIu64 ")",
              in->volume, in->bucket, in->name, o->client_id, op->index);
}

static void apply_add_block(struct om *om,
                            const Ozone__Om__OmWriteOp *op,
                            struct kv_batch *b,
                            struct om_result *res)
{
    const Ozone__Om__OmAddBlockOp *a = op->add_block;
    Ozone__Om__KeyInfo *open = NULL;
    char k[OM_DB_KEY_MAX];

    if (!check_names(a->volume, a->bucket, a->key, res) ||
        !check_location(a->location, res) ||
        om_get_open_key(om, a->volume, a->bucket, a->key, a->client_id, NULL,
                        &open, res) != OZONE__RESULT_CODE__OK) {
        return;
    }
    if (open->n_locations >= OM_MAX_KEY_BLOCKS) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "key '%s' already has %zu blocks, the limit; commit "
                      "it and write the rest to another key",
                      a->key, open->n_locations);
        om_msg_free(&open->base);
        return;
    }
    Ozone__Om__KeyLocation **locs =
        malloc((open->n_locations + 1) * sizeof(*locs));
    if (locs == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "out of memory adding a block to key '%s'", a->key);
        om_msg_free(&open->base);
        return;
    }
    memcpy(locs, open->locations, open->n_locations * sizeof(*locs));
    locs[open->n_locations] = a->location;
    Ozone__Om__KeyInfo nk = *open;
    nk.locations = locs;
    nk.n_locations = open->n_locations + 1;
    nk.modification_time = op->time_ms;
    nk.update_id = op->index;
    om_db_put(om, b, OM_OPEN_KEY_TABLE, k,
              om_open_key_key(k, a->volume, a->bucket, a->key, a->client_id),
              &nk.base);
    free(locs);
    om_msg_free(&open->base);
    res->code = OZONE__RESULT_CODE__OK;
}

static bool same_block(const Ozone__Hdds__BlockID *a,
                       const Ozone__Hdds__BlockID *b)
{
    return a->container_id == b->container_id && a->local_id == b->local_id;
}

/* Fills out[i] (shallow copies, pipelines borrowed from the session) with
 * the client's locations after checking them against the session: every
 * block was allocated to it and is named once, each location starts where
 * the previous one ended, fits its block, and they add up to data_size.
 * used has open->n_locations entries. */
static bool commit_locations(const Ozone__Om__KeyInfo *open,
                             const Ozone__Om__CommitKeyRequest *r,
                             Ozone__Om__KeyLocation *out,
                             bool *used,
                             struct om_result *res)
{
    uint64_t offset = 0;

    for (size_t i = 0; i < r->n_locations; i++) {
        const Ozone__Om__KeyLocation *l = r->locations[i];
        size_t j = 0;
        if (!check_location(l, res)) {
            return false;
        }
        while (j < open->n_locations &&
               !(same_block(open->locations[j]->block_id, l->block_id) &&
                 !used[j])) {
            j++;
        }
        if (j == open->n_locations) {
            om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                          "block %" PRIu64 "/%" PRIu64
                          " was not allocated "
                          "to this write of key '%s' (or is listed twice); "
                          "commit only blocks OM allocated",
                          l->block_id->container_id, l->block_id->local_id,
                          r->key);
            return false;
        }
        const Ozone__Om__KeyLocation *alloc = open->locations[j];
        if (l->offset != offset ||
            (alloc->length > 0 && l->length > alloc->length)) {
            om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                          "location %zu of key '%s' has offset %" PRIu64
                          " and length %" PRIu64 "; expected offset %" PRIu64
                          " and at most %" PRIu64 " bytes",
                          i, r->key, l->offset, l->length, offset,
                          alloc->length);
            return false;
        }
        used[j] = true;
        out[i] = *l;
        /* The pipeline SCM gave is authoritative, not the client's copy. */
        out[i].pipeline = alloc->pipeline;
        offset += l->length;
    }
    if (offset != r->data_size) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "locations of key '%s' hold %" PRIu64
                      " bytes but the "
                      "commit says %" PRIu64 "; send every written block",
                      r->key, offset, r->data_size);
        return false;
    }
    return true;
}

/* Writes bucket b's usage after a key of old_size replicated bytes (0:
 * none) becomes new_size (had_key/has_key: whether it counts in the
 * namespace before and after). */
static void put_bucket_usage(struct om *om,
                             struct kv_batch *b,
                             const Ozone__Om__BucketInfo *bk,
                             uint64_t old_size,
                             bool had_key,
                             uint64_t new_size,
                             bool has_key,
                             uint64_t index)
{
    char k[OM_DB_KEY_MAX];
    Ozone__Om__BucketInfo nb = *bk;

    nb.used_bytes = sub_floor0(bk->used_bytes, old_size) + new_size;
    nb.used_namespace =
        sub_floor0(bk->used_namespace, had_key ? 1 : 0) + (has_key ? 1 : 0);
    nb.update_id = index;
    om_db_put(om, b, OM_BUCKET_TABLE, k, om_bucket_key(k, bk->volume, bk->name),
              &nb.base);
}

static void commit_write(struct om *om,
                         const Ozone__Om__OmWriteOp *op,
                         struct kv_batch *b,
                         const Ozone__Om__KeyInfo *open,
                         const Ozone__Om__BucketInfo *bk,
                         struct om_result *res)
{
    const Ozone__Om__CommitKeyRequest *r = op->commit_key;
    size_t n = open->n_locations + 1;
    Ozone__Om__KeyLocation *store = calloc(n, sizeof(*store));
    Ozone__Om__KeyLocation **ptrs = calloc(n, sizeof(*ptrs));
    bool *used = calloc(n, sizeof(*used));
    Ozone__Om__KeyInfo *old = NULL;
    struct om_result old_res;
    char k[OM_DB_KEY_MAX];

    if (store == NULL || ptrs == NULL || used == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "out of memory committing key '%s'", r->key);
        goto out;
    }
    if (r->n_locations > open->n_locations) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "commit of key '%s' names %zu blocks, only %zu were "
                      "allocated; commit only blocks OM allocated",
                      r->key, r->n_locations, open->n_locations);
        goto out;
    }
    if (!commit_locations(open, r, store, used, res)) {
        goto out;
    }
    for (size_t i = 0; i < r->n_locations; i++) {
        ptrs[i] = &store[i];
    }
    Ozone__Om__KeyInfo nk = *open;
    nk.data_size = r->data_size;
    nk.locations = ptrs;
    nk.n_locations = r->n_locations;
    nk.modification_time = op->time_ms;
    nk.update_id = op->index;
    om_get_key(om, r->volume, r->bucket, r->key, NULL, &old, &old_res);
    /* OM KEY_TAGS (102) and BUCKET_QUOTA (101), om_upgrade.h. */
    if (!om_commit_tags(om, r, &nk, res) ||
        !om_quota_allows(om, bk, old ? replicated_size(old) : 0, old != NULL,
                         replicated_size(&nk), res)) {
        goto out;
    }
    om_db_put(om, b, OM_KEY_TABLE, k,
              om_key_key(k, r->volume, r->bucket, r->key), &nk.base);
    kv_batch_delete(
        b, om->cf[OM_OPEN_KEY_TABLE], k,
        om_open_key_key(k, r->volume, r->bucket, r->key, r->client_id));
    put_bucket_usage(om, b, bk, old ? replicated_size(old) : 0, old != NULL,
                     replicated_size(&nk), true, op->index);
    res->code = OZONE__RESULT_CODE__OK;
    log_debug("committed key '/%s/%s/%s': %" PRIu64
              " bytes in %zu blocks%s "
              "(index %" PRIu64 ")",
              r->volume, r->bucket, r->key, r->data_size, r->n_locations,
              old != NULL ? ", replacing the old version" : "", op->index);
out:
    om_msg_free(old ? &old->base : NULL);
    free(store);
    free(ptrs);
    free(used);
}

/* Whether the committed key r names holds exactly the blocks and size of
 * r: the commit of this session was applied already. SCM's block ids are
 * unique, so equal block lists mean the same write session. */
static bool already_committed(struct om *om,
                              const Ozone__Om__CommitKeyRequest *r)
{
    Ozone__Om__KeyInfo *k = NULL;
    struct om_result kres;
    bool same = false;

    if (om_get_key(om, r->volume, r->bucket, r->key, NULL, &k, &kres) !=
        OZONE__RESULT_CODE__OK) {
        return false;
    }
    if (k->data_size == r->data_size && k->n_locations == r->n_locations &&
        (r->n_locations > 0 || r->data_size == 0)) {
        same = true;
        for (size_t i = 0; i < r->n_locations && same; i++) {
            const Ozone__Om__KeyLocation *a = k->locations[i];
            const Ozone__Om__KeyLocation *c = r->locations[i];
            same = a->block_id != NULL && c->block_id != NULL &&
                   same_block(a->block_id, c->block_id);
        }
    }
    om_msg_free(&k->base);
    return same;
}

static void apply_commit_key(struct om *om,
                             const Ozone__Om__OmWriteOp *op,
                             struct kv_batch *b,
                             struct om_result *res)
{
    const Ozone__Om__CommitKeyRequest *r = op->commit_key;
    Ozone__Om__BucketInfo *bk = NULL;
    Ozone__Om__KeyInfo *open = NULL;

    if (!check_names(r->volume, r->bucket, r->key, res) ||
        om_get_bucket(om, r->volume, r->bucket, NULL, &bk, res) !=
            OZONE__RESULT_CODE__OK) {
        return;
    }
    if (om_get_open_key(om, r->volume, r->bucket, r->key, r->client_id, NULL,
                        &open, res) == OZONE__RESULT_CODE__OK) {
        commit_write(om, op, b, open, bk, res);
        om_msg_free(&open->base);
    } else if (res->code == OZONE__RESULT_CODE__KEY_NOT_FOUND &&
               already_committed(om, r)) {
        /* A client retrying a commit whose answer it lost (e.g. the
         * leader changed): no change, the same answer as the first time.
         * The tables are left alone on every OM either way (§8.1). */
        om_result_set(res, OZONE__RESULT_CODE__OK,
                      "key '%s' was committed already by this session", r->key);
    }
    om_msg_free(&bk->base);
}

static void apply_delete_key(struct om *om,
                             const Ozone__Om__OmWriteOp *op,
                             struct kv_batch *b,
                             struct om_result *res)
{
    const Ozone__Om__DeleteKeyRequest *r = op->delete_key;
    Ozone__Om__BucketInfo *bk = NULL;
    Ozone__Om__KeyInfo *old = NULL;
    char k[OM_DB_KEY_MAX];

    if (!check_names(r->volume, r->bucket, r->key, res) ||
        om_get_bucket(om, r->volume, r->bucket, NULL, &bk, res) !=
            OZONE__RESULT_CODE__OK) {
        return;
    }
    if (om_get_key(om, r->volume, r->bucket, r->key, NULL, &old, res) ==
        OZONE__RESULT_CODE__OK) {
        kv_batch_delete(b, om->cf[OM_KEY_TABLE], k,
                        om_key_key(k, r->volume, r->bucket, r->key));
        put_bucket_usage(om, b, bk, replicated_size(old), true, 0, false,
                         op->index);
        om_msg_free(&old->base);
        log_debug("deleted key '/%s/%s/%s' (index %" PRIu64 ")", r->volume,
                  r->bucket, r->key, op->index);
    }
    om_msg_free(&bk->base);
}

static void apply_rename_key(struct om *om,
                             const Ozone__Om__OmWriteOp *op,
                             struct kv_batch *b,
                             struct om_result *res)
{
    const Ozone__Om__RenameKeyRequest *r = op->rename_key;
    Ozone__Om__KeyInfo *src = NULL, *dst = NULL;
    char k[OM_DB_KEY_MAX];

    if (!check_names(r->volume, r->bucket, r->key, res) ||
        !check_names(r->volume, r->bucket, r->to_key, res) ||
        om_get_key(om, r->volume, r->bucket, r->key, NULL, &src, res) !=
            OZONE__RESULT_CODE__OK) {
        return;
    }
    if (om_get_key(om, r->volume, r->bucket, r->to_key, NULL, &dst, res) ==
        OZONE__RESULT_CODE__OK) {
        om_msg_free(&dst->base);
        om_result_set(res, OZONE__RESULT_CODE__KEY_ALREADY_EXISTS,
                      "cannot rename key '%s' to '%s' in bucket '/%s/%s': "
                      "the target exists; delete it first or choose another "
                      "name",
                      r->key, r->to_key, r->volume, r->bucket);
    } else if (res->code == OZONE__RESULT_CODE__KEY_NOT_FOUND) {
        Ozone__Om__KeyInfo nk = *src;
        nk.name = r->to_key;
        nk.modification_time = op->time_ms;
        nk.update_id = op->index;
        om_db_put(om, b, OM_KEY_TABLE, k,
                  om_key_key(k, r->volume, r->bucket, r->to_key), &nk.base);
        kv_batch_delete(b, om->cf[OM_KEY_TABLE], k,
                        om_key_key(k, r->volume, r->bucket, r->key));
        res->code = OZONE__RESULT_CODE__OK;
        log_debug("renamed key '/%s/%s/%s' to '%s' (index %" PRIu64 ")",
                  r->volume, r->bucket, r->key, r->to_key, op->index);
    }
    om_msg_free(&src->base);
}

/* ---- prepare for upgrade (DESIGN.md §6.8) ----
 *
 * #PREPAREDINFO holds the index of the prepare entry; while it is present
 * every other write is refused the same way on every OM, so the gate is a
 * function of the tables like every other rule (DESIGN.md §8.1). The
 * marker file is written by om_ha after the entry is applied. */

static void apply_prepare(struct om *om,
                          const Ozone__Om__OmWriteOp *op,
                          struct kv_batch *b,
                          struct om_result *res)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRIu64, op->index);

    kv_batch_put(b, om->cf[OM_META_TABLE], OM_PREPARED_INFO_KEY,
                 strlen(OM_PREPARED_INFO_KEY), text, (size_t)n);
    res->code = OZONE__RESULT_CODE__OK;
}

static void apply_cancel_prepare(struct om *om,
                                 const Ozone__Om__OmWriteOp *op,
                                 struct kv_batch *b,
                                 struct om_result *res)
{
    (void)op;
    kv_batch_delete(b, om->cf[OM_META_TABLE], OM_PREPARED_INFO_KEY,
                    strlen(OM_PREPARED_INFO_KEY));
    res->code = OZONE__RESULT_CODE__OK;
}

int om_read_prepared_index(struct om *om, uint64_t *out)
{
    void *val = NULL;
    size_t len = 0;
    char *end = NULL;
    int rc;

    *out = 0;
    rc = kv_get(om->kv, om->cf[OM_META_TABLE], OM_PREPARED_INFO_KEY,
                strlen(OM_PREPARED_INFO_KEY), &val, &len);
    if (rc != 0) {
        return rc;
    }
    unsigned long long v = strtoull(val, &end, 10);
    if (len == 0 || end != (char *)val + len) {
        free(val);
        return OZ_ECORRUPT;
    }
    free(val);
    *out = v;
    return 0;
}

/* ---- dispatch ---- */

typedef void (*apply_fn)(struct om *,
                         const Ozone__Om__OmWriteOp *,
                         struct kv_batch *,
                         struct om_result *);

static apply_fn apply_for(const Ozone__Om__OmWriteOp *op)
{
    switch (op->op_case) {
        case OZONE__OM__OM_WRITE_OP__OP_CREATE_VOLUME:
            return op->create_volume ? apply_create_volume : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_DELETE_VOLUME:
            return op->delete_volume ? apply_delete_volume : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_CREATE_BUCKET:
            return op->create_bucket ? apply_create_bucket : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_DELETE_BUCKET:
            return op->delete_bucket ? apply_delete_bucket : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_OPEN_KEY:
            return op->open_key ? apply_open_key : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_ADD_BLOCK:
            return op->add_block ? apply_add_block : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_COMMIT_KEY:
            return op->commit_key ? apply_commit_key : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_DELETE_KEY:
            return op->delete_key ? apply_delete_key : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_RENAME_KEY:
            return op->rename_key ? apply_rename_key : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_PREPARE:
            return op->prepare ? apply_prepare : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_CANCEL_PREPARE:
            return op->cancel_prepare ? apply_cancel_prepare : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_DELETE_OPEN_KEYS:
            return op->delete_open_keys ? om_apply_delete_open_keys : NULL;
        default:
            return om_upgrade_apply_for(op); /* om_features.c */
    }
}

const char *om_op_name(const Ozone__Om__OmWriteOp *op)
{
    switch (op->op_case) {
        case OZONE__OM__OM_WRITE_OP__OP_CREATE_VOLUME:
            return "CreateVolume";
        case OZONE__OM__OM_WRITE_OP__OP_DELETE_VOLUME:
            return "DeleteVolume";
        case OZONE__OM__OM_WRITE_OP__OP_CREATE_BUCKET:
            return "CreateBucket";
        case OZONE__OM__OM_WRITE_OP__OP_DELETE_BUCKET:
            return "DeleteBucket";
        case OZONE__OM__OM_WRITE_OP__OP_OPEN_KEY:
            return "CreateKey";
        case OZONE__OM__OM_WRITE_OP__OP_ADD_BLOCK:
            return "AllocateBlock";
        case OZONE__OM__OM_WRITE_OP__OP_COMMIT_KEY:
            return "CommitKey";
        case OZONE__OM__OM_WRITE_OP__OP_DELETE_KEY:
            return "DeleteKey";
        case OZONE__OM__OM_WRITE_OP__OP_RENAME_KEY:
            return "RenameKey";
        case OZONE__OM__OM_WRITE_OP__OP_PREPARE:
            return "Prepare";
        case OZONE__OM__OM_WRITE_OP__OP_CANCEL_PREPARE:
            return "CancelPrepare";
        case OZONE__OM__OM_WRITE_OP__OP_DELETE_OPEN_KEYS:
            return "DeleteOpenKeys";
        default: {
            const char *name = om_upgrade_op_name(op);
            return name != NULL ? name : "Unknown";
        }
    }
}

static void put_applied_index(struct om *om, struct kv_batch *b, uint64_t index)
{
    char text[48];
    /* Ozone's TransactionInfo "<term>#<index>": the raft term of the
     * entry (om_apply_write), the same on every OM. */
    int n = snprintf(text, sizeof(text), "%" PRIu64 "#%" PRIu64, om->apply_term,
                     index);

    kv_batch_put(b, om->cf[OM_META_TABLE], OM_TRANSACTION_INFO_KEY,
                 strlen(OM_TRANSACTION_INFO_KEY), text, (size_t)n);
}

void om_apply(struct om *om,
              const Ozone__Om__OmWriteOp *op,
              struct kv_batch *batch,
              struct om_result *res)
{
    uint64_t applied = 0;
    apply_fn fn;

    memset(res, 0, sizeof(*res));
    if (om_read_applied_index(om, &applied) != 0) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot read '%s' from the OM metadata DB",
                      OM_TRANSACTION_INFO_KEY);
        return;
    }
    if (op->index <= applied) {
        res->replayed = true;
        om_result_set(res, OZONE__RESULT_CODE__OK,
                      "operation %" PRIu64
                      " was applied already (applied "
                      "index %" PRIu64 ")",
                      op->index, applied);
        return;
    }
    fn = apply_for(op);
    if (fn != NULL && op->op_case != OZONE__OM__OM_WRITE_OP__OP_PREPARE &&
        op->op_case != OZONE__OM__OM_WRITE_OP__OP_CANCEL_PREPARE &&
        /* orchestration metadata, accepted while prepared (om_orch.h) */
        op->op_case != OZONE__OM__OM_WRITE_OP__OP_UPGRADE_LEASE &&
        op->op_case != OZONE__OM__OM_WRITE_OP__OP_UPGRADE_JOURNAL &&
        om_read_prepared_index(om, &applied) == 0) {
        om_result_set(res,
                      OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_WHEN_PREPARED,
                      "cannot apply write request %s: OM is prepared for "
                      "upgrade; run 'ozone admin om cancelprepare' or "
                      "finish the upgrade",
                      om_op_name(op));
    } else if (fn == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "write operation %" PRIu64
                      " has no known body (case "
                      "%d); it was written by a newer OM",
                      op->index, (int)op->op_case);
    } else {
        fn(om, op, batch, res);
    }
    /* A refused op still consumes its index (DESIGN.md §8: every OM
     * refuses it the same way), so the applied index always advances. */
    put_applied_index(om, batch, op->index);
}

int om_submit(struct om *om, Ozone__Om__OmWriteOp *op, struct om_result *res)
{
    uint64_t term;

    pthread_mutex_lock(&om->write_lock);
    if (op->index == 0) {
        op->index = om->applied_index + 1;
    }
    term = om->apply_term; /* no log here: the term does not change */
    pthread_mutex_unlock(&om->write_lock);
    return om_apply_write(om, op, term, true, res);
}

int om_apply_write(struct om *om,
                   const Ozone__Om__OmWriteOp *op,
                   uint64_t term,
                   bool sync,
                   struct om_result *res)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct kv_batch *b = kv_batch_new();
    struct kv_overlay_stats pending = {0, 0, 0, 0};
    bool buffered = false;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    if (b == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "out of memory preparing a write");
        return OZ_ENOMEM;
    }
    pthread_mutex_lock(&om->write_lock);
    om->apply_term = term;
    om_apply(om, op, b, res);
    if (!res->replayed && kv_batch_count(b) > 0) {
        rc = fault_hit("om.submit.write");
        if (rc == 0 && om->buffer != NULL) {
            /* Double buffer: visible now, written by the flusher. */
            rc = kv_overlay_apply(om->kv, b, op->index, &pending, errmsg);
            buffered = rc == 0;
        } else if (rc == 0) {
            rc = kv_write(om->kv, b, sync, errmsg);
        } else {
            oz_errmsg_printf(errmsg, "injected fault 'om.submit.write'");
        }
        if (rc != 0) {
            log_error("cannot write operation %" PRIu64
                      " to the OM metadata "
                      "DB: %s",
                      op->index, errmsg);
            om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "cannot write to the OM metadata DB: %s; check the "
                          "OM's disk",
                          errmsg);
        } else if (op->index > om->applied_index) {
            om->applied_index = op->index;
        }
    }
    pthread_mutex_unlock(&om->write_lock);
    kv_batch_free(b);
    if (buffered) {
        om_buffer__applied(om, &pending);
    }
    if (rc == 0 && sync && om->buffer != NULL) {
        rc = om_buffer_flush(om, true, errmsg);
        if (rc != 0) {
            om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "cannot flush operation %" PRIu64
                          " to the OM metadata DB: %s; check the OM's disk",
                          op->index, errmsg);
        }
    }
    return rc;
}
