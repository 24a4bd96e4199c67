//! [`GroupError`]: why a group membership cannot go on.

use kafee_protocol::consumer_protocol::ConsumerProtocolError;
use kafee_protocol::error::ErrorCode;

use super::assignor::AssignError;

/// The group API a request or error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupApi {
    /// FindCoordinator (key 10).
    FindCoordinator,
    /// JoinGroup (key 11).
    JoinGroup,
    /// SyncGroup (key 14).
    SyncGroup,
    /// Heartbeat (key 12).
    Heartbeat,
    /// LeaveGroup (key 13).
    LeaveGroup,
    /// OffsetCommit (key 8).
    OffsetCommit,
}

impl std::fmt::Display for GroupApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GroupApi::FindCoordinator => "FindCoordinator",
            GroupApi::JoinGroup => "JoinGroup",
            GroupApi::SyncGroup => "SyncGroup",
            GroupApi::Heartbeat => "Heartbeat",
            GroupApi::LeaveGroup => "LeaveGroup",
            GroupApi::OffsetCommit => "OffsetCommit",
        })
    }
}

/// A fatal condition of the membership: the member stops and the caller
/// must surface the error (no rejoin loop).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The coordinator answered with an error that no retry can fix
    /// (authorization, invalid configuration, group full, unsupported version, ...).
    #[error("group {group_id}: {api} failed with {code}")]
    Broker {
        /// The group.
        group_id: String,
        /// The API that failed.
        api: GroupApi,
        /// The error code.
        code: ErrorCode,
    },
    /// Another instance with the same `group.instance.id` took over.
    #[error("group {group_id}: group.instance.id {group_instance_id:?} was fenced by another instance ({api})")]
    FencedInstanceId {
        /// The group.
        group_id: String,
        /// The fenced instance id.
        group_instance_id: String,
        /// The API that reported it.
        api: GroupApi,
    },
    /// The coordinator reports a protocol type other than `consumer`.
    #[error("group {group_id}: {api} returned protocol type {received:?}, expected \"consumer\"")]
    InconsistentProtocolType {
        /// The group.
        group_id: String,
        /// The API.
        api: GroupApi,
        /// The type received.
        received: String,
    },
    /// SyncGroup names a protocol other than the one JoinGroup selected.
    #[error("group {group_id}: SyncGroup returned protocol {received:?}, JoinGroup selected {expected:?}")]
    InconsistentProtocolName {
        /// The group.
        group_id: String,
        /// The protocol JoinGroup selected.
        expected: String,
        /// The protocol SyncGroup returned.
        received: String,
    },
    /// The coordinator selected an assignor this member did not offer.
    #[error("group {group_id}: the coordinator selected assignor {name:?}, which this member does not have")]
    UnknownAssignor {
        /// The group.
        group_id: String,
        /// The selected protocol name (empty when absent).
        name: String,
    },
    /// The leader could not decode a member's subscription.
    #[error("group {group_id}: subscription of member {member_id:?} is malformed: {source}")]
    BadSubscription {
        /// The group.
        group_id: String,
        /// The member whose metadata is malformed.
        member_id: String,
        /// The decode error.
        source: ConsumerProtocolError,
    },
    /// This member's assignment from SyncGroup could not be decoded.
    #[error("group {group_id}: assignment for generation {generation_id} is malformed: {source}")]
    BadAssignment {
        /// The group.
        group_id: String,
        /// The generation.
        generation_id: i32,
        /// The decode error.
        source: ConsumerProtocolError,
    },
    /// Subscription or assignment bytes could not be encoded (a name too long).
    #[error("group {group_id}: {source}")]
    Encode {
        /// The group.
        group_id: String,
        /// The encode error.
        source: ConsumerProtocolError,
    },
    /// The leader's assignor failed.
    #[error("group {group_id}: assignor {assignor} failed: {source}")]
    Assign {
        /// The group.
        group_id: String,
        /// The assignor name.
        assignor: String,
        /// The assignor's error.
        source: AssignError,
    },
}
