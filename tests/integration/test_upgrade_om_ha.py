"""OM finalization on an OM service of three (DESIGN.md §6.5, §6.7, §8).

New bits everywhere on pre-finalized storage (apparent version 100,
software 102: the state after a rolling upgrade), one SCM, three
datanodes. `ozone admin upgrade finalize` makes the OM leader finalize
SCM and commit the #FINALIZATION_IN_PROGRESS marker through raft; the
leader's poller finalizes the OMs in one raft entry once SCM reports HDDS
FINALIZED. HDDS is held back for real: dn3 runs with the fault point
datanode.finalize.before switched on as an error, so it refuses SCM's
FINALIZE_UPGRADE on every heartbeat and stays HEALTHY_READONLY at 100;
SCM reports FINALIZATION_IN_PROGRESS until dn3 restarts without it.

- test_leader_change_resumes: while finalization is in progress,
  leadership is transferred, the new leader killed with SIGKILL and
  leadership handed to the third OM, which never led; each leader's
  poller asks SCM by itself, and the third OM alone commits the finalize
  entry once dn3 is released: every OM at 102/102 (the killed one after
  its restart too), the marker gone on every OM, FINALIZATION_DONE, the
  same tables on every OM, data written before finalization reads back, a
  second finalize answers that the upgrade has already been finalized;
- test_restart_all_resumes: all three OMs killed with SIGKILL and
  restarted while in progress: the marker survived, the new leader polls
  SCM by itself (no new command) and finishes;
- test_io_during_finalization: while in progress, keys are written and
  read back (replication ONE: dn3 is read-only, so no THREE pipeline),
  data written before reads back, and the new features stay refused
  until the OMs are finalized.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402
import upgrade_helpers as U  # noqa: E402
from oztest import wait_for  # noqa: E402

WAIT = 60
VOL = "omha"
BUCKET3 = "/%s/three" % VOL   # default replication (THREE)
BUCKET1 = "/%s/one" % VOL     # replication ONE: writable while dn3 lags
HOLD_FAULT = "datanode.finalize.before"
PRE_FINALIZED = {
    "testing.om.init.apparent.version": "100",
    "testing.scm.init.apparent.version": "100",
    "testing.datanode.init.apparent.version": "100",
}
STARTED_LINES = [
    "SCM: Finalizing SCM: HDDS apparent version ZDU_READY (100) -> "
    "CONTAINER_CHECKSUM (102)",
    "SCM: SCM finalized: HDDS apparent version CONTAINER_CHECKSUM (102)",
    "SCM: Datanodes finalize on their next heartbeat (FINALIZE_UPGRADE): "
    "0/3 finalized",
    "cluster finalization has been started",
    "Check progress with 'ozone admin upgrade status' or "
    "'ozone admin om finalizationstatus'.",
]
ALREADY = "Upgrade has already been finalized."
OM_ALREADY = "OM is already finalized at KEY_TAGS (102)"
SCM_ALREADY = ("SCM: SCM and every datanode are already finalized at HDDS "
               "apparent version 102")
# The OM poller's view while dn3 holds HDDS back (om_upgrade.c).
WAITS_FOR_HDDS = ("OM waits for SCM to report HDDS finalized (SCM reports "
                  "FINALIZATION_IN_PROGRESS, datanodes finalized 2/3)")
COMMITTED = "committing the OM finalize entry to KEY_TAGS (102)"
IN_PROGRESS_GAUGE = "ozone_finalization_in_progress"


class OmHaFinalization(U.KeyData, oztest.OzoneTestCase):

    # ---- helpers ----

    def start_cluster(self):
        conf = dict(U.FAST_CONF)
        conf.update(PRE_FINALIZED)
        c = oztest.LocalCluster(os.path.join(self.tmp, "cluster"),
                                oztest.OZONE, datanodes=3, oms=3,
                                recon=False, conf=conf)
        self.addCleanup(c.stop)
        held = c.datanodes[2]
        held.env = {"OZONE_FAULT": HOLD_FAULT}
        c.start()
        U.wait_datanodes_healthy(c, 3)
        U.wait_pipeline(c)
        c.om_leader()
        for n in c.oms + [c.scm] + c.datanodes:
            self.assertEqual(U.versions(n), (102, 100), n.name)
        self.assertEqual(self.om_status(c), "FINALIZATION_REQUIRED")
        c.ozone_cmd("sh", "volume", "create", "/" + VOL)
        c.ozone_cmd("sh", "bucket", "create", BUCKET3)
        c.ozone_cmd("sh", "bucket", "create", BUCKET1, "--replication", "ONE",
                    "--type", "RATIS")
        self.data = {}
        self.put(c, BUCKET3 + "/before", os.urandom(70000))
        return c, held

    def om_status(self, c):
        return c.ozone_cmd("admin", "om", "finalizationstatus",
                           "--service-id", c.OM_SERVICE_ID).stdout.strip()

    def om_blockers(self, c):
        return U.json_of(c, "admin", "upgrade", "status")["blockers"]

    def gauge(self, node):
        status, body = oztest.http_get(node.http_port, "/prom")
        self.assertEqual(status, 200, node.name)
        for line in body.splitlines():
            if line.startswith(IN_PROGRESS_GAUGE + "{"):
                return float(line.split()[-1])
        self.fail("%s: no %s on /prom" % (node.name, IN_PROGRESS_GAUGE))

    def wait_gauges(self, oms, value):
        """The marker's gauge on every OM in oms (its own RocksDB)."""
        wait_for(lambda: all(self.gauge(om) == value for om in oms), WAIT,
                 "%s %d on %s" % (IN_PROGRESS_GAUGE, value,
                                  [om.name for om in oms]), interval=0.2)

    def start_finalization(self, c, held):
        """finalize without --wait; returns with the marker on every OM and
        the leader's poller seeing HDDS held back by dn3."""
        r = c.ozone_cmd("admin", "upgrade", "finalize")
        self.assertEqual(r.stdout.splitlines(), STARTED_LINES, r.stdout)
        self.assertEqual(self.om_status(c), "FINALIZATION_IN_PROGRESS")
        self.assertEqual(c.ozone_cmd("admin", "scm", "finalizationstatus")
                         .stdout.strip(), "FINALIZATION_IN_PROGRESS")
        wait_for(lambda: "interrupted (fault '%s')" % HOLD_FAULT in
                 held.log_tail(200), WAIT, "dn3 to refuse finalizing")
        self.wait_polled(c)
        self.wait_gauges(c.oms, 1)
        self.assert_in_progress(c, c.oms)

    def wait_polled(self, c):
        """The leader's poller asked SCM and heard HDDS is not done."""
        try:
            wait_for(lambda: WAITS_FOR_HDDS in self.om_blockers(c), WAIT,
                     "the OM leader to poll SCM", interval=0.2)
        except TimeoutError as e:
            self.fail("%s: blockers %r" % (e, self.om_blockers(c)))

    def assert_in_progress(self, c, oms):
        self.assertEqual(self.om_status(c), "FINALIZATION_IN_PROGRESS")
        for om in oms:
            self.assertEqual(U.versions(om), (102, 100), om.name)
            self.assertEqual(self.gauge(om), 1, om.name)

    def release(self, c, held):
        """dn3 restarts without the fault: it finalizes on SCM's next
        command and HDDS is FINALIZED."""
        held.stop()
        held.env = {}
        held.start()
        held.wait_ready()

    def assert_finalized(self, c):
        wait_for(lambda: self.om_status(c) == "FINALIZATION_DONE", WAIT,
                 "FINALIZATION_DONE", interval=0.2)
        wait_for(lambda: all(U.versions(om) == (102, 102) for om in c.oms),
                 WAIT, "every OM at 102/102", interval=0.2)
        self.wait_gauges(c.oms, 0)
        self.assertEqual(U.versions(c.scm), (102, 102))
        oztest.wait_same_om_digest(c, [om.name for om in c.oms], WAIT)
        self.validate(c)
        r = c.ozone_cmd("admin", "upgrade", "finalize")
        self.assertEqual(r.stdout.splitlines(),
                         [SCM_ALREADY, OM_ALREADY, ALREADY], r.stdout)
        self.assertEqual(self.om_status(c), "FINALIZATION_DONE")
        # The OM features above 100 work now.
        c.ozone_cmd("sh", "bucket", "setquota", "--space-quota", "1GB",
                    BUCKET3)

    def committer(self, c):
        """The OMs whose log says they committed the finalize entry."""
        return [om.name for om in c.oms if COMMITTED in om.log_tail(100000)]

    # ---- tests ----

    def test_leader_change_resumes(self):
        c, held = self.start_cluster()
        first = c.om_leader()
        self.start_finalization(c, held)
        # Leadership moves: the new leader's poller takes over.
        second = next(om for om in c.oms if om is not first)
        r = c.ozone_cmd("admin", "om", "transfer", "--service-id",
                        c.OM_SERVICE_ID, "-n", second.name)
        self.assertEqual(r.stdout.strip(),
                         "Transfer leadership successfully to %s." %
                         second.name)
        wait_for(lambda: c.om_leader() is second, WAIT,
                 "leadership on " + second.name, interval=0.2)
        self.wait_polled(c)
        self.assert_in_progress(c, c.oms)
        # The new leader dies; leadership goes to the OM that has not led
        # yet (so its poller cannot show a status it heard before).
        second.kill()
        third = next(om for om in c.oms if om not in (first, second))
        wait_for(lambda: c.om_leader() is not second, WAIT,
                 "a leader after the kill", interval=0.2)
        if c.om_leader() is not third:
            c.ozone_cmd("admin", "om", "transfer", "-n", third.name)
        wait_for(lambda: c.om_leader() is third, WAIT,
                 "leadership on " + third.name, interval=0.2)
        live = [first, third]
        self.wait_polled(c)
        self.assert_in_progress(c, live)
        self.assertEqual(self.committer(c), [])
        self.release(c, held)
        wait_for(lambda: self.om_status(c) == "FINALIZATION_DONE", WAIT,
                 "FINALIZATION_DONE", interval=0.2)
        self.assertEqual(self.committer(c), [third.name])
        # The killed OM catches up from the log.
        second.start()
        second.wait_ready()
        self.assert_finalized(c)
        self.assertEqual(self.committer(c), [third.name])

    def test_restart_all_resumes(self):
        c, held = self.start_cluster()
        self.start_finalization(c, held)
        for om in c.oms:
            om.kill()
        for om in c.oms:
            om.start()
        for om in c.oms:
            om.wait_ready()
        c.om_leader()
        # The marker survived; the restarted leader polls by itself.
        self.wait_gauges(c.oms, 1)
        self.wait_polled(c)
        self.assert_in_progress(c, c.oms)
        self.assertEqual(self.committer(c), [])
        self.release(c, held)
        self.assert_finalized(c)
        self.assertEqual(len(self.committer(c)), 1)

    def test_io_during_finalization(self):
        c, held = self.start_cluster()
        self.start_finalization(c, held)
        self.validate(c)
        for i in range(3):
            self.put(c, "%s/during-%d" % (BUCKET1, i),
                     os.urandom(30000 + i))
        self.validate(c)
        listed = [k["name"] for k in U.json_of(c, "sh", "key", "list",
                                               BUCKET1)]
        self.assertEqual(listed, ["during-0", "during-1", "during-2"])
        # The OMs act as 100 until they are finalized.
        r = c.ozone_cmd("sh", "bucket", "setquota", "--space-quota", "1GB",
                        BUCKET3, check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(U.QUOTA_REFUSED, r.stderr)
        self.assert_in_progress(c, c.oms)
        self.release(c, held)
        self.assert_finalized(c)
        self.put(c, BUCKET1 + "/after", os.urandom(1000))
        self.validate(c)


if __name__ == "__main__":
    oztest.main()
