/* DatanodeService: the chunk and block RPCs clients call (DESIGN.md §7).
 * Handlers run on the rpc module's completion-queue threads and call the
 * container store directly; they block only on the local disk, never on
 * another daemon. Responses hang their memory off the call: BlockData is
 * unpacked with an allocator backed by rpc_call_alloc. */
#include "dn_internal.h"

#include <string.h>

#include "rpc.h"

/* gRPC status for each store result, so generic clients see a sensible
 * status beside the Ozone code in OzoneError (DESIGN.md §5). */
static enum rpc_status status_of(Ozone__ResultCode code)
{
    switch (code) {
        case OZONE__RESULT_CODE__INVALID_ARGUMENT:
            return RPC_STATUS_INVALID_ARGUMENT;
        case OZONE__RESULT_CODE__CONTAINER_NOT_FOUND:
        case OZONE__RESULT_CODE__BLOCK_NOT_FOUND:
        case OZONE__RESULT_CODE__CHUNK_NOT_FOUND:
            return RPC_STATUS_NOT_FOUND;
        case OZONE__RESULT_CODE__CONTAINER_NOT_OPEN:
            return RPC_STATUS_FAILED_PRECONDITION;
        case OZONE__RESULT_CODE__CHECKSUM_MISMATCH:
            return RPC_STATUS_DATA_LOSS;
        case OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION:
            return RPC_STATUS_FAILED_PRECONDITION;
        default:
            return RPC_STATUS_INTERNAL;
    }
}

static enum rpc_handler_result fail(struct rpc_call *call,
                                    const struct dn_result *res)
{
    Ozone__ResultCode code = res->code != OZONE__RESULT_CODE__OK
                                 ? res->code
                                 : OZONE__RESULT_CODE__INTERNAL_ERROR;

    rpc_call_set_error(call, status_of(code), code, NULL, "%s", res->msg);
    return RPC_HANDLER_DONE;
}

static void *call_alloc(void *data, size_t size)
{
    return rpc_call_alloc(data, size);
}

static void call_free(void *data, void *ptr)
{
    /* Freed with the call. */
    (void)data;
    (void)ptr;
}

static void init_res(struct dn_result *res)
{
    res->code = OZONE__RESULT_CODE__OK;
    res->msg[0] = '\0';
}

static enum rpc_handler_result write_chunk(void *data,
                                           struct rpc_call *call,
                                           const ProtobufCMessage *req_msg,
                                           ProtobufCMessage *resp_msg)
{
    const Ozone__Datanode__WriteChunkRequest *req =
        (const Ozone__Datanode__WriteChunkRequest *)req_msg;
    struct dn_result res;

    (void)resp_msg;
    init_res(&res);
    if (dn_store_write_chunk(data, req->block_id, req->chunk, req->data.data,
                             req->data.len, req->pipeline_id, &res) != 0) {
        return fail(call, &res);
    }
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result read_chunk(void *data,
                                          struct rpc_call *call,
                                          const ProtobufCMessage *req_msg,
                                          ProtobufCMessage *resp_msg)
{
    const Ozone__Datanode__ReadChunkRequest *req =
        (const Ozone__Datanode__ReadChunkRequest *)req_msg;
    Ozone__Datanode__ReadChunkResponse *resp =
        (Ozone__Datanode__ReadChunkResponse *)resp_msg;
    struct dn_store *s = data;
    struct dn_result res;

    init_res(&res);
    /* The length bounds the buffer: check it before allocating. */
    if (req->chunk == NULL || req->chunk->length == 0 ||
        req->chunk->length > s->max_chunk_bytes) {
        dn__fail(&res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                 "chunk to read must have a length of 1 to %zu bytes",
                 s->max_chunk_bytes);
        return fail(call, &res);
    }
    uint8_t *buf = rpc_call_alloc(call, req->chunk->length);
    if (dn_store_read_chunk(s, req->block_id, req->chunk, buf, &res) != 0) {
        return fail(call, &res);
    }
    resp->data.data = buf;
    resp->data.len = req->chunk->length;
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result put_block(void *data,
                                         struct rpc_call *call,
                                         const ProtobufCMessage *req_msg,
                                         ProtobufCMessage *resp_msg)
{
    const Ozone__Datanode__PutBlockRequest *req =
        (const Ozone__Datanode__PutBlockRequest *)req_msg;
    Ozone__Datanode__PutBlockResponse *resp =
        (Ozone__Datanode__PutBlockResponse *)resp_msg;
    struct dn_result res;
    uint64_t committed = 0;

    init_res(&res);
    if (dn_store_put_block(data, req->block, &committed, &res) != 0) {
        return fail(call, &res);
    }
    resp->committed_length = committed;
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result get_block(void *data,
                                         struct rpc_call *call,
                                         const ProtobufCMessage *req_msg,
                                         ProtobufCMessage *resp_msg)
{
    const Ozone__Datanode__GetBlockRequest *req =
        (const Ozone__Datanode__GetBlockRequest *)req_msg;
    Ozone__Datanode__GetBlockResponse *resp =
        (Ozone__Datanode__GetBlockResponse *)resp_msg;
    ProtobufCAllocator alloc = {call_alloc, call_free, call};
    struct dn_result res;

    init_res(&res);
    if (dn_store_get_block(data, req->block_id, &alloc, &resp->block, &res) !=
        0) {
        return fail(call, &res);
    }
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result list_block(void *data,
                                          struct rpc_call *call,
                                          const ProtobufCMessage *req_msg,
                                          ProtobufCMessage *resp_msg)
{
    const Ozone__Datanode__ListBlockRequest *req =
        (const Ozone__Datanode__ListBlockRequest *)req_msg;
    Ozone__Datanode__ListBlockResponse *resp =
        (Ozone__Datanode__ListBlockResponse *)resp_msg;
    ProtobufCAllocator alloc = {call_alloc, call_free, call};
    struct dn_result res;

    init_res(&res);
    if (dn_store_list_blocks(data, req->container_id, req->start_local_id,
                             req->count, &alloc, &resp->blocks, &resp->n_blocks,
                             &res) != 0) {
        return fail(call, &res);
    }
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result get_container(void *data,
                                             struct rpc_call *call,
                                             const ProtobufCMessage *req_msg,
                                             ProtobufCMessage *resp_msg)
{
    const Ozone__Datanode__ContainerInfoRequest *req =
        (const Ozone__Datanode__ContainerInfoRequest *)req_msg;
    Ozone__Datanode__ContainerInfoResponse *resp =
        (Ozone__Datanode__ContainerInfoResponse *)resp_msg;
    struct dn_store *s = data;
    struct dn_container *c = dn_store_find(s, req->container_id);

    if (c == NULL) {
        rpc_call_set_error(call, RPC_STATUS_NOT_FOUND,
                           OZONE__RESULT_CODE__CONTAINER_NOT_FOUND, NULL,
                           "container %llu does not exist on datanode '%s'",
                           (unsigned long long)req->container_id, s->node_id);
        return RPC_HANDLER_DONE;
    }
    Ozone__Hdds__ContainerReplicaReport *r = rpc_call_alloc(call, sizeof(*r));
    dn_container_report(c, r);
    r->pipeline_id = rpc_call_strdup(call, c->pipeline_id);
    resp->container = r;
    struct dn_checksum sum;
    if (dn_container_checksum_read(s, c, &sum) == 0) {
        resp->container_checksum = rpc_call_strdup(call, sum.hex);
    }
    return RPC_HANDLER_DONE;
}

/* HDDS CONTAINER_CHECKSUM (102): refused before finalization. */
static enum rpc_handler_result get_container_checksum(
    void *data,
    struct rpc_call *call,
    const ProtobufCMessage *req_msg,
    ProtobufCMessage *resp_msg)
{
    const Ozone__Datanode__GetContainerChecksumRequest *req =
        (const Ozone__Datanode__GetContainerChecksumRequest *)req_msg;
    Ozone__Datanode__GetContainerChecksumResponse *resp =
        (Ozone__Datanode__GetContainerChecksumResponse *)resp_msg;
    struct dn_store *s = data;
    struct dn_result res;
    struct dn_checksum sum;

    init_res(&res);
    if (s->vm != NULL &&
        version_manager_check_feature(s->vm, VERSION_HDDS_CONTAINER_CHECKSUM,
                                      "GetContainerChecksum", res.msg) != 0) {
        res.code =
            OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION;
        return fail(call, &res);
    }
    struct dn_container *c = dn_store_find(s, req->container_id);
    if (c == NULL) {
        rpc_call_set_error(call, RPC_STATUS_NOT_FOUND,
                           OZONE__RESULT_CODE__CONTAINER_NOT_FOUND, NULL,
                           "container %llu does not exist on datanode '%s'",
                           (unsigned long long)req->container_id, s->node_id);
        return RPC_HANDLER_DONE;
    }
    if (dn_container_checksum_get(s, c, &sum, &res) != 0) {
        return fail(call, &res);
    }
    resp->container_id = c->id;
    resp->algorithm = "SHA256";
    resp->checksum = rpc_call_strdup(call, sum.hex);
    resp->block_count = sum.blocks;
    resp->bytes = sum.bytes;
    return RPC_HANDLER_DONE;
}

/* In the order of the methods in datanode.proto. */
static const rpc_handler_fn handlers[] = {
    write_chunk,
    read_chunk,
    put_block,
    get_block,
    list_block,
    get_container,
    get_container_checksum,
};

int dn_service_register(struct rpc_server *srv,
                        struct dn_store *s,
                        char *errmsg)
{
    const ProtobufCServiceDescriptor *svc =
        &ozone__datanode__datanode_service__descriptor;

    if (svc->n_methods != sizeof(handlers) / sizeof(handlers[0]) ||
        strcmp(svc->methods[0].name, "WriteChunk") != 0 ||
        strcmp(svc->methods[5].name, "GetContainer") != 0) {
        oz_errmsg_printf(errmsg,
                         "DatanodeService in datanode.proto changed: update "
                         "services/datanode/dn_service.c");
        return OZ_EINVAL;
    }
    return rpc_server_add_service(srv, svc, handlers, s, errmsg);
}
