"""A whole ozone-c cluster on loopback: SCM, OM, datanodes and Recon as real
processes with free ports in one directory (DESIGN.md §3 deploy/local).

Used by the README's first command, the integration tests and the
benchmarks. Python 3 standard library only.

The cluster is described in <base_dir>/cluster.json (the manifest of the
orchestrator's local backend, admin-cli/orch.h): every node's executable,
arguments, environment, log and pid, rewritten at every start and stop.
`ozone admin upgrade run --backend local` stops and starts nodes from it
and records their new pids and binaries there; LocalCluster.adopt() takes
those processes over (AdoptedProcess), so Node.stop() and
LocalCluster.stop() still end every daemon of the cluster.
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


def _proc_stat(pid):
    """The fields of /proc/<pid>/stat after the command name (index 0 is
    the state letter), or None when the process is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            text = f.read().decode("ascii", "replace")
    except (OSError, ValueError):
        return None
    rp = text.rfind(")")  # the command name may hold spaces and parens
    return text[rp + 2:].split() if rp >= 0 else None


def _cmdline(pid):
    """argv of pid, or None when it cannot be read (gone)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1]]


def _holds_in_order(argv, words):
    """Whether argv holds words in this order (other words may sit between
    them: a wrapper adds options, as the backend allows too)."""
    it = iter(argv)
    return all(any(a == w for a in it) for w in words)


ADOPTED_EXIT_UNKNOWN = -256
"""AdoptedProcess.returncode of a process that ended without this process
seeing its exit status (it was not our child and its parent reaped it)."""


class AdoptedProcess:
    """A daemon this Python process did not start: the orchestrator's local
    backend started it (double fork, its own session) and recorded its pid
    in the manifest. The part of subprocess.Popen that Node and the tests
    use: pid, returncode, poll(), wait(timeout), send_signal(), kill(),
    terminate(). A zombie (state Z) or a missing process counts as exited;
    so does a pid that now belongs to another process (its start time
    differs from the one seen at adoption)."""

    def __init__(self, pid, args=None):
        self.pid = pid
        self.args = list(args or [])
        self.returncode = None
        st = _proc_stat(pid)
        # Field 22 of stat (index 19 here): start time in clock ticks.
        self._start = st[19] if st and len(st) > 19 else None
        if st is None or st[0] in ("Z", "X"):
            self._exited(st)

    def _exited(self, st):
        # Field 52 (exit_code, Linux >= 3.5) holds a zombie's wait status.
        code = ADOPTED_EXIT_UNKNOWN
        if st is not None and st[0] == "Z" and len(st) > 49:
            try:
                code = os.waitstatus_to_exitcode(int(st[49]))
            except (ValueError, AttributeError):
                pass
        self.returncode = code

    def poll(self):
        if self.returncode is None:
            st = _proc_stat(self.pid)
            if st is not None and self._start is not None and (
                    len(st) <= 19 or st[19] != self._start):
                st = None  # the pid belongs to another process now
            if st is None or st[0] in ("Z", "X"):
                self._exited(st)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args or self.pid,
                                                timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


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
        self.proc = None            # subprocess.Popen, or AdoptedProcess
        self.start_extra = ()       # the extra arguments of the last start
        # The pid this process last wrote for the node in the manifest (0:
        # not running), to tell our own record from the orchestrator's.
        self.manifest_pid = 0
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
        """Runs the daemon binary with extra args to completion (--init),
        in the daemon's environment (self.env) as start() does."""
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        env = dict(os.environ, **self.env) if self.env else None
        with open(self.log_path, "ab") as log:
            r = subprocess.run(self.command(*extra), stdout=log,
                               stderr=subprocess.STDOUT, timeout=120,
                               env=env)
        if check and r.returncode != 0:
            raise RuntimeError("'%s %s' failed with %d:\n%s" % (
                self.name, " ".join(extra), r.returncode, self.log_tail()))
        return r.returncode

    def start(self, *extra):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        log = open(self.log_path, "ab")
        env = dict(os.environ, **self.env) if self.env else None
        self.start_extra = tuple(extra)
        self.proc = subprocess.Popen(self.command(*extra), stdout=log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        log.close()
        self.cluster.write_pids()

    def manifest_entry(self):
        """The node's entry of cluster.json (admin-cli/orch.h): its
        executable, the arguments after it as command() builds them for
        the last start, environment, log, pid (0: not running) and
        addresses."""
        cmd = self.command(*self.start_extra)
        return {
            "name": self.name,
            "kind": self.kind,
            "binary": os.path.abspath(cmd[0]),
            "args": cmd[1:],
            "env": dict(self.env),
            "log": self.log_path,
            "pid": self.proc.pid if self.alive() else 0,
            "rpc_address": self.rpc_address,
            "http_address": "127.0.0.1:%d" % self.http_port,
        }

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
        # Processes of ours that a node no longer holds but that still
        # ran when it moved to another one (see adopt()); stop() ends them.
        self.strays = []
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

    MANIFEST_VERSION = 1

    @property
    def manifest_path(self):
        """cluster.json: the manifest of the orchestrator's local backend
        (its default --local-manifest is <conf dir>/../cluster.json)."""
        return os.path.join(self.base_dir, "cluster.json")

    def manifest(self):
        """The manifest as written now (admin-cli/orch.h)."""
        return {"version": self.MANIFEST_VERSION, "conf_dir": self.conf_dir,
                "nodes": [n.manifest_entry() for n in self.nodes]}

    def read_manifest(self):
        """The manifest on disk (as the orchestrator may have rewritten
        it), or None when there is none or it does not parse."""
        try:
            with open(self.manifest_path) as f:
                m = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(m, dict) or not isinstance(m.get("nodes"), list):
            return None
        return m

    def write_pids(self):
        """Writes pids.json ({name: pid} of the running nodes) and the
        manifest, each atomically. Adopts first, so that the pids and
        binaries the orchestrator recorded are kept, not overwritten with
        this process's stale view."""
        try:
            self.adopt()
        except Exception:  # noqa: BLE001 - writing must go on
            pass
        os.makedirs(self.base_dir, exist_ok=True)
        pids = {n.name: n.proc.pid for n in self.nodes if n.alive()}
        _write_json(os.path.join(self.base_dir, "pids.json"), pids)
        m = self.manifest()
        if _write_json(self.manifest_path, m):
            for n, e in zip(self.nodes, m["nodes"]):
                n.manifest_pid = e["pid"]

    def adopt(self):
        """Takes over what the manifest says about each node when another
        program (the orchestrator's local backend) changed it: for a node
        whose manifest pid differs both from the one we last wrote and from
        the process this object holds, reaps our own process (the other
        program stopped it; one that still runs is kept in self.strays for
        stop()), holds the manifest's pid as an AdoptedProcess when that
        process runs the node's arguments (else nothing), and sets
        node.binary to the manifest's binary. Entries nobody else changed
        are left alone (so is a cluster left running by 'ozone-local
        start'). Returns the nodes that changed."""
        m = self.read_manifest()
        if m is None:
            return []
        by_name = {n.name: n for n in self.nodes}
        changed = []
        for e in m["nodes"]:
            n = by_name.get(e.get("name")) if isinstance(e, dict) else None
            if n is None:
                continue
            try:
                pid = int(e.get("pid") or 0)
            except (TypeError, ValueError):
                continue
            if pid == n.manifest_pid:
                continue  # what we wrote: nobody changed it
            own = n.proc.pid if n.proc is not None else 0
            n.manifest_pid = pid
            if pid == own:
                continue
            if n.proc is not None:
                self._let_go(n)
            binary = e.get("binary")
            if isinstance(binary, str) and binary:
                n.binary = binary
            args = e.get("args")
            args = [a for a in args if isinstance(a, str)] \
                if isinstance(args, list) else []
            if pid > 0:
                p = AdoptedProcess(pid, [n.binary] + args)
                if p.poll() is None and _holds_in_order(
                        _cmdline(pid) or [], args):
                    n.proc = p
            changed.append(n)
        return changed

    def _let_go(self, n, grace=2.0):
        """n's process was replaced by another program: reap ours (it was
        stopped; give it grace seconds to finish exiting)."""
        proc, n.proc = n.proc, None
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.strays.append(proc)

    def _stop_strays(self, timeout=30.0):
        """Ends the processes of this cluster that no node holds: those in
        self.strays and any daemon of this configuration directory (one
        the orchestrator started but had not recorded when it was killed),
        except those of nodes left running on purpose."""
        kept = {n.manifest_pid for n in self.nodes
                if n.proc is None and n.manifest_pid}
        procs = list(self.strays)
        self.strays = []
        held = {p.pid for p in procs}
        procs += [AdoptedProcess(pid) for pid in daemon_pids(self.conf_dir)
                  if pid not in kept and pid not in held]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
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
        """Stops every node, newest-first, after adopting the processes
        the orchestrator started, then any other daemon of this cluster;
        never raises."""
        try:
            self.adopt()
        except Exception:  # noqa: BLE001 - teardown must go on
            pass
        for n in reversed(self.nodes):
            try:
                n.stop()
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        try:
            self._stop_strays()
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


def daemon_pids(conf_dir):
    """Pids of every running daemon whose command line is `... <kind> ...
    --conf <conf_dir> ...` (kind: scm, om, datanode, recon; as the binary's
    first argument, or the second behind a wrapper script): the daemons of
    the cluster configured there, whoever started them."""
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for d in entries:
        if not d.isdigit() or int(d) == os.getpid():
            continue
        argv = _cmdline(int(d))
        if not argv:
            continue
        kinds = [i for i, a in enumerate(argv[1:3], 1)
                 if a in ("scm", "om", "datanode", "recon")]
        if not kinds:
            continue
        rest = argv[kinds[0] + 1:]
        if any(a == "--conf" and b == conf_dir
               for a, b in zip(rest, rest[1:])):
            st = _proc_stat(int(d))
            if st is not None and st[0] not in ("Z", "X"):
                pids.append(int(d))
    return pids


def _write_json(path, obj):
    """Writes obj to path atomically (temp file, rename); False on error."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def stop_from_pidfile(base_dir, timeout=30.0):
    """Stops a cluster started by 'ozone-local start' in another process:
    the pids of pids.json and of the manifest (which also holds the
    processes 'ozone admin upgrade run --backend local' started), and any
    other daemon of the cluster's configuration directory. A recorded pid
    whose command line does not name that directory belongs to another
    process now and is left alone. Returns how many processes were
    stopped."""
    base_dir = os.path.abspath(base_dir)
    conf_dir = os.path.join(base_dir, "conf")
    path = os.path.join(base_dir, "pids.json")
    manifest_path = os.path.join(base_dir, "cluster.json")
    pids = set()
    try:
        with open(path) as f:
            pids |= {int(p) for p in json.load(f).values()}
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    manifest = None
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
        pids |= {int(e.get("pid") or 0) for e in manifest["nodes"]}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        manifest = None
    pids = {p for p in pids if p > 0 and
            _holds_in_order(_cmdline(p) or [], ["--conf", conf_dir])}
    pids = sorted(pids | set(daemon_pids(conf_dir)))
    procs = [AdoptedProcess(p) for p in pids]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    if manifest is not None:
        for e in manifest["nodes"]:
            if isinstance(e, dict):
                e["pid"] = 0
        _write_json(manifest_path, manifest)
    try:
        os.unlink(path)
    except OSError:
        pass
    return len(procs)


if __name__ == "__main__":
    sys.stderr.write("use deploy/local/ozone-local\n")
    sys.exit(2)
