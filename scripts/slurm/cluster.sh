#!/usr/bin/env bash
# A one-node SLURM cluster on localhost (munged + slurmctld + slurmd, Debian's slurm-wlm 22.05)
# for the tests and for trying the workflow's SLURM profile on one machine. Needs root: slurmd
# starts each job as the user who submitted it. Nothing is written to /etc and nothing listens
# beyond 127.0.0.1; all state (slurm.conf, munge key and socket, spool, logs, pid files) lives in
# one directory, plus the link /run/slurm/conf to it (see slurm.conf.in). One such cluster per machine.
#
#   scripts/slurm/cluster.sh install  install slurm-wlm and munge if missing (root + apt-get)
#   scripts/slurm/cluster.sh up       install, start the daemons, wait until sinfo shows the node
#                                     idle; up twice is fine
#   scripts/slurm/cluster.sh down     cancel what is queued, stop the daemons by their PIDs, remove
#                                     the state directory
#   scripts/slurm/cluster.sh status   sinfo and the daemons' PIDs (exit 1 when not up)
#   scripts/slurm/cluster.sh env      print `export SLURM_CONF=...`: eval "$(scripts/slurm/cluster.sh env)"
#
#   LSKD_SLURM_DIR      state directory (default /tmp/lskd-slurm)
#   LSKD_SLURM_PORT     slurmctld's port (default 16817, not SLURM's 6817, so a real cluster's
#                       daemons on this machine are left alone); slurmd uses +1, srun +2 to +101
#   LSKD_SLURM_TIMEOUT  seconds to wait for the node to become idle (default 60)
#   LSKD_NO_APT=1       never install Debian packages (as in scripts/setup_env.sh)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${LSKD_SLURM_DIR:-/tmp/lskd-slurm}"
PORT="${LSKD_SLURM_PORT:-16817}"
TIMEOUT="${LSKD_SLURM_TIMEOUT:-60}"
CONF="$STATE/slurm.conf"
MARKER="$STATE/.lskd-slurm"   # down removes only a directory that up made
RUNCONF=/run/slurm/conf       # link to STATE: where commands look for slurm.conf without SLURM_CONF
export SLURM_CONF="$CONF"

die() { echo "[slurm] error: $*" >&2; exit 2; }
say() { echo "[slurm] $*"; }

case "$PORT" in ''|*[!0-9]*) die "LSKD_SLURM_PORT must be a port number, got '$PORT'";; esac
[ "$PORT" -ge 1024 ] && [ "$PORT" -le 65400 ] || die "LSKD_SLURM_PORT must be in 1024..65400, got $PORT"
case "$TIMEOUT" in ''|*[!0-9]*) die "LSKD_SLURM_TIMEOUT must be whole seconds, got '$TIMEOUT'";; esac
case "$STATE" in /*) ;; *) die "LSKD_SLURM_DIR must be an absolute path, got '$STATE'";; esac

# pid file -> its PID while that process runs and is the daemon the file is named after (not a
# later process that reuses the number), else nothing
alive() {
  local pid
  pid="$(cat "$1" 2>/dev/null || true)"
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(basename "$1" .pid)" ] && echo "$pid"
  return 0
}
pidfiles=("$STATE/run/slurmd.pid" "$STATE/run/slurmctld.pid" "$STATE/munge/munged.pid")

node_state() { timeout 5 sinfo -h -n localhost -o %T 2>/dev/null || true; }

is_up() {
  local f
  for f in "${pidfiles[@]}"; do [ -n "$(alive "$f")" ] || return 1; done
  case "$(node_state)" in idle|mixed|allocated|completing) return 0;; *) return 1;; esac
}

# the Debian packages: slurm-wlm (slurmctld, slurmd, slurm-client) and munge
install_packages() {
  local missing=() c
  for c in munged munge slurmctld slurmd sinfo sbatch squeue scontrol scancel; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local why="missing ${missing[*]} (Debian: apt-get install slurm-wlm munge)"
  [ "${LSKD_NO_APT:-0}" != 1 ] || die "$why; LSKD_NO_APT=1 forbids installing them"
  command -v apt-get >/dev/null || die "$why; no apt-get here to install them"
  say "installing Debian packages: slurm-wlm munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && \
         apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null 2>&1; } \
    || die "$why; apt-get install slurm-wlm munge failed"
}

# the last lines of each log, to go with an error
show_logs() {
  local f
  for f in "$STATE/munge/munged.log" "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log"; do
    [ -s "$f" ] || continue
    echo "[slurm] --- last lines of $f:" >&2
    tail -n 8 "$f" | sed 's/^/  | /' >&2
  done
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

wait_for() {   # wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s
  local limit=$1 what=$2 t0=$SECONDS; shift 2
  until "$@"; do
    if [ $((SECONDS - t0)) -ge "$limit" ]; then
      local node; node="$(node_state)"
      show_logs; stop_daemons
      die "$what after ${limit} s (sinfo: '${node:-no answer}'; logs above; state in $STATE)"
    fi
    sleep 0.2
  done
}

terminate() {   # terminate PIDFILE...: SIGTERM, and SIGKILL whatever still runs 10 s later
  local f pid pids=() t0=$SECONDS
  for f in "$@"; do
    pid="$(alive "$f")"
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - t0)) -lt 10 ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "PID $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

stop_daemons() {
  # Jobs first, so no slurmstepd outlives slurmd; then slurmd, slurmctld, munged by their PIDs.
  if [ -n "$(alive "$STATE/run/slurmctld.pid")" ]; then
    local jobs
    jobs="$(timeout 5 squeue -h -o %A 2>/dev/null || true)"
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      timeout 5 scancel $jobs 2>/dev/null || true
      local t0=$SECONDS
      while [ -n "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ] && [ $((SECONDS - t0)) -lt 10 ]; do sleep 0.2; done
    fi
  fi
  # slurmd and slurmctld together (each takes ~2 s to exit), then munged, which signs their messages
  terminate "$STATE/run/slurmd.pid" "$STATE/run/slurmctld.pid"
  terminate "$STATE/munge/munged.pid"
  if [ "$(readlink "$RUNCONF" 2>/dev/null)" = "$STATE" ]; then
    rm -f "$RUNCONF"; rmdir /run/slurm 2>/dev/null || true
  fi
  return 0
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (slurmd starts jobs as their users; munged runs as user munge)"
  install_packages
  if is_up; then say "already up ($(cat "$STATE/run/slurmctld.pid" 2>/dev/null | sed 's/^/slurmctld PID /')); export SLURM_CONF=$CONF"; return 0; fi
  local t0=$SECONDS
  [ ! -e "$STATE" ] || [ -e "$MARKER" ] || die "$STATE exists and was not made by this script; set LSKD_SLURM_DIR to a new directory"
  stop_daemons; rm -rf "$STATE"   # what a half-started or crashed cluster left
  [ ! -e /etc/slurm/slurm.conf ] || die "/etc/slurm/slurm.conf exists: commands inside jobs would read it instead of this cluster's configuration"
  local other
  other="$(readlink "$RUNCONF" 2>/dev/null || true)"
  if [ -e "$RUNCONF" ] && [ "$other" != "$STATE" ]; then
    [ -e "$other/.lskd-slurm" ] && die "this script's cluster in $other runs already (one per machine: LSKD_SLURM_DIR=$other $0 down)"
    die "$RUNCONF exists: another (configless) SLURM runs on this machine"
  fi
  local p
  for p in "$PORT" $((PORT + 1)); do
    ! port_busy "$p" || die "port $p is in use (another SLURM?); set LSKD_SLURM_PORT to a free one (it uses that port and the next)"
  done
  id munge >/dev/null 2>&1 || die "no user munge (the munge package creates it)"
  local slurm_user=slurm
  id slurm >/dev/null 2>&1 || slurm_user=root

  mkdir -p "$STATE"
  chmod 755 "$STATE"
  touch "$MARKER"
  mkdir -p "$STATE/munge" "$STATE/ctld" "$STATE/spool" "$STATE/run" "$STATE/log"
  chown munge:munge "$STATE/munge"
  chown "$slurm_user:" "$STATE/ctld" "$STATE/run" "$STATE/log"
  chmod 755 "$STATE/munge" "$STATE/ctld" "$STATE/run" "$STATE/log"
  chmod 700 "$STATE/spool"

  # munge: a fresh random key readable by munge only; the daemon as user munge, socket in STATE.
  (umask 077; head -c 1024 /dev/urandom > "$STATE/munge/munge.key")
  chown munge:munge "$STATE/munge/munge.key"; chmod 400 "$STATE/munge/munge.key"
  runuser -u munge -- munged --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
    --seed-file="$STATE/munge/munged.seed" \
    || { show_logs; die "munged did not start"; }
  munge_ok() { munge -n -S "$STATE/munge/munge.socket" 2>/dev/null | unmunge -S "$STATE/munge/munge.socket" >/dev/null 2>&1; }
  wait_for 10 "munged did not answer" munge_ok

  # slurm.conf: this machine's CPUs and memory (MemTotal minus 5 % and at least 256 MB of margin)
  local cpus mem_mb margin
  cpus="$(nproc)"
  mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
  margin=$(( mem_mb / 20 )); [ "$margin" -ge 256 ] || margin=256
  mem_mb=$(( mem_mb - margin ))
  [ "$mem_mb" -ge 256 ] || die "only $((mem_mb + margin)) MB of memory: too little for a SLURM node"
  sed -e "s|@STATE@|$STATE|g" -e "s|@SLURM_USER@|$slurm_user|g" -e "s|@CPUS@|$cpus|g" \
      -e "s|@MEM_MB@|$mem_mb|g" -e "s|@CTLD_PORT@|$PORT|g" -e "s|@SLURMD_PORT@|$((PORT + 1))|g" \
      -e "s|@SRUN_PORTS@|$((PORT + 2))-$((PORT + 101))|g" "$HERE/slurm.conf.in" > "$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
  # Commands find slurm.conf through SLURM_CONF, then /etc/slurm, then /run/slurm/conf (where a
  # configless slurmd links its copy). Jobs need the last: the SLURM executor plugin runs each
  # job's srun without SLURM_CONF (it drops all SLURM_* variables).
  mkdir -p /run/slurm
  ln -sfn "$STATE" "$RUNCONF"

  slurmctld -f "$CONF" || { show_logs; stop_daemons; die "slurmctld did not start"; }
  slurmd -f "$CONF" -N localhost || { show_logs; stop_daemons; die "slurmd did not start"; }
  node_idle() { [ "$(node_state)" = idle ]; }
  wait_for "$TIMEOUT" "the node localhost is not idle" node_idle
  say "up in $((SECONDS - t0)) s: $cpus CPUs, $mem_mb MB, partition debug; export SLURM_CONF=$CONF"
}

down() {
  if [ ! -e "$STATE" ]; then say "not up (no $STATE)"; return 0; fi
  [ -e "$MARKER" ] || die "$STATE was not made by this script; not touching it"
  stop_daemons
  rm -rf "$STATE"
  say "down; removed $STATE"
}

status() {
  local f pid rc=0
  for f in "${pidfiles[@]}"; do
    pid="$(alive "$f")"
    echo "$(basename "$f" .pid): ${pid:-not running}"
    [ -n "$pid" ] || rc=1
  done
  if [ -e "$CONF" ]; then timeout 5 sinfo 2>&1 || rc=1; else echo "no $CONF"; rc=1; fi
  return $rc
}

case "${1:-}" in
  install) [ "$(id -u)" = 0 ] || die "needs root to install slurm-wlm and munge"; install_packages ;;
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) die "usage: $0 install|up|down|status|env (got '${1:-}')" ;;
esac
