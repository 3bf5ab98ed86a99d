/* OM features above ZDU_READY (DESIGN.md §6.1, §6.3): BUCKET_QUOTA (101)
 * and KEY_TAGS (102), their handlers, their apply functions, the
 * finalization entries' apply functions, and the OM catalog's actions.
 *
 * Every decision here reads the layout version of the replicated state
 * (#LAYOUTVERSION), so an old and a new OM applying the same entry write
 * the same bytes (DESIGN.md §8.1). Before finalization the old format is
 * written: no quota and no tags are ever stored, because the only ways to
 * set them are refused.
 */
#include "om_upgrade.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "om_names.h"
#include "om_orch.h"
#include "om_service.h"

/* S3's limits on object tags. */
#define OM_MAX_TAGS 10
#define OM_MAX_TAG_KEY 128
#define OM_MAX_TAG_VALUE 256

/* ---- the catalog and its actions ---- */

/* ON_FINALIZE of an OM feature, local half (the data migration ran in the
 * replicated finalize entry, om_feature_migrate, on every OM at the same
 * index): VERSION may only move to v once this OM's DB holds v. ctx is
 * the struct daemon. */
static int local_on_finalize(void *ctx,
                             const struct version_feature *f,
                             char *errmsg)
{
    struct daemon *d = ctx;
    struct om_service *s = d != NULL ? d->state : NULL;
    int layout = 0;

    if (s == NULL || !s->om_ready) {
        oz_errmsg_printf(errmsg,
                         "the OM namespace is not open; OM versions are "
                         "finalized by the replicated finalize entry");
        return OZ_ESTATE;
    }
    if (om_read_layout_version(&s->om, &layout) != 0 || layout < f->number) {
        oz_errmsg_printf(errmsg,
                         "the OM DB's layout version is %d, below %d: OM "
                         "versions are finalized by the replicated finalize "
                         "entry; run 'ozone admin upgrade finalize'",
                         layout, f->number);
        return OZ_ESTATE;
    }
    return 0;
}

static const struct version_actions om_actions[] = {
    {VERSION_OM_BUCKET_QUOTA, NULL, NULL, local_on_finalize},
    {VERSION_OM_KEY_TAGS, NULL, NULL, local_on_finalize},
};

static struct version_feature catalog_buf[32];
static struct version_catalog catalog;
static const struct version_catalog *catalog_ptr;
static pthread_once_t catalog_once = PTHREAD_ONCE_INIT;

static void build_catalog(void)
{
    if (version_catalog_build(
            VERSION_CATALOG_OM, om_actions,
            sizeof(om_actions) / sizeof(om_actions[0]), catalog_buf,
            sizeof(catalog_buf) / sizeof(catalog_buf[0]), &catalog) == 0) {
        catalog_ptr = &catalog;
    } else {
        /* A catalog/action mismatch is our bug: use the plain catalog. */
        log_error("cannot attach OM upgrade actions to the OM catalog");
        catalog_ptr = version_builtin_catalog(VERSION_CATALOG_OM);
    }
}

const struct version_catalog *om_version_catalog(void)
{
    pthread_once(&catalog_once, build_catalog);
    return catalog_ptr;
}

/* ---- layout version and gating ---- */

int om_read_layout_version(struct om *om, int *out)
{
    return kv_get_layout_version(om->kv, out);
}

static const char *feature_name(int v)
{
    const struct version_feature *f =
        version_catalog_find(version_builtin_catalog(VERSION_CATALOG_OM), v);

    return f != NULL ? f->name : "UNKNOWN";
}

bool om_feature_allowed(struct om *om,
                        int feature,
                        const char *operation,
                        struct om_result *res)
{
    int layout = 0;
    int rc = om_read_layout_version(om, &layout);

    if (rc == 0 && layout >= feature) {
        return true;
    }
    if (rc != 0 && rc != OZ_ENOTFOUND) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot read the OM layout version: %s", oz_strerror(rc));
        return false;
    }
    /* DESIGN.md §6.1: NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION. */
    om_result_set(
        res, OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION,
        "operation '%s' belongs to feature %s (version %d); "
        "cluster apparent version is %d; finalize the upgrade "
        "first",
        operation, feature_name(feature), feature, layout);
    return false;
}

/* ---- BUCKET_QUOTA (101) ---- */

static bool valid_factor(Ozone__Hdds__ReplicationFactor f)
{
    return f == OZONE__HDDS__REPLICATION_FACTOR__ONE ||
           f == OZONE__HDDS__REPLICATION_FACTOR__THREE;
}

/* Same rule as om_apply.c: usage counts replicas. */
static uint64_t replicated_size(const Ozone__Om__KeyInfo *k)
{
    return k->data_size * (valid_factor(k->replication) ? k->replication : 1);
}

/* Sums the keys of one bucket (table keys under prefix). */
static int bucket_usage(struct om *om,
                        const char *prefix,
                        uint64_t *bytes,
                        uint64_t *count,
                        char *errmsg)
{
    struct kv_iter *it = kv_iter_new(om->kv, om->cf[OM_KEY_TABLE]);
    size_t plen = strlen(prefix);
    int rc = 0;

    *bytes = 0;
    *count = 0;
    if (it == NULL) {
        oz_errmsg_printf(errmsg, "out of memory scanning the key table");
        return OZ_ENOMEM;
    }
    for (kv_iter_seek(it, prefix, plen); kv_iter_valid(it); kv_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const void *k = kv_iter_key(it, &klen);
        const void *v = kv_iter_value(it, &vlen);
        if (klen < plen || memcmp(k, prefix, plen) != 0) {
            break;
        }
        Ozone__Om__KeyInfo *ki = ozone__om__key_info__unpack(NULL, vlen, v);
        if (ki == NULL) {
            oz_errmsg_printf(errmsg, "undecodable key record under '%s'",
                             prefix);
            rc = OZ_ECORRUPT;
            break;
        }
        *bytes += replicated_size(ki);
        *count += 1;
        ozone__om__key_info__free_unpacked(ki, NULL);
    }
    kv_iter_free(it);
    return rc;
}

/* ON_FINALIZE of BUCKET_QUOTA, replicated half (Ozone's QUOTA feature
 * upgrade action): recomputes every bucket's used_bytes and used_namespace
 * from the key table, so quotas start from exact figures. */
static int recompute_usage(struct om *om,
                           uint64_t index,
                           struct kv_batch *b,
                           char *errmsg)
{
    struct kv_iter *it = kv_iter_new(om->kv, om->cf[OM_BUCKET_TABLE]);
    unsigned buckets = 0, changed = 0;
    int rc = 0;

    if (it == NULL) {
        oz_errmsg_printf(errmsg, "out of memory scanning the bucket table");
        return OZ_ENOMEM;
    }
    for (kv_iter_seek_first(it); rc == 0 && kv_iter_valid(it);
         kv_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const char *k = kv_iter_key(it, &klen);
        const void *v = kv_iter_value(it, &vlen);
        char prefix[OM_DB_KEY_MAX + 2];
        uint64_t bytes = 0, count = 0;

        if (klen + 2 > sizeof(prefix)) {
            continue;
        }
        Ozone__Om__BucketInfo *bk =
            ozone__om__bucket_info__unpack(NULL, vlen, v);
        if (bk == NULL) {
            oz_errmsg_printf(errmsg, "undecodable bucket record '%.*s'",
                             (int)klen, k);
            rc = OZ_ECORRUPT;
            break;
        }
        memcpy(prefix, k, klen);
        prefix[klen] = '/';
        prefix[klen + 1] = '\0';
        rc = bucket_usage(om, prefix, &bytes, &count, errmsg);
        if (rc == 0 &&
            (bk->used_bytes != bytes || bk->used_namespace != count)) {
            log_info("BUCKET_QUOTA: bucket '/%s/%s' usage %" PRIu64
                     " bytes, %" PRIu64 " keys recomputed as %" PRIu64
                     " bytes, %" PRIu64 " keys",
                     bk->volume, bk->name, bk->used_bytes, bk->used_namespace,
                     bytes, count);
            bk->used_bytes = bytes;
            bk->used_namespace = count;
            bk->update_id = index;
            om_db_put(om, b, OM_BUCKET_TABLE, k, klen, &bk->base);
            changed++;
        }
        buckets++;
        ozone__om__bucket_info__free_unpacked(bk, NULL);
    }
    kv_iter_free(it);
    if (rc == 0) {
        log_info("BUCKET_QUOTA: usage of %u buckets recomputed, %u corrected",
                 buckets, changed);
    }
    return rc;
}

int om_feature_migrate(struct om *om,
                       int v,
                       uint64_t index,
                       struct kv_batch *b,
                       char *errmsg)
{
    switch (v) {
        case VERSION_OM_BUCKET_QUOTA:
            return recompute_usage(om, index, b, errmsg);
        default:
            return 0; /* KEY_TAGS: new field only, nothing to migrate */
    }
}

bool om_quota_allows(struct om *om,
                     const Ozone__Om__BucketInfo *bk,
                     uint64_t old_size,
                     bool had_key,
                     uint64_t new_size,
                     struct om_result *res)
{
    uint64_t base = bk->used_bytes > old_size ? bk->used_bytes - old_size : 0;
    uint64_t keys =
        bk->used_namespace - (had_key && bk->used_namespace ? 1 : 0);

    (void)om;
    if (bk->quota_in_bytes > 0 && base + new_size > bk->quota_in_bytes) {
        om_result_set(res, OZONE__RESULT_CODE__QUOTA_EXCEEDED,
                      "bucket '/%s/%s' would exceed its quota of %" PRIu64
                      " bytes (%" PRIu64 " used, the key needs %" PRIu64
                      "); delete keys or raise the quota with 'ozone sh "
                      "bucket setquota'",
                      bk->volume, bk->name, bk->quota_in_bytes, base, new_size);
        return false;
    }
    if (bk->quota_in_namespace > 0 && keys + 1 > bk->quota_in_namespace) {
        om_result_set(res, OZONE__RESULT_CODE__QUOTA_EXCEEDED,
                      "bucket '/%s/%s' would exceed its quota of %" PRIu64
                      " keys; delete keys or raise the quota with 'ozone sh "
                      "bucket setquota'",
                      bk->volume, bk->name, bk->quota_in_namespace);
        return false;
    }
    return true;
}

/* ---- KEY_TAGS (102) ---- */

bool om_tags_valid(Ozone__Om__KeyTag *const *tags,
                   size_t n,
                   struct om_result *res)
{
    if (n > OM_MAX_TAGS) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "%zu tags given; a key has at most %d", n, OM_MAX_TAGS);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const Ozone__Om__KeyTag *t = tags[i];
        size_t kl = t != NULL && t->key != NULL ? strlen(t->key) : 0;
        size_t vl = t != NULL && t->value != NULL ? strlen(t->value) : 0;
        if (kl == 0 || kl > OM_MAX_TAG_KEY || vl > OM_MAX_TAG_VALUE) {
            om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                          "tag %zu has a key of %zu bytes and a value of %zu; "
                          "keys take 1 to %d bytes, values at most %d",
                          i, kl, vl, OM_MAX_TAG_KEY, OM_MAX_TAG_VALUE);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(tags[j]->key, t->key) == 0) {
                om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                              "tag key '%s' is given twice; tag keys are "
                              "unique",
                              t->key);
                return false;
            }
        }
    }
    return true;
}

bool om_commit_tags(struct om *om,
                    const Ozone__Om__CommitKeyRequest *r,
                    Ozone__Om__KeyInfo *nk,
                    struct om_result *res)
{
    if (!r->has_tags && r->n_tags == 0) {
        return true;
    }
    if (!om_feature_allowed(om, VERSION_OM_KEY_TAGS, "CommitKey with tags",
                            res) ||
        !om_tags_valid(r->tags, r->n_tags, res)) {
        return false;
    }
    nk->tags = r->tags;
    nk->n_tags = r->n_tags;
    return true;
}

/* ---- apply functions of the upgrade ops ---- */

static void apply_set_bucket_quota(struct om *om,
                                   const Ozone__Om__OmWriteOp *op,
                                   struct kv_batch *b,
                                   struct om_result *res)
{
    const Ozone__Om__SetBucketQuotaRequest *r = op->set_bucket_quota;
    Ozone__Om__BucketInfo *bk = NULL;
    char k[OM_DB_KEY_MAX];

    if (!om_feature_allowed(om, VERSION_OM_BUCKET_QUOTA, "SetBucketQuota",
                            res) ||
        om_get_bucket(om, r->volume, r->bucket, NULL, &bk, res) !=
            OZONE__RESULT_CODE__OK) {
        return;
    }
    Ozone__Om__BucketInfo nb = *bk;
    nb.quota_in_bytes = r->quota_in_bytes;
    nb.quota_in_namespace = r->quota_in_namespace;
    nb.modification_time = op->time_ms;
    nb.update_id = op->index;
    om_db_put(om, b, OM_BUCKET_TABLE, k, om_bucket_key(k, r->volume, r->bucket),
              &nb.base);
    res->code = OZONE__RESULT_CODE__OK;
    log_info("bucket '/%s/%s' quota set to %" PRIu64 " bytes, %" PRIu64
             " keys (index %" PRIu64 ")",
             r->volume, r->bucket, r->quota_in_bytes, r->quota_in_namespace,
             op->index);
    om_msg_free(&bk->base);
}

static void apply_put_object_tagging(struct om *om,
                                     const Ozone__Om__OmWriteOp *op,
                                     struct kv_batch *b,
                                     struct om_result *res)
{
    const Ozone__Om__PutObjectTaggingRequest *r = op->put_object_tagging;
    Ozone__Om__KeyInfo *key = NULL;
    char k[OM_DB_KEY_MAX];

    if (!om_feature_allowed(om, VERSION_OM_KEY_TAGS, "PutObjectTagging", res) ||
        !om_tags_valid(r->tags, r->n_tags, res) ||
        om_get_key(om, r->volume, r->bucket, r->key, NULL, &key, res) !=
            OZONE__RESULT_CODE__OK) {
        return;
    }
    Ozone__Om__KeyInfo nk = *key;
    nk.tags = r->tags;
    nk.n_tags = r->n_tags;
    nk.modification_time = op->time_ms;
    nk.update_id = op->index;
    om_db_put(om, b, OM_KEY_TABLE, k,
              om_key_key(k, r->volume, r->bucket, r->key), &nk.base);
    res->code = OZONE__RESULT_CODE__OK;
    om_msg_free(&key->base);
}

/* DESIGN.md §6.7 step 3: the marker, replicated so that a new leader or a
 * restarted OM resumes polling SCM, and who asked for it in the same
 * batch. Both come from the entry alone (§8.1), and every OM that applies
 * it runs the leader's software (invariant 2 is checked before it is
 * submitted; no downgrade once it is): every OM, and a snapshot, carries
 * the same bytes. */
static void apply_start_finalization(struct om *om,
                                     const Ozone__Om__OmWriteOp *op,
                                     struct kv_batch *b,
                                     struct om_result *res)
{
    const Ozone__Om__OmStartFinalizationOp *s = op->start_finalization;
    int layout = 0;
    char text[32];
    int n;

    if (om_read_layout_version(om, &layout) != 0) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "the OM DB has no readable layout version");
        return;
    }
    if ((int)s->target_version <= layout) {
        om_result_set(res, OZONE__RESULT_CODE__OK,
                      "OM layout version is already %d: nothing to finalize",
                      layout);
        return;
    }
    n = snprintf(text, sizeof(text), "%u", s->target_version);
    kv_batch_put(b, om->cf[OM_META_TABLE], OM_FINALIZATION_MARKER_KEY,
                 strlen(OM_FINALIZATION_MARKER_KEY), text, (size_t)n);
    /* An entry from before the field existed has "": recorded as such,
     * so the last requester is never attributed to this finalization. */
    const char *who = s->requested_by != NULL ? s->requested_by : "";
    size_t who_len = strnlen(who, OM_REQUESTED_BY_MAX - 1);
    kv_batch_put(b, om->cf[OM_META_TABLE], OM_FINALIZATION_REQUESTED_BY_KEY,
                 strlen(OM_FINALIZATION_REQUESTED_BY_KEY), who, who_len);
    res->code = OZONE__RESULT_CODE__OK;
    log_info("OM finalization to %s (%u) started by '%s' (index %" PRIu64
             "): waiting for SCM to report HDDS finalized",
             feature_name((int)s->target_version), s->target_version,
             s->requested_by, op->index);
}

/* DESIGN.md §6.5: every pending version, in order, in one entry. */
static void apply_finalize(struct om *om,
                           const Ozone__Om__OmWriteOp *op,
                           struct kv_batch *b,
                           struct om_result *res)
{
    const struct version_catalog *cat =
        version_builtin_catalog(VERSION_CATALOG_OM);
    int target = (int)op->finalize->target_version;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char text[32];
    int layout = 0;
    int n;

    if (om_read_layout_version(om, &layout) != 0) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "the OM DB has no readable layout version");
        return;
    }
    if (target <= layout) {
        kv_batch_delete(b, om->cf[OM_META_TABLE], OM_FINALIZATION_MARKER_KEY,
                        strlen(OM_FINALIZATION_MARKER_KEY));
        /* Raft replay or a second finalize: a logged no-op. */
        log_info(
            "OM finalize to %s (%d) is a no-op: layout version is "
            "already %s (%d)",
            feature_name(target), target, feature_name(layout), layout);
        res->code = OZONE__RESULT_CODE__OK;
        return;
    }
    if (version_catalog_find(cat, target) == NULL) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "cannot finalize the OM to version %d: not a version "
                      "of this OM's catalog",
                      target);
        return;
    }
    for (int v = version_catalog_next(cat, layout); v > 0 && v <= target;
         v = version_catalog_next(cat, v)) {
        log_info("OM finalizing %s (%d) at index %" PRIu64, feature_name(v), v,
                 op->index);
        if (om_feature_migrate(om, v, op->index, b, errmsg) != 0) {
            /* Only a damaged record gets here, the same on every OM:
             * the marker and #LAYOUTVERSION stay, the poller retries and
             * the log names the record to repair. */
            om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "ON_FINALIZE of OM %s (%d) failed: %s",
                          feature_name(v), v, errmsg);
            return;
        }
    }
    kv_batch_delete(b, om->cf[OM_META_TABLE], OM_FINALIZATION_MARKER_KEY,
                    strlen(OM_FINALIZATION_MARKER_KEY));
    kv_batch_put_layout_version(om->kv, b, target);
    n = snprintf(text, sizeof(text), "%d", target);
    kv_batch_put(b, om->cf[OM_META_TABLE], OM_FINALIZATION_DONE_KEY,
                 strlen(OM_FINALIZATION_DONE_KEY), text, (size_t)n);
    res->code = OZONE__RESULT_CODE__OK;
    log_info(
        "OM finalized: layout version %s (%d) -> %s (%d) at index %" PRIu64,
        feature_name(layout), layout, feature_name(target), target, op->index);
}

om_upgrade_apply_fn om_upgrade_apply_for(const Ozone__Om__OmWriteOp *op)
{
    switch (op->op_case) {
        case OZONE__OM__OM_WRITE_OP__OP_SET_BUCKET_QUOTA:
            return op->set_bucket_quota ? apply_set_bucket_quota : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_PUT_OBJECT_TAGGING:
            return op->put_object_tagging ? apply_put_object_tagging : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_START_FINALIZATION:
            return op->start_finalization ? apply_start_finalization : NULL;
        case OZONE__OM__OM_WRITE_OP__OP_FINALIZE:
            return op->finalize ? apply_finalize : NULL;
        default:
            return om_orch_apply_for(op); /* lease, journal: om_orch.c */
    }
}

const char *om_upgrade_op_name(const Ozone__Om__OmWriteOp *op)
{
    switch (op->op_case) {
        case OZONE__OM__OM_WRITE_OP__OP_SET_BUCKET_QUOTA:
            return "SetBucketQuota";
        case OZONE__OM__OM_WRITE_OP__OP_PUT_OBJECT_TAGGING:
            return "PutObjectTagging";
        case OZONE__OM__OM_WRITE_OP__OP_START_FINALIZATION:
            return "StartFinalization";
        case OZONE__OM__OM_WRITE_OP__OP_FINALIZE:
            return "FinalizeUpgrade";
        default:
            return om_orch_op_name(op); /* lease, journal: om_orch.c */
    }
}

/* ---- handlers ---- */

enum rpc_handler_result om__set_bucket_quota(void *data,
                                             struct rpc_call *call,
                                             const ProtobufCMessage *req_msg,
                                             ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__SetBucketQuotaRequest *req =
        (const Ozone__Om__SetBucketQuotaRequest *)req_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__SetBucketQuotaRequest body = *req;
    struct om_result res;

    (void)resp_msg;
    if (om__check_names(req->volume, req->bucket, NULL, &res) &&
        om_feature_allowed(&s->om, VERSION_OM_BUCKET_QUOTA, "SetBucketQuota",
                           &res)) {
        body.hdr = NULL;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_SET_BUCKET_QUOTA;
        op.set_bucket_quota = &body;
        om__submit(s, &op, &res);
    }
    return om__finish(s, call, OM_SET_BUCKET_QUOTA, RPC_STATUS_OK, &res);
}

enum rpc_handler_result om__get_object_tagging(void *data,
                                               struct rpc_call *call,
                                               const ProtobufCMessage *req_msg,
                                               ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__GetObjectTaggingRequest *req =
        (const Ozone__Om__GetObjectTaggingRequest *)req_msg;
    Ozone__Om__GetObjectTaggingResponse *resp =
        (Ozone__Om__GetObjectTaggingResponse *)resp_msg;
    Ozone__Om__KeyInfo *key = NULL;
    ProtobufCAllocator alloc;
    struct om_result res;

    om__call_allocator(call, &alloc);
    if (om__check_names(req->volume, req->bucket, req->key, &res) &&
        om_feature_allowed(&s->om, VERSION_OM_KEY_TAGS, "GetObjectTagging",
                           &res) &&
        om_get_key(&s->om, req->volume, req->bucket, req->key, &alloc, &key,
                   &res) == OZONE__RESULT_CODE__OK) {
        resp->tags = key->tags;
        resp->n_tags = key->n_tags;
    }
    return om__finish(s, call, OM_GET_OBJECT_TAGGING, RPC_STATUS_OK, &res);
}

enum rpc_handler_result om__put_object_tagging(void *data,
                                               struct rpc_call *call,
                                               const ProtobufCMessage *req_msg,
                                               ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__PutObjectTaggingRequest *req =
        (const Ozone__Om__PutObjectTaggingRequest *)req_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__PutObjectTaggingRequest body = *req;
    struct om_result res;

    (void)resp_msg;
    if (om__check_names(req->volume, req->bucket, req->key, &res) &&
        om_feature_allowed(&s->om, VERSION_OM_KEY_TAGS, "PutObjectTagging",
                           &res) &&
        om_tags_valid(req->tags, req->n_tags, &res)) {
        body.hdr = NULL;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_PUT_OBJECT_TAGGING;
        op.put_object_tagging = &body;
        om__submit(s, &op, &res);
    }
    return om__finish(s, call, OM_PUT_OBJECT_TAGGING, RPC_STATUS_OK, &res);
}
