/* RPC handlers of SCM (DESIGN.md §2, §7): ScmDatanodeService (datanode
 * registration and heartbeats), ScmBlockService (OM's AllocateBlock) and
 * ScmAdminService (listings for the CLI, Recon and tests). Handlers run on
 * the rpc module's threads; the state functions take scm->lock, and the
 * listings here hold it only while copying into the response (memory from
 * rpc_call_alloc never fails and never blocks on I/O).
 */
#include "scm_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define LIST_CONTAINERS_DEFAULT 1000
#define LIST_CONTAINERS_MAX 10000

static void fail(struct rpc_call *call, const struct scm_error *err)
{
    rpc_call_set_error(call, err->status, err->code, NULL, "%s", err->message);
}

static Ozone__Hdds__DatanodeDetails *details_msg(struct rpc_call *call,
                                                 const struct scm_node_addr *a)
{
    Ozone__Hdds__DatanodeDetails *d = rpc_call_alloc(call, sizeof(*d));

    ozone__hdds__datanode_details__init(d);
    d->uuid = rpc_call_strdup(call, a->uuid);
    d->hostname = rpc_call_strdup(call, a->hostname);
    d->ip_address = rpc_call_strdup(call, a->ip);
    d->container_port = a->container_port;
    d->http_port = a->http_port;
    d->network_location = rpc_call_strdup(call, a->location);
    return d;
}

static Ozone__Hdds__Pipeline *pipeline_msg(struct rpc_call *call,
                                           const struct scm_pipeline *p)
{
    Ozone__Hdds__Pipeline *msg = rpc_call_alloc(call, sizeof(*msg));

    ozone__hdds__pipeline__init(msg);
    msg->id = rpc_call_strdup(call, p->id);
    msg->factor = p->factor;
    msg->state = p->state;
    msg->created_ms = p->created_ms;
    msg->n_members = p->n_members;
    msg->members = rpc_call_alloc(call, sizeof(*msg->members) * p->n_members);
    for (size_t m = 0; m < p->n_members; m++) {
        msg->members[m] = details_msg(call, &p->members[m]);
    }
    return msg;
}

/* ---- ScmDatanodeService ---- */

static enum rpc_handler_result handle_register(void *data,
                                               struct rpc_call *call,
                                               const ProtobufCMessage *req_msg,
                                               ProtobufCMessage *resp_msg)
{
    struct scm *scm = data;
    const Ozone__Scm__RegisterRequest *req =
        (const Ozone__Scm__RegisterRequest *)req_msg;
    Ozone__Scm__RegisterResponse *resp =
        (Ozone__Scm__RegisterResponse *)resp_msg;
    struct scm_error err;

    if (scm_register_datanode(scm, rpc_call_peer(call), req, oz_mono_ms(),
                              oz_wall_ms(), &err) != 0) {
        log_warn("registration refused: %s", err.message);
        fail(call, &err);
        return RPC_HANDLER_DONE;
    }
    resp->cluster_id = rpc_call_strdup(call, scm->cluster_id);
    resp->datanode_uuid = rpc_call_strdup(call, req->datanode->uuid);
    return RPC_HANDLER_DONE;
}

struct emit_ctx
{
    struct rpc_call *call;
    Ozone__Scm__HeartbeatResponse *resp;
    size_t cap;
};

/* Under scm->lock: copies one command into the response. */
static void emit_command(void *ctx,
                         const struct scm_command *cmd,
                         const struct scm_pipeline *p)
{
    struct emit_ctx *e = ctx;
    Ozone__Scm__Command *c;

    if (e->resp->n_commands >= e->cap) {
        return;
    }
    c = rpc_call_alloc(e->call, sizeof(*c));
    ozone__scm__command__init(c);
    c->type = cmd->type;
    c->id = cmd->id;
    c->container_id = cmd->container_id;
    c->target_version = cmd->target_version;
    if (p != NULL) {
        c->pipeline = pipeline_msg(e->call, p);
    } else if (cmd->pipeline_id[0] != '\0') {
        /* A pipeline SCM no longer knows: its id is all the node needs. */
        c->pipeline = rpc_call_alloc(e->call, sizeof(*c->pipeline));
        ozone__hdds__pipeline__init(c->pipeline);
        c->pipeline->id = rpc_call_strdup(e->call, cmd->pipeline_id);
        c->pipeline->state = OZONE__HDDS__PIPELINE_STATE__PIPELINE_CLOSED;
    }
    e->resp->commands[e->resp->n_commands++] = c;
}

static enum rpc_handler_result handle_heartbeat(void *data,
                                                struct rpc_call *call,
                                                const ProtobufCMessage *req_msg,
                                                ProtobufCMessage *resp_msg)
{
    struct scm *scm = data;
    Ozone__Scm__HeartbeatResponse *resp =
        (Ozone__Scm__HeartbeatResponse *)resp_msg;
    struct emit_ctx e = {call, resp, SCM_MAX_HB_COMMANDS + 1};
    struct scm_error err;

    resp->commands = rpc_call_alloc(call, sizeof(*resp->commands) * e.cap);
    if (scm_heartbeat(scm, rpc_call_peer(call),
                      (const Ozone__Scm__HeartbeatRequest *)req_msg,
                      oz_mono_ms(), oz_wall_ms(), emit_command, &e,
                      &err) != 0) {
        fail(call, &err);
    }
    return RPC_HANDLER_DONE;
}

static const rpc_handler_fn datanode_handlers[] = {handle_register,
                                                   handle_heartbeat};

/* ---- ScmBlockService ---- */

static enum rpc_handler_result handle_allocate(void *data,
                                               struct rpc_call *call,
                                               const ProtobufCMessage *req_msg,
                                               ProtobufCMessage *resp_msg)
{
    struct scm *scm = data;
    const Ozone__Scm__AllocateBlockRequest *req =
        (const Ozone__Scm__AllocateBlockRequest *)req_msg;
    Ozone__Scm__AllocateBlockResponse *resp =
        (Ozone__Scm__AllocateBlockResponse *)resp_msg;
    size_t n = req->num_blocks == 0 ? 1 : req->num_blocks;
    struct scm_block *blocks;
    struct scm_error err;

    if (n > SCM_MAX_BLOCKS_PER_CALL) {
        rpc_call_set_error(call, RPC_STATUS_INVALID_ARGUMENT,
                           OZONE__RESULT_CODE__INVALID_ARGUMENT, NULL,
                           "cannot allocate %zu blocks in one call: ask for "
                           "1 to %d",
                           n, SCM_MAX_BLOCKS_PER_CALL);
        return RPC_HANDLER_DONE;
    }
    blocks = calloc(n, sizeof(*blocks));
    if (blocks == NULL) {
        rpc_call_set_error(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                           OZONE__RESULT_CODE__INTERNAL_ERROR, NULL,
                           "out of memory");
        return RPC_HANDLER_DONE;
    }
    if (scm_allocate_blocks(scm, req->factor, req->size, n, req->exclude,
                            blocks, &err) != 0) {
        log_info("AllocateBlock from '%s' failed: %s",
                 rpc_call_peer(call)->node_id, err.message);
        fail(call, &err);
        free(blocks);
        return RPC_HANDLER_DONE;
    }
    resp->n_blocks = n;
    resp->blocks = rpc_call_alloc(call, sizeof(*resp->blocks) * n);
    for (size_t i = 0; i < n; i++) {
        Ozone__Hdds__AllocatedBlock *b = rpc_call_alloc(call, sizeof(*b));
        ozone__hdds__allocated_block__init(b);
        b->block_id = rpc_call_alloc(call, sizeof(*b->block_id));
        ozone__hdds__block_id__init(b->block_id);
        b->block_id->container_id = blocks[i].container_id;
        b->block_id->local_id = blocks[i].local_id;
        b->pipeline = pipeline_msg(call, &blocks[i].pipeline);
        b->length = blocks[i].length;
        resp->blocks[i] = b;
        log_debug("allocated block %" PRIu64 "/%" PRIu64 " on pipeline '%s'",
                  blocks[i].container_id, blocks[i].local_id,
                  blocks[i].pipeline.id);
    }
    free(blocks);
    return RPC_HANDLER_DONE;
}

static const rpc_handler_fn block_handlers[] = {handle_allocate};

/* ---- ScmAdminService ---- */

static Ozone__Scm__DatanodeInfo *node_msg(struct rpc_call *call,
                                          const struct scm_node *n)
{
    Ozone__Scm__DatanodeInfo *info = rpc_call_alloc(call, sizeof(*info));

    ozone__scm__datanode_info__init(info);
    info->details = details_msg(call, &n->addr);
    info->state = n->state;
    info->op_state = OZONE__HDDS__NODE_OPERATIONAL_STATE__IN_SERVICE;
    info->last_heartbeat_ms = n->last_hb_wall_ms;
    info->software_version = n->software_version;
    info->apparent_version = n->apparent_version;
    info->container_count = n->container_count;
    info->n_storage = n->n_storage;
    info->storage = rpc_call_alloc(call, sizeof(*info->storage) * n->n_storage);
    for (size_t i = 0; i < n->n_storage; i++) {
        Ozone__Hdds__StorageReport *s = rpc_call_alloc(call, sizeof(*s));
        ozone__hdds__storage_report__init(s);
        s->storage_location = rpc_call_strdup(call, n->storage[i].location);
        s->capacity = n->storage[i].capacity;
        s->used = n->storage[i].used;
        s->remaining = n->storage[i].remaining;
        s->failed = n->storage[i].failed;
        info->storage[i] = s;
    }
    info->n_pipeline_ids = n->n_pipeline_ids;
    info->pipeline_ids =
        rpc_call_alloc(call, sizeof(*info->pipeline_ids) * n->n_pipeline_ids);
    for (size_t i = 0; i < n->n_pipeline_ids; i++) {
        info->pipeline_ids[i] = rpc_call_strdup(call, n->pipeline_ids[i]);
    }
    return info;
}

static enum rpc_handler_result handle_list_datanodes(
    void *data,
    struct rpc_call *call,
    const ProtobufCMessage *req_msg,
    ProtobufCMessage *resp_msg)
{
    struct scm *scm = data;
    const Ozone__Scm__ListDatanodesRequest *req =
        (const Ozone__Scm__ListDatanodesRequest *)req_msg;
    Ozone__Scm__ListDatanodesResponse *resp =
        (Ozone__Scm__ListDatanodesResponse *)resp_msg;

    pthread_mutex_lock(&scm->lock);
    resp->datanodes =
        rpc_call_alloc(call, sizeof(*resp->datanodes) * (scm->n_nodes + 1));
    for (size_t i = 0; i < scm->n_nodes; i++) {
        const struct scm_node *n = scm->nodes[i];
        if (req->state == OZONE__HDDS__NODE_STATE__NODE_STATE_UNSPECIFIED ||
            req->state == n->state) {
            resp->datanodes[resp->n_datanodes++] = node_msg(call, n);
        }
    }
    pthread_mutex_unlock(&scm->lock);
    return RPC_HANDLER_DONE;
}

static Ozone__Hdds__ContainerInfo *container_msg(struct rpc_call *call,
                                                 const struct scm_container *c)
{
    Ozone__Hdds__ContainerInfo *info = rpc_call_alloc(call, sizeof(*info));

    ozone__hdds__container_info__init(info);
    info->id = c->id;
    info->state = c->state;
    info->pipeline_id = rpc_call_strdup(call, c->pipeline_id);
    info->factor = c->factor;
    info->used_bytes = c->used_bytes;
    info->key_count = c->key_count;
    info->size_limit = c->size_limit;
    info->replica_uuids =
        rpc_call_alloc(call, sizeof(*info->replica_uuids) * SCM_MAX_MEMBERS);
    for (size_t m = 0; m < c->n_members; m++) {
        if (c->reported[m] !=
            OZONE__HDDS__CONTAINER_STATE__CONTAINER_STATE_UNSPECIFIED) {
            info->replica_uuids[info->n_replica_uuids++] =
                rpc_call_strdup(call, c->members[m]);
        }
    }
    return info;
}

static enum rpc_handler_result handle_list_containers(
    void *data,
    struct rpc_call *call,
    const ProtobufCMessage *req_msg,
    ProtobufCMessage *resp_msg)
{
    struct scm *scm = data;
    const Ozone__Scm__ListContainersRequest *req =
        (const Ozone__Scm__ListContainersRequest *)req_msg;
    Ozone__Scm__ListContainersResponse *resp =
        (Ozone__Scm__ListContainersResponse *)resp_msg;
    size_t count = req->count == 0 ? LIST_CONTAINERS_DEFAULT : req->count;

    if (count > LIST_CONTAINERS_MAX) {
        count = LIST_CONTAINERS_MAX;
    }
    pthread_mutex_lock(&scm->lock);
    size_t i = scm__container_lower_bound(scm, req->start_id);
    size_t avail = scm->n_containers - i;
    resp->containers = rpc_call_alloc(
        call, sizeof(*resp->containers) * (avail < count ? avail : count) + 1);
    for (; i < scm->n_containers && resp->n_containers < count; i++) {
        const struct scm_container *c = &scm->containers[i];
        if (req->state ==
                OZONE__HDDS__CONTAINER_STATE__CONTAINER_STATE_UNSPECIFIED ||
            req->state == c->state) {
            resp->containers[resp->n_containers++] = container_msg(call, c);
        }
    }
    pthread_mutex_unlock(&scm->lock);
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result handle_list_pipelines(
    void *data,
    struct rpc_call *call,
    const ProtobufCMessage *req_msg,
    ProtobufCMessage *resp_msg)
{
    struct scm *scm = data;
    Ozone__Scm__ListPipelinesResponse *resp =
        (Ozone__Scm__ListPipelinesResponse *)resp_msg;

    (void)req_msg;
    pthread_mutex_lock(&scm->lock);
    resp->pipelines =
        rpc_call_alloc(call, sizeof(*resp->pipelines) * (scm->n_pipelines + 1));
    for (size_t i = 0; i < scm->n_pipelines; i++) {
        resp->pipelines[resp->n_pipelines++] =
            pipeline_msg(call, scm->pipelines[i]);
    }
    pthread_mutex_unlock(&scm->lock);
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result handle_get_container(
    void *data,
    struct rpc_call *call,
    const ProtobufCMessage *req_msg,
    ProtobufCMessage *resp_msg)
{
    struct scm *scm = data;
    const Ozone__Scm__GetContainerRequest *req =
        (const Ozone__Scm__GetContainerRequest *)req_msg;
    Ozone__Scm__GetContainerResponse *resp =
        (Ozone__Scm__GetContainerResponse *)resp_msg;

    pthread_mutex_lock(&scm->lock);
    const struct scm_container *c = scm__container_find(scm, req->container_id);
    if (c == NULL) {
        pthread_mutex_unlock(&scm->lock);
        rpc_call_set_error(
            call, RPC_STATUS_NOT_FOUND, OZONE__RESULT_CODE__CONTAINER_NOT_FOUND,
            NULL, "container %" PRIu64 " does not exist", req->container_id);
        return RPC_HANDLER_DONE;
    }
    resp->container = container_msg(call, c);
    const struct scm_pipeline *p = scm__pipeline_find(scm, c->pipeline_id);
    if (p != NULL) {
        resp->pipeline = pipeline_msg(call, p);
    }
    pthread_mutex_unlock(&scm->lock);
    return RPC_HANDLER_DONE;
}

static const rpc_handler_fn admin_handlers[] = {
    handle_list_datanodes, handle_list_containers, handle_list_pipelines,
    handle_get_container};

int scm_service_register(struct scm *scm, struct rpc_server *srv, char *errmsg)
{
    int rc;

    if ((rc = rpc_server_add_service(
             srv, &ozone__scm__scm_datanode_service__descriptor,
             datanode_handlers, scm, errmsg)) != 0 ||
        (rc = rpc_server_add_service(srv,
                                     &ozone__scm__scm_block_service__descriptor,
                                     block_handlers, scm, errmsg)) != 0 ||
        (rc = rpc_server_add_service(srv,
                                     &ozone__scm__scm_admin_service__descriptor,
                                     admin_handlers, scm, errmsg)) != 0) {
        return rc;
    }
    return 0;
}
