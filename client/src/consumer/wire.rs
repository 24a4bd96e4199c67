//! Group requests on the wire: [`GroupMember`](crate::group::GroupMember)'s
//! plain parameters to kafka-protocol messages and back, per version.

use std::collections::BTreeMap;

use kafee_protocol::error::ErrorCode;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::TopicPartition;
use crate::group::{
    self, HeartbeatParams, JoinGroupMember, JoinGroupParams, LeaveGroupParams, SyncGroupParams,
};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn millis(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// JoinGroup at `version` (kafee speaks 2..=7).
pub(crate) fn join_group(p: &JoinGroupParams, version: i16) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(&p.group_id)))
        .with_session_timeout_ms(millis(p.session_timeout))
        .with_rebalance_timeout_ms(millis(p.rebalance_timeout))
        .with_member_id(s(&p.member_id))
        .with_group_instance_id(if version >= 5 {
            p.group_instance_id.as_deref().map(s)
        } else {
            None
        })
        .with_protocol_type(s(p.protocol_type))
        .with_protocols(
            p.protocols
                .iter()
                .map(|proto| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(proto.name))
                        .with_metadata(proto.metadata.clone())
                })
                .collect(),
        )
        .with_reason(if version >= 8 {
            Some(s(&p.reason))
        } else {
            None
        })
}

pub(crate) fn join_response(r: JoinGroupResponse) -> group::JoinGroupResponse {
    group::JoinGroupResponse {
        error_code: ErrorCode::from(r.error_code),
        generation_id: r.generation_id,
        protocol_type: r.protocol_type.map(|v| v.to_string()),
        protocol_name: r.protocol_name.map(|v| v.to_string()),
        leader: r.leader.to_string(),
        skip_assignment: r.skip_assignment,
        member_id: r.member_id.to_string(),
        members: r
            .members
            .into_iter()
            .map(|m| JoinGroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|v| v.to_string()),
                metadata: m.metadata,
            })
            .collect(),
    }
}

/// SyncGroup at `version` (0..=5).
pub(crate) fn sync_group(p: &SyncGroupParams, version: i16) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(&p.group_id)))
        .with_generation_id(p.generation_id)
        .with_member_id(s(&p.member_id))
        .with_group_instance_id(if version >= 3 {
            p.group_instance_id.as_deref().map(s)
        } else {
            None
        })
        .with_protocol_type((version >= 5).then(|| s(p.protocol_type)))
        .with_protocol_name((version >= 5).then(|| s(&p.protocol_name)))
        .with_assignments(
            p.assignments
                .iter()
                .map(|a| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(&a.member_id))
                        .with_assignment(a.assignment.clone())
                })
                .collect(),
        )
}

pub(crate) fn sync_response(r: SyncGroupResponse) -> group::SyncGroupResponse {
    group::SyncGroupResponse {
        error_code: ErrorCode::from(r.error_code),
        protocol_type: r.protocol_type.map(|v| v.to_string()),
        protocol_name: r.protocol_name.map(|v| v.to_string()),
        assignment: r.assignment,
    }
}

/// Heartbeat at `version` (0..=4).
pub(crate) fn heartbeat(p: &HeartbeatParams, version: i16) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(&p.group_id)))
        .with_generation_id(p.generation_id)
        .with_member_id(s(&p.member_id))
        .with_group_instance_id(if version >= 3 {
            p.group_instance_id.as_deref().map(s)
        } else {
            None
        })
}

/// LeaveGroup at `version` (0..=4): one member id before v3, a member list after.
pub(crate) fn leave_group(p: &LeaveGroupParams, version: i16) -> LeaveGroupRequest {
    let request = LeaveGroupRequest::default().with_group_id(GroupId(s(&p.group_id)));
    if version >= 3 {
        request.with_members(vec![MemberIdentity::default()
            .with_member_id(s(&p.member_id))
            .with_reason((version >= 5).then(|| s(&p.reason)))])
    } else {
        request.with_member_id(s(&p.member_id))
    }
}

/// OffsetFetch for `partitions` at `version` (1..=7).
pub(crate) fn offset_fetch(
    group_id: &str,
    partitions: &[TopicPartition],
    version: i16,
) -> OffsetFetchRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_topics(Some(
            topics
                .into_iter()
                .map(|(name, parts)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partition_indexes(parts)
                })
                .collect(),
        ))
        // Wait for pending transactional offsets (v7+): the broker answers
        // UNSTABLE_OFFSET_COMMIT, which we retry.
        .with_require_stable(version >= 7)
}

/// A committed offset read back with OffsetFetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to read.
    pub offset: i64,
    /// The metadata string stored with the commit (empty when none).
    pub metadata: String,
}

/// Per partition: the committed offset (`None` when the group has none) or
/// the partition's error code. The top-level error code, if any, applies to
/// all.
pub(crate) fn offset_fetch_response(
    r: OffsetFetchResponse,
) -> Result<BTreeMap<TopicPartition, Result<Option<CommittedOffset>, ErrorCode>>, ErrorCode> {
    let top = ErrorCode::from(r.error_code);
    if top != ErrorCode::NONE {
        return Err(top);
    }
    let mut out = BTreeMap::new();
    for topic in r.topics {
        for p in topic.partitions {
            let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
            let code = ErrorCode::from(p.error_code);
            let value = if code != ErrorCode::NONE {
                Err(code)
            } else if p.committed_offset < 0 {
                Ok(None)
            } else {
                Ok(Some(CommittedOffset {
                    offset: p.committed_offset,
                    metadata: p.metadata.map(|m| m.to_string()).unwrap_or_default(),
                }))
            };
            out.insert(tp, value);
        }
    }
    Ok(out)
}

/// One offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetToCommit {
    /// The partition.
    pub tp: TopicPartition,
    /// The next offset to read (one past the last record handled).
    pub offset: i64,
    /// A metadata string stored with the offset (kafee's batch layer keeps
    /// retry counts there).
    pub metadata: Option<String>,
}

/// OffsetCommit at `version` (2..=8).
pub(crate) fn offset_commit(
    ctx: &group::CommitContext,
    group_id: &str,
    offsets: &[OffsetToCommit],
    version: i16,
) -> OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for o in offsets {
        topics.entry(&o.tp.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(o.tp.partition)
                .with_committed_offset(o.offset)
                .with_committed_metadata(Some(s(o.metadata.as_deref().unwrap_or(""))))
                .with_committed_leader_epoch(-1),
        );
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_generation_id_or_member_epoch(ctx.generation_id)
        .with_member_id(s(&ctx.member_id))
        .with_group_instance_id(if version >= 7 {
            ctx.group_instance_id.as_deref().map(s)
        } else {
            None
        })
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// The error codes of every partition of an OffsetCommit response.
pub(crate) fn offset_commit_codes(r: &OffsetCommitResponse) -> Vec<(TopicPartition, ErrorCode)> {
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    TopicPartition::new(t.name.0.to_string(), p.partition_index),
                    ErrorCode::from(p.error_code),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn round_trip<T: Encodable + Decodable + PartialEq + std::fmt::Debug>(msg: &T, version: i16) {
        let mut buf = bytes::BytesMut::new();
        msg.encode(&mut buf, version).unwrap();
        let mut bytes = buf.freeze();
        assert_eq!(&T::decode(&mut bytes, version).unwrap(), msg);
    }

    #[test]
    fn group_requests_encode_at_every_supported_version() {
        let join = JoinGroupParams {
            request_id: group::RequestId(1),
            group_id: "g".into(),
            member_id: "m".into(),
            group_instance_id: Some("i".into()),
            session_timeout: std::time::Duration::from_secs(45),
            rebalance_timeout: std::time::Duration::from_secs(300),
            protocol_type: "consumer",
            protocols: vec![group::JoinGroupProtocol {
                name: "range",
                metadata: bytes::Bytes::from_static(b"\0\0"),
            }],
            reason: "test".into(),
        };
        for v in 2..=7 {
            round_trip(&join_group(&join, v), v);
        }
        let sync = SyncGroupParams {
            request_id: group::RequestId(2),
            group_id: "g".into(),
            generation_id: 3,
            member_id: "m".into(),
            group_instance_id: Some("i".into()),
            protocol_type: "consumer",
            protocol_name: "range".into(),
            assignments: vec![],
        };
        for v in 0..=5 {
            round_trip(&sync_group(&sync, v), v);
        }
        let hb = HeartbeatParams {
            request_id: group::RequestId(3),
            group_id: "g".into(),
            generation_id: 3,
            member_id: "m".into(),
            group_instance_id: Some("i".into()),
        };
        for v in 0..=4 {
            round_trip(&heartbeat(&hb, v), v);
        }
        let leave = LeaveGroupParams {
            request_id: group::RequestId(4),
            group_id: "g".into(),
            member_id: "m".into(),
            reason: "bye".into(),
        };
        for v in 0..=4 {
            round_trip(&leave_group(&leave, v), v);
        }
        let tps = [TopicPartition::new("t", 0), TopicPartition::new("t", 1)];
        for v in 1..=7 {
            round_trip(&offset_fetch("g", &tps, v), v);
        }
        let ctx = group::CommitContext {
            request_id: group::RequestId(5),
            generation_id: 3,
            member_id: "m".into(),
            group_instance_id: Some("i".into()),
        };
        let offsets = [OffsetToCommit {
            tp: TopicPartition::new("t", 0),
            offset: 42,
            metadata: Some("kafee".into()),
        }];
        for v in 2..=8 {
            round_trip(&offset_commit(&ctx, "g", &offsets, v), v);
        }
    }
}
