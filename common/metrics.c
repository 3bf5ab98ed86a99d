/* Process-wide metrics registry (DESIGN.md §12).
 *
 * Registration takes a mutex; updates do not: a series keeps its value as
 * the bit pattern of a double in an _Atomic uint64_t, and metrics_add is a
 * compare-and-swap loop so that concurrent adds from RPC threads are never
 * lost. Families (one per metric name) keep their series in registration
 * order so that /prom output is stable between scrapes. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Upper bounds of histogram buckets, in the unit observed (seconds). */
static const double hist_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,  0.05,  0.1,    0.25,  0.5,
                                     1,      2.5,   5,      10};
#define HIST_N (sizeof(hist_bounds) / sizeof(hist_bounds[0]))

struct metric
{
    struct metric *next; /* next series of the same family */
    char *labels;
    _Atomic uint64_t bits;     /* value; for a histogram, the sum */
    _Atomic uint64_t *buckets; /* histogram only: HIST_N + 1 counts */
    double (*fn)(void *);
    void *ctx;
};

struct family
{
    struct family *next;
    char *name;
    char *help;
    enum metric_type type;
    struct metric *series;
    struct metric **series_tail;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct family *families;
static struct family **families_tail = &families;

static void oom_abort(void)
{
    fprintf(stderr, "%s:%d: metrics: out of memory\n", __FILE__, __LINE__);
    abort();
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s != NULL ? s : "");
    if (d == NULL) {
        oom_abort();
    }
    return d;
}

static uint64_t to_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

/* Called with registry_lock held. */
static struct family *family_get(const char *name,
                                 enum metric_type type,
                                 const char *help)
{
    struct family *f;

    for (f = families; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            /* First non-empty help wins; the first type wins. */
            if (f->help[0] == '\0' && help != NULL && help[0] != '\0') {
                free(f->help);
                f->help = xstrdup(help);
            }
            return f;
        }
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        oom_abort();
    }
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    f->type = type;
    f->series_tail = &f->series;
    *families_tail = f;
    families_tail = &f->next;
    return f;
}

/* Called with registry_lock held. */
static struct metric *series_get(struct family *f, const char *labels)
{
    struct metric *m;

    if (labels == NULL) {
        labels = "";
    }
    for (m = f->series; m != NULL; m = m->next) {
        if (strcmp(m->labels, labels) == 0) {
            return m;
        }
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        oom_abort();
    }
    m->labels = xstrdup(labels);
    atomic_init(&m->bits, to_bits(0.0));
    if (f->type == METRIC_HISTOGRAM) {
        m->buckets = calloc(HIST_N + 1, sizeof(*m->buckets));
        if (m->buckets == NULL) {
            oom_abort();
        }
        for (size_t i = 0; i <= HIST_N; i++) {
            atomic_init(&m->buckets[i], 0);
        }
    }
    *f->series_tail = m;
    f->series_tail = &m->next;
    return m;
}

struct metric *metrics_get(const char *name,
                           const char *labels,
                           enum metric_type type,
                           const char *help)
{
    struct metric *m;

    pthread_mutex_lock(&registry_lock);
    m = series_get(family_get(name, type, help), labels);
    pthread_mutex_unlock(&registry_lock);
    return m;
}

void metrics_add(struct metric *m, double delta)
{
    uint64_t old = atomic_load_explicit(&m->bits, memory_order_relaxed);
    uint64_t upd;

    do {
        upd = to_bits(from_bits(old) + delta);
    } while (!atomic_compare_exchange_weak_explicit(
        &m->bits, &old, upd, memory_order_relaxed, memory_order_relaxed));
}

void metrics_observe(struct metric *m, double value)
{
    size_t i = 0;

    if (m->buckets == NULL) { /* not a histogram: a programming error */
        fprintf(stderr, "%s:%d: metrics_observe on a non-histogram\n", __FILE__,
                __LINE__);
        abort();
    }
    while (i < HIST_N && value > hist_bounds[i]) {
        i++;
    }
    /* buckets[i] counts observations in (bound[i-1], bound[i]]; the last
     * one is +Inf. Rendering makes them cumulative. */
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    metrics_add(m, value);
}

void metrics_set(struct metric *m, double value)
{
    atomic_store_explicit(&m->bits, to_bits(value), memory_order_relaxed);
}

double metrics_value(const struct metric *m)
{
    if (m->fn != NULL) {
        return m->fn(m->ctx);
    }
    /* atomic_load takes a non-const pointer in C11. */
    return from_bits(atomic_load_explicit((_Atomic uint64_t *)&m->bits,
                                          memory_order_relaxed));
}

void metrics_register_fn(const char *name,
                         const char *labels,
                         const char *help,
                         double (*fn)(void *),
                         void *ctx)
{
    struct metric *m;

    pthread_mutex_lock(&registry_lock);
    m = series_get(family_get(name, METRIC_GAUGE, help), labels);
    m->fn = fn;
    m->ctx = ctx;
    pthread_mutex_unlock(&registry_lock);
}

/* Growing output buffer; the text is our own, so no cap beyond memory. */
struct outbuf
{
    char *p;
    size_t len;
    size_t cap;
    int failed;
};

static void out_printf(struct outbuf *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_printf(struct outbuf *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->failed) {
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = o->cap * 2 + (size_t)n + 1;
        char *np = realloc(o->p, ncap);
        if (np == NULL) {
            o->failed = 1;
            return;
        }
        o->p = np;
        o->cap = ncap;
    }
}

/* Prometheus wants integers without an exponent and other values exact:
 * integral values below 2^63 print as integers, others with the shortest
 * of %.15g/%.17g that reads back to the same double. */
static void format_value(char *buf, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9.2e18) {
        snprintf(buf, size, "%" PRId64, (int64_t)v);
    } else {
        snprintf(buf, size, "%.15g", v);
        if (strtod(buf, NULL) != v) {
            snprintf(buf, size, "%.17g", v);
        }
    }
}

/* The exposition format escapes backslash and newline in HELP text. */
static void out_help(struct outbuf *o, const char *help)
{
    for (const char *p = help; *p != '\0'; p++) {
        if (*p == '\\') {
            out_printf(o, "\\\\");
        } else if (*p == '\n') {
            out_printf(o, "\\n");
        } else {
            out_printf(o, "%c", *p);
        }
    }
    out_printf(o, "\n");
}

static void render_histogram(struct outbuf *o,
                             const char *name,
                             const struct metric *m)
{
    const char *sep = m->labels[0] != '\0' ? "," : "";
    uint64_t cum = 0;
    char val[64];

    for (size_t i = 0; i <= HIST_N; i++) {
        cum += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        if (i < HIST_N) {
            format_value(val, sizeof(val), hist_bounds[i]);
        } else {
            snprintf(val, sizeof(val), "+Inf");
        }
        out_printf(o, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name, m->labels,
                   sep, val, cum);
    }
    format_value(val, sizeof(val), metrics_value(m));
    if (m->labels[0] != '\0') {
        out_printf(o, "%s_sum{%s} %s\n%s_count{%s} %" PRIu64 "\n", name,
                   m->labels, val, name, m->labels, cum);
    } else {
        out_printf(o, "%s_sum %s\n%s_count %" PRIu64 "\n", name, val, name,
                   cum);
    }
}

/* fn gauges run under registry_lock: they must not call metrics_get. */
int metrics_render(char **out, size_t *len)
{
    struct outbuf o = {0};
    char val[64];

    *out = NULL;
    *len = 0;
    o.cap = 4096;
    o.p = malloc(o.cap);
    if (o.p == NULL) {
        return OZ_ENOMEM;
    }
    o.p[0] = '\0';

    pthread_mutex_lock(&registry_lock);
    for (const struct family *f = families; f != NULL; f = f->next) {
        out_printf(&o, "# HELP %s ", f->name);
        out_help(&o, f->help);
        out_printf(&o, "# TYPE %s %s\n", f->name,
                   f->type == METRIC_COUNTER     ? "counter"
                   : f->type == METRIC_HISTOGRAM ? "histogram"
                                                 : "gauge");
        for (const struct metric *m = f->series; m != NULL; m = m->next) {
            if (f->type == METRIC_HISTOGRAM) {
                render_histogram(&o, f->name, m);
                continue;
            }
            format_value(val, sizeof(val), metrics_value(m));
            if (m->labels[0] != '\0') {
                out_printf(&o, "%s{%s} %s\n", f->name, m->labels, val);
            } else {
                out_printf(&o, "%s %s\n", f->name, val);
            }
        }
    }
    pthread_mutex_unlock(&registry_lock);

    if (o.failed) {
        free(o.p);
        return OZ_ENOMEM;
    }
    *out = o.p;
    *len = o.len;
    return 0;
}

void metrics_reset(void)
{
    struct family *f;
    struct family *fnext;

    pthread_mutex_lock(&registry_lock);
    for (f = families; f != NULL; f = fnext) {
        struct metric *m;
        struct metric *mnext;

        fnext = f->next;
        for (m = f->series; m != NULL; m = mnext) {
            mnext = m->next;
            free(m->buckets);
            free(m->labels);
            free(m);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    families = NULL;
    families_tail = &families;
    pthread_mutex_unlock(&registry_lock);
}
