#!/bin/sh
# ozone-entrypoint: the container's entry point (deploy/compose/Dockerfile).
#
#   ozone-entrypoint scm|om|datanode|recon [ARGS...]
#
# Runs 'ozone DAEMON ARGS' as the container's main process (exec: SIGTERM
# from 'docker stop' reaches the daemon, which drains; DESIGN.md §4). For
# scm and om, whose storage is created only by --init, it first runs
# 'ozone DAEMON --init ARGS' when the storage is empty: no
# $OZONE_METADATA_DIR/DAEMON/current/VERSION (default /var/lib/ozone, the
# sample's ozone.metadata.dirs). --init is itself a no-op on initialised
# storage, so a metadata directory configured elsewhere is still safe.
# om --init waits for SCM to learn the cluster id. Datanodes and Recon
# create their storage at their first start.
#
# Anything else is run as a command ('ozone-entrypoint ozone version').
set -eu

OZONE=${OZONE:-ozone}
meta=${OZONE_METADATA_DIR:-/var/lib/ozone}

if [ $# -eq 0 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
  sed -n '2,18s/^# \{0,1\}//p' "$0"
  exit 0
fi
daemon=$1
shift
case "$daemon" in
  scm|om)
    if [ ! -f "$meta/$daemon/current/VERSION" ]; then
      echo "ozone-entrypoint: no $daemon storage in '$meta/$daemon': running '$daemon --init'"
      "$OZONE" "$daemon" --init "$@"
    fi
    exec "$OZONE" "$daemon" "$@"
    ;;
  datanode|recon)
    exec "$OZONE" "$daemon" "$@"
    ;;
  *)
    exec "$daemon" "$@"
    ;;
esac
