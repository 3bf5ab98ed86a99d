/* Module-private pieces shared by client.c (setup, namespace and admin
 * calls) and client_io.c (key put and get). Not for use outside the
 * client module. */
#ifndef OZONE_CLIENT_INTERNAL_H
#define OZONE_CLIENT_INTERNAL_H

#include "client.h"

/* Most datanodes a client keeps a connection to (hard cap of the cache). */
#define OZ_CLIENT_MAX_DATANODES 1024

/* OM's service. */
extern const ProtobufCServiceDescriptor *const oz__om_service;

/* Calls OM's method; on failure fills err from the rpc error. 0 or the
 * rpc_client_call code. *resp: caller frees with rpc_message_free(). */
int oz__om_call(struct oz_client *c,
                const char *method,
                ProtobufCMessage *req,
                ProtobufCMessage **resp,
                struct oz_error *err);

/* The cached rpc client of a datanode (created on first use; owned by
 * the cache, valid until oz_client_free). NULL with err filled when the
 * details carry no usable address or the cache is full. addr receives
 * "host:port" for messages. */
struct rpc_client *oz__dn_client(struct oz_client *c,
                                 const Ozone__Hdds__DatanodeDetails *dn,
                                 char *addr,
                                 size_t addr_size,
                                 struct oz_error *err);

/* Calls a DatanodeService method on one datanode; like oz__om_call. */
int oz__dn_call(struct oz_client *c,
                const Ozone__Hdds__DatanodeDetails *dn,
                const char *method,
                ProtobufCMessage *req,
                ProtobufCMessage **resp,
                struct oz_error *err);

/* Like oz__om_call for another service of the OM (e.g. OmUpgradeService,
 * client_upgrade.c). */
int oz__om_service_call(struct oz_client *c,
                        const ProtobufCServiceDescriptor *svc,
                        const char *method,
                        ProtobufCMessage *req,
                        ProtobufCMessage **resp,
                        struct oz_error *err);

/* Formats err (code and message). */
void oz__set_error(struct oz_error *err,
                   Ozone__ResultCode code,
                   const char *fmt,
                   ...) __attribute__((format(printf, 3, 4)));

/* Prefixes err->message: "<fmt>: <old message>". */
void oz__wrap_error(struct oz_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Checksum type of new chunks (ozone.client.checksum.type). */
Ozone__Datanode__ChecksumType oz__checksum_type(const struct oz_client *c);

/* Block size assumed for a location whose reserved length OM left 0. */
uint64_t oz__block_size(const struct oz_client *c);

/* How long a writer keeps asking for a block while SCM finds no healthy
 * pipeline (ozone.client.block.allocation.timeout). */
long long oz__alloc_wait_ms(const struct oz_client *c);

#endif
