//! Encoder of magic v2 record batches.

use bytes::Bytes;

use super::batch::{
    ATTRIBUTES_AT, BATCH_LENGTH_AT, CONTROL_BIT, CRC_AT, DELETE_HORIZON_BIT, TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
};
use super::compression::compress;
use super::control::ControlRecord;
use super::record::Header;
use super::varint::{varint_len, write_varint, write_varlong};
use super::{Compression, TimestampType, LOG_OVERHEAD, NO_PRODUCER_ID, RECORD_BATCH_HEADER_SIZE};

/// Why a batch could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Offsets within a batch must strictly increase.
    #[error("record offset {offset} does not follow the previous offset {previous}")]
    OffsetNotIncreasing {
        /// The offset given.
        offset: i64,
        /// The previous record's offset.
        previous: i64,
    },
    /// The offset is below the base offset or its delta does not fit an i32.
    #[error("record offset {offset} is not within i32 range above base offset {base_offset}")]
    OffsetDeltaOutOfRange {
        /// The offset given.
        offset: i64,
        /// The batch's base offset.
        base_offset: i64,
    },
    /// `timestamp - base_timestamp` overflows an i64.
    #[error("timestamp {timestamp} is too far from the base timestamp {base_timestamp}")]
    TimestampDeltaOverflow {
        /// The timestamp given.
        timestamp: i64,
        /// The batch's base timestamp (the first record's).
        base_timestamp: i64,
    },
    /// A key, value or header does not fit the protocol's i32 lengths, or the
    /// batch exceeds i32 bytes or records.
    #[error("{what} of {len} bytes/records exceeds the protocol's i32 limit")]
    TooLarge {
        /// Which field.
        what: &'static str,
        /// Its size.
        len: usize,
    },
    /// The compressor failed.
    #[error("{codec} compression failed: {message}")]
    Compression {
        /// Codec used.
        codec: Compression,
        /// What the compressor reported.
        message: String,
    },
}

/// Builds one magic v2 record batch, for the producer and for tests.
///
/// ```
/// use kafee_protocol::records::{Compression, Header, RecordBatch, RecordBatchBuilder};
///
/// let mut builder = RecordBatchBuilder::new(100)
///     .compression(Compression::Lz4)
///     .producer(7, 0, 0);
/// builder.append(1_000, None, Some(b"a"), &[Header { key: b"h", value: None }])?;
/// builder.append(1_001, Some(b"k"), None, &[])?;
/// let batch = RecordBatch::parse(builder.build()?)?;
/// assert_eq!(batch.last_offset(), 101);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    base_offset: i64,
    compression: Compression,
    timestamp_type: TimestampType,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    delete_horizon: Option<i64>,
    last_offset_delta: Option<i32>,
    records: Vec<u8>,
    count: i32,
    last_offset: Option<i64>,
    base_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    scratch: Vec<u8>,
}

impl RecordBatchBuilder {
    /// An empty uncompressed `CreateTime` batch starting at `base_offset`,
    /// without producer id.
    pub fn new(base_offset: i64) -> RecordBatchBuilder {
        RecordBatchBuilder {
            base_offset,
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            partition_leader_epoch: -1,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            delete_horizon: None,
            last_offset_delta: None,
            records: Vec::new(),
            count: 0,
            last_offset: None,
            base_timestamp: None,
            max_timestamp: None,
            scratch: Vec::new(),
        }
    }

    /// Compression codec of the records section (default none).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Timestamp type (default `CreateTime`).
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Partition leader epoch (default -1).
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Producer id, epoch and the sequence of the first record (default -1s).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch transactional.
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Marks the batch as a control batch (see also [`append_control`](Self::append_control)).
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Sets a delete horizon (KIP-534): written as the base timestamp, with the
    /// attribute bit set; record timestamps stay relative to it.
    pub fn delete_horizon(mut self, delete_horizon_ms: i64) -> Self {
        self.delete_horizon = Some(delete_horizon_ms);
        self
    }

    /// Overrides `last_offset_delta` (as compaction leaves it when it removes
    /// the last records); by default the last record's delta.
    pub fn last_offset_delta(mut self, last_offset_delta: i32) -> Self {
        self.last_offset_delta = Some(last_offset_delta);
        self
    }

    /// Records appended so far.
    pub fn record_count(&self) -> i32 {
        self.count
    }

    /// Uncompressed size of the records appended so far.
    pub fn records_size(&self) -> usize {
        self.records.len()
    }

    /// Offset the next [`append`](Self::append) uses.
    pub fn next_offset(&self) -> i64 {
        self.last_offset
            .map_or(self.base_offset, |o| o.saturating_add(1))
    }

    /// Appends a record at [`next_offset`](Self::next_offset); returns its offset.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<i64, EncodeError> {
        let offset = self.next_offset();
        self.append_at(offset, timestamp, key, value, headers)?;
        Ok(offset)
    }

    /// Appends a record at `offset` (above the previous one; gaps allowed, as
    /// compaction leaves them).
    pub fn append_at(
        &mut self,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<(), EncodeError> {
        if let Some(previous) = self.last_offset {
            if offset <= previous {
                return Err(EncodeError::OffsetNotIncreasing { offset, previous });
            }
        }
        let offset_delta = offset
            .checked_sub(self.base_offset)
            .filter(|d| (0..=i64::from(i32::MAX)).contains(d))
            .ok_or(EncodeError::OffsetDeltaOutOfRange {
                offset,
                base_offset: self.base_offset,
            })? as i32;
        if self.count == i32::MAX {
            return Err(EncodeError::TooLarge {
                what: "record count",
                len: self.count as usize + 1,
            });
        }
        let base_timestamp = self
            .delete_horizon
            .or(self.base_timestamp)
            .unwrap_or(timestamp);
        let timestamp_delta =
            timestamp
                .checked_sub(base_timestamp)
                .ok_or(EncodeError::TimestampDeltaOverflow {
                    timestamp,
                    base_timestamp,
                })?;

        let body = &mut self.scratch;
        body.clear();
        body.push(0); // record attributes
        write_varlong(body, timestamp_delta);
        write_varint(body, offset_delta);
        write_nullable(body, key, "key")?;
        write_nullable(body, value, "value")?;
        write_varint(body, i32_len(headers.len(), "header count")?);
        for header in headers {
            write_varint(body, i32_len(header.key.len(), "header key")?);
            body.extend_from_slice(header.key);
            write_nullable(body, header.value, "header value")?;
        }
        let body_len = i32_len(body.len(), "record")?;
        if self.records.len() + body.len() + 5 > (i32::MAX as usize) - RECORD_BATCH_HEADER_SIZE {
            return Err(EncodeError::TooLarge {
                what: "batch",
                len: self.records.len() + body.len(),
            });
        }
        self.records.reserve(varint_len(body_len) + body.len());
        write_varint(&mut self.records, body_len);
        self.records.extend_from_slice(body);

        self.count += 1;
        self.last_offset = Some(offset);
        if self.base_timestamp.is_none() {
            self.base_timestamp = Some(base_timestamp);
        }
        self.max_timestamp = Some(self.max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
        Ok(())
    }

    /// Appends a control record (marks the batch as a control batch).
    pub fn append_control(
        &mut self,
        timestamp: i64,
        marker: ControlRecord,
    ) -> Result<i64, EncodeError> {
        self.control = true;
        let key = marker.key_bytes();
        let value = marker.value_bytes();
        self.append(timestamp, Some(&key), Some(&value), &[])
    }

    /// Encodes the batch: header, (compressed) records, length and CRC32C.
    pub fn build(&self) -> Result<Bytes, EncodeError> {
        let section =
            compress(self.compression, &self.records).map_err(|e| EncodeError::Compression {
                codec: self.compression,
                message: e.to_string(),
            })?;
        let total = RECORD_BATCH_HEADER_SIZE + section.len();
        let batch_length = i32_len(total - LOG_OVERHEAD, "batch")?;
        let mut attributes = i16::from(self.compression.bits());
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= TIMESTAMP_TYPE_BIT;
        }
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        if self.delete_horizon.is_some() {
            attributes |= DELETE_HORIZON_BIT;
        }
        let last_offset_delta = self.last_offset_delta.unwrap_or_else(|| {
            self.last_offset
                .map_or(0, |o| (o - self.base_offset) as i32)
        });
        let base_timestamp = self.delete_horizon.or(self.base_timestamp).unwrap_or(-1);

        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0; 4]); // CRC, filled below
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.unwrap_or(-1).to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&section);
        debug_assert_eq!(out.len(), total);
        debug_assert_eq!(BATCH_LENGTH_AT, 8);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(Bytes::from(out))
    }
}

fn i32_len(len: usize, what: &'static str) -> Result<i32, EncodeError> {
    i32::try_from(len).map_err(|_| EncodeError::TooLarge { what, len })
}

fn write_nullable(
    out: &mut Vec<u8>,
    data: Option<&[u8]>,
    what: &'static str,
) -> Result<(), EncodeError> {
    match data {
        None => write_varint(out, -1),
        Some(d) => {
            write_varint(out, i32_len(d.len(), what)?);
            out.extend_from_slice(d);
        }
    }
    Ok(())
}
