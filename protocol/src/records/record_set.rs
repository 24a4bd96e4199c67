//! A fetch response's record set: whole batches, then maybe a truncated tail.

use bytes::Bytes;

use super::batch::{be_i32, be_i64, check_magic, RecordBatch, BATCH_LENGTH_AT, MAGIC_AT};
use super::{RecordError, LOG_OVERHEAD, MIN_BATCH_LENGTH};

/// Iterator over the batches of one partition's record set.
///
/// Yields each whole batch (length, magic and CRC checked). A batch the broker
/// cut short at the end of the set (it stops at its `max_bytes`) ends the
/// iteration without error: [`is_truncated`](Self::is_truncated) tells, and
/// [`bytes_consumed`](Self::bytes_consumed) counts the bytes of whole batches.
/// A malformed batch yields one `Err` and ends the iteration; the consumed
/// count then stops before it.
#[derive(Debug, Clone)]
pub struct RecordSet {
    bytes: Bytes,
    pos: usize,
    verify_crc: bool,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Finished,
    Truncated,
    Failed,
}

impl RecordSet {
    /// A record set over the `records` bytes of a fetch response partition.
    pub fn new(bytes: Bytes) -> RecordSet {
        RecordSet {
            bytes,
            pos: 0,
            verify_crc: true,
            state: State::Reading,
        }
    }

    /// Whether to verify each batch's CRC32C (default true, as Java's
    /// `check.crcs`). Turning it off trusts the transport.
    pub fn verify_crc(mut self, verify_crc: bool) -> RecordSet {
        self.verify_crc = verify_crc;
        self
    }

    /// Bytes of the whole batches yielded so far.
    pub fn bytes_consumed(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed (after the end of iteration: the truncated tail,
    /// or the malformed batch and what follows it).
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Whether iteration ended at a truncated (partial) batch.
    pub fn is_truncated(&self) -> bool {
        self.state == State::Truncated
    }

    /// Whether iteration ended on a malformed batch.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, RecordError> {
        let rest = &self.bytes[self.pos..];
        if rest.is_empty() {
            self.state = State::Finished;
            return Ok(None);
        }
        if rest.len() < LOG_OVERHEAD {
            self.state = State::Truncated;
            return Ok(None);
        }
        let base_offset = be_i64(rest, 0);
        let batch_length = be_i32(rest, BATCH_LENGTH_AT);
        if rest.len() > MAGIC_AT {
            check_magic(base_offset, rest[MAGIC_AT] as i8)?;
        } else if batch_length > MAGIC_AT as i32 - LOG_OVERHEAD as i32 {
            // The magic byte is beyond the received bytes.
            self.state = State::Truncated;
            return Ok(None);
        }
        if batch_length < MIN_BATCH_LENGTH {
            return Err(RecordError::InvalidBatchLength {
                base_offset,
                batch_length,
                minimum: MIN_BATCH_LENGTH,
            });
        }
        let size = LOG_OVERHEAD + batch_length as usize;
        if size > rest.len() {
            self.state = State::Truncated;
            return Ok(None);
        }
        let batch = RecordBatch::from_checked_bytes(
            self.bytes.slice(self.pos..self.pos + size),
            self.verify_crc,
        )?;
        self.pos += size;
        Ok(Some(batch))
    }
}

impl Iterator for RecordSet {
    type Item = Result<RecordBatch, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state != State::Reading {
            return None;
        }
        match self.next_batch() {
            Ok(batch) => batch.map(Ok),
            Err(e) => {
                self.state = State::Failed;
                Some(Err(e))
            }
        }
    }
}
