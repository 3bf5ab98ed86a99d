/* The datanode's container set (DESIGN.md §7): container records and
 * their state machine, creation on first write on a round-robin healthy
 * data directory, and CLOSE_CONTAINER. Opening and the start-up check are
 * in dn_store.c, reports and pipelines in dn_report.c, chunks and blocks
 * in dn_block.c. Locking is described in dn_internal.h. */
#include "dn_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

const char *const dn_kv_cfs[DN_N_KV_CFS] = {DN_CF_CONTAINERS, DN_CF_BLOCKS,
                                            DN_CF_PIPELINES};

/* Container record: "DNC1", state, 3 pad bytes, used bytes, block count,
 * pipeline id length, volume path length (all big-endian), then the two
 * strings. Our own framing so the record names its volume. */
#define REC_MAGIC "DNC1"
#define REC_FIXED (4 + 4 + 8 + 8 + 2 + 2)

const char *dn_state_name(Ozone__Hdds__ContainerState st)
{
    switch (st) {
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN:
            return "OPEN";
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING:
            return "CLOSING";
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED:
            return "CLOSED";
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY:
            return "UNHEALTHY";
        default:
            return "UNSPECIFIED";
    }
}

int dn__fail(struct dn_result *res,
             int rc,
             Ozone__ResultCode code,
             const char *fmt,
             ...)
{
    va_list ap;

    res->code = code;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- encoding ---- */

void dn__put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

uint64_t dn__get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

void dn__container_record_put(struct dn_store *s,
                              struct dn_container *c,
                              struct kv_batch *b)
{
    const char *vol = c->volume >= 0 ? s->volumes[c->volume].path : "";
    size_t plen = strlen(c->pipeline_id);
    size_t vlen = strlen(vol);
    uint8_t buf[REC_FIXED + DN_MAX_NAME + DN_MAX_DIR_LEN + 1];
    uint8_t key[8];

    memcpy(buf, REC_MAGIC, 4);
    buf[4] = (uint8_t)c->state;
    buf[5] = buf[6] = buf[7] = 0;
    dn__put_be64(buf + 8, c->used_bytes);
    dn__put_be64(buf + 16, c->block_count);
    buf[24] = (uint8_t)(plen >> 8);
    buf[25] = (uint8_t)plen;
    buf[26] = (uint8_t)(vlen >> 8);
    buf[27] = (uint8_t)vlen;
    memcpy(buf + REC_FIXED, c->pipeline_id, plen);
    memcpy(buf + REC_FIXED + plen, vol, vlen);
    dn__put_be64(key, c->id);
    kv_batch_put(b, s->cf_containers, key, sizeof(key), buf,
                 REC_FIXED + plen + vlen);
}

/* Decodes a record into c (volume path into vol). OZ_ECORRUPT when any
 * length or the state is out of range: the bytes come from disk. */
int dn__record_decode(const uint8_t *v,
                      size_t len,
                      struct dn_container *c,
                      char *vol,
                      size_t vol_size)
{
    if (len < REC_FIXED || memcmp(v, REC_MAGIC, 4) != 0) {
        return OZ_ECORRUPT;
    }
    size_t plen = (size_t)v[24] << 8 | v[25];
    size_t vlen = (size_t)v[26] << 8 | v[27];
    if (plen >= DN_MAX_NAME || vlen >= vol_size ||
        len != REC_FIXED + plen + vlen) {
        return OZ_ECORRUPT;
    }
    switch (v[4]) {
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN:
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING:
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED:
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY:
            c->state = (Ozone__Hdds__ContainerState)v[4];
            break;
        default:
            return OZ_ECORRUPT;
    }
    c->used_bytes = dn__get_be64(v + 8);
    c->block_count = dn__get_be64(v + 16);
    memcpy(c->pipeline_id, v + REC_FIXED, plen);
    c->pipeline_id[plen] = '\0';
    memcpy(vol, v + REC_FIXED + plen, vlen);
    vol[vlen] = '\0';
    return 0;
}

/* ---- paths and directories ---- */

int dn__container_dir(const struct dn_store *s,
                      const struct dn_container *c,
                      char *out,
                      size_t size)
{
    if (c->volume < 0) {
        return OZ_ENOTFOUND;
    }
    int n = snprintf(out, size, "%s/%llu", s->volumes[c->volume].root,
                     (unsigned long long)c->id);
    return n < 0 || (size_t)n >= size ? OZ_ETOOBIG : 0;
}

int dn__block_path(const struct dn_store *s,
                   const struct dn_container *c,
                   uint64_t local_id,
                   char *out,
                   size_t size)
{
    if (c->volume < 0) {
        return OZ_ENOTFOUND;
    }
    int n = snprintf(out, size, "%s/%llu/chunks/%llu.block",
                     s->volumes[c->volume].root, (unsigned long long)c->id,
                     (unsigned long long)local_id);
    return n < 0 || (size_t)n >= size ? OZ_ETOOBIG : 0;
}

int dn__fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        return OZ_EIO;
    }
    int rc = fsync(fd) == 0 ? 0 : OZ_EIO;
    close(fd);
    return rc;
}

/* mkdir -p; 0 or OZ_EIO with errno kept. */
int dn__mkdir_p(const char *path)
{
    char tmp[PATH_MAX];

    if (oz_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return OZ_EIO;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return OZ_EIO;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        return OZ_EIO;
    }
    return 0;
}

bool dn__dir_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- the container set ---- */

struct dn_container *dn__container_new(uint64_t id, int volume)
{
    struct dn_container *c = calloc(1, sizeof(*c));
    pthread_rwlockattr_t attr;

    if (c == NULL) {
        return NULL;
    }
    c->id = id;
    c->volume = volume;
    c->state = OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN;
    /* Prefer the writer so a close is not starved by a stream of writes. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->io_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&c->meta_lock, NULL);
    return c;
}

void dn__container_free(struct dn_container *c)
{
    pthread_rwlock_destroy(&c->io_lock);
    pthread_mutex_destroy(&c->meta_lock);
    free(c);
}

/* Index of the first container with id >= id. Caller holds set_lock. */
static size_t lower_bound(const struct dn_store *s, uint64_t id)
{
    size_t lo = 0, hi = s->n_containers;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->containers[mid]->id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

struct dn_container *dn__find_locked(const struct dn_store *s, uint64_t id)
{
    size_t i = lower_bound(s, id);

    return i < s->n_containers && s->containers[i]->id == id ? s->containers[i]
                                                             : NULL;
}

/* Inserts c (id not present). Caller holds set_lock for writing. */
int dn__insert_locked(struct dn_store *s, struct dn_container *c)
{
    if (s->n_containers == s->cap_containers) {
        if (s->cap_containers >= DN_MAX_CONTAINERS) {
            return OZ_ETOOBIG;
        }
        size_t cap = s->cap_containers ? s->cap_containers * 2 : 64;
        struct dn_container **n =
            realloc(s->containers, cap * sizeof(*s->containers));
        if (n == NULL) {
            return OZ_ENOMEM;
        }
        s->containers = n;
        s->cap_containers = cap;
    }
    size_t i = lower_bound(s, c->id);
    memmove(s->containers + i + 1, s->containers + i,
            (s->n_containers - i) * sizeof(*s->containers));
    s->containers[i] = c;
    s->n_containers++;
    dn__metric_state(c->state, 1);
    return 0;
}

struct dn_container *dn_store_find(struct dn_store *s, uint64_t id)
{
    pthread_rwlock_rdlock(&s->set_lock);
    struct dn_container *c = dn__find_locked(s, id);
    pthread_rwlock_unlock(&s->set_lock);
    return c;
}

/* Writes c's record with a synced write. Caller holds c->meta_lock (or
 * owns c alone). */
int dn__persist(struct dn_store *s, struct dn_container *c, char *errmsg)
{
    struct kv_batch *b = kv_batch_new();

    if (b == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    dn__container_record_put(s, c, b);
    int rc = kv_write(s->kv, b, true, errmsg);
    kv_batch_free(b);
    return rc;
}

/* The one function that moves a container's state (CONVENTIONS.md: state
 * machines). OPEN -> CLOSING -> CLOSED; any -> UNHEALTHY. Caller holds
 * c->meta_lock. Logs the transition; does not persist. */
int dn__set_state(struct dn_container *c,
                  Ozone__Hdds__ContainerState to,
                  const char *why)
{
    Ozone__Hdds__ContainerState from = c->state;
    bool ok = false;

    switch (to) {
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING:
            ok = from == OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN;
            break;
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED:
            ok = from == OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING;
            break;
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY:
            ok = from != OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY;
            break;
        default:
            break;
    }
    if (!ok) {
        return OZ_ESTATE;
    }
    c->state = to;
    dn__metric_state(from, -1);
    dn__metric_state(to, 1);
    log_info("container %llu: %s -> %s (%s)", (unsigned long long)c->id,
             dn_state_name(from), dn_state_name(to), why);
    return 0;
}

/* Picks the next healthy volume round-robin and creates the container's
 * directories there, fsyncing the parents so the directory survives a
 * crash. A volume that fails is marked failed. Caller holds set_lock. */
static int create_dirs_locked(struct dn_store *s,
                              uint64_t id,
                              int *volume,
                              struct dn_result *res)
{
    char path[PATH_MAX];

    for (size_t tries = 0; tries < s->n_volumes; tries++) {
        size_t v = s->next_volume++ % s->n_volumes;
        struct dn_volume *vol = &s->volumes[v];
        if (vol->failed) {
            continue;
        }
        int n = snprintf(path, sizeof(path), "%s/%llu/chunks", vol->root,
                         (unsigned long long)id);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            continue;
        }
        if (dn__mkdir_p(path) == 0) {
            char *slash = strrchr(path, '/');
            *slash = '\0';
            if (dn__fsync_dir(path) == 0 && dn__fsync_dir(vol->root) == 0) {
                *volume = (int)v;
                return 0;
            }
        }
        vol->failed = true;
        log_error(
            "data directory '%s' failed: cannot create container %llu "
            "in it (%s); no new containers go there",
            vol->path, (unsigned long long)id, strerror(errno));
    }
    return dn__fail(res, OZ_EIO, OZONE__RESULT_CODE__IO_EXCEPTION,
                    "cannot create container %llu: no healthy data "
                    "directory on datanode '%s'",
                    (unsigned long long)id, s->node_id);
}

/* Creates container id in state st. Caller holds set_lock for writing
 * and has checked that id is absent. */
static int create_locked(struct dn_store *s,
                         uint64_t id,
                         const char *pipeline_id,
                         Ozone__Hdds__ContainerState st,
                         struct dn_container **out,
                         struct dn_result *res)
{
    int volume = -1;
    int rc = create_dirs_locked(s, id, &volume, res);

    if (rc != 0) {
        return rc;
    }
    struct dn_container *c = dn__container_new(id, volume);
    if (c == NULL) {
        return dn__fail(res, OZ_ENOMEM, OZONE__RESULT_CODE__INTERNAL_ERROR,
                        "out of memory");
    }
    c->state = st;
    oz_strlcpy(c->pipeline_id, pipeline_id, sizeof(c->pipeline_id));
    rc = dn__persist(s, c, res->msg);
    if (rc == 0) {
        rc = dn__insert_locked(s, c);
    }
    if (rc != 0) {
        dn__container_free(c);
        return dn__fail(res, rc, OZONE__RESULT_CODE__IO_EXCEPTION,
                        "cannot record container %llu: %s",
                        (unsigned long long)id, oz_strerror(rc));
    }
    log_info("container %llu created %s on '%s' (pipeline '%s')",
             (unsigned long long)id, dn_state_name(st), s->volumes[volume].path,
             pipeline_id);
    *out = c;
    return 0;
}

int dn_store_get_or_create(struct dn_store *s,
                           uint64_t id,
                           const char *pipeline_id,
                           struct dn_container **out,
                           struct dn_result *res)
{
    struct dn_container *c = dn_store_find(s, id);
    int rc = 0;

    if (c != NULL) {
        *out = c;
        return 0;
    }
    if (id == 0) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "invalid container id 0");
    }
    pthread_rwlock_wrlock(&s->set_lock);
    c = dn__find_locked(s, id);
    if (c == NULL) {
        rc = create_locked(s, id, pipeline_id != NULL ? pipeline_id : "",
                           OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN, &c,
                           res);
    }
    pthread_rwlock_unlock(&s->set_lock);
    if (rc == 0) {
        *out = c;
    }
    return rc;
}

/* fsyncs every block file of the container (writes since the last
 * PutBlock are not yet durable) and the chunks directory. */
static int sync_container_files(struct dn_store *s, struct dn_container *c)
{
    char cdir[PATH_MAX], dir[PATH_MAX], path[PATH_MAX];
    int rc = dn__container_dir(s, c, cdir, sizeof(cdir));

    if (rc != 0) {
        return OZ_EIO;
    }
    int len = snprintf(dir, sizeof(dir), "%s/chunks", cdir);
    if (len < 0 || (size_t)len >= sizeof(dir)) {
        return OZ_EIO;
    }
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        return OZ_EIO;
    }
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        int n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            rc = OZ_EIO;
            continue;
        }
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0) {
            rc = OZ_EIO;
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    closedir(dh);
    if (dn__fsync_dir(dir) != 0) {
        rc = OZ_EIO;
    }
    return rc;
}

static int close_existing(struct dn_store *s,
                          struct dn_container *c,
                          struct dn_result *res)
{
    int rc = 0;

    /* Exclusive io_lock: in-flight WriteChunk/PutBlock finish first and
     * none starts until the state says CLOSING. */
    pthread_rwlock_wrlock(&c->io_lock);
    pthread_mutex_lock(&c->meta_lock);
    if (c->state == OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN) {
        dn__set_state(c, OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING,
                      "close command from SCM");
    }
    bool closing = c->state == OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING;
    pthread_mutex_unlock(&c->meta_lock);
    if (closing) {
        rc = sync_container_files(s, c);
        pthread_mutex_lock(&c->meta_lock);
        if (rc != 0) {
            dn__set_state(c, OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY,
                          "cannot fsync its block files while closing");
        } else {
            dn__set_state(c, OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED,
                          "block files synced");
        }
        rc = dn__persist(s, c, res->msg);
        pthread_mutex_unlock(&c->meta_lock);
        if (rc != 0) {
            oz_errmsg_wrapf(res->msg, "cannot persist container %llu",
                            (unsigned long long)c->id);
            res->code = OZONE__RESULT_CODE__IO_EXCEPTION;
        }
    }
    pthread_rwlock_unlock(&c->io_lock);
    if (closing && rc == 0 &&
        c->state == OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED) {
        dn__checksum_on_close(s, c);
    }
    return rc;
}

int dn_store_close_container(struct dn_store *s,
                             uint64_t id,
                             struct dn_result *res)
{
    struct dn_container *c = dn_store_find(s, id);
    int rc = 0;

    if (c != NULL) {
        return close_existing(s, c, res);
    }
    if (id == 0) {
        return dn__fail(res, OZ_EINVAL, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                        "invalid container id 0");
    }
    /* Never written here (containers are created on first write): record
     * it empty and CLOSED so SCM sees the replica it asked to close. */
    pthread_rwlock_wrlock(&s->set_lock);
    c = dn__find_locked(s, id);
    if (c == NULL) {
        rc = create_locked(
            s, id, "", OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED, &c, res);
        pthread_rwlock_unlock(&s->set_lock);
        return rc;
    }
    pthread_rwlock_unlock(&s->set_lock);
    return close_existing(s, c, res);
}
