/* rpc: the only module that calls grpc_* (CONVENTIONS.md adapters;
 * DESIGN.md §4, §5; PITFALLS.md "gRPC C core").
 *
 * Unary gRPC over HTTP/2, plaintext, messages in protobuf-c. Services are
 * registered from protoc-c service descriptors, so method paths are the
 * standard "/<package>.<Service>/<Method>" and any gRPC client can call them.
 *
 * Version header (DESIGN.md §5): field 1 of every request and response
 * message is an ozone.VersionHeader. The server checks it on every incoming
 * request (missing -> INVALID_ARGUMENT "missing version header") and stamps
 * its own on every response; the client stamps its own on every request and
 * checks the one in every response. Handlers see the peer's header.
 *
 * Errors: a handler reports a failure with rpc_call_set_error(); the server
 * sends the gRPC status, the message, and an ozone.OzoneError serialised in
 * the trailing metadata entry "ozone-error-bin". The client returns all of
 * it in struct rpc_error.
 */
#ifndef OZONE_RPC_H
#define OZONE_RPC_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "common.pb-c.h"

/* gRPC status codes (same numbers as grpc_status_code), so that callers
 * outside this module need not include grpc headers. */
enum rpc_status {
    RPC_STATUS_OK = 0,
    RPC_STATUS_CANCELLED = 1,
    RPC_STATUS_UNKNOWN = 2,
    RPC_STATUS_INVALID_ARGUMENT = 3,
    RPC_STATUS_DEADLINE_EXCEEDED = 4,
    RPC_STATUS_NOT_FOUND = 5,
    RPC_STATUS_ALREADY_EXISTS = 6,
    RPC_STATUS_PERMISSION_DENIED = 7,
    RPC_STATUS_RESOURCE_EXHAUSTED = 8,
    RPC_STATUS_FAILED_PRECONDITION = 9,
    RPC_STATUS_ABORTED = 10,
    RPC_STATUS_OUT_OF_RANGE = 11,
    RPC_STATUS_UNIMPLEMENTED = 12,
    RPC_STATUS_INTERNAL = 13,
    RPC_STATUS_UNAVAILABLE = 14,
    RPC_STATUS_DATA_LOSS = 15,
    RPC_STATUS_UNAUTHENTICATED = 16,
};

/* Who this process is; stamped on every outgoing message. The strings are
 * borrowed and must outlive every server and client using the identity.
 * software/apparent are read at each send through versions() when it is
 * set (so a finalization is visible at once), else from the fields. */
struct rpc_identity
{
    Ozone__Component component;
    const char *node_id;
    const char *cluster_id;
    unsigned software_version;
    unsigned apparent_version;
    void (*versions)(void *ctx, unsigned *software, unsigned *apparent);
    void *versions_ctx;
};

/* Fills hdr (caller-owned storage) from id. hdr's strings point into id. */
void rpc_identity_fill(const struct rpc_identity *id,
                       Ozone__VersionHeader *hdr);

/* Name of a component ("OM", "SCM", "DATANODE", "RECON", "CLIENT"). */
const char *rpc_component_name(Ozone__Component c);

/* ---- server ---- */

struct rpc_server;
struct rpc_call; /* one in-flight server call; opaque */

/* A handler returns RPC_HANDLER_DONE (send resp or the error set with
 * rpc_call_set_error), or RPC_HANDLER_PENDING when it keeps the call and
 * will finish it later from any thread with rpc_call_complete().
 *
 * req: the unpacked request, borrowed for the call's life.
 * resp: an initialised message of the method's output type, owned by the
 *   call; the handler fills it. Anything the handler hangs off resp
 *   (strings, sub-messages, repeated arrays, bytes) must come from
 *   rpc_call_alloc()/rpc_call_strdup() (freed with the call), or from
 *   storage that outlives the call. The rpc layer sets resp's field 1. */
enum rpc_handler_result { RPC_HANDLER_DONE = 0, RPC_HANDLER_PENDING = 1 };
typedef enum rpc_handler_result (*rpc_handler_fn)(void *service_data,
                                                  struct rpc_call *call,
                                                  const ProtobufCMessage *req,
                                                  ProtobufCMessage *resp);

struct rpc_server_config
{
    /* Addresses to bind ("127.0.0.1:9862", "0.0.0.0:0" picks a free port).
     * Identical entries are bound once. At least one. */
    const char *const *listen_addrs;
    size_t n_listen_addrs;
    unsigned n_threads;                  /* completion-queue threads; 0 -> 4 */
    size_t max_message_bytes;            /* receive cap; 0 -> 32 MiB */
    const struct rpc_identity *identity; /* borrowed, outlives server */
};

/* Creates a server (not started). 0, or OZ_EINVAL / OZ_ENOMEM with errmsg. */
int rpc_server_new(struct rpc_server **out,
                   const struct rpc_server_config *cfg,
                   char *errmsg);

/* Registers a service. handlers[i] serves service->methods[i]; a NULL
 * entry answers UNIMPLEMENTED. Every input and output message of the
 * service must have an ozone.VersionHeader as field 1, else OZ_EINVAL.
 * Must be called before rpc_server_start(). data is passed to handlers. */
int rpc_server_add_service(struct rpc_server *srv,
                           const ProtobufCServiceDescriptor *service,
                           const rpc_handler_fn *handlers,
                           void *data,
                           char *errmsg);

/* Binds and starts serving. OZ_EIO with errmsg when an address cannot be
 * bound ("cannot bind '127.0.0.1:9862': address in use or invalid"). */
int rpc_server_start(struct rpc_server *srv, char *errmsg);

/* Port bound for listen_addrs[i] (after start); 0 if none. */
int rpc_server_port(const struct rpc_server *srv, size_t i);

/* Graceful stop: refuses new calls, waits up to grace_ms for in-flight
 * calls (including PENDING ones) to finish, cancels the rest, joins the
 * threads and frees everything. srv may be NULL. */
void rpc_server_free(struct rpc_server *srv, int grace_ms);

/* ---- inside a handler ---- */

/* The peer's header; never NULL inside a handler (the rpc layer rejects
 * requests without it). Borrowed for the call's life. */
const Ozone__VersionHeader *rpc_call_peer(const struct rpc_call *call);
/* Full method path, e.g. "/ozone.VersionService/GetVersion". */
const char *rpc_call_method(const struct rpc_call *call);
/* Peer address as gRPC reports it ("ipv4:127.0.0.1:5555"). */
const char *rpc_call_peer_address(const struct rpc_call *call);

/* Zeroed memory freed with the call. Never NULL (aborts on OOM). */
void *rpc_call_alloc(struct rpc_call *call, size_t size);
char *rpc_call_strdup(struct rpc_call *call, const char *s);
char *rpc_call_printf(struct rpc_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Marks the call failed: status is the gRPC status, code the Ozone result
 * code, message in our grammar. leader_hint may be NULL. */
void rpc_call_set_error(struct rpc_call *call,
                        enum rpc_status status,
                        Ozone__ResultCode code,
                        const char *leader_hint,
                        const char *fmt,
                        ...) __attribute__((format(printf, 5, 6)));

/* The response message of a PENDING call (to fill before completing). */
ProtobufCMessage *rpc_call_response(struct rpc_call *call);

/* Finishes a call whose handler returned RPC_HANDLER_PENDING. Any thread.
 * The call is freed; do not touch it afterwards. */
void rpc_call_complete(struct rpc_call *call);

/* ---- client ---- */

struct rpc_client;

struct rpc_client_config
{
    /* Addresses of the nodes of one service ("host:port"); copied. The
     * client tries them in order, moving on when one is UNAVAILABLE or
     * answers NOT_LEADER (its leader_hint, when it names a known or new
     * address, is tried next). */
    const char *const *addrs;
    size_t n_addrs;
    const struct rpc_identity *identity; /* borrowed, outlives client */
    int deadline_ms;                     /* per attempt; 0 -> 10000 */
    int max_attempts; /* total attempts per call; 0 -> 2 * n_addrs + 3 */
    int backoff_ms;   /* first backoff, doubles, capped; 0 -> 50 */
    size_t max_message_bytes; /* receive cap; 0 -> 32 MiB */
    /* When true, a call waits for a connection (GRPC wait-for-ready)
     * instead of failing at once on a closed port. */
    bool wait_for_ready;
};

struct rpc_error
{
    enum rpc_status status; /* RPC_STATUS_OK when the call succeeded */
    Ozone__ResultCode code; /* OZONE__RESULT_CODE__OK when none */
    char message[512];
    char leader_hint[256];
    char address[256]; /* the node that answered last */
};

int rpc_client_new(struct rpc_client **out,
                   const struct rpc_client_config *cfg,
                   char *errmsg);
void rpc_client_free(struct rpc_client *c);

/* Calls service/method (method name as in the .proto, "GetVersion").
 * req's field 1 is set by the client for the call (and reset after).
 * On success returns 0 and *resp (caller frees with rpc_message_free()).
 * On failure returns OZ_ERPC (server answered an error), OZ_EUNAVAILABLE
 * (no node reachable), OZ_ETIMEDOUT, OZ_EINVAL (unknown method, bad
 * response: e.g. the reply had no version header), with err filled.
 * Retries only UNAVAILABLE, NOT_LEADER and a CANCELLED without an
 * OzoneError (a node that stopped under the call), with backoff.
 * Thread-safe. */
int rpc_client_call(struct rpc_client *c,
                    const ProtobufCServiceDescriptor *service,
                    const char *method,
                    ProtobufCMessage *req,
                    ProtobufCMessage **resp,
                    struct rpc_error *err);

/* The address that answered last (the known leader); borrowed. */
const char *rpc_client_current_address(const struct rpc_client *c);

void rpc_message_free(ProtobufCMessage *msg);

/* One-time process init/teardown of the gRPC library (ref-counted; the
 * server and client call it themselves). */
void rpc_library_init(void);
void rpc_library_shutdown(void);

#endif
