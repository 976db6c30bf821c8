#!/usr/bin/env bash
# make load SCENARIO=steady|ramp|spike|retry-storm — one k6 scenario against the running
# stack (make up), then the reconciliation: accepted == applied, 0 lost, 0 applied twice.
#
# Installs k6 when missing (load-tests/install-k6.sh).
# Writes load-tests/results/<scenario>-<time>/: summary.json (k6's), report.html (k6's
# web-dashboard export), reconcile-before.json, reconcile.json, k6.log.
# Exit status: 0 when the thresholds held and the reconciliation is clean, 1 otherwise.
#
# Variables: BASE_URL (default http://127.0.0.1:8080), the scenario's own (RATE, DURATION,
# ...: see the header of load-tests/<scenario>.js), SETTLE_SECONDS (default 180), and the
# reconcile tool's: ORDERS_DATABASE_URL, PAYMENTS_DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS,
# ORDER_EVENTS_TOPIC, PAYMENT_CONSUMER_GROUP.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf '\033[36m[load]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

SCENARIO=${1:-${SCENARIO:-steady}}
SCRIPT="load-tests/$SCENARIO.js"
[ -f "$SCRIPT" ] || die "no scenario '$SCENARIO' (steady, ramp, spike, retry-storm)"
export BASE_URL=${BASE_URL:-http://127.0.0.1:8080}

K6=$(bash load-tests/install-k6.sh)

curl -fsS --max-time 5 "$BASE_URL/readyz" >/dev/null \
  || die "order-service does not answer at $BASE_URL/readyz: start the stack with 'make up' (or set BASE_URL)"

log "building the reconcile tool"
cargo build --quiet --locked -p reconcile
export RECONCILE_BIN="$ROOT/target/debug/reconcile"

OUT="load-tests/results/$SCENARIO-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
python3 load-tests/reconcile_check.py before --out "$OUT/reconcile-before.json"

log "k6 run $SCRIPT → $OUT"
set +e
# The web dashboard only exports its HTML report here: port -1 opens no server, so the
# run never waits for a browser and never collides with another k6.
K6_WEB_DASHBOARD=true K6_WEB_DASHBOARD_PORT=-1 K6_WEB_DASHBOARD_EXPORT="$OUT/report.html" \
  SUMMARY_JSON="$OUT/summary.json" \
  "$K6" run --no-color "$SCRIPT" 2>&1 | tee "$OUT/k6.log"
k6_status=${PIPESTATUS[0]}
python3 load-tests/reconcile_check.py after --before "$OUT/reconcile-before.json" \
  --summary "$OUT/summary.json" --out "$OUT/reconcile.json" --settle "${SETTLE_SECONDS:-180}"
reconcile_status=$?
set -e

log "results: $OUT/summary.json, $OUT/report.html, $OUT/reconcile.json"
if [ "$k6_status" -ne 0 ]; then log "k6 thresholds: FAILED (k6 exit $k6_status)"; fi
if [ "$reconcile_status" -ne 0 ]; then log "reconciliation: FAILED"; fi
[ "$k6_status" -eq 0 ] && [ "$reconcile_status" -eq 0 ] || exit 1
log "$SCENARIO: thresholds held, reconciliation clean"
