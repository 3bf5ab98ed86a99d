/* Opening the datanode's container store (DESIGN.md §7): data
 * directories, loading container records, and the start-up check that
 * every container directory has its record and vice versa. What is
 * inconsistent is logged and marked UNHEALTHY, never fatal: a datanode
 * with one bad container still serves the others. */
#include "dn_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* ---- start-up: volumes, load, consistency check ---- */

static int init_volumes(struct dn_store *s,
                        const struct dn_store_config *cfg,
                        char *errmsg)
{
    size_t healthy = 0;

    if (cfg->n_data_dirs == 0 || cfg->n_data_dirs > DN_MAX_VOLUMES) {
        oz_errmsg_printf(errmsg,
                         "invalid 'hdds.datanode.dir': expected 1 to %d "
                         "directories, got %zu",
                         DN_MAX_VOLUMES, cfg->n_data_dirs);
        return OZ_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_data_dirs; i++) {
        struct dn_volume *v = &s->volumes[i];
        const char *p = cfg->data_dirs[i];
        if (p[0] == '\0' || strlen(p) > DN_MAX_DIR_LEN) {
            oz_errmsg_printf(errmsg,
                             "invalid data directory '%.64s' in "
                             "'hdds.datanode.dir': empty or too long",
                             p);
            return OZ_EINVAL;
        }
        oz_strlcpy(v->path, p, sizeof(v->path));
        snprintf(v->root, sizeof(v->root), "%s/hdds/%s/containers", p,
                 s->cluster_id);
        if (dn__mkdir_p(v->root) != 0 || access(v->root, W_OK) != 0) {
            v->failed = true;
            log_error(
                "data directory '%s' is not usable (%s); it is marked "
                "failed: fix it and restart the datanode",
                p, strerror(errno));
        } else {
            healthy++;
        }
    }
    s->n_volumes = cfg->n_data_dirs;
    if (healthy == 0) {
        oz_errmsg_printf(errmsg,
                         "no usable data directory in 'hdds.datanode.dir' "
                         "(first: '%s'): check that it exists and is "
                         "writable",
                         s->volumes[0].path);
        return OZ_EIO;
    }
    return 0;
}

static int volume_index(const struct dn_store *s, const char *path)
{
    for (size_t i = 0; i < s->n_volumes; i++) {
        if (strcmp(s->volumes[i].path, path) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Marks c UNHEALTHY at start-up; persisted when durable says so. */
static void mark_unhealthy(struct dn_store *s,
                           struct dn_container *c,
                           const char *why,
                           bool durable)
{
    char err[OZ_ERRMSG_SIZE];

    if (dn__set_state(c, OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY,
                      why) == 0 &&
        durable && dn__persist(s, c, err) != 0) {
        log_error("container %llu: cannot persist UNHEALTHY: %s",
                  (unsigned long long)c->id, err);
    }
}

static int load_one(struct dn_store *s,
                    const void *key,
                    size_t klen,
                    const void *val,
                    size_t vlen)
{
    char vol[DN_MAX_DIR_LEN + 1];
    uint64_t id;

    if (klen != 8) {
        log_error("containerTable holds a key of %zu bytes; ignored", klen);
        return 0;
    }
    id = dn__get_be64(key);
    struct dn_container *c = dn__container_new(id, -1);
    if (c == NULL) {
        return OZ_ENOMEM;
    }
    if (dn__record_decode(val, vlen, c, vol, sizeof(vol)) != 0) {
        log_error(
            "container %llu: its record is corrupt (%zu bytes); "
            "container marked UNHEALTHY",
            (unsigned long long)id, vlen);
        c->state = OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY;
    } else {
        c->volume = volume_index(s, vol);
        if (c->volume < 0) {
            log_error(
                "container %llu: its data directory '%s' is not in "
                "'hdds.datanode.dir'; container marked UNHEALTHY",
                (unsigned long long)id, vol);
            c->state = OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY;
        }
    }
    int rc = dn__insert_locked(s, c);
    if (rc != 0) {
        dn__container_free(c);
    }
    return rc;
}

static int load_containers(struct dn_store *s, char *errmsg)
{
    struct kv_iter *it = kv_iter_new(s->kv, s->cf_containers);
    int rc = 0;

    if (it == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    for (kv_iter_seek_first(it); rc == 0 && kv_iter_valid(it);
         kv_iter_next(it)) {
        size_t klen, vlen;
        const void *k = kv_iter_key(it, &klen);
        const void *v = kv_iter_value(it, &vlen);
        rc = load_one(s, k, klen, v, vlen);
    }
    kv_iter_free(it);
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot load containers: %s", oz_strerror(rc));
    }
    return rc;
}

/* A record whose directory is gone: its data is lost. */
static void check_records(struct dn_store *s)
{
    char dir[PATH_MAX];

    for (size_t i = 0; i < s->n_containers; i++) {
        struct dn_container *c = s->containers[i];
        if (c->volume < 0 ||
            c->state == OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY) {
            continue;
        }
        if (s->volumes[c->volume].failed) {
            /* Not persisted: the directory may come back after a fix. */
            mark_unhealthy(s, c, "its data directory failed", false);
            continue;
        }
        if (dn__container_dir(s, c, dir, sizeof(dir)) != 0 ||
            !dn__dir_exists(dir)) {
            log_error("container %llu: its directory '%s' is missing",
                      (unsigned long long)c->id, dir);
            mark_unhealthy(s, c, "directory missing", true);
        }
    }
}

/* A directory without a record (e.g. a crash between mkdir and the
 * record write, or a copied directory): record it as UNHEALTHY so that it
 * is reported and never written. */
static void check_dir_entry(struct dn_store *s, int v, const char *name)
{
    char *end;
    unsigned long long id;
    struct dn_result res;

    errno = 0;
    id = strtoull(name, &end, 10);
    if (errno != 0 || *end != '\0' || id == 0 || name[0] == '+' ||
        name[0] == '-') {
        log_warn("unexpected entry '%s' in '%s'; ignored", name,
                 s->volumes[v].root);
        return;
    }
    struct dn_container *c = dn__find_locked(s, id);
    if (c != NULL) {
        if (c->volume != v && c->volume >= 0) {
            log_error("container %llu has directories on '%s' and '%s'", id,
                      s->volumes[c->volume].path, s->volumes[v].path);
            mark_unhealthy(s, c, "found on two data directories", true);
        }
        return;
    }
    c = dn__container_new(id, v);
    if (c == NULL) {
        return;
    }
    c->state = OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY;
    log_error(
        "container %llu: directory on '%s' has no record; recorded as "
        "UNHEALTHY",
        id, s->volumes[v].path);
    if (dn__persist(s, c, res.msg) != 0 || dn__insert_locked(s, c) != 0) {
        log_error("container %llu: cannot record it: %s", id, res.msg);
        dn__container_free(c);
    }
}

static void check_dirs(struct dn_store *s)
{
    for (size_t v = 0; v < s->n_volumes; v++) {
        if (s->volumes[v].failed) {
            continue;
        }
        DIR *dh = opendir(s->volumes[v].root);
        if (dh == NULL) {
            continue;
        }
        struct dirent *e;
        while ((e = readdir(dh)) != NULL) {
            if (e->d_name[0] != '.') {
                check_dir_entry(s, (int)v, e->d_name);
            }
        }
        closedir(dh);
    }
}

static int open_cfs(struct dn_store *s, char *errmsg)
{
    s->cf_containers = kv_cf(s->kv, DN_CF_CONTAINERS);
    s->cf_blocks = kv_cf(s->kv, DN_CF_BLOCKS);
    s->cf_pipelines = kv_cf(s->kv, DN_CF_PIPELINES);
    if (s->cf_containers < 0 || s->cf_blocks < 0 || s->cf_pipelines < 0) {
        oz_errmsg_printf(errmsg,
                         "datanode DB lacks a column family ('%s', '%s', "
                         "'%s')",
                         DN_CF_CONTAINERS, DN_CF_BLOCKS, DN_CF_PIPELINES);
        return OZ_EINVAL;
    }
    return 0;
}

int dn_store_open(struct dn_store **out,
                  struct kv *kv,
                  const struct dn_store_config *cfg,
                  char *errmsg)
{
    struct dn_store *s = calloc(1, sizeof(*s));
    int rc;

    *out = NULL;
    if (s == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    s->kv = kv;
    oz_strlcpy(s->cluster_id, cfg->cluster_id, sizeof(s->cluster_id));
    oz_strlcpy(s->node_id, cfg->node_id, sizeof(s->node_id));
    s->max_chunk_bytes = cfg->max_chunk_bytes;
    s->vm = cfg->vm;
    pthread_rwlock_init(&s->set_lock, NULL);
    pthread_mutex_init(&s->pipe_lock, NULL);
    dn__metrics_init();
    if ((rc = open_cfs(s, errmsg)) != 0 ||
        (rc = init_volumes(s, cfg, errmsg)) != 0 ||
        (rc = load_containers(s, errmsg)) != 0 ||
        (rc = dn__load_pipelines(s, errmsg)) != 0) {
        dn_store_close(s);
        return rc;
    }
    check_records(s);
    check_dirs(s);
    log_info(
        "container store open: %zu containers, %zu pipelines, %zu data "
        "directories",
        s->n_containers, s->n_pipelines, s->n_volumes);
    *out = s;
    return 0;
}

void dn_store_close(struct dn_store *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n_containers; i++) {
        dn__metric_state(s->containers[i]->state, -1);
        dn__container_free(s->containers[i]);
    }
    free(s->containers);
    dn_ids_free(s->pipelines, s->n_pipelines);
    pthread_rwlock_destroy(&s->set_lock);
    pthread_mutex_destroy(&s->pipe_lock);
    free(s);
}
