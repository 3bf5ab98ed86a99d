/* ozone.om.OmDbService/DBUpdates: the RocksDB write batches after a
 * sequence number, for Recon's incremental sync (DESIGN.md §9; Ozone's
 * OMDBUpdatesHandler / getDBUpdates).
 *
 * Batches are read from the WAL with kv_updates_since and sent as RocksDB
 * encodes them; Recon applies them to its copy restored from a checkpoint
 * of this same DB, so column family ids match. When the WAL no longer
 * holds the next sequence (a flush removed it) the answer is
 * UPDATES_NOT_AVAILABLE and Recon takes a checkpoint instead. Any OM of a
 * ring answers from its own DB; sequence numbers are per DB, so Recon
 * keeps asking the node its copy came from (it checks the node id in the
 * reply's version header).
 */
#include "om_recon.h"
#include "om_service.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "log.h"
#include "metrics.h"
#include "om.pb-c.h"

#define DEFAULT_LIMIT 50000
#define MAX_LIMIT 1000000
/* Below the default 32 MiB message cap of both ends. */
#define MAX_REPLY_BYTES (16u << 20)

static enum rpc_handler_result handle_db_updates(
    void *data,
    struct rpc_call *call,
    const ProtobufCMessage *req_msg,
    ProtobufCMessage *resp_msg)
{
    struct daemon *d = data;
    const Ozone__Om__DBUpdatesRequest *req =
        (const Ozone__Om__DBUpdatesRequest *)req_msg;
    Ozone__Om__DBUpdatesResponse *resp =
        (Ozone__Om__DBUpdatesResponse *)resp_msg;
    uint64_t limit = req->limit == 0 ? DEFAULT_LIMIT : req->limit;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct kv_update *u = NULL;
    size_t n = 0;
    int rc;

    if (limit > MAX_LIMIT) {
        limit = MAX_LIMIT;
    }
    metrics_add(metrics_get("ozone_om_db_updates_calls_total", "",
                            METRIC_COUNTER, "DBUpdates calls (Recon)"),
                1);
    /* Recon sees applied writes once flushed: flush now rather than wait
     * for the double buffer's timer. */
    if (om_buffer_flush(&((struct om_service *)d->state)->om, false, errmsg) !=
        0) {
        log_warn("DBUpdates: double buffer flush failed: %s", errmsg);
    }
    /* The latest sequence first: the batches sent are at or below it
     * only if read after, which the reader does not rely on. */
    resp->latest_sequence = kv_latest_sequence(d->kv);
    rc = kv_updates_since(d->kv, req->from_sequence, limit, MAX_REPLY_BYTES, &u,
                          &n, errmsg);
    if (rc == OZ_ENOTFOUND) {
        rpc_call_set_error(call, RPC_STATUS_NOT_FOUND,
                           OZONE__RESULT_CODE__UPDATES_NOT_AVAILABLE, NULL,
                           "updates after sequence %" PRIu64
                           " are not available: %s",
                           req->from_sequence, errmsg);
        return RPC_HANDLER_DONE;
    }
    if (rc != 0) {
        log_error("DBUpdates from '%s': %s", rpc_call_peer(call)->node_id,
                  errmsg);
        rpc_call_set_error(call, RPC_STATUS_INTERNAL,
                           OZONE__RESULT_CODE__INTERNAL_ERROR, NULL,
                           "cannot read updates: %s", errmsg);
        return RPC_HANDLER_DONE;
    }
    resp->batches = rpc_call_alloc(call, sizeof(*resp->batches) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        Ozone__Om__DBUpdateBatch *b = rpc_call_alloc(call, sizeof(*b));
        ozone__om__dbupdate_batch__init(b);
        b->sequence = u[i].sequence;
        b->count = u[i].count;
        b->data.len = u[i].len;
        b->data.data = rpc_call_alloc(call, u[i].len + 1);
        memcpy(b->data.data, u[i].data, u[i].len);
        resp->batches[resp->n_batches++] = b;
        if (u[i].sequence + u[i].count - 1 > resp->latest_sequence) {
            resp->latest_sequence = u[i].sequence + u[i].count - 1;
        }
    }
    kv_updates_free(u, n);
    return RPC_HANDLER_DONE;
}

static const rpc_handler_fn db_handlers[] = {handle_db_updates};

int om_dbupdates_register(struct daemon *d, char *errmsg)
{
    return rpc_server_add_service(d->rpc, &ozone__om__om_db_service__descriptor,
                                  db_handlers, d, errmsg);
}
