//! The service's own database: created if missing, migrated at start-up.

use std::time::Duration;

use service_config::redact;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

/// Start-up must not wait forever for a database that is not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("DATABASE_URL={url}: cannot reach Postgres: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("DATABASE_URL={url}: migrations failed: {reason}")]
    Migrate { url: String, reason: String },
}

/// Creates the database named in `url` if it does not exist, connects a pool of
/// `max_connections`, and applies the migrations of every source in `migrators` as one
/// ordered set: the shared crates' tables (outbox, inbox) and the service's own.
pub async fn connect_and_migrate(
    url: &str,
    max_connections: u32,
    migrators: &[&Migrator],
) -> Result<PgPool, DatabaseError> {
    let unreachable = |reason: String| DatabaseError::Unreachable {
        url: redact(url),
        reason,
    };
    let exists = tokio::time::timeout(CONNECT_TIMEOUT, Postgres::database_exists(url))
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
    if !exists {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(url = %redact(url), "created the service's database"),
            // Another instance may have created it a moment ago.
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => return Err(unreachable(format!("creating the database: {e}"))),
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect(url)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let all = migrators.iter().flat_map(|m| m.iter().cloned()).collect();
    Migrator::with_migrations(all)
        .run(&pool)
        .await
        .map_err(|e| DatabaseError::Migrate {
            url: redact(url),
            reason: e.to_string(),
        })?;
    Ok(pool)
}
