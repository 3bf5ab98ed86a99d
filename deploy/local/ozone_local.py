"""A whole ozone-c cluster on loopback: SCM, OM, datanodes and Recon as real
processes with free ports in one directory (DESIGN.md §3 deploy/local).

Used by the README's first command, the integration tests and the
benchmarks. Python 3 standard library only.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request

READY_TIMEOUT = 60.0


# Fixed (not $TMPDIR) so every test run on the machine shares the claims.
_PORT_DIR = "/tmp/ozone-c-ports"


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _claim(port):
    """Claims port for this process across concurrently running tests: a
    file named by the port holds the claiming pid; a dead pid's claim is
    taken over."""
    os.makedirs(_PORT_DIR, exist_ok=True)
    path = os.path.join(_PORT_DIR, str(port))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    pid = int(f.read().strip() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid == os.getpid() or (pid and _pid_alive(pid)):
                return False
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def free_port():
    """A port free on 127.0.0.1, outside the kernel's ephemeral range (so an
    outgoing connection of some other process cannot take it before our
    daemon binds it) and claimed against concurrently running tests."""
    lo, hi = _ephemeral_range()
    # The largest stretch below or above the ephemeral range.
    if lo - 10000 >= 65535 - hi:
        first, last = 10000, lo - 1
    else:
        first, last = hi + 1, 65535
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randint(first, last)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if _claim(port):
            return port
    # Fall back to what the kernel hands out.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=2.0):
    """(status, body text) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(
                "http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def wait_for(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns a true value or timeout expires."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - report the last one
            last_exc = e
        time.sleep(interval)
    raise TimeoutError("timed out after %.0fs waiting for %s%s" % (
        timeout, what, (": last error %r" % last_exc) if last_exc else ""))


def site_xml(props):
    lines = ['<?xml version="1.0"?>', "<configuration>"]
    for k in sorted(props):
        lines.append("  <property><name>%s</name><value>%s</value></property>"
                     % (k, props[k]))
    lines.append("</configuration>")
    return "\n".join(lines) + "\n"


class Node:
    """One daemon process."""

    def __init__(self, cluster, kind, name, overrides, rpc_port, http_port):
        self.cluster = cluster
        self.kind = kind            # "scm", "om", "datanode", "recon"
        self.name = name            # "scm", "om1", "dn1", "recon"
        self.overrides = dict(overrides)
        self.rpc_port = rpc_port
        self.http_port = http_port
        self.extra_args = []
        self.binary = None          # None: the cluster's ozone binary
        # Extra environment of the process, e.g. {"OZONE_FAULT":
        # "scm.finalize.after_persist:crash"} for crash-injection tests.
        self.env = {}
        self.proc = None
        self.log_path = os.path.join(cluster.base_dir, "logs",
                                     name + ".log")

    @property
    def rpc_address(self):
        return "127.0.0.1:%d" % self.rpc_port

    def command(self, *extra):
        cmd = [self.binary or self.cluster.ozone, self.kind,
               "--conf", self.cluster.conf_dir]
        for k, v in sorted(self.overrides.items()):
            cmd += ["-D", "%s=%s" % (k, v)]
        return cmd + list(self.extra_args) + list(extra)

    def run_once(self, *extra, check=True):
        """Runs the daemon binary with extra args to completion (--init)."""
        with open(self.log_path, "ab") as log:
            r = subprocess.run(self.command(*extra), stdout=log,
                               stderr=subprocess.STDOUT, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("'%s %s' failed with %d:\n%s" % (
                self.name, " ".join(extra), r.returncode, self.log_tail()))
        return r.returncode

    def start(self, *extra):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        log = open(self.log_path, "ab")
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(self.command(*extra), stdout=log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        log.close()
        self.cluster.write_pids()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=READY_TIMEOUT):
        def ready():
            if not self.alive():
                raise RuntimeError("%s exited with %s during start-up:\n%s" % (
                    self.name, self.proc.returncode, self.log_tail()))
            status, _ = http_get(self.http_port, "/healthz", timeout=1.0)
            return status == 200
        try:
            wait_for(ready, timeout, "%s to be ready" % self.name)
        except TimeoutError as e:
            raise TimeoutError("%s\n%s" % (e, self.log_tail())) from None

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self.cluster.write_pids()
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def wait_exit(self, timeout=30.0):
        """Waits for the process to end by itself; its exit status."""
        if self.proc is None:
            return None
        self.proc.wait(timeout=timeout)
        rc = self.proc.returncode
        self.proc = None
        self.cluster.write_pids()
        return rc

    def version_json(self):
        status, body = http_get(self.http_port, "/version")
        if status != 200:
            raise RuntimeError("%s /version answered %d" % (self.name, status))
        return json.loads(body)

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                lines = f.readlines()
            return "".join(lines[-n:])
        except OSError:
            return "(no log)"


class LocalCluster:
    """SCM, OM(s), datanodes and Recon on 127.0.0.1 under base_dir."""

    def __init__(self, base_dir, ozone, datanodes=3, oms=1, recon=True,
                 conf=None):
        self.base_dir = os.path.abspath(base_dir)
        self.ozone = os.path.abspath(ozone)
        self.conf_dir = os.path.join(self.base_dir, "conf")
        self.props = {
            "ozone.log.level": "INFO",
            "hdds.heartbeat.interval": "1s",
            "ozone.scm.stale.node.interval": "6s",
            "ozone.scm.dead.node.interval": "12s",
            "ozone.rpc.timeout": "10s",
        }
        self.nodes = []
        scm_port = free_port()
        self.scm = self._add("scm", "scm", {
            "ozone.scm.db.dirs": self._dir("scm"),
            "ozone.scm.client.address": "127.0.0.1:%d" % scm_port,
            "ozone.scm.block.client.address": "127.0.0.1:%d" % scm_port,
            "ozone.scm.datanode.address": "127.0.0.1:%d" % scm_port,
        }, scm_port, "ozone.scm.http-address")
        self.props["ozone.scm.names"] = "127.0.0.1:%d" % scm_port
        self.props["ozone.scm.client.address"] = "127.0.0.1:%d" % scm_port
        self.oms = []
        for i in range(1, oms + 1):
            port = free_port()
            om = self._add("om", "om%d" % i, {
                "ozone.om.db.dirs": self._dir("om%d" % i),
                "ozone.om.address": "127.0.0.1:%d" % port,
                "ozone.om.node.id": "om%d" % i,
            }, port, "ozone.om.http-address")
            self.oms.append(om)
        if oms == 1:
            self.props["ozone.om.address"] = self.oms[0].rpc_address
        else:
            self._om_service_props(self.props, self.oms)
        self.datanodes = []
        for i in range(1, datanodes + 1):
            port = free_port()
            dn = self._add("datanode", "dn%d" % i, {
                "ozone.metadata.dirs": self._dir("dn%d" % i, "meta"),
                "hdds.datanode.dir": self._dir("dn%d" % i, "data"),
                "hdds.container.ipc.port": str(port),
                "hdds.datanode.id": "dn%d" % i,
            }, port, "hdds.datanode.http-address")
            self.datanodes.append(dn)
        self.recon = None
        if recon:
            port = free_port()
            self.recon = self._add("recon", "recon", {
                "ozone.recon.db.dir": self._dir("recon"),
                "ozone.recon.address": "127.0.0.1:%d" % port,
            }, port, "ozone.recon.http-address")
            self.props["ozone.recon.address"] = self.recon.rpc_address
            self.props["ozone.recon.http-address"] = \
                "127.0.0.1:%d" % self.recon.http_port
        self.props.update(conf or {})

    OM_SERVICE_ID = "omservice"

    def _om_service_props(self, props, oms):
        """An OM service (DESIGN.md §8): every OM's keys in the shared
        configuration; each OM picks itself with ozone.om.node.id."""
        sid = self.OM_SERVICE_ID
        props["ozone.om.service.ids"] = sid
        props["ozone.om.nodes." + sid] = ",".join(om.name for om in oms)
        for om in oms:
            if not getattr(om, "ratis_port", None):
                om.ratis_port = free_port()
            props["ozone.om.address.%s.%s" % (sid, om.name)] = om.rpc_address
            props["ozone.om.http-address.%s.%s" % (sid, om.name)] = \
                "127.0.0.1:%d" % om.http_port
            props["ozone.om.ratis.port.%s.%s" % (sid, om.name)] = \
                str(om.ratis_port)

    def new_om(self, name):
        """A further OM of the service (for ozone om --bootstrap): its own
        configuration lists the service with itself added last; the shared
        one (what the running OMs read) is left alone."""
        port = free_port()
        om = self._add("om", name, {
            "ozone.om.db.dirs": self._dir(name),
            "ozone.om.address": "127.0.0.1:%d" % port,
            "ozone.om.node.id": name,
        }, port, "ozone.om.http-address")
        self._om_service_props(om.overrides, self.oms + [om])
        self.oms.append(om)
        return om

    def om_leader(self, timeout=30.0):
        """The OM that leads the service now (roles --json)."""
        def find():
            r = self.ozone_cmd("admin", "om", "roles", "--json", check=False)
            if r.returncode != 0:
                return None
            for entry in json.loads(r.stdout):
                for name, info in entry.items():
                    if info.get("serverRole") == "LEADER":
                        return name
            return None
        name = wait_for(find, timeout, "an OM leader")
        return next(om for om in self.oms if om.name == name)

    def _dir(self, *parts):
        return os.path.join(self.base_dir, "data", *parts)

    def _add(self, kind, name, overrides, rpc_port, http_key):
        http_port = free_port()
        overrides[http_key] = "127.0.0.1:%d" % http_port
        node = Node(self, kind, name, overrides, rpc_port, http_port)
        self.nodes.append(node)
        return node

    def write_conf(self):
        os.makedirs(self.conf_dir, exist_ok=True)
        os.makedirs(os.path.join(self.base_dir, "logs"), exist_ok=True)
        with open(os.path.join(self.conf_dir, "ozone-site.xml"), "w") as f:
            f.write(site_xml(self.props))

    def write_pids(self):
        path = os.path.join(self.base_dir, "pids.json")
        pids = {n.name: n.proc.pid for n in self.nodes if n.alive()}
        try:
            with open(path + ".tmp", "w") as f:
                json.dump(pids, f)
            os.replace(path + ".tmp", path)
        except OSError:
            pass

    def start(self):
        """Initialises (first time) and starts every node; waits until all
        are ready. Order: SCM, OM, datanodes, Recon (DESIGN.md §2.1)."""
        self.write_conf()
        if not os.path.exists(os.path.join(self._dir("scm"), "scm")):
            self.scm.run_once("--init")
        self.scm.start()
        self.scm.wait_ready()
        for om in self.oms:
            if not os.path.exists(os.path.join(
                    om.overrides["ozone.om.db.dirs"], "om")):
                om.run_once("--init")
            om.start()
        for dn in self.datanodes:
            dn.start()
        if self.recon is not None:
            self.recon.start()
        for n in self.nodes:
            n.wait_ready()

    def stop(self):
        """Stops every node, newest-first; never raises."""
        for n in reversed(self.nodes):
            try:
                n.stop()
            except Exception:  # noqa: BLE001 - teardown must go on
                pass

    def ozone_cmd(self, *args, check=True, timeout=120, input_bytes=None):
        """Runs the ozone CLI against this cluster; returns CompletedProcess
        with text stdout/stderr."""
        cmd = [self.ozone, "--conf", self.conf_dir] + list(args)
        r = subprocess.run(cmd, capture_output=True, timeout=timeout,
                           input=input_bytes)
        r.stdout = r.stdout.decode("utf-8", "replace")
        r.stderr = r.stderr.decode("utf-8", "replace")
        if check and r.returncode != 0:
            raise RuntimeError("'ozone %s' exited %d:\n%s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def stop_from_pidfile(base_dir, timeout=30.0):
    """Stops a cluster started by 'ozone-local start' in another process."""
    path = os.path.join(base_dir, "pids.json")
    try:
        with open(path) as f:
            pids = json.load(f)
    except (OSError, ValueError):
        return 0
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids.values():
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    os.unlink(path)
    return len(pids)


if __name__ == "__main__":
    sys.stderr.write("use deploy/local/ozone-local\n")
    sys.exit(2)
