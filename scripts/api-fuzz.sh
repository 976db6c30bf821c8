#!/usr/bin/env bash
# The API contract, checked by a fuzzer: schemathesis against a running order-service.
#
#   scripts/api-fuzz.sh            (part of `make test`; also `make api-fuzz`)
#
# Starts the order-service binary on a free loopback port, with a database and topics of
# its own on the shared stack, and runs schemathesis on its /openapi.json: every check
# (server errors, status codes, content types, headers and bodies against the document,
# invalid data refused, valid data accepted, unsupported methods, ...), the examples,
# coverage, fuzzing and stateful phases (the stateful phase follows the document's
# POST /orders -> GET /orders/{id} link). A fixed seed and a bounded number of examples
# keep it repeatable and under 3 minutes. Fails on any failure, and when the report shows
# no POST -> GET stateful scenario. Report: target/api-fuzz/ (JUnit XML, the log).
#
# Needs schemathesis in .tools/schemathesis (`.ci/run` installs it; by hand:
# python3 -m venv .tools/schemathesis && .tools/schemathesis/bin/pip install schemathesis==4.32.5).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
ST="${SCHEMATHESIS:-$ROOT/.tools/schemathesis/bin/schemathesis}"
SEED="${FUZZ_SEED:-20261203}"
EXAMPLES="${FUZZ_MAX_EXAMPLES:-150}"
OUT="$TARGET_DIR/api-fuzz"
ADMIN_URL="${ADMIN_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432}"

[ -x "$ST" ] || { echo "api-fuzz: schemathesis not found at $ST (see the header of $0)" >&2; exit 1; }
# The binary of this checkout (a no-op right after `cargo test`).
cargo build -q --locked -p order-service
mkdir -p "$OUT"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
RUN="fuzz$(date +%s)$$"
DB="orders_$RUN"
PSQL=(psql -X -q "$ADMIN_URL/postgres")
command -v psql >/dev/null || PSQL=("$(find /usr/lib/postgresql -path '*/bin/psql' | sort -V | tail -n 1)" -X -q "$ADMIN_URL/postgres")

pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  "${PSQL[@]}" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Its own database (the service creates and migrates it) and topics; relay and consumer
# run as usual, so what the fuzzer creates really flows.
DATABASE_URL="$ADMIN_URL/$DB" HOST=127.0.0.1 PORT="$PORT" \
  ORDER_EVENTS_TOPIC="order-events-$RUN" PAYMENT_EVENTS_TOPIC="payment-events-$RUN" \
  CONSUMER_GROUP="order-service-$RUN" RUST_LOG=warn \
  "$TARGET_DIR/debug/order-service" >"$OUT/order-service.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$OUT/order-service.log" >&2; exit 1; }
  sleep 0.5
done

started=$(date +%s)
set +e
SCHEMATHESIS_HOOKS=api_fuzz_hooks PYTHONPATH="$ROOT/scripts" \
  "$ST" run "http://127.0.0.1:$PORT/openapi.json" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --seed "$SEED" \
  --max-examples "$EXAMPLES" \
  --workers 1 \
  --request-timeout 15 \
  --report junit --report-dir "$OUT" \
  --no-color 2>&1 | tee "$OUT/schemathesis.log"
status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - started ))
echo "api-fuzz: schemathesis exit $status in ${elapsed}s (seed $SEED, max examples $EXAMPLES); log $OUT/schemathesis.log"
[ "$status" -eq 0 ] || exit "$status"
# The stateful phase must have gone from POST /orders to GET /orders/{id} at least once.
# schemathesis prints e.g. "API Links: 2 covered / 2 selected / 2 total": the links of
# POST /orders (the document's GetOrderById, and the Location header) that a scenario used.
links=$(sed -n 's/.*API Links: *\([0-9]*\) covered.*/\1/p' "$OUT/schemathesis.log" | tail -n 1)
scenarios=$(sed -n 's/.*Scenarios: *\([0-9]*\).*/\1/p' "$OUT/schemathesis.log" | tail -n 1)
echo "api-fuzz: stateful phase: ${scenarios:-0} scenarios, ${links:-0} POST -> GET link(s) covered"
if [ "${links:-0}" -lt 1 ] || [ "${scenarios:-0}" -lt 1 ]; then
  echo "api-fuzz: the report shows no stateful scenario (POST -> GET link not followed)" >&2
  exit 1
fi
