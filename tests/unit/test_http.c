/* Unit tests for common/http.c, driven over loopback with libcurl. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "http.h"
#include "http_client.h"

struct fixture
{
    struct http_server *srv;
    int port;
    char dir[64];
    char file_path[128];
};

static struct fixture *fx;

/* ---- handlers ---- */

static void h_text(void *data,
                   const struct http_request *req,
                   struct http_response *resp)
{
    http_response_printf(resp, 200, NULL, "%s", (const char *)data);
}

static void h_prefix(void *data,
                     const struct http_request *req,
                     struct http_response *resp)
{
    const char *limit = http_request_arg(req, "limit");
    http_response_printf(resp, 200, "application/json",
                         "{\"path\":\"%s\",\"limit\":\"%s\"}", req->path,
                         limit != NULL ? limit : "(none)");
}

static void h_echo(void *data,
                   const struct http_request *req,
                   struct http_response *resp)
{
    char *copy = NULL;

    if (req->body != NULL) {
        copy = malloc(req->body_len + 1);
        assert_non_null(copy);
        memcpy(copy, req->body, req->body_len + 1);
    }
    http_response_take(resp, 201, "application/octet-stream", copy,
                       req->body_len);
}

static void h_empty(void *data,
                    const struct http_request *req,
                    struct http_response *resp)
{
}

static void h_method(void *data,
                     const struct http_request *req,
                     struct http_response *resp)
{
    http_response_printf(resp, 200, NULL, "method %s", req->method);
}

static void h_status(void *data,
                     const struct http_request *req,
                     struct http_response *resp)
{
    http_response_printf(resp, 503, "application/json", "{\"ready\":false}");
}

static void h_file(void *data,
                   const struct http_request *req,
                   struct http_response *resp)
{
    resp->file_path = strdup((const char *)data);
    resp->content_type = "application/x-tar";
}

static void h_cut_file(void *data,
                       const struct http_request *req,
                       struct http_response *resp)
{
    (void)req;
    resp->file_path = strdup((const char *)data);
    resp->cut_after = 5; /* of 17 bytes */
}

/* ---- curl client ---- */

struct reply
{
    long status;
    char body[4096];
    size_t len;
    char content_type[128];
    char allow[128];
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct reply *r = userdata;
    size_t n = size * nmemb;
    size_t room = sizeof(r->body) - 1 - r->len;
    size_t take = n < room ? n : room;

    memcpy(r->body + r->len, ptr, take);
    r->len += take;
    r->body[r->len] = '\0';
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct reply *r = userdata;
    size_t n = size * nmemb;
    char line[256];
    size_t l = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

    memcpy(line, ptr, l);
    line[l] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncasecmp(line, "Allow: ", 7) == 0) {
        snprintf(r->allow, sizeof(r->allow), "%s", line + 7);
    }
    return n;
}

struct chunked_src
{
    size_t left;
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct chunked_src *src = userdata;
    size_t n = size * nitems;

    if (n > src->left) {
        n = src->left;
    }
    memset(buf, 'c', n);
    src->left -= n;
    return n;
}

/* Sends one request; body NULL for none. chunked_len > 0 streams that many
 * bytes with Transfer-Encoding: chunked instead. Returns the curl code. */
static CURLcode request(const char *method,
                        const char *path,
                        const char *body,
                        size_t body_len,
                        size_t chunked_len,
                        struct reply *r)
{
    char url[256];
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct chunked_src src = {chunked_len};
    CURLcode rc;
    char *ct = NULL;

    assert_non_null(c);
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (chunked_len > 0) {
        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
    } else if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (hdrs != NULL) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct != NULL) {
            snprintf(r->content_type, sizeof(r->content_type), "%s", ct);
        }
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rc;
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct http_server *s;
    FILE *f;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/oz_test_http.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->file_path, sizeof(fx->file_path), "%s/ckpt.tar", fx->dir);
    f = fopen(fx->file_path, "w");
    assert_non_null(f);
    fputs("checkpoint bytes\n", f);
    fclose(f);

    assert_int_equal(http_server_new(&s, "127.0.0.1:0", errmsg), 0);
    assert_int_equal(http_server_route(s, "GET", "/healthz", h_text, "ok\n"),
                     0);
    assert_int_equal(http_server_route(s, "GET", "/api/v1/*", h_prefix, NULL),
                     0);
    assert_int_equal(
        http_server_route(s, "GET", "/api/v1/special", h_text, "special\n"), 0);
    assert_int_equal(http_server_route(s, "POST", "/echo", h_echo, NULL), 0);
    assert_int_equal(http_server_route(s, "PUT", "/echo", h_echo, NULL), 0);
    assert_int_equal(http_server_route(s, "GET", "/empty", h_empty, NULL), 0);
    assert_int_equal(http_server_route(s, NULL, "/any", h_method, NULL), 0);
    assert_int_equal(http_server_route(s, "GET", "/status", h_status, NULL), 0);
    assert_int_equal(
        http_server_route(s, "GET", "/file", h_file, fx->file_path), 0);
    assert_int_equal(
        http_server_route(s, "GET", "/cut-file", h_cut_file, fx->file_path), 0);
    assert_int_equal(http_server_route(s, "GET", "/missing-file", h_file,
                                       "/nonexistent/oz/file"),
                     0);
    assert_int_equal(http_server_start(s, errmsg), 0);
    fx->srv = s;
    fx->port = http_server_port(s);
    assert_true(fx->port > 0);
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    http_server_free(fx->srv);
    unlink(fx->file_path);
    rmdir(fx->dir);
    free(fx);
    fx = NULL;
    curl_global_cleanup();
    return 0;
}

/* ---- tests ---- */

static const struct route_case
{
    const char *method;
    const char *path;
    const char *body;
    long status;
    const char *want_body; /* exact */
    const char *want_type; /* NULL: do not check */
} route_cases[] = {
    {"GET", "/healthz", NULL, 200, "ok\n", "text/plain"},
    {"GET", "/healthz?x=1", NULL, 200, "ok\n", NULL},
    {"GET", "/api/v1/datanodes?limit=10", NULL, 200,
     "{\"path\":\"/api/v1/datanodes\",\"limit\":\"10\"}", "application/json"},
    {"GET", "/api/v1/", NULL, 200,
     "{\"path\":\"/api/v1/\",\"limit\":\"(none)\"}", NULL},
    {"GET", "/api/v1/special", NULL, 200, "special\n", NULL},
    {"GET", "/api/v1", NULL, 404, "no route for GET /api/v1\n", NULL},
    {"GET", "/x", NULL, 404, "no route for GET /x\n", "text/plain"},
    {"GET", "/healthz/extra", NULL, 404, "no route for GET /healthz/extra\n",
     NULL},
    {"POST", "/healthz", "", 405, "method POST not allowed for /healthz\n",
     NULL},
    {"DELETE", "/echo", NULL, 405, "method DELETE not allowed for /echo\n",
     NULL},
    {"POST", "/echo", "hello body", 201, "hello body",
     "application/octet-stream"},
    {"PUT", "/echo", "put body", 201, "put body", NULL},
    {"POST", "/echo", "", 201, "", NULL},
    {"GET", "/empty", NULL, 200, "", "text/plain"},
    {"GET", "/any", NULL, 200, "method GET", NULL},
    {"DELETE", "/any", NULL, 200, "method DELETE", NULL},
    {"GET", "/status", NULL, 503, "{\"ready\":false}", "application/json"},
    {"GET", "/file", NULL, 200, "checkpoint bytes\n", "application/x-tar"},
    {"GET", "/missing-file", NULL, 404, NULL, NULL},
};

static void test_routes(void **state)
{
    for (size_t i = 0; i < sizeof(route_cases) / sizeof(route_cases[0]); i++) {
        const struct route_case *c = &route_cases[i];
        struct reply r;
        CURLcode rc = request(c->method, c->path, c->body,
                              c->body != NULL ? strlen(c->body) : 0, 0, &r);

        if (rc != CURLE_OK) {
            fail_msg("case %zu %s %s: curl: %s", i, c->method, c->path,
                     curl_easy_strerror(rc));
        }
        if (r.status != c->status) {
            fail_msg("case %zu %s %s: status %ld, want %ld (body '%s')", i,
                     c->method, c->path, r.status, c->status, r.body);
        }
        if (c->want_body != NULL && strcmp(r.body, c->want_body) != 0) {
            fail_msg("case %zu %s %s: body '%s', want '%s'", i, c->method,
                     c->path, r.body, c->want_body);
        }
        if (c->want_type != NULL &&
            strncmp(r.content_type, c->want_type, strlen(c->want_type)) != 0) {
            fail_msg("case %zu %s %s: content type '%s', want '%s'", i,
                     c->method, c->path, r.content_type, c->want_type);
        }
    }
}

static void test_405_allow_header(void **state)
{
    struct reply r;

    assert_int_equal(request("GET", "/echo", NULL, 0, 0, &r), CURLE_OK);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "POST, PUT");
}

static void test_binary_post_echo(void **state)
{
    char body[70000];
    struct reply r;

    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (char)(i * 7);
    }
    /* The reply buffer keeps only its first 4095 bytes: compare those. */
    assert_int_equal(request("POST", "/echo", body, sizeof(body), 0, &r),
                     CURLE_OK);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.len, sizeof(r.body) - 1);
    assert_memory_equal(r.body, body, r.len);
}

static void test_oversized_post(void **state)
{
    size_t n = 2 * 1024 * 1024;
    char *big = malloc(n);
    struct reply r;

    assert_non_null(big);
    memset(big, 'b', n);
    /* Declared length over the cap: refused before the body is read. */
    assert_int_equal(request("POST", "/echo", big, n, 0, &r), CURLE_OK);
    assert_int_equal(r.status, 413);
    free(big);

    /* Chunked, no length: read and dropped past the cap, then 413. */
    assert_int_equal(request("POST", "/echo", NULL, 0, n, &r), CURLE_OK);
    assert_int_equal(r.status, 413);

    /* Exactly at the cap is accepted. */
    assert_int_equal(request("POST", "/echo", NULL, 0, 1024 * 1024, &r),
                     CURLE_OK);
    assert_int_equal(r.status, 201);

    /* The server is still fine. */
    assert_int_equal(request("GET", "/healthz", NULL, 0, 0, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
}

#define CLIENTS 8
#define REQS_PER_CLIENT 40

static void *client(void *arg)
{
    intptr_t id = (intptr_t)arg;
    intptr_t failures = 0;

    for (int i = 0; i < REQS_PER_CLIENT; i++) {
        char body[64];
        struct reply r;

        snprintf(body, sizeof(body), "client %ld req %d", (long)id, i);
        if (request("POST", "/echo", body, strlen(body), 0, &r) != CURLE_OK ||
            r.status != 201 || strcmp(r.body, body) != 0) {
            failures++;
        }
        if (request("GET", "/healthz", NULL, 0, 0, &r) != CURLE_OK ||
            r.status != 200) {
            failures++;
        }
    }
    return (void *)failures;
}

static void test_concurrent_requests(void **state)
{
    pthread_t th[CLIENTS];
    intptr_t failures = 0;

    for (intptr_t i = 0; i < CLIENTS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, client, (void *)i), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        failures += (intptr_t)ret;
    }
    assert_int_equal(failures, 0);
}

static void test_bind_in_use(void **state)
{
    char addr[64];
    char want[160];
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct http_server *s = NULL;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", fx->port);
    assert_int_equal(http_server_new(&s, addr, errmsg), 0);
    assert_int_equal(http_server_start(s, errmsg), OZ_EIO);
    snprintf(want, sizeof(want),
             "cannot bind HTTP server to '%s': Address already in use", addr);
    assert_string_equal(errmsg, want);
    http_server_free(s);
}

static const struct addr_case
{
    const char *addr;
    int rc;
} addr_cases[] = {
    {"127.0.0.1:0", 0},
    {"localhost:0", 0},
    {"0.0.0.0:0", 0},
    {":0", 0},
    {"127.0.0.1", OZ_EINVAL},
    {"127.0.0.1:", OZ_EINVAL},
    {"127.0.0.1:x", OZ_EINVAL},
    {"127.0.0.1:65536", OZ_EINVAL},
    {"127.0.0.1:-1", OZ_EINVAL},
    {"no.such.host.invalid:80", OZ_EINVAL},
};

static void test_bind_addresses(void **state)
{
    for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
        char errmsg[OZ_ERRMSG_SIZE] = "";
        struct http_server *s = NULL;
        int rc = http_server_new(&s, addr_cases[i].addr, errmsg);

        if (rc != addr_cases[i].rc) {
            fail_msg("case %zu '%s': rc %d (%s)", i, addr_cases[i].addr, rc,
                     errmsg);
        }
        if (rc != 0) {
            assert_null(s);
            assert_non_null(strstr(errmsg, addr_cases[i].addr));
            continue;
        }
        rc = http_server_start(s, errmsg);
        if (rc != 0 || http_server_port(s) <= 0) {
            fail_msg("case %zu '%s': start rc %d (%s)", i, addr_cases[i].addr,
                     rc, errmsg);
        }
        http_server_free(s);
    }
    http_server_free(NULL);
}

/* cut_after: the response declares the whole file, the connection closes
 * after 5 bytes; the client sees a cut transfer, not a short file, and
 * the same file served whole afterwards is unaffected. */
static void test_cut_file(void **state)
{
    char url[128], path[160], errmsg[OZ_ERRMSG_SIZE] = "";
    struct http_client_result res;
    char *body = NULL;
    size_t len = 0;

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/cut-file", fx->port);
    snprintf(path, sizeof(path), "%s/download", fx->dir);
    assert_int_equal(http_client_get_file(url, path, 0, 5000, &res, errmsg),
                     OZ_EIO);
    assert_non_null(strstr(errmsg, "transfer"));
    assert_true(res.bytes <= 5);
    unlink(path);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/file", fx->port);
    assert_int_equal(http_client_get(url, 0, 5000, &body, &len, &res, errmsg),
                     0);
    assert_int_equal(len, 17);
    free(body);
}

static void test_route_after_start_refused(void **state)
{
    assert_int_equal(http_server_route(fx->srv, "GET", "/late", h_empty, NULL),
                     OZ_ESTATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_405_allow_header),
        cmocka_unit_test(test_binary_post_echo),
        cmocka_unit_test(test_oversized_post),
        cmocka_unit_test(test_concurrent_requests),
        cmocka_unit_test(test_bind_in_use),
        cmocka_unit_test(test_bind_addresses),
        cmocka_unit_test(test_route_after_start_refused),
        cmocka_unit_test(test_cut_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
