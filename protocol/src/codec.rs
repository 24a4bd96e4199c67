//! Encoding requests and decoding responses through `kafka-protocol`.
//!
//! [`encode_request`] appends one whole frame (size prefix, request header,
//! body) to a `BytesMut`. On the way back, a connection splits a frame body
//! off its read buffer with [`crate::frame::split_frame`], reads the
//! correlation id with [`peek_correlation_id`] to find the waiting caller,
//! and that caller (knowing the API and version it sent) decodes with
//! [`decode_response`].
//!
//! kafka-protocol's `anyhow` errors are turned into [`DecodeError::Body`] /
//! [`EncodeError::Body`] naming the API and version, with the whole context
//! chain in the message. A body that decodes but leaves bytes over is a
//! [`DecodeError::TrailingBytes`]: it means the response was not the version
//! we think it is, and silently accepting it would hide that.
//!
//! # Allocation bounds
//!
//! Bodies handed to [`decode_response`] must come from a frame that passed
//! the frame limit ([`crate::frame::check`]), so strings and byte fields
//! (which kafka-protocol slices out of the body after checking the remaining
//! length) are bounded by the frame size.
//!
//! **Known hazard (not bounded by the frame limit).** kafka-protocol 0.18
//! calls `Vec::with_capacity(count)` with an array count read off the wire
//! *before* checking that the body holds that many elements. A 10-byte body
//! announcing 2^31 elements makes it ask the allocator for tens of
//! gigabytes, and a failed allocation aborts the process. Only a fix in
//! kafka-protocol (cap the capacity by the remaining bytes; upstream pull
//! requests 152, 161 and 200 propose it) or our own decoders remove this;
//! until then a broker that sends such a body can crash the client. The test
//! `known_hazard_kafka_protocol_preallocates_from_wire_counts` demonstrates
//! it (and fails once kafka-protocol is fixed); the `response_decode` fuzz
//! target finds it within seconds, so it serves such allocations with
//! unbacked address space in order to keep looking for other bugs.
//!
//! The two responses a consumer decodes most, Fetch and Metadata, no longer
//! go through kafka-protocol's decoder: the client decodes them with
//! [`crate::fetch_response`] and [`crate::metadata_response`], which check
//! every count against the bytes left before allocating. The group,
//! offset, produce and admin responses still go through kafka-protocol and
//! keep the hazard.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, Message};

use crate::error::{DecodeError, EncodeError};
use crate::frame::{write_frame, WriteFrameError};
use crate::header::{RequestHeader, ResponseHeader};

/// A request kafee can send: its API key and response type.
///
/// kafka-protocol has its own `Request` trait, but only when both its
/// `client` and `broker` features are on; kafee builds it with `client`
/// only, so this trait names the pairs for the APIs in
/// [`crate::versions::SUPPORTED`].
pub trait ApiRequest: Encodable + Message {
    /// The API key of the request.
    const API_KEY: ApiKey;
    /// The response to this request.
    type Response: Decodable + Message;
}

macro_rules! api_requests {
    ($($key:ident => $req:ident, $resp:ident;)*) => {
        $(
            impl ApiRequest for kafka_protocol::messages::$req {
                const API_KEY: ApiKey = ApiKey::$key;
                type Response = kafka_protocol::messages::$resp;
            }
        )*
    };
}

api_requests! {
    Produce => ProduceRequest, ProduceResponse;
    Fetch => FetchRequest, FetchResponse;
    ListOffsets => ListOffsetsRequest, ListOffsetsResponse;
    Metadata => MetadataRequest, MetadataResponse;
    OffsetCommit => OffsetCommitRequest, OffsetCommitResponse;
    OffsetFetch => OffsetFetchRequest, OffsetFetchResponse;
    FindCoordinator => FindCoordinatorRequest, FindCoordinatorResponse;
    JoinGroup => JoinGroupRequest, JoinGroupResponse;
    Heartbeat => HeartbeatRequest, HeartbeatResponse;
    LeaveGroup => LeaveGroupRequest, LeaveGroupResponse;
    SyncGroup => SyncGroupRequest, SyncGroupResponse;
    DescribeGroups => DescribeGroupsRequest, DescribeGroupsResponse;
    ListGroups => ListGroupsRequest, ListGroupsResponse;
    ApiVersions => ApiVersionsRequest, ApiVersionsResponse;
    CreateTopics => CreateTopicsRequest, CreateTopicsResponse;
    DeleteTopics => DeleteTopicsRequest, DeleteTopicsResponse;
    InitProducerId => InitProducerIdRequest, InitProducerIdResponse;
}

/// Appends one request frame to `buf`: size prefix, request header (v1 or v2
/// as the API version requires) and body.
///
/// The version must be within what kafka-protocol defines for the request
/// (normally it comes from [`crate::versions::Negotiated::version`]). On any
/// error nothing is appended.
pub fn encode_request<R: ApiRequest>(
    buf: &mut BytesMut,
    correlation_id: i32,
    client_id: Option<&str>,
    version: i16,
    req: &R,
) -> Result<(), EncodeError> {
    let api_key = R::API_KEY;
    if version < R::VERSIONS.min || version > R::VERSIONS.max {
        return Err(EncodeError::UnsupportedVersion {
            api_key,
            version,
            min: R::VERSIONS.min,
            max: R::VERSIONS.max,
        });
    }
    let header = RequestHeader {
        api_key,
        api_version: version,
        correlation_id,
        client_id,
    };
    let result = write_frame(buf, |buf| {
        header.encode(buf)?;
        if let Ok(size) = req.compute_size(version) {
            buf.reserve(size);
        }
        req.encode(buf, version).map_err(|e| EncodeError::Body {
            api_key,
            version,
            message: format!("{e:#}"),
        })
    });
    match result {
        Ok(()) => Ok(()),
        Err(WriteFrameError::Encode(e)) => Err(e),
        Err(WriteFrameError::TooLong { body_len }) => Err(EncodeError::FrameTooLarge {
            api_key,
            version,
            size: body_len,
        }),
    }
}

/// The correlation id at the front of a response frame body (every response
/// header version starts with it).
pub fn peek_correlation_id(body: &[u8]) -> Result<i32, DecodeError> {
    body.first_chunk::<4>()
        .map(|b| i32::from_be_bytes(*b))
        .ok_or(DecodeError::Truncated {
            what: "correlation id",
            needed: 4,
            available: body.len(),
        })
}

/// Decodes a response frame body (header and message, without the size
/// prefix) for `api_key` at `version`, returning its correlation id and the
/// message. The whole body must be consumed.
///
/// `body` must come from a frame checked against the frame limit (see the
/// module docs for what that does and does not bound).
pub fn decode_response<R: Decodable + Message>(
    api_key: ApiKey,
    version: i16,
    mut body: Bytes,
) -> Result<(i32, R), DecodeError> {
    if version < R::VERSIONS.min || version > R::VERSIONS.max {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            min: R::VERSIONS.min,
            max: R::VERSIONS.max,
        });
    }
    let header = ResponseHeader::decode(&mut body, api_key, version)?;
    let message = R::decode(&mut body, version).map_err(|e| DecodeError::Body {
        api_key,
        version,
        message: format!("{e:#}"),
    })?;
    if !body.is_empty() {
        return Err(DecodeError::TrailingBytes {
            api_key,
            version,
            remaining: body.len(),
        });
    }
    Ok((header.correlation_id, message))
}

/// [`decode_response`] with the response type and API key taken from the
/// request type: `decode_response_to::<FetchRequest>(12, body)`.
pub fn decode_response_to<Req: ApiRequest>(
    version: i16,
    body: Bytes,
) -> Result<(i32, Req::Response), DecodeError> {
    decode_response::<Req::Response>(Req::API_KEY, version, body)
}

/// Appends one response frame (size prefix, response header, body) to `buf`,
/// as a broker does. For test brokers and round-trip tests; kafka-protocol
/// implements `Encodable` for responses only with its `broker` feature.
pub fn encode_response<R: Encodable + Message>(
    buf: &mut BytesMut,
    api_key: ApiKey,
    correlation_id: i32,
    version: i16,
    response: &R,
) -> Result<(), EncodeError> {
    if version < R::VERSIONS.min || version > R::VERSIONS.max {
        return Err(EncodeError::UnsupportedVersion {
            api_key,
            version,
            min: R::VERSIONS.min,
            max: R::VERSIONS.max,
        });
    }
    let result = write_frame(buf, |buf| {
        ResponseHeader { correlation_id }.encode(buf, api_key.response_header_version(version));
        response
            .encode(buf, version)
            .map_err(|e| EncodeError::Body {
                api_key,
                version,
                message: format!("{e:#}"),
            })
    });
    match result {
        Ok(()) => Ok(()),
        Err(WriteFrameError::Encode(e)) => Err(e),
        Err(WriteFrameError::TooLong { body_len }) => Err(EncodeError::FrameTooLarge {
            api_key,
            version,
            size: body_len,
        }),
    }
}

/// Decodes a request frame body (header and message) as a broker does: for
/// test brokers, which read the header with
/// [`crate::header::decode_request_header`] first to learn the API, then
/// call this with the matching type and the rest of the body. kafka-protocol
/// implements `Decodable` for requests only with its `broker` feature.
pub fn decode_request<Req: Decodable + Message>(
    header: &crate::header::DecodedRequestHeader,
    mut body: Bytes,
) -> Result<Req, DecodeError> {
    let api_key = header.api_key;
    let version = header.api_version;
    if version < Req::VERSIONS.min || version > Req::VERSIONS.max {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            min: Req::VERSIONS.min,
            max: Req::VERSIONS.max,
        });
    }
    let request = Req::decode(&mut body, version).map_err(|e| DecodeError::Body {
        api_key,
        version,
        message: format!("{e:#}"),
    })?;
    if !body.is_empty() {
        return Err(DecodeError::TrailingBytes {
            api_key,
            version,
            remaining: body.len(),
        });
    }
    Ok(request)
}

/// Decodes a response body of any API in [`crate::versions::SUPPORTED`],
/// discarding the message: the entry point of the `response_decode` fuzz
/// target. Not a stable API.
#[cfg(any(test, feature = "unstable-fuzzing"))]
#[doc(hidden)]
pub fn decode_any_response(api_key: ApiKey, version: i16, body: Bytes) -> Result<i32, DecodeError> {
    use kafka_protocol::messages::*;
    macro_rules! dispatch {
        ($($key:ident => $resp:ty,)*) => {
            match api_key {
                $(ApiKey::$key => decode_response::<$resp>(api_key, version, body).map(|(cid, _)| cid),)*
                other => Err(DecodeError::UnknownApiKey { api_key: other as i16 }),
            }
        };
    }
    dispatch! {
        Produce => ProduceResponse,
        Fetch => FetchResponse,
        ListOffsets => ListOffsetsResponse,
        Metadata => MetadataResponse,
        OffsetCommit => OffsetCommitResponse,
        OffsetFetch => OffsetFetchResponse,
        FindCoordinator => FindCoordinatorResponse,
        JoinGroup => JoinGroupResponse,
        Heartbeat => HeartbeatResponse,
        LeaveGroup => LeaveGroupResponse,
        SyncGroup => SyncGroupResponse,
        DescribeGroups => DescribeGroupsResponse,
        ListGroups => ListGroupsResponse,
        ApiVersions => ApiVersionsResponse,
        CreateTopics => CreateTopicsResponse,
        DeleteTopics => DeleteTopicsResponse,
        InitProducerId => InitProducerIdResponse,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::frame::split_frame;
    use crate::versions::SUPPORTED;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    const LIMIT: usize = 1 << 20;

    fn metadata_response(version: i16) -> MetadataResponse {
        let mut broker = metadata_response::MetadataResponseBroker::default();
        broker.node_id = BrokerId(1);
        broker.host = StrBytes::from_static_str("127.0.0.1");
        broker.port = 9092;
        let mut partition = metadata_response::MetadataResponsePartition::default();
        partition.partition_index = 3;
        partition.leader_id = BrokerId(1);
        partition.replica_nodes = vec![BrokerId(1)];
        partition.isr_nodes = vec![BrokerId(1)];
        let mut topic = metadata_response::MetadataResponseTopic::default();
        topic.name = Some(TopicName(StrBytes::from_static_str("events")));
        topic.partitions = vec![partition];
        let mut r = MetadataResponse::default();
        r.brokers = vec![broker];
        r.topics = vec![topic];
        if version >= 2 {
            r.cluster_id = Some(StrBytes::from_static_str("c1"));
        }
        r
    }

    fn heartbeat_response() -> HeartbeatResponse {
        let mut r = HeartbeatResponse::default();
        r.error_code = 27;
        r
    }

    fn join_group_response(version: i16) -> JoinGroupResponse {
        let mut r = JoinGroupResponse::default();
        r.generation_id = 5;
        r.protocol_name = Some(StrBytes::from_static_str("range"));
        if version >= 7 {
            r.protocol_type = Some(StrBytes::from_static_str("consumer"));
        }
        r.leader = StrBytes::from_static_str("m-1");
        r.member_id = StrBytes::from_static_str("m-1");
        let mut m = join_group_response::JoinGroupResponseMember::default();
        m.member_id = StrBytes::from_static_str("m-1");
        m.metadata = Bytes::from_static(&[0, 1, 0, 0, 0, 0]);
        r.members = vec![m];
        r
    }

    /// Response frame bodies (without prefix) for several APIs and versions.
    fn sample_bodies() -> Vec<(ApiKey, i16, Bytes)> {
        let mut out = Vec::new();
        let mut push = |key: ApiKey, version: i16, frame: BytesMut| {
            let mut frame = frame;
            let body = split_frame(&mut frame, LIMIT).unwrap().unwrap();
            out.push((key, version, body));
        };
        for version in [1, 7, 9, 12] {
            let mut buf = BytesMut::new();
            encode_response(
                &mut buf,
                ApiKey::Metadata,
                11,
                version,
                &metadata_response(version),
            )
            .unwrap();
            push(ApiKey::Metadata, version, buf);
        }
        for version in [0, 4] {
            let mut buf = BytesMut::new();
            encode_response(
                &mut buf,
                ApiKey::Heartbeat,
                12,
                version,
                &heartbeat_response(),
            )
            .unwrap();
            push(ApiKey::Heartbeat, version, buf);
        }
        for version in [2, 5, 7] {
            let mut buf = BytesMut::new();
            encode_response(
                &mut buf,
                ApiKey::JoinGroup,
                13,
                version,
                &join_group_response(version),
            )
            .unwrap();
            push(ApiKey::JoinGroup, version, buf);
        }
        for version in [4, 11, 12] {
            let mut buf = BytesMut::new();
            let mut r = FetchResponse::default();
            let mut p = fetch_response::PartitionData::default();
            p.partition_index = 0;
            p.high_watermark = 100;
            p.records = Some(Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
            let mut t = fetch_response::FetchableTopicResponse::default();
            t.topic = TopicName(StrBytes::from_static_str("events"));
            t.partitions = vec![p];
            r.responses = vec![t];
            encode_response(&mut buf, ApiKey::Fetch, 14, version, &r).unwrap();
            push(ApiKey::Fetch, version, buf);
        }
        out
    }

    /// Every API and version of the table: a default request and a default
    /// response survive our framing and headers and decode equal, with
    /// kafka-protocol's broker-side codecs on the other end.
    #[test]
    fn every_table_version_round_trips() {
        macro_rules! each {
            ($($req:ident, $resp:ident;)*) => {{
                let mut checked = 0;
                $(
                    let api = <$req as ApiRequest>::API_KEY;
                    let s = crate::versions::supported(api).unwrap();
                    for version in s.min..=s.max {
                        let cid = i32::from(version) * 1000 + api as i32;
                        let mut buf = BytesMut::new();
                        encode_request(&mut buf, cid, Some("kafee-test"), version, &$req::default()).unwrap();
                        let mut body = split_frame(&mut buf, LIMIT).unwrap().unwrap();
                        let header = crate::header::decode_request_header(&mut body).unwrap();
                        assert_eq!((header.api_key, header.api_version, header.correlation_id), (api, version, cid));
                        assert_eq!(header.client_id.as_deref(), Some("kafee-test"));
                        let req: $req = decode_request(&header, body).unwrap();
                        assert_eq!(req, $req::default(), "{api:?} v{version}");

                        let mut buf = BytesMut::new();
                        encode_response(&mut buf, api, cid, version, &$resp::default()).unwrap();
                        let body = split_frame(&mut buf, LIMIT).unwrap().unwrap();
                        let (got_cid, resp) = decode_response_to::<$req>(version, body).unwrap();
                        assert_eq!((got_cid, resp), (cid, $resp::default()), "{api:?} v{version}");
                        checked += 1;
                    }
                )*
                checked
            }};
        }
        let checked = each! {
            ProduceRequest, ProduceResponse;
            FetchRequest, FetchResponse;
            ListOffsetsRequest, ListOffsetsResponse;
            MetadataRequest, MetadataResponse;
            OffsetCommitRequest, OffsetCommitResponse;
            OffsetFetchRequest, OffsetFetchResponse;
            FindCoordinatorRequest, FindCoordinatorResponse;
            JoinGroupRequest, JoinGroupResponse;
            HeartbeatRequest, HeartbeatResponse;
            LeaveGroupRequest, LeaveGroupResponse;
            SyncGroupRequest, SyncGroupResponse;
            DescribeGroupsRequest, DescribeGroupsResponse;
            ListGroupsRequest, ListGroupsResponse;
            ApiVersionsRequest, ApiVersionsResponse;
            CreateTopicsRequest, CreateTopicsResponse;
            DeleteTopicsRequest, DeleteTopicsResponse;
            InitProducerIdRequest, InitProducerIdResponse;
        };
        let expected: i16 = SUPPORTED.iter().map(|s| s.max - s.min + 1).sum();
        assert_eq!(checked, i32::from(expected));
    }

    #[test]
    fn request_frame_has_prefix_header_and_body() {
        let mut req = HeartbeatRequest::default();
        req.group_id = GroupId(StrBytes::from_static_str("g"));
        req.generation_id = 5;
        req.member_id = StrBytes::from_static_str("m");
        let mut buf = BytesMut::from(&b"keep"[..]);
        encode_request(&mut buf, 77, Some("cli"), 2, &req).unwrap();
        assert_eq!(&buf[..4], b"keep");
        let mut rest = buf.split_off(4);
        let body = split_frame(&mut rest, LIMIT).unwrap().unwrap();
        assert!(rest.is_empty());
        // api key 12, version 2, correlation id 77, client id "cli", then the body.
        assert_eq!(
            &body[..13],
            &[0, 12, 0, 2, 0, 0, 0, 77, 0, 3, b'c', b'l', b'i']
        );
        let mut body = body;
        let header = crate::header::decode_request_header(&mut body).unwrap();
        let decoded: HeartbeatRequest = decode_request(&header, body).unwrap();
        assert_eq!(header.correlation_id, 77);
        assert_eq!(header.client_id.as_deref(), Some("cli"));
        assert_eq!(decoded, req);
    }

    #[test]
    fn flexible_request_round_trips() {
        let mut req = MetadataRequest::default();
        req.topics = None;
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 1, None, 12, &req).unwrap();
        let body = split_frame(&mut buf, LIMIT).unwrap().unwrap();
        let mut body = body;
        let header = crate::header::decode_request_header(&mut body).unwrap();
        let decoded: MetadataRequest = decode_request(&header, body).unwrap();
        assert_eq!((header.header_version, header.api_version), (2, 12));
        assert_eq!(header.client_id, None);
        assert_eq!(decoded, req);
    }

    #[test]
    fn unsupported_encode_version_writes_nothing() {
        let mut buf = BytesMut::new();
        let err = encode_request(&mut buf, 1, None, 3, &FetchRequest::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode Fetch v3 request: kafka-protocol supports versions 4..=18"
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn body_encode_error_writes_nothing() {
        // group.instance.id exists from Heartbeat v3 on; kafka-protocol refuses
        // to drop it silently.
        let mut req = HeartbeatRequest::default();
        req.group_instance_id = Some(StrBytes::from_static_str("static-1"));
        let mut buf = BytesMut::from(&b"x"[..]);
        let err = encode_request(&mut buf, 1, None, 2, &req).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode Heartbeat v2 body: A field is set that is not available on the selected protocol version"
        );
        assert_eq!(&buf[..], b"x");
    }

    #[test]
    fn responses_round_trip() {
        for (key, version, body) in sample_bodies() {
            let cid = peek_correlation_id(&body).unwrap();
            assert_eq!(
                decode_any_response(key, version, body.clone()),
                Ok(cid),
                "{key:?} v{version}"
            );
        }
        let mut buf = BytesMut::new();
        encode_response(&mut buf, ApiKey::Metadata, 5, 12, &metadata_response(12)).unwrap();
        let body = split_frame(&mut buf, LIMIT).unwrap().unwrap();
        let (cid, decoded) = decode_response_to::<MetadataRequest>(12, body).unwrap();
        assert_eq!(cid, 5);
        assert_eq!(decoded, metadata_response(12));
    }

    #[test]
    fn wrong_version_is_caught() {
        // A v0 Heartbeat body (error code only) read as v1 (throttle time first).
        let mut buf = BytesMut::new();
        encode_response(&mut buf, ApiKey::Heartbeat, 1, 0, &heartbeat_response()).unwrap();
        let body = split_frame(&mut buf, LIMIT).unwrap().unwrap();
        let err = decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 1, body).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Body {
                api_key: ApiKey::Heartbeat,
                version: 1,
                ..
            }
        ));
        assert_eq!(err.to_string(), "cannot decode Heartbeat v1 body: Not enough bytes remaining in buffer to read value (requested 4 but only 2 available)");
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut buf = BytesMut::new();
        encode_response(&mut buf, ApiKey::Heartbeat, 1, 0, &heartbeat_response()).unwrap();
        buf.extend_from_slice(&[0, 0]);
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&((buf.len() - 4) as i32).to_be_bytes());
        frame.extend_from_slice(&buf[4..]);
        let body = split_frame(&mut frame, LIMIT).unwrap().unwrap();
        let err = decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 0, body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Heartbeat v0 body left 2 trailing bytes undecoded"
        );
    }

    #[test]
    fn out_of_range_decode_version_is_an_error() {
        let err = decode_response::<FetchResponse>(ApiKey::Fetch, 99, Bytes::from_static(&[0; 8]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot decode Fetch v99: kafka-protocol supports versions 4..=18"
        );
        assert_eq!(
            peek_correlation_id(&[1, 2]).unwrap_err().to_string(),
            "correlation id: needs 4 bytes, frame has 2"
        );
    }

    #[test]
    fn every_truncation_of_every_sample_is_a_decode_error() {
        for (key, version, body) in sample_bodies() {
            for len in 0..body.len() {
                let err = decode_any_response(key, version, body.slice(..len));
                assert!(
                    err.is_err(),
                    "{key:?} v{version} truncated to {len} decoded"
                );
            }
        }
    }

    #[test]
    fn dispatch_covers_the_version_table() {
        for s in SUPPORTED {
            // An empty body is an error for every API, never "unknown API".
            match decode_any_response(s.api_key, s.max, Bytes::new()) {
                Err(DecodeError::Truncated { .. }) => {}
                other => panic!("{:?}: {other:?}", s.api_key),
            }
        }
    }

    /// kafka-protocol 0.18 pre-allocates `count * size_of::<T>()` for an
    /// array before reading its elements, and a failed allocation aborts the
    /// process. This documents the hazard described in the module docs: a
    /// 12-byte Metadata v1 body announcing 2^31-1 brokers kills the process.
    /// When kafka-protocol caps the capacity, the child exits cleanly, this
    /// test fails, and the module docs and fuzz target should be updated.
    #[test]
    fn known_hazard_kafka_protocol_preallocates_from_wire_counts() {
        const BODY: &[u8] = &[0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        if std::env::var_os("KAFEE_HAZARD_CHILD").is_some() {
            let r =
                decode_response::<MetadataResponse>(ApiKey::Metadata, 1, Bytes::from_static(BODY));
            println!("child survived: {r:?}");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "codec::tests::known_hazard_kafka_protocol_preallocates_from_wire_counts",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KAFEE_HAZARD_CHILD", "1")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "kafka-protocol no longer aborts: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.contains("memory allocation of"), "{stderr}");
    }

    proptest! {
        /// Garbage made of 0x00 and 0xff bytes never panics. Only
        /// non-flexible versions and these two byte values are used so that
        /// no array count read from the garbage is large and positive (see
        /// the known hazard above); truncations are covered exhaustively above.
        #[test]
        fn zero_and_ff_garbage_never_panics(
            index in 0usize..SUPPORTED.len(),
            version in -1i16..13,
            bytes in proptest::collection::vec(prop_oneof![Just(0u8), Just(0xffu8)], 0..64),
        ) {
            let key = SUPPORTED[index].api_key;
            // Non-flexible versions only: flexible ones read varints, where 0xff
            // bytes build large counts.
            prop_assume!(key.request_header_version(version) < 2);
            let _ = decode_any_response(key, version, Bytes::from(bytes));
        }

        /// Truncated responses of random sizes are errors, never panics.
        #[test]
        fn truncated_responses_are_errors(index in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
            let samples = sample_bodies();
            let (key, version, body) = samples[index.index(samples.len())].clone();
            let len = cut.index(body.len());
            prop_assert!(decode_any_response(key, version, body.slice(..len)).is_err());
        }
    }
}
