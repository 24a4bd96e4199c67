//! Our builder and decoder against an independent implementation of the same
//! format, the `kafka-protocol` crate: batches we build decode there to the
//! same records, and batches it builds decode here.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use kafee_protocol::records::{DecodeLimits, Header, RecordBatchBuilder, RecordSet};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KpTimestampType,
};
use proptest::prelude::*;

type Rec = (
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn recs() -> impl Strategy<Value = Vec<Rec>> {
    prop::collection::vec(
        (
            1i64..1000,
            -(1i64 << 40)..(1i64 << 40),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
            // kafka-protocol keeps headers in a map: distinct UTF-8 keys.
            prop::collection::btree_map(
                "[a-z]{1,6}",
                prop::option::of(prop::collection::vec(any::<u8>(), 0..10)),
                0..3,
            ),
        ),
        1..30,
    )
    .prop_map(|v| {
        let mut offset = 99;
        v.into_iter()
            .map(|(gap, ts, k, val, h)| {
                offset += gap;
                (offset, ts, k, val, h.into_iter().collect())
            })
            .collect()
    })
}

fn ours(bytes: Bytes) -> Vec<Rec> {
    let mut out = Vec::new();
    for batch in RecordSet::new(bytes) {
        let decoded = batch.unwrap().decode(&DecodeLimits::default()).unwrap();
        for r in decoded.records() {
            let r = r.unwrap();
            out.push((
                r.offset(),
                r.timestamp(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                r.headers()
                    .map(|h| (h.key_str().unwrap().to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect(),
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A batch from our builder is decoded by kafka-protocol (which checks the
    /// CRC) to the same records.
    #[test]
    fn kafka_protocol_decodes_our_batches(records in recs()) {
        let base = records[0].0 - 1;
        let mut builder = RecordBatchBuilder::new(base).producer(5, 1, 0);
        for (offset, ts, key, value, headers) in &records {
            let headers: Vec<Header<'_>> =
                headers.iter().map(|(k, v)| Header { key: k.as_bytes(), value: v.as_deref() }).collect();
            builder.append_at(*offset, *ts, key.as_deref(), value.as_deref(), &headers).unwrap();
        }
        let mut bytes = builder.build().unwrap();
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        prop_assert!(bytes.is_empty());
        let theirs: Vec<Rec> = set
            .records
            .iter()
            .map(|r| {
                prop_assert_eq!(r.producer_id, 5);
                Ok((
                    r.offset,
                    r.timestamp,
                    r.key.as_ref().map(|b| b.to_vec()),
                    r.value.as_ref().map(|b| b.to_vec()),
                    r.headers.iter().map(|(k, v)| (k.to_string(), v.as_ref().map(|b| b.to_vec()))).collect(),
                ))
            })
            .collect::<Result<_, TestCaseError>>()?;
        prop_assert_eq!(theirs, records);
    }

    /// A batch from kafka-protocol's encoder decodes here to the same records.
    #[test]
    fn we_decode_kafka_protocol_batches(records in recs()) {
        let kp: Vec<KpRecord> = records
            .iter()
            .map(|(offset, ts, key, value, headers)| KpRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 9,
                producer_epoch: 0,
                timestamp_type: KpTimestampType::Creation,
                offset: *offset,
                // Sequences that follow the offsets keep all records in one batch.
                sequence: *offset as i32,
                timestamp: *ts,
                key: key.clone().map(Bytes::from),
                value: value.clone().map(Bytes::from),
                headers: headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                    .collect::<IndexMap<_, _>>(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &kp, &RecordEncodeOptions { version: 2, compression: KpCompression::None })
            .unwrap();
        prop_assert_eq!(ours(buf.freeze()), records);
    }
}
