//! The Kafee batch-processing guide's throughput scenario against a real
//! Kafka broker.
//!
//! 200 messages with 150-byte values in one partition; single-message mode
//! with a handler sleeping 5 ms per message; batch mode with sizes 10 and 50
//! and a handler sleeping 10 ms per batch; `max_in_flight_batches = 1`,
//! commits on. Then 8 partitions with **200 messages per partition** (1,600 in
//! all) and `max_in_flight_batches` 1, 3 and 8.
//!
//! Elapsed time runs from the first handler call to the moment the last
//! commit is visible on the broker (OffsetFetch polled every 2 ms from a
//! separate connection, outside the group). The floor is the same handler
//! sleeps run without Kafka: `max_in_flight_batches` tasks taking the
//! scenario's batches from a shared counter and sleeping on the same tokio
//! timer. Efficiency is the run's msg/s over the floor's (goal: 97%).
//!
//! Run: `cargo bench -p kafee --bench kafee_guide`. The broker is
//! `KAFEE_KAFKA_BOOTSTRAP`, else `scripts/broker up kafka` is run.
//! `KAFEE_BENCH_REPS` (default 3): repetitions per row, the median is shown.
//! `KAFEE_BENCH_COMMIT_INTERVAL_MS` (default 5): the batch layer's commit
//! interval.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafee::batching::{
    Batch, BatchConfig, BatchResult, Consumer, Handler, HandlerError, Message, Mode,
};
use kafee::client::admin::{Admin, CreateTopicsOptions, NewTopic};
use kafee::client::cluster::Cluster;
use kafee::client::config::ClientConfig;
use kafee::client::conn::Connection;
use kafee::client::produce::{Producer, ProducerConfig, ProducerRecord};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

const MESSAGES_PER_PARTITION: usize = 200;
const VALUE_BYTES: usize = 150;
const SINGLE_SLEEP: Duration = Duration::from_millis(5);
const BATCH_SLEEP: Duration = Duration::from_millis(10);

#[derive(Clone, Copy)]
struct Scenario {
    mode: Mode,
    size: usize,
    partitions: i32,
    in_flight: usize,
    guide: Option<f64>,
}

impl Scenario {
    fn name(&self) -> String {
        match self.mode {
            Mode::SingleMessage => "single, 5 ms/msg".to_owned(),
            Mode::Batch => format!("batch {}, 10 ms/batch", self.size),
        }
    }
    fn messages(&self) -> usize {
        MESSAGES_PER_PARTITION * self.partitions as usize
    }
    fn batches(&self) -> usize {
        let size = if self.mode == Mode::SingleMessage {
            1
        } else {
            self.size
        };
        self.partitions as usize * MESSAGES_PER_PARTITION.div_ceil(size)
    }
    fn sleep(&self) -> Duration {
        match self.mode {
            Mode::SingleMessage => SINGLE_SLEEP,
            Mode::Batch => BATCH_SLEEP,
        }
    }
}

fn bootstrap() -> String {
    if let Ok(v) = std::env::var("KAFEE_KAFKA_BOOTSTRAP") {
        if !v.trim().is_empty() {
            return v.trim().to_owned();
        }
    }
    let root = env!("CARGO_MANIFEST_DIR");
    eprintln!("KAFEE_KAFKA_BOOTSTRAP unset: running scripts/broker up kafka");
    let out = std::process::Command::new(format!("{root}/scripts/broker"))
        .args(["up", "kafka"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("scripts/broker runs");
    assert!(out.status.success(), "scripts/broker up kafka failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("scripts/broker printed the address")
        .trim()
        .to_owned()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "kafee-guide-{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn cluster(addr: &str) -> Cluster {
    Cluster::connect(
        ClientConfig::builder()
            .bootstrap_servers([addr])
            .request_timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
    )
    .await
    .unwrap()
}

async fn make_topic(cluster: &Cluster, partitions: i32) -> String {
    let name = unique("t");
    Admin::new(cluster.clone())
        .create_topics(
            &[NewTopic::new(&name, partitions, 1)],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    let producer = Producer::new(cluster.clone(), ProducerConfig::builder().build().unwrap());
    let mut pending = Vec::new();
    for p in 0..partitions {
        for i in 0..MESSAGES_PER_PARTITION {
            let mut value = format!("{p}-{i}-").into_bytes();
            value.resize(VALUE_BYTES, b'x');
            let record = ProducerRecord::new(&name)
                .partition(p)
                .key(Bytes::from(format!("k{i}")))
                .value(Bytes::from(value));
            pending.push(producer.enqueue(record).unwrap());
        }
    }
    for f in pending {
        f.await.unwrap();
    }
    producer.close().await;
    name
}

/// True once every partition's committed offset reads the log end.
async fn all_committed(conn: &Connection, group: &str, topic: &str, partitions: i32) -> bool {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_indexes((0..partitions).collect())]));
    let Ok(response) = conn.send(request, Duration::from_secs(10)).await else {
        return false;
    };
    let ends: Vec<i64> = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.committed_offset))
        .collect();
    ends.len() == partitions as usize && ends.iter().all(|o| *o == MESSAGES_PER_PARTITION as i64)
}

struct Sleeper {
    sleep: Duration,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    messages: AtomicUsize,
}

impl Sleeper {
    fn started(&self) {
        let mut first = self.first.lock().unwrap();
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }

    fn finished(&self, n: usize) {
        *self.last.lock().unwrap() = Some(Instant::now());
        self.messages.fetch_add(n, Ordering::Relaxed);
    }
}

struct Shared(Arc<Sleeper>);

#[async_trait::async_trait]
impl Handler for Shared {
    async fn handle_message(&self, _message: &Message) -> Result<(), HandlerError> {
        self.0.started();
        tokio::time::sleep(self.0.sleep).await;
        self.0.finished(1);
        Ok(())
    }

    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        self.0.started();
        tokio::time::sleep(self.0.sleep).await;
        self.0.finished(batch.len());
        BatchResult::Ok
    }
}

/// One run through Kafka: seconds from the first handler call to the last
/// commit visible, and to the last handler return.
async fn run_kafka(
    addr: &str,
    cluster: &Cluster,
    s: Scenario,
    commit_interval: Duration,
) -> (f64, f64) {
    let topic = make_topic(cluster, s.partitions).await;
    let group = unique("g");
    let (_, conn) = cluster.coordinator(&group).await.unwrap();
    let mut config = BatchConfig::builder()
        .mode(s.mode)
        .max_in_flight_batches(s.in_flight)
        .commit_interval(commit_interval);
    if s.mode == Mode::Batch {
        config = config.size(s.size).timeout(Duration::from_millis(1000));
    }
    let sleeper = Arc::new(Sleeper {
        sleep: s.sleep(),
        first: Mutex::new(None),
        last: Mutex::new(None),
        messages: AtomicUsize::new(0),
    });
    let running = Consumer::builder(addr, &group)
        .topics([topic.as_str()])
        .batch(config.build().unwrap())
        .fetch_max_wait(Duration::from_millis(100))
        .build()
        .unwrap()
        .run(Shared(sleeper.clone()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if sleeper.messages.load(Ordering::Relaxed) >= s.messages()
            && all_committed(&conn, &group, &topic, s.partitions).await
        {
            break;
        }
        assert!(Instant::now() < deadline, "{}: no progress", s.name());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let done = Instant::now();
    let first = sleeper.first.lock().unwrap().unwrap();
    let last = sleeper.last.lock().unwrap().unwrap();
    let stats = running.shutdown().await.unwrap();
    assert_eq!(stats.messages as usize, s.messages(), "{}", s.name());
    (
        done.duration_since(first).as_secs_f64(),
        last.duration_since(first).as_secs_f64(),
    )
}

/// The same sleeps without Kafka: `in_flight` workers take the scenario's
/// batches from a shared counter.
async fn run_floor(s: Scenario) -> f64 {
    let left = Arc::new(AtomicUsize::new(s.batches()));
    let started = Instant::now();
    let workers: Vec<_> = (0..s.in_flight.min(s.partitions as usize))
        .map(|_| {
            let left = left.clone();
            let sleep = s.sleep();
            tokio::spawn(async move {
                while left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    tokio::time::sleep(sleep).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reps: usize = env_or("KAFEE_BENCH_REPS", 3).max(1);
    let commit_interval = Duration::from_millis(env_or("KAFEE_BENCH_COMMIT_INTERVAL_MS", 5));
    let addr = bootstrap();
    let one = |mode, size, guide| Scenario {
        mode,
        size,
        partitions: 1,
        in_flight: 1,
        guide: Some(guide),
    };
    let mut scenarios = vec![
        one(Mode::SingleMessage, 1, 88.0),
        one(Mode::Batch, 10, 837.0),
        one(Mode::Batch, 50, 3509.0),
    ];
    for in_flight in [1, 3, 8] {
        for (mode, size) in [
            (Mode::SingleMessage, 1),
            (Mode::Batch, 10),
            (Mode::Batch, 50),
        ] {
            scenarios.push(Scenario {
                mode,
                size,
                partitions: 8,
                in_flight,
                guide: None,
            });
        }
    }
    println!(
        "Kafee guide scenario on Kafka {addr}: {MESSAGES_PER_PARTITION} messages per partition, \
         {VALUE_BYTES}-byte values, commit interval {commit_interval:?}, median of {reps}; \
         time from the first handler call to the last commit visible"
    );
    println!(
        "| mode | partitions | in flight | messages | elapsed ms | msg/s | guide msg/s | floor msg/s | efficiency | handlers only: ms, efficiency |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    runtime.block_on(async {
        let cluster = cluster(&addr).await;
        for s in scenarios {
            let mut kafka = Vec::new();
            let mut handlers = Vec::new();
            let mut floor = Vec::new();
            for _ in 0..reps {
                let (k, h) = run_kafka(&addr, &cluster, s, commit_interval).await;
                kafka.push(k);
                handlers.push(h);
                floor.push(run_floor(s).await);
            }
            let (kafka, handlers, floor) = (median(kafka), median(handlers), median(floor));
            let n = s.messages() as f64;
            println!(
                "| {} | {} | {} | {} | {:.1} | {:.0} | {} | {:.0} | {:.1}% | {:.1}, {:.1}% |",
                s.name(),
                s.partitions,
                s.in_flight,
                s.messages(),
                kafka * 1e3,
                n / kafka,
                s.guide.map_or("-".to_owned(), |g| format!("~{g:.0}")),
                n / floor,
                100.0 * floor / kafka,
                handlers * 1e3,
                100.0 * floor / handlers,
            );
        }
    });
}
