/* om_state: the OM namespace tables and the one way to change them
 * (DESIGN.md §7, §8, §8.1).
 *
 * Tables (column families of the OM's RocksDB, values are om.proto
 * messages):
 *   volumeTable   "/vol"                          VolumeInfo
 *   bucketTable   "/vol/bucket"                   BucketInfo
 *   keyTable      "/vol/bucket/key"               KeyInfo
 *   openKeyTable  "/vol/bucket/key/<clientId>"    KeyInfo (being written)
 *   metaTable     "#TRANSACTIONINFO"              "<term>#<index>" text
 *
 * Writes: an RPC handler validates the request, decides every
 * non-deterministic value and builds an Ozone__Om__OmWriteOp; om_submit()
 * gives it the next log index and applies it under the write lock with one
 * synced kv_write. om_apply() is a pure function of (op, tables): it never
 * reads the clock, local files or configuration, so the OMs of a Raft ring
 * (next issue) write the same bytes for the same entry. The applied index
 * is stored in the same batch; an op at or below it is skipped (replay).
 *
 * Reads (om_get_*, om_list) read the tables directly, from any thread.
 *
 * Threading: om_submit serialises writers with write_lock; reads need no
 * lock (RocksDB gives each read a consistent view).
 */
#ifndef OZONE_OM_STATE_H
#define OZONE_OM_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kv.h"
#include "om.pb-c.h"

enum om_table {
    OM_VOLUME_TABLE,
    OM_BUCKET_TABLE,
    OM_KEY_TABLE,
    OM_OPEN_KEY_TABLE,
    OM_META_TABLE,
    OM_TABLE_COUNT
};

/* Column family names in enum order, without the meta table (which kv
 * adds): the daemon's kv_cfs. */
#define OM_N_CFS 4
extern const char *const om_cf_names[OM_N_CFS];

#define OM_TRANSACTION_INFO_KEY "#TRANSACTIONINFO"
/* Index of the prepare entry while the OM is prepared (DESIGN.md §6.8). */
#define OM_PREPARED_INFO_KEY "#PREPAREDINFO"
/* Largest list page (ListVolumes/ListBuckets/ListKeys max_keys). */
#define OM_LIST_MAX 1000
/* "/" vol "/" bucket "/" key "/" client id, with room to spare. */
#define OM_DB_KEY_MAX 1200

struct om
{
    struct kv *kv; /* borrowed; outlives the om */
    int cf[OM_TABLE_COUNT];
    pthread_mutex_t write_lock;
    uint64_t applied_index; /* guarded by write_lock */
};

/* Outcome of an operation: OK or an Ozone result code with a message in
 * our grammar. */
struct om_result
{
    Ozone__ResultCode code;
    bool replayed; /* op index was already applied: no-op */
    char message[OZ_ERRMSG_SIZE];
    char leader_hint[256]; /* with NOT_LEADER: the leader's RPC address */
};

/* Finds the column families in kv (opened with om_cf_names) and reads the
 * applied index. 0, or OZ_ENOTFOUND / OZ_ECORRUPT with errmsg. */
int om_init(struct om *om, struct kv *kv, char *errmsg);
void om_release(struct om *om);

/* Sets res to code with a formatted message. */
void om_result_set(struct om_result *res,
                   Ozone__ResultCode code,
                   const char *fmt,
                   ...) __attribute__((format(printf, 3, 4)));

/* ---- writes ---- */

/* Applies op at index op->index (0: the next index, set in op) under the
 * write lock with one synced kv_write. Returns 0 when the op went through
 * the log (res tells its outcome: OK, a rule refusal such as
 * VOLUME_NOT_EMPTY, or replayed), or a negative OZ_E* code when the
 * tables could not be written (res: INTERNAL_ERROR with the cause). op is
 * borrowed. */
int om_submit(struct om *om, Ozone__Om__OmWriteOp *op, struct om_result *res);

/* om_submit at op->index (> 0, decided by the raft log) without choosing
 * it: what every OM runs when it applies a committed entry. sync: fsync
 * the RocksDB WAL (the raft log already holds the entry durably). */
int om_apply_write(struct om *om,
                   const Ozone__Om__OmWriteOp *op,
                   bool sync,
                   struct om_result *res);

/* Adds to batch the changes op makes to the current tables, with the new
 * applied index; res gets the outcome. Deterministic: depends only on op
 * and the tables (DESIGN.md §8.1). A refused op still advances the applied
 * index; an op at or below the applied index adds nothing (res->replayed).
 * The caller writes the batch; at most one op per batch (an op reads the
 * tables, not the batch). */
void om_apply(struct om *om,
              const Ozone__Om__OmWriteOp *op,
              struct kv_batch *batch,
              struct om_result *res);

/* The op's method name for messages ("CommitKey"). */
const char *om_op_name(const Ozone__Om__OmWriteOp *op);

/* Index stored in #PREPAREDINFO: 0, OZ_ENOTFOUND (not prepared) or
 * OZ_ECORRUPT. */
int om_read_prepared_index(struct om *om, uint64_t *out);

/* Applied index stored in the tables (0 when none). OZ_ECORRUPT. */
int om_read_applied_index(struct om *om, uint64_t *out);

/* ---- table keys and values ---- */

/* Build table keys into out (OM_DB_KEY_MAX bytes); return the length, or 0
 * when the names do not fit (callers validate names first). */
size_t om_volume_key(char *out, const char *vol);
size_t om_bucket_key(char *out, const char *vol, const char *bucket);
size_t om_key_key(char *out,
                  const char *vol,
                  const char *bucket,
                  const char *key);
size_t om_open_key_key(char *out,
                       const char *vol,
                       const char *bucket,
                       const char *key,
                       uint64_t client_id);

/* Reads and decodes one value. alloc NULL: malloc, caller frees with
 * om_msg_free(); else memory from alloc (e.g. an rpc call's arena).
 * 0, OZ_ENOTFOUND, OZ_ECORRUPT (undecodable value), OZ_EIO. */
int om_db_get(struct om *om,
              enum om_table t,
              const char *key,
              size_t klen,
              const ProtobufCMessageDescriptor *desc,
              ProtobufCAllocator *alloc,
              ProtobufCMessage **out);
/* Encodes msg into batch (the batch copies the bytes). */
void om_db_put(struct om *om,
               struct kv_batch *b,
               enum om_table t,
               const char *key,
               size_t klen,
               const ProtobufCMessage *msg);
/* 1 when some key of table t starts with prefix, 0 when none, OZ_ENOMEM
 * when no iterator could be made. */
int om_db_has_prefix(struct om *om,
                     enum om_table t,
                     const char *prefix,
                     size_t plen);
/* Frees a message decoded with alloc NULL; msg may be NULL. */
void om_msg_free(ProtobufCMessage *msg);

/* ---- reads with Ozone's result codes ---- */

/* Each fills *out (see om_db_get for alloc) and returns OK, or the code of
 * what is missing (VOLUME_NOT_FOUND, then BUCKET_NOT_FOUND, then
 * KEY_NOT_FOUND) or INTERNAL_ERROR, with res->message. */
Ozone__ResultCode om_get_volume(struct om *om,
                                const char *vol,
                                ProtobufCAllocator *alloc,
                                Ozone__Om__VolumeInfo **out,
                                struct om_result *res);
Ozone__ResultCode om_get_bucket(struct om *om,
                                const char *vol,
                                const char *bucket,
                                ProtobufCAllocator *alloc,
                                Ozone__Om__BucketInfo **out,
                                struct om_result *res);
Ozone__ResultCode om_get_key(struct om *om,
                             const char *vol,
                             const char *bucket,
                             const char *key,
                             ProtobufCAllocator *alloc,
                             Ozone__Om__KeyInfo **out,
                             struct om_result *res);
/* The open key of a write session; KEY_NOT_FOUND when there is none. */
Ozone__ResultCode om_get_open_key(struct om *om,
                                  const char *vol,
                                  const char *bucket,
                                  const char *key,
                                  uint64_t client_id,
                                  ProtobufCAllocator *alloc,
                                  Ozone__Om__KeyInfo **out,
                                  struct om_result *res);

/* Lists values of table t whose table key starts with parent (e.g. "/vol/"
 * for the buckets of vol) followed by prefix, in key order, after
 * parent+start_after when start_after is not empty, at most max entries
 * (0 or more than OM_LIST_MAX: OM_LIST_MAX). *items is an array from alloc
 * (NULL: malloc, caller frees each with om_msg_free and the array with
 * free()). 0 or OZ_ENOMEM / OZ_ECORRUPT / OZ_ETOOBIG (names too long). */
int om_list(struct om *om,
            enum om_table t,
            const char *parent,
            const char *prefix,
            const char *start_after,
            uint32_t max,
            const ProtobufCMessageDescriptor *desc,
            ProtobufCAllocator *alloc,
            ProtobufCMessage ***items,
            size_t *n_items);

#endif
