//! A bounded decoder for Metadata responses, versions 0..=12, into
//! kafka-protocol's own [`MetadataResponse`] type.
//!
//! Every client decodes Metadata often, and kafka-protocol 0.18's decoder
//! reserves `Vec::with_capacity(count)` from counts on the wire before it
//! checks them (see [`crate::codec`]): a few malformed bytes abort the
//! process. This decoder reads the same layouts (v9+ flexible: compact
//! arrays and strings, tagged fields) with every count and length checked
//! against the bytes that remain before anything is reserved, and returns a
//! [`DecodeError::Body`] naming the field (`topics[0].partitions[3].isr_nodes:
//! ...`) for every malformed input.
//!
//! The result is kafka-protocol's [`MetadataResponse`], so a caller that
//! decoded with [`crate::codec::decode_response`] switches by decoding the
//! body after the response header with [`decode_metadata_response`] instead.
//! Strings are slices of the body (`StrBytes`), not copies. One difference:
//! unknown tagged fields are skipped, not kept in `unknown_tagged_fields`
//! (Metadata v0..=12 defines no tagged fields a consumer reads).
//!
//! ```
//! use bytes::{BufMut, BytesMut};
//! use kafee_protocol::metadata_response::decode_metadata_response;
//!
//! // A v1 body: one broker, no controller, one topic with no partitions.
//! let mut b = BytesMut::new();
//! b.put_i32(1); // brokers: 1
//! b.put_i32(7); // node_id
//! b.put_i16(9);
//! b.put_slice(b"127.0.0.1");
//! b.put_i32(9092); // port
//! b.put_i16(-1); // rack: null
//! b.put_i32(-1); // controller_id
//! b.put_i32(1); // topics: 1
//! b.put_i16(0); // error_code
//! b.put_i16(6);
//! b.put_slice(b"events");
//! b.put_u8(0); // is_internal
//! b.put_i32(0); // partitions: 0
//! let response = decode_metadata_response(1, b.freeze()).unwrap();
//! assert_eq!(&*response.brokers[0].host, "127.0.0.1");
//! assert_eq!(response.topics[0].name.as_ref().map(|n| &*n.0), Some("events"));
//! ```

use std::fmt;

use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::bounded::{Fault, Reader};
use crate::error::DecodeError;

/// Lowest Metadata response version [`decode_metadata_response`] reads.
pub const MIN_VERSION: i16 = 0;
/// Highest Metadata response version [`decode_metadata_response`] reads.
pub const MAX_VERSION: i16 = 12;
/// First flexible Metadata version.
const FIRST_FLEXIBLE: i16 = 9;

/// Decodes a Metadata response body (after the response header) of
/// `version` (0..=12). Every malformed input is a [`DecodeError`]; nothing
/// is allocated from a count or length before it is checked against the
/// bytes that remain. The whole body must be consumed.
pub fn decode_metadata_response(
    version: i16,
    body: Bytes,
) -> Result<MetadataResponse, DecodeError> {
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(DecodeError::Body {
            api_key: ApiKey::Metadata,
            version,
            message: format!(
                "kafee decodes Metadata responses of versions {MIN_VERSION}..={MAX_VERSION} only"
            ),
        });
    }
    let mut d = Decoder {
        r: Reader::new(&body),
        version,
        flexible: version >= FIRST_FLEXIBLE,
    };
    let response = d.response()?;
    if d.r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes {
            api_key: ApiKey::Metadata,
            version,
            remaining: d.r.remaining(),
        });
    }
    Ok(response)
}

/// Where in the response a field is, for error messages.
#[derive(Clone, Copy)]
enum Path {
    Top,
    Broker(usize),
    Topic(usize),
    Partition(usize, usize),
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Top => Ok(()),
            Path::Broker(b) => write!(f, "brokers[{b}]."),
            Path::Topic(t) => write!(f, "topics[{t}]."),
            Path::Partition(t, p) => write!(f, "topics[{t}].partitions[{p}]."),
        }
    }
}

struct Decoder<'a> {
    r: Reader<'a>,
    version: i16,
    flexible: bool,
}

/// Converts checked UTF-8 bytes into kafka-protocol's string type (no copy).
fn str_bytes(bytes: Bytes) -> Result<StrBytes, Fault> {
    StrBytes::from_utf8(bytes).map_err(|_| Fault::InvalidUtf8)
}

impl Decoder<'_> {
    fn fail(&self, path: Path, field: &str, fault: Fault) -> DecodeError {
        DecodeError::Body {
            api_key: ApiKey::Metadata,
            version: self.version,
            message: format!("{path}{field}: {fault}"),
        }
    }

    /// Size of a length prefix: string or array.
    fn prefix(&self, wide: bool) -> usize {
        match (self.flexible, wide) {
            (true, _) => 1,
            (false, true) => 4,
            (false, false) => 2,
        }
    }

    fn tags(&self) -> usize {
        usize::from(self.flexible)
    }

    fn broker_min_size(&self) -> usize {
        let rack = if self.version >= 1 {
            self.prefix(false)
        } else {
            0
        };
        4 + self.prefix(false) + 4 + rack + self.tags()
    }

    fn topic_min_size(&self) -> usize {
        let v = self.version;
        2 + self.prefix(false)
            + if v >= 10 { 16 } else { 0 }
            + usize::from(v >= 1)
            + self.prefix(true)
            + if v >= 8 { 4 } else { 0 }
            + self.tags()
    }

    fn partition_min_size(&self) -> usize {
        let v = self.version;
        2 + 4
            + 4
            + if v >= 7 { 4 } else { 0 }
            + 2 * self.prefix(true)
            + if v >= 5 { self.prefix(true) } else { 0 }
            + self.tags()
    }

    fn string(&mut self, path: Path, field: &str) -> Result<StrBytes, DecodeError> {
        self.nullable_string(path, field)?
            .ok_or_else(|| self.fail(path, field, Fault::Null))
    }

    fn nullable_string(
        &mut self,
        path: Path,
        field: &str,
    ) -> Result<Option<StrBytes>, DecodeError> {
        let flexible = self.flexible;
        self.r
            .nullable_str_bytes(flexible)
            .and_then(|s| s.map(str_bytes).transpose())
            .map_err(|e| self.fail(path, field, e))
    }

    fn count(&mut self, path: Path, field: &str, min_size: usize) -> Result<usize, DecodeError> {
        let flexible = self.flexible;
        self.r
            .count(flexible, min_size)
            .map_err(|e| self.fail(path, field, e))?
            .ok_or_else(|| self.fail(path, field, Fault::Null))
    }

    fn i32(&mut self, path: Path, field: &str) -> Result<i32, DecodeError> {
        self.r.i32().map_err(|e| self.fail(path, field, e))
    }

    fn i16(&mut self, path: Path, field: &str) -> Result<i16, DecodeError> {
        self.r.i16().map_err(|e| self.fail(path, field, e))
    }

    fn broker_ids(&mut self, path: Path, field: &str) -> Result<Vec<BrokerId>, DecodeError> {
        let flexible = self.flexible;
        let ids = self
            .r
            .i32_array(flexible)
            .map_err(|e| self.fail(path, field, e))?;
        Ok(ids.into_iter().map(BrokerId).collect())
    }

    fn skip_tags(&mut self, path: Path) -> Result<(), DecodeError> {
        if self.flexible {
            self.r
                .skip_tagged_fields()
                .map_err(|e| self.fail(path, "tagged fields", e))?;
        }
        Ok(())
    }

    fn response(&mut self) -> Result<MetadataResponse, DecodeError> {
        let v = self.version;
        let top = Path::Top;
        let mut response = MetadataResponse::default();
        if v >= 3 {
            response.throttle_time_ms = self.i32(top, "throttle_time_ms")?;
        }
        let count = self.count(top, "brokers", self.broker_min_size())?;
        let mut brokers = Vec::with_capacity(count);
        for b in 0..count {
            brokers.push(self.broker(b)?);
        }
        response.brokers = brokers;
        if v >= 2 {
            response.cluster_id = self.nullable_string(top, "cluster_id")?;
        }
        if v >= 1 {
            response.controller_id = BrokerId(self.i32(top, "controller_id")?);
        }
        let count = self.count(top, "topics", self.topic_min_size())?;
        let mut topics = Vec::with_capacity(count);
        for t in 0..count {
            topics.push(self.topic(t)?);
        }
        response.topics = topics;
        if (8..=10).contains(&v) {
            response.cluster_authorized_operations =
                self.i32(top, "cluster_authorized_operations")?;
        }
        self.skip_tags(top)?;
        Ok(response)
    }

    fn broker(&mut self, b: usize) -> Result<MetadataResponseBroker, DecodeError> {
        let path = Path::Broker(b);
        let mut broker = MetadataResponseBroker::default();
        broker.node_id = BrokerId(self.i32(path, "node_id")?);
        broker.host = self.string(path, "host")?;
        broker.port = self.i32(path, "port")?;
        if self.version >= 1 {
            broker.rack = self.nullable_string(path, "rack")?;
        }
        self.skip_tags(path)?;
        Ok(broker)
    }

    fn topic(&mut self, t: usize) -> Result<MetadataResponseTopic, DecodeError> {
        let v = self.version;
        let path = Path::Topic(t);
        let mut topic = MetadataResponseTopic::default();
        topic.error_code = self.i16(path, "error_code")?;
        // Nullable from v12 (a topic known only by id).
        topic.name = if v >= 12 {
            self.nullable_string(path, "name")?
        } else {
            Some(self.string(path, "name")?)
        }
        .map(TopicName);
        if v >= 10 {
            let id = self.r.uuid().map_err(|e| self.fail(path, "topic_id", e))?;
            // kafka-protocol does not re-export `uuid`; its `Uuid` converts
            // from a 16-byte Vec (which cannot fail here).
            topic.topic_id = Vec::from(id)
                .try_into()
                .map_err(|_| self.fail(path, "topic_id", Fault::Null))?;
        }
        if v >= 1 {
            topic.is_internal = self
                .r
                .bool()
                .map_err(|e| self.fail(path, "is_internal", e))?;
        }
        let count = self.count(path, "partitions", self.partition_min_size())?;
        let mut partitions = Vec::with_capacity(count);
        for p in 0..count {
            partitions.push(self.partition(t, p)?);
        }
        topic.partitions = partitions;
        if v >= 8 {
            topic.topic_authorized_operations = self.i32(path, "topic_authorized_operations")?;
        }
        self.skip_tags(path)?;
        Ok(topic)
    }

    fn partition(&mut self, t: usize, p: usize) -> Result<MetadataResponsePartition, DecodeError> {
        let v = self.version;
        let path = Path::Partition(t, p);
        let mut partition = MetadataResponsePartition::default();
        partition.error_code = self.i16(path, "error_code")?;
        partition.partition_index = self.i32(path, "partition_index")?;
        partition.leader_id = BrokerId(self.i32(path, "leader_id")?);
        if v >= 7 {
            partition.leader_epoch = self.i32(path, "leader_epoch")?;
        }
        partition.replica_nodes = self.broker_ids(path, "replica_nodes")?;
        partition.isr_nodes = self.broker_ids(path, "isr_nodes")?;
        if v >= 5 {
            partition.offline_replicas = self.broker_ids(path, "offline_replicas")?;
        }
        self.skip_tags(path)?;
        Ok(partition)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
