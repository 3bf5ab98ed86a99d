/* The built-in version catalogs and the release table (DESIGN.md §6.1,
 * §6.2).
 *
 * Numbers below 100 are Apache Ozone's legacy layout features: ozone-c
 * never wrote those formats, but a catalog keeps them so that a VERSION
 * file that says layoutVersion=2 is understood and finalized through to
 * ZDU_READY in order. Actions are NULL here; daemons build their own
 * catalogs with actions for the features above 100 they add.
 */
#include <stddef.h>
#include <string.h>

#include "version.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const struct version_feature om_features[] = {
    {0, "INITIAL_VERSION",
     "legacy layout feature, pre-ZDU on-disk format: the first OM metadata "
     "layout",
     NULL, NULL, NULL},
    {1, "ERASURE_CODED_STORAGE_SUPPORT",
     "legacy layout feature, pre-ZDU on-disk format: buckets and keys with "
     "erasure-coded replication configs",
     NULL, NULL, NULL},
    {2, "FILESYSTEM_SNAPSHOT",
     "legacy layout feature, pre-ZDU on-disk format: OM snapshot metadata "
     "tables",
     NULL, NULL, NULL},
    {VERSION_ZDU_READY, "ZDU_READY",
     "first version from which rolling (zero-downtime) upgrade is supported",
     NULL, NULL, NULL},
    {VERSION_OM_BUCKET_QUOTA, "BUCKET_QUOTA",
     "bucket quotas in bytes and keys (SetBucketQuota), enforced at "
     "CommitKey; finalizing recomputes every bucket's usage from the key "
     "table",
     NULL, NULL, NULL},
    {VERSION_OM_KEY_TAGS, "KEY_TAGS",
     "object tags on keys (KeyInfo.tags, Get/PutObjectTagging, tags on "
     "CreateKey and CommitKey)",
     NULL, NULL, NULL},
};

static const struct version_feature hdds_features[] = {
    {0, "INITIAL_VERSION",
     "legacy layout feature, pre-ZDU on-disk format: the first SCM and "
     "datanode layout",
     NULL, NULL, NULL},
    {1, "DATANODE_SCHEMA_V2",
     "legacy layout feature, pre-ZDU on-disk format: one RocksDB per "
     "container with column families",
     NULL, NULL, NULL},
    {2, "SCM_HA",
     "legacy layout feature, pre-ZDU on-disk format: Ratis-replicated SCM "
     "metadata",
     NULL, NULL, NULL},
    {3, "ERASURE_CODED_STORAGE_SUPPORT",
     "legacy layout feature, pre-ZDU on-disk format: erasure-coded "
     "containers and pipelines",
     NULL, NULL, NULL},
    {4, "DATANODE_SCHEMA_V3",
     "legacy layout feature, pre-ZDU on-disk format: one RocksDB per "
     "datanode volume",
     NULL, NULL, NULL},
    {VERSION_ZDU_READY, "ZDU_READY",
     "first version from which rolling (zero-downtime) upgrade is supported",
     NULL, NULL, NULL},
    {VERSION_HDDS_CHUNK_CHECKSUM_SHA256, "CHUNK_CHECKSUM_SHA256",
     "datanodes accept, store and verify SHA-256 chunk checksums "
     "(ChunkInfo.checksum_bytes) beside CRC32C",
     NULL, NULL, NULL},
    {VERSION_HDDS_CONTAINER_CHECKSUM, "CONTAINER_CHECKSUM",
     "a closed container carries a checksum file (a digest of its blocks' "
     "chunk checksums), served by GetContainerChecksum",
     NULL, NULL, NULL},
};

static const struct version_feature client_features[] = {
    {0, "INITIAL_VERSION",
     "legacy client protocol, pre-ZDU: clients that send no version", NULL,
     NULL, NULL},
    {VERSION_ZDU_READY, "ZDU_READY",
     "clients that send their version and handle version-gated replies", NULL,
     NULL, NULL},
};

static const struct version_catalog builtin[VERSION_CATALOG_COUNT] = {
    {VERSION_CATALOG_OM, "OM", om_features, ARRAY_LEN(om_features)},
    {VERSION_CATALOG_HDDS, "HDDS", hdds_features, ARRAY_LEN(hdds_features)},
    {VERSION_CATALOG_CLIENT, "CLIENT", client_features,
     ARRAY_LEN(client_features)},
};

/* Oldest first; the last row is this binary (DESIGN.md §6.2). */
static const struct version_release releases[] = {
    {"0.9.0", {2, 4, 0}}, /* legacy, pre-ZDU */
    {"1.0.0", {VERSION_ZDU_READY, VERSION_ZDU_READY, VERSION_ZDU_READY}},
    {"1.1.0",
     {VERSION_OM_KEY_TAGS, VERSION_HDDS_CONTAINER_CHECKSUM, VERSION_ZDU_READY}},
};

const struct version_catalog *version_builtin_catalog(
    enum version_catalog_id id)
{
    if ((int)id < 0 || id >= VERSION_CATALOG_COUNT) {
        return NULL;
    }
    return &builtin[id];
}

int version_catalog_build(enum version_catalog_id id,
                          const struct version_actions *actions,
                          size_t n_actions,
                          struct version_feature *buf,
                          size_t cap,
                          struct version_catalog *out)
{
    const struct version_catalog *b = version_builtin_catalog(id);

    if (b == NULL || b->n_features > cap) {
        return OZ_EINVAL;
    }
    memcpy(buf, b->features, b->n_features * sizeof(*buf));
    for (size_t a = 0; a < n_actions; a++) {
        size_t i = 0;
        while (i < b->n_features && buf[i].number != actions[a].number) {
            i++;
        }
        if (i == b->n_features) {
            return OZ_EINVAL; /* an action for a version the catalog lacks */
        }
        buf[i].validate_in_prefinalize = actions[a].validate_in_prefinalize;
        buf[i].on_first_upgrade_start = actions[a].on_first_upgrade_start;
        buf[i].on_finalize = actions[a].on_finalize;
    }
    *out = *b;
    out->features = buf;
    return 0;
}

int version_catalog_max(const struct version_catalog *cat)
{
    if (cat == NULL || cat->n_features == 0) {
        return -1;
    }
    return cat->features[cat->n_features - 1].number;
}

const struct version_feature *version_catalog_find(
    const struct version_catalog *cat,
    int number)
{
    for (size_t i = 0; cat != NULL && i < cat->n_features; i++) {
        if (cat->features[i].number == number) {
            return &cat->features[i];
        }
    }
    return NULL;
}

const struct version_feature *version_catalog_find_name(
    const struct version_catalog *cat,
    const char *name)
{
    for (size_t i = 0; cat != NULL && i < cat->n_features; i++) {
        if (strcmp(cat->features[i].name, name) == 0) {
            return &cat->features[i];
        }
    }
    return NULL;
}

int version_catalog_next(const struct version_catalog *cat, int v)
{
    for (size_t i = 0; cat != NULL && i < cat->n_features; i++) {
        if (cat->features[i].number > v) {
            return cat->features[i].number;
        }
    }
    return -1;
}

const struct version_release *version_releases(size_t *n)
{
    *n = ARRAY_LEN(releases);
    return releases;
}

const struct version_release *version_release_current(void)
{
    return &releases[ARRAY_LEN(releases) - 1];
}

const struct version_release *version_release_for(enum version_catalog_id id,
                                                  int software)
{
    if ((int)id < 0 || id >= VERSION_CATALOG_COUNT) {
        return NULL;
    }
    for (size_t i = ARRAY_LEN(releases); i > 0; i--) {
        if (releases[i - 1].software[id] == software) {
            return &releases[i - 1];
        }
    }
    return NULL;
}
