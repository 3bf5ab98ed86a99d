/* orch_gate.c: the safety gate of the rolling upgrade (orch.h).
 *
 * After each step the orchestrator compares two snapshots of the
 * client-facing RPC metrics of every OM and datanode (DESIGN.md §12:
 * ozone_rpc_requests_total, ozone_rpc_server_errors_total and the
 * ozone_rpc_latency_seconds histogram, labelled service="...") taken a
 * gate window apart, and goes on only while clients are served: the share
 * of requests that failed by the server's fault and the p99 latency stay
 * under their thresholds.
 *
 * The arithmetic follows Prometheus so that the gate agrees with the
 * operator's dashboards: per instance increase() (a counter that went
 * down means the daemon restarted, and its whole current value is the
 * increase), bucket deltas summed over instances, and histogram_quantile()
 * (linear interpolation inside the bucket holding the rank; the highest
 * finite bound when the rank falls in +Inf).
 */
#include "orch.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http_client.h"

#define GATE_MAX_BUCKETS 64
#define GATE_PROM_MAX (16u << 20)
#define GATE_HTTP_MS 2000

/* The client-facing services whose RPCs the gate measures. */
static const char *const gate_services[] = {
    "ozone.om.OzoneManagerService",
    "ozone.datanode.DatanodeService",
};

struct gate_instance
{
    char name[ORCH_NAME_SIZE];
    double requests;
    double errors;
    size_t n_buckets;
    double le[GATE_MAX_BUCKETS];  /* upper bounds, seconds; +Inf last */
    double cum[GATE_MAX_BUCKETS]; /* cumulative counts */
};

struct orch_prom_snapshot
{
    struct gate_instance *inst;
    size_t n;
    size_t cap;
};

struct orch_prom_snapshot *orch_gate_snapshot_new(void)
{
    return calloc(1, sizeof(struct orch_prom_snapshot));
}

void orch_gate_snapshot_free(struct orch_prom_snapshot *s)
{
    if (s == NULL) {
        return;
    }
    free(s->inst);
    free(s);
}

size_t orch_gate_snapshot_count(const struct orch_prom_snapshot *s)
{
    return s != NULL ? s->n : 0;
}

/* ---- /prom text ---- */

/* Copies the value of label `name` from the label set [p, end) into out;
 * false when absent. Handles \" \\ \n escapes. */
static bool label_value(const char *p,
                        const char *end,
                        const char *name,
                        char *out,
                        size_t size)
{
    size_t nlen = strlen(name);

    while (p < end) {
        while (p < end && (*p == ',' || *p == ' ')) {
            p++;
        }
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq == NULL || eq + 1 >= end || eq[1] != '"') {
            return false;
        }
        bool match = (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0;
        size_t o = 0;
        p = eq + 2;
        while (p < end && *p != '"') {
            char ch = *p++;
            if (ch == '\\' && p < end) {
                ch = *p == 'n' ? '\n' : *p;
                p++;
            }
            if (match && o + 1 < size) {
                out[o++] = ch;
            }
        }
        if (match) {
            out[o] = '\0';
            return p < end;
        }
        p++; /* closing quote */
    }
    return false;
}

static bool gate_service(const char *service)
{
    for (size_t i = 0; i < sizeof(gate_services) / sizeof(*gate_services);
         i++) {
        if (strcmp(service, gate_services[i]) == 0) {
            return true;
        }
    }
    return false;
}

static double parse_le(const char *s)
{
    if (strcmp(s, "+Inf") == 0 || strcmp(s, "Inf") == 0) {
        return INFINITY;
    }
    return strtod(s, NULL);
}

static void add_bucket(struct gate_instance *in, double le, double v)
{
    for (size_t i = 0; i < in->n_buckets; i++) {
        if (in->le[i] == le) {
            in->cum[i] += v;
            return;
        }
    }
    if (in->n_buckets == GATE_MAX_BUCKETS) {
        return; /* more bounds than any histogram of ours has */
    }
    size_t i = in->n_buckets++;
    while (i > 0 && in->le[i - 1] > le) {
        in->le[i] = in->le[i - 1];
        in->cum[i] = in->cum[i - 1];
        i--;
    }
    in->le[i] = le;
    in->cum[i] = v;
}

enum series { S_NONE, S_REQUESTS, S_ERRORS, S_BUCKET };

/* One sample line into in (when it is one of the gate's series). */
static void parse_line(const char *line, size_t len, struct gate_instance *in)
{
    static const struct
    {
        const char *name;
        enum series s;
    } names[] = {
        {"ozone_rpc_requests_total", S_REQUESTS},
        {"ozone_rpc_server_errors_total", S_ERRORS},
        {"ozone_rpc_latency_seconds_bucket", S_BUCKET},
    };
    const char *end = line + len;
    const char *brace = memchr(line, '{', len);
    enum series s = S_NONE;
    char service[128], le[64], num[64];

    if (brace == NULL) {
        return; /* every series of the gate has labels */
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        if ((size_t)(brace - line) == strlen(names[i].name) &&
            memcmp(line, names[i].name, (size_t)(brace - line)) == 0) {
            s = names[i].s;
        }
    }
    const char *close = brace;
    bool quoted = false;
    for (close = brace + 1; close < end; close++) {
        if (*close == '\\' && quoted) {
            close++;
        } else if (*close == '"') {
            quoted = !quoted;
        } else if (*close == '}' && !quoted) {
            break;
        }
    }
    if (s == S_NONE || close >= end ||
        !label_value(brace + 1, close, "service", service, sizeof(service)) ||
        !gate_service(service)) {
        return;
    }
    const char *v = close + 1;
    while (v < end && *v == ' ') {
        v++;
    }
    size_t vlen = strcspn(v, " \n");
    if (vlen == 0 || vlen >= sizeof(num) || v + vlen > end) {
        return;
    }
    memcpy(num, v, vlen);
    num[vlen] = '\0';
    char *num_end = NULL;
    double value = strtod(num, &num_end);
    if (num_end == num || !isfinite(value) || value < 0) {
        return;
    }
    switch (s) {
        case S_REQUESTS:
            in->requests += value;
            break;
        case S_ERRORS:
            in->errors += value;
            break;
        case S_BUCKET:
            if (label_value(brace + 1, close, "le", le, sizeof(le))) {
                add_bucket(in, parse_le(le), value);
            }
            break;
        case S_NONE:
            break;
    }
}

int orch_gate_snapshot_add(struct orch_prom_snapshot *s,
                           const char *instance,
                           const char *prom_text)
{
    struct gate_instance *in = NULL;

    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->inst[i].name, instance) == 0) {
            in = &s->inst[i];
        }
    }
    if (in == NULL) {
        if (s->n == s->cap) {
            size_t ncap = s->cap > 0 ? s->cap * 2 : 8;
            struct gate_instance *grown =
                realloc(s->inst, ncap * sizeof(*grown));
            if (grown == NULL) {
                return OZ_ENOMEM;
            }
            s->inst = grown;
            s->cap = ncap;
        }
        in = &s->inst[s->n++];
    }
    memset(in, 0, sizeof(*in));
    oz_strlcpy(in->name, instance, sizeof(in->name));
    for (const char *p = prom_text; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        if (len > 0 && p[0] != '#') {
            parse_line(p, len, in);
        }
        p += len;
        if (*p == '\n') {
            p++;
        }
    }
    return 0;
}

int orch_gate_snapshot(const struct orch_cluster *c,
                       struct orch_prom_snapshot **out)
{
    struct orch_prom_snapshot *s = orch_gate_snapshot_new();

    *out = NULL;
    if (s == NULL) {
        return OZ_ENOMEM;
    }
    for (size_t i = 0; i < c->n; i++) {
        const struct orch_node *n = &c->nodes[i];
        struct http_client_result res;
        char url[ORCH_ADDR_SIZE + 32];
        char errmsg[OZ_ERRMSG_SIZE];
        char *body = NULL;
        size_t len = 0;

        if ((n->kind != ORCH_OM && n->kind != ORCH_DATANODE) || !n->reachable ||
            n->http_address[0] == '\0') {
            continue;
        }
        snprintf(url, sizeof(url), "http://%s/prom", n->http_address);
        if (http_client_get(url, GATE_PROM_MAX, GATE_HTTP_MS, &body, &len, &res,
                            errmsg) != 0) {
            continue; /* not answering now: nothing to compare */
        }
        int rc = orch_gate_snapshot_add(s, n->name, body);
        free(body);
        if (rc != 0) {
            orch_gate_snapshot_free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

/* ---- evaluation ---- */

static const struct gate_instance *find(const struct orch_prom_snapshot *s,
                                        const char *name)
{
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        if (strcmp(s->inst[i].name, name) == 0) {
            return &s->inst[i];
        }
    }
    return NULL;
}

/* Whether any counter of a went down since b: the daemon restarted. */
static bool was_reset(const struct gate_instance *a,
                      const struct gate_instance *b)
{
    if (a->requests < b->requests || a->errors < b->errors) {
        return true;
    }
    for (size_t i = 0; i < a->n_buckets; i++) {
        for (size_t j = 0; j < b->n_buckets; j++) {
            if (a->le[i] == b->le[j] && a->cum[i] < b->cum[j]) {
                return true;
            }
        }
    }
    return false;
}

static double bucket_of(const struct gate_instance *in, double le)
{
    for (size_t i = 0; in != NULL && i < in->n_buckets; i++) {
        if (in->le[i] == le) {
            return in->cum[i];
        }
    }
    return 0;
}

/* histogram_quantile(q) over cumulative buckets (le ascending). */
static double quantile(double q, const double *le, double *cum, size_t n)
{
    if (n == 0) {
        return 0;
    }
    /* Prometheus' ensureMonotonic: merged or scraped-at-different-times
     * buckets may dip; a cumulative count never does. */
    for (size_t i = 1; i < n; i++) {
        if (cum[i] < cum[i - 1]) {
            cum[i] = cum[i - 1];
        }
    }
    double total = cum[n - 1];
    if (total <= 0) {
        return 0;
    }
    double rank = q * total;
    size_t b = 0;
    while (b < n - 1 && cum[b] < rank) {
        b++;
    }
    if (isinf(le[b])) {
        return b > 0 ? le[b - 1] : 0;
    }
    double start = 0, count = cum[b];
    if (b > 0) {
        start = le[b - 1];
        count -= cum[b - 1];
        rank -= cum[b - 1];
    }
    if (count <= 0) {
        return le[b];
    }
    return start + (le[b] - start) * (rank / count);
}

void orch_gate_eval(const struct orch_prom_snapshot *before,
                    const struct orch_prom_snapshot *after,
                    const struct orch_options *o,
                    struct orch_gate_result *r)
{
    struct gate_instance merged;
    double requests = 0, errors = 0;

    memset(r, 0, sizeof(*r));
    memset(&merged, 0, sizeof(merged));
    for (size_t i = 0; after != NULL && i < after->n; i++) {
        const struct gate_instance *a = &after->inst[i];
        const struct gate_instance *b = find(before, a->name);
        bool reset = b != NULL && was_reset(a, b);

        /* Prometheus increase(): after a reset (or for an instance that
         * was not there before) the current value is the increase. */
        if (b == NULL || reset) {
            b = NULL;
        }
        r->instances++;
        r->restarted += reset ? 1 : 0;
        requests += a->requests - (b != NULL ? b->requests : 0);
        errors += a->errors - (b != NULL ? b->errors : 0);
        for (size_t k = 0; k < a->n_buckets; k++) {
            add_bucket(&merged, a->le[k],
                       a->cum[k] - (b != NULL ? bucket_of(b, a->le[k]) : 0));
        }
    }
    r->requests = (uint64_t)llround(requests);
    r->errors = (uint64_t)llround(errors);
    r->error_rate = requests > 0 ? errors / requests : 0;
    r->p99_ms = quantile(0.99, merged.le, merged.cum, merged.n_buckets) * 1e3;
    r->pass = true;
    size_t used = 0;
    if (r->error_rate > o->max_error_rate) {
        r->pass = false;
        used += (size_t)snprintf(
            r->why, sizeof(r->why),
            "server-side errors %.2f%% of client RPCs (%" PRIu64 " of %" PRIu64
            ") are above ozone.upgrade.gate.max.error.rate %.2f%%",
            r->error_rate * 100, r->errors, r->requests,
            o->max_error_rate * 100);
    }
    if (o->max_p99_ms > 0 && r->p99_ms > (double)o->max_p99_ms) {
        r->pass = false;
        if (used < sizeof(r->why)) {
            snprintf(r->why + used, sizeof(r->why) - used,
                     "%sp99 latency %.0f ms is above "
                     "ozone.upgrade.gate.max.p99 %ld ms",
                     used > 0 ? "; " : "", r->p99_ms, o->max_p99_ms);
        }
    }
}
