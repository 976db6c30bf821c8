//! The services as real processes: started from their binaries with an environment,
//! stopped with SIGTERM, or left to abort at a crash point (`CRASH_AT`, like `kill -9`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::DrillError;

/// A binary of the workspace (`order-service`, `payment-service`), looked up next to the
/// running executable: `target/debug/` for `cargo run` and `target/debug/deps/..` for
/// `cargo test`. `make drills` builds them first.
pub fn binary(name: &str) -> Result<PathBuf, DrillError> {
    let exe = std::env::current_exe().map_err(DrillError::setup)?;
    let mut dir = exe.parent().map(PathBuf::from);
    while let Some(d) = dir {
        let candidate = d.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent().map(PathBuf::from);
    }
    Err(DrillError::Setup(format!(
        "binary `{name}` not found near {}; build it: cargo build -p {name}",
        exe.display()
    )))
}

/// The process's stderr (its logs, a crash point's last words) goes to
/// `drill-results/logs/<service>-<port>.log`, out of the matrix's way. A process
/// restarted on its port appends below its predecessor's last words, after a line that
/// says when it started.
fn log_file(name: &str, port: u16) -> Stdio {
    use std::io::Write;
    let dir = test_support::repo_root().join("drill-results/logs");
    let _ = std::fs::create_dir_all(&dir);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}-{port}.log")))
        .map_or_else(
            |_| Stdio::null(),
            |mut file| {
                let _ = writeln!(file, "=== {name} started at {} ===", chrono::Utc::now());
                Stdio::from(file)
            },
        )
}

/// The services log errors only, unless the caller's environment sets `RUST_LOG` (the
/// soak keeps warnings: why a row waited).
fn log_level(env: &HashMap<String, String>) -> &str {
    env.get("RUST_LOG").map_or("error", String::as_str)
}

/// One running service process.
#[derive(Debug)]
pub struct ServiceProcess {
    pub name: &'static str,
    pub port: u16,
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    child: Child,
}

impl ServiceProcess {
    /// Starts `name` with `env` on a free port; `crash_at` arms a crash point.
    pub fn spawn(
        name: &'static str,
        env: &HashMap<String, String>,
        crash_at: Option<&str>,
    ) -> Result<Self, DrillError> {
        Self::spawn_on(test_support::unused_port(), name, env, crash_at)
    }

    /// The same on a given port: a restarted service answers where its clients retry.
    pub fn spawn_on(
        port: u16,
        name: &'static str,
        env: &HashMap<String, String>,
        crash_at: Option<&str>,
    ) -> Result<Self, DrillError> {
        let mut command = Command::new(binary(name)?);
        command
            .envs(env)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("RUST_LOG", log_level(env))
            .env_remove("CRASH_AT")
            .stdout(Stdio::null())
            .stderr(log_file(name, port));
        if let Some(point) = crash_at {
            command.env("CRASH_AT", point);
        }
        let child = command
            .spawn()
            .map_err(|e| DrillError::Setup(format!("start {name}: {e}")))?;
        Ok(Self {
            name,
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            child,
        })
    }

    /// A process without an HTTP port (the scale-out drill's `sequence-consumer`):
    /// `slot` only names its log file.
    pub fn spawn_worker(
        name: &'static str,
        slot: u16,
        env: &HashMap<String, String>,
    ) -> Result<Self, DrillError> {
        let child = Command::new(binary(name)?)
            .envs(env)
            .env("RUST_LOG", log_level(env))
            .stdout(Stdio::null())
            .stderr(log_file(name, slot))
            .spawn()
            .map_err(|e| DrillError::Setup(format!("start {name}: {e}")))?;
        Ok(Self {
            name,
            port: slot,
            base_url: String::new(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB (`VmRSS` of /proc/<pid>/status), 0 once the process is
    /// gone: the soak compares it at the start and at the end.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// `kill -9`: no shutdown hook runs, nothing is flushed or committed.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until `GET /healthz` answers (the process is serving), bounded.
    pub async fn wait_serving(&mut self) -> Result<(), DrillError> {
        let url = format!("{}/healthz", self.base_url);
        for _ in 0..1200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(DrillError::Setup(format!(
                    "{} exited before serving: {status}",
                    self.name
                )));
            }
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DrillError::Setup(format!(
            "{} not serving within 120s",
            self.name
        )))
    }

    /// Waits (bounded) for the process to abort at its crash point.
    pub async fn wait_crashed(mut self, within: Duration) -> Result<(), DrillError> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() {
                    Err(DrillError::Unexpected(format!(
                        "{} exited cleanly instead of crashing",
                        self.name
                    )))
                } else {
                    Ok(())
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(DrillError::Unexpected(format!(
            "{} did not reach its crash point within {within:?}",
            self.name
        )))
    }

    /// SIGTERM and a bounded wait for the graceful stop; SIGKILL after 60 s.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..600 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    /// A drill that fails half-way must not leave services running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
