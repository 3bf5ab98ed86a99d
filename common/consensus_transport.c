/* TCP transport wrapper for raft_uv (see consensus_internal.h). raft_uv
 * keeps its own state in transport->data of the transport it was given, so
 * raft_uv gets `outer` and every callback coming from the inner raft_uv_tcp
 * is forwarded with `outer` (PITFALLS.md "canonical raft 0.15"). */
#include "consensus_internal.h"

#include <string.h>

#include <uv.h>

/* One outgoing connection attempt: raft's request plus ours to the inner
 * transport. Freed in the inner callback, which raft_uv_tcp fires exactly
 * once (with RAFT_CANCELED when the transport closes first). */
struct xconnect
{
    struct raft_uv_connect inner_req;
    struct raft_uv_connect *outer_req;
};

const char *consensus__strip_name(const char *raft_address)
{
    const char *at = strchr(raft_address, '@');

    return at != NULL ? at + 1 : raft_address;
}

static void set_nodelay(struct uv_stream_s *stream)
{
    if (stream != NULL && stream->type == UV_TCP) {
        /* Best effort: a failure only costs latency. */
        (void)uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    }
}

static int xinit(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct consensus__transport *x = t->impl;
    int rv;

    /* The inner transport keeps the full "name@host:port" address: it is
     * what the handshake announces to peers, so they learn our name. It
     * listens on the bind address set at init instead. */
    rv = x->inner.init(&x->inner, id, address);
    if (rv != 0) {
        memcpy(t->errmsg, x->inner.errmsg, sizeof(t->errmsg));
    }
    return rv;
}

static void xaccept_cb(struct raft_uv_transport *inner,
                       raft_id id,
                       const char *address,
                       struct uv_stream_s *stream)
{
    struct consensus__transport *x = inner->data;

    set_nodelay(stream);
    x->accept_cb(&x->outer, id, address, stream);
}

static int xlisten(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct consensus__transport *x = t->impl;
    int rv;

    x->accept_cb = cb;
    rv = x->inner.listen(&x->inner, xaccept_cb);
    if (rv != 0) {
        memcpy(t->errmsg, x->inner.errmsg, sizeof(t->errmsg));
    }
    return rv;
}

static void xconnect_cb(struct raft_uv_connect *inner_req,
                        struct uv_stream_s *stream,
                        int status)
{
    struct xconnect *xc = inner_req->data;
    struct raft_uv_connect *outer_req = xc->outer_req;

    raft_free(xc);
    if (status == 0) {
        set_nodelay(stream);
    }
    outer_req->cb(outer_req, stream, status);
}

static int xconnect(struct raft_uv_transport *t,
                    struct raft_uv_connect *req,
                    raft_id id,
                    const char *address,
                    raft_uv_connect_cb cb)
{
    struct consensus__transport *x = t->impl;
    struct xconnect *xc;
    int rv;

    xc = raft_malloc(sizeof(*xc));
    if (xc == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    xc->outer_req = req;
    xc->inner_req.data = xc;
    rv = x->inner.connect(&x->inner, &xc->inner_req, id,
                          consensus__strip_name(address), xconnect_cb);
    if (rv != 0) {
        memcpy(t->errmsg, x->inner.errmsg, sizeof(t->errmsg));
        raft_free(xc);
    }
    return rv;
}

static void xclose_cb(struct raft_uv_transport *inner)
{
    struct consensus__transport *x = inner->data;

    if (x->close_cb != NULL) {
        x->close_cb(&x->outer);
    }
}

static void xclose(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct consensus__transport *x = t->impl;

    x->close_cb = cb;
    x->inner.close(&x->inner, xclose_cb);
}

int consensus__transport_init(struct consensus__transport *x,
                              struct uv_loop_s *loop,
                              const char *bind_address)
{
    int rv;

    memset(x, 0, sizeof(*x));
    rv = raft_uv_tcp_init(&x->inner, loop);
    if (rv != 0) {
        memcpy(x->outer.errmsg, x->inner.errmsg, sizeof(x->outer.errmsg));
        return rv;
    }
    x->inner.data = x;
    rv = raft_uv_tcp_set_bind_address(&x->inner, bind_address);
    if (rv != 0) {
        raft_uv_tcp_close(&x->inner);
        x->inner.impl = NULL;
        return rv;
    }
    x->outer.impl = x;
    x->outer.init = xinit;
    x->outer.listen = xlisten;
    x->outer.connect = xconnect;
    x->outer.close = xclose;
    return 0;
}

void consensus__transport_release(struct consensus__transport *x)
{
    if (x->inner.impl != NULL) {
        raft_uv_tcp_close(&x->inner);
        x->inner.impl = NULL;
    }
}
