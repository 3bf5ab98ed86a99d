/* ozone-datanode: stores block data in containers (DESIGN.md §1, §7).
 * Storage is created at the first start, with the cluster id learnt from
 * SCM, as Ozone datanodes do.
 *
 * Threading model (besides common/daemon.h's main, RPC and HTTP threads):
 * - RPC handler threads run DatanodeService against the container store
 *   (dn_service.c); they touch only the local disk and RocksDB, with the
 *   store's locks (dn_internal.h).
 * - One heartbeat thread for SCM and, when ozone.recon.address is set, one
 *   for Recon (dn_heartbeat.c), each with its own rpc client. The SCM
 *   thread also executes SCM's commands against the store, including
 *   FINALIZE_UPGRADE (dn_upgrade.c), so finalization never races a
 *   container close.
 * drain() stops and joins the heartbeat threads before the servers stop;
 * teardown() closes the store after the servers have stopped.
 */
#include "datanode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "dn_internal.h"
#include "log.h"

/* Room for the envelope of a ReadChunk response around a chunk's bytes. */
#define DN_MESSAGE_OVERHEAD (64 * 1024)

struct dn_state
{
    struct dn_store *store;
    struct dn_heartbeat *hb;
    char *dirs_buf; /* hdds.datanode.dir, split in place */
    const char *dirs[DN_MAX_VOLUMES];
    size_t n_dirs;
};

/* Splits hdds.datanode.dir (comma-separated, spaces trimmed). Unset: a
 * "data" directory beside the datanode's metadata. */
static int data_dirs(struct daemon *d, struct dn_state *st, char *errmsg)
{
    const char *conf = conf_get(d->conf, "hdds.datanode.dir");
    char fallback[4200];

    if (conf == NULL || conf[0] == '\0') {
        snprintf(fallback, sizeof(fallback), "%s/data", d->storage_dir);
        log_warn(
            "'hdds.datanode.dir' is not set: storing containers in "
            "'%s'",
            fallback);
        conf = fallback;
    }
    st->dirs_buf = strdup(conf);
    if (st->dirs_buf == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    char *p = st->dirs_buf;
    while (p != NULL) {
        char *next = strchr(p, ',');
        if (next != NULL) {
            *next++ = '\0';
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            p[--len] = '\0';
        }
        if (len > 0) {
            if (st->n_dirs == DN_MAX_VOLUMES) {
                oz_errmsg_printf(errmsg,
                                 "invalid value for 'hdds.datanode.dir': "
                                 "more than %d directories",
                                 DN_MAX_VOLUMES);
                return OZ_ECONFIG;
            }
            st->dirs[st->n_dirs++] = p;
        }
        p = next;
    }
    if (st->n_dirs == 0) {
        oz_errmsg_printf(errmsg,
                         "invalid value for 'hdds.datanode.dir': no "
                         "directory listed");
        return OZ_ECONFIG;
    }
    return 0;
}

struct dn_store *dn__daemon_store(struct daemon *d)
{
    struct dn_state *st = d->state;

    return st != NULL ? st->store : NULL;
}

static int dn_setup(struct daemon *d, char *errmsg)
{
    struct dn_state *st = calloc(1, sizeof(*st));
    struct dn_store_config cfg;
    long long max_msg = 32LL << 20;
    int rc;

    if (st == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    d->state = st; /* teardown frees what was set up */
    rc = conf_get_size(d->conf, "ozone.rpc.max.message.size", "32MB", &max_msg,
                       errmsg);
    if (rc == 0 && max_msg <= 2 * DN_MESSAGE_OVERHEAD) {
        oz_errmsg_printf(errmsg,
                         "invalid value for 'ozone.rpc.max.message.size': "
                         "a datanode needs more than %d bytes",
                         2 * DN_MESSAGE_OVERHEAD);
        rc = OZ_ECONFIG;
    }
    if (rc != 0 || (rc = data_dirs(d, st, errmsg)) != 0) {
        return rc;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.data_dirs = st->dirs;
    cfg.n_data_dirs = st->n_dirs;
    cfg.cluster_id = d->cluster_id;
    cfg.node_id = d->node_id;
    cfg.max_chunk_bytes = (size_t)max_msg - DN_MESSAGE_OVERHEAD;
    cfg.vm = &d->vm;
    if ((rc = dn_store_open(&st->store, d->kv, &cfg, errmsg)) != 0 ||
        (rc = dn_service_register(d->rpc, st->store, errmsg)) != 0) {
        return rc;
    }
    return dn_heartbeat_start(&st->hb, d, st->store, errmsg);
}

static void dn_drain(struct daemon *d)
{
    struct dn_state *st = d->state;

    if (st != NULL) {
        dn_heartbeat_stop(st->hb);
        st->hb = NULL;
    }
}

static void dn_teardown(struct daemon *d)
{
    struct dn_state *st = d->state;

    if (st == NULL) {
        return;
    }
    dn_heartbeat_stop(st->hb);
    dn_store_close(st->store);
    free(st->dirs_buf);
    free(st);
    d->state = NULL;
}

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
    .kv_cfs = dn_kv_cfs,
    .n_kv_cfs = DN_N_KV_CFS,
    .fetch_cluster_id = daemon_fetch_scm_cluster_id,
    .setup = dn_setup,
    .teardown = dn_teardown,
    .drain = dn_drain,
    .version_catalog = dn_upgrade_catalog,
};

int datanode_main(int argc, char **argv)
{
    return daemon_main(&datanode_def, argc, argv);
}
