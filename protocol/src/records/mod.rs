//! Record batches, magic v2: a zero-copy decoder and an encoder.
//!
//! A fetch response carries, per partition, a *record set*: a sequence of
//! record batches that may end in a batch the broker cut short. The types here
//! read it without copying:
//!
//! - [`RecordSet`] iterates the whole batches of a record set and stops
//!   silently at a truncated tail, reporting [`RecordSet::bytes_consumed`].
//! - [`RecordBatch`] is a view of one batch; its header fields are read in
//!   place and its CRC32C has been checked.
//! - [`RecordBatch::decode`] yields a [`DecodedBatch`]: the batch plus its
//!   records section, decompressed into one buffer if the batch is compressed.
//! - [`DecodedBatch::records`] iterates [`Record`] views borrowing that
//!   buffer (no allocation per record); [`Record::to_owned`] gives an
//!   [`OwnedRecord`] made of `Bytes` slices of the same buffer, and
//!   [`DecodedBatch::owned_records`] keeps a whole batch's records owned
//!   ([`OwnedRecords`]: the buffer plus an index, no per-record cost).
//! - [`AbortedTransactionFilter`] drops aborted transactional data for
//!   `read_committed`; [`ControlRecord`] decodes transaction markers.
//! - [`RecordBatchBuilder`] encodes batches, with or without compression.
//!
//! ```
//! use bytes::Bytes;
//! use kafee_protocol::records::{DecodeLimits, RecordBatchBuilder, RecordSet};
//!
//! let mut builder = RecordBatchBuilder::new(42);
//! builder.append(1_700_000_000_000, Some(b"key"), Some(b"value"), &[])?;
//! let batch: Bytes = builder.build()?;
//!
//! let mut set = RecordSet::new(batch);
//! let limits = DecodeLimits::default();
//! for batch in &mut set {
//!     let decoded = batch?.decode(&limits)?;
//!     for record in decoded.records() {
//!         let record = record?;
//!         assert_eq!(record.offset(), 42);
//!         assert_eq!(record.value(), Some(&b"value"[..]));
//!     }
//! }
//! assert!(!set.is_truncated());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod builder;
mod compression;
mod control;
mod error;
mod record;
mod record_set;
mod varint;

pub use batch::{DecodedBatch, RecordBatch};
pub use builder::{EncodeError, RecordBatchBuilder};
pub use control::{
    AbortedTransaction, AbortedTransactionFilter, BatchAction, ControlRecord, ControlRecordType,
};
pub use error::RecordError;
pub use record::{Header, Headers, OwnedHeader, OwnedRecord, OwnedRecords, Record, Records};
pub use record_set::RecordSet;

#[cfg(feature = "unstable-fuzzing")]
pub use batch::batch_from_body;

use std::fmt;

/// Bytes before a batch's `batch_length` counts: base offset (8) and the
/// length itself (4).
pub const LOG_OVERHEAD: usize = 12;

/// Size of a magic v2 batch header, up to and including the record count.
pub const RECORD_BATCH_HEADER_SIZE: usize = 61;

/// Smallest valid `batch_length` of a magic v2 batch (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (RECORD_BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32;

/// `producer_id` of batches written without an idempotent or transactional producer.
pub const NO_PRODUCER_ID: i64 = -1;

/// Default of [`DecodeLimits::max_decompressed_bytes`]: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// Compression codec of a batch (attribute bits 0..=2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Uncompressed (0).
    None,
    /// gzip (1).
    Gzip,
    /// Snappy (2), raw or in xerial framing.
    Snappy,
    /// LZ4 frame format (3).
    Lz4,
    /// Zstandard (4).
    Zstd,
}

impl Compression {
    /// All codecs, in attribute order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec for the three compression bits, if known.
    pub fn from_bits(bits: u8) -> Option<Compression> {
        match bits {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The three compression bits of this codec.
    pub fn bits(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name of the codec (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Meaning of a batch's timestamps (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer (`CreateTime`).
    CreateTime,
    /// Set by the broker when appending (`LogAppendTime`); every record's
    /// timestamp is the batch's `max_timestamp`.
    LogAppendTime,
}

/// Bounds applied while decoding a batch's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest records section a compressed batch may decompress to; more is a
    /// [`RecordError::DecompressedTooLarge`] (read through a bounded reader,
    /// never allocated). Default [`DEFAULT_MAX_DECOMPRESSED_BYTES`].
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

impl DecodeLimits {
    /// Limits with the given decompressed-size bound.
    pub fn with_max_decompressed_bytes(max_decompressed_bytes: usize) -> Self {
        DecodeLimits {
            max_decompressed_bytes,
        }
    }
}
