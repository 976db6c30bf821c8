#!/usr/bin/env bash
# `make clean` on the native stack: stop what `make up` started, and delete ALL of the
# demo's data, so a `make up` afterwards starts from nothing and `make reconcile` sees no
# earlier order. All or none: deleting Kafka's topics but keeping the databases would
# leave orders whose events are gone (reconcile: "unpublished", "LOST").
#
# Deleted: the databases `orders` and `payments` and the services' roles (Postgres keeps
# running if it was not ours; the tests' own databases are not touched), the demo's
# dedup keys in Redis (`inbox:seen:<service>:*`), the Kafka cluster's state (topics,
# offsets), the send log of direct mode, Prometheus' data, the trace file, the services'
# logs and the roles' passwords.
COMPONENT=clean
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
HERE="$ROOT/infra/native"

bash "$HERE/services.sh" stop
bash "$HERE/prometheus.sh" stop

# Postgres: started (again) if it is ours and down, so its databases can be dropped.
bash "$HERE/postgres.sh" start >/dev/null
PSQL="$(command -v psql 2>/dev/null || find /usr/lib/postgresql -path '*/bin/psql' 2>/dev/null | sort -V | tail -n 1)"
ADMIN_URL="postgres://postgres:postgres@127.0.0.1:${PGPORT:-5432}/postgres"
for db in orders payments; do
  "$PSQL" -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
done
for role in order_service payment_service; do
  "$PSQL" -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "DROP ROLE IF EXISTS \"$role\""
done
log "dropped the databases orders, payments and the roles order_service, payment_service"

# Redis: only the demo's keys (its consumer groups are the services' names).
if [ "$(redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping 2>/dev/null)" = PONG ]; then
  for group in payment-service order-service; do
    redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" --scan --pattern "inbox:seen:$group:*" \
      | xargs -r -n 500 redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" del >/dev/null
  done
  log "deleted the demo's dedup keys in Redis"
fi

bash "$HERE/stack.sh" stop
bash "$HERE/kafka.sh" wipe
rm -rf "$STATE_DIR/prometheus" "$STATE_DIR/order-service" "$STATE_DIR/traces" \
  "$STATE_DIR/services" "$STATE_DIR/db-roles.env"
log "deleted Kafka's state, the send log, Prometheus' data, the traces and the services' logs"
