//! The classic consumer-group protocol, sans-IO.
//!
//! [`GroupMember`] is a plain struct that knows the rules of group membership
//! (FindCoordinator, JoinGroup with KIP-394's second join, SyncGroup with the
//! leader's assignment, Heartbeat, LeaveGroup, static membership) and owns no
//! socket, task or clock: the caller passes `now` in, executes the
//! [`Action`]s it returns, and feeds the answers back. The tokio driver is a
//! loop of this shape:
//!
//! ```text
//! loop {
//!     while let Some(action) = member.poll(now()) {
//!         match action {
//!             Action::SendHeartbeat(p) => spawn_request(p),   // answer -> on_heartbeat_response
//!             Action::Revoke(ps) => spawn_listener(ps),       // finished -> revoke_done
//!             ...
//!         }
//!     }
//!     select! {
//!         _ = sleep_until(member.next_deadline()) => {}
//!         answer = responses.recv() => feed(answer),           // on_*_response / on_request_failed
//!         _ = listener_done => member.revoke_done(now()),
//!     }
//! }
//! ```
//!
//! Every `Send*`/`FindCoordinator` action carries a [`RequestId`]; the
//! driver must report exactly one answer for it, a response or
//! [`GroupMember::on_request_failed`]. Answers whose id the machine no longer
//! waits for (the member moved on) are ignored, so a late response from an
//! old generation can never change the state.
//!
//! # States
//!
//! ```text
//!            +-----------+  FindCoordinator (whenever the coordinator is unknown)
//!            | Unjoined  |<------------------------------------------------+
//!            +-----------+                                                  |
//!                 | SendJoinGroup (no revoke pending, no commit in flight)  |
//!                 v                                                         |
//!            +-----------+  MEMBER_ID_REQUIRED / UNKNOWN_MEMBER_ID /        |
//!            |  Joining  |--REBALANCE_IN_PROGRESS: at once; coordinator ---->+
//!            +-----------+  errors, LOAD_IN_PROGRESS: after backoff         |
//!      leader |      | follower                                             |
//!             v      |                                                      |
//!  +--------------------+ NeedPartitionCounts -> on_partition_counts        |
//!  | AwaitingPartition- |  (assignor runs)                                  |
//!  |      Counts        |                                                   |
//!  +--------------------+                                                   |
//!             |      v                                                      |
//!            +-----------+  REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION /    |
//!            |  Syncing  |--UNKNOWN_MEMBER_ID / coordinator errors -------->+
//!            +-----------+                                                  |
//!                 | Assign (+ FetchOffsets)                                 |
//!                 v                                                         |
//!            +-----------+  heartbeat or commit REBALANCE_IN_PROGRESS,      |
//!            |  Stable   |--request_rejoin: Revoke ----+                    |
//!            +-----------+                             v                    |
//!                 |                             +-----------+ revoke_done   |
//!                 | ILLEGAL_GENERATION,         | Revoking  |-------------->+
//!                 | UNKNOWN_MEMBER_ID,          +-----------+               |
//!                 | session watchdog: Lost -------------------------------->+
//!                 |
//!                 | request_leave: Revoke, revoke_done, then
//!                 v
//!            +-----------+  dynamic member: SendLeaveGroup; static: none
//!            |  Leaving  |------------------------------------> Closed
//!            +-----------+
//!   FENCED_INSTANCE_ID, authorization, invalid config, unknown errors -> Fatal
//! ```
//!
//! # Non-obvious invariants
//!
//! - **Commits only where the broker takes them.** [`GroupMember::can_commit`]
//!   is true in `Stable` and `Revoking` (the group is *preparing* a rebalance
//!   and still accepts the current generation) and false from the moment
//!   JoinGroup is sent until SyncGroup succeeds (the group is *completing*
//!   the rebalance and refuses them).
//! - **At most one commit in flight, tracked here.** [`GroupMember::begin_commit`]
//!   reserves the single slot and returns the generation, member id and
//!   instance id the OffsetCommit must carry; the slot is freed by
//!   [`GroupMember::on_commit_response`] or [`GroupMember::on_request_failed`].
//!   JoinGroup and LeaveGroup wait while the slot is taken, so a final commit
//!   from the revocation listener is never overtaken by the rejoin.
//! - **Revocation before rejoin.** After [`Action::Revoke`] no JoinGroup is
//!   sent until [`GroupMember::revoke_done`]; heartbeats go on meanwhile (a
//!   slow listener does not cost the membership), bounded by the rebalance
//!   timeout on the broker's side.
//! - **Lost means no commit.** ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID (member id
//!   cleared) and an expired session emit [`Action::Lost`]; the partitions
//!   leave [`GroupMember::owned_partitions`] at once and `can_commit` is false.
//! - **Stale answers are ignored.** A heartbeat or commit error only acts if
//!   the generation and member id it was sent with are still current (as
//!   Java's `generationUnchanged`).
//! - **Coordinator moves keep the membership.** NOT_COORDINATOR and
//!   COORDINATOR_NOT_AVAILABLE mark the coordinator unknown; heartbeats and
//!   commits resume after FindCoordinator. A JoinGroup or SyncGroup that hits
//!   them is retried from JoinGroup (the new coordinator does not know the
//!   pending round), with backoff, keeping the member id.
//! - **Only subscribed topics are taken.** An assignment naming a topic this
//!   member does not subscribe to is refused and the member rejoins after
//!   backoff (Java's `checkAssignmentMatchedSubscription`).
//! - **Leader duties end at SyncGroup.** The leader does not watch metadata;
//!   the driver calls [`GroupMember::request_rejoin`] when the partition
//!   count of a subscribed topic changes.
//! - **Eager protocol.** Like Java's `range`/`roundrobin`, every owned
//!   partition is revoked before rejoining, so JoinGroup's subscription
//!   carries no owned partitions and SyncGroup's assignment replaces the
//!   whole set.
//!
//! Retries back off exponentially from `retry.backoff.ms`, doubling up to
//! `retry.backoff.max.ms`; FindCoordinator, JoinGroup and Heartbeat keep
//! separate counters, reset on success.

pub mod assignor;
mod config;
mod error;
mod member;

pub use config::{GroupConfig, GroupConfigBuilder, GroupConfigError};
pub use error::{GroupApi, GroupError};
pub use member::{
    Action, CommitContext, CommitOutcome, CommitRefused, Coordinator, FindCoordinatorParams,
    GroupMember, HeartbeatParams, JoinGroupMember, JoinGroupParams, JoinGroupProtocol,
    JoinGroupResponse, LeaveGroupParams, MemberState, RequestFailure, RequestId,
    SyncGroupAssignment, SyncGroupParams, SyncGroupResponse, TopicPartition,
};

#[cfg(test)]
mod tests;
