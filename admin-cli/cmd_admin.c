/* `ozone admin datanode|container|pipeline list`: SCM's view of the
 * cluster (DESIGN.md §7, §10). The plain output copies Ozone's layout
 * (operators grep it); --json prints the same facts as JSON.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "client.h"
#include "err.h"

static const char *enum_name(const ProtobufCEnumDescriptor *d,
                             int v,
                             const char *prefix_to_strip)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    const char *name = ev != NULL ? ev->name : "UNKNOWN";
    size_t n = prefix_to_strip != NULL ? strlen(prefix_to_strip) : 0;

    return n > 0 && strncmp(name, prefix_to_strip, n) == 0 ? name + n : name;
}

static const char *node_state_name(Ozone__Hdds__NodeState s)
{
    return enum_name(&ozone__hdds__node_state__descriptor, (int)s, NULL);
}

static const char *op_state_name(Ozone__Hdds__NodeOperationalState s)
{
    return enum_name(&ozone__hdds__node_operational_state__descriptor, (int)s,
                     NULL);
}

static const char *pipeline_state_name(Ozone__Hdds__PipelineState s)
{
    return enum_name(&ozone__hdds__pipeline_state__descriptor, (int)s,
                     "PIPELINE_");
}

static const char *container_state_name(Ozone__Hdds__ContainerState s)
{
    return enum_name(&ozone__hdds__container_state__descriptor, (int)s,
                     "CONTAINER_");
}

/* Parses a state name with or without its enum prefix. */
static bool parse_enum(const ProtobufCEnumDescriptor *d,
                       const char *prefix,
                       const char *s,
                       int *out)
{
    for (unsigned i = 0; i < d->n_values; i++) {
        const char *name = d->values[i].name;
        size_t n = strlen(prefix);
        if (strcasecmp(name, s) == 0 ||
            (strncmp(name, prefix, n) == 0 && strcasecmp(name + n, s) == 0)) {
            *out = d->values[i].value;
            return *out != 0;
        }
    }
    return false;
}

static bool has_member(const Ozone__Hdds__Pipeline *p, const char *uuid)
{
    for (size_t i = 0; i < p->n_members; i++) {
        if (p->members[i] != NULL && strcmp(p->members[i]->uuid, uuid) == 0) {
            return true;
        }
    }
    return false;
}

static void print_datanode(const Ozone__Scm__DatanodeInfo *dn,
                           const Ozone__Scm__ListPipelinesResponse *pl)
{
    const Ozone__Hdds__DatanodeDetails *d = dn->details;
    size_t related = 0;

    for (size_t i = 0; pl != NULL && i < pl->n_pipelines; i++) {
        related += has_member(pl->pipelines[i], d->uuid);
    }
    printf(
        "Datanode: %s (%s/%s/%s/%zu pipelines)\n", d->uuid,
        d->network_location[0] != '\0' ? d->network_location : "/default-rack",
        d->ip_address, d->hostname, related);
    printf("Operational State: %s\n", op_state_name(dn->op_state));
    printf("Health State: %s\n", node_state_name(dn->state));
    printf("Related pipelines:\n");
    if (pl == NULL || pl->n_pipelines == 0) {
        printf("No pipelines in cluster.\n");
    } else if (related == 0) {
        printf("No related pipelines or the node is not in Healthy state.\n");
    }
    for (size_t i = 0; pl != NULL && i < pl->n_pipelines; i++) {
        const Ozone__Hdds__Pipeline *p = pl->pipelines[i];
        if (!has_member(p, d->uuid)) {
            continue;
        }
        /* The first member is the one clients write to first. */
        printf(
            "%s/%s/STAND_ALONE/%s/%s\n", p->id, oz_replication_name(p->factor),
            pipeline_state_name(p->state),
            strcmp(p->members[0]->uuid, d->uuid) == 0 ? "Leader" : "Follower");
    }
    printf("\n");
}

static cJSON *details_json(const Ozone__Hdds__DatanodeDetails *d)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "uuid", d->uuid);
    cJSON_AddStringToObject(o, "hostName", d->hostname);
    cJSON_AddStringToObject(o, "ipAddress", d->ip_address);
    cJSON_AddNumberToObject(o, "containerPort", d->container_port);
    cJSON_AddNumberToObject(o, "httpPort", d->http_port);
    cJSON_AddStringToObject(
        o, "networkLocation",
        d->network_location[0] != '\0' ? d->network_location : "/default-rack");
    return o;
}

static cJSON *datanode_json(const Ozone__Scm__DatanodeInfo *dn)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *pids;

    cJSON_AddItemToObject(o, "datanodeDetails", details_json(dn->details));
    cJSON_AddStringToObject(o, "operationalState", op_state_name(dn->op_state));
    cJSON_AddStringToObject(o, "healthState", node_state_name(dn->state));
    cJSON_AddNumberToObject(o, "lastHeartbeatMs",
                            (double)dn->last_heartbeat_ms);
    cJSON_AddNumberToObject(o, "softwareVersion", dn->software_version);
    cJSON_AddNumberToObject(o, "apparentVersion", dn->apparent_version);
    cJSON_AddNumberToObject(o, "containerCount", (double)dn->container_count);
    pids = cJSON_AddArrayToObject(o, "pipelines");
    for (size_t i = 0; i < dn->n_pipeline_ids; i++) {
        cJSON_AddItemToArray(pids, cJSON_CreateString(dn->pipeline_ids[i]));
    }
    return o;
}

static int datanode_list(struct cli *cli,
                         struct oz_client *c,
                         const char *state_arg)
{
    Ozone__Scm__ListDatanodesResponse *r = NULL;
    Ozone__Scm__ListPipelinesResponse *pl = NULL;
    int state = 0;
    struct oz_error err;

    memset(&err, 0, sizeof(err));
    if (state_arg != NULL && !parse_enum(&ozone__hdds__node_state__descriptor,
                                         "", state_arg, &state)) {
        return cli_fail(CLI_USAGE,
                        "invalid node state '%s': expected HEALTHY, "
                        "HEALTHY_READONLY, STALE or DEAD",
                        state_arg);
    }
    if (oz_admin_list_datanodes(c, (Ozone__Hdds__NodeState)state, &r, &err) !=
        0) {
        return cli_fail_oz(&err);
    }
    if (cli->json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < r->n_datanodes; i++) {
            if (r->datanodes[i]->details != NULL) {
                cJSON_AddItemToArray(arr, datanode_json(r->datanodes[i]));
            }
        }
        cli_print_json(arr);
        oz_client_free_msg(r);
        return CLI_OK;
    }
    if (oz_admin_list_pipelines(c, &pl, &err) != 0) {
        oz_client_free_msg(r);
        return cli_fail_oz(&err);
    }
    for (size_t i = 0; i < r->n_datanodes; i++) {
        if (r->datanodes[i]->details != NULL) {
            print_datanode(r->datanodes[i], pl);
        }
    }
    oz_client_free_msg(pl);
    oz_client_free_msg(r);
    return CLI_OK;
}

static cJSON *container_json(const Ozone__Hdds__ContainerInfo *ci)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *pid = cJSON_AddObjectToObject(o, "pipelineID");
    cJSON *repl = cJSON_AddObjectToObject(o, "replicationConfig");
    cJSON *reps;

    cJSON_AddStringToObject(o, "state", container_state_name(ci->state));
    cJSON_AddStringToObject(pid, "id", ci->pipeline_id);
    cJSON_AddStringToObject(repl, "replicationFactor",
                            oz_replication_name(ci->factor));
    cJSON_AddStringToObject(repl, "replicationType", "STAND_ALONE");
    cJSON_AddNumberToObject(o, "usedBytes", (double)ci->used_bytes);
    cJSON_AddNumberToObject(o, "numberOfKeys", (double)ci->key_count);
    cJSON_AddNumberToObject(o, "sizeLimit", (double)ci->size_limit);
    cJSON_AddNumberToObject(o, "containerID", (double)ci->id);
    reps = cJSON_AddArrayToObject(o, "replicas");
    for (size_t i = 0; i < ci->n_replica_uuids; i++) {
        cJSON_AddItemToArray(reps, cJSON_CreateString(ci->replica_uuids[i]));
    }
    cJSON_AddBoolToObject(
        o, "open", ci->state == OZONE__HDDS__CONTAINER_STATE__CONTAINER_OPEN);
    return o;
}

static int container_list(struct cli *cli,
                          struct oz_client *c,
                          const char *state_arg,
                          const char *start_arg,
                          const char *count_arg)
{
    Ozone__Scm__ListContainersResponse *r = NULL;
    long long start = 0, count = 1000;
    int state = 0;
    struct oz_error err;

    memset(&err, 0, sizeof(err));
    if (state_arg != NULL &&
        !parse_enum(&ozone__hdds__container_state__descriptor, "CONTAINER_",
                    state_arg, &state)) {
        return cli_fail(CLI_USAGE,
                        "invalid container state '%s': expected OPEN, "
                        "CLOSING, CLOSED or UNHEALTHY",
                        state_arg);
    }
    if (start_arg != NULL &&
        !cli_parse_count(start_arg, 0, INT64_MAX, &start)) {
        return cli_fail(CLI_USAGE, "invalid container id '%s' for '--start'",
                        start_arg);
    }
    if (count_arg != NULL && !cli_parse_count(count_arg, 1, 100000, &count)) {
        return cli_fail(CLI_USAGE,
                        "invalid value '%s' for '--count': expected 1 to "
                        "100000",
                        count_arg);
    }
    if (oz_admin_list_containers(c, (uint64_t)start, (unsigned)count,
                                 (Ozone__Hdds__ContainerState)state, &r,
                                 &err) != 0) {
        return cli_fail_oz(&err);
    }
    /* Ozone prints one JSON object per container; --json, an array. */
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < r->n_containers; i++) {
        if (cli->json) {
            cJSON_AddItemToArray(arr, container_json(r->containers[i]));
        } else {
            cli_print_json(container_json(r->containers[i]));
        }
    }
    if (cli->json) {
        cli_print_json(arr);
    } else {
        cJSON_Delete(arr);
    }
    oz_client_free_msg(r);
    return CLI_OK;
}

static cJSON *pipeline_json(const Ozone__Hdds__Pipeline *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *nodes = cJSON_AddArrayToObject(o, "datanodes");

    cJSON_AddStringToObject(o, "id", p->id);
    cJSON_AddStringToObject(o, "replicationFactor",
                            oz_replication_name(p->factor));
    cJSON_AddStringToObject(o, "replicationType", "STAND_ALONE");
    cJSON_AddStringToObject(o, "state", pipeline_state_name(p->state));
    cJSON_AddNumberToObject(o, "creationTimestamp", (double)p->created_ms);
    for (size_t i = 0; i < p->n_members; i++) {
        cJSON_AddItemToArray(nodes, details_json(p->members[i]));
    }
    return o;
}

static int pipeline_list(struct cli *cli, struct oz_client *c)
{
    Ozone__Scm__ListPipelinesResponse *r = NULL;
    struct oz_error err;

    memset(&err, 0, sizeof(err));
    if (oz_admin_list_pipelines(c, &r, &err) != 0) {
        return cli_fail_oz(&err);
    }
    if (cli->json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < r->n_pipelines; i++) {
            cJSON_AddItemToArray(arr, pipeline_json(r->pipelines[i]));
        }
        cli_print_json(arr);
    }
    for (size_t i = 0; !cli->json && i < r->n_pipelines; i++) {
        const Ozone__Hdds__Pipeline *p = r->pipelines[i];
        printf("Pipeline{ Id: %s, Nodes: [", p->id);
        for (size_t m = 0; m < p->n_members; m++) {
            const Ozone__Hdds__DatanodeDetails *d = p->members[m];
            printf("%s%s(%s/%s)", m > 0 ? ", " : "", d->uuid, d->hostname,
                   d->ip_address);
        }
        printf(
            "], ReplicationConfig: STAND_ALONE/%s, State:%s, "
            "CreationTimestamp%" PRIu64 "}\n",
            oz_replication_name(p->factor), pipeline_state_name(p->state),
            p->created_ms);
    }
    oz_client_free_msg(r);
    return CLI_OK;
}

static void admin_usage(FILE *f)
{
    fputs(
        "Usage: ozone admin COMMAND list [OPTIONS]\n\n"
        "Commands:\n"
        "  datanode list [--node-state S] [--json]\n"
        "      datanodes as SCM sees them (S: HEALTHY, HEALTHY_READONLY,\n"
        "      STALE, DEAD)\n"
        "  container list [--state S] [--start ID] [--count N] [--json]\n"
        "      containers (S: OPEN, CLOSING, CLOSED, UNHEALTHY)\n"
        "  pipeline list [--json]\n"
        "      write pipelines\n"
        "  om roles | transfer | prepare | cancelprepare | digest\n"
        "      the OM service's raft ring (see 'ozone admin om --help')\n"
        "  scm finalizeupgrade | finalizationstatus\n"
        "      finalize SCM's upgrade (datanodes follow) or show its state\n"
        "  upgrade status | plan | run | journal | finalize\n"
        "      finalization state and blockers, the rolling-upgrade\n"
        "      orchestrator, and the cluster's finalization (see 'ozone\n"
        "      admin upgrade --help')\n",
        f);
}

int cmd_admin(struct cli *cli, int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : NULL;
    const char *state = NULL, *start = NULL, *count = NULL;
    struct oz_client *c = NULL;
    char cmd[64];
    char *pos[1];
    size_t n_pos = 0;
    bool help = false;
    const struct cli_opt opts[] = {
        {NULL, "--node-state", &state, NULL},
        {NULL, "--state", &state, NULL},
        {"-s", "--start", &start, NULL},
        {"-c", "--count", &count, NULL},
    };
    int rc;

    if (what == NULL || strcmp(what, "-h") == 0 ||
        strcmp(what, "--help") == 0) {
        admin_usage(what != NULL ? stdout : stderr);
        return what != NULL ? CLI_OK : CLI_USAGE;
    }
    /* Upgrade commands live in cmd_upgrade.c. */
    if (strcmp(what, "scm") == 0) {
        return cmd_admin_scm(cli, argc - 1, argv + 1);
    }
    if (strcmp(what, "upgrade") == 0) {
        return cmd_admin_upgrade(cli, argc - 1, argv + 1);
    }
    /* The OM ring: cmd_om.c. */
    if (strcmp(what, "om") == 0) {
        return cmd_admin_om(cli, argc - 1, argv + 1);
    }
    if (strcmp(what, "datanode") != 0 && strcmp(what, "container") != 0 &&
        strcmp(what, "pipeline") != 0) {
        return cli_fail(CLI_USAGE,
                        "unknown command 'ozone admin %s'; see 'ozone admin "
                        "--help'",
                        what);
    }
    if (argc < 3 || strcmp(argv[2], "-h") == 0 ||
        strcmp(argv[2], "--help") == 0) {
        admin_usage(argc < 3 ? stderr : stdout);
        return argc < 3 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[2], "list") != 0) {
        return cli_fail(CLI_USAGE,
                        "unknown command 'ozone admin %s %s'; see 'ozone "
                        "admin --help'",
                        what, argv[2]);
    }
    snprintf(cmd, sizeof(cmd), "ozone admin %s list", what);
    /* datanode takes --node-state; container --state, --start, --count. */
    rc = cli_parse(cmd, argc - 2, argv + 2,
                   strcmp(what, "container") == 0 ? opts + 1 : opts,
                   strcmp(what, "pipeline") == 0   ? 0
                   : strcmp(what, "datanode") == 0 ? 1
                                                   : 3,
                   pos, 0, &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        admin_usage(stdout);
        return CLI_OK;
    }
    rc = cli_open_client(cli, NULL, &c);
    if (rc != CLI_OK) {
        return rc;
    }
    if (strcmp(what, "datanode") == 0) {
        rc = datanode_list(cli, c, state);
    } else if (strcmp(what, "container") == 0) {
        rc = container_list(cli, c, state, start, count);
    } else {
        rc = pipeline_list(cli, c);
    }
    oz_client_free(c);
    return rc;
}
