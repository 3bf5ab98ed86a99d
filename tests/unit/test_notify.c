/* Unit tests for common/notify.c: each call delivers its state message to
 * the unix datagram socket named by NOTIFY_SOCKET (as systemd's Type=notify
 * does); without NOTIFY_SOCKET every call is a no-op; a dead socket is an
 * error, not a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "notify.h"

struct listener
{
    char dir[64];
    char path[128];
    int fd;
};

static int setup(void **state)
{
    struct listener *l = calloc(1, sizeof(*l));
    struct sockaddr_un sa;
    struct timeval tv = {5, 0};

    if (l == NULL) {
        return -1;
    }
    snprintf(l->dir, sizeof(l->dir), "/tmp/oz-notify-XXXXXX");
    if (mkdtemp(l->dir) == NULL) {
        free(l);
        return -1;
    }
    snprintf(l->path, sizeof(l->path), "%s/notify.sock", l->dir);
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", l->path);
    if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        free(l);
        return -1;
    }
    /* A test that waits for a message that never comes fails, not hangs. */
    setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setenv("NOTIFY_SOCKET", l->path, 1);
    *state = l;
    return 0;
}

static int teardown(void **state)
{
    struct listener *l = *state;

    unsetenv("NOTIFY_SOCKET");
    close(l->fd);
    unlink(l->path);
    rmdir(l->dir);
    free(l);
    return 0;
}

/* Receives one datagram as a NUL-terminated string. */
static void recv_msg(struct listener *l, char *buf, size_t size)
{
    ssize_t n = recv(l->fd, buf, size - 1, 0);

    assert_true(n > 0);
    buf[n] = '\0';
}

static int send_ready_with_status(void)
{
    return notify_ready("OM ready: rpc 127.0.0.1:9862");
}

static int send_ready_plain(void)
{
    return notify_ready(NULL);
}

static int send_status(void)
{
    return notify_status("waiting for SCM");
}

static const struct case_row
{
    const char *name;
    int (*send)(void);
    const char *expect; /* the whole message, or its prefix when prefix */
    bool prefix;
} cases[] = {
    {"ready with status", send_ready_with_status,
     "READY=1\nSTATUS=OM ready: rpc 127.0.0.1:9862", false},
    {"ready without status", send_ready_plain, "READY=1", false},
    {"stopping", notify_stopping, "STOPPING=1\n", true},
    {"reloading", notify_reloading, "RELOADING=1\nMONOTONIC_USEC=", true},
    {"status", send_status, "STATUS=waiting for SCM", false},
};

static void test_messages_arrive(void **state)
{
    struct listener *l = *state;
    char buf[1024];

    assert_true(notify_enabled());
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct case_row *c = &cases[i];
        int rc = c->send();
        if (rc != 0) {
            fail_msg("row %zu (%s): send returned %d", i, c->name, rc);
        }
        recv_msg(l, buf, sizeof(buf));
        bool ok = c->prefix ? strncmp(buf, c->expect, strlen(c->expect)) == 0
                            : strcmp(buf, c->expect) == 0;
        if (!ok) {
            fail_msg("row %zu (%s): got '%s', want '%s'%s", i, c->name, buf,
                     c->expect, c->prefix ? "..." : "");
        }
    }
}

static void test_reload_sequence(void **state)
{
    /* SIGHUP in the daemon skeleton: RELOADING=1, then READY=1 again. */
    struct listener *l = *state;
    char buf[1024];

    assert_int_equal(notify_reloading(), 0);
    assert_int_equal(notify_ready(NULL), 0);
    recv_msg(l, buf, sizeof(buf));
    assert_non_null(strstr(buf, "RELOADING=1"));
    recv_msg(l, buf, sizeof(buf));
    assert_string_equal(buf, "READY=1");
}

static void test_long_status_is_cut(void **state)
{
    struct listener *l = *state;
    char status[2000];
    char buf[4096];

    memset(status, 'x', sizeof(status) - 1);
    status[sizeof(status) - 1] = '\0';
    assert_int_equal(notify_status(status), 0);
    recv_msg(l, buf, sizeof(buf));
    assert_true(strncmp(buf, "STATUS=xxx", 10) == 0);
    assert_true(strlen(buf) < sizeof(status));
}

static void test_noop_without_socket(void **state)
{
    struct listener *l = *state;
    char buf[64];

    unsetenv("NOTIFY_SOCKET");
    assert_false(notify_enabled());
    assert_int_equal(notify_ready("x"), 0);
    assert_int_equal(notify_stopping(), 0);
    assert_int_equal(notify_reloading(), 0);
    assert_int_equal(notify_status("x"), 0);
    /* Nothing was sent. */
    assert_true(recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT) < 0);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void test_dead_socket_is_an_error(void **state)
{
    struct listener *l = *state;
    char gone[160];

    snprintf(gone, sizeof(gone), "%s/gone.sock", l->dir);
    setenv("NOTIFY_SOCKET", gone, 1);
    assert_int_equal(notify_ready(NULL), OZ_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_messages_arrive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_status_is_cut, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_noop_without_socket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dead_socket_is_an_error, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
