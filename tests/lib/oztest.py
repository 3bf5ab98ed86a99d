"""Helpers for ozone-c integration tests (real processes on 127.0.0.1).

Every test gets a fresh temporary directory and its processes are always
stopped, even on failure (unittest cleanups). Binaries come from the build
tree through the environment set by meson: OZONE_BIN (the ozone command),
OZONE_SRC (the source tree).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("OZONE_SRC") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRC, "deploy", "local"))

import ozone_local  # noqa: E402,F401  (re-exported)
from ozone_local import (LocalCluster, free_port, http_get,  # noqa: E402,F401
                         wait_for)

OZONE = os.environ.get("OZONE_BIN") or os.path.join(SRC, "build",
                                                    "admin-cli", "ozone")


def libraft_leak_env():
    """Environment for a daemon run that drives libraft 0.15 through one of
    its failure paths that leak (a damaged log segment at start, a snapshot
    whose restore is refused): under LeakSanitizer, allocations made inside
    libraft are not reported for that process; ozone-c's own still are.
    Only a run that expects that failure uses it (tests/lsan-libraft.supp)."""
    if "LSAN_OPTIONS" not in os.environ:
        return {}
    return {"LSAN_OPTIONS": "suppressions=%s:print_suppressions=0" %
            os.path.join(SRC, "tests", "lsan-libraft.supp")}


def om_digests(c, names=None):
    """{node id: (table digest, applied index)} of every OM that
    `ozone admin om digest --json` reports (only those in names, if
    given)."""
    r = c.ozone_cmd("admin", "om", "digest", "--json")
    return {e["nodeId"]: (e["digest"], e["appliedIndex"])
            for e in json.loads(r.stdout)
            if names is None or e["nodeId"] in names}


def wait_same_om_digest(c, names, timeout=60):
    """Waits until every OM in names reports the same table digest at the
    same applied index (DESIGN.md §8.1); returns om_digests(). Raises
    AssertionError with the last digests when they still differ."""
    def same():
        d = om_digests(c, names)
        return d if (len(d) == len(names) and
                     len(set(d.values())) == 1) else None
    try:
        return wait_for(same, timeout, "equal OM digests", interval=0.3)
    except TimeoutError as e:
        raise AssertionError("OM digests differ: %r (%s)" % (
            om_digests(c, names), e)) from None


class OzoneTestCase(unittest.TestCase):
    """Base class: self.tmp is a fresh directory removed after the test
    (kept when OZONE_KEEP_TMP=1, for debugging)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="oztest-")
        if os.environ.get("OZONE_KEEP_TMP") != "1":
            self.addCleanup(shutil.rmtree, self.tmp, True)

    def cluster(self, **kw):
        """Starts a LocalCluster under self.tmp; stopped at cleanup."""
        c = LocalCluster(os.path.join(self.tmp, "cluster"), OZONE, **kw)
        self.addCleanup(c.stop)
        c.start()
        return c

    def new_cluster(self, **kw):
        """A LocalCluster that is configured but not started."""
        c = LocalCluster(os.path.join(self.tmp, "cluster"), OZONE, **kw)
        self.addCleanup(c.stop)
        c.write_conf()
        return c

    def run_ozone(self, *args, timeout=60):
        r = subprocess.run([OZONE] + list(args), capture_output=True,
                           timeout=timeout)
        r.stdout = r.stdout.decode("utf-8", "replace")
        r.stderr = r.stderr.decode("utf-8", "replace")
        return r


def main():
    """Runs the tests of the calling module; exit status 1 on failure."""
    prog = unittest.main(module="__main__", exit=False, verbosity=2)
    r = prog.result
    sys.exit(0 if r.wasSuccessful() and r.testsRun > 0 else 1)
