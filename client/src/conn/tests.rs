//! Pending map, routing and poisoning, against an in-process fake broker on
//! `tokio::io::duplex`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafee_protocol::error::{FrameError, VersionError};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, CreateTopicsRequest, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{
    decode_request_header_from_buffer, Encodable, HeaderVersion, StrBytes,
};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// The broker side of a duplex pipe, speaking just enough Kafka.
pub(crate) struct FakeBroker {
    io: DuplexStream,
    buf: BytesMut,
}

/// Every API kafee knows, at the full range kafka-protocol speaks.
pub(crate) fn all_versions() -> Vec<ApiVersion> {
    ApiKey::iter()
        .map(|k| {
            let r = k.valid_versions();
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect()
}

impl FakeBroker {
    pub(crate) fn new(io: DuplexStream) -> Self {
        FakeBroker {
            io,
            buf: BytesMut::new(),
        }
    }

    /// Reads one request frame: its header and its body.
    pub(crate) async fn next_request(&mut self) -> (RequestHeader, Bytes) {
        loop {
            if self.buf.len() >= 4 {
                let len = (&self.buf[..4]).get_i32() as usize;
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    let mut frame = self.buf.split_to(len).freeze();
                    let header = decode_request_header_from_buffer(&mut frame).unwrap();
                    return (header, frame);
                }
            }
            let n = self.io.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "client closed the connection");
        }
    }

    /// Writes a response frame for a request of `api` at `version`.
    pub(crate) async fn respond<M: Encodable + HeaderVersion>(
        &mut self,
        correlation_id: i32,
        version: i16,
        response: &M,
    ) {
        let frame = encode_response(correlation_id, version, response);
        self.io.write_all(&frame).await.unwrap();
    }

    /// Writes raw bytes.
    pub(crate) async fn raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Answers the ApiVersions handshake advertising `keys`.
    pub(crate) async fn handshake(&mut self, keys: Vec<ApiVersion>) {
        let (h, _) = self.next_request().await;
        assert_eq!(h.request_api_key, ApiKey::ApiVersions as i16);
        let resp = ApiVersionsResponse::default().with_api_keys(keys);
        self.respond(h.correlation_id, h.request_api_version, &resp)
            .await;
    }
}

pub(crate) fn encode_response<M: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &M,
) -> Bytes {
    let mut body = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut body, M::header_version(version))
        .unwrap();
    response.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame.freeze()
}

pub(crate) fn settings() -> ConnSettings {
    ConnSettings {
        client_id: "kafee-test".into(),
        max_frame_bytes: 1 << 20,
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
    }
}

/// A connected client and its fake broker, handshake done.
pub(crate) async fn pair() -> (Connection, FakeBroker) {
    let (client_io, broker_io) = tokio::io::duplex(1 << 16);
    let mut broker = FakeBroker::new(broker_io);
    let (conn, ()) = tokio::join!(
        async {
            Connection::handshake(client_io, "fake:9092", &settings())
                .await
                .unwrap()
        },
        broker.handshake(all_versions())
    );
    (conn, broker)
}

fn metadata_named(cluster_id: &str) -> MetadataResponse {
    MetadataResponse::default().with_cluster_id(Some(StrBytes::from_string(cluster_id.into())))
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn handshake_negotiates_the_highest_shared_version() {
    let (conn, _broker) = pair().await;
    let fetch = conn.version(ApiKey::Fetch).unwrap();
    assert_eq!(fetch, versions::supported(ApiKey::Fetch).unwrap().max);
    assert!(conn.version(ApiKey::JoinGroup).is_ok());
    assert!(!conn.is_dead());
    assert_eq!(conn.in_flight(), 0);
}

#[tokio::test]
async fn handshake_falls_back_when_the_broker_refuses_api_versions_v3() {
    let (client_io, broker_io) = tokio::io::duplex(1 << 16);
    let mut broker = FakeBroker::new(broker_io);
    let client =
        tokio::spawn(
            async move { Connection::handshake(client_io, "old:9092", &settings()).await },
        );
    let (h, _) = broker.next_request().await;
    assert_eq!(h.request_api_version, 3);
    // An old broker answers in the v0 format, naming its own range.
    let refusal = ApiVersionsResponse::default()
        .with_error_code(35)
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(0)
            .with_max_version(2)]);
    broker.respond(h.correlation_id, 0, &refusal).await;
    let (h, _) = broker.next_request().await;
    assert_eq!(h.request_api_key, ApiKey::ApiVersions as i16);
    assert_eq!(h.request_api_version, 2);
    let mut keys = all_versions();
    for k in &mut keys {
        if k.api_key == ApiKey::Metadata as i16 {
            k.max_version = 8;
        }
    }
    broker
        .respond(
            h.correlation_id,
            2,
            &ApiVersionsResponse::default().with_api_keys(keys),
        )
        .await;
    let conn = client.await.unwrap().unwrap();
    assert_eq!(conn.version(ApiKey::Metadata).unwrap(), 8);
}

async fn handshake_advertising(
    keys: Vec<ApiVersion>,
) -> (Result<Connection, ClientError>, FakeBroker) {
    let (client_io, broker_io) = tokio::io::duplex(1 << 16);
    let mut broker = FakeBroker::new(broker_io);
    let settings = settings();
    let (conn, ()) = tokio::join!(
        Connection::handshake(client_io, "partial:9092", &settings),
        broker.handshake(keys)
    );
    (conn, broker)
}

#[tokio::test]
async fn an_optional_api_the_broker_lacks_is_named_when_used() {
    let keys: Vec<_> = all_versions()
        .into_iter()
        .filter(|k| k.api_key != ApiKey::CreateTopics as i16)
        .collect();
    let (conn, _broker) = handshake_advertising(keys).await;
    let conn = conn.unwrap();
    let err = conn
        .send(CreateTopicsRequest::default(), T)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Version {
            source: VersionError::NotAdvertised {
                api_key: ApiKey::CreateTopics
            },
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "partial:9092: broker does not support CreateTopics"
    );
    // An explicit version outside the negotiated range is refused before sending.
    let err = conn.start(&MetadataRequest::default(), 99).unwrap_err();
    assert!(matches!(
        err,
        ClientError::VersionOutOfRange {
            api: ApiKey::Metadata,
            version: 99,
            ..
        }
    ));
}

#[tokio::test]
async fn a_broker_without_a_required_api_fails_the_handshake() {
    let keys: Vec<_> = all_versions()
        .into_iter()
        .filter(|k| k.api_key != ApiKey::Fetch as i16)
        .collect();
    let err = handshake_advertising(keys).await.0.unwrap_err();
    assert_eq!(
        err.to_string(),
        "partial:9092: broker does not support Fetch"
    );
}

#[tokio::test]
async fn out_of_order_responses_reach_their_own_callers() {
    let (conn, mut broker) = pair().await;
    let v = conn.version(ApiKey::Metadata).unwrap();
    let calls: Vec<_> = (0..5)
        .map(|_| conn.start(&MetadataRequest::default(), v).unwrap())
        .collect();
    let mut ids = Vec::new();
    for call in &calls {
        let (h, _) = broker.next_request().await;
        assert_eq!(h.correlation_id, call.correlation_id());
        assert_eq!(h.client_id.as_deref(), Some("kafee-test"));
        ids.push(h.correlation_id);
    }
    for id in ids.iter().rev() {
        broker
            .respond(*id, v, &metadata_named(&format!("answer-{id}")))
            .await;
    }
    for call in calls {
        let id = call.correlation_id();
        let resp = call.wait(T).await.unwrap();
        assert_eq!(
            resp.cluster_id.as_deref(),
            Some(format!("answer-{id}").as_str())
        );
    }
    assert_eq!(conn.in_flight(), 0);
}

#[tokio::test]
async fn eof_mid_response_fails_every_caller_with_the_same_error() {
    let (conn, mut broker) = pair().await;
    let v = conn.version(ApiKey::Metadata).unwrap();
    let calls: Vec<_> = (0..3)
        .map(|_| conn.start(&MetadataRequest::default(), v).unwrap())
        .collect();
    let mut first = 0;
    for i in 0..3 {
        let (h, _) = broker.next_request().await;
        if i == 0 {
            first = h.correlation_id;
        }
    }
    let frame = encode_response(first, v, &metadata_named("cut"));
    broker.raw(&frame[..frame.len() / 2]).await;
    drop(broker);
    let mut sources = Vec::new();
    for call in calls {
        match call.wait(T).await.unwrap_err() {
            ClientError::Connection {
                source,
                api,
                broker,
            } => {
                assert_eq!(api, ApiKey::Metadata);
                assert_eq!(broker, "fake:9092");
                sources.push(source);
            }
            other => panic!("expected a connection error, got {other}"),
        }
    }
    assert!(
        matches!(*sources[0], ConnectionError::Closed { partial } if partial == frame.len() / 2)
    );
    assert!(sources.iter().all(|s| Arc::ptr_eq(s, &sources[0])));
    // The dead connection refuses new requests with that same cause.
    assert!(conn.is_dead());
    match conn.start(&MetadataRequest::default(), v).unwrap_err() {
        ClientError::Connection { source, .. } => assert!(Arc::ptr_eq(&source, &sources[0])),
        other => panic!("expected a connection error, got {other}"),
    }
    assert_eq!(
        conn.dead_reason().unwrap().to_string(),
        format!(
            "the broker closed the connection ({} bytes of an unfinished frame received)",
            frame.len() / 2
        )
    );
}

#[tokio::test]
async fn oversize_frame_is_a_typed_error_for_every_caller() {
    let (conn, mut broker) = pair().await;
    let v = conn.version(ApiKey::Metadata).unwrap();
    let a = conn.start(&MetadataRequest::default(), v).unwrap();
    let b = conn.start(&MetadataRequest::default(), v).unwrap();
    broker.next_request().await;
    broker.next_request().await;
    let huge: i32 = 2 << 20;
    broker.raw(&huge.to_be_bytes()).await;
    for call in [a, b] {
        let err = call.wait(T).await.unwrap_err();
        let ClientError::Connection { source, .. } = &err else {
            panic!("expected a connection error, got {err}");
        };
        assert!(matches!(
            **source,
            ConnectionError::Frame(FrameError::TooLarge { limit, actual })
                if limit == 1 << 20 && actual == 2 << 20
        ));
        assert!(err.to_string().ends_with(&format!(
            "frame of {} bytes exceeds the limit of {}",
            2 << 20,
            1 << 20
        )));
    }
}

#[tokio::test]
async fn unknown_correlation_id_poisons_the_connection() {
    let (conn, mut broker) = pair().await;
    let v = conn.version(ApiKey::Metadata).unwrap();
    let call = conn.start(&MetadataRequest::default(), v).unwrap();
    let (h, _) = broker.next_request().await;
    broker
        .respond(h.correlation_id + 1000, v, &metadata_named("stray"))
        .await;
    let err = call.wait(T).await.unwrap_err();
    let ClientError::Connection { source, .. } = err else {
        panic!("expected a connection error");
    };
    assert!(
        matches!(*source, ConnectionError::UnknownCorrelationId(id) if id == h.correlation_id + 1000)
    );
}

#[tokio::test]
async fn negative_or_short_frames_poison_the_connection() {
    for (bytes, check) in [
        (
            (-5i32).to_be_bytes().to_vec(),
            (|e: &ConnectionError| {
                matches!(
                    e,
                    ConnectionError::Frame(FrameError::NegativeLength { length: -5 })
                )
            }) as fn(&ConnectionError) -> bool,
        ),
        (vec![0, 0, 0, 2, 0, 1], |e: &ConnectionError| {
            matches!(e, ConnectionError::ShortFrame(2))
        }),
    ] {
        let (conn, mut broker) = pair().await;
        let v = conn.version(ApiKey::Metadata).unwrap();
        let call = conn.start(&MetadataRequest::default(), v).unwrap();
        broker.next_request().await;
        broker.raw(&bytes).await;
        let Err(ClientError::Connection { source, .. }) = call.wait(T).await else {
            panic!("expected a connection error");
        };
        assert!(check(&source), "{source}");
    }
}

#[tokio::test(start_paused = true)]
async fn timed_out_request_is_cleaned_up_when_its_late_response_arrives() {
    let (conn, mut broker) = pair().await;
    let v = conn.version(ApiKey::Metadata).unwrap();
    let call = conn.start(&MetadataRequest::default(), v).unwrap();
    let (h, _) = broker.next_request().await;
    let err = call.wait(Duration::from_millis(100)).await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::RequestTimeout { api: ApiKey::Metadata, correlation_id, .. }
            if correlation_id == h.correlation_id
    ));
    assert!(err.to_string().ends_with("its outcome is unknown"), "{err}");
    assert_eq!(conn.in_flight(), 1, "the entry waits for the late response");
    broker
        .respond(h.correlation_id, v, &metadata_named("late"))
        .await;
    // The connection is still healthy and the next request works.
    let next = conn.start(&MetadataRequest::default(), v).unwrap();
    let (h2, _) = broker.next_request().await;
    broker
        .respond(h2.correlation_id, v, &metadata_named("next"))
        .await;
    let resp = next.wait(T).await.unwrap();
    assert_eq!(resp.cluster_id.as_deref(), Some("next"));
    assert_eq!(conn.in_flight(), 0);
    assert!(!conn.is_dead());
}

#[tokio::test]
async fn a_frame_much_larger_than_one_read_arrives_whole() {
    let (conn, mut broker) = pair().await;
    let v = conn.version(ApiKey::Metadata).unwrap();
    let call = conn.start(&MetadataRequest::default(), v).unwrap();
    let (h, _) = broker.next_request().await;
    let big = "x".repeat(700_000);
    let frame = encode_response(h.correlation_id, v, &metadata_named(&big));
    assert!(frame.len() > 10 * READ_CHUNK);
    for piece in frame.chunks(7_000) {
        broker.raw(piece).await;
    }
    let resp = call.wait(T).await.unwrap();
    assert_eq!(resp.cluster_id.as_deref().map(str::len), Some(700_000));
    assert!(!conn.is_dead());
}

#[tokio::test]
async fn dropping_the_last_handle_fails_requests_still_awaited() {
    let (conn, mut broker) = pair().await;
    let v = conn.version(ApiKey::Metadata).unwrap();
    let call = conn.start(&MetadataRequest::default(), v).unwrap();
    broker.next_request().await;
    drop(conn);
    let Err(ClientError::Connection { source, .. }) = call.wait(T).await else {
        panic!("expected a connection error");
    };
    assert!(matches!(*source, ConnectionError::Shutdown));
}

#[tokio::test]
async fn send_with_shows_the_negotiated_version() {
    let (conn, mut broker) = pair().await;
    let server = tokio::spawn(async move {
        let (h, _) = broker.next_request().await;
        broker
            .respond(
                h.correlation_id,
                h.request_api_version,
                &metadata_named("v"),
            )
            .await;
        broker
    });
    let (version, resp) = conn
        .send_with(T, |v| {
            MetadataRequest::default().with_allow_auto_topic_creation(v < 4)
        })
        .await
        .unwrap();
    assert_eq!(version, versions::supported(ApiKey::Metadata).unwrap().max);
    assert_eq!(resp.cluster_id.as_deref(), Some("v"));
    server.await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Whatever order the broker answers in, and however the bytes are cut
    /// into reads, each caller gets its own response.
    #[test]
    fn any_answer_order_and_chunking_routes_correctly(
        order in Just((0..8usize).collect::<Vec<_>>()).prop_shuffle(),
        chunk in 1usize..64,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (conn, mut broker) = pair().await;
            let v = conn.version(ApiKey::Metadata).unwrap();
            let calls: Vec<_> = (0..8)
                .map(|_| conn.start(&MetadataRequest::default(), v).unwrap())
                .collect();
            let mut ids = Vec::new();
            for _ in 0..8 {
                ids.push(broker.next_request().await.0.correlation_id);
            }
            let mut wire = Vec::new();
            for &i in &order {
                wire.extend_from_slice(&encode_response(ids[i], v, &metadata_named(&format!("r{}", ids[i]))));
            }
            for piece in wire.chunks(chunk) {
                broker.raw(piece).await;
            }
            for call in calls {
                let id = call.correlation_id();
                let resp = call.wait(T).await.unwrap();
                assert_eq!(resp.cluster_id.as_deref(), Some(format!("r{id}").as_str()));
            }
            assert_eq!(conn.in_flight(), 0);
        });
    }
}
