#!/usr/bin/env bash
# The URLs `make up` prints at the end, for the native or the compose stack:
#   scripts/urls.sh native|compose
# scripts/monitoring_check.py reads this file and checks that each URL's port is really
# published by infra/compose/compose.yaml (compose) or served by the native scripts (native).
set -euo pipefail
case "${1:-}" in
  native)
    cat <<'MSG'

  The native stack is up:
    control room      http://127.0.0.1:8090        (the pipeline live; faults, load, one order followed)
    order-service     http://127.0.0.1:8080        (POST /orders, GET /orders/{id}, /metrics)
    payment-service   http://127.0.0.1:8081        (GET /stats, /metrics)
    Prometheus        http://127.0.0.1:9090        (alerts: http://127.0.0.1:9090/alerts)
    Kafka metrics     http://127.0.0.1:9292/metrics  (nodes 2, 3: :9293, :9294)
    Kafka bootstrap   127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094
  Grafana, Jaeger and the Kafka web UI come with the compose stack (needs Docker).
  Stop everything with: make down
MSG
    ;;
  compose)
    cat <<'MSG'

  The compose stack is up:
    order-service     http://localhost:8080        (POST /orders, GET /orders/{id}, /metrics)
    payment-service   http://localhost:8081        (GET /stats, /metrics)
    Grafana           http://localhost:3000        (dashboard "Reliable messaging"; anonymous: view only, admin login for edits)
    Prometheus        http://localhost:9090        (alerts: http://localhost:9090/alerts)
    Jaeger            http://localhost:16686       (traces of both services)
    Kafka UI          http://localhost:8088        (topics, consumer groups, messages)
    Kafka bootstrap   localhost:9092,localhost:9093,localhost:9094
  Stop with: make down   (make clean also deletes the volumes)
MSG
    ;;
  *) echo "usage: $0 native|compose" >&2; exit 2 ;;
esac
