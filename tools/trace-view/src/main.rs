//! `trace-view`: one order's trace in the terminal, from the OTLP/JSON span file the
//! services write when `OTEL_TRACES_FILE` is set (`make up` sets it).
//!
//! ```text
//! trace-view [--file PATH] --order <order id>   every trace the order took part in
//! trace-view [--file PATH] --trace <trace id>   one trace
//! trace-view [--file PATH] [--last N]           the last N traces (default 20), one line each
//! ```
//!
//! The file defaults to `$OTEL_TRACES_FILE`, else `.state/traces/spans.jsonl`. Spans
//! reach the file in batches (every few seconds); a trace that just happened may need
//! a moment to appear.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

enum Show {
    Order(String),
    Trace(String),
    Recent(usize),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("trace-view: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let mut file = std::env::var("OTEL_TRACES_FILE")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map_or_else(|| PathBuf::from(".state/traces/spans.jsonl"), PathBuf::from);
    let mut show = Show::Recent(20);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--file" => file = PathBuf::from(value()?),
            "--order" => show = Show::Order(value()?),
            "--trace" => show = Show::Trace(value()?),
            "--last" => show = Show::Recent(value()?.parse().context("--last N")?),
            "-h" | "--help" => {
                println!("usage: trace-view [--file PATH] [--order ID | --trace ID | --last N]");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }

    let (spans, skipped) = trace_view::read_spans(&file).with_context(|| {
        format!(
            "reading {} (start the services with OTEL_TRACES_FILE set; `make up` does)",
            file.display()
        )
    })?;
    if skipped > 0 {
        eprintln!(
            "trace-view: skipped {skipped} unreadable line(s) of {}",
            file.display()
        );
    }
    match show {
        Show::Recent(n) => print!("{}", trace_view::render_recent(&spans, n)),
        Show::Trace(id) => print!("{}", trace_view::render_trace(&spans, &id)),
        Show::Order(order_id) => {
            let traces = trace_view::traces_of_order(&spans, &order_id);
            if traces.is_empty() {
                eprintln!(
                    "trace-view: no span of order {order_id} in {} (yet: spans are written in \
                     batches every few seconds)",
                    file.display()
                );
                return Ok(ExitCode::FAILURE);
            }
            for trace in traces {
                print!("{}", trace_view::render_trace(&spans, &trace));
                println!();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
