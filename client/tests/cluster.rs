//! Connections, metadata and admin requests against real brokers: Apache
//! Kafka and Tansu (`scripts/broker up kafka|tansu`). Every scenario runs
//! against both.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::time::Duration;

use kafee_client::admin::{
    Admin, CreateTopicsOptions, DeleteTopicsOptions, IsolationLevel, NewTopic, OffsetSpec,
    TopicPartition,
};
use kafee_client::cluster::Cluster;
use kafee_client::config::ClientConfig;
use kafee_client::conn::{ConnSettings, Connection};
use kafee_client::error::ClientError;
use kafee_protocol::error::ErrorCode;
use kafka_protocol::messages::ApiKey;

fn config(addr: &str) -> ClientConfig {
    ClientConfig::builder()
        .bootstrap_servers([addr])
        .client_id("kafee-client-tests")
        .request_timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn admin(addr: &str) -> Admin {
    Admin::new(Cluster::connect(config(addr)).await.unwrap())
}

on_both_brokers!(
    connect_negotiates_the_consumer_apis,
    bootstrap_skips_a_dead_server_and_names_all_when_none_answers,
    created_topic_shows_in_metadata_with_leaders,
    creating_an_existing_topic_fails_unless_asked_to_tolerate_it,
    deleted_topic_disappears_from_metadata,
    list_offsets_of_an_empty_topic_are_zero_and_zero,
    list_offsets_of_an_unknown_topic_is_a_per_partition_error,
    coordinator_lookup_returns_a_live_connection,
    pipelined_requests_on_one_connection_all_complete,
    thousands_of_pipelined_requests_complete,
);

async fn connect_negotiates_the_consumer_apis(addr: &str) {
    let conn = Connection::connect(addr, &ConnSettings::from(&config(addr)))
        .await
        .unwrap();
    for api in [
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::SyncGroup,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
    ] {
        let v = conn
            .version(api)
            .unwrap_or_else(|e| panic!("{addr}: {api:?}: {e}"));
        let row = kafee_protocol::versions::supported(api).unwrap();
        assert!(row.min <= v && v <= row.max, "{api:?} v{v}");
    }
    assert!(!conn.is_dead());
}

async fn bootstrap_skips_a_dead_server_and_names_all_when_none_answers(addr: &str) {
    // Port 1 on loopback: nothing listens there.
    let dead = "127.0.0.1:1";
    let c = ClientConfig::builder()
        .bootstrap_servers([dead, addr])
        .build()
        .unwrap();
    let cluster = Cluster::connect(c).await.unwrap();
    assert!(cluster.metadata().brokers().count() >= 1);

    let c = ClientConfig::builder()
        .bootstrap_servers([dead, "127.0.0.1:2"])
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = Cluster::connect(c).await.unwrap_err();
    assert!(matches!(err, ClientError::Bootstrap { ref tried, .. } if tried.len() == 2));
    assert!(
        err.to_string()
            .starts_with("no bootstrap server answered (tried 127.0.0.1:1, 127.0.0.1:2): connecting to 127.0.0.1:2"),
        "{err}"
    );
}

async fn created_topic_shows_in_metadata_with_leaders(addr: &str) {
    let admin = admin(addr).await;
    let topic = common::unique_topic("meta");
    admin
        .create_topics(
            &[NewTopic::new(&topic, 3, 1).config("retention.ms", "3600000")],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    let info = admin.cluster().topic(&topic).await.unwrap();
    assert_eq!(info.partitions.len(), 3);
    assert!(info.is_ready(), "{info:?}");
    for p in 0..3 {
        let (leader, _epoch) = admin.cluster().leader(&topic, p).await.unwrap();
        assert!(admin.cluster().metadata().broker(leader).is_some());
        let (conn, _) = admin.cluster().leader_connection(&topic, p).await.unwrap();
        assert!(!conn.is_dead());
    }
    // A partition past the end is an error naming it.
    let err = admin.cluster().leader(&topic, 7).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
    admin
        .delete_topics(&[&topic], DeleteTopicsOptions::default())
        .await
        .unwrap();
}

async fn creating_an_existing_topic_fails_unless_asked_to_tolerate_it(addr: &str) {
    let admin = admin(addr).await;
    let topic = common::unique_topic("exists");
    let new = [NewTopic::new(&topic, 1, 1)];
    admin
        .create_topics(&new, CreateTopicsOptions::default())
        .await
        .unwrap();
    let err = admin
        .create_topics(&new, CreateTopicsOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS), "{err}");
    assert!(err.to_string().contains(&topic), "{err}");
    admin
        .create_topics(
            &new,
            CreateTopicsOptions {
                if_not_exists: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    admin
        .delete_topics(&[&topic], DeleteTopicsOptions::default())
        .await
        .unwrap();
}

async fn deleted_topic_disappears_from_metadata(addr: &str) {
    let admin = admin(addr).await;
    let topic = common::unique_topic("delete");
    admin
        .create_topics(
            &[NewTopic::new(&topic, 2, 1)],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    admin
        .delete_topics(&[&topic], DeleteTopicsOptions::default())
        .await
        .unwrap();
    let err = admin.cluster().topic(&topic).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{err}"
    );
    // Deleting it again: an error, unless asked to tolerate it.
    let err = admin
        .delete_topics(&[&topic], DeleteTopicsOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{err}"
    );
    admin
        .delete_topics(
            &[&topic],
            DeleteTopicsOptions {
                if_exists: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

async fn list_offsets_of_an_empty_topic_are_zero_and_zero(addr: &str) {
    let admin = admin(addr).await;
    let topic = common::unique_topic("offsets");
    admin
        .create_topics(
            &[NewTopic::new(&topic, 2, 1)],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    let tps = [
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    ];
    for spec in [OffsetSpec::Earliest, OffsetSpec::Latest] {
        for isolation in [
            IsolationLevel::ReadUncommitted,
            IsolationLevel::ReadCommitted,
        ] {
            let listed = admin.list_offsets(&tps, spec, isolation).await.unwrap();
            assert_eq!(listed.len(), 2);
            for (l, tp) in listed.iter().zip(&tps) {
                assert_eq!(&l.topic_partition, tp);
                let offset = l
                    .result
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{spec:?}: {e}"));
                assert_eq!(offset.offset, 0, "{spec:?} {isolation:?} {tp:?}");
            }
        }
    }
    // No record has a timestamp after now: the answer is the end (0), or -1.
    let listed = admin
        .list_offsets(
            &tps[..1],
            OffsetSpec::Timestamp(4_102_444_800_000),
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    let offset = listed[0].result.as_ref().unwrap().offset;
    assert!(offset == 0 || offset == -1, "{offset}");
    admin
        .delete_topics(&[&topic], DeleteTopicsOptions::default())
        .await
        .unwrap();
}

async fn list_offsets_of_an_unknown_topic_is_a_per_partition_error(addr: &str) {
    let admin = admin(addr).await;
    let known = common::unique_topic("known");
    admin
        .create_topics(
            &[NewTopic::new(&known, 1, 1)],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    let missing = common::unique_topic("missing");
    let listed = admin
        .list_offsets(
            &[
                TopicPartition::new(&missing, 0),
                TopicPartition::new(&known, 0),
            ],
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    let err = listed[0].result.as_ref().unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{err}"
    );
    assert!(err.to_string().contains(&missing), "{err}");
    assert_eq!(listed[1].result.as_ref().unwrap().offset, 0);
    // Asking about a topic must not have created it.
    let err = admin.cluster().topic(&missing).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
    admin
        .delete_topics(&[&known], DeleteTopicsOptions::default())
        .await
        .unwrap();
}

async fn coordinator_lookup_returns_a_live_connection(addr: &str) {
    let cluster = Cluster::connect(config(addr)).await.unwrap();
    let group = common::unique_topic("group");
    let (node_id, conn) = cluster.coordinator(&group).await.unwrap();
    assert!(node_id >= 0);
    assert!(!conn.is_dead());
    // The coordinator answers group APIs: a heartbeat from a stranger is
    // refused with a group error, not a connection or version error.
    let response = conn
        .send_with(Duration::from_secs(10), |_| {
            kafka_protocol::messages::HeartbeatRequest::default()
                .with_group_id(kafka_protocol::messages::GroupId(
                    kafka_protocol::protocol::StrBytes::from_string(group.clone()),
                ))
                .with_generation_id(1)
                .with_member_id(kafka_protocol::protocol::StrBytes::from_static_str(
                    "nobody",
                ))
        })
        .await
        .unwrap()
        .1;
    assert_ne!(response.error_code, 0);
}

async fn pipelined_requests_on_one_connection_all_complete(addr: &str) {
    let conn = Connection::connect(addr, &ConnSettings::from(&config(addr)))
        .await
        .unwrap();
    let v = conn.version(ApiKey::Metadata).unwrap();
    let calls: Vec<_> = (0..32)
        .map(|_| {
            conn.start(&kafee_client::metadata::metadata_request(v, &[]), v)
                .unwrap()
        })
        .collect();
    for call in calls {
        let response = call.wait(Duration::from_secs(10)).await.unwrap();
        assert!(!response.brokers.is_empty());
    }
    assert_eq!(conn.in_flight(), 0);
}

/// Keeps 256 requests in flight on one connection for 5000 requests: every
/// one answered, none lost or crossed. Prints the rate (run with
/// `--nocapture` to see it).
async fn thousands_of_pipelined_requests_complete(addr: &str) {
    let conn = Connection::connect(addr, &ConnSettings::from(&config(addr)))
        .await
        .unwrap();
    let v = conn.version(ApiKey::Metadata).unwrap();
    let request = kafee_client::metadata::metadata_request(v, &[]);
    let total = 5000;
    let window = 256;
    let started = std::time::Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    let mut done = 0;
    for i in 0..total {
        in_flight.push_back(conn.start(&request, v).unwrap());
        if in_flight.len() == window || i + 1 == total {
            while let Some(call) = in_flight.pop_front() {
                let response = call.wait(Duration::from_secs(20)).await.unwrap();
                assert!(!response.brokers.is_empty());
                done += 1;
                if in_flight.len() < window / 2 && i + 1 < total {
                    break;
                }
            }
        }
    }
    while let Some(call) = in_flight.pop_front() {
        call.wait(Duration::from_secs(20)).await.unwrap();
        done += 1;
    }
    let elapsed = started.elapsed();
    assert_eq!(done, total);
    assert_eq!(conn.in_flight(), 0);
    println!(
        "{addr}: {total} pipelined Metadata requests in {elapsed:?} ({:.0}/s)",
        total as f64 / elapsed.as_secs_f64()
    );
}
