//! Consumer-protocol subscription and assignment bytes (JoinGroup protocol
//! metadata and SyncGroup assignments from other clients): decoding must
//! never panic or over-allocate, and whatever decodes must re-encode and
//! decode to the same value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kafee_protocol::consumer_protocol::fuzzing::decode_both(data);
});
