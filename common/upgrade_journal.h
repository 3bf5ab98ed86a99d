/* upgrade_journal: reading the rolling-upgrade orchestrator's journal kept
 * in OM (issue 7; proto/om.proto OmUpgradeJournalReadResponse): the run
 * state, the step a run stands at, what to do next, and the JSON shapes
 * that `ozone admin upgrade journal|status` and Recon's /api/v1/upgrade
 * share (docs/cli.md, docs/recon.md).
 *
 * Pure functions over a decoded response; nothing here talks to OM.
 */
#ifndef OZONE_UPGRADE_JOURNAL_H
#define OZONE_UPGRADE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "om.pb-c.h"

/* Where the newest run stands. Pointers are borrowed from the response
 * summarized and valid as long as it is. */
struct upgrade_journal_summary
{
    /* NONE (no entry), RUNNING, PAUSED, DONE, ROLLED_BACK, FAILED: the
     * status of the newest run-level entry (action "run") of the newest
     * run, BEGIN read as RUNNING; RUNNING when the run has entries but no
     * run-level one. */
    const char *state;
    const char *run_id; /* newest entry's run; "" when none */
    const Ozone__Om__OmUpgradeJournalEntry *newest; /* NULL when empty */
    /* Newest entry of the run with step > 0 (the step it stands at). */
    const Ozone__Om__OmUpgradeJournalEntry *step_entry;
    const char *backend; /* newest non-empty of the run; "" */
    const char *to_bin;  /* the run's BEGIN to_bin, else newest non-empty */
    const Ozone__Om__OmUpgradeLease *lease; /* NULL when none */
    bool lease_live;    /* lease held at the response's now_ms */
    bool lease_is_runs; /* the lease is held for this run */
};

/* Joins the pages of one paged read (in order) into view: every page's
 * entries (borrowed), the first page's lease and now_ms. view->entries is
 * malloc'd: free with upgrade_journal_view_release (the pages stay the
 * caller's). 0 or OZ_ENOMEM. */
int upgrade_journal_view(Ozone__Om__OmUpgradeJournalReadResponse *const *pages,
                         size_t n_pages,
                         Ozone__Om__OmUpgradeJournalReadResponse *view);
void upgrade_journal_view_release(
    Ozone__Om__OmUpgradeJournalReadResponse *view);

/* Fills out from r (entries oldest first, as OM returns them). */
void upgrade_journal_summarize(const Ozone__Om__OmUpgradeJournalReadResponse *r,
                               struct upgrade_journal_summary *out);

/* One sentence: what an operator does next in state s ("" for NONE). */
const char *upgrade_journal_next(const struct upgrade_journal_summary *s);

/* ms since the epoch as "2026-11-22T08:01:02Z" into buf; returns buf. */
const char *upgrade_journal_time(uint64_t ms, char *buf, size_t size);

/* {"seq","timeMs","time","runId","holder","step","steps","node","kind",
 * "action","status","detail","fromBin","toBin","backend"}. Caller owns
 * the result (NULL on OOM). */
cJSON *upgrade_journal_entry_json(const Ozone__Om__OmUpgradeJournalEntry *e);
/* {"holder","host","pid","runId","acquiredMs","expiresMs","expired",
 * "expiresInMs"} judged at now_ms, or a JSON null when l is NULL. */
cJSON *upgrade_journal_lease_json(const Ozone__Om__OmUpgradeLease *l,
                                  uint64_t now_ms);
/* The "rollingUpgrade" object: {"available": true, "runId", "state",
 * "step", "steps", "node", "kind", "action", "status", "detail",
 * "backend", "toBin", "lease", "next"} of s, judged at now_ms. */
cJSON *upgrade_journal_summary_json(const struct upgrade_journal_summary *s,
                                    uint64_t now_ms);

#endif
