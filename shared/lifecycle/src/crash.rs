//! Named crash points for the failure drills.
//!
//! `CRASH_AT=R2` makes the process abort (like `kill -9`: no cleanup, no flush) the
//! first time it reaches crash point `R2`. The names are the rows of the failure matrix
//! in docs/en/01-overview.md, and this enum is that list: a test holds the two to each
//! other, and a `CRASH_AT` naming no point is refused at start with one line (it used
//! to run a drill silently without its crash). Unset, a crash point costs one
//! comparison.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use service_config::ConfigError;

/// Every point where a crash could lose or double a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// Order API: after the commit, before the response.
    A1,
    /// Order API in direct mode: after the commit, before the send-log line.
    A2,
    /// Relay: after the claim, before the send.
    R1,
    /// Relay, wave mode: after the broker's acks of a pass, before mark-sent.
    R2,
    /// Relay, stream mode: acked, not yet marked.
    R3,
    /// Consumer: inside its transaction.
    C1,
    /// Consumer: after the commit, before the offset commit.
    C2,
    /// Parallel consumer: effect committed, offset not yet contiguous.
    C3,
}

impl CrashPoint {
    pub const ALL: [Self; 8] = [
        Self::A1,
        Self::A2,
        Self::R1,
        Self::R2,
        Self::R3,
        Self::C1,
        Self::C2,
        Self::C3,
    ];

    /// The name `CRASH_AT` and the failure matrix use.
    pub fn name(self) -> &'static str {
        match self {
            Self::A1 => "A1",
            Self::A2 => "A2",
            Self::R1 => "R1",
            Self::R2 => "R2",
            Self::R3 => "R3",
            Self::C1 => "C1",
            Self::C2 => "C2",
            Self::C3 => "C3",
        }
    }

    /// Aborts the process if `CRASH_AT` names this point.
    pub fn reached(self) {
        static CRASH_AT: OnceLock<Option<CrashPoint>> = OnceLock::new();
        let armed = CRASH_AT.get_or_init(|| {
            std::env::var("CRASH_AT")
                .ok()
                .and_then(|name| name.parse().ok())
        });
        if *armed == Some(self) {
            eprintln!("crash point {self} reached: aborting (CRASH_AT={self})");
            std::process::abort();
        }
    }
}

impl fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CrashPoint {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|point| point.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
                format!("no crash point {name:?}: one of {}", names.join(", "))
            })
    }
}

/// `CRASH_AT`, checked at start: unset or empty is no crash point, a known name arms
/// it, anything else is a start-up error naming the variable.
pub fn crash_at_from_lookup(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<CrashPoint>, ConfigError> {
    match lookup("CRASH_AT").filter(|name| !name.is_empty()) {
        None => Ok(None),
        Some(name) => name
            .parse()
            .map(Some)
            .map_err(|reason: String| ConfigError::new("CRASH_AT", &name, reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The failure matrix's table in docs/en/01-overview.md names exactly these points.
    #[test]
    fn the_enum_is_the_failure_matrix() {
        let overview = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/en/01-overview.md"
        ))
        .expect("docs/en/01-overview.md");
        let documented: Vec<&str> = overview
            .lines()
            .filter_map(|line| line.strip_prefix("| "))
            .filter_map(|row| row.split(" |").next())
            .filter(|name| {
                name.len() == 2
                    && name.starts_with(['A', 'R', 'C'])
                    && name[1..].chars().all(|c| c.is_ascii_digit())
            })
            .collect();
        let named: Vec<&str> = CrashPoint::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(documented, named);
    }

    #[test]
    fn an_unknown_crash_at_is_one_line_naming_the_variable() {
        let lookup =
            |value: &'static str| move |name: &str| (name == "CRASH_AT").then(|| value.to_owned());
        assert_eq!(crash_at_from_lookup(&lookup("")).ok(), Some(None));
        assert_eq!(
            crash_at_from_lookup(&lookup("R2")).ok(),
            Some(Some(CrashPoint::R2))
        );
        let error = crash_at_from_lookup(&lookup("R9"))
            .expect_err("R9 is no crash point")
            .to_string();
        assert!(
            error.starts_with("CRASH_AT") && error.contains("R9") && !error.contains('\n'),
            "{error}"
        );
    }
}
