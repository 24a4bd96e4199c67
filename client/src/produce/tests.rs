//! The producer task against a scripted fake broker on loopback TCP:
//! retries after leader moves, final errors, delivery timeouts, lost answers,
//! ordering across retries, topics that appear late, buffer limits.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafee_protocol::error::ErrorCode;
use kafee_protocol::records::{DecodeLimits, RecordSet};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, InitProducerIdRequest, InitProducerIdResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, ProducerId, RequestHeader,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::ClientConfig;
use crate::conn::tests::{all_versions, encode_response};

const NODE: i32 = 1;

/// Idempotence bookkeeping of one producer id and partition: the next
/// expected sequence, and base sequence → base offset of written batches.
type Numbering = (i32, HashMap<i32, i64>);

/// What the fake answers and what it has stored.
#[derive(Default)]
struct Script {
    port: i32,
    /// Topics and their partition counts; others are unknown.
    topics: HashMap<String, i32>,
    /// Error codes to answer for a partition before accepting its records.
    codes: HashMap<(String, i32), VecDeque<i16>>,
    /// Produce requests to apply and then answer by closing the connection
    /// (the client never learns the outcome).
    lose_answers: usize,
    /// Batches with more records than this are refused with MESSAGE_TOO_LARGE.
    max_records_per_batch: Option<usize>,
    /// Highest Produce version advertised (default: kafka-protocol's).
    produce_max_version: Option<i16>,
    /// Versions of the Produce requests received.
    produce_versions: Vec<i16>,
    /// Error codes for the next InitProducerId answers (then success).
    init_codes: VecDeque<i16>,
    init_requests: usize,
    /// Producer ids handed out.
    producer_ids: Vec<i64>,
    /// Idempotence: next expected sequence and written batches (base
    /// sequence → base offset) per producer id and partition.
    sequences: HashMap<(i64, String, i32), Numbering>,
    /// (producer id, epoch, base sequence, records) of every batch received.
    stamps: Vec<(i64, i16, i32, usize)>,
    /// Delay before answering a Produce.
    produce_delay: Duration,
    /// Values written per partition, in offset order.
    log: BTreeMap<(String, i32), Vec<Option<Bytes>>>,
    produce_requests: usize,
    metadata_requests: usize,
    acks_seen: Vec<i16>,
}

struct Fake {
    addr: String,
    script: Arc<Mutex<Script>>,
    _accept: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start(topics: &[(&str, i32)]) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(Script {
            port: i32::from(port),
            topics: topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
            ..Script::default()
        }));
        let s = script.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(socket, s.clone()));
            }
        });
        Fake {
            addr: format!("127.0.0.1:{port}"),
            script,
            _accept: accept,
        }
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    fn log(&self, topic: &str, partition: i32) -> Vec<Option<Bytes>> {
        self.script()
            .log
            .get(&(topic.to_owned(), partition))
            .cloned()
            .unwrap_or_default()
    }

    async fn cluster(&self) -> Cluster {
        let config = ClientConfig::builder()
            .bootstrap_servers([self.addr.as_str()])
            .request_timeout(Duration::from_secs(5))
            .retry_backoff(Duration::from_millis(10))
            .retry_backoff_max(Duration::from_millis(50))
            .build()
            .unwrap();
        Cluster::connect(config).await.unwrap()
    }
}

async fn serve(mut socket: TcpStream, script: Arc<Mutex<Script>>) {
    let mut buf = BytesMut::new();
    loop {
        while buf.len() < 4 || buf.len() < 4 + (&buf[..4]).get_i32() as usize {
            match socket.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let len = buf.get_i32() as usize;
        let mut frame = buf.split_to(len).freeze();
        let header = decode_request_header_from_buffer(&mut frame).unwrap();
        match answer(&header, frame, &script).await {
            Some(reply) => {
                if socket.write_all(&reply).await.is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}

async fn answer(header: &RequestHeader, mut body: Bytes, script: &Mutex<Script>) -> Option<Bytes> {
    let (id, v) = (header.correlation_id, header.request_api_version);
    Some(match ApiKey::try_from(header.request_api_key).unwrap() {
        ApiKey::ApiVersions => {
            let max = script.lock().unwrap().produce_max_version;
            let keys = all_versions()
                .into_iter()
                .map(|k| match max {
                    Some(max) if k.api_key == ApiKey::Produce as i16 => k.with_max_version(max),
                    _ => k,
                })
                .collect();
            encode_response(id, v, &ApiVersionsResponse::default().with_api_keys(keys))
        }
        ApiKey::Metadata => {
            let request = MetadataRequest::decode(&mut body, v).unwrap();
            let mut st = script.lock().unwrap();
            st.metadata_requests += 1;
            let topics = request
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    let name = t.name.unwrap();
                    match st.topics.get(name.0.as_str()) {
                        Some(&n) => MetadataResponseTopic::default()
                            .with_name(Some(name))
                            .with_partitions(
                                (0..n)
                                    .map(|p| {
                                        MetadataResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_leader_id(BrokerId(NODE))
                                            .with_leader_epoch(1)
                                    })
                                    .collect(),
                            ),
                        None => MetadataResponseTopic::default()
                            .with_name(Some(name))
                            .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0),
                    }
                })
                .collect();
            let response = MetadataResponse::default()
                .with_brokers(vec![MetadataResponseBroker::default()
                    .with_node_id(BrokerId(NODE))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(st.port)])
                .with_controller_id(BrokerId(NODE))
                .with_topics(topics);
            encode_response(id, v, &response)
        }
        ApiKey::Produce => {
            let request = ProduceRequest::decode(&mut body, v).unwrap();
            let delay = script.lock().unwrap().produce_delay;
            tokio::time::sleep(delay).await;
            let mut st = script.lock().unwrap();
            st.produce_requests += 1;
            st.produce_versions.push(v);
            st.acks_seen.push(request.acks);
            let mut responses = Vec::new();
            for topic in request.topic_data {
                let mut partitions = Vec::new();
                for data in topic.partition_data {
                    let key = (topic.name.0.to_string(), data.index);
                    let code = st
                        .codes
                        .get_mut(&key)
                        .and_then(|q| q.pop_front())
                        .unwrap_or(0);
                    let mut values = Vec::new();
                    let mut stamp = (-1, -1, -1);
                    for batch in RecordSet::new(data.records.unwrap()) {
                        let batch = batch.unwrap();
                        stamp = (
                            batch.producer_id(),
                            batch.producer_epoch(),
                            batch.base_sequence(),
                        );
                        let decoded = batch.decode(&DecodeLimits::default()).unwrap();
                        for r in decoded.records() {
                            values.push(r.unwrap().value().map(Bytes::copy_from_slice));
                        }
                    }
                    st.stamps.push((stamp.0, stamp.1, stamp.2, values.len()));
                    let mut code = match st.max_records_per_batch {
                        Some(max) if values.len() > max => ErrorCode::MESSAGE_TOO_LARGE.0,
                        _ => code,
                    };
                    let mut base_offset = -1;
                    let (producer_id, _, base_sequence) = stamp;
                    let mut duplicate_of = None;
                    if code == 0 && producer_id >= 0 {
                        if !st.producer_ids.contains(&producer_id) {
                            code = ErrorCode::UNKNOWN_PRODUCER_ID.0;
                        } else {
                            let entry = st
                                .sequences
                                .entry((producer_id, key.0.clone(), key.1))
                                .or_default();
                            if let Some(&offset) = entry.1.get(&base_sequence) {
                                duplicate_of = Some(offset);
                            } else if base_sequence != entry.0 {
                                code = ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER.0;
                            }
                        }
                    }
                    if let Some(offset) = duplicate_of {
                        base_offset = offset;
                    } else if code == 0 {
                        let log = st.log.entry(key.clone()).or_default();
                        base_offset = log.len() as i64;
                        log.extend(values.iter().cloned());
                        if producer_id >= 0 {
                            let entry = st
                                .sequences
                                .entry((producer_id, key.0.clone(), key.1))
                                .or_default();
                            entry.0 = base_sequence + values.len() as i32;
                            entry.1.insert(base_sequence, base_offset);
                        }
                    }
                    partitions.push(
                        PartitionProduceResponse::default()
                            .with_index(data.index)
                            .with_error_code(code)
                            .with_base_offset(base_offset)
                            .with_log_append_time_ms(-1),
                    );
                }
                responses.push(
                    TopicProduceResponse::default()
                        .with_name(topic.name)
                        .with_partition_responses(partitions),
                );
            }
            if st.lose_answers > 0 {
                st.lose_answers -= 1;
                return None;
            }
            encode_response(id, v, &ProduceResponse::default().with_responses(responses))
        }
        ApiKey::InitProducerId => {
            let _ = InitProducerIdRequest::decode(&mut body, v).unwrap();
            let mut st = script.lock().unwrap();
            st.init_requests += 1;
            let code = st.init_codes.pop_front().unwrap_or(0);
            let producer_id = if code == 0 {
                let id = 1000 + st.producer_ids.len() as i64;
                st.producer_ids.push(id);
                id
            } else {
                -1
            };
            let response = InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(0);
            encode_response(id, v, &response)
        }
        other => panic!("the fake does not answer {other:?}"),
    })
}

fn fast_config() -> ProducerConfigBuilder {
    ProducerConfig::builder()
        .linger(Duration::from_millis(2))
        .request_timeout(Duration::from_secs(2))
        .delivery_timeout(Duration::from_secs(10))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

fn value(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

#[tokio::test]
async fn not_leader_is_retried_after_a_metadata_refresh() {
    let fake = Fake::start(&[("t", 2)]).await;
    fake.script()
        .codes
        .insert(("t".into(), 1), VecDeque::from([6, 6]));
    let producer = Producer::new(fake.cluster().await, fast_config().build().unwrap());
    let metadata_before = fake.script().metadata_requests;
    let m = producer
        .send(ProducerRecord::new("t").partition(1).value("a"))
        .await
        .unwrap();
    assert_eq!((m.topic.as_str(), m.partition, m.offset), ("t", 1, 0));
    assert_eq!(fake.log("t", 1), vec![value("a")]);
    let stats = producer.stats();
    assert_eq!(
        (stats.retries, stats.requests, stats.records_acked),
        (2, 3, 1)
    );
    assert!(
        fake.script().metadata_requests > metadata_before,
        "metadata refreshed"
    );
    assert_eq!(fake.script().acks_seen, vec![-1, -1, -1], "acks=all");
}

#[tokio::test]
async fn non_retriable_code_fails_every_record_of_the_batch_naming_topic_partition_and_code() {
    let fake = Fake::start(&[("t", 1)]).await;
    fake.script()
        .codes
        .insert(("t".into(), 0), VecDeque::from([87]));
    let producer = Producer::new(
        fake.cluster().await,
        fast_config()
            .linger(Duration::from_millis(50))
            .build()
            .unwrap(),
    );
    let deliveries: Vec<_> = (0..3)
        .map(|i| {
            producer
                .enqueue(ProducerRecord::new("t").value(format!("{i}")))
                .unwrap()
        })
        .collect();
    for d in deliveries {
        let e = d.await.unwrap_err();
        assert!(matches!(
            &e,
            ProduceError::Broker { topic, partition: 0, code: ErrorCode::INVALID_RECORD, .. }
                if topic == "t"
        ));
        assert_eq!(
            e.to_string(),
            format!(
                "Produce to \"t\" partition 0: {} answered INVALID_RECORD (87)",
                fake.addr
            )
        );
    }
    // The partition is not blocked by the failure.
    let m = producer
        .send(ProducerRecord::new("t").value("ok"))
        .await
        .unwrap();
    assert_eq!(m.offset, 0);
    assert_eq!(producer.stats().records_failed, 3);
    assert_eq!(producer.stats().retries, 0);
}

#[tokio::test]
async fn retriable_code_until_the_deadline_gives_a_delivery_timeout_with_the_last_error() {
    let fake = Fake::start(&[("t", 1)]).await;
    fake.script()
        .codes
        .insert(("t".into(), 0), VecDeque::from(vec![19; 10_000]));
    let config = fast_config()
        .request_timeout(Duration::from_millis(500))
        .delivery_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let producer = Producer::new(fake.cluster().await, config);
    let started = Instant::now();
    let e = producer
        .send(ProducerRecord::new("t").value("x"))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            &e,
            ProduceError::DeliveryTimeout {
                partition: Some(0),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), Some(ErrorCode::NOT_ENOUGH_REPLICAS));
    assert!(e.to_string().starts_with(
        "record for \"t\" partition 0 not acknowledged within delivery.timeout.ms (1s); \
         last error: Produce to \"t\" partition 0"
    ));
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(producer.stats().retries >= 5, "{:?}", producer.stats());
    assert!(fake.log("t", 0).is_empty());
}

/// A request applied by the broker whose answer is lost (connection closed)
/// is sent again: the records are written twice, in order, and the caller
/// gets the offsets of the second copy. This is the documented duplicate of
/// a non-idempotent producer.
#[tokio::test]
async fn lost_answer_is_retried_and_duplicates_the_batch_in_order() {
    let fake = Fake::start(&[("t", 1)]).await;
    fake.script().lose_answers = 1;
    let producer = Producer::new(
        fake.cluster().await,
        fast_config()
            .linger(Duration::from_millis(30))
            .build()
            .unwrap(),
    );
    let a = producer
        .enqueue(ProducerRecord::new("t").value("a"))
        .unwrap();
    let b = producer
        .enqueue(ProducerRecord::new("t").value("b"))
        .unwrap();
    assert_eq!(a.await.unwrap().offset, 2);
    assert_eq!(b.await.unwrap().offset, 3);
    assert_eq!(
        fake.log("t", 0),
        vec![value("a"), value("b"), value("a"), value("b")]
    );
}

/// Records of one partition are written in the order they were handed
/// over, even when a batch in the middle is refused once and retried while
/// later records keep arriving.
#[tokio::test]
async fn one_partition_keeps_the_order_of_records_across_a_retry() {
    let fake = Fake::start(&[("t", 3)]).await;
    fake.script()
        .codes
        .insert(("t".into(), 2), VecDeque::from([6, 0, 7, 13]));
    let producer = Producer::new(
        fake.cluster().await,
        fast_config()
            .linger(Duration::ZERO)
            .batch_size(200)
            .build()
            .unwrap(),
    );
    let mut deliveries = Vec::new();
    for i in 0..60 {
        deliveries.push(
            producer
                .enqueue(
                    ProducerRecord::new("t")
                        .partition(2)
                        .value(format!("{i:02}")),
                )
                .unwrap(),
        );
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut offsets = Vec::new();
    for d in deliveries {
        offsets.push(d.await.unwrap().offset);
    }
    assert_eq!(offsets, (0..60).collect::<Vec<i64>>());
    let expected: Vec<_> = (0..60).map(|i| value(&format!("{i:02}"))).collect();
    assert_eq!(fake.log("t", 2), expected);
    assert!(producer.stats().retries >= 3);
    assert!(producer.stats().batches > 1);
}

/// A batch the broker refuses as too large is split in halves until the
/// pieces fit; the records still arrive in order, each once. A single record
/// that is too large fails with MESSAGE_TOO_LARGE.
#[tokio::test]
async fn batch_refused_as_too_large_is_split_until_it_fits() {
    let fake = Fake::start(&[("t", 1)]).await;
    fake.script().max_records_per_batch = Some(2);
    let producer = Producer::new(
        fake.cluster().await,
        fast_config()
            .linger(Duration::from_millis(30))
            .build()
            .unwrap(),
    );
    let deliveries: Vec<_> = (0..9)
        .map(|i| {
            producer
                .enqueue(ProducerRecord::new("t").value(format!("{i}")))
                .unwrap()
        })
        .collect();
    let mut offsets = Vec::new();
    for d in deliveries {
        offsets.push(d.await.unwrap().offset);
    }
    assert_eq!(offsets, (0..9).collect::<Vec<i64>>());
    let expected: Vec<_> = (0..9).map(|i| value(&i.to_string())).collect();
    assert_eq!(fake.log("t", 0), expected);
    assert!(producer.stats().retries >= 3);

    fake.script().max_records_per_batch = Some(0);
    let e = producer
        .send(ProducerRecord::new("t").value("alone"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::MESSAGE_TOO_LARGE));
}

#[tokio::test]
async fn records_wait_for_a_topic_that_appears_within_the_delivery_timeout() {
    let fake = Fake::start(&[]).await;
    let producer = Producer::new(fake.cluster().await, fast_config().build().unwrap());
    let pending = producer
        .enqueue(ProducerRecord::new("late").key("k").value("v"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.script().topics.insert("late".into(), 3);
    let m = pending.await.unwrap();
    assert_eq!(m.partition, partition_for_key(b"k", 3));
    assert_eq!(fake.log("late", m.partition), vec![value("v")]);
}

#[tokio::test]
async fn missing_topic_fails_with_unknown_topic_after_the_delivery_timeout() {
    let fake = Fake::start(&[]).await;
    let config = fast_config()
        .request_timeout(Duration::from_millis(300))
        .delivery_timeout(Duration::from_millis(600))
        .build()
        .unwrap();
    let producer = Producer::new(fake.cluster().await, config);
    let started = Instant::now();
    let a = producer
        .enqueue(ProducerRecord::new("nope").value("a"))
        .unwrap();
    let b = producer
        .enqueue(ProducerRecord::new("nope").partition(0))
        .unwrap();
    for d in [a, b] {
        let e = d.await.unwrap_err();
        assert!(
            matches!(&e, ProduceError::UnknownTopic { topic, .. } if topic == "nope"),
            "{e:?}"
        );
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(580) && waited < Duration::from_secs(3));
    assert!(
        fake.script().metadata_requests >= 3,
        "the metadata was asked again"
    );
}

#[tokio::test]
async fn enqueue_refuses_records_beyond_buffer_memory_and_send_waits_for_room() {
    let fake = Fake::start(&[("t", 1)]).await;
    fake.script().produce_delay = Duration::from_millis(200);
    let config = fast_config()
        .batch_size(1000)
        .max_request_size(2000)
        .buffer_memory(2000)
        .build()
        .unwrap();
    let producer = Producer::new(fake.cluster().await, config);
    let big = Bytes::from(vec![0u8; 800]);
    let first = producer
        .enqueue(ProducerRecord::new("t").value(big.clone()))
        .unwrap();
    let second = producer
        .enqueue(ProducerRecord::new("t").value(big.clone()))
        .unwrap();
    let e = producer
        .enqueue(ProducerRecord::new("t").value(big.clone()))
        .unwrap_err();
    assert!(
        matches!(e, ProduceError::BufferFull { limit: 2000, .. }),
        "{e:?}"
    );
    // `send` waits until the first records free their share.
    let third = producer
        .send(ProducerRecord::new("t").value(big))
        .await
        .unwrap();
    assert_eq!(third.offset, 2);
    first.await.unwrap();
    second.await.unwrap();
}

#[tokio::test]
async fn record_above_max_request_size_is_refused_before_sending() {
    let fake = Fake::start(&[("t", 1)]).await;
    let config = fast_config()
        .batch_size(1000)
        .max_request_size(1000)
        .buffer_memory(10_000)
        .build()
        .unwrap();
    let producer = Producer::new(fake.cluster().await, config);
    let e = producer
        .enqueue(ProducerRecord::new("t").value(vec![0u8; 1000]))
        .unwrap_err();
    assert!(
        matches!(
            &e,
            ProduceError::RecordTooLarge {
                setting: "max.request.size",
                limit: 1000,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(fake.script().produce_requests, 0);
}

#[tokio::test]
async fn dropping_every_handle_still_delivers_what_was_handed_over() {
    let fake = Fake::start(&[("t", 1)]).await;
    let producer = Producer::new(
        fake.cluster().await,
        fast_config()
            .linger(Duration::from_millis(100))
            .build()
            .unwrap(),
    );
    let pending = producer
        .enqueue(ProducerRecord::new("t").value("x"))
        .unwrap();
    drop(producer);
    assert_eq!(pending.await.unwrap().offset, 0);
    assert_eq!(fake.log("t", 0), vec![value("x")]);
}

/// The Produce version is the highest both sides speak: kafee's 9 against a
/// recent broker, the broker's maximum against an older one (3 is the
/// first with record batches v2).
#[tokio::test]
async fn produce_version_is_the_negotiated_one() {
    for (advertised, expected) in [(None, 9), (Some(3), 3), (Some(7), 7)] {
        let fake = Fake::start(&[("t", 1)]).await;
        fake.script().produce_max_version = advertised;
        let producer = Producer::new(fake.cluster().await, fast_config().build().unwrap());
        let m = producer
            .send(
                ProducerRecord::new("t")
                    .key("k")
                    .value("v")
                    .header("h", None),
            )
            .await
            .unwrap();
        assert_eq!(m.offset, 0);
        assert_eq!(fake.script().produce_versions, vec![expected]);
    }
}

fn idempotent() -> ProducerConfigBuilder {
    fast_config().idempotence(true)
}

/// With idempotence, the retry after a lost answer carries the same producer
/// id and sequence, and the broker keeps one copy (compare
/// `lost_answer_is_retried_and_duplicates_the_batch_in_order`).
#[tokio::test]
async fn idempotent_retry_after_a_lost_answer_is_written_once() {
    let fake = Fake::start(&[("t", 1)]).await;
    fake.script().lose_answers = 1;
    let producer = Producer::new(
        fake.cluster().await,
        idempotent()
            .linger(Duration::from_millis(30))
            .build()
            .unwrap(),
    );
    let a = producer
        .enqueue(ProducerRecord::new("t").value("a"))
        .unwrap();
    let b = producer
        .enqueue(ProducerRecord::new("t").value("b"))
        .unwrap();
    assert_eq!(a.await.unwrap().offset, 0);
    assert_eq!(b.await.unwrap().offset, 1);
    assert_eq!(fake.log("t", 0), vec![value("a"), value("b")]);
    let st = fake.script();
    assert_eq!(st.init_requests, 1);
    assert_eq!(st.stamps, vec![(1000, 0, 0, 2), (1000, 0, 0, 2)]);
}

/// Sequence numbers run on per partition without gap across batches.
#[tokio::test]
async fn idempotent_batches_number_records_per_partition() {
    let fake = Fake::start(&[("t", 2)]).await;
    let producer = Producer::new(
        fake.cluster().await,
        idempotent()
            .linger(Duration::ZERO)
            .batch_size(150)
            .build()
            .unwrap(),
    );
    let deliveries: Vec<_> = (0..40)
        .map(|i| {
            producer
                .enqueue(
                    ProducerRecord::new("t")
                        .partition(i % 2)
                        .value(format!("{i:02}")),
                )
                .unwrap()
        })
        .collect();
    for d in deliveries {
        d.await.unwrap();
    }
    // The fake answers OUT_OF_ORDER_SEQUENCE_NUMBER to any gap or reorder;
    // none came (no retry, one producer id), and each partition's numbering
    // reached 20.
    assert_eq!(producer.stats().retries, 0);
    let st = fake.script();
    assert_eq!(st.init_requests, 1);
    for p in 0..2 {
        let (next, written) = &st.sequences[&(1000, "t".to_owned(), p)];
        assert_eq!(*next, 20, "partition {p}");
        assert!(written.contains_key(&0));
    }
    assert!(st.stamps.len() > 2, "several batches: {:?}", st.stamps);
}

/// A numbered batch refused for good leaves a gap in the numbering: the
/// producer takes a new producer id, and the next record starts again at
/// sequence 0 under it.
#[tokio::test]
async fn idempotent_producer_takes_a_new_id_after_a_numbered_batch_fails() {
    let fake = Fake::start(&[("t", 1)]).await;
    fake.script()
        .codes
        .insert(("t".into(), 0), VecDeque::from([87]));
    let producer = Producer::new(fake.cluster().await, idempotent().build().unwrap());
    let e = producer
        .send(ProducerRecord::new("t").value("x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::INVALID_RECORD));
    let m = producer
        .send(ProducerRecord::new("t").value("y"))
        .await
        .unwrap();
    assert_eq!(m.offset, 0);
    let st = fake.script();
    assert_eq!(st.init_requests, 2);
    assert_eq!(st.stamps, vec![(1000, 0, 0, 1), (1001, 0, 0, 1)]);
}

/// OUT_OF_ORDER_SEQUENCE_NUMBER (the broker lost track of this producer's
/// numbering) is cured with a new producer id and a resend.
#[tokio::test]
async fn out_of_order_sequence_takes_a_new_id_and_resends() {
    let fake = Fake::start(&[("t", 1)]).await;
    fake.script()
        .codes
        .insert(("t".into(), 0), VecDeque::from([45]));
    let producer = Producer::new(fake.cluster().await, idempotent().build().unwrap());
    let m = producer
        .send(ProducerRecord::new("t").value("x"))
        .await
        .unwrap();
    assert_eq!(m.offset, 0);
    assert_eq!(fake.script().init_requests, 2);
    assert_eq!(fake.log("t", 0), vec![value("x")]);
}

/// InitProducerId answered with a retriable code is asked again; with a
/// final code (not authorized) the queued records fail at once, naming it.
#[tokio::test]
async fn init_producer_id_is_retried_or_fails_the_records_naming_the_code() {
    let fake = Fake::start(&[("t", 1)]).await;
    fake.script().init_codes = VecDeque::from([14, 14]);
    let producer = Producer::new(fake.cluster().await, idempotent().build().unwrap());
    producer
        .send(ProducerRecord::new("t").value("x"))
        .await
        .unwrap();
    assert_eq!(fake.script().init_requests, 3);

    let fake = Fake::start(&[("t", 1)]).await;
    fake.script().init_codes = VecDeque::from([31]);
    let producer = Producer::new(fake.cluster().await, idempotent().build().unwrap());
    let started = Instant::now();
    let e = producer
        .send(ProducerRecord::new("t").value("x"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(e.code(), Some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED));
    assert!(e.to_string().contains("InitProducerId"), "{e}");
    assert_eq!(fake.script().produce_requests, 0);
}

#[test]
fn producer_is_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Producer>();
    fn assert_future<T: Send + 'static>() {}
    assert_future::<DeliveryFuture>();
}
