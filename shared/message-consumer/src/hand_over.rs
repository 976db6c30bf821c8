//! Handing partitions over at a rebalance without losing or repeating work.
//!
//! When the group takes partitions away from this member, librdkafka calls the
//! rebalance callback and then, because `enable.auto.commit=true`, commits the stored
//! offsets of the removed partitions (`rd_kafka_assignment_serve_removals`). With
//! messages still in a handler, their offsets are not stored yet: the next owner would
//! get them again. So before the partitions go, the callback stops their waiting
//! messages after the last one started (the next owner gets those), waits — bounded —
//! until the running ones and the waiting ones before the last started have finished
//! and stored their offsets, forgets the partitions, and commits the stored offsets
//! synchronously. (Handler slots are not handed out in offset order: offset 16 may run
//! while 6 waits. Stopping 6 would keep the position at 6, and the next owner would
//! apply 16 again. The ones the revoke waits for run on slots of its own,
//! `parallel::Lanes::slot_for`.)
//!
//! The callback is synchronous: rust-rdkafka runs it inside `poll()`, on the thread that
//! polls. Waiting there for tokio tasks would deadlock if that thread were one of the
//! runtime's workers (the tasks it waits for could be queued on it). So the loop polls on
//! a thread of its own (`spawn_blocking`), and the callback waits on a condition
//! variable that the handler tasks signal as they finish. A message that does not
//! finish within [`REVOKE_WAIT`] (a transient failure being retried) is let go: its
//! offset is not stored, the next owner handles it, and the inbox absorbs the copy if
//! this member applies it after all.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::offsets::{InFlight, PartitionId};

/// How long a revoke waits for the revoked partitions' messages in flight (and those
/// before them still waiting for a slot). Well inside `max.poll.interval.ms` (300 s):
/// the member keeps its place in the group meanwhile.
pub const REVOKE_WAIT: Duration = Duration::from_secs(10);

/// The consumer's context: sees every rebalance.
#[derive(Debug, Default, Clone)]
pub(crate) struct HandOver {
    pub(crate) in_flight: Arc<InFlight>,
}

impl ClientContext for HandOver {}

impl ConsumerContext for HandOver {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked: Vec<PartitionId> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let left = self.in_flight.revoke(&revoked, REVOKE_WAIT);
        if left > 0 {
            tracing::warn!(
                left,
                ?revoked,
                "revoke: messages up to the last one started still unfinished after {REVOKE_WAIT:?}; the next owner gets them again"
            );
        } else {
            tracing::debug!(
                ?revoked,
                "revoke: in-flight messages finished, offsets stored"
            );
        }
        // Commit the stored offsets now, synchronously, before the callback returns: the
        // group's rebalance completes only after this member rejoins, so the next owner
        // reads these offsets, not older ones. (The commit librdkafka makes on its own
        // for removed partitions is asynchronous: on a loaded machine the next owner
        // could fetch the position before it landed and get finished messages again.)
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            // Nothing stored since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                tracing::warn!(%error, "revoke: committing the stored offsets failed; the next owner may get finished messages again (the inbox absorbs them)");
            }
        }
    }
}
