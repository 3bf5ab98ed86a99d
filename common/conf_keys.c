/* The table of keys ozone-c understands (DESIGN.md §11). Names and defaults
 * follow Apache Ozone so that an existing ozone-site.xml keeps working;
 * docs/config.md documents the same entries for operators. */
#include "conf_keys.h"

#include <string.h>

/* Grouped by component; prefix entries end in '.'. */
static const struct conf_key_info known_keys[] = {
    /* Storage locations. */
    {"ozone.metadata.dirs", NULL,
     "Directory for metadata of every component (VERSION files, RocksDB) "
     "when no component-specific directory is set."},
    {"ozone.om.db.dirs", NULL,
     "Directory of the OM RocksDB; defaults to ozone.metadata.dirs."},
    {"ozone.scm.db.dirs", NULL,
     "Directory of the SCM RocksDB; defaults to ozone.metadata.dirs."},
    {"ozone.recon.db.dir", NULL,
     "Directory of Recon's databases; defaults to ozone.metadata.dirs."},
    {"hdds.datanode.dir", NULL,
     "Comma-separated list of datanode data volumes holding containers."},

    /* Ozone Manager. */
    {"ozone.om.address", "0.0.0.0:9862",
     "Host and port of the OM RPC (gRPC) server."},
    {"ozone.om.http-address", "0.0.0.0:9874",
     "Host and port of the OM HTTP server (/prom, /healthz, /version, "
     "/dbCheckpoint)."},
    {"ozone.om.ratis.port", "9872",
     "Port of the OM Raft (replication) server."},
    {"ozone.om.service.ids", NULL,
     "Comma-separated OM HA service ids; unset for a single OM."},
    {"ozone.om.nodes.", NULL,
     "ozone.om.nodes.<service id>: comma-separated node ids of the OMs of "
     "that service."},
    {"ozone.om.address.", NULL,
     "ozone.om.address.<service id>.<node id>: RPC host:port of one OM of "
     "an HA service."},
    {"ozone.om.http-address.", NULL,
     "ozone.om.http-address.<service id>.<node id>: HTTP host:port of one "
     "OM of an HA service."},
    {"ozone.om.ratis.port.", NULL,
     "ozone.om.ratis.port.<service id>.<node id>: Raft port of one OM of "
     "an HA service."},
    {"ozone.om.node.id", NULL,
     "Node id of this OM within its HA service (required when the service "
     "has more than one node); the name of a single OM's raft node."},
    {"ozone.om.ratis.snapshot.auto.trigger.threshold", "10000",
     "Applied OM log entries between two Raft snapshots (RocksDB "
     "checkpoints); the log before a snapshot is compacted."},
    {"ozone.om.ratis.log.purge.preservation.log.num", "1024",
     "OM log entries kept behind a snapshot, so that a briefly stopped "
     "follower catches up from the log instead of a snapshot."},
    {"ozone.om.ratis.minimum.timeout", "1s",
     "OM Raft election timeout; heartbeats are sent every tenth of it."},
    {"ozone.om.ratis.double.buffer.max.entries", "1000",
     "Applied OM log entries the double buffer collects before it writes "
     "them to RocksDB in one batch."},
    {"ozone.om.ratis.double.buffer.flush.interval", "10ms",
     "Longest time an applied OM log entry waits in the double buffer "
     "before it is written to RocksDB."},
    {"ozone.om.open.key.cleanup.service.interval", "24h",
     "How often the OM leader looks for expired open keys (CreateKey "
     "without CommitKey) and deletes them."},
    {"ozone.om.open.key.expire.threshold", "7d",
     "Age after which an open key that was never committed is deleted."},
    {"ozone.om.open.key.cleanup.limit.per.task", "1000",
     "Most expired open keys deleted by one cleanup run (one log entry)."},
    {"ozone.om.upgrade.finalization.check.interval", "5s",
     "How often OM checks whether SCM and the datanodes have finalized "
     "while it finalizes an upgrade."},

    /* Storage Container Manager. */
    {"ozone.scm.names", NULL,
     "Comma-separated host names (or host:port) of the SCMs that datanodes "
     "and clients contact."},
    {"ozone.scm.join.timeout", "60s",
     "How long OM --init, a new datanode or Recon waits for SCM to answer "
     "before giving up (they learn the cluster id from SCM)."},
    {"ozone.scm.client.address", "0.0.0.0:9860",
     "Host and port of the SCM client RPC server."},
    {"ozone.scm.block.client.address", "0.0.0.0:9863",
     "Host and port of the SCM block-allocation RPC server used by OM."},
    {"ozone.scm.datanode.address", "0.0.0.0:9861",
     "Host and port of the SCM server that datanodes heartbeat to."},
    {"ozone.scm.http-address", "0.0.0.0:9876",
     "Host and port of the SCM HTTP server."},
    {"ozone.scm.ratis.port", "9894", "Port of the SCM Raft server."},
    {"ozone.scm.stale.node.interval", "5m",
     "Time without a heartbeat after which SCM marks a datanode STALE."},
    {"ozone.scm.dead.node.interval", "10m",
     "Time without a heartbeat after which SCM marks a datanode DEAD."},
    {"ozone.scm.container.size", "5GB",
     "Size at which an open container is closed."},
    {"ozone.scm.block.size", "256MB", "Size of a block of a key."},
    {"ozone.scm.chunk.size", "4MB",
     "Size of a chunk, the unit of a write to a datanode and of a "
     "checksum."},
    {"ozone.scm.pipeline.owner.container.count", "1",
     "Number of open containers per pipeline owner."},
    {"ozone.scm.datanode.pipeline.limit", "2",
     "Maximum number of open pipelines a datanode takes part in."},

    /* Datanode. */
    {"hdds.container.ipc.port", "9859",
     "Port of the datanode container (chunk read/write) server."},
    {"hdds.datanode.http-address", "0.0.0.0:9882",
     "Host and port of the datanode HTTP server."},
    {"hdds.heartbeat.interval", "30s",
     "How often a datanode heartbeats to SCM."},
    {"hdds.datanode.advertise.address", NULL,
     "Address (host or IP) the datanode tells SCM clients should dial; "
     "default: the host of hdds.container.ipc.port, or 127.0.0.1 when it "
     "is a wildcard."},
    {"hdds.datanode.id", NULL,
     "Overrides the datanode id (normally a UUID generated at first "
     "start)."},

    /* Recon. */
    {"ozone.recon.address", "0.0.0.0:9891",
     "Host and port of the Recon RPC server."},
    {"ozone.recon.http-address", "0.0.0.0:9888",
     "Host and port of the Recon HTTP server (API and dashboard)."},
    {"ozone.recon.om.snapshot.task.interval.delay", "10s",
     "How often Recon syncs OM's database."},
    {"ozone.recon.om.db.updates.limit", "50000",
     "Most OM database operations Recon asks for in one DBUpdates call."},
    {"ozone.recon.om.checkpoint.max.size", "64GB",
     "Largest OM checkpoint Recon downloads; a larger one fails the full "
     "sync."},
    {"ozone.recon.om.checkpoint.timeout", "10m",
     "Time limit of one OM checkpoint download."},
    {"ozone.recon.scm.poll.interval", "10s",
     "How often Recon polls SCM (datanodes, containers, pipelines, "
     "versions) and every OM's version."},
    {"ozone.recon.web.dir", NULL,
     "Directory of the dashboard's files (index.html, app.js, style.css); "
     "default: the installed copy, else the source tree's."},

    /* Clients and RPC. */
    {"ozone.replication", "THREE",
     "Default replication of new keys: ONE or THREE."},
    {"ozone.client.checksum.type", "CRC32C",
     "Checksum of new chunks: CRC32C, or SHA256 once HDDS "
     "CHUNK_CHECKSUM_SHA256 (101) is finalized (datanodes refuse it "
     "before)."},
    {"ozone.client.om.wait.timeout", "30s",
     "How long a client of a single OM (no service id) waits for it when it "
     "cannot connect (the OM restarts, e.g. in a rolling upgrade, or all "
     "its handlers wait on a restarting SCM) before the call fails; 0s "
     "fails at once"},
    {"ozone.client.block.allocation.timeout", "30s",
     "How long a writing client keeps asking OM for a block while SCM has "
     "no healthy pipeline for it (e.g. while one replacing a failed "
     "datanode opens) before the write fails."},
    {"ozone.rpc.max.message.size", "32MB",
     "Largest RPC message accepted or sent."},
    {"ozone.rpc.handler.count", "8",
     "Number of RPC handler threads per server."},
    {"ozone.rpc.timeout", "10s",
     "Deadline of an RPC call from a client or another daemon."},

    /* Rolling-upgrade orchestrator (`ozone admin upgrade plan|run`). */
    {"ozone.upgrade.step.timeout", "5m",
     "Longest time one step of a rolling upgrade (stop, swap, start, wait "
     "for the node to catch up) may take before the roll pauses."},
    {"ozone.upgrade.gate.window", "10s",
     "How long the safety gate watches client RPCs after each step before "
     "the next one starts."},
    {"ozone.upgrade.gate.max.error.rate", "0.01",
     "Largest share of client RPCs to OMs and datanodes that may fail by "
     "the server's fault during a gate window (a fraction, 0.01 = 1%); "
     "above it the roll pauses."},
    {"ozone.upgrade.gate.max.p99", "2s",
     "Largest p99 latency of client RPCs to OMs and datanodes during a gate "
     "window; above it the roll pauses."},
    {"ozone.upgrade.max.om.lag", "10000",
     "Most log entries an OM may be behind the leader for a roll to start "
     "or go on."},
    {"ozone.upgrade.lease.timeout", "2m",
     "How long the orchestrator's lease in OM lasts without a renewal; "
     "another orchestrator is refused until it ends."},

    /* Logging. */
    {"ozone.log.level", "INFO", "Log level: DEBUG, INFO, WARN or ERROR."},
    {"ozone.log.file", NULL,
     "File the daemon logs to; unset or '-' logs to stderr."},

    /* Testing only (DESIGN.md §6.2): each prints a warning at start. */
    {"testing.om.init.apparent.version", NULL,
     "Testing only: apparent version a new OM is initialised with."},
    {"testing.scm.init.apparent.version", NULL,
     "Testing only: apparent version a new SCM is initialised with."},
    {"testing.datanode.init.apparent.version", NULL,
     "Testing only: apparent version a new datanode is initialised with."},
    {"testing.recon.init.apparent.version", NULL,
     "Testing only: apparent version a new Recon is initialised with."},
};

const struct conf_key_info *conf_known_keys(size_t *n)
{
    if (n != NULL) {
        *n = sizeof(known_keys) / sizeof(known_keys[0]);
    }
    return known_keys;
}

bool conf_key_matches(const char *pattern, const char *name)
{
    size_t plen = strlen(pattern);
    size_t nlen = strlen(name);

    if (plen > 0 && (pattern[plen - 1] == '.' || pattern[plen - 1] == '*')) {
        /* A '*' stands for the rest of the key and is not compared. */
        if (pattern[plen - 1] == '*') {
            plen--;
        }
        return nlen > plen && memcmp(pattern, name, plen) == 0;
    }
    return strcmp(pattern, name) == 0;
}

const struct conf_key_info *conf_key_lookup(const char *key)
{
    const struct conf_key_info *best = NULL;
    size_t best_len = 0;
    size_t i;
    size_t n = sizeof(known_keys) / sizeof(known_keys[0]);

    for (i = 0; i < n; i++) {
        if (strcmp(known_keys[i].name, key) == 0) {
            return &known_keys[i];
        }
    }
    for (i = 0; i < n; i++) {
        size_t len = strlen(known_keys[i].name);
        if (conf_key_matches(known_keys[i].name, key) && len > best_len) {
            best = &known_keys[i];
            best_len = len;
        }
    }
    return best;
}
