/* ozone-datanode: the Datanode (DESIGN.md §1).
 *
 * Threading model: see common/daemon.h (main thread: start-up, signals,
 * shutdown; rpc completion-queue threads run handlers; libmicrohttpd
 * threads serve /prom, /healthz, /version).
 */
#include "datanode.h"

#include "daemon.h"

static const struct daemon_def datanode_def = {
    .name = "datanode",
    .title = "Datanode",
    .component = OZONE__COMPONENT__DATANODE,
    .catalog = VERSION_CATALOG_HDDS,
    .node_type = "DATANODE",
    .id_key = "datanodeUuid",
    .needs_init = false,
    .dir_key = "ozone.metadata.dirs",
    .rpc_addr_keys = {"hdds.container.ipc.port"},
    .rpc_addr_defaults = {"9859"},
    .http_addr_key = "hdds.datanode.http-address",
    .http_addr_default = "0.0.0.0:9882",
    .fetch_cluster_id = daemon_fetch_scm_cluster_id,
};

int datanode_main(int argc, char **argv)
{
    return daemon_main(&datanode_def, argc, argv);
}
