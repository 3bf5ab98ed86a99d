/* notify: the service manager readiness protocol (sd_notify(3)), the one
 * adapter around libsystemd (CONVENTIONS.md "Every third-party C API sits
 * behind exactly one adapter module"; DESIGN.md §4 "announce ready").
 *
 * Under systemd with Type=notify, NOTIFY_SOCKET names a unix datagram
 * socket; each call sends one state message to it. Without NOTIFY_SOCKET
 * (a shell, docker, the local cluster) every call is a no-op returning 0,
 * so daemons call these unconditionally.
 *
 * Thread-safe (each call is one datagram); the daemon skeleton calls them
 * from its main thread only.
 */
#ifndef OZONE_NOTIFY_H
#define OZONE_NOTIFY_H

#include <stdbool.h>

/* true when the process was started with NOTIFY_SOCKET set. */
bool notify_enabled(void);

/* "READY=1" with "STATUS=<status>" (status may be NULL; borrowed). Sent
 * once the servers accept requests, and again after a reload. Returns 0
 * (sent, or no socket) or OZ_EIO (the socket refused the message). */
int notify_ready(const char *status);

/* "STOPPING=1": the daemon has begun draining (SIGTERM). 0 or OZ_EIO. */
int notify_stopping(void);

/* "RELOADING=1" with MONOTONIC_USEC: a reload (SIGHUP) has begun; follow
 * with notify_ready() when it is done. 0 or OZ_EIO. */
int notify_reloading(void);

/* "STATUS=<status>" alone: a one-line state shown by 'systemctl status'
 * (e.g. while waiting for SCM at start-up). status borrowed. 0 or
 * OZ_EIO. */
int notify_status(const char *status);

#endif
