/* The OM service Recon syncs from, and which of its nodes leads
 * (DESIGN.md §8, §9; Ozone's Recon reaches the OM leader through the
 * service id's fail-over proxy and takes /dbCheckpoint from the leader's
 * HTTP address).
 *
 * The nodes come from the configuration as the client reads them (the
 * first id of ozone.om.service.ids, its ozone.om.nodes.<sid>, each node's
 * ozone.om.address.<sid>.<node> and ozone.om.http-address.<sid>.<node>),
 * else ozone.om.address alone. Each node has its own client with one
 * attempt per call, so an answer is known to come from the node asked: the
 * OM copy's sequence numbers belong to one node's RocksDB, and a client
 * that followed a NOT_LEADER hint by itself would hide a change of node.
 *
 * The leader is found with OmAdminService.Roles, which every OM answers
 * with the leader it knows. The last leader found is asked first; an OM
 * that names another node redirects there (what NOT_LEADER does for other
 * calls) until a node names itself; a node that is down, knows no leader
 * (an election) or names one Recon does not know moves on to the next
 * node not yet asked. A lone OM (no service) is used without asking.
 */
#include "recon_internal.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#define OM_DEFAULT_PORT ":9862"

static bool list_item(const char *list, size_t idx, char *out, size_t size)
{
    size_t i = 0;
    const char *p = list;

    while (*p != '\0') {
        while (*p == ',' || *p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        const char *end = p;
        while (*end != '\0' && *end != ',' && *end != ' ') {
            end++;
        }
        if (i == idx) {
            size_t len = (size_t)(end - p);
            if (len >= size) {
                return false;
            }
            memcpy(out, p, len);
            out[len] = '\0';
            return true;
        }
        i++;
        p = end;
    }
    return false;
}

static void dial_with_port(const char *addr, char *out, size_t size)
{
    daemon_dial_address(addr, out, size);
    if (strchr(out, ':') == NULL) {
        size_t l = strlen(out);
        snprintf(out + l, size - l, OM_DEFAULT_PORT);
    }
}

size_t recon_om_nodes(const struct conf *conf,
                      struct recon_om_node *nodes,
                      size_t max,
                      char *service,
                      size_t size)
{
    const char *ids = conf_get(conf, "ozone.om.service.ids");
    char sid[128], node[RECON_ID_MAX], key[512];
    size_t n = 0;

    if (service != NULL && size > 0) {
        service[0] = '\0';
    }
    if (max == 0) {
        return 0;
    }
    memset(nodes, 0, max * sizeof(*nodes));
    if (ids != NULL && list_item(ids, 0, sid, sizeof(sid))) {
        snprintf(key, sizeof(key), "ozone.om.nodes.%s", sid);
        const char *list = conf_get(conf, key);
        for (size_t i = 0;
             list != NULL && n < max && list_item(list, i, node, sizeof(node));
             i++) {
            snprintf(key, sizeof(key), "ozone.om.address.%s.%s", sid, node);
            const char *a = conf_get(conf, key);
            if (a == NULL || a[0] == '\0') {
                continue;
            }
            struct recon_om_node *o = &nodes[n++];
            oz_strlcpy(o->node_id, node, sizeof(o->node_id));
            dial_with_port(a, o->rpc_address, sizeof(o->rpc_address));
            snprintf(key, sizeof(key), "ozone.om.http-address.%s.%s", sid,
                     node);
            const char *h = conf_get(conf, key);
            if (h != NULL && h[0] != '\0') {
                daemon_dial_address(h, o->http_address,
                                    sizeof(o->http_address));
            }
        }
        if (n > 0) {
            if (service != NULL) {
                oz_strlcpy(service, sid, size);
            }
            return n;
        }
    }
    dial_with_port(conf_get_str(conf, "ozone.om.address", "0.0.0.0:9862"),
                   nodes[0].rpc_address, sizeof(nodes[0].rpc_address));
    daemon_dial_address(
        conf_get_str(conf, "ozone.om.http-address", "0.0.0.0:9874"),
        nodes[0].http_address, sizeof(nodes[0].http_address));
    return 1;
}

size_t recon_om_addresses(const struct conf *conf,
                          char addrs[][RECON_ADDR_MAX],
                          size_t max)
{
    struct recon_om_node nodes[RECON_MAX_OMS];
    size_t n = recon_om_nodes(conf, nodes, RECON_MAX_OMS, NULL, 0);

    if (n > max) {
        n = max;
    }
    for (size_t i = 0; i < n; i++) {
        oz_strlcpy(addrs[i], nodes[i].rpc_address, RECON_ADDR_MAX);
    }
    return n;
}

/* ---- one Roles answer ---- */

static size_t node_by_id(const struct recon_om_node *nodes,
                         size_t n,
                         const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].node_id[0] != '\0' && strcmp(nodes[i].node_id, id) == 0) {
            return i;
        }
    }
    return n;
}

enum recon_roles_verdict recon_om_roles_verdict(
    const Ozone__Om__OmRolesResponse *resp,
    const struct recon_om_node *nodes,
    size_t n,
    size_t asked,
    size_t *next,
    char *reason,
    size_t size)
{
    const char *self = resp->hdr != NULL && resp->hdr->node_id != NULL
                           ? resp->hdr->node_id
                           : "";
    const char *leader = resp->leader != NULL ? resp->leader : "";
    const char *leader_rpc = "";
    size_t i;

    *next = n;
    if (leader[0] == '\0') {
        snprintf(reason, size, "OM '%s' knows no leader", self);
        return RECON_ROLES_NONE;
    }
    if (strcmp(leader, self) == 0) {
        *next = asked;
        snprintf(reason, size, "OM '%s' is the leader", self);
        return RECON_ROLES_SELF;
    }
    for (size_t k = 0; k < resp->n_roles; k++) {
        const Ozone__Om__OmRole *role = resp->roles[k];
        if (role != NULL && role->node_id != NULL &&
            strcmp(role->node_id, leader) == 0 && role->rpc_address != NULL) {
            leader_rpc = role->rpc_address;
        }
    }
    /* By node id; else by the address the OM gives for the leader (a
     * configuration that names nodes differently from the OMs'). */
    i = node_by_id(nodes, n, leader);
    for (size_t k = 0; i == n && leader_rpc[0] != '\0' && k < n; k++) {
        if (strcmp(nodes[k].rpc_address, leader_rpc) == 0) {
            i = k;
        }
    }
    if (i == n) {
        snprintf(reason, size,
                 "OM '%s' names leader '%s'%s%s%s, which is not an OM of "
                 "Recon's configuration",
                 self, leader, leader_rpc[0] ? " at '" : "", leader_rpc,
                 leader_rpc[0] ? "'" : "");
        return RECON_ROLES_NONE;
    }
    if (i == asked) {
        /* The node asked answers under another name than configured, and
         * names itself under the configured one. */
        *next = asked;
        snprintf(reason, size, "OM '%s' is the leader", leader);
        return RECON_ROLES_SELF;
    }
    *next = i;
    snprintf(reason, size, "OM '%s' names leader '%s'", self, leader);
    return RECON_ROLES_REDIRECT;
}

/* ---- the service ---- */

int recon_om_service_open(struct recon_om_service *s,
                          struct daemon *d,
                          char *errmsg)
{
    struct rpc_client_config cfg;
    const char *addrs[1];
    int rc;

    memset(s, 0, sizeof(*s));
    s->n = recon_om_nodes(d->conf, s->nodes, RECON_MAX_OMS, s->service_id,
                          sizeof(s->service_id));
    s->leader = s->n;
    for (size_t i = 0; i < s->n; i++) {
        addrs[0] = s->nodes[i].rpc_address;
        daemon_client_config(d, addrs, 1, &cfg);
        cfg.max_attempts = 1;
        rc = rpc_client_new(&s->clients[i], &cfg, errmsg);
        if (rc != 0) {
            recon_om_service_close(s);
            return rc;
        }
    }
    return 0;
}

void recon_om_service_close(struct recon_om_service *s)
{
    for (size_t i = 0; i < RECON_MAX_OMS; i++) {
        rpc_client_free(s->clients[i]);
        s->clients[i] = NULL;
    }
}

static size_t next_unasked(const struct recon_om_service *s,
                           const bool *asked,
                           size_t from)
{
    for (size_t k = 0; k < s->n; k++) {
        size_t i = (from + k) % s->n;
        if (!asked[i]) {
            return i;
        }
    }
    return s->n;
}

static void note(char *text, size_t size, const char *what)
{
    size_t len = strlen(text);

    if (len + 3 < size) {
        snprintf(text + len, size - len, "%s%s", len > 0 ? "; " : "", what);
    }
}

int recon_om_service_leader(struct recon_om_service *s,
                            size_t *index,
                            char *errmsg)
{
    bool asked[RECON_MAX_OMS] = {false};
    char notes[1024] = "", reason[384];
    size_t i = s->leader < s->n ? s->leader : 0;

    *index = s->n;
    if (s->n == 1) {
        *index = s->leader = 0;
        return 0;
    }
    while (i < s->n) {
        Ozone__Om__OmRolesRequest req = OZONE__OM__OM_ROLES_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        struct rpc_error err;
        size_t next = s->n;

        asked[i] = true;
        int rc = rpc_client_call(s->clients[i],
                                 &ozone__om__om_admin_service__descriptor,
                                 "Roles", &req.base, &resp, &err);
        if (rc != 0) {
            snprintf(reason, sizeof(reason), "'%s' at '%s': %s",
                     s->nodes[i].node_id, s->nodes[i].rpc_address,
                     err.message[0] ? err.message : oz_strerror(rc));
            note(notes, sizeof(notes), reason);
            i = next_unasked(s, asked, i + 1);
            continue;
        }
        enum recon_roles_verdict v = recon_om_roles_verdict(
            (const Ozone__Om__OmRolesResponse *)resp, s->nodes, s->n, i, &next,
            reason, sizeof(reason));
        rpc_message_free(resp);
        if (v == RECON_ROLES_SELF) {
            *index = s->leader = i;
            return 0;
        }
        note(notes, sizeof(notes), reason);
        if (v == RECON_ROLES_REDIRECT && !asked[next]) {
            i = next;
        } else {
            i = next_unasked(s, asked, i + 1);
        }
    }
    oz_errmsg_printf(errmsg, "no OM leader of service '%s' found: %s",
                     s->service_id, notes);
    return OZ_EUNAVAILABLE;
}
