/* client_upgrade: the client calls of the OM features above ZDU_READY and
 * of OM finalization (DESIGN.md §6.1, §6.7). Same conventions as client.h:
 * 0 or a negative OZ_E* code with err filled; messages returned through
 * out-parameters are freed with oz_client_free_msg().
 *
 * Before the OM is finalized the feature calls fail with
 * NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION and a message naming the
 * feature and both versions.
 */
#ifndef OZONE_CLIENT_UPGRADE_H
#define OZONE_CLIENT_UPGRADE_H

#include "client.h"

/* OM BUCKET_QUOTA (101): quota in (replicated) bytes and in keys; 0 means
 * unlimited. */
int oz_bucket_set_quota(struct oz_client *c,
                        const char *volume,
                        const char *bucket,
                        uint64_t quota_bytes,
                        uint64_t quota_keys,
                        struct oz_error *err);

/* OM KEY_TAGS (102): replaces the key's tags with the n pairs keys[i] =
 * values[i] (n 0 removes every tag). */
int oz_key_put_tagging(struct oz_client *c,
                       const char *volume,
                       const char *bucket,
                       const char *key,
                       const char *const *keys,
                       const char *const *values,
                       size_t n,
                       struct oz_error *err);
int oz_key_get_tagging(struct oz_client *c,
                       const char *volume,
                       const char *bucket,
                       const char *key,
                       Ozone__Om__GetObjectTaggingResponse **out,
                       struct oz_error *err);

/* OM finalization (OmUpgradeService on the OM leader). legacy: `ozone
 * admin om finalizeupgrade` (SCM must be finalized already). */
int oz_om_finalize(struct oz_client *c,
                   const char *client_id,
                   bool legacy,
                   Ozone__Om__OmFinalizeUpgradeResponse **out,
                   struct oz_error *err);
int oz_om_upgrade_status(struct oz_client *c,
                         bool with_peers,
                         Ozone__Om__OmQueryUpgradeStatusResponse **out,
                         struct oz_error *err);

/* Rolling-upgrade orchestrator lease and journal (OmUpgradeService on the
 * OM leader; proto/om.proto). The request's hdr is stamped by the client.
 * Refusals come back as UPGRADE_LEASE_HELD / UPGRADE_LEASE_LOST. */
int oz_upgrade_lease(struct oz_client *c,
                     const Ozone__Om__OmUpgradeLeaseRequest *req,
                     Ozone__Om__OmUpgradeLeaseResponse **out,
                     struct oz_error *err);
/* Appends entries in order under holder's lease; *last_seq (may be NULL)
 * is the seq of the last one. */
int oz_upgrade_journal_append(struct oz_client *c,
                              const char *holder,
                              const Ozone__Om__OmUpgradeJournalEntry *const *e,
                              size_t n,
                              uint64_t *last_seq,
                              struct oz_error *err);
int oz_upgrade_journal_read(struct oz_client *c,
                            uint64_t after_seq,
                            uint32_t limit,
                            bool last_run,
                            Ozone__Om__OmUpgradeJournalReadResponse **out,
                            struct oz_error *err);

#endif
