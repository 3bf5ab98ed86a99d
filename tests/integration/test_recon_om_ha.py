#!/usr/bin/env python3
"""Recon against an OM service of three OMs (DESIGN.md §8, §9), real
processes from LocalCluster with 1 s sync intervals:

- Recon syncs its copy of OM's DB from the leader only: the full sync from
  the leader's /dbCheckpoint (its own HTTP address), DBUpdates deltas from
  the leader (no follower is ever asked for them);
- after `ozone admin om transfer -r` Recon finds the new leader, replaces
  its copy with a full sync from it (sequence numbers differ between OMs'
  DBs) and goes on with deltas from it: keys written after the transfer
  show up in clusterState;
- after the leader is killed with SIGKILL, the same with the next leader.
The source is checked in /api/v1/task/status (omNodeId, omLeaderNodeId),
in Recon's log and in the OMs' own DBUpdates counters.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402
from test_recon import FAST, WAIT, ok, task  # noqa: E402


def om_counter(om, name):
    """A counter of an OM's /prom; 0 when the OM has not created it."""
    status, body = oztest.http_get(om.http_port, "/prom")
    if status != 200:
        raise AssertionError("%s /prom answered %d" % (om.name, status))
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


def log_text(node):
    with open(node.log_path, errors="replace") as f:
        return f.read()


class ReconOmHa(oztest.OzoneTestCase):

    def setUp(self):
        super().setUp()
        self.data = os.path.join(self.tmp, "data.bin")
        with open(self.data, "wb") as f:
            f.write(os.urandom(2048))

    def put(self, c, path):
        # The first put waits for a pipeline; later ones ride out a
        # leader change (the client fails over by itself).
        def attempt():
            return c.ozone_cmd("sh", "key", "put", path, self.data,
                               check=False).returncode == 0
        oztest.wait_for(attempt, WAIT, "put of %s" % path, interval=0.5)

    def wait_leader(self, c, not_name):
        def find():
            leader = c.om_leader(timeout=WAIT)
            return leader if leader.name != not_name else None
        return oztest.wait_for(find, WAIT, "an OM leader other than %s" %
                               not_name, interval=0.2)

    def wait_synced(self, c, leader, counts, what):
        """Until Recon's copy is of leader, Recon names leader as the OM
        leader, and clusterState has counts (volumes, buckets, keys)."""
        def synced():
            cs = ok(c.recon, "clusterState")
            snap = task(c.recon, "OmSnapshotRequest")
            return ((cs["volumes"], cs["buckets"], cs["keys"]) == counts and
                    snap["omNodeId"] == leader.name and
                    snap["omLeaderNodeId"] == leader.name and cs)
        try:
            return oztest.wait_for(synced, WAIT, what, interval=0.2)
        except TimeoutError as e:
            raise AssertionError("%s; clusterState %r; tasks %r\n%s" % (
                e, ok(c.recon, "clusterState"), ok(c.recon, "task/status"),
                c.recon.log_tail(40))) from None

    def assert_full_sync_from(self, c, om, was=None):
        """Recon's log: om named as the leader it syncs from and a full
        sync from om's own /dbCheckpoint (logged just after the copy is
        swapped in, so polled)."""
        leads = "OM sync: OM '%s' at '%s' leads OM service '%s'" % (
            om.name, om.rpc_address, c.OM_SERVICE_ID)
        if was is not None:
            leads += " (was '%s')" % was.name
        url = "http://127.0.0.1:%d/dbCheckpoint" % om.http_port
        full = re.compile(r"full sync from OM '%s' at '%s': \d+ bytes" % (
            re.escape(om.name), re.escape(url)))
        wanted = [leads]
        if was is not None:
            wanted.append("the copy is of OM '%s', the leader is now '%s'" %
                          (was.name, om.name))

        def logged():
            log = log_text(c.recon)
            return all(w in log for w in wanted) and full.search(log)
        try:
            oztest.wait_for(logged, WAIT, "Recon's log of the full sync "
                            "from %s" % om.name, interval=0.2)
        except TimeoutError:
            log = log_text(c.recon)
            for w in wanted:
                self.assertIn(w, log)
            self.assertRegex(log, full)

    def test_follows_the_leader(self):
        c = self.new_cluster(datanodes=1, oms=3, conf=FAST)
        c.start()
        first = c.om_leader(timeout=WAIT)
        c.ozone_cmd("sh", "volume", "create", "/vol0")
        c.ozone_cmd("sh", "bucket", "create", "/vol0/bkt")
        self.put(c, "/vol0/bkt/key0")
        self.put(c, "/vol0/bkt/key1")
        self.wait_synced(c, first, (1, 1, 2), "keys synced from the leader")
        self.assert_full_sync_from(c, first)
        # A later key arrives as a delta, from the leader only.
        self.put(c, "/vol0/bkt/key2")
        self.wait_synced(c, first, (1, 1, 3), "a delta from the leader")
        self.assertEqual(task(c.recon, "OmDeltaRequest")["status"], "OK")
        self.assertGreater(om_counter(first, "ozone_om_db_updates_calls_total"),
                           0)
        for om in c.oms:
            if om is not first:
                self.assertEqual(
                    om_counter(om, "ozone_om_db_updates_calls_total"), 0,
                    "follower %s was asked for DBUpdates" % om.name)
        full_runs = task(c.recon, "OmSnapshotRequest")["runs"]

        # Leadership moves: a full sync from the new leader, then deltas.
        c.ozone_cmd("admin", "om", "transfer", "--service-id",
                    c.OM_SERVICE_ID, "-r")
        second = self.wait_leader(c, first.name)
        c.ozone_cmd("sh", "volume", "create", "/vol1")
        c.ozone_cmd("sh", "bucket", "create", "/vol1/bkt")
        self.put(c, "/vol1/bkt/key0")
        self.wait_synced(c, second, (2, 2, 4),
                         "keys written after the transfer, from %s" %
                         second.name)
        self.assert_full_sync_from(c, second, was=first)
        self.assertGreater(task(c.recon, "OmSnapshotRequest")["runs"],
                           full_runs)
        deltas_before = om_counter(second, "ozone_om_db_updates_calls_total")
        self.put(c, "/vol1/bkt/key1")
        self.wait_synced(c, second, (2, 2, 5), "a delta from %s" % second.name)
        oztest.wait_for(
            lambda: om_counter(second, "ozone_om_db_updates_calls_total") >
            deltas_before, WAIT, "DBUpdates at %s" % second.name)
        self.assertEqual(task(c.recon, "OmDeltaRequest")["status"], "OK")

        # The leader dies (SIGKILL): Recon follows the next one.
        second.kill()
        third = self.wait_leader(c, second.name)
        self.put(c, "/vol1/bkt/key2")
        self.wait_synced(c, third, (2, 2, 6),
                         "a key written after %s was killed, from %s" %
                         (second.name, third.name))
        self.assert_full_sync_from(c, third, was=second)
        self.assertEqual(task(c.recon, "OmSnapshotRequest")["status"], "OK")
        metric = oztest.http_get(c.recon.http_port, "/prom")[1]
        self.assertRegex(metric, r"(?m)^ozone_recon_om_leader_changes_total"
                                 r"(\{[^}]*\})? 2(\.0+)?$")


if __name__ == "__main__":
    oztest.main()
