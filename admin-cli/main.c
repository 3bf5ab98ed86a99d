/* The `ozone` command (DESIGN.md §10): starts daemons and talks to them.
 * Exit status: 0 success, 1 failure reported by a server, 2 bad usage. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "datanode.h"
#include "om.h"
#include "recon.h"
#include "scm.h"

static void usage(FILE *f)
{
    fputs(
        "Usage: ozone [--conf DIR] [-D KEY=VALUE]... [--json] COMMAND "
        "[ARGS]\n\n"
        "Commands:\n"
        "  om [ARGS]         run the Ozone Manager (see 'ozone om --help')\n"
        "  scm [ARGS]        run the Storage Container Manager\n"
        "  datanode [ARGS]   run a datanode\n"
        "  recon [ARGS]      run Recon\n"
        "  sh ...            volumes, buckets and keys (see 'ozone sh "
        "--help')\n"
        "  admin ...         datanode, container and pipeline listings\n"
        "  freon ...         load generator: ockg writes keys, ockv "
        "validates them\n"
        "  version           print versions (local build, or --remote "
        "daemons)\n\n"
        "Global options:\n"
        "  --conf DIR        configuration directory holding "
        "ozone-site.xml\n"
        "                    (default: $OZONE_CONF_DIR)\n"
        "  -D KEY=VALUE      set a configuration key\n"
        "  --json            machine-readable output\n"
        "  -h, --help        show this help\n",
        f);
}

int main(int argc, char **argv)
{
    static const struct
    {
        const char *name;
        int (*run)(int, char **);
    } daemons[] = {
        {"om", om_main},
        {"scm", scm_main},
        {"datanode", datanode_main},
        {"recon", recon_main},
    };
    struct cli cli;
    int status;

    /* Daemons parse their own options (including --conf and -D). */
    if (argc >= 2) {
        for (size_t i = 0; i < sizeof(daemons) / sizeof(daemons[0]); i++) {
            if (strcmp(argv[1], daemons[i].name) == 0) {
                return daemons[i].run(argc - 1, argv + 1);
            }
        }
    }
    status = cli_init(&cli, &argc, argv);
    if (status != CLI_OK) {
        cli_release(&cli);
        return status;
    }
    if (argc < 2) {
        usage(stderr);
        cli_release(&cli);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        status = CLI_OK;
    } else if (strcmp(argv[1], "version") == 0) {
        status = cmd_version(&cli, argc - 1, argv + 1);
    } else if (strcmp(argv[1], "sh") == 0) {
        status = cmd_sh(&cli, argc - 1, argv + 1);
    } else if (strcmp(argv[1], "admin") == 0) {
        status = cmd_admin(&cli, argc - 1, argv + 1);
    } else if (strcmp(argv[1], "freon") == 0) {
        status = cmd_freon(&cli, argc - 1, argv + 1);
    } else {
        status = cli_fail(CLI_USAGE, "unknown command '%s'; see 'ozone --help'",
                          argv[1]);
    }
    cli_release(&cli);
    return status;
}
