#!/usr/bin/env python3
"""Deployment (issue 7): what deploy/ relies on from the daemons.

- Every metric the Grafana dashboard (deploy/grafana) queries is exported
  on /prom by some daemon of a running cluster, and every daemon exports
  the version metrics the dashboard is built on.
- The daemons speak the systemd notify protocol the Type=notify units
  (deploy/systemd) need: READY=1 once they serve, RELOADING=1 then READY=1
  on SIGHUP, STOPPING=1 on SIGTERM.
- The container entry point (deploy/compose/entrypoint.sh) initialises empty
  storage once, then starts the daemon, with the sample configuration
  (deploy/conf/ozone-site.xml), whose keys all parse without warnings.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.machinery import SourceFileLoader

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402
from oztest import free_port, http_get, wait_for  # noqa: E402

validate = SourceFileLoader(
    "validate_deploy",
    os.path.join(oztest.SRC, "scripts", "validate-deploy")).load_module()

SAMPLE_CONF = os.path.join(oztest.SRC, "deploy", "conf")
ENTRYPOINT = os.path.join(oztest.SRC, "deploy", "compose", "entrypoint.sh")


def prom_names(text):
    """Metric names in a Prometheus text exposition."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def scm_args(base):
    """-D options for a standalone SCM on free ports under base."""
    rpc, http = free_port(), free_port()
    opts = {
        "ozone.metadata.dirs": os.path.join(base, "meta"),
        "ozone.scm.client.address": "127.0.0.1:%d" % rpc,
        "ozone.scm.block.client.address": "127.0.0.1:%d" % rpc,
        "ozone.scm.datanode.address": "127.0.0.1:%d" % rpc,
        "ozone.scm.http-address": "127.0.0.1:%d" % http,
    }
    args = []
    for k, v in sorted(opts.items()):
        args += ["-D", "%s=%s" % (k, v)]
    return args, http


class DeployMetrics(oztest.OzoneTestCase):

    def test_dashboard_metrics_are_exported(self):
        c = self.cluster(datanodes=1)
        exported = set()
        for node in c.nodes:
            status, body = http_get(node.http_port, "/prom")
            self.assertEqual(status, 200, node.name)
            names = prom_names(body)
            for core in ("ozone_software_version", "ozone_apparent_version",
                         "ozone_build_info"):
                self.assertIn(core, names, "%s /prom lacks %s" % (
                    node.name, core))
            exported |= names
        wanted = validate.dashboard_metrics()
        self.assertTrue(wanted)
        missing = sorted(wanted - exported)
        self.assertEqual(missing, [], "the Grafana dashboard queries "
                         "metrics no daemon exports: %s (exported: %s)" % (
                             missing, sorted(exported)))

    def test_sample_config_is_accepted(self):
        args, _ = scm_args(self.tmp)
        r = subprocess.run([oztest.OZONE, "scm", "--init", "--conf",
                            SAMPLE_CONF] + args, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("unknown configuration key", r.stderr)
        self.assertNotIn("invalid value", r.stderr)

    def test_daemon_notifies_service_manager(self):
        path = os.path.join(self.tmp, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        sock.settimeout(60)
        args, http = scm_args(self.tmp)
        subprocess.run([oztest.OZONE, "scm", "--init"] + args, check=True,
                       capture_output=True, timeout=60)
        env = dict(os.environ, NOTIFY_SOCKET=path)
        log = open(os.path.join(self.tmp, "scm.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen([oztest.OZONE, "scm"] + args, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())

        msg = sock.recv(4096).decode()
        self.assertTrue(msg.startswith("READY=1\n"), msg)
        self.assertIn("STATUS=Storage Container Manager ready", msg)
        # READY=1 comes after the servers started: no polling needed.
        self.assertEqual(http_get(http, "/healthz")[0], 200)

        proc.send_signal(signal.SIGHUP)
        msg = sock.recv(4096).decode()
        self.assertTrue(msg.startswith("RELOADING=1\nMONOTONIC_USEC="), msg)
        self.assertEqual(sock.recv(4096).decode(), "READY=1")

        proc.send_signal(signal.SIGTERM)
        msg = sock.recv(4096).decode()
        self.assertTrue(msg.startswith("STOPPING=1"), msg)
        self.assertEqual(proc.wait(timeout=60), 0)

    def test_entrypoint_initialises_once_then_starts(self):
        meta = os.path.join(self.tmp, "meta")
        env = dict(os.environ, OZONE=oztest.OZONE, OZONE_METADATA_DIR=meta,
                   OZONE_CONF_DIR=SAMPLE_CONF)
        version = os.path.join(meta, "scm", "current", "VERSION")

        def start_and_stop(log_name):
            args, http = scm_args(self.tmp)
            log_path = os.path.join(self.tmp, log_name)
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(["/bin/sh", ENTRYPOINT, "scm"] + args,
                                        env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
            self.addCleanup(lambda: proc.poll() is None and proc.kill())
            wait_for(lambda: proc.poll() is None and
                     http_get(http, "/healthz", timeout=1.0)[0] == 200,
                     60, "SCM started by the entry point")
            # exec: the entry point's process is the daemon itself.
            with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
                argv = f.read().split(b"\0")
            self.assertEqual(argv[1], b"scm", argv)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=60), 0)
            with open(log_path) as f:
                return f.read()

        first = start_and_stop("first.log")
        self.assertIn("running 'scm --init'", first)
        self.assertTrue(os.path.exists(version))
        with open(version) as f:
            cluster = f.read()
        second = start_and_stop("second.log")
        self.assertNotIn("--init", second)
        with open(version) as f:
            self.assertEqual(f.read(), cluster, "VERSION changed on restart")


if __name__ == "__main__":
    oztest.main()
