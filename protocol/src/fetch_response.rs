//! A bounded, zero-copy decoder for Fetch responses, versions 4..=12.
//!
//! kafka-protocol 0.18 reserves `Vec::with_capacity(count)` from array counts
//! read off the wire before it checks that the body holds that many elements
//! (see [`crate::codec`]), so a few malformed bytes abort the process. The
//! Fetch response is also the hot path, where a copy of every record set
//! costs. This decoder:
//!
//! - checks every count and length against the bytes that remain *before*
//!   allocating: a count of `n` elements whose smallest encoding is `m` bytes
//!   needs `n * m <= remaining`, so what it allocates stays within a small
//!   multiple of the body's size;
//! - returns every malformed input as a typed [`DecodeError::Body`] naming
//!   the API, the version and the field (`responses[0].partitions[2].records:
//!   length 1000 exceeds the 12 bytes remaining`), and never panics;
//! - hands out each partition's record set as a [`Bytes`] slice of the body
//!   (no copy);
//! - reads the flexible layout of v12 (compact arrays, strings and bytes,
//!   tagged fields), parses the partition tags `diverging_epoch`,
//!   `current_leader` and `snapshot_id`, and skips unknown tags by their size.
//!
//! The input is the response *body*, after the response header (what
//! `InFlight::wait_body` in kafee-client returns). The whole body must be
//! consumed: leftover bytes are a [`DecodeError::TrailingBytes`], since they
//! mean the body is not the version we think it is.
//!
//! ```
//! use bytes::{BufMut, Bytes, BytesMut};
//! use kafee_protocol::fetch_response::decode_fetch_response;
//!
//! // A v4 body: throttle time, one topic "t" with one partition and no records.
//! let mut b = BytesMut::new();
//! b.put_i32(0); // throttle_time_ms
//! b.put_i32(1); // responses: 1 topic
//! b.put_i16(1);
//! b.put_slice(b"t");
//! b.put_i32(1); // partitions: 1
//! b.put_i32(0); // partition_index
//! b.put_i16(0); // error_code
//! b.put_i64(42); // high_watermark
//! b.put_i64(40); // last_stable_offset
//! b.put_i32(-1); // aborted_transactions: null
//! b.put_i32(-1); // records: null
//! let view = decode_fetch_response(4, b.freeze()).unwrap();
//! assert_eq!(view.topics[0].name, "t");
//! assert_eq!(view.topics[0].partitions[0].high_watermark, 42);
//!
//! // An array count of 2^31 - 1 in 12 bytes is an error, not an abort.
//! let evil = Bytes::from_static(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
//! let err = decode_fetch_response(4, evil).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "cannot decode Fetch v4 body: responses: 2147483647 elements of at least 6 bytes \
//!      do not fit in the 4 bytes remaining"
//! );
//! ```

use std::fmt;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::bounded::{Fault, Reader};
use crate::error::DecodeError;
use crate::records::AbortedTransaction;

/// Lowest Fetch response version [`decode_fetch_response`] reads.
pub const MIN_VERSION: i16 = 4;
/// Highest Fetch response version [`decode_fetch_response`] reads.
pub const MAX_VERSION: i16 = 12;
/// First flexible Fetch version (compact encodings, tagged fields).
const FIRST_FLEXIBLE: i16 = 12;

/// A decoded Fetch response; record sets are slices of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponseView {
    /// Time the request was throttled for quota, in milliseconds.
    pub throttle_time_ms: i32,
    /// Top-level error code (v7+; 0 before).
    pub error_code: i16,
    /// Fetch session id (v7+; 0 before, or when there is no session).
    pub session_id: i32,
    /// One entry per topic (`responses` in Kafka's schema).
    pub topics: Vec<FetchTopicView>,
}

/// One topic of a Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTopicView {
    /// The topic name.
    pub name: String,
    /// One entry per partition.
    pub partitions: Vec<FetchPartitionView>,
}

/// One partition of a Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionView {
    /// The partition index.
    pub partition_index: i32,
    /// The partition's error code.
    pub error_code: i16,
    /// The high watermark: offset after the last fully replicated record.
    pub high_watermark: i64,
    /// Last stable offset: offset after the last decided transaction (-1 if unknown).
    pub last_stable_offset: i64,
    /// Log start offset (v5+; -1 before).
    pub log_start_offset: i64,
    /// Aborted transactions in the returned range (`None` when the broker sent null).
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
    /// Replica the broker prefers the consumer to fetch from (v11+; -1 for none or before v11).
    pub preferred_read_replica: i32,
    /// The record set, a slice of the response body (`None` when the broker sent null).
    pub records: Option<Bytes>,
    /// v12 tag 0: where the follower's log diverges (sent to followers, not consumers).
    pub diverging_epoch: Option<EpochEndOffset>,
    /// v12 tag 1: the current leader, when the broker answered that it is not it.
    pub current_leader: Option<LeaderIdAndEpoch>,
    /// v12 tag 2: snapshot to fetch when the offset is below the log start (KRaft followers).
    pub snapshot_id: Option<SnapshotId>,
}

/// The `diverging_epoch` tag of a Fetch response partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    /// The leader epoch.
    pub epoch: i32,
    /// The end offset of that epoch.
    pub end_offset: i64,
}

/// The `current_leader` tag of a Fetch response partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderIdAndEpoch {
    /// The id of the current leader, or -1 if unknown.
    pub leader_id: i32,
    /// The latest known leader epoch.
    pub leader_epoch: i32,
}

/// The `snapshot_id` tag of a Fetch response partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotId {
    /// End offset of the snapshot.
    pub end_offset: i64,
    /// Epoch of the snapshot.
    pub epoch: i32,
}

/// Decodes a Fetch response body (after the response header) of `version`
/// (4..=12). Every malformed input is a [`DecodeError`]; nothing is
/// allocated from a count or length before it is checked against the bytes
/// that remain. The record sets are slices of `body`.
pub fn decode_fetch_response(version: i16, body: Bytes) -> Result<FetchResponseView, DecodeError> {
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(DecodeError::Body {
            api_key: ApiKey::Fetch,
            version,
            message: format!(
                "kafee decodes Fetch responses of versions {MIN_VERSION}..={MAX_VERSION} only"
            ),
        });
    }
    let mut d = Decoder {
        r: Reader::new(&body),
        version,
        flexible: version >= FIRST_FLEXIBLE,
    };
    let view = d.response()?;
    if d.r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes {
            api_key: ApiKey::Fetch,
            version,
            remaining: d.r.remaining(),
        });
    }
    Ok(view)
}

impl FetchResponseView {
    /// Same as [`decode_fetch_response`].
    pub fn decode(version: i16, body: Bytes) -> Result<FetchResponseView, DecodeError> {
        decode_fetch_response(version, body)
    }
}

/// Where in the response a field is, for error messages.
#[derive(Clone, Copy, Default)]
struct Path {
    topic: Option<usize>,
    partition: Option<usize>,
    aborted: Option<usize>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = self.topic {
            write!(f, "responses[{t}].")?;
        }
        if let Some(p) = self.partition {
            write!(f, "partitions[{p}].")?;
        }
        if let Some(a) = self.aborted {
            write!(f, "aborted_transactions[{a}].")?;
        }
        Ok(())
    }
}

struct Decoder<'a> {
    r: Reader<'a>,
    version: i16,
    flexible: bool,
}

impl<'a> Decoder<'a> {
    fn fail(&self, path: Path, field: &str, fault: Fault) -> DecodeError {
        DecodeError::Body {
            api_key: ApiKey::Fetch,
            version: self.version,
            message: format!("{path}{field}: {fault}"),
        }
    }

    fn response(&mut self) -> Result<FetchResponseView, DecodeError> {
        let top = Path::default();
        let throttle_time_ms = self
            .r
            .i32()
            .map_err(|e| self.fail(top, "throttle_time_ms", e))?;
        let (error_code, session_id) = if self.version >= 7 {
            let error_code = self.r.i16().map_err(|e| self.fail(top, "error_code", e))?;
            let session_id = self.r.i32().map_err(|e| self.fail(top, "session_id", e))?;
            (error_code, session_id)
        } else {
            (0, 0)
        };
        let count = self
            .r
            .count(self.flexible, self.topic_min_size())
            .map_err(|e| self.fail(top, "responses", e))?
            .ok_or_else(|| self.fail(top, "responses", Fault::Null))?;
        let mut topics = Vec::with_capacity(count);
        for t in 0..count {
            topics.push(self.topic(t)?);
        }
        if self.flexible {
            self.r
                .skip_tagged_fields()
                .map_err(|e| self.fail(top, "tagged fields", e))?;
        }
        Ok(FetchResponseView {
            throttle_time_ms,
            error_code,
            session_id,
            topics,
        })
    }

    /// Smallest encoding of a topic: empty name, empty partition array (and
    /// no tags when flexible).
    fn topic_min_size(&self) -> usize {
        if self.flexible {
            1 + 1 + 1
        } else {
            2 + 4
        }
    }

    /// Smallest encoding of a partition at this version.
    fn partition_min_size(&self) -> usize {
        let v = self.version;
        let mut size = 4 + 2 + 8 + 8; // index, error, high watermark, last stable offset
        if v >= 5 {
            size += 8; // log start offset
        }
        size += if self.flexible { 1 } else { 4 }; // aborted transactions
        if v >= 11 {
            size += 4; // preferred read replica
        }
        size += if self.flexible { 1 } else { 4 }; // records
        if self.flexible {
            size += 1; // tagged fields
        }
        size
    }

    fn topic(&mut self, t: usize) -> Result<FetchTopicView, DecodeError> {
        let path = Path {
            topic: Some(t),
            ..Path::default()
        };
        let name = self
            .r
            .string(self.flexible)
            .map_err(|e| self.fail(path, "topic", e))?;
        let count = self
            .r
            .count(self.flexible, self.partition_min_size())
            .map_err(|e| self.fail(path, "partitions", e))?
            .ok_or_else(|| self.fail(path, "partitions", Fault::Null))?;
        let mut partitions = Vec::with_capacity(count);
        for p in 0..count {
            partitions.push(self.partition(t, p)?);
        }
        if self.flexible {
            self.r
                .skip_tagged_fields()
                .map_err(|e| self.fail(path, "tagged fields", e))?;
        }
        Ok(FetchTopicView { name, partitions })
    }

    fn partition(&mut self, t: usize, p: usize) -> Result<FetchPartitionView, DecodeError> {
        let path = Path {
            topic: Some(t),
            partition: Some(p),
            aborted: None,
        };
        let v = self.version;
        let flexible = self.flexible;
        let partition_index = self
            .r
            .i32()
            .map_err(|e| self.fail(path, "partition_index", e))?;
        let error_code = self.r.i16().map_err(|e| self.fail(path, "error_code", e))?;
        let high_watermark = self
            .r
            .i64()
            .map_err(|e| self.fail(path, "high_watermark", e))?;
        let last_stable_offset = self
            .r
            .i64()
            .map_err(|e| self.fail(path, "last_stable_offset", e))?;
        let log_start_offset = if v >= 5 {
            self.r
                .i64()
                .map_err(|e| self.fail(path, "log_start_offset", e))?
        } else {
            -1
        };
        let aborted_min = if flexible { 8 + 8 + 1 } else { 8 + 8 };
        let aborted_transactions = match self
            .r
            .count(flexible, aborted_min)
            .map_err(|e| self.fail(path, "aborted_transactions", e))?
        {
            None => None,
            Some(count) => {
                let mut list = Vec::with_capacity(count);
                for a in 0..count {
                    let path = Path {
                        aborted: Some(a),
                        ..path
                    };
                    let producer_id = self
                        .r
                        .i64()
                        .map_err(|e| self.fail(path, "producer_id", e))?;
                    let first_offset = self
                        .r
                        .i64()
                        .map_err(|e| self.fail(path, "first_offset", e))?;
                    if flexible {
                        self.r
                            .skip_tagged_fields()
                            .map_err(|e| self.fail(path, "tagged fields", e))?;
                    }
                    list.push(AbortedTransaction {
                        producer_id,
                        first_offset,
                    });
                }
                Some(list)
            }
        };
        let preferred_read_replica = if v >= 11 {
            self.r
                .i32()
                .map_err(|e| self.fail(path, "preferred_read_replica", e))?
        } else {
            -1
        };
        let records = self
            .r
            .nullable_bytes(flexible)
            .map_err(|e| self.fail(path, "records", e))?;
        let mut view = FetchPartitionView {
            partition_index,
            error_code,
            high_watermark,
            last_stable_offset,
            log_start_offset,
            aborted_transactions,
            preferred_read_replica,
            records,
            diverging_epoch: None,
            current_leader: None,
            snapshot_id: None,
        };
        if flexible {
            let mut failed_tag = "tagged fields";
            let result = self.r.tagged_fields(|tag, sub| {
                match tag {
                    0 => {
                        failed_tag = "diverging_epoch";
                        let epoch = sub.i32()?;
                        let end_offset = sub.i64()?;
                        sub.skip_tagged_fields()?;
                        view.diverging_epoch = Some(EpochEndOffset { epoch, end_offset });
                    }
                    1 => {
                        failed_tag = "current_leader";
                        let leader_id = sub.i32()?;
                        let leader_epoch = sub.i32()?;
                        sub.skip_tagged_fields()?;
                        view.current_leader = Some(LeaderIdAndEpoch {
                            leader_id,
                            leader_epoch,
                        });
                    }
                    2 => {
                        failed_tag = "snapshot_id";
                        let end_offset = sub.i64()?;
                        let epoch = sub.i32()?;
                        sub.skip_tagged_fields()?;
                        view.snapshot_id = Some(SnapshotId { end_offset, epoch });
                    }
                    _ => {
                        sub.skip_rest();
                    }
                }
                if sub.remaining() != 0 {
                    return Err(Fault::TagTrailing {
                        tag,
                        left: sub.remaining(),
                    });
                }
                // Errors in the next tag's header are not this tag's.
                failed_tag = "tagged fields";
                Ok(())
            });
            result.map_err(|e| self.fail(path, failed_tag, e))?;
        }
        Ok(view)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
