// Recon dashboard: reads the JSON API and renders it; refreshes itself.
// Plain browser JavaScript, no library (DESIGN.md §9).
"use strict";

const REFRESH_MS = 3000;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") {
      e.className = v;
    } else {
      e.setAttribute(k, v);
    }
  }
  for (const c of children) {
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fill(tbodySel, rows) {
  const tbody = document.querySelector(tbodySel);
  tbody.replaceChildren(...rows);
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let i = 0;
  let v = Number(n) || 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? v : v.toFixed(1)) + " " + units[i];
}

function when(ms) {
  if (!ms) {
    return "never";
  }
  return new Date(ms).toLocaleString();
}

function healthClass(h) {
  return "health " + String(h || "UNKNOWN").toLowerCase();
}

async function getJson(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) {
    throw new Error(path + ": HTTP " + r.status);
  }
  return r.json();
}

function renderCluster(cs) {
  const cards = [
    ["Datanodes", cs.healthyDatanodes + " / " + cs.totalDatanodes, "healthy"],
    ["Pipelines", cs.pipelines, "open"],
    ["Containers", cs.containers,
     cs.openContainers + " open, " + cs.missingContainers + " missing"],
    ["Volumes", cs.volumes, ""],
    ["Buckets", cs.buckets, ""],
    ["Keys", cs.keys, cs.openKeys + " open"],
    ["Storage", bytes(cs.storageReport.used) + " used",
     bytes(cs.storageReport.capacity) + " capacity"],
  ];
  const box = document.getElementById("cards");
  box.replaceChildren(...cards.map(([name, value, sub]) =>
    el("div", {class: "card", "data-card": name},
       el("div", {class: "card-name"}, name),
       el("div", {class: "card-value"}, value),
       el("div", {class: "card-sub"}, sub))));
  const missing = document.querySelector('[data-card="Containers"]');
  if (cs.missingContainers > 0) {
    missing.classList.add("bad");
  }
}

function renderUpgrade(up) {
  const c = up.cluster;
  document.getElementById("upgrade-summary").replaceChildren(
    el("span", {class: "pill " + (c.status === "FINALIZED" ? "ok" : "warn"),
                id: "finalization-status"}, c.status),
    " OM " + c.omApparentVersion + "/" + c.omSoftwareVersion +
    " \u00b7 HDDS (SCM) " + c.hddsApparentVersion + "/" +
    c.hddsSoftwareVersion + " \u00b7 newest bits known: OM " +
    c.newestOmSoftwareVersion + ", HDDS " + c.newestHddsSoftwareVersion,
    " \u00b7 finalization: ",
    el("span", {class: "pill " + (c.finalization === "FINALIZATION_DONE"
                                  ? "ok" : "warn"),
                id: "cluster-finalization"}, c.finalization),
    c.scmDatanodesTotal > 0
      ? " (datanodes finalized " + c.scmDatanodesFinalized + "/" +
        c.scmDatanodesTotal + ")"
      : "");
  fill("#components tbody", up.components.map((x) =>
    el("tr", {"data-type": x.type, "data-node": x.nodeId,
              class: (x.preFinalized ? "prefinalized " : "") +
                     (x.upgradePending ? "pending" : "")},
       el("td", {}, x.type),
       el("td", {class: "node"}, x.nodeId),
       el("td", {}, x.address),
       el("td", {class: "version", "data-software": x.softwareVersion,
                 "data-apparent": x.apparentVersion},
          x.apparentVersion + "/" + x.softwareVersion +
          (x.upgradePending ? " (upgrade pending)" : "")),
       el("td", {class: "finalization"}, x.finalization,
          // Who asked for it, when SCM or the OM says.
          x.finalizationRequestedBy
            ? el("div", {class: "requested-by"},
                 "requested by " + x.finalizationRequestedBy)
            : ""),
       el("td", {class: healthClass(x.health)}, x.health))));
  const blockers = document.getElementById("blockers");
  blockers.replaceChildren(...(up.blockers.length === 0
    ? [el("li", {class: "none"}, "nothing: every component runs the newest bits")]
    : up.blockers.map((b) =>
        el("li", {"data-source": b.source},
           b.type + " " + b.nodeId + ": " + b.reason +
           (b.source && b.source !== "RECON" ? " (reported by " +
            b.source + ")" : "")))));
  const events = up.journal.slice(-50).reverse();
  document.getElementById("journal").replaceChildren(...events.map((e) =>
    el("li", {"data-seq": e.seq},
       el("time", {}, when(e.time)),
       el("span", {class: "who"}, e.component + " " + e.nodeId),
       el("span", {class: "what"}, e.event))));
}

// The rolling-upgrade orchestrator's newest run, from the OM's journal
// (/api/v1/upgrade "rollingUpgrade"; docs/recon.md).
function rollingClass(state) {
  return {DONE: "ok", RUNNING: "ok", ROLLED_BACK: "warn", PAUSED: "warn",
          FAILED: "bad"}[state] || "warn";
}

function renderRolling(ru) {
  const box = document.getElementById("rolling-summary");
  if (!ru || !ru.available) {
    box.replaceChildren(
      el("span", {class: "pill warn", id: "rolling-state"}, "UNKNOWN"),
      "not available" + (ru && ru.reason ? ": " + ru.reason : ""));
    fill("#rolling tbody", []);
    return;
  }
  if (ru.state === "NONE") {
    box.replaceChildren(
      el("span", {class: "pill ok", id: "rolling-state"}, "NONE"),
      "no rolling upgrade recorded");
    fill("#rolling tbody", []);
    return;
  }
  const parts = [
    el("span", {class: "pill " + rollingClass(ru.state), id: "rolling-state",
                "data-run": ru.runId}, ru.state),
    "run " + ru.runId + " (backend " + (ru.backend || "?") + ", to " +
    (ru.toBin || "?") + ")"];
  if (ru.step > 0) {
    parts.push(" \u00b7 step " + ru.step + "/" + ru.steps + " " + ru.node +
               " (" + ru.action + ")");
  }
  if (ru.lease) {
    parts.push(" \u00b7 lease " + ru.lease.holder + " on " + ru.lease.host +
               (ru.lease.expired ? ", expired"
                : ", expires in " + Math.ceil(ru.lease.expiresInMs / 1000) +
                  "s"));
  }
  if (ru.next) {
    parts.push(el("div", {class: "next"}, ru.next));
  }
  box.replaceChildren(...parts);
  fill("#rolling tbody", ru.entries.slice().reverse().map((e) =>
    el("tr", {"data-seq": e.seq, class: "st-" + e.status.toLowerCase()},
       el("td", {}, when(e.timeMs)),
       el("td", {}, e.step > 0 ? e.step + "/" + e.steps : "run"),
       el("td", {}, e.node ? e.node + (e.kind ? " (" + e.kind + ")" : "")
                           : "-"),
       el("td", {}, e.action),
       el("td", {class: "status"}, e.status),
       el("td", {}, e.detail))));
}

function renderDatanodes(dn) {
  fill("#datanodes tbody", dn.datanodes.map((d) =>
    el("tr", {"data-uuid": d.uuid},
       el("td", {}, d.hostname),
       el("td", {class: "mono"}, d.uuid),
       el("td", {class: healthClass(d.state)}, d.state),
       el("td", {class: "version", "data-software": d.softwareVersion,
                 "data-apparent": d.apparentVersion},
          d.apparentVersion + "/" + d.softwareVersion),
       el("td", {}, d.containers),
       el("td", {}, d.pipelines.length),
       el("td", {}, bytes(d.storageReport.used) + " / " +
                    bytes(d.storageReport.capacity)),
       el("td", {}, when(d.lastHeartbeat)))));
}

function renderPipelines(pl) {
  fill("#pipelines tbody", pl.pipelines.map((p) =>
    el("tr", {},
       el("td", {class: "mono"}, p.pipelineId),
       el("td", {class: healthClass(p.status === "OPEN" ? "HEALTHY" : "STALE")},
          p.status),
       el("td", {}, p.replicationType + " " + p.replicationFactor),
       el("td", {}, p.datanodes.map((d) => d.hostname || d.uuid).join(", ")),
       el("td", {}, p.containers))));
}

function renderTasks(tasks) {
  fill("#tasks tbody", tasks.map((t) =>
    el("tr", {"data-task": t.taskName},
       el("td", {}, t.taskName + (t.syncMode ? " (" + t.syncMode + ")" : "")),
       el("td", {class: healthClass(t.status === "OK" ? "HEALTHY"
                                    : t.status === "FAILED" ? "DEAD" : "")},
          t.status),
       el("td", {}, when(t.lastUpdatedTimestamp)),
       el("td", {}, t.lastUpdatedSeqNumber),
       el("td", {class: "error"}, t.lastError))));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [cs, up, dn, pl, tasks] = await Promise.all([
      getJson("/api/v1/clusterState"), getJson("/api/v1/upgrade"),
      getJson("/api/v1/datanodes"), getJson("/api/v1/pipelines"),
      getJson("/api/v1/task/status")]);
    renderCluster(cs);
    renderUpgrade(up);
    renderRolling(up.rollingUpgrade);
    renderDatanodes(dn);
    renderPipelines(pl);
    renderTasks(tasks);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "status ok";
    document.body.setAttribute("data-rendered", "true");
  } catch (e) {
    status.textContent = "cannot reach Recon: " + e.message;
    status.className = "status bad";
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
