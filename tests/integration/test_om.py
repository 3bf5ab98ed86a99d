#!/usr/bin/env python3
"""Ozone Manager namespace end to end (DESIGN.md §7): SCM, OM and datanodes
as real processes, OzoneManagerService driven from Python grpcio.

- volumes and buckets: create, info, list with prefix/start_after/paging,
  delete, and Ozone's errors (invalid names, already exists, not found,
  not empty) with the gRPC status and the OzoneError in the trailer;
- the namespace survives an OM restart;
- keys: CreateKey returns a block on a pipeline of the requested factor
  (THREE: three distinct datanodes), AllocateBlock honours the exclude
  list, CommitKey makes the key visible with its locations and replaces an
  old version, LookupKey/ListKeys/RenameKey/DeleteKey and their errors,
  bucket usage;
- an OM that cannot reach SCM answers CreateKey with UNAVAILABLE naming
  SCM's address, within its deadline, and keeps serving metadata.
"""
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

SVC = "/ozone.om.OzoneManagerService/"


class OzoneManager(oztest.OzoneTestCase):

    @classmethod
    def setUpClass(cls):
        cls.gen = tempfile.mkdtemp(prefix="oztest-pb2-")
        mods = grpc_stubs.generate(
            oztest.SRC, cls.gen,
            protos=("common.proto", "hdds.proto", "om.proto"))
        cls.pb = mods["common_pb2"]
        cls.hdds = mods["hdds_pb2"]
        cls.om = mods["om_pb2"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.gen, True)

    # ---- helpers ----

    def start(self, **kw):
        self.c = self.cluster(**kw)
        self.addCleanup(self.stop_om_cleanly)
        self.channel = grpc.insecure_channel(self.c.oms[0].rpc_address)
        self.addCleanup(lambda: self.channel.close())

    def stop_om_cleanly(self):
        """The OM must exit 0 (under ASan: no leak, no error)."""
        om = self.c.oms[0]
        if om.alive():
            rc = om.stop()
            self.assertEqual(rc, 0, "OM exited %s:\n%s" % (rc, om.log_tail()))

    def reconnect(self):
        self.channel.close()
        self.channel = grpc.insecure_channel(self.c.oms[0].rpc_address)

    def hdr(self):
        pb = self.pb
        return pb.VersionHeader(component=pb.CLIENT, node_id="pytest",
                                software_version=100, apparent_version=100)

    def call(self, method, timeout=15.0, **fields):
        req_cls = getattr(self.om, method + "Request")
        resp_cls = getattr(self.om, method + "Response")
        req = req_cls(hdr=self.hdr(), **fields)
        resp, _ = grpc_stubs.unary(self.channel, SVC + method, req, resp_cls,
                                   timeout=timeout)
        return resp

    def error(self, method, **fields):
        """(gRPC status, result code name, message) of a failing call."""
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(method, **fields)
        e = cm.exception
        oz = None
        for key, value in e.trailing_metadata() or ():
            if key == "ozone-error-bin":
                oz = self.pb.OzoneError.FromString(value)
        self.assertIsNotNone(oz, "no ozone-error-bin in %r" % (e,))
        self.assertEqual(oz.message, e.details())
        return e.code(), self.pb.ResultCode.Name(oz.code), oz.message

    def assert_error(self, status, code, method, **fields):
        got = self.error(method, **fields)
        self.assertEqual(got[:2], (status, code), got)
        return got[2]

    def volume(self, name, owner=""):
        return self.om.VolumeInfo(name=name, owner=owner)

    def bucket(self, vol, name, rep=None):
        b = self.om.BucketInfo(volume=vol, name=name)
        if rep is not None:
            b.replication = rep
        return b

    # ---- volumes and buckets ----

    def test_volumes_and_buckets(self):
        self.start(datanodes=0, recon=False)
        S, hdds = grpc.StatusCode, self.hdds
        t0 = int(time.time() * 1000)
        self.call("CreateVolume", volume=self.volume("vol1", "alice"))
        v = self.call("InfoVolume", volume="vol1").volume
        self.assertEqual((v.name, v.owner), ("vol1", "alice"))
        self.assertGreaterEqual(v.creation_time, t0 - 1000)
        self.assertGreater(v.object_id, 0)
        msg = self.assert_error(S.ALREADY_EXISTS, "VOLUME_ALREADY_EXISTS",
                                "CreateVolume", volume=self.volume("vol1"))
        self.assertIn("'vol1'", msg)
        msg = self.assert_error(S.INVALID_ARGUMENT, "INVALID_VOLUME_NAME",
                                "CreateVolume", volume=self.volume("Vol_1"))
        self.assertEqual(msg, "invalid volume name 'Vol_1': upper case letter "
                              "'V' is not allowed; use lower case letters, "
                              "digits, '-' and '.'")
        self.assert_error(S.INVALID_ARGUMENT, "INVALID_VOLUME_NAME",
                          "CreateVolume", volume=self.volume("10.0.0.1"))
        self.assert_error(S.NOT_FOUND, "VOLUME_NOT_FOUND", "InfoVolume",
                          volume="nosuch")
        for name in ("vol2", "vol3", "other"):
            self.call("CreateVolume", volume=self.volume(name))
        names = [x.name for x in
                 self.call("ListVolumes", prefix="vol").volumes]
        self.assertEqual(names, ["vol1", "vol2", "vol3"])
        page = self.call("ListVolumes", prefix="vol", start_after="vol1",
                         max_keys=1).volumes
        self.assertEqual([x.name for x in page], ["vol2"])

        # Buckets: default replication is ozone.replication (THREE), owner
        # the volume's.
        self.call("CreateBucket", bucket=self.bucket("vol1", "b-one",
                                                     hdds.ONE))
        self.call("CreateBucket", bucket=self.bucket("vol1", "b-def"))
        b = self.call("InfoBucket", volume="vol1", bucket="b-def").bucket
        self.assertEqual(b.replication, hdds.THREE)
        self.assertEqual(b.owner, "alice")
        b = self.call("InfoBucket", volume="vol1", bucket="b-one").bucket
        self.assertEqual(b.replication, hdds.ONE)
        self.assert_error(S.ALREADY_EXISTS, "BUCKET_ALREADY_EXISTS",
                          "CreateBucket", bucket=self.bucket("vol1", "b-one"))
        self.assert_error(S.NOT_FOUND, "VOLUME_NOT_FOUND", "CreateBucket",
                          bucket=self.bucket("nosuch", "bkt"))
        self.assert_error(S.INVALID_ARGUMENT, "INVALID_BUCKET_NAME",
                          "CreateBucket", bucket=self.bucket("vol1", "b..x"))
        self.assert_error(S.NOT_FOUND, "BUCKET_NOT_FOUND", "InfoBucket",
                          volume="vol1", bucket="nosuch")
        self.assert_error(S.NOT_FOUND, "VOLUME_NOT_FOUND", "ListBuckets",
                          volume="nosuch")
        # vol2's buckets are not listed under vol1.
        self.call("CreateBucket", bucket=self.bucket("vol2", "b-two"))
        names = [x.name for x in
                 self.call("ListBuckets", volume="vol1").buckets]
        self.assertEqual(names, ["b-def", "b-one"])
        msg = self.assert_error(S.FAILED_PRECONDITION, "VOLUME_NOT_EMPTY",
                                "DeleteVolume", volume="vol1")
        self.assertIn("delete them first", msg)
        self.call("DeleteBucket", volume="vol1", bucket="b-def")
        self.assert_error(S.NOT_FOUND, "BUCKET_NOT_FOUND", "DeleteBucket",
                          volume="vol1", bucket="b-def")

        # The namespace is in RocksDB: it survives a restart.
        om = self.c.oms[0]
        self.assertEqual(om.stop(), 0)
        om.start()
        om.wait_ready()
        self.reconnect()
        names = [x.name for x in self.call("ListVolumes").volumes]
        self.assertEqual(names, ["other", "vol1", "vol2", "vol3"])
        names = [x.name for x in
                 self.call("ListBuckets", volume="vol1").buckets]
        self.assertEqual(names, ["b-one"])
        self.call("DeleteBucket", volume="vol1", bucket="b-one")
        self.call("DeleteVolume", volume="vol1")
        self.assert_error(S.NOT_FOUND, "VOLUME_NOT_FOUND", "InfoVolume",
                          volume="vol1")
        status, prom = oztest.http_get(om.http_port, "/prom")
        self.assertEqual(status, 200)
        self.assertRegex(prom, r'ozone_om_requests_total\{op="DeleteVolume"\}'
                               r' 1\b')
        self.assertRegex(prom, r'ozone_om_request_failures_total'
                               r'\{op="InfoVolume"\} 1\b')

    # ---- keys ----

    def create_key(self, bucket, key, size=10, **kw):
        return self.call("CreateKey", volume="vol", bucket=bucket, key=key,
                         data_size=size, **kw)

    def commit(self, bucket, key, client_id, blocks, lengths):
        """Commits key with one location per (block location, length)."""
        locs, offset = [], 0
        for b, n in zip(blocks, lengths):
            locs.append(self.om.KeyLocation(block_id=b.block_id,
                                            pipeline=b.pipeline,
                                            offset=offset, length=n))
            offset += n
        self.call("CommitKey", volume="vol", bucket=bucket, key=key,
                  client_id=client_id, data_size=offset, locations=locs)

    def test_keys(self):
        self.start(datanodes=3, recon=False)
        S, hdds = grpc.StatusCode, self.hdds
        self.call("CreateVolume", volume=self.volume("vol"))
        self.call("CreateBucket", bucket=self.bucket("vol", "three"))
        self.call("CreateBucket", bucket=self.bucket("vol", "one", hdds.ONE))

        # SCM allocates once the datanodes registered and pipelines opened.
        r3 = oztest.wait_for(lambda: (self.create_key("three", "k3"),), 90,
                             "SCM to allocate a THREE block")[0]
        self.assertNotEqual(r3.client_id, 0)
        self.assertEqual(r3.key.replication, hdds.THREE)
        self.assertEqual(len(r3.key.locations), 1)
        p = r3.key.locations[0].pipeline
        self.assertEqual(p.factor, hdds.THREE)
        self.assertEqual(len({m.uuid for m in p.members}), 3, p)
        self.assertEqual({m.uuid for m in p.members}, {"dn1", "dn2", "dn3"})
        for m in p.members:
            self.assertGreater(m.container_port, 0)
        self.assertGreater(r3.key.locations[0].block_id.container_id, 0)
        # Not visible until committed.
        self.assert_error(S.NOT_FOUND, "KEY_NOT_FOUND", "LookupKey",
                          volume="vol", bucket="three", key="k3")
        self.commit("three", "k3", r3.client_id, r3.key.locations, [10])

        # Replication ONE; a second block avoiding the first block's node.
        r1 = oztest.wait_for(lambda: (self.create_key("one", "k1"),), 60,
                             "SCM to allocate a ONE block")[0]
        first = r1.key.locations[0]
        self.assertEqual(len(first.pipeline.members), 1)
        dn = first.pipeline.members[0].uuid
        ab = self.call("AllocateBlock", volume="vol", bucket="one", key="k1",
                       client_id=r1.client_id,
                       exclude=hdds.ExcludeList(datanode_uuids=[dn]))
        self.assertEqual(len(ab.location.pipeline.members), 1)
        self.assertNotEqual(ab.location.pipeline.members[0].uuid, dn)
        self.assertNotEqual(ab.location.block_id, first.block_id)
        self.assert_error(S.NOT_FOUND, "KEY_NOT_FOUND", "AllocateBlock",
                          volume="vol", bucket="one", key="k1",
                          client_id=r1.client_id + 1)
        self.assert_error(S.NOT_FOUND, "KEY_NOT_FOUND", "CommitKey",
                          volume="vol", bucket="one", key="k1",
                          client_id=r1.client_id + 1)
        self.commit("one", "k1", r1.client_id, [first, ab.location],
                    [100, 50])
        k = self.call("LookupKey", volume="vol", bucket="one", key="k1").key
        self.assertEqual(k.data_size, 150)
        self.assertEqual([(x.offset, x.length) for x in k.locations],
                         [(0, 100), (100, 50)])
        self.assertEqual(k.locations[1].block_id, ab.location.block_id)
        self.assertEqual(k.locations[1].pipeline.members[0].uuid,
                         ab.location.pipeline.members[0].uuid)

        # A new version replaces the old one atomically at commit.
        r = self.create_key("one", "k1", replication=hdds.ONE)
        k = self.call("LookupKey", volume="vol", bucket="one", key="k1").key
        self.assertEqual(k.data_size, 150)
        self.commit("one", "k1", r.client_id, r.key.locations, [7])
        k = self.call("LookupKey", volume="vol", bucket="one", key="k1").key
        self.assertEqual(k.data_size, 7)
        b = self.call("InfoBucket", volume="vol", bucket="one").bucket
        self.assertEqual((b.used_bytes, b.used_namespace), (7, 1))
        b = self.call("InfoBucket", volume="vol", bucket="three").bucket
        self.assertEqual((b.used_bytes, b.used_namespace), (30, 1))

        # Empty keys, listing, rename, delete.
        for name in ("dir/a", "dir/b"):
            r = self.create_key("one", name, size=0)
            self.commit("one", name, r.client_id, [], [])
        keys = self.call("ListKeys", volume="vol", bucket="one").keys
        self.assertEqual([x.name for x in keys], ["dir/a", "dir/b", "k1"])
        keys = self.call("ListKeys", volume="vol", bucket="one",
                         prefix="dir/", start_after="dir/a").keys
        self.assertEqual([x.name for x in keys], ["dir/b"])
        self.assert_error(S.ALREADY_EXISTS, "KEY_ALREADY_EXISTS", "RenameKey",
                          volume="vol", bucket="one", key="k1",
                          to_key="dir/a")
        self.assert_error(S.NOT_FOUND, "KEY_NOT_FOUND", "RenameKey",
                          volume="vol", bucket="one", key="nosuch",
                          to_key="x")
        self.call("RenameKey", volume="vol", bucket="one", key="k1",
                  to_key="dir/c")
        self.assert_error(S.NOT_FOUND, "KEY_NOT_FOUND", "LookupKey",
                          volume="vol", bucket="one", key="k1")
        k = self.call("LookupKey", volume="vol", bucket="one",
                      key="dir/c").key
        self.assertEqual((k.name, k.data_size), ("dir/c", 7))
        self.assert_error(S.FAILED_PRECONDITION, "BUCKET_NOT_EMPTY",
                          "DeleteBucket", volume="vol", bucket="one")
        for name in ("dir/a", "dir/b", "dir/c"):
            self.call("DeleteKey", volume="vol", bucket="one", key=name)
        self.assert_error(S.NOT_FOUND, "KEY_NOT_FOUND", "DeleteKey",
                          volume="vol", bucket="one", key="dir/c")
        b = self.call("InfoBucket", volume="vol", bucket="one").bucket
        self.assertEqual((b.used_bytes, b.used_namespace), (0, 0))
        self.call("DeleteBucket", volume="vol", bucket="one")

        # Bad requests.
        self.assert_error(S.NOT_FOUND, "BUCKET_NOT_FOUND", "CreateKey",
                          volume="vol", bucket="nosuch", key="k")
        self.assert_error(S.INVALID_ARGUMENT, "INVALID_KEY_NAME", "CreateKey",
                          volume="vol", bucket="three", key="")
        msg = self.assert_error(S.INVALID_ARGUMENT, "INVALID_KEY_NAME",
                                "CreateKey", volume="vol", bucket="three",
                                key="x" * 1025)
        self.assertIn("1025 bytes long; use at most 1024", msg)

    def test_scm_unreachable(self):
        self.start(datanodes=0, recon=False)
        S, hdds = grpc.StatusCode, self.hdds
        self.call("CreateVolume", volume=self.volume("vol"))
        self.call("CreateBucket", bucket=self.bucket("vol", "one", hdds.ONE))
        # SCM up without datanodes: its refusal comes through unchanged.
        status, code, msg = self.error("CreateKey", volume="vol",
                                       bucket="one", key="k")
        self.assertEqual(code, "FAILED_TO_FIND_HEALTHY_NODES", msg)
        self.assertIn(self.c.scm.rpc_address, msg)
        # SCM down: UNAVAILABLE naming SCM's address, before the 15 s
        # deadline of this call (else DEADLINE_EXCEEDED).
        self.c.scm.stop()
        status, code, msg = self.error("CreateKey", volume="vol",
                                       bucket="one", key="k")
        self.assertEqual((status, code), (S.UNAVAILABLE, "UNAVAILABLE"), msg)
        self.assertIn("SCM at '%s'" % self.c.scm.rpc_address, msg)
        # Metadata still works without SCM.
        b = self.call("InfoBucket", volume="vol", bucket="one").bucket
        self.assertEqual(b.name, "one")
        self.call("CreateBucket", bucket=self.bucket("vol", "two", hdds.ONE))


if __name__ == "__main__":
    oztest.main()
