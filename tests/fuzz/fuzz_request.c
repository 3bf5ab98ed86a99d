/* Fuzz target for the rpc server's request decoder (rpc__decode_request):
 * every request a server accepts from the network goes through it.
 *
 * Input: byte 0 picks the message type, the rest is the message. A decoded
 * message must have its version header and re-encode; a refusal must carry
 * a non-OK status and a message. Run once with the per-call arena (as the
 * server does) and once with protobuf-c's allocator (so that ASan sees
 * leaks on the error paths). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rpc_internal.h"
#include "testing.pb-c.h"

#define FUZZ_MAX_INPUT (1u << 20)
#define FUZZ_MAX_MESSAGE (64u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_request: %s\n", what);
        abort();
    }
}

static void decode_once(const ProtobufCMessageDescriptor *desc,
                        const uint8_t *data,
                        size_t len,
                        ProtobufCAllocator *alloc,
                        struct rpc__arena *arena)
{
    ProtobufCMessage *msg = NULL;
    struct rpc__status st;
    int rc = rpc__decode_request(desc, "/ozone.testing.Echo/Echo", data, len,
                                 FUZZ_MAX_MESSAGE, alloc, &msg, &st);

    if (rc != 0) {
        check(msg == NULL, "refused request still returned a message");
        check(st.status != RPC_STATUS_OK, "refusal with status OK");
        check(st.message[0] != '\0', "refusal without a message");
        return;
    }
    check(msg != NULL && msg->descriptor == desc, "no message on success");
    check(*rpc__header_slot(msg, rpc__header_field(desc)) != NULL,
          "accepted a request without version header");
    {
        size_t n = protobuf_c_message_get_packed_size(msg);
        uint8_t *buf = arena != NULL ? rpc__arena_alloc(arena, n) : malloc(n);
        check(buf != NULL, "out of memory");
        check(protobuf_c_message_pack(msg, buf) == n, "re-encoding differs");
        if (arena == NULL) {
            free(buf);
        }
    }
    if (arena == NULL) {
        protobuf_c_message_free_unpacked(msg, alloc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ProtobufCMessageDescriptor *const types[] = {
        &ozone__testing__echo_request__descriptor,
        &ozone__get_version_request__descriptor,
        &ozone__testing__echo_response__descriptor,
        &ozone__get_version_response__descriptor,
    };
    const ProtobufCMessageDescriptor *desc;
    struct rpc__arena arena;

    if (size == 0 || size > FUZZ_MAX_INPUT) {
        return 0;
    }
    desc = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    rpc__arena_init(&arena);
    decode_once(desc, data + 1, size - 1, &arena.allocator, &arena);
    rpc__arena_release(&arena);
    decode_once(desc, data + 1, size - 1, NULL, NULL);
    return 0;
}
