#!/usr/bin/env bash
# The URLs `make up` prints at the end, for the native or the compose stack:
#   scripts/urls.sh native|compose
# scripts/monitoring_check.py reads this file and checks that each URL's port is really
# published by infra/compose/compose.yaml (compose) or served by the native scripts (native).
set -euo pipefail
case "${1:-}" in
  native)
    # The ports follow the same variables the native scripts listen on (defaults: 8080,
    # 8081, 9090; Kafka: whatever its cluster was created with, asked from kafka.sh).
    kafka="$(dirname "$0")/../infra/native/kafka.sh"
    control_room="http://127.0.0.1:${CONTROL_ROOM_PORT:-8090}"
    order="http://127.0.0.1:${ORDER_SERVICE_PORT:-8080}"
    payment="http://127.0.0.1:${PAYMENT_SERVICE_PORT:-8081}"
    prometheus="http://127.0.0.1:${PROMETHEUS_PORT:-9090}"
    bootstrap="$(bash "$kafka" bootstrap)"
    metrics="$(bash "$kafka" metrics-targets)"
    cat <<MSG

  The native stack is up:
    control room      $control_room        (the pipeline live; faults, load, one order followed)
    order-service     $order        (POST /orders, GET /orders/{id}, /metrics)
    payment-service   $payment        (GET /stats, /metrics)
    Prometheus        $prometheus        (alerts: $prometheus/alerts)
    Kafka metrics     http://${metrics%%,*}/metrics  (all nodes: $metrics)
    Kafka bootstrap   $bootstrap
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
