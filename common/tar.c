/* tar: ustar writer and reader (see tar.h for the contract).
 *
 * Header layout (POSIX ustar, offsets in bytes): name 0..99, mode 100,
 * uid 108, gid 116, size 124 (12 octal), mtime 136, chksum 148 (8),
 * typeflag 156, linkname 157, magic 257 "ustar\0", version 263 "00",
 * uname 265, gname 297, devmajor 329, devminor 337, prefix 345..499.
 * The writer leaves the prefix empty (names are at most 99 bytes); the
 * reader refuses a non-empty prefix, since a plain file name never needs
 * one.
 */
#include "tar.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"
#include "err.h"

#define DEFAULT_MAX_MEMBER (4ULL << 30)
#define DEFAULT_MAX_TOTAL (64ULL << 30)
#define DEFAULT_MAX_MEMBERS 100000
#define MAX_SIZE_OCTAL 077777777777ULL /* 11 octal digits */
#define COPY_BUF (64 * 1024)

struct tar_writer
{
    int fd;
    char *path;
    uint64_t offset;
    uint32_t crc;
};

bool tar_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > TAR_NAME_MAX || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* ---- writer ---- */

static int write_all(struct tar_writer *w,
                     const void *buf,
                     size_t len,
                     char *errmsg)
{
    const char *p = buf;
    size_t left = len;

    while (left > 0) {
        ssize_t n = write(w->fd, p, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            oz_errmsg_printf(errmsg, "cannot write archive '%s': %s", w->path,
                             strerror(errno));
            return OZ_EIO;
        }
        p += n;
        left -= (size_t)n;
    }
    w->crc = crc32c(w->crc, buf, len);
    w->offset += len;
    return 0;
}

int tar_writer_open(struct tar_writer **out, const char *path, char *errmsg)
{
    struct tar_writer *w = calloc(1, sizeof(*w));

    *out = NULL;
    if (w == NULL || (w->path = strdup(path)) == NULL) {
        free(w);
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        oz_errmsg_printf(errmsg, "cannot create archive '%s': %s", path,
                         strerror(errno));
        free(w->path);
        free(w);
        return OZ_EIO;
    }
    *out = w;
    return 0;
}

static void octal(char *field, size_t width, uint64_t v)
{
    /* width - 1 digits and a NUL, as GNU tar writes them. */
    snprintf(field, width, "%0*llo", (int)(width - 1), (unsigned long long)v);
}

static int write_header(struct tar_writer *w,
                        const char *name,
                        uint64_t size,
                        char *errmsg)
{
    unsigned char h[TAR_BLOCK];
    unsigned sum = 0;

    if (!tar_name_ok(name)) {
        oz_errmsg_printf(errmsg,
                         "cannot add '%s' to archive '%s': not a plain file "
                         "name of 1 to %d bytes",
                         name, w->path, TAR_NAME_MAX);
        return OZ_EINVAL;
    }
    if (size > MAX_SIZE_OCTAL) {
        oz_errmsg_printf(errmsg, "cannot add '%s' to archive '%s': too large",
                         name, w->path);
        return OZ_ETOOBIG;
    }
    memset(h, 0, sizeof(h));
    memcpy(h, name, strlen(name));
    octal((char *)h + 100, 8, 0644);
    octal((char *)h + 108, 8, 0);
    octal((char *)h + 116, 8, 0);
    octal((char *)h + 124, 12, size);
    octal((char *)h + 136, 12, 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    for (size_t i = 0; i < TAR_BLOCK; i++) {
        sum += h[i];
    }
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    return write_all(w, h, sizeof(h), errmsg);
}

static int write_padding(struct tar_writer *w, uint64_t size, char *errmsg)
{
    static const char zeros[TAR_BLOCK];
    size_t pad = (size_t)((TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK);

    return pad == 0 ? 0 : write_all(w, zeros, pad, errmsg);
}

int tar_writer_add_data(struct tar_writer *w,
                        const char *name,
                        const void *data,
                        size_t len,
                        char *errmsg)
{
    int rc = write_header(w, name, len, errmsg);

    if (rc == 0 && len > 0) {
        rc = write_all(w, data, len, errmsg);
    }
    return rc == 0 ? write_padding(w, len, errmsg) : rc;
}

int tar_writer_add_file(struct tar_writer *w,
                        const char *name,
                        const char *src_path,
                        char *errmsg)
{
    struct stat st;
    char *buf = NULL;
    uint64_t left;
    int rc;
    int fd = open(src_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        oz_errmsg_printf(errmsg, "cannot archive '%s': %s", src_path,
                         fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) {
            close(fd);
        }
        return OZ_EIO;
    }
    buf = malloc(COPY_BUF);
    if (buf == NULL) {
        close(fd);
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    left = (uint64_t)st.st_size;
    rc = write_header(w, name, left, errmsg);
    while (rc == 0 && left > 0) {
        size_t want = left < COPY_BUF ? (size_t)left : COPY_BUF;
        ssize_t n = read(fd, buf, want);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            /* The file shrank under us: the header already promised its
             * size, so the archive would be malformed. */
            oz_errmsg_printf(errmsg, "cannot archive '%s': %s", src_path,
                             n < 0 ? strerror(errno) : "file shrank");
            rc = OZ_EIO;
            break;
        }
        rc = write_all(w, buf, (size_t)n, errmsg);
        left -= (uint64_t)n;
    }
    free(buf);
    close(fd);
    return rc == 0 ? write_padding(w, (uint64_t)st.st_size, errmsg) : rc;
}

uint32_t tar_writer_crc(const struct tar_writer *w)
{
    return w->crc;
}

uint64_t tar_writer_offset(const struct tar_writer *w)
{
    return w->offset;
}

int tar_writer_finish(struct tar_writer *w, char *errmsg)
{
    static const char zeros[2 * TAR_BLOCK];
    int rc = write_all(w, zeros, sizeof(zeros), errmsg);

    if (rc == 0 && fsync(w->fd) != 0) {
        oz_errmsg_printf(errmsg, "cannot sync archive '%s': %s", w->path,
                         strerror(errno));
        rc = OZ_EIO;
    }
    if (close(w->fd) != 0 && rc == 0) {
        oz_errmsg_printf(errmsg, "cannot close archive '%s': %s", w->path,
                         strerror(errno));
        rc = OZ_EIO;
    }
    w->fd = -1;
    return rc;
}

void tar_writer_free(struct tar_writer *w)
{
    if (w == NULL) {
        return;
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    free(w->path);
    free(w);
}

/* ---- reader ---- */

static int read_full(int fd, void *buf, size_t len, size_t *got)
{
    char *p = buf;

    *got = 0;
    while (*got < len) {
        ssize_t n = read(fd, p + *got, len - *got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return OZ_EIO;
        }
        if (n == 0) {
            break;
        }
        *got += (size_t)n;
    }
    return 0;
}

/* Parses an octal field: optional leading spaces, digits, then NUL or
 * spaces. Base-256 (GNU) sizes are refused. */
static int parse_octal(const unsigned char *f, size_t width, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    bool digits = false;

    while (i < width && f[i] == ' ') {
        i++;
    }
    for (; i < width && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v > (UINT64_MAX >> 3)) {
            return OZ_ECORRUPT;
        }
        v = (v << 3) | (uint64_t)(f[i] - '0');
        digits = true;
    }
    for (; i < width; i++) {
        if (f[i] != ' ' && f[i] != '\0') {
            return OZ_ECORRUPT;
        }
    }
    if (!digits) {
        return OZ_ECORRUPT;
    }
    *out = v;
    return 0;
}

static bool all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Checks one header block; fills e (name, size). */
static int parse_header(const unsigned char *h,
                        const char *path,
                        uint64_t off,
                        struct tar_entry *e,
                        char *errmsg)
{
    uint64_t stored = 0;
    unsigned sum = 0;

    for (size_t i = 0; i < TAR_BLOCK; i++) {
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    }
    if (parse_octal(h + 148, 8, &stored) != 0 || stored != sum) {
        oz_errmsg_printf(errmsg,
                         "archive '%s' is corrupt: bad header checksum at "
                         "offset %llu",
                         path, (unsigned long long)off);
        return OZ_ECORRUPT;
    }
    if (memcmp(h + 257, "ustar", 5) != 0) {
        oz_errmsg_printf(errmsg,
                         "archive '%s' is not a ustar archive (offset %llu)",
                         path, (unsigned long long)off);
        return OZ_ECORRUPT;
    }
    if (h[156] != '0' && h[156] != '\0') {
        oz_errmsg_printf(errmsg,
                         "archive '%s': member at offset %llu is not a "
                         "regular file (type '%c'); refused",
                         path, (unsigned long long)off,
                         h[156] >= 0x20 && h[156] < 0x7f ? h[156] : '?');
        return OZ_ECORRUPT;
    }
    memset(e, 0, sizeof(*e));
    memcpy(e->name, h, TAR_NAME_MAX);
    /* A name of exactly 100 bytes has no NUL in the field: refused. */
    if (h[TAR_NAME_MAX] != '\0' || h[345] != '\0' || !tar_name_ok(e->name)) {
        char shown[64];
        size_t k = 0;
        for (size_t i = 0; i < 100 && h[i] != '\0' && k + 1 < sizeof(shown);
             i++) {
            shown[k++] = (h[i] >= 0x20 && h[i] < 0x7f) ? (char)h[i] : '?';
        }
        shown[k] = '\0';
        oz_errmsg_printf(errmsg,
                         "archive '%s': member name '%s' is refused: only "
                         "plain file names (no '/', no '..')",
                         path, shown);
        return OZ_ECORRUPT;
    }
    if (parse_octal(h + 124, 12, &e->size) != 0) {
        oz_errmsg_printf(errmsg, "archive '%s': bad size of member '%s'", path,
                         e->name);
        return OZ_ECORRUPT;
    }
    e->header_offset = off;
    e->data_offset = off + TAR_BLOCK;
    return 0;
}

static int push_entry(struct tar_entry **v,
                      size_t *n,
                      size_t *cap,
                      const struct tar_entry *e)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct tar_entry *nv = realloc(*v, nc * sizeof(*nv));
        if (nv == NULL) {
            return OZ_ENOMEM;
        }
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = *e;
    return 0;
}

int tar_list(const char *path,
             const struct tar_limits *lim,
             struct tar_entry **entries,
             size_t *n,
             char *errmsg)
{
    uint64_t max_member = lim && lim->max_member_bytes ? lim->max_member_bytes
                                                       : DEFAULT_MAX_MEMBER;
    uint64_t max_total =
        lim && lim->max_total_bytes ? lim->max_total_bytes : DEFAULT_MAX_TOTAL;
    size_t max_members =
        lim && lim->max_members ? lim->max_members : DEFAULT_MAX_MEMBERS;
    struct tar_entry *v = NULL;
    size_t nv = 0, cap = 0;
    uint64_t off = 0, total = 0, file_size;
    unsigned char h[TAR_BLOCK];
    struct stat st;
    size_t got;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *entries = NULL;
    *n = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        oz_errmsg_printf(errmsg, "cannot read archive '%s': %s", path,
                         strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return OZ_EIO;
    }
    file_size = (uint64_t)st.st_size;
    for (;;) {
        struct tar_entry e;
        if (read_full(fd, h, TAR_BLOCK, &got) != 0) {
            oz_errmsg_printf(errmsg, "cannot read archive '%s': %s", path,
                             strerror(errno));
            rc = OZ_EIO;
            break;
        }
        if (got < TAR_BLOCK) {
            oz_errmsg_printf(errmsg,
                             "archive '%s' is truncated at offset %llu (no "
                             "end-of-archive marker)",
                             path, (unsigned long long)(off + got));
            rc = OZ_ECORRUPT;
            break;
        }
        if (all_zero(h, TAR_BLOCK)) {
            /* End of archive: a second zero block must follow. */
            if (read_full(fd, h, TAR_BLOCK, &got) != 0 || got < TAR_BLOCK ||
                !all_zero(h, TAR_BLOCK)) {
                oz_errmsg_printf(errmsg,
                                 "archive '%s' is truncated: incomplete "
                                 "end-of-archive marker at offset %llu",
                                 path, (unsigned long long)off);
                rc = OZ_ECORRUPT;
            }
            break;
        }
        rc = parse_header(h, path, off, &e, errmsg);
        if (rc != 0) {
            break;
        }
        if (e.size > max_member || total + e.size > max_total ||
            nv + 1 > max_members) {
            oz_errmsg_printf(errmsg,
                             "archive '%s': member '%s' (%llu bytes) is over "
                             "the limits (%llu bytes per member, %llu in "
                             "all, %zu members)",
                             path, e.name, (unsigned long long)e.size,
                             (unsigned long long)max_member,
                             (unsigned long long)max_total, max_members);
            rc = OZ_ETOOBIG;
            break;
        }
        for (size_t i = 0; i < nv; i++) {
            if (strcmp(v[i].name, e.name) == 0) {
                oz_errmsg_printf(errmsg,
                                 "archive '%s': member '%s' appears twice",
                                 path, e.name);
                rc = OZ_ECORRUPT;
                break;
            }
        }
        if (rc != 0) {
            break;
        }
        uint64_t padded = (e.size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
        if (e.data_offset + padded > file_size) {
            oz_errmsg_printf(errmsg,
                             "archive '%s' is truncated: member '%s' needs "
                             "%llu bytes, %llu present",
                             path, e.name, (unsigned long long)e.size,
                             (unsigned long long)(file_size - e.data_offset));
            rc = OZ_ECORRUPT;
            break;
        }
        if ((rc = push_entry(&v, &nv, &cap, &e)) != 0) {
            oz_errmsg_printf(errmsg, "out of memory");
            break;
        }
        total += e.size;
        off = e.data_offset + padded;
        if (lseek(fd, (off_t)off, SEEK_SET) < 0) {
            oz_errmsg_printf(errmsg, "cannot seek in archive '%s': %s", path,
                             strerror(errno));
            rc = OZ_EIO;
            break;
        }
    }
    close(fd);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *entries = v;
    *n = nv;
    return 0;
}

int tar_read_member(const char *path,
                    const struct tar_entry *e,
                    size_t max,
                    char **out,
                    char *errmsg)
{
    char *buf;
    size_t got;
    int fd;

    *out = NULL;
    if (e->size > max) {
        oz_errmsg_printf(errmsg, "archive '%s': member '%s' is too large", path,
                         e->name);
        return OZ_ETOOBIG;
    }
    buf = malloc((size_t)e->size + 1);
    if (buf == NULL) {
        return OZ_ENOMEM;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || lseek(fd, (off_t)e->data_offset, SEEK_SET) < 0 ||
        read_full(fd, buf, (size_t)e->size, &got) != 0 || got != e->size) {
        oz_errmsg_printf(errmsg, "cannot read member '%s' of '%s'", e->name,
                         path);
        if (fd >= 0) {
            close(fd);
        }
        free(buf);
        return OZ_EIO;
    }
    close(fd);
    buf[e->size] = '\0';
    *out = buf;
    return 0;
}

int tar_file_crc(const char *path, uint64_t len, uint32_t *crc, char *errmsg)
{
    char *buf = malloc(COPY_BUF);
    uint32_t c = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *crc = 0;
    if (buf == NULL || fd < 0) {
        oz_errmsg_printf(errmsg, "cannot read archive '%s'", path);
        free(buf);
        if (fd >= 0) {
            close(fd);
        }
        return buf == NULL ? OZ_ENOMEM : OZ_EIO;
    }
    while (len > 0) {
        size_t got;
        size_t want = len < COPY_BUF ? (size_t)len : COPY_BUF;
        if (read_full(fd, buf, want, &got) != 0 || got != want) {
            oz_errmsg_printf(errmsg, "archive '%s' is shorter than expected",
                             path);
            rc = OZ_EIO;
            break;
        }
        c = crc32c(c, buf, got);
        len -= got;
    }
    close(fd);
    free(buf);
    if (rc == 0) {
        *crc = c;
    }
    return rc;
}

static int extract_one(int in,
                       const struct tar_entry *e,
                       int dir_fd,
                       const char *dest_dir,
                       char *buf,
                       char *errmsg)
{
    uint64_t left = e->size;
    int rc = 0;
    int out =
        openat(dir_fd, e->name,
               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

    if (out < 0) {
        oz_errmsg_printf(errmsg, "cannot create '%s/%s': %s", dest_dir, e->name,
                         strerror(errno));
        return errno == EEXIST ? OZ_EEXIST : OZ_EIO;
    }
    if (lseek(in, (off_t)e->data_offset, SEEK_SET) < 0) {
        rc = OZ_EIO;
    }
    while (rc == 0 && left > 0) {
        size_t got;
        size_t want = left < COPY_BUF ? (size_t)left : COPY_BUF;
        if (read_full(in, buf, want, &got) != 0 || got != want) {
            rc = OZ_EIO;
            break;
        }
        for (size_t done = 0; done < got;) {
            ssize_t n = write(out, buf + done, got - done);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                rc = OZ_EIO;
                break;
            }
            done += (size_t)n;
        }
        left -= got;
    }
    if (rc == 0 && fsync(out) != 0) {
        rc = OZ_EIO;
    }
    if (close(out) != 0 && rc == 0) {
        rc = OZ_EIO;
    }
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot extract '%s' into '%s': %s", e->name,
                         dest_dir, strerror(errno));
    }
    return rc;
}

int tar_extract(const char *path,
                const struct tar_entry *entries,
                size_t n,
                const char *dest_dir,
                const char *skip,
                char *errmsg)
{
    char *buf = malloc(COPY_BUF);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    int dir_fd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (buf == NULL || in < 0 || dir_fd < 0) {
        oz_errmsg_printf(errmsg, "cannot extract '%s' into '%s': %s", path,
                         dest_dir,
                         buf == NULL ? "out of memory" : strerror(errno));
        rc = buf == NULL ? OZ_ENOMEM : OZ_EIO;
        goto out;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* tar_list checked the names; check again, the entries may come
         * from elsewhere. */
        if (!tar_name_ok(entries[i].name)) {
            oz_errmsg_printf(errmsg, "refusing to extract member '%s'",
                             entries[i].name);
            rc = OZ_EINVAL;
            break;
        }
        if (skip != NULL && strcmp(entries[i].name, skip) == 0) {
            continue;
        }
        rc = extract_one(in, &entries[i], dir_fd, dest_dir, buf, errmsg);
    }
    if (rc == 0 && fsync(dir_fd) != 0) {
        oz_errmsg_printf(errmsg, "cannot sync '%s': %s", dest_dir,
                         strerror(errno));
        rc = OZ_EIO;
    }
out:
    if (dir_fd >= 0) {
        close(dir_fd);
    }
    if (in >= 0) {
        close(in);
    }
    free(buf);
    return rc;
}
