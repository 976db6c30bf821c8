//! The HTML page: the Markdown figures' two questions as pictures — latency against
//! rate (NOTIFY vs polling only, p50 and p99, log scale) and each ratio against its
//! target — then every figure, its tables as HTML tables (`to_html.rs`). Inline SVG
//! drawn here, no script and nothing fetched from the network.

use std::fmt::Write as _;

use super::to_html::escape;
use super::{API_TARGET, CHAIN_TARGET, CONSUMER_TARGET, E2E_P99_TARGET_MS, RELAY_TARGET, Results};
use crate::measure::e2e::{E2ePoint, Wake};

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 40.0;

/// One series of the latency plot: (rate, ms) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

pub fn latency_series(points: &[E2ePoint]) -> Vec<Series> {
    let mut out = Vec::new();
    for (wake, color) in [(Wake::Notify, "#1f77b4"), (Wake::PollOnly, "#d62728")] {
        for (which, dashed) in [("p50", false), ("p99", true)] {
            let pts: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.wake == wake && p.e2e_ms.count > 0)
                .map(|p| {
                    let ms = if dashed { p.e2e_ms.p99 } else { p.e2e_ms.p50 };
                    (f64::from(p.target_rate), ms)
                })
                .collect();
            if !pts.is_empty() {
                out.push(Series {
                    label: format!("{} {which}", wake.label()),
                    color,
                    dashed,
                    points: pts,
                });
            }
        }
    }
    out
}

/// Latency (log y) against rate (linear x), with the 25 ms target as a grey line.
pub fn latency_svg(series: &[Series]) -> String {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let y_min = all
        .iter()
        .map(|p| p.1)
        .fold(E2E_P99_TARGET_MS, f64::min)
        .max(0.1);
    let y_max = all.iter().map(|p| p.1).fold(E2E_P99_TARGET_MS, f64::max);
    let (lo, hi) = (
        y_min.log10().floor(),
        y_max.log10().ceil().max(y_min.log10().floor() + 1.0),
    );
    let x = |v: f64| LEFT + v / x_max * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v.max(1e-3).log10()) / (hi - lo) * (H - TOP - BOTTOM);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    let mut decade = lo;
    while decade <= hi {
        let v = 10f64.powf(decade);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v} ms</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y(v) + 4.0,
            y = y(v)
        );
        decade += 1.0;
    }
    let mut rates: Vec<f64> = all.iter().map(|p| p.0).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    for r in &rates {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{r}</text>"#,
            x(*r),
            H - BOTTOM + 14.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">orders/s</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 6.0
    );
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{}" y1="{t:.1}" y2="{t:.1}" stroke="#888" stroke-dasharray="2,3"/><text x="{}" y="{:.1}" fill="#666">target p99 {E2E_P99_TARGET_MS} ms</text>"##,
        W - RIGHT,
        W - RIGHT + 4.0,
        y(E2E_P99_TARGET_MS) + 4.0,
        t = y(E2E_P99_TARGET_MS)
    );
    for (i, se) in series.iter().enumerate() {
        let path: Vec<String> = se
            .points
            .iter()
            .map(|(rx, ry)| format!("{:.1},{:.1}", x(*rx), y(*ry)))
            .collect();
        let dash = if se.dashed {
            r#" stroke-dasharray="6,3""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            path.join(" "),
            se.color
        );
        for (rx, ry) in &se.points {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{} at {rx}/s: {ry:.1} ms</title></circle>"#,
                x(*rx),
                y(*ry),
                se.color,
                escape(&se.label)
            );
        }
        let ly = TOP + 14.0 + i as f64 * 16.0;
        let _ = write!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            W - RIGHT + 8.0,
            W - RIGHT + 30.0,
            se.color,
            W - RIGHT + 34.0,
            ly + 4.0,
            escape(&se.label)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars: each ratio in % with its target as a tick.
pub fn ratio_svg(bars: &[(String, f64, f64)]) -> String {
    let row = 28.0;
    let height = TOP + bars.len() as f64 * row + 30.0;
    let left = 260.0;
    let width = W - left - 40.0;
    let max = bars.iter().map(|b| b.1.max(b.2)).fold(1.0, f64::max);
    let x = |v: f64| left + v / max * width;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="11">"#
    );
    for (i, (label, ratio, target)) in bars.iter().enumerate() {
        let top = TOP + i as f64 * row;
        let color = if ratio >= target {
            "#2ca02c"
        } else {
            "#ff7f0e"
        };
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect x="{left}" y="{top:.1}" width="{:.1}" height="18" fill="{color}"/><text x="{:.1}" y="{:.1}">{:.0} %</text><line x1="{t:.1}" x2="{t:.1}" y1="{:.1}" y2="{:.1}" stroke="#000" stroke-width="2"><title>target {:.0} %</title></line>"##,
            left - 6.0,
            top + 13.0,
            escape(label),
            (x(*ratio) - left).max(0.0),
            x(*ratio) + 4.0,
            top + 13.0,
            ratio * 100.0,
            top - 2.0,
            top + 20.0,
            target * 100.0,
            t = x(*target)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{left}" y="{:.1}">bar: project / ceiling; black tick: target</text></svg>"#,
        height - 8.0
    );
    s
}

pub fn render(r: &Results) -> String {
    let mut bars = Vec::new();
    if let Some(api) = &r.api {
        bars.push((
            "order API / pgbench two inserts".to_owned(),
            api.ratio,
            API_TARGET,
        ));
    }
    if let Some(relay) = &r.relay {
        bars.push((
            "relay (streaming) / raw producer".to_owned(),
            relay.ratio,
            RELAY_TARGET,
        ));
    }
    if let Some(c) = r.consumer.as_ref().and_then(|c| c.deployed()) {
        bars.push((
            format!(
                "consumer ({}) / pgbench ({} clients)",
                c.concurrency, c.pgbench.clients
            ),
            c.ratio,
            CONSUMER_TARGET,
        ));
    }
    if let Some(sat) = &r.saturation {
        bars.push((
            "chain saturation / API saturation".to_owned(),
            sat.ratio,
            CHAIN_TARGET,
        ));
    }
    let mut body = String::new();
    if !bars.is_empty() {
        body.push_str("<h2>Throughput against the ceilings</h2>");
        body.push_str(&ratio_svg(&bars));
    }
    if let Some(e2e) = &r.e2e {
        body.push_str(
            "<h2>End-to-end latency (order accepted → payment applied) against rate</h2>",
        );
        body.push_str(&latency_svg(&latency_series(&e2e.points)));
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>bench {id}</title>\
         <style>body{{font-family:sans-serif;max-width:80em;margin:2em auto}} \
         table{{border-collapse:collapse;margin:0.5em 0 1.5em}} \
         th,td{{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top;font-size:0.9em}} \
         th{{background:#f3f3f3}} tbody tr:nth-child(even){{background:#fafafa}}</style></head>\
         <body><h1>Benchmark run {id}</h1>{body}<h2>Figures</h2>\n{figures}</body></html>\n",
        id = escape(&r.run_id),
        figures = super::to_html::render(&super::render_markdown(r)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Percentiles;

    fn point(wake: Wake, rate: u32, p50: f64, p99: f64) -> E2ePoint {
        let ms = Percentiles {
            count: 10,
            p50,
            p90: p99,
            p99,
            max: p99,
        };
        E2ePoint {
            wake,
            target_rate: rate,
            achieved_rate: f64::from(rate),
            created: 10,
            failed: 0,
            dropped: 0,
            unsettled: 0,
            http_ms: ms,
            e2e_ms: ms,
            relay_stage_ms: ms,
            consume_stage_ms: ms,
        }
    }

    #[test]
    fn one_line_per_mode_and_percentile_with_a_point_per_rate() {
        let points = vec![
            point(Wake::Notify, 100, 5.0, 9.0),
            point(Wake::Notify, 1000, 8.0, 30.0),
            point(Wake::PollOnly, 100, 260.0, 510.0),
            point(Wake::PollOnly, 1000, 250.0, 505.0),
        ];
        let series = latency_series(&points);
        assert_eq!(series.len(), 4);
        assert_eq!(series[1].label, "notify p99");
        assert_eq!(series[1].points, vec![(100.0, 9.0), (1000.0, 30.0)]);
        let svg = latency_svg(&series);
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<circle").count(), 8);
        // A slower point is drawn higher (smaller y) on the log scale.
        let y_of = |label: &str| -> f64 {
            let at = svg.find(&format!("<title>{label}")).expect("point");
            let cy = svg[..at].rfind("cy=\"").expect("cy") + 4;
            svg[cy..]
                .split('"')
                .next()
                .expect("value")
                .parse()
                .expect("number")
        };
        assert!(y_of("poll-only p99 at 100/s") < y_of("notify p50 at 100/s"));
    }

    #[test]
    fn ratio_bars_are_coloured_by_their_target() {
        let svg = ratio_svg(&[("a".into(), 0.8, 0.7), ("b <x>".into(), 0.3, 0.6)]);
        assert_eq!(svg.matches("#2ca02c").count(), 1);
        assert_eq!(svg.matches("#ff7f0e").count(), 1);
        assert!(svg.contains("b &lt;x&gt;"));
    }
}
