/* Recon's tables: datanodes, SCM's containers and pipelines, the
 * components it has seen, the journal of what changed, and task status
 * (DESIGN.md §9). In memory under recon->lock; persisted in Recon's own
 * DB so that a restart keeps serving what it knew (a deleted DB is simply
 * rebuilt from reports, SCM and OM).
 *
 * Datanode health is judged here, the way SCM judges it (DESIGN.md §7):
 * silent for ozone.scm.stale.node.interval -> STALE, for
 * ozone.scm.dead.node.interval -> DEAD, and HEALTHY_READONLY while its
 * apparent version is behind SCM's HDDS apparent version (§6.7 step 4).
 * Recon never fences or commands a datanode: it accepts reports from any
 * version (§6.7 last paragraph).
 */
#include "recon_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

const char *const recon_cf_names[4] = {RECON_CF_DATANODES, RECON_CF_SCM,
                                       RECON_CF_COMPONENTS, RECON_CF_JOURNAL};
enum { CF_DN, CF_SCM, CF_COMP, CF_JOURNAL };

#define NS(x) OZONE__HDDS__NODE_STATE__##x
#define MAX_DNS 10000
#define MAX_COMPONENTS 20000
#define MAX_REPORTED_CONTAINERS 100000

int64_t recon_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    oz_strlcpy(dst, src != NULL ? src : "", size);
}

const char *recon_node_state_name(Ozone__Hdds__NodeState s)
{
    switch (s) {
        case NS(HEALTHY):
            return "HEALTHY";
        case NS(HEALTHY_READONLY):
            return "HEALTHY_READONLY";
        case NS(STALE):
            return "STALE";
        case NS(DEAD):
            return "DEAD";
        default:
            return "UNKNOWN";
    }
}

/* ---- configuration ---- */

static int duration(const struct conf *conf,
                    const char *key,
                    const char *def,
                    long long min,
                    long long *out,
                    char *errmsg)
{
    int rc = conf_get_duration_ms(conf, key, def, out, errmsg);

    if (rc == 0 && *out < min) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%lld ms' for '%s': expected at "
                         "least %lld ms",
                         *out, key, min);
        return OZ_ECONFIG;
    }
    return rc;
}

int recon_config_load(struct recon_config *cfg,
                      const struct conf *conf,
                      char *errmsg)
{
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    if ((rc = duration(conf, "ozone.recon.om.snapshot.task.interval.delay",
                       "10s", 100, &cfg->om_interval_ms, errmsg)) != 0 ||
        (rc = duration(conf, "ozone.recon.scm.poll.interval", "10s", 100,
                       &cfg->scm_interval_ms, errmsg)) != 0 ||
        (rc = duration(conf, "ozone.scm.stale.node.interval", "5m", 1,
                       &cfg->stale_ms, errmsg)) != 0 ||
        (rc = duration(conf, "ozone.scm.dead.node.interval", "10m", 1,
                       &cfg->dead_ms, errmsg)) != 0 ||
        (rc = duration(conf, "ozone.recon.om.checkpoint.timeout", "10m", 100,
                       &cfg->http_timeout_ms, errmsg)) != 0 ||
        (rc = conf_get_int(conf, "ozone.recon.om.db.updates.limit", 50000,
                           &cfg->om_updates_limit, errmsg)) != 0 ||
        (rc = conf_get_size(conf, "ozone.recon.om.checkpoint.max.size", "64GB",
                            &cfg->checkpoint_max, errmsg)) != 0) {
        return rc;
    }
    if (cfg->om_updates_limit < 1 || cfg->om_updates_limit > 1000000) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%lld' for "
                         "'ozone.recon.om.db.updates.limit': expected 1 to "
                         "1000000",
                         cfg->om_updates_limit);
        return OZ_ECONFIG;
    }
    if (cfg->checkpoint_max < 1) {
        oz_errmsg_printf(errmsg,
                         "invalid value for "
                         "'ozone.recon.om.checkpoint.max.size': expected a "
                         "positive size");
        return OZ_ECONFIG;
    }
    if (cfg->dead_ms <= cfg->stale_ms) {
        oz_errmsg_printf(errmsg,
                         "'ozone.scm.dead.node.interval' (%lld ms) must be "
                         "longer than 'ozone.scm.stale.node.interval' "
                         "(%lld ms)",
                         cfg->dead_ms, cfg->stale_ms);
        return OZ_ECONFIG;
    }
    return 0;
}

/* ---- datanodes ---- */

static void dn_free(struct recon_dn *dn)
{
    if (dn == NULL) {
        return;
    }
    for (size_t i = 0; i < dn->n_pipeline_ids; i++) {
        free(dn->pipeline_ids[i]);
    }
    free(dn->pipeline_ids);
    free(dn->container_ids);
    free(dn);
}

struct recon_dn *recon__dn_get(struct recon *r, const char *uuid, bool add)
{
    for (size_t i = 0; i < r->n_dns; i++) {
        if (strcmp(r->dns[i]->uuid, uuid) == 0) {
            return r->dns[i];
        }
    }
    if (!add || r->n_dns >= MAX_DNS || uuid[0] == '\0') {
        return NULL;
    }
    if (r->n_dns == r->cap_dns) {
        size_t cap = r->cap_dns ? r->cap_dns * 2 : 16;
        struct recon_dn **v = realloc(r->dns, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        r->dns = v;
        r->cap_dns = cap;
    }
    struct recon_dn *dn = calloc(1, sizeof(*dn));
    if (dn == NULL) {
        return NULL;
    }
    copy_str(dn->uuid, sizeof(dn->uuid), uuid);
    r->dns[r->n_dns++] = dn;
    return dn;
}

Ozone__Hdds__NodeState recon_dn_state(const struct recon *r,
                                      const struct recon_dn *dn,
                                      int64_t now_ms)
{
    Ozone__Hdds__NodeState s;

    if (dn->last_report_ms > 0) {
        int64_t silent = now_ms - dn->last_report_ms;
        if (silent >= r->cfg.dead_ms) {
            s = NS(DEAD);
        } else if (silent >= r->cfg.stale_ms) {
            s = NS(STALE);
        } else {
            s = NS(HEALTHY);
        }
        /* SCM heard from it more recently than Recon: trust SCM. */
        if (s != NS(HEALTHY) && dn->scm_state != NS(NODE_STATE_UNSPECIFIED) &&
            dn->scm_heartbeat_ms > dn->last_report_ms) {
            s = dn->scm_state;
        }
    } else {
        s = dn->scm_state;
    }
    if (s == NS(HEALTHY) && r->hdds_apparent_from_scm != 0 &&
        dn->apparent_version < r->hdds_apparent_from_scm) {
        s = NS(HEALTHY_READONLY);
    }
    return s;
}

static void set_pipeline_ids(struct recon_dn *dn, char *const *ids, size_t n)
{
    for (size_t i = 0; i < dn->n_pipeline_ids; i++) {
        free(dn->pipeline_ids[i]);
    }
    free(dn->pipeline_ids);
    dn->pipeline_ids = NULL;
    dn->n_pipeline_ids = 0;
    if (n == 0) {
        return;
    }
    dn->pipeline_ids = calloc(n, sizeof(*dn->pipeline_ids));
    if (dn->pipeline_ids == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        dn->pipeline_ids[i] = strdup(ids[i] != NULL ? ids[i] : "");
        if (dn->pipeline_ids[i] == NULL) {
            break;
        }
        dn->n_pipeline_ids++;
    }
}

static void set_storage(struct recon_dn *dn,
                        Ozone__Hdds__StorageReport *const *s,
                        size_t n)
{
    dn->capacity = dn->used = dn->remaining = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == NULL || s[i]->failed) {
            continue;
        }
        dn->capacity += s[i]->capacity;
        dn->used += s[i]->used;
        dn->remaining += s[i]->remaining;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void set_containers(struct recon_dn *dn,
                           Ozone__Hdds__ContainerReplicaReport *const *c,
                           size_t n)
{
    free(dn->container_ids);
    dn->container_ids = NULL;
    dn->n_container_ids = 0;
    dn->n_containers = n;
    if (n > MAX_REPORTED_CONTAINERS) {
        n = MAX_REPORTED_CONTAINERS;
    }
    if (n == 0 || (dn->container_ids = calloc(n, sizeof(uint64_t))) == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (c[i] != NULL) {
            dn->container_ids[dn->n_container_ids++] = c[i]->container_id;
        }
    }
    qsort(dn->container_ids, dn->n_container_ids, sizeof(uint64_t), cmp_u64);
}

/* Persists dn (under r->lock; a failure is logged, the table in memory
 * stays right). */
static void dn_persist(struct recon *r, const struct recon_dn *dn)
{
    Ozone__Scm__DatanodeInfo info = OZONE__SCM__DATANODE_INFO__INIT;
    Ozone__Hdds__DatanodeDetails dd = OZONE__HDDS__DATANODE_DETAILS__INIT;
    Ozone__Hdds__StorageReport sr = OZONE__HDDS__STORAGE_REPORT__INIT;
    Ozone__Hdds__StorageReport *srs[1] = {&sr};

    if (r->cf[CF_DN] < 0) {
        return;
    }
    dd.uuid = (char *)dn->uuid;
    dd.hostname = (char *)dn->hostname;
    dd.ip_address = (char *)dn->ip;
    dd.network_location = (char *)dn->location;
    dd.container_port = dn->container_port;
    dd.http_port = dn->http_port;
    sr.storage_location = (char *)"total";
    sr.capacity = dn->capacity;
    sr.used = dn->used;
    sr.remaining = dn->remaining;
    info.details = &dd;
    info.state = dn->scm_state;
    info.last_heartbeat_ms = (uint64_t)dn->last_report_ms;
    info.software_version = dn->software_version;
    info.apparent_version = dn->apparent_version;
    info.storage = srs;
    info.n_storage = 1;
    info.pipeline_ids = dn->pipeline_ids;
    info.n_pipeline_ids = dn->n_pipeline_ids;
    info.container_count = dn->n_containers;
    size_t len = ozone__scm__datanode_info__get_packed_size(&info);
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL) {
        return;
    }
    ozone__scm__datanode_info__pack(&info, buf);
    if (kv_put(r->d->kv, r->cf[CF_DN], dn->uuid, strlen(dn->uuid), buf, len) !=
        0) {
        log_warn("cannot persist datanode '%s' in Recon's DB", dn->uuid);
    }
    free(buf);
}

void recon_dn_report(struct recon *r,
                     const Ozone__VersionHeader *peer,
                     const Ozone__Hdds__DatanodeDetails *details,
                     const char *uuid,
                     Ozone__Hdds__StorageReport *const *storage,
                     size_t n_storage,
                     Ozone__Hdds__ContainerReplicaReport *const *containers,
                     size_t n_containers,
                     char *const *pipeline_ids,
                     size_t n_pipeline_ids,
                     bool registration,
                     int64_t now_ms)
{
    char addr[RECON_ADDR_MAX] = "";

    pthread_mutex_lock(&r->lock);
    struct recon_dn *dn = recon__dn_get(r, uuid, true);
    if (dn == NULL) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    if (details != NULL) {
        copy_str(dn->hostname, sizeof(dn->hostname), details->hostname);
        copy_str(dn->ip, sizeof(dn->ip), details->ip_address);
        copy_str(dn->location, sizeof(dn->location), details->network_location);
        dn->container_port = details->container_port;
        dn->http_port = details->http_port;
    }
    bool was_silent = dn->last_report_ms == 0 ||
                      now_ms - dn->last_report_ms >= r->cfg.dead_ms;
    dn->software_version = peer->software_version;
    dn->apparent_version = peer->apparent_version;
    dn->last_report_ms = now_ms;
    set_storage(dn, storage, n_storage);
    set_containers(dn, containers, n_containers);
    set_pipeline_ids(dn, pipeline_ids, n_pipeline_ids);
    snprintf(addr, sizeof(addr), "%s:%u", dn->ip, dn->container_port);
    if (registration && !was_silent) {
        /* Registered again while it was alive: it restarted. */
        recon__journal(r, now_ms, "DATANODE", uuid,
                       "registered again (restart): software version %u, "
                       "apparent version %u",
                       peer->software_version, peer->apparent_version);
    }
    const char *health = recon_node_state_name(recon_dn_state(r, dn, now_ms));
    dn_persist(r, dn);
    pthread_mutex_unlock(&r->lock);
    recon_observe(r, "DATANODE", uuid, addr, NULL, peer->software_version,
                  peer->apparent_version, health, now_ms);
    metrics_add(r->m_dn_reports, 1);
}

void recon_set_scm_nodes(struct recon *r,
                         Ozone__Scm__DatanodeInfo *const *nodes,
                         size_t n,
                         int64_t now_ms)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < n; i++) {
        const Ozone__Scm__DatanodeInfo *info = nodes[i];
        if (info == NULL || info->details == NULL ||
            info->details->uuid == NULL) {
            continue;
        }
        struct recon_dn *dn = recon__dn_get(r, info->details->uuid, true);
        if (dn == NULL) {
            continue;
        }
        dn->scm_state = info->state;
        dn->scm_heartbeat_ms = (int64_t)info->last_heartbeat_ms;
        /* SCM's view fills what the datanode has not told Recon itself
         * (datanodes without ozone.recon.address, or after Recon's DB was
         * deleted), and anything newer than Recon's last report. */
        if (dn->last_report_ms == 0 ||
            (int64_t)info->last_heartbeat_ms > dn->last_report_ms) {
            copy_str(dn->hostname, sizeof(dn->hostname),
                     info->details->hostname);
            copy_str(dn->ip, sizeof(dn->ip), info->details->ip_address);
            copy_str(dn->location, sizeof(dn->location),
                     info->details->network_location);
            dn->container_port = info->details->container_port;
            dn->http_port = info->details->http_port;
            dn->software_version = info->software_version;
            dn->apparent_version = info->apparent_version;
            set_storage(dn, info->storage, info->n_storage);
            set_pipeline_ids(dn, info->pipeline_ids, info->n_pipeline_ids);
            dn->n_containers = info->container_count;
        }
    }
    pthread_mutex_unlock(&r->lock);
    (void)now_ms;
}

/* ---- SCM's containers and pipelines ---- */

static void persist_blob(struct recon *r,
                         const char *key,
                         const ProtobufCMessage *msg)
{
    if (r->cf[CF_SCM] < 0) {
        return;
    }
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL) {
        return;
    }
    protobuf_c_message_pack(msg, buf);
    if (kv_put(r->d->kv, r->cf[CF_SCM], key, strlen(key), buf, len) != 0) {
        log_warn("cannot persist SCM's %s in Recon's DB", key);
    }
    free(buf);
}

static void containers_replace(struct recon *r,
                               Ozone__Hdds__ContainerInfo *const *c,
                               size_t n)
{
    struct recon_container *v = calloc(n + 1, sizeof(*v));
    size_t nv = 0;

    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (c[i] == NULL) {
            continue;
        }
        struct recon_container *x = &v[nv++];
        x->id = c[i]->id;
        x->state = c[i]->state;
        copy_str(x->pipeline_id, sizeof(x->pipeline_id), c[i]->pipeline_id);
        x->factor = (uint32_t)c[i]->factor;
        x->used_bytes = c[i]->used_bytes;
        x->key_count = c[i]->key_count;
        for (size_t m = 0;
             m < c[i]->n_replica_uuids && x->n_replicas < RECON_MAX_MEMBERS;
             m++) {
            copy_str(x->replicas[x->n_replicas++], RECON_ID_MAX,
                     c[i]->replica_uuids[m]);
        }
    }
    free(r->containers);
    r->containers = v;
    r->n_containers = nv;
}

void recon_set_scm_containers(struct recon *r,
                              Ozone__Hdds__ContainerInfo *const *c,
                              size_t n)
{
    Ozone__Scm__ListContainersResponse blob =
        OZONE__SCM__LIST_CONTAINERS_RESPONSE__INIT;

    pthread_mutex_lock(&r->lock);
    containers_replace(r, c, n);
    blob.containers = (Ozone__Hdds__ContainerInfo **)c;
    blob.n_containers = n;
    persist_blob(r, "containers", &blob.base);
    pthread_mutex_unlock(&r->lock);
}

static void pipelines_replace(struct recon *r,
                              Ozone__Hdds__Pipeline *const *p,
                              size_t n)
{
    struct recon_pipeline *v = calloc(n + 1, sizeof(*v));
    size_t nv = 0;

    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == NULL) {
            continue;
        }
        struct recon_pipeline *x = &v[nv++];
        copy_str(x->id, sizeof(x->id), p[i]->id);
        x->factor = (uint32_t)p[i]->factor;
        x->state = p[i]->state;
        x->created_ms = p[i]->created_ms;
        for (size_t m = 0;
             m < p[i]->n_members && x->n_members < RECON_MAX_MEMBERS; m++) {
            if (p[i]->members[m] == NULL) {
                continue;
            }
            copy_str(x->members[x->n_members], RECON_ID_MAX,
                     p[i]->members[m]->uuid);
            copy_str(x->hostnames[x->n_members], RECON_ADDR_MAX,
                     p[i]->members[m]->hostname);
            x->n_members++;
        }
    }
    free(r->pipelines);
    r->pipelines = v;
    r->n_pipelines = nv;
}

void recon_set_scm_pipelines(struct recon *r,
                             Ozone__Hdds__Pipeline *const *p,
                             size_t n)
{
    Ozone__Scm__ListPipelinesResponse blob =
        OZONE__SCM__LIST_PIPELINES_RESPONSE__INIT;

    pthread_mutex_lock(&r->lock);
    pipelines_replace(r, p, n);
    blob.pipelines = (Ozone__Hdds__Pipeline **)p;
    blob.n_pipelines = n;
    persist_blob(r, "pipelines", &blob.base);
    pthread_mutex_unlock(&r->lock);
}

bool recon_container_missing(const struct recon *r,
                             const struct recon_container *c,
                             int64_t now_ms)
{
    if (c->key_count == 0 && c->used_bytes == 0) {
        return false; /* nothing was ever written to it */
    }
    for (size_t i = 0; i < r->n_dns; i++) {
        const struct recon_dn *dn = r->dns[i];
        if (recon_dn_state(r, dn, now_ms) == NS(DEAD)) {
            continue;
        }
        for (size_t m = 0; m < c->n_replicas; m++) {
            if (strcmp(c->replicas[m], dn->uuid) == 0) {
                return false;
            }
        }
        if (dn->n_container_ids > 0 &&
            bsearch(&c->id, dn->container_ids, dn->n_container_ids,
                    sizeof(uint64_t), cmp_u64) != NULL) {
            return false;
        }
    }
    return true;
}

/* ---- components and journal ---- */

static void journal_persist(struct recon *r, const struct recon_event *e)
{
    char key[8];
    char val[512];

    if (r->cf[CF_JOURNAL] < 0) {
        return;
    }
    for (int i = 0; i < 8; i++) {
        key[i] = (char)(e->seq >> (56 - 8 * i));
    }
    int len =
        snprintf(val, sizeof(val), "%lld\t%s\t%s\t%s", (long long)e->time_ms,
                 e->component, e->node_id, e->event);
    if (len < 0) {
        return;
    }
    if ((size_t)len >= sizeof(val)) {
        len = sizeof(val) - 1;
    }
    kv_put(r->d->kv, r->cf[CF_JOURNAL], key, sizeof(key), val, (size_t)len);
    if (e->seq > RECON_JOURNAL_MAX) {
        uint64_t old = e->seq - RECON_JOURNAL_MAX;
        for (int i = 0; i < 8; i++) {
            key[i] = (char)(old >> (56 - 8 * i));
        }
        kv_delete(r->d->kv, r->cf[CF_JOURNAL], key, sizeof(key));
    }
}

static struct recon_event *journal_push(struct recon *r)
{
    size_t slot;

    if (r->journal_len < RECON_JOURNAL_MAX) {
        slot = (r->journal_start + r->journal_len++) % RECON_JOURNAL_MAX;
    } else {
        slot = r->journal_start;
        r->journal_start = (r->journal_start + 1) % RECON_JOURNAL_MAX;
    }
    memset(&r->journal[slot], 0, sizeof(r->journal[slot]));
    return &r->journal[slot];
}

void recon__journal(struct recon *r,
                    int64_t now_ms,
                    const char *component,
                    const char *node_id,
                    const char *fmt,
                    ...)
{
    struct recon_event *e = journal_push(r);
    va_list ap;

    e->seq = ++r->journal_seq;
    e->time_ms = now_ms;
    copy_str(e->component, sizeof(e->component), component);
    copy_str(e->node_id, sizeof(e->node_id), node_id);
    va_start(ap, fmt);
    vsnprintf(e->event, sizeof(e->event), fmt, ap);
    va_end(ap);
    log_info("journal: %s '%s' %s", component, node_id, e->event);
    journal_persist(r, e);
}

static struct recon_component *component_get(struct recon *r,
                                             const char *type,
                                             const char *node_id,
                                             bool *added)
{
    *added = false;
    for (size_t i = 0; i < r->n_components; i++) {
        struct recon_component *c = &r->components[i];
        if (strcmp(c->type, type) == 0 && strcmp(c->node_id, node_id) == 0) {
            return c;
        }
    }
    if (r->n_components >= MAX_COMPONENTS) {
        return NULL;
    }
    if (r->n_components == r->cap_components) {
        size_t cap = r->cap_components ? r->cap_components * 2 : 16;
        struct recon_component *v = realloc(r->components, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        r->components = v;
        r->cap_components = cap;
    }
    struct recon_component *c = &r->components[r->n_components++];
    memset(c, 0, sizeof(*c));
    copy_str(c->type, sizeof(c->type), type);
    copy_str(c->node_id, sizeof(c->node_id), node_id);
    *added = true;
    return c;
}

static void component_persist(struct recon *r, const struct recon_component *c)
{
    char key[RECON_ID_MAX + 20];
    char val[RECON_ADDR_MAX + 128];

    if (r->cf[CF_COMP] < 0) {
        return;
    }
    int klen = snprintf(key, sizeof(key), "%s/%s", c->type, c->node_id);
    int vlen =
        snprintf(val, sizeof(val), "%u %u %lld %s %s\t%s", c->software_version,
                 c->apparent_version, (long long)c->last_seen_ms,
                 c->health[0] ? c->health : "-",
                 c->release[0] ? c->release : "-", c->address);
    if (klen > 0 && vlen > 0 && (size_t)vlen < sizeof(val)) {
        kv_put(r->d->kv, r->cf[CF_COMP], key, (size_t)klen, val, (size_t)vlen);
    }
}

static void forget_placeholder(struct recon *r,
                               const char *type,
                               const char *node_id,
                               const char *address)
{
    char key[RECON_ID_MAX + 20];

    if (strcmp(node_id, address) == 0) {
        return;
    }
    for (size_t i = 0; i < r->n_components; i++) {
        struct recon_component *c = &r->components[i];
        if (strcmp(c->type, type) != 0 || strcmp(c->node_id, address) != 0) {
            continue;
        }
        if (r->cf[CF_COMP] >= 0) {
            int klen = snprintf(key, sizeof(key), "%s/%s", c->type, c->node_id);
            if (klen > 0) {
                kv_delete(r->d->kv, r->cf[CF_COMP], key, (size_t)klen);
            }
        }
        r->components[i] = r->components[--r->n_components];
        return;
    }
}

void recon_observe(struct recon *r,
                   const char *type,
                   const char *node_id,
                   const char *address,
                   const char *release,
                   uint32_t software,
                   uint32_t apparent,
                   const char *health,
                   int64_t now_ms)
{
    bool added;
    bool changed = false;

    if (node_id == NULL || node_id[0] == '\0') {
        return;
    }
    pthread_mutex_lock(&r->lock);
    struct recon_component *c = component_get(r, type, node_id, &added);
    if (c == NULL) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    if (added) {
        recon__journal(r, now_ms, type, node_id,
                       "appeared: software version %u, apparent version %u",
                       software, apparent);
        changed = true;
    } else {
        if (c->software_version != software) {
            recon__journal(r, now_ms, type, node_id,
                           "restarted with software version %u (was %u)",
                           software, c->software_version);
            changed = true;
        }
        if (c->apparent_version != apparent) {
            recon__journal(
                r, now_ms, type, node_id,
                "apparent version changed from %u to %u%s", c->apparent_version,
                apparent, apparent > c->apparent_version ? " (finalized)" : "");
            changed = true;
        }
        if (health != NULL && c->health[0] != '\0' &&
            strcmp(c->health, health) != 0) {
            recon__journal(r, now_ms, type, node_id, "health %s -> %s",
                           c->health, health);
            changed = true;
        }
    }
    c->software_version = software;
    c->apparent_version = apparent;
    if (address != NULL && address[0] != '\0') {
        /* An OM that never answered is listed under its address; now that
         * it has, the placeholder goes. */
        forget_placeholder(r, type, node_id, address);
        c = component_get(r, type, node_id, &added);
        if (c == NULL) {
            pthread_mutex_unlock(&r->lock);
            return;
        }
    }
    if (address != NULL && address[0] != '\0' &&
        strcmp(c->address, address) != 0) {
        copy_str(c->address, sizeof(c->address), address);
        changed = true;
    }
    if (release != NULL && release[0] != '\0') {
        copy_str(c->release, sizeof(c->release), release);
    }
    if (health != NULL) {
        copy_str(c->health, sizeof(c->health), health);
    }
    /* last_seen is persisted with the next change, or at most once a
     * minute, not on every heartbeat. */
    if (changed || now_ms - c->last_seen_ms >= 60000) {
        c->last_seen_ms = now_ms;
        component_persist(r, c);
    }
    c->last_seen_ms = now_ms;
    pthread_mutex_unlock(&r->lock);
}

void recon_observe_unreachable(struct recon *r,
                               const char *type,
                               const char *node_id,
                               const char *address,
                               int64_t now_ms)
{
    bool added;

    pthread_mutex_lock(&r->lock);
    struct recon_component *c = component_get(r, type, node_id, &added);
    if (c != NULL && strcmp(c->health, "UNREACHABLE") != 0) {
        recon__journal(r, now_ms, type, node_id, "unreachable at '%s'",
                       address != NULL ? address : "");
        copy_str(c->health, sizeof(c->health), "UNREACHABLE");
        if (address != NULL && c->address[0] == '\0') {
            copy_str(c->address, sizeof(c->address), address);
        }
        component_persist(r, c);
    }
    pthread_mutex_unlock(&r->lock);
}

/* REQUIRED, IN_PROGRESS, DONE or UNKNOWN, from SCM's or an OM's word. */
static const char *fin_phase(const char *status)
{
    if (status == NULL) {
        return "UNKNOWN";
    }
    if (strcmp(status, "FINALIZATION_REQUIRED") == 0) {
        return "REQUIRED";
    }
    if (strcmp(status, "FINALIZATION_IN_PROGRESS") == 0) {
        return "IN_PROGRESS";
    }
    if (strcmp(status, "FINALIZATION_DONE") == 0 ||
        strcmp(status, "ALREADY_FINALIZED") == 0) {
        return "DONE";
    }
    return "UNKNOWN";
}

void recon_observe_finalization(struct recon *r,
                                const char *type,
                                const char *node_id,
                                const char *status,
                                uint32_t software,
                                uint32_t apparent,
                                char *const *blockers,
                                size_t n_blockers,
                                const char *requested_by,
                                int64_t now_ms)
{
    const char *catalog = strcmp(type, "OM") == 0 ? "OM" : "HDDS";
    bool added;
    char by[300] = "";

    if (node_id == NULL || node_id[0] == '\0') {
        return;
    }
    if (status == NULL || status[0] == '\0') {
        status = "UNKNOWN";
    }
    if (requested_by == NULL) {
        requested_by = "";
    }
    /* An older SCM or OM does not send who asked: the line names nobody. */
    if (requested_by[0] != '\0') {
        snprintf(by, sizeof(by), " by '%.256s'", requested_by);
    }
    pthread_mutex_lock(&r->lock);
    struct recon_component *c = component_get(r, type, node_id, &added);
    if (c == NULL) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    const char *was = fin_phase(c->finalization[0] ? c->finalization : NULL);
    const char *now = fin_phase(status);
    if (c->finalization[0] == '\0') {
        /* First answer since Recon started: worth a line unless done;
         * in progress, it names who started it (Recon missed that). */
        bool running = strcmp(now, "IN_PROGRESS") == 0 && by[0] != '\0';
        if (strcmp(now, "DONE") != 0) {
            recon__journal(r, now_ms, type, node_id,
                           "%s finalization status %s (%s apparent %u, "
                           "software %u)%s%s",
                           type, status, catalog, apparent, software,
                           running ? ", started" : "", running ? by : "");
        }
    } else if (strcmp(c->finalization, status) != 0) {
        if (strcmp(now, "UNKNOWN") == 0) {
            recon__journal(r, now_ms, type, node_id,
                           "%s finalization status unknown (was %s)", type,
                           c->finalization);
        } else if (strcmp(was, "REQUIRED") == 0) {
            recon__journal(r, now_ms, type, node_id,
                           "%s finalization started%s", type, by);
            if (apparent >= software) {
                recon__journal(r, now_ms, type, node_id,
                               "%s finalized to %s %u", type, catalog,
                               apparent);
            }
            if (strcmp(now, "DONE") == 0) {
                recon__journal(r, now_ms, type, node_id, "%s finalization done",
                               type);
            }
        } else if (strcmp(now, "DONE") == 0) {
            recon__journal(r, now_ms, type, node_id, "%s finalization done",
                           type);
        } else {
            recon__journal(r, now_ms, type, node_id,
                           "%s finalization status %s -> %s", type,
                           c->finalization, status);
        }
    }
    copy_str(c->finalization, sizeof(c->finalization), status);
    copy_str(c->finalization_requested_by, sizeof(c->finalization_requested_by),
             requested_by);
    /* This node's blockers replace the ones it reported before. */
    size_t k = 0;
    for (size_t i = 0; i < r->n_fin_blockers; i++) {
        const struct recon_fin_blocker *b = &r->fin_blockers[i];
        if (strcmp(b->type, type) != 0 || strcmp(b->node_id, node_id) != 0) {
            r->fin_blockers[k++] = *b;
        }
    }
    r->n_fin_blockers = k;
    for (size_t i = 0; i < n_blockers && blockers != NULL &&
                       r->n_fin_blockers < RECON_MAX_FIN_BLOCKERS;
         i++) {
        if (blockers[i] == NULL || blockers[i][0] == '\0') {
            continue;
        }
        struct recon_fin_blocker *b = &r->fin_blockers[r->n_fin_blockers++];
        copy_str(b->type, sizeof(b->type), type);
        copy_str(b->node_id, sizeof(b->node_id), node_id);
        copy_str(b->reason, sizeof(b->reason), blockers[i]);
    }
    pthread_mutex_unlock(&r->lock);
}

void recon_refresh_health(struct recon *r, int64_t now_ms)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_dns; i++) {
        const struct recon_dn *dn = r->dns[i];
        const char *h = recon_node_state_name(recon_dn_state(r, dn, now_ms));
        bool added;
        struct recon_component *c =
            component_get(r, "DATANODE", dn->uuid, &added);
        if (c == NULL) {
            continue;
        }
        if (added) {
            c->software_version = dn->software_version;
            c->apparent_version = dn->apparent_version;
            snprintf(c->address, sizeof(c->address), "%s:%u", dn->ip,
                     dn->container_port);
            recon__journal(r, now_ms, "DATANODE", dn->uuid,
                           "appeared: software version %u, apparent "
                           "version %u",
                           dn->software_version, dn->apparent_version);
        } else {
            /* A datanode known only through SCM (it does not report to
             * Recon) finalizes too: the same line recon_observe writes. */
            bool moved = dn->apparent_version != 0 &&
                         c->apparent_version != dn->apparent_version;
            if (moved) {
                recon__journal(r, now_ms, "DATANODE", dn->uuid,
                               "apparent version changed from %u to %u%s",
                               c->apparent_version, dn->apparent_version,
                               dn->apparent_version > c->apparent_version
                                   ? " (finalized)"
                                   : "");
                c->apparent_version = dn->apparent_version;
                c->software_version = dn->software_version;
            }
            if (c->health[0] != '\0' && strcmp(c->health, h) != 0) {
                recon__journal(r, now_ms, "DATANODE", dn->uuid,
                               "health %s -> %s", c->health, h);
            } else if (strcmp(c->health, h) == 0 && !moved) {
                continue;
            }
        }
        copy_str(c->health, sizeof(c->health), h);
        component_persist(r, c);
    }
    pthread_mutex_unlock(&r->lock);
}

/* ---- tasks ---- */

void recon_task_start(struct recon *r, enum recon_task_id t)
{
    pthread_mutex_lock(&r->lock);
    copy_str(r->tasks[t].status, sizeof(r->tasks[t].status), "RUNNING");
    pthread_mutex_unlock(&r->lock);
}

void recon_task_ok(struct recon *r,
                   enum recon_task_id t,
                   uint64_t seq,
                   int64_t now_ms)
{
    pthread_mutex_lock(&r->lock);
    struct recon_task *k = &r->tasks[t];
    k->runs++;
    k->last_updated_ms = now_ms;
    k->last_seq = seq;
    copy_str(k->status, sizeof(k->status), "OK");
    pthread_mutex_unlock(&r->lock);
}

void recon_task_failed(struct recon *r,
                       enum recon_task_id t,
                       const char *msg,
                       int64_t now_ms)
{
    pthread_mutex_lock(&r->lock);
    struct recon_task *k = &r->tasks[t];
    k->runs++;
    k->failures++;
    k->last_error_ms = now_ms;
    copy_str(k->last_error, sizeof(k->last_error), msg);
    copy_str(k->status, sizeof(k->status), "FAILED");
    pthread_mutex_unlock(&r->lock);
}

/* ---- load ---- */

static void load_datanodes(struct recon *r)
{
    struct kv_iter *it = kv_iter_new(r->d->kv, r->cf[CF_DN]);

    if (it == NULL) {
        return;
    }
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        size_t len;
        const uint8_t *v = kv_iter_value(it, &len);
        Ozone__Scm__DatanodeInfo *info =
            ozone__scm__datanode_info__unpack(NULL, len, v);
        if (info == NULL || info->details == NULL ||
            info->details->uuid == NULL) {
            if (info != NULL) {
                ozone__scm__datanode_info__free_unpacked(info, NULL);
            }
            continue;
        }
        struct recon_dn *dn = recon__dn_get(r, info->details->uuid, true);
        if (dn != NULL) {
            copy_str(dn->hostname, sizeof(dn->hostname),
                     info->details->hostname);
            copy_str(dn->ip, sizeof(dn->ip), info->details->ip_address);
            copy_str(dn->location, sizeof(dn->location),
                     info->details->network_location);
            dn->container_port = info->details->container_port;
            dn->http_port = info->details->http_port;
            dn->last_report_ms = (int64_t)info->last_heartbeat_ms;
            dn->software_version = info->software_version;
            dn->apparent_version = info->apparent_version;
            set_storage(dn, info->storage, info->n_storage);
            set_pipeline_ids(dn, info->pipeline_ids, info->n_pipeline_ids);
            dn->n_containers = info->container_count;
        }
        ozone__scm__datanode_info__free_unpacked(info, NULL);
    }
    kv_iter_free(it);
}

static void load_scm(struct recon *r)
{
    void *v = NULL;
    size_t len = 0;

    if (kv_get(r->d->kv, r->cf[CF_SCM], "containers", 10, &v, &len) == 0) {
        Ozone__Scm__ListContainersResponse *m =
            ozone__scm__list_containers_response__unpack(NULL, len, v);
        if (m != NULL) {
            containers_replace(r, m->containers, m->n_containers);
            ozone__scm__list_containers_response__free_unpacked(m, NULL);
        }
        free(v);
    }
    if (kv_get(r->d->kv, r->cf[CF_SCM], "pipelines", 9, &v, &len) == 0) {
        Ozone__Scm__ListPipelinesResponse *m =
            ozone__scm__list_pipelines_response__unpack(NULL, len, v);
        if (m != NULL) {
            pipelines_replace(r, m->pipelines, m->n_pipelines);
            ozone__scm__list_pipelines_response__free_unpacked(m, NULL);
        }
        free(v);
    }
}

static void load_components(struct recon *r)
{
    struct kv_iter *it = kv_iter_new(r->d->kv, r->cf[CF_COMP]);

    if (it == NULL) {
        return;
    }
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        size_t klen, vlen;
        const char *k = kv_iter_key(it, &klen);
        const char *v = kv_iter_value(it, &vlen);
        char key[RECON_ID_MAX + 20], val[RECON_ADDR_MAX + 128];
        char health[24], release[32];
        unsigned sw, ap;
        long long seen;
        bool added;
        int used = 0;

        if (klen >= sizeof(key) || vlen >= sizeof(val)) {
            continue;
        }
        memcpy(key, k, klen);
        key[klen] = '\0';
        memcpy(val, v, vlen);
        val[vlen] = '\0';
        char *slash = strchr(key, '/');
        char *tab = strchr(val, '\t');
        if (slash == NULL || tab == NULL ||
            sscanf(val, "%u %u %lld %23s %31s%n", &sw, &ap, &seen, health,
                   release, &used) != 5) {
            continue;
        }
        *slash = '\0';
        struct recon_component *c = component_get(r, key, slash + 1, &added);
        if (c == NULL) {
            continue;
        }
        c->software_version = sw;
        c->apparent_version = ap;
        c->last_seen_ms = seen;
        copy_str(c->health, sizeof(c->health),
                 strcmp(health, "-") == 0 ? "" : health);
        copy_str(c->release, sizeof(c->release),
                 strcmp(release, "-") == 0 ? "" : release);
        copy_str(c->address, sizeof(c->address), tab + 1);
    }
    kv_iter_free(it);
}

static void load_journal(struct recon *r)
{
    struct kv_iter *it = kv_iter_new(r->d->kv, r->cf[CF_JOURNAL]);

    if (it == NULL) {
        return;
    }
    for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = kv_iter_key(it, &klen);
        const char *v = kv_iter_value(it, &vlen);
        char val[512];
        uint64_t seq = 0;

        if (klen != 8 || vlen >= sizeof(val)) {
            continue;
        }
        for (int i = 0; i < 8; i++) {
            seq = (seq << 8) | k[i];
        }
        memcpy(val, v, vlen);
        val[vlen] = '\0';
        char *f[4] = {val, NULL, NULL, NULL};
        for (int i = 1; i < 4; i++) {
            f[i] = strchr(f[i - 1], '\t');
            if (f[i] == NULL) {
                break;
            }
            *f[i]++ = '\0';
        }
        if (f[3] == NULL) {
            continue;
        }
        struct recon_event *e = journal_push(r);
        e->seq = seq;
        e->time_ms = strtoll(f[0], NULL, 10);
        copy_str(e->component, sizeof(e->component), f[1]);
        copy_str(e->node_id, sizeof(e->node_id), f[2]);
        copy_str(e->event, sizeof(e->event), f[3]);
        if (seq > r->journal_seq) {
            r->journal_seq = seq;
        }
    }
    kv_iter_free(it);
}

/* ---- lifecycle ---- */

int recon_new(struct recon **out,
              struct daemon *d,
              struct kv *kv,
              const struct recon_config *cfg,
              char *errmsg)
{
    struct recon *r = calloc(1, sizeof(*r));
    static const char *const task_names[RECON_TASK_COUNT] = {
        "OmSnapshotRequest", "OmDeltaRequest", "ScmSync"};
    pthread_condattr_t attr;

    *out = NULL;
    if (r == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    r->d = d;
    r->cfg = *cfg;
    for (int i = 0; i < 4; i++) {
        r->cf[i] = kv != NULL ? kv_cf(kv, recon_cf_names[i]) : -1;
        if (kv != NULL && r->cf[i] < 0) {
            oz_errmsg_printf(errmsg, "Recon's DB has no table '%s'",
                             recon_cf_names[i]);
            free(r);
            return OZ_ENOTFOUND;
        }
    }
    pthread_mutex_init(&r->lock, NULL);
    pthread_rwlock_init(&r->om_lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &attr);
    pthread_condattr_destroy(&attr);
    for (int i = 0; i < RECON_TASK_COUNT; i++) {
        r->tasks[i].name = task_names[i];
        copy_str(r->tasks[i].status, sizeof(r->tasks[i].status), "NEVER_RUN");
    }
    r->m_full_syncs =
        metrics_get("ozone_recon_om_full_syncs_total", "", METRIC_COUNTER,
                    "Full syncs of OM's DB (checkpoints) that succeeded");
    r->m_full_failures =
        metrics_get("ozone_recon_om_full_sync_failures_total", "",
                    METRIC_COUNTER, "Full syncs of OM's DB that failed");
    r->m_delta_syncs =
        metrics_get("ozone_recon_om_delta_syncs_total", "", METRIC_COUNTER,
                    "Incremental syncs (DBUpdates) that "
                    "succeeded");
    r->m_delta_failures =
        metrics_get("ozone_recon_om_delta_sync_failures_total", "",
                    METRIC_COUNTER, "Incremental syncs that failed");
    r->m_updates_applied =
        metrics_get("ozone_recon_om_updates_applied_total", "", METRIC_COUNTER,
                    "OM write batches applied to Recon's copy");
    r->m_scm_failures = metrics_get("ozone_recon_scm_sync_failures_total", "",
                                    METRIC_COUNTER, "SCM polls that failed");
    r->m_dn_reports =
        metrics_get("ozone_recon_datanode_reports_total", "", METRIC_COUNTER,
                    "Datanode registrations and heartbeats received");
    if (kv != NULL) {
        load_datanodes(r);
        load_scm(r);
        load_components(r);
        load_journal(r);
    }
    *out = r;
    return 0;
}

void recon_observe_rolling(struct recon *r,
                           char *json,
                           const char *run_id,
                           const char *state,
                           uint32_t step,
                           uint32_t steps,
                           const char *node,
                           int64_t now_ms)
{
    if (json == NULL) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    free(r->rolling_json);
    r->rolling_json = json;
    if (run_id[0] != '\0' &&
        (strcmp(r->rolling_run, run_id) != 0 ||
         strcmp(r->rolling_state, state) != 0 || r->rolling_step != step)) {
        /* The orchestrator is no daemon: its run id names it. */
        if (step > 0) {
            recon__journal(r, now_ms, "ORCHESTRATOR", run_id,
                           "rolling upgrade %s at step %u/%u %s", state, step,
                           steps, node);
        } else {
            recon__journal(r, now_ms, "ORCHESTRATOR", run_id,
                           "rolling upgrade %s", state);
        }
        oz_strlcpy(r->rolling_run, run_id, sizeof(r->rolling_run));
        oz_strlcpy(r->rolling_state, state, sizeof(r->rolling_state));
        r->rolling_step = step;
    }
    pthread_mutex_unlock(&r->lock);
}

void recon_free(struct recon *r)
{
    if (r == NULL) {
        return;
    }
    free(r->rolling_json);
    for (size_t i = 0; i < r->n_dns; i++) {
        dn_free(r->dns[i]);
    }
    free(r->dns);
    free(r->containers);
    free(r->pipelines);
    free(r->components);
    if (r->om_copy != NULL) {
        kv_close(r->om_copy->kv);
        free(r->om_copy);
    }
    pthread_cond_destroy(&r->cond);
    pthread_rwlock_destroy(&r->om_lock);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
