//! The classic consumer-group protocol (in progress).
