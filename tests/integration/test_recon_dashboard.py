#!/usr/bin/env python3
"""Recon's dashboard in headless Chromium (DESIGN.md §9) against a live
local cluster in the middle of a rolling upgrade (the OM still runs the
old release, --testing-software-version 100, everything else the new
one): the page's JavaScript renders every component with the versions
/api/v1/upgrade reports, and a screenshot is saved.

Chromium from Debian (package chromium, scripts/install-deps) is driven
with its own --dump-dom and --screenshot after --virtual-time-budget lets
the page's fetches and rendering finish. Exit status 77 (meson's skip)
when chromium is not installed.
"""
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import oztest  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FAST = {
    "ozone.recon.om.snapshot.task.interval.delay": "1s",
    "ozone.recon.scm.poll.interval": "1s",
}


class DomVersions(html.parser.HTMLParser):
    """Collects the components table rows: (type, node) -> version cell."""

    def __init__(self):
        super().__init__()
        self.rows = {}
        self.datanode_rows = {}
        self.row = None
        self.table = None
        self.rendered = False
        self.status = None
        self.in_status = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body" and a.get("data-rendered") == "true":
            self.rendered = True
        if a.get("id") == "finalization-status":
            self.in_status = True
        if tag == "table":
            self.table = a.get("id")
        elif tag == "tr" and self.table == "components" and "data-type" in a:
            self.row = (a["data-type"], a["data-node"])
        elif tag == "tr" and self.table == "datanodes" and "data-uuid" in a:
            self.row = ("DN", a["data-uuid"])
        elif tag == "td" and self.row and "version" in a.get("class", ""):
            v = (int(a["data-apparent"]), int(a["data-software"]))
            if self.row[0] == "DN":
                self.datanode_rows[self.row[1]] = v
            else:
                self.rows[self.row] = v


    def handle_data(self, data):
        if self.in_status:
            self.status = data.strip()
            self.in_status = False


class Dashboard(oztest.OzoneTestCase):

    def chromium(self, *args):
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-quic", "--no-first-run",
               "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage",
               "--user-data-dir=" + profile,
               "--virtual-time-budget=5000"] + list(args)
        r = subprocess.run(cmd, capture_output=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("chromium exited %d:\n%s" % (
                r.returncode, r.stderr.decode("utf-8", "replace")[-2000:]))
        return r.stdout.decode("utf-8", "replace")

    def test_dashboard_shows_upgrade_versions(self):
        c = self.new_cluster(datanodes=3, conf=FAST)
        c.oms[0].extra_args = ["--testing-software-version", "100"]
        c.start()
        port = c.recon.http_port

        def upgrade_ready():
            _, body = oztest.http_get(port, "/api/v1/upgrade")
            up = json.loads(body)
            types = sorted(x["type"] for x in up["components"])
            return types == ["DATANODE"] * 3 + ["OM", "RECON", "SCM"] and \
                all(x["health"] == "HEALTHY" for x in up["components"]) and up
        up = oztest.wait_for(upgrade_ready, 30, "every component in Recon",
                             interval=0.2)
        url = "http://127.0.0.1:%d/" % port
        dom = self.chromium("--dump-dom", url)
        parser = DomVersions()
        parser.feed(dom)
        self.assertTrue(parser.rendered, "the page did not render:\n" +
                        dom[:2000])
        want = {(x["type"], x["nodeId"]):
                (x["apparentVersion"], x["softwareVersion"])
                for x in up["components"]}
        self.assertEqual(parser.rows, want)
        # Recon runs the new release, the OM the old one.
        self.assertEqual(up["cluster"]["status"], "UPGRADE_IN_PROGRESS")
        self.assertEqual(parser.status, "UPGRADE_IN_PROGRESS")
        # Mixed versions during the upgrade: the old OM and the new rest.
        om = [v for (t, _), v in parser.rows.items() if t == "OM"]
        self.assertEqual(om, [(100, 100)])
        self.assertTrue(any(v[1] > 100 for (t, _), v in parser.rows.items()
                            if t != "OM"))
        _, body = oztest.http_get(port, "/api/v1/datanodes")
        dns = {d["uuid"]: (d["apparentVersion"], d["softwareVersion"])
               for d in json.loads(body)["datanodes"]}
        self.assertEqual(parser.datanode_rows, dns)

        out_dir = os.environ.get("OZONE_TEST_OUT") or os.path.join(
            os.getcwd(), "test-out", "recon_dashboard")
        os.makedirs(out_dir, exist_ok=True)
        shot = os.path.join(out_dir, "recon.png")
        if os.path.exists(shot):
            os.unlink(shot)
        self.chromium("--screenshot=" + shot, "--window-size=1280,900", url)
        self.assertTrue(os.path.getsize(shot) > 1000)
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        print("screenshot: %s" % shot)


if __name__ == "__main__":
    if CHROMIUM is None:
        print("SKIP: chromium is not installed (apt-get install chromium)")
        sys.exit(77)
    oztest.main()
