/* tar: a small ustar (POSIX.1-1988) writer and reader for RocksDB
 * checkpoints sent over HTTP (OM /dbCheckpoint -> Recon; DESIGN.md §8,
 * §9).
 *
 * Only what a checkpoint needs: regular files with plain names (no
 * directories, links or devices), sizes below 8 GiB (11 octal digits).
 * The reader treats the archive as outside input (CONVENTIONS.md
 * "Ownership and memory"): every header checksum, size and name is checked
 * before use, names must be plain file names (no '/', not "." or "..",
 * hence no absolute paths and no traversal), and sizes and counts are
 * capped by the caller's limits. A truncated archive (short member, no
 * end-of-archive blocks) is OZ_ECORRUPT, never a partial success.
 */
#ifndef OZONE_TAR_H
#define OZONE_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAR_BLOCK 512
/* The checkpoint convention shared by OM (/dbCheckpoint) and Recon: the
 * last member of the archive is this text file, lines "key=value":
 * sequence (the DB's sequence number the checkpoint holds at least),
 * crc32c (8 hex digits: CRC32C of every archive byte before this member's
 * header), length (that byte count), files (members before it). */
#define TAR_CHECKPOINT_TRAILER "OZONE-CHECKPOINT"
/* ustar's name field; longer names are refused by the writer. */
#define TAR_NAME_MAX 99

struct tar_writer;

/* Creates (truncates) the archive at path. 0, or OZ_EIO / OZ_ENOMEM with
 * errmsg. *out is freed with tar_writer_free(). */
int tar_writer_open(struct tar_writer **out, const char *path, char *errmsg);

/* Appends the regular file src_path as member name. OZ_EINVAL for a bad
 * name, OZ_EIO with errmsg. */
int tar_writer_add_file(struct tar_writer *w,
                        const char *name,
                        const char *src_path,
                        char *errmsg);

/* Appends len bytes of data (borrowed) as member name. */
int tar_writer_add_data(struct tar_writer *w,
                        const char *name,
                        const void *data,
                        size_t len,
                        char *errmsg);

/* CRC32C (common/checksum.h) of every archive byte written so far, and
 * their count: what a trailer member can carry so that a reader detects a
 * corrupt download. */
uint32_t tar_writer_crc(const struct tar_writer *w);
uint64_t tar_writer_offset(const struct tar_writer *w);

/* Writes the end-of-archive blocks, fsyncs and closes. 0 or OZ_EIO. */
int tar_writer_finish(struct tar_writer *w, char *errmsg);

/* Closes without finishing when still open (the file stays, truncated);
 * w may be NULL. */
void tar_writer_free(struct tar_writer *w);

/* Caps for reading outside input; 0 means the default in brackets. */
struct tar_limits
{
    uint64_t max_member_bytes; /* one member [4 GiB] */
    uint64_t max_total_bytes;  /* sum of members [64 GiB] */
    size_t max_members;        /* [100000] */
};

struct tar_entry
{
    char name[TAR_NAME_MAX + 1];
    uint64_t size;
    uint64_t header_offset; /* of the member's header block */
    uint64_t data_offset;
};

/* Reads and checks the whole archive at path (headers, names, sizes, the
 * data present, the end-of-archive marker). On success *entries (caller
 * frees with free()) holds *n members in archive order. OZ_ECORRUPT with
 * errmsg for a malformed or truncated archive or a refused name,
 * OZ_ETOOBIG over a limit, OZ_EIO. lim may be NULL (defaults). */
int tar_list(const char *path,
             const struct tar_limits *lim,
             struct tar_entry **entries,
             size_t *n,
             char *errmsg);

/* Reads member e of the archive at path into a malloc'd NUL-terminated
 * buffer (caller frees) when e->size <= max. OZ_ETOOBIG, OZ_EIO. */
int tar_read_member(const char *path,
                    const struct tar_entry *e,
                    size_t max,
                    char **out,
                    char *errmsg);

/* CRC32C of the first len bytes of the file at path (for trailers that
 * cover "everything before me"). OZ_EIO when shorter. */
int tar_file_crc(const char *path, uint64_t len, uint32_t *crc, char *errmsg);

/* Extracts the members listed by tar_list (entries, n) from the archive at
 * path into dest_dir, which must exist and be empty of those names (files
 * are created with O_EXCL, never followed through links), fsyncing each
 * file and the directory. skip (may be NULL) names one member not to
 * extract. 0, or OZ_EIO / OZ_EEXIST with errmsg. */
int tar_extract(const char *path,
                const struct tar_entry *entries,
                size_t n,
                const char *dest_dir,
                const char *skip,
                char *errmsg);

/* Whether name is acceptable as a member name (plain file name). */
bool tar_name_ok(const char *name);

#endif
