/* conf_keys: the built-in table of configuration keys ozone-c understands
 * (DESIGN.md §11). conf_warn_unknown() warns about keys outside it, and
 * docs/config.md is its operator-facing copy; keep the two in step.
 *
 * A name ending in '.' is a prefix entry: it matches every key that starts
 * with it (e.g. "ozone.om.nodes." matches "ozone.om.nodes.omservice").
 */
#ifndef OZONE_CONF_KEYS_H
#define OZONE_CONF_KEYS_H

#include <stdbool.h>
#include <stddef.h>

struct conf_key_info
{
    const char *name;        /* key, or prefix ending in '.' */
    const char *def;         /* default as text, NULL when there is none */
    const char *description; /* one sentence for operators */
};

/* The whole table, in documentation order; static storage, never freed.
 * *n receives the number of entries (n may be NULL). */
const struct conf_key_info *conf_known_keys(size_t *n);

/* The table entry for key (exact name first, then the longest matching
 * prefix entry), or NULL when ozone-c does not know the key. */
const struct conf_key_info *conf_key_lookup(const char *key);

/* True when name matches pattern: equal, or pattern ends in '.' or '*' and
 * name starts with pattern (without the '*') and is longer than it. */
bool conf_key_matches(const char *pattern, const char *name);

#endif
