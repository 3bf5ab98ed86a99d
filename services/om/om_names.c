/* Name rules of volumes, buckets and keys. The checks and their order
 * follow Apache Ozone's HddsClientUtils.verifyResourceName, so an operator
 * sees the same refusals; the messages use our grammar (CONVENTIONS.md
 * "Errors": what is wrong, then what to do). DESIGN.md §7. */
#include "om_names.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

#define QUOTE_MAX 64

const char *om_quote_name(const char *name, size_t len, char *out, size_t size)
{
    size_t n = 0;
    size_t i;

    if (size == 0) {
        return out;
    }
    for (i = 0; i < len && i < QUOTE_MAX && n + 1 < size; i++) {
        unsigned char c = (unsigned char)name[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[n] = '\0';
    if (i < len && n + 4 < size) {
        memcpy(out + n, "...", 4);
    }
    return out;
}

static bool is_allowed(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
}

/* The first rule the name breaks, as a reason text; NULL when valid. */
static const char *resource_rule(const char *name,
                                 size_t len,
                                 char *buf,
                                 size_t size)
{
    bool numeric = true;

    if (len < OM_MIN_RESOURCE_NAME || len > OM_MAX_RESOURCE_NAME) {
        snprintf(buf, size,
                 "it is %zu characters long; use %d to %d characters", len,
                 OM_MIN_RESOURCE_NAME, OM_MAX_RESOURCE_NAME);
        return buf;
    }
    if (name[0] == '.' || name[0] == '-') {
        return "it starts with a period or dash; start with a letter or "
               "digit";
    }
    if (name[len - 1] == '.' || name[len - 1] == '-') {
        return "it ends with a period or dash; end with a letter or digit";
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        char prev = i > 0 ? name[i - 1] : '\0';
        if (c >= 'A' && c <= 'Z') {
            snprintf(buf, size,
                     "upper case letter '%c' is not allowed; use lower case "
                     "letters, digits, '-' and '.'",
                     c);
            return buf;
        }
        if (!is_allowed(c)) {
            unsigned char u = (unsigned char)c;
            if (u >= 0x20 && u < 0x7f) {
                snprintf(buf, size,
                         "character '%c' is not allowed; use lower case "
                         "letters, digits, '-' and '.'",
                         c);
            } else {
                snprintf(buf, size,
                         "byte 0x%02x is not allowed; use lower case "
                         "letters, digits, '-' and '.'",
                         u);
            }
            return buf;
        }
        if (prev == '.' && c == '.') {
            return "it has two consecutive periods; remove one";
        }
        if ((prev == '-' && c == '.') || (prev == '.' && c == '-')) {
            return "it has a period next to a dash; separate them";
        }
        if (c != '.' && !(c >= '0' && c <= '9')) {
            numeric = false;
        }
    }
    if (numeric) {
        return "it is an IPv4 address or all numeric; add a letter";
    }
    return NULL;
}

Ozone__ResultCode om_check_resource_name(enum om_name_kind kind,
                                         const char *name,
                                         size_t len,
                                         char *errmsg)
{
    char reason[160];
    char quoted[QUOTE_MAX + 8];
    const char *what = kind == OM_NAME_VOLUME ? "volume" : "bucket";
    const char *rule;

    if (name == NULL) {
        name = "";
        len = 0;
    }
    rule = resource_rule(name, len, reason, sizeof(reason));
    if (rule == NULL) {
        return OZONE__RESULT_CODE__OK;
    }
    oz_errmsg_printf(errmsg, "invalid %s name '%s': %s", what,
                     om_quote_name(name, len, quoted, sizeof(quoted)), rule);
    return kind == OM_NAME_VOLUME ? OZONE__RESULT_CODE__INVALID_VOLUME_NAME
                                  : OZONE__RESULT_CODE__INVALID_BUCKET_NAME;
}

Ozone__ResultCode om_check_key_name(const char *name, size_t len, char *errmsg)
{
    char quoted[QUOTE_MAX + 8];

    if (name == NULL || len == 0) {
        oz_errmsg_printf(errmsg,
                         "invalid key name '': it is empty; give "
                         "the key a name");
        return OZONE__RESULT_CODE__INVALID_KEY_NAME;
    }
    if (len > OM_MAX_KEY_NAME) {
        oz_errmsg_printf(errmsg,
                         "invalid key name '%s': it is %zu bytes long; use "
                         "at most %d bytes",
                         om_quote_name(name, len, quoted, sizeof(quoted)), len,
                         OM_MAX_KEY_NAME);
        return OZONE__RESULT_CODE__INVALID_KEY_NAME;
    }
    if (memchr(name, '\0', len) != NULL) {
        oz_errmsg_printf(errmsg,
                         "invalid key name '%s': it contains a NUL byte; "
                         "remove it",
                         om_quote_name(name, len, quoted, sizeof(quoted)));
        return OZONE__RESULT_CODE__INVALID_KEY_NAME;
    }
    return OZONE__RESULT_CODE__OK;
}
