/* Test fixture for SCM unit tests (test_scm_node.c, test_scm_alloc.c,
 * test_scm_upgrade.c): a real struct scm over a real RocksDB in a fresh
 * temporary directory, and helpers that play datanodes through the same
 * entry points the RPC handlers use. Time is passed in explicitly, so
 * nothing sleeps. Header only: every function is static. */
#ifndef OZONE_SCM_FIXTURE_H
#define OZONE_SCM_FIXTURE_H

#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "scm_internal.h"
#include "test_tmpdir.h"

/* Not every test uses every helper. */
#define FX_FN static __attribute__((unused))

#define FX_MAX_CMDS 64
#define FX_CLUSTER "CID-test"

struct fx
{
    char dir[256];
    struct kv *kv;
    struct scm *scm;
    struct scm_config cfg;
    unsigned apparent; /* SCM's apparent version, changeable by tests */
    /* Commands emitted by the last heartbeat. */
    struct scm_command cmds[FX_MAX_CMDS];
    char cmd_pipeline_members[FX_MAX_CMDS][SCM_MAX_MEMBERS][SCM_ID_MAX];
    size_t n_cmds;
};

FX_FN unsigned fx_apparent(void *ctx)
{
    return ((struct fx *)ctx)->apparent;
}

FX_FN void fx_default_config(struct scm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->block_size = 256LL << 20;
    cfg->container_size = 1LL << 30; /* 4 blocks */
    cfg->heartbeat_ms = 500;
    cfg->stale_ms = 3000;
    cfg->dead_ms = 6000;
    cfg->owner_containers = 1;
    cfg->pipeline_limit = 2;
}

FX_FN void fx_open(struct fx *f, int64_t now)
{
    static const char *const cfs[] = {SCM_CF_PIPELINES, SCM_CF_CONTAINERS,
                                      SCM_CF_META};
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char path[300];

    snprintf(path, sizeof(path), "%s/db", f->dir);
    assert_int_equal(kv_open(&f->kv, path, cfs, 3, KV_CREATE, errmsg), 0);
    int rc = scm_state_new(&f->scm, &f->cfg, f->kv, FX_CLUSTER, fx_apparent, f,
                           now, errmsg);
    if (rc != 0) {
        fail_msg("scm_state_new: %s", errmsg);
    }
}

FX_FN void fx_close(struct fx *f)
{
    scm_state_free(f->scm);
    f->scm = NULL;
    kv_close(f->kv);
    f->kv = NULL;
}

/* A new fixture with fx_default_config() tweaked by the caller later via
 * fx_reopen, opened at time 0. */
FX_FN struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-scm-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    fx_default_config(&f->cfg);
    f->apparent = 100;
    fx_open(f, 0);
    return f;
}

FX_FN void fx_free(struct fx *f)
{
    fx_close(f);
    test_tmpdir_remove(f->dir);
    free(f);
}

FX_FN void fx_hdr(Ozone__VersionHeader *hdr,
                  const char *node,
                  unsigned apparent)
{
    ozone__version_header__init(hdr);
    hdr->component = OZONE__COMPONENT__DATANODE;
    hdr->node_id = (char *)node;
    hdr->software_version = 100;
    hdr->apparent_version = apparent;
    hdr->cluster_id = (char *)FX_CLUSTER;
}

/* Registers datanode uuid (port derived from its name); 0 or the error. */
FX_FN int fx_register_v(struct fx *f,
                        const char *uuid,
                        unsigned apparent,
                        int64_t now,
                        struct scm_error *err)
{
    Ozone__VersionHeader hdr;
    Ozone__Hdds__DatanodeDetails d = OZONE__HDDS__DATANODE_DETAILS__INIT;
    Ozone__Scm__RegisterRequest req = OZONE__SCM__REGISTER_REQUEST__INIT;

    fx_hdr(&hdr, uuid, apparent);
    d.uuid = (char *)uuid;
    d.hostname = (char *)"localhost";
    d.ip_address = (char *)"127.0.0.1";
    d.container_port = 9000 + (uint32_t)strlen(uuid) + (uint32_t)uuid[0];
    req.datanode = &d;
    return scm_register_datanode(f->scm, &hdr, &req, now, 1000, err);
}

FX_FN void fx_register(struct fx *f, const char *uuid, int64_t now)
{
    struct scm_error err;

    if (fx_register_v(f, uuid, f->apparent, now, &err) != 0) {
        fail_msg("register '%s': %s", uuid, err.message);
    }
}

FX_FN void fx_emit(void *ctx,
                   const struct scm_command *cmd,
                   const struct scm_pipeline *p)
{
    struct fx *f = ctx;

    assert_true(f->n_cmds < FX_MAX_CMDS);
    f->cmds[f->n_cmds] = *cmd;
    for (size_t m = 0; p != NULL && m < p->n_members; m++) {
        oz_strlcpy(f->cmd_pipeline_members[f->n_cmds][m], p->members[m].uuid,
                   SCM_ID_MAX);
    }
    f->n_cmds++;
}

/* A heartbeat of uuid reporting pipelines, containers (id/state pairs)
 * and acks; the commands answered land in f->cmds. */
FX_FN int fx_heartbeat_full(struct fx *f,
                            const char *uuid,
                            int64_t now,
                            const char *const *pipes,
                            size_t n_pipes,
                            const uint64_t *cont_ids,
                            const Ozone__Hdds__ContainerState *cont_states,
                            size_t n_conts,
                            const uint64_t *acks,
                            size_t n_acks,
                            struct scm_error *err)
{
    Ozone__VersionHeader hdr;
    Ozone__Scm__HeartbeatRequest req = OZONE__SCM__HEARTBEAT_REQUEST__INIT;
    Ozone__Hdds__ContainerReplicaReport reps[16];
    Ozone__Hdds__ContainerReplicaReport *rep_ptrs[16];

    assert_true(n_conts <= 16);
    fx_hdr(&hdr, uuid, f->apparent);
    req.datanode_uuid = (char *)uuid;
    req.pipeline_ids = (char **)pipes;
    req.n_pipeline_ids = n_pipes;
    for (size_t i = 0; i < n_conts; i++) {
        ozone__hdds__container_replica_report__init(&reps[i]);
        reps[i].container_id = cont_ids[i];
        reps[i].state = cont_states[i];
        rep_ptrs[i] = &reps[i];
    }
    req.containers = rep_ptrs;
    req.n_containers = n_conts;
    req.completed_command_ids = (uint64_t *)acks;
    req.n_completed_command_ids = n_acks;
    f->n_cmds = 0;
    return scm_heartbeat(f->scm, &hdr, &req, now, 1000 + (uint64_t)now, fx_emit,
                         f, err);
}

FX_FN void fx_heartbeat(struct fx *f, const char *uuid, int64_t now)
{
    struct scm_error err;

    if (fx_heartbeat_full(f, uuid, now, NULL, 0, NULL, NULL, 0, NULL, 0,
                          &err) != 0) {
        fail_msg("heartbeat '%s': %s", uuid, err.message);
    }
}

FX_FN Ozone__Hdds__NodeState fx_state(struct fx *f, const char *uuid)
{
    struct scm_node *n = scm__node_find(f->scm, uuid);

    return n != NULL ? n->state
                     : OZONE__HDDS__NODE_STATE__NODE_STATE_UNSPECIFIED;
}

FX_FN size_t fx_count_pipelines(struct fx *f,
                                Ozone__Hdds__ReplicationFactor factor,
                                Ozone__Hdds__PipelineState state)
{
    size_t n = 0;

    for (size_t i = 0; i < f->scm->n_pipelines; i++) {
        n += f->scm->pipelines[i]->factor == factor &&
             f->scm->pipelines[i]->state == state;
    }
    return n;
}

/* Plays every registered node reporting the pipelines it was asked to
 * create (as a datanode would), so that they open. */
FX_FN void fx_open_pipelines(struct fx *f, int64_t now)
{
    struct scm_error err;

    for (size_t i = 0; i < f->scm->n_nodes; i++) {
        const char *uuid = f->scm->nodes[i]->addr.uuid;
        const char *ids[SCM_MAX_NODE_PIPELINES];
        size_t n = 0;
        for (size_t p = 0; p < f->scm->n_pipelines && n < 64; p++) {
            const struct scm_pipeline *pl = f->scm->pipelines[p];
            if (scm__pipeline_active(pl) && scm__pipeline_has(pl, uuid)) {
                ids[n++] = pl->id;
            }
        }
        if (fx_heartbeat_full(f, uuid, now, ids, n, NULL, NULL, 0, NULL, 0,
                              &err) != 0) {
            fail_msg("heartbeat '%s': %s", uuid, err.message);
        }
    }
}

#endif
