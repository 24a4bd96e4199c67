//! The kafee test kit: broker addresses and helpers for integration tests.
#![forbid(unsafe_code)]
