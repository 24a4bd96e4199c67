//! The batch consumer: [`Consumer::run`] drives the sans-IO core with a
//! [`GroupConsumer`], a [`Handler`] and (optionally) a dead-letter
//! [`Producer`].
//!
//! One driver task owns every per-partition [`Partition`], the [`InFlight`]
//! scheduler and the [`CommitTracker`]. Handlers run in tasks of their own
//! (a panic there is a failed batch). The driver:
//! 1. pushes fetched records into their partition's accumulator,
//! 2. hands ready batches to handlers, at most `max_in_flight_batches` at a
//!    time and one per partition,
//! 3. applies each result through the acknowledgment strategy (retry with
//!    backoff, dead letters, commit),
//! 4. commits the contiguous watermark every `commit_interval`, at
//!    rebalance and at shutdown,
//! 5. pauses fetching for partitions whose batches wait (back-pressure).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafee_client::admin::{IsolationLevel, TopicPartition as ClientTp};
use kafee_client::cluster::Cluster;
use kafee_client::config::ClientConfig;
use kafee_client::consumer::{
    AssignedPartition, Committer, ConsumerConfig, ConsumerEvent, GroupConsumer, OffsetToCommit,
    Revocation,
};
use kafee_client::error::ClientError;
use kafee_client::fetch::{Fetched, OffsetReset};
use kafee_client::group::GroupConfig;
use kafee_client::produce::{Producer, ProducerConfig, ProducerRecord};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::accumulator::{Entry, ReadyBatch};
use crate::config::{BatchConfig, Mode};
use crate::handler::{DeadLetterInfo, Handler};
use crate::message::{Batch, Message};
use crate::partition::{DeadLetterJob, DeadLetterOutcome, Outcome, Partition, Ticket};
use crate::strategy::BatchResult;
use crate::telemetry;
use crate::watermark::{CommitEntry, CommitResult, CommitTracker};
use crate::{InFlight, Instant, TopicPartition};

/// Why a consumer could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The configuration is invalid.
    #[error("invalid consumer configuration: {0}")]
    Config(String),
    /// The client failed (unreachable broker, fatal group error, ...).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A subscribed topic does not exist.
    #[error("topic {topic:?} does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The driver task failed.
    #[error("the consumer task failed: {0}")]
    Task(String),
}

/// Counters of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Batches handed to the handler (retries included).
    pub batches: u64,
    /// Messages handed to the handler (retries included).
    pub messages: u64,
    /// Messages that failed (per attempt).
    pub failed: u64,
    /// Messages written to the dead-letter topic.
    pub dead_lettered: u64,
    /// Successful offset commits.
    pub commits: u64,
}

/// Builds a [`Consumer`]; see [`Consumer::builder`].
#[derive(Debug, Clone)]
pub struct ConsumerBuilder {
    bootstrap: Vec<String>,
    group_id: String,
    topics: Vec<String>,
    batch: Option<BatchConfig>,
    offset_reset: OffsetReset,
    isolation: IsolationLevel,
    client_id: String,
    session_timeout: Duration,
    heartbeat_interval: Duration,
    rebalance_timeout: Duration,
    group_instance_id: Option<String>,
    fetch_max_wait: Duration,
    connect_timeout: Duration,
    dead_letter_producer: Option<Producer>,
}

impl ConsumerBuilder {
    /// The topics to consume (at least one).
    pub fn topics<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// Batching, acknowledgment and dead-letter settings (default:
    /// [`BatchConfig::default`]'s single-message mode).
    pub fn batch(mut self, config: BatchConfig) -> Self {
        self.batch = Some(config);
        self
    }

    /// `auto.offset.reset` (default earliest).
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.offset_reset = reset;
        self
    }

    /// `isolation.level` (default read_uncommitted).
    pub fn isolation(mut self, isolation: IsolationLevel) -> Self {
        self.isolation = isolation;
        self
    }

    /// `client.id` (default "kafee").
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// `session.timeout.ms` (default 45 s) and `heartbeat.interval.ms`
    /// (default 3 s; must stay below a third of the session timeout).
    pub fn session_timeout(mut self, session: Duration, heartbeat: Duration) -> Self {
        self.session_timeout = session;
        self.heartbeat_interval = heartbeat;
        self
    }

    /// `max.poll.interval.ms`, the rebalance timeout (default 300 s). The
    /// revoke deadline must stay below it.
    pub fn rebalance_timeout(mut self, timeout: Duration) -> Self {
        self.rebalance_timeout = timeout;
        self
    }

    /// `group.instance.id`: static membership (no LeaveGroup on shutdown).
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// `fetch.max.wait.ms` (default 500 ms).
    pub fn fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait = wait;
        self
    }

    /// How long [`Consumer::run`] tries to reach the cluster (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// A dead-letter producer shared with other consumers. Without it, a
    /// consumer with a dead-letter topic creates its own.
    pub fn dead_letter_producer(mut self, producer: Producer) -> Self {
        self.dead_letter_producer = Some(producer);
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<Consumer, ConsumerError> {
        if self.topics.is_empty() {
            return Err(ConsumerError::Config("no topic to consume".into()));
        }
        if self.bootstrap.is_empty() {
            return Err(ConsumerError::Config("no bootstrap server".into()));
        }
        let batch = match self.batch.clone() {
            Some(b) => b,
            None => BatchConfig::builder()
                .build()
                .map_err(|e| ConsumerError::Config(e.to_string()))?,
        };
        batch
            .check_rebalance_timeout(self.rebalance_timeout)
            .map_err(|e| ConsumerError::Config(e.to_string()))?;
        let mut group = GroupConfig::builder(self.group_id.clone(), self.topics.clone())
            .session_timeout(self.session_timeout)
            .heartbeat_interval(self.heartbeat_interval)
            .rebalance_timeout(self.rebalance_timeout);
        if let Some(id) = &self.group_instance_id {
            group = group.group_instance_id(id.clone());
        }
        let group = group
            .build()
            .map_err(|e| ConsumerError::Config(e.to_string()))?;
        let client = ClientConfig::builder()
            .bootstrap_servers(self.bootstrap.clone())
            .client_id(self.client_id.clone())
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|e| ConsumerError::Config(e.to_string()))?;
        Ok(Consumer {
            builder: self,
            batch,
            group,
            client,
        })
    }
}

/// A Kafee-style batch consumer; [`Consumer::run`] starts it.
///
/// ```no_run
/// use kafee_batching::{AckStrategy, Batch, BatchConfig, BatchResult, Consumer, Handler, Mode};
/// use std::time::Duration;
///
/// struct Insert;
///
/// #[async_trait::async_trait]
/// impl Handler for Insert {
///     async fn handle_batch(&self, batch: &Batch) -> BatchResult {
///         println!("{} messages from {}/{}", batch.len(), batch.topic(), batch.partition());
///         BatchResult::Ok
///     }
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let batch = BatchConfig::builder()
///     .mode(Mode::Batch)
///     .size(100)
///     .timeout(Duration::from_millis(500))
///     .ack_strategy(AckStrategy::AllOrNothing)
///     .build()?;
/// let consumer = Consumer::builder("127.0.0.1:9092", "orders-sink")
///     .topics(["orders"])
///     .batch(batch)
///     .build()?;
/// let running = consumer.run(Insert).await?;
/// // ... later:
/// let stats = running.shutdown().await?;
/// println!("{} batches", stats.batches);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer {
    builder: ConsumerBuilder,
    batch: BatchConfig,
    group: GroupConfig,
    client: ClientConfig,
}

impl Consumer {
    /// A builder for a consumer of group `group_id`; `bootstrap` is a
    /// comma-separated list of `host:port`.
    pub fn builder(bootstrap: &str, group_id: &str) -> ConsumerBuilder {
        ConsumerBuilder {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            group_id: group_id.to_owned(),
            topics: Vec::new(),
            batch: None,
            offset_reset: OffsetReset::Earliest,
            isolation: IsolationLevel::ReadUncommitted,
            client_id: "kafee".into(),
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            rebalance_timeout: Duration::from_secs(300),
            group_instance_id: None,
            fetch_max_wait: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(10),
            dead_letter_producer: None,
        }
    }

    /// Connects, checks the topics exist, joins the group and starts
    /// handling. Returns once running; the [`RunHandle`] stops it.
    pub async fn run<H: Handler>(self, handler: H) -> Result<RunHandle, ConsumerError> {
        let cluster = tokio::time::timeout(
            self.builder.connect_timeout,
            Cluster::connect(self.client.clone()),
        )
        .await
        .map_err(|_| {
            ConsumerError::Client(ClientError::Timeout {
                what: format!("connecting to {}", self.builder.bootstrap.join(",")),
                timeout: self.builder.connect_timeout,
                last: None,
            })
        })??;
        let names: Vec<&str> = self.builder.topics.iter().map(String::as_str).collect();
        cluster.refresh_metadata(&names).await?;
        for topic in &self.builder.topics {
            let known = cluster.with_metadata(|m| m.topic(topic).is_some_and(|t| t.is_ready()));
            if !known {
                return Err(ConsumerError::UnknownTopic {
                    topic: topic.clone(),
                });
            }
        }
        let dead_letter = match self.batch.dead_letter() {
            Some(dl) => {
                let producer = match self.builder.dead_letter_producer.clone() {
                    Some(p) => p,
                    // Its own connections: a broker answers a connection's
                    // requests in order, so on the fetch connections every
                    // dead-letter write would wait behind a Fetch long poll.
                    None => Producer::new(
                        Cluster::connect(self.client.clone()).await?,
                        ProducerConfig::builder()
                            .build()
                            .map_err(|e| ConsumerError::Config(e.to_string()))?,
                    ),
                };
                Some((producer, dl.topic().to_owned()))
            }
            None => None,
        };
        let mut config = ConsumerConfig::new(self.group.clone());
        config.fetch.offset_reset = self.builder.offset_reset;
        config.fetch.isolation = self.builder.isolation;
        config.fetch.max_wait = self.builder.fetch_max_wait;
        let consumer = GroupConsumer::start(cluster, config);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let driver = Driver {
            handler: Arc::new(handler),
            committer: consumer.committer(),
            consumer,
            commits: CommitTracker::new(self.batch.commit_interval(), now),
            inflight: InFlight::new(self.batch.max_in_flight_batches()),
            batch: self.batch,
            group_id: self.builder.group_id.clone(),
            partitions: HashMap::new(),
            assigned: HashMap::new(),
            topics: HashMap::new(),
            results_tx,
            dead_letter,
            stats: Stats::default(),
            commit_in_flight: false,
            generation_id: -1,
            revoking: None,
        };
        let task = tokio::spawn(driver.run(results_rx, shutdown_rx));
        Ok(RunHandle {
            shutdown: ShutdownTrigger {
                tx: Arc::new(shutdown_tx),
            },
            task,
        })
    }
}

/// Asks a running consumer to stop gracefully. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownTrigger {
    /// Flush partial batches, wait for in-flight work (up to the shutdown
    /// deadline), commit, leave the group.
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

/// A running consumer.
#[derive(Debug)]
pub struct RunHandle {
    shutdown: ShutdownTrigger,
    task: JoinHandle<Result<Stats, ConsumerError>>,
}

impl RunHandle {
    /// A trigger that stops the consumer from elsewhere (a handler, a signal).
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        self.shutdown.clone()
    }

    /// Stops gracefully and waits until stopped.
    pub async fn shutdown(self) -> Result<Stats, ConsumerError> {
        self.shutdown.trigger();
        self.wait().await
    }

    /// Waits until the consumer stops (shutdown or a fatal error).
    pub async fn wait(self) -> Result<Stats, ConsumerError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ConsumerError::Task(e.to_string())),
        }
    }

    /// Stops at once without flushing or committing: batches in flight are
    /// abandoned and redelivered to the next owner from the last commit.
    /// The membership task then leaves the group, so the partitions move at
    /// once instead of after the session timeout.
    pub fn abort(self) {
        self.task.abort();
    }
}

enum Done {
    Handled {
        tp: TopicPartition,
        ticket: Ticket,
        batch: ReadyBatch<Message>,
        result: BatchResult,
        started: Instant,
    },
    DeadLettered {
        tp: TopicPartition,
        job: DeadLetterJob<Message>,
        written: Result<Vec<DeadLetterInfo>, String>,
    },
    RetryDeadLetter {
        tp: TopicPartition,
        job: DeadLetterJob<Message>,
    },
    Committed {
        result: Result<(), String>,
    },
}

struct Revoking {
    revocation: Revocation,
    keys: Vec<TopicPartition>,
    deadline: Instant,
}

struct PartState {
    partition: Partition<Message>,
    client_tp: ClientTp,
    paused: bool,
    /// Stopped before a record it could not take (see `on_records`).
    failed: bool,
    last_error: String,
}

struct Driver<H> {
    handler: Arc<H>,
    consumer: GroupConsumer,
    committer: Committer,
    commits: CommitTracker<TopicPartition>,
    inflight: InFlight<TopicPartition>,
    batch: BatchConfig,
    group_id: String,
    partitions: HashMap<TopicPartition, PartState>,
    /// Assigned, waiting for the first fetch to learn the start offset.
    assigned: HashMap<TopicPartition, AssignedPartition>,
    topics: HashMap<String, Arc<str>>,
    results_tx: mpsc::UnboundedSender<Done>,
    dead_letter: Option<(Producer, String)>,
    stats: Stats,
    commit_in_flight: bool,
    generation_id: i32,
    revoking: Option<Revoking>,
}

impl<H: Handler> Driver<H> {
    fn key(&mut self, tp: &ClientTp) -> TopicPartition {
        let topic = self
            .topics
            .entry(tp.topic.clone())
            .or_insert_with(|| Arc::from(tp.topic.as_str()))
            .clone();
        TopicPartition::new(topic, tp.partition)
    }

    async fn run(
        mut self,
        mut results: mpsc::UnboundedReceiver<Done>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Stats, ConsumerError> {
        let mut shutdown_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if self.revocation_ready(now) {
                self.finish_revocation().await;
                continue;
            }
            self.schedule(now);
            self.apply_back_pressure(shutdown_deadline.is_some());
            self.maybe_commit(now);

            if let Some(deadline) = shutdown_deadline {
                let drained = self
                    .partitions
                    .values()
                    .all(|p| !p.partition.has_batch_out() && !p.partition.is_ready(now));
                if (drained && !self.commit_in_flight) || now >= deadline {
                    return self.finish(&mut results).await;
                }
            }

            let mut wake = self.commits.next_deadline();
            for p in self.partitions.values() {
                // A deadline already passed belongs to a batch that is ready
                // and waits for an in-flight slot: a handler result wakes
                // the loop then (sleeping until it would spin).
                if let Some(d) = p.partition.next_deadline().filter(|d| *d > now) {
                    wake = Some(wake.map_or(d, |w| w.min(d)));
                }
            }
            for d in [
                shutdown_deadline,
                self.revoking.as_ref().map(|r| r.deadline),
            ]
            .into_iter()
            .flatten()
            .filter(|d| *d > now)
            {
                wake = Some(wake.map_or(d, |w| w.min(d)));
            }
            let wake = wake.unwrap_or(now + Duration::from_secs(1));
            tokio::select! {
                event = self.consumer.next(), if shutdown_deadline.is_none() && self.revoking.is_none() => {
                    if let Some(stop) = self.on_event(event) {
                        return stop;
                    }
                }
                Some(done) = results.recv() => self.on_done(done),
                changed = shutdown.changed(), if shutdown_deadline.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        tracing::info!(group = %self.group_id, "shutting down: flushing partial batches");
                        let now = Instant::now();
                        for p in self.partitions.values_mut() {
                            p.partition.flush(now);
                        }
                        shutdown_deadline = Some(now + self.batch.shutdown_deadline());
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Shutdown: commit what finished, leave the group.
    async fn finish(
        mut self,
        results: &mut mpsc::UnboundedReceiver<Done>,
    ) -> Result<Stats, ConsumerError> {
        // A periodic commit on its way: wait for it (bounded), so that the
        // final commit below is not skipped (the tracker has one in flight).
        let wait = Instant::now() + Duration::from_secs(30);
        while self.commit_in_flight {
            match tokio::time::timeout_at(wait, results.recv()).await {
                Ok(Some(done)) => self.on_done(done),
                Ok(None) | Err(_) => break,
            }
        }
        // A revocation still open (shutdown deadline passed during it): its
        // partitions are still ours until it is answered.
        if self.revoking.is_some() {
            self.finish_revocation().await;
        }
        self.commit_now().await;
        self.consumer.leave();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.consumer.next()).await {
                Ok(ConsumerEvent::Revoked(r)) => r.done(),
                Ok(ConsumerEvent::Stopped(None)) | Err(_) => return Ok(self.stats),
                Ok(ConsumerEvent::Stopped(Some(e))) => return Err(e.into()),
                Ok(_) => {}
            }
        }
    }

    /// Hands ready batches to handlers within the in-flight limit.
    /// Whether `tp` is being revoked: no batch of it may start any more.
    fn is_revoking(&self, tp: &TopicPartition) -> bool {
        self.revoking.as_ref().is_some_and(|r| r.keys.contains(tp))
    }

    fn schedule(&mut self, now: Instant) {
        for (tp, p) in &self.partitions {
            if p.partition.is_ready(now)
                && !self.inflight.is_waiting(tp)
                && !self.inflight.is_running(tp)
                && !self.revoking.as_ref().is_some_and(|r| r.keys.contains(tp))
            {
                self.inflight.ready(tp.clone());
            }
        }
        while let Some(tp) = self.inflight.next_start() {
            if self.is_revoking(&tp) {
                let _ = self.inflight.finish(&tp, false);
                continue;
            }
            let Some(state) = self.partitions.get_mut(&tp) else {
                let _ = self.inflight.finish(&tp, false);
                continue;
            };
            let started = match state.partition.take_batch(now) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    let _ = self.inflight.finish(&tp, false);
                    continue;
                }
                Err(e) => {
                    tracing::error!(partition = %tp, error = %e, "batch hand-out failed");
                    let _ = self.inflight.finish(&tp, false);
                    continue;
                }
            };
            self.start_handler(tp, started.ticket, started.batch);
        }
    }

    fn start_handler(&mut self, tp: TopicPartition, ticket: Ticket, batch: ReadyBatch<Message>) {
        let handler = self.handler.clone();
        let tx = self.results_tx.clone();
        let single = self.batch.mode() == Mode::SingleMessage;
        let generation_id = self.generation_id;
        self.stats.batches += 1;
        self.stats.messages += batch.entries.len() as u64;
        let view = Batch::new(
            batch.entries.iter().map(|e| e.payload.clone()).collect(),
            generation_id,
            ticket.attempt,
        );
        let meta = telemetry::Meta {
            topic: &tp.topic,
            partition: tp.partition,
            consumer_group: &self.group_id,
        };
        telemetry::batch_started(&meta, batch.entries.len(), batch.wire_bytes);
        telemetry::process_start(
            &meta,
            batch.entries.len(),
            batch.wire_bytes,
            self.batch.ack_strategy(),
        );
        let span = telemetry::batch_span(
            &meta,
            batch.first_offset(),
            batch.last_offset(),
            generation_id,
        );
        tokio::spawn(async move {
            let started = Instant::now();
            // The handler runs in a task of its own: a panic is a failed batch.
            let inner = tokio::spawn(
                async move {
                    if single && view.len() == 1 {
                        match handler.handle_message(&view.messages()[0]).await {
                            Ok(()) => BatchResult::Ok,
                            Err(e) => BatchResult::Err(e.to_string()),
                        }
                    } else {
                        handler.handle_batch(&view).await
                    }
                }
                .instrument(span),
            );
            let result = match inner.await {
                Ok(r) => r,
                Err(e) if e.is_panic() => BatchResult::Err(format!("handler panicked: {e}")),
                Err(e) => BatchResult::Err(format!("handler task failed: {e}")),
            };
            let _ = tx.send(Done::Handled {
                tp,
                ticket,
                batch,
                result,
                started,
            });
        });
    }

    /// Pauses fetching for partitions whose batches wait; resumes the rest.
    fn apply_back_pressure(&mut self, shutting_down: bool) {
        for (tp, p) in self.partitions.iter_mut() {
            let pause = shutting_down
                || p.failed
                || p.partition.should_pause()
                || self.inflight.is_waiting(tp);
            if pause != p.paused {
                p.paused = pause;
                if pause {
                    self.consumer.pause(&p.client_tp);
                } else {
                    self.consumer.resume(&p.client_tp);
                }
            }
        }
    }

    fn to_offsets(entries: &[CommitEntry<TopicPartition>]) -> Vec<OffsetToCommit> {
        entries
            .iter()
            .map(|e| OffsetToCommit {
                tp: ClientTp::new(e.partition.topic.to_string(), e.partition.partition),
                offset: e.offset,
                metadata: Some(e.metadata.clone()),
            })
            .collect()
    }

    fn maybe_commit(&mut self, now: Instant) {
        if self.commit_in_flight {
            return;
        }
        let Some(entries) = self.commits.take_pending(now) else {
            return;
        };
        self.commit_in_flight = true;
        let offsets = Self::to_offsets(&entries);
        let committer = self.committer.clone();
        let tx = self.results_tx.clone();
        tokio::spawn(async move {
            let result = committer.commit(offsets).await.map_err(|e| e.to_string());
            let _ = tx.send(Done::Committed { result });
        });
    }

    /// Commits what is pending now and waits (rebalance, shutdown).
    async fn commit_now(&mut self) {
        // Callers wait until no periodic commit is in flight (never two at
        // once, and the tracker keeps one in flight at most).
        self.commits.force_flush();
        let far = Instant::now() + Duration::from_secs(3600);
        let Some(entries) = self.commits.take_pending(far) else {
            return;
        };
        let offsets = Self::to_offsets(&entries);
        match self.committer.commit(offsets).await {
            Ok(()) => {
                self.stats.commits += 1;
                self.commits.on_commit_result(CommitResult::Ok);
            }
            Err(e) => {
                tracing::warn!(group = %self.group_id, error = %e, "commit failed");
                self.commits.on_commit_result(CommitResult::Failed);
            }
        }
    }

    /// Handles a consumer event; `Some` ends the run.
    fn on_event(&mut self, event: ConsumerEvent) -> Option<Result<Stats, ConsumerError>> {
        match event {
            ConsumerEvent::Records(fetched) => self.on_records(fetched),
            ConsumerEvent::Assigned {
                generation_id,
                partitions,
            } => {
                self.generation_id = generation_id;
                for a in partitions {
                    let key = self.key(&a.tp);
                    self.assigned.insert(key, a);
                }
            }
            ConsumerEvent::Revoked(revocation) => self.on_revoked(revocation),
            ConsumerEvent::Lost(tps) => {
                for tp in tps {
                    let key = self.key(&tp);
                    tracing::warn!(partition = %key, "partition lost: its uncommitted work is dropped");
                    self.drop_partition(&key);
                }
            }
            ConsumerEvent::PartitionError(e) => {
                tracing::error!(error = %e, "partition error");
            }
            ConsumerEvent::Stopped(None) => return Some(Ok(std::mem::take(&mut self.stats))),
            ConsumerEvent::Stopped(Some(e)) => return Some(Err(e.into())),
            _ => {}
        }
        None
    }

    fn drop_partition(&mut self, key: &TopicPartition) {
        self.partitions.remove(key);
        self.assigned.remove(key);
        self.inflight.remove(key);
        let _ = self.inflight.finish(key, false);
        self.commits.remove(key);
    }

    /// Revocation, step 1: stop starting batches for the partitions; the
    /// main loop lets the batches out finish until the revoke deadline, then
    /// [`Driver::finish_revocation`] commits and drops them.
    fn on_revoked(&mut self, revocation: Revocation) {
        let keys: Vec<TopicPartition> = revocation
            .partitions
            .iter()
            .map(|tp| self.key(tp))
            .collect();
        for k in &keys {
            self.inflight.remove(k);
            self.assigned.remove(k);
        }
        let deadline = Instant::now() + self.batch.revoke_deadline();
        self.revoking = Some(Revoking {
            revocation,
            keys,
            deadline,
        });
    }

    /// Whether the revocation in progress may complete now.
    fn revocation_ready(&self, now: Instant) -> bool {
        let Some(r) = &self.revoking else {
            return false;
        };
        let busy = r.keys.iter().any(|k| {
            self.partitions
                .get(k)
                .is_some_and(|p| p.partition.has_batch_out())
        });
        (!busy || now >= r.deadline) && !self.commit_in_flight
    }

    /// Revocation, step 2: commit what finished, drop the partitions (work
    /// not finished is abandoned uncommitted), let the member rejoin.
    async fn finish_revocation(&mut self) {
        let Some(r) = self.revoking.take() else {
            return;
        };
        self.commit_now().await;
        for k in &r.keys {
            self.drop_partition(k);
        }
        r.revocation.done();
    }

    fn on_records(&mut self, fetched: Fetched) {
        if !self.consumer.is_current(&fetched) {
            return;
        }
        let key = self.key(&fetched.tp);
        let now = Instant::now();
        if !self.partitions.contains_key(&key) {
            let Some(assigned) = self.assigned.remove(&key) else {
                return; // not ours (any more)
            };
            let metadata = assigned
                .committed
                .as_ref()
                .map(|c| c.metadata.clone())
                .unwrap_or_default();
            let start = fetched.fetch_offset;
            let (partition, bad) = Partition::new(
                key.clone(),
                self.batch.accumulator_settings(),
                self.batch.ack_policy(),
                start,
                &metadata,
                now,
            );
            if let Some(e) = bad {
                tracing::warn!(partition = %key, error = %e, "unreadable commit metadata ignored");
            }
            self.commits.assign(key.clone(), start, metadata);
            self.partitions.insert(
                key.clone(),
                PartState {
                    partition,
                    client_tp: fetched.tp.clone(),
                    paused: false,
                    failed: false,
                    last_error: String::new(),
                },
            );
        }
        let Some(state) = self.partitions.get_mut(&key) else {
            return;
        };
        if state.failed {
            return;
        }
        let topic = key.topic.clone();
        let from = fetched.fetch_offset;
        // Where the partition stops when a record cannot be taken: nothing
        // at or after it may be skipped over (P1).
        let mut next_unpushed = from;
        let mut pushed = 0usize;
        let mut stopped_at: Option<i64> = None;
        'batches: for batch in &fetched.batches {
            let wire_last = batch.batch().last_offset();
            let mut records = batch.records().peekable();
            while let Some(record) = records.next() {
                let record = match record {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(partition = %key, error = %e, "malformed record");
                        stopped_at = Some(next_unpushed);
                        break 'batches;
                    }
                };
                if record.offset() < from {
                    continue;
                }
                let last = records.peek().is_none();
                let entry = Entry {
                    offset: record.offset(),
                    wire_size: record.wire_size(),
                    wire_batch_last_offset: wire_last,
                    last_in_wire_batch: last,
                    payload: Message::new(topic.clone(), key.partition, record.to_owned()),
                };
                let offset = entry.offset;
                if let Err(e) = state.partition.push(entry, now) {
                    tracing::error!(partition = %key, offset, error = %e, "record not accepted");
                    stopped_at = Some(offset);
                    break 'batches;
                }
                next_unpushed = offset + 1;
                pushed += 1;
            }
        }
        let meta = telemetry::Meta {
            topic: &key.topic,
            partition: key.partition,
            consumer_group: &self.group_id,
        };
        telemetry::consumer_lag(&meta, fetched.lag());
        telemetry::batch_accumulated(
            &meta,
            pushed,
            state.partition.accumulator().buffered_messages(),
            state.partition.accumulator().buffered_bytes(),
        );
        match stopped_at {
            None => state.partition.skip_to(fetched.next_offset),
            Some(offset) => {
                // The fetch cursor goes back there (the next owner, or this
                // member after a restart, fetches it again); meanwhile the
                // partition stays paused and says so. Nothing past it is
                // committed.
                state.failed = true;
                state.paused = true;
                self.consumer.seek(&state.client_tp, offset);
                self.consumer.pause(&state.client_tp);
                tracing::error!(partition = %key, offset, "partition stopped before a record it cannot take");
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        let now = Instant::now();
        match done {
            Done::Committed { result } => {
                self.commit_in_flight = false;
                match result {
                    Ok(()) => {
                        self.stats.commits += 1;
                        self.commits.on_commit_result(CommitResult::Ok);
                    }
                    Err(e) => {
                        tracing::warn!(group = %self.group_id, error = %e, "commit failed; will retry");
                        self.commits.on_commit_result(CommitResult::Failed);
                    }
                }
            }
            Done::Handled {
                tp,
                ticket,
                batch,
                result,
                started,
            } => self.on_handled(tp, ticket, batch, result, started, now),
            Done::DeadLettered { tp, job, written } => self.on_dead_lettered(tp, job, written, now),
            Done::RetryDeadLetter { tp, job } => {
                if self.partitions.contains_key(&tp) {
                    self.write_dead_letters(tp, job);
                }
            }
        }
    }

    fn on_handled(
        &mut self,
        tp: TopicPartition,
        ticket: Ticket,
        batch: ReadyBatch<Message>,
        result: BatchResult,
        started: Instant,
        now: Instant,
    ) {
        let elapsed = now.saturating_duration_since(started);
        let Some(state) = self.partitions.get_mut(&tp) else {
            return; // revoked or lost meanwhile: nothing is committed
        };
        // A handler naming a message the batch does not have failed the
        // whole batch (never skip what it may not have handled).
        let result = match result {
            BatchResult::Partial(failed) if failed.iter().any(|&i| i >= batch.entries.len()) => {
                BatchResult::Err(format!(
                    "handle_batch reported failed index {:?} of a batch of {}",
                    failed.iter().max(),
                    batch.entries.len()
                ))
            }
            BatchResult::Partial(failed) if failed.is_empty() => BatchResult::Ok,
            other => other,
        };
        let failed = match &result {
            BatchResult::Ok => 0,
            BatchResult::Partial(f) => f.len(),
            BatchResult::Err(_) => batch.entries.len(),
        };
        self.stats.failed += failed as u64;
        if let BatchResult::Err(e) = &result {
            state.last_error = e.clone();
        } else if failed > 0 {
            state.last_error = "the handler reported the message as failed".into();
        }
        let meta = telemetry::Meta {
            topic: &tp.topic,
            partition: tp.partition,
            consumer_group: &self.group_id,
        };
        match &result {
            BatchResult::Err(e) => telemetry::process_error(&meta, elapsed, batch.entries.len(), e),
            _ => telemetry::process_end(&meta, elapsed, batch.entries.len(), failed),
        }
        let outcome = match state.partition.on_result(ticket, batch, &result, now) {
            Ok(o) => o,
            Err(e) => {
                // A late result of a batch abandoned at revocation (the
                // partition came back with a new batch out): ignore it; the
                // in-flight slot was released when the partition was dropped.
                tracing::debug!(partition = %tp, error = %e, "stale result ignored");
                return;
            }
        };
        match outcome {
            Outcome::Done { .. } => {
                let (offset, metadata) = state.partition.commit_state();
                self.commits.update(&tp, offset, &metadata);
                let more = state.partition.is_ready(now)
                    && !self.revoking.as_ref().is_some_and(|r| r.keys.contains(&tp));
                let _ = self.inflight.finish(&tp, more);
            }
            Outcome::Retry {
                from_offset,
                attempts,
                exhausted,
                ..
            } => {
                let meta = telemetry::Meta {
                    topic: &tp.topic,
                    partition: tp.partition,
                    consumer_group: &self.group_id,
                };
                telemetry::message_retry(
                    &meta,
                    from_offset,
                    attempts,
                    self.batch.max_attempts(),
                    exhausted,
                );
                let (offset, metadata) = state.partition.commit_state();
                self.commits.update(&tp, offset, &metadata);
                let _ = self.inflight.finish(&tp, false);
            }
            Outcome::DeadLetter(job) => {
                // What came before the first dead letter is done.
                let (offset, metadata) = state.partition.commit_state();
                self.commits.update(&tp, offset, &metadata);
                self.write_dead_letters(tp, job);
            }
        }
    }

    fn write_dead_letters(&mut self, tp: TopicPartition, job: DeadLetterJob<Message>) {
        let Some((producer, topic)) = self.dead_letter.clone() else {
            // No dead-letter topic: the strategy never asks for one then.
            return;
        };
        let error = self
            .partitions
            .get(&tp)
            .map(|p| p.last_error.clone())
            .unwrap_or_default();
        let group_id = self.group_id.clone();
        let handler = self.handler.clone();
        let tx = self.results_tx.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut pending = Vec::new();
            for &i in &job.messages {
                let Some(entry) = job.batch.entries.get(i) else {
                    continue;
                };
                let m = &entry.payload;
                let mut record = ProducerRecord::new(topic.clone());
                if let Some(k) = m.key_bytes() {
                    record = record.key(k);
                }
                if let Some(v) = m.value_bytes() {
                    record = record.value(v);
                }
                for h in m.headers() {
                    record = record.header(
                        String::from_utf8_lossy(h.key).into_owned(),
                        h.value.map(Bytes::copy_from_slice),
                    );
                }
                for (k, v) in [
                    ("kafee.dlq.source.topic", m.topic().to_owned()),
                    ("kafee.dlq.source.partition", m.partition().to_string()),
                    ("kafee.dlq.source.offset", m.offset().to_string()),
                    ("kafee.dlq.source.timestamp", m.timestamp().to_string()),
                    ("kafee.dlq.consumer.group", group_id.clone()),
                    ("kafee.dlq.attempts", job.attempts.to_string()),
                    ("kafee.dlq.error", error.clone()),
                ] {
                    record = record.header(k, Some(Bytes::from(v)));
                }
                match producer.enqueue(record) {
                    Ok(f) => pending.push((i, f)),
                    Err(e) => {
                        let _ = tx.send(Done::DeadLettered {
                            tp,
                            job,
                            written: Err(e.to_string()),
                        });
                        return;
                    }
                }
            }
            let mut infos = Vec::new();
            let mut failure = None;
            for (i, f) in pending {
                match f.await {
                    Ok(meta) => infos.push((
                        i,
                        DeadLetterInfo {
                            topic: meta.topic,
                            partition: meta.partition,
                            offset: meta.offset,
                            attempts: job.attempts,
                            error: error.clone(),
                            group_id: group_id.clone(),
                        },
                    )),
                    Err(e) => failure = Some(e.to_string()),
                }
            }
            let meta = telemetry::Meta {
                topic: &tp.topic,
                partition: tp.partition,
                consumer_group: &group_id,
            };
            let first = job
                .messages
                .first()
                .and_then(|&i| job.batch.entries.get(i))
                .map_or(-1, |e| e.offset);
            let elapsed = started.elapsed();
            let written = match failure {
                Some(e) => {
                    telemetry::dlq_error(&meta, first, elapsed, job.attempts, &topic, &e);
                    Err(e)
                }
                None => {
                    for (i, info) in &infos {
                        if let Some(entry) = job.batch.entries.get(*i) {
                            telemetry::dlq_sent(&meta, entry.offset, elapsed, job.attempts, &topic);
                            handler.handle_dead_letter(&entry.payload, info).await;
                        }
                    }
                    Ok(infos.into_iter().map(|(_, info)| info).collect())
                }
            };
            let _ = tx.send(Done::DeadLettered { tp, job, written });
        });
    }

    fn on_dead_lettered(
        &mut self,
        tp: TopicPartition,
        job: DeadLetterJob<Message>,
        written: Result<Vec<DeadLetterInfo>, String>,
        now: Instant,
    ) {
        let Some(state) = self.partitions.get_mut(&tp) else {
            return;
        };
        let ok = match &written {
            Ok(infos) => {
                self.stats.dead_lettered += infos.len() as u64;
                true
            }
            Err(e) => {
                tracing::warn!(partition = %tp, error = %e, "dead-letter write failed; nothing is committed past it, retrying");
                false
            }
        };
        match state.partition.on_dead_letter_result(job, ok, now) {
            Ok(DeadLetterOutcome::Done { .. }) => {
                let (offset, metadata) = state.partition.commit_state();
                self.commits.update(&tp, offset, &metadata);
                let more = state.partition.is_ready(now)
                    && !self.revoking.as_ref().is_some_and(|r| r.keys.contains(&tp));
                let _ = self.inflight.finish(&tp, more);
            }
            Ok(DeadLetterOutcome::RetryWrite { job, at }) => {
                let tx = self.results_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let _ = tx.send(Done::RetryDeadLetter { tp, job });
                });
            }
            Ok(DeadLetterOutcome::Stale) => {}
            Err(e) => {
                tracing::error!(partition = %tp, error = %e, "dead-letter result not applied")
            }
        }
    }
}
