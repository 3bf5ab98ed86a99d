/* http_client: the only module that calls curl_* (libcurl): plain HTTP GET
 * for internal clients such as Recon fetching OM's /dbCheckpoint
 * (DESIGN.md §9; CONVENTIONS.md adapters).
 *
 * Every call is synchronous, has a total timeout and a size cap, and is
 * thread-safe (libcurl's global init runs once, on first use). Nothing
 * allocated by libcurl leaves this module.
 */
#ifndef OZONE_HTTP_CLIENT_H
#define OZONE_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct http_client_result
{
    long status;    /* HTTP status; 0 when no response arrived */
    uint64_t bytes; /* body bytes received */
};

/* GETs url into the file at path (created or truncated, fsynced). Fails
 * unless the server answered 200 with a complete body (a connection cut
 * before Content-Length is reached is an error). max_bytes caps the body
 * (0: no cap). Returns 0, OZ_EUNAVAILABLE (cannot connect), OZ_ETIMEDOUT,
 * OZ_ETOOBIG, OZ_ERPC (a status other than 200; its first line of body in
 * errmsg), or OZ_EIO (transfer cut, local file), with errmsg. */
int http_client_get_file(const char *url,
                         const char *path,
                         uint64_t max_bytes,
                         int timeout_ms,
                         struct http_client_result *res,
                         char *errmsg);

/* GETs url into memory: *body malloc'd and NUL-terminated (caller frees),
 * *len its length; the same errors as http_client_get_file. */
int http_client_get(const char *url,
                    size_t max_bytes,
                    int timeout_ms,
                    char **body,
                    size_t *len,
                    struct http_client_result *res,
                    char *errmsg);

#endif
