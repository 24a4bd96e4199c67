//! Why a record was not delivered.

use std::sync::Arc;
use std::time::Duration;

use kafee_protocol::error::ErrorCode;
use kafee_protocol::records::EncodeError;

use crate::error::ClientError;

/// Why a record was not delivered. Every variant names the topic (and the
/// partition once one was chosen).
///
/// `Clone`: every record of a failed batch gets the same error.
/// Error messages are part of the contract: tests assert their text.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// The cluster does not have the topic; the metadata was asked again,
    /// with backoff, until `delivery.timeout.ms` ran out.
    #[error(
        "topic {topic:?} does not exist (UNKNOWN_TOPIC_OR_PARTITION); gave up after {waited:?}"
    )]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// How long the record waited for the topic to appear.
        waited: Duration,
    },

    /// The record names a partition the topic does not have.
    #[error("topic {topic:?} has {partitions} partitions; partition {partition} does not exist")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partitions: i32,
    },

    /// The record is larger than a setting allows; it was never sent.
    #[error("record for {topic:?} takes up to {size} bytes, more than {setting} ({limit})")]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The record's size as the producer estimates it (encoded, uncompressed).
        size: usize,
        /// `max.request.size` or `buffer.memory`.
        setting: &'static str,
        /// The setting's value.
        limit: usize,
    },

    /// [`crate::produce::Producer::enqueue`] found `buffer.memory` full.
    #[error("record for {topic:?} ({size} bytes) does not fit: buffer.memory ({limit}) is full")]
    BufferFull {
        /// The topic.
        topic: String,
        /// The record's estimated size.
        size: usize,
        /// `buffer.memory`.
        limit: usize,
    },

    /// The broker refused the batch with a code that retrying does not cure
    /// (MESSAGE_TOO_LARGE, TOPIC_AUTHORIZATION_FAILED, INVALID_RECORD, ...).
    #[error("Produce to {topic:?} partition {partition}: {broker} answered {code}{}", fmt_message(.message))]
    Broker {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// `host:port` of the leader that answered.
        broker: String,
        /// The Kafka error code.
        code: ErrorCode,
        /// The broker's error message and per-record errors, if it sent any.
        message: Option<String>,
    },

    /// The record was not acknowledged within `delivery.timeout.ms`; it may
    /// still have been written (a request whose answer was lost).
    #[error(
        "record for {topic:?}{} not acknowledged within delivery.timeout.ms ({timeout:?}){}",
        fmt_partition(.partition),
        fmt_last(.last)
    )]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition, if one was chosen.
        partition: Option<i32>,
        /// `delivery.timeout.ms`.
        timeout: Duration,
        /// The last retriable error, if an attempt failed.
        last: Option<Box<ProduceError>>,
    },

    /// A client-side failure that retrying does not cure (no common API
    /// version, a response that could not be decoded, ...), or the last
    /// retriable one seen before a deadline.
    #[error("producing to {topic:?}{}: {source}", fmt_partition(.partition))]
    Client {
        /// The topic.
        topic: String,
        /// The partition, if one was chosen.
        partition: Option<i32>,
        /// What the client layer reported.
        #[source]
        source: Arc<ClientError>,
    },

    /// The record could not be encoded into a batch (a field beyond the
    /// protocol's i32 lengths, a compressor failure).
    #[error("record for {topic:?} could not be encoded: {source}")]
    Encode {
        /// The topic.
        topic: String,
        /// What the encoder reported.
        #[source]
        source: EncodeError,
    },

    /// The producer was closed before the record was handed over.
    #[error("the producer is closed")]
    Closed,
}

impl ProduceError {
    /// The Kafka error code behind the failure, if a broker (or the metadata)
    /// gave one; for a delivery timeout, the code of the last attempt.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ProduceError::UnknownTopic { .. } => Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
            ProduceError::Broker { code, .. } => Some(*code),
            ProduceError::DeliveryTimeout { last, .. } => last.as_ref().and_then(|e| e.code()),
            ProduceError::Client { source, .. } => source.code(),
            _ => None,
        }
    }

    /// The topic of the record, except for [`ProduceError::Closed`].
    pub fn topic(&self) -> Option<&str> {
        match self {
            ProduceError::UnknownTopic { topic, .. }
            | ProduceError::InvalidPartition { topic, .. }
            | ProduceError::RecordTooLarge { topic, .. }
            | ProduceError::BufferFull { topic, .. }
            | ProduceError::Broker { topic, .. }
            | ProduceError::DeliveryTimeout { topic, .. }
            | ProduceError::Client { topic, .. }
            | ProduceError::Encode { topic, .. } => Some(topic),
            ProduceError::Closed => None,
        }
    }

    /// The partition the record was bound for, once one was chosen.
    pub fn partition(&self) -> Option<i32> {
        match self {
            ProduceError::InvalidPartition { partition, .. }
            | ProduceError::Broker { partition, .. } => Some(*partition),
            ProduceError::DeliveryTimeout { partition, .. }
            | ProduceError::Client { partition, .. } => *partition,
            _ => None,
        }
    }
}

fn fmt_partition(p: &Option<i32>) -> String {
    match p {
        Some(p) => format!(" partition {p}"),
        None => String::new(),
    }
}

fn fmt_message(m: &Option<String>) -> String {
    match m {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

fn fmt_last(last: &Option<Box<ProduceError>>) -> String {
    match last {
        Some(e) => format!("; last error: {e}"),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_topic_partition_and_code() {
        let e = ProduceError::Broker {
            topic: "dlq".into(),
            partition: 2,
            broker: "127.0.0.1:9092".into(),
            code: ErrorCode::MESSAGE_TOO_LARGE,
            message: None,
        };
        assert_eq!(
            e.to_string(),
            "Produce to \"dlq\" partition 2: 127.0.0.1:9092 answered MESSAGE_TOO_LARGE (10)"
        );
        assert_eq!(e.code(), Some(ErrorCode::MESSAGE_TOO_LARGE));
        assert_eq!(e.partition(), Some(2));

        let t = ProduceError::DeliveryTimeout {
            topic: "dlq".into(),
            partition: Some(0),
            timeout: Duration::from_secs(2),
            last: Some(Box::new(e)),
        };
        assert_eq!(
            t.to_string(),
            "record for \"dlq\" partition 0 not acknowledged within delivery.timeout.ms (2s); \
             last error: Produce to \"dlq\" partition 2: 127.0.0.1:9092 answered MESSAGE_TOO_LARGE (10)"
        );
        assert_eq!(t.code(), Some(ErrorCode::MESSAGE_TOO_LARGE));

        let u = ProduceError::UnknownTopic {
            topic: "missing".into(),
            waited: Duration::from_secs(3),
        };
        assert_eq!(
            u.to_string(),
            "topic \"missing\" does not exist (UNKNOWN_TOPIC_OR_PARTITION); gave up after 3s"
        );
        assert_eq!(u.topic(), Some("missing"));
        assert_eq!(u.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
    }
}
