/* http: adapter around libmicrohttpd, the only file that calls MHD_*
 * (CONVENTIONS.md "Layout"; DESIGN.md §4).
 *
 * Threading: MHD runs an internal listening thread and one thread per
 * connection (bounded by HTTP_MAX_CONNECTIONS), so a handler that is slow,
 * e.g. Recon asking other daemons or OM streaming a checkpoint, never holds
 * up /prom or /healthz. The route table is written before start and only
 * read afterwards, so it needs no lock.
 *
 * Request flow (PITFALLS.md): MHD calls access_handler at least twice per
 * request: first with no body to let us allocate per-request state, then
 * once per body chunk, then with *upload_data_size == 0 to respond. The
 * state is freed in request_completed (MHD_OPTION_NOTIFY_COMPLETED), which
 * MHD calls on every path, including aborted connections. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define HTTP_MAX_BODY (1024 * 1024) /* request bodies; larger get 413 */
#define HTTP_MAX_CONNECTIONS 128
#define HTTP_IDLE_TIMEOUT_S 60

struct route
{
    char *method; /* NULL matches any */
    char *path;   /* without the trailing '*' of a prefix route */
    size_t path_len;
    bool prefix;
    http_handler_fn fn;
    void *data;
};

struct http_server
{
    struct MHD_Daemon *daemon;
    char addr_text[128]; /* as given, for messages */
    struct sockaddr_in addr;
    int port; /* bound port once started */
    struct route *routes;
    size_t nroutes;
};

/* Per-request state, owned by MHD's *con_cls between calls. */
struct req_state
{
    char *body; /* NUL-terminated; NULL until the first byte arrives */
    size_t len;
    size_t cap;
    bool too_big;
};

static void set_errmsg(char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_errmsg(char *errmsg, const char *fmt, ...)
{
    va_list ap;

    if (errmsg == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg, OZ_ERRMSG_SIZE, fmt, ap);
    va_end(ap);
}

/* ---- address parsing ---- */

static int resolve_host(const char *host, struct in_addr *out)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;

    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        out->s_addr = htonl(INADDR_ANY);
        return 0;
    }
    if (inet_pton(AF_INET, host, out) == 1) {
        return 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        return OZ_EINVAL;
    }
    *out = ((const struct sockaddr_in *)(void *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

static int parse_bind_addr(const char *text,
                           struct sockaddr_in *addr,
                           char *errmsg)
{
    char host[128];
    const char *colon = strrchr(text, ':');
    char *end = NULL;
    long port;
    size_t host_len;

    if (colon == NULL) {
        set_errmsg(errmsg, "invalid HTTP address '%s': expected host:port",
                   text);
        return OZ_EINVAL;
    }
    host_len = (size_t)(colon - text);
    if (host_len >= sizeof(host)) {
        set_errmsg(errmsg, "invalid HTTP address '%s': host name too long",
                   text);
        return OZ_EINVAL;
    }
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0 ||
        port > 65535) {
        set_errmsg(errmsg, "invalid HTTP address '%s': port must be 0 to 65535",
                   text);
        return OZ_EINVAL;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    if (resolve_host(host, &addr->sin_addr) != 0) {
        set_errmsg(errmsg, "invalid HTTP address '%s': cannot resolve '%s'",
                   text, host);
        return OZ_EINVAL;
    }
    return 0;
}

/* ---- server lifecycle ---- */

int http_server_new(struct http_server **out,
                    const char *bind_addr,
                    char *errmsg)
{
    struct http_server *s;
    int rc;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        set_errmsg(errmsg, "cannot create HTTP server: out of memory");
        return OZ_ENOMEM;
    }
    rc = parse_bind_addr(bind_addr, &s->addr, errmsg);
    if (rc != 0) {
        free(s);
        return rc;
    }
    oz_strlcpy(s->addr_text, bind_addr, sizeof(s->addr_text));
    s->port = ntohs(s->addr.sin_port);
    *out = s;
    return 0;
}

int http_server_route(struct http_server *s,
                      const char *method,
                      const char *path,
                      http_handler_fn fn,
                      void *data)
{
    struct route *r;
    struct route *nr;
    size_t len = strlen(path);

    if (s->daemon != NULL) {
        return OZ_ESTATE;
    }
    nr = realloc(s->routes, (s->nroutes + 1) * sizeof(*nr));
    if (nr == NULL) {
        return OZ_ENOMEM;
    }
    s->routes = nr;
    r = &s->routes[s->nroutes];
    memset(r, 0, sizeof(*r));
    r->prefix = len > 0 && path[len - 1] == '*';
    r->path_len = r->prefix ? len - 1 : len;
    r->path = strndup(path, r->path_len);
    r->method = method != NULL ? strdup(method) : NULL;
    if (r->path == NULL || (method != NULL && r->method == NULL)) {
        free(r->path);
        free(r->method);
        return OZ_ENOMEM;
    }
    r->fn = fn;
    r->data = data;
    s->nroutes++;
    return 0;
}

/* ---- routing ---- */

enum match { MATCH_NONE, MATCH_PATH_ONLY, MATCH_OK };

/* Exact routes beat prefix routes, longer prefixes beat shorter ones.
 * MATCH_PATH_ONLY means some route has the path but not the method. */
static enum match find_route(const struct http_server *s,
                             const char *method,
                             const char *path,
                             const struct route **out)
{
    size_t path_len = strlen(path);
    size_t best_score = 0;
    bool path_seen = false;

    *out = NULL;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        size_t score;

        if (r->prefix) {
            if (path_len < r->path_len ||
                memcmp(path, r->path, r->path_len) != 0) {
                continue;
            }
            score = r->path_len + 1;
        } else {
            if (strcmp(path, r->path) != 0) {
                continue;
            }
            score = SIZE_MAX;
        }
        path_seen = true;
        if (r->method != NULL && strcmp(r->method, method) != 0) {
            continue;
        }
        if (*out == NULL || score > best_score) {
            *out = r;
            best_score = score;
        }
    }
    if (*out != NULL) {
        return MATCH_OK;
    }
    return path_seen ? MATCH_PATH_ONLY : MATCH_NONE;
}

/* ---- responses ---- */

void http_response_printf(struct http_response *resp,
                          int status,
                          const char *content_type,
                          const char *fmt,
                          ...)
{
    va_list ap;
    char *body = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&body, fmt, ap);
    va_end(ap);
    if (n < 0) {
        /* Out of memory: an empty 500 is all we can still say. */
        http_response_take(resp, 500, content_type, NULL, 0);
        return;
    }
    http_response_take(resp, status, content_type, body, (size_t)n);
}

void http_response_take(struct http_response *resp,
                        int status,
                        const char *content_type,
                        char *body,
                        size_t len)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = content_type;
    resp->body = body;
    resp->body_len = body != NULL ? len : 0;
}

static enum MHD_Result queue_text(struct MHD_Connection *conn,
                                  unsigned int status,
                                  const char *allow,
                                  const char *fmt,
                                  ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result queue_text(struct MHD_Connection *conn,
                                  unsigned int status,
                                  const char *allow,
                                  const char *fmt,
                                  ...)
{
    char text[512];
    struct MHD_Response *r;
    enum MHD_Result ret;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    r = MHD_create_response_from_buffer(strlen(text), text,
                                        MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    if (allow != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A file response cut after `cut` bytes (http_response.cut_after). */
struct cut_file
{
    int fd;
    uint64_t cut;
};

static ssize_t cut_file_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct cut_file *f = cls;
    ssize_t n;

    if (pos >= f->cut) {
        return MHD_CONTENT_READER_END_WITH_ERROR; /* closes the connection */
    }
    if (max > f->cut - pos) {
        max = (size_t)(f->cut - pos);
    }
    n = pread(f->fd, buf, max, (off_t)pos);
    return n > 0 ? n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void cut_file_free(void *cls)
{
    struct cut_file *f = cls;

    close(f->fd);
    free(f);
}

static struct MHD_Response *cut_response(int fd, uint64_t size, uint64_t cut)
{
    struct cut_file *f = malloc(sizeof(*f));
    struct MHD_Response *r;

    if (f == NULL) {
        close(fd);
        return NULL;
    }
    f->fd = fd;
    f->cut = cut;
    r = MHD_create_response_from_callback(size, 64 * 1024, cut_file_read, f,
                                          cut_file_free);
    if (r == NULL) {
        cut_file_free(f);
    }
    return r;
}

/* Streams resp->file_path; 404 when it cannot be opened. */
static enum MHD_Result queue_file(struct MHD_Connection *conn,
                                  const struct http_response *resp,
                                  unsigned int status)
{
    struct MHD_Response *r;
    struct stat st;
    enum MHD_Result ret;
    int fd;

    fd = open(resp->file_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        char ebuf[128];
        return queue_text(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "file not found: %s\n",
                          strerror_r(errno, ebuf, sizeof(ebuf)));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return queue_text(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "file not found: not a regular file\n");
    }
    if (resp->cut_after > 0 && resp->cut_after < (uint64_t)st.st_size) {
        r = cut_response(fd, (uint64_t)st.st_size, resp->cut_after);
        if (r == NULL) {
            return MHD_NO;
        }
    } else {
        /* MHD closes fd when the response is destroyed. */
        r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
        if (r == NULL) {
            close(fd);
            return MHD_NO;
        }
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type != NULL
                                ? resp->content_type
                                : "application/octet-stream");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Queues resp and releases what it owns. */
static enum MHD_Result queue_handler_response(struct MHD_Connection *conn,
                                              struct http_response *resp)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    unsigned int status = 200;

    if (resp->status >= 100 && resp->status <= 999) {
        status = (unsigned int)resp->status;
    } else if (resp->status != 0) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (resp->body == NULL && resp->file_path != NULL) {
        ret = queue_file(conn, resp, status);
        free(resp->file_path);
        resp->file_path = NULL;
        return ret;
    }
    free(resp->file_path);
    resp->file_path = NULL;

    if (resp->body != NULL && resp->body_len > 0) {
        r = MHD_create_response_from_buffer(resp->body_len, resp->body,
                                            MHD_RESPMEM_MUST_FREE);
        if (r == NULL) {
            free(resp->body);
        }
    } else {
        free(resp->body);
        r = MHD_create_response_from_buffer(0, (void *)"",
                                            MHD_RESPMEM_PERSISTENT);
    }
    resp->body = NULL;
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(
        r, MHD_HTTP_HEADER_CONTENT_TYPE,
        resp->content_type != NULL ? resp->content_type : "text/plain");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- MHD callbacks ---- */

/* Appends a body chunk, up to HTTP_MAX_BODY; beyond it, drops the data
 * and remembers to answer 413. */
static void append_body(struct req_state *st, const char *data, size_t n)
{
    size_t need;
    char *nb;

    if (st->too_big) {
        return;
    }
    if (n > HTTP_MAX_BODY - st->len) {
        st->too_big = true;
        free(st->body);
        st->body = NULL;
        st->len = 0;
        st->cap = 0;
        return;
    }
    need = st->len + n + 1;
    if (need > st->cap) {
        size_t ncap = st->cap != 0 ? st->cap : 4096;
        while (ncap < need) {
            ncap *= 2;
        }
        if (ncap > HTTP_MAX_BODY + 1) {
            ncap = HTTP_MAX_BODY + 1;
        }
        nb = realloc(st->body, ncap);
        if (nb == NULL) {
            st->too_big = true; /* answered 413; rare enough */
            free(st->body);
            st->body = NULL;
            st->len = 0;
            st->cap = 0;
            return;
        }
        st->body = nb;
        st->cap = ncap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = '\0';
}

/* Comma-separated methods of the routes for path (405's Allow header). */
static void allowed_methods(const struct http_server *s,
                            const char *path,
                            char *buf,
                            size_t size)
{
    size_t path_len = strlen(path);
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        bool hit = r->prefix ? path_len >= r->path_len &&
                                   memcmp(path, r->path, r->path_len) == 0
                             : strcmp(path, r->path) == 0;
        if (!hit || r->method == NULL || strstr(buf, r->method) != NULL) {
            continue;
        }
        int n = snprintf(buf + used, size - used, "%s%s", used > 0 ? ", " : "",
                         r->method);
        if (n < 0 || (size_t)n >= size - used) {
            break;
        }
        used += (size_t)n;
    }
}

static bool content_length_too_big(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end = NULL;
    unsigned long long n;

    if (cl == NULL) {
        return false;
    }
    errno = 0;
    n = strtoull(cl, &end, 10);
    return errno == 0 && end != cl && n > HTTP_MAX_BODY;
}

static enum MHD_Result access_handler(void *cls,
                                      struct MHD_Connection *conn,
                                      const char *url,
                                      const char *method,
                                      const char *version,
                                      const char *upload_data,
                                      size_t *upload_data_size,
                                      void **con_cls)
{
    struct http_server *s = cls;
    struct req_state *st = *con_cls;
    const struct route *route = NULL;
    struct http_request req;
    struct http_response resp;
    char allow[128];

    if (st == NULL) {
        st = calloc(1, sizeof(*st));
        if (st == NULL) {
            return MHD_NO; /* MHD closes the connection */
        }
        *con_cls = st;
        /* Refuse a declared oversized body before reading it. */
        if (content_length_too_big(conn)) {
            st->too_big = true;
            return queue_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                              "request body larger than %d bytes\n",
                              HTTP_MAX_BODY);
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        append_body(st, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->too_big) {
        return queue_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                          "request body larger than %d bytes\n", HTTP_MAX_BODY);
    }

    switch (find_route(s, method, url, &route)) {
        case MATCH_NONE:
            return queue_text(conn, MHD_HTTP_NOT_FOUND, NULL,
                              "no route for %s %s\n", method, url);
        case MATCH_PATH_ONLY:
            allowed_methods(s, url, allow, sizeof(allow));
            return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, allow,
                              "method %s not allowed for %s\n", method, url);
        case MATCH_OK:
            break;
    }

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = url;
    req.body = st->body;
    req.body_len = st->len;
    req.conn = conn;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    route->fn(route->data, &req, &resp);
    return queue_handler_response(conn, &resp);
}

static void request_completed(void *cls,
                              struct MHD_Connection *conn,
                              void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    struct req_state *st = *con_cls;

    if (st != NULL) {
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    log_warn("http: %s", line);
}

const char *http_request_arg(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* MHD does not report why a bind failed; bind a probe socket the way MHD
 * does (SO_REUSEADDR) to name the cause. */
static int probe_bind_errno(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    int err = 0;

    if (fd < 0) {
        return errno;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0) {
        err = errno;
    }
    close(fd);
    return err;
}

int http_server_start(struct http_server *s, char *errmsg)
{
    const union MHD_DaemonInfo *info;
    char ebuf[128];
    int saved_errno;
    int err;

    if (s->daemon != NULL) {
        set_errmsg(errmsg, "HTTP server on '%s' already started", s->addr_text);
        return OZ_ESTATE;
    }
    errno = 0;
    /* The logger must be the first option, or MHD logs early messages to
     * stderr itself. */
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
            MHD_USE_POLL | MHD_USE_ERROR_LOG,
        0, NULL, NULL, access_handler, s, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_logger, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&s->addr,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)HTTP_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTP_IDLE_TIMEOUT_S,
        MHD_OPTION_END);
    saved_errno = errno;
    if (s->daemon == NULL) {
        err = probe_bind_errno(&s->addr);
        if (err == 0) {
            err = saved_errno;
        }
        set_errmsg(errmsg, "cannot bind HTTP server to '%s': %s", s->addr_text,
                   err != 0 ? strerror_r(err, ebuf, sizeof(ebuf))
                            : "libmicrohttpd failed to start");
        return OZ_EIO;
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info != NULL && info->port != 0) {
        s->port = info->port;
    }
    return 0;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_free(struct http_server *s)
{
    if (s == NULL) {
        return;
    }
    if (s->daemon != NULL) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
    }
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].path);
        free(s->routes[i].method);
    }
    free(s->routes);
    free(s);
}
