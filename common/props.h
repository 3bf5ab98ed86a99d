/* props: Java-properties-style files ("key=value" lines, '#' comments),
 * the format of Ozone's VERSION files (DESIGN.md §6.2). Values are plain
 * text; '\', '=', ':' and newlines in values are escaped on write. */
#ifndef OZONE_PROPS_H
#define OZONE_PROPS_H

#include <stddef.h>

#define PROPS_MAX_ENTRIES 64
#define PROPS_MAX_KEY 128
#define PROPS_MAX_VALUE 1024
#define PROPS_MAX_FILE (64 * 1024)

struct props
{
    size_t n;
    struct
    {
        char key[PROPS_MAX_KEY];
        char value[PROPS_MAX_VALUE];
    } e[PROPS_MAX_ENTRIES];
};

void props_init(struct props *p);
/* NULL when absent; borrowed. */
const char *props_get(const struct props *p, const char *key);
/* Replaces or adds. OZ_ETOOBIG when full or key/value too long. */
int props_set(struct props *p, const char *key, const char *value);
/* Parses a buffer (not NUL-terminated). OZ_ECORRUPT with errmsg naming the
 * line on a malformed line or overlong entry. */
int props_parse(struct props *p, const char *buf, size_t len, char *errmsg);
/* OZ_ENOTFOUND when the file does not exist; OZ_ECORRUPT, OZ_EIO. */
int props_load(struct props *p, const char *path, char *errmsg);
/* Atomic write: temp file in the same directory, fsync, rename, fsync the
 * directory. A crash leaves either the old or the new file. Fault points:
 * "props.save.before_rename". */
int props_save(const struct props *p,
               const char *path,
               const char *comment,
               char *errmsg);

/* Creates a directory and its parents (mode 0755). 0 or OZ_EIO. */
int oz_mkdirs(const char *path, char *errmsg);
/* fsync a directory. */
int oz_fsync_dir(const char *path);
#endif
