/* rpc client: unary calls with deadlines, retries and failover between the
 * nodes of one service (rpc.h; DESIGN.md §5).
 *
 * Each call packs its request once (with the client's version header in
 * field 1), then makes attempts, each a single batch on a call of its own
 * completion queue, plucked by the calling thread: no thread of ours runs
 * in the background. Channels are created on first use and shared by all
 * threads (gRPC channels are thread-safe).
 *
 * Retry policy: only UNAVAILABLE (node down or not serving), NOT_LEADER
 * (an OzoneError code; its leader_hint is tried next) and a CANCELLED that
 * carries no OzoneError are retried, up to max_attempts. The last is a
 * node that stopped under the call: gRPC core drops a call that reaches a
 * server after its shutdown began with CANCELLED before any handler saw it
 * (gRPC has already answered a call whose handler outlived the stop's grace
 * with UNAVAILABLE "Cancelling all calls").
 * Moving to a node not yet tried since the last pause is immediate; coming back
 * to one waits the backoff, which doubles up to BACKOFF_CAP_MS, so an election
 * in progress is not hammered.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "rpc_internal.h"

#define DEFAULT_DEADLINE_MS 10000
#define DEFAULT_BACKOFF_MS 50
#define BACKOFF_CAP_MS 1000
/* Longest wait for a channel to connect before an attempt: above the
 * reconnect backoff cap, so a backoff under way ends inside it. */
#define CONNECT_WAIT_MS 1500
/* Addresses learnt from leader hints beyond the configured ones. */
#define MAX_EXTRA_ADDRS 16
#define MAX_ADDR_LEN 255

struct node
{
    char *addr;
    grpc_channel *channel; /* created on first use under c->mu */
};

struct rpc_client
{
    struct node *nodes; /* capacity cap; entries below n never move */
    size_t cap;
    atomic_size_t n;
    atomic_size_t current; /* the node that answered last */
    pthread_mutex_t mu;    /* channel creation, adding nodes */
    const struct rpc_identity *identity;
    int deadline_ms;
    int max_attempts;
    int backoff_ms;
    size_t max_message;
    bool wait_for_ready;
};

/* What one attempt asks the retry loop to do. */
enum attempt_result { ATTEMPT_DONE, ATTEMPT_NEXT_NODE, ATTEMPT_NOT_LEADER };

int rpc_client_new(struct rpc_client **out,
                   const struct rpc_client_config *cfg,
                   char *errmsg)
{
    struct rpc_client *c;

    *out = NULL;
    if (cfg == NULL || cfg->addrs == NULL || cfg->n_addrs == 0) {
        oz_errmsg_printf(errmsg, "rpc client needs at least one address");
        return OZ_EINVAL;
    }
    if (cfg->identity == NULL) {
        oz_errmsg_printf(errmsg, "rpc client needs an identity");
        return OZ_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_addrs; i++) {
        if (cfg->addrs[i] == NULL || cfg->addrs[i][0] == '\0' ||
            strlen(cfg->addrs[i]) > MAX_ADDR_LEN) {
            oz_errmsg_printf(errmsg,
                             "rpc client: address %zu is empty or too long", i);
            return OZ_EINVAL;
        }
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        goto err_nomem;
    }
    c->cap = cfg->n_addrs + MAX_EXTRA_ADDRS;
    c->nodes = calloc(c->cap, sizeof(*c->nodes));
    if (c->nodes == NULL) {
        goto err_after_client;
    }
    for (size_t i = 0; i < cfg->n_addrs; i++) {
        c->nodes[i].addr = strdup(cfg->addrs[i]);
        if (c->nodes[i].addr == NULL) {
            goto err_after_nodes;
        }
    }
    atomic_init(&c->n, cfg->n_addrs);
    atomic_init(&c->current, 0);
    c->identity = cfg->identity;
    c->deadline_ms =
        cfg->deadline_ms > 0 ? cfg->deadline_ms : DEFAULT_DEADLINE_MS;
    c->max_attempts =
        cfg->max_attempts > 0 ? cfg->max_attempts : 2 * (int)cfg->n_addrs + 3;
    c->backoff_ms = cfg->backoff_ms > 0 ? cfg->backoff_ms : DEFAULT_BACKOFF_MS;
    c->max_message = cfg->max_message_bytes != 0 ? cfg->max_message_bytes
                                                 : RPC__DEFAULT_MAX_MESSAGE;
    if (c->max_message > INT32_MAX) {
        c->max_message = INT32_MAX;
    }
    c->wait_for_ready = cfg->wait_for_ready;
    pthread_mutex_init(&c->mu, NULL);
    rpc_library_init();
    *out = c;
    return 0;

err_after_nodes:
    for (size_t i = 0; i < cfg->n_addrs; i++) {
        free(c->nodes[i].addr);
    }
    free(c->nodes);
err_after_client:
    free(c);
err_nomem:
    oz_errmsg_printf(errmsg, "rpc client: out of memory");
    return OZ_ENOMEM;
}

void rpc_client_free(struct rpc_client *c)
{
    size_t n;

    if (c == NULL) {
        return;
    }
    n = atomic_load(&c->n);
    for (size_t i = 0; i < n; i++) {
        if (c->nodes[i].channel != NULL) {
            grpc_channel_destroy(c->nodes[i].channel);
        }
        free(c->nodes[i].addr);
    }
    free(c->nodes);
    pthread_mutex_destroy(&c->mu);
    free(c);
    rpc_library_shutdown();
}

const char *rpc_client_current_address(const struct rpc_client *c)
{
    return c->nodes[atomic_load(&c->current)].addr;
}

static grpc_channel *node_channel(struct rpc_client *c, size_t i)
{
    grpc_channel *ch;

    pthread_mutex_lock(&c->mu);
    ch = c->nodes[i].channel;
    if (ch == NULL) {
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        grpc_arg args[4];
        grpc_channel_args ca;

        memset(args, 0, sizeof(args));
        args[0].type = GRPC_ARG_INTEGER;
        args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
        args[0].value.integer = (int)c->max_message;
        /* A restarted node must be found again within seconds, not after
         * gRPC's default reconnect backoff of up to two minutes. */
        args[1].type = GRPC_ARG_INTEGER;
        args[1].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
        args[1].value.integer = 100;
        args[2].type = GRPC_ARG_INTEGER;
        args[2].key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
        args[2].value.integer = 100;
        args[3].type = GRPC_ARG_INTEGER;
        args[3].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
        args[3].value.integer = BACKOFF_CAP_MS;
        ca.num_args = 4;
        ca.args = args;
        ch = grpc_channel_create(c->nodes[i].addr, creds, &ca);
        grpc_channel_credentials_release(creds);
        c->nodes[i].channel = ch;
    }
    pthread_mutex_unlock(&c->mu);
    return ch;
}

/* Index of addr, adding it when new and there is room; SIZE_MAX if not. */
static size_t node_find_or_add(struct rpc_client *c, const char *addr)
{
    size_t n, i;

    if (addr[0] == '\0' || strlen(addr) > MAX_ADDR_LEN) {
        return SIZE_MAX;
    }
    pthread_mutex_lock(&c->mu);
    n = atomic_load(&c->n);
    for (i = 0; i < n; i++) {
        if (strcmp(c->nodes[i].addr, addr) == 0) {
            break;
        }
    }
    if (i == n) {
        char *copy = n < c->cap ? strdup(addr) : NULL;
        if (copy == NULL) {
            i = SIZE_MAX;
        } else {
            c->nodes[n].addr = copy;
            c->nodes[n].channel = NULL;
            atomic_store(&c->n, n + 1); /* publish after filling */
            log_info("rpc client: learnt address '%s' from a leader hint",
                     addr);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return i;
}

static grpc_slice pack_to_slice(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);

    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    return s;
}

static void slice_to_buf(grpc_slice s, char *buf, size_t size)
{
    size_t n = GRPC_SLICE_LENGTH(s);

    if (n >= size) {
        n = size - 1;
    }
    memcpy(buf, GRPC_SLICE_START_PTR(s), n);
    buf[n] = '\0';
}

/* Reads ozone-error-bin into err; returns whether it was present. */
static bool parse_ozone_error(const grpc_metadata_array *md,
                              struct rpc_error *err)
{
    for (size_t i = 0; i < md->count; i++) {
        const grpc_metadata *m = &md->metadata[i];
        Ozone__OzoneError *oe;

        if (grpc_slice_str_cmp(m->key, RPC__ERROR_MD_KEY) != 0) {
            continue;
        }
        oe = ozone__ozone_error__unpack(NULL, GRPC_SLICE_LENGTH(m->value),
                                        GRPC_SLICE_START_PTR(m->value));
        if (oe == NULL) {
            return false;
        }
        err->code = oe->code;
        if (oe->message != NULL && oe->message[0] != '\0') {
            oz_strlcpy(err->message, oe->message, sizeof(err->message));
        }
        oz_strlcpy(err->leader_hint,
                   oe->leader_hint != NULL ? oe->leader_hint : "",
                   sizeof(err->leader_hint));
        ozone__ozone_error__free_unpacked(oe, NULL);
        return true;
    }
    return false;
}

/* An OzoneError code for a failure that carried none (gRPC's own errors:
 * connection refused, deadline, message too large...). */
static Ozone__ResultCode code_for_status(grpc_status_code st)
{
    switch (st) {
        case GRPC_STATUS_UNAVAILABLE:
        case GRPC_STATUS_CANCELLED: /* by a stopping server: see the top */
            return OZONE__RESULT_CODE__UNAVAILABLE;
        case GRPC_STATUS_DEADLINE_EXCEEDED:
            return OZONE__RESULT_CODE__TIMEOUT;
        case GRPC_STATUS_UNIMPLEMENTED:
            return OZONE__RESULT_CODE__UNKNOWN_METHOD;
        case GRPC_STATUS_RESOURCE_EXHAUSTED:
            return OZONE__RESULT_CODE__MESSAGE_TOO_LARGE;
        case GRPC_STATUS_INVALID_ARGUMENT:
            return OZONE__RESULT_CODE__INVALID_ARGUMENT;
        default:
            return OZONE__RESULT_CODE__INTERNAL_ERROR;
    }
}

static void set_local_error(struct rpc_error *err,
                            enum rpc_status st,
                            Ozone__ResultCode code,
                            const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));

static void set_local_error(struct rpc_error *err,
                            enum rpc_status st,
                            Ozone__ResultCode code,
                            const char *fmt,
                            ...)
{
    va_list ap;

    err->status = st;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* Decodes a successful reply. 0 or OZ_EINVAL with err filled. */
static int decode_response(grpc_byte_buffer *bb,
                           const char *addr,
                           const ProtobufCMessageDescriptor *desc,
                           ProtobufCMessage **resp,
                           struct rpc_error *err)
{
    grpc_byte_buffer_reader reader;
    grpc_slice s;
    ProtobufCMessage *m;

    if (bb == NULL || !grpc_byte_buffer_reader_init(&reader, bb)) {
        set_local_error(err, RPC_STATUS_INTERNAL,
                        OZONE__RESULT_CODE__INTERNAL_ERROR,
                        "response from '%s' carries no message", addr);
        return OZ_EINVAL;
    }
    s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    m = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s),
                                  GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    if (m == NULL) {
        set_local_error(
            err, RPC_STATUS_INTERNAL, OZONE__RESULT_CODE__INTERNAL_ERROR,
            "malformed response from '%s': cannot decode %s", addr, desc->name);
        return OZ_EINVAL;
    }
    if (*rpc__header_slot(m, rpc__header_field(desc)) == NULL) {
        protobuf_c_message_free_unpacked(m, NULL);
        set_local_error(err, RPC_STATUS_INTERNAL,
                        OZONE__RESULT_CODE__MISSING_VERSION_HEADER,
                        "response from '%s' has no version header", addr);
        return OZ_EINVAL;
    }
    *resp = m;
    return 0;
}

struct attempt
{
    const char *path;
    grpc_slice req;
    const ProtobufCMessageDescriptor *out_desc;
    ProtobufCMessage **resp;
    struct rpc_error *err;
    int rc; /* when ATTEMPT_DONE */
};

/* Classifies a non-OK status; fills a->err and a->rc. */
static enum attempt_result on_failure(struct attempt *a,
                                      const char *addr,
                                      grpc_status_code status,
                                      grpc_slice details,
                                      const grpc_metadata_array *trailer)
{
    struct rpc_error *err = a->err;

    err->status = (enum rpc_status)status;
    slice_to_buf(details, err->message, sizeof(err->message));
    if (err->message[0] == '\0') {
        snprintf(err->message, sizeof(err->message), "gRPC status %d",
                 (int)status);
    }
    bool answered = parse_ozone_error(trailer, err);
    if (!answered) {
        err->code = code_for_status(status);
        err->leader_hint[0] = '\0';
    }
    if (err->code == OZONE__RESULT_CODE__NOT_LEADER) {
        a->rc = OZ_ERPC;
        return ATTEMPT_NOT_LEADER;
    }
    if (status == GRPC_STATUS_UNAVAILABLE && answered) {
        /* The node answered: something behind it is unavailable (e.g. OM
         * cannot reach SCM). Its message says what; do not blame the node
         * or fail over from it. */
        a->rc = OZ_EUNAVAILABLE;
        return ATTEMPT_DONE;
    }
    if (status == GRPC_STATUS_UNAVAILABLE) {
        char text[sizeof(err->message)];

        oz_strlcpy(text, err->message, sizeof(text));
        snprintf(err->message, sizeof(err->message), "cannot reach '%s': %s",
                 addr, text);
        a->rc = OZ_EUNAVAILABLE;
        return ATTEMPT_NEXT_NODE;
    }
    if (status == GRPC_STATUS_CANCELLED && !answered) {
        char text[sizeof(err->message)];

        oz_strlcpy(text, err->message, sizeof(text));
        snprintf(err->message, sizeof(err->message),
                 "'%s' dropped the call while stopping: %s", addr, text);
        a->rc = OZ_EUNAVAILABLE;
        return ATTEMPT_NEXT_NODE;
    }
    a->rc = status == GRPC_STATUS_DEADLINE_EXCEEDED ? OZ_ETIMEDOUT : OZ_ERPC;
    return ATTEMPT_DONE;
}

/* Drives the channel's connection to READY, for at most wait_ms, by
 * polling cq (PITFALLS: gRPC core makes progress on a connection only
 * while some thread polls; a fail-fast call made while the channel is
 * reconnecting fails at once and polls nothing, so a node that came back
 * in 0.2 s stayed unreachable for seconds while every attempt's connect
 * timed out unpolled). Returns at READY, SHUTDOWN, or at TRANSIENT_FAILURE
 * reached by a connect started here (the node is down: fail over now). */
static void await_connection(grpc_channel *ch,
                             grpc_completion_queue *cq,
                             long wait_ms)
{
    gpr_timespec until =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis(wait_ms, GPR_TIMESPAN));
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(ch, 1);
    bool connected_here = st != GRPC_CHANNEL_TRANSIENT_FAILURE;
    int tag;

    while (st != GRPC_CHANNEL_READY && st != GRPC_CHANNEL_SHUTDOWN &&
           !(st == GRPC_CHANNEL_TRANSIENT_FAILURE && connected_here)) {
        grpc_event ev;

        grpc_channel_watch_connectivity_state(ch, st, until, cq, &tag);
        ev = grpc_completion_queue_pluck(
            cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
            return; /* wait_ms passed */
        }
        /* Out of a reconnect backoff the channel goes IDLE: connect. */
        st = grpc_channel_check_connectivity_state(ch, 1);
        if (st == GRPC_CHANNEL_IDLE || st == GRPC_CHANNEL_CONNECTING) {
            connected_here = true;
        }
    }
}

static enum attempt_result attempt_once(struct rpc_client *c,
                                        size_t idx,
                                        struct attempt *a)
{
    const char *addr = c->nodes[idx].addr;
    grpc_channel *ch = node_channel(c, idx);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis(c->deadline_ms, GPR_TIMESPAN));
    grpc_slice method = grpc_slice_from_copied_string(a->path);
    grpc_call *call;
    grpc_byte_buffer *send_bb, *recv_bb = NULL;
    grpc_metadata_array init_md, trailer;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    grpc_call_error ce;
    grpc_event ev;
    enum attempt_result r;

    oz_strlcpy(a->err->address, addr, sizeof(a->err->address));
    if (!c->wait_for_ready) {
        await_connection(ch, cq,
                         c->deadline_ms < CONNECT_WAIT_MS ? c->deadline_ms
                                                          : CONNECT_WAIT_MS);
    }
    call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                    method, NULL, deadline, NULL);
    grpc_slice_unref(method);
    send_bb = grpc_raw_byte_buffer_create(&a->req, 1);
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trailer);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].flags = c->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailer;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    ce = grpc_call_start_batch(call, ops, 6, ops, NULL);
    if (ce == GRPC_CALL_OK) {
        /* The call's deadline bounds this wait. */
        ev = grpc_completion_queue_pluck(
            cq, ops, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            status = GRPC_STATUS_INTERNAL;
        }
    } else {
        status = GRPC_STATUS_INTERNAL;
        details = grpc_slice_from_static_string("cannot start the call");
    }

    if (status == GRPC_STATUS_OK) {
        a->rc = decode_response(recv_bb, addr, a->out_desc, a->resp, a->err);
        r = ATTEMPT_DONE;
    } else {
        r = on_failure(a, addr, status, details, &trailer);
    }

    if (recv_bb != NULL) {
        grpc_byte_buffer_destroy(recv_bb);
    }
    grpc_byte_buffer_destroy(send_bb);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trailer);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    ev = grpc_completion_queue_pluck(cq, NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    (void)ev; /* GRPC_QUEUE_SHUTDOWN: nothing is pending any more */
    grpc_completion_queue_destroy(cq);
    return r;
}

/* The attempt loop; see the retry policy at the top of the file. */
static int call_with_retries(struct rpc_client *c, struct attempt *a)
{
    bool tried[MAX_EXTRA_ADDRS * 2 + 64];
    size_t n_tried = sizeof(tried) / sizeof(tried[0]);
    size_t idx = atomic_load(&c->current);
    int backoff = c->backoff_ms;

    memset(tried, 0, sizeof(tried));
    for (int attempt = 0; attempt < c->max_attempts; attempt++) {
        enum attempt_result r;

        if (idx < n_tried && tried[idx]) {
            oz_sleep_ms(backoff);
            backoff =
                backoff * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : backoff * 2;
            memset(tried, 0, sizeof(tried));
        }
        if (idx < n_tried) {
            tried[idx] = true;
        }
        memset(a->err, 0, sizeof(*a->err));
        r = attempt_once(c, idx, a);
        if (r == ATTEMPT_DONE) {
            atomic_store(&c->current, idx);
            return a->rc;
        }
        if (r == ATTEMPT_NOT_LEADER) {
            size_t hint = a->err->leader_hint[0] != '\0'
                              ? node_find_or_add(c, a->err->leader_hint)
                              : SIZE_MAX;
            idx = hint != SIZE_MAX ? hint : (idx + 1) % atomic_load(&c->n);
        } else {
            idx = (idx + 1) % atomic_load(&c->n);
        }
    }
    return a->rc;
}

int rpc_client_call(struct rpc_client *c,
                    const ProtobufCServiceDescriptor *service,
                    const char *method,
                    ProtobufCMessage *req,
                    ProtobufCMessage **resp,
                    struct rpc_error *err)
{
    const ProtobufCMethodDescriptor *md;
    const ProtobufCFieldDescriptor *hf;
    struct rpc_error scratch;
    struct attempt a;
    Ozone__VersionHeader hdr, **slot, *saved;
    char path[512];
    int rc;

    *resp = NULL;
    if (err == NULL) {
        err = &scratch;
    }
    memset(err, 0, sizeof(*err));
    md = protobuf_c_service_descriptor_get_method_by_name(service, method);
    if (md == NULL) {
        set_local_error(err, RPC_STATUS_INVALID_ARGUMENT,
                        OZONE__RESULT_CODE__UNKNOWN_METHOD,
                        "unknown method '%s' of service '%s'", method,
                        service->name);
        return OZ_EINVAL;
    }
    hf = rpc__header_field(md->input);
    if (req == NULL || req->descriptor != md->input || hf == NULL ||
        rpc__header_field(md->output) == NULL) {
        set_local_error(err, RPC_STATUS_INVALID_ARGUMENT,
                        OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "cannot call '%s/%s': request must be a %s and both "
                        "messages need a version header",
                        service->name, method, md->input->name);
        return OZ_EINVAL;
    }
    snprintf(path, sizeof(path), "/%s/%s", service->name, md->name);

    /* DESIGN.md §5: the rpc layer stamps every request. */
    rpc_identity_fill(c->identity, &hdr);
    slot = rpc__header_slot(req, hf);
    saved = *slot;
    *slot = &hdr;
    a.req = pack_to_slice(req);
    *slot = saved;

    a.path = path;
    a.out_desc = md->output;
    a.resp = resp;
    a.err = err;
    a.rc = OZ_EUNAVAILABLE;
    rc = call_with_retries(c, &a);
    grpc_slice_unref(a.req);
    return rc;
}
