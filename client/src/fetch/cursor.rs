//! Per-partition fetch cursors: where each assigned partition reads next, and
//! what a fetch response does to that position.
//!
//! Sans-IO: [`Cursors`] plans fetch requests (which partitions, from which
//! leader, at which offset) and applies each partition's answer, returning
//! what the fetch loop must hand out or do. The tokio loop in
//! [`super::fetcher`] only moves bytes.
//!
//! Invariants (see DESIGN.md):
//! - A cursor moves forward only by applying a response for the exact
//!   offset and assignment epoch it was planned with; a late response for a
//!   revoked, re-assigned or sought partition is dropped
//!   (`stale_response_is_dropped`).
//! - The next offset is the end of the last *whole* batch returned
//!   (`base_offset + last_offset_delta + 1`), so control batches, aborted
//!   data and compaction gaps are stepped over and a truncated tail is
//!   fetched again (`truncated_tail_is_refetched`).
//! - A batch that fails its CRC stops the cursor before it: nothing past it
//!   is handed out, it is fetched again a bounded number of times, then the
//!   partition reports the error (`corrupt_batch_is_retried_then_reported`).

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use kafee_protocol::error::ErrorCode;
use kafee_protocol::records::{
    AbortedTransaction, AbortedTransactionFilter, DecodeLimits, DecodedBatch, RecordError,
    RecordSet,
};

use super::config::{FetchConfig, OffsetReset};
use crate::admin::{IsolationLevel, TopicPartition};

/// Where a cursor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Fetch from this offset.
    Offset(i64),
    /// The offset must be looked up first (ListOffsets) per this policy.
    Reset(ResetTo),
    /// The partition reported an error and waits for a seek.
    Failed,
}

/// The offset a reset looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The log start offset.
    Earliest,
    /// The log end offset (last stable offset under `read_committed`).
    Latest,
}

#[derive(Debug)]
struct Cursor {
    epoch: u64,
    position: Position,
    leader_epoch: i32,
    paused: bool,
    in_flight: bool,
    corrupt_attempts: u32,
    not_before: Option<Instant>,
}

/// One partition of a planned fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// The offset asked for.
    pub fetch_offset: i64,
    /// The leader epoch we believe current (-1 when unknown).
    pub leader_epoch: i32,
    /// The assignment epoch of the cursor when planned.
    pub epoch: u64,
}

/// What planning found besides requests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Partitions to fetch, by leader node id.
    pub by_leader: BTreeMap<i32, Vec<PlannedPartition>>,
    /// Partitions whose leader is unknown: metadata must be refreshed.
    pub missing_leader: Vec<TopicPartition>,
    /// Partitions whose offset must be looked up first.
    pub resets: Vec<(TopicPartition, ResetTo, u64)>,
}

/// A partition's fetched records, ready for the caller.
///
/// Holds the decoded batches (compressed ones decompressed into one buffer
/// each); records borrow from them. Records below `fetch_offset` in the first
/// batch are part of the batch but must be skipped: [`records`](Self::records)
/// does that.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// The assignment epoch the data was fetched under (see
    /// [`Cursors::epoch`]); data of an older epoch must not be handed out.
    pub epoch: u64,
    /// The offset the fetch asked for: the first record to hand out.
    pub fetch_offset: i64,
    /// The offset the cursor moved to (end of the last whole batch).
    pub next_offset: i64,
    /// The partition's high watermark when the broker answered.
    pub high_watermark: i64,
    /// The last stable offset (-1 when the broker did not say).
    pub last_stable_offset: i64,
    /// The batches that carry records for the caller, in offset order.
    pub batches: Vec<DecodedBatch>,
    /// Bytes of the record set on the wire that these batches came from
    /// (whole batches only, skipped ones included).
    pub wire_bytes: usize,
}

impl FetchedPartition {
    /// Iterates the records to hand out: every record of every batch at or
    /// after `fetch_offset`, in order. Stops at the first malformed record
    /// with its error.
    pub fn records(
        &self,
    ) -> impl Iterator<Item = Result<kafee_protocol::records::Record<'_>, RecordError>> + '_ {
        let from = self.fetch_offset;
        self.batches.iter().flat_map(move |b| {
            b.records().filter(move |r| match r {
                Ok(r) => r.offset() >= from,
                Err(_) => true,
            })
        })
    }

    /// Lag after this data: high watermark minus the next offset.
    pub fn lag(&self) -> i64 {
        (self.high_watermark - self.next_offset).max(0)
    }
}

/// An error that belongs to one partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// The broker answered an error code for the partition that the fetch
    /// loop cannot resolve by itself.
    #[error("fetch {topic}/{partition} at offset {offset}: {code}")]
    Broker {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset fetched.
        offset: i64,
        /// The broker's error.
        code: ErrorCode,
    },
    /// The offset is out of range and `auto.offset.reset` is `none`.
    #[error(
        "fetch {topic}/{partition}: offset {offset} out of range and auto.offset.reset is none"
    )]
    OffsetOutOfRange {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset fetched.
        offset: i64,
    },
    /// A batch stayed malformed (CRC, framing, decompression) after retries.
    #[error("fetch {topic}/{partition} at offset {offset}: {message}")]
    Corrupt {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset fetched.
        offset: i64,
        /// What was wrong, from the record decoder.
        message: String,
    },
    /// A batch is larger than the fetch allows and the broker returned only
    /// part of it (brokers before KIP-74).
    #[error("fetch {topic}/{partition} at offset {offset}: a batch exceeds max.partition.fetch.bytes ({max} bytes)")]
    RecordTooLarge {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset fetched.
        offset: i64,
        /// The partition byte limit.
        max: i32,
    },
}

/// What applying one partition's answer calls for.
#[derive(Debug)]
pub enum Applied {
    /// Records to hand out (the cursor moved to `next_offset`).
    Data(FetchedPartition),
    /// Nothing to hand out; the cursor may have moved (control batches,
    /// aborted data) or the answer was empty or stale.
    Nothing,
    /// The leader moved: refresh metadata, keep the offset.
    RefreshMetadata,
    /// The offset must be looked up (out of range): log it, then reset.
    Reset {
        /// The partition.
        tp: TopicPartition,
        /// The offset that was out of range.
        offset: i64,
        /// Where to reset to.
        to: ResetTo,
    },
    /// The partition failed; it waits for a seek.
    Error(PartitionError),
}

/// One partition's answer in a fetch response, as the cursor needs it.
#[derive(Debug, Clone, Default)]
pub struct PartitionAnswer {
    /// The error code.
    pub error_code: i16,
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset (-1 if unknown).
    pub last_stable_offset: i64,
    /// Aborted transactions (read_committed only).
    pub aborted_transactions: Vec<AbortedTransaction>,
    /// The record set bytes.
    pub records: Option<Bytes>,
}

/// All cursors of the assigned partitions.
#[derive(Debug)]
pub struct Cursors {
    config: FetchConfig,
    cursors: BTreeMap<TopicPartition, Cursor>,
    next_epoch: u64,
}

impl Cursors {
    /// No partitions yet.
    pub fn new(config: FetchConfig) -> Self {
        Cursors {
            config,
            cursors: BTreeMap::new(),
            next_epoch: 1,
        }
    }

    /// The fetch settings.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Starts (or restarts) fetching `tp` at `position`. Any data in flight
    /// or buffered for it becomes stale. Returns the new assignment epoch.
    pub fn assign(&mut self, tp: TopicPartition, position: Position) -> u64 {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.cursors.insert(
            tp,
            Cursor {
                epoch,
                position,
                leader_epoch: -1,
                paused: false,
                in_flight: false,
                corrupt_attempts: 0,
                not_before: None,
            },
        );
        epoch
    }

    /// Moves `tp` to `position` (an explicit seek), keeping pause state.
    /// Returns the new epoch, or `None` when `tp` is not assigned.
    pub fn seek(&mut self, tp: &TopicPartition, position: Position) -> Option<u64> {
        let epoch = self.next_epoch;
        let cursor = self.cursors.get_mut(tp)?;
        self.next_epoch += 1;
        cursor.epoch = epoch;
        cursor.position = position;
        cursor.in_flight = false;
        cursor.corrupt_attempts = 0;
        cursor.not_before = None;
        Some(epoch)
    }

    /// Stops fetching `tp`; its in-flight and buffered data become stale.
    pub fn revoke(&mut self, tp: &TopicPartition) -> bool {
        self.cursors.remove(tp).is_some()
    }

    /// Pauses or resumes fetching `tp` (back-pressure). Returns whether it
    /// is assigned.
    pub fn set_paused(&mut self, tp: &TopicPartition, paused: bool) -> bool {
        match self.cursors.get_mut(tp) {
            Some(c) => {
                c.paused = paused;
                true
            }
            None => false,
        }
    }

    /// The current assignment epoch of `tp` (`None` when not assigned).
    /// Fetched data whose epoch differs must be dropped.
    pub fn epoch(&self, tp: &TopicPartition) -> Option<u64> {
        self.cursors.get(tp).map(|c| c.epoch)
    }

    /// Where `tp` stands.
    pub fn position(&self, tp: &TopicPartition) -> Option<Position> {
        self.cursors.get(tp).map(|c| c.position)
    }

    /// The assigned partitions.
    pub fn assigned(&self) -> impl Iterator<Item = &TopicPartition> {
        self.cursors.keys()
    }

    /// Whether a reset lookup for `tp` is already running is tracked by the
    /// caller; this marks the lookup's result. Ignored when the epoch moved.
    pub fn reset_done(&mut self, tp: &TopicPartition, epoch: u64, offset: i64) {
        if let Some(c) = self.cursors.get_mut(tp) {
            if c.epoch == epoch && matches!(c.position, Position::Reset(_)) {
                c.position = Position::Offset(offset);
                c.in_flight = false;
            }
        }
    }

    /// Marks a reset lookup as started, so it is not planned twice.
    pub fn reset_started(&mut self, tp: &TopicPartition, epoch: u64) {
        if let Some(c) = self.cursors.get_mut(tp) {
            if c.epoch == epoch {
                c.in_flight = true;
            }
        }
    }

    /// A reset lookup failed: plan it again after the backoff.
    pub fn reset_failed(&mut self, tp: &TopicPartition, epoch: u64, now: Instant) {
        if let Some(c) = self.cursors.get_mut(tp) {
            if c.epoch == epoch {
                c.in_flight = false;
                c.not_before = Some(now + self.config.retry_backoff);
            }
        }
    }

    /// Plans the next requests: every partition that is positioned, not
    /// paused, not already in flight, not backing off and whose leader is
    /// known, grouped by leader; `busy` leaders (a fetch already in flight)
    /// are skipped. Planned partitions are marked in flight.
    pub fn plan(
        &mut self,
        now: Instant,
        leader_of: impl Fn(&TopicPartition) -> Option<(i32, i32)>,
        busy: impl Fn(i32) -> bool,
    ) -> Plan {
        let mut plan = Plan::default();
        for (tp, c) in self.cursors.iter_mut() {
            if c.paused || c.in_flight || c.not_before.is_some_and(|t| t > now) {
                continue;
            }
            match c.position {
                Position::Failed => {}
                Position::Reset(to) => plan.resets.push((tp.clone(), to, c.epoch)),
                Position::Offset(offset) => match leader_of(tp) {
                    None => plan.missing_leader.push(tp.clone()),
                    Some((node, _)) if busy(node) => {}
                    Some((node, leader_epoch)) => {
                        c.in_flight = true;
                        c.leader_epoch = leader_epoch;
                        plan.by_leader
                            .entry(node)
                            .or_default()
                            .push(PlannedPartition {
                                tp: tp.clone(),
                                fetch_offset: offset,
                                leader_epoch,
                                epoch: c.epoch,
                            });
                    }
                },
            }
        }
        plan
    }

    /// The earliest time a backing-off partition becomes plannable.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.cursors.values().filter_map(|c| c.not_before).min()
    }

    /// A planned partition's request failed as a whole (connection error,
    /// timeout): plan it again after the backoff, same offset.
    pub fn request_failed(&mut self, planned: &PlannedPartition, now: Instant) {
        let backoff = self.config.retry_backoff;
        if let Some(c) = self.cursor_for(planned) {
            c.in_flight = false;
            c.not_before = Some(now + backoff);
        }
    }

    fn cursor_for(&mut self, planned: &PlannedPartition) -> Option<&mut Cursor> {
        self.cursors
            .get_mut(&planned.tp)
            .filter(|c| c.epoch == planned.epoch)
    }

    /// Applies one partition's answer to the request it was planned in.
    pub fn apply(
        &mut self,
        planned: &PlannedPartition,
        answer: PartitionAnswer,
        now: Instant,
    ) -> Applied {
        let config = self.config.clone();
        let Some(cursor) = self.cursor_for(planned) else {
            return Applied::Nothing;
        };
        cursor.in_flight = false;
        if cursor.position != Position::Offset(planned.fetch_offset) {
            return Applied::Nothing;
        }
        let tp = &planned.tp;
        let offset = planned.fetch_offset;
        let code = ErrorCode::from(answer.error_code);
        if code != ErrorCode::NONE {
            return Self::apply_error(&config, cursor, tp, offset, code, now);
        }
        let Some(bytes) = answer.records.filter(|b| !b.is_empty()) else {
            return Applied::Nothing;
        };
        let mut filter = (config.isolation == IsolationLevel::ReadCommitted)
            .then(|| AbortedTransactionFilter::new(answer.aborted_transactions));
        let limits = DecodeLimits::with_max_decompressed_bytes(config.max_decompressed_bytes);
        let mut set = RecordSet::new(bytes).verify_crc(config.verify_crc);
        let mut next = offset;
        let mut batches = Vec::new();
        let mut failure: Option<RecordError> = None;
        for item in set.by_ref() {
            let batch = match item {
                Ok(batch) => batch,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if batch.next_offset() <= offset {
                continue;
            }
            let deliver = match filter.as_mut() {
                Some(f) => match f.classify(&batch) {
                    Ok(action) => action.delivers(),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                },
                None => !batch.is_control(),
            };
            if deliver {
                match batch.decode(&limits) {
                    Ok(decoded) => batches.push(decoded),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            next = batch.next_offset();
        }
        let wire_bytes = set.bytes_consumed();
        if let Some(e) = failure {
            if next == offset {
                // Nothing usable before the bad batch: fetch it again, a
                // bounded number of times.
                cursor.corrupt_attempts += 1;
                if cursor.corrupt_attempts > config.corrupt_retries {
                    cursor.position = Position::Failed;
                    return Applied::Error(PartitionError::Corrupt {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset,
                        message: e.to_string(),
                    });
                }
                cursor.not_before = Some(now + config.retry_backoff);
                return Applied::Nothing;
            }
            // Hand out what came before it; the next fetch starts at the bad
            // batch and meets it again.
        } else {
            cursor.corrupt_attempts = 0;
        }
        if next == offset && set.is_truncated() && wire_bytes == 0 {
            cursor.position = Position::Failed;
            return Applied::Error(PartitionError::RecordTooLarge {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
                max: config.max_partition_bytes,
            });
        }
        cursor.position = Position::Offset(next);
        if batches.is_empty() {
            return Applied::Nothing;
        }
        Applied::Data(FetchedPartition {
            tp: tp.clone(),
            epoch: cursor.epoch,
            fetch_offset: offset,
            next_offset: next,
            high_watermark: answer.high_watermark,
            last_stable_offset: answer.last_stable_offset,
            batches,
            wire_bytes,
        })
    }

    fn apply_error(
        config: &FetchConfig,
        cursor: &mut Cursor,
        tp: &TopicPartition,
        offset: i64,
        code: ErrorCode,
        now: Instant,
    ) -> Applied {
        match code {
            ErrorCode::OFFSET_OUT_OF_RANGE => match config.offset_reset {
                OffsetReset::Earliest | OffsetReset::Latest => {
                    let to = if config.offset_reset == OffsetReset::Earliest {
                        ResetTo::Earliest
                    } else {
                        ResetTo::Latest
                    };
                    cursor.position = Position::Reset(to);
                    Applied::Reset {
                        tp: tp.clone(),
                        offset,
                        to,
                    }
                }
                OffsetReset::None => {
                    cursor.position = Position::Failed;
                    Applied::Error(PartitionError::OffsetOutOfRange {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset,
                    })
                }
            },
            ErrorCode::NOT_LEADER_OR_FOLLOWER
            | ErrorCode::LEADER_NOT_AVAILABLE
            | ErrorCode::REPLICA_NOT_AVAILABLE
            | ErrorCode::FENCED_LEADER_EPOCH
            | ErrorCode::UNKNOWN_LEADER_EPOCH
            | ErrorCode::NOT_ENOUGH_REPLICAS
            | ErrorCode::KAFKA_STORAGE_ERROR
            | ErrorCode::OFFSET_NOT_AVAILABLE
            | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            | ErrorCode::UNKNOWN_TOPIC_ID
            | ErrorCode::NOT_CONTROLLER => {
                cursor.not_before = Some(now + config.retry_backoff);
                Applied::RefreshMetadata
            }
            ErrorCode::CORRUPT_MESSAGE => {
                cursor.corrupt_attempts += 1;
                if cursor.corrupt_attempts > config.corrupt_retries {
                    cursor.position = Position::Failed;
                    return Applied::Error(PartitionError::Broker {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset,
                        code,
                    });
                }
                cursor.not_before = Some(now + config.retry_backoff);
                Applied::Nothing
            }
            code if code.is_retriable() => {
                cursor.not_before = Some(now + config.retry_backoff);
                Applied::Nothing
            }
            code => {
                cursor.position = Position::Failed;
                Applied::Error(PartitionError::Broker {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset,
                    code,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
