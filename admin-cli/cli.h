/* Shared pieces of the `ozone` command (DESIGN.md §10): global options,
 * output in plain text or JSON, exit codes, rpc clients. */
#ifndef OZONE_CLI_H
#define OZONE_CLI_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "conf.h"
#include "rpc.h"

/* Exit statuses (DESIGN.md §10). */
enum cli_exit { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

struct cli
{
    struct conf *conf;
    bool json;
    struct rpc_identity identity; /* CLIENT component */
    /* --conf DIR, else $OZONE_CONF_DIR; NULL when neither (borrowed from
     * argv / the environment, valid for the process). */
    const char *conf_dir;
};

/* Parses global options (--conf DIR, -D k=v, --json) anywhere in argv and
 * removes them, leaving the rest in order. Returns CLI_OK or CLI_USAGE
 * (message printed). */
int cli_init(struct cli *cli, int *argc, char **argv);
void cli_release(struct cli *cli);

/* Prints "ozone: <message>" to stderr. Returns status. */
int cli_fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints a cJSON value to stdout (formatted) and deletes it. */
void cli_print_json(cJSON *v);

/* Client for the given addresses with the CLI's identity and timeouts. */
int cli_client(struct cli *cli,
               const char *const *addrs,
               size_t n,
               struct rpc_client **out);

/* One option of a subcommand: "-r" and/or "--replication". value is set
 * for options that take one (--x V, --x=V, -x V), flag otherwise. */
struct cli_opt
{
    const char *short_name; /* "-r" or NULL */
    const char *long_name;  /* "--replication" or NULL */
    const char **value;     /* borrowed from argv */
    bool *flag;
};

/* Parses argv[1..] of the command named cmd ("ozone sh key put") into
 * opts and up to max_pos positional arguments. "-h"/"--help" sets *help.
 * Returns CLI_OK, or CLI_USAGE with the message printed (unknown option,
 * missing value, too many arguments). */
int cli_parse(const char *cmd,
              int argc,
              char **argv,
              const struct cli_opt *opts,
              size_t n_opts,
              char **pos,
              size_t max_pos,
              size_t *n_pos,
              bool *help);

/* Parses a decimal count in [min, max]; false when it is not one. */
bool cli_parse_count(const char *s,
                     long long min,
                     long long max,
                     long long *out);

struct oz_client;
struct oz_error;

/* Opens the client library for om_target (NULL: configuration; see
 * oz_client_new). CLI_OK or an exit status (message printed). Free with
 * oz_client_free(). */
int cli_open_client(struct cli *cli,
                    const char *om_target,
                    struct oz_client **out);

/* Prints "ozone: <RESULT_CODE>: <message>" and returns CLI_FAILED. */
int cli_fail_oz(const struct oz_error *err);

/* Subcommands. argv[0] is the subcommand's own name. */
int cmd_version(struct cli *cli, int argc, char **argv);
int cmd_sh(struct cli *cli, int argc, char **argv);
int cmd_admin(struct cli *cli, int argc, char **argv);
int cmd_freon(struct cli *cli, int argc, char **argv);
/* cmd_upgrade.c: argv[0] is "scm" / "upgrade". */
int cmd_admin_scm(struct cli *cli, int argc, char **argv);
int cmd_admin_upgrade(struct cli *cli, int argc, char **argv);
/* cmd_om.c: argv[0] is "om". */
int cmd_admin_om(struct cli *cli, int argc, char **argv);

#endif
