//! `kafee-batching`: Kafee-style batch processing.
//!
//! `handle_message` / `handle_batch` / `handle_dead_letter`, batch triggers,
//! acknowledgment strategies that end in real offset commits, in-flight
//! limits, the dead-letter queue and telemetry.
//!
//! # The sans-IO core
//!
//! Everything in this crate's core is a plain struct driven by events and a
//! `now: tokio::time::Instant` passed in: no task is spawned, no socket is
//! touched, no clock is read. The async runtime (the consumer driver) feeds
//! fetched records in and turns the decisions into fetch pauses, handler calls,
//! seeks, dead-letter writes and OffsetCommits.
//!
//! | module | job |
//! | --- | --- |
//! | [`accumulator`] | per-partition batches: `size`, `max_bytes`, `timeout` triggers, wire-batch boundaries, back-pressure signal |
//! | [`watermark`] | per-partition contiguous commit watermark; [`watermark::CommitTracker`]: what to commit, when, one commit in flight |
//! | [`strategy`] | acknowledgment strategies as pure decisions; retry state in the OffsetCommit metadata |
//! | [`partition`] | one partition's life cycle: accumulator + watermark + retry state, decisions applied |
//! | [`inflight`] | `max_in_flight_batches` across partitions, one batch at a time per partition, FIFO fairness |
//! | [`config`] | [`BatchConfig`] and [`DeadLetterConfig`] with validating builders |
//! | [`telemetry`] | tracing events named after Kafee's; `metrics` facade behind the `metrics` feature |
//!
//! # Driving it
//!
//! Per assigned partition the driver keeps a [`Partition`]; for the group one
//! [`InFlight`] scheduler and one [`CommitTracker`]. Fetch pauses for a
//! partition while `partition.should_pause() || inflight.is_waiting(&tp)`.
//! The driver sleeps until the earliest of the partitions' `next_deadline()`
//! and the tracker's `next_deadline()`, or until fetched records, a handler
//! result or a dead-letter write result arrive.
//!
//! ```
//! use std::time::Duration;
//! use kafee_batching::{
//!     BatchConfig, BatchResult, CommitTracker, Entry, InFlight, Instant, Mode, Outcome,
//!     Partition, TopicPartition,
//! };
//!
//! let config = BatchConfig::builder().mode(Mode::Batch).size(2).build().unwrap();
//! let now = Instant::now();
//! let tp = TopicPartition::new("orders", 0);
//! // Assigned: OffsetFetch said offset 0, no metadata.
//! let (mut partition, _bad_metadata) = Partition::<&str>::new(
//!     tp.clone(), config.accumulator_settings(), config.ack_policy(), 0, "", now);
//! let mut inflight = InFlight::new(config.max_in_flight_batches());
//! let mut commits = CommitTracker::new(config.commit_interval(), now);
//! commits.assign(tp.clone(), 0, String::new());
//!
//! // Fetched records arrive.
//! for (offset, value) in [(0, "a"), (1, "b")] {
//!     let entry = Entry { offset, wire_size: 20, wire_batch_last_offset: 1,
//!                         last_in_wire_batch: offset == 1, payload: value };
//!     partition.push(entry, now).unwrap();
//! }
//! // Schedule, hand out, handle, decide, commit.
//! if partition.is_ready(now) {
//!     inflight.ready(tp.clone());
//! }
//! while let Some(key) = inflight.next_start() {
//!     let started = partition.take_batch(now).unwrap().expect("ready");
//!     // ... the handler runs on started.batch (in a task) ...
//!     let outcome = partition
//!         .on_result(started.ticket, started.batch, &BatchResult::Ok, now)
//!         .unwrap();
//!     assert!(matches!(outcome, Outcome::Done { committable: 2, .. }));
//!     let (offset, metadata) = partition.commit_state();
//!     commits.update(&key, offset, &metadata);
//!     inflight.finish(&key, partition.is_ready(now)).unwrap();
//! }
//! let later = now + Duration::from_secs(1);
//! let to_send = commits.take_pending(later).expect("due");
//! assert_eq!((to_send[0].offset, to_send[0].metadata.as_str()), (2, ""));
//! ```
//!
//! Revoke: `inflight.remove(&tp)`, let the batch out finish until the revoke
//! deadline (its result still goes through `on_result`), update the tracker,
//! `force_flush()`, send and await the commit, then `commits.remove(&tp)` and
//! drop the `Partition` (a result arriving later is stale). Lost partitions
//! (ILLEGAL_GENERATION): `commits.clear()` and drop, no commit.
//!
//! The promise these pieces keep together (see the workspace's Kafka notes):
//! a partition's committed offset passes an offset only after its record was
//! handled or dead-lettered (P1), the committed offset never moves backwards
//! except by an explicit seek (P4), and after a revocation nothing is committed
//! for the revoked partition (P3).
#![forbid(unsafe_code)]

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub mod accumulator;
pub mod config;
pub mod consumer;
pub mod handler;
pub mod inflight;
pub mod message;
pub mod partition;
pub mod strategy;
pub mod telemetry;
pub mod watermark;

pub use accumulator::{
    Accumulator, AccumulatorError, AccumulatorSettings, Entry, ReadyBatch, Trigger,
};
pub use config::{
    AckStrategy, BatchConfig, BatchConfigBuilder, ConfigError, DeadLetterConfig, Mode, TimeoutFrom,
};
pub use consumer::{Consumer, ConsumerBuilder, ConsumerError, RunHandle, ShutdownTrigger, Stats};
pub use handler::{DeadLetterInfo, Handler, HandlerError};
pub use inflight::InFlight;
pub use message::{Batch, Message, OwnedMessage};
pub use partition::{
    DeadLetterJob, DeadLetterOutcome, Outcome, Partition, PartitionError, Started, Ticket,
};
pub use strategy::{Backoff, BatchResult, Decision, RetryState};
/// The instant type every `now` argument takes (tokio's, so that a paused
/// test clock drives the timers).
pub use tokio::time::Instant;
pub use watermark::{CommitEntry, CommitResult, CommitTracker, RangeId, Watermark, WatermarkError};

/// A topic name and partition index: the key of every per-partition state.
///
/// The topic is reference counted so that cloning a key (one per batch, one
/// per commit entry) does not allocate.
///
/// Equality and ordering compare the topic by pointer first: keys cloned from
/// one assignment share the same `Arc`, so the common comparison costs no
/// string compare.
#[derive(Clone, Eq)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition index within the topic.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a key from a topic name and a partition index.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl PartialEq for TopicPartition {
    fn eq(&self, other: &Self) -> bool {
        self.partition == other.partition
            && (Arc::ptr_eq(&self.topic, &other.topic) || self.topic == other.topic)
    }
}

impl Hash for TopicPartition {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.topic.hash(state);
        self.partition.hash(state);
    }
}

impl Ord for TopicPartition {
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.topic, &other.topic) {
            return self.partition.cmp(&other.partition);
        }
        self.topic
            .cmp(&other.topic)
            .then(self.partition.cmp(&other.partition))
    }
}

impl PartialOrd for TopicPartition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn topic_partition_equality_and_order_ignore_arc_identity() {
        let a = TopicPartition::new("orders", 1);
        let b = TopicPartition::new(String::from("orders"), 1);
        assert_eq!(a, b);
        assert_eq!(a.cmp(&b), Ordering::Equal);
        assert!(TopicPartition::new("orders", 0) < a);
        assert!(TopicPartition::new("a", 9) < TopicPartition::new("b", 0));
        let c = a.clone();
        assert!(
            TopicPartition {
                partition: 0,
                ..c.clone()
            } < c
        );
        let set: HashSet<_> = [a.clone(), b, c].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_eq!(a.to_string(), "orders/1");
        assert_eq!(format!("{a:?}"), "orders/1");
    }
}
