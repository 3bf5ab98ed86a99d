/* OzoneManagerService: set-up, shared helpers, volume and bucket handlers
 * (DESIGN.md §7). Key handlers are in om_service_key.c. */
#include "om_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "om_names.h"
#include "om_upgrade.h"

static const char *const method_names[OM_METHOD_COUNT] = {
    "CreateVolume",     "InfoVolume",      "ListVolumes", "DeleteVolume",
    "CreateBucket",     "InfoBucket",      "ListBuckets", "DeleteBucket",
    "CreateKey",        "AllocateBlock",   "CommitKey",   "LookupKey",
    "ListKeys",         "DeleteKey",       "RenameKey",   "SetBucketQuota",
    "GetObjectTagging", "PutObjectTagging"};

/* ---- shared helpers ---- */

enum rpc_status om__status_for(Ozone__ResultCode code)
{
    switch (code) {
        case OZONE__RESULT_CODE__OK:
            return RPC_STATUS_OK;
        case OZONE__RESULT_CODE__VOLUME_NOT_FOUND:
        case OZONE__RESULT_CODE__BUCKET_NOT_FOUND:
        case OZONE__RESULT_CODE__KEY_NOT_FOUND:
            return RPC_STATUS_NOT_FOUND;
        case OZONE__RESULT_CODE__VOLUME_ALREADY_EXISTS:
        case OZONE__RESULT_CODE__BUCKET_ALREADY_EXISTS:
        case OZONE__RESULT_CODE__KEY_ALREADY_EXISTS:
            return RPC_STATUS_ALREADY_EXISTS;
        case OZONE__RESULT_CODE__VOLUME_NOT_EMPTY:
        case OZONE__RESULT_CODE__BUCKET_NOT_EMPTY:
            return RPC_STATUS_FAILED_PRECONDITION;
        case OZONE__RESULT_CODE__INVALID_ARGUMENT:
        case OZONE__RESULT_CODE__INVALID_VOLUME_NAME:
        case OZONE__RESULT_CODE__INVALID_BUCKET_NAME:
        case OZONE__RESULT_CODE__INVALID_KEY_NAME:
            return RPC_STATUS_INVALID_ARGUMENT;
        case OZONE__RESULT_CODE__UNAVAILABLE:
            return RPC_STATUS_UNAVAILABLE;
        case OZONE__RESULT_CODE__NOT_LEADER:
        case OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_WHEN_PREPARED:
        case OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION:
        case OZONE__RESULT_CODE__UPGRADE_ORDER_VIOLATION:
        case OZONE__RESULT_CODE__FINALIZE_REJECTED:
            return RPC_STATUS_FAILED_PRECONDITION;
        case OZONE__RESULT_CODE__QUOTA_EXCEEDED:
            return RPC_STATUS_RESOURCE_EXHAUSTED;
        case OZONE__RESULT_CODE__TIMEOUT:
            return RPC_STATUS_DEADLINE_EXCEEDED;
        default:
            return RPC_STATUS_INTERNAL;
    }
}

enum rpc_handler_result om__finish(struct om_service *s,
                                   struct rpc_call *call,
                                   enum om_method m,
                                   enum rpc_status status,
                                   const struct om_result *res)
{
    metrics_add(s->calls[m], 1);
    if (res->code != OZONE__RESULT_CODE__OK) {
        metrics_add(s->failures[m], 1);
        if (status == RPC_STATUS_OK) {
            status = om__status_for(res->code);
        }
        rpc_call_set_error(
            call, status, res->code,
            res->leader_hint[0] != '\0' ? res->leader_hint : NULL, "%s",
            res->message);
    }
    return RPC_HANDLER_DONE;
}

static void *arena_alloc(void *data, size_t size)
{
    return rpc_call_alloc(data, size);
}

static void arena_free(void *data, void *ptr)
{
    /* Freed with the call. */
    (void)data;
    (void)ptr;
}

void om__call_allocator(struct rpc_call *call, ProtobufCAllocator *out)
{
    out->alloc = arena_alloc;
    out->free = arena_free;
    out->allocator_data = call;
}

uint64_t om__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool om__check_names(const char *vol,
                     const char *bucket,
                     const char *key,
                     struct om_result *res)
{
    Ozone__ResultCode c = OZONE__RESULT_CODE__OK;

    memset(res, 0, sizeof(*res));
    if (vol != NULL) {
        c = om_check_resource_name(OM_NAME_VOLUME, vol, strlen(vol),
                                   res->message);
    }
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

void om__submit(struct om_service *s,
                Ozone__Om__OmWriteOp *op,
                struct om_result *res)
{
    op->time_ms = om__now_ms();
    /* DESIGN.md §6.6: no writes while SCM or a datanode is older. */
    if (!om_upgrade_write_allowed(s, op, res)) {
        return;
    }
    om_ha_submit(&s->ha, op, res);
}

/* ---- volumes ---- */

static enum rpc_handler_result create_volume(void *data,
                                             struct rpc_call *call,
                                             const ProtobufCMessage *req_msg,
                                             ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__CreateVolumeRequest *req =
        (const Ozone__Om__CreateVolumeRequest *)req_msg;
    const Ozone__VersionHeader *peer = rpc_call_peer(call);
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__CreateVolumeRequest body =
        OZONE__OM__CREATE_VOLUME_REQUEST__INIT;
    Ozone__Om__VolumeInfo v = OZONE__OM__VOLUME_INFO__INIT;
    struct om_result res;

    (void)resp_msg;
    if (req->volume == NULL) {
        om_result_set(&res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "create volume request has no volume; name one");
        return om__finish(s, call, OM_CREATE_VOLUME, RPC_STATUS_OK, &res);
    }
    if (om__check_names(req->volume->name, NULL, NULL, &res)) {
        v.name = req->volume->name;
        /* Ozone's client sends the user as owner; without one, the
         * caller's node id stands in. */
        v.owner = req->volume->owner;
        if (v.owner[0] == '\0') {
            v.owner = peer->node_id[0] != '\0' ? peer->node_id : "ozone";
        }
        v.admin = req->volume->admin[0] != '\0' ? req->volume->admin : "ozone";
        v.quota_in_bytes = req->volume->quota_in_bytes;
        body.volume = &v;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_CREATE_VOLUME;
        op.create_volume = &body;
        om__submit(s, &op, &res);
    }
    return om__finish(s, call, OM_CREATE_VOLUME, RPC_STATUS_OK, &res);
}

static enum rpc_handler_result info_volume(void *data,
                                           struct rpc_call *call,
                                           const ProtobufCMessage *req_msg,
                                           ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__InfoVolumeRequest *req =
        (const Ozone__Om__InfoVolumeRequest *)req_msg;
    Ozone__Om__InfoVolumeResponse *resp =
        (Ozone__Om__InfoVolumeResponse *)resp_msg;
    ProtobufCAllocator alloc;
    struct om_result res;

    om__call_allocator(call, &alloc);
    if (om__check_names(req->volume, NULL, NULL, &res)) {
        om_get_volume(&s->om, req->volume, &alloc, &resp->volume, &res);
    }
    return om__finish(s, call, OM_INFO_VOLUME, RPC_STATUS_OK, &res);
}

void om__list_into(struct om_service *s,
                   struct rpc_call *call,
                   enum om_table t,
                   const char *parent,
                   const char *prefix,
                   const char *start_after,
                   uint32_t max,
                   const ProtobufCMessageDescriptor *desc,
                   ProtobufCMessage ***items,
                   size_t *n,
                   struct om_result *res)
{
    ProtobufCAllocator alloc;
    ProtobufCMessage **got = NULL;

    om__call_allocator(call, &alloc);
    int rc = om_list(&s->om, t, parent, prefix, start_after, max, desc, &alloc,
                     &got, n);
    if (rc == OZ_ETOOBIG) {
        om_result_set(res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "list prefix or start key is too long; use at most %d "
                      "bytes",
                      OM_MAX_KEY_NAME);
    } else if (rc != 0) {
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot list %s: %s", om_cf_names[t], oz_strerror(rc));
    } else {
        *items = got;
        res->code = OZONE__RESULT_CODE__OK;
    }
}

static enum rpc_handler_result list_volumes(void *data,
                                            struct rpc_call *call,
                                            const ProtobufCMessage *req_msg,
                                            ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__ListVolumesRequest *req =
        (const Ozone__Om__ListVolumesRequest *)req_msg;
    Ozone__Om__ListVolumesResponse *resp =
        (Ozone__Om__ListVolumesResponse *)resp_msg;
    struct om_result res;

    ProtobufCMessage **items = NULL;

    memset(&res, 0, sizeof(res));
    om__list_into(s, call, OM_VOLUME_TABLE, "/", req->prefix, req->start_after,
                  req->max_keys, &ozone__om__volume_info__descriptor, &items,
                  &resp->n_volumes, &res);
    resp->volumes = (Ozone__Om__VolumeInfo **)items;
    return om__finish(s, call, OM_LIST_VOLUMES, RPC_STATUS_OK, &res);
}

static enum rpc_handler_result delete_volume(void *data,
                                             struct rpc_call *call,
                                             const ProtobufCMessage *req_msg,
                                             ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__DeleteVolumeRequest *req =
        (const Ozone__Om__DeleteVolumeRequest *)req_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__DeleteVolumeRequest body = *req;
    struct om_result res;

    (void)resp_msg;
    if (om__check_names(req->volume, NULL, NULL, &res)) {
        body.hdr = NULL; /* the op carries no caller header */
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_DELETE_VOLUME;
        op.delete_volume = &body;
        om__submit(s, &op, &res);
    }
    return om__finish(s, call, OM_DELETE_VOLUME, RPC_STATUS_OK, &res);
}

/* ---- buckets ---- */

static enum rpc_handler_result create_bucket(void *data,
                                             struct rpc_call *call,
                                             const ProtobufCMessage *req_msg,
                                             ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__CreateBucketRequest *req =
        (const Ozone__Om__CreateBucketRequest *)req_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__CreateBucketRequest body =
        OZONE__OM__CREATE_BUCKET_REQUEST__INIT;
    Ozone__Om__BucketInfo b = OZONE__OM__BUCKET_INFO__INIT;
    struct om_result res;

    (void)resp_msg;
    if (req->bucket == NULL) {
        om_result_set(&res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "create bucket request has no bucket; name one");
    } else if (om__check_names(req->bucket->volume, req->bucket->name, NULL,
                               &res)) {
        b.volume = req->bucket->volume;
        b.name = req->bucket->name;
        b.owner = req->bucket->owner;
        /* The default is this OM's configuration: decided here, not at
         * apply (DESIGN.md §8.1). */
        b.replication =
            req->bucket->replication ==
                    OZONE__HDDS__REPLICATION_FACTOR__REPLICATION_UNSPECIFIED
                ? s->default_factor
                : req->bucket->replication;
        body.bucket = &b;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_CREATE_BUCKET;
        op.create_bucket = &body;
        om__submit(s, &op, &res);
    }
    return om__finish(s, call, OM_CREATE_BUCKET, RPC_STATUS_OK, &res);
}

static enum rpc_handler_result info_bucket(void *data,
                                           struct rpc_call *call,
                                           const ProtobufCMessage *req_msg,
                                           ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__InfoBucketRequest *req =
        (const Ozone__Om__InfoBucketRequest *)req_msg;
    Ozone__Om__InfoBucketResponse *resp =
        (Ozone__Om__InfoBucketResponse *)resp_msg;
    ProtobufCAllocator alloc;
    struct om_result res;

    om__call_allocator(call, &alloc);
    if (om__check_names(req->volume, req->bucket, NULL, &res)) {
        om_get_bucket(&s->om, req->volume, req->bucket, &alloc, &resp->bucket,
                      &res);
    }
    return om__finish(s, call, OM_INFO_BUCKET, RPC_STATUS_OK, &res);
}

static enum rpc_handler_result list_buckets(void *data,
                                            struct rpc_call *call,
                                            const ProtobufCMessage *req_msg,
                                            ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__ListBucketsRequest *req =
        (const Ozone__Om__ListBucketsRequest *)req_msg;
    Ozone__Om__ListBucketsResponse *resp =
        (Ozone__Om__ListBucketsResponse *)resp_msg;
    ProtobufCAllocator alloc;
    Ozone__Om__VolumeInfo *v = NULL;
    struct om_result res;
    char parent[OM_DB_KEY_MAX + 1];

    om__call_allocator(call, &alloc);
    if (om__check_names(req->volume, NULL, NULL, &res) &&
        om_get_volume(&s->om, req->volume, &alloc, &v, &res) ==
            OZONE__RESULT_CODE__OK) {
        ProtobufCMessage **items = NULL;
        snprintf(parent, sizeof(parent), "/%s/", req->volume);
        om__list_into(s, call, OM_BUCKET_TABLE, parent, req->prefix,
                      req->start_after, req->max_keys,
                      &ozone__om__bucket_info__descriptor, &items,
                      &resp->n_buckets, &res);
        resp->buckets = (Ozone__Om__BucketInfo **)items;
    }
    return om__finish(s, call, OM_LIST_BUCKETS, RPC_STATUS_OK, &res);
}

static enum rpc_handler_result delete_bucket(void *data,
                                             struct rpc_call *call,
                                             const ProtobufCMessage *req_msg,
                                             ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__DeleteBucketRequest *req =
        (const Ozone__Om__DeleteBucketRequest *)req_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__DeleteBucketRequest body = *req;
    struct om_result res;

    (void)resp_msg;
    if (om__check_names(req->volume, req->bucket, NULL, &res)) {
        body.hdr = NULL;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_DELETE_BUCKET;
        op.delete_bucket = &body;
        om__submit(s, &op, &res);
    }
    return om__finish(s, call, OM_DELETE_BUCKET, RPC_STATUS_OK, &res);
}

/* ---- set-up ---- */

/* Every method passes the raft gate first (om_ha.h): followers answer
 * NOT_LEADER with the leader's address, reads on the leader wait for the
 * read barrier, writes are refused while prepared. */
static bool gate(struct om_service *s,
                 struct rpc_call *call,
                 enum om_method m,
                 bool write)
{
    struct om_result res;

    if (om_ha_check(&s->ha, write, method_names[m], &res)) {
        return true;
    }
    om__finish(s, call, m, RPC_STATUS_OK, &res);
    return false;
}

#define GATED(fn, m, write)                                             \
    static enum rpc_handler_result gated_##fn(                          \
        void *data, struct rpc_call *call, const ProtobufCMessage *req, \
        ProtobufCMessage *resp)                                         \
    {                                                                   \
        if (!gate(data, call, m, write)) {                              \
            return RPC_HANDLER_DONE;                                    \
        }                                                               \
        return fn(data, call, req, resp);                               \
    }

GATED(create_volume, OM_CREATE_VOLUME, true)
GATED(info_volume, OM_INFO_VOLUME, false)
GATED(list_volumes, OM_LIST_VOLUMES, false)
GATED(delete_volume, OM_DELETE_VOLUME, true)
GATED(create_bucket, OM_CREATE_BUCKET, true)
GATED(info_bucket, OM_INFO_BUCKET, false)
GATED(list_buckets, OM_LIST_BUCKETS, false)
GATED(delete_bucket, OM_DELETE_BUCKET, true)
GATED(om__create_key, OM_CREATE_KEY, true)
GATED(om__allocate_block, OM_ALLOCATE_BLOCK, true)
GATED(om__commit_key, OM_COMMIT_KEY, true)
GATED(om__lookup_key, OM_LOOKUP_KEY, false)
GATED(om__list_keys, OM_LIST_KEYS, false)
GATED(om__delete_key, OM_DELETE_KEY, true)
GATED(om__rename_key, OM_RENAME_KEY, true)
GATED(om__set_bucket_quota, OM_SET_BUCKET_QUOTA, true)
GATED(om__get_object_tagging, OM_GET_OBJECT_TAGGING, false)
GATED(om__put_object_tagging, OM_PUT_OBJECT_TAGGING, true)

static const rpc_handler_fn handlers[OM_METHOD_COUNT] = {
    gated_create_volume,          gated_info_volume,
    gated_list_volumes,           gated_delete_volume,
    gated_create_bucket,          gated_info_bucket,
    gated_list_buckets,           gated_delete_bucket,
    gated_om__create_key,         gated_om__allocate_block,
    gated_om__commit_key,         gated_om__lookup_key,
    gated_om__list_keys,          gated_om__delete_key,
    gated_om__rename_key,         gated_om__set_bucket_quota,
    gated_om__get_object_tagging, gated_om__put_object_tagging};

static int read_config(struct om_service *s, char *errmsg)
{
    const char *rep = conf_get_str(s->d->conf, "ozone.replication", "THREE");
    long long block = 0;
    int rc;

    if (strcasecmp(rep, "THREE") == 0 || strcmp(rep, "3") == 0) {
        s->default_factor = OZONE__HDDS__REPLICATION_FACTOR__THREE;
    } else if (strcasecmp(rep, "ONE") == 0 || strcmp(rep, "1") == 0) {
        s->default_factor = OZONE__HDDS__REPLICATION_FACTOR__ONE;
    } else {
        oz_errmsg_printf(errmsg,
                         "invalid value '%s' for 'ozone.replication': "
                         "expected ONE or THREE",
                         rep);
        return OZ_ECONFIG;
    }
    rc = conf_get_size(s->d->conf, "ozone.scm.block.size", "256MB", &block,
                       errmsg);
    if (rc != 0) {
        return rc;
    }
    if (block <= 0) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%lld' for 'ozone.scm.block.size': "
                         "expected a positive size like 256MB",
                         block);
        return OZ_ECONFIG;
    }
    s->block_size = (uint64_t)block;
    return 0;
}

static void register_metrics(struct om_service *s)
{
    char labels[64];

    for (int i = 0; i < OM_METHOD_COUNT; i++) {
        snprintf(labels, sizeof(labels), "op=\"%s\"", method_names[i]);
        s->calls[i] =
            metrics_get("ozone_om_requests_total", labels, METRIC_COUNTER,
                        "OzoneManagerService requests by operation");
        s->failures[i] = metrics_get(
            "ozone_om_request_failures_total", labels, METRIC_COUNTER,
            "OzoneManagerService requests that failed, by "
            "operation");
    }
}

int om_service_new(struct om_service **out, struct daemon *d, char *errmsg)
{
    struct om_service *s = calloc(1, sizeof(*s));
    int rc;

    *out = NULL;
    if (s == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    s->d = d;
    if ((rc = read_config(s, errmsg)) != 0 ||
        (rc = om_init(&s->om, d->kv, errmsg)) != 0) {
        goto fail;
    }
    s->om_ready = true;
    if ((rc = om_scm_init(&s->scm, d, errmsg)) != 0) {
        goto fail;
    }
    s->scm_ready = true;
    rc = om_ha_open(&s->ha, d, &s->om, om_start_options.upgrade,
                    om_start_options.bootstrap, errmsg);
    if (rc != 0) {
        goto fail;
    }
    s->ha_ready = true;
    if ((rc = om_admin_register(&s->ha, errmsg)) != 0) {
        goto fail;
    }
    if (om_start_options.bootstrap &&
        (rc = om_bootstrap_join(s, om_start_options.force, errmsg)) != 0) {
        goto fail;
    }
    register_metrics(s);
    rc = rpc_server_add_service(d->rpc,
                                &ozone__om__ozone_manager_service__descriptor,
                                handlers, s, errmsg);
    if (rc != 0) {
        goto fail;
    }
    log_info(
        "namespace ready: applied index %llu, default replication %s, "
        "block size %llu bytes, SCM at '%s'",
        (unsigned long long)s->om.applied_index,
        s->default_factor == OZONE__HDDS__REPLICATION_FACTOR__ONE ? "ONE"
                                                                  : "THREE",
        (unsigned long long)s->block_size, s->scm.address);
    *out = s;
    return 0;
fail:
    om_service_free(s);
    return rc;
}

void om_service_free(struct om_service *s)
{
    if (s == NULL) {
        return;
    }
    if (s->ha_ready) {
        om_ha_close(&s->ha); /* no apply runs after this */
    }
    if (s->scm_ready) {
        om_scm_release(&s->scm);
    }
    if (s->om_ready) {
        om_release(&s->om);
    }
    free(s);
}
