//! A handler with `handle_dead_letter`: records that keep failing go to a
//! dead-letter topic after their retries, the handler hears about each one,
//! and the dead letters are read back with the headers kafee puts on them
//! (source topic, partition, offset, group, attempts, error).
//!
//! Payments whose value starts with `poison` always fail. With
//! `all_or_nothing` their batch is retried (with backoff) up to
//! `max_retries` attempts; then the failing records are dead-lettered and the
//! rest of the batch is acknowledged.
//!
//! ```text
//! KAFEE_BOOTSTRAP=$(scripts/broker up tansu | tail -1) cargo run --example dead_letters
//! ```
#![forbid(unsafe_code)]

mod common;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::BoxError;
use kafee::batching::{
    AckStrategy, Batch, BatchConfig, BatchResult, Consumer, DeadLetterConfig, DeadLetterInfo,
    Handler, Message, Mode,
};

/// Payments produced, and how many of them are poison.
const RECORDS: usize = 300;
const POISON_EVERY: usize = 100;

/// Fails poison payments; records what it was told about dead letters.
#[derive(Default)]
struct Payments {
    handled: AtomicU64,
    attempts_seen: Mutex<Vec<(i32, i64, u32)>>,
    dead_letters: Mutex<Vec<(String, DeadLetterInfo)>>,
}

struct PaymentsHandler(Arc<Payments>);

#[async_trait::async_trait]
impl Handler for PaymentsHandler {
    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        let mut failed = Vec::new();
        for (i, message) in batch.messages().iter().enumerate() {
            if message.value().is_some_and(|v| v.starts_with(b"poison")) {
                failed.push(i);
                self.0
                    .attempts_seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((batch.partition(), message.offset(), batch.attempt()));
                println!(
                    "  attempt {} of {}/{}@{} failed",
                    batch.attempt(),
                    batch.topic(),
                    batch.partition(),
                    message.offset()
                );
            }
        }
        if failed.is_empty() {
            self.0
                .handled
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            BatchResult::Ok
        } else {
            BatchResult::Partial(failed)
        }
    }

    /// Called once the dead letter is safely in the dead-letter topic: the
    /// place to alert, count, or record where it went.
    async fn handle_dead_letter(&self, message: &Message, info: &DeadLetterInfo) {
        println!(
            "  dead-lettered {}/{}@{} -> {}/{}@{} after {} attempts ({}), group {}",
            message.topic(),
            message.partition(),
            message.offset(),
            info.topic,
            info.partition,
            info.offset,
            info.attempts,
            info.error,
            info.group_id
        );
        let value = String::from_utf8_lossy(message.value().unwrap_or_default()).into_owned();
        self.0
            .dead_letters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((value, info.clone()));
    }
}

/// Reads the dead-letter topic back and prints each record with its headers.
struct DlqReader {
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl Handler for DlqReader {
    async fn handle_message(&self, message: &Message) -> Result<(), kafee::batching::HandlerError> {
        let value = String::from_utf8_lossy(message.value().unwrap_or_default()).into_owned();
        println!("  {}@{}: {value:?}", message.topic(), message.offset());
        for header in message.headers() {
            println!(
                "      {} = {}",
                String::from_utf8_lossy(header.key),
                header
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_else(|| "null".into())
            );
        }
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(value);
        Ok(())
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not done within 2 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn run() -> Result<(), BoxError> {
    let bootstrap = common::bootstrap()?;
    let cluster = common::connect(&bootstrap).await?;
    let topic = common::unique("payments");
    let dlq = format!("{topic}-dlq");
    common::create_topic(&cluster, &topic, 2).await?;
    common::create_topic(&cluster, &dlq, 1).await?;
    let values: Vec<String> = (0..RECORDS)
        .map(|i| {
            if i % POISON_EVERY == POISON_EVERY / 2 {
                format!("poison payment {i}")
            } else {
                format!("payment {i}: {} cents", 100 + i)
            }
        })
        .collect();
    let poison = values.iter().filter(|v| v.starts_with("poison")).count();
    common::produce(&cluster, &topic, &values).await?;
    println!("{RECORDS} payments in {topic}, {poison} of them poison");

    let payments = Arc::new(Payments::default());
    let config = BatchConfig::builder()
        .mode(Mode::Batch)
        .size(50)
        .timeout(Duration::from_millis(200))
        .ack_strategy(AckStrategy::AllOrNothing)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .dead_letter(DeadLetterConfig::new(dlq.clone()).max_retries(3))
        .build()?;
    let consumer = Consumer::builder(&bootstrap, &common::unique("payments"))
        .topics([topic.clone()])
        .batch(config)
        .session_timeout(Duration::from_secs(10), Duration::from_secs(2))
        .rebalance_timeout(Duration::from_secs(60))
        .build()?;
    let running = consumer.run(PaymentsHandler(payments.clone())).await?;
    let dead = || {
        payments
            .dead_letters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    };
    let outcome = wait_until("dead letters", || dead() >= poison).await;
    let stats = running.shutdown().await?;
    outcome?;
    println!(
        "consumer: {} batches handed out, {} failed attempts, {} dead-lettered",
        stats.batches, stats.failed, stats.dead_lettered
    );

    println!("reading {dlq} back:");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = Consumer::builder(&bootstrap, &common::unique("payments-dlq-reader"))
        .topics([dlq.clone()])
        .session_timeout(Duration::from_secs(10), Duration::from_secs(2))
        .rebalance_timeout(Duration::from_secs(60))
        .build()?
        .run(DlqReader { seen: seen.clone() })
        .await?;
    let outcome = wait_until("reading the dead-letter topic", || {
        seen.lock().unwrap_or_else(|e| e.into_inner()).len() >= poison
    })
    .await;
    reader.shutdown().await?;
    outcome?;

    let mut expected: Vec<String> = values
        .into_iter()
        .filter(|v| v.starts_with("poison"))
        .collect();
    let mut got = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    expected.sort();
    got.sort();
    if got != expected {
        return Err(format!("the dead-letter topic holds {got:?}, expected {expected:?}").into());
    }
    println!("every poison payment is in {dlq}, and only those");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dead_letters: {e}");
            ExitCode::FAILURE
        }
    }
}
