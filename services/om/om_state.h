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
 * non-deterministic value and builds an Ozone__Om__OmWriteOp; the raft log
 * gives it an index and every OM applies it with om_apply_write() under
 * the write lock (om_submit() picks the next index itself: tests). om_apply()
 * is a pure function of (op, tables): it never reads the clock, local
 * files or configuration, so the OMs of a Raft ring write the same bytes
 * for the same entry. The applied index is stored in the same batch as
 * "<term>#<index>"; an op at or below it is skipped (replay).
 *
 * Double buffer (om_buffer.c, DESIGN.md §8): once om_buffer_start() ran,
 * an applied batch goes into the kv overlay (kv.h "Overlay"), visible to
 * every read at once, and a flusher thread writes the accumulated batches
 * with one RocksDB write (with #TRANSACTIONINFO of the newest) when
 * max_entries are pending or interval_ms passed. A crash loses only
 * unflushed applies, which raft re-applies from its log: they follow the
 * flushed #TRANSACTIONINFO. Without it every apply is one kv_write.
 *
 * Reads (om_get_*, om_list) read the tables, overlay included, from any
 * thread.
 *
 * Threading: applies are serialised by write_lock; reads need no lock
 * (kv gives each read a consistent view). The flusher thread only calls
 * kv_overlay_flush.
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

struct om_buffer;

struct om
{
    struct kv *kv; /* borrowed; outlives the om */
    int cf[OM_TABLE_COUNT];
    pthread_mutex_t write_lock;
    uint64_t applied_index;   /* guarded by write_lock */
    uint64_t apply_term;      /* raft term of the entry being applied */
    struct om_buffer *buffer; /* NULL: every apply is written at once */
};

/* Double buffer settings (ozone.om.ratis.double.buffer.*). */
struct om_buffer_config
{
    uint64_t max_entries; /* flush once this many applies are pending */
    unsigned interval_ms; /* flush at most this long after an apply */
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
 * it: what every OM runs when it applies a committed entry; term is the
 * entry's raft term (stored in #TRANSACTIONINFO). With the double buffer
 * the batch goes to the overlay and the call returns once it is visible;
 * sync: the entry is also flushed and fsynced before returning (else the
 * raft log is the durable record). Without it the batch is written at
 * once (sync: WAL fsync). */
int om_apply_write(struct om *om,
                   const Ozone__Om__OmWriteOp *op,
                   uint64_t term,
                   bool sync,
                   struct om_result *res);

/* ---- double buffer (om_buffer.c) ---- */

/* Attaches the kv overlay and starts the flusher thread. Call before
 * applies start. 0, or OZ_ENOMEM / OZ_EINVAL with errmsg. */
int om_buffer_start(struct om *om,
                    const struct om_buffer_config *cfg,
                    char *errmsg);
/* Stops the flusher and flushes what is pending (synced). No apply may
 * run any more. No-op without a buffer. */
void om_buffer_stop(struct om *om);
/* Flushes every applied batch now (sync: fsync the WAL too). Fault point
 * "om.flush.before_write" before a write. 0 without a buffer. */
int om_buffer_flush(struct om *om, bool sync, char *errmsg);
/* Internal to om_apply.c: a batch went into the overlay; pending is what
 * is unflushed now (wakes the flusher, or flushes inline past the cap). */
void om_buffer__applied(struct om *om, const struct kv_overlay_stats *pending);
/* Newest index whose batch is in RocksDB (not just in memory). */
uint64_t om_buffer_flushed_index(struct om *om);
/* After a direct kv_write that stored the tables at index (snapshot
 * install). */
void om_buffer_set_flushed(struct om *om, uint64_t index);

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

/* DeleteOpenKeys (om_cleanup.c): deletes the listed open keys that still
 * exist and were created before op->delete_open_keys->expire_before_ms. */
void om_apply_delete_open_keys(struct om *om,
                               const Ozone__Om__OmWriteOp *op,
                               struct kv_batch *b,
                               struct om_result *res);

/* The op's method name for messages ("CommitKey"). */
const char *om_op_name(const Ozone__Om__OmWriteOp *op);

/* Index stored in #PREPAREDINFO: 0, OZ_ENOTFOUND (not prepared) or
 * OZ_ECORRUPT. */
int om_read_prepared_index(struct om *om, uint64_t *out);

/* Applied index stored in the tables (0 when none). OZ_ECORRUPT. */
int om_read_applied_index(struct om *om, uint64_t *out);
/* #TRANSACTIONINFO "<term>#<index>" (zeros when absent). OZ_ECORRUPT. */
int om_read_transaction_info(struct om *om, uint64_t *term, uint64_t *index);

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
