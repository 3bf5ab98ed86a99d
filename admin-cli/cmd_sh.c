/* `ozone sh volume|bucket|key ...`: the namespace and key data commands
 * (DESIGN.md §7, §10). Paths take Ozone's forms: /vol/bucket/key,
 * o3://host:port/vol/bucket/key and o3://<om service id>/vol/... .
 * Output follows Ozone: info prints one JSON object, list a JSON array,
 * with Ozone's field names, so operators' scripts keep working.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_upgrade_om.h"
#include "client.h"
#include "err.h"

#define PATH_BUF 4096
#define LIST_PAGE 1000
#define LIST_DEFAULT 100

enum path_level { PATH_ROOT = 0, PATH_VOLUME, PATH_BUCKET, PATH_KEY };

struct oz_path
{
    char buf[PATH_BUF];
    const char *host; /* "" when the path names no OM */
    const char *volume, *bucket, *key;
};

static const char *const level_forms[] = {
    "/ or o3://HOST/", "/VOLUME", "/VOLUME/BUCKET", "/VOLUME/BUCKET/KEY"};

/* Splits an Ozone path; the path must name exactly the wanted level. */
static int parse_path(const char *arg, enum path_level want, struct oz_path *p)
{
    char *s = p->buf;
    char *parts[3] = {NULL, NULL, NULL};
    int n = 0;

    memset(p, 0, sizeof(*p));
    p->host = p->volume = p->bucket = p->key = "";
    if (strlen(arg) >= sizeof(p->buf)) {
        return cli_fail(CLI_USAGE, "path '%.40s...' is too long", arg);
    }
    oz_strlcpy(p->buf, arg, sizeof(p->buf));
    if (strstr(s, "://") != NULL) {
        if (strncmp(s, "o3://", 5) != 0) {
            return cli_fail(CLI_USAGE,
                            "unsupported scheme in '%s': use o3:// or a "
                            "plain /volume/bucket/key path",
                            arg);
        }
        char *host = s + 5;
        char *slash = strchr(host, '/');
        if (slash != NULL) {
            *slash = '\0';
            s = slash + 1;
        } else {
            s = host + strlen(host);
        }
        p->host = host;
    }
    while (*s == '/') {
        s++;
    }
    while (*s != '\0' && n < 3) {
        char *slash;
        parts[n++] = s;
        if (n == 3) {
            break; /* the key keeps its own slashes */
        }
        slash = strchr(s, '/');
        if (slash == NULL) {
            break;
        }
        *slash = '\0';
        s = slash + 1;
        while (*s == '/') {
            s++;
        }
    }
    if (n != (int)want) {
        return cli_fail(CLI_USAGE, "'%s' is not a %s path: expected %s", arg,
                        want == PATH_VOLUME   ? "volume"
                        : want == PATH_BUCKET ? "bucket"
                        : want == PATH_KEY    ? "key"
                                              : "service",
                        level_forms[want]);
    }
    p->volume = parts[0] != NULL ? parts[0] : "";
    p->bucket = parts[1] != NULL ? parts[1] : "";
    p->key = parts[2] != NULL ? parts[2] : "";
    return CLI_OK;
}

/* ---- JSON in Ozone's shape ---- */

static void add_time(cJSON *o, const char *name, uint64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char buf[64];

    gmtime_r(&secs, &tm);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    cJSON_AddStringToObject(o, name, buf);
}

/* 64-bit ids exactly (cJSON numbers are doubles). */
static void add_u64(cJSON *o, const char *name, uint64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    cJSON_AddRawToObject(o, name, buf);
}

static void add_quota(cJSON *o, const char *name, uint64_t v)
{
    if (v == 0) {
        cJSON_AddNumberToObject(o, name, -1); /* Ozone: unlimited */
    } else {
        add_u64(o, name, v);
    }
}

static void add_replication(cJSON *o, Ozone__Hdds__ReplicationFactor f)
{
    cJSON *r = cJSON_AddObjectToObject(o, "replicationConfig");

    cJSON_AddStringToObject(r, "replicationFactor", oz_replication_name(f));
    cJSON_AddNumberToObject(
        r, "requiredNodes",
        f == OZONE__HDDS__REPLICATION_FACTOR__THREE ? 3 : 1);
    cJSON_AddStringToObject(r, "replicationType", "STAND_ALONE");
}

static cJSON *volume_json(const Ozone__Om__VolumeInfo *v)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddObjectToObject(o, "metadata");
    cJSON_AddStringToObject(o, "name", v->name);
    cJSON_AddStringToObject(o, "admin", v->admin);
    cJSON_AddStringToObject(o, "owner", v->owner);
    add_quota(o, "quotaInBytes", v->quota_in_bytes);
    cJSON_AddNumberToObject(o, "quotaInNamespace", -1);
    add_time(o, "creationTime", v->creation_time);
    add_time(o, "modificationTime", v->modification_time);
    add_u64(o, "objectID", v->object_id);
    add_u64(o, "updateID", v->update_id);
    return o;
}

static cJSON *bucket_json(const Ozone__Om__BucketInfo *b)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddObjectToObject(o, "metadata");
    cJSON_AddStringToObject(o, "volumeName", b->volume);
    cJSON_AddStringToObject(o, "name", b->name);
    cJSON_AddStringToObject(o, "storageType", "DISK");
    cJSON_AddFalseToObject(o, "versioning");
    add_u64(o, "usedBytes", b->used_bytes);
    add_u64(o, "usedNamespace", b->used_namespace);
    add_time(o, "creationTime", b->creation_time);
    add_time(o, "modificationTime", b->modification_time);
    /* OM BUCKET_QUOTA (101); -1 (Ozone's "none") while unset. */
    add_quota(o, "quotaInBytes", b->quota_in_bytes);
    add_quota(o, "quotaInNamespace", b->quota_in_namespace);
    cJSON_AddStringToObject(o, "bucketLayout", "LEGACY");
    cJSON_AddStringToObject(o, "owner", b->owner);
    cJSON_AddFalseToObject(o, "link");
    add_replication(o, b->replication);
    return o;
}

static cJSON *key_json(const Ozone__Om__KeyInfo *k, bool locations)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "volumeName", k->volume);
    cJSON_AddStringToObject(o, "bucketName", k->bucket);
    cJSON_AddStringToObject(o, "name", k->name);
    add_u64(o, "dataSize", k->data_size);
    add_time(o, "creationTime", k->creation_time);
    add_time(o, "modificationTime", k->modification_time);
    add_replication(o, k->replication);
    cJSON_AddObjectToObject(o, "metadata");
    if (locations) {
        cJSON *arr = cJSON_AddArrayToObject(o, "ozoneKeyLocations");
        for (size_t i = 0; i < k->n_locations; i++) {
            const Ozone__Om__KeyLocation *l = k->locations[i];
            cJSON *lo = cJSON_CreateObject();
            cJSON *dns;
            add_u64(lo, "containerID",
                    l->block_id != NULL ? l->block_id->container_id : 0);
            add_u64(lo, "localID",
                    l->block_id != NULL ? l->block_id->local_id : 0);
            add_u64(lo, "length", l->length);
            add_u64(lo, "offset", 0);
            add_u64(lo, "keyOffset", l->offset);
            /* ozone-c addition: where the replicas are. */
            cJSON_AddStringToObject(lo, "pipelineID",
                                    l->pipeline != NULL ? l->pipeline->id : "");
            dns = cJSON_AddArrayToObject(lo, "datanodes");
            for (size_t m = 0;
                 l->pipeline != NULL && m < l->pipeline->n_members; m++) {
                cJSON_AddItemToArray(
                    dns, cJSON_CreateString(l->pipeline->members[m]->uuid));
            }
            cJSON_AddItemToArray(arr, lo);
        }
    }
    cJSON_AddTrueToObject(o, "file");
    return o;
}

/* ---- volume ---- */

static int open_for(struct cli *cli,
                    const struct oz_path *p,
                    struct oz_client **c)
{
    return cli_open_client(cli, p->host[0] != '\0' ? p->host : NULL, c);
}

struct list_opts
{
    const char *length, *start, *prefix;
    bool all;
    long long max;
};

static int list_limits(struct list_opts *lo)
{
    lo->max = LIST_DEFAULT;
    if (lo->all) {
        lo->max = -1;
    } else if (lo->length != NULL &&
               !cli_parse_count(lo->length, 1, 1000000, &lo->max)) {
        return cli_fail(CLI_USAGE,
                        "invalid value '%s' for '--length': expected a "
                        "count from 1 to 1000000",
                        lo->length);
    }
    return CLI_OK;
}

static unsigned page_size(const struct list_opts *lo, long long listed)
{
    long long left = lo->max < 0 ? LIST_PAGE : lo->max - listed;

    return (unsigned)(left > LIST_PAGE ? LIST_PAGE : left);
}

/* Lists pages of one kind; fetch returns the page's items as JSON
 * objects and the name to continue after. */
typedef int (*page_fn)(struct oz_client *c,
                       const struct oz_path *p,
                       const struct list_opts *lo,
                       const char *after,
                       unsigned n,
                       cJSON *arr,
                       char *last,
                       size_t last_size,
                       size_t *got,
                       struct oz_error *err);

static int list_all(struct oz_client *c,
                    const struct oz_path *p,
                    struct list_opts *lo,
                    page_fn fetch)
{
    cJSON *arr = cJSON_CreateArray();
    char last[PATH_BUF];
    long long listed = 0;
    struct oz_error err;

    oz_strlcpy(last, lo->start != NULL ? lo->start : "", sizeof(last));
    for (;;) {
        unsigned n = page_size(lo, listed);
        size_t got = 0;
        if (n == 0) {
            break;
        }
        memset(&err, 0, sizeof(err));
        if (fetch(c, p, lo, last, n, arr, last, sizeof(last), &got, &err) !=
            0) {
            cJSON_Delete(arr);
            return cli_fail_oz(&err);
        }
        listed += (long long)got;
        if (got < n) {
            break;
        }
    }
    cli_print_json(arr);
    return CLI_OK;
}

static int volume_page(struct oz_client *c,
                       const struct oz_path *p,
                       const struct list_opts *lo,
                       const char *after,
                       unsigned n,
                       cJSON *arr,
                       char *last,
                       size_t last_size,
                       size_t *got,
                       struct oz_error *err)
{
    Ozone__Om__ListVolumesResponse *r = NULL;
    int rc = oz_volume_list(c, lo->prefix, after, n, &r, err);

    (void)p;
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < r->n_volumes && i < n; i++) {
        cJSON_AddItemToArray(arr, volume_json(r->volumes[i]));
        oz_strlcpy(last, r->volumes[i]->name, last_size);
    }
    *got = r->n_volumes < n ? r->n_volumes : n;
    oz_client_free_msg(r);
    return 0;
}

static int bucket_page(struct oz_client *c,
                       const struct oz_path *p,
                       const struct list_opts *lo,
                       const char *after,
                       unsigned n,
                       cJSON *arr,
                       char *last,
                       size_t last_size,
                       size_t *got,
                       struct oz_error *err)
{
    Ozone__Om__ListBucketsResponse *r = NULL;
    int rc = oz_bucket_list(c, p->volume, lo->prefix, after, n, &r, err);

    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < r->n_buckets && i < n; i++) {
        cJSON_AddItemToArray(arr, bucket_json(r->buckets[i]));
        oz_strlcpy(last, r->buckets[i]->name, last_size);
    }
    *got = r->n_buckets < n ? r->n_buckets : n;
    oz_client_free_msg(r);
    return 0;
}

static int key_page(struct oz_client *c,
                    const struct oz_path *p,
                    const struct list_opts *lo,
                    const char *after,
                    unsigned n,
                    cJSON *arr,
                    char *last,
                    size_t last_size,
                    size_t *got,
                    struct oz_error *err)
{
    Ozone__Om__ListKeysResponse *r = NULL;
    int rc =
        oz_key_list(c, p->volume, p->bucket, lo->prefix, after, n, &r, err);

    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < r->n_keys && i < n; i++) {
        cJSON_AddItemToArray(arr, key_json(r->keys[i], false));
        oz_strlcpy(last, r->keys[i]->name, last_size);
    }
    *got = r->n_keys < n ? r->n_keys : n;
    oz_client_free_msg(r);
    return 0;
}

/* What one `ozone sh OBJECT VERB` invocation received. */
struct sh_args
{
    struct cli *cli;
    const char *cmd; /* "ozone sh key put" */
    char *pos[3];
    size_t n_pos;
    const char *user, *quota, *replication, *type, *layout;
    bool force;
    struct list_opts list;
};

static int run_volume(struct sh_args *a, const char *verb)
{
    struct oz_client *c = NULL;
    struct oz_path p;
    struct oz_error err;
    int rc;

    memset(&err, 0, sizeof(err));
    if (strcmp(verb, "list") == 0) {
        rc = parse_path(a->n_pos > 0 ? a->pos[0] : "/", PATH_ROOT, &p);
        if (rc == CLI_OK) {
            rc = list_limits(&a->list);
        }
        if (rc == CLI_OK) {
            rc = open_for(a->cli, &p, &c);
        }
        if (rc == CLI_OK) {
            rc = list_all(c, &p, &a->list, volume_page);
        }
        oz_client_free(c);
        return rc;
    }
    rc = parse_path(a->pos[0], PATH_VOLUME, &p);
    if (rc != CLI_OK || (rc = open_for(a->cli, &p, &c)) != CLI_OK) {
        return rc;
    }
    if (strcmp(verb, "create") == 0) {
        long long quota = 0;
        if (a->quota != NULL &&
            (conf_parse_size(a->quota, &quota) != 0 || quota < 0)) {
            oz_client_free(c);
            return cli_fail(CLI_USAGE,
                            "invalid value '%s' for '--quota': expected a "
                            "size like 10GB",
                            a->quota);
        }
        const char *owner = a->user != NULL ? a->user : getenv("USER");
        rc = oz_volume_create(c, p.volume, owner, (uint64_t)quota, &err);
    } else if (strcmp(verb, "info") == 0) {
        Ozone__Om__VolumeInfo *v = NULL;
        rc = oz_volume_info(c, p.volume, &v, &err);
        if (rc == 0) {
            cli_print_json(volume_json(v));
            oz_client_free_msg(v);
        }
    } else {
        rc = oz_volume_delete(c, p.volume, &err);
        if (rc == 0 && !a->cli->json) {
            printf("Volume %s is deleted\n", p.volume);
        }
    }
    oz_client_free(c);
    return rc == 0 ? CLI_OK : cli_fail_oz(&err);
}

static int run_bucket(struct sh_args *a, const char *verb)
{
    Ozone__Hdds__ReplicationFactor repl =
        OZONE__HDDS__REPLICATION_FACTOR__REPLICATION_UNSPECIFIED;
    struct oz_client *c = NULL;
    struct oz_path p;
    struct oz_error err;
    int rc;

    memset(&err, 0, sizeof(err));
    if (strcmp(verb, "list") == 0) {
        rc = parse_path(a->pos[0], PATH_VOLUME, &p);
        if (rc == CLI_OK) {
            rc = list_limits(&a->list);
        }
        if (rc == CLI_OK) {
            rc = open_for(a->cli, &p, &c);
        }
        if (rc == CLI_OK) {
            rc = list_all(c, &p, &a->list, bucket_page);
        }
        oz_client_free(c);
        return rc;
    }
    rc = parse_path(a->pos[0], PATH_BUCKET, &p);
    if (rc != CLI_OK) {
        return rc;
    }
    if (a->replication != NULL &&
        oz_parse_replication(a->replication, &repl) != 0) {
        return cli_fail(CLI_USAGE,
                        "invalid replication '%s': expected ONE or THREE",
                        a->replication);
    }
    if ((rc = open_for(a->cli, &p, &c)) != CLI_OK) {
        return rc;
    }
    if (strcmp(verb, "create") == 0) {
        rc = oz_bucket_create(c, p.volume, p.bucket, repl, &err);
    } else if (strcmp(verb, "info") == 0) {
        Ozone__Om__BucketInfo *b = NULL;
        rc = oz_bucket_info(c, p.volume, p.bucket, &b, &err);
        if (rc == 0) {
            cli_print_json(bucket_json(b));
            oz_client_free_msg(b);
        }
    } else {
        rc = oz_bucket_delete(c, p.volume, p.bucket, &err);
        if (rc == 0 && !a->cli->json) {
            printf("Bucket %s is deleted\n", p.bucket);
        }
    }
    oz_client_free(c);
    return rc == 0 ? CLI_OK : cli_fail_oz(&err);
}

static int key_put(struct sh_args *a,
                   struct oz_client *c,
                   const struct oz_path *p,
                   struct oz_error *err)
{
    Ozone__Hdds__ReplicationFactor repl =
        OZONE__HDDS__REPLICATION_FACTOR__REPLICATION_UNSPECIFIED;
    const char *file = a->pos[1];
    int fd = 0;
    int rc;

    if (a->replication != NULL &&
        oz_parse_replication(a->replication, &repl) != 0) {
        return cli_fail(CLI_USAGE,
                        "invalid replication '%s': expected ONE or THREE",
                        a->replication);
    }
    if (strcmp(file, "-") != 0) {
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            return cli_fail(CLI_FAILED, "cannot open '%s': %s", file,
                            strerror(errno));
        }
    }
    rc = oz_key_put_fd(c, p->volume, p->bucket, p->key, repl, fd, NULL, err);
    if (fd != 0) {
        close(fd);
    }
    return rc == 0 ? CLI_OK : cli_fail_oz(err);
}

static int key_get(struct sh_args *a,
                   struct oz_client *c,
                   const struct oz_path *p,
                   struct oz_error *err)
{
    const char *file = a->n_pos > 1 ? a->pos[1] : "-";
    int fd = 1;
    int rc;

    if (strcmp(file, "-") != 0) {
        int flags =
            O_WRONLY | O_CREAT | O_CLOEXEC | (a->force ? O_TRUNC : O_EXCL);
        fd = open(file, flags, 0644);
        if (fd < 0 && errno == EEXIST) {
            return cli_fail(CLI_FAILED,
                            "file '%s' exists; pass --force to overwrite it",
                            file);
        }
        if (fd < 0) {
            return cli_fail(CLI_FAILED, "cannot create '%s': %s", file,
                            strerror(errno));
        }
    }
    rc = oz_key_get_fd(c, p->volume, p->bucket, p->key, fd, NULL, err);
    if (fd != 1) {
        if (close(fd) != 0 && rc == 0) {
            return cli_fail(CLI_FAILED, "cannot write '%s': %s", file,
                            strerror(errno));
        }
        if (rc != 0) {
            unlink(file); /* never leave a partial copy behind */
        }
    }
    return rc == 0 ? CLI_OK : cli_fail_oz(err);
}

static int run_key(struct sh_args *a, const char *verb)
{
    struct oz_client *c = NULL;
    struct oz_path p;
    struct oz_error err;
    bool on_bucket = strcmp(verb, "list") == 0 || strcmp(verb, "rename") == 0;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = parse_path(a->pos[0], on_bucket ? PATH_BUCKET : PATH_KEY, &p);
    if (rc == CLI_OK && strcmp(verb, "list") == 0) {
        rc = list_limits(&a->list);
    }
    if (rc != CLI_OK || (rc = open_for(a->cli, &p, &c)) != CLI_OK) {
        return rc;
    }
    if (strcmp(verb, "list") == 0) {
        rc = list_all(c, &p, &a->list, key_page);
    } else if (strcmp(verb, "put") == 0) {
        rc = key_put(a, c, &p, &err);
    } else if (strcmp(verb, "get") == 0 || strcmp(verb, "cat") == 0) {
        rc = key_get(a, c, &p, &err);
    } else if (strcmp(verb, "info") == 0) {
        Ozone__Om__KeyInfo *k = NULL;
        rc = oz_key_info(c, p.volume, p.bucket, p.key, &k, &err) == 0
                 ? CLI_OK
                 : cli_fail_oz(&err);
        if (k != NULL) {
            cli_print_json(key_json(k, true));
            oz_client_free_msg(k);
        }
    } else if (strcmp(verb, "delete") == 0) {
        rc = oz_key_delete(c, p.volume, p.bucket, p.key, &err) == 0
                 ? CLI_OK
                 : cli_fail_oz(&err);
    } else {
        rc = oz_key_rename(c, p.volume, p.bucket, a->pos[1], a->pos[2], &err) ==
                     0
                 ? CLI_OK
                 : cli_fail_oz(&err);
        if (rc == CLI_OK && !a->cli->json) {
            printf("Key %s is renamed to %s\n", a->pos[1], a->pos[2]);
        }
    }
    oz_client_free(c);
    return rc;
}

/* ---- command table ---- */

struct sh_cmd
{
    const char *object, *verb;
    size_t min_pos, max_pos;
    const char *usage;
    int (*run)(struct sh_args *a, const char *verb);
};

#define LIST_OPTS                                                 \
    "  -l, --length N    list at most N entries (default 100)\n"  \
    "  -s, --start NAME  list entries after NAME\n"               \
    "  -p, --prefix P    list entries whose name starts with P\n" \
    "  -a, --all         list every entry\n"

static const struct sh_cmd sh_cmds[] = {
    {"volume", "create", 1, 1,
     "PATH\nCreates a volume.\n"
     "  -u, --user USER   owner (default: $USER)\n"
     "  --quota SIZE      space quota, e.g. 10GB (default: none)\n",
     run_volume},
    {"volume", "info", 1, 1, "PATH\nPrints a volume as JSON.\n", run_volume},
    {"volume", "list", 0, 1,
     "[o3://OM/]\nPrints volumes as a JSON array.\n" LIST_OPTS, run_volume},
    {"volume", "delete", 1, 1, "PATH\nDeletes an empty volume.\n", run_volume},
    {"bucket", "create", 1, 1,
     "PATH\nCreates a bucket.\n"
     "  -r, --replication ONE|THREE  default replication of its keys\n"
     "  -t, --type TYPE   accepted for Ozone compatibility, ignored\n"
     "  --layout LAYOUT   accepted for Ozone compatibility, ignored\n",
     run_bucket},
    {"bucket", "info", 1, 1, "PATH\nPrints a bucket as JSON.\n", run_bucket},
    {"bucket", "list", 1, 1,
     "VOLUME_PATH\nPrints a volume's buckets as a JSON array.\n" LIST_OPTS,
     run_bucket},
    {"bucket", "delete", 1, 1, "PATH\nDeletes an empty bucket.\n", run_bucket},
    {"key", "put", 2, 2,
     "PATH FILE\nWrites FILE ('-': standard input) as a key.\n"
     "  -r, --replication ONE|THREE  replication (default: the bucket's)\n"
     "  -t, --type TYPE   accepted for Ozone compatibility, ignored\n",
     run_key},
    {"key", "get", 2, 2,
     "PATH FILE\nWrites a key to FILE ('-': standard output).\n"
     "  --force           overwrite FILE if it exists\n",
     run_key},
    {"key", "cat", 1, 1, "PATH\nWrites a key to standard output.\n", run_key},
    {"key", "info", 1, 1,
     "PATH\nPrints a key with its block locations as JSON.\n", run_key},
    {"key", "list", 1, 1,
     "BUCKET_PATH\nPrints a bucket's keys as a JSON array.\n" LIST_OPTS,
     run_key},
    {"key", "delete", 1, 1, "PATH\nDeletes a key.\n", run_key},
    {"key", "rename", 3, 3,
     "BUCKET_PATH FROM_KEY TO_KEY\nRenames a key within its bucket.\n",
     run_key},
};

#define N_SH_CMDS (sizeof(sh_cmds) / sizeof(sh_cmds[0]))

static void sh_usage(FILE *f, const char *object)
{
    fputs(
        "Usage: ozone sh OBJECT VERB [OPTIONS] ARGS\n\n"
        "Paths: /VOLUME[/BUCKET[/KEY]], o3://HOST:PORT/..., or "
        "o3://OM_SERVICE_ID/...\n\nCommands:\n",
        f);
    for (size_t i = 0; i < N_SH_CMDS; i++) {
        if (object == NULL || strcmp(object, sh_cmds[i].object) == 0) {
            const char *nl = strchr(sh_cmds[i].usage, '\n');
            fprintf(f, "  ozone sh %s %s %.*s\n", sh_cmds[i].object,
                    sh_cmds[i].verb, (int)(nl - sh_cmds[i].usage),
                    sh_cmds[i].usage);
        }
    }
    fputs("\nRun 'ozone sh OBJECT VERB --help' for a command's options.\n", f);
}

static int run_sh_cmd(struct cli *cli,
                      const struct sh_cmd *sc,
                      int argc,
                      char **argv)
{
    struct sh_args a;
    char cmd[64];
    bool help = false;
    const struct cli_opt opts[] = {
        {"-u", "--user", &a.user, NULL},
        {NULL, "--quota", &a.quota, NULL},
        {NULL, "--space-quota", &a.quota, NULL},
        {"-r", "--replication", &a.replication, NULL},
        {"-t", "--type", &a.type, NULL},
        {NULL, "--layout", &a.layout, NULL},
        {NULL, "--force", NULL, &a.force},
        {"-l", "--length", &a.list.length, NULL},
        {"-s", "--start", &a.list.start, NULL},
        {"-p", "--prefix", &a.list.prefix, NULL},
        {"-a", "--all", NULL, &a.list.all},
    };
    int rc;

    memset(&a, 0, sizeof(a));
    a.cli = cli;
    snprintf(cmd, sizeof(cmd), "ozone sh %s %s", sc->object, sc->verb);
    a.cmd = cmd;
    rc = cli_parse(cmd, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), a.pos,
                   sc->max_pos, &a.n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        printf("Usage: %s [OPTIONS] %s", cmd, sc->usage);
        return CLI_OK;
    }
    if (a.n_pos < sc->min_pos) {
        const char *nl = strchr(sc->usage, '\n');
        return cli_fail(CLI_USAGE, "'%s' needs %.*s; see '%s --help'", cmd,
                        (int)(nl - sc->usage), sc->usage, cmd);
    }
    return sc->run(&a, sc->verb);
}

int cmd_sh(struct cli *cli, int argc, char **argv)
{
    const char *object = argc > 1 ? argv[1] : NULL;
    const char *verb = argc > 2 ? argv[2] : NULL;
    bool known_object = false;

    if (object == NULL || strcmp(object, "-h") == 0 ||
        strcmp(object, "--help") == 0) {
        sh_usage(object != NULL ? stdout : stderr, NULL);
        return object != NULL ? CLI_OK : CLI_USAGE;
    }
    /* OM features above ZDU_READY: cmd_upgrade_om.c. */
    if (verb != NULL &&
        ((strcmp(object, "bucket") == 0 && strcmp(verb, "setquota") == 0) ||
         (strcmp(object, "key") == 0 &&
          (strcmp(verb, "settags") == 0 || strcmp(verb, "gettags") == 0)))) {
        return cmd_sh_upgrade_features(cli, verb, argc - 2, argv + 2);
    }
    for (size_t i = 0; i < N_SH_CMDS; i++) {
        if (strcmp(sh_cmds[i].object, object) != 0) {
            continue;
        }
        known_object = true;
        if (verb != NULL && strcmp(sh_cmds[i].verb, verb) == 0) {
            return run_sh_cmd(cli, &sh_cmds[i], argc - 2, argv + 2);
        }
    }
    if (!known_object) {
        return cli_fail(CLI_USAGE,
                        "unknown object '%s' for 'ozone sh': expected "
                        "volume, bucket or key",
                        object);
    }
    if (verb == NULL || strcmp(verb, "-h") == 0 ||
        strcmp(verb, "--help") == 0) {
        sh_usage(verb != NULL ? stdout : stderr, object);
        return verb != NULL ? CLI_OK : CLI_USAGE;
    }
    return cli_fail(CLI_USAGE,
                    "unknown command 'ozone sh %s %s'; see 'ozone sh %s "
                    "--help'",
                    object, verb, object);
}
