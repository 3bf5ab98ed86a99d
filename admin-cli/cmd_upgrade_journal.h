/* The rolling-upgrade journal kept in OM, seen from the CLI
 * (cmd_upgrade_journal.c; issue 7, docs/cli.md). `ozone admin upgrade
 * journal` itself is declared in orch.h. */
#ifndef OZONE_CMD_UPGRADE_JOURNAL_H
#define OZONE_CMD_UPGRADE_JOURNAL_H

#include <cjson/cJSON.h>

#include "cli.h"
#include "client.h"

/* The "Rolling upgrade" part of `ozone admin upgrade status`: prints its
 * lines (unless cli->json), adds "rollingUpgrade" to root and, while a run
 * is unfinished, a blocker to blockers. Never fails: an OM that keeps no
 * journal (older, or unreachable) gives "not available". Returns CLI_OK. */
int cmd_upgrade_journal_status(struct cli *cli,
                               struct oz_client *c,
                               cJSON *root,
                               cJSON *blockers);

#endif
