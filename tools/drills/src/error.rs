//! The one error type of the drills library; the binaries add context with `anyhow` at
//! their edge.

/// Why a drill could not give its counts. `Setup`: what it needs did not start (a
/// cluster, a service, a database); `Unexpected`: it ran, but a step did not go as
/// planned (a leader never moved, a read failed). A drill that ran and lost messages is
/// not an error: that is its outcome, counted in its report.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("setting up the drill: {0}")]
    Setup(String),
    #[error("the drill did not go as planned: {0}")]
    Unexpected(String),
    /// A bounded wait ran out (no new leader, replicas not in sync, nodes not fenced):
    /// the message says what did not happen within how long. Some drills treat it as a
    /// premise not met and try again, with this message as the reason.
    #[error("{0}")]
    Timeout(String),
}

impl DrillError {
    /// For `map_err`: a step of the drill failed with `why`.
    pub fn unexpected(why: impl std::fmt::Display) -> Self {
        Self::Unexpected(why.to_string())
    }

    /// For `map_err`: something the drill needs did not start.
    pub fn setup(why: impl std::fmt::Display) -> Self {
        Self::Setup(why.to_string())
    }
}
