/* OzoneManagerService key handlers (DESIGN.md §7 write and read paths).
 * CreateKey and AllocateBlock call SCM before submitting, outside the
 * write lock; the blocks SCM gave are part of the op (DESIGN.md §8.1). */
#include "om_service.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "om_names.h"
#include "om_upgrade.h"

/* A random, non-zero 64-bit open-key session id (Ozone's clientID). */
static uint64_t new_client_id(void)
{
    uint64_t id = 0;

    while (id == 0) {
        if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
            /* getrandom only fails before the pool is seeded or on
             * signals; mix the clock as a fallback. */
            id = om__now_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)clock();
        }
    }
    return id;
}

/* Size to ask SCM for: what the client expects, at most one block. */
static uint64_t block_request_size(const struct om_service *s, uint64_t want)
{
    return want > 0 && want < s->block_size ? want : s->block_size;
}

enum rpc_handler_result om__create_key(void *data,
                                       struct rpc_call *call,
                                       const ProtobufCMessage *req_msg,
                                       ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__CreateKeyRequest *req =
        (const Ozone__Om__CreateKeyRequest *)req_msg;
    Ozone__Om__CreateKeyResponse *resp =
        (Ozone__Om__CreateKeyResponse *)resp_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmOpenKeyOp body = OZONE__OM__OM_OPEN_KEY_OP__INIT;
    Ozone__Om__KeyInfo k = OZONE__OM__KEY_INFO__INIT;
    Ozone__Om__BucketInfo *bk = NULL;
    Ozone__Om__KeyLocation *loc = NULL;
    enum rpc_status status = RPC_STATUS_OK;
    ProtobufCAllocator alloc;
    struct om_result res;

    om__call_allocator(call, &alloc);
    if (!om__check_names(req->volume, req->bucket, req->key, &res) ||
        om_get_bucket(&s->om, req->volume, req->bucket, &alloc, &bk, &res) !=
            OZONE__RESULT_CODE__OK ||
        /* OM KEY_TAGS (102): refused before SCM is asked for a block. */
        (req->n_tags > 0 && (!om_feature_allowed(&s->om, VERSION_OM_KEY_TAGS,
                                                 "CreateKey with tags", &res) ||
                             !om_tags_valid(req->tags, req->n_tags, &res)))) {
        return om__finish(s, call, OM_CREATE_KEY, status, &res);
    }
    k.replication =
        req->replication !=
                OZONE__HDDS__REPLICATION_FACTOR__REPLICATION_UNSPECIFIED
            ? req->replication
            : bk->replication;
    if (k.replication != OZONE__HDDS__REPLICATION_FACTOR__ONE &&
        k.replication != OZONE__HDDS__REPLICATION_FACTOR__THREE) {
        om_result_set(&res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "invalid replication %d for key '%s'; use ONE or THREE",
                      (int)k.replication, req->key);
        return om__finish(s, call, OM_CREATE_KEY, status, &res);
    }
    if (om_scm_allocate(&s->scm, block_request_size(s, req->data_size),
                        k.replication, NULL, &alloc, &loc, &status,
                        &res) != OZONE__RESULT_CODE__OK) {
        return om__finish(s, call, OM_CREATE_KEY, status, &res);
    }
    k.volume = req->volume;
    k.bucket = req->bucket;
    k.name = req->key;
    k.data_size = req->data_size;
    k.n_locations = 1;
    k.tags = req->tags;
    k.n_tags = req->n_tags;
    k.locations = &loc;
    body.client_id = new_client_id();
    body.key = &k;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_OPEN_KEY;
    op.open_key = &body;
    om__submit(s, &op, &res);
    if (res.code == OZONE__RESULT_CODE__OK) {
        /* Answer with what was recorded (times and ids set at apply). */
        resp->client_id = body.client_id;
        om_get_open_key(&s->om, req->volume, req->bucket, req->key,
                        body.client_id, &alloc, &resp->key, &res);
    }
    return om__finish(s, call, OM_CREATE_KEY, status, &res);
}

enum rpc_handler_result om__allocate_block(void *data,
                                           struct rpc_call *call,
                                           const ProtobufCMessage *req_msg,
                                           ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__AllocateBlockRequest *req =
        (const Ozone__Om__AllocateBlockRequest *)req_msg;
    Ozone__Om__AllocateBlockResponse *resp =
        (Ozone__Om__AllocateBlockResponse *)resp_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__OmAddBlockOp body = OZONE__OM__OM_ADD_BLOCK_OP__INIT;
    Ozone__Om__KeyInfo *open = NULL;
    Ozone__Om__KeyLocation *loc = NULL;
    enum rpc_status status = RPC_STATUS_OK;
    ProtobufCAllocator alloc;
    struct om_result res;

    om__call_allocator(call, &alloc);
    if (!om__check_names(req->volume, req->bucket, req->key, &res) ||
        om_get_open_key(&s->om, req->volume, req->bucket, req->key,
                        req->client_id, &alloc, &open,
                        &res) != OZONE__RESULT_CODE__OK ||
        om_scm_allocate(&s->scm, s->block_size, open->replication, req->exclude,
                        &alloc, &loc, &status,
                        &res) != OZONE__RESULT_CODE__OK) {
        return om__finish(s, call, OM_ALLOCATE_BLOCK, status, &res);
    }
    body.volume = req->volume;
    body.bucket = req->bucket;
    body.key = req->key;
    body.client_id = req->client_id;
    body.location = loc;
    op.op_case = OZONE__OM__OM_WRITE_OP__OP_ADD_BLOCK;
    op.add_block = &body;
    om__submit(s, &op, &res);
    if (res.code == OZONE__RESULT_CODE__OK) {
        resp->location = loc;
    }
    return om__finish(s, call, OM_ALLOCATE_BLOCK, status, &res);
}

enum rpc_handler_result om__commit_key(void *data,
                                       struct rpc_call *call,
                                       const ProtobufCMessage *req_msg,
                                       ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__CommitKeyRequest *req =
        (const Ozone__Om__CommitKeyRequest *)req_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__CommitKeyRequest body = *req;
    struct om_result res;

    (void)resp_msg;
    if (om__check_names(req->volume, req->bucket, req->key, &res)) {
        body.hdr = NULL;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_COMMIT_KEY;
        op.commit_key = &body;
        om__submit(s, &op, &res);
    }
    return om__finish(s, call, OM_COMMIT_KEY, RPC_STATUS_OK, &res);
}

enum rpc_handler_result om__lookup_key(void *data,
                                       struct rpc_call *call,
                                       const ProtobufCMessage *req_msg,
                                       ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__LookupKeyRequest *req =
        (const Ozone__Om__LookupKeyRequest *)req_msg;
    Ozone__Om__LookupKeyResponse *resp =
        (Ozone__Om__LookupKeyResponse *)resp_msg;
    ProtobufCAllocator alloc;
    struct om_result res;

    om__call_allocator(call, &alloc);
    if (om__check_names(req->volume, req->bucket, req->key, &res)) {
        om_get_key(&s->om, req->volume, req->bucket, req->key, &alloc,
                   &resp->key, &res);
    }
    return om__finish(s, call, OM_LOOKUP_KEY, RPC_STATUS_OK, &res);
}

enum rpc_handler_result om__list_keys(void *data,
                                      struct rpc_call *call,
                                      const ProtobufCMessage *req_msg,
                                      ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__ListKeysRequest *req =
        (const Ozone__Om__ListKeysRequest *)req_msg;
    Ozone__Om__ListKeysResponse *resp = (Ozone__Om__ListKeysResponse *)resp_msg;
    Ozone__Om__BucketInfo *bk = NULL;
    ProtobufCAllocator alloc;
    struct om_result res;
    char parent[OM_DB_KEY_MAX];

    om__call_allocator(call, &alloc);
    if (om__check_names(req->volume, req->bucket, NULL, &res) &&
        om_get_bucket(&s->om, req->volume, req->bucket, &alloc, &bk, &res) ==
            OZONE__RESULT_CODE__OK) {
        ProtobufCMessage **items = NULL;
        snprintf(parent, sizeof(parent), "/%s/%s/", req->volume, req->bucket);
        om__list_into(s, call, OM_KEY_TABLE, parent, req->prefix,
                      req->start_after, req->max_keys,
                      &ozone__om__key_info__descriptor, &items, &resp->n_keys,
                      &res);
        resp->keys = (Ozone__Om__KeyInfo **)items;
    }
    return om__finish(s, call, OM_LIST_KEYS, RPC_STATUS_OK, &res);
}

enum rpc_handler_result om__delete_key(void *data,
                                       struct rpc_call *call,
                                       const ProtobufCMessage *req_msg,
                                       ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__DeleteKeyRequest *req =
        (const Ozone__Om__DeleteKeyRequest *)req_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__DeleteKeyRequest body = *req;
    struct om_result res;

    (void)resp_msg;
    if (om__check_names(req->volume, req->bucket, req->key, &res)) {
        body.hdr = NULL;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_DELETE_KEY;
        op.delete_key = &body;
        om__submit(s, &op, &res);
    }
    return om__finish(s, call, OM_DELETE_KEY, RPC_STATUS_OK, &res);
}

enum rpc_handler_result om__rename_key(void *data,
                                       struct rpc_call *call,
                                       const ProtobufCMessage *req_msg,
                                       ProtobufCMessage *resp_msg)
{
    struct om_service *s = data;
    const Ozone__Om__RenameKeyRequest *req =
        (const Ozone__Om__RenameKeyRequest *)req_msg;
    Ozone__Om__OmWriteOp op = OZONE__OM__OM_WRITE_OP__INIT;
    Ozone__Om__RenameKeyRequest body = *req;
    struct om_result res;

    (void)resp_msg;
    if (om__check_names(req->volume, req->bucket, req->key, &res) &&
        om__check_names(NULL, NULL, req->to_key, &res)) {
        body.hdr = NULL;
        op.op_case = OZONE__OM__OM_WRITE_OP__OP_RENAME_KEY;
        op.rename_key = &body;
        om__submit(s, &op, &res);
    }
    return om__finish(s, call, OM_RENAME_KEY, RPC_STATUS_OK, &res);
}
