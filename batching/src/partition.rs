//! One partition's whole batch life cycle, sans-IO: the glue the async driver
//! runs per assigned partition.
//!
//! [`Partition`] owns the partition's [`Accumulator`], [`Watermark`] and
//! [`RetryState`], and applies the acknowledgment [`Decision`]s:
//!
//! ```text
//!  push/skip_to ──► accumulator ──take_batch──► (handler runs, batch out) ──on_result──┐
//!        ▲                                   ▲                                       │
//!        │            retained batch, due ───┘◄── Retry / KeepRetrying (backoff) ◄────┤
//!        │                                   ▲                                       │
//!        │       remainder (last_successful) ┘◄── dead-letter written ◄── DeadLetter ◄┤
//!        │                                             │ write failed: same job, backoff
//!  commit_state() ◄── watermark ◄──────────────────── Done (commit) ◄─────────────────┘
//! ```
//!
//! A retried batch is kept in memory and handed out again after its backoff:
//! the same messages, no re-fetch, and the records buffered behind it stay
//! buffered (the partition stops being fetched once a closed batch waits, see
//! [`Partition::should_pause`]). At most one batch of the partition is out at a
//! time, which keeps the handler's view in offset order (promise P4).
//!
//! Every batch handed out carries a [`Ticket`]; after [`Partition::reset`]
//! (seek, revoke, new generation) old tickets are stale and their results
//! cannot move the watermark.
use crate::accumulator::{Accumulator, AccumulatorError, AccumulatorSettings, Entry, ReadyBatch};
use crate::strategy::{
    self, AckPolicy, BatchResult, Decision, RetryPlan, RetryState, StrategyError,
};
use crate::watermark::{RangeId, Watermark, WatermarkError};
use crate::{Instant, TopicPartition};

/// Identifies a batch handed out by [`Partition::take_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    range: RangeId,
    /// The attempt this hand-out is at the batch's first offset (1 = first).
    pub attempt: u32,
}

/// A batch handed out for handling.
#[derive(Debug)]
pub struct Started<T> {
    /// The batch (give it back with [`Partition::on_result`]).
    pub batch: ReadyBatch<T>,
    /// Its ticket.
    pub ticket: Ticket,
}

/// Dead-letter work: write `messages` of `batch` to the dead-letter topic, then
/// report with [`Partition::on_dead_letter_result`].
#[derive(Debug)]
pub struct DeadLetterJob<T> {
    /// The batch the messages belong to.
    pub batch: ReadyBatch<T>,
    /// Indices of the messages to write.
    pub messages: Vec<usize>,
    /// Failed handler attempts behind them (for the dead-letter headers).
    pub attempts: u32,
    /// Failed writes of this job so far.
    pub write_failures: u32,
    ticket: Ticket,
    then_commit_through: i64,
    reprocess_from: Option<i64>,
}

/// What the driver does after [`Partition::on_result`].
#[derive(Debug)]
pub enum Outcome<T> {
    /// The batch is done; update the commit tracker from
    /// [`Partition::commit_state`].
    Done {
        /// The partition's committable offset now.
        committable: i64,
        /// Failed messages skipped without a dead-letter topic (`best_effort`).
        skipped: Vec<usize>,
    },
    /// The batch (or its unfinished suffix) is kept and handed out again from
    /// `at` by [`Partition::take_batch`]; the retry state changed, so update
    /// the commit tracker (the count must survive a restart).
    Retry {
        /// Offset the retry starts at.
        from_offset: i64,
        /// Failed attempts at `from_offset`.
        attempts: u32,
        /// When the retry is due.
        at: Instant,
        /// True when attempts are exhausted and no dead-letter topic is
        /// configured: the partition keeps retrying; warn.
        exhausted: bool,
    },
    /// Write the job's messages to the dead-letter topic.
    DeadLetter(DeadLetterJob<T>),
}

/// What the driver does after [`Partition::on_dead_letter_result`].
#[derive(Debug)]
pub enum DeadLetterOutcome<T> {
    /// Written and committed; if a remainder must be handled again
    /// (`last_successful`) it is due now through
    /// [`Partition::take_batch`].
    Done {
        /// The partition's committable offset now.
        committable: i64,
    },
    /// The write failed: nothing is committed past the first message of the
    /// job; write the same job again at `at`.
    RetryWrite {
        /// The job to write again.
        job: DeadLetterJob<T>,
        /// When.
        at: Instant,
    },
    /// The partition was reset while the write ran: drop the job.
    Stale,
}

/// Kinds of [`PartitionError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionErrorKind {
    /// A record was pushed out of order.
    #[error(transparent)]
    Accumulator(#[from] AccumulatorError),
    /// A watermark rule was broken.
    #[error(transparent)]
    Watermark(#[from] WatermarkError),
    /// The handler's result does not match its batch.
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// A result for a batch that is not out (stale ticket after a reset, or
    /// reported twice).
    #[error("result for a batch that is not out (stale after a reset, or reported twice)")]
    NotOut,
}

/// An error of one partition's state machine, with the partition named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{partition}: {kind}")]
pub struct PartitionError {
    /// The partition.
    pub partition: TopicPartition,
    /// What went wrong.
    pub kind: PartitionErrorKind,
}

#[derive(Debug)]
enum Stage<T> {
    /// No batch out, none retained.
    Idle,
    /// A batch is with the handler or the dead-letter writer.
    Out(Ticket),
    /// A batch waits for its retry.
    Retained {
        batch: ReadyBatch<T>,
        range: RangeId,
        at: Instant,
    },
}

/// One assigned partition. See the [module docs](self).
#[derive(Debug)]
pub struct Partition<T> {
    tp: TopicPartition,
    acc: Accumulator<T>,
    watermark: Watermark,
    policy: AckPolicy,
    retry: Option<RetryState>,
    stage: Stage<T>,
}

impl<T> Partition<T> {
    /// A newly assigned partition resuming at `start_offset` with the
    /// committed `metadata` (the retry count is restored from it when it names
    /// `start_offset`). Unreadable metadata is reported in the second value and
    /// otherwise ignored.
    pub fn new(
        tp: TopicPartition,
        settings: AccumulatorSettings,
        policy: AckPolicy,
        start_offset: i64,
        metadata: &str,
        now: Instant,
    ) -> (Self, Option<strategy::MetadataError>) {
        let (retry, error) = match RetryState::parse_metadata(metadata) {
            Ok(state) => (state.filter(|s| s.offset == start_offset), None),
            Err(e) => (None, Some(e)),
        };
        let p = Self {
            tp,
            acc: Accumulator::new(settings, now),
            watermark: Watermark::new(start_offset),
            policy,
            retry,
            stage: Stage::Idle,
        };
        (p, error)
    }

    /// The partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The accumulator (read-only: sizes, deadlines).
    pub fn accumulator(&self) -> &Accumulator<T> {
        &self.acc
    }

    /// The retry state to persist.
    pub fn retry_state(&self) -> Option<RetryState> {
        self.retry
    }

    /// Pushes a fetched record.
    pub fn push(&mut self, entry: Entry<T>, now: Instant) -> Result<(), PartitionError> {
        self.acc.push(entry, now).map_err(|e| self.error(e.into()))
    }

    /// Declares the offsets below `next_offset` record-less (control batches,
    /// aborted transactions, compaction).
    pub fn skip_to(&mut self, next_offset: i64) {
        if let Some(next) = self.acc.skip_to(next_offset) {
            self.watermark.skip_to(next);
        }
    }

    /// True when a batch can be handed out now (report it to the
    /// [`crate::InFlight`] scheduler).
    pub fn is_ready(&self, now: Instant) -> bool {
        match &self.stage {
            Stage::Out(_) => false,
            Stage::Retained { at, .. } => now >= *at,
            Stage::Idle => {
                self.acc.ready_len() > 0 || self.acc.next_deadline().is_some_and(|d| now >= d)
            }
        }
    }

    /// When the driver must look at this partition again: a batch timeout or
    /// a retry backoff ending.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Out(_) => None,
            Stage::Retained { at, .. } => Some(*at),
            Stage::Idle => self.acc.next_deadline(),
        }
    }

    /// Hands out the next batch: a retained retry once due, else the
    /// accumulator's oldest closed batch. `None` while a batch is out.
    pub fn take_batch(&mut self, now: Instant) -> Result<Option<Started<T>>, PartitionError> {
        match std::mem::replace(&mut self.stage, Stage::Idle) {
            Stage::Out(ticket) => {
                self.stage = Stage::Out(ticket);
                Ok(None)
            }
            Stage::Retained { batch, range, at } => {
                if now < at {
                    self.stage = Stage::Retained { batch, range, at };
                    return Ok(None);
                }
                let ticket = Ticket {
                    range,
                    attempt: RetryState::attempt_for(self.retry, batch.first_offset()),
                };
                self.stage = Stage::Out(ticket);
                Ok(Some(Started { batch, ticket }))
            }
            Stage::Idle => {
                let Some(batch) = self.acc.poll(now) else {
                    return Ok(None);
                };
                let range = self
                    .watermark
                    .register(batch.first_offset(), batch.next_offset)
                    .map_err(|e| self.error(e.into()))?;
                let ticket = Ticket {
                    range,
                    attempt: RetryState::attempt_for(self.retry, batch.first_offset()),
                };
                self.stage = Stage::Out(ticket);
                Ok(Some(Started { batch, ticket }))
            }
        }
    }

    /// The handler's result for the batch out.
    pub fn on_result(
        &mut self,
        ticket: Ticket,
        batch: ReadyBatch<T>,
        result: &BatchResult,
        now: Instant,
    ) -> Result<Outcome<T>, PartitionError> {
        if !matches!(self.stage, Stage::Out(t) if t == ticket) {
            return Err(self.error(PartitionErrorKind::NotOut));
        }
        let decision = strategy::decide(&self.policy, &batch, result, ticket.attempt)
            .map_err(|e| self.error(e.into()))?;
        match decision {
            Decision::Commit { skipped, .. } => {
                let committable = self.wm(|w| w.complete(ticket.range))?;
                self.retry = None;
                self.stage = Stage::Idle;
                Ok(Outcome::Done {
                    committable,
                    skipped,
                })
            }
            Decision::Retry(plan) => self.retain(ticket, batch, plan, false, now),
            Decision::KeepRetrying(plan) => self.retain(ticket, batch, plan, true, now),
            Decision::DeadLetter {
                messages,
                attempts,
                commit_before,
                then_commit_through,
                reprocess_from,
            } => {
                self.wm(|w| w.complete_until(ticket.range, commit_before))?;
                // Record the exhausted count: a crash before the write
                // succeeded resumes at the same count.
                self.retry = Some(RetryState {
                    offset: commit_before,
                    attempts,
                });
                Ok(Outcome::DeadLetter(DeadLetterJob {
                    batch,
                    messages,
                    attempts,
                    write_failures: 0,
                    ticket,
                    then_commit_through,
                    reprocess_from,
                }))
            }
        }
    }

    fn retain(
        &mut self,
        ticket: Ticket,
        mut batch: ReadyBatch<T>,
        plan: RetryPlan,
        exhausted: bool,
        now: Instant,
    ) -> Result<Outcome<T>, PartitionError> {
        self.wm(|w| w.complete_until(ticket.range, plan.commit_through))?;
        batch.drain_front(plan.messages.start);
        let at = now + plan.backoff;
        self.retry = Some(plan.retry_state());
        self.stage = Stage::Retained {
            batch,
            range: ticket.range,
            at,
        };
        Ok(Outcome::Retry {
            from_offset: plan.from_offset,
            attempts: plan.attempts,
            at,
            exhausted,
        })
    }

    /// The dead-letter write's result (`written`: the dead-letter broker
    /// acknowledged every message of the job).
    pub fn on_dead_letter_result(
        &mut self,
        mut job: DeadLetterJob<T>,
        written: bool,
        now: Instant,
    ) -> Result<DeadLetterOutcome<T>, PartitionError> {
        if !matches!(self.stage, Stage::Out(t) if t == job.ticket) {
            return Ok(DeadLetterOutcome::Stale);
        }
        if !written {
            job.write_failures = job.write_failures.saturating_add(1);
            let at = now + self.policy.backoff.delay(job.write_failures);
            return Ok(DeadLetterOutcome::RetryWrite { job, at });
        }
        let range = job.ticket.range;
        self.retry = None;
        match job.reprocess_from {
            Some(from) => {
                self.wm(|w| w.complete_until(range, from))?;
                let mut batch = job.batch;
                let keep_from = batch.entries.partition_point(|e| e.offset < from);
                batch.drain_front(keep_from);
                self.stage = if batch.entries.is_empty() {
                    self.wm(|w| w.complete(range))?;
                    Stage::Idle
                } else {
                    Stage::Retained {
                        batch,
                        range,
                        at: now,
                    }
                };
            }
            None => {
                // then_commit_through is the batch's commit offset, the end of
                // its range: this finishes the range.
                self.wm(|w| w.complete_until(range, job.then_commit_through))?;
                self.stage = Stage::Idle;
            }
        }
        Ok(DeadLetterOutcome::Done {
            committable: self.watermark.committable(),
        })
    }

    /// The offset and metadata to commit for this partition now.
    pub fn commit_state(&self) -> (i64, String) {
        let committable = self.watermark.committable();
        let metadata = RetryState::format_metadata(self.retry.filter(|r| r.offset == committable));
        (committable, metadata)
    }

    /// Closes the open batch (shutdown: flush partial batches).
    pub fn flush(&mut self, now: Instant) {
        self.acc.flush(now);
    }

    /// True when fetching for this partition should pause: a closed batch
    /// waits (see the accumulator's bound).
    pub fn should_pause(&self) -> bool {
        self.acc.should_pause()
    }

    /// True while a batch is with the handler or the dead-letter writer.
    pub fn has_batch_out(&self) -> bool {
        matches!(self.stage, Stage::Out(_))
    }

    /// True when nothing is buffered, retained or out.
    pub fn is_drained(&self) -> bool {
        matches!(self.stage, Stage::Idle) && self.acc.is_empty()
    }

    /// Seek, revoke or a new generation: drops everything buffered and
    /// retained, makes the batch out (if any) stale, and restarts the
    /// watermark at `offset`. The retry state survives only if it names
    /// `offset`. Returns the number of records dropped (they are fetched
    /// again).
    pub fn reset(&mut self, offset: i64) -> usize {
        let mut dropped = self.acc.clear();
        if let Stage::Retained { batch, .. } = &self.stage {
            dropped += batch.entries.len();
        }
        self.stage = Stage::Idle;
        self.watermark.reset(offset);
        self.retry = self.retry.filter(|r| r.offset == offset);
        dropped
    }

    fn wm<R>(
        &mut self,
        f: impl FnOnce(&mut Watermark) -> Result<R, WatermarkError>,
    ) -> Result<R, PartitionError> {
        f(&mut self.watermark).map_err(|e| self.error(e.into()))
    }

    fn error(&self, kind: PartitionErrorKind) -> PartitionError {
        PartitionError {
            partition: self.tp.clone(),
            kind,
        }
    }
}

impl<T> ReadyBatch<T> {
    /// Drops the first `n` entries (already handled), keeping the rest for a
    /// retry. The commit offset is unchanged.
    pub fn drain_front(&mut self, n: usize) {
        let n = n.min(self.entries.len());
        if n == 0 {
            return;
        }
        let removed: usize = self.entries.drain(..n).map(|e| e.wire_size).sum();
        self.wire_bytes -= removed;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{AckStrategy, TimeoutFrom};
    use crate::strategy::Backoff;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn settings(size: usize) -> AccumulatorSettings {
        AccumulatorSettings {
            size,
            max_bytes: 1 << 20,
            timeout: ms(100),
            timeout_from: TimeoutFrom::FirstMessage,
            respect_wire_batches: false,
        }
    }

    fn policy(strategy: AckStrategy, dead_letter: bool) -> AckPolicy {
        AckPolicy {
            strategy,
            max_attempts: 3,
            dead_letter,
            backoff: Backoff::new(ms(10), ms(40)),
        }
    }

    fn part(strategy: AckStrategy, dead_letter: bool, t0: Instant) -> Partition<i64> {
        let tp = TopicPartition::new("t", 0);
        let (mut p, err) =
            Partition::new(tp, settings(5), policy(strategy, dead_letter), 0, "", t0);
        assert!(err.is_none());
        for o in 0..10 {
            p.push(
                Entry {
                    offset: o,
                    wire_size: 10,
                    wire_batch_last_offset: o,
                    last_in_wire_batch: true,
                    payload: o,
                },
                t0,
            )
            .unwrap();
        }
        p
    }

    fn offsets(b: &ReadyBatch<i64>) -> Vec<i64> {
        b.entries.iter().map(|e| e.offset).collect()
    }

    fn take(p: &mut Partition<i64>, now: Instant) -> Started<i64> {
        p.take_batch(now).unwrap().unwrap()
    }

    #[test]
    fn all_or_nothing_retries_the_same_batch_then_dead_letters_and_commits() {
        let t0 = Instant::now();
        let mut p = part(AckStrategy::AllOrNothing, true, t0);
        let s = take(&mut p, t0);
        assert_eq!(
            (offsets(&s.batch), s.ticket.attempt),
            (vec![0, 1, 2, 3, 4], 1)
        );
        assert!(
            p.take_batch(t0).unwrap().is_none(),
            "one batch out at a time"
        );
        let fail = BatchResult::Partial(vec![2]);
        let Outcome::Retry {
            from_offset,
            attempts,
            at,
            exhausted,
        } = p.on_result(s.ticket, s.batch, &fail, t0).unwrap()
        else {
            panic!("expected a retry");
        };
        assert_eq!(
            (from_offset, attempts, at, exhausted),
            (0, 1, t0 + ms(10), false)
        );
        assert_eq!(p.commit_state(), (0, "kafee:v1:retry=0:1".to_owned()));
        assert!(!p.is_ready(t0 + ms(9)));
        assert_eq!(p.next_deadline(), Some(t0 + ms(10)));
        assert!(p.take_batch(t0 + ms(9)).unwrap().is_none());
        let s = take(&mut p, t0 + ms(10));
        assert_eq!(
            (offsets(&s.batch), s.ticket.attempt),
            (vec![0, 1, 2, 3, 4], 2)
        );
        let Outcome::Retry { at, .. } = p.on_result(s.ticket, s.batch, &fail, t0 + ms(10)).unwrap()
        else {
            panic!("expected a retry");
        };
        assert_eq!(at, t0 + ms(30), "backoff doubles");
        let s = take(&mut p, at);
        assert_eq!(s.ticket.attempt, 3);
        let Outcome::DeadLetter(job) = p.on_result(s.ticket, s.batch, &fail, at).unwrap() else {
            panic!("expected dead letters");
        };
        assert_eq!((job.messages.clone(), job.attempts), (vec![2], 3));
        assert_eq!(p.commit_state(), (0, "kafee:v1:retry=0:3".to_owned()));
        // The DLQ write fails: nothing is committed past the failed message.
        let DeadLetterOutcome::RetryWrite { job, at: again } =
            p.on_dead_letter_result(job, false, at).unwrap()
        else {
            panic!("expected a write retry");
        };
        assert_eq!(again, at + ms(10));
        assert_eq!(p.commit_state().0, 0);
        assert!(
            p.take_batch(again).unwrap().is_none(),
            "the job is still out"
        );
        let DeadLetterOutcome::Done { committable } =
            p.on_dead_letter_result(job, true, again).unwrap()
        else {
            panic!("expected done");
        };
        assert_eq!(committable, 5);
        assert_eq!(p.commit_state(), (5, String::new()));
        let s = take(&mut p, again);
        assert_eq!(
            (offsets(&s.batch), s.ticket.attempt),
            (vec![5, 6, 7, 8, 9], 1)
        );
    }

    #[test]
    fn all_or_nothing_without_dead_letter_topic_keeps_retrying() {
        let t0 = Instant::now();
        let mut p = part(AckStrategy::AllOrNothing, false, t0);
        let mut now = t0;
        for attempt in 1..=5u32 {
            let s = take(&mut p, now);
            assert_eq!(s.ticket.attempt, attempt);
            let out = p
                .on_result(s.ticket, s.batch, &BatchResult::Err("down".into()), now)
                .unwrap();
            let Outcome::Retry { at, exhausted, .. } = out else {
                panic!("expected a retry");
            };
            assert_eq!(exhausted, attempt >= 3);
            assert_eq!(p.commit_state().0, 0);
            now = at;
        }
    }

    #[test]
    fn best_effort_commits_past_failures_or_dead_letters_them() {
        let t0 = Instant::now();
        let mut p = part(AckStrategy::BestEffort, false, t0);
        let s = take(&mut p, t0);
        let out = p
            .on_result(s.ticket, s.batch, &BatchResult::Partial(vec![1]), t0)
            .unwrap();
        assert!(
            matches!(out, Outcome::Done { committable: 5, ref skipped } if skipped == &vec![1])
        );

        let mut p = part(AckStrategy::BestEffort, true, t0);
        let s = take(&mut p, t0);
        let out = p
            .on_result(s.ticket, s.batch, &BatchResult::Partial(vec![3, 1]), t0)
            .unwrap();
        let Outcome::DeadLetter(job) = out else {
            panic!("expected dead letters");
        };
        assert_eq!(job.messages, vec![1, 3]);
        assert_eq!(p.commit_state().0, 1, "the prefix before the first failure");
        let DeadLetterOutcome::Done { committable } =
            p.on_dead_letter_result(job, true, t0).unwrap()
        else {
            panic!("expected done");
        };
        assert_eq!(committable, 5);
    }

    #[test]
    fn last_successful_commits_the_prefix_retries_then_dead_letters_one_message() {
        let t0 = Instant::now();
        let mut p = part(AckStrategy::LastSuccessful, true, t0);
        let s = take(&mut p, t0);
        let out = p
            .on_result(s.ticket, s.batch, &BatchResult::Partial(vec![4, 2]), t0)
            .unwrap();
        let Outcome::Retry {
            from_offset,
            attempts,
            at,
            ..
        } = out
        else {
            panic!("expected a retry");
        };
        assert_eq!((from_offset, attempts), (2, 1));
        assert_eq!(p.commit_state(), (2, "kafee:v1:retry=2:1".to_owned()));
        let s = take(&mut p, at);
        assert_eq!((offsets(&s.batch), s.ticket.attempt), (vec![2, 3, 4], 2));
        assert_eq!(s.batch.wire_bytes, 30);
        let out = p
            .on_result(s.ticket, s.batch, &BatchResult::Partial(vec![0]), at)
            .unwrap();
        let Outcome::Retry { at, .. } = out else {
            panic!("expected a retry");
        };
        let s = take(&mut p, at);
        assert_eq!(s.ticket.attempt, 3);
        let out = p
            .on_result(s.ticket, s.batch, &BatchResult::Partial(vec![0, 2]), at)
            .unwrap();
        let Outcome::DeadLetter(job) = out else {
            panic!("expected dead letters");
        };
        assert_eq!(job.messages, vec![0]);
        assert_eq!(job.batch.entries[0].offset, 2);
        let DeadLetterOutcome::Done { committable } =
            p.on_dead_letter_result(job, true, at).unwrap()
        else {
            panic!("expected done");
        };
        assert_eq!(committable, 3);
        assert_eq!(p.commit_state(), (3, String::new()));
        // The rest of the batch is handled again, as a first attempt.
        let s = take(&mut p, at);
        assert_eq!((offsets(&s.batch), s.ticket.attempt), (vec![3, 4], 1));
        let out = p
            .on_result(s.ticket, s.batch, &BatchResult::Ok, at)
            .unwrap();
        assert!(matches!(out, Outcome::Done { committable: 5, .. }));
    }

    #[test]
    fn retry_count_survives_a_restart_through_the_metadata() {
        let t0 = Instant::now();
        let tp = TopicPartition::new("t", 0);
        let pol = policy(AckStrategy::AllOrNothing, true);
        let (mut p, err) =
            Partition::<i64>::new(tp.clone(), settings(1), pol, 7, "kafee:v1:retry=7:2", t0);
        assert!(err.is_none());
        p.push(
            Entry {
                offset: 7,
                wire_size: 1,
                wire_batch_last_offset: 7,
                last_in_wire_batch: true,
                payload: 7,
            },
            t0,
        )
        .unwrap();
        let s = take(&mut p, t0);
        assert_eq!(s.ticket.attempt, 3);
        let out = p
            .on_result(s.ticket, s.batch, &BatchResult::Err("x".into()), t0)
            .unwrap();
        assert!(
            matches!(out, Outcome::DeadLetter(_)),
            "the third failure dead-letters"
        );
        // A count naming another offset does not apply.
        let (p, _) =
            Partition::<i64>::new(tp.clone(), settings(1), pol, 8, "kafee:v1:retry=7:2", t0);
        assert_eq!(p.retry_state(), None);
        let (_, err) = Partition::<i64>::new(tp, settings(1), pol, 8, "kafee:v1:retry=x", t0);
        assert!(err.is_some());
    }

    #[test]
    fn timeout_makes_a_partial_batch_ready_without_more_records() {
        let t0 = Instant::now();
        let tp = TopicPartition::new("t", 0);
        let (mut p, _) = Partition::<i64>::new(
            tp,
            settings(100),
            policy(AckStrategy::AllOrNothing, false),
            0,
            "",
            t0,
        );
        for o in 0..3 {
            p.push(
                Entry {
                    offset: o,
                    wire_size: 1,
                    wire_batch_last_offset: o,
                    last_in_wire_batch: true,
                    payload: o,
                },
                t0,
            )
            .unwrap();
        }
        assert!(!p.is_ready(t0 + ms(99)));
        assert_eq!(p.next_deadline(), Some(t0 + ms(100)));
        assert!(p.is_ready(t0 + ms(100)));
        let s = take(&mut p, t0 + ms(100));
        assert_eq!(offsets(&s.batch), vec![0, 1, 2]);
    }

    #[test]
    fn reset_makes_the_batch_out_stale() {
        let t0 = Instant::now();
        let mut p = part(AckStrategy::AllOrNothing, true, t0);
        let s = take(&mut p, t0);
        assert_eq!(p.reset(0), 5, "the closed batch behind was dropped");
        assert!(p.is_drained());
        let err = p
            .on_result(s.ticket, s.batch, &BatchResult::Ok, t0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "t/0: result for a batch that is not out (stale after a reset, or reported twice)"
        );
        assert_eq!(p.commit_state().0, 0);
    }

    #[test]
    fn stale_dead_letter_job_is_dropped() {
        let t0 = Instant::now();
        let mut p = part(AckStrategy::BestEffort, true, t0);
        let s = take(&mut p, t0);
        let Outcome::DeadLetter(job) = p
            .on_result(s.ticket, s.batch, &BatchResult::Err("x".into()), t0)
            .unwrap()
        else {
            panic!("expected dead letters");
        };
        p.reset(0);
        assert!(matches!(
            p.on_dead_letter_result(job, true, t0).unwrap(),
            DeadLetterOutcome::Stale
        ));
        assert_eq!(p.commit_state().0, 0);
    }

    #[test]
    fn record_less_offsets_after_the_batch_out_are_committed_with_it() {
        let t0 = Instant::now();
        let tp = TopicPartition::new("t", 0);
        let (mut p, _) = Partition::<i64>::new(
            tp,
            settings(1),
            policy(AckStrategy::AllOrNothing, false),
            0,
            "",
            t0,
        );
        p.push(
            Entry {
                offset: 0,
                wire_size: 1,
                wire_batch_last_offset: 0,
                last_in_wire_batch: true,
                payload: 0,
            },
            t0,
        )
        .unwrap();
        let s = take(&mut p, t0);
        p.skip_to(4); // a transaction marker and an aborted batch
        let out = p
            .on_result(s.ticket, s.batch, &BatchResult::Ok, t0)
            .unwrap();
        assert!(matches!(out, Outcome::Done { committable: 4, .. }));
        let err = p
            .push(
                Entry {
                    offset: 3,
                    wire_size: 1,
                    wire_batch_last_offset: 3,
                    last_in_wire_batch: true,
                    payload: 3,
                },
                t0,
            )
            .unwrap_err();
        assert!(matches!(err.kind, PartitionErrorKind::Accumulator(_)));
    }

    fn strategy() -> impl Strategy<Value = AckStrategy> {
        prop_oneof![
            Just(AckStrategy::AllOrNothing),
            Just(AckStrategy::BestEffort),
            Just(AckStrategy::LastSuccessful),
        ]
    }

    proptest! {
        /// Promise P1 end to end over one partition: whatever the handler
        /// fails and whatever dead-letter writes fail, the committable offset
        /// never passes a record that was neither handled successfully,
        /// dead-lettered, nor skipped by best_effort without a dead-letter
        /// topic; and once the handler recovers, everything is committed.
        #[test]
        fn committable_never_passes_an_unresolved_record(
            s in strategy(),
            dead_letter in any::<bool>(),
            max_attempts in 1u32..4,
            size in 1usize..6,
            n in 1i64..30,
            masks in proptest::collection::vec(any::<u8>(), 1..40),
            writes in proptest::collection::vec(any::<bool>(), 1..40),
        ) {
            let t0 = Instant::now();
            let tp = TopicPartition::new("t", 0);
            let pol = AckPolicy { strategy: s, max_attempts, dead_letter, backoff: Backoff::new(ms(1), ms(4)) };
            let (mut p, _) = Partition::<i64>::new(tp, settings(size), pol, 0, "", t0);
            for o in 0..n {
                p.push(Entry { offset: o, wire_size: 1, wire_batch_last_offset: o, last_in_wire_batch: true, payload: o }, t0).unwrap();
            }
            let mut resolved: BTreeSet<i64> = BTreeSet::new();
            let mut now = t0;
            let mut step = 0usize;
            let mut prev = p.commit_state().0;
            for round in 0..400 {
                let healthy = round >= 200;
                now += ms(200);
                let Some(started) = p.take_batch(now).unwrap() else {
                    if p.is_drained() { break; }
                    continue;
                };
                let len = started.batch.entries.len();
                let mask = if healthy { 0 } else { masks[step % masks.len()] };
                step += 1;
                let failed: Vec<usize> = (0..len).filter(|i| *i < 8 && mask & (1 << i) != 0).collect();
                for (i, e) in started.batch.entries.iter().enumerate() {
                    if !failed.contains(&i) {
                        resolved.insert(e.offset);
                    }
                }
                let result = BatchResult::Partial(failed);
                match p.on_result(started.ticket, started.batch, &result, now).unwrap() {
                    Outcome::Done { skipped, .. } => {
                        prop_assert!(skipped.is_empty() || (s == AckStrategy::BestEffort && !dead_letter));
                        // Skipped offsets are an accepted loss: count them resolved.
                        // (They are not in `resolved` yet, the batch is gone.)
                        let c = p.commit_state().0;
                        for o in prev..c { resolved.insert(o); }
                    }
                    Outcome::Retry { .. } => {}
                    Outcome::DeadLetter(mut job) => {
                        for tries in 0.. {
                            // The dead-letter topic recovers after a few failed writes.
                            let ok = healthy || tries >= 3 || writes[step % writes.len()];
                            step += 1;
                            let dl: Vec<i64> = job.messages.iter().map(|&i| job.batch.entries[i].offset).collect();
                            // Before the write succeeded nothing past the first message commits.
                            prop_assert!(p.commit_state().0 <= dl[0]);
                            match p.on_dead_letter_result(job, ok, now).unwrap() {
                                DeadLetterOutcome::Done { .. } => {
                                    resolved.extend(dl);
                                    break;
                                }
                                DeadLetterOutcome::RetryWrite { job: j, at } => {
                                    now = at;
                                    job = j;
                                }
                                DeadLetterOutcome::Stale => {
                                    return Err(TestCaseError::fail("no reset here"));
                                }
                            }
                        }
                    }
                }
                let c = p.commit_state().0;
                prop_assert!(c >= prev, "committable moved backwards");
                for o in 0..c.min(n) {
                    prop_assert!(resolved.contains(&o), "committed past unresolved offset {}", o);
                }
                prev = c;
            }
            prop_assert!(p.is_drained());
            prop_assert_eq!(p.commit_state(), (n, String::new()));
        }
    }
}
