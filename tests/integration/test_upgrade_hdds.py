#!/usr/bin/env python3
"""HDDS upgrade end to end (DESIGN.md §6, issue 5, SCM and datanode half)
with real processes; `--testing-software-version 100` stands in for the old
release (1.0.0: HDDS 100), the plain binary is the new one (1.1.0: HDDS 102,
CHUNK_CHECKSUM_SHA256 101 and CONTAINER_CHECKSUM 102). OM runs release
1.0.0 throughout (its part of the upgrade is another test's), except in
the crash of SCM during a whole-cluster finalization.

- rolling upgrade: old SCM and datanodes with data -> SCM new bits
  (pre-finalized) -> each datanode new bits in turn, keys written and read
  between steps with zero failures -> new features refused with the
  exact message -> `ozone admin scm finalizeupgrade` -> datanodes finalize
  over heartbeats -> FINALIZATION_DONE -> new features work, old data
  readable, containers closed before finalization got their checksum;
- rolling downgrade before finalization: back to old bits, all data
  readable;
- order violations: new datanode before SCM refused with the message while
  the cluster keeps serving; finalize with one old datanode refused naming
  it; old bits on finalized storage refuse to start and leave it
  untouched; an old datanode joining a finalized SCM exits with a message;
- crash injection (kill -9 by OZONE_FAULT=<point>:crash) at SCM and
  datanode finalization points, restart, convergence with data intact;
- crash of SCM at scm.finalize.before_dn_command during a whole-cluster
  `ozone admin upgrade finalize` (OM on the new bits too): the point is
  not hit while no datanode is behind SCM; SCM dies after persisting its
  finalization and before any datanode was told (every datanode still
  pre-finalized, the OM too); restarted without the fault, SCM, which
  knows no datanode until it registers, does not report HDDS finalized
  before all three did (the OM commits at 3/3), and SCM, every datanode
  and the OM converge to 102/102 (the OM by itself when its
  finalization marker was committed before the crash, after a rerun of
  finalize otherwise), FINALIZATION_DONE, all data intact, new features
  work.
"""
import hashlib
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import grpc  # noqa: E402

import grpc_stubs  # noqa: E402
import oztest  # noqa: E402

OLD = ["--testing-software-version", "100"]
FAST = {
    "hdds.heartbeat.interval": "500ms",
    "ozone.scm.stale.node.interval": "3s",
    "ozone.scm.dead.node.interval": "6s",
    "ozone.scm.chunk.size": "256KB",
    "ozone.scm.block.size": "1MB",
    "ozone.scm.container.size": "4MB",
}
WAIT = 60.0
SHA256_REFUSED = (
    "operation 'WriteChunk with SHA256 checksum' belongs to feature "
    "CHUNK_CHECKSUM_SHA256 (version 101); cluster apparent version is 100; "
    "finalize the upgrade first")


def tree_digest(*roots):
    """sha256 over every file's path, size and bytes under roots."""
    h = hashlib.sha256()
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(d, f)
                h.update(p.encode())
                with open(p, "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()


class UpgradeHdds(oztest.OzoneTestCase):

    @classmethod
    def setUpClass(cls):
        cls.gen = tempfile.mkdtemp(prefix="oztest-pb2-")
        mods = grpc_stubs.generate(
            oztest.SRC, cls.gen,
            ("common.proto", "hdds.proto", "datanode.proto", "scm.proto"))
        cls.pb = mods["common_pb2"]
        cls.dnpb = mods["datanode_pb2"]

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.gen, True)

    # ---- cluster helpers ----

    def start(self, datanodes=3, old=True, conf=None, skip=(), om_old=True):
        """A cluster without Recon, every node on old bits when old; nodes
        named in skip are configured but not started. The OM runs release
        1.0.0 unless om_old is False (then as the other nodes)."""
        props = dict(FAST)
        props.update(conf or {})
        c = self.new_cluster(datanodes=datanodes, recon=False, conf=props)
        c.write_conf()
        for n in c.nodes:
            n.extra_args = list(OLD) if old else []
        # OM stays on release 1.0.0: the OM half is not this test's (but
        # for a whole-cluster finalization).
        if om_old:
            c.oms[0].extra_args = list(OLD)
        c.scm.run_once("--init")
        c.scm.start()
        c.scm.wait_ready()
        c.oms[0].run_once("--init")
        c.oms[0].start()
        for dn in c.datanodes:
            if dn.name not in skip:
                dn.start()
        for n in c.nodes:
            if n.proc is not None:
                n.wait_ready()
        self.wait_healthy(c, [d.name for d in c.datanodes
                              if d.name not in skip])
        self.data = {}
        self.n_keys = 0
        c.ozone_cmd("sh", "volume", "create", "/vol1")
        c.ozone_cmd("sh", "bucket", "create", "/vol1/bkt1")
        self.wait_writable(c)
        return c

    def restart(self, c, node, old, env=None):
        node.stop()
        node.extra_args = list(OLD) if old else []
        node.env = dict(env or {})
        node.start()
        node.wait_ready()

    def dn_list(self, c):
        r = c.ozone_cmd("admin", "datanode", "list", "--json")
        return {d["datanodeDetails"]["uuid"]: d for d in json.loads(r.stdout)}

    def wait_healthy(self, c, names, state="HEALTHY"):
        def ok():
            dns = self.dn_list(c)
            return all(n in dns and dns[n]["healthState"] == state
                       for n in names)
        oztest.wait_for(ok, WAIT, "datanodes %s %s" % (names, state), 0.2)

    def wait_writable(self, c):
        """An OPEN pipeline of THREE healthy members exists."""
        def ok():
            dns = self.dn_list(c)
            r = c.ozone_cmd("admin", "pipeline", "list", "--json")
            for p in json.loads(r.stdout):
                if p["state"] == "OPEN" and p["replicationFactor"] == "THREE" \
                        and all(dns.get(m["uuid"], {}).get("healthState") ==
                                "HEALTHY" for m in p["datanodes"]):
                    return True
            return False
        oztest.wait_for(ok, WAIT, "an open pipeline of healthy datanodes",
                        0.2)

    def status(self, c):
        r = c.ozone_cmd("admin", "scm", "finalizationstatus")
        return r.stdout.strip()

    def wait_status(self, c, want):
        oztest.wait_for(lambda: self.status(c) == want, WAIT,
                        "SCM finalization status %s" % want, 0.2)

    # ---- data helpers ----

    def put(self, c, size=None, extra=()):
        """Writes a new key with random content; remembers it."""
        self.n_keys += 1
        name = "k%03d" % self.n_keys
        size = size if size is not None else random.randint(1, 1500000)
        src = os.path.join(self.tmp, name)
        with open(src, "wb") as f:
            f.write(random.randbytes(size))
        r = c.ozone_cmd(*extra, "sh", "key", "put", "/vol1/bkt1/" + name, src,
                        check=False)
        if r.returncode == 0:
            self.data[name] = src
        return r

    def put_ok(self, c, n=2, extra=()):
        for _ in range(n):
            r = self.put(c, extra=extra)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def check_all(self, c):
        """Every key written so far reads back byte for byte."""
        for name, src in sorted(self.data.items()):
            out = os.path.join(self.tmp, name + ".out")
            c.ozone_cmd("sh", "key", "get", "/vol1/bkt1/" + name, out,
                        "--force")
            with open(src, "rb") as a, open(out, "rb") as b:
                self.assertTrue(a.read() == b.read(), "key %s differs" % name)
            os.unlink(out)

    # ---- datanode RPC ----

    def dn_call(self, dn, method, req, resp_cls):
        with grpc.insecure_channel(dn.rpc_address) as ch:
            return grpc_stubs.unary(ch, "/ozone.datanode.DatanodeService/" +
                                    method, req, resp_cls)[0]

    def hdr(self):
        return self.pb.VersionHeader(component=self.pb.CLIENT, node_id="t",
                                     software_version=100,
                                     apparent_version=100)

    def container_checksum(self, dn, cid):
        d = self.dnpb
        return self.dn_call(dn, "GetContainerChecksum",
                            d.GetContainerChecksumRequest(hdr=self.hdr(),
                                                          container_id=cid),
                            d.GetContainerChecksumResponse)

    def ozone_error(self, e):
        for md in e.trailing_metadata() or ():
            if md.key == "ozone-error-bin":
                return self.pb.OzoneError.FromString(md.value)
        return None

    def closed_containers(self, c):
        r = c.ozone_cmd("admin", "container", "list", "--state", "CLOSED",
                        "--json")
        return [x["containerID"] for x in json.loads(r.stdout)]

    def version_of(self, node):
        v = node.version_json()
        return v["apparentVersion"], v["softwareVersion"]

    # ---- (a) rolling upgrade, then finalization ----

    def test_rolling_upgrade_and_finalize(self):
        c = self.start()
        self.put_ok(c, 3)
        self.assertEqual(self.version_of(c.scm), (100, 100))
        self.assertEqual(self.status(c), "FINALIZATION_DONE")

        # SCM first (DESIGN.md §2.1): pre-finalized, 100/102.
        self.restart(c, c.scm, old=False)
        self.assertEqual(self.version_of(c.scm), (100, 102))
        self.wait_healthy(c, ["dn1", "dn2", "dn3"])
        self.assertEqual(self.status(c), "FINALIZATION_REQUIRED")
        self.wait_writable(c)
        self.put_ok(c)
        self.check_all(c)

        # Each datanode in turn; clients keep working between steps.
        for dn in c.datanodes:
            self.restart(c, dn, old=False)
            self.assertEqual(self.version_of(dn), (100, 102))
            self.wait_healthy(c, ["dn1", "dn2", "dn3"])
            self.wait_writable(c)
            self.put_ok(c)
            self.check_all(c)
        r = c.ozone_cmd("admin", "upgrade", "status", "-v")
        self.assertIn("SCM status: FINALIZATION_REQUIRED", r.stdout)
        self.assertIn("Datanodes finalized: 3/3", r.stdout)
        self.assertIn("SCM apparent version: ZDU_READY (100)", r.stdout)
        self.assertIn("SCM software version: CONTAINER_CHECKSUM (102)",
                      r.stdout)
        # HDDS still allows a downgrade (OM's part may add its own say).
        self.assertIn("Downgrade possible: ", r.stdout)
        self.assertNotIn("HDDS finalized", r.stdout)

        # New features are refused before finalization, exactly.
        r = self.put(c, extra=("-D", "ozone.client.checksum.type=SHA256"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION", r.stderr)
        self.assertIn(SHA256_REFUSED, r.stderr)
        closed_before = self.closed_containers(c)
        self.assertTrue(closed_before, "rolling restarts close containers")
        with self.assertRaises(grpc.RpcError) as cm:
            self.container_checksum(c.datanodes[0], closed_before[0])
        err = self.ozone_error(cm.exception)
        self.assertEqual(self.pb.ResultCode.Name(err.code),
                         "NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION")
        self.assertIn("operation 'GetContainerChecksum' belongs to feature "
                      "CONTAINER_CHECKSUM (version 102); cluster apparent "
                      "version is 100; finalize the upgrade first",
                      err.message)

        # Finalize: SCM, then the datanodes over heartbeats.
        r = c.ozone_cmd("admin", "scm", "finalizeupgrade")
        self.assertIn("Finalization of SCM's metadata upgrade finished.",
                      r.stdout)
        self.assertEqual(self.version_of(c.scm), (102, 102))
        self.wait_status(c, "FINALIZATION_DONE")
        for dn in c.datanodes:
            self.assertEqual(self.version_of(dn), (102, 102))
        r = c.ozone_cmd("admin", "upgrade", "status", "--json")
        st = json.loads(r.stdout)
        self.assertEqual(st["scm"]["status"], "FINALIZATION_DONE")
        self.assertEqual(st["datanodes"]["finalized"], 3)
        self.assertEqual(st["downgrade"], "no: HDDS finalized")
        r = c.ozone_cmd("admin", "scm", "finalizeupgrade")
        self.assertIn("Upgrade has already been finalized.", r.stdout)

        # Old data readable; new features work.
        self.check_all(c)
        self.wait_writable(c)
        self.put_ok(c, 2, extra=("-D", "ozone.client.checksum.type=SHA256"))
        self.put_ok(c, 1)
        self.check_all(c)
        # ON_FINALIZE wrote the checksum of containers closed before it.
        # (Replicas may differ: a block that failed on one member during a
        # restart was rewritten elsewhere, so no cross-replica equality.)
        for cid in closed_before:
            answered = 0
            for dn in c.datanodes:
                try:
                    resp = self.container_checksum(dn, cid)
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
                    continue  # not a replica of this container
                self.assertEqual(resp.algorithm, "SHA256")
                self.assertRegex(resp.checksum, "^[0-9a-f]{64}$")
                self.assertEqual(resp.container_id, cid)
                answered += 1
            self.assertGreater(answered, 0, "container %d" % cid)
        files = []
        for dn in c.datanodes:
            for d, _, fs in os.walk(dn.overrides["hdds.datanode.dir"]):
                files += [f for f in fs if f.endswith(".checksum")]
        self.assertTrue(files)
        prom = oztest.http_get(c.scm.http_port, "/prom")[1]
        self.assertRegex(prom, r"ozone_scm_datanodes_finalized 3")
        self.assertRegex(prom, r"ozone_finalization_in_progress\{.*\} 0")

    # ---- (b) rolling downgrade before finalization ----

    def test_downgrade_before_finalize(self):
        c = self.start()
        self.put_ok(c, 2)
        for node in [c.scm] + c.datanodes:
            self.restart(c, node, old=False)
            self.wait_healthy(c, ["dn1", "dn2", "dn3"])
            self.wait_writable(c)
            self.put_ok(c, 1)
        self.check_all(c)
        # Roll back in reverse order (DESIGN.md §6.8): datanodes, then SCM.
        for node in list(reversed(c.datanodes)) + [c.scm]:
            self.restart(c, node, old=True)
            self.assertEqual(self.version_of(node), (100, 100))
            self.wait_healthy(c, ["dn1", "dn2", "dn3"])
            self.check_all(c)
        self.wait_writable(c)
        self.put_ok(c, 2)
        self.check_all(c)
        self.assertEqual(self.status(c), "FINALIZATION_DONE")

    # ---- (c) order violations ----

    def test_order_violations(self):
        c = self.start(datanodes=4, skip=("dn4",))
        self.put_ok(c, 2)

        # A datanode with new bits before SCM is refused and keeps trying.
        dn3 = c.datanodes[2]
        self.restart(c, dn3, old=False)
        oztest.wait_for(
            lambda: "SCM must be upgraded before datanodes" in
            dn3.log_tail(200), WAIT, "dn3 to log the refusal", 0.2)
        self.assertIn("UPGRADE_ORDER_VIOLATION", dn3.log_tail(200))
        self.assertTrue(dn3.alive())
        # The cluster keeps serving: reads, and writes on the others.
        self.check_all(c)
        self.put_ok(c, 1, extra=("-D", "ozone.replication=ONE"))
        self.restart(c, dn3, old=True)
        self.wait_healthy(c, ["dn1", "dn2", "dn3"])

        # Finalize with one datanode on old bits: refused, naming it.
        self.restart(c, c.scm, old=False)
        for dn in c.datanodes[:2]:
            self.restart(c, dn, old=False)
        self.wait_healthy(c, ["dn1", "dn2", "dn3"])
        r = c.ozone_cmd("admin", "scm", "finalizeupgrade", check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("FINALIZE_REJECTED", r.stderr)
        self.assertIn("finalize refused: datanode 'dn3' runs software "
                      "version 100, needs 102", r.stderr)
        self.assertEqual(self.status(c), "FINALIZATION_REQUIRED")
        r = c.ozone_cmd("admin", "upgrade", "status")
        self.assertIn("datanode 'dn3' runs software 100, needs 102", r.stdout)
        self.wait_writable(c)
        self.put_ok(c, 1)
        self.check_all(c)

        # Upgrade it and finalize.
        self.restart(c, dn3, old=False)
        self.wait_healthy(c, ["dn1", "dn2", "dn3"])
        c.ozone_cmd("admin", "scm", "finalizeupgrade")
        self.wait_status(c, "FINALIZATION_DONE")

        # Old bits on finalized storage refuse to start, storage untouched.
        dn1 = c.datanodes[0]
        dn1.stop()
        roots = (dn1.overrides["ozone.metadata.dirs"],
                 dn1.overrides["hdds.datanode.dir"])
        before = tree_digest(*roots)
        dn1.extra_args = list(OLD)
        rc = dn1.run_once(check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot start: on-disk apparent version 102 is newer "
                      "than this software (version 100); this component was "
                      "finalized by a newer release and cannot be downgraded",
                      dn1.log_tail(20))
        self.assertEqual(tree_digest(*roots), before)
        c.scm.stop()
        scm_root = c.scm.overrides["ozone.scm.db.dirs"]
        before = tree_digest(scm_root)
        c.scm.extra_args = list(OLD)
        self.assertNotEqual(c.scm.run_once(check=False), 0)
        self.assertIn("cannot start: on-disk apparent version 102 is newer",
                      c.scm.log_tail(20))
        self.assertEqual(tree_digest(scm_root), before)
        self.restart(c, c.scm, old=False)
        self.restart(c, dn1, old=False)

        # An old datanode joining a finalized cluster exits with a message.
        dn4 = c.datanodes[3]
        dn4.extra_args = list(OLD)
        dn4.start()
        rc = dn4.wait_exit(WAIT)
        self.assertEqual(rc, 1)
        tail = dn4.log_tail(50)
        self.assertIn("datanode must be upgraded to join the cluster", tail)
        self.assertIn("install release 1.1.0 or newer", tail)
        self.wait_healthy(c, ["dn1", "dn2", "dn3"])
        self.check_all(c)

    # ---- (d) crash injection ----

    def test_crash_injection(self):
        # New bits on pre-finalized storage from the start (the state after
        # a rolling upgrade).
        c = self.start(old=False, conf={
            "testing.scm.init.apparent.version": "100",
            "testing.datanode.init.apparent.version": "100"})
        self.assertEqual(self.version_of(c.scm), (100, 102))
        self.wait_writable(c)
        self.put_ok(c, 3)
        # Close containers so that ON_FINALIZE has data to migrate.
        dn3 = c.datanodes[2]
        self.restart(c, dn3, old=False)
        self.wait_healthy(c, ["dn1", "dn2", "dn3"])

        # SCM dies before finalization starts: nothing changed.
        self.restart(c, c.scm, old=False,
                     env={"OZONE_FAULT": "scm.finalize.before_start:crash"})
        r = c.ozone_cmd("admin", "scm", "finalizeupgrade", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(c.scm.wait_exit(WAIT), 86)
        self.restart(c, c.scm, old=False)
        self.assertEqual(self.version_of(c.scm), (100, 102))
        self.assertEqual(self.status(c), "FINALIZATION_REQUIRED")
        self.wait_healthy(c, ["dn1", "dn2", "dn3"])
        self.check_all(c)

        # Datanodes die at their own points; SCM dies after persisting.
        dn1, dn2 = c.datanodes[0], c.datanodes[1]
        self.restart(c, dn1, old=False,
                     env={"OZONE_FAULT": "datanode.finalize.after:crash"})
        self.restart(c, dn2, old=False,
                     env={"OZONE_FAULT": "version.finalize.after_action:crash"})
        self.restart(c, dn3, old=False,
                     env={"OZONE_FAULT": "datanode.finalize.before:crash"})
        self.restart(c, c.scm, old=False,
                     env={"OZONE_FAULT": "scm.finalize.after_persist:crash"})
        self.wait_healthy(c, ["dn1", "dn2", "dn3"])
        r = c.ozone_cmd("admin", "scm", "finalizeupgrade", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(c.scm.wait_exit(WAIT), 86)
        self.restart(c, c.scm, old=False)
        self.assertEqual(self.version_of(c.scm), (102, 102))
        for dn in (dn1, dn2, dn3):
            self.assertEqual(dn.wait_exit(WAIT), 86, dn.log_tail())
        self.assertEqual(self.version_of(c.scm), (102, 102))
        for dn in (dn1, dn2, dn3):
            dn.env = {}
            dn.start()
            dn.wait_ready()
        self.wait_status(c, "FINALIZATION_DONE")
        for dn in (dn1, dn2, dn3):
            self.assertEqual(self.version_of(dn), (102, 102))
        self.check_all(c)
        self.wait_writable(c)
        self.put_ok(c, 2, extra=("-D", "ozone.client.checksum.type=SHA256"))
        self.check_all(c)

    def om_status(self, c):
        r = c.ozone_cmd("admin", "om", "finalizationstatus")
        return r.stdout.strip()

    def test_crash_before_dn_command(self):
        # Every node on the new bits, pre-finalized at ZDU_READY; the OM
        # too, so that `ozone admin upgrade finalize` drives SCM.
        c = self.start(old=False, om_old=False, conf={
            "testing.scm.init.apparent.version": "100",
            "testing.datanode.init.apparent.version": "100",
            "testing.om.init.apparent.version": "100",
            "ozone.om.upgrade.finalization.check.interval": "500ms",
            "ozone.client.om.wait.timeout": "60s"})
        om = c.oms[0]
        for n in c.nodes:
            self.assertEqual(self.version_of(n), (100, 102), n.name)
        self.put_ok(c, 3)

        # Armed, the point stays silent while no datanode is behind SCM:
        # SCM keeps serving heartbeats and writes.
        fault = "scm.finalize.before_dn_command"
        self.restart(c, c.scm, old=False, env={"OZONE_FAULT": fault +
                                               ":crash"})
        self.wait_healthy(c, ["dn1", "dn2", "dn3"])
        self.wait_writable(c)
        self.put_ok(c, 2)
        self.assertTrue(c.scm.alive())
        self.assertEqual(self.status(c), "FINALIZATION_REQUIRED")
        self.assertEqual(self.om_status(c), "FINALIZATION_REQUIRED")

        # SCM persists, then dies at the first datanode heartbeat that
        # would carry FINALIZE_UPGRADE.
        r = c.ozone_cmd("admin", "upgrade", "finalize", check=False)
        self.assertEqual(c.scm.wait_exit(WAIT), 86, c.scm.log_tail())
        tail = c.scm.log_tail(60)
        self.assertIn("HDDS finalized CONTAINER_CHECKSUM (102)", tail)
        self.assertIn("fault point '%s' hit: crashing (OZONE_FAULT)" % fault,
                      tail)
        self.assertNotIn("telling datanode", tail)
        marker = r.returncode == 0
        if marker:
            self.assertIn("cluster finalization has been started", r.stdout)
            self.assertEqual(self.om_status(c), "FINALIZATION_IN_PROGRESS")
        else:
            # SCM died before it answered the OM: no marker.
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("Finalization was not successful.", r.stderr)
            self.assertEqual(self.om_status(c), "FINALIZATION_REQUIRED")
        # No datanode was told: all still pre-finalized; the OM too.
        for dn in c.datanodes:
            self.assertEqual(self.version_of(dn), (100, 102), dn.name)
        self.assertEqual(self.version_of(om), (100, 102))
        self.check_all(c)

        # Restarted without the fault: SCM comes back finalized and the
        # datanodes follow over heartbeats.
        self.restart(c, c.scm, old=False)
        self.assertEqual(self.version_of(c.scm), (102, 102))
        if not marker:
            r = c.ozone_cmd("admin", "upgrade", "finalize")
            self.assertIn("SCM: SCM is already finalized at HDDS apparent "
                          "version 102; waiting for datanodes", r.stdout)
            self.assertIn("cluster finalization has been started", r.stdout)
        self.wait_status(c, "FINALIZATION_DONE")
        oztest.wait_for(lambda: self.om_status(c) == "FINALIZATION_DONE",
                        WAIT, "OM FINALIZATION_DONE", 0.2)
        for n in c.nodes:
            self.assertEqual(self.version_of(n), (102, 102), n.name)
        # The OM waited for every datanode, not for a restarted SCM that
        # knew none yet (invariant 3).
        log = om.log_tail(400)
        self.assertIn("HDDS is finalized (SCM reports FINALIZATION_DONE, "
                      "datanodes finalized 3/3): committing the OM finalize "
                      "entry to KEY_TAGS (102)", log)
        self.assertNotIn("datanodes finalized 0/0", log)
        r = c.ozone_cmd("admin", "upgrade", "finalize")
        self.assertIn("Upgrade has already been finalized.", r.stdout)
        r = c.ozone_cmd("admin", "upgrade", "status", "--json")
        st = json.loads(r.stdout)
        self.assertEqual(st["cluster"], "FINALIZATION_DONE")
        self.assertEqual(st["datanodes"]["finalized"], 3)

        # Data intact; new features of both catalogs work.
        self.check_all(c)
        self.wait_writable(c)
        self.put_ok(c, 2, extra=("-D", "ozone.client.checksum.type=SHA256"))
        c.ozone_cmd("sh", "key", "settags", "/vol1/bkt1/k001", "crash=survived")
        tags = json.loads(c.ozone_cmd("sh", "key", "gettags",
                                      "/vol1/bkt1/k001").stdout)
        self.assertEqual(tags, {"crash": "survived"})
        self.check_all(c)


if __name__ == "__main__":
    oztest.main()
