//! # kafee
//!
//! A pure-Rust Kafka consumer written at the wire level, with a batch
//! processing layer in the style of the Elixir library Kafee.
//!
//! This facade re-exports the three layers:
//! - [`protocol`]: sans-IO wire protocol (`kafee-protocol`),
//! - [`client`]: tokio connections, groups, fetching (`kafee-client`),
//! - [`batching`]: the batch-processing API (`kafee-batching`).
#![forbid(unsafe_code)]

pub use kafee_batching as batching;
pub use kafee_client as client;
pub use kafee_protocol as protocol;
