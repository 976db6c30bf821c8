//! The results of a run: JSON (everything), Markdown (the tables a reader compares)
//! and HTML (the plots), under the git-ignored results folder.

mod markdown;
mod plot;

use std::path::Path;

use serde::Serialize;

use crate::Settings;
use crate::measure::api::ApiResult;
use crate::measure::claim::ClaimRow;
use crate::measure::consumer::ConsumerResult;
use crate::measure::e2e::{E2eResult, Wake};
use crate::measure::relay::RelayResult;

pub use markdown::render as render_markdown;
pub use plot::render as render_html;

/// The targets: ratios to the ceilings, and the latency at 1,000 orders/s.
pub const API_TARGET: f64 = 0.70;
/// The streaming relay (issue 19: a wave waits for its slowest ack; a stream need not).
pub const RELAY_TARGET: f64 = 0.40;
pub const CONSUMER_TARGET: f64 = 0.60;
pub const E2E_P99_TARGET_MS: f64 = 25.0;
pub const E2E_TARGET_RATE: u32 = 1_000;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started and ended: above the number
    /// of cores, other work was competing for the CPU.
    pub load_at_start: String,
    pub load_at_end: String,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub reached: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub machine: Machine,
    pub seconds: u64,
    pub concurrency: usize,
    pub api: Option<ApiResult>,
    pub relay: Option<RelayResult>,
    pub consumer: Option<ConsumerResult>,
    pub e2e: Option<E2eResult>,
    pub claim: Option<Vec<ClaimRow>>,
    pub targets: Vec<Target>,
    /// Measurements that failed, with the reason.
    pub errors: Vec<String>,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Results {
    pub fn start(settings: &Settings) -> Self {
        Self {
            run_id: settings.run_id.clone(),
            started_at: chrono::Local::now().to_rfc3339(),
            finished_at: String::new(),
            machine: Machine {
                cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
                load_at_start: read_trimmed("/proc/loadavg"),
                load_at_end: String::new(),
                kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            },
            seconds: settings.seconds,
            concurrency: settings.concurrency,
            api: None,
            relay: None,
            consumer: None,
            e2e: None,
            claim: None,
            targets: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn finish(&mut self) {
        self.finished_at = chrono::Local::now().to_rfc3339();
        self.machine.load_at_end = read_trimmed("/proc/loadavg");
        self.targets = targets(self);
    }
}

/// Each target the run could judge, reached or not.
pub fn targets(r: &Results) -> Vec<Target> {
    let ratio = |name: &str, target: f64, reached: f64| Target {
        name: name.to_owned(),
        target: format!("≥ {:.0} %", target * 100.0),
        reached: format!("{:.0} %", reached * 100.0),
        met: reached >= target,
    };
    let mut out = Vec::new();
    if let Some(api) = &r.api {
        out.push(ratio(
            "order API vs pgbench (two inserts)",
            API_TARGET,
            api.ratio,
        ));
    }
    if let Some(relay) = &r.relay {
        out.push(ratio(
            "relay (streaming) vs raw producer",
            RELAY_TARGET,
            relay.ratio,
        ));
    }
    if let Some(consumer) = &r.consumer {
        out.push(ratio(
            "consumer vs pgbench (dedup + payment)",
            CONSUMER_TARGET,
            consumer.ratio,
        ));
    }
    if let Some(point) = r
        .e2e
        .as_ref()
        .and_then(|e| e.point(Wake::Notify, E2E_TARGET_RATE))
    {
        out.push(Target {
            name: format!("e2e p99 at {E2E_TARGET_RATE} orders/s, NOTIFY"),
            target: format!("< {E2E_P99_TARGET_MS:.0} ms"),
            reached: format!(
                "{:.1} ms (achieved {:.0}/s)",
                point.e2e_ms.p99, point.achieved_rate
            ),
            met: point.e2e_ms.p99 < E2E_P99_TARGET_MS
                && point.achieved_rate >= 0.95 * f64::from(E2E_TARGET_RATE)
                && point.unsettled == 0,
        });
    }
    out
}

/// The rendered Markdown and the files written.
#[derive(Debug, Clone)]
pub struct Written {
    pub markdown: String,
    pub paths: Vec<String>,
}

/// Writes `bench-<run>.{json,md,html}` and copies them to `latest.*`.
pub fn write(results: &Results, out_dir: &Path) -> anyhow::Result<Written> {
    std::fs::create_dir_all(out_dir)?;
    let markdown = render_markdown(results);
    let files = [
        ("json", serde_json::to_string_pretty(results)?),
        ("md", markdown.clone()),
        ("html", render_html(results)),
    ];
    let mut paths = Vec::new();
    for (ext, content) in files {
        let path = out_dir.join(format!("bench-{}.{ext}", results.run_id));
        std::fs::write(&path, &content)?;
        std::fs::write(out_dir.join(format!("latest.{ext}")), &content)?;
        paths.push(path.display().to_string());
    }
    Ok(Written { markdown, paths })
}
