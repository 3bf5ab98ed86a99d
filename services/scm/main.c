/* ozone-scm: the Storage Container Manager (DESIGN.md §1).
 *
 * Threading model: see common/daemon.h (main thread: start-up, signals,
 * shutdown; rpc completion-queue threads run handlers; libmicrohttpd
 * threads serve /prom, /healthz, /version).
 */
#include "scm.h"

#include "daemon.h"

static const struct daemon_def scm_def = {
    .name = "scm",
    .title = "Storage Container Manager",
    .component = OZONE__COMPONENT__SCM,
    .catalog = VERSION_CATALOG_HDDS,
    .node_type = "SCM",
    .id_key = "scmUuid",
    .needs_init = true,
    .dir_key = "ozone.scm.db.dirs",
    .rpc_addr_keys = {"ozone.scm.client.address",
                      "ozone.scm.block.client.address",
                      "ozone.scm.datanode.address"},
    .rpc_addr_defaults = {"0.0.0.0:9860", "0.0.0.0:9863", "0.0.0.0:9861"},
    .http_addr_key = "ozone.scm.http-address",
    .http_addr_default = "0.0.0.0:9876",

};

int scm_main(int argc, char **argv)
{
    return daemon_main(&scm_def, argc, argv);
}
