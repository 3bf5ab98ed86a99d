/* Datanode internals shared by the files of services/datanode (DESIGN.md §7).
 *
 * The container store (struct dn_store) owns the data directories, the
 * in-memory set of containers and the datanode's RocksDB column families:
 *
 *   containerTable  key: container id, 8 bytes big-endian
 *                   value: a container record (dn_container.c, "DNC1")
 *   blockTable      key: container id + local id, 16 bytes big-endian
 *                   value: a packed ozone.datanode.BlockData (committed)
 *   pipelineTable   key: pipeline id; value: a packed ozone.hdds.Pipeline
 *
 * Block data lives in FilePerBlock files:
 *   <hdds.datanode.dir>/hdds/<clusterId>/containers/<cid>/chunks/<lid>.block
 *
 * Locking: set_lock (rwlock) guards the sorted container array; containers
 * are never freed before the store, so a pointer found under set_lock stays
 * valid. Per container, io_lock is held shared by every write (WriteChunk,
 * PutBlock) and exclusively by a close, so a close waits for in-flight
 * writes and no write lands after its fsync; meta_lock guards the state
 * and counters and serialises the read-modify-write of block records.
 * Reads take no container lock: they use pread on committed data only.
 *
 * Every store function that can fail for a client-visible reason fills a
 * struct dn_result (Ozone result code + message in our grammar) and
 * returns a negative OZ_E* code.
 */
#ifndef OZONE_DN_INTERNAL_H
#define OZONE_DN_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.pb-c.h"
#include "datanode.pb-c.h"
#include "err.h"
#include "hdds.pb-c.h"
#include "kv.h"
#include "version.h"

#define DN_CF_CONTAINERS "containerTable"
#define DN_CF_BLOCKS "blockTable"
#define DN_CF_PIPELINES "pipelineTable"

#define DN_MAX_VOLUMES 64
#define DN_MAX_DIR_LEN 3000 /* a data directory path */
#define DN_MAX_NAME 256     /* chunk names, pipeline ids */
#define DN_MAX_CHUNKS_PER_BLOCK 65536
#define DN_MAX_BLOCK_BYTES (16ULL << 30)
#define DN_LIST_BLOCK_MAX 1000
#define DN_MAX_PIPELINES 4096
#define DN_MAX_CONTAINERS (1u << 20)

/* The column families the datanode's RocksDB must have (daemon_def). */
#define DN_N_KV_CFS 3
extern const char *const dn_kv_cfs[DN_N_KV_CFS];

struct dn_result
{
    Ozone__ResultCode code;
    char msg[OZ_ERRMSG_SIZE];
};

struct dn_volume
{
    char path[DN_MAX_DIR_LEN + 1]; /* as configured */
    char root[PATH_MAX];           /* <path>/hdds/<cid>/containers */
    bool failed;
};

struct dn_container
{
    uint64_t id;
    int volume; /* index in store->volumes; -1 */
    pthread_rwlock_t io_lock;
    pthread_mutex_t meta_lock;
    Ozone__Hdds__ContainerState state; /* under meta_lock */
    uint64_t used_bytes;               /* committed bytes, under meta_lock */
    uint64_t block_count;              /* under meta_lock */
    char pipeline_id[DN_MAX_NAME];     /* set at creation, then constant */
};

struct dn_store_config
{
    const char *const *data_dirs; /* borrowed during dn_store_open */
    size_t n_data_dirs;
    const char *cluster_id;
    const char *node_id;
    size_t max_chunk_bytes; /* ozone.rpc.max.message.size */
    /* The datanode's version manager: gates HDDS features by apparent
     * version (borrowed; NULL: every feature allowed, unit tests). */
    struct version_manager *vm;
};

struct dn_store
{
    struct kv *kv; /* borrowed; outlives the store */
    int cf_containers;
    int cf_blocks;
    int cf_pipelines;
    char cluster_id[128];
    char node_id[128];
    size_t max_chunk_bytes;
    struct dn_volume volumes[DN_MAX_VOLUMES];
    size_t n_volumes;
    unsigned next_volume; /* round-robin cursor, set_lock */
    pthread_rwlock_t set_lock;
    struct dn_container **containers; /* sorted by id */
    size_t n_containers;
    size_t cap_containers;
    pthread_mutex_t pipe_lock;
    char **pipelines; /* ids, malloc'd */
    size_t n_pipelines;
    struct version_manager *vm; /* borrowed, may be NULL (config) */
};

/* ---- store (dn_container.c) ---- */

/* Opens the store over kv (which must have dn_kv_cfs): prepares the data
 * directories, loads containers and pipelines, and checks that every
 * container directory has its record and vice versa, marking what is
 * inconsistent UNHEALTHY (logged, never fatal). OZ_EIO with errmsg when no
 * data directory is usable; OZ_EINVAL on a bad config. kv is borrowed. */
int dn_store_open(struct dn_store **out,
                  struct kv *kv,
                  const struct dn_store_config *cfg,
                  char *errmsg);
/* Frees the store; s may be NULL. The caller closes kv afterwards. */
void dn_store_close(struct dn_store *s);

/* The container or NULL; the pointer lives as long as the store. */
struct dn_container *dn_store_find(struct dn_store *s, uint64_t id);
/* Finds or creates (OPEN, on the next healthy volume, remembering
 * pipeline_id) the container for a write. */
int dn_store_get_or_create(struct dn_store *s,
                           uint64_t id,
                           const char *pipeline_id,
                           struct dn_container **out,
                           struct dn_result *res);
/* CLOSE_CONTAINER: waits for in-flight writes, fsyncs every block file of
 * the container, persists CLOSED. A container this datanode never saw is
 * created empty and CLOSED, so it reports what SCM asked for. Closing a
 * CLOSED container is a no-op; an UNHEALTHY one stays UNHEALTHY. */
int dn_store_close_container(struct dn_store *s,
                             uint64_t id,
                             struct dn_result *res);

/* Set internals shared by dn_container.c and dn_store.c. Functions named
 * _locked need set_lock held for writing. */
struct dn_container *dn__container_new(uint64_t id, int volume);
void dn__container_free(struct dn_container *c);
struct dn_container *dn__find_locked(const struct dn_store *s, uint64_t id);
int dn__insert_locked(struct dn_store *s, struct dn_container *c);
/* Synced write of c's record. Caller holds c->meta_lock or owns c. */
int dn__persist(struct dn_store *s, struct dn_container *c, char *errmsg);
/* The one function that moves a container's state: OPEN -> CLOSING ->
 * CLOSED, any -> UNHEALTHY; OZ_ESTATE otherwise. Logs; no persist.
 * Caller holds c->meta_lock (or owns c alone). */
int dn__set_state(struct dn_container *c,
                  Ozone__Hdds__ContainerState to,
                  const char *why);
/* Decodes a container record (bytes from disk, fully validated) into c
 * and its volume path into vol: 0 or OZ_ECORRUPT. */
int dn__record_decode(const uint8_t *v,
                      size_t len,
                      struct dn_container *c,
                      char *vol,
                      size_t vol_size);
void dn__put_be64(uint8_t *p, uint64_t v);
uint64_t dn__get_be64(const uint8_t *p);
int dn__mkdir_p(const char *path);
bool dn__dir_exists(const char *path);

/* Container paths: 0 or OZ_ETOOBIG. */
int dn__container_dir(const struct dn_store *s,
                      const struct dn_container *c,
                      char *out,
                      size_t size);
int dn__block_path(const struct dn_store *s,
                   const struct dn_container *c,
                   uint64_t local_id,
                   char *out,
                   size_t size);
/* Appends the container's record (current counters) to b. Caller holds
 * c->meta_lock. */
void dn__container_record_put(struct dn_store *s,
                              struct dn_container *c,
                              struct kv_batch *b);
/* fsync of a directory (path) or file (fd): 0 or OZ_EIO. */
int dn__fsync_dir(const char *path);

/* Snapshot of every container as replica reports, for heartbeats and
 * GetContainer. Caller frees with dn_reports_free. */
struct dn_reports
{
    Ozone__Hdds__ContainerReplicaReport *items;
    Ozone__Hdds__ContainerReplicaReport **ptrs;
    char (*pipes)[DN_MAX_NAME];
    size_t n;
};
int dn_store_container_reports(struct dn_store *s, struct dn_reports *out);
void dn_reports_free(struct dn_reports *r);
/* One container's report into r (strings point into c, constant). */
void dn_container_report(struct dn_container *c,
                         Ozone__Hdds__ContainerReplicaReport *r);

/* statvfs of each volume. Caller frees with dn_storage_free. */
struct dn_storage
{
    Ozone__Hdds__StorageReport *items;
    Ozone__Hdds__StorageReport **ptrs;
    size_t n;
};
int dn_store_storage_reports(struct dn_store *s, struct dn_storage *out);
void dn_storage_free(struct dn_storage *st);

/* Pipelines this datanode belongs to (CREATE_PIPELINE / CLOSE_PIPELINE),
 * persisted in pipelineTable. Adding a known id or removing an unknown
 * one is a no-op. */
/* Loads pipelineTable at open (dn_report.c). */
int dn__load_pipelines(struct dn_store *s, char *errmsg);
int dn_store_add_pipeline(struct dn_store *s,
                          const Ozone__Hdds__Pipeline *p,
                          char *errmsg);
int dn_store_remove_pipeline(struct dn_store *s, const char *id, char *errmsg);
/* Copies of the ids: *ids malloc'd array of malloc'd strings; free with
 * dn_ids_free. */
int dn_store_pipeline_ids(struct dn_store *s, char ***ids, size_t *n);
void dn_ids_free(char **ids, size_t n);

/* Name of a container state ("OPEN"). */
const char *dn_state_name(Ozone__Hdds__ContainerState st);

/* ---- blocks and chunks (dn_block.c) ---- */

/* Writes data at chunk->offset of the block's file after checking
 * chunk->checksum (CRC32C) against the bytes; creates the container on
 * first write. No fsync (PutBlock makes it durable). */
int dn_store_write_chunk(struct dn_store *s,
                         const Ozone__Hdds__BlockID *bid,
                         const Ozone__Datanode__ChunkInfo *chunk,
                         const uint8_t *data,
                         size_t len,
                         const char *pipeline_id,
                         struct dn_result *res);
/* Commits the block's chunk list: fsyncs the block file (and the chunks
 * directory for a new block), then a synced RocksDB write of the
 * BlockData and the container's counters. Idempotent; a longer list
 * replaces a shorter one, a shorter one is ignored. *committed gets the
 * committed length. */
int dn_store_put_block(struct dn_store *s,
                       const Ozone__Datanode__BlockData *bd,
                       uint64_t *committed,
                       struct dn_result *res);
/* The committed BlockData, unpacked with alloc (NULL: malloc; free with
 * ozone__datanode__block_data__free_unpacked(*out, NULL)). */
int dn_store_get_block(struct dn_store *s,
                       const Ozone__Hdds__BlockID *bid,
                       ProtobufCAllocator *alloc,
                       Ozone__Datanode__BlockData **out,
                       struct dn_result *res);
/* Reads [chunk->offset, +chunk->length) of a committed block into buf
 * (chunk->length bytes, caller-provided), after verifying the CRC32C of
 * the whole committed chunk that holds the range. The range must lie in
 * one committed chunk. CHECKSUM_MISMATCH when the bytes on disk are
 * corrupt. */
int dn_store_read_chunk(struct dn_store *s,
                        const Ozone__Hdds__BlockID *bid,
                        const Ozone__Datanode__ChunkInfo *chunk,
                        uint8_t *buf,
                        struct dn_result *res);
/* Committed blocks of a container from start_local_id, at most max, each
 * unpacked with alloc; *out an array from alloc (NULL: malloc). */
int dn_store_list_blocks(struct dn_store *s,
                         uint64_t container_id,
                         uint64_t start_local_id,
                         size_t max,
                         ProtobufCAllocator *alloc,
                         Ozone__Datanode__BlockData ***out,
                         size_t *n,
                         struct dn_result *res);

/* Fills res and returns rc (helper for the code above). */
int dn__fail(struct dn_result *res,
             int rc,
             Ozone__ResultCode code,
             const char *fmt,
             ...) __attribute__((format(printf, 4, 5)));

/* ---- metrics (dn_report.c; DESIGN.md §12) ---- */
struct metric;
struct dn_metrics
{
    struct metric *bytes_written;
    struct metric *bytes_read;
    struct metric *write_ops;
    struct metric *read_ops;
    struct metric *put_blocks;
    struct metric *checksum_failures;
    struct metric *state[5]; /* containers by state, index = state */
};
/* Set by dn__metrics_init (at dn_store_open), read-only afterwards. */
extern struct dn_metrics dn__metrics;
void dn__metrics_init(void);
void dn__metric_state(Ozone__Hdds__ContainerState st, double delta);

/* ---- RPC service (dn_service.c) ---- */
struct rpc_server;
int dn_service_register(struct rpc_server *srv,
                        struct dn_store *s,
                        char *errmsg);

/* ---- upgrade (dn_upgrade.c; DESIGN.md §6) ---- */
struct daemon;

/* The datanode's HDDS catalog: the built-in one with the datanode's
 * upgrade actions. Static; first call from the main thread. */
const struct version_catalog *dn_upgrade_catalog(void);

/* The store of a running datanode (main.c), NULL before setup. */
struct dn_store *dn__daemon_store(struct daemon *d);

/* FINALIZE_UPGRADE from SCM: finalizes one version at a time up to
 * target. 0 when the apparent version is (now) at least target;
 * OZ_ESTATE while a precondition is unmet (errmsg says what blocks it;
 * SCM resends the command), other codes on failure. */
int dn_upgrade_finalize(struct daemon *d,
                        struct dn_store *s,
                        unsigned target,
                        char *errmsg);

/* A container's checksum (CONTAINER_CHECKSUM, 102). */
struct dn_checksum
{
    char hex[65]; /* SHA-256, lower-case hex */
    uint64_t blocks;
    uint64_t bytes;
};
/* Reads the checksum file: 0, OZ_ENOTFOUND when absent, OZ_ECORRUPT. */
int dn_container_checksum_read(struct dn_store *s,
                               const struct dn_container *c,
                               struct dn_checksum *out);
/* Computes and writes it atomically (idempotent). */
int dn_container_checksum_write(struct dn_store *s,
                                const struct dn_container *c,
                                struct dn_checksum *out,
                                struct dn_result *res);
/* The file's contents, written first when missing; the container must be
 * CLOSED (INVALID_ARGUMENT otherwise). */
int dn_container_checksum_get(struct dn_store *s,
                              struct dn_container *c,
                              struct dn_checksum *out,
                              struct dn_result *res);
/* After a container closed: writes its checksum file once the feature is
 * finalized (logged on failure, never fatal). */
void dn__checksum_on_close(struct dn_store *s, struct dn_container *c);

/* ---- heartbeats (dn_heartbeat.c) ---- */
struct dn_heartbeat;
/* Starts the SCM heartbeat thread and, when ozone.recon.address is set,
 * the Recon one. d and s are borrowed and outlive dn_heartbeat_stop. */
int dn_heartbeat_start(struct dn_heartbeat **out,
                       struct daemon *d,
                       struct dn_store *s,
                       char *errmsg);
/* Stops and joins the threads, frees; hb may be NULL. */
void dn_heartbeat_stop(struct dn_heartbeat *hb);

#endif
