//! The bench's own databases and topics on the shared stack: fresh ones per
//! measurement, named after the run, so nothing else's data is read or written.

use std::time::Duration;

use anyhow::Context;
// Database names are the bench's own (`bench<run>_<what>`), never input: safe to splice.
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

use crate::Settings;

/// Creates database `name` (dropping a leftover of the same name first) and returns
/// its URL. Services create and migrate it themselves when they start; the bench's own
/// measurements migrate it with the shared crates' migrators.
pub async fn fresh_database(settings: &Settings, name: &str) -> anyhow::Result<String> {
    let admin = admin_pool(settings).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&admin)
        .await
        .with_context(|| format!("creating database {name}"))?;
    admin.close().await;
    Ok(settings.database_url(name))
}

/// Drops every database of this run (`bench<run_id>_*`).
pub async fn drop_run_databases(settings: &Settings) -> anyhow::Result<u64> {
    let admin = admin_pool(settings).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{}%", settings.name("")))
            .fetch_all(&admin)
            .await?;
    for name in &names {
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&admin)
        .await?;
    }
    admin.close().await;
    Ok(names.len() as u64)
}

pub async fn pool(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {}", service_config::redact(url)))
}

async fn admin_pool(settings: &Settings) -> anyhow::Result<PgPool> {
    pool(&settings.database_url("postgres"), 1).await
}

/// A topic like the services' own: 6 partitions, 3 replicas (min ISR 2 on the cluster).
pub async fn create_topic(settings: &Settings, name: &str) -> anyhow::Result<String> {
    kafka_config::create_topic(&settings.kafka_bootstrap_servers, name, 6, 3)
        .await
        .with_context(|| format!("creating topic {name}"))?;
    Ok(name.to_owned())
}
