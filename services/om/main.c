/* ozone-om: the Ozone Manager (DESIGN.md §1).
 *
 * Threading model: see common/daemon.h (main thread: start-up, signals,
 * shutdown; rpc completion-queue threads run handlers; libmicrohttpd
 * threads serve /prom, /healthz, /version).
 */
#include "om.h"

#include "daemon.h"

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
    .fetch_cluster_id = daemon_fetch_scm_cluster_id,
};

int om_main(int argc, char **argv)
{
    return daemon_main(&om_def, argc, argv);
}
