//! kafee-client against librdkafka (PyPI `confluent-kafka`, run as Python
//! scripts from `tests/peers/`) and against a broker restart.
//!
//! The Python with confluent-kafka is `$KAFEE_CACHE/venv/bin/python`
//! (default `~/.cache/kafee/venv`), installed by `scripts/peers` (and by
//! `scripts/test`); a test fails, never skips, when it is missing.
//!
//! Broker coverage:
//! - the codec and mixed-group scenarios run against Apache Kafka and Tansu;
//! - transactions run against Apache Kafka only: Tansu 0.6 accepts
//!   transactional produce but its records never become visible;
//! - the broker restart runs against a private Apache Kafka the test starts
//!   itself (`scripts/broker up` and `restart` in a folder of its own, so the
//!   shared brokers are not disturbed); Tansu is not restarted because it
//!   stores in memory here and a restart loses the log by design.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use kafee_client::admin::{Admin, CreateTopicsOptions, IsolationLevel, NewTopic, TopicPartition};
use kafee_client::cluster::Cluster;
use kafee_client::config::ClientConfig;
use kafee_client::consumer::{
    AssignedPartition, ConsumerConfig, ConsumerEvent, GroupConsumer, OffsetToCommit,
};
use kafee_client::group::GroupConfig;
use kafee_client::produce::{Producer, ProducerConfig, ProducerRecord};
use kafee_protocol::records::Compression;

on_both_brokers!(
    librdkafka_records_with_every_codec_read_back_exactly,
    mixed_group_with_librdkafka_shares_partitions,
);

/// Apache Kafka only: Tansu 0.6 never makes transactional records visible.
mod kafka_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_committed_sees_only_committed_transactions() {
        super::read_committed_sees_only_committed_transactions(&super::common::bootstrap("kafka"))
            .await;
    }

    /// Starts its own Kafka (the restart must keep the log; Tansu's memory
    /// storage would not).
    ///
    /// Regression: Kafka bumps the partitions' leader epoch when the broker
    /// comes back and every fetch then answers FENCED_LEADER_EPOCH; the fetch
    /// loop only marked the metadata stale (nothing refreshed it), so
    /// consumption stalled for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_restart_mid_consume_loses_nothing() {
        super::broker_restart_mid_consume_loses_nothing().await;
    }
}

// ------------------------------------------------------------------------------------------ peers

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kafee_cache() -> PathBuf {
    match std::env::var_os("KAFEE_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c),
        _ => PathBuf::from(std::env::var_os("HOME").expect("HOME or KAFEE_CACHE must be set"))
            .join(".cache/kafee"),
    }
}

/// The Python with confluent-kafka; panics with what to run when missing.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let py = kafee_cache().join("venv/bin/python");
        let check = Command::new(&py)
            .args([
                "-c",
                "import confluent_kafka; print(confluent_kafka.version()[0])",
            ])
            .output();
        match check {
            Ok(out) if out.status.success() => py,
            Ok(out) => panic!(
                "{} cannot import confluent_kafka ({}): run `scripts/peers` to install it",
                py.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!(
                "no Python with confluent-kafka at {} ({e}): run `scripts/peers` (it installs \
                 PyPI confluent-kafka into $KAFEE_CACHE/venv, default ~/.cache/kafee/venv)",
                py.display()
            ),
        }
    })
}

fn script(name: &str) -> PathBuf {
    repo_root().join("tests/peers").join(name)
}

/// Runs a peer script to completion with `stdin`; returns its stdout.
async fn run_peer(name: &str, args: Vec<String>, stdin: String) -> String {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(python())
            .arg(script(&name))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

/// A long-running peer script: its stdout lines arrive on a channel, its
/// stderr is kept for failure messages, and it is killed when dropped.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Peer {
    fn spawn(name: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(python())
            .arg(script(name))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let keep = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    return;
                }
                keep.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Peer {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    /// The next stdout line; panics (with the peer's stderr) at the deadline
    /// or when the peer exits.
    async fn line(&mut self, deadline: Instant) -> String {
        match tokio::time::timeout_at(deadline, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("librdkafka peer exited; stderr:\n{}", self.stderr()),
            Err(_) => panic!(
                "librdkafka peer silent until the deadline; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------ kafee side

fn config(addr: &str) -> ClientConfig {
    ClientConfig::builder()
        .bootstrap_servers([addr])
        .client_id("kafee-peer-tests")
        .request_timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn fresh_topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let topic = common::unique_topic(prefix);
    Admin::new(cluster.clone())
        .create_topics(
            &[NewTopic::new(&topic, partitions, 1)],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    topic
}

fn group_config(group: &str, topic: &str, isolation: IsolationLevel) -> ConsumerConfig {
    let group = GroupConfig::builder(group, [topic])
        .session_timeout(Duration::from_secs(10))
        .heartbeat_interval(Duration::from_millis(500))
        .rebalance_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut config = ConsumerConfig::new(group);
    config.fetch.max_wait = Duration::from_millis(100);
    config.fetch.isolation = isolation;
    config
}

type Headers = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A record as read, with the codec of the batch it came in.
#[derive(Clone, PartialEq, Eq)]
struct Got {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Headers,
    codec: Compression,
}

/// Bytes as escaped text, `null` for none: readable assertion messages.
fn show(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(
        || "null".to_owned(),
        |b| format!("b\"{}\"", b.escape_ascii()),
    )
}

impl std::fmt::Debug for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{}={}", show(Some(k)), show(v.as_deref())))
            .collect();
        write!(
            f,
            "{{offset {} {:?} key {} value {} headers [{}]}}",
            self.offset,
            self.codec,
            show(self.key.as_deref()),
            show(self.value.as_deref()),
            headers.join(", ")
        )
    }
}

/// Appends the records of one `Records` event to `got` (per partition).
/// Fails on a control batch handed out, or on records out of order.
fn take(f: &kafee_client::fetch::Fetched, got: &mut BTreeMap<i32, Vec<Got>>) {
    let mut via_iter = 0usize;
    for r in f.records() {
        r.unwrap();
        via_iter += 1;
    }
    let mut n = 0usize;
    for b in &f.batches {
        assert!(
            !b.batch().is_control(),
            "a control batch at offset {} of {:?} reached the caller",
            b.batch().base_offset(),
            f.tp
        );
        for r in b.records() {
            let r = r.unwrap();
            if r.offset() < f.fetch_offset {
                continue;
            }
            n += 1;
            let list = got.entry(f.tp.partition).or_default();
            if let Some(last) = list.last() {
                assert!(
                    r.offset() > last.offset,
                    "{:?}: offset {} after {}",
                    f.tp,
                    r.offset(),
                    last.offset
                );
            }
            list.push(Got {
                offset: r.offset(),
                key: r.key().map(<[u8]>::to_vec),
                value: r.value().map(<[u8]>::to_vec),
                headers: r
                    .headers()
                    .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                    .collect(),
                codec: b.batch().compression(),
            });
        }
    }
    assert_eq!(n, via_iter, "records() and the batches disagree");
}

/// Reads until `done(got)` holds (60 s at most).
async fn consume_until(
    consumer: &mut GroupConsumer,
    what: &str,
    done: impl Fn(&BTreeMap<i32, Vec<Got>>) -> bool,
) -> BTreeMap<i32, Vec<Got>> {
    let mut got = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&got) {
        let event = tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap_or_else(|_| {
                let counts: BTreeMap<i32, usize> = got
                    .iter()
                    .map(|(p, l): (&i32, &Vec<Got>)| (*p, l.len()))
                    .collect();
                panic!("{what}: not done within 60 s; records per partition {counts:?}")
            });
        match event {
            ConsumerEvent::Records(f) => take(&f, &mut got),
            ConsumerEvent::Revoked(r) => r.done(),
            ConsumerEvent::Assigned { .. } | ConsumerEvent::Lost(_) => {}
            other => panic!("{what}: unexpected {other:?}"),
        }
    }
    got
}

async fn leave(mut consumer: GroupConsumer) {
    consumer.leave();
    let deadline = Instant::now() + Duration::from_secs(30);
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

/// Produces `(partition, value)` records with kafee's producer (acks=all).
async fn produce(cluster: &Cluster, topic: &str, records: &[(i32, String)]) {
    produce_with(
        cluster,
        topic,
        records,
        ProducerConfig::builder().build().unwrap(),
    )
    .await;
}

async fn produce_with(
    cluster: &Cluster,
    topic: &str,
    records: &[(i32, String)],
    config: ProducerConfig,
) {
    let producer = Producer::new(cluster.clone(), config);
    let mut pending = Vec::new();
    for (p, v) in records {
        let record = ProducerRecord::new(topic)
            .partition(*p)
            .key(Bytes::from_static(b"k"))
            .value(Bytes::from(v.clone()));
        pending.push(producer.enqueue(record).unwrap());
    }
    for p in pending {
        p.await.unwrap();
    }
    producer.close().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_or_null(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| "-".to_owned(), hex)
}

// ------------------------------------------------------------------------------------------ codecs

const CODECS: [(&str, Compression); 5] = [
    ("none", Compression::None),
    ("gzip", Compression::Gzip),
    ("snappy", Compression::Snappy),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
];

/// One record of the codec scenario, as produced.
#[derive(Debug, Clone)]
struct Spec {
    codec: Compression,
    codec_name: &'static str,
    partition: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Headers,
}

/// Keys, null keys, empty keys, null and empty values, binary values, and
/// headers (none, null values, empty values, repeated keys, non-ASCII keys)
/// spread over 3 partitions, for one codec.
fn specs(codec_name: &'static str, codec: Compression) -> Vec<Spec> {
    (0..36)
        .map(|i: usize| {
            let key = match i % 6 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("key-{codec_name}-{i}").into_bytes()),
            };
            let value = match i % 9 {
                4 => None,
                7 => Some(Vec::new()),
                // Non-UTF-8 bytes.
                8 => Some((0..=255u8).cycle().skip(i).take(300).collect()),
                // Compressible text, so the codecs have something to do.
                _ => Some(format!("value {codec_name} {i} ").repeat(12).into_bytes()),
            };
            let headers: Headers = match i % 4 {
                0 => Vec::new(),
                1 => vec![(b"h1".to_vec(), Some(format!("v{i}").into_bytes()))],
                2 => vec![
                    (b"dup".to_vec(), None),
                    (b"dup".to_vec(), Some(Vec::new())),
                    (b"dup".to_vec(), Some(b"third".to_vec())),
                ],
                _ => vec![
                    (
                        "trace-\u{e9}".as_bytes().to_vec(),
                        Some(vec![0, 255, 1, 254]),
                    ),
                    (b"codec".to_vec(), Some(codec_name.as_bytes().to_vec())),
                ],
            };
            Spec {
                codec,
                codec_name,
                partition: (i % 3) as i32,
                key,
                value,
                headers,
            }
        })
        .collect()
}

async fn librdkafka_records_with_every_codec_read_back_exactly(addr: &str) {
    let cluster = Cluster::connect(config(addr)).await.unwrap();
    let topic = fresh_topic(&cluster, "peers-codecs", 3).await;
    let specs: Vec<Spec> = CODECS
        .iter()
        .flat_map(|(name, codec)| specs(name, *codec))
        .collect();
    let input: String = specs
        .iter()
        .map(|s| {
            let headers: Vec<String> = s
                .headers
                .iter()
                .map(|(k, v)| format!("{}={}", hex(k), hex_or_null(v.as_deref())))
                .collect();
            format!(
                "{}\t{}\t{}\t{}\t{}\n",
                s.codec_name,
                s.partition,
                hex_or_null(s.key.as_deref()),
                hex_or_null(s.value.as_deref()),
                headers.join(";")
            )
        })
        .collect();
    let out = run_peer("produce.py", vec![addr.to_owned(), topic.clone()], input).await;

    // What librdkafka acknowledged, per partition in offset order.
    let mut expected: BTreeMap<i32, Vec<Got>> = BTreeMap::new();
    let mut lines = 0;
    for line in out.lines() {
        let fields: Vec<i64> = line
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        let (index, partition, offset) = (fields[0] as usize, fields[1] as i32, fields[2]);
        let s = &specs[index];
        assert_eq!(partition, s.partition, "record {index} landed elsewhere");
        expected.entry(partition).or_default().push(Got {
            offset,
            key: s.key.clone(),
            value: s.value.clone(),
            headers: s.headers.clone(),
            codec: s.codec,
        });
        lines += 1;
    }
    assert_eq!(lines, specs.len(), "acknowledgements: {out}");
    for list in expected.values_mut() {
        list.sort_by_key(|g| g.offset);
    }

    let mut consumer = GroupConsumer::start(
        cluster.clone(),
        group_config(
            &common::unique_topic("peers-codecs"),
            &topic,
            IsolationLevel::ReadUncommitted,
        ),
    );
    let want: BTreeMap<i32, i64> = expected
        .iter()
        .map(|(p, l)| (*p, l.last().unwrap().offset))
        .collect();
    let got = consume_until(&mut consumer, "codec records", |got| {
        want.iter().all(|(p, last)| {
            got.get(p)
                .and_then(|l| l.last())
                .is_some_and(|g| g.offset >= *last)
        })
    })
    .await;
    for (p, list) in &expected {
        let read = &got[p];
        assert_eq!(read.len(), list.len(), "partition {p}: record count");
        for (e, g) in list.iter().zip(read) {
            assert_eq!(g, e, "partition {p} offset {}", e.offset);
        }
    }
    let codecs: BTreeSet<String> = got
        .values()
        .flatten()
        .map(|g| format!("{:?}", g.codec))
        .collect();
    assert_eq!(codecs.len(), 5, "codecs seen: {codecs:?}");
    leave(consumer).await;
}

// ------------------------------------------------------------------------------------------ transactions

async fn read_committed_sees_only_committed_transactions(addr: &str) {
    let cluster = Cluster::connect(config(addr)).await.unwrap();
    let partitions = 2;
    let topic = fresh_topic(&cluster, "peers-txn", partitions).await;
    // 5 transactions (0, 2, 4 committed; 1, 3 aborted) of 4 records per
    // partition, then one committed `end` per partition.
    let out = run_peer(
        "transactions.py",
        vec![
            addr.to_owned(),
            topic.clone(),
            partitions.to_string(),
            "5".into(),
            "4".into(),
        ],
        String::new(),
    )
    .await;
    let mut all: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut committed: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (p, offset, value) = (
            f[0].parse::<i32>().unwrap(),
            f[1].parse::<i64>().unwrap(),
            f[3].to_owned(),
        );
        all.entry(p).or_default().push((offset, value.clone()));
        if f[2] == "1" {
            committed.entry(p).or_default().push((offset, value));
        }
    }
    for l in all.values_mut().chain(committed.values_mut()) {
        l.sort();
    }
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), 2 * (5 * 4 + 1));
    assert_eq!(
        committed.values().map(Vec::len).sum::<usize>(),
        2 * (3 * 4 + 1)
    );

    for (isolation, expected) in [
        (IsolationLevel::ReadCommitted, &committed),
        (IsolationLevel::ReadUncommitted, &all),
    ] {
        let mut consumer = GroupConsumer::start(
            cluster.clone(),
            group_config(&common::unique_topic("peers-txn"), &topic, isolation),
        );
        let got = consume_until(&mut consumer, &format!("{isolation:?}"), |got| {
            (0..partitions).all(|p| {
                got.get(&p)
                    .and_then(|l| l.last())
                    .is_some_and(|g| g.value.as_deref() == Some(b"end"))
            })
        })
        .await;
        for p in 0..partitions {
            let read: Vec<(i64, String)> = got[&p]
                .iter()
                .map(|g| {
                    // A control record's key is 4 bytes (version, type).
                    assert_eq!(
                        g.key.as_deref(),
                        Some(&b"k"[..]),
                        "not a data record: {g:?}"
                    );
                    (
                        g.offset,
                        String::from_utf8(g.value.clone().unwrap()).unwrap(),
                    )
                })
                .collect();
            assert_eq!(&read, &expected[&p], "{isolation:?} partition {p}");
        }
        leave(consumer).await;
    }
}

// ------------------------------------------------------------------------------------------ mixed group

/// Who owns what, as each side last said.
#[derive(Default, Debug)]
struct Owners {
    kafee: BTreeSet<i32>,
    peer: BTreeSet<i32>,
}

impl Owners {
    /// Both sides hold three partitions each, disjoint, in `range` blocks.
    fn split(&self) -> bool {
        let blocks = [BTreeSet::from([0, 1, 2]), BTreeSet::from([3, 4, 5])];
        (self.kafee == blocks[0] && self.peer == blocks[1])
            || (self.kafee == blocks[1] && self.peer == blocks[0])
    }
}

fn parse_partitions(list: &str) -> BTreeSet<i32> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

/// Applies one line of the librdkafka member; returns a record it read.
fn peer_event(line: &str, owners: &mut Owners) -> Option<(i32, i64, String)> {
    let mut words = line.splitn(4, ' ');
    match words.next().unwrap() {
        "assigned" => owners.peer = parse_partitions(words.next().unwrap_or("")),
        "revoked" => owners.peer.clear(),
        "record" => {
            let p = words.next().unwrap().parse().unwrap();
            let offset = words.next().unwrap().parse().unwrap();
            return Some((p, offset, words.next().unwrap_or("").to_owned()));
        }
        "closed" => {}
        _ => panic!("librdkafka member: {line}"),
    }
    None
}

/// Drives both members until each owns three partitions in `range` blocks.
async fn until_split(kafee: &mut GroupConsumer, peer: &mut Peer, owners: &mut Owners) {
    let deadline = Instant::now() + Duration::from_secs(45);
    while !owners.split() {
        tokio::select! {
            e = kafee.next() => match e {
                ConsumerEvent::Revoked(r) => { owners.kafee.clear(); r.done() }
                ConsumerEvent::Assigned { partitions, .. } => {
                    owners.kafee = partitions.iter().map(|a| a.tp.partition).collect();
                }
                ConsumerEvent::Lost(_) => owners.kafee.clear(),
                ConsumerEvent::Records(f) => panic!("kafee read {:?} before any was produced", f.tp),
                other => panic!("kafee: unexpected {other:?}"),
            },
            line = peer.line(deadline) => {
                if let Some(r) = peer_event(&line, owners) {
                    panic!("librdkafka read {r:?} before any was produced");
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                panic!("no range split within 45 s: {owners:?}; librdkafka stderr:\n{}", peer.stderr())
            }
        }
    }
}

/// Produces `per_partition` records to each of 6 partitions starting at
/// value index `from`, then reads them with both members: each record must
/// be read exactly once, by the member owning its partition, in order.
/// kafee commits what it read.
async fn share_round(
    cluster: &Cluster,
    topic: &str,
    kafee: &mut GroupConsumer,
    peer: &mut Peer,
    owners: &mut Owners,
    from: i64,
    per_partition: i64,
) {
    let records: Vec<(i32, String)> = (0..6)
        .flat_map(|p| (from..from + per_partition).map(move |i| (p, format!("p{p}-{i}"))))
        .collect();
    produce(cluster, topic, &records).await;
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let total = records.len();
    let deadline = Instant::now() + Duration::from_secs(45);
    while read.values().map(Vec::len).sum::<usize>() < total {
        tokio::select! {
            e = kafee.next() => match e {
                ConsumerEvent::Records(f) => {
                    assert!(owners.kafee.contains(&f.tp.partition), "kafee read unowned {:?}", f.tp);
                    let mut got = BTreeMap::new();
                    take(&f, &mut got);
                    let list = read.entry(f.tp.partition).or_default();
                    for g in got.into_values().flatten() {
                        list.push((g.offset, String::from_utf8(g.value.unwrap()).unwrap()));
                    }
                    kafee
                        .committer()
                        .commit(vec![OffsetToCommit {
                            tp: f.tp.clone(),
                            offset: f.next_offset,
                            metadata: None,
                        }])
                        .await
                        .unwrap();
                }
                other => panic!("kafee: unexpected {other:?} in a stable generation ({owners:?})"),
            },
            line = peer.line(deadline) => {
                if let Some((p, offset, value)) = peer_event(&line, owners) {
                    assert!(owners.peer.contains(&p), "librdkafka read unowned partition {p}");
                    read.entry(p).or_default().push((offset, value));
                }
                assert!(owners.split(), "rebalance during the round: {owners:?}");
            }
            _ = tokio::time::sleep_until(deadline) => {
                panic!("round from {from}: only {read:?} within 45 s; librdkafka stderr:\n{}", peer.stderr())
            }
        }
    }
    for p in 0..6 {
        let expected: Vec<(i64, String)> = (from..from + per_partition)
            .map(|i| (i, format!("p{p}-{i}")))
            .collect();
        assert_eq!(read.get(&p), Some(&expected), "partition {p}");
    }
}

async fn mixed_group_with_librdkafka_shares_partitions(addr: &str) {
    let cluster = Cluster::connect(config(addr)).await.unwrap();
    let topic = fresh_topic(&cluster, "peers-mixed", 6).await;
    let group = common::unique_topic("peers-mixed");
    let mut owners = Owners::default();

    // librdkafka first: it leads the group and computes the assignment from
    // kafee's subscription.
    let mut peer = Peer::spawn("group_member.py", &[addr, &group, &topic]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while owners.peer.len() != 6 {
        let line = peer.line(deadline).await;
        assert!(peer_event(&line, &mut owners).is_none());
    }
    let mut kafee = GroupConsumer::start(
        cluster.clone(),
        group_config(&group, &topic, IsolationLevel::ReadUncommitted),
    );
    until_split(&mut kafee, &mut peer, &mut owners).await;
    share_round(&cluster, &topic, &mut kafee, &mut peer, &mut owners, 0, 10).await;

    // librdkafka leaves: kafee takes over its partitions at the offsets
    // librdkafka committed.
    peer.send("leave");
    let deadline = Instant::now() + Duration::from_secs(30);
    while peer.line(deadline).await != "closed" {}
    drop(peer);
    let assigned: Vec<AssignedPartition> = loop {
        match tokio::time::timeout_at(deadline, kafee.next())
            .await
            .unwrap()
        {
            ConsumerEvent::Revoked(r) => r.done(),
            ConsumerEvent::Assigned { partitions, .. } if partitions.len() == 6 => {
                break partitions
            }
            ConsumerEvent::Assigned { .. } | ConsumerEvent::Lost(_) => {}
            other => panic!("kafee: unexpected {other:?}"),
        }
    };
    for a in &assigned {
        assert_eq!(
            a.committed.as_ref().map(|c| c.offset),
            Some(10),
            "{:?} committed (by librdkafka or kafee)",
            a.tp
        );
    }
    owners.kafee = (0..6).collect();

    // A new librdkafka member joins: now kafee leads and assigns to it; it
    // starts at the committed offsets.
    let mut peer = Peer::spawn("group_member.py", &[addr, &group, &topic]);
    until_split(&mut kafee, &mut peer, &mut owners).await;
    share_round(&cluster, &topic, &mut kafee, &mut peer, &mut owners, 10, 10).await;
    peer.send("leave");
    let deadline = Instant::now() + Duration::from_secs(30);
    while peer.line(deadline).await != "closed" {}
    leave(kafee).await;
}

// ------------------------------------------------------------------------------------------ restart

/// A Kafka broker of this test's own, in a private `KAFEE_RUN_DIR`; stopped
/// and removed on drop.
struct PrivateKafka {
    run_dir: PathBuf,
    address: String,
}

impl PrivateKafka {
    fn broker(run_dir: &Path, command: &str) -> std::process::Output {
        Command::new(repo_root().join("scripts/broker"))
            .args([command, "kafka"])
            .env("KAFEE_RUN_DIR", run_dir)
            .stderr(Stdio::inherit())
            .output()
            .unwrap()
    }

    async fn start() -> PrivateKafka {
        let run_dir = std::env::temp_dir().join(common::unique_topic("peers-restart"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let dir = run_dir.clone();
        let out = tokio::task::spawn_blocking(move || Self::broker(&dir, "up"))
            .await
            .unwrap();
        let kafka = PrivateKafka {
            run_dir,
            address: String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .last()
                .unwrap_or("")
                .to_owned(),
        };
        assert!(out.status.success(), "scripts/broker up kafka failed");
        kafka
    }

    async fn restart(&self) {
        let dir = self.run_dir.clone();
        let out = tokio::task::spawn_blocking(move || Self::broker(&dir, "restart"))
            .await
            .unwrap();
        assert!(out.status.success(), "scripts/broker restart kafka failed");
        let address = String::from_utf8(out.stdout).unwrap();
        assert_eq!(address.trim(), self.address, "the restarted broker moved");
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        let _ = Self::broker(&self.run_dir, "down");
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Reads records, committing after each partition's records, and checks
/// that every record arrives exactly at the partition's expected next offset
/// (its committed offset after an assignment): no gap, no skip. Returns when
/// `until` holds.
struct Tracker {
    topic: String,
    /// Next offset expected per partition.
    next: BTreeMap<i32, i64>,
    values: BTreeMap<i32, Vec<String>>,
    reassignments: usize,
    commit_errors: usize,
}

impl Tracker {
    async fn on(&mut self, consumer: &mut GroupConsumer, event: ConsumerEvent) {
        match event {
            ConsumerEvent::Assigned { partitions, .. } => {
                self.reassignments += 1;
                for a in partitions {
                    let committed = a.committed.map_or(0, |c| c.offset);
                    let next = self.next.entry(a.tp.partition).or_insert(0);
                    assert!(
                        committed <= *next,
                        "{:?}: committed {committed} beyond what was read ({next})",
                        a.tp
                    );
                    *next = committed;
                    // Re-reading from the committed offset: drop the values
                    // read past it (they come again).
                    self.values
                        .entry(a.tp.partition)
                        .or_default()
                        .truncate(committed as usize);
                }
            }
            ConsumerEvent::Records(f) => {
                let mut got = BTreeMap::new();
                take(&f, &mut got);
                let next = self.next.get_mut(&f.tp.partition).unwrap();
                for g in got.into_values().flatten() {
                    assert_eq!(g.offset, *next, "{:?}: a gap or a repeat", f.tp);
                    *next += 1;
                    self.values
                        .entry(f.tp.partition)
                        .or_default()
                        .push(String::from_utf8(g.value.unwrap()).unwrap());
                }
                let offsets = vec![OffsetToCommit {
                    tp: TopicPartition::new(&self.topic, f.tp.partition),
                    offset: *next,
                    metadata: None,
                }];
                // The broker may be down: a failed commit only means more
                // is read again after a rejoin.
                if consumer.committer().commit(offsets).await.is_err() {
                    self.commit_errors += 1;
                }
            }
            ConsumerEvent::Revoked(r) => r.done(),
            ConsumerEvent::Lost(_) => {}
            ConsumerEvent::PartitionError(e) => panic!("partition error: {e:?}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn read(&self) -> usize {
        self.values.values().map(Vec::len).sum()
    }
}

/// Whether something accepts TCP connections at `addr`.
async fn listening(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

async fn broker_restart_mid_consume_loses_nothing() {
    // RUST_LOG=kafee_client=debug shows the client's view of the outage.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let kafka = PrivateKafka::start().await;
    let cluster = Cluster::connect(config(&kafka.address)).await.unwrap();
    let topic = fresh_topic(&cluster, "peers-restart", 3).await;
    let before: Vec<(i32, String)> = (0..3)
        .flat_map(|p| (0..200).map(move |i| (p, format!("p{p}-{i}"))))
        .collect();
    // Small batches and small fetches: the consumer's buffer bound (below)
    // then holds only a small part of the log.
    let small_batches = || ProducerConfig::builder().batch_size(256).build().unwrap();
    produce_with(&cluster, &topic, &before, small_batches()).await;

    let group = common::unique_topic("peers-restart");
    let mut config = group_config(&group, &topic, IsolationLevel::ReadUncommitted);
    // A session that outlives the restart (about 5-15 s here): the member
    // keeps its partitions and its fetch positions, and no rejoin (which
    // would refresh metadata and re-read from the commits) hides what the
    // fetch loop does on its own.
    config.group = GroupConfig::builder(&group, [&topic])
        .session_timeout(Duration::from_secs(45))
        .heartbeat_interval(Duration::from_millis(500))
        .rebalance_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    config.fetch.max_partition_bytes = 512;
    config.fetch.max_bytes = 1024;
    config.fetch.max_buffered_bytes = 2048;
    let mut consumer = GroupConsumer::start(cluster.clone(), config);
    let mut tracker = Tracker {
        topic: topic.clone(),
        next: BTreeMap::new(),
        values: BTreeMap::new(),
        reassignments: 0,
        commit_errors: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while tracker.read() < 150 {
        let e = tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap();
        tracker.on(&mut consumer, e).await;
    }

    // Restart the broker. Nothing is read until it is down, so the fetch
    // loop holds at most its buffer bound of the log meanwhile.
    let restart = kafka.restart();
    tokio::pin!(restart);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::select! {
            () = &mut restart => panic!("the restart finished before the broker was seen down"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if !listening(&kafka.address).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broker did not go down within 30 s"
        );
    }
    let read_when_down = tracker.read();
    // Go on reading while it is down and while it comes back.
    let mut read_when_up = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = &mut restart => break,
            e = consumer.next() => tracker.on(&mut consumer, e).await,
            _ = tick.tick() => {
                if read_when_up.is_none() && listening(&kafka.address).await {
                    read_when_up = Some(tracker.read());
                }
            }
        }
    }
    let read_when_up = read_when_up.unwrap_or(tracker.read());
    assert!(
        read_when_up < 600,
        "the whole log ({read_when_up} records) was read before the broker came back"
    );

    // More records after the restart, through the same (reconnecting) cluster.
    let after: Vec<(i32, String)> = (0..3)
        .flat_map(|p| (200..300).map(move |i| (p, format!("p{p}-{i}"))))
        .collect();
    produce_with(&cluster, &topic, &after, small_batches()).await;
    let deadline = Instant::now() + Duration::from_secs(45);
    while tracker.read() < 900 {
        let Ok(e) = tokio::time::timeout_at(deadline, consumer.next()).await else {
            // The leader epochs the fetch loop plans with, for the report.
            let cached: Vec<_> = (0..3)
                .map(|p| cluster.with_metadata(|m| m.leader(&topic, p)))
                .collect();
            panic!(
                "only {} of 900 after the restart; cached (leader, leader epoch) per partition: \
                 {cached:?}",
                tracker.read()
            );
        };
        tracker.on(&mut consumer, e).await;
    }
    for p in 0..3 {
        let expected: Vec<String> = (0..300).map(|i| format!("p{p}-{i}")).collect();
        assert_eq!(tracker.values[&p], expected, "partition {p}");
    }
    eprintln!(
        "restart: read {read_when_down} before the broker went down, {read_when_up} when it \
         listened again; {} assignments, {} failed commits",
        tracker.reassignments, tracker.commit_errors
    );
    leave(consumer).await;

    // The commits made after the restart are there: a new member starts at 300.
    let mut consumer = GroupConsumer::start(
        cluster.clone(),
        group_config(&group, &topic, IsolationLevel::ReadUncommitted),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap()
        {
            ConsumerEvent::Assigned { partitions, .. } => {
                let committed: Vec<Option<i64>> = partitions
                    .iter()
                    .map(|a| a.committed.as_ref().map(|c| c.offset))
                    .collect();
                assert_eq!(committed, vec![Some(300); 3]);
                break;
            }
            ConsumerEvent::Revoked(r) => r.done(),
            other => panic!("unexpected {other:?}"),
        }
    }
    leave(consumer).await;
}
