//! The results of a run: JSON (everything), Markdown (the tables a reader compares)
//! and HTML (the plots), under the git-ignored results folder.

mod markdown;
mod plot;
mod to_html;

use std::path::Path;

use serde::Serialize;

use crate::Settings;
use crate::measure::api::ApiResult;
use crate::measure::claim::ClaimRow;
use crate::measure::consumer::ConsumerResult;
use crate::measure::e2e::{E2eResult, Wake};
use crate::measure::relay::RelayResult;
use crate::measure::saturation::SaturationResult;

pub use markdown::render as render_markdown;
pub use plot::render as render_html;

/// The targets (issue 19): ratios to the ceilings measured in the same run, and the
/// latency at half of the chain's measured saturation.
pub const API_TARGET: f64 = 0.70;
/// The streaming relay (issue 19: a wave waits for its slowest ack; a stream need not).
pub const RELAY_TARGET: f64 = 0.40;
/// The consumer at its default concurrency against pgbench at the same concurrency.
pub const CONSUMER_TARGET: f64 = 0.60;
/// The chain's saturation rate against the API's own (relay on, as deployed).
pub const CHAIN_TARGET: f64 = 0.70;
/// e2e p99 at half of the chain's saturation rate.
pub const E2E_P99_TARGET_MS: f64 = 250.0;
/// The rate reported beside the latency target.
pub const E2E_REFERENCE_RATE: u32 = 500;

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
    pub saturation: Option<SaturationResult>,
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
            saturation: None,
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
    if let Some(point) = r.consumer.as_ref().and_then(ConsumerResult::deployed) {
        out.push(ratio(
            &format!(
                "consumer (concurrency {}) vs pgbench (dedup + payment, {} clients)",
                point.concurrency, point.pgbench.clients
            ),
            CONSUMER_TARGET,
            point.ratio,
        ));
    }
    if let Some(sat) = &r.saturation {
        let mut t = ratio(
            "chain saturation vs the API's own (relay on)",
            CHAIN_TARGET,
            sat.ratio,
        );
        t.reached = format!(
            "{} ({} vs {} orders/s)",
            t.reached, sat.chain.saturation, sat.api.saturation
        );
        out.push(t);
    }
    if let Some(e2e) = &r.e2e
        && let Some(half) = e2e.half_saturation_rate
        && let Some(point) = e2e.point(Wake::Notify, half)
    {
        let beside = e2e
            .point(Wake::Notify, E2E_REFERENCE_RATE)
            .map(|p| {
                format!(
                    "; at {E2E_REFERENCE_RATE}/s: p99 {:.1} ms, achieved {:.0}/s",
                    p.e2e_ms.p99, p.achieved_rate
                )
            })
            .unwrap_or_default();
        out.push(Target {
            name: format!("e2e p99 at half the chain's saturation ({half} orders/s), NOTIFY"),
            target: format!("< {E2E_P99_TARGET_MS:.0} ms"),
            reached: format!(
                "{:.1} ms (achieved {:.0}/s){beside}",
                point.e2e_ms.p99, point.achieved_rate
            ),
            met: point.e2e_ms.p99 < E2E_P99_TARGET_MS
                && point.achieved_rate >= 0.95 * f64::from(half)
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
