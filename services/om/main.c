/* ozone-om: the Ozone Manager (DESIGN.md §1): the namespace of volumes,
 * buckets and keys.
 *
 * Threading model: see common/daemon.h (main thread: start-up, signals,
 * shutdown; rpc completion-queue threads run the OzoneManagerService and
 * OmAdminService handlers, which propose writes to the raft log and wait,
 * and read RocksDB directly after the read gate; libmicrohttpd threads
 * serve /prom, /healthz, /version). The raft thread (common/consensus)
 * applies committed entries to the double buffer and takes and installs
 * snapshots (om_ha.h); the flusher thread writes the double buffer to
 * RocksDB (om_buffer.c); the open key cleanup thread scans for expired
 * open keys on the leader (om_cleanup.c).
 */
#include "om.h"

#include <string.h>

#include "daemon.h"
#include "om_recon.h"
#include "om_service.h"
#include "om_upgrade.h"

static int om_setup(struct daemon *d, char *errmsg)
{
    struct om_service *s = NULL;
    int rc = om_service_new(&s, d, errmsg);

    if (rc == 0) {
        d->state = s;
        /* What Recon syncs from (DESIGN.md §9). */
        if ((rc = om_checkpoint_register(d, errmsg)) == 0) {
            rc = om_dbupdates_register(d, errmsg);
        }
        /* Finalization, order gate (DESIGN.md §6.6, §6.7). */
        if (rc == 0) {
            rc = om_upgrade_start(s, errmsg);
        }
    }
    return rc;
}

/* ozone om --upgrade | --downgrade | --bootstrap [--force]. */
static int om_parse_arg(struct daemon *d,
                        int argc,
                        char **argv,
                        int *i,
                        char *errmsg)
{
    const char *a = argv[*i];

    (void)d;
    (void)argc;
    (void)errmsg;
    if (strcmp(a, "--upgrade") == 0 || strcmp(a, "--downgrade") == 0) {
        om_start_options.upgrade = true;
    } else if (strcmp(a, "--bootstrap") == 0) {
        om_start_options.bootstrap = true;
    } else if (strcmp(a, "--force") == 0) {
        om_start_options.force = true;
    } else {
        return 0;
    }
    return 1;
}

static void om_drain(struct daemon *d)
{
    struct om_service *s = d->state;

    /* DESIGN.md §4, §8: a planned stop of the leader hands leadership
     * over before the servers stop. */
    if (s != NULL && s->ha_ready) {
        om_ha_drain(&s->ha);
    }
}

static void om_teardown(struct daemon *d)
{
    /* The rpc server has stopped: no handler runs any more. */
    om_upgrade_stop(d->state);
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
    .usage =
        "  --upgrade, --downgrade  leave prepare mode at start (after "
        "swapping binaries)\n"
        "  --bootstrap [--force]  join an existing OM service as a new "
        "OM\n",
    .parse_arg = om_parse_arg,
    .configure = om_ha_configure,
    .setup = om_setup,
    .teardown = om_teardown,
    .drain = om_drain,
    /* OM BUCKET_QUOTA and KEY_TAGS with their actions (om_features.c). */
    .version_catalog = om_version_catalog,
};

int om_main(int argc, char **argv)
{
    return daemon_main(&om_def, argc, argv);
}
