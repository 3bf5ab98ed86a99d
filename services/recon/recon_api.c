/* Recon's JSON API (DESIGN.md §9), shapes following Apache Ozone Recon's
 * REST API (docs/recon.md has the reference with examples). The only file
 * of Recon that calls cJSON: builders return malloc'd text and free every
 * cJSON tree they make.
 *
 * Every builder copies what it needs under recon->lock and renders it;
 * listings of the OM copy run under om_lock (shared) through
 * recon_om_scan. Errors are {"error": "..."} with an HTTP status.
 */
#include "recon_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "om.pb-c.h"
#include "upgrade_journal.h"

#define NS(x) OZONE__HDDS__NODE_STATE__##x
#define CONTAINERS_DEFAULT_LIMIT 1000
#define CONTAINERS_MAX_LIMIT 10000
#define OPEN_KEYS_DEFAULT_LIMIT 1000
#define OPEN_KEYS_MAX_LIMIT 10000

static char *render(cJSON *root)
{
    char *text = root != NULL ? cJSON_PrintUnformatted(root) : NULL;

    cJSON_Delete(root);
    return text;
}

char *recon_json_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    cJSON *o = cJSON_CreateObject();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(o, "error", msg);
    return render(o);
}

static const char *factor_name(uint32_t f)
{
    return f == 3 ? "THREE" : f == 1 ? "ONE" : "UNSPECIFIED";
}

static const char *container_state_name(Ozone__Hdds__ContainerState s)
{
    switch (s) {
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN:
            return "OPEN";
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING:
            return "CLOSING";
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED:
            return "CLOSED";
        case OZONE__HDDS__CONTAINER_STATE__CONTAINER_UNHEALTHY:
            return "UNHEALTHY";
        default:
            return "UNKNOWN";
    }
}

static const char *pipeline_state_name(Ozone__Hdds__PipelineState s)
{
    switch (s) {
        case OZONE__HDDS__PIPELINE_STATE__PIPELINE_ALLOCATED:
            return "ALLOCATED";
        case OZONE__HDDS__PIPELINE_STATE__PIPELINE_OPEN:
            return "OPEN";
        case OZONE__HDDS__PIPELINE_STATE__PIPELINE_CLOSED:
            return "CLOSED";
        default:
            return "UNKNOWN";
    }
}

static void add_u64(cJSON *o, const char *name, uint64_t v)
{
    cJSON_AddNumberToObject(o, name, (double)v);
}

/* ---- clusterState ---- */

char *recon_json_cluster_state(struct recon *r, int64_t now_ms)
{
    cJSON *o = cJSON_CreateObject();
    uint64_t cap = 0, used = 0, rem = 0;
    size_t healthy = 0, open_containers = 0, missing = 0, open_pipes = 0;
    const char *sid;

    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_dns; i++) {
        const struct recon_dn *dn = r->dns[i];
        Ozone__Hdds__NodeState s = recon_dn_state(r, dn, now_ms);
        if (s == NS(HEALTHY) || s == NS(HEALTHY_READONLY)) {
            healthy++;
        }
        if (s != NS(DEAD)) {
            cap += dn->capacity;
            used += dn->used;
            rem += dn->remaining;
        }
    }
    for (size_t i = 0; i < r->n_containers; i++) {
        const struct recon_container *c = &r->containers[i];
        if (c->state == OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN) {
            open_containers++;
        }
        if (recon_container_missing(r, c, now_ms)) {
            missing++;
        }
    }
    for (size_t i = 0; i < r->n_pipelines; i++) {
        if (r->pipelines[i].state ==
            OZONE__HDDS__PIPELINE_STATE__PIPELINE_OPEN) {
            open_pipes++;
        }
    }
    add_u64(o, "pipelines", open_pipes);
    add_u64(o, "totalDatanodes", r->n_dns);
    add_u64(o, "healthyDatanodes", healthy);
    cJSON *sr = cJSON_AddObjectToObject(o, "storageReport");
    add_u64(sr, "capacity", cap);
    add_u64(sr, "used", used);
    add_u64(sr, "remaining", rem);
    add_u64(o, "containers", r->n_containers);
    add_u64(o, "missingContainers", missing);
    add_u64(o, "openContainers", open_containers);
    add_u64(o, "deletedContainers", 0);
    add_u64(o, "volumes", r->om.volumes);
    add_u64(o, "buckets", r->om.buckets);
    add_u64(o, "keys", r->om.keys);
    add_u64(o, "openKeys", r->om.open_keys);
    /* r->d is NULL in unit tests. */
    sid = r->d != NULL ? conf_get(r->d->conf, "ozone.om.service.ids") : NULL;
    cJSON_AddStringToObject(o, "omServiceId", sid != NULL ? sid : "");
    sid = r->d != NULL ? conf_get(r->d->conf, "ozone.scm.service.ids") : NULL;
    cJSON_AddStringToObject(o, "scmServiceId", sid != NULL ? sid : "");
    cJSON_AddStringToObject(
        o, "clusterId", r->d != NULL ? r->d->cluster_id : r->scm_cluster_id);
    cJSON_AddBoolToObject(o, "omSynced", r->om.present);
    add_u64(o, "omSequence", r->om.sequence);
    pthread_mutex_unlock(&r->lock);
    return render(o);
}

/* ---- datanodes ---- */

static cJSON *dn_json(const struct recon *r,
                      const struct recon_dn *dn,
                      int64_t now_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *pipes;

    cJSON_AddStringToObject(o, "uuid", dn->uuid);
    cJSON_AddStringToObject(o, "hostname", dn->hostname);
    cJSON_AddStringToObject(o, "ipAddress", dn->ip);
    cJSON_AddStringToObject(o, "networkLocation",
                            dn->location[0] ? dn->location : "/default-rack");
    cJSON_AddStringToObject(
        o, "state", recon_node_state_name(recon_dn_state(r, dn, now_ms)));
    cJSON_AddStringToObject(o, "opState", "IN_SERVICE");
    cJSON_AddNumberToObject(o, "lastHeartbeat",
                            (double)(dn->last_report_ms > dn->scm_heartbeat_ms
                                         ? dn->last_report_ms
                                         : dn->scm_heartbeat_ms));
    cJSON *sr = cJSON_AddObjectToObject(o, "storageReport");
    add_u64(sr, "capacity", dn->capacity);
    add_u64(sr, "used", dn->used);
    add_u64(sr, "remaining", dn->remaining);
    pipes = cJSON_AddArrayToObject(o, "pipelines");
    for (size_t i = 0; i < dn->n_pipeline_ids; i++) {
        cJSON *p = cJSON_CreateObject();
        const struct recon_pipeline *rp = NULL;
        for (size_t k = 0; k < r->n_pipelines; k++) {
            if (strcmp(r->pipelines[k].id, dn->pipeline_ids[i]) == 0) {
                rp = &r->pipelines[k];
            }
        }
        cJSON_AddStringToObject(p, "pipelineID", dn->pipeline_ids[i]);
        cJSON_AddStringToObject(
            p, "replicationType",
            rp != NULL && rp->factor == 1 ? "STAND_ALONE" : "RATIS");
        cJSON_AddNumberToObject(p, "replicationFactor",
                                rp != NULL ? rp->factor : 0);
        cJSON_AddStringToObject(
            p, "leaderNode",
            rp != NULL && rp->n_members > 0 ? rp->hostnames[0] : "");
        cJSON_AddItemToArray(pipes, p);
    }
    add_u64(o, "containers", dn->n_containers);
    cJSON_AddNumberToObject(o, "leaderCount", 0);
    cJSON_AddNumberToObject(o, "softwareVersion", dn->software_version);
    cJSON_AddNumberToObject(o, "apparentVersion", dn->apparent_version);
    cJSON_AddBoolToObject(o, "reportsToRecon", dn->last_report_ms > 0);
    return o;
}

char *recon_json_datanodes(struct recon *r, int64_t now_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr;

    pthread_mutex_lock(&r->lock);
    add_u64(o, "totalCount", r->n_dns);
    arr = cJSON_AddArrayToObject(o, "datanodes");
    for (size_t i = 0; i < r->n_dns; i++) {
        cJSON_AddItemToArray(arr, dn_json(r, r->dns[i], now_ms));
    }
    pthread_mutex_unlock(&r->lock);
    return render(o);
}

/* ---- pipelines ---- */

char *recon_json_pipelines(struct recon *r, int64_t now_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr;

    pthread_mutex_lock(&r->lock);
    add_u64(o, "totalCount", r->n_pipelines);
    arr = cJSON_AddArrayToObject(o, "pipelines");
    for (size_t i = 0; i < r->n_pipelines; i++) {
        const struct recon_pipeline *p = &r->pipelines[i];
        cJSON *j = cJSON_CreateObject();
        size_t containers = 0;
        for (size_t c = 0; c < r->n_containers; c++) {
            if (strcmp(r->containers[c].pipeline_id, p->id) == 0) {
                containers++;
            }
        }
        cJSON_AddStringToObject(j, "pipelineId", p->id);
        cJSON_AddStringToObject(j, "status", pipeline_state_name(p->state));
        cJSON_AddStringToObject(j, "leaderNode",
                                p->n_members > 0 ? p->hostnames[0] : "");
        cJSON *dns = cJSON_AddArrayToObject(j, "datanodes");
        for (size_t m = 0; m < p->n_members; m++) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "uuid", p->members[m]);
            cJSON_AddStringToObject(d, "hostname", p->hostnames[m]);
            cJSON_AddItemToArray(dns, d);
        }
        cJSON_AddStringToObject(j, "replicationType",
                                p->factor == 1 ? "STAND_ALONE" : "RATIS");
        cJSON_AddStringToObject(j, "replicationFactor", factor_name(p->factor));
        cJSON_AddNumberToObject(
            j, "duration",
            p->created_ms > 0 && (uint64_t)now_ms > p->created_ms
                ? (double)((uint64_t)now_ms - p->created_ms)
                : 0.0);
        add_u64(j, "containers", containers);
        cJSON_AddNumberToObject(j, "leaderElections", 0);
        cJSON_AddNumberToObject(j, "lastLeaderElection", 0);
        cJSON_AddItemToArray(arr, j);
    }
    pthread_mutex_unlock(&r->lock);
    return render(o);
}

/* ---- containers ---- */

static cJSON *container_json(const struct recon_container *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *reps;

    add_u64(j, "ContainerID", c->id);
    add_u64(j, "NumberOfKeys", c->key_count);
    cJSON_AddStringToObject(j, "state", container_state_name(c->state));
    add_u64(j, "usedBytes", c->used_bytes);
    cJSON_AddStringToObject(j, "pipelineID", c->pipeline_id);
    cJSON_AddStringToObject(j, "replicationFactor", factor_name(c->factor));
    reps = cJSON_AddArrayToObject(j, "replicas");
    for (size_t m = 0; m < c->n_replicas; m++) {
        cJSON_AddItemToArray(reps, cJSON_CreateString(c->replicas[m]));
    }
    return j;
}

char *recon_json_containers(struct recon *r, uint64_t prev_key, size_t limit)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *data = cJSON_AddObjectToObject(o, "data");
    cJSON *arr;
    uint64_t last = prev_key;
    size_t n = 0;

    if (limit == 0 || limit > CONTAINERS_MAX_LIMIT) {
        limit = limit == 0 ? CONTAINERS_DEFAULT_LIMIT : CONTAINERS_MAX_LIMIT;
    }
    pthread_mutex_lock(&r->lock);
    add_u64(data, "totalCount", r->n_containers);
    arr = cJSON_AddArrayToObject(data, "containers");
    for (size_t i = 0; i < r->n_containers && n < limit; i++) {
        const struct recon_container *c = &r->containers[i];
        if (c->id <= prev_key) {
            continue;
        }
        cJSON_AddItemToArray(arr, container_json(c));
        last = c->id;
        n++;
    }
    pthread_mutex_unlock(&r->lock);
    add_u64(data, "prevKey", last);
    return render(o);
}

char *recon_json_missing_containers(struct recon *r, int64_t now_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr;
    size_t n = 0;

    pthread_mutex_lock(&r->lock);
    arr = cJSON_AddArrayToObject(o, "containers");
    for (size_t i = 0; i < r->n_containers; i++) {
        const struct recon_container *c = &r->containers[i];
        if (!recon_container_missing(r, c, now_ms)) {
            continue;
        }
        cJSON *j = cJSON_CreateObject();
        add_u64(j, "containerID", c->id);
        add_u64(j, "keys", c->key_count);
        cJSON_AddStringToObject(j, "pipelineID", c->pipeline_id);
        cJSON_AddStringToObject(j, "state", container_state_name(c->state));
        cJSON *reps = cJSON_AddArrayToObject(j, "replicas");
        for (size_t m = 0; m < c->n_replicas; m++) {
            cJSON_AddItemToArray(reps, cJSON_CreateString(c->replicas[m]));
        }
        cJSON_AddItemToArray(arr, j);
        n++;
    }
    pthread_mutex_unlock(&r->lock);
    add_u64(o, "totalCount", n);
    return render(o);
}

/* ---- open keys ---- */

struct open_keys_ctx
{
    cJSON *arr;
    size_t n, limit;
    uint64_t replicated, unreplicated;
    char last[1300];
};

static bool open_key_cb(void *ctx,
                        const void *key,
                        size_t klen,
                        const void *val,
                        size_t vlen)
{
    struct open_keys_ctx *c = ctx;
    char k[1300];
    Ozone__Om__KeyInfo *ki;

    if (c->n >= c->limit) {
        return false;
    }
    if (klen >= sizeof(k)) {
        return true;
    }
    memcpy(k, key, klen);
    k[klen] = '\0';
    ki = ozone__om__key_info__unpack(NULL, vlen, val);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "key", k);
    if (ki != NULL) {
        char path[1300];
        uint64_t factor = ki->replication == 3 ? 3 : 1;
        snprintf(path, sizeof(path), "/%s/%s/%s", ki->volume ? ki->volume : "",
                 ki->bucket ? ki->bucket : "", ki->name ? ki->name : "");
        cJSON_AddStringToObject(j, "path", path);
        add_u64(j, "inStateSince", ki->creation_time);
        add_u64(j, "size", ki->data_size);
        add_u64(j, "replicatedSize", ki->data_size * factor);
        cJSON_AddStringToObject(j, "replicationFactor",
                                factor_name((uint32_t)ki->replication));
        c->unreplicated += ki->data_size;
        c->replicated += ki->data_size * factor;
        ozone__om__key_info__free_unpacked(ki, NULL);
    }
    cJSON_AddItemToArray(c->arr, j);
    oz_strlcpy(c->last, k, sizeof(c->last));
    c->n++;
    return true;
}

char *recon_json_open_keys(struct recon *r, const char *prev_key, size_t limit)
{
    struct open_keys_ctx c;
    cJSON *o = cJSON_CreateObject();

    memset(&c, 0, sizeof(c));
    c.limit = limit == 0                    ? OPEN_KEYS_DEFAULT_LIMIT
              : limit > OPEN_KEYS_MAX_LIMIT ? OPEN_KEYS_MAX_LIMIT
                                            : limit;
    cJSON_AddArrayToObject(o, "fso");
    c.arr = cJSON_AddArrayToObject(o, "nonFSO");
    recon_om_scan(r, "openKeyTable", prev_key, open_key_cb, &c);
    cJSON_AddStringToObject(o, "lastKey", c.last);
    add_u64(o, "replicatedDataSize", c.replicated);
    add_u64(o, "unreplicatedDataSize", c.unreplicated);
    add_u64(o, "totalCount", c.n);
    return render(o);
}

/* ---- task status ---- */

char *recon_json_task_status(struct recon *r)
{
    cJSON *arr = cJSON_CreateArray();

    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < RECON_TASK_COUNT; i++) {
        const struct recon_task *t = &r->tasks[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "taskName", t->name);
        cJSON_AddStringToObject(j, "name", t->name);
        cJSON_AddNumberToObject(j, "lastUpdatedTimestamp",
                                (double)t->last_updated_ms);
        add_u64(j, "lastUpdatedSeqNumber", t->last_seq);
        cJSON_AddStringToObject(j, "status", t->status);
        cJSON_AddBoolToObject(j, "isCurrentTaskRunning",
                              strcmp(t->status, "RUNNING") == 0);
        cJSON_AddStringToObject(j, "lastError", t->last_error);
        cJSON_AddNumberToObject(j, "lastErrorTimestamp",
                                (double)t->last_error_ms);
        add_u64(j, "runs", t->runs);
        add_u64(j, "failures", t->failures);
        if (i != RECON_TASK_SCM_SYNC) {
            cJSON_AddStringToObject(j, "omNodeId", r->om.source_node);
            cJSON_AddStringToObject(j, "omLeaderNodeId", r->om.leader_node);
            cJSON_AddStringToObject(j, "syncMode",
                                    r->om.mode == RECON_SYNC_FULL_ONLY
                                        ? "FULL_ONLY"
                                        : "INCREMENTAL");
            cJSON_AddStringToObject(j, "syncModeReason", r->om.mode_reason);
            add_u64(j, "omLatestSeqNumber", r->om.om_latest);
        }
        cJSON_AddItemToArray(arr, j);
    }
    pthread_mutex_unlock(&r->lock);
    return render(arr);
}

/* ---- upgrade ---- */

static uint32_t max_software(const struct recon *r, bool om)
{
    uint32_t m = 0;

    for (size_t i = 0; i < r->n_components; i++) {
        const struct recon_component *c = &r->components[i];
        bool is_om = strcmp(c->type, "OM") == 0;
        if (is_om == om && strcmp(c->type, "RECON") != 0 &&
            c->software_version > m) {
            m = c->software_version;
        }
    }
    return m;
}

static const char *component_health(const struct recon *r,
                                    const struct recon_component *c,
                                    int64_t now_ms)
{
    if (strcmp(c->type, "DATANODE") == 0) {
        for (size_t i = 0; i < r->n_dns; i++) {
            if (strcmp(r->dns[i]->uuid, c->node_id) == 0) {
                return recon_node_state_name(
                    recon_dn_state(r, r->dns[i], now_ms));
            }
        }
    }
    return c->health[0] ? c->health : "UNKNOWN";
}

static int type_rank(const char *type)
{
    static const char *const order[] = {"OM", "SCM", "RECON", "DATANODE"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(type, order[i]) == 0) {
            return i;
        }
    }
    return 4;
}

static int cmp_component(const void *a, const void *b)
{
    const struct recon_component *x = *(const struct recon_component *const *)a;
    const struct recon_component *y = *(const struct recon_component *const *)b;
    int d = type_rank(x->type) - type_rank(y->type);

    return d != 0 ? d : strcmp(x->node_id, y->node_id);
}

/* 0 REQUIRED, 1 IN_PROGRESS, 2 DONE, -1 unknown (SCM's or an OM's word). */
static int fin_rank(const char *status)
{
    if (strcmp(status, "FINALIZATION_REQUIRED") == 0) {
        return 0;
    }
    if (strcmp(status, "FINALIZATION_IN_PROGRESS") == 0) {
        return 1;
    }
    if (strcmp(status, "FINALIZATION_DONE") == 0 ||
        strcmp(status, "ALREADY_FINALIZED") == 0) {
        return 2;
    }
    return -1;
}

/* The cluster's finalization from SCM's status and the OMs': UNKNOWN
 * without SCM's (an older SCM); SCM finalized with an OM still to
 * finalize is IN_PROGRESS. Under r->lock. */
static const char *cluster_finalization(const struct recon *r)
{
    int scm = fin_rank(r->scm_finalization);
    int om = 2;

    for (size_t i = 0; i < r->n_components; i++) {
        const struct recon_component *c = &r->components[i];
        int k = fin_rank(c->finalization);
        if (strcmp(c->type, "OM") == 0 && k >= 0 && k < om) {
            om = k;
        }
    }
    if (scm < 0) {
        return "UNKNOWN";
    }
    if (scm == 1 || om == 1 || (scm == 2 && om == 0)) {
        return "FINALIZATION_IN_PROGRESS";
    }
    return scm == 0 ? "FINALIZATION_REQUIRED" : "FINALIZATION_DONE";
}

/* ---- the rolling-upgrade orchestrator (issue 7) ---- */

char *recon_json_rolling(const Ozone__Om__OmUpgradeJournalReadResponse *view,
                         const char *source,
                         const char *reason,
                         int64_t now_ms)
{
    struct upgrade_journal_summary s;
    cJSON *o, *entries;

    if (view == NULL) {
        o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "available", false);
        cJSON_AddStringToObject(o, "state", "UNKNOWN");
        cJSON_AddStringToObject(o, "reason", reason != NULL ? reason : "");
        cJSON_AddNumberToObject(o, "polledMs", (double)now_ms);
        return render(o);
    }
    upgrade_journal_summarize(view, &s);
    o = upgrade_journal_summary_json(&s, (uint64_t)now_ms);
    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "source", source != NULL ? source : "");
    cJSON_AddNumberToObject(o, "polledMs", (double)now_ms);
    entries = cJSON_AddArrayToObject(o, "entries");
    size_t first = view->n_entries > RECON_ROLLING_ENTRIES
                       ? view->n_entries - RECON_ROLLING_ENTRIES
                       : 0;
    for (size_t i = first; i < view->n_entries; i++) {
        cJSON_AddItemToArray(entries,
                             upgrade_journal_entry_json(view->entries[i]));
    }
    return render(o);
}

/* The stored rollingUpgrade document with the lease judged at now_ms (it
 * was judged when polled), or "not polled yet". */
static cJSON *rolling_now(const struct recon *r, int64_t now_ms)
{
    cJSON *o = r->rolling_json != NULL ? cJSON_Parse(r->rolling_json) : NULL;

    if (o == NULL) {
        o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "available", false);
        cJSON_AddStringToObject(o, "state", "UNKNOWN");
        cJSON_AddStringToObject(o, "reason",
                                "Recon has not read the OM's "
                                "rolling-upgrade journal yet");
        return o;
    }
    cJSON *lease = cJSON_GetObjectItemCaseSensitive(o, "lease");
    cJSON *exp = cJSON_GetObjectItemCaseSensitive(lease, "expiresMs");
    if (cJSON_IsObject(lease) && cJSON_IsNumber(exp)) {
        double left = exp->valuedouble - (double)now_ms;
        cJSON_ReplaceItemInObjectCaseSensitive(lease, "expired",
                                               cJSON_CreateBool(left <= 0));
        cJSON_ReplaceItemInObjectCaseSensitive(
            lease, "expiresInMs", cJSON_CreateNumber(left > 0 ? left : 0));
    }
    return o;
}

char *recon_json_upgrade(struct recon *r, int64_t now_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *comps, *blockers, *journal, *cluster;
    bool pre_finalized = false;

    bool behind_any = false;

    pthread_mutex_lock(&r->lock);
    uint32_t om_max = max_software(r, true);
    uint32_t hdds_max = max_software(r, false);
    uint32_t om_ap = 0, om_sw = 0;
    /* The newest bits Recon knows of: its own release row (Recon is
     * upgraded before OM and the datanodes, DESIGN.md §2.1), or a newer
     * component it has seen. */
    uint32_t newest_om = om_max, newest_hdds = hdds_max;
    if (r->d != NULL && r->d->release != NULL) {
        uint32_t om = (uint32_t)r->d->release->software[VERSION_CATALOG_OM];
        uint32_t h = (uint32_t)r->d->release->software[VERSION_CATALOG_HDDS];
        newest_om = om > newest_om ? om : newest_om;
        newest_hdds = h > newest_hdds ? h : newest_hdds;
    }

    /* Listed OMs, SCMs, Recon, datanodes, each by node id. */
    const struct recon_component **sorted =
        calloc(r->n_components + 1, sizeof(*sorted));
    size_t n_sorted = sorted != NULL ? r->n_components : 0;
    for (size_t i = 0; i < n_sorted; i++) {
        sorted[i] = &r->components[i];
    }
    if (n_sorted > 1) {
        qsort(sorted, n_sorted, sizeof(*sorted), cmp_component);
    }
    comps = cJSON_AddArrayToObject(o, "components");
    blockers = cJSON_AddArrayToObject(o, "blockers");
    for (size_t i = 0; i < n_sorted; i++) {
        const struct recon_component *c = sorted[i];
        const char *health = component_health(r, c, now_ms);
        cJSON *j = cJSON_CreateObject();
        char notation[32];
        cJSON_AddStringToObject(j, "type", c->type);
        cJSON_AddStringToObject(j, "nodeId", c->node_id);
        cJSON_AddStringToObject(j, "address", c->address);
        cJSON_AddStringToObject(j, "release", c->release);
        cJSON_AddNumberToObject(j, "softwareVersion", c->software_version);
        cJSON_AddNumberToObject(j, "apparentVersion", c->apparent_version);
        snprintf(notation, sizeof(notation), "%u/%u", c->apparent_version,
                 c->software_version);
        cJSON_AddStringToObject(j, "version", notation);
        cJSON_AddBoolToObject(j, "preFinalized",
                              c->apparent_version < c->software_version);
        /* SCM and OMs say; the others by their versions. */
        cJSON_AddStringToObject(
            j, "finalization",
            c->finalization[0] != '\0' ? c->finalization
            : strcmp(c->type, "SCM") == 0 || strcmp(c->type, "OM") == 0
                ? "UNKNOWN"
            : c->apparent_version < c->software_version
                ? "FINALIZATION_REQUIRED"
                : "FINALIZATION_DONE");
        /* SCM and OMs: who they say asked for their current or last
         * finalization; "" when they do not say, and for the others. */
        cJSON_AddStringToObject(j, "finalizationRequestedBy",
                                c->finalization_requested_by);
        cJSON_AddStringToObject(j, "health", health);
        cJSON_AddNumberToObject(j, "lastSeen", (double)c->last_seen_ms);
        bool behind =
            strcmp(c->type, "RECON") != 0 && strcmp(health, "DEAD") != 0 &&
            c->software_version <
                (strcmp(c->type, "OM") == 0 ? newest_om : newest_hdds);
        cJSON_AddBoolToObject(j, "upgradePending", behind);
        behind_any = behind_any || behind;
        cJSON_AddItemToArray(comps, j);
        if (c->apparent_version < c->software_version) {
            pre_finalized = true;
        }
        if (strcmp(c->type, "OM") == 0) {
            om_ap = c->apparent_version;
            om_sw = c->software_version;
        }
        /* DESIGN.md §6.6 invariant 2: finalization needs every component
         * of a catalog on the newest bits. Dead datanodes do not count. */
        bool is_om = strcmp(c->type, "OM") == 0;
        bool counts =
            strcmp(c->type, "RECON") != 0 && strcmp(health, "DEAD") != 0;
        uint32_t want = is_om ? om_max : hdds_max;
        if (counts && c->software_version < want) {
            cJSON *b = cJSON_CreateObject();
            char why[160];
            cJSON_AddStringToObject(b, "type", c->type);
            cJSON_AddStringToObject(b, "nodeId", c->node_id);
            snprintf(why, sizeof(why),
                     "runs software version %u, needs %u before "
                     "finalization",
                     c->software_version, want);
            cJSON_AddStringToObject(b, "reason", why);
            cJSON_AddStringToObject(b, "source", "RECON");
            cJSON_AddItemToArray(blockers, b);
        }
    }
    free(sorted);
    /* What SCM and the OMs say finalization waits for; the same sentence
     * from two OMs once. */
    for (size_t i = 0; i < r->n_fin_blockers; i++) {
        const struct recon_fin_blocker *fb = &r->fin_blockers[i];
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++) {
            dup = strcmp(r->fin_blockers[k].reason, fb->reason) == 0;
        }
        if (dup) {
            continue;
        }
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", fb->type);
        cJSON_AddStringToObject(b, "nodeId", fb->node_id);
        cJSON_AddStringToObject(b, "reason", fb->reason);
        cJSON_AddStringToObject(b, "source", fb->type);
        cJSON_AddItemToArray(blockers, b);
    }
    cluster = cJSON_AddObjectToObject(o, "cluster");
    cJSON_AddNumberToObject(cluster, "omSoftwareVersion", om_sw);
    cJSON_AddNumberToObject(cluster, "omApparentVersion", om_ap);
    cJSON_AddNumberToObject(cluster, "hddsSoftwareVersion",
                            r->hdds_software_of_scm);
    cJSON_AddNumberToObject(cluster, "hddsApparentVersion",
                            r->hdds_apparent_from_scm);
    cJSON_AddNumberToObject(cluster, "newestOmSoftwareVersion", newest_om);
    cJSON_AddNumberToObject(cluster, "newestHddsSoftwareVersion", newest_hdds);
    cJSON_AddBoolToObject(cluster, "preFinalized", pre_finalized);
    /* FINALIZATION_REQUIRED, FINALIZATION_IN_PROGRESS, FINALIZATION_DONE,
     * or UNKNOWN while SCM has not said (or cannot: an older SCM). */
    cJSON_AddStringToObject(cluster, "finalization", cluster_finalization(r));
    cJSON_AddStringToObject(
        cluster, "scmFinalization",
        r->scm_finalization[0] ? r->scm_finalization : "UNKNOWN");
    cJSON_AddNumberToObject(cluster, "scmDatanodesFinalized",
                            r->scm_dns_finalized);
    cJSON_AddNumberToObject(cluster, "scmDatanodesTotal", r->scm_dns_total);
    /* UPGRADE_IN_PROGRESS: some component still runs older bits than
     * the newest known; FINALIZATION_REQUIRED: all run them, some act as
     * an older version; FINALIZED: neither. */
    cJSON_AddStringToObject(cluster, "status",
                            behind_any      ? "UPGRADE_IN_PROGRESS"
                            : pre_finalized ? "FINALIZATION_REQUIRED"
                                            : "FINALIZED");
    cJSON_AddItemToObject(o, "rollingUpgrade", rolling_now(r, now_ms));
    journal = cJSON_AddArrayToObject(o, "journal");
    for (size_t k = 0; k < r->journal_len; k++) {
        const struct recon_event *e =
            &r->journal[(r->journal_start + k) % RECON_JOURNAL_MAX];
        cJSON *j = cJSON_CreateObject();
        add_u64(j, "seq", e->seq);
        cJSON_AddNumberToObject(j, "time", (double)e->time_ms);
        cJSON_AddStringToObject(j, "component", e->component);
        cJSON_AddStringToObject(j, "nodeId", e->node_id);
        cJSON_AddStringToObject(j, "event", e->event);
        cJSON_AddItemToArray(journal, j);
    }
    pthread_mutex_unlock(&r->lock);
    return render(o);
}

/* ---- HTTP ---- */

static void reply(struct http_response *resp, int status, char *json)
{
    if (json == NULL) {
        http_response_printf(resp, 500, "application/json",
                             "{\"error\":\"out of memory\"}");
        return;
    }
    http_response_take(resp, status, "application/json", json, strlen(json));
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;

    if (s == NULL || s[0] == '\0' || s[0] == '-') {
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static bool arg_u64(const struct http_request *req,
                    const char *name,
                    uint64_t def,
                    uint64_t *out,
                    struct http_response *resp)
{
    const char *s = http_request_arg(req, name);

    *out = def;
    if (s == NULL || s[0] == '\0') {
        return true;
    }
    if (!parse_u64(s, out)) {
        reply(resp, 400,
              recon_json_error("invalid value '%.64s' for '%s': expected a "
                               "non-negative integer",
                               s, name));
        return false;
    }
    return true;
}

static void api_handler(void *data,
                        const struct http_request *req,
                        struct http_response *resp)
{
    struct recon *r = data;
    const char *p = req->path + strlen("/api/v1/");
    bool get = strcmp(req->method, "GET") == 0;
    int64_t now = recon_now_ms();
    uint64_t limit, prev;

    if (strcmp(p, "triggerdbsync/om") == 0 &&
        (get || strcmp(req->method, "POST") == 0)) {
        const char *full = http_request_arg(req, "full");
        recon_om_sync_trigger(r, full != NULL && strcmp(full, "true") == 0);
        http_response_printf(resp, 200, "application/json", "true");
        return;
    }
    if (!get) {
        reply(resp, 405,
              recon_json_error("method %s not allowed for %s", req->method,
                               req->path));
        return;
    }
    if (strcmp(p, "clusterState") == 0) {
        reply(resp, 200, recon_json_cluster_state(r, now));
    } else if (strcmp(p, "datanodes") == 0) {
        reply(resp, 200, recon_json_datanodes(r, now));
    } else if (strcmp(p, "pipelines") == 0) {
        reply(resp, 200, recon_json_pipelines(r, now));
    } else if (strcmp(p, "containers") == 0) {
        if (arg_u64(req, "limit", CONTAINERS_DEFAULT_LIMIT, &limit, resp) &&
            arg_u64(req, "prevKey", 0, &prev, resp)) {
            reply(resp, 200, recon_json_containers(r, prev, (size_t)limit));
        }
    } else if (strcmp(p, "containers/missing") == 0) {
        reply(resp, 200, recon_json_missing_containers(r, now));
    } else if (strcmp(p, "keys/open") == 0) {
        if (arg_u64(req, "limit", OPEN_KEYS_DEFAULT_LIMIT, &limit, resp)) {
            reply(resp, 200,
                  recon_json_open_keys(r, http_request_arg(req, "prevKey"),
                                       (size_t)limit));
        }
    } else if (strcmp(p, "task/status") == 0) {
        reply(resp, 200, recon_json_task_status(r));
    } else if (strcmp(p, "upgrade") == 0) {
        reply(resp, 200, recon_json_upgrade(r, now));
    } else {
        reply(resp, 404, recon_json_error("no API endpoint '%s'", req->path));
    }
}

void recon_api_register(struct recon *r)
{
    http_server_route(r->d->http, NULL, "/api/v1/*", api_handler, r);
}
