/* notify: sd_notify(3) behind one adapter (see notify.h). The only file
 * that calls sd_*. libsystemd's sd_notify() already returns 0 without
 * NOTIFY_SOCKET; errors (negative errno) become OZ_EIO here. */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "err.h"
#include "log.h"

/* Longest status text passed on; longer ones are cut (systemctl shows
 * one line anyway). */
#define NOTIFY_STATUS_MAX 400

bool notify_enabled(void)
{
    const char *s = getenv("NOTIFY_SOCKET");

    return s != NULL && s[0] != '\0';
}

static int send_state(const char *state)
{
    /* unset_environment = 0: later calls (STOPPING, RELOADING) still need
     * NOTIFY_SOCKET. */
    int rc = sd_notify(0, state);

    if (rc < 0) {
        log_warn(
            "cannot notify the service manager (NOTIFY_SOCKET '%s'): "
            "errno %d",
            getenv("NOTIFY_SOCKET"), -rc);
        return OZ_EIO;
    }
    return 0;
}

int notify_ready(const char *status)
{
    char msg[NOTIFY_STATUS_MAX + 32];

    if (!notify_enabled()) {
        return 0;
    }
    if (status != NULL && status[0] != '\0') {
        snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%.*s", NOTIFY_STATUS_MAX,
                 status);
        return send_state(msg);
    }
    return send_state("READY=1");
}

int notify_stopping(void)
{
    if (!notify_enabled()) {
        return 0;
    }
    return send_state("STOPPING=1\nSTATUS=draining and stopping");
}

int notify_reloading(void)
{
    char msg[96];
    struct timespec ts;

    if (!notify_enabled()) {
        return 0;
    }
    /* systemd 253+ (Type=notify-reload) wants the monotonic time with
     * RELOADING=1; older ones ignore the extra field. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL +
                 (unsigned long long)ts.tv_nsec / 1000ULL);
    return send_state(msg);
}

int notify_status(const char *status)
{
    char msg[NOTIFY_STATUS_MAX + 16];

    if (!notify_enabled() || status == NULL) {
        return 0;
    }
    snprintf(msg, sizeof(msg), "STATUS=%.*s", NOTIFY_STATUS_MAX, status);
    return send_state(msg);
}
