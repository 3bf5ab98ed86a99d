#!/usr/bin/env python3
"""Foundation (issue 2): the four daemons on loopback answer GetVersion
from the C client and from Python grpcio with a correct VersionHeader;
messages without a header, malformed messages and unknown methods are
refused with clear errors; /healthz, /version and /prom work."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import grpc  # noqa: E402

import grpc_stubs  # noqa: E402
import oztest  # noqa: E402

COMPONENTS = {"scm": "SCM", "om": "OM", "datanode": "DATANODE",
              "recon": "RECON"}
# The current release (DESIGN.md §6.2: the last row of the release table)
# and the catalog each daemon's own version belongs to.
RELEASE = "1.1.0"
RELEASE_VERSIONS = {"OM": 102, "HDDS": 102, "CLIENT": 100}
CATALOG = {"scm": "HDDS", "om": "OM", "datanode": "HDDS", "recon": "HDDS"}
NAMES = {("OM", 102): "KEY_TAGS (102)",
         ("HDDS", 102): "CONTAINER_CHECKSUM (102)"}


class Foundation(oztest.OzoneTestCase):

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.gen = tempfile.mkdtemp(prefix="oztest-pb2-")
        cls.pb = grpc_stubs.generate(oztest.SRC, cls.gen)["common_pb2"]

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.gen, True)

    def test_all_daemons_answer_with_version_header(self):
        c = self.cluster(datanodes=1)
        for node in c.nodes:
            # C client, through the CLI.
            r = c.ozone_cmd("version", "--json", "--remote",
                            node.rpc_address)
            entries = json.loads(r.stdout)
            self.assertEqual(len(entries), 2, r.stdout)
            remote = entries[1]
            self.assertEqual(remote["component"], COMPONENTS[node.kind])
            want = RELEASE_VERSIONS[CATALOG[node.kind]]
            self.assertEqual(remote["softwareVersion"], want)
            self.assertEqual(remote["apparentVersion"], want)
            self.assertFalse(remote["preFinalized"])
            self.assertTrue(remote["clusterId"].startswith("CID-"))
            # Python grpcio with a stock channel and the standard path.
            pb = self.pb
            with grpc.insecure_channel(node.rpc_address) as ch:
                req = pb.GetVersionRequest(hdr=pb.VersionHeader(
                    component=pb.CLIENT, node_id="pytest",
                    software_version=100, apparent_version=100))
                resp, _ = grpc_stubs.unary(
                    ch, "/ozone.VersionService/GetVersion", req,
                    pb.GetVersionResponse)
                self.assertEqual(pb.Component.Name(resp.hdr.component),
                                 COMPONENTS[node.kind])
                self.assertEqual(resp.hdr.software_version, want)
                self.assertEqual(resp.hdr.apparent_version, want)
                self.assertEqual(resp.hdr.cluster_id, remote["clusterId"])
                self.assertTrue(resp.hdr.node_id)
                self.assertEqual(resp.release, RELEASE)
                names = {cv.name: cv.software_version
                         for cv in resp.catalogs}
                self.assertEqual(names, RELEASE_VERSIONS)
                self.assertEqual(resp.rpc_address, node.rpc_address)
            # HTTP endpoints.
            status, body = oztest.http_get(node.http_port, "/healthz")
            self.assertEqual(status, 200)
            v = node.version_json()
            self.assertEqual(v["component"], COMPONENTS[node.kind])
            self.assertEqual(v["softwareVersion"], want)
            self.assertEqual(v["apparentVersion"], want)
            self.assertEqual(v["apparentVersionName"],
                             NAMES[(CATALOG[node.kind], want)])
            status, prom = oztest.http_get(node.http_port, "/prom")
            self.assertEqual(status, 200)
            self.assertIn("# TYPE ozone_software_version gauge", prom)
            self.assertRegex(prom, r'ozone_software_version\{component="%s"'
                             r'.*\} %d' % (COMPONENTS[node.kind], want))
            self.assertRegex(prom, r"ozone_apparent_version\{.*\} %d" % want)
            self.assertIn("ozone_build_info{", prom)
            # The GetVersion calls above were counted and timed.
            self.assertRegex(prom, r'ozone_rpc_requests_total\{service='
                             r'"ozone.VersionService",method="GetVersion"\} '
                             r'[1-9]')
            self.assertIn("# TYPE ozone_rpc_latency_seconds histogram", prom)
            self.assertRegex(prom, r'ozone_rpc_latency_seconds_count\{service='
                             r'"ozone.VersionService",method="GetVersion"\} '
                             r'[1-9]')
        # All components share the cluster id SCM created.
        ids = {n.version_json()["clusterId"] for n in c.nodes}
        self.assertEqual(len(ids), 1, ids)

    def test_bad_requests_are_refused(self):
        c = self.cluster(datanodes=0, recon=False)
        pb = self.pb
        with grpc.insecure_channel(c.scm.rpc_address) as ch:
            # No version header.
            with self.assertRaises(grpc.RpcError) as cm:
                grpc_stubs.unary(ch, "/ozone.VersionService/GetVersion",
                                 pb.GetVersionRequest(),
                                 pb.GetVersionResponse)
            self.assertEqual(cm.exception.code(),
                             grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("missing version header",
                          cm.exception.details())
            # Bytes that are not a protobuf message.
            with self.assertRaises(grpc.RpcError) as cm:
                grpc_stubs.unary(ch, "/ozone.VersionService/GetVersion",
                                 None, pb.GetVersionResponse,
                                 raw_request=b"\xff\xff\xff\xff\x0f")
            self.assertEqual(cm.exception.code(),
                             grpc.StatusCode.INVALID_ARGUMENT)
            # A method nobody serves.
            with self.assertRaises(grpc.RpcError) as cm:
                grpc_stubs.unary(ch, "/ozone.VersionService/NoSuchMethod",
                                 pb.GetVersionRequest(),
                                 pb.GetVersionResponse)
            self.assertEqual(cm.exception.code(),
                             grpc.StatusCode.UNIMPLEMENTED)
            # The daemon is still serving.
            req = pb.GetVersionRequest(hdr=pb.VersionHeader(
                component=pb.CLIENT, node_id="pytest"))
            resp, _ = grpc_stubs.unary(ch,
                                       "/ozone.VersionService/GetVersion",
                                       req, pb.GetVersionResponse)
            self.assertEqual(resp.hdr.component, pb.SCM)

    def test_sigterm_stops_cleanly_and_sighup_reopens_log(self):
        c = self.cluster(datanodes=0, recon=False)
        os.rename(c.scm.log_path, c.scm.log_path + ".1")
        c.scm.proc.send_signal(signal.SIGHUP)
        oztest.wait_for(lambda: c.scm.alive() and
                        "log file reopened" in open(
                            c.scm.log_path + ".1").read(),
                        10, "SIGHUP to be logged")
        self.assertTrue(c.scm.alive())
        rc = c.oms[0].stop()
        self.assertEqual(rc, 0)
        self.assertEqual(c.scm.stop(), 0)


if __name__ == "__main__":
    oztest.main()
