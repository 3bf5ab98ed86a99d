/* http_client: adapter around libcurl's easy interface (see the header).
 *
 * One easy handle per call: calls are rare (a checkpoint download every
 * sync interval at most), so connection reuse is not worth shared state.
 * CURLOPT_NOSIGNAL keeps libcurl away from signals, which the daemon
 * skeleton blocks in every thread but the main one (common/daemon.h).
 */
#include "http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

#define ERR_BODY_MAX 512

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

struct sink
{
    int fd;    /* file sink, or -1 */
    char *buf; /* memory sink (and the error body of a file sink) */
    size_t len, cap;
    uint64_t total;
    uint64_t max;
    bool too_big;
    bool io_error;
    long status; /* known once headers are in */
    CURL *curl;
};

static bool mem_append(struct sink *s, const char *p, size_t n, size_t cap)
{
    if (s->len + n > cap) {
        n = cap - s->len;
    }
    if (s->len + n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap : 4096;
        while (nc < s->len + n + 1) {
            nc *= 2;
        }
        char *nb = realloc(s->buf, nc);
        if (nb == NULL) {
            return false;
        }
        s->buf = nb;
        s->cap = nc;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return true;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sink *s = userdata;
    size_t n = size * nmemb;

    if (s->status == 0) {
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
    }
    if (s->status != 200) {
        /* Keep the start of an error body for the message. */
        if (s->len < ERR_BODY_MAX) {
            mem_append(s, ptr, n, ERR_BODY_MAX);
        }
        return n;
    }
    if (s->max != 0 && s->total + n > s->max) {
        s->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (s->fd >= 0) {
        for (size_t done = 0; done < n;) {
            ssize_t w = write(s->fd, ptr + done, n - done);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                s->io_error = true;
                return 0;
            }
            done += (size_t)w;
        }
    } else if (!mem_append(s, ptr, n, SIZE_MAX - 1)) {
        s->io_error = true;
        return 0;
    }
    s->total += n;
    return n;
}

static int run(const char *url,
               struct sink *s,
               int timeout_ms,
               struct http_client_result *res,
               char *errmsg)
{
    CURL *c;
    CURLcode cc;
    char cerr[CURL_ERROR_SIZE] = "";
    int rc = 0;

    pthread_once(&global_once, global_init);
    if (global_rc != 0) {
        oz_errmsg_printf(errmsg, "cannot initialise libcurl");
        return OZ_EIO;
    }
    c = curl_easy_init();
    if (c == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    s->curl = c;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout_ms < 5000 ? timeout_ms : 5000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
    res->status = s->status;
    res->bytes = s->total;
    if (s->too_big) {
        oz_errmsg_printf(errmsg, "GET '%s': body is larger than %llu bytes",
                         url, (unsigned long long)s->max);
        rc = OZ_ETOOBIG;
    } else if (s->io_error) {
        oz_errmsg_printf(errmsg, "GET '%s': cannot store the body: %s", url,
                         strerror(errno));
        rc = OZ_EIO;
    } else if (cc == CURLE_COULDNT_CONNECT ||
               cc == CURLE_COULDNT_RESOLVE_HOST) {
        oz_errmsg_printf(errmsg, "GET '%s': cannot connect: %s", url,
                         cerr[0] ? cerr : curl_easy_strerror(cc));
        rc = OZ_EUNAVAILABLE;
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        oz_errmsg_printf(errmsg, "GET '%s': timed out after %d ms", url,
                         timeout_ms);
        rc = OZ_ETIMEDOUT;
    } else if (cc != CURLE_OK) {
        /* e.g. CURLE_PARTIAL_FILE: the server closed before
         * Content-Length bytes arrived. */
        oz_errmsg_printf(errmsg,
                         "GET '%s': transfer failed after %llu bytes: %s", url,
                         (unsigned long long)s->total,
                         cerr[0] ? cerr : curl_easy_strerror(cc));
        rc = OZ_EIO;
    } else if (s->status != 200) {
        if (s->buf != NULL) {
            char *nl = strchr(s->buf, '\n');
            if (nl != NULL) {
                *nl = '\0';
            }
        }
        oz_errmsg_printf(errmsg, "GET '%s': HTTP %ld: %s", url, s->status,
                         s->buf != NULL ? s->buf : "");
        rc = OZ_ERPC;
    }
    curl_easy_cleanup(c);
    s->curl = NULL;
    return rc;
}

int http_client_get_file(const char *url,
                         const char *path,
                         uint64_t max_bytes,
                         int timeout_ms,
                         struct http_client_result *res,
                         char *errmsg)
{
    struct sink s;
    int rc;

    memset(res, 0, sizeof(*res));
    memset(&s, 0, sizeof(s));
    s.max = max_bytes;
    s.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (s.fd < 0) {
        oz_errmsg_printf(errmsg, "cannot create '%s': %s", path,
                         strerror(errno));
        return OZ_EIO;
    }
    rc = run(url, &s, timeout_ms, res, errmsg);
    if (rc == 0 && fsync(s.fd) != 0) {
        oz_errmsg_printf(errmsg, "cannot sync '%s': %s", path, strerror(errno));
        rc = OZ_EIO;
    }
    close(s.fd);
    free(s.buf);
    return rc;
}

int http_client_get(const char *url,
                    size_t max_bytes,
                    int timeout_ms,
                    char **body,
                    size_t *len,
                    struct http_client_result *res,
                    char *errmsg)
{
    struct sink s;
    int rc;

    *body = NULL;
    *len = 0;
    memset(res, 0, sizeof(*res));
    memset(&s, 0, sizeof(s));
    s.fd = -1;
    s.max = max_bytes;
    rc = run(url, &s, timeout_ms, res, errmsg);
    if (rc != 0) {
        free(s.buf);
        return rc;
    }
    if (s.buf == NULL) {
        s.buf = calloc(1, 1);
        if (s.buf == NULL) {
            return OZ_ENOMEM;
        }
    }
    *body = s.buf;
    *len = s.len;
    return 0;
}
