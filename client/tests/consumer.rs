//! The group consumer against real brokers: membership, fetching, commits
//! read back. Every scenario runs against Apache Kafka and Tansu.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use kafee_client::admin::{Admin, CreateTopicsOptions, NewTopic, TopicPartition};
use kafee_client::cluster::Cluster;
use kafee_client::config::ClientConfig;
use kafee_client::consumer::{ConsumerConfig, ConsumerEvent, GroupConsumer, OffsetToCommit};
use kafee_client::group::GroupConfig;
use kafee_client::produce::{Producer, ProducerConfig, ProducerRecord};

fn config(addr: &str) -> ClientConfig {
    ClientConfig::builder()
        .bootstrap_servers([addr])
        .client_id("kafee-consumer-tests")
        .request_timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

on_both_brokers!(
    a_member_reads_every_partition_in_order_and_its_commits_survive_a_restart,
    two_members_split_the_partitions_and_a_leaver_hands_them_over,
    dropped_consumer_leaves_the_group_and_its_partitions_move,
);

/// Produces `values` to `topic`/`partition` (acks=all) with kafee's producer.
async fn produce(cluster: &Cluster, topic: &str, partition: i32, values: &[String]) {
    let producer = Producer::new(cluster.clone(), ProducerConfig::builder().build().unwrap());
    let mut pending = Vec::new();
    for v in values {
        let record = ProducerRecord::new(topic)
            .partition(partition)
            .key(Bytes::from_static(b"k"))
            .value(Bytes::from(v.clone()));
        pending.push(producer.enqueue(record).unwrap());
    }
    for p in pending {
        p.await.unwrap();
    }
    producer.close().await;
}

async fn topic_with_records(
    addr: &str,
    partitions: i32,
    per_partition: usize,
) -> (Cluster, String) {
    let cluster = Cluster::connect(config(addr)).await.unwrap();
    let topic = common::unique_topic("consumer");
    Admin::new(cluster.clone())
        .create_topics(
            &[NewTopic::new(&topic, partitions, 1)],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    for p in 0..partitions {
        let values: Vec<String> = (0..per_partition).map(|i| format!("p{p}-{i}")).collect();
        produce(&cluster, &topic, p, &values).await;
    }
    (cluster, topic)
}

fn group_config(group: &str, topic: &str) -> ConsumerConfig {
    let group = GroupConfig::builder(group, [topic])
        .session_timeout(Duration::from_secs(10))
        .heartbeat_interval(Duration::from_millis(500))
        .rebalance_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut config = ConsumerConfig::new(group);
    config.fetch.max_wait = Duration::from_millis(100);
    config
}

/// Reads until `want` records arrived; returns them per partition, and the
/// next offset per partition.
async fn read(
    consumer: &mut GroupConsumer,
    want: usize,
) -> BTreeMap<TopicPartition, Vec<(i64, String)>> {
    let mut got: BTreeMap<TopicPartition, Vec<(i64, String)>> = BTreeMap::new();
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while n < want {
        let event = tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {n} of {want} records within 60 s"));
        match event {
            ConsumerEvent::Records(f) => {
                for r in f.records() {
                    let r = r.unwrap();
                    let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
                    got.entry(f.tp.clone()).or_default().push((r.offset(), v));
                    n += 1;
                }
            }
            ConsumerEvent::Revoked(r) => r.done(),
            ConsumerEvent::Assigned { .. } | ConsumerEvent::Lost(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

async fn leave(mut consumer: GroupConsumer) {
    consumer.leave();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap()
        {
            ConsumerEvent::Stopped(None) => return,
            ConsumerEvent::Stopped(Some(e)) => panic!("stopped with {e}"),
            ConsumerEvent::Revoked(r) => r.done(),
            _ => {}
        }
    }
}

async fn a_member_reads_every_partition_in_order_and_its_commits_survive_a_restart(addr: &str) {
    let (cluster, topic) = topic_with_records(addr, 3, 50).await;
    let group = common::unique_topic("group");
    let mut consumer = GroupConsumer::start(cluster.clone(), group_config(&group, &topic));
    let got = read(&mut consumer, 150).await;
    assert_eq!(got.len(), 3);
    for (tp, records) in &got {
        let expected: Vec<(i64, String)> = (0..50)
            .map(|i| (i as i64, format!("p{}-{i}", tp.partition)))
            .collect();
        assert_eq!(records, &expected, "{tp:?}");
    }
    // Commit partition 0 fully, partition 1 at 20, nothing for 2.
    consumer
        .committer()
        .commit(vec![
            OffsetToCommit {
                tp: TopicPartition::new(&topic, 0),
                offset: 50,
                metadata: Some("kafee:test".into()),
            },
            OffsetToCommit {
                tp: TopicPartition::new(&topic, 1),
                offset: 20,
                metadata: None,
            },
        ])
        .await
        .unwrap();
    leave(consumer).await;

    // A new member of the same group starts at the committed offsets.
    let mut consumer = GroupConsumer::start(cluster.clone(), group_config(&group, &topic));
    let mut assigned = None;
    let mut got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while n < 30 + 50 {
        match tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap()
        {
            ConsumerEvent::Assigned { partitions, .. } => assigned = Some(partitions),
            ConsumerEvent::Records(f) => {
                for r in f.records() {
                    got.entry(f.tp.partition)
                        .or_default()
                        .push(r.unwrap().offset());
                    n += 1;
                }
            }
            ConsumerEvent::Revoked(r) => r.done(),
            other => panic!("unexpected {other:?}"),
        }
    }
    let assigned = assigned.expect("assigned before records");
    let committed: BTreeMap<i32, Option<(i64, String)>> = assigned
        .iter()
        .map(|a| {
            (
                a.tp.partition,
                a.committed.as_ref().map(|c| (c.offset, c.metadata.clone())),
            )
        })
        .collect();
    // Tansu 0.6 does not keep the commit metadata string (it reads back
    // empty); Apache Kafka does.
    let metadata = if addr == common::bootstrap("tansu") {
        ""
    } else {
        "kafee:test"
    };
    assert_eq!(committed[&0], Some((50, metadata.to_owned())));
    assert_eq!(committed[&1].as_ref().map(|c| c.0), Some(20));
    assert_eq!(committed[&2], None);
    assert!(!got.contains_key(&0));
    assert_eq!(got[&1], (20..50).collect::<Vec<_>>());
    assert_eq!(got[&2], (0..50).collect::<Vec<_>>());
    leave(consumer).await;
}

/// Regression: both members share one `Cluster`; when group requests rode
/// the shared pooled connection, A's heartbeat queued behind B's parked
/// JoinGroup and the members kicked each other out every session timeout.
async fn two_members_split_the_partitions_and_a_leaver_hands_them_over(addr: &str) {
    let (cluster, topic) = topic_with_records(addr, 4, 10).await;
    let group = common::unique_topic("group");
    let mut a = GroupConsumer::start(cluster.clone(), group_config(&group, &topic));
    // Wait until A owns everything.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let ConsumerEvent::Assigned { partitions, .. } =
            tokio::time::timeout_at(deadline, a.next()).await.unwrap()
        {
            if partitions.len() == 4 {
                break;
            }
        }
    }
    let mut b = GroupConsumer::start(cluster.clone(), group_config(&group, &topic));
    // A is asked to revoke; both end up with two partitions each.
    let (mut owned_a, mut owned_b) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Converges on a generation where both own two.
    while !(owned_a.len() == 2 && owned_b.len() == 2) {
        tokio::select! {
            e = a.next() => match e {
                ConsumerEvent::Revoked(r) => { owned_a.clear(); r.done() }
                ConsumerEvent::Assigned { partitions, .. } => owned_a = partitions,
                _ => {}
            },
            e = b.next() => match e {
                ConsumerEvent::Revoked(r) => { owned_b.clear(); r.done() }
                ConsumerEvent::Assigned { partitions, .. } => owned_b = partitions,
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => panic!("no rebalance within 60 s"),
        }
    }
    assert_eq!(owned_a.len(), 2);
    assert_eq!(owned_b.len(), 2);
    let mut all: Vec<i32> = owned_a
        .iter()
        .chain(&owned_b)
        .map(|p| p.tp.partition)
        .collect();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);

    // A leaves: B gets all four.
    let leaving = tokio::spawn(leave(a));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, b.next()).await.unwrap() {
            ConsumerEvent::Revoked(r) => r.done(),
            ConsumerEvent::Assigned { partitions, .. } if partitions.len() == 4 => break,
            _ => {}
        }
    }
    leaving.await.unwrap();
    leave(b).await;
}

/// Regression: the membership task kept a strong sender of its own command
/// channel, so dropping every handle never closed it and the dropped member
/// stayed in the group, heartbeating, with partitions nobody handled.
async fn dropped_consumer_leaves_the_group_and_its_partitions_move(addr: &str) {
    let (cluster, topic) = topic_with_records(addr, 2, 1).await;
    let group = common::unique_topic("group");
    let mut a = GroupConsumer::start(cluster.clone(), group_config(&group, &topic));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let ConsumerEvent::Assigned { partitions, .. } =
            tokio::time::timeout_at(deadline, a.next()).await.unwrap()
        {
            if partitions.len() == 2 {
                break;
            }
        }
    }
    drop(a);
    // B gets both partitions well before A's 10 s session timeout would
    // have expired it.
    let started = tokio::time::Instant::now();
    let mut b = GroupConsumer::start(cluster.clone(), group_config(&group, &topic));
    let deadline = started + Duration::from_secs(8);
    loop {
        match tokio::time::timeout_at(deadline, b.next())
            .await
            .expect("the dropped member still holds its partitions")
        {
            ConsumerEvent::Revoked(r) => r.done(),
            ConsumerEvent::Assigned { partitions, .. } if partitions.len() == 2 => break,
            _ => {}
        }
    }
    leave(b).await;
}
