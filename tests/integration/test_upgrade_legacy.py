#!/usr/bin/env python3
"""Legacy -> ZDU_READY -> newest migration end to end (DESIGN.md §6.1,
§6.4, §6.5, §6.7) with real processes: SCM, three datanodes and one OM of
the current release, initialised with `testing.<component>.init.apparent.
version` at the first legacy layout feature (INITIAL_VERSION, 0) of their
catalogs, and (a second test) at the last legacy feature of each (OM 2
FILESYSTEM_SNAPSHOT, HDDS 4 DATANODE_SCHEMA_V3: the jump to 100).

Asserted:
- every component starts pre-finalized at its legacy version (its
  /version and the VERSION file on disk), and `ozone admin scm|om
  finalizationstatus` say FINALIZATION_REQUIRED, `upgrade status -v` names
  the legacy versions;
- the cluster serves writes and reads while pre-finalized; new features
  (KEY_TAGS, BUCKET_QUOTA, CHUNK_CHECKSUM_SHA256) are refused with the exact
  NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION text naming the legacy
  apparent version; the legacy `ozone admin om finalizeupgrade` is refused
  while SCM is not finalized;
- `ozone admin upgrade finalize --wait` finalizes SCM, every datanode and
  the OM through each legacy feature, ZDU_READY (100) and the newer ones
  in catalog order, one step at a time (each daemon's "finalizing" /
  "finalized" log lines, every step from the previous version), SCM
  before any datanode and before the OM (invariant 3);
- afterwards apparent == software on every component (/version, VERSION
  files, `upgrade status --json`), FINALIZATION_DONE from both status
  commands, and a second finalize says "Upgrade has already been
  finalized." (SCM's --json: ALREADY_FINALIZED);
- keys written before finalization read back byte-identical, key tags,
  bucket quotas and SHA-256 chunk checksums work, new keys can be written
  and read.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402
import upgrade_helpers as U  # noqa: E402

VOL, BUCKET = "vol1", "bucket1"
# The catalogs of the current release (common/version_catalogs.c).
HDDS_STEPS = [(1, "DATANODE_SCHEMA_V2"), (2, "SCM_HA"),
              (3, "ERASURE_CODED_STORAGE_SUPPORT"),
              (4, "DATANODE_SCHEMA_V3"), (100, "ZDU_READY"),
              (101, "CHUNK_CHECKSUM_SHA256"), (102, "CONTAINER_CHECKSUM")]
OM_STEPS = [(1, "ERASURE_CODED_STORAGE_SUPPORT"), (2, "FILESYSTEM_SNAPSHOT"),
            (100, "ZDU_READY"), (101, "BUCKET_QUOTA"), (102, "KEY_TAGS")]
FINALIZED_RE = re.compile(
    r"(HDDS|OM) finalized (\w+) \((\d+)\): apparent version \w+ \((\d+)\) "
    r"-> \w+ \((\d+)\), software version (\d+)")
FINALIZING_RE = re.compile(
    r"(HDDS|OM) finalizing (\w+) \((\d+)\): apparent version")
# The OM's migrations, all in the one Raft entry of the finalization.
OM_APPLY_RE = re.compile(r"OM finalizing (\w+) \((\d+)\) at index (\d+)$")


NAMES = {"OM": dict(OM_STEPS + [(0, "INITIAL_VERSION")]),
         "HDDS": dict(HDDS_STEPS + [(0, "INITIAL_VERSION")])}


def refused(op, feature, number, apparent):
    return ("operation '%s' belongs to feature %s (version %d); cluster "
            "apparent version is %d; finalize the upgrade first"
            % (op, feature, number, apparent))


class UpgradeLegacy(U.KeyData, oztest.OzoneTestCase):

    def start_legacy(self):
        conf = dict(U.FAST_CONF)
        for comp, v in (("scm", self.hdds), ("datanode", self.hdds),
                        ("om", self.om)):
            conf["testing.%s.init.apparent.version" % comp] = str(v)
        c = oztest.LocalCluster(os.path.join(self.tmp, "cluster"),
                                oztest.OZONE, datanodes=3, oms=1, recon=False,
                                conf=conf)
        self.addCleanup(c.stop)
        c.start()
        U.wait_datanodes_healthy(c, 3)
        U.wait_pipeline(c)
        return c

    def status_word(self, c, comp):
        return c.ozone_cmd("admin", comp, "finalizationstatus").stdout.strip()

    def version_file(self, node):
        key = {"scm": "ozone.scm.db.dirs", "om": "ozone.om.db.dirs",
               "datanode": "ozone.metadata.dirs"}[node.kind]
        sub = node.kind
        path = os.path.join(node.overrides[key], sub, "current", "VERSION")
        with open(path) as f:
            text = f.read()
        m = re.search(r"^layoutVersion=(\d+)$", text, re.M)
        self.assertIsNotNone(m, "%s: %s" % (path, text))
        return int(m.group(1))

    def steps(self, node, catalog):
        """[(from, to, name)] of node's "finalized" log lines for catalog,
        in log order; checks each followed its "finalizing" line."""
        with open(node.log_path, errors="replace") as f:
            log = f.read().splitlines()
        out = []
        pending = None
        for line in log:
            m = FINALIZING_RE.search(line)
            if m and m.group(1) == catalog:
                self.assertIsNone(pending, "%s: %s" % (node.name, line))
                pending = int(m.group(3))
                continue
            m = FINALIZED_RE.search(line)
            if m and m.group(1) == catalog:
                to = int(m.group(3))
                self.assertEqual(pending, to, "%s: %s" % (node.name, line))
                self.assertEqual(int(m.group(5)), to, line)
                self.assertEqual(int(m.group(6)), 102, line)
                out.append((int(m.group(4)), to, m.group(2)))
                pending = None
        self.assertIsNone(pending, "%s: a finalize step did not finish"
                          % node.name)
        return out

    def legacy(self, catalog):
        return self.om if catalog == "OM" else self.hdds

    def assert_steps(self, node, catalog, want):
        got = self.steps(node, catalog)
        chain = []
        prev = self.legacy(catalog)
        for number, name in want:
            if number > prev:
                chain.append((prev, number, name))
                prev = number
        self.assertEqual(got, chain, "%s finalized %s out of order"
                         % (node.name, catalog))

    def om_apply_steps(self, om):
        """[(number, name)] of the OM's finalize migrations, checking
        they ran at one Raft index, and that index."""
        with open(om.log_path, errors="replace") as f:
            found = [m.groups() for m in map(OM_APPLY_RE.search, f) if m]
        indexes = {int(i) for _, _, i in found}
        self.assertEqual(len(indexes), 1, found)
        return [(int(n), name) for name, n, _ in found], indexes.pop()

    def first_line(self, node, pattern):
        """Index in node's log of the first line matching pattern."""
        with open(node.log_path, errors="replace") as f:
            for i, line in enumerate(f):
                if re.search(pattern, line):
                    return i
        self.fail("%s never logged %r" % (node.name, pattern))

    def vname(self, catalog, v=None):
        """"NAME (n)" of catalog's version v (default: the legacy one)."""
        v = self.legacy(catalog) if v is None else v
        return "%s (%d)" % (NAMES[catalog][v], v)

    def test_initial_version_to_newest(self):
        self.om, self.hdds = 0, 0
        self.migrate()

    def test_last_legacy_version_to_newest(self):
        self.om, self.hdds = 2, 4
        self.migrate()

    def migrate(self):
        self.data = {}
        c = self.start_legacy()

        # ---- pre-finalized at the legacy version ----
        for n in c.nodes:
            cat = "OM" if n.kind == "om" else "HDDS"
            v = n.version_json()
            self.assertEqual((v["softwareVersion"], v["apparentVersion"]),
                             (102, self.legacy(cat)), n.name)
            self.assertTrue(v["preFinalized"], n.name)
            self.assertEqual(v["apparentVersionName"], self.vname(cat))
            self.assertEqual(self.version_file(n), self.legacy(cat), n.name)
        for comp in ("scm", "om"):
            self.assertEqual(self.status_word(c, comp),
                             "FINALIZATION_REQUIRED", comp)
        r = c.ozone_cmd("admin", "upgrade", "status", "-v")
        self.assertIn("SCM apparent version: " + self.vname("HDDS"), r.stdout)
        self.assertIn("SCM software version: CONTAINER_CHECKSUM (102)",
                      r.stdout)
        self.assertIn("OM apparent version: " + self.vname("OM"), r.stdout)
        self.assertIn("OM software version: KEY_TAGS (102)", r.stdout)
        self.assertIn("Datanodes finalized: 3/3", r.stdout)
        self.assertIn("Cluster status: FINALIZATION_REQUIRED", r.stdout)

        # Reads and writes while pre-finalized.
        self.sh(c, "volume", "create", "/" + VOL)
        self.sh(c, "bucket", "create", "/%s/%s" % (VOL, BUCKET))
        for i in range(4):
            self.put(c, "legacy-%d" % i, os.urandom(1000 + 70001 * i))
        self.put(c, "legacy-big", os.urandom(1500000))
        self.validate(c)
        self.put(c, "legacy-0", os.urandom(4321))    # overwrite
        self.validate(c)

        # New features refused, naming the legacy apparent version.
        key = "/%s/%s/legacy-1" % (VOL, BUCKET)
        r = self.sh(c, "key", "settags", key, "team=a", check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("NOT_SUPPORTED_OPERATION_PRIOR_FINALIZATION", r.stderr)
        self.assertIn(refused("PutObjectTagging", "KEY_TAGS", 102, self.om),
                      r.stderr)
        r = self.sh(c, "bucket", "setquota", "--space-quota", "1GB",
                    "/%s/%s" % (VOL, BUCKET), check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(refused("SetBucketQuota", "BUCKET_QUOTA", 101,
                              self.om), r.stderr)
        src = os.path.join(self.tmp, "sha")
        with open(src, "wb") as f:
            f.write(os.urandom(5000))
        r = c.ozone_cmd("-D", "ozone.client.checksum.type=SHA256", "sh", "key",
                        "put", "/%s/%s/sha" % (VOL, BUCKET), src, check=False,
                        timeout=180)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(refused("WriteChunk with SHA256 checksum",
                              "CHUNK_CHECKSUM_SHA256", 101, self.hdds),
                      r.stderr)
        # The legacy OM path is refused while SCM is not finalized.
        r = c.ozone_cmd("admin", "om", "finalizeupgrade", check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("FINALIZE_REJECTED", r.stderr)
        self.assertIn("SCM is not finalized (HDDS apparent version %d, "
                      "software version 102)" % self.hdds, r.stderr)
        self.assertEqual(self.status_word(c, "om"), "FINALIZATION_REQUIRED")
        self.assertEqual(self.status_word(c, "scm"), "FINALIZATION_REQUIRED")

        # ---- finalize the whole cluster ----
        r = c.ozone_cmd("admin", "upgrade", "finalize", "--wait",
                        "--timeout", "120", timeout=180)
        self.assertIn("cluster finalization has been started", r.stdout)
        self.assertIn("SCM: SCM finalized: HDDS apparent version "
                      "CONTAINER_CHECKSUM (102)", r.stdout)
        self.assertIn("Cluster finalization is done.", r.stdout)
        self.assertEqual(self.status_word(c, "om"), "FINALIZATION_DONE")
        # Datanodes report their new version on the next heartbeat.
        oztest.wait_for(
            lambda: self.status_word(c, "scm") == "FINALIZATION_DONE", 60,
            "SCM FINALIZATION_DONE", interval=0.2)
        for n in c.nodes:
            v = n.version_json()
            self.assertEqual((v["softwareVersion"], v["apparentVersion"]),
                             (102, 102), n.name)
            self.assertFalse(v["preFinalized"], n.name)
            self.assertEqual(self.version_file(n), 102, n.name)
        st = json.loads(c.ozone_cmd("admin", "upgrade", "status",
                                    "--json").stdout)
        self.assertEqual(st["cluster"], "FINALIZATION_DONE")
        self.assertEqual(st["scm"]["apparentVersion"], 102)
        self.assertEqual(st["om"]["apparentVersion"], 102)
        self.assertEqual(st["datanodes"]["finalized"], 3)
        self.assertEqual(sorted((d["uuid"], d["apparentVersion"])
                                for d in st["datanodes"]["nodes"]),
                         [("dn1", 102), ("dn2", 102), ("dn3", 102)])

        # Each component went through every feature, in order, once.
        self.assert_steps(c.scm, "HDDS", HDDS_STEPS)
        for dn in c.datanodes:
            self.assert_steps(dn, "HDDS", HDDS_STEPS)
        self.assert_steps(c.oms[0], "OM", OM_STEPS)
        applied, index = self.om_apply_steps(c.oms[0])
        self.assertEqual(applied, [s for s in OM_STEPS if s[0] > self.om])
        self.first_line(c.oms[0], r"OM finalized: layout version %s -> "
                        r"KEY_TAGS \(102\) at index %d$"
                        % (re.escape(self.vname("OM")), index))
        # SCM persisted its finalization before telling any datanode
        # (DESIGN.md §6.5), and the OM waited for HDDS (invariant 3).
        told = self.first_line(c.scm, r"telling datanode '\w+' to finalize: "
                               r"HDDS apparent version %d -> 102" % self.hdds)
        self.assertLess(self.first_line(c.scm, r"HDDS finalized "
                                        r"CONTAINER_CHECKSUM \(102\)"), told)
        self.first_line(c.oms[0], r"HDDS is finalized \(SCM reports "
                        r"FINALIZATION_DONE, datanodes finalized 3/3\): "
                        r"committing the OM finalize entry to KEY_TAGS "
                        r"\(102\)")
        for dn in c.datanodes:
            self.first_line(dn, r"finalizing on SCM's command: HDDS apparent "
                            r"version %s -> CONTAINER_CHECKSUM \(102\)"
                            % re.escape(self.vname("HDDS")))

        # A second finalize changes nothing.
        r = c.ozone_cmd("admin", "upgrade", "finalize")
        self.assertIn("Upgrade has already been finalized.", r.stdout)
        r = c.ozone_cmd("admin", "scm", "finalizeupgrade")
        self.assertIn("Upgrade has already been finalized.", r.stdout)
        r = c.ozone_cmd("admin", "scm", "finalizeupgrade", "--json")
        self.assertEqual(json.loads(r.stdout)["status"], "ALREADY_FINALIZED")
        for comp in ("scm", "om"):
            self.assertEqual(self.status_word(c, comp), "FINALIZATION_DONE",
                             comp)
        self.assert_steps(c.scm, "HDDS", HDDS_STEPS)
        self.assert_steps(c.oms[0], "OM", OM_STEPS)

        # ---- data written before reads back; new features work ----
        self.validate(c)
        self.sh(c, "key", "settags", key, "team=a,tier=hot")
        tags = json.loads(self.sh(c, "key", "gettags", key).stdout)
        self.assertEqual(tags, {"team": "a", "tier": "hot"})
        self.sh(c, "bucket", "setquota", "--space-quota", "1GB",
                "/%s/%s" % (VOL, BUCKET))
        info = json.loads(self.sh(c, "bucket", "info",
                                  "/%s/%s" % (VOL, BUCKET)).stdout)
        self.assertEqual(info["quotaInBytes"], 1 << 30)
        self.assertEqual(info["usedNamespace"], len(self.data))
        U.wait_pipeline(c)
        for i in range(2):
            self.put(c, "new-%d" % i, os.urandom(2000 + 300001 * i))
        with open(src, "rb") as f:
            sha = f.read()
        c.ozone_cmd("-D", "ozone.client.checksum.type=SHA256", "sh", "key",
                    "put", "/%s/%s/sha" % (VOL, BUCKET), src, timeout=180)
        self.data["sha"] = sha
        self.validate(c)


if __name__ == "__main__":
    oztest.main()
