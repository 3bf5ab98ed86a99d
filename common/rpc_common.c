/* rpc: what the server and the client share: identity headers, the
 * per-call arena, finding the version header in field 1, request decoding
 * (also the fuzz target's entry point), and gRPC library init. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "err.h"
#include "rpc_internal.h"

void rpc_identity_fill(const struct rpc_identity *id, Ozone__VersionHeader *hdr)
{
    unsigned sw = id->software_version;
    unsigned ap = id->apparent_version;

    ozone__version_header__init(hdr);
    if (id->versions != NULL) {
        id->versions(id->versions_ctx, &sw, &ap);
    }
    hdr->component = id->component;
    /* protobuf-c's string fields are char *; packing never writes them. */
    hdr->node_id = (char *)(id->node_id != NULL ? id->node_id : "");
    hdr->cluster_id = (char *)(id->cluster_id != NULL ? id->cluster_id : "");
    hdr->software_version = sw;
    hdr->apparent_version = ap;
}

const char *rpc_component_name(Ozone__Component c)
{
    switch (c) {
        case OZONE__COMPONENT__OM:
            return "OM";
        case OZONE__COMPONENT__SCM:
            return "SCM";
        case OZONE__COMPONENT__DATANODE:
            return "DATANODE";
        case OZONE__COMPONENT__RECON:
            return "RECON";
        case OZONE__COMPONENT__CLIENT:
            return "CLIENT";
        default:
            return "UNSPECIFIED";
    }
}

void rpc_message_free(ProtobufCMessage *msg)
{
    if (msg != NULL) {
        protobuf_c_message_free_unpacked(msg, NULL);
    }
}

/* gRPC keeps its own init count; rpc_library_init/shutdown pair with it
 * one to one, so servers, clients and tests may nest them freely. */
void rpc_library_init(void)
{
    grpc_init();
}

void rpc_library_shutdown(void)
{
    grpc_shutdown();
}

/* ---- arena ---- */

#define ARENA_BLOCK 4096u
#define ARENA_ALIGN 16u

struct rpc__arena_block
{
    struct rpc__arena_block *next;
    size_t used;
    size_t size;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

static void *arena_pb_alloc(void *ctx, size_t size)
{
    return rpc__arena_alloc(ctx, size);
}

static void arena_pb_free(void *ctx, void *p)
{
    /* Freed with the whole arena. */
    (void)ctx;
    (void)p;
}

void rpc__arena_init(struct rpc__arena *a)
{
    a->head = NULL;
    a->allocator.alloc = arena_pb_alloc;
    a->allocator.free = arena_pb_free;
    a->allocator.allocator_data = a;
}

static struct rpc__arena_block *arena_new_block(size_t size)
{
    struct rpc__arena_block *b = malloc(sizeof(*b) + size);

    if (b == NULL) {
        fprintf(stderr, "%s:%d: out of memory (%zu bytes)\n", __FILE__,
                __LINE__, size);
        abort();
    }
    b->next = NULL;
    b->used = 0;
    b->size = size;
    return b;
}

void *rpc__arena_alloc(struct rpc__arena *a, size_t size)
{
    struct rpc__arena_block *b = a->head;
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

    if (need < size) { /* overflow */
        fprintf(stderr, "%s:%d: arena request of %zu bytes\n", __FILE__,
                __LINE__, size);
        abort();
    }
    if (need == 0) {
        need = ARENA_ALIGN;
    }
    if (b != NULL && b->size - b->used >= need) {
        void *p = b->data + b->used;
        b->used += need;
        return p;
    }
    if (need > ARENA_BLOCK / 4) {
        /* Large: its own block, behind the current one so that the
         * current block's free space stays usable. */
        struct rpc__arena_block *big = arena_new_block(need);
        big->used = need;
        if (b != NULL) {
            big->next = b->next;
            b->next = big;
        } else {
            a->head = big;
        }
        return big->data;
    }
    b = arena_new_block(ARENA_BLOCK);
    b->next = a->head;
    a->head = b;
    b->used = need;
    return b->data;
}

void *rpc__arena_zalloc(struct rpc__arena *a, size_t size)
{
    void *p = rpc__arena_alloc(a, size);
    memset(p, 0, size);
    return p;
}

void rpc__arena_release(struct rpc__arena *a)
{
    struct rpc__arena_block *b = a->head;

    while (b != NULL) {
        struct rpc__arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- version header ---- */

const ProtobufCFieldDescriptor *rpc__header_field(
    const ProtobufCMessageDescriptor *desc)
{
    const ProtobufCFieldDescriptor *f;

    if (desc == NULL) {
        return NULL;
    }
    f = protobuf_c_message_descriptor_get_field(desc, 1);
    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE ||
        f->descriptor != &ozone__version_header__descriptor ||
        (f->label != PROTOBUF_C_LABEL_NONE &&
         f->label != PROTOBUF_C_LABEL_OPTIONAL)) {
        return NULL;
    }
    return f;
}

Ozone__VersionHeader **rpc__header_slot(ProtobufCMessage *msg,
                                        const ProtobufCFieldDescriptor *f)
{
    return (Ozone__VersionHeader **)(void *)((char *)msg + f->offset);
}

/* ---- request decoding ---- */

static void status_set(struct rpc__status *st,
                       enum rpc_status status,
                       Ozone__ResultCode code,
                       const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static void status_set(struct rpc__status *st,
                       enum rpc_status status,
                       Ozone__ResultCode code,
                       const char *fmt,
                       ...)
{
    va_list ap;

    st->status = status;
    st->code = code;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof(st->message), fmt, ap);
    va_end(ap);
}

int rpc__decode_request(const ProtobufCMessageDescriptor *desc,
                        const char *method,
                        const uint8_t *data,
                        size_t len,
                        size_t max_bytes,
                        ProtobufCAllocator *alloc,
                        ProtobufCMessage **out,
                        struct rpc__status *st)
{
    const ProtobufCFieldDescriptor *hf = rpc__header_field(desc);
    ProtobufCMessage *msg;
    static const uint8_t empty[1] = {0};

    *out = NULL;
    if (hf == NULL) {
        status_set(st, RPC_STATUS_INTERNAL, OZONE__RESULT_CODE__INTERNAL_ERROR,
                   "request type %s of '%s' has no version header field",
                   desc != NULL ? desc->name : "(none)", method);
        return -1;
    }
    if (len > max_bytes) {
        status_set(st, RPC_STATUS_RESOURCE_EXHAUSTED,
                   OZONE__RESULT_CODE__MESSAGE_TOO_LARGE,
                   "request for '%s' is %zu bytes, the limit is %zu", method,
                   len, max_bytes);
        return -1;
    }
    msg = protobuf_c_message_unpack(desc, alloc, len,
                                    data != NULL ? data : empty);
    if (msg == NULL) {
        status_set(st, RPC_STATUS_INVALID_ARGUMENT,
                   OZONE__RESULT_CODE__INVALID_ARGUMENT,
                   "malformed request for '%s': cannot decode %s", method,
                   desc->name);
        return -1;
    }
    if (*rpc__header_slot(msg, hf) == NULL) {
        protobuf_c_message_free_unpacked(msg, alloc);
        status_set(st, RPC_STATUS_INVALID_ARGUMENT,
                   OZONE__RESULT_CODE__MISSING_VERSION_HEADER,
                   "missing version header");
        return -1;
    }
    *out = msg;
    return 0;
}
