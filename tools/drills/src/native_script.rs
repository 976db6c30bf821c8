//! The native stack's own scripts (`infra/native/*.sh`), run by the drills to start,
//! stop and break servers of their own: the same scripts `make up` uses, so a drill's
//! Kafka, Prometheus, Postgres and Redis are configured exactly like the demo's.

use std::process::Command;

use crate::error::DrillError;

/// `bash infra/native/<name> <args...>`, for the caller to add its environment to.
pub fn command(name: &str, args: &[&str]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(test_support::repo_root().join("infra/native").join(name))
        .args(args);
    command
}

/// Runs `command` to its end, its stderr (the script's progress lines) on ours; a script
/// that cannot start or exits non-zero is a setup error named `what`.
pub fn run(mut command: Command, what: &str) -> Result<(), DrillError> {
    let status = command
        .status()
        .map_err(|e| DrillError::Setup(format!("running {what}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(DrillError::Setup(format!("{what} failed: {status}")))
    }
}
