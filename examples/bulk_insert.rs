//! Batch consumption into SQLite: each batch of orders is inserted in one
//! transaction, malformed orders go to a dead-letter topic (`best_effort`),
//! and the same load is then done one message per transaction to compare.
//!
//! `scripts/demo` runs it after filling the `orders` topic; by hand:
//!
//! ```text
//! cargo run --release --example bulk_insert -- --bootstrap 127.0.0.1:9092 \
//!     --topic orders --dlq-topic orders-dlq --expected 3000 --malformed 6
//! ```
//!
//! Flags (all optional): `--bootstrap HOST:PORT` (default `$KAFEE_BOOTSTRAP`),
//! `--topic` (default `orders`), `--dlq-topic` (default `orders-dlq`),
//! `--expected N` (records in the topic; without it the run stops after 5 s
//! without a new record), `--malformed N` (how many of them are malformed),
//! `--batch-size N` (default 200), `--db PATH` (default a file in the temp
//! folder), `--skip-single` (only the batch pass).
//!
//! Exits non-zero when the summary does not add up: rows inserted plus dead
//! letters must equal `--expected` in both passes (and dead letters must equal
//! `--malformed` when given), and the tables must hold the rows counted.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafee::batching::{
    AckStrategy, Batch, BatchConfig, BatchResult, Consumer, DeadLetterConfig, DeadLetterInfo,
    Handler, HandlerError, Message, Mode,
};
use kafee::client::cluster::Cluster;
use kafee::client::config::ClientConfig;
use kafee::client::produce::{Producer, ProducerConfig};
use rusqlite::{params, Connection};
use tokio::sync::Notify;

/// How long a pass may take before the run is declared failed.
const PASS_DEADLINE: Duration = Duration::from_secs(300);
/// Without `--expected`: stop a pass after this long without a new record.
const IDLE_STOP: Duration = Duration::from_secs(5);

/// One valid order, as parsed from a record's JSON value.
#[derive(Debug, Clone, PartialEq)]
struct Order {
    order_id: i64,
    customer: String,
    sku: String,
    quantity: i64,
    price_cents: i64,
}

/// Why an order was refused.
#[derive(Debug)]
struct Malformed(String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed order: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

/// Parses `{"order_id":1,"customer":"c-17","sku":"SKU-3","quantity":2,"price_cents":1250}`.
fn parse_order(value: Option<&[u8]>) -> Result<Order, Malformed> {
    let value = value.ok_or_else(|| Malformed("null value".into()))?;
    let json: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| Malformed(format!("not JSON: {e}")))?;
    let int = |name: &str| {
        json.get(name)
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| Malformed(format!("{name} is missing or not an integer")))
    };
    let text = |name: &str| {
        json.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Malformed(format!("{name} is missing or not a string")))
    };
    let order = Order {
        order_id: int("order_id")?,
        customer: text("customer")?,
        sku: text("sku")?,
        quantity: int("quantity")?,
        price_cents: int("price_cents")?,
    };
    if order.quantity <= 0 {
        return Err(Malformed(format!(
            "quantity {} is not positive",
            order.quantity
        )));
    }
    Ok(order)
}

/// Where a row came from: the idempotency key (a batch handed out again
/// after a failure or a rebalance inserts nothing twice).
#[derive(Debug, Clone)]
struct Source {
    topic: String,
    partition: i32,
    offset: i64,
}

/// Inserts `rows` into `table` in one transaction; returns how many were new
/// and how long the transaction took (begin to commit, without the wait for
/// the connection).
fn insert_rows(
    db: &Mutex<Connection>,
    table: &str,
    rows: &[(Source, Order)],
) -> rusqlite::Result<(u64, Duration)> {
    let mut db = db.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let tx = db.transaction()?;
    let mut inserted = 0u64;
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {table} \
             (topic, partition, kafka_offset, order_id, customer, sku, quantity, price_cents) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))?;
        for (source, order) in rows {
            inserted += insert.execute(params![
                source.topic,
                source.partition,
                source.offset,
                order.order_id,
                order.customer,
                order.sku,
                order.quantity,
                order.price_cents,
            ])? as u64;
        }
    }
    tx.commit()?;
    Ok((inserted, started.elapsed()))
}

fn open_db(path: &PathBuf) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    // Durable commits: every transaction is fsynced, which is what makes one
    // transaction per message expensive.
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    for table in ["orders_batch", "orders_single"] {
        db.execute_batch(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (
                 topic TEXT NOT NULL, partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL,
                 order_id INTEGER NOT NULL, customer TEXT NOT NULL, sku TEXT NOT NULL,
                 quantity INTEGER NOT NULL, price_cents INTEGER NOT NULL,
                 PRIMARY KEY (topic, partition, kafka_offset));"
        ))?;
    }
    Ok(db)
}

/// Counters of one pass, shared by the handler and `main`.
#[derive(Debug, Default)]
struct Progress {
    rows: AtomicU64,
    batches: AtomicU64,
    dead_lettered: AtomicU64,
    /// Time spent inside SQLite transactions (begin to commit), in ns.
    db_nanos: AtomicU64,
    first_record: OnceLock<Instant>,
    last_record: Mutex<Option<Instant>>,
}

/// The sink: SQLite inserts in batch mode (`handle_batch`) or one message
/// per transaction (`handle_message`).
struct OrdersSink {
    db: Arc<Mutex<Connection>>,
    table: &'static str,
    progress: Arc<Progress>,
    expected: Option<u64>,
    done: Arc<Notify>,
}

impl OrdersSink {
    fn touch(&self) {
        let now = Instant::now();
        let _ = self.progress.first_record.set(now);
        *self
            .progress
            .last_record
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(now);
    }

    fn check_done(&self) {
        let accounted = self.progress.rows.load(Ordering::Acquire)
            + self.progress.dead_lettered.load(Ordering::Acquire);
        if self.expected.is_some_and(|n| accounted >= n) {
            self.done.notify_one();
        }
    }

    async fn insert(&self, rows: Vec<(Source, Order)>) -> Result<u64, String> {
        let db = self.db.clone();
        let table = self.table;
        // SQLite blocks: keep it off the runtime's worker threads.
        let (inserted, took) = tokio::task::spawn_blocking(move || insert_rows(&db, table, &rows))
            .await
            .map_err(|e| format!("insert task failed: {e}"))?
            .map_err(|e| format!("SQLite: {e}"))?;
        self.progress
            .db_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        Ok(inserted)
    }
}

fn source(message: &Message) -> Source {
    Source {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
    }
}

#[async_trait::async_trait]
impl Handler for OrdersSink {
    /// One message, one transaction (the comparison pass).
    async fn handle_message(&self, message: &Message) -> Result<(), HandlerError> {
        self.touch();
        let order = parse_order(message.value())?;
        let inserted = self.insert(vec![(source(message), order)]).await?;
        let rows = self.progress.rows.fetch_add(inserted, Ordering::AcqRel) + inserted;
        self.progress.batches.fetch_add(1, Ordering::Relaxed);
        if inserted > 0 && rows.is_multiple_of(500) {
            println!("  [single] {rows} rows, one transaction each");
        }
        self.check_done();
        Ok(())
    }

    /// A batch, one transaction; malformed orders are reported by index and
    /// go to the dead-letter topic (`best_effort`), the rest is inserted.
    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        self.touch();
        let started = Instant::now();
        let mut rows = Vec::with_capacity(batch.len());
        let mut failed = Vec::new();
        for (i, message) in batch.messages().iter().enumerate() {
            match parse_order(message.value()) {
                Ok(order) => rows.push((source(message), order)),
                Err(_) => failed.push(i),
            }
        }
        let inserted = match self.insert(rows).await {
            Ok(n) => n,
            // Nothing was committed: the whole batch is retried.
            Err(e) => return BatchResult::Err(e),
        };
        let total = self.progress.rows.fetch_add(inserted, Ordering::AcqRel) + inserted;
        let n = self.progress.batches.fetch_add(1, Ordering::AcqRel) + 1;
        println!(
            "  [batch {n:>3}] {}/{} offsets {}..={}: {} rows in one transaction{} ({:.1} ms, {total} rows so far)",
            batch.topic(),
            batch.partition(),
            batch.first_offset(),
            batch.last_offset(),
            inserted,
            if failed.is_empty() {
                String::new()
            } else {
                format!(", {} malformed", failed.len())
            },
            started.elapsed().as_secs_f64() * 1e3,
        );
        self.check_done();
        if failed.is_empty() {
            BatchResult::Ok
        } else {
            BatchResult::Partial(failed)
        }
    }

    async fn handle_dead_letter(&self, message: &Message, info: &DeadLetterInfo) {
        self.progress.dead_lettered.fetch_add(1, Ordering::AcqRel);
        println!(
            "  dead-lettered {}/{}@{} -> {}/{}@{}: {}",
            message.topic(),
            message.partition(),
            message.offset(),
            info.topic,
            info.partition,
            info.offset,
            info.error
        );
        self.check_done();
    }
}

/// The command line.
#[derive(Debug)]
struct Args {
    bootstrap: String,
    topic: String,
    dlq_topic: String,
    expected: Option<u64>,
    malformed: Option<u64>,
    batch_size: usize,
    db: PathBuf,
    skip_single: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bootstrap: std::env::var("KAFEE_BOOTSTRAP").unwrap_or_default(),
        topic: "orders".into(),
        dlq_topic: "orders-dlq".into(),
        expected: None,
        malformed: None,
        batch_size: 200,
        db: std::env::temp_dir().join(format!("kafee-bulk-insert-{}.db", std::process::id())),
        skip_single: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--skip-single" {
            args.skip_single = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--bootstrap" => args.bootstrap = value,
            "--topic" => args.topic = value,
            "--dlq-topic" => args.dlq_topic = value,
            "--expected" => args.expected = Some(number(&value)?),
            "--malformed" => args.malformed = Some(number(&value)?),
            "--batch-size" => args.batch_size = number(&value)? as usize,
            "--db" => args.db = PathBuf::from(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.bootstrap.is_empty() {
        return Err("no broker: pass --bootstrap HOST:PORT or set KAFEE_BOOTSTRAP".into());
    }
    Ok(args)
}

/// What one pass did.
#[derive(Debug)]
struct PassResult {
    rows: u64,
    batches: u64,
    dead_lettered: u64,
    /// From the first record handed to the handler to the last one accounted.
    elapsed: Duration,
    /// Time inside SQLite transactions.
    in_db: Duration,
    table_rows: u64,
}

async fn run_pass(
    args: &Args,
    db: &Arc<Mutex<Connection>>,
    mode: Mode,
) -> Result<PassResult, Box<dyn std::error::Error>> {
    let (table, label) = match mode {
        Mode::Batch => ("orders_batch", "batch"),
        _ => ("orders_single", "single"),
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let group = format!("bulk-insert-{label}-{}-{nanos}", std::process::id());
    let dead_letter = DeadLetterConfig::new(args.dlq_topic.clone()).max_retries(1);
    let mut config = BatchConfig::builder()
        .mode(mode)
        .ack_strategy(AckStrategy::BestEffort)
        .dead_letter(dead_letter);
    if mode == Mode::Batch {
        config = config
            .size(args.batch_size)
            .timeout(Duration::from_millis(200));
    }
    // The dead-letter producer on connections of its own: brokers answer
    // the requests of one connection in order, so on the consumer's
    // connections a dead-letter write would wait behind a fetch long poll
    // (fetch.max.wait, 500 ms) while its partition is held.
    let dead_letter_cluster = Cluster::connect(
        ClientConfig::builder()
            .bootstrap_servers(args.bootstrap.split(',').map(str::trim))
            .client_id("bulk-insert-dead-letters")
            .build()?,
    )
    .await?;
    let dead_letter_producer = Producer::new(dead_letter_cluster, ProducerConfig::default());
    let consumer = Consumer::builder(&args.bootstrap, &group)
        .topics([args.topic.clone()])
        .dead_letter_producer(dead_letter_producer.clone())
        .batch(config.build()?)
        .session_timeout(Duration::from_secs(10), Duration::from_secs(2))
        .rebalance_timeout(Duration::from_secs(60))
        .build()?;
    let progress = Arc::new(Progress::default());
    let done = Arc::new(Notify::new());
    let sink = OrdersSink {
        db: db.clone(),
        table,
        progress: progress.clone(),
        expected: args.expected,
        done: done.clone(),
    };
    println!("{label} pass: group {group}, table {table}");
    let running = consumer.run(sink).await?;
    let deadline = tokio::time::Instant::now() + PASS_DEADLINE;
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(200));
        tokio::select! {
            () = done.notified() => break,
            () = tick => {}
        }
        if tokio::time::Instant::now() >= deadline {
            running.shutdown().await?;
            return Err(format!("{label} pass did not finish within {PASS_DEADLINE:?}").into());
        }
        if args.expected.is_none() {
            let last = *progress
                .last_record
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() >= IDLE_STOP) {
                break;
            }
        }
    }
    let finished = Instant::now();
    let stats = running.shutdown().await?;
    dead_letter_producer.close().await;
    let elapsed = progress
        .first_record
        .get()
        .map(|first| finished.duration_since(*first))
        .unwrap_or_default();
    let table_rows = {
        let db = db.lock().unwrap_or_else(|e| e.into_inner());
        db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get::<_, i64>(0)
        })? as u64
    };
    let dead_lettered = progress.dead_lettered.load(Ordering::Acquire);
    if stats.dead_lettered != dead_lettered {
        return Err(format!(
            "{label} pass: the consumer counted {} dead letters, the handler {dead_lettered}",
            stats.dead_lettered
        )
        .into());
    }
    Ok(PassResult {
        rows: progress.rows.load(Ordering::Acquire),
        batches: progress.batches.load(Ordering::Acquire),
        dead_lettered,
        elapsed,
        in_db: Duration::from_nanos(progress.db_nanos.load(Ordering::Acquire)),
        table_rows,
    })
}

/// Checks one pass against the expectations; returns the problems found.
fn check(label: &str, pass: &PassResult, args: &Args) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(expected) = args.expected {
        if pass.rows + pass.dead_lettered != expected {
            problems.push(format!(
                "{label}: {} rows + {} dead letters != {expected} produced",
                pass.rows, pass.dead_lettered
            ));
        }
    }
    if let Some(malformed) = args.malformed {
        if pass.dead_lettered != malformed {
            problems.push(format!(
                "{label}: {} dead letters, but {malformed} orders were malformed",
                pass.dead_lettered
            ));
        }
    }
    if pass.table_rows != pass.rows {
        problems.push(format!(
            "{label}: the table holds {} rows, the handler inserted {}",
            pass.table_rows, pass.rows
        ));
    }
    problems
}

fn rate(rows: u64, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64().max(1e-9)
}

async fn run(args: Args) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let _ = std::fs::remove_file(&args.db);
    let db = Arc::new(Mutex::new(open_db(&args.db)?));
    println!("SQLite database: {}", args.db.display());
    let batch = run_pass(&args, &db, Mode::Batch).await?;
    let single = if args.skip_single {
        None
    } else {
        Some(run_pass(&args, &db, Mode::SingleMessage).await?)
    };

    println!();
    println!("summary");
    if let Some(expected) = args.expected {
        println!("  orders produced                 {expected:>8}");
    }
    if let Some(malformed) = args.malformed {
        println!("  of which malformed              {malformed:>8}");
    }
    println!("  batch mode (one transaction per batch)");
    println!("    rows inserted                 {:>8}", batch.rows);
    println!("    batches                       {:>8}", batch.batches);
    println!(
        "    dead-lettered records         {:>8}",
        batch.dead_lettered
    );
    println!(
        "    time                          {:>8.2} s   ({:.0} rows/s)",
        batch.elapsed.as_secs_f64(),
        rate(batch.rows, batch.elapsed)
    );
    println!(
        "    of which in SQLite            {:>8.2} s",
        batch.in_db.as_secs_f64()
    );
    let mut problems = check("batch mode", &batch, &args);
    if let Some(single) = &single {
        println!("  single-message mode (one transaction per message)");
        println!("    rows inserted                 {:>8}", single.rows);
        println!(
            "    dead-lettered records         {:>8}",
            single.dead_lettered
        );
        println!(
            "    time                          {:>8.2} s   ({:.0} rows/s)",
            single.elapsed.as_secs_f64(),
            rate(single.rows, single.elapsed)
        );
        println!(
            "    of which in SQLite            {:>8.2} s",
            single.in_db.as_secs_f64()
        );
        if batch.in_db > Duration::ZERO {
            println!(
                "  in SQLite, one transaction per batch took {:.0}x less time than one per message",
                single.in_db.as_secs_f64() / batch.in_db.as_secs_f64()
            );
        }
        problems.extend(check("single-message mode", single, &args));
    }
    println!(
        "  (times run from the first record handed to the handler to the last one accounted for)"
    );
    let _ = std::fs::remove_file(&args.db);
    let _ = std::fs::remove_file(args.db.with_extension("db-wal"));
    let _ = std::fs::remove_file(args.db.with_extension("db-shm"));
    Ok(problems)
}

#[tokio::main]
async fn main() -> ExitCode {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bulk_insert: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(problems) if problems.is_empty() => {
            println!("OK: every order is a row or a dead letter");
            ExitCode::SUCCESS
        }
        Ok(problems) => {
            for p in problems {
                eprintln!("bulk_insert: WRONG SUMMARY: {p}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bulk_insert: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_parse_and_malformed_ones_are_refused() {
        let good =
            br#"{"order_id":7,"customer":"c-1","sku":"SKU-2","quantity":3,"price_cents":450}"#;
        assert_eq!(
            parse_order(Some(good)).ok(),
            Some(Order {
                order_id: 7,
                customer: "c-1".into(),
                sku: "SKU-2".into(),
                quantity: 3,
                price_cents: 450
            })
        );
        for bad in [
            &b"not json"[..],
            br#"{"order_id":"x","customer":"c","sku":"s","quantity":1,"price_cents":1}"#,
            br#"{"order_id":1,"customer":"c","sku":"s","quantity":0,"price_cents":1}"#,
            br#"{"order_id":1}"#,
        ] {
            assert!(
                parse_order(Some(bad)).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_order(None).is_err());
    }
}
