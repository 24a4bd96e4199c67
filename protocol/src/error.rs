//! Typed errors of the protocol layer and the table of Kafka error codes.
//!
//! Each layer has its own error enum: [`FrameError`] for the size prefix,
//! [`EncodeError`] and [`DecodeError`] for messages, [`VersionError`] for
//! API version negotiation. Their messages are part of the contract and
//! are asserted by tests.
//!
//! [`ErrorCode`] wraps the `i16` error code found in Kafka responses and
//! knows, for every code Kafka defines (up to 4.1), its name, whether Kafka
//! classes it as retriable, a short description, and what a consumer does
//! about it ([`ConsumerAction`]).

use std::fmt;

use kafka_protocol::messages::ApiKey;

/// A frame's 4-byte size prefix was invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The size prefix was negative.
    #[error("frame size prefix {length} is negative")]
    NegativeLength {
        /// The size read from the wire.
        length: i32,
    },
    /// The frame is larger than the configured limit.
    #[error("frame of {actual} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The configured maximum body size in bytes.
        limit: usize,
        /// The body size announced by the prefix.
        actual: usize,
    },
}

/// A request could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The requested version is outside what the message schema defines.
    #[error("cannot encode {api_key:?} v{version} request: kafka-protocol supports versions {min}..={max}")]
    UnsupportedVersion {
        /// The API being encoded.
        api_key: ApiKey,
        /// The version asked for.
        version: i16,
        /// Lowest version the schema defines.
        min: i16,
        /// Highest version the schema defines.
        max: i16,
    },
    /// The request type's API key is not one kafka-protocol knows.
    #[error("cannot encode request with unknown API key {api_key}")]
    UnknownApiKey {
        /// The raw API key.
        api_key: i16,
    },
    /// The client id does not fit a Kafka `NULLABLE_STRING` (at most 32767 bytes).
    #[error("client id of {len} bytes is longer than 32767")]
    ClientIdTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The encoded message does not fit the 31-bit size prefix.
    #[error("encoded {api_key:?} v{version} message of {size} bytes does not fit a frame")]
    FrameTooLarge {
        /// The API being encoded.
        api_key: ApiKey,
        /// Its version.
        version: i16,
        /// The size of header and body in bytes.
        size: usize,
    },
    /// kafka-protocol refused to encode the body (a field not valid in this version, an oversized string...).
    #[error("cannot encode {api_key:?} v{version} body: {message}")]
    Body {
        /// The API being encoded.
        api_key: ApiKey,
        /// Its version.
        version: i16,
        /// kafka-protocol's error chain.
        message: String,
    },
}

/// A response (or request, for test brokers) could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame was shorter than the fixed part being read.
    #[error("{what}: needs {needed} bytes, frame has {available}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The response or request header was malformed.
    #[error("{api_key:?} v{version} header v{header_version}: {reason}")]
    Header {
        /// The API of the message.
        api_key: ApiKey,
        /// Its version.
        version: i16,
        /// The header version used.
        header_version: i16,
        /// What was wrong.
        reason: String,
    },
    /// The API key is not one kafka-protocol knows.
    #[error("unknown API key {api_key}")]
    UnknownApiKey {
        /// The raw API key.
        api_key: i16,
    },
    /// The version is outside what the message schema defines.
    #[error(
        "cannot decode {api_key:?} v{version}: kafka-protocol supports versions {min}..={max}"
    )]
    UnsupportedVersion {
        /// The API of the message.
        api_key: ApiKey,
        /// The version asked for.
        version: i16,
        /// Lowest version the schema defines.
        min: i16,
        /// Highest version the schema defines.
        max: i16,
    },
    /// kafka-protocol failed to decode the body.
    #[error("cannot decode {api_key:?} v{version} body: {message}")]
    Body {
        /// The API of the message.
        api_key: ApiKey,
        /// Its version.
        version: i16,
        /// kafka-protocol's error chain.
        message: String,
    },
    /// The body decoded but bytes were left over: the version or schema did not match.
    #[error("{api_key:?} v{version} body left {remaining} trailing bytes undecoded")]
    TrailingBytes {
        /// The API of the message.
        api_key: ApiKey,
        /// Its version.
        version: i16,
        /// Bytes left after the decoded body.
        remaining: usize,
    },
}

/// API version negotiation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The broker's and the client's ranges for this API do not overlap.
    #[error("no common version for {api_key:?}: client supports {client_min}..={client_max}, broker supports {broker_min}..={broker_max}")]
    NoOverlap {
        /// The API.
        api_key: ApiKey,
        /// Lowest version kafee supports.
        client_min: i16,
        /// Highest version kafee supports.
        client_max: i16,
        /// Lowest version the broker supports.
        broker_min: i16,
        /// Highest version the broker supports.
        broker_max: i16,
    },
    /// The broker does not advertise this API at all.
    #[error("broker does not support {api_key:?}")]
    NotAdvertised {
        /// The API.
        api_key: ApiKey,
    },
    /// The API is not in kafee's version table, so kafee never sends it.
    #[error("{api_key:?} is not in kafee's version table")]
    NotInTable {
        /// The API.
        api_key: ApiKey,
    },
    /// The ApiVersions response itself carried an error code.
    #[error("ApiVersions failed with {code}")]
    ApiVersionsFailed {
        /// The error code of the response.
        code: ErrorCode,
    },
}

/// What a consumer does about an error code.
///
/// This is the default policy of the table in `KAFKA_NOTES.md`; callers
/// refine it by request (for example REBALANCE_IN_PROGRESS on a heartbeat
/// means "commit what is done, then rejoin", on a commit "rejoin, keep the
/// generation").
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConsumerAction {
    /// Not an error.
    None,
    /// Back off and retry the same request (bounded). For REQUEST_TIMED_OUT
    /// and NETWORK_EXCEPTION the outcome of a commit or produce is unknown.
    Retry,
    /// Refresh metadata (leader moved, topic unknown), keep the fetch offset, retry.
    RefreshMetadata,
    /// Look up the group coordinator again, then retry the same request.
    FindCoordinator,
    /// The generation is gone: drop uncommitted state, do not commit, rejoin the group.
    Rejoin,
    /// Like [`ConsumerAction::Rejoin`], but clear the member id first (UNKNOWN_MEMBER_ID).
    ResetMemberId,
    /// The fetch offset is out of range: apply the offset reset policy and report it.
    ResetOffset,
    /// Not recoverable by this client: surface the error.
    Fatal,
}

/// A Kafka error code as found in responses.
///
/// Every code Kafka defines has an associated constant
/// (`ErrorCode::REBALANCE_IN_PROGRESS`). Codes this table does not know
/// are kept as they are: their name is `UNKNOWN`, they are not retriable
/// and their consumer action is [`ConsumerAction::Fatal`].
///
/// ```
/// use kafee_protocol::error::{ConsumerAction, ErrorCode};
///
/// let code = ErrorCode::from(27);
/// assert_eq!(code, ErrorCode::REBALANCE_IN_PROGRESS);
/// assert_eq!(code.to_string(), "REBALANCE_IN_PROGRESS (27)");
/// assert!(!code.is_retriable());
/// assert_eq!(code.consumer_action(), ConsumerAction::Rejoin);
/// assert!(ErrorCode::NONE.is_ok());
/// ```
#[derive(Copy, Clone, Eq, PartialEq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub i16);

struct CodeInfo {
    name: &'static str,
    retriable: bool,
    action: ConsumerAction,
    description: &'static str,
}

macro_rules! error_codes {
    ($( ($name:ident, $code:literal, $retriable:literal, $action:ident, $desc:literal), )*) => {
        impl ErrorCode {
            $(
                #[doc = concat!("`", stringify!($code), "`: ", $desc)]
                pub const $name: ErrorCode = ErrorCode($code);
            )*

            /// Every code in the table, in ascending order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode($code),)*];

            fn info(self) -> Option<CodeInfo> {
                match self.0 {
                    $(
                        $code => Some(CodeInfo {
                            name: stringify!($name),
                            retriable: $retriable,
                            action: ConsumerAction::$action,
                            description: $desc,
                        }),
                    )*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    (UNKNOWN_SERVER_ERROR, -1, false, Fatal, "The broker hit an unexpected error while handling the request."),
    (NONE, 0, false, None, "No error."),
    (OFFSET_OUT_OF_RANGE, 1, false, ResetOffset, "The requested offset is outside the range the broker holds for the partition."),
    (CORRUPT_MESSAGE, 2, true, Retry, "A record failed its CRC check, was too large, or was otherwise malformed."),
    (UNKNOWN_TOPIC_OR_PARTITION, 3, true, RefreshMetadata, "This broker does not host the topic-partition."),
    (INVALID_FETCH_SIZE, 4, false, Fatal, "The fetch size in the request is invalid."),
    (LEADER_NOT_AVAILABLE, 5, true, RefreshMetadata, "The partition has no leader right now (an election is running)."),
    (NOT_LEADER_OR_FOLLOWER, 6, true, RefreshMetadata, "This broker is not the leader (or not a replica) of the partition."),
    (REQUEST_TIMED_OUT, 7, true, Retry, "The request timed out on the broker."),
    (BROKER_NOT_AVAILABLE, 8, false, Fatal, "The broker is not available."),
    (REPLICA_NOT_AVAILABLE, 9, true, RefreshMetadata, "The replica is not available for the partition."),
    (MESSAGE_TOO_LARGE, 10, false, Fatal, "A message was larger than the broker accepts."),
    (STALE_CONTROLLER_EPOCH, 11, false, Fatal, "The controller moved to another broker."),
    (OFFSET_METADATA_TOO_LARGE, 12, false, Fatal, "The metadata string of a committed offset was too large."),
    (NETWORK_EXCEPTION, 13, true, Retry, "The broker connection was lost before a response arrived."),
    (COORDINATOR_LOAD_IN_PROGRESS, 14, true, Retry, "The coordinator is still loading its state."),
    (COORDINATOR_NOT_AVAILABLE, 15, true, FindCoordinator, "The coordinator is not available."),
    (NOT_COORDINATOR, 16, true, FindCoordinator, "This broker is not the coordinator for the group or transaction."),
    (INVALID_TOPIC_EXCEPTION, 17, false, Fatal, "The topic name is invalid or the operation is not allowed on it."),
    (RECORD_LIST_TOO_LARGE, 18, false, Fatal, "A record batch was larger than the broker's segment size."),
    (NOT_ENOUGH_REPLICAS, 19, true, Retry, "Fewer in-sync replicas than required; the records were rejected."),
    (NOT_ENOUGH_REPLICAS_AFTER_APPEND, 20, true, Retry, "The records were written but to fewer in-sync replicas than required."),
    (INVALID_REQUIRED_ACKS, 21, false, Fatal, "The produce request's acks value is invalid."),
    (ILLEGAL_GENERATION, 22, false, Rejoin, "The group generation in the request is not the current one."),
    (INCONSISTENT_GROUP_PROTOCOL, 23, false, Fatal, "The member's protocols do not match those of the group."),
    (INVALID_GROUP_ID, 24, false, Fatal, "The group id is invalid."),
    (UNKNOWN_MEMBER_ID, 25, false, ResetMemberId, "The coordinator does not know this member id."),
    (INVALID_SESSION_TIMEOUT, 26, false, Fatal, "The session timeout is outside the broker's allowed range."),
    (REBALANCE_IN_PROGRESS, 27, false, Rejoin, "The group is rebalancing and the member must rejoin."),
    (INVALID_COMMIT_OFFSET_SIZE, 28, false, Fatal, "The offset commit data has an invalid size."),
    (TOPIC_AUTHORIZATION_FAILED, 29, false, Fatal, "Not authorized for the topic."),
    (GROUP_AUTHORIZATION_FAILED, 30, false, Fatal, "Not authorized for the group."),
    (CLUSTER_AUTHORIZATION_FAILED, 31, false, Fatal, "Not authorized for the cluster."),
    (INVALID_TIMESTAMP, 32, false, Fatal, "A record timestamp is outside the accepted range."),
    (UNSUPPORTED_SASL_MECHANISM, 33, false, Fatal, "The broker does not support the SASL mechanism."),
    (ILLEGAL_SASL_STATE, 34, false, Fatal, "The request is not valid in the current SASL state."),
    (UNSUPPORTED_VERSION, 35, false, Fatal, "The broker does not support this version of the API."),
    (TOPIC_ALREADY_EXISTS, 36, false, Fatal, "A topic with this name already exists."),
    (INVALID_PARTITIONS, 37, false, Fatal, "The partition count is invalid."),
    (INVALID_REPLICATION_FACTOR, 38, false, Fatal, "The replication factor is invalid for this cluster."),
    (INVALID_REPLICA_ASSIGNMENT, 39, false, Fatal, "The replica assignment is invalid."),
    (INVALID_CONFIG, 40, false, Fatal, "The configuration is invalid."),
    (NOT_CONTROLLER, 41, true, RefreshMetadata, "This broker is not the active controller."),
    (INVALID_REQUEST, 42, false, Fatal, "The broker judged the request malformed or incompatible."),
    (UNSUPPORTED_FOR_MESSAGE_FORMAT, 43, false, Fatal, "The broker's message format does not support the request."),
    (POLICY_VIOLATION, 44, false, Fatal, "The request violates a policy configured on the broker."),
    (OUT_OF_ORDER_SEQUENCE_NUMBER, 45, false, Fatal, "The broker received a producer sequence number out of order."),
    (DUPLICATE_SEQUENCE_NUMBER, 46, false, Fatal, "The broker received a duplicate producer sequence number."),
    (INVALID_PRODUCER_EPOCH, 47, false, Fatal, "The producer epoch is older than the broker's."),
    (INVALID_TXN_STATE, 48, false, Fatal, "The transactional operation is invalid in the current state."),
    (INVALID_PRODUCER_ID_MAPPING, 49, false, Fatal, "The producer id is not assigned to this transactional id."),
    (INVALID_TRANSACTION_TIMEOUT, 50, false, Fatal, "The transaction timeout exceeds the broker maximum."),
    (CONCURRENT_TRANSACTIONS, 51, true, Retry, "Another operation on the same transaction is still running."),
    (TRANSACTION_COORDINATOR_FENCED, 52, false, Fatal, "The transaction coordinator that sent the markers was fenced."),
    (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, 53, false, Fatal, "Not authorized for the transactional id."),
    (SECURITY_DISABLED, 54, false, Fatal, "Security features are disabled on the broker."),
    (OPERATION_NOT_ATTEMPTED, 55, false, Retry, "The broker skipped this operation because another in the batch failed."),
    (KAFKA_STORAGE_ERROR, 56, true, RefreshMetadata, "The broker hit a disk error on the log."),
    (LOG_DIR_NOT_FOUND, 57, false, Fatal, "The log directory is not configured on the broker."),
    (SASL_AUTHENTICATION_FAILED, 58, false, Fatal, "SASL authentication failed."),
    (UNKNOWN_PRODUCER_ID, 59, false, Fatal, "The broker has no state for this producer id."),
    (REASSIGNMENT_IN_PROGRESS, 60, false, Fatal, "A partition reassignment is in progress."),
    (DELEGATION_TOKEN_AUTH_DISABLED, 61, false, Fatal, "Delegation tokens are disabled."),
    (DELEGATION_TOKEN_NOT_FOUND, 62, false, Fatal, "The delegation token does not exist."),
    (DELEGATION_TOKEN_OWNER_MISMATCH, 63, false, Fatal, "The principal is not the token's owner or renewer."),
    (DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, 64, false, Fatal, "Delegation token requests are not allowed on this channel."),
    (DELEGATION_TOKEN_AUTHORIZATION_FAILED, 65, false, Fatal, "Not authorized for the delegation token."),
    (DELEGATION_TOKEN_EXPIRED, 66, false, Fatal, "The delegation token has expired."),
    (INVALID_PRINCIPAL_TYPE, 67, false, Fatal, "The principal type is not supported."),
    (NON_EMPTY_GROUP, 68, false, Fatal, "The group still has members."),
    (GROUP_ID_NOT_FOUND, 69, false, Fatal, "The group does not exist."),
    (FETCH_SESSION_ID_NOT_FOUND, 70, true, Retry, "The fetch session id is unknown to the broker."),
    (INVALID_FETCH_SESSION_EPOCH, 71, true, Retry, "The fetch session epoch is not the expected one."),
    (LISTENER_NOT_FOUND, 72, true, RefreshMetadata, "The leader has no listener matching the one used for metadata."),
    (TOPIC_DELETION_DISABLED, 73, false, Fatal, "Topic deletion is disabled on the broker."),
    (FENCED_LEADER_EPOCH, 74, true, RefreshMetadata, "The leader epoch in the request is older than the broker's."),
    (UNKNOWN_LEADER_EPOCH, 75, true, RefreshMetadata, "The leader epoch in the request is newer than the broker's."),
    (UNSUPPORTED_COMPRESSION_TYPE, 76, false, Fatal, "The client cannot read the compression type of the partition."),
    (STALE_BROKER_EPOCH, 77, false, Fatal, "The broker epoch has changed."),
    (OFFSET_NOT_AVAILABLE, 78, true, RefreshMetadata, "The new leader's high watermark has not caught up yet."),
    (MEMBER_ID_REQUIRED, 79, false, Rejoin, "The member must rejoin with the member id the coordinator returned."),
    (PREFERRED_LEADER_NOT_AVAILABLE, 80, true, RefreshMetadata, "The preferred leader is not available."),
    (GROUP_MAX_SIZE_REACHED, 81, false, Fatal, "The group has reached its maximum size."),
    (FENCED_INSTANCE_ID, 82, false, Fatal, "Another member registered the same group.instance.id."),
    (ELIGIBLE_LEADERS_NOT_AVAILABLE, 83, true, RefreshMetadata, "No eligible leader is available for the partition."),
    (ELECTION_NOT_NEEDED, 84, true, Retry, "No leader election is needed for the partition."),
    (NO_REASSIGNMENT_IN_PROGRESS, 85, false, Fatal, "No partition reassignment is in progress."),
    (GROUP_SUBSCRIBED_TO_TOPIC, 86, false, Fatal, "Offsets of a topic the group subscribes to cannot be deleted."),
    (INVALID_RECORD, 87, false, Fatal, "The broker rejected a record as invalid."),
    (UNSTABLE_OFFSET_COMMIT, 88, true, Retry, "Pending transactional offsets must settle before the offset can be read."),
    (THROTTLING_QUOTA_EXCEEDED, 89, true, Retry, "The throttling quota was exceeded."),
    (PRODUCER_FENCED, 90, false, Fatal, "A newer producer with the same transactional id fenced this one."),
    (RESOURCE_NOT_FOUND, 91, false, Fatal, "The request named a resource that does not exist."),
    (DUPLICATE_RESOURCE, 92, false, Fatal, "The request named the same resource twice."),
    (UNACCEPTABLE_CREDENTIAL, 93, false, Fatal, "The credential does not meet the acceptance criteria."),
    (INCONSISTENT_VOTER_SET, 94, false, Fatal, "The sender or receiver of a voter request is not an expected voter."),
    (INVALID_UPDATE_VERSION, 95, false, Fatal, "The update version is invalid."),
    (FEATURE_UPDATE_FAILED, 96, false, Fatal, "The finalized features could not be updated."),
    (PRINCIPAL_DESERIALIZATION_FAILURE, 97, false, Fatal, "The forwarded request's principal could not be deserialized."),
    (SNAPSHOT_NOT_FOUND, 98, false, Fatal, "The snapshot does not exist."),
    (POSITION_OUT_OF_RANGE, 99, false, Fatal, "The snapshot position is out of range."),
    (UNKNOWN_TOPIC_ID, 100, true, RefreshMetadata, "This broker does not host the topic id."),
    (DUPLICATE_BROKER_REGISTRATION, 101, false, Fatal, "The broker id is already registered."),
    (BROKER_ID_NOT_REGISTERED, 102, false, Fatal, "The broker id is not registered."),
    (INCONSISTENT_TOPIC_ID, 103, true, RefreshMetadata, "The topic id in the request does not match the log's."),
    (INCONSISTENT_CLUSTER_ID, 104, false, Fatal, "The cluster id in the request does not match the broker's."),
    (TRANSACTIONAL_ID_NOT_FOUND, 105, false, Fatal, "The transactional id does not exist."),
    (FETCH_SESSION_TOPIC_ID_ERROR, 106, true, Retry, "The fetch session mixed topic ids and topic names inconsistently."),
    (INELIGIBLE_REPLICA, 107, false, Fatal, "The new ISR contains an ineligible replica."),
    (NEW_LEADER_ELECTED, 108, false, Fatal, "The partition state was updated but the leader changed."),
    (OFFSET_MOVED_TO_TIERED_STORAGE, 109, false, Fatal, "The requested offset now lives in tiered storage."),
    (FENCED_MEMBER_EPOCH, 110, false, ResetMemberId, "The coordinator fenced the member epoch; the member must rejoin afresh."),
    (UNRELEASED_INSTANCE_ID, 111, false, Fatal, "The instance id is still held by another member."),
    (UNSUPPORTED_ASSIGNOR, 112, false, Fatal, "The group does not support the assignor or its version."),
    (STALE_MEMBER_EPOCH, 113, false, Retry, "The member epoch is stale; retry with the epoch from the next heartbeat."),
    (MISMATCHED_ENDPOINT_TYPE, 114, false, Fatal, "The request reached an endpoint of the wrong type."),
    (UNSUPPORTED_ENDPOINT_TYPE, 115, false, Fatal, "The endpoint type is not supported."),
    (UNKNOWN_CONTROLLER_ID, 116, false, Fatal, "The controller id is unknown."),
    (UNKNOWN_SUBSCRIPTION_ID, 117, false, Fatal, "The telemetry subscription id is unknown or outdated."),
    (TELEMETRY_TOO_LARGE, 118, false, Fatal, "The telemetry push was larger than the broker accepts."),
    (INVALID_REGISTRATION, 119, false, Fatal, "The controller found the broker registration invalid."),
    (TRANSACTION_ABORTABLE, 120, false, Fatal, "The transaction failed and must be aborted."),
    (INVALID_RECORD_STATE, 121, false, Fatal, "The record state does not allow the acknowledgement."),
    (SHARE_SESSION_NOT_FOUND, 122, true, Retry, "The share session does not exist."),
    (INVALID_SHARE_SESSION_EPOCH, 123, true, Retry, "The share session epoch is invalid."),
    (FENCED_STATE_EPOCH, 124, false, Fatal, "The share-group state epoch did not match."),
    (INVALID_VOTER_KEY, 125, false, Fatal, "The voter key does not match the receiving replica."),
    (DUPLICATE_VOTER, 126, false, Fatal, "The voter is already in the voter set."),
    (VOTER_NOT_FOUND, 127, false, Fatal, "The voter is not in the voter set."),
    (INVALID_REGULAR_EXPRESSION, 128, false, Fatal, "The regular expression is invalid."),
    (REBOOTSTRAP_REQUIRED, 129, false, RefreshMetadata, "The client's metadata is stale and it must bootstrap again."),
    (STREAMS_INVALID_TOPOLOGY, 130, false, Fatal, "The streams topology is invalid."),
    (STREAMS_INVALID_TOPOLOGY_EPOCH, 131, false, Fatal, "The streams topology epoch is invalid."),
    (STREAMS_TOPOLOGY_FENCED, 132, false, Fatal, "The streams topology epoch is outdated."),
    (SHARE_SESSION_LIMIT_REACHED, 133, true, Retry, "The broker's limit of share sessions was reached."),
}

impl ErrorCode {
    /// Kafka's name for the code (`"REBALANCE_IN_PROGRESS"`), or `"UNKNOWN"`
    /// for a code this table does not know.
    pub fn name(self) -> &'static str {
        self.info().map_or("UNKNOWN", |i| i.name)
    }

    /// Whether Kafka classes the error as retriable (its exception extends
    /// `RetriableException`). Unknown codes are not retriable.
    pub fn is_retriable(self) -> bool {
        self.info().is_some_and(|i| i.retriable)
    }

    /// A short description of the error.
    pub fn description(self) -> &'static str {
        self.info()
            .map_or("An error code this client does not know.", |i| {
                i.description
            })
    }

    /// What a consumer does about this error by default (see [`ConsumerAction`]).
    pub fn consumer_action(self) -> ConsumerAction {
        self.info().map_or(ConsumerAction::Fatal, |i| i.action)
    }

    /// Whether the code is `NONE` (0).
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// Whether the code is known to this table.
    pub fn is_known(self) -> bool {
        self.info().is_some()
    }

    /// `Ok(())` for `NONE`, `Err(self)` otherwise.
    pub fn into_result(self) -> Result<(), ErrorCode> {
        if self.is_ok() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl From<i16> for ErrorCode {
    fn from(code: i16) -> Self {
        ErrorCode(code)
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> Self {
        code.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({} {})", self.0, self.name())
    }
}

impl std::error::Error for ErrorCode {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_is_dense_from_minus_one_to_latest() {
        let codes: Vec<i16> = ErrorCode::ALL.iter().map(|c| c.0).collect();
        let expected: Vec<i16> = (-1..=133).collect();
        assert_eq!(codes, expected);
        for code in ErrorCode::ALL {
            assert!(code.is_known());
            assert_ne!(code.name(), "UNKNOWN");
            assert!(code.description().ends_with('.'));
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn display_prints_name_and_code() {
        assert_eq!(
            ErrorCode::REBALANCE_IN_PROGRESS.to_string(),
            "REBALANCE_IN_PROGRESS (27)"
        );
        assert_eq!(
            ErrorCode::UNKNOWN_SERVER_ERROR.to_string(),
            "UNKNOWN_SERVER_ERROR (-1)"
        );
        assert_eq!(ErrorCode::NONE.to_string(), "NONE (0)");
        assert_eq!(ErrorCode(4242).to_string(), "UNKNOWN (4242)");
        assert_eq!(
            format!("{:?}", ErrorCode(16)),
            "ErrorCode(16 NOT_COORDINATOR)"
        );
    }

    #[test]
    fn unknown_codes_are_fatal_and_not_retriable() {
        for raw in [134, 500, i16::MAX, -2, i16::MIN] {
            let code = ErrorCode::from(raw);
            assert!(!code.is_known());
            assert!(!code.is_retriable());
            assert_eq!(code.consumer_action(), ConsumerAction::Fatal);
            assert_eq!(code.name(), "UNKNOWN");
        }
    }

    #[test]
    fn retriable_flags_follow_kafka() {
        for code in [
            ErrorCode::CORRUPT_MESSAGE,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            ErrorCode::LEADER_NOT_AVAILABLE,
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
            ErrorCode::REQUEST_TIMED_OUT,
            ErrorCode::NETWORK_EXCEPTION,
            ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            ErrorCode::COORDINATOR_NOT_AVAILABLE,
            ErrorCode::NOT_COORDINATOR,
            ErrorCode::NOT_ENOUGH_REPLICAS,
            ErrorCode::FENCED_LEADER_EPOCH,
            ErrorCode::UNKNOWN_LEADER_EPOCH,
            ErrorCode::OFFSET_NOT_AVAILABLE,
            ErrorCode::UNSTABLE_OFFSET_COMMIT,
            ErrorCode::UNKNOWN_TOPIC_ID,
        ] {
            assert!(code.is_retriable(), "{code} should be retriable");
        }
        for code in [
            ErrorCode::UNKNOWN_SERVER_ERROR,
            ErrorCode::NONE,
            ErrorCode::OFFSET_OUT_OF_RANGE,
            ErrorCode::ILLEGAL_GENERATION,
            ErrorCode::UNKNOWN_MEMBER_ID,
            ErrorCode::REBALANCE_IN_PROGRESS,
            ErrorCode::MEMBER_ID_REQUIRED,
            ErrorCode::FENCED_INSTANCE_ID,
            ErrorCode::UNSUPPORTED_VERSION,
            ErrorCode::TOPIC_AUTHORIZATION_FAILED,
        ] {
            assert!(!code.is_retriable(), "{code} should not be retriable");
        }
    }

    /// The table in KAFKA_NOTES.md, row by row.
    #[test]
    fn consumer_actions_follow_the_notes() {
        use ConsumerAction::*;
        let rows: &[(&[i16], ConsumerAction)] = &[
            (&[0], None),
            (&[1], ResetOffset),
            (&[2], Retry),
            (&[3, 100], RefreshMetadata),
            (&[5, 6, 9, 56, 74, 75, 78], RefreshMetadata),
            (&[7, 13], Retry),
            (&[14], Retry),
            (&[15, 16], FindCoordinator),
            (&[22], Rejoin),
            (&[25], ResetMemberId),
            (&[27], Rejoin),
            (&[79], Rejoin),
            (&[82], Fatal),
            (&[88], Retry),
            (&[10, 18, 23, 24, 26, 29, 30, 81, 87], Fatal),
        ];
        for (codes, action) in rows {
            for &raw in *codes {
                assert_eq!(
                    ErrorCode(raw).consumer_action(),
                    *action,
                    "{}",
                    ErrorCode(raw)
                );
            }
        }
    }

    #[test]
    fn retriable_codes_are_never_fatal() {
        for code in ErrorCode::ALL.iter().filter(|c| c.is_retriable()) {
            assert!(
                matches!(
                    code.consumer_action(),
                    ConsumerAction::Retry
                        | ConsumerAction::RefreshMetadata
                        | ConsumerAction::FindCoordinator
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn conversions_and_result() {
        assert_eq!(i16::from(ErrorCode::NOT_COORDINATOR), 16);
        assert_eq!(ErrorCode::from(16), ErrorCode::NOT_COORDINATOR);
        assert_eq!(ErrorCode::NONE.into_result(), Ok(()));
        assert_eq!(
            ErrorCode::UNKNOWN_MEMBER_ID.into_result(),
            Err(ErrorCode::UNKNOWN_MEMBER_ID)
        );
        assert_eq!(ErrorCode::SHARE_SESSION_LIMIT_REACHED.0, 133);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            FrameError::TooLarge {
                limit: 100,
                actual: 101
            }
            .to_string(),
            "frame of 101 bytes exceeds the limit of 100"
        );
        assert_eq!(
            FrameError::NegativeLength { length: -5 }.to_string(),
            "frame size prefix -5 is negative"
        );
        assert_eq!(
            VersionError::ApiVersionsFailed {
                code: ErrorCode::UNSUPPORTED_VERSION
            }
            .to_string(),
            "ApiVersions failed with UNSUPPORTED_VERSION (35)"
        );
        assert_eq!(
            DecodeError::TrailingBytes {
                api_key: ApiKey::Fetch,
                version: 12,
                remaining: 3
            }
            .to_string(),
            "Fetch v12 body left 3 trailing bytes undecoded"
        );
    }
}
