"""Helpers of the upgrade tests and bench/upgrade.py (DESIGN.md §6, §13).

`--testing-software-version 100` stands in for the old release (1.0.0: OM
100, HDDS 100); no flag means the new one. A Workload runs 8 client
threads of mixed put/get/list through the real `ozone` CLI, checking the
content of every key it reads, and counts every operation that returned an
error to its caller. make_bin_dir() builds the release directories the
rolling-upgrade orchestrator swaps between (`--new-bin DIR`).
"""
import hashlib
import json
import os
import random
import shlex
import stat
import subprocess
import sys
import threading
import time

from ozone_local import wait_for

OLD = ["--testing-software-version", "100"]
NEW_OM = 102
NEW_HDDS = 102

QUOTA_REFUSED = ("operation 'SetBucketQuota' belongs to feature BUCKET_QUOTA "
                 "(version 101); cluster apparent version is 100; finalize "
                 "the upgrade first")
TAGS_REFUSED = ("operation 'PutObjectTagging' belongs to feature KEY_TAGS "
                "(version 102); cluster apparent version is 100; finalize "
                "the upgrade first")
ORDER_VIOLATION = ("upgrade order violation: upgrade SCM and datanodes "
                   "before OM")

# Short intervals so that a whole upgrade runs in a minute or two.
FAST_CONF = {
    "hdds.heartbeat.interval": "500ms",
    "ozone.scm.stale.node.interval": "5s",
    "ozone.scm.dead.node.interval": "10s",
    "ozone.om.upgrade.finalization.check.interval": "500ms",
    "ozone.scm.block.size": "1MB",
    "ozone.scm.chunk.size": "64KB",
    # A single OM's clients wait for it across its restart and while its
    # handlers wait on a restarting SCM (DESIGN.md §6.7).
    "ozone.client.om.wait.timeout": "60s",
}


DAEMONS = ("om", "scm", "datanode", "recon")
OLD_RELEASE = "1.0.0"
NEW_RELEASE = "1.1.0"


def make_bin_dir(path, real_ozone, software_version=None, broken_kinds=(),
                 hang_args=(), hang_seconds=600):
    """Creates directory path holding an executable `ozone` that stands in
    for an installed release: it runs real_ozone, adding
    `--testing-software-version <software_version>` (as set_bits() does)
    when started as a daemon (om, scm, datanode, recon) and passing every
    other command unchanged (`ozone version --json`, the CLI). Started as a
    daemon of a kind in broken_kinds it fails as a corrupt binary would:
    `ozone: cannot execute binary file: Exec format error`, exit 126.
    Started as a daemon with one of hang_args among its arguments (e.g.
    "hdds.datanode.id=dn2": one node) it hangs as a node that never comes
    back would: the process runs with the node's arguments but sleeps
    hang_seconds before the exec, answering nothing; it appends "<its
    pid> <the sleep's pid>" to <path>/hung.pids first (hung_pids()).
    SIGTERM or SIGINT ends it and its sleep at once.
    Returns the path of the `ozone` it wrote."""
    os.makedirs(path, exist_ok=True)
    real = shlex.quote(os.path.abspath(real_ozone))
    lines = ["#!/bin/sh",
             "# Written by tests/lib/upgrade_helpers.py make_bin_dir()."]
    for kind in broken_kinds:
        if kind not in DAEMONS:
            raise ValueError("broken kind %r is not one of %s" % (kind,
                                                                   DAEMONS))
    if broken_kinds:
        lines += ['case "$1" in',
                  "%s)" % "|".join(broken_kinds),
                  '    echo "ozone: cannot execute binary file: Exec format '
                  'error" >&2',
                  "    exit 126 ;;",
                  "esac"]
    if hang_args:
        pids = shlex.quote(os.path.join(os.path.abspath(path), "hung.pids"))
        lines += ['case "$1" in',
                  "%s)" % "|".join(DAEMONS),
                  '    for arg in "$@"; do',
                  '        case "$arg" in',
                  "        %s)" % "|".join(shlex.quote(a) for a in hang_args),
                  "            trap 'kill $hang 2>/dev/null; exit 143' "
                  "TERM INT",
                  "            sleep %d &" % int(hang_seconds),
                  "            hang=$!",
                  '            echo "$$ $hang" >> %s' % pids,
                  '            wait "$hang"',
                  "            trap - TERM INT",
                  "            break ;;",
                  "        esac",
                  "    done ;;",
                  "esac"]
    if software_version is not None:
        lines += ['case "$1" in',
                  "%s)" % "|".join(DAEMONS),
                  '    kind="$1"',
                  "    shift",
                  '    exec %s "$kind" --testing-software-version %d "$@" ;;'
                  % (real, int(software_version)),
                  "esac"]
    lines.append('exec %s "$@"' % real)
    exe = os.path.join(path, "ozone")
    with open(exe + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(exe + ".tmp", stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP |
             stat.S_IROTH | stat.S_IXOTH)
    os.replace(exe + ".tmp", exe)
    return exe


def hung_pids(path):
    """[(shell pid, sleep pid)] of the starts that hung in the bin dir
    path of make_bin_dir(hang_args=...), oldest first."""
    try:
        with open(os.path.join(path, "hung.pids")) as f:
            return [tuple(int(x) for x in line.split())
                    for line in f if line.strip()]
    except FileNotFoundError:
        return []


def software_by_kind(c):
    """{kind: set of software versions} over the running nodes."""
    out = {}
    for n in c.nodes:
        if n.alive():
            out.setdefault(n.kind, set()).add(versions(n)[0])
    return out


def set_bits(node, old):
    """Next start of node runs the old (True) or new (False) release."""
    node.extra_args = [a for a in node.extra_args if a not in OLD]
    if old:
        node.extra_args = list(OLD) + node.extra_args


def restart(node, old, *extra, timeout=60):
    """Stops node (SIGTERM, drained), swaps its bits, starts and waits."""
    node.stop()
    set_bits(node, old)
    node.start(*extra)
    node.wait_ready(timeout=timeout)


def json_of(c, *args):
    return json.loads(c.ozone_cmd(*args, "--json").stdout)


def wait_pipeline(c, factor="THREE", timeout=90):
    def ready():
        ps = json_of(c, "admin", "pipeline", "list")
        return any(p["state"] == "OPEN" and p["replicationFactor"] == factor
                   for p in ps)
    wait_for(ready, timeout, "an OPEN %s pipeline" % factor, interval=0.2)


def wait_datanodes_healthy(c, n, timeout=90):
    def ready():
        dns = json_of(c, "admin", "datanode", "list")
        return len([d for d in dns if d["healthState"] == "HEALTHY"]) >= n
    wait_for(ready, timeout, "%d HEALTHY datanodes" % n, interval=0.2)


def versions(node):
    """(software, apparent) of a running node, from /version."""
    v = node.version_json()
    return v["softwareVersion"], v["apparentVersion"]


def apparent_by_kind(c):
    """{kind: set of apparent versions} over the running nodes."""
    out = {}
    for n in c.nodes:
        if n.alive():
            out.setdefault(n.kind, set()).add(versions(n)[1])
    return out


def digest(data):
    return hashlib.sha256(data).hexdigest()


def om_leader(c):
    """Node id of the OM leader ('' when unknown)."""
    for entry in json_of(c, "admin", "om", "roles"):
        for name, info in entry.items():
            if isinstance(info, dict) and info.get("serverRole") == "LEADER":
                return name
    return ""


def roll_oms(c, old, log=print, skip=()):
    """Restarts every OM on the old or new bits, followers first; the
    leader last, after handing leadership to an OM already rolled
    (DESIGN.md §8: a planned stop of the leader transfers first). OMs
    named in skip are on the target bits already. Yields after each OM."""
    if len(c.oms) == 1:
        log("%s %s" % ("downgrading" if old else "upgrading", c.oms[0].name))
        restart(c.oms[0], old, "--upgrade")
        yield c.oms[0]
        return
    leader = om_leader(c)
    order = [o for o in c.oms if o.name != leader and o.name not in skip] + \
        [o for o in c.oms if o.name == leader and o.name not in skip]
    done = [o for o in c.oms if o.name in skip]
    for om in order:
        if done and om_leader(c) == om.name:
            target = done[0].name
            c.ozone_cmd("admin", "om", "transfer", "-n", target)
            wait_for(lambda: om_leader(c) == target, 30,
                     "OM leadership on %s" % target, interval=0.2)
        log("%s %s" % ("downgrading" if old else "upgrading", om.name))
        restart(om, old, "--upgrade")
        done.append(om)
        yield om


def roll_cluster(c, log=print, passes=3, dwell=0.0):
    """Rolls the cluster new, old, new (passes=3; 1: only the upgrade),
    one node at a time in the order of DESIGN.md §2.1 (reversed for the
    downgrade). Yields a step name after each node, dwell seconds after
    it came back (so that clients work against every mixed state); the
    caller checks the cluster between steps. Shared with
    bench/upgrade.py."""
    def hdds_nodes():
        nodes = [c.scm] + ([c.recon] if c.recon is not None else [])
        return nodes + list(c.datanodes)

    def roll_hdds(old):
        nodes = hdds_nodes()
        if old:
            nodes.reverse()
        for n in nodes:
            log("%s %s" % ("downgrading" if old else "upgrading", n.name))
            restart(n, old)
            if n.kind == "datanode":
                wait_datanodes_healthy(c, len(c.datanodes))
            time.sleep(dwell)
            yield "%s %s" % ("old" if old else "new", n.name)

    def roll_om_step(old):
        for om in roll_oms(c, old, log):
            time.sleep(dwell)
            yield "%s %s" % ("old" if old else "new", om.name)

    for i in range(passes):
        old = i % 2 == 1
        if old:
            yield from roll_om_step(True)
            yield from roll_hdds(True)
        else:
            yield from roll_hdds(False)
            yield from roll_om_step(False)


class Workload:
    """8 threads of put/get/list against one bucket through the CLI."""

    def __init__(self, c, volume, bucket, tmp, threads=8, max_size=48 << 10,
                 seed=1):
        self.c = c
        self.volume = volume
        self.bucket = bucket
        self.tmp = tmp
        self.threads = threads
        self.max_size = max_size
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.workers = []
        self.ops = []         # (start_monotonic, op, seconds, ok)
        self.failures = []    # (op, key, text)
        self.corrupt = []     # (key, text)
        # key -> set of digests it may hold (more than one after a put
        # that failed: the old content or the new one).
        self.expected = {}

    def path(self, key):
        return "/%s/%s/%s" % (self.volume, self.bucket, key)

    def _run(self, op, key, *args):
        t0 = time.monotonic()
        r = self.c.ozone_cmd(*args, check=False, timeout=180)
        dt = time.monotonic() - t0
        with self.lock:
            self.ops.append((t0, op, dt, r.returncode == 0))
            if r.returncode != 0:
                self.failures.append((op, key, (r.stderr or r.stdout)[-400:]))
        return r

    def put(self, tid, key, rng):
        size = rng.randint(1, self.max_size)
        data = os.urandom(size)
        src = os.path.join(self.tmp, "put-%d" % tid)
        with open(src, "wb") as f:
            f.write(data)
        with self.lock:
            before = set(self.expected.get(key, set()))
        r = self._run("put", key, "sh", "key", "put", self.path(key), src)
        with self.lock:
            if r.returncode == 0:
                self.expected[key] = {digest(data)}
            else:
                self.expected[key] = before | {digest(data)}

    def get(self, tid, key):
        dst = os.path.join(self.tmp, "get-%d" % tid)
        if os.path.exists(dst):
            os.unlink(dst)
        with self.lock:
            want = set(self.expected.get(key, set()))
        r = self._run("get", key, "sh", "key", "get", self.path(key), dst)
        if r.returncode == 0:
            with open(dst, "rb") as f:
                got = digest(f.read())
            if got not in want:
                with self.lock:
                    self.corrupt.append((key, "content differs"))

    def list(self, tid):
        self._run("list", "w%d-" % tid, "sh", "key", "list",
                  "/%s/%s" % (self.volume, self.bucket), "--prefix",
                  "w%d-" % tid)

    def worker(self, tid):
        rng = random.Random(tid * 7919 + 1)
        mine = []
        n = 0
        while not self.stop_event.is_set():
            try:
                n = self.step(tid, rng, mine, n)
            except Exception as e:  # noqa: BLE001 - count it, keep going
                with self.lock:
                    self.failures.append(("worker", "", repr(e)))
                time.sleep(0.1)

    def step(self, tid, rng, mine, n):
        """One operation of thread tid; returns the next new-key number."""
        choice = rng.random()
        if not mine or choice < 0.4:
            if mine and rng.random() < 0.3:
                key = rng.choice(mine)   # overwrite
            else:
                key = "w%d-%d" % (tid, n)
                n += 1
                mine.append(key)
            self.put(tid, key, rng)
        elif choice < 0.85:
            self.get(tid, rng.choice(mine))
        else:
            self.list(tid)
        return n

    def start(self):
        for t in range(self.threads):
            th = threading.Thread(target=self.worker, args=(t,), daemon=True)
            th.start()
            self.workers.append(th)

    def stop(self):
        self.stop_event.set()
        for th in self.workers:
            th.join(timeout=300)

    def verify_all(self):
        """Reads every key once more; returns the list of bad keys."""
        bad = []
        dst = os.path.join(self.tmp, "verify")
        for key, want in sorted(self.expected.items()):
            r = self.c.ozone_cmd("sh", "key", "get", self.path(key), dst,
                                 check=False, timeout=120)
            if r.returncode != 0:
                if "KEY_NOT_FOUND" in r.stderr and len(want) > 1:
                    continue  # only failed puts ever wrote it
                bad.append((key, r.stderr.strip()[-200:]))
                continue
            with open(dst, "rb") as f:
                if digest(f.read()) not in want:
                    bad.append((key, "content differs"))
            os.unlink(dst)
        return bad

    def latencies(self, t_from=None, t_to=None):
        with self.lock:
            return sorted(dt for (t0, _, dt, ok) in self.ops
                          if ok and (t_from is None or t0 >= t_from) and
                          (t_to is None or t0 < t_to))

    def count(self):
        with self.lock:
            return len(self.ops)


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1,
            max(0, int(round(p / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]


# ---- the rolling-upgrade orchestrator (`ozone admin upgrade plan|run|
# journal`, admin-cli/orch.h) ----

# Exit status of `upgrade run` when the roll paused (orch.h).
ORCH_EXIT_PAUSED = 3


def journal(c, *extra):
    """`ozone admin upgrade journal --json` as a dict: lease, state,
    entries."""
    return json_of(c, "admin", "upgrade", "journal", *extra)


def steps_done(j):
    """Names of the nodes whose step is journaled OK, in journal order."""
    out = []
    for e in j["entries"]:
        if e["action"] == "step" and e["status"] == "OK" and \
                e["node"] not in out:
            out.append(e["node"])
    return out


def orch_args(new_bin=None, backend=None, *extra, dwell="1s",
              step_timeout="120s", max_error_rate="0.5", max_p99="60s"):
    """Arguments of `ozone admin upgrade run` (new_bin and backend None:
    for --resume / --rollback in extra) with test-sized knobs: a short
    dwell, and timeouts and gate thresholds generous enough that a loaded
    CI machine does not trip them (unless a test gives tighter ones)."""
    args = ["admin", "upgrade", "run"]
    if new_bin is not None:
        args += ["--new-bin", new_bin]
    if backend is not None:
        args += ["--backend", backend]
    args += ["--dwell", dwell, "--step-timeout", step_timeout,
             "--max-error-rate", max_error_rate, "--max-p99", max_p99,
             "--lease-ttl", "60s"]
    return args + list(extra)


def guard_cluster(test, c):
    """Makes sure c's daemons end even if this test process is killed
    before its cleanups run (meson's timeout: SIGTERM, then SIGKILL; the
    daemons run in their own sessions, the orchestrator's too): a watchdog
    in its own session stops the cluster (ozone_local.stop_from_pidfile)
    once this process is gone. The test's cleanup ends the watchdog."""
    code = (
        "import os, sys, time\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import ozone_local\n"
        "parent = int(sys.argv[2])\n"
        "while os.getppid() == parent:\n"
        "    time.sleep(0.5)\n"
        "ozone_local.stop_from_pidfile(sys.argv[3])\n")
    local_dir = os.path.dirname(os.path.abspath(
        sys.modules["ozone_local"].__file__))
    p = subprocess.Popen([sys.executable, "-c", code, local_dir,
                          str(os.getpid()), c.base_dir],
                         start_new_session=True, stdin=subprocess.DEVNULL,
                         env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))

    def end():
        p.kill()
        p.wait()
    test.addCleanup(end)


class OrchestratorProcess:
    """`ozone admin upgrade run ...` in the background (to kill it, or to
    run a second one meanwhile); stdout and stderr go to files."""

    def __init__(self, c, args, out_dir, name="orch"):
        self.out_path = os.path.join(out_dir, name + ".out")
        self.err_path = os.path.join(out_dir, name + ".err")
        with open(self.out_path, "wb") as out, \
                open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [c.ozone, "--conf", c.conf_dir] + list(args), stdout=out,
                stderr=err, stdin=subprocess.DEVNULL)

    @property
    def pid(self):
        return self.proc.pid

    def output(self):
        """(stdout, stderr) so far."""
        with open(self.out_path, errors="replace") as o, \
                open(self.err_path, errors="replace") as e:
            return o.read(), e.read()

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def kill(self):
        """kill -9 and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()


class KeyData:
    """Mixin for upgrade tests: keys put and read back through the CLI,
    with self.data mapping each key to the bytes it must hold (the test
    sets self.data = {} first). A key is a name in /VOL/BUCKET (class
    attributes) or a whole path starting with '/'."""
    VOL, BUCKET = "vol1", "bucket1"

    def sh(self, c, *args, check=True):
        return c.ozone_cmd("sh", *args, check=check, timeout=180)

    def key_path(self, key):
        if key.startswith("/"):
            return key
        return "/%s/%s/%s" % (self.VOL, self.BUCKET, key)

    def put(self, c, key, data):
        src = os.path.join(self.tmp, "src")
        with open(src, "wb") as f:
            f.write(data)
        self.sh(c, "key", "put", self.key_path(key), src)
        self.data[key] = data

    def validate(self, c):
        dst = os.path.join(self.tmp, "dst")
        for key, data in sorted(self.data.items()):
            if os.path.exists(dst):
                os.unlink(dst)
            self.sh(c, "key", "get", self.key_path(key), dst)
            with open(dst, "rb") as f:
                self.assertTrue(f.read() == data, "key %s differs" % key)
