/* ozone-scm: the Storage Container Manager (DESIGN.md §1): datanode
 * registry, containers, pipelines, block allocation, HDDS finalization.
 *
 * Threading model (common/daemon.h for the skeleton):
 *   - main thread: start-up, signals, shutdown;
 *   - rpc threads: ScmDatanodeService, ScmBlockService, ScmAdminService
 *     handlers (scm_service.c) and ScmUpgradeService (scm_upgrade.c),
 *     which take scm->lock briefly; FinalizeUpgrade writes VERSION and
 *     the DB on its rpc thread, outside scm->lock;
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

/* version_manager_config.on_persist: #LAYOUTVERSION in the RocksDB meta
 * family follows VERSION at every finalized step (DESIGN.md §6.2). */
static int scm_on_persist(void *ctx, int apparent, char *errmsg)
{
    struct daemon *d = ctx;
    struct kv_batch *b;
    int rc;

    if (d->kv == NULL) {
        return 0; /* start-up actions run before the DB is open */
    }
    b = kv_batch_new();
    if (b == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    kv_batch_put_layout_version(d->kv, b, apparent);
    rc = kv_write(d->kv, b, true, errmsg);
    kv_batch_free(b);
    return rc;
}

/* A crash between VERSION and #LAYOUTVERSION leaves the DB behind:
 * VERSION is the source of truth at start-up (§6.2), so catch up. */
static int sync_layout_version(struct daemon *d, char *errmsg)
{
    int apparent = version_manager_apparent(&d->vm);
    int stored = -1;
    int rc = kv_get_layout_version(d->kv, &stored);

    if (rc == 0 && stored == apparent) {
        return 0;
    }
    if (rc == 0) {
        log_info("#LAYOUTVERSION %d in SCM's DB follows VERSION (%d)", stored,
                 apparent);
    }
    return scm_on_persist(d, apparent, errmsg);
}

static int scm_setup(struct daemon *d, char *errmsg)
{
    struct scm_config cfg;
    struct scm *scm = NULL;
    int rc;

    if ((rc = scm_config_load(&cfg, d->conf, errmsg)) != 0 ||
        (rc = scm_state_new(&scm, &cfg, d->kv, d->cluster_id, scm_apparent, d,
                            oz_mono_ms(), errmsg)) != 0) {
        return rc;
    }
    d->state = scm;
    scm->vm = &d->vm;
    if ((rc = sync_layout_version(d, errmsg)) != 0 ||
        (rc = scm_service_register(scm, d->rpc, errmsg)) != 0 ||
        (rc = scm_upgrade_register(scm, d->rpc, errmsg)) != 0 ||
        (rc = scm_background_start(scm, errmsg)) != 0) {
        return rc; /* teardown frees the state */
    }
    scm_register_metrics(scm);
    scm_upgrade_register_metrics(scm);
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
    .on_persist = scm_on_persist,
};

int scm_main(int argc, char **argv)
{
    return daemon_main(&scm_def, argc, argv);
}
