//! payment-service consuming `OrderCreated` on the real cluster, in-process, on its own
//! database: duplicates delivered vs duplicates applied, poison messages, and the Redis
//! fast path in front of the inbox (docs/en/04-consume.md, docs/en/06-idempotency.md).

#[path = "../common/mod.rs"]
mod common;
mod concurrent_delivery;
mod crash_points;
mod duplicate_delivery;
mod fast_path;
mod offset_reset;
mod poison;
