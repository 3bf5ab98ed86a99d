/* om_service: the handlers of ozone.om.OzoneManagerService (DESIGN.md §7)
 * and what they share. Private to services/om.
 *
 * Each write handler validates its request (names, existence where it
 * must call SCM), decides the non-deterministic values (time, client id,
 * blocks from SCM: DESIGN.md §8.1) and hands one OmWriteOp to om_submit().
 * Read handlers read the tables directly. Handlers run on the rpc
 * completion-queue threads; a handler never calls SCM while holding the
 * write lock (DESIGN.md §4).
 */
#ifndef OZONE_OM_SERVICE_H
#define OZONE_OM_SERVICE_H

#include <stdint.h>

#include "daemon.h"
#include "metrics.h"
#include "om_ha.h"
#include "om_scm.h"
#include "om_state.h"
#include "rpc.h"

/* The service's methods in om.proto order (the handler table order). */
enum om_method {
    OM_CREATE_VOLUME,
    OM_INFO_VOLUME,
    OM_LIST_VOLUMES,
    OM_DELETE_VOLUME,
    OM_CREATE_BUCKET,
    OM_INFO_BUCKET,
    OM_LIST_BUCKETS,
    OM_DELETE_BUCKET,
    OM_CREATE_KEY,
    OM_ALLOCATE_BLOCK,
    OM_COMMIT_KEY,
    OM_LOOKUP_KEY,
    OM_LIST_KEYS,
    OM_DELETE_KEY,
    OM_RENAME_KEY,
    OM_SET_BUCKET_QUOTA, /* om_features.c, gated (DESIGN.md §6.1) */
    OM_GET_OBJECT_TAGGING,
    OM_PUT_OBJECT_TAGGING,
    OM_METHOD_COUNT
};

struct om_upgrade; /* om_upgrade.c */

struct om_service
{
    struct daemon *d; /* borrowed */
    struct om om;
    bool om_ready;
    struct om_scm scm;
    bool scm_ready;
    struct om_ha ha; /* the raft log every write goes through */
    bool ha_ready;
    Ozone__Hdds__ReplicationFactor default_factor; /* ozone.replication */
    uint64_t block_size;                           /* ozone.scm.block.size */
    struct metric *calls[OM_METHOD_COUNT];
    struct metric *failures[OM_METHOD_COUNT];
    struct om_upgrade *upgrade; /* finalization, order gate (om_upgrade.h) */
};

/* Creates the service state for d (d->kv open) and registers the gRPC
 * service and metrics. On success *out is owned by the caller (free with
 * om_service_free). 0 or OZ_E* with errmsg. */
int om_service_new(struct om_service **out, struct daemon *d, char *errmsg);

/* Start-up options of `ozone om` (main.c). */
struct om_start_options
{
    bool upgrade;   /* --upgrade / --downgrade: leave prepare mode */
    bool bootstrap; /* --bootstrap: join an existing OM service */
    bool force;     /* --force: skip the bootstrap config check */
};
extern struct om_start_options om_start_options;

/* ozone om --bootstrap: checks that every OM of the service lists this
 * one (unless force) and asks the leader to add it (om_bootstrap.c). */
int om_bootstrap_join(struct om_service *s, bool force, char *errmsg);
/* After the rpc server has stopped. s may be NULL. */
void om_service_free(struct om_service *s);

/* ---- shared by the handler files ---- */

/* gRPC status for an Ozone result code. */
enum rpc_status om__status_for(Ozone__ResultCode code);

/* Counts the call, and when res is not OK sets the call's error (with
 * status, or om__status_for(res->code) when status is RPC_STATUS_OK). */
enum rpc_handler_result om__finish(struct om_service *s,
                                   struct rpc_call *call,
                                   enum om_method m,
                                   enum rpc_status status,
                                   const struct om_result *res);

/* A protobuf-c allocator on the call's arena (freed with the call). */
void om__call_allocator(struct rpc_call *call, ProtobufCAllocator *out);

/* Wall clock in ms since the epoch (decided by the handler). */
uint64_t om__now_ms(void);

/* Validates names; vol and bucket are checked when not NULL, key too. */
bool om__check_names(const char *vol,
                     const char *bucket,
                     const char *key,
                     struct om_result *res);

/* Lists table t (see om_list) into items (call arena) and n; res gets
 * the outcome (INVALID_ARGUMENT for a too long prefix). */
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
                   struct om_result *res);

/* Submits op (time set from the clock) through the raft log; res gets the
 * outcome (NOT_LEADER with the leader's address on a follower). */
void om__submit(struct om_service *s,
                Ozone__Om__OmWriteOp *op,
                struct om_result *res);

/* Key handlers (om_service_key.c), in enum order from OM_CREATE_KEY. */
enum rpc_handler_result om__create_key(void *,
                                       struct rpc_call *,
                                       const ProtobufCMessage *,
                                       ProtobufCMessage *);
enum rpc_handler_result om__allocate_block(void *,
                                           struct rpc_call *,
                                           const ProtobufCMessage *,
                                           ProtobufCMessage *);
enum rpc_handler_result om__commit_key(void *,
                                       struct rpc_call *,
                                       const ProtobufCMessage *,
                                       ProtobufCMessage *);
enum rpc_handler_result om__lookup_key(void *,
                                       struct rpc_call *,
                                       const ProtobufCMessage *,
                                       ProtobufCMessage *);
enum rpc_handler_result om__list_keys(void *,
                                      struct rpc_call *,
                                      const ProtobufCMessage *,
                                      ProtobufCMessage *);
enum rpc_handler_result om__delete_key(void *,
                                       struct rpc_call *,
                                       const ProtobufCMessage *,
                                       ProtobufCMessage *);
enum rpc_handler_result om__rename_key(void *,
                                       struct rpc_call *,
                                       const ProtobufCMessage *,
                                       ProtobufCMessage *);

#endif
