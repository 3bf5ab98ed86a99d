/* `ozone freon ockg|ockv`: load generator and validator (Ozone's
 * OzoneClientKeyGenerator / OzoneClientKeyValidator), DESIGN.md §13.
 *
 * Key i is named "<prefix>/<i>" and its bytes are a pseudo-random stream
 * seeded from that name, so ockv can check every byte of a key without
 * any record of what ockg wrote, and a key's content differs from its
 * neighbours' (a block served for the wrong key is caught). The content
 * is generated chunk by chunk: memory does not grow with the key size.
 * All threads share one client (client.h is thread-safe).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "client.h"
#include "err.h"

#define MAX_THREADS 256
#define MAX_KEYS 100000000LL
#define NAME_MAX_LEN 512

/* ---- deterministic content ---- */

struct content
{
    uint64_t state;
    uint64_t word;
    unsigned avail; /* bytes of word not handed out yet */
    uint64_t left;  /* bytes still to generate */
};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void content_init(struct content *g, const char *name, uint64_t size)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the key name */

    for (const char *p = name; *p != '\0'; p++) {
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    }
    memset(g, 0, sizeof(*g));
    g->state = h;
    g->left = size;
}

static void content_fill(struct content *g, uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (g->avail == 0) {
            g->word = splitmix64(&g->state);
            g->avail = 8;
        }
        buf[i] = (uint8_t)(g->word >> (8 * (8 - g->avail)));
        g->avail--;
    }
}

static ssize_t content_reader(void *ctx, void *buf, size_t n, const char **msg)
{
    struct content *g = ctx;

    (void)msg;
    if (n > g->left) {
        n = (size_t)g->left;
    }
    content_fill(g, buf, n);
    g->left -= n;
    return (ssize_t)n;
}

/* Compares what a get delivers with the expected stream. */
struct validator
{
    struct content expect;
    uint64_t offset;
    uint64_t mismatch_at; /* UINT64_MAX: none */
    uint8_t scratch[64 << 10];
};

static int validate_writer(void *ctx,
                           const void *buf,
                           size_t n,
                           const char **msg)
{
    struct validator *v = ctx;
    const uint8_t *p = buf;

    (void)msg;
    while (n > 0) {
        size_t k = n < sizeof(v->scratch) ? n : sizeof(v->scratch);
        content_fill(&v->expect, v->scratch, k);
        if (v->mismatch_at == UINT64_MAX) {
            for (size_t i = 0; i < k; i++) {
                if (p[i] != v->scratch[i]) {
                    v->mismatch_at = v->offset + i;
                    break;
                }
            }
        }
        p += k;
        n -= k;
        v->offset += k;
    }
    return 0;
}

/* ---- the run ---- */

struct freon
{
    struct cli *cli;
    struct oz_client *client;
    bool validate; /* ockv */
    const char *volume, *bucket, *prefix;
    Ozone__Hdds__ReplicationFactor replication;
    long long n_keys;
    long long size; /* ockg: bytes per key; ockv: expected, -1 any */
    atomic_llong next;
    atomic_llong failures;
    atomic_ullong bytes;
    double *latency_ms; /* per key */
    pthread_mutex_t mu;
    char first_error[1200];
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record_error(struct freon *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void record_error(struct freon *f, const char *fmt, ...)
{
    va_list ap;

    atomic_fetch_add(&f->failures, 1);
    pthread_mutex_lock(&f->mu);
    if (f->first_error[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(f->first_error, sizeof(f->first_error), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&f->mu);
}

static void one_key(struct freon *f, long long i, struct validator *v)
{
    char name[NAME_MAX_LEN];
    struct oz_error err;
    uint64_t size = 0;

    memset(&err, 0, sizeof(err));
    snprintf(name, sizeof(name), "%s/%lld", f->prefix, i);
    if (!f->validate) {
        struct content g;
        content_init(&g, name, (uint64_t)f->size);
        if (oz_key_put(f->client, f->volume, f->bucket, name, f->replication,
                       (uint64_t)f->size, content_reader, &g, NULL,
                       &err) != 0) {
            record_error(f, "%s: %s", oz_result_name(err.code), err.message);
            return;
        }
        atomic_fetch_add(&f->bytes, (unsigned long long)f->size);
        return;
    }
    content_init(&v->expect, name, UINT64_MAX);
    v->offset = 0;
    v->mismatch_at = UINT64_MAX;
    if (oz_key_get(f->client, f->volume, f->bucket, name, validate_writer, v,
                   &size, &err) != 0) {
        record_error(f, "%s: %s", oz_result_name(err.code), err.message);
    } else if (v->offset != size) {
        record_error(f, "key '%s' returned %" PRIu64 " bytes, size is %" PRIu64,
                     name, v->offset, size);
    } else if (f->size >= 0 && size != (uint64_t)f->size) {
        record_error(f, "key '%s' has %" PRIu64 " bytes, expected %lld", name,
                     size, f->size);
    } else if (v->mismatch_at != UINT64_MAX) {
        record_error(f,
                     "key '%s' differs from what ockg wrote at byte %" PRIu64,
                     name, v->mismatch_at);
    } else {
        atomic_fetch_add(&f->bytes, (unsigned long long)size);
    }
}

static void *worker(void *arg)
{
    struct freon *f = arg;
    struct validator *v = f->validate ? malloc(sizeof(*v)) : NULL;

    if (f->validate && v == NULL) {
        record_error(f, "out of memory");
        return NULL;
    }
    for (;;) {
        long long i = atomic_fetch_add(&f->next, 1);
        double t0;
        if (i >= f->n_keys) {
            break;
        }
        t0 = now_s();
        one_key(f, i, v);
        f->latency_ms[i] = (now_s() - t0) * 1000.0;
    }
    free(v);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, long long n, double p)
{
    long long i = (long long)(p * (double)(n - 1) + 0.5);

    return n > 0 ? sorted[i] : 0.0;
}

static void report(struct freon *f, double secs, long long threads)
{
    long long n = f->n_keys;
    long long failed = atomic_load(&f->failures);
    double mb = (double)atomic_load(&f->bytes) / (1024.0 * 1024.0);
    double ops = secs > 0 ? (double)n / secs : 0;
    double mbs = secs > 0 ? mb / secs : 0;

    qsort(f->latency_ms, (size_t)n, sizeof(double), cmp_double);
    if (f->cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *lat = cJSON_AddObjectToObject(o, "latencyMs");
        cJSON_AddStringToObject(o, "command", f->validate ? "ockv" : "ockg");
        cJSON_AddStringToObject(o, "volume", f->volume);
        cJSON_AddStringToObject(o, "bucket", f->bucket);
        cJSON_AddStringToObject(o, "prefix", f->prefix);
        cJSON_AddNumberToObject(o, "keys", (double)n);
        cJSON_AddNumberToObject(o, "keySize", (double)f->size);
        cJSON_AddNumberToObject(o, "threads", (double)threads);
        cJSON_AddNumberToObject(o, "successful", (double)(n - failed));
        cJSON_AddNumberToObject(o, "failures", (double)failed);
        cJSON_AddNumberToObject(o, "seconds", secs);
        cJSON_AddNumberToObject(o, "opsPerSec", ops);
        cJSON_AddNumberToObject(o, "mbPerSec", mbs);
        cJSON_AddNumberToObject(lat, "p50", pct(f->latency_ms, n, 0.50));
        cJSON_AddNumberToObject(lat, "p90", pct(f->latency_ms, n, 0.90));
        cJSON_AddNumberToObject(lat, "p99", pct(f->latency_ms, n, 0.99));
        cJSON_AddNumberToObject(lat, "max", pct(f->latency_ms, n, 1.0));
        if (f->first_error[0] != '\0') {
            cJSON_AddStringToObject(o, "firstError", f->first_error);
        }
        cli_print_json(o);
        return;
    }
    printf("%s: %lld keys of prefix '%s' in /%s/%s, %lld threads\n",
           f->validate ? "ockv" : "ockg", n, f->prefix, f->volume, f->bucket,
           threads);
    printf("Successful: %lld, failed: %lld\n", n - failed, failed);
    printf("Total time: %.3f s\n", secs);
    printf("Throughput: %.1f ops/s, %.2f MB/s\n", ops, mbs);
    printf("Latency (ms): p50 %.2f, p90 %.2f, p99 %.2f, max %.2f\n",
           pct(f->latency_ms, n, 0.50), pct(f->latency_ms, n, 0.90),
           pct(f->latency_ms, n, 0.99), pct(f->latency_ms, n, 1.0));
}

/* Creates the volume and bucket unless they exist (ockg). */
static int ensure_bucket(struct freon *f)
{
    struct oz_error err;
    Ozone__Om__BucketInfo *b = NULL;

    memset(&err, 0, sizeof(err));
    if (oz_bucket_info(f->client, f->volume, f->bucket, &b, &err) == 0) {
        oz_client_free_msg(b);
        return CLI_OK;
    }
    if (err.code != OZONE__RESULT_CODE__VOLUME_NOT_FOUND &&
        err.code != OZONE__RESULT_CODE__BUCKET_NOT_FOUND) {
        return cli_fail_oz(&err);
    }
    if (err.code == OZONE__RESULT_CODE__VOLUME_NOT_FOUND &&
        oz_volume_create(f->client, f->volume, getenv("USER"), 0, &err) != 0 &&
        err.code != OZONE__RESULT_CODE__VOLUME_ALREADY_EXISTS) {
        return cli_fail_oz(&err);
    }
    if (oz_bucket_create(f->client, f->volume, f->bucket, f->replication,
                         &err) != 0 &&
        err.code != OZONE__RESULT_CODE__BUCKET_ALREADY_EXISTS) {
        return cli_fail_oz(&err);
    }
    return CLI_OK;
}

static void freon_usage(FILE *out)
{
    fputs(
        "Usage: ozone freon ockg|ockv [OPTIONS]\n\n"
        "  ockg   writes N keys of SIZE bytes with deterministic content\n"
        "  ockv   reads N keys of the prefix back and checks every byte\n\n"
        "Options:\n"
        "  -n, --number-of-tests N  keys (default 1000)\n"
        "  -s, --size SIZE          bytes per key, e.g. 0, 10KB, 16MB\n"
        "                           (ockg default 10KB; ockv: check it)\n"
        "  -t, --threads T          threads (default 10)\n"
        "  -v, --volume VOL         volume (default vol1)\n"
        "  -b, --bucket BUCKET      bucket (default bucket1)\n"
        "  -p, --prefix PREFIX      key name prefix (ockg default: random;\n"
        "                           ockv: required)\n"
        "  -r, --replication ONE|THREE  (ockg) replication of the keys\n"
        "  --json                   print the figures as JSON\n",
        out);
}

static int parse_freon_args(struct freon *f,
                            int argc,
                            char **argv,
                            long long *threads,
                            bool *help)
{
    const char *n = NULL, *s = NULL, *t = NULL, *r = NULL;
    char *pos[1];
    size_t n_pos = 0;
    const struct cli_opt opts[] = {
        {"-n", "--number-of-tests", &n, NULL},
        {"-s", "--size", &s, NULL},
        {"-t", "--threads", &t, NULL},
        {"-v", "--volume", &f->volume, NULL},
        {"-b", "--bucket", &f->bucket, NULL},
        {"-p", "--prefix", &f->prefix, NULL},
        {"-r", "--replication", &r, NULL},
    };
    char cmd[32];
    int rc;

    snprintf(cmd, sizeof(cmd), "ozone freon %s", argv[0]);
    rc = cli_parse(cmd, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos,
                   0, &n_pos, help);
    if (rc != CLI_OK || *help) {
        return rc;
    }
    f->n_keys = 1000;
    *threads = 10;
    f->size = f->validate ? -1 : 10240;
    if (n != NULL && !cli_parse_count(n, 1, MAX_KEYS, &f->n_keys)) {
        return cli_fail(CLI_USAGE, "invalid key count '%s' for '-n'", n);
    }
    if (t != NULL && !cli_parse_count(t, 1, MAX_THREADS, threads)) {
        return cli_fail(CLI_USAGE,
                        "invalid thread count '%s' for '-t': expected 1 to "
                        "%d",
                        t, MAX_THREADS);
    }
    if (s != NULL && (conf_parse_size(s, &f->size) != 0 || f->size < 0)) {
        return cli_fail(CLI_USAGE,
                        "invalid key size '%s' for '-s': expected a size "
                        "like 0, 10KB or 16MB",
                        s);
    }
    if (r != NULL && oz_parse_replication(r, &f->replication) != 0) {
        return cli_fail(CLI_USAGE,
                        "invalid replication '%s': expected ONE or THREE", r);
    }
    if (f->validate && f->prefix == NULL) {
        return cli_fail(CLI_USAGE,
                        "'ozone freon ockv' needs the prefix ockg used: pass "
                        "-p PREFIX");
    }
    if (f->prefix != NULL && strlen(f->prefix) > NAME_MAX_LEN - 32) {
        return cli_fail(CLI_USAGE, "prefix is too long");
    }
    return CLI_OK;
}

static int run(struct freon *f, long long threads)
{
    pthread_t tids[MAX_THREADS];
    long long started = 0;
    double t0;

    f->latency_ms = calloc((size_t)f->n_keys, sizeof(double));
    if (f->latency_ms == NULL) {
        return cli_fail(CLI_FAILED, "out of memory for %lld latencies",
                        f->n_keys);
    }
    t0 = now_s();
    for (; started < threads; started++) {
        if (pthread_create(&tids[started], NULL, worker, f) != 0) {
            break;
        }
    }
    if (started == 0) {
        worker(f);
    }
    for (long long i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    report(f, now_s() - t0, started > 0 ? started : 1);
    free(f->latency_ms);
    f->latency_ms = NULL;
    if (atomic_load(&f->failures) > 0) {
        return cli_fail(CLI_FAILED, "%lld of %lld keys failed; first: %s",
                        (long long)atomic_load(&f->failures), f->n_keys,
                        f->first_error);
    }
    return CLI_OK;
}

int cmd_freon(struct cli *cli, int argc, char **argv)
{
    struct freon f;
    char prefix[32];
    long long threads = 10;
    bool help = false;
    int rc;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "--help") == 0) {
        freon_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "ockg") != 0 && strcmp(argv[1], "ockv") != 0) {
        return cli_fail(CLI_USAGE,
                        "unknown command 'ozone freon %s'; see 'ozone freon "
                        "--help'",
                        argv[1]);
    }
    memset(&f, 0, sizeof(f));
    f.cli = cli;
    f.validate = strcmp(argv[1], "ockv") == 0;
    f.volume = "vol1";
    f.bucket = "bucket1";
    rc = parse_freon_args(&f, argc - 1, argv + 1, &threads, &help);
    if (rc != CLI_OK || help) {
        if (help) {
            freon_usage(stdout);
        }
        return rc;
    }
    if (f.prefix == NULL) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(
            prefix, sizeof(prefix), "%08lx",
            (unsigned long)((ts.tv_nsec ^ (ts.tv_sec << 20)) & 0xffffffffUL));
        f.prefix = prefix;
    }
    rc = cli_open_client(cli, NULL, &f.client);
    if (rc != CLI_OK) {
        return rc;
    }
    pthread_mutex_init(&f.mu, NULL);
    rc = f.validate ? CLI_OK : ensure_bucket(&f);
    if (rc == CLI_OK) {
        rc = run(&f, threads);
    }
    pthread_mutex_destroy(&f.mu);
    oz_client_free(f.client);
    return rc;
}
