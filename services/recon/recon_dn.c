/* ScmDatanodeService on Recon: datanodes configured with
 * ozone.recon.address send Recon the same RegisterDatanode and Heartbeat
 * as SCM (DESIGN.md §2, §9; services/datanode/dn_heartbeat.c).
 *
 * Recon records and never judges: any software or apparent version is
 * accepted (a datanode newer or older than Recon, pre-finalized or not;
 * DESIGN.md §6.7), no command is ever sent (in particular no
 * FINALIZE_UPGRADE), and a heartbeat from a datanode Recon has not seen
 * register (e.g. after Recon's DB was deleted) is recorded as if it had.
 * Only another cluster's datanode is refused, as SCM refuses it.
 */
#include "recon_internal.h"

#include <string.h>

#include "log.h"

static bool other_cluster(struct recon *r,
                          struct rpc_call *call,
                          const Ozone__VersionHeader *peer)
{
    if (peer->cluster_id == NULL || peer->cluster_id[0] == '\0' ||
        r->d->cluster_id[0] == '\0' ||
        strcmp(peer->cluster_id, r->d->cluster_id) == 0) {
        return false;
    }
    rpc_call_set_error(call, RPC_STATUS_FAILED_PRECONDITION,
                       OZONE__RESULT_CODE__CLUSTER_ID_MISMATCH, NULL,
                       "datanode '%s' belongs to cluster '%s', this Recon to "
                       "'%s'",
                       peer->node_id ? peer->node_id : "?", peer->cluster_id,
                       r->d->cluster_id);
    return true;
}

static enum rpc_handler_result handle_register(void *data,
                                               struct rpc_call *call,
                                               const ProtobufCMessage *req_msg,
                                               ProtobufCMessage *resp_msg)
{
    struct recon *r = data;
    const Ozone__Scm__RegisterRequest *req =
        (const Ozone__Scm__RegisterRequest *)req_msg;
    Ozone__Scm__RegisterResponse *resp =
        (Ozone__Scm__RegisterResponse *)resp_msg;
    const Ozone__VersionHeader *peer = rpc_call_peer(call);

    if (other_cluster(r, call, peer)) {
        return RPC_HANDLER_DONE;
    }
    if (req->datanode == NULL || req->datanode->uuid == NULL ||
        req->datanode->uuid[0] == '\0') {
        rpc_call_set_error(call, RPC_STATUS_INVALID_ARGUMENT,
                           OZONE__RESULT_CODE__INVALID_ARGUMENT, NULL,
                           "registration without a datanode uuid");
        return RPC_HANDLER_DONE;
    }
    recon_dn_report(r, peer, req->datanode, req->datanode->uuid, req->storage,
                    req->n_storage, req->containers, req->n_containers,
                    req->pipeline_ids, req->n_pipeline_ids, true,
                    recon_now_ms());
    log_info(
        "datanode '%s' (%s) registered: software version %u, apparent "
        "version %u, %zu containers",
        req->datanode->uuid,
        req->datanode->hostname ? req->datanode->hostname : "",
        peer->software_version, peer->apparent_version, req->n_containers);
    resp->cluster_id = rpc_call_strdup(call, r->d->cluster_id);
    resp->datanode_uuid = rpc_call_strdup(call, req->datanode->uuid);
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result handle_heartbeat(void *data,
                                                struct rpc_call *call,
                                                const ProtobufCMessage *req_msg,
                                                ProtobufCMessage *resp_msg)
{
    struct recon *r = data;
    const Ozone__Scm__HeartbeatRequest *req =
        (const Ozone__Scm__HeartbeatRequest *)req_msg;
    const Ozone__VersionHeader *peer = rpc_call_peer(call);

    (void)resp_msg; /* never a command (see the top of this file) */
    if (other_cluster(r, call, peer)) {
        return RPC_HANDLER_DONE;
    }
    const char *uuid = req->datanode_uuid != NULL && req->datanode_uuid[0]
                           ? req->datanode_uuid
                           : peer->node_id;
    if (uuid == NULL || uuid[0] == '\0') {
        rpc_call_set_error(call, RPC_STATUS_INVALID_ARGUMENT,
                           OZONE__RESULT_CODE__INVALID_ARGUMENT, NULL,
                           "heartbeat without a datanode uuid");
        return RPC_HANDLER_DONE;
    }
    recon_dn_report(r, peer, NULL, uuid, req->storage, req->n_storage,
                    req->containers, req->n_containers, req->pipeline_ids,
                    req->n_pipeline_ids, false, recon_now_ms());
    return RPC_HANDLER_DONE;
}

static const rpc_handler_fn dn_handlers[] = {handle_register, handle_heartbeat};

int recon_dn_service_register(struct recon *r, char *errmsg)
{
    return rpc_server_add_service(r->d->rpc,
                                  &ozone__scm__scm_datanode_service__descriptor,
                                  dn_handlers, r, errmsg);
}
