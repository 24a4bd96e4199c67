//! `kafee-batching`: Kafee-style batch processing.
//!
//! `handle_message` / `handle_batch` / `handle_dead_letter`, batch triggers,
//! acknowledgment strategies that end in real offset commits, in-flight
//! limits, the dead-letter queue and telemetry.
#![forbid(unsafe_code)]
