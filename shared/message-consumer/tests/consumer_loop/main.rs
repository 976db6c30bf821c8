//! The consumer loop against the real 3-node cluster and a real Postgres: dead
//! letters and their replay, retries in order, offsets stored only after the effect, and
//! a group that changes under a running stream
//! (docs/en/04-consume.md). One test binary, one module per idea.

mod commit_after_effect;
mod dead_letters;
mod inbox_recorder;
mod parallel;
mod rebalance;
mod refusals;
mod replay;
mod retries;
mod support;
