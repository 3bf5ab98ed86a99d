/* om_names: validation of volume, bucket and key names (Apache Ozone's
 * rules, HddsClientUtils.verifyResourceName and OmUtils key checks;
 * DESIGN.md §7).
 *
 * Volume and bucket names: 3 to 63 characters; lower case letters, digits,
 * '-' and '.'; no leading or trailing '-' or '.'; no "..", "-." or ".-";
 * not an IPv4 address or all numeric. Key names: not empty, at most
 * OM_MAX_KEY_NAME bytes, no NUL byte.
 *
 * Pure functions, thread-safe.
 */
#ifndef OZONE_OM_NAMES_H
#define OZONE_OM_NAMES_H

#include <stddef.h>

#include "common.pb-c.h"

#define OM_MIN_RESOURCE_NAME 3
#define OM_MAX_RESOURCE_NAME 63
#define OM_MAX_KEY_NAME 1024

/* What kind of resource a name is checked for (used in messages). */
enum om_name_kind { OM_NAME_VOLUME, OM_NAME_BUCKET };

/* Checks a volume or bucket name of len bytes (name need not be
 * NUL-terminated; NULL is treated as empty). Returns OZONE__RESULT_CODE__OK,
 * or INVALID_VOLUME_NAME / INVALID_BUCKET_NAME with errmsg (OZ_ERRMSG_SIZE
 * bytes) saying what is wrong and what to do, e.g.
 *   "invalid volume name 'Vol1': upper case letter 'V' is not allowed; use
 *    lower case letters, digits, '-' and '.'" */
Ozone__ResultCode om_check_resource_name(enum om_name_kind kind,
                                         const char *name,
                                         size_t len,
                                         char *errmsg);

/* Checks a key name of len bytes. OK, or INVALID_KEY_NAME with errmsg. */
Ozone__ResultCode om_check_key_name(const char *name, size_t len, char *errmsg);

/* Copies name into out (size bytes) for quoting in a message: at most 64
 * bytes of it, bytes outside printable ASCII shown as '?', "..." appended
 * when cut. Returns out. */
const char *om_quote_name(const char *name, size_t len, char *out, size_t size);

#endif
