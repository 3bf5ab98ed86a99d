#!/usr/bin/env python3
"""Recon (DESIGN.md §9) with real processes: SCM, OM, datanodes and Recon
from LocalCluster with 1 s sync intervals, driven by the real `ozone` CLI.

- after volumes, buckets and keys are written through OM, clusterState's
  counts match within a few sync intervals (full sync, then DBUpdates
  deltas), datanodes appear with the versions they report, and the JSON
  API's other endpoints answer in shape; OM down: reported in task status
  while Recon keeps serving what it has;
- a Recon with new bits syncs from an OM with old bits (OM started with
  --testing-software-version 100, release 1.0.0), incrementally; an OM
  at a legacy apparent version (< 100) offers no DBUpdates: full syncs
  only, then deltas once it is finalized;
- deleting Recon's DB and restarting it rebuilds everything;
- a checkpoint download cut short (OM fault point om.checkpoint.truncate)
  is detected, reported and never swapped in; Recon retries and recovers
  once the OM serves whole checkpoints again; a download whose connection
  is dropped half-way (om.checkpoint.cut) while Recon has a good copy:
  the copy keeps serving and syncing deltas, the asked-for full sync is
  retried and swapped in once the OM serves whole checkpoints;
- SCM, datanodes and the OM on pre-finalized storage: /api/v1/upgrade
  shows FINALIZATION_REQUIRED from SCM's QueryUpgradeStatus; after
  `ozone admin scm finalizeupgrade` SCM is FINALIZATION_DONE, with the SCM
  finalization (naming who asked, as SCM logged it) and each datanode's
  apparent-version change in the journal; after `ozone admin upgrade
  finalize` the cluster is FINALIZATION_DONE and the journal names who
  started the OM's finalization.
"""
import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402

FAST = {
    "ozone.recon.om.snapshot.task.interval.delay": "1s",
    "ozone.recon.scm.poll.interval": "1s",
    "ozone.replication": "ONE",
}
WAIT = 30.0


def api(recon, path):
    status, body = oztest.http_get(recon.http_port, "/api/v1/" + path,
                                   timeout=5.0)
    return status, json.loads(body) if body else None


def ok(recon, path):
    status, doc = api(recon, path)
    if status != 200:
        raise AssertionError("%s answered %d: %r" % (path, status, doc))
    return doc


def task(recon, name):
    for t in ok(recon, "task/status"):
        if t["taskName"] == name:
            return t
    raise AssertionError("no task %s" % name)


def wait_full_sync_failures(recon, at_least, what):
    """The OmSnapshotRequest task once it has failed at_least times."""
    def failed():
        t = task(recon, "OmSnapshotRequest")
        return t["failures"] >= at_least and t
    return oztest.wait_for(failed, WAIT, what)


def prom(recon, name):
    _, body = oztest.http_get(recon.http_port, "/prom")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class Recon(oztest.OzoneTestCase):

    def start(self, datanodes=3, om_version=None, conf=None, **kw):
        c = self.new_cluster(datanodes=datanodes,
                             conf=dict(FAST, **(conf or {})), **kw)
        if om_version is not None:
            c.oms[0].extra_args = ["--testing-software-version",
                                   str(om_version)]
        c.start()
        self.data = os.path.join(self.tmp, "data.bin")
        with open(self.data, "wb") as f:
            f.write(os.urandom(4096))
        return c

    def put(self, c, path):
        # The first put waits for pipelines to open.
        def attempt():
            return c.ozone_cmd("sh", "key", "put", path, self.data,
                               check=False).returncode == 0
        oztest.wait_for(attempt, WAIT, "put of %s" % path, interval=0.5)

    def write_namespace(self, c, vols=1, buckets=1, keys=1, prefix="vol"):
        for v in range(vols):
            c.ozone_cmd("sh", "volume", "create", "/%s%d" % (prefix, v))
            for b in range(buckets):
                c.ozone_cmd("sh", "bucket", "create",
                            "/%s%d/bucket%d" % (prefix, v, b))
                for k in range(keys):
                    self.put(c, "/%s%d/bucket%d/key%d" % (prefix, v, b, k))

    def wait_counts(self, c, volumes, buckets, keys, what="counts"):
        def match():
            cs = ok(c.recon, "clusterState")
            return (cs["volumes"], cs["buckets"], cs["keys"]) == \
                (volumes, buckets, keys) and cs
        try:
            return oztest.wait_for(match, WAIT, what, interval=0.2)
        except TimeoutError as e:
            raise AssertionError("%s; clusterState %r; tasks %r\n%s" % (
                e, ok(c.recon, "clusterState"), ok(c.recon, "task/status"),
                c.recon.log_tail())) from None

    def test_sync_api_and_om_down(self):
        c = self.start()
        self.write_namespace(c, vols=2, buckets=2, keys=1)
        cs = self.wait_counts(c, 2, 4, 4)
        self.assertEqual(cs["totalDatanodes"], 3)
        self.assertIn("storageReport", cs)
        for k in ("pipelines", "healthyDatanodes", "containers",
                  "missingContainers", "openContainers", "omServiceId",
                  "scmServiceId"):
            self.assertIn(k, cs)
        # Later writes arrive as DBUpdates deltas, not new checkpoints.
        full_before = task(c.recon, "OmSnapshotRequest")["runs"]
        self.put(c, "/vol0/bucket0/later1")
        self.put(c, "/vol0/bucket0/later2")
        c.ozone_cmd("sh", "key", "delete", "/vol1/bucket1/key0")
        self.wait_counts(c, 2, 4, 5, "counts after puts and a delete")
        delta = task(c.recon, "OmDeltaRequest")
        self.assertEqual(delta["status"], "OK", delta)
        self.assertEqual(delta["syncMode"], "INCREMENTAL")
        self.assertEqual(task(c.recon, "OmSnapshotRequest")["runs"],
                         full_before)
        oztest.wait_for(lambda: prom(c.recon, "ozone_recon_om_sync_lag") == 0,
                        WAIT, "sync lag 0")
        self.assertGreaterEqual(prom(c.recon,
                                     "ozone_recon_om_full_syncs_total"), 1)
        self.assertGreaterEqual(prom(c.recon,
                                     "ozone_recon_om_delta_syncs_total"), 1)

        # Datanodes with the versions they report themselves.
        def datanodes_ready():
            dn = ok(c.recon, "datanodes")
            return dn["totalCount"] == 3 and all(
                d["state"] == "HEALTHY" and d["softwareVersion"] > 0
                for d in dn["datanodes"]) and dn
        dn = oztest.wait_for(datanodes_ready, WAIT, "3 healthy datanodes")
        for d in dn["datanodes"]:
            node = next(n for n in c.datanodes if n.name == d["uuid"])
            v = node.version_json()
            self.assertEqual(d["softwareVersion"], v["softwareVersion"])
            self.assertEqual(d["apparentVersion"], v["apparentVersion"])
            for k in ("hostname", "opState", "lastHeartbeat",
                      "storageReport", "pipelines", "containers"):
                self.assertIn(k, d)

        up = ok(c.recon, "upgrade")
        types = sorted(x["type"] for x in up["components"])
        self.assertEqual(types, ["DATANODE"] * 3 + ["OM", "RECON", "SCM"])
        om = next(x for x in up["components"] if x["type"] == "OM")
        self.assertEqual(om["nodeId"], "om1")
        self.assertEqual(om["softwareVersion"],
                         c.oms[0].version_json()["softwareVersion"])
        self.assertEqual(om["health"], "HEALTHY")
        self.assertTrue(any("appeared" in e["event"] for e in up["journal"]))
        self.assertEqual(up["blockers"], [])

        pl = ok(c.recon, "pipelines")
        self.assertGreaterEqual(pl["totalCount"], 1)
        cont = ok(c.recon, "containers?limit=1")
        self.assertLessEqual(len(cont["data"]["containers"]), 1)
        self.assertIn("totalCount", ok(c.recon, "containers/missing"))
        self.assertIn("nonFSO", ok(c.recon, "keys/open"))
        status, err = api(c.recon, "nosuch")
        self.assertEqual(status, 404)
        self.assertIn("error", err)
        status, err = api(c.recon, "containers?limit=abc")
        self.assertEqual(status, 400)
        self.assertIn("limit", err["error"])
        self.assertIs(ok(c.recon, "triggerdbsync/om"), True)

        # OM down: reported, and Recon keeps serving what it has.
        c.oms[0].stop()
        oztest.wait_for(
            lambda: "unreachable" in task(c.recon,
                                          "OmDeltaRequest")["lastError"],
            WAIT, "OM unreachable in task status")
        self.assertEqual(task(c.recon, "OmDeltaRequest")["status"], "FAILED")
        cs = ok(c.recon, "clusterState")
        self.assertEqual((cs["volumes"], cs["keys"]), (2, 5))
        oztest.wait_for(
            lambda: next(x for x in ok(c.recon, "upgrade")["components"]
                         if x["type"] == "OM")["health"] == "UNREACHABLE",
            WAIT, "OM UNREACHABLE in the upgrade view")
        # Back, with a restart in between: sync resumes by itself.
        c.oms[0].start()
        c.oms[0].wait_ready()
        c.ozone_cmd("sh", "volume", "create", "/after")
        self.wait_counts(c, 3, 4, 5, "counts after the OM restart")

    def test_old_om(self):
        # DESIGN.md §2.1: Recon (new bits) before OM (old bits).
        c = self.start(om_version=100)
        self.assertEqual(c.oms[0].version_json()["softwareVersion"], 100)
        self.write_namespace(c, vols=1, buckets=2, keys=2)
        self.wait_counts(c, 1, 2, 4)
        self.put(c, "/vol0/bucket0/more")
        self.wait_counts(c, 1, 2, 5, "delta from the old OM")
        delta = task(c.recon, "OmDeltaRequest")
        self.assertEqual(delta["syncMode"], "INCREMENTAL", delta)
        self.assertEqual(delta["status"], "OK", delta)
        up = ok(c.recon, "upgrade")
        om = next(x for x in up["components"] if x["type"] == "OM")
        recon = next(x for x in up["components"] if x["type"] == "RECON")
        self.assertEqual(om["softwareVersion"], 100)
        self.assertGreater(recon["softwareVersion"], 0)

    def test_legacy_om_full_syncs_only(self):
        # An OM at a legacy apparent version (< 100, ZDU_READY) offers no
        # DBUpdates: Recon keeps in sync with full syncs only, then
        # switches to deltas by itself once the OM is finalized.
        c = self.start(conf={"testing.om.init.apparent.version": "2"})
        self.write_namespace(c, vols=1, buckets=1, keys=1)
        self.wait_counts(c, 1, 1, 1)
        snap = task(c.recon, "OmSnapshotRequest")
        self.assertEqual(snap["syncMode"], "FULL_ONLY", snap)
        self.assertIn("predates DBUpdates", snap["syncModeReason"])
        self.put(c, "/vol0/bucket0/more")
        self.wait_counts(c, 1, 1, 2, "a new key through a full sync")
        self.assertEqual(task(c.recon, "OmDeltaRequest")["runs"], 0)
        self.assertGreaterEqual(task(c.recon, "OmSnapshotRequest")["runs"],
                                2)
        r = c.ozone_cmd("admin", "upgrade", "finalize", "--wait",
                        "--timeout", "120", timeout=180)
        self.assertIn("Cluster finalization is done.", r.stdout)
        oztest.wait_for(lambda: task(c.recon, "OmDeltaRequest")["syncMode"]
                        == "INCREMENTAL", WAIT, "incremental after finalize")
        self.put(c, "/vol0/bucket0/after")
        self.wait_counts(c, 1, 1, 3, "a new key through a delta")
        delta = task(c.recon, "OmDeltaRequest")
        self.assertGreater(delta["runs"], 0)
        self.assertEqual(delta["status"], "OK", delta)

    def test_db_deleted_rebuilds(self):
        c = self.start()
        self.write_namespace(c, vols=2, buckets=1, keys=2)
        self.wait_counts(c, 2, 2, 4)
        c.recon.stop()
        shutil.rmtree(c.recon.overrides["ozone.recon.db.dir"])
        c.recon.start()
        c.recon.wait_ready()
        self.wait_counts(c, 2, 2, 4, "counts after Recon's DB was deleted")
        oztest.wait_for(lambda: ok(c.recon, "datanodes")["totalCount"] == 3,
                        WAIT, "datanodes after the rebuild")
        oztest.wait_for(lambda: ok(c.recon, "clusterState")["containers"] > 0,
                        WAIT, "containers after the rebuild")

    def test_truncated_checkpoint_never_swapped_in(self):
        c = self.start()
        self.write_namespace(c, vols=1, buckets=1, keys=1)
        self.wait_counts(c, 1, 1, 1)
        # A fresh Recon while the OM serves cut checkpoints.
        c.recon.stop()
        recon_dir = c.recon.overrides["ozone.recon.db.dir"]
        shutil.rmtree(recon_dir)
        om = c.oms[0]
        om.stop()
        os.environ["OZONE_FAULT"] = "om.checkpoint.truncate"
        try:
            om.start()
        finally:
            del os.environ["OZONE_FAULT"]
        om.wait_ready()
        c.recon.start()
        c.recon.wait_ready()

        t = wait_full_sync_failures(c.recon, 2, "failed full syncs")
        self.assertEqual(t["status"], "FAILED")
        self.assertRegex(t["lastError"], "truncated|trailer|checksum")
        cs = ok(c.recon, "clusterState")
        self.assertFalse(cs["omSynced"])
        self.assertEqual((cs["volumes"], cs["keys"]), (0, 0))
        storage = os.path.join(recon_dir, "recon")
        self.assertFalse(os.path.exists(os.path.join(storage, "om.current")))
        self.assertEqual([d for d in os.listdir(storage)
                          if d.startswith("om.db.")], [])
        # Whole checkpoints again: Recon recovers by itself.
        om.stop()
        om.start()
        om.wait_ready()
        self.wait_counts(c, 1, 1, 1, "counts once checkpoints are whole")
        self.assertEqual(task(c.recon, "OmSnapshotRequest")["status"], "OK")
        self.assertTrue(os.path.exists(os.path.join(storage, "om.current")))

    def test_cut_download_keeps_good_copy(self):
        c = self.start()
        self.write_namespace(c, vols=1, buckets=1, keys=1)
        self.wait_counts(c, 1, 1, 1)
        storage = os.path.join(c.recon.overrides["ozone.recon.db.dir"],
                               "recon")
        current = os.path.join(storage, "om.current")
        with open(current, "rb") as f:
            good = f.read()
        # The OM now drops the connection half-way through a checkpoint.
        om = c.oms[0]
        om.stop()
        os.environ["OZONE_FAULT"] = "om.checkpoint.cut"
        try:
            om.start()
        finally:
            del os.environ["OZONE_FAULT"]
        om.wait_ready()
        self.put(c, "/vol0/bucket0/during")
        self.wait_counts(c, 1, 1, 2, "delta with the good copy in place")
        before = task(c.recon, "OmSnapshotRequest")["failures"]
        ok(c.recon, "triggerdbsync/om?full=true")

        t = wait_full_sync_failures(c.recon, before + 1,
                                    "the cut full sync reported")
        self.assertEqual(t["status"], "FAILED")
        self.assertIn("full sync from OM", t["lastError"])
        # The good copy keeps serving, untouched, and keeps syncing.
        with open(current, "rb") as f:
            self.assertEqual(f.read(), good)
        self.assertEqual([d for d in os.listdir(storage)
                          if d.startswith("om.db.")],
                         [good.decode().strip()])
        cs = ok(c.recon, "clusterState")
        self.assertTrue(cs["omSynced"])
        self.put(c, "/vol0/bucket0/after-cut")
        self.wait_counts(c, 1, 1, 3, "deltas after the cut full sync")
        # The asked-for full sync is retried until the OM serves whole
        # checkpoints again, then swapped in.
        wait_full_sync_failures(c.recon, t["failures"] + 1,
                                "the full sync retried")
        om.stop()
        om.start()
        om.wait_ready()

        def swapped():
            with open(current, "rb") as f:
                return f.read() != good and task(
                    c.recon, "OmSnapshotRequest")["status"] == "OK"
        oztest.wait_for(swapped, WAIT, "a whole checkpoint swapped in")
        self.wait_counts(c, 1, 1, 3, "counts after the full sync")
        self.assertIn("fault 'om.checkpoint.cut': closing the connection",
                      om.log_tail(400) + open(om.log_path).read())

    def test_finalization_status_and_journal(self):
        # New bits everywhere, SCM, datanodes and the OM on pre-finalized
        # storage (the state after a rolling upgrade); then SCM finalizes
        # (legacy command), then the whole cluster.
        conf = dict(FAST)
        conf.update({"testing.scm.init.apparent.version": "100",
                     "testing.datanode.init.apparent.version": "100",
                     "testing.om.init.apparent.version": "100"})
        c = self.new_cluster(datanodes=2, conf=conf)
        c.start()

        def view(want, dn_apparent, field="finalization"):
            up = ok(c.recon, "upgrade")
            dns = [x for x in up["components"] if x["type"] == "DATANODE"]
            return (up["cluster"][field] == want and
                    len(dns) == 2 and
                    all(x["apparentVersion"] == dn_apparent for x in dns) and
                    up)

        def requested_by(node):
            # Who the server says asked: its "finalize requested by '...'"
            # log line (SCM: "<component> <node id>/<upgrade client id>",
            # the OM: the upgrade client id, else the caller's node id).
            with open(node.log_path, errors="replace") as f:
                found = re.findall(r"finalize requested by '([^']*)'",
                                   f.read())
            self.assertTrue(found, node.log_tail())
            return found[-1]
        try:
            up = oztest.wait_for(lambda: view("FINALIZATION_REQUIRED", 100),
                                 WAIT, "FINALIZATION_REQUIRED", interval=0.3)
        except TimeoutError as e:
            raise AssertionError("%s: %r" % (e, ok(c.recon, "upgrade")))
        scm = next(x for x in up["components"] if x["type"] == "SCM")
        self.assertEqual(scm["finalization"], "FINALIZATION_REQUIRED")
        self.assertEqual(scm["apparentVersion"], 100)
        new = scm["softwareVersion"]
        self.assertGreater(new, 100)
        self.assertEqual(up["cluster"]["scmFinalization"],
                         "FINALIZATION_REQUIRED")
        # Recon polls the OM on its own schedule: wait until it has.
        om = oztest.wait_for(
            lambda: next((x for x in ok(c.recon, "upgrade")["components"]
                          if x["type"] == "OM"), None),
            WAIT, "Recon to report the OM", interval=0.3)
        self.assertIn("finalization", om)
        self.assertTrue(all("source" in b for b in up["blockers"]))

        c.ozone_cmd("admin", "scm", "finalizeupgrade")
        try:
            up = oztest.wait_for(
                lambda: view("FINALIZATION_DONE", new, "scmFinalization"),
                WAIT, "SCM FINALIZATION_DONE", interval=0.3)
        except TimeoutError as e:
            raise AssertionError("%s: %r" % (e, ok(c.recon, "upgrade")))
        scm = next(x for x in up["components"] if x["type"] == "SCM")
        self.assertIn(scm["finalization"],
                      ("FINALIZATION_DONE", "ALREADY_FINALIZED"))
        events = [(e["component"], e["nodeId"], e["event"])
                  for e in up["journal"]]
        scm_events = [ev for comp, _, ev in events if comp == "SCM"]
        # The CLI called SCM itself: its VersionHeader (component CLIENT,
        # node id "ozone-cli", admin-cli/cli.c) and its upgrade client id
        # (the command, admin-cli/cmd_upgrade.c).
        scm_by = requested_by(c.scm)
        self.assertEqual(scm_by,
                         "CLIENT ozone-cli/ozone admin scm finalizeupgrade")
        self.assertIn("SCM finalization started by '%s'" % scm_by, scm_events)
        self.assertEqual(scm["finalizationRequestedBy"], scm_by)
        self.assertIn("SCM finalized to HDDS %d" % new, scm_events)
        # Each datanode's changes form one rising chain from 100 to the new
        # version: in one step, or through a version between when Recon
        # heard a heartbeat while the DN waited on a later feature's
        # precondition (it finalizes feature by feature).
        for dn in (x for x in up["components"] if x["type"] == "DATANODE"):
            moves = [tuple(int(v) for v in m.groups()) for m in (
                re.match(r"apparent version changed from (\d+) to (\d+) "
                         r"\(finalized\)$", ev)
                for comp, node, ev in events
                if comp == "DATANODE" and node == dn["nodeId"]) if m]
            self.assertTrue(moves, events)
            self.assertEqual(moves[0][0], 100, events)
            self.assertEqual(moves[-1][1], new, events)
            for (a, b), (a2, _) in zip(moves, moves[1:] + [(new, None)]):
                self.assertLess(a, b, events)
                self.assertEqual(b, a2, events)

        # The OM: the whole cluster's finalize. The OM records who asked
        # with its marker and keeps it, so Recon names them even if it saw
        # FINALIZATION_REQUIRED turn into FINALIZATION_DONE directly.
        c.ozone_cmd("admin", "upgrade", "finalize", "--wait", "--timeout",
                    str(int(WAIT)))

        def om_done():
            up = view("FINALIZATION_DONE", new)
            om = up and next((x for x in up["components"]
                              if x["type"] == "OM"), None)
            return (om and om["finalization"] == "FINALIZATION_DONE" and
                    (up, om))
        try:
            up, om = oztest.wait_for(om_done, WAIT, "OM FINALIZATION_DONE",
                                     interval=0.3)
        except TimeoutError as e:
            raise AssertionError("%s: %r" % (e, ok(c.recon, "upgrade")))
        om_by = requested_by(c.oms[0])
        self.assertEqual(om_by, "ozone admin upgrade finalize")
        om_events = [e["event"] for e in up["journal"]
                     if e["component"] == "OM"]
        self.assertIn("OM finalization started by '%s'" % om_by, om_events)
        self.assertEqual(om["finalizationRequestedBy"], om_by)
        # SCM was finalized already: who finalized it stays known.
        scm = next(x for x in up["components"] if x["type"] == "SCM")
        self.assertEqual(scm["finalizationRequestedBy"], scm_by)
        st = json.loads(c.ozone_cmd("admin", "upgrade", "status", "-v",
                                    "--json").stdout)
        self.assertEqual(st["om"]["finalizationRequestedBy"], om_by)
        self.assertEqual(st["scm"]["finalizationRequestedBy"], scm_by)


if __name__ == "__main__":
    oztest.main()
