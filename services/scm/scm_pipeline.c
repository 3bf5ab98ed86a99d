/* Pipelines (DESIGN.md §7): the datanodes a block is written to. There is
 * no Ratis among datanodes: the client writes every chunk to every member.
 *
 * Lifecycle (explicit moves, each logged):
 *   ALLOCATED -> OPEN     every member reported the id in a heartbeat
 *   ALLOCATED -> CLOSED   a member did not report it within the stale
 *                         interval, or a member left HEALTHY
 *   OPEN -> CLOSED        a member left HEALTHY (STALE, DEAD, READONLY)
 *   CLOSED -> (forgotten) no member reports it any more
 * Pipelines persist in pipelineTable as ozone.hdds.Pipeline, keyed by id.
 */
#include "scm_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define PS(x) OZONE__HDDS__PIPELINE_STATE__PIPELINE_##x
#define PLACE_MAX_CANDIDATES 16
#define TICK_MAX_CREATES 64

struct scm_pipeline *scm__pipeline_find(struct scm *scm, const char *id)
{
    for (size_t i = 0; i < scm->n_pipelines; i++) {
        if (strcmp(scm->pipelines[i]->id, id) == 0) {
            return scm->pipelines[i];
        }
    }
    return NULL;
}

bool scm__pipeline_active(const struct scm_pipeline *p)
{
    return p->state == PS(ALLOCATED) || p->state == PS(OPEN);
}

bool scm__pipeline_has(const struct scm_pipeline *p, const char *uuid)
{
    for (size_t m = 0; m < p->n_members; m++) {
        if (strcmp(p->members[m].uuid, uuid) == 0) {
            return true;
        }
    }
    return false;
}

static void new_pipeline_id(char *out, size_t size)
{
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, b, sizeof(b)) : -1;
    static unsigned long long fallback;

    if (fd >= 0) {
        close(fd);
    }
    if (got != (ssize_t)sizeof(b)) {
        /* No /dev/urandom: clock and a counter still give unique ids. */
        unsigned long long t = (unsigned long long)oz_wall_ms();
        unsigned long long c = ++fallback;
        memcpy(b, &t, 8);
        memcpy(b + 8, &c, 8);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, size,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
             "%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}

/* ---- placement (pure) ---- */

static bool set_taken(const char *const *uuids,
                      const size_t *pick,
                      size_t want,
                      const char *const *taken_sets,
                      size_t n_taken)
{
    for (size_t t = 0; t < n_taken; t++) {
        const char *const *set = taken_sets + t * want;
        size_t same = 0;
        for (size_t i = 0; i < want; i++) {
            for (size_t j = 0; j < want; j++) {
                if (strcmp(uuids[pick[i]], set[j]) == 0) {
                    same++;
                    break;
                }
            }
        }
        if (same == want) {
            return true;
        }
    }
    return false;
}

static bool rank_less(const char *const *uuids,
                      const size_t *counts,
                      size_t a,
                      size_t b)
{
    if (counts[a] != counts[b]) {
        return counts[a] < counts[b];
    }
    return strcmp(uuids[a], uuids[b]) < 0;
}

int scm_pipeline_place(const char *const *uuids,
                       const size_t *counts,
                       size_t n,
                       size_t want,
                       const char *const *taken_sets,
                       size_t n_taken,
                       size_t *out)
{
    size_t order[PLACE_MAX_CANDIDATES];
    size_t n_order = 0;
    size_t comb[SCM_MAX_MEMBERS];
    size_t pick[SCM_MAX_MEMBERS];

    if (want == 0 || want > SCM_MAX_MEMBERS || n < want) {
        return OZ_ENOTFOUND;
    }
    /* The PLACE_MAX_CANDIDATES least loaded candidates, ranked by (count,
     * uuid) so that placement is deterministic; uuids are unique, so each
     * round takes the smallest pair above the previous one. */
    while (n_order < PLACE_MAX_CANDIDATES && n_order < n) {
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (n_order > 0 &&
                !rank_less(uuids, counts, order[n_order - 1], i)) {
                continue;
            }
            if (best == n || rank_less(uuids, counts, i, best)) {
                best = i;
            }
        }
        if (best == n) {
            break;
        }
        order[n_order++] = best;
    }
    if (n_order < want) {
        return OZ_ENOTFOUND;
    }
    /* Combinations in lexicographic order of that ranking: the first one
     * whose member set is not already a pipeline wins. */
    for (size_t i = 0; i < want; i++) {
        comb[i] = i;
    }
    for (;;) {
        for (size_t i = 0; i < want; i++) {
            pick[i] = order[comb[i]];
        }
        if (!set_taken(uuids, pick, want, taken_sets, n_taken)) {
            memcpy(out, pick, want * sizeof(*out));
            return 0;
        }
        size_t k = want;
        while (k > 0 && comb[k - 1] == n_order - want + k - 1) {
            k--;
        }
        if (k == 0) {
            return OZ_ENOTFOUND;
        }
        comb[k - 1]++;
        for (size_t i = k; i < want; i++) {
            comb[i] = comb[i - 1] + 1;
        }
    }
}

/* ---- persistence ---- */

static void fill_details(Ozone__Hdds__DatanodeDetails *d,
                         const struct scm_node_addr *a)
{
    ozone__hdds__datanode_details__init(d);
    d->uuid = (char *)a->uuid;
    d->hostname = (char *)a->hostname;
    d->ip_address = (char *)a->ip;
    d->container_port = a->container_port;
    d->http_port = a->http_port;
    d->network_location = (char *)a->location;
}

void scm__pipeline_persist(struct scm *scm, const struct scm_pipeline *p)
{
    Ozone__Hdds__Pipeline msg = OZONE__HDDS__PIPELINE__INIT;
    Ozone__Hdds__DatanodeDetails details[SCM_MAX_MEMBERS];
    Ozone__Hdds__DatanodeDetails *ptrs[SCM_MAX_MEMBERS];
    uint8_t buf[4096];
    size_t len;

    msg.id = (char *)p->id;
    msg.factor = p->factor;
    msg.state = p->state;
    msg.created_ms = p->created_ms;
    for (size_t m = 0; m < p->n_members; m++) {
        fill_details(&details[m], &p->members[m]);
        ptrs[m] = &details[m];
    }
    msg.members = ptrs;
    msg.n_members = p->n_members;
    len = ozone__hdds__pipeline__get_packed_size(&msg);
    if (len > sizeof(buf)) {
        log_error(
            "pipeline '%s' record is %zu bytes, more than %zu: not "
            "persisted",
            p->id, len, sizeof(buf));
        return;
    }
    ozone__hdds__pipeline__pack(&msg, buf);
    if (kv_put(scm->kv, scm->cf_pipelines, p->id, strlen(p->id), buf, len) !=
        0) {
        log_error(
            "cannot persist pipeline '%s' (%s): SCM keeps it in "
            "memory only",
            p->id, scm__pipeline_state_name(p->state));
    }
}

static int pipeline_from_msg(struct scm_pipeline *p,
                             const Ozone__Hdds__Pipeline *msg)
{
    if (msg->id == NULL || msg->id[0] == '\0' ||
        strlen(msg->id) >= SCM_ID_MAX || msg->n_members == 0 ||
        msg->n_members > SCM_MAX_MEMBERS ||
        (msg->factor != OZONE__HDDS__REPLICATION_FACTOR__ONE &&
         msg->factor != OZONE__HDDS__REPLICATION_FACTOR__THREE) ||
        msg->n_members != (size_t)msg->factor || msg->state < PS(ALLOCATED) ||
        msg->state > PS(CLOSED)) {
        return OZ_ECORRUPT;
    }
    memset(p, 0, sizeof(*p));
    oz_strlcpy(p->id, msg->id, sizeof(p->id));
    p->factor = msg->factor;
    p->state = msg->state;
    p->created_ms = msg->created_ms;
    p->n_members = msg->n_members;
    for (size_t m = 0; m < msg->n_members; m++) {
        const Ozone__Hdds__DatanodeDetails *d = msg->members[m];
        if (d == NULL || d->uuid == NULL || strlen(d->uuid) >= SCM_ID_MAX ||
            (d->ip_address && strlen(d->ip_address) >= SCM_HOST_MAX) ||
            (d->hostname && strlen(d->hostname) >= SCM_HOST_MAX) ||
            (d->network_location &&
             strlen(d->network_location) >= SCM_HOST_MAX)) {
            return OZ_ECORRUPT;
        }
        struct scm_node_addr *a = &p->members[m];
        oz_strlcpy(a->uuid, d->uuid, sizeof(a->uuid));
        oz_strlcpy(a->hostname, d->hostname ? d->hostname : "",
                   sizeof(a->hostname));
        oz_strlcpy(a->ip, d->ip_address ? d->ip_address : "", sizeof(a->ip));
        a->container_port = d->container_port;
        a->http_port = d->http_port;
        oz_strlcpy(a->location, d->network_location ? d->network_location : "",
                   sizeof(a->location));
    }
    return 0;
}

static int pipeline_append(struct scm *scm, const struct scm_pipeline *src)
{
    struct scm_pipeline *p;

    if (scm->n_pipelines >= SCM_MAX_PIPELINES) {
        return OZ_ETOOBIG;
    }
    if (scm->n_pipelines == scm->cap_pipelines) {
        size_t cap = scm->cap_pipelines ? scm->cap_pipelines * 2 : 16;
        struct scm_pipeline **v =
            realloc(scm->pipelines, cap * sizeof(*scm->pipelines));
        if (v == NULL) {
            return OZ_ENOMEM;
        }
        scm->pipelines = v;
        scm->cap_pipelines = cap;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return OZ_ENOMEM;
    }
    *p = *src;
    scm->pipelines[scm->n_pipelines++] = p;
    return 0;
}

int scm__pipelines_load(struct scm *scm, char *errmsg)
{
    struct kv_iter *it = kv_iter_new(scm->kv, scm->cf_pipelines);
    int rc = 0;

    if (it == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        size_t klen, vlen;
        const void *key = kv_iter_key(it, &klen);
        const void *val = kv_iter_value(it, &vlen);
        Ozone__Hdds__Pipeline *msg =
            ozone__hdds__pipeline__unpack(NULL, vlen, val);
        struct scm_pipeline p;

        rc = msg == NULL ? OZ_ECORRUPT : pipeline_from_msg(&p, msg);
        if (msg != NULL) {
            ozone__hdds__pipeline__free_unpacked(msg, NULL);
        }
        if (rc == 0 && (klen != strlen(p.id) || memcmp(key, p.id, klen))) {
            rc = OZ_ECORRUPT;
        }
        if (rc != 0) {
            oz_errmsg_printf(errmsg,
                             "corrupt record in SCM table '%s' (key '%.*s', "
                             "%zu bytes): restore the SCM metadata DB from a "
                             "backup",
                             SCM_CF_PIPELINES, (int)(klen > 64 ? 64 : klen),
                             (const char *)key, vlen);
            break;
        }
        p.closed_mono_ms = scm->start_mono_ms;
        p.allocated_mono_ms = scm->start_mono_ms;
        if ((rc = pipeline_append(scm, &p)) != 0) {
            oz_errmsg_printf(errmsg, "cannot load pipelines: %s",
                             oz_strerror(rc));
            break;
        }
    }
    kv_iter_free(it);
    return rc;
}

/* ---- moves ---- */

static void members_text(const struct scm_pipeline *p, char *buf, size_t size)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t m = 0; m < p->n_members && off < size; m++) {
        int w = snprintf(buf + off, size - off, "%s'%s'", m ? ", " : "",
                         p->members[m].uuid);
        if (w < 0) {
            break;
        }
        off += (size_t)w;
    }
}

struct scm_pipeline *scm__pipeline_create(struct scm *scm,
                                          Ozone__Hdds__ReplicationFactor f,
                                          struct scm_node *const *members,
                                          size_t n,
                                          int64_t now_ms,
                                          uint64_t now_wall_ms)
{
    struct scm_pipeline p;
    char who[256];
    int rc;

    if (n != (size_t)f || n > SCM_MAX_MEMBERS) {
        return NULL;
    }
    memset(&p, 0, sizeof(p));
    new_pipeline_id(p.id, sizeof(p.id));
    p.factor = f;
    p.state = PS(ALLOCATED);
    p.created_ms = now_wall_ms;
    p.allocated_mono_ms = now_ms;
    p.n_members = n;
    for (size_t m = 0; m < n; m++) {
        p.members[m] = members[m]->addr;
    }
    if ((rc = pipeline_append(scm, &p)) != 0) {
        log_error("cannot create a pipeline with replication %s: %s",
                  scm__factor_name(f), oz_strerror(rc));
        return NULL;
    }
    scm__pipeline_persist(scm, &p);
    for (size_t m = 0; m < n; m++) {
        scm__node_queue(scm, members[m],
                        OZONE__SCM__COMMAND_TYPE__CREATE_PIPELINE, 0, p.id);
    }
    members_text(&p, who, sizeof(who));
    log_info(
        "pipeline '%s' (replication %s) ALLOCATED on %s; opens when "
        "every member reports it",
        p.id, scm__factor_name(f), who);
    return scm->pipelines[scm->n_pipelines - 1];
}

void scm__pipeline_close(struct scm *scm,
                         struct scm_pipeline *p,
                         const char *reason,
                         int64_t now_ms)
{
    char why[320];

    if (p->state == PS(CLOSED)) {
        return;
    }
    log_info("pipeline '%s' (replication %s) %s -> CLOSED: %s", p->id,
             scm__factor_name(p->factor), scm__pipeline_state_name(p->state),
             reason);
    p->state = PS(CLOSED);
    p->closed_mono_ms = now_ms;
    scm__pipeline_persist(scm, p);
    for (size_t m = 0; m < p->n_members; m++) {
        struct scm_node *n = scm__node_find(scm, p->members[m].uuid);
        if (n != NULL) {
            scm__node_queue(scm, n, OZONE__SCM__COMMAND_TYPE__CLOSE_PIPELINE, 0,
                            p->id);
        }
    }
    snprintf(why, sizeof(why), "pipeline '%s' closed", p->id);
    for (size_t i = 0; i < scm->n_containers; i++) {
        struct scm_container *c = &scm->containers[i];
        if (c->state == OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN &&
            strcmp(c->pipeline_id, p->id) == 0) {
            scm__container_close(scm, c, why);
        }
    }
}

void scm__pipelines_close_for_node(struct scm *scm,
                                   const char *uuid,
                                   const char *reason,
                                   int64_t now_ms)
{
    for (size_t i = 0; i < scm->n_pipelines; i++) {
        struct scm_pipeline *p = scm->pipelines[i];
        if (scm__pipeline_active(p) && scm__pipeline_has(p, uuid)) {
            scm__pipeline_close(scm, p, reason, now_ms);
        }
    }
}

void scm__pipelines_report(struct scm *scm,
                           struct scm_node *n,
                           char *const *ids,
                           size_t n_ids)
{
    for (size_t i = 0; i < n_ids; i++) {
        const char *id = ids[i];
        struct scm_pipeline *p;

        if (id == NULL || id[0] == '\0' || strlen(id) >= SCM_ID_MAX) {
            continue;
        }
        p = scm__pipeline_find(scm, id);
        if (p == NULL || p->state == PS(CLOSED)) {
            /* Closed while the node was away, or forgotten: tell it. */
            scm__node_queue(scm, n, OZONE__SCM__COMMAND_TYPE__CLOSE_PIPELINE, 0,
                            id);
            continue;
        }
        if (p->state != PS(ALLOCATED)) {
            continue;
        }
        bool all = true;
        for (size_t m = 0; m < p->n_members; m++) {
            if (strcmp(p->members[m].uuid, n->addr.uuid) == 0) {
                p->reported[m] = true;
            }
            all = all && p->reported[m];
        }
        if (all) {
            p->state = PS(OPEN);
            scm__pipeline_persist(scm, p);
            log_info(
                "pipeline '%s' (replication %s) ALLOCATED -> OPEN: "
                "every member reported it",
                p->id, scm__factor_name(p->factor));
        }
    }
}

void scm__pipelines_update_member(struct scm *scm,
                                  const struct scm_node_addr *addr)
{
    for (size_t i = 0; i < scm->n_pipelines; i++) {
        struct scm_pipeline *p = scm->pipelines[i];
        for (size_t m = 0; m < p->n_members; m++) {
            struct scm_node_addr *a = &p->members[m];
            if (strcmp(a->uuid, addr->uuid) != 0) {
                continue;
            }
            if (strcmp(a->ip, addr->ip) != 0 ||
                a->container_port != addr->container_port ||
                strcmp(a->hostname, addr->hostname) != 0 ||
                a->http_port != addr->http_port) {
                *a = *addr;
                scm__pipeline_persist(scm, p);
            }
        }
    }
}

/* ---- creation ---- */

static bool node_writable(const struct scm_node *n)
{
    return n->state == OZONE__HDDS__NODE_STATE__HEALTHY;
}

static size_t active_count(struct scm *scm,
                           const char *uuid,
                           Ozone__Hdds__ReplicationFactor f)
{
    size_t count = 0;

    for (size_t i = 0; i < scm->n_pipelines; i++) {
        const struct scm_pipeline *p = scm->pipelines[i];
        count += scm__pipeline_active(p) && p->factor == f &&
                 scm__pipeline_has(p, uuid);
    }
    return count;
}

static bool excluded_node(const Ozone__Hdds__ExcludeList *ex, const char *uuid)
{
    for (size_t i = 0; ex != NULL && i < ex->n_datanode_uuids; i++) {
        if (ex->datanode_uuids[i] && strcmp(ex->datanode_uuids[i], uuid) == 0) {
            return true;
        }
    }
    return false;
}

/* Creates one pipeline of factor f from writable nodes not in ex, with at
 * most limit active pipelines of f each (0: no limit). */
static struct scm_pipeline *create_one(struct scm *scm,
                                       Ozone__Hdds__ReplicationFactor f,
                                       const Ozone__Hdds__ExcludeList *ex,
                                       size_t limit,
                                       int64_t now_ms,
                                       uint64_t now_wall_ms)
{
    const char **uuids = calloc(scm->n_nodes + 1, sizeof(*uuids));
    size_t *counts = calloc(scm->n_nodes + 1, sizeof(*counts));
    struct scm_node **cand = calloc(scm->n_nodes + 1, sizeof(*cand));
    const char **taken =
        calloc(scm->n_pipelines * SCM_MAX_MEMBERS + 1, sizeof(*taken));
    struct scm_pipeline *created = NULL;
    size_t n = 0, n_taken = 0, pick[SCM_MAX_MEMBERS];
    size_t want = (size_t)f;

    if (uuids == NULL || counts == NULL || cand == NULL || taken == NULL) {
        goto out;
    }
    for (size_t i = 0; i < scm->n_nodes; i++) {
        struct scm_node *nd = scm->nodes[i];
        size_t c = active_count(scm, nd->addr.uuid, f);
        if (!node_writable(nd) || excluded_node(ex, nd->addr.uuid) ||
            (limit > 0 && c >= limit)) {
            continue;
        }
        uuids[n] = nd->addr.uuid;
        counts[n] = c;
        cand[n++] = nd;
    }
    for (size_t i = 0; i < scm->n_pipelines; i++) {
        const struct scm_pipeline *p = scm->pipelines[i];
        if (scm__pipeline_active(p) && p->factor == f) {
            for (size_t m = 0; m < want; m++) {
                taken[n_taken * want + m] = p->members[m].uuid;
            }
            n_taken++;
        }
    }
    if (scm_pipeline_place(uuids, counts, n, want, taken, n_taken, pick) == 0) {
        struct scm_node *members[SCM_MAX_MEMBERS];
        for (size_t m = 0; m < want; m++) {
            members[m] = cand[pick[m]];
        }
        created =
            scm__pipeline_create(scm, f, members, want, now_ms, now_wall_ms);
    }
out:
    free(uuids);
    free(counts);
    free(cand);
    free(taken);
    return created;
}

struct scm_pipeline *scm__pipeline_create_excluding(
    struct scm *scm,
    Ozone__Hdds__ReplicationFactor f,
    const Ozone__Hdds__ExcludeList *ex,
    int64_t now_ms,
    uint64_t now_wall_ms)
{
    /* The per-node limit shapes background creation; a client that must
     * avoid some datanodes may need one pipeline beyond it (Ozone also
     * creates pipelines on demand for an exclude list). */
    return create_one(scm, f, ex, 0, now_ms, now_wall_ms);
}

/* Closes pipelines that cannot work: a member not HEALTHY or not
 * registered since SCM started, or ALLOCATED for longer than the stale
 * interval. Forgets CLOSED pipelines no registered node reports. */
static void upkeep(struct scm *scm, int64_t now_ms)
{
    char why[320];

    for (size_t i = 0; i < scm->n_pipelines;) {
        struct scm_pipeline *p = scm->pipelines[i];
        if (scm__pipeline_active(p)) {
            why[0] = '\0';
            for (size_t m = 0; m < p->n_members && !why[0]; m++) {
                const struct scm_node *n =
                    scm__node_find(scm, p->members[m].uuid);
                if (n == NULL &&
                    now_ms - scm->start_mono_ms >= scm->cfg.stale_ms) {
                    snprintf(why, sizeof(why),
                             "member '%s' has not registered since SCM "
                             "started",
                             p->members[m].uuid);
                } else if (n != NULL && !node_writable(n)) {
                    snprintf(why, sizeof(why), "member '%s' is %s",
                             n->addr.uuid, scm__node_state_name(n->state));
                } else if (p->state == PS(ALLOCATED) && !p->reported[m] &&
                           now_ms - p->allocated_mono_ms >= scm->cfg.stale_ms) {
                    snprintf(why, sizeof(why),
                             "member '%s' did not report it within %lld ms",
                             p->members[m].uuid, scm->cfg.stale_ms);
                }
            }
            if (why[0]) {
                scm__pipeline_close(scm, p, why, now_ms);
            }
            i++;
            continue;
        }
        bool reported = false;
        for (size_t k = 0; k < scm->n_nodes && !reported; k++) {
            const struct scm_node *n = scm->nodes[k];
            for (size_t j = 0; j < n->n_pipeline_ids && !reported; j++) {
                reported = strcmp(n->pipeline_ids[j], p->id) == 0;
            }
        }
        if (reported || now_ms - p->closed_mono_ms < scm->cfg.stale_ms) {
            i++;
            continue;
        }
        log_info("pipeline '%s' removed: CLOSED and no datanode reports it",
                 p->id);
        kv_delete(scm->kv, scm->cf_pipelines, p->id, strlen(p->id));
        free(p);
        scm->pipelines[i] = scm->pipelines[--scm->n_pipelines];
    }
}

void scm__pipelines_tick(struct scm *scm, int64_t now_ms, uint64_t now_wall_ms)
{
    upkeep(scm, now_ms);
    /* ONE: one pipeline per writable datanode. */
    for (size_t i = 0; i < scm->n_nodes; i++) {
        struct scm_node *n = scm->nodes[i];
        if (node_writable(n) &&
            active_count(scm, n->addr.uuid,
                         OZONE__HDDS__REPLICATION_FACTOR__ONE) == 0) {
            scm__pipeline_create(scm, OZONE__HDDS__REPLICATION_FACTOR__ONE, &n,
                                 1, now_ms, now_wall_ms);
        }
    }
    /* THREE: as many distinct member sets as the per-node limit allows. */
    for (int k = 0; k < TICK_MAX_CREATES; k++) {
        if (create_one(scm, OZONE__HDDS__REPLICATION_FACTOR__THREE, NULL,
                       (size_t)scm->cfg.pipeline_limit, now_ms,
                       now_wall_ms) == NULL) {
            break;
        }
    }
}
