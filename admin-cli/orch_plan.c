/* orch_plan.c: the plan of a rolling upgrade and `ozone admin upgrade
 * plan` (orch.h; DESIGN.md §2.1, §6.6, §6.7, §8).
 *
 * The plan is a pure function of the inspected cluster, the target
 * binary's versions, the options and the journal of earlier runs, so the
 * same code answers `upgrade plan`, decides what `upgrade run` does next
 * (a node already on the target is skipped, which is how --resume finds
 * where to go on) and is unit-tested on synthetic clusters.
 *
 * Order (DESIGN.md §2.1): SCM -> Recon -> datanodes -> OMs, so the server
 * side of every internal edge is always at least as new as its client.
 * Among the OMs the followers go first and the leader last, after it
 * handed leadership to an upgraded follower (DESIGN.md §8: a planned stop
 * of the leader transfers first), so the ring changes leader once.
 * Rollback walks the same order backwards.
 */
#include "orch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "client_upgrade.h"
#include "err.h"

/* Default time of one step before its gate window, when no earlier run
 * measured one (a restart and the node's catch-up). */
#define DEFAULT_SCM_MS 15000L
#define DEFAULT_RECON_MS 10000L
#define DEFAULT_DN_EXTRA_MS 5000L /* plus 3 heartbeat intervals */
#define DEFAULT_OM_MS 10000L
#define DEFAULT_TRANSFER_MS 2000L
#define HISTORY_PAGE 1000
#define HISTORY_MAX_PAGES 50

/* ---- small text helpers ---- */

struct sbuf
{
    char *p;
    size_t size;
    size_t len;
};

static void sb_init(struct sbuf *b, char *p, size_t size)
{
    b->p = p;
    b->size = size;
    b->len = 0;
    if (p != NULL && size > 0) {
        p[0] = '\0';
    }
}

/* Appends; a truncated buffer ends in "...". */
__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b,
                                                            const char *fmt,
                                                            ...)
{
    va_list ap;

    if (b->p == NULL || b->size == 0 || b->len + 1 >= b->size) {
        return;
    }
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->size - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= b->size - b->len) {
        b->len = b->size - 1;
        if (b->size > 4) {
            memcpy(b->p + b->size - 4, "...", 4);
        }
        return;
    }
    b->len += (size_t)n;
}

/* "; " between reasons. */
static void sb_reason(struct sbuf *b)
{
    if (b->len > 0) {
        sb_printf(b, "; ");
    }
}

/* "45s", "2m 10s", "1h 5m". */
static void fmt_duration(long ms, char *out, size_t size)
{
    long s = (ms + 500) / 1000;

    if (s < 60) {
        snprintf(out, size, "%lds", s);
    } else if (s < 3600) {
        snprintf(out, size, "%ldm %lds", s / 60, s % 60);
    } else {
        snprintf(out, size, "%ldh %ldm", s / 3600, (s % 3600) / 60);
    }
}

/* ---- options ---- */

static int read_ms(struct cli *cli,
                   const char *key,
                   const char *def,
                   long *out,
                   char *errmsg)
{
    long long v = 0;

    (void)conf_parse_duration_ms(def, &v);
    *out = (long)v;
    if (conf_get_duration_ms(cli->conf, key, def, &v, errmsg) != 0) {
        return OZ_EINVAL;
    }
    *out = (long)v;
    return 0;
}

/* A fraction: "0.01" or "1%", in [0, 1]. */
static int read_rate(struct cli *cli, double *out, char *errmsg)
{
    static const char key[] = "ozone.upgrade.gate.max.error.rate";
    const char *text = conf_get_str(cli->conf, key, "0.01");
    char *end = NULL;

    *out = 0.01;
    errno = 0;
    double v = strtod(text, &end);
    if (end != text && *end == '%' && end[1] == '\0') {
        v /= 100;
        end++;
    }
    if (end == text || *end != '\0' || errno != 0 || !(v >= 0 && v <= 1)) {
        oz_errmsg_printf(errmsg,
                         "invalid value '%s' for '%s': expected a fraction "
                         "from 0 to 1 like 0.01, or a percentage like 1%%",
                         text, key);
        return OZ_EINVAL;
    }
    *out = v;
    return 0;
}

int orch_options_read(struct cli *cli, struct orch_options *o, char *errmsg)
{
    char msg[OZ_ERRMSG_SIZE];
    long long lag = 10000;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    errmsg[0] = '\0';
#define KEEP_FIRST(call)                             \
    do {                                             \
        if ((call) != 0 && rc == 0) {                \
            rc = OZ_EINVAL;                          \
            oz_strlcpy(errmsg, msg, OZ_ERRMSG_SIZE); \
        }                                            \
    } while (0)
    KEEP_FIRST(read_ms(cli, "ozone.upgrade.step.timeout", "5m",
                       &o->step_timeout_ms, msg));
    KEEP_FIRST(
        read_ms(cli, "ozone.upgrade.gate.window", "10s", &o->dwell_ms, msg));
    KEEP_FIRST(read_rate(cli, &o->max_error_rate, msg));
    KEEP_FIRST(
        read_ms(cli, "ozone.upgrade.gate.max.p99", "2s", &o->max_p99_ms, msg));
    KEEP_FIRST(read_ms(cli, "ozone.upgrade.lease.timeout", "2m",
                       &o->lease_ttl_ms, msg));
    KEEP_FIRST(read_ms(cli, "hdds.heartbeat.interval", "30s",
                       &o->dn_heartbeat_ms, msg));
    if (conf_get_int(cli->conf, "ozone.upgrade.max.om.lag", 10000, &lag, msg) !=
            0 ||
        lag < 0) {
        if (lag < 0) {
            oz_errmsg_printf(msg,
                             "invalid value %lld for "
                             "'ozone.upgrade.max.om.lag': expected a count "
                             "of log entries, 0 or more",
                             lag);
        }
        KEEP_FIRST(OZ_EINVAL);
        lag = 10000;
    }
#undef KEEP_FIRST
    o->max_om_lag = (uint64_t)lag;
    return rc;
}

void orch_options_defaults(struct cli *cli, struct orch_options *o)
{
    char errmsg[OZ_ERRMSG_SIZE];

    if (orch_options_read(cli, o, errmsg) != 0) {
        fprintf(stderr, "ozone: warning: %s; using its default\n", errmsg);
    }
}

/* ---- versions ---- */

static enum version_catalog_id own_catalog(enum orch_kind k)
{
    return k == ORCH_OM ? VERSION_CATALOG_OM : VERSION_CATALOG_HDDS;
}

static bool versions_known(const unsigned *sw)
{
    for (int k = 0; k < VERSION_CATALOG_COUNT; k++) {
        if (sw[k] != 0) {
            return true;
        }
    }
    return false;
}

/* a runs newer software than b in some catalog both report. Releases
 * only ever raise versions, so this is "a's release is later". */
static bool newer(const unsigned *a, const unsigned *b)
{
    for (int k = 0; k < VERSION_CATALOG_COUNT; k++) {
        if (a[k] != 0 && b[k] != 0 && a[k] > b[k]) {
            return true;
        }
    }
    return false;
}

static bool out_of_service(const struct orch_node *n)
{
    return n->kind == ORCH_DATANODE &&
           (strcmp(n->op_state, "DECOMMISSIONED") == 0 ||
            strcmp(n->op_state, "IN_MAINTENANCE") == 0);
}

/* "1.1.0 (OM 102)", or "HDDS 100" when the release is unknown (a
 * datanode that does not answer: SCM's record). */
static void describe(const struct orch_node *n, char *out, size_t size)
{
    enum version_catalog_id own = own_catalog(n->kind);
    const char *cat = version_builtin_catalog(own)->name;

    if (n->release[0] != '\0') {
        snprintf(out, size, "%s (%s %u)", n->release, cat, n->software[own]);
    } else {
        snprintf(out, size, "%s %u", cat, n->software[own]);
    }
}

static bool in_versions_check(const struct orch_node *n)
{
    return versions_known(n->software) && !out_of_service(n);
}

bool orch_versions_valid(const struct orch_cluster *c,
                         char *why,
                         size_t why_size)
{
    struct sbuf b;
    bool ok = true;

    sb_init(&b, why, why_size);
    for (size_t i = 0; i < c->n; i++) {
        const struct orch_node *late = &c->nodes[i];
        char names[256] = "", mine[64], theirs[64] = "";
        size_t count = 0;

        if (!in_versions_check(late)) {
            continue;
        }
        /* Only across kinds: datanodes (or OMs) may roll in any order
         * among themselves. */
        for (size_t j = 0; j < c->n; j++) {
            const struct orch_node *early = &c->nodes[j];
            if (early->kind >= late->kind || !in_versions_check(early) ||
                !newer(late->software, early->software)) {
                continue;
            }
            size_t used = strlen(names);
            if (count < 6) {
                snprintf(names + used, sizeof(names) - used, "%s%s",
                         count > 0 ? ", " : "", early->name);
            } else if (count == 6) {
                snprintf(names + used, sizeof(names) - used, " and more");
            }
            if (count == 0) {
                describe(early, theirs, sizeof(theirs));
            }
            count++;
        }
        if (count == 0) {
            continue;
        }
        ok = false;
        describe(late, mine, sizeof(mine));
        sb_reason(&b);
        sb_printf(&b,
                  "%s runs %s but %s, earlier in the upgrade order (SCM, "
                  "Recon, datanodes, OMs), %s %s: upgrade %s first or roll "
                  "%s back",
                  late->name, mine, names, count > 1 ? "run" : "runs", theirs,
                  count > 1 ? "them" : "it", late->name);
    }
    return ok;
}

/* The cluster-level refusals shared by the plan and the step checks. */
static void check_datanodes(const struct orch_cluster *c, struct sbuf *b)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct orch_node *n = &c->nodes[i];
        if (n->kind != ORCH_DATANODE || out_of_service(n) ||
            strcmp(n->state, "HEALTHY") == 0 ||
            strcmp(n->state, "HEALTHY_READONLY") == 0) {
            continue;
        }
        sb_reason(b);
        sb_printf(b,
                  "datanode '%s' is %s at SCM: bring it back, or "
                  "decommission it or put it in maintenance, before going on",
                  n->name, n->state);
    }
}

static void check_oms(const struct orch_cluster *c,
                      uint64_t max_lag,
                      struct sbuf *b)
{
    if (c->om_leader[0] == '\0') {
        sb_reason(b);
        sb_printf(b, "no OM leader: wait for the OMs to elect one");
    }
    for (size_t i = 0; i < c->n; i++) {
        const struct orch_node *n = &c->nodes[i];
        if (n->kind != ORCH_OM) {
            continue;
        }
        if (!n->reachable) {
            sb_reason(b);
            sb_printf(b, "OM '%s' at '%s' does not answer: start it first",
                      n->name, n->rpc_address);
        } else if (c->om_leader[0] != '\0' && !n->leader &&
                   c->om_leader_applied > n->applied_index &&
                   c->om_leader_applied - n->applied_index > max_lag) {
            sb_reason(b);
            sb_printf(b,
                      "OM '%s' is %" PRIu64
                      " log entries behind the leader (allowed: %" PRIu64
                      ", ozone.upgrade.max.om.lag): wait for it to catch up",
                      n->name, c->om_leader_applied - n->applied_index,
                      max_lag);
        }
    }
}

bool orch_cluster_healthy(const struct orch_cluster *c,
                          const struct orch_options *o,
                          char *why,
                          size_t why_size)
{
    char versions[ORCH_MSG_SIZE];
    struct sbuf b;
    size_t n_dns = 0;

    sb_init(&b, why, why_size);
    for (size_t i = 0; i < c->n; i++) {
        const struct orch_node *n = &c->nodes[i];
        n_dns += n->kind == ORCH_DATANODE ? 1 : 0;
        if (n->kind == ORCH_SCM && !n->reachable) {
            sb_reason(&b);
            sb_printf(&b, "SCM at '%s' does not answer: start it",
                      n->rpc_address);
        }
    }
    check_datanodes(c, &b);
    if (n_dns > 0 && c->pipelines_open == 0) {
        sb_reason(&b);
        sb_printf(&b,
                  "SCM has no OPEN pipeline: wait for the datanodes to "
                  "form one");
    }
    check_oms(c, o->max_om_lag, &b);
    if (!orch_versions_valid(c, versions, sizeof(versions))) {
        sb_reason(&b);
        sb_printf(&b, "%s", versions);
    }
    return b.len == 0;
}

/* ---- measured step durations (the journal of earlier runs) ---- */

struct measured
{
    bool have[4];
    long ms[4];         /* average "step" BEGIN -> OK, per kind */
    const char *run[4]; /* the run it was measured in */
    uint64_t latest[4]; /* seq of that run's newest OK of the kind */
};

static int kind_of(const char *name)
{
    for (int k = ORCH_SCM; k <= ORCH_OM; k++) {
        if (name != NULL && strcmp(name, orch_kind_name(k)) == 0) {
            return k;
        }
    }
    return -1;
}

static bool is(const char *s, const char *want)
{
    return s != NULL && strcmp(s, want) == 0;
}

static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* The BEGIN of the step that e (a step OK) ends; NULL if not journaled. */
static const Ozone__Om__OmUpgradeJournalEntry *step_begin(
    const Ozone__Om__OmUpgradeJournalReadResponse *h,
    size_t ok_index)
{
    const Ozone__Om__OmUpgradeJournalEntry *e = h->entries[ok_index];

    for (size_t i = ok_index; i > 0; i--) {
        const Ozone__Om__OmUpgradeJournalEntry *b = h->entries[i - 1];
        if (is(b->action, ORCH_ACT_STEP) && b->step == e->step &&
            same(b->run_id, e->run_id) && same(b->node, e->node)) {
            return is(b->status, ORCH_ST_BEGIN) ? b : NULL;
        }
    }
    return NULL;
}

/* Per kind: the average duration of that kind's steps in the newest run
 * that completed one. */
static void measure(const Ozone__Om__OmUpgradeJournalReadResponse *h,
                    struct measured *m)
{
    long sum[4] = {0};
    long count[4] = {0};

    memset(m, 0, sizeof(*m));
    if (h == NULL) {
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < h->n_entries; i++) {
            const Ozone__Om__OmUpgradeJournalEntry *e = h->entries[i];
            int k = kind_of(e->kind);
            if (k < 0 || !is(e->action, ORCH_ACT_STEP) ||
                !is(e->status, ORCH_ST_OK)) {
                continue;
            }
            const Ozone__Om__OmUpgradeJournalEntry *b = step_begin(h, i);
            if (b == NULL || b->time_ms > e->time_ms) {
                continue;
            }
            if (pass == 0) {
                /* First pass: which run measured each kind last. */
                if (!m->have[k] || e->seq >= m->latest[k]) {
                    m->have[k] = true;
                    m->latest[k] = e->seq;
                    m->run[k] = e->run_id;
                }
            } else if (same(e->run_id, m->run[k])) {
                sum[k] += (long)(e->time_ms - b->time_ms);
                count[k]++;
            }
        }
    }
    for (int k = 0; k < 4; k++) {
        if (m->have[k] && count[k] > 0) {
            m->ms[k] = sum[k] / count[k];
        } else {
            m->have[k] = false;
        }
    }
}

static long default_ms(enum orch_kind k,
                       const struct orch_options *o,
                       bool transfer)
{
    long hb = o->dn_heartbeat_ms > 0 ? o->dn_heartbeat_ms : 30000;
    long base = k == ORCH_SCM        ? DEFAULT_SCM_MS
                : k == ORCH_RECON    ? DEFAULT_RECON_MS
                : k == ORCH_DATANODE ? 3 * hb + DEFAULT_DN_EXTRA_MS
                                     : DEFAULT_OM_MS;

    return base + (transfer ? DEFAULT_TRANSFER_MS : 0) + o->dwell_ms;
}

/* ---- the plan ---- */

/* The node already runs the target (the release when both are known,
 * else its own catalog's software version). */
static bool runs_target(const struct orch_node *n, const struct orch_target *t)
{
    enum version_catalog_id own = own_catalog(n->kind);

    if (!t->known) {
        return false;
    }
    if (n->release[0] != '\0' && t->release[0] != '\0') {
        return strcmp(n->release, t->release) == 0;
    }
    return n->software[own] != 0 && n->software[own] == t->software[own];
}

/* Appends to order the nodes of kind in cluster order; OMs: followers
 * first, the leader last. */
static void add_kind(const struct orch_cluster *c,
                     enum orch_kind kind,
                     size_t *order,
                     size_t *n)
{
    for (int leader_pass = 0; leader_pass < 2; leader_pass++) {
        for (size_t i = 0; i < c->n; i++) {
            const struct orch_node *node = &c->nodes[i];
            bool last = kind == ORCH_OM && node->leader;
            if (node->kind == kind && last == (leader_pass == 1)) {
                order[(*n)++] = i;
            }
        }
    }
}

/* The parts every step's checks share: the short words and what they
 * stand for. */
#define HEALTH_WORDS "cluster healthy"
#define GATE_WORDS "safety gate"

static void common_checks(const struct orch_options *o, struct orch_plan *p)
{
    char window[32];

    fmt_duration(o->dwell_ms, window, sizeof(window));
    snprintf(p->health_checks, sizeof(p->health_checks),
             "SCM up, every in-service datanode HEALTHY, an OPEN pipeline, "
             "an OM leader with every OM within %" PRIu64
             " log entries of it, versions in upgrade order",
             o->max_om_lag);
    snprintf(p->gate_checks, sizeof(p->gate_checks),
             "over %s of client RPCs to OMs and datanodes: server errors <= "
             "%.3g%%, p99 <= %ld ms",
             window, o->max_error_rate * 100, o->max_p99_ms);
}

static void step_checks(const struct orch_cluster *c,
                        const struct orch_target *t,
                        const struct orch_plan *p,
                        size_t n_oms,
                        struct orch_step *s)
{
    const struct orch_node *n = &c->nodes[s->node];
    char on[96], health[ORCH_MSG_SIZE / 2 + 32], gate[ORCH_MSG_SIZE / 2 + 32];

    if (p->rollback) {
        snprintf(on, sizeof(on), "on its previous binary");
    } else if (t->known) {
        snprintf(on, sizeof(on), "on %s", t->release);
    } else {
        snprintf(on, sizeof(on), "on the new binary");
    }
    snprintf(health, sizeof(health), HEALTH_WORDS " (%s)", p->health_checks);
    snprintf(gate, sizeof(gate), GATE_WORDS " (%s)", p->gate_checks);
    switch (s->kind) {
        case ORCH_SCM:
            snprintf(s->pre_checks, sizeof(s->pre_checks),
                     "%s; no finalization in progress", health);
            snprintf(s->post_checks, sizeof(s->post_checks),
                     "SCM answers %s; datanodes HEALTHY at SCM again; an "
                     "OPEN pipeline; %s",
                     on, gate);
            break;
        case ORCH_RECON:
            snprintf(s->pre_checks, sizeof(s->pre_checks), "%s", health);
            snprintf(s->post_checks, sizeof(s->post_checks),
                     "Recon answers %s; %s", on, gate);
            break;
        case ORCH_DATANODE:
            snprintf(s->pre_checks, sizeof(s->pre_checks), "%s", health);
            snprintf(s->post_checks, sizeof(s->post_checks),
                     "%s answers %s and is HEALTHY at SCM; an OPEN pipeline; "
                     "%s",
                     n->name, on, gate);
            break;
        case ORCH_OM:
            if (s->transfer_leader) {
                snprintf(s->pre_checks, sizeof(s->pre_checks),
                         "transfer leadership to an upgraded follower first "
                         "('ozone admin om transfer'); then %s",
                         health);
            } else {
                snprintf(s->pre_checks, sizeof(s->pre_checks), "%s", health);
            }
            if (n_oms > 1) {
                snprintf(s->post_checks, sizeof(s->post_checks),
                         "%s answers %s, back in the ring and caught up with "
                         "the leader; %s",
                         n->name, on, gate);
            } else {
                snprintf(s->post_checks, sizeof(s->post_checks),
                         "%s answers %s and serves again (clients wait for "
                         "it up to ozone.client.om.wait.timeout); %s",
                         n->name, on, gate);
            }
            break;
    }
}

/* Why the roll may not start: every reason, in the order an operator
 * fixes them. */
static void refusals(const struct orch_cluster *c,
                     const struct orch_target *t,
                     const struct orch_options *o,
                     struct orch_plan *p)
{
    char versions[ORCH_MSG_SIZE];
    struct sbuf b;

    sb_init(&b, p->refusal, sizeof(p->refusal));
    for (size_t i = 0; i < c->n; i++) {
        if (c->nodes[i].kind == ORCH_SCM && !c->nodes[i].reachable) {
            sb_reason(&b);
            sb_printf(&b, "SCM at '%s' does not answer: start it",
                      c->nodes[i].rpc_address);
        }
    }
    if (strcmp(c->scm_status, "FINALIZATION_IN_PROGRESS") == 0) {
        sb_reason(&b);
        sb_printf(&b,
                  "SCM finalization is in progress: wait until 'ozone admin "
                  "upgrade status' shows it done");
    }
    if (strcmp(c->om_status, "FINALIZATION_IN_PROGRESS") == 0) {
        sb_reason(&b);
        sb_printf(&b,
                  "OM finalization is in progress: wait until 'ozone admin "
                  "upgrade status' shows it done");
    }
    check_datanodes(c, &b);
    check_oms(c, o->max_om_lag, &b);
    if (!orch_versions_valid(c, versions, sizeof(versions))) {
        sb_reason(&b);
        sb_printf(&b, "%s", versions);
    }
    for (size_t i = 0; t->known && i < c->n; i++) {
        const struct orch_node *n = &c->nodes[i];
        enum version_catalog_id own = own_catalog(n->kind);
        char mine[64];

        if (!in_versions_check(n) || !newer(n->software, t->software)) {
            continue;
        }
        describe(n, mine, sizeof(mine));
        sb_reason(&b);
        sb_printf(&b,
                  "%s runs %s, newer than the target %s (%s %u): a roll only "
                  "moves forward; give --new-bin a release at least as new",
                  n->name, mine, t->release, version_builtin_catalog(own)->name,
                  t->software[own]);
    }
    p->refused = b.len > 0;
}

static void estimate_basis(const struct measured *m,
                           const bool *needed,
                           struct orch_plan *p)
{
    const char *runs[4];
    size_t n_runs = 0;
    bool any_default = false, any_measured = false;
    struct sbuf b;

    for (int k = 0; k < 4; k++) {
        if (!needed[k]) {
            continue;
        }
        if (!m->have[k]) {
            any_default = true;
            continue;
        }
        any_measured = true;
        bool seen = false;
        for (size_t r = 0; r < n_runs; r++) {
            seen = seen || strcmp(runs[r], m->run[k]) == 0;
        }
        if (!seen) {
            runs[n_runs++] = m->run[k];
        }
    }
    sb_init(&b, p->estimate_basis, sizeof(p->estimate_basis));
    if (!any_measured) {
        sb_printf(&b, "defaults");
        return;
    }
    sb_printf(&b, "measured in run%s ", n_runs > 1 ? "s" : "");
    for (size_t r = 0; r < n_runs; r++) {
        sb_printf(&b, "%s%s", r > 0 ? ", " : "", runs[r]);
    }
    if (any_default) {
        sb_printf(&b, "; defaults for");
        for (int k = 0, first = 1; k < 4; k++) {
            if (needed[k] && !m->have[k]) {
                sb_printf(&b, "%s %s", first ? "" : ",",
                          orch_kind_name((enum orch_kind)k));
                first = 0;
            }
        }
    }
}

int orch_plan_build(const struct orch_cluster *c,
                    const struct orch_target *t,
                    const struct orch_options *o,
                    const Ozone__Om__OmUpgradeJournalReadResponse *history,
                    bool rollback,
                    struct orch_plan *out)
{
    static const enum orch_kind up[4] = {ORCH_SCM, ORCH_RECON, ORCH_DATANODE,
                                         ORCH_OM};
    struct measured m;
    bool needed[4] = {false};
    size_t n_order = 0, n_oms = 0;
    size_t *order;

    memset(out, 0, sizeof(*out));
    out->rollback = rollback;
    oz_strlcpy(out->backend, o->backend, sizeof(out->backend));
    common_checks(o, out);
    order = calloc(c->n > 0 ? c->n : 1, sizeof(*order));
    if (order == NULL) {
        return OZ_ENOMEM;
    }
    for (int g = 0; g < 4; g++) {
        add_kind(c, up[rollback ? 3 - g : g], order, &n_order);
    }
    for (size_t i = 0; i < c->n; i++) {
        n_oms += c->nodes[i].kind == ORCH_OM ? 1 : 0;
    }
    out->steps = calloc(n_order > 0 ? n_order : 1, sizeof(*out->steps));
    if (out->steps == NULL) {
        free(order);
        return OZ_ENOMEM;
    }
    measure(history, &m);
    for (size_t i = 0; i < n_order; i++) {
        const struct orch_node *n = &c->nodes[order[i]];
        bool done = runs_target(n, t);
        /* Rolling back touches only the nodes that run the target. */
        if (rollback && t->known && !done) {
            continue;
        }
        struct orch_step *s = &out->steps[out->n++];
        s->index = (unsigned)out->n;
        s->node = order[i];
        oz_strlcpy(s->name, n->name, sizeof(s->name));
        s->kind = n->kind;
        s->already_done = !rollback && done;
        s->transfer_leader =
            n->kind == ORCH_OM && n->leader && n_oms > 1 && !s->already_done;
        s->estimate_ms = m.have[n->kind]
                             ? m.ms[n->kind]
                             : default_ms(n->kind, o, s->transfer_leader);
        step_checks(c, t, out, n_oms, s);
        if (!s->already_done) {
            out->estimate_ms += s->estimate_ms;
            needed[n->kind] = true;
        }
    }
    free(order);
    estimate_basis(&m, needed, out);
    refusals(c, t, o, out);
    return 0;
}

void orch_plan_free(struct orch_plan *p)
{
    if (p == NULL) {
        return;
    }
    free(p->steps);
    memset(p, 0, sizeof(*p));
}

/* ---- output ---- */

/* The releases the cluster runs now, oldest first: "1.0.0", or "1.0.0
 * and 1.1.0" mid-roll. */
static void cluster_release(const struct orch_cluster *c,
                            char *out,
                            size_t size)
{
    const char *seen[8];
    size_t n = 0;
    struct sbuf b;

    for (size_t i = 0; i < c->n && n < sizeof(seen) / sizeof(*seen); i++) {
        const char *r = c->nodes[i].release;
        bool dup = r[0] == '\0';
        for (size_t j = 0; j < n && !dup; j++) {
            dup = strcmp(seen[j], r) == 0;
        }
        if (!dup) {
            size_t k = n++;
            while (k > 0 && strverscmp(seen[k - 1], r) > 0) {
                seen[k] = seen[k - 1];
                k--;
            }
            seen[k] = r;
        }
    }
    sb_init(&b, out, size);
    for (size_t i = 0; i < n; i++) {
        sb_printf(&b, "%s%s",
                  i == 0       ? ""
                  : i + 1 == n ? " and "
                               : ", ",
                  seen[i]);
    }
    if (n == 0) {
        sb_printf(&b, "unknown");
    }
}

static void target_text(const struct orch_target *t, char *out, size_t size)
{
    if (t->known) {
        snprintf(out, size, "%s (%s)", t->release, t->bin);
    } else if (t->bin[0] != '\0') {
        snprintf(out, size, "'%s' (versions unknown until a node runs it)",
                 t->bin);
    } else {
        snprintf(out, size,
                 "an unknown release (no --new-bin given: every node is a "
                 "step)");
    }
}

static void print_cluster_line(const struct orch_cluster *c)
{
    size_t dns = 0, healthy = 0, oms = 0;
    const struct orch_node *recon = NULL;
    char down[256] = "";

    for (size_t i = 0; i < c->n; i++) {
        const struct orch_node *n = &c->nodes[i];
        if (n->kind == ORCH_DATANODE) {
            dns++;
            healthy += strcmp(n->state, "HEALTHY") == 0 ? 1 : 0;
        } else if (n->kind == ORCH_OM) {
            oms++;
        } else if (n->kind == ORCH_RECON) {
            recon = n;
        }
        if (!n->reachable) {
            size_t used = strlen(down);
            snprintf(down + used, sizeof(down) - used, "%s%s%s%s%s",
                     used > 0 ? ", " : "", n->name,
                     n->state[0] != '\0' ? " (" : "", n->state,
                     n->state[0] != '\0' ? ")" : "");
        }
    }
    printf("Cluster: SCM %s, OM %s, %zu datanode%s", c->scm_status,
           c->om_status, dns, dns == 1 ? "" : "s");
    if (healthy < dns) {
        printf(" (%zu HEALTHY)", healthy);
    }
    printf(", %zu OM%s", oms, oms == 1 ? "" : "s");
    if (oms > 1) {
        printf(c->om_leader[0] != '\0' ? " (leader %s)" : " (no leader)",
               c->om_leader);
    }
    if (recon != NULL) {
        printf(", Recon%s", recon->reachable ? "" : " (down)");
    }
    printf("\n");
    if (down[0] != '\0') {
        printf("Not answering: %s\n", down);
    }
}

/* One check line, with the shared parts (printed once above) left out:
 * "cluster healthy (...)" -> "cluster healthy". */
static void print_check(const char *head,
                        const char *text,
                        const struct orch_plan *p)
{
    const char *parts[2] = {p->health_checks, p->gate_checks};

    fputs("       ", stdout);
    fputs(head, stdout);
    while (*text != '\0') {
        bool cut = false;
        for (size_t i = 0; i < 2 && !cut; i++) {
            size_t len = strlen(parts[i]);
            if (len > 0 && text[0] == ' ' && text[1] == '(' &&
                strncmp(text + 2, parts[i], len) == 0 && text[2 + len] == ')') {
                text += 3 + len;
                cut = true;
            }
        }
        if (!cut) {
            putchar(*text++);
        }
    }
    putchar('\n');
}

void orch_plan_print(const struct orch_cluster *c,
                     const struct orch_target *t,
                     const struct orch_plan *p)
{
    char from[128], to[ORCH_PATH_SIZE + 96], est[32];
    size_t todo = 0;

    cluster_release(c, from, sizeof(from));
    target_text(t, to, sizeof(to));
    if (p->rollback) {
        printf("Rollback plan: %s -> each node's previous binary", from);
    } else {
        printf("Rolling upgrade plan: %s -> %s", from, to);
    }
    if (p->backend[0] != '\0') {
        printf(", backend %s", p->backend);
    }
    printf("\n");
    print_cluster_line(c);
    if (p->n > 0) {
        printf("Checks: '" HEALTH_WORDS "' = %s; '" GATE_WORDS "' = %s.\n",
               p->health_checks, p->gate_checks);
    }
    for (size_t i = 0; i < p->n; i++) {
        const struct orch_step *s = &p->steps[i];
        const struct orch_node *n = &c->nodes[s->node];
        char label[ORCH_NAME_SIZE + 32];

        snprintf(label, sizeof(label), "%s (%s%s)", s->name,
                 orch_kind_name(s->kind), n->leader ? ", leader" : "");
        if (s->already_done) {
            printf("%3u. %-32s already runs %s: skipped\n", s->index, label,
                   t->release);
            continue;
        }
        todo++;
        fmt_duration(s->estimate_ms, est, sizeof(est));
        printf("%3u. %-32s ~%s\n", s->index, label, est);
        print_check("check before: ", s->pre_checks, p);
        print_check("check after:  ", s->post_checks, p);
    }
    if (p->n == 0 || todo == 0) {
        printf("Nothing to roll: every node %s.\n",
               p->rollback ? "already runs its previous binary"
                           : "already runs the target");
    }
    if (p->rollback) {
        printf(
            "Rollback restores the binary each node ran before; nothing was "
            "finalized, so the roll can go forward again later.\n");
    } else {
        printf(
            "Point of no return: 'ozone admin upgrade finalize' after the "
            "roll; until then every node can be rolled back ('ozone admin "
            "upgrade run --rollback').\n");
    }
    fmt_duration(p->estimate_ms, est, sizeof(est));
    printf("Estimated time: %s (%s)\n", est,
           strcmp(p->estimate_basis, "defaults") == 0
               ? "defaults; no earlier roll measured"
               : p->estimate_basis);
}

static cJSON *versions_json(const unsigned *v)
{
    cJSON *o = cJSON_CreateObject();

    for (int k = 0; k < VERSION_CATALOG_COUNT; k++) {
        cJSON_AddNumberToObject(
            o, version_builtin_catalog((enum version_catalog_id)k)->name, v[k]);
    }
    return o;
}

static cJSON *node_json(const struct orch_node *n)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "name", n->name);
    cJSON_AddStringToObject(o, "kind", orch_kind_name(n->kind));
    cJSON_AddStringToObject(o, "rpcAddress", n->rpc_address);
    cJSON_AddStringToObject(o, "httpAddress", n->http_address);
    cJSON_AddBoolToObject(o, "reachable", n->reachable);
    cJSON_AddStringToObject(o, "release", n->release);
    cJSON_AddItemToObject(o, "softwareVersions", versions_json(n->software));
    cJSON_AddItemToObject(o, "apparentVersions", versions_json(n->apparent));
    cJSON_AddStringToObject(o, "state", n->state);
    if (n->kind == ORCH_DATANODE) {
        cJSON_AddStringToObject(o, "opState", n->op_state);
    }
    if (n->kind == ORCH_OM) {
        cJSON_AddBoolToObject(o, "leader", n->leader);
        cJSON_AddNumberToObject(o, "appliedIndex", (double)n->applied_index);
    }
    return o;
}

cJSON *orch_plan_json(const struct orch_cluster *c,
                      const struct orch_target *t,
                      const struct orch_plan *p)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *cl = cJSON_AddObjectToObject(root, "cluster");
    cJSON *tg = cJSON_AddObjectToObject(root, "target");
    char from[128];

    cluster_release(c, from, sizeof(from));
    cJSON_AddStringToObject(cl, "release", from);
    cJSON_AddStringToObject(cl, "scmStatus", c->scm_status);
    cJSON_AddStringToObject(cl, "omStatus", c->om_status);
    cJSON_AddStringToObject(cl, "omServiceId", c->om_service_id);
    cJSON_AddStringToObject(cl, "omLeader", c->om_leader);
    cJSON_AddNumberToObject(cl, "omLeaderAppliedIndex",
                            (double)c->om_leader_applied);
    cJSON_AddNumberToObject(cl, "pipelinesOpen", c->pipelines_open);
    cJSON *nodes = cJSON_AddArrayToObject(cl, "nodes");
    for (size_t i = 0; i < c->n; i++) {
        cJSON_AddItemToArray(nodes, node_json(&c->nodes[i]));
    }
    cJSON_AddStringToObject(tg, "bin", t->bin);
    cJSON_AddBoolToObject(tg, "known", t->known);
    cJSON_AddStringToObject(tg, "release", t->release);
    cJSON_AddItemToObject(tg, "softwareVersions", versions_json(t->software));
    cJSON_AddBoolToObject(root, "rollback", p->rollback);
    cJSON_AddStringToObject(root, "backend", p->backend);
    cJSON *steps = cJSON_AddArrayToObject(root, "steps");
    for (size_t i = 0; i < p->n; i++) {
        const struct orch_step *s = &p->steps[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", s->index);
        cJSON_AddStringToObject(o, "node", s->name);
        cJSON_AddStringToObject(o, "kind", orch_kind_name(s->kind));
        cJSON_AddBoolToObject(o, "alreadyDone", s->already_done);
        cJSON_AddBoolToObject(o, "transferLeader", s->transfer_leader);
        cJSON_AddNumberToObject(o, "estimateMs", (double)s->estimate_ms);
        cJSON_AddStringToObject(o, "checksBefore", s->pre_checks);
        cJSON_AddStringToObject(o, "checksAfter", s->post_checks);
        cJSON_AddItemToArray(steps, o);
    }
    cJSON_AddNumberToObject(root, "estimateMs", (double)p->estimate_ms);
    cJSON_AddStringToObject(root, "estimateBasis", p->estimate_basis);
    cJSON_AddBoolToObject(root, "refused", p->refused);
    cJSON_AddStringToObject(root, "refusal", p->refusal);
    return root;
}

/* ---- `ozone admin upgrade plan` ---- */

/* The journal of earlier runs, read page by page from the OM leader and
 * presented as one response (entries borrowed from the pages). */
struct history
{
    Ozone__Om__OmUpgradeJournalReadResponse *pages[HISTORY_MAX_PAGES];
    size_t n_pages;
    Ozone__Om__OmUpgradeJournalEntry **entries;
    Ozone__Om__OmUpgradeJournalReadResponse merged;
};

static void history_free(struct history *h)
{
    for (size_t i = 0; i < h->n_pages; i++) {
        oz_client_free_msg(h->pages[i]);
        h->pages[i] = NULL;
    }
    free(h->entries);
    h->entries = NULL;
    h->n_pages = 0;
}

static void warn_lease(const Ozone__Om__OmUpgradeJournalReadResponse *r)
{
    const Ozone__Om__OmUpgradeLease *l = r->lease;

    if (l == NULL || l->holder == NULL || l->holder[0] == '\0' ||
        l->expires_ms <= r->now_ms) {
        return;
    }
    fprintf(stderr,
            "ozone: warning: an orchestrator holds the upgrade lease: '%s' "
            "on host '%s' (pid %u), run %s, for %" PRIu64
            " s more; 'ozone admin upgrade run' is refused until it ends or "
            "the lease expires\n",
            l->holder, l->host != NULL ? l->host : "?", l->pid,
            l->run_id != NULL ? l->run_id : "?",
            (l->expires_ms - r->now_ms + 999) / 1000);
}

/* Reads the journal; false (no history) when OM cannot answer. */
static bool history_read(struct cli *cli,
                         const struct orch_cluster *c,
                         struct history *h)
{
    const struct orch_node *leader = orch_cluster_find(c, c->om_leader);
    struct oz_client *client = NULL;
    char errmsg[OZ_ERRMSG_SIZE];
    uint64_t after = 0;
    size_t total = 0;

    memset(h, 0, sizeof(*h));
    ozone__om__om_upgrade_journal_read_response__init(&h->merged);
    if (leader == NULL ||
        orch_client_open(cli, leader->rpc_address, &client, errmsg) != 0) {
        return false;
    }
    while (h->n_pages < HISTORY_MAX_PAGES) {
        Ozone__Om__OmUpgradeJournalReadResponse *page = NULL;
        struct oz_error err;

        memset(&err, 0, sizeof(err));
        if (oz_upgrade_journal_read(client, after, HISTORY_PAGE, false, &page,
                                    &err) != 0) {
            /* An OM without the journal (UNKNOWN_METHOD) or not answering
             * just means no measurements. */
            if (err.code != OZONE__RESULT_CODE__UNKNOWN_METHOD &&
                err.code != OZONE__RESULT_CODE__UNAVAILABLE) {
                fprintf(stderr,
                        "ozone: warning: cannot read the upgrade journal "
                        "(%s: %s); estimating from defaults\n",
                        oz_result_name(err.code), err.message);
            }
            break;
        }
        h->pages[h->n_pages++] = page;
        total += page->n_entries;
        if (page->n_entries < HISTORY_PAGE) {
            break;
        }
        after = page->entries[page->n_entries - 1]->seq;
    }
    oz_client_free(client);
    if (h->n_pages == 0) {
        return false;
    }
    warn_lease(h->pages[h->n_pages - 1]);
    h->entries = calloc(total > 0 ? total : 1, sizeof(*h->entries));
    if (h->entries == NULL) {
        history_free(h);
        return false;
    }
    for (size_t i = 0; i < h->n_pages; i++) {
        for (size_t k = 0; k < h->pages[i]->n_entries; k++) {
            h->entries[h->merged.n_entries++] = h->pages[i]->entries[k];
        }
    }
    h->merged.entries = h->entries;
    h->merged.lease = h->pages[h->n_pages - 1]->lease;
    h->merged.now_ms = h->pages[h->n_pages - 1]->now_ms;
    return true;
}

static void plan_usage(FILE *f)
{
    fputs(
        "Usage: ozone admin upgrade plan [--new-bin DIR|TAG] [--backend B] "
        "[--json]\n\n"
        "Prints, from the live cluster, the order in which every node is\n"
        "restarted on the new binary (SCM, Recon, datanodes, OMs with the\n"
        "leader last), the checks before and after each step, and the time\n"
        "it should take. Exits 1 with the reasons when the cluster is not\n"
        "in a state to start a rolling upgrade.\n\n"
        "  --new-bin DIR|TAG  directory holding the new release's 'ozone'\n"
        "                     (local, systemd) or the image tag (compose)\n"
        "  --backend B        local (default), systemd or compose\n"
        "  --json             the plan as a JSON object\n",
        f);
}

int orch_cmd_plan(struct cli *cli, int argc, char **argv)
{
    const char *bin = NULL, *backend = "local";
    bool help = false;
    const struct cli_opt opts[] = {
        {NULL, "--new-bin", &bin, NULL},
        {NULL, "--backend", &backend, NULL},
    };
    struct orch_options o;
    struct orch_target t;
    struct orch_cluster c;
    struct orch_plan p;
    struct history h;
    char errmsg[OZ_ERRMSG_SIZE];
    char *pos[1];
    size_t n_pos = 0;
    int rc;

    rc = cli_parse("ozone admin upgrade plan", argc, argv, opts,
                   sizeof(opts) / sizeof(opts[0]), pos, 0, &n_pos, &help);
    if (rc != CLI_OK) {
        return rc;
    }
    if (help) {
        plan_usage(stdout);
        return CLI_OK;
    }
    if (strcmp(backend, "local") != 0 && strcmp(backend, "systemd") != 0 &&
        strcmp(backend, "compose") != 0) {
        return cli_fail(CLI_USAGE,
                        "unknown backend '%s': give local, systemd or compose",
                        backend);
    }
    if (orch_options_read(cli, &o, errmsg) != 0) {
        return cli_fail(CLI_USAGE, "%s", errmsg);
    }
    oz_strlcpy(o.backend, backend, sizeof(o.backend));
    memset(&t, 0, sizeof(t));
    if (bin != NULL && orch_target_read(backend, bin, &t, errmsg) != 0) {
        return cli_fail(CLI_FAILED, "%s", errmsg);
    }
    if (orch_inspect(cli, &c, errmsg) != 0) {
        return cli_fail(CLI_FAILED, "%s", errmsg);
    }
    bool have_history = history_read(cli, &c, &h);
    rc =
        orch_plan_build(&c, &t, &o, have_history ? &h.merged : NULL, false, &p);
    history_free(&h);
    if (rc != 0) {
        orch_cluster_free(&c);
        return cli_fail(CLI_FAILED, "cannot build the plan: %s",
                        oz_strerror(rc));
    }
    if (cli->json) {
        cli_print_json(orch_plan_json(&c, &t, &p));
    } else {
        orch_plan_print(&c, &t, &p);
    }
    fflush(stdout);
    rc = p.refused ? cli_fail(CLI_FAILED, "cannot start a rolling upgrade: %s",
                              p.refusal)
                   : CLI_OK;
    orch_plan_free(&p);
    orch_cluster_free(&c);
    return rc;
}
