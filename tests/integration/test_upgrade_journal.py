#!/usr/bin/env python3
"""The rolling-upgrade orchestrator's lease and journal in OM (issue 7;
services/om/om_orch.c), with real processes. The RPCs are driven from
Python's stock gRPC (tests/lib/grpc_stubs.py), as another orchestrator
would; what operators see is checked through the real `ozone` CLI and
Recon's API.

One OM (with Recon):
- orchestrator A acquires the lease; B is refused with UPGRADE_LEASE_HELD
  naming A's holder, host, pid, run and expiry; A renews;
- an append without the lease is refused with UPGRADE_LEASE_LOST; A's
  appends get seq numbers in order;
- `ozone admin upgrade journal` (text and --json, --all, --limit) and the
  "Rolling upgrade" part of `ozone admin upgrade status` (text and JSON)
  show the run, its state and what to do next;
- takeover_from takes a live lease over; the old holder's renew is LOST;
- a lease with a short ttl expires and another orchestrator gets it;
- bad input is refused with INVALID_ARGUMENT;
- Recon's /api/v1/upgrade shows the run;
- the journal and lease survive an OM restart.

Three OMs:
- the journal survives a leader change (`ozone admin om transfer`) and
  every OM holds the same bytes (`ozone admin om digest`);
- lease and journal writes are accepted while the OMs are prepared for
  upgrade (namespace writes are refused), then `cancelprepare`.
"""
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import grpc  # noqa: E402

import grpc_stubs  # noqa: E402
import oztest  # noqa: E402

SVC = "/ozone.om.OmUpgradeService/"
FAST = {
    "ozone.recon.om.snapshot.task.interval.delay": "1s",
    "ozone.recon.scm.poll.interval": "1s",
}
WAIT = 30.0


class UpgradeJournal(oztest.OzoneTestCase):

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

    # ---- helpers ----

    def hdr(self):
        pb = self.pb
        return pb.VersionHeader(component=pb.CLIENT, node_id="pytest",
                                software_version=100, apparent_version=100)

    def channel(self, node):
        ch = grpc.insecure_channel(node.rpc_address)
        self.addCleanup(ch.close)
        return ch

    def call(self, ch, method, req, resp_cls):
        resp, _ = grpc_stubs.unary(ch, SVC + method, req, resp_cls,
                                   timeout=10.0)
        return resp

    def error(self, ch, method, req, resp_cls):
        """(grpc status, OzoneError) of a call that must fail."""
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(ch, method, req, resp_cls)
        e = cm.exception
        oz = None
        for key, value in e.trailing_metadata() or ():
            if key == "ozone-error-bin":
                oz = self.pb.OzoneError.FromString(value)
        self.assertIsNotNone(oz, "no ozone-error-bin in %r" % (e,))
        return e.code(), oz

    def lease_req(self, action, holder, ttl=60000, takeover=""):
        om = self.om
        return om.OmUpgradeLeaseRequest(
            hdr=self.hdr(), action=action, holder=holder,
            host="host-" + holder, pid=4000 + len(holder),
            run_id="R-" + holder, ttl_ms=ttl, takeover_from=takeover)

    def lease(self, ch, action, holder, **kw):
        return self.call(ch, "UpgradeLease", self.lease_req(action, holder,
                                                            **kw),
                         self.om.OmUpgradeLeaseResponse)

    def lease_error(self, ch, action, holder, **kw):
        return self.error(ch, "UpgradeLease",
                          self.lease_req(action, holder, **kw),
                          self.om.OmUpgradeLeaseResponse)

    def entry(self, run, step, action, status, node="", kind="", detail="",
              to_bin="", steps=3):
        return self.om.OmUpgradeJournalEntry(
            run_id=run, step=step, steps=steps, node=node, kind=kind,
            action=action, status=status, detail=detail, to_bin=to_bin,
            backend="local")

    def append_req(self, holder, entries):
        return self.om.OmUpgradeJournalAppendRequest(
            hdr=self.hdr(), holder=holder, entries=entries)

    def append(self, ch, holder, entries):
        return self.call(ch, "UpgradeJournalAppend",
                         self.append_req(holder, entries),
                         self.om.OmUpgradeJournalAppendResponse).last_seq

    def journal_json(self, c, *extra):
        r = c.ozone_cmd("admin", "upgrade", "journal", "--json", *extra)
        return json.loads(r.stdout)

    def status_json(self, c):
        r = c.ozone_cmd("admin", "upgrade", "status", "--json")
        return json.loads(r.stdout)

    # ---- one OM ----

    def check_lease_rules(self, ch):
        om = self.om
        r = self.lease(ch, om.LEASE_ACQUIRE, "A")
        self.assertEqual(r.lease.holder, "A")
        self.assertEqual(r.lease.run_id, "R-A")
        self.assertEqual(r.lease.expires_ms - r.lease.acquired_ms, 60000)
        first_expiry = r.lease.expires_ms

        code, oz = self.lease_error(ch, om.LEASE_ACQUIRE, "B")
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(oz.code, self.pb.UPGRADE_LEASE_HELD)
        self.assertIn("held by 'A' (host host-A, pid 4001, run R-A) until ",
                      oz.message)
        self.assertRegex(oz.message, r"until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        self.assertIn("ozone admin upgrade run --resume' on host-A",
                      oz.message)

        time.sleep(0.01)
        r = self.lease(ch, om.LEASE_RENEW, "A")
        self.assertGreater(r.lease.expires_ms, first_expiry)
        code, oz = self.lease_error(ch, om.LEASE_RENEW, "B")
        self.assertEqual(oz.code, self.pb.UPGRADE_LEASE_LOST)
        self.assertIn("held by 'A'", oz.message)

        for ttl, what in ((999, "ttl 999 ms is out of range"),
                          (3600001, "ttl 3600001 ms is out of range")):
            code, oz = self.lease_error(ch, om.LEASE_ACQUIRE, "A", ttl=ttl)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertEqual(oz.code, self.pb.INVALID_ARGUMENT)
            self.assertIn(what, oz.message)
        code, oz = self.lease_error(ch, om.LEASE_ACQUIRE, "")
        self.assertEqual(oz.code, self.pb.INVALID_ARGUMENT)
        self.assertIn("lease holder is empty", oz.message)

    def check_append(self, ch):
        # Without the lease: refused, nothing stored.
        code, oz = self.error(
            ch, "UpgradeJournalAppend",
            self.append_req("B", [self.entry("R-B", 0, "run", "BEGIN")]),
            self.om.OmUpgradeJournalAppendResponse)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(oz.code, self.pb.UPGRADE_LEASE_LOST)
        self.assertIn("'B' does not hold the upgrade lease", oz.message)
        code, oz = self.error(
            ch, "UpgradeJournalAppend",
            self.append_req("A", [self.entry("R-A", 1, "stop", "OK")] * 101),
            self.om.OmUpgradeJournalAppendResponse)
        self.assertEqual(oz.code, self.pb.INVALID_ARGUMENT)
        self.assertIn("carries 101 entries", oz.message)

        last = self.append(ch, "A", [
            self.entry("R-A", 0, "run", "BEGIN", detail="rolling 3 nodes",
                       to_bin="/opt/ozone-new"),
            self.entry("R-A", 1, "stop", "OK", node="scm", kind="SCM",
                       detail="stopped in 0.4s")])
        self.assertEqual(last, 2)
        last = self.append(ch, "A", [
            self.entry("R-A", 1, "start", "OK", node="scm", kind="SCM",
                       detail="started on /opt/ozone-new")])
        self.assertEqual(last, 3)

    def check_cli(self, c):
        out = c.ozone_cmd("admin", "upgrade", "journal").stdout
        self.assertIn("Upgrade lease: held by 'A' (host host-A, pid 4001, "
                      "run R-A), expires in ", out)
        self.assertIn("Run state: RUNNING (run R-A)", out)
        self.assertRegex(out, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  R-A  "
                              r"step 1/3  scm \(SCM\)  stop  OK  "
                              r"stopped in 0\.4s")
        self.assertRegex(out, r"R-A  run  -  run  BEGIN  rolling 3 nodes")
        doc = self.journal_json(c)
        self.assertEqual(doc["state"], "RUNNING")
        self.assertEqual(doc["lease"]["holder"], "A")
        self.assertFalse(doc["lease"]["expired"])
        self.assertEqual([e["seq"] for e in doc["entries"]], [1, 2, 3])
        e = doc["entries"][1]
        for k in ("seq", "timeMs", "runId", "holder", "step", "steps",
                  "node", "kind", "action", "status", "detail", "fromBin",
                  "toBin", "backend"):
            self.assertIn(k, e)
        self.assertEqual((e["runId"], e["holder"], e["step"], e["node"],
                          e["kind"], e["action"], e["status"]),
                         ("R-A", "A", 1, "scm", "SCM", "stop", "OK"))
        self.assertEqual(len(self.journal_json(c, "--limit", "1")["entries"]),
                         1)
        r = c.ozone_cmd("admin", "upgrade", "journal", "--limit", "0",
                        check=False)
        self.assertEqual(r.returncode, 2, r.stderr)

        out = c.ozone_cmd("admin", "upgrade", "status").stdout
        self.assertIn("Rolling upgrade: run R-A (backend local, to "
                      "/opt/ozone-new): RUNNING at step 1/3 scm (start): "
                      "started on /opt/ozone-new", out)
        self.assertIn("rolling upgrade run R-A is RUNNING", out)  # blocker
        st = self.status_json(c)["rollingUpgrade"]
        self.assertTrue(st["available"])
        self.assertEqual((st["runId"], st["state"], st["step"], st["node"]),
                         ("R-A", "RUNNING", 1, "scm"))

    def check_paused(self, c, ch):
        self.append(ch, "A", [self.entry(
            "R-A", 0, "run", "PAUSED",
            detail="gate: error rate 3.0% above 1.0%")])
        out = c.ozone_cmd("admin", "upgrade", "status").stdout
        self.assertIn("Rolling upgrade: run R-A (backend local, to "
                      "/opt/ozone-new): PAUSED at step 1/3 scm (start): "
                      "gate: error rate 3.0% above 1.0%", out)
        self.assertIn("next: continue with 'ozone admin upgrade run "
                      "--resume' or undo with 'ozone admin upgrade run "
                      "--rollback'", out)
        self.assertEqual(self.journal_json(c)["state"], "PAUSED")

    def check_takeover_and_expiry(self, c, ch):
        om = self.om
        # C takes the live lease over from A; A has lost it.
        code, oz = self.lease_error(ch, om.LEASE_ACQUIRE, "C",
                                    takeover="nobody")
        self.assertEqual(oz.code, self.pb.UPGRADE_LEASE_HELD)
        r = self.lease(ch, om.LEASE_ACQUIRE, "C", takeover="A")
        self.assertEqual(r.lease.holder, "C")
        code, oz = self.lease_error(ch, om.LEASE_RENEW, "A")
        self.assertEqual(oz.code, self.pb.UPGRADE_LEASE_LOST)
        self.assertIn("held by 'C' (host host-C", oz.message)
        code, oz = self.error(
            ch, "UpgradeJournalAppend",
            self.append_req("A", [self.entry("R-A", 2, "stop", "OK")]),
            self.om.OmUpgradeJournalAppendResponse)
        self.assertEqual(oz.code, self.pb.UPGRADE_LEASE_LOST)
        self.lease(ch, om.LEASE_RELEASE, "C")
        # A short lease expires by the OM's clock; then E gets it.
        self.lease(ch, om.LEASE_ACQUIRE, "D", ttl=1000)
        code, oz = self.lease_error(ch, om.LEASE_ACQUIRE, "E")
        self.assertEqual(oz.code, self.pb.UPGRADE_LEASE_HELD)

        def granted():
            try:
                return self.lease(ch, om.LEASE_ACQUIRE, "E")
            except grpc.RpcError:
                return None
        r = oztest.wait_for(granted, 10, "the expired lease to be free",
                            interval=0.2)
        self.assertEqual(r.lease.holder, "E")
        code, oz = self.error(
            ch, "UpgradeJournalAppend",
            self.append_req("D", [self.entry("R-D", 0, "run", "BEGIN")]),
            self.om.OmUpgradeJournalAppendResponse)
        self.assertEqual(oz.code, self.pb.UPGRADE_LEASE_LOST)
        # E's run is the newest: the default view shows it alone.
        self.append(ch, "E", [self.entry("R-E", 0, "run", "BEGIN",
                                         to_bin="/opt/e", steps=2)])
        self.assertEqual([e["runId"] for e in self.journal_json(c)["entries"]],
                         ["R-E"])
        runs = [e["runId"] for e in self.journal_json(c, "--all")["entries"]]
        self.assertEqual(runs, ["R-A"] * 4 + ["R-E"])

    def check_recon(self, c):
        def shown():
            _, body = oztest.http_get(c.recon.http_port, "/api/v1/upgrade",
                                      timeout=5.0)
            ru = json.loads(body).get("rollingUpgrade") or {}
            return ru.get("runId") == "R-E" and ru
        ru = oztest.wait_for(shown, WAIT, "Recon showing run R-E",
                             interval=0.3)
        self.assertTrue(ru["available"])
        self.assertEqual(ru["state"], "RUNNING")
        self.assertEqual(ru["toBin"], "/opt/e")
        self.assertEqual(ru["lease"]["holder"], "E")
        self.assertEqual([e["seq"] for e in ru["entries"]], [5])
        _, body = oztest.http_get(c.recon.http_port, "/api/v1/upgrade")
        events = [e["event"] for e in json.loads(body)["journal"]
                  if e["component"] == "ORCHESTRATOR"]
        self.assertIn("rolling upgrade RUNNING", events)

    def test_single_om(self):
        c = self.cluster(datanodes=0, oms=1, recon=True, conf=FAST)
        ch = self.channel(c.oms[0])
        self.check_lease_rules(ch)
        self.check_append(ch)
        self.check_cli(c)
        self.check_paused(c, ch)
        self.check_takeover_and_expiry(c, ch)
        self.check_recon(c)

        # The journal and the lease survive a restart of the OM.
        before = self.journal_json(c, "--all")
        om = c.oms[0]
        self.assertEqual(om.stop(), 0, om.log_tail())
        om.start()
        om.wait_ready()
        after = oztest.wait_for(
            lambda: (lambda r: r.returncode == 0 and json.loads(r.stdout))(
                c.ozone_cmd("admin", "upgrade", "journal", "--json", "--all",
                            check=False)), WAIT, "the journal after restart",
            interval=0.3)
        self.assertEqual(after["entries"], before["entries"])
        self.assertEqual(after["lease"]["holder"], "E")
        ch = self.channel(om)
        self.assertEqual(self.append(ch, "E", [self.entry("R-E", 1, "stop",
                                                          "OK", steps=2)]),
                         6)

    # ---- three OMs ----

    def leader_channel(self, c):
        return self.channel(c.om_leader())

    def test_three_oms(self):
        om = self.om
        c = self.cluster(datanodes=0, oms=3, recon=False)
        ch = self.leader_channel(c)
        self.lease(ch, om.LEASE_ACQUIRE, "A", ttl=600000)
        self.assertEqual(self.append(ch, "A", [
            self.entry("R-A", 0, "run", "BEGIN", to_bin="/opt/n"),
            self.entry("R-A", 1, "stop", "OK", node="om2", kind="OM")]), 2)
        # Followers refuse with NOT_LEADER (the client fails over).
        leader = c.om_leader()
        follower = next(o for o in c.oms if o is not leader)
        code, oz = self.error(self.channel(follower), "UpgradeJournalRead",
                              om.OmUpgradeJournalReadRequest(hdr=self.hdr()),
                              om.OmUpgradeJournalReadResponse)
        self.assertEqual(oz.code, self.pb.NOT_LEADER)

        # A leader change keeps lease and journal.
        r = c.ozone_cmd("admin", "om", "transfer", "--service-id",
                        c.OM_SERVICE_ID, "-n", follower.name)
        self.assertIn(follower.name, r.stdout)
        oztest.wait_for(lambda: c.om_leader().name == follower.name, WAIT,
                        "leadership on %s" % follower.name, interval=0.2)
        doc = self.journal_json(c)
        self.assertEqual([e["seq"] for e in doc["entries"]], [1, 2])
        self.assertEqual(doc["lease"]["holder"], "A")
        ch = self.leader_channel(c)
        self.assertEqual(self.append(ch, "A", [
            self.entry("R-A", 1, "start", "OK", node="om2", kind="OM")]), 3)
        code, oz = self.lease_error(ch, om.LEASE_ACQUIRE, "B")
        self.assertEqual(oz.code, self.pb.UPGRADE_LEASE_HELD)
        # Every OM applied the same bytes.
        same = oztest.wait_same_om_digest(c, [o.name for o in c.oms], WAIT)
        self.assertEqual(len(same), 3)

        # Prepared for upgrade: namespace writes refused, the
        # orchestrator's writes accepted.
        c.ozone_cmd("admin", "om", "prepare", "--service-id",
                    c.OM_SERVICE_ID, "-pct", "1", timeout=120)
        r = c.ozone_cmd("sh", "volume", "create", "/vol1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("NOT_SUPPORTED_OPERATION_WHEN_PREPARED", r.stderr)
        ch = self.leader_channel(c)
        self.lease(ch, om.LEASE_RENEW, "A", ttl=600000)
        self.assertEqual(self.append(ch, "A", [
            self.entry("R-A", 2, "stop", "OK", node="om1", kind="OM",
                       detail="while prepared")]), 4)
        self.assertEqual(self.journal_json(c)["entries"][-1]["detail"],
                         "while prepared")
        st = self.status_json(c)["rollingUpgrade"]
        self.assertEqual((st["step"], st["node"]), (2, "om1"))
        r = c.ozone_cmd("admin", "om", "cancelprepare", "--service-id",
                        c.OM_SERVICE_ID)
        c.ozone_cmd("sh", "volume", "create", "/vol1")
        self.lease(ch, om.LEASE_RELEASE, "A")
        self.assertIsNone(self.journal_json(c)["lease"])


if __name__ == "__main__":
    oztest.main()
