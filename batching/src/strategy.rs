//! Acknowledgment strategies as pure decisions, and the retry state carried in
//! the OffsetCommit metadata.
//!
//! [`decide`] turns a handled batch's [`BatchResult`], the attempt number and
//! the [`AckPolicy`] into a [`Decision`]: commit, retry with backoff,
//! dead-letter then commit, or keep retrying with a warning. It performs no IO;
//! the driver seeks, sleeps, writes to the dead-letter topic and commits.
//!
//! | strategy | all succeeded | some failed, attempts left | attempts exhausted, DLQ | exhausted, no DLQ |
//! | --- | --- | --- | --- | --- |
//! | `all_or_nothing` | commit batch | retry the whole batch | dead-letter the failed, commit batch | keep retrying the batch, warn |
//! | `best_effort` | commit batch | dead-letter the failed (DLQ) or skip them, commit batch | same | same |
//! | `last_successful` | commit batch | commit up to the first failed, retry from it | dead-letter it, commit past it, re-handle the rest | keep retrying from it, warn |
//!
//! A retry count names the offset it applies to ([`RetryState`]). It is stored
//! in the OffsetCommit metadata (`kafee:v1:retry=<offset>:<attempts>`) next to
//! the committed offset, so `dead_letter_max_retries` means the same after a
//! crash or a rebalance; a count naming any other offset than the one a batch
//! starts at is ignored.
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use crate::accumulator::ReadyBatch;
use crate::config::AckStrategy;

/// What a batch handler reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// Every message succeeded.
    Ok,
    /// The messages at these indices (into the batch) failed, the others
    /// succeeded. An empty list means every message succeeded.
    Partial(Vec<usize>),
    /// The whole batch failed (a handler panic counts as this).
    Err(String),
}

impl BatchResult {
    /// Builds a [`BatchResult::Partial`] from the offsets of the failed
    /// messages.
    pub fn partial_from_offsets(
        batch: &impl BatchOffsets,
        failed_offsets: &[i64],
    ) -> Result<Self, StrategyError> {
        let mut indices = Vec::with_capacity(failed_offsets.len());
        for &offset in failed_offsets {
            let index = batch
                .index_of(offset)
                .ok_or(StrategyError::OffsetNotInBatch { offset })?;
            indices.push(index);
        }
        Ok(BatchResult::Partial(indices))
    }

    /// True when every message succeeded.
    pub fn is_ok(&self) -> bool {
        match self {
            BatchResult::Ok => true,
            BatchResult::Partial(failed) => failed.is_empty(),
            BatchResult::Err(_) => false,
        }
    }
}

/// The offsets of a batch, as the strategies need them.
pub trait BatchOffsets {
    /// Number of messages.
    fn message_count(&self) -> usize;
    /// Offset of the message at `index`.
    fn offset_at(&self, index: usize) -> Option<i64>;
    /// The offset to commit once the whole batch is done.
    fn next_offset(&self) -> i64;
    /// Index of the message at `offset` (messages are in offset order).
    fn index_of(&self, offset: i64) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.message_count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.offset_at(mid) {
                Some(o) if o == offset => return Some(mid),
                Some(o) if o < offset => lo = mid + 1,
                _ => hi = mid,
            }
        }
        None
    }
}

impl<T> BatchOffsets for ReadyBatch<T> {
    fn message_count(&self) -> usize {
        self.entries.len()
    }
    fn offset_at(&self, index: usize) -> Option<i64> {
        self.entries.get(index).map(|e| e.offset)
    }
    fn next_offset(&self) -> i64 {
        self.next_offset
    }
}

/// A batch given as a slice of offsets and its commit offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetList<'a> {
    /// The messages' offsets, increasing.
    pub offsets: &'a [i64],
    /// The commit offset once the whole batch is done.
    pub next_offset: i64,
}

impl BatchOffsets for OffsetList<'_> {
    fn message_count(&self) -> usize {
        self.offsets.len()
    }
    fn offset_at(&self, index: usize) -> Option<i64> {
        self.offsets.get(index).copied()
    }
    fn next_offset(&self) -> i64 {
        self.next_offset
    }
}

/// Exponential retry backoff: `initial x 2^(attempts - 1)`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// The cap.
    pub max: Duration,
}

impl Backoff {
    /// A schedule from its first delay and its cap.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay after `attempts` failed attempts (1 = the first failure).
    pub fn delay(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// What [`decide`] needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckPolicy {
    /// The strategy.
    pub strategy: AckStrategy,
    /// Failed attempts at one offset before dead-lettering (Kafee's
    /// `dead_letter_max_retries`), at least 1.
    pub max_attempts: u32,
    /// Whether a dead-letter topic is configured.
    pub dead_letter: bool,
    /// Retry backoff.
    pub backoff: Backoff,
}

/// A retry: what to commit now, where to resume, what to re-handle, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPlan {
    /// Everything below this offset is done and may be committed now (the
    /// batch's first offset when nothing is).
    pub commit_through: i64,
    /// Offset the retry starts at: seek the partition here.
    pub from_offset: i64,
    /// Indices (into the batch) to handle again: always a suffix of the batch.
    pub messages: Range<usize>,
    /// Indices that failed.
    pub failed: Vec<usize>,
    /// Failed attempts recorded for `from_offset`, this one included.
    pub attempts: u32,
    /// Wait this long before the retry.
    pub backoff: Duration,
}

impl RetryPlan {
    /// The retry state to store with the next commit of the partition.
    pub fn retry_state(&self) -> RetryState {
        RetryState {
            offset: self.from_offset,
            attempts: self.attempts,
        }
    }
}

/// What to do with a handled batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Commit through `through` (exclusive: the next offset to read).
    Commit {
        /// The commit offset.
        through: i64,
        /// Failed messages skipped without a dead-letter topic
        /// (`best_effort` only): report them, they are not retried.
        skipped: Vec<usize>,
    },
    /// Retry with backoff.
    Retry(RetryPlan),
    /// Write these messages to the dead-letter topic; once the dead-letter
    /// broker acknowledged them, commit through `then_commit_through`. If the
    /// write fails, commit nothing past the first of them and retry the write.
    DeadLetter {
        /// Indices of the messages to dead-letter.
        messages: Vec<usize>,
        /// Failed attempts behind the decision (for the dead-letter headers).
        attempts: u32,
        /// Everything before the first dead-lettered message is done and may be
        /// committed now.
        commit_before: i64,
        /// The commit offset once the dead-letter write succeeded.
        then_commit_through: i64,
        /// Where to resume when messages after the dead-lettered ones must be
        /// handled again (`last_successful`); `None` when the whole batch is
        /// done.
        reprocess_from: Option<i64>,
    },
    /// The attempts are exhausted and no dead-letter topic is configured: keep
    /// retrying (the partition makes no progress) and warn.
    KeepRetrying(RetryPlan),
}

/// A [`BatchResult`] that does not match its batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// A failed index beyond the batch.
    #[error("failed message index {index} is outside the batch of {len} messages")]
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// The batch's size.
        len: usize,
    },
    /// A failed offset that is not in the batch.
    #[error("failed offset {offset} is not in the batch")]
    OffsetNotInBatch {
        /// The offset.
        offset: i64,
    },
    /// The batch has no message.
    #[error("cannot decide on an empty batch")]
    EmptyBatch,
}

/// Decides what to do with a handled batch. `attempt` is the number of the
/// attempt just made at the batch's first offset (1 for the first; see
/// [`RetryState::attempt_for`]).
pub fn decide(
    policy: &AckPolicy,
    batch: &impl BatchOffsets,
    result: &BatchResult,
    attempt: u32,
) -> Result<Decision, StrategyError> {
    let len = batch.message_count();
    let first_offset = batch.offset_at(0).ok_or(StrategyError::EmptyBatch)?;
    let next_offset = batch.next_offset();
    let failed: Vec<usize> = match result {
        BatchResult::Ok => {
            return Ok(Decision::Commit {
                through: next_offset,
                skipped: Vec::new(),
            })
        }
        BatchResult::Partial(indices) => {
            if let Some(&index) = indices.iter().find(|&&i| i >= len) {
                return Err(StrategyError::IndexOutOfRange { index, len });
            }
            if indices.is_empty() {
                return Ok(Decision::Commit {
                    through: next_offset,
                    skipped: Vec::new(),
                });
            }
            let mut v = indices.clone();
            v.sort_unstable();
            v.dedup();
            v
        }
        BatchResult::Err(_) => (0..len).collect(),
    };
    let attempt = attempt.max(1);
    let max_attempts = policy.max_attempts.max(1);
    match policy.strategy {
        AckStrategy::AllOrNothing => {
            let plan = RetryPlan {
                commit_through: first_offset,
                from_offset: first_offset,
                messages: 0..len,
                backoff: policy.backoff.delay(attempt),
                attempts: attempt,
                failed,
            };
            if attempt < max_attempts {
                Ok(Decision::Retry(plan))
            } else if policy.dead_letter {
                Ok(Decision::DeadLetter {
                    attempts: attempt,
                    commit_before: first_offset,
                    messages: plan.failed,
                    then_commit_through: next_offset,
                    reprocess_from: None,
                })
            } else {
                Ok(Decision::KeepRetrying(plan))
            }
        }
        AckStrategy::BestEffort => {
            if policy.dead_letter {
                let commit_before = batch.offset_at(failed[0]).unwrap_or(first_offset);
                Ok(Decision::DeadLetter {
                    messages: failed,
                    attempts: attempt,
                    commit_before,
                    then_commit_through: next_offset,
                    reprocess_from: None,
                })
            } else {
                Ok(Decision::Commit {
                    through: next_offset,
                    skipped: failed,
                })
            }
        }
        AckStrategy::LastSuccessful => {
            let first_failed = failed[0];
            let from_offset = batch.offset_at(first_failed).unwrap_or(first_offset);
            // The count applies to the offset it names: a failure further into
            // the batch than where the previous attempts failed is a first one.
            let attempts = if from_offset == first_offset {
                attempt
            } else {
                1
            };
            let plan = RetryPlan {
                commit_through: from_offset,
                from_offset,
                messages: first_failed..len,
                failed: vec![first_failed],
                attempts,
                backoff: policy.backoff.delay(attempts),
            };
            if attempts < max_attempts {
                Ok(Decision::Retry(plan))
            } else if policy.dead_letter {
                let (then_commit_through, reprocess_from) = if first_failed + 1 == len {
                    (next_offset, None)
                } else {
                    let after = from_offset.saturating_add(1);
                    (after, Some(after))
                };
                Ok(Decision::DeadLetter {
                    messages: vec![first_failed],
                    attempts,
                    commit_before: from_offset,
                    then_commit_through,
                    reprocess_from,
                })
            } else {
                Ok(Decision::KeepRetrying(plan))
            }
        }
    }
}

/// Failed attempts recorded at one offset; survives restarts in the
/// OffsetCommit metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryState {
    /// The offset the count applies to (where the retry resumes).
    pub offset: i64,
    /// Failed attempts at that offset so far.
    pub attempts: u32,
}

/// Prefix of every metadata string this crate writes.
pub const METADATA_PREFIX: &str = "kafee:";
const METADATA_V1: &str = "kafee:v1:";

/// Retry metadata that starts like ours but cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A `kafee:` prefix with a version this build does not know.
    #[error("offset commit metadata {metadata:?} has an unsupported kafee version")]
    UnsupportedVersion {
        /// The metadata as read.
        metadata: String,
    },
    /// A `kafee:v1:` string that does not parse.
    #[error("offset commit metadata {metadata:?} is malformed: {reason}")]
    Malformed {
        /// The metadata as read.
        metadata: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl RetryState {
    /// The attempt number of the next try of a batch starting at
    /// `first_offset`, given the stored state: one more than the recorded
    /// failures when the state names this offset, else 1.
    pub fn attempt_for(state: Option<RetryState>, first_offset: i64) -> u32 {
        match state {
            Some(s) if s.offset == first_offset => s.attempts.saturating_add(1),
            _ => 1,
        }
    }

    /// The metadata string to commit with: `kafee:v1:retry=<offset>:<attempts>`.
    pub fn to_metadata(&self) -> String {
        format!("{METADATA_V1}retry={}:{}", self.offset, self.attempts)
    }

    /// Formats an optional state: the empty string when there is none.
    pub fn format_metadata(state: Option<RetryState>) -> String {
        state.map(|s| s.to_metadata()).unwrap_or_default()
    }

    /// Reads committed metadata. Metadata that is not ours (empty, or written
    /// by another client) is `Ok(None)`; ours but unreadable is an error (the
    /// driver then starts the count afresh and reports it).
    pub fn parse_metadata(metadata: &str) -> Result<Option<RetryState>, MetadataError> {
        if !metadata.starts_with(METADATA_PREFIX) {
            return Ok(None);
        }
        let Some(rest) = metadata.strip_prefix(METADATA_V1) else {
            return Err(MetadataError::UnsupportedVersion {
                metadata: metadata.to_owned(),
            });
        };
        if rest.is_empty() {
            return Ok(None);
        }
        let malformed = |reason| MetadataError::Malformed {
            metadata: metadata.to_owned(),
            reason,
        };
        let body = rest
            .strip_prefix("retry=")
            .ok_or_else(|| malformed("expected retry=<offset>:<attempts>"))?;
        let (offset, attempts) = body
            .split_once(':')
            .ok_or_else(|| malformed("expected retry=<offset>:<attempts>"))?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(offset) || !digits(attempts) {
            return Err(malformed("offset and attempts must be decimal digits"));
        }
        let offset: i64 = offset
            .parse()
            .map_err(|_| malformed("offset out of range"))?;
        let attempts: u32 = attempts
            .parse()
            .map_err(|_| malformed("attempts out of range"))?;
        if attempts == 0 {
            return Err(malformed("attempts must be at least 1"));
        }
        Ok(Some(RetryState { offset, attempts }))
    }
}

impl fmt::Display for RetryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed attempt(s) at offset {}",
            self.attempts, self.offset
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OFFSETS: [i64; 5] = [10, 11, 12, 13, 14];

    fn batch() -> OffsetList<'static> {
        OffsetList {
            offsets: &OFFSETS,
            next_offset: 16, // a transaction marker at 15
        }
    }

    fn policy(strategy: AckStrategy, dead_letter: bool) -> AckPolicy {
        AckPolicy {
            strategy,
            max_attempts: 3,
            dead_letter,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_millis(350)),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ok_commits_past_the_batch_for_every_strategy() {
        for s in [
            AckStrategy::AllOrNothing,
            AckStrategy::BestEffort,
            AckStrategy::LastSuccessful,
        ] {
            for r in [BatchResult::Ok, BatchResult::Partial(vec![])] {
                let d = decide(&policy(s, false), &batch(), &r, 1).unwrap();
                assert_eq!(
                    d,
                    Decision::Commit {
                        through: 16,
                        skipped: vec![]
                    }
                );
            }
        }
    }

    #[test]
    fn all_or_nothing_retries_the_whole_batch_with_exponential_backoff() {
        let p = policy(AckStrategy::AllOrNothing, true);
        let r = BatchResult::Partial(vec![3, 1, 3]);
        let Decision::Retry(plan) = decide(&p, &batch(), &r, 1).unwrap() else {
            panic!("expected a retry");
        };
        assert_eq!(plan.from_offset, 10);
        assert_eq!(plan.commit_through, 10);
        assert_eq!(plan.messages, 0..5);
        assert_eq!(plan.failed, vec![1, 3]);
        assert_eq!(plan.backoff, ms(100));
        assert_eq!(
            plan.retry_state(),
            RetryState {
                offset: 10,
                attempts: 1
            }
        );
        let Decision::Retry(plan) = decide(&p, &batch(), &r, 2).unwrap() else {
            panic!("expected a retry");
        };
        assert_eq!(plan.backoff, ms(200));
    }

    #[test]
    fn all_or_nothing_dead_letters_the_failed_after_max_attempts() {
        let p = policy(AckStrategy::AllOrNothing, true);
        let d = decide(&p, &batch(), &BatchResult::Partial(vec![4, 2]), 3).unwrap();
        assert_eq!(
            d,
            Decision::DeadLetter {
                messages: vec![2, 4],
                attempts: 3,
                commit_before: 10,
                then_commit_through: 16,
                reprocess_from: None
            }
        );
        let d = decide(&p, &batch(), &BatchResult::Err("db down".into()), 3).unwrap();
        let Decision::DeadLetter { messages, .. } = d else {
            panic!("expected dead letters");
        };
        assert_eq!(messages, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn all_or_nothing_without_dlq_keeps_retrying_with_capped_backoff() {
        let p = policy(AckStrategy::AllOrNothing, false);
        let d = decide(&p, &batch(), &BatchResult::Err("x".into()), 3).unwrap();
        let Decision::KeepRetrying(plan) = d else {
            panic!("expected keep retrying");
        };
        assert_eq!(plan.from_offset, 10);
        assert_eq!(plan.backoff, ms(350));
        assert_eq!(plan.attempts, 3);
        let d = decide(&p, &batch(), &BatchResult::Err("x".into()), 9).unwrap();
        assert!(matches!(
            d,
            Decision::KeepRetrying(RetryPlan { attempts: 9, .. })
        ));
    }

    #[test]
    fn best_effort_commits_past_failures() {
        let d = decide(
            &policy(AckStrategy::BestEffort, false),
            &batch(),
            &BatchResult::Partial(vec![2]),
            1,
        )
        .unwrap();
        assert_eq!(
            d,
            Decision::Commit {
                through: 16,
                skipped: vec![2]
            }
        );
        let d = decide(
            &policy(AckStrategy::BestEffort, true),
            &batch(),
            &BatchResult::Partial(vec![2]),
            1,
        )
        .unwrap();
        assert_eq!(
            d,
            Decision::DeadLetter {
                messages: vec![2],
                attempts: 1,
                commit_before: 12,
                then_commit_through: 16,
                reprocess_from: None
            }
        );
    }

    #[test]
    fn last_successful_commits_up_to_the_first_failure_and_retries_from_it() {
        let p = policy(AckStrategy::LastSuccessful, true);
        let d = decide(&p, &batch(), &BatchResult::Partial(vec![4, 2]), 1).unwrap();
        let Decision::Retry(plan) = d else {
            panic!("expected a retry");
        };
        assert_eq!(plan.commit_through, 12);
        assert_eq!(plan.from_offset, 12);
        assert_eq!(plan.messages, 2..5);
        assert_eq!(plan.failed, vec![2], "later failures are not counted");
        assert_eq!(plan.attempts, 1);
    }

    #[test]
    fn last_successful_counts_failures_per_offset() {
        let p = policy(AckStrategy::LastSuccessful, true);
        // The retried batch starts at 12 and fails at 12 again: attempt 3.
        let retried = OffsetList {
            offsets: &OFFSETS[2..],
            next_offset: 16,
        };
        let d = decide(&p, &retried, &BatchResult::Partial(vec![0]), 3).unwrap();
        assert_eq!(
            d,
            Decision::DeadLetter {
                messages: vec![0],
                attempts: 3,
                commit_before: 12,
                then_commit_through: 13,
                reprocess_from: Some(13)
            }
        );
        // It fails further in, at 13: a first failure there, whatever the
        // count at 12 was.
        let d = decide(&p, &retried, &BatchResult::Partial(vec![1]), 3).unwrap();
        let Decision::Retry(plan) = d else {
            panic!("expected a retry");
        };
        assert_eq!((plan.from_offset, plan.attempts), (13, 1));
        assert_eq!(plan.commit_through, 13);
    }

    #[test]
    fn last_successful_dead_letters_the_last_message_and_commits_the_batch() {
        let p = policy(AckStrategy::LastSuccessful, true);
        let d = decide(&p, &batch(), &BatchResult::Partial(vec![4]), 1).unwrap();
        assert!(matches!(d, Decision::Retry(_)));
        let last = OffsetList {
            offsets: &OFFSETS[4..],
            next_offset: 16,
        };
        let d = decide(&p, &last, &BatchResult::Err("x".into()), 3).unwrap();
        assert_eq!(
            d,
            Decision::DeadLetter {
                messages: vec![0],
                attempts: 3,
                commit_before: 14,
                then_commit_through: 16,
                reprocess_from: None
            }
        );
    }

    #[test]
    fn last_successful_without_dlq_keeps_retrying() {
        let p = policy(AckStrategy::LastSuccessful, false);
        let d = decide(&p, &batch(), &BatchResult::Partial(vec![0]), 4).unwrap();
        let Decision::KeepRetrying(plan) = d else {
            panic!("expected keep retrying");
        };
        assert_eq!((plan.from_offset, plan.commit_through), (10, 10));
    }

    #[test]
    fn bad_results_are_typed_errors() {
        let p = policy(AckStrategy::AllOrNothing, false);
        let err = decide(&p, &batch(), &BatchResult::Partial(vec![5]), 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed message index 5 is outside the batch of 5 messages"
        );
        let empty = OffsetList {
            offsets: &[],
            next_offset: 0,
        };
        assert_eq!(
            decide(&p, &empty, &BatchResult::Ok, 1).unwrap_err(),
            StrategyError::EmptyBatch
        );
        assert_eq!(
            BatchResult::partial_from_offsets(&batch(), &[13, 10]).unwrap(),
            BatchResult::Partial(vec![3, 0])
        );
        assert_eq!(
            BatchResult::partial_from_offsets(&batch(), &[15]).unwrap_err(),
            StrategyError::OffsetNotInBatch { offset: 15 }
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::new(ms(100), ms(1000));
        let delays: Vec<_> = (1..=6).map(|a| b.delay(a)).collect();
        assert_eq!(
            delays,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(b.delay(0), ms(100));
        assert_eq!(b.delay(u32::MAX), ms(1000));
    }

    #[test]
    fn retry_metadata_format_and_parse() {
        let s = RetryState {
            offset: 42,
            attempts: 2,
        };
        assert_eq!(s.to_metadata(), "kafee:v1:retry=42:2");
        assert_eq!(
            RetryState::parse_metadata("kafee:v1:retry=42:2"),
            Ok(Some(s))
        );
        assert_eq!(RetryState::parse_metadata(""), Ok(None));
        assert_eq!(RetryState::parse_metadata("kafee:v1:"), Ok(None));
        assert_eq!(RetryState::format_metadata(None), "");
        assert_eq!(
            RetryState::parse_metadata("written by someone else"),
            Ok(None)
        );
        assert!(matches!(
            RetryState::parse_metadata("kafee:v9:retry=1:1"),
            Err(MetadataError::UnsupportedVersion { .. })
        ));
        for bad in [
            "kafee:v1:retry=",
            "kafee:v1:retry=1",
            "kafee:v1:retry=-1:1",
            "kafee:v1:retry=1:0",
            "kafee:v1:retry=1:+2",
            "kafee:v1:retry=99999999999999999999:1",
            "kafee:v1:nope",
        ] {
            assert!(
                matches!(
                    RetryState::parse_metadata(bad),
                    Err(MetadataError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_retry_count_only_applies_to_the_offset_it_names() {
        let s = Some(RetryState {
            offset: 100,
            attempts: 2,
        });
        assert_eq!(RetryState::attempt_for(s, 100), 3);
        assert_eq!(RetryState::attempt_for(s, 150), 1);
        assert_eq!(RetryState::attempt_for(None, 100), 1);
    }

    fn strategy() -> impl Strategy<Value = AckStrategy> {
        prop_oneof![
            Just(AckStrategy::AllOrNothing),
            Just(AckStrategy::BestEffort),
            Just(AckStrategy::LastSuccessful),
        ]
    }

    proptest! {
        #[test]
        fn retry_metadata_round_trips(offset in 0i64..=i64::MAX, attempts in 1u32..=u32::MAX) {
            let s = RetryState { offset, attempts };
            prop_assert_eq!(RetryState::parse_metadata(&s.to_metadata()), Ok(Some(s)));
        }

        #[test]
        fn metadata_parse_never_panics(text in ".{0,40}", tail in "[0-9:=a-z-]{0,20}") {
            let _ = RetryState::parse_metadata(&text);
            let _ = RetryState::parse_metadata(&format!("kafee:v1:{tail}"));
        }

        /// P1 at the decision level: no decision commits past a failed message
        /// that is neither dead-lettered nor explicitly skipped (best_effort
        /// without a dead-letter topic).
        #[test]
        fn no_decision_commits_past_an_unresolved_failure(
            s in strategy(),
            dead_letter in any::<bool>(),
            max_attempts in 1u32..5,
            attempt in 1u32..8,
            len in 1usize..12,
            failed_mask in any::<u16>(),
            whole in any::<bool>(),
        ) {
            let offsets: Vec<i64> = (0..len as i64).map(|i| 100 + 2 * i).collect();
            let b = OffsetList { offsets: &offsets, next_offset: offsets[len - 1] + 3 };
            let failed: Vec<usize> = (0..len).filter(|i| failed_mask & (1 << i) != 0).collect();
            let result = if whole { BatchResult::Err("boom".into()) } else { BatchResult::Partial(failed.clone()) };
            let failed = if whole { (0..len).collect() } else { failed };
            let p = AckPolicy { strategy: s, max_attempts, dead_letter, backoff: Backoff::new(ms(1), ms(50)) };
            let d = decide(&p, &b, &result, attempt).unwrap();
            match d {
                Decision::Commit { through, skipped } => {
                    prop_assert_eq!(through, b.next_offset);
                    prop_assert_eq!(&skipped, &failed);
                    if !skipped.is_empty() {
                        prop_assert_eq!(s, AckStrategy::BestEffort);
                        prop_assert!(!dead_letter);
                    }
                }
                Decision::Retry(plan) | Decision::KeepRetrying(plan) => {
                    prop_assert!(!failed.is_empty());
                    let first_failed = offsets[failed[0]];
                    prop_assert!(plan.commit_through <= first_failed);
                    prop_assert_eq!(plan.from_offset, plan.commit_through);
                    prop_assert!(plan.messages.contains(&failed[0]));
                    prop_assert_eq!(plan.messages.end, len);
                    prop_assert!(plan.backoff <= ms(50));
                    prop_assert!(plan.attempts < max_attempts || !dead_letter);
                }
                Decision::DeadLetter { messages, then_commit_through, commit_before, reprocess_from, .. } => {
                    prop_assert!(dead_letter);
                    prop_assert!(!messages.is_empty());
                    prop_assert!(commit_before <= offsets[messages[0]]);
                    // Every failure below the commit offset is dead-lettered.
                    for &i in &failed {
                        if offsets[i] < then_commit_through {
                            prop_assert!(messages.contains(&i));
                        }
                    }
                    if let Some(from) = reprocess_from {
                        prop_assert_eq!(from, then_commit_through);
                    } else {
                        prop_assert_eq!(then_commit_through, b.next_offset);
                    }
                }
            }
        }
    }
}
