#!/usr/bin/env python3
"""Start-up rules (DESIGN.md §6.4) and bad input at start: apparent >
software refuses with the exact message and leaves storage untouched;
apparent < software starts pre-finalized; corrupt or missing VERSION with
data present refuses; invalid config and usage give clear errors."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Startup(oztest.OzoneTestCase):

    def scm_cluster(self, **conf):
        return self.new_cluster(datanodes=0, oms=0, recon=False, conf=conf)

    def version_path(self, c):
        return os.path.join(c.scm.overrides["ozone.scm.db.dirs"], "scm",
                            "current", "VERSION")

    def test_apparent_newer_than_software_refuses(self):
        c = self.scm_cluster()
        c.scm.run_once("--init")
        before = read(self.version_path(c))
        # Old bits (release 1.0.0 ships HDDS 100) on storage finalized by
        # the current release (HDDS 102).
        c.scm.extra_args = ["--testing-software-version", "100"]
        c.scm.start()
        rc = c.scm.proc.wait(timeout=30)
        self.assertNotEqual(rc, 0)
        log = c.scm.log_tail(50)
        self.assertIn(
            "cannot start: on-disk apparent version 102 is newer than this "
            "software (version 100); this component was finalized by a newer "
            "release and cannot be downgraded", log)
        self.assertEqual(read(self.version_path(c)), before)

    def test_apparent_older_than_software_is_pre_finalized(self):
        c = self.scm_cluster(**{"testing.scm.init.apparent.version": "4"})
        c.scm.run_once("--init")
        c.scm.start()
        c.scm.wait_ready()
        v = c.scm.version_json()
        self.assertEqual(v["softwareVersion"], 102)
        self.assertEqual(v["apparentVersion"], 4)
        self.assertTrue(v["preFinalized"])
        self.assertEqual(v["apparentVersionName"], "DATANODE_SCHEMA_V3 (4)")
        self.assertIn("testing only", c.scm.log_tail(50))
        r = c.ozone_cmd("version", "--remote", c.scm.rpc_address)
        self.assertIn("software 102, apparent 4 (pre-finalized)", r.stdout)

    def test_corrupt_version_file_refuses(self):
        c = self.scm_cluster()
        c.scm.run_once("--init")
        text = read(self.version_path(c)).decode()
        self.assertIn("layoutVersion=102", text)
        with open(self.version_path(c), "w") as f:
            f.write(text.replace("layoutVersion=102", "layoutVersion=banana"))
        before = read(self.version_path(c))
        c.scm.start()
        self.assertNotEqual(c.scm.proc.wait(timeout=30), 0)
        self.assertIn("layoutVersion", c.scm.log_tail(20))
        self.assertEqual(read(self.version_path(c)), before)

    def test_missing_version_with_data_refuses(self):
        c = self.scm_cluster()
        c.scm.run_once("--init")
        c.scm.start()
        c.scm.wait_ready()
        c.scm.stop()
        os.unlink(self.version_path(c))
        c.scm.start()
        self.assertNotEqual(c.scm.proc.wait(timeout=30), 0)
        self.assertIn("missing VERSION file", c.scm.log_tail(20))
        # --init must not re-initialise a directory that holds data either.
        self.assertNotEqual(c.scm.run_once("--init", check=False), 0)
        self.assertFalse(os.path.exists(self.version_path(c)))

    def test_om_without_init_says_what_to_do(self):
        c = self.new_cluster(datanodes=0, oms=1, recon=False)
        om = c.oms[0]
        om.start()
        self.assertNotEqual(om.proc.wait(timeout=30), 0)
        self.assertIn("run 'ozone om --init' first", om.log_tail(20))

    def test_om_init_needs_scm(self):
        c = self.new_cluster(datanodes=0, oms=1, recon=False,
                             conf={"ozone.scm.join.timeout": "1s"})
        om = c.oms[0]
        self.assertNotEqual(om.run_once("--init", check=False), 0)
        self.assertIn("start SCM first", om.log_tail(20))

    def test_init_is_idempotent(self):
        c = self.scm_cluster()
        c.scm.run_once("--init")
        before = read(self.version_path(c))
        c.scm.run_once("--init")
        self.assertEqual(read(self.version_path(c)), before)

    def test_invalid_config_and_usage(self):
        c = self.scm_cluster(**{"ozone.rpc.timeout": "soon"})
        self.assertEqual(c.scm.run_once("--init", check=False), 2)
        self.assertIn("invalid value 'soon' for 'ozone.rpc.timeout'",
                      c.scm.log_tail(5))
        self.assertFalse(os.path.exists(self.version_path(c)))
        r = self.run_ozone("scm", "-D", "ozone.scm.db.dirs=" + self.tmp,
                           "-D", "ozone.rpc.handler.count=zero")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ozone.rpc.handler.count", r.stderr + r.stdout)
        r = self.run_ozone("scm", "--no-such-option")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown option '--no-such-option'", r.stderr)
        r = self.run_ozone("no-such-command")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command 'no-such-command'", r.stderr)
        r = self.run_ozone("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("Usage: ozone", r.stdout)
        r = self.run_ozone("om", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--init", r.stdout)
        r = self.run_ozone("version", "--json")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(json.loads(r.stdout)[0]["component"], "CLIENT")
        self.assertIn('"component" : "CLIENT"', r.stdout)

    def test_port_in_use_is_reported(self):
        c = self.scm_cluster()
        c.scm.run_once("--init")
        c.scm.start()
        c.scm.wait_ready()
        r = self.run_ozone("scm", "--conf", c.conf_dir, "-D",
                           "ozone.scm.db.dirs=" + os.path.join(self.tmp, "x"),
                           "--init")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_ozone("scm", "--conf", c.conf_dir, "-D",
                           "ozone.scm.db.dirs=" + os.path.join(self.tmp, "x"),
                           "-D", "ozone.scm.http-address=127.0.0.1:%d" %
                           oztest.free_port())
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot bind", r.stderr)


if __name__ == "__main__":
    oztest.main()
