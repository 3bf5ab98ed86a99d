/* Operator logs: one line per event with time, level, component and node
 * id (CONVENTIONS.md; DESIGN.md §12).
 *
 *   2026-11-22T04:20:00.123Z INFO  om[om1] started: software 100, apparent 100
 *
 * Thread-safe. Before log_init() lines go to stderr with component "ozone".
 */
#ifndef OZONE_LOG_H
#define OZONE_LOG_H

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR
};

/* path NULL or "-" logs to stderr. Returns 0 or OZ_EIO (file not
 * writable). component and node_id are copied. */
int log_init(const char *component,
             const char *node_id,
             const char *path,
             enum log_level level);

/* Changes the node id shown on later lines (e.g. once it is known). */
void log_set_node_id(const char *node_id);

/* Reopens the log file (SIGHUP); safe to call from a normal thread only. */
int log_reopen(void);

/* Closes the file, back to stderr. */
void log_close(void);

/* Parses "DEBUG|INFO|WARN|ERROR" (case-insensitive). 0 or OZ_EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
