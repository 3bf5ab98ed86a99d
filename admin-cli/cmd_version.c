/* `ozone version [--remote HOST:PORT ...] [--json]`: this build's release,
 * git commit and the software version of each catalog; with --remote, the
 * same asked over RPC from running daemons (their VersionHeader). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "version.h"

static void print_local(struct cli *cli, cJSON *arr)
{
    const struct version_release *r = version_release_current();

    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *cats = cJSON_AddObjectToObject(o, "softwareVersions");
        cJSON_AddStringToObject(o, "component", "CLIENT");
        cJSON_AddStringToObject(o, "release", r->release);
        cJSON_AddStringToObject(o, "gitCommit", OZONE_GIT_COMMIT);
        for (int i = 0; i < VERSION_CATALOG_COUNT; i++) {
            cJSON_AddNumberToObject(
                cats, version_builtin_catalog((enum version_catalog_id)i)->name,
                r->software[i]);
        }
        cJSON_AddItemToArray(arr, o);
        return;
    }
    printf("ozone-c %s (git commit %s)\n", r->release, OZONE_GIT_COMMIT);
    for (int i = 0; i < VERSION_CATALOG_COUNT; i++) {
        const struct version_catalog *cat =
            version_builtin_catalog((enum version_catalog_id)i);
        const struct version_feature *f =
            version_catalog_find(cat, r->software[i]);
        printf("  %-6s software version %s (%d)\n", cat->name,
               f != NULL ? f->name : "?", r->software[i]);
    }
}

static int print_remote(struct cli *cli, const char *addr, cJSON *arr)
{
    const char *addrs[1] = {addr};
    struct rpc_client *client = NULL;
    Ozone__GetVersionRequest req = OZONE__GET_VERSION_REQUEST__INIT;
    ProtobufCMessage *msg = NULL;
    struct rpc_error err;
    int rc = cli_client(cli, addrs, 1, &client);

    if (rc != CLI_OK) {
        return rc;
    }
    rc = rpc_client_call(client, &ozone__version_service__descriptor,
                         "GetVersion", &req.base, &msg, &err);
    rpc_client_free(client);
    if (rc != 0) {
        return cli_fail(CLI_FAILED, "cannot get the version of '%s': %s", addr,
                        err.message);
    }
    Ozone__GetVersionResponse *v = (Ozone__GetVersionResponse *)msg;
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *cats = cJSON_AddArrayToObject(o, "catalogs");
        cJSON_AddStringToObject(o, "address", addr);
        cJSON_AddStringToObject(o, "component",
                                rpc_component_name(v->hdr->component));
        cJSON_AddStringToObject(o, "nodeId", v->hdr->node_id);
        cJSON_AddStringToObject(o, "clusterId", v->hdr->cluster_id);
        cJSON_AddStringToObject(o, "release", v->release);
        cJSON_AddStringToObject(o, "gitCommit", v->git_commit);
        cJSON_AddNumberToObject(o, "softwareVersion", v->hdr->software_version);
        cJSON_AddNumberToObject(o, "apparentVersion", v->hdr->apparent_version);
        cJSON_AddBoolToObject(o, "preFinalized", v->pre_finalized);
        for (size_t i = 0; i < v->n_catalogs; i++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "name", v->catalogs[i]->name);
            cJSON_AddNumberToObject(c, "softwareVersion",
                                    v->catalogs[i]->software_version);
            cJSON_AddNumberToObject(c, "apparentVersion",
                                    v->catalogs[i]->apparent_version);
            cJSON_AddItemToArray(cats, c);
        }
        cJSON_AddItemToArray(arr, o);
    } else {
        printf(
            "%-8s %-38s %-21s release %s (%s), software %u, apparent "
            "%u%s\n",
            rpc_component_name(v->hdr->component), v->hdr->node_id, addr,
            v->release, v->git_commit, v->hdr->software_version,
            v->hdr->apparent_version,
            v->pre_finalized ? " (pre-finalized)" : "");
    }
    rpc_message_free(msg);
    return CLI_OK;
}

int cmd_version(struct cli *cli, int argc, char **argv)
{
    cJSON *arr = cli->json ? cJSON_CreateArray() : NULL;
    int status = CLI_OK;
    bool any_remote = false;

    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf(
                "Usage: ozone version [--remote HOST:PORT ...] [--json]\n"
                "Prints this build's release and software versions; "
                "with --remote, asks\nrunning daemons over RPC.\n");
            cJSON_Delete(arr);
            return CLI_OK;
        }
        if (strcmp(argv[i], "--remote") != 0 || i + 1 >= argc) {
            cJSON_Delete(arr);
            return cli_fail(CLI_USAGE,
                            "unknown argument '%s' for 'ozone version'; see "
                            "'ozone version --help'",
                            argv[i]);
        }
    }
    print_local(cli, arr);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--remote") == 0) {
            any_remote = true;
            int rc = print_remote(cli, argv[i + 1], arr);
            if (rc != CLI_OK) {
                status = rc;
            }
        }
    }
    (void)any_remote;
    if (arr != NULL) {
        cli_print_json(arr);
    }
    return status;
}
