//! Errors of the record-batch layer.

use super::Compression;

/// Why a record set, a record batch or a record could not be decoded.
///
/// Every variant names the offset it concerns: the base offset of the batch
/// (or the offset read from the log overhead for batches too broken to have
/// one), and for record-level problems the index of the record in the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A batch uses a message format older than magic v2 (Kafka < 0.11).
    #[error(
        "record batch at offset {base_offset}: magic {magic} is not supported \
         (only magic v2 record batches are decoded; magic 0 and 1 predate Kafka 0.11)"
    )]
    UnsupportedMagic {
        /// Offset read from the batch's log overhead.
        base_offset: i64,
        /// The magic byte found.
        magic: i8,
    },
    /// The batch length field is negative or smaller than a v2 batch header.
    #[error(
        "record batch at offset {base_offset}: batch length {batch_length} is below \
         the minimum of {minimum} bytes"
    )]
    InvalidBatchLength {
        /// Offset read from the batch's log overhead.
        base_offset: i64,
        /// The length field read from the wire.
        batch_length: i32,
        /// The smallest valid length of a v2 batch.
        minimum: i32,
    },
    /// The bytes given to [`RecordBatch::parse`](super::RecordBatch::parse) do
    /// not hold exactly one batch.
    #[error(
        "record batch at offset {base_offset}: batch length says {expected} bytes, \
         the buffer holds {actual}"
    )]
    BatchSizeMismatch {
        /// Offset read from the batch's log overhead (or -1 if unreadable).
        base_offset: i64,
        /// Bytes the batch should occupy (12 + batch length).
        expected: usize,
        /// Bytes that were given.
        actual: usize,
    },
    /// The CRC32C over attributes..end differs from the one in the header.
    #[error("record batch at offset {base_offset}: CRC {actual:#010x} != {expected:#010x}")]
    CrcMismatch {
        /// Base offset of the batch.
        base_offset: i64,
        /// CRC stored in the batch header.
        expected: u32,
        /// CRC computed over the received bytes.
        actual: u32,
    },
    /// The compression bits of the attributes name no known codec.
    #[error("record batch at offset {base_offset}: unknown compression codec {codec}")]
    UnknownCompression {
        /// Base offset of the batch.
        base_offset: i64,
        /// The three compression bits.
        codec: u8,
    },
    /// The decompressor rejected the batch's records section.
    #[error("record batch at offset {base_offset}: {codec} decompression failed: {message}")]
    Decompression {
        /// Base offset of the batch.
        base_offset: i64,
        /// Codec of the batch.
        codec: Compression,
        /// What the decompressor reported.
        message: String,
    },
    /// Decompressing the batch would exceed the configured limit (for zstd
    /// also: a frame declares a window above the limit and 16 MiB, which the
    /// decoder would have to hold in memory).
    #[error(
        "record batch at offset {base_offset}: {codec} records decompress to more than \
         the limit of {limit} bytes"
    )]
    DecompressedTooLarge {
        /// Base offset of the batch.
        base_offset: i64,
        /// Codec of the batch.
        codec: Compression,
        /// The configured limit ([`DecodeLimits::max_decompressed_bytes`](super::DecodeLimits)).
        limit: usize,
    },
    /// The record count is negative or larger than the remaining bytes can hold.
    #[error(
        "record batch at offset {base_offset}: record count {count} is impossible \
         in {available} bytes of records"
    )]
    InvalidRecordCount {
        /// Base offset of the batch.
        base_offset: i64,
        /// The count read from the header.
        count: i32,
        /// Bytes of (uncompressed) records available.
        available: usize,
    },
    /// A record is malformed (bad varint, length past the end, negative count ...).
    #[error("record batch at offset {base_offset}: record {index}: {reason}")]
    MalformedRecord {
        /// Base offset of the batch.
        base_offset: i64,
        /// Zero-based index of the record within the batch.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// Bytes remain after the last record the header announced.
    #[error(
        "record batch at offset {base_offset}: {extra} bytes remain after the {count} \
         records the header announced"
    )]
    TrailingBytes {
        /// Base offset of the batch.
        base_offset: i64,
        /// The record count of the header.
        count: i32,
        /// Bytes left over.
        extra: usize,
    },
    /// A control record's key or value is malformed.
    #[error("control record at offset {offset}: {reason}")]
    InvalidControlRecord {
        /// Offset of the control record.
        offset: i64,
        /// What is wrong.
        reason: &'static str,
    },
}
