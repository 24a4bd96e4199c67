//! Overhead of the sans-IO batching core: records pushed through the
//! accumulator, batches scheduled by the in-flight limiter, registered in the
//! watermark, handled by a no-op handler, decided by the acknowledgment
//! strategy (`Ok` path), completed, and fed to the commit tracker, which sends
//! (and "acknowledges") a commit whenever one is due.
//!
//! Run: `cargo bench -p kafee --bench batching_overhead` (release profile).
//! Goal (issue 5): under 50 ns per record at batch size 100.
//!
//! Allocations are counted with `stats_alloc`'s instrumented global
//! allocator (this file needs no `forbid` exception).
use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant as StdInstant};

use kafee_batching::accumulator::{Accumulator, AccumulatorSettings, Entry, TimeoutFrom};
use kafee_batching::config::AckStrategy;
use kafee_batching::strategy::{self, AckPolicy, Backoff, BatchResult, Decision};
use kafee_batching::watermark::CommitResult;
use kafee_batching::{
    CommitTracker, InFlight, Instant, Outcome, Partition, TopicPartition, Watermark,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const RECORDS: u64 = 10_000_000;
/// Records per simulated fetch response (the driver reads the clock once per
/// response, not per record).
const FETCH_CHUNK: u64 = 1_000;
/// Records per producer wire batch.
const WIRE_BATCH: u64 = 10;
const RECORD_WIRE_SIZE: usize = 150;

struct Row {
    name: String,
    ns_per_record: f64,
    batches: u64,
    allocs_per_batch: f64,
    bytes_per_batch: f64,
    commits: u64,
}

fn run(name: &str, size: usize, respect_wire_batches: bool) -> Row {
    let start = Instant::now();
    let settings = AccumulatorSettings {
        size,
        max_bytes: 1_048_576,
        timeout: Duration::from_secs(1),
        timeout_from: TimeoutFrom::FirstMessage,
        respect_wire_batches,
    };
    let tp = TopicPartition::new("bench", 0);
    let mut acc: Accumulator<u64> = Accumulator::new(settings, start);
    let mut watermark = Watermark::new(0);
    let mut inflight: InFlight<TopicPartition> = InFlight::new(3);
    let mut tracker: CommitTracker<TopicPartition> =
        CommitTracker::new(Duration::from_millis(1), start);
    tracker.assign(tp.clone(), 0, String::new());
    let policy = AckPolicy {
        strategy: AckStrategy::AllOrNothing,
        max_attempts: 3,
        dead_letter: false,
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
    };

    let mut batches = 0u64;
    let mut commits = 0u64;
    let mut handled = 0u64;
    let region = Region::new(GLOBAL);
    let t = StdInstant::now();
    let mut offset = 0u64;
    while offset < RECORDS {
        let now = Instant::now();
        let end = (offset + FETCH_CHUNK).min(RECORDS);
        while offset < end {
            let wire_last = (offset / WIRE_BATCH + 1) * WIRE_BATCH - 1;
            let entry = Entry {
                offset: offset as i64,
                wire_size: RECORD_WIRE_SIZE,
                wire_batch_last_offset: wire_last as i64,
                last_in_wire_batch: offset == wire_last,
                payload: offset,
            };
            if acc.push(entry, now).is_err() {
                panic!("offsets increase by construction");
            }
            offset += 1;
        }
        while let Some(batch) = acc.poll(now) {
            inflight.ready(tp.clone());
            let Some(started) = inflight.next_start() else {
                panic!("one partition, limit 3: always a slot");
            };
            let Ok(id) = watermark.register(batch.first_offset(), batch.next_offset) else {
                panic!("batches come in offset order");
            };
            // The no-op handler.
            for e in &batch.entries {
                handled += black_box(e.payload) & 1;
            }
            let decision = strategy::decide(&policy, &batch, &BatchResult::Ok, 1);
            let Ok(Decision::Commit { through, .. }) = decision else {
                panic!("the Ok path commits");
            };
            let Ok(committable) = watermark.complete(id) else {
                panic!("the range is registered");
            };
            debug_assert_eq!(committable, through);
            tracker.update(&tp, committable, "");
            let _ = inflight.finish(&started, acc.should_pause());
            if let Some(entries) = tracker.take_pending(now) {
                black_box(&entries);
                commits += 1;
                tracker.on_commit_result(CommitResult::Ok);
            }
            batches += 1;
        }
    }
    acc.flush(Instant::now());
    while let Some(batch) = acc.poll(Instant::now()) {
        batches += 1;
        black_box(batch);
    }
    let elapsed = t.elapsed();
    let stats = region.change();
    black_box(handled);
    Row {
        name: name.to_owned(),
        ns_per_record: elapsed.as_nanos() as f64 / RECORDS as f64,
        batches,
        allocs_per_batch: stats.allocations as f64 / batches as f64,
        bytes_per_batch: stats.bytes_allocated as f64 / batches as f64,
        commits,
    }
}

/// The same pipeline through [`Partition`], the per-partition glue the driver
/// runs (accumulator + watermark + retry state + strategy).
fn run_partition(name: &str, size: usize) -> Row {
    let start = Instant::now();
    let settings = AccumulatorSettings {
        size,
        max_bytes: 1_048_576,
        timeout: Duration::from_secs(1),
        timeout_from: TimeoutFrom::FirstMessage,
        respect_wire_batches: false,
    };
    let policy = AckPolicy {
        strategy: AckStrategy::AllOrNothing,
        max_attempts: 3,
        dead_letter: false,
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
    };
    let tp = TopicPartition::new("bench", 0);
    let (mut partition, _) = Partition::<u64>::new(tp.clone(), settings, policy, 0, "", start);
    let mut inflight: InFlight<TopicPartition> = InFlight::new(3);
    let mut tracker: CommitTracker<TopicPartition> =
        CommitTracker::new(Duration::from_millis(1), start);
    tracker.assign(tp.clone(), 0, String::new());

    let mut batches = 0u64;
    let mut commits = 0u64;
    let mut handled = 0u64;
    let region = Region::new(GLOBAL);
    let t = StdInstant::now();
    let mut offset = 0u64;
    while offset < RECORDS {
        let now = Instant::now();
        let end = (offset + FETCH_CHUNK).min(RECORDS);
        while offset < end {
            let wire_last = (offset / WIRE_BATCH + 1) * WIRE_BATCH - 1;
            let entry = Entry {
                offset: offset as i64,
                wire_size: RECORD_WIRE_SIZE,
                wire_batch_last_offset: wire_last as i64,
                last_in_wire_batch: offset == wire_last,
                payload: offset,
            };
            if partition.push(entry, now).is_err() {
                panic!("offsets increase by construction");
            }
            offset += 1;
        }
        while partition.is_ready(now) {
            inflight.ready(tp.clone());
            let Some(key) = inflight.next_start() else {
                panic!("one partition, limit 3: always a slot");
            };
            let Ok(Some(started)) = partition.take_batch(now) else {
                panic!("ready means a batch");
            };
            for e in &started.batch.entries {
                handled += black_box(e.payload) & 1;
            }
            let outcome = partition.on_result(started.ticket, started.batch, &BatchResult::Ok, now);
            let Ok(Outcome::Done { .. }) = outcome else {
                panic!("the Ok path is done");
            };
            let (committable, metadata) = partition.commit_state();
            tracker.update(&key, committable, &metadata);
            let _ = inflight.finish(&key, partition.is_ready(now));
            if let Some(entries) = tracker.take_pending(now) {
                black_box(&entries);
                commits += 1;
                tracker.on_commit_result(CommitResult::Ok);
            }
            batches += 1;
        }
    }
    let elapsed = t.elapsed();
    let stats = region.change();
    black_box(handled);
    Row {
        name: name.to_owned(),
        ns_per_record: elapsed.as_nanos() as f64 / RECORDS as f64,
        batches,
        allocs_per_batch: stats.allocations as f64 / batches as f64,
        bytes_per_batch: stats.bytes_allocated as f64 / batches as f64,
        commits,
    }
}

fn main() {
    println!(
        "batching overhead: {RECORDS} in-memory records, {RECORD_WIRE_SIZE} B each, \
         wire batches of {WIRE_BATCH}, fetch chunks of {FETCH_CHUNK}, no-op handler"
    );
    // Warm up once.
    let _ = run("warm-up", 100, false);
    let rows = [
        run("batch size 100", 100, false),
        run("batch size 100, respect_wire_batches", 100, true),
        run("batch size 10", 10, false),
        run("batch size 1000", 1000, false),
        run("single message (size 1)", 1, false),
        run_partition("via Partition, batch size 100", 100),
    ];
    println!("| scenario | ns/record | batches | allocs/batch | bytes/batch | commits |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {:.1} | {} | {:.2} | {:.0} | {} |",
            r.name, r.ns_per_record, r.batches, r.allocs_per_batch, r.bytes_per_batch, r.commits
        );
    }
    let goal = rows[0].ns_per_record;
    println!(
        "goal: < 50 ns/record at batch size 100: {:.1} ns/record -> {}",
        goal,
        if goal < 50.0 { "met" } else { "NOT met" }
    );
}
