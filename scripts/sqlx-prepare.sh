#!/usr/bin/env bash
# Regenerates .sqlx/ (the offline data of sqlx's compile-time-checked queries).
# It builds a scratch database holding every table the workspace's queries touch —
# the shared crates' migrations and both services' — then runs `cargo sqlx prepare`.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=${TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432}
DB=sqlx_prepare
export DATABASE_URL="$SERVER/$DB"
command -v cargo-sqlx >/dev/null || cargo install sqlx-cli --version 0.9.0 --no-default-features --features postgres,rustls
psql -q "$SERVER/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
# Apply every migration in version order (file names start with the version).
mapfile -t files < <(printf '%s\n' shared/*/migrations/*.sql services/*/migrations/*.sql | awk -F/ '{print $NF"\t"$0}' | sort | cut -f2)
for f in "${files[@]}"; do psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -f "$f"; done
SQLX_OFFLINE=false cargo sqlx prepare --workspace -- --all-targets
echo "sqlx-prepare: .sqlx/ regenerated from ${#files[@]} migrations"
