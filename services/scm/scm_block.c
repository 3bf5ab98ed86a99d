/* AllocateBlock (DESIGN.md §7): OM asks for blocks on behalf of a client.
 *
 * A block goes to an OPEN pipeline of the requested factor whose members
 * are all HEALTHY and none excluded, into an OPEN container of it that is
 * not excluded; the container reserves ozone.scm.block.size bytes and is
 * closed once its reservations reach ozone.scm.container.size. Pipelines
 * are taken round-robin so that writers spread over the datanodes.
 *
 * When nothing fits, the error says why, like Ozone's
 * FAILED_TO_FIND_HEALTHY_NODES; when a pipeline that would fit is still
 * being created (ALLOCATED), the answer is UNAVAILABLE so that callers
 * retry shortly.
 */
#include "scm_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define PS(x) OZONE__HDDS__PIPELINE_STATE__PIPELINE_##x

static bool in_list(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i] != NULL && strcmp(list[i], s) == 0) {
            return true;
        }
    }
    return false;
}

static bool node_excluded(const Ozone__Hdds__ExcludeList *ex, const char *uuid)
{
    return ex != NULL &&
           in_list(ex->datanode_uuids, ex->n_datanode_uuids, uuid);
}

static bool container_excluded(const Ozone__Hdds__ExcludeList *ex, uint64_t id)
{
    for (size_t i = 0; ex != NULL && i < ex->n_container_ids; i++) {
        if (ex->container_ids[i] == id) {
            return true;
        }
    }
    return false;
}

/* Every member registered, HEALTHY and not excluded. */
static bool members_usable(struct scm *scm,
                           const struct scm_pipeline *p,
                           const Ozone__Hdds__ExcludeList *ex)
{
    for (size_t m = 0; m < p->n_members; m++) {
        const struct scm_node *n = scm__node_find(scm, p->members[m].uuid);
        if (n == NULL || n->state != OZONE__HDDS__NODE_STATE__HEALTHY ||
            node_excluded(ex, n->addr.uuid)) {
            return false;
        }
    }
    return true;
}

static bool pipeline_usable(struct scm *scm,
                            const struct scm_pipeline *p,
                            Ozone__Hdds__ReplicationFactor f,
                            const Ozone__Hdds__ExcludeList *ex)
{
    return p->state == PS(OPEN) && p->factor == f &&
           !(ex != NULL &&
             in_list(ex->pipeline_ids, ex->n_pipeline_ids, p->id)) &&
           members_usable(scm, p, ex);
}

/* The least used OPEN, non-excluded container of p; a new one if none.
 * The result is valid until the next container is created. */
static struct scm_container *pick_container(struct scm *scm,
                                            const struct scm_pipeline *p,
                                            const Ozone__Hdds__ExcludeList *ex)
{
    struct scm_container *best = NULL;

    for (size_t i = 0; i < scm->n_containers; i++) {
        struct scm_container *c = &scm->containers[i];
        if (c->state == OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN &&
            strcmp(c->pipeline_id, p->id) == 0 &&
            !container_excluded(ex, c->id) &&
            (best == NULL || c->used_bytes < best->used_bytes)) {
            best = c;
        }
    }
    return best != NULL ? best : scm__container_create(scm, p);
}

static struct scm_pipeline *pick_pipeline(struct scm *scm,
                                          Ozone__Hdds__ReplicationFactor f,
                                          const Ozone__Hdds__ExcludeList *ex)
{
    size_t n = scm->n_pipelines;

    for (size_t k = 0; k < n; k++) {
        size_t i = (scm->pipeline_cursor + k) % n;
        if (pipeline_usable(scm, scm->pipelines[i], f, ex)) {
            scm->pipeline_cursor = i + 1;
            return scm->pipelines[i];
        }
    }
    return NULL;
}

static void exclude_text(const Ozone__Hdds__ExcludeList *ex,
                         char *buf,
                         size_t size)
{
    size_t off = 0;
    size_t n = ex != NULL ? ex->n_datanode_uuids : 0;

    snprintf(buf, size, "none");
    for (size_t i = 0; i < n && off < size; i++) {
        int w = snprintf(buf + off, size - off, "%s'%s'", i ? ", " : "",
                         ex->datanode_uuids[i] ? ex->datanode_uuids[i] : "");
        if (w < 0) {
            return;
        }
        off += (size_t)w;
    }
    if (ex != NULL && (ex->n_pipeline_ids || ex->n_container_ids) &&
        off < size) {
        snprintf(buf + off, size - off, "%s%zu pipelines, %zu containers",
                 n ? "; " : "", ex->n_pipeline_ids, ex->n_container_ids);
    }
}

/* Why no pipeline fits; may start creating one (then UNAVAILABLE). */
static void explain_failure(struct scm *scm,
                            Ozone__Hdds__ReplicationFactor f,
                            const Ozone__Hdds__ExcludeList *ex,
                            int64_t now_ms,
                            uint64_t now_wall_ms,
                            struct scm_error *err)
{
    char excluded[160];
    size_t healthy = 0;
    const struct scm_pipeline *pending = NULL;

    exclude_text(ex, excluded, sizeof(excluded));
    for (size_t i = 0; i < scm->n_nodes; i++) {
        const struct scm_node *n = scm->nodes[i];
        healthy += n->state == OZONE__HDDS__NODE_STATE__HEALTHY &&
                   !node_excluded(ex, n->addr.uuid);
    }
    if (healthy < (size_t)f) {
        scm__error(err, RPC_STATUS_FAILED_PRECONDITION,
                   OZONE__RESULT_CODE__FAILED_TO_FIND_HEALTHY_NODES,
                   "cannot allocate a block with replication %s: %zu "
                   "healthy datanodes, %d needed (excluded: %s)",
                   scm__factor_name(f), healthy, (int)f, excluded);
        return;
    }
    for (size_t i = 0; i < scm->n_pipelines && pending == NULL; i++) {
        const struct scm_pipeline *p = scm->pipelines[i];
        if (p->state == PS(ALLOCATED) && p->factor == f &&
            !(ex != NULL &&
              in_list(ex->pipeline_ids, ex->n_pipeline_ids, p->id)) &&
            members_usable(scm, p, ex)) {
            pending = p;
        }
    }
    if (pending == NULL) {
        pending =
            scm__pipeline_create_excluding(scm, f, ex, now_ms, now_wall_ms);
    }
    if (pending != NULL) {
        scm__error(err, RPC_STATUS_UNAVAILABLE, OZONE__RESULT_CODE__UNAVAILABLE,
                   "no open pipeline with replication %s yet: pipeline '%s' "
                   "waits for its members to report it; retry shortly",
                   scm__factor_name(f), pending->id);
        return;
    }
    scm__error(err, RPC_STATUS_FAILED_PRECONDITION,
               OZONE__RESULT_CODE__FAILED_TO_FIND_HEALTHY_NODES,
               "cannot allocate a block with replication %s: no pipeline of "
               "%zu healthy datanodes avoids the exclude list (excluded: %s)",
               scm__factor_name(f), healthy, excluded);
}

static void reserve(struct scm *scm, struct scm_container *c)
{
    char why[128];

    c->used_bytes += (uint64_t)scm->cfg.block_size;
    c->key_count++;
    if (c->used_bytes >= c->size_limit) {
        snprintf(why, sizeof(why),
                 "full: %" PRIu64 " of %" PRIu64 " bytes reserved for blocks",
                 c->used_bytes, c->size_limit);
        scm__container_close(scm, c, why); /* persists */
    } else {
        scm__container_persist(scm, c);
    }
}

static int check_request(struct scm *scm,
                         Ozone__Hdds__ReplicationFactor f,
                         uint64_t size,
                         size_t n,
                         struct scm_error *err)
{
    if (f != OZONE__HDDS__REPLICATION_FACTOR__ONE &&
        f != OZONE__HDDS__REPLICATION_FACTOR__THREE) {
        scm__error(err, RPC_STATUS_INVALID_ARGUMENT,
                   OZONE__RESULT_CODE__INVALID_ARGUMENT,
                   "replication factor %d is not supported: use ONE or "
                   "THREE",
                   (int)f);
        return OZ_EINVAL;
    }
    if (size > (uint64_t)scm->cfg.block_size) {
        scm__error(err, RPC_STATUS_INVALID_ARGUMENT,
                   OZONE__RESULT_CODE__INVALID_ARGUMENT,
                   "cannot allocate a block of %" PRIu64
                   " bytes: the block "
                   "size is %lld bytes (ozone.scm.block.size)",
                   size, scm->cfg.block_size);
        return OZ_EINVAL;
    }
    if (n == 0 || n > SCM_MAX_BLOCKS_PER_CALL) {
        scm__error(err, RPC_STATUS_INVALID_ARGUMENT,
                   OZONE__RESULT_CODE__INVALID_ARGUMENT,
                   "cannot allocate %zu blocks in one call: ask for 1 to %d", n,
                   SCM_MAX_BLOCKS_PER_CALL);
        return OZ_EINVAL;
    }
    return 0;
}

int scm_allocate_blocks(struct scm *scm,
                        Ozone__Hdds__ReplicationFactor f,
                        uint64_t size,
                        size_t n,
                        const Ozone__Hdds__ExcludeList *ex,
                        struct scm_block *out,
                        struct scm_error *err)
{
    char errmsg[OZ_ERRMSG_SIZE];
    int64_t now_ms = oz_mono_ms();
    uint64_t now_wall_ms = oz_wall_ms();
    int rc;

    if ((rc = check_request(scm, f, size, n, err)) != 0) {
        return rc;
    }
    /* Ids first, outside the state lock: a refill costs a synced write.
     * Ids of a failed call are simply never used. */
    for (size_t i = 0; i < n; i++) {
        if ((rc = scm__next_local_id(scm, &out[i].local_id, errmsg)) != 0) {
            scm__error(err, RPC_STATUS_INTERNAL,
                       OZONE__RESULT_CODE__IO_EXCEPTION,
                       "cannot reserve block ids: %s", errmsg);
            return rc;
        }
    }
    pthread_mutex_lock(&scm->lock);
    for (size_t i = 0; i < n; i++) {
        struct scm_pipeline *p = pick_pipeline(scm, f, ex);
        struct scm_container *c = p != NULL ? pick_container(scm, p, ex) : NULL;
        if (c == NULL) {
            explain_failure(scm, f, ex, now_ms, now_wall_ms, err);
            pthread_mutex_unlock(&scm->lock);
            return OZ_EUNAVAILABLE;
        }
        reserve(scm, c);
        out[i].container_id = c->id;
        out[i].length = (uint64_t)scm->cfg.block_size;
        out[i].pipeline = *p;
    }
    pthread_mutex_unlock(&scm->lock);
    return 0;
}
