/* ozone-recon: the read-only observer (DESIGN.md §1, §9): a synced copy of
 * OM's DB, datanode reports, SCM's containers and pipelines, the JSON API
 * and the dashboard.
 *
 * Threading model (common/daemon.h for the skeleton):
 *   - main thread: start-up, signals, shutdown;
 *   - rpc threads: ScmDatanodeService (recon_dn.c) for datanode reports,
 *     which take recon->lock briefly;
 *   - the OM sync thread (recon_om_sync.c): GetVersion, DBUpdates and
 *     checkpoint downloads; it alone writes the OM copy and swaps it under
 *     recon->om_lock;
 *   - the SCM poll thread (recon_scm_sync.c): SCM's tables and versions,
 *     every OM's version, datanode health;
 *   - libmicrohttpd threads: the JSON API and the dashboard, which copy
 *     out under recon->lock and read the OM copy under om_lock (shared).
 * No thread blocks on another daemon while holding a lock. The sync
 * threads start in setup and are stopped in drain (before the servers
 * stop) or at the latest in teardown; the state is freed in teardown,
 * after the servers have stopped.
 */
#include "recon.h"

#include <stdlib.h>

#include "daemon.h"
#include "log.h"
#include "recon_internal.h"

static void stop_threads(struct recon *r)
{
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    recon_om_sync_stop(r);
    recon_scm_sync_stop(r);
}

static int recon_setup(struct daemon *d, char *errmsg)
{
    struct recon_config cfg;
    struct recon *r = NULL;
    int rc;

    if ((rc = recon_config_load(&cfg, d->conf, errmsg)) != 0 ||
        (rc = recon_new(&r, d, d->kv, &cfg, errmsg)) != 0) {
        return rc;
    }
    d->state = r;
    pthread_mutex_lock(&r->lock);
    recon__journal(r, recon_now_ms(), "RECON", d->node_id,
                   "started: software version %d, apparent version %d",
                   version_manager_software(&d->vm),
                   version_manager_apparent(&d->vm));
    pthread_mutex_unlock(&r->lock);
    if ((rc = recon_dn_service_register(r, errmsg)) != 0) {
        return rc; /* teardown frees the state */
    }
    recon_api_register(r);
    recon_web_register(r);
    if ((rc = recon_om_sync_start(r, errmsg)) != 0 ||
        (rc = recon_scm_sync_start(r, errmsg)) != 0) {
        return rc;
    }
    return 0;
}

static void recon_drain(struct daemon *d)
{
    if (d->state != NULL) {
        stop_threads(d->state);
    }
}

static void recon_teardown(struct daemon *d)
{
    struct recon *r = d->state;

    if (r != NULL) {
        stop_threads(r);
        recon_free(r);
    }
    d->state = NULL;
}

static const struct daemon_def recon_def = {
    .name = "recon",
    .title = "Recon",
    .component = OZONE__COMPONENT__RECON,
    .catalog = VERSION_CATALOG_HDDS,
    .node_type = "RECON",
    .id_key = "reconUuid",
    .needs_init = false,
    .dir_key = "ozone.recon.db.dir",
    .rpc_addr_keys = {"ozone.recon.address"},
    .rpc_addr_defaults = {"0.0.0.0:9891"},
    .http_addr_key = "ozone.recon.http-address",
    .http_addr_default = "0.0.0.0:9888",
    .kv_cfs = recon_cf_names,
    .n_kv_cfs = sizeof(recon_cf_names) / sizeof(recon_cf_names[0]),
    .fetch_cluster_id = daemon_fetch_scm_cluster_id,
    .setup = recon_setup,
    .teardown = recon_teardown,
    .drain = recon_drain,
};

int recon_main(int argc, char **argv)
{
    return daemon_main(&recon_def, argc, argv);
}
