/* Unit tests for the rolling-upgrade orchestrator's backends
 * (admin-cli/orch_backend.c, issue 7).
 *
 * local: real processes. A fake `ozone` shell script (it keeps its
 * arguments on its command line, logs, and exits on SIGTERM, or ignores
 * it, or fails at start, as its environment says) is started, stopped and
 * killed for real through the manifest deploy/local/ozone_local.py writes.
 * systemd and compose: --dry-run with a temporary unit / compose dir, the
 * generated drop-in checked against deploy/systemd and, when
 * systemd-analyze exists, verified offline like scripts/validate-deploy
 * does. OZONE_SRC (set by meson) is the source tree.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "fault.h"
#include "orch.h"
#include "test_tmpdir.h"

/* ---- helpers ---- */

struct fixture
{
    char dir[64];
    char manifest[128];
    char old_bin[128];
    char new_bin[128];
    char log[128];
    char conf[128];
};

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* The file's contents (caller frees), or NULL when it does not exist. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long len;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until the file holds needle (the fake writes its log lines
 * asynchronously). */
static bool wait_file_has(const char *path, const char *needle, long ms)
{
    long end = now_ms() + ms;

    for (;;) {
        char *text = slurp(path);
        bool found = text != NULL && strstr(text, needle) != NULL;
        free(text);
        if (found || now_ms() > end) {
            return found;
        }
        sleep_ms(20);
    }
}

static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp != NULL ? rp[2] : 0;
}

static bool running(pid_t pid)
{
    char st = proc_state(pid);
    return st != 0 && st != 'Z' && st != 'X';
}

/* The fake ozone: logs its arguments and FAKE_ENV; FAKE_MODE=fail exits at
 * once with a message, FAKE_MODE=stubborn ignores SIGTERM. The shell keeps
 * its arguments on its command line, as the real binary does. */
static const char fake_ozone[] =
    "#!/bin/sh\n"
    "echo \"fake ozone $*: env FAKE_ENV=$FAKE_ENV\"\n"
    "if [ \"$FAKE_MODE\" = fail ]; then\n"
    "  i=1; while [ $i -le 30 ]; do echo \"start-up line $i\"; "
    "i=$((i+1)); done\n"
    "  echo 'cannot start: invalid value for hdds.datanode.dir'\n"
    "  exit 2\n"
    "fi\n"
    "if [ \"$FAKE_MODE\" = stubborn ]; then trap '' TERM; else\n"
    "  trap 'echo \"fake ozone: SIGTERM, draining\"; exit 0' TERM; fi\n"
    "while :; do sleep 0.05; done\n";

static void make_bin(const char *dir)
{
    char path[256];

    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/ozone", dir);
    write_file(path, fake_ozone, 0755);
}

/* A manifest with node dn1 (running on old_bin, pid) and om1. */
static void write_manifest(const struct fixture *f, const char *mode, pid_t pid)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "version", 1);
    cJSON_AddStringToObject(m, "conf_dir", f->conf);
    cJSON *nodes = cJSON_AddArrayToObject(m, "nodes");
    const char *names[] = {"dn1", "om1"};
    for (size_t i = 0; i < 2; i++) {
        char exe[256], log[256], id[64];
        cJSON *n = cJSON_CreateObject();
        snprintf(exe, sizeof(exe), "%s/ozone", f->old_bin);
        snprintf(log, sizeof(log), "%s/logs/%s.log", f->dir, names[i]);
        cJSON_AddStringToObject(n, "name", names[i]);
        cJSON_AddStringToObject(n, "kind", i == 0 ? "datanode" : "om");
        cJSON_AddStringToObject(n, "binary", exe);
        cJSON *args = cJSON_AddArrayToObject(n, "args");
        cJSON_AddItemToArray(args,
                             cJSON_CreateString(i == 0 ? "datanode" : "om"));
        cJSON_AddItemToArray(args, cJSON_CreateString("--conf"));
        cJSON_AddItemToArray(args, cJSON_CreateString(f->conf));
        cJSON_AddItemToArray(args, cJSON_CreateString("-D"));
        snprintf(id, sizeof(id), "test.node.id=%s", names[i]);
        cJSON_AddItemToArray(args, cJSON_CreateString(id));
        cJSON *env = cJSON_AddObjectToObject(n, "env");
        cJSON_AddStringToObject(env, "FAKE_ENV", "from-manifest");
        if (mode != NULL && i == 0) {
            cJSON_AddStringToObject(env, "FAKE_MODE", mode);
        }
        cJSON_AddStringToObject(n, "log", log);
        cJSON_AddNumberToObject(n, "pid", i == 0 ? pid : 0);
        cJSON_AddStringToObject(n, "rpc_address", "127.0.0.1:1");
        cJSON_AddStringToObject(n, "http_address", "127.0.0.1:2");
        cJSON_AddItemToArray(nodes, n);
    }
    char *text = cJSON_Print(m);
    write_file(f->manifest, text, 0644);
    free(text);
    cJSON_Delete(m);
}

static cJSON *manifest_entry(const struct fixture *f,
                             const char *name,
                             cJSON **root)
{
    char *text = slurp(f->manifest);
    assert_non_null(text);
    *root = cJSON_Parse(text);
    free(text);
    assert_non_null(*root);
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(*root, "nodes"))
    {
        if (strcmp(cJSON_GetObjectItem(e, "name")->valuestring, name) == 0) {
            return e;
        }
    }
    fail_msg("node %s not in the manifest", name);
    return NULL;
}

static pid_t manifest_pid(const struct fixture *f, const char *name)
{
    cJSON *root;
    pid_t pid =
        (pid_t)cJSON_GetObjectItem(manifest_entry(f, name, &root), "pid")
            ->valuedouble;
    cJSON_Delete(root);
    return pid;
}

static void manifest_binary(const struct fixture *f,
                            const char *name,
                            char *out,
                            size_t size)
{
    cJSON *root;
    snprintf(out, size, "%s",
             cJSON_GetObjectItem(manifest_entry(f, name, &root), "binary")
                 ->valuestring);
    cJSON_Delete(root);
}

static struct orch_node node_of(enum orch_kind kind,
                                const char *name,
                                const char *host)
{
    struct orch_node n;

    memset(&n, 0, sizeof(n));
    n.kind = kind;
    snprintf(n.name, sizeof(n.name), "%s", name);
    snprintf(n.host, sizeof(n.host), "%s", host);
    snprintf(n.rpc_address, sizeof(n.rpc_address), "%s:9862", host);
    return n;
}

static int setup_local(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[256];

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/oz-orch-backend-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->manifest, sizeof(f->manifest), "%s/cluster.json", f->dir);
    snprintf(f->old_bin, sizeof(f->old_bin), "%s/old-bin", f->dir);
    snprintf(f->new_bin, sizeof(f->new_bin), "%s/new-bin", f->dir);
    snprintf(f->log, sizeof(f->log), "%s/logs/dn1.log", f->dir);
    snprintf(f->conf, sizeof(f->conf), "%s/conf", f->dir);
    make_bin(f->old_bin);
    make_bin(f->new_bin);
    mkdir(f->conf, 0755);
    snprintf(path, sizeof(path), "%s/logs", f->dir);
    mkdir(path, 0755);
    *state = f;
    return 0;
}

static int teardown_local(void **state)
{
    struct fixture *f = *state;

    /* Any fake still running (a failed test) goes with the directory. */
    cJSON *root = NULL;
    char *text = slurp(f->manifest);
    if (text != NULL && (root = cJSON_Parse(text)) != NULL) {
        cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "nodes"))
        {
            cJSON *pid = cJSON_GetObjectItem(e, "pid");
            if (cJSON_IsNumber(pid) && pid->valuedouble > 0 &&
                running((pid_t)pid->valuedouble)) {
                kill((pid_t)pid->valuedouble, SIGKILL);
            }
        }
    }
    cJSON_Delete(root);
    free(text);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static struct orch_backend *open_local(const struct fixture *f,
                                       bool dry_run,
                                       FILE *out)
{
    struct orch_backend_args a = {.name = "local",
                                  .local_manifest = f->manifest,
                                  .dry_run = dry_run,
                                  .out = out};
    struct orch_backend *b = NULL;
    char errmsg[ORCH_ERRMSG_SIZE];
    int rc = orch_backend_open(NULL, &a, &b, errmsg);

    if (rc != 0) {
        fail_msg("open: %s", errmsg);
    }
    return b;
}

/* ---- local ---- */

/* The manifest: found next to the conf dir, read, checked. */
static void test_local_manifest(void **state)
{
    struct fixture *f = *state;
    struct cli cli;
    struct orch_backend_args a = {.name = "local"};
    struct orch_backend *b = NULL;
    struct orch_node dn1 = node_of(ORCH_DATANODE, "dn1", "127.0.0.1");
    struct orch_node dn9 = node_of(ORCH_DATANODE, "dn9", "127.0.0.1");
    char errmsg[ORCH_ERRMSG_SIZE], bin[ORCH_PATH_SIZE];

    /* No manifest yet: the message says who writes it. */
    memset(&cli, 0, sizeof(cli));
    cli.conf_dir = f->conf;
    assert_int_equal(orch_backend_open(&cli, &a, &b, errmsg), OZ_ENOTFOUND);
    assert_null(b);
    assert_non_null(strstr(errmsg, "ozone-local"));
    /* Neither --local-manifest nor --conf. */
    assert_int_equal(orch_backend_open(NULL, &a, &b, errmsg), OZ_EINVAL);
    assert_non_null(strstr(errmsg, "--local-manifest"));

    /* Malformed. */
    write_file(f->manifest, "{\"nodes\": 3}", 0644);
    assert_int_equal(orch_backend_open(&cli, &a, &b, errmsg), OZ_ECORRUPT);
    assert_non_null(strstr(errmsg, "\"nodes\" array"));

    /* Default path: <conf dir>/../cluster.json. */
    write_manifest(f, NULL, 0);
    assert_int_equal(orch_backend_open(&cli, &a, &b, errmsg), 0);
    assert_int_equal(
        orch_backend_current_bin(b, &dn1, bin, sizeof(bin), errmsg), 0);
    assert_string_equal(bin, f->old_bin);
    assert_false(orch_backend_alive(b, &dn1));
    assert_int_equal(
        orch_backend_current_bin(b, &dn9, bin, sizeof(bin), errmsg), OZ_EINVAL);
    assert_non_null(strstr(errmsg, "'dn9' is not in manifest"));

    /* An entry with the wrong types is refused, naming the node. */
    write_file(f->manifest,
               "{\"nodes\": [{\"name\": \"dn1\", \"binary\": \"/x/ozone\", "
               "\"args\": [1], \"log\": \"/x/l\", \"pid\": 0}]}",
               0644);
    assert_int_equal(
        orch_backend_current_bin(b, &dn1, bin, sizeof(bin), errmsg), OZ_EINVAL);
    assert_non_null(strstr(errmsg, "malformed entry for 'dn1'"));
    orch_backend_close(b);
}

/* Start on the new binary, stop with SIGTERM: a real process in its own
 * session that is not our child, recorded in the manifest. */
static void test_local_start_stop(void **state)
{
    struct fixture *f = *state;
    struct orch_node dn1 = node_of(ORCH_DATANODE, "dn1", "127.0.0.1");
    char errmsg[ORCH_ERRMSG_SIZE], bin[ORCH_PATH_SIZE], exe[ORCH_PATH_SIZE];

    write_manifest(f, NULL, 0);
    struct orch_backend *b = open_local(f, false, NULL);

    assert_int_equal(orch_backend_start(b, &dn1, f->new_bin, errmsg), 0);
    pid_t pid = manifest_pid(f, "dn1");
    assert_true(pid > 0);
    assert_true(running(pid));
    /* Double fork + setsid: another session than ours, not our child. */
    assert_true(getsid(pid) > 0);
    assert_int_not_equal(getsid(pid), getsid(0));
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    manifest_binary(f, "dn1", exe, sizeof(exe));
    snprintf(bin, sizeof(bin), "%s/ozone", f->new_bin);
    assert_string_equal(exe, bin);
    assert_int_equal(
        orch_backend_current_bin(b, &dn1, bin, sizeof(bin), errmsg), 0);
    assert_string_equal(bin, f->new_bin);
    assert_true(orch_backend_alive(b, &dn1));
    /* Arguments and the manifest's environment reached it; output goes
     * to its log. */
    char want[512];
    snprintf(want, sizeof(want),
             "fake ozone datanode --conf %s -D test.node.id=dn1: env "
             "FAKE_ENV=from-manifest",
             f->conf);
    assert_true(wait_file_has(f->log, want, 5000));

    /* A second start while it runs is refused. */
    assert_int_equal(orch_backend_start(b, &dn1, f->new_bin, errmsg),
                     OZ_ESTATE);
    assert_non_null(strstr(errmsg, "runs already"));

    long t0 = now_ms();
    assert_int_equal(orch_backend_stop(b, &dn1, 10000, errmsg), 0);
    assert_true(now_ms() - t0 < 5000); /* SIGTERM did it, no SIGKILL */
    assert_false(running(pid));
    assert_int_equal(manifest_pid(f, "dn1"), 0);
    assert_false(orch_backend_alive(b, &dn1));
    assert_true(wait_file_has(f->log, "SIGTERM, draining", 2000));
    /* Stopping a stopped node is fine. */
    assert_int_equal(orch_backend_stop(b, &dn1, 1000, errmsg), 0);

    /* Back on the old binary (what --rollback does). */
    assert_int_equal(orch_backend_start(b, &dn1, f->old_bin, errmsg), 0);
    assert_int_equal(
        orch_backend_current_bin(b, &dn1, bin, sizeof(bin), errmsg), 0);
    assert_string_equal(bin, f->old_bin);
    pid = manifest_pid(f, "dn1");
    assert_int_equal(orch_backend_stop(b, &dn1, 10000, errmsg), 0);
    assert_false(running(pid));

    /* A directory without an executable ozone. */
    assert_int_equal(orch_backend_start(b, &dn1, f->dir, errmsg), OZ_ENOTFOUND);
    assert_non_null(strstr(errmsg, "is not an executable file"));
    orch_backend_close(b);
}

/* A binary that exits at once: the start fails with the last 20 lines of
 * what it wrote, and the manifest says it does not run. */
static void test_local_start_failure(void **state)
{
    struct fixture *f = *state;
    struct orch_node dn1 = node_of(ORCH_DATANODE, "dn1", "127.0.0.1");
    char errmsg[ORCH_ERRMSG_SIZE];

    /* An earlier run's lines must not show up in the message. */
    write_file(f->log, "old run: all good\n", 0644);
    write_manifest(f, "fail", 0);
    struct orch_backend *b = open_local(f, false, NULL);

    assert_int_equal(orch_backend_start(b, &dn1, f->new_bin, errmsg),
                     OZ_ESTATE);
    assert_non_null(strstr(errmsg, "'dn1' exited within"));
    assert_non_null(
        strstr(errmsg, "cannot start: invalid value for hdds.datanode.dir"));
    assert_non_null(strstr(errmsg, "start-up line 30"));
    assert_non_null(strstr(errmsg, "start-up line 12"));
    assert_null(strstr(errmsg, "start-up line 11\n")); /* 20 lines only */
    assert_null(strstr(errmsg, "old run"));
    assert_int_equal(manifest_pid(f, "dn1"), 0);
    assert_false(orch_backend_alive(b, &dn1));
    orch_backend_close(b);
}

/* The pid is recorded before the process may exec: when recording fails
 * (or the orchestrator dies right there), the process never runs, so no
 * node ever runs without the manifest knowing it. */
static void test_local_unrecorded_never_runs(void **state)
{
    struct fixture *f = *state;
    struct orch_node dn1 = node_of(ORCH_DATANODE, "dn1", "127.0.0.1");
    char errmsg[ORCH_ERRMSG_SIZE];

    write_manifest(f, NULL, 0);
    struct orch_backend *b = open_local(f, false, NULL);
    fault_set("orch.local.before_record", FAULT_ERROR);
    assert_int_equal(orch_backend_start(b, &dn1, f->new_bin, errmsg),
                     OZ_EFAULT);
    fault_clear_all();
    assert_non_null(strstr(errmsg, "injected fault"));
    assert_int_equal(manifest_pid(f, "dn1"), 0);
    /* Given time to run, it wrote nothing: it never exec'd. */
    assert_false(wait_file_has(f->log, "fake ozone", 1500));
    assert_false(orch_backend_alive(b, &dn1));
    /* The next start works. */
    assert_int_equal(orch_backend_start(b, &dn1, f->new_bin, errmsg), 0);
    assert_true(wait_file_has(f->log, "fake ozone datanode", 5000));
    assert_int_equal(orch_backend_stop(b, &dn1, 10000, errmsg), 0);
    orch_backend_close(b);
}

/* A process that ignores SIGTERM is killed once the timeout is over. */
static void test_local_stop_kills(void **state)
{
    struct fixture *f = *state;
    struct orch_node dn1 = node_of(ORCH_DATANODE, "dn1", "127.0.0.1");
    char errmsg[ORCH_ERRMSG_SIZE];

    write_manifest(f, "stubborn", 0);
    struct orch_backend *b = open_local(f, false, NULL);
    assert_int_equal(orch_backend_start(b, &dn1, f->new_bin, errmsg), 0);
    pid_t pid = manifest_pid(f, "dn1");
    assert_true(wait_file_has(f->log, "fake ozone datanode", 5000));

    long t0 = now_ms();
    assert_int_equal(orch_backend_stop(b, &dn1, 300, errmsg), 0);
    long took = now_ms() - t0;
    assert_true(took >= 300);
    assert_true(took < 5000);
    assert_false(running(pid));
    assert_int_equal(manifest_pid(f, "dn1"), 0);
    orch_backend_close(b);
}

/* The node runs as the child of another process that does not reap it
 * (deploy/local/ozone_local.py's Popen): after SIGTERM it is a zombie,
 * which counts as stopped; the stop must not wait for the timeout. */
static void test_local_stop_zombie_of_other_parent(void **state)
{
    struct fixture *f = *state;
    struct orch_node dn1 = node_of(ORCH_DATANODE, "dn1", "127.0.0.1");
    char errmsg[ORCH_ERRMSG_SIZE], exe[256], conf_arg[256];
    int pfd[2];
    pid_t parent, node = 0;

    snprintf(exe, sizeof(exe), "%s/ozone", f->old_bin);
    snprintf(conf_arg, sizeof(conf_arg), "%s", f->conf);
    assert_int_equal(pipe(pfd), 0);
    parent = fork();
    assert_true(parent >= 0);
    if (parent == 0) {
        /* The other parent: starts the node, never reaps it. */
        pid_t c = fork();
        if (c == 0) {
            int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
            execl(exe, exe, "datanode", "--conf", conf_arg, "-D",
                  "test.node.id=dn1", (char *)NULL);
            _exit(127);
        }
        (void)!write(pfd[1], &c, sizeof(c));
        for (;;) {
            pause();
        }
    }
    close(pfd[1]);
    assert_int_equal(read(pfd[0], &node, sizeof(node)), (ssize_t)sizeof(node));
    close(pfd[0]);
    assert_true(wait_file_has(f->log, "fake ozone datanode", 5000));
    write_manifest(f, NULL, node);
    struct orch_backend *b = open_local(f, false, NULL);
    assert_true(orch_backend_alive(b, &dn1));

    long t0 = now_ms();
    assert_int_equal(orch_backend_stop(b, &dn1, 20000, errmsg), 0);
    assert_true(now_ms() - t0 < 5000);
    /* Still a zombie of the other parent: that is what stopped the wait. */
    assert_int_equal(proc_state(node), 'Z');
    assert_int_equal(manifest_pid(f, "dn1"), 0);
    assert_false(orch_backend_alive(b, &dn1));
    kill(parent, SIGKILL);
    waitpid(parent, NULL, 0);
    orch_backend_close(b);
}

/* A recorded pid that now belongs to another process (pid reuse) is not
 * the node: not alive, and a stop must not signal it. */
static void test_local_pid_reused(void **state)
{
    struct fixture *f = *state;
    struct orch_node dn1 = node_of(ORCH_DATANODE, "dn1", "127.0.0.1");
    char errmsg[ORCH_ERRMSG_SIZE];
    pid_t other = fork();

    assert_true(other >= 0);
    if (other == 0) {
        execl("/bin/sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    write_manifest(f, NULL, other);
    struct orch_backend *b = open_local(f, false, NULL);
    assert_false(orch_backend_alive(b, &dn1));
    assert_int_equal(orch_backend_stop(b, &dn1, 1000, errmsg), 0);
    assert_int_equal(waitpid(other, NULL, WNOHANG), 0); /* still runs */
    assert_int_equal(manifest_pid(f, "dn1"), 0);
    kill(other, SIGKILL);
    waitpid(other, NULL, 0);
    orch_backend_close(b);
}

/* --dry-run prints the commands and leaves processes and manifest alone. */
static void test_local_dry_run(void **state)
{
    struct fixture *f = *state;
    struct orch_node dn1 = node_of(ORCH_DATANODE, "dn1", "127.0.0.1");
    char errmsg[ORCH_ERRMSG_SIZE], want[512];
    char *out = NULL;
    size_t out_len = 0;
    FILE *mem = open_memstream(&out, &out_len);

    write_manifest(f, NULL, 0);
    char *before = slurp(f->manifest);
    struct orch_backend *b = open_local(f, true, mem);
    assert_int_equal(orch_backend_stop(b, &dn1, 60000, errmsg), 0);
    assert_int_equal(orch_backend_start(b, &dn1, f->new_bin, errmsg), 0);
    fflush(mem);
    snprintf(want, sizeof(want),
             "dry-run: setsid env FAKE_ENV=from-manifest %s/ozone datanode "
             "--conf %s -D test.node.id=dn1 </dev/null >>%s 2>&1 &",
             f->new_bin, f->conf, f->log);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "dry-run: # dn1 is not running"));
    char *after = slurp(f->manifest);
    assert_string_equal(before, after);
    assert_int_equal(manifest_pid(f, "dn1"), 0);
    assert_null(slurp(f->log)); /* nothing ran */
    free(before);
    free(after);
    orch_backend_close(b);
    fclose(mem);
    free(out);
}

/* ---- systemd ---- */

/* ExecStartPre / ExecStart values of a shipped unit, "\n"-joined with
 * their key. */
static void shipped_exec_lines(const char *unit, char *out, size_t size)
{
    char path[512];
    const char *src = getenv("OZONE_SRC");

    assert_non_null(src);
    snprintf(path, sizeof(path), "%s/deploy/systemd/%s", src, unit);
    char *text = slurp(path);
    assert_non_null(text);
    out[0] = '\0';
    for (char *l = text; l != NULL && *l != '\0';) {
        char *nl = strchr(l, '\n');
        size_t len = nl != NULL ? (size_t)(nl - l) : strlen(l);
        if (strncmp(l, "ExecStartPre=", 13) == 0 ||
            strncmp(l, "ExecStart=", 10) == 0) {
            size_t used = strlen(out);
            snprintf(out + used, size - used, "%.*s\n", (int)len, l);
        }
        l = nl != NULL ? nl + 1 : NULL;
    }
    free(text);
}

/* The drop-in of every kind holds the shipped unit's commands with the
 * binary replaced, each cleared first. */
static void test_systemd_dropin_matches_units(void **state)
{
    static const struct
    {
        enum orch_kind kind;
        const char *name;
        const char *template_unit;
        const char *unit;
    } cases[] = {
        {ORCH_SCM, "scm", "ozone-scm.service", "ozone-scm.service"},
        {ORCH_RECON, "recon", "ozone-recon.service", "ozone-recon.service"},
        {ORCH_DATANODE, "dn1", "ozone-datanode.service",
         "ozone-datanode.service"},
        {ORCH_OM, "om2", "ozone-om@.service", "ozone-om@om2.service"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct orch_node n = node_of(cases[i].kind, cases[i].name, "::1");
        char unit[128], dropin[4096], shipped[2048], errmsg[ORCH_ERRMSG_SIZE];

        assert_int_equal(orch_systemd_unit(&n, unit, sizeof(unit)), 0);
        if (strcmp(unit, cases[i].unit) != 0) {
            fail_msg("case %zu: unit %s, expected %s", i, unit, cases[i].unit);
        }
        assert_int_equal(orch_systemd_dropin(&n, "/opt/ozone-1.1/bin", dropin,
                                             sizeof(dropin), errmsg),
                         0);
        assert_non_null(strstr(dropin, "\n[Service]\n"));
        shipped_exec_lines(cases[i].template_unit, shipped, sizeof(shipped));
        assert_true(shipped[0] != '\0');
        size_t n_lines = 0;
        for (char *l = shipped; *l != '\0';) {
            char *nl = strchr(l, '\n');
            char line[1024], key[32], want[1100];
            snprintf(line, sizeof(line), "%.*s", (int)(nl - l), l);
            size_t klen = strcspn(line, "=");
            snprintf(key, sizeof(key), "%.*s", (int)klen, line);
            const char *val = line + klen + 1;
            const char *old = "/usr/local/bin/ozone ";
            if (strncmp(val, old, strlen(old)) != 0) {
                fail_msg("case %zu: %s does not run %s", i, line, old);
            }
            snprintf(want, sizeof(want),
                     "%s=\n%s=/opt/ozone-1.1/bin/ozone %s\n", key, key,
                     val + strlen(old));
            if (strstr(dropin, want) == NULL) {
                fail_msg("case %zu: drop-in lacks\n%s---\n%s", i, want, dropin);
            }
            n_lines++;
            l = nl + 1;
        }
        /* Nothing else is set: one clear + one value per shipped line. */
        size_t n_exec = 0;
        for (const char *p = dropin; (p = strstr(p, "\nExec")) != NULL; p++) {
            n_exec++;
        }
        if (n_exec != 2 * n_lines) {
            fail_msg("case %zu: %zu Exec lines for %zu shipped", i, n_exec,
                     n_lines);
        }
    }
}

static void test_systemd_dropin_refuses_bad_bin(void **state)
{
    static const char *const bad[] = {"relative/bin", "/opt/my ozone",
                                      "/opt/x\"y",    "/opt/$HOME",
                                      "/opt/a\\b",    ""};
    struct orch_node n = node_of(ORCH_OM, "om1", "127.0.0.1");
    char out[4096], errmsg[ORCH_ERRMSG_SIZE];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (orch_systemd_dropin(&n, bad[i], out, sizeof(out), errmsg) !=
            OZ_EINVAL) {
            fail_msg("case %zu: '%s' accepted", i, bad[i]);
        }
    }
    /* '%' is a specifier in unit files: escaped. */
    assert_int_equal(
        orch_systemd_dropin(&n, "/opt/ozone%1/", out, sizeof(out), errmsg), 0);
    assert_non_null(strstr(out, "ExecStart=/opt/ozone%%1/ozone om -D"));
    /* Instance names systemd would need escaped are refused. */
    struct orch_node odd = node_of(ORCH_OM, "om 1/x", "127.0.0.1");
    assert_int_equal(orch_systemd_unit(&odd, out, sizeof(out)), OZ_EINVAL);
}

/* --dry-run: the drop-in and the systemctl commands are printed, through
 * ssh for a node on another host; nothing is written. current_bin reads
 * an existing drop-in. */
static void test_systemd_dry_run(void **state)
{
    struct fixture *f = *state;
    struct orch_node om1 = node_of(ORCH_OM, "om1", "127.0.0.1");
    struct orch_node dn7 = node_of(ORCH_DATANODE, "dn7", "dn7.remote.invalid");
    char errmsg[ORCH_ERRMSG_SIZE], want[1024], bin[ORCH_PATH_SIZE];
    char *out = NULL;
    size_t out_len = 0;
    FILE *mem = open_memstream(&out, &out_len);
    struct orch_backend_args a = {.name = "systemd",
                                  .systemd_unit_dir = f->dir,
                                  .dry_run = true,
                                  .out = mem};
    struct orch_backend *b = NULL;

    assert_int_equal(orch_backend_open(NULL, &a, &b, errmsg), 0);
    assert_int_equal(orch_backend_stop(b, &om1, 60000, errmsg), 0);
    assert_int_equal(orch_backend_start(b, &om1, "/opt/ozone-1.1/bin", errmsg),
                     0);
    assert_int_equal(orch_backend_stop(b, &dn7, 60000, errmsg), 0);
    assert_int_equal(orch_backend_start(b, &dn7, "/opt/ozone-1.1/bin", errmsg),
                     0);
    fflush(mem);
    assert_non_null(
        strstr(out, "dry-run: systemctl stop ozone-om@om1.service\n"));
    snprintf(
        want, sizeof(want),
        "dry-run: write %s/ozone-om@om1.service.d/50-ozone-upgrade.conf:\n",
        f->dir);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out,
                           "dry-run: | ExecStartPre=\n"
                           "dry-run: | ExecStartPre=/opt/ozone-1.1/bin/"
                           "ozone om --init -D ozone.om.node.id=%i "
                           "$OZONE_OPTS\n"));
    assert_non_null(strstr(out,
                           "dry-run: systemctl daemon-reload\n"
                           "dry-run: systemctl restart "
                           "ozone-om@om1.service\n"));
    /* Another host: through ssh in batch mode. */
    assert_non_null(strstr(out,
                           "dry-run: ssh -o BatchMode=yes -o "
                           "ConnectTimeout=15 dn7.remote.invalid "
                           "'systemctl stop ozone-datanode.service'\n"));
    assert_non_null(strstr(out, " on dn7.remote.invalid:\n"));
    assert_non_null(strstr(out,
                           "dry-run: ssh -o BatchMode=yes -o "
                           "ConnectTimeout=15 dn7.remote.invalid "
                           "'systemctl restart ozone-datanode.service'\n"));
    /* Nothing written. */
    snprintf(want, sizeof(want), "%s/ozone-om@om1.service.d", f->dir);
    struct stat st;
    assert_int_not_equal(stat(want, &st), 0);

    /* current_bin: the shipped path without a drop-in, else the drop-in's. */
    assert_int_equal(
        orch_backend_current_bin(b, &om1, bin, sizeof(bin), errmsg), 0);
    assert_string_equal(bin, "/usr/local/bin");
    char dropin[4096], path[512];
    assert_int_equal(orch_systemd_dropin(&om1, "/opt/ozone%2/bin", dropin,
                                         sizeof(dropin), errmsg),
                     0);
    assert_int_equal(mkdir(want, 0755), 0);
    snprintf(path, sizeof(path), "%s/50-ozone-upgrade.conf", want);
    write_file(path, dropin, 0644);
    assert_int_equal(
        orch_backend_current_bin(b, &om1, bin, sizeof(bin), errmsg), 0);
    assert_string_equal(bin, "/opt/ozone%2/bin");
    orch_backend_close(b);
    fclose(mem);
    free(out);
}

/* Runs `systemd-analyze verify` on ozone-om@om1.service (the shipped
 * template plus dropin) in a throw-away root, as scripts/validate-deploy
 * does; returns its output ("" when clean) or NULL when systemd-analyze is
 * missing. */
static char *verify_unit(const struct fixture *f, const char *dropin)
{
    char root[256], cmd[4096], path[512];
    const char *src = getenv("OZONE_SRC");

    if (system("command -v systemd-analyze >/dev/null 2>&1") != 0) {
        return NULL;
    }
    snprintf(root, sizeof(root), "%s/root", f->dir);
    snprintf(cmd, sizeof(cmd),
             "rm -rf %s && mkdir -p %s/etc/systemd/system "
             "%s/usr/lib/systemd %s/usr/local/bin %s/usr/bin "
             "%s/opt/ozone-1.1/bin && ln -s usr/bin %s/bin && "
             "for d in /usr/lib/systemd/system /lib/systemd/system; do "
             "[ -d $d ] && cp -a $d %s/usr/lib/systemd/system && break; "
             "done; cp \"$(which kill || echo /bin/kill)\" %s/usr/bin/kill "
             "&& printf '#!/bin/sh\\nexit 0\\n' > %s/usr/local/bin/ozone && "
             "cp %s/usr/local/bin/ozone %s/opt/ozone-1.1/bin/ozone && "
             "chmod 755 %s/usr/local/bin/ozone %s/opt/ozone-1.1/bin/ozone && "
             "cp %s/deploy/systemd/ozone-om@.service "
             "%s/deploy/systemd/ozone.target %s/etc/systemd/system/ && "
             "mkdir -p %s/etc/systemd/system/ozone-om@om1.service.d",
             root, root, root, root, root, root, root, root, root, root, root,
             root, root, root, src, src, root, root);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path),
             "%s/etc/systemd/system/ozone-om@om1.service.d/"
             "50-ozone-upgrade.conf",
             root);
    write_file(path, dropin, 0644);
    snprintf(cmd, sizeof(cmd),
             "systemd-analyze verify --root=%s --man=no "
             "ozone-om@om1.service > %s/verify.out 2>&1",
             root, f->dir);
    int rc = system(cmd);
    snprintf(path, sizeof(path), "%s/verify.out", f->dir);
    char *text = slurp(path);
    assert_non_null(text);
    if (rc != 0 && text[0] == '\0') {
        free(text);
        text = strdup("(non-zero exit status)");
    }
    return text;
}

static void test_systemd_dropin_verifies(void **state)
{
    struct fixture *f = *state;
    struct orch_node om1 = node_of(ORCH_OM, "om1", "127.0.0.1");
    char dropin[4096], errmsg[ORCH_ERRMSG_SIZE];

    assert_int_equal(orch_systemd_dropin(&om1, "/opt/ozone-1.1/bin", dropin,
                                         sizeof(dropin), errmsg),
                     0);
    char *out = verify_unit(f, dropin);
    if (out == NULL) {
        skip();
    }
    if (out[0] != '\0') {
        fail_msg("systemd-analyze verify:\n%s", out);
    }
    free(out);
    /* The check bites: a drop-in that adds a second ExecStart= without
     * clearing the first is an error for this unit type. */
    char *bad = strdup(dropin);
    char *clear = strstr(bad, "ExecStart=\nExecStart=");
    assert_non_null(clear);
    memmove(clear, clear + strlen("ExecStart=\n"),
            strlen(clear + strlen("ExecStart=\n")) + 1);
    out = verify_unit(f, bad);
    assert_non_null(out);
    if (out[0] == '\0') {
        fail_msg("verify accepted a drop-in with two ExecStart=:\n%s", bad);
    }
    free(out);
    free(bad);
}

/* ---- compose ---- */

static void test_compose_dry_run(void **state)
{
    struct fixture *f = *state;
    struct orch_node scm = node_of(ORCH_SCM, "scm", "scm");
    struct orch_node om2 = node_of(ORCH_OM, "om2", "om2");
    /* Datanodes register with a UUID; the service is their host. */
    struct orch_node dn2 =
        node_of(ORCH_DATANODE, "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "dn2");
    char errmsg[ORCH_ERRMSG_SIZE], path[256], bin[ORCH_PATH_SIZE], want[512];
    char *out = NULL;
    size_t out_len = 0;
    FILE *mem = open_memstream(&out, &out_len);
    struct orch_backend_args a = {
        .name = "compose", .compose_dir = f->dir, .dry_run = true, .out = mem};
    struct orch_backend *b = NULL;

    /* The compose files must be there. */
    assert_int_equal(orch_backend_open(NULL, &a, &b, errmsg), OZ_ENOTFOUND);
    assert_non_null(strstr(errmsg, "--compose-dir"));
    snprintf(path, sizeof(path), "%s/docker-compose.yaml", f->dir);
    write_file(path, "services: {}\n", 0644);
    snprintf(path, sizeof(path), "%s/docker-compose.upgrade.yaml", f->dir);
    write_file(path, "services: {}\n", 0644);
    snprintf(path, sizeof(path), "%s/.env", f->dir);
    const char *env = "# rolled by hand\nOZONE_SCM_IMAGE=ozone-c:old\n";
    write_file(path, env, 0600);
    assert_int_equal(orch_backend_open(NULL, &a, &b, errmsg), 0);

    assert_int_equal(
        orch_backend_current_bin(b, &scm, bin, sizeof(bin), errmsg), 0);
    assert_string_equal(bin, "ozone-c:old");
    assert_int_equal(
        orch_backend_current_bin(b, &om2, bin, sizeof(bin), errmsg), 0);
    assert_string_equal(bin, "ozone-c:current");

    assert_int_equal(orch_backend_stop(b, &scm, 60000, errmsg), 0);
    assert_int_equal(orch_backend_start(b, &scm, "ozone-c:new", errmsg), 0);
    assert_int_equal(orch_backend_start(b, &dn2, "ozone-c:new", errmsg), 0);
    assert_int_equal(orch_backend_start(b, &om2, "bad tag", errmsg), OZ_EINVAL);
    fflush(mem);
    snprintf(want, sizeof(want),
             "dry-run: write %s/.env: OZONE_SCM_IMAGE=ozone-c:new\n", f->dir);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want),
             "dry-run: write %s/.env: OZONE_DN2_IMAGE=ozone-c:new\n", f->dir);
    assert_non_null(strstr(out, want));
    /* docker compose (v2) or docker-compose (v1), whichever works here. */
    const char *tail = " -f docker-compose.yaml -f docker-compose.upgrade.yaml";
    snprintf(want, sizeof(want), "%s stop -t 60 scm)\n", tail);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "%s up -d --no-deps scm)\n", tail);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "%s up -d --no-deps dn2)\n", tail);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "dry-run: (cd %s && docker", f->dir);
    assert_non_null(strstr(out, want));
    /* .env untouched. */
    char *now = slurp(path);
    assert_string_equal(now, env);
    free(now);
    orch_backend_close(b);
    fclose(mem);
    free(out);
}

/* The .env edit itself: replace, append, drop duplicates, keep the rest
 * and the mode; refuse values compose would interpret. */
static void test_env_file_set(void **state)
{
    static const struct
    {
        const char *before;
        const char *name;
        const char *value;
        const char *after;
    } cases[] = {
        {NULL, "OZONE_SCM_IMAGE", "ozone-c:new",
         "OZONE_SCM_IMAGE=ozone-c:new\n"},
        {"A=1\nOZONE_SCM_IMAGE=ozone-c:old\nB=2\n", "OZONE_SCM_IMAGE",
         "ozone-c:new", "A=1\nOZONE_SCM_IMAGE=ozone-c:new\nB=2\n"},
        {"A=1", "OZONE_OM1_IMAGE", "reg.example:5000/ozone-c:1.1",
         "A=1\nOZONE_OM1_IMAGE=reg.example:5000/ozone-c:1.1\n"},
        {"OZONE_DN1_IMAGE=a\n# note\nexport OZONE_DN1_IMAGE=b\n",
         "OZONE_DN1_IMAGE", "c", "OZONE_DN1_IMAGE=c\n# note\n"},
        {"OZONE_DN10_IMAGE=x\n", "OZONE_DN1_IMAGE", "y",
         "OZONE_DN10_IMAGE=x\nOZONE_DN1_IMAGE=y\n"},
    };
    struct fixture *f = *state;
    char path[256], errmsg[ORCH_ERRMSG_SIZE];
    struct stat st;

    snprintf(path, sizeof(path), "%s/.env", f->dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unlink(path);
        if (cases[i].before != NULL) {
            write_file(path, cases[i].before, 0640);
        }
        if (orch_env_file_set(path, cases[i].name, cases[i].value, errmsg) !=
            0) {
            fail_msg("case %zu: %s", i, errmsg);
        }
        char *text = slurp(path);
        if (strcmp(text, cases[i].after) != 0) {
            fail_msg("case %zu: got\n%s", i, text);
        }
        free(text);
        assert_int_equal(stat(path, &st), 0);
        if ((st.st_mode & 0777) != (cases[i].before != NULL ? 0640u : 0644u)) {
            fail_msg("case %zu: mode %o", i, st.st_mode & 0777);
        }
    }
    static const char *const bad[] = {"two words", "$(id)", "a#b", "\"q\"", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (orch_env_file_set(path, "OZONE_SCM_IMAGE", bad[i], errmsg) !=
            OZ_EINVAL) {
            fail_msg("bad case %zu: '%s' accepted", i, bad[i]);
        }
    }
    assert_int_equal(orch_env_file_set(path, "1BAD", "x", errmsg), OZ_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_manifest, setup_local,
                                        teardown_local),
        cmocka_unit_test_setup_teardown(test_local_start_stop, setup_local,
                                        teardown_local),
        cmocka_unit_test_setup_teardown(test_local_start_failure, setup_local,
                                        teardown_local),
        cmocka_unit_test_setup_teardown(test_local_stop_kills, setup_local,
                                        teardown_local),
        cmocka_unit_test_setup_teardown(test_local_unrecorded_never_runs,
                                        setup_local, teardown_local),
        cmocka_unit_test_setup_teardown(test_local_stop_zombie_of_other_parent,
                                        setup_local, teardown_local),
        cmocka_unit_test_setup_teardown(test_local_pid_reused, setup_local,
                                        teardown_local),
        cmocka_unit_test_setup_teardown(test_local_dry_run, setup_local,
                                        teardown_local),
        cmocka_unit_test(test_systemd_dropin_matches_units),
        cmocka_unit_test(test_systemd_dropin_refuses_bad_bin),
        cmocka_unit_test_setup_teardown(test_systemd_dry_run, setup_local,
                                        teardown_local),
        cmocka_unit_test_setup_teardown(test_systemd_dropin_verifies,
                                        setup_local, teardown_local),
        cmocka_unit_test_setup_teardown(test_compose_dry_run, setup_local,
                                        teardown_local),
        cmocka_unit_test_setup_teardown(test_env_file_set, setup_local,
                                        teardown_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
