#!/usr/bin/env bash
# The whole native infrastructure (no Docker): PostgreSQL, Redis, Kafka.
#
#   infra/native/stack.sh start|stop|status
#
# Each component is its own script in this directory with the same subcommands
# (postgres.sh, redis.sh, kafka.sh); this one just orders them. Components that were
# already running are reused and left running by `stop` (each script keeps its own
# started-by-us marker). A missing component script is skipped with a warning.
COMPONENT=stack
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HERE="$ROOT/infra/native"
COMPONENTS=(postgres redis kafka)   # start order; stop is the reverse

address() {
  case "$1" in
    postgres) echo "127.0.0.1:${PGPORT:-5432}" ;;
    redis)    echo "127.0.0.1:${REDIS_PORT:-6379}" ;;
    kafka)    bash "$HERE/kafka.sh" bootstrap ;;  # follows KAFKA_PORT_BASE / the cluster's own
  esac
}

script_of() { printf '%s/%s.sh\n' "$HERE" "$1"; }

cmd_start() {
  local t0 c started=()
  t0="$(date +%s.%N)"
  for c in "${COMPONENTS[@]}"; do
    if [ ! -f "$(script_of "$c")" ]; then
      log "warning: $(script_of "$c") is missing; skipping $c"
      continue
    fi
    local c0=$SECONDS
    log "starting $c"
    bash "$(script_of "$c")" start || die "$c failed to start (already started: ${started[*]:-none}); 'stack.sh stop' stops what was started"
    started+=("$c")
    log "$c ok ($((SECONDS - c0))s)"
  done
  local total
  total="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  echo
  echo "native stack up in ${total}s:"
  for c in "${COMPONENTS[@]}"; do
    if [ -f "$(script_of "$c")" ]; then
      printf '  %-9s %s\n' "$c" "$(address "$c")"
    else
      printf '  %-9s %s\n' "$c" "(skipped: $(script_of "$c") missing)"
    fi
  done
  echo "  postgres URL: postgres://postgres:postgres@$(address postgres)/<db>"
  echo "  redis URL:    redis://$(address redis)"
}

cmd_stop() {
  local i c rc=0
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c="${COMPONENTS[$i]}"
    if [ ! -f "$(script_of "$c")" ]; then
      log "warning: $(script_of "$c") is missing; skipping $c"
      continue
    fi
    # Keep going on failure so one broken component does not leave the others running.
    bash "$(script_of "$c")" stop || { log "warning: stopping $c failed"; rc=1; }
  done
  return "$rc"
}

cmd_status() {
  local c out state rc=0
  for c in "${COMPONENTS[@]}"; do
    if [ ! -f "$(script_of "$c")" ]; then
      # A missing component counts as down: the stack is not complete without it.
      printf '%-9s %-7s %-25s %s\n' "$c" MISSING "$(address "$c")" "($(script_of "$c") not found)"
      rc=1
      continue
    fi
    if out="$(bash "$(script_of "$c")" status 2>&1)"; then
      state=up
    else
      state=DOWN
      rc=1
    fi
    printf '%-9s %-7s %-25s %s\n' "$c" "$state" "$(address "$c")" "$(printf '%s\n' "$out" | tail -n 1)"
  done
  return "$rc"
}

case "${1:-}" in
  start)  cmd_start ;;
  stop)   cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
