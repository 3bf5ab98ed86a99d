/* Project error codes and error-message helpers (CONVENTIONS.md "Errors").
 *
 * Functions return int: 0 on success, a negative OZ_E* code on failure.
 * Long-lived objects keep a char errmsg[OZ_ERRMSG_SIZE]; the helpers below
 * build messages that name the cause chain, e.g.
 *   "finalize refused: datanode 'dn3' runs software version 100, needs 105".
 */
#ifndef OZONE_ERR_H
#define OZONE_ERR_H

#include <stddef.h>

#define OZ_ERRMSG_SIZE 256

/* X(name, value, text) */
#define OZ_ERRORS(X)                                    \
    X(OZ_ENOMEM, -1, "out of memory")                   \
    X(OZ_EINVAL, -2, "invalid argument")                \
    X(OZ_EIO, -3, "input/output error")                 \
    X(OZ_ENOTFOUND, -4, "not found")                    \
    X(OZ_ECORRUPT, -5, "corrupt data")                  \
    X(OZ_EVERSION, -6, "version mismatch")              \
    X(OZ_EUNAVAILABLE, -7, "service unavailable")       \
    X(OZ_ETIMEDOUT, -8, "timed out")                    \
    X(OZ_EEXIST, -9, "already exists")                  \
    X(OZ_ERPC, -10, "remote call failed")               \
    X(OZ_ETOOBIG, -11, "too large")                     \
    X(OZ_ENOTLEADER, -12, "not the leader")             \
    X(OZ_EREFUSED, -13, "refused")                      \
    X(OZ_ENOTSUPPORTED, -14, "operation not supported") \
    X(OZ_EFAULT, -15, "injected fault")                 \
    X(OZ_ESTATE, -16, "invalid state")                  \
    X(OZ_ECONFIG, -17, "invalid configuration")

enum oz_err {
#define OZ__ERR_ENUM(name, value, text) name = value,
    OZ_ERRORS(OZ__ERR_ENUM)
#undef OZ__ERR_ENUM
};

/* Static text for a code (0 gives "ok"; unknown codes give a fixed text). */
const char *oz_strerror(int rc);

/* Formats into buf (OZ_ERRMSG_SIZE bytes); truncates safely. */
void oz_errmsg_printf(char *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes the message already in buf: "<fmt>: <old message>". */
void oz_errmsg_wrapf(char *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Bounded string copy that always terminates dst (dst_size > 0). Returns
 * the length of src, like strlcpy, so callers can detect truncation. */
size_t oz_strlcpy(char *dst, const char *src, size_t dst_size);

#endif
