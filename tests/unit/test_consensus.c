/* Unit tests of consensus, the libraft adapter: real raft_uv servers on
 * 127.0.0.1 (free ports) and temporary directories, 3 or 4 nodes in this
 * process, each on its own raft thread. Every node runs a test FSM that
 * chains a hash over (index, type, payload) and keeps its state across a
 * close and reopen (standing for the OM's RocksDB), skipping entries at or
 * below its last applied index as the OM will (PITFALLS.md). The entry's
 * term is part of the hash, so equal states also mean equal terms. An
 * entry of type PURGE_TYPE asks, from inside its apply as the OM's
 * prepare does, for the log to be purged up to it
 * (consensus_snapshot_now). Waits poll with a deadline; nothing sleeps a
 * fixed time to synchronise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
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
#include "test_tmpdir.h"

#define MAX_NODES 4
#define WAIT_MS 15000
#define OP_TIMEOUT_MS 10000
#define PURGE_TYPE 99

/* ---- test FSM ---- */

struct tfsm
{
    pthread_mutex_t mu;
    uint64_t last_index; /* last entry applied (the idempotency key) */
    uint64_t hash;
    uint64_t count;
    uint64_t skipped;  /* re-applied entries ignored after a restart */
    int installs;      /* snapshots that replaced the state */
    int restore_calls; /* every restore call */
    uint64_t last_term;
    struct consensus **c; /* the node's server (PURGE_TYPE entries) */
    uint64_t purge_index; /* PURGE_TYPE entry applied at */
    int purge_status;     /* its consensus_snapshot_now outcome */
    bool purge_done;
};

static void purge_done(void *arg, int status)
{
    struct tfsm *t = arg;

    pthread_mutex_lock(&t->mu);
    t->purge_status = status;
    t->purge_done = true;
    pthread_mutex_unlock(&t->mu);
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int tfsm_apply(void *ctx,
                      uint64_t index,
                      uint64_t term,
                      uint32_t type,
                      const void *payload,
                      size_t len)
{
    struct tfsm *t = ctx;

    pthread_mutex_lock(&t->mu);
    if (index <= t->last_index) {
        t->skipped++;
        pthread_mutex_unlock(&t->mu);
        return 0;
    }
    if (term == 0 || term < t->last_term) {
        fprintf(stderr, "entry %llu applied with term %llu after %llu\n",
                (unsigned long long)index, (unsigned long long)term,
                (unsigned long long)t->last_term);
        abort();
    }
    t->last_term = term;
    if (type == PURGE_TYPE) {
        t->purge_index = index;
        t->purge_done = false;
        pthread_mutex_unlock(&t->mu);
        /* Inside apply, on the raft thread, as the OM's prepare does. */
        int rc = consensus_snapshot_now(*t->c, index, purge_done, t);
        pthread_mutex_lock(&t->mu);
        if (rc != 0) {
            t->purge_status = rc;
            t->purge_done = true;
        }
    }
    t->hash = fnv(t->hash, &index, sizeof(index));
    t->hash = fnv(t->hash, &term, sizeof(term));
    t->hash = fnv(t->hash, &type, sizeof(type));
    t->hash = fnv(t->hash, payload, len);
    t->count++;
    t->last_index = index;
    pthread_mutex_unlock(&t->mu);
    return (int)(len % 7);
}

static int tfsm_snapshot(void *ctx, uint64_t index, struct consensus_writer *w)
{
    struct tfsm *t = ctx;
    uint64_t state[3];

    (void)index;
    pthread_mutex_lock(&t->mu);
    state[0] = t->last_index;
    state[1] = t->hash;
    state[2] = t->count;
    pthread_mutex_unlock(&t->mu);
    return consensus_writer_append(w, state, sizeof(state));
}

static int tfsm_restore(void *ctx, uint64_t index, const void *data, size_t len)
{
    struct tfsm *t = ctx;
    uint64_t state[3];

    if (len != sizeof(state)) {
        return OZ_ECORRUPT;
    }
    memcpy(state, data, sizeof(state));
    pthread_mutex_lock(&t->mu);
    t->restore_calls++;
    if (index > t->last_index) { /* else our state is already newer */
        t->last_index = state[0];
        t->hash = state[1];
        t->count = state[2];
        t->installs++;
    }
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static void tfsm_read(struct tfsm *t,
                      uint64_t *last,
                      uint64_t *hash,
                      uint64_t *count)
{
    pthread_mutex_lock(&t->mu);
    *last = t->last_index;
    *hash = t->hash;
    *count = t->count;
    pthread_mutex_unlock(&t->mu);
}

/* ---- cluster fixture ---- */

struct node
{
    uint64_t id;
    char name[16];
    char address[32];
    char dir[128];
    struct tfsm fsm;
    struct consensus *c;
};

struct cluster
{
    char root[64];
    struct node nodes[MAX_NODES];
    unsigned n_initial; /* the bootstrap cluster: nodes [0, n_initial) */
    unsigned threshold, trailing;
};

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Polls cond every 5 ms until it holds or WAIT_MS passed. */
#define WAIT_UNTIL(cond)                                 \
    do {                                                 \
        uint64_t deadline_ = now_ms() + WAIT_MS;         \
        while (!(cond) && now_ms() < deadline_) {        \
            pause_ms(5);                                 \
        }                                                \
        if (!(cond)) {                                   \
            fail_msg("timed out waiting for %s", #cond); \
        }                                                \
    } while (0)

static struct cluster *cluster_new(unsigned n_initial,
                                   unsigned threshold,
                                   unsigned trailing)
{
    struct cluster *cl = calloc(1, sizeof(*cl));
    unsigned i;

    assert_non_null(cl);
    snprintf(cl->root, sizeof(cl->root), "/tmp/test_consensus.XXXXXX");
    assert_non_null(mkdtemp(cl->root));
    cl->n_initial = n_initial;
    cl->threshold = threshold;
    cl->trailing = trailing;
    for (i = 0; i < MAX_NODES; i++) {
        struct node *nd = &cl->nodes[i];
        nd->id = i + 1;
        snprintf(nd->name, sizeof(nd->name), "n%u", i + 1);
        snprintf(nd->address, sizeof(nd->address), "127.0.0.1:%d", free_port());
        snprintf(nd->dir, sizeof(nd->dir), "%s/%s", cl->root, nd->name);
        pthread_mutex_init(&nd->fsm.mu, NULL);
    }
    return cl;
}

static void node_open(struct cluster *cl,
                      unsigned i,
                      enum consensus_start_mode mode)
{
    struct consensus_peer peers[MAX_NODES];
    struct consensus_config cfg;
    struct node *nd = &cl->nodes[i];
    char errmsg[OZ_ERRMSG_SIZE];
    unsigned j;
    int rc;

    for (j = 0; j < cl->n_initial; j++) {
        peers[j].id = cl->nodes[j].id;
        peers[j].name = cl->nodes[j].name;
        peers[j].address = cl->nodes[j].address;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = nd->id;
    cfg.name = nd->name;
    cfg.address = nd->address;
    cfg.data_dir = nd->dir;
    cfg.cluster = mode == CONSENSUS_BOOTSTRAP ? peers : NULL;
    cfg.n_cluster = mode == CONSENSUS_BOOTSTRAP ? cl->n_initial : 0;
    cfg.mode = mode;
    cfg.election_timeout_ms = 400;
    cfg.heartbeat_timeout_ms = 40;
    cfg.snapshot_threshold = cl->threshold;
    cfg.snapshot_trailing = cl->trailing;
    cfg.fsm.ctx = &nd->fsm;
    nd->fsm.c = &nd->c;
    cfg.fsm.apply = tfsm_apply;
    cfg.fsm.snapshot = tfsm_snapshot;
    cfg.fsm.restore = tfsm_restore;
    assert_null(nd->c);
    rc = consensus_open(&cfg, &nd->c, errmsg);
    if (rc != 0) {
        fail_msg("open %s: %s (%s)", nd->name, errmsg, oz_strerror(rc));
    }
}

static void node_close(struct cluster *cl, unsigned i)
{
    consensus_close(cl->nodes[i].c);
    cl->nodes[i].c = NULL;
}

static struct cluster *cluster_start(unsigned n_initial,
                                     unsigned threshold,
                                     unsigned trailing)
{
    struct cluster *cl = cluster_new(n_initial, threshold, trailing);
    unsigned i;

    for (i = 0; i < n_initial; i++) {
        node_open(cl, i, CONSENSUS_BOOTSTRAP);
    }
    return cl;
}

static void cluster_free(struct cluster *cl)
{
    unsigned i;

    for (i = 0; i < MAX_NODES; i++) {
        if (cl->nodes[i].c != NULL) {
            node_close(cl, i);
        }
        pthread_mutex_destroy(&cl->nodes[i].fsm.mu);
    }
    test_tmpdir_remove(cl->root);
    free(cl);
}

/* The one leader every open node agrees on, or -1. */
static int agreed_leader(struct cluster *cl)
{
    int leader = -1;
    unsigned i;

    for (i = 0; i < MAX_NODES; i++) {
        if (cl->nodes[i].c != NULL && consensus_is_leader(cl->nodes[i].c)) {
            if (leader >= 0) {
                return -1;
            }
            leader = (int)i;
        }
    }
    if (leader < 0) {
        return -1;
    }
    for (i = 0; i < MAX_NODES; i++) {
        uint64_t id;
        if (cl->nodes[i].c != NULL &&
            (consensus_leader(cl->nodes[i].c, &id, NULL, 0, NULL, 0) != 0 ||
             id != cl->nodes[leader].id)) {
            return -1;
        }
    }
    return leader;
}

static unsigned wait_leader(struct cluster *cl)
{
    int leader;

    WAIT_UNTIL((leader = agreed_leader(cl)) >= 0);
    return (unsigned)leader;
}

/* True when every open node applied up to the leader's FSM state. */
static bool all_caught_up(struct cluster *cl, unsigned leader)
{
    uint64_t last, hash, count, l_last, l_hash, l_count;
    unsigned i;

    tfsm_read(&cl->nodes[leader].fsm, &l_last, &l_hash, &l_count);
    for (i = 0; i < MAX_NODES; i++) {
        if (cl->nodes[i].c == NULL) {
            continue;
        }
        tfsm_read(&cl->nodes[i].fsm, &last, &hash, &count);
        if (last != l_last) {
            return false;
        }
    }
    return true;
}

/* Waits until all open nodes applied the same entries and checks that they
 * hold the same state (hash and count), which must have `count` entries. */
static void check_same_state(struct cluster *cl,
                             unsigned leader,
                             uint64_t expect_count)
{
    uint64_t last, hash, count, l_last, l_hash, l_count;
    unsigned i;

    WAIT_UNTIL(all_caught_up(cl, leader));
    tfsm_read(&cl->nodes[leader].fsm, &l_last, &l_hash, &l_count);
    assert_int_equal(l_count, expect_count);
    for (i = 0; i < MAX_NODES; i++) {
        if (cl->nodes[i].c == NULL) {
            continue;
        }
        tfsm_read(&cl->nodes[i].fsm, &last, &hash, &count);
        if (hash != l_hash || count != l_count || last != l_last) {
            fail_msg(
                "node %s differs from leader %s: last %llu/%llu count "
                "%llu/%llu hash %llx/%llx",
                cl->nodes[i].name, cl->nodes[leader].name,
                (unsigned long long)last, (unsigned long long)l_last,
                (unsigned long long)count, (unsigned long long)l_count,
                (unsigned long long)hash, (unsigned long long)l_hash);
        }
    }
}

static size_t fill_payload(unsigned char *buf, unsigned seed, unsigned i)
{
    size_t len = (size_t)((i * 37u + seed * 11u) % 301u); /* 0..300 */
    size_t k;

    for (k = 0; k < len; k++) {
        buf[k] = (unsigned char)(seed * 131u + i * 7u + k);
    }
    return len;
}

/* n entries submitted one at a time on node `at`, which must lead. */
static void submit_many(struct cluster *cl, unsigned at, unsigned seed, int n)
{
    unsigned char buf[512];
    char errmsg[OZ_ERRMSG_SIZE];
    uint64_t index, prev = 0;
    int i, rc, result;

    for (i = 0; i < n; i++) {
        size_t len = fill_payload(buf, seed, (unsigned)i);
        rc = consensus_submit_wait(cl->nodes[at].c, seed, buf, len,
                                   OP_TIMEOUT_MS, &index, &result, errmsg);
        if (rc != 0) {
            fail_msg("submit %d on %s: %s", i, cl->nodes[at].name, errmsg);
        }
        assert_int_equal(result, (int)(len % 7));
        assert_true(index > prev);
        prev = index;
    }
}

/* ---- frame codec ---- */

static void test_frame_roundtrip(void **state)
{
    static const size_t sizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 100, 4099};
    unsigned char payload[4100], frame[4200];
    size_t i, k;

    (void)state;
    for (k = 0; k < sizeof(payload); k++) {
        payload[k] = (unsigned char)(k * 13 + 1);
    }
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t size = consensus_frame_size(sizes[i]), len;
        const void *p;
        uint32_t type;

        assert_true(size % 8 == 0);
        assert_true(size >= sizes[i] + 8 && size < sizes[i] + 16);
        memset(frame, 0xaa, sizeof(frame));
        consensus_frame_encode(frame, 42u + (uint32_t)i, payload, sizes[i]);
        if (consensus_frame_decode(frame, size, &type, &p, &len) != 0) {
            fail_msg("row %zu: valid frame of %zu bytes refused", i, sizes[i]);
        }
        assert_int_equal(type, 42u + (uint32_t)i);
        assert_int_equal(len, sizes[i]);
        assert_ptr_equal(p, frame + 8);
        assert_memory_equal(p, payload, sizes[i]);
    }
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void test_frame_corrupt(void **state)
{
    /* Each row: declared payload length, buffer length, a byte to poison
     * (-1: none). The buffer is otherwise a well-formed zero frame. */
    static const struct case_
    {
        uint32_t declared;
        size_t buf_len;
        int poison;
        const char *what;
    } cases[] = {
        {0, 0, -1, "empty buffer"},
        {0, 4, -1, "shorter than the header"},
        {3, 12, -1, "length not a multiple of 8"},
        {9, 16, -1, "payload runs past the buffer"},
        {100, 16, -1, "declared length far past the buffer"},
        {3, 24, -1, "padding longer than needed"},
        {0, 16, -1, "zero payload with an extra block"},
        {5, 16, 13, "nonzero padding byte"},
        {1, 16, 15, "nonzero last padding byte"},
        {0xffffffffu, 16, -1, "length beyond the entry limit"},
        {CONSENSUS_MAX_ENTRY + 1, 16, -1, "length just past the limit"},
    };
    unsigned char buf[64];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const void *p = (const void *)1;
        uint32_t type = 1;
        size_t len = 1;

        memset(buf, 0, sizeof(buf));
        put32(buf, cases[i].declared);
        put32(buf + 4, 7);
        if (cases[i].poison >= 0) {
            buf[cases[i].poison] = 0x5a;
        }
        if (consensus_frame_decode(buf, cases[i].buf_len, &type, &p, &len) !=
            OZ_ECORRUPT) {
            fail_msg("row %zu (%s): corrupt frame accepted", i, cases[i].what);
        }
        assert_null(p);
        assert_int_equal(len, 0);
        assert_int_equal(type, 0);
    }
    {
        const void *p;
        uint32_t type;
        size_t len;
        assert_int_equal(consensus_frame_decode(NULL, 8, &type, &p, &len),
                         OZ_ECORRUPT);
    }
}

static void test_config_refused(void **state)
{
    struct consensus_config cfg;
    struct consensus *c = (struct consensus *)1;
    char errmsg[OZ_ERRMSG_SIZE];

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = 1;
    cfg.name = "bad@name";
    cfg.address = "127.0.0.1:1";
    cfg.data_dir = "/tmp/unused";
    cfg.fsm.apply = tfsm_apply;
    cfg.fsm.snapshot = tfsm_snapshot;
    cfg.fsm.restore = tfsm_restore;
    assert_int_equal(consensus_open(&cfg, &c, errmsg), OZ_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(errmsg, "bad@name"));
    cfg.name = "ok";
    cfg.id = 0;
    assert_int_equal(consensus_open(&cfg, &c, errmsg), OZ_ECONFIG);
}

/* The raft port is taken: open fails cleanly (no leak under ASan). */
static void test_open_port_in_use(void **state)
{
    struct consensus_config cfg;
    struct consensus *c = NULL;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    char errmsg[OZ_ERRMSG_SIZE], address[32], dir[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    (void)state;
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(address, sizeof(address), "127.0.0.1:%d", ntohs(sa.sin_port));
    snprintf(dir, sizeof(dir), "/tmp/test_consensus.XXXXXX");
    assert_non_null(mkdtemp(dir));

    memset(&cfg, 0, sizeof(cfg));
    cfg.id = 1;
    cfg.name = "busy";
    cfg.address = address;
    cfg.data_dir = dir;
    cfg.fsm.apply = tfsm_apply;
    cfg.fsm.snapshot = tfsm_snapshot;
    cfg.fsm.restore = tfsm_restore;
    assert_int_equal(consensus_open(&cfg, &c, errmsg), OZ_EIO);
    assert_null(c);
    assert_non_null(strstr(errmsg, "busy"));
    print_message("expected error: %s\n", errmsg);
    close(fd);
    test_tmpdir_remove(dir);
}

/* ---- cluster tests ---- */

struct async_window
{
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;
    int done;
    int errors;
    int bad_results;
    uint64_t last_index;
    int out_of_order;
};

struct async_entry
{
    struct async_window *w;
    int expect_result;
};

static void async_cb(void *arg, int status, uint64_t index, int result)
{
    struct async_entry *e = arg;
    struct async_window *w = e->w;

    pthread_mutex_lock(&w->mu);
    if (status != 0) {
        w->errors++;
    } else {
        if (result != e->expect_result) {
            w->bad_results++;
        }
        if (index <= w->last_index) {
            w->out_of_order++;
        }
        w->last_index = index;
    }
    w->in_flight--;
    w->done++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    free(e);
}

struct submitter
{
    struct consensus *c;
    unsigned seed;
    int n;
    bool async; /* windowed consensus_submit, else consensus_submit_wait */
    int errors;
};

static void *submitter_main(void *arg)
{
    struct submitter *s = arg;
    unsigned char buf[512];
    int i;

    if (s->async) {
        struct async_window w;
        memset(&w, 0, sizeof(w));
        pthread_mutex_init(&w.mu, NULL);
        pthread_cond_init(&w.cv, NULL);
        for (i = 0; i < s->n; i++) {
            size_t len = fill_payload(buf, s->seed, (unsigned)i);
            struct async_entry *e = malloc(sizeof(*e));
            e->w = &w;
            e->expect_result = (int)(len % 7);
            pthread_mutex_lock(&w.mu);
            while (w.in_flight >= 16) {
                pthread_cond_wait(&w.cv, &w.mu);
            }
            w.in_flight++;
            pthread_mutex_unlock(&w.mu);
            if (consensus_submit(s->c, s->seed, buf, len, async_cb, e) != 0) {
                free(e);
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
        s->errors = w.errors + w.bad_results + w.out_of_order;
        pthread_mutex_unlock(&w.mu);
        pthread_cond_destroy(&w.cv);
        pthread_mutex_destroy(&w.mu);
    } else {
        for (i = 0; i < s->n; i++) {
            size_t len = fill_payload(buf, s->seed, (unsigned)i);
            int result;
            if (consensus_submit_wait(s->c, s->seed, buf, len, OP_TIMEOUT_MS,
                                      NULL, &result, NULL) != 0 ||
                result != (int)(len % 7)) {
                s->errors++;
            }
        }
    }
    return NULL;
}

static void test_replicate_two_threads(void **state)
{
    struct cluster *cl = cluster_start(3, 0, 0);
    struct submitter subs[2];
    pthread_t threads[2];
    struct consensus_status st;
    char name[CONSENSUS_NAME_MAX], address[CONSENSUS_ADDRESS_MAX];
    char errmsg[OZ_ERRMSG_SIZE];
    unsigned leader, follower, i, voters = 0;
    uint64_t id, index;

    (void)state;
    leader = wait_leader(cl);
    follower = (leader + 1) % 3;

    for (i = 0; i < 2; i++) {
        subs[i].c = cl->nodes[leader].c;
        subs[i].seed = i + 1;
        subs[i].n = 500;
        subs[i].async = i == 1;
        subs[i].errors = 0;
        assert_int_equal(
            pthread_create(&threads[i], NULL, submitter_main, &subs[i]), 0);
    }
    for (i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(subs[i].errors, 0);
    }
    check_same_state(cl, leader, 1000);

    /* A follower refuses writes and names the leader. */
    assert_int_equal(consensus_submit_wait(cl->nodes[follower].c, 1, "x", 1,
                                           OP_TIMEOUT_MS, &index, NULL, errmsg),
                     OZ_ENOTLEADER);
    assert_int_equal(index, 0);
    assert_non_null(strstr(errmsg, cl->nodes[leader].name));
    assert_int_equal(consensus_leader(cl->nodes[follower].c, &id, name,
                                      sizeof(name), address, sizeof(address)),
                     0);
    assert_int_equal(id, cl->nodes[leader].id);
    assert_string_equal(name, cl->nodes[leader].name);
    assert_string_equal(address, cl->nodes[leader].address);

    /* Linearizable read point on the leader only. */
    assert_int_equal(
        consensus_barrier_wait(cl->nodes[leader].c, OP_TIMEOUT_MS, errmsg), 0);
    assert_int_equal(
        consensus_barrier_wait(cl->nodes[follower].c, OP_TIMEOUT_MS, errmsg),
        OZ_ENOTLEADER);

    consensus_status(cl->nodes[leader].c, &st);
    assert_int_equal(st.role, CONSENSUS_LEADER);
    assert_true(st.term >= 1);
    assert_true(st.commit_index >= 1000);
    assert_true(st.last_applied >= 1000);
    assert_int_equal(st.n_members, 3);
    for (i = 0; i < st.n_members; i++) {
        char expect[16];
        snprintf(expect, sizeof(expect), "n%llu",
                 (unsigned long long)st.members[i].id);
        assert_string_equal(st.members[i].name, expect);
        assert_int_equal(st.members[i].is_leader,
                         st.members[i].id == cl->nodes[leader].id);
        voters += st.members[i].role == CONSENSUS_VOTER;
    }
    assert_int_equal(voters, 3);
    assert_int_equal(consensus_role(cl->nodes[follower].c), CONSENSUS_FOLLOWER);
    assert_string_equal(consensus_name(cl->nodes[follower].c),
                        cl->nodes[follower].name);
    cluster_free(cl);
}

static void test_transfer(void **state)
{
    struct cluster *cl = cluster_start(3, 0, 0);
    char errmsg[OZ_ERRMSG_SIZE];
    unsigned leader, target, next;
    int rc;

    (void)state;
    leader = wait_leader(cl);
    submit_many(cl, leader, 1, 20);
    target = (leader + 2) % 3;
    rc = consensus_transfer_wait(cl->nodes[leader].c, cl->nodes[target].id,
                                 OP_TIMEOUT_MS, errmsg);
    if (rc != 0) {
        fail_msg("transfer: %s", errmsg);
    }
    assert_false(consensus_is_leader(cl->nodes[leader].c));
    WAIT_UNTIL(agreed_leader(cl) == (int)target);
    submit_many(cl, target, 2, 20);

    /* Any voter (0): someone else leads afterwards. */
    rc = consensus_transfer_wait(cl->nodes[target].c, 0, OP_TIMEOUT_MS, errmsg);
    if (rc != 0) {
        fail_msg("transfer to any: %s", errmsg);
    }
    next = wait_leader(cl);
    assert_int_not_equal(next, target);
    submit_many(cl, next, 3, 20);
    check_same_state(cl, next, 60);

    /* Not the leader: refused. */
    assert_int_equal(
        consensus_transfer_wait(cl->nodes[target].c, 0, OP_TIMEOUT_MS, errmsg),
        OZ_ENOTLEADER);
    cluster_free(cl);
}

struct transfer_job
{
    struct consensus *c;
    uint64_t target;
    int timeout_ms;
    int rc;
    uint64_t elapsed_ms;
    char errmsg[OZ_ERRMSG_SIZE];
};

static void *transfer_main(void *arg)
{
    struct transfer_job *j = arg;
    uint64_t start = now_ms();

    j->rc = consensus_transfer_wait(j->c, j->target, j->timeout_ms, j->errmsg);
    j->elapsed_ms = now_ms() - start;
    return NULL;
}

/* raft 0.15 lets one transfer run for an election timeout (400 ms here)
 * and only hands over to a target whose log matches the leader's. A
 * target that is down, then catches up after a restart, still gets
 * leadership within the caller's timeout; one that never catches up
 * fails after that timeout, saying so. */
static void test_transfer_to_catching_up(void **state)
{
    struct cluster *cl = cluster_start(3, 0, 0);
    struct transfer_job job;
    pthread_t thread;
    unsigned leader, target, other;

    (void)state;
    leader = wait_leader(cl);
    submit_many(cl, leader, 1, 20);
    target = (leader + 1) % 3;
    node_close(cl, target);
    submit_many(cl, leader, 2, 20); /* the target misses these */

    memset(&job, 0, sizeof(job));
    job.c = cl->nodes[leader].c;
    job.target = cl->nodes[target].id;
    job.timeout_ms = 8000;
    assert_int_equal(pthread_create(&thread, NULL, transfer_main, &job), 0);
    /* Down for three election timeouts: raft's first attempts lapse. */
    pause_ms(1200);
    node_open(cl, target, CONSENSUS_BOOTSTRAP);
    pthread_join(thread, NULL);
    if (job.rc != 0) {
        fail_msg("transfer to a node catching up: %s (after %llu ms)",
                 job.errmsg, (unsigned long long)job.elapsed_ms);
    }
    assert_true(job.elapsed_ms >= 1200);
    WAIT_UNTIL(agreed_leader(cl) == (int)target);
    submit_many(cl, target, 3, 10);
    check_same_state(cl, target, 50);

    /* A target that stays down: the whole timeout, then a message that
     * says what happened (with the whole log, then behind). */
    other = (target + 1) % 3;
    node_close(cl, other);
    for (int k = 0; k < 2; k++) {
        static const char *const expect[2] = {"did not take over",
                                              "did not catch up"};
        if (k == 1) {
            submit_many(cl, target, 4, 5);
        }
        memset(&job, 0, sizeof(job));
        job.c = cl->nodes[target].c;
        job.target = cl->nodes[other].id;
        job.timeout_ms = 1000;
        transfer_main(&job);
        print_message("expected error: %s\n", job.errmsg);
        assert_int_equal(job.rc, OZ_ETIMEDOUT);
        assert_true(job.elapsed_ms >= 1000);
        assert_true(job.elapsed_ms < 1000 + 2000);
        assert_non_null(strstr(job.errmsg, cl->nodes[other].name));
        if (strstr(job.errmsg, expect[k]) == NULL) {
            fail_msg("case %d: no '%s' in: %s", k, expect[k], job.errmsg);
        }
        assert_true(consensus_is_leader(cl->nodes[target].c));
    }
    node_open(cl, other, CONSENSUS_BOOTSTRAP);
    submit_many(cl, target, 5, 10);
    check_same_state(cl, target, 65);
    cluster_free(cl);
}

static void test_catch_up_by_snapshot(void **state)
{
    struct cluster *cl = cluster_start(3, 32, 8);
    unsigned leader, follower;
    int installs_before;

    (void)state;
    leader = wait_leader(cl);
    submit_many(cl, leader, 1, 50);
    check_same_state(cl, leader, 50);

    follower = (leader + 1) % 3;
    node_close(cl, follower);
    submit_many(cl, leader, 2, 300); /* several snapshots, log compacted */
    pthread_mutex_lock(&cl->nodes[follower].fsm.mu);
    installs_before = cl->nodes[follower].fsm.installs;
    pthread_mutex_unlock(&cl->nodes[follower].fsm.mu);

    node_open(cl, follower, CONSENSUS_BOOTSTRAP); /* same dir: restart */
    check_same_state(cl, leader, 350);
    pthread_mutex_lock(&cl->nodes[follower].fsm.mu);
    assert_true(cl->nodes[follower].fsm.installs > installs_before);
    pthread_mutex_unlock(&cl->nodes[follower].fsm.mu);
    submit_many(cl, leader, 3, 10);
    check_same_state(cl, leader, 360);
    cluster_free(cl);
}

static void test_restart_all(void **state)
{
    struct cluster *cl = cluster_start(3, 64, 16);
    uint64_t skipped = 0;
    unsigned leader, i;

    (void)state;
    leader = wait_leader(cl);
    submit_many(cl, leader, 1, 200);
    check_same_state(cl, leader, 200);
    for (i = 0; i < 3; i++) {
        node_close(cl, i);
    }
    for (i = 0; i < 3; i++) {
        node_open(cl, i, CONSENSUS_BOOTSTRAP);
    }
    leader = wait_leader(cl);
    submit_many(cl, leader, 2, 10);
    check_same_state(cl, leader, 210);
    for (i = 0; i < 3; i++) {
        pthread_mutex_lock(&cl->nodes[i].fsm.mu);
        skipped += cl->nodes[i].fsm.skipped;
        pthread_mutex_unlock(&cl->nodes[i].fsm.mu);
    }
    /* Raft re-applied entries after the last snapshot; the FSM skipped
     * them (had it not, the counts above would be off). */
    assert_true(skipped > 0);
    cluster_free(cl);
}

static void test_add_and_remove_voter(void **state)
{
    struct cluster *cl = cluster_start(3, 0, 0);
    struct consensus_member members[CONSENSUS_MAX_MEMBERS];
    char errmsg[OZ_ERRMSG_SIZE];
    struct node *n4 = &cl->nodes[3];
    unsigned leader, n, i, voters = 0;
    int rc;

    (void)state;
    leader = wait_leader(cl);
    submit_many(cl, leader, 1, 30);
    node_open(cl, 3, CONSENSUS_JOIN);

    assert_int_equal(
        consensus_add_voter_wait(cl->nodes[(leader + 1) % 3].c, n4->id,
                                 n4->name, n4->address, OP_TIMEOUT_MS, errmsg),
        OZ_ENOTLEADER);
    rc = consensus_add_voter_wait(cl->nodes[leader].c, n4->id, n4->name,
                                  n4->address, OP_TIMEOUT_MS, errmsg);
    if (rc != 0) {
        fail_msg("add voter: %s", errmsg);
    }
    /* Again: already a voter, nothing to do. */
    assert_int_equal(
        consensus_add_voter_wait(cl->nodes[leader].c, n4->id, n4->name,
                                 n4->address, OP_TIMEOUT_MS, errmsg),
        0);
    n = consensus_members(cl->nodes[leader].c, members, CONSENSUS_MAX_MEMBERS);
    assert_int_equal(n, 4);
    for (i = 0; i < n; i++) {
        voters += members[i].role == CONSENSUS_VOTER;
        if (members[i].id == n4->id) {
            assert_string_equal(members[i].name, "n4");
            assert_string_equal(members[i].address, n4->address);
        }
    }
    assert_int_equal(voters, 4);
    /* The new node learns the names of everyone from the log. */
    WAIT_UNTIL(consensus_members(n4->c, members, CONSENSUS_MAX_MEMBERS) == 4);
    WAIT_UNTIL(agreed_leader(cl) == (int)leader);
    submit_many(cl, leader, 2, 20);
    check_same_state(cl, leader, 50);

    rc = consensus_remove_wait(cl->nodes[leader].c, n4->id, OP_TIMEOUT_MS,
                               errmsg);
    if (rc != 0) {
        fail_msg("remove: %s", errmsg);
    }
    assert_int_equal(
        consensus_members(cl->nodes[leader].c, members, CONSENSUS_MAX_MEMBERS),
        3);
    assert_int_equal(
        consensus_remove_wait(cl->nodes[leader].c, cl->nodes[leader].id,
                              OP_TIMEOUT_MS, errmsg),
        OZ_EINVAL);
    assert_int_equal(
        consensus_remove_wait(cl->nodes[leader].c, 99, OP_TIMEOUT_MS, errmsg),
        OZ_ENOTFOUND);
    node_close(cl, 3);
    submit_many(cl, leader, 3, 10);
    check_same_state(cl, leader, 60);
    cluster_free(cl);
}

/* Oldest index in a closed segment file of dir, 0 when none. */
static uint64_t oldest_segment(const char *dir, char *listing, size_t size)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    uint64_t oldest = 0;
    size_t used = 0;

    assert_non_null(dh);
    listing[0] = '\0';
    while ((e = readdir(dh)) != NULL) {
        unsigned long long first = 0, last = 0;
        if (e->d_name[0] == '.') {
            continue;
        }
        if (used < size) {
            used +=
                (size_t)snprintf(listing + used, size - used, "%s ", e->d_name);
        }
        if (strlen(e->d_name) == 33 &&
            sscanf(e->d_name, "%16llu-%16llu", &first, &last) == 2 &&
            (oldest == 0 || first < oldest)) {
            oldest = first;
        }
    }
    closedir(dh);
    return oldest;
}

static bool purge_finished(struct tfsm *t, int *status)
{
    bool done;

    pthread_mutex_lock(&t->mu);
    done = t->purge_done;
    *status = t->purge_status;
    pthread_mutex_unlock(&t->mu);
    return done;
}

/* consensus_snapshot_now from inside apply on every node: each purges its
 * log (memory and segment files) up to the entry, raft's threshold comes
 * back, and a restart restores the purged state from the snapshot. */
static void test_purge_now(void **state)
{
    struct cluster *cl = cluster_start(3, 100000, 100000);
    struct consensus_status st;
    char errmsg[OZ_ERRMSG_SIZE];
    char listing[2048];
    uint64_t purge_at = 0, snap_after;
    unsigned leader, i;
    int status = -1;

    (void)state;
    leader = wait_leader(cl);
    submit_many(cl, leader, 1, 120);
    check_same_state(cl, leader, 120);
    consensus_status(cl->nodes[leader].c, &st);
    assert_int_equal(st.snapshot_index, 0);
    assert_int_equal(st.first_index, 1);
    assert_int_equal(
        consensus_submit_wait(cl->nodes[leader].c, PURGE_TYPE, "purge", 5,
                              OP_TIMEOUT_MS, &purge_at, NULL, errmsg),
        0);
    for (i = 0; i < 3; i++) {
        struct tfsm *t = &cl->nodes[i].fsm;
        WAIT_UNTIL(purge_finished(t, &status));
        assert_int_equal(status, 0);
        assert_int_equal(t->purge_index, purge_at);
        consensus_status(cl->nodes[i].c, &st);
        uint64_t oldest =
            oldest_segment(cl->nodes[i].dir, listing, sizeof(listing));
        if (st.snapshot_index <= purge_at ||
            (st.first_index != 0 && st.first_index <= purge_at) ||
            (oldest != 0 && oldest <= purge_at)) {
            fail_msg(
                "%s not purged up to %llu: snapshot %llu, first entry "
                "%llu, files: %s",
                cl->nodes[i].name, (unsigned long long)purge_at,
                (unsigned long long)st.snapshot_index,
                (unsigned long long)st.first_index, listing);
        }
    }
    /* Already purged: at once, from any thread. */
    assert_int_equal(consensus_snapshot_now_wait(cl->nodes[leader].c, purge_at,
                                                 OP_TIMEOUT_MS, errmsg),
                     0);
    /* The configured threshold is back: more entries take no snapshot. */
    consensus_status(cl->nodes[leader].c, &st);
    snap_after = st.snapshot_index;
    submit_many(cl, leader, 2, 40);
    check_same_state(cl, leader, 161);
    consensus_status(cl->nodes[leader].c, &st);
    assert_int_equal(st.snapshot_index, snap_after);
    /* A purge of everything applied so far, asked from outside apply. */
    assert_int_equal(consensus_snapshot_now_wait(cl->nodes[leader].c, 0,
                                                 OP_TIMEOUT_MS, errmsg),
                     0);
    consensus_status(cl->nodes[leader].c, &st);
    assert_true(st.snapshot_index > snap_after);
    /* Restart: the state comes back from the snapshot and the log. */
    for (i = 0; i < 3; i++) {
        node_close(cl, i);
    }
    for (i = 0; i < 3; i++) {
        node_open(cl, i, CONSENSUS_BOOTSTRAP);
    }
    leader = wait_leader(cl);
    submit_many(cl, leader, 3, 5);
    check_same_state(cl, leader, 166);
    cluster_free(cl);
}

static void test_single_node(void **state)
{
    struct cluster *cl = cluster_start(1, 0, 0);
    struct consensus_status st;
    unsigned leader;

    (void)state;
    leader = wait_leader(cl);
    assert_int_equal(leader, 0);
    submit_many(cl, 0, 1, 5);
    consensus_status(cl->nodes[0].c, &st);
    assert_int_equal(st.n_members, 1);
    assert_true(st.members[0].is_leader);
    cluster_free(cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_roundtrip),
        cmocka_unit_test(test_frame_corrupt),
        cmocka_unit_test(test_config_refused),
        cmocka_unit_test(test_open_port_in_use),
        cmocka_unit_test(test_single_node),
        cmocka_unit_test(test_replicate_two_threads),
        cmocka_unit_test(test_transfer),
        cmocka_unit_test(test_transfer_to_catching_up),
        cmocka_unit_test(test_catch_up_by_snapshot),
        cmocka_unit_test(test_restart_all),
        cmocka_unit_test(test_add_and_remove_voter),
        cmocka_unit_test(test_purge_now),
    };

    signal(SIGPIPE, SIG_IGN); /* raft_uv writes to sockets peers close */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
