//! Arbitrary bytes as a fetch response partition's record set: iterate every
//! batch, decode its records (decompression bounded), walk every header and
//! make owned copies. Nothing may panic; invariants of the iterators hold.
#![no_main]

use bytes::Bytes;
use kafee_protocol::records::{DecodeLimits, RecordSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let bytes = Bytes::copy_from_slice(rest);
    let mut set = RecordSet::new(bytes).verify_crc(flags & 1 == 0);
    let limits = DecodeLimits::with_max_decompressed_bytes(1 << 20);
    let mut consumed = 0;
    for batch in &mut set {
        let Ok(batch) = batch else { break };
        consumed += batch.wire_size();
        assert_eq!(batch.wire_size(), 12 + batch.batch_length() as usize);
        let _ = batch.control_record();
        let Ok(decoded) = batch.decode(&limits) else {
            continue;
        };
        let mut errors = 0;
        let mut wire = 0;
        for record in decoded.records() {
            match record {
                Ok(record) => {
                    wire += record.wire_size();
                    let owned = record.to_owned();
                    assert_eq!(owned.key(), record.key());
                    assert_eq!(owned.value(), record.value());
                    assert_eq!(owned.headers().count(), record.header_count());
                    assert!(owned.headers().eq(record.headers()));
                }
                Err(_) => errors += 1,
            }
        }
        assert!(errors <= 1);
        if errors == 0 {
            assert_eq!(wire, decoded.records_bytes().len());
            let owned = decoded.owned_records().expect("validated above");
            assert_eq!(owned.len(), decoded.records().count());
        } else {
            assert!(decoded.owned_records().is_err());
        }
    }
    assert_eq!(set.bytes_consumed(), consumed);
    assert_eq!(set.bytes_consumed() + set.remaining(), rest.len());
});
