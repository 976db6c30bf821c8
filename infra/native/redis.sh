#!/usr/bin/env bash
# Redis for the native stack, from Debian's redis-server package (no Docker).
#
#   infra/native/redis.sh start|stop|status|logs [tail args...]
#
# Listens on 127.0.0.1:${REDIS_PORT:-6379}. pid file, log and the started-by-us marker
# live in $STATE_DIR/redis. If a Redis already answers on the port it is reused and never
# stopped.
COMPONENT=redis
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REDIS_PORT="${REDIS_PORT:-6379}"
REDIS_HOST=127.0.0.1
REDIS_DIR="$STATE_DIR/redis"
PID_FILE="$REDIS_DIR/redis.pid"
LOG_FILE="$REDIS_DIR/redis.log"
MARKER="$REDIS_DIR/started-by-us"

# Prefer Debian's binaries; fall back to PATH.
bin() {
  if [ -x "/usr/bin/$1" ]; then printf '%s\n' "/usr/bin/$1"; else command -v "$1"; fi
}

cli() { "$(bin redis-cli)" -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }

redis_answers() {
  bin redis-cli >/dev/null 2>&1 || return 1
  [ "$(cli ping 2>/dev/null)" = PONG ]
}

# True when the pid in our pid file is alive and is a redis-server (not a recycled pid).
our_pid_alive() {
  pid_alive "$PID_FILE" && grep -q '^redis' "/proc/$(cat "$PID_FILE")/comm" 2>/dev/null
}

# True when the Redis answering on the port is the process in our pid file.
ours_answering() {
  local pid served
  our_pid_alive || return 1
  pid="$(cat "$PID_FILE")"
  served="$(cli info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')"
  [ -n "$served" ] && [ "$served" = "$pid" ]
}

cmd_start() {
  local t0=$SECONDS
  if redis_answers; then
    if [ -f "$MARKER" ] && ours_answering; then
      log "already running on $REDIS_HOST:$REDIS_PORT (started by us earlier, pid $(cat "$PID_FILE"))"
    else
      rm -f "$MARKER"
      log "a Redis already answers on $REDIS_HOST:$REDIS_PORT; reusing it (will not stop it)"
    fi
    return 0
  fi
  if tcp_open "$REDIS_HOST" "$REDIS_PORT"; then
    die "port $REDIS_PORT on $REDIS_HOST is taken by something that does not answer PING with PONG; free it or set REDIS_PORT"
  fi

  apt_install redis-server
  local server
  server="$(bin redis-server)" || die "redis-server not found after install"

  mkdir -p "$REDIS_DIR"
  rm -f "$MARKER"
  if our_pid_alive; then
    die "redis pid $(cat "$PID_FILE") from $PID_FILE is alive but not answering on $REDIS_HOST:$REDIS_PORT; see $LOG_FILE"
  fi
  rm -f "$PID_FILE"

  log "starting Redis $("$server" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') on $REDIS_HOST:$REDIS_PORT (log $LOG_FILE)"
  # Redis is only a cache / fast path in this project: the source of truth is PostgreSQL
  # (and Kafka for messages), and everything in Redis can be rebuilt or simply missed.
  # So no persistence at all -- no RDB snapshots, no AOF -- and nothing on disk but the
  # log and pid file. Explicit args, no config file, so Debian's /etc/redis is not used.
  "$server" \
    --bind "$REDIS_HOST" \
    --port "$REDIS_PORT" \
    --protected-mode yes \
    --dir "$REDIS_DIR" \
    --daemonize yes \
    --pidfile "$PID_FILE" \
    --logfile "$LOG_FILE" \
    --save '' \
    --appendonly no \
    || die "redis-server failed to start; see $LOG_FILE"
  date -u +'%Y-%m-%dT%H:%M:%SZ' >"$MARKER"
  if ! (wait_for 15 "Redis on $REDIS_HOST:$REDIS_PORT" redis_answers); then
    tail -n 20 "$LOG_FILE" >&2 || true
    rm -f "$MARKER"
    die "Redis did not come up; see $LOG_FILE"
  fi
  log "ready in $((SECONDS - t0))s: redis://$REDIS_HOST:$REDIS_PORT (pid $(cat "$PID_FILE"))"
}

cmd_stop() {
  if [ ! -f "$MARKER" ]; then
    if redis_answers; then
      log "not started by us; leaving the Redis on $REDIS_HOST:$REDIS_PORT running"
    else
      log "not running"
    fi
    return 0
  fi
  if ! our_pid_alive; then
    log "not running (removing stale marker)"
    rm -f "$MARKER" "$PID_FILE"
    return 0
  fi
  local pid
  pid="$(cat "$PID_FILE")"
  log "stopping Redis (pid $pid)"
  if ours_answering; then
    cli shutdown nosave >/dev/null 2>&1 || true
  else
    kill "$pid" 2>/dev/null || true
  fi
  await_exit "$pid" "Redis" 10
  rm -f "$MARKER" "$PID_FILE"
}

started_by_us() { [ -f "$MARKER" ] && ours_answering; }
cmd_status() { report_status redis "$REDIS_HOST:$REDIS_PORT" redis_answers started_by_us; }

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
