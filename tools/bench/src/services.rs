//! The services under test, run as the release binaries `make up` would run, each in a
//! process of its own on a loopback port of the bench: so that its RSS is its own, and
//! its CPU competes with Postgres, Kafka and the load generator as it would in
//! production on this machine.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::Settings;

/// What a service needs to run against the bench's databases and topics.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// `order-service` or `payment-service` (the binary's name).
    pub binary: &'static str,
    /// Names the log file: `<out>/logs/<label>.log`.
    pub label: String,
    pub port: u16,
    pub database_url: String,
    pub order_events_topic: String,
    pub payment_events_topic: String,
    pub consumer_group: String,
    /// Other variables, e.g. `RELAY_ENABLED=false`, `RELAY_LISTEN_NOTIFY=false`.
    pub extra_env: Vec<(&'static str, String)>,
}

#[derive(Debug)]
pub struct ServiceProcess {
    pub label: String,
    pub port: u16,
    child: Child,
    pid: u32,
}

impl ServiceProcess {
    /// Starts the binary and waits (at most 60 s) until `GET /readyz` answers 200.
    pub async fn start(settings: &Settings, spec: ServiceSpec) -> anyhow::Result<Self> {
        let binary = settings.bin_dir.join(spec.binary);
        if !binary.exists() {
            bail!(
                "{} not found: build it with `cargo build --release -p {}` (make bench does)",
                binary.display(),
                spec.binary
            );
        }
        let logs = settings.out_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let log_path: PathBuf = logs.join(format!("{}.log", spec.label));
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(&binary);
        command
            .env("DATABASE_URL", &spec.database_url)
            .env("REDIS_URL", &settings.redis_url)
            .env("KAFKA_BOOTSTRAP_SERVERS", &settings.kafka_bootstrap_servers)
            .env("HOST", "127.0.0.1")
            .env("PORT", spec.port.to_string())
            .env("ORDER_EVENTS_TOPIC", &spec.order_events_topic)
            .env("PAYMENT_EVENTS_TOPIC", &spec.payment_events_topic)
            .env("CONSUMER_GROUP", &spec.consumer_group)
            .env(
                "SEND_LOG_PATH",
                settings.out_dir.join(format!("{}.send.log", spec.label)),
            )
            .envs(spec.extra_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the service exited at once")?;
        let mut process = Self {
            label: spec.label,
            port: spec.port,
            child,
            pid,
        };
        process.wait_ready(&log_path).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, log_path: &std::path::Path) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} at start-up; see {}",
                    self.label,
                    log_path.display()
                );
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "{} not ready after 60 s; see {}",
            self.label,
            log_path.display()
        )
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resident set size now, in KiB (`VmRSS` of /proc/<pid>/status).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    /// SIGTERM (graceful shutdown: the relay flushes, the consumer commits), then
    /// SIGKILL after 20 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// The services of one measurement, on fresh databases and topics named after a tag.
#[derive(Debug)]
pub struct Chain {
    pub order: ServiceProcess,
    /// `None` when the measurement runs order-service alone.
    pub payment: Option<ServiceProcess>,
    pub orders_url: String,
    pub payments_url: String,
}

/// Starts order-service (and, with `with_payment`, payment-service first) on fresh
/// databases `<tag>_orders` / `<tag>_payments`, topics `<tag>_order_events` /
/// `<tag>_payment_events` and groups `<tag>_order` / `<tag>_payment`, each with
/// `extra_env`; then lets the consumers join their groups.
pub async fn start_chain(
    settings: &Settings,
    tag: &str,
    with_payment: bool,
    extra_env: &[(&'static str, String)],
) -> anyhow::Result<Chain> {
    let orders_url =
        crate::stack::fresh_database(settings, &settings.name(&format!("{tag}_orders"))).await?;
    let payments_url =
        crate::stack::fresh_database(settings, &settings.name(&format!("{tag}_payments"))).await?;
    let order_topic = settings.name(&format!("{tag}_order_events"));
    let payment_topic = settings.name(&format!("{tag}_payment_events"));
    let payment = if with_payment {
        Some(
            ServiceProcess::start(
                settings,
                ServiceSpec {
                    binary: "payment-service",
                    label: format!("{tag}-payment-service"),
                    port: settings.port_base + 1,
                    database_url: payments_url.clone(),
                    order_events_topic: order_topic.clone(),
                    payment_events_topic: payment_topic.clone(),
                    consumer_group: settings.name(&format!("{tag}_payment")),
                    extra_env: extra_env.to_vec(),
                },
            )
            .await?,
        )
    } else {
        None
    };
    let order = ServiceProcess::start(
        settings,
        ServiceSpec {
            binary: "order-service",
            label: format!("{tag}-order-service"),
            port: settings.port_base,
            database_url: orders_url.clone(),
            order_events_topic: order_topic,
            payment_events_topic: payment_topic,
            consumer_group: settings.name(&format!("{tag}_order")),
            extra_env: extra_env.to_vec(),
        },
    )
    .await?;
    // Let the consumers join their groups before the first order.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(Chain {
        order,
        payment,
        orders_url,
        payments_url,
    })
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// `VmRSS:    12345 kB` → 12345.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Samples the RSS of some processes every 200 ms and keeps the largest value of each:
/// the "under load" figure.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<Vec<AtomicU64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pids: Vec<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks: Arc<Vec<AtomicU64>> = Arc::new(pids.iter().map(|_| AtomicU64::new(0)).collect());
        let task = tokio::spawn({
            let (stop, peaks) = (Arc::clone(&stop), Arc::clone(&peaks));
            async move {
                while !stop.load(Ordering::Relaxed) {
                    for (pid, peak) in pids.iter().zip(peaks.iter()) {
                        if let Some(rss) = rss_kib(*pid) {
                            peak.fetch_max(rss, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Self { stop, peaks, task }
    }

    /// The peak RSS of each process, in KiB, in the order given to `start`.
    pub async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peaks
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_proc_status() {
        let status =
            "Name:\torder-service\nVmPeak:\t  99999 kB\nVmRSS:\t   23456 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(23456));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        // Our own process has a resident set.
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
