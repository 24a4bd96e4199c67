//! What the Fetch response decoder allocates stays within a small multiple
//! of its input, whatever the input: counts and lengths read off the wire
//! are checked against the bytes that remain before anything is reserved.
//!
//! One test in this binary, because the counting allocator is global.
#![allow(clippy::unwrap_used)]

use std::alloc::System;

use bytes::{BufMut, Bytes, BytesMut};
use kafee_protocol::fetch_response::decode_fetch_response;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allowed bytes allocated per input byte. The worst case is a v12 body of
/// empty topics: 3 bytes on the wire each, a 48-byte `FetchTopicView` each.
const FACTOR: usize = 16;
/// Allowed fixed overhead (error messages).
const SLACK: usize = 512;

fn allocated_by_decode(version: i16, body: Bytes) -> usize {
    let region = Region::new(GLOBAL);
    let result = decode_fetch_response(version, body);
    let allocated = region.change().bytes_allocated;
    drop(result);
    allocated
}

fn check(version: i16, body: Bytes) -> Result<(), TestCaseError> {
    let len = body.len();
    let allocated = allocated_by_decode(version, body);
    prop_assert!(
        allocated <= FACTOR * len + SLACK,
        "v{version}: {allocated} bytes allocated for {len} input bytes"
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
fn decoder_allocates_a_bounded_multiple_of_its_input() {
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

    // Arbitrary bytes, and arbitrary bytes after a plausible prefix (small
    // counts, so the decoder gets deep into the body).
    let mut runner = TestRunner::new(Config::with_cases(2000));
    runner
        .run(
            &(
                4i16..=12,
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
