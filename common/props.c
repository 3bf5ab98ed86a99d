/* props: the Java-properties subset used by VERSION files (DESIGN.md §6.2).
 *
 * Accepted syntax, one entry per line ("\n", "\r\n" or "\r"):
 *   # comment            ! comment            (blank lines)
 *   key=value            key:value            key = value
 * Leading blanks and blanks around the separator are skipped; unlike Java,
 * the separator is required. Escapes in
 * keys and values: \\ \= \: \# \! \space \t \n \r. Anything else (a line
 * without a separator, an empty key, an unknown escape, a trailing
 * backslash, a NUL byte, a duplicate key, an overlong key or value, too
 * many entries, an oversized file) is corruption: a VERSION file is written
 * only by props_save, so we refuse rather than guess.
 */
#include "props.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fault.h"

void props_init(struct props *p)
{
    p->n = 0;
}

static int find(const struct props *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->e[i].key, key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *props_get(const struct props *p, const char *key)
{
    int i = find(p, key);

    return i < 0 ? NULL : p->e[i].value;
}

int props_set(struct props *p, const char *key, const char *value)
{
    int i;

    if (key[0] == '\0' || strlen(key) >= PROPS_MAX_KEY ||
        strlen(value) >= PROPS_MAX_VALUE) {
        return OZ_ETOOBIG;
    }
    i = find(p, key);
    if (i < 0) {
        if (p->n >= PROPS_MAX_ENTRIES) {
            return OZ_ETOOBIG;
        }
        i = (int)p->n++;
        oz_strlcpy(p->e[i].key, key, PROPS_MAX_KEY);
    }
    oz_strlcpy(p->e[i].value, value, PROPS_MAX_VALUE);
    return 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Decodes s[0..len) up to an unescaped stop character (key: '=', ':' or a
 * blank; value: none) into out. Returns the number of input bytes consumed, or
 * -1 with errmsg set. */
static long unescape(const char *s,
                     size_t len,
                     bool is_key,
                     char *out,
                     size_t out_size,
                     size_t line_no,
                     char *errmsg)
{
    const char *what = is_key ? "key" : "value";
    size_t i = 0;
    size_t o = 0;

    while (i < len) {
        char c = s[i];
        if (is_key && (c == '=' || c == ':' || is_blank(c))) {
            break;
        }
        if (c == '\\') {
            if (i + 1 >= len) {
                oz_errmsg_printf(errmsg, "line %zu: backslash at end of %s",
                                 line_no, what);
                return -1;
            }
            switch (s[i + 1]) {
                case '\\':
                case '=':
                case ':':
                case '#':
                case '!':
                case ' ':
                    c = s[i + 1];
                    break;
                case 't':
                    c = '\t';
                    break;
                case 'n':
                    c = '\n';
                    break;
                case 'r':
                    c = '\r';
                    break;
                default:
                    oz_errmsg_printf(errmsg,
                                     "line %zu: unknown escape '\\%c' in %s",
                                     line_no, s[i + 1], what);
                    return -1;
            }
            i += 2;
        } else {
            i++;
        }
        if (o + 1 >= out_size) {
            oz_errmsg_printf(errmsg, "line %zu: %s longer than %zu bytes",
                             line_no, what, out_size - 1);
            return -1;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)i;
}

static int parse_line(struct props *p,
                      const char *s,
                      size_t len,
                      size_t line_no,
                      char *errmsg)
{
    char key[PROPS_MAX_KEY];
    char value[PROPS_MAX_VALUE];
    size_t i = 0;
    long used;

    while (i < len && is_blank(s[i])) {
        i++;
    }
    if (i == len || s[i] == '#' || s[i] == '!') {
        return 0; /* blank or comment */
    }
    used = unescape(s + i, len - i, true, key, sizeof(key), line_no, errmsg);
    if (used < 0) {
        return OZ_ECORRUPT;
    }
    i += (size_t)used;
    while (i < len && is_blank(s[i])) {
        i++;
    }
    if (i == len || (s[i] != '=' && s[i] != ':')) {
        oz_errmsg_printf(errmsg, "line %zu: expected key=value, found no '='",
                         line_no);
        return OZ_ECORRUPT;
    }
    if (key[0] == '\0') {
        oz_errmsg_printf(errmsg, "line %zu: empty key", line_no);
        return OZ_ECORRUPT;
    }
    i++; /* the separator */
    while (i < len && is_blank(s[i])) {
        i++;
    }
    used =
        unescape(s + i, len - i, false, value, sizeof(value), line_no, errmsg);
    if (used < 0) {
        return OZ_ECORRUPT;
    }
    if (find(p, key) >= 0) {
        oz_errmsg_printf(errmsg, "line %zu: duplicate key '%s'", line_no, key);
        return OZ_ECORRUPT;
    }
    if (p->n >= PROPS_MAX_ENTRIES) {
        oz_errmsg_printf(errmsg, "line %zu: more than %d entries", line_no,
                         PROPS_MAX_ENTRIES);
        return OZ_ECORRUPT;
    }
    oz_strlcpy(p->e[p->n].key, key, PROPS_MAX_KEY);
    oz_strlcpy(p->e[p->n].value, value, PROPS_MAX_VALUE);
    p->n++;
    return 0;
}

int props_parse(struct props *p, const char *buf, size_t len, char *errmsg)
{
    size_t line_no = 1;
    size_t start = 0;
    int rc;

    props_init(p);
    if (len == 0) {
        return 0; /* buf may be NULL */
    }
    if (len > PROPS_MAX_FILE) {
        oz_errmsg_printf(errmsg,
                         "file is %zu bytes, more than the %d-byte "
                         "limit",
                         len, PROPS_MAX_FILE);
        return OZ_ECORRUPT;
    }
    if (memchr(buf, '\0', len) != NULL) {
        const char *nul = memchr(buf, '\0', len);
        for (const char *q = buf; q < nul; q++) {
            line_no += *q == '\n';
        }
        oz_errmsg_printf(errmsg, "line %zu: NUL byte", line_no);
        return OZ_ECORRUPT;
    }
    while (start < len) {
        size_t end = start;
        while (end < len && buf[end] != '\n' && buf[end] != '\r') {
            end++;
        }
        rc = parse_line(p, buf + start, end - start, line_no, errmsg);
        if (rc != 0) {
            props_init(p);
            return rc;
        }
        if (end < len && buf[end] == '\r' && end + 1 < len &&
            buf[end + 1] == '\n') {
            end++;
        }
        start = end + 1;
        line_no++;
    }
    return 0;
}

int props_load(struct props *p, const char *path, char *errmsg)
{
    char *buf;
    ssize_t n;
    size_t len = 0;
    int fd;
    int rc;

    props_init(p);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            oz_errmsg_printf(errmsg, "'%s' does not exist", path);
            return OZ_ENOTFOUND;
        }
        oz_errmsg_printf(errmsg, "cannot open '%s': %s", path, strerror(errno));
        return OZ_EIO;
    }
    /* One byte more than the cap tells an oversized file apart. */
    buf = malloc(PROPS_MAX_FILE + 1);
    if (buf == NULL) {
        close(fd);
        oz_errmsg_printf(errmsg, "out of memory reading '%s'", path);
        return OZ_ENOMEM;
    }
    while (len < PROPS_MAX_FILE + 1) {
        n = read(fd, buf + len, PROPS_MAX_FILE + 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            oz_errmsg_printf(errmsg, "cannot read '%s': %s", path,
                             strerror(errno));
            free(buf);
            close(fd);
            return OZ_EIO;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    rc = props_parse(p, buf, len, errmsg);
    free(buf);
    return rc;
}

/* Appends s escaped into out (a growing buffer of cap bytes). */
static int put_escaped(char *out,
                       size_t cap,
                       size_t *pos,
                       const char *s,
                       bool is_key)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        char esc = 0;
        switch (s[i]) {
            case '\\':
            case '=':
            case ':':
                esc = s[i];
                break;
            case '#':
            case '!':
                esc = i == 0 ? s[i] : 0;
                break;
            case ' ':
                esc = (is_key || i == 0) ? ' ' : 0;
                break;
            case '\t':
                esc = 't';
                break;
            case '\n':
                esc = 'n';
                break;
            case '\r':
                esc = 'r';
                break;
            default:
                break;
        }
        if (*pos + 3 > cap) {
            return OZ_ETOOBIG;
        }
        if (esc != 0) {
            out[(*pos)++] = '\\';
            out[(*pos)++] = esc;
        } else {
            out[(*pos)++] = s[i];
        }
    }
    return 0;
}

static int format_props(const struct props *p,
                        const char *comment,
                        char *out,
                        size_t cap,
                        size_t *len)
{
    size_t pos = 0;

    if (comment != NULL) {
        if (strlen(comment) + 3 > cap) {
            return OZ_ETOOBIG;
        }
        out[pos++] = '#';
        for (size_t i = 0; comment[i] != '\0'; i++) {
            char c = comment[i];
            out[pos++] = (c == '\n' || c == '\r') ? ' ' : c;
        }
        out[pos++] = '\n';
    }
    for (size_t i = 0; i < p->n; i++) {
        if (put_escaped(out, cap, &pos, p->e[i].key, true) != 0 ||
            pos + 1 > cap) {
            return OZ_ETOOBIG;
        }
        out[pos++] = '=';
        if (put_escaped(out, cap, &pos, p->e[i].value, false) != 0 ||
            pos + 1 > cap) {
            return OZ_ETOOBIG;
        }
        out[pos++] = '\n';
    }
    *len = pos;
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL) {
        oz_strlcpy(dir, ".", size);
    } else if (slash == path) {
        oz_strlcpy(dir, "/", size);
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= size) {
            n = size - 1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
}

int props_save(const struct props *p,
               const char *path,
               const char *comment,
               char *errmsg)
{
    char dir[4096];
    char tmp[4096 + 32];
    const char *base = strrchr(path, '/');
    char *buf;
    size_t len = 0;
    int fd;
    int rc;

    base = base == NULL ? path : base + 1;
    if (strlen(path) >= sizeof(dir) || base[0] == '\0') {
        oz_errmsg_printf(errmsg, "invalid file name '%s'", path);
        return OZ_EINVAL;
    }
    /* A file that props_parse would refuse must never be written. */
    buf = malloc(PROPS_MAX_FILE + 1);
    if (buf == NULL) {
        oz_errmsg_printf(errmsg, "out of memory writing '%s'", path);
        return OZ_ENOMEM;
    }
    if (format_props(p, comment, buf, PROPS_MAX_FILE, &len) != 0) {
        oz_errmsg_printf(errmsg, "cannot write '%s': more than %d bytes", path,
                         PROPS_MAX_FILE);
        free(buf);
        return OZ_ETOOBIG;
    }
    dir_of(path, dir, sizeof(dir));
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmpXXXXXX", dir, base);
    fd = mkstemp(tmp);
    if (fd < 0) {
        oz_errmsg_printf(errmsg, "cannot create a temporary file in '%s': %s",
                         dir, strerror(errno));
        free(buf);
        return OZ_EIO;
    }
    if (fchmod(fd, 0644) != 0 || write_all(fd, buf, len) != 0 ||
        fsync(fd) != 0) {
        oz_errmsg_printf(errmsg, "cannot write '%s': %s", tmp, strerror(errno));
        rc = OZ_EIO;
        close(fd);
        goto err_after_create;
    }
    free(buf);
    buf = NULL;
    if (close(fd) != 0) {
        oz_errmsg_printf(errmsg, "cannot write '%s': %s", tmp, strerror(errno));
        rc = OZ_EIO;
        goto err_after_create;
    }
    rc = fault_hit("props.save.before_rename");
    if (rc != 0) {
        oz_errmsg_printf(errmsg,
                         "cannot replace '%s': injected fault "
                         "'props.save.before_rename'",
                         path);
        goto err_after_create;
    }
    if (rename(tmp, path) != 0) {
        oz_errmsg_printf(errmsg, "cannot rename '%s' to '%s': %s", tmp, path,
                         strerror(errno));
        rc = OZ_EIO;
        goto err_after_create;
    }
    if (oz_fsync_dir(dir) != 0) {
        oz_errmsg_printf(errmsg, "cannot sync directory '%s': %s", dir,
                         strerror(errno));
        return OZ_EIO;
    }
    return 0;

err_after_create:
    unlink(tmp);
    free(buf);
    return rc;
}

int oz_mkdirs(const char *path, char *errmsg)
{
    char buf[4096];
    size_t len = strlen(path);
    struct stat st;

    if (len == 0 || len >= sizeof(buf)) {
        oz_errmsg_printf(errmsg, "invalid directory name '%s'", path);
        return OZ_EIO;
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') {
            continue;
        }
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            oz_errmsg_printf(errmsg, "cannot create directory '%s': %s", buf,
                             strerror(errno));
            return OZ_EIO;
        }
        buf[i] = saved;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        oz_errmsg_printf(errmsg, "'%s' exists and is not a directory", path);
        return OZ_EIO;
    }
    return 0;
}

int oz_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0) {
        return OZ_EIO;
    }
    rc = fsync(fd);
    close(fd);
    return rc == 0 ? 0 : OZ_EIO;
}
