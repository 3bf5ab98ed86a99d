"""`ozone admin upgrade plan` against a live cluster (issue 7; DESIGN.md
§2.1, §6.6, §8).

One cluster (SCM, Recon, 4 datanodes, 3 OMs) starts on the old release
(`--testing-software-version 100`, release 1.0.0) and is walked through
the states an operator meets: fresh (every node a step, the OM leader
last after a leadership transfer), partly rolled (SCM and one datanode on
the new bits: those steps already done; refused until Recon, which takes
the datanodes' reports, is rolled too), an invalid mixed state (an OM on
the new bits while datanodes are old: refused, naming the nodes), and a
datanode SCM has marked DEAD (refused). `--new-bin` is a directory holding
a symlink `ozone` to this build, which is release 1.1.0.

Also checked: ozone_rpc_server_errors_total, which the safety gate reads,
does not count a client's mistake (KEY_NOT_FOUND) while
ozone_rpc_errors_total does.
"""
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import grpc  # noqa: E402  (Debian python3-grpcio)
import grpc_stubs  # noqa: E402
import oztest  # noqa: E402
import upgrade_helpers as U  # noqa: E402
from oztest import http_get, wait_for  # noqa: E402

NEW_RELEASE = "1.1.0"


def step_lines(text):
    """[(index, name, rest)] of the numbered step lines of a text plan."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^\s*(\d+)\. (\S+) \(([^)]*)\)\s+(.*)$", line)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3),
                        m.group(4)))
    return out


def prom_value(text, name, labels):
    """Value of the series name{labels...} (all given labels must match);
    0 when absent."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all('%s="%s"' % kv in line for kv in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


UPGRADE_SVC = "/ozone.om.OmUpgradeService/"


class UpgradePlan(oztest.OzoneTestCase):

    @classmethod
    def setUpClass(cls):
        cls.gen = tempfile.mkdtemp(prefix="oztest-pb2-")
        mods = grpc_stubs.generate(
            oztest.SRC, cls.gen,
            protos=("common.proto", "hdds.proto", "om.proto"))
        cls.pb = mods["common_pb2"]
        cls.om = mods["om_pb2"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.gen, True)

    def hdr(self):
        return self.pb.VersionHeader(component=self.pb.CLIENT,
                                     node_id="pytest", software_version=100,
                                     apparent_version=100)

    def orch_call(self, leader, method, req, resp_cls):
        """A call of OmUpgradeService on the OM leader, the way an
        orchestrator (`upgrade run`) makes it."""
        with grpc.insecure_channel(leader.rpc_address) as ch:
            resp, _ = grpc_stubs.unary(ch, UPGRADE_SVC + method, req,
                                       resp_cls, timeout=10.0)
        return resp

    def lease(self, leader, action):
        om = self.om
        return self.orch_call(leader, "UpgradeLease", om.OmUpgradeLeaseRequest(
            hdr=self.hdr(), action=action, holder="pytest:1:beef",
            host="testhost", pid=4242, run_id="R-test", ttl_ms=60000),
            om.OmUpgradeLeaseResponse)

    def journal_step(self, leader, step, node, kind, seconds):
        """A step journaled as taking `seconds` (BEGIN, wait, OK); the OM
        stamps each entry with its own clock."""
        om = self.om
        for status in ("BEGIN", "OK"):
            e = om.OmUpgradeJournalEntry(
                run_id="R-test", holder="pytest:1:beef", step=step, steps=9,
                node=node, kind=kind, action="step", status=status,
                backend="local")
            self.orch_call(leader, "UpgradeJournalAppend",
                           om.OmUpgradeJournalAppendRequest(
                               hdr=self.hdr(), holder="pytest:1:beef",
                               entries=[e]),
                           om.OmUpgradeJournalAppendResponse)
            if status == "BEGIN":
                time.sleep(seconds)

    def new_bin(self):
        d = os.path.join(self.tmp, "new-bin")
        os.makedirs(d, exist_ok=True)
        link = os.path.join(d, "ozone")
        if not os.path.islink(link):
            os.symlink(os.path.abspath(oztest.OZONE), link)
        return d

    def plan(self, c, *extra, json_out=False):
        args = ["admin", "upgrade", "plan", "--new-bin", self.new_bin()]
        args += list(extra)
        if json_out:
            args.append("--json")
        return c.ozone_cmd(*args, check=False, timeout=60)

    def plan_json(self, c):
        r = self.plan(c, json_out=True)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return r, json.loads(r.stdout)

    def test_new_bin_errors(self):
        """A wrong --new-bin fails before the cluster is asked anything
        (no cluster runs here)."""
        missing = os.path.join(self.tmp, "no-such-dir")
        r = self.run_ozone("admin", "upgrade", "plan", "--new-bin", missing)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("new binary directory '%s' does not exist" % missing,
                      r.stderr)
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty)
        r = self.run_ozone("admin", "upgrade", "plan", "--new-bin", empty)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no executable 'ozone' in '%s'" % empty, r.stderr)
        r = self.run_ozone("admin", "upgrade", "plan", "--backend", "ansible")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown backend 'ansible'", r.stderr)
        r = self.run_ozone("admin", "upgrade", "plan", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--new-bin DIR|TAG", r.stdout)
        # Every upgrade command is listed where an operator looks first.
        r = self.run_ozone("admin", "--help")
        self.assertIn("upgrade status | plan | run | journal | finalize",
                      r.stdout)
        r = self.run_ozone("admin", "upgrade", "--help")
        self.assertEqual(r.returncode, 0)
        for sub in ("status", "plan", "run", "journal", "finalize"):
            self.assertRegex(r.stdout, r"(?m)^  %s\b" % sub)
            h = self.run_ozone("admin", "upgrade", sub, "--help")
            self.assertEqual(h.returncode, 0, sub)
            self.assertIn("Usage: ozone admin upgrade %s" % sub, h.stdout)

    def test_plan_through_a_roll(self):
        conf = dict(U.FAST_CONF)
        c = oztest.LocalCluster(os.path.join(self.tmp, "cluster"),
                                oztest.OZONE, datanodes=4, oms=3,
                                recon=True, conf=conf)
        self.addCleanup(c.stop)
        for n in c.nodes:
            U.set_bits(n, True)
        c.start()
        U.wait_datanodes_healthy(c, 4)
        U.wait_pipeline(c)
        leader = wait_for(lambda: U.om_leader(c), 30, "an OM leader")
        followers = sorted(o.name for o in c.oms if o.name != leader)
        dns = sorted(d.name for d in c.datanodes)
        order = ["scm", "recon"] + dns + followers + [leader]

        # ---- fresh cluster on the old release ----
        r = self.plan(c)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("Rolling upgrade plan: 1.0.0 -> %s (%s), backend local"
                      % (NEW_RELEASE, self.new_bin()), out)
        self.assertIn("4 datanodes, 3 OMs (leader %s), Recon" % leader, out)
        steps = step_lines(out)
        self.assertEqual([s[1] for s in steps], order, out)
        self.assertEqual([s[0] for s in steps], list(range(1, 10)))
        self.assertEqual(steps[-1][2], "OM, leader")
        self.assertIn("transfer leadership to an upgraded follower first",
                      out.split("%s (OM, leader)" % leader)[1])
        self.assertIn("Point of no return: 'ozone admin upgrade finalize'",
                      out)
        self.assertRegex(out, r"Estimated time: (\d+m )?\d+s \(defaults; "
                              r"no earlier roll measured\)")
        r, plan = self.plan_json(c)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(plan["refused"])
        self.assertEqual(plan["refusal"], "")
        self.assertEqual(plan["target"]["release"], NEW_RELEASE)
        self.assertTrue(plan["target"]["known"])
        self.assertEqual(plan["target"]["softwareVersions"]["OM"], U.NEW_OM)
        self.assertEqual(plan["cluster"]["omLeader"], leader)
        self.assertEqual([s["node"] for s in plan["steps"]], order)
        self.assertEqual([s["index"] for s in plan["steps"]],
                         list(range(1, 10)))
        for s in plan["steps"]:
            self.assertFalse(s["alreadyDone"], s)
            self.assertEqual(s["transferLeader"], s["node"] == leader, s)
            self.assertGreater(s["estimateMs"], 0)
            self.assertTrue(s["checksBefore"] and s["checksAfter"], s)
        kinds = [s["kind"] for s in plan["steps"]]
        self.assertEqual(kinds, ["SCM", "RECON"] + ["DATANODE"] * 4 +
                         ["OM"] * 3)
        self.assertEqual(plan["estimateMs"],
                         sum(s["estimateMs"] for s in plan["steps"]))
        self.assertEqual(plan["estimateBasis"], "defaults")
        nodes = {n["name"]: n for n in plan["cluster"]["nodes"]}
        self.assertEqual(sorted(nodes), sorted(order))
        for n in nodes.values():
            self.assertTrue(n["reachable"], n)
            self.assertEqual(n["release"], "1.0.0", n)
            self.assertNotEqual(n["httpAddress"], "", n)
        fresh_estimate = plan["estimateMs"]

        # ---- an earlier roll measured SCM and datanode steps; an
        # orchestrator holds the lease now ----
        om_leader = next(o for o in c.oms if o.name == leader)
        self.lease(om_leader, self.om.LEASE_ACQUIRE)
        self.journal_step(om_leader, 1, "scm", "SCM", 1.0)
        self.journal_step(om_leader, 3, "dn1", "DATANODE", 0.5)
        r, plan = self.plan_json(c)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: an orchestrator holds the upgrade lease: "
                      "'pytest:1:beef' on host 'testhost' (pid 4242), run "
                      "R-test", r.stderr)
        self.assertEqual(plan["estimateBasis"],
                         "measured in run R-test; defaults for RECON, OM")
        est = {s["node"]: s["estimateMs"] for s in plan["steps"]}
        self.assertGreaterEqual(est["scm"], 900)
        self.assertLess(est["scm"], 10000)
        for dn in dns:
            self.assertGreaterEqual(est[dn], 400)
            self.assertLess(est[dn], est["scm"])
        self.assertEqual(est["recon"], 20000)  # default + 10 s gate window
        r = self.plan(c)
        self.assertRegex(r.stdout, r"Estimated time: .* \(measured in run "
                                   r"R-test; defaults for RECON, OM\)")
        self.lease(om_leader, self.om.LEASE_RELEASE)
        r = self.plan(c)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("lease", r.stderr)

        # The gate's counter leaves client mistakes out.
        c.ozone_cmd("sh", "volume", "create", "/planvol")
        c.ozone_cmd("sh", "bucket", "create", "/planvol/bucket")
        r = c.ozone_cmd("sh", "key", "info", "/planvol/bucket/missing",
                        check=False)
        self.assertIn("KEY_NOT_FOUND", r.stderr)
        status, body = http_get(om_leader.http_port, "/prom")
        self.assertEqual(status, 200)
        text = body.decode() if isinstance(body, bytes) else body
        svc = {"service": "ozone.om.OzoneManagerService"}
        self.assertGreater(prom_value(text, "ozone_rpc_errors_total", svc), 0)
        self.assertIn("ozone_rpc_server_errors_total{service=\"ozone.om."
                      "OzoneManagerService\"", text)
        self.assertEqual(
            prom_value(text, "ozone_rpc_server_errors_total", svc), 0)

        # ---- partly rolled: SCM and dn1 on the new bits ----
        U.restart(c.scm, old=False)
        U.wait_datanodes_healthy(c, 4)
        U.restart(c.datanodes[0], old=False)
        U.wait_datanodes_healthy(c, 4)
        U.wait_pipeline(c)
        r, plan = self.plan_json(c)
        done = {s["node"]: s["alreadyDone"] for s in plan["steps"]}
        self.assertEqual([s["node"] for s in plan["steps"]], order)
        self.assertEqual(sorted(n for n, d in done.items() if d),
                         ["dn1", "scm"])
        # Recon, which takes the datanodes' reports, comes before them.
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("dn1 runs 1.1.0 (HDDS 102) but recon, earlier in the "
                      "upgrade order", plan["refusal"])
        self.assertIn("upgrade it first or roll dn1 back", r.stderr)
        U.restart(c.recon, old=False)
        r, plan = self.plan_json(c)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(plan["refused"], plan["refusal"])
        done = {s["node"]: s["alreadyDone"] for s in plan["steps"]}
        self.assertEqual(sorted(n for n, d in done.items() if d),
                         ["dn1", "recon", "scm"])
        self.assertEqual(plan["cluster"]["release"], "1.0.0 and 1.1.0")
        self.assertLess(plan["estimateMs"], fresh_estimate)
        self.assertEqual(plan["estimateMs"],
                         sum(s["estimateMs"] for s in plan["steps"]
                             if not s["alreadyDone"]))
        r = self.plan(c)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"1\. scm \(SCM\)\s+already runs 1\.1\.0")
        self.assertRegex(r.stdout, r"dn1 \(DATANODE\)\s+already runs 1\.1\.0")

        # ---- invalid: an OM on the new bits while datanodes are old ----
        wrong = next(o for o in c.oms if o.name == followers[0])
        U.restart(wrong, old=False)
        r = self.plan(c)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("ozone: cannot start a rolling upgrade: ", r.stderr)
        self.assertIn("%s runs 1.1.0 (OM 102) but dn2, dn3, dn4, earlier "
                      "in the upgrade order (SCM, Recon, datanodes, OMs), run "
                      "1.0.0 (HDDS 100)" % wrong.name, r.stderr)
        self.assertIn("roll %s back" % wrong.name, r.stderr)
        self.assertEqual(len(step_lines(r.stdout)), 9, "plan still printed")
        r, plan = self.plan_json(c)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(plan["refused"])
        self.assertIn(wrong.name + " runs 1.1.0", plan["refusal"])
        # Rolled back, the state is valid again.
        U.restart(wrong, old=True)
        wait_for(lambda: U.om_leader(c), 30, "an OM leader")
        r = self.plan(c)
        self.assertEqual(r.returncode, 0, r.stderr)

        # ---- a datanode SCM marks DEAD ----
        dead = c.datanodes[3]
        self.assertEqual(dead.stop(), 0, dead.log_tail())

        def dn_state():
            for d in U.json_of(c, "admin", "datanode", "list"):
                if dead.name in json.dumps(d):
                    return d.get("healthState")
            return None
        wait_for(lambda: dn_state() == "DEAD", 60,
                 "SCM to mark %s DEAD" % dead.name, interval=0.5)
        r = self.plan(c)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("datanode '%s' is DEAD at SCM" % dead.name, r.stderr)
        self.assertIn("Not answering: %s (DEAD)" % dead.name, r.stdout)
        r, plan = self.plan_json(c)
        self.assertTrue(plan["refused"])
        self.assertIn("datanode '%s' is DEAD" % dead.name, plan["refusal"])
        node = [n for n in plan["cluster"]["nodes"]
                if n["name"] == dead.name][0]
        self.assertFalse(node["reachable"])
        self.assertEqual(node["state"], "DEAD")

        # Every daemon stops cleanly (under sanitizers: no leak, no error;
        # the new metric is on every RPC server).
        for n in c.nodes:
            if n.alive():
                self.assertEqual(n.stop(), 0, "%s:\n%s" % (n.name,
                                                            n.log_tail()))


if __name__ == "__main__":
    oztest.main()
