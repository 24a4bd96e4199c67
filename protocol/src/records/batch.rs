//! A view of one magic v2 record batch, and its decoded records section.

use bytes::Bytes;

use super::compression::decompress;
use super::record::Records;
use super::{
    Compression, DecodeLimits, RecordError, TimestampType, LOG_OVERHEAD, MIN_BATCH_LENGTH,
    NO_PRODUCER_ID, RECORD_BATCH_HEADER_SIZE,
};

// Field positions within a batch (from the first byte of base_offset).
pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const BATCH_LENGTH_AT: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const BASE_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORD_COUNT_AT: usize = 57;

pub(crate) const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
pub(crate) const CONTROL_BIT: i16 = 0x20;
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;

/// One magic v2 record batch, a view over the fetch response's `Bytes`.
///
/// Invariants established by [`RecordBatch::parse`] and
/// [`RecordSet`](super::RecordSet): the buffer holds exactly one batch
/// (`12 + batch_length` bytes, at least the 61-byte header), the magic is 2,
/// the compression codec is known and (unless CRC checking was turned off)
/// the CRC32C over attributes..end matches. Header accessors read the bytes
/// in place. Cloning is cheap (a reference count).
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

impl std::fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset_delta", &self.last_offset_delta())
            .field("record_count", &self.record_count())
            .field("compression", &self.compression())
            .field("producer_id", &self.producer_id())
            .field("is_transactional", &self.is_transactional())
            .field("is_control", &self.is_control())
            .field("wire_size", &self.wire_size())
            .finish()
    }
}

#[inline(always)]
fn be_i16(b: &[u8], at: usize) -> i16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    i16::from_be_bytes(a)
}

#[inline(always)]
pub(crate) fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

#[inline(always)]
pub(crate) fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl RecordBatch {
    /// Parses `bytes` as exactly one batch and verifies its CRC.
    ///
    /// For a fetch response's record set (several batches, maybe a truncated
    /// tail) use [`RecordSet`](super::RecordSet).
    pub fn parse(bytes: Bytes) -> Result<RecordBatch, RecordError> {
        let base_offset = if bytes.len() >= 8 {
            be_i64(&bytes, BASE_OFFSET_AT)
        } else {
            -1
        };
        if bytes.len() < LOG_OVERHEAD {
            return Err(RecordError::BatchSizeMismatch {
                base_offset,
                expected: RECORD_BATCH_HEADER_SIZE,
                actual: bytes.len(),
            });
        }
        let batch_length = be_i32(&bytes, BATCH_LENGTH_AT);
        if bytes.len() > MAGIC_AT {
            check_magic(base_offset, bytes[MAGIC_AT] as i8)?;
        }
        if batch_length < MIN_BATCH_LENGTH {
            return Err(RecordError::InvalidBatchLength {
                base_offset,
                batch_length,
                minimum: MIN_BATCH_LENGTH,
            });
        }
        let expected = LOG_OVERHEAD + batch_length as usize;
        if bytes.len() != expected {
            return Err(RecordError::BatchSizeMismatch {
                base_offset,
                expected,
                actual: bytes.len(),
            });
        }
        RecordBatch::from_checked_bytes(bytes, true)
    }

    /// Builds a batch from bytes whose length and magic were already checked.
    pub(crate) fn from_checked_bytes(
        bytes: Bytes,
        verify_crc: bool,
    ) -> Result<RecordBatch, RecordError> {
        let batch = RecordBatch { bytes };
        if verify_crc {
            let actual = batch.computed_crc();
            let expected = batch.crc();
            if actual != expected {
                return Err(RecordError::CrcMismatch {
                    base_offset: batch.base_offset(),
                    expected,
                    actual,
                });
            }
        }
        let bits = (batch.attributes() & COMPRESSION_MASK) as u8;
        if Compression::from_bits(bits).is_none() {
            return Err(RecordError::UnknownCompression {
                base_offset: batch.base_offset(),
                codec: bits,
            });
        }
        Ok(batch)
    }

    /// The whole batch as it was on the wire (`wire_size()` bytes).
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Bytes the batch occupied on the wire: `12 + batch_length`.
    pub fn wire_size(&self) -> usize {
        self.bytes.len()
    }

    /// Offset of the first record of the batch (as written by the producer's
    /// log; compaction may have removed it).
    pub fn base_offset(&self) -> i64 {
        be_i64(&self.bytes, BASE_OFFSET_AT)
    }

    /// The `batch_length` field: bytes after the length field.
    pub fn batch_length(&self) -> i32 {
        be_i32(&self.bytes, BATCH_LENGTH_AT)
    }

    /// Leader epoch of the partition when the batch was appended.
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(&self.bytes, PARTITION_LEADER_EPOCH_AT)
    }

    /// The magic byte (always 2 for a parsed batch).
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_AT] as i8
    }

    /// CRC32C stored in the header.
    pub fn crc(&self) -> u32 {
        be_i32(&self.bytes, CRC_AT) as u32
    }

    /// CRC32C computed over attributes..end of the received bytes.
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_AT..])
    }

    /// The raw attributes field.
    pub fn attributes(&self) -> i16 {
        be_i16(&self.bytes, ATTRIBUTES_AT)
    }

    /// Compression codec of the records section.
    pub fn compression(&self) -> Compression {
        Compression::from_bits((self.attributes() & COMPRESSION_MASK) as u8)
            .unwrap_or(Compression::None)
    }

    /// Whether timestamps are `CreateTime` or `LogAppendTime`.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch was written by a transactional producer.
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch holds control records (transaction markers ...).
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }

    /// Whether `base_timestamp` holds a delete horizon (KIP-534).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & DELETE_HORIZON_BIT != 0
    }

    /// The delete horizon in ms, when [`has_delete_horizon`](Self::has_delete_horizon).
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.has_delete_horizon().then(|| self.base_timestamp())
    }

    /// Offset of the last record relative to `base_offset`.
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(&self.bytes, LAST_OFFSET_DELTA_AT)
    }

    /// Offset of the last record the batch covered when written
    /// (`base_offset + last_offset_delta`); compaction keeps it.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(i64::from(self.last_offset_delta()))
    }

    /// Offset to fetch after this batch: `last_offset() + 1`. Also right for
    /// empty, control and compacted batches.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Timestamp of the first record (record timestamps are deltas from it).
    pub fn base_timestamp(&self) -> i64 {
        be_i64(&self.bytes, BASE_TIMESTAMP_AT)
    }

    /// Largest timestamp in the batch (the append time for `LogAppendTime`).
    pub fn max_timestamp(&self) -> i64 {
        be_i64(&self.bytes, MAX_TIMESTAMP_AT)
    }

    /// Producer id, or [`NO_PRODUCER_ID`](super::NO_PRODUCER_ID) (-1).
    pub fn producer_id(&self) -> i64 {
        be_i64(&self.bytes, PRODUCER_ID_AT)
    }

    /// Whether the batch carries a producer id (idempotent or transactional).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id() > NO_PRODUCER_ID
    }

    /// Producer epoch, or -1.
    pub fn producer_epoch(&self) -> i16 {
        be_i16(&self.bytes, PRODUCER_EPOCH_AT)
    }

    /// Sequence number of the first record, or -1.
    pub fn base_sequence(&self) -> i32 {
        be_i32(&self.bytes, BASE_SEQUENCE_AT)
    }

    /// Number of records the header announces (checked when decoding).
    pub fn record_count(&self) -> i32 {
        be_i32(&self.bytes, RECORD_COUNT_AT)
    }

    /// The records section as on the wire (compressed if the batch is).
    pub fn records_section(&self) -> Bytes {
        self.bytes.slice(RECORD_BATCH_HEADER_SIZE..)
    }

    /// Prepares the records for iteration: for an uncompressed batch a slice
    /// of the same buffer (no copy), for a compressed one the records section
    /// decompressed into one new buffer, bounded by `limits`.
    pub fn decode(&self, limits: &DecodeLimits) -> Result<DecodedBatch, RecordError> {
        let section = self.records_section();
        let records = match self.compression() {
            Compression::None => section,
            codec => decompress(
                codec,
                &section,
                limits.max_decompressed_bytes,
                self.base_offset(),
            )?,
        };
        let count = self.record_count();
        // Every record takes at least 7 bytes: its length varint and six
        // one-byte fields. The count cannot drive any allocation, but checking
        // it here gives the typed error before iteration starts.
        if count < 0 || count as usize > records.len() / 7 {
            return Err(RecordError::InvalidRecordCount {
                base_offset: self.base_offset(),
                count,
                available: records.len(),
            });
        }
        Ok(DecodedBatch {
            batch: self.clone(),
            records,
        })
    }
}

pub(crate) fn check_magic(base_offset: i64, magic: i8) -> Result<(), RecordError> {
    if magic == 2 {
        Ok(())
    } else {
        Err(RecordError::UnsupportedMagic { base_offset, magic })
    }
}

/// A batch whose records section is ready to iterate: a slice of the batch for
/// uncompressed batches, one decompressed buffer for compressed ones.
///
/// Records borrow from it ([`records`](Self::records)); owned records share its
/// buffer ([`Record::to_owned`](super::Record::to_owned)).
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    batch: RecordBatch,
    records: Bytes,
}

impl DecodedBatch {
    /// The batch header.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// The uncompressed records section.
    pub fn records_bytes(&self) -> &Bytes {
        &self.records
    }

    /// Iterates the records. A malformed record yields one `Err` and ends the
    /// iteration; so does a count that disagrees with the bytes.
    pub fn records(&self) -> Records<'_> {
        Records::new(&self.batch, &self.records)
    }

    /// Validates every record and returns them owned: this batch's buffer
    /// plus an index (one allocation per batch, none per record).
    pub fn owned_records(&self) -> Result<super::OwnedRecords, RecordError> {
        let capacity = self.batch.record_count().clamp(0, 4096) as usize;
        super::OwnedRecords::collect(self.records(), capacity)
    }

    /// Collects an [`OwnedRecord`](super::OwnedRecord) per record, each a
    /// `Bytes` slice of this batch's buffer (one reference count per record).
    pub fn to_owned_records(&self) -> Result<Vec<super::OwnedRecord>, RecordError> {
        let mut out = Vec::with_capacity(self.batch.record_count().clamp(0, 4096) as usize);
        for record in self.records() {
            out.push(record?.to_owned());
        }
        Ok(out)
    }
}

/// Wraps `body` (the bytes that follow the CRC field: attributes, header
/// fields, records) into a batch with a correct length and CRC, so a fuzzer
/// reaches the record parser. Bodies shorter than the header are zero-padded.
#[cfg(feature = "unstable-fuzzing")]
pub fn batch_from_body(base_offset: i64, body: &[u8]) -> Bytes {
    let min_body = RECORD_BATCH_HEADER_SIZE - ATTRIBUTES_AT;
    let mut body = body.to_vec();
    if body.len() < min_body {
        body.resize(min_body, 0);
    }
    let mut out = Vec::with_capacity(ATTRIBUTES_AT + body.len());
    out.extend_from_slice(&base_offset.to_be_bytes());
    let batch_length = (ATTRIBUTES_AT - LOG_OVERHEAD + body.len()) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}
