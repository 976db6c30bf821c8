#!/usr/bin/env bash
# PostgreSQL for the native stack, from Debian's packages (no Docker).
#
#   infra/native/postgres.sh start|stop|status|logs [tail args...]
#
# Listens on 127.0.0.1:${PGPORT:-5432}; superuser postgres / password postgres (scram),
# so the services' default URL postgres://postgres:postgres@127.0.0.1:5432/<db> works.
# Cluster, unix socket, log and the started-by-us marker live in $STATE_DIR/postgres.
# If a PostgreSQL server already answers on the port it is reused and never stopped.
COMPONENT=postgres
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PGPORT="${PGPORT:-5432}"
PG_HOST=127.0.0.1
PG_URL="postgres://postgres:postgres@$PG_HOST:$PGPORT/postgres"

IS_ROOT=false
[ "$(id -u)" -eq 0 ] && IS_ROOT=true

# Debian installs the server under /usr/lib/postgresql/<major>/bin (not on PATH, and
# whatever `postgres`/`pg_ctl` PATH finds is not trusted). Newest major wins;
# PG_BINDIR overrides.
pg_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then printf '%s\n' "$PG_BINDIR"; return; fi
  local d
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$d" ] && printf '%s\n' "$d"
}
BIN="$(pg_bindir || true)"

# Where the cluster lives. PostgreSQL refuses to run as root, so as root the server runs
# as the `postgres` OS user, which must be able to traverse every parent directory of the
# data dir. /work/main/.state is fine; a repo under /root (mode 0700) is not. In that case
# the cluster goes to /var/lib/postgresql/native-stack-<hash of state dir> (owned by the
# postgres user, created by the Debian package) and $STATE_DIR/postgres becomes a
# symlink to it, so `logs`, the marker etc. are still found through the state dir.
STATE_LINK="$STATE_DIR/postgres"
resolve_pg_dir() {
  if [ -L "$STATE_LINK" ]; then
    readlink -f "$STATE_LINK"
  else
    printf '%s\n' "$STATE_LINK"
  fi
}
PG_DIR="$(resolve_pg_dir)"

# Run a command as the cluster owner: the postgres OS user when we are root, else us.
# `cd /` so the postgres user is never left in a cwd it can't read (e.g. under /root).
as_owner() {
  if $IS_ROOT; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

set_paths() {
  DATA="$PG_DIR/data"
  LOG_FILE="$PG_DIR/postgres.log"
  MARKER="$PG_DIR/started-by-us"
  SOCK_DIR="$PG_DIR/run"
  # sun_path is limited to 107 bytes; a deep checkout would make the socket path too long
  # for PostgreSQL to create. Fall back to a short per-user directory under /tmp.
  if [ $((${#SOCK_DIR} + ${#PGPORT} + 12)) -gt 100 ]; then
    SOCK_DIR="/tmp/native-pg-$(id -u)-$(printf '%s' "$PG_DIR" | cksum | cut -d' ' -f1)"
  fi
}
set_paths

pg_answers() {
  [ -x "$BIN/pg_isready" ] || return 1
  "$BIN/pg_isready" -q -h "$PG_HOST" -p "$PGPORT"
}

# The pid in postmaster.pid, if that postmaster is alive.
our_postmaster_alive() {
  local pid
  [ -f "$DATA/postmaster.pid" ] || return 1
  pid="$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

login_ok() {
  PGCONNECT_TIMEOUT=5 "$BIN/psql" "$PG_URL" -X -q -t -A -c 'select 1' 2>&1 | grep -qx 1
}

# As root: make sure the postgres OS user can reach $STATE_DIR; if not, relocate (see above).
prepare_dir() {
  if $IS_ROOT; then
    id postgres >/dev/null 2>&1 || die "OS user 'postgres' missing (should come with the postgresql package)"
    if [ ! -e "$STATE_LINK" ] && ! runuser -u postgres -- test -x "$STATE_DIR" 2>/dev/null; then
      local alt
      alt="/var/lib/postgresql/native-stack-$(printf '%s' "$STATE_DIR" | cksum | cut -d' ' -f1)"
      log "the postgres OS user cannot traverse $STATE_DIR (a parent directory is not world-executable)"
      log "putting the cluster in $alt instead; $STATE_LINK links to it"
      mkdir -p "$alt"
      chown postgres:postgres "$alt"
      chmod 0700 "$alt"
      ln -s "$alt" "$STATE_LINK"
      PG_DIR="$alt"
      set_paths
    fi
  fi
  mkdir -p "$PG_DIR" "$SOCK_DIR"
  if $IS_ROOT; then
    # Not recursive: everything inside is created by the postgres user itself.
    chown postgres:postgres "$PG_DIR" "$SOCK_DIR"
    if [ -e "$LOG_FILE" ]; then chown postgres:postgres "$LOG_FILE"; fi
  fi
  chmod 0700 "$PG_DIR" "$SOCK_DIR"
}

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  log "initialising a new cluster in $DATA"
  local pwfile="$PG_DIR/.pwfile"
  (umask 077 && printf 'postgres\n' >"$pwfile")
  $IS_ROOT && chown postgres:postgres "$pwfile"
  # Password auth (scram) for TCP and the unix socket alike: the DB user is `postgres`
  # while the OS user may be anyone, so peer auth would not help.
  if ! as_owner "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$pwfile" \
      --auth-host=scram-sha-256 --auth-local=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1; then
    rm -f "$pwfile"
    cat "$PG_DIR/initdb.log" >&2
    die "initdb failed (output above, also in $PG_DIR/initdb.log)"
  fi
  rm -f "$pwfile"
  # Our settings live in a file we rewrite on every start (so edits here and a changed
  # PGPORT take effect without re-initialising); postgresql.conf just includes it last.
  printf "\n# native stack (infra/native/postgres.sh)\ninclude_if_exists = 'native-stack.conf'\n" \
    | as_owner tee -a "$DATA/postgresql.conf" >/dev/null
}

write_config() {
  as_owner tee "$DATA/native-stack.conf" >/dev/null <<EOF
# Written by infra/native/postgres.sh on every start; edit the script, not this file.
listen_addresses = '$PG_HOST'
port = $PGPORT
unix_socket_directories = '$SOCK_DIR'
password_encryption = 'scram-sha-256'

# A 2-core dev box running many parallel integration tests, each creating its own
# database and connection pool: plenty of connections, modest memory.
max_connections = 300
shared_buffers = 256MB
work_mem = 4MB
maintenance_work_mem = 64MB
max_wal_size = 1GB

# Durability is the point of this project (transactional outbox / inbox, exactly-once
# effects), so the dev database must not fake it: fsync and full page writes stay on
# and synchronous_commit keeps its default (on). Do not "speed up tests" by turning
# these off -- crash/restart tests would then prove nothing.
fsync = on
full_page_writes = on
synchronous_commit = on

# Logging goes to stderr, which pg_ctl -l sends to postgres.log.
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
log_lock_waits = on
EOF
}

# Debian's package creates a system cluster (15/main, port 5432). It is not started here
# (no systemd, and policy-rc.d denies service starts), but if it is running on our port
# we must not mistake it for ours.
system_cluster_on_port() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 1
  pg_lsclusters --no-header 2>/dev/null | awk -v p="$PGPORT" '$3 == p && $4 ~ /online/ {print $1 "/" $2; found=1} END {exit !found}'
}

cmd_start() {
  local t0=$SECONDS
  if pg_answers; then
    if [ -f "$MARKER" ] && our_postmaster_alive; then
      log "already running on $PG_HOST:$PGPORT (started by us earlier, data $DATA)"
    else
      rm -f "$MARKER"
      log "a PostgreSQL server already answers on $PG_HOST:$PGPORT; reusing it (will not stop it)"
      local sc
      if sc="$(system_cluster_on_port)"; then
        log "note: that is the Debian system cluster $sc (pg_ctlcluster ${sc/\// } stop to free the port)"
      fi
      login_ok || log "warning: cannot log in as postgres/postgres via $PG_URL; the services' default URL will not work against this server"
    fi
    return 0
  fi
  if [ -z "$BIN" ] && tcp_open "$PG_HOST" "$PGPORT"; then
    die "something listens on $PG_HOST:$PGPORT and PostgreSQL is not installed to check it; free the port or set PGPORT"
  fi

  apt_install postgresql
  BIN="$(pg_bindir || true)"
  if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
  fi

  local sc
  if sc="$(system_cluster_on_port)"; then
    die "the Debian system cluster $sc is running on port $PGPORT (started by the package?); stop it (pg_ctlcluster ${sc/\// } stop) or set PGPORT"
  fi
  if pg_answers; then
    log "a PostgreSQL server appeared on $PG_HOST:$PGPORT during install; reusing it"
    return 0
  fi
  tcp_open "$PG_HOST" "$PGPORT" && die "port $PGPORT on $PG_HOST is taken by something that is not PostgreSQL"

  prepare_dir
  init_cluster
  write_config
  if our_postmaster_alive; then
    die "a postmaster from $DATA is running but not answering on $PG_HOST:$PGPORT; see $LOG_FILE"
  fi
  log "starting PostgreSQL $(basename "$(dirname "$BIN")") on $PG_HOST:$PGPORT (data $DATA, log $LOG_FILE)"
  if ! as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t 60 start >/dev/null; then
    tail -n 30 "$LOG_FILE" >&2 || true
    die "pg_ctl start failed; see $LOG_FILE"
  fi
  date -u +'%Y-%m-%dT%H:%M:%SZ' >"$MARKER"
  wait_for 30 "PostgreSQL on $PG_HOST:$PGPORT" pg_answers
  login_ok || die "server is up but '$PG_URL' cannot log in; see $LOG_FILE"
  log "ready in $((SECONDS - t0))s: $PG_URL (login verified over TCP)"
}

cmd_stop() {
  if [ ! -f "$MARKER" ]; then
    if pg_answers; then
      log "not started by us; leaving the server on $PG_HOST:$PGPORT running"
    else
      log "not running"
    fi
    return 0
  fi
  if our_postmaster_alive; then
    log "stopping PostgreSQL (fast shutdown)"
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
  else
    log "not running (removing stale marker)"
  fi
  rm -f "$MARKER"
}

started_by_us() { [ -f "$MARKER" ] && our_postmaster_alive; }
cmd_status() { report_status postgres "$PG_HOST:$PGPORT" pg_answers started_by_us; }

cmd_logs() {
  [ -f "$LOG_FILE" ] || die "no log file at $LOG_FILE"
  if [ $# -eq 0 ]; then set -- -n 100; fi
  tail "$@" "$LOG_FILE"
}

case "${1:-}" in
  start)  cmd_start ;;
  stop)   cmd_stop ;;
  status) cmd_status ;;
  logs)   shift; cmd_logs "$@" ;;
  *) echo "usage: $0 {start|stop|status|logs [tail args]}" >&2; exit 2 ;;
esac
