/* Client calls of the OM features above ZDU_READY and of OM finalization
 * (client_upgrade.h). */
#include "client_upgrade.h"

#include <stdlib.h>

#include "client_internal.h"
#include "err.h"

int oz_bucket_set_quota(struct oz_client *c,
                        const char *volume,
                        const char *bucket,
                        uint64_t quota_bytes,
                        uint64_t quota_keys,
                        struct oz_error *err)
{
    Ozone__Om__SetBucketQuotaRequest req =
        OZONE__OM__SET_BUCKET_QUOTA_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    req.volume = (char *)volume;
    req.bucket = (char *)bucket;
    req.quota_in_bytes = quota_bytes;
    req.quota_in_namespace = quota_keys;
    rc = oz__om_call(c, "SetBucketQuota", &req.base, &resp, err);
    oz_client_free_msg(resp);
    return rc;
}

int oz_key_put_tagging(struct oz_client *c,
                       const char *volume,
                       const char *bucket,
                       const char *key,
                       const char *const *keys,
                       const char *const *values,
                       size_t n,
                       struct oz_error *err)
{
    Ozone__Om__PutObjectTaggingRequest req =
        OZONE__OM__PUT_OBJECT_TAGGING_REQUEST__INIT;
    Ozone__Om__KeyTag *tags = NULL;
    Ozone__Om__KeyTag **ptrs = NULL;
    ProtobufCMessage *resp = NULL;
    int rc;

    if (n > 0) {
        tags = calloc(n, sizeof(*tags));
        ptrs = calloc(n, sizeof(*ptrs));
        if (tags == NULL || ptrs == NULL) {
            free(tags);
            free(ptrs);
            oz__set_error(err, OZONE__RESULT_CODE__INTERNAL_ERROR,
                          "out of memory");
            return OZ_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        ozone__om__key_tag__init(&tags[i]);
        tags[i].key = (char *)keys[i];
        tags[i].value = (char *)values[i];
        ptrs[i] = &tags[i];
    }
    req.volume = (char *)volume;
    req.bucket = (char *)bucket;
    req.key = (char *)key;
    req.tags = ptrs;
    req.n_tags = n;
    rc = oz__om_call(c, "PutObjectTagging", &req.base, &resp, err);
    oz_client_free_msg(resp);
    free(tags);
    free(ptrs);
    return rc;
}

int oz_key_get_tagging(struct oz_client *c,
                       const char *volume,
                       const char *bucket,
                       const char *key,
                       Ozone__Om__GetObjectTaggingResponse **out,
                       struct oz_error *err)
{
    Ozone__Om__GetObjectTaggingRequest req =
        OZONE__OM__GET_OBJECT_TAGGING_REQUEST__INIT;

    req.volume = (char *)volume;
    req.bucket = (char *)bucket;
    req.key = (char *)key;
    *out = NULL;
    return oz__om_call(c, "GetObjectTagging", &req.base,
                       (ProtobufCMessage **)out, err);
}

int oz_om_finalize(struct oz_client *c,
                   const char *client_id,
                   bool legacy,
                   Ozone__Om__OmFinalizeUpgradeResponse **out,
                   struct oz_error *err)
{
    Ozone__Om__OmFinalizeUpgradeRequest req =
        OZONE__OM__OM_FINALIZE_UPGRADE_REQUEST__INIT;

    req.upgrade_client_id = (char *)(client_id != NULL ? client_id : "");
    req.require_scm_finalized = legacy;
    *out = NULL;
    return oz__om_service_call(c, &ozone__om__om_upgrade_service__descriptor,
                               "FinalizeUpgrade", &req.base,
                               (ProtobufCMessage **)out, err);
}

int oz_om_upgrade_status(struct oz_client *c,
                         bool with_peers,
                         Ozone__Om__OmQueryUpgradeStatusResponse **out,
                         struct oz_error *err)
{
    Ozone__Om__OmQueryUpgradeStatusRequest req =
        OZONE__OM__OM_QUERY_UPGRADE_STATUS_REQUEST__INIT;

    req.with_peers = with_peers;
    *out = NULL;
    return oz__om_service_call(c, &ozone__om__om_upgrade_service__descriptor,
                               "QueryUpgradeStatus", &req.base,
                               (ProtobufCMessage **)out, err);
}

int oz_upgrade_lease(struct oz_client *c,
                     const Ozone__Om__OmUpgradeLeaseRequest *req,
                     Ozone__Om__OmUpgradeLeaseResponse **out,
                     struct oz_error *err)
{
    /* The rpc layer stamps hdr in the message it sends: work on a shallow
     * copy so the caller's const request is never written to. */
    Ozone__Om__OmUpgradeLeaseRequest copy = *req;

    *out = NULL;
    copy.hdr = NULL;
    return oz__om_service_call(c, &ozone__om__om_upgrade_service__descriptor,
                               "UpgradeLease", &copy.base,
                               (ProtobufCMessage **)out, err);
}

int oz_upgrade_journal_append(struct oz_client *c,
                              const char *holder,
                              const Ozone__Om__OmUpgradeJournalEntry *const *e,
                              size_t n,
                              uint64_t *last_seq,
                              struct oz_error *err)
{
    Ozone__Om__OmUpgradeJournalAppendRequest req =
        OZONE__OM__OM_UPGRADE_JOURNAL_APPEND_REQUEST__INIT;
    Ozone__Om__OmUpgradeJournalAppendResponse *resp = NULL;
    int rc;

    if (last_seq != NULL) {
        *last_seq = 0;
    }
    req.holder = (char *)(holder != NULL ? holder : "");
    /* protobuf-c packs repeated fields without writing them. */
    req.entries = (Ozone__Om__OmUpgradeJournalEntry **)e;
    req.n_entries = n;
    rc = oz__om_service_call(c, &ozone__om__om_upgrade_service__descriptor,
                             "UpgradeJournalAppend", &req.base,
                             (ProtobufCMessage **)&resp, err);
    if (rc == 0 && last_seq != NULL) {
        *last_seq = resp->last_seq;
    }
    oz_client_free_msg(resp);
    return rc;
}

int oz_upgrade_journal_read(struct oz_client *c,
                            uint64_t after_seq,
                            uint32_t limit,
                            bool last_run,
                            Ozone__Om__OmUpgradeJournalReadResponse **out,
                            struct oz_error *err)
{
    Ozone__Om__OmUpgradeJournalReadRequest req =
        OZONE__OM__OM_UPGRADE_JOURNAL_READ_REQUEST__INIT;

    req.after_seq = after_seq;
    req.limit = limit;
    req.last_run = last_run;
    *out = NULL;
    return oz__om_service_call(c, &ozone__om__om_upgrade_service__descriptor,
                               "UpgradeJournalRead", &req.base,
                               (ProtobufCMessage **)out, err);
}
