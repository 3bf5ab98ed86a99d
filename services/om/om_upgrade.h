/* om_upgrade: the OM side of zero-downtime upgrades (DESIGN.md §6).
 * Private to services/om.
 *
 * Features (om_features.c): OM BUCKET_QUOTA (101) and KEY_TAGS (102), gated
 * by the layout version of the replicated state, #LAYOUTVERSION in the
 * meta table, never by this node's software version (DESIGN.md §8.1):
 * every OM applying the same entry on the same state decides the same
 * way. Handlers check first (a clear error without a log entry); apply
 * checks again (the entry is a self-contained input).
 *
 * Finalization (om_upgrade.c, DESIGN.md §6.7): FinalizeUpgrade on the
 * leader checks invariant 2 for the OM peers, calls SCM FinalizeUpgrade,
 * commits the #FINALIZATION_IN_PROGRESS marker (OmStartFinalizationOp,
 * which also records who asked, #FINALIZATIONREQUESTEDBY);
 * the leader's poller waits for SCM to report HDDS finalized and commits
 * one OmFinalizeOp that, applied by every OM, runs each pending version's
 * data migration in order, writes #LAYOUTVERSION and removes the marker in
 * the same batch. The version manager (VERSION file, in-memory apparent)
 * then follows the replicated #LAYOUTVERSION on every OM: the poller
 * reconciles it every tick, and at start-up (a follower that installed a
 * snapshot, or a crash between the batch and VERSION, finalizes itself).
 * QueryUpgradeStatus is the service's status, served by the leader after
 * its read barrier (followers answer NOT_LEADER), unless the request asks
 * for this node's own view (this_node: Recon polls every OM).
 *
 * Order enforcement (DESIGN.md §6.6): while SCM or any live datanode runs
 * an HDDS software version older than the one this OM's release was built
 * with, writes fail with UPGRADE_ORDER_VIOLATION; re-checked by the poller.
 *
 * Threads: one poller thread per OM (started in om_upgrade_start, joined
 * in om_upgrade_stop); handlers run on rpc threads. The upgrade state's
 * mutex guards the order-violation text and the last SCM status.
 */
#ifndef OZONE_OM_UPGRADE_H
#define OZONE_OM_UPGRADE_H

#include <stdbool.h>
#include <stdint.h>

#include "om_state.h"
#include "rpc.h"
#include "version.h"

struct om_service;

#define OM_FINALIZATION_MARKER_KEY "#FINALIZATION_IN_PROGRESS"
/* Who asked for the current or last finalization (OmStartFinalizationOp's
 * requested_by, at most OM_REQUESTED_BY_MAX - 1 bytes): written in the
 * marker's batch and kept when the finalize entry removes the marker, so
 * that "who finalized" stays known (OmUpgradeStatus, Recon's journal). */
#define OM_FINALIZATION_REQUESTED_BY_KEY "#FINALIZATIONREQUESTEDBY"
#define OM_REQUESTED_BY_MAX 256
/* The target of the last completed finalization (FINALIZATION_DONE vs
 * ALREADY_FINALIZED). */
#define OM_FINALIZATION_DONE_KEY "#FINALIZATIONDONE"

/* ---- features (om_features.c) ---- */

/* The OM catalog with its upgrade actions (daemon_def.version_catalog). */
const struct version_catalog *om_version_catalog(void);

/* Layout version of the replicated state (#LAYOUTVERSION). 0 with *out,
 * OZ_ENOTFOUND when absent, OZ_ECORRUPT. */
int om_read_layout_version(struct om *om, int *out);

/* True when the replicated state has feature (layout >= feature); else
 * res is NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION with the §6.1 text
 * naming operation. */
bool om_feature_allowed(struct om *om,
                        int feature,
                        const char *operation,
                        struct om_result *res);

/* The replicated half of version v's ON_FINALIZE: the data migration,
 * added to b; deterministic (reads only the tables). index is the
 * finalize entry's. 0 or OZ_E* with errmsg. */
int om_feature_migrate(struct om *om,
                       int v,
                       uint64_t index,
                       struct kv_batch *b,
                       char *errmsg);

/* CommitKey under BUCKET_QUOTA: false with QUOTA_EXCEEDED in res when the
 * bucket's usage after the commit (old_size/had_key replaced by
 * new_size) would pass its quota. */
bool om_quota_allows(struct om *om,
                     const Ozone__Om__BucketInfo *bk,
                     uint64_t old_size,
                     bool had_key,
                     uint64_t new_size,
                     struct om_result *res);

/* KEY_TAGS in a CommitKey: sets nk's tags from r when r carries them
 * (after checking the feature and the tags); false with res set when
 * refused. */
bool om_commit_tags(struct om *om,
                    const Ozone__Om__CommitKeyRequest *r,
                    Ozone__Om__KeyInfo *nk,
                    struct om_result *res);

/* Validates tags (count, lengths, duplicates): OK or INVALID_ARGUMENT. */
bool om_tags_valid(Ozone__Om__KeyTag *const *tags,
                   size_t n,
                   struct om_result *res);

/* Same signature as om_apply.c's apply functions. */
typedef void (*om_upgrade_apply_fn)(struct om *,
                                    const Ozone__Om__OmWriteOp *,
                                    struct kv_batch *,
                                    struct om_result *);

/* The apply function of an upgrade op (SetBucketQuota, PutObjectTagging,
 * start finalization, finalize); NULL when op is none of them. */
om_upgrade_apply_fn om_upgrade_apply_for(const Ozone__Om__OmWriteOp *op);
/* Method name of an upgrade op, NULL when op is none of them. */
const char *om_upgrade_op_name(const Ozone__Om__OmWriteOp *op);

/* OzoneManagerService handlers of the gated APIs (om_features.c). */
enum rpc_handler_result om__set_bucket_quota(void *,
                                             struct rpc_call *,
                                             const ProtobufCMessage *,
                                             ProtobufCMessage *);
enum rpc_handler_result om__get_object_tagging(void *,
                                               struct rpc_call *,
                                               const ProtobufCMessage *,
                                               ProtobufCMessage *);
enum rpc_handler_result om__put_object_tagging(void *,
                                               struct rpc_call *,
                                               const ProtobufCMessage *,
                                               ProtobufCMessage *);

/* ---- finalization and order enforcement (om_upgrade.c) ---- */

/* Seeds or reconciles #LAYOUTVERSION with VERSION, registers
 * ozone.om.OmUpgradeService and the metrics, runs the first order check
 * and starts the poller. s->d->state must be s. 0 or OZ_E* with errmsg. */
int om_upgrade_start(struct om_service *s, char *errmsg);
/* Stops the poller (before om_service_free). s may be NULL. */
void om_upgrade_stop(struct om_service *s);

/* Write gate of DESIGN.md §6.6: true when op may be submitted; else res
 * is UPGRADE_ORDER_VIOLATION. Upgrade ops always pass. */
bool om_upgrade_write_allowed(struct om_service *s,
                              const Ozone__Om__OmWriteOp *op,
                              struct om_result *res);

#endif
