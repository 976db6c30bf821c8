//! `reconcile`: prints the reconciliation report; exit status 1 when something was lost
//! or applied twice, 2 when it could not look.
//!
//! Variables: `ORDERS_DATABASE_URL`, `PAYMENTS_DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`,
//! `ORDER_EVENTS_TOPIC` (default `order-events`), `PAYMENT_CONSUMER_GROUP` (default
//! `payment-service`), `REPORT_JSON=1` for JSON.

// A command-line tool: its stdout is the report.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use reconcile::{Sources, reconcile, render};
use service_config::{DEFAULT_KAFKA_BOOTSTRAP_SERVERS, DEFAULT_POSTGRES_SERVER};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("reconcile: error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, String> {
    let var = |name: &str, default: String| std::env::var(name).unwrap_or(default);
    let connect = |url: String| async move {
        sqlx::PgPool::connect(&url)
            .await
            .map_err(|e| format!("{}: {e}", service_config::redact(&url)))
    };
    let sources = Sources {
        orders_db: connect(var(
            "ORDERS_DATABASE_URL",
            format!("{DEFAULT_POSTGRES_SERVER}/orders"),
        ))
        .await?,
        payments_db: connect(var(
            "PAYMENTS_DATABASE_URL",
            format!("{DEFAULT_POSTGRES_SERVER}/payments"),
        ))
        .await?,
        kafka_bootstrap_servers: var(
            "KAFKA_BOOTSTRAP_SERVERS",
            DEFAULT_KAFKA_BOOTSTRAP_SERVERS.to_owned(),
        ),
        order_events_topic: var("ORDER_EVENTS_TOPIC", "order-events".to_owned()),
        payment_consumer_group: var("PAYMENT_CONSUMER_GROUP", "payment-service".to_owned()),
    };
    let report = reconcile(&sources).await.map_err(|e| e.to_string())?;
    if std::env::var("REPORT_JSON").is_ok_and(|v| v == "1") {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", render(&report));
    }
    Ok(report.is_clean())
}
