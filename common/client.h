/* client: the ozone-c client library (DESIGN.md §7): the namespace calls
 * to OM (volumes, buckets, keys), streaming key writes and reads straight
 * to and from the datanodes, and the SCM admin listings used by
 * `ozone admin`.
 *
 * Write (oz_key_put): OM CreateKey gives a first block; the data is cut
 * into chunks (ozone.scm.chunk.size, never past the block's end), each
 * chunk is written to every member of the block's pipeline and then made
 * durable with PutBlock on every member, so an acknowledged chunk is on
 * all replicas. When a member fails, the block keeps the length committed
 * on all members, OM AllocateBlock gives a new block that avoids the
 * failed datanode (or the container, on CONTAINER_NOT_OPEN), and the
 * failed chunk is sent again there. CommitKey publishes the key. Memory
 * is one chunk buffer per put, whatever the key size.
 *
 * Read (oz_key_get): OM LookupKey; for each block the members are tried in
 * order (GetBlock, then ReadChunk per chunk, CRC32C checked here too); a
 * failing member is skipped; the read fails only when every member failed
 * for some chunk, and the message names each member's error.
 *
 * Threading: a struct oz_client is safe to share between threads (freon
 * does); every call reports its error in its own struct oz_error.
 *
 * Ownership: messages returned through out-parameters are owned by the
 * caller and freed with oz_client_free_msg(). Strings passed in are
 * borrowed for the call.
 */
#ifndef OZONE_CLIENT_H
#define OZONE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "datanode.pb-c.h"
#include "om.pb-c.h"
#include "rpc.h"
#include "scm.pb-c.h"

/* Hard caps on what the client accepts from configuration. */
#define OZ_CLIENT_MAX_CHUNK (16u << 20)
#define OZ_CLIENT_MAX_OM_NODES 8
/* Blocks a single put may ask for after failures before giving up. */
#define OZ_CLIENT_MAX_REALLOCATIONS 32

/* The error of one call: the server's result code (or one the client
 * chose: UNAVAILABLE, TIMEOUT, CHECKSUM_MISMATCH, IO_EXCEPTION,
 * INVALID_ARGUMENT...) and a message in our grammar. */
struct oz_error
{
    Ozone__ResultCode code;
    char message[1024];
};

/* Result-code name as in the proto ("VOLUME_NOT_FOUND"). Static. */
const char *oz_result_name(Ozone__ResultCode code);

struct oz_client;

/* Creates a client from conf (borrowed; only read during this call).
 *
 * om_target chooses the OM: NULL or "" means the configuration
 * (ozone.om.service.ids with ozone.om.nodes.<sid> and
 * ozone.om.address.<sid>.<node>, else ozone.om.address); "host:port" or
 * "host" (port 9862) names one OM; a name listed in ozone.om.service.ids
 * selects that service's nodes. SCM (admin calls) is the first entry of
 * ozone.scm.names (port 9860 when none), else ozone.scm.client.address.
 *
 * identity is borrowed and must outlive the client (component CLIENT).
 * Returns 0, or OZ_EINVAL / OZ_ECONFIG / OZ_ENOMEM with errmsg. */
int oz_client_new(struct oz_client **out,
                  const struct conf *conf,
                  const char *om_target,
                  const struct rpc_identity *identity,
                  char *errmsg);
void oz_client_free(struct oz_client *c);

/* Frees a message returned by any oz_* call; NULL is fine. */
void oz_client_free_msg(void *msg);

/* Chunk size (bytes) and default replication this client uses. */
size_t oz_client_chunk_size(const struct oz_client *c);
Ozone__Hdds__ReplicationFactor oz_client_default_replication(
    const struct oz_client *c);

/* Parses "ONE" / "THREE" (also "1" / "3"), case-insensitive. 0 or
 * OZ_EINVAL. */
int oz_parse_replication(const char *s, Ozone__Hdds__ReplicationFactor *out);
const char *oz_replication_name(Ozone__Hdds__ReplicationFactor f);

/* ---- volumes and buckets. Every call returns 0 or a negative OZ_E*
 * code with err filled (code OK only for local failures). ---- */

int oz_volume_create(struct oz_client *c,
                     const char *name,
                     const char *owner,
                     uint64_t quota_bytes,
                     struct oz_error *err);
/* *out: caller frees with oz_client_free_msg(). */
int oz_volume_info(struct oz_client *c,
                   const char *name,
                   Ozone__Om__VolumeInfo **out,
                   struct oz_error *err);
/* One page of at most max (0: 1000) volumes after start_after. */
int oz_volume_list(struct oz_client *c,
                   const char *prefix,
                   const char *start_after,
                   unsigned max,
                   Ozone__Om__ListVolumesResponse **out,
                   struct oz_error *err);
int oz_volume_delete(struct oz_client *c,
                     const char *name,
                     struct oz_error *err);

/* replication REPLICATION_UNSPECIFIED: the server's default. */
int oz_bucket_create(struct oz_client *c,
                     const char *volume,
                     const char *name,
                     Ozone__Hdds__ReplicationFactor replication,
                     struct oz_error *err);
int oz_bucket_info(struct oz_client *c,
                   const char *volume,
                   const char *name,
                   Ozone__Om__BucketInfo **out,
                   struct oz_error *err);
int oz_bucket_list(struct oz_client *c,
                   const char *volume,
                   const char *prefix,
                   const char *start_after,
                   unsigned max,
                   Ozone__Om__ListBucketsResponse **out,
                   struct oz_error *err);
int oz_bucket_delete(struct oz_client *c,
                     const char *volume,
                     const char *name,
                     struct oz_error *err);

/* ---- keys ---- */

int oz_key_info(struct oz_client *c,
                const char *volume,
                const char *bucket,
                const char *key,
                Ozone__Om__KeyInfo **out,
                struct oz_error *err);
int oz_key_list(struct oz_client *c,
                const char *volume,
                const char *bucket,
                const char *prefix,
                const char *start_after,
                unsigned max,
                Ozone__Om__ListKeysResponse **out,
                struct oz_error *err);
int oz_key_delete(struct oz_client *c,
                  const char *volume,
                  const char *bucket,
                  const char *key,
                  struct oz_error *err);
int oz_key_rename(struct oz_client *c,
                  const char *volume,
                  const char *bucket,
                  const char *key,
                  const char *to_key,
                  struct oz_error *err);

/* Source of a put: fills up to n bytes of buf; returns the count, 0 at
 * the end, or -1 with *errmsg_out describing the failure (static text or
 * a string valid until the next call). */
typedef ssize_t (*oz_reader_fn)(void *ctx,
                                void *buf,
                                size_t n,
                                const char **errmsg_out);
/* Sink of a get: consumes all n bytes; 0 or -1 with *errmsg_out. */
typedef int (*oz_writer_fn)(void *ctx,
                            const void *buf,
                            size_t n,
                            const char **errmsg_out);

/* Figures of one put, for freon and logs (may be NULL). */
struct oz_put_stats
{
    uint64_t bytes;
    unsigned blocks;      /* locations committed */
    unsigned reallocated; /* blocks asked for after a failure */
};

/* Writes a key of any size from reader, streamed chunk by chunk, and
 * commits it (replacing an existing key). size_hint is the expected size
 * (0 when unknown). replication UNSPECIFIED: the bucket's. */
int oz_key_put(struct oz_client *c,
               const char *volume,
               const char *bucket,
               const char *key,
               Ozone__Hdds__ReplicationFactor replication,
               uint64_t size_hint,
               oz_reader_fn reader,
               void *reader_ctx,
               struct oz_put_stats *stats,
               struct oz_error *err);
/* Convenience sources: a file descriptor read to its end, or a buffer. */
int oz_key_put_fd(struct oz_client *c,
                  const char *volume,
                  const char *bucket,
                  const char *key,
                  Ozone__Hdds__ReplicationFactor replication,
                  int fd,
                  struct oz_put_stats *stats,
                  struct oz_error *err);
int oz_key_put_buf(struct oz_client *c,
                   const char *volume,
                   const char *bucket,
                   const char *key,
                   Ozone__Hdds__ReplicationFactor replication,
                   const void *buf,
                   size_t len,
                   struct oz_put_stats *stats,
                   struct oz_error *err);

/* Reads a key and hands its bytes to writer in order. *size_out (may be
 * NULL) receives the key's size. */
int oz_key_get(struct oz_client *c,
               const char *volume,
               const char *bucket,
               const char *key,
               oz_writer_fn writer,
               void *writer_ctx,
               uint64_t *size_out,
               struct oz_error *err);
int oz_key_get_fd(struct oz_client *c,
                  const char *volume,
                  const char *bucket,
                  const char *key,
                  int fd,
                  uint64_t *size_out,
                  struct oz_error *err);

/* ---- SCM admin (ozone admin ...) ---- */

/* state NODE_STATE_UNSPECIFIED: every datanode. */
int oz_admin_list_datanodes(struct oz_client *c,
                            Ozone__Hdds__NodeState state,
                            Ozone__Scm__ListDatanodesResponse **out,
                            struct oz_error *err);
int oz_admin_list_containers(struct oz_client *c,
                             uint64_t start_id,
                             unsigned count,
                             Ozone__Hdds__ContainerState state,
                             Ozone__Scm__ListContainersResponse **out,
                             struct oz_error *err);
int oz_admin_list_pipelines(struct oz_client *c,
                            Ozone__Scm__ListPipelinesResponse **out,
                            struct oz_error *err);

/* ---- HDDS finalization (ScmUpgradeService, DESIGN.md §6.5-§6.7) ---- */

/* SCM FinalizeUpgrade; client_id (may be NULL) names the caller in SCM's
 * log. FINALIZE_REJECTED lists every datanode that runs other bits. */
int oz_admin_scm_finalize(struct oz_client *c,
                          const char *client_id,
                          Ozone__Scm__FinalizeUpgradeResponse **out,
                          struct oz_error *err);
int oz_admin_scm_upgrade_status(struct oz_client *c,
                                Ozone__Scm__QueryUpgradeStatusResponse **out,
                                struct oz_error *err);

#endif
