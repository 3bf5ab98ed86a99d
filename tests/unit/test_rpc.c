/* Unit tests of common/rpc: a real server on 127.0.0.1 with the test Echo
 * service (proto/testing.proto), called by the rpc client and, for the
 * inputs the client never sends, by raw gRPC calls. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "err.h"
#include "rpc.h"
#include "testing.pb-c.h"

#define ECHO_PATH "/ozone.testing.Echo/Echo"

/* ---- identities ---- */

static void server_versions(void *ctx, unsigned *software, unsigned *apparent)
{
    (void)ctx;
    *software = 105;
    *apparent = 101;
}

static const struct rpc_identity server_id = {
    .component = OZONE__COMPONENT__OM,
    .node_id = "om1",
    .cluster_id = "cid-1",
    .software_version = 1, /* overridden by versions() */
    .apparent_version = 1,
    .versions = server_versions,
};

static const struct rpc_identity client_id = {
    .component = OZONE__COMPONENT__CLIENT,
    .node_id = "cli",
    .cluster_id = "cid-1",
    .software_version = 100,
    .apparent_version = 100,
};

/* ---- the Echo service ---- */

struct echo
{
    struct rpc_server *srv;
    int port;
    char addr[64];
    bool not_leader; /* answer NOT_LEADER with leader_hint */
    const char *leader_hint;
    atomic_int calls;
    atomic_int bad_context; /* handler saw a wrong method/peer/address */
};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void echo_fill(struct rpc_call *call,
                      const Ozone__Testing__EchoRequest *req,
                      Ozone__Testing__EchoResponse *resp)
{
    Ozone__VersionHeader *peer = rpc_call_alloc(call, sizeof(*peer));

    *peer = *rpc_call_peer(call);
    peer->node_id = rpc_call_strdup(call, peer->node_id);
    resp->peer = peer;
    resp->payload = req->payload; /* req lives as long as the call */
}

struct pending_job
{
    struct rpc_call *call;
    unsigned delay_ms;
};

static void *pending_thread(void *arg)
{
    struct pending_job *job = arg;
    struct rpc_call *call = job->call;
    ProtobufCMessage *resp = rpc_call_response(call);

    sleep_ms(job->delay_ms);
    free(job);
    /* The request stays valid until the call completes. */
    (void)resp;
    rpc_call_complete(call);
    return NULL;
}

static enum rpc_handler_result echo_handler(void *data,
                                            struct rpc_call *call,
                                            const ProtobufCMessage *req_m,
                                            ProtobufCMessage *resp_m)
{
    struct echo *e = data;
    const Ozone__Testing__EchoRequest *req = (const void *)req_m;
    Ozone__Testing__EchoResponse *resp = (void *)resp_m;
    const char *pa = rpc_call_peer_address(call);

    atomic_fetch_add(&e->calls, 1);
    if (strcmp(rpc_call_method(call), ECHO_PATH) != 0 ||
        rpc_call_peer(call) == NULL || strncmp(pa, "ipv", 3) != 0 ||
        strcmp(rpc_call_printf(call, "%s-%d", "x", 7), "x-7") != 0) {
        atomic_fetch_add(&e->bad_context, 1);
    }
    if (e->not_leader) {
        rpc_call_set_error(call, RPC_STATUS_FAILED_PRECONDITION,
                           OZONE__RESULT_CODE__NOT_LEADER, e->leader_hint,
                           "om at '%s' is not the leader", e->addr);
        return RPC_HANDLER_DONE;
    }
    if (req->fail_code != OZONE__RESULT_CODE__OK) {
        rpc_call_set_error(call, RPC_STATUS_FAILED_PRECONDITION, req->fail_code,
                           e->leader_hint, "%s", req->fail_message);
        return RPC_HANDLER_DONE;
    }
    echo_fill(call, req, resp);
    if (req->pending) {
        struct pending_job *job = malloc(sizeof(*job));
        pthread_t t;

        job->call = call;
        job->delay_ms = req->sleep_ms;
        pthread_create(&t, NULL, pending_thread, job);
        pthread_detach(t);
        return RPC_HANDLER_PENDING;
    }
    if (req->sleep_ms != 0) {
        sleep_ms(req->sleep_ms);
    }
    return RPC_HANDLER_DONE;
}

static const rpc_handler_fn echo_handlers[] = {echo_handler};

static void echo_start_cfg(struct echo *e, unsigned threads, size_t max_msg)
{
    const char *addrs[] = {"127.0.0.1:0"};
    struct rpc_server_config cfg = {
        .listen_addrs = addrs,
        .n_listen_addrs = 1,
        .n_threads = threads,
        .max_message_bytes = max_msg,
        .identity = &server_id,
    };
    char errmsg[OZ_ERRMSG_SIZE] = "";

    atomic_init(&e->calls, 0);
    atomic_init(&e->bad_context, 0);
    assert_int_equal(rpc_server_new(&e->srv, &cfg, errmsg), 0);
    assert_int_equal(
        rpc_server_add_service(e->srv, &ozone__testing__echo__descriptor,
                               echo_handlers, e, errmsg),
        0);
    assert_int_equal(rpc_server_start(e->srv, errmsg), 0);
    e->port = rpc_server_port(e->srv, 0);
    assert_true(e->port > 0);
    snprintf(e->addr, sizeof(e->addr), "127.0.0.1:%d", e->port);
}

static void echo_start(struct echo *e)
{
    echo_start_cfg(e, 2, 0);
}

static void echo_stop(struct echo *e)
{
    assert_int_equal(atomic_load(&e->bad_context), 0);
    rpc_server_free(e->srv, 1000);
    e->srv = NULL;
}

static struct rpc_client *client_for(const char *const *addrs,
                                     size_t n,
                                     int deadline_ms,
                                     int max_attempts)
{
    struct rpc_client_config cfg = {
        .addrs = addrs,
        .n_addrs = n,
        .identity = &client_id,
        .deadline_ms = deadline_ms,
        .max_attempts = max_attempts,
        .backoff_ms = 10,
    };
    struct rpc_client *c = NULL;
    char errmsg[OZ_ERRMSG_SIZE] = "";

    assert_int_equal(rpc_client_new(&c, &cfg, errmsg), 0);
    return c;
}

static int echo_call(struct rpc_client *c,
                     Ozone__Testing__EchoRequest *req,
                     Ozone__Testing__EchoResponse **resp,
                     struct rpc_error *err)
{
    ProtobufCMessage *out = NULL;
    int rc = rpc_client_call(c, &ozone__testing__echo__descriptor, "Echo",
                             &req->base, &out, err);
    *resp = (Ozone__Testing__EchoResponse *)out;
    return rc;
}

/* A port nothing listens on (bound, then closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- raw gRPC client, for requests the rpc client never sends ---- */

struct raw_result
{
    grpc_status_code status;
    char details[512];
    int ozone_code; /* -1: no ozone-error-bin */
};

static void raw_call(int port,
                     const char *path,
                     const void *data,
                     size_t len,
                     struct raw_result *res)
{
    char target[64];
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice method = grpc_slice_from_copied_string(path);
    grpc_slice payload = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *send_bb = grpc_raw_byte_buffer_create(&payload, 1);
    grpc_byte_buffer *recv_bb = NULL;
    grpc_metadata_array init_md, trailer;
    grpc_slice details;
    grpc_call *call;
    grpc_op ops[6];
    size_t n;

    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    ch = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    call = grpc_channel_create_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis(5000, GPR_TIMESPAN)),
        NULL);
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trailer);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailer;
    ops[5].data.recv_status_on_client.status = &res->status;
    ops[5].data.recv_status_on_client.status_details = &details;
    assert_int_equal(grpc_call_start_batch(call, ops, 6, ops, NULL),
                     GRPC_CALL_OK);
    assert_int_equal(grpc_completion_queue_pluck(
                         cq, ops, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                         .type,
                     GRPC_OP_COMPLETE);
    n = GRPC_SLICE_LENGTH(details);
    if (n >= sizeof(res->details)) {
        n = sizeof(res->details) - 1;
    }
    memcpy(res->details, GRPC_SLICE_START_PTR(details), n);
    res->details[n] = '\0';
    res->ozone_code = -1;
    for (size_t i = 0; i < trailer.count; i++) {
        if (grpc_slice_str_cmp(trailer.metadata[i].key, "ozone-error-bin") ==
            0) {
            Ozone__OzoneError *oe = ozone__ozone_error__unpack(
                NULL, GRPC_SLICE_LENGTH(trailer.metadata[i].value),
                GRPC_SLICE_START_PTR(trailer.metadata[i].value));
            assert_non_null(oe);
            res->ozone_code = (int)oe->code;
            ozone__ozone_error__free_unpacked(oe, NULL);
        }
    }
    if (recv_bb != NULL) {
        grpc_byte_buffer_destroy(recv_bb);
    }
    grpc_byte_buffer_destroy(send_bb);
    grpc_slice_unref(payload);
    grpc_slice_unref(method);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trailer);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME),
                                NULL);
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
}

/* ---- tests ---- */

static void test_round_trip(void **state)
{
    static const size_t sizes[] = {0, 5, 1000, 200 * 1000};
    struct echo e = {0};
    struct rpc_client *c;
    const char *addrs[1];

    (void)state;
    echo_start(&e);
    addrs[0] = e.addr;
    c = client_for(addrs, 1, 5000, 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
        Ozone__Testing__EchoResponse *resp = NULL;
        struct rpc_error err;
        uint8_t *buf = malloc(sizes[i] + 1);
        int rc;

        for (size_t j = 0; j < sizes[i]; j++) {
            buf[j] = (uint8_t)(j * 7 + i);
        }
        req.payload.data = buf;
        req.payload.len = sizes[i];
        rc = echo_call(c, &req, &resp, &err);
        if (rc != 0) {
            fail_msg("row %zu: rc %d: %s", i, rc, err.message);
        }
        assert_null(req.hdr); /* restored after the call */
        assert_int_equal(err.status, RPC_STATUS_OK);
        assert_int_equal(resp->payload.len, sizes[i]);
        if (sizes[i] > 0) {
            assert_memory_equal(resp->payload.data, buf, sizes[i]);
        }
        /* The server stamped its header, versions() read at send time. */
        assert_non_null(resp->hdr);
        assert_int_equal(resp->hdr->component, OZONE__COMPONENT__OM);
        assert_string_equal(resp->hdr->node_id, "om1");
        assert_string_equal(resp->hdr->cluster_id, "cid-1");
        assert_int_equal(resp->hdr->software_version, 105);
        assert_int_equal(resp->hdr->apparent_version, 101);
        /* The handler saw the client's header. */
        assert_non_null(resp->peer);
        assert_int_equal(resp->peer->component, OZONE__COMPONENT__CLIENT);
        assert_string_equal(resp->peer->node_id, "cli");
        assert_int_equal(resp->peer->software_version, 100);
        rpc_message_free(&resp->base);
        free(buf);
    }
    assert_string_equal(rpc_client_current_address(c), e.addr);
    rpc_client_free(c);
    echo_stop(&e);
}

static void test_handler_errors(void **state)
{
    static const struct
    {
        Ozone__ResultCode code;
        const char *message;
        const char *hint;
    } cases[] = {
        {OZONE__RESULT_CODE__KEY_NOT_FOUND, "key 'k1' not found", NULL},
        {OZONE__RESULT_CODE__FINALIZE_REJECTED,
         "finalize refused: datanode 'dn3' runs software version 100, "
         "needs 105",
         "127.0.0.1:1234"},
        {OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION,
         "operation X belongs to feature F (version 101)", ""},
    };
    struct echo e = {0};
    struct rpc_client *c;
    const char *addrs[1];

    (void)state;
    echo_start(&e);
    addrs[0] = e.addr;
    c = client_for(addrs, 1, 5000, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
        Ozone__Testing__EchoResponse *resp = NULL;
        struct rpc_error err;
        int rc;

        e.leader_hint = cases[i].hint;
        req.fail_code = cases[i].code;
        req.fail_message = (char *)cases[i].message;
        rc = echo_call(c, &req, &resp, &err);
        if (rc != OZ_ERPC) {
            fail_msg("row %zu: rc %d", i, rc);
        }
        assert_null(resp);
        assert_int_equal(err.status, RPC_STATUS_FAILED_PRECONDITION);
        assert_int_equal(err.code, cases[i].code);
        assert_string_equal(err.message, cases[i].message);
        assert_string_equal(err.leader_hint,
                            cases[i].hint != NULL ? cases[i].hint : "");
        assert_string_equal(err.address, e.addr);
    }
    rpc_client_free(c);
    echo_stop(&e);
}

static void test_pending(void **state)
{
    static const unsigned delays[] = {0, 20, 100};
    struct echo e = {0};
    struct rpc_client *c;
    const char *addrs[1];

    (void)state;
    echo_start(&e);
    addrs[0] = e.addr;
    c = client_for(addrs, 1, 5000, 0);
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
        Ozone__Testing__EchoResponse *resp = NULL;
        struct rpc_error err;
        uint8_t data[3] = {1, 2, 3};

        req.pending = true;
        req.sleep_ms = delays[i];
        req.payload.data = data;
        req.payload.len = sizeof(data);
        if (echo_call(c, &req, &resp, &err) != 0) {
            fail_msg("row %zu: %s", i, err.message);
        }
        assert_int_equal(resp->payload.len, 3);
        assert_memory_equal(resp->payload.data, data, 3);
        assert_string_equal(resp->peer->node_id, "cli");
        rpc_message_free(&resp->base);
    }
    rpc_client_free(c);
    echo_stop(&e);
}

static void test_raw_bad_requests(void **state)
{
    /* field 2 (payload) only: a valid EchoRequest without header */
    static const uint8_t no_header[] = {0x12, 0x03, 'a', 'b', 'c'};
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x0f};
    /* header field announced 50 bytes, 2 present */
    static const uint8_t truncated[] = {0x0a, 0x32, 0x08, 0x05};
    static const struct
    {
        const char *path;
        const uint8_t *data;
        size_t len;
        grpc_status_code status;
        int code;
        const char *details;
    } cases[] = {
        {ECHO_PATH, no_header, sizeof(no_header), GRPC_STATUS_INVALID_ARGUMENT,
         OZONE__RESULT_CODE__MISSING_VERSION_HEADER, "missing version header"},
        {ECHO_PATH, no_header, 0, GRPC_STATUS_INVALID_ARGUMENT,
         OZONE__RESULT_CODE__MISSING_VERSION_HEADER, "missing version header"},
        {ECHO_PATH, garbage, sizeof(garbage), GRPC_STATUS_INVALID_ARGUMENT,
         OZONE__RESULT_CODE__INVALID_ARGUMENT,
         "malformed request for '/ozone.testing.Echo/Echo': cannot decode "
         "ozone.testing.EchoRequest"},
        {ECHO_PATH, truncated, sizeof(truncated), GRPC_STATUS_INVALID_ARGUMENT,
         OZONE__RESULT_CODE__INVALID_ARGUMENT,
         "malformed request for '/ozone.testing.Echo/Echo': cannot decode "
         "ozone.testing.EchoRequest"},
        {"/ozone.testing.Echo/Nope", no_header, sizeof(no_header),
         GRPC_STATUS_UNIMPLEMENTED, OZONE__RESULT_CODE__UNKNOWN_METHOD,
         "unknown method '/ozone.testing.Echo/Nope'"},
        {"/x/Y", no_header, 0, GRPC_STATUS_UNIMPLEMENTED,
         OZONE__RESULT_CODE__UNKNOWN_METHOD, "unknown method '/x/Y'"},
    };
    struct echo e = {0};

    (void)state;
    echo_start(&e);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct raw_result res;

        raw_call(e.port, cases[i].path, cases[i].data, cases[i].len, &res);
        if (res.status != cases[i].status || res.ozone_code != cases[i].code ||
            strcmp(res.details, cases[i].details) != 0) {
            fail_msg("row %zu: status %d code %d details '%s'", i,
                     (int)res.status, res.ozone_code, res.details);
        }
    }
    /* The bad requests never reached the handler; the server still works. */
    assert_int_equal(atomic_load(&e.calls), 0);
    {
        const char *addrs[] = {e.addr};
        struct rpc_client *c = client_for(addrs, 1, 5000, 0);
        Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
        Ozone__Testing__EchoResponse *resp = NULL;
        struct rpc_error err;

        assert_int_equal(echo_call(c, &req, &resp, &err), 0);
        rpc_message_free(&resp->base);
        rpc_client_free(c);
    }
    echo_stop(&e);
}

static void test_unknown_method_client(void **state)
{
    /* The Echo descriptor under a service name the server does not know. */
    ProtobufCServiceDescriptor fake = ozone__testing__echo__descriptor;
    struct echo e = {0};
    struct rpc_client *c;
    const char *addrs[1];
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;

    (void)state;
    fake.name = "ozone.testing.Nope";
    echo_start(&e);
    addrs[0] = e.addr;
    c = client_for(addrs, 1, 5000, 0);
    assert_int_equal(rpc_client_call(c, &fake, "Echo", &req.base, &resp, &err),
                     OZ_ERPC);
    assert_int_equal(err.status, RPC_STATUS_UNIMPLEMENTED);
    assert_int_equal(err.code, OZONE__RESULT_CODE__UNKNOWN_METHOD);
    assert_string_equal(err.message,
                        "unknown method '/ozone.testing.Nope/Echo'");
    /* A method the descriptor does not have never leaves the client. */
    assert_int_equal(rpc_client_call(c, &ozone__testing__echo__descriptor,
                                     "Nope", &req.base, &resp, &err),
                     OZ_EINVAL);
    assert_int_equal(err.code, OZONE__RESULT_CODE__UNKNOWN_METHOD);
    /* Nor does a request of the wrong type. */
    {
        Ozone__GetVersionRequest gv = OZONE__GET_VERSION_REQUEST__INIT;
        assert_int_equal(rpc_client_call(c, &ozone__testing__echo__descriptor,
                                         "Echo", &gv.base, &resp, &err),
                         OZ_EINVAL);
    }
    assert_null(resp);
    rpc_client_free(c);
    echo_stop(&e);
}

static void test_oversized(void **state)
{
    static const struct
    {
        size_t server_max;
        size_t payload;
        bool ok;
    } cases[] = {
        {1024, 100, true},
        {1024, 4096, false},
        {64 * 1024, 1024 * 1024, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct echo e = {0};
        const char *addrs[1];
        struct rpc_client *c;
        Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
        Ozone__Testing__EchoResponse *resp = NULL;
        struct rpc_error err;
        uint8_t *buf = calloc(1, cases[i].payload);
        int rc;

        echo_start_cfg(&e, 1, cases[i].server_max);
        addrs[0] = e.addr;
        c = client_for(addrs, 1, 5000, 1);
        req.payload.data = buf;
        req.payload.len = cases[i].payload;
        rc = echo_call(c, &req, &resp, &err);
        if (cases[i].ok) {
            if (rc != 0) {
                fail_msg("row %zu: rc %d: %s", i, rc, err.message);
            }
            rpc_message_free(&resp->base);
        } else if (rc == 0 || err.status != RPC_STATUS_RESOURCE_EXHAUSTED) {
            fail_msg("row %zu: rc %d status %d: %s", i, rc, (int)err.status,
                     err.message);
        }
        free(buf);
        rpc_client_free(c);
        echo_stop(&e);
    }
}

static void test_failover(void **state)
{
    struct echo e = {0};
    char dead[64];
    const char *addrs[2];
    struct rpc_client *c;
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    Ozone__Testing__EchoResponse *resp = NULL;
    struct rpc_error err;

    (void)state;
    echo_start(&e);
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", closed_port());
    addrs[0] = dead;
    addrs[1] = e.addr;
    c = client_for(addrs, 2, 5000, 0);
    assert_int_equal(echo_call(c, &req, &resp, &err), 0);
    assert_string_equal(rpc_client_current_address(c), e.addr);
    assert_string_equal(err.address, e.addr);
    rpc_message_free(&resp->base);
    /* The next call starts at the node that answered. */
    assert_int_equal(echo_call(c, &req, &resp, &err), 0);
    rpc_message_free(&resp->base);
    rpc_client_free(c);
    echo_stop(&e);
}

static void test_all_unavailable(void **state)
{
    char a0[64], a1[64];
    const char *addrs[] = {a0, a1};
    struct rpc_client *c;
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    Ozone__Testing__EchoResponse *resp = NULL;
    struct rpc_error err;

    (void)state;
    snprintf(a0, sizeof(a0), "127.0.0.1:%d", closed_port());
    snprintf(a1, sizeof(a1), "127.0.0.1:%d", closed_port());
    c = client_for(addrs, 2, 2000, 4);
    assert_int_equal(echo_call(c, &req, &resp, &err), OZ_EUNAVAILABLE);
    assert_null(resp);
    assert_int_equal(err.status, RPC_STATUS_UNAVAILABLE);
    assert_int_equal(err.code, OZONE__RESULT_CODE__UNAVAILABLE);
    assert_non_null(strstr(err.message, "cannot reach '127.0.0.1:"));
    rpc_client_free(c);
}

static void test_not_leader(void **state)
{
    static const struct
    {
        bool hint;         /* follower names the leader */
        bool leader_known; /* leader in the client's list */
    } cases[] = {{true, false}, {true, true}, {false, true}};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct echo leader = {0}, follower = {0};
        const char *addrs[2];
        struct rpc_client *c;
        Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
        Ozone__Testing__EchoResponse *resp = NULL;
        struct rpc_error err;

        echo_start(&leader);
        echo_start(&follower);
        follower.not_leader = true;
        follower.leader_hint = cases[i].hint ? leader.addr : NULL;
        addrs[0] = follower.addr;
        addrs[1] = leader.addr;
        c = client_for(addrs, cases[i].leader_known ? 2 : 1, 5000, 0);
        if (echo_call(c, &req, &resp, &err) != 0) {
            fail_msg("row %zu: %s", i, err.message);
        }
        assert_string_equal(rpc_client_current_address(c), leader.addr);
        assert_int_equal(atomic_load(&follower.calls), 1);
        assert_int_equal(atomic_load(&leader.calls), 1);
        rpc_message_free(&resp->base);
        rpc_client_free(c);
        echo_stop(&follower);
        echo_stop(&leader);
    }
}

static void test_not_leader_exhausted(void **state)
{
    struct echo follower = {0};
    const char *addrs[1];
    struct rpc_client *c;
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    Ozone__Testing__EchoResponse *resp = NULL;
    struct rpc_error err;

    (void)state;
    echo_start(&follower);
    follower.not_leader = true;
    follower.leader_hint = follower.addr; /* points at itself */
    addrs[0] = follower.addr;
    c = client_for(addrs, 1, 5000, 3);
    assert_int_equal(echo_call(c, &req, &resp, &err), OZ_ERPC);
    assert_int_equal(err.code, OZONE__RESULT_CODE__NOT_LEADER);
    assert_string_equal(err.leader_hint, follower.addr);
    assert_int_equal(atomic_load(&follower.calls), 3);
    rpc_client_free(c);
    echo_stop(&follower);
}

static void test_deadline(void **state)
{
    struct echo e = {0};
    const char *addrs[1];
    struct rpc_client *c;
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    Ozone__Testing__EchoResponse *resp = NULL;
    struct rpc_error err;

    (void)state;
    echo_start(&e);
    addrs[0] = e.addr;
    c = client_for(addrs, 1, 100, 0);
    req.sleep_ms = 400;
    assert_int_equal(echo_call(c, &req, &resp, &err), OZ_ETIMEDOUT);
    assert_int_equal(err.status, RPC_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(err.code, OZONE__RESULT_CODE__TIMEOUT);
    rpc_client_free(c);
    echo_stop(&e);
}

struct late_start
{
    pthread_t thread;
    struct rpc_server *srv;
    char addr[64];
    unsigned delay_ms;
    int rc;
    struct echo e;
};

static void *late_start_thread(void *arg)
{
    struct late_start *ls = arg;
    const char *addrs[] = {ls->addr};
    struct rpc_server_config cfg = {
        .listen_addrs = addrs,
        .n_listen_addrs = 1,
        .n_threads = 1,
        .identity = &server_id,
    };
    char errmsg[OZ_ERRMSG_SIZE];

    sleep_ms(ls->delay_ms);
    ls->rc = rpc_server_new(&ls->srv, &cfg, errmsg);
    if (ls->rc == 0) {
        ls->rc =
            rpc_server_add_service(ls->srv, &ozone__testing__echo__descriptor,
                                   echo_handlers, &ls->e, errmsg);
    }
    if (ls->rc == 0) {
        ls->rc = rpc_server_start(ls->srv, errmsg);
    }
    return NULL;
}

/* A server to start later on a port nothing listens on yet. */
static void late_start_init(struct late_start *ls)
{
    memset(ls, 0, sizeof(*ls));
    atomic_init(&ls->e.calls, 0);
    atomic_init(&ls->e.bad_context, 0);
    snprintf(ls->addr, sizeof(ls->addr), "127.0.0.1:%d", closed_port());
}

static void test_wait_for_ready(void **state)
{
    struct late_start ls;
    const char *addrs[] = {ls.addr};
    struct rpc_client_config cfg = {
        .addrs = addrs,
        .n_addrs = 1,
        .identity = &client_id,
        .deadline_ms = 200,
        .max_attempts = 1,
        .wait_for_ready = true,
    };
    struct rpc_client *c = NULL;
    char errmsg[OZ_ERRMSG_SIZE];
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    Ozone__Testing__EchoResponse *resp = NULL;
    struct rpc_error err;

    (void)state;
    late_start_init(&ls);
    /* Nothing listens: the call waits for its deadline, not UNAVAILABLE. */
    assert_int_equal(rpc_client_new(&c, &cfg, errmsg), 0);
    assert_int_equal(echo_call(c, &req, &resp, &err), OZ_ETIMEDOUT);
    rpc_client_free(c);
    /* The server comes up while the call waits. */
    cfg.deadline_ms = 10000;
    assert_int_equal(rpc_client_new(&c, &cfg, errmsg), 0);
    ls.delay_ms = 300;
    pthread_create(&ls.thread, NULL, late_start_thread, &ls);
    assert_int_equal(echo_call(c, &req, &resp, &err), 0);
    pthread_join(ls.thread, NULL);
    assert_int_equal(ls.rc, 0);
    assert_int_equal(atomic_load(&ls.e.calls), 1);
    rpc_message_free(&resp->base);
    rpc_client_free(c);
    rpc_server_free(ls.srv, 100);
}

/* A node that was down long enough for the channel's reconnect backoff to
 * grow (each failed call made it try again) and then came back answers the
 * very next call, a single attempt: the attempt drives the connection to
 * READY first instead of failing fast while the channel sits in its
 * backoff (a restarted OM used to stay unreachable for about 5 s). */
static void test_reconnect_after_restart(void **state)
{
    struct late_start ls;
    const char *addrs[] = {ls.addr};
    struct rpc_client *c;
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    Ozone__Testing__EchoResponse *resp = NULL;
    struct rpc_error err;

    (void)state;
    late_start_init(&ls);
    c = client_for(addrs, 1, 5000, 1);
    /* Down: every call fails at once with UNAVAILABLE, and the channel's
     * backoff grows towards its cap. */
    for (int i = 0; i < 12; i++) {
        assert_int_equal(echo_call(c, &req, &resp, &err), OZ_EUNAVAILABLE);
        sleep_ms(150);
    }
    /* Back (synchronously: listening before the call starts). */
    late_start_thread(&ls);
    assert_int_equal(ls.rc, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(echo_call(c, &req, &resp, &err), 0);
        rpc_message_free(&resp->base);
    }
    assert_int_equal(atomic_load(&ls.e.calls), 5);
    rpc_client_free(c);
    rpc_server_free(ls.srv, 100);
}

struct load
{
    pthread_t thread;
    const char *addr;
    int n_calls;
    unsigned sleep_ms;
    bool pending;
    bool expect_ok;
    int ok;
    int failed;
    int wrong; /* successes with a wrong payload */
};

static void *load_thread(void *arg)
{
    struct load *l = arg;
    const char *addrs[] = {l->addr};
    struct rpc_client *c = client_for(addrs, 1, 5000, 1);

    for (int i = 0; i < l->n_calls; i++) {
        Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
        Ozone__Testing__EchoResponse *resp = NULL;
        struct rpc_error err;
        uint32_t v = (uint32_t)i * 2654435761u;

        req.payload.data = (uint8_t *)&v;
        req.payload.len = sizeof(v);
        req.sleep_ms = l->sleep_ms;
        req.pending = l->pending && (i % 2 == 0);
        if (echo_call(c, &req, &resp, &err) == 0) {
            l->ok++;
            if (resp->payload.len != sizeof(v) ||
                memcmp(resp->payload.data, &v, sizeof(v)) != 0) {
                l->wrong++;
            }
            rpc_message_free(&resp->base);
        } else {
            l->failed++;
        }
    }
    rpc_client_free(c);
    return NULL;
}

static void test_concurrency(void **state)
{
    struct echo e = {0};
    struct load loads[4];

    (void)state;
    echo_start_cfg(&e, 3, 0);
    for (size_t i = 0; i < 4; i++) {
        memset(&loads[i], 0, sizeof(loads[i]));
        loads[i].addr = e.addr;
        loads[i].n_calls = 150;
        loads[i].pending = i % 2 == 1;
        pthread_create(&loads[i].thread, NULL, load_thread, &loads[i]);
    }
    for (size_t i = 0; i < 4; i++) {
        pthread_join(loads[i].thread, NULL);
        if (loads[i].ok != 150 || loads[i].wrong != 0) {
            fail_msg("thread %zu: %d ok, %d failed, %d wrong", i, loads[i].ok,
                     loads[i].failed, loads[i].wrong);
        }
    }
    assert_int_equal(atomic_load(&e.calls), 600);
    echo_stop(&e);
}

static void test_shutdown_in_flight(void **state)
{
    static const struct
    {
        unsigned sleep_ms;
        bool pending;
        int grace_ms;
    } cases[] = {
        {30, false, 1000}, /* drains within the grace */
        {30, true, 1000},
        {200, false, 10}, /* cancelled, handlers finish late */
        {200, true, 10},  /* PENDING completed after the grace */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct echo e = {0};
        struct load loads[3];
        int total = 0;

        echo_start(&e);
        for (size_t t = 0; t < 3; t++) {
            memset(&loads[t], 0, sizeof(loads[t]));
            loads[t].addr = e.addr;
            loads[t].n_calls = 10;
            loads[t].sleep_ms = cases[i].sleep_ms;
            loads[t].pending = cases[i].pending;
            pthread_create(&loads[t].thread, NULL, load_thread, &loads[t]);
        }
        /* Poll until calls are in flight, then stop under them. */
        for (int w = 0; w < 500 && atomic_load(&e.calls) < 2; w++) {
            sleep_ms(2);
        }
        rpc_server_free(e.srv, cases[i].grace_ms);
        e.srv = NULL;
        for (size_t t = 0; t < 3; t++) {
            pthread_join(loads[t].thread, NULL);
            total += loads[t].ok + loads[t].failed;
            if (loads[t].wrong != 0) {
                fail_msg("row %zu thread %zu: wrong payload", i, t);
            }
        }
        assert_int_equal(total, 30);
        assert_int_equal(atomic_load(&e.bad_context), 0);
    }
}

struct stop_probe
{
    pthread_t thread;
    const char *addr;
    bool ok;
    enum rpc_status status;
    char message[256];
};

static void *stop_probe_thread(void *arg)
{
    struct stop_probe *p = arg;
    const char *addrs[] = {p->addr};
    struct rpc_client *c = client_for(addrs, 1, 5000, 1);
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    Ozone__Testing__EchoResponse *resp = NULL;
    struct rpc_error err;

    req.sleep_ms = 150; /* blocks the only completion-queue thread */
    if (echo_call(c, &req, &resp, &err) == 0) {
        p->ok = true;
        rpc_message_free(&resp->base);
    } else {
        p->status = err.status;
        oz_strlcpy(p->message, err.message, sizeof(p->message));
    }
    rpc_client_free(c);
    return NULL;
}

/* A planned stop answers the calls it will not serve with UNAVAILABLE
 * (retried by every client, nothing ran) and serves the admitted ones;
 * none is dropped with CANCELLED, which gRPC does to calls it still holds
 * unmatched when it shuts down (one thread: most calls wait unmatched). */
static void test_stop_refuses_not_cancels(void **state)
{
    enum { N = 6 };
    struct echo e = {0};
    struct stop_probe probes[N];
    int ok = 0;

    (void)state;
    echo_start_cfg(&e, 1, 0);
    for (size_t i = 0; i < N; i++) {
        memset(&probes[i], 0, sizeof(probes[i]));
        probes[i].addr = e.addr;
        pthread_create(&probes[i].thread, NULL, stop_probe_thread, &probes[i]);
    }
    for (int w = 0; w < 500 && atomic_load(&e.calls) < 1; w++) {
        sleep_ms(2);
    }
    sleep_ms(50); /* let the other calls reach the server */
    rpc_server_free(e.srv, 5000);
    e.srv = NULL;
    for (size_t i = 0; i < N; i++) {
        pthread_join(probes[i].thread, NULL);
        if (probes[i].ok) {
            ok++;
        } else if (probes[i].status != RPC_STATUS_UNAVAILABLE) {
            fail_msg("call %zu: status %d (%s), want OK or UNAVAILABLE", i,
                     (int)probes[i].status, probes[i].message);
        }
    }
    assert_true(ok >= 1); /* the call being served when the stop began */
    assert_int_equal(atomic_load(&e.bad_context), 0);
}

struct stop_load
{
    pthread_t thread;
    const char *const *addrs;
    atomic_bool *done;
    int ok;
    int failed;
    char first_error[300];
};

static void *stop_load_thread(void *arg)
{
    struct stop_load *l = arg;
    struct rpc_client *c = client_for(l->addrs, 2, 5000, 6);

    while (!atomic_load(l->done)) {
        Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
        Ozone__Testing__EchoResponse *resp = NULL;
        struct rpc_error err;

        if (echo_call(c, &req, &resp, &err) == 0) {
            l->ok++;
            rpc_message_free(&resp->base);
        } else {
            if (l->failed++ == 0) {
                snprintf(l->first_error, sizeof(l->first_error),
                         "status %d code %d: %s", (int)err.status,
                         (int)err.code, err.message);
            }
        }
    }
    rpc_client_free(c);
    return NULL;
}

/* Node A stops (planned, with grace) under continuous calls from eight
 * clients of the service {A, B}: no call fails. A call that reaches A
 * after gRPC's shutdown began is dropped by gRPC core with CANCELLED and
 * no OzoneError; the client must take that as "node stopping" and move
 * to B like it does for UNAVAILABLE. Ten stops. */
static void test_stop_under_load_fails_nothing(void **state)
{
    enum { THREADS = 8, ROUNDS = 10 };
    int failed = 0, ok = 0;
    char first[300] = "";

    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        struct echo a = {0}, b = {0};
        struct stop_load loads[THREADS];
        atomic_bool done;

        echo_start(&a);
        echo_start(&b);
        const char *addrs[] = {a.addr, b.addr};
        atomic_init(&done, false);
        for (size_t t = 0; t < THREADS; t++) {
            memset(&loads[t], 0, sizeof(loads[t]));
            loads[t].addrs = addrs;
            loads[t].done = &done;
            pthread_create(&loads[t].thread, NULL, stop_load_thread, &loads[t]);
        }
        for (int w = 0; w < 1000 && atomic_load(&a.calls) < 50; w++) {
            sleep_ms(1);
        }
        rpc_server_free(a.srv, 1000);
        a.srv = NULL;
        sleep_ms(30);
        atomic_store(&done, true);
        for (size_t t = 0; t < THREADS; t++) {
            pthread_join(loads[t].thread, NULL);
            ok += loads[t].ok;
            failed += loads[t].failed;
            if (first[0] == '\0' && loads[t].failed != 0) {
                oz_strlcpy(first, loads[t].first_error, sizeof(first));
            }
        }
        echo_stop(&b);
    }
    if (failed != 0) {
        fail_msg("%d of %d calls failed across %d stops; first: %s", failed,
                 ok + failed, ROUNDS, first);
    }
}

static void test_server_config(void **state)
{
    struct echo e = {0};
    char taken[64];
    const char *dup_addrs[] = {"127.0.0.1:0", "127.0.0.1:0"};
    const char *taken_addrs[] = {taken};
    struct rpc_server_config cfg = {
        .listen_addrs = dup_addrs,
        .n_listen_addrs = 2,
        .identity = &server_id,
    };
    struct rpc_server *srv = NULL;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    /* A service whose request lacks the version header. */
    ProtobufCMethodDescriptor bad_method =
        ozone__testing__echo__descriptor.methods[0];
    ProtobufCServiceDescriptor bad = ozone__testing__echo__descriptor;

    (void)state;
    /* Identical addresses are bound once. */
    assert_int_equal(rpc_server_new(&srv, &cfg, errmsg), 0);
    assert_int_equal(rpc_server_start(srv, errmsg), 0);
    assert_true(rpc_server_port(srv, 0) > 0);
    assert_int_equal(rpc_server_port(srv, 0), rpc_server_port(srv, 1));
    assert_int_equal(rpc_server_port(srv, 2), 0);
    rpc_server_free(srv, 100);
    srv = NULL;

    /* A port in use. */
    echo_start(&e);
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", e.port);
    cfg.listen_addrs = taken_addrs;
    cfg.n_listen_addrs = 1;
    assert_int_equal(rpc_server_new(&srv, &cfg, errmsg), 0);
    assert_int_equal(rpc_server_start(srv, errmsg), OZ_EIO);
    assert_non_null(strstr(errmsg, "cannot bind '127.0.0.1:"));
    rpc_server_free(srv, 0);
    srv = NULL;

    /* A service without version headers is refused. */
    bad_method.input = &ozone__ozone_error__descriptor;
    bad.methods = &bad_method;
    cfg.listen_addrs = dup_addrs;
    assert_int_equal(rpc_server_new(&srv, &cfg, errmsg), 0);
    assert_int_equal(
        rpc_server_add_service(srv, &bad, echo_handlers, NULL, errmsg),
        OZ_EINVAL);
    assert_non_null(strstr(errmsg, "ozone.OzoneError has no"));
    rpc_server_free(srv, 0);
    srv = NULL;

    /* No address. */
    cfg.n_listen_addrs = 0;
    assert_int_equal(rpc_server_new(&srv, &cfg, errmsg), OZ_EINVAL);
    assert_null(srv);
    echo_stop(&e);
}

static void test_null_handler(void **state)
{
    static const rpc_handler_fn none[] = {NULL};
    const char *addrs[] = {"127.0.0.1:0"};
    struct rpc_server_config cfg = {
        .listen_addrs = addrs,
        .n_listen_addrs = 1,
        .identity = &server_id,
    };
    struct rpc_server *srv = NULL;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char addr[64];
    const char *caddrs[] = {addr};
    struct rpc_client *c;
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    Ozone__Testing__EchoResponse *resp = NULL;
    struct rpc_error err;

    (void)state;
    assert_int_equal(rpc_server_new(&srv, &cfg, errmsg), 0);
    assert_int_equal(
        rpc_server_add_service(srv, &ozone__testing__echo__descriptor, none,
                               NULL, errmsg),
        0);
    assert_int_equal(rpc_server_start(srv, errmsg), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", rpc_server_port(srv, 0));
    c = client_for(caddrs, 1, 5000, 0);
    assert_int_equal(echo_call(c, &req, &resp, &err), OZ_ERPC);
    assert_int_equal(err.status, RPC_STATUS_UNIMPLEMENTED);
    rpc_client_free(c);
    rpc_server_free(srv, 100);
}

static void test_identity_helpers(void **state)
{
    Ozone__VersionHeader hdr;
    struct rpc_identity id = {.component = OZONE__COMPONENT__DATANODE};

    (void)state;
    rpc_identity_fill(&id, &hdr);
    assert_string_equal(hdr.node_id, "");
    assert_string_equal(hdr.cluster_id, "");
    assert_int_equal(hdr.component, OZONE__COMPONENT__DATANODE);
    assert_string_equal(rpc_component_name(OZONE__COMPONENT__OM), "OM");
    assert_string_equal(rpc_component_name(OZONE__COMPONENT__SCM), "SCM");
    assert_string_equal(rpc_component_name(OZONE__COMPONENT__DATANODE),
                        "DATANODE");
    assert_string_equal(rpc_component_name(OZONE__COMPONENT__RECON), "RECON");
    assert_string_equal(rpc_component_name(OZONE__COMPONENT__CLIENT), "CLIENT");
    assert_string_equal(rpc_component_name((Ozone__Component)99),
                        "UNSPECIFIED");
}

static int group_setup(void **state)
{
    (void)state;
    rpc_library_init();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rpc_library_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_helpers),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_handler_errors),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_raw_bad_requests),
        cmocka_unit_test(test_unknown_method_client),
        cmocka_unit_test(test_null_handler),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_all_unavailable),
        cmocka_unit_test(test_not_leader),
        cmocka_unit_test(test_not_leader_exhausted),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_wait_for_ready),
        cmocka_unit_test(test_reconnect_after_restart),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_shutdown_in_flight),
        cmocka_unit_test(test_stop_refuses_not_cancels),
        cmocka_unit_test(test_stop_under_load_fails_nothing),
        cmocka_unit_test(test_server_config),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
