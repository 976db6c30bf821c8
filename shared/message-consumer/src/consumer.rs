//! The consumer group member: subscribes, polls, and runs the loop ([`MessageConsumer::run`]
//! in parallel by key, [`MessageConsumer::consume_once`] one message at a time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lifecycle::Shutdown;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use telemetry::Metrics;

use crate::counters::LoopCounters;
use crate::hand_over::HandOver;
use crate::offsets::InFlight;
use crate::settings::{ConsumerSettings, OffsetCommit};
use crate::worker::{Processed, Worker};
use crate::{Handler, ReceivedMessage};

/// A consumer group member that applies each message before storing its offset.
pub struct MessageConsumer<H> {
    /// Shared with the lag sampler, which reads positions and watermarks beside the
    /// loop, and with the poll thread of `run`.
    consumer: Arc<BaseConsumer<HandOver>>,
    /// The offsets received and not finished, per partition (`run` only).
    in_flight: Arc<InFlight>,
    worker: Worker<H>,
    metrics: Metrics,
}

impl<H> std::fmt::Debug for MessageConsumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageConsumer")
            .field("settings", &self.worker.settings)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> MessageConsumer<H> {
    /// Creates the consumer (see `kafka_config::at_least_once_consumer`) and subscribes.
    pub fn new(settings: ConsumerSettings, handler: H) -> Result<Self, KafkaError> {
        // The context sees every rebalance: before partitions are taken away, it waits
        // for their messages in flight (and the waiting ones before them), which store
        // their offsets, and commits those (`hand_over.rs`). Every stored offset belongs
        // to a message whose effect is committed: the new owner resumes right after it,
        // and nothing is re-delivered (tests/consumer_loop/rebalance.rs, parallel.rs).
        let in_flight = Arc::new(InFlight::default());
        let context = HandOver {
            in_flight: Arc::clone(&in_flight),
        };
        let consumer: BaseConsumer<HandOver> =
            kafka_config::at_least_once_consumer(&settings.bootstrap_servers, &settings.group_id)
                .create_with_context(context)?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        // Dead letters are written as reliably as events: acks=all, idempotent.
        let dead_letters: FutureProducer =
            kafka_config::ProducerSettings::reliable(&settings.bootstrap_servers)
                .client_config()
                .create()?;
        // Counted into a registry of its own until the service hands it its own.
        let metrics = Metrics::default();
        Ok(Self {
            consumer: Arc::new(consumer),
            in_flight,
            worker: Worker {
                dead_letters,
                handler,
                counters: Arc::new(LoopCounters::new(metrics.clone(), &settings.topics)),
                settings,
            },
            metrics,
        })
    }

    /// Counts into `metrics` (the service's registry, served at `GET /metrics`). Call
    /// it before [`MessageConsumer::counters`]: it starts the counters afresh.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.worker.counters = Arc::new(LoopCounters::new(
            metrics.clone(),
            &self.worker.settings.topics,
        ));
        self.metrics = metrics.clone();
        self
    }

    pub fn handler(&self) -> &H {
        &self.worker.handler
    }

    /// The loop's counters (consumed, applied, duplicates by layer, dead-lettered,
    /// retried); they keep counting after `run` takes the consumer.
    pub fn counters(&self) -> Arc<LoopCounters> {
        Arc::clone(&self.worker.counters)
    }

    /// Waits up to `wait` for one message and processes it to the end (applied or
    /// dead-lettered, offset stored): the loop one message at a time, for tests that
    /// drive it step by step. `Ok(None)`: nothing arrived (or shutdown came first), or
    /// shutdown came while a transient failure was being retried (offset not stored:
    /// it comes again).
    pub async fn consume_once(
        &self,
        wait: Duration,
        shutdown: &Shutdown,
    ) -> Result<Option<Processed>, KafkaError> {
        let Some(message) = self.poll_one(wait, shutdown).await? else {
            return Ok(None);
        };
        if self.worker.settings.offset_commit == OffsetCommit::BeforeEffect {
            crate::parallel::commit_before_effect(&self.consumer, &message);
        }
        let Some(outcome) = self.worker.apply(&message, shutdown, None).await else {
            return Ok(None);
        };
        // Crash point C2: the effect is committed, the offset is not. A restart
        // re-delivers this message; the handler's inbox recognises it.
        lifecycle::CrashPoint::C2.reached();
        // The offset is stored only now, after the effect (or the dead letter) is
        // durable. Committing first would lose the message on a crash (at-most-once).
        self.consumer
            .store_offset(&message.topic, message.partition, message.offset)?;
        Ok(Some(outcome))
    }

    /// Polls for one message on the blocking pool (librdkafka's poll blocks). Shutdown
    /// may cut short only the wait: a message once taken from the consumer is returned,
    /// never dropped (its position has moved past it).
    async fn poll_one(
        &self,
        wait: Duration,
        shutdown: &Shutdown,
    ) -> Result<Option<ReceivedMessage>, KafkaError> {
        let consumer = Arc::clone(&self.consumer);
        let shutdown = shutdown.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + wait;
            loop {
                let now = Instant::now();
                if shutdown.is_triggered() || now >= deadline {
                    return Ok(None);
                }
                let slice = (deadline - now).min(Duration::from_millis(100));
                match consumer.poll(slice) {
                    None => {}
                    Some(Err(e)) => return Err(e),
                    Some(Ok(m)) => return Ok(Some(ReceivedMessage::from_borrowed(&m))),
                }
            }
        })
        .await
        .unwrap_or(Ok(None))
    }

    /// Consumes until `shutdown`, in parallel by key ([`crate::parallel`]): a poll
    /// thread hands messages to per-key tasks, at most `concurrency` at once, and each
    /// partition stores its contiguous finished prefix. On shutdown it lets the
    /// messages in flight finish, commits, and drops the consumer, which leaves the
    /// group.
    pub async fn run(self, shutdown: Shutdown) {
        let Self {
            consumer,
            in_flight,
            worker,
            metrics,
        } = self;
        let group = worker.settings.group_id.clone();
        let lag = tokio::spawn(crate::lag::sample_periodically(
            Arc::clone(&consumer),
            metrics,
            shutdown.clone(),
        ));
        let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _abandon_on_drop = crate::parallel::AbandonOnDrop(Arc::clone(&abandoned));
        let poller = {
            let consumer = Arc::clone(&consumer);
            let worker = Arc::new(worker);
            let shutdown = shutdown.clone();
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                crate::parallel::poll_until_stopped(
                    consumer, in_flight, worker, shutdown, abandoned, runtime,
                );
            })
        };
        if let Err(error) = poller.await {
            tracing::error!(%error, group = %group, "the poll thread failed");
        }
        // The sampler stops on the same switch; once it is done this is the last
        // handle, and closing the consumer (it leaves the group, a blocking call)
        // happens here, off the async threads.
        let _ = lag.await;
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        tracing::info!(group = %group, "consumer stopped");
    }
}
