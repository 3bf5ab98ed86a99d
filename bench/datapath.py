#!/usr/bin/env python3
"""Data-path benchmark (DESIGN.md §13): figures and ratios against a
baseline measured in the same run, never a pass/fail on wall-clock time.

1. Metadata path: freon ockg with 0-byte keys (CreateKey + CommitKey, no
   datanode I/O): ops/s and latency.
2. Data path: freon ockg with 16 MiB keys, replication ONE and THREE:
   MB/s and latency.
3. Baseline: the same number of bytes copied over a loopback TCP socket
   into a file with an fsync every 4 MiB (what one datanode must do at
   least for a 4 MiB chunk with PutBlock's fsync), in this process.

Prints each figure and data-path MB/s as a ratio of the baseline.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("OZONE_SRC") or os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "deploy", "local"))
import ozone_local  # noqa: E402

MiB = 1024 * 1024
FSYNC_EVERY = 4 * MiB


def tcp_fsync_baseline(total_bytes, path):
    """MiB/s of sending total_bytes over loopback TCP into a file, with an
    fsync for every 4 MiB received."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    done = {}

    def receive():
        conn, _ = srv.accept()
        buf = bytearray(1 * MiB)
        view = memoryview(buf)
        since_sync = 0
        with conn, open(path, "wb") as f:
            while True:
                n = conn.recv_into(view)
                if n == 0:
                    break
                f.write(view[:n])
                since_sync += n
                if since_sync >= FSYNC_EVERY:
                    f.flush()
                    os.fsync(f.fileno())
                    since_sync = 0
            f.flush()
            os.fsync(f.fileno())
        done["end"] = time.monotonic()

    t = threading.Thread(target=receive)
    t.start()
    chunk = os.urandom(4 * MiB)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as c:
        left = total_bytes
        while left > 0:
            n = min(left, len(chunk))
            c.sendall(chunk[:n])
            left -= n
    t.join()
    srv.close()
    os.unlink(path)
    return total_bytes / MiB / (done["end"] - start)


def freon(cluster, *args):
    r = cluster.ozone_cmd("--json", "freon", "ockg", *args, timeout=1800)
    return json.loads(r.stdout)


def wait_pipelines(cluster, factor):
    def ready():
        r = cluster.ozone_cmd("admin", "pipeline", "list", "--json",
                              check=False)
        return r.returncode == 0 and any(
            p["state"] == "OPEN" and p["replicationFactor"] == factor
            for p in json.loads(r.stdout))
    ozone_local.wait_for(ready, 120, "an OPEN %s pipeline" % factor,
                         interval=0.2)


def line(name, f, extra=""):
    lat = f["latencyMs"]
    print("%-28s %9.1f ops/s %9.2f MB/s  p50 %7.2f  p90 %7.2f  p99 %7.2f  "
          "max %7.2f ms%s" % (name, f["opsPerSec"], f["mbPerSec"],
                              lat["p50"], lat["p90"], lat["p99"], lat["max"],
                              extra), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ozone", default=os.path.join(SRC, "build", "admin-cli",
                                                   "ozone"))
    p.add_argument("--small-keys", type=int, default=2000)
    p.add_argument("--large-keys", type=int, default=12)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--dir", default=None, help="cluster directory "
                   "(default: a temporary one, removed afterwards)")
    a = p.parse_args()

    base = a.dir or tempfile.mkdtemp(prefix="ozone-bench-")
    cluster = ozone_local.LocalCluster(os.path.join(base, "cluster"),
                                       a.ozone, datanodes=3, recon=False,
                                       conf={"ozone.log.level": "WARN"})
    results = {}
    try:
        cluster.start()
        wait_pipelines(cluster, "THREE")
        wait_pipelines(cluster, "ONE")
        common = ["-t", str(a.threads), "-v", "bench", "-b", "meta"]
        f = freon(cluster, "-n", str(a.small_keys), "-s", "0", "-p", "meta",
                  "-r", "THREE", *common)
        results["meta"] = f
        line("0 B keys (metadata)", f)

        total = a.large_keys * 16 * MiB
        base_mbs = tcp_fsync_baseline(total, os.path.join(base, "baseline"))
        print("%-28s %29.2f MB/s  (%d MiB, fsync every 4 MiB)" % (
            "baseline: TCP + fsync", base_mbs, total // MiB), flush=True)
        results["baseline_mbps"] = base_mbs
        for repl in ("ONE", "THREE"):
            f = freon(cluster, "-n", str(a.large_keys), "-s", "16MB", "-p",
                      "large-" + repl, "-r", repl,
                      "-t", str(min(a.threads, 4)), "-v", "bench", "-b",
                      "b-" + repl.lower())
            results[repl] = f
            line("16 MiB keys, %s" % repl, f,
                 "  (%.2fx baseline)" % (f["mbPerSec"] / base_mbs))
    finally:
        cluster.stop()
        if a.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps({"metaOpsPerSec": results["meta"]["opsPerSec"],
                      "baselineMBps": results["baseline_mbps"],
                      "oneMBps": results["ONE"]["mbPerSec"],
                      "threeMBps": results["THREE"]["mbPerSec"],
                      "oneRatio": results["ONE"]["mbPerSec"] /
                      results["baseline_mbps"],
                      "threeRatio": results["THREE"]["mbPerSec"] /
                      results["baseline_mbps"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
