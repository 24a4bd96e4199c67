//! The in-flight scheduler (sans-IO): `max_in_flight_batches` across
//! partitions, one batch at a time per partition, FIFO among waiting
//! partitions.
//!
//! The driver reports that a partition has a closed batch with
//! [`InFlight::ready`], starts what [`InFlight::next_start`] returns, and
//! reports completion with [`InFlight::finish`]. A partition that waits (a
//! batch ready but no slot, or its previous batch still running) should not be
//! fetched for: [`InFlight::is_waiting`] (combined with the accumulator's
//! own [`crate::Accumulator::should_pause`]). Memory in batches is then
//! bounded by about `max_in_flight_batches x max_bytes` running plus one
//! waiting batch per partition.
use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// What [`InFlight::ready`] did with the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Queued behind the partitions that were waiting before it.
    Queued,
    /// Already queued: nothing changed.
    AlreadyQueued,
    /// Its previous batch is still running: report more work when it
    /// finishes ([`InFlight::finish`] with `more_ready`).
    Running,
}

/// A `finish` for a partition that had no batch running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("finish reported for a partition with no batch running")]
pub struct NotRunning;

/// The scheduler. `K` is the partition key, normally
/// [`crate::TopicPartition`].
#[derive(Debug, Clone)]
pub struct InFlight<K> {
    limit: usize,
    running: HashSet<K>,
    waiting: VecDeque<K>,
    waiting_set: HashSet<K>,
}

impl<K: Clone + Eq + Hash> InFlight<K> {
    /// A scheduler running at most `max_in_flight_batches` batches at once
    /// (at least 1).
    pub fn new(max_in_flight_batches: usize) -> Self {
        Self {
            limit: max_in_flight_batches.max(1),
            running: HashSet::new(),
            waiting: VecDeque::new(),
            waiting_set: HashSet::new(),
        }
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The partition has a closed batch to hand out.
    pub fn ready(&mut self, partition: K) -> Admission {
        if self.running.contains(&partition) {
            return Admission::Running;
        }
        if self.waiting_set.contains(&partition) {
            return Admission::AlreadyQueued;
        }
        self.waiting_set.insert(partition.clone());
        self.waiting.push_back(partition);
        Admission::Queued
    }

    /// The next partition whose batch may start now, if a slot is free and a
    /// partition waits; it counts as running from here on. Call in a loop
    /// until `None`.
    pub fn next_start(&mut self) -> Option<K> {
        if self.running.len() >= self.limit {
            return None;
        }
        let partition = self.waiting.pop_front()?;
        self.waiting_set.remove(&partition);
        self.running.insert(partition.clone());
        Some(partition)
    }

    /// The partition's batch finished (committed, retried, dead-lettered or
    /// abandoned). With `more_ready` it queues again, at the back (fairness).
    pub fn finish(&mut self, partition: &K, more_ready: bool) -> Result<(), NotRunning> {
        if !self.running.remove(partition) {
            return Err(NotRunning);
        }
        if more_ready {
            self.ready(partition.clone());
        }
        Ok(())
    }

    /// The partition was revoked or lost: it stops waiting. A batch still
    /// running keeps its slot until [`finish`](Self::finish) (or the driver
    /// abandons it at the revoke deadline and finishes it then).
    pub fn remove(&mut self, partition: &K) {
        if self.waiting_set.remove(partition) {
            self.waiting.retain(|p| p != partition);
        }
    }

    /// True when the partition has a batch ready but cannot start it: stop
    /// fetching for it.
    pub fn is_waiting(&self, partition: &K) -> bool {
        self.waiting_set.contains(partition)
    }

    /// True while the partition's batch runs.
    pub fn is_running(&self, partition: &K) -> bool {
        self.running.contains(partition)
    }

    /// Batches running.
    pub fn running_len(&self) -> usize {
        self.running.len()
    }

    /// Partitions waiting for a slot.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// The waiting partitions, first to start first.
    pub fn waiting(&self) -> impl Iterator<Item = &K> {
        self.waiting.iter()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn limit_and_fifo() {
        let mut s = InFlight::new(2);
        for p in [1, 2, 3, 4] {
            assert_eq!(s.ready(p), Admission::Queued);
        }
        assert_eq!(s.ready(3), Admission::AlreadyQueued);
        assert_eq!(s.next_start(), Some(1));
        assert_eq!(s.next_start(), Some(2));
        assert_eq!(s.next_start(), None);
        assert!(s.is_waiting(&3) && s.is_waiting(&4));
        assert!(!s.is_waiting(&1));
        // 1 has another batch: it queues behind 3 and 4.
        s.finish(&1, true).unwrap();
        assert_eq!(s.next_start(), Some(3));
        s.finish(&2, false).unwrap();
        assert_eq!(s.next_start(), Some(4));
        assert_eq!(s.next_start(), None);
        s.finish(&3, false).unwrap();
        assert_eq!(s.next_start(), Some(1));
        assert_eq!(s.waiting_len(), 0);
        assert_eq!(s.running_len(), 2);
    }

    #[test]
    fn one_batch_per_partition() {
        let mut s = InFlight::new(8);
        s.ready(7);
        assert_eq!(s.next_start(), Some(7));
        assert_eq!(s.ready(7), Admission::Running);
        assert_eq!(s.next_start(), None);
        assert_eq!(s.finish(&7, false), Ok(()));
        assert_eq!(s.finish(&7, false), Err(NotRunning));
    }

    #[test]
    fn remove_drops_a_waiting_partition() {
        let mut s = InFlight::new(1);
        s.ready(1);
        s.ready(2);
        s.ready(3);
        assert_eq!(s.next_start(), Some(1));
        s.remove(&2);
        s.remove(&1); // running: keeps its slot
        assert!(s.is_running(&1));
        assert_eq!(s.next_start(), None);
        s.finish(&1, false).unwrap();
        assert_eq!(s.next_start(), Some(3));
        assert_eq!(s.waiting().count(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Ready(u8),
        Start,
        Finish(u8, bool),
        Remove(u8),
    }

    proptest! {
        /// The scheduler never exceeds the limit, never runs two batches of
        /// one partition, and starts waiting partitions in FIFO order.
        #[test]
        fn never_exceeds_the_limit(
            limit in 1usize..5,
            ops in proptest::collection::vec(prop_oneof![
                (0u8..6).prop_map(Op::Ready),
                Just(Op::Start),
                (0u8..6, any::<bool>()).prop_map(|(p, m)| Op::Finish(p, m)),
                (0u8..6).prop_map(Op::Remove),
            ], 0..100),
        ) {
            let mut s = InFlight::new(limit);
            let mut running: HashSet<u8> = HashSet::new();
            let mut model: VecDeque<u8> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Ready(p) => {
                        s.ready(p);
                        if !running.contains(&p) && !model.contains(&p) {
                            model.push_back(p);
                        }
                    }
                    Op::Start => {
                        while let Some(p) = s.next_start() {
                            prop_assert_eq!(Some(p), model.pop_front(), "FIFO");
                            prop_assert!(running.insert(p), "two batches of one partition");
                            prop_assert!(running.len() <= limit);
                        }
                        prop_assert!(running.len() == limit || model.is_empty());
                    }
                    Op::Finish(p, more) => {
                        let was = running.remove(&p);
                        prop_assert_eq!(s.finish(&p, more).is_ok(), was);
                        if was && more {
                            model.push_back(p);
                        }
                    }
                    Op::Remove(p) => {
                        s.remove(&p);
                        model.retain(|&q| q != p);
                    }
                }
                prop_assert!(s.running_len() <= limit);
                prop_assert_eq!(s.running_len(), running.len());
                prop_assert_eq!(s.waiting().copied().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            }
        }
    }
}
