#!/usr/bin/env bash
# Start a real single-node SLURM (Debian slurm-wlm 22.05 + munge) on this machine, as root.
#
#   scripts/slurm/start_local_slurm.sh          # install if missing, configure, start, wait for idle
#   scripts/slurm/stop_local_slurm.sh           # stop the daemons started here (by pid)
#
# Recipe: docs/slurm.md, "A local SLURM for development". State, spool, logs and pid files live
# in $OSRM_SLURM_STATE (default /tmp/osrm-slurm); the config is written there and linked to /etc/slurm/slurm.conf so that
# sbatch/squeue/sinfo find it without SLURM_CONF. Idempotent: when the daemons recorded in the state
# dir are alive and `sinfo` answers, it only reports. Exit codes: 0 ready, 3 packages cannot be
# installed (callers such as the test fixture skip on 3), 1 anything else.
set -euo pipefail

STATE=${OSRM_SLURM_STATE:-/tmp/osrm-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by osrm scripts/slurm/start_local_slurm.sh"
WAIT_S=${OSRM_SLURM_WAIT_S:-60}

die() { echo "start_local_slurm: $*" >&2; exit "${2:-1}"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

report() {
  echo "state_dir=$STATE"
  echo "conf=$CONF"
  for d in munged slurmctld slurmd; do echo "$d pid=$(cat "$STATE/$d.pid" 2>/dev/null || echo '?')"; done
  sinfo --noheader -o "partition=%P node=%N state=%t cpus=%c mem=%m" || true
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts munged/slurmctld/slurmd)"

install_packages() {
  command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v munged >/dev/null && return 0
  command -v apt-get >/dev/null || die "apt-get not found: install slurm-wlm and munge by hand" 3
  echo "start_local_slurm: installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null; } \
    || die "apt-get install slurm-wlm munge failed (no package mirror reachable?)" 3
}

if alive "$STATE/munged.pid" && alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid" \
   && sinfo --noheader >/dev/null 2>&1; then
  echo "start_local_slurm: already running"
  report
  exit 0
fi

install_packages
HOST=$(hostname -s)
NCPU=$(nproc)
MEM=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
MEM=$(( ${MEM:-2048} * 95 / 100 ))
mkdir -p "$STATE"/{ctld,spool,log,munge} /run/munge /var/log/munge /var/lib/munge

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge "$STATE/munge"
  chmod 755 "$STATE/munge"
  chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
  alive "$STATE/munged.pid" && return 0
  rm -f "$STATE/munge/munged.pid"
  runuser -u munge -- /usr/sbin/munged --force --pid-file="$STATE/munge/munged.pid" \
    --log-file="$STATE/munge/munged.log"
  for _ in $(seq 50); do [ -s "$STATE/munge/munged.pid" ] && break; sleep 0.1; done
  cp "$STATE/munge/munged.pid" "$STATE/munged.pid"
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "munged did not answer; see $STATE/munge/munged.log"
}

write_conf() {
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: move it away or use that cluster directly"
  fi
  cat > "$STATE/slurm.conf" <<CONF
$MARK
ClusterName=osrm-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
EnforcePartLimits=ALL
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  ln -sf "$STATE/slurm.conf" "$CONF"
}

start_slurm() {
  alive "$STATE/slurmctld.pid" || /usr/sbin/slurmctld
  alive "$STATE/slurmd.pid" || /usr/sbin/slurmd
  local t0=$SECONDS
  until sinfo --noheader -h -o %t 2>/dev/null | grep -qx "idle"; do
    (( SECONDS - t0 < WAIT_S )) || die "node not idle after ${WAIT_S}s; see $STATE/log/slurmctld.log and slurmd.log"
    sleep 0.5
  done
}

start_munge
write_conf
start_slurm
echo "start_local_slurm: ready"
report
