//! The batch consumer end to end against real brokers; every promise is
//! checked by reading the committed offsets back from the broker.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafee_batching::{
    AckStrategy, Batch, BatchConfig, BatchResult, Consumer, DeadLetterConfig, DeadLetterInfo,
    Handler, HandlerError, Message, Mode,
};
use kafee_client::admin::{Admin, CreateTopicsOptions, NewTopic, TopicPartition};
use kafee_client::cluster::Cluster;
use kafee_client::consumer::{ConsumerConfig, ConsumerEvent, GroupConsumer};
use kafee_client::group::GroupConfig;
use kafee_client::produce::{Producer, ProducerConfig};

mod common;

use common::{bootstrap, topic, unique};

macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(&super::bootstrap("kafka")).await;
                }
            )*
        }
        mod tansu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(&super::bootstrap("tansu")).await;
                }
            )*
        }
    };
}

on_both_brokers!(
    all_or_nothing_retries_the_same_batch_then_commits,
    best_effort_dead_letters_failures_with_headers_and_commits_past_them,
    idle_topic_batch_is_handled_on_timeout_without_more_messages,
    in_flight_limit_holds_across_partitions_and_order_holds_per_partition,
    missing_dead_letter_topic_commits_nothing_past_the_failed_message,
    a_panicking_handler_fails_the_batch_and_the_consumer_goes_on,
);

/// The group's committed offsets, read back from the broker.
async fn committed(cluster: &Cluster, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    let config = ConsumerConfig::new(
        GroupConfig::builder(group, [topic])
            .session_timeout(Duration::from_secs(10))
            .heartbeat_interval(Duration::from_millis(500))
            .rebalance_timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    let mut consumer = GroupConsumer::start(cluster.clone(), config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let out = loop {
        match tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap()
        {
            ConsumerEvent::Assigned { partitions, .. } => {
                break partitions
                    .into_iter()
                    .map(|a| (a.tp.partition, a.committed.map(|c| c.offset)))
                    .collect();
            }
            ConsumerEvent::Revoked(r) => r.done(),
            _ => {}
        }
    };
    consumer.leave();
    loop {
        match tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap()
        {
            ConsumerEvent::Stopped(_) => break,
            ConsumerEvent::Revoked(r) => r.done(),
            _ => {}
        }
    }
    out
}

fn builder(addr: &str, group: &str, topic: &str, batch: BatchConfig) -> Consumer {
    Consumer::builder(addr, group)
        .topics([topic])
        .batch(batch)
        .session_timeout(Duration::from_secs(10), Duration::from_millis(500))
        .rebalance_timeout(Duration::from_secs(60))
        .fetch_max_wait(Duration::from_millis(100))
        .build()
        .unwrap()
}

async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records every batch; fails offsets in `fail` for their first `times`
/// attempts.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<(i32, Vec<i64>, u32)>>,
    fail: HashSet<i64>,
    times: u32,
    dead: Mutex<Vec<(i64, DeadLetterInfo)>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    delay: Duration,
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let offsets: Vec<i64> = batch.messages().iter().map(Message::offset).collect();
        self.batches
            .lock()
            .unwrap()
            .push((batch.partition(), offsets.clone(), batch.attempt()));
        self.running.fetch_sub(1, Ordering::SeqCst);
        let failed: Vec<usize> = offsets
            .iter()
            .enumerate()
            .filter(|(_, o)| self.fail.contains(o) && batch.attempt() <= self.times)
            .map(|(i, _)| i)
            .collect();
        if failed.is_empty() {
            BatchResult::Ok
        } else {
            BatchResult::Partial(failed)
        }
    }

    async fn handle_dead_letter(&self, message: &Message, info: &DeadLetterInfo) {
        self.dead
            .lock()
            .unwrap()
            .push((message.offset(), info.clone()));
    }
}

struct Shared(Arc<Recorder>);

#[async_trait::async_trait]
impl Handler for Shared {
    async fn handle_message(&self, m: &Message) -> Result<(), HandlerError> {
        self.0.handle_message(m).await
    }
    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        self.0.handle_batch(batch).await
    }
    async fn handle_dead_letter(&self, message: &Message, info: &DeadLetterInfo) {
        self.0.handle_dead_letter(message, info).await
    }
}

async fn all_or_nothing_retries_the_same_batch_then_commits(addr: &str) {
    let (cluster, topic) = topic(addr, 1, 10).await;
    let group = unique("g");
    let rec = Arc::new(Recorder {
        fail: [3].into(),
        times: 2,
        ..Recorder::default()
    });
    let batch = BatchConfig::builder()
        .mode(Mode::Batch)
        .size(5)
        .timeout(Duration::from_millis(200))
        .ack_strategy(AckStrategy::AllOrNothing)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .commit_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let running = builder(addr, &group, &topic, batch)
        .run(Shared(rec.clone()))
        .await
        .unwrap();
    wait_until("all batches handled", 60, || {
        rec.batches
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b.1.contains(&9))
            .count()
            == 1
    })
    .await;
    let stats = running.shutdown().await.unwrap();
    let batches = rec.batches.lock().unwrap().clone();
    // Batch 0..4 three times (two failures, then success), same messages.
    let first: Vec<&(i32, Vec<i64>, u32)> =
        batches.iter().filter(|b| b.1.first() == Some(&0)).collect();
    assert_eq!(first.len(), 3, "{batches:?}");
    for (i, b) in first.iter().enumerate() {
        assert_eq!(b.1, vec![0, 1, 2, 3, 4]);
        assert_eq!(b.2, i as u32 + 1);
    }
    assert!(stats.commits >= 1);
    assert_eq!(committed(&cluster, &group, &topic).await[&0], Some(10));
}

async fn best_effort_dead_letters_failures_with_headers_and_commits_past_them(addr: &str) {
    let (cluster, topic) = topic(addr, 2, 10).await;
    let dlq = format!("{topic}-dlq");
    Admin::new(cluster.clone())
        .create_topics(&[NewTopic::new(&dlq, 1, 1)], CreateTopicsOptions::default())
        .await
        .unwrap();
    let group = unique("g");
    let rec = Arc::new(Recorder {
        fail: [2, 7].into(),
        times: u32::MAX,
        ..Recorder::default()
    });
    let batch = BatchConfig::builder()
        .mode(Mode::Batch)
        .size(10)
        .timeout(Duration::from_millis(200))
        .ack_strategy(AckStrategy::BestEffort)
        .dead_letter(DeadLetterConfig::new(&dlq).max_retries(1))
        .commit_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let running = builder(addr, &group, &topic, batch)
        .run(Shared(rec.clone()))
        .await
        .unwrap();
    wait_until("dead letters", 60, || rec.dead.lock().unwrap().len() == 4).await;
    let stats = running.shutdown().await.unwrap();
    assert_eq!(stats.dead_lettered, 4);
    let committed = committed(&cluster, &group, &topic).await;
    assert_eq!(committed[&0], Some(10));
    assert_eq!(committed[&1], Some(10));
    // The dead-letter topic holds the four records with their headers.
    let dead = rec.dead.lock().unwrap().clone();
    for (_, info) in &dead {
        assert_eq!(info.topic, dlq);
        assert_eq!(info.group_id, group);
    }
    let mut reader = GroupConsumer::start(
        cluster.clone(),
        ConsumerConfig::new(
            GroupConfig::builder(unique("dlq-reader"), [dlq.as_str()])
                .build()
                .unwrap(),
        ),
    );
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 4 {
        match tokio::time::timeout_at(deadline, reader.next())
            .await
            .unwrap()
        {
            ConsumerEvent::Records(f) => {
                for r in f.records() {
                    let r = r.unwrap();
                    let h: BTreeMap<String, String> = r
                        .headers()
                        .map(|h| {
                            (
                                String::from_utf8_lossy(h.key).into_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect();
                    assert_eq!(h["h"], "v");
                    assert_eq!(h["kafee.dlq.source.topic"], topic);
                    assert_eq!(h["kafee.dlq.consumer.group"], group);
                    assert!(!h["kafee.dlq.error"].is_empty());
                    let offset: i64 = h["kafee.dlq.source.offset"].parse().unwrap();
                    let partition: i32 = h["kafee.dlq.source.partition"].parse().unwrap();
                    let value = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
                    assert_eq!(value, format!("{partition}-{offset}"));
                    seen.push((partition, offset));
                }
            }
            ConsumerEvent::Revoked(r) => r.done(),
            _ => {}
        }
    }
    seen.sort();
    assert_eq!(seen, vec![(0, 2), (0, 7), (1, 2), (1, 7)]);
    let _ = TopicPartition::new("", 0);
}

async fn idle_topic_batch_is_handled_on_timeout_without_more_messages(addr: &str) {
    let (_cluster, topic) = topic(addr, 1, 3).await;
    let group = unique("g");
    let rec = Arc::new(Recorder::default());
    let batch = BatchConfig::builder()
        .mode(Mode::Batch)
        .size(100)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let running = builder(addr, &group, &topic, batch)
        .run(Shared(rec.clone()))
        .await
        .unwrap();
    wait_until("the timed-out batch", 60, || {
        !rec.batches.lock().unwrap().is_empty()
    })
    .await;
    running.shutdown().await.unwrap();
    let batches = rec.batches.lock().unwrap().clone();
    assert_eq!(batches, vec![(0, vec![0, 1, 2], 1)]);
}

async fn in_flight_limit_holds_across_partitions_and_order_holds_per_partition(addr: &str) {
    let (cluster, topic) = topic(addr, 6, 20).await;
    let group = unique("g");
    let rec = Arc::new(Recorder {
        delay: Duration::from_millis(30),
        ..Recorder::default()
    });
    let batch = BatchConfig::builder()
        .mode(Mode::Batch)
        .size(5)
        .timeout(Duration::from_millis(100))
        .max_in_flight_batches(3)
        .commit_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let running = builder(addr, &group, &topic, batch)
        .run(Shared(rec.clone()))
        .await
        .unwrap();
    wait_until("120 records", 60, || {
        rec.batches
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.1.len())
            .sum::<usize>()
            == 120
    })
    .await;
    running.shutdown().await.unwrap();
    assert!(rec.max_running.load(Ordering::SeqCst) <= 3);
    assert!(
        rec.max_running.load(Ordering::SeqCst) >= 2,
        "no concurrency at all"
    );
    let mut per: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, offsets, _) in rec.batches.lock().unwrap().iter() {
        per.entry(*p).or_default().extend(offsets);
    }
    for p in 0..6 {
        assert_eq!(per[&p], (0..20).collect::<Vec<i64>>(), "partition {p}");
    }
    let committed = committed(&cluster, &group, &topic).await;
    assert!(committed.values().all(|c| *c == Some(20)), "{committed:?}");
}

async fn missing_dead_letter_topic_commits_nothing_past_the_failed_message(addr: &str) {
    let (cluster, topic) = topic(addr, 1, 10).await;
    let group = unique("g");
    let rec = Arc::new(Recorder {
        fail: [4].into(),
        times: u32::MAX,
        ..Recorder::default()
    });
    // A dead-letter producer that gives up quickly on the missing topic.
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig::builder()
            .delivery_timeout(Duration::from_secs(1))
            .linger(Duration::from_millis(1))
            .request_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    let batch = BatchConfig::builder()
        .mode(Mode::Batch)
        .size(10)
        .timeout(Duration::from_millis(200))
        .ack_strategy(AckStrategy::BestEffort)
        .dead_letter(DeadLetterConfig::new(unique("missing-dlq")).max_retries(1))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .shutdown_deadline(Duration::from_secs(2))
        .commit_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let running = Consumer::builder(addr, &group)
        .topics([topic.as_str()])
        .batch(batch)
        .session_timeout(Duration::from_secs(10), Duration::from_millis(500))
        .rebalance_timeout(Duration::from_secs(60))
        .fetch_max_wait(Duration::from_millis(100))
        .dead_letter_producer(producer)
        .build()
        .unwrap()
        .run(Shared(rec.clone()))
        .await
        .unwrap();
    wait_until("the failing batch", 60, || {
        !rec.batches.lock().unwrap().is_empty()
    })
    .await;
    // Let the dead-letter write fail a few times.
    tokio::time::sleep(Duration::from_secs(4)).await;
    running.shutdown().await.unwrap();
    assert!(rec.dead.lock().unwrap().is_empty());
    assert_eq!(committed(&cluster, &group, &topic).await[&0], Some(4));
}

/// Panics on its first call; counts calls and remembers the batches.
#[derive(Default)]
struct PanicsOnce {
    calls: AtomicUsize,
    batches: Mutex<Vec<(Vec<i64>, u32)>>,
}

#[async_trait::async_trait]
impl Handler for PanicsOnce {
    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        let offsets: Vec<i64> = batch.messages().iter().map(Message::offset).collect();
        self.batches
            .lock()
            .unwrap()
            .push((offsets, batch.attempt()));
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("the sink blew up");
        }
        BatchResult::Ok
    }
}

struct SharedPanics(Arc<PanicsOnce>);

#[async_trait::async_trait]
impl Handler for SharedPanics {
    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        self.0.handle_batch(batch).await
    }
}

async fn a_panicking_handler_fails_the_batch_and_the_consumer_goes_on(addr: &str) {
    let (cluster, topic) = topic(addr, 1, 4).await;
    let group = unique("g");
    let handler = Arc::new(PanicsOnce::default());
    let batch = BatchConfig::builder()
        .mode(Mode::Batch)
        .size(4)
        .timeout(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .commit_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let running = builder(addr, &group, &topic, batch)
        .run(SharedPanics(handler.clone()))
        .await
        .unwrap();
    wait_until("the retry after the panic", 60, || {
        handler.calls.load(Ordering::SeqCst) >= 2
    })
    .await;
    let stats = running.shutdown().await.unwrap();
    // The panic failed the batch (all_or_nothing): the same batch again.
    let batches = handler.batches.lock().unwrap().clone();
    assert_eq!(batches[0], (vec![0, 1, 2, 3], 1));
    assert_eq!(batches[1], (vec![0, 1, 2, 3], 2));
    assert_eq!(stats.failed, 4);
    assert_eq!(committed(&cluster, &group, &topic).await[&0], Some(4));
}
