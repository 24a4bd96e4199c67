//! Unit tests and proptests of the Fetch response decoder: interop with
//! kafka-protocol's encoder at every version, hand-made malformed bodies,
//! truncation at every position and arbitrary bytes.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response as kp;
use kafka_protocol::messages::{BrokerId, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;

use super::*;

fn encode(response: &FetchResponse, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    response.encode(&mut buf, version).unwrap();
    buf.freeze()
}

/// What our view of `response` must be after an encode at `version`.
fn expected(response: &FetchResponse, version: i16) -> FetchResponseView {
    let flexible = version >= 12;
    FetchResponseView {
        throttle_time_ms: response.throttle_time_ms,
        error_code: if version >= 7 { response.error_code } else { 0 },
        session_id: if version >= 7 { response.session_id } else { 0 },
        topics: response
            .responses
            .iter()
            .map(|t| FetchTopicView {
                name: t.topic.0.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| FetchPartitionView {
                        partition_index: p.partition_index,
                        error_code: p.error_code,
                        high_watermark: p.high_watermark,
                        last_stable_offset: p.last_stable_offset,
                        log_start_offset: if version >= 5 { p.log_start_offset } else { -1 },
                        aborted_transactions: p.aborted_transactions.as_ref().map(|list| {
                            list.iter()
                                .map(|a| AbortedTransaction {
                                    producer_id: a.producer_id.0,
                                    first_offset: a.first_offset,
                                })
                                .collect()
                        }),
                        preferred_read_replica: if version >= 11 {
                            p.preferred_read_replica.0
                        } else {
                            -1
                        },
                        records: p.records.clone(),
                        diverging_epoch: (flexible && p.diverging_epoch != Default::default())
                            .then_some(EpochEndOffset {
                                epoch: p.diverging_epoch.epoch,
                                end_offset: p.diverging_epoch.end_offset,
                            }),
                        current_leader: (flexible && p.current_leader != Default::default())
                            .then_some(LeaderIdAndEpoch {
                                leader_id: p.current_leader.leader_id.0,
                                leader_epoch: p.current_leader.leader_epoch,
                            }),
                        snapshot_id: (flexible && p.snapshot_id != Default::default()).then_some(
                            SnapshotId {
                                end_offset: p.snapshot_id.end_offset,
                                epoch: p.snapshot_id.epoch,
                            },
                        ),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn sample(version: i16) -> FetchResponse {
    let mut p0 = kp::PartitionData::default();
    p0.partition_index = 0;
    p0.high_watermark = 100;
    p0.last_stable_offset = 90;
    p0.log_start_offset = 5;
    p0.aborted_transactions = Some(vec![kp::AbortedTransaction::default()
        .with_producer_id(ProducerId(7))
        .with_first_offset(42)]);
    p0.records = Some(Bytes::from_static(b"record set bytes"));
    let mut p1 = kp::PartitionData::default();
    p1.partition_index = 3;
    p1.error_code = 6;
    if version >= 11 {
        p1.preferred_read_replica = BrokerId(2);
    }
    if version >= 12 {
        p1.current_leader = kp::LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(2))
            .with_leader_epoch(9);
        p1.diverging_epoch = kp::EpochEndOffset::default()
            .with_epoch(4)
            .with_end_offset(77);
        p1.snapshot_id = kp::SnapshotId::default().with_end_offset(10).with_epoch(1);
    }
    let topic = kp::FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("events")))
        .with_partitions(vec![p0, p1]);
    let mut r = FetchResponse::default().with_throttle_time_ms(12);
    if version >= 7 {
        r.error_code = 0;
        r.session_id = 99;
    }
    r.responses = vec![topic];
    r
}

#[test]
fn decodes_kafka_protocol_encoding_at_every_version() {
    for version in MIN_VERSION..=MAX_VERSION {
        let response = sample(version);
        let body = encode(&response, version);
        let view = decode_fetch_response(version, body).unwrap();
        assert_eq!(view, expected(&response, version), "v{version}");
        assert_eq!(view.topics[0].partitions[1].error_code, 6);
        if version >= 12 {
            assert_eq!(
                view.topics[0].partitions[1].current_leader,
                Some(LeaderIdAndEpoch {
                    leader_id: 2,
                    leader_epoch: 9
                })
            );
        }
    }
}

#[test]
fn records_are_slices_of_the_body() {
    for version in MIN_VERSION..=MAX_VERSION {
        let body = encode(&sample(version), version);
        let range = body.as_ptr_range();
        let view = decode_fetch_response(version, body.clone()).unwrap();
        let records = view.topics[0].partitions[0].records.as_ref().unwrap();
        assert_eq!(&records[..], b"record set bytes");
        assert!(
            range.contains(&records.as_ptr()),
            "v{version}: records were copied"
        );
    }
}

#[test]
fn versions_outside_4_to_12_are_refused() {
    for version in [-1, 0, 3, 13, 17] {
        let err = decode_fetch_response(version, Bytes::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot decode Fetch v{version} body: kafee decodes Fetch responses of versions 4..=12 only"
            )
        );
    }
}

/// kafka-protocol aborts the process on these 12 bytes (it reserves room for
/// 2^31 - 1 topics before reading one); we return an error.
#[test]
fn huge_topic_count_in_12_bytes_is_a_typed_error() {
    let body = Bytes::from_static(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    for version in 4..=6 {
        let err = decode_fetch_response(version, body.clone()).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Body {
                api_key: ApiKey::Fetch,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "cannot decode Fetch v{version} body: responses: 2147483647 elements of at least 6 bytes do not fit in the 4 bytes remaining"
            )
        );
    }
    // v12: compact array count 0xfffffffe + 1 as an unsigned varint.
    let mut b = BytesMut::new();
    b.put_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
    let err = decode_fetch_response(12, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v12 body: responses: 4294967294 elements of at least 3 bytes do not fit in the 1 bytes remaining"
    );
}

/// A v4 body with one topic "t" and one partition, up to (not including)
/// the partition's aborted transactions.
fn v4_prefix() -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i32(0);
    b.put_i32(1);
    b.put_i16(1);
    b.put_slice(b"t");
    b.put_i32(1);
    b.put_i32(0);
    b.put_i16(0);
    b.put_i64(10);
    b.put_i64(10);
    b
}

#[test]
fn huge_counts_and_lengths_inside_a_partition_are_typed_errors() {
    let mut b = v4_prefix();
    b.put_i32(i32::MAX);
    b.put_i32(-1);
    let err = decode_fetch_response(4, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v4 body: responses[0].partitions[0].aborted_transactions: 2147483647 elements of at least 16 bytes do not fit in the 4 bytes remaining"
    );

    let mut b = v4_prefix();
    b.put_i32(-1);
    b.put_i32(i32::MAX);
    b.put_slice(&[0; 12]);
    let err = decode_fetch_response(4, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v4 body: responses[0].partitions[0].records: length 2147483647 exceeds the 12 bytes remaining"
    );

    let mut b = BytesMut::new();
    b.put_i32(0);
    b.put_i32(1);
    b.put_i16(1);
    b.put_slice(b"t");
    b.put_i32(i32::MAX);
    let err = decode_fetch_response(4, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v4 body: responses[0].partitions: 2147483647 elements of at least 30 bytes do not fit in the 0 bytes remaining"
    );
}

#[test]
fn malformed_fields_name_the_field() {
    // Negative lengths other than -1.
    let mut b = v4_prefix();
    b.put_i32(-2);
    b.put_i32(-1);
    let err = decode_fetch_response(4, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v4 body: responses[0].partitions[0].aborted_transactions: invalid negative length -2"
    );
    // A null topic name.
    let mut b = BytesMut::new();
    b.put_i32(0);
    b.put_i32(1);
    b.put_i16(-1);
    b.put_i32(0);
    let err = decode_fetch_response(4, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v4 body: responses[0].topic: null where the schema does not allow it"
    );
    // A null topic array.
    let mut b = BytesMut::new();
    b.put_i32(0);
    b.put_i32(-1);
    let err = decode_fetch_response(4, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v4 body: responses: null where the schema does not allow it"
    );
    // A topic name that is not UTF-8.
    let mut b = BytesMut::new();
    b.put_i32(0);
    b.put_i32(1);
    b.put_i16(2);
    b.put_slice(&[0xc3, 0x28]);
    b.put_i32(0);
    let err = decode_fetch_response(4, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v4 body: responses[0].topic: string is not valid UTF-8"
    );
    // One aborted transaction passes the count check (16 bytes remain) and
    // takes the bytes meant for the records length.
    let mut b = v4_prefix();
    b.put_i32(1);
    b.put_i64(1);
    b.put_i32(0);
    b.put_i32(-1);
    let err = decode_fetch_response(4, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v4 body: responses[0].partitions[0].records: needs 4 bytes, 0 remaining"
    );
    // Trailing bytes.
    let mut b = v4_prefix();
    b.put_i32(-1);
    b.put_i32(-1);
    b.put_u8(0);
    let err = decode_fetch_response(4, b.freeze()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TrailingBytes {
            api_key: ApiKey::Fetch,
            version: 4,
            remaining: 1
        }
    );
}

/// A v12 body with one partition whose tag section is `tags`.
fn v12_with_partition_tags(tags: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i32(0); // throttle
    b.put_i16(0); // error
    b.put_i32(0); // session
    b.put_u8(2); // one topic
    b.put_u8(2); // name of 1 byte
    b.put_slice(b"t");
    b.put_u8(2); // one partition
    b.put_i32(0);
    b.put_i16(0);
    b.put_i64(1);
    b.put_i64(1);
    b.put_i64(0);
    b.put_u8(0); // aborted: null
    b.put_i32(-1); // preferred read replica
    b.put_u8(1); // empty records
    b.put_slice(tags);
    b.put_u8(0); // topic tags
    b.put_u8(0); // response tags
    b.freeze()
}

#[test]
fn unknown_tags_are_skipped_and_known_tags_checked() {
    // Tag 9 with 3 bytes, then current_leader.
    let view = decode_fetch_response(
        12,
        v12_with_partition_tags(&[2, 9, 3, 1, 2, 3, 1, 9, 0, 0, 0, 5, 0, 0, 0, 6, 0]),
    )
    .unwrap();
    let p = &view.topics[0].partitions[0];
    assert_eq!(
        p.current_leader,
        Some(LeaderIdAndEpoch {
            leader_id: 5,
            leader_epoch: 6
        })
    );
    assert_eq!(p.records.as_deref(), Some(&[][..]));
    assert_eq!(p.aborted_transactions, None);

    // current_leader whose size is too short for its fields.
    let err =
        decode_fetch_response(12, v12_with_partition_tags(&[1, 1, 4, 0, 0, 0, 5])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v12 body: responses[0].partitions[0].current_leader: needs 4 bytes, 0 remaining"
    );
    // snapshot_id with a byte too many.
    let err = decode_fetch_response(
        12,
        v12_with_partition_tags(&[1, 2, 14, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v12 body: responses[0].partitions[0].snapshot_id: tagged field 2 left 1 bytes undecoded"
    );
    // A tag whose size runs past the body.
    let err = decode_fetch_response(12, v12_with_partition_tags(&[1, 7, 0x7f])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot decode Fetch v12 body: responses[0].partitions[0].tagged fields: length 127 exceeds"),
        "{err}"
    );
    // A valid current_leader, then a tag whose size runs past the body: the
    // error names the tag section, not current_leader.
    let err = decode_fetch_response(
        12,
        v12_with_partition_tags(&[2, 1, 9, 0, 0, 0, 5, 0, 0, 0, 6, 0, 7, 0x7f]),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "cannot decode Fetch v12 body: responses[0].partitions[0].tagged fields: length 127 exceeds"
        ),
        "{err}"
    );
    // A varint longer than 5 bytes.
    let err = decode_fetch_response(
        12,
        v12_with_partition_tags(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Fetch v12 body: responses[0].partitions[0].tagged fields: unsigned varint longer than 5 bytes or above 2^32-1"
    );
}

#[test]
fn truncated_sample_fails_at_every_length() {
    for version in MIN_VERSION..=MAX_VERSION {
        let body = encode(&sample(version), version);
        for len in 0..body.len() {
            let result = decode_fetch_response(version, body.slice(..len));
            assert!(result.is_err(), "v{version} cut at {len} decoded");
        }
    }
}

fn tags(min: i32) -> impl Strategy<Value = BTreeMap<i32, Bytes>> {
    prop::collection::btree_map(
        min..min + 40,
        prop::collection::vec(any::<u8>(), 0..6).prop_map(Bytes::from),
        0..2,
    )
}

fn partition(version: i16) -> impl Strategy<Value = kp::PartitionData> {
    let flexible = version >= 12;
    (
        (
            any::<i32>(),
            any::<i16>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
        ),
        prop::option::of(prop::collection::vec((any::<i64>(), any::<i64>()), 0..4)),
        any::<i32>(),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        (
            prop::option::of((any::<i32>(), any::<i64>())),
            prop::option::of((any::<i32>(), any::<i32>())),
            prop::option::of((any::<i64>(), any::<i32>())),
            tags(3),
        ),
    )
        .prop_map(move |(fixed, aborted, replica, records, tagged)| {
            let (index, error, hw, lso, lstart) = fixed;
            let mut p = kp::PartitionData::default();
            p.partition_index = index;
            p.error_code = error;
            p.high_watermark = hw;
            p.last_stable_offset = lso;
            if version >= 5 {
                p.log_start_offset = lstart;
            }
            p.aborted_transactions = aborted.map(|list| {
                list.into_iter()
                    .map(|(producer_id, first_offset)| {
                        kp::AbortedTransaction::default()
                            .with_producer_id(ProducerId(producer_id))
                            .with_first_offset(first_offset)
                    })
                    .collect()
            });
            if version >= 11 {
                p.preferred_read_replica = BrokerId(replica);
            }
            p.records = records.map(Bytes::from);
            if flexible {
                let (diverging, leader, snapshot, unknown) = tagged;
                if let Some((epoch, end_offset)) = diverging {
                    p.diverging_epoch = kp::EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end_offset);
                }
                if let Some((leader_id, leader_epoch)) = leader {
                    p.current_leader = kp::LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(leader_id))
                        .with_leader_epoch(leader_epoch);
                }
                if let Some((end_offset, epoch)) = snapshot {
                    p.snapshot_id = kp::SnapshotId::default()
                        .with_end_offset(end_offset)
                        .with_epoch(epoch);
                }
                p.unknown_tagged_fields = unknown;
            }
            p
        })
}

fn response(version: i16) -> impl Strategy<Value = FetchResponse> {
    let flexible = version >= 12;
    let topic = (
        "[a-zA-Z0-9._-]{0,16}|\\PC{0,6}",
        prop::collection::vec(partition(version), 0..4),
        tags(0),
    )
        .prop_map(move |(name, partitions, unknown)| {
            let mut t = kp::FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions);
            if flexible {
                t.unknown_tagged_fields = unknown;
            }
            t
        });
    (
        any::<i32>(),
        any::<i16>(),
        any::<i32>(),
        prop::collection::vec(topic, 0..4),
        tags(1),
    )
        .prop_map(move |(throttle, error, session, topics, unknown)| {
            let mut r = FetchResponse::default().with_throttle_time_ms(throttle);
            if version >= 7 {
                r.error_code = error;
                r.session_id = session;
            }
            r.responses = topics;
            if flexible {
                r.unknown_tagged_fields = unknown;
            }
            r
        })
}

fn versioned_response() -> impl Strategy<Value = (i16, FetchResponse)> {
    (MIN_VERSION..=MAX_VERSION).prop_flat_map(|v| response(v).prop_map(move |r| (v, r)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever kafka-protocol encodes, we decode to the same fields, and so
    /// does kafka-protocol's own decoder (which checks `expected`).
    #[test]
    fn decodes_what_kafka_protocol_encodes((version, response) in versioned_response()) {
        let body = encode(&response, version);
        let view = decode_fetch_response(version, body.clone()).unwrap();
        prop_assert_eq!(&view, &expected(&response, version));
        let theirs = FetchResponse::decode(&mut body.clone(), version).unwrap();
        prop_assert_eq!(&expected(&theirs, version), &view);
    }

    /// Every proper prefix of a valid body is an error, never a panic.
    #[test]
    fn truncated_bodies_are_errors((version, response) in versioned_response()) {
        let body = encode(&response, version);
        for len in 0..body.len() {
            prop_assert!(decode_fetch_response(version, body.slice(..len)).is_err());
        }
    }

    /// A valid body with one byte changed decodes or fails, never panics.
    #[test]
    fn corrupted_bodies_never_panic(
        (version, response) in versioned_response(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let body = encode(&response, version);
        if !body.is_empty() {
            let mut bytes = body.to_vec();
            bytes[at.index(body.len())] = byte;
            let _ = decode_fetch_response(version, Bytes::from(bytes));
        }
    }

    /// Arbitrary bytes at any version decode or fail, never panic.
    #[test]
    fn arbitrary_bytes_never_panic(version in 0i16..16, bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_fetch_response(version, Bytes::from(bytes));
    }
}
