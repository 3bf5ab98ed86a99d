#!/usr/bin/env python3
"""Data path end to end (DESIGN.md §7): SCM, OM and datanodes as real
processes, driven by the real `ozone` CLI and freon.

- volumes, buckets and keys: create, info, list, rename, delete;
- put/get of 0 B, 1 B, 4 MiB + 1 B and 64 MiB keys, byte for byte, with
  small chunk/block/container sizes so keys span chunks, blocks and
  containers;
- replication THREE puts every block on three distinct datanodes, each of
  which holds the committed block (asked over gRPC from Python);
- kill -9 of a datanode during a stream of puts fails no put and loses no
  acknowledged key;
- a corrupted chunk file is detected and the read is served by another
  replica; with every replica corrupted the get fails naming each one;
- bad input: server errors exit 1 with the result code, bad usage exit 2;
- `ozone admin datanode list` in Ozone's plain layout, filtered by
  --node-state (a killed datanode turns up under DEAD);
- a client killed (kill -9) in the middle of a put leaves no key behind,
  and a killed overwrite leaves the old version readable byte for byte.
"""
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import grpc  # noqa: E402

import grpc_stubs  # noqa: E402
import oztest  # noqa: E402

MiB = 1024 * 1024
# Small sizes so that keys cross chunk, block and container boundaries.
SMALL = {
    "ozone.scm.chunk.size": "1MB",
    "ozone.scm.block.size": "4MB",
    "ozone.scm.container.size": "16MB",
}


# `ozone admin datanode list`, plain (Ozone's layout, cmd_admin.c
# print_datanode): per datanode these lines, the related pipelines and a
# blank line.
DN_HEADER = re.compile(r"^Datanode: (\S+) \((/[^/]*)/([^/]+)/([^/]+)/"
                       r"(\d+) pipelines\)$")
DN_PIPELINE = re.compile(r"^([^/\s]+)/(ONE|THREE)/STAND_ALONE/([A-Z]+)/"
                         r"(Leader|Follower)$")
NODE_STATE_ERROR = ("ozone: invalid node state '%s': expected HEALTHY, "
                    "HEALTHY_READONLY, STALE or DEAD\n")


def write_random(path, size, seed):
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, MiB)
            f.write(rnd.randbytes(n))
            left -= n


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MiB), fb.read(MiB)
            if x != y:
                return False
            if not x:
                return True


class DataPath(oztest.OzoneTestCase):

    @classmethod
    def setUpClass(cls):
        cls.gen = tempfile.mkdtemp(prefix="oztest-pb2-")
        mods = grpc_stubs.generate(
            oztest.SRC, cls.gen,
            ("common.proto", "hdds.proto", "datanode.proto"))
        cls.pb = mods["common_pb2"]
        cls.dnpb = mods["datanode_pb2"]
        cls.hdds = mods["hdds_pb2"]

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.gen, True)

    # ---- helpers ----

    def start(self, datanodes=3, **conf):
        props = dict(SMALL)
        props.update(conf)
        return self.cluster(datanodes=datanodes, recon=False, conf=props)

    def sh(self, c, *args, check=True, timeout=180):
        return c.ozone_cmd("sh", *args, check=check, timeout=timeout)

    def json_of(self, c, *args):
        return json.loads(c.ozone_cmd(*args).stdout)

    def wait_pipelines(self, c, factor, count=1, timeout=60):
        def ready():
            ps = self.json_of(c, "admin", "pipeline", "list", "--json")
            return len([p for p in ps if p["state"] == "OPEN" and
                        p["replicationFactor"] == factor]) >= count
        oztest.wait_for(ready, timeout, "%d OPEN %s pipeline(s)" % (
            count, factor), interval=0.2)

    def bucket(self, c, vol, bucket, replication):
        self.sh(c, "volume", "create", "/" + vol)
        self.sh(c, "bucket", "create", "/%s/%s" % (vol, bucket),
                "--replication", replication, "--type", "RATIS")

    def datanode_addresses(self, c):
        nodes = self.json_of(c, "admin", "datanode", "list", "--json")
        return {n["datanodeDetails"]["uuid"]: "%s:%d" % (
            n["datanodeDetails"]["ipAddress"],
            n["datanodeDetails"]["containerPort"]) for n in nodes}

    def get_block(self, addr, container_id, local_id):
        pb, dnpb = self.pb, self.dnpb
        with grpc.insecure_channel(addr) as ch:
            req = dnpb.GetBlockRequest(
                hdr=pb.VersionHeader(component=pb.CLIENT, node_id="pytest",
                                     software_version=100,
                                     apparent_version=100),
                block_id=self.hdds.BlockID(container_id=container_id,
                                           local_id=local_id))
            resp, _ = grpc_stubs.unary(
                ch, "/ozone.datanode.DatanodeService/GetBlock", req,
                dnpb.GetBlockResponse)
            return resp.block

    def put_get(self, c, path, size, seed):
        src = os.path.join(self.tmp, "src-%d" % seed)
        dst = os.path.join(self.tmp, "dst-%d" % seed)
        write_random(src, size, seed)
        self.sh(c, "key", "put", path, src)
        self.sh(c, "key", "get", path, dst)
        self.assertEqual(os.path.getsize(dst), size, path)
        self.assertTrue(same_file(src, dst), "%s differs after get" % path)
        info = self.json_of(c, "sh", "key", "info", path)
        self.assertEqual(info["dataSize"], size)
        self.assertEqual(sum(l["length"] for l in info["ozoneKeyLocations"]),
                         size)
        return info

    def node_of(self, c, uuid):
        for dn in c.datanodes:
            if dn.overrides.get("hdds.datanode.id") == uuid:
                return dn
        self.fail("no datanode with id '%s'" % uuid)

    def block_file(self, dn, container_id, local_id):
        pattern = os.path.join(dn.overrides["hdds.datanode.dir"], "hdds", "*",
                               "containers", str(container_id), "chunks",
                               "%d.block" % local_id)
        files = glob.glob(pattern)
        self.assertEqual(len(files), 1, pattern)
        return files[0]

    def parse_datanode_list(self, text):
        """The plain output of `ozone admin datanode list` as one dict per
        datanode, checking Ozone's layout line by line on the way."""
        if text == "":
            return []
        self.assertTrue(text.endswith("\n\n"), repr(text[-40:]))
        nodes = []
        for block in text[:-2].split("\n\n"):
            lines = block.split("\n")
            self.assertGreaterEqual(len(lines), 5, block)
            m = DN_HEADER.match(lines[0])
            self.assertIsNotNone(m, lines[0])
            op = re.match(r"^Operational State: ([A-Z_]+)$", lines[1])
            health = re.match(r"^Health State: ([A-Z_]+)$", lines[2])
            self.assertIsNotNone(op, block)
            self.assertIsNotNone(health, block)
            self.assertEqual(lines[3], "Related pipelines:", block)
            pipes = {}
            if len(lines) == 5 and not DN_PIPELINE.match(lines[4]):
                self.assertIn(lines[4], (
                    "No pipelines in cluster.",
                    "No related pipelines or the node is not in Healthy "
                    "state."), block)
            else:
                for line in lines[4:]:
                    pm = DN_PIPELINE.match(line)
                    self.assertIsNotNone(pm, line)
                    pipes[pm.group(1)] = pm.group(2, 3, 4)
            self.assertEqual(int(m.group(5)), len(pipes), block)
            nodes.append({"uuid": m.group(1), "location": m.group(2),
                          "ip": m.group(3), "host": m.group(4),
                          "op": op.group(1), "health": health.group(1),
                          "pipelines": pipes})
        return nodes

    def datanode_list_with_pipelines(self, c, *args):
        """(plain datanode list output, pipeline list --json) from one
        moment: retried until the pipelines are the same before and after
        the datanode list (SCM may open or close some meanwhile)."""
        def snapshot():
            def pipes():
                return sorted((p["id"], p["state"], p["replicationFactor"],
                               [d["uuid"] for d in p["datanodes"]])
                              for p in self.json_of(c, "admin", "pipeline",
                                                    "list", "--json"))
            before = pipes()
            text = c.ozone_cmd("admin", "datanode", "list", *args).stdout
            after = pipes()
            return (text, after) if before == after else None
        return oztest.wait_for(snapshot, 60, "a stable pipeline list",
                               interval=0.2)

    def bytes_written(self, c):
        """ozone_datanode_bytes_written_total of every datanode, summed."""
        total = 0
        for dn in c.datanodes:
            status, body = oztest.http_get(dn.http_port, "/prom")
            self.assertEqual(status, 200, dn.name)
            total += sum(int(float(line.split()[-1]))
                         for line in body.splitlines()
                         if line.startswith(
                             "ozone_datanode_bytes_written_total"))
        return total

    def om_requests(self, c, op):
        status, body = oztest.http_get(c.oms[0].http_port, "/prom")
        self.assertEqual(status, 200)
        name = 'ozone_om_requests_total{op="%s"} ' % op
        for line in body.splitlines():
            if line.startswith(name):
                return int(float(line[len(name):]))
        self.fail("OM /prom has no %s" % name)

    def killed_put(self, c, path, src, feed, replicas):
        """Starts `ozone sh key put PATH -` and feeds it the first `feed`
        bytes of src through a pipe that stays open, so the put cannot end
        by itself; once the OM has opened the key and the datanodes hold
        at least half of what was fed (on each of `replicas` replicas),
        kill -9 the client in the middle of its put."""
        written0 = self.bytes_written(c)
        creates0 = self.om_requests(c, "CreateKey")
        commits0 = self.om_requests(c, "CommitKey")
        err_f = open(os.path.join(self.tmp, "put.err"), "w+")
        self.addCleanup(err_f.close)
        proc = subprocess.Popen(
            [c.ozone, "--conf", c.conf_dir, "sh", "key", "put", path, "-"],
            stdin=subprocess.PIPE, stdout=err_f, stderr=err_f, bufsize=0)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())

        def feeder():
            try:
                with open(src, "rb") as f:
                    left = feed
                    while left > 0:
                        piece = f.read(min(left, MiB))
                        proc.stdin.write(piece)
                        left -= len(piece)
            except (BrokenPipeError, ValueError, OSError):
                pass  # the client died (the kill below, or a failure)
        t = threading.Thread(target=feeder, daemon=True)
        t.start()

        def progress():
            if proc.poll() is not None:
                err_f.seek(0)
                raise AssertionError("the put ended by itself (exit %d): %s"
                                     % (proc.returncode, err_f.read()))
            return (self.om_requests(c, "CreateKey") > creates0 and
                    self.bytes_written(c) - written0 >= feed // 2 * replicas)
        oztest.wait_for(progress, 120, "the put to be under way",
                        interval=0.1)
        # Mid-put: open on the OM, never committed, and still running.
        self.assertEqual(self.om_requests(c, "CommitKey"), commits0)
        self.assertIsNone(proc.poll())
        proc.send_signal(signal.SIGKILL)
        self.assertEqual(proc.wait(timeout=30), -signal.SIGKILL)
        t.join(timeout=30)
        self.assertFalse(t.is_alive(), "the feeder is stuck")
        proc.stdin.close()
        self.assertEqual(self.om_requests(c, "CommitKey"), commits0)

    # ---- tests ----

    def test_namespace_through_the_cli(self):
        c = self.start(datanodes=1)
        self.wait_pipelines(c, "ONE")
        self.sh(c, "volume", "create", "/vol1", "--user", "alice")
        self.sh(c, "volume", "create", "o3://%s/vol2" % c.oms[0].rpc_address)
        v = self.json_of(c, "sh", "volume", "info", "/vol1")
        self.assertEqual(v["name"], "vol1")
        self.assertEqual(v["owner"], "alice")
        self.assertEqual(v["quotaInBytes"], -1)
        self.assertIn("metadata", v)
        self.assertRegex(v["creationTime"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        names = [x["name"] for x in self.json_of(c, "sh", "volume", "list")]
        self.assertEqual(sorted(names), ["vol1", "vol2"])

        self.sh(c, "bucket", "create", "/vol1/bk1", "-r", "ONE")
        self.sh(c, "bucket", "create", "/vol1/bk2")
        b = self.json_of(c, "sh", "bucket", "info", "/vol1/bk1")
        self.assertEqual((b["volumeName"], b["name"]), ("vol1", "bk1"))
        self.assertEqual(b["replicationConfig"]["replicationFactor"], "ONE")
        names = [x["name"] for x in
                 self.json_of(c, "sh", "bucket", "list", "/vol1")]
        self.assertEqual(names, ["bk1", "bk2"])

        src = os.path.join(self.tmp, "small")
        write_random(src, 1000, 1)
        for k in ("a", "dir/b", "dir/c"):
            self.sh(c, "key", "put", "/vol1/bk1/" + k, src)
        keys = self.json_of(c, "sh", "key", "list", "/vol1/bk1")
        self.assertEqual([k["name"] for k in keys], ["a", "dir/b", "dir/c"])
        self.assertEqual({k["dataSize"] for k in keys}, {1000})
        keys = self.json_of(c, "sh", "key", "list", "/vol1/bk1", "--prefix",
                            "dir/")
        self.assertEqual([k["name"] for k in keys], ["dir/b", "dir/c"])
        keys = self.json_of(c, "sh", "key", "list", "/vol1/bk1", "-l", "1")
        self.assertEqual([k["name"] for k in keys], ["a"])
        self.sh(c, "key", "rename", "/vol1/bk1", "a", "z")
        self.assertEqual(self.sh(c, "key", "info", "/vol1/bk1/a",
                                 check=False).returncode, 1)
        out = os.path.join(self.tmp, "z")
        self.sh(c, "key", "get", "/vol1/bk1/z", out)
        self.assertTrue(same_file(src, out))
        # get refuses to overwrite without --force.
        r = self.sh(c, "key", "get", "/vol1/bk1/z", out, check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("--force", r.stderr)
        self.sh(c, "key", "get", "--force", "/vol1/bk1/dir/b", out)

        # Non-empty volume and bucket are refused, then deleted in order.
        r = self.sh(c, "volume", "delete", "/vol1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("VOLUME_NOT_EMPTY", r.stderr)
        r = self.sh(c, "bucket", "delete", "/vol1/bk1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("BUCKET_NOT_EMPTY", r.stderr)
        for k in ("z", "dir/b", "dir/c"):
            self.sh(c, "key", "delete", "/vol1/bk1/" + k)
        self.assertEqual(self.json_of(c, "sh", "key", "list", "/vol1/bk1"), [])
        r = self.sh(c, "bucket", "delete", "/vol1/bk1")
        self.assertIn("Bucket bk1 is deleted", r.stdout)
        self.sh(c, "bucket", "delete", "/vol1/bk2")
        r = self.sh(c, "volume", "delete", "/vol1")
        self.assertIn("Volume vol1 is deleted", r.stdout)
        names = [x["name"] for x in self.json_of(c, "sh", "volume", "list")]
        self.assertEqual(names, ["vol2"])

    def test_bad_input(self):
        c = self.start(datanodes=1)
        self.sh(c, "volume", "create", "/vol1")
        src = os.path.join(self.tmp, "src")
        write_random(src, 10, 3)
        cases = [
            # (args, exit status, text in stderr)
            (("volume", "info", "/nosuchvol"), 1, "VOLUME_NOT_FOUND"),
            (("volume", "create", "/Bad_Name"), 1, "INVALID_VOLUME_NAME"),
            (("volume", "create", "/ab"), 1, "INVALID_VOLUME_NAME"),
            (("volume", "create", "/vol1"), 1, "VOLUME_ALREADY_EXISTS"),
            (("bucket", "create", "/nosuchvol/bk1"), 1, "VOLUME_NOT_FOUND"),
            (("bucket", "create", "/vol1/B"), 1, "INVALID_BUCKET_NAME"),
            (("bucket", "info", "/vol1/nob"), 1, "BUCKET_NOT_FOUND"),
            (("key", "info", "/vol1/nob/k"), 1, "BUCKET_NOT_FOUND"),
            (("key", "put", "/nosuchvol/bkt/k", src), 1,
             "VOLUME_NOT_FOUND"),
            (("key", "get", "/vol1/nob/k", "-"), 1, "BUCKET_NOT_FOUND"),
            (("volume", "info", "/vol1/b"), 2, "not a volume path"),
            (("key", "put", "/vol1/b"), 2, "needs PATH FILE"),
            (("key", "put", "/vol1/b/k", "f", "--bogus"), 2,
             "unknown option '--bogus'"),
            (("bucket", "create", "/vol1/bb", "-r", "TWO"), 2,
             "invalid replication 'TWO'"),
            (("key", "info", "s3://vol1/b/k"), 2, "unsupported scheme"),
            (("volume", "fly"), 2, "unknown command"),
            (("blob", "list"), 2, "unknown object"),
        ]
        for i, (args, status, text) in enumerate(cases):
            r = self.sh(c, *args, check=False)
            self.assertEqual(r.returncode, status,
                             "case %d %s: %s" % (i, args, r.stderr))
            self.assertIn(text, r.stderr, "case %d %s" % (i, args))
            self.assertTrue(r.stderr.startswith("ozone: "), r.stderr)
        self.sh(c, "bucket", "create", "/vol1/bk1")
        r = self.sh(c, "key", "info", "/vol1/bk1/missing", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("KEY_NOT_FOUND", r.stderr)
        for args in (["sh", "--help"], ["sh", "key", "--help"],
                     ["sh", "key", "put", "--help"], ["admin", "--help"],
                     ["freon", "--help"], ["freon", "ockg", "--help"]):
            r = c.ozone_cmd(*args)
            self.assertIn("Usage:", r.stdout, args)

    def test_put_get_sizes_across_blocks_and_containers(self):
        c = self.start(datanodes=3)
        self.wait_pipelines(c, "THREE")
        self.bucket(c, "vol1", "bk3", "THREE")
        for i, size in enumerate((0, 1, 4 * MiB + 1, 64 * MiB)):
            info = self.put_get(c, "/vol1/bk3/key%d" % i, size, 100 + i)
            # A block whose container SCM closes while it is written ends
            # early and the rest goes to a new block: at least this many.
            blocks = len(info["ozoneKeyLocations"])
            self.assertGreaterEqual(blocks, (size + 4 * MiB - 1) // (4 * MiB),
                                    "blocks of a %d-byte key" % size)
            self.assertTrue(all(0 < l["length"] <= 4 * MiB
                                for l in info["ozoneKeyLocations"]), info)
        containers = self.json_of(c, "admin", "container", "list", "--json")
        self.assertGreaterEqual(len(containers), 4, containers)
        # Overwrite replaces the old version atomically.
        self.put_get(c, "/vol1/bk3/key2", 3 * MiB + 7, 200)
        # Standard input and output.
        data = os.urandom(300000)
        c.ozone_cmd("sh", "key", "put", "/vol1/bk3/stdin", "-",
                    input_bytes=data)
        r = subprocess.run([c.ozone, "--conf", c.conf_dir, "sh", "key", "cat",
                            "/vol1/bk3/stdin"], capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, data)

    def test_replication_three_puts_each_block_on_three_datanodes(self):
        c = self.start(datanodes=3)
        self.wait_pipelines(c, "THREE")
        self.bucket(c, "vol1", "bk3", "THREE")
        info = self.put_get(c, "/vol1/bk3/k", 9 * MiB + 5, 7)
        self.assertEqual(info["replicationConfig"]["replicationFactor"],
                         "THREE")
        addrs = self.datanode_addresses(c)
        self.assertEqual(len(info["ozoneKeyLocations"]), 3)
        for loc in info["ozoneKeyLocations"]:
            self.assertEqual(len(set(loc["datanodes"])), 3, loc)
            for uuid in loc["datanodes"]:
                block = self.get_block(addrs[uuid], loc["containerID"],
                                       loc["localID"])
                self.assertGreaterEqual(block.size, loc["length"], uuid)
                self.assertEqual(sum(ch.length for ch in block.chunks),
                                 block.size)
        # Replication ONE: one datanode per block.
        self.wait_pipelines(c, "ONE", 3)
        self.sh(c, "bucket", "create", "/vol1/bk1", "-r", "ONE")
        info = self.put_get(c, "/vol1/bk1/k", 5 * MiB, 8)
        for loc in info["ozoneKeyLocations"]:
            self.assertEqual(len(loc["datanodes"]), 1, loc)

    def test_kill_datanode_during_puts_loses_nothing(self):
        c = self.start(datanodes=4)
        self.wait_pipelines(c, "THREE")
        self.bucket(c, "vol1", "bk3", "THREE")
        n = 300
        cmd = [c.ozone, "--conf", c.conf_dir, "freon", "ockg", "-n", str(n),
               "-s", "256KB", "-t", "3", "-v", "vol1", "-b", "bk3", "-p",
               "stream", "--json"]
        out_f = open(os.path.join(self.tmp, "ockg.out"), "w+")
        err_f = open(os.path.join(self.tmp, "ockg.err"), "w+")
        self.addCleanup(out_f.close)
        self.addCleanup(err_f.close)
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())

        def some_keys():
            keys = self.json_of(c, "sh", "key", "list", "/vol1/bk3", "--all")
            return keys if len(keys) >= 15 else None
        keys = oztest.wait_for(some_keys, 120, "15 keys written")
        # Kill a datanode that holds the latest key, so writes in flight
        # are on its pipelines.
        info = self.json_of(c, "sh", "key", "info",
                            "/vol1/bk3/" + keys[-1]["name"])
        victim = self.node_of(c, info["ozoneKeyLocations"][0]["datanodes"][0])
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        self.assertIsNone(proc.poll(), "ockg finished before the kill; "
                          "make the stream longer")
        rc = proc.wait(timeout=300)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
        self.assertEqual(rc, 0, out + err)
        figures = json.loads(out)
        self.assertEqual((figures["successful"], figures["failures"]),
                         (n, 0), out)
        # Every acknowledged key is there with the right content.
        r = c.ozone_cmd("freon", "ockv", "-n", str(n), "-s", "256KB", "-t",
                        "3", "-v", "vol1", "-b", "bk3", "-p", "stream",
                        check=False, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Successful: %d, failed: 0" % n, r.stdout)

    def test_corrupt_chunk_is_detected_and_read_from_another_replica(self):
        c = self.start(datanodes=3)
        self.wait_pipelines(c, "THREE")
        self.bucket(c, "vol1", "bk3", "THREE")
        src = os.path.join(self.tmp, "src")
        write_random(src, 2 * MiB + 3, 11)
        self.sh(c, "key", "put", "/vol1/bk3/k", src)
        info = self.json_of(c, "sh", "key", "info", "/vol1/bk3/k")
        loc = info["ozoneKeyLocations"][0]
        files = [self.block_file(self.node_of(c, uuid), loc["containerID"],
                                 loc["localID"])
                 for uuid in loc["datanodes"]]

        def corrupt(path):
            with open(path, "r+b") as f:
                f.seek(MiB + 100)  # inside the second chunk
                b = f.read(1)
                f.seek(MiB + 100)
                f.write(bytes([b[0] ^ 0xFF]))

        # The first replica the client reads is corrupt: the read goes on.
        corrupt(files[0])
        dst = os.path.join(self.tmp, "dst")
        r = self.sh(c, "key", "get", "/vol1/bk3/k", dst)
        self.assertTrue(same_file(src, dst))
        self.assertIn("CHECKSUM_MISMATCH", r.stderr + r.stdout)
        self.assertIn(loc["datanodes"][0], r.stderr)
        # Every replica corrupt: the get fails and names each datanode.
        for f in files[1:]:
            corrupt(f)
        r = self.sh(c, "key", "get", "--force", "/vol1/bk3/k", dst,
                    check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        last = r.stderr.strip().splitlines()[-1]
        self.assertTrue(last.startswith("ozone: CHECKSUM_MISMATCH: "), last)
        for uuid in loc["datanodes"]:
            self.assertIn(uuid, last)
        self.assertFalse(os.path.exists(dst), "partial output left behind")

    def test_datanode_list_plain_output_and_node_state_filter(self):
        c = self.start(datanodes=3)
        self.wait_pipelines(c, "THREE")
        self.wait_pipelines(c, "ONE", 3)
        details = {n["datanodeDetails"]["uuid"]: n for n in
                   self.json_of(c, "admin", "datanode", "list", "--json")}
        self.assertEqual(sorted(details), ["dn1", "dn2", "dn3"])
        for args in ((), ("--node-state", "HEALTHY")):
            text, pipes = self.datanode_list_with_pipelines(c, *args)
            nodes = self.parse_datanode_list(text)
            # In the order the datanodes registered with SCM.
            self.assertEqual(sorted(n["uuid"] for n in nodes),
                             ["dn1", "dn2", "dn3"], text)
            for n in nodes:
                d = details[n["uuid"]]["datanodeDetails"]
                self.assertEqual((n["location"], n["ip"], n["host"]),
                                 (d["networkLocation"], d["ipAddress"],
                                  d["hostName"]), n)
                self.assertEqual(n["location"], "/default-rack")
                self.assertEqual(n["ip"], "127.0.0.1")
                self.assertEqual((n["op"], n["health"]),
                                 ("IN_SERVICE", "HEALTHY"), n)
                # Its pipelines, each with factor, state and whether it
                # is the first member (Leader).
                mine = {pid: (factor, state,
                              "Leader" if members[0] == n["uuid"]
                              else "Follower")
                        for pid, state, factor, members in pipes
                        if n["uuid"] in members}
                self.assertEqual(n["pipelines"], mine, text)
                self.assertIn(("THREE", "OPEN"),
                              {v[:2] for v in mine.values()}, n)
        # No datanode is dead: nothing at all is printed.
        r = c.ozone_cmd("admin", "datanode", "list", "--node-state", "DEAD")
        self.assertEqual((r.stdout, r.stderr), ("", ""))
        # A state that is not one fails as bad usage before asking SCM.
        for bad in ("BOGUS", "NODE_STATE_UNSPECIFIED", ""):
            r = c.ozone_cmd("admin", "datanode", "list", "--node-state", bad,
                            check=False)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(r.stdout, "")
            self.assertEqual(r.stderr, NODE_STATE_ERROR % bad)
        r = c.ozone_cmd("admin", "datanode", "list", "--node-state",
                        check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("'--node-state'", r.stderr)
        self.assertIn("needs a value", r.stderr)
        # A killed datanode turns DEAD (ozone.scm.dead.node.interval) and
        # leaves the HEALTHY list.
        c.datanodes[2].kill()

        def dead():
            r = c.ozone_cmd("admin", "datanode", "list", "--node-state",
                            "DEAD")
            return r.stdout or None
        nodes = self.parse_datanode_list(oztest.wait_for(
            dead, 90, "dn3 to be DEAD", interval=0.5))
        self.assertEqual([(n["uuid"], n["op"], n["health"]) for n in nodes],
                         [("dn3", "IN_SERVICE", "DEAD")])
        nodes = self.parse_datanode_list(c.ozone_cmd(
            "admin", "datanode", "list", "--node-state", "HEALTHY").stdout)
        self.assertEqual(sorted((n["uuid"], n["health"]) for n in nodes),
                         [("dn1", "HEALTHY"), ("dn2", "HEALTHY")])
        nodes = self.parse_datanode_list(c.ozone_cmd(
            "admin", "datanode", "list").stdout)
        self.assertEqual(sorted((n["uuid"], n["health"]) for n in nodes),
                         [("dn1", "HEALTHY"), ("dn2", "HEALTHY"),
                          ("dn3", "DEAD")])

    def test_client_killed_mid_put_leaves_no_key(self):
        c = self.start(datanodes=3)
        self.wait_pipelines(c, "THREE")
        self.bucket(c, "vol1", "bk3", "THREE")
        src = os.path.join(self.tmp, "big")
        write_random(src, 64 * MiB, 21)
        # 24 MiB of the 64 MiB: across blocks (4 MB) and containers.
        self.killed_put(c, "/vol1/bk3/k", src, 24 * MiB, 3)
        r = self.sh(c, "key", "info", "/vol1/bk3/k", check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("KEY_NOT_FOUND", r.stderr)
        r = self.sh(c, "key", "get", "/vol1/bk3/k",
                    os.path.join(self.tmp, "dst"), check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("KEY_NOT_FOUND", r.stderr)
        self.assertEqual(self.json_of(c, "sh", "key", "list", "/vol1/bk3"),
                         [])
        # The abandoned open key does not stand in the way of a new put.
        self.put_get(c, "/vol1/bk3/k", 1 * MiB + 1, 22)

    def test_client_killed_mid_overwrite_keeps_old_version(self):
        c = self.start(datanodes=3)
        self.wait_pipelines(c, "THREE")
        self.bucket(c, "vol1", "bk3", "THREE")
        old = self.put_get(c, "/vol1/bk3/k", 5 * MiB + 3, 23)
        old_src = os.path.join(self.tmp, "src-23")
        src = os.path.join(self.tmp, "big")
        write_random(src, 64 * MiB, 24)
        self.killed_put(c, "/vol1/bk3/k", src, 24 * MiB, 3)
        self.assertEqual(self.json_of(c, "sh", "key", "info", "/vol1/bk3/k"),
                         old)
        dst = os.path.join(self.tmp, "dst")
        self.sh(c, "key", "get", "/vol1/bk3/k", dst)
        self.assertEqual(os.path.getsize(dst), 5 * MiB + 3)
        self.assertTrue(same_file(old_src, dst), "old version differs")
        keys = self.json_of(c, "sh", "key", "list", "/vol1/bk3")
        self.assertEqual([(k["name"], k["dataSize"]) for k in keys],
                         [("k", 5 * MiB + 3)])


if __name__ == "__main__":
    oztest.main()
