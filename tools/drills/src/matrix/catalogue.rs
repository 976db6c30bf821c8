//! Every drill × configuration of the matrix, in the order of the docs' table.

use std::future::Future;
use std::pin::Pin;

use lifecycle::CrashPoint;

use crate::load::ClientRetry;
use crate::matrix::{self, Target};
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
    pub run: Box<dyn Fn() -> RowFuture + Send + Sync>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.configuration)
    }
}

/// Variables set on a service for one run: the teaching toggles and modes.
type Vars = &'static [(&'static str, &'static str)];

/// A crash-point drill: `target` aborts at `point` (`CRASH_AT`), with `order_vars` and
/// `payment_vars` set on the two services.
fn crash(
    name: &'static str,
    configuration: &'static str,
    (target, point): (Target, CrashPoint),
    order_vars: Vars,
    payment_vars: Vars,
    retry: ClientRetry,
) -> Entry {
    Entry {
        name,
        configuration,
        run: Box::new(move || {
            Box::pin(matrix::crash_point(
                name,
                configuration,
                target,
                point,
                order_vars,
                payment_vars,
                retry,
            ))
        }),
    }
}

/// Any other drill: it names its own configuration in the row it returns.
fn drill(name: &'static str, configuration: &'static str, run: fn() -> RowFuture) -> Entry {
    Entry {
        name,
        configuration,
        run: Box::new(run),
    }
}

const A1: &str = "A1: API crash after commit, before the answer";
const A2: &str = "API crash right after the order's commit";
const R1: &str = "R1: relay crash after claim, before send";
const R2: &str = "R2: relay crash after send, before mark-sent";
const R3: &str = "R3: streaming relay crash after an ack, before its mark";
const C1: &str = "C1: consumer crash inside its transaction";
const C2: &str = "C2: consumer crash after its effect, before the offset";

const ORDER: Target = Target::OrderService;
const PAYMENT: Target = Target::PaymentService;
/// R2 is the wave's point (the streaming relay's is R3).
const WAVE: Vars = &[("RELAY_MODE", "wave")];
const NO_DEDUP: Vars = &[("DEDUP_INBOX", "false"), ("DEDUP_FAST_PATH", "false")];
const SAME_KEY: ClientRetry = ClientRetry::SameKey;

pub fn all() -> Vec<Entry> {
    vec![
        crash(A1, "safe", (ORDER, CrashPoint::A1), &[], &[], SAME_KEY),
        crash(
            A1,
            "unsafe: client retries without Idempotency-Key",
            (ORDER, CrashPoint::A1),
            &[],
            &[],
            ClientRetry::WithoutKey,
        ),
        crash(
            A2,
            "safe (outbox: crash at A1)",
            (ORDER, CrashPoint::A1),
            &[],
            &[],
            SAME_KEY,
        ),
        crash(
            A2,
            "unsafe: no outbox, send after commit (PUBLISH_MODE=direct, crash at A2)",
            (ORDER, CrashPoint::A2),
            &[("PUBLISH_MODE", "direct")],
            &[],
            SAME_KEY,
        ),
        crash(R1, "safe", (ORDER, CrashPoint::R1), &[], &[], SAME_KEY),
        crash(R2, "safe", (ORDER, CrashPoint::R2), WAVE, &[], SAME_KEY),
        crash(
            R3,
            "safe",
            (ORDER, CrashPoint::R3),
            &[("RELAY_MODE", "stream")],
            &[],
            SAME_KEY,
        ),
        crash(C1, "safe", (PAYMENT, CrashPoint::C1), &[], &[], SAME_KEY),
        crash(
            C1,
            "unsafe: offset committed before the effect",
            (PAYMENT, CrashPoint::C1),
            &[],
            &[("CONSUMER_OFFSET_COMMIT", "before-effect")],
            SAME_KEY,
        ),
        crash(C2, "safe", (PAYMENT, CrashPoint::C2), &[], &[], SAME_KEY),
        crash(
            C2,
            "unsafe: no dedup (inbox and Redis off)",
            (PAYMENT, CrashPoint::C2),
            &[],
            NO_DEDUP,
            SAME_KEY,
        ),
        crash(
            C2,
            EVERY_LAYER_OFF,
            (PAYMENT, CrashPoint::C2),
            &[],
            &[
                ("DEDUP_FAST_PATH", "false"),
                ("DEDUP_INBOX", "false"),
                ("DEDUP_PROVIDER_KEY", "false"),
                ("DEDUP_BUSINESS_KEY", "false"),
            ],
            SAME_KEY,
        ),
        crash(
            R2,
            "unsafe: no dedup (inbox and Redis off)",
            (ORDER, CrashPoint::R2),
            WAVE,
            NO_DEDUP,
            SAME_KEY,
        ),
        drill("rebalance", "safe", || Box::pin(matrix::rebalance())),
        drill("Kafka cluster down", "safe (outbox)", || {
            Box::pin(matrix::broker_down("safe (outbox)", false))
        }),
        drill(
            "Kafka cluster down",
            "safe: PUBLISH_MODE=direct (send log, re-push)",
            || {
                Box::pin(matrix::broker_down(
                    "safe: PUBLISH_MODE=direct (send log, re-push)",
                    true,
                ))
            },
        ),
        drill(
            "Kafka cluster down longer than the old give-up",
            "safe (outbox)",
            || Box::pin(matrix::broker_down_longer_than_give_up()),
        ),
        drill(
            "producer retry after a lost ack",
            "safe (idempotent producer)",
            || Box::pin(matrix::lost_ack("safe (idempotent producer)", true)),
        ),
        drill(
            "producer retry after a lost ack",
            "unsafe: enable.idempotence=false",
            || Box::pin(matrix::lost_ack("unsafe: enable.idempotence=false", false)),
        ),
        drill("payment database down", "safe", || {
            Box::pin(matrix::payment_database_down())
        }),
        drill("Redis down", "safe", || Box::pin(matrix::redis_down())),
        drill("poison messages", "safe", || {
            Box::pin(matrix::poison_messages())
        }),
        drill("payment provider failing", "safe", || {
            Box::pin(matrix::payment_provider_failing())
        }),
    ]
}
