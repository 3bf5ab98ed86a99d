/* orch_backend.c: the three ways the orchestrator stops a node, swaps its
 * binary and starts it again (orch.h, docs/upgrade-orchestrator.md
 * "Backends"):
 *
 *   local    the processes of deploy/local/ozone_local.py, listed in its
 *            manifest (cluster.json); started here as `<bin>/ozone <args>`
 *            in a new session so they outlive the orchestrator
 *   systemd  the shipped units (deploy/systemd) plus a drop-in that names
 *            the binary; nodes on another host through `ssh <host>`
 *   compose  deploy/compose with one image variable per service, kept in
 *            the compose directory's .env
 *
 * Threading: orch_run calls these from its main thread while its lease
 * renewal thread runs. A child is therefore prepared completely before
 * fork() (argv, environment, descriptors) and calls only async-signal-safe
 * functions until execve(); commands run through posix_spawnp. Commands
 * run in their own process group so that a Ctrl-C meant for the
 * orchestrator does not cut a `systemctl restart` in half (orch_run
 * finishes the current action first).
 *
 * Why one file past 1500 lines: the three backends share the process
 * plumbing (run_cmd, spawn, atomic writes, ssh) and one dispatch, and the
 * orch.h contract gave the backends this one file; each backend is a
 * section of its own ("---- local", "---- systemd", "---- compose") and
 * could move to a file with a private orch_backend header if one grows.
 */
#include "orch.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "fault.h"
#include "props.h"

extern char **environ;

#define MANIFEST_MAX (4 << 20)
#define MANIFEST_MAX_ARGS 256
#define MANIFEST_MAX_ENV 256
#define ENV_FILE_MAX (1 << 20)
#define CMD_OUT_SIZE 8192
#define LOG_TAIL_LINES 20
#define LOG_TAIL_BYTES (64 * 1024)
/* A start counts as failed when the process is gone within this time. */
#define START_CHECK_MS 1000
#define KILL_WAIT_MS 5000
#define POLL_MS 50
#define DROPIN_NAME "50-ozone-upgrade.conf"
#define SYSTEMD_DEFAULT_BIN "/usr/local/bin"
#define COMPOSE_DEFAULT_IMAGE "ozone-c:current"

enum backend_kind { BACKEND_LOCAL, BACKEND_SYSTEMD, BACKEND_COMPOSE };

struct orch_backend
{
    enum backend_kind kind;
    bool dry_run;
    FILE *out;
    /* local: the manifest; systemd: the unit dir; compose: the compose
     * dir. Absolute. */
    char path[ORCH_PATH_SIZE];
    /* compose: "docker compose" or "docker-compose". */
    const char *compose[2];
    size_t n_compose;
};

/* ---- small helpers ---- */

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    /* A signal cuts the sleep short; callers loop on a deadline. */
    nanosleep(&ts, NULL);
}

static void msg(char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void msg(char *errmsg, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(errmsg, ORCH_ERRMSG_SIZE, fmt, ap);
    va_end(ap);
}

static FILE *out_of(const struct orch_backend *b)
{
    return b->out != NULL ? b->out : stdout;
}

static int read_file(const char *path,
                     size_t max,
                     char **out,
                     size_t *len,
                     char *errmsg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    size_t got = 0;

    *out = NULL;
    if (fd < 0) {
        msg(errmsg, "cannot open '%s': %s", path, strerror(errno));
        return errno == ENOENT ? OZ_ENOTFOUND : OZ_EIO;
    }
    if (fstat(fd, &st) != 0 || (size_t)st.st_size > max) {
        msg(errmsg, "'%s' is larger than %zu bytes", path, max);
        close(fd);
        return OZ_ETOOBIG;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        msg(errmsg, "out of memory reading '%s'", path);
        return OZ_ENOMEM;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static void dir_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL) {
        oz_strlcpy(out, ".", size);
    } else if (slash == path) {
        oz_strlcpy(out, "/", size);
    } else {
        snprintf(out, size, "%.*s", (int)(slash - path), path);
    }
}

/* Replaces path atomically with data: a temp file in the same directory,
 * fsync, rename, fsync of the directory. Keeps the mode of an existing
 * file (.env may hold secrets), else mode. */
static int write_atomic(const char *path,
                        const char *data,
                        size_t len,
                        mode_t mode,
                        char *errmsg)
{
    char dir[ORCH_PATH_SIZE];
    char tmp[ORCH_PATH_SIZE + 32];
    struct stat st;
    int fd;

    dir_of(path, dir, sizeof(dir));
    if (stat(path, &st) == 0) {
        mode = st.st_mode & 07777;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        msg(errmsg, "cannot create '%s': %s", tmp, strerror(errno));
        return OZ_EIO;
    }
    if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 ||
        fsync(fd) != 0) {
        msg(errmsg, "cannot write '%s': %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return OZ_EIO;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        msg(errmsg, "cannot replace '%s': %s", path, strerror(errno));
        unlink(tmp);
        return OZ_EIO;
    }
    if (oz_fsync_dir(dir) != 0) {
        msg(errmsg, "cannot sync directory '%s': %s", dir, strerror(errno));
        return OZ_EIO;
    }
    return 0;
}

/* Text safe to put in a unit file, a dotenv line or a shell word as is. */
static bool plain_word(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= ' ' || ch == 0x7f || strchr("\"'`\\$#;&|<>(){}*?!~", ch)) {
            return false;
        }
    }
    return true;
}

/* Appends s to buf as one POSIX shell word. */
static void shell_quote(char *buf, size_t size, const char *s)
{
    size_t used = strlen(buf);

    if (plain_word(s)) {
        snprintf(buf + used, size - used, "%s", s);
        return;
    }
    if (used + 1 < size) {
        buf[used++] = '\'';
        buf[used] = '\0';
    }
    for (const char *p = s; *p != '\0' && used + 5 < size; p++) {
        if (*p == '\'') {
            memcpy(buf + used, "'\\''", 4);
            used += 4;
        } else {
            buf[used++] = *p;
        }
        buf[used] = '\0';
    }
    if (used + 1 < size) {
        buf[used++] = '\'';
        buf[used] = '\0';
    }
}

static void join_argv(char *buf, size_t size, const char *const *argv)
{
    buf[0] = '\0';
    for (size_t i = 0; argv[i] != NULL; i++) {
        if (i > 0) {
            size_t used = strlen(buf);
            snprintf(buf + used, size - used, " ");
        }
        shell_quote(buf, size, argv[i]);
    }
}

/* ---- running commands ---- */

/* write() to a pipe whose reader may be gone: EPIPE instead of a SIGPIPE
 * that would end the orchestrator. The signal is blocked in this thread
 * for the call and a pending one consumed. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old;
    struct timespec zero = {0, 0};
    ssize_t w;
    int saved;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    w = write(fd, buf, len);
    saved = errno;
    if (w < 0 && errno == EPIPE) {
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return w;
}

/* Runs argv (PATH lookup) in cwd (NULL: ours) with envp (NULL: environ)
 * and input on its stdin (NULL: /dev/null); stdout and stderr together
 * go to out (the first size - 1 bytes). *status: the exit code, 128 +
 * signal, or -1 when timeout_ms ran out (the command is then killed).
 * Returns 0 when the command ran, OZ_EIO when it could not be started. */
static int run_cmd(const char *const *argv,
                   const char *cwd,
                   char *const *envp,
                   const char *input,
                   char *out,
                   size_t size,
                   long timeout_ms,
                   int *status,
                   char *errmsg)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int opipe[2] = {-1, -1}, ipipe[2] = {-1, -1};
    size_t used = 0, in_off = 0, in_len = input != NULL ? strlen(input) : 0;
    long deadline = now_ms() + timeout_ms;
    bool timed_out = false;
    pid_t pid;
    int rc, ws = 0;

    out[0] = '\0';
    *status = -1;
    if (pipe2(opipe, O_CLOEXEC) != 0 ||
        (input != NULL && pipe2(ipipe, O_CLOEXEC) != 0)) {
        msg(errmsg, "cannot run '%s': pipe: %s", argv[0], strerror(errno));
        if (opipe[0] >= 0) {
            close(opipe[0]);
            close(opipe[1]);
        }
        return OZ_EIO;
    }
    posix_spawn_file_actions_init(&fa);
    if (input != NULL) {
        posix_spawn_file_actions_adddup2(&fa, ipipe[0], 0);
    } else {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&fa, opipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, opipe[1], 2);
    if (cwd != NULL) {
        posix_spawn_file_actions_addchdir_np(&fa, cwd);
    }
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    rc = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv,
                      envp != NULL ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(opipe[1]);
    if (input != NULL) {
        close(ipipe[0]);
        if (in_len == 0) {
            close(ipipe[1]);
            ipipe[1] = -1;
        }
    }
    if (rc != 0) {
        msg(errmsg, "cannot run '%s': %s", argv[0], strerror(rc));
        close(opipe[0]);
        if (input != NULL && ipipe[1] >= 0) {
            close(ipipe[1]);
        }
        return OZ_EIO;
    }
    if (input != NULL && ipipe[1] >= 0) {
        fcntl(ipipe[1], F_SETFL, O_NONBLOCK);
    }
    for (;;) {
        struct pollfd pfd[2];
        nfds_t n = 0;
        long left = deadline - now_ms();

        if (left <= 0) {
            timed_out = true;
            break;
        }
        pfd[n].fd = opipe[0];
        pfd[n].events = POLLIN;
        n++;
        if (input != NULL && ipipe[1] >= 0) {
            pfd[n].fd = ipipe[1];
            pfd[n].events = POLLOUT;
            n++;
        }
        int pr = poll(pfd, n, left > 200 ? 200 : (int)left);
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        if (pr < 0) {
            break;
        }
        if (n == 2 && (pfd[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w =
                write_nosigpipe(ipipe[1], input + in_off, in_len - in_off);
            if (w > 0) {
                in_off += (size_t)w;
            }
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                in_off = in_len;
            }
            if (in_off >= in_len) {
                close(ipipe[1]);
                ipipe[1] = -1;
            }
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[1024];
            ssize_t r = read(opipe[0], chunk, sizeof(chunk));
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                break; /* EOF: the command closed its output */
            }
            size_t take = (size_t)r;
            if (used + take > size - 1) {
                take = size - 1 - used;
            }
            memcpy(out + used, chunk, take);
            used += take;
            out[used] = '\0';
        }
    }
    close(opipe[0]);
    if (input != NULL && ipipe[1] >= 0) {
        close(ipipe[1]);
    }
    if (timed_out) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        *status = -1;
    } else if (WIFEXITED(ws)) {
        *status = WEXITSTATUS(ws);
    } else if (WIFSIGNALED(ws)) {
        *status = 128 + WTERMSIG(ws);
    }
    return 0;
}

/* The output of a failed command, trimmed, for a message. */
static const char *trimmed(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    return n > 0 ? s : "(no output)";
}

/* ---- where a node runs: this machine or another one (ssh) ---- */

static bool is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "::1") == 0 || strcmp(host, "0.0.0.0") == 0 ||
           strcmp(host, "::") == 0 ||
           strcmp(host, "localhost.localdomain") == 0;
}

static bool is_local_address(const char *host)
{
    unsigned char want[16];
    int family = AF_INET;
    struct ifaddrs *ifs = NULL;
    bool found = false;

    if (inet_pton(AF_INET, host, want) != 1) {
        family = AF_INET6;
        if (inet_pton(AF_INET6, host, want) != 1) {
            return false;
        }
    }
    if (getifaddrs(&ifs) != 0) {
        return false;
    }
    for (struct ifaddrs *i = ifs; i != NULL && !found; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != family) {
            continue;
        }
        if (family == AF_INET) {
            const struct sockaddr_in *a =
                (const struct sockaddr_in *)(const void *)i->ifa_addr;
            found = memcmp(&a->sin_addr, want, 4) == 0;
        } else {
            const struct sockaddr_in6 *a =
                (const struct sockaddr_in6 *)(const void *)i->ifa_addr;
            found = memcmp(&a->sin6_addr, want, 16) == 0;
        }
    }
    freeifaddrs(ifs);
    return found;
}

/* A node is on this machine when its host is empty, a loopback name or
 * address, an address of one of our interfaces, or our host name (short
 * or full). No DNS lookup: the answer must not depend on a resolver. */
static bool host_is_local(const char *host)
{
    char me[256];
    size_t short_len;

    if (host == NULL || host[0] == '\0' || is_loopback(host) ||
        is_local_address(host)) {
        return true;
    }
    if (gethostname(me, sizeof(me)) != 0) {
        return false;
    }
    me[sizeof(me) - 1] = '\0';
    if (strcasecmp(host, me) == 0) {
        return true;
    }
    short_len = strcspn(me, ".");
    return strcspn(host, ".") == short_len &&
           strncasecmp(host, me, short_len) == 0;
}

/* ---- local: the manifest ---- */

static int manifest_load(const char *path, cJSON **out, char *errmsg)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    rc = read_file(path, MANIFEST_MAX, &text, &len, errmsg);
    if (rc == OZ_ENOTFOUND) {
        msg(errmsg,
            "local backend: manifest '%s' does not exist; start the cluster "
            "with deploy/local/ozone-local (it writes cluster.json) or give "
            "--local-manifest PATH",
            path);
        return rc;
    }
    if (rc != 0) {
        return rc;
    }
    cJSON *m = cJSON_ParseWithLength(text, len);
    free(text);
    if (m == NULL || !cJSON_IsObject(m) ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(m, "nodes"))) {
        cJSON_Delete(m);
        msg(errmsg,
            "local backend: manifest '%s' is not a JSON object with a "
            "\"nodes\" array",
            path);
        return OZ_ECORRUPT;
    }
    *out = m;
    return 0;
}

static int manifest_save(const char *path, const cJSON *m, char *errmsg)
{
    char *text = cJSON_Print(m);
    char *buf = NULL;
    int rc;

    if (text != NULL) {
        size_t len = strlen(text);
        buf = malloc(len + 2);
        if (buf != NULL) {
            memcpy(buf, text, len);
            memcpy(buf + len, "\n", 2);
        }
    }
    free(text);
    if (buf == NULL) {
        msg(errmsg, "out of memory writing '%s'", path);
        return OZ_ENOMEM;
    }
    rc = write_atomic(path, buf, strlen(buf), 0644, errmsg);
    free(buf);
    return rc;
}

static const char *str_item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The manifest entry of node name, checked: binary, args, log, pid and env
 * have the types orch.h describes. */
static cJSON *manifest_node(cJSON *m,
                            const char *path,
                            const char *name,
                            char *errmsg)
{
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(m, "nodes");
    cJSON *e;

    cJSON_ArrayForEach(e, nodes)
    {
        const char *nm = str_item(e, "name");
        if (nm == NULL || strcmp(nm, name) != 0) {
            continue;
        }
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
        const cJSON *env = cJSON_GetObjectItemCaseSensitive(e, "env");
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(e, "pid");
        const cJSON *a;
        bool ok = str_item(e, "binary") != NULL &&
                  strchr(str_item(e, "binary"), '/') != NULL &&
                  str_item(e, "log") != NULL && cJSON_IsArray(args) &&
                  cJSON_GetArraySize(args) <= MANIFEST_MAX_ARGS &&
                  (env == NULL || cJSON_IsNull(env) ||
                   (cJSON_IsObject(env) &&
                    cJSON_GetArraySize(env) <= MANIFEST_MAX_ENV)) &&
                  (pid == NULL || cJSON_IsNull(pid) ||
                   (cJSON_IsNumber(pid) && pid->valuedouble >= 0 &&
                    pid->valuedouble <= INT_MAX));
        cJSON_ArrayForEach(a, args)
        {
            ok = ok && cJSON_IsString(a);
        }
        if (cJSON_IsObject(env)) {
            cJSON_ArrayForEach(a, env)
            {
                ok = ok && cJSON_IsString(a) && a->string != NULL &&
                     a->string[0] != '\0' && strchr(a->string, '=') == NULL;
            }
        }
        if (!ok) {
            msg(errmsg,
                "local backend: manifest '%s' has a malformed entry for "
                "'%s' (needs binary, args, log, pid, env as in orch.h)",
                path, name);
            return NULL;
        }
        return e;
    }
    msg(errmsg,
        "local backend: node '%s' is not in manifest '%s'; the manifest "
        "must list every node of the cluster",
        name, path);
    return NULL;
}

/* Loads the manifest and finds node name's entry: 0 with *m (the caller
 * deletes it) and *e in it, or an error with errmsg set and *m NULL. */
static int manifest_entry(struct orch_backend *b,
                          const char *name,
                          cJSON **m,
                          cJSON **e,
                          char *errmsg)
{
    int rc = manifest_load(b->path, m, errmsg);

    if (rc != 0) {
        *m = NULL;
        return rc;
    }
    *e = manifest_node(*m, b->path, name, errmsg);
    if (*e == NULL) {
        cJSON_Delete(*m);
        *m = NULL;
        return OZ_EINVAL;
    }
    return 0;
}

static pid_t entry_pid(const cJSON *e)
{
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(e, "pid");

    return cJSON_IsNumber(pid) ? (pid_t)pid->valuedouble : 0;
}

static void entry_set(cJSON *e, const char *key, cJSON *v)
{
    if (cJSON_GetObjectItemCaseSensitive(e, key) != NULL) {
        cJSON_ReplaceItemInObjectCaseSensitive(e, key, v);
    } else {
        cJSON_AddItemToObject(e, key, v);
    }
}

/* ---- local: processes ---- */

/* The state letter of /proc/<pid>/stat ('Z' zombie), or 0 when gone. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold spaces and parentheses. */
    const char *rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' ? rp[2] : 0;
}

/* Whether the command line of pid holds args in order (other words may sit
 * between them: wrappers add options). Guards against a recorded pid that
 * now belongs to another process. */
static bool cmdline_matches(pid_t pid, const cJSON *args)
{
    char path[64];
    const size_t cap = 64 * 1024;
    size_t len = 0, off = 0;
    const cJSON *a;
    bool ok = true;
    char *buf;
    int fd;

    /* /proc files report size 0: read until EOF, capped. */
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        return false;
    }
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    if (len == 0) {
        free(buf);
        return false;
    }
    cJSON_ArrayForEach(a, args)
    {
        bool found = false;
        while (off < len) {
            const char *word = buf + off;
            off += strlen(word) + 1;
            if (strcmp(word, a->valuestring) == 0) {
                found = true;
                break;
            }
        }
        if (!found) {
            ok = false;
            break;
        }
    }
    free(buf);
    return ok;
}

/* Runs and is the node's process: signalable, not a zombie, and its
 * command line holds the node's args. */
static bool local_pid_alive(pid_t pid, const cJSON *e)
{
    if (pid <= 0) {
        return false;
    }
    if (kill(pid, 0) != 0 && errno != EPERM) {
        return false;
    }
    char st = proc_state(pid);
    if (st == 0 || st == 'Z' || st == 'X') {
        return false;
    }
    return cmdline_matches(pid, cJSON_GetObjectItemCaseSensitive(e, "args"));
}

/* Waits until pid is gone (or a zombie: the process may belong to another
 * parent that has not reaped it yet). Reaps it when it is our child. */
static bool wait_gone(pid_t pid, const cJSON *e, long timeout_ms)
{
    long end = now_ms() + timeout_ms;

    for (;;) {
        waitpid(pid, NULL, WNOHANG); /* ECHILD unless ours: harmless */
        if (!local_pid_alive(pid, e)) {
            return true;
        }
        if (now_ms() >= end) {
            return false;
        }
        sleep_ms(POLL_MS);
    }
}

/* The lines a node wrote to its log from offset on, at most the last
 * LOG_TAIL_LINES, appended to buf. */
static void log_tail(const char *log, off_t from, char *buf, size_t size)
{
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *text;
    size_t used = strlen(buf);

    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(buf + used, size - used, " (cannot read its log '%s')", log);
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    if (st.st_size - from > LOG_TAIL_BYTES) {
        from = st.st_size - LOG_TAIL_BYTES;
    }
    if (st.st_size <= from) {
        close(fd);
        snprintf(buf + used, size - used, "; it wrote nothing to '%s'", log);
        return;
    }
    size_t n = (size_t)(st.st_size - from);
    text = malloc(n + 1);
    ssize_t r = text != NULL ? pread(fd, text, n, from) : -1;
    close(fd);
    if (r <= 0) {
        free(text);
        snprintf(buf + used, size - used, " (cannot read its log '%s')", log);
        return;
    }
    text[r] = '\0';
    size_t end = (size_t)r;
    while (end > 0 && text[end - 1] == '\n') {
        text[--end] = '\0';
    }
    size_t start = end;
    int lines = 0;
    while (start > 0) {
        if (text[start - 1] == '\n' && ++lines == LOG_TAIL_LINES) {
            break;
        }
        start--;
    }
    snprintf(buf + used, size - used, "; last lines of '%s':\n%s", log,
             text + start);
    free(text);
}

static int local_open(struct cli *cli,
                      const struct orch_backend_args *a,
                      struct orch_backend *b,
                      char *errmsg)
{
    char path[ORCH_PATH_SIZE];

    if (a->local_manifest != NULL && a->local_manifest[0] != '\0') {
        oz_strlcpy(path, a->local_manifest, sizeof(path));
    } else if (cli != NULL && cli->conf_dir != NULL) {
        snprintf(path, sizeof(path), "%s/../cluster.json", cli->conf_dir);
    } else {
        msg(errmsg,
            "local backend: no manifest: give --local-manifest PATH or "
            "--conf DIR (the manifest is then DIR/../cluster.json)");
        return OZ_EINVAL;
    }
    if (realpath(path, b->path) == NULL) {
        msg(errmsg,
            "local backend: manifest '%s' does not exist (%s); start the "
            "cluster with deploy/local/ozone-local (it writes cluster.json) "
            "or give --local-manifest PATH",
            path, strerror(errno));
        return OZ_ENOTFOUND;
    }
    cJSON *m = NULL;
    int rc = manifest_load(b->path, &m, errmsg);
    cJSON_Delete(m);
    return rc;
}

static int local_current_bin(struct orch_backend *b,
                             const struct orch_node *n,
                             char *out,
                             size_t size,
                             char *errmsg)
{
    cJSON *m, *e;
    int rc = manifest_entry(b, n->name, &m, &e, errmsg);

    if (rc != 0) {
        return rc;
    }
    dir_of(str_item(e, "binary"), out, size);
    cJSON_Delete(m);
    return 0;
}

static bool local_alive(struct orch_backend *b, const struct orch_node *n)
{
    char errmsg[ORCH_ERRMSG_SIZE];
    cJSON *m, *e;
    bool alive;

    if (manifest_entry(b, n->name, &m, &e, errmsg) != 0) {
        return false;
    }
    alive = local_pid_alive(entry_pid(e), e);
    cJSON_Delete(m);
    return alive;
}

/* Sets the node's pid (and binary when bin is not NULL) in the manifest,
 * re-read first so that other nodes' entries written meanwhile stay. */
static int local_record(struct orch_backend *b,
                        const char *name,
                        const char *bin_exe,
                        pid_t pid,
                        char *errmsg)
{
    cJSON *m, *e;
    int rc = manifest_entry(b, name, &m, &e, errmsg);

    if (rc != 0) {
        return rc;
    }
    if (bin_exe != NULL) {
        entry_set(e, "binary", cJSON_CreateString(bin_exe));
    }
    entry_set(e, "pid", cJSON_CreateNumber((double)pid));
    rc = manifest_save(b->path, m, errmsg);
    cJSON_Delete(m);
    return rc;
}

static int local_stop(struct orch_backend *b,
                      const struct orch_node *n,
                      long timeout_ms,
                      char *errmsg)
{
    cJSON *m, *e;
    int rc = manifest_entry(b, n->name, &m, &e, errmsg);

    if (rc != 0) {
        return rc;
    }
    pid_t pid = entry_pid(e);
    bool alive = local_pid_alive(pid, e);
    if (b->dry_run) {
        if (alive) {
            fprintf(out_of(b),
                    "dry-run: kill -TERM %ld   # %s; after %lds: kill -KILL "
                    "%ld\n",
                    (long)pid, n->name, timeout_ms / 1000, (long)pid);
        } else {
            fprintf(out_of(b), "dry-run: # %s is not running\n", n->name);
        }
        fprintf(out_of(b), "dry-run: update %s: %s pid 0\n", b->path, n->name);
        cJSON_Delete(m);
        return 0;
    }
    if (alive) {
        if (kill(pid, SIGTERM) != 0 && errno != ESRCH) {
            msg(errmsg, "cannot stop '%s' (pid %ld): %s", n->name, (long)pid,
                strerror(errno));
            cJSON_Delete(m);
            return OZ_EIO;
        }
        if (!wait_gone(pid, e, timeout_ms)) {
            kill(pid, SIGKILL);
            if (!wait_gone(pid, e, KILL_WAIT_MS)) {
                msg(errmsg,
                    "'%s' (pid %ld) still runs %lds after SIGTERM and "
                    "SIGKILL; stop it by hand",
                    n->name, (long)pid, (timeout_ms + KILL_WAIT_MS) / 1000);
                cJSON_Delete(m);
                return OZ_ETIMEDOUT;
            }
        }
    }
    cJSON_Delete(m);
    return local_record(b, n->name, NULL, 0, errmsg);
}

/* Everything the started process needs, built before fork(). */
struct spawn_plan
{
    char exe[ORCH_PATH_SIZE];
    char **argv;
    char **envp;
    size_t n_env;
};

static void spawn_plan_free(struct spawn_plan *p)
{
    if (p->envp != NULL) {
        for (size_t i = 0; i < p->n_env; i++) {
            free(p->envp[i]);
        }
    }
    free(p->envp);
    free(p->argv);
    p->envp = NULL;
    p->argv = NULL;
}

/* environ with the node's env added (its values win). */
static int spawn_plan_env(struct spawn_plan *p, const cJSON *env)
{
    size_t n_environ = 0, n_extra = 0;
    const cJSON *v;

    while (environ[n_environ] != NULL) {
        n_environ++;
    }
    if (cJSON_IsObject(env)) {
        n_extra = (size_t)cJSON_GetArraySize(env);
    }
    p->envp = calloc(n_environ + n_extra + 1, sizeof(char *));
    if (p->envp == NULL) {
        return OZ_ENOMEM;
    }
    for (size_t i = 0; i < n_environ; i++) {
        const char *eq = strchr(environ[i], '=');
        bool overridden = false;
        if (eq != NULL && cJSON_IsObject(env)) {
            cJSON_ArrayForEach(v, env)
            {
                if (strlen(v->string) == (size_t)(eq - environ[i]) &&
                    strncmp(v->string, environ[i], (size_t)(eq - environ[i])) ==
                        0) {
                    overridden = true;
                }
            }
        }
        if (!overridden) {
            p->envp[p->n_env] = strdup(environ[i]);
            if (p->envp[p->n_env++] == NULL) {
                return OZ_ENOMEM;
            }
        }
    }
    if (cJSON_IsObject(env)) {
        cJSON_ArrayForEach(v, env)
        {
            size_t len = strlen(v->string) + strlen(v->valuestring) + 2;
            char *kv = malloc(len);
            if (kv == NULL) {
                return OZ_ENOMEM;
            }
            snprintf(kv, len, "%s=%s", v->string, v->valuestring);
            p->envp[p->n_env++] = kv;
        }
    }
    return 0;
}

/* Closes (on exec) every descriptor above stderr in the child. */
static void child_cloexec_all(int max_fd)
{
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) {
        return;
    }
    for (int fd = 3; fd < max_fd; fd++) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
}

/* Called with the new process's pid before it may exec: 0 lets it run. */
typedef int (*spawn_record_fn)(void *ctx, pid_t pid, char *errmsg);

/* Double fork + setsid: the node runs in a session of its own, is not our
 * child (it outlives us and we never leave a zombie), stdin /dev/null,
 * stdout and stderr appended to log. The process waits until record(pid)
 * succeeded before it execs, and gives up when we die first (its "go"
 * pipe closes): a node never runs without its pid recorded. Returns its
 * pid. */
static int spawn_detached(const struct spawn_plan *p,
                          const char *log,
                          spawn_record_fn record,
                          void *record_ctx,
                          pid_t *pid_out,
                          char *errmsg)
{
    int logfd, nullfd, pidpipe[2], execpipe[2], gopipe[2];
    long max_fd = sysconf(_SC_OPEN_MAX);
    pid_t pid1, pid2 = 0;
    int exec_errno = 0, ws;

    *pid_out = 0;
    if (max_fd < 0 || max_fd > 65536) {
        max_fd = 65536;
    }
    logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        msg(errmsg, "cannot open log '%s': %s", log, strerror(errno));
        return OZ_EIO;
    }
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0 || pipe2(pidpipe, O_CLOEXEC) != 0) {
        msg(errmsg, "cannot start '%s': %s", p->exe, strerror(errno));
        close(logfd);
        if (nullfd >= 0) {
            close(nullfd);
        }
        return OZ_EIO;
    }
    if (pipe2(execpipe, O_CLOEXEC) != 0) {
        msg(errmsg, "cannot start '%s': %s", p->exe, strerror(errno));
        close(logfd);
        close(nullfd);
        close(pidpipe[0]);
        close(pidpipe[1]);
        return OZ_EIO;
    }
    if (pipe2(gopipe, O_CLOEXEC) != 0) {
        msg(errmsg, "cannot start '%s': %s", p->exe, strerror(errno));
        close(logfd);
        close(nullfd);
        close(pidpipe[0]);
        close(pidpipe[1]);
        close(execpipe[0]);
        close(execpipe[1]);
        return OZ_EIO;
    }
    pid1 = fork();
    if (pid1 == 0) {
        /* First child: async-signal-safe calls only from here on. */
        setsid();
        pid2 = fork();
        if (pid2 != 0) {
            (void)!write(pidpipe[1], &pid2, sizeof(pid2));
            _exit(pid2 > 0 ? 0 : 1);
        }
        struct sigaction dfl;
        sigset_t none;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGPIPE, &dfl, NULL);
        sigaction(SIGHUP, &dfl, NULL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char go = 0;
        ssize_t got;
        close(gopipe[1]);
        do {
            got = read(gopipe[0], &go, 1);
        } while (got < 0 && errno == EINTR);
        if (got != 1) {
            _exit(126); /* not recorded: never run */
        }
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0) {
            int e = errno;
            (void)!write(execpipe[1], &e, sizeof(e));
            _exit(127);
        }
        child_cloexec_all((int)max_fd);
        execve(p->exe, p->argv, p->envp);
        int e = errno;
        (void)!write(execpipe[1], &e, sizeof(e));
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    close(pidpipe[1]);
    close(execpipe[1]);
    close(gopipe[0]);
    if (pid1 < 0) {
        msg(errmsg, "cannot start '%s': fork: %s", p->exe, strerror(errno));
        close(pidpipe[0]);
        close(execpipe[0]);
        close(gopipe[1]);
        return OZ_EIO;
    }
    while (waitpid(pid1, &ws, 0) < 0 && errno == EINTR) {
    }
    ssize_t r;
    do {
        r = read(pidpipe[0], &pid2, sizeof(pid2));
    } while (r < 0 && errno == EINTR);
    close(pidpipe[0]);
    if (r != (ssize_t)sizeof(pid2) || pid2 <= 0) {
        close(execpipe[0]);
        close(gopipe[1]);
        msg(errmsg, "cannot start '%s': the second fork failed", p->exe);
        return OZ_EIO;
    }
    int rc = record(record_ctx, pid2, errmsg);
    if (rc != 0 || write_all(gopipe[1], "g", 1) != 0) {
        close(gopipe[1]); /* EOF: it exits without running */
        close(execpipe[0]);
        if (rc == 0) {
            msg(errmsg, "cannot start '%s': %s", p->exe, strerror(errno));
        }
        return rc != 0 ? rc : OZ_EIO;
    }
    close(gopipe[1]);
    do {
        r = read(execpipe[0], &exec_errno, sizeof(exec_errno));
    } while (r < 0 && errno == EINTR);
    close(execpipe[0]);
    if (r == (ssize_t)sizeof(exec_errno)) {
        msg(errmsg, "cannot run '%s': %s", p->exe, strerror(exec_errno));
        return OZ_EIO;
    }
    *pid_out = pid2;
    return 0;
}

struct record_ctx
{
    struct orch_backend *b;
    const char *name;
    const char *exe;
};

/* The manifest names the process before it runs: if we die now, the next
 * run still finds it. */
static int record_started(void *ctx, pid_t pid, char *errmsg)
{
    const struct record_ctx *c = ctx;
    /* Fault point: the orchestrator dies (":crash") or the write fails
     * between the fork and the record; the process must never run. */
    int rc = fault_hit("orch.local.before_record");

    if (rc != 0) {
        msg(errmsg,
            "cannot record '%s' (pid %ld) in '%s': injected fault "
            "'orch.local.before_record'",
            c->name, (long)pid, c->b->path);
        return rc;
    }
    return local_record(c->b, c->name, c->exe, pid, errmsg);
}

static int local_start(struct orch_backend *b,
                       const struct orch_node *n,
                       const char *bin,
                       char *errmsg)
{
    struct spawn_plan p;
    char dir[ORCH_PATH_SIZE];
    cJSON *m = NULL;
    struct stat st;
    pid_t pid = 0;
    int rc;

    memset(&p, 0, sizeof(p));
    /* Absolute, as given: no symlink resolution, so that the manifest
     * (and current_bin) name the directory the operator named. */
    if (bin == NULL || bin[0] == '\0') {
        msg(errmsg, "no binary directory given");
        return OZ_EINVAL;
    }
    if (bin[0] == '/') {
        oz_strlcpy(dir, bin, sizeof(dir));
    } else {
        char cwd[ORCH_PATH_SIZE];
        if (getcwd(cwd, sizeof(cwd)) == NULL ||
            snprintf(dir, sizeof(dir), "%s/%s", cwd, bin) >= (int)sizeof(dir)) {
            msg(errmsg, "binary directory '%s': path too long", bin);
            return OZ_EINVAL;
        }
    }
    for (size_t len = strlen(dir); len > 1 && dir[len - 1] == '/'; len--) {
        dir[len - 1] = '\0';
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        msg(errmsg, "binary directory '%s' does not exist", dir);
        return OZ_ENOTFOUND;
    }
    if (snprintf(p.exe, sizeof(p.exe), "%s/ozone", dir) >= (int)sizeof(p.exe)) {
        msg(errmsg, "binary directory '%s': path too long", dir);
        return OZ_EINVAL;
    }
    if (stat(p.exe, &st) != 0 || !S_ISREG(st.st_mode) ||
        access(p.exe, X_OK) != 0) {
        msg(errmsg,
            "'%s' is not an executable file; --new-bin names the "
            "directory that holds 'ozone'",
            p.exe);
        return OZ_ENOTFOUND;
    }
    cJSON *e;
    if ((rc = manifest_entry(b, n->name, &m, &e, errmsg)) != 0) {
        return rc;
    }
    if (!b->dry_run && local_pid_alive(entry_pid(e), e)) {
        msg(errmsg, "'%s' runs already (pid %ld); stop it first", n->name,
            (long)entry_pid(e));
        cJSON_Delete(m);
        return OZ_ESTATE;
    }
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
    const char *log = str_item(e, "log");
    size_t n_args = (size_t)cJSON_GetArraySize(args);
    p.argv = calloc(n_args + 2, sizeof(char *));
    if (p.argv == NULL ||
        spawn_plan_env(&p, cJSON_GetObjectItemCaseSensitive(e, "env")) != 0) {
        msg(errmsg, "out of memory starting '%s'", n->name);
        rc = OZ_ENOMEM;
        goto out;
    }
    p.argv[0] = p.exe;
    size_t i = 1;
    const cJSON *a;
    cJSON_ArrayForEach(a, args)
    {
        p.argv[i++] = a->valuestring;
    }
    if (b->dry_run) {
        char line[8192];
        const cJSON *env = cJSON_GetObjectItemCaseSensitive(e, "env");
        line[0] = '\0';
        if (cJSON_IsObject(env) && cJSON_GetArraySize(env) > 0) {
            snprintf(line, sizeof(line), "env ");
            cJSON_ArrayForEach(a, env)
            {
                char kv[1024];
                snprintf(kv, sizeof(kv), "%s=%s", a->string, a->valuestring);
                shell_quote(line, sizeof(line), kv);
                size_t used = strlen(line);
                snprintf(line + used, sizeof(line) - used, " ");
            }
        }
        char cmd[6144];
        join_argv(cmd, sizeof(cmd), (const char *const *)p.argv);
        fprintf(out_of(b), "dry-run: setsid %s%s </dev/null >>%s 2>&1 &\n",
                line, cmd, log);
        fprintf(out_of(b), "dry-run: update %s: %s binary %s, pid <new>\n",
                b->path, n->name, p.exe);
        rc = 0;
        goto out;
    }
    char logdir[ORCH_PATH_SIZE];
    dir_of(log, logdir, sizeof(logdir));
    if (oz_mkdirs(logdir, errmsg) != 0) {
        rc = OZ_EIO;
        goto out;
    }
    off_t log_from = stat(log, &st) == 0 ? st.st_size : 0;
    struct record_ctx rctx = {b, n->name, p.exe};
    if ((rc = spawn_detached(&p, log, record_started, &rctx, &pid, errmsg)) !=
        0) {
        goto out;
    }
    long end = now_ms() + START_CHECK_MS;
    bool alive = true;
    while (alive && now_ms() < end) {
        sleep_ms(POLL_MS);
        alive = local_pid_alive(pid, e);
    }
    if (!alive) {
        char tail[ORCH_ERRMSG_SIZE];
        snprintf(tail, sizeof(tail),
                 "'%s' exited within %d ms of its start on '%s'", n->name,
                 START_CHECK_MS, p.exe);
        log_tail(log, log_from, tail, sizeof(tail));
        oz_strlcpy(errmsg, tail, ORCH_ERRMSG_SIZE);
        char ignored[ORCH_ERRMSG_SIZE];
        local_record(b, n->name, NULL, 0, ignored);
        rc = OZ_ESTATE;
    }
out:
    spawn_plan_free(&p);
    cJSON_Delete(m);
    return rc;
}

/* ---- systemd ---- */

/* The commands of the shipped units (the .service files of deploy/systemd)
 * after their binary /usr/local/bin/ozone; tests/unit/test_orch_backend.c
 * checks them against those files. */
static const struct unit_def
{
    enum orch_kind kind;
    const char *unit; /* OM: the template; the instance is the node id */
    const char *exec_start_pre; /* NULL: the unit has none */
    const char *exec_start;
} unit_defs[] = {
    {ORCH_SCM, "ozone-scm.service", "scm --init $OZONE_OPTS",
     "scm $OZONE_OPTS"},
    {ORCH_RECON, "ozone-recon.service", NULL, "recon $OZONE_OPTS"},
    {ORCH_DATANODE, "ozone-datanode.service", NULL,
     "datanode -D "
     "hdds.datanode.advertise.address=${OZONE_DATANODE_ADDRESS} "
     "$OZONE_OPTS"},
    {ORCH_OM, "ozone-om@.service",
     "om --init -D ozone.om.node.id=%i $OZONE_OPTS",
     "om -D ozone.om.node.id=%i $OZONE_OPTS"},
};

static const struct unit_def *unit_def_of(enum orch_kind k)
{
    for (size_t i = 0; i < sizeof(unit_defs) / sizeof(unit_defs[0]); i++) {
        if (unit_defs[i].kind == k) {
            return &unit_defs[i];
        }
    }
    return NULL;
}

int orch_systemd_unit(const struct orch_node *n, char *out, size_t size)
{
    const struct unit_def *d = unit_def_of(n->kind);

    if (d == NULL) {
        return OZ_EINVAL;
    }
    if (n->kind == ORCH_OM) {
        /* systemd instance names: letters, digits, ":-_.\" (node ids are
         * plain words; refuse anything else rather than escape it). */
        for (const char *p = n->name; *p != '\0'; p++) {
            if (!isalnum((unsigned char)*p) && !strchr(":-_.", *p)) {
                return OZ_EINVAL;
            }
        }
        if (n->name[0] == '\0' ||
            snprintf(out, size, "ozone-om@%s.service", n->name) >= (int)size) {
            return OZ_EINVAL;
        }
        return 0;
    }
    return oz_strlcpy(out, d->unit, size) < size ? 0 : OZ_EINVAL;
}

int orch_systemd_dropin(const struct orch_node *n,
                        const char *bin,
                        char *out,
                        size_t size,
                        char *errmsg)
{
    const struct unit_def *d = unit_def_of(n->kind);
    char esc[ORCH_PATH_SIZE * 2];
    size_t k = 0;
    int len;

    if (d == NULL) {
        msg(errmsg, "no systemd unit for node '%s'", n->name);
        return OZ_EINVAL;
    }
    if (bin == NULL || bin[0] != '/') {
        msg(errmsg,
            "systemd backend: binary directory '%s' must be an absolute "
            "path",
            bin != NULL ? bin : "");
        return OZ_EINVAL;
    }
    for (const char *p = bin; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= ' ' || ch == 0x7f || ch == '"' || ch == '\'' || ch == '\\' ||
            ch == '$' || ch == ';') {
            msg(errmsg,
                "systemd backend: binary directory '%s' holds whitespace, "
                "a quote, '$', ';' or a backslash; use a plain path",
                bin);
            return OZ_EINVAL;
        }
        if (k + 3 >= sizeof(esc)) {
            msg(errmsg, "systemd backend: binary directory '%s' is too long",
                bin);
            return OZ_EINVAL;
        }
        if (ch == '%') {
            esc[k++] = '%';
        }
        esc[k++] = (char)ch;
    }
    esc[k] = '\0';
    while (k > 1 && esc[k - 1] == '/') {
        esc[--k] = '\0';
    }
    len = snprintf(out, size,
                   "# Written by 'ozone admin upgrade run' (rolling "
                   "upgrade): this unit runs\n"
                   "# %s/ozone instead of %s/ozone, with the shipped "
                   "unit's arguments.\n"
                   "# Remove this file and run 'systemctl daemon-reload' to "
                   "go back.\n"
                   "[Service]\n",
                   esc, SYSTEMD_DEFAULT_BIN);
    if (len >= 0 && (size_t)len < size && d->exec_start_pre != NULL) {
        len += snprintf(out + len, size - (size_t)len,
                        "ExecStartPre=\nExecStartPre=%s/ozone %s\n", esc,
                        d->exec_start_pre);
    }
    if (len >= 0 && (size_t)len < size) {
        len +=
            snprintf(out + len, size - (size_t)len,
                     "ExecStart=\nExecStart=%s/ozone %s\n", esc, d->exec_start);
    }
    if (len < 0 || (size_t)len >= size) {
        msg(errmsg, "systemd drop-in for '%s' does not fit", n->name);
        return OZ_ETOOBIG;
    }
    return 0;
}

/* argv of a command for node n: as is on this machine, else through
 * `ssh -o BatchMode=yes <host> '<command>'`. remote is a buffer for the
 * quoted command (kept alive by the caller). */
static void node_argv(const struct orch_node *n,
                      const char *const *cmd,
                      const char **argv,
                      size_t max,
                      char *remote,
                      size_t remote_size)
{
    size_t k = 0;

    if (host_is_local(n->host)) {
        for (; cmd[k] != NULL && k + 1 < max; k++) {
            argv[k] = cmd[k];
        }
        argv[k] = NULL;
        return;
    }
    join_argv(remote, remote_size, cmd);
    argv[k++] = "ssh";
    argv[k++] = "-o";
    argv[k++] = "BatchMode=yes";
    argv[k++] = "-o";
    argv[k++] = "ConnectTimeout=15";
    argv[k++] = n->host;
    argv[k++] = remote;
    argv[k] = NULL;
}

/* Whether a command changes something (printed, not run, in dry-run) or
 * only asks (run in dry-run too). */
enum cmd_mode { CMD_ACT, CMD_ASK };

/* Runs cmd for node n; errmsg names the command and its output when it
 * fails, or exits non-zero while status is NULL (with status, the exit
 * status is the caller's to judge). */
static int node_cmd(struct orch_backend *b,
                    enum cmd_mode mode,
                    const struct orch_node *n,
                    const char *const *cmd,
                    const char *input,
                    long timeout_ms,
                    char *out,
                    size_t out_size,
                    int *status,
                    char *errmsg)
{
    const char *argv[32];
    char remote[4096], line[4096];
    int st = 0;
    int rc;

    node_argv(n, cmd, argv, sizeof(argv) / sizeof(argv[0]), remote,
              sizeof(remote));
    if (b->dry_run && mode == CMD_ACT) {
        join_argv(line, sizeof(line), argv);
        fprintf(out_of(b), "dry-run: %s\n", line);
        if (status != NULL) {
            *status = 0;
        }
        out[0] = '\0';
        return 0;
    }
    rc = run_cmd(argv, NULL, NULL, input, out, out_size, timeout_ms, &st,
                 errmsg);
    if (rc != 0) {
        return rc;
    }
    if (status != NULL) {
        *status = st;
        return 0;
    }
    if (st != 0) {
        join_argv(line, sizeof(line), argv);
        if (st < 0) {
            msg(errmsg, "'%s' did not finish within %lds", line,
                timeout_ms / 1000);
            return OZ_ETIMEDOUT;
        }
        msg(errmsg, "'%s' failed (exit status %d): %s", line, st, trimmed(out));
        return OZ_EIO;
    }
    return 0;
}

static void dropin_path(const struct orch_backend *b,
                        const char *unit,
                        char *out,
                        size_t size)
{
    snprintf(out, size, "%s/%s.d/%s", b->path, unit, DROPIN_NAME);
}

static int systemd_open(const struct orch_backend_args *a,
                        struct orch_backend *b,
                        char *errmsg)
{
    const char *dir =
        a->systemd_unit_dir != NULL && a->systemd_unit_dir[0] != '\0'
            ? a->systemd_unit_dir
            : "/etc/systemd/system";
    struct stat st;

    if (dir[0] != '/') {
        if (realpath(dir, b->path) == NULL) {
            msg(errmsg, "systemd backend: unit directory '%s': %s", dir,
                strerror(errno));
            return OZ_ENOTFOUND;
        }
        return 0;
    }
    oz_strlcpy(b->path, dir, sizeof(b->path));
    /* The directory is on each node's host; check it here only when it
     * is a local one that must exist (dry-run needs nothing). */
    if (!b->dry_run && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        msg(errmsg,
            "systemd backend: unit directory '%s' does not exist; give "
            "--systemd-unit-dir DIR",
            dir);
        return OZ_ENOTFOUND;
    }
    return 0;
}

/* The binary directory named by a drop-in's ExecStart= line, or "" when
 * it names none. */
static void dropin_bin(const char *text, char *out, size_t size)
{
    const char *line = text;

    out[0] = '\0';
    while (line != NULL && *line != '\0') {
        if (strncmp(line, "ExecStart=", 10) == 0 && line[10] != '\n' &&
            line[10] != '\0') {
            const char *w = line + 10;
            while (*w == '-' || *w == '@' || *w == ':' || *w == '+' ||
                   *w == '!') {
                w++; /* systemd's command prefixes */
            }
            size_t len = strcspn(w, " \t\n");
            char exe[ORCH_PATH_SIZE];
            snprintf(exe, sizeof(exe), "%.*s", (int)len, w);
            /* Undo the "%%" escaping of the drop-in. */
            char plain[ORCH_PATH_SIZE];
            size_t k = 0;
            for (size_t i = 0; exe[i] != '\0' && k + 1 < sizeof(plain); i++) {
                if (exe[i] == '%' && exe[i + 1] == '%') {
                    i++;
                }
                plain[k++] = exe[i];
            }
            plain[k] = '\0';
            dir_of(plain, out, size);
            return;
        }
        line = strchr(line, '\n');
        if (line != NULL) {
            line++;
        }
    }
}

static int systemd_current_bin(struct orch_backend *b,
                               const struct orch_node *n,
                               char *out,
                               size_t size,
                               char *errmsg)
{
    char unit[ORCH_NAME_SIZE + 32], path[ORCH_PATH_SIZE + 128];
    char text[CMD_OUT_SIZE];
    int st = 0;

    if (orch_systemd_unit(n, unit, sizeof(unit)) != 0) {
        msg(errmsg, "no systemd unit name for node '%s'", n->name);
        return OZ_EINVAL;
    }
    dropin_path(b, unit, path, sizeof(path));
    text[0] = '\0';
    if (host_is_local(n->host)) {
        char *buf = NULL;
        size_t len = 0;
        int rc = read_file(path, 64 * 1024, &buf, &len, errmsg);
        if (rc == 0) {
            oz_strlcpy(text, buf, sizeof(text));
            free(buf);
        } else if (rc != OZ_ENOTFOUND) {
            return rc;
        }
    } else {
        const char *cmd[] = {"cat", path, NULL};
        const char *argv[16];
        char remote[2048];
        node_argv(n, cmd, argv, 16, remote, sizeof(remote));
        int rc = run_cmd(argv, NULL, NULL, NULL, text, sizeof(text), 30000, &st,
                         errmsg);
        if (rc != 0) {
            return rc;
        }
        if (st == 255 || st < 0) {
            msg(errmsg, "cannot read '%s' on '%s' through ssh: %s", path,
                n->host, trimmed(text));
            return OZ_EIO;
        }
        if (st != 0) {
            text[0] = '\0'; /* no drop-in */
        }
    }
    dropin_bin(text, out, size);
    if (out[0] == '\0') {
        oz_strlcpy(out, SYSTEMD_DEFAULT_BIN, size);
    }
    return 0;
}

static int systemd_write_dropin(struct orch_backend *b,
                                const struct orch_node *n,
                                const char *unit,
                                const char *content,
                                char *errmsg)
{
    char path[ORCH_PATH_SIZE + 128], dir[ORCH_PATH_SIZE + 128];
    char out[CMD_OUT_SIZE];

    dropin_path(b, unit, path, sizeof(path));
    dir_of(path, dir, sizeof(dir));
    if (b->dry_run) {
        fprintf(out_of(b), "dry-run: write %s%s%s:\n", path,
                host_is_local(n->host) ? "" : " on ",
                host_is_local(n->host) ? "" : n->host);
        for (const char *l = content; *l != '\0';) {
            size_t len = strcspn(l, "\n");
            fprintf(out_of(b), "dry-run: | %.*s\n", (int)len, l);
            l += len + (l[len] == '\n');
        }
        return 0;
    }
    if (host_is_local(n->host)) {
        if (oz_mkdirs(dir, errmsg) != 0) {
            return OZ_EIO;
        }
        return write_atomic(path, content, strlen(content), 0644, errmsg);
    }
    char script[3 * ORCH_PATH_SIZE];
    char qdir[ORCH_PATH_SIZE + 64] = "", qpath[ORCH_PATH_SIZE + 64] = "";
    shell_quote(qdir, sizeof(qdir), dir);
    shell_quote(qpath, sizeof(qpath), path);
    snprintf(script, sizeof(script),
             "mkdir -p %s && cat > %s.tmp && mv -f %s.tmp %s", qdir, qpath,
             qpath, qpath);
    const char *cmd[] = {"sh", "-c", script, NULL};
    return node_cmd(b, CMD_ACT, n, cmd, content, 60000, out, sizeof(out), NULL,
                    errmsg);
}

/* The last lines systemd's journal holds for unit, appended to errmsg. */
static void systemd_journal_tail(struct orch_backend *b,
                                 const struct orch_node *n,
                                 const char *unit,
                                 char *errmsg)
{
    const char *cmd[] = {"journalctl", "-u", unit,  "-n", "20",
                         "--no-pager", "-o", "cat", NULL};
    char out[ORCH_ERRMSG_SIZE / 2], scratch[ORCH_ERRMSG_SIZE];
    int st = 0;
    size_t used = strlen(errmsg);

    if (node_cmd(b, CMD_ASK, n, cmd, NULL, 30000, out, sizeof(out), &st,
                 scratch) == 0 &&
        st == 0) {
        snprintf(errmsg + used, ORCH_ERRMSG_SIZE - used,
                 "; last lines of 'journalctl -u %s':\n%s", unit, trimmed(out));
    }
}

static int systemd_start(struct orch_backend *b,
                         const struct orch_node *n,
                         const char *bin,
                         char *errmsg)
{
    char unit[ORCH_NAME_SIZE + 32], content[4096], out[CMD_OUT_SIZE];
    int rc;

    if (orch_systemd_unit(n, unit, sizeof(unit)) != 0) {
        msg(errmsg, "no systemd unit name for node '%s'", n->name);
        return OZ_EINVAL;
    }
    if ((rc = orch_systemd_dropin(n, bin, content, sizeof(content), errmsg)) !=
        0) {
        return rc;
    }
    if (!b->dry_run && host_is_local(n->host)) {
        char exe[ORCH_PATH_SIZE + 8];
        snprintf(exe, sizeof(exe), "%s/ozone", bin);
        if (access(exe, X_OK) != 0) {
            msg(errmsg, "'%s' is not an executable file: %s", exe,
                strerror(errno));
            return OZ_ENOTFOUND;
        }
    }
    if ((rc = systemd_write_dropin(b, n, unit, content, errmsg)) != 0) {
        return rc;
    }
    const char *reload[] = {"systemctl", "daemon-reload", NULL};
    if ((rc = node_cmd(b, CMD_ACT, n, reload, NULL, 60000, out, sizeof(out),
                       NULL, errmsg)) != 0) {
        return rc;
    }
    /* Type=notify: restart returns once the daemon said READY=1, or fails
     * when it exits first (TimeoutStartSec=3min in the shipped units). */
    const char *restart[] = {"systemctl", "restart", unit, NULL};
    rc = node_cmd(b, CMD_ACT, n, restart, NULL, 4 * 60000, out, sizeof(out),
                  NULL, errmsg);
    if (rc != 0) {
        systemd_journal_tail(b, n, unit, errmsg);
        return rc == OZ_EIO ? OZ_ESTATE : rc;
    }
    return 0;
}

static int systemd_stop(struct orch_backend *b,
                        const struct orch_node *n,
                        long timeout_ms,
                        char *errmsg)
{
    char unit[ORCH_NAME_SIZE + 32], out[CMD_OUT_SIZE];
    int rc;

    if (orch_systemd_unit(n, unit, sizeof(unit)) != 0) {
        msg(errmsg, "no systemd unit name for node '%s'", n->name);
        return OZ_EINVAL;
    }
    const char *stop[] = {"systemctl", "stop", unit, NULL};
    rc = node_cmd(b, CMD_ACT, n, stop, NULL, timeout_ms + 5000, out,
                  sizeof(out), NULL, errmsg);
    if (rc != OZ_ETIMEDOUT) {
        return rc;
    }
    /* Drained too slowly: kill it, as the unit's TimeoutStopSec would. */
    const char *kill_cmd[] = {"systemctl", "kill", "--signal=SIGKILL", unit,
                              NULL};
    if ((rc = node_cmd(b, CMD_ACT, n, kill_cmd, NULL, 30000, out, sizeof(out),
                       NULL, errmsg)) != 0) {
        return rc;
    }
    return node_cmd(b, CMD_ACT, n, stop, NULL, 60000, out, sizeof(out), NULL,
                    errmsg);
}

static bool systemd_alive(struct orch_backend *b, const struct orch_node *n)
{
    char unit[ORCH_NAME_SIZE + 32], out[CMD_OUT_SIZE], errmsg[ORCH_ERRMSG_SIZE];
    int st = 1;

    if (orch_systemd_unit(n, unit, sizeof(unit)) != 0) {
        return false;
    }
    const char *cmd[] = {"systemctl", "is-active", "--quiet", unit, NULL};
    int rc = node_cmd(b, CMD_ASK, n, cmd, NULL, 30000, out, sizeof(out), &st,
                      errmsg);
    return rc == 0 && st == 0;
}

/* ---- compose ---- */

static void compose_service(const struct orch_node *n, char *out, size_t size)
{
    /* Datanodes register under a UUID; their service name is the host
     * they advertise (hdds.datanode.advertise.address=dn1). */
    if (n->kind == ORCH_DATANODE && n->host[0] != '\0' &&
        !isdigit((unsigned char)n->host[0]) && strchr(n->host, ':') == NULL) {
        size_t len = strcspn(n->host, ".");
        snprintf(out, size, "%.*s", (int)len, n->host);
        return;
    }
    oz_strlcpy(out, n->name, size);
}

static void compose_var(const char *service, char *out, size_t size)
{
    size_t k = (size_t)snprintf(out, size, "OZONE_");

    for (const char *p = service; *p != '\0' && k + 1 < size; p++) {
        out[k++] =
            isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    }
    out[k] = '\0';
    snprintf(out + k, size - k, "_IMAGE");
}

static bool valid_env_name(const char *s)
{
    if (s == NULL || !(isalpha((unsigned char)s[0]) || s[0] == '_')) {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!isalnum((unsigned char)*s) && *s != '_') {
            return false;
        }
    }
    return true;
}

/* The value of NAME in dotenv text, or NULL (out holds it). */
static const char *env_lookup(const char *text,
                              const char *name,
                              char *out,
                              size_t size)
{
    size_t nlen = strlen(name);

    for (const char *l = text; l != NULL && *l != '\0';) {
        const char *p = l;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (strncmp(p, "export ", 7) == 0) {
            p += 7;
        }
        size_t len = strcspn(p, "\n");
        if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            size_t vlen = len - nlen - 1;
            while (vlen > 0 && isspace((unsigned char)v[vlen - 1])) {
                vlen--;
            }
            if (vlen >= 2 && (v[0] == '"' || v[0] == '\'') &&
                v[vlen - 1] == v[0]) {
                v++;
                vlen -= 2;
            }
            snprintf(out, size, "%.*s", (int)vlen, v);
            return out;
        }
        l = strchr(l, '\n');
        if (l != NULL) {
            l++;
        }
    }
    return NULL;
}

/* New dotenv text: text with NAME=value (caller frees). */
static char *env_update(const char *text, const char *name, const char *value)
{
    size_t nlen = strlen(name), tlen = strlen(text);
    size_t cap = tlen + nlen + strlen(value) + 4;
    char *out = malloc(cap);
    size_t k = 0;
    bool done = false;

    if (out == NULL) {
        return NULL;
    }
    for (const char *l = text; *l != '\0';) {
        size_t len = strcspn(l, "\n");
        const char *p = l;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (strncmp(p, "export ", 7) == 0) {
            p += 7;
        }
        bool match = strncmp(p, name, nlen) == 0 && p[nlen] == '=';
        if (match && !done) {
            k += (size_t)snprintf(out + k, cap - k, "%s=%s\n", name, value);
            done = true;
        } else if (!match) {
            memcpy(out + k, l, len);
            k += len;
            out[k++] = '\n';
        }
        l += len + (l[len] == '\n');
    }
    if (!done) {
        k += (size_t)snprintf(out + k, cap - k, "%s=%s\n", name, value);
    }
    out[k] = '\0';
    return out;
}

int orch_env_file_set(const char *path,
                      const char *name,
                      const char *value,
                      char *errmsg)
{
    char *text = NULL, *updated;
    size_t len = 0;
    int rc;

    if (!valid_env_name(name) || !plain_word(value)) {
        msg(errmsg,
            "cannot set '%s=%s' in '%s': give a plain image tag (no "
            "whitespace, quotes, '$', '#' or backslash)",
            name != NULL ? name : "", value != NULL ? value : "", path);
        return OZ_EINVAL;
    }
    rc = read_file(path, ENV_FILE_MAX, &text, &len, errmsg);
    if (rc == OZ_ENOTFOUND) {
        text = strdup("");
    } else if (rc != 0) {
        return rc;
    }
    if (text == NULL) {
        msg(errmsg, "out of memory updating '%s'", path);
        return OZ_ENOMEM;
    }
    updated = env_update(text, name, value);
    free(text);
    if (updated == NULL) {
        msg(errmsg, "out of memory updating '%s'", path);
        return OZ_ENOMEM;
    }
    rc = write_atomic(path, updated, strlen(updated), 0644, errmsg);
    free(updated);
    return rc;
}

/* environ without OZONE_*_IMAGE: a variable set in our environment would
 * win over .env and make the swap a no-op. Caller frees the array only
 * (the strings are environ's). */
static char **compose_environ(void)
{
    size_t n = 0, k = 0;
    char **envp;

    while (environ[n] != NULL) {
        n++;
    }
    envp = calloc(n + 1, sizeof(char *));
    if (envp == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t len = eq != NULL ? (size_t)(eq - environ[i]) : 0;
        if (strncmp(environ[i], "OZONE_", 6) == 0 && len > 12 &&
            strncmp(environ[i] + len - 6, "_IMAGE", 6) == 0) {
            continue;
        }
        envp[k++] = environ[i];
    }
    return envp;
}

/* Runs `<compose> -f docker-compose.yaml -f docker-compose.upgrade.yaml
 * <args>` in the compose dir (dry-run: prints it). */
static int compose_cmd(struct orch_backend *b,
                       enum cmd_mode mode,
                       const char *const *args,
                       long timeout_ms,
                       char *out,
                       size_t out_size,
                       int *status,
                       char *errmsg)
{
    const char *argv[32];
    char line[4096];
    size_t k = 0;
    int st = 0, rc;

    for (size_t i = 0; i < b->n_compose; i++) {
        argv[k++] = b->compose[i];
    }
    argv[k++] = "-f";
    argv[k++] = "docker-compose.yaml";
    argv[k++] = "-f";
    argv[k++] = "docker-compose.upgrade.yaml";
    for (size_t i = 0; args[i] != NULL && k + 1 < 32; i++) {
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    join_argv(line, sizeof(line), argv);
    out[0] = '\0';
    if (b->dry_run && mode == CMD_ACT) {
        char qdir[ORCH_PATH_SIZE + 64] = "";
        shell_quote(qdir, sizeof(qdir), b->path);
        fprintf(out_of(b), "dry-run: (cd %s && %s)\n", qdir, line);
        if (status != NULL) {
            *status = 0;
        }
        return 0;
    }
    char **envp = compose_environ();
    if (envp == NULL) {
        msg(errmsg, "out of memory running '%s'", line);
        return OZ_ENOMEM;
    }
    rc = run_cmd(argv, b->path, envp, NULL, out, out_size, timeout_ms, &st,
                 errmsg);
    free(envp);
    if (rc != 0) {
        return rc;
    }
    if (status != NULL) {
        *status = st;
        return 0;
    }
    if (st < 0) {
        msg(errmsg, "'%s' (in '%s') did not finish within %lds", line, b->path,
            timeout_ms / 1000);
        return OZ_ETIMEDOUT;
    }
    if (st != 0) {
        msg(errmsg, "'%s' (in '%s') failed (exit status %d): %s", line, b->path,
            st, trimmed(out));
        return OZ_EIO;
    }
    return 0;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[ORCH_PATH_SIZE + 64];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int compose_open(const struct orch_backend_args *a,
                        struct orch_backend *b,
                        char *errmsg)
{
    char dir[ORCH_PATH_SIZE];
    char out[CMD_OUT_SIZE];
    int st = 1;

    if (a->compose_dir != NULL && a->compose_dir[0] != '\0') {
        oz_strlcpy(dir, a->compose_dir, sizeof(dir));
    } else {
        /* An installed ozone: <prefix>/bin/ozone and the compose files in
         * <prefix>/share/ozone-c/compose. */
        char exe[ORCH_PATH_SIZE], bindir[ORCH_PATH_SIZE];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        dir_of(exe, bindir, sizeof(bindir));
        snprintf(dir, sizeof(dir), "%s/../share/ozone-c/compose", bindir);
    }
    if (realpath(dir, b->path) == NULL ||
        !file_exists(b->path, "docker-compose.yaml") ||
        !file_exists(b->path, "docker-compose.upgrade.yaml")) {
        msg(errmsg,
            "compose backend: '%s' does not hold docker-compose.yaml and "
            "docker-compose.upgrade.yaml; give --compose-dir DIR (e.g. "
            "deploy/compose of the source tree)",
            dir);
        return OZ_ENOTFOUND;
    }
    /* `docker compose` (v2) when it answers, else `docker-compose` (v1),
     * as deploy/compose/rolling-upgrade.sh chooses. */
    const char *v2[] = {"docker", "compose", "version", NULL};
    if (run_cmd(v2, b->path, NULL, NULL, out, sizeof(out), 30000, &st,
                errmsg) == 0 &&
        st == 0) {
        b->compose[0] = "docker";
        b->compose[1] = "compose";
        b->n_compose = 2;
        return 0;
    }
    const char *v1[] = {"docker-compose", "version", NULL};
    if (run_cmd(v1, b->path, NULL, NULL, out, sizeof(out), 30000, &st,
                errmsg) == 0 &&
        st == 0) {
        b->compose[0] = "docker-compose";
        b->n_compose = 1;
        return 0;
    }
    if (b->dry_run) {
        b->compose[0] = "docker";
        b->compose[1] = "compose";
        b->n_compose = 2;
        return 0;
    }
    msg(errmsg,
        "compose backend: neither 'docker compose' nor 'docker-compose' "
        "works here; install Docker Compose");
    return OZ_ENOTFOUND;
}

static int compose_current_bin(struct orch_backend *b,
                               const struct orch_node *n,
                               char *out,
                               size_t size,
                               char *errmsg)
{
    char service[ORCH_NAME_SIZE], var[ORCH_NAME_SIZE + 16];
    char path[ORCH_PATH_SIZE + 16];
    char *text = NULL;
    size_t len = 0;
    int rc;

    compose_service(n, service, sizeof(service));
    compose_var(service, var, sizeof(var));
    snprintf(path, sizeof(path), "%s/.env", b->path);
    rc = read_file(path, ENV_FILE_MAX, &text, &len, errmsg);
    if (rc != 0 && rc != OZ_ENOTFOUND) {
        return rc;
    }
    if (text == NULL || env_lookup(text, var, out, size) == NULL ||
        out[0] == '\0') {
        oz_strlcpy(out, COMPOSE_DEFAULT_IMAGE, size);
    }
    free(text);
    return 0;
}

static bool compose_alive(struct orch_backend *b, const struct orch_node *n)
{
    char service[ORCH_NAME_SIZE], out[CMD_OUT_SIZE], errmsg[ORCH_ERRMSG_SIZE];
    char id[128];
    int st = 1;

    compose_service(n, service, sizeof(service));
    const char *args[] = {"ps", "-q", service, NULL};
    if (compose_cmd(b, CMD_ASK, args, 30000, out, sizeof(out), &st, errmsg) !=
            0 ||
        st != 0) {
        return false;
    }
    size_t skip = strspn(out, " \t\r\n");
    size_t len = strcspn(out + skip, " \t\r\n");
    if (len == 0 || len >= sizeof(id)) {
        return false;
    }
    snprintf(id, sizeof(id), "%.*s", (int)len, out + skip);
    /* docker-compose v1 lists exited containers too: ask the engine. */
    const char *inspect[] = {"docker", "inspect", "-f", "{{.State.Running}}",
                             id,       NULL};
    if (run_cmd(inspect, NULL, NULL, NULL, out, sizeof(out), 30000, &st,
                errmsg) != 0 ||
        st != 0) {
        return true; /* listed; the engine cannot say more */
    }
    return strncmp(out, "true", 4) == 0;
}

static int compose_stop(struct orch_backend *b,
                        const struct orch_node *n,
                        long timeout_ms,
                        char *errmsg)
{
    char service[ORCH_NAME_SIZE], out[CMD_OUT_SIZE], secs[32];

    compose_service(n, service, sizeof(service));
    snprintf(secs, sizeof(secs), "%ld", (timeout_ms + 999) / 1000);
    const char *args[] = {"stop", "-t", secs, service, NULL};
    return compose_cmd(b, CMD_ACT, args, timeout_ms + 30000, out, sizeof(out),
                       NULL, errmsg);
}

static int compose_start(struct orch_backend *b,
                         const struct orch_node *n,
                         const char *tag,
                         char *errmsg)
{
    char service[ORCH_NAME_SIZE], var[ORCH_NAME_SIZE + 16];
    char path[ORCH_PATH_SIZE + 16], out[CMD_OUT_SIZE];
    int rc;

    compose_service(n, service, sizeof(service));
    compose_var(service, var, sizeof(var));
    snprintf(path, sizeof(path), "%s/.env", b->path);
    if (!plain_word(tag)) {
        msg(errmsg,
            "compose backend: '%s' is not a plain image tag (no whitespace, "
            "quotes, '$', '#' or backslash)",
            tag != NULL ? tag : "");
        return OZ_EINVAL;
    }
    if (b->dry_run) {
        fprintf(out_of(b), "dry-run: write %s: %s=%s\n", path, var, tag);
    } else if ((rc = orch_env_file_set(path, var, tag, errmsg)) != 0) {
        return rc;
    }
    const char *up[] = {"up", "-d", "--no-deps", service, NULL};
    if ((rc = compose_cmd(b, CMD_ACT, up, 10 * 60000, out, sizeof(out), NULL,
                          errmsg)) != 0) {
        return rc;
    }
    if (b->dry_run) {
        return 0;
    }
    /* The container may exit right after it started (bad image, refused
     * start-up): look again after a moment. */
    sleep_ms(START_CHECK_MS);
    if (!compose_alive(b, n)) {
        char logs[ORCH_ERRMSG_SIZE / 2], scratch[ORCH_ERRMSG_SIZE];
        const char *la[] = {"logs", "--no-color", "--tail",
                            "20",   service,      NULL};
        int st = 0;
        msg(errmsg, "service '%s' exited at once on image '%s'", service, tag);
        if (compose_cmd(b, CMD_ASK, la, 30000, logs, sizeof(logs), &st,
                        scratch) == 0 &&
            st == 0) {
            size_t used = strlen(errmsg);
            snprintf(errmsg + used, ORCH_ERRMSG_SIZE - used,
                     "; last lines of its log:\n%s", trimmed(logs));
        }
        return OZ_ESTATE;
    }
    return 0;
}

/* ---- the interface ---- */

int orch_backend_open(struct cli *cli,
                      const struct orch_backend_args *a,
                      struct orch_backend **out,
                      char *errmsg)
{
    struct orch_backend *b;
    int rc;

    *out = NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        msg(errmsg, "out of memory");
        return OZ_ENOMEM;
    }
    b->dry_run = a->dry_run;
    b->out = a->out;
    if (a->name != NULL && strcmp(a->name, "local") == 0) {
        b->kind = BACKEND_LOCAL;
        rc = local_open(cli, a, b, errmsg);
    } else if (a->name != NULL && strcmp(a->name, "systemd") == 0) {
        b->kind = BACKEND_SYSTEMD;
        rc = systemd_open(a, b, errmsg);
    } else if (a->name != NULL && strcmp(a->name, "compose") == 0) {
        b->kind = BACKEND_COMPOSE;
        rc = compose_open(a, b, errmsg);
    } else {
        msg(errmsg,
            "unknown backend '%s': give --backend local, systemd or compose",
            a->name != NULL ? a->name : "");
        rc = OZ_EINVAL;
    }
    if (rc != 0) {
        free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void orch_backend_close(struct orch_backend *b)
{
    free(b);
}

int orch_backend_current_bin(struct orch_backend *b,
                             const struct orch_node *n,
                             char *out,
                             size_t size,
                             char *errmsg)
{
    out[0] = '\0';
    switch (b->kind) {
        case BACKEND_LOCAL:
            return local_current_bin(b, n, out, size, errmsg);
        case BACKEND_SYSTEMD:
            return systemd_current_bin(b, n, out, size, errmsg);
        case BACKEND_COMPOSE:
            return compose_current_bin(b, n, out, size, errmsg);
    }
    return OZ_EINVAL;
}

int orch_backend_stop(struct orch_backend *b,
                      const struct orch_node *n,
                      long timeout_ms,
                      char *errmsg)
{
    switch (b->kind) {
        case BACKEND_LOCAL:
            return local_stop(b, n, timeout_ms, errmsg);
        case BACKEND_SYSTEMD:
            return systemd_stop(b, n, timeout_ms, errmsg);
        case BACKEND_COMPOSE:
            return compose_stop(b, n, timeout_ms, errmsg);
    }
    return OZ_EINVAL;
}

int orch_backend_start(struct orch_backend *b,
                       const struct orch_node *n,
                       const char *bin,
                       char *errmsg)
{
    switch (b->kind) {
        case BACKEND_LOCAL:
            return local_start(b, n, bin, errmsg);
        case BACKEND_SYSTEMD:
            return systemd_start(b, n, bin, errmsg);
        case BACKEND_COMPOSE:
            return compose_start(b, n, bin, errmsg);
    }
    return OZ_EINVAL;
}

bool orch_backend_alive(struct orch_backend *b, const struct orch_node *n)
{
    switch (b->kind) {
        case BACKEND_LOCAL:
            return local_alive(b, n);
        case BACKEND_SYSTEMD:
            return systemd_alive(b, n);
        case BACKEND_COMPOSE:
            return compose_alive(b, n);
    }
    return false;
}
