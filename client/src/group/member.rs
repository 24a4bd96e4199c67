//! [`GroupMember`]: the classic group membership as a sans-IO state machine.
//!
//! See the [module docs](super) for the driving loop and the state diagram.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafee_protocol::consumer_protocol::{self, Assignment, Subscription, TopicPartitions};
use kafee_protocol::error::ErrorCode;

use super::assignor::{Assignor, MemberSubscription};
use super::config::GroupConfig;
use super::error::{GroupApi, GroupError};

/// Identifies one request the machine asked for; the driver hands it back
/// with the response or failure so that stale answers are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The group coordinator as FindCoordinator returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    /// Broker node id.
    pub node_id: i32,
    /// Host name.
    pub host: String,
    /// Port.
    pub port: i32,
}

pub use crate::admin::TopicPartition;

/// FindCoordinator request parameters (key type GROUP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindCoordinatorParams {
    /// Hand back with the answer.
    pub request_id: RequestId,
    /// The group id (the coordinator key).
    pub group_id: String,
}

/// One protocol (assignor) offered in JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupProtocol {
    /// The assignor name.
    pub name: &'static str,
    /// The encoded `consumer` subscription.
    pub metadata: Bytes,
}

/// JoinGroup request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupParams {
    /// Hand back with the answer.
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// The member id (empty on the first join).
    pub member_id: String,
    /// `group.instance.id` for static members.
    pub group_instance_id: Option<String>,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Rebalance timeout: the coordinator may hold the request this long.
    pub rebalance_timeout: Duration,
    /// Always `"consumer"`.
    pub protocol_type: &'static str,
    /// The assignors offered, in preference order.
    pub protocols: Vec<JoinGroupProtocol>,
    /// Why the member (re)joins (JoinGroup v8+).
    pub reason: String,
}

impl JoinGroupParams {
    /// How long the driver should wait for the response: the rebalance
    /// timeout plus 5 s, as Java does, since the coordinator parks JoinGroup
    /// until every member has rejoined.
    pub fn response_timeout(&self) -> Duration {
        self.rebalance_timeout + Duration::from_secs(5)
    }
}

/// One member's assignment in the leader's SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupAssignment {
    /// The member.
    pub member_id: String,
    /// The encoded `consumer` assignment.
    pub assignment: Bytes,
}

/// SyncGroup request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupParams {
    /// Hand back with the answer.
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// The generation from JoinGroup.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` for static members.
    pub group_instance_id: Option<String>,
    /// Always `"consumer"` (SyncGroup v5+).
    pub protocol_type: &'static str,
    /// The assignor JoinGroup selected (SyncGroup v5+).
    pub protocol_name: String,
    /// The leader's assignments; empty for followers.
    pub assignments: Vec<SyncGroupAssignment>,
}

/// Heartbeat request parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatParams {
    /// Hand back with the answer.
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// The generation.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` for static members.
    pub group_instance_id: Option<String>,
}

/// LeaveGroup request parameters (dynamic members only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupParams {
    /// Hand back with the answer.
    pub request_id: RequestId,
    /// The group id.
    pub group_id: String,
    /// The member leaving.
    pub member_id: String,
    /// Why (LeaveGroup v5+).
    pub reason: String,
}

/// One member in a JoinGroup response (only the leader receives them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupMember {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// Its protocol metadata (the encoded subscription).
    pub metadata: Bytes,
}

/// The fields of a JoinGroup response the membership needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponse {
    /// The top-level error code.
    pub error_code: ErrorCode,
    /// The new generation.
    pub generation_id: i32,
    /// The group's protocol type (v7+; `None` before).
    pub protocol_type: Option<String>,
    /// The selected assignor.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// KIP-814: the leader must not compute a new assignment (v9+).
    pub skip_assignment: bool,
    /// This member's id (also set with MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// The members and their subscriptions (leader only).
    pub members: Vec<JoinGroupMember>,
}

impl JoinGroupResponse {
    /// A response carrying only `error_code` (for errors and tests).
    pub fn error(error_code: ErrorCode) -> Self {
        JoinGroupResponse {
            error_code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: String::new(),
            members: Vec::new(),
        }
    }
}

/// The fields of a SyncGroup response the membership needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupResponse {
    /// The error code.
    pub error_code: ErrorCode,
    /// The protocol type (v5+).
    pub protocol_type: Option<String>,
    /// The protocol name (v5+).
    pub protocol_name: Option<String>,
    /// This member's encoded assignment (may be empty: no assignment).
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    /// A response carrying only `error_code`.
    pub fn error(error_code: ErrorCode) -> Self {
        SyncGroupResponse {
            error_code,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// How a request failed without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestFailure {
    /// The connection to the coordinator closed or could not be opened.
    Disconnected,
    /// No response within the request timeout.
    TimedOut,
}

/// The next thing the driver must do, from [`GroupMember::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send FindCoordinator to any broker; answer with
    /// [`GroupMember::on_find_coordinator_response`].
    FindCoordinator(FindCoordinatorParams),
    /// Send JoinGroup to the coordinator; answer with [`GroupMember::on_join_response`].
    SendJoinGroup(JoinGroupParams),
    /// This member leads: fetch the partition counts of `topics` and answer
    /// with [`GroupMember::on_partition_counts`].
    NeedPartitionCounts {
        /// Every topic any member subscribes to, sorted.
        topics: Vec<String>,
    },
    /// Send SyncGroup to the coordinator; answer with [`GroupMember::on_sync_response`].
    SendSyncGroup(SyncGroupParams),
    /// Send Heartbeat; answer with [`GroupMember::on_heartbeat_response`].
    SendHeartbeat(HeartbeatParams),
    /// Send LeaveGroup; answer with [`GroupMember::on_leave_response`].
    SendLeaveGroup(LeaveGroupParams),
    /// Stop fetching these partitions, run the revocation listener (where
    /// in-flight work is finished or abandoned and committed: commits are
    /// allowed now), then call [`GroupMember::revoke_done`]. Keep polling
    /// meanwhile: heartbeats continue.
    Revoke(Vec<TopicPartition>),
    /// These partitions are now owned (the listener's `on_assigned`).
    Assign(Vec<TopicPartition>),
    /// Fetch committed offsets for these newly assigned partitions.
    FetchOffsets(Vec<TopicPartition>),
    /// The membership was lost: drop uncommitted state for these partitions
    /// and do not commit them (the listener's `on_lost`).
    Lost(Vec<TopicPartition>),
    /// The membership cannot go on; surface the error. Nothing follows.
    Fatal(GroupError),
    /// The member left the group (or gave up leaving); nothing follows.
    Closed,
}

/// The membership's phase, for observation and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Not in a generation; a JoinGroup will be sent when allowed.
    Unjoined,
    /// JoinGroup in flight.
    Joining,
    /// Leader waiting for partition counts.
    AwaitingPartitionCounts,
    /// SyncGroup in flight (or about to be sent).
    Syncing,
    /// In a generation with an assignment.
    Stable,
    /// Waiting for the revocation listener ([`GroupMember::revoke_done`]).
    Revoking,
    /// LeaveGroup pending or in flight.
    Leaving,
    /// Left the group.
    Closed,
    /// Stopped by a fatal error.
    Failed,
}

/// Why [`GroupMember::begin_commit`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitRefused {
    /// The member is not in a state where the broker accepts commits
    /// (between JoinGroup and SyncGroup, unjoined, closed, failed).
    #[error("no commit allowed in state {0:?}")]
    NotAllowed(MemberState),
    /// A commit is already in flight; wait for its answer (never cancel it).
    #[error("a commit is already in flight")]
    InFlight,
    /// The coordinator is not known; it is being looked up.
    #[error("the group coordinator is unknown")]
    CoordinatorUnknown,
}

/// What an OffsetCommit must carry, from [`GroupMember::begin_commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitContext {
    /// Hand back with the answer.
    pub request_id: RequestId,
    /// The generation.
    pub generation_id: i32,
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` for static members.
    pub group_instance_id: Option<String>,
}

/// What the commit layer does after an OffsetCommit answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Every partition committed.
    Committed,
    /// Retriable (coordinator moved or loading, timeout): send the same
    /// offsets again once [`GroupMember::begin_commit`] allows it.
    Retry,
    /// REBALANCE_IN_PROGRESS: the member now revokes and rejoins; the offsets
    /// may be committed again from the revocation listener.
    Rebalancing,
    /// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID: the
    /// partitions are lost; do not commit them.
    MembershipLost,
    /// A non-retriable error for the commit itself (metadata too large,
    /// authorization, ...); surface it. The membership is unaffected.
    Failed(ErrorCode),
}

/// Doubling delay from `retry.backoff.ms`, capped at `retry.backoff.max.ms`.
#[derive(Debug, Clone)]
struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            failures: 0,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        self.initial.saturating_mul(factor).min(self.max)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[derive(Debug, Clone)]
struct InFlight {
    id: RequestId,
    generation_id: i32,
    member_id: String,
}

#[derive(Debug)]
enum Phase {
    Unjoined,
    Joining(RequestId),
    AwaitingCounts { members: Vec<MemberSubscription> },
    Syncing(RequestId),
    Stable,
    Revoking,
    Leaving(Option<RequestId>),
    Closed,
    Failed,
}

/// The classic consumer-group membership of one member. See the
/// [module docs](super).
#[derive(Debug)]
pub struct GroupMember {
    config: GroupConfig,
    phase: Phase,
    queue: VecDeque<Action>,
    next_request: u64,
    last_now: Option<Instant>,

    coordinator: Option<Coordinator>,
    find_coordinator: Option<RequestId>,
    coordinator_retry_at: Option<Instant>,
    coordinator_backoff: Backoff,

    member_id: String,
    generation_id: i32,
    protocol_name: Option<String>,
    leader: bool,
    owned: Vec<TopicPartition>,

    revoke_pending: bool,
    leave_requested: bool,
    rejoin_reason: String,
    join_retry_at: Option<Instant>,
    join_backoff: Backoff,

    heartbeat: Option<InFlight>,
    next_heartbeat_at: Option<Instant>,
    heartbeat_backoff: Backoff,
    last_alive: Option<Instant>,

    commit: Option<InFlight>,
}

const REBALANCE_IN_PROGRESS: ErrorCode = ErrorCode::REBALANCE_IN_PROGRESS;

impl GroupMember {
    /// A member that has not joined yet; its first [`poll`](Self::poll)
    /// asks for the coordinator.
    pub fn new(config: GroupConfig) -> Self {
        let backoff = || Backoff::new(config.retry_backoff, config.retry_backoff_max);
        GroupMember {
            coordinator_backoff: backoff(),
            join_backoff: backoff(),
            heartbeat_backoff: backoff(),
            config,
            phase: Phase::Unjoined,
            queue: VecDeque::new(),
            next_request: 0,
            last_now: None,
            coordinator: None,
            find_coordinator: None,
            coordinator_retry_at: None,
            member_id: String::new(),
            generation_id: -1,
            protocol_name: None,
            leader: false,
            owned: Vec::new(),
            revoke_pending: false,
            leave_requested: false,
            rejoin_reason: "initial join".to_string(),
            join_retry_at: None,
            heartbeat: None,
            next_heartbeat_at: None,
            last_alive: None,
            commit: None,
        }
    }

    // ----- observation -------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The current phase.
    pub fn state(&self) -> MemberState {
        match self.phase {
            Phase::Unjoined => MemberState::Unjoined,
            Phase::Joining(_) => MemberState::Joining,
            Phase::AwaitingCounts { .. } => MemberState::AwaitingPartitionCounts,
            Phase::Syncing(_) => MemberState::Syncing,
            Phase::Stable => MemberState::Stable,
            Phase::Revoking => MemberState::Revoking,
            Phase::Leaving(_) => MemberState::Leaving,
            Phase::Closed => MemberState::Closed,
            Phase::Failed => MemberState::Failed,
        }
    }

    /// The member id (empty when none is known).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The generation (-1 when not in one).
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// Whether this member led the last successful JoinGroup.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The coordinator, when known.
    pub fn coordinator(&self) -> Option<&Coordinator> {
        self.coordinator.as_ref()
    }

    /// The partitions owned now, sorted. Cleared as soon as they are revoked
    /// (at [`revoke_done`](Self::revoke_done)) or lost (when `Lost` is queued).
    pub fn owned_partitions(&self) -> &[TopicPartition] {
        &self.owned
    }

    /// Whether the broker would accept a commit now: in a stable generation,
    /// or while revoking before the rejoin (the group is *preparing* a
    /// rebalance). Never between JoinGroup and SyncGroup.
    pub fn can_commit(&self) -> bool {
        matches!(self.phase, Phase::Stable | Phase::Revoking)
            && self.generation_id >= 0
            && !self.member_id.is_empty()
    }

    /// Whether an OffsetCommit is in flight.
    pub fn commit_in_flight(&self) -> bool {
        self.commit.is_some()
    }

    /// The earliest instant at which [`poll`](Self::poll) has something to
    /// do without a new event; `None` when only an event can make progress
    /// (or the member is closed or failed). Before the first `poll` it knows
    /// no time and returns `None`: poll once at start.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.queue.is_empty() {
            return self.last_now;
        }
        if self.is_terminal() {
            return None;
        }
        let mut deadline: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        };
        if self.coordinator.is_none() {
            if self.find_coordinator.is_none() && self.wants_coordinator() {
                consider(self.coordinator_retry_at.or(self.last_now));
            }
        } else {
            if self.may_join() {
                consider(self.join_retry_at.or(self.last_now));
            }
            if self.may_heartbeat() && self.heartbeat.is_none() {
                consider(self.next_heartbeat_at);
            }
        }
        if self.watchdog_armed() {
            consider(self.last_alive.map(|t| t + self.config.session_timeout));
        }
        deadline
    }

    // ----- driving -----------------------------------------------------

    /// The next action for the driver, or `None` when there is nothing to do
    /// until an event arrives or [`next_deadline`](Self::next_deadline)
    /// passes. Call it until it returns `None` after every event.
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        self.last_now = Some(now);
        if let Some(action) = self.queue.pop_front() {
            return Some(action);
        }
        if self.is_terminal() {
            return None;
        }
        self.check_session(now);
        if let Some(action) = self.queue.pop_front() {
            return Some(action);
        }

        if self.coordinator.is_none() {
            if let Phase::Leaving(None) = self.phase {
                // Leaving needs the coordinator we no longer know: give up, as Java does.
                self.close();
                return self.queue.pop_front();
            }
            if self.find_coordinator.is_none()
                && self.wants_coordinator()
                && self.coordinator_retry_at.is_none_or(|t| now >= t)
            {
                let request_id = self.next_id();
                self.find_coordinator = Some(request_id);
                return Some(Action::FindCoordinator(FindCoordinatorParams {
                    request_id,
                    group_id: self.config.group_id.clone(),
                }));
            }
            return None;
        }

        if let Phase::Leaving(None) = self.phase {
            if self.commit.is_none() {
                let request_id = self.next_id();
                self.phase = Phase::Leaving(Some(request_id));
                return Some(Action::SendLeaveGroup(LeaveGroupParams {
                    request_id,
                    group_id: self.config.group_id.clone(),
                    member_id: self.member_id.clone(),
                    reason: "the consumer is being closed".to_string(),
                }));
            }
            return None;
        }

        if self.may_join() && self.join_retry_at.is_none_or(|t| now >= t) {
            return match self.join_params() {
                Ok(params) => {
                    self.phase = Phase::Joining(params.request_id);
                    Some(Action::SendJoinGroup(params))
                }
                Err(e) => {
                    self.fail(e);
                    self.queue.pop_front()
                }
            };
        }

        if self.may_heartbeat()
            && self.heartbeat.is_none()
            && self.next_heartbeat_at.is_none_or(|t| now >= t)
        {
            let request_id = self.next_id();
            self.heartbeat = Some(InFlight {
                id: request_id,
                generation_id: self.generation_id,
                member_id: self.member_id.clone(),
            });
            return Some(Action::SendHeartbeat(HeartbeatParams {
                request_id,
                group_id: self.config.group_id.clone(),
                generation_id: self.generation_id,
                member_id: self.member_id.clone(),
                group_instance_id: self.config.group_instance_id.clone(),
            }));
        }
        None
    }

    // ----- events ------------------------------------------------------

    /// The answer to [`Action::FindCoordinator`]: the coordinator, or the
    /// response's error code.
    pub fn on_find_coordinator_response(
        &mut self,
        now: Instant,
        request_id: RequestId,
        result: Result<Coordinator, ErrorCode>,
    ) {
        self.last_now = Some(now);
        if self.find_coordinator != Some(request_id) || self.is_terminal() {
            return;
        }
        self.find_coordinator = None;
        match result {
            Ok(coordinator) if coordinator.node_id >= 0 => {
                self.coordinator = Some(coordinator);
                self.coordinator_backoff.reset();
                self.coordinator_retry_at = None;
            }
            Ok(_) => self.retry_coordinator(now),
            Err(code) if code == ErrorCode::GROUP_AUTHORIZATION_FAILED => {
                self.fail_broker(GroupApi::FindCoordinator, code)
            }
            Err(code) if code.is_ok() || code.is_retriable() => self.retry_coordinator(now),
            Err(code) => self.fail_broker(GroupApi::FindCoordinator, code),
        }
    }

    /// The answer to [`Action::SendJoinGroup`].
    pub fn on_join_response(
        &mut self,
        now: Instant,
        request_id: RequestId,
        response: JoinGroupResponse,
    ) {
        self.last_now = Some(now);
        if !matches!(self.phase, Phase::Joining(id) if id == request_id) {
            return;
        }
        let code = response.error_code;
        match code {
            ErrorCode::NONE => self.joined(now, response),
            ErrorCode::MEMBER_ID_REQUIRED => {
                // KIP-394: rejoin at once with the id the coordinator chose.
                self.member_id = response.member_id;
                self.generation_id = -1;
                self.rejoin_now("rejoin with the member id the coordinator assigned");
            }
            ErrorCode::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.generation_id = -1;
                self.rejoin_now("JoinGroup: unknown member id");
            }
            REBALANCE_IN_PROGRESS => self.rejoin_now("JoinGroup: rebalance in progress"),
            ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                self.mark_coordinator_unknown();
                self.rejoin_after_backoff(now, "JoinGroup: coordinator moved");
            }
            ErrorCode::FENCED_INSTANCE_ID => self.fail_fenced(GroupApi::JoinGroup),
            ErrorCode::INCONSISTENT_GROUP_PROTOCOL
            | ErrorCode::INVALID_SESSION_TIMEOUT
            | ErrorCode::INVALID_GROUP_ID
            | ErrorCode::GROUP_AUTHORIZATION_FAILED
            | ErrorCode::GROUP_MAX_SIZE_REACHED
            | ErrorCode::UNSUPPORTED_VERSION => self.fail_broker(GroupApi::JoinGroup, code),
            // COORDINATOR_LOAD_IN_PROGRESS and any other retriable code.
            code if code.is_retriable() => {
                self.rejoin_after_backoff(now, "JoinGroup: retriable error")
            }
            code => self.fail_broker(GroupApi::JoinGroup, code),
        }
    }

    /// The leader's answer to [`Action::NeedPartitionCounts`]: the partition
    /// count of each topic metadata knows (topics left out are skipped).
    pub fn on_partition_counts(
        &mut self,
        now: Instant,
        partitions_per_topic: &BTreeMap<String, i32>,
    ) {
        self.last_now = Some(now);
        if !matches!(self.phase, Phase::AwaitingCounts { .. }) {
            return;
        }
        let Phase::AwaitingCounts { members } = std::mem::replace(&mut self.phase, Phase::Unjoined)
        else {
            return;
        };
        let name = self.protocol_name.clone().unwrap_or_default();
        let Some(assignor) = self.find_assignor(&name) else {
            self.fail(GroupError::UnknownAssignor {
                group_id: self.config.group_id.clone(),
                name,
            });
            return;
        };
        let result = match assignor.assign(&members, partitions_per_topic) {
            Ok(r) => r,
            Err(source) => {
                self.fail(GroupError::Assign {
                    group_id: self.config.group_id.clone(),
                    assignor: name,
                    source,
                });
                return;
            }
        };
        let mut assignments = Vec::with_capacity(result.len());
        for (member_id, assignment) in result {
            match assignment.encode(consumer_protocol::ASSIGNMENT_LATEST_VERSION) {
                Ok(bytes) => assignments.push(SyncGroupAssignment {
                    member_id,
                    assignment: bytes,
                }),
                Err(source) => {
                    self.fail(GroupError::Encode {
                        group_id: self.config.group_id.clone(),
                        source,
                    });
                    return;
                }
            }
        }
        self.send_sync(assignments);
    }

    /// The answer to [`Action::SendSyncGroup`].
    pub fn on_sync_response(
        &mut self,
        now: Instant,
        request_id: RequestId,
        response: SyncGroupResponse,
    ) {
        self.last_now = Some(now);
        if !matches!(self.phase, Phase::Syncing(id) if id == request_id) {
            return;
        }
        let code = response.error_code;
        match code {
            ErrorCode::NONE => self.synced(now, response),
            REBALANCE_IN_PROGRESS => {
                self.rejoin_now("SyncGroup: the group began another rebalance")
            }
            ErrorCode::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.generation_id = -1;
                self.rejoin_now("SyncGroup: unknown member id");
            }
            ErrorCode::ILLEGAL_GENERATION => {
                self.generation_id = -1;
                self.rejoin_now("SyncGroup: illegal generation");
            }
            ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                // Java rejoins from JoinGroup: the new coordinator does not
                // know the pending generation.
                self.mark_coordinator_unknown();
                self.rejoin_after_backoff(now, "SyncGroup: coordinator moved");
            }
            ErrorCode::FENCED_INSTANCE_ID => self.fail_fenced(GroupApi::SyncGroup),
            code if code.is_retriable() => {
                self.rejoin_after_backoff(now, "SyncGroup: retriable error")
            }
            code => self.fail_broker(GroupApi::SyncGroup, code),
        }
    }

    /// The answer to [`Action::SendHeartbeat`].
    pub fn on_heartbeat_response(&mut self, now: Instant, request_id: RequestId, code: ErrorCode) {
        self.last_now = Some(now);
        let Some(sent) = self.heartbeat.take_if(|h| h.id == request_id) else {
            return;
        };
        if self.is_terminal() {
            return;
        }
        let unchanged =
            sent.generation_id == self.generation_id && sent.member_id == self.member_id;
        match code {
            ErrorCode::NONE => {
                self.alive(now);
            }
            REBALANCE_IN_PROGRESS => {
                // Still a member: the coordinator waits up to the rebalance
                // timeout for us to rejoin.
                self.alive(now);
                if unchanged && matches!(self.phase, Phase::Stable) {
                    self.start_rebalance("Heartbeat: the group is rebalancing");
                }
            }
            ErrorCode::ILLEGAL_GENERATION | ErrorCode::UNKNOWN_MEMBER_ID => {
                if unchanged {
                    self.lose(code == ErrorCode::UNKNOWN_MEMBER_ID, "Heartbeat");
                } else {
                    self.schedule_heartbeat(now);
                }
            }
            ErrorCode::FENCED_INSTANCE_ID => {
                if unchanged {
                    self.fail_fenced(GroupApi::Heartbeat);
                } else {
                    self.schedule_heartbeat(now);
                }
            }
            ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                // Membership is kept; heartbeat again as soon as the
                // coordinator is found.
                self.mark_coordinator_unknown();
                self.next_heartbeat_at = Some(now);
            }
            ErrorCode::GROUP_AUTHORIZATION_FAILED => self.fail_broker(GroupApi::Heartbeat, code),
            _ => {
                // Anything else (COORDINATOR_LOAD_IN_PROGRESS, unexpected
                // codes): retry with backoff; the session watchdog bounds it.
                self.next_heartbeat_at = Some(now + self.heartbeat_backoff.next_delay());
            }
        }
    }

    /// The answer to [`Action::SendLeaveGroup`] (any code: leaving is best effort).
    pub fn on_leave_response(&mut self, now: Instant, request_id: RequestId, _code: ErrorCode) {
        self.last_now = Some(now);
        if matches!(self.phase, Phase::Leaving(Some(id)) if id == request_id) {
            self.close();
        }
    }

    /// A request the machine asked for got no response (connection lost,
    /// timeout). The coordinator connection is presumed bad: it is looked up
    /// again and the operation retried with backoff.
    pub fn on_request_failed(
        &mut self,
        now: Instant,
        request_id: RequestId,
        _failure: RequestFailure,
    ) {
        self.last_now = Some(now);
        if self.find_coordinator == Some(request_id) {
            self.find_coordinator = None;
            self.retry_coordinator(now);
            return;
        }
        if self.commit.as_ref().is_some_and(|c| c.id == request_id) {
            self.commit = None;
            self.mark_coordinator_unknown();
            return;
        }
        if self.heartbeat.as_ref().is_some_and(|h| h.id == request_id) {
            self.heartbeat = None;
            self.mark_coordinator_unknown();
            self.next_heartbeat_at = Some(now + self.heartbeat_backoff.next_delay());
            return;
        }
        match self.phase {
            Phase::Joining(id) | Phase::Syncing(id) if id == request_id => {
                self.mark_coordinator_unknown();
                self.rejoin_after_backoff(now, "request to the coordinator failed");
            }
            Phase::Leaving(Some(id)) if id == request_id => self.close(),
            _ => {}
        }
    }

    /// The driver lost its connection to the coordinator (or decided it is
    /// stale); look it up again. Membership is kept.
    pub fn on_coordinator_disconnected(&mut self, now: Instant) {
        self.last_now = Some(now);
        self.mark_coordinator_unknown();
    }

    /// The revocation listener finished (after [`Action::Revoke`]); the
    /// member may now rejoin or leave.
    pub fn revoke_done(&mut self, now: Instant) {
        self.last_now = Some(now);
        if !self.revoke_pending {
            return;
        }
        self.revoke_pending = false;
        self.owned.clear();
        if matches!(self.phase, Phase::Revoking) {
            self.phase = Phase::Unjoined;
            self.join_retry_at = None;
        }
        if self.leave_requested && !self.is_terminal() {
            self.start_leave();
        }
    }

    /// Asks for a rebalance (subscription or metadata changed): from Stable,
    /// revoke and rejoin keeping member id and generation.
    pub fn request_rejoin(&mut self, now: Instant, reason: &str) {
        self.last_now = Some(now);
        if matches!(self.phase, Phase::Stable) {
            self.start_rebalance(reason);
        }
    }

    /// Close the membership: revoke what is owned (commits allowed), then
    /// send LeaveGroup (dynamic members only; a static member just stops and
    /// the coordinator keeps its place for the session timeout), then
    /// [`Action::Closed`].
    pub fn request_leave(&mut self, now: Instant) {
        self.last_now = Some(now);
        if self.is_terminal() || self.leave_requested {
            return;
        }
        self.leave_requested = true;
        if self.revoke_pending {
            return; // revoke_done continues with the leave
        }
        if matches!(self.phase, Phase::Stable) && !self.owned.is_empty() {
            self.phase = Phase::Revoking;
            self.revoke_pending = true;
            self.queue.push_back(Action::Revoke(self.owned.clone()));
            return;
        }
        self.start_leave();
    }

    /// Reserves the single commit slot: returns what the OffsetCommit must
    /// carry, or why no commit may be sent now. Answer with
    /// [`on_commit_response`](Self::on_commit_response) or
    /// [`on_request_failed`](Self::on_request_failed).
    pub fn begin_commit(&mut self) -> Result<CommitContext, CommitRefused> {
        if self.commit.is_some() {
            return Err(CommitRefused::InFlight);
        }
        if !self.can_commit() {
            return Err(CommitRefused::NotAllowed(self.state()));
        }
        if self.coordinator.is_none() {
            return Err(CommitRefused::CoordinatorUnknown);
        }
        let request_id = self.next_id();
        self.commit = Some(InFlight {
            id: request_id,
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
        });
        Ok(CommitContext {
            request_id,
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
        })
    }

    /// The answer to an OffsetCommit begun with [`begin_commit`](Self::begin_commit):
    /// the error codes of its partitions (and the top-level code, if any).
    /// Applies the membership consequences and tells the commit layer what to do.
    pub fn on_commit_response(
        &mut self,
        now: Instant,
        request_id: RequestId,
        codes: &[ErrorCode],
    ) -> CommitOutcome {
        self.last_now = Some(now);
        let sent = self.commit.take_if(|c| c.id == request_id);
        let outcome = classify_commit(codes);
        let Some(sent) = sent else {
            return outcome;
        };
        if self.is_terminal() {
            return outcome;
        }
        let unchanged =
            sent.generation_id == self.generation_id && sent.member_id == self.member_id;
        let worst = codes.iter().copied().max_by_key(|c| commit_severity(*c));
        match worst {
            Some(ErrorCode::FENCED_INSTANCE_ID) => self.fail_fenced(GroupApi::OffsetCommit),
            Some(code @ (ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION))
                if unchanged =>
            {
                self.lose(code == ErrorCode::UNKNOWN_MEMBER_ID, "OffsetCommit");
            }
            Some(REBALANCE_IN_PROGRESS) if unchanged && matches!(self.phase, Phase::Stable) => {
                self.start_rebalance("OffsetCommit: the group is rebalancing");
            }
            Some(ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE) => {
                self.mark_coordinator_unknown();
            }
            _ => {}
        }
        outcome
    }

    // ----- internals ---------------------------------------------------

    fn next_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn is_terminal(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    fn wants_coordinator(&self) -> bool {
        !self.is_terminal()
    }

    fn may_join(&self) -> bool {
        matches!(self.phase, Phase::Unjoined)
            && !self.revoke_pending
            && !self.leave_requested
            && self.commit.is_none()
    }

    fn may_heartbeat(&self) -> bool {
        matches!(
            self.phase,
            Phase::Stable | Phase::Revoking | Phase::Syncing(_) | Phase::AwaitingCounts { .. }
        ) && self.generation_id >= 0
            && !self.member_id.is_empty()
    }

    fn watchdog_armed(&self) -> bool {
        self.may_heartbeat() && self.last_alive.is_some()
    }

    fn alive(&mut self, now: Instant) {
        self.last_alive = Some(now);
        self.heartbeat_backoff.reset();
        self.next_heartbeat_at = Some(now + self.config.heartbeat_interval);
    }

    fn schedule_heartbeat(&mut self, now: Instant) {
        self.next_heartbeat_at = Some(now + self.config.heartbeat_interval);
    }

    fn check_session(&mut self, now: Instant) {
        if !self.watchdog_armed() {
            return;
        }
        if let Some(last) = self.last_alive {
            if now >= last + self.config.session_timeout {
                // No successful heartbeat for a whole session: the coordinator
                // has expired us. Assume the partitions are gone.
                self.mark_coordinator_unknown();
                self.lose(true, "session timed out without a successful heartbeat");
            }
        }
    }

    fn retry_coordinator(&mut self, now: Instant) {
        self.coordinator_retry_at = Some(now + self.coordinator_backoff.next_delay());
    }

    fn mark_coordinator_unknown(&mut self) {
        self.coordinator = None;
    }

    fn find_assignor(&self, name: &str) -> Option<Arc<dyn Assignor>> {
        self.config
            .assignors
            .iter()
            .find(|a| a.name() == name)
            .cloned()
    }

    fn rejoin_now(&mut self, reason: &str) {
        self.phase = Phase::Unjoined;
        self.leader = false;
        self.join_retry_at = None;
        self.rejoin_reason = reason.to_string();
        self.after_leaving_generation();
    }

    fn rejoin_after_backoff(&mut self, now: Instant, reason: &str) {
        self.rejoin_now(reason);
        self.join_retry_at = Some(now + self.join_backoff.next_delay());
    }

    /// A leave requested while joining completes once the join round is abandoned.
    fn after_leaving_generation(&mut self) {
        if self.leave_requested && !self.revoke_pending {
            self.start_leave();
        }
    }

    fn start_rebalance(&mut self, reason: &str) {
        self.rejoin_reason = reason.to_string();
        if self.owned.is_empty() {
            self.phase = Phase::Unjoined;
            self.join_retry_at = None;
        } else {
            self.phase = Phase::Revoking;
            self.revoke_pending = true;
            self.queue.push_back(Action::Revoke(self.owned.clone()));
        }
    }

    /// The generation is gone: partitions lost, no commit, rejoin.
    fn lose(&mut self, reset_member_id: bool, reason: &str) {
        if !self.owned.is_empty() {
            self.queue
                .push_back(Action::Lost(std::mem::take(&mut self.owned)));
        }
        if reset_member_id {
            self.member_id.clear();
        }
        self.generation_id = -1;
        self.protocol_name = None;
        self.heartbeat = None;
        self.last_alive = None;
        self.rejoin_now(&format!("{reason}: membership lost"));
    }

    fn start_leave(&mut self) {
        let dynamic = self.config.group_instance_id.is_none();
        if dynamic && !self.member_id.is_empty() && self.coordinator.is_some() {
            self.phase = Phase::Leaving(None);
        } else {
            self.close();
        }
    }

    fn close(&mut self) {
        // Leaving is only started with nothing owned (after the revoke).
        self.owned.clear();
        self.phase = Phase::Closed;
        self.heartbeat = None;
        self.queue.push_back(Action::Closed);
    }

    fn fail(&mut self, error: GroupError) {
        if !self.owned.is_empty() {
            self.queue
                .push_back(Action::Lost(std::mem::take(&mut self.owned)));
        }
        self.phase = Phase::Failed;
        self.heartbeat = None;
        self.queue.push_back(Action::Fatal(error));
    }

    fn fail_broker(&mut self, api: GroupApi, code: ErrorCode) {
        self.fail(GroupError::Broker {
            group_id: self.config.group_id.clone(),
            api,
            code,
        });
    }

    fn fail_fenced(&mut self, api: GroupApi) {
        self.fail(GroupError::FencedInstanceId {
            group_id: self.config.group_id.clone(),
            group_instance_id: self.config.group_instance_id.clone().unwrap_or_default(),
            api,
        });
    }

    fn join_params(&mut self) -> Result<JoinGroupParams, GroupError> {
        let subscription = Subscription {
            topics: self.config.topics.clone(),
            user_data: None,
            owned_partitions: group_by_topic(&self.owned),
            generation_id: self.generation_id,
            rack_id: self.config.rack_id.clone(),
        };
        let metadata = subscription
            .encode(consumer_protocol::SUBSCRIPTION_LATEST_VERSION)
            .map_err(|source| GroupError::Encode {
                group_id: self.config.group_id.clone(),
                source,
            })?;
        let protocols = self
            .config
            .assignors
            .iter()
            .map(|a| JoinGroupProtocol {
                name: a.name(),
                metadata: metadata.clone(),
            })
            .collect();
        Ok(JoinGroupParams {
            request_id: self.next_id(),
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            session_timeout: self.config.session_timeout,
            rebalance_timeout: self.config.rebalance_timeout,
            protocol_type: consumer_protocol::PROTOCOL_TYPE,
            protocols,
            reason: self.rejoin_reason.clone(),
        })
    }

    fn joined(&mut self, now: Instant, response: JoinGroupResponse) {
        if let Some(t) = response.protocol_type.as_deref() {
            if t != consumer_protocol::PROTOCOL_TYPE {
                self.fail(GroupError::InconsistentProtocolType {
                    group_id: self.config.group_id.clone(),
                    api: GroupApi::JoinGroup,
                    received: t.to_string(),
                });
                return;
            }
        }
        let name = response.protocol_name.clone().unwrap_or_default();
        if self.find_assignor(&name).is_none() {
            self.fail(GroupError::UnknownAssignor {
                group_id: self.config.group_id.clone(),
                name,
            });
            return;
        }
        self.generation_id = response.generation_id;
        self.member_id = response.member_id;
        self.protocol_name = Some(name);
        self.leader = response.leader == self.member_id;
        self.alive(now);
        if !self.leader || response.skip_assignment {
            self.send_sync(Vec::new());
            return;
        }
        let mut members = Vec::with_capacity(response.members.len());
        let mut topics = BTreeSet::new();
        for m in response.members {
            match Subscription::decode(&m.metadata) {
                Ok(subscription) => {
                    topics.extend(subscription.topics.iter().cloned());
                    members.push(MemberSubscription {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        subscription,
                    });
                }
                Err(source) => {
                    self.fail(GroupError::BadSubscription {
                        group_id: self.config.group_id.clone(),
                        member_id: m.member_id,
                        source,
                    });
                    return;
                }
            }
        }
        self.phase = Phase::AwaitingCounts { members };
        self.queue.push_back(Action::NeedPartitionCounts {
            topics: topics.into_iter().collect(),
        });
    }

    fn send_sync(&mut self, assignments: Vec<SyncGroupAssignment>) {
        let request_id = self.next_id();
        self.phase = Phase::Syncing(request_id);
        self.queue.push_back(Action::SendSyncGroup(SyncGroupParams {
            request_id,
            group_id: self.config.group_id.clone(),
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            protocol_type: consumer_protocol::PROTOCOL_TYPE,
            protocol_name: self.protocol_name.clone().unwrap_or_default(),
            assignments,
        }));
    }

    fn synced(&mut self, now: Instant, response: SyncGroupResponse) {
        if let Some(t) = response.protocol_type.as_deref() {
            if t != consumer_protocol::PROTOCOL_TYPE {
                self.fail(GroupError::InconsistentProtocolType {
                    group_id: self.config.group_id.clone(),
                    api: GroupApi::SyncGroup,
                    received: t.to_string(),
                });
                return;
            }
        }
        let expected = self.protocol_name.clone().unwrap_or_default();
        if let Some(received) = response.protocol_name {
            if received != expected {
                self.fail(GroupError::InconsistentProtocolName {
                    group_id: self.config.group_id.clone(),
                    expected,
                    received,
                });
                return;
            }
        }
        let assignment = match Assignment::decode(&response.assignment) {
            Ok(a) => a,
            Err(source) => {
                self.fail(GroupError::BadAssignment {
                    group_id: self.config.group_id.clone(),
                    generation_id: self.generation_id,
                    source,
                });
                return;
            }
        };
        if let Some((topic, _)) = assignment
            .partitions()
            .find(|(t, _)| !self.config.topics.iter().any(|s| s == t))
        {
            // As Java: never take partitions of a topic we did not subscribe
            // to; rejoin (after backoff, so a faulty leader cannot spin us).
            let reason = format!("assignment names topic {topic:?}, which is not subscribed");
            self.rejoin_after_backoff(now, &reason);
            return;
        }
        let partitions: BTreeSet<TopicPartition> = assignment
            .partitions()
            .map(|(t, p)| TopicPartition::new(t, p))
            .collect();
        self.owned = partitions.into_iter().collect();
        self.phase = Phase::Stable;
        self.join_backoff.reset();
        self.alive(now);
        self.queue.push_back(Action::Assign(self.owned.clone()));
        if !self.owned.is_empty() {
            self.queue
                .push_back(Action::FetchOffsets(self.owned.clone()));
        }
    }
}

/// Severity order for the codes of one OffsetCommit response: the worst
/// decides the membership consequence.
fn commit_severity(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::FENCED_INSTANCE_ID => 6,
        ErrorCode::UNKNOWN_MEMBER_ID => 5,
        ErrorCode::ILLEGAL_GENERATION => 4,
        REBALANCE_IN_PROGRESS => 3,
        ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => 2,
        ErrorCode::NONE => 0,
        _ => 1,
    }
}

fn classify_commit(codes: &[ErrorCode]) -> CommitOutcome {
    let worst = codes.iter().copied().max_by_key(|c| commit_severity(*c));
    match worst {
        None | Some(ErrorCode::NONE) => CommitOutcome::Committed,
        Some(
            ErrorCode::FENCED_INSTANCE_ID
            | ErrorCode::UNKNOWN_MEMBER_ID
            | ErrorCode::ILLEGAL_GENERATION,
        ) => CommitOutcome::MembershipLost,
        Some(REBALANCE_IN_PROGRESS) => CommitOutcome::Rebalancing,
        Some(ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE) => {
            CommitOutcome::Retry
        }
        Some(_) => {
            // Among the remaining codes, a non-retriable one is surfaced.
            match codes
                .iter()
                .copied()
                .find(|c| !c.is_ok() && !c.is_retriable())
            {
                Some(code) => CommitOutcome::Failed(code),
                None => CommitOutcome::Retry,
            }
        }
    }
}

fn group_by_topic(partitions: &[TopicPartition]) -> Vec<TopicPartitions> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| TopicPartitions {
            topic: topic.to_string(),
            partitions,
        })
        .collect()
}
