/* The OM service as `ozone admin om` sees it (cmd_om.c), shared with the
 * rolling-upgrade orchestrator (orch_inspect.c): the OMs of a service id
 * from configuration (DESIGN.md §8) and calls to one OM at a time. */
#ifndef OZONE_CMD_OM_H
#define OZONE_CMD_OM_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "cli.h"

#define CMD_OM_MAX_NODES 16
#define CMD_OM_ADDR_SIZE 256

/* The OMs of one service, in configuration order. */
struct om_target
{
    char sid[128]; /* "" for a single OM (ozone.om.address) */
    size_t n;
    char names[CMD_OM_MAX_NODES][64];               /* node ids ("om1") */
    char addrs[CMD_OM_MAX_NODES][CMD_OM_ADDR_SIZE]; /* dialable host:port */
};

/* Fills t with the OMs of service sid (NULL: the first service of
 * ozone.om.service.ids, else the single OM of ozone.om.address, named
 * "om1"). CLI_OK, or CLI_USAGE with the message printed when sid names no
 * configured node. */
int cmd_om_resolve(struct cli *cli, const char *sid, struct om_target *t);

/* Calls method of OmAdminService on node i only (no fail-over), 5 s
 * deadline, up to 3 attempts. 0 with *resp (caller frees with
 * rpc_message_free()), or a negative code with err filled. */
int cmd_om_call_node(struct cli *cli,
                     const struct om_target *t,
                     size_t i,
                     const char *method,
                     ProtobufCMessage *req,
                     ProtobufCMessage **resp,
                     struct rpc_error *err);

/* The same on any service of node i, with the given deadline per attempt
 * and number of attempts (1: no retry, for a node that may be down). */
int cmd_om_call_node_timed(struct cli *cli,
                           const struct om_target *t,
                           size_t i,
                           const ProtobufCServiceDescriptor *service,
                           const char *method,
                           ProtobufCMessage *req,
                           ProtobufCMessage **resp,
                           int deadline_ms,
                           int attempts,
                           struct rpc_error *err);

#endif
