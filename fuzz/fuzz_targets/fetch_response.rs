//! kafee's own Fetch response decoder: the first byte picks the version
//! (wrapping over 0..=15, so versions outside 4..=12 are tried too), the rest
//! is the body after the response header. Decoding must return a view or a
//! `DecodeError`, never panic, and never reserve memory from a count the body
//! cannot hold. Unlike `response_decode`, this target runs on the plain
//! system allocator: a huge reservation would abort it, which is the bug
//! this decoder exists to rule out.
#![no_main]

use bytes::Bytes;
use kafee_protocol::fetch_response::{decode_fetch_response, MAX_VERSION, MIN_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&version, body)) = data.split_first() else {
        return;
    };
    let version = i16::from(version % 16);
    let body = Bytes::copy_from_slice(body);
    match decode_fetch_response(version, body.clone()) {
        Ok(view) => {
            assert!((MIN_VERSION..=MAX_VERSION).contains(&version));
            let range = body.as_ptr_range();
            let mut record_bytes = 0;
            for topic in &view.topics {
                assert!(topic.name.len() <= body.len());
                for partition in &topic.partitions {
                    if let Some(records) = &partition.records {
                        // Zero-copy: every non-empty record set lies inside the body.
                        if !records.is_empty() {
                            assert!(range.contains(&records.as_ptr()));
                        }
                        record_bytes += records.len();
                    }
                }
            }
            assert!(record_bytes <= body.len());
        }
        Err(e) => {
            // Error messages are bounded too (no echo of the body).
            assert!(e.to_string().len() < 512);
        }
    }
});
