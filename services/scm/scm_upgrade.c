/* HDDS finalization on SCM (DESIGN.md §6.5-§6.7) and the fencing of
 * datanodes by version (§6.6).
 *
 * FinalizeUpgrade (ScmUpgradeService, admin CLI or OM):
 *   1. invariant 2: every registered, non-DEAD datanode runs SCM's
 *      software version, else FINALIZE_REJECTED naming each laggard;
 *   2. SCM records, in one batch, the registered, non-DEAD datanodes it
 *      will wait for (SCM_META_FINALIZING_DNS) and who asked
 *      (SCM_META_FINALIZATION_REQUESTED_BY, kept afterwards: the status
 *      reports it, Recon journals it), then finalizes one version at a
 *      time through its version manager (ON_FINALIZE, VERSION,
 *      #LAYOUTVERSION via on_persist);
 *   3. the node health pass moves every datanode behind SCM's apparent
 *      version to HEALTHY_READONLY, which closes its pipelines (and so its
 *      open containers);
 *   4. each heartbeat response carries FINALIZE_UPGRADE to a datanode
 *      until its version header reports SCM's apparent version; STALE and
 *      DEAD datanodes get it when they heartbeat again.
 * A crash anywhere is safe: before 2 nothing changed (run the command
 * again); after 2 SCM restarts finalized and step 4 resumes by itself.
 * A restarted SCM knows no datanode until it registers, so the recorded
 * ones that have not registered yet hold "HDDS finalized" back (else the
 * OM would finalize before them, DESIGN.md §6.6 invariant 3) for as long
 * as a live datanode may stay silent: until it would be STALE.
 *
 * Fault points (common/fault.h): scm.finalize.before_start,
 * scm.finalize.after_persist, scm.finalize.before_dn_command, besides the
 * version manager's version.finalize.after_action/after_persist.
 *
 * Locking: upgrade_lock serialises FinalizeUpgrade; scm->lock is taken
 * inside it for node snapshots and the health pass, never across the
 * version manager's disk writes.
 */
#include "scm_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "log.h"
#include "metrics.h"

#define MAX_MESSAGES 8
#define MESSAGE_LEN 512

/* ---- fencing (pure) ---- */

enum scm_fence scm_fence_decide(unsigned scm_software,
                                unsigned scm_apparent,
                                unsigned dn_software,
                                unsigned dn_apparent)
{
    /* DESIGN.md §2.1 upgrade order: SCM before datanodes. */
    if (dn_software > scm_software) {
        return SCM_FENCE_UPGRADE_SCM_FIRST;
    }
    /* SCM finalized past what the datanode's bits can act as. */
    if (dn_software < scm_apparent) {
        return SCM_FENCE_UPGRADE_DATANODE;
    }
    /* Invariant 3: server finalizes before client. */
    if (dn_apparent > scm_apparent) {
        return SCM_FENCE_FINALIZE_SCM_FIRST;
    }
    return SCM_FENCE_OK;
}

void scm_fence_message(enum scm_fence f,
                       const char *uuid,
                       unsigned scm_software,
                       unsigned scm_apparent,
                       unsigned dn_software,
                       unsigned dn_apparent,
                       char *out,
                       size_t size)
{
    switch (f) {
        case SCM_FENCE_UPGRADE_SCM_FIRST:
            snprintf(out, size,
                     "datanode '%s' runs HDDS software version %u but SCM "
                     "runs %u: SCM must be upgraded before datanodes",
                     uuid, dn_software, scm_software);
            break;
        case SCM_FENCE_UPGRADE_DATANODE:
            snprintf(out, size,
                     "datanode '%s' runs HDDS software version %u but SCM "
                     "is finalized at apparent version %u: datanode must "
                     "be upgraded to join the cluster",
                     uuid, dn_software, scm_apparent);
            break;
        case SCM_FENCE_FINALIZE_SCM_FIRST:
            snprintf(out, size,
                     "datanode '%s' has HDDS apparent version %u but SCM "
                     "has %u: SCM must finalize before datanodes",
                     uuid, dn_apparent, scm_apparent);
            break;
        default:
            snprintf(out, size, "datanode '%s' is accepted", uuid);
            break;
    }
}

int scm__fence(struct scm *scm,
               const Ozone__VersionHeader *hdr,
               const char *uuid,
               struct scm_error *err)
{
    unsigned sw, ap;
    enum scm_fence f;

    if (scm->vm == NULL) {
        return 0;
    }
    sw = (unsigned)version_manager_software(scm->vm);
    ap = (unsigned)version_manager_apparent(scm->vm);
    f = scm_fence_decide(sw, ap, hdr->software_version, hdr->apparent_version);
    if (f == SCM_FENCE_OK) {
        return 0;
    }
    err->status = RPC_STATUS_FAILED_PRECONDITION;
    err->code = OZONE__RESULT_CODE__UPGRADE_ORDER_VIOLATION;
    scm_fence_message(f, uuid, sw, ap, hdr->software_version,
                      hdr->apparent_version, err->message,
                      sizeof(err->message));
    return OZ_EREFUSED;
}

/* ---- status aggregation (pure) ---- */

static void add_blocker(struct scm_upgrade_summary *out,
                        size_t *hidden,
                        const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

static void add_blocker(struct scm_upgrade_summary *out,
                        size_t *hidden,
                        const char *fmt,
                        ...)
{
    va_list ap;

    /* The last slot is kept for "and N more". */
    if (out->n_blockers + 1 >= SCM_UPGRADE_MAX_BLOCKERS) {
        (*hidden)++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(out->blockers[out->n_blockers++], SCM_UPGRADE_BLOCKER_LEN, fmt,
              ap);
    va_end(ap);
}

static bool healthy_ish(Ozone__Hdds__NodeState s)
{
    return s == OZONE__HDDS__NODE_STATE__HEALTHY ||
           s == OZONE__HDDS__NODE_STATE__HEALTHY_READONLY;
}

static const char *state_word(Ozone__Hdds__NodeState s)
{
    return scm__node_state_name(s);
}

void scm_upgrade_summarize(unsigned scm_software,
                           unsigned scm_apparent,
                           bool finalizing,
                           const struct scm_upgrade_node *nodes,
                           size_t n,
                           struct scm_upgrade_summary *out)
{
    bool scm_done = scm_apparent >= scm_software && !finalizing;
    bool dns_done = true;
    size_t hidden = 0;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        const struct scm_upgrade_node *d = &nodes[i];
        bool dead = d->state == OZONE__HDDS__NODE_STATE__DEAD;
        bool finalized = d->apparent >= scm_apparent;

        if (d->unseen) {
            /* Told (or about to be told) before SCM restarted: its
             * version is unknown until it registers again. */
            out->total++;
            if (scm_done) {
                dns_done = false;
                add_blocker(out, &hidden,
                            "datanode '%s' has not registered since SCM "
                            "started, finalizing to %u when it does",
                            d->uuid, scm_apparent);
            }
            continue;
        }
        if (!dead) {
            out->total++;
            out->finalized += finalized;
        }
        if (!scm_done) {
            /* Invariant 2 decides whether finalize may start. */
            if (!dead && d->software != scm_software) {
                add_blocker(out, &hidden,
                            "datanode '%s' runs software %u, needs %u", d->uuid,
                            d->software, scm_software);
            }
            continue;
        }
        if (finalized) {
            continue;
        }
        if (healthy_ish(d->state)) {
            dns_done = false;
            if (d->software < scm_apparent) {
                add_blocker(out, &hidden,
                            "datanode '%s' runs software %u, needs %u", d->uuid,
                            d->software, scm_apparent);
            } else {
                add_blocker(out, &hidden,
                            "datanode '%s' is %s at apparent version %u, "
                            "finalizing to %u on its next heartbeat",
                            d->uuid, state_word(d->state), d->apparent,
                            scm_apparent);
            }
        } else {
            add_blocker(out, &hidden,
                        "datanode '%s' is %s, will finalize when it returns",
                        d->uuid, state_word(d->state));
        }
    }
    if (hidden > 0) {
        snprintf(out->blockers[out->n_blockers++], SCM_UPGRADE_BLOCKER_LEN,
                 "and %zu more", hidden);
    }
    if (!scm_done) {
        out->status =
            finalizing
                ? OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_IN_PROGRESS
                : OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_REQUIRED;
    } else if (!dns_done) {
        out->status = OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_IN_PROGRESS;
    } else {
        out->status = OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_DONE;
    }
}

/* A summary of the live state. Takes scm->lock. */
static void summarize_now(struct scm *scm, struct scm_upgrade_summary *out)
{
    unsigned sw = (unsigned)version_manager_software(scm->vm);
    unsigned ap = (unsigned)version_manager_apparent(scm->vm);
    struct scm_upgrade_node *nodes;
    size_t n = 0;
    /* A datanode of the last finalization that has not registered since
     * SCM started holds DONE back for as long as a live one could stay
     * silent before it is STALE; from then on it is treated as one. */
    bool grace = oz_mono_ms() - scm->start_mono_ms < scm->cfg.stale_ms;

    pthread_mutex_lock(&scm->lock);
    nodes = calloc(scm->n_nodes + scm->n_finalizing_dns + 1, sizeof(*nodes));
    if (nodes == NULL) {
        pthread_mutex_unlock(&scm->lock);
        memset(out, 0, sizeof(*out));
        out->status = OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_IN_PROGRESS;
        return;
    }
    for (size_t i = 0; i < scm->n_nodes; i++, n++) {
        nodes[n].uuid = scm->nodes[i]->addr.uuid;
        nodes[n].state = scm->nodes[i]->state;
        nodes[n].software = scm->nodes[i]->software_version;
        nodes[n].apparent = scm->nodes[i]->apparent_version;
    }
    for (size_t i = 0; grace && i < scm->n_finalizing_dns; i++) {
        if (scm__node_find(scm, scm->finalizing_dns[i]) == NULL) {
            nodes[n].uuid = scm->finalizing_dns[i];
            nodes[n++].unseen = true;
        }
    }
    scm_upgrade_summarize(sw, ap, scm->finalizing, nodes, n, out);
    pthread_mutex_unlock(&scm->lock);
    free(nodes);
}

/* ---- the datanodes of a finalization (SCM_META_FINALIZING_DNS) and who
 * asked for it (SCM_META_FINALIZATION_REQUESTED_BY) ---- */

/* SCM_META_FINALIZATION_REQUESTED_BY into scm->finalization_requested_by:
 * text up to the first NUL, cut to the buffer ("" when absent). */
static int load_requested_by(struct scm *scm, char *errmsg)
{
    void *val = NULL;
    size_t len = 0;
    int rc = kv_get(scm->kv, scm->cf_meta, SCM_META_FINALIZATION_REQUESTED_BY,
                    strlen(SCM_META_FINALIZATION_REQUESTED_BY), &val, &len);

    scm->finalization_requested_by[0] = '\0';
    if (rc == OZ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot read '%s' from SCM table '%s': %s",
                         SCM_META_FINALIZATION_REQUESTED_BY, SCM_CF_META,
                         oz_strerror(rc));
        return rc;
    }
    const char *nul = memchr(val, '\0', len);
    size_t w = nul != NULL ? (size_t)(nul - (const char *)val) : len;
    if (w > SCM_REQUESTED_BY_MAX - 1) {
        w = SCM_REQUESTED_BY_MAX - 1;
    }
    memcpy(scm->finalization_requested_by, val, w);
    scm->finalization_requested_by[w] = '\0';
    free(val);
    return 0;
}

/* The list is stored as uuids separated by newlines. A datanode leaves it
 * when it reports SCM's apparent version; the key goes with the last. */

int scm__upgrade_load(struct scm *scm, char *errmsg)
{
    void *val = NULL;
    size_t len = 0;
    size_t n = 0;
    int rc = load_requested_by(scm, errmsg);

    scm->finalizing_dns = NULL;
    scm->n_finalizing_dns = 0;
    if (rc != 0) {
        return rc;
    }
    rc = kv_get(scm->kv, scm->cf_meta, SCM_META_FINALIZING_DNS,
                strlen(SCM_META_FINALIZING_DNS), &val, &len);
    if (rc == OZ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        oz_errmsg_printf(errmsg, "cannot read '%s' from SCM table '%s': %s",
                         SCM_META_FINALIZING_DNS, SCM_CF_META, oz_strerror(rc));
        return rc;
    }
    size_t count = len > 0 ? 1 : 0;
    for (size_t i = 0; i < len; i++) {
        count += ((const char *)val)[i] == '\n';
    }
    if (count > SCM_FINALIZING_DNS_MAX) {
        oz_errmsg_printf(errmsg,
                         "corrupt '%s' in SCM table '%s': %zu entries, at "
                         "most %d; restore the SCM metadata DB from a backup",
                         SCM_META_FINALIZING_DNS, SCM_CF_META, count,
                         SCM_FINALIZING_DNS_MAX);
        free(val);
        return OZ_ECORRUPT;
    }
    char(*list)[SCM_ID_MAX] = calloc(count + 1, sizeof(*list));
    if (list == NULL) {
        free(val);
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    const char *p = val, *end = (const char *)val + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t w = (size_t)((nl != NULL ? nl : end) - p);
        if (w == 0 || w >= SCM_ID_MAX || memchr(p, '\0', w) != NULL) {
            oz_errmsg_printf(errmsg,
                             "corrupt '%s' in SCM table '%s' (entry %zu): "
                             "restore the SCM metadata DB from a backup",
                             SCM_META_FINALIZING_DNS, SCM_CF_META, n + 1);
            free(list);
            free(val);
            return OZ_ECORRUPT;
        }
        memcpy(list[n++], p, w);
        p += w + 1;
    }
    free(val);
    scm->finalizing_dns = list;
    scm->n_finalizing_dns = n;
    if (n > 0) {
        log_info(
            "%zu datanodes of the last finalization have not reported SCM's "
            "apparent version yet: HDDS is not finalized before they "
            "register (or would be STALE)",
            n);
    }
    return 0;
}

/* Records the registered, non-DEAD datanodes as those finalization waits
 * for, and who asked for it, in one durable batch before SCM persists its
 * own finalization. */
static int record_finalization_start(struct scm *scm,
                                     const char *who,
                                     char *errmsg)
{
    size_t who_len = strnlen(who, SCM_REQUESTED_BY_MAX - 1);
    char(*list)[SCM_ID_MAX] = NULL;
    char *text = NULL;
    size_t n = 0, len = 0;
    int rc = 0;

    pthread_mutex_lock(&scm->lock);
    size_t cap = scm->n_nodes < SCM_FINALIZING_DNS_MAX ? scm->n_nodes
                                                       : SCM_FINALIZING_DNS_MAX;
    list = calloc(cap + 1, sizeof(*list));
    text = malloc((cap + 1) * SCM_ID_MAX);
    for (size_t i = 0; list != NULL && text != NULL && i < scm->n_nodes; i++) {
        const struct scm_node *d = scm->nodes[i];
        if (d->state == OZONE__HDDS__NODE_STATE__DEAD || n == cap) {
            continue;
        }
        size_t w = strlen(d->addr.uuid);
        memcpy(list[n++], d->addr.uuid, w);
        memcpy(text + len, d->addr.uuid, w);
        len += w;
        text[len++] = '\n';
    }
    pthread_mutex_unlock(&scm->lock);
    if (list == NULL || text == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        rc = OZ_ENOMEM;
        goto out;
    }
    struct kv_batch *b = kv_batch_new();
    if (b == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        rc = OZ_ENOMEM;
        goto out;
    }
    if (n > 0) {
        kv_batch_put(b, scm->cf_meta, SCM_META_FINALIZING_DNS,
                     strlen(SCM_META_FINALIZING_DNS), text, len - 1);
    } else {
        kv_batch_delete(b, scm->cf_meta, SCM_META_FINALIZING_DNS,
                        strlen(SCM_META_FINALIZING_DNS));
    }
    kv_batch_put(b, scm->cf_meta, SCM_META_FINALIZATION_REQUESTED_BY,
                 strlen(SCM_META_FINALIZATION_REQUESTED_BY), who, who_len);
    rc = kv_write(scm->kv, b, true, errmsg);
    kv_batch_free(b);
    if (rc != 0) {
        oz_errmsg_wrapf(errmsg, "cannot record the datanodes to finalize");
        goto out;
    }
    pthread_mutex_lock(&scm->lock);
    free(scm->finalizing_dns);
    scm->finalizing_dns = list;
    scm->n_finalizing_dns = n;
    memcpy(scm->finalization_requested_by, who, who_len);
    scm->finalization_requested_by[who_len] = '\0';
    pthread_mutex_unlock(&scm->lock);
    list = NULL;
out:
    free(list);
    free(text);
    return rc;
}

/* Under the lock: uuid reported SCM's apparent version. */
static void forget_finalizing_dn(struct scm *scm, const char *uuid)
{
    for (size_t i = 0; i < scm->n_finalizing_dns; i++) {
        if (strcmp(scm->finalizing_dns[i], uuid) != 0) {
            continue;
        }
        scm->n_finalizing_dns--;
        memmove(scm->finalizing_dns[i],
                scm->finalizing_dns[scm->n_finalizing_dns], SCM_ID_MAX);
        if (scm->n_finalizing_dns == 0) {
            /* Not synced: if lost, the datanodes leave the list again
             * as they register. */
            kv_delete(scm->kv, scm->cf_meta, SCM_META_FINALIZING_DNS,
                      strlen(SCM_META_FINALIZING_DNS));
            log_info(
                "every datanode of the finalization reported HDDS apparent "
                "version %d",
                version_manager_apparent(scm->vm));
        }
        return;
    }
}

/* ---- heartbeat commands ---- */

void scm__emit_finalize(struct scm *scm,
                        struct scm_node *n,
                        scm_emit_fn emit,
                        void *emit_ctx)
{
    struct scm_command c;
    unsigned ap;

    if (scm->vm == NULL || scm->finalizing) {
        return;
    }
    ap = (unsigned)version_manager_apparent(scm->vm);
    if (n->apparent_version >= ap) {
        n->finalize_told = 0;
        if (ap >= (unsigned)version_manager_software(scm->vm)) {
            forget_finalizing_dn(scm, n->addr.uuid);
        }
        return;
    }
    if (fault_hit("scm.finalize.before_dn_command") != 0) {
        return; /* an "error" fault: this heartbeat goes without it */
    }
    if (n->finalize_told != ap) {
        log_info(
            "telling datanode '%s' to finalize: HDDS apparent version %u -> "
            "%u (FINALIZE_UPGRADE, sent on every heartbeat until it "
            "reports %u)",
            n->addr.uuid, n->apparent_version, ap, ap);
        n->finalize_told = ap;
    }
    memset(&c, 0, sizeof(c));
    c.type = OZONE__SCM__COMMAND_TYPE__FINALIZE_UPGRADE;
    c.id = scm->next_command_id++;
    c.target_version = ap;
    emit(emit_ctx, &c, NULL);
}

/* ---- FinalizeUpgrade ---- */

struct finalize_result
{
    struct scm_upgrade_summary sum;
    char messages[MAX_MESSAGES][MESSAGE_LEN];
    size_t n_messages;
};

static void say(struct finalize_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(struct finalize_result *r, const char *fmt, ...)
{
    va_list ap;

    if (r->n_messages >= MAX_MESSAGES) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(r->messages[r->n_messages++], MESSAGE_LEN, fmt, ap);
    va_end(ap);
}

/* The invariant-2 refusal, or 0. Takes scm->lock. */
static int check_laggards(struct scm *scm,
                          unsigned software,
                          struct scm_error *err)
{
    size_t pos, laggards = 0;

    pos = (size_t)snprintf(err->message, sizeof(err->message),
                           "finalize refused: ");
    pthread_mutex_lock(&scm->lock);
    for (size_t i = 0; i < scm->n_nodes; i++) {
        const struct scm_node *n = scm->nodes[i];
        if (n->state == OZONE__HDDS__NODE_STATE__DEAD ||
            n->software_version == software) {
            continue;
        }
        if (pos < sizeof(err->message)) {
            int w =
                snprintf(err->message + pos, sizeof(err->message) - pos,
                         "%sdatanode '%s' runs software version %u, needs %u",
                         laggards > 0 ? "; " : "", n->addr.uuid,
                         n->software_version, software);
            pos += w > 0 ? (size_t)w : 0;
        }
        laggards++;
    }
    pthread_mutex_unlock(&scm->lock);
    if (laggards == 0) {
        return 0;
    }
    if (pos < sizeof(err->message)) {
        snprintf(err->message + pos, sizeof(err->message) - pos,
                 " (DESIGN invariant 2: upgrade every datanode to the new "
                 "release first)");
    }
    err->status = RPC_STATUS_FAILED_PRECONDITION;
    err->code = OZONE__RESULT_CODE__FINALIZE_REJECTED;
    return OZ_EREFUSED;
}

static void set_finalizing(struct scm *scm, bool on)
{
    pthread_mutex_lock(&scm->lock);
    scm->finalizing = on;
    pthread_mutex_unlock(&scm->lock);
}

static int finalize(struct scm *scm,
                    const char *who,
                    struct finalize_result *r,
                    struct scm_error *err)
{
    struct version_manager *vm = scm->vm;
    unsigned sw = (unsigned)version_manager_software(vm);
    unsigned ap = (unsigned)version_manager_apparent(vm);
    char from[96], to[96];
    char errmsg[OZ_ERRMSG_SIZE] = "";
    int rc;

    summarize_now(scm, &r->sum);
    if (ap >= sw &&
        r->sum.status == OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_DONE) {
        r->sum.status = OZONE__SCM__FINALIZATION_STATUS__ALREADY_FINALIZED;
        say(r,
            "SCM and every datanode are already finalized at HDDS "
            "apparent version %u",
            ap);
        log_info("finalize requested by '%s': already finalized at %u", who,
                 ap);
        return 0;
    }
    if (ap < sw) {
        rc = check_laggards(scm, sw, err);
        if (rc != 0) {
            log_warn("finalize requested by '%s' refused: %s", who,
                     err->message);
            return rc;
        }
        version_manager_describe(vm, (int)ap, from, sizeof(from));
        version_manager_describe(vm, (int)sw, to, sizeof(to));
        log_info("finalize requested by '%s': SCM HDDS %s -> %s", who, from,
                 to);
        if (fault_hit("scm.finalize.before_start") != 0) {
            scm__error(err, RPC_STATUS_INTERNAL,
                       OZONE__RESULT_CODE__INTERNAL_ERROR,
                       "finalize interrupted before it started (fault "
                       "'scm.finalize.before_start'); run it again");
            return OZ_EFAULT;
        }
        set_finalizing(scm, true);
        /* Before SCM's own VERSION moves: a restart must still know whom
         * to wait for (no datanode is registered right after it). */
        rc = record_finalization_start(scm, who, errmsg);
        if (rc != 0) {
            set_finalizing(scm, false);
            scm__error(err, RPC_STATUS_INTERNAL,
                       OZONE__RESULT_CODE__INTERNAL_ERROR,
                       "cannot finalize SCM (apparent version stays %u; run "
                       "finalize again): %s",
                       ap, errmsg);
            return rc;
        }
        say(r, "Finalizing SCM: HDDS apparent version %s -> %s", from, to);
        rc = version_manager_finalize(vm, (int)sw, errmsg);
        set_finalizing(scm, false);
        if (rc != 0) {
            scm__error(err, RPC_STATUS_INTERNAL,
                       OZONE__RESULT_CODE__INTERNAL_ERROR,
                       "cannot finalize SCM (apparent version stays %d; run "
                       "finalize again): %s",
                       version_manager_apparent(vm), errmsg);
            return rc;
        }
        if (fault_hit("scm.finalize.after_persist") != 0) {
            scm__error(err, RPC_STATUS_INTERNAL,
                       OZONE__RESULT_CODE__INTERNAL_ERROR,
                       "SCM finalized but the command was interrupted (fault "
                       "'scm.finalize.after_persist'); datanodes finalize "
                       "anyway, check with 'ozone admin upgrade status'");
            return OZ_EFAULT;
        }
        say(r, "SCM finalized: HDDS apparent version %s", to);
    } else {
        say(r,
            "SCM is already finalized at HDDS apparent version %u; "
            "waiting for datanodes",
            ap);
    }
    /* Datanodes behind SCM become HEALTHY_READONLY now, not at the next
     * tick: no new block may land on them (DESIGN.md §6.7 step 4). */
    pthread_mutex_lock(&scm->lock);
    scm__nodes_tick(scm, oz_mono_ms());
    pthread_mutex_unlock(&scm->lock);
    summarize_now(scm, &r->sum);
    say(r,
        "Datanodes finalize on their next heartbeat (FINALIZE_UPGRADE): "
        "%u/%u finalized",
        r->sum.finalized, r->sum.total);
    return 0;
}

/* ---- ScmUpgradeService ---- */

static Ozone__Scm__UpgradeStatus *status_msg(
    struct rpc_call *call,
    struct scm *scm,
    const struct scm_upgrade_summary *s)
{
    Ozone__Scm__UpgradeStatus *m = rpc_call_alloc(call, sizeof(*m));
    unsigned ap = (unsigned)version_manager_apparent(scm->vm);

    ozone__scm__upgrade_status__init(m);
    m->status = s->status;
    m->software_version = (uint32_t)version_manager_software(scm->vm);
    m->apparent_version = ap;
    m->datanodes_finalized = s->finalized;
    m->datanodes_total = s->total;
    m->n_blockers = s->n_blockers;
    m->blockers = rpc_call_alloc(call, sizeof(char *) * (s->n_blockers + 1));
    for (size_t i = 0; i < s->n_blockers; i++) {
        m->blockers[i] = rpc_call_strdup(call, s->blockers[i]);
    }
    pthread_mutex_lock(&scm->lock);
    m->finalization_requested_by =
        rpc_call_strdup(call, scm->finalization_requested_by);
    m->datanodes =
        rpc_call_alloc(call, sizeof(*m->datanodes) * (scm->n_nodes + 1));
    for (size_t i = 0; i < scm->n_nodes; i++) {
        const struct scm_node *n = scm->nodes[i];
        Ozone__Scm__DatanodeUpgradeInfo *d = rpc_call_alloc(call, sizeof(*d));
        ozone__scm__datanode_upgrade_info__init(d);
        d->uuid = rpc_call_strdup(call, n->addr.uuid);
        d->state = n->state;
        d->software_version = n->software_version;
        d->apparent_version = n->apparent_version;
        d->finalized = n->apparent_version >= ap;
        m->datanodes[m->n_datanodes++] = d;
    }
    pthread_mutex_unlock(&scm->lock);
    return m;
}

static enum rpc_handler_result handle_finalize(void *data,
                                               struct rpc_call *call,
                                               const ProtobufCMessage *req_msg,
                                               ProtobufCMessage *resp_msg)
{
    struct scm *scm = data;
    const Ozone__Scm__FinalizeUpgradeRequest *req =
        (const Ozone__Scm__FinalizeUpgradeRequest *)req_msg;
    Ozone__Scm__FinalizeUpgradeResponse *resp =
        (Ozone__Scm__FinalizeUpgradeResponse *)resp_msg;
    const Ozone__VersionHeader *peer = rpc_call_peer(call);
    struct finalize_result *r = calloc(1, sizeof(*r));
    struct scm_error err;
    char who[192];
    int rc;

    if (r == NULL) {
        rpc_call_set_error(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                           OZONE__RESULT_CODE__INTERNAL_ERROR, NULL,
                           "out of memory");
        return RPC_HANDLER_DONE;
    }
    snprintf(
        who, sizeof(who), "%s %s%s%s", rpc_component_name(peer->component),
        peer->node_id != NULL ? peer->node_id : "",
        req->upgrade_client_id != NULL && req->upgrade_client_id[0] ? "/" : "",
        req->upgrade_client_id != NULL ? req->upgrade_client_id : "");
    pthread_mutex_lock(&scm->upgrade_lock);
    rc = finalize(scm, who, r, &err);
    pthread_mutex_unlock(&scm->upgrade_lock);
    if (rc != 0) {
        rpc_call_set_error(call, err.status, err.code, NULL, "%s", err.message);
        free(r);
        return RPC_HANDLER_DONE;
    }
    resp->status = status_msg(call, scm, &r->sum);
    resp->n_messages = r->n_messages;
    resp->messages = rpc_call_alloc(call, sizeof(char *) * (r->n_messages + 1));
    for (size_t i = 0; i < r->n_messages; i++) {
        resp->messages[i] = rpc_call_strdup(call, r->messages[i]);
    }
    free(r);
    return RPC_HANDLER_DONE;
}

static enum rpc_handler_result handle_query(void *data,
                                            struct rpc_call *call,
                                            const ProtobufCMessage *req_msg,
                                            ProtobufCMessage *resp_msg)
{
    struct scm *scm = data;
    Ozone__Scm__QueryUpgradeStatusResponse *resp =
        (Ozone__Scm__QueryUpgradeStatusResponse *)resp_msg;
    struct scm_upgrade_summary *s = malloc(sizeof(*s));

    (void)req_msg;
    if (s == NULL) {
        rpc_call_set_error(call, RPC_STATUS_RESOURCE_EXHAUSTED,
                           OZONE__RESULT_CODE__INTERNAL_ERROR, NULL,
                           "out of memory");
        return RPC_HANDLER_DONE;
    }
    summarize_now(scm, s);
    resp->status = status_msg(call, scm, s);
    free(s);
    return RPC_HANDLER_DONE;
}

/* In the order of the methods in scm.proto. */
static const rpc_handler_fn upgrade_handlers[] = {handle_finalize,
                                                  handle_query};

int scm_upgrade_register(struct scm *scm, struct rpc_server *srv, char *errmsg)
{
    const ProtobufCServiceDescriptor *svc =
        &ozone__scm__scm_upgrade_service__descriptor;

    if (svc->n_methods != 2 ||
        strcmp(svc->methods[0].name, "FinalizeUpgrade") != 0) {
        oz_errmsg_printf(errmsg,
                         "ScmUpgradeService in scm.proto changed: update "
                         "services/scm/scm_upgrade.c");
        return OZ_EINVAL;
    }
    return rpc_server_add_service(srv, svc, upgrade_handlers, scm, errmsg);
}

/* ---- metrics (DESIGN.md §12) ---- */

static double gauge_in_progress(void *ctx)
{
    struct scm_upgrade_summary *s = malloc(sizeof(*s));
    double v;

    if (s == NULL) {
        return 0;
    }
    summarize_now(ctx, s);
    v = s->status == OZONE__SCM__FINALIZATION_STATUS__FINALIZATION_IN_PROGRESS;
    free(s);
    return v;
}

static double gauge_count(struct scm *scm, bool finalized_only)
{
    unsigned ap = (unsigned)version_manager_apparent(scm->vm);
    size_t count = 0;

    pthread_mutex_lock(&scm->lock);
    for (size_t i = 0; i < scm->n_nodes; i++) {
        const struct scm_node *n = scm->nodes[i];
        if (n->state != OZONE__HDDS__NODE_STATE__DEAD &&
            (!finalized_only || n->apparent_version >= ap)) {
            count++;
        }
    }
    pthread_mutex_unlock(&scm->lock);
    return (double)count;
}

static double gauge_finalized(void *ctx)
{
    return gauge_count(ctx, true);
}

static double gauge_total(void *ctx)
{
    return gauge_count(ctx, false);
}

void scm_upgrade_register_metrics(struct scm *scm)
{
    metrics_register_fn("ozone_finalization_in_progress", "component=\"SCM\"",
                        "1 while SCM is finalized and some healthy datanode "
                        "is not yet (or SCM itself is finalizing)",
                        gauge_in_progress, scm);
    metrics_register_fn("ozone_scm_datanodes_finalized", "",
                        "registered, non-dead datanodes whose apparent "
                        "version equals SCM's",
                        gauge_finalized, scm);
    metrics_register_fn("ozone_scm_datanodes_total", "",
                        "registered, non-dead datanodes", gauge_total, scm);
}
