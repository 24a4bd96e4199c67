//! kafee's own Metadata response decoder: the first byte picks the version
//! (wrapping over 0..=15, so versions outside 0..=12 are tried too), the rest
//! is the body after the response header. Decoding must return a response or
//! a `DecodeError`, never panic, and never reserve memory from a count the
//! body cannot hold (this target runs on the plain system allocator).
#![no_main]

use bytes::Bytes;
use kafee_protocol::metadata_response::{decode_metadata_response, MAX_VERSION, MIN_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&version, body)) = data.split_first() else {
        return;
    };
    let version = i16::from(version % 16);
    let body = Bytes::copy_from_slice(body);
    match decode_metadata_response(version, body.clone()) {
        Ok(response) => {
            assert!((MIN_VERSION..=MAX_VERSION).contains(&version));
            // Each element takes at least one byte on the wire.
            assert!(response.brokers.len() + response.topics.len() <= body.len());
            for topic in &response.topics {
                let ids: usize = topic
                    .partitions
                    .iter()
                    .map(|p| p.replica_nodes.len() + p.isr_nodes.len() + p.offline_replicas.len())
                    .sum();
                assert!(4 * ids <= body.len());
            }
        }
        Err(e) => assert!(e.to_string().len() < 512),
    }
});
