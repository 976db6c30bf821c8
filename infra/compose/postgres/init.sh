#!/usr/bin/env bash
# One database per service, each owned by the service's own role (least privilege): the
# role can log in, create and migrate its own tables, and nothing else — no SUPERUSER,
# no CREATEDB, no CREATEROLE, no other database. The admin role (POSTGRES_USER) stays for
# this script, the reconcile tool and pgbench. Run once, by the postgres image, on an
# empty volume. The same roles on the native stack: infra/native/db-roles.sh.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v order_pw="${ORDER_DB_PASSWORD:-order-service-demo}" \
  -v payment_pw="${PAYMENT_DB_PASSWORD:-payment-service-demo}" <<'SQL'
CREATE ROLE order_service LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'order_pw';
CREATE ROLE payment_service LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'payment_pw';
CREATE DATABASE orders OWNER order_service;
CREATE DATABASE payments OWNER payment_service;
-- No one else connects to a service's database (the admin role still can: superuser).
REVOKE ALL ON DATABASE orders FROM PUBLIC;
REVOKE ALL ON DATABASE payments FROM PUBLIC;
SQL
