#!/usr/bin/env python3
"""The rolling-upgrade orchestrator end to end (issue 7, admin-cli/orch.h,
docs/upgrade-orchestrator.md): `ozone admin upgrade plan|run|journal`
against a LocalCluster whose nodes run release directories made by
U.make_bin_dir(): OLD (`--testing-software-version 100`, release 1.0.0)
and NEW (the build itself, 1.1.0). The local backend stops and starts the
nodes through the cluster's manifest (cluster.json); the test adopts the
processes it started afterwards (LocalCluster.adopt()).

- a full roll under load (3 OMs, 4 datanodes, Recon, 8 client threads):
  the plan lists every node with the OM leader last, the run ends
  "Rolling upgrade done" (exit 0), every node runs the new software
  pre-finalized, no client operation failed, no key is lost or corrupt,
  the journal says DONE with one OK step per node, `upgrade status`
  names the run, and finalize works afterwards;
- a new OM binary that cannot start: the run pauses (exit 3) naming the
  OM, which is back on the old binary while the cluster keeps serving;
  --rollback puts every node back on the old software (ROLLED_BACK);
- kill -9 of the orchestrator mid-roll: --resume takes the lease over,
  skips the nodes already done and finishes, with the workload clean;
- a second orchestrator while one runs: refused with UPGRADE_LEASE_HELD
  naming the first one's pid; the first finishes;
- the safety gate: a --max-p99 of 1 ms that the cluster's own /prom
  latency histograms exceed under client load pauses the roll after the
  first step (exit 3, the gate's measured p99 and the threshold in the
  pause line, `gate` FAILED and PAUSED in the journal and in `upgrade
  status`), the node stays on the new binary, the cluster serves, and
  --resume with the normal thresholds finishes the roll (pre-finalized)
  with the workload clean;
- a datanode whose new binary starts but never answers (it hangs before
  its exec): the step times out after --step-timeout, the node is back on
  its old binary, the run pauses at that step naming the timeout, the
  cluster serves, and --rollback puts every node back on the old release;
- --dry-run of the systemd and compose backends: the steps in the order
  SCM, Recon, datanodes, OMs and what each would apply, with the cluster,
  the unit directory and the compose directory untouched.
"""
import json
import os
import re
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402
import upgrade_helpers as U  # noqa: E402
from oztest import wait_for  # noqa: E402

VOL, BUCKET = "orch", "data"
# `step 3/9 dn1 (DATANODE): stopped`
STEP_LINE = re.compile(r"^step (\d+)/(\d+) (\S+) \((SCM|RECON|DATANODE|OM)\)"
                       r": (.*)$", re.M)
KIND_RANK = {"scm": 0, "recon": 1, "datanode": 2, "om": 3}
RUN_TIMEOUT = 420


def _files(d):
    """{name: content} of the files in directory d."""
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _running(pid):
    """pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _fmt(r):
    return "exit %d\n--- stdout\n%s--- stderr\n%s" % (
        r.returncode, r.stdout, r.stderr)


class Orchestrator(oztest.OzoneTestCase):

    # ---- set-up ----

    def setUp(self):
        super().setUp()
        self.old_dir = os.path.join(self.tmp, "release-1.0.0")
        self.new_dir = os.path.join(self.tmp, "release-1.1.0")
        self.old_exe = U.make_bin_dir(self.old_dir, oztest.OZONE,
                                      software_version=100)
        self.new_exe = U.make_bin_dir(self.new_dir, oztest.OZONE)

    def start_cluster(self, datanodes=3, oms=1, recon=False):
        """A cluster on the old release; every node's binary is OLD."""
        c = oztest.LocalCluster(os.path.join(self.tmp, "cluster"),
                                oztest.OZONE, datanodes=datanodes, oms=oms,
                                recon=recon, conf=dict(U.FAST_CONF))
        self.addCleanup(c.stop)
        U.guard_cluster(self, c)
        for n in c.nodes:
            n.binary = self.old_exe
        c.start()
        U.wait_datanodes_healthy(c, datanodes)
        U.wait_pipeline(c)
        if oms > 1:
            wait_for(lambda: U.om_leader(c), 30, "an OM leader")
        c.ozone_cmd("sh", "volume", "create", "/" + VOL)
        c.ozone_cmd("sh", "bucket", "create", "/%s/%s" % (VOL, BUCKET))
        for n in c.nodes:
            self.assertEqual(U.versions(n)[0], 100, n.name)
        return c

    def workload(self, c, threads=8):
        wdir = os.path.join(self.tmp, "work")
        os.makedirs(wdir)
        w = U.Workload(c, VOL, BUCKET, wdir, threads=threads)
        w.start()
        self.addCleanup(w.stop)
        wait_for(lambda: w.count() >= 40, 60, "the workload to run")
        return w

    def run_orch(self, c, *args, timeout=RUN_TIMEOUT):
        return c.ozone_cmd(*args, check=False, timeout=timeout)

    # ---- checks ----

    def assert_on(self, c, exe, software, apparent=None):
        """Every node runs exe with software version software (and the
        given apparent versions: {name: version})."""
        c.adopt()
        for n in c.nodes:
            self.assertTrue(n.alive(), "%s is not running:\n%s" % (
                n.name, n.log_tail()))
            self.assertEqual(n.binary, exe, n.name)
            sw, app = U.versions(n)
            self.assertEqual(sw, software, n.name)
            if apparent is not None:
                self.assertEqual(app, apparent[n.name], n.name)

    def assert_step_order(self, c, text, leader_last=None):
        """The step lines of text cover every node once, in the order
        SCM, Recon, datanodes, OMs (leader_last: that OM is the last)."""
        order = []
        for m in STEP_LINE.finditer(text):
            if m.group(3) not in order:
                order.append(m.group(3))
        self.assertEqual(sorted(order), sorted(n.name for n in c.nodes),
                         text)
        kinds = {n.name: n.kind for n in c.nodes}
        ranks = [KIND_RANK[kinds[name]] for name in order]
        self.assertEqual(ranks, sorted(ranks), "order %s:\n%s" % (order,
                                                                  text))
        if leader_last is not None:
            self.assertEqual(order[-1], leader_last, text)
        return order

    def assert_clean(self, w):
        w.stop()
        self.assertEqual(w.failures, [])
        self.assertEqual(w.corrupt, [])
        self.assertEqual(w.verify_all(), [])

    def put_get(self, c, name):
        src = os.path.join(self.tmp, name + ".in")
        dst = os.path.join(self.tmp, name + ".out")
        data = os.urandom(100000)
        with open(src, "wb") as f:
            f.write(data)
        path = "/%s/%s/%s" % (VOL, BUCKET, name)
        c.ozone_cmd("sh", "key", "put", path, src, timeout=120)
        c.ozone_cmd("sh", "key", "get", "--force", path, dst, timeout=120)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)

    # ---- a: the whole roll under load ----

    def test_full_roll_under_load(self):
        c = self.start_cluster(datanodes=4, oms=3, recon=True)
        leader = U.om_leader(c)
        apparent = {n.name: U.versions(n)[1] for n in c.nodes}
        self.assertEqual(U.journal(c)["state"], "NONE")

        # The plan: every node once, SCM -> Recon -> DNs -> OMs, leader
        # last; nothing changes.
        r = c.ozone_cmd("admin", "upgrade", "plan", "--new-bin",
                        self.new_dir, "--backend", "local")
        for n in c.nodes:
            self.assertIn(n.name, r.stdout)
        plan = json.loads(c.ozone_cmd("admin", "upgrade", "plan",
                                      "--new-bin", self.new_dir,
                                      "--backend", "local", "--json").stdout)
        steps = plan.get("steps")
        self.assertIsInstance(steps, list, plan)
        names = [s.get("node", s.get("name")) for s in steps]
        self.assertEqual(sorted(names), sorted(n.name for n in c.nodes),
                         plan)
        kinds = {n.name: n.kind for n in c.nodes}
        ranks = [KIND_RANK[kinds[x]] for x in names]
        self.assertEqual(ranks, sorted(ranks), names)
        self.assertEqual(names[-1], leader, names)
        self.assertEqual(U.journal(c)["state"], "NONE")

        w = self.workload(c)
        t0 = time.monotonic()
        r = self.run_orch(c, *U.orch_args(self.new_dir, "local"))
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, _fmt(r))
        self.assertIn("Rolling upgrade done", r.stdout)
        order = self.assert_step_order(c, r.stdout)
        self.assertEqual(order[-1], leader, r.stdout)
        print("roll of %d nodes under load: %.1f s, %d client ops" % (
            len(c.nodes), took, w.count()), file=sys.stderr)

        # Every node on the new release, pre-finalized.
        self.assert_on(c, self.new_exe, 102, apparent)
        self.assertEqual(U.apparent_by_kind(c)["om"], {100})
        self.assertEqual(U.apparent_by_kind(c)["datanode"], {100})
        self.assertEqual(w.failures, [])

        j = U.journal(c)
        self.assertEqual(j["state"], "DONE", j)
        self.assertIsNone(j["lease"], "the lease is released at the end")
        self.assertEqual(sorted(U.steps_done(j)),
                         sorted(n.name for n in c.nodes), j)
        for e in j["entries"]:
            self.assertEqual(e["backend"], "local", e)
            if e["action"] == "swap":
                self.assertEqual(e["toBin"].rstrip("/"), self.new_dir, e)
                self.assertEqual(e["fromBin"].rstrip("/"), self.old_dir, e)
        run_id = j["entries"][-1]["runId"]
        self.assertTrue(run_id)
        r = c.ozone_cmd("admin", "upgrade", "status")
        self.assertIn(run_id, r.stdout, "upgrade status does not name the "
                      "last run")

        # Finalize still works after the roll; the workload stays clean.
        r = c.ozone_cmd("admin", "upgrade", "finalize", "--wait",
                        "--timeout", "120", timeout=180)
        self.assertIn("Cluster finalization is done.", r.stdout)
        wait_for(lambda: U.apparent_by_kind(c)["om"] == {U.NEW_OM}, 60,
                 "every OM finalized")
        self.assert_clean(w)

    # ---- b: the new OM binary does not start ----

    def test_broken_om_binary_pauses_then_rollback(self):
        broken_dir = os.path.join(self.tmp, "release-broken")
        U.make_bin_dir(broken_dir, oztest.OZONE, broken_kinds=("om",))
        c = self.start_cluster(datanodes=3, oms=3)
        r = self.run_orch(c, *U.orch_args(broken_dir, "local"))
        self.assertEqual(r.returncode, U.ORCH_EXIT_PAUSED, _fmt(r))
        self.assertIn("paused", r.stderr)

        j = U.journal(c)
        self.assertEqual(j["state"], "PAUSED", j)
        failed = [e for e in j["entries"] if e["status"] == "FAILED"]
        self.assertTrue(failed, j)
        om_name = failed[0]["node"]
        self.assertEqual(failed[0]["kind"], "OM", failed[0])
        self.assertGreater(failed[0]["step"], 0, failed[0])
        self.assertIn(om_name, r.stderr)
        self.assertIn("step %d/" % failed[0]["step"], r.stderr)
        # Everything before the OMs is on the new release.
        self.assertEqual(sorted(U.steps_done(j)),
                         sorted(n.name for n in [c.scm] + c.datanodes), j)

        # The broken OM runs its old binary again and the cluster serves.
        c.adopt()
        om = next(o for o in c.oms if o.name == om_name)
        self.assertTrue(om.alive(), om.log_tail())
        self.assertEqual(om.binary, self.old_exe)
        wait_for(lambda: U.versions(om)[0] == 100, 60,
                 "%s back on release 1.0.0" % om_name)
        for o in c.oms:
            self.assertEqual(U.versions(o)[0], 100, o.name)
        self.put_get(c, "after-pause")

        # Roll back: everything on the old release again.
        r = self.run_orch(c, *U.orch_args(None, None, "--rollback"))
        self.assertEqual(r.returncode, 0, _fmt(r))
        self.assert_on(c, self.old_exe, 100)
        self.assertEqual(U.journal(c)["state"], "ROLLED_BACK")
        self.put_get(c, "after-rollback")

    # ---- c: the orchestrator is killed mid-roll ----

    def test_killed_orchestrator_resumes(self):
        c = self.start_cluster(datanodes=4, oms=1)
        w = self.workload(c)
        first = U.OrchestratorProcess(c, U.orch_args(self.new_dir, "local"),
                                      self.tmp, "first")
        self.addCleanup(first.kill)

        def two_done():
            if first.proc.poll() is not None:
                raise AssertionError("the orchestrator ended early:\n%s%s"
                                     % first.output())
            return len(U.steps_done(U.journal(c))) >= 2
        wait_for(two_done, 240, "two steps done", interval=0.2)
        first.kill()
        j = U.journal(c)
        self.assertEqual(j["state"], "RUNNING", j)
        self.assertIsNotNone(j["lease"], j)
        killed_holder = j["lease"]["holder"]
        self.assertIn(str(first.pid), killed_holder)
        done = U.steps_done(j)
        seq_at_kill = j["entries"][-1]["seq"]
        c.adopt()
        pids = {n.name: n.proc.pid for n in c.nodes if n.name in done}

        r = self.run_orch(c, *U.orch_args(None, None, "--resume"))
        self.assertEqual(r.returncode, 0, _fmt(r))
        self.assertIn("Rolling upgrade done", r.stdout)
        # It says whose lease it took over.
        self.assertIn(killed_holder, r.stdout + r.stderr)
        self.assert_on(c, self.new_exe, 102)
        # The nodes done before the kill were not restarted.
        for name, pid in pids.items():
            node = next(n for n in c.nodes if n.name == name)
            self.assertEqual(node.proc.pid, pid, name)
        j = U.journal(c, "--all")
        self.assertEqual(j["state"], "DONE", j)
        after = [e for e in j["entries"] if e["seq"] > seq_at_kill]
        self.assertTrue(after, j)
        self.assertTrue(all(e["holder"] != killed_holder for e in after),
                        "entries after the resume come from the new holder")
        self.assertTrue(any(e["action"] == "run" and "resum" in
                            (e["detail"] + e["status"]).lower()
                            for e in after),
                        "the journal does not show the resume: %s" % after)
        for e in after:
            if e["action"] in ("stop", "start"):
                self.assertNotIn(e["node"], done, e)
        self.assertEqual(sorted(U.steps_done(j)),
                         sorted(n.name for n in c.nodes))
        self.assert_clean(w)

    # ---- d: a second orchestrator is refused ----

    def test_second_orchestrator_refused(self):
        """While the first one rolls SCM and the datanodes (one OM: while
        it restarts nobody can read the lease), every other `upgrade run`
        is refused, SCM's restart included."""
        c = self.start_cluster(datanodes=3, oms=1)
        first = U.OrchestratorProcess(
            c, U.orch_args(self.new_dir, "local", dwell="2s"), self.tmp,
            "first")
        self.addCleanup(first.kill)

        def leased():
            if first.proc.poll() is not None:
                raise AssertionError("the orchestrator ended early:\n%s%s"
                                     % first.output())
            return U.journal(c)["lease"]
        lease = wait_for(leased, 60, "the first orchestrator's lease",
                         interval=0.1)
        self.assertIn(str(first.pid), lease["holder"])
        refused = 0
        while first.proc.poll() is None:
            r = self.run_orch(c, *U.orch_args(self.new_dir, "local"),
                              timeout=60)
            jr = c.ozone_cmd("admin", "upgrade", "journal", "--json",
                             check=False)
            if jr.returncode != 0:
                break  # the OM is down: its step began
            j = json.loads(jr.stdout)
            if any(e["kind"] == "OM" for e in j["entries"]):
                break  # the OM step began: the lease may be unreadable
            self.assertEqual(r.returncode, 1, "attempt %d while %s:\n%s" % (
                refused + 1, j["entries"][-1]["detail"], _fmt(r)))
            self.assertIn("UPGRADE_LEASE_HELD", r.stderr)
            self.assertIn(str(first.pid), r.stderr)
            refused += 1
        self.assertGreater(refused, 0)
        # The refused ones changed nothing: the first finishes its roll.
        self.assertEqual(first.wait(RUN_TIMEOUT), 0,
                         "%s%s" % first.output())
        out, _ = first.output()
        self.assertIn("Rolling upgrade done", out)
        self.assert_on(c, self.new_exe, 102)
        j = U.journal(c)
        self.assertEqual(j["state"], "DONE", j)
        self.assertEqual({e["holder"] for e in j["entries"]},
                         {lease["holder"]})
        print("second orchestrator refused %d times" % refused,
              file=sys.stderr)

    # ---- e: the safety gate trips on the cluster's real p99 ----

    def test_safety_gate_pauses_then_resume(self):
        """--max-p99 1ms under client load: puts wait on datanode writes
        and, while SCM restarts, on block allocations, so the p99 the gate
        computes from the OM and datanode /prom histograms over the first
        step's window is well above 1 ms (tens of ms here); --max-error-rate
        1 keeps the error budget out of it. --resume with the usual
        thresholds then finishes."""
        c = self.start_cluster(datanodes=3, oms=1)
        order = [st["node"] for st in U.json_of(
            c, "admin", "upgrade", "plan", "--new-bin", self.new_dir,
            "--backend", "local")["steps"]]
        w = self.workload(c, threads=3)
        r = self.run_orch(c, *U.orch_args(self.new_dir, "local", dwell="3s",
                                          max_p99="1ms",
                                          max_error_rate="1"))
        self.assertEqual(r.returncode, U.ORCH_EXIT_PAUSED, _fmt(r))
        self.assertNotIn("Rolling upgrade done", r.stdout)
        steps = len(c.nodes)
        m = re.search(r"rolling upgrade paused at step (\d+)/(\d+) \((\S+)\):"
                      r" safety gate: (.*)", r.stderr)
        self.assertIsNotNone(m, _fmt(r))
        step, node = int(m.group(1)), m.group(3)
        self.assertEqual(int(m.group(2)), steps, _fmt(r))
        # The pause names what the gate measured and the threshold.
        pm = re.search(r"p99 latency (\d+) ms is above "
                       r"ozone\.upgrade\.gate\.max\.p99 1 ms", m.group(4))
        self.assertIsNotNone(pm, _fmt(r))
        self.assertGreater(int(pm.group(1)), 1, _fmt(r))
        self.assertIn("--resume", r.stderr)
        print("gate: %s" % m.group(0), file=sys.stderr)
        self.assertIn("step %d/%d %s" % (step, steps, node), r.stdout)
        self.assertIn("gate failed", r.stdout)

        # The journal: the gate FAILED at that step, the run PAUSED there,
        # every earlier step done, the lease released.
        j = U.journal(c)
        self.assertEqual(j["state"], "PAUSED", j)
        self.assertIsNone(j["lease"], j)
        failed = [e for e in j["entries"] if e["status"] == "FAILED"]
        self.assertEqual([(e["action"], e["node"], e["step"])
                          for e in failed], [("gate", node, step)], j)
        self.assertIn("p99 latency", failed[0]["detail"])
        paused = [e for e in j["entries"] if e["action"] == "run" and
                  e["status"] == "PAUSED"]
        self.assertEqual(len(paused), 1, j)
        self.assertIn(node, paused[0]["detail"])
        self.assertEqual(len(U.steps_done(j)), step - 1, j)
        st = c.ozone_cmd("admin", "upgrade", "status").stdout
        self.assertRegex(st, r"Rolling upgrade: run \S+ .*PAUSED at step "
                         r"%d/%d %s \(gate\)" % (step, steps,
                                                  re.escape(node)))
        self.assertIn("--resume", st)

        # The node that tripped the gate stays on the new binary; the
        # nodes after it were not touched; the cluster serves.
        self.assertEqual(order[step - 1], node, order)
        c.adopt()
        for i, name in enumerate(order):
            n = next(x for x in c.nodes if x.name == name)
            self.assertTrue(n.alive(), "%s:\n%s" % (name, n.log_tail()))
            on_new = i < step
            self.assertEqual(n.binary, self.new_exe if on_new else
                             self.old_exe, name)
            self.assertEqual(U.versions(n)[0], 102 if on_new else 100, name)
        self.put_get(c, "after-gate-pause")
        self.assertEqual(w.failures, [])

        # --resume with the usual thresholds: the paused node is checked
        # and gated again without a restart, the rest are rolled.
        pid = next(n for n in c.nodes if n.name == node).proc.pid
        r = self.run_orch(c, *U.orch_args(None, None, "--resume"))
        self.assertEqual(r.returncode, 0, _fmt(r))
        self.assertIn("Rolling upgrade done", r.stdout)
        self.assertIn("pre-finalized", r.stdout)
        self.assert_on(c, self.new_exe, 102)
        self.assertEqual(next(n for n in c.nodes if n.name == node).proc.pid,
                         pid, "%s was restarted again by --resume" % node)
        self.assertEqual(U.apparent_by_kind(c)["om"], {100})
        self.assertEqual(U.apparent_by_kind(c)["datanode"], {100})
        j = U.journal(c)
        self.assertEqual(j["state"], "DONE", j)
        self.assertEqual(sorted(U.steps_done(j)),
                         sorted(n.name for n in c.nodes), j)
        self.assertTrue(any(e["action"] == "gate" and e["status"] == "OK" and
                            e["node"] == node for e in j["entries"]), j)
        self.assert_clean(w)

    # ---- f: a node that does not come back within its step timeout ----

    def test_node_not_back_within_step_timeout_then_rollback(self):
        """dn2's new binary starts and runs with dn2's arguments but never
        serves (it sleeps before its exec): after --step-timeout the
        orchestrator stops it, starts dn2 on its old binary again and
        pauses at dn2's step; --rollback undoes SCM and dn1."""
        hang_dir = os.path.join(self.tmp, "release-hang")
        U.make_bin_dir(hang_dir, oztest.OZONE,
                       hang_args=("hdds.datanode.id=dn2",), hang_seconds=600)
        self.addCleanup(self._end_hung, hang_dir)
        c = self.start_cluster(datanodes=3, oms=1)
        self.put_get(c, "before-roll")
        t0 = time.monotonic()
        r = self.run_orch(c, *U.orch_args(hang_dir, "local",
                                          step_timeout="15s"))
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, U.ORCH_EXIT_PAUSED, _fmt(r))
        # The hang really happened, and only for dn2's one start.
        hung = U.hung_pids(hang_dir)
        self.assertEqual(len(hung), 1, hung)
        self.assertGreaterEqual(took, 15, _fmt(r))
        steps = len(c.nodes)
        dn2_step = 1 + [n.name for n in c.datanodes].index("dn2") + 1
        m = re.search(r"rolling upgrade paused at step (\d+)/(\d+) \(dn2\): "
                      r"(.*)", r.stderr)
        self.assertIsNotNone(m, _fmt(r))
        self.assertEqual((int(m.group(1)), int(m.group(2))),
                         (dn2_step, steps), _fmt(r))
        self.assertIn("did not come back on %s" % hang_dir, m.group(3))
        self.assertIn("after 15s (the step timeout)", m.group(3))
        self.assertIn("--rollback", r.stderr)
        print("step timeout (run took %.1f s): %s" % (took, m.group(0)),
              file=sys.stderr)

        # The journal: wait FAILED for dn2, restarted on the old binary.
        j = U.journal(c)
        self.assertEqual(j["state"], "PAUSED", j)
        self.assertIsNone(j["lease"], j)
        failed = [e for e in j["entries"] if e["status"] == "FAILED"]
        self.assertEqual([(e["action"], e["node"], e["step"])
                          for e in failed], [("wait", "dn2", dn2_step)], j)
        self.assertIn("restarted on %s" % self.old_dir, failed[0]["detail"])
        self.assertIn("step timeout", failed[0]["detail"])
        self.assertEqual(U.steps_done(j), ["scm", "dn1"], j)
        st = c.ozone_cmd("admin", "upgrade", "status").stdout
        self.assertRegex(st, r"Rolling upgrade: run \S+ .*PAUSED at step "
                         r"%d/%d dn2 \(wait\)" % (dn2_step, steps))

        # The hung process and its sleep are gone; dn2 runs the old
        # binary again; SCM and dn1 stay on the new one; the cluster
        # serves the key written before and new ones.
        for pid in hung[0]:
            wait_for(lambda p=pid: not _running(p), 10,
                     "the hung start %d to end" % pid)
        c.adopt()
        for n in c.nodes:
            self.assertTrue(n.alive(), "%s:\n%s" % (n.name, n.log_tail()))
            new = n.name in ("scm", "dn1")
            self.assertEqual(n.binary, os.path.join(hang_dir, "ozone")
                             if new else self.old_exe, n.name)
            self.assertEqual(U.versions(n)[0], 102 if new else 100, n.name)
        U.wait_datanodes_healthy(c, 3)
        self.get_existing(c, "before-roll")
        U.wait_pipeline(c)
        self.put_get(c, "after-timeout")

        # Roll back: SCM and dn1 go back, in reverse order.
        r = self.run_orch(c, *U.orch_args(None, None, "--rollback"))
        self.assertEqual(r.returncode, 0, _fmt(r))
        self.assertIn("Rollback done", r.stdout)
        rolled = [mm.group(3) for mm in STEP_LINE.finditer(r.stdout)]
        self.assertEqual(list(dict.fromkeys(rolled)), ["dn1", "scm"],
                         r.stdout)
        self.assert_on(c, self.old_exe, 100)
        self.assertEqual(U.journal(c)["state"], "ROLLED_BACK")
        self.assertEqual(len(U.hung_pids(hang_dir)), 1)
        self.get_existing(c, "after-timeout")
        self.put_get(c, "after-rollback")

    def get_existing(self, c, name):
        """The key put_get(c, name) wrote reads back whole."""
        dst = os.path.join(self.tmp, name + ".again")
        c.ozone_cmd("sh", "key", "get", "--force",
                    "/%s/%s/%s" % (VOL, BUCKET, name), dst, timeout=120)
        with open(os.path.join(self.tmp, name + ".in"), "rb") as a, \
                open(dst, "rb") as b:
            self.assertEqual(a.read(), b.read())

    @staticmethod
    def _end_hung(hang_dir):
        """Cleanup: a hung start the orchestrator did not end (the test
        failed before) is ended by its pids, if they still are ours."""
        for pids in U.hung_pids(hang_dir):
            for pid in pids:
                cmd = _cmdline(pid)
                if _running(pid) and (hang_dir.encode() in cmd or
                                      cmd.startswith(b"sleep\0")):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass

    # ---- g: dry runs of the systemd and compose backends ----

    def test_dry_run_systemd_and_compose(self):
        c = self.start_cluster(datanodes=3, oms=1, recon=True)
        pids = {n.name: n.proc.pid for n in c.nodes}
        with open(c.manifest_path) as f:
            manifest = f.read()

        unit_dir = os.path.join(self.tmp, "units")
        shutil.copytree(os.path.join(oztest.SRC, "deploy", "systemd"),
                        unit_dir)
        before = sorted(os.walk(unit_dir))
        r = self.run_orch(c, *U.orch_args(self.new_dir, "systemd"),
                          "--systemd-unit-dir", unit_dir, "--dry-run")
        self.assertEqual(r.returncode, 0, _fmt(r))
        self.assert_step_order(c, r.stdout)
        out = r.stdout
        units = ["ozone-scm.service", "ozone-recon.service",
                 "ozone-datanode.service", "ozone-om@om1.service"]
        pos = [out.find(u) for u in units]
        self.assertTrue(all(p >= 0 for p in pos), "%s\n%s" % (pos, out))
        self.assertEqual(pos, sorted(pos), out)
        self.assertIn("50-ozone-upgrade.conf", out)
        self.assertIn(self.new_dir, out)
        self.assertEqual(sorted(os.walk(unit_dir)), before,
                         "a dry run wrote to the unit directory")

        compose_dir = os.path.join(self.tmp, "compose")
        shutil.copytree(os.path.join(oztest.SRC, "deploy", "compose"),
                        compose_dir)
        before = _files(compose_dir)
        r = self.run_orch(c, *U.orch_args("ozone-c:next", "compose"),
                          "--compose-dir", compose_dir, "--dry-run")
        self.assertEqual(r.returncode, 0, _fmt(r))
        self.assert_step_order(c, r.stdout)
        out = r.stdout
        variables = ["OZONE_SCM_IMAGE", "OZONE_RECON_IMAGE",
                     "OZONE_DN1_IMAGE", "OZONE_DN2_IMAGE", "OZONE_DN3_IMAGE",
                     "OZONE_OM1_IMAGE"]
        pos = [out.find(v) for v in variables]
        self.assertTrue(all(p >= 0 for p in pos), "%s\n%s" % (pos, out))
        self.assertEqual(pos, sorted(pos), out)
        self.assertIn("ozone-c:next", out)
        self.assertIn("--no-deps", out)
        self.assertEqual(_files(compose_dir), before,
                         "a dry run wrote to the compose directory")

        # Nothing of the cluster changed.
        self.assertEqual(c.adopt(), [])
        for n in c.nodes:
            self.assertTrue(n.alive(), n.name)
            self.assertEqual(n.proc.pid, pids[n.name], n.name)
            self.assertEqual(U.versions(n)[0], 100, n.name)
        with open(c.manifest_path) as f:
            self.assertEqual(f.read(), manifest)
        j = U.journal(c)
        self.assertEqual(j["state"], "NONE", j)
        self.assertIsNone(j["lease"], j)


if __name__ == "__main__":
    oztest.main()
