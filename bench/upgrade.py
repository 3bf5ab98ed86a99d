#!/usr/bin/env python3
"""bench/upgrade: the rolling-upgrade scenario of
tests/integration/test_upgrade_rolling.py with figures (DESIGN.md §13).

A LocalCluster (SCM, Recon, 4 datanodes, 1 OM) starts on the old release
(`--testing-software-version 100`); 8 client threads put/get/list through
the `ozone` CLI while the nodes are rolled to the new release, back, and
forward again, then `ozone admin upgrade finalize --wait` runs. Printed:
total time, failed client operations (must be 0), p50/p99/max client
latency before the roll (the baseline, same run) and during it, and the
time from `upgrade finalize` to fully finalized (every OM and datanode at
the new apparent version). Exit status 1 when an operation failed or a
key was lost or corrupt.

Usage: bench/upgrade.py [--ozone PATH] [--baseline SECONDS] [--dwell SECONDS]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

SRC = os.environ.get("OZONE_SRC") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "deploy", "local"))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))

import upgrade_helpers as U  # noqa: E402
from ozone_local import LocalCluster, wait_for  # noqa: E402


def ms(v):
    return "%.0f ms" % (v * 1000.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ozone", default=os.path.join(SRC, "build", "admin-cli",
                                                    "ozone"))
    ap.add_argument("--baseline", type=float, default=15.0,
                    help="seconds of workload before the roll")
    ap.add_argument("--dwell", type=float, default=3.0,
                    help="seconds of workload after each node's restart")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-upgrade-")
    c = LocalCluster(os.path.join(tmp, "cluster"), args.ozone, datanodes=4,
                     conf=dict(U.FAST_CONF))
    w = None
    failed = True
    try:
        for n in c.nodes:
            U.set_bits(n, True)
        c.start()
        U.wait_datanodes_healthy(c, 4)
        U.wait_pipeline(c)
        c.ozone_cmd("sh", "volume", "create", "/bench")
        c.ozone_cmd("sh", "bucket", "create", "/bench/data")
        wdir = os.path.join(tmp, "work")
        os.makedirs(wdir)
        w = U.Workload(c, "bench", "data", wdir)
        t_start = time.monotonic()
        w.start()
        time.sleep(args.baseline)
        t_roll = time.monotonic()
        steps = []  # (when the step was done, its name)
        for step in U.roll_cluster(c, log=lambda s: None, dwell=args.dwell):
            steps.append((time.monotonic(), step))
            print("  %-14s at %6.1f s, %d ops, %d failed" % (
                step, time.monotonic() - t_start, w.count(),
                len(w.failures)), flush=True)
        t_fin = time.monotonic()
        c.ozone_cmd("admin", "upgrade", "finalize", "--wait", "--timeout",
                    "300", timeout=360)
        wait_for(lambda: U.apparent_by_kind(c)["datanode"] == {U.NEW_HDDS} and
                 U.apparent_by_kind(c)["om"] == {U.NEW_OM}, 120,
                 "every node finalized", interval=0.1)
        t_done = time.monotonic()
        time.sleep(2)
        w.stop()
        bad = w.verify_all()
        t_end = time.monotonic()
        before = w.latencies(t_start, t_roll)
        during = w.latencies(t_roll, t_done)
        print("rolling upgrade (old -> new -> old -> new, then finalize), "
              "8 client threads, 4 datanodes, 1 OM")
        print("total time:                     %.1f s" % (t_end - t_start))
        print("roll (3 passes over 7 nodes, %.0f s dwell each): %.1f s" % (
            args.dwell, t_fin - t_roll))
        print("client operations:              %d" % w.count())
        print("failed client operations:       %d (must be 0)" %
              len(w.failures))
        print("lost or corrupt keys:           %d (must be 0)" %
              (len(bad) + len(w.corrupt)))
        for name, lat in (("before the roll (baseline)", before),
                          ("during roll and finalize", during)):
            print("latency %-27s p50 %s  p99 %s  max %s  (%d ops)" % (
                name + ":", ms(U.percentile(lat, 50)),
                ms(U.percentile(lat, 99)), ms(lat[-1] if lat else 0),
                len(lat)))
        if before and during:
            print("p50 ratio during/before:        %.2f" % (
                U.percentile(during, 50) / U.percentile(before, 50)))
            print("p99 ratio during/before:        %.2f" % (
                U.percentile(during, 99) / U.percentile(before, 99)))
        print("upgrade finalize -> finalized:  %.1f s" % (t_done - t_fin))
        # Where the worst latencies came from: the step that was under way
        # (restarting that node) when the slowest operations started.
        print("slowest operations (start, kind, latency, step under way):")
        for t0, op, dt, ok in sorted(w.ops, key=lambda o: -o[2])[:5]:
            under = next((name for t, name in steps if t >= t0), None)
            if t0 < t_roll:
                under = "before the roll"
            elif under is None:
                under = "finalize" if t0 >= t_fin else "?"
            print("  %6.1f s  %-4s %8s  %s%s" % (
                t0 - t_start, op, ms(dt), under, "" if ok else " FAILED"))
        for t0, op, dt, ok in w.ops:
            if not ok:
                under = next((name for t, name in steps if t >= t0),
                             "finalize")
                print("failed operation at %.1f s: %s after %s, step under "
                      "way: %s" % (t0 - t_start, op, ms(dt), under))
        for f in w.failures[:10]:
            print("FAILED %s %s: %s" % f)
        failed = bool(w.failures or bad or w.corrupt)
        return 1 if failed else 0
    finally:
        if w is not None:
            w.stop()
        c.stop()
        if failed:
            print("kept the cluster's directory for its logs: %s" % tmp)
        else:
            shutil.rmtree(tmp, True)


if __name__ == "__main__":
    sys.exit(main())
