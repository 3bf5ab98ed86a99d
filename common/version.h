/* version: catalogs, the version manager, the finalizer and upgrade
 * actions (DESIGN.md §6).
 *
 * A catalog is an ordered table of features {number, NAME, description,
 * actions}. Numbers below 100 are legacy layout features; 100 is
 * ZDU_READY. software version = highest number in the (possibly
 * truncated, see --testing-software-version) catalog; apparent version =
 * what the component acts as, persisted in <dir>/current/VERSION.
 */
#ifndef OZONE_VERSION_H
#define OZONE_VERSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "props.h"

#define VERSION_ZDU_READY 100
/* HDDS features above ZDU_READY (names and descriptions in
 * version_catalogs.c, the single source; DESIGN.md §6.1). */
#define VERSION_HDDS_CHUNK_CHECKSUM_SHA256 101
#define VERSION_HDDS_CONTAINER_CHECKSUM 102
/* OM features above ZDU_READY (services/om/om_features.c). */
#define VERSION_OM_BUCKET_QUOTA 101
#define VERSION_OM_KEY_TAGS 102

enum version_catalog_id {
    VERSION_CATALOG_OM,
    VERSION_CATALOG_HDDS,
    VERSION_CATALOG_CLIENT,
    VERSION_CATALOG_COUNT
};

struct version_feature;
struct version_manager;

/* An upgrade action (DESIGN.md §6.3). Idempotent; retried until it
 * succeeds. ctx is the manager's action_ctx. Return 0, or a negative code
 * with errmsg saying what is wrong and what to do. */
typedef int (*version_action_fn)(void *ctx,
                                 const struct version_feature *f,
                                 char *errmsg);

struct version_feature
{
    int number;
    const char *name; /* upper case, e.g. "ZDU_READY" */
    const char *description;
    version_action_fn
        validate_in_prefinalize; /* every start while unfinalized */
    version_action_fn
        on_first_upgrade_start;    /* once, first start of new bits */
    version_action_fn on_finalize; /* during finalization */
};

struct version_catalog
{
    enum version_catalog_id id;
    const char *name;                       /* "OM", "HDDS", "CLIENT" */
    const struct version_feature *features; /* ascending numbers */
    size_t n_features;
};

/* Built-in catalogs of this binary (full; actions NULL here: daemons
 * supply their own catalogs with actions that reuse these numbers). */
const struct version_catalog *version_builtin_catalog(
    enum version_catalog_id id);

/* The actions a daemon attaches to one version of a built-in catalog. */
struct version_actions
{
    int number;
    version_action_fn validate_in_prefinalize;
    version_action_fn on_first_upgrade_start;
    version_action_fn on_finalize;
};

/* Builds a daemon's own catalog: a copy of built-in catalog id (numbers,
 * names, descriptions) into buf (cap entries) with the given actions set
 * by number, so every daemon of a catalog agrees on the versions. out
 * points into buf (borrowed; keep buf alive as long as out). OZ_EINVAL
 * when buf is too small or an action names a version the catalog lacks. */
int version_catalog_build(enum version_catalog_id id,
                          const struct version_actions *actions,
                          size_t n_actions,
                          struct version_feature *buf,
                          size_t cap,
                          struct version_catalog *out);

/* Highest number in cat; -1 if empty. */
int version_catalog_max(const struct version_catalog *cat);
/* NULL if absent. */
const struct version_feature *version_catalog_find(
    const struct version_catalog *cat,
    int number);
const struct version_feature *version_catalog_find_name(
    const struct version_catalog *cat,
    const char *name);
/* Smallest number in cat greater than v; -1 if none. */
int version_catalog_next(const struct version_catalog *cat, int v);

/* ---- release table (DESIGN.md §6.2) ---- */
struct version_release
{
    const char *release; /* "1.0.0" */
    int software[VERSION_CATALOG_COUNT];
};
const struct version_release *version_releases(size_t *n);
/* This binary's row (the last one). */
const struct version_release *version_release_current(void);
/* Newest release whose version for catalog id is exactly software; NULL
 * when no release ships it. Used by --testing-software-version. */
const struct version_release *version_release_for(enum version_catalog_id id,
                                                  int software);

/* ---- manager ---- */
struct version_manager_config
{
    const struct version_catalog *catalog; /* borrowed, static */
    /* 0: use the catalog's max. Else --testing-software-version: the
     * catalog ends at this number (must exist in the catalog, OZ_EINVAL
     * otherwise). */
    int testing_software_version;
    const char *storage_dir; /* holds current/VERSION; copied */
    const char
        *node_type;   /* VERSION "nodeType": "OM", "SCM", "DATANODE", "RECON" */
    void *action_ctx; /* passed to actions */
    /* Optional: called after VERSION is persisted with the new apparent
     * version during finalization (e.g. write #LAYOUTVERSION). */
    int (*on_persist)(void *ctx, int apparent, char *errmsg);
};

struct version_manager
{
    struct version_manager_config cfg;
    char storage_dir[4096];
    char version_path[4096];
    int software;
    int apparent;       /* guarded by lock */
    size_t n_features;  /* entries of cfg.catalog in use (truncation) */
    struct props props; /* the VERSION file contents */
    pthread_mutex_t lock;
    char errmsg[OZ_ERRMSG_SIZE];
};

/* True when <storage_dir>/current/VERSION exists. */
bool version_storage_exists(const char *storage_dir);

/* Creates storage: <dir>/current/VERSION with nodeType, clusterID, cTime,
 * layoutVersion = init_apparent (or software when init_apparent < 0), the
 * node id under id_key (e.g. "omUuid"). OZ_EEXIST when a VERSION exists
 * (never re-initialises). init_apparent must be a catalog number. */
int version_storage_init(const struct version_manager_config *cfg,
                         const char *cluster_id,
                         const char *id_key,
                         const char *node_id,
                         int init_apparent,
                         char *errmsg);

/* Opens existing storage and applies the start-up rules of §6.4:
 *  - no VERSION: OZ_ENOTFOUND "... run with --init first" (or, when other
 *    files exist in the dir, OZ_ECORRUPT "missing VERSION file with data
 *    present ...").
 *  - corrupt VERSION / unknown layoutVersion: OZ_ECORRUPT with message.
 *  - apparent > software: OZ_EVERSION with the exact §6.4 message.
 *  - apparent < software: pre-finalized; runs VALIDATE_IN_PREFINALIZE of
 *    every unfinalized feature, then pending ON_FIRST_UPGRADE_START
 *    actions (progress persisted in VERSION key "firstUpgradeDone").
 * errmsg says what is wrong and what to do. */
int version_manager_open(struct version_manager *vm,
                         const struct version_manager_config *cfg,
                         char *errmsg);
void version_manager_close(struct version_manager *vm);

int version_manager_software(struct version_manager *vm);
int version_manager_apparent(struct version_manager *vm);
/* VERSION property lookup (clusterID, nodeType, ...); copied to out. */
int version_manager_prop(struct version_manager *vm,
                         const char *key,
                         char *out,
                         size_t out_size);
/* feature <= apparent. */
bool version_manager_is_allowed(struct version_manager *vm, int feature);
/* apparent < software. */
bool version_manager_needs_finalization(struct version_manager *vm);
/* Unfinalized features (apparent, software], ascending; returns count,
 * writes up to max pointers. */
size_t version_manager_unfinalized(struct version_manager *vm,
                                   const struct version_feature **out,
                                   size_t max);
/* Fills errmsg with the NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION text:
 * "operation 'X' belongs to feature F (version N); cluster apparent
 * version is M; finalize the upgrade first". Returns OZ_ENOTSUPPORTED if
 * not allowed, 0 if allowed. */
int version_manager_check_feature(struct version_manager *vm,
                                  int feature,
                                  const char *operation,
                                  char *errmsg);

/* Finalizes exactly version v: ON_FINALIZE, persist apparent = v (fault
 * points "version.finalize.after_action", "version.finalize.after_persist"),
 * bump in memory. v <= apparent: logged no-op, returns 0 (Raft replay).
 * v not the next catalog number after apparent: OZ_EINVAL ("cannot
 * finalize version v: version n must be finalized first"). */
int version_manager_finalize_one(struct version_manager *vm,
                                 int v,
                                 char *errmsg);
/* Finalizes every version in (apparent, target], one at a time in order;
 * target < 0 means software. Stops at the first failure (apparent stays at
 * the last completed version; the next call resumes). */
int version_manager_finalize(struct version_manager *vm,
                             int target,
                             char *errmsg);
/* "NAME (n)" for apparent version, into out. */
void version_manager_describe(struct version_manager *vm,
                              int v,
                              char *out,
                              size_t out_size);

#endif
