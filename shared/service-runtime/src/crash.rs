//! Named crash points for failure drills.
//!
//! `CRASH_AT=R2` makes the process abort (like `kill -9`: no cleanup, no flush) the
//! first time it reaches crash point `R2`. The names match the failure matrix in
//! docs/en/01-overview.md. Unset, a crash point costs one comparison.

use std::sync::OnceLock;

/// Aborts the process if `CRASH_AT` names this point.
pub fn crash_point(name: &str) {
    static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();
    let armed = CRASH_AT.get_or_init(|| std::env::var("CRASH_AT").ok().filter(|v| !v.is_empty()));
    if armed.as_deref() == Some(name) {
        eprintln!("crash point {name} reached: aborting (CRASH_AT={name})");
        std::process::abort();
    }
}
