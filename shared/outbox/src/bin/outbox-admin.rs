//! `outbox-admin` (`make outbox-retry`): the operator's view of the rows the relay gave
//! up on (`FAILED`, only after a permanent send failure: `relay/mark.rs`), and the way
//! back once the cause is fixed.
//!
//! ```text
//! outbox-admin list                 every FAILED row, oldest first, with its last error
//! outbox-admin retry <event-id>     put one row back (PENDING, attempts reset)
//! outbox-admin retry-key <key>      put back every FAILED row of one message key
//! outbox-admin retry-all            put back every FAILED row
//! ```
//!
//! Reads `DATABASE_URL` (default: the orders database of the native stack). Exit status
//! 0 on success, 1 when `retry <id>` found no such FAILED row, 2 on a usage or database
//! error.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use outbox::{FailedRows, failed_rows, put_back_failed};
use service_config::DEFAULT_POSTGRES_SERVER;
use sqlx::PgPool;

const USAGE: &str = "usage: outbox-admin list | retry <event-id> | retry-key <key> | retry-all";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("{DEFAULT_POSTGRES_SERVER}/orders"));
    let pool = match PgPool::connect(&database_url).await {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("outbox-admin: DATABASE_URL: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&pool, &args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("outbox-admin: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(pool: &PgPool, args: &[String]) -> Result<ExitCode, String> {
    let which = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] | ["list"] => return list(pool).await,
        ["retry", id] => FailedRows::One(
            id.parse()
                .map_err(|e| format!("{id:?} is not an event id: {e}"))?,
        ),
        ["retry-key", key] => FailedRows::Key(key),
        ["retry-all"] => FailedRows::All,
        _ => return Err(USAGE.to_owned()),
    };
    let back = put_back_failed(pool, which)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{back} row(s) put back to PENDING; the relay sends them now, and the later events of their keys after them"
    );
    Ok(if back == 0 && matches!(which, FailedRows::One(_)) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn list(pool: &PgPool) -> Result<ExitCode, String> {
    let rows = failed_rows(pool).await.map_err(|e| e.to_string())?;
    println!("{} FAILED row(s)", rows.len());
    for row in rows {
        println!(
            "{}  {}  key={}  topic={}  attempts={}  last error: {}",
            row.id,
            row.event_type,
            row.message_key,
            row.topic,
            row.attempts,
            row.last_error.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}
