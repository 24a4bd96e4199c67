//! Scripted-event tests of [`GroupMember`] with an explicit clock: the happy
//! paths, every error code of every group API, static membership, the session
//! watchdog, backoff, and a proptest of the invariants under random events.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafee_protocol::consumer_protocol::{Assignment, Subscription, TopicPartitions};
use kafee_protocol::error::ErrorCode;
use proptest::prelude::*;

use super::assignor::{Assignor, MemberSubscription, RangeAssignor};
use super::*;

const MS: Duration = Duration::from_millis(1);

fn config() -> GroupConfig {
    GroupConfig::builder("g", ["t"]).build().unwrap()
}

fn static_config() -> GroupConfig {
    GroupConfig::builder("g", ["t"])
        .group_instance_id("instance-0")
        .build()
        .unwrap()
}

fn coordinator() -> Coordinator {
    Coordinator {
        node_id: 1,
        host: "127.0.0.1".into(),
        port: 9092,
    }
}

fn assignment_bytes(pairs: &[(&str, &[i32])]) -> Bytes {
    Assignment {
        assigned_partitions: pairs
            .iter()
            .map(|(t, ps)| TopicPartitions {
                topic: t.to_string(),
                partitions: ps.to_vec(),
            })
            .collect(),
        user_data: None,
    }
    .encode(0)
    .unwrap()
}

fn tps(pairs: &[(&str, i32)]) -> Vec<TopicPartition> {
    pairs
        .iter()
        .map(|(t, p)| TopicPartition::new(*t, *p))
        .collect()
}

fn join_ok(member_id: &str, leader: &str, generation_id: i32) -> JoinGroupResponse {
    JoinGroupResponse {
        error_code: ErrorCode::NONE,
        generation_id,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        leader: leader.into(),
        skip_assignment: false,
        member_id: member_id.into(),
        members: Vec::new(),
    }
}

fn sync_ok(assignment: Bytes) -> SyncGroupResponse {
    SyncGroupResponse {
        error_code: ErrorCode::NONE,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignment,
    }
}

/// A member plus an explicit clock.
struct H {
    m: GroupMember,
    now: Instant,
}

impl H {
    fn new(config: GroupConfig) -> Self {
        H {
            m: GroupMember::new(config),
            now: Instant::now(),
        }
    }

    fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(a) = self.m.poll(self.now) {
            out.push(a);
            assert!(out.len() < 100, "poll does not settle: {out:?}");
        }
        out
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Advances to the machine's next deadline.
    fn wait_deadline(&mut self) -> Duration {
        let d = self
            .m
            .next_deadline()
            .unwrap()
            .saturating_duration_since(self.now);
        self.now += d;
        d
    }

    fn one(&mut self) -> Action {
        let actions = self.drain();
        assert_eq!(actions.len(), 1, "expected one action, got {actions:?}");
        actions.into_iter().next().unwrap()
    }

    fn expect_find(&mut self) -> RequestId {
        match self.one() {
            Action::FindCoordinator(p) => {
                assert_eq!(p.group_id, "g");
                p.request_id
            }
            other => panic!("expected FindCoordinator, got {other:?}"),
        }
    }

    fn find(&mut self) {
        let id = self.expect_find();
        self.m
            .on_find_coordinator_response(self.now, id, Ok(coordinator()));
    }

    fn expect_join(&mut self) -> JoinGroupParams {
        match self.one() {
            Action::SendJoinGroup(p) => p,
            other => panic!("expected SendJoinGroup, got {other:?}"),
        }
    }

    fn expect_sync(&mut self) -> SyncGroupParams {
        match self.one() {
            Action::SendSyncGroup(p) => p,
            other => panic!("expected SendSyncGroup, got {other:?}"),
        }
    }

    fn expect_heartbeat(&mut self) -> HeartbeatParams {
        match self.one() {
            Action::SendHeartbeat(p) => p,
            other => panic!("expected SendHeartbeat, got {other:?}"),
        }
    }

    /// Drives a follower to Stable in generation 1 owning t-0 and t-1.
    fn stable_follower(config: GroupConfig) -> Self {
        let mut h = H::new(config);
        h.find();
        let join = h.expect_join();
        h.m.on_join_response(h.now, join.request_id, join_ok("m-1", "leader", 1));
        let sync = h.expect_sync();
        h.m.on_sync_response(
            h.now,
            sync.request_id,
            sync_ok(assignment_bytes(&[("t", &[1, 0])])),
        );
        let actions = h.drain();
        assert_eq!(
            actions,
            vec![
                Action::Assign(tps(&[("t", 0), ("t", 1)])),
                Action::FetchOffsets(tps(&[("t", 0), ("t", 1)]))
            ]
        );
        assert_eq!(h.m.state(), MemberState::Stable);
        h
    }

    /// Sends the due heartbeat and answers it with `code`.
    fn heartbeat(&mut self, code: ErrorCode) -> HeartbeatParams {
        self.wait_deadline();
        let hb = self.expect_heartbeat();
        self.m.on_heartbeat_response(self.now, hb.request_id, code);
        hb
    }
}

// ----- happy paths ---------------------------------------------------------

#[test]
fn follower_happy_path_with_member_id_required() {
    let mut h = H::new(config());
    assert_eq!(h.m.state(), MemberState::Unjoined);
    h.find();
    let join = h.expect_join();
    assert_eq!(join.member_id, "");
    assert_eq!(join.protocol_type, "consumer");
    assert_eq!(join.session_timeout, Duration::from_secs(45));
    assert_eq!(join.rebalance_timeout, Duration::from_secs(300));
    assert_eq!(join.response_timeout(), Duration::from_secs(305));
    assert_eq!(join.protocols.len(), 1);
    assert_eq!(join.protocols[0].name, "range");
    let (version, sub) = Subscription::decode_versioned(&join.protocols[0].metadata).unwrap();
    assert_eq!(version, 3);
    assert_eq!(sub.topics, ["t"]);
    assert_eq!(sub.generation_id, -1);
    assert!(!h.m.can_commit());

    // KIP-394: the first join is answered with the id to use.
    let mut required = JoinGroupResponse::error(ErrorCode::MEMBER_ID_REQUIRED);
    required.member_id = "m-1".into();
    h.m.on_join_response(h.now, join.request_id, required);
    let join = h.expect_join();
    assert_eq!(join.member_id, "m-1");

    h.m.on_join_response(h.now, join.request_id, join_ok("m-1", "m-0", 5));
    assert!(!h.m.is_leader());
    assert!(
        !h.m.can_commit(),
        "no commit between JoinGroup and SyncGroup"
    );
    let sync = h.expect_sync();
    assert_eq!(sync.generation_id, 5);
    assert_eq!(sync.member_id, "m-1");
    assert_eq!(sync.protocol_name, "range");
    assert!(sync.assignments.is_empty());
    assert!(!h.m.can_commit());

    h.m.on_sync_response(
        h.now,
        sync.request_id,
        sync_ok(assignment_bytes(&[("t", &[2])])),
    );
    assert_eq!(
        h.drain(),
        vec![
            Action::Assign(tps(&[("t", 2)])),
            Action::FetchOffsets(tps(&[("t", 2)]))
        ]
    );
    assert!(h.m.can_commit());
    assert_eq!(h.m.owned_partitions(), tps(&[("t", 2)]));
    assert_eq!(h.m.next_deadline(), Some(h.now + Duration::from_secs(3)));

    // Heartbeats every heartbeat interval while stable.
    for _ in 0..3 {
        let before = h.now;
        let hb = h.heartbeat(ErrorCode::NONE);
        assert_eq!(h.now - before, Duration::from_secs(3));
        assert_eq!((hb.generation_id, hb.member_id.as_str()), (5, "m-1"));
        assert!(h.drain().is_empty());
    }
}

#[test]
fn leader_runs_the_assignor_on_partition_counts() {
    let mut h = H::new(config());
    h.find();
    let join = h.expect_join();
    let sub = |topics: &[&str]| {
        Subscription::new(topics.iter().map(|t| t.to_string()).collect())
            .encode(1)
            .unwrap()
    };
    let mut resp = join_ok("m-1", "m-1", 3);
    resp.members = vec![
        JoinGroupMember {
            member_id: "m-1".into(),
            group_instance_id: None,
            metadata: sub(&["t"]),
        },
        JoinGroupMember {
            member_id: "m-0".into(),
            group_instance_id: None,
            metadata: sub(&["t", "u"]),
        },
    ];
    h.m.on_join_response(h.now, join.request_id, resp);
    assert!(h.m.is_leader());
    assert_eq!(
        h.drain(),
        vec![Action::NeedPartitionCounts {
            topics: vec!["t".into(), "u".into()]
        }]
    );
    assert_eq!(h.m.state(), MemberState::AwaitingPartitionCounts);
    assert!(!h.m.can_commit());
    let counts: BTreeMap<String, i32> = [("t".to_string(), 3), ("u".to_string(), 2)].into();
    h.m.on_partition_counts(h.now, &counts);
    let sync = h.expect_sync();
    let got: BTreeMap<String, Assignment> = sync
        .assignments
        .iter()
        .map(|a| {
            (
                a.member_id.clone(),
                Assignment::decode(&a.assignment).unwrap(),
            )
        })
        .collect();
    let members = [
        MemberSubscription {
            member_id: "m-1".into(),
            group_instance_id: None,
            subscription: Subscription::new(vec!["t".into()]),
        },
        MemberSubscription {
            member_id: "m-0".into(),
            group_instance_id: None,
            subscription: Subscription::new(vec!["t".into(), "u".into()]),
        },
    ];
    assert_eq!(got, RangeAssignor.assign(&members, &counts).unwrap());
    assert_eq!(
        Assignment::decode_versioned(&sync.assignments[0].assignment)
            .unwrap()
            .0,
        Some(3)
    );
    // m-0 sorts first: t[0,1], u[0,1]; m-1: t[2].
    let mine = sync
        .assignments
        .iter()
        .find(|a| a.member_id == "m-1")
        .unwrap()
        .assignment
        .clone();
    h.m.on_sync_response(h.now, sync.request_id, sync_ok(mine));
    assert_eq!(
        h.drain(),
        vec![
            Action::Assign(tps(&[("t", 2)])),
            Action::FetchOffsets(tps(&[("t", 2)]))
        ]
    );
}

#[test]
fn leader_with_skip_assignment_syncs_like_a_follower() {
    let mut h = H::new(static_config());
    h.find();
    let join = h.expect_join();
    assert_eq!(join.group_instance_id.as_deref(), Some("instance-0"));
    let mut resp = join_ok("m-1", "m-1", 3);
    resp.skip_assignment = true;
    h.m.on_join_response(h.now, join.request_id, resp);
    let sync = h.expect_sync();
    assert!(sync.assignments.is_empty());
    assert_eq!(sync.group_instance_id.as_deref(), Some("instance-0"));
}

#[test]
fn leader_fails_on_a_malformed_member_subscription() {
    let mut h = H::new(config());
    h.find();
    let join = h.expect_join();
    let mut resp = join_ok("m-1", "m-1", 3);
    resp.members = vec![JoinGroupMember {
        member_id: "bad".into(),
        group_instance_id: None,
        metadata: Bytes::from_static(&[0, 0, 0x7f]),
    }];
    h.m.on_join_response(h.now, join.request_id, resp);
    match h.one() {
        Action::Fatal(GroupError::BadSubscription { member_id, .. }) => {
            assert_eq!(member_id, "bad")
        }
        other => panic!("{other:?}"),
    }
    assert!(h.drain().is_empty());
    assert_eq!(h.m.next_deadline(), None);
}

#[test]
fn join_with_foreign_protocol_type_or_unknown_assignor_is_fatal() {
    let mut h = H::new(config());
    h.find();
    let join = h.expect_join();
    let mut resp = join_ok("m-1", "x", 1);
    resp.protocol_type = Some("connect".into());
    h.m.on_join_response(h.now, join.request_id, resp);
    assert_eq!(
        h.one(),
        Action::Fatal(GroupError::InconsistentProtocolType {
            group_id: "g".into(),
            api: GroupApi::JoinGroup,
            received: "connect".into()
        })
    );

    let mut h = H::new(config());
    h.find();
    let join = h.expect_join();
    let mut resp = join_ok("m-1", "x", 1);
    resp.protocol_name = Some("cooperative-sticky".into());
    h.m.on_join_response(h.now, join.request_id, resp);
    assert!(matches!(
        h.one(),
        Action::Fatal(GroupError::UnknownAssignor { .. })
    ));
}

#[test]
fn sync_inconsistencies_and_bad_assignment_are_fatal_and_empty_assignment_is_none() {
    for (resp, expect_fatal) in [
        (
            SyncGroupResponse {
                protocol_type: Some("connect".into()),
                ..sync_ok(Bytes::new())
            },
            true,
        ),
        (
            SyncGroupResponse {
                protocol_name: Some("roundrobin".into()),
                ..sync_ok(Bytes::new())
            },
            true,
        ),
        (sync_ok(Bytes::from_static(&[0, 0, 0])), true),
        (sync_ok(Bytes::new()), false),
    ] {
        let mut h = H::new(config());
        h.find();
        let join = h.expect_join();
        h.m.on_join_response(h.now, join.request_id, join_ok("m-1", "x", 1));
        let sync = h.expect_sync();
        h.m.on_sync_response(h.now, sync.request_id, resp);
        let actions = h.drain();
        if expect_fatal {
            assert!(matches!(actions[..], [Action::Fatal(_)]), "{actions:?}");
        } else {
            assert_eq!(actions, vec![Action::Assign(vec![])]);
            assert_eq!(h.m.state(), MemberState::Stable);
        }
    }
}

/// Java's checkAssignmentMatchedSubscription: an assignment naming a topic
/// we do not subscribe to is not taken; the member rejoins.
#[test]
fn assignment_outside_the_subscription_is_refused() {
    let mut h = H::new(config());
    h.find();
    let join = h.expect_join();
    h.m.on_join_response(h.now, join.request_id, join_ok("m-1", "x", 1));
    let sync = h.expect_sync();
    h.m.on_sync_response(
        h.now,
        sync.request_id,
        sync_ok(assignment_bytes(&[("t", &[0]), ("other", &[0])])),
    );
    assert!(h.drain().is_empty());
    assert!(h.m.owned_partitions().is_empty());
    assert!(!h.m.can_commit());
    assert_eq!(h.wait_deadline(), 100 * MS);
    let join = h.expect_join();
    assert_eq!(join.member_id, "m-1");
    assert_eq!(
        join.reason,
        "assignment names topic \"other\", which is not subscribed"
    );
}

// ----- heartbeat -----------------------------------------------------------

/// KAFKA_NOTES: heartbeat REBALANCE_IN_PROGRESS -> revoke cleanly (commit
/// allowed), then rejoin keeping member id and generation.
#[test]
fn heartbeat_rebalance_in_progress_revokes_commits_then_rejoins() {
    let mut h = H::stable_follower(config());
    h.heartbeat(ErrorCode::REBALANCE_IN_PROGRESS);
    assert_eq!(h.drain(), vec![Action::Revoke(tps(&[("t", 0), ("t", 1)]))]);
    assert_eq!(h.m.state(), MemberState::Revoking);
    assert!(
        h.m.can_commit(),
        "the group is preparing: commits are accepted"
    );
    let commit = h.m.begin_commit().unwrap();
    assert_eq!(
        (commit.generation_id, commit.member_id.as_str()),
        (1, "m-1")
    );
    assert_eq!(h.m.begin_commit(), Err(CommitRefused::InFlight));

    // Heartbeats go on while the listener runs.
    let hb = h.heartbeat(ErrorCode::REBALANCE_IN_PROGRESS);
    assert_eq!(hb.generation_id, 1);
    assert!(h.drain().is_empty());

    assert_eq!(
        h.m.on_commit_response(h.now, commit.request_id, &[ErrorCode::NONE]),
        CommitOutcome::Committed
    );
    assert!(h.drain().is_empty(), "no JoinGroup before revoke_done");
    h.m.revoke_done(h.now);
    assert!(h.m.owned_partitions().is_empty());
    let join = h.expect_join();
    assert_eq!(join.member_id, "m-1");
    let sub = Subscription::decode(&join.protocols[0].metadata).unwrap();
    assert_eq!(sub.generation_id, 1);
    assert!(
        sub.owned_partitions.is_empty(),
        "eager: everything revoked before rejoin"
    );
    assert!(!h.m.can_commit());
    assert_eq!(
        h.m.begin_commit(),
        Err(CommitRefused::NotAllowed(MemberState::Joining))
    );
}

/// The rejoin waits for a commit sent from the revocation listener.
#[test]
fn join_waits_for_the_commit_in_flight() {
    let mut h = H::stable_follower(config());
    h.heartbeat(ErrorCode::REBALANCE_IN_PROGRESS);
    h.drain();
    let commit = h.m.begin_commit().unwrap();
    h.m.revoke_done(h.now);
    assert!(h.drain().is_empty());
    h.advance(Duration::from_secs(1));
    assert!(h.drain().is_empty());
    h.m.on_commit_response(h.now, commit.request_id, &[ErrorCode::NONE]);
    h.expect_join();
}

#[test]
fn heartbeat_illegal_generation_loses_partitions_and_keeps_member_id() {
    let mut h = H::stable_follower(config());
    h.heartbeat(ErrorCode::ILLEGAL_GENERATION);
    let actions = h.drain();
    assert_eq!(actions[0], Action::Lost(tps(&[("t", 0), ("t", 1)])));
    assert!(h.m.owned_partitions().is_empty());
    assert!(!h.m.can_commit());
    assert_eq!(h.m.generation_id(), -1);
    match &actions[1..] {
        [Action::SendJoinGroup(join)] => assert_eq!(join.member_id, "m-1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn heartbeat_unknown_member_id_loses_partitions_and_clears_member_id() {
    let mut h = H::stable_follower(config());
    h.heartbeat(ErrorCode::UNKNOWN_MEMBER_ID);
    let actions = h.drain();
    assert_eq!(actions[0], Action::Lost(tps(&[("t", 0), ("t", 1)])));
    match &actions[1..] {
        [Action::SendJoinGroup(join)] => assert_eq!(join.member_id, ""),
        other => panic!("{other:?}"),
    }
}

#[test]
fn heartbeat_fenced_instance_id_is_fatal_without_rejoin() {
    let mut h = H::stable_follower(static_config());
    h.heartbeat(ErrorCode::FENCED_INSTANCE_ID);
    assert_eq!(
        h.drain(),
        vec![
            Action::Lost(tps(&[("t", 0), ("t", 1)])),
            Action::Fatal(GroupError::FencedInstanceId {
                group_id: "g".into(),
                group_instance_id: "instance-0".into(),
                api: GroupApi::Heartbeat
            })
        ]
    );
    assert_eq!(h.m.state(), MemberState::Failed);
    h.advance(Duration::from_secs(3600));
    assert!(h.drain().is_empty(), "no rejoin loop");
    assert_eq!(h.m.next_deadline(), None);
}

#[test]
fn heartbeat_coordinator_moved_keeps_membership() {
    for code in [
        ErrorCode::NOT_COORDINATOR,
        ErrorCode::COORDINATOR_NOT_AVAILABLE,
    ] {
        let mut h = H::stable_follower(config());
        h.heartbeat(code);
        assert!(h.m.coordinator().is_none());
        h.find();
        let hb = h.expect_heartbeat();
        assert_eq!(hb.generation_id, 1);
        assert_eq!(h.m.owned_partitions().len(), 2);
        assert!(h.m.can_commit());
        assert_eq!(h.m.begin_commit().map(|_| ()), Ok(()));
    }
}

#[test]
fn heartbeat_load_in_progress_backs_off() {
    let mut h = H::stable_follower(config());
    h.heartbeat(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
    assert!(h.drain().is_empty());
    assert_eq!(h.wait_deadline(), 100 * MS);
    let hb = h.expect_heartbeat();
    h.m.on_heartbeat_response(
        h.now,
        hb.request_id,
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
    );
    assert_eq!(h.wait_deadline(), 200 * MS);
    h.expect_heartbeat();
}

/// An error for a heartbeat sent in an older generation is ignored (Java's
/// generationUnchanged check).
#[test]
fn stale_heartbeat_error_is_ignored() {
    let mut h = H::stable_follower(config());
    h.heartbeat(ErrorCode::REBALANCE_IN_PROGRESS);
    h.drain();
    h.wait_deadline();
    let old = h.expect_heartbeat(); // sent in generation 1 while revoking
    h.m.revoke_done(h.now);
    let join = h.expect_join();
    h.m.on_join_response(h.now, join.request_id, join_ok("m-1", "x", 2));
    let sync = h.expect_sync();
    h.m.on_sync_response(
        h.now,
        sync.request_id,
        sync_ok(assignment_bytes(&[("t", &[0])])),
    );
    h.drain();
    h.m.on_heartbeat_response(h.now, old.request_id, ErrorCode::ILLEGAL_GENERATION);
    assert!(h.drain().is_empty());
    assert_eq!(h.m.state(), MemberState::Stable);
    assert_eq!(h.m.owned_partitions(), tps(&[("t", 0)]));
}

/// Every code a Heartbeat can carry, against the documented action.
#[test]
fn heartbeat_every_error_code() {
    for &code in ErrorCode::ALL {
        let mut h = H::stable_follower(static_config());
        h.heartbeat(code);
        let actions = h.drain();
        let owned = tps(&[("t", 0), ("t", 1)]);
        match code {
            ErrorCode::NONE => assert!(actions.is_empty()),
            ErrorCode::REBALANCE_IN_PROGRESS => assert_eq!(actions, vec![Action::Revoke(owned)]),
            ErrorCode::ILLEGAL_GENERATION | ErrorCode::UNKNOWN_MEMBER_ID => {
                assert_eq!(actions[0], Action::Lost(owned));
                assert!(
                    matches!(actions[1..], [Action::SendJoinGroup(_)]),
                    "{code}: {actions:?}"
                );
            }
            ErrorCode::FENCED_INSTANCE_ID | ErrorCode::GROUP_AUTHORIZATION_FAILED => {
                assert_eq!(actions[0], Action::Lost(owned));
                assert!(
                    matches!(actions[1..], [Action::Fatal(_)]),
                    "{code}: {actions:?}"
                );
            }
            ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                assert!(
                    matches!(actions[..], [Action::FindCoordinator(_)]),
                    "{code}: {actions:?}"
                );
            }
            _ => {
                assert!(actions.is_empty(), "{code}: {actions:?}");
                assert_eq!(h.wait_deadline(), 100 * MS, "{code}");
                h.expect_heartbeat();
                assert_eq!(h.m.state(), MemberState::Stable);
            }
        }
    }
}

// ----- session watchdog and backoff ---------------------------------------

#[test]
fn session_watchdog_declares_partitions_lost() {
    let mut h = H::stable_follower(config());
    let start = h.now;
    // Every heartbeat times out; the retries back off; nothing succeeds.
    loop {
        h.wait_deadline();
        let actions = h.drain();
        if actions.iter().any(|a| matches!(a, Action::Lost(_))) {
            assert_eq!(h.now - start, Duration::from_secs(45));
            assert_eq!(actions[0], Action::Lost(tps(&[("t", 0), ("t", 1)])));
            assert!(
                matches!(actions[1..], [Action::FindCoordinator(_)]),
                "{actions:?}"
            );
            assert_eq!(h.m.member_id(), "");
            assert!(!h.m.can_commit());
            break;
        }
        for a in actions {
            match a {
                Action::SendHeartbeat(p) => {
                    h.m.on_request_failed(h.now, p.request_id, RequestFailure::TimedOut)
                }
                Action::FindCoordinator(p) => {
                    h.m.on_find_coordinator_response(h.now, p.request_id, Ok(coordinator()))
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(h.now - start <= Duration::from_secs(45));
    }
}

#[test]
fn heartbeats_answered_in_time_keep_the_session() {
    let mut h = H::stable_follower(config());
    for _ in 0..40 {
        h.heartbeat(ErrorCode::NONE);
        assert!(h.drain().is_empty());
    }
    assert_eq!(h.m.state(), MemberState::Stable);
}

#[test]
fn find_coordinator_backoff_doubles_up_to_the_cap() {
    let mut h = H::new(config());
    let mut delays = Vec::new();
    let id = h.expect_find();
    h.m.on_find_coordinator_response(h.now, id, Err(ErrorCode::COORDINATOR_NOT_AVAILABLE));
    for _ in 0..6 {
        delays.push(h.wait_deadline());
        let id = h.expect_find();
        h.m.on_request_failed(h.now, id, RequestFailure::Disconnected);
    }
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000].map(|ms| ms * MS));
    // Success resets the counter.
    h.wait_deadline();
    let id = h.expect_find();
    h.m.on_find_coordinator_response(h.now, id, Ok(coordinator()));
    let join = h.expect_join();
    h.m.on_join_response(
        h.now,
        join.request_id,
        JoinGroupResponse::error(ErrorCode::NOT_COORDINATOR),
    );
    let id = h.expect_find();
    h.m.on_find_coordinator_response(h.now, id, Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS));
    assert_eq!(h.wait_deadline(), 100 * MS);
}

#[test]
fn custom_backoff_is_used() {
    let mut h = H::new(
        GroupConfig::builder("g", ["t"])
            .retry_backoff(Duration::from_millis(50), Duration::from_millis(120))
            .build()
            .unwrap(),
    );
    h.find();
    let mut delays = Vec::new();
    for _ in 0..4 {
        let join = h.expect_join();
        h.m.on_join_response(
            h.now,
            join.request_id,
            JoinGroupResponse::error(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
        );
        delays.push(h.wait_deadline());
    }
    assert_eq!(delays, [50, 100, 120, 120].map(|ms| ms * MS));
}

// ----- FindCoordinator, JoinGroup, SyncGroup, LeaveGroup error matrices ----

#[test]
fn find_coordinator_every_error_code() {
    for &code in ErrorCode::ALL {
        if code == ErrorCode::NONE {
            continue;
        }
        let mut h = H::new(config());
        let id = h.expect_find();
        h.m.on_find_coordinator_response(h.now, id, Err(code));
        let actions = h.drain();
        if code == ErrorCode::GROUP_AUTHORIZATION_FAILED || !code.is_retriable() {
            assert!(
                matches!(&actions[..], [Action::Fatal(GroupError::Broker { api: GroupApi::FindCoordinator, code: c, .. })] if *c == code),
                "{code}: {actions:?}"
            );
        } else {
            assert!(actions.is_empty(), "{code}: {actions:?}");
            assert_eq!(h.wait_deadline(), 100 * MS);
            h.expect_find();
        }
    }
}

/// What a JoinGroup error must lead to (Java's JoinGroupResponseHandler).
#[derive(Debug, PartialEq)]
enum JoinExpect {
    RejoinNow { member_id: &'static str },
    FindCoordinatorThenRejoin,
    RejoinAfterBackoff,
    Fatal,
}

fn join_expectation(code: ErrorCode) -> JoinExpect {
    match code {
        ErrorCode::MEMBER_ID_REQUIRED => JoinExpect::RejoinNow {
            member_id: "assigned",
        },
        ErrorCode::UNKNOWN_MEMBER_ID => JoinExpect::RejoinNow { member_id: "" },
        ErrorCode::REBALANCE_IN_PROGRESS => JoinExpect::RejoinNow { member_id: "m-1" },
        ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
            JoinExpect::FindCoordinatorThenRejoin
        }
        ErrorCode::FENCED_INSTANCE_ID
        | ErrorCode::INCONSISTENT_GROUP_PROTOCOL
        | ErrorCode::INVALID_SESSION_TIMEOUT
        | ErrorCode::INVALID_GROUP_ID
        | ErrorCode::GROUP_AUTHORIZATION_FAILED
        | ErrorCode::GROUP_MAX_SIZE_REACHED
        | ErrorCode::UNSUPPORTED_VERSION => JoinExpect::Fatal,
        c if c.is_retriable() => JoinExpect::RejoinAfterBackoff,
        _ => JoinExpect::Fatal,
    }
}

/// Puts a member in Joining with member id "m-1" (after a rebalance).
fn joining_again() -> (H, JoinGroupParams) {
    let mut h = H::stable_follower(static_config());
    h.heartbeat(ErrorCode::REBALANCE_IN_PROGRESS);
    h.drain();
    h.m.revoke_done(h.now);
    let join = h.expect_join();
    assert_eq!(join.member_id, "m-1");
    (h, join)
}

#[test]
fn join_group_every_error_code() {
    assert_eq!(
        join_expectation(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
        JoinExpect::RejoinAfterBackoff
    );
    for &code in ErrorCode::ALL {
        if code == ErrorCode::NONE {
            continue;
        }
        let (mut h, join) = joining_again();
        let mut resp = JoinGroupResponse::error(code);
        resp.member_id = "assigned".into();
        h.m.on_join_response(h.now, join.request_id, resp);
        let actions = h.drain();
        match join_expectation(code) {
            JoinExpect::RejoinNow { member_id } => match &actions[..] {
                [Action::SendJoinGroup(p)] => assert_eq!(p.member_id, member_id, "{code}"),
                other => panic!("{code}: {other:?}"),
            },
            JoinExpect::FindCoordinatorThenRejoin => {
                assert!(
                    matches!(actions[..], [Action::FindCoordinator(_)]),
                    "{code}: {actions:?}"
                );
                let Action::FindCoordinator(p) = &actions[0] else {
                    unreachable!()
                };
                h.m.on_find_coordinator_response(h.now, p.request_id, Ok(coordinator()));
                assert!(h.drain().is_empty(), "{code}: join backs off");
                assert_eq!(h.wait_deadline(), 100 * MS);
                assert_eq!(h.expect_join().member_id, "m-1");
            }
            JoinExpect::RejoinAfterBackoff => {
                assert!(actions.is_empty(), "{code}: {actions:?}");
                assert_eq!(h.wait_deadline(), 100 * MS);
                assert_eq!(h.expect_join().member_id, "m-1");
            }
            JoinExpect::Fatal => {
                assert!(
                    matches!(actions[..], [Action::Fatal(_)]),
                    "{code}: {actions:?}"
                );
                if code == ErrorCode::FENCED_INSTANCE_ID {
                    assert!(matches!(
                        actions[0],
                        Action::Fatal(GroupError::FencedInstanceId { .. })
                    ));
                }
                h.advance(Duration::from_secs(60));
                assert!(h.drain().is_empty(), "{code}: no rejoin loop");
            }
        }
    }
}

#[test]
fn sync_group_every_error_code() {
    for &code in ErrorCode::ALL {
        if code == ErrorCode::NONE {
            continue;
        }
        let (mut h, join) = joining_again();
        h.m.on_join_response(h.now, join.request_id, join_ok("m-1", "x", 2));
        let sync = h.expect_sync();
        assert!(!h.m.can_commit());
        h.m.on_sync_response(h.now, sync.request_id, SyncGroupResponse::error(code));
        let actions = h.drain();
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Assign(_))),
            "{code}"
        );
        match code {
            ErrorCode::REBALANCE_IN_PROGRESS | ErrorCode::ILLEGAL_GENERATION => {
                match &actions[..] {
                    [Action::SendJoinGroup(p)] => assert_eq!(p.member_id, "m-1", "{code}"),
                    other => panic!("{code}: {other:?}"),
                }
            }
            ErrorCode::UNKNOWN_MEMBER_ID => match &actions[..] {
                [Action::SendJoinGroup(p)] => assert_eq!(p.member_id, "", "{code}"),
                other => panic!("{code}: {other:?}"),
            },
            ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                assert!(
                    matches!(actions[..], [Action::FindCoordinator(_)]),
                    "{code}: {actions:?}"
                );
            }
            ErrorCode::FENCED_INSTANCE_ID | ErrorCode::GROUP_AUTHORIZATION_FAILED => {
                assert!(
                    matches!(actions[..], [Action::Fatal(_)]),
                    "{code}: {actions:?}"
                );
            }
            c if c.is_retriable() => {
                assert!(actions.is_empty(), "{code}: {actions:?}");
                assert_eq!(h.wait_deadline(), 100 * MS);
                h.expect_join();
            }
            _ => assert!(
                matches!(actions[..], [Action::Fatal(_)]),
                "{code}: {actions:?}"
            ),
        }
        assert!(!h.m.can_commit(), "{code}");
    }
}

#[test]
fn join_and_sync_request_failures_rediscover_and_rejoin() {
    let mut h = H::new(config());
    h.find();
    let join = h.expect_join();
    h.m.on_request_failed(h.now, join.request_id, RequestFailure::Disconnected);
    h.find();
    assert!(h.drain().is_empty());
    h.wait_deadline();
    let join = h.expect_join();
    h.m.on_join_response(h.now, join.request_id, join_ok("m-1", "x", 1));
    let sync = h.expect_sync();
    h.m.on_request_failed(h.now, sync.request_id, RequestFailure::TimedOut);
    h.find();
    h.wait_deadline();
    assert_eq!(h.expect_join().member_id, "m-1");
}

#[test]
fn leave_group_every_error_code_closes() {
    for &code in ErrorCode::ALL {
        let mut h = H::stable_follower(config());
        h.m.request_leave(h.now);
        assert_eq!(h.drain(), vec![Action::Revoke(tps(&[("t", 0), ("t", 1)]))]);
        h.m.revoke_done(h.now);
        let leave = match h.one() {
            Action::SendLeaveGroup(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(leave.member_id, "m-1");
        h.m.on_leave_response(h.now, leave.request_id, code);
        assert_eq!(h.drain(), vec![Action::Closed]);
        assert_eq!(h.m.state(), MemberState::Closed);
        assert!(h.m.owned_partitions().is_empty());
        assert_eq!(h.m.next_deadline(), None);
    }
}

// ----- close and static membership ----------------------------------------

#[test]
fn static_member_close_sends_no_leave_group() {
    let mut h = H::stable_follower(static_config());
    h.m.request_leave(h.now);
    assert_eq!(h.drain(), vec![Action::Revoke(tps(&[("t", 0), ("t", 1)]))]);
    assert!(
        h.m.can_commit(),
        "the final commit happens in the revocation listener"
    );
    h.m.revoke_done(h.now);
    assert_eq!(h.drain(), vec![Action::Closed]);
}

#[test]
fn leave_waits_for_the_commit_in_flight_and_failure_still_closes() {
    let mut h = H::stable_follower(config());
    h.m.request_leave(h.now);
    h.drain();
    let commit = h.m.begin_commit().unwrap();
    h.m.revoke_done(h.now);
    assert!(h.drain().is_empty());
    h.m.on_commit_response(h.now, commit.request_id, &[ErrorCode::NONE]);
    let Action::SendLeaveGroup(leave) = h.one() else {
        panic!()
    };
    h.m.on_request_failed(h.now, leave.request_id, RequestFailure::Disconnected);
    assert_eq!(h.drain(), vec![Action::Closed]);
}

#[test]
fn close_while_joining_abandons_the_round() {
    let mut h = H::new(config());
    h.find();
    let join = h.expect_join();
    let mut required = JoinGroupResponse::error(ErrorCode::MEMBER_ID_REQUIRED);
    required.member_id = "m-1".into();
    h.m.on_join_response(h.now, join.request_id, required);
    let join = h.expect_join();
    h.m.request_leave(h.now);
    let Action::SendLeaveGroup(leave) = h.one() else {
        panic!()
    };
    assert_eq!(leave.member_id, "m-1");
    // The late JoinGroup answer changes nothing.
    h.m.on_join_response(h.now, join.request_id, join_ok("m-1", "x", 1));
    assert!(h.drain().is_empty());
    h.m.on_leave_response(h.now, leave.request_id, ErrorCode::NONE);
    assert_eq!(h.drain(), vec![Action::Closed]);
}

#[test]
fn close_before_any_member_id_just_closes() {
    let mut h = H::new(config());
    h.m.request_leave(h.now);
    assert_eq!(h.drain(), vec![Action::Closed]);
}

/// Found by the invariant proptest: a partition-count answer arriving after
/// close reopened the member (the phase was swapped out before checking it).
#[test]
fn partition_counts_after_close_do_not_reopen_the_member() {
    let mut h = H::new(config());
    h.find();
    h.expect_join();
    h.m.request_leave(h.now);
    assert_eq!(h.drain(), vec![Action::Closed]);
    h.m.on_coordinator_disconnected(h.now);
    h.m.on_partition_counts(h.now, &[("t".to_string(), 3)].into());
    assert_eq!(h.m.state(), MemberState::Closed);
    assert!(h.drain().is_empty());
}

// ----- OffsetCommit codes that affect membership ---------------------------

#[test]
fn commit_every_error_code() {
    for &code in ErrorCode::ALL {
        let mut h = H::stable_follower(config());
        let commit = h.m.begin_commit().unwrap();
        let outcome =
            h.m.on_commit_response(h.now, commit.request_id, &[ErrorCode::NONE, code]);
        let actions = h.drain();
        let owned = tps(&[("t", 0), ("t", 1)]);
        match code {
            ErrorCode::NONE => {
                assert_eq!(outcome, CommitOutcome::Committed);
                assert!(actions.is_empty());
            }
            ErrorCode::ILLEGAL_GENERATION | ErrorCode::UNKNOWN_MEMBER_ID => {
                assert_eq!(outcome, CommitOutcome::MembershipLost);
                assert_eq!(actions[0], Action::Lost(owned));
                assert!(
                    matches!(actions[1..], [Action::SendJoinGroup(_)]),
                    "{actions:?}"
                );
            }
            ErrorCode::FENCED_INSTANCE_ID => {
                assert_eq!(outcome, CommitOutcome::MembershipLost);
                assert_eq!(actions[0], Action::Lost(owned));
                assert!(matches!(actions[1..], [Action::Fatal(_)]), "{actions:?}");
            }
            ErrorCode::REBALANCE_IN_PROGRESS => {
                assert_eq!(outcome, CommitOutcome::Rebalancing);
                assert_eq!(actions, vec![Action::Revoke(owned)]);
                assert_eq!(h.m.generation_id(), 1, "rejoin keeps the generation");
            }
            ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                assert_eq!(outcome, CommitOutcome::Retry);
                assert!(
                    matches!(actions[..], [Action::FindCoordinator(_)]),
                    "{actions:?}"
                );
                assert_eq!(h.m.begin_commit(), Err(CommitRefused::CoordinatorUnknown));
            }
            c if c.is_retriable() => {
                assert_eq!(outcome, CommitOutcome::Retry, "{code}");
                assert!(actions.is_empty());
                assert!(h.m.begin_commit().is_ok(), "slot freed");
            }
            c => {
                assert_eq!(outcome, CommitOutcome::Failed(c));
                assert!(actions.is_empty(), "{code}: membership unaffected");
                assert_eq!(h.m.state(), MemberState::Stable);
            }
        }
    }
}

#[test]
fn commit_failure_frees_the_slot_and_rediscovers() {
    let mut h = H::stable_follower(config());
    let commit = h.m.begin_commit().unwrap();
    h.m.on_request_failed(h.now, commit.request_id, RequestFailure::TimedOut);
    assert!(!h.m.commit_in_flight());
    h.find();
    assert!(h.m.begin_commit().is_ok());
}

#[test]
fn request_rejoin_revokes_from_stable() {
    let mut h = H::stable_follower(config());
    h.m.request_rejoin(h.now, "metadata changed");
    assert_eq!(h.drain(), vec![Action::Revoke(tps(&[("t", 0), ("t", 1)]))]);
    h.m.revoke_done(h.now);
    assert_eq!(h.expect_join().reason, "metadata changed");
}

/// A membership lost while the revocation listener still runs: Lost is
/// reported at once and the rejoin still waits for revoke_done.
#[test]
fn lost_during_revoke_waits_for_the_listener() {
    let mut h = H::stable_follower(config());
    h.heartbeat(ErrorCode::REBALANCE_IN_PROGRESS);
    h.drain();
    h.heartbeat(ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(h.drain(), vec![Action::Lost(tps(&[("t", 0), ("t", 1)]))]);
    assert!(!h.m.can_commit());
    h.advance(Duration::from_secs(5));
    assert!(h.drain().is_empty());
    h.m.revoke_done(h.now);
    assert_eq!(h.expect_join().member_id, "");
}

// ----- invariants under random events --------------------------------------

#[derive(Debug, Clone)]
enum Event {
    Advance(u64),
    AnswerFind(Option<i16>),
    AnswerJoin(i16, bool),
    AnswerSync(i16, u8),
    AnswerHeartbeat(i16),
    AnswerLeave,
    AnswerCommit(i16),
    Fail(u8),
    Counts,
    RevokeDone,
    BeginCommit,
    RequestLeave,
    RequestRejoin,
    Disconnect,
}

fn code() -> impl Strategy<Value = i16> {
    prop_oneof![
        10 => Just(0i16),
        1 => prop::sample::select(vec![7i16, 13, 14, 15, 16, 22, 25, 27, 30, 79, 81, 82, 23, 42, 999]),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => (0u64..4_000).prop_map(Event::Advance),
        1 => (0u64..60_000).prop_map(Event::Advance),
        2 => prop::option::weighted(0.2, code()).prop_map(Event::AnswerFind),
        3 => (code(), any::<bool>()).prop_map(|(c, l)| Event::AnswerJoin(c, l)),
        3 => (code(), prop_oneof![1 => Just(0u8), 6 => Just(1u8), 6 => Just(2u8), 1 => Just(3u8)])
            .prop_map(|(c, a)| Event::AnswerSync(c, a)),
        4 => code().prop_map(Event::AnswerHeartbeat),
        1 => Just(Event::AnswerLeave),
        2 => code().prop_map(Event::AnswerCommit),
        1 => (0u8..6).prop_map(Event::Fail),
        1 => Just(Event::Counts),
        2 => Just(Event::RevokeDone),
        2 => Just(Event::BeginCommit),
        1 => prop_oneof![1 => Just(Event::RequestLeave), 3 => Just(Event::Advance(0))],
        1 => Just(Event::RequestRejoin),
        1 => Just(Event::Disconnect),
    ]
}

/// What the test driver knows: outstanding requests and what it was told.
#[derive(Default)]
struct Model {
    find: Vec<RequestId>,
    join: Vec<RequestId>,
    sync: Vec<RequestId>,
    heartbeat: Vec<RequestId>,
    leave: Vec<RequestId>,
    commit: Vec<RequestId>,
    ids: BTreeSet<RequestId>,
    owned: Vec<TopicPartition>,
    revoking: Vec<TopicPartition>,
    join_ok_fed: bool,
    sync_ok_fed: bool,
    join_round_open: bool,
    ended: bool,
}

fn check_actions(h: &mut H, model: &mut Model) -> Result<(), TestCaseError> {
    while let Some(action) = h.m.poll(h.now) {
        prop_assert!(!model.ended, "action after Fatal/Closed: {:?}", action);
        let new_id = |id: RequestId, model: &mut Model| -> Result<(), TestCaseError> {
            prop_assert!(model.ids.insert(id), "request id reused");
            Ok(())
        };
        match action {
            Action::FindCoordinator(p) => {
                new_id(p.request_id, model)?;
                model.find.push(p.request_id);
            }
            Action::SendJoinGroup(p) => {
                new_id(p.request_id, model)?;
                prop_assert!(model.revoking.is_empty(), "JoinGroup before revoke_done");
                prop_assert!(model.owned.is_empty(), "JoinGroup while owning partitions");
                prop_assert!(model.commit.is_empty() || !h.m.commit_in_flight());
                model.join.push(p.request_id);
                model.join_ok_fed = false;
                model.join_round_open = true;
            }
            Action::SendSyncGroup(p) => {
                new_id(p.request_id, model)?;
                prop_assert!(
                    model.join_ok_fed,
                    "SyncGroup without a successful JoinGroup"
                );
                model.sync.push(p.request_id);
                model.sync_ok_fed = false;
            }
            Action::SendHeartbeat(p) => {
                new_id(p.request_id, model)?;
                model.heartbeat.push(p.request_id);
            }
            Action::SendLeaveGroup(p) => {
                new_id(p.request_id, model)?;
                model.leave.push(p.request_id);
            }
            Action::NeedPartitionCounts { .. } => prop_assert!(model.join_ok_fed),
            Action::Revoke(ps) => {
                prop_assert_eq!(&ps, &model.owned);
                model.revoking = ps;
            }
            Action::Assign(ps) => {
                prop_assert!(model.sync_ok_fed, "Assign without a successful SyncGroup");
                prop_assert!(model.owned.is_empty());
                model.sync_ok_fed = false;
                model.join_round_open = false;
                model.owned = ps;
            }
            Action::FetchOffsets(ps) => prop_assert_eq!(&ps, &model.owned),
            Action::Lost(ps) => {
                prop_assert_eq!(&ps, &model.owned);
                model.owned.clear();
            }
            Action::Fatal(_) | Action::Closed => {
                prop_assert!(model.owned.is_empty());
                model.ended = true;
            }
        }
    }
    prop_assert_eq!(h.m.owned_partitions(), &model.owned[..]);
    if model.join_round_open {
        prop_assert!(
            !h.m.can_commit(),
            "commit allowed between JoinGroup and SyncGroup"
        );
    }
    if let Some(deadline) = h.m.next_deadline() {
        prop_assert!(deadline >= h.now || deadline == h.now);
    }
    Ok(())
}

fn apply(h: &mut H, model: &mut Model, event: Event) -> Result<(), TestCaseError> {
    let now = h.now;
    match event {
        Event::Advance(ms) => h.advance(Duration::from_millis(ms)),
        Event::AnswerFind(code) => {
            if let Some(id) = model.find.pop() {
                let result = match code {
                    None | Some(0) => Ok(coordinator()),
                    Some(c) => Err(ErrorCode(c)),
                };
                h.m.on_find_coordinator_response(now, id, result);
            }
        }
        Event::AnswerJoin(code, leader) => {
            if let Some(id) = model.join.pop() {
                let mut resp = if code == 0 {
                    join_ok("m-1", if leader { "m-1" } else { "m-0" }, 7)
                } else {
                    JoinGroupResponse::error(ErrorCode(code))
                };
                resp.member_id = "m-1".into();
                if leader {
                    resp.members = vec![JoinGroupMember {
                        member_id: "m-1".into(),
                        group_instance_id: None,
                        metadata: Subscription::new(vec!["t".into()]).encode(0).unwrap(),
                    }];
                }
                if code == 0 && h.m.state() == MemberState::Joining {
                    model.join_ok_fed = true;
                }
                h.m.on_join_response(now, id, resp);
            }
        }
        Event::AnswerSync(code, which) => {
            if let Some(id) = model.sync.pop() {
                let resp = if code == 0 {
                    let bytes = match which {
                        0 => Bytes::new(),
                        1 => assignment_bytes(&[("t", &[0])]),
                        2 => assignment_bytes(&[("t", &[0, 1, 2])]),
                        _ => Bytes::from_static(&[0, 0, 0]),
                    };
                    if which < 3 && h.m.state() == MemberState::Syncing {
                        model.sync_ok_fed = true;
                    }
                    sync_ok(bytes)
                } else {
                    SyncGroupResponse::error(ErrorCode(code))
                };
                h.m.on_sync_response(now, id, resp);
            }
        }
        Event::AnswerHeartbeat(code) => {
            if let Some(id) = model.heartbeat.pop() {
                h.m.on_heartbeat_response(now, id, ErrorCode(code));
            }
        }
        Event::AnswerLeave => {
            if let Some(id) = model.leave.pop() {
                h.m.on_leave_response(now, id, ErrorCode::NONE);
            }
        }
        Event::AnswerCommit(code) => {
            if let Some(id) = model.commit.pop() {
                h.m.on_commit_response(now, id, &[ErrorCode(code)]);
            }
        }
        Event::Fail(which) => {
            let list = match which {
                0 => &mut model.find,
                1 => &mut model.join,
                2 => &mut model.sync,
                3 => &mut model.heartbeat,
                4 => &mut model.leave,
                _ => &mut model.commit,
            };
            if let Some(id) = list.pop() {
                h.m.on_request_failed(now, id, RequestFailure::Disconnected);
            }
        }
        Event::Counts => h.m.on_partition_counts(now, &[("t".to_string(), 3)].into()),
        Event::RevokeDone => {
            let revoked = std::mem::take(&mut model.revoking);
            if !revoked.is_empty() {
                model.owned.clear();
            }
            h.m.revoke_done(now);
            prop_assert!(h.m.owned_partitions().iter().all(|p| !revoked.contains(p)));
        }
        Event::BeginCommit => {
            let allowed = h.m.can_commit();
            if let Ok(ctx) = h.m.begin_commit() {
                prop_assert!(allowed);
                prop_assert!(!model.join_round_open);
                prop_assert!(model.ids.insert(ctx.request_id));
                model.commit.push(ctx.request_id);
            }
        }
        Event::RequestLeave => h.m.request_leave(now),
        Event::RequestRejoin => h.m.request_rejoin(now, "test"),
        Event::Disconnect => h.m.on_coordinator_disconnected(now),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Under any sequence of events and times: no SyncGroup before a
    /// successful JoinGroup, no commit between JoinGroup and SyncGroup, no
    /// Assign without a successful SyncGroup, revoked or lost partitions are
    /// never reported as owned, nothing after Fatal/Closed, ids unique.
    #[test]
    fn membership_invariants_hold_under_random_events(
        events in prop::collection::vec(event(), 1..200),
        static_member in any::<bool>(),
    ) {
        let mut h = H::new(if static_member { static_config() } else { config() });
        let mut model = Model::default();
        check_actions(&mut h, &mut model)?;
        for event in events {
            apply(&mut h, &mut model, event)?;
            check_actions(&mut h, &mut model)?;
        }
    }
}
