#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *oz_strerror(int rc)
{
    switch (rc) {
        case 0:
            return "ok";
#define OZ__ERR_CASE(name, value, text) \
    case name:                          \
        return text;
            OZ_ERRORS(OZ__ERR_CASE)
#undef OZ__ERR_CASE
        default:
            return "unknown error";
    }
}

void oz_errmsg_printf(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, OZ_ERRMSG_SIZE, fmt, ap);
    va_end(ap);
}

void oz_errmsg_wrapf(char *buf, const char *fmt, ...)
{
    char old[OZ_ERRMSG_SIZE];
    char prefix[OZ_ERRMSG_SIZE];
    va_list ap;

    oz_strlcpy(old, buf, sizeof(old));
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (old[0] != '\0') {
        snprintf(buf, OZ_ERRMSG_SIZE, "%s: %s", prefix, old);
    } else {
        oz_strlcpy(buf, prefix, OZ_ERRMSG_SIZE);
    }
}

size_t oz_strlcpy(char *dst, const char *src, size_t dst_size)
{
    size_t len = strlen(src);
    size_t n = len < dst_size - 1 ? len : dst_size - 1;

    memcpy(dst, src, n);
    dst[n] = '\0';
    return len;
}
