//! The drills. Each returns one row of the matrix; the configuration it ran with is in
//! the row. Crash point names are those of docs/en/01-overview.md.

mod broker;
mod crash;
mod lost_ack;
mod membership;
mod outages;
mod poison;

pub use broker::broker_down;
pub use crash::{Target, crash_point};
pub use lost_ack::lost_ack;
pub use membership::rebalance;
pub use outages::{payment_database_down, payment_provider_failing, redis_down};
pub use poison::poison_messages;

use std::time::Duration;

/// Orders per drill: enough to cross partitions and batches, few enough to settle in
/// seconds.
pub const ORDERS: usize = 30;

/// How long a client keeps retrying one order while a crashed service restarts.
pub const CLIENT_PATIENCE: Duration = Duration::from_secs(120);

/// Waiting for the system to settle stops once nothing has moved for this long.
pub const QUIET: Duration = Duration::from_secs(20);
