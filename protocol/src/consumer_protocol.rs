//! The `consumer` protocol type's embedded schemas: the subscription a member
//! sends in JoinGroup's protocol metadata and the assignment the leader hands
//! out through SyncGroup.
//!
//! These bytes travel opaquely through the group coordinator, so every client
//! in a group must agree on them byte for byte. The layout follows Kafka's
//! `ConsumerProtocolSubscription` and `ConsumerProtocolAssignment` message
//! definitions: a big-endian `i16` version, then the struct encoded at that
//! version with the classic (non-flexible) encoding.
//!
//! | version | subscription fields | assignment fields |
//! | --- | --- | --- |
//! | 0 | topics, user_data | assigned_partitions, user_data |
//! | 1 | + owned_partitions | (same) |
//! | 2 | + generation_id | (same) |
//! | 3 | + rack_id | (same) |
//!
//! Compatibility rules, matching Java's `ConsumerProtocol`:
//! - a negative version is an error;
//! - a version above the newest we know ([`SUBSCRIPTION_LATEST_VERSION`],
//!   [`ASSIGNMENT_LATEST_VERSION`]) is decoded as the newest known version,
//!   since newer versions may only append fields; bytes after the known fields
//!   are ignored;
//! - an empty assignment (zero bytes) means "no assignment": a Java leader
//!   sends that when it has nothing for a member, and the coordinator sends it
//!   to members the leader left out.
//!
//! The decoder is written by hand so that no count read off the wire can
//! allocate more than the input could possibly hold: every array count is
//! checked against the bytes remaining before anything is reserved.
//!
//! ```
//! use kafee_protocol::consumer_protocol::{Subscription, Assignment, TopicPartitions};
//!
//! let sub = Subscription::new(vec!["orders".to_string()]);
//! let bytes = sub.encode(3).unwrap();
//! assert_eq!(Subscription::decode(&bytes).unwrap(), sub);
//!
//! let assignment = Assignment {
//!     assigned_partitions: vec![TopicPartitions { topic: "orders".into(), partitions: vec![0, 2] }],
//!     user_data: None,
//! };
//! let bytes = assignment.encode(0).unwrap();
//! assert_eq!(Assignment::decode(&bytes).unwrap(), assignment);
//! assert_eq!(Assignment::decode(&[]).unwrap(), Assignment::default());
//! ```

use bytes::{BufMut, Bytes};

/// The protocol type every `consumer` group member announces in JoinGroup.
pub const PROTOCOL_TYPE: &str = "consumer";

/// The newest `ConsumerProtocolSubscription` version this module knows.
pub const SUBSCRIPTION_LATEST_VERSION: i16 = 3;

/// The newest `ConsumerProtocolAssignment` version this module knows.
pub const ASSIGNMENT_LATEST_VERSION: i16 = 3;

/// Which of the two embedded schemas an error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// `ConsumerProtocolSubscription` (JoinGroup protocol metadata).
    Subscription,
    /// `ConsumerProtocolAssignment` (SyncGroup assignment).
    Assignment,
}

impl std::fmt::Display for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Schema::Subscription => "consumer protocol subscription",
            Schema::Assignment => "consumer protocol assignment",
        })
    }
}

/// Why subscription or assignment bytes could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerProtocolError {
    /// The input ended inside a field.
    #[error(
        "{schema}: {field} truncated at byte {offset}: needs {needed} bytes, {remaining} left"
    )]
    Truncated {
        /// Which schema.
        schema: Schema,
        /// The field being read.
        field: &'static str,
        /// Byte offset of the field in the input.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// The version is negative (decode) or unknown (encode).
    #[error("{schema}: unsupported version {version}")]
    UnsupportedVersion {
        /// Which schema.
        schema: Schema,
        /// The version read or requested.
        version: i16,
    },
    /// A field that the schema declares non-nullable was encoded as null.
    #[error("{schema}: {field} at byte {offset} is null, which the schema does not allow")]
    UnexpectedNull {
        /// Which schema.
        schema: Schema,
        /// The field.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
    },
    /// An array count (or a negative length) cannot fit in the remaining input.
    #[error("{schema}: {field} at byte {offset} claims {count} elements but only {remaining} bytes remain")]
    BadCount {
        /// Which schema.
        schema: Schema,
        /// The field.
        field: &'static str,
        /// Byte offset of the count.
        offset: usize,
        /// The count as read.
        count: i64,
        /// Bytes left after the count.
        remaining: usize,
    },
    /// A string field is not valid UTF-8.
    #[error("{schema}: {field} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which schema.
        schema: Schema,
        /// The field.
        field: &'static str,
        /// Byte offset of the string's length prefix.
        offset: usize,
    },
    /// A value is too long for its length prefix (encode only).
    #[error("{schema}: {field} of {len} elements or bytes exceeds the limit of {limit}")]
    TooLong {
        /// Which schema.
        schema: Schema,
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The largest length its prefix can carry.
        limit: usize,
    },
}

/// Partitions of one topic, as the consumer protocol groups them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartitions {
    /// The topic name.
    pub topic: String,
    /// Partition ids, in the order they were encoded.
    pub partitions: Vec<i32>,
}

/// A member's subscription (`ConsumerProtocolSubscription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topics the member wants to consume.
    pub topics: Vec<String>,
    /// Opaque assignor data; `None` encodes as a null byte array.
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (version 1 and later; empty before).
    pub owned_partitions: Vec<TopicPartitions>,
    /// The generation the owned partitions belong to (version 2 and later; -1 before).
    pub generation_id: i32,
    /// The member's rack, `client.rack` (version 3 and later; `None` before).
    pub rack_id: Option<String>,
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            topics: Vec::new(),
            user_data: None,
            owned_partitions: Vec::new(),
            generation_id: -1,
            rack_id: None,
        }
    }
}

/// An assignment for one member (`ConsumerProtocolAssignment`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Assigned partitions, grouped by topic.
    pub assigned_partitions: Vec<TopicPartitions>,
    /// Opaque assignor data; `None` encodes as a null byte array.
    pub user_data: Option<Bytes>,
}

impl Subscription {
    /// A subscription to `topics` with every other field at its default.
    pub fn new(topics: Vec<String>) -> Self {
        Subscription {
            topics,
            ..Subscription::default()
        }
    }

    /// Encodes the version prefix and the fields that exist at `version` (0..=3).
    ///
    /// Fields that do not exist at `version` are left out, as Java does.
    pub fn encode(&self, version: i16) -> Result<Bytes, ConsumerProtocolError> {
        const S: Schema = Schema::Subscription;
        if !(0..=SUBSCRIPTION_LATEST_VERSION).contains(&version) {
            return Err(ConsumerProtocolError::UnsupportedVersion { schema: S, version });
        }
        let mut out = Vec::with_capacity(64);
        out.put_i16(version);
        put_count(&mut out, S, "topics", self.topics.len())?;
        for topic in &self.topics {
            put_string(&mut out, S, "topics[]", topic)?;
        }
        put_nullable_bytes(&mut out, S, "user_data", self.user_data.as_deref())?;
        if version >= 1 {
            put_topic_partitions(&mut out, S, "owned_partitions", &self.owned_partitions)?;
        }
        if version >= 2 {
            out.put_i32(self.generation_id);
        }
        if version >= 3 {
            match &self.rack_id {
                None => out.put_i16(-1),
                Some(rack) => put_string(&mut out, S, "rack_id", rack)?,
            }
        }
        Ok(Bytes::from(out))
    }

    /// Decodes subscription bytes; see [`Subscription::decode_versioned`].
    pub fn decode(input: &[u8]) -> Result<Self, ConsumerProtocolError> {
        Self::decode_versioned(input).map(|(_, s)| s)
    }

    /// Decodes subscription bytes and returns the version written on the wire
    /// with the subscription. Versions above [`SUBSCRIPTION_LATEST_VERSION`]
    /// are read as that version; trailing bytes are ignored.
    pub fn decode_versioned(input: &[u8]) -> Result<(i16, Self), ConsumerProtocolError> {
        let mut r = Reader::new(input, Schema::Subscription);
        let version = r.i16("version")?;
        if version < 0 {
            return Err(ConsumerProtocolError::UnsupportedVersion {
                schema: Schema::Subscription,
                version,
            });
        }
        let effective = version.min(SUBSCRIPTION_LATEST_VERSION);
        // Each topic is at least its 2-byte length prefix.
        let n = r.count("topics", 2)?;
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            topics.push(r.string("topics[]")?);
        }
        let user_data = r.nullable_bytes("user_data")?;
        let owned_partitions = if effective >= 1 {
            r.topic_partitions("owned_partitions")?
        } else {
            Vec::new()
        };
        let generation_id = if effective >= 2 {
            r.i32("generation_id")?
        } else {
            -1
        };
        let rack_id = if effective >= 3 {
            r.nullable_string("rack_id")?
        } else {
            None
        };
        Ok((
            version,
            Subscription {
                topics,
                user_data,
                owned_partitions,
                generation_id,
                rack_id,
            },
        ))
    }
}

impl Assignment {
    /// Encodes the version prefix and the assignment (versions 0..=3 share one layout).
    pub fn encode(&self, version: i16) -> Result<Bytes, ConsumerProtocolError> {
        const S: Schema = Schema::Assignment;
        if !(0..=ASSIGNMENT_LATEST_VERSION).contains(&version) {
            return Err(ConsumerProtocolError::UnsupportedVersion { schema: S, version });
        }
        let mut out = Vec::with_capacity(32);
        out.put_i16(version);
        put_topic_partitions(
            &mut out,
            S,
            "assigned_partitions",
            &self.assigned_partitions,
        )?;
        put_nullable_bytes(&mut out, S, "user_data", self.user_data.as_deref())?;
        Ok(Bytes::from(out))
    }

    /// Decodes assignment bytes; zero bytes decode to an empty assignment.
    pub fn decode(input: &[u8]) -> Result<Self, ConsumerProtocolError> {
        Self::decode_versioned(input).map(|(_, a)| a)
    }

    /// Decodes assignment bytes and returns the version written on the wire
    /// (`None` for the empty "no assignment" input). Versions above
    /// [`ASSIGNMENT_LATEST_VERSION`] are read as that version; trailing bytes
    /// are ignored.
    pub fn decode_versioned(input: &[u8]) -> Result<(Option<i16>, Self), ConsumerProtocolError> {
        if input.is_empty() {
            return Ok((None, Assignment::default()));
        }
        let mut r = Reader::new(input, Schema::Assignment);
        let version = r.i16("version")?;
        if version < 0 {
            return Err(ConsumerProtocolError::UnsupportedVersion {
                schema: Schema::Assignment,
                version,
            });
        }
        let assigned_partitions = r.topic_partitions("assigned_partitions")?;
        let user_data = r.nullable_bytes("user_data")?;
        Ok((
            Some(version),
            Assignment {
                assigned_partitions,
                user_data,
            },
        ))
    }

    /// Every assigned (topic, partition) pair, in encoded order.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, i32)> + '_ {
        self.assigned_partitions
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic.as_str(), *p)))
    }
}

fn put_count(
    out: &mut Vec<u8>,
    schema: Schema,
    field: &'static str,
    len: usize,
) -> Result<(), ConsumerProtocolError> {
    let n = i32::try_from(len).map_err(|_| ConsumerProtocolError::TooLong {
        schema,
        field,
        len,
        limit: i32::MAX as usize,
    })?;
    out.put_i32(n);
    Ok(())
}

fn put_string(
    out: &mut Vec<u8>,
    schema: Schema,
    field: &'static str,
    s: &str,
) -> Result<(), ConsumerProtocolError> {
    let n = i16::try_from(s.len()).map_err(|_| ConsumerProtocolError::TooLong {
        schema,
        field,
        len: s.len(),
        limit: i16::MAX as usize,
    })?;
    out.put_i16(n);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_nullable_bytes(
    out: &mut Vec<u8>,
    schema: Schema,
    field: &'static str,
    b: Option<&[u8]>,
) -> Result<(), ConsumerProtocolError> {
    match b {
        None => out.put_i32(-1),
        Some(b) => {
            put_count(out, schema, field, b.len())?;
            out.put_slice(b);
        }
    }
    Ok(())
}

fn put_topic_partitions(
    out: &mut Vec<u8>,
    schema: Schema,
    field: &'static str,
    tps: &[TopicPartitions],
) -> Result<(), ConsumerProtocolError> {
    put_count(out, schema, field, tps.len())?;
    for tp in tps {
        put_string(out, schema, "topic", &tp.topic)?;
        put_count(out, schema, "partitions", tp.partitions.len())?;
        for p in &tp.partitions {
            out.put_i32(*p);
        }
    }
    Ok(())
}

/// A bounds-checked cursor over the input.
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    schema: Schema,
}

impl<'a> Reader<'a> {
    fn new(input: &'a [u8], schema: Schema) -> Self {
        Reader {
            input,
            pos: 0,
            schema,
        }
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], ConsumerProtocolError> {
        if self.remaining() < n {
            return Err(ConsumerProtocolError::Truncated {
                schema: self.schema,
                field,
                offset: self.pos,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let s = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, ConsumerProtocolError> {
        let b = self.take(field, 2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, ConsumerProtocolError> {
        let b = self.take(field, 4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a non-nullable array count whose elements take at least
    /// `min_element_size` bytes each, and checks it against the input left.
    fn count(
        &mut self,
        field: &'static str,
        min_element_size: usize,
    ) -> Result<usize, ConsumerProtocolError> {
        let offset = self.pos;
        let n = self.i32(field)?;
        if n == -1 {
            return Err(ConsumerProtocolError::UnexpectedNull {
                schema: self.schema,
                field,
                offset,
            });
        }
        let fits = usize::try_from(n)
            .ok()
            .filter(|n| n.saturating_mul(min_element_size) <= self.remaining());
        fits.ok_or(ConsumerProtocolError::BadCount {
            schema: self.schema,
            field,
            offset,
            count: i64::from(n),
            remaining: self.remaining(),
        })
    }

    fn str_body(
        &mut self,
        field: &'static str,
        offset: usize,
        len: usize,
    ) -> Result<String, ConsumerProtocolError> {
        let b = self.take(field, len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| ConsumerProtocolError::InvalidUtf8 {
                schema: self.schema,
                field,
                offset,
            })
    }

    fn nullable_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, ConsumerProtocolError> {
        let offset = self.pos;
        let n = self.i16(field)?;
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(ConsumerProtocolError::BadCount {
                schema: self.schema,
                field,
                offset,
                count: i64::from(n),
                remaining: self.remaining(),
            }),
            n => self.str_body(field, offset, n as usize).map(Some),
        }
    }

    fn string(&mut self, field: &'static str) -> Result<String, ConsumerProtocolError> {
        let offset = self.pos;
        self.nullable_string(field)?
            .ok_or(ConsumerProtocolError::UnexpectedNull {
                schema: self.schema,
                field,
                offset,
            })
    }

    fn nullable_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Bytes>, ConsumerProtocolError> {
        let offset = self.pos;
        let n = self.i32(field)?;
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(ConsumerProtocolError::BadCount {
                schema: self.schema,
                field,
                offset,
                count: i64::from(n),
                remaining: self.remaining(),
            }),
            n => {
                let b = self.take(field, n as usize)?;
                Ok(Some(Bytes::copy_from_slice(b)))
            }
        }
    }

    fn topic_partitions(
        &mut self,
        field: &'static str,
    ) -> Result<Vec<TopicPartitions>, ConsumerProtocolError> {
        // Each element is at least a 2-byte topic length and a 4-byte count.
        let n = self.count(field, 6)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let topic = self.string("topic")?;
            let np = self.count("partitions", 4)?;
            let mut partitions = Vec::with_capacity(np);
            for _ in 0..np {
                partitions.push(self.i32("partitions[]")?);
            }
            out.push(TopicPartitions { topic, partitions });
        }
        Ok(out)
    }
}

/// Fuzzing entry points; not a stable API.
#[cfg(feature = "unstable-fuzzing")]
pub mod fuzzing {
    use super::{Assignment, Subscription};

    /// Decodes `data` both as a subscription and as an assignment and checks
    /// that whatever decodes re-encodes and decodes to the same value.
    pub fn decode_both(data: &[u8]) {
        if let Ok((version, sub)) = Subscription::decode_versioned(data) {
            let v = version.min(super::SUBSCRIPTION_LATEST_VERSION);
            if let Ok(bytes) = sub.encode(v) {
                assert_eq!(Subscription::decode(&bytes).ok(), Some(sub));
            }
        }
        if let Ok(assignment) = Assignment::decode(data) {
            if let Ok(bytes) = assignment.encode(super::ASSIGNMENT_LATEST_VERSION) {
                assert_eq!(Assignment::decode(&bytes).ok(), Some(assignment));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment as kpa;
    use kafka_protocol::messages::consumer_protocol_subscription as kps;
    use kafka_protocol::messages::{
        ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    /// Encodes with the kafka-protocol crate (generated from Kafka's JSON
    /// schemas), prefixed with the version as Java does: an independent
    /// reference for byte-exactness.
    fn reference_subscription(s: &Subscription, version: i16) -> Vec<u8> {
        let msg = ConsumerProtocolSubscription::default()
            .with_topics(
                s.topics
                    .iter()
                    .cloned()
                    .map(StrBytes::from_string)
                    .collect(),
            )
            .with_user_data(s.user_data.clone())
            .with_owned_partitions(
                s.owned_partitions
                    .iter()
                    .map(|tp| {
                        kps::TopicPartition::default()
                            .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                            .with_partitions(tp.partitions.clone())
                    })
                    .collect(),
            )
            .with_generation_id(s.generation_id)
            .with_rack_id(s.rack_id.clone().map(StrBytes::from_string));
        let mut out = bytes::BytesMut::new();
        out.put_i16(version);
        msg.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    fn reference_assignment(a: &Assignment, version: i16) -> Vec<u8> {
        let msg = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(
                a.assigned_partitions
                    .iter()
                    .map(|tp| {
                        kpa::TopicPartition::default()
                            .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                            .with_partitions(tp.partitions.clone())
                    })
                    .collect(),
            )
            .with_user_data(a.user_data.clone());
        let mut out = bytes::BytesMut::new();
        out.put_i16(version);
        msg.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    /// Keeps only the fields that exist at `version`.
    fn at_version(mut s: Subscription, version: i16) -> Subscription {
        if version < 1 {
            s.owned_partitions.clear();
        }
        if version < 2 {
            s.generation_id = -1;
        }
        if version < 3 {
            s.rack_id = None;
        }
        s
    }

    fn topic() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._-]{0,12}|\\PC{0,6}"
    }

    fn topic_partitions() -> impl Strategy<Value = Vec<TopicPartitions>> {
        prop::collection::vec(
            (topic(), prop::collection::vec(any::<i32>(), 0..6))
                .prop_map(|(topic, partitions)| TopicPartitions { topic, partitions }),
            0..5,
        )
    }

    fn user_data() -> impl Strategy<Value = Option<Bytes>> {
        prop::option::of(prop::collection::vec(any::<u8>(), 0..20).prop_map(Bytes::from))
    }

    prop_compose! {
        fn subscription()(
            topics in prop::collection::vec(topic(), 0..6),
            user_data in user_data(),
            owned_partitions in topic_partitions(),
            generation_id in any::<i32>(),
            rack_id in prop::option::of(topic()),
        ) -> Subscription {
            Subscription { topics, user_data, owned_partitions, generation_id, rack_id }
        }
    }

    prop_compose! {
        fn assignment()(assigned_partitions in topic_partitions(), user_data in user_data()) -> Assignment {
            Assignment { assigned_partitions, user_data }
        }
    }

    proptest! {
        #[test]
        fn subscription_round_trips_at_every_version(s in subscription(), version in 0i16..=3) {
            let bytes = s.encode(version).unwrap();
            let (v, decoded) = Subscription::decode_versioned(&bytes).unwrap();
            prop_assert_eq!(v, version);
            prop_assert_eq!(decoded, at_version(s, version));
        }

        #[test]
        fn subscription_bytes_match_the_reference_encoder(s in subscription(), version in 0i16..=3) {
            prop_assert_eq!(s.encode(version).unwrap().to_vec(), reference_subscription(&s, version));
        }

        #[test]
        fn assignment_round_trips_at_every_version(a in assignment(), version in 0i16..=3) {
            let bytes = a.encode(version).unwrap();
            let (v, decoded) = Assignment::decode_versioned(&bytes).unwrap();
            prop_assert_eq!(v, Some(version));
            prop_assert_eq!(decoded, a);
        }

        #[test]
        fn assignment_bytes_match_the_reference_encoder(a in assignment(), version in 0i16..=3) {
            prop_assert_eq!(a.encode(version).unwrap().to_vec(), reference_assignment(&a, version));
        }

        /// A newer version (appending fields we do not know) decodes as v3.
        #[test]
        fn newer_versions_decode_with_the_latest_known_layout(
            s in subscription(), a in assignment(), newer in 4i16..=i16::MAX,
            extra in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut bytes = s.encode(3).unwrap().to_vec();
            bytes[..2].copy_from_slice(&newer.to_be_bytes());
            bytes.extend_from_slice(&extra);
            let (v, decoded) = Subscription::decode_versioned(&bytes).unwrap();
            prop_assert_eq!(v, newer);
            prop_assert_eq!(decoded, s);

            let mut bytes = a.encode(3).unwrap().to_vec();
            bytes[..2].copy_from_slice(&newer.to_be_bytes());
            bytes.extend_from_slice(&extra);
            prop_assert_eq!(Assignment::decode(&bytes).unwrap(), a);
        }

        /// Arbitrary input never panics; every truncation of valid input is an error.
        #[test]
        fn arbitrary_and_truncated_input_is_an_error_not_a_panic(
            data in prop::collection::vec(any::<u8>(), 0..64), s in subscription(), a in assignment(),
        ) {
            let _ = Subscription::decode(&data);
            let _ = Assignment::decode(&data);
            let bytes = s.encode(3).unwrap();
            for cut in 0..bytes.len() {
                prop_assert!(Subscription::decode(&bytes[..cut]).is_err());
            }
            let bytes = a.encode(3).unwrap();
            for cut in 1..bytes.len() {
                prop_assert!(Assignment::decode(&bytes[..cut]).is_err());
            }
        }
    }

    /// Version 0 subscription to "t" with null user data, laid out by hand
    /// from the schema (what Java's `serializeSubscription(.., 0)` writes).
    #[test]
    fn v0_subscription_fixture() {
        let bytes = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        let s = Subscription::decode(&bytes).unwrap();
        assert_eq!(s, Subscription::new(vec!["t".into()]));
        assert_eq!(s.encode(0).unwrap().as_ref(), &bytes);
    }

    /// Version 3 subscription with owned partitions, generation and rack.
    #[test]
    fn v3_subscription_fixture() {
        let s = Subscription {
            topics: vec!["a".into()],
            user_data: Some(Bytes::from_static(b"u")),
            owned_partitions: vec![TopicPartitions {
                topic: "a".into(),
                partitions: vec![1],
            }],
            generation_id: 7,
            rack_id: Some("r".into()),
        };
        #[rustfmt::skip]
        let expected = [
            0, 3,                   // version
            0, 0, 0, 1, 0, 1, b'a', // topics
            0, 0, 0, 1, b'u',       // user_data
            0, 0, 0, 1, 0, 1, b'a', 0, 0, 0, 1, 0, 0, 0, 1, // owned_partitions
            0, 0, 0, 7,             // generation_id
            0, 1, b'r',             // rack_id
        ];
        assert_eq!(s.encode(3).unwrap().as_ref(), &expected);
        assert_eq!(Subscription::decode(&expected).unwrap(), s);
    }

    #[test]
    fn empty_assignment_means_no_assignment() {
        assert_eq!(
            Assignment::decode_versioned(&[]).unwrap(),
            (None, Assignment::default())
        );
    }

    #[test]
    fn negative_version_is_rejected() {
        let err =
            Assignment::decode(&[0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "consumer protocol assignment: unsupported version -1"
        );
        assert!(matches!(
            Subscription::decode(&[0x80, 0]),
            Err(ConsumerProtocolError::UnsupportedVersion {
                version: i16::MIN,
                ..
            })
        ));
        assert!(Subscription::new(vec![]).encode(4).is_err());
    }

    /// A huge count must be rejected before anything is allocated.
    #[test]
    fn huge_count_is_rejected_without_allocating() {
        let bytes = [0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0];
        let err = Subscription::decode(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "consumer protocol subscription: topics at byte 2 claims 2147483647 elements but only 2 bytes remain"
        );
        let bytes = [0, 1, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 0];
        assert!(matches!(
            Assignment::decode(&bytes),
            Err(ConsumerProtocolError::BadCount {
                field: "partitions",
                count: 0x1000_0000,
                ..
            })
        ));
    }

    #[test]
    fn null_where_schema_forbids_it_is_rejected() {
        // topics array encoded as null
        let err = Subscription::decode(&[0, 0, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(
            err,
            ConsumerProtocolError::UnexpectedNull {
                field: "topics",
                offset: 2,
                ..
            }
        ));
        // topic string encoded as null
        let err = Subscription::decode(&[0, 0, 0, 0, 0, 1, 0xff, 0xff]).unwrap_err();
        assert!(matches!(
            err,
            ConsumerProtocolError::UnexpectedNull {
                field: "topics[]",
                ..
            }
        ));
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let err = Subscription::decode(&[0, 0, 0, 0, 0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff])
            .unwrap_err();
        assert!(matches!(
            err,
            ConsumerProtocolError::InvalidUtf8 {
                field: "topics[]",
                offset: 6,
                ..
            }
        ));
    }

    #[test]
    fn partitions_iterator_flattens_in_order() {
        let a = Assignment {
            assigned_partitions: vec![
                TopicPartitions {
                    topic: "a".into(),
                    partitions: vec![2, 0],
                },
                TopicPartitions {
                    topic: "b".into(),
                    partitions: vec![1],
                },
            ],
            user_data: None,
        };
        assert_eq!(
            a.partitions().collect::<Vec<_>>(),
            vec![("a", 2), ("a", 0), ("b", 1)]
        );
    }
}
