/* consensus: snapshots and log purges on demand (consensus_snapshot_now in
 * consensus.h). Raft thread only.
 *
 * libraft 0.15 takes a snapshot only from its apply loop, when
 * last_applied - last snapshot index >= threshold, and then deletes the
 * closed segment files that end before (snapshot index - trailing + 1)
 * and drops the same entries from memory. It closes the open segments as
 * it stores a snapshot. So while a request waits this module sets the
 * threshold and the trailing amount to 1 (0 would mean "installing a
 * snapshot" to raft_uv, which then resets the next append index), and on
 * the leader appends a barrier entry per heartbeat to have something to
 * apply. Each snapshot closes the segments so far and deletes those
 * before it; the request is done once the in-memory log starts after the
 * index and no segment file on disk starts at or before it (the files are
 * listed: raft's own bookkeeping of them is private). Then the configured
 * threshold and trailing amount come back.
 *
 * Followers cannot append, so a leader that finished keeps appending
 * barriers for SNAPSHOT_ASSIST election timeouts: the other nodes asked to
 * purge up to the same index (the OM's prepare entry) get their entries
 * from it. */
#include "consensus.h"
#include "consensus_internal.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"

#define SNAPSHOT_ASSIST 5 /* election timeouts of barriers after a purge */

/* Oldest entry index held by a closed segment file in the raft dir
 * ("<first>-<last>", 16 digits each), 0 when there is none. Open
 * segments ("open-N") only hold entries appended after the last snapshot
 * closed the segments, so they never matter here. */
static uint64_t oldest_on_disk(struct consensus *c)
{
    DIR *dh = opendir(c->data_dir);
    struct dirent *e;
    uint64_t oldest = 0;

    if (dh == NULL) {
        log_warn("consensus '%s': cannot list '%s'", c->name, c->data_dir);
        return 1; /* unknown: not purged yet */
    }
    while ((e = readdir(dh)) != NULL) {
        unsigned long long first = 0, last = 0;
        int used = 0;
        if (strlen(e->d_name) == 33 &&
            sscanf(e->d_name, "%16llu-%16llu%n", &first, &last, &used) == 2 &&
            used == 33 && (oldest == 0 || first < oldest)) {
            oldest = first;
        }
    }
    closedir(dh);
    return oldest;
}

/* Whether the log holds no entry at or below index. */
static bool purged(struct consensus *c, uint64_t index)
{
    struct raft *r = &c->raft;

    if (r->log.offset < index || r->log.snapshot.last_index < index) {
        return false;
    }
    /* The files only change when a snapshot is stored: list them once
     * per snapshot. */
    if (c->snap_disk_index != r->log.snapshot.last_index) {
        c->snap_disk_index = r->log.snapshot.last_index;
        c->snap_disk_oldest = oldest_on_disk(c);
    }
    return c->snap_disk_oldest == 0 || c->snap_disk_oldest > index;
}

static uint64_t now_ms(struct consensus *c)
{
    return uv_now(&c->loop);
}

static void barrier_done(void *arg, int status)
{
    struct consensus *c = arg;

    (void)status;
    c->snap_barrier_busy = false;
}

/* Appends a barrier entry (leader only), at most one in flight and one
 * per heartbeat. */
static void append_barrier(struct consensus *c)
{
    struct op *op;

    if (c->snap_barrier_busy || c->in_apply ||
        raft_state(&c->raft) != RAFT_LEADER ||
        now_ms(c) < c->snap_barrier_ms + c->heartbeat_timeout_ms) {
        return;
    }
    op = consensus__op_new(c, OP_BARRIER);
    if (op == NULL) {
        return;
    }
    op->done_cb = barrier_done;
    op->arg = c;
    c->snap_barrier_busy = true;
    c->snap_barrier_ms = now_ms(c);
    consensus__dispatch(c, op); /* completes through barrier_done */
}

void consensus__snapshot_start(struct consensus *c, struct op *op)
{
    struct raft *r = &c->raft;

    if (op->id == 0) {
        op->id = raft_last_applied(r);
    }
    if (purged(c, op->id)) {
        consensus__op_complete(op, 0, 0, 0);
        return;
    }
    consensus__list_push(&c->snap_waiters, op);
    if (!c->snap_forcing) {
        c->snap_forcing = true;
        raft_set_snapshot_threshold(r, 1);
        raft_set_snapshot_trailing(r, 1);
        log_info("consensus '%s': purging the log up to index %" PRIu64
                 " (last applied %llu, snapshot at %llu)",
                 c->name, op->id, raft_last_applied(r),
                 r->log.snapshot.last_index);
    }
    consensus__snapshot_progress(c);
}

void consensus__snapshot_progress(struct consensus *c)
{
    struct raft *r = &c->raft;
    struct op_list keep = {NULL, NULL};
    struct op *op;

    if (!c->snap_forcing) {
        if (c->snap_assist_ms != 0 && now_ms(c) < c->snap_assist_ms) {
            append_barrier(c);
        } else {
            c->snap_assist_ms = 0;
        }
        return;
    }
    while ((op = consensus__list_pop(&c->snap_waiters)) != NULL) {
        if (purged(c, op->id)) {
            log_info("consensus '%s': log purged up to index %" PRIu64
                     " (snapshot at %llu, first entry kept %llu)",
                     c->name, op->id, r->log.snapshot.last_index,
                     r->log.offset + 1);
            consensus__op_complete(op, 0, 0, 0);
        } else {
            consensus__list_push(&keep, op);
        }
    }
    c->snap_waiters = keep;
    if (c->snap_waiters.head != NULL) {
        append_barrier(c);
        return;
    }
    c->snap_forcing = false;
    raft_set_snapshot_threshold(r, c->snapshot_threshold);
    raft_set_snapshot_trailing(r, c->snapshot_trailing);
    if (raft_state(r) == RAFT_LEADER) {
        c->snap_assist_ms =
            now_ms(c) + (uint64_t)SNAPSHOT_ASSIST * c->election_timeout_ms;
    }
}

void consensus__snapshot_cancel(struct consensus *c, int status)
{
    struct op *op;

    while ((op = consensus__list_pop(&c->snap_waiters)) != NULL) {
        consensus__op_complete(op, status, 0, 0);
    }
    if (c->snap_forcing) {
        c->snap_forcing = false;
        raft_set_snapshot_threshold(&c->raft, c->snapshot_threshold);
        raft_set_snapshot_trailing(&c->raft, c->snapshot_trailing);
    }
    c->snap_assist_ms = 0;
}
