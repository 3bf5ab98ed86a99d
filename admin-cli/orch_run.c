/* orch_run.c: `ozone admin upgrade run` executes a plan step by step under
 * the OM's upgrade lease, journals every event in OM, and continues a
 * paused run (--resume) or undoes it (--rollback). docs/
 * upgrade-orchestrator.md has the operator's view; orch.h the pieces.
 *
 * A step (DESIGN.md §2.1 order; one node down at a time):
 *
 *   precheck   inspect + orch_cluster_healthy (retried for a short while:
 *              a node that just came back may still be catching up)
 *   transfer   an OM that leads hands leadership to the most caught-up
 *              follower already on the new bits, and the new leader must
 *              be established (DESIGN.md §8: a planned stop of the leader
 *              transfers leadership first)
 *   stop       backend stop (SIGTERM drains, DESIGN.md §4)
 *   swap       from_bin (the backend's record) -> to_bin, journaled before
 *              the start so a crash here still knows what to restore
 *   start      backend start on to_bin
 *   wait       the node answers with the target versions and has rejoined
 *              (DN HEALTHY in SCM; OM in the ring within max_om_lag; SCM:
 *              its datanodes HEALTHY again and a pipeline OPEN)
 *   dwell      the gate window
 *   check      orch_cluster_healthy again
 *   gate       orch_gate_eval over the /prom deltas since before the stop
 *
 * A new binary that does not start, or does not come back within the step
 * timeout, is undone at once (the node restarts on from_bin) and the run
 * pauses; a failed check or gate pauses with the node on the new bits.
 * Pausing journals run PAUSED, releases the lease and exits 3.
 *
 * Threading: the main thread runs the steps. One keeper thread owns the
 * OM traffic of the lease and the journal: it renews the lease every
 * ttl/3 and flushes queued journal entries in order. Entries are queued,
 * never sent from the main thread, so a step never waits for a journal
 * write and nothing is lost while the only OM is the node being restarted
 * (the queue drains as soon as it answers). The two share struct keeper
 * under its mutex; the main thread reads lease_lost between actions.
 *
 * Signals: SIGINT/SIGTERM set a flag read between actions; an action in
 * progress is finished (a stopped node is always started and waited for)
 * before the run pauses. Backend commands run in their own process group
 * (orch_backend.c), so Ctrl-C does not cut them short.
 *
 * Why one file past 1500 lines: the sections (the keeper, events, the
 * journal of the last run, waiting, one step, lease and pause, rolling
 * forward, rolling back, the command) all work on struct run, which the
 * orch.h contract keeps private to this file; the keeper and the journal
 * reading are the first to move out if it grows.
 */
#include "clock.h"
#include "orch.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "client_upgrade.h"
#include "cmd_om.h"
#include "conf.h"
#include "err.h"

/* Entries sent per UpgradeJournalAppend. */
#define JOURNAL_BATCH 64
/* Queued entries are bounded (~3 KiB each); a run writes ~10 per step,
 * so this is hours of an unreachable OM. */
#define JOURNAL_QUEUE_MAX 10000
/* The keeper looks at its queue at least this often. */
#define KEEPER_TICK_MS 500
/* What the final flush waits for before the lease is released. */
#define DRAIN_MS 60000
/* How long a step waits for its journal entries before a stop. */
#define FENCE_MS 10000
/* How long a precheck waits for a cluster that is catching up. */
#define PRECHECK_MS 30000
#define POLL_MS 1000
#define JOURNAL_READ_LIMIT 1000
#define JOURNAL_READ_PAGES 100

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static long now_ms(void)
{
    return (long)oz_mono_ms();
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL); /* a signal ends it early: callers re-check */
}

/* The first line of a backend message, without the log tail it may end
 * with ("; last lines of ..."). */
static void first_line(const char *s, char *out, size_t size)
{
    size_t n = strcspn(s, "\n");
    const char *tail = strstr(s, "; last lines of");

    if (tail != NULL && (size_t)(tail - s) < n) {
        n = (size_t)(tail - s);
    }
    snprintf(out, size, "%.*s", (int)n, s);
}

/* "1h 2m 3s", "1m 20s", "45s", "800ms". */
static void fmt_duration(long ms, char *out, size_t size)
{
    long s = ms / 1000;

    if (ms < 1000) {
        snprintf(out, size, "%ldms", ms);
    } else if (s < 60) {
        snprintf(out, size, "%lds", s);
    } else if (s < 3600) {
        snprintf(out, size, "%ldm %lds", s / 60, s % 60);
    } else {
        snprintf(out, size, "%ldh %ldm %lds", s / 3600, (s % 3600) / 60,
                 s % 60);
    }
}

/* ---- the journal queue and the lease keeper ---- */

struct jentry
{
    unsigned step;
    char node[ORCH_NAME_SIZE];
    char kind[16];
    char action[16];
    char status[16];
    char detail[ORCH_MSG_SIZE];
    char from_bin[ORCH_PATH_SIZE];
    char to_bin[ORCH_PATH_SIZE];
};

struct keeper
{
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct jentry *q; /* FIFO: q[head .. n) */
    size_t head, n, cap;
    bool stop;
    unsigned steps;
    atomic_bool lease_lost;
    char lost_msg[1024];
    struct oz_client *om;
    /* Read-only after start. */
    struct cli *cli;
    char holder[160];
    char host[128];
    char run_id[48];
    char backend[16];
    long ttl_ms;
};

/* Everything one `upgrade run` needs. */
struct run
{
    struct cli *cli;
    struct orch_options o;
    struct orch_backend *b;
    char backend[16];
    struct orch_target target; /* the roll's new binary */
    bool rollback, resume, force;
    bool continuing;       /* a new `run` continues the last, unfinished run */
    struct orch_cluster c; /* the newest inspection */
    unsigned n_steps;
    struct keeper k;
    long t0;
    /* From the journal of the last run. */
    struct history *h;
    char why[ORCH_ERRMSG_SIZE]; /* why the last step did not end OK */
};

/* What the last run's journal says. */
struct hist_node
{
    char node[ORCH_NAME_SIZE];
    char kind[16];
    char from_bin[ORCH_PATH_SIZE]; /* of its first forward swap */
    bool done;                     /* its forward step ended OK */
    bool open; /* its forward step began and did not end OK */
};

struct history
{
    bool found;
    char run_id[48];
    char backend[16];
    char to_bin[ORCH_PATH_SIZE];
    char end_status[16]; /* status of its newest run-level entry */
    char end_detail[ORCH_MSG_SIZE];
    struct hist_node *nodes;
    size_t n;
    /* The lease as OM saw it when read. */
    bool lease_live;
    char lease_holder[160];
    char lease_host[128];
    uint32_t lease_pid;
    char lease_run[48];
    uint64_t lease_left_ms; /* until it expires unless renewed */
    /* First page, for orch_plan_build's measured estimates. */
    Ozone__Om__OmUpgradeJournalReadResponse *page;
};

static void fill_entry(Ozone__Om__OmUpgradeJournalEntry *pe,
                       const struct keeper *k,
                       const struct jentry *e)
{
    ozone__om__om_upgrade_journal_entry__init(pe);
    pe->run_id = (char *)k->run_id;
    pe->holder = (char *)k->holder;
    pe->step = e->step;
    pe->steps = k->steps;
    pe->node = (char *)e->node;
    pe->kind = (char *)e->kind;
    pe->action = (char *)e->action;
    pe->status = (char *)e->status;
    pe->detail = (char *)e->detail;
    pe->from_bin = (char *)e->from_bin;
    pe->to_bin = (char *)e->to_bin;
    pe->backend = (char *)k->backend;
}

static int lease_call(struct keeper *k,
                      Ozone__Om__OmLeaseAction action,
                      const char *takeover_from,
                      struct oz_error *err)
{
    Ozone__Om__OmUpgradeLeaseRequest req =
        OZONE__OM__OM_UPGRADE_LEASE_REQUEST__INIT;
    Ozone__Om__OmUpgradeLeaseResponse *resp = NULL;
    int rc;

    req.action = action;
    req.holder = k->holder;
    req.host = k->host;
    req.pid = (uint32_t)getpid();
    req.run_id = k->run_id;
    req.ttl_ms = (uint64_t)k->ttl_ms;
    req.takeover_from = (char *)(takeover_from != NULL ? takeover_from : "");
    memset(err, 0, sizeof(*err));
    rc = oz_upgrade_lease(k->om, &req, &resp, err);
    oz_client_free_msg(resp);
    return rc;
}

/* UPGRADE_LEASE_LOST: when the record still names us, the lease only
 * expired (the only OM was down longer than the TTL, say) and nobody took
 * it since, as any acquire would have replaced the record: take it again.
 * Otherwise it is lost for good. Keeper thread only. */
static void lease_lost_or_expired(struct keeper *k, const struct oz_error *e)
{
    Ozone__Om__OmUpgradeJournalReadResponse *r = NULL;
    struct oz_error err;
    bool ours = false;

    memset(&err, 0, sizeof(err));
    if (oz_upgrade_journal_read(k->om, UINT64_MAX - 1, 1, false, &r, &err) ==
        0) {
        ours = r->lease != NULL && r->lease->holder != NULL &&
               strcmp(r->lease->holder, k->holder) == 0;
        oz_client_free_msg(r);
    }
    if (ours && lease_call(k, OZONE__OM__OM_LEASE_ACTION__LEASE_ACQUIRE, NULL,
                           &err) == 0) {
        fprintf(stderr,
                "ozone: upgrade lease of '%s' had expired while OM was "
                "unreachable; nobody took it, acquired it again\n",
                k->holder);
        return;
    }
    pthread_mutex_lock(&k->mu);
    snprintf(k->lost_msg, sizeof(k->lost_msg), "%s", e->message);
    atomic_store(&k->lease_lost, true);
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* Sends up to JOURNAL_BATCH queued entries; removes them on success.
 * Called with k->mu held; drops it during the call. true when entries
 * were sent. */
static bool flush_batch(struct keeper *k)
{
    Ozone__Om__OmUpgradeJournalEntry pe[JOURNAL_BATCH];
    const Ozone__Om__OmUpgradeJournalEntry *ptr[JOURNAL_BATCH];
    struct jentry *batch;
    size_t n = k->n - k->head;
    struct oz_error err;
    int rc;

    if (n == 0 || atomic_load(&k->lease_lost)) {
        return false;
    }
    if (n > JOURNAL_BATCH) {
        n = JOURNAL_BATCH;
    }
    /* Only this thread removes entries; the main thread appends, and may
     * move q (realloc) or compact it to the front (head = 0) meanwhile,
     * keeping the order: copy the batch out before unlocking, and advance
     * head by n afterwards, which is right in either layout. */
    batch = malloc(n * sizeof(*batch));
    if (batch == NULL) {
        return false;
    }
    memcpy(batch, k->q + k->head, n * sizeof(*batch));
    pthread_mutex_unlock(&k->mu);
    for (size_t i = 0; i < n; i++) {
        fill_entry(&pe[i], k, &batch[i]);
        ptr[i] = &pe[i];
    }
    memset(&err, 0, sizeof(err));
    rc = oz_upgrade_journal_append(k->om, k->holder, ptr, n, NULL, &err);
    free(batch);
    if (rc != 0 && err.code == OZONE__RESULT_CODE__UPGRADE_LEASE_LOST) {
        lease_lost_or_expired(k, &err);
        if (!atomic_load(&k->lease_lost)) {
            memset(&err, 0, sizeof(err));
            rc =
                oz_upgrade_journal_append(k->om, k->holder, ptr, n, NULL, &err);
        }
    }
    pthread_mutex_lock(&k->mu);
    if (rc == 0) {
        k->head += n;
        if (k->head == k->n) {
            k->head = k->n = 0;
        }
        pthread_cond_broadcast(&k->cv);
    }
    return rc == 0;
}

static void *keeper_main(void *arg)
{
    struct keeper *k = arg;
    long next_renew = now_ms() + k->ttl_ms / 3;
    sigset_t all;

    /* Signals are the main thread's. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        while (k->n > k->head && flush_batch(k)) {
        }
        if (now_ms() >= next_renew && !atomic_load(&k->lease_lost)) {
            struct oz_error err;
            pthread_mutex_unlock(&k->mu);
            int rc = lease_call(k, OZONE__OM__OM_LEASE_ACTION__LEASE_RENEW,
                                NULL, &err);
            if (rc != 0 && err.code == OZONE__RESULT_CODE__UPGRADE_LEASE_LOST) {
                lease_lost_or_expired(k, &err);
            }
            /* Any other failure (OM restarting): try again in a second. */
            next_renew = now_ms() + (rc == 0 ? k->ttl_ms / 3 : 1000);
            pthread_mutex_lock(&k->mu);
        }
        if (k->stop) {
            break;
        }
        /* Entries left: the OM did not take them; try again next tick. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)KEEPER_TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&k->cv, &k->mu, &ts);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

static void keeper_add(struct keeper *k, const struct jentry *e)
{
    pthread_mutex_lock(&k->mu);
    if (k->n == k->cap && k->head > 0) {
        /* Sent entries at the front: reuse their room. */
        memmove(k->q, k->q + k->head, (k->n - k->head) * sizeof(*k->q));
        k->n -= k->head;
        k->head = 0;
    }
    if (k->n == k->cap && k->cap < JOURNAL_QUEUE_MAX) {
        size_t ncap = k->cap > 0 ? k->cap * 2 : 64;
        struct jentry *grown = realloc(k->q, ncap * sizeof(*grown));
        if (grown != NULL) {
            k->q = grown;
            k->cap = ncap;
        }
    }
    if (k->n < k->cap) {
        k->q[k->n++] = *e;
        pthread_cond_broadcast(&k->cv);
    } else {
        fprintf(stderr,
                "ozone: upgrade journal queue full (%zu entries): entry "
                "'%s %s' of '%s' not journaled\n",
                k->n, e->action, e->status, e->node);
    }
    pthread_mutex_unlock(&k->mu);
}

/* Waits until every queued entry reached OM (true), the lease is lost or
 * timeout_ms ran out (false). */
static bool keeper_drain(struct keeper *k, long timeout_ms)
{
    long end = now_ms() + timeout_ms;
    bool empty;

    pthread_mutex_lock(&k->mu);
    while (k->n > k->head && !atomic_load(&k->lease_lost) && now_ms() < end) {
        struct timespec ts;
        pthread_cond_broadcast(&k->cv);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200L * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&k->cv, &k->mu, &ts);
    }
    empty = k->n == k->head;
    pthread_mutex_unlock(&k->mu);
    return empty;
}

static int keeper_start(struct keeper *k)
{
    if (pthread_create(&k->thread, NULL, keeper_main, k) != 0) {
        return OZ_ENOMEM;
    }
    k->running = true;
    return 0;
}

static void keeper_stop(struct keeper *k)
{
    if (!k->running) {
        return;
    }
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    k->running = false;
}

/* ---- events: one line on stdout, one journal entry ---- */

static void event(struct run *r,
                  const struct orch_step *s,
                  const struct orch_node *n,
                  const char *action,
                  const char *status,
                  const char *from_bin,
                  const char *to_bin,
                  const char *fmt,
                  ...) __attribute__((format(printf, 8, 9)));

static void event(struct run *r,
                  const struct orch_step *s,
                  const struct orch_node *n,
                  const char *action,
                  const char *status,
                  const char *from_bin,
                  const char *to_bin,
                  const char *fmt,
                  ...)
{
    struct jentry e;
    va_list ap;

    memset(&e, 0, sizeof(e));
    va_start(ap, fmt);
    vsnprintf(e.detail, sizeof(e.detail), fmt, ap);
    va_end(ap);
    if (s != NULL) {
        printf("step %u/%u %s (%s): %s\n", s->index, r->n_steps, s->name,
               orch_kind_name(s->kind), e.detail);
        e.step = s->index;
    } else {
        printf("%s\n", e.detail);
    }
    fflush(stdout);
    if (r->o.dry_run || !r->k.running) {
        return;
    }
    if (n != NULL) {
        oz_strlcpy(e.node, n->name, sizeof(e.node));
        oz_strlcpy(e.kind, orch_kind_name(n->kind), sizeof(e.kind));
    } else if (s != NULL) {
        oz_strlcpy(e.node, s->name, sizeof(e.node));
        oz_strlcpy(e.kind, orch_kind_name(s->kind), sizeof(e.kind));
    }
    oz_strlcpy(e.action, action, sizeof(e.action));
    oz_strlcpy(e.status, status, sizeof(e.status));
    oz_strlcpy(e.from_bin, from_bin != NULL ? from_bin : "",
               sizeof(e.from_bin));
    oz_strlcpy(e.to_bin, to_bin != NULL ? to_bin : "", sizeof(e.to_bin));
    keeper_add(&r->k, &e);
}

/* A run-level entry (step 0): carries backend and the roll's new binary
 * so --resume and --rollback find them. */
static void run_event(struct run *r,
                      const char *action,
                      const char *status,
                      const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

static void run_event(struct run *r,
                      const char *action,
                      const char *status,
                      const char *fmt,
                      ...)
{
    struct jentry e;
    va_list ap;

    memset(&e, 0, sizeof(e));
    va_start(ap, fmt);
    vsnprintf(e.detail, sizeof(e.detail), fmt, ap);
    va_end(ap);
    if (r->o.dry_run || !r->k.running) {
        return;
    }
    oz_strlcpy(e.action, action, sizeof(e.action));
    oz_strlcpy(e.status, status, sizeof(e.status));
    oz_strlcpy(e.to_bin, r->target.bin, sizeof(e.to_bin));
    keeper_add(&r->k, &e);
}

/* ---- the journal of the last run ---- */

static void history_free(struct history *h)
{
    if (h == NULL) {
        return;
    }
    free(h->nodes);
    oz_client_free_msg(h->page);
    free(h);
}

static struct hist_node *hist_node(struct history *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->nodes[i].node, name) == 0) {
            return &h->nodes[i];
        }
    }
    struct hist_node *grown = realloc(h->nodes, (h->n + 1) * sizeof(*grown));
    if (grown == NULL) {
        return NULL;
    }
    h->nodes = grown;
    struct hist_node *n = &h->nodes[h->n++];
    memset(n, 0, sizeof(*n));
    oz_strlcpy(n->node, name, sizeof(n->node));
    return n;
}

static bool is(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

static void history_add(struct history *h,
                        const Ozone__Om__OmUpgradeJournalEntry *e)
{
    if (!h->found && e->run_id != NULL) {
        h->found = true;
        oz_strlcpy(h->run_id, e->run_id, sizeof(h->run_id));
    }
    if (e->step == 0 &&
        (is(e->action, ORCH_ACT_RUN) || is(e->action, ORCH_ACT_ROLLBACK))) {
        if (h->backend[0] == '\0' && e->backend != NULL &&
            e->backend[0] != '\0') {
            oz_strlcpy(h->backend, e->backend, sizeof(h->backend));
        }
        if (h->to_bin[0] == '\0' && e->to_bin != NULL && e->to_bin[0] != '\0') {
            oz_strlcpy(h->to_bin, e->to_bin, sizeof(h->to_bin));
        }
        oz_strlcpy(h->end_status, e->status != NULL ? e->status : "",
                   sizeof(h->end_status));
        oz_strlcpy(h->end_detail, e->detail != NULL ? e->detail : "",
                   sizeof(h->end_detail));
        return;
    }
    if (e->node == NULL || e->node[0] == '\0') {
        return;
    }
    struct hist_node *n = hist_node(h, e->node);
    if (n == NULL) {
        return;
    }
    if (n->kind[0] == '\0' && e->kind != NULL) {
        oz_strlcpy(n->kind, e->kind, sizeof(n->kind));
    }
    /* A forward swap goes to the run's new binary; a rollback's swap
     * comes from it. The first forward swap names what ran before. */
    if (is(e->action, ORCH_ACT_SWAP) && e->to_bin != NULL &&
        is(e->to_bin, h->to_bin) && n->from_bin[0] == '\0' &&
        e->from_bin != NULL && !is(e->from_bin, h->to_bin)) {
        oz_strlcpy(n->from_bin, e->from_bin, sizeof(n->from_bin));
    }
    if (is(e->action, ORCH_ACT_STEP) && is(e->status, ORCH_ST_BEGIN)) {
        n->open = e->detail != NULL && strncmp(e->detail, "upgrading", 9) == 0;
    }
    if (is(e->action, ORCH_ACT_STEP) && is(e->status, ORCH_ST_OK)) {
        n->done = e->detail == NULL || strncmp(e->detail, "rolled back", 11);
        n->open = false;
    }
}

/* Reads the last run's entries (all pages) and the lease. 0, or a code
 * with errmsg (OM unreachable). */
static int history_read(struct cli *cli, struct history **out, char *errmsg)
{
    struct oz_client *om = NULL;
    struct history *h = calloc(1, sizeof(*h));
    uint64_t after = 0;
    int rc;

    *out = NULL;
    if (h == NULL) {
        oz_errmsg_printf(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    if ((rc = orch_client_open(cli, NULL, &om, errmsg)) != 0) {
        free(h);
        return rc;
    }
    for (int page = 0; page < JOURNAL_READ_PAGES; page++) {
        Ozone__Om__OmUpgradeJournalReadResponse *r = NULL;
        struct oz_error err;

        memset(&err, 0, sizeof(err));
        rc = oz_upgrade_journal_read(om, after, JOURNAL_READ_LIMIT, true, &r,
                                     &err);
        if (rc != 0) {
            oz_errmsg_printf(errmsg,
                             "cannot read the upgrade journal from OM: %s: %s",
                             oz_result_name(err.code), err.message);
            history_free(h);
            oz_client_free(om);
            return rc;
        }
        if (page == 0 && r->lease != NULL && r->lease->holder != NULL &&
            r->now_ms < r->lease->expires_ms) {
            h->lease_live = true;
            oz_strlcpy(h->lease_holder, r->lease->holder,
                       sizeof(h->lease_holder));
            oz_strlcpy(h->lease_host,
                       r->lease->host != NULL ? r->lease->host : "",
                       sizeof(h->lease_host));
            h->lease_pid = r->lease->pid;
            h->lease_left_ms = r->lease->expires_ms - r->now_ms;
            oz_strlcpy(h->lease_run,
                       r->lease->run_id != NULL ? r->lease->run_id : "",
                       sizeof(h->lease_run));
        }
        for (size_t i = 0; i < r->n_entries; i++) {
            history_add(h, r->entries[i]);
            after = r->entries[i]->seq;
        }
        size_t got = r->n_entries;
        if (page == 0) {
            h->page = r;
        } else {
            oz_client_free_msg(r);
        }
        if (got < JOURNAL_READ_LIMIT) {
            break;
        }
    }
    oz_client_free(om);
    *out = h;
    return 0;
}

/* ---- waiting for the cluster ---- */

/* Inspects into r->c (the previous inspection is kept on failure). */
static int reinspect(struct run *r, char *errmsg)
{
    struct orch_cluster c;
    int rc = orch_inspect(r->cli, &c, errmsg);

    if (rc != 0) {
        return rc;
    }
    orch_cluster_free(&r->c);
    r->c = c;
    return 0;
}

static enum version_catalog_id catalog_of(enum orch_kind k)
{
    return k == ORCH_OM ? VERSION_CATALOG_OM : VERSION_CATALOG_HDDS;
}

static size_t count_kind(const struct orch_cluster *c, enum orch_kind k)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n; i++) {
        n += c->nodes[i].kind == k;
    }
    return n;
}

static bool dn_healthy(const struct orch_node *n)
{
    return strcmp(n->state, "HEALTHY") == 0 ||
           strcmp(n->state, "HEALTHY_READONLY") == 0;
}

/* Names of the datanodes that are HEALTHY now ("\n"-joined, "\n" first). */
static void healthy_dns(const struct orch_cluster *c, char *out, size_t size)
{
    oz_strlcpy(out, "\n", size);
    for (size_t i = 0; i < c->n; i++) {
        if (c->nodes[i].kind == ORCH_DATANODE && dn_healthy(&c->nodes[i])) {
            size_t used = strlen(out);
            snprintf(out + used, size - used, "%s\n", c->nodes[i].name);
        }
    }
}

/* Whether name is back after its restart on dest (versions known or not):
 * why not in why. */
static bool node_back(const struct run *r,
                      const char *name,
                      const struct orch_target *dest,
                      unsigned moved_from,
                      const char *healthy_before,
                      char *why,
                      size_t size)
{
    const struct orch_cluster *c = &r->c;
    const struct orch_node *n = orch_cluster_find(c, name);

    if (n == NULL || !n->reachable) {
        snprintf(why, size, "'%s' does not answer yet", name);
        return false;
    }
    enum version_catalog_id cat = catalog_of(n->kind);
    /* moved_from (rolling back; 0: none): the version it ran before this
     * restart. A node that left it went back, even when the earlier
     * binary's own account of its version differs. */
    bool moved = moved_from != 0 && n->software[cat] != 0 &&
                 n->software[cat] != moved_from;
    if (dest->known && n->software[cat] != dest->software[cat] && !moved) {
        snprintf(why, size, "'%s' answers with software version %u, not %u",
                 name, n->software[cat], dest->software[cat]);
        return false;
    }
    switch (n->kind) {
        case ORCH_DATANODE:
            if (!dn_healthy(n)) {
                snprintf(why, size, "SCM lists datanode '%s' as %s", name,
                         n->state[0] != '\0' ? n->state : "unknown");
                return false;
            }
            break;
        case ORCH_OM:
            if (strcmp(n->state, "LEADER") != 0 &&
                strcmp(n->state, "FOLLOWER") != 0) {
                snprintf(why, size, "OM '%s' is %s in the ring", name,
                         n->state[0] != '\0' ? n->state : "not yet");
                return false;
            }
            if (c->om_leader[0] == '\0') {
                snprintf(why, size, "the OMs have no leader yet");
                return false;
            }
            if (c->om_leader_applied > n->applied_index &&
                c->om_leader_applied - n->applied_index > r->o.max_om_lag) {
                snprintf(why, size,
                         "OM '%s' is %" PRIu64
                         " entries behind the leader (at most %" PRIu64 ")",
                         name, c->om_leader_applied - n->applied_index,
                         r->o.max_om_lag);
                return false;
            }
            break;
        case ORCH_SCM:
            for (size_t i = 0; i < c->n; i++) {
                const struct orch_node *d = &c->nodes[i];
                char key[ORCH_NAME_SIZE + 2];
                snprintf(key, sizeof(key), "\n%s\n", d->name);
                if (d->kind == ORCH_DATANODE &&
                    strstr(healthy_before, key) != NULL && !dn_healthy(d)) {
                    snprintf(why, size,
                             "datanode '%s' is %s in SCM, was HEALTHY before",
                             d->name, d->state);
                    return false;
                }
            }
            if (count_kind(c, ORCH_DATANODE) > 0 && c->pipelines_open == 0) {
                snprintf(why, size, "SCM has no OPEN pipeline yet");
                return false;
            }
            break;
        case ORCH_RECON:
            break;
    }
    return true;
}

/* ---- one step ---- */

enum step_result {
    STEP_OK,
    STEP_PAUSE,  /* the cluster serves; the run stops resumably (exit 3) */
    STEP_FAILED, /* the run cannot go on (exit 1): lease lost, errors */
};

struct step_ctx
{
    struct run *r;
    const struct orch_step *s;
    char name[ORCH_NAME_SIZE];
    struct orch_node node;         /* as inspected before the step */
    char from_bin[ORCH_PATH_SIZE]; /* what it runs before */
    char to_bin[ORCH_PATH_SIZE];   /* what it runs after */
    struct orch_target from;       /* versions of from_bin, if known */
    struct orch_target dest;       /* versions of to_bin, if known */
    char why[ORCH_ERRMSG_SIZE];    /* when paused or failed */
};

static bool stopping(struct step_ctx *x)
{
    if (atomic_load(&x->r->k.lease_lost)) {
        snprintf(x->why, sizeof(x->why),
                 "another orchestrator took the lease: %s", x->r->k.lost_msg);
        return true;
    }
    if (stop_signal != 0) {
        snprintf(x->why, sizeof(x->why), "stopped by %s",
                 stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
        return true;
    }
    return false;
}

static enum step_result stop_result(struct step_ctx *x)
{
    return atomic_load(&x->r->k.lease_lost) ? STEP_FAILED : STEP_PAUSE;
}

/* inspect + orch_cluster_healthy, retried for up to PRECHECK_MS (a node
 * that just came back may still be catching up; a call may time out
 * under load). */
static bool healthy_within(struct step_ctx *x)
{
    struct run *r = x->r;
    long end =
        now_ms() + (r->o.step_timeout_ms < PRECHECK_MS ? r->o.step_timeout_ms
                                                       : PRECHECK_MS);
    char errmsg[ORCH_ERRMSG_SIZE];

    for (;;) {
        if (reinspect(r, errmsg) != 0) {
            snprintf(x->why, sizeof(x->why), "%s", errmsg);
        } else if (orch_cluster_healthy(&r->c, &r->o, x->why, sizeof(x->why))) {
            return true;
        }
        if (now_ms() >= end || stop_signal != 0) {
            return false;
        }
        sleep_ms(POLL_MS);
    }
}

/* An OM that leads hands leadership over first (DESIGN.md §8): to the
 * most caught-up follower already on this step's destination binary, else
 * the most caught-up follower. Waits for the new leader. */
static enum step_result transfer_leadership(struct step_ctx *x)
{
    struct run *r = x->r;
    const struct orch_node *best = NULL;
    bool best_done = false;
    char errmsg[ORCH_ERRMSG_SIZE];

    for (size_t i = 0; i < r->c.n; i++) {
        const struct orch_node *o = &r->c.nodes[i];
        char bin[ORCH_PATH_SIZE];
        if (o->kind != ORCH_OM || strcmp(o->name, x->name) == 0 ||
            !o->reachable || strcmp(o->state, "FOLLOWER") != 0) {
            continue;
        }
        bool done =
            orch_backend_current_bin(r->b, o, bin, sizeof(bin), errmsg) == 0 &&
            strcmp(bin, x->to_bin) == 0;
        if (best == NULL || (done && !best_done) ||
            (done == best_done && o->applied_index > best->applied_index)) {
            best = o;
            best_done = done;
        }
    }
    if (best == NULL) {
        snprintf(x->why, sizeof(x->why),
                 "OM '%s' leads and no other OM is a reachable follower to "
                 "take over; check 'ozone admin om roles'",
                 x->name);
        event(r, x->s, &x->node, ORCH_ACT_TRANSFER, ORCH_ST_FAILED, NULL, NULL,
              "cannot transfer leadership: %s", x->why);
        return STEP_PAUSE;
    }
    char target[ORCH_NAME_SIZE];
    oz_strlcpy(target, best->name, sizeof(target));
    if (r->o.dry_run) {
        event(r, x->s, &x->node, ORCH_ACT_TRANSFER, ORCH_ST_OK, NULL, NULL,
              "would transfer leadership to '%s'", target);
        return STEP_OK;
    }
    struct om_target t;
    if (cmd_om_resolve(r->cli, NULL, &t) != CLI_OK) {
        snprintf(x->why, sizeof(x->why), "cannot resolve the OMs");
        return STEP_FAILED;
    }
    size_t li = t.n;
    for (size_t i = 0; i < t.n; i++) {
        if (strcmp(t.names[i], x->name) == 0) {
            li = i;
        }
    }
    Ozone__Om__OmTransferRequest req = OZONE__OM__OM_TRANSFER_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct rpc_error err;
    req.node_id = target;
    if (li == t.n ||
        cmd_om_call_node_timed(
            r->cli, &t, li, &ozone__om__om_admin_service__descriptor,
            "Transfer", &req.base, &resp, 30000, 1, &err) != 0) {
        snprintf(x->why, sizeof(x->why),
                 "OM '%s' did not hand leadership to '%s': %s", x->name, target,
                 li == t.n ? "it is not configured" : err.message);
        event(r, x->s, &x->node, ORCH_ACT_TRANSFER, ORCH_ST_FAILED, NULL, NULL,
              "%s", x->why);
        return STEP_PAUSE;
    }
    rpc_message_free(resp);
    long end = now_ms() + r->o.step_timeout_ms;
    for (;;) {
        if (reinspect(r, errmsg) == 0 && r->c.om_leader[0] != '\0' &&
            strcmp(r->c.om_leader, x->name) != 0) {
            break;
        }
        if (now_ms() >= end) {
            snprintf(x->why, sizeof(x->why),
                     "no new OM leader within %lds of the transfer from "
                     "'%s' to '%s'",
                     r->o.step_timeout_ms / 1000, x->name, target);
            event(r, x->s, &x->node, ORCH_ACT_TRANSFER, ORCH_ST_FAILED, NULL,
                  NULL, "%s", x->why);
            return STEP_PAUSE;
        }
        sleep_ms(200);
    }
    event(r, x->s, &x->node, ORCH_ACT_TRANSFER, ORCH_ST_OK, NULL, NULL,
          "leadership moved to '%s'", r->c.om_leader);
    return STEP_OK;
}

/* Waits until the node is back on dest, its process running throughout.
 * true, or false with why. */
static bool wait_back(struct step_ctx *x,
                      const struct orch_target *dest,
                      unsigned moved_from,
                      const char *healthy_before,
                      long started_ms)
{
    struct run *r = x->r;
    long end = started_ms + r->o.step_timeout_ms;
    char errmsg[ORCH_ERRMSG_SIZE];
    int gone = 0;

    for (;;) {
        if (reinspect(r, errmsg) != 0) {
            snprintf(x->why, sizeof(x->why), "%s", errmsg);
        } else if (node_back(r, x->name, dest, moved_from, healthy_before,
                             x->why, sizeof(x->why))) {
            return true;
        }
        /* A process that died after its start is not coming back: two
         * looks in a row, as systemd may be between restarts. */
        gone = orch_backend_alive(r->b, &x->node) ? 0 : gone + 1;
        if (gone >= 2) {
            snprintf(x->why, sizeof(x->why), "'%s' exited after its start",
                     x->name);
            return false;
        }
        if (now_ms() >= end) {
            size_t used = strlen(x->why);
            snprintf(x->why + used, sizeof(x->why) - used,
                     " after %lds (the step timeout)",
                     r->o.step_timeout_ms / 1000);
            return false;
        }
        sleep_ms(POLL_MS);
    }
}

/* After the new binary failed: stop whatever may still run, start the node
 * on from_bin again and wait for it. note says what happened. */
static void restore(struct step_ctx *x,
                    const char *healthy_before,
                    char *note,
                    size_t size)
{
    struct run *r = x->r;
    char errmsg[ORCH_ERRMSG_SIZE];
    char saved[ORCH_ERRMSG_SIZE];

    oz_strlcpy(saved, x->why, sizeof(saved));
    (void)orch_backend_stop(r->b, &x->node, r->o.step_timeout_ms, errmsg);
    if (orch_backend_start(r->b, &x->node, x->from_bin, errmsg) != 0) {
        snprintf(note, size,
                 "could not restart it on '%s' either: %s; start it by hand",
                 x->from_bin, errmsg);
    } else if (!wait_back(x, &x->from, 0, healthy_before, now_ms())) {
        snprintf(note, size, "restarted on '%s', but it is not back: %s",
                 x->from_bin, x->why);
    } else {
        snprintf(note, size, "restarted on %s", x->from_bin);
    }
    oz_strlcpy(x->why, saved, sizeof(x->why));
}

static void sleep_dwell(struct step_ctx *x)
{
    long end = now_ms() + x->r->o.dwell_ms;

    while (!stopping(x) && now_ms() < end) {
        long left = end - now_ms();
        sleep_ms(left < 200 ? left : 200);
    }
}

/* A step's own state beyond struct step_ctx's: what the phases below
 * hand each other. */
struct step_run
{
    struct step_ctx *x;
    bool rollback;
    char cur[ORCH_PATH_SIZE];  /* the backend's binary at the step's start */
    char healthy_before[4096]; /* "\n"-joined HEALTHY datanodes */
    struct orch_prom_snapshot *before; /* the gate's first snapshot */
    long started;                      /* the node's (re)start */
};

/* Refreshes x->node from the newest inspection. */
static void refresh_node(struct step_ctx *x)
{
    const struct orch_node *n = orch_cluster_find(&x->r->c, x->name);

    if (n != NULL) {
        x->node = *n;
    }
}

/* What from_bin runs, for the way back: what the node answered just now
 * when it runs from_bin (the surest source), else what the binary says of
 * itself, else unknown (image tags). */
static void read_from_versions(struct step_run *sr)
{
    struct step_ctx *x = sr->x;
    char errmsg[ORCH_ERRMSG_SIZE];

    memset(&x->from, 0, sizeof(x->from));
    oz_strlcpy(x->from.bin, x->from_bin, sizeof(x->from.bin));
    if (x->node.reachable && strcmp(sr->cur, x->from_bin) == 0 &&
        x->node.software[catalog_of(x->node.kind)] != 0) {
        x->from.known = true;
        memcpy(x->from.software, x->node.software, sizeof(x->from.software));
        oz_strlcpy(x->from.release, x->node.release, sizeof(x->from.release));
    } else if (strcmp(x->r->backend, "compose") == 0 ||
               orch_target_read(x->r->backend, x->from_bin, &x->from, errmsg) !=
                   0) {
        memset(&x->from, 0, sizeof(x->from));
        oz_strlcpy(x->from.bin, x->from_bin, sizeof(x->from.bin));
    }
}

/* precheck, the versions of from_bin, the OM leadership transfer. */
static enum step_result step_prepare(struct step_run *sr)
{
    struct step_ctx *x = sr->x;
    struct run *r = x->r;
    char errmsg[ORCH_ERRMSG_SIZE];

    if (r->o.dry_run) {
        /* One look, no waiting: a dry run shows what would happen. */
        bool ok = reinspect(r, errmsg) == 0 &&
                  orch_cluster_healthy(&r->c, &r->o, x->why, sizeof(x->why));
        event(r, x->s, &x->node, ORCH_ACT_PRECHECK,
              ok ? ORCH_ST_OK : ORCH_ST_FAILED, NULL, NULL, "precheck %s%s",
              ok ? "ok now" : "would fail now: ", ok ? "" : x->why);
    } else if (!healthy_within(x)) {
        event(r, x->s, &x->node, ORCH_ACT_PRECHECK, ORCH_ST_FAILED, NULL, NULL,
              "precheck failed: %s", x->why);
        return STEP_PAUSE;
    } else {
        event(r, x->s, &x->node, ORCH_ACT_PRECHECK, ORCH_ST_OK, NULL, NULL,
              "precheck ok: cluster healthy");
    }
    refresh_node(x);
    read_from_versions(sr);
    if (stopping(x)) {
        return stop_result(x);
    }
    /* Leadership is judged now, not at plan time: it may have moved. */
    if (x->node.kind == ORCH_OM && count_kind(&r->c, ORCH_OM) > 1 &&
        strcmp(r->c.om_leader, x->name) == 0) {
        enum step_result res = transfer_leadership(x);
        if (res != STEP_OK) {
            return res;
        }
        refresh_node(x);
        if (stopping(x)) {
            return stop_result(x);
        }
    }
    return STEP_OK;
}

/* stop, swap, start, wait. A start that fails or a node that does not
 * come back is undone (restore) before the step pauses. From the stop on,
 * signals and lease news wait until the node runs again. */
static enum step_result step_restart(struct step_run *sr)
{
    struct step_ctx *x = sr->x;
    struct run *r = x->r;
    const struct orch_step *s = x->s;
    char errmsg[ORCH_ERRMSG_SIZE], note[ORCH_MSG_SIZE];

    /* Fencing: before a node goes down, what this step journaled so far
     * must have been accepted under our lease, so an orchestrator that
     * took the lease over (--force) is noticed here, not after the stop.
     * An OM that does not answer is waited for a little only: a journal
     * write never holds a step. */
    (void)keeper_drain(&r->k, FENCE_MS);
    if (stopping(x)) {
        return stop_result(x);
    }
    if (!sr->rollback && orch_gate_snapshot(&r->c, &sr->before) != 0) {
        sr->before = NULL;
    }
    if (orch_backend_stop(r->b, &x->node, r->o.step_timeout_ms, errmsg) != 0) {
        snprintf(x->why, sizeof(x->why), "cannot stop it: %s", errmsg);
        event(r, s, &x->node, ORCH_ACT_STOP, ORCH_ST_FAILED, NULL, NULL, "%s",
              x->why);
        if (!orch_backend_alive(r->b, &x->node)) {
            restore(x, sr->healthy_before, note, sizeof(note));
            event(r, s, &x->node, ORCH_ACT_START, ORCH_ST_OK, x->from_bin,
                  x->from_bin, "%s", note);
        }
        return STEP_PAUSE;
    }
    event(r, s, &x->node, ORCH_ACT_STOP, ORCH_ST_OK, NULL, NULL, "stopped");
    event(r, s, &x->node, ORCH_ACT_SWAP, ORCH_ST_OK, x->from_bin, x->to_bin,
          "binary %s -> %s", x->from_bin, x->to_bin);
    sr->started = now_ms();
    if (orch_backend_start(r->b, &x->node, x->to_bin, errmsg) != 0) {
        /* The whole message (it may end with the node's log) goes to
         * stderr; the journal and the pause line get its first line. */
        char line[ORCH_MSG_SIZE];
        fflush(stdout);
        fprintf(stderr, "ozone: %s\n", errmsg);
        first_line(errmsg, line, sizeof(line));
        snprintf(x->why, sizeof(x->why), "'%s' does not start on %s: %s",
                 x->name, x->to_bin, line);
        restore(x, sr->healthy_before, note, sizeof(note));
        event(r, s, &x->node, ORCH_ACT_START, ORCH_ST_FAILED, x->from_bin,
              x->to_bin, "start failed, %s: %s", note, line);
        return STEP_PAUSE;
    }
    event(r, s, &x->node, ORCH_ACT_START, ORCH_ST_OK, x->from_bin, x->to_bin,
          "started on %s", x->to_bin);
    /* Rolling back, the version it runs now (the new one) must go. */
    unsigned moved_from =
        sr->rollback ? x->node.software[catalog_of(x->node.kind)] : 0;
    if (!wait_back(x, &x->dest, moved_from, sr->healthy_before, sr->started)) {
        char why[ORCH_ERRMSG_SIZE];
        snprintf(why, sizeof(why), "'%s' did not come back on %s: %s", x->name,
                 x->to_bin, x->why);
        oz_strlcpy(x->why, why, sizeof(x->why));
        restore(x, sr->healthy_before, note, sizeof(note));
        event(r, s, &x->node, ORCH_ACT_WAIT, ORCH_ST_FAILED, x->from_bin,
              x->to_bin, "%s, %s", note, x->why);
        return STEP_PAUSE;
    }
    return STEP_OK;
}

/* The node is back: dwell, check, gate (not rolling back), step OK. */
static enum step_result step_verify(struct step_run *sr, long t_step)
{
    struct step_ctx *x = sr->x;
    struct run *r = x->r;
    const struct orch_step *s = x->s;
    char took[32];

    refresh_node(x);
    fmt_duration(now_ms() - sr->started, took, sizeof(took));
    event(r, s, &x->node, ORCH_ACT_WAIT, ORCH_ST_OK, NULL, NULL,
          "back after %s: release %s, software version %u, %s", took,
          x->node.release[0] != '\0' ? x->node.release : "?",
          x->node.software[catalog_of(x->node.kind)],
          x->node.state[0] != '\0' ? x->node.state : "running");
    if (stopping(x)) {
        return stop_result(x);
    }
    sleep_dwell(x);
    if (stopping(x)) {
        return stop_result(x);
    }
    if (!healthy_within(x)) {
        event(r, s, &x->node, ORCH_ACT_CHECK, ORCH_ST_FAILED, NULL, NULL,
              "check failed: %s", x->why);
        return STEP_PAUSE;
    }
    event(r, s, &x->node, ORCH_ACT_CHECK, ORCH_ST_OK, NULL, NULL,
          "check ok: cluster healthy");
    if (!sr->rollback) {
        struct orch_prom_snapshot *after = NULL;
        struct orch_gate_result g;
        memset(&g, 0, sizeof(g));
        if (sr->before != NULL && orch_gate_snapshot(&r->c, &after) == 0) {
            orch_gate_eval(sr->before, after, &r->o, &g);
            orch_gate_snapshot_free(after);
        } else {
            g.pass = false;
            snprintf(g.why, sizeof(g.why),
                     "no /prom snapshot could be taken (out of memory)");
        }
        if (!g.pass) {
            snprintf(x->why, sizeof(x->why), "safety gate: %s", g.why);
            event(r, s, &x->node, ORCH_ACT_GATE, ORCH_ST_FAILED, NULL, NULL,
                  "gate failed: %s", g.why);
            return STEP_PAUSE;
        }
        event(r, s, &x->node, ORCH_ACT_GATE, ORCH_ST_OK, NULL, NULL,
              "gate passed: %" PRIu64 " requests, %" PRIu64
              " errors (%.2f%%), p99 %.0f ms",
              g.requests, g.errors, g.error_rate * 100.0, g.p99_ms);
    }
    fmt_duration(now_ms() - t_step, took, sizeof(took));
    event(r, s, &x->node, ORCH_ACT_STEP, ORCH_ST_OK, x->from_bin, x->to_bin,
          "%s in %s", sr->rollback ? "rolled back" : "done", took);
    return STEP_OK;
}

/* The binaries of the step: from_bin is what the backend says the node
 * runs, or, rolling forward, what it ran before this run (an earlier
 * attempt may have left it on the new binary already). */
static bool step_bins(struct step_run *sr)
{
    struct step_ctx *x = sr->x;
    struct run *r = x->r;
    char errmsg[ORCH_ERRMSG_SIZE];

    if (orch_backend_current_bin(r->b, &x->node, sr->cur, sizeof(sr->cur),
                                 errmsg) != 0) {
        snprintf(x->why, sizeof(x->why), "%s", errmsg);
        return false;
    }
    oz_strlcpy(x->from_bin, sr->cur, sizeof(x->from_bin));
    for (size_t i = 0; !sr->rollback && r->h != NULL && i < r->h->n; i++) {
        const struct hist_node *hn = &r->h->nodes[i];
        if (strcmp(hn->node, x->name) == 0 &&
            strcmp(r->h->run_id, r->k.run_id) == 0 && hn->from_bin[0] != '\0') {
            oz_strlcpy(x->from_bin, hn->from_bin, sizeof(x->from_bin));
        }
    }
    return true;
}

/* Runs one step: node s->name from its current binary to to_bin (dest:
 * its versions, when known). rollback: no gate, and the journal's
 * "step OK" says "rolled back". finish: the node runs to_bin already (a
 * step an earlier attempt did not end): only wait, dwell, check, gate. */
static enum step_result run_step(struct run *r,
                                 const struct orch_step *s,
                                 const char *to_bin,
                                 const struct orch_target *dest,
                                 bool rollback,
                                 bool finish)
{
    struct step_run sr;
    enum step_result res = STEP_PAUSE;
    long t_step = now_ms();
    char errmsg[ORCH_ERRMSG_SIZE];

    memset(&sr, 0, sizeof(sr));
    sr.rollback = rollback;
    sr.x = calloc(1, sizeof(*sr.x));
    if (sr.x == NULL) {
        oz_strlcpy(r->why, "out of memory", sizeof(r->why));
        return STEP_FAILED;
    }
    struct step_ctx *x = sr.x;
    x->r = r;
    x->s = s;
    oz_strlcpy(x->name, s->name, sizeof(x->name));
    oz_strlcpy(x->to_bin, to_bin, sizeof(x->to_bin));
    x->dest = *dest;
    if (orch_cluster_find(&r->c, s->name) == NULL) {
        snprintf(x->why, sizeof(x->why),
                 "'%s' is no longer part of the cluster (not listed by SCM "
                 "or the OM configuration)",
                 s->name);
        goto out;
    }
    refresh_node(x);
    if (!step_bins(&sr)) {
        goto out;
    }
    event(r, s, &x->node, ORCH_ACT_STEP, ORCH_ST_BEGIN, x->from_bin, to_bin,
          "%s %s -> %s%s%s%s", rollback ? "rolling back" : "upgrading",
          x->from_bin, to_bin, finish ? ": it runs " : "", finish ? to_bin : "",
          finish ? " already, checking it" : "");
    if (stopping(x)) {
        res = stop_result(x);
        goto out;
    }
    sr.started = now_ms();
    if (finish) {
        /* An interrupted or paused step of a node that runs the target
         * already is finished by checking it like a fresh one. */
        healthy_dns(&r->c, sr.healthy_before, sizeof(sr.healthy_before));
        if (!rollback && orch_gate_snapshot(&r->c, &sr.before) != 0) {
            sr.before = NULL;
        }
        if (!wait_back(x, dest, 0, sr.healthy_before, sr.started)) {
            event(r, s, &x->node, ORCH_ACT_WAIT, ORCH_ST_FAILED, NULL, NULL,
                  "%s", x->why);
            goto out;
        }
    } else {
        if ((res = step_prepare(&sr)) != STEP_OK) {
            goto out;
        }
        res = STEP_PAUSE;
        healthy_dns(&r->c, sr.healthy_before, sizeof(sr.healthy_before));
        if (r->o.dry_run) {
            (void)orch_backend_stop(r->b, &x->node, r->o.step_timeout_ms,
                                    errmsg);
            (void)orch_backend_start(r->b, &x->node, to_bin, errmsg);
            event(r, s, &x->node, ORCH_ACT_STEP, ORCH_ST_OK, NULL, NULL,
                  "would then wait for it (up to %lds), dwell %lds, check the "
                  "cluster%s",
                  r->o.step_timeout_ms / 1000, r->o.dwell_ms / 1000,
                  rollback ? "" : " and the gate");
            res = STEP_OK;
            goto out;
        }
        if ((res = step_restart(&sr)) != STEP_OK) {
            goto out;
        }
    }
    res = step_verify(&sr, t_step);

out:
    if (res != STEP_OK) {
        oz_strlcpy(r->why, x->why[0] != '\0' ? x->why : "unknown",
                   sizeof(r->why));
    }
    orch_gate_snapshot_free(sr.before);
    free(sr.x);
    return res;
}

/* ---- the run: lease, pause, end ---- */

static void random_hex(char *out, size_t digits)
{
    unsigned char buf[16];
    static const char hex[] = "0123456789abcdef";

    if (digits > 2 * sizeof(buf)) {
        digits = 2 * sizeof(buf);
    }
    if (getrandom(buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
        /* No entropy source: time and pid still tell runs apart. */
        unsigned long v = (unsigned long)time(NULL) ^
                          ((unsigned long)getpid() << 16) ^
                          (unsigned long)now_ms();
        for (size_t i = 0; i < sizeof(buf); i++) {
            buf[i] = (unsigned char)(v >> (8 * (i % sizeof(v))));
        }
    }
    for (size_t i = 0; i < digits; i++) {
        out[i] = hex[(buf[i / 2] >> (i % 2 == 0 ? 4 : 0)) & 0xf];
    }
    out[digits] = '\0';
}

static void new_run_id(char *out, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    char when[32] = "00000000T000000Z", hex[8];

    if (gmtime_r(&t, &tm) != NULL) {
        strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
    }
    random_hex(hex, 4);
    snprintf(out, size, "R-%s-%s", when, hex);
}

/* Takes the OM lease for r->k.run_id (the keeper's client opened here).
 * CLI_OK or CLI_FAILED (message printed). */
/* Who this orchestrator is: host, holder "<host>:<pid>:<8 hex>". */
static void keeper_identity(struct keeper *k)
{
    char hex[12];

    if (gethostname(k->host, sizeof(k->host)) != 0) {
        oz_strlcpy(k->host, "localhost", sizeof(k->host));
    }
    k->host[sizeof(k->host) - 1] = '\0';
    random_hex(hex, 8);
    snprintf(k->holder, sizeof(k->holder), "%s:%ld:%s", k->host, (long)getpid(),
             hex);
}

/* What to do about the lease the journal read showed: nothing (free or
 * expired), take it over (*takeover: its holder), or refuse (CLI_FAILED,
 * message printed). takeover_allowed: --resume / --rollback, which take
 * over a holder whose process is gone on this host. announce: print the
 * takeover (once, when it is done). Judged before anything else, so a
 * second orchestrator is refused whatever state the first left the
 * cluster in; OM judges again at the acquire. */
static int lease_decide(struct run *r,
                        bool takeover_allowed,
                        bool announce,
                        const char **takeover)
{
    const struct history *h = r->h;

    *takeover = NULL;
    if (h == NULL || !h->lease_live ||
        strcmp(h->lease_holder, r->k.holder) == 0) {
        return CLI_OK;
    }
    bool same_host = strcmp(h->lease_host, r->k.host) == 0;
    bool gone = same_host && h->lease_pid > 0 &&
                kill((pid_t)h->lease_pid, 0) != 0 && errno == ESRCH;
    uint64_t left_s = (h->lease_left_ms + 999) / 1000;
    if (takeover_allowed && gone) {
        *takeover = h->lease_holder;
        if (announce) {
            printf(
                "Taking over the upgrade lease of '%s' (run %s): its process "
                "%u on this host is gone.\n",
                h->lease_holder, h->lease_run, h->lease_pid);
        }
        return CLI_OK;
    }
    if (r->force) {
        *takeover = h->lease_holder;
        if (announce) {
            fprintf(stderr,
                    "ozone: warning: --force: taking the upgrade lease over "
                    "from '%s' (host %s, pid %u, run %s), which may still "
                    "run; make sure it is stopped\n",
                    h->lease_holder, h->lease_host, h->lease_pid, h->lease_run);
        }
        return CLI_OK;
    }
    if (takeover_allowed) {
        return cli_fail(
            CLI_FAILED,
            "%s: the upgrade lease is held by '%s' (host %s, pid %u, run %s), "
            "%s; it expires in %" PRIu64
            "s unless renewed: stop that orchestrator and wait, or give "
            "--force to take the lease over",
            oz_result_name(OZONE__RESULT_CODE__UPGRADE_LEASE_HELD),
            h->lease_holder, h->lease_host, h->lease_pid, h->lease_run,
            same_host ? "whose process still runs on this host"
                      : "on another host",
            left_s);
    }
    return cli_fail(
        CLI_FAILED,
        "%s: the upgrade lease is held by '%s' (host %s, pid %u, run %s) for "
        "%" PRIu64
        "s more; wait for that run ('ozone admin upgrade journal'), or if "
        "that orchestrator is gone run 'ozone admin upgrade run --resume' on "
        "%s",
        oz_result_name(OZONE__RESULT_CODE__UPGRADE_LEASE_HELD), h->lease_holder,
        h->lease_host, h->lease_pid, h->lease_run, left_s,
        h->lease_host[0] != '\0' ? h->lease_host : "its host");
}

static int acquire_lease(struct run *r, bool takeover_allowed)
{
    struct keeper *k = &r->k;
    char errmsg[OZ_ERRMSG_SIZE];
    const char *takeover = NULL;
    struct oz_error err;
    int rc;

    if ((rc = lease_decide(r, takeover_allowed, true, &takeover)) != CLI_OK) {
        return rc;
    }
    if (orch_client_open(r->cli, NULL, &k->om, errmsg) != 0) {
        return cli_fail(CLI_FAILED, "cannot reach OM for the upgrade lease: %s",
                        errmsg);
    }
    if (lease_call(k, OZONE__OM__OM_LEASE_ACTION__LEASE_ACQUIRE, takeover,
                   &err) != 0) {
        if (err.code == OZONE__RESULT_CODE__UPGRADE_LEASE_HELD) {
            return cli_fail(CLI_FAILED, "%s: %s", oz_result_name(err.code),
                            err.message);
        }
        return cli_fail(CLI_FAILED, "cannot acquire the upgrade lease: %s: %s",
                        oz_result_name(err.code), err.message);
    }
    if (keeper_start(k) != 0) {
        (void)lease_call(k, OZONE__OM__OM_LEASE_ACTION__LEASE_RELEASE, NULL,
                         &err);
        return cli_fail(CLI_FAILED, "cannot start the lease keeper thread");
    }
    return CLI_OK;
}

/* Flushes the journal, stops the keeper, releases the lease. false when
 * entries could not be written (OM unreachable for DRAIN_MS). */
static bool end_run(struct run *r)
{
    struct oz_error err;
    bool flushed = true;

    if (!r->k.running) {
        return true;
    }
    if (!atomic_load(&r->k.lease_lost)) {
        flushed = keeper_drain(&r->k, DRAIN_MS);
    }
    keeper_stop(&r->k);
    if (!flushed) {
        fprintf(stderr,
                "ozone: warning: %zu journal entries could not be written "
                "to OM (unreachable for %ds); 'ozone admin upgrade journal' "
                "misses the end of this run\n",
                r->k.n - r->k.head, DRAIN_MS / 1000);
    }
    if (!atomic_load(&r->k.lease_lost) &&
        lease_call(&r->k, OZONE__OM__OM_LEASE_ACTION__LEASE_RELEASE, NULL,
                   &err) != 0) {
        fprintf(stderr,
                "ozone: warning: cannot release the upgrade lease (%s: %s); "
                "it expires by itself\n",
                oz_result_name(err.code), err.message);
    }
    return flushed;
}

static int lease_lost_exit(struct run *r)
{
    keeper_stop(&r->k);
    return cli_fail(CLI_FAILED,
                    "another orchestrator took the lease: %s; this run "
                    "stopped (its last node is up)",
                    r->k.lost_msg);
}

/* The run stops resumably: journal PAUSED, release, the message, 3. */
static int pause_run(struct run *r, const struct orch_step *s)
{
    const char *what = r->rollback ? "rollback" : "rolling upgrade";

    if (atomic_load(&r->k.lease_lost)) {
        return lease_lost_exit(r);
    }
    char where[ORCH_NAME_SIZE + 96];
    if (s->index == 0) {
        snprintf(where, sizeof(where),
                 "while starting '%s', which the interrupted run left "
                 "stopped",
                 s->name);
    } else {
        snprintf(where, sizeof(where), "at step %u/%u (%s)", s->index,
                 r->n_steps, s->name);
    }
    run_event(r, ORCH_ACT_RUN, ORCH_ST_PAUSED, "%s paused %s: %s", what, where,
              r->why);
    end_run(r);
    fflush(stdout);
    fprintf(stderr,
            "ozone: %s paused %s: %s. The cluster keeps serving. Fix the "
            "cause, then run 'ozone admin upgrade run --resume', or 'ozone "
            "admin upgrade run --rollback' to go back.\n",
            what, where, r->why);
    return ORCH_EXIT_PAUSED;
}

/* An orchestrator that died mid-step may have left a node stopped: each
 * node of the last run that does not run now is started on the binary
 * the backend records for it and waited for, before anything else (the
 * step it was in is then done again from its start). true, or false with
 * r->why and *failed (the node) when it does not come back. */
static bool repair(struct run *r, struct orch_step *failed)
{
    char errmsg[ORCH_ERRMSG_SIZE], bin[ORCH_PATH_SIZE];
    struct orch_target unknown;

    memset(&unknown, 0, sizeof(unknown));
    for (size_t i = 0; r->h != NULL && i < r->h->n; i++) {
        const struct hist_node *hn = &r->h->nodes[i];
        const struct orch_node *n = orch_cluster_find(&r->c, hn->node);
        struct orch_node node;
        int kind = -1;

        if (n != NULL) {
            node = *n;
        } else {
            /* SCM down: the inspection found nothing; the journal names
             * the node and its kind. */
            for (int k = ORCH_SCM; k <= ORCH_OM; k++) {
                if (strcmp(hn->kind, orch_kind_name((enum orch_kind)k)) == 0) {
                    kind = k;
                }
            }
            if (kind < 0) {
                continue;
            }
            memset(&node, 0, sizeof(node));
            node.kind = (enum orch_kind)kind;
            oz_strlcpy(node.name, hn->node, sizeof(node.name));
        }
        if (orch_backend_alive(r->b, &node)) {
            continue;
        }
        memset(failed, 0, sizeof(*failed));
        oz_strlcpy(failed->name, node.name, sizeof(failed->name));
        failed->kind = node.kind;
        if (orch_backend_current_bin(r->b, &node, bin, sizeof(bin), errmsg) !=
            0) {
            snprintf(r->why, sizeof(r->why), "%s", errmsg);
            return false;
        }
        event(r, NULL, &node, ORCH_ACT_START, ORCH_ST_BEGIN, bin, bin,
              "'%s' (%s) does not run: the interrupted run left it stopped; "
              "starting it on %s",
              node.name, orch_kind_name(node.kind), bin);
        if (orch_backend_start(r->b, &node, bin, errmsg) != 0) {
            snprintf(r->why, sizeof(r->why), "'%s' does not start on %s: %s",
                     node.name, bin, errmsg);
            event(r, NULL, &node, ORCH_ACT_START, ORCH_ST_FAILED, bin, bin,
                  "%s", r->why);
            return false;
        }
        if (r->o.dry_run) {
            continue;
        }
        struct step_ctx *x = calloc(1, sizeof(*x));
        if (x == NULL) {
            snprintf(r->why, sizeof(r->why), "out of memory");
            return false;
        }
        x->r = r;
        x->node = node;
        oz_strlcpy(x->name, node.name, sizeof(x->name));
        bool back = wait_back(x, &unknown, 0, "\n", now_ms());
        if (!back) {
            snprintf(r->why, sizeof(r->why), "'%s' is not back on %s: %s",
                     node.name, bin, x->why);
        }
        free(x);
        event(r, NULL, &node, ORCH_ACT_START,
              back ? ORCH_ST_OK : ORCH_ST_FAILED, bin, bin,
              back ? "'%s' is back on %s" : "%s", back ? node.name : r->why,
              bin);
        if (!back) {
            return false;
        }
    }
    return true;
}

/* ---- rolling forward ---- */

/* Whether a step may be skipped: the plan says so, or (image tags, no
 * versions to compare) this run finished it and the node still runs it. */
static bool step_done(struct run *r, const struct orch_step *s)
{
    char bin[ORCH_PATH_SIZE], errmsg[ORCH_ERRMSG_SIZE];

    if (s->already_done) {
        /* Same versions can still be another build (a release that
         * changes no catalog): done when it runs this binary or reports
         * this release. */
        const struct orch_node *n = orch_cluster_find(&r->c, s->name);
        if (n == NULL || !r->target.known || r->target.release[0] == '\0' ||
            strcmp(n->release, r->target.release) == 0) {
            return true;
        }
        return orch_backend_current_bin(r->b, n, bin, sizeof(bin), errmsg) ==
                   0 &&
               strcmp(bin, r->target.bin) == 0;
    }
    if (r->target.known || r->h == NULL ||
        strcmp(r->h->run_id, r->k.run_id) != 0) {
        return false;
    }
    for (size_t i = 0; i < r->h->n; i++) {
        if (strcmp(r->h->nodes[i].node, s->name) == 0 && r->h->nodes[i].done) {
            const struct orch_node *n = orch_cluster_find(&r->c, s->name);
            return n != NULL && n->reachable &&
                   orch_backend_current_bin(r->b, n, bin, sizeof(bin),
                                            errmsg) == 0 &&
                   strcmp(bin, r->target.bin) == 0;
        }
    }
    return false;
}

/* Whether this run began the node's step and did not end it (killed or
 * paused mid-step). */
static bool step_open(const struct run *r, const char *name)
{
    if (r->h == NULL || strcmp(r->h->run_id, r->k.run_id) != 0) {
        return false;
    }
    for (size_t i = 0; i < r->h->n; i++) {
        if (strcmp(r->h->nodes[i].node, name) == 0) {
            return r->h->nodes[i].open;
        }
    }
    return false;
}

static void versions_text(const struct orch_target *t, char *out, size_t size)
{
    if (!t->known) {
        snprintf(out, size, "versions known once it runs");
        return;
    }
    snprintf(out, size, "release %s: OM %u, HDDS %u", t->release,
             t->software[VERSION_CATALOG_OM],
             t->software[VERSION_CATALOG_HDDS]);
}

/* A target older than what runs is a downgrade: refused (that is what
 * --rollback is for). */
static bool target_older(const struct run *r, char *why, size_t size)
{
    if (!r->target.known) {
        return false;
    }
    for (size_t i = 0; i < r->c.n; i++) {
        const struct orch_node *n = &r->c.nodes[i];
        enum version_catalog_id cat = catalog_of(n->kind);
        if (n->reachable && n->software[cat] > r->target.software[cat]) {
            snprintf(why, size,
                     "'%s' runs software version %u, newer than the %u of "
                     "'%s' (release %s); a rolling upgrade does not go "
                     "back: use 'ozone admin upgrade run --rollback' to "
                     "undo the last run",
                     n->name, n->software[cat], r->target.software[cat],
                     r->target.bin, r->target.release);
            return true;
        }
    }
    return false;
}

/* reinspect, retried for up to ms (a call may time out under load, a
 * daemon just started may not answer yet). */
static bool inspect_within(struct run *r, long ms, char *errmsg)
{
    long end = now_ms() + ms;

    while (reinspect(r, errmsg) != 0) {
        if (now_ms() >= end) {
            return false;
        }
        sleep_ms(POLL_MS);
    }
    return true;
}

/* inspect + plan until the plan is not refused, for up to ms; then the
 * refusal (CLI_FAILED, printed). */
static int replan(struct run *r, struct orch_plan *plan, long ms)
{
    char errmsg[ORCH_ERRMSG_SIZE];
    long end = now_ms() + ms;

    for (;;) {
        if (!inspect_within(r, end - now_ms() > 0 ? end - now_ms() : 0,
                            errmsg)) {
            return cli_fail(CLI_FAILED, "%s", errmsg);
        }
        orch_plan_free(plan);
        if (orch_plan_build(&r->c, &r->target, &r->o,
                            r->h != NULL ? r->h->page : NULL, false,
                            plan) != 0) {
            orch_plan_free(plan);
            return cli_fail(CLI_FAILED,
                            "cannot build the upgrade plan: out of memory");
        }
        if (!plan->refused) {
            return CLI_OK;
        }
        if (now_ms() >= end) {
            int rc = cli_fail(CLI_FAILED, "the rolling upgrade is refused: %s",
                              plan->refusal);
            orch_plan_free(plan);
            return rc;
        }
        sleep_ms(POLL_MS);
    }
}

/* The plan of the roll, or CLI_FAILED with the refusal printed. */
static int build_plan(struct run *r, struct orch_plan *plan)
{
    int rc;

    orch_plan_free(plan);
    if (orch_plan_build(&r->c, &r->target, &r->o,
                        r->h != NULL ? r->h->page : NULL, false, plan) != 0) {
        orch_plan_free(plan);
        return cli_fail(CLI_FAILED,
                        "cannot build the upgrade plan: out of "
                        "memory");
    }
    if (plan->refused) {
        rc = cli_fail(CLI_FAILED, "the rolling upgrade is refused: %s",
                      plan->refusal);
        orch_plan_free(plan);
        return rc;
    }
    return CLI_OK;
}

static int roll(struct run *r)
{
    struct orch_plan plan;
    char vers[128], errmsg[ORCH_ERRMSG_SIZE], took[32];
    unsigned done = 0;
    int rc;

    if (target_older(r, errmsg, sizeof(errmsg))) {
        return cli_fail(CLI_FAILED, "cannot roll to '%s': %s", r->target.bin,
                        errmsg);
    }
    /* A new run is judged before it takes the lease; a continued one
     * first puts back what its predecessor left stopped. */
    bool fresh = !r->resume && !r->continuing;
    memset(&plan, 0, sizeof(plan));
    if (fresh && (rc = build_plan(r, &plan)) != CLI_OK) {
        return rc;
    }
    if (!r->o.dry_run && (rc = acquire_lease(r, r->resume)) != CLI_OK) {
        orch_plan_free(&plan);
        return rc;
    }
    if (r->continuing) {
        printf(
            "Continuing run %s, which stopped before its end (%s).\n",
            r->h->run_id,
            r->h->end_detail[0] != '\0' ? r->h->end_detail : "no end recorded");
    }
    if (!fresh) {
        struct orch_step failed;
        if (!repair(r, &failed)) {
            return pause_run(r, &failed);
        }
        /* Nodes just started may need a moment to rejoin. */
        if ((rc = replan(r, &plan, PRECHECK_MS)) != CLI_OK) {
            end_run(r);
            return rc;
        }
    }
    r->n_steps = (unsigned)plan.n;
    r->k.steps = r->n_steps;
    versions_text(&r->target, vers, sizeof(vers));
    for (size_t i = 0; i < plan.n; i++) {
        done += step_done(r, &plan.steps[i]) &&
                (r->o.dry_run || !step_open(r, plan.steps[i].name));
    }
    printf("%s %s to %s (%s), backend %s: %zu steps, %u already done%s\n",
           r->o.dry_run ? "Dry run of rolling upgrade"
           : r->resume  ? "Resuming rolling upgrade"
                        : "Rolling upgrade",
           r->k.run_id, r->target.bin, vers, r->backend, plan.n, done,
           r->o.dry_run ? "; nothing is changed" : "");
    fflush(stdout);
    run_event(r, ORCH_ACT_RUN, ORCH_ST_BEGIN,
              "%s: %zu steps to %s (%s), backend %s, %u already done",
              r->resume ? "resumed" : "started", plan.n, r->target.bin, vers,
              r->backend, done);
    for (size_t i = 0; i < plan.n; i++) {
        const struct orch_step *s = &plan.steps[i];
        bool on = step_done(r, s);
        bool finish = on && !r->o.dry_run && step_open(r, s->name);
        if (on && !finish) {
            printf("step %u/%u %s (%s): already runs the target, skipped\n",
                   s->index, r->n_steps, s->name, orch_kind_name(s->kind));
            continue;
        }
        enum step_result res =
            run_step(r, s, r->target.bin, &r->target, false, finish);
        if (res == STEP_FAILED && atomic_load(&r->k.lease_lost)) {
            orch_plan_free(&plan);
            return lease_lost_exit(r);
        }
        if (res != STEP_OK) {
            rc = pause_run(r, s);
            orch_plan_free(&plan);
            return rc;
        }
    }
    if (r->o.dry_run) {
        printf("Dry run done: %zu steps; nothing was changed.\n", plan.n);
        orch_plan_free(&plan);
        return CLI_OK;
    }
    /* The release the nodes report when the binary could not tell. */
    const char *release = r->target.known ? r->target.release : "";
    char seen[32] = "";
    if (!r->target.known && reinspect(r, errmsg) == 0 && r->c.n > 0) {
        oz_strlcpy(seen, r->c.nodes[0].release, sizeof(seen));
        release = seen;
    }
    fmt_duration(now_ms() - r->t0, took, sizeof(took));
    run_event(r, ORCH_ACT_RUN, ORCH_ST_DONE,
              "done: %zu nodes run %s (release %s) in %s", plan.n,
              r->target.bin, release[0] != '\0' ? release : "?", took);
    end_run(r);
    printf(
        "Rolling upgrade done: %zu nodes now run %s (release %s) in %s. The "
        "cluster is pre-finalized: run 'ozone admin upgrade finalize' when "
        "ready (point of no return).\n",
        plan.n, r->target.bin, release[0] != '\0' ? release : "?", took);
    orch_plan_free(&plan);
    return CLI_OK;
}

/* ---- rolling back ---- */

static bool finalizing(const char *status)
{
    return strcmp(status, "FINALIZATION_IN_PROGRESS") == 0 ||
           strcmp(status, "FINALIZATION_DONE") == 0 ||
           strcmp(status, "STARTING_FINALIZATION") == 0;
}

/* Refuses once finalization started (DESIGN.md §6.4: an apparent version
 * above the old software's makes the old binary refuse to start). */
static bool rollback_refused(struct run *r, char *why, size_t size)
{
    if (finalizing(r->c.scm_status) || finalizing(r->c.om_status)) {
        snprintf(why, size,
                 "cannot roll back: finalization has started (point of no "
                 "return): SCM is %s, OM is %s",
                 r->c.scm_status, r->c.om_status);
        return true;
    }
    for (size_t i = 0; i < r->h->n; i++) {
        const struct hist_node *hn = &r->h->nodes[i];
        const struct orch_node *n = orch_cluster_find(&r->c, hn->node);
        struct orch_target from;
        char errmsg[ORCH_ERRMSG_SIZE];
        if (n == NULL || hn->from_bin[0] == '\0' ||
            strcmp(r->backend, "compose") == 0 ||
            orch_target_read(r->backend, hn->from_bin, &from, errmsg) != 0 ||
            !from.known) {
            continue;
        }
        enum version_catalog_id cat = catalog_of(n->kind);
        if (n->apparent[cat] > from.software[cat]) {
            snprintf(why, size,
                     "cannot roll back: finalization has started (point of "
                     "no return): '%s' acts as version %u, but '%s' "
                     "(release %s) runs only up to %u",
                     n->name, n->apparent[cat], hn->from_bin, from.release,
                     from.software[cat]);
            return true;
        }
    }
    return false;
}

static int rollback(struct run *r)
{
    struct orch_step *steps;
    char errmsg[ORCH_ERRMSG_SIZE], took[32];
    size_t n = 0;
    int rc;

    /* Refused before the lease when the cluster could be read; after the
     * repair of what an interrupted run left stopped in any case. */
    if (r->c.n > 0 && rollback_refused(r, errmsg, sizeof(errmsg))) {
        return cli_fail(CLI_FAILED, "%s", errmsg);
    }
    if (!r->o.dry_run && (rc = acquire_lease(r, true)) != CLI_OK) {
        return rc;
    }
    struct orch_step failed;
    if (!repair(r, &failed)) {
        return pause_run(r, &failed);
    }
    if (!inspect_within(r, PRECHECK_MS, errmsg)) {
        end_run(r);
        return cli_fail(CLI_FAILED, "%s", errmsg);
    }
    if (rollback_refused(r, errmsg, sizeof(errmsg))) {
        end_run(r);
        return cli_fail(CLI_FAILED, "%s", errmsg);
    }
    steps = calloc(r->c.n + 1, sizeof(*steps));
    if (steps == NULL) {
        return cli_fail(CLI_FAILED, "out of memory");
    }
    /* The reverse of the upgrade order: OMs, datanodes, Recon, SCM. */
    for (size_t i = r->c.n; i-- > 0;) {
        const struct orch_node *node = &r->c.nodes[i];
        const struct hist_node *hn = NULL;
        char bin[ORCH_PATH_SIZE];
        for (size_t k = 0; k < r->h->n; k++) {
            if (strcmp(r->h->nodes[k].node, node->name) == 0) {
                hn = &r->h->nodes[k];
            }
        }
        if (orch_backend_current_bin(r->b, node, bin, sizeof(bin), errmsg) !=
            0) {
            free(steps);
            end_run(r);
            return cli_fail(CLI_FAILED, "%s", errmsg);
        }
        if (hn == NULL || hn->from_bin[0] == '\0') {
            if (strcmp(bin, r->h->to_bin) == 0) {
                fprintf(stderr,
                        "ozone: warning: '%s' runs %s, but run %s did not "
                        "swap it, so what it ran before is unknown: left as "
                        "is\n",
                        node->name, bin, r->h->run_id);
            }
            continue;
        }
        if (strcmp(bin, hn->from_bin) == 0) {
            continue; /* back already */
        }
        struct orch_step *s = &steps[n++];
        s->index = (unsigned)n;
        s->node = i;
        oz_strlcpy(s->name, node->name, sizeof(s->name));
        s->kind = node->kind;
    }
    /* The OMs come first in this order: the one that leads now goes last
     * of them, so leadership moves once (DESIGN.md §8). */
    size_t n_oms = 0;
    while (n_oms < n && steps[n_oms].kind == ORCH_OM) {
        n_oms++;
    }
    for (size_t i = 0; i + 1 < n_oms; i++) {
        if (strcmp(steps[i].name, r->c.om_leader) == 0) {
            struct orch_step leader = steps[i];
            memmove(&steps[i], &steps[i + 1], (n_oms - i - 1) * sizeof(*steps));
            steps[n_oms - 1] = leader;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        steps[i].index = (unsigned)(i + 1);
    }
    r->n_steps = (unsigned)n;
    r->k.steps = r->n_steps;
    printf(
        "%s of run %s (to %s), backend %s: %zu nodes go back to the "
        "binaries they ran before%s\n",
        r->o.dry_run ? "Dry run of the rollback" : "Rollback", r->k.run_id,
        r->h->to_bin, r->backend, n,
        r->o.dry_run ? "; nothing is changed" : "");
    fflush(stdout);
    run_event(r, ORCH_ACT_ROLLBACK, ORCH_ST_BEGIN,
              "rollback started: %zu nodes back to their earlier binaries", n);
    for (size_t i = 0; i < n; i++) {
        const struct orch_step *s = &steps[i];
        const struct hist_node *hn = NULL;
        struct orch_target dest;
        for (size_t k = 0; k < r->h->n; k++) {
            if (strcmp(r->h->nodes[k].node, s->name) == 0) {
                hn = &r->h->nodes[k];
            }
        }
        if (strcmp(r->backend, "compose") == 0 ||
            orch_target_read(r->backend, hn->from_bin, &dest, errmsg) != 0) {
            memset(&dest, 0, sizeof(dest));
            oz_strlcpy(dest.bin, hn->from_bin, sizeof(dest.bin));
        }
        enum step_result res = run_step(r, s, hn->from_bin, &dest, true, false);
        if (res == STEP_FAILED && atomic_load(&r->k.lease_lost)) {
            free(steps);
            return lease_lost_exit(r);
        }
        if (res != STEP_OK) {
            rc = pause_run(r, s);
            free(steps);
            return rc;
        }
    }
    free(steps);
    if (r->o.dry_run) {
        printf("Dry run done: %zu steps; nothing was changed.\n", n);
        return CLI_OK;
    }
    fmt_duration(now_ms() - r->t0, took, sizeof(took));
    run_event(r, ORCH_ACT_RUN, ORCH_ST_ROLLED_BACK,
              "rolled back: %zu nodes run their earlier binaries again in %s",
              n, took);
    end_run(r);
    printf(
        "Rollback done: %zu nodes run the binaries they ran before run %s, "
        "in %s.\n",
        n, r->k.run_id, took);
    return CLI_OK;
}

/* ---- the command ---- */

static void run_usage(FILE *f)
{
    fputs(
        "Usage: ozone admin upgrade run --new-bin DIR|TAG --backend "
        "local|systemd|compose\n"
        "             [--local-manifest PATH] [--systemd-unit-dir DIR] "
        "[--compose-dir DIR]\n"
        "             [--dwell DURATION] [--step-timeout DURATION] "
        "[--max-error-rate F]\n"
        "             [--max-p99 DURATION] [--lease-ttl DURATION] "
        "[--dry-run] [--force]\n"
        "       ozone admin upgrade run --resume   [backend location "
        "options]\n"
        "       ozone admin upgrade run --rollback [backend location "
        "options]\n\n"
        "Rolls the cluster to the new binary one node at a time (SCM, Recon,\n"
        "datanodes, OMs), checking the cluster and the safety gate after "
        "each\n"
        "node, under a lease and a journal kept in OM. Finalization stays a\n"
        "separate step ('ozone admin upgrade finalize').\n\n"
        "  --new-bin DIR|TAG       directory holding the new 'ozone' (local, "
        "systemd)\n"
        "                          or image tag (compose)\n"
        "  --backend B             local (deploy/local manifest), systemd, "
        "compose\n"
        "  --local-manifest PATH   default: <--conf dir>/../cluster.json\n"
        "  --systemd-unit-dir DIR  default: /etc/systemd/system\n"
        "  --compose-dir DIR       holds docker-compose.yaml, "
        "docker-compose.upgrade.yaml, .env\n"
        "  --dwell D               wait after each node before the checks\n"
        "                          (ozone.upgrade.gate.window)\n"
        "  --step-timeout D        a node must be back within it "
        "(ozone.upgrade.step.timeout)\n"
        "  --max-error-rate F      gate: client RPC error share, 0.01 = 1%\n"
        "  --max-p99 D             gate: p99 client RPC latency\n"
        "  --lease-ttl D           OM lease time to live, renewed every "
        "third of it\n"
        "  --dry-run               print every command and file instead\n"
        "  --force                 take the lease over from a live holder\n"
        "  --resume                continue the last run where it stopped\n"
        "  --rollback              put every node of the last run back on "
        "its earlier\n"
        "                          binary (refused once finalization "
        "started)\n\n"
        "Exit status: 0 done, 1 failed or refused, 2 bad usage, 3 paused "
        "(the\n"
        "cluster keeps serving; --resume or --rollback continue).\n",
        f);
}

static int parse_duration_opt(const char *name, const char *v, long *out)
{
    long long ms = 0;

    if (v == NULL) {
        return CLI_OK;
    }
    if (conf_parse_duration_ms(v, &ms) != 0 || ms < 0 || ms > 7 * 86400000LL) {
        return cli_fail(CLI_USAGE,
                        "invalid value '%s' for '%s': give a duration like "
                        "30s, 500ms or 5m",
                        v, name);
    }
    *out = (long)ms;
    return CLI_OK;
}

static void install_signals(struct sigaction *old_int,
                            struct sigaction *old_term)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

int orch_cmd_run(struct cli *cli, int argc, char **argv)
{
    const char *new_bin = NULL, *backend = NULL, *manifest = NULL;
    const char *unit_dir = NULL, *compose_dir = NULL, *dwell = NULL;
    const char *step_timeout = NULL, *max_err = NULL, *max_p99 = NULL;
    const char *lease_ttl = NULL;
    bool dry_run = false, force = false, resume = false, rb = false;
    bool help = false;
    const struct cli_opt opts[] = {
        {NULL, "--new-bin", &new_bin, NULL},
        {NULL, "--backend", &backend, NULL},
        {NULL, "--local-manifest", &manifest, NULL},
        {NULL, "--systemd-unit-dir", &unit_dir, NULL},
        {NULL, "--compose-dir", &compose_dir, NULL},
        {NULL, "--dwell", &dwell, NULL},
        {NULL, "--step-timeout", &step_timeout, NULL},
        {NULL, "--max-error-rate", &max_err, NULL},
        {NULL, "--max-p99", &max_p99, NULL},
        {NULL, "--lease-ttl", &lease_ttl, NULL},
        {NULL, "--dry-run", NULL, &dry_run},
        {NULL, "--force", NULL, &force},
        {NULL, "--resume", NULL, &resume},
        {NULL, "--rollback", NULL, &rb},
    };
    struct sigaction old_int, old_term;
    char errmsg[ORCH_ERRMSG_SIZE];
    struct run *r;
    char *pos[1];
    size_t n_pos = 0;
    int rc;

    rc = cli_parse("ozone admin upgrade run", argc, argv, opts,
                   sizeof(opts) / sizeof(opts[0]), pos, 0, &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        run_usage(stdout);
        return CLI_OK;
    }
    if (resume && rb) {
        return cli_fail(CLI_USAGE,
                        "give one of --resume and --rollback; see 'ozone "
                        "admin upgrade run --help'");
    }
    if ((resume || rb) && (new_bin != NULL || backend != NULL)) {
        return cli_fail(CLI_USAGE,
                        "%s takes the backend and the new binary from the "
                        "journal of the last run: drop --new-bin and "
                        "--backend",
                        resume ? "--resume" : "--rollback");
    }
    if (!resume && !rb && (new_bin == NULL || backend == NULL)) {
        return cli_fail(CLI_USAGE,
                        "'ozone admin upgrade run' needs --new-bin DIR|TAG "
                        "and --backend local|systemd|compose (or --resume / "
                        "--rollback); see --help");
    }
    /* "/opt/ozone-1.1/" and "/opt/ozone-1.1" are one binary directory:
     * the journal and the backends compare them as text. */
    char bin_arg[ORCH_PATH_SIZE];
    if (new_bin != NULL) {
        oz_strlcpy(bin_arg, new_bin, sizeof(bin_arg));
        for (size_t len = strlen(bin_arg); len > 1 && bin_arg[len - 1] == '/';
             len--) {
            bin_arg[len - 1] = '\0';
        }
        new_bin = bin_arg;
    }
    if (backend != NULL && strcmp(backend, "local") != 0 &&
        strcmp(backend, "systemd") != 0 && strcmp(backend, "compose") != 0) {
        return cli_fail(CLI_USAGE,
                        "unknown backend '%s': give --backend local, systemd "
                        "or compose",
                        backend);
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return cli_fail(CLI_FAILED, "out of memory");
    }
    r->cli = cli;
    r->t0 = now_ms();
    r->resume = resume;
    r->rollback = rb;
    r->force = force;
    pthread_mutex_init(&r->k.mu, NULL);
    pthread_cond_init(&r->k.cv, NULL);
    r->k.cli = cli;
    if (orch_options_read(cli, &r->o, errmsg) != 0) {
        rc = cli_fail(CLI_USAGE, "%s", errmsg);
        goto out;
    }
    if ((rc = parse_duration_opt("--dwell", dwell, &r->o.dwell_ms)) != CLI_OK ||
        (rc = parse_duration_opt("--step-timeout", step_timeout,
                                 &r->o.step_timeout_ms)) != CLI_OK ||
        (rc = parse_duration_opt("--max-p99", max_p99, &r->o.max_p99_ms)) !=
            CLI_OK ||
        (rc = parse_duration_opt("--lease-ttl", lease_ttl,
                                 &r->o.lease_ttl_ms)) != CLI_OK) {
        goto out;
    }
    if (max_err != NULL) {
        char *end = NULL;
        double v = strtod(max_err, &end);
        if (end == max_err || *end != '\0' || !(v >= 0.0 && v <= 1.0)) {
            rc = cli_fail(CLI_USAGE,
                          "invalid value '%s' for '--max-error-rate': give a "
                          "fraction between 0 and 1 (0.01 = 1%%)",
                          max_err);
            goto out;
        }
        r->o.max_error_rate = v;
    }
    if (r->o.step_timeout_ms < 1000 || r->o.lease_ttl_ms < 3000) {
        rc = cli_fail(CLI_USAGE,
                      "--step-timeout must be at least 1s and --lease-ttl "
                      "at least 3s");
        goto out;
    }
    r->o.dry_run = dry_run;
    r->k.ttl_ms = r->o.lease_ttl_ms;

    /* The journal: history for the plan, or what to resume / undo. */
    rc = history_read(cli, &r->h, errmsg);
    if (rc != 0 && (resume || rb || !dry_run)) {
        rc = cli_fail(CLI_FAILED, "%s", errmsg);
        goto out;
    }
    keeper_identity(&r->k);
    if (!dry_run) {
        const char *ignored = NULL;
        if ((rc = lease_decide(r, resume || rb, false, &ignored)) != CLI_OK) {
            goto out;
        }
    }
    if (resume || rb) {
        if (r->h == NULL || !r->h->found || r->h->to_bin[0] == '\0' ||
            r->h->backend[0] == '\0') {
            rc = cli_fail(CLI_FAILED,
                          "nothing to %s: the OM's upgrade journal holds no "
                          "earlier run; start one with --new-bin and "
                          "--backend",
                          resume ? "resume" : "roll back");
            goto out;
        }
        const char *end = r->h->end_status;
        if (resume && strcmp(end, ORCH_ST_DONE) == 0) {
            printf("Nothing to resume: run %s is done (%s).\n", r->h->run_id,
                   r->h->end_detail);
            rc = CLI_OK;
            goto out;
        }
        if (resume && strcmp(end, ORCH_ST_ROLLED_BACK) == 0) {
            rc = cli_fail(CLI_FAILED,
                          "run %s was rolled back; start a new run with "
                          "--new-bin and --backend",
                          r->h->run_id);
            goto out;
        }
        if (rb && strcmp(end, ORCH_ST_ROLLED_BACK) == 0) {
            printf("Nothing to roll back: run %s is rolled back already.\n",
                   r->h->run_id);
            rc = CLI_OK;
            goto out;
        }
        oz_strlcpy(r->k.run_id, r->h->run_id, sizeof(r->k.run_id));
        oz_strlcpy(r->backend, r->h->backend, sizeof(r->backend));
        new_bin = r->h->to_bin;
    } else {
        oz_strlcpy(r->backend, backend, sizeof(r->backend));
        /* The last run stopped short on the way to the same binary: this
         * continues it (one journal, so --rollback knows every node). */
        if (r->h != NULL && r->h->found && strcmp(r->h->to_bin, new_bin) == 0 &&
            strcmp(r->h->backend, backend) == 0 &&
            strcmp(r->h->end_status, ORCH_ST_DONE) != 0 &&
            strcmp(r->h->end_status, ORCH_ST_ROLLED_BACK) != 0) {
            oz_strlcpy(r->k.run_id, r->h->run_id, sizeof(r->k.run_id));
            r->continuing = true;
        } else {
            new_run_id(r->k.run_id, sizeof(r->k.run_id));
        }
    }
    oz_strlcpy(r->o.backend, r->backend, sizeof(r->o.backend));
    oz_strlcpy(r->k.backend, r->backend, sizeof(r->k.backend));

    struct orch_backend_args ba = {.name = r->backend,
                                   .local_manifest = manifest,
                                   .systemd_unit_dir = unit_dir,
                                   .compose_dir = compose_dir,
                                   .dry_run = dry_run,
                                   .out = stdout};
    if (orch_backend_open(cli, &ba, &r->b, errmsg) != 0) {
        rc = cli_fail(CLI_FAILED, "%s", errmsg);
        goto out;
    }
    if (orch_target_read(r->backend, new_bin, &r->target, errmsg) != 0) {
        rc = cli_fail(CLI_FAILED, "%s", errmsg);
        goto out;
    }
    if (!inspect_within(r, 10000, errmsg)) {
        if (!resume && !rb) {
            rc = cli_fail(CLI_FAILED, "%s", errmsg);
            goto out;
        }
        /* The interrupted run may have left SCM itself stopped. */
        fprintf(stderr,
                "ozone: warning: %s; starting what the interrupted run left "
                "stopped first\n",
                errmsg);
    }
    install_signals(&old_int, &old_term);
    rc = rb ? rollback(r) : roll(r);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

out:
    keeper_stop(&r->k);
    if (r->k.om != NULL) {
        oz_client_free(r->k.om);
    }
    free(r->k.q);
    pthread_mutex_destroy(&r->k.mu);
    pthread_cond_destroy(&r->k.cv);
    orch_backend_close(r->b);
    orch_cluster_free(&r->c);
    history_free(r->h);
    free(r);
    return rc;
}
