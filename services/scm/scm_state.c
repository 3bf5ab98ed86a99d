/* SCM state: lifecycle, configuration, the background tick and metrics
 * (DESIGN.md §7). See scm_internal.h for the locking rules. */
#include "scm_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

/* ---- names and helpers ---- */

const char *scm__node_state_name(Ozone__Hdds__NodeState s)
{
    switch (s) {
        case OZONE__HDDS__NODE_STATE__HEALTHY:
            return "HEALTHY";
        case OZONE__HDDS__NODE_STATE__HEALTHY_READONLY:
            return "HEALTHY_READONLY";
        case OZONE__HDDS__NODE_STATE__STALE:
            return "STALE";
        case OZONE__HDDS__NODE_STATE__DEAD:
            return "DEAD";
        default:
            return "UNKNOWN";
    }
}

const char *scm__pipeline_state_name(Ozone__Hdds__PipelineState s)
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

const char *scm__container_state_name(Ozone__Hdds__ContainerState s)
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

const char *scm__factor_name(Ozone__Hdds__ReplicationFactor f)
{
    switch (f) {
        case OZONE__HDDS__REPLICATION_FACTOR__ONE:
            return "ONE";
        case OZONE__HDDS__REPLICATION_FACTOR__THREE:
            return "THREE";
        default:
            return "UNSPECIFIED";
    }
}

void scm__error(struct scm_error *err,
                enum rpc_status status,
                Ozone__ResultCode code,
                const char *fmt,
                ...)
{
    va_list ap;

    err->status = status;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* ---- configuration ---- */

static int get_duration(const struct conf *conf,
                        const char *key,
                        const char *def,
                        long long *out,
                        char *errmsg)
{
    int rc = conf_get_duration_ms(conf, key, def, out, errmsg);

    if (rc == 0 && *out <= 0) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%lld ms' for '%s': expected a "
                         "positive duration",
                         *out, key);
        return OZ_ECONFIG;
    }
    return rc;
}

static int get_count(const struct conf *conf,
                     const char *key,
                     long long def,
                     long long *out,
                     char *errmsg)
{
    int rc = conf_get_int(conf, key, def, out, errmsg);

    if (rc == 0 && (*out < 1 || *out > 100)) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%lld' for '%s': expected 1 to 100",
                         *out, key);
        return OZ_ECONFIG;
    }
    return rc;
}

int scm_config_load(struct scm_config *cfg,
                    const struct conf *conf,
                    char *errmsg)
{
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    if ((rc = conf_get_size(conf, "ozone.scm.block.size", "256MB",
                            &cfg->block_size, errmsg)) != 0 ||
        (rc = conf_get_size(conf, "ozone.scm.container.size", "5GB",
                            &cfg->container_size, errmsg)) != 0 ||
        (rc = get_duration(conf, "hdds.heartbeat.interval", "30s",
                           &cfg->heartbeat_ms, errmsg)) != 0 ||
        (rc = get_duration(conf, "ozone.scm.stale.node.interval", "5m",
                           &cfg->stale_ms, errmsg)) != 0 ||
        (rc = get_duration(conf, "ozone.scm.dead.node.interval", "10m",
                           &cfg->dead_ms, errmsg)) != 0 ||
        (rc = get_count(conf, "ozone.scm.pipeline.owner.container.count", 1,
                        &cfg->owner_containers, errmsg)) != 0 ||
        (rc = get_count(conf, "ozone.scm.datanode.pipeline.limit", 2,
                        &cfg->pipeline_limit, errmsg)) != 0) {
        return rc;
    }
    if (cfg->block_size <= 0 || cfg->block_size > cfg->container_size) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%lld' for 'ozone.scm.block.size': "
                         "it must be positive and at most "
                         "'ozone.scm.container.size' (%lld)",
                         cfg->block_size, cfg->container_size);
        return OZ_ECONFIG;
    }
    /* Ozone requires the same order: a node must miss several heartbeats
     * before it is stale, and be stale before it is dead. */
    if (cfg->stale_ms <= cfg->heartbeat_ms) {
        oz_errmsg_printf(errmsg,
                         "'ozone.scm.stale.node.interval' (%lld ms) must be "
                         "longer than 'hdds.heartbeat.interval' (%lld ms)",
                         cfg->stale_ms, cfg->heartbeat_ms);
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

/* ---- lifecycle ---- */

static int find_cfs(struct scm *scm, char *errmsg)
{
    scm->cf_pipelines = kv_cf(scm->kv, SCM_CF_PIPELINES);
    scm->cf_containers = kv_cf(scm->kv, SCM_CF_CONTAINERS);
    scm->cf_meta = kv_cf(scm->kv, SCM_CF_META);
    if (scm->cf_pipelines < 0 || scm->cf_containers < 0 || scm->cf_meta < 0) {
        oz_errmsg_printf(errmsg,
                         "SCM metadata DB lacks the column families '%s', "
                         "'%s' and '%s'",
                         SCM_CF_PIPELINES, SCM_CF_CONTAINERS, SCM_CF_META);
        return OZ_ECORRUPT;
    }
    return 0;
}

int scm_state_new(struct scm **out,
                  const struct scm_config *cfg,
                  struct kv *kv,
                  const char *cluster_id,
                  unsigned (*apparent)(void *ctx),
                  void *apparent_ctx,
                  int64_t now_mono_ms,
                  char *errmsg)
{
    struct scm *scm = calloc(1, sizeof(*scm));
    int rc;

    *out = NULL;
    if (scm == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    scm->cfg = *cfg;
    scm->kv = kv;
    oz_strlcpy(scm->cluster_id, cluster_id, sizeof(scm->cluster_id));
    scm->apparent = apparent;
    scm->apparent_ctx = apparent_ctx;
    scm->start_mono_ms = now_mono_ms;
    scm->next_container_id = 1;
    /* Command ids only need to differ from those of an earlier run that a
     * datanode may still ack: start from the wall clock. */
    scm->next_command_id = oz_wall_ms() * 1000;
    pthread_mutex_init(&scm->lock, NULL);
    pthread_mutex_init(&scm->id_lock, NULL);
    pthread_mutex_init(&scm->upgrade_lock, NULL);
    pthread_cond_init(&scm->thread_cond, NULL);
    if ((rc = find_cfs(scm, errmsg)) != 0 ||
        (rc = scm__pipelines_load(scm, errmsg)) != 0 ||
        (rc = scm__containers_load(scm, errmsg)) != 0 ||
        (rc = scm__local_id_load(scm, errmsg)) != 0 ||
        (rc = scm__upgrade_load(scm, errmsg)) != 0) {
        scm_state_free(scm);
        return rc;
    }
    log_info(
        "SCM state loaded: %zu pipelines, %zu containers, next block "
        "local id %llu",
        scm->n_pipelines, scm->n_containers,
        (unsigned long long)scm->next_local_id);
    *out = scm;
    return 0;
}

void scm_state_free(struct scm *scm)
{
    if (scm == NULL) {
        return;
    }
    scm_background_stop(scm);
    for (size_t i = 0; i < scm->n_nodes; i++) {
        free(scm->nodes[i]->cmds);
        free(scm->nodes[i]);
    }
    free(scm->nodes);
    for (size_t i = 0; i < scm->n_pipelines; i++) {
        free(scm->pipelines[i]);
    }
    free(scm->pipelines);
    free(scm->containers);
    free(scm->finalizing_dns);
    pthread_cond_destroy(&scm->thread_cond);
    pthread_mutex_destroy(&scm->id_lock);
    pthread_mutex_destroy(&scm->upgrade_lock);
    pthread_mutex_destroy(&scm->lock);
    free(scm);
}

/* ---- periodic work ---- */

void scm_tick(struct scm *scm, int64_t now_mono_ms, uint64_t now_wall_ms)
{
    pthread_mutex_lock(&scm->lock);
    /* Health first: pipelines are created only on nodes healthy now, and
     * containers only on pipelines still open. */
    scm__nodes_tick(scm, now_mono_ms);
    scm__pipelines_tick(scm, now_mono_ms, now_wall_ms);
    scm__containers_tick(scm, now_mono_ms);
    pthread_mutex_unlock(&scm->lock);
}

static long long tick_interval_ms(const struct scm *scm)
{
    long long ms = scm->cfg.heartbeat_ms / 2;

    if (ms > 1000) {
        ms = 1000;
    }
    return ms < 50 ? 50 : ms;
}

static void *background_main(void *arg)
{
    struct scm *scm = arg;
    long long interval = tick_interval_ms(scm);

    pthread_mutex_lock(&scm->lock);
    while (!scm->thread_stop) {
        struct timespec until = oz_deadline_ms(CLOCK_REALTIME, (long)interval);
        pthread_cond_timedwait(&scm->thread_cond, &scm->lock, &until);
        if (scm->thread_stop) {
            break;
        }
        pthread_mutex_unlock(&scm->lock);
        scm_tick(scm, oz_mono_ms(), oz_wall_ms());
        pthread_mutex_lock(&scm->lock);
    }
    pthread_mutex_unlock(&scm->lock);
    return NULL;
}

int scm_background_start(struct scm *scm, char *errmsg)
{
    int rc;

    scm->thread_stop = false;
    rc = pthread_create(&scm->thread, NULL, background_main, scm);
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot start the SCM background thread: %s",
                         strerror(rc));
        return OZ_ENOMEM;
    }
    scm->thread_running = true;
    log_info(
        "SCM background thread started: tick every %lld ms, stale after "
        "%lld ms, dead after %lld ms",
        tick_interval_ms(scm), scm->cfg.stale_ms, scm->cfg.dead_ms);
    return 0;
}

void scm_background_stop(struct scm *scm)
{
    if (!scm->thread_running) {
        return;
    }
    pthread_mutex_lock(&scm->lock);
    scm->thread_stop = true;
    pthread_cond_broadcast(&scm->thread_cond);
    pthread_mutex_unlock(&scm->lock);
    pthread_join(scm->thread, NULL);
    scm->thread_running = false;
}

/* ---- metrics (DESIGN.md §12) ---- */

static double gauge_value(void *ctx)
{
    const struct scm_gauge *g = ctx;
    struct scm *scm = g->scm;
    size_t count = 0;

    pthread_mutex_lock(&scm->lock);
    if (g->kind == 0) {
        for (size_t i = 0; i < scm->n_nodes; i++) {
            count += (int)scm->nodes[i]->state == g->state;
        }
    } else if (g->kind == 1) {
        for (size_t i = 0; i < scm->n_pipelines; i++) {
            count += (int)scm->pipelines[i]->state == g->state;
        }
    } else {
        for (size_t i = 0; i < scm->n_containers; i++) {
            count += (int)scm->containers[i].state == g->state;
        }
    }
    pthread_mutex_unlock(&scm->lock);
    return (double)count;
}

static void add_gauge(struct scm *scm,
                      int kind,
                      int state,
                      const char *name,
                      const char *state_name,
                      const char *help)
{
    char labels[64];
    struct scm_gauge *g;

    if (scm->n_gauges >= sizeof(scm->gauges) / sizeof(scm->gauges[0])) {
        return;
    }
    g = &scm->gauges[scm->n_gauges++];
    g->scm = scm;
    g->kind = kind;
    g->state = state;
    snprintf(labels, sizeof(labels), "state=\"%s\"", state_name);
    metrics_register_fn(name, labels, help, gauge_value, g);
}

void scm_register_metrics(struct scm *scm)
{
    static const Ozone__Hdds__NodeState nodes[] = {
        OZONE__HDDS__NODE_STATE__HEALTHY,
        OZONE__HDDS__NODE_STATE__HEALTHY_READONLY,
        OZONE__HDDS__NODE_STATE__STALE, OZONE__HDDS__NODE_STATE__DEAD};
    static const Ozone__Hdds__PipelineState pipes[] = {
        OZONE__HDDS__PIPELINE_STATE__PIPELINE_ALLOCATED,
        OZONE__HDDS__PIPELINE_STATE__PIPELINE_OPEN,
        OZONE__HDDS__PIPELINE_STATE__PIPELINE_CLOSED};
    static const Ozone__Hdds__ContainerState conts[] = {
        OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN,
        OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSING,
        OZONE__HDDS__CONTAINER_STATE__CONTAINER_CLOSED};

    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        add_gauge(scm, 0, nodes[i], "ozone_scm_datanodes",
                  scm__node_state_name(nodes[i]),
                  "datanodes registered with SCM by health state");
    }
    for (size_t i = 0; i < sizeof(pipes) / sizeof(pipes[0]); i++) {
        add_gauge(scm, 1, pipes[i], "ozone_scm_pipelines",
                  scm__pipeline_state_name(pipes[i]),
                  "pipelines known to SCM by state");
    }
    for (size_t i = 0; i < sizeof(conts) / sizeof(conts[0]); i++) {
        add_gauge(scm, 2, conts[i], "ozone_scm_containers",
                  scm__container_state_name(conts[i]),
                  "containers known to SCM by state");
    }
}
