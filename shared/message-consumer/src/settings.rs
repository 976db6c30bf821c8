//! What a consumer is told: where to consume from, how many messages at once, how
//! often to retry, when to commit (`ConsumerSettings`, read by services through
//! `ConsumerTuning`).

use std::time::Duration;

/// Where to consume from and where rejected messages go.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    /// Permanent failures are published here, with the reason in headers.
    pub dead_letter_topic: String,
    /// Cap of the exponential backoff between retries of a transient failure.
    pub max_backoff: Duration,
    /// `CONSUMER_MAX_RETRIES`: retries of a `Transient` failure before the message is
    /// dead-lettered ("retries exhausted"). `Unavailable` failures never count.
    pub max_retries: u32,
    /// When the offset is committed: after the effect (safe, the default) or before it
    /// (an unsafe teaching toggle, `CONSUMER_OFFSET_COMMIT=before-effect`).
    pub offset_commit: OffsetCommit,
    /// `CONSUMER_CONCURRENCY`: messages of different keys handled at once by `run`
    /// (1: one at a time, as a plain loop does). Same-key messages are always handled
    /// in order, one after the other.
    pub concurrency: usize,
    /// Messages received and not finished (in handlers or waiting behind their key)
    /// before `run` pauses the partitions.
    pub max_buffered: usize,
}

/// `CONSUMER_MAX_RETRIES`'s default: with the backoff doubling from 100 ms up to 30 s,
/// about 80 s of retries before a message that keeps failing is dead-lettered.
pub const DEFAULT_MAX_RETRIES: u32 = 10;

/// `CONSUMER_CONCURRENCY`'s default, chosen by measurement (docs/en/08-load-and-benchmark.md).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// The fewest messages received-and-unfinished before the partitions pause. Each
/// pause and resume costs the partition a fetch round trip (about half a second here):
/// with a buffer of 8 per handler the bench saw the consumer paced by that cycle, at
/// exactly two buffers a second. A larger buffer makes the cycle rare; the messages it
/// holds are small, and a revoke or a stop does not wait for the ones not started.
pub const MIN_BUFFERED: usize = 1_000;

fn buffer_for(concurrency: usize) -> usize {
    (64 * concurrency).max(MIN_BUFFERED)
}

/// The consume stage's one decision: commit the offset before or after the effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OffsetCommit {
    /// Store the offset only once the effect is durable: a crash re-delivers, the
    /// inbox absorbs the duplicate. At-least-once.
    #[default]
    AfterEffect,
    /// UNSAFE, for the failure drills only: commit the offset (synchronously) as soon
    /// as the message arrives, then apply it. A crash in between skips the message for
    /// good: at-most-once, the loss the study note warns about.
    BeforeEffect,
}

impl std::str::FromStr for OffsetCommit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "after-effect" => Ok(Self::AfterEffect),
            "before-effect" => Ok(Self::BeforeEffect),
            other => Err(format!(
                "expected after-effect or before-effect (unsafe), got {other:?}"
            )),
        }
    }
}

impl ConsumerSettings {
    /// One topic, its dead-letter topic `<topic>.dlq`, backoff capped at 30 s,
    /// [`DEFAULT_CONCURRENCY`] handlers at once.
    pub fn new(bootstrap_servers: &str, group_id: &str, topic: &str) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.to_owned(),
            group_id: group_id.to_owned(),
            topics: vec![topic.to_owned()],
            dead_letter_topic: kafka_config::dead_letter_topic(topic),
            max_backoff: Duration::from_secs(30),
            max_retries: DEFAULT_MAX_RETRIES,
            offset_commit: OffsetCommit::AfterEffect,
            concurrency: DEFAULT_CONCURRENCY,
            max_buffered: buffer_for(DEFAULT_CONCURRENCY),
        }
    }

    /// `concurrency` handlers at once, and up to [`MIN_BUFFERED`] (or 64 per handler)
    /// messages received before the partitions pause.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self.max_buffered = buffer_for(self.concurrency);
        self
    }
}

/// The consumer's knobs a service reads from its environment, the same in every
/// service: `CONSUMER_CONCURRENCY` (default [`DEFAULT_CONCURRENCY`], at least 1) and
/// `CONSUMER_MAX_RETRIES` (default [`DEFAULT_MAX_RETRIES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerTuning {
    pub concurrency: usize,
    pub max_retries: u32,
}

impl ConsumerTuning {
    pub fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, service_config::ConfigError> {
        Ok(Self {
            concurrency: service_config::parse_at_least(
                lookup,
                "CONSUMER_CONCURRENCY",
                DEFAULT_CONCURRENCY,
                1,
            )?,
            max_retries: service_config::parse_var(
                lookup,
                "CONSUMER_MAX_RETRIES",
                DEFAULT_MAX_RETRIES,
            )?,
        })
    }
}

impl ConsumerSettings {
    /// The settings with a service's [`ConsumerTuning`].
    #[must_use]
    pub fn tuned(self, tuning: ConsumerTuning) -> Self {
        let mut settings = self.with_concurrency(tuning.concurrency);
        settings.max_retries = tuning.max_retries;
        settings
    }
}
