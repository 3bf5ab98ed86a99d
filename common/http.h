/* http: the only module that calls MHD_* (libmicrohttpd): the small HTTP
 * server of every daemon (DESIGN.md §4: /prom, /healthz, /version; OM adds
 * /dbCheckpoint, Recon /api/v1/...). Handlers run on MHD's thread pool and
 * must not block on other daemons while holding locks. */
#ifndef OZONE_HTTP_H
#define OZONE_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct http_server;

struct http_request
{
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* "/api/v1/datanodes" (no query) */
    const char *body;   /* POST body (NUL-terminated) or NULL */
    size_t body_len;
    void *conn; /* private */
};

/* Query argument ("?limit=10"), NULL when absent. Borrowed. */
const char *http_request_arg(const struct http_request *req, const char *name);

struct http_response
{
    int status;               /* 200 by default */
    const char *content_type; /* static string; "text/plain" by default */
    char *body;               /* malloc'd; taken by the server */
    size_t body_len;
    /* Alternatively a file to stream (path copied; body must be NULL). */
    char *file_path; /* malloc'd; taken by the server */
    /* Fault injection for file responses: when > 0 and below the file's
     * size, the response still declares the whole length but the
     * connection is closed after this many bytes, as a dropped connection
     * would (the client sees a transfer cut short, not a short file). */
    uint64_t cut_after;
};

/* Sets resp body to a malloc'd copy of the formatted text. */
void http_response_printf(struct http_response *resp,
                          int status,
                          const char *content_type,
                          const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));
/* Takes ownership of body (malloc'd). */
void http_response_take(struct http_response *resp,
                        int status,
                        const char *content_type,
                        char *body,
                        size_t len);

/* Returns 0; fills resp. A handler that leaves resp->body NULL and no
 * file gets an empty 200 response. */
typedef void (*http_handler_fn)(void *data,
                                const struct http_request *req,
                                struct http_response *resp);

/* bind_addr "127.0.0.1:9874" ("host:0" picks a free port). */
int http_server_new(struct http_server **out,
                    const char *bind_addr,
                    char *errmsg);
/* Routes: exact path, or a prefix when path ends with '*'
 * (e.g. "/api/v1/" followed by a star). method NULL matches any. Before start.
 */
int http_server_route(struct http_server *s,
                      const char *method,
                      const char *path,
                      http_handler_fn fn,
                      void *data);
int http_server_start(struct http_server *s, char *errmsg);
int http_server_port(const struct http_server *s);
/* Stops and frees; s may be NULL. */
void http_server_free(struct http_server *s);

#endif
