/* bench_consensus: commits/s of a 3-node raft cluster through
 * common/consensus on 127.0.0.1, with fsync (raft_uv's default), small
 * entries: one at a time (consensus_submit_wait loop) and with 64 in
 * flight (consensus_submit with a window). Prints both figures and their
 * ratio, measured in the same run (DESIGN.md §13).
 *
 * Usage: bench_consensus [seconds per measurement, default 3]. Raft dirs
 * go under $OZONE_BENCH_DIR (default "."), removed afterwards. */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "consensus.h"
#include "err.h"
#include "log.h"

#define N_NODES 3
#define ENTRY_SIZE 100
#define WINDOW 64

struct bfsm
{
    pthread_mutex_t mu;
    uint64_t last_index;
    uint64_t count;
};

static int bfsm_apply(void *ctx,
                      uint64_t index,
                      uint64_t term,
                      uint32_t type,
                      const void *payload,
                      size_t len)
{
    struct bfsm *f = ctx;

    (void)term;
    (void)type;
    (void)payload;
    (void)len;
    pthread_mutex_lock(&f->mu);
    if (index > f->last_index) {
        f->last_index = index;
        f->count++;
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int bfsm_snapshot(void *ctx, uint64_t index, struct consensus_writer *w)
{
    struct bfsm *f = ctx;
    uint64_t state[2];

    (void)index;
    pthread_mutex_lock(&f->mu);
    state[0] = f->last_index;
    state[1] = f->count;
    pthread_mutex_unlock(&f->mu);
    return consensus_writer_append(w, state, sizeof(state));
}

static int bfsm_restore(void *ctx, uint64_t index, const void *data, size_t len)
{
    struct bfsm *f = ctx;
    uint64_t state[2];

    if (len != sizeof(state)) {
        return OZ_ECORRUPT;
    }
    memcpy(state, data, sizeof(state));
    pthread_mutex_lock(&f->mu);
    if (index > f->last_index) {
        f->last_index = state[0];
        f->count = state[1];
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

static int rm_entry(const char *path,
                    const struct stat *st,
                    int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

struct window
{
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;
    long done, errors;
};

static void window_cb(void *arg, int status, uint64_t index, int result)
{
    struct window *w = arg;

    (void)index;
    (void)result;
    pthread_mutex_lock(&w->mu);
    w->in_flight--;
    w->done++;
    w->errors += status != 0;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static double run_serial(struct consensus *c, double seconds, long *errors)
{
    unsigned char payload[ENTRY_SIZE];
    double start = now_s(), end = start + seconds;
    long n = 0;

    memset(payload, 'x', sizeof(payload));
    *errors = 0;
    while (now_s() < end) {
        if (consensus_submit_wait(c, 1, payload, sizeof(payload), 10000, NULL,
                                  NULL, NULL) != 0) {
            (*errors)++;
        }
        n++;
    }
    return (double)n / (now_s() - start);
}

static double run_window(struct consensus *c, double seconds, long *errors)
{
    unsigned char payload[ENTRY_SIZE];
    struct window w;
    double start = now_s(), end = start + seconds, rate;

    memset(payload, 'y', sizeof(payload));
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    while (now_s() < end) {
        pthread_mutex_lock(&w.mu);
        while (w.in_flight >= WINDOW) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        w.in_flight++;
        pthread_mutex_unlock(&w.mu);
        if (consensus_submit(c, 2, payload, sizeof(payload), window_cb, &w) !=
            0) {
            pthread_mutex_lock(&w.mu);
            w.in_flight--;
            w.errors++;
            pthread_mutex_unlock(&w.mu);
        }
    }
    pthread_mutex_lock(&w.mu);
    while (w.in_flight > 0) {
        pthread_cond_wait(&w.cv, &w.mu);
    }
    rate = (double)w.done / (now_s() - start);
    *errors = w.errors;
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rate;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    const char *base = getenv("OZONE_BENCH_DIR");
    struct consensus_peer peers[N_NODES];
    struct consensus *nodes[N_NODES] = {NULL};
    struct bfsm fsms[N_NODES];
    char names[N_NODES][16], addrs[N_NODES][32], dirs[N_NODES][300];
    char root[256], errmsg[OZ_ERRMSG_SIZE];
    double serial, windowed, deadline;
    long serial_errors, window_errors;
    int i, leader = -1, rc = 1;

    signal(SIGPIPE, SIG_IGN);
    log_init("bench", "consensus", NULL, LOG_LEVEL_WARN);
    if (seconds <= 0) {
        seconds = 3.0;
    }
    snprintf(root, sizeof(root), "%s/bench-consensus.XXXXXX",
             base != NULL ? base : ".");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    for (i = 0; i < N_NODES; i++) {
        snprintf(names[i], sizeof(names[i]), "n%d", i + 1);
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%d", free_port());
        snprintf(dirs[i], sizeof(dirs[i]), "%s/%s", root, names[i]);
        peers[i].id = (uint64_t)i + 1;
        peers[i].name = names[i];
        peers[i].address = addrs[i];
        memset(&fsms[i], 0, sizeof(fsms[i]));
        pthread_mutex_init(&fsms[i].mu, NULL);
    }
    for (i = 0; i < N_NODES; i++) {
        struct consensus_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.id = peers[i].id;
        cfg.name = names[i];
        cfg.address = addrs[i];
        cfg.data_dir = dirs[i];
        cfg.cluster = peers;
        cfg.n_cluster = N_NODES;
        cfg.election_timeout_ms = 1000;
        cfg.heartbeat_timeout_ms = 100;
        cfg.fsm.ctx = &fsms[i];
        cfg.fsm.apply = bfsm_apply;
        cfg.fsm.snapshot = bfsm_snapshot;
        cfg.fsm.restore = bfsm_restore;
        if (consensus_open(&cfg, &nodes[i], errmsg) != 0) {
            fprintf(stderr, "open %s: %s\n", names[i], errmsg);
            goto out;
        }
    }
    deadline = now_s() + 15;
    while (leader < 0 && now_s() < deadline) {
        for (i = 0; i < N_NODES; i++) {
            if (consensus_is_leader(nodes[i])) {
                leader = i;
            }
        }
        if (leader < 0) {
            usleep(10000);
        }
    }
    if (leader < 0) {
        fprintf(stderr, "no leader elected within 15 s\n");
        goto out;
    }
    /* Warm up connections and the log. */
    run_serial(nodes[leader], 0.3, &serial_errors);

    serial = run_serial(nodes[leader], seconds, &serial_errors);
    windowed = run_window(nodes[leader], seconds, &window_errors);
    printf("consensus: 3 nodes, 127.0.0.1, fsync, %d-byte entries, dir %s\n",
           ENTRY_SIZE, root);
    printf("  one at a time (submit_wait): %10.0f commits/s  (errors %ld)\n",
           serial, serial_errors);
    printf("  %d in flight (submit)      : %10.0f commits/s  (errors %ld)\n",
           WINDOW, windowed, window_errors);
    printf("  ratio %d-in-flight / serial : %10.1fx\n", WINDOW,
           windowed / serial);
    fflush(stdout);
    rc = serial_errors + window_errors == 0 ? 0 : 1;
out:
    for (i = 0; i < N_NODES; i++) {
        consensus_close(nodes[i]);
        pthread_mutex_destroy(&fsms[i].mu);
    }
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
