//! versions (in progress).
