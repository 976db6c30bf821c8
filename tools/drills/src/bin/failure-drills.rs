//! `make drills`: runs the failure matrix against the real services and prints it;
//! saves it as Markdown in drill-results/failure-matrix.md. Exits non-zero if a safe
//! configuration lost or double-applied anything.
//!
//! `failure-drills [FILTER]` runs only the drills whose name contains FILTER.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use drills::matrix::{Row, catalogue, table};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let entries: Vec<_> = catalogue::all()
        .into_iter()
        .filter(|e| e.name.contains(&filter))
        .collect();
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut failed = 0;
    for (i, entry) in entries.iter().enumerate() {
        println!(
            "[{}/{}] {} — {} ...",
            i + 1,
            entries.len(),
            entry.name,
            entry.configuration
        );
        let t = Instant::now();
        match (entry.run)().await {
            Ok(row) => {
                println!(
                    "        {:.0}s: accepted {}, lost {}, double-applied {}, duplicates suppressed by the inbox {}",
                    t.elapsed().as_secs_f64(),
                    row.report.accepted,
                    row.lost(),
                    row.double_applied(),
                    row.report.duplicates_suppressed_by_inbox
                );
                rows.push(row);
            }
            Err(e) => {
                failed += 1;
                println!("        FAILED to run: {e}");
            }
        }
    }
    println!("\n{}", table::plain(&rows));
    let unsafe_safe_rows: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.is_safe_configuration()
                && (r.lost() > 0 || r.double_applied() > 0 || r.double_charged() > 0)
        })
        .collect();
    let doc = format!(
        "# Failure matrix\n\nRun of `make drills` ({} drills in {:.0} s).\n\n{}",
        rows.len(),
        started.elapsed().as_secs_f64(),
        table::markdown(&rows)
    );
    let path = root_dir().join("drill-results/failure-matrix.md");
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&path, doc) {
        Ok(()) => println!("saved {}", path.display()),
        Err(e) => println!("could not save {}: {e}", path.display()),
    }
    // A full run (no filter) writes its figures into the docs' failure-matrix pages.
    if filter.is_empty() && failed == 0 {
        // When and under what load: figures from a busy machine are lower bounds.
        let stamp = format!(
            "{} drills, {:.0} s, `make drills` on this machine, finished {} UTC \
             (load average {}).\n\n",
            rows.len(),
            started.elapsed().as_secs_f64(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M"),
            drills::load_average()
        );
        for (lang, generated) in [
            ("en", table::markdown(&rows)),
            ("zh", table::markdown_zh(&rows)),
        ] {
            let page = root_dir().join(format!("docs/{lang}/09-failure-matrix.md"));
            let updated = std::fs::read_to_string(&page).ok().and_then(|text| {
                table::replace_generated_block(&text, &format!("{stamp}{generated}"))
            });
            match updated.map(|text| std::fs::write(&page, text)) {
                Some(Ok(())) => println!("updated {}", page.display()),
                _ => println!("could not update {}", page.display()),
            }
        }
    }
    if failed > 0 || !unsafe_safe_rows.is_empty() {
        println!(
            "{failed} drill(s) failed to run; {} safe configuration(s) lost or doubled",
            unsafe_safe_rows.len()
        );
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

fn root_dir() -> std::path::PathBuf {
    let root = test_support::repo_root();
    root.canonicalize().unwrap_or(root)
}
