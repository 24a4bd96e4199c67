//! Per-partition contiguous commit watermark, and the group's commit tracker.
//!
//! A [`Watermark`] holds the offset ranges of the batches handed out for one
//! partition, registered in offset order. Batches finish in any order; the
//! watermark's [`committable`](Watermark::committable) offset is the highest
//! offset such that every registered range below it is finished, so it never
//! passes an unfinished offset (promise P1). Offsets between registered ranges
//! carry no record (compaction, control batches) and do not hold it back.
//!
//! A [`CommitTracker`] decides, for the whole group, what to send in the next
//! OffsetCommit and when: at most every `commit_interval`, at once when forced
//! (rebalance, shutdown), with at most one commit in flight (a cancelled or
//! overlapping commit can land after a later one and move the offset
//! backwards), and never moving a partition's offset backwards except by an
//! explicit seek.
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Identifies a registered range; stale after [`Watermark::reset`] or after a
/// [`Watermark::rewind_to`] that dropped the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RangeId {
    epoch: u64,
    seq: u64,
}

/// A watermark operation that does not fit the registered ranges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatermarkError {
    /// Ranges must be registered in offset order without overlap.
    #[error(
        "range [{first_offset}, {next_offset}) overlaps registered offsets below {end_offset}"
    )]
    Overlap {
        /// The new range's first offset.
        first_offset: i64,
        /// The new range's end.
        next_offset: i64,
        /// End of the last registered range.
        end_offset: i64,
    },
    /// A range must hold at least one offset.
    #[error("empty range [{first_offset}, {next_offset})")]
    EmptyRange {
        /// First offset.
        first_offset: i64,
        /// End.
        next_offset: i64,
    },
    /// The range belongs to an earlier generation or seek, or was dropped by a
    /// rewind: its completion must not move the watermark.
    #[error("range is stale (reset or rewound since it was registered)")]
    Stale,
    /// A partial completion outside the range.
    #[error("offset {offset} is outside the unfinished range [{first_offset}, {next_offset})")]
    OffsetOutsideRange {
        /// The offset given.
        offset: i64,
        /// The range's first unfinished offset.
        first_offset: i64,
        /// The range's end.
        next_offset: i64,
    },
    /// A rewind below the committable offset: that is a seek, use
    /// [`Watermark::reset`].
    #[error("cannot rewind to {offset} below the committable offset {committable}")]
    RewindBelowCommittable {
        /// The target offset.
        offset: i64,
        /// The committable offset.
        committable: i64,
    },
}

#[derive(Debug, Clone)]
struct Slot {
    seq: u64,
    first: i64,
    next: i64,
    finished: bool,
}

/// A process-wide unique epoch: range ids of two watermarks (a partition
/// revoked and assigned again gets a new one) or of two resets never compare
/// equal, so a batch abandoned by an earlier assignment cannot complete a
/// range of the current one.
fn next_epoch() -> u64 {
    static EPOCH: AtomicU64 = AtomicU64::new(0);
    EPOCH.fetch_add(1, Ordering::Relaxed)
}

/// Per-partition contiguous commit watermark. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Watermark {
    epoch: u64,
    next_seq: u64,
    /// Registered ranges after the finished prefix; the front is unfinished.
    slots: VecDeque<Slot>,
    /// End of the last registered range, or the start offset.
    end: i64,
}

impl Watermark {
    /// A watermark starting at `start_offset` (the committed offset the
    /// partition resumes from).
    pub fn new(start_offset: i64) -> Self {
        Self {
            epoch: next_epoch(),
            next_seq: 0,
            slots: VecDeque::new(),
            end: start_offset,
        }
    }

    /// The offset that may be committed: every registered range below it is
    /// finished.
    pub fn committable(&self) -> i64 {
        self.slots.front().map_or(self.end, |s| s.first)
    }

    /// End of the registered ranges: the offset the next range may start at.
    pub fn end(&self) -> i64 {
        self.end
    }

    /// Number of registered ranges not yet folded into the committable offset.
    pub fn pending(&self) -> usize {
        self.slots.len()
    }

    /// True when no registered range is unfinished.
    pub fn is_idle(&self) -> bool {
        self.slots.is_empty()
    }

    /// Registers the range `[first_offset, next_offset)` of a batch handed to
    /// the handler. `next_offset` may exceed the last record's offset + 1 to
    /// step over control records and gaps; `first_offset` may exceed
    /// [`end`](Self::end) (offsets in between hold no record).
    pub fn register(
        &mut self,
        first_offset: i64,
        next_offset: i64,
    ) -> Result<RangeId, WatermarkError> {
        if next_offset <= first_offset {
            return Err(WatermarkError::EmptyRange {
                first_offset,
                next_offset,
            });
        }
        if first_offset < self.end {
            return Err(WatermarkError::Overlap {
                first_offset,
                next_offset,
                end_offset: self.end,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.slots.push_back(Slot {
            seq,
            first: first_offset,
            next: next_offset,
            finished: false,
        });
        self.end = next_offset;
        Ok(RangeId {
            epoch: self.epoch,
            seq,
        })
    }

    /// Declares the offsets below `next_offset` record-less (a control batch
    /// or an empty fetch position move) when no batch covers them. No-op when
    /// `next_offset` is not ahead of [`end`](Self::end).
    pub fn skip_to(&mut self, next_offset: i64) {
        if next_offset <= self.end {
            return;
        }
        if self.slots.is_empty() {
            self.end = next_offset;
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.slots.push_back(Slot {
            seq,
            first: self.end,
            next: next_offset,
            finished: true,
        });
        self.end = next_offset;
    }

    /// Marks a range finished. Returns the new committable offset.
    pub fn complete(&mut self, id: RangeId) -> Result<i64, WatermarkError> {
        let index = self.find(id)?;
        self.slots[index].finished = true;
        self.advance();
        Ok(self.committable())
    }

    /// Marks a range finished up to `offset` (exclusive): the records below it
    /// are done, the rest stays unfinished under the same id (it will be
    /// retried or dropped by a rewind). Returns the new committable offset.
    pub fn complete_until(&mut self, id: RangeId, offset: i64) -> Result<i64, WatermarkError> {
        let index = self.find(id)?;
        let slot = &mut self.slots[index];
        if offset < slot.first || offset > slot.next {
            return Err(WatermarkError::OffsetOutsideRange {
                offset,
                first_offset: slot.first,
                next_offset: slot.next,
            });
        }
        if offset == slot.next {
            slot.finished = true;
        } else {
            slot.first = offset;
        }
        self.advance();
        Ok(self.committable())
    }

    /// Retry or seek forward within what was registered: drops the ranges at
    /// and after `offset` (their ids become stale) and cuts a range that
    /// straddles it, so that the batches re-fetched from `offset` can be
    /// registered again. Offsets below `offset` keep their state.
    pub fn rewind_to(&mut self, offset: i64) -> Result<(), WatermarkError> {
        let committable = self.committable();
        if offset < committable {
            return Err(WatermarkError::RewindBelowCommittable {
                offset,
                committable,
            });
        }
        while let Some(back) = self.slots.back_mut() {
            if back.first >= offset {
                self.slots.pop_back();
            } else {
                if back.next > offset {
                    back.next = offset;
                }
                break;
            }
        }
        self.end = offset;
        self.advance();
        Ok(())
    }

    /// A new start: an explicit seek, a new assignment or generation. Every
    /// registered range is dropped and its id becomes stale, so a batch that
    /// finishes later cannot move this watermark.
    pub fn reset(&mut self, start_offset: i64) {
        self.epoch = next_epoch();
        self.slots.clear();
        self.end = start_offset;
    }

    fn find(&self, id: RangeId) -> Result<usize, WatermarkError> {
        if id.epoch != self.epoch {
            return Err(WatermarkError::Stale);
        }
        self.slots
            .binary_search_by_key(&id.seq, |s| s.seq)
            .map_err(|_| WatermarkError::Stale)
    }

    fn advance(&mut self) {
        while self.slots.front().is_some_and(|s| s.finished) {
            self.slots.pop_front();
        }
    }
}

/// One partition's entry in an OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitEntry<K> {
    /// The partition.
    pub partition: K,
    /// The committed offset (the next offset to read).
    pub offset: i64,
    /// The metadata string (retry state, see [`crate::RetryState`]).
    pub metadata: String,
}

/// How the broker answered the commit in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitResult<K> {
    /// Every partition committed.
    Ok,
    /// Nothing committed (request failed, coordinator moved, ...); what was
    /// in flight stays pending.
    Failed,
    /// These partitions failed, the others committed.
    PartiallyFailed(Vec<K>),
}

/// Decides what the group commits and when. See the [module docs](self).
///
/// `K` is the partition key, normally [`crate::TopicPartition`].
#[derive(Debug, Clone)]
pub struct CommitTracker<K> {
    interval: Duration,
    /// What the broker acknowledged.
    committed: BTreeMap<K, (i64, String)>,
    /// What we want committed (only for partitions we own).
    desired: BTreeMap<K, (i64, String)>,
    in_flight: Option<Vec<CommitEntry<K>>>,
    last_sent: Instant,
    force: bool,
}

impl<K: Ord + Clone> CommitTracker<K> {
    /// A tracker that commits at most every `interval`; the interval clock
    /// starts at `now`.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            committed: BTreeMap::new(),
            desired: BTreeMap::new(),
            in_flight: None,
            last_sent: now,
            force: false,
        }
    }

    /// A partition was assigned: `offset` and `metadata` are what OffsetFetch
    /// returned (or the reset position). Also used for an explicit seek, the
    /// only way a partition's offset may move backwards.
    pub fn assign(&mut self, partition: K, offset: i64, metadata: String) {
        self.committed
            .insert(partition.clone(), (offset, metadata.clone()));
        self.desired.insert(partition, (offset, metadata));
    }

    /// Records a partition's committable offset and metadata (after its
    /// watermark or retry state changed). Ignored, returning false, when the
    /// partition is not assigned or the offset is behind what is wanted,
    /// in flight or committed (a commit never moves backwards).
    pub fn update(&mut self, partition: &K, offset: i64, metadata: &str) -> bool {
        let in_flight = self.in_flight_offset(partition);
        let committed = self.committed.get(partition).map(|c| c.0);
        let Some(want) = self.desired.get_mut(partition) else {
            return false;
        };
        let floor = want
            .0
            .max(in_flight.unwrap_or(i64::MIN))
            .max(committed.unwrap_or(i64::MIN));
        if offset < floor || (offset == want.0 && metadata == want.1) {
            return false;
        }
        want.0 = offset;
        if want.1 != metadata {
            want.1 = metadata.to_owned();
        }
        true
    }

    /// The next OffsetCommit to send, if one is due: nothing is in flight,
    /// some partition differs from what was committed, and `commit_interval`
    /// has passed since the previous one (or a flush was forced). The entries
    /// are then in flight: send them and report with
    /// [`on_commit_result`](Self::on_commit_result).
    pub fn take_pending(&mut self, now: Instant) -> Option<Vec<CommitEntry<K>>> {
        if self.in_flight.is_some() {
            return None;
        }
        if !self.force && now < self.last_sent + self.interval {
            return None;
        }
        let entries: Vec<CommitEntry<K>> = self
            .desired
            .iter()
            .filter(|(k, want)| self.committed.get(*k) != Some(*want))
            .map(|(k, (offset, metadata))| CommitEntry {
                partition: k.clone(),
                offset: *offset,
                metadata: metadata.clone(),
            })
            .collect();
        if entries.is_empty() {
            return None;
        }
        self.force = false;
        self.last_sent = now;
        self.in_flight = Some(entries.clone());
        Some(entries)
    }

    /// Alias kept for drivers that separate "taken" from "sent": the commit
    /// taken by [`take_pending`](Self::take_pending) is already in flight.
    pub fn on_commit_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// The answer to the commit in flight. Entries of partitions revoked
    /// meanwhile are not recorded.
    pub fn on_commit_result(&mut self, result: CommitResult<K>) {
        let Some(entries) = self.in_flight.take() else {
            return;
        };
        let failed: &[K] = match &result {
            CommitResult::Ok => &[],
            CommitResult::Failed => return,
            CommitResult::PartiallyFailed(failed) => failed,
        };
        for e in entries {
            if failed.contains(&e.partition) || !self.desired.contains_key(&e.partition) {
                continue;
            }
            let newer = self
                .committed
                .get(&e.partition)
                .is_some_and(|c| c.0 > e.offset);
            if !newer {
                self.committed.insert(e.partition, (e.offset, e.metadata));
            }
        }
    }

    /// Makes the next [`take_pending`](Self::take_pending) ignore the
    /// interval (rebalance, shutdown).
    pub fn force_flush(&mut self) {
        self.force = true;
    }

    /// When the driver should call [`take_pending`](Self::take_pending) next;
    /// `None` while a commit is in flight or nothing is dirty.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.in_flight.is_some() || !self.is_dirty() {
            return None;
        }
        if self.force {
            Some(self.last_sent)
        } else {
            Some(self.last_sent + self.interval)
        }
    }

    /// A partition was revoked or lost: nothing more is committed for it
    /// (promise P3), even if a commit in flight succeeds later.
    pub fn remove(&mut self, partition: &K) {
        self.desired.remove(partition);
        self.committed.remove(partition);
    }

    /// Every partition was lost (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID): drop
    /// all state; the commit in flight, if any, is still awaited (never
    /// cancelled) but its result is not recorded.
    pub fn clear(&mut self) {
        self.desired.clear();
        self.committed.clear();
        self.force = false;
    }

    /// True while a commit is in flight.
    pub fn has_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// True when some partition's wanted offset or metadata differs from the
    /// committed one (in flight or not).
    pub fn is_dirty(&self) -> bool {
        self.desired
            .iter()
            .any(|(k, want)| self.committed.get(k) != Some(want))
    }

    /// What the broker acknowledged for a partition.
    pub fn committed(&self, partition: &K) -> Option<(i64, &str)> {
        self.committed.get(partition).map(|(o, m)| (*o, m.as_str()))
    }

    fn in_flight_offset(&self, partition: &K) -> Option<i64> {
        self.in_flight
            .as_ref()?
            .iter()
            .find(|e| &e.partition == partition)
            .map(|e| e.offset)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_range_of_another_watermark_is_stale_even_at_the_same_position() {
        // A partition revoked and assigned again gets a new watermark; the
        // abandoned batch's range id must not complete the new first range.
        let mut old = Watermark::new(0);
        let abandoned = old.register(0, 3).unwrap();
        let mut new = Watermark::new(0);
        let current = new.register(0, 10).unwrap();
        assert_ne!(abandoned, current);
        assert_eq!(new.complete(abandoned), Err(WatermarkError::Stale));
        assert_eq!(new.committable(), 0);
        new.reset(0);
        let after_reset = new.register(0, 10).unwrap();
        assert_ne!(after_reset, current);
        assert_eq!(new.complete(current), Err(WatermarkError::Stale));
        assert_eq!(new.complete(after_reset).unwrap(), 10);
    }

    #[test]
    fn completion_out_of_order_waits_for_the_earliest() {
        let mut w = Watermark::new(0);
        let a = w.register(0, 10).unwrap();
        let b = w.register(10, 20).unwrap();
        let c = w.register(20, 25).unwrap();
        assert_eq!(w.complete(c).unwrap(), 0);
        assert_eq!(w.complete(b).unwrap(), 0);
        assert_eq!(w.committable(), 0);
        assert_eq!(w.complete(a).unwrap(), 25);
        assert!(w.is_idle());
    }

    #[test]
    fn gaps_between_ranges_hold_no_record() {
        let mut w = Watermark::new(5);
        let a = w.register(8, 10).unwrap();
        assert_eq!(w.committable(), 8, "5..8 held no record");
        w.complete(a).unwrap();
        assert_eq!(w.committable(), 10);
        w.skip_to(14);
        assert_eq!(w.committable(), 14);
        let b = w.register(14, 16).unwrap();
        w.skip_to(18); // a control batch behind an unfinished range
        assert_eq!(w.committable(), 14);
        w.complete(b).unwrap();
        assert_eq!(w.committable(), 18);
        w.skip_to(3);
        assert_eq!(w.end(), 18);
    }

    #[test]
    fn overlapping_and_empty_ranges_are_rejected() {
        let mut w = Watermark::new(0);
        w.register(0, 10).unwrap();
        assert_eq!(
            w.register(9, 12).unwrap_err().to_string(),
            "range [9, 12) overlaps registered offsets below 10"
        );
        assert!(matches!(
            w.register(12, 12).unwrap_err(),
            WatermarkError::EmptyRange { .. }
        ));
    }

    #[test]
    fn partial_completion_then_retry_from_inside_the_range() {
        let mut w = Watermark::new(0);
        let a = w.register(0, 10).unwrap();
        let b = w.register(10, 20).unwrap();
        assert_eq!(w.complete_until(a, 4).unwrap(), 4);
        // A later batch finished before the retry: kept across the rewind
        // only if it lies below the rewind point, here it does not.
        w.complete(b).unwrap();
        w.rewind_to(4).unwrap();
        assert_eq!(w.committable(), 4);
        assert_eq!(w.end(), 4);
        assert_eq!(w.complete(b).unwrap_err(), WatermarkError::Stale);
        let a2 = w.register(4, 10).unwrap();
        w.complete(a2).unwrap();
        assert_eq!(w.committable(), 10);
        assert!(matches!(
            w.complete_until(a, 11).unwrap_err(),
            WatermarkError::Stale
        ));
    }

    #[test]
    fn complete_until_checks_bounds_and_finishes_at_the_end() {
        let mut w = Watermark::new(0);
        let a = w.register(0, 10).unwrap();
        assert!(matches!(
            w.complete_until(a, 11).unwrap_err(),
            WatermarkError::OffsetOutsideRange { .. }
        ));
        assert_eq!(w.complete_until(a, 10).unwrap(), 10);
    }

    #[test]
    fn rewind_cuts_a_straddling_range_and_refuses_to_go_below_committable() {
        let mut w = Watermark::new(0);
        let a = w.register(0, 10).unwrap();
        let b = w.register(10, 20).unwrap();
        w.rewind_to(15).unwrap();
        assert_eq!(w.end(), 15);
        w.complete(b).unwrap();
        w.complete(a).unwrap();
        assert_eq!(w.committable(), 15);
        assert_eq!(
            w.rewind_to(3).unwrap_err(),
            WatermarkError::RewindBelowCommittable {
                offset: 3,
                committable: 15
            }
        );
    }

    #[test]
    fn reset_makes_old_ranges_stale() {
        let mut w = Watermark::new(0);
        let a = w.register(0, 10).unwrap();
        w.reset(100);
        assert_eq!(w.committable(), 100);
        assert_eq!(w.complete(a).unwrap_err(), WatermarkError::Stale);
        assert_eq!(w.committable(), 100);
        // Seeking backwards is allowed through reset.
        w.reset(50);
        assert_eq!(w.committable(), 50);
    }

    proptest! {
        /// The watermark never passes an unfinished offset, whatever the
        /// completion order, partial completions and gaps; and once every
        /// range is finished it reaches the end.
        #[test]
        fn never_passes_an_unfinished_offset(
            ranges in proptest::collection::vec((0i64..3, 1i64..6), 1..20),
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 0..40),
            partial in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let mut w = Watermark::new(0);
            let mut ids = Vec::new();
            let mut cursor = 0i64;
            for (gap, len) in ranges {
                let first = cursor + gap;
                let next = first + len;
                ids.push((w.register(first, next).unwrap(), first, next));
                cursor = next;
            }
            // unfinished[i] = first unfinished offset of range i (== next when done)
            let mut done_until: Vec<i64> = ids.iter().map(|r| r.1).collect();
            let mut prev = w.committable();
            for (step, pick) in order.iter().enumerate() {
                let i = pick.index(ids.len());
                let (id, _first, next) = ids[i];
                if done_until[i] == next {
                    continue;
                }
                if partial[step % partial.len()] && done_until[i] + 1 < next {
                    let until = done_until[i] + 1;
                    w.complete_until(id, until).unwrap();
                    done_until[i] = until;
                } else {
                    w.complete(id).unwrap();
                    done_until[i] = next;
                }
                let c = w.committable();
                prop_assert!(c >= prev, "moved backwards");
                prev = c;
                for (j, &(_, _, next)) in ids.iter().enumerate() {
                    if done_until[j] < next {
                        prop_assert!(c <= done_until[j], "passed unfinished offset {}", done_until[j]);
                    }
                }
            }
            for (id, _, next) in &ids {
                let _ = w.complete(*id);
                let _ = next;
            }
            prop_assert_eq!(w.committable(), cursor);
            prop_assert!(w.is_idle());
        }
    }

    fn tp(p: i32) -> crate::TopicPartition {
        crate::TopicPartition::new("t", p)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn commits_obey_the_interval_and_one_in_flight() {
        let t0 = Instant::now();
        let mut c = CommitTracker::new(ms(1000), t0);
        c.assign(tp(0), 0, String::new());
        c.assign(tp(1), 0, String::new());
        assert!(c.take_pending(t0 + ms(5000)).is_none(), "nothing dirty");
        assert!(c.update(&tp(0), 10, ""));
        assert_eq!(c.next_deadline(), Some(t0 + ms(1000)));
        assert!(c.take_pending(t0 + ms(999)).is_none());
        let sent = c.take_pending(t0 + ms(1000)).unwrap();
        assert_eq!(
            sent,
            vec![CommitEntry {
                partition: tp(0),
                offset: 10,
                metadata: String::new()
            }]
        );
        c.update(&tp(1), 5, "");
        assert!(c.take_pending(t0 + ms(9000)).is_none(), "one in flight");
        assert_eq!(c.next_deadline(), None);
        c.on_commit_result(CommitResult::Ok);
        assert_eq!(c.committed(&tp(0)), Some((10, "")));
        assert_eq!(c.next_deadline(), Some(t0 + ms(2000)));
        let sent = c.take_pending(t0 + ms(2000)).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].partition, tp(1));
    }

    #[test]
    fn commits_never_move_backwards() {
        let t0 = Instant::now();
        let mut c = CommitTracker::new(ms(10), t0);
        c.assign(tp(0), 100, String::new());
        assert!(!c.update(&tp(0), 99, ""));
        assert!(c.update(&tp(0), 120, ""));
        let _ = c.take_pending(t0 + ms(10)).unwrap();
        assert!(!c.update(&tp(0), 110, ""), "behind the commit in flight");
        c.on_commit_result(CommitResult::Ok);
        assert!(!c.update(&tp(0), 110, ""), "behind the committed offset");
        // Same offset, new retry metadata: dirty.
        assert!(c.update(&tp(0), 120, "kafee:v1:retry=120:1"));
        let sent = c.take_pending(t0 + ms(20)).unwrap();
        assert_eq!(sent[0].metadata, "kafee:v1:retry=120:1");
        // An explicit seek may go backwards.
        c.on_commit_result(CommitResult::Ok);
        c.assign(tp(0), 50, String::new());
        assert_eq!(c.committed(&tp(0)), Some((50, "")));
        assert!(!c.update(&tp(1), 5, ""), "not assigned");
    }

    #[test]
    fn failed_commits_stay_pending_and_force_flush_skips_the_interval() {
        let t0 = Instant::now();
        let mut c = CommitTracker::new(ms(1000), t0);
        c.assign(tp(0), 0, String::new());
        c.assign(tp(1), 0, String::new());
        c.update(&tp(0), 3, "");
        c.update(&tp(1), 4, "");
        c.force_flush();
        assert_eq!(c.next_deadline(), Some(t0));
        let sent = c.take_pending(t0).unwrap();
        assert_eq!(sent.len(), 2);
        c.on_commit_result(CommitResult::PartiallyFailed(vec![tp(1)]));
        assert_eq!(c.committed(&tp(0)), Some((3, "")));
        assert_eq!(c.committed(&tp(1)), Some((0, "")));
        assert!(c.is_dirty());
        let sent = c.take_pending(t0 + ms(1000)).unwrap();
        assert_eq!(sent.len(), 1);
        c.on_commit_result(CommitResult::Failed);
        assert!(c.is_dirty());
        assert!(!c.has_in_flight());
    }

    #[test]
    fn nothing_is_committed_for_a_revoked_partition() {
        let t0 = Instant::now();
        let mut c = CommitTracker::new(ms(10), t0);
        c.assign(tp(0), 0, String::new());
        c.update(&tp(0), 7, "");
        let _ = c.take_pending(t0 + ms(10)).unwrap();
        c.remove(&tp(0));
        c.on_commit_result(CommitResult::Ok);
        assert_eq!(c.committed(&tp(0)), None);
        assert!(!c.update(&tp(0), 9, ""));
        assert!(c.take_pending(t0 + ms(100)).is_none());
        c.assign(tp(1), 0, String::new());
        c.update(&tp(1), 1, "");
        c.clear();
        assert!(c.take_pending(t0 + ms(100)).is_none());
    }
}
