/* ozone-om: the Ozone Manager (DESIGN.md §1): the namespace of volumes,
 * buckets and keys.
 *
 * Threading model: see common/daemon.h (main thread: start-up, signals,
 * shutdown; rpc completion-queue threads run the OzoneManagerService
 * handlers, which serialise writes on the om write lock (om_state.h) and
 * read RocksDB directly; libmicrohttpd threads serve /prom, /healthz,
 * /version). No thread of its own.
 */
#include "om.h"

#include "daemon.h"
#include "om_service.h"

static int om_setup(struct daemon *d, char *errmsg)
{
    struct om_service *s = NULL;
    int rc = om_service_new(&s, d, errmsg);

    if (rc == 0) {
        d->state = s;
    }
    return rc;
}

static void om_teardown(struct daemon *d)
{
    /* The rpc server has stopped: no handler runs any more. */
    om_service_free(d->state);
    d->state = NULL;
}

static const struct daemon_def om_def = {
    .name = "om",
    .title = "Ozone Manager",
    .component = OZONE__COMPONENT__OM,
    .catalog = VERSION_CATALOG_OM,
    .node_type = "OM",
    .id_key = "omUuid",
    .needs_init = true,
    .dir_key = "ozone.om.db.dirs",
    .rpc_addr_keys = {"ozone.om.address"},
    .rpc_addr_defaults = {"0.0.0.0:9862"},
    .http_addr_key = "ozone.om.http-address",
    .http_addr_default = "0.0.0.0:9874",
    .kv_cfs = om_cf_names,
    .n_kv_cfs = OM_N_CFS,
    /* DESIGN.md §6.2 and Ozone: OM's --init asks SCM for the cluster id. */
    .fetch_cluster_id = daemon_fetch_scm_cluster_id,
    .setup = om_setup,
    .teardown = om_teardown,
};

int om_main(int argc, char **argv)
{
    return daemon_main(&om_def, argc, argv);
}
