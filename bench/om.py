#!/usr/bin/env python3
"""OM benchmark (DESIGN.md §8, §13): figures beside a baseline measured in
the same run, never a pass/fail on wall-clock time.

1. Key create+commit per second (freon ockg, 0-byte keys, 16 threads) with
   one OM (a one-node raft group) and with an OM service of three.
2. The write pause during a leader transfer: the largest put latency of
   a freon stream while `ozone admin om transfer -r` runs, beside the
   largest latency of the same stream without a transfer.
3. Baseline: bench_consensus (a 3-node libraft cluster on 127.0.0.1 with
   fsync, small entries), whose commit rate bounds what the OM service can
   do: each key is two raft entries (CreateKey, CommitKey).
4. The double buffer's batching on the leader during the rate run (its
   /prom figures): applied entries per RocksDB write.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("OZONE_SRC") or os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "deploy", "local"))
import ozone_local  # noqa: E402


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
    ozone_local.wait_for(ready, 60, "an OPEN %s pipeline" % factor, 0.2)


def line(name, f, extra=""):
    lat = f["latencyMs"]
    print("%-34s %8.1f keys/s  p50 %6.2f  p99 %7.2f  max %8.2f ms "
          "(failures %d)%s" % (name, f["opsPerSec"], lat["p50"], lat["p99"],
                               lat["max"], f["failures"], extra), flush=True)


def prom(node):
    status, body = ozone_local.http_get(node.http_port, "/prom")
    out = {}
    if status == 200:
        for ln in body.splitlines():
            if ln.startswith("ozone_om_double_buffer_"):
                name, _, value = ln.rpartition(" ")
                out[name] = float(value)
    return out


def buffer_line(before, after):
    ops = (after.get("ozone_om_double_buffer_flush_operations_total", 0) -
           before.get("ozone_om_double_buffer_flush_operations_total", 0))
    txs = (after.get("ozone_om_double_buffer_flushed_transactions_total", 0) -
           before.get("ozone_om_double_buffer_flushed_transactions_total", 0))
    biggest = after.get("ozone_om_double_buffer_max_flush_transactions", 0)
    if ops <= 0:
        print("  double buffer: no figures on /prom")
        return None
    print("  double buffer: %d entries in %d RocksDB writes (%.1f per write, "
          "largest %d)" % (txs, ops, txs / ops, biggest), flush=True)
    return txs / ops


def run_cluster(base, ozone, oms, keys, threads, transfer):
    conf = {"ozone.log.level": "WARN", "ozone.replication": "ONE"}
    c = ozone_local.LocalCluster(os.path.join(base, "cluster-%d" % oms),
                                 ozone, datanodes=1, oms=oms, recon=False,
                                 conf=conf)
    out = {}
    try:
        c.start()
        if oms > 1:
            c.om_leader()
        wait_pipelines(c, "ONE")
        common = ["-s", "0", "-t", str(threads), "-v", "bench", "-b",
                  "ombench"]
        freon(c, "-n", "200", "-p", "warm", *common)
        leader = c.om_leader() if oms > 1 else c.oms[0]
        before = prom(leader)
        f = freon(c, "-n", str(keys), "-p", "rate", *common)
        out["rate"] = f
        line("%d OM(s): 0 B keys, %d threads" % (oms, threads), f)
        out["entriesPerWrite"] = buffer_line(before, prom(leader))
        if transfer and oms > 1:
            f = freon(c, "-n", str(keys // 2), "-p", "steady", *common)
            out["steady"] = f
            line("  stream, no transfer", f)
            done = []

            def transfer_soon():
                time.sleep(1.0)
                t0 = time.monotonic()
                c.ozone_cmd("admin", "om", "transfer", "-r")
                done.append(time.monotonic() - t0)
            th = threading.Thread(target=transfer_soon)
            th.start()
            f = freon(c, "-n", str(keys), "-p", "transfer", *common)
            th.join()
            out["transfer"] = f
            line("  stream with leader transfer", f,
                 "  (transfer command %.0f ms)" % (done[0] * 1000
                                                   if done else -1))
    finally:
        c.stop()
    return out


def consensus_baseline(binary, seconds):
    if not binary or not os.path.exists(binary):
        print("bench_consensus not found: no consensus baseline")
        return None, None
    r = subprocess.run([binary, str(seconds)], capture_output=True,
                       text=True, timeout=300)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stdout.write(r.stderr)
    serial = window = None
    for ln in r.stdout.splitlines():
        if "one at a time" in ln:
            serial = float(ln.split(":")[1].split()[0])
        elif "in flight (submit)" in ln:
            window = float(ln.split(":")[1].split()[0])
    return serial, window


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ozone", default=os.path.join(SRC, "build", "admin-cli",
                                                   "ozone"))
    p.add_argument("--bench-consensus", default=None)
    p.add_argument("--keys", type=int, default=3000)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--dir", default=None)
    a = p.parse_args()
    base = a.dir or tempfile.mkdtemp(prefix="ozone-bench-om-")
    os.makedirs(base, exist_ok=True)
    os.environ.setdefault("OZONE_BENCH_DIR", base)
    try:
        serial, window = consensus_baseline(a.bench_consensus, 2)
        one = run_cluster(base, a.ozone, 1, a.keys, a.threads, False)
        three = run_cluster(base, a.ozone, 3, a.keys, a.threads, True)
    finally:
        if a.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    r1, r3 = one["rate"]["opsPerSec"], three["rate"]["opsPerSec"]
    print("3 OMs / 1 OM: %.2fx" % (r3 / r1))
    if serial and window:
        # Two raft entries per key; 16 threads keep up to 16 in flight.
        print("raft entries/s of 3 OMs: %.0f = %.2fx the serial libraft "
              "commit rate (%.0f/s), %.2fx the 64-in-flight rate (%.0f/s)" %
              (2 * r3, 2 * r3 / serial, serial, 2 * r3 / window, window))
    pause = three.get("transfer", {}).get("latencyMs", {}).get("max")
    steady = three.get("steady", {}).get("latencyMs", {}).get("max")
    if pause is not None:
        print("write pause during leader transfer: max latency %.0f ms "
              "(%.0f ms without a transfer)" % (pause, steady))
    print(json.dumps({"oneOmKeysPerSec": r1, "threeOmKeysPerSec": r3,
                      "consensusSerialCommitsPerSec": serial,
                      "consensusWindowCommitsPerSec": window,
                      "transferMaxLatencyMs": pause,
                      "steadyMaxLatencyMs": steady,
                      "oneOmEntriesPerRocksdbWrite": one.get("entriesPerWrite"),
                      "threeOmEntriesPerRocksdbWrite":
                          three.get("entriesPerWrite")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
