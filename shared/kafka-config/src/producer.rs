//! The reliable producer (study note, "Producer client configuration").

use rdkafka::ClientConfig;

/// How many acknowledgements the leader waits for before answering the producer.
///
/// `All` is the only safe value; `Leader` and `None` exist so the drills can show what
/// they lose (docs/en/02-produce.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the producer does not wait at all. Teaching toggle: loses silently.
    None,
    /// `acks=1`: the leader alone. Teaching toggle: loses the tail on leader failover.
    Leader,
    /// `acks=all`: every in-sync replica (at least `min.insync.replicas` of them).
    All,
}

impl Acks {
    fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// The knobs of the producer that matter for loss and duplicates. `Default` is the
/// safe configuration; every other value is a labelled teaching toggle.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    pub bootstrap_servers: String,
    pub acks: Acks,
    /// Idempotent producer: the broker drops the duplicates that retries create.
    pub idempotence: bool,
    /// Upper bound for one message from `send()` to its final ack or error, retries
    /// included. After it the send fails and the caller (the relay) decides.
    pub delivery_timeout_ms: u32,
    /// How long to wait to fill a batch. Small: the relay already batches by claiming.
    pub linger_ms: u32,
    /// The local queue's size. When it is full `send()` fails at once (fail fast) rather
    /// than blocking the caller.
    pub queue_max_messages: u32,
}

impl ProducerSettings {
    pub fn reliable(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            acks: Acks::All,
            idempotence: true,
            delivery_timeout_ms: 30_000,
            linger_ms: 5,
            queue_max_messages: 100_000,
        }
    }

    /// The librdkafka configuration, each line with its reason.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            // Note Q2: with acks=1 the leader may die before a follower copied the message.
            .set("acks", self.acks.as_config())
            // Retries duplicate on a lost ack; idempotence (producer id + sequence numbers)
            // lets the broker drop those duplicates. It also keeps per-partition order.
            .set("enable.idempotence", self.idempotence.to_string())
            // "retries must not be too small": retry transient errors until the
            // delivery timeout, instead of counting attempts.
            .set("retries", "2147483647")
            .set("retry.backoff.ms", "100")
            .set("retry.backoff.max.ms", "1000")
            .set("delivery.timeout.ms", self.delivery_timeout_ms.to_string())
            // How long the leader may wait for the in-sync replicas before it answers
            // REQUEST_TIMED_OUT (librdkafka sends it to the broker); the client then
            // retries, within delivery.timeout.ms.
            .set("request.timeout.ms", "10000")
            .set("linger.ms", self.linger_ms.to_string())
            // "The buffer must not hold too much": bounded, and a full queue is an
            // immediate error (QueueFull) for the business caller, not a blocked thread.
            .set(
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            )
            .set("queue.buffering.max.kbytes", "65536")
            .set("compression.type", "lz4");
        if !self.idempotence {
            // Without idempotence, more than one in-flight request lets a retried batch
            // overtake a later one: the order per key is lost too.
            c.set("max.in.flight.requests.per.connection", "1");
        }
        c
    }
}
