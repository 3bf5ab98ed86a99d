/* fault: named fault points switched on by OZONE_FAULT or fault_set()
 * (CONVENTIONS.md "Tests").
 *
 * One table holds every active point. OZONE_FAULT is read lazily on the
 * first fault_hit()/fault_set() after start-up or after fault_clear_all();
 * fault_clear_all() drops every point, so a test can setenv() and then
 * call fault_clear_all() to make the environment be read again. A point
 * that is off costs one mutex round trip and a short table scan; points
 * sit on rare paths (persisting VERSION, finalization), never per request.
 */
#include "fault.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define FAULT_MAX_POINTS 32
#define FAULT_MAX_NAME 128
#define FAULT_CRASH_STATUS 86

struct fault_point
{
    char name[FAULT_MAX_NAME];
    enum fault_mode mode;
    bool from_env; /* logged when hit */
};

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault_point points[FAULT_MAX_POINTS];
static size_t n_points;
static bool env_loaded;

static struct fault_point *lookup(const char *name)
{
    for (size_t i = 0; i < n_points; i++) {
        if (strcmp(points[i].name, name) == 0) {
            return &points[i];
        }
    }
    return NULL;
}

/* Called with fault_lock held. */
static void set_locked(const char *name, enum fault_mode mode, bool from_env)
{
    struct fault_point *pt = lookup(name);

    if (mode == FAULT_OFF) {
        if (pt != NULL) {
            *pt = points[--n_points];
        }
        return;
    }
    if (pt == NULL) {
        if (n_points >= FAULT_MAX_POINTS || strlen(name) >= FAULT_MAX_NAME) {
            log_warn(
                "fault point '%s' ignored: too many points or name too "
                "long",
                name);
            return;
        }
        pt = &points[n_points++];
        oz_strlcpy(pt->name, name, sizeof(pt->name));
    }
    pt->mode = mode;
    pt->from_env = from_env;
}

static void trim(char **s, char **end)
{
    while (*s < *end && (**s == ' ' || **s == '\t')) {
        (*s)++;
    }
    while (*end > *s && ((*end)[-1] == ' ' || (*end)[-1] == '\t')) {
        (*end)--;
    }
}

/* Parses one "name" or "name:mode" item in place. */
static void parse_item(char *s, char *end)
{
    char *colon;
    enum fault_mode mode = FAULT_ERROR;

    trim(&s, &end);
    if (s == end) {
        return;
    }
    *end = '\0';
    colon = strchr(s, ':');
    if (colon != NULL) {
        char *m = colon + 1;
        char *mend = end;
        char *nend = colon;
        trim(&m, &mend);
        *mend = '\0';
        if (strcmp(m, "crash") == 0) {
            mode = FAULT_CRASH;
        } else if (strcmp(m, "error") == 0) {
            mode = FAULT_ERROR;
        } else {
            log_warn(
                "OZONE_FAULT: unknown mode '%s' for point '%.*s' "
                "ignored; use 'error' or 'crash'",
                m, (int)(colon - s), s);
            return;
        }
        trim(&s, &nend);
        *nend = '\0';
        if (s[0] == '\0') {
            return;
        }
    }
    set_locked(s, mode, true);
    log_warn("OZONE_FAULT: fault point '%s' armed (%s)", s,
             mode == FAULT_CRASH ? "crash" : "error");
}

/* Called with fault_lock held. */
static void load_env_locked(void)
{
    const char *env;
    char *copy;
    char *s;

    if (env_loaded) {
        return;
    }
    env_loaded = true;
    env = getenv("OZONE_FAULT");
    if (env == NULL || env[0] == '\0') {
        return;
    }
    copy = strdup(env);
    if (copy == NULL) {
        return;
    }
    s = copy;
    for (;;) {
        char *comma = strchr(s, ',');
        char *end = comma != NULL ? comma : s + strlen(s);
        parse_item(s, end);
        if (comma == NULL) {
            break;
        }
        s = comma + 1;
    }
    free(copy);
}

int fault_hit(const char *name)
{
    struct fault_point *pt;
    enum fault_mode mode;
    bool from_env;

    pthread_mutex_lock(&fault_lock);
    load_env_locked();
    pt = lookup(name);
    mode = pt != NULL ? pt->mode : FAULT_OFF;
    from_env = pt != NULL && pt->from_env;
    pthread_mutex_unlock(&fault_lock);

    switch (mode) {
        case FAULT_OFF:
            return 0;
        case FAULT_CRASH:
            log_error("fault point '%s' hit: crashing (OZONE_FAULT)", name);
            _exit(FAULT_CRASH_STATUS);
        case FAULT_ERROR:
        default:
            if (from_env) {
                log_warn(
                    "fault point '%s' hit: failing with an injected "
                    "error (OZONE_FAULT)",
                    name);
            } else {
                log_debug(
                    "fault point '%s' hit: failing with an injected "
                    "error",
                    name);
            }
            return OZ_EFAULT;
    }
}

void fault_set(const char *name, enum fault_mode mode)
{
    pthread_mutex_lock(&fault_lock);
    load_env_locked();
    set_locked(name, mode, false);
    pthread_mutex_unlock(&fault_lock);
}

void fault_clear_all(void)
{
    pthread_mutex_lock(&fault_lock);
    n_points = 0;
    env_loaded = false;
    pthread_mutex_unlock(&fault_lock);
}
