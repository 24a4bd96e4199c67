//! The small producer behind the dead-letter queue.
//!
//! A [`Producer`] is a handle on one background task; it is cheap to clone
//! (`Arc`), `Send + Sync`, and every clone feeds the same task, so several
//! consumers can share one producer.
//!
//! ```text
//!  send()/enqueue() ──► command channel ──► producer task
//!   (buffer.memory         │  topic unknown? ──► waiting list ── metadata lookup (with backoff,
//!    permits)              │                     until delivery.timeout.ms, then UnknownTopic)
//!                          ▼  partition: explicit | murmur2(key) | sticky
//!                    ProduceAccumulator (sans-IO: per-partition batches, linger, batch.size)
//!                          │ drain(now, leader_of): one request per leader
//!                          ▼
//!              spawned request: cluster.broker(node) ─ Produce vN (acks, timeout_ms) ─► answer
//!                          │
//!       per partition: OK ──► each record's future gets RecordMetadata { offset = base_offset + i }
//!                      retriable (NOT_LEADER..., timeouts, dead connection) ──► refresh metadata,
//!                          batch back to the front of its queue after backoff
//!                      MESSAGE_TOO_LARGE, more than one record ──► split in halves, resent
//!                      other code ──► each record gets ProduceError::Broker { topic, partition, code }
//! ```
//!
//! **Delivery.** A record's future resolves only after the leader answered
//! for its batch (with `acks=all`, once the in-sync replicas have it), or with
//! an error; never later than `delivery.timeout.ms` after the record was
//! handed over, plus, for a batch already in flight when the deadline passes,
//! the rest of that attempt (bounded by the connect and request timeouts).
//!
//! **Ordering and duplicates.** At most one batch per partition is in flight
//! and a retried batch is sent again before any later batch of its
//! partition, so records of one partition are written in the order they were
//! handed over. By default the producer is not idempotent: a request whose
//! answer was lost (request timeout, dead connection,
//! NOT_ENOUGH_REPLICAS_AFTER_APPEND) is sent again and its records may be
//! written twice. For a dead-letter queue this is at-least-once, which is
//! what the batch layer promises anyway.
//!
//! With [`ProducerConfigBuilder::idempotence`] the producer takes a producer
//! id (InitProducerId) and numbers its batches per partition; a resent batch
//! keeps its numbers and the broker keeps one copy. A numbered batch that
//! fails for good (or OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID,
//! INVALID_PRODUCER_EPOCH) makes the producer take a new producer id; a batch
//! whose outcome was unknown at that moment and is resent under the new id
//! may still be written twice. No transactions.
//!
//! **Partitions.** See [`partitioner`]: explicit, else Java-compatible murmur2 of
//! the key, else sticky (keyless records fill one partition's batch at a time).
//!
//! ```no_run
//! use bytes::Bytes;
//! use kafee_client::cluster::Cluster;
//! use kafee_client::config::ClientConfig;
//! use kafee_client::produce::{Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = Cluster::connect(
//!     ClientConfig::builder().bootstrap_servers(["127.0.0.1:9092"]).build()?,
//! ).await?;
//! let producer = Producer::new(cluster, ProducerConfig::default());
//!
//! // One record, waiting for the broker's acknowledgement:
//! let record = ProducerRecord::new("orders.dlq")
//!     .key(Bytes::from_static(b"order-17"))
//!     .value(Bytes::from_static(b"{...}"))
//!     .header("kafee.error", Some(Bytes::from_static(b"timeout")));
//! let metadata = producer.send(record).await?;
//! println!("written at {}/{}@{}", metadata.topic, metadata.partition, metadata.offset);
//!
//! // Many at once: hand them all over, then wait; they share batches.
//! let mut pending = Vec::new();
//! for i in 0..100 {
//!     let record = ProducerRecord::new("orders.dlq").value(Bytes::from(format!("{i}")));
//!     pending.push(producer.enqueue(record)?);
//! }
//! for delivery in pending {
//!     delivery.await?;
//! }
//! producer.close().await;
//! # Ok(())
//! # }
//! ```

pub mod accumulator;
mod config;
mod error;
pub mod partitioner;
mod sender;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::cluster::Cluster;

pub use accumulator::{record_size_bound, ProduceAccumulator};
pub use config::{Acks, ProducerConfig, ProducerConfigBuilder, ProducerConfigError};
pub use error::ProduceError;
pub use partitioner::{murmur2, partition_for_key};

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The partition; `None` lets the partitioner choose (key hash, or
    /// sticky for a record without key).
    pub partition: Option<i32>,
    /// The key (`None` is a null key; an empty key is hashed like any other).
    pub key: Option<Bytes>,
    /// The value (`None` is a null value, a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers, in order; a header value may be null.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// `CreateTime` timestamp in milliseconds since the epoch; `None` takes
    /// the wall clock when the record is handed over.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with null key and value, no headers.
    pub fn new(topic: impl Into<String>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Appends a header.
    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((key.into(), value));
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Upper bound of the record's encoded size in a batch (before
    /// compression); what `max.request.size` and `buffer.memory` are
    /// checked against.
    pub fn size_bound(&self) -> usize {
        let headers: Vec<(&[u8], Option<&[u8]>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_deref()))
            .collect();
        record_size_bound(self.key.as_deref(), self.value.as_deref(), &headers)
    }
}

/// Where the broker wrote a record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The record's offset (`base_offset` of its batch plus its index);
    /// `-1` when an idempotent resend was answered DUPLICATE_SEQUENCE_NUMBER
    /// (the broker had the batch already and did not say where).
    pub offset: i64,
    /// The record's timestamp: the broker's append time when the topic uses
    /// `LogAppendTime`, else the `CreateTime` written with it.
    pub timestamp: i64,
}

/// The result of one record handed over with [`Producer::enqueue`]: a future
/// resolving once the broker acknowledged the record (or it failed).
///
/// Dropping it does not cancel the record; it is still delivered.
#[must_use = "the delivery result of a dead-letter record must be checked"]
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata, ProduceError>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ProduceError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ProduceError::Closed)))
    }
}

/// What travels from a handle to the producer task.
enum Command {
    Record(Box<Pending>),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// A record handed over, with its reply channel and its share of
/// `buffer.memory` (released when the record completes).
struct Pending {
    id: u64,
    record: ProducerRecord,
    tx: oneshot::Sender<Result<RecordMetadata, ProduceError>>,
    permit: OwnedSemaphorePermit,
    enqueued_at: tokio::time::Instant,
}

/// Counters of a producer, shared by its handles and its task.
#[derive(Debug, Default)]
struct Counters {
    records_acked: AtomicU64,
    records_failed: AtomicU64,
    requests: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
}

/// What a producer has done so far ([`Producer::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Records handed over (by [`Producer::send`] or [`Producer::enqueue`]).
    pub records_handed_over: u64,
    /// Records the broker acknowledged.
    pub records_acked: u64,
    /// Records that completed with an error.
    pub records_failed: u64,
    /// Produce requests sent (each carries one batch per partition of one leader).
    pub requests: u64,
    /// Batches sent, retries included.
    pub batches: u64,
    /// Batches put back for another attempt after a retriable error.
    pub retries: u64,
}

struct Shared {
    tx: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    next_id: AtomicU64,
    buffer: Arc<Semaphore>,
    config: ProducerConfig,
    closed: AtomicBool,
}

/// The dead-letter producer. See the [module](self) docs.
///
/// Cheap to clone; all clones share one background task, which runs until
/// [`Producer::close`] or until the last clone is dropped (records already
/// handed over are still delivered then).
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.config)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Starts the producer task on `cluster`. Must be called inside a tokio
    /// runtime.
    pub fn new(cluster: Cluster, config: ProducerConfig) -> Producer {
        let (tx, rx) = mpsc::unbounded_channel();
        let buffer = Arc::new(Semaphore::new(config.buffer_memory()));
        let counters = Arc::new(Counters::default());
        tokio::spawn(sender::run(cluster, config.clone(), rx, counters.clone()));
        Producer {
            shared: Arc::new(Shared {
                tx,
                counters,
                next_id: AtomicU64::new(0),
                buffer,
                config,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    /// Produces one record and waits until the broker acknowledged it
    /// (`acks=all` by default) or it failed. Waits for room when
    /// `buffer.memory` is full.
    pub async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata, ProduceError> {
        let size = self.check_size(&record)?;
        let permit = self
            .shared
            .buffer
            .clone()
            .acquire_many_owned(size as u32)
            .await
            .map_err(|_| ProduceError::Closed)?;
        self.hand_over(record, permit)?.await
    }

    /// Hands a record over without waiting and returns the future of its
    /// result. Records handed over together are batched (by `linger.ms` and
    /// `batch.size`) into one Produce request per leader.
    ///
    /// Fails at once when the producer is closed, the record is larger than
    /// `max.request.size`, or `buffer.memory` is full
    /// ([`ProduceError::BufferFull`]; [`Producer::send`] waits instead).
    pub fn enqueue(&self, record: ProducerRecord) -> Result<DeliveryFuture, ProduceError> {
        let size = self.check_size(&record)?;
        let permit = match self
            .shared
            .buffer
            .clone()
            .try_acquire_many_owned(size as u32)
        {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(ProduceError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return Err(ProduceError::BufferFull {
                    topic: record.topic,
                    size,
                    limit: self.shared.config.buffer_memory(),
                })
            }
        };
        self.hand_over(record, permit)
    }

    fn check_size(&self, record: &ProducerRecord) -> Result<usize, ProduceError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ProduceError::Closed);
        }
        // A record alone in its batch must fit a request with the batch
        // header; its share of buffer.memory is the record alone.
        let size = record.size_bound();
        let alone = size + kafee_protocol::records::RECORD_BATCH_HEADER_SIZE;
        let limit = self.shared.config.max_request_size();
        if alone > limit {
            return Err(ProduceError::RecordTooLarge {
                topic: record.topic.clone(),
                size: alone,
                setting: "max.request.size",
                limit,
            });
        }
        Ok(size)
    }

    fn hand_over(
        &self,
        record: ProducerRecord,
        permit: OwnedSemaphorePermit,
    ) -> Result<DeliveryFuture, ProduceError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ProduceError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            record,
            tx,
            permit,
            enqueued_at: tokio::time::Instant::now(),
        };
        self.shared
            .tx
            .send(Command::Record(Box::new(pending)))
            .map_err(|_| ProduceError::Closed)?;
        Ok(DeliveryFuture { rx })
    }

    /// Sends every record handed over before this call at once (ignoring
    /// `linger.ms`) and waits until each has its result.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.tx.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Refuses new records ([`ProduceError::Closed`]), delivers (or fails,
    /// within `delivery.timeout.ms`) every record already handed over, and
    /// stops the task. Every clone is closed.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        let (tx, rx) = oneshot::channel();
        if self.shared.tx.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Counters of what this producer (all its clones) has done so far.
    pub fn stats(&self) -> ProducerStats {
        let c = &self.shared.counters;
        ProducerStats {
            records_handed_over: self.shared.next_id.load(Ordering::Relaxed),
            records_acked: c.records_acked.load(Ordering::Relaxed),
            records_failed: c.records_failed.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// Whether [`Producer::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests;
