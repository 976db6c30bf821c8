//! The store-stage drills (docs/en/03-store.md), on a Kafka cluster of their own
//! ([`crate::cluster`], split topology): stop or kill brokers while a producer writes, then
//! compare what the producer was told was stored with what a fresh reader finds. Run by
//! `make drills-replication` (all, bigger) and `tests/store_drills.rs` (a subset).

pub mod outbox_relay;
pub mod prometheus;
pub mod replication;
pub mod replication_factor;
pub mod unclean_election;
