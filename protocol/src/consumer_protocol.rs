//! consumer_protocol (in progress).
