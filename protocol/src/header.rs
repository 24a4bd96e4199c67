//! Request and response headers.
//!
//! | header | fields | used when |
//! | --- | --- | --- |
//! | request v0 | api_key, api_version, correlation_id | ControlledShutdown v0 only |
//! | request v1 | + client_id (`NULLABLE_STRING`) | the API version is not flexible |
//! | request v2 | + tagged fields | the API version is flexible |
//! | response v0 | correlation_id | not flexible, and ApiVersions always |
//! | response v1 | + tagged fields | flexible |
//!
//! The header version of each API and version comes from kafka-protocol's
//! generated `HeaderVersion` impls (through [`ApiKey::request_header_version`]
//! and [`ApiKey::response_header_version`]), which follow the flexible-version
//! range of each message schema. ApiVersions responses always use header v0,
//! so a client can read a broker's answer even when the broker rejected the
//! request version.
//!
//! The client id stays a classic `NULLABLE_STRING` (2-byte length) even in
//! the flexible request header v2.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::error::{DecodeError, EncodeError};

/// The header a client writes before every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    /// The API of the request.
    pub api_key: ApiKey,
    /// The version of the request body.
    pub api_version: i16,
    /// Chosen by the client; the response carries it back.
    pub correlation_id: i32,
    /// The client id (`client.id`), `None` for null.
    pub client_id: Option<&'a str>,
}

impl RequestHeader<'_> {
    /// The header version this API version uses (0, 1 or 2).
    pub fn header_version(&self) -> i16 {
        self.api_key.request_header_version(self.api_version)
    }

    /// Appends the header to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let header_version = self.header_version();
        let client_id = self.client_id.map(str::as_bytes);
        let client_id_len = match client_id {
            Some(id) => i16::try_from(id.len())
                .map_err(|_| EncodeError::ClientIdTooLong { len: id.len() })?,
            None => -1,
        };
        buf.reserve(self.encoded_len());
        buf.put_i16(self.api_key as i16);
        buf.put_i16(self.api_version);
        buf.put_i32(self.correlation_id);
        if header_version >= 1 {
            buf.put_i16(client_id_len);
            if let Some(id) = client_id {
                buf.put_slice(id);
            }
        }
        if header_version >= 2 {
            // No tagged fields.
            buf.put_u8(0);
        }
        Ok(())
    }

    /// The encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        let header_version = self.header_version();
        let mut len = 8;
        if header_version >= 1 {
            len += 2 + self.client_id.map_or(0, str::len);
        }
        if header_version >= 2 {
            len += 1;
        }
        len
    }
}

/// A request header read by a broker (the test brokers and fuzzers use this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRequestHeader {
    /// The API of the request.
    pub api_key: ApiKey,
    /// The version of the request body.
    pub api_version: i16,
    /// The header version that was read.
    pub header_version: i16,
    /// The client's correlation id.
    pub correlation_id: i32,
    /// The client id, `None` for null (or header v0).
    pub client_id: Option<String>,
}

/// Reads a request header from the front of `buf` (a frame body), leaving
/// `buf` at the request body. Fails on an unknown API key, a truncated
/// header, a client id that is not UTF-8 or malformed tagged fields.
pub fn decode_request_header(buf: &mut Bytes) -> Result<DecodedRequestHeader, DecodeError> {
    let fixed = buf.first_chunk::<8>().ok_or(DecodeError::Truncated {
        what: "request header",
        needed: 8,
        available: buf.len(),
    })?;
    let raw_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let api_key =
        ApiKey::try_from(raw_key).map_err(|()| DecodeError::UnknownApiKey { api_key: raw_key })?;
    let header_version = api_key.request_header_version(api_version);
    let header_error = |reason: String| DecodeError::Header {
        api_key,
        version: api_version,
        header_version,
        reason,
    };
    buf.advance(8);
    let mut client_id = None;
    if header_version >= 1 {
        if buf.len() < 2 {
            return Err(header_error("truncated client id length".into()));
        }
        let len = buf.get_i16();
        if len >= 0 {
            let len = len as usize;
            if buf.len() < len {
                return Err(header_error(format!(
                    "client id of {len} bytes but {} left",
                    buf.len()
                )));
            }
            let id = buf.split_to(len);
            let id = std::str::from_utf8(&id)
                .map_err(|e| header_error(format!("client id is not UTF-8: {e}")))?;
            client_id = Some(id.to_owned());
        } else if len != -1 {
            return Err(header_error(format!("client id length {len} is negative")));
        }
    }
    if header_version >= 2 {
        skip_tagged_fields(buf).map_err(header_error)?;
    }
    Ok(DecodedRequestHeader {
        api_key,
        api_version,
        header_version,
        correlation_id,
        client_id,
    })
}

/// The header of a response: its correlation id (and, in v1, tagged fields,
/// which Kafka defines none of and this client skips).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The correlation id of the request this answers.
    pub correlation_id: i32,
}

/// The response header version of an API version (ApiVersions: always 0).
pub fn response_header_version(api_key: ApiKey, version: i16) -> i16 {
    api_key.response_header_version(version)
}

impl ResponseHeader {
    /// Reads the response header of `api_key` at `version` from the front of
    /// `buf` (a frame body), leaving `buf` at the response body.
    pub fn decode(buf: &mut Bytes, api_key: ApiKey, version: i16) -> Result<Self, DecodeError> {
        let header_version = response_header_version(api_key, version);
        let correlation_id = crate::codec::peek_correlation_id(buf)?;
        buf.advance(4);
        if header_version >= 1 {
            skip_tagged_fields(buf).map_err(|reason| DecodeError::Header {
                api_key,
                version,
                header_version,
                reason,
            })?;
        }
        Ok(ResponseHeader { correlation_id })
    }

    /// Appends the header in `header_version` (0 or 1) to `buf` (for test brokers).
    pub fn encode(&self, buf: &mut BytesMut, header_version: i16) {
        buf.put_i32(self.correlation_id);
        if header_version >= 1 {
            buf.put_u8(0);
        }
    }
}

/// Reads an unsigned varint (at most 5 bytes, as Kafka's `UNSIGNED_VARINT`).
fn get_uvarint(buf: &mut Bytes) -> Result<u32, String> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let Some(&byte) = buf.first() else {
            return Err("truncated varint".into());
        };
        buf.advance(1);
        if i == 4 && byte > 0x0f {
            return Err("varint longer than 32 bits".into());
        }
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 32 bits".into())
}

/// Skips a tagged-field section: a count, then per field a tag, a size and
/// that many bytes. Every size is checked against what remains.
fn skip_tagged_fields(buf: &mut Bytes) -> Result<(), String> {
    let count = get_uvarint(buf)?;
    for _ in 0..count {
        let _tag = get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        if size > buf.len() {
            return Err(format!(
                "tagged field of {size} bytes but {} left",
                buf.len()
            ));
        }
        buf.advance(size);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use proptest::prelude::*;

    const KEYS: &[ApiKey] = &[
        ApiKey::Produce,
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
        ApiKey::DescribeGroups,
        ApiKey::ListGroups,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::InitProducerId,
    ];

    #[test]
    fn header_versions_follow_flexible_ranges() {
        assert_eq!(ApiKey::Fetch.request_header_version(11), 1);
        assert_eq!(ApiKey::Fetch.request_header_version(12), 2);
        assert_eq!(response_header_version(ApiKey::Fetch, 11), 0);
        assert_eq!(response_header_version(ApiKey::Fetch, 12), 1);
        assert_eq!(ApiKey::Metadata.request_header_version(8), 1);
        assert_eq!(ApiKey::Metadata.request_header_version(9), 2);
        // ApiVersions answers with header v0 at every version.
        assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
        for v in 0..=4 {
            assert_eq!(response_header_version(ApiKey::ApiVersions, v), 0);
        }
    }

    #[test]
    fn encodes_v1_bytes_exactly() {
        let mut buf = BytesMut::new();
        RequestHeader {
            api_key: ApiKey::Metadata,
            api_version: 1,
            correlation_id: 7,
            client_id: Some("ab"),
        }
        .encode(&mut buf)
        .unwrap();
        assert_eq!(&buf[..], &[0, 3, 0, 1, 0, 0, 0, 7, 0, 2, b'a', b'b']);
    }

    #[test]
    fn encodes_v2_with_null_client_id() {
        let h = RequestHeader {
            api_key: ApiKey::ApiVersions,
            api_version: 3,
            correlation_id: -1,
            client_id: None,
        };
        let mut buf = BytesMut::new();
        h.encode(&mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 18, 0, 3, 255, 255, 255, 255, 255, 255, 0]);
        assert_eq!(h.encoded_len(), buf.len());
    }

    #[test]
    fn client_id_too_long_is_an_error() {
        let id = "x".repeat(40_000);
        let err = RequestHeader {
            api_key: ApiKey::Metadata,
            api_version: 1,
            correlation_id: 0,
            client_id: Some(&id),
        }
        .encode(&mut BytesMut::new())
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "client id of 40000 bytes is longer than 32767"
        );
    }

    #[test]
    fn response_header_v1_skips_tagged_fields() {
        let mut body = Bytes::from_static(&[0, 0, 0, 42, 2, 0, 1, 9, 5, 0, 0xee]);
        let h = ResponseHeader::decode(&mut body, ApiKey::Fetch, 12).unwrap();
        assert_eq!(h.correlation_id, 42);
        assert_eq!(&body[..], &[0xee]);
    }

    #[test]
    fn response_header_errors_name_the_api() {
        let mut body = Bytes::from_static(&[0, 0, 0, 42, 1, 0, 9]);
        let err = ResponseHeader::decode(&mut body, ApiKey::Fetch, 12).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Fetch v12 header v1: tagged field of 9 bytes but 0 left"
        );
        let mut short = Bytes::from_static(&[0, 0]);
        let err = ResponseHeader::decode(&mut short, ApiKey::Fetch, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "correlation id: needs 4 bytes, frame has 2"
        );
    }

    #[test]
    fn request_header_decode_rejects_garbage() {
        let mut b = Bytes::from_static(&[0x7f, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(
            decode_request_header(&mut b).unwrap_err().to_string(),
            "unknown API key 32512"
        );
        let mut b = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 5, b'a']);
        assert_eq!(
            decode_request_header(&mut b).unwrap_err().to_string(),
            "Metadata v1 header v1: client id of 5 bytes but 1 left"
        );
    }

    fn client_id() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-zA-Z0-9._-]{0,40}")
    }

    proptest! {
        #[test]
        fn request_header_round_trip(
            key_index in 0..KEYS.len(),
            version in 0i16..14,
            correlation_id in any::<i32>(),
            client_id in client_id(),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let api_key = KEYS[key_index];
            let header = RequestHeader { api_key, api_version: version, correlation_id, client_id: client_id.as_deref() };
            let mut buf = BytesMut::new();
            header.encode(&mut buf).unwrap();
            prop_assert_eq!(buf.len(), header.encoded_len());
            buf.extend_from_slice(&tail);
            let mut bytes = buf.freeze();
            let copy = bytes.clone();
            let decoded = decode_request_header(&mut bytes).unwrap();
            prop_assert_eq!(decoded.api_key, api_key);
            prop_assert_eq!(decoded.api_version, version);
            prop_assert_eq!(decoded.correlation_id, correlation_id);
            prop_assert_eq!(decoded.header_version, header.header_version());
            prop_assert_eq!(decoded.client_id, client_id.clone());
            prop_assert_eq!(&bytes[..], &tail[..]);

            // kafka-protocol reads the same bytes to the same header.
            let mut theirs_buf = copy;
            let theirs = kafka_protocol::messages::RequestHeader::decode(&mut theirs_buf, header.header_version()).unwrap();
            prop_assert_eq!(theirs.request_api_key, api_key as i16);
            prop_assert_eq!(theirs.correlation_id, correlation_id);
            if header.header_version() >= 1 {
                prop_assert_eq!(theirs.client_id, client_id.map(StrBytes::from_string));
            }
            prop_assert_eq!(&theirs_buf[..], &tail[..]);
        }

        #[test]
        fn response_header_round_trip(
            key_index in 0..KEYS.len(),
            version in 0i16..14,
            correlation_id in any::<i32>(),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let api_key = KEYS[key_index];
            let mut buf = BytesMut::new();
            ResponseHeader { correlation_id }.encode(&mut buf, response_header_version(api_key, version));
            buf.extend_from_slice(&tail);
            let mut bytes = buf.freeze();
            let h = ResponseHeader::decode(&mut bytes, api_key, version).unwrap();
            prop_assert_eq!(h.correlation_id, correlation_id);
            prop_assert_eq!(&bytes[..], &tail[..]);
        }

        #[test]
        fn header_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40), key_index in 0..KEYS.len(), version in -1i16..20) {
            let _ = decode_request_header(&mut Bytes::from(bytes.clone()));
            let _ = ResponseHeader::decode(&mut Bytes::from(bytes), KEYS[key_index], version);
        }
    }
}
