//! header (in progress).
