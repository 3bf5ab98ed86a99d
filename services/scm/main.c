/* ozone-scm: the Storage Container Manager (DESIGN.md §1): datanode
 * registry, containers, pipelines, block allocation, HDDS finalization.
 *
 * Threading model (common/daemon.h for the skeleton):
 *   - main thread: start-up, signals, shutdown;
 *   - rpc threads: ScmDatanodeService, ScmBlockService, ScmAdminService
 *     handlers (scm_service.c), which take scm->lock briefly;
 *   - one background thread (scm_state.c) that ticks every
 *     min(hdds.heartbeat.interval / 2, 1s): node health, pipeline and
 *     container upkeep, under scm->lock;
 *   - libmicrohttpd threads render the ozone_scm_* gauges under scm->lock.
 * The background thread starts in setup and is joined in drain (before the
 * servers stop, so nodes are not judged while heartbeats go unserved) or
 * at the latest in teardown; the state is freed in teardown, after the
 * servers have stopped, so no handler runs once it is freed.
 */
#include "scm.h"

#include "daemon.h"
#include "log.h"
#include "scm_internal.h"

static const char *const scm_cfs[] = {SCM_CF_PIPELINES, SCM_CF_CONTAINERS,
                                      SCM_CF_META};

static unsigned scm_apparent(void *ctx)
{
    return (unsigned)version_manager_apparent(&((struct daemon *)ctx)->vm);
}

static int scm_setup(struct daemon *d, char *errmsg)
{
    struct scm_config cfg;
    struct scm *scm = NULL;
    int rc;

    if ((rc = scm_config_load(&cfg, d->conf, errmsg)) != 0 ||
        (rc = scm_state_new(&scm, &cfg, d->kv, d->cluster_id, scm_apparent, d,
                            scm__now_mono_ms(), errmsg)) != 0) {
        return rc;
    }
    d->state = scm;
    if ((rc = scm_service_register(scm, d->rpc, errmsg)) != 0 ||
        (rc = scm_background_start(scm, errmsg)) != 0) {
        return rc; /* teardown frees the state */
    }
    scm_register_metrics(scm);
    return 0;
}

/* Before the servers stop: heartbeats are no longer served from here on, so
 * health must not be judged any more, or every datanode would turn STALE
 * during a slow drain and its pipelines would be closed and persisted. */
static void scm_drain(struct daemon *d)
{
    if (d->state != NULL) {
        scm_background_stop(d->state);
    }
}

static void scm_teardown(struct daemon *d)
{
    scm_state_free(d->state); /* joins the background thread */
    d->state = NULL;
}

static const struct daemon_def scm_def = {
    .name = "scm",
    .title = "Storage Container Manager",
    .component = OZONE__COMPONENT__SCM,
    .catalog = VERSION_CATALOG_HDDS,
    .node_type = "SCM",
    .id_key = "scmUuid",
    .needs_init = true,
    .dir_key = "ozone.scm.db.dirs",
    /* One gRPC server bound to Ozone's three SCM ports (DESIGN.md §4). */
    .rpc_addr_keys = {"ozone.scm.client.address",
                      "ozone.scm.block.client.address",
                      "ozone.scm.datanode.address"},
    .rpc_addr_defaults = {"0.0.0.0:9860", "0.0.0.0:9863", "0.0.0.0:9861"},
    .http_addr_key = "ozone.scm.http-address",
    .http_addr_default = "0.0.0.0:9876",
    .kv_cfs = scm_cfs,
    .n_kv_cfs = sizeof(scm_cfs) / sizeof(scm_cfs[0]),
    .setup = scm_setup,
    .teardown = scm_teardown,
    .drain = scm_drain,
};

int scm_main(int argc, char **argv)
{
    return daemon_main(&scm_def, argc, argv);
}
