/* OM -> SCM block allocation (DESIGN.md §7: "OM CreateKey asks SCM to
 * allocate a block in an open container on a pipeline of HEALTHY DNs"). */
#include "om_scm.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "scm.pb-c.h"

#define OM_SCM_MAX_ATTEMPTS 3

int om_scm_init(struct om_scm *s, struct daemon *d, char *errmsg)
{
    const char *addrs[1] = {s->address};
    const char *sid = conf_get(d->conf, "ozone.om.service.ids");
    struct rpc_client_config cfg;

    memset(s, 0, sizeof(*s));
    daemon_scm_address(d, s->address, sizeof(s->address));
    if (sid != NULL && sid[0] != '\0') {
        size_t n = strcspn(sid, ",");
        oz_strlcpy(s->owner, sid,
                   n + 1 < sizeof(s->owner) ? n + 1 : sizeof(s->owner));
    } else {
        oz_strlcpy(s->owner, "om", sizeof(s->owner));
    }
    daemon_client_config(d, addrs, 1, &cfg);
    /* Leave the OM's own client time to get our answer (header comment). */
    cfg.deadline_ms = cfg.deadline_ms / 2 > 0 ? cfg.deadline_ms / 2 : 1;
    cfg.max_attempts = OM_SCM_MAX_ATTEMPTS;
    return rpc_client_new(&s->client, &cfg, errmsg);
}

void om_scm_release(struct om_scm *s)
{
    rpc_client_free(s->client);
    s->client = NULL;
}

/* Deep-copies SCM's block into alloc's memory: encode and decode, the one
 * copy protobuf-c offers for a whole message tree. */
static Ozone__Hdds__AllocatedBlock *copy_block(
    const Ozone__Hdds__AllocatedBlock *b,
    ProtobufCAllocator *alloc)
{
    size_t len = protobuf_c_message_get_packed_size(&b->base);
    uint8_t *buf = malloc(len ? len : 1);
    Ozone__Hdds__AllocatedBlock *copy = NULL;

    if (buf != NULL) {
        protobuf_c_message_pack(&b->base, buf);
        copy = ozone__hdds__allocated_block__unpack(alloc, len, buf);
        free(buf);
    }
    return copy;
}

static bool usable_block(const Ozone__Hdds__AllocatedBlock *b,
                         Ozone__Hdds__ReplicationFactor f)
{
    return b != NULL && b->block_id != NULL && b->pipeline != NULL &&
           b->pipeline->n_members == (size_t)f;
}

static Ozone__ResultCode scm_failed(struct om_scm *s,
                                    int rc,
                                    const struct rpc_error *err,
                                    enum rpc_status *status,
                                    struct om_result *res)
{
    if (rc == OZ_EUNAVAILABLE || rc == OZ_ETIMEDOUT) {
        *status = RPC_STATUS_UNAVAILABLE;
        om_result_set(res, OZONE__RESULT_CODE__UNAVAILABLE,
                      "cannot allocate a block: SCM at '%s' is not "
                      "reachable (%s); check that SCM runs and "
                      "ozone.scm.names",
                      s->address, err->message);
    } else if (rc == OZ_ERPC) {
        *status = err->status;
        om_result_set(res, err->code, "SCM at '%s' cannot allocate a block: %s",
                      s->address, err->message);
    } else {
        *status = RPC_STATUS_INTERNAL;
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot allocate a block from SCM at '%s': %s",
                      s->address, err->message);
    }
    log_warn("%s", res->message);
    return res->code;
}

Ozone__ResultCode om_scm_allocate(struct om_scm *s,
                                  uint64_t size,
                                  Ozone__Hdds__ReplicationFactor f,
                                  const Ozone__Hdds__ExcludeList *ex,
                                  ProtobufCAllocator *alloc,
                                  Ozone__Om__KeyLocation **out,
                                  enum rpc_status *status,
                                  struct om_result *res)
{
    Ozone__Scm__AllocateBlockRequest req =
        OZONE__SCM__ALLOCATE_BLOCK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    int rc;

    *out = NULL;
    memset(&err, 0, sizeof(err));
    req.size = size;
    req.num_blocks = 1;
    req.factor = f;
    req.owner = s->owner;
    req.exclude = (Ozone__Hdds__ExcludeList *)ex;
    rc = rpc_client_call(s->client, &ozone__scm__scm_block_service__descriptor,
                         "AllocateBlock", &req.base, &resp, &err);
    if (rc != 0) {
        return scm_failed(s, rc, &err, status, res);
    }
    Ozone__Scm__AllocateBlockResponse *r =
        (Ozone__Scm__AllocateBlockResponse *)resp;
    Ozone__Hdds__AllocatedBlock *b = NULL;
    if (r->n_blocks < 1 || !usable_block(r->blocks[0], f)) {
        *status = RPC_STATUS_INTERNAL;
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "SCM at '%s' answered AllocateBlock without a usable "
                      "block of replication %d; check SCM's log",
                      s->address, (int)f);
    } else if ((b = copy_block(r->blocks[0], alloc)) == NULL) {
        *status = RPC_STATUS_INTERNAL;
        om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "out of memory copying SCM's block");
    } else {
        Ozone__Om__KeyLocation *l =
            alloc->alloc(alloc->allocator_data, sizeof(*l));
        if (l == NULL) {
            *status = RPC_STATUS_INTERNAL;
            om_result_set(res, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "out of memory copying SCM's block");
        } else {
            ozone__om__key_location__init(l);
            l->block_id = b->block_id;
            l->pipeline = b->pipeline;
            l->length = b->length;
            *out = l;
            res->code = OZONE__RESULT_CODE__OK;
        }
    }
    rpc_message_free(resp);
    return res->code;
}
