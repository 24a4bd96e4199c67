//! Errors of the client layer.
//!
//! One enum, [`ClientError`], for everything a caller of the client can see.
//! Every variant says *what* failed: the broker, the API, and where it applies
//! the topic and partition. A connection that dies fails every request in
//! flight on it with the same [`ConnectionError`], shared through an [`Arc`].

use std::sync::Arc;
use std::time::Duration;

use kafee_protocol::error::{DecodeError, EncodeError, ErrorCode, FrameError, VersionError};
use kafka_protocol::messages::ApiKey;

/// An error of the client layer: connections, metadata, admin requests.
///
/// Error messages are part of the contract: tests assert their text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration was rejected by [`crate::config::ClientConfigBuilder::build`].
    #[error("invalid client configuration: {0}")]
    Config(#[from] crate::config::ConfigError),

    /// Opening the TCP connection failed.
    #[error("connecting to {broker}: {source}")]
    Connect {
        /// `host:port` of the broker.
        broker: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The TCP connection (and the ApiVersions handshake) did not complete in time.
    #[error("connecting to {broker}: not connected within {timeout:?}")]
    ConnectTimeout {
        /// `host:port` of the broker.
        broker: String,
        /// The connect timeout in force (`socket.connection.setup.timeout.ms`).
        timeout: Duration,
    },

    /// The connection died (or was already dead) while this request was in flight.
    ///
    /// Every request in flight on that connection gets the same `source`
    /// (`Arc::ptr_eq` holds between them). For a request that was already
    /// written, such as a commit or a produce, the outcome is unknown.
    #[error("{api:?} request to {broker}: connection failed: {source}")]
    Connection {
        /// `host:port` of the broker.
        broker: String,
        /// The API of the failed request.
        api: ApiKey,
        /// What killed the connection; shared by every request that was in flight.
        #[source]
        source: Arc<ConnectionError>,
    },

    /// No response arrived within the request timeout.
    ///
    /// The request may have been applied by the broker: the outcome of a
    /// commit or a produce whose request timed out is UNKNOWN. The connection
    /// stays usable; the late response is dropped when it arrives.
    #[error(
        "{api:?} request to {broker} (correlation id {correlation_id}) got no response within \
         {timeout:?}; its outcome is unknown"
    )]
    RequestTimeout {
        /// `host:port` of the broker.
        broker: String,
        /// The API of the request.
        api: ApiKey,
        /// The correlation id of the request.
        correlation_id: i32,
        /// The timeout in force.
        timeout: Duration,
    },

    /// The broker and kafee share no version of an API, or the ApiVersions
    /// handshake failed.
    #[error("{broker}: {source}")]
    Version {
        /// `host:port` of the broker.
        broker: String,
        /// Which API and which ranges.
        #[source]
        source: VersionError,
    },

    /// A caller asked for a version outside what kafee and this broker negotiated.
    #[error("{api:?} v{version} cannot be sent to {broker}: usable versions are {min}..={max}")]
    VersionOutOfRange {
        /// `host:port` of the broker.
        broker: String,
        /// The API.
        api: ApiKey,
        /// The version asked for.
        version: i16,
        /// kafee's minimum for the API.
        min: i16,
        /// The negotiated (highest usable) version.
        max: i16,
    },

    /// A request could not be encoded (a field the chosen version cannot
    /// carry, a string too long, ...).
    #[error("{0}")]
    Encode(#[from] EncodeError),

    /// A response frame arrived whole but its content could not be decoded.
    ///
    /// The connection stays usable (the frame boundary was intact).
    #[error("response from {broker}: {source}")]
    Decode {
        /// `host:port` of the broker.
        broker: String,
        /// What the decoder said (names the API and version).
        #[source]
        source: DecodeError,
    },

    /// The broker answered with a Kafka error code.
    #[error("{api:?}{}: {broker} answered {code}{}", fmt_where(.topic, .partition), fmt_message(.message))]
    Broker {
        /// `host:port` (or node id) of the broker that answered.
        broker: String,
        /// The API.
        api: ApiKey,
        /// The Kafka error code.
        code: ErrorCode,
        /// The topic the code applies to, if it is a per-topic code.
        topic: Option<String>,
        /// The partition the code applies to, if it is a per-partition code.
        partition: Option<i32>,
        /// The error message the broker sent along, if any.
        message: Option<String>,
    },

    /// The response broke the protocol's rules (a requested topic missing, an
    /// answer for a partition nobody asked about, ...).
    #[error("{api:?} response from {broker} breaks the protocol: {message}")]
    Protocol {
        /// `host:port` of the broker.
        broker: String,
        /// The API.
        api: ApiKey,
        /// What was wrong.
        message: String,
    },

    /// No bootstrap server gave us the cluster's metadata.
    #[error("no bootstrap server answered (tried {}): {last}", .tried.join(", "))]
    Bootstrap {
        /// The servers tried, in order.
        tried: Vec<String>,
        /// The error of the last one.
        #[source]
        last: Box<ClientError>,
    },

    /// The metadata names no broker with this node id.
    #[error("the cluster metadata names no broker with node id {node_id}")]
    UnknownBroker {
        /// The node id asked for.
        node_id: i32,
    },

    /// The partition has no leader at the moment (after refreshing metadata).
    #[error("topic {topic:?} partition {partition} has no leader")]
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },

    /// An operation made of several requests (waiting for a topic to appear,
    /// finding a coordinator) did not finish within its deadline.
    #[error("{what} did not complete within {timeout:?}{}", fmt_last(.last))]
    Timeout {
        /// The operation.
        what: String,
        /// The deadline in force.
        timeout: Duration,
        /// The last error seen while retrying, if any.
        last: Option<Box<ClientError>>,
    },

    /// The group membership failed (fatal for this member).
    #[error(transparent)]
    Group(#[from] crate::group::GroupError),
}

impl ClientError {
    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed: a retriable Kafka error
    /// code, a timeout, or a dead connection (which is replaced on next use).
    ///
    /// A retry of a commit or produce after a timeout or a dead connection may
    /// apply it twice (its first outcome is unknown).
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => code.is_retriable(),
            ClientError::RequestTimeout { .. }
            | ClientError::Connection { .. }
            | ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::NoLeader { .. }
            | ClientError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// What killed a connection. Shared (through an [`Arc`]) by every request
/// that was in flight when it died.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Reading or writing the socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The broker closed the connection (end of stream).
    #[error("the broker closed the connection ({partial} bytes of an unfinished frame received)")]
    Closed {
        /// Bytes of a frame that had started but not finished.
        partial: usize,
    },

    /// A frame's length prefix is negative or exceeds `max_frame_bytes`.
    #[error("{0}")]
    Frame(#[from] FrameError),

    /// A frame too short to hold a correlation id.
    #[error("response frame of {0} bytes is too short for a response header")]
    ShortFrame(usize),

    /// A response whose correlation id matches no request we sent.
    #[error("response with unknown correlation id {0}")]
    UnknownCorrelationId(i32),

    /// The connection was shut down by this side (every handle was dropped).
    #[error("the connection was shut down")]
    Shutdown,
}

fn fmt_where(topic: &Option<String>, partition: &Option<i32>) -> String {
    match (topic, partition) {
        (Some(t), Some(p)) => format!(" for {t:?} partition {p}"),
        (Some(t), None) => format!(" for {t:?}"),
        (None, Some(p)) => format!(" for partition {p}"),
        (None, None) => String::new(),
    }
}

fn fmt_message(m: &Option<String>) -> String {
    match m {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

fn fmt_last(last: &Option<Box<ClientError>>) -> String {
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
    fn broker_error_names_the_code_topic_and_partition() {
        let e = ClientError::Broker {
            broker: "127.0.0.1:9092".into(),
            api: ApiKey::ListOffsets,
            code: ErrorCode::NOT_LEADER_OR_FOLLOWER,
            topic: Some("orders".into()),
            partition: Some(3),
            message: None,
        };
        assert_eq!(
            e.to_string(),
            "ListOffsets for \"orders\" partition 3: 127.0.0.1:9092 answered \
             NOT_LEADER_OR_FOLLOWER (6)"
        );
        assert!(e.is_retriable());
        assert_eq!(e.code(), Some(ErrorCode::NOT_LEADER_OR_FOLLOWER));
    }

    #[test]
    fn topic_already_exists_is_not_retriable() {
        let e = ClientError::Broker {
            broker: "b".into(),
            api: ApiKey::CreateTopics,
            code: ErrorCode::TOPIC_ALREADY_EXISTS,
            topic: Some("t".into()),
            partition: None,
            message: Some("Topic 't' already exists.".into()),
        };
        assert!(!e.is_retriable());
        assert_eq!(
            e.to_string(),
            "CreateTopics for \"t\": b answered TOPIC_ALREADY_EXISTS (36): Topic 't' already exists."
        );
    }
}
