#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "err.h"
#include "version.h"

int cli_fail(int status, const char *fmt, ...)
{
    va_list ap;

    fputs("ozone: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

int cli_init(struct cli *cli, int *argc, char **argv)
{
    const char *conf_dir = getenv("OZONE_CONF_DIR");
    char errmsg[OZ_ERRMSG_SIZE];
    struct conf *overrides;
    int out = 1;

    memset(cli, 0, sizeof(*cli));
    cli->conf = conf_new();
    overrides = conf_new();
    if (cli->conf == NULL || overrides == NULL) {
        conf_free(overrides);
        return cli_fail(CLI_FAILED, "out of memory");
    }
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            cli->json = true;
        } else if (strcmp(a, "--conf") == 0) {
            if (i + 1 >= *argc) {
                conf_free(overrides);
                return cli_fail(CLI_USAGE, "option '--conf' needs a value");
            }
            conf_dir = argv[++i];
        } else if (strcmp(a, "-D") == 0 ||
                   (strncmp(a, "-D", 2) == 0 && a[2] != '\0')) {
            const char *kv = a[2] != '\0' ? a + 2 : NULL;
            if (kv == NULL) {
                if (i + 1 >= *argc) {
                    conf_free(overrides);
                    return cli_fail(CLI_USAGE, "option '-D' needs KEY=VALUE");
                }
                kv = argv[++i];
            }
            if (conf_set_override(overrides, kv, errmsg) != 0) {
                conf_free(overrides);
                return cli_fail(CLI_USAGE, "%s", errmsg);
            }
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    *argc = out;
    if (conf_dir != NULL && conf_dir[0] != '\0' &&
        conf_load_dir(cli->conf, conf_dir, errmsg) != 0) {
        conf_free(overrides);
        return cli_fail(CLI_USAGE, "%s", errmsg);
    }
    for (size_t k = 0; k < conf_count(overrides); k++) {
        const char *key = conf_key_at(overrides, k);
        conf_set(cli->conf, key, conf_get(overrides, key));
    }
    conf_free(overrides);
    cli->conf_dir = conf_dir != NULL && conf_dir[0] != '\0' ? conf_dir : NULL;
    cli->identity.component = OZONE__COMPONENT__CLIENT;
    cli->identity.node_id = "ozone-cli";
    cli->identity.cluster_id = "";
    cli->identity.software_version =
        (unsigned)version_release_current()->software[VERSION_CATALOG_CLIENT];
    cli->identity.apparent_version = cli->identity.software_version;
    return CLI_OK;
}

void cli_release(struct cli *cli)
{
    conf_free(cli->conf);
    cli->conf = NULL;
}

static void print_indent(FILE *f, int depth)
{
    for (int i = 0; i < depth; i++) {
        fputs("  ", f);
    }
}

/* Prints v the way Ozone's CLI does (Jackson's default pretty printer):
 * objects one member a line indented by two spaces with " : ", arrays
 * inline ("[ {", "}, {", "} ]"), empty containers as "{ }" and "[ ]". */
static void print_jackson(FILE *f, const cJSON *v, int depth)
{
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        bool obj = cJSON_IsObject(v);
        const cJSON *c = v->child;

        if (c == NULL) {
            fputs(obj ? "{ }" : "[ ]", f);
            return;
        }
        fputs(obj ? "{" : "[ ", f);
        for (; c != NULL; c = c->next) {
            if (obj) {
                cJSON *name = cJSON_CreateStringReference(
                    c->string != NULL ? c->string : "");
                char *key = name != NULL ? cJSON_PrintUnformatted(name) : NULL;
                cJSON_Delete(name);
                fputc('\n', f);
                print_indent(f, depth + 1);
                fprintf(f, "%s : ", key != NULL ? key : "\"\"");
                free(key);
                print_jackson(f, c, depth + 1);
            } else {
                print_jackson(f, c, depth);
            }
            if (c->next != NULL) {
                fputs(obj ? "," : ", ", f);
            }
        }
        if (obj) {
            fputc('\n', f);
            print_indent(f, depth);
            fputc('}', f);
        } else {
            fputs(" ]", f);
        }
        return;
    }
    char *text = cJSON_PrintUnformatted(v);
    fputs(text != NULL ? text : "null", f);
    free(text);
}

void cli_print_json(cJSON *v)
{
    print_jackson(stdout, v, 0);
    fputc('\n', stdout);
    cJSON_Delete(v);
}

int cli_client(struct cli *cli,
               const char *const *addrs,
               size_t n,
               struct rpc_client **out)
{
    struct rpc_client_config cfg;
    char errmsg[OZ_ERRMSG_SIZE];
    long long timeout_ms = 10000;

    if (conf_get_duration_ms(cli->conf, "ozone.rpc.timeout", "10s", &timeout_ms,
                             errmsg) != 0) {
        return cli_fail(CLI_USAGE, "%s", errmsg);
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.addrs = addrs;
    cfg.n_addrs = n;
    cfg.identity = &cli->identity;
    cfg.deadline_ms = (int)timeout_ms;
    if (rpc_client_new(out, &cfg, errmsg) != 0) {
        return cli_fail(CLI_FAILED, "%s", errmsg);
    }
    return CLI_OK;
}

static const struct cli_opt *find_opt(const struct cli_opt *opts,
                                      size_t n,
                                      const char *name,
                                      size_t len)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = opts[i].short_name;
        const char *l = opts[i].long_name;
        if ((s != NULL && strlen(s) == len && strncmp(s, name, len) == 0) ||
            (l != NULL && strlen(l) == len && strncmp(l, name, len) == 0)) {
            return &opts[i];
        }
    }
    return NULL;
}

int cli_parse(const char *cmd,
              int argc,
              char **argv,
              const struct cli_opt *opts,
              size_t n_opts,
              char **pos,
              size_t max_pos,
              size_t *n_pos,
              bool *help)
{
    bool only_positional = false;

    *n_pos = 0;
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const struct cli_opt *o;
        const char *eq;

        if (!only_positional && strcmp(a, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (only_positional || a[0] != '-' || strcmp(a, "-") == 0) {
            if (*n_pos == max_pos) {
                return cli_fail(CLI_USAGE,
                                "unexpected argument '%s' for '%s'; see "
                                "'%s --help'",
                                a, cmd, cmd);
            }
            pos[(*n_pos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = true;
            return CLI_OK;
        }
        eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        o = find_opt(opts, n_opts, a,
                     eq != NULL ? (size_t)(eq - a) : strlen(a));
        if (o == NULL) {
            return cli_fail(CLI_USAGE,
                            "unknown option '%s' for '%s'; see '%s --help'", a,
                            cmd, cmd);
        }
        if (o->flag != NULL) {
            if (eq != NULL) {
                return cli_fail(CLI_USAGE,
                                "option '%.*s' of '%s' takes no value",
                                (int)(eq - a), a, cmd);
            }
            *o->flag = true;
            continue;
        }
        if (eq != NULL) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            return cli_fail(CLI_USAGE, "option '%s' of '%s' needs a value", a,
                            cmd);
        }
    }
    return CLI_OK;
}

bool cli_parse_count(const char *s,
                     long long min,
                     long long max,
                     long long *out)
{
    char *end = NULL;
    long long v;

    if (s == NULL || s[0] == '\0') {
        return false;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

int cli_open_client(struct cli *cli,
                    const char *om_target,
                    struct oz_client **out)
{
    char errmsg[OZ_ERRMSG_SIZE];
    int rc = oz_client_new(out, cli->conf, om_target, &cli->identity, errmsg);

    if (rc == OZ_ECONFIG || rc == OZ_EINVAL) {
        return cli_fail(CLI_USAGE, "%s", errmsg);
    }
    if (rc != 0) {
        return cli_fail(CLI_FAILED, "%s", errmsg);
    }
    return CLI_OK;
}

int cli_fail_oz(const struct oz_error *err)
{
    return cli_fail(CLI_FAILED, "%s: %s", oz_result_name(err->code),
                    err->message);
}
