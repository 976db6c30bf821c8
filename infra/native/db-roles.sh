#!/usr/bin/env bash
# Least privilege on the native stack: each service logs in as a Postgres role of its own,
# owner of its own database and of nothing else — no SUPERUSER, no CREATEDB, no
# CREATEROLE. Owning its database lets it run its migrations (allowed: the owner role);
# it cannot read the other service's data, create databases or roles. The admin role
# (`postgres`) stays for the tests (they create a database each), `make reconcile` (it
# reads both databases) and pgbench.
#
#   infra/native/db-roles.sh ensure   create/repair the roles and databases (idempotent)
#   infra/native/db-roles.sh url SVC  print SVC's DATABASE_URL (order-service|payment-service)
#
# Passwords are made once, per checkout, in $STATE_DIR/db-roles.env (mode 600).
# A database created earlier by the admin role (before this script) is handed over: its
# owner, and the owner of every table, view and sequence in it, becomes the role.
# Environment: PGPORT (5432), ORDER_DB (orders), PAYMENT_DB (payments).
COMPONENT="db-roles"
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PGPORT="${PGPORT:-5432}"
ADMIN_URL="postgres://postgres:postgres@127.0.0.1:$PGPORT"
SECRETS="$STATE_DIR/db-roles.env"
ORDER_DB="${ORDER_DB:-orders}"
PAYMENT_DB="${PAYMENT_DB:-payments}"

psql_bin() {
  command -v psql 2>/dev/null || find /usr/lib/postgresql -path '*/bin/psql' 2>/dev/null | sort -V | tail -n 1
}
PSQL="$(psql_bin)"
[ -n "$PSQL" ] || die "psql not found (make infra-up installs PostgreSQL)"
admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -t -A "$ADMIN_URL/$1" "${@:2}"; }

secrets() {
  if [ ! -f "$SECRETS" ]; then
    (umask 077
     printf 'ORDER_SERVICE_DB_PASSWORD=%s\nPAYMENT_SERVICE_DB_PASSWORD=%s\n' \
       "$(tr -dc 'a-f0-9' </dev/urandom | head -c 32)" "$(tr -dc 'a-f0-9' </dev/urandom | head -c 32)" >"$SECRETS")
  fi
  # shellcheck disable=SC1090
  source "$SECRETS"
}

# ensure_one ROLE PASSWORD DB
ensure_one() {
  local role=$1 password=$2 db=$3
  admin postgres -v role="$role" -v pw="$password" <<'SQL'
SELECT format('CREATE ROLE %I', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'role', :'pw')
\gexec
SQL
  if [ "$(admin postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    admin postgres -c "CREATE DATABASE \"$db\" OWNER \"$role\""
  else
    admin postgres -c "ALTER DATABASE \"$db\" OWNER TO \"$role\""
    # Tables made before the role existed (by the admin role) pass to it.
    admin "$db" -v role="$role" <<'SQL'
SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, :'role')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p')
  AND pg_get_userbyid(c.relowner) <> :'role'
\gexec
SELECT format('ALTER SEQUENCE %I.%I OWNER TO %I', n.nspname, c.relname, :'role')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'S' AND pg_get_userbyid(c.relowner) <> :'role'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
\gexec
SQL
  fi
  admin postgres -c "REVOKE ALL ON DATABASE \"$db\" FROM PUBLIC"
}

cmd_ensure() {
  secrets
  ensure_one order_service "$ORDER_SERVICE_DB_PASSWORD" "$ORDER_DB"
  ensure_one payment_service "$PAYMENT_SERVICE_DB_PASSWORD" "$PAYMENT_DB"
  log "roles order_service ($ORDER_DB) and payment_service ($PAYMENT_DB): owners of their database only"
}

cmd_url() {
  secrets
  case "${1:-}" in
    order-service) echo "postgres://order_service:$ORDER_SERVICE_DB_PASSWORD@127.0.0.1:$PGPORT/$ORDER_DB" ;;
    payment-service) echo "postgres://payment_service:$PAYMENT_SERVICE_DB_PASSWORD@127.0.0.1:$PGPORT/$PAYMENT_DB" ;;
    *) die "url: order-service or payment-service" ;;
  esac
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  url) cmd_url "${2:-}" ;;
  *) echo "usage: $0 {ensure|url SERVICE}" >&2; exit 2 ;;
esac
