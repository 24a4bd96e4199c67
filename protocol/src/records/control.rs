//! Control records (transaction markers) and the `read_committed` filter.

use std::collections::{BTreeMap, HashSet};

use super::batch::RecordBatch;
use super::record::Record;
use super::{DecodeLimits, RecordError};

/// Type of a control record (the second i16 of its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// End of an aborted transaction (0).
    Abort,
    /// End of a committed transaction (1).
    Commit,
    /// Another control type (KRaft leader change, snapshot markers ...).
    Other(i16),
}

impl ControlRecordType {
    /// The type for its wire value.
    pub fn from_i16(value: i16) -> ControlRecordType {
        match value {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        }
    }

    /// The wire value.
    pub fn as_i16(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(v) => v,
        }
    }
}

/// A decoded control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    /// Version of the key schema (0 so far).
    pub version: i16,
    /// What the record marks.
    pub kind: ControlRecordType,
    /// For ABORT/COMMIT markers with a well-formed value: the transaction
    /// coordinator's epoch.
    pub coordinator_epoch: Option<i32>,
}

impl ControlRecord {
    /// Decodes the key (`version: i16, type: i16`) and, for transaction
    /// markers, the value (`version: i16, coordinator_epoch: i32`) of a record
    /// from a control batch.
    pub fn parse(record: &Record<'_>) -> Result<ControlRecord, RecordError> {
        let invalid = |reason| RecordError::InvalidControlRecord {
            offset: record.offset(),
            reason,
        };
        let key = record
            .key()
            .ok_or_else(|| invalid("control record has a null key"))?;
        if key.len() < 4 {
            return Err(invalid("control record key is shorter than 4 bytes"));
        }
        let version = i16::from_be_bytes([key[0], key[1]]);
        if version < 0 {
            return Err(invalid("control record key has a negative version"));
        }
        let kind = ControlRecordType::from_i16(i16::from_be_bytes([key[2], key[3]]));
        let coordinator_epoch = match (kind, record.value()) {
            (ControlRecordType::Abort | ControlRecordType::Commit, Some(v)) if v.len() >= 6 => {
                Some(i32::from_be_bytes([v[2], v[3], v[4], v[5]]))
            }
            _ => None,
        };
        Ok(ControlRecord {
            version,
            kind,
            coordinator_epoch,
        })
    }

    /// The key bytes of a control record of this type.
    pub fn key_bytes(&self) -> [u8; 4] {
        let v = self.version.to_be_bytes();
        let t = self.kind.as_i16().to_be_bytes();
        [v[0], v[1], t[0], t[1]]
    }

    /// The value bytes of a transaction marker (`version 0, coordinator_epoch`).
    pub fn value_bytes(&self) -> [u8; 6] {
        let e = self.coordinator_epoch.unwrap_or(0).to_be_bytes();
        [0, 0, e[0], e[1], e[2], e[3]]
    }
}

impl RecordBatch {
    /// For a control batch, its first control record; `None` for data batches
    /// and for control batches without records.
    pub fn control_record(&self) -> Result<Option<ControlRecord>, RecordError> {
        if !self.is_control() {
            return Ok(None);
        }
        // Control batches are tiny and uncompressed in practice; a small bound
        // keeps a hostile compressed one harmless.
        let decoded = self.decode(&DecodeLimits::with_max_decompressed_bytes(1 << 16))?;
        let mut records = decoded.records();
        match records.next() {
            None => Ok(None),
            Some(record) => ControlRecord::parse(&record?).map(Some),
        }
    }
}

/// One entry of a fetch response partition's `aborted_transactions` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTransaction {
    /// Producer id of the aborted transaction.
    pub producer_id: i64,
    /// First offset of the aborted transaction.
    pub first_offset: i64,
}

/// What a `read_committed` consumer does with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchAction {
    /// Hand the batch's records to the application.
    Deliver,
    /// A control batch (transaction marker ...): skip it, advance past it.
    SkipControl,
    /// Data of an aborted transaction: skip it, advance past it.
    SkipAborted,
}

impl BatchAction {
    /// Whether the records are handed to the application.
    pub fn delivers(self) -> bool {
        self == BatchAction::Deliver
    }
}

/// Drops the batches of aborted transactions, as a `read_committed` consumer
/// must, given the partition's `aborted_transactions` from the fetch response.
///
/// Feed it every batch of the partition's record set in order. A producer id
/// becomes *aborted* once a batch reaches its transaction's `first_offset`;
/// its transactional data batches are then skipped until its ABORT marker
/// (a control batch) is seen. Control batches are always skipped.
#[derive(Debug, Clone, Default)]
pub struct AbortedTransactionFilter {
    /// Not yet reached, by first offset (several per offset are possible).
    pending: BTreeMap<i64, Vec<i64>>,
    /// Producer ids whose aborted transaction is open at the current position.
    aborted: HashSet<i64>,
}

impl AbortedTransactionFilter {
    /// A filter for one partition's fetch response.
    pub fn new(aborted: impl IntoIterator<Item = AbortedTransaction>) -> AbortedTransactionFilter {
        let mut pending: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for txn in aborted {
            pending
                .entry(txn.first_offset)
                .or_default()
                .push(txn.producer_id);
        }
        AbortedTransactionFilter {
            pending,
            aborted: HashSet::new(),
        }
    }

    /// Decides what to do with the next batch. Errors only when a control
    /// batch's marker cannot be decoded.
    pub fn classify(&mut self, batch: &RecordBatch) -> Result<BatchAction, RecordError> {
        if batch.has_producer_id() {
            let last_offset = batch.last_offset();
            while let Some(entry) = self.pending.first_entry() {
                if *entry.key() > last_offset {
                    break;
                }
                self.aborted.extend(entry.remove());
            }
            let producer_id = batch.producer_id();
            if batch.is_control() {
                if let Some(marker) = batch.control_record()? {
                    if marker.kind == ControlRecordType::Abort {
                        self.aborted.remove(&producer_id);
                    }
                }
            } else if batch.is_transactional() && self.aborted.contains(&producer_id) {
                return Ok(BatchAction::SkipAborted);
            }
        }
        if batch.is_control() {
            Ok(BatchAction::SkipControl)
        } else {
            Ok(BatchAction::Deliver)
        }
    }

    /// Producer ids currently inside an aborted transaction.
    pub fn aborted_producers(&self) -> impl Iterator<Item = i64> + '_ {
        self.aborted.iter().copied()
    }
}
