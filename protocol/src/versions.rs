//! API version negotiation.
//!
//! [`SUPPORTED`] is the one table of what kafee sends: per API, the range of
//! versions the client implements. [`negotiate`] intersects it with a
//! broker's ApiVersions response and picks, per API, the highest version both
//! sides support.
//!
//! # Choosing the table
//!
//! Minimums: Kafka 2.1 is the oldest broker kafee targets, and Kafka 4.0
//! removed many old versions (KIP-896), so each minimum is the lowest version
//! that kafka-protocol 0.18 can encode *and* that still has the semantics the
//! client relies on. Every minimum is at or below what Kafka 2.1 offers, so a
//! 2.1 broker (which advertises only non-flexible versions) negotiates every
//! API. Maximums stop before a version whose *shape* changes in a way the
//! client does not fill in (topic ids instead of names, batched group keys);
//! the reason is on each row. Raising a maximum is a code change in the caller
//! as well as here.
//!
//! # Bootstrapping with ApiVersions
//!
//! A connection first sends ApiVersions at [`API_VERSIONS_FIRST`] (v3, the
//! first flexible version, which carries the client software name and
//! version; build it with [`api_versions_request`]). A broker that does not
//! support v3 answers with an ApiVersions *v0* body with error
//! UNSUPPORTED_VERSION, listing (since Kafka 2.4, KIP-511) at least its own
//! ApiVersions range. So the caller:
//!
//! 1. decodes the answer with [`decode_api_versions_response`], which falls
//!    back to the v0 layout when the body does not parse as the version sent;
//! 2. passes the response to [`api_versions_outcome`], which returns either
//!    the negotiated table or the version to retry with (the highest both
//!    sides support, or 0 when an old broker listed nothing);
//! 3. retries once on the same connection with that version; a second
//!    UNSUPPORTED_VERSION is an error.
//!
//! ```
//! use kafee_protocol::versions::{negotiate_ranges, SUPPORTED};
//! use kafka_protocol::messages::ApiKey;
//!
//! // A broker offering every API at 0..=20, except Fetch at 0..=10 (Kafka 2.1's range).
//! let broker = SUPPORTED.iter().map(|s| {
//!     let max = if s.api_key == ApiKey::Fetch { 10 } else { 20 };
//!     (s.api_key as i16, 0, max)
//! });
//! let negotiated = negotiate_ranges(broker).unwrap();
//! assert_eq!(negotiated.version(ApiKey::Fetch), Ok(10));
//! assert_eq!(negotiated.version(ApiKey::Metadata), Ok(12));
//!
//! // A broker that only lists Fetch lacks APIs the client requires.
//! let err = negotiate_ranges([(ApiKey::Fetch as i16, 0, 10)]).unwrap_err();
//! assert_eq!(err.to_string(), "broker does not support ListOffsets");
//! ```

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::codec::decode_response;
use crate::error::{DecodeError, ErrorCode, VersionError};

/// One row of [`SUPPORTED`]: what kafee implements for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest version kafee can send.
    pub min: i16,
    /// Highest version kafee sends.
    pub max: i16,
    /// Whether a broker without an overlapping version is unusable
    /// ([`negotiate`] fails) rather than only lacking this API (the error is
    /// returned by [`Negotiated::version`] when the API is used).
    pub required: bool,
}

const fn row(api_key: ApiKey, min: i16, max: i16, required: bool) -> ApiSupport {
    ApiSupport {
        api_key,
        min,
        max,
        required,
    }
}

/// The version ranges kafee supports, one row per API it sends.
///
/// Kafka 2.1 ranges are given for comparison; "kp" is kafka-protocol 0.18.
pub const SUPPORTED: &[ApiSupport] = &[
    // 2.1: 0..=7. kp: 3..=13. v3 is the first with magic v2 record batches
    // (the only format our builder writes). v10 and later add leader hints
    // and transaction changes (KIP-951, KIP-890) and v13 uses topic ids: stop
    // at 9, the first flexible version.
    row(ApiKey::Produce, 3, 9, false),
    // 2.1: 0..=10. kp: 4..=18. v4 adds isolation level and aborted
    // transactions (read_committed), which the fetch loop needs. v13 replaces
    // topic names with topic ids, which kafee does not track yet.
    row(ApiKey::Fetch, 4, 12, true),
    // 2.1: 0..=4. kp: 1..=10. v1 returns a single offset per partition (v0 a
    // list). v7 adds max-timestamp lookups; v8+ tiered-storage specials and a
    // timeout we do not need.
    row(ApiKey::ListOffsets, 1, 7, true),
    // 2.1: 0..=7. kp: 0..=13. v1 makes a null topic list mean "all topics"
    // (v0 used an empty list). v13 only adds a top-level error code; stop at
    // 12 until it is handled.
    row(ApiKey::Metadata, 1, 12, true),
    // 2.1: 0..=6. kp: 2..=10 (Kafka 4.0 also starts at 2). v7 adds
    // group.instance.id, v8 is flexible; v9 is for the KIP-848 protocol and
    // v10 uses topic ids.
    row(ApiKey::OffsetCommit, 2, 8, true),
    // 2.1: 0..=5. kp: 1..=10. v7 adds require_stable (UNSTABLE_OFFSET_COMMIT).
    // v8 batches several groups in a different request shape.
    row(ApiKey::OffsetFetch, 1, 7, true),
    // 2.1: 0..=2. kp: 0..=6. v4 replaces the single key with a batch of
    // coordinator keys.
    row(ApiKey::FindCoordinator, 0, 3, true),
    // 2.1: 0..=3. kp: 0..=9. Kafka 4.0 removed v0..=1; v2 has the rebalance
    // timeout (v1) and throttle time. v5 adds group.instance.id, v6 is
    // flexible, v7 returns the protocol type. v8 (reason) and v9 (skip
    // assignment, broker-internal) are not needed.
    row(ApiKey::JoinGroup, 2, 7, true),
    // 2.1: 0..=2. kp: 0..=4. v3 adds group.instance.id, v4 is flexible.
    row(ApiKey::Heartbeat, 0, 4, true),
    // 2.1: 0..=2. kp: 0..=5. v3 replaces member_id with a members array (the
    // caller fills the one it is given), v4 is flexible; v5 adds a reason.
    row(ApiKey::LeaveGroup, 0, 4, true),
    // 2.1: 0..=2. kp: 0..=5. v3 adds group.instance.id, v4 is flexible, v5
    // carries protocol type and name (checked by the broker when present).
    row(ApiKey::SyncGroup, 0, 5, true),
    // 2.1: 0..=2. kp: 0..=6. v4 returns group.instance.id, v5 is flexible; v6
    // adds error messages. Used by tools and tests only.
    row(ApiKey::DescribeGroups, 0, 5, false),
    // 2.1: 0..=2. kp: 0..=5. v4 filters by state; v5 by type.
    row(ApiKey::ListGroups, 0, 4, false),
    // 2.1: 0..=2. kp: 0..=4. v3 is flexible and sends the client software
    // name and version; v4 adds nothing kafee uses.
    row(ApiKey::ApiVersions, 0, 3, true),
    // 2.1: 0..=3. kp: 2..=7. v5 is flexible and returns configs; v7 returns
    // topic ids.
    row(ApiKey::CreateTopics, 2, 5, false),
    // 2.1: 0..=3. kp: 1..=6. v6 names topics by id or name in a new shape.
    row(ApiKey::DeleteTopics, 1, 5, false),
    // 2.1: 0..=1. kp: 0..=6. v2 is flexible, v3 allows epoch bumps, v4 adds
    // PRODUCER_FENCED; v5+ are for KIP-890 transactions.
    row(ApiKey::InitProducerId, 0, 4, false),
];

/// The version of the first ApiVersions request on a connection.
pub const API_VERSIONS_FIRST: i16 = 3;

/// The row of [`SUPPORTED`] for `api_key`, if kafee sends that API.
pub fn supported(api_key: ApiKey) -> Option<&'static ApiSupport> {
    SUPPORTED.iter().find(|s| s.api_key == api_key)
}

/// The outcome of negotiation for one API.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    Version(i16),
    Unusable(VersionError),
}

/// The version chosen per API for one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    // Indexed like SUPPORTED.
    choices: Vec<Choice>,
}

impl Negotiated {
    /// The version to use for `api_key` with this broker.
    ///
    /// Errors: [`VersionError::NotInTable`] when kafee never sends the API,
    /// [`VersionError::NotAdvertised`] or [`VersionError::NoOverlap`] when
    /// this broker cannot take it.
    pub fn version(&self, api_key: ApiKey) -> Result<i16, VersionError> {
        let index = SUPPORTED
            .iter()
            .position(|s| s.api_key == api_key)
            .ok_or(VersionError::NotInTable { api_key })?;
        match self.choices.get(index) {
            Some(Choice::Version(v)) => Ok(*v),
            Some(Choice::Unusable(e)) => Err(e.clone()),
            None => Err(VersionError::NotInTable { api_key }),
        }
    }

    /// Every API of [`SUPPORTED`] with its outcome, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (ApiKey, Result<i16, VersionError>)> + '_ {
        SUPPORTED.iter().zip(&self.choices).map(|(s, c)| {
            (
                s.api_key,
                match c {
                    Choice::Version(v) => Ok(*v),
                    Choice::Unusable(e) => Err(e.clone()),
                },
            )
        })
    }
}

/// Negotiates from a broker's ApiVersions response.
///
/// Fails when the response carries an error code, or when an API marked
/// `required` in [`SUPPORTED`] has no common version (the error names the
/// API). Optional APIs without overlap fail later, in
/// [`Negotiated::version`].
pub fn negotiate(response: &ApiVersionsResponse) -> Result<Negotiated, VersionError> {
    let code = ErrorCode(response.error_code);
    if !code.is_ok() {
        return Err(VersionError::ApiVersionsFailed { code });
    }
    negotiate_ranges(
        response
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version)),
    )
}

/// Negotiates from `(api_key, min_version, max_version)` triples, as a broker
/// advertises them. Unknown API keys are ignored; if a key appears twice, the
/// last entry wins.
pub fn negotiate_ranges(
    broker: impl IntoIterator<Item = (i16, i16, i16)>,
) -> Result<Negotiated, VersionError> {
    let mut advertised: Vec<Option<(i16, i16)>> = vec![None; SUPPORTED.len()];
    for (key, min, max) in broker {
        if let Some(i) = SUPPORTED.iter().position(|s| s.api_key as i16 == key) {
            advertised[i] = Some((min, max));
        }
    }
    let mut choices = Vec::with_capacity(SUPPORTED.len());
    for (support, broker) in SUPPORTED.iter().zip(advertised) {
        let choice = match broker {
            None => Choice::Unusable(VersionError::NotAdvertised {
                api_key: support.api_key,
            }),
            Some((broker_min, broker_max)) => {
                let low = support.min.max(broker_min);
                let high = support.max.min(broker_max);
                if low <= high {
                    Choice::Version(high)
                } else {
                    Choice::Unusable(VersionError::NoOverlap {
                        api_key: support.api_key,
                        client_min: support.min,
                        client_max: support.max,
                        broker_min,
                        broker_max,
                    })
                }
            }
        };
        if support.required {
            if let Choice::Unusable(e) = choice {
                return Err(e);
            }
        }
        choices.push(choice);
    }
    Ok(Negotiated { choices })
}

/// The ApiVersions request kafee sends at `version`: from v3 on it names the
/// client software (`kafee`) and its version, which brokers require to match
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
pub fn api_versions_request(version: i16) -> ApiVersionsRequest {
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        request.client_software_name = StrBytes::from_static_str("kafee");
        request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
    }
    request
}

/// Decodes an ApiVersions response to a request sent at `sent_version`,
/// returning the correlation id, the response and the version whose layout
/// it had.
///
/// A broker that does not support `sent_version` answers in the v0 layout
/// (header v0, error code, api keys as a classic array); when the body does
/// not decode at `sent_version`, this decodes it as v0. If neither works, the
/// error of the `sent_version` attempt is returned.
pub fn decode_api_versions_response(
    sent_version: i16,
    body: Bytes,
) -> Result<(i32, ApiVersionsResponse, i16), DecodeError> {
    match decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, sent_version, body.clone()) {
        Ok((cid, r)) => Ok((cid, r, sent_version)),
        Err(first) if sent_version > 0 => {
            match decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, 0, body) {
                Ok((cid, r)) => Ok((cid, r, 0)),
                Err(_) => Err(first),
            }
        }
        Err(e) => Err(e),
    }
}

/// What to do with an ApiVersions response (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersionsOutcome {
    /// The broker answered; here is the negotiated table.
    Negotiated(Negotiated),
    /// The broker does not support the version sent: send ApiVersions again at this version.
    Retry {
        /// The version to retry with.
        version: i16,
    },
}

/// Interprets an ApiVersions response to a request sent at `sent_version`.
///
/// On UNSUPPORTED_VERSION, returns the version to retry with: the highest
/// version both kafee and the broker support (from the broker's own
/// ApiVersions entry), or 0 when the broker listed no ApiVersions range (old
/// brokers). Retrying is only offered with a version lower than
/// `sent_version`, so the exchange cannot loop.
pub fn api_versions_outcome(
    sent_version: i16,
    response: &ApiVersionsResponse,
) -> Result<ApiVersionsOutcome, VersionError> {
    let code = ErrorCode(response.error_code);
    if code == ErrorCode::UNSUPPORTED_VERSION {
        let ours = supported(ApiKey::ApiVersions).map_or((0, 0), |s| (s.min, s.max));
        let theirs = response
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .map(|k| (k.min_version, k.max_version));
        let retry = match theirs {
            Some((min, max)) => {
                let high = ours.1.min(max);
                (ours.0.max(min) <= high).then_some(high)
            }
            None => Some(0),
        };
        return match retry {
            Some(version) if version < sent_version => Ok(ApiVersionsOutcome::Retry { version }),
            _ => Err(VersionError::ApiVersionsFailed { code }),
        };
    }
    negotiate(response).map(ApiVersionsOutcome::Negotiated)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::ApiRequest;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::ApiKey::*;
    use kafka_protocol::protocol::{Encodable, Message};

    /// What a Kafka 2.1 broker advertises for the APIs kafee uses: no flexible versions at all.
    const KAFKA_2_1: &[(ApiKey, i16, i16)] = &[
        (Produce, 0, 7),
        (Fetch, 0, 10),
        (ListOffsets, 0, 4),
        (Metadata, 0, 7),
        (OffsetCommit, 0, 6),
        (OffsetFetch, 0, 5),
        (FindCoordinator, 0, 2),
        (JoinGroup, 0, 3),
        (Heartbeat, 0, 2),
        (LeaveGroup, 0, 2),
        (SyncGroup, 0, 2),
        (DescribeGroups, 0, 2),
        (ListGroups, 0, 2),
        (ApiVersions, 0, 2),
        (CreateTopics, 0, 3),
        (DeleteTopics, 0, 3),
        (InitProducerId, 0, 1),
    ];

    fn ranges(table: &[(ApiKey, i16, i16)]) -> Vec<(i16, i16, i16)> {
        table.iter().map(|&(k, a, b)| (k as i16, a, b)).collect()
    }

    fn response(table: &[(ApiKey, i16, i16)], error_code: i16) -> ApiVersionsResponse {
        let mut r = ApiVersionsResponse::default();
        r.error_code = error_code;
        r.api_keys = table
            .iter()
            .map(|&(k, min, max)| {
                let mut v = ApiVersion::default();
                v.api_key = k as i16;
                v.min_version = min;
                v.max_version = max;
                v
            })
            .collect();
        r
    }

    #[test]
    fn table_is_within_kafka_protocol_and_kafka_2_1() {
        for s in SUPPORTED {
            let kp = s.api_key.valid_versions();
            assert!(
                kp.min <= s.min && s.max <= kp.max,
                "{:?} outside kafka-protocol {kp}",
                s.api_key
            );
            assert!(s.min <= s.max);
            let old = KAFKA_2_1.iter().find(|r| r.0 == s.api_key).unwrap();
            assert!(
                s.min <= old.2,
                "{:?} needs a version newer than Kafka 2.1 has",
                s.api_key
            );
        }
        // One row per API.
        for (i, s) in SUPPORTED.iter().enumerate() {
            assert!(SUPPORTED[i + 1..].iter().all(|t| t.api_key != s.api_key));
        }
    }

    #[test]
    fn kafka_2_1_negotiates_every_api_without_flexible_versions() {
        let n = negotiate(&response(KAFKA_2_1, 0)).unwrap();
        let expect = [
            (Produce, 7),
            (Fetch, 10),
            (ListOffsets, 4),
            (Metadata, 7),
            (OffsetCommit, 6),
            (OffsetFetch, 5),
            (FindCoordinator, 2),
            (JoinGroup, 3),
            (Heartbeat, 2),
            (LeaveGroup, 2),
            (SyncGroup, 2),
            (DescribeGroups, 2),
            (ListGroups, 2),
            (ApiVersions, 2),
            (CreateTopics, 3),
            (DeleteTopics, 3),
            (InitProducerId, 1),
        ];
        for (key, v) in expect {
            assert_eq!(n.version(key), Ok(v), "{key:?}");
            assert_eq!(
                key.request_header_version(v),
                1,
                "{key:?} v{v} is not flexible"
            );
        }
        assert_eq!(n.iter().count(), SUPPORTED.len());
    }

    #[test]
    fn modern_broker_gets_our_maximums() {
        let all: Vec<(i16, i16, i16)> = ApiKey::iter()
            .map(|k| (k as i16, k.valid_versions().min, k.valid_versions().max + 3))
            .collect();
        let n = negotiate_ranges(all).unwrap();
        for s in SUPPORTED {
            assert_eq!(n.version(s.api_key), Ok(s.max));
        }
    }

    #[test]
    fn no_overlap_on_a_required_api_names_it() {
        let mut table = KAFKA_2_1.to_vec();
        table.retain(|r| r.0 != Fetch);
        table.push((Fetch, 0, 3));
        let err = negotiate(&response(&table, 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no common version for Fetch: client supports 4..=12, broker supports 0..=3"
        );
    }

    #[test]
    fn missing_required_api_is_an_error() {
        let table: Vec<_> = KAFKA_2_1
            .iter()
            .copied()
            .filter(|r| r.0 != JoinGroup)
            .collect();
        assert_eq!(
            negotiate_ranges(ranges(&table)).unwrap_err().to_string(),
            "broker does not support JoinGroup"
        );
    }

    #[test]
    fn optional_api_errors_surface_on_use() {
        let mut table: Vec<_> = KAFKA_2_1
            .iter()
            .copied()
            .filter(|r| r.0 != InitProducerId)
            .collect();
        table.retain(|r| r.0 != Produce);
        table.push((Produce, 0, 2));
        let n = negotiate_ranges(ranges(&table)).unwrap();
        assert_eq!(
            n.version(Produce).unwrap_err().to_string(),
            "no common version for Produce: client supports 3..=9, broker supports 0..=2"
        );
        assert_eq!(
            n.version(InitProducerId).unwrap_err().to_string(),
            "broker does not support InitProducerId"
        );
        assert_eq!(
            n.version(SaslHandshake).unwrap_err().to_string(),
            "SaslHandshake is not in kafee's version table"
        );
        assert_eq!(n.version(Fetch), Ok(10));
    }

    #[test]
    fn error_code_in_response_fails_negotiation() {
        let err = negotiate(&response(KAFKA_2_1, 31)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ApiVersions failed with CLUSTER_AUTHORIZATION_FAILED (31)"
        );
    }

    #[test]
    fn unsupported_version_retries_lower_then_stops() {
        // KIP-511 broker: lists its ApiVersions range.
        let r = response(&[(ApiVersions, 0, 2)], 35);
        assert_eq!(
            api_versions_outcome(3, &r),
            Ok(ApiVersionsOutcome::Retry { version: 2 })
        );
        // Old broker: lists nothing.
        let r = response(&[], 35);
        assert_eq!(
            api_versions_outcome(3, &r),
            Ok(ApiVersionsOutcome::Retry { version: 0 })
        );
        // Already at the lowest: no loop.
        assert_eq!(
            api_versions_outcome(0, &r).unwrap_err().to_string(),
            "ApiVersions failed with UNSUPPORTED_VERSION (35)"
        );
        // Success.
        match api_versions_outcome(2, &response(KAFKA_2_1, 0)).unwrap() {
            ApiVersionsOutcome::Negotiated(n) => assert_eq!(n.version(ApiVersions), Ok(2)),
            other => panic!("{other:?}"),
        }
    }

    /// Builds a response frame body (header v0 + body) the way a broker does.
    fn body(correlation_id: i32, version: i16, r: &ApiVersionsResponse) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i32(correlation_id);
        r.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn v3_request_answered_in_v0_layout_is_decoded() {
        let reply = response(&[(ApiVersions, 0, 2)], 35);
        let (cid, decoded, layout) = decode_api_versions_response(3, body(9, 0, &reply)).unwrap();
        assert_eq!((cid, layout), (9, 0));
        assert_eq!(decoded.error_code, 35);
        assert_eq!(
            api_versions_outcome(3, &decoded),
            Ok(ApiVersionsOutcome::Retry { version: 2 })
        );

        let ok = response(KAFKA_2_1, 0);
        let (cid, decoded, layout) = decode_api_versions_response(3, body(10, 3, &ok)).unwrap();
        assert_eq!((cid, layout), (10, 3));
        assert_eq!(decoded.api_keys.len(), KAFKA_2_1.len());
    }

    #[test]
    fn garbage_api_versions_body_reports_the_sent_version() {
        let err =
            decode_api_versions_response(3, Bytes::from_static(&[0, 0, 0, 1, 0xff])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot decode ApiVersions v3 body"),
            "{err}"
        );
    }

    #[test]
    fn api_versions_request_names_kafee() {
        let r = api_versions_request(3);
        assert_eq!(r.client_software_name.as_str(), "kafee");
        assert!(!r.client_software_version.is_empty());
        const { assert!(ApiVersionsRequest::VERSIONS.max >= API_VERSIONS_FIRST) };
        assert_eq!(<ApiVersionsRequest as ApiRequest>::API_KEY, ApiVersions);
        let mut buf = BytesMut::new();
        r.encode(&mut buf, 3).unwrap();
        assert!(api_versions_request(0).client_software_name.is_empty());
    }
}
