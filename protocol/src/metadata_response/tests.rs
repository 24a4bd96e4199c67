//! Unit tests and proptests of the Metadata response decoder: interop with
//! kafka-protocol's encoder and decoder at every version, malformed bodies,
//! truncation at every position and arbitrary bytes.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;

use super::*;

fn encode(response: &MetadataResponse, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    response.encode(&mut buf, version).unwrap();
    buf.freeze()
}

/// kafka-protocol's own decode of `body`, with unknown tagged fields dropped
/// (we skip them).
fn theirs(version: i16, body: &Bytes) -> MetadataResponse {
    let mut r = MetadataResponse::decode(&mut body.clone(), version).unwrap();
    r.unknown_tagged_fields.clear();
    for b in &mut r.brokers {
        b.unknown_tagged_fields.clear();
    }
    for t in &mut r.topics {
        t.unknown_tagged_fields.clear();
        for p in &mut t.partitions {
            p.unknown_tagged_fields.clear();
        }
    }
    r
}

fn sample(version: i16) -> MetadataResponse {
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(1);
    broker.host = StrBytes::from_static_str("127.0.0.1");
    broker.port = 9092;
    if version >= 1 {
        broker.rack = Some(StrBytes::from_static_str("r1"));
    }
    let mut partition = MetadataResponsePartition::default();
    partition.partition_index = 3;
    partition.leader_id = BrokerId(1);
    if version >= 7 {
        partition.leader_epoch = 4;
    }
    partition.replica_nodes = vec![BrokerId(1), BrokerId(2)];
    partition.isr_nodes = vec![BrokerId(1)];
    if version >= 5 {
        partition.offline_replicas = vec![BrokerId(2)];
    }
    let mut topic = MetadataResponseTopic::default();
    topic.name = Some(TopicName(StrBytes::from_static_str("events")));
    topic.partitions = vec![partition];
    let mut r = MetadataResponse::default();
    r.brokers = vec![broker];
    r.topics = vec![topic];
    if version >= 2 {
        r.cluster_id = Some(StrBytes::from_static_str("c1"));
    }
    if version >= 1 {
        r.controller_id = BrokerId(1);
    }
    r
}

#[test]
fn decodes_kafka_protocol_encoding_at_every_version() {
    for version in MIN_VERSION..=MAX_VERSION {
        let response = sample(version);
        let body = encode(&response, version);
        let ours = decode_metadata_response(version, body.clone()).unwrap();
        assert_eq!(ours, response, "v{version}");
        assert_eq!(ours, theirs(version, &body), "v{version}");
    }
}

#[test]
fn versions_outside_0_to_12_are_refused() {
    for version in [-1, 13] {
        let err = decode_metadata_response(version, Bytes::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot decode Metadata v{version} body: kafee decodes Metadata responses of versions 0..=12 only"
            )
        );
    }
}

#[test]
fn huge_counts_are_typed_errors() {
    // v1: brokers count 2^31 - 1 in 12 bytes.
    let body = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
    let err = decode_metadata_response(1, body).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Metadata v1 body: brokers: 2147483647 elements of at least 12 bytes do not fit in the 8 bytes remaining"
    );
    // v12: an isr_nodes compact count of 2^32 - 2.
    let mut b = BytesMut::new();
    b.put_i32(0); // throttle
    b.put_u8(1); // brokers: empty
    b.put_u8(0); // cluster_id: null
    b.put_i32(-1); // controller
    b.put_u8(2); // topics: 1
    b.put_i16(0);
    b.put_u8(2);
    b.put_slice(b"t");
    b.put_slice(&[0; 16]);
    b.put_u8(0);
    b.put_u8(2); // partitions: 1
    b.put_i16(0);
    b.put_i32(0);
    b.put_i32(1);
    b.put_i32(0);
    b.put_u8(1); // replicas: empty
    b.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // isr: 2^32 - 2
    b.put_slice(&[0; 8]);
    let err = decode_metadata_response(12, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Metadata v12 body: topics[0].partitions[0].isr_nodes: 4294967294 elements of at least 4 bytes do not fit in the 8 bytes remaining"
    );
}

#[test]
fn malformed_fields_name_the_field() {
    // v1 broker host null.
    let mut b = BytesMut::new();
    b.put_i32(1);
    b.put_i32(1);
    b.put_i16(-1);
    b.put_i32(9092);
    b.put_i16(-1);
    b.put_i32(0);
    b.put_i32(0);
    let err = decode_metadata_response(1, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Metadata v1 body: brokers[0].host: null where the schema does not allow it"
    );
    // v1 topic name null (nullable only from v12).
    let mut b = BytesMut::new();
    b.put_i32(0);
    b.put_i32(-1);
    b.put_i32(1);
    b.put_i16(0);
    b.put_i16(-1);
    b.put_u8(0);
    b.put_i32(0);
    let err = decode_metadata_response(1, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Metadata v1 body: topics[0].name: null where the schema does not allow it"
    );
    // Invalid UTF-8 in a rack.
    let mut b = BytesMut::new();
    b.put_i32(1);
    b.put_i32(1);
    b.put_i16(1);
    b.put_slice(b"h");
    b.put_i32(9092);
    b.put_i16(1);
    b.put_u8(0xff);
    b.put_i32(0);
    b.put_i32(0);
    let err = decode_metadata_response(1, b.freeze()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode Metadata v1 body: brokers[0].rack: string is not valid UTF-8"
    );
}

#[test]
fn strings_are_slices_of_the_body() {
    let body = encode(&sample(12), 12);
    let range = body.as_ptr_range();
    let ours = decode_metadata_response(12, body.clone()).unwrap();
    assert!(range.contains(&ours.brokers[0].host.as_ptr()));
}

#[test]
fn truncated_sample_fails_at_every_length() {
    for version in MIN_VERSION..=MAX_VERSION {
        let body = encode(&sample(version), version);
        for len in 0..body.len() {
            assert!(
                decode_metadata_response(version, body.slice(..len)).is_err(),
                "v{version} cut at {len} decoded"
            );
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

fn name() -> impl Strategy<Value = StrBytes> {
    "[a-zA-Z0-9._-]{0,16}|\\PC{0,6}".prop_map(StrBytes::from_string)
}

fn ids() -> impl Strategy<Value = Vec<BrokerId>> {
    prop::collection::vec(any::<i32>().prop_map(BrokerId), 0..4)
}

fn response(version: i16) -> impl Strategy<Value = MetadataResponse> {
    let flexible = version >= 9;
    let broker = (
        any::<i32>(),
        name(),
        any::<i32>(),
        prop::option::of(name()),
        tags(0),
    )
        .prop_map(move |(id, host, port, rack, unknown)| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(id);
            b.host = host;
            b.port = port;
            if version >= 1 {
                b.rack = rack;
            }
            if flexible {
                b.unknown_tagged_fields = unknown;
            }
            b
        });
    let partition = (
        (any::<i16>(), any::<i32>(), any::<i32>(), any::<i32>()),
        (ids(), ids(), ids()),
        tags(0),
    )
        .prop_map(
            move |((error, index, leader, epoch), (replicas, isr, offline), unknown)| {
                let mut p = MetadataResponsePartition::default();
                p.error_code = error;
                p.partition_index = index;
                p.leader_id = BrokerId(leader);
                if version >= 7 {
                    p.leader_epoch = epoch;
                }
                p.replica_nodes = replicas;
                p.isr_nodes = isr;
                if version >= 5 {
                    p.offline_replicas = offline;
                }
                if flexible {
                    p.unknown_tagged_fields = unknown;
                }
                p
            },
        );
    let topic = (
        (
            any::<i16>(),
            prop::option::of(name()),
            any::<[u8; 16]>(),
            any::<bool>(),
        ),
        prop::collection::vec(partition, 0..3),
        any::<i32>(),
        tags(0),
    )
        .prop_map(
            move |((error, name, id, internal), partitions, ops, unknown)| {
                let mut t = MetadataResponseTopic::default();
                t.error_code = error;
                t.name = match name {
                    None if version >= 12 => None,
                    other => Some(TopicName(other.unwrap_or_default())),
                };
                if version >= 10 {
                    t.topic_id = Vec::from(id).try_into().unwrap();
                }
                if version >= 1 {
                    t.is_internal = internal;
                }
                t.partitions = partitions;
                if version >= 8 {
                    t.topic_authorized_operations = ops;
                }
                if flexible {
                    t.unknown_tagged_fields = unknown;
                }
                t
            },
        );
    (
        (
            any::<i32>(),
            prop::option::of(name()),
            any::<i32>(),
            any::<i32>(),
        ),
        prop::collection::vec(broker, 0..3),
        prop::collection::vec(topic, 0..3),
        tags(0),
    )
        .prop_map(
            move |((throttle, cluster, controller, ops), brokers, topics, unknown)| {
                let mut r = MetadataResponse::default();
                if version >= 3 {
                    r.throttle_time_ms = throttle;
                }
                r.brokers = brokers;
                if version >= 2 {
                    r.cluster_id = cluster;
                }
                if version >= 1 {
                    r.controller_id = BrokerId(controller);
                }
                r.topics = topics;
                if (8..=10).contains(&version) {
                    r.cluster_authorized_operations = ops;
                }
                if flexible {
                    r.unknown_tagged_fields = unknown;
                }
                r
            },
        )
}

fn versioned_response() -> impl Strategy<Value = (i16, MetadataResponse)> {
    (MIN_VERSION..=MAX_VERSION).prop_flat_map(|v| response(v).prop_map(move |r| (v, r)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever kafka-protocol encodes, we decode to what kafka-protocol
    /// decodes (less unknown tagged fields).
    #[test]
    fn decodes_what_kafka_protocol_encodes((version, response) in versioned_response()) {
        let body = encode(&response, version);
        let ours = decode_metadata_response(version, body.clone()).unwrap();
        prop_assert_eq!(&ours, &theirs(version, &body));
        prop_assert_eq!(ours.topics.len(), response.topics.len());
    }

    /// Every proper prefix of a valid body is an error, never a panic.
    #[test]
    fn truncated_bodies_are_errors((version, response) in versioned_response()) {
        let body = encode(&response, version);
        for len in 0..body.len() {
            prop_assert!(decode_metadata_response(version, body.slice(..len)).is_err());
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
            let _ = decode_metadata_response(version, Bytes::from(bytes));
        }
    }

    /// Arbitrary bytes at any version decode or fail, never panic.
    #[test]
    fn arbitrary_bytes_never_panic(version in -1i16..14, bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_metadata_response(version, Bytes::from(bytes));
    }
}
