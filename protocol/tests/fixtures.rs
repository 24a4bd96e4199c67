//! Record sets captured from a real broker (Apache Kafka 4.4), written by
//! librdkafka and by Apache Kafka's Java producer with every codec, decoded and
//! compared to what was produced. Captured by `scripts/capture-fixtures`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafee_protocol::records::{
    AbortedTransaction, AbortedTransactionFilter, BatchAction, Compression, ControlRecordType,
    DecodeLimits, Header, RecordBatchBuilder, RecordSet,
};
use serde_json::Value;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    out.sort();
    out
}

fn hex(v: &Value) -> Option<Vec<u8>> {
    let s = v.as_str()?;
    Some(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect(),
    )
}

type Decoded = (
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

fn expected_records(meta: &Value) -> Vec<Decoded> {
    meta["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let headers = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h[0].as_str().unwrap().as_bytes().to_vec(), hex(&h[1])))
                .collect();
            (
                r["offset"].as_i64().unwrap(),
                r["timestamp"].as_i64().unwrap(),
                hex(&r["key"]),
                hex(&r["value"]),
                headers,
            )
        })
        .collect()
}

fn codec(name: &str) -> Compression {
    Compression::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .unwrap()
}

#[test]
fn captured_record_sets_decode_to_what_was_produced() {
    let paths = fixtures();
    // 5 codecs x (librdkafka, Java) + a transactional Java run.
    assert!(paths.len() >= 11, "fixtures missing: {paths:?}");
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let data = Bytes::from(std::fs::read(path.with_extension("bin")).unwrap());
        let want_codec = codec(meta["codec"].as_str().unwrap());
        let aborted = meta["aborted_transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| AbortedTransaction {
                producer_id: a[0].as_i64().unwrap(),
                first_offset: a[1].as_i64().unwrap(),
            });
        let mut filter = AbortedTransactionFilter::new(aborted);
        let mut set = RecordSet::new(data.clone());
        let mut got: Vec<Decoded> = Vec::new();
        let mut markers = Vec::new();
        let mut skipped_aborted = 0;
        for batch in &mut set {
            let batch = batch.unwrap_or_else(|e| panic!("{name}: {e}"));
            let action = filter.classify(&batch).unwrap();
            if batch.is_control() {
                markers.push(batch.control_record().unwrap().unwrap().kind);
            } else {
                assert_eq!(batch.compression(), want_codec, "{name}");
            }
            match action {
                BatchAction::Deliver => {}
                BatchAction::SkipAborted => {
                    skipped_aborted += batch.record_count();
                    continue;
                }
                BatchAction::SkipControl => continue,
            }
            let decoded = batch.decode(&DecodeLimits::default()).unwrap();
            let mut wire = 0;
            for record in decoded.records() {
                let r = record.unwrap_or_else(|e| panic!("{name}: {e}"));
                wire += r.wire_size();
                got.push((
                    r.offset(),
                    r.timestamp(),
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                    r.headers()
                        .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                        .collect(),
                ));
            }
            assert_eq!(wire, decoded.records_bytes().len(), "{name}");
            if batch.compression() == Compression::None {
                assert_eq!(wire + 61, batch.wire_size(), "{name}");
                assert_eq!(
                    reencode(&batch, &decoded),
                    *batch.as_bytes(),
                    "{name}: re-encoding"
                );
            }
        }
        assert!(!set.is_truncated() && !set.is_failed(), "{name}");
        assert_eq!(set.bytes_consumed(), data.len(), "{name}");
        let want = expected_records(&meta);
        assert_eq!(got.len(), want.len(), "{name}: record count");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g == w,
                "{name}: record at offset {} differs: got {g:?}",
                w.0
            );
        }
        if meta["transactional"].as_bool().unwrap() {
            assert_eq!(
                skipped_aborted, 2,
                "{name}: the aborted transaction's records"
            );
            assert_eq!(
                markers,
                [
                    ControlRecordType::Commit,
                    ControlRecordType::Abort,
                    ControlRecordType::Commit
                ],
                "{name}"
            );
        }
    }
}

/// Re-encodes an uncompressed batch with the builder, from its header fields
/// and records, for a byte-for-byte comparison.
fn reencode(
    batch: &kafee_protocol::records::RecordBatch,
    decoded: &kafee_protocol::records::DecodedBatch,
) -> Bytes {
    let mut builder = RecordBatchBuilder::new(batch.base_offset())
        .partition_leader_epoch(batch.partition_leader_epoch())
        .producer(
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence(),
        )
        .transactional(batch.is_transactional())
        .control(batch.is_control())
        .timestamp_type(batch.timestamp_type())
        .last_offset_delta(batch.last_offset_delta());
    for record in decoded.records() {
        let r = record.unwrap();
        let headers: Vec<Header<'_>> = r.headers().collect();
        builder
            .append_at(r.offset(), r.timestamp(), r.key(), r.value(), &headers)
            .unwrap();
    }
    builder.build().unwrap()
}
