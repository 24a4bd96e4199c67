//! The record accumulator: per-partition queues of batches, drained by
//! linger and size into one request per leader.
//!
//! Sans-IO: [`ProduceAccumulator`] is a plain struct driven by `now`; the
//! producer task feeds it records and drains it, and tests drive it with
//! explicit instants.
//!
//! ```text
//!  append ──► partition queue: [full batch][full batch][open batch] ◄─ tail
//!                   │ front
//!                   ▼ ready when: not in flight, backoff over, and
//!                     (full | more than one batch | linger elapsed | flushing | retry)
//!  drain(now, leader_of) ──► node → [batch of p0, batch of p3, ...] (≤ max.request.size)
//!  complete(tp) / retry(batch) when the answer arrives; expire(now) after delivery.timeout.ms
//! ```
//!
//! Invariants:
//! * At most one batch per partition is in flight, and a retried batch goes
//!   back to the *front* of its queue: records of one partition are written
//!   in the order they were appended (a request whose answer was lost may
//!   still duplicate them).
//! * Only the tail batch of a queue takes records; every batch before it is
//!   full.
//! * A batch takes at least one record however large it is (a record above
//!   `batch.size` gets a batch of its own).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafee_protocol::records::{
    Compression, DecodeLimits, EncodeError, Header, RecordBatch, RecordBatchBuilder,
    NO_PRODUCER_ID, RECORD_BATCH_HEADER_SIZE,
};

use crate::admin::TopicPartition;

/// Upper bound of the encoded size of one record in a batch (before
/// compression): its fields plus the largest varints of every length.
pub fn record_size_bound(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&[u8], Option<&[u8]>)],
) -> usize {
    // length (5) + attributes (1) + timestamp delta (10) + offset delta (5)
    // + key length (5) + value length (5) + header count (5)
    let mut size = 36 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
    for (k, v) in headers {
        size += 10 + k.len() + v.map_or(0, <[u8]>::len);
    }
    size
}

/// Settings the accumulator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccumulatorConfig {
    /// `linger.ms`.
    pub linger: Duration,
    /// `batch.size`.
    pub batch_size: usize,
    /// `max.request.size`: bound of the batches drained for one request.
    pub max_request_size: usize,
    /// `compression.type` of the batches.
    pub compression: Compression,
    /// `delivery.timeout.ms`: a queued batch older than this expires.
    pub delivery_timeout: Duration,
    /// How long a partition without a leader waits before the next drain
    /// looks at it again (`retry.backoff.ms`).
    pub no_leader_backoff: Duration,
}

/// One record of a batch: the timestamp it was written with, and the
/// caller's handle (the producer keeps the waiting caller there).
#[derive(Debug)]
pub struct BatchRecord<T> {
    /// Timestamp written into the batch (milliseconds since the epoch).
    pub timestamp: i64,
    /// The caller's handle.
    pub handle: T,
}

/// A batch of records for one partition.
#[derive(Debug)]
pub struct ProducerBatch<T> {
    topic_partition: TopicPartition,
    seq: u64,
    builder: RecordBatchBuilder,
    encoded: Option<Bytes>,
    records: Vec<BatchRecord<T>>,
    created_at: Instant,
    attempts: u32,
    full: bool,
    stamp: Option<Stamp>,
}

/// The idempotent producer's identity and a batch's first sequence number,
/// as written into its encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// `producer_id` from InitProducerId.
    pub producer_id: i64,
    /// `producer_epoch` from InitProducerId.
    pub producer_epoch: i16,
    /// Sequence number of the batch's first record.
    pub base_sequence: i32,
}

/// The idempotent producer's identity (InitProducerId's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdentity {
    /// `producer_id`.
    pub producer_id: i64,
    /// `producer_epoch`.
    pub producer_epoch: i16,
}

/// The sequence number after `base` and `count` records: Kafka's sequences
/// wrap from `i32::MAX` to 0.
pub fn next_sequence(base: i32, count: usize) -> i32 {
    ((i64::from(base) + count as i64) % (i64::from(i32::MAX) + 1)) as i32
}

impl<T> ProducerBatch<T> {
    /// The partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    /// The batch's sequence number, unique within its accumulator.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The records, in offset order (record `i` gets `base_offset + i`).
    pub fn records(&self) -> &[BatchRecord<T>] {
        &self.records
    }

    /// Takes the records out (to complete them).
    pub fn into_records(self) -> Vec<BatchRecord<T>> {
        self.records
    }

    /// When the first record was appended; the batch expires
    /// `delivery.timeout.ms` later.
    pub fn created_at(&self) -> Instant {
        self.created_at
    }

    /// How many times the batch was sent before.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Estimated size: batch header plus uncompressed records.
    pub fn size(&self) -> usize {
        RECORD_BATCH_HEADER_SIZE + self.builder.records_size()
    }

    /// The encoded batch (set when it is drained; kept for retries).
    pub fn encoded(&self) -> Option<&Bytes> {
        self.encoded.as_ref()
    }

    /// The producer id, epoch and base sequence the encoded batch carries
    /// (idempotent producer only).
    pub fn stamp(&self) -> Option<Stamp> {
        self.stamp
    }

    /// Encodes the batch, or returns the bytes of an earlier attempt when
    /// they carry the current identity (a retry must resend the same
    /// sequence numbers). A batch without bytes for the current identity
    /// takes the partition's next sequence numbers.
    fn encode(
        &mut self,
        identity: Option<ProducerIdentity>,
        sequences: &mut HashMap<TopicPartition, i32>,
    ) -> Result<Bytes, EncodeError> {
        let current = match (identity, self.stamp) {
            (None, None) => true,
            (Some(id), Some(st)) => {
                st.producer_id == id.producer_id && st.producer_epoch == id.producer_epoch
            }
            _ => false,
        };
        if let (true, Some(bytes)) = (current, &self.encoded) {
            return Ok(bytes.clone());
        }
        let (producer_id, producer_epoch, base_sequence) = match identity {
            Some(id) => {
                let next = sequences.entry(self.topic_partition.clone()).or_insert(0);
                let base = *next;
                *next = next_sequence(base, self.records.len());
                (id.producer_id, id.producer_epoch, base)
            }
            None => (NO_PRODUCER_ID, -1, -1),
        };
        let builder = std::mem::replace(&mut self.builder, RecordBatchBuilder::new(0));
        self.builder = builder.producer(producer_id, producer_epoch, base_sequence);
        self.stamp = identity.map(|id| Stamp {
            producer_id: id.producer_id,
            producer_epoch: id.producer_epoch,
            base_sequence,
        });
        let bytes = self.builder.build()?;
        self.encoded = Some(bytes.clone());
        Ok(bytes)
    }
}

#[derive(Debug)]
struct PartitionQueue<T> {
    batches: VecDeque<ProducerBatch<T>>,
    in_flight: bool,
    retry_at: Option<Instant>,
}

impl<T> PartitionQueue<T> {
    fn new() -> Self {
        PartitionQueue {
            batches: VecDeque::new(),
            in_flight: false,
            retry_at: None,
        }
    }

    /// When the front batch becomes ready, if it is not blocked (in flight).
    fn ready_at(&self, linger: Duration, flushing: bool) -> Option<Instant> {
        if self.in_flight {
            return None;
        }
        let front = self.batches.front()?;
        let ready = if front.full || self.batches.len() > 1 || flushing || front.attempts > 0 {
            front.created_at
        } else {
            front.created_at + linger
        };
        Some(match self.retry_at {
            Some(at) => at.max(ready),
            None => ready,
        })
    }
}

/// Where an appended record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number of the batch that took the record.
    pub batch_seq: u64,
    /// Offset of the record within its batch.
    pub index: usize,
    /// Whether the record started a new batch.
    pub new_batch: bool,
}

/// What [`ProduceAccumulator::drain`] hands out.
#[derive(Debug)]
pub struct Drained<T> {
    /// Batches ready to send, per leader node id; each node's batches fit one
    /// request of `max.request.size` (or are a single batch).
    pub by_node: BTreeMap<i32, Vec<ProducerBatch<T>>>,
    /// Partitions with ready batches but no known leader: the metadata must
    /// be refreshed. They wait `no_leader_backoff` before the next look.
    pub no_leader: Vec<TopicPartition>,
    /// Batches that could not be encoded (a compressor failure); they are
    /// out of the accumulator and must be failed.
    pub failed: Vec<(ProducerBatch<T>, EncodeError)>,
}

impl<T> Default for Drained<T> {
    fn default() -> Self {
        Drained {
            by_node: BTreeMap::new(),
            no_leader: Vec::new(),
            failed: Vec::new(),
        }
    }
}

/// Per-partition queues of record batches. See the [module](self) docs.
#[derive(Debug)]
pub struct ProduceAccumulator<T> {
    config: AccumulatorConfig,
    queues: BTreeMap<TopicPartition, PartitionQueue<T>>,
    next_seq: u64,
    flushing: bool,
    records: usize,
    identity: Option<ProducerIdentity>,
    sequences: HashMap<TopicPartition, i32>,
}

impl<T> ProduceAccumulator<T> {
    /// An empty accumulator.
    pub fn new(config: AccumulatorConfig) -> Self {
        ProduceAccumulator {
            config,
            queues: BTreeMap::new(),
            next_seq: 0,
            flushing: false,
            records: 0,
            identity: None,
            sequences: HashMap::new(),
        }
    }

    /// The idempotent producer's identity batches are stamped with, if any.
    pub fn identity(&self) -> Option<ProducerIdentity> {
        self.identity
    }

    /// Stamps the batches drained from now on with this identity and
    /// sequence numbers from 0 per partition (idempotent producer). Batches
    /// encoded under another identity (retries) are stamped afresh when
    /// drained again. `None` goes back to unstamped batches.
    ///
    /// Invariant kept: per partition the broker sees sequences without gap,
    /// because at most one batch per partition is in flight and a retried
    /// batch is drained before any later one.
    pub fn set_identity(&mut self, identity: Option<ProducerIdentity>) {
        self.identity = identity;
        self.sequences.clear();
    }

    /// Records held (queued, not in flight).
    pub fn queued_records(&self) -> usize {
        self.records
    }

    /// Whether nothing is queued (batches in flight are not counted).
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// While set, every batch is ready regardless of linger (flush, close).
    pub fn set_flushing(&mut self, flushing: bool) {
        self.flushing = flushing;
    }

    /// Whether a batch of this partition is in flight.
    pub fn is_in_flight(&self, tp: &TopicPartition) -> bool {
        self.queues.get(tp).is_some_and(|q| q.in_flight)
    }

    /// The sequence number of the open (tail, not full) batch of a partition.
    pub fn open_batch(&self, tp: &TopicPartition) -> Option<u64> {
        let tail = self.queues.get(tp)?.batches.back()?;
        (!tail.full && tail.attempts == 0 && tail.encoded.is_none()).then_some(tail.seq)
    }

    /// Appends a record to the partition's open batch, or to a new batch when
    /// there is none or the record would take it past `batch.size`.
    ///
    /// On an encoding error the handle is given back with the error and
    /// nothing changes.
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &mut self,
        tp: &TopicPartition,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
        handle: T,
        now: Instant,
    ) -> Result<Appended, (EncodeError, T)> {
        let bound = {
            let pairs: Vec<(&[u8], Option<&[u8]>)> =
                headers.iter().map(|h| (h.key, h.value)).collect();
            record_size_bound(key, value, &pairs)
        };
        let config = self.config;
        if !self.queues.contains_key(tp) {
            self.queues.insert(tp.clone(), PartitionQueue::new());
        }
        let next_seq = &mut self.next_seq;
        let Some(queue) = self.queues.get_mut(tp) else {
            return Err((
                EncodeError::TooLarge {
                    what: "partition queue",
                    len: 0,
                },
                handle,
            ));
        };
        let tail_open = queue.batches.back().is_some_and(|b| {
            !b.full
                && b.attempts == 0
                && b.encoded.is_none()
                && (b.records.is_empty() || b.size() + bound <= config.batch_size)
        });
        if !tail_open {
            if let Some(tail) = queue.batches.back_mut() {
                tail.full = true;
            }
            let seq = *next_seq;
            *next_seq += 1;
            queue.batches.push_back(ProducerBatch {
                topic_partition: tp.clone(),
                seq,
                builder: RecordBatchBuilder::new(0).compression(config.compression),
                encoded: None,
                records: Vec::new(),
                created_at: now,
                attempts: 0,
                full: false,
                stamp: None,
            });
        }
        let Some(batch) = queue.batches.back_mut() else {
            return Err((
                EncodeError::TooLarge {
                    what: "partition queue",
                    len: 0,
                },
                handle,
            ));
        };
        if let Err(e) = batch.builder.append(timestamp, key, value, headers) {
            if batch.records.is_empty() {
                queue.batches.pop_back();
                if queue.batches.is_empty() && !queue.in_flight {
                    self.queues.remove(tp);
                }
            }
            return Err((e, handle));
        }
        batch.records.push(BatchRecord { timestamp, handle });
        if batch.size() >= config.batch_size {
            batch.full = true;
        }
        self.records += 1;
        Ok(Appended {
            batch_seq: batch.seq,
            index: batch.records.len() - 1,
            new_batch: !tail_open,
        })
    }

    /// Takes the ready batches out, grouped by leader: at most one batch per
    /// partition (none of a partition with a batch in flight), and per node
    /// no more than `max.request.size` (but always at least one batch).
    /// The partitions of the batches handed out are marked in flight until
    /// [`complete`](Self::complete) or [`retry`](Self::retry).
    pub fn drain(
        &mut self,
        now: Instant,
        leader_of: impl Fn(&TopicPartition) -> Option<i32>,
    ) -> Drained<T> {
        let mut out = Drained::default();
        let mut sizes: BTreeMap<i32, usize> = BTreeMap::new();
        let linger = self.config.linger;
        let flushing = self.flushing;
        for (tp, queue) in self.queues.iter_mut() {
            match queue.ready_at(linger, flushing) {
                Some(at) if at <= now => {}
                _ => continue,
            }
            let Some(node) = leader_of(tp) else {
                queue.retry_at = Some(now + self.config.no_leader_backoff);
                out.no_leader.push(tp.clone());
                continue;
            };
            let Some(front) = queue.batches.front_mut() else {
                continue;
            };
            let size = match front.encode(self.identity, &mut self.sequences) {
                Ok(bytes) => bytes.len(),
                Err(e) => {
                    if let Some(batch) = queue.batches.pop_front() {
                        self.records -= batch.records.len();
                        out.failed.push((batch, e));
                    }
                    continue;
                }
            };
            let used = sizes.entry(node).or_insert(0);
            if *used > 0 && *used + size > self.config.max_request_size {
                continue;
            }
            *used += size;
            if let Some(batch) = queue.batches.pop_front() {
                self.records -= batch.records.len();
                queue.in_flight = true;
                queue.retry_at = None;
                out.by_node.entry(node).or_default().push(batch);
            }
        }
        self.queues
            .retain(|_, q| q.in_flight || !q.batches.is_empty());
        out
    }

    /// The answer for a partition's in-flight batch arrived and was handled
    /// (success or final failure): the partition may send its next batch.
    pub fn complete(&mut self, tp: &TopicPartition) {
        if let Some(queue) = self.queues.get_mut(tp) {
            queue.in_flight = false;
            if queue.batches.is_empty() {
                self.queues.remove(tp);
            }
        }
    }

    /// Puts an in-flight batch back at the front of its queue, to be sent
    /// again at `retry_at` or later.
    pub fn retry(&mut self, mut batch: ProducerBatch<T>, retry_at: Instant) {
        batch.attempts = batch.attempts.saturating_add(1);
        self.records += batch.records.len();
        let queue = self
            .queues
            .entry(batch.topic_partition.clone())
            .or_insert_with(PartitionQueue::new);
        queue.in_flight = false;
        queue.retry_at = Some(retry_at);
        queue.batches.push_front(batch);
    }

    /// Splits a batch the broker refused as too large (MESSAGE_TOO_LARGE,
    /// RECORD_LIST_TOO_LARGE) into two halves by record count and puts both
    /// back at the front of the queue, in order, to be sent at `retry_at`
    /// or later (each half is sent alone; a half still too large is split
    /// again). The halves keep the batch's creation time, so the delivery
    /// deadline does not move.
    ///
    /// Gives the batch back unchanged when it holds a single record (nothing
    /// to split) or its encoded bytes cannot be read back.
    pub fn split(
        &mut self,
        batch: ProducerBatch<T>,
        retry_at: Instant,
    ) -> Result<(), Box<ProducerBatch<T>>> {
        let n = batch.records.len();
        if n < 2 {
            return Err(Box::new(batch));
        }
        let Some(halves) = self.rebuild_halves(&batch) else {
            return Err(Box::new(batch));
        };
        let ProducerBatch {
            topic_partition,
            mut records,
            created_at,
            attempts,
            stamp,
            ..
        } = batch;
        // The broker refused the whole batch: its sequence numbers were not
        // used, and the halves take them again.
        if let (Some(st), Some(id)) = (stamp, self.identity) {
            if st.producer_id == id.producer_id && st.producer_epoch == id.producer_epoch {
                self.sequences
                    .insert(topic_partition.clone(), st.base_sequence);
            }
        }
        let second_records = records.split_off(n / 2);
        let [first_builder, second_builder] = halves;
        let mut make = |builder, records| {
            let seq = self.next_seq;
            self.next_seq += 1;
            ProducerBatch {
                topic_partition: topic_partition.clone(),
                seq,
                builder,
                encoded: None,
                records,
                created_at,
                attempts: attempts.saturating_add(1),
                full: true,
                stamp: None,
            }
        };
        let first = make(first_builder, records);
        let second = make(second_builder, second_records);
        self.records += n;
        let queue = self
            .queues
            .entry(topic_partition.clone())
            .or_insert_with(PartitionQueue::new);
        queue.in_flight = false;
        queue.retry_at = Some(retry_at);
        queue.batches.push_front(second);
        queue.batches.push_front(first);
        Ok(())
    }

    /// Reads an encoded batch back into two builders holding its first and
    /// second half.
    fn rebuild_halves(&self, batch: &ProducerBatch<T>) -> Option<[RecordBatchBuilder; 2]> {
        let n = batch.records.len();
        let parsed = RecordBatch::parse(batch.encoded.clone()?).ok()?;
        let decoded = parsed.decode(&DecodeLimits::default()).ok()?;
        let mut halves = [
            RecordBatchBuilder::new(0).compression(self.config.compression),
            RecordBatchBuilder::new(0).compression(self.config.compression),
        ];
        let mut count = 0;
        for record in decoded.records() {
            let record = record.ok()?;
            let headers: Vec<Header<'_>> = record.headers().collect();
            let half = usize::from(count >= n / 2);
            halves[half]
                .append(record.timestamp(), record.key(), record.value(), &headers)
                .ok()?;
            count += 1;
        }
        (count == n).then_some(halves)
    }

    /// Takes out every queued batch created `delivery.timeout.ms` or longer
    /// before `now` (batches in flight are not in the queues).
    pub fn expire(&mut self, now: Instant) -> Vec<ProducerBatch<T>> {
        let timeout = self.config.delivery_timeout;
        let mut expired = Vec::new();
        for queue in self.queues.values_mut() {
            // Batches are in creation order, except that a retried batch
            // returns to the front; it is also the oldest.
            while queue
                .batches
                .front()
                .is_some_and(|b| b.created_at + timeout <= now)
            {
                if let Some(batch) = queue.batches.pop_front() {
                    expired.push(batch);
                }
            }
        }
        for batch in &expired {
            self.records -= batch.records.len();
        }
        self.queues
            .retain(|_, q| q.in_flight || !q.batches.is_empty());
        expired
    }

    /// Takes every queued batch out (to fail them all).
    pub fn take_all(&mut self) -> Vec<ProducerBatch<T>> {
        let mut all = Vec::new();
        for queue in self.queues.values_mut() {
            all.extend(queue.batches.drain(..));
        }
        self.records = 0;
        self.queues.retain(|_, q| q.in_flight);
        all
    }

    /// The earliest instant at which a queued batch expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter_map(|q| q.batches.front())
            .map(|b| b.created_at + self.config.delivery_timeout)
            .min()
    }

    /// The earliest instant at which [`drain`](Self::drain) or
    /// [`expire`](Self::expire) has something to do; `None` when nothing is
    /// queued.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| {
            next = Some(next.map_or(at, |n| n.min(at)));
        };
        for queue in self.queues.values() {
            if let Some(at) = queue.ready_at(self.config.linger, self.flushing) {
                consider(at);
            }
            if let Some(front) = queue.batches.front() {
                consider(front.created_at + self.config.delivery_timeout);
            }
        }
        next
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kafee_protocol::records::{DecodeLimits, RecordBatch};
    use proptest::prelude::*;

    fn config() -> AccumulatorConfig {
        AccumulatorConfig {
            linger: Duration::from_millis(5),
            batch_size: 1000,
            max_request_size: 4000,
            compression: Compression::None,
            delivery_timeout: Duration::from_secs(10),
            no_leader_backoff: Duration::from_millis(100),
        }
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn add(
        acc: &mut ProduceAccumulator<u32>,
        p: i32,
        value: &[u8],
        id: u32,
        now: Instant,
    ) -> Appended {
        acc.append(
            &tp(p),
            1_000 + i64::from(id),
            None,
            Some(value),
            &[],
            id,
            now,
        )
        .unwrap()
    }

    fn leader(node: i32) -> impl Fn(&TopicPartition) -> Option<i32> {
        move |_| Some(node)
    }

    #[test]
    fn batch_waits_for_linger_then_drains() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        let a = add(&mut acc, 0, b"x", 1, t0);
        let b = add(&mut acc, 0, b"y", 2, t0 + Duration::from_millis(2));
        assert!(a.new_batch && !b.new_batch);
        assert_eq!(a.batch_seq, b.batch_seq);
        assert_eq!(b.index, 1);
        assert_eq!(acc.next_wakeup(), Some(t0 + Duration::from_millis(5)));
        assert!(acc
            .drain(t0 + Duration::from_millis(4), leader(1))
            .by_node
            .is_empty());
        let drained = acc.drain(t0 + Duration::from_millis(5), leader(1));
        let batches = &drained.by_node[&1];
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].records().len(), 2);
        assert!(acc.is_empty());
        assert!(acc.is_in_flight(&tp(0)));
        // The encoded batch holds both records at offsets 0 and 1.
        let batch = RecordBatch::parse(batches[0].encoded().unwrap().clone()).unwrap();
        let decoded = batch.decode(&DecodeLimits::default()).unwrap();
        let values: Vec<_> = decoded
            .records()
            .map(|r| r.unwrap().value().unwrap().to_vec())
            .collect();
        assert_eq!(values, vec![b"x".to_vec(), b"y".to_vec()]);
    }

    #[test]
    fn full_batch_is_ready_before_linger_and_next_record_opens_a_new_one() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        let big = vec![7u8; 600];
        let a = add(&mut acc, 0, &big, 1, t0);
        let b = add(&mut acc, 0, &big, 2, t0);
        assert!(b.new_batch);
        assert_ne!(a.batch_seq, b.batch_seq);
        assert_eq!(acc.open_batch(&tp(0)), Some(b.batch_seq));
        // The first batch is full (a second one exists): ready at once.
        let drained = acc.drain(t0, leader(1));
        assert_eq!(drained.by_node[&1].len(), 1);
        assert_eq!(drained.by_node[&1][0].seq(), a.batch_seq);
        // One batch in flight per partition: the second waits.
        let again = acc.drain(t0 + Duration::from_secs(1), leader(1));
        assert!(again.by_node.is_empty());
        acc.complete(&tp(0));
        let last = acc.drain(t0 + Duration::from_secs(1), leader(1));
        assert_eq!(last.by_node[&1][0].seq(), b.batch_seq);
    }

    #[test]
    fn record_above_batch_size_gets_a_batch_of_its_own() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        add(&mut acc, 0, b"small", 1, t0);
        let big = add(&mut acc, 0, &vec![1u8; 3000], 2, t0);
        assert!(big.new_batch && big.index == 0);
        let after = add(&mut acc, 0, b"small", 3, t0);
        assert!(after.new_batch);
    }

    #[test]
    fn batches_of_one_leader_share_a_request_up_to_max_request_size() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        for p in 0..6 {
            add(&mut acc, p, &vec![0u8; 900], p as u32, t0);
        }
        let later = t0 + Duration::from_millis(5);
        // Partitions 0..3 on node 1, 3..6 on node 2.
        let drained = acc.drain(later, |tp| Some(if tp.partition < 3 { 1 } else { 2 }));
        assert_eq!(drained.by_node[&1].len(), 3);
        assert_eq!(drained.by_node[&2].len(), 3);
        // Five batches of ~960 bytes against a 4000-byte request: four fit.
        let mut acc = ProduceAccumulator::new(config());
        for p in 0..5 {
            add(&mut acc, p, &vec![0u8; 900], p as u32, t0);
        }
        let drained = acc.drain(later, leader(1));
        assert_eq!(drained.by_node[&1].len(), 4);
        let rest = acc.drain(later, leader(1));
        assert_eq!(rest.by_node[&1].len(), 1);
    }

    #[test]
    fn partition_without_leader_is_reported_and_backs_off() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        add(&mut acc, 0, b"x", 1, t0);
        let later = t0 + Duration::from_millis(5);
        let drained = acc.drain(later, |_| None);
        assert_eq!(drained.no_leader, vec![tp(0)]);
        assert_eq!(acc.next_wakeup(), Some(later + Duration::from_millis(100)));
        assert!(acc
            .drain(later + Duration::from_millis(50), leader(1))
            .by_node
            .is_empty());
        assert_eq!(
            acc.drain(later + Duration::from_millis(100), leader(1))
                .by_node[&1]
                .len(),
            1
        );
    }

    #[test]
    fn retried_batch_goes_first_after_its_backoff_and_keeps_its_bytes() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        add(&mut acc, 0, b"a", 1, t0);
        let first = acc
            .drain(t0 + Duration::from_millis(5), leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        let bytes = first.encoded().unwrap().clone();
        add(&mut acc, 0, b"b", 2, t0 + Duration::from_millis(6));
        let retry_at = t0 + Duration::from_millis(200);
        acc.retry(first, retry_at);
        assert_eq!(acc.queued_records(), 2);
        assert_eq!(acc.next_wakeup(), Some(retry_at));
        assert!(acc
            .drain(t0 + Duration::from_millis(199), leader(1))
            .by_node
            .is_empty());
        let again = acc.drain(retry_at, leader(1)).by_node.remove(&1).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts(), 1);
        assert_eq!(again[0].encoded().unwrap(), &bytes);
        assert_eq!(again[0].records()[0].handle, 1);
    }

    #[test]
    fn flushing_ignores_linger() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        add(&mut acc, 0, b"a", 1, t0);
        assert!(acc.drain(t0, leader(1)).by_node.is_empty());
        acc.set_flushing(true);
        assert_eq!(acc.next_wakeup(), Some(t0));
        assert_eq!(acc.drain(t0, leader(1)).by_node[&1].len(), 1);
    }

    #[test]
    fn queued_batches_expire_after_the_delivery_timeout() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        add(&mut acc, 0, b"a", 1, t0);
        add(&mut acc, 1, b"b", 2, t0 + Duration::from_secs(1));
        assert!(acc.expire(t0 + Duration::from_millis(9_999)).is_empty());
        let expired = acc.expire(t0 + Duration::from_secs(10));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].topic_partition(), &tp(0));
        assert_eq!(acc.queued_records(), 1);
    }

    #[test]
    fn encoding_error_returns_the_handle_and_changes_nothing() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        add(&mut acc, 0, b"a", 1, t0);
        // A timestamp delta that overflows i64 is refused by the builder.
        let (e, handle) = acc
            .append(&tp(0), i64::MIN, None, Some(b"x"), &[], 9, t0)
            .unwrap_err();
        assert!(matches!(e, EncodeError::TimestampDeltaOverflow { .. }));
        assert_eq!(handle, 9);
        assert_eq!(acc.queued_records(), 1);
    }

    #[test]
    fn split_puts_both_halves_back_first_in_order_with_their_handles() {
        let t0 = Instant::now();
        let mut acc = ProduceAccumulator::new(config());
        for i in 0..5 {
            add(&mut acc, 0, format!("v{i}").as_bytes(), i, t0);
        }
        let batch = acc
            .drain(t0 + Duration::from_millis(5), leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        add(&mut acc, 0, b"later", 9, t0 + Duration::from_millis(6));
        let retry_at = t0 + Duration::from_millis(50);
        acc.split(batch, retry_at).unwrap();
        assert_eq!(acc.queued_records(), 6);
        let mut order = Vec::new();
        let mut values = Vec::new();
        for _ in 0..3 {
            let mut d = acc.drain(retry_at, leader(1)).by_node.remove(&1).unwrap();
            let b = d.pop().unwrap();
            let parsed = RecordBatch::parse(b.encoded().unwrap().clone()).unwrap();
            let decoded = parsed.decode(&DecodeLimits::default()).unwrap();
            for r in decoded.records() {
                let r = r.unwrap();
                values.push(r.value().unwrap().to_vec());
                assert_eq!(
                    r.timestamp(),
                    1_000 + i64::from(b.records()[r.offset() as usize].handle)
                );
            }
            acc.complete(b.topic_partition());
            order.extend(b.into_records().into_iter().map(|r| r.handle));
        }
        assert_eq!(order, vec![0, 1, 2, 3, 4, 9]);
        assert_eq!(
            values[..5],
            [
                b"v0".to_vec(),
                b"v1".to_vec(),
                b"v2".to_vec(),
                b"v3".to_vec(),
                b"v4".to_vec()
            ]
        );
        // A single record cannot be split.
        let one = acc.drain(retry_at, leader(1));
        assert!(one.by_node.is_empty());
        add(&mut acc, 1, b"x", 20, t0);
        let single = acc
            .drain(retry_at, leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        assert!(acc.split(single, retry_at).is_err());
    }

    fn stamp_of(batch: &ProducerBatch<u32>) -> (i64, i16, i32) {
        let parsed = RecordBatch::parse(batch.encoded().unwrap().clone()).unwrap();
        (
            parsed.producer_id(),
            parsed.producer_epoch(),
            parsed.base_sequence(),
        )
    }

    #[test]
    fn idempotent_batches_carry_gapless_sequences_and_retries_keep_theirs() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(5);
        let mut acc = ProduceAccumulator::new(config());
        let id = ProducerIdentity {
            producer_id: 7,
            producer_epoch: 2,
        };
        acc.set_identity(Some(id));
        for i in 0..3 {
            add(&mut acc, 0, b"a", i, t0);
        }
        let first = acc
            .drain(later, leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(stamp_of(&first), (7, 2, 0));
        assert_eq!(first.stamp().unwrap().base_sequence, 0);
        acc.complete(&tp(0));
        for i in 3..5 {
            add(&mut acc, 0, b"b", i, later);
        }
        let second = acc
            .drain(later + Duration::from_millis(5), leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(stamp_of(&second), (7, 2, 3));
        // A retry under the same identity resends the same bytes.
        let bytes = second.encoded().unwrap().clone();
        acc.retry(second, later);
        let again = acc
            .drain(later + Duration::from_millis(5), leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(again.encoded().unwrap(), &bytes);
        // Under a new identity the retried batch starts the sequence at 0.
        acc.set_identity(Some(ProducerIdentity {
            producer_id: 8,
            producer_epoch: 0,
        }));
        acc.retry(again, later);
        let restamped = acc
            .drain(later + Duration::from_millis(5), leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(stamp_of(&restamped), (8, 0, 0));
        // Splitting gives the refused batch's sequences to its halves.
        acc.split(restamped, later).unwrap();
        let half = acc
            .drain(later + Duration::from_millis(5), leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(stamp_of(&half), (8, 0, 0));
        assert_eq!(half.records().len(), 1);
        acc.complete(&tp(0));
        let other = acc
            .drain(later + Duration::from_millis(5), leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(stamp_of(&other), (8, 0, 1));
        // Without identity, batches carry no producer id.
        acc.set_identity(None);
        acc.complete(&tp(0));
        add(&mut acc, 0, b"c", 9, later);
        let plain = acc
            .drain(later + Duration::from_millis(10), leader(1))
            .by_node
            .remove(&1)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(stamp_of(&plain), (-1, -1, -1));
        assert_eq!(plain.stamp(), None);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(next_sequence(0, 5), 5);
        assert_eq!(next_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
    }

    proptest! {
        /// Whatever the arrival pattern, every record comes out exactly once,
        /// in append order per partition, with batches within batch.size
        /// unless they hold a single record.
        #[test]
        fn every_record_drains_once_in_order(
            ops in proptest::collection::vec((0i32..4, 0usize..700, 0u64..20), 1..200),
        ) {
            let t0 = Instant::now();
            let mut acc = ProduceAccumulator::new(config());
            acc.set_identity(Some(ProducerIdentity { producer_id: 3, producer_epoch: 0 }));
            let mut now = t0;
            let mut seen: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
            let mut collect = |drained: Drained<u32>, acc: &mut ProduceAccumulator<u32>| -> Result<(), TestCaseError> {
                for batches in drained.by_node.into_values() {
                    for b in batches {
                        prop_assert!(b.records().len() == 1 || b.size() <= 1000);
                        let p = b.topic_partition().partition;
                        // Sequence numbers continue where the partition's
                        // previous batch ended.
                        let already = seen.get(&p).map_or(0, Vec::len) as i32;
                        prop_assert_eq!(b.stamp().unwrap().base_sequence, already);
                        prop_assert_eq!(stamp_of(&b), (3, 0, already));
                        acc.complete(b.topic_partition());
                        seen.entry(p).or_default().extend(b.into_records().into_iter().map(|r| r.handle));
                    }
                }
                Ok(())
            };
            for (id, (p, len, dt)) in ops.iter().enumerate() {
                now += Duration::from_millis(*dt);
                add(&mut acc, *p, &vec![0u8; *len], id as u32, now);
                let d = acc.drain(now, leader(1));
                collect(d, &mut acc)?;
            }
            acc.set_flushing(true);
            while !acc.is_empty() {
                let d = acc.drain(now, leader(1));
                collect(d, &mut acc)?;
            }
            let mut total = 0;
            for (p, ids) in &seen {
                let expected: Vec<u32> = ops.iter().enumerate()
                    .filter(|(_, (q, _, _))| q == p).map(|(i, _)| i as u32).collect();
                prop_assert_eq!(ids, &expected);
                total += ids.len();
            }
            prop_assert_eq!(total, ops.len());
        }
    }
}
