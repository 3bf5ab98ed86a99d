#!/usr/bin/env python3
"""Datanode (DESIGN.md §7): SCM and one real datanode process, driven over
DatanodeService by Python grpcio. Chunks written and committed read back
byte-exact, survive a clean restart and a kill -9 right after PutBlock's
answer; a chunk corrupted on disk is refused with CHECKSUM_MISMATCH, never
returned; a chunk whose checksum does not match its bytes is refused on
write. The datanode registers and heartbeats to SCM with its real ports,
takes part in the pipelines SCM creates, outlives an SCM outage and
registers again when SCM is back."""
import os
import random
import signal
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import grpc  # noqa: E402

import grpc_stubs  # noqa: E402
import oztest  # noqa: E402

SVC = "/ozone.datanode.DatanodeService/"
PIPELINE = "pipeline-test-1"


def crc32c(data):
    """CRC32C (Castagnoli), bitwise: independent of the C implementation."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class Datanode(oztest.OzoneTestCase):

    @classmethod
    def setUpClass(cls):
        cls.gen = tempfile.mkdtemp(prefix="oztest-pb2-")
        mods = grpc_stubs.generate(
            oztest.SRC, cls.gen,
            protos=("common.proto", "hdds.proto", "datanode.proto",
                    "scm.proto"))
        cls.pb = mods["common_pb2"]
        cls.hdds = mods["hdds_pb2"]
        cls.dn = mods["datanode_pb2"]
        cls.scm = mods["scm_pb2"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.gen, True)

    # ---- helpers ----

    def setUp(self):
        super().setUp()
        self.c = self.cluster(datanodes=1, oms=0, recon=False,
                              conf={"ozone.replication": "ONE",
                                    "ozone.scm.block.size": "1MB",
                                    "ozone.scm.container.size": "2MB"})
        self.node = self.c.datanodes[0]
        self.channel = None
        self.connect()
        # Runs before the cluster's own stop: a clean exit status (under
        # sanitizers: no leak, no error) is part of every test.
        self.addCleanup(self.stop_datanode_cleanly)

    def stop_datanode_cleanly(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.node.alive():
            rc = self.node.stop()
            self.assertEqual(rc, 0, self.node.log_tail())

    def connect(self):
        if self.channel is not None:
            self.channel.close()
        self.channel = grpc.insecure_channel(self.node.rpc_address)

    def hdr(self):
        pb = self.pb
        return pb.VersionHeader(component=pb.CLIENT, node_id="pytest",
                                software_version=100, apparent_version=100)

    def call(self, method, req, resp_cls):
        resp, _ = grpc_stubs.unary(self.channel, SVC + method, req, resp_cls,
                                   timeout=10.0)
        return resp

    def call_error(self, method, req, resp_cls):
        """The (grpc status, OzoneError) of a call that must fail."""
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(method, req, resp_cls)
        e = cm.exception
        oz = None
        for key, value in e.trailing_metadata() or ():
            if key == "ozone-error-bin":
                oz = self.pb.OzoneError.FromString(value)
        self.assertIsNotNone(oz, "no ozone-error-bin in %r" % (e,))
        self.assertEqual(oz.message, e.details())
        return e.code(), oz

    def chunk(self, lid, n, offset, data):
        return self.dn.ChunkInfo(name="%d_chunk_%d" % (lid, n), offset=offset,
                                 length=len(data),
                                 checksum_type=self.dn.CRC32C,
                                 checksum=crc32c(data))

    def block_id(self, cid, lid):
        return self.hdds.BlockID(container_id=cid, local_id=lid)

    def write_block(self, cid, lid, parts):
        """WriteChunk each part, then PutBlock; returns the chunk infos."""
        chunks, offset = [], 0
        for n, data in enumerate(parts):
            ch = self.chunk(lid, n, offset, data)
            self.call("WriteChunk", self.dn.WriteChunkRequest(
                hdr=self.hdr(), block_id=self.block_id(cid, lid), chunk=ch,
                data=data, pipeline_id=PIPELINE), self.dn.WriteChunkResponse)
            chunks.append(ch)
            offset += len(data)
        resp = self.call("PutBlock", self.dn.PutBlockRequest(
            hdr=self.hdr(), block=self.dn.BlockData(
                block_id=self.block_id(cid, lid), chunks=chunks,
                size=offset)), self.dn.PutBlockResponse)
        self.assertEqual(resp.committed_length, offset)
        return chunks

    def read_chunk(self, cid, lid, ch):
        return self.call("ReadChunk", self.dn.ReadChunkRequest(
            hdr=self.hdr(), block_id=self.block_id(cid, lid), chunk=ch),
            self.dn.ReadChunkResponse).data

    def check_block(self, cid, lid, parts):
        """GetBlock lists the chunks; each reads back byte-exact."""
        resp = self.call("GetBlock", self.dn.GetBlockRequest(
            hdr=self.hdr(), block_id=self.block_id(cid, lid)),
            self.dn.GetBlockResponse)
        self.assertEqual(len(resp.block.chunks), len(parts))
        self.assertEqual(resp.block.size, sum(len(p) for p in parts))
        for ch, data in zip(resp.block.chunks, parts):
            self.assertEqual(ch.checksum, crc32c(data))
            self.assertEqual(self.read_chunk(cid, lid, ch), data)

    def restart(self, sig=signal.SIGTERM):
        self.channel.close()
        self.channel = None
        rc = self.node.stop(sig)
        if sig == signal.SIGTERM:
            self.assertEqual(rc, 0, self.node.log_tail())
        self.node.start()
        self.node.wait_ready()
        self.connect()

    def block_file(self, cid, lid):
        cluster_id = self.node.version_json()["clusterId"]
        return os.path.join(self.node.overrides["hdds.datanode.dir"], "hdds",
                            cluster_id, "containers", str(cid), "chunks",
                            "%d.block" % lid)

    # ---- tests ----

    def test_write_read_restart_corrupt(self):
        rnd = random.Random(7)
        parts = [rnd.randbytes(65536), rnd.randbytes(40000)]
        self.write_block(1, 100, parts)
        self.check_block(1, 100, parts)

        info = self.call("GetContainer", self.dn.ContainerInfoRequest(
            hdr=self.hdr(), container_id=1),
            self.dn.ContainerInfoResponse).container
        self.assertEqual(self.hdds.ContainerState.Name(info.state),
                         "CONTAINER_OPEN")
        self.assertEqual(info.used_bytes, 105536)
        self.assertEqual(info.block_count, 1)
        self.assertEqual(info.pipeline_id, PIPELINE)
        listed = self.call("ListBlock", self.dn.ListBlockRequest(
            hdr=self.hdr(), container_id=1), self.dn.ListBlockResponse)
        self.assertEqual([b.block_id.local_id for b in listed.blocks], [100])

        # A clean restart keeps everything.
        self.restart()
        self.check_block(1, 100, parts)

        # kill -9 right after PutBlock answered: nothing is lost.
        more = [rnd.randbytes(30000)]
        self.write_block(1, 101, more)
        self.restart(signal.SIGKILL)
        self.check_block(1, 101, more)
        self.check_block(1, 100, parts)

        # Corrupt one byte of the second chunk on disk.
        path = self.block_file(1, 100)
        with open(path, "r+b") as f:
            f.seek(65536 + 123)
            b = f.read(1)
            f.seek(65536 + 123)
            f.write(bytes([b[0] ^ 0x40]))
        resp = self.call("GetBlock", self.dn.GetBlockRequest(
            hdr=self.hdr(), block_id=self.block_id(1, 100)),
            self.dn.GetBlockResponse)
        first, second = resp.block.chunks
        self.assertEqual(self.read_chunk(1, 100, first), parts[0])
        code, oz = self.call_error("ReadChunk", self.dn.ReadChunkRequest(
            hdr=self.hdr(), block_id=self.block_id(1, 100), chunk=second),
            self.dn.ReadChunkResponse)
        self.assertEqual(code, grpc.StatusCode.DATA_LOSS)
        self.assertEqual(self.pb.ResultCode.Name(oz.code),
                         "CHECKSUM_MISMATCH")
        self.assertIn("is corrupt", oz.message)
        self.assertIn("1/100", oz.message)
        status, prom = oztest.http_get(self.node.http_port, "/prom")
        self.assertEqual(status, 200)
        self.assertRegex(prom,
                         r"ozone_datanode_checksum_failures_total [1-9]")
        self.assertRegex(prom, r'ozone_datanode_containers\{state="OPEN"\} 1')

    def test_bad_writes_refused(self):
        data = b"x" * 1000
        ch = self.chunk(5, 0, 0, data)
        ch.checksum ^= 1
        code, oz = self.call_error("WriteChunk", self.dn.WriteChunkRequest(
            hdr=self.hdr(), block_id=self.block_id(2, 5), chunk=ch,
            data=data, pipeline_id=PIPELINE), self.dn.WriteChunkResponse)
        self.assertEqual(self.pb.ResultCode.Name(oz.code),
                         "CHECKSUM_MISMATCH")
        self.assertIn("arrived corrupt", oz.message)
        # Declared length differs from the bytes carried.
        ch = self.chunk(5, 0, 0, data)
        ch.length = 999
        code, oz = self.call_error("WriteChunk", self.dn.WriteChunkRequest(
            hdr=self.hdr(), block_id=self.block_id(2, 5), chunk=ch,
            data=data, pipeline_id=PIPELINE), self.dn.WriteChunkResponse)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        # Neither created the container.
        code, oz = self.call_error("GetContainer", self.dn.ContainerInfoRequest(
            hdr=self.hdr(), container_id=2), self.dn.ContainerInfoResponse)
        self.assertEqual(self.pb.ResultCode.Name(oz.code),
                         "CONTAINER_NOT_FOUND")
        # A block that was never committed.
        code, oz = self.call_error("GetBlock", self.dn.GetBlockRequest(
            hdr=self.hdr(), block_id=self.block_id(2, 5)),
            self.dn.GetBlockResponse)
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(self.pb.ResultCode.Name(oz.code), "BLOCK_NOT_FOUND")
        # PutBlock listing bytes that were never written.
        self.write_block(2, 6, [data])
        code, oz = self.call_error("PutBlock", self.dn.PutBlockRequest(
            hdr=self.hdr(), block=self.dn.BlockData(
                block_id=self.block_id(2, 6),
                chunks=[self.chunk(6, 0, 0, data),
                        self.chunk(6, 1, 1000, data)], size=2000)),
            self.dn.PutBlockResponse)
        self.assertEqual(self.pb.ResultCode.Name(oz.code), "CHUNK_NOT_FOUND")
        self.check_block(2, 6, [data])

    def scm_datanodes(self):
        with grpc.insecure_channel(self.c.scm.rpc_address) as ch:
            resp, _ = grpc_stubs.unary(
                ch, "/ozone.scm.ScmAdminService/ListDatanodes",
                self.scm.ListDatanodesRequest(hdr=self.hdr()),
                self.scm.ListDatanodesResponse, timeout=5.0)
        return {d.details.uuid: d for d in resp.datanodes}

    def scm_pipelines(self):
        with grpc.insecure_channel(self.c.scm.rpc_address) as ch:
            resp, _ = grpc_stubs.unary(
                ch, "/ozone.scm.ScmAdminService/ListPipelines",
                self.scm.ListPipelinesRequest(hdr=self.hdr()),
                self.scm.ListPipelinesResponse, timeout=5.0)
        return resp.pipelines

    def healthy_in_scm(self):
        d = self.scm_datanodes().get("dn1")
        return d is not None and \
            self.hdds.NodeState.Name(d.state) == "HEALTHY" and d

    def log_has(self, text):
        with open(self.node.log_path, errors="replace") as f:
            return text in f.read()

    def test_heartbeats_and_scm_outage(self):
        d = oztest.wait_for(self.healthy_in_scm, 30, "dn1 HEALTHY in SCM")
        self.assertEqual(d.details.container_port, self.node.rpc_port)
        self.assertEqual(d.details.http_port, self.node.http_port)
        self.assertEqual(d.details.ip_address, "127.0.0.1")
        self.assertEqual(len(d.storage), 1)
        self.assertEqual(d.storage[0].storage_location,
                         self.node.overrides["hdds.datanode.dir"])
        self.assertGreater(d.storage[0].capacity, 0)

        # SCM asks it to join a ONE pipeline; the datanode reports the id
        # back in its heartbeats, which opens the pipeline.
        def open_pipeline():
            for p in self.scm_pipelines():
                if [m.uuid for m in p.members] == ["dn1"] and \
                        self.hdds.PipelineState.Name(p.state) == \
                        "PIPELINE_OPEN":
                    return p
            return None
        p = oztest.wait_for(open_pipeline, 30, "an OPEN pipeline of dn1")
        oztest.wait_for(lambda: p.id in self.healthy_in_scm().pipeline_ids,
                        30, "dn1 to report pipeline %s" % p.id)

        # SCM goes away: the datanode keeps serving and retrying.
        self.assertEqual(self.c.scm.stop(), 0)
        oztest.wait_for(lambda: self.log_has("cannot heartbeat to SCM"), 30,
                        "dn1 to notice SCM is gone")
        self.write_block(3, 1, [b"still serving"])
        self.assertTrue(self.node.alive())

        # SCM comes back without the node (nodes are not persisted): the
        # datanode registers again, with its container and its pipeline.
        self.c.scm.start()
        self.c.scm.wait_ready()
        d = oztest.wait_for(self.healthy_in_scm, 30, "dn1 back in SCM")
        self.assertEqual(d.container_count, 1)
        oztest.wait_for(lambda: self.log_has("reachable again"), 30,
                        "dn1 to log the recovery")
        self.check_block(3, 1, [b"still serving"])

    def test_close_container_command(self):
        """SCM closes a full container: the datanode makes it CLOSED and
        refuses writes to it from then on."""
        oztest.wait_for(self.healthy_in_scm, 30, "dn1 HEALTHY in SCM")

        def allocate():
            with grpc.insecure_channel(self.c.scm.rpc_address) as ch:
                resp, _ = grpc_stubs.unary(
                    ch, "/ozone.scm.ScmBlockService/AllocateBlock",
                    self.scm.AllocateBlockRequest(
                        hdr=self.hdr(), size=1 << 20, num_blocks=1,
                        factor=self.hdds.ONE, owner="test"),
                    self.scm.AllocateBlockResponse, timeout=5.0)
            return resp.blocks[0]
        first = oztest.wait_for(allocate, 30, "a block from SCM")
        cid = first.block_id.container_id
        lid = first.block_id.local_id
        self.assertEqual([m.uuid for m in first.pipeline.members], ["dn1"])
        data = b"closing soon" * 100
        ch = self.chunk(lid, 0, 0, data)
        self.call("WriteChunk", self.dn.WriteChunkRequest(
            hdr=self.hdr(), block_id=first.block_id, chunk=ch, data=data,
            pipeline_id=first.pipeline.id), self.dn.WriteChunkResponse)
        self.call("PutBlock", self.dn.PutBlockRequest(
            hdr=self.hdr(), block=self.dn.BlockData(
                block_id=first.block_id, chunks=[ch], size=len(data))),
            self.dn.PutBlockResponse)
        # The second block fills the container (2 x 1MB of 2MB).
        second = allocate()
        self.assertEqual(second.block_id.container_id, cid)

        def closed_on_dn():
            info = self.call("GetContainer", self.dn.ContainerInfoRequest(
                hdr=self.hdr(), container_id=cid),
                self.dn.ContainerInfoResponse).container
            return self.hdds.ContainerState.Name(info.state) == \
                "CONTAINER_CLOSED"
        oztest.wait_for(closed_on_dn, 30, "container %d CLOSED on dn1" % cid)
        # The command handler logs after the state change is visible.
        oztest.wait_for(lambda: self.log_has("CLOSE_CONTAINER %d: done" % cid),
                        10, "the datanode to log the close command")
        code, oz = self.call_error("WriteChunk", self.dn.WriteChunkRequest(
            hdr=self.hdr(), block_id=second.block_id,
            chunk=self.chunk(second.block_id.local_id, 0, 0, data),
            data=data, pipeline_id=second.pipeline.id),
            self.dn.WriteChunkResponse)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(self.pb.ResultCode.Name(oz.code),
                         "CONTAINER_NOT_OPEN")
        self.assertEqual(self.read_chunk(cid, lid, ch), data)


if __name__ == "__main__":
    oztest.main()
