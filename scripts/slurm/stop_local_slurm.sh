#!/usr/bin/env bash
# Stop the daemons that scripts/slurm/start_local_slurm.sh started, by the pids in its state dir.
# Leaves the state dir (logs) in place; pass --purge to delete it and the /etc/slurm/slurm.conf link.
set -uo pipefail

STATE=${OSRM_SLURM_STATE:-/tmp/osrm-slurm}
CONF=/etc/slurm/slurm.conf

stop_pid() {  # name pidfile: TERM, wait up to 10 s, then KILL
  local name=$1 file=$2 pid
  [ -f "$file" ] || { echo "$name: no pid file"; return 0; }
  pid=$(cat "$file")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then echo "$name: not running"; rm -f "$file"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$file"
  echo "$name: stopped pid $pid"
}

stop_pid slurmd "$STATE/slurmd.pid"
stop_pid slurmctld "$STATE/slurmctld.pid"
stop_pid munged "$STATE/munged.pid"
if [ "${1:-}" = "--purge" ]; then
  [ -L "$CONF" ] && [ "$(readlink "$CONF")" = "$STATE/slurm.conf" ] && rm -f "$CONF"
  rm -rf "$STATE"
  echo "purged $STATE"
fi
