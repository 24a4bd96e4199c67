//! A minimal blocking Kafka connection for the test kit: ApiVersions negotiation, Metadata, and the
//! admin requests (CreateTopics, DeleteTopics) that integration tests need to set up their topics.
//!
//! Messages are encoded and decoded with the `kafka-protocol` crate. This file is deliberately small and
//! self-contained: it goes away once `kafee-client` has admin requests of its own.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest, MetadataResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Message, StrBytes, VersionRange,
};

/// Largest response frame this connection accepts; anything larger is refused before allocating.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Socket read and write timeout.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Error code UNSUPPORTED_VERSION, which a broker answers to an ApiVersions version it does not know.
const UNSUPPORTED_VERSION: i16 = 35;

/// The client id this connection sends in every request header.
const CLIENT_ID: &str = "kafee-tests";

/// What can go wrong talking to a broker through [`Connection`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The TCP connection could not be opened.
    #[error("connect to {address}: {source}")]
    Connect {
        /// The broker address.
        address: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("{api:?} v{version} to {address}: {source}")]
    Io {
        /// The request being sent.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// The broker address.
        address: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// `kafka-protocol` could not encode the request.
    #[error("{api:?} v{version} to {address}: encode: {message}")]
    Encode {
        /// The request.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// The broker address.
        address: String,
        /// What the encoder said.
        message: String,
    },
    /// The response could not be decoded.
    #[error("{api:?} v{version} from {address}: decode: {message}")]
    Decode {
        /// The request this answered.
        api: ApiKey,
        /// Its version.
        version: i16,
        /// The broker address.
        address: String,
        /// What went wrong.
        message: String,
    },
    /// A response frame announced a size outside `4..=MAX_FRAME_BYTES`.
    #[error("{api:?} from {address}: response frame of {size} bytes outside 4..={limit}")]
    FrameSize {
        /// The request this answered.
        api: ApiKey,
        /// The broker address.
        address: String,
        /// The announced size.
        size: i32,
        /// [`MAX_FRAME_BYTES`].
        limit: usize,
    },
    /// The response carried another correlation id than the request.
    #[error("{api:?} from {address}: correlation id {actual}, expected {expected}")]
    CorrelationId {
        /// The request.
        api: ApiKey,
        /// The broker address.
        address: String,
        /// The id sent.
        expected: i32,
        /// The id received.
        actual: i32,
    },
    /// The broker and `kafka-protocol` share no version of this API.
    #[error("{api:?}: {address} supports {broker:?}, kafka-protocol supports {ours}")]
    Unsupported {
        /// The API.
        api: ApiKey,
        /// The broker address.
        address: String,
        /// The broker's range, `None` when it did not list the API at all.
        broker: Option<(i16, i16)>,
        /// The range `kafka-protocol` can encode.
        ours: VersionRange,
    },
    /// The broker answered with a non-zero error code.
    #[error("{api:?} on {address}: error code {code}{}", context_suffix(.context))]
    ErrorCode {
        /// The request.
        api: ApiKey,
        /// The broker address.
        address: String,
        /// The Kafka error code.
        code: i16,
        /// The topic or message it concerns, possibly empty.
        context: String,
    },
    /// A condition polled through Metadata did not hold in time.
    #[error("{address}: {what} not true after {waited:?}")]
    Timeout {
        /// The broker address.
        address: String,
        /// The condition.
        what: String,
        /// How long it was polled.
        waited: Duration,
    },
}

fn context_suffix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" ({context})")
    }
}

/// A request `kafka-protocol` can encode, with its API key and response type.
///
/// `kafka-protocol`'s own `Request` trait exists only with its `broker` feature, which the workspace
/// does not enable.
pub trait WireRequest: Message + Encodable + HeaderVersion {
    /// The API key.
    const KEY: ApiKey;
    /// The matching response.
    type Response: Decodable;
}

impl WireRequest for ApiVersionsRequest {
    const KEY: ApiKey = ApiKey::ApiVersions;
    type Response = ApiVersionsResponse;
}
impl WireRequest for MetadataRequest {
    const KEY: ApiKey = ApiKey::Metadata;
    type Response = MetadataResponse;
}
impl WireRequest for CreateTopicsRequest {
    const KEY: ApiKey = ApiKey::CreateTopics;
    type Response = CreateTopicsResponse;
}
impl WireRequest for DeleteTopicsRequest {
    const KEY: ApiKey = ApiKey::DeleteTopics;
    type Response = DeleteTopicsResponse;
}

/// The highest version in both `ours` and the broker's `[min, max]`, if any.
pub fn negotiate(ours: VersionRange, broker: (i16, i16)) -> Option<i16> {
    let common = ours.intersect(&VersionRange {
        min: broker.0,
        max: broker.1,
    });
    (!common.is_empty()).then_some(common.max)
}

/// One blocking connection to a broker, with the versions it advertised.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    address: String,
    next_correlation_id: i32,
    api_versions: ApiVersionsResponse,
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `address` (`host:port`) and asks for its API versions.
    pub fn connect(address: &str) -> Result<Self, WireError> {
        let connect_error = |source| WireError::Connect {
            address: address.to_owned(),
            source,
        };
        let stream = TcpStream::connect(address).map_err(connect_error)?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(connect_error)?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        let mut connection = Connection {
            stream,
            address: address.to_owned(),
            next_correlation_id: 1,
            api_versions: ApiVersionsResponse::default(),
            versions: BTreeMap::new(),
        };
        connection.handshake()?;
        Ok(connection)
    }

    /// The broker address this connection was opened to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The broker's ApiVersions answer.
    pub fn api_versions(&self) -> &ApiVersionsResponse {
        &self.api_versions
    }

    /// The broker's `(min, max)` versions of `api`, if it supports it.
    pub fn broker_versions(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.versions.get(&(api as i16)).copied()
    }

    /// The version of `R` this connection uses: the highest both sides support.
    pub fn version_of<R: WireRequest>(&self) -> Result<i16, WireError> {
        let broker = self.broker_versions(R::KEY);
        broker
            .and_then(|range| negotiate(R::VERSIONS, range))
            .ok_or_else(|| WireError::Unsupported {
                api: R::KEY,
                address: self.address.clone(),
                broker,
                ours: R::VERSIONS,
            })
    }

    /// Sends `request` at the negotiated version and returns the decoded response and that version.
    pub fn call<R: WireRequest>(&mut self, request: &R) -> Result<(R::Response, i16), WireError> {
        let version = self.version_of::<R>()?;
        let body = self.round_trip(request, version)?;
        let response = self.decode::<R::Response>(R::KEY, version, body)?;
        Ok((response, version))
    }

    /// ApiVersions at the highest version we know; on UNSUPPORTED_VERSION the broker answers in v0
    /// with its own ApiVersions range, and we retry at the best common version.
    fn handshake(&mut self) -> Result<(), WireError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kafee-tests"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = ApiVersionsRequest::VERSIONS.max;
        for _ in 0..2 {
            let body = self.round_trip(&request, version)?;
            // Both the v0 error answer and every later version start with error_code.
            let error_code = body
                .get(..2)
                .map_or(0, |b| i16::from_be_bytes([b[0], b[1]]));
            if error_code == UNSUPPORTED_VERSION {
                let fallback = self.decode::<ApiVersionsResponse>(ApiKey::ApiVersions, 0, body)?;
                let broker = fallback
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map(|k| (k.min_version, k.max_version));
                version = broker
                    .and_then(|range| negotiate(ApiVersionsRequest::VERSIONS, range))
                    .ok_or_else(|| WireError::Unsupported {
                        api: ApiKey::ApiVersions,
                        address: self.address.clone(),
                        broker,
                        ours: ApiVersionsRequest::VERSIONS,
                    })?;
                continue;
            }
            let response =
                self.decode::<ApiVersionsResponse>(ApiKey::ApiVersions, version, body)?;
            if response.error_code != 0 {
                return Err(WireError::ErrorCode {
                    api: ApiKey::ApiVersions,
                    address: self.address.clone(),
                    code: response.error_code,
                    context: String::new(),
                });
            }
            self.versions = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            self.api_versions = response;
            return Ok(());
        }
        Err(WireError::Unsupported {
            api: ApiKey::ApiVersions,
            address: self.address.clone(),
            broker: None,
            ours: ApiVersionsRequest::VERSIONS,
        })
    }

    /// Writes one request frame and reads its response frame; returns the body after the header.
    fn round_trip<R: WireRequest>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<Bytes, WireError> {
        let api = R::KEY;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));

        let encode_error = |message: String| WireError::Encode {
            api,
            version,
            address: self.address.clone(),
            message,
        };
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(|e| encode_error(e.to_string()))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| encode_error(e.to_string()))?;
        let size = i32::try_from(frame.len() - 4)
            .map_err(|_| encode_error(format!("request of {} bytes", frame.len())))?;
        frame[..4].copy_from_slice(&size.to_be_bytes());

        let io_error = |source| WireError::Io {
            api,
            version,
            address: self.address.clone(),
            source,
        };
        self.stream.write_all(&frame).map_err(io_error)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io_error)?;
        let size = i32::from_be_bytes(size);
        let len = usize::try_from(size)
            .ok()
            .filter(|len| (4..=MAX_FRAME_BYTES).contains(len))
            .ok_or_else(|| WireError::FrameSize {
                api,
                address: self.address.clone(),
                size,
                limit: MAX_FRAME_BYTES,
            })?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).map_err(io_error)?;
        let mut body = Bytes::from(body);

        let header_version = api.response_header_version(version);
        let header =
            ResponseHeader::decode(&mut body, header_version).map_err(|e| WireError::Decode {
                api,
                version,
                address: self.address.clone(),
                message: format!("response header v{header_version}: {e}"),
            })?;
        if header.correlation_id != correlation_id {
            return Err(WireError::CorrelationId {
                api,
                address: self.address.clone(),
                expected: correlation_id,
                actual: header.correlation_id,
            });
        }
        Ok(body)
    }

    fn decode<T: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        mut body: Bytes,
    ) -> Result<T, WireError> {
        let decode_error = |message: String| WireError::Decode {
            api,
            version,
            address: self.address.clone(),
            message,
        };
        let value = T::decode(&mut body, version).map_err(|e| decode_error(e.to_string()))?;
        if body.has_remaining() {
            return Err(decode_error(format!(
                "{} bytes left over",
                body.remaining()
            )));
        }
        Ok(value)
    }

    /// Metadata for `topics` (all topics when `None`), without creating any.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse, WireError> {
        let topics = topics.map(|names| {
            names
                .iter()
                .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                .collect()
        });
        let request = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        Ok(self.call(&request)?.0)
    }

    /// Creates `topic` with `partitions` partitions and replication factor 1, then waits until
    /// Metadata shows every partition with a leader.
    pub fn create_topic(&mut self, topic: &str, partitions: i32) -> Result<(), WireError> {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000);
        let (response, _) = self.call(&request)?;
        for result in &response.topics {
            if result.error_code != 0 {
                return Err(WireError::ErrorCode {
                    api: ApiKey::CreateTopics,
                    address: self.address.clone(),
                    code: result.error_code,
                    context: format!(
                        "topic {}: {}",
                        result.name.0,
                        result.error_message.as_deref().unwrap_or("")
                    ),
                });
            }
        }
        self.wait_for_leaders(topic, partitions, Duration::from_secs(30))
    }

    /// Polls Metadata until `topic` has `partitions` partitions, each with a leader and no error.
    pub fn wait_for_leaders(
        &mut self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
    ) -> Result<(), WireError> {
        let started = Instant::now();
        loop {
            let metadata = self.metadata(Some(&[topic]))?;
            let ready = metadata.topics.iter().any(|t| {
                t.error_code == 0
                    && t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)
                    && t.partitions.len() == usize::try_from(partitions).unwrap_or(usize::MAX)
                    && t.partitions
                        .iter()
                        .all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
            });
            if ready {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(WireError::Timeout {
                    address: self.address.clone(),
                    what: format!("topic {topic} has {partitions} partitions with leaders"),
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Deletes `topic`.
    pub fn delete_topic(&mut self, topic: &str) -> Result<(), WireError> {
        let version = self.version_of::<DeleteTopicsRequest>()?;
        // v6 names topics in `topics` (by name or id); v1-v5 in `topic_names`.
        let request = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(topic)))
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![topic_name(topic)])
        }
        .with_timeout_ms(30_000);
        let (response, _) = self.call(&request)?;
        for result in &response.responses {
            if result.error_code != 0 {
                return Err(WireError::ErrorCode {
                    api: ApiKey::DeleteTopics,
                    address: self.address.clone(),
                    code: result.error_code,
                    context: format!(
                        "topic {}: {}",
                        result.name.as_ref().map_or("?", |n| n.0.as_str()),
                        result.error_message.as_deref().unwrap_or("")
                    ),
                });
            }
        }
        Ok(())
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn negotiate_picks_highest_common_version() {
        let ours = VersionRange { min: 2, max: 7 };
        assert_eq!(negotiate(ours, (0, 5)), Some(5));
        assert_eq!(negotiate(ours, (3, 12)), Some(7));
        assert_eq!(negotiate(ours, (7, 7)), Some(7));
        assert_eq!(negotiate(ours, (0, 1)), None);
        assert_eq!(negotiate(ours, (8, 9)), None);
    }

    /// Reads one request frame; returns (api_key, api_version, correlation_id).
    fn read_request(stream: &mut TcpStream) -> (i16, i16, i32) {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut frame).unwrap();
        let mut frame = Bytes::from(frame);
        (frame.get_i16(), frame.get_i16(), frame.get_i32())
    }

    fn write_response(stream: &mut TcpStream, correlation_id: i32, body: &[u8]) {
        let mut frame = BytesMut::new();
        frame.put_i32(4 + body.len() as i32);
        frame.put_i32(correlation_id);
        frame.put_slice(body);
        stream.write_all(&frame).unwrap();
    }

    /// ApiVersions v0/v1/v2 body (non-flexible): error_code, [api_key min max], throttle (v1+).
    fn api_versions_body(
        error_code: i16,
        keys: &[(i16, i16, i16)],
        with_throttle: bool,
    ) -> Vec<u8> {
        let mut body = BytesMut::new();
        body.put_i16(error_code);
        body.put_i32(keys.len() as i32);
        for &(key, min, max) in keys {
            body.put_i16(key);
            body.put_i16(min);
            body.put_i16(max);
        }
        if with_throttle {
            body.put_i32(0);
        }
        body.to_vec()
    }

    /// A broker that knows ApiVersions only up to v2 answers our v4 with UNSUPPORTED_VERSION in v0;
    /// the connection must retry at v2 and keep the ranges of that second answer.
    #[test]
    fn handshake_falls_back_when_the_broker_refuses_our_api_versions_version() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let broker = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let (key, version, correlation_id) = read_request(&mut stream);
            assert_eq!((key, version), (18, 4));
            write_response(
                &mut stream,
                correlation_id,
                &api_versions_body(UNSUPPORTED_VERSION, &[(18, 0, 2)], false),
            );
            let (key, version, correlation_id) = read_request(&mut stream);
            assert_eq!((key, version), (18, 2));
            write_response(
                &mut stream,
                correlation_id,
                &api_versions_body(0, &[(18, 0, 2), (3, 1, 9), (1, 4, 11)], true),
            );
        });
        let connection = Connection::connect(&address).unwrap();
        broker.join().unwrap();
        assert_eq!(connection.broker_versions(ApiKey::Metadata), Some((1, 9)));
        assert_eq!(connection.broker_versions(ApiKey::Fetch), Some((4, 11)));
        assert_eq!(connection.broker_versions(ApiKey::JoinGroup), None);
        assert_eq!(connection.version_of::<MetadataRequest>().unwrap(), 9);
        let err = connection.version_of::<CreateTopicsRequest>().unwrap_err();
        assert!(
            err.to_string().contains("CreateTopics") && err.to_string().contains("None"),
            "{err}"
        );
    }

    /// A frame size read off the wire is checked before anything is allocated for it.
    #[test]
    fn oversized_response_frame_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let broker = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            read_request(&mut stream);
            stream.write_all(&i32::MAX.to_be_bytes()).unwrap();
        });
        let err = Connection::connect(&address).unwrap_err();
        broker.join().unwrap();
        assert!(
            matches!(err, WireError::FrameSize { size: i32::MAX, .. }),
            "{err}"
        );
    }

    #[test]
    fn mismatched_correlation_id_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let broker = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let (_, _, correlation_id) = read_request(&mut stream);
            write_response(
                &mut stream,
                correlation_id + 7,
                &api_versions_body(0, &[], false),
            );
        });
        let err = Connection::connect(&address).unwrap_err();
        broker.join().unwrap();
        assert!(
            matches!(
                err,
                WireError::CorrelationId {
                    expected: 1,
                    actual: 8,
                    ..
                }
            ),
            "{err}"
        );
    }
}
