/* The version manager: VERSION file, start-up rules and the finalizer
 * (DESIGN.md §6.2-§6.5).
 *
 * Locking: vm->lock guards vm->apparent and vm->props, and is never held
 * across an upgrade action or a disk write, so getters called from request
 * threads never wait for an fsync or an action. finalize_lock serialises
 * finalizations (rare, admin-driven): two concurrent callers must not both
 * run the same ON_FINALIZE and race on VERSION. Actions must therefore not
 * call version_manager_finalize*() themselves.
 *
 * Crash safety follows from the order of §6.5: ON_FINALIZE (idempotent)
 * → persist apparent = v → bump in memory. A crash anywhere leaves VERSION
 * at the last completed version, and the next attempt re-runs that
 * version's ON_FINALIZE before persisting it.
 */
#include "version.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "fault.h"
#include "log.h"

#define KEY_NODE_TYPE "nodeType"
#define KEY_CLUSTER_ID "clusterID"
#define KEY_CTIME "cTime"
#define KEY_LAYOUT "layoutVersion"
#define KEY_SOFTWARE "softwareVersion"
#define KEY_FIRST_UPGRADE "firstUpgradeDone"
#define VERSION_COMMENT \
    "ozone-c storage VERSION file; written atomically, do not edit"

static pthread_mutex_t finalize_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- catalog helpers ---- */

static const char *feature_name(const struct version_catalog *cat, int v)
{
    const struct version_feature *f = version_catalog_find(cat, v);

    return f != NULL ? f->name : "UNKNOWN";
}

/* "0,1,2,100" for the first n features of cat. */
static void known_list(const struct version_catalog *cat,
                       size_t n,
                       char *out,
                       size_t size)
{
    size_t pos = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && pos < size; i++) {
        int w = snprintf(out + pos, size - pos, "%s%d", i > 0 ? "," : "",
                         cat->features[i].number);
        if (w < 0) {
            break;
        }
        pos += (size_t)w;
    }
}

/* Index of number v among the first n features, or -1. */
static int index_in(const struct version_catalog *cat, size_t n, int v)
{
    for (size_t i = 0; i < n; i++) {
        if (cat->features[i].number == v) {
            return (int)i;
        }
    }
    return -1;
}

/* Software version and features in use for cfg (--testing-software-version
 * truncates the catalog, DESIGN.md §6.2). */
static int resolve_software(const struct version_manager_config *cfg,
                            int *software,
                            size_t *n_features,
                            char *errmsg)
{
    const struct version_catalog *cat = cfg->catalog;
    char known[128];
    int i;

    if (cat == NULL || cat->n_features == 0) {
        oz_errmsg_printf(errmsg, "no version catalog configured");
        return OZ_EINVAL;
    }
    if (cfg->testing_software_version == 0) {
        *n_features = cat->n_features;
        *software = version_catalog_max(cat);
        return 0;
    }
    i = index_in(cat, cat->n_features, cfg->testing_software_version);
    if (i < 0) {
        known_list(cat, cat->n_features, known, sizeof(known));
        oz_errmsg_printf(errmsg,
                         "--testing-software-version %d is not a version of "
                         "the %s catalog (known: %s)",
                         cfg->testing_software_version, cat->name, known);
        return OZ_EINVAL;
    }
    *n_features = (size_t)i + 1;
    *software = cfg->testing_software_version;
    return 0;
}

/* ---- storage helpers ---- */

static int join_path(char *out,
                     size_t size,
                     const char *dir,
                     const char *rest,
                     char *errmsg)
{
    int n = snprintf(out, size, "%s%s", dir, rest);

    if (n < 0 || (size_t)n >= size) {
        oz_errmsg_printf(errmsg, "storage path '%s' is too long", dir);
        return OZ_EINVAL;
    }
    return 0;
}

/* True when name is a temporary file left by an interrupted props_save of
 * VERSION: not data. */
static bool is_version_tmp(const char *name)
{
    return strncmp(name, ".VERSION.tmp", 12) == 0;
}

/* 1 when dir holds anything besides an empty "current" (or one with only
 * VERSION temp files), 0 when empty or absent, OZ_EIO when unreadable. */
static int holds_data(const char *dir, bool inside_current)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;

    if (d == NULL) {
        return errno == ENOENT ? 0 : OZ_EIO;
    }
    while (found == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (inside_current) {
            found = is_version_tmp(e->d_name) ? 0 : 1;
        } else if (strcmp(e->d_name, "current") == 0) {
            char sub[4096 + 16];
            snprintf(sub, sizeof(sub), "%s/current", dir);
            found = holds_data(sub, true);
        } else {
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* OZ_ENOTFOUND or OZ_ECORRUPT for a storage dir without VERSION (§6.4:
 * never re-initialise a directory with data). */
static int missing_version(const char *dir, char *errmsg)
{
    int data = holds_data(dir, false);

    if (data < 0) {
        oz_errmsg_printf(errmsg, "cannot read storage directory '%s': %s", dir,
                         strerror(errno));
        return OZ_EIO;
    }
    if (data > 0) {
        oz_errmsg_printf(errmsg,
                         "missing VERSION file in '%s/current' but '%s' holds "
                         "data; restore VERSION from backup, never "
                         "re-initialise a directory with data",
                         dir, dir);
        return OZ_ECORRUPT;
    }
    oz_errmsg_printf(errmsg, "no storage in '%s': run with --init first", dir);
    return OZ_ENOTFOUND;
}

static bool parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || s[0] == '\0' || s[0] == ' ' || s[0] == '+') {
        return false;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* True when the comma list holds v. The list was validated at open. */
static bool list_has(const char *list, int v)
{
    const char *s = list;

    while (s != NULL && *s != '\0') {
        if (atoi(s) == v) {
            return true;
        }
        s = strchr(s, ',');
        s = s != NULL ? s + 1 : NULL;
    }
    return false;
}

static bool list_valid(const char *list)
{
    char item[32];
    const char *s = list;
    long v;

    if (list[0] == '\0') {
        return true;
    }
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma != NULL ? (size_t)(comma - s) : strlen(s);
        if (n == 0 || n >= sizeof(item)) {
            return false;
        }
        memcpy(item, s, n);
        item[n] = '\0';
        if (!parse_int(item, 0, INT_MAX, &v)) {
            return false;
        }
        if (comma == NULL) {
            return true;
        }
        s = comma + 1;
    }
}

static int set_int(struct props *p, const char *key, long v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%ld", v);
    return props_set(p, key, buf);
}

static int save(const struct version_manager *vm,
                const struct props *p,
                char *errmsg)
{
    int rc = props_save(p, vm->version_path, VERSION_COMMENT, errmsg);

    if (rc != 0) {
        oz_errmsg_wrapf(errmsg, "cannot persist %s VERSION",
                        vm->cfg.catalog->name);
    }
    return rc;
}

/* ---- init ---- */

bool version_storage_exists(const char *storage_dir)
{
    char path[4096];
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/current/VERSION", storage_dir);

    return n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0;
}

int version_storage_init(const struct version_manager_config *cfg,
                         const char *cluster_id,
                         const char *id_key,
                         const char *node_id,
                         int init_apparent,
                         char *errmsg)
{
    struct props *p;
    char cur[4096];
    char path[4096];
    char known[128];
    char ctime[32];
    size_t n_features;
    int software;
    int apparent;
    int rc;

    rc = resolve_software(cfg, &software, &n_features, errmsg);
    if (rc != 0) {
        return rc;
    }
    if (cfg->storage_dir == NULL || cfg->storage_dir[0] == '\0' ||
        cfg->node_type == NULL || cluster_id == NULL || cluster_id[0] == '\0' ||
        (id_key == NULL) != (node_id == NULL)) {
        oz_errmsg_printf(errmsg,
                         "cannot initialise storage: storage "
                         "directory, node type and cluster id are required");
        return OZ_EINVAL;
    }
    apparent = init_apparent < 0 ? software : init_apparent;
    if (index_in(cfg->catalog, n_features, apparent) < 0) {
        known_list(cfg->catalog, n_features, known, sizeof(known));
        oz_errmsg_printf(errmsg,
                         "initial apparent version %d is not a version of "
                         "the %s catalog (known: %s)",
                         apparent, cfg->catalog->name, known);
        return OZ_EINVAL;
    }
    if (join_path(cur, sizeof(cur), cfg->storage_dir, "/current", errmsg) ||
        join_path(path, sizeof(path), cfg->storage_dir, "/current/VERSION",
                  errmsg)) {
        return OZ_EINVAL;
    }
    if (version_storage_exists(cfg->storage_dir)) {
        oz_errmsg_printf(errmsg,
                         "storage in '%s' is already initialised ('%s' "
                         "exists); refusing to re-initialise it",
                         cfg->storage_dir, path);
        return OZ_EEXIST;
    }
    rc = missing_version(cfg->storage_dir, errmsg);
    if (rc != OZ_ENOTFOUND) {
        return rc; /* data without VERSION: never initialise over it */
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    props_init(p);
    snprintf(ctime, sizeof(ctime), "%lld", (long long)oz_wall_ms());
    if (props_set(p, KEY_NODE_TYPE, cfg->node_type) != 0 ||
        props_set(p, KEY_CLUSTER_ID, cluster_id) != 0 ||
        props_set(p, KEY_CTIME, ctime) != 0 ||
        set_int(p, KEY_LAYOUT, apparent) != 0 ||
        set_int(p, KEY_SOFTWARE, software) != 0 ||
        (id_key != NULL && props_set(p, id_key, node_id) != 0) ||
        props_set(p, KEY_FIRST_UPGRADE, "") != 0) {
        oz_errmsg_printf(errmsg,
                         "cannot initialise storage: a VERSION "
                         "property is too long");
        rc = OZ_EINVAL;
        goto out;
    }
    rc = oz_mkdirs(cur, errmsg);
    if (rc == 0) {
        rc = props_save(p, path, VERSION_COMMENT, errmsg);
    }
    if (rc != 0) {
        oz_errmsg_wrapf(errmsg, "cannot initialise storage in '%s'",
                        cfg->storage_dir);
        goto out;
    }
    log_info(
        "%s storage initialised in '%s': cluster %s, apparent version "
        "%s (%d), software version %s (%d)",
        cfg->catalog->name, cfg->storage_dir, cluster_id,
        feature_name(cfg->catalog, apparent), apparent,
        feature_name(cfg->catalog, software), software);
out:
    free(p);
    return rc;
}

/* ---- open ---- */

/* Reads and checks VERSION into vm->props and vm->apparent. */
static int load_version(struct version_manager *vm, char *errmsg)
{
    const struct version_catalog *cat = vm->cfg.catalog;
    const char *path = vm->version_path;
    static const char *const required[] = {KEY_NODE_TYPE, KEY_CLUSTER_ID,
                                           KEY_LAYOUT};
    const char *s;
    char known[128];
    long v;
    int rc;

    rc = props_load(&vm->props, path, errmsg);
    if (rc == OZ_ENOTFOUND) {
        return missing_version(vm->storage_dir, errmsg);
    }
    if (rc == OZ_ECORRUPT) {
        oz_errmsg_wrapf(errmsg, "corrupt VERSION file '%s'", path);
        /* The props message ends with the cause; add what to do. */
        size_t len = strlen(errmsg);
        snprintf(errmsg + len, OZ_ERRMSG_SIZE - len,
                 "; restore VERSION from backup");
        return rc;
    }
    if (rc != 0) {
        oz_errmsg_wrapf(errmsg, "cannot read VERSION file");
        return rc;
    }
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (props_get(&vm->props, required[i]) == NULL) {
            oz_errmsg_printf(errmsg,
                             "corrupt VERSION file '%s': missing key '%s'; "
                             "restore VERSION from backup",
                             path, required[i]);
            return OZ_ECORRUPT;
        }
    }
    s = props_get(&vm->props, KEY_LAYOUT);
    if (!parse_int(s, INT_MIN, INT_MAX, &v)) {
        oz_errmsg_printf(errmsg,
                         "corrupt VERSION file '%s': key '%s' is '%s', not a "
                         "number; restore VERSION from backup",
                         path, KEY_LAYOUT, s);
        return OZ_ECORRUPT;
    }
    s = props_get(&vm->props, KEY_FIRST_UPGRADE);
    if (s != NULL && !list_valid(s)) {
        oz_errmsg_printf(errmsg,
                         "corrupt VERSION file '%s': key '%s' is '%s', not a "
                         "comma-separated list of versions; restore VERSION "
                         "from backup",
                         path, KEY_FIRST_UPGRADE, s);
        return OZ_ECORRUPT;
    }
    s = props_get(&vm->props, KEY_NODE_TYPE);
    if (vm->cfg.node_type != NULL && strcmp(s, vm->cfg.node_type) != 0) {
        oz_errmsg_printf(errmsg,
                         "VERSION file '%s' belongs to node type %s, not %s; "
                         "check the storage directory setting",
                         path, s, vm->cfg.node_type);
        return OZ_ECORRUPT;
    }
    /* DESIGN.md §6.4, first rule: checked before "unknown" so that a
     * version from a newer release gets the downgrade message. */
    if (v > vm->software) {
        oz_errmsg_printf(errmsg,
                         "cannot start: on-disk apparent version %ld is newer "
                         "than this software (version %d); this component "
                         "was finalized by a newer release and cannot be "
                         "downgraded",
                         v, vm->software);
        return OZ_EVERSION;
    }
    if (index_in(cat, vm->n_features, (int)v) < 0) {
        known_list(cat, vm->n_features, known, sizeof(known));
        oz_errmsg_printf(errmsg,
                         "cannot start: VERSION file '%s' has %s %ld, which "
                         "is not a version of the %s catalog (known: %s); "
                         "restore VERSION from backup",
                         path, KEY_LAYOUT, v, cat->name, known);
        return OZ_ECORRUPT;
    }
    vm->apparent = (int)v;
    return 0;
}

/* Runs an action into errmsg; returns 0 or a negative code. */
static int run_action(struct version_manager *vm,
                      version_action_fn fn,
                      const struct version_feature *f,
                      const char *what,
                      char *errmsg)
{
    char amsg[OZ_ERRMSG_SIZE] = "";
    int rc = fn(vm->cfg.action_ctx, f, amsg);

    if (rc == 0) {
        return 0;
    }
    oz_strlcpy(errmsg, amsg, OZ_ERRMSG_SIZE);
    oz_errmsg_wrapf(errmsg, "%s of %s %s (%d) failed", what,
                    vm->cfg.catalog->name, f->name, f->number);
    return rc < 0 ? rc : OZ_EREFUSED;
}

/* DESIGN.md §6.3/§6.4: pre-finalized start. */
static int run_start_actions(struct version_manager *vm, char *errmsg)
{
    const struct version_catalog *cat = vm->cfg.catalog;
    char list[PROPS_MAX_VALUE];
    int rc;

    for (size_t i = 0; i < vm->n_features; i++) {
        const struct version_feature *f = &cat->features[i];
        if (f->number <= vm->apparent || f->validate_in_prefinalize == NULL) {
            continue;
        }
        rc = run_action(vm, f->validate_in_prefinalize, f,
                        "VALIDATE_IN_PREFINALIZE", errmsg);
        if (rc != 0) {
            oz_errmsg_wrapf(errmsg, "cannot start");
            return rc;
        }
    }
    /* Informational: which software last ran on this storage. */
    const char *sw = props_get(&vm->props, KEY_SOFTWARE);
    long prev;
    if (sw == NULL || !parse_int(sw, INT_MIN, INT_MAX, &prev) ||
        prev != vm->software) {
        if (set_int(&vm->props, KEY_SOFTWARE, vm->software) != 0) {
            oz_errmsg_printf(errmsg, "VERSION file '%s' is full",
                             vm->version_path);
            return OZ_ETOOBIG;
        }
        rc = save(vm, &vm->props, errmsg);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < vm->n_features; i++) {
        const struct version_feature *f = &cat->features[i];
        const char *done = props_get(&vm->props, KEY_FIRST_UPGRADE);
        if (f->number <= vm->apparent || f->on_first_upgrade_start == NULL ||
            (done != NULL && list_has(done, f->number))) {
            continue;
        }
        log_info("%s running ON_FIRST_UPGRADE_START of %s (%d)", cat->name,
                 f->name, f->number);
        rc = run_action(vm, f->on_first_upgrade_start, f,
                        "ON_FIRST_UPGRADE_START", errmsg);
        if (rc != 0) {
            oz_errmsg_wrapf(errmsg, "cannot start (retried on next start)");
            return rc;
        }
        snprintf(list, sizeof(list), "%s%s%d", done != NULL ? done : "",
                 (done != NULL && done[0] != '\0') ? "," : "", f->number);
        if (props_set(&vm->props, KEY_FIRST_UPGRADE, list) != 0) {
            oz_errmsg_printf(errmsg, "VERSION key '%s' is full",
                             KEY_FIRST_UPGRADE);
            return OZ_ETOOBIG;
        }
        rc = save(vm, &vm->props, errmsg);
        if (rc != 0) {
            return rc;
        }
        log_info("%s ON_FIRST_UPGRADE_START of %s (%d) done", cat->name,
                 f->name, f->number);
    }
    return 0;
}

int version_manager_open(struct version_manager *vm,
                         const struct version_manager_config *cfg,
                         char *errmsg)
{
    const struct version_catalog *cat = cfg->catalog;
    int rc;

    memset(vm, 0, sizeof(*vm));
    pthread_mutex_init(&vm->lock, NULL);
    vm->cfg = *cfg;
    rc = resolve_software(cfg, &vm->software, &vm->n_features, errmsg);
    if (rc != 0) {
        goto err;
    }
    if (cfg->storage_dir == NULL || cfg->storage_dir[0] == '\0') {
        oz_errmsg_printf(errmsg, "no storage directory configured");
        rc = OZ_EINVAL;
        goto err;
    }
    if (oz_strlcpy(vm->storage_dir, cfg->storage_dir,
                   sizeof(vm->storage_dir)) >= sizeof(vm->storage_dir) ||
        join_path(vm->version_path, sizeof(vm->version_path), cfg->storage_dir,
                  "/current/VERSION", errmsg) != 0) {
        oz_errmsg_printf(errmsg, "storage path '%s' is too long",
                         cfg->storage_dir);
        rc = OZ_EINVAL;
        goto err;
    }
    vm->cfg.storage_dir = vm->storage_dir;
    if (cfg->testing_software_version != 0) {
        log_warn(
            "testing: %s software version is %s (%d) "
            "(--testing-software-version)",
            cat->name, feature_name(cat, vm->software), vm->software);
    }
    rc = load_version(vm, errmsg);
    if (rc != 0) {
        goto err;
    }
    if (vm->apparent < vm->software) {
        log_info(
            "%s pre-finalized: apparent version %d (%s), software "
            "version %d (%s); run finalize",
            cat->name, vm->apparent, feature_name(cat, vm->apparent),
            vm->software, feature_name(cat, vm->software));
    } else {
        log_info(
            "%s finalized: apparent version %d (%s), software version "
            "%d (%s)",
            cat->name, vm->apparent, feature_name(cat, vm->apparent),
            vm->software, feature_name(cat, vm->software));
    }
    rc = run_start_actions(vm, errmsg);
    if (rc != 0) {
        goto err;
    }
    return 0;

err:
    /* No storage yet is the caller's decision (initialise, or tell the
     * operator to run --init); everything else is worth an error line. */
    if (rc != OZ_ENOTFOUND) {
        log_error("%s storage '%s': %s", cat != NULL ? cat->name : "?",
                  cfg->storage_dir != NULL ? cfg->storage_dir : "", errmsg);
    }
    pthread_mutex_destroy(&vm->lock);
    oz_strlcpy(vm->errmsg, errmsg, sizeof(vm->errmsg));
    return rc;
}

void version_manager_close(struct version_manager *vm)
{
    pthread_mutex_destroy(&vm->lock);
    memset(vm, 0, sizeof(*vm));
}

/* ---- getters ---- */

int version_manager_software(struct version_manager *vm)
{
    return vm->software; /* immutable after open */
}

int version_manager_apparent(struct version_manager *vm)
{
    int v;

    pthread_mutex_lock(&vm->lock);
    v = vm->apparent;
    pthread_mutex_unlock(&vm->lock);
    return v;
}

int version_manager_prop(struct version_manager *vm,
                         const char *key,
                         char *out,
                         size_t out_size)
{
    const char *v;
    int rc = 0;

    pthread_mutex_lock(&vm->lock);
    v = props_get(&vm->props, key);
    if (v == NULL) {
        rc = OZ_ENOTFOUND;
        if (out_size > 0) {
            out[0] = '\0';
        }
    } else if (oz_strlcpy(out, v, out_size) >= out_size) {
        rc = OZ_ETOOBIG;
    }
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

bool version_manager_is_allowed(struct version_manager *vm, int feature)
{
    return feature <= version_manager_apparent(vm);
}

bool version_manager_needs_finalization(struct version_manager *vm)
{
    return version_manager_apparent(vm) < vm->software;
}

size_t version_manager_unfinalized(struct version_manager *vm,
                                   const struct version_feature **out,
                                   size_t max)
{
    int apparent = version_manager_apparent(vm);
    size_t count = 0;

    for (size_t i = 0; i < vm->n_features; i++) {
        const struct version_feature *f = &vm->cfg.catalog->features[i];
        if (f->number <= apparent) {
            continue;
        }
        if (count < max) {
            out[count] = f;
        }
        count++;
    }
    return count;
}

int version_manager_check_feature(struct version_manager *vm,
                                  int feature,
                                  const char *operation,
                                  char *errmsg)
{
    int apparent = version_manager_apparent(vm);

    if (feature <= apparent) {
        return 0;
    }
    /* DESIGN.md §6.1: NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION. */
    oz_errmsg_printf(errmsg,
                     "operation '%s' belongs to feature %s (version %d); "
                     "cluster apparent version is %d; finalize the upgrade "
                     "first",
                     operation, feature_name(vm->cfg.catalog, feature), feature,
                     apparent);
    return OZ_ENOTSUPPORTED;
}

void version_manager_describe(struct version_manager *vm,
                              int v,
                              char *out,
                              size_t out_size)
{
    snprintf(out, out_size, "%s (%d)", feature_name(vm->cfg.catalog, v), v);
}

/* ---- finalization (DESIGN.md §6.5) ---- */

/* Persists apparent = v to VERSION, then cfg.on_persist. */
static int persist_apparent(struct version_manager *vm, int v, char *errmsg)
{
    struct props *p = malloc(sizeof(*p));
    int rc;

    if (p == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    pthread_mutex_lock(&vm->lock);
    *p = vm->props;
    pthread_mutex_unlock(&vm->lock);
    rc = set_int(p, KEY_LAYOUT, v);
    if (rc == 0) {
        rc = save(vm, p, errmsg);
    }
    if (rc == 0) {
        pthread_mutex_lock(&vm->lock);
        vm->props = *p;
        pthread_mutex_unlock(&vm->lock);
    }
    free(p);
    if (rc == 0 && vm->cfg.on_persist != NULL) {
        char amsg[OZ_ERRMSG_SIZE] = "";
        rc = vm->cfg.on_persist(vm->cfg.action_ctx, v, amsg);
        if (rc != 0) {
            oz_strlcpy(errmsg, amsg, OZ_ERRMSG_SIZE);
            oz_errmsg_wrapf(errmsg, "cannot persist %s apparent version %d",
                            vm->cfg.catalog->name, v);
            rc = rc < 0 ? rc : OZ_EIO;
        }
    }
    return rc;
}

static int finalize_locked(struct version_manager *vm, int v, char *errmsg)
{
    const struct version_catalog *cat = vm->cfg.catalog;
    const struct version_feature *f;
    int apparent = version_manager_apparent(vm);
    int next = -1;
    int rc;

    if (v <= apparent) {
        /* Raft replay of an applied finalize entry. */
        log_info(
            "%s finalize of %s (%d) is a no-op: apparent version is "
            "already %s (%d)",
            cat->name, feature_name(cat, v), v, feature_name(cat, apparent),
            apparent);
        return 0;
    }
    for (size_t i = 0; i < vm->n_features; i++) {
        if (cat->features[i].number > apparent) {
            next = cat->features[i].number;
            break;
        }
    }
    if (index_in(cat, vm->n_features, v) < 0) {
        oz_errmsg_printf(errmsg,
                         "cannot finalize version %d: not a version of this "
                         "%s software (software version %d)",
                         v, cat->name, vm->software);
        rc = OZ_EINVAL;
        goto err;
    }
    if (v != next) {
        oz_errmsg_printf(errmsg,
                         "cannot finalize version %d: version %d must be "
                         "finalized first",
                         v, next);
        rc = OZ_EINVAL;
        goto err;
    }
    f = version_catalog_find(cat, v);
    log_info(
        "%s finalizing %s (%d): apparent version %s (%d), software "
        "version %d",
        cat->name, f->name, v, feature_name(cat, apparent), apparent,
        vm->software);
    if (f->on_finalize != NULL) {
        rc = run_action(vm, f->on_finalize, f, "ON_FINALIZE", errmsg);
        if (rc != 0) {
            goto err;
        }
    }
    rc = fault_hit("version.finalize.after_action");
    if (rc != 0) {
        oz_errmsg_printf(errmsg,
                         "finalize of %s %s (%d) interrupted after ON_FINALIZE "
                         "(fault 'version.finalize.after_action')",
                         cat->name, f->name, v);
        goto err;
    }
    rc = persist_apparent(vm, v, errmsg);
    if (rc != 0) {
        goto err;
    }
    rc = fault_hit("version.finalize.after_persist");
    if (rc != 0) {
        oz_errmsg_printf(errmsg,
                         "finalize of %s %s (%d) interrupted after persisting "
                         "(fault 'version.finalize.after_persist')",
                         cat->name, f->name, v);
        goto err;
    }
    pthread_mutex_lock(&vm->lock);
    vm->apparent = v;
    pthread_mutex_unlock(&vm->lock);
    log_info(
        "%s finalized %s (%d): apparent version %s (%d) -> %s (%d), "
        "software version %d",
        cat->name, f->name, v, feature_name(cat, apparent), apparent, f->name,
        v, vm->software);
    return 0;

err:
    log_error("%s finalize of %s (%d) failed: %s", cat->name,
              feature_name(cat, v), v, errmsg);
    return rc;
}

int version_manager_finalize_one(struct version_manager *vm,
                                 int v,
                                 char *errmsg)
{
    int rc;

    pthread_mutex_lock(&finalize_lock);
    rc = finalize_locked(vm, v, errmsg);
    pthread_mutex_unlock(&finalize_lock);
    return rc;
}

int version_manager_finalize(struct version_manager *vm,
                             int target,
                             char *errmsg)
{
    const struct version_catalog *cat = vm->cfg.catalog;
    int rc = 0;

    if (target < 0) {
        target = vm->software;
    }
    if (index_in(cat, vm->n_features, target) < 0) {
        char known[128];
        known_list(cat, vm->n_features, known, sizeof(known));
        oz_errmsg_printf(errmsg,
                         "cannot finalize %s to version %d: not a version of "
                         "this software (known: %s)",
                         cat->name, target, known);
        return OZ_EINVAL;
    }
    pthread_mutex_lock(&finalize_lock);
    if (version_manager_apparent(vm) >= target) {
        log_info("%s finalize to %s (%d) is a no-op: apparent version is %d",
                 cat->name, feature_name(cat, target), target,
                 version_manager_apparent(vm));
    }
    while (rc == 0 && version_manager_apparent(vm) < target) {
        int apparent = version_manager_apparent(vm);
        int next = -1;
        for (size_t i = 0; i < vm->n_features; i++) {
            if (cat->features[i].number > apparent) {
                next = cat->features[i].number;
                break;
            }
        }
        rc = finalize_locked(vm, next, errmsg);
    }
    pthread_mutex_unlock(&finalize_lock);
    return rc;
}
