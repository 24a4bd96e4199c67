//! Per-partition batch accumulator (sans-IO).
//!
//! The fetcher pushes a partition's records in offset order as [`Entry`]
//! values; the accumulator closes a batch when the first of these triggers
//! fires:
//!
//! * `size` messages are buffered ([`Trigger::Size`]);
//! * the buffered wire bytes reach `max_bytes`, or the next record would take
//!   them past it ([`Trigger::MaxBytes`]); a single record larger than
//!   `max_bytes` forms a batch of its own at once ([`Trigger::Oversized`]),
//!   it is never dropped and never waits;
//! * `timeout` has elapsed ([`Trigger::Timeout`]), measured from the batch's
//!   first message ([`TimeoutFrom::FirstMessage`], the default) or from the
//!   previous flush of the partition ([`TimeoutFrom::LastFlush`]).
//!
//! The timeout is a real timer: the driver sleeps until [`Accumulator::next_deadline`]
//! and then calls [`Accumulator::poll`], so a batch on an idle partition is
//! handed out on time without any further record.
//!
//! With `respect_wire_batches` a batch closes only on a producer record-batch
//! boundary: a wire batch is never split between two handler batches, so a
//! batch may exceed `size` or `max_bytes` by up to one wire batch. The commit
//! offset of a batch whose last record closes a wire batch is that wire
//! batch's `base_offset + last_offset_delta + 1`, which steps over records
//! removed by compaction and over the transaction marker that may follow.
//!
//! # Back-pressure bound
//!
//! [`Accumulator::should_pause`] is true as soon as one closed batch waits to
//! be taken. A driver that stops issuing fetches for a paused partition keeps
//! at most *one closed batch plus one accumulating batch*, plus whatever the
//! fetch response that was already in hand still held (at most the partition's
//! fetch max bytes, `max.partition.fetch.bytes`). The accumulator never drops
//! records to enforce the bound: it reports, the driver pauses.
use std::collections::VecDeque;
use std::mem;
use std::time::Duration;

use tokio::time::Instant;

pub use crate::config::TimeoutFrom;

/// One fetched record as the accumulator sees it.
///
/// `T` is the payload handle: a view into the fetched bytes, an index into a
/// decoded fetch response, or anything the driver needs to build the handler's
/// `Message` later. The accumulator never looks inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    /// The record's offset (`base_offset + offset_delta`).
    pub offset: i64,
    /// The record's size on the wire, headers included, in bytes.
    pub wire_size: usize,
    /// The last offset of the producer record batch holding this record:
    /// `base_offset + last_offset_delta`.
    pub wire_batch_last_offset: i64,
    /// True when this is the last record the fetch yielded from its producer
    /// record batch (a wire-batch boundary follows it).
    pub last_in_wire_batch: bool,
    /// The payload handle.
    pub payload: T,
}

/// Why a batch was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `size` messages were buffered.
    Size,
    /// `max_bytes` wire bytes were buffered, or the next record would have
    /// taken the batch past `max_bytes`.
    MaxBytes,
    /// A single record larger than `max_bytes` forms its own batch.
    Oversized,
    /// The batch timeout elapsed.
    Timeout,
    /// An explicit flush (shutdown, revoke).
    Flush,
}

/// Trigger settings for one partition's accumulator. Built from a
/// [`crate::BatchConfig`] with [`crate::BatchConfig::accumulator_settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccumulatorSettings {
    /// Messages per batch; 1 is single-message mode.
    pub size: usize,
    /// Wire bytes per batch.
    pub max_bytes: usize,
    /// Batch timeout.
    pub timeout: Duration,
    /// What the timeout is measured from.
    pub timeout_from: TimeoutFrom,
    /// Close batches only on producer record-batch boundaries.
    pub respect_wire_batches: bool,
}

/// A closed batch, ready for the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyBatch<T> {
    /// The records, in offset order. Never empty.
    pub entries: Vec<Entry<T>>,
    /// Sum of the entries' wire sizes.
    pub wire_bytes: usize,
    /// The offset to commit once the whole batch is handled: the last record's
    /// offset + 1, or past its wire batch and any record-less offsets that
    /// followed it (control batches, compaction gaps).
    pub next_offset: i64,
    /// What closed the batch.
    pub trigger: Trigger,
    /// When the batch's first message was pushed.
    pub opened_at: Instant,
    /// When the batch was closed.
    pub closed_at: Instant,
}

impl<T> ReadyBatch<T> {
    /// Offset of the first record.
    pub fn first_offset(&self) -> i64 {
        self.entries.first().map_or(self.next_offset, |e| e.offset)
    }
    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.entries
            .last()
            .map_or(self.next_offset - 1, |e| e.offset)
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when the batch holds no record (never the case for a batch the
    /// accumulator hands out).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A record pushed out of order or with inconsistent offsets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccumulatorError {
    /// Offsets must strictly increase within a partition.
    #[error("record at offset {offset} pushed after offset {previous}: offsets must increase")]
    OffsetNotIncreasing {
        /// The offending offset.
        offset: i64,
        /// The highest offset already pushed (or skipped).
        previous: i64,
    },
    /// A record claims a wire batch that ends before it.
    #[error("record at offset {offset} claims a wire batch ending at {wire_batch_last_offset}")]
    WireBatchEndsBeforeRecord {
        /// The record's offset.
        offset: i64,
        /// The claimed `base_offset + last_offset_delta`.
        wire_batch_last_offset: i64,
    },
    /// A record follows an earlier record of the same wire batch, but that
    /// earlier record was marked as the last of its wire batch, or the record
    /// claims a different wire batch end without a boundary in between.
    #[error("record at offset {offset} is inside wire batch ending at {open_wire_batch_last_offset} but claims {wire_batch_last_offset}")]
    WireBatchMismatch {
        /// The record's offset.
        offset: i64,
        /// The wire batch end it claims.
        wire_batch_last_offset: i64,
        /// The wire batch end of the previous record, still open.
        open_wire_batch_last_offset: i64,
    },
}

/// Per-partition batch accumulator. See the [module docs](self).
#[derive(Debug)]
pub struct Accumulator<T> {
    settings: AccumulatorSettings,
    open: Vec<Entry<T>>,
    open_bytes: usize,
    open_started: Option<Instant>,
    /// Offsets below this carry no record (control batches, gaps) and may be
    /// folded into the open batch's commit offset.
    open_next_floor: i64,
    /// Number of open entries up to and including the last wire-batch boundary.
    open_boundary_len: usize,
    open_boundary_bytes: usize,
    ready: VecDeque<ReadyBatch<T>>,
    ready_bytes: usize,
    ready_messages: usize,
    last_flush: Instant,
    /// Highest offset pushed or skipped.
    last_offset: Option<i64>,
}

impl<T> Accumulator<T> {
    /// A new, empty accumulator. `now` starts the "time since the previous
    /// flush" clock of [`TimeoutFrom::LastFlush`].
    pub fn new(settings: AccumulatorSettings, now: Instant) -> Self {
        let settings = AccumulatorSettings {
            size: settings.size.max(1),
            max_bytes: settings.max_bytes.max(1),
            ..settings
        };
        Self {
            open: Vec::with_capacity(open_capacity(&settings)),
            settings,
            open_bytes: 0,
            open_started: None,
            open_next_floor: i64::MIN,
            open_boundary_len: 0,
            open_boundary_bytes: 0,
            ready: VecDeque::new(),
            ready_bytes: 0,
            ready_messages: 0,
            last_flush: now,
            last_offset: None,
        }
    }

    /// The trigger settings.
    pub fn settings(&self) -> &AccumulatorSettings {
        &self.settings
    }

    /// Pushes the next record of the partition. Offsets must strictly
    /// increase; a record is never dropped. May close one or two batches
    /// (the open one when the record does not fit, and the record's own when
    /// it is oversized or completes a trigger).
    pub fn push(&mut self, entry: Entry<T>, now: Instant) -> Result<(), AccumulatorError> {
        if let Some(previous) = self.last_offset {
            if entry.offset <= previous {
                return Err(AccumulatorError::OffsetNotIncreasing {
                    offset: entry.offset,
                    previous,
                });
            }
        }
        if entry.wire_batch_last_offset < entry.offset {
            return Err(AccumulatorError::WireBatchEndsBeforeRecord {
                offset: entry.offset,
                wire_batch_last_offset: entry.wire_batch_last_offset,
            });
        }
        if let Some(last) = self.open.last() {
            if !last.last_in_wire_batch
                && last.wire_batch_last_offset != entry.wire_batch_last_offset
            {
                return Err(AccumulatorError::WireBatchMismatch {
                    offset: entry.offset,
                    wire_batch_last_offset: entry.wire_batch_last_offset,
                    open_wire_batch_last_offset: last.wire_batch_last_offset,
                });
            }
        }
        self.last_offset = Some(entry.offset);
        let size = entry.wire_size;
        let boundary = entry.last_in_wire_batch;

        // Close the open batch first when this record would take it past max_bytes.
        // With respect_wire_batches only when the open batch ends at a boundary.
        let at_boundary =
            !self.settings.respect_wire_batches || self.open_boundary_len == self.open.len();
        if !self.open.is_empty()
            && at_boundary
            && self.open_bytes.saturating_add(size) > self.settings.max_bytes
        {
            self.close(Trigger::MaxBytes, now);
        }

        if self.open.is_empty() {
            self.open_started = Some(now);
        }
        self.open.push(entry);
        self.open_bytes = self.open_bytes.saturating_add(size);
        if boundary {
            self.open_boundary_len = self.open.len();
            self.open_boundary_bytes = self.open_bytes;
        }

        let may_close = !self.settings.respect_wire_batches || boundary;
        if may_close {
            if self.open.len() == 1 && size > self.settings.max_bytes {
                self.close(Trigger::Oversized, now);
            } else if self.open.len() >= self.settings.size {
                self.close(Trigger::Size, now);
            } else if self.open_bytes >= self.settings.max_bytes {
                self.close(Trigger::MaxBytes, now);
            }
        }
        Ok(())
    }

    /// Declares that the offsets below `next_offset` that were not pushed carry
    /// no record (a control batch, an empty batch, a compaction gap), so a
    /// batch's commit offset may step over them.
    ///
    /// Returns `Some(next_offset)` when nothing is buffered to fold the gap
    /// into: the driver then advances its watermark directly
    /// ([`crate::Watermark::skip_to`]). Returns `None` when the gap was folded
    /// into the open or the last closed batch, or when it is not ahead of what
    /// was already pushed.
    pub fn skip_to(&mut self, next_offset: i64) -> Option<i64> {
        if let Some(previous) = self.last_offset {
            if next_offset <= previous.saturating_add(1) {
                return None;
            }
        }
        self.last_offset = Some(next_offset - 1);
        if !self.open.is_empty() {
            self.open_next_floor = self.open_next_floor.max(next_offset);
            // Record-less offsets after the last record mark a boundary too:
            // only records of the next fetch can follow.
            if let Some(last) = self.open.last_mut() {
                last.last_in_wire_batch = true;
                last.wire_batch_last_offset = last.wire_batch_last_offset.max(next_offset - 1);
            }
            self.open_boundary_len = self.open.len();
            self.open_boundary_bytes = self.open_bytes;
            None
        } else if let Some(back) = self.ready.back_mut() {
            back.next_offset = back.next_offset.max(next_offset);
            None
        } else {
            Some(next_offset)
        }
    }

    /// When the driver must call [`poll`](Self::poll) next for the timeout to
    /// fire; `None` when no timer is needed (nothing open, or, with
    /// `respect_wire_batches`, no wire-batch boundary inside the open batch yet:
    /// the next push brings one).
    pub fn next_deadline(&self) -> Option<Instant> {
        let started = self.open_started?;
        if self.open.is_empty() {
            return None;
        }
        if self.settings.respect_wire_batches && self.open_boundary_len == 0 {
            return None;
        }
        let from = match self.settings.timeout_from {
            TimeoutFrom::FirstMessage => started,
            TimeoutFrom::LastFlush => self.last_flush,
        };
        Some(from + self.settings.timeout)
    }

    /// Fires the timeout if it is due, then hands out the oldest closed batch.
    pub fn poll(&mut self, now: Instant) -> Option<ReadyBatch<T>> {
        if let Some(deadline) = self.next_deadline() {
            if now >= deadline {
                self.close_on_timeout(now);
            }
        }
        let batch = self.ready.pop_front()?;
        self.ready_bytes -= batch.wire_bytes;
        self.ready_messages -= batch.entries.len();
        Some(batch)
    }

    /// Closes the open batch whatever its size and boundaries (shutdown,
    /// revoke with work to finish). Closed batches are then taken with
    /// [`poll`](Self::poll).
    pub fn flush(&mut self, now: Instant) {
        if !self.open.is_empty() {
            self.close(Trigger::Flush, now);
        }
    }

    /// Drops everything buffered (seek, retry from an earlier offset, revoke,
    /// lost partition). Returns the number of records dropped; none of them
    /// was handed out, so none was committed: they will be fetched again.
    pub fn clear(&mut self) -> usize {
        let dropped = self.open.len() + self.ready_messages;
        self.open.clear();
        self.open_bytes = 0;
        self.open_started = None;
        self.open_next_floor = i64::MIN;
        self.open_boundary_len = 0;
        self.open_boundary_bytes = 0;
        self.ready.clear();
        self.ready_bytes = 0;
        self.ready_messages = 0;
        self.last_offset = None;
        dropped
    }

    /// True while at least one closed batch waits to be taken: the driver
    /// should stop fetching for this partition (see the module docs for the
    /// resulting bound).
    pub fn should_pause(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Number of closed batches waiting.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Number of records in the open batch.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    /// Wire bytes in the open batch.
    pub fn open_bytes(&self) -> usize {
        self.open_bytes
    }

    /// Records buffered in total (open and closed).
    pub fn buffered_messages(&self) -> usize {
        self.open.len() + self.ready_messages
    }

    /// Wire bytes buffered in total (open and closed).
    pub fn buffered_bytes(&self) -> usize {
        self.open_bytes + self.ready_bytes
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.ready.is_empty()
    }

    fn close_on_timeout(&mut self, now: Instant) {
        if !self.settings.respect_wire_batches || self.open_boundary_len == self.open.len() {
            self.close(Trigger::Timeout, now);
        } else if self.open_boundary_len > 0 {
            // Hand out the whole wire batches; the unfinished one stays open.
            let rest = self.open.split_off(self.open_boundary_len);
            let rest_bytes = self.open_bytes - self.open_boundary_bytes;
            self.open_bytes = self.open_boundary_bytes;
            let started = self.open_started;
            self.close(Trigger::Timeout, now);
            self.open = rest;
            self.open_bytes = rest_bytes;
            self.open_started = started;
        }
    }

    fn close(&mut self, trigger: Trigger, now: Instant) {
        let capacity = open_capacity(&self.settings);
        let entries = mem::replace(&mut self.open, Vec::with_capacity(capacity));
        let wire_bytes = mem::take(&mut self.open_bytes);
        let opened_at = self.open_started.take().unwrap_or(now);
        let floor = mem::replace(&mut self.open_next_floor, i64::MIN);
        self.open_boundary_len = 0;
        self.open_boundary_bytes = 0;
        self.last_flush = now;
        let Some(last) = entries.last() else {
            return;
        };
        let past_last = if last.last_in_wire_batch {
            last.wire_batch_last_offset.saturating_add(1)
        } else {
            last.offset.saturating_add(1)
        };
        let next_offset = past_last.max(floor);
        self.ready_bytes += wire_bytes;
        self.ready_messages += entries.len();
        self.ready.push_back(ReadyBatch {
            entries,
            wire_bytes,
            next_offset,
            trigger,
            opened_at,
            closed_at: now,
        });
    }
}

fn open_capacity(settings: &AccumulatorSettings) -> usize {
    settings.size.min(4096)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings(size: usize, max_bytes: usize, timeout_ms: u64) -> AccumulatorSettings {
        AccumulatorSettings {
            size,
            max_bytes,
            timeout: Duration::from_millis(timeout_ms),
            timeout_from: TimeoutFrom::FirstMessage,
            respect_wire_batches: false,
        }
    }

    /// A record alone in its wire batch.
    fn solo(offset: i64, wire_size: usize) -> Entry<i64> {
        Entry {
            offset,
            wire_size,
            wire_batch_last_offset: offset,
            last_in_wire_batch: true,
            payload: offset,
        }
    }

    /// A record of the wire batch `[.., end]`.
    fn in_wire(offset: i64, end: i64, last: bool) -> Entry<i64> {
        Entry {
            offset,
            wire_size: 10,
            wire_batch_last_offset: end,
            last_in_wire_batch: last,
            payload: offset,
        }
    }

    fn offsets(b: &ReadyBatch<i64>) -> Vec<i64> {
        b.entries.iter().map(|e| e.offset).collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn size_trigger_closes_at_exactly_size_messages() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(3, 1 << 20, 1000), t0);
        for o in 0..2 {
            acc.push(solo(o, 10), t0).unwrap();
        }
        assert!(acc.poll(t0).is_none());
        acc.push(solo(2, 10), t0).unwrap();
        let b = acc.poll(t0).unwrap();
        assert_eq!(offsets(&b), vec![0, 1, 2]);
        assert_eq!(b.trigger, Trigger::Size);
        assert_eq!(b.next_offset, 3);
        assert_eq!(b.wire_bytes, 30);
        assert!(acc.is_empty());
    }

    #[test]
    fn max_bytes_closes_before_the_record_that_would_overflow() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(100, 25, 1000), t0);
        acc.push(solo(0, 10), t0).unwrap();
        acc.push(solo(1, 10), t0).unwrap();
        acc.push(solo(2, 10), t0).unwrap();
        let b = acc.poll(t0).unwrap();
        assert_eq!(offsets(&b), vec![0, 1]);
        assert_eq!(b.trigger, Trigger::MaxBytes);
        assert_eq!(b.wire_bytes, 20);
        assert_eq!(acc.open_len(), 1);
    }

    #[test]
    fn max_bytes_reached_exactly_closes_the_batch() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(100, 20, 1000), t0);
        acc.push(solo(0, 10), t0).unwrap();
        acc.push(solo(1, 10), t0).unwrap();
        let b = acc.poll(t0).unwrap();
        assert_eq!(b.trigger, Trigger::MaxBytes);
        assert_eq!(offsets(&b), vec![0, 1]);
    }

    #[test]
    fn oversized_record_forms_its_own_batch_at_once() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(100, 25, 1000), t0);
        acc.push(solo(0, 10), t0).unwrap();
        acc.push(solo(1, 500), t0).unwrap();
        acc.push(solo(2, 10), t0).unwrap();
        let a = acc.poll(t0).unwrap();
        assert_eq!((offsets(&a), a.trigger), (vec![0], Trigger::MaxBytes));
        let b = acc.poll(t0).unwrap();
        assert_eq!((offsets(&b), b.trigger), (vec![1], Trigger::Oversized));
        assert_eq!(b.wire_bytes, 500);
        assert!(acc.poll(t0).is_none());
        assert_eq!(acc.open_len(), 1);
    }

    #[test]
    fn timeout_fires_from_first_message_without_further_records() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(100, 1 << 20, 500), t0);
        acc.push(solo(0, 10), t0 + ms(100)).unwrap();
        acc.push(solo(1, 10), t0 + ms(300)).unwrap();
        acc.push(solo(2, 10), t0 + ms(400)).unwrap();
        assert_eq!(acc.next_deadline(), Some(t0 + ms(600)));
        assert!(acc.poll(t0 + ms(599)).is_none());
        let b = acc.poll(t0 + ms(600)).unwrap();
        assert_eq!(b.trigger, Trigger::Timeout);
        assert_eq!(offsets(&b), vec![0, 1, 2]);
        assert_eq!(b.opened_at, t0 + ms(100));
        assert_eq!(acc.next_deadline(), None);
    }

    /// The idle-topic scenario on tokio's paused clock: 3 messages,
    /// size 100, timeout 500 ms; the driver's timer alone hands the batch out.
    #[tokio::test(start_paused = true)]
    async fn idle_partition_batch_is_handed_out_by_the_timer_alone() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(100, 1 << 20, 500), t0);
        for o in 0..3 {
            acc.push(solo(o, 150), Instant::now()).unwrap();
            tokio::time::advance(ms(10)).await;
        }
        let deadline = acc.next_deadline().unwrap();
        assert!(acc.poll(Instant::now()).is_none());
        tokio::time::sleep_until(deadline).await;
        let b = acc.poll(Instant::now()).unwrap();
        assert_eq!((b.len(), b.trigger), (3, Trigger::Timeout));
        assert_eq!(
            Instant::now() - t0,
            ms(500),
            "500 ms after the first message"
        );
    }

    #[test]
    fn timeout_from_last_flush_counts_from_the_previous_close() {
        let t0 = Instant::now();
        let mut s = settings(2, 1 << 20, 500);
        s.timeout_from = TimeoutFrom::LastFlush;
        let mut acc = Accumulator::new(s, t0);
        acc.push(solo(0, 10), t0 + ms(100)).unwrap();
        acc.push(solo(1, 10), t0 + ms(200)).unwrap(); // size closes at 200
        assert_eq!(acc.poll(t0 + ms(200)).unwrap().trigger, Trigger::Size);
        acc.push(solo(2, 10), t0 + ms(650)).unwrap();
        // 500 ms after the flush at 200, not after the message at 650.
        assert_eq!(acc.next_deadline(), Some(t0 + ms(700)));
        let b = acc.poll(t0 + ms(700)).unwrap();
        assert_eq!((offsets(&b), b.trigger), (vec![2], Trigger::Timeout));
    }

    #[test]
    fn timeout_from_last_flush_starts_at_creation() {
        let t0 = Instant::now();
        let mut s = settings(10, 1 << 20, 500);
        s.timeout_from = TimeoutFrom::LastFlush;
        let mut acc = Accumulator::new(s, t0);
        acc.push(solo(0, 10), t0 + ms(900)).unwrap();
        // Overdue already: the first poll hands it out.
        let b = acc.poll(t0 + ms(900)).unwrap();
        assert_eq!(b.trigger, Trigger::Timeout);
    }

    #[test]
    fn single_message_mode_is_size_one() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(1, 1 << 20, 1000), t0);
        for o in 0..3 {
            acc.push(solo(o, 10), t0).unwrap();
        }
        for o in 0..3 {
            let b = acc.poll(t0).unwrap();
            assert_eq!(offsets(&b), vec![o]);
            assert_eq!(b.trigger, Trigger::Size);
        }
    }

    #[test]
    fn offsets_must_increase() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(10, 1 << 20, 1000), t0);
        acc.push(solo(5, 10), t0).unwrap();
        let err = acc.push(solo(5, 10), t0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "record at offset 5 pushed after offset 5: offsets must increase"
        );
        assert_eq!(acc.open_len(), 1);
    }

    #[test]
    fn wire_batch_end_before_record_is_rejected() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(10, 1 << 20, 1000), t0);
        let err = acc.push(in_wire(5, 4, true), t0).unwrap_err();
        assert!(matches!(
            err,
            AccumulatorError::WireBatchEndsBeforeRecord { .. }
        ));
        acc.push(in_wire(6, 9, false), t0).unwrap();
        let err = acc.push(in_wire(7, 12, false), t0).unwrap_err();
        assert!(matches!(err, AccumulatorError::WireBatchMismatch { .. }));
    }

    #[test]
    fn commit_offset_steps_over_the_end_of_the_wire_batch() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(2, 1 << 20, 1000), t0);
        // Wire batch [10..=14] of which compaction left 10 and 12.
        acc.push(in_wire(10, 14, false), t0).unwrap();
        acc.push(in_wire(12, 14, true), t0).unwrap();
        let b = acc.poll(t0).unwrap();
        assert_eq!(b.next_offset, 15);
        assert_eq!(b.last_offset(), 12);
    }

    #[test]
    fn respect_wire_batches_never_splits_a_wire_batch() {
        let t0 = Instant::now();
        let mut s = settings(3, 1 << 20, 1000);
        s.respect_wire_batches = true;
        let mut acc = Accumulator::new(s, t0);
        // Wire batch [0..=1], then [2..=5] (a transaction marker at 6 follows).
        acc.push(in_wire(0, 1, false), t0).unwrap();
        acc.push(in_wire(1, 1, true), t0).unwrap();
        for o in 2..5 {
            acc.push(in_wire(o, 5, false), t0).unwrap();
        }
        assert!(acc.poll(t0).is_none(), "size 3 reached mid wire batch");
        acc.push(in_wire(5, 5, true), t0).unwrap();
        assert_eq!(acc.ready_len(), 1);
        // The commit marker at 6 is folded into the waiting batch.
        assert_eq!(acc.skip_to(7), None);
        let b = acc.poll(t0).unwrap();
        assert_eq!(offsets(&b), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(b.trigger, Trigger::Size);
        assert_eq!(b.next_offset, 7);
        // With nothing buffered the caller advances its watermark itself.
        assert_eq!(acc.skip_to(9), Some(9));
    }

    #[test]
    fn respect_wire_batches_closes_on_max_bytes_only_at_a_boundary() {
        let t0 = Instant::now();
        let mut s = settings(100, 25, 1000);
        s.respect_wire_batches = true;
        let mut acc = Accumulator::new(s, t0);
        acc.push(in_wire(0, 1, false), t0).unwrap();
        acc.push(in_wire(1, 1, true), t0).unwrap(); // 20 bytes, boundary
        acc.push(in_wire(2, 4, false), t0).unwrap(); // would be 30: close [0,1] first
        let a = acc.poll(t0).unwrap();
        assert_eq!((offsets(&a), a.trigger), (vec![0, 1], Trigger::MaxBytes));
        acc.push(in_wire(3, 4, false), t0).unwrap(); // 20, no boundary
        acc.push(in_wire(4, 4, true), t0).unwrap(); // 30 at a boundary: close
        let b = acc.poll(t0).unwrap();
        assert_eq!((offsets(&b), b.trigger), (vec![2, 3, 4], Trigger::MaxBytes));
        assert_eq!(b.next_offset, 5);
    }

    #[test]
    fn respect_wire_batches_timeout_hands_out_whole_wire_batches_only() {
        let t0 = Instant::now();
        let mut s = settings(100, 1 << 20, 500);
        s.respect_wire_batches = true;
        let mut acc = Accumulator::new(s, t0);
        acc.push(in_wire(0, 0, true), t0).unwrap();
        acc.push(in_wire(1, 3, false), t0).unwrap();
        let b = acc.poll(t0 + ms(500)).unwrap();
        assert_eq!((offsets(&b), b.trigger), (vec![0], Trigger::Timeout));
        assert_eq!(acc.open_len(), 1);
        // No boundary in the open batch: no timer needed until one arrives.
        assert_eq!(acc.next_deadline(), None);
        acc.push(in_wire(2, 3, false), t0 + ms(600)).unwrap();
        acc.push(in_wire(3, 3, true), t0 + ms(600)).unwrap();
        // The rest kept its first-message time, so it is overdue now.
        let b = acc.poll(t0 + ms(600)).unwrap();
        assert_eq!(offsets(&b), vec![1, 2, 3]);
    }

    #[test]
    fn skip_to_folds_record_less_offsets_into_the_open_batch() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(10, 1 << 20, 500), t0);
        acc.push(solo(0, 10), t0).unwrap();
        assert_eq!(acc.skip_to(5), None);
        let b = acc.poll(t0 + ms(500)).unwrap();
        assert_eq!(b.next_offset, 5);
        // Nothing buffered: the caller advances the watermark itself.
        assert_eq!(acc.skip_to(8), Some(8));
        // A gap behind what was pushed is not a gap.
        assert_eq!(acc.skip_to(3), None);
        acc.push(solo(8, 10), t0).unwrap();
        let err = acc.push(solo(7, 10), t0).unwrap_err();
        assert!(matches!(err, AccumulatorError::OffsetNotIncreasing { .. }));
    }

    #[test]
    fn skip_to_extends_the_last_closed_batch() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(1, 1 << 20, 500), t0);
        acc.push(solo(0, 10), t0).unwrap();
        assert_eq!(acc.skip_to(4), None);
        assert_eq!(acc.poll(t0).unwrap().next_offset, 4);
    }

    #[test]
    fn pause_while_a_closed_batch_waits() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(2, 1 << 20, 500), t0);
        acc.push(solo(0, 10), t0).unwrap();
        assert!(!acc.should_pause());
        acc.push(solo(1, 10), t0).unwrap();
        acc.push(solo(2, 10), t0).unwrap();
        assert!(acc.should_pause());
        assert_eq!(acc.buffered_messages(), 3);
        assert_eq!(acc.buffered_bytes(), 30);
        acc.poll(t0).unwrap();
        assert!(!acc.should_pause());
        assert_eq!(acc.buffered_messages(), 1);
    }

    #[test]
    fn flush_and_clear() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(settings(10, 1 << 20, 500), t0);
        acc.push(solo(0, 10), t0).unwrap();
        acc.flush(t0);
        assert_eq!(acc.poll(t0).unwrap().trigger, Trigger::Flush);
        acc.push(solo(1, 10), t0).unwrap();
        acc.push(solo(2, 10), t0).unwrap();
        assert_eq!(acc.clear(), 2);
        assert!(acc.is_empty());
        // After a clear (seek) earlier offsets may be pushed again.
        acc.push(solo(1, 10), t0).unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Push a wire batch of `n` records, each `size` bytes, whose records
        /// are spaced by `stride`, after a gap of `gap` offsets.
        Push {
            n: u8,
            size: u16,
            stride: u8,
            gap: u8,
        },
        /// Advance the clock.
        Tick(u16),
        /// Take every ready batch.
        Drain,
        /// Declare record-less offsets.
        Skip(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..6, 1u16..300, 1u8..3, 0u8..3)
                .prop_map(|(n, size, stride, gap)| Op::Push { n, size, stride, gap }),
            2 => (0u16..700).prop_map(Op::Tick),
            2 => Just(Op::Drain),
            1 => (1u8..4).prop_map(Op::Skip),
        ]
    }

    proptest! {
        /// The accumulator never drops or reorders a record, whatever the
        /// interleaving of pushes and timer ticks, and every batch respects
        /// its triggers.
        #[test]
        fn never_drops_or_reorders(
            size in 1usize..8,
            max_bytes in 1usize..1000,
            timeout_ms in 1u64..1000,
            last_flush in any::<bool>(),
            wire in any::<bool>(),
            ops in proptest::collection::vec(op(), 0..60),
        ) {
            let t0 = Instant::now();
            let s = AccumulatorSettings {
                size,
                max_bytes,
                timeout: ms(timeout_ms),
                timeout_from: if last_flush { TimeoutFrom::LastFlush } else { TimeoutFrom::FirstMessage },
                respect_wire_batches: wire,
            };
            let mut acc = Accumulator::new(s, t0);
            let mut now = t0;
            let mut pushed: Vec<i64> = Vec::new();
            let mut out: Vec<ReadyBatch<i64>> = Vec::new();
            let mut next = 0i64;
            let take = |acc: &mut Accumulator<i64>, now: Instant, out: &mut Vec<ReadyBatch<i64>>| {
                while let Some(b) = acc.poll(now) {
                    out.push(b);
                }
            };
            for op in ops {
                match op {
                    Op::Push { n, size: sz, stride, gap } => {
                        let first = next + i64::from(gap);
                        let offs: Vec<i64> = (0..i64::from(n)).map(|i| first + i * i64::from(stride)).collect();
                        let end = offs[offs.len() - 1] + 1; // one trailing record-less offset
                        for (i, &o) in offs.iter().enumerate() {
                            acc.push(Entry {
                                offset: o,
                                wire_size: usize::from(sz),
                                wire_batch_last_offset: end,
                                last_in_wire_batch: i + 1 == offs.len(),
                                payload: o,
                            }, now).unwrap();
                            pushed.push(o);
                        }
                        next = end + 1;
                    }
                    Op::Tick(d) => {
                        now += ms(u64::from(d));
                        if let Some(deadline) = acc.next_deadline() {
                            if deadline <= now {
                                take(&mut acc, now, &mut out);
                            }
                        }
                    }
                    Op::Drain => take(&mut acc, now, &mut out),
                    Op::Skip(k) => {
                        next += i64::from(k);
                        acc.skip_to(next);
                    }
                }
            }
            acc.flush(now);
            take(&mut acc, now, &mut out);
            prop_assert!(acc.is_empty());

            let seen: Vec<i64> = out.iter().flat_map(|b| b.entries.iter().map(|e| e.payload)).collect();
            prop_assert_eq!(&seen, &pushed);
            let mut prev_next = i64::MIN;
            for b in &out {
                prop_assert!(!b.entries.is_empty());
                prop_assert!(b.first_offset() >= prev_next, "batches overlap");
                prop_assert!(b.next_offset > b.last_offset());
                prop_assert_eq!(b.wire_bytes, b.entries.iter().map(|e| e.wire_size).sum::<usize>());
                if !wire {
                    prop_assert!(b.entries.len() <= size);
                    prop_assert!(b.wire_bytes <= max_bytes || b.entries.len() == 1);
                } else if b.trigger != Trigger::Flush {
                    prop_assert!(b.entries.last().map(|e| e.last_in_wire_batch).unwrap_or(false),
                        "wire batch split");
                }
                if b.trigger == Trigger::Oversized {
                    prop_assert!(b.wire_bytes > max_bytes);
                }
                if b.trigger == Trigger::Timeout && !last_flush {
                    prop_assert!(b.closed_at >= b.opened_at + ms(timeout_ms));
                }
                prev_next = b.next_offset;
            }
        }
    }
}
