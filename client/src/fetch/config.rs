//! Fetch settings (`fetch.min.bytes`, `fetch.max.wait.ms`, ...).

use std::time::Duration;

use crate::admin::IsolationLevel;

/// `auto.offset.reset`: where a partition starts when it has no committed
/// offset, and where it goes on OFFSET_OUT_OF_RANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start offset (`earliest`).
    #[default]
    Earliest,
    /// The log end offset (`latest`): only records produced from now on.
    Latest,
    /// No automatic reset (`none`): the partition reports an error instead.
    None,
}

/// How the fetch loop asks brokers for records.
///
/// Every field names its Java consumer property. `max_buffered_bytes` has no
/// Java twin: it bounds the bytes fetched but not yet released by the caller,
/// across all partitions (back-pressure).
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// `fetch.min.bytes` (default 1): the broker holds the response until
    /// this much data is there or `max_wait` passed.
    pub min_bytes: i32,
    /// `fetch.max.wait.ms` (default 500 ms).
    pub max_wait: Duration,
    /// `fetch.max.bytes` (default 50 MiB): the response size the broker
    /// aims for (one batch larger than this is still returned whole, KIP-74,
    /// so the connection's frame limit must exceed it plus overhead).
    pub max_bytes: i32,
    /// `max.partition.fetch.bytes` (default 1 MiB).
    pub max_partition_bytes: i32,
    /// `isolation.level` (default `read_uncommitted`).
    pub isolation: IsolationLevel,
    /// `check.crcs` (default true): verify every batch's CRC32C.
    pub verify_crc: bool,
    /// `auto.offset.reset` (default earliest).
    pub offset_reset: OffsetReset,
    /// Bytes of fetched data held for the caller before fetching pauses
    /// (default 64 MiB). A single response larger than this is still taken.
    pub max_buffered_bytes: usize,
    /// Largest records section a compressed batch may decompress to
    /// (default 256 MiB); larger is a per-partition error.
    pub max_decompressed_bytes: usize,
    /// How often a partition whose batch failed its CRC is fetched again
    /// before the error is reported (default 3).
    pub corrupt_retries: u32,
    /// Wait before fetching a partition again after an error (default 100 ms).
    pub retry_backoff: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            min_bytes: 1,
            max_wait: Duration::from_millis(500),
            max_bytes: 50 * 1024 * 1024,
            max_partition_bytes: 1024 * 1024,
            isolation: IsolationLevel::ReadUncommitted,
            verify_crc: true,
            offset_reset: OffsetReset::Earliest,
            max_buffered_bytes: 64 * 1024 * 1024,
            max_decompressed_bytes: 256 * 1024 * 1024,
            corrupt_retries: 3,
            retry_backoff: Duration::from_millis(100),
        }
    }
}
