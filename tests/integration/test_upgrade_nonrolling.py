"""Non-rolling upgrade and downgrade, stage by stage like Ozone's acceptance
driver (DESIGN.md §6.8, §13), and the order violations of DESIGN.md §6.6.

`--testing-software-version 100` stands in for the old release. Stages:
old version: generate data -> prepare -> stop all -> new version, OM with
--upgrade: validate old data, overwrite it, generate new data, both
finalizationstatus = FINALIZATION_REQUIRED, new features refused ->
prepare -> stop -> old version (OM --downgrade): validate everything,
generate and overwrite again -> new version: finalize SCM then OM, validate
all, new features work, bucket usage recomputed by BUCKET_QUOTA's
ON_FINALIZE, quota enforced; old bits then refuse the finalized storage.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402
import upgrade_helpers as U  # noqa: E402
from oztest import wait_for  # noqa: E402

VOL, BUCKET = "vol1", "bucket1"


class NonRolling(U.KeyData, oztest.OzoneTestCase):

    def start_old(self, **kw):
        c = oztest.LocalCluster(os.path.join(self.tmp, "cluster"), oztest.OZONE,
                                conf=dict(U.FAST_CONF), **kw)
        self.addCleanup(c.stop)
        for n in c.nodes:
            U.set_bits(n, True)
        c.start()
        return c

    def generate(self, c, prefix, n=4):
        for i in range(n):
            self.put(c, "%s-%d" % (prefix, i), os.urandom(1000 + 997 * i))

    def overwrite(self, c):
        for key in sorted(self.data):
            self.put(c, key, os.urandom(len(self.data[key]) + 11))

    def prepare_and_stop(self, c):
        r = c.ozone_cmd("admin", "om", "prepare", check=False, timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Prepared: writes refused, reads served (DESIGN.md §6.8).
        r = self.sh(c, "volume", "create", "/prepared", check=False)
        self.assertIn("NOT_SUPPORTED_OPERATION_WHEN_PREPARED", r.stderr)
        c.stop()

    def start_all(self, c, old, om_flag):
        for n in c.nodes:
            U.set_bits(n, old)
        c.write_conf()
        c.scm.start()
        c.scm.wait_ready()
        for dn in c.datanodes:
            dn.start()
        if c.recon is not None:
            c.recon.start()
        for om in c.oms:
            om.start(om_flag)
        for n in c.nodes:
            n.wait_ready()
        U.wait_datanodes_healthy(c, len(c.datanodes))
        U.wait_pipeline(c)

    def features_refused(self, c):
        r = self.sh(c, "bucket", "setquota", "--space-quota", "1MB",
                    "/%s/%s" % (VOL, BUCKET), check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION", r.stderr)
        self.assertIn(U.QUOTA_REFUSED, r.stderr)
        key = sorted(self.data)[0]
        r = self.sh(c, "key", "settags", "/%s/%s/%s" % (VOL, BUCKET, key),
                    "team=a", check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(U.TAGS_REFUSED, r.stderr)

    def test_upgrade_downgrade_finalize(self):
        self.data = {}
        c = self.start_old(datanodes=3)
        U.wait_pipeline(c)
        self.assertEqual(U.versions(c.oms[0]), (100, 100))
        # ---- old version: generate data, prepare, stop ----
        self.sh(c, "volume", "create", "/" + VOL)
        self.sh(c, "bucket", "create", "/%s/%s" % (VOL, BUCKET))
        self.generate(c, "old")
        self.prepare_and_stop(c)

        # ---- new version, OM --upgrade: pre-finalized ----
        self.start_all(c, old=False, om_flag="--upgrade")
        self.assertEqual(U.versions(c.oms[0]), (U.NEW_OM, 100))
        self.assertEqual(U.versions(c.scm), (U.NEW_HDDS, 100))
        self.validate(c)
        self.overwrite(c)
        self.generate(c, "new")
        self.validate(c)
        for comp in ("om", "scm"):
            r = c.ozone_cmd("admin", comp, "finalizationstatus")
            self.assertEqual(r.stdout.strip(), "FINALIZATION_REQUIRED", comp)
        self.features_refused(c)
        r = c.ozone_cmd("admin", "upgrade", "status", "-v")
        self.assertIn("OM status: FINALIZATION_REQUIRED", r.stdout)
        self.assertIn("OM apparent version: ZDU_READY (100)", r.stdout)
        self.assertIn("OM software version: KEY_TAGS (102)", r.stdout)
        self.assertIn("Downgrade possible: yes, until finalize", r.stdout)
        # The legacy path refuses while SCM is not finalized (invariant 3).
        r = c.ozone_cmd("admin", "om", "finalizeupgrade", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("FINALIZE_REJECTED", r.stderr)
        self.assertIn("SCM is not finalized", r.stderr)
        self.prepare_and_stop(c)

        # ---- old version again, OM --downgrade ----
        self.start_all(c, old=True, om_flag="--downgrade")
        self.assertEqual(U.versions(c.oms[0]), (100, 100))
        self.validate(c)
        self.generate(c, "down")
        self.overwrite(c)
        self.validate(c)
        self.prepare_and_stop(c)

        # ---- new version: finalize SCM, then OM ----
        self.start_all(c, old=False, om_flag="--upgrade")
        self.validate(c)
        self.features_refused(c)
        r = c.ozone_cmd("admin", "scm", "finalizeupgrade")
        wait_for(lambda: c.ozone_cmd("admin", "scm", "finalizationstatus")
                 .stdout.strip() == "FINALIZATION_DONE", 90,
                 "SCM and datanodes finalized", interval=0.3)
        r = c.ozone_cmd("admin", "om", "finalizeupgrade")
        self.assertIn("cluster finalization has been started", r.stdout)
        wait_for(lambda: c.ozone_cmd("admin", "om", "finalizationstatus")
                 .stdout.strip() == "FINALIZATION_DONE", 60,
                 "OM finalized", interval=0.3)
        self.assertEqual(U.versions(c.oms[0]), (U.NEW_OM, U.NEW_OM))
        self.assertEqual(U.apparent_by_kind(c)["datanode"], {U.NEW_HDDS})
        U.wait_pipeline(c)
        self.validate(c)
        # BUCKET_QUOTA's ON_FINALIZE recomputed usage from the key table
        # (replication THREE: three replicas of each key).
        info = json.loads(self.sh(c, "bucket", "info",
                                  "/%s/%s" % (VOL, BUCKET)).stdout)
        self.assertEqual(info["usedNamespace"], len(self.data))
        self.assertEqual(info["usedBytes"],
                         3 * sum(len(d) for d in self.data.values()))
        # New features work; keys written before stay readable.
        used = info["usedBytes"]
        self.sh(c, "bucket", "setquota", "--space-quota", str(used + 3000),
                "/%s/%s" % (VOL, BUCKET))
        info = json.loads(self.sh(c, "bucket", "info",
                                  "/%s/%s" % (VOL, BUCKET)).stdout)
        self.assertEqual(info["quotaInBytes"], used + 3000)
        self.put(c, "fits", os.urandom(900))      # 2700 replicated bytes
        src = os.path.join(self.tmp, "big")
        with open(src, "wb") as f:
            f.write(os.urandom(5000))
        r = self.sh(c, "key", "put", "/%s/%s/toobig" % (VOL, BUCKET), src,
                    check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("QUOTA_EXCEEDED", r.stderr)
        key = "/%s/%s/%s" % (VOL, BUCKET, sorted(self.data)[0])
        self.sh(c, "key", "settags", key, "team=a,tier=hot")
        tags = json.loads(self.sh(c, "key", "gettags", key).stdout)
        self.assertEqual(tags, {"team": "a", "tier": "hot"})
        self.validate(c)
        r = c.ozone_cmd("admin", "upgrade", "status")
        self.assertIn("Cluster status: FINALIZATION_DONE", r.stdout)

        # ---- downgrade after finalization: refused, storage untouched ----
        om = c.oms[0]
        om.stop()
        version_file = os.path.join(om.overrides["ozone.om.db.dirs"], "om",
                                    "current", "VERSION")
        with open(version_file) as f:
            before = f.read()
        U.set_bits(om, True)
        rc = om.run_once(check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot start: on-disk apparent version 102 is newer "
                      "than this software (version 100)", om.log_tail(5))
        with open(version_file) as f:
            self.assertEqual(f.read(), before)

    def test_order_violations(self):
        self.data = {}
        c = self.start_old(datanodes=3, recon=False)
        U.wait_pipeline(c)
        self.sh(c, "volume", "create", "/" + VOL)
        self.sh(c, "bucket", "create", "/%s/%s" % (VOL, BUCKET))
        self.generate(c, "old", 2)
        # The OM before SCM (wrong): writes refused, and finalize too (an
        # old SCM would finalize HDDS at 100 and let the OM finalize).
        U.restart(c.oms[0], old=False)
        scm_old = ("upgrade order violation: upgrade SCM and datanodes "
                   "before OM (SCM runs HDDS software version 100")

        def refused_naming_scm():
            r = self.sh(c, "volume", "create", "/vol2", check=False)
            return r.returncode == 1 and scm_old in r.stderr
        wait_for(refused_naming_scm, 30, "writes refused naming SCM",
                 interval=0.3)
        r = c.ozone_cmd("admin", "upgrade", "finalize", check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("FINALIZE_REJECTED", r.stderr)
        self.assertIn("finalize refused: " + scm_old, r.stderr)
        self.validate(c)
        # Then SCM (right), the OM still before the datanodes (wrong).
        U.restart(c.scm, old=False)
        U.wait_datanodes_healthy(c, 3)
        wait_for(lambda: "datanode" in self.sh(
            c, "volume", "create", "/vol2", check=False).stderr, 30,
            "the violation to name a datanode", interval=0.3)
        r = self.sh(c, "volume", "create", "/vol2", check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("UPGRADE_ORDER_VIOLATION", r.stderr)
        self.assertIn(U.ORDER_VIOLATION, r.stderr)
        self.assertIn("datanode", r.stderr)
        # Reads keep working.
        self.validate(c)
        self.sh(c, "key", "list", "/%s/%s" % (VOL, BUCKET))
        st = json.loads(c.ozone_cmd("admin", "upgrade", "status",
                                    "--json").stdout)
        self.assertIn(U.ORDER_VIOLATION, st["om"]["orderViolation"])
        self.assertTrue(any(U.ORDER_VIOLATION in b for b in st["blockers"]))
        # om finalizeupgrade before SCM is finalized: refused.
        r = c.ozone_cmd("admin", "om", "finalizeupgrade", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("SCM is not finalized", r.stderr)
        # Upgrading the datanodes clears the violation by itself.
        for dn in c.datanodes:
            U.restart(dn, old=False)
        U.wait_datanodes_healthy(c, 3)
        U.wait_pipeline(c)

        def writes_ok():
            return self.sh(c, "volume", "create", "/vol3",
                           check=False).returncode == 0
        wait_for(writes_ok, 30, "writes accepted again", interval=0.3)
        self.generate(c, "after", 2)
        self.validate(c)


if __name__ == "__main__":
    oztest.main()
