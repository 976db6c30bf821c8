#!/usr/bin/env bash
# The control room's browser test (part of `make test`), or every button
# (`make control-room-drill`): starts a control room with a stack of its own on free
# ports (own databases, topics, services and cuttable proxies on the shared servers;
# --own-cluster adds a Kafka cluster of its own for the broker buttons), drives the page
# with Debian's chromium through playwright-core, then stops it (SIGTERM: the control
# room heals what it broke and stops what it started).
#
#   run.sh              test.mjs on --own-stack
#   run.sh every-button every-button.mjs on --own-cluster
# Screenshots: tools/control-room/browser-test/artifacts/<test>/
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

case "${1:-test}" in
  test) script=test.mjs; mode=--own-stack ;;
  every-button) script=every-button.mjs; mode=--own-cluster ;;
  *) echo "usage: $0 [test|every-button]" >&2; exit 2 ;;
esac
artifacts="$here/artifacts/${script%.mjs}"
rm -rf "$artifacts" && mkdir -p "$artifacts"

command -v chromium >/dev/null || { echo "chromium missing: bash infra/native/install-deps.sh" >&2; exit 1; }
command -v node >/dev/null || { echo "node missing: bash infra/native/install-deps.sh" >&2; exit 1; }
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
cargo build -q --locked -p control-room -p order-service -p payment-service

url_file="$artifacts/url"
CONTROL_ROOM_PORT=0 CONTROL_ROOM_URL_FILE="$url_file" CONTROL_ROOM_SETTLE_SECS="${CONTROL_ROOM_SETTLE_SECS:-30}" \
  "$target_dir/debug/control-room" "$mode" >"$artifacts/control-room.log" 2>&1 &
pid=$!
stop() {
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
}
trap stop EXIT

for _ in $(seq 1 600); do
  [ -s "$url_file" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "control room exited before serving:" >&2; tail -n 20 "$artifacts/control-room.log" >&2; exit 1; }
  sleep 0.5
done
[ -s "$url_file" ] || { echo "control room not serving within 300 s" >&2; exit 1; }
echo "control room (${mode}): $(cat "$url_file")  log: $artifacts/control-room.log"
CONTROL_ROOM_URL="$(cat "$url_file")" ARTIFACTS="$artifacts" node "$here/$script"
echo "screenshots: $artifacts/"
