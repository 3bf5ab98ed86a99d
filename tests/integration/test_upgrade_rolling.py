"""Rolling (zero-downtime) upgrade with a client workload running the whole
time (DESIGN.md §2.1, §6.6, §6.7, §13).

`--testing-software-version 100` stands in for the old release. Order:
SCM -> Recon -> each datanode -> the OM; then a rolling downgrade in the
reverse order, a rolling upgrade again, and `ozone admin upgrade finalize
--wait`. Eight client threads put, get (checking content) and list
through the `ozone` CLI meanwhile. Asserted: no client operation returned
an error (the client library may retry inside: with a single OM it waits
for the OM to come back, and it keeps asking for a block while SCM is
restarting or has no open pipeline), no key is lost or corrupt, the
apparent versions of same-type components are equal after every step, the
new features are refused before finalization and work after it.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402
import upgrade_helpers as U  # noqa: E402
from oztest import wait_for  # noqa: E402

VOL, BUCKET = "rolling", "data"


class Rolling(oztest.OzoneTestCase):

    def check_step(self, c, w, step):
        """DESIGN.md §6: before finalization the apparent versions of
        same-type components are equal (100) at every step, and no client
        operation failed."""
        by_kind = U.apparent_by_kind(c)
        for kind, vs in by_kind.items():
            self.assertEqual(len(vs), 1,
                             "%s: %s apparent versions differ: %s" % (
                                 step, kind, vs))
        self.assertEqual(by_kind["om"], {100}, step)
        self.assertEqual(by_kind["datanode"], {100}, step)
        self.assertEqual(w.failures, [], "after step '%s'" % step)

    def test_rolling_upgrade_with_workload(self):
        conf = dict(U.FAST_CONF)
        c = oztest.LocalCluster(os.path.join(self.tmp, "cluster"),
                                oztest.OZONE, datanodes=4, conf=conf)
        self.addCleanup(c.stop)
        for n in c.nodes:
            U.set_bits(n, True)
        c.start()
        U.wait_datanodes_healthy(c, 4)
        U.wait_pipeline(c)
        c.ozone_cmd("sh", "volume", "create", "/" + VOL)
        c.ozone_cmd("sh", "bucket", "create", "/%s/%s" % (VOL, BUCKET))
        wdir = os.path.join(self.tmp, "work")
        os.makedirs(wdir)
        w = U.Workload(c, VOL, BUCKET, wdir)
        w.start()
        self.addCleanup(w.stop)
        wait_for(lambda: w.count() >= 40, 60, "the workload to run")

        for step in U.roll_cluster(c, dwell=1.0):
            self.check_step(c, w, step)
        # Pre-finalized on new bits: new features refused.
        r = c.ozone_cmd("sh", "bucket", "setquota", "--space-quota", "1GB",
                        "/%s/%s" % (VOL, BUCKET), check=False)
        self.assertIn(U.QUOTA_REFUSED, r.stderr)
        r = c.ozone_cmd("admin", "upgrade", "status", "-v")
        self.assertIn("Downgrade possible: yes, until finalize", r.stdout)
        # Finalize while the workload runs.
        r = c.ozone_cmd("admin", "upgrade", "finalize", "--wait",
                        "--timeout", "120", timeout=180)
        self.assertIn("cluster finalization has been started", r.stdout)
        self.assertIn("Cluster finalization is done.", r.stdout)
        by_kind = U.apparent_by_kind(c)
        self.assertEqual(by_kind["om"], {U.NEW_OM})
        self.assertEqual(by_kind["scm"], {U.NEW_HDDS})
        wait_for(lambda: U.apparent_by_kind(c)["datanode"] == {U.NEW_HDDS},
                 60, "every datanode finalized")
        time.sleep(2)  # a few more operations on the finalized cluster
        w.stop()
        self.assertEqual(w.failures, [])
        self.assertEqual(w.corrupt, [])
        self.assertEqual(w.verify_all(), [])
        # New features work after finalization; old keys stay readable.
        c.ozone_cmd("sh", "bucket", "setquota", "--space-quota", "1GB",
                    "/%s/%s" % (VOL, BUCKET))
        key = sorted(w.expected)[0]
        c.ozone_cmd("sh", "key", "settags", w.path(key), "rolled=yes")
        tags = json.loads(c.ozone_cmd("sh", "key", "gettags",
                                      w.path(key)).stdout)
        self.assertEqual(tags, {"rolled": "yes"})
        self.assertGreater(len(w.ops), 100)

    def test_rolling_upgrade_om_ha(self):
        """Three OMs under load: a rolling upgrade, a rolling downgrade,
        and the upgrade again, each OM in turn, the leader last after a
        transfer; finalize is refused while one OM runs old bits
        (invariant 2), then finalizes every OM at the same index."""
        c = oztest.LocalCluster(os.path.join(self.tmp, "cluster"),
                                oztest.OZONE, datanodes=4, oms=3,
                                recon=False, conf=dict(U.FAST_CONF))
        self.addCleanup(c.stop)
        for n in c.nodes:
            U.set_bits(n, True)
        c.start()
        U.wait_datanodes_healthy(c, 4)
        U.wait_pipeline(c)
        wait_for(lambda: U.om_leader(c), 30, "an OM leader")
        c.ozone_cmd("sh", "volume", "create", "/" + VOL)
        c.ozone_cmd("sh", "bucket", "create", "/%s/%s" % (VOL, BUCKET))
        wdir = os.path.join(self.tmp, "work")
        os.makedirs(wdir)
        w = U.Workload(c, VOL, BUCKET, wdir)
        w.start()
        self.addCleanup(w.stop)
        wait_for(lambda: w.count() >= 40, 60, "the workload to run")
        # A whole rolling upgrade, then a rolling downgrade in reverse
        # order (OMs first, the leader last each time), under load.
        for step in U.roll_cluster(c, passes=2):
            self.check_step(c, w, step)
        self.assertEqual(U.software_by_kind(c)["om"], {100})
        # The rolling upgrade again, until the first OM is on new bits.
        for step in U.roll_cluster(c, passes=1):
            self.check_step(c, w, step)
            if step.startswith("new om"):
                break  # the first OM is on new bits
        self.assertEqual(w.failures, [])
        # Two OMs still run old bits: refused, naming each laggard.
        r = c.ozone_cmd("admin", "upgrade", "finalize", check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("FINALIZE_REJECTED", r.stderr)
        old_oms = [o.name for o in c.oms if U.OLD[0] in o.extra_args]
        self.assertEqual(len(old_oms), 2)
        for name in old_oms:
            self.assertIn("%s runs software 100, needs 102" % name, r.stderr)
        self.assertEqual(c.ozone_cmd("admin", "scm", "finalizationstatus")
                         .stdout.strip(), "FINALIZATION_REQUIRED")
        # The remaining OMs, leader last.
        rolled = [o.name for o in c.oms if o.name not in old_oms]
        for om in U.roll_oms(c, False, skip=rolled):
            self.assertEqual(U.apparent_by_kind(c)["om"], {100}, om.name)
        self.assertEqual(w.failures, [])
        r = c.ozone_cmd("admin", "upgrade", "finalize", "--wait",
                        "--timeout", "120", timeout=180)
        self.assertIn("Cluster finalization is done.", r.stdout)
        wait_for(lambda: U.apparent_by_kind(c)["om"] == {U.NEW_OM}, 30,
                 "every OM finalized")
        time.sleep(1)
        w.stop()
        self.assertEqual(w.failures, [])
        self.assertEqual(w.corrupt, [])
        self.assertEqual(w.verify_all(), [])
        c.ozone_cmd("sh", "bucket", "setquota", "--space-quota", "1GB",
                    "/%s/%s" % (VOL, BUCKET))

    def test_crash_during_om_finalization(self):
        """kill -9 at each OM finalization fault point; after a restart
        the cluster converges to finalized with every key intact."""
        c = oztest.LocalCluster(os.path.join(self.tmp, "cluster"),
                                oztest.OZONE, datanodes=3, recon=False,
                                conf=dict(U.FAST_CONF))
        self.addCleanup(c.stop)
        for n in c.nodes:
            U.set_bits(n, True)
        c.start()
        U.wait_pipeline(c)
        c.ozone_cmd("sh", "volume", "create", "/" + VOL)
        c.ozone_cmd("sh", "bucket", "create", "/%s/%s" % (VOL, BUCKET))
        wdir = os.path.join(self.tmp, "work")
        os.makedirs(wdir)
        w = U.Workload(c, VOL, BUCKET, wdir, threads=2)
        for i in range(6):
            w.put(0, "k%d" % i, w.rng)
        for n in [c.scm] + c.datanodes:
            U.restart(n, old=False)
        U.wait_datanodes_healthy(c, 3)
        om = c.oms[0]
        for point in ("om.finalize.before_scm", "om.finalize.after_scm",
                      "om.finalize.after_marker",
                      "om.finalize.before_apply",
                      "om.finalize.after_apply"):
            om.stop()
            U.set_bits(om, False)
            om.env = {"OZONE_FAULT": point + ":crash"}
            om.start("--upgrade")
            if "apply" not in point:
                # Points on the request path: the admin command hits them.
                om.wait_ready()
                c.ozone_cmd("admin", "upgrade", "finalize", check=False,
                            timeout=60)
            # Points of the poller: the replicated marker makes the
            # restarted OM resume by itself and reach them.
            wait_for(lambda: not om.alive(), 30, "OM crash at " + point)
            self.assertEqual(om.wait_exit(), 86, point)
        om.env = {}
        om.start("--upgrade")
        om.wait_ready()
        c.ozone_cmd("admin", "upgrade", "finalize", "--wait", "--timeout",
                    "60", check=False, timeout=90)
        wait_for(lambda: c.ozone_cmd("admin", "om", "finalizationstatus")
                 .stdout.strip() == "FINALIZATION_DONE", 60, "OM finalized")
        self.assertEqual(U.versions(om), (U.NEW_OM, U.NEW_OM))
        self.assertEqual(w.verify_all(), [])


if __name__ == "__main__":
    oztest.main()
