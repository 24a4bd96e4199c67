//! `kafee consume`: runs kafee's batch layer on any topic and prints what the
//! handler saw.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};
use kafee::batching::{
    AckStrategy, Batch, BatchConfig, BatchResult, Consumer, ConsumerError, DeadLetterConfig,
    DeadLetterInfo, Handler, HandlerError, Message, Mode, Stats,
};
use kafee::client::admin::IsolationLevel;
use kafee::client::fetch::OffsetReset;
use kafee::client::produce::{Producer, ProducerConfig};
use regex::Regex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::connect::{self, ConnectArgs};
use crate::duration::{display, parse_duration};
use crate::error::CliError;
use crate::output::{human_bytes, human_duration, record_json, RecordView};

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Batches of up to `--batch-size` records, one `handle_batch` call each.
    Batch,
    /// One record per handler call (`handle_message`); the batch flags are refused.
    Single,
}

/// `--ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AckArg {
    /// A batch with any failed record is retried whole; dead-lettered whole after the retries.
    AllOrNothing,
    /// The batch is acknowledged; only its failed records are retried, then dead-lettered.
    BestEffort,
    /// Acknowledge up to the first failed record; retry from there.
    LastSuccessful,
}

/// `--isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// Every record, including those of open and aborted transactions.
    ReadUncommitted,
    /// Only records of committed transactions.
    ReadCommitted,
}

/// `--offset-reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OffsetResetArg {
    /// Start from the log start when the group has no committed offset.
    Earliest,
    /// Start from the log end (only new records) when the group has no committed offset.
    Latest,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One JSON object per record handed to the handler, in handling order
    /// (retried records appear again); totals on stderr.
    Jsonl,
    /// One line per handler call (partition, offsets, count, bytes,
    /// duration), then the totals.
    Summary,
    /// Only the totals (for benchmarks).
    None,
}

/// The flags of `kafee consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// A topic to consume (repeatable; every topic must exist).
    #[arg(long = "topic", short = 't', required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// The consumer group id (offsets are committed for it).
    #[arg(long, short = 'g')]
    pub group: String,
    /// Processing mode.
    #[arg(long, value_enum, default_value = "batch")]
    pub mode: ModeArg,
    /// Records per batch (batch mode; Kafee's `batch.size`). [default: 100]
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Bytes per batch, counted as record sizes on the wire (batch mode;
    /// `batch.max_bytes`). A single larger record forms its own batch.
    /// [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    pub batch_max_bytes: Option<usize>,
    /// How long a partial batch waits for more records before it is handled,
    /// measured from its first record (batch mode; `batch.timeout`).
    /// [default: 1s]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub batch_timeout: Option<Duration>,
    /// Acknowledgment strategy: what a failed record does to its batch.
    #[arg(long, value_enum, default_value = "all-or-nothing")]
    pub ack: AckArg,
    /// Batches handled at once across partitions (one at a time per
    /// partition; `processing.max_in_flight_batches`).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_in_flight: usize,
    /// Write records that still fail after the retries to this topic (it
    /// must exist). Without it, failed records are retried until they succeed.
    #[arg(long, value_name = "TOPIC")]
    pub dlq_topic: Option<String>,
    /// Failed handler attempts before a record is dead-lettered (needs
    /// `--dlq-topic`).
    #[arg(long, default_value_t = 3, value_name = "N", requires = "dlq_topic")]
    pub dlq_max_retries: u32,
    /// Transaction isolation (`isolation.level`).
    #[arg(long, value_enum, default_value = "read-uncommitted")]
    pub isolation: IsolationArg,
    /// Where to start when the group has no committed offset (`auto.offset.reset`).
    #[arg(long, value_enum, default_value = "earliest")]
    pub offset_reset: OffsetResetArg,
    /// Stop gracefully once this many records were handed to the handler
    /// (the batches already handed out finish, so a few more may be printed).
    /// [default: no limit]
    #[arg(long, value_name = "N")]
    pub max_records: Option<u64>,
    /// Stop gracefully after this long without a new record. Before the
    /// first record the group join gets `--session-timeout` on top (joining
    /// takes up to half of it on some brokers). [default: never]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub exit_idle: Option<Duration>,
    /// The group session timeout (`session.timeout.ms`); the heartbeat
    /// interval is a fifth of it. A member that stops heartbeating leaves the
    /// group after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub session_timeout: Duration,
    /// The rebalance timeout (`max.poll.interval.ms`): how long the group
    /// waits for members to rejoin during a rebalance.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub rebalance_timeout: Duration,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FormatArg,
    /// Make the handler fail every record whose value matches this regular
    /// expression (values read as UTF-8, invalid bytes replaced), to try the
    /// ack strategies and the dead-letter topic. Failures and dead letters
    /// are reported on stderr. [default: none]
    #[arg(long, value_name = "REGEX")]
    pub fail_matching: Option<Regex>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Builds the batch configuration from the flags; a refused combination is
/// a usage error.
pub fn batch_config(args: &ConsumeArgs) -> Result<BatchConfig, CliError> {
    let mode = match args.mode {
        ModeArg::Batch => Mode::Batch,
        ModeArg::Single => Mode::SingleMessage,
    };
    let mut builder = BatchConfig::builder()
        .mode(mode)
        .ack_strategy(match args.ack {
            AckArg::AllOrNothing => AckStrategy::AllOrNothing,
            AckArg::BestEffort => AckStrategy::BestEffort,
            AckArg::LastSuccessful => AckStrategy::LastSuccessful,
        })
        .max_in_flight_batches(args.max_in_flight);
    if let Some(size) = args.batch_size {
        builder = builder.size(size);
    }
    if let Some(bytes) = args.batch_max_bytes {
        builder = builder.max_bytes(bytes);
    }
    if let Some(timeout) = args.batch_timeout {
        builder = builder.timeout(timeout);
    }
    if let Some(topic) = &args.dlq_topic {
        builder = builder
            .dead_letter(DeadLetterConfig::new(topic.clone()).max_retries(args.dlq_max_retries));
    }
    builder
        .build()
        .map_err(|e| CliError::Usage(format!("invalid batch settings: {e}")))
}

/// How often the main loop re-checks the `--exit-idle` deadline.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// `Shared::stop_reason`: no stop requested.
const STOP_NONE: u8 = 0;

/// State shared by the handler (in the consumer's tasks) and the main loop.
struct Shared {
    format: FormatArg,
    fail_matching: Option<Regex>,
    max_records: Option<u64>,
    /// Handler calls so far (the jsonl `batch` field).
    calls: AtomicU64,
    /// Records handed to the handler so far (retries included).
    records: AtomicU64,
    /// Wire bytes handed to the handler so far.
    bytes: AtomicU64,
    /// When the last record was handed over (for `--exit-idle`).
    last_record: Mutex<Instant>,
    /// Stdout was closed: stop printing.
    stdout_closed: AtomicBool,
    /// Set, then `stop` notified, when the handler wants the consumer to stop.
    stop_reason: std::sync::atomic::AtomicU8,
    stop: Notify,
}

/// `Shared::stop_reason`: `--max-records` reached.
const STOP_MAX_RECORDS: u8 = 1;
/// `Shared::stop_reason`: stdout was closed.
const STOP_STDOUT_CLOSED: u8 = 2;

impl Shared {
    fn request_stop(&self, reason: u8) {
        if self
            .stop_reason
            .compare_exchange(STOP_NONE, reason, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.stop.notify_one();
        }
    }

    /// Writes `text` to stdout in one piece; a closed stdout stops the run.
    fn print(&self, text: &str) {
        if text.is_empty() || self.stdout_closed.load(Ordering::Acquire) {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            self.stdout_closed.store(true, Ordering::Release);
            self.request_stop(STOP_STDOUT_CLOSED);
        }
    }

    fn fails(&self, message: &Message) -> bool {
        match (&self.fail_matching, message.value()) {
            (Some(regex), Some(value)) => regex.is_match(&String::from_utf8_lossy(value)),
            _ => false,
        }
    }

    /// Counts the records of a handler call; returns the call's number.
    fn start_call(&self, records: u64, bytes: u64) -> u64 {
        *self.last_record.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let before = self.records.fetch_add(records, Ordering::AcqRel);
        if let Some(max) = self.max_records {
            if before + records >= max {
                self.request_stop(STOP_MAX_RECORDS);
            }
        }
        self.calls.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn jsonl(&self, out: &mut String, message: &Message, call: u64) {
        let view = RecordView {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp(),
            key: message.key(),
            value: message.value(),
            batch: call,
        };
        out.push_str(&record_json(
            &view,
            message.headers().map(|h| (h.key, h.value)),
        ));
        out.push('\n');
    }

    fn report_failure(&self, message: &Message, attempt: Option<u32>) {
        let attempt = attempt
            .map(|a| format!(" (attempt {a})"))
            .unwrap_or_default();
        eprintln!(
            "failed: {}/{}@{}{attempt}: value matches --fail-matching",
            message.topic(),
            message.partition(),
            message.offset()
        );
    }
}

/// The handler `kafee consume` runs.
struct CliHandler {
    shared: Arc<Shared>,
}

/// The error of a record failed by `--fail-matching`.
#[derive(Debug, thiserror::Error)]
#[error("value matches --fail-matching {0:?}")]
struct Matched(String);

#[async_trait::async_trait]
impl Handler for CliHandler {
    async fn handle_message(&self, message: &Message) -> Result<(), HandlerError> {
        let started = std::time::Instant::now();
        let shared = &self.shared;
        let call = shared.start_call(1, message.wire_size() as u64);
        let mut out = String::new();
        match shared.format {
            FormatArg::Jsonl => shared.jsonl(&mut out, message, call),
            FormatArg::Summary => {
                out = format!(
                    "call {call}: {}/{} offset {} (1 record, {}) handled in {}{}\n",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    human_bytes(message.wire_size() as u64),
                    human_duration(started.elapsed()),
                    if shared.fails(message) {
                        ", failed"
                    } else {
                        ""
                    }
                )
            }
            FormatArg::None => {}
        }
        shared.print(&out);
        if shared.fails(message) {
            shared.report_failure(message, None);
            let pattern = shared
                .fail_matching
                .as_ref()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default();
            return Err(Box::new(Matched(pattern)));
        }
        Ok(())
    }

    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        let started = std::time::Instant::now();
        let shared = &self.shared;
        let call = shared.start_call(batch.len() as u64, batch.wire_bytes() as u64);
        let mut out = String::new();
        let mut failed = Vec::new();
        for (i, message) in batch.messages().iter().enumerate() {
            if shared.format == FormatArg::Jsonl {
                shared.jsonl(&mut out, message, call);
            }
            if shared.fails(message) {
                shared.report_failure(message, Some(batch.attempt()));
                failed.push(i);
            }
        }
        if shared.format == FormatArg::Summary {
            out = format!(
                "batch {call}: {}/{} offsets {}..={} ({} records, {}) handled in {}{}{}\n",
                batch.topic(),
                batch.partition(),
                batch.first_offset(),
                batch.last_offset(),
                batch.len(),
                human_bytes(batch.wire_bytes() as u64),
                human_duration(started.elapsed()),
                if batch.attempt() > 1 {
                    format!(", attempt {}", batch.attempt())
                } else {
                    String::new()
                },
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(", {} failed", failed.len())
                },
            );
        }
        shared.print(&out);
        if failed.is_empty() {
            BatchResult::Ok
        } else {
            BatchResult::Partial(failed)
        }
    }

    async fn handle_dead_letter(&self, message: &Message, info: &DeadLetterInfo) {
        eprintln!(
            "dead-lettered: {}/{}@{} -> {}/{}@{} after {} attempts: {}",
            message.topic(),
            message.partition(),
            message.offset(),
            info.topic,
            info.partition,
            info.offset,
            info.attempts,
            info.error
        );
    }
}

/// Waits for Ctrl-C or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn consumer_error(e: ConsumerError) -> CliError {
    match e {
        ConsumerError::UnknownTopic { topic } => CliError::MissingTopic(topic),
        ConsumerError::Config(message) => CliError::Usage(message),
        other => CliError::Consumer(other.to_string()),
    }
}

/// Runs `kafee consume` until a clean stop (`--exit-idle`, `--max-records`,
/// Ctrl-C) or a fatal error.
pub async fn run(args: ConsumeArgs) -> Result<(), CliError> {
    let batch = batch_config(&args)?;
    let bootstrap = args.connect.bootstrap.clone();
    let timeout = args.connect.timeout;
    // Fail fast, with the CLI's messages, on an unreachable broker or a
    // missing topic (the consumer checks too, later and less specifically).
    let cluster = connect::connect(&bootstrap, timeout).await?;
    for topic in args.topics.iter().chain(args.dlq_topic.iter()) {
        connect::partition_count(&cluster, topic).await?;
    }
    let mut builder = Consumer::builder(&bootstrap, &args.group);
    let mut dead_letter_producer = None;
    if args.dlq_topic.is_some() {
        // On connections of its own: a broker answers one connection's
        // requests in order, so on the consumer's connections each
        // dead-letter write would wait behind a fetch long poll (500 ms)
        // while its partition is held.
        let cluster = connect::connect(&bootstrap, timeout).await?;
        let producer = Producer::new(cluster, ProducerConfig::default());
        builder = builder.dead_letter_producer(producer.clone());
        dead_letter_producer = Some(producer);
    }
    let consumer = builder
        .topics(args.topics.clone())
        .batch(batch)
        .client_id(connect::CLIENT_ID)
        .connect_timeout(timeout)
        .session_timeout(args.session_timeout, args.session_timeout / 5)
        .rebalance_timeout(args.rebalance_timeout)
        .offset_reset(match args.offset_reset {
            OffsetResetArg::Earliest => OffsetReset::Earliest,
            OffsetResetArg::Latest => OffsetReset::Latest,
        })
        .isolation(match args.isolation {
            IsolationArg::ReadUncommitted => IsolationLevel::ReadUncommitted,
            IsolationArg::ReadCommitted => IsolationLevel::ReadCommitted,
        })
        .build()
        .map_err(consumer_error)?;
    let shared = Arc::new(Shared {
        format: args.format,
        fail_matching: args.fail_matching.clone(),
        max_records: args.max_records,
        calls: AtomicU64::new(0),
        records: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        last_record: Mutex::new(Instant::now()),
        stdout_closed: AtomicBool::new(false),
        stop_reason: std::sync::atomic::AtomicU8::new(STOP_NONE),
        stop: Notify::new(),
    });
    let started = Instant::now();
    let handle = consumer
        .run(CliHandler {
            shared: shared.clone(),
        })
        .await
        .map_err(consumer_error)?;
    // Joining the group takes up to about half the session timeout (Tansu
    // holds the JoinGroup that long; Kafka waits its initial rebalance
    // delay), so the idle clock starts only after that allowance.
    *shared.last_record.lock().unwrap_or_else(|e| e.into_inner()) =
        Instant::now() + args.session_timeout;
    let trigger = handle.shutdown_trigger();
    let wait = handle.wait();
    tokio::pin!(wait);
    let interrupt = interrupted();
    tokio::pin!(interrupt);
    let mut stopping: Option<String> = None;
    let result = loop {
        let idle_deadline = args
            .exit_idle
            .map(|idle| *shared.last_record.lock().unwrap_or_else(|e| e.into_inner()) + idle);
        tokio::select! {
            result = &mut wait => break result,
            () = &mut interrupt, if stopping.is_none() => {
                stopping = Some("interrupted".into());
                trigger.trigger();
            }
            () = shared.stop.notified(), if stopping.is_none() => {
                stopping = Some(match shared.stop_reason.load(Ordering::Acquire) {
                    STOP_MAX_RECORDS => format!("--max-records {} reached", args.max_records.unwrap_or(0)),
                    _ => "stdout closed".into(),
                });
                trigger.trigger();
            }
            // Wakes at least every 100 ms: the deadline moves (earlier too,
            // when the first record ends the join allowance).
            () = tokio::time::sleep_until(
                    idle_deadline.unwrap_or_else(Instant::now).min(Instant::now() + IDLE_TICK)),
                if stopping.is_none() && idle_deadline.is_some() => {
                let last = *shared.last_record.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(idle) = args.exit_idle {
                    if Instant::now() >= last + idle {
                        stopping = Some(format!("idle for {}", display(idle)));
                        trigger.trigger();
                    }
                }
            }
        }
    };
    if let Some(producer) = dead_letter_producer {
        producer.close().await;
    }
    let stats = result.map_err(consumer_error)?;
    let totals = totals_line(
        &stats,
        shared.bytes.load(Ordering::Relaxed),
        started.elapsed(),
        stopping.as_deref(),
    );
    match args.format {
        // stdout carries only records.
        FormatArg::Jsonl => eprintln!("{totals}"),
        FormatArg::Summary | FormatArg::None => shared.print(&format!("{totals}\n")),
    }
    Ok(())
}

fn totals_line(stats: &Stats, bytes: u64, elapsed: Duration, reason: Option<&str>) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "total: {} records in {} batches ({}), {} failed, {} dead-lettered, {} commits, in {:.2}s ({:.0} records/s){}",
        stats.messages,
        stats.batches,
        human_bytes(bytes),
        stats.failed,
        stats.dead_lettered,
        stats.commits,
        elapsed.as_secs_f64(),
        stats.messages as f64 / secs,
        reason.map(|r| format!("; stopped: {r}")).unwrap_or_default()
    )
}
