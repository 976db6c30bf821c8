#!/usr/bin/env bash
# The monitoring and compose checks run by `make test` (no Docker needed):
#  - promtool: the alert rules load, and their unit tests (infra/prometheus/alerts.test.yml)
#    pass: each alert fires when it must and stays quiet when it must;
#  - every metric name the rules and the Grafana dashboards use is in the committed list
#    infra/prometheus/exported-metrics.txt;
#  - [kafka] names against a real scrape: of the running default cluster's exporters if they
#    answer (KAFKA_METRICS_URLS overrides); the drills' test always does it on a cluster of
#    its own (tools/drills/tests/store_drills.rs);
#  - [services] names against the services' live /metrics when SERVICE_METRICS_URLS is set
#    (space-separated URLs); otherwise the list is the metric contract itself;
#  - the compose stack (infra/compose/): schema, pinned images, Grafana JSON, the URLs
#    `make up` prints, broker settings equal to the native cluster's.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v promtool >/dev/null || { echo "check-monitoring: promtool missing (Debian package prometheus; make deps)" >&2; exit 1; }

promtool check rules infra/prometheus/alerts.yml
(cd infra/prometheus && promtool test rules alerts.test.yml)
python3 scripts/monitoring_check.py names

urls=()
if [ -n "${KAFKA_METRICS_URLS:-}" ]; then
  read -ra urls <<<"$KAFKA_METRICS_URLS"
else
  for p in 9292 9293 9294; do
    curl -fsS -o /dev/null -m 5 "http://127.0.0.1:$p/metrics" 2>/dev/null && urls+=("http://127.0.0.1:$p/metrics")
  done
fi
if [ ${#urls[@]} -gt 0 ]; then
  python3 scripts/monitoring_check.py scrape kafka "${urls[@]}"
else
  echo "check-monitoring: no exporter answers on 127.0.0.1:9292-9294 (a cluster started before the exporter was added); the drills' test checks the [kafka] names on its own cluster"
fi

if [ -n "${SERVICE_METRICS_URLS:-}" ]; then
  read -ra urls <<<"$SERVICE_METRICS_URLS"
  python3 scripts/monitoring_check.py scrape services "${urls[@]}"
fi

python3 scripts/monitoring_check.py compose
