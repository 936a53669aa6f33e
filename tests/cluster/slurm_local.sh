#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on this machine, for testing rsi job arrays.
#
#   tests/cluster/slurm_local.sh start    # munged + slurmctld + slurmd for localhost
#   tests/cluster/slurm_local.sh status   # exit 0 when the node is up and idle/mixed/allocated
#   tests/cluster/slurm_local.sh stop     # kill the daemons and remove every file they used
#   tests/cluster/slurm_local.sh env      # print "export SLURM_CONF=..." for the client commands
#
# Needs root and the Debian packages slurm-wlm and munge (scripts/setup.sh installs them); installs
# nothing itself. Everything (slurm.conf, munge key and socket, state, spool, logs, pid files) lives
# under $RSI_SLURM_DIR (default /tmp/rsi-slurm), so `stop` leaves the machine as it found it and a
# system munged or slurm, if any, is not touched. Client commands (sbatch, squeue, sinfo) find this
# cluster through SLURM_CONF=$RSI_SLURM_DIR/slurm.conf.
#
# Ports: $RSI_SLURM_PORT (default 6817) for slurmctld and the next one for slurmd.
set -euo pipefail

dir=${RSI_SLURM_DIR:-/tmp/rsi-slurm}
port=${RSI_SLURM_PORT:-6817}
conf=$dir/slurm.conf
node=$(hostname -s)
munge_socket=$dir/munge/munge.socket.2

die() { echo "slurm_local: $*" >&2; exit 1; }

need_tools() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (slurmd runs jobs as their submitter)"
  local t
  for t in munged munge unmunge slurmctld slurmd sbatch sinfo scontrol runuser; do
    command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] ||
      die "$t not found: install the Debian packages slurm-wlm and munge (scripts/setup.sh)"
  done
  id munge >/dev/null 2>&1 || die "no munge user: install the Debian package munge"
}

# A process that exists and is not a zombie (PID 1 of some containers never reaps the daemons'
# exited parents or the daemons themselves, and kill -0 succeeds on a zombie).
running() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pid_alive() { [ -s "$1" ] && running "$(cat "$1" 2>/dev/null)"; }

node_state() {
  SLURM_CONF=$conf sinfo -h -n "$node" -o '%T' 2>/dev/null | head -n 1
}

is_up() {
  [ -f "$conf" ] && pid_alive "$dir/slurmctld.pid" && pid_alive "$dir/slurmd.pid" || return 1
  case "$(node_state)" in idle* | mixed* | allocated* | completing*) return 0 ;; *) return 1 ;; esac
}

write_conf() {
  local cpus
  cpus=$(nproc)
  cat >"$conf" <<EOF
# Written by tests/cluster/slurm_local.sh: a one-node cluster on $node; removed by 'stop'.
ClusterName=rsi-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/backfill
MaxArraySize=10001
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=rsi Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

start_munge() {
  if pid_alive "$dir/munge/munged.pid" && munge -n -S "$munge_socket" | unmunge -S "$munge_socket" >/dev/null 2>&1; then
    return 0
  fi
  install -d -m 0700 -o munge -g munge "$dir/munge"
  if [ ! -s "$dir/munge/munge.key" ]; then
    # A key for this cluster only: 1024 random bytes, readable by munge alone.
    if ! mungekey --create --keyfile="$dir/munge/munge.key" --force >/dev/null 2>&1; then
      dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    fi
    chown munge:munge "$dir/munge/munge.key"
    chmod 0400 "$dir/munge/munge.key"
  fi
  runuser -u munge -- /usr/sbin/munged --force \
    --socket="$munge_socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" ||
    die "munged failed to start (see $dir/munge/munged.log)"
  for _ in $(seq 50); do
    munge -n -S "$munge_socket" 2>/dev/null | unmunge -S "$munge_socket" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged does not answer on $munge_socket (see $dir/munge/munged.log)"
}

start() {
  need_tools
  if is_up; then
    echo "slurm_local: already running (SLURM_CONF=$conf)"
    return 0
  fi
  # Leftovers of a crashed run would confuse the daemons: start from nothing.
  stop_daemons
  rm -rf "$dir"
  # /tmp/rsi-slurm is root-owned and not world-writable: munged insists on safe parent dirs.
  install -d -m 0755 "$dir" "$dir/state" "$dir/spool" "$dir/log"
  write_conf
  start_munge
  # -i: ignore (non-existent) saved state. Both daemonise and write their pid files.
  /usr/sbin/slurmctld -i -f "$conf" || die "slurmctld failed to start (see $dir/log/slurmctld.log)"
  /usr/sbin/slurmd -f "$conf" -N "$node" || die "slurmd failed to start (see $dir/log/slurmd.log)"
  local state=""
  for _ in $(seq 100); do
    state=$(node_state || true)
    case "$state" in idle*) break ;; esac
    sleep 0.2
  done
  case "$state" in
    idle*) ;;
    down* | drain*)
      SLURM_CONF=$conf scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
      sleep 1
      state=$(node_state || true)
      case "$state" in idle*) ;; *) die "node $node is '$state' (see $dir/log/)" ;; esac
      ;;
    *) die "node $node did not come up (state '${state:-none}'; see $dir/log/)" ;;
  esac
  echo "slurm_local: up: node $node, $(nproc) CPUs, partition rsi; export SLURM_CONF=$conf"
}

kill_pidfile() {
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  running "$pid" || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    running "$pid" || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

stop_daemons() {
  [ -d "$dir" ] || return 0
  # Jobs still running would keep slurmstepd processes (and their pids) alive.
  if [ -f "$conf" ] && pid_alive "$dir/slurmctld.pid"; then
    SLURM_CONF=$conf timeout 10 scancel --full -u root >/dev/null 2>&1 || true
  fi
  kill_pidfile "$dir/slurmd.pid"
  kill_pidfile "$dir/slurmctld.pid"
  kill_pidfile "$dir/munge/munged.pid"
}

stop() {
  stop_daemons
  rm -rf "$dir"
  echo "slurm_local: stopped"
}

status() {
  if is_up; then
    echo "slurm_local: up (node $node $(node_state); SLURM_CONF=$conf)"
    SLURM_CONF=$conf sinfo
  else
    echo "slurm_local: not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
