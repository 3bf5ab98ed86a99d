#!/usr/bin/env python3
"""OM prepare for upgrade (DESIGN.md §6.8), the sequence of Ozone's
om-prepare acceptance suite on three OMs (real processes, SCM, one
datanode):

- data written before; `ozone admin om prepare` prints Ozone's lines and
  every OM reaches PREPARE_COMPLETED, each having flushed its double
  buffer to the prepare index, taken a snapshot at it and purged its raft
  log up to it (its /prom figures and the segment files in its raft
  directory);
- while prepared every write fails with
  NOT_SUPPORTED_OPERATION_WHEN_PREPARED, reads succeed;
- a restart of every OM keeps the prepared state (current/prepareMarker and
  #PREPAREDINFO);
- `ozone admin om cancelprepare` reopens writes;
- prepare again, with one OM down: a majority is enough, the output names
  the OM that is not prepared, and that OM ends prepared once it is back;
- prepare twice in a row is accepted;
- start with `--upgrade` (and `--downgrade`) leaves prepare mode;
- start-up states: a marker without the DB key refuses to start (corrupt
  prepare state); the DB key without a marker stays prepared (the key is
  replicated) until prepare completes again;
- one OM restarted with `--upgrade` cancels prepare for the whole service
  through raft once it leads, and every OM's tables stay equal.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402

PREPARED = "NOT_SUPPORTED_OPERATION_WHEN_PREPARED"


class OmPrepareTest(oztest.OzoneTestCase):

    def sh(self, c, *args, check=True):
        return c.ozone_cmd("sh", *args, check=check)

    def prepare(self, c, *extra, check=True):
        return c.ozone_cmd("admin", "om", "prepare", "--service-id",
                           c.OM_SERVICE_ID, "-pct", "1", *extra, check=check,
                           timeout=120)

    def marker(self, om):
        return os.path.join(om.overrides["ozone.om.db.dirs"], "om", "current",
                            "prepareMarker")

    def prom(self, om, name):
        status, body = oztest.http_get(om.http_port, "/prom")
        self.assertEqual(status, 200)
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        self.fail("%s has no %s on /prom" % (om.name, name))

    def assert_snapshot_and_purge(self, om, txn):
        """om flushed, snapshotted and purged its log at prepare txn."""
        self.assertEqual(self.prom(om, "ozone_om_prepare_purged_index"), txn)
        snap = self.prom(om, "ozone_om_prepare_snapshot_index")
        self.assertGreaterEqual(snap, txn, om.name)
        self.assertLessEqual(snap, txn + 2, om.name)
        self.assertGreaterEqual(
            self.prom(om, "ozone_om_double_buffer_flushed_index"), txn)
        # libraft's closed segments are named <first>-<last> index.
        ratis = os.path.join(om.overrides["ozone.om.db.dirs"], "om", "ratis")
        files = os.listdir(ratis)
        firsts = [int(m.group(1)) for m in
                  (re.fullmatch(r"(\d{16})-(\d{16})", f) for f in files) if m]
        self.assertTrue(all(f > txn for f in firsts),
                        "%s keeps log entries up to prepare index %d: %s" % (
                            om.name, txn, sorted(files)))
        self.assertTrue(any(f.startswith("snapshot-") for f in files), files)
        with open(om.log_path) as f:
            self.assertRegex(f.read(), r"OM prepared for upgrade at index "
                                       r"%d: snapshot at \d+, raft log "
                                       r"purged" % txn)

    def wait_same_digest(self, c, timeout=60):
        oztest.wait_same_om_digest(c, [o.name for o in c.oms], timeout)

    def assert_writes_refused(self, c):
        for args in (("volume", "create", "/vol9"),
                     ("bucket", "create", "/vol1/bucket9"),
                     ("key", "put", "/vol1/bucket1/key9", self.src)):
            r = self.sh(c, *args, check=False)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(PREPARED, r.stderr)
            self.assertIn("OM is prepared for upgrade", r.stderr)

    def assert_reads_work(self, c):
        keys = json.loads(self.sh(c, "key", "list", "/vol1/bucket1").stdout)
        self.assertIn("key1", [k["name"] for k in keys])
        dst = os.path.join(self.tmp, "dst")
        if os.path.exists(dst):
            os.unlink(dst)
        self.sh(c, "key", "get", "/vol1/bucket1/key1", dst)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), b"prepare me\n")

    def restart_all(self, c, *extra):
        for om in c.oms:
            self.assertEqual(om.stop(), 0, om.log_tail())
        for om in c.oms:
            om.start(*extra)
        for om in c.oms:
            om.wait_ready()
        c.om_leader()

    def test_prepare_sequence(self):
        c = self.cluster(datanodes=1, oms=3, recon=False,
                         conf={"ozone.replication": "ONE"})
        self.src = os.path.join(self.tmp, "src")
        with open(self.src, "w") as f:
            f.write("prepare me\n")
        oztest.wait_for(
            lambda: self.sh(c, "volume", "create", "/vol1",
                            check=False).returncode == 0, 60, "volume create")
        self.sh(c, "bucket", "create", "/vol1/bucket1")
        oztest.wait_for(
            lambda: self.sh(c, "key", "put", "/vol1/bucket1/key1", self.src,
                            check=False).returncode == 0, 60,
            "a first key put (pipelines)", interval=0.3)

        # Prepare: Ozone's output, every OM completed.
        r = self.prepare(c)
        out = r.stdout
        self.assertRegex(out, r"Ozone Manager Prepare Request successfully "
                              r"returned with Transaction Id : \[\d+\]\.")
        for om in c.oms:
            self.assertRegex(out, r"OM : \[%s\], Prepare Status : "
                                  r"\[PREPARE_COMPLETED\], Current "
                                  r"Transaction Id : \[\d+\]" % om.name)
        self.assertIn("OM Preparation successful!", out)
        self.assertIn("All OMs are prepared", out)
        txn = int(re.search(r"Transaction Id : \[(\d+)\]", out).group(1))
        for om in c.oms:
            self.assertTrue(os.path.exists(self.marker(om)), om.name)
            self.assert_snapshot_and_purge(om, txn)
        self.assert_writes_refused(c)
        self.assert_reads_work(c)

        # A restart keeps it.
        self.restart_all(c)
        self.assert_writes_refused(c)
        self.assert_reads_work(c)

        # Cancel: writes again.
        r = c.ozone_cmd("admin", "om", "cancelprepare", "--service-id",
                        c.OM_SERVICE_ID)
        self.assertEqual(r.stdout.strip(), "Cancel prepare succeeded, "
                         "cluster can now accept write requests.")
        self.sh(c, "key", "put", "/vol1/bucket1/key2", self.src)
        oztest.wait_for(lambda: not any(os.path.exists(self.marker(om))
                                        for om in c.oms),
                        10, "markers removed")

        # Prepare again with one OM down: a majority is enough.
        leader = c.om_leader()
        down = next(om for om in c.oms if om is not leader)
        self.assertEqual(down.stop(), 0)
        r = self.prepare(c, "-pt", "3")
        self.assertIn("OM Preparation successful!", r.stdout)
        self.assertIn("A majority of OMs are prepared. OMs that are not "
                      "prepared : %s" % down.name, r.stdout)
        self.assert_writes_refused(c)
        # It comes back and ends prepared (from the log or a snapshot).
        down.start()
        down.wait_ready()
        oztest.wait_for(lambda: os.path.exists(self.marker(down)), 30,
                        "%s prepared after restart" % down.name)
        # Prepare twice in a row is fine.
        r = self.prepare(c)
        self.assertIn("All OMs are prepared", r.stdout)

        # Start-up states (Ozone's OzoneManagerPrepareState).
        om1 = c.oms[0]
        om1.stop()
        os.unlink(self.marker(om1))
        om1.start()
        om1.wait_ready()
        with open(om1.log_path) as f:
            self.assertIn("found without prepare marker", f.read())
        # #PREPAREDINFO is replicated: om1 stays prepared like its peers
        # (a local "unprepared" would apply writes they refuse).
        self.assertFalse(os.path.exists(self.marker(om1)))
        self.assert_writes_refused(c)
        r = self.prepare(c)
        self.assertIn("All OMs are prepared", r.stdout)
        self.assertTrue(os.path.exists(self.marker(om1)))

        # One follower restarted with --upgrade: leaving prepare mode is a
        # replicated CancelPrepare, committed once it leads; until then
        # the whole service stays prepared and every OM applies the same.
        leader = c.om_leader()
        om_up = next(om for om in c.oms if om is not leader)
        om_up.stop()
        om_up.start("--upgrade")
        om_up.wait_ready()
        self.assert_writes_refused(c)
        self.assertTrue(os.path.exists(self.marker(om_up)))
        c.ozone_cmd("admin", "om", "transfer", "--service-id",
                    c.OM_SERVICE_ID, "-n", om_up.name)
        oztest.wait_for(lambda: not any(os.path.exists(self.marker(om))
                                        for om in c.oms),
                        30, "prepare cancelled on every OM")
        self.sh(c, "key", "put", "/vol1/bucket1/key4", self.src)
        self.wait_same_digest(c)
        with open(om_up.log_path) as f:
            self.assertIn("--upgrade: prepare cancelled at index", f.read())
        r = self.prepare(c)
        self.assertIn("All OMs are prepared", r.stdout)

        # Stop all, start with --upgrade / --downgrade: writes again.
        for om in c.oms:
            om.stop()
        c.oms[0].start("--upgrade")
        c.oms[1].start("--downgrade")
        c.oms[2].start("--upgrade")
        for om in c.oms:
            om.wait_ready()
        c.om_leader()
        # The first leader commits the CancelPrepare; every OM applies it.
        oztest.wait_for(lambda: not any(os.path.exists(self.marker(om))
                                        for om in c.oms),
                        60, "prepare cancelled on every OM")
        self.sh(c, "key", "put", "/vol1/bucket1/key3", self.src)
        self.assert_reads_work(c)
        for om in c.oms:
            self.assertFalse(os.path.exists(self.marker(om)), om.name)

        # A marker without the DB key: corrupt, refuse to start.
        om3 = c.oms[2]
        om3.stop()
        with open(self.marker(om3), "w") as f:
            f.write("1\n")
        rc = om3.run_once(check=False)
        self.assertEqual(rc, 1)
        with open(om3.log_path) as f:
            self.assertIn("corrupt prepare state", f.read())


if __name__ == "__main__":
    oztest.main()
