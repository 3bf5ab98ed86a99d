/* metrics: a process-wide registry rendered as Prometheus text at /prom
 * (DESIGN.md §12). Series are registered once and updated lock-free. */
#ifndef OZONE_METRICS_H
#define OZONE_METRICS_H

#include <stddef.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric;

/* Registers (or finds) a series. name: "ozone_rpc_calls_total"; labels:
 * "" or 'method="GetVersion"' (copied). Never NULL (aborts on OOM). */
struct metric *metrics_get(const char *name,
                           const char *labels,
                           enum metric_type type,
                           const char *help);
void metrics_add(struct metric *m, double delta);
void metrics_set(struct metric *m, double value);
double metrics_value(const struct metric *m);

/* Histogram series (type METRIC_HISTOGRAM from metrics_get): records one
 * observation, e.g. a latency in seconds. Buckets are fixed, from 0.5 ms
 * to 10 s, rendered cumulatively as name_bucket{le=...}, name_sum and
 * name_count, so PromQL's histogram_quantile() gives p50/p99. Lock-free. */
void metrics_observe(struct metric *m, double value);

/* Gauge computed at render time. */
void metrics_register_fn(const char *name,
                         const char *labels,
                         const char *help,
                         double (*fn)(void *),
                         void *ctx);

/* Prometheus text format; *out malloc'd (caller frees). */
int metrics_render(char **out, size_t *len);
/* Drops every series (tests, process exit). */
void metrics_reset(void);

#endif
