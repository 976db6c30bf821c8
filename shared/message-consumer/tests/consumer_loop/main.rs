//! The consumer loop against the real 3-node cluster and a real Postgres: dead
//! letters, retries in order, and offsets stored only after the effect
//! (docs/en/04-consume.md). One test binary, one module per idea.

mod commit_after_effect;
mod dead_letters;
mod retries;
mod support;
