#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "err.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_component[32] = "ozone";
static char log_node[128] = "";
static char log_path[4096] = "";
static FILE *log_file; /* NULL means stderr */
static enum log_level log_min = LOG_LEVEL_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int log_init(const char *component,
             const char *node_id,
             const char *path,
             enum log_level level)
{
    FILE *f = NULL;

    if (path != NULL && strcmp(path, "-") != 0 && path[0] != '\0') {
        f = fopen(path, "a");
        if (f == NULL) {
            return OZ_EIO;
        }
        setvbuf(f, NULL, _IOLBF, 0);
    }
    pthread_mutex_lock(&log_lock);
    if (log_file != NULL) {
        fclose(log_file);
    }
    log_file = f;
    oz_strlcpy(log_path, f != NULL ? path : "", sizeof(log_path));
    oz_strlcpy(log_component, component, sizeof(log_component));
    oz_strlcpy(log_node, node_id != NULL ? node_id : "", sizeof(log_node));
    log_min = level;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void log_set_node_id(const char *node_id)
{
    pthread_mutex_lock(&log_lock);
    oz_strlcpy(log_node, node_id != NULL ? node_id : "", sizeof(log_node));
    pthread_mutex_unlock(&log_lock);
}

int log_reopen(void)
{
    int rc = 0;

    pthread_mutex_lock(&log_lock);
    if (log_file != NULL && log_path[0] != '\0') {
        FILE *f = fopen(log_path, "a");
        if (f == NULL) {
            rc = OZ_EIO; /* keep writing to the old file */
        } else {
            setvbuf(f, NULL, _IOLBF, 0);
            fclose(log_file);
            log_file = f;
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_file != NULL) {
        fclose(log_file);
        log_file = NULL;
    }
    log_path[0] = '\0';
    pthread_mutex_unlock(&log_lock);
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "WARNING") == 0) {
        *out = LOG_LEVEL_WARN;
        return 0;
    }
    return OZ_EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    char ts[40];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;

    if (level < log_min) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    pthread_mutex_lock(&log_lock);
    if (log_node[0] != '\0') {
        n = snprintf(line, sizeof(line), "%s.%03ldZ %-5s %s[%s] ", ts,
                     now.tv_nsec / 1000000, level_names[level], log_component,
                     log_node);
    } else {
        n = snprintf(line, sizeof(line), "%s.%03ldZ %-5s %s ", ts,
                     now.tv_nsec / 1000000, level_names[level], log_component);
    }
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line)) {
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    }
    va_end(ap);
    /* One event, one line: fold embedded newlines. */
    for (char *p = line; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    fprintf(log_file != NULL ? log_file : stderr, "%s\n", line);
    pthread_mutex_unlock(&log_lock);
}
