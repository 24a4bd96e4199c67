//! Record batches, magic v2 (in progress).
