//! What kafee's own response decoders (Fetch, Metadata) allocate stays
//! within a small multiple of their input, whatever the input: counts and
//! lengths read off the wire are checked against the bytes that remain
//! before anything is reserved.
//!
//! One test in this binary, because the counting allocator is global.
#![allow(clippy::unwrap_used)]

use std::alloc::System;

use bytes::{BufMut, Bytes, BytesMut};
use kafee_protocol::fetch_response::decode_fetch_response;
use kafee_protocol::metadata_response::decode_metadata_response;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allowed bytes allocated per input byte. The worst case is a Fetch v12
/// body of empty topics: 3 bytes on the wire each, a 48-byte
/// `FetchTopicView` each. (Metadata's worst, a v0 topic, is 8 bytes on the
/// wire for kafka-protocol's ~112-byte `MetadataResponseTopic`.)
const FACTOR: usize = 16;
/// Allowed fixed overhead (error messages).
const SLACK: usize = 512;

fn allocated_by_decode(version: i16, body: Bytes) -> (usize, usize) {
    let region = Region::new(GLOBAL);
    let result = decode_fetch_response(version, body.clone());
    let fetch = region.change().bytes_allocated;
    drop(result);
    let region = Region::new(GLOBAL);
    let result = decode_metadata_response(version, body);
    let metadata = region.change().bytes_allocated;
    drop(result);
    (fetch, metadata)
}

fn check(version: i16, body: Bytes) -> Result<(), TestCaseError> {
    let len = body.len();
    let (fetch, metadata) = allocated_by_decode(version, body);
    prop_assert!(
        fetch <= FACTOR * len + SLACK,
        "Fetch v{version}: {fetch} bytes allocated for {len} input bytes"
    );
    prop_assert!(
        metadata <= FACTOR * len + SLACK,
        "Metadata v{version}: {metadata} bytes allocated for {len} input bytes"
    );
    Ok(())
}

/// A v12 body of `n` topics with empty names and no partitions.
fn many_empty_topics(n: u32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(&[0; 10]);
    let mut count = n + 1;
    while count >= 0x80 {
        b.put_u8((count as u8) | 0x80);
        count >>= 7;
    }
    b.put_u8(count as u8);
    for _ in 0..n {
        b.put_slice(&[1, 1, 0]);
    }
    b.put_u8(0);
    b.freeze()
}

#[test]
fn decoders_allocate_a_bounded_multiple_of_their_input() {
    // 12 bytes announcing 2^31 - 1 topics: kafka-protocol reserves tens of GB.
    for version in 4..=12 {
        let body = Bytes::from_static(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert!(decode_fetch_response(version, body.clone()).is_err());
        check(version, body).unwrap();
    }
    // The worst case that decodes, at the bound.
    let body = many_empty_topics(10_000);
    let view = decode_fetch_response(12, body.clone()).unwrap();
    assert_eq!(view.topics.len(), 10_000);
    check(12, body).unwrap();
    // Metadata v0 with 10 000 topics of empty names and no partitions.
    let mut b = BytesMut::new();
    b.put_i32(0);
    b.put_i32(10_000);
    for _ in 0..10_000 {
        b.put_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    }
    let body = b.freeze();
    assert_eq!(
        decode_metadata_response(0, body.clone())
            .unwrap()
            .topics
            .len(),
        10_000
    );
    check(0, body).unwrap();

    // Arbitrary bytes, and arbitrary bytes after a plausible prefix (small
    // counts, so the decoder gets deep into the body).
    let mut runner = TestRunner::new(Config::with_cases(2000));
    runner
        .run(
            &(
                0i16..=12,
                prop::collection::vec(any::<u8>(), 0..512),
                prop::collection::vec(0u8..4, 0..64),
            ),
            |(version, noise, small)| {
                check(version, Bytes::from(noise.clone()))?;
                let mut mixed = Vec::with_capacity(noise.len() + small.len());
                for (i, b) in noise.iter().enumerate() {
                    mixed.push(if i % 3 == 0 {
                        small.get(i / 3).copied().unwrap_or(*b)
                    } else {
                        *b
                    });
                }
                check(version, Bytes::from(mixed))
            },
        )
        .unwrap();
}
