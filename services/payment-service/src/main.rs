//! payment-service: `main` only reads the configuration, starts telemetry and runs the app.

use std::process::ExitCode;

use payment_service::{App, Config};

#[tokio::main]
async fn main() -> ExitCode {
    lifecycle::exit_on_error("payment-service", run().await)
}

async fn run() -> Result<(), service_runtime::StartError> {
    let config = Config::from_env()?;
    let _telemetry =
        telemetry::init("payment-service").map_err(|e| service_runtime::StartError::Client {
            variable: "OTEL_*",
            reason: e.to_string(),
        })?;
    let app = App::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "payment-service listening");
    app.run_until_stopped().await?;
    Ok(())
}
