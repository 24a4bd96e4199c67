//! What handlers receive: [`Message`] and [`Batch`].

use std::sync::Arc;

use bytes::Bytes;
use kafee_protocol::records::{Header, OwnedRecord};

/// One record as a handler sees it.
///
/// Borrows the fetched bytes without copying them: key, value and headers
/// are slices of the fetch response's buffer (or of the batch's one
/// decompressed buffer), shared by reference count. Keeping a `Message`
/// keeps that buffer alive; [`Message::to_owned`] copies the record out.
#[derive(Debug, Clone)]
pub struct Message {
    topic: Arc<str>,
    partition: i32,
    record: OwnedRecord,
}

impl Message {
    /// A message of `topic`/`partition` over a fetched record.
    pub fn new(topic: Arc<str>, partition: i32, record: OwnedRecord) -> Self {
        Message {
            topic,
            partition,
            record,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The offset.
    pub fn offset(&self) -> i64 {
        self.record.offset()
    }

    /// The timestamp (milliseconds since the epoch; create or log-append
    /// time, as the topic says).
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp()
    }

    /// The key, `None` for null.
    pub fn key(&self) -> Option<&[u8]> {
        self.record.key()
    }

    /// The value, `None` for null (a tombstone).
    pub fn value(&self) -> Option<&[u8]> {
        self.record.value()
    }

    /// The key as shared bytes (no copy).
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.record.key_bytes()
    }

    /// The value as shared bytes (no copy).
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.record.value_bytes()
    }

    /// The headers, in order, parsed lazily.
    pub fn headers(&self) -> impl Iterator<Item = Header<'_>> + '_ {
        self.record.headers()
    }

    /// The first header named `key`.
    pub fn header(&self, key: &str) -> Option<Header<'_>> {
        self.headers().find(|h| h.key == key.as_bytes())
    }

    /// The record's size on the wire (uncompressed), headers included.
    pub fn wire_size(&self) -> usize {
        self.record.wire_size()
    }

    /// The underlying record.
    pub fn record(&self) -> &OwnedRecord {
        &self.record
    }

    /// A copy that no longer shares the fetched buffer.
    pub fn to_owned(&self) -> OwnedMessage {
        OwnedMessage {
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: self.offset(),
            timestamp: self.timestamp(),
            key: self.key().map(<[u8]>::to_vec),
            value: self.value().map(<[u8]>::to_vec),
            headers: self
                .headers()
                .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

/// A message copied out of the fetched buffer (see [`Message::to_owned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in milliseconds.
    pub timestamp: i64,
    /// Key, `None` for null.
    pub key: Option<Vec<u8>>,
    /// Value, `None` for null.
    pub value: Option<Vec<u8>>,
    /// Headers as (key, value) pairs.
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A batch of messages of one partition, in offset order.
///
/// Its identity (topic, partition, generation, first and last offset) lets a
/// sink write idempotently: a batch handed out again after a failure or a
/// rebalance has the same first offset.
#[derive(Debug, Clone)]
pub struct Batch {
    pub(crate) messages: Vec<Message>,
    pub(crate) generation_id: i32,
    pub(crate) wire_bytes: usize,
    pub(crate) attempt: u32,
}

impl Batch {
    /// A batch over `messages` (all of one partition, in offset order).
    /// For tests of handlers; the consumer builds batches itself.
    pub fn new(messages: Vec<Message>, generation_id: i32, attempt: u32) -> Self {
        let wire_bytes = messages.iter().map(Message::wire_size).sum();
        Batch {
            messages,
            generation_id,
            wire_bytes,
            attempt,
        }
    }

    /// The messages.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Never true for a batch from the consumer.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.messages.first().map_or("", Message::topic)
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.messages.first().map_or(-1, Message::partition)
    }

    /// The consumer group generation the batch was handed out in.
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// Offset of the first message.
    pub fn first_offset(&self) -> i64 {
        self.messages.first().map_or(-1, Message::offset)
    }

    /// Offset of the last message.
    pub fn last_offset(&self) -> i64 {
        self.messages.last().map_or(-1, Message::offset)
    }

    /// Bytes of the messages as on the wire (uncompressed record sizes).
    pub fn wire_bytes(&self) -> usize {
        self.wire_bytes
    }

    /// Which attempt this is at the batch's first offset (1 = first); the
    /// count survives restarts (it is kept in the commit metadata).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}
