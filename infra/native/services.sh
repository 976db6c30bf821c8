#!/usr/bin/env bash
# Starts/stops the two services of the demo as background processes on the native stack.
#   services.sh build   the release build of both services (the build `make bench` measures)
#   services.sh start   build, then start order-service (:8080) and payment-service (:8081)
#   services.sh stop    stop what `start` started (SIGTERM: graceful shutdown, then SIGKILL)
#   services.sh status  one line per service instance
# Scale-out: ORDER_SERVICES=N and PAYMENT_SERVICES=M (default 1 each) start N
# order-services (each with its relay) and M payment-services on the same databases, in
# the same consumer groups: instance i > 1 is `<service>-<i>` on port 8080 + 2(i-1)
# (order-service) or 8081 + 2(i-1) (payment-service). Claims never overlap, each key's
# events stay in order, and the partitions are shared among the members
# (docs/en/04-consume.md, "Scale-out"; `make drills-scale-out` kills one of each).
# Logs: .state/services/<service>.log; spans: .state/traces/spans.jsonl (`make trace`)
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMPONENT=services
DIR="$STATE_DIR/services"
mkdir -p "$DIR"

# "<name> <binary> <port>" per instance to start.
instances() {
  local i
  for ((i = 1; i <= ${ORDER_SERVICES:-1}; i++)); do
    echo "$(instance_name order-service "$i") order-service $((${ORDER_SERVICE_PORT:-8080} + 2 * (i - 1)))"
  done
  for ((i = 1; i <= ${PAYMENT_SERVICES:-1}; i++)); do
    echo "$(instance_name payment-service "$i") payment-service $((${PAYMENT_SERVICE_PORT:-8081} + 2 * (i - 1)))"
  done
}
instance_name() { if [ "$2" -eq 1 ]; then echo "$1"; else echo "$1-$2"; fi; }

# The release build (profile in the root Cargo.toml), the very binaries `make bench`
# measures: a k6 run against `make up` sees the service the benchmark measured
# (docs/en/08-load-and-benchmark.md). The debug build is several times slower under load.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN_DIR="$TARGET_DIR/release"

build() {
  log "building the services (cargo build --release; a cold build takes minutes, see docs/en/08-load-and-benchmark.md)"
  (cd "$ROOT" && cargo build --release --locked --quiet --bin order-service --bin payment-service)
}

start() {
  build
  # Each service logs in as its own role, owner of its own database only (db-roles.sh).
  bash "$ROOT/infra/native/db-roles.sh" ensure
  local name bin port
  while read -r name bin port; do
    if pid_alive "$DIR/$name.pid"; then log "$name already running (pid $(cat "$DIR/$name.pid"))"; continue; fi
    tcp_open 127.0.0.1 "$port" && die "port $port is taken by another process; stop it or set the port variable"
    # Spans go to one OTLP/JSON file for `make trace` (every instance appends to it);
    # set OTEL_EXPORTER_OTLP_ENDPOINT as well to see them in Jaeger or a collector.
    url="$(bash "$ROOT/infra/native/db-roles.sh" url "$bin")"
    # The control room's "cut the payment database": payment-service through its proxy.
    if [ "$bin" = payment-service ] && [ -n "${PAYMENT_DATABASE_PROXY:-}" ]; then
      url="${url/@127.0.0.1:[0-9]*\//@$PAYMENT_DATABASE_PROXY/}"
    fi
    DATABASE_URL="$url" \
    PORT="$port" OTEL_TRACES_FILE="${OTEL_TRACES_FILE:-$STATE_DIR/traces/spans.jsonl}" \
      nohup "$BIN_DIR/$bin" >>"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
    echo "$port" >"$DIR/$name.port"
  done < <(instances)
  while read -r name bin port; do
    if ! wait_for 60 "$name /healthz" curl -fsS "http://127.0.0.1:$port/healthz"; then
      tail -n 20 "$DIR/$name.log" >&2; exit 1
    fi
    log "$name up: http://127.0.0.1:$port  (log: .state/services/$name.log)"
  done < <(instances)
  start_control_room
  cat >&2 <<MSG

  Ready. Open the control room: http://127.0.0.1:${CONTROL_ROOM_PORT:-8090}
  Or try:
    curl -s localhost:${ORDER_SERVICE_PORT:-8080}/readyz
    curl -s localhost:${PAYMENT_SERVICE_PORT:-8081}/readyz
    make trace ORDER=<id>     one order's trace, as a waterfall
    make metrics              both services' GET /metrics
  Stop everything with: make down
MSG
}

# The control room (tools/control-room): the page on :8090 that shows the chain live and
# may break this stack, which it is told with CONTROL_ROOM_STACK=native-make-up. Its own
# build, apart from the services' (features must not unify differently). CONTROL_ROOM=0: none.
start_control_room() {
  [ "${CONTROL_ROOM:-1}" = 1 ] || return 0
  local port="${CONTROL_ROOM_PORT:-8090}"
  pid_alive "$DIR/control-room.pid" && return 0
  tcp_open 127.0.0.1 "$port" && die "port $port is taken by another process; stop it or set CONTROL_ROOM_PORT"
  (cd "$ROOT" && cargo build --release --locked --quiet -p control-room)
  CONTROL_ROOM_STACK=native-make-up CONTROL_ROOM_PORT="$port" \
    nohup "$BIN_DIR/control-room" >>"$DIR/control-room.log" 2>&1 &
  echo $! >"$DIR/control-room.pid"
  echo "$port" >"$DIR/control-room.port"
  wait_for 60 "control room" curl -fsS "http://127.0.0.1:$port/api/state" >/dev/null \
    || { tail -n 20 "$DIR/control-room.log" >&2; exit 1; }
  log "control room up: http://127.0.0.1:$port  (log: .state/services/control-room.log)"
}

# Every instance that has a pid file, however many `start` started.
started() { for f in "$DIR"/*.pid; do [ -e "$f" ] && basename "$f" .pid; done; }

stop() {
  local name pid
  for name in $(started); do
    pid_alive "$DIR/$name.pid" || { rm -f "$DIR/$name.pid" "$DIR/$name.port"; continue; }
    pid=$(cat "$DIR/$name.pid")
    # SIGTERM: the service stops taking work, flushes its producer, commits what is done.
    stop_pid "$pid" "$name" 10
    rm -f "$DIR/$name.pid" "$DIR/$name.port"
    log "$name stopped"
  done
}

status() {
  local name rc=0
  [ -n "$(started)" ] || { echo "no service started"; return 1; }
  for name in $(started); do
    if pid_alive "$DIR/$name.pid"; then
      printf '%-18s up    pid %s  http://127.0.0.1:%s\n' "$name" "$(cat "$DIR/$name.pid")" "$(cat "$DIR/$name.port" 2>/dev/null)"
    else
      printf '%-18s down\n' "$name"; rc=1
    fi
  done
  return $rc
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 {build|start|stop|status}" >&2; exit 2 ;;
esac
