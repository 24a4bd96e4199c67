//! frame (in progress).
