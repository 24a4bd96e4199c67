//! Record-batch decoding: kafee's decoder (view and owned mode) against
//! `kafka_protocol::records::RecordBatchDecoder`, on the same `Bytes`, CRC
//! checked by both.
//!
//! Three kafee modes: *view* (borrowed `Record`s), *owned batch*
//! (`DecodedBatch::owned_records`: the batch buffer plus an index, records
//! outlive the fetch response) and *owned records* (`Record::to_owned` per
//! record: one `Bytes` per record, like kafka-protocol's `Record`).
//!
//! `cargo bench --bench decode` runs the full matrix (value size x batch size
//! x key x headers x codec); `cargo bench --bench decode -- --quick` (or
//! `KAFEE_BENCH_QUICK=1`) only the headline rows; `KAFEE_BENCH_ROWS=10000/1000/lz4`
//! keeps the rows whose `value/batch/codec` label contains the text. Prints records/s, the ratio
//! to kafka-protocol and allocations per record, counted by `stats_alloc`'s
//! instrumented global allocator (no unsafe code here: the workspace forbids it).
//!
//! The input is built once per row with kafee's `RecordBatchBuilder` (multi-record
//! batches, optional compression) and fed to all three decoders.
//! kafka-protocol is built without its compression features (pure-Rust build),
//! so compressed rows give it a decompressor made of the same crates kafee uses
//! (`lz4_flex`, `ruzstd`), with the same one-buffer-per-batch shape (its callback
//! type is `anyhow::Result`, hence the dev-dependency).

use std::alloc::System;
use std::hint::black_box;
use std::io::Read;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafee_protocol::records::{Compression, DecodeLimits, Header, RecordBatchBuilder, RecordSet};
use kafka_protocol::records::{Compression as KpCompression, RecordBatchDecoder};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Clone, Copy)]
struct Row {
    value_size: usize,
    batch_records: usize,
    key: bool,
    headers: bool,
    codec: Compression,
}

/// Builds the record set for a row: enough batches for about 4 MB of values
/// (at least one batch, at most 100 000 records).
fn input(row: Row) -> (Bytes, usize) {
    let per_record = row.value_size + 20;
    let total = (4_000_000 / per_record).clamp(row.batch_records, 100_000);
    let batches = total.div_ceil(row.batch_records);
    let value: Vec<u8> = (0..row.value_size).map(|i| (i * 31 % 251) as u8).collect();
    let key = [7u8; 16];
    let headers = [
        Header {
            key: b"trace-id",
            value: Some(b"0af7651916cd43dd8448eb211c80319c"),
        },
        Header {
            key: b"content-type",
            value: Some(b"application/json"),
        },
        Header {
            key: b"retry",
            value: None,
        },
    ];
    let mut out = BytesMut::new();
    let mut offset = 0i64;
    for _ in 0..batches {
        let mut builder = RecordBatchBuilder::new(offset)
            .compression(row.codec)
            .producer(1, 0, offset as i32);
        for i in 0..row.batch_records {
            builder
                .append(
                    1_700_000_000_000 + i as i64,
                    row.key.then_some(&key[..]),
                    Some(&value),
                    if row.headers { &headers } else { &[] },
                )
                .expect("build");
        }
        offset += row.batch_records as i64;
        out.extend_from_slice(&builder.build().expect("build"));
    }
    (out.freeze(), batches * row.batch_records)
}

fn ours_view(input: &Bytes, limits: &DecodeLimits) -> usize {
    let mut n = 0;
    for batch in RecordSet::new(input.clone()) {
        let decoded = batch.expect("batch").decode(limits).expect("decode");
        for record in decoded.records() {
            let r = record.expect("record");
            black_box((
                r.offset(),
                r.timestamp(),
                r.key().map(<[u8]>::len),
                r.value(),
                r.header_count(),
            ));
            n += 1;
        }
    }
    n
}

fn ours_owned_batch(input: &Bytes, limits: &DecodeLimits) -> usize {
    let mut n = 0;
    for batch in RecordSet::new(input.clone()) {
        let decoded = batch.expect("batch").decode(limits).expect("decode");
        let records = decoded.owned_records().expect("records");
        n += records.len();
        black_box(&records);
    }
    n
}

fn ours_owned(input: &Bytes, limits: &DecodeLimits) -> usize {
    let mut n = 0;
    for batch in RecordSet::new(input.clone()) {
        let decoded = batch.expect("batch").decode(limits).expect("decode");
        let records = decoded.to_owned_records().expect("records");
        n += records.len();
        black_box(&records);
    }
    n
}

/// Decompressor handed to kafka-protocol (its own codecs are feature-gated off).
fn kp_decompress(buf: &mut Bytes, codec: KpCompression) -> anyhow::Result<Bytes> {
    let input = std::mem::take(buf);
    let mut out = Vec::with_capacity(input.len() * 4);
    match codec {
        KpCompression::None => return Ok(input),
        KpCompression::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(&input[..]).read_to_end(&mut out)?;
        }
        KpCompression::Zstd => {
            let mut src = &input[..];
            ruzstd::decoding::StreamingDecoder::new(&mut src)?.read_to_end(&mut out)?;
        }
        other => anyhow::bail!("{other:?} is not benchmarked"),
    }
    Ok(Bytes::from(out))
}

fn kafka_protocol(input: &Bytes) -> usize {
    let mut n = 0;
    let mut buf = input.clone();
    while buf.has_remaining() {
        let set = RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(kp_decompress))
            .expect("kafka-protocol decode");
        for r in &set.records {
            black_box((
                r.offset,
                r.timestamp,
                r.key.as_ref().map(Bytes::len),
                &r.value,
                r.headers.len(),
            ));
        }
        n += set.records.len();
    }
    n
}

/// Best records/s over `rounds` timed rounds of at least `round` each.
fn measure(records: usize, rounds: usize, round: Duration, mut f: impl FnMut() -> usize) -> f64 {
    assert_eq!(f(), records, "decoder lost records");
    let mut best = 0f64;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut done = 0usize;
        while start.elapsed() < round {
            done += f();
        }
        best = best.max(done as f64 / start.elapsed().as_secs_f64());
    }
    best
}

fn allocations_per_record(records: usize, f: impl FnOnce() -> usize) -> f64 {
    let region = Region::new(GLOBAL);
    black_box(f());
    region.change().allocations as f64 / records as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("KAFEE_BENCH_QUICK").is_ok_and(|v| v != "0");
    let codecs = [Compression::None, Compression::Lz4, Compression::Zstd];
    let mut rows = Vec::new();
    if quick {
        for codec in codecs {
            rows.push(Row {
                value_size: 100,
                batch_records: 1000,
                key: false,
                headers: false,
                codec,
            });
        }
        rows.push(Row {
            value_size: 100,
            batch_records: 1000,
            key: true,
            headers: true,
            codec: Compression::None,
        });
        rows.push(Row {
            value_size: 100,
            batch_records: 10,
            key: false,
            headers: false,
            codec: Compression::None,
        });
    } else {
        for codec in codecs {
            for value_size in [10, 100, 1000, 10_000] {
                for batch_records in [1, 10, 1000] {
                    for key in [false, true] {
                        for headers in [false, true] {
                            rows.push(Row {
                                value_size,
                                batch_records,
                                key,
                                headers,
                                codec,
                            });
                        }
                    }
                }
            }
        }
    }
    // KAFEE_BENCH_ROWS=TEXT keeps the rows whose label contains TEXT
    // (e.g. "10000/1000/lz4"), for profiling one row.
    if let Ok(filter) = std::env::var("KAFEE_BENCH_ROWS") {
        rows.retain(|r| {
            format!("{}/{}/{}", r.value_size, r.batch_records, r.codec).contains(&filter)
        });
    }
    let (rounds, round) = if quick {
        (7, Duration::from_millis(150))
    } else {
        (3, Duration::from_millis(40))
    };
    let limits = DecodeLimits::default();

    println!(
        "kafee record decoding vs kafka-protocol 0.18 (records/s, best of {rounds} rounds of {round:?}; CRC on for both)"
    );
    println!();
    println!(
        "| value | batch | key | hdrs | codec | view | owned batch | owned records | kafka-protocol \
         | view x | owned batch x | owned records x | allocs/rec view / batch / records / kp |"
    );
    println!("|---:|---:|:-:|:-:|:-:|---:|---:|---:|---:|---:|---:|---:|:-:|");
    for row in rows {
        let (data, records) = input(row);
        let view = measure(records, rounds, round, || ours_view(&data, &limits));
        let batch = measure(records, rounds, round, || ours_owned_batch(&data, &limits));
        let owned = measure(records, rounds, round, || ours_owned(&data, &limits));
        let kp = measure(records, rounds, round, || kafka_protocol(&data));
        let a_view = allocations_per_record(records, || ours_view(&data, &limits));
        let a_batch = allocations_per_record(records, || ours_owned_batch(&data, &limits));
        let a_owned = allocations_per_record(records, || ours_owned(&data, &limits));
        let a_kp = allocations_per_record(records, || kafka_protocol(&data));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} \
             | {:.3} / {:.3} / {:.3} / {:.3} |",
            size(row.value_size),
            row.batch_records,
            if row.key { "16 B" } else { "-" },
            if row.headers { 3 } else { 0 },
            row.codec,
            rate(view),
            rate(batch),
            rate(owned),
            rate(kp),
            view / kp,
            batch / kp,
            owned / kp,
            a_view,
            a_batch,
            a_owned,
            a_kp,
        );
    }
}

fn size(n: usize) -> String {
    if n >= 1000 {
        format!("{} KB", n / 1000)
    } else {
        format!("{n} B")
    }
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.1} M", r / 1e6)
    } else {
        format!("{:.0} k", r / 1e3)
    }
}
