//! Fetching: per-partition cursors (sans-IO) and the tokio fetch loop.
//!
//! [`Cursors`] decides what to fetch and applies answers; the
//! [`Fetcher`] task sends one Fetch per leader at a time,
//! keeps the decoded answer ready for the caller while the next request is in
//! flight, and bounds what it holds by bytes.

pub mod config;
pub mod cursor;
pub mod fetcher;

pub use config::{FetchConfig, OffsetReset};
pub use cursor::{
    Applied, Cursors, FetchedPartition, PartitionAnswer, PartitionError, PlannedPartition,
    Position, ResetTo,
};
pub use fetcher::{FetchEvent, Fetched, Fetcher};
