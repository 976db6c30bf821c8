//! The soak's own Postgres and Redis: the same `infra/native` scripts as the shared
//! stack, pointed at another port and at `.state/soak/` (`STATE_DIR`), so "Postgres
//! restarted" and "Redis stopped" hit servers nobody else uses. The scripts only ever
//! stop a server they started themselves (their started-by-us marker), so even a wrong
//! port could not stop the shared :5432 or :6379.

use std::path::PathBuf;
use std::process::Command;

use crate::DrillError;

#[derive(Debug)]
pub struct OwnStack {
    state_dir: PathBuf,
    pub postgres_port: u16,
    pub redis_port: u16,
}

impl OwnStack {
    /// Both servers started on free ports (a cluster initialised on the first run).
    pub fn start() -> Result<Self, DrillError> {
        let state_dir = test_support::repo_root().join(".state/soak");
        std::fs::create_dir_all(&state_dir).map_err(DrillError::setup)?;
        let stack = Self {
            state_dir,
            postgres_port: test_support::unused_port(),
            redis_port: test_support::unused_port(),
        };
        stack.postgres("start")?;
        stack.redis("start")?;
        Ok(stack)
    }

    /// `postgres://postgres:postgres@127.0.0.1:<port>`, no database name.
    pub fn postgres_server(&self) -> String {
        format!(
            "postgres://postgres:postgres@127.0.0.1:{}",
            self.postgres_port
        )
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    /// `infra/native/postgres.sh <command>` for this instance (`stop` is a fast
    /// shutdown: sessions are cut, committed work is on disk).
    pub fn postgres(&self, command: &str) -> Result<(), DrillError> {
        self.script("postgres.sh", command, "PGPORT", self.postgres_port)
    }

    pub fn redis(&self, command: &str) -> Result<(), DrillError> {
        self.script("redis.sh", command, "REDIS_PORT", self.redis_port)
    }

    fn script(
        &self,
        name: &str,
        command: &str,
        port_var: &str,
        port: u16,
    ) -> Result<(), DrillError> {
        let script = test_support::repo_root().join("infra/native").join(name);
        let out = Command::new("bash")
            .arg(script)
            .arg(command)
            .env("STATE_DIR", &self.state_dir)
            .env(port_var, port.to_string())
            .output()
            .map_err(|e| DrillError::Setup(format!("{name} {command}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(DrillError::Setup(format!(
                "{name} {command}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

impl Drop for OwnStack {
    fn drop(&mut self) {
        let _ = self.redis("stop");
        let _ = self.postgres("stop");
    }
}
