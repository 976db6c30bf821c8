//! Every drill × configuration of the matrix, in the order of the docs' table.

use std::future::Future;
use std::pin::Pin;

use crate::drills::{self, Target};
use crate::load::ClientRetry;
use crate::{DrillError, Row};

type RowFuture = Pin<Box<dyn Future<Output = Result<Row, DrillError>> + Send>>;

/// Every dedup layer of the consumer off: no Redis fast path, no inbox, a provider
/// called without an idempotency key, and the payments written to the teaching table
/// without `UNIQUE(order_id)`. One layer off is absorbed by the others; only all four
/// let a redelivered copy be paid, and charged, a second time.
const EVERY_LAYER_OFF: &str =
    "unsafe: every dedup layer off (Redis, inbox, provider key, business key: teaching table)";

/// A drill not yet run: its name for progress lines, and how to run it.
pub struct Entry {
    pub name: &'static str,
    pub configuration: &'static str,
    pub run: fn() -> RowFuture,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.configuration)
    }
}

const A1: &str = "A1: API crash after commit, before the answer";
const A2: &str = "API crash right after the order's commit";
const R1: &str = "R1: relay crash after claim, before send";
const R2: &str = "R2: relay crash after send, before mark-sent";
const R3: &str = "R3: streaming relay crash after an ack, before its mark";
const C1: &str = "C1: consumer crash inside its transaction";
const C2: &str = "C2: consumer crash after its effect, before the offset";

pub fn all() -> Vec<Entry> {
    vec![
        Entry {
            name: A1,
            configuration: "safe",
            run: || {
                Box::pin(drills::crash_point(
                    A1,
                    "safe",
                    Target::OrderService,
                    "A1",
                    &[],
                    &[],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: A1,
            configuration: "unsafe: client retries without Idempotency-Key",
            run: || {
                Box::pin(drills::crash_point(
                    A1,
                    "unsafe: client retries without Idempotency-Key",
                    Target::OrderService,
                    "A1",
                    &[],
                    &[],
                    ClientRetry::WithoutKey,
                ))
            },
        },
        Entry {
            name: A2,
            configuration: "safe (outbox: crash at A1)",
            run: || {
                Box::pin(drills::crash_point(
                    A2,
                    "safe (outbox: crash at A1)",
                    Target::OrderService,
                    "A1",
                    &[],
                    &[],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: A2,
            configuration: "unsafe: no outbox, send after commit (PUBLISH_MODE=direct, crash at A2)",
            run: || {
                Box::pin(drills::crash_point(
                    A2,
                    "unsafe: no outbox, send after commit (PUBLISH_MODE=direct, crash at A2)",
                    Target::OrderService,
                    "A2",
                    &[("PUBLISH_MODE", "direct")],
                    &[],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: R1,
            configuration: "safe",
            run: || {
                Box::pin(drills::crash_point(
                    R1,
                    "safe",
                    Target::OrderService,
                    "R1",
                    &[],
                    &[],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: R2,
            configuration: "safe",
            run: || {
                Box::pin(drills::crash_point(
                    R2,
                    "safe",
                    Target::OrderService,
                    "R2",
                    // R2 is the wave's point (the streaming relay's is R3).
                    &[("RELAY_MODE", "wave")],
                    &[],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: R3,
            configuration: "safe",
            run: || {
                Box::pin(drills::crash_point(
                    R3,
                    "safe",
                    Target::OrderService,
                    "R3",
                    &[("RELAY_MODE", "stream")],
                    &[],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: C1,
            configuration: "safe",
            run: || {
                Box::pin(drills::crash_point(
                    C1,
                    "safe",
                    Target::PaymentService,
                    "C1",
                    &[],
                    &[],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: C1,
            configuration: "unsafe: offset committed before the effect",
            run: || {
                Box::pin(drills::crash_point(
                    C1,
                    "unsafe: offset committed before the effect",
                    Target::PaymentService,
                    "C1",
                    &[],
                    &[("CONSUMER_OFFSET_COMMIT", "before-effect")],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: C2,
            configuration: "safe",
            run: || {
                Box::pin(drills::crash_point(
                    C2,
                    "safe",
                    Target::PaymentService,
                    "C2",
                    &[],
                    &[],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: C2,
            configuration: "unsafe: no dedup (inbox and Redis off)",
            run: || {
                Box::pin(drills::crash_point(
                    C2,
                    "unsafe: no dedup (inbox and Redis off)",
                    Target::PaymentService,
                    "C2",
                    &[],
                    &[("DEDUP_INBOX", "false"), ("DEDUP_FAST_PATH", "false")],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: C2,
            configuration: EVERY_LAYER_OFF,
            run: || {
                Box::pin(drills::crash_point(
                    C2,
                    EVERY_LAYER_OFF,
                    Target::PaymentService,
                    "C2",
                    &[],
                    &[
                        ("DEDUP_FAST_PATH", "false"),
                        ("DEDUP_INBOX", "false"),
                        ("DEDUP_PROVIDER_KEY", "false"),
                        ("DEDUP_BUSINESS_KEY", "false"),
                    ],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: R2,
            configuration: "unsafe: no dedup (inbox and Redis off)",
            run: || {
                Box::pin(drills::crash_point(
                    R2,
                    "unsafe: no dedup (inbox and Redis off)",
                    Target::OrderService,
                    "R2",
                    &[("RELAY_MODE", "wave")],
                    &[("DEDUP_INBOX", "false"), ("DEDUP_FAST_PATH", "false")],
                    ClientRetry::SameKey,
                ))
            },
        },
        Entry {
            name: "rebalance",
            configuration: "safe",
            run: || Box::pin(drills::rebalance()),
        },
        Entry {
            name: "Kafka cluster down",
            configuration: "safe (outbox)",
            run: || Box::pin(drills::broker_down("safe (outbox)", false)),
        },
        Entry {
            name: "Kafka cluster down",
            configuration: "safe: PUBLISH_MODE=direct (send log, re-push)",
            run: || {
                Box::pin(drills::broker_down(
                    "safe: PUBLISH_MODE=direct (send log, re-push)",
                    true,
                ))
            },
        },
        Entry {
            name: "Kafka cluster down longer than the old give-up",
            configuration: "safe (outbox)",
            run: || Box::pin(drills::broker_down_longer_than_give_up()),
        },
        Entry {
            name: "producer retry after a lost ack",
            configuration: "safe (idempotent producer)",
            run: || Box::pin(drills::lost_ack("safe (idempotent producer)", true)),
        },
        Entry {
            name: "producer retry after a lost ack",
            configuration: "unsafe: enable.idempotence=false",
            run: || Box::pin(drills::lost_ack("unsafe: enable.idempotence=false", false)),
        },
        Entry {
            name: "payment database down",
            configuration: "safe",
            run: || Box::pin(drills::payment_database_down()),
        },
        Entry {
            name: "Redis down",
            configuration: "safe",
            run: || Box::pin(drills::redis_down()),
        },
        Entry {
            name: "poison messages",
            configuration: "safe",
            run: || Box::pin(drills::poison_messages()),
        },
        Entry {
            name: "payment provider failing",
            configuration: "safe",
            run: || Box::pin(drills::payment_provider_failing()),
        },
    ]
}
