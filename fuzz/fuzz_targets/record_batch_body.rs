//! Bytes treated as a record batch body after the CRC (attributes, header
//! fields, records), wrapped with a valid length and CRC so every input reaches
//! the decompressors and the record parser. Nothing may panic.
#![no_main]

use kafee_protocol::records::{batch_from_body, DecodeLimits, RecordBatch, RecordSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = batch_from_body(0x0102_0304, data);
    let batch = match RecordBatch::parse(bytes.clone()) {
        Ok(batch) => batch,
        // Only an unknown compression codec may reject a well-framed batch.
        Err(e) => {
            assert!(
                matches!(
                    e,
                    kafee_protocol::records::RecordError::UnknownCompression { .. }
                ),
                "{e}"
            );
            return;
        }
    };
    // The record set sees the same single batch.
    let mut set = RecordSet::new(bytes);
    assert!(set.next().is_some_and(|b| b.is_ok()));
    assert!(set.next().is_none() && !set.is_truncated());

    let _ = batch.control_record();
    let Ok(decoded) = batch.decode(&DecodeLimits::with_max_decompressed_bytes(1 << 20)) else {
        return;
    };
    let mut errors = 0;
    for record in decoded.records() {
        match record {
            Ok(record) => {
                let owned = record.to_owned();
                assert_eq!(owned.offset(), record.offset());
                for header in record.headers() {
                    let _ = header.key_str();
                }
                let _ = owned.owned_headers();
            }
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1);
    let _ = decoded.owned_records();
});
