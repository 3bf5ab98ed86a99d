/* rpc internals shared by rpc_common.c, rpc_server.c, rpc_client.c and the
 * request fuzzer (tests/fuzz/fuzz_request.c). Not for other modules. */
#ifndef OZONE_RPC_INTERNAL_H
#define OZONE_RPC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

/* Default receive cap (rpc.h: "0 -> 32 MiB"). */
#define RPC__DEFAULT_MAX_MESSAGE (32u * 1024u * 1024u)

/* ---- per-call arena ---- */

struct rpc__arena_block;

/* Bump allocator freed all at once; backs rpc_call_alloc() and the
 * unpacking of requests. Not thread-safe: one call is served by one thread
 * at a time (handler, then the thread that completes it). */
struct rpc__arena
{
    struct rpc__arena_block *head;
    ProtobufCAllocator allocator; /* protobuf-c view of this arena */
};

void rpc__arena_init(struct rpc__arena *a);
/* Uninitialised memory, aligned for any type. Aborts on OOM. */
void *rpc__arena_alloc(struct rpc__arena *a, size_t size);
/* Zeroed memory. Aborts on OOM. */
void *rpc__arena_zalloc(struct rpc__arena *a, size_t size);
/* Frees every block; the arena can be used again afterwards. */
void rpc__arena_release(struct rpc__arena *a);

/* ---- the version header in field 1 ---- */

/* The descriptor of field 1 when it is a singular ozone.VersionHeader,
 * else NULL. */
const ProtobufCFieldDescriptor *rpc__header_field(
    const ProtobufCMessageDescriptor *desc);

/* Where field 1 of msg lives; f from rpc__header_field(msg's descriptor). */
Ozone__VersionHeader **rpc__header_slot(ProtobufCMessage *msg,
                                        const ProtobufCFieldDescriptor *f);

/* ---- request decoding (the server's outside-input decoder) ---- */

/* A failure to send back: gRPC status, Ozone code and message. */
struct rpc__status
{
    enum rpc_status status;
    Ozone__ResultCode code;
    char message[512];
};

/* Decodes and validates one request of type desc for method (the full
 * path, used in messages): len <= max_bytes, protobuf decodes, field 1
 * holds a VersionHeader. On success returns 0 and *out, allocated with
 * alloc (with an arena allocator nothing needs freeing; with NULL the
 * caller frees with protobuf_c_message_free_unpacked(*out, NULL)). On
 * failure returns -1 with st filled and *out NULL:
 *   RESOURCE_EXHAUSTED/MESSAGE_TOO_LARGE "request for '<m>' is N bytes,
 *     the limit is M",
 *   INVALID_ARGUMENT/INVALID_ARGUMENT "malformed request for '<m>': cannot
 *     decode <type>",
 *   INVALID_ARGUMENT/MISSING_VERSION_HEADER "missing version header".
 * data may be NULL when len is 0. desc must have a header field. */
int rpc__decode_request(const ProtobufCMessageDescriptor *desc,
                        const char *method,
                        const uint8_t *data,
                        size_t len,
                        size_t max_bytes,
                        ProtobufCAllocator *alloc,
                        ProtobufCMessage **out,
                        struct rpc__status *st);

/* Name of the trailing metadata entry that carries ozone.OzoneError. */
#define RPC__ERROR_MD_KEY "ozone-error-bin"

#endif
