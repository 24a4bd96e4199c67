//! `kafee-client`: the tokio layer of kafee.
//!
//! Connections, metadata, the classic consumer-group protocol, the fetch loop
//! and a small producer for the dead-letter topic.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod consumer;
pub mod error;
pub mod fetch;
pub mod group;
pub mod metadata;
pub mod produce;
pub mod retry;
