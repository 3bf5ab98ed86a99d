/* Containers and block allocation (DESIGN.md §7).
 *
 * Container lifecycle (each move logged):
 *   OPEN -> CLOSING    reserved bytes reached ozone.scm.container.size, or
 *                      its pipeline closed; CLOSE_CONTAINER to the members
 *   CLOSING -> CLOSED  every member that is not gone reported it CLOSED (or
 *                      acked the command without holding the container),
 *                      and at least one did
 * Containers persist in containerTable as ozone.hdds.ContainerInfo keyed by
 * the 8-byte big-endian id, so iteration is in id order. In the stored
 * record replica_uuids holds the expected replicas (the pipeline's members
 * at creation); on the wire it lists the members that reported the
 * container.
 *
 * Block local ids come from a counter whose high mark is persisted with a
 * synced write once per SCM_LOCAL_ID_BATCH ids; after a restart allocation
 * continues at the high mark, so an id is never handed out twice.
 */
#include "scm_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define CS(x) OZONE__HDDS__CONTAINER_STATE__CONTAINER_##x

/* ---- lookup ---- */

size_t scm__container_lower_bound(struct scm *scm, uint64_t id)
{
    size_t lo = 0, hi = scm->n_containers;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (scm->containers[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

struct scm_container *scm__container_find(struct scm *scm, uint64_t id)
{
    size_t i = scm__container_lower_bound(scm, id);

    return i < scm->n_containers && scm->containers[i].id == id
               ? &scm->containers[i]
               : NULL;
}

static struct scm_container *container_append(struct scm *scm)
{
    if (scm->n_containers == scm->cap_containers) {
        size_t cap = scm->cap_containers ? scm->cap_containers * 2 : 64;
        struct scm_container *v =
            realloc(scm->containers, cap * sizeof(*scm->containers));
        if (v == NULL) {
            return NULL;
        }
        scm->containers = v;
        scm->cap_containers = cap;
    }
    struct scm_container *c = &scm->containers[scm->n_containers++];
    memset(c, 0, sizeof(*c));
    return c;
}

/* ---- persistence ---- */

static void container_key(uint64_t id, uint8_t key[8])
{
    for (int i = 7; i >= 0; i--) {
        key[i] = (uint8_t)(id & 0xff);
        id >>= 8;
    }
}

void scm__container_persist(struct scm *scm, const struct scm_container *c)
{
    Ozone__Hdds__ContainerInfo msg = OZONE__HDDS__CONTAINER_INFO__INIT;
    char *members[SCM_MAX_MEMBERS];
    uint8_t buf[1024];
    uint8_t key[8];
    size_t len;

    msg.id = c->id;
    msg.state = c->state;
    msg.pipeline_id = (char *)c->pipeline_id;
    msg.factor = c->factor;
    msg.used_bytes = c->used_bytes;
    msg.key_count = c->key_count;
    msg.size_limit = c->size_limit;
    for (size_t m = 0; m < c->n_members; m++) {
        members[m] = (char *)c->members[m];
    }
    msg.replica_uuids = members;
    msg.n_replica_uuids = c->n_members;
    len = ozone__hdds__container_info__get_packed_size(&msg);
    if (len > sizeof(buf)) {
        log_error("container %" PRIu64 " record is %zu bytes: not persisted",
                  c->id, len);
        return;
    }
    ozone__hdds__container_info__pack(&msg, buf);
    container_key(c->id, key);
    if (kv_put(scm->kv, scm->cf_containers, key, sizeof(key), buf, len) != 0) {
        log_error("cannot persist container %" PRIu64
                  " (%s): SCM keeps it "
                  "in memory only",
                  c->id, scm__container_state_name(c->state));
    }
}

static int container_from_msg(struct scm_container *c,
                              const Ozone__Hdds__ContainerInfo *msg)
{
    if (msg->id == 0 || msg->state < CS(OPEN) || msg->state > CS(UNHEALTHY) ||
        msg->pipeline_id == NULL || strlen(msg->pipeline_id) >= SCM_ID_MAX ||
        (msg->factor != OZONE__HDDS__REPLICATION_FACTOR__ONE &&
         msg->factor != OZONE__HDDS__REPLICATION_FACTOR__THREE) ||
        msg->n_replica_uuids > SCM_MAX_MEMBERS) {
        return OZ_ECORRUPT;
    }
    c->id = msg->id;
    c->state = msg->state;
    oz_strlcpy(c->pipeline_id, msg->pipeline_id, sizeof(c->pipeline_id));
    c->factor = msg->factor;
    c->used_bytes = msg->used_bytes;
    c->key_count = msg->key_count;
    c->size_limit = msg->size_limit;
    c->n_members = msg->n_replica_uuids;
    for (size_t m = 0; m < c->n_members; m++) {
        if (msg->replica_uuids[m] == NULL ||
            strlen(msg->replica_uuids[m]) >= SCM_ID_MAX) {
            return OZ_ECORRUPT;
        }
        oz_strlcpy(c->members[m], msg->replica_uuids[m], SCM_ID_MAX);
    }
    return 0;
}

int scm__containers_load(struct scm *scm, char *errmsg)
{
    struct kv_iter *it = kv_iter_new(scm->kv, scm->cf_containers);
    int rc = 0;

    if (it == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *key = kv_iter_key(it, &klen);
        const void *val = kv_iter_value(it, &vlen);
        Ozone__Hdds__ContainerInfo *msg =
            ozone__hdds__container_info__unpack(NULL, vlen, val);
        struct scm_container c;
        uint8_t want[8];

        memset(&c, 0, sizeof(c));
        rc = msg == NULL ? OZ_ECORRUPT : container_from_msg(&c, msg);
        if (msg != NULL) {
            ozone__hdds__container_info__free_unpacked(msg, NULL);
        }
        container_key(c.id, want);
        if (rc == 0 && (klen != 8 || memcmp(key, want, 8) != 0)) {
            rc = OZ_ECORRUPT;
        }
        if (rc != 0) {
            oz_errmsg_printf(errmsg,
                             "corrupt record in SCM table '%s' (%zu-byte key, "
                             "%zu-byte value): restore the SCM metadata DB "
                             "from a backup",
                             SCM_CF_CONTAINERS, klen, vlen);
            break;
        }
        struct scm_container *slot = container_append(scm);
        if (slot == NULL) {
            oz_errmsg_printf(errmsg, "out of memory loading containers");
            rc = OZ_ENOMEM;
            break;
        }
        *slot = c;
        scm->next_container_id = c.id + 1;
    }
    kv_iter_free(it);
    return rc;
}

/* ---- local ids ---- */

int scm__local_id_load(struct scm *scm, char *errmsg)
{
    void *val = NULL;
    size_t len = 0;
    int rc = kv_get(scm->kv, scm->cf_meta, SCM_META_LOCAL_ID_HIGH,
                    strlen(SCM_META_LOCAL_ID_HIGH), &val, &len);

    scm->next_local_id = 1;
    scm->local_id_high = 1;
    if (rc == OZ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot read '%s' from SCM table '%s': %s",
                         SCM_META_LOCAL_ID_HIGH, SCM_CF_META, oz_strerror(rc));
        return rc;
    }
    char *end = NULL;
    unsigned long long high = len > 0 && len < 21 ? strtoull(val, &end, 10) : 0;
    if (end == NULL || *end != '\0' || high == 0) {
        oz_errmsg_printf(errmsg,
                         "corrupt '%s' in SCM table '%s': restore the SCM "
                         "metadata DB from a backup",
                         SCM_META_LOCAL_ID_HIGH, SCM_CF_META);
        free(val);
        return OZ_ECORRUPT;
    }
    free(val);
    scm->next_local_id = high;
    scm->local_id_high = high;
    return 0;
}

int scm__next_local_id(struct scm *scm, uint64_t *out, char *errmsg)
{
    int rc = 0;

    pthread_mutex_lock(&scm->id_lock);
    if (scm->next_local_id >= scm->local_id_high) {
        /* Reserve a batch durably before handing any of it out. */
        uint64_t high = scm->next_local_id + SCM_LOCAL_ID_BATCH;
        char text[32];
        struct kv_batch *b = kv_batch_new();
        int len = snprintf(text, sizeof(text), "%" PRIu64, high);

        if (b == NULL) {
            oz_errmsg_printf(errmsg, "out of memory");
            rc = OZ_ENOMEM;
        } else {
            kv_batch_put(b, scm->cf_meta, SCM_META_LOCAL_ID_HIGH,
                         strlen(SCM_META_LOCAL_ID_HIGH), text, (size_t)len);
            rc = kv_write(scm->kv, b, true, errmsg);
            kv_batch_free(b);
        }
        if (rc == 0) {
            scm->local_id_high = high;
            log_debug("reserved block local ids below %" PRIu64, high);
        }
    }
    if (rc == 0) {
        *out = scm->next_local_id++;
    }
    pthread_mutex_unlock(&scm->id_lock);
    return rc;
}

/* ---- moves ---- */

struct scm_container *scm__container_create(struct scm *scm,
                                            const struct scm_pipeline *p)
{
    struct scm_container *c = container_append(scm);

    if (c == NULL) {
        log_error("out of memory creating a container on pipeline '%s'", p->id);
        return NULL;
    }
    c->id = scm->next_container_id++;
    c->state = CS(OPEN);
    oz_strlcpy(c->pipeline_id, p->id, sizeof(c->pipeline_id));
    c->factor = p->factor;
    c->size_limit = (uint64_t)scm->cfg.container_size;
    c->n_members = p->n_members;
    for (size_t m = 0; m < p->n_members; m++) {
        oz_strlcpy(c->members[m], p->members[m].uuid, SCM_ID_MAX);
    }
    scm__container_persist(scm, c);
    log_info("container %" PRIu64
             " created OPEN on pipeline '%s' "
             "(replication %s, size limit %" PRIu64 " bytes)",
             c->id, p->id, scm__factor_name(p->factor), c->size_limit);
    return c;
}

void scm__container_close(struct scm *scm,
                          struct scm_container *c,
                          const char *reason)
{
    if (c->state != CS(OPEN)) {
        return;
    }
    log_info("container %" PRIu64 " OPEN -> CLOSING: %s", c->id, reason);
    c->state = CS(CLOSING);
    scm__container_persist(scm, c);
    for (size_t m = 0; m < c->n_members; m++) {
        struct scm_node *n = scm__node_find(scm, c->members[m]);
        if (n != NULL) {
            scm__node_queue(scm, n, OZONE__SCM__COMMAND_TYPE__CLOSE_CONTAINER,
                            c->id, NULL);
        }
    }
}

static void check_closed(struct scm *scm,
                         struct scm_container *c,
                         int64_t now_ms)
{
    size_t confirmed = 0;

    if (c->state != CS(CLOSING)) {
        return;
    }
    for (size_t m = 0; m < c->n_members; m++) {
        Ozone__Hdds__ContainerState r = c->reported[m];
        if (r == CS(CLOSED) ||
            (c->close_acked[m] && r != CS(OPEN) && r != CS(CLOSING))) {
            confirmed++;
        } else if (!scm__member_gone(scm, c->members[m], now_ms)) {
            return;
        }
    }
    if (confirmed == 0) {
        return;
    }
    log_info("container %" PRIu64
             " CLOSING -> CLOSED: %zu of %zu replicas "
             "confirmed closed, the others are gone",
             c->id, confirmed, c->n_members);
    c->state = CS(CLOSED);
    scm__container_persist(scm, c);
}

static int member_index(const struct scm_container *c, const char *uuid)
{
    for (size_t m = 0; m < c->n_members; m++) {
        if (strcmp(c->members[m], uuid) == 0) {
            return (int)m;
        }
    }
    return -1;
}

void scm__containers_report(struct scm *scm,
                            struct scm_node *n,
                            Ozone__Hdds__ContainerReplicaReport *const *r,
                            size_t n_reports,
                            int64_t now_ms)
{
    for (size_t i = 0; i < n_reports; i++) {
        struct scm_container *c =
            r[i] != NULL ? scm__container_find(scm, r[i]->container_id) : NULL;
        int m = c != NULL ? member_index(c, n->addr.uuid) : -1;
        if (m < 0 || r[i]->state < CS(OPEN) || r[i]->state > CS(UNHEALTHY)) {
            continue;
        }
        c->reported[m] = r[i]->state;
        if (c->state != CS(OPEN) &&
            (r[i]->state == CS(OPEN) || r[i]->state == CS(CLOSING))) {
            /* SCM closed it while this replica was away or the command
             * got lost: (re)send until the replica reports CLOSED. */
            scm__node_queue(scm, n, OZONE__SCM__COMMAND_TYPE__CLOSE_CONTAINER,
                            c->id, NULL);
        }
        check_closed(scm, c, now_ms);
    }
}

void scm__container_close_acked(struct scm *scm,
                                struct scm_node *n,
                                uint64_t container_id,
                                int64_t now_ms)
{
    struct scm_container *c = scm__container_find(scm, container_id);
    int m = c != NULL ? member_index(c, n->addr.uuid) : -1;

    if (m >= 0) {
        c->close_acked[m] = true;
        check_closed(scm, c, now_ms);
    }
}

void scm__containers_tick(struct scm *scm, int64_t now_ms)
{
    for (size_t i = 0; i < scm->n_pipelines; i++) {
        const struct scm_pipeline *p = scm->pipelines[i];
        long long open = 0;
        if (p->state != OZONE__HDDS__PIPELINE_STATE__PIPELINE_OPEN) {
            continue;
        }
        for (size_t k = 0; k < scm->n_containers; k++) {
            open += scm->containers[k].state == CS(OPEN) &&
                    strcmp(scm->containers[k].pipeline_id, p->id) == 0;
        }
        for (; open < scm->cfg.owner_containers; open++) {
            if (scm__container_create(scm, p) == NULL) {
                break;
            }
        }
    }
    for (size_t k = 0; k < scm->n_containers; k++) {
        check_closed(scm, &scm->containers[k], now_ms);
    }
}
