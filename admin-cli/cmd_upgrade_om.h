/* The OM side of the upgrade commands and the OM feature commands
 * (cmd_upgrade_om.c; DESIGN.md §6.7, §10). */
#ifndef OZONE_CMD_UPGRADE_OM_H
#define OZONE_CMD_UPGRADE_OM_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "cli.h"

/* `ozone admin om finalizeupgrade|finalizationstatus`; argv[1] is one of
 * them. */
int cmd_om_upgrade(struct cli *cli, int argc, char **argv);

/* `ozone admin upgrade finalize [--wait]`; argv[1] is "finalize". */
int cmd_upgrade_finalize(struct cli *cli, int argc, char **argv);

/* The OM lines of `ozone admin upgrade status` (a part of cmd_upgrade.c):
 * prints "OM status: ..." (with -v the versions of every OM) and "Cluster
 * status: ...", adds "om" and "cluster" to root (the SCM part must have
 * added "scm" first), the OM's blockers to blockers, and clears
 * *downgrade_possible (with why) once OM finalization has started. */
int cmd_upgrade_om_status(struct cli *cli,
                          struct oz_client *c,
                          bool verbose,
                          cJSON *root,
                          cJSON *blockers,
                          bool *downgrade_possible,
                          char *why,
                          size_t why_size);

/* `ozone sh bucket setquota`, `ozone sh key settags|gettags`; what is the
 * verb, argv[0] too. */
int cmd_sh_upgrade_features(struct cli *cli,
                            const char *what,
                            int argc,
                            char **argv);

#endif
