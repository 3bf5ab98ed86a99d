/* ozone-recon: the read-only observer (DESIGN.md §1, §9).
 *
 * Threading model: see common/daemon.h.
 */
#include "recon.h"

#include "daemon.h"

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
    .fetch_cluster_id = daemon_fetch_scm_cluster_id,
};

int recon_main(int argc, char **argv)
{
    return daemon_main(&recon_def, argc, argv);
}
