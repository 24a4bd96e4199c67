//! Watching a batch consumer: a `tracing` subscriber printing kafee's batch
//! events (target `kafee::batch`, named after Kafee's telemetry events), and a
//! `metrics` recorder printing each batch's metrics as they are recorded and
//! a table of every metric at the end.
//!
//! The metrics need kafee-batching's `metrics` feature (this example's
//! dev-dependency turns it on); in production, install a Prometheus or StatsD
//! exporter as the recorder instead of this printing one.
//!
//! ```text
//! KAFEE_BOOTSTRAP=$(scripts/broker up tansu | tail -1) cargo run --example telemetry
//! RUST_LOG=kafee::batch=trace cargo run --example telemetry   # every event
//! ```
#![forbid(unsafe_code)]

mod common;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::BoxError;
use kafee::batching::{Batch, BatchConfig, BatchResult, Consumer, Handler, Mode};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Records produced.
const RECORDS: u64 = 1_000;

/// What one metric (name + labels) has seen.
#[derive(Debug, Default, Clone)]
struct Aggregate {
    kind: &'static str,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    last: f64,
}

impl Aggregate {
    fn observe(&mut self, value: f64) {
        if self.count == 0 {
            self.min = value;
            self.max = value;
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.last = value;
    }
}

type Table = Arc<Mutex<BTreeMap<String, Aggregate>>>;

/// One registered metric: updates its row of the table, and prints the
/// per-batch ones as they come.
struct Handle {
    name: String,
    row: String,
    table: Table,
}

impl Handle {
    fn update(&self, kind: &'static str, f: impl FnOnce(&mut Aggregate)) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let aggregate = table.entry(self.row.clone()).or_default();
        aggregate.kind = kind;
        f(aggregate);
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.update("counter", |a| {
            a.count += 1;
            a.sum += value as f64;
            a.last = a.sum;
        });
    }

    fn absolute(&self, value: u64) {
        self.update("counter", |a| {
            a.count += 1;
            a.sum = value as f64;
            a.last = a.sum;
        });
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.update("gauge", |a| a.observe(a.last + value));
    }

    fn decrement(&self, value: f64) {
        self.update("gauge", |a| a.observe(a.last - value));
    }

    fn set(&self, value: f64) {
        self.update("gauge", |a| a.observe(value));
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.update("histogram", |a| a.observe(value));
        // The handler's duration is recorded once per batch, last: a good
        // moment for a live line.
        if self.name == "kafee_batch_duration_seconds" {
            println!("  metric {} = {:.3} ms", self.row, value * 1e3);
        }
    }
}

/// A `metrics` recorder keeping a table of every metric.
#[derive(Clone, Default)]
struct PrintingRecorder {
    table: Table,
}

impl PrintingRecorder {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Handle {
            name: key.name().to_owned(),
            row: format!("{}{{{}}}", key.name(), labels.join(",")),
            table: self.table.clone(),
        })
    }

    fn print(&self) {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        println!(
            "{:<58} {:>9} {:>8} {:>12} {:>12} {:>12}",
            "metric", "kind", "count", "sum", "min", "max"
        );
        for (row, a) in table.iter() {
            let (min, max) = if a.kind == "counter" {
                (String::new(), String::new())
            } else {
                (format!("{:.4}", a.min), format!("{:.4}", a.max))
            };
            println!(
                "{row:<58} {:>9} {:>8} {:>12.4} {min:>12} {max:>12}",
                a.kind, a.count, a.sum
            );
        }
    }
}

impl Recorder for PrintingRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

/// A handler that does a little work per record and fails every 97th
/// record once (so the failure and retry metrics have something to show).
#[derive(Default)]
struct Work {
    done: AtomicU64,
    failed_once: Mutex<std::collections::HashSet<(i32, i64)>>,
}

struct WorkHandler(Arc<Work>);

#[async_trait::async_trait]
impl Handler for WorkHandler {
    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        let mut failed = Vec::new();
        for (i, message) in batch.messages().iter().enumerate() {
            if message.offset() % 97 == 0 {
                let mut seen = self.0.failed_once.lock().unwrap_or_else(|e| e.into_inner());
                if seen.insert((message.partition(), message.offset())) {
                    failed.push(i);
                }
            }
        }
        tokio::time::sleep(Duration::from_micros(200 * batch.len() as u64)).await;
        if failed.is_empty() {
            self.0.done.fetch_add(batch.len() as u64, Ordering::Relaxed);
            BatchResult::Ok
        } else {
            BatchResult::Partial(failed)
        }
    }
}

async fn run(recorder: PrintingRecorder) -> Result<(), BoxError> {
    let bootstrap = common::bootstrap()?;
    let cluster = common::connect(&bootstrap).await?;
    let topic = common::unique("telemetry");
    common::create_topic(&cluster, &topic, 2).await?;
    let values: Vec<String> = (0..RECORDS).map(|i| format!("event {i}")).collect();
    common::produce(&cluster, &topic, &values).await?;
    println!("{RECORDS} records in {topic}");

    let work = Arc::new(Work::default());
    let config = BatchConfig::builder()
        .mode(Mode::Batch)
        .size(100)
        .timeout(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()?;
    let consumer = Consumer::builder(&bootstrap, &common::unique("telemetry"))
        .topics([topic])
        .batch(config)
        .session_timeout(Duration::from_secs(10), Duration::from_secs(2))
        .rebalance_timeout(Duration::from_secs(60))
        .build()?;
    let running = consumer.run(WorkHandler(work.clone())).await?;
    // Under all_or_nothing a batch with a failed record is retried whole, so
    // `done` counts each record once when its batch finally succeeds.
    let deadline = Instant::now() + Duration::from_secs(120);
    while work.done.load(Ordering::Relaxed) < RECORDS {
        if Instant::now() > deadline {
            running.shutdown().await?;
            return Err("not every record was handled within 2 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = running.shutdown().await?;
    println!(
        "\nconsumer: {} batches, {} messages handed out, {} failed attempts, {} commits\n",
        stats.batches, stats.messages, stats.failed, stats.commits
    );
    recorder.print();
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kafee::batch=info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let recorder = PrintingRecorder::default();
    if metrics::set_global_recorder(recorder.clone()).is_err() {
        eprintln!("telemetry: a metrics recorder is already installed");
        return ExitCode::FAILURE;
    }
    match run(recorder).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telemetry: {e}");
            ExitCode::FAILURE
        }
    }
}
