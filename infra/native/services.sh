#!/usr/bin/env bash
# Starts/stops the two services of the demo as background processes on the native stack.
#   services.sh build   the release build of both services (the build `make bench` measures)
#   services.sh start   build, then start order-service (:8080) and payment-service (:8081)
#   services.sh stop    stop what `start` started (SIGTERM: graceful shutdown, then SIGKILL)
#   services.sh status  one line per service
# Logs: .state/services/<service>.log; spans: .state/traces/spans.jsonl (`make trace`)
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMPONENT=services
DIR="$STATE_DIR/services"
mkdir -p "$DIR"

SERVICES=(order-service payment-service)
port_of() { case $1 in order-service) echo "${ORDER_SERVICE_PORT:-8080}" ;; payment-service) echo "${PAYMENT_SERVICE_PORT:-8081}" ;; esac; }

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
  local svc port
  for svc in "${SERVICES[@]}"; do
    port=$(port_of "$svc")
    if pid_alive "$DIR/$svc.pid"; then log "$svc already running (pid $(cat "$DIR/$svc.pid"))"; continue; fi
    tcp_open 127.0.0.1 "$port" && die "port $port is taken by another process; stop it or set the port variable"
    # Spans go to one OTLP/JSON file for `make trace` (both services append to it);
    # set OTEL_EXPORTER_OTLP_ENDPOINT as well to see them in Jaeger or a collector.
    DATABASE_URL="$(bash "$ROOT/infra/native/db-roles.sh" url "$svc")" \
    PORT="$port" OTEL_TRACES_FILE="${OTEL_TRACES_FILE:-$STATE_DIR/traces/spans.jsonl}" \
      nohup "$BIN_DIR/$svc" >>"$DIR/$svc.log" 2>&1 &
    echo $! >"$DIR/$svc.pid"
  done
  for svc in "${SERVICES[@]}"; do
    port=$(port_of "$svc")
    if ! wait_for 60 "$svc /healthz" curl -fsS "http://127.0.0.1:$port/healthz"; then
      tail -n 20 "$DIR/$svc.log" >&2; exit 1
    fi
    log "$svc up: http://127.0.0.1:$port  (log: .state/services/$svc.log)"
  done
  cat >&2 <<MSG

  Ready. Try:
    curl -s localhost:8080/readyz
    curl -s localhost:8081/readyz
    make trace ORDER=<id>     one order's trace, as a waterfall
    make metrics              both services' GET /metrics
  Stop everything with: make down
MSG
}

stop() {
  local svc pid i
  for svc in "${SERVICES[@]}"; do
    pid_alive "$DIR/$svc.pid" || { rm -f "$DIR/$svc.pid"; continue; }
    pid=$(cat "$DIR/$svc.pid")
    kill -TERM "$pid"
    for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$DIR/$svc.pid"
    log "$svc stopped"
  done
}

status() {
  local svc rc=0
  for svc in "${SERVICES[@]}"; do
    if pid_alive "$DIR/$svc.pid"; then
      printf '%-16s up    pid %s  http://127.0.0.1:%s\n' "$svc" "$(cat "$DIR/$svc.pid")" "$(port_of "$svc")"
    else
      printf '%-16s down\n' "$svc"; rc=1
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
