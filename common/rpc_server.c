/* rpc server: unary gRPC calls dispatched to protoc-c service handlers
 * (rpc.h; DESIGN.md §4, §5; PITFALLS.md "gRPC C core").
 *
 * Threading: one completion queue shared by n_threads threads that run
 * grpc_completion_queue_next(). Every tag starts with a struct tag saying
 * what it is:
 *   - a slot: a grpc_server_request_*call kept outstanding. Each registered
 *     method has n_threads slots; one generic slot catches every other
 *     method so that it gets UNIMPLEMENTED at once instead of hanging
 *     (PITFALLS.md). A slot that fires is re-armed before its call is
 *     served.
 *   - a call: the single send batch of an rpc_call (initial metadata,
 *     message, status, close); its completion frees the call.
 *   - the server's shutdown tag.
 * A handler runs on the queue thread that received the call; a PENDING
 * call is finished from any thread with rpc_call_complete(), which only
 * starts the send batch (grpc_call_start_batch is safe from any thread).
 *
 * Shutdown (PITFALLS.md "shutdown trap"): srv->live counts armed slots
 * plus live calls. The queue is shut down only after the server's shutdown
 * tag arrived AND live is zero, so that no batch can start on a queue that
 * is shutting down.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#include "err.h"
#include "log.h"
#include "metrics.h"
#include "rpc_internal.h"

#define DEFAULT_THREADS 4u
#define MAX_THREADS 256u
/* While waiting for handlers that keep PENDING calls past the grace
 * period, say so this often. */
#define SHUTDOWN_NAG_MS 5000

enum tag_kind { TAG_SLOT, TAG_CALL, TAG_SHUTDOWN };

struct tag
{
    enum tag_kind kind;
};

struct method
{
    const ProtobufCServiceDescriptor *service;
    const ProtobufCMethodDescriptor *desc;
    rpc_handler_fn handler; /* NULL: UNIMPLEMENTED */
    void *data;
    const ProtobufCFieldDescriptor *resp_hdr;
    char *path;   /* "/<service>/<method>" */
    void *handle; /* grpc_server_register_method */
    /* DESIGN.md §12: RPC counts and latencies on /prom. */
    struct metric *requests;
    struct metric *errors;
    struct metric *server_errors; /* the server's fault (server_fault()) */
    struct metric *latency;
};

/* One outstanding grpc_server_request_(registered_)call. */
struct slot
{
    struct tag tag;
    struct rpc_server *srv;
    size_t method; /* index into srv->methods; SIZE_MAX: generic */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* generic only */
};

struct rpc_server
{
    char **addrs;
    size_t n_addrs;
    int *ports;
    unsigned n_threads;
    size_t max_message;
    const struct rpc_identity *identity;

    struct method *methods;
    size_t n_methods;
    struct slot *slots;
    size_t n_slots;

    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t *threads;
    unsigned n_running;
    bool started;
    /* A planned stop first refuses new calls (UNAVAILABLE without an
     * OzoneError, which every client retries) while the admitted ones
     * finish, then shuts gRPC down (stop_serving()). */
    atomic_bool refusing;
    atomic_size_t admitted; /* calls whose handler was or will be run */
    atomic_bool stopping;   /* no more slots are armed */

    pthread_mutex_t mu;
    pthread_cond_t cond; /* live reached 0, or shutdown tag arrived */
    size_t live;         /* armed slots + live calls */
    atomic_size_t calls; /* live calls only, for the shutdown log */
    bool shutdown_done;
    struct tag shutdown_tag;
};

struct rpc_call
{
    struct tag tag;
    struct rpc_server *srv;
    const struct method *method; /* NULL for an unknown method */
    const char *path;
    grpc_call *call;
    grpc_metadata_array req_md;
    char *peer_address;
    ProtobufCMessage *req;
    ProtobufCMessage *resp;
    const Ozone__VersionHeader *peer;
    struct rpc__arena arena;
    struct timespec start; /* when the call arrived, for the latency */

    bool failed;
    struct rpc__status err;
    char leader_hint[256];

    /* Send batch state; lives until the batch completes. */
    grpc_byte_buffer *send_bb;
    grpc_slice details;
    bool has_details;
    grpc_metadata trailer;
    bool has_trailer;
    int cancelled;
    bool admitted; /* counted in srv->admitted */
    bool refused;  /* answered "shutting down" without running a handler */
};

/* ---- live count ---- */

static void live_add(struct rpc_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->live++;
    pthread_mutex_unlock(&srv->mu);
}

static void live_done(struct rpc_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->live--;
    if (srv->live == 0) {
        pthread_cond_broadcast(&srv->cond);
    }
    pthread_mutex_unlock(&srv->mu);
}

/* ---- slots ---- */

static void slot_arm(struct slot *s)
{
    struct rpc_server *srv = s->srv;
    grpc_call_error rc;

    live_add(srv);
    s->call = NULL;
    s->payload = NULL;
    grpc_metadata_array_init(&s->md);
    if (s->method == SIZE_MAX) {
        grpc_call_details_init(&s->details);
        rc = grpc_server_request_call(srv->server, &s->call, &s->details,
                                      &s->md, srv->cq, srv->cq, &s->tag);
    } else {
        rc = grpc_server_request_registered_call(
            srv->server, srv->methods[s->method].handle, &s->call, &s->deadline,
            &s->md, &s->payload, srv->cq, srv->cq, &s->tag);
    }
    if (rc != GRPC_CALL_OK) {
        log_error("rpc server: cannot wait for calls (grpc error %d)", (int)rc);
        grpc_metadata_array_destroy(&s->md);
        if (s->method == SIZE_MAX) {
            grpc_call_details_destroy(&s->details);
        }
        live_done(srv);
    }
}

/* ---- calls ---- */

static void call_free(struct rpc_call *c)
{
    struct rpc_server *srv = c->srv;

    if (c->send_bb != NULL) {
        grpc_byte_buffer_destroy(c->send_bb);
    }
    if (c->has_details) {
        grpc_slice_unref(c->details);
    }
    if (c->has_trailer) {
        grpc_slice_unref(c->trailer.key);
        grpc_slice_unref(c->trailer.value);
    }
    grpc_metadata_array_destroy(&c->req_md);
    grpc_call_unref(c->call);
    rpc__arena_release(&c->arena);
    if (c->admitted) {
        atomic_fetch_sub(&srv->admitted, 1);
    }
    free(c);
    atomic_fetch_sub(&srv->calls, 1);
    live_done(srv);
}

static grpc_slice pack_to_slice(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);

    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    return s;
}

static void call_fail(struct rpc_call *c, const struct rpc__status *st)
{
    c->failed = true;
    c->err = *st;
}

/* Whether a failed call failed by the server's fault rather than the
 * request's: the rolling upgrade's safety gate counts these
 * (admin-cli/orch_gate.c). The OzoneError code decides when there is one
 * (KEY_NOT_FOUND, QUOTA_EXCEEDED, NOT_LEADER... are answers to the
 * request, whatever gRPC status carries them); the gRPC status otherwise. */
static bool server_fault(const struct rpc__status *st)
{
    switch (st->code) {
        case OZONE__RESULT_CODE__OK:
            break;
        case OZONE__RESULT_CODE__INTERNAL_ERROR:
        case OZONE__RESULT_CODE__UNAVAILABLE:
        case OZONE__RESULT_CODE__TIMEOUT:
        case OZONE__RESULT_CODE__IO_EXCEPTION:
            return true;
        default:
            return false;
    }
    switch (st->status) {
        case RPC_STATUS_INTERNAL:
        case RPC_STATUS_UNAVAILABLE:
        case RPC_STATUS_UNKNOWN:
        case RPC_STATUS_DEADLINE_EXCEEDED:
        case RPC_STATUS_RESOURCE_EXHAUSTED:
            return true;
        default:
            return false;
    }
}

static void record_metrics(const struct rpc_call *c)
{
    struct timespec now;

    if (c->method == NULL) {
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    metrics_add(c->method->requests, 1);
    if (c->failed) {
        metrics_add(c->method->errors, 1);
        if (server_fault(&c->err)) {
            metrics_add(c->method->server_errors, 1);
        }
    }
    metrics_observe(c->method->latency,
                    (double)(now.tv_sec - c->start.tv_sec) +
                        (double)(now.tv_nsec - c->start.tv_nsec) / 1e9);
}

/* Starts the one send batch of c; its completion frees c. */
static void call_send(struct rpc_call *c)
{
    grpc_op ops[4];
    size_t n = 0;
    grpc_call_error rc;

    memset(ops, 0, sizeof(ops));
    if (!c->refused) { /* a refused call was not served: not counted */
        record_metrics(c);
    }
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    n++;
    if (!c->failed && c->resp != NULL) {
        Ozone__VersionHeader *hdr = rpc__arena_alloc(&c->arena, sizeof(*hdr));
        grpc_slice s;

        rpc_identity_fill(c->srv->identity, hdr);
        *rpc__header_slot(c->resp, c->method->resp_hdr) = hdr;
        s = pack_to_slice(c->resp);
        c->send_bb = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->send_bb;
        n++;
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = GRPC_STATUS_OK;
        n++;
    } else {
        Ozone__OzoneError oe = OZONE__OZONE_ERROR__INIT;

        if (!c->failed) { /* cannot happen: resp is set whenever !failed */
            c->err.status = RPC_STATUS_INTERNAL;
            c->err.code = OZONE__RESULT_CODE__INTERNAL_ERROR;
            oz_strlcpy(c->err.message, "internal error: no response",
                       sizeof(c->err.message));
        }
        if (!c->refused) {
            /* A refused call carries no OzoneError: to its client it is
             * the same as a node that is down, retried elsewhere or
             * later (rpc_client.c), which is safe as nothing ran. */
            oe.code = c->err.code;
            oe.message = c->err.message;
            oe.leader_hint = c->leader_hint;
            c->trailer.key = grpc_slice_from_static_string(RPC__ERROR_MD_KEY);
            c->trailer.value = pack_to_slice(&oe.base);
            c->has_trailer = true;
        }
        c->details = grpc_slice_from_copied_string(c->err.message);
        c->has_details = true;
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status =
            (grpc_status_code)c->err.status;
        ops[n].data.send_status_from_server.status_details = &c->details;
        ops[n].data.send_status_from_server.trailing_metadata_count =
            c->has_trailer ? 1 : 0;
        ops[n].data.send_status_from_server.trailing_metadata =
            c->has_trailer ? &c->trailer : NULL;
        n++;
    }
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
    n++;
    c->tag.kind = TAG_CALL;
    rc = grpc_call_start_batch(c->call, ops, n, &c->tag, NULL);
    if (rc != GRPC_CALL_OK) {
        log_error("rpc server: cannot answer '%s' (grpc error %d)", c->path,
                  (int)rc);
        call_free(c);
    }
}

static void call_set_status(struct rpc_call *c,
                            enum rpc_status status,
                            Ozone__ResultCode code,
                            const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));

static void call_set_status(struct rpc_call *c,
                            enum rpc_status status,
                            Ozone__ResultCode code,
                            const char *fmt,
                            ...)
{
    va_list ap;

    c->failed = true;
    c->err.status = status;
    c->err.code = code;
    va_start(ap, fmt);
    vsnprintf(c->err.message, sizeof(c->err.message), fmt, ap);
    va_end(ap);
}

/* Decodes the request and runs the handler; sends unless PENDING. */
static void call_serve(struct rpc_call *c, grpc_byte_buffer *payload)
{
    const struct method *m = c->method;
    grpc_byte_buffer_reader reader;
    grpc_slice in;
    struct rpc__status st;
    ProtobufCMessage *req = NULL;
    const ProtobufCMessageDescriptor *out_desc;
    int rc;

    /* Counted before the check, checked after: stop_serving() sets
     * refusing before it reads admitted, so a call is either refused or
     * waited for (both sides use sequentially consistent atomics). */
    atomic_fetch_add(&c->srv->admitted, 1);
    c->admitted = true;
    if (atomic_load(&c->srv->refusing)) {
        atomic_fetch_sub(&c->srv->admitted, 1);
        c->admitted = false;
        c->refused = true;
        call_set_status(c, RPC_STATUS_UNAVAILABLE,
                        OZONE__RESULT_CODE__UNAVAILABLE,
                        "server is shutting down: retry on another node or "
                        "once it is back");
        goto send;
    }
    if (m == NULL) {
        call_set_status(c, RPC_STATUS_UNIMPLEMENTED,
                        OZONE__RESULT_CODE__UNKNOWN_METHOD,
                        "unknown method '%s'", c->path);
        goto send;
    }
    if (m->handler == NULL) {
        call_set_status(
            c, RPC_STATUS_UNIMPLEMENTED, OZONE__RESULT_CODE__UNKNOWN_METHOD,
            "method '%s' is not implemented by this server", c->path);
        goto send;
    }
    if (payload == NULL) {
        call_set_status(c, RPC_STATUS_INVALID_ARGUMENT,
                        OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "request for '%s' carries no message", c->path);
        goto send;
    }
    if (!grpc_byte_buffer_reader_init(&reader, payload)) {
        call_set_status(c, RPC_STATUS_INVALID_ARGUMENT,
                        OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "malformed request for '%s': cannot decompress it",
                        c->path);
        goto send;
    }
    in = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    rc = rpc__decode_request(m->desc->input, c->path, GRPC_SLICE_START_PTR(in),
                             GRPC_SLICE_LENGTH(in), c->srv->max_message,
                             &c->arena.allocator, &req, &st);
    grpc_slice_unref(in); /* protobuf-c copied what it keeps */
    if (rc != 0) {
        call_fail(c, &st);
        goto send;
    }
    c->req = req;
    c->peer = *rpc__header_slot(req, rpc__header_field(req->descriptor));
    out_desc = m->desc->output;
    c->resp = rpc__arena_zalloc(&c->arena, out_desc->sizeof_message);
    out_desc->message_init(c->resp);
    if (m->handler(m->data, c, c->req, c->resp) == RPC_HANDLER_PENDING) {
        return; /* c may already be freed by rpc_call_complete() */
    }
send:
    call_send(c);
}

static void on_slot(struct slot *s, bool ok)
{
    struct rpc_server *srv = s->srv;
    struct rpc_call *c;
    grpc_byte_buffer *payload = s->payload;
    bool generic = s->method == SIZE_MAX;

    if (!ok || s->call == NULL) {
        /* Server shutting down: the request was cancelled. */
        if (payload != NULL) {
            grpc_byte_buffer_destroy(payload);
        }
        grpc_metadata_array_destroy(&s->md);
        if (generic) {
            grpc_call_details_destroy(&s->details);
        }
        live_done(srv);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__);
        abort();
    }
    /* The slot's unit of srv->live passes to the call. */
    atomic_fetch_add(&srv->calls, 1);
    c->srv = srv;
    c->call = s->call;
    c->req_md = s->md;
    clock_gettime(CLOCK_MONOTONIC, &c->start);
    rpc__arena_init(&c->arena);
    if (generic) {
        size_t len = GRPC_SLICE_LENGTH(s->details.method);
        char *path = rpc__arena_alloc(&c->arena, len + 1);

        memcpy(path, GRPC_SLICE_START_PTR(s->details.method), len);
        path[len] = '\0';
        c->path = path;
        grpc_call_details_destroy(&s->details);
    } else {
        c->method = &srv->methods[s->method];
        c->path = c->method->path;
    }
    if (!atomic_load(&srv->stopping)) {
        slot_arm(s);
    }
    call_serve(c, payload);
    if (payload != NULL) {
        grpc_byte_buffer_destroy(payload);
    }
}

static void *cq_thread(void *arg)
{
    struct rpc_server *srv = arg;

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        struct tag *t;

        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            continue;
        }
        t = ev.tag;
        switch (t->kind) {
            case TAG_SLOT:
                on_slot((struct slot *)(void *)t, ev.success != 0);
                break;
            case TAG_CALL:
                call_free((struct rpc_call *)(void *)t);
                break;
            case TAG_SHUTDOWN:
                pthread_mutex_lock(&srv->mu);
                srv->shutdown_done = true;
                pthread_cond_broadcast(&srv->cond);
                pthread_mutex_unlock(&srv->mu);
                break;
        }
    }
    return NULL;
}

/* ---- server lifecycle ---- */

int rpc_server_new(struct rpc_server **out,
                   const struct rpc_server_config *cfg,
                   char *errmsg)
{
    struct rpc_server *srv;
    pthread_condattr_t ca;

    *out = NULL;
    if (cfg == NULL || cfg->listen_addrs == NULL || cfg->n_listen_addrs == 0) {
        oz_errmsg_printf(errmsg, "rpc server needs at least one address");
        return OZ_EINVAL;
    }
    if (cfg->identity == NULL) {
        oz_errmsg_printf(errmsg, "rpc server needs an identity");
        return OZ_EINVAL;
    }
    if (cfg->n_threads > MAX_THREADS) {
        oz_errmsg_printf(errmsg, "rpc server: %u threads is more than %u",
                         cfg->n_threads, MAX_THREADS);
        return OZ_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_listen_addrs; i++) {
        if (cfg->listen_addrs[i] == NULL || cfg->listen_addrs[i][0] == '\0') {
            oz_errmsg_printf(errmsg, "rpc server: listen address %zu is empty",
                             i);
            return OZ_EINVAL;
        }
    }
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        goto err_nomem;
    }
    srv->n_threads = cfg->n_threads != 0 ? cfg->n_threads : DEFAULT_THREADS;
    srv->max_message = cfg->max_message_bytes != 0 ? cfg->max_message_bytes
                                                   : RPC__DEFAULT_MAX_MESSAGE;
    if (srv->max_message > INT_MAX) {
        srv->max_message = INT_MAX;
    }
    srv->identity = cfg->identity;
    srv->addrs = calloc(cfg->n_listen_addrs, sizeof(*srv->addrs));
    srv->ports = calloc(cfg->n_listen_addrs, sizeof(*srv->ports));
    if (srv->addrs == NULL || srv->ports == NULL) {
        goto err_after_alloc;
    }
    srv->n_addrs = cfg->n_listen_addrs;
    for (size_t i = 0; i < srv->n_addrs; i++) {
        srv->addrs[i] = strdup(cfg->listen_addrs[i]);
        if (srv->addrs[i] == NULL) {
            goto err_after_alloc;
        }
    }
    pthread_mutex_init(&srv->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->cond, &ca);
    pthread_condattr_destroy(&ca);
    srv->shutdown_tag.kind = TAG_SHUTDOWN;
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->refusing, false);
    atomic_init(&srv->admitted, 0);
    atomic_init(&srv->calls, 0);
    rpc_library_init();
    *out = srv;
    return 0;

err_after_alloc:
    if (srv->addrs != NULL) {
        for (size_t i = 0; i < srv->n_addrs; i++) {
            free(srv->addrs[i]);
        }
    }
    free(srv->addrs);
    free(srv->ports);
    free(srv);
err_nomem:
    oz_errmsg_printf(errmsg, "rpc server: out of memory");
    return OZ_ENOMEM;
}

int rpc_server_add_service(struct rpc_server *srv,
                           const ProtobufCServiceDescriptor *service,
                           const rpc_handler_fn *handlers,
                           void *data,
                           char *errmsg)
{
    struct method *grown;

    if (srv->started) {
        oz_errmsg_printf(errmsg, "cannot add service '%s': server started",
                         service->name);
        return OZ_EINVAL;
    }
    for (unsigned i = 0; i < service->n_methods; i++) {
        const ProtobufCMethodDescriptor *md = &service->methods[i];
        if (rpc__header_field(md->input) == NULL ||
            rpc__header_field(md->output) == NULL) {
            oz_errmsg_printf(errmsg,
                             "cannot add service '%s': method %s: %s has no "
                             "ozone.VersionHeader as field 1",
                             service->name, md->name,
                             rpc__header_field(md->input) == NULL
                                 ? md->input->name
                                 : md->output->name);
            return OZ_EINVAL;
        }
    }
    for (size_t i = 0; i < srv->n_methods; i++) {
        if (srv->methods[i].service == service ||
            strcmp(srv->methods[i].service->name, service->name) == 0) {
            oz_errmsg_printf(errmsg,
                             "cannot add service '%s': already registered",
                             service->name);
            return OZ_EINVAL;
        }
    }
    grown = realloc(srv->methods,
                    (srv->n_methods + service->n_methods) * sizeof(*grown));
    if (grown == NULL && srv->n_methods + service->n_methods > 0) {
        oz_errmsg_printf(errmsg, "cannot add service '%s': out of memory",
                         service->name);
        return OZ_ENOMEM;
    }
    srv->methods = grown;
    for (unsigned i = 0; i < service->n_methods; i++) {
        const ProtobufCMethodDescriptor *md = &service->methods[i];
        struct method *m = &srv->methods[srv->n_methods];
        size_t len = strlen(service->name) + strlen(md->name) + 3;

        memset(m, 0, sizeof(*m));
        m->path = malloc(len);
        if (m->path == NULL) {
            oz_errmsg_printf(errmsg, "cannot add service '%s': out of memory",
                             service->name);
            return OZ_ENOMEM;
        }
        snprintf(m->path, len, "/%s/%s", service->name, md->name);
        m->service = service;
        m->desc = md;
        m->handler = handlers != NULL ? handlers[i] : NULL;
        m->data = data;
        m->resp_hdr = rpc__header_field(md->output);
        char labels[256];
        snprintf(labels, sizeof(labels), "service=\"%s\",method=\"%s\"",
                 service->name, md->name);
        m->requests =
            metrics_get("ozone_rpc_requests_total", labels, METRIC_COUNTER,
                        "RPC requests answered, by method");
        m->errors =
            metrics_get("ozone_rpc_errors_total", labels, METRIC_COUNTER,
                        "RPC requests answered with an error");
        m->server_errors = metrics_get(
            "ozone_rpc_server_errors_total", labels, METRIC_COUNTER,
            "RPC requests that failed by the server's fault (internal "
            "error, unavailable, timeout, I/O), not the request's");
        m->latency =
            metrics_get("ozone_rpc_latency_seconds", labels, METRIC_HISTOGRAM,
                        "time from arrival to answer of an RPC");
        srv->n_methods++;
    }
    return 0;
}

/* Shuts down a grpc server whose queue has no thread polling it. */
static void shutdown_unpolled(struct rpc_server *srv)
{
    grpc_event ev;

    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
    do {
        ev = grpc_completion_queue_next(
            srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    } while (ev.type != GRPC_OP_COMPLETE || ev.tag != &srv->shutdown_tag);
    grpc_server_destroy(srv->server);
    srv->server = NULL;
    grpc_completion_queue_shutdown(srv->cq);
    do {
        ev = grpc_completion_queue_next(
            srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    } while (ev.type != GRPC_QUEUE_SHUTDOWN);
    grpc_completion_queue_destroy(srv->cq);
    srv->cq = NULL;
}

static int bind_all(struct rpc_server *srv, char *errmsg)
{
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int rc = 0;

    for (size_t i = 0; i < srv->n_addrs && rc == 0; i++) {
        size_t j;

        for (j = 0; j < i; j++) {
            if (strcmp(srv->addrs[i], srv->addrs[j]) == 0) {
                break;
            }
        }
        if (j < i) {
            srv->ports[i] = srv->ports[j]; /* identical entry: bound once */
            continue;
        }
        srv->ports[i] =
            grpc_server_add_http2_port(srv->server, srv->addrs[i], creds);
        if (srv->ports[i] == 0) {
            oz_errmsg_printf(errmsg,
                             "cannot bind '%s': address in use or invalid",
                             srv->addrs[i]);
            rc = OZ_EIO;
        }
    }
    grpc_server_credentials_release(creds);
    return rc;
}

int rpc_server_start(struct rpc_server *srv, char *errmsg)
{
    grpc_arg arg[2];
    grpc_channel_args args;
    size_t k = 0;
    int rc;

    if (srv->started) {
        oz_errmsg_printf(errmsg, "rpc server already started");
        return OZ_EINVAL;
    }
    memset(arg, 0, sizeof(arg));
    arg[0].type = GRPC_ARG_INTEGER;
    arg[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    arg[0].value.integer = (int)srv->max_message;
    /* gRPC sets SO_REUSEPORT by default: a second daemon on a port in use
     * would then start and share the port instead of failing. */
    arg[1].type = GRPC_ARG_INTEGER;
    arg[1].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    arg[1].value.integer = 0;
    args.num_args = 2;
    args.args = arg;
    srv->server = grpc_server_create(&args, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    for (size_t i = 0; i < srv->n_methods; i++) {
        srv->methods[i].handle = grpc_server_register_method(
            srv->server, srv->methods[i].path, NULL,
            GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (srv->methods[i].handle == NULL) {
            oz_errmsg_printf(errmsg, "cannot register method '%s'",
                             srv->methods[i].path);
            rc = OZ_EINVAL;
            goto err_after_create;
        }
    }
    rc = bind_all(srv, errmsg);
    if (rc != 0) {
        goto err_after_create;
    }
    srv->n_slots = srv->n_methods * srv->n_threads + 1;
    srv->slots = calloc(srv->n_slots, sizeof(*srv->slots));
    srv->threads = calloc(srv->n_threads, sizeof(*srv->threads));
    if (srv->slots == NULL || srv->threads == NULL) {
        oz_errmsg_printf(errmsg, "rpc server: out of memory");
        rc = OZ_ENOMEM;
        goto err_after_create;
    }
    grpc_server_start(srv->server);
    srv->started = true;
    for (unsigned t = 0; t < srv->n_threads; t++) {
        if (pthread_create(&srv->threads[t], NULL, cq_thread, srv) != 0) {
            /* Fewer threads still serve; at least one is required. */
            if (t == 0) {
                oz_errmsg_printf(errmsg, "rpc server: cannot start threads");
                shutdown_unpolled(srv);
                srv->started = false;
                return OZ_ENOMEM;
            }
            log_warn("rpc server: started %u of %u threads", t, srv->n_threads);
            break;
        }
        srv->n_running++;
    }
    for (size_t i = 0; i < srv->n_methods; i++) {
        for (unsigned t = 0; t < srv->n_threads; t++) {
            struct slot *s = &srv->slots[k++];
            s->tag.kind = TAG_SLOT;
            s->srv = srv;
            s->method = i;
            slot_arm(s);
        }
    }
    srv->slots[k].tag.kind = TAG_SLOT;
    srv->slots[k].srv = srv;
    srv->slots[k].method = SIZE_MAX;
    slot_arm(&srv->slots[k]);
    return 0;

err_after_create:
    /* Bound listeners are only released by a shutdown, which needs a
     * started server. */
    grpc_server_start(srv->server);
    shutdown_unpolled(srv);
    return rc;
}

int rpc_server_port(const struct rpc_server *srv, size_t i)
{
    if (srv == NULL || i >= srv->n_addrs) {
        return 0;
    }
    return srv->ports[i];
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits until the shutdown tag arrived and no call is live, or until
 * ms passed (ms < 0: no limit). Returns true when drained. mu held. */
static bool wait_drained(struct rpc_server *srv, int ms)
{
    struct timespec ts;

    deadline_after(&ts, ms < 0 ? 0 : ms);
    while (!srv->shutdown_done || srv->live != 0) {
        if (ms < 0) {
            pthread_cond_wait(&srv->cond, &srv->mu);
        } else if (pthread_cond_timedwait(&srv->cond, &srv->mu, &ts) ==
                   ETIMEDOUT) {
            return srv->shutdown_done && srv->live == 0;
        }
    }
    return true;
}

/* Waits up to ms for *counter to reach zero; returns the ms waited, or
 * -1 when it did not. Polls: the counters are decremented without
 * signalling. */
static int wait_zero(atomic_size_t *counter, int ms)
{
    struct timespec step = {0, 5 * 1000000L};
    int waited = 0;

    for (; atomic_load(counter) != 0; waited += 5) {
        if (waited >= ms) {
            return -1;
        }
        nanosleep(&step, NULL);
    }
    return waited;
}

static void stop_serving(struct rpc_server *srv, int grace_ms)
{
    int grace = grace_ms < 0 ? 0 : grace_ms;

    /* Phase 1: refuse new calls, keep the slots armed so that arriving
     * calls are matched and answered, and let the admitted ones finish.
     * Shutting gRPC down at once would drop the calls it holds unmatched
     * (every slot of their method busy) with CANCELLED, which a client
     * cannot tell from a failure of its request (DESIGN.md §2: a rolling
     * restart fails no client request). */
    atomic_store(&srv->refusing, true);
    int waited = wait_zero(&srv->admitted, grace);
    if (waited < 0) {
        waited = grace;
    }
    /* Phase 2: stop gRPC. The shutdown tag also waits for idle client
     * connections to go away, which a connected peer may never do: once
     * the calls in flight have finished (or the grace is over), cancel
     * what is left so that a drained server stops at once instead of
     * after the whole grace. */
    atomic_store(&srv->stopping, true);
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
    if (wait_zero(&srv->calls, grace - waited) < 0) {
        log_warn(
            "rpc server: %zu calls still in flight after %d ms, "
            "cancelling them",
            atomic_load(&srv->calls), grace_ms);
    }
    pthread_mutex_lock(&srv->mu);
    if (!wait_drained(srv, 0)) {
        pthread_mutex_unlock(&srv->mu);
        grpc_server_cancel_all_calls(srv->server);
        pthread_mutex_lock(&srv->mu);
        /* A PENDING call is freed only by rpc_call_complete(); its owner
         * must still complete it (the send then fails quietly). Freeing
         * the queue before that would crash the late completion. */
        while (!wait_drained(srv, SHUTDOWN_NAG_MS)) {
            log_warn(
                "rpc server: waiting for %zu calls kept pending by "
                "their handlers",
                atomic_load(&srv->calls));
        }
    }
    pthread_mutex_unlock(&srv->mu);
    grpc_completion_queue_shutdown(srv->cq);
    for (unsigned t = 0; t < srv->n_running; t++) {
        pthread_join(srv->threads[t], NULL);
    }
    grpc_server_destroy(srv->server);
    srv->server = NULL;
    grpc_completion_queue_destroy(srv->cq);
    srv->cq = NULL;
}

void rpc_server_free(struct rpc_server *srv, int grace_ms)
{
    if (srv == NULL) {
        return;
    }
    if (srv->started) {
        stop_serving(srv, grace_ms);
    }
    for (size_t i = 0; i < srv->n_methods; i++) {
        free(srv->methods[i].path);
    }
    free(srv->methods);
    free(srv->slots);
    free(srv->threads);
    for (size_t i = 0; i < srv->n_addrs; i++) {
        free(srv->addrs[i]);
    }
    free(srv->addrs);
    free(srv->ports);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
    rpc_library_shutdown();
}

/* ---- inside a handler ---- */

const Ozone__VersionHeader *rpc_call_peer(const struct rpc_call *call)
{
    return call->peer;
}

const char *rpc_call_method(const struct rpc_call *call)
{
    return call->path;
}

const char *rpc_call_peer_address(const struct rpc_call *call)
{
    /* Computed once, on demand; a call is used by one thread at a time. */
    struct rpc_call *c = (struct rpc_call *)call;

    if (c->peer_address == NULL) {
        char *p = grpc_call_get_peer(c->call);
        c->peer_address = rpc_call_strdup(c, p != NULL ? p : "unknown");
        gpr_free(p);
    }
    return c->peer_address;
}

void *rpc_call_alloc(struct rpc_call *call, size_t size)
{
    return rpc__arena_zalloc(&call->arena, size);
}

char *rpc_call_strdup(struct rpc_call *call, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = rpc__arena_alloc(&call->arena, n);

    memcpy(d, s, n);
    return d;
}

char *rpc_call_printf(struct rpc_call *call, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return rpc_call_strdup(call, "");
    }
    s = rpc__arena_alloc(&call->arena, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void rpc_call_set_error(struct rpc_call *call,
                        enum rpc_status status,
                        Ozone__ResultCode code,
                        const char *leader_hint,
                        const char *fmt,
                        ...)
{
    va_list ap;

    call->failed = true;
    /* An error with status OK would reach the client as a success
     * without a message. */
    call->err.status = status != RPC_STATUS_OK ? status : RPC_STATUS_UNKNOWN;
    call->err.code = code;
    va_start(ap, fmt);
    vsnprintf(call->err.message, sizeof(call->err.message), fmt, ap);
    va_end(ap);
    oz_strlcpy(call->leader_hint, leader_hint != NULL ? leader_hint : "",
               sizeof(call->leader_hint));
}

ProtobufCMessage *rpc_call_response(struct rpc_call *call)
{
    return call->resp;
}

void rpc_call_complete(struct rpc_call *call)
{
    call_send(call);
}
