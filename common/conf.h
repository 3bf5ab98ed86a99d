/* conf: ozone-site.xml (Hadoop XML properties) with Ozone's key names,
 * --conf DIR / OZONE_CONF_DIR, and -D key=value overrides (DESIGN.md §11).
 *
 * Later sources win: defaults < file < -D overrides. Typed getters parse
 * units ("30s", "500ms", "5m", "64MB", "1GB") and fill errmsg naming the
 * key on an invalid value:
 *   "invalid value 'abc' for 'hdds.heartbeat.interval': expected a
 *    duration like 30s or 500ms"
 */
#ifndef OZONE_CONF_H
#define OZONE_CONF_H

#include <stdbool.h>
#include <stddef.h>

struct conf;

struct conf *conf_new(void);
void conf_free(struct conf *c);

/* Parses ozone-site.xml contents. OZ_ECORRUPT with errmsg (file name and
 * what is wrong) on malformed XML or a property without a name. source is
 * used in messages. Caps: 4 MiB input, 4096 properties. */
int conf_load_buffer(struct conf *c,
                     const char *buf,
                     size_t len,
                     const char *source,
                     char *errmsg);
/* Loads a file; OZ_ENOTFOUND if it does not exist. */
int conf_load_file(struct conf *c, const char *path, char *errmsg);
/* Loads DIR/ozone-site.xml; a missing file is fine (returns 0), a missing
 * DIR is OZ_ENOTFOUND with a message. */
int conf_load_dir(struct conf *c, const char *dir, char *errmsg);
/* "key=value" from -D. OZ_EINVAL with errmsg when there is no '=' or the
 * key is empty. */
int conf_set_override(struct conf *c, const char *kv, char *errmsg);
/* Sets (copies). */
int conf_set(struct conf *c, const char *key, const char *value);

/* NULL when unset; borrowed until the key is set again or c freed. */
const char *conf_get(const struct conf *c, const char *key);
/* def when unset. */
const char *conf_get_str(const struct conf *c,
                         const char *key,
                         const char *def);
int conf_get_int(const struct conf *c,
                 const char *key,
                 long long def,
                 long long *out,
                 char *errmsg);
int conf_get_bool(const struct conf *c,
                  const char *key,
                  bool def,
                  bool *out,
                  char *errmsg);
/* Durations: bare numbers are milliseconds unless def_unit_ms says
 * otherwise (Ozone keys without a unit default to the key's own unit). */
int conf_get_duration_ms(const struct conf *c,
                         const char *key,
                         const char *def,
                         long long *out_ms,
                         char *errmsg);
int conf_get_size(const struct conf *c,
                  const char *key,
                  const char *def,
                  long long *out_bytes,
                  char *errmsg);

/* Parsers used by the getters (exposed for tests and fuzzing). 0 or
 * OZ_EINVAL. */
int conf_parse_duration_ms(const char *s, long long *out_ms);
int conf_parse_size(const char *s, long long *out_bytes);

/* Calls warn(key) for every set key that is neither in known (NULL-ended
 * list of names; an entry ending in '.' or '*' matches a prefix) nor in
 * the built-in table of keys ozone-c understands. */
void conf_warn_unknown(const struct conf *c,
                       const char *const *known,
                       void (*warn)(const char *key));

/* Checks every set key that ozone-c knows against the type of its
 * documented default (integer, boolean, duration, size). Returns 0, or
 * OZ_EINVAL with errmsg naming the first bad key and value. Daemons call it
 * at start so an invalid value stops start-up (DESIGN.md §11). */
int conf_validate(const struct conf *c, char *errmsg);

/* Iterates over set keys in insertion order. */
size_t conf_count(const struct conf *c);
const char *conf_key_at(const struct conf *c, size_t i);

#endif
