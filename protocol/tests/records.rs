//! Record batches: builder/decoder round trips, malformed input, truncated
//! tails, control batches and the `read_committed` filter.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use kafee_protocol::records::{
    AbortedTransaction, AbortedTransactionFilter, BatchAction, Compression, ControlRecord,
    ControlRecordType, DecodeLimits, Header, OwnedRecord, RecordBatch, RecordBatchBuilder,
    RecordError, RecordSet, TimestampType,
};
use proptest::prelude::*;

/// A record as the tests describe it.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    offset_gap: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// What a decoded record should look like: offset, timestamp, key, value, headers.
#[derive(Debug, Clone, PartialEq)]
struct Want {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Want {
    fn of(r: &OwnedRecord) -> Want {
        Want {
            offset: r.offset(),
            timestamp: r.timestamp(),
            key: r.key().map(<[u8]>::to_vec),
            value: r.value().map(<[u8]>::to_vec),
            headers: r
                .headers()
                .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

fn build(base_offset: i64, codec: Compression, specs: &[Spec]) -> (Bytes, Vec<Want>) {
    let mut builder = RecordBatchBuilder::new(base_offset).compression(codec);
    let mut expected = Vec::new();
    let mut offset = base_offset - 1;
    for spec in specs {
        offset += spec.offset_gap;
        let headers: Vec<Header<'_>> = spec
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k,
                value: v.as_deref(),
            })
            .collect();
        builder
            .append_at(
                offset,
                spec.timestamp,
                spec.key.as_deref(),
                spec.value.as_deref(),
                &headers,
            )
            .unwrap();
        expected.push(Want {
            offset,
            timestamp: spec.timestamp,
            key: spec.key.clone(),
            value: spec.value.clone(),
            headers: spec.headers.clone(),
        });
    }
    (builder.build().unwrap(), expected)
}

fn decode_all(bytes: Bytes) -> Vec<OwnedRecord> {
    let mut out = Vec::new();
    let mut set = RecordSet::new(bytes);
    for batch in &mut set {
        let decoded = batch.unwrap().decode(&DecodeLimits::default()).unwrap();
        out.extend(decoded.to_owned_records().unwrap());
    }
    assert!(!set.is_truncated() && !set.is_failed());
    out
}

fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

fn bytes_opt(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..max))
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![4 => Just(1i64), 1 => 1i64..100_000, 1 => 1i64..(1 << 24)],
        prop_oneof![
            Just(0i64),
            0i64..4_000_000_000_000,
            // Deltas beyond 2^31 from any base.
            -(1i64 << 40)..(1i64 << 40),
        ],
        bytes_opt(24),
        bytes_opt(300),
        prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..12), bytes_opt(16)),
            0..4,
        ),
    )
        .prop_map(|(offset_gap, timestamp, key, value, headers)| Spec {
            offset_gap,
            timestamp,
            key,
            value,
            headers,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Batches built by the builder decode to the same records, for every codec.
    #[test]
    fn builder_batches_round_trip(
        base_offset in prop_oneof![Just(0i64), 0i64..(1i64 << 50)],
        codec in codec(),
        specs in prop::collection::vec(spec(), 1..40),
    ) {
        let (bytes, expected) = build(base_offset, codec, &specs);
        let batch = RecordBatch::parse(bytes.clone()).unwrap();
        prop_assert_eq!(batch.compression(), codec);
        prop_assert_eq!(batch.record_count() as usize, specs.len());
        prop_assert_eq!(batch.last_offset(), expected.last().unwrap().offset);
        prop_assert_eq!(batch.max_timestamp(), specs.iter().map(|s| s.timestamp).max().unwrap());
        prop_assert_eq!(batch.wire_size(), bytes.len());
        let decoded = batch.decode(&DecodeLimits::default()).unwrap();
        let mut wire_total = 0;
        let mut views = 0;
        for (record, want) in decoded.records().zip(&expected) {
            let record = record.unwrap();
            views += 1;
            prop_assert_eq!(record.offset(), want.offset);
            prop_assert_eq!(record.timestamp(), want.timestamp);
            prop_assert_eq!(record.key(), want.key.as_deref());
            prop_assert_eq!(record.value(), want.value.as_deref());
            let headers: Vec<_> = record.headers().map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec))).collect();
            prop_assert_eq!(&headers, &want.headers);
            let owned = record.to_owned();
            prop_assert_eq!(owned.wire_size(), record.wire_size());
            let key = owned.key_bytes();
            prop_assert_eq!(key.as_deref(), record.key());
            let value = owned.value_bytes();
            prop_assert_eq!(value.as_deref(), record.value());
            wire_total += record.wire_size();
        }
        prop_assert_eq!(views, specs.len());
        prop_assert_eq!(wire_total, decoded.records_bytes().len());
        if codec == Compression::None {
            prop_assert_eq!(wire_total + 61, batch.wire_size());
        }
        let owned = decode_all(bytes);
        let owned: Vec<_> = owned.iter().map(Want::of).collect();
        prop_assert_eq!(owned, expected);
    }

    /// Several batches back to back, then any cut: the whole batches decode, the
    /// cut one is a silent truncated tail, and bytes_consumed sums the whole ones.
    #[test]
    fn truncated_tails_stop_silently(
        codecs in prop::collection::vec(codec(), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut all = BytesMut::new();
        let mut ends = Vec::new();
        let mut next = 0;
        for codec in &codecs {
            let specs: Vec<Spec> = (0..5).map(|i| Spec {
                offset_gap: 1, timestamp: 1_000 + i, key: None,
                value: Some(vec![i as u8; 50]), headers: vec![],
            }).collect();
            let (bytes, _) = build(next, *codec, &specs);
            next += 5;
            all.extend_from_slice(&bytes);
            ends.push(all.len());
        }
        let all = all.freeze();
        let cut = cut.index(all.len() + 1);
        let mut set = RecordSet::new(all.slice(..cut));
        let mut whole = 0;
        for batch in set.by_ref() {
            batch.unwrap();
            whole += 1;
        }
        let want_whole = ends.iter().filter(|&&e| e <= cut).count();
        prop_assert_eq!(whole, want_whole);
        let consumed = if want_whole == 0 { 0 } else { ends[want_whole - 1] };
        prop_assert_eq!(set.bytes_consumed(), consumed);
        prop_assert_eq!(set.is_truncated(), consumed != cut);
        prop_assert_eq!(set.remaining(), cut - consumed);
    }

    /// Arbitrary bytes never panic, whatever the codec bits say.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        exercise(Bytes::from(data), false);
    }

    /// Valid batches with bytes flipped never panic; with the CRC off the
    /// corruption reaches the record parser.
    #[test]
    fn mutated_batches_never_panic(
        codec in codec(),
        specs in prop::collection::vec(spec(), 1..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let (bytes, _) = build(5, codec, &specs);
        let mut data = bytes.to_vec();
        for (at, v) in flips {
            let i = at.index(data.len());
            data[i] ^= v;
        }
        let cut = cut.index(data.len() + 1).max(data.len() / 2);
        data.truncate(cut);
        exercise(Bytes::from(data.clone()), false);
        exercise(Bytes::from(data), true);
    }
}

/// Iterates everything, headers and owned copies included.
fn exercise(data: Bytes, skip_crc: bool) {
    let mut set = RecordSet::new(data).verify_crc(!skip_crc);
    let limits = DecodeLimits::with_max_decompressed_bytes(1 << 20);
    for batch in &mut set {
        let Ok(batch) = batch else { break };
        let _ = batch.control_record();
        let Ok(decoded) = batch.decode(&limits) else {
            continue;
        };
        let mut errors = 0;
        for record in decoded.records() {
            match record {
                Ok(record) => {
                    let owned = record.to_owned();
                    assert_eq!(owned.headers().count(), record.header_count());
                    assert_eq!(owned.owned_headers().len(), record.header_count());
                    for header in record.headers() {
                        let _ = header.key_str();
                    }
                }
                Err(_) => errors += 1,
            }
        }
        assert!(errors <= 1, "an iterator yields at most one error");
    }
    assert!(set.bytes_consumed() + set.remaining() == set.as_bytes().len());
}

fn one_record_batch(base_offset: i64) -> Bytes {
    let mut builder = RecordBatchBuilder::new(base_offset);
    builder.append(1_000, Some(b"k"), Some(b"v"), &[]).unwrap();
    builder.build().unwrap()
}

#[test]
fn crc_mismatch_names_the_base_offset() {
    let mut data = one_record_batch(1234).to_vec();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    let batch = RecordBatch::parse(Bytes::from(data.clone()));
    let err = batch.unwrap_err();
    let (expected, actual) = match err {
        RecordError::CrcMismatch {
            base_offset: 1234,
            expected,
            actual,
        } => (expected, actual),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        err.to_string(),
        format!("record batch at offset 1234: CRC {actual:#010x} != {expected:#010x}")
    );
    // In a record set the corrupt batch is an error and nothing is consumed.
    let mut set = RecordSet::new(Bytes::from(data));
    assert!(matches!(
        set.next(),
        Some(Err(RecordError::CrcMismatch { .. }))
    ));
    assert!(set.next().is_none());
    assert_eq!(set.bytes_consumed(), 0);
    assert!(set.is_failed());
}

#[test]
fn magic_one_is_a_clear_error() {
    // A v1 message: offset, size, crc, magic 1, attributes, timestamp, key, value.
    let mut v1 = Vec::new();
    v1.extend_from_slice(&77i64.to_be_bytes());
    v1.extend_from_slice(&26i32.to_be_bytes());
    v1.extend_from_slice(&0u32.to_be_bytes());
    v1.push(1);
    v1.push(0);
    v1.extend_from_slice(&0i64.to_be_bytes());
    v1.extend_from_slice(&(-1i32).to_be_bytes());
    v1.extend_from_slice(&4i32.to_be_bytes());
    v1.extend_from_slice(b"abcd");
    let mut set = RecordSet::new(Bytes::from(v1.clone()));
    let err = set.next().unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "record batch at offset 77: magic 1 is not supported (only magic v2 record batches are decoded; \
         magic 0 and 1 predate Kafka 0.11)"
    );
    assert!(set.next().is_none());
    v1[16] = 0;
    assert!(matches!(
        RecordBatch::parse(Bytes::from(v1)),
        Err(RecordError::UnsupportedMagic {
            base_offset: 77,
            magic: 0
        })
    ));
}

#[test]
fn batch_length_below_the_header_is_an_error() {
    let mut data = one_record_batch(9).to_vec();
    data[8..12].copy_from_slice(&48i32.to_be_bytes());
    let mut set = RecordSet::new(Bytes::from(data.clone()));
    let err = set.next().unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "record batch at offset 9: batch length 48 is below the minimum of 49 bytes"
    );
    data[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    let mut set = RecordSet::new(Bytes::from(data));
    assert!(matches!(
        set.next(),
        Some(Err(RecordError::InvalidBatchLength {
            batch_length: -5,
            ..
        }))
    ));
}

#[test]
fn batch_length_above_the_remaining_bytes_is_a_truncated_tail() {
    let first = one_record_batch(0);
    let second = one_record_batch(1);
    let mut data = BytesMut::new();
    data.extend_from_slice(&first);
    data.extend_from_slice(&second[..second.len() - 1]);
    let mut set = RecordSet::new(data.freeze());
    assert_eq!(set.next().unwrap().unwrap().base_offset(), 0);
    assert!(set.next().is_none());
    assert!(set.is_truncated());
    assert_eq!(set.bytes_consumed(), first.len());
    assert_eq!(set.remaining(), second.len() - 1);

    // Fewer than 12 bytes, and fewer than 17 (magic not yet visible).
    for tail in [5, 12, 16] {
        let mut set = RecordSet::new(second.slice(..tail));
        assert!(set.next().is_none());
        assert!(set.is_truncated(), "{tail}");
        assert_eq!(set.bytes_consumed(), 0);
    }
    let mut empty = RecordSet::new(Bytes::new());
    assert!(empty.next().is_none());
    assert!(!empty.is_truncated());
}

#[test]
fn huge_record_count_in_a_small_batch_is_an_error_not_an_allocation() {
    let mut builder = RecordBatchBuilder::new(3);
    builder.append(0, None, Some(b"x"), &[]).unwrap();
    let mut data = builder.build().unwrap().to_vec();
    for count in [i32::MAX, i32::MIN, 2] {
        data[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&data[21..]);
        data[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = RecordBatch::parse(Bytes::from(data.clone())).unwrap();
        let err = batch.decode(&DecodeLimits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("record batch at offset 3: record count {count} is impossible in 8 bytes of records")
        );
    }
}

#[test]
fn record_count_mismatches_are_errors() {
    // Count says 2, one record present: the second record runs past the end.
    let mut builder = RecordBatchBuilder::new(0);
    for i in 0..3 {
        builder.append(i, None, Some(b"0123456789"), &[]).unwrap();
    }
    let good = builder.build().unwrap().to_vec();
    let with_count = |count: i32| {
        let mut data = good.clone();
        data[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&data[21..]);
        data[17..21].copy_from_slice(&crc.to_be_bytes());
        RecordBatch::parse(Bytes::from(data))
            .unwrap()
            .decode(&DecodeLimits::default())
            .unwrap()
    };
    let fewer = with_count(2);
    let results: Vec<_> = fewer.records().collect();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[2].as_ref().unwrap_err().to_string(),
        "record batch at offset 0: 17 bytes remain after the 2 records the header announced"
    );
    let more = with_count(4);
    let results: Vec<_> = more.records().collect();
    assert_eq!(results.len(), 4);
    assert_eq!(
        results[3].as_ref().unwrap_err().to_string(),
        "record batch at offset 0: record 3: varint runs past the end of the record"
    );
}

#[test]
fn decompression_bomb_is_a_typed_error() {
    let mut builder = RecordBatchBuilder::new(500).compression(Compression::Zstd);
    let big = vec![b'a'; 200_000];
    for i in 0..20 {
        builder.append(i, None, Some(&big), &[]).unwrap();
    }
    let batch = RecordBatch::parse(builder.build().unwrap()).unwrap();
    assert!(batch.wire_size() < 100_000);
    let err = batch
        .decode(&DecodeLimits::with_max_decompressed_bytes(1_000_000))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "record batch at offset 500: zstd records decompress to more than the limit of 1000000 bytes"
    );
    assert!(batch.decode(&DecodeLimits::default()).is_ok());
}

#[test]
fn log_append_time_uses_the_max_timestamp() {
    let mut builder = RecordBatchBuilder::new(0).timestamp_type(TimestampType::LogAppendTime);
    builder.append(10, None, Some(b"a"), &[]).unwrap();
    builder.append(20, None, Some(b"b"), &[]).unwrap();
    let batch = RecordBatch::parse(builder.build().unwrap()).unwrap();
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    let decoded = batch.decode(&DecodeLimits::default()).unwrap();
    let ts: Vec<_> = decoded.records().map(|r| r.unwrap().timestamp()).collect();
    assert_eq!(ts, [20, 20]);
}

#[test]
fn header_fields_are_read_in_place() {
    let mut builder = RecordBatchBuilder::new(1 << 40)
        .partition_leader_epoch(17)
        .producer(4242, 3, 99)
        .transactional(true)
        .compression(Compression::Gzip);
    builder.append(5_000, Some(b"k"), None, &[]).unwrap();
    builder
        .append_at((1 << 40) + 10, 4_000, None, Some(b"v"), &[])
        .unwrap();
    let bytes = builder.build().unwrap();
    let batch = RecordBatch::parse(bytes.clone()).unwrap();
    assert_eq!(batch.base_offset(), 1 << 40);
    assert_eq!(batch.batch_length() as usize, bytes.len() - 12);
    assert_eq!(batch.partition_leader_epoch(), 17);
    assert_eq!(batch.magic(), 2);
    assert_eq!(batch.crc(), batch.computed_crc());
    assert_eq!(batch.compression(), Compression::Gzip);
    assert!(batch.is_transactional() && !batch.is_control() && !batch.has_delete_horizon());
    assert_eq!(batch.last_offset_delta(), 10);
    assert_eq!(batch.next_offset(), (1 << 40) + 11);
    assert_eq!(batch.base_timestamp(), 5_000);
    assert_eq!(batch.max_timestamp(), 5_000);
    assert_eq!(
        (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence()
        ),
        (4242, 3, 99)
    );
    assert_eq!(batch.record_count(), 2);
    assert_eq!(batch.control_record().unwrap(), None);
}

fn marker_batch(base_offset: i64, producer_id: i64, kind: ControlRecordType) -> Bytes {
    let mut builder = RecordBatchBuilder::new(base_offset)
        .producer(producer_id, 0, -1)
        .transactional(true);
    builder
        .append_control(
            0,
            ControlRecord {
                version: 0,
                kind,
                coordinator_epoch: Some(5),
            },
        )
        .unwrap();
    builder.build().unwrap()
}

fn txn_batch(base_offset: i64, producer_id: i64, records: i64) -> Bytes {
    let mut builder = RecordBatchBuilder::new(base_offset)
        .producer(producer_id, 0, 0)
        .transactional(producer_id >= 0);
    for i in 0..records {
        builder.append(i, None, Some(b"data"), &[]).unwrap();
    }
    builder.build().unwrap()
}

#[test]
fn control_batches_are_recognised() {
    for kind in [ControlRecordType::Abort, ControlRecordType::Commit] {
        let batch = RecordBatch::parse(marker_batch(10, 7, kind)).unwrap();
        assert!(batch.is_control() && batch.is_transactional());
        let marker = batch.control_record().unwrap().unwrap();
        assert_eq!(
            marker,
            ControlRecord {
                version: 0,
                kind,
                coordinator_epoch: Some(5)
            }
        );
    }
    // A control record with a short key is a typed error naming its offset.
    let mut builder = RecordBatchBuilder::new(30).control(true);
    builder.append(0, Some(b"\0"), None, &[]).unwrap();
    let batch = RecordBatch::parse(builder.build().unwrap()).unwrap();
    assert_eq!(
        batch.control_record().unwrap_err().to_string(),
        "control record at offset 30: control record key is shorter than 4 bytes"
    );
}

fn classify_all(
    filter: &mut AbortedTransactionFilter,
    batches: &[Bytes],
) -> Vec<(i64, BatchAction)> {
    batches
        .iter()
        .map(|b| {
            let batch = RecordBatch::parse(b.clone()).unwrap();
            (batch.base_offset(), filter.classify(&batch).unwrap())
        })
        .collect()
}

#[test]
fn aborted_transactions_are_filtered() {
    use BatchAction::*;
    // Producer 1 aborts offsets 0..=2 (marker at 3); producer 2 commits 4..=5
    // (marker at 6); a non-transactional batch at 7; producer 1 commits 8 (marker 9).
    let batches = [
        txn_batch(0, 1, 3),
        marker_batch(3, 1, ControlRecordType::Abort),
        txn_batch(4, 2, 2),
        marker_batch(6, 2, ControlRecordType::Commit),
        txn_batch(7, -1, 1),
        txn_batch(8, 1, 1),
        marker_batch(9, 1, ControlRecordType::Commit),
    ];
    let mut filter = AbortedTransactionFilter::new([AbortedTransaction {
        producer_id: 1,
        first_offset: 0,
    }]);
    assert_eq!(
        classify_all(&mut filter, &batches),
        [
            (0, SkipAborted),
            (3, SkipControl),
            (4, Deliver),
            (6, SkipControl),
            (7, Deliver),
            (8, Deliver),
            (9, SkipControl)
        ]
    );
    assert_eq!(filter.aborted_producers().count(), 0);
}

#[test]
fn interleaved_aborted_transactions_only_drop_their_producer() {
    use BatchAction::*;
    // Producers 1 and 2 interleave; only 2 aborts, starting at offset 2.
    let batches = [
        txn_batch(0, 1, 2),
        txn_batch(2, 2, 2),
        txn_batch(4, 1, 1),
        txn_batch(5, 2, 1),
        marker_batch(6, 2, ControlRecordType::Abort),
        marker_batch(7, 1, ControlRecordType::Commit),
        // Producer 2 again, in a new, committed transaction.
        txn_batch(8, 2, 1),
    ];
    let mut filter = AbortedTransactionFilter::new([AbortedTransaction {
        producer_id: 2,
        first_offset: 2,
    }]);
    assert_eq!(
        classify_all(&mut filter, &batches),
        [
            (0, Deliver),
            (2, SkipAborted),
            (4, Deliver),
            (5, SkipAborted),
            (6, SkipControl),
            (7, SkipControl),
            (8, Deliver)
        ]
    );
}

#[test]
fn aborted_transaction_first_offset_inside_a_batch_counts() {
    // The aborted transaction starts at offset 5, inside the batch 3..=6 (the
    // batch's last offset reaches it), as after a fetch starting mid-batch.
    let batches = [
        txn_batch(3, 9, 4),
        marker_batch(7, 9, ControlRecordType::Abort),
        txn_batch(8, 9, 1),
    ];
    let mut filter = AbortedTransactionFilter::new([AbortedTransaction {
        producer_id: 9,
        first_offset: 5,
    }]);
    assert_eq!(
        classify_all(&mut filter, &batches),
        [
            (3, BatchAction::SkipAborted),
            (7, BatchAction::SkipControl),
            (8, BatchAction::Deliver)
        ]
    );
    // Without the aborted list (read_uncommitted semantics), nothing is dropped.
    let mut filter = AbortedTransactionFilter::new([]);
    assert!(classify_all(&mut filter, &batches[..1])
        .iter()
        .all(|(_, a)| a.delivers()));
}

#[test]
fn owned_records_share_the_buffer() {
    let bytes = {
        let mut builder = RecordBatchBuilder::new(0);
        builder
            .append(
                1,
                Some(b"key"),
                Some(b"value"),
                &[Header {
                    key: b"h1",
                    value: Some(b"x"),
                }],
            )
            .unwrap();
        builder.build().unwrap()
    };
    let batch = RecordBatch::parse(bytes.clone()).unwrap();
    let decoded = batch.decode(&DecodeLimits::default()).unwrap();
    let owned = decoded.records().next().unwrap().unwrap().to_owned();
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    assert!(range.contains(&(owned.value_bytes().unwrap().as_ptr() as usize)));
    let headers = owned.owned_headers();
    assert!(range.contains(&(headers[0].key.as_ptr() as usize)));
    assert_eq!(headers[0].value.as_deref(), Some(&b"x"[..]));
    assert_eq!(owned.key(), Some(&b"key"[..]));
    // The owned record outlives the batch and its view.
    drop(decoded);
    drop(batch);
    assert_eq!(owned.value(), Some(&b"value"[..]));
}

#[test]
fn empty_batches_and_compaction_gaps_advance_past_last_offset() {
    let builder = RecordBatchBuilder::new(100).last_offset_delta(9);
    let batch = RecordBatch::parse(builder.build().unwrap()).unwrap();
    assert_eq!(batch.record_count(), 0);
    assert_eq!(batch.next_offset(), 110);
    let decoded = batch.decode(&DecodeLimits::default()).unwrap();
    assert_eq!(decoded.records().count(), 0);
}
