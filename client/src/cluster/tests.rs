//! Cluster behaviour against a scripted fake broker on loopback TCP:
//! replacement of dead connections, reconnect backoff, single-flight
//! metadata refresh, coordinator retries.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
    MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use super::*;
use crate::conn::tests::{all_versions, encode_response};
use crate::error::ConnectionError;

/// What the fake broker answers and what it has seen.
#[derive(Default)]
struct Script {
    /// Node id and port of the fake (the only broker).
    port: i32,
    /// Extra brokers listed in Metadata: (node id, port).
    extra_brokers: Vec<(i32, i32)>,
    /// Leader epoch of partition 0 of every topic asked about.
    leader_epoch: i32,
    /// Delay before answering Metadata.
    metadata_delay: Duration,
    /// Error codes for the next FindCoordinator answers (then success).
    coordinator_codes: VecDeque<i16>,
    metadata_requests: usize,
    find_coordinator_requests: usize,
    accepted: usize,
    connections: Vec<AbortHandle>,
}

struct Fake {
    addr: String,
    script: Arc<Mutex<Script>>,
    _accept: tokio::task::JoinHandle<()>,
}

const NODE: i32 = 1;

impl Fake {
    async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(Script {
            port: i32::from(port),
            leader_epoch: 1,
            ..Script::default()
        }));
        let s = script.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let handle = tokio::spawn(serve(socket, s.clone()));
                let mut st = s.lock().unwrap();
                st.accepted += 1;
                st.connections.push(handle.abort_handle());
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

    /// Drops every open connection (the clients see end of stream).
    fn kill_connections(&self) {
        for c in self.script().connections.drain(..) {
            c.abort();
        }
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
        let reply = answer(&header, frame, &script).await;
        if socket.write_all(&reply).await.is_err() {
            return;
        }
    }
}

async fn answer(
    header: &kafka_protocol::messages::RequestHeader,
    mut body: Bytes,
    script: &Arc<Mutex<Script>>,
) -> Bytes {
    let (id, v) = (header.correlation_id, header.request_api_version);
    match ApiKey::try_from(header.request_api_key).unwrap() {
        ApiKey::ApiVersions => encode_response(
            id,
            v,
            &ApiVersionsResponse::default().with_api_keys(all_versions()),
        ),
        ApiKey::Metadata => {
            let request = MetadataRequest::decode(&mut body, v).unwrap();
            let delay = {
                let mut st = script.lock().unwrap();
                st.metadata_requests += 1;
                st.metadata_delay
            };
            tokio::time::sleep(delay).await;
            let st = script.lock().unwrap();
            let mut brokers = vec![(NODE, st.port)];
            brokers.extend(st.extra_brokers.iter().copied());
            let response = MetadataResponse::default()
                .with_brokers(
                    brokers
                        .into_iter()
                        .map(|(node, port)| {
                            MetadataResponseBroker::default()
                                .with_node_id(BrokerId(node))
                                .with_host(StrBytes::from_static_str("127.0.0.1"))
                                .with_port(port)
                        })
                        .collect(),
                )
                .with_controller_id(BrokerId(NODE))
                .with_topics(
                    request
                        .topics
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| {
                            MetadataResponseTopic::default()
                                .with_name(t.name)
                                .with_partitions(vec![MetadataResponsePartition::default()
                                    .with_partition_index(0)
                                    .with_leader_id(BrokerId(NODE))
                                    .with_leader_epoch(st.leader_epoch)])
                        })
                        .collect(),
                );
            encode_response(id, v, &response)
        }
        ApiKey::FindCoordinator => {
            let _ = FindCoordinatorRequest::decode(&mut body, v).unwrap();
            let mut st = script.lock().unwrap();
            st.find_coordinator_requests += 1;
            let code = st.coordinator_codes.pop_front().unwrap_or(0);
            let response = FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_node_id(BrokerId(if code == 0 { NODE } else { -1 }))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(if code == 0 { st.port } else { -1 });
            encode_response(id, v, &response)
        }
        other => panic!("the fake does not answer {other:?}"),
    }
}

fn config(addr: &str) -> ClientConfig {
    ClientConfig::builder()
        .bootstrap_servers([addr])
        .request_timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(100))
        .retry_backoff_max(Duration::from_secs(1))
        .build()
        .unwrap()
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

#[tokio::test]
async fn bootstrap_connection_is_pooled_under_its_node_id() {
    let fake = Fake::start().await;
    let cluster = Cluster::connect(config(&fake.addr)).await.unwrap();
    assert_eq!(cluster.metadata().broker(NODE).unwrap().addr(), fake.addr);
    let conn = cluster.broker(NODE).await.unwrap();
    assert_eq!(conn.broker(), fake.addr);
    assert_eq!(
        fake.script().accepted,
        1,
        "the bootstrap connection is reused"
    );
}

#[tokio::test]
async fn dead_connection_is_replaced_on_next_use_and_metadata_goes_stale() {
    let fake = Fake::start().await;
    let cluster = Cluster::connect(config(&fake.addr)).await.unwrap();
    let first = cluster.broker(NODE).await.unwrap();
    cluster.leader("t", 0).await.unwrap();
    let refreshes = fake.script().metadata_requests;
    fake.kill_connections();
    wait_until(|| first.is_dead()).await;
    assert!(matches!(
        first.dead_reason().as_deref(),
        Some(ConnectionError::Closed { .. })
    ));

    let second = cluster.broker(NODE).await.unwrap();
    assert!(!second.is_dead());
    assert_eq!(fake.script().accepted, 2);
    // The death marked the metadata stale: the next lookup refreshes it.
    assert!(cluster
        .metadata()
        .needs_refresh(Instant::now(), Duration::from_secs(300)));
    fake.script().leader_epoch = 2;
    assert_eq!(cluster.leader("t", 0).await.unwrap(), (NODE, 2));
    assert_eq!(fake.script().metadata_requests, refreshes + 1);
}

#[tokio::test]
async fn failed_connects_back_off_exponentially() {
    let fake = Fake::start().await;
    // Node 2 is listed at a port where nothing listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    fake.script().extra_brokers.push((2, i32::from(closed)));
    let cluster = Cluster::connect(config(&fake.addr)).await.unwrap();

    let start = std::time::Instant::now();
    let err = cluster.broker(2).await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    let first = start.elapsed();
    let err = cluster.broker(2).await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    let second = start.elapsed() - first;
    let t = std::time::Instant::now();
    cluster.broker(2).await.unwrap_err();
    let third = t.elapsed();
    // 100 ms then 200 ms, each ±20 %.
    assert!(second >= Duration::from_millis(80), "{second:?}");
    assert!(third >= Duration::from_millis(160), "{third:?}");
    assert!(third < Duration::from_secs(2), "{third:?}");
    // A healthy node is not held back by another node's backoff.
    let t = std::time::Instant::now();
    cluster.broker(NODE).await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(80));
}

#[tokio::test]
async fn concurrent_refreshes_share_one_metadata_request() {
    let fake = Fake::start().await;
    let cluster = Cluster::connect(config(&fake.addr)).await.unwrap();
    fake.script().metadata_delay = Duration::from_millis(200);
    let before = fake.script().metadata_requests;
    cluster.invalidate_metadata();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = cluster.clone();
        tasks.spawn(async move { c.refresh_metadata(&[]).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(fake.script().metadata_requests, before + 1);
}

#[tokio::test]
async fn note_error_marks_metadata_stale_only_for_leader_and_topic_churn() {
    let fake = Fake::start().await;
    let cluster = Cluster::connect(config(&fake.addr)).await.unwrap();
    let now = Instant::now();
    let age = Duration::from_secs(300);
    assert!(!cluster.note_error(ErrorCode::REBALANCE_IN_PROGRESS));
    assert!(!cluster.metadata().needs_refresh(now, age));
    assert!(cluster.note_error(ErrorCode::NOT_LEADER_OR_FOLLOWER));
    assert!(cluster.metadata().needs_refresh(now, age));
}

#[tokio::test]
async fn coordinator_lookup_retries_until_the_coordinator_is_ready() {
    let fake = Fake::start().await;
    fake.script().coordinator_codes = VecDeque::from([
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0,
        ErrorCode::COORDINATOR_NOT_AVAILABLE.0,
    ]);
    let cluster = Cluster::connect(config(&fake.addr)).await.unwrap();
    let (node, conn) = cluster.coordinator("g").await.unwrap();
    assert_eq!(node, NODE);
    assert!(!conn.is_dead());
    assert_eq!(fake.script().find_coordinator_requests, 3);
}

#[tokio::test]
async fn coordinator_lookup_surfaces_a_fatal_code_at_once() {
    let fake = Fake::start().await;
    fake.script().coordinator_codes = VecDeque::from([ErrorCode::GROUP_AUTHORIZATION_FAILED.0]);
    let cluster = Cluster::connect(config(&fake.addr)).await.unwrap();
    let err = cluster.coordinator("g").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GROUP_AUTHORIZATION_FAILED));
    assert_eq!(fake.script().find_coordinator_requests, 1);
}

#[tokio::test]
async fn coordinator_lookup_gives_up_at_the_request_timeout() {
    let fake = Fake::start().await;
    fake.script().coordinator_codes =
        std::iter::repeat_n(ErrorCode::COORDINATOR_NOT_AVAILABLE.0, 1000).collect();
    let c = ClientConfig::builder()
        .bootstrap_servers([fake.addr.as_str()])
        .request_timeout(Duration::from_millis(600))
        .retry_backoff(Duration::from_millis(50))
        .retry_backoff_max(Duration::from_millis(100))
        .build()
        .unwrap();
    let cluster = Cluster::connect(c).await.unwrap();
    let err = cluster.coordinator("g").await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("COORDINATOR_NOT_AVAILABLE (15)"),
        "{err}"
    );
    let n = fake.script().find_coordinator_requests;
    assert!((3..30).contains(&n), "{n}");
}

#[tokio::test]
async fn a_broker_that_never_answers_the_handshake_times_out_the_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Accepts, reads, never answers.
    let _silent = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = socket.read_to_end(&mut sink).await;
    });
    let settings = ConnSettings {
        client_id: "t".into(),
        max_frame_bytes: 1 << 20,
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_millis(200),
    };
    let start = std::time::Instant::now();
    let err = Connection::connect(&addr, &settings).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectTimeout { ref broker, timeout }
            if *broker == addr && timeout == Duration::from_millis(200)),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err.to_string(),
        format!("connecting to {addr}: not connected within 200ms")
    );
}
