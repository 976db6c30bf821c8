//! Failure drills: each starts what it breaks, injects one fault, lets the system
//! recover, then **counts** — what the producer was told was stored versus what a fresh
//! reader finds — so a claim of the study note becomes a number.

pub mod cluster;
pub mod outbox_relay;
pub mod prometheus;
pub mod replication;
pub mod replication_factor;
pub mod unclean_election;
