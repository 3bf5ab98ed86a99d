#!/usr/bin/env python3
"""SCM data path (DESIGN.md §7) with real datanodes: registration, health
HEALTHY -> STALE -> DEAD -> HEALTHY, pipelines that open once their
members report them and close when a member goes stale, containers that
close when full, AllocateBlock and its errors, and an SCM restart that
keeps containers, pipelines and the block id counter. Driven through
ScmAdminService / ScmBlockService / ScmDatanodeService from Python grpcio."""
import os
import re
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import grpc  # noqa: E402

import grpc_stubs  # noqa: E402
import oztest  # noqa: E402

FAST = {
    "hdds.heartbeat.interval": "500ms",
    "ozone.scm.stale.node.interval": "3s",
    "ozone.scm.dead.node.interval": "6s",
    # 4 blocks fill a container, so closing is quick to reach.
    "ozone.scm.block.size": "1MB",
    "ozone.scm.container.size": "4MB",
}
WAIT = 30.0
# The HDDS software version of the current release (DESIGN.md §6.2): fake
# datanodes must run it, or SCM fences them (§6.6).
HDDS = 102


class Scm:
    """ScmAdminService and ScmBlockService through a stock grpcio channel."""

    def __init__(self, pb, address):
        self.c, self.h, self.s = pb
        self.address = address
        self.channel = grpc.insecure_channel(address)

    def close(self):
        self.channel.close()

    def hdr(self, component=None, node="pytest", apparent=HDDS,
            cluster=""):
        c = self.c
        return c.VersionHeader(component=component or c.CLIENT, node_id=node,
                               software_version=HDDS,
                               apparent_version=apparent,
                               cluster_id=cluster)

    def call(self, service, method, req, resp_cls):
        # A channel connected to an SCM that has since restarted fails its
        # first call with UNAVAILABLE ("Broken pipe") before reconnecting:
        # retry that once, as every ozone-c client does (DESIGN.md §5).
        for attempt in range(2):
            try:
                resp, _ = grpc_stubs.unary(
                    self.channel, "/ozone.scm.%s/%s" % (service, method),
                    req, resp_cls)
                return resp
            except grpc.RpcError as e:
                if attempt == 1 or e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
        raise AssertionError("unreachable")

    def datanodes(self):
        s = self.s
        r = self.call("ScmAdminService", "ListDatanodes",
                      s.ListDatanodesRequest(hdr=self.hdr()),
                      s.ListDatanodesResponse)
        return {d.details.uuid: d for d in r.datanodes}

    def states(self):
        return {u: self.h.NodeState.Name(d.state)
                for u, d in self.datanodes().items()}

    def pipelines(self):
        s = self.s
        return list(self.call("ScmAdminService", "ListPipelines",
                              s.ListPipelinesRequest(hdr=self.hdr()),
                              s.ListPipelinesResponse).pipelines)

    def open_pipelines(self, factor):
        return [p for p in self.pipelines()
                if p.factor == factor and p.state == self.h.PIPELINE_OPEN]

    def containers(self, state=0):
        s = self.s
        return list(self.call("ScmAdminService", "ListContainers",
                              s.ListContainersRequest(hdr=self.hdr(),
                                                      state=state),
                              s.ListContainersResponse).containers)

    def allocate(self, factor, n=1, exclude=None):
        s = self.s
        req = s.AllocateBlockRequest(hdr=self.hdr(self.c.OM, "om-test"),
                                     size=1024, num_blocks=n, factor=factor,
                                     owner="om")
        if exclude:
            req.exclude.datanode_uuids.extend(exclude)
        return list(self.call("ScmBlockService", "AllocateBlock", req,
                              s.AllocateBlockResponse).blocks)


def ozone_error(pb_common, rpc_error):
    """The structured OzoneError of a failed call (trailing metadata)."""
    for md in rpc_error.trailing_metadata() or ():
        if md.key == "ozone-error-bin":
            return pb_common.OzoneError.FromString(md.value)
    return None


def prom_value(port, name, labels):
    status, body = oztest.http_get(port, "/prom")
    if status != 200:
        return None
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)),
                  body, re.M)
    return float(m.group(1)) if m else None


class ScmDataPath(oztest.OzoneTestCase):

    @classmethod
    def setUpClass(cls):
        cls.gen = tempfile.mkdtemp(prefix="oztest-pb2-")
        mods = grpc_stubs.generate(oztest.SRC, cls.gen,
                                   ("common.proto", "hdds.proto",
                                    "scm.proto"))
        cls.pb = (mods["common_pb2"], mods["hdds_pb2"], mods["scm_pb2"])
        cls.c, cls.h, cls.s = cls.pb

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.gen, True)

    def start(self, datanodes=3, **conf):
        props = dict(FAST)
        props.update(conf)
        cluster = self.cluster(datanodes=datanodes, oms=0, recon=False,
                               conf=props)
        scm = Scm(self.pb, cluster.scm.rpc_address)
        self.addCleanup(scm.close)
        return cluster, scm

    def wait_ready(self, scm, n):
        """n HEALTHY datanodes, their ONE pipelines and one THREE pipeline
        OPEN, each with an OPEN container."""
        h = self.h
        oztest.wait_for(lambda: list(scm.states().values()) ==
                        ["HEALTHY"] * n, WAIT, "%d HEALTHY datanodes" % n)
        oztest.wait_for(lambda: len(scm.open_pipelines(h.ONE)) == n and
                        len(scm.open_pipelines(h.THREE)) >= 1, WAIT,
                        "pipelines to open")

        def containers_ready():
            open_ids = {c.pipeline_id
                        for c in scm.containers(h.CONTAINER_OPEN)}
            return all(p.id in open_ids for p in
                       scm.open_pipelines(h.ONE) +
                       scm.open_pipelines(h.THREE))
        oztest.wait_for(containers_ready, WAIT, "open containers")

    def test_registration_details_and_metrics(self):
        cluster, scm = self.start()
        h = self.h
        self.wait_ready(scm, 3)
        nodes = scm.datanodes()
        self.assertEqual(sorted(nodes), ["dn1", "dn2", "dn3"])
        for dn in cluster.datanodes:
            d = nodes[dn.name]
            self.assertEqual(d.details.ip_address, "127.0.0.1")
            self.assertEqual(d.details.container_port, dn.rpc_port)
            self.assertEqual(d.software_version, HDDS)
            self.assertEqual(d.apparent_version, HDDS)
            self.assertEqual(d.op_state, h.IN_SERVICE)
            self.assertGreater(d.last_heartbeat_ms, 0)
            # It reports its pipelines: its ONE and the THREE pipeline.
            self.assertGreaterEqual(len(d.pipeline_ids), 2)
        three = scm.open_pipelines(h.THREE)
        self.assertEqual(len(three), 1)  # 3 nodes: one distinct set
        self.assertEqual(sorted(m.uuid for m in three[0].members),
                         ["dn1", "dn2", "dn3"])
        port = cluster.scm.http_port
        oztest.wait_for(lambda: prom_value(port, "ozone_scm_datanodes",
                                           'state="HEALTHY"') == 3,
                        WAIT, "ozone_scm_datanodes gauge")
        self.assertEqual(prom_value(port, "ozone_scm_pipelines",
                                    'state="OPEN"'), 4)
        self.assertEqual(prom_value(port, "ozone_scm_containers",
                                    'state="OPEN"'), 4)

    def test_health_stale_dead_and_back(self):
        cluster, scm = self.start()
        h = self.h
        self.wait_ready(scm, 3)
        three = scm.open_pipelines(h.THREE)[0]
        dn3 = cluster.datanodes[2]
        dn3.kill()
        oztest.wait_for(lambda: scm.states()["dn3"] == "STALE", WAIT,
                        "dn3 STALE")
        # A pipeline with a stale member is closed, and its containers
        # are closing (the other members are told to close them).
        by_id = {p.id: p for p in scm.pipelines()}
        self.assertEqual(by_id[three.id].state, h.PIPELINE_CLOSED)
        for c in scm.containers():
            if c.pipeline_id == three.id:
                self.assertIn(c.state, (h.CONTAINER_CLOSING,
                                        h.CONTAINER_CLOSED))
        with self.assertRaises(grpc.RpcError) as cm:
            scm.allocate(h.THREE)
        self.assertEqual(cm.exception.code(),
                         grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("cannot allocate a block with replication THREE: 2 "
                      "healthy datanodes, 3 needed",
                      cm.exception.details())
        err = ozone_error(self.c, cm.exception)
        self.assertEqual(err.code, self.c.FAILED_TO_FIND_HEALTHY_NODES)
        # ONE still works, on the healthy nodes only.
        for _ in range(4):
            b = scm.allocate(h.ONE)[0]
            self.assertNotEqual(b.pipeline.members[0].uuid, "dn3")
        oztest.wait_for(lambda: scm.states()["dn3"] == "DEAD", WAIT,
                        "dn3 DEAD")
        dn3.start()
        oztest.wait_for(lambda: scm.states()["dn3"] == "HEALTHY", WAIT,
                        "dn3 HEALTHY again")
        # New pipelines take it back; THREE allocation works again.
        self.wait_ready(scm, 3)
        blocks = scm.allocate(h.THREE, n=2)
        self.assertEqual(len(blocks), 2)
        self.assertEqual(sorted(m.uuid for m in blocks[0].pipeline.members),
                         ["dn1", "dn2", "dn3"])
        self.assertNotEqual(blocks[0].pipeline.id, three.id)

    def test_full_container_closes(self):
        cluster, scm = self.start()
        h = self.h
        self.wait_ready(scm, 3)
        blocks = scm.allocate(h.THREE, n=4)  # 4 x 1MB fill 4MB
        cid = blocks[0].block_id.container_id
        self.assertEqual({b.block_id.container_id for b in blocks}, {cid})
        ids = [b.block_id.local_id for b in blocks]
        self.assertEqual(ids, sorted(set(ids)))
        # The datanodes get CLOSE_CONTAINER and report it closed.
        oztest.wait_for(lambda: any(c.id == cid for c in
                                    scm.containers(h.CONTAINER_CLOSED)),
                        WAIT, "container %d CLOSED" % cid)
        c = [c for c in scm.containers() if c.id == cid][0]
        self.assertEqual(c.used_bytes, 4 << 20)
        self.assertEqual(c.key_count, 4)
        self.assertEqual(sorted(c.replica_uuids), ["dn1", "dn2", "dn3"])
        nxt = scm.allocate(h.THREE)[0]
        self.assertNotEqual(nxt.block_id.container_id, cid)
        self.assertGreater(nxt.block_id.local_id, max(ids))
        # An exclude list naming a member of the only THREE set fails
        # with the reason.
        with self.assertRaises(grpc.RpcError) as cm:
            scm.allocate(h.THREE, exclude=["dn2"])
        self.assertIn("excluded: 'dn2'", cm.exception.details())

    def test_restart_keeps_containers_and_pipelines(self):
        self.maxDiff = None
        cluster, scm = self.start()
        h = self.h
        self.wait_ready(scm, 3)
        before = scm.allocate(h.THREE, n=2)
        pipes = {p.id: p.state for p in scm.pipelines()}
        conts = {c.id: (c.state, c.used_bytes) for c in scm.containers()}
        self.assertEqual(cluster.scm.stop(), 0)
        cluster.scm.start()
        cluster.scm.wait_ready()
        # Same records right after the restart, before any datanode is back.
        self.assertEqual({p.id: p.state for p in scm.pipelines()}, pipes)
        self.assertEqual({c.id: (c.state, c.used_bytes)
                          for c in scm.containers()}, conts)
        # Datanodes are asked to register again and come back HEALTHY; the
        # old THREE pipeline is still the one used, and ids keep growing.
        oztest.wait_for(lambda: list(scm.states().values()) ==
                        ["HEALTHY"] * 3, WAIT, "datanodes re-registered")
        after = scm.allocate(h.THREE)[0]
        self.assertEqual(after.pipeline.id, before[0].pipeline.id)
        self.assertEqual(after.block_id.container_id,
                         before[0].block_id.container_id)
        self.assertGreater(after.block_id.local_id,
                           max(b.block_id.local_id for b in before))
        log = open(cluster.scm.log_path).read()
        self.assertIn("heartbeat from unknown datanode", log)

    def test_registration_refusals_and_readonly(self):
        cluster, scm = self.start(datanodes=0)
        c, h, s = self.pb
        cid = cluster.scm.version_json()["clusterId"]

        def register(uuid, cluster_id, apparent=HDDS):
            req = s.RegisterRequest(
                hdr=scm.hdr(c.DATANODE, uuid, apparent, cluster_id),
                datanode=h.DatanodeDetails(uuid=uuid, hostname="fake",
                                           ip_address="127.0.0.1",
                                           container_port=1))
            return scm.call("ScmDatanodeService", "RegisterDatanode", req,
                            s.RegisterResponse)
        with self.assertRaises(grpc.RpcError) as cm:
            register("stranger", "CID-elsewhere")
        self.assertEqual(cm.exception.code(),
                         grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("belongs to cluster 'CID-elsewhere'",
                      cm.exception.details())
        self.assertEqual(ozone_error(c, cm.exception).code,
                         c.CLUSTER_ID_MISMATCH)
        # Behind SCM's apparent version: readable, never in a new pipeline.
        r = register("old", cid, apparent=99)
        self.assertEqual(r.cluster_id, cid)
        self.assertEqual(r.datanode_uuid, "old")
        self.assertEqual(scm.states(), {"old": "HEALTHY_READONLY"})
        self.assertEqual(scm.pipelines(), [])
        # An unknown datanode's heartbeat is answered with REREGISTER.
        resp = scm.call("ScmDatanodeService", "Heartbeat",
                        s.HeartbeatRequest(
                            hdr=scm.hdr(c.DATANODE, "ghost", HDDS, cid),
                            datanode_uuid="ghost"),
                        s.HeartbeatResponse)
        self.assertEqual([cmd.type for cmd in resp.commands],
                         [s.REREGISTER])


if __name__ == "__main__":
    oztest.main()
