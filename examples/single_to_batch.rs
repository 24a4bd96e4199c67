//! Migrating a handler from single-message mode to batch mode, side by side.
//!
//! The same `Totals` handler runs in two consumer groups on one topic: group
//! `...-single` in [`Mode::SingleMessage`] (Kafee's default: one
//! `handle_message` call per record) and group `...-batch` in [`Mode::Batch`]
//! (one `handle_batch` call per batch). Both must arrive at the same totals;
//! the batch group needs far fewer handler calls. The handler keeps its
//! `handle_message` (what single-message mode calls) and gains a
//! `handle_batch` that does the work once per batch; without that override,
//! batch mode would call `handle_message` for each record.
//!
//! ```text
//! KAFEE_BOOTSTRAP=$(scripts/broker up tansu | tail -1) cargo run --example single_to_batch
//! ```
#![forbid(unsafe_code)]

mod common;

use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::BoxError;
use kafee::batching::{
    Batch, BatchConfig, BatchResult, Consumer, Handler, HandlerError, Message, Mode,
};

/// Records produced.
const RECORDS: u64 = 2_000;

/// Sums the amounts (the record values) it is given.
#[derive(Default)]
struct Totals {
    amount: AtomicI64,
    records: AtomicU64,
    calls: AtomicU64,
}

fn amount(message: &Message) -> Result<i64, HandlerError> {
    let value = message.value().ok_or("null value")?;
    Ok(std::str::from_utf8(value)?.trim().parse::<i64>()?)
}

/// The handler: a handle on shared totals (the example reads them while the
/// consumer runs).
struct TotalsHandler(Arc<Totals>);

impl std::ops::Deref for TotalsHandler {
    type Target = Totals;

    fn deref(&self) -> &Totals {
        &self.0
    }
}

#[async_trait::async_trait]
impl Handler for TotalsHandler {
    /// Single-message mode: one record per call.
    async fn handle_message(&self, message: &Message) -> Result<(), HandlerError> {
        let amount = amount(message)?;
        self.amount.fetch_add(amount, Ordering::Relaxed);
        self.records.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Batch mode: one call per batch; a record that does not parse fails
    /// alone (its index), the others count.
    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        let mut sum = 0;
        let mut failed = Vec::new();
        for (i, message) in batch.messages().iter().enumerate() {
            match amount(message) {
                Ok(a) => sum += a,
                Err(_) => failed.push(i),
            }
        }
        self.amount.fetch_add(sum, Ordering::Relaxed);
        self.records
            .fetch_add((batch.len() - failed.len()) as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed.is_empty() {
            BatchResult::Ok
        } else {
            BatchResult::Partial(failed)
        }
    }
}

/// Runs one group until it has seen every record; returns the time taken.
async fn run_group(
    bootstrap: &str,
    topic: &str,
    group: &str,
    config: BatchConfig,
    totals: Arc<Totals>,
) -> Result<Duration, BoxError> {
    let consumer = Consumer::builder(bootstrap, group)
        .topics([topic])
        .batch(config)
        .session_timeout(Duration::from_secs(10), Duration::from_secs(2))
        .rebalance_timeout(Duration::from_secs(60))
        .build()?;
    let running = consumer.run(TotalsHandler(totals.clone())).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    while totals.records.load(Ordering::Relaxed) < RECORDS {
        if Instant::now() > deadline {
            running.shutdown().await?;
            return Err(format!("group {group}: not every record arrived within 2 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    running.shutdown().await?;
    Ok(elapsed)
}

async fn run() -> Result<(), BoxError> {
    let bootstrap = common::bootstrap()?;
    let cluster = common::connect(&bootstrap).await?;
    let topic = common::unique("single-to-batch");
    common::create_topic(&cluster, &topic, 4).await?;
    let values: Vec<String> = (1..=RECORDS).map(|i| (i % 100).to_string()).collect();
    let expected: i64 = values.iter().map(|v| v.parse::<i64>().unwrap_or(0)).sum();
    common::produce(&cluster, &topic, &values).await?;
    println!("{RECORDS} records in {topic}; expected total {expected}");

    let single = Arc::new(Totals::default());
    let batch = Arc::new(Totals::default());
    let single_config = BatchConfig::builder().mode(Mode::SingleMessage).build()?;
    let batch_config = BatchConfig::builder()
        .mode(Mode::Batch)
        .size(250)
        .timeout(Duration::from_millis(200))
        .build()?;
    let group = common::unique("single-to-batch");
    let (single_group, batch_group) = (format!("{group}-single"), format!("{group}-batch"));
    let (single_time, batch_time) = tokio::try_join!(
        run_group(
            &bootstrap,
            &topic,
            &single_group,
            single_config,
            single.clone()
        ),
        run_group(
            &bootstrap,
            &topic,
            &batch_group,
            batch_config,
            batch.clone()
        ),
    )?;

    println!("{:<24}{:>16}{:>16}", "", "single-message", "batch");
    let row = |name: &str, a: String, b: String| println!("{name:<24}{a:>16}{b:>16}");
    let load = |t: &Totals| {
        (
            t.records.load(Ordering::Relaxed),
            t.calls.load(Ordering::Relaxed),
            t.amount.load(Ordering::Relaxed),
        )
    };
    let (s_records, s_calls, s_amount) = load(&single);
    let (b_records, b_calls, b_amount) = load(&batch);
    row("records", s_records.to_string(), b_records.to_string());
    row("handler calls", s_calls.to_string(), b_calls.to_string());
    row("total amount", s_amount.to_string(), b_amount.to_string());
    row(
        "time (incl. join)",
        format!("{:.2}s", single_time.as_secs_f64()),
        format!("{:.2}s", batch_time.as_secs_f64()),
    );
    if s_amount != expected || b_amount != expected {
        return Err(format!("totals differ from the expected {expected}").into());
    }
    println!(
        "same totals with {:.0}x fewer handler calls in batch mode",
        s_calls as f64 / b_calls.max(1) as f64
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("single_to_batch: {e}");
            ExitCode::FAILURE
        }
    }
}
