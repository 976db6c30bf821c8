//! `control-room`: the page on 127.0.0.1:8090 (docs/en/13-control-room.md).
//!
//! ```text
//! control-room                 against `make up`'s native stack (services.sh starts it)
//! control-room --own-stack     services, databases, topics and proxies of its own
//!                              (the browser test; free ports)
//! control-room --own-cluster   the same on a Kafka cluster of its own (every button,
//!                              broker faults included: `make control-room-drill`)
//! ```
//!
//! Variables: `CONTROL_ROOM_PORT` (8090; 0 = a free port), `CONTROL_ROOM_URL_FILE` (write
//! the page's URL there once it serves), `CONTROL_ROOM_SETTLE_SECS` (60).

use anyhow::Context;
use control_room::{App, Mode};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mode = match std::env::args().nth(1).as_deref() {
        None => Mode::Native,
        Some("--own-stack") => Mode::OwnStack,
        Some("--own-cluster") => Mode::OwnCluster,
        Some(other) => {
            anyhow::bail!("unknown argument {other:?}: control-room [--own-stack | --own-cluster]")
        }
    };
    let port: u16 = std::env::var("CONTROL_ROOM_PORT")
        .unwrap_or_else(|_| "8090".into())
        .parse()
        .context("CONTROL_ROOM_PORT: expected a port number")?;
    App::build(mode, port).await?.run_until_stopped().await
}
