# shellcheck shell=bash
# Shared helpers for the native stack scripts (infra/native/*.sh).
# Sourced, never run. Every script keeps its state under $STATE_DIR (git-ignored),
# logs to files there, and writes a `started-by-us` marker for what it started, so
# `make down` stops exactly what `make up` started and nothing else.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${STATE_DIR:-$ROOT/.state}"
mkdir -p "$STATE_DIR"

log()  { printf '[%s] %s\n' "${COMPONENT:-stack}" "$*" >&2; }
die()  { printf '[%s] error: %s\n' "${COMPONENT:-stack}" "$*" >&2; exit 1; }

# wait_for <seconds> <description> <command...>: poll once a second until the command
# succeeds; fail with the description after the bound. No unbounded sleeps.
wait_for() {
  local limit=$1 what=$2; shift 2
  local i
  for ((i = 0; i < limit; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "timed out after ${limit}s waiting for $what"
}

# tcp_open <host> <port>: true when something accepts connections there.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# apt_install <package...>: install Debian packages that are missing (needs root or sudo).
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# pid_alive <pidfile>: true when the pid in the file is a running process.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# pid_gone <pid>: true once the process has exited.
pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# await_exit <pid> <what> <seconds>: wait, bounded, for a process that was asked to stop;
# SIGKILL it when the bound runs out. Asking politely first lets a service finish what is
# in flight (graceful shutdown); the bound makes sure `make down` always ends.
await_exit() {
  local pid=$1 what=$2 limit=$3 i
  for ((i = 0; i < limit * 5; i++)); do
    pid_gone "$pid" && return 0
    sleep 0.2
  done
  log "$what (pid $pid) still running after ${limit}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait_for 10 "$what (pid $pid) to die" pid_gone "$pid"
}

# stop_pid <pid> <what> <seconds>: SIGTERM, then await_exit.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  await_exit "$@"
}

# report_status <name> <address> <answers-fn> <ours-fn>: the one-line status of a server
# the scripts may or may not have started: "<name>: up on <address> (started by us)",
# "(external)" when something else answers there, or "<name>: down (<address>)" with
# exit status 1.
report_status() {
  local name=$1 address=$2 answers=$3 ours=$4
  if "$answers"; then
    local who="external"
    "$ours" && who="started by us"
    echo "$name: up on $address ($who)"
    return 0
  fi
  echo "$name: down ($address)"
  return 1
}
