/* What a datanode tells SCM and Recon about itself (DESIGN.md §7):
 * container replica reports, storage reports (statvfs of each data
 * directory) and the set of pipelines it belongs to, which SCM grows and
 * shrinks with CREATE_PIPELINE / CLOSE_PIPELINE and which is persisted in
 * pipelineTable so a restarted datanode still reports it. Also the
 * datanode's metrics. */
#include "dn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "log.h"
#include "metrics.h"

/* ---- metrics (DESIGN.md §12) ---- */

struct dn_metrics dn__metrics;

void dn__metrics_init(void)
{
    static const char *const names[5] = {"UNSPECIFIED", "OPEN", "CLOSING",
                                         "CLOSED", "UNHEALTHY"};
    struct dn_metrics *m = &dn__metrics;
    char labels[64];

    m->bytes_written =
        metrics_get("ozone_datanode_bytes_written_total", "", METRIC_COUNTER,
                    "chunk bytes written by WriteChunk");
    m->bytes_read =
        metrics_get("ozone_datanode_bytes_read_total", "", METRIC_COUNTER,
                    "chunk bytes read by ReadChunk");
    m->write_ops =
        metrics_get("ozone_datanode_chunk_ops_total", "op=\"write\"",
                    METRIC_COUNTER, "chunk operations that succeeded");
    m->read_ops =
        metrics_get("ozone_datanode_chunk_ops_total", "op=\"read\"",
                    METRIC_COUNTER, "chunk operations that succeeded");
    m->put_blocks = metrics_get("ozone_datanode_put_block_total", "",
                                METRIC_COUNTER, "blocks committed");
    m->checksum_failures = metrics_get(
        "ozone_datanode_checksum_failures_total", "", METRIC_COUNTER,
        "chunks whose CRC32C did not match, on receipt or on read");
    for (int i = 1; i < 5; i++) {
        snprintf(labels, sizeof(labels), "state=\"%s\"", names[i]);
        m->state[i] = metrics_get("ozone_datanode_containers", labels,
                                  METRIC_GAUGE, "containers by state");
    }
}

void dn__metric_state(Ozone__Hdds__ContainerState st, double delta)
{
    if ((int)st >= 1 && (int)st < 5 && dn__metrics.state[st] != NULL) {
        metrics_add(dn__metrics.state[st], delta);
    }
}

/* ---- containers ---- */

void dn_container_report(struct dn_container *c,
                         Ozone__Hdds__ContainerReplicaReport *r)
{
    ozone__hdds__container_replica_report__init(r);
    r->container_id = c->id;
    r->pipeline_id = c->pipeline_id;
    pthread_mutex_lock(&c->meta_lock);
    r->state = c->state;
    r->used_bytes = c->used_bytes;
    r->block_count = c->block_count;
    pthread_mutex_unlock(&c->meta_lock);
}

int dn_store_container_reports(struct dn_store *s, struct dn_reports *out)
{
    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&s->set_lock);
    size_t n = s->n_containers;
    if (n > 0) {
        out->items = calloc(n, sizeof(*out->items));
        out->ptrs = calloc(n, sizeof(*out->ptrs));
        out->pipes = calloc(n, sizeof(*out->pipes));
        if (out->items == NULL || out->ptrs == NULL || out->pipes == NULL) {
            pthread_rwlock_unlock(&s->set_lock);
            dn_reports_free(out);
            return OZ_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        dn_container_report(s->containers[i], &out->items[i]);
        /* Copy the id: the report outlives set_lock. */
        oz_strlcpy(out->pipes[i], s->containers[i]->pipeline_id,
                   sizeof(out->pipes[i]));
        out->items[i].pipeline_id = out->pipes[i];
        out->ptrs[i] = &out->items[i];
    }
    out->n = n;
    pthread_rwlock_unlock(&s->set_lock);
    return 0;
}

void dn_reports_free(struct dn_reports *r)
{
    free(r->items);
    free(r->ptrs);
    free(r->pipes);
    memset(r, 0, sizeof(*r));
}

/* ---- storage ---- */

/* Committed bytes of the containers on volume v. */
static uint64_t volume_used(struct dn_store *s, int v)
{
    uint64_t used = 0;

    pthread_rwlock_rdlock(&s->set_lock);
    for (size_t i = 0; i < s->n_containers; i++) {
        struct dn_container *c = s->containers[i];
        if (c->volume == v) {
            pthread_mutex_lock(&c->meta_lock);
            used += c->used_bytes;
            pthread_mutex_unlock(&c->meta_lock);
        }
    }
    pthread_rwlock_unlock(&s->set_lock);
    return used;
}

int dn_store_storage_reports(struct dn_store *s, struct dn_storage *out)
{
    memset(out, 0, sizeof(*out));
    out->items = calloc(s->n_volumes, sizeof(*out->items));
    out->ptrs = calloc(s->n_volumes, sizeof(*out->ptrs));
    if (out->items == NULL || out->ptrs == NULL) {
        dn_storage_free(out);
        return OZ_ENOMEM;
    }
    for (size_t i = 0; i < s->n_volumes; i++) {
        Ozone__Hdds__StorageReport *r = &out->items[i];
        struct dn_volume *v = &s->volumes[i];
        struct statvfs st;

        ozone__hdds__storage_report__init(r);
        r->storage_location = v->path;
        r->used = volume_used(s, (int)i);
        if (v->failed || statvfs(v->root, &st) != 0) {
            r->failed = true;
        } else {
            r->capacity = (uint64_t)st.f_blocks * st.f_frsize;
            r->remaining = (uint64_t)st.f_bavail * st.f_frsize;
        }
        out->ptrs[i] = r;
    }
    out->n = s->n_volumes;
    return 0;
}

void dn_storage_free(struct dn_storage *st)
{
    free(st->items);
    free(st->ptrs);
    memset(st, 0, sizeof(*st));
}

/* ---- pipelines ---- */

void dn_ids_free(char **ids, size_t n)
{
    if (ids == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
    }
    free(ids);
}

static int find_pipeline(const struct dn_store *s, const char *id)
{
    for (size_t i = 0; i < s->n_pipelines; i++) {
        if (strcmp(s->pipelines[i], id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Appends a copy of id. Caller holds pipe_lock (or owns s alone). */
static int append_pipeline(struct dn_store *s, const char *id)
{
    if (s->n_pipelines >= DN_MAX_PIPELINES) {
        return OZ_ETOOBIG;
    }
    char **n = realloc(s->pipelines, (s->n_pipelines + 1) * sizeof(*n));
    if (n == NULL) {
        return OZ_ENOMEM;
    }
    s->pipelines = n;
    s->pipelines[s->n_pipelines] = strdup(id);
    if (s->pipelines[s->n_pipelines] == NULL) {
        return OZ_ENOMEM;
    }
    s->n_pipelines++;
    return 0;
}

int dn__load_pipelines(struct dn_store *s, char *errmsg)
{
    struct kv_iter *it = kv_iter_new(s->kv, s->cf_pipelines);
    char id[DN_MAX_NAME];
    int rc = 0;

    if (it == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    for (kv_iter_seek_first(it); rc == 0 && kv_iter_valid(it);
         kv_iter_next(it)) {
        size_t klen;
        const void *k = kv_iter_key(it, &klen);
        if (klen == 0 || klen >= sizeof(id) || memchr(k, '\0', klen)) {
            log_error(
                "pipelineTable holds an invalid key of %zu bytes; "
                "ignored",
                klen);
            continue;
        }
        memcpy(id, k, klen);
        id[klen] = '\0';
        rc = append_pipeline(s, id);
    }
    kv_iter_free(it);
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot load pipelines: %s", oz_strerror(rc));
    }
    return rc;
}

int dn_store_add_pipeline(struct dn_store *s,
                          const Ozone__Hdds__Pipeline *p,
                          char *errmsg)
{
    size_t idlen = p->id != NULL ? strlen(p->id) : 0;
    int rc = 0;

    if (idlen == 0 || idlen >= DN_MAX_NAME) {
        oz_errmsg_printf(errmsg, "invalid pipeline id of %zu bytes", idlen);
        return OZ_EINVAL;
    }
    size_t len = ozone__hdds__pipeline__get_packed_size(p);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    ozone__hdds__pipeline__pack(p, buf);
    pthread_mutex_lock(&s->pipe_lock);
    if (find_pipeline(s, p->id) < 0) {
        struct kv_batch *b = kv_batch_new();
        if (b == NULL) {
            rc = OZ_ENOMEM;
            oz_errmsg_printf(errmsg, "out of memory");
        } else {
            kv_batch_put(b, s->cf_pipelines, p->id, idlen, buf, len);
            rc = kv_write(s->kv, b, true, errmsg);
            kv_batch_free(b);
        }
        if (rc == 0 && (rc = append_pipeline(s, p->id)) != 0) {
            oz_errmsg_printf(errmsg, "cannot add pipeline '%s': %s", p->id,
                             oz_strerror(rc));
        }
        if (rc == 0) {
            log_info("joined pipeline '%s' (%zu members)", p->id, p->n_members);
        }
    }
    pthread_mutex_unlock(&s->pipe_lock);
    free(buf);
    return rc;
}

int dn_store_remove_pipeline(struct dn_store *s, const char *id, char *errmsg)
{
    int rc = 0;

    pthread_mutex_lock(&s->pipe_lock);
    int i = find_pipeline(s, id);
    if (i >= 0) {
        struct kv_batch *b = kv_batch_new();
        if (b == NULL) {
            rc = OZ_ENOMEM;
            oz_errmsg_printf(errmsg, "out of memory");
        } else {
            kv_batch_delete(b, s->cf_pipelines, id, strlen(id));
            rc = kv_write(s->kv, b, true, errmsg);
            kv_batch_free(b);
        }
        if (rc == 0) {
            log_info("left pipeline '%s' (closed by SCM)", id);
            free(s->pipelines[i]);
            s->pipelines[i] = s->pipelines[--s->n_pipelines];
        }
    }
    pthread_mutex_unlock(&s->pipe_lock);
    return rc;
}

int dn_store_pipeline_ids(struct dn_store *s, char ***ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    pthread_mutex_lock(&s->pipe_lock);
    size_t count = s->n_pipelines;
    char **out = calloc(count ? count : 1, sizeof(*out));
    int rc = out == NULL ? OZ_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        out[i] = strdup(s->pipelines[i]);
        if (out[i] == NULL) {
            rc = OZ_ENOMEM;
        }
    }
    pthread_mutex_unlock(&s->pipe_lock);
    if (rc != 0) {
        dn_ids_free(out, count);
        return rc;
    }
    *ids = out;
    *n = count;
    return 0;
}
