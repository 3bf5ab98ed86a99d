/* OmAdminService (om.proto): roles, leadership transfer, prepare and
 * cancel prepare (DESIGN.md §6.8, §8), membership (ozone om --bootstrap)
 * and a digest of the tables for cross-OM checks (DESIGN.md §8.1). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "om_ha_internal.h"
#include "rpc.h"

#define ADMIN_TIMEOUT_MS 20000

static enum rpc_handler_result fail(struct rpc_call *call,
                                    const struct om_result *res)
{
    enum rpc_status st = RPC_STATUS_INTERNAL;

    switch (res->code) {
        case OZONE__RESULT_CODE__NOT_LEADER:
            st = RPC_STATUS_FAILED_PRECONDITION;
            break;
        case OZONE__RESULT_CODE__INVALID_ARGUMENT:
            st = RPC_STATUS_INVALID_ARGUMENT;
            break;
        case OZONE__RESULT_CODE__UNAVAILABLE:
            st = RPC_STATUS_UNAVAILABLE;
            break;
        case OZONE__RESULT_CODE__TIMEOUT:
            st = RPC_STATUS_DEADLINE_EXCEEDED;
            break;
        case OZONE__RESULT_CODE__NOT_SUPPORTED_OPERATION_WHEN_PREPARED:
            st = RPC_STATUS_FAILED_PRECONDITION;
            break;
        default:
            break;
    }
    rpc_call_set_error(call, st, res->code,
                       res->leader_hint[0] != '\0' ? res->leader_hint : NULL,
                       "%s", res->message);
    return RPC_HANDLER_DONE;
}

static bool require_leader(struct om_ha *ha, struct om_result *res)
{
    memset(res, 0, sizeof(*res));
    if (!consensus_is_leader(ha->c)) {
        om_ha_not_leader(ha, res);
        return false;
    }
    return true;
}

static void host_of(const char *addr, char *out, size_t size)
{
    oz_strlcpy(out, addr, size);
    char *colon = strrchr(out, ':');
    if (colon != NULL) {
        *colon = '\0';
    }
}

/* ---- roles ---- */

static const char *server_role(const struct consensus_member *m)
{
    if (m == NULL) {
        return "UNKNOWN";
    }
    if (m->is_leader) {
        return "LEADER";
    }
    return m->role == CONSENSUS_VOTER ? "FOLLOWER"
                                      : consensus_member_role_name(m->role);
}

static enum rpc_handler_result roles(void *data,
                                     struct rpc_call *call,
                                     const ProtobufCMessage *req_msg,
                                     ProtobufCMessage *resp_msg)
{
    struct om_ha *ha = data;
    Ozone__Om__OmRolesResponse *resp = (Ozone__Om__OmRolesResponse *)resp_msg;
    struct consensus_status st;
    unsigned max = OM_HA_MAX_NODES * 2;
    unsigned n = 0;
    char host[256];

    (void)req_msg;
    consensus_status(ha->c, &st);
    resp->roles = rpc_call_alloc(call, max * sizeof(*resp->roles));
    /* Configured nodes first, in configuration order, then members this
     * node's configuration does not list (added by --bootstrap). */
    for (unsigned i = 0; i < ha->n_nodes; i++) {
        const struct consensus_member *m = NULL;
        Ozone__Om__OmRole *r = rpc_call_alloc(call, sizeof(*r));

        for (unsigned k = 0; k < st.n_members; k++) {
            if (st.members[k].id == ha->nodes[i].raft_id) {
                m = &st.members[k];
            }
        }
        if (m == NULL && i != ha->self) {
            continue; /* configured but not (yet) a member */
        }
        ozone__om__om_role__init(r);
        r->node_id = rpc_call_strdup(call, ha->nodes[i].name);
        r->server_role = rpc_call_strdup(
            call, m != NULL
                      ? server_role(m)
                      : (st.role == CONSENSUS_LEADER ? "LEADER" : "UNKNOWN"));
        host_of(ha->nodes[i].rpc_address, host, sizeof(host));
        r->hostname = rpc_call_strdup(call, host);
        r->rpc_address = rpc_call_strdup(call, ha->nodes[i].rpc_address);
        r->raft_id = ha->nodes[i].raft_id;
        r->member_role = rpc_call_strdup(
            call, m != NULL ? consensus_member_role_name(m->role) : "");
        resp->roles[n++] = r;
    }
    for (unsigned k = 0; k < st.n_members && n < max; k++) {
        const struct consensus_member *m = &st.members[k];
        if (om_ha_node_by_name(ha, m->name) != NULL) {
            continue;
        }
        Ozone__Om__OmRole *r = rpc_call_alloc(call, sizeof(*r));
        ozone__om__om_role__init(r);
        r->node_id = rpc_call_strdup(call, m->name);
        r->server_role = rpc_call_strdup(call, server_role(m));
        host_of(m->address, host, sizeof(host));
        r->hostname = rpc_call_strdup(call, host);
        r->rpc_address = rpc_call_strdup(call, "");
        r->raft_id = m->id;
        r->member_role =
            rpc_call_strdup(call, consensus_member_role_name(m->role));
        resp->roles[n++] = r;
    }
    resp->n_roles = n;
    resp->leader = rpc_call_strdup(call, st.leader_name);
    resp->term = st.term;
    resp->commit_index = st.commit_index;
    resp->applied_index = st.last_applied;
    return RPC_HANDLER_DONE;
}

/* ---- leadership transfer ---- */

static enum rpc_handler_result transfer(void *data,
                                        struct rpc_call *call,
                                        const ProtobufCMessage *req_msg,
                                        ProtobufCMessage *resp_msg)
{
    struct om_ha *ha = data;
    const Ozone__Om__OmTransferRequest *req =
        (const Ozone__Om__OmTransferRequest *)req_msg;
    Ozone__Om__OmTransferResponse *resp =
        (Ozone__Om__OmTransferResponse *)resp_msg;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    char name[CONSENSUS_NAME_MAX] = "";
    struct consensus_member members[CONSENSUS_MAX_MEMBERS];
    struct om_result res;
    uint64_t target = 0;
    int rc;

    if (!require_leader(ha, &res)) {
        return fail(call, &res);
    }
    if (!req->random) {
        unsigned n = consensus_members(ha->c, members, CONSENSUS_MAX_MEMBERS);
        for (unsigned i = 0; i < n && i < CONSENSUS_MAX_MEMBERS; i++) {
            if (strcmp(members[i].name, req->node_id) == 0) {
                target = members[i].id;
            }
        }
        if (target == 0) {
            om_result_set(&res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                          "cannot transfer leadership to '%s': no such OM in "
                          "the ring; see 'ozone admin om roles'",
                          req->node_id);
            return fail(call, &res);
        }
        if (target == consensus_id(ha->c)) {
            resp->new_leader = rpc_call_strdup(call, req->node_id);
            return RPC_HANDLER_DONE; /* already the leader */
        }
    }
    rc = consensus_transfer_wait(ha->c, target, ADMIN_TIMEOUT_MS, errmsg);
    if (rc != 0) {
        /* errmsg names the transfer, the target and what to do. */
        om_result_set(&res, OZONE__RESULT_CODE__INTERNAL_ERROR, "%s", errmsg);
        return fail(call, &res);
    }
    /* Wait briefly until the new leader is known here. */
    for (int i = 0; i < 100; i++) {
        uint64_t id = 0;
        if (consensus_leader(ha->c, &id, name, sizeof(name), NULL, 0) == 0 &&
            id != consensus_id(ha->c)) {
            break;
        }
        name[0] = '\0';
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    resp->new_leader = rpc_call_strdup(call, name);
    log_info("transferred OM leadership to '%s'", name);
    return RPC_HANDLER_DONE;
}

/* ---- prepare ---- */

static enum rpc_handler_result submit_prepare_op(struct om_ha *ha,
                                                 struct rpc_call *call,
                                                 bool cancel,
                                                 uint64_t *index)
{
    struct om_result res;

    if (!require_leader(ha, &res)) {
        return fail(call, &res);
    }
    om_ha_submit_prepare(ha, cancel, &res, index);
    if (res.code != OZONE__RESULT_CODE__OK) {
        return fail(call, &res);
    }
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result prepare(void *data,
                                       struct rpc_call *call,
                                       const ProtobufCMessage *req_msg,
                                       ProtobufCMessage *resp_msg)
{
    Ozone__Om__OmPrepareResponse *resp =
        (Ozone__Om__OmPrepareResponse *)resp_msg;

    (void)req_msg;
    return submit_prepare_op(data, call, false, &resp->txn_id);
}

static enum rpc_handler_result cancel_prepare(void *data,
                                              struct rpc_call *call,
                                              const ProtobufCMessage *req_msg,
                                              ProtobufCMessage *resp_msg)
{
    uint64_t index = 0;

    (void)req_msg;
    (void)resp_msg;
    return submit_prepare_op(data, call, true, &index);
}

static enum rpc_handler_result prepare_status(void *data,
                                              struct rpc_call *call,
                                              const ProtobufCMessage *req_msg,
                                              ProtobufCMessage *resp_msg)
{
    struct om_ha *ha = data;
    const Ozone__Om__OmPrepareStatusRequest *req =
        (const Ozone__Om__OmPrepareStatusRequest *)req_msg;
    Ozone__Om__OmPrepareStatusResponse *resp =
        (Ozone__Om__OmPrepareStatusResponse *)resp_msg;
    uint64_t prepared = 0;
    const char *status = "NOT_PREPARED";
    enum om_prepare_state ps = om_ha_prepare_state(ha, &prepared);

    /* Ozone's states: the gate closes when the entry is applied; the OM
     * is prepared once its snapshot is taken and its log purged. */
    if (ps == OM_PREPARE_COMPLETED) {
        status = prepared >= req->txn_id ? "PREPARE_COMPLETED"
                                         : "PREPARE_GATE_ENABLED";
    } else if (ps == OM_PREPARE_GATE_ENABLED) {
        status = "PREPARE_GATE_ENABLED";
    }
    resp->status = rpc_call_strdup(call, status);
    resp->prepared_index = prepared;
    pthread_mutex_lock(&ha->om->write_lock);
    resp->applied_index = ha->om->applied_index;
    pthread_mutex_unlock(&ha->om->write_lock);
    resp->node_id = rpc_call_strdup(call, ha->nodes[ha->self].name);
    return RPC_HANDLER_DONE;
}

/* ---- membership ---- */

static enum rpc_handler_result add_node(void *data,
                                        struct rpc_call *call,
                                        const ProtobufCMessage *req_msg,
                                        ProtobufCMessage *resp_msg)
{
    struct om_ha *ha = data;
    const Ozone__Om__OmAddNodeRequest *req =
        (const Ozone__Om__OmAddNodeRequest *)req_msg;
    char errmsg[OZ_ERRMSG_SIZE] = "";
    struct om_result res;
    int rc;

    (void)resp_msg;
    if (!require_leader(ha, &res)) {
        return fail(call, &res);
    }
    if (req->node_id[0] == '\0' || req->raft_id == 0 ||
        strchr(req->raft_address, ':') == NULL) {
        om_result_set(&res, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "add OM request needs a node id, raft id and raft "
                      "address");
        return fail(call, &res);
    }
    log_info("adding OM '%s' (raft id %" PRIu64 ", %s) to the ring",
             req->node_id, req->raft_id, req->raft_address);
    rc = consensus_add_voter_wait(ha->c, req->raft_id, req->node_id,
                                  req->raft_address, 120000, errmsg);
    if (rc != 0) {
        om_result_set(&res,
                      rc == OZ_ENOTLEADER ? OZONE__RESULT_CODE__NOT_LEADER
                                          : OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot add OM '%s': %s", req->node_id, errmsg);
        return fail(call, &res);
    }
    log_info("OM '%s' is now a voter", req->node_id);
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result config_check(void *data,
                                            struct rpc_call *call,
                                            const ProtobufCMessage *req_msg,
                                            ProtobufCMessage *resp_msg)
{
    struct om_ha *ha = data;
    const Ozone__Om__OmConfigCheckRequest *req =
        (const Ozone__Om__OmConfigCheckRequest *)req_msg;
    Ozone__Om__OmConfigCheckResponse *resp =
        (Ozone__Om__OmConfigCheckResponse *)resp_msg;
    const struct om_ha_node *n = om_ha_node_by_name(ha, req->node_id);

    resp->known = n != NULL && (req->rpc_address[0] == '\0' ||
                                strcmp(n->rpc_address, req->rpc_address) == 0);
    resp->node_id = rpc_call_strdup(call, ha->nodes[ha->self].name);
    return RPC_HANDLER_DONE;
}

/* ---- digest ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static enum rpc_handler_result digest(void *data,
                                      struct rpc_call *call,
                                      const ProtobufCMessage *req_msg,
                                      ProtobufCMessage *resp_msg)
{
    struct om_ha *ha = data;
    struct om *om = ha->om;
    Ozone__Om__OmDigestResponse *resp = (Ozone__Om__OmDigestResponse *)resp_msg;
    uint64_t h = 14695981039346656037ull;
    uint64_t entries = 0;
    uint64_t prepared = 0;

    (void)req_msg;
    pthread_mutex_lock(&om->write_lock);
    for (int t = 0; t < OM_N_CFS; t++) {
        struct kv_iter *it = kv_iter_new(om->kv, om->cf[t]);
        size_t kl, vl;
        if (it == NULL) {
            continue;
        }
        h = fnv(h, om_cf_names[t], strlen(om_cf_names[t]) + 1);
        for (kv_iter_seek_first(it); kv_iter_valid(it); kv_iter_next(it)) {
            const void *k = kv_iter_key(it, &kl);
            const void *v = kv_iter_value(it, &vl);
            uint64_t lens[2] = {kl, vl};
            h = fnv(h, lens, sizeof(lens));
            h = fnv(h, k, kl);
            h = fnv(h, v, vl);
            entries++;
        }
        kv_iter_free(it);
    }
    if (om_read_prepared_index(om, &prepared) == 0) {
        h = fnv(h, &prepared, sizeof(prepared));
    }
    resp->applied_index = om->applied_index;
    pthread_mutex_unlock(&om->write_lock);
    resp->digest = rpc_call_printf(call, "%016" PRIx64, h);
    resp->entries = entries;
    resp->node_id = rpc_call_strdup(call, ha->nodes[ha->self].name);
    return RPC_HANDLER_DONE;
}

int om_admin_register(struct om_ha *ha, char *errmsg)
{
    static const rpc_handler_fn handlers[] = {
        roles,          transfer, prepare,      prepare_status,
        cancel_prepare, add_node, config_check, digest};

    return rpc_server_add_service(ha->d->rpc,
                                  &ozone__om__om_admin_service__descriptor,
                                  handlers, ha, errmsg);
}
