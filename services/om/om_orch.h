/* om_orch: the rolling-upgrade orchestrator's lease and journal in the
 * OM's replicated state (issue 7; proto/om.proto "Rolling-upgrade
 * orchestrator"). Private to services/om.
 *
 * `ozone admin upgrade run` holds a lease so that a second orchestrator is
 * refused, and journals every step so that `upgrade status`, `upgrade run
 * --resume/--rollback` and Recon can tell where a roll stands. Both live in
 * metaTable and change only through the raft log like every OM write:
 *
 *   #UPGRADELEASE                 OmUpgradeLease (absent: never held or
 *                                 released)
 *   #UPGRADEJOURNAL/<seq %020llu> OmUpgradeJournalEntry, seq 1, 2, ...
 *   #UPGRADEJOURNALSEQ            the last seq assigned, decimal text
 *
 * Time: every lease decision uses the op's time_ms (the proposer's clock),
 * never the applying OM's, so every OM decides the same (DESIGN.md §8.1).
 * The journal keeps the newest OM_ORCH_JOURNAL_MAX entries; older ones are
 * deleted in the batch that appends past the limit.
 *
 * Both ops are accepted while the OM is prepared for upgrade and while
 * writes are refused for an upgrade order violation: they are orchestration
 * metadata, and the orchestrator must be able to record and resume a roll
 * in exactly those states.
 */
#ifndef OZONE_OM_ORCH_H
#define OZONE_OM_ORCH_H

#include <stdbool.h>
#include <stdint.h>

#include "om_state.h"
#include "om_upgrade.h"
#include "rpc.h"

struct om_service;

#define OM_ORCH_LEASE_KEY "#UPGRADELEASE"
#define OM_ORCH_JOURNAL_PREFIX "#UPGRADEJOURNAL/"
#define OM_ORCH_JOURNAL_SEQ_KEY "#UPGRADEJOURNALSEQ"

/* Lease time to live accepted by ACQUIRE and RENEW. */
#define OM_ORCH_TTL_MIN_MS 1000u
#define OM_ORCH_TTL_MAX_MS 3600000u
/* Entries one append may carry; entries the journal keeps. */
#define OM_ORCH_APPEND_MAX 100u
#define OM_ORCH_JOURNAL_MAX 10000u
/* Read page: default and largest. */
#define OM_ORCH_READ_DEFAULT 1000u
#define OM_ORCH_READ_MAX 10000u

/* Largest strings accepted (bytes, without the NUL). */
#define OM_ORCH_ID_MAX 256    /* holder, host, run_id, takeover_from */
#define OM_ORCH_WORD_MAX 64   /* node, kind, action, status, backend */
#define OM_ORCH_TEXT_MAX 2048 /* detail */
#define OM_ORCH_PATH_MAX 1024 /* from_bin, to_bin */

/* The apply function of an upgrade_lease (44) or upgrade_journal (45) op;
 * NULL for any other op. Reached through om_upgrade_apply_for(). */
om_upgrade_apply_fn om_orch_apply_for(const Ozone__Om__OmWriteOp *op);
/* "UpgradeLease" / "UpgradeJournalAppend", NULL for any other op. */
const char *om_orch_op_name(const Ozone__Om__OmWriteOp *op);
/* Whether op is one of the two (exempt from the prepare and order gates). */
bool om_orch_is_orch_op(const Ozone__Om__OmWriteOp *op);

/* Input checks shared by the handlers (on the leader) and the apply
 * functions (an op is a self-contained input): true, or false with res
 * INVALID_ARGUMENT and a message naming the field and its limit. */
bool om_orch_lease_op_valid(const Ozone__Om__OmUpgradeLeaseOp *op,
                            struct om_result *res);
bool om_orch_append_valid(const Ozone__Om__OmUpgradeJournalAppendRequest *r,
                          struct om_result *res);

/* Reads the journal and the lease from om's tables into out (fields
 * entries, n_entries, lease; hdr and now_ms untouched): entries with seq >
 * after_seq, oldest first, at most limit (0: OM_ORCH_READ_DEFAULT, capped
 * at OM_ORCH_READ_MAX); last_run: only those whose run_id is the newest
 * entry's. Memory from alloc (NULL: malloc; then free with
 * om_orch_read_release). 0, or OZ_ENOMEM / OZ_ECORRUPT / OZ_EIO with
 * errmsg. */
int om_orch_read(struct om *om,
                 uint64_t after_seq,
                 uint32_t limit,
                 bool last_run,
                 ProtobufCAllocator *alloc,
                 Ozone__Om__OmUpgradeJournalReadResponse *out,
                 char *errmsg);
/* Frees what om_orch_read put in out with alloc NULL. */
void om_orch_read_release(Ozone__Om__OmUpgradeJournalReadResponse *out);

/* OmUpgradeService handlers (registered by om_upgrade.c). Writes go
 * through om__submit; the read is served by the leader after its read
 * barrier. */
enum rpc_handler_result om_orch_lease_handler(struct om_service *s,
                                              struct rpc_call *call,
                                              const ProtobufCMessage *req,
                                              ProtobufCMessage *resp);
enum rpc_handler_result om_orch_append_handler(struct om_service *s,
                                               struct rpc_call *call,
                                               const ProtobufCMessage *req,
                                               ProtobufCMessage *resp);
enum rpc_handler_result om_orch_read_handler(struct om_service *s,
                                             struct rpc_call *call,
                                             const ProtobufCMessage *req,
                                             ProtobufCMessage *resp);

#endif
