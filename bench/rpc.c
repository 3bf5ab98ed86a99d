/* bench_rpc: unary round trips per second through common/rpc.
 *
 * An Echo server (proto/testing.proto) and its clients run in this process
 * on 127.0.0.1. Each measurement runs for a fixed time (argv[1] seconds,
 * default 3) and is printed beside a baseline measured in the same run:
 * the same messages packed, unpacked and handled in-process, without gRPC
 * (DESIGN.md §13: figures and ratios, no assertions on time). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "rpc.h"
#include "testing.pb-c.h"

#define PAYLOAD_BYTES 64
#define SERVER_THREADS 4

static const struct rpc_identity server_id = {
    .component = OZONE__COMPONENT__OM,
    .node_id = "bench-om",
    .cluster_id = "bench",
    .software_version = 100,
    .apparent_version = 100,
};

static const struct rpc_identity client_id = {
    .component = OZONE__COMPONENT__CLIENT,
    .node_id = "bench-client",
    .cluster_id = "bench",
    .software_version = 100,
    .apparent_version = 100,
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void echo_fill(const Ozone__Testing__EchoRequest *req,
                      Ozone__Testing__EchoResponse *resp,
                      const Ozone__VersionHeader *peer,
                      Ozone__VersionHeader *peer_copy)
{
    *peer_copy = *peer;
    resp->peer = peer_copy;
    resp->payload = req->payload;
}

static enum rpc_handler_result echo_handler(void *data,
                                            struct rpc_call *call,
                                            const ProtobufCMessage *req,
                                            ProtobufCMessage *resp)
{
    Ozone__VersionHeader *peer = rpc_call_alloc(call, sizeof(*peer));

    (void)data;
    echo_fill((const Ozone__Testing__EchoRequest *)req,
              (Ozone__Testing__EchoResponse *)resp, rpc_call_peer(call), peer);
    return RPC_HANDLER_DONE;
}

static const rpc_handler_fn echo_handlers[] = {echo_handler};

/* ---- baseline: what one call costs without the network ---- */

static uint8_t payload[PAYLOAD_BYTES];

/* Client packs (with header), server unpacks and handles and packs the
 * response (with header), client unpacks: the protobuf work of one call. */
static void baseline_once(void)
{
    Ozone__Testing__EchoRequest req = OZONE__TESTING__ECHO_REQUEST__INIT;
    Ozone__Testing__EchoResponse resp = OZONE__TESTING__ECHO_RESPONSE__INIT;
    Ozone__VersionHeader chdr, shdr, peer;
    Ozone__Testing__EchoRequest *in;
    Ozone__Testing__EchoResponse *out;
    uint8_t buf1[512], buf2[512];
    size_t n1, n2;

    rpc_identity_fill(&client_id, &chdr);
    req.hdr = &chdr;
    req.payload.data = payload;
    req.payload.len = sizeof(payload);
    n1 = ozone__testing__echo_request__pack(&req, buf1);
    in = ozone__testing__echo_request__unpack(NULL, n1, buf1);
    echo_fill(in, &resp, in->hdr, &peer);
    rpc_identity_fill(&server_id, &shdr);
    resp.hdr = &shdr;
    n2 = ozone__testing__echo_response__pack(&resp, buf2);
    out = ozone__testing__echo_response__unpack(NULL, n2, buf2);
    if (out == NULL || out->payload.len != sizeof(payload)) {
        fprintf(stderr, "bench_rpc: baseline round trip failed\n");
        exit(1);
    }
    ozone__testing__echo_response__free_unpacked(out, NULL);
    ozone__testing__echo_request__free_unpacked(in, NULL);
}

static double baseline_rate(double seconds)
{
    double start = now_s(), end = start + seconds, t;
    long n = 0;

    do {
        for (int i = 0; i < 1000; i++) {
            baseline_once();
        }
        n += 1000;
        t = now_s();
    } while (t < end);
    return (double)n / (t - start);
}

/* ---- rpc round trips ---- */

struct worker
{
    pthread_t thread;
    struct rpc_client *client;
    double end;
    long calls;
    long errors;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    while (now_s() < w->end) {
        for (int i = 0; i < 50; i++) {
            Ozone__Testing__EchoRequest req =
                OZONE__TESTING__ECHO_REQUEST__INIT;
            ProtobufCMessage *resp = NULL;
            struct rpc_error err;

            req.payload.data = payload;
            req.payload.len = sizeof(payload);
            if (rpc_client_call(w->client, &ozone__testing__echo__descriptor,
                                "Echo", &req.base, &resp, &err) == 0) {
                w->calls++;
                rpc_message_free(resp);
            } else {
                if (w->errors++ == 0) {
                    fprintf(stderr, "bench_rpc: call failed: %s\n",
                            err.message);
                }
            }
        }
    }
    return NULL;
}

static double rpc_rate(struct rpc_client *c,
                       unsigned threads,
                       double seconds,
                       long *errors)
{
    struct worker w[16];
    double start = now_s();
    long calls = 0;

    *errors = 0;
    for (unsigned i = 0; i < threads; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].client = c;
        w[i].end = start + seconds;
        pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
    }
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        calls += w[i].calls;
        *errors += w[i].errors;
    }
    return (double)calls / (now_s() - start);
}

int main(int argc, char **argv)
{
    static const unsigned thread_counts[] = {1, 4};
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    const char *listen[] = {"127.0.0.1:0"};
    struct rpc_server_config scfg = {
        .listen_addrs = listen,
        .n_listen_addrs = 1,
        .n_threads = SERVER_THREADS,
        .identity = &server_id,
    };
    struct rpc_server *srv = NULL;
    struct rpc_client *client = NULL;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char addr[64];
    const char *addrs[] = {addr};
    struct rpc_client_config ccfg = {
        .addrs = addrs,
        .n_addrs = 1,
        .identity = &client_id,
        .deadline_ms = 10000,
    };
    double base;
    int failed = 0;

    if (seconds <= 0) {
        seconds = 3.0;
    }
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)i;
    }
    if (rpc_server_new(&srv, &scfg, errmsg) != 0 ||
        rpc_server_add_service(srv, &ozone__testing__echo__descriptor,
                               echo_handlers, NULL, errmsg) != 0 ||
        rpc_server_start(srv, errmsg) != 0) {
        fprintf(stderr, "bench_rpc: %s\n", errmsg);
        return 1;
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", rpc_server_port(srv, 0));
    if (rpc_client_new(&client, &ccfg, errmsg) != 0) {
        fprintf(stderr, "bench_rpc: %s\n", errmsg);
        return 1;
    }
    {
        long warm_errors;
        rpc_rate(client, 1, 0.2, &warm_errors); /* connect, warm up */
    }

    base = baseline_rate(seconds);
    printf(
        "bench_rpc: unary Echo, %d-byte payload, server %d threads, "
        "%.1f s per figure\n",
        PAYLOAD_BYTES, SERVER_THREADS, seconds);
    printf("  %-44s %12.0f ops/s\n", "baseline: pack+unpack+handle in-process",
           base);
    for (size_t i = 0; i < sizeof(thread_counts) / sizeof(thread_counts[0]);
         i++) {
        long errors;
        double r = rpc_rate(client, thread_counts[i], seconds, &errors);
        char label[64];

        snprintf(label, sizeof(label), "rpc round trips, %u client thread%s",
                 thread_counts[i], thread_counts[i] == 1 ? "" : "s");
        printf("  %-44s %12.0f calls/s  (%.1f us/call; baseline/rpc %.0fx)%s\n",
               label, r, r > 0 ? 1e6 * thread_counts[i] / r : 0.0,
               r > 0 ? base / r : 0.0, errors != 0 ? "  ERRORS" : "");
        if (errors != 0) {
            failed = 1;
        }
    }
    rpc_client_free(client);
    rpc_server_free(srv, 1000);
    return failed;
}
