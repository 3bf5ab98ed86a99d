/* ozone om --bootstrap [--force] (DESIGN.md §8): a new OM, started in
 * CONSENSUS_JOIN mode, checks that every existing OM of the service lists
 * it in its configuration (Ozone refuses otherwise: they could not reach
 * it after a restart), then asks the leader to add it as a voter. Runs in
 * the daemon's setup, before the servers start; the raft thread already
 * runs, so the leader can send the log or a snapshot meanwhile. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "om_ha_internal.h"
#include "om_service.h"

struct om_start_options om_start_options;

static int call_one(struct daemon *d,
                    const char *const *addrs,
                    size_t n,
                    const char *method,
                    ProtobufCMessage *req,
                    ProtobufCMessage **resp,
                    struct rpc_error *err,
                    int attempts,
                    char *errmsg)
{
    struct rpc_client_config cfg;
    struct rpc_client *c = NULL;
    int rc;

    daemon_client_config(d, addrs, n, &cfg);
    cfg.max_attempts = attempts;
    cfg.deadline_ms = 130000;
    rc = rpc_client_new(&c, &cfg, errmsg);
    if (rc != 0) {
        return rc;
    }
    rc = rpc_client_call(c, &ozone__om__om_admin_service__descriptor, method,
                         req, resp, err);
    rpc_client_free(c);
    return rc;
}

static int check_configs(struct om_service *s, bool force, char *errmsg)
{
    struct om_ha *ha = &s->ha;
    const struct om_ha_node *me = &ha->nodes[ha->self];
    char missing[OZ_ERRMSG_SIZE] = "";
    size_t used = 0;

    for (unsigned i = 0; i < ha->n_nodes; i++) {
        Ozone__Om__OmConfigCheckRequest req =
            OZONE__OM__OM_CONFIG_CHECK_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        struct rpc_error err;
        const char *addr = ha->nodes[i].rpc_address;
        bool known = false;

        if (i == ha->self) {
            continue;
        }
        req.node_id = (char *)me->name;
        req.rpc_address = (char *)me->rpc_address;
        int rc = call_one(s->d, &addr, 1, "ConfigCheck", &req.base, &resp, &err,
                          3, errmsg);
        if (rc == 0) {
            known = ((Ozone__Om__OmConfigCheckResponse *)resp)->known;
            rpc_message_free(resp);
        } else {
            log_warn("bootstrap: cannot ask OM '%s' at '%s': %s",
                     ha->nodes[i].name, addr, err.message);
        }
        if (!known) {
            used += (size_t)snprintf(
                missing + used,
                used < sizeof(missing) ? sizeof(missing) - used : 0, "%s'%s'",
                used > 0 ? ", " : "", ha->nodes[i].name);
            if (used >= sizeof(missing)) {
                used = sizeof(missing) - 1;
            }
        }
    }
    if (missing[0] == '\0') {
        return 0;
    }
    if (force) {
        log_warn(
            "bootstrap --force: OM(s) %s do not list '%s' in their "
            "configuration; adding it anyway",
            missing, me->name);
        return 0;
    }
    oz_errmsg_printf(errmsg,
                     "cannot bootstrap OM '%s': OM(s) %s do not have it in "
                     "their configuration; add it to ozone.om.nodes.%s and "
                     "ozone.om.address.%s.%s on every OM and restart them, "
                     "or use --force",
                     me->name, missing, ha->service_id, ha->service_id,
                     me->name);
    return OZ_ECONFIG;
}

int om_bootstrap_join(struct om_service *s, bool force, char *errmsg)
{
    struct om_ha *ha = &s->ha;
    const struct om_ha_node *me = &ha->nodes[ha->self];
    const char *addrs[OM_HA_MAX_NODES];
    Ozone__Om__OmAddNodeRequest req = OZONE__OM__OM_ADD_NODE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    size_t n = 0;
    int rc;

    if (!ha->has_service) {
        oz_errmsg_printf(errmsg,
                         "--bootstrap needs an OM service: set "
                         "ozone.om.service.ids and ozone.om.nodes.<id>");
        return OZ_ECONFIG;
    }
    rc = check_configs(s, force, errmsg);
    if (rc != 0) {
        return rc;
    }
    for (unsigned i = 0; i < ha->n_nodes; i++) {
        if (i != ha->self) {
            addrs[n++] = ha->nodes[i].rpc_address;
        }
    }
    if (n == 0) {
        oz_errmsg_printf(errmsg,
                         "--bootstrap: the service lists no other OM to join");
        return OZ_ECONFIG;
    }
    req.node_id = (char *)me->name;
    req.raft_id = me->raft_id;
    req.raft_address = (char *)me->raft_address;
    req.force = force;
    log_info("bootstrap: asking the OM leader to add '%s' (raft id %" PRIu64
             ", %s)",
             me->name, me->raft_id, me->raft_address);
    rc = call_one(s->d, addrs, n, "AddNode", &req.base, &resp, &err,
                  (int)(4 * n + 6), errmsg);
    if (rc != 0) {
        oz_errmsg_printf(
            errmsg, "cannot bootstrap OM '%s': %s", me->name,
            err.message[0] != '\0' ? err.message : oz_strerror(rc));
        return rc;
    }
    rpc_message_free(resp);
    log_info("bootstrap: OM '%s' joined service '%s'", me->name,
             ha->service_id);
    return 0;
}
