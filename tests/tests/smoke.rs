//! Proves the harness: each broker started by `scripts/broker` answers on loopback, advertises the APIs a
//! consumer group needs, names itself at the address we connected to, and creates topics for tests.
// The scenario lives in a helper shared by both tests: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use kafee_tests::wire::Connection;
use kafee_tests::Broker;
use kafka_protocol::messages::ApiKey;

/// APIs a group consumer (and the test kit's topic setup) cannot do without.
const REQUIRED_APIS: [ApiKey; 10] = [
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::SyncGroup,
    ApiKey::CreateTopics,
];

fn smoke(broker: Broker) {
    let address = broker.bootstrap();
    let mut connection =
        Connection::connect(&address).unwrap_or_else(|err| panic!("{broker} at {address}: {err}"));

    // ApiVersions: every required API is advertised with a sane range.
    assert_eq!(connection.api_versions().error_code, 0);
    for api in REQUIRED_APIS {
        let range = connection.broker_versions(api);
        let Some((min, max)) = range else {
            panic!("{broker} at {address} does not advertise {api:?}");
        };
        assert!(
            0 <= min && min <= max,
            "{broker}: {api:?} advertised as {min}..={max}"
        );
    }

    // Metadata: the broker list names 127.0.0.1 at the port we connected to.
    let port: i32 = address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{address} has no port"));
    let metadata = connection.metadata(None).unwrap();
    assert!(
        metadata
            .brokers
            .iter()
            .any(|b| b.host.as_str() == "127.0.0.1" && b.port == port),
        "{broker}: Metadata brokers {:?} do not include 127.0.0.1:{port}",
        metadata
            .brokers
            .iter()
            .map(|b| format!("{}@{}:{}", b.node_id.0, b.host, b.port))
            .collect::<Vec<_>>()
    );

    // A topic with 3 partitions shows up in Metadata with a leader for each, on a known broker.
    let topic = broker.create_topic("smoke", 3);
    let metadata = connection.metadata(Some(&[topic.as_str()])).unwrap();
    let found = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .unwrap_or_else(|| panic!("{broker}: topic {topic} missing from Metadata"));
    assert_eq!(found.error_code, 0, "{broker}: topic {topic}");
    let mut partitions: Vec<i32> = found.partitions.iter().map(|p| p.partition_index).collect();
    partitions.sort_unstable();
    assert_eq!(partitions, [0, 1, 2], "{broker}: topic {topic}");
    for partition in &found.partitions {
        assert_eq!(
            partition.error_code, 0,
            "{broker}: {topic}/{}",
            partition.partition_index
        );
        assert!(
            metadata
                .brokers
                .iter()
                .any(|b| b.node_id == partition.leader_id),
            "{broker}: {topic}/{} led by {} which is not among the brokers",
            partition.partition_index,
            partition.leader_id.0
        );
    }

    // Auto topic creation is off (Kafka) or at least not triggered by our Metadata request.
    let absent = kafee_tests::unique_name("absent");
    let metadata = connection.metadata(Some(&[absent.as_str()])).unwrap();
    let listed = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == absent));
    assert!(
        listed.is_none_or(|t| t.error_code != 0),
        "{broker}: Metadata for an absent topic created it"
    );

    connection.delete_topic(&topic).unwrap();
}

#[test]
fn kafka_answers_api_versions_metadata_and_creates_topics() {
    smoke(Broker::Kafka);
}

#[test]
fn tansu_answers_api_versions_metadata_and_creates_topics() {
    smoke(Broker::Tansu);
}
