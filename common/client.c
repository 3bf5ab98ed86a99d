/* client: set-up from configuration, the datanode connection cache, and
 * the plain request/response calls to OM (namespace) and SCM (admin
 * listings). The streaming key I/O is in client_io.c. DESIGN.md §5, §7,
 * §8 (OM service ids).
 */
#include "client_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "err.h"

#define OM_DEFAULT_PORT 9862
#define SCM_CLIENT_DEFAULT_PORT 9860
#define ADDR_SIZE 256
/* Room the protobuf framing of a WriteChunk needs beside the data. */
#define MESSAGE_OVERHEAD (64u << 10)

const ProtobufCServiceDescriptor *const oz__om_service =
    &ozone__om__ozone_manager_service__descriptor;

struct dn_entry
{
    char addr[ADDR_SIZE];
    struct rpc_client *rpc;
};

struct oz_client
{
    const struct rpc_identity *identity;
    struct rpc_client *om;
    struct rpc_client *scm;
    int deadline_ms;
    size_t max_message;
    size_t chunk_size;
    uint64_t block_size;
    long long alloc_wait_ms;
    Ozone__Hdds__ReplicationFactor replication;
    size_t n_oms;
    long long om_wait_ms; /* ozone.client.om.wait.timeout */
    Ozone__Datanode__ChecksumType checksum_type;
    pthread_mutex_t dn_mu; /* guards dns and n_dns */
    struct dn_entry *dns;
    size_t n_dns;
};

/* ---- errors ---- */

const char *oz_result_name(Ozone__ResultCode code)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &ozone__result_code__descriptor, (int)code);

    return v != NULL ? v->name : "UNKNOWN_RESULT";
}

void oz__set_error(struct oz_error *err,
                   Ozone__ResultCode code,
                   const char *fmt,
                   ...)
{
    va_list ap;

    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

void oz__wrap_error(struct oz_error *err, const char *fmt, ...)
{
    char prefix[512];
    char old[sizeof(err->message)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    oz_strlcpy(old, err->message, sizeof(old));
    snprintf(err->message, sizeof(err->message), "%s: %s", prefix, old);
}

static int from_rpc(int rc, const struct rpc_error *re, struct oz_error *err)
{
    err->code = re->code != OZONE__RESULT_CODE__OK
                    ? re->code
                    : OZONE__RESULT_CODE__INTERNAL_ERROR;
    oz_strlcpy(err->message, re->message, sizeof(err->message));
    return rc;
}

/* ---- configuration ---- */

/* Copies the n-th comma-separated item of list (trimmed) into out;
 * returns false when there is none. */
static bool list_item(const char *list, size_t n, char *out, size_t size)
{
    const char *p = list;

    for (size_t i = 0; p != NULL; i++) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        while (len > 0 && (*p == ' ' || *p == '\t' || *p == '\n')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' ||
                           p[len - 1] == '\n')) {
            len--;
        }
        if (i == n) {
            if (len == 0 || len >= size) {
                return false;
            }
            memcpy(out, p, len);
            out[len] = '\0';
            return true;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* "host[:port]" -> dialable "host:port"; a wildcard host means this
 * machine. */
static void dial_address(const char *addr,
                         int default_port,
                         char *out,
                         size_t size)
{
    const char *colon = strrchr(addr, ':');
    const char *port = colon != NULL ? colon + 1 : NULL;
    size_t host_len = colon != NULL ? (size_t)(colon - addr) : strlen(addr);
    char host[ADDR_SIZE];

    if (host_len >= sizeof(host)) {
        host_len = sizeof(host) - 1;
    }
    memcpy(host, addr, host_len);
    host[host_len] = '\0';
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
        strcmp(host, "*") == 0) {
        oz_strlcpy(host, "127.0.0.1", sizeof(host));
    }
    if (port != NULL && port[0] != '\0') {
        snprintf(out, size, "%s:%s", host, port);
    } else {
        snprintf(out, size, "%s:%d", host, default_port);
    }
}

/* Fills addrs with the OM nodes of service sid. Returns the count (0 when
 * the service lists no usable node). */
static size_t om_service_addrs(const struct conf *conf,
                               const char *sid,
                               char addrs[][ADDR_SIZE],
                               size_t max)
{
    char key[512];
    char node[128];
    const char *nodes;
    size_t n = 0;

    snprintf(key, sizeof(key), "ozone.om.nodes.%s", sid);
    nodes = conf_get(conf, key);
    for (size_t i = 0;
         nodes != NULL && n < max && list_item(nodes, i, node, sizeof(node));
         i++) {
        const char *a;

        snprintf(key, sizeof(key), "ozone.om.address.%s.%s", sid, node);
        a = conf_get(conf, key);
        if (a != NULL && a[0] != '\0') {
            dial_address(a, OM_DEFAULT_PORT, addrs[n++], ADDR_SIZE);
        }
    }
    return n;
}

static bool is_service_id(const struct conf *conf, const char *name)
{
    const char *ids = conf_get(conf, "ozone.om.service.ids");
    char sid[128];

    for (size_t i = 0; ids != NULL && list_item(ids, i, sid, sizeof(sid));
         i++) {
        if (strcmp(sid, name) == 0) {
            return true;
        }
    }
    return false;
}

/* The OM addresses for om_target (see oz_client_new). */
static int om_addrs(const struct conf *conf,
                    const char *target,
                    char addrs[][ADDR_SIZE],
                    size_t *n,
                    char *errmsg)
{
    const char *ids = conf_get(conf, "ozone.om.service.ids");
    char sid[128];

    *n = 0;
    if (target != NULL && target[0] != '\0') {
        if (is_service_id(conf, target)) {
            *n = om_service_addrs(conf, target, addrs, OZ_CLIENT_MAX_OM_NODES);
            if (*n == 0) {
                oz_errmsg_printf(errmsg,
                                 "OM service '%s' has no node addresses; set "
                                 "ozone.om.nodes.%s and "
                                 "ozone.om.address.%s.<node>",
                                 target, target, target);
                return OZ_ECONFIG;
            }
            return 0;
        }
        if (strchr(target, '.') == NULL && strchr(target, ':') == NULL &&
            strcmp(target, "localhost") != 0) {
            oz_errmsg_printf(errmsg,
                             "unknown OM service id '%s'; list it in "
                             "ozone.om.service.ids or give host:port",
                             target);
            return OZ_ECONFIG;
        }
        dial_address(target, OM_DEFAULT_PORT, addrs[0], ADDR_SIZE);
        *n = 1;
        return 0;
    }
    if (ids != NULL && list_item(ids, 0, sid, sizeof(sid))) {
        *n = om_service_addrs(conf, sid, addrs, OZ_CLIENT_MAX_OM_NODES);
        if (*n == 0) {
            oz_errmsg_printf(errmsg,
                             "OM service '%s' has no node addresses; set "
                             "ozone.om.nodes.%s and "
                             "ozone.om.address.%s.<node>",
                             sid, sid, sid);
            return OZ_ECONFIG;
        }
        return 0;
    }
    dial_address(conf_get_str(conf, "ozone.om.address", "0.0.0.0:9862"),
                 OM_DEFAULT_PORT, addrs[0], ADDR_SIZE);
    *n = 1;
    return 0;
}

static void scm_addr(const struct conf *conf, char *out, size_t size)
{
    const char *names = conf_get(conf, "ozone.scm.names");
    char first[ADDR_SIZE];

    if (names != NULL && list_item(names, 0, first, sizeof(first))) {
        dial_address(first, SCM_CLIENT_DEFAULT_PORT, out, size);
        return;
    }
    dial_address(conf_get_str(conf, "ozone.scm.client.address", "0.0.0.0:9860"),
                 SCM_CLIENT_DEFAULT_PORT, out, size);
}

/* Reads the sizes and replication this client works with. */
static int read_settings(struct oz_client *c,
                         const struct conf *conf,
                         char *errmsg)
{
    long long v;
    int rc;

    rc = conf_get_duration_ms(conf, "ozone.rpc.timeout", "10s", &v, errmsg);
    if (rc != 0) {
        return OZ_ECONFIG;
    }
    c->deadline_ms = v > 0 && v < 3600000 ? (int)v : 10000;
    rc = conf_get_size(conf, "ozone.rpc.max.message.size", "32MB", &v, errmsg);
    if (rc != 0) {
        return OZ_ECONFIG;
    }
    if (v < (long long)(1u << 20) || v > (long long)(1u << 30)) {
        oz_errmsg_printf(errmsg,
                         "invalid value %lld for "
                         "'ozone.rpc.max.message.size': expected 1MB to 1GB",
                         v);
        return OZ_ECONFIG;
    }
    c->max_message = (size_t)v;
    rc = conf_get_size(conf, "ozone.scm.chunk.size", "4MB", &v, errmsg);
    if (rc != 0) {
        return OZ_ECONFIG;
    }
    if (v < 1 || v > (long long)OZ_CLIENT_MAX_CHUNK ||
        (size_t)v + MESSAGE_OVERHEAD > c->max_message) {
        oz_errmsg_printf(errmsg,
                         "invalid value %lld for 'ozone.scm.chunk.size': "
                         "expected 1 byte to 16MB and below "
                         "ozone.rpc.max.message.size",
                         v);
        return OZ_ECONFIG;
    }
    c->chunk_size = (size_t)v;
    rc = conf_get_size(conf, "ozone.scm.block.size", "256MB", &v, errmsg);
    if (rc != 0) {
        return OZ_ECONFIG;
    }
    if (v < 1) {
        oz_errmsg_printf(errmsg,
                         "invalid value %lld for "
                         "'ozone.scm.block.size': must be positive",
                         v);
        return OZ_ECONFIG;
    }
    c->block_size = (uint64_t)v;
    rc = conf_get_duration_ms(conf, "ozone.client.om.wait.timeout", "30s",
                              &c->om_wait_ms, errmsg);
    if (rc != 0) {
        return OZ_ECONFIG;
    }
    rc = conf_get_duration_ms(conf, "ozone.client.block.allocation.timeout",
                              "30s", &c->alloc_wait_ms, errmsg);
    if (rc != 0) {
        return OZ_ECONFIG;
    }
    /* HDDS CHUNK_CHECKSUM_SHA256 (101): datanodes refuse SHA256 with
     * NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION until it is finalized. */
    const char *ck = conf_get_str(conf, "ozone.client.checksum.type", "CRC32C");
    if (strcasecmp(ck, "CRC32C") == 0) {
        c->checksum_type = OZONE__DATANODE__CHECKSUM_TYPE__CRC32C;
    } else if (strcasecmp(ck, "SHA256") == 0) {
        c->checksum_type = OZONE__DATANODE__CHECKSUM_TYPE__SHA256;
    } else {
        oz_errmsg_printf(errmsg,
                         "invalid value '%s' for "
                         "'ozone.client.checksum.type': expected CRC32C or "
                         "SHA256",
                         ck);
        return OZ_ECONFIG;
    }
    if (oz_parse_replication(conf_get_str(conf, "ozone.replication", "THREE"),
                             &c->replication) != 0) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%s' for 'ozone.replication': "
                         "expected ONE or THREE",
                         conf_get_str(conf, "ozone.replication", ""));
        return OZ_ECONFIG;
    }
    return 0;
}

static int new_rpc(struct oz_client *c,
                   const char *const *addrs,
                   size_t n,
                   int max_attempts,
                   struct rpc_client **out,
                   char *errmsg)
{
    struct rpc_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.addrs = addrs;
    cfg.n_addrs = n;
    cfg.identity = c->identity;
    cfg.deadline_ms = c->deadline_ms;
    cfg.max_attempts = max_attempts;
    cfg.max_message_bytes = c->max_message;
    return rpc_client_new(out, &cfg, errmsg);
}

int oz_client_new(struct oz_client **out,
                  const struct conf *conf,
                  const char *om_target,
                  const struct rpc_identity *identity,
                  char *errmsg)
{
    char oms[OZ_CLIENT_MAX_OM_NODES][ADDR_SIZE];
    const char *om_ptrs[OZ_CLIENT_MAX_OM_NODES];
    char scm[ADDR_SIZE];
    const char *scm_ptr = scm;
    struct oz_client *c;
    size_t n_oms = 0;
    int rc;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        oz_errmsg_printf(errmsg, "client: out of memory");
        return OZ_ENOMEM;
    }
    c->identity = identity;
    rc = read_settings(c, conf, errmsg);
    if (rc == 0) {
        rc = om_addrs(conf, om_target, oms, &n_oms, errmsg);
    }
    if (rc != 0) {
        goto err_after_client;
    }
    for (size_t i = 0; i < n_oms; i++) {
        om_ptrs[i] = oms[i];
    }
    /* An OM service: enough attempts to ride out a leader election
     * (the backoff doubles to 1 s between rounds, DESIGN.md §5). */
    c->n_oms = n_oms;
    rc = new_rpc(c, om_ptrs, n_oms, n_oms > 1 ? 8 * (int)n_oms + 6 : 0, &c->om,
                 errmsg);
    if (rc != 0) {
        goto err_after_client;
    }
    scm_addr(conf, scm, sizeof(scm));
    rc = new_rpc(c, &scm_ptr, 1, 0, &c->scm, errmsg);
    if (rc != 0) {
        goto err_after_om;
    }
    c->dns = calloc(OZ_CLIENT_MAX_DATANODES, sizeof(*c->dns));
    if (c->dns == NULL) {
        oz_errmsg_printf(errmsg, "client: out of memory");
        rc = OZ_ENOMEM;
        goto err_after_scm;
    }
    pthread_mutex_init(&c->dn_mu, NULL);
    *out = c;
    return 0;

err_after_scm:
    rpc_client_free(c->scm);
err_after_om:
    rpc_client_free(c->om);
err_after_client:
    free(c);
    return rc;
}

void oz_client_free(struct oz_client *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_dns; i++) {
        rpc_client_free(c->dns[i].rpc);
    }
    free(c->dns);
    pthread_mutex_destroy(&c->dn_mu);
    rpc_client_free(c->scm);
    rpc_client_free(c->om);
    free(c);
}

void oz_client_free_msg(void *msg)
{
    if (msg != NULL) {
        rpc_message_free((ProtobufCMessage *)msg);
    }
}

size_t oz_client_chunk_size(const struct oz_client *c)
{
    return c->chunk_size;
}

Ozone__Datanode__ChecksumType oz__checksum_type(const struct oz_client *c)
{
    return c->checksum_type;
}

uint64_t oz__block_size(const struct oz_client *c)
{
    return c->block_size;
}

long long oz__alloc_wait_ms(const struct oz_client *c)
{
    return c->alloc_wait_ms;
}

Ozone__Hdds__ReplicationFactor oz_client_default_replication(
    const struct oz_client *c)
{
    return c->replication;
}

int oz_parse_replication(const char *s, Ozone__Hdds__ReplicationFactor *out)
{
    if (strcasecmp(s, "ONE") == 0 || strcmp(s, "1") == 0) {
        *out = OZONE__HDDS__REPLICATION_FACTOR__ONE;
        return 0;
    }
    if (strcasecmp(s, "THREE") == 0 || strcmp(s, "3") == 0) {
        *out = OZONE__HDDS__REPLICATION_FACTOR__THREE;
        return 0;
    }
    return OZ_EINVAL;
}

const char *oz_replication_name(Ozone__Hdds__ReplicationFactor f)
{
    switch (f) {
        case OZONE__HDDS__REPLICATION_FACTOR__ONE:
            return "ONE";
        case OZONE__HDDS__REPLICATION_FACTOR__THREE:
            return "THREE";
        default:
            return "UNSPECIFIED";
    }
}

/* ---- calls ---- */

/* True when a single OM did not answer because nothing listens (it is
 * restarting, e.g. in a rolling upgrade, DESIGN.md §6.7); the rpc layer
 * words those failures "cannot reach '<address>': ...". An UNAVAILABLE
 * the OM itself answered (SCM unreachable behind it) is not one. */
static bool om_restarting(const struct oz_client *c,
                          int rc,
                          const struct rpc_error *re)
{
    return c->n_oms == 1 && rc == OZ_EUNAVAILABLE &&
           strncmp(re->message, "cannot reach '", 14) == 0;
}

int oz__om_call(struct oz_client *c,
                const char *method,
                ProtobufCMessage *req,
                ProtobufCMessage **resp,
                struct oz_error *err)
{
    struct rpc_error re;
    int64_t start = oz_mono_ms();
    long long backoff = 100;
    int rc;

    /* Wait for a restarting single OM up to ozone.client.om.wait.timeout
     * instead of failing at once (an OM service fails over instead); the
     * last error still names the OM's address. */
    while ((rc = rpc_client_call(c->om, oz__om_service, method, req, resp,
                                 &re)) != 0 &&
           om_restarting(c, rc, &re)) {
        long long waited = oz_mono_ms() - start;
        if (waited + backoff > c->om_wait_ms) {
            break;
        }
        oz_sleep_ms(backoff);
        backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
    }
    return rc == 0 ? 0 : from_rpc(rc, &re, err);
}

int oz__om_service_call(struct oz_client *c,
                        const ProtobufCServiceDescriptor *svc,
                        const char *method,
                        ProtobufCMessage *req,
                        ProtobufCMessage **resp,
                        struct oz_error *err)
{
    struct rpc_error re;
    int rc = rpc_client_call(c->om, svc, method, req, resp, &re);

    return rc == 0 ? 0 : from_rpc(rc, &re, err);
}

static int scm_service_call(struct oz_client *c,
                            const ProtobufCServiceDescriptor *svc,
                            const char *method,
                            ProtobufCMessage *req,
                            ProtobufCMessage **resp,
                            struct oz_error *err)
{
    struct rpc_error re;
    int rc = rpc_client_call(c->scm, svc, method, req, resp, &re);

    return rc == 0 ? 0 : from_rpc(rc, &re, err);
}

static int scm_call(struct oz_client *c,
                    const char *method,
                    ProtobufCMessage *req,
                    ProtobufCMessage **resp,
                    struct oz_error *err)
{
    return scm_service_call(c, &ozone__scm__scm_admin_service__descriptor,
                            method, req, resp, err);
}

struct rpc_client *oz__dn_client(struct oz_client *c,
                                 const Ozone__Hdds__DatanodeDetails *dn,
                                 char *addr,
                                 size_t addr_size,
                                 struct oz_error *err)
{
    const char *host = dn->ip_address != NULL && dn->ip_address[0] != '\0'
                           ? dn->ip_address
                           : dn->hostname;
    struct rpc_client *rpc = NULL;
    char errmsg[OZ_ERRMSG_SIZE];

    if (host == NULL || host[0] == '\0' || dn->container_port == 0 ||
        dn->container_port > 65535 || strlen(host) > 200) {
        oz__set_error(err, OZONE__RESULT_CODE__INVALID_ARGUMENT,
                      "datanode '%s' has no usable address",
                      dn->uuid != NULL ? dn->uuid : "");
        snprintf(addr, addr_size, "?");
        return NULL;
    }
    snprintf(addr, addr_size, "%s:%u", host, dn->container_port);
    pthread_mutex_lock(&c->dn_mu);
    for (size_t i = 0; i < c->n_dns; i++) {
        if (strcmp(c->dns[i].addr, addr) == 0) {
            rpc = c->dns[i].rpc;
            break;
        }
    }
    if (rpc == NULL && c->n_dns < OZ_CLIENT_MAX_DATANODES) {
        const char *p = addr;
        /* Two attempts: a datanode that is down is given up on quickly
         * and the write moves to another block (DESIGN.md §7). */
        if (new_rpc(c, &p, 1, 2, &rpc, errmsg) == 0) {
            oz_strlcpy(c->dns[c->n_dns].addr, addr, ADDR_SIZE);
            c->dns[c->n_dns].rpc = rpc;
            c->n_dns++;
        }
    }
    pthread_mutex_unlock(&c->dn_mu);
    if (rpc == NULL) {
        oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "cannot open a connection to datanode '%s' at '%s'",
                      dn->uuid != NULL ? dn->uuid : "", addr);
    }
    return rpc;
}

int oz__dn_call(struct oz_client *c,
                const Ozone__Hdds__DatanodeDetails *dn,
                const char *method,
                ProtobufCMessage *req,
                ProtobufCMessage **resp,
                struct oz_error *err)
{
    char addr[ADDR_SIZE];
    struct rpc_client *rpc = oz__dn_client(c, dn, addr, sizeof(addr), err);
    struct rpc_error re;
    int rc;

    *resp = NULL;
    if (rpc == NULL) {
        return OZ_EINVAL;
    }
    rc = rpc_client_call(rpc, &ozone__datanode__datanode_service__descriptor,
                         method, req, resp, &re);
    return rc == 0 ? 0 : from_rpc(rc, &re, err);
}

/* ---- volumes ---- */

int oz_volume_create(struct oz_client *c,
                     const char *name,
                     const char *owner,
                     uint64_t quota_bytes,
                     struct oz_error *err)
{
    Ozone__Om__CreateVolumeRequest req = OZONE__OM__CREATE_VOLUME_REQUEST__INIT;
    Ozone__Om__VolumeInfo vi = OZONE__OM__VOLUME_INFO__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    vi.name = (char *)name;
    vi.owner = (char *)(owner != NULL ? owner : "");
    vi.admin = (char *)(owner != NULL ? owner : "");
    vi.quota_in_bytes = quota_bytes;
    req.volume = &vi;
    rc = oz__om_call(c, "CreateVolume", &req.base, &resp, err);
    oz_client_free_msg(resp);
    return rc;
}

int oz_volume_info(struct oz_client *c,
                   const char *name,
                   Ozone__Om__VolumeInfo **out,
                   struct oz_error *err)
{
    Ozone__Om__InfoVolumeRequest req = OZONE__OM__INFO_VOLUME_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    Ozone__Om__InfoVolumeResponse *r;
    int rc;

    *out = NULL;
    req.volume = (char *)name;
    rc = oz__om_call(c, "InfoVolume", &req.base, &resp, err);
    if (rc != 0) {
        return rc;
    }
    r = (Ozone__Om__InfoVolumeResponse *)resp;
    if (r->volume == NULL) {
        oz_client_free_msg(resp);
        oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "OM answered InfoVolume for '%s' without a volume", name);
        return OZ_EINVAL;
    }
    /* protobuf-c allocates sub-messages separately: detach and keep. */
    *out = r->volume;
    r->volume = NULL;
    oz_client_free_msg(resp);
    return 0;
}

int oz_volume_list(struct oz_client *c,
                   const char *prefix,
                   const char *start_after,
                   unsigned max,
                   Ozone__Om__ListVolumesResponse **out,
                   struct oz_error *err)
{
    Ozone__Om__ListVolumesRequest req = OZONE__OM__LIST_VOLUMES_REQUEST__INIT;

    req.prefix = (char *)(prefix != NULL ? prefix : "");
    req.start_after = (char *)(start_after != NULL ? start_after : "");
    req.max_keys = max;
    return oz__om_call(c, "ListVolumes", &req.base, (ProtobufCMessage **)out,
                       err);
}

int oz_volume_delete(struct oz_client *c,
                     const char *name,
                     struct oz_error *err)
{
    Ozone__Om__DeleteVolumeRequest req = OZONE__OM__DELETE_VOLUME_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    req.volume = (char *)name;
    rc = oz__om_call(c, "DeleteVolume", &req.base, &resp, err);
    oz_client_free_msg(resp);
    return rc;
}

/* ---- buckets ---- */

int oz_bucket_create(struct oz_client *c,
                     const char *volume,
                     const char *name,
                     Ozone__Hdds__ReplicationFactor replication,
                     struct oz_error *err)
{
    Ozone__Om__CreateBucketRequest req = OZONE__OM__CREATE_BUCKET_REQUEST__INIT;
    Ozone__Om__BucketInfo bi = OZONE__OM__BUCKET_INFO__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    bi.volume = (char *)volume;
    bi.name = (char *)name;
    bi.replication = replication;
    req.bucket = &bi;
    rc = oz__om_call(c, "CreateBucket", &req.base, &resp, err);
    oz_client_free_msg(resp);
    return rc;
}

int oz_bucket_info(struct oz_client *c,
                   const char *volume,
                   const char *name,
                   Ozone__Om__BucketInfo **out,
                   struct oz_error *err)
{
    Ozone__Om__InfoBucketRequest req = OZONE__OM__INFO_BUCKET_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    Ozone__Om__InfoBucketResponse *r;
    int rc;

    *out = NULL;
    req.volume = (char *)volume;
    req.bucket = (char *)name;
    rc = oz__om_call(c, "InfoBucket", &req.base, &resp, err);
    if (rc != 0) {
        return rc;
    }
    r = (Ozone__Om__InfoBucketResponse *)resp;
    if (r->bucket == NULL) {
        oz_client_free_msg(resp);
        oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "OM answered InfoBucket for '%s/%s' without a bucket",
                      volume, name);
        return OZ_EINVAL;
    }
    *out = r->bucket;
    r->bucket = NULL;
    oz_client_free_msg(resp);
    return 0;
}

int oz_bucket_list(struct oz_client *c,
                   const char *volume,
                   const char *prefix,
                   const char *start_after,
                   unsigned max,
                   Ozone__Om__ListBucketsResponse **out,
                   struct oz_error *err)
{
    Ozone__Om__ListBucketsRequest req = OZONE__OM__LIST_BUCKETS_REQUEST__INIT;

    req.volume = (char *)volume;
    req.prefix = (char *)(prefix != NULL ? prefix : "");
    req.start_after = (char *)(start_after != NULL ? start_after : "");
    req.max_keys = max;
    return oz__om_call(c, "ListBuckets", &req.base, (ProtobufCMessage **)out,
                       err);
}

int oz_bucket_delete(struct oz_client *c,
                     const char *volume,
                     const char *name,
                     struct oz_error *err)
{
    Ozone__Om__DeleteBucketRequest req = OZONE__OM__DELETE_BUCKET_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    req.volume = (char *)volume;
    req.bucket = (char *)name;
    rc = oz__om_call(c, "DeleteBucket", &req.base, &resp, err);
    oz_client_free_msg(resp);
    return rc;
}

/* ---- keys (metadata only) ---- */

int oz_key_info(struct oz_client *c,
                const char *volume,
                const char *bucket,
                const char *key,
                Ozone__Om__KeyInfo **out,
                struct oz_error *err)
{
    Ozone__Om__LookupKeyRequest req = OZONE__OM__LOOKUP_KEY_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    Ozone__Om__LookupKeyResponse *r;
    int rc;

    *out = NULL;
    req.volume = (char *)volume;
    req.bucket = (char *)bucket;
    req.key = (char *)key;
    rc = oz__om_call(c, "LookupKey", &req.base, &resp, err);
    if (rc != 0) {
        return rc;
    }
    r = (Ozone__Om__LookupKeyResponse *)resp;
    if (r->key == NULL) {
        oz_client_free_msg(resp);
        oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                      "OM answered LookupKey for '%s/%s/%s' without a key",
                      volume, bucket, key);
        return OZ_EINVAL;
    }
    *out = r->key;
    r->key = NULL;
    oz_client_free_msg(resp);
    return 0;
}

int oz_key_list(struct oz_client *c,
                const char *volume,
                const char *bucket,
                const char *prefix,
                const char *start_after,
                unsigned max,
                Ozone__Om__ListKeysResponse **out,
                struct oz_error *err)
{
    Ozone__Om__ListKeysRequest req = OZONE__OM__LIST_KEYS_REQUEST__INIT;

    req.volume = (char *)volume;
    req.bucket = (char *)bucket;
    req.prefix = (char *)(prefix != NULL ? prefix : "");
    req.start_after = (char *)(start_after != NULL ? start_after : "");
    req.max_keys = max;
    return oz__om_call(c, "ListKeys", &req.base, (ProtobufCMessage **)out, err);
}

int oz_key_delete(struct oz_client *c,
                  const char *volume,
                  const char *bucket,
                  const char *key,
                  struct oz_error *err)
{
    Ozone__Om__DeleteKeyRequest req = OZONE__OM__DELETE_KEY_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    req.volume = (char *)volume;
    req.bucket = (char *)bucket;
    req.key = (char *)key;
    rc = oz__om_call(c, "DeleteKey", &req.base, &resp, err);
    oz_client_free_msg(resp);
    return rc;
}

int oz_key_rename(struct oz_client *c,
                  const char *volume,
                  const char *bucket,
                  const char *key,
                  const char *to_key,
                  struct oz_error *err)
{
    Ozone__Om__RenameKeyRequest req = OZONE__OM__RENAME_KEY_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    req.volume = (char *)volume;
    req.bucket = (char *)bucket;
    req.key = (char *)key;
    req.to_key = (char *)to_key;
    rc = oz__om_call(c, "RenameKey", &req.base, &resp, err);
    oz_client_free_msg(resp);
    return rc;
}

/* ---- SCM admin ---- */

int oz_admin_list_datanodes(struct oz_client *c,
                            Ozone__Hdds__NodeState state,
                            Ozone__Scm__ListDatanodesResponse **out,
                            struct oz_error *err)
{
    Ozone__Scm__ListDatanodesRequest req =
        OZONE__SCM__LIST_DATANODES_REQUEST__INIT;

    req.state = state;
    return scm_call(c, "ListDatanodes", &req.base, (ProtobufCMessage **)out,
                    err);
}

int oz_admin_list_containers(struct oz_client *c,
                             uint64_t start_id,
                             unsigned count,
                             Ozone__Hdds__ContainerState state,
                             Ozone__Scm__ListContainersResponse **out,
                             struct oz_error *err)
{
    Ozone__Scm__ListContainersRequest req =
        OZONE__SCM__LIST_CONTAINERS_REQUEST__INIT;

    req.start_id = start_id;
    req.count = count;
    req.state = state;
    return scm_call(c, "ListContainers", &req.base, (ProtobufCMessage **)out,
                    err);
}

int oz_admin_list_pipelines(struct oz_client *c,
                            Ozone__Scm__ListPipelinesResponse **out,
                            struct oz_error *err)
{
    Ozone__Scm__ListPipelinesRequest req =
        OZONE__SCM__LIST_PIPELINES_REQUEST__INIT;

    return scm_call(c, "ListPipelines", &req.base, (ProtobufCMessage **)out,
                    err);
}

int oz_admin_scm_finalize(struct oz_client *c,
                          const char *client_id,
                          Ozone__Scm__FinalizeUpgradeResponse **out,
                          struct oz_error *err)
{
    Ozone__Scm__FinalizeUpgradeRequest req =
        OZONE__SCM__FINALIZE_UPGRADE_REQUEST__INIT;

    req.upgrade_client_id = (char *)(client_id != NULL ? client_id : "");
    return scm_service_call(c, &ozone__scm__scm_upgrade_service__descriptor,
                            "FinalizeUpgrade", &req.base,
                            (ProtobufCMessage **)out, err);
}

int oz_admin_scm_upgrade_status(struct oz_client *c,
                                Ozone__Scm__QueryUpgradeStatusResponse **out,
                                struct oz_error *err)
{
    Ozone__Scm__QueryUpgradeStatusRequest req =
        OZONE__SCM__QUERY_UPGRADE_STATUS_REQUEST__INIT;

    return scm_service_call(c, &ozone__scm__scm_upgrade_service__descriptor,
                            "QueryUpgradeStatus", &req.base,
                            (ProtobufCMessage **)out, err);
}
