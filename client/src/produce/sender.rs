//! The producer task: partitions records, drives the accumulator, sends one
//! Produce request per leader and completes every record with its result.
//!
//! ```text
//!   loop ┬─ command: record ──► topic known? partition + append : waiting list (+ lookup)
//!        │           flush / close ──► waiters, flushing mode
//!        ├─ event: topic lookup done ──► re-handle its waiting records (or back off)
//!        │         metadata refresh done
//!        │         produce answer ──► complete / retry / fail each batch
//!        └─ timer: linger, backoff, deadlines
//!   then pump: expire (accumulator, waiting list) ─► drain ─► spawn requests ─► flush/close waiters
//! ```

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafee_protocol::error::ErrorCode;
use kafee_protocol::records::Header;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::accumulator::{AccumulatorConfig, ProduceAccumulator, ProducerBatch, ProducerIdentity};
use super::partitioner::{partition_for_key, StickyPartitions};
use super::{Command, Counters, Pending, ProduceError, ProducerConfig, RecordMetadata};
use crate::admin::TopicPartition;
use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::metadata::TopicState;
use crate::retry::Backoff;

/// Commands taken from the channel per loop turn before the accumulator is
/// drained (records arriving together share batches).
const COMMANDS_PER_TURN: usize = 4096;

/// A record inside the accumulator: its reply channel and buffer share.
struct Completion {
    id: u64,
    tx: oneshot::Sender<Result<RecordMetadata, ProduceError>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Records of a topic the metadata does not know (yet).
struct WaitingTopic {
    // Boxed as they arrive on the channel: re-handling moves a pointer.
    #[allow(clippy::vec_box)]
    records: Vec<Box<Pending>>,
    lookup_in_flight: bool,
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// The last lookup's failure (UNKNOWN_TOPIC_OR_PARTITION, ...).
    last_error: Option<Arc<ClientError>>,
}

enum Event {
    /// A metadata lookup for a topic with waiting records finished.
    TopicLookup {
        topic: String,
        result: Result<(), ClientError>,
    },
    /// A metadata refresh asked for by a partition without leader finished.
    Refreshed,
    /// InitProducerId answered (idempotent producer).
    Identity(Result<ProducerIdentity, ClientError>),
    /// A Produce request was answered (or failed).
    Produced {
        batches: Vec<ProducerBatch<Completion>>,
        result: Result<(String, ProduceResponse), ClientError>,
    },
}

struct Task {
    cluster: Cluster,
    config: ProducerConfig,
    acc: ProduceAccumulator<Completion>,
    sticky: StickyPartitions,
    waiting: HashMap<String, WaitingTopic>,
    incomplete: BTreeSet<u64>,
    flush_waiters: Vec<(u64, oneshot::Sender<()>)>,
    close_waiters: Vec<oneshot::Sender<()>>,
    closing: bool,
    input_closed: bool,
    next_id_seen: u64,
    refresh_in_flight: bool,
    events_tx: mpsc::UnboundedSender<Event>,
    jitter_seed: u64,
    /// The last retriable error of each batch waiting for a retry, reported
    /// if the batch expires.
    last_errors: HashMap<u64, ProduceError>,
    counters: Arc<Counters>,
    /// Idempotent producer: an InitProducerId is on its way.
    init_in_flight: bool,
    /// Idempotent producer: when to ask for a producer id again.
    init_retry_at: Option<Instant>,
    init_backoff: Backoff,
    /// Idempotent producer: why the last InitProducerId failed.
    init_error: Option<Arc<ClientError>>,
}

pub(super) async fn run(
    cluster: Cluster,
    config: ProducerConfig,
    mut rx: mpsc::UnboundedReceiver<Command>,
    counters: Arc<Counters>,
) {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let config_backoff = (config.retry_backoff(), config.retry_backoff_max());
    let mut task = Task {
        acc: ProduceAccumulator::new(AccumulatorConfig {
            linger: config.linger(),
            batch_size: config.batch_size(),
            max_request_size: config.max_request_size(),
            compression: config.compression(),
            delivery_timeout: config.delivery_timeout(),
            no_leader_backoff: config.retry_backoff(),
        }),
        cluster,
        config,
        sticky: StickyPartitions::new(seed),
        waiting: HashMap::new(),
        incomplete: BTreeSet::new(),
        flush_waiters: Vec::new(),
        close_waiters: Vec::new(),
        closing: false,
        input_closed: false,
        next_id_seen: 0,
        refresh_in_flight: false,
        events_tx,
        jitter_seed: seed,
        last_errors: HashMap::new(),
        counters,
        init_in_flight: false,
        init_retry_at: None,
        init_backoff: Backoff::new(config_backoff.0, config_backoff.1),
        init_error: None,
    };
    loop {
        let wake = task.pump();
        if task.finished() {
            break;
        }
        tokio::select! {
            command = rx.recv(), if !task.input_closed => match command {
                Some(command) => {
                    task.on_command(command);
                    for _ in 0..COMMANDS_PER_TURN {
                        match rx.try_recv() {
                            Ok(command) => task.on_command(command),
                            Err(_) => break,
                        }
                    }
                }
                None => task.input_closed = true,
            },
            Some(event) = events_rx.recv() => {
                task.on_event(event);
                while let Ok(event) = events_rx.try_recv() {
                    task.on_event(event);
                }
            }
            _ = sleep_until(wake) => {}
        }
    }
    for waiter in task.close_waiters.drain(..) {
        let _ = waiter.send(());
    }
    for (_, waiter) in task.flush_waiters.drain(..) {
        let _ = waiter.send(());
    }
    // Records arriving after close are refused.
    rx.close();
    while let Ok(command) = rx.try_recv() {
        match command {
            Command::Record(p) => {
                let _ = p.tx.send(Err(ProduceError::Closed));
            }
            Command::Flush(tx) | Command::Close(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Task {
    fn finished(&self) -> bool {
        (self.closing || self.input_closed) && self.incomplete.is_empty()
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Record(pending) => {
                if self.closing {
                    let _ = pending.tx.send(Err(ProduceError::Closed));
                    return;
                }
                self.next_id_seen = self.next_id_seen.max(pending.id + 1);
                self.incomplete.insert(pending.id);
                self.handle_record(pending);
            }
            Command::Flush(tx) => {
                // Every record handed over before the flush was sent on the
                // same channel, so it has been seen by now.
                self.flush_waiters.push((self.next_id_seen, tx));
            }
            Command::Close(tx) => {
                self.closing = true;
                self.close_waiters.push(tx);
            }
        }
    }

    /// Partitions a record and appends it, or parks it until its topic is known.
    fn handle_record(&mut self, pending: Box<Pending>) {
        let topic = pending.record.topic.clone();
        if let Some(waiting) = self.waiting.get_mut(&topic) {
            waiting.records.push(pending);
            return;
        }
        let partitions = self.cluster.with_metadata(|m| {
            m.topic(&topic)
                .filter(|t| t.error_code == 0 || !t.partitions.is_empty())
                .map(|t| t.partitions.len() as i32)
                .filter(|n| *n > 0)
        });
        let Some(partitions) = partitions else {
            self.park(pending);
            return;
        };
        let chosen = match (pending.record.partition, &pending.record.key) {
            (Some(p), _) if (0..partitions).contains(&p) => Ok(p),
            (Some(p), _) => Err(ProduceError::InvalidPartition {
                topic: topic.clone(),
                partition: p,
                partitions,
            }),
            (None, Some(key)) => Ok(partition_for_key(key, partitions)),
            (None, None) => {
                let acc = &self.acc;
                Ok(self.sticky.partition(&topic, partitions, |p| {
                    acc.open_batch(&TopicPartition::new(topic.clone(), p))
                }))
            }
        };
        let Pending {
            id,
            record,
            tx,
            permit,
            ..
        } = *pending;
        let partition = match chosen {
            Ok(p) => p,
            Err(error) => {
                self.finish(id, tx, Err(error));
                return;
            }
        };
        let timestamp = record.timestamp.unwrap_or_else(wall_clock_ms);
        let headers: Vec<Header<'_>> = record
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k.as_bytes(),
                value: v.as_deref(),
            })
            .collect();
        let tp = TopicPartition::new(topic.clone(), partition);
        let completion = Completion {
            id,
            tx,
            _permit: permit,
        };
        let result = self.acc.append(
            &tp,
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
            completion,
            Instant::now().into_std(),
        );
        match result {
            Ok(appended) => {
                if record.key.is_none() && record.partition.is_none() {
                    self.sticky.record(&topic, partition, appended.batch_seq);
                }
            }
            Err((source, completion)) => {
                self.finish(
                    completion.id,
                    completion.tx,
                    Err(ProduceError::Encode { topic, source }),
                );
            }
        }
    }

    /// Parks a record of a topic the metadata does not know and starts a lookup.
    fn park(&mut self, pending: Box<Pending>) {
        let topic = pending.record.topic.clone();
        let backoff = Backoff::new(self.config.retry_backoff(), self.config.retry_backoff_max());
        let entry = self.waiting.entry(topic.clone()).or_insert(WaitingTopic {
            records: Vec::new(),
            lookup_in_flight: false,
            retry_at: None,
            backoff,
            last_error: None,
        });
        entry.records.push(pending);
        if !entry.lookup_in_flight && entry.retry_at.is_none() {
            entry.lookup_in_flight = true;
            self.spawn_lookup(topic);
        }
    }

    fn spawn_lookup(&self, topic: String) {
        let cluster = self.cluster.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let result = async {
                let known = cluster.with_metadata(|m| m.topic_state(&topic));
                if known != Some(TopicState::Known) {
                    // Ask the cluster again (a cached "unknown" is not final).
                    cluster.invalidate_metadata();
                }
                cluster.topic(&topic).await.map(|_| ())
            }
            .await;
            let _ = events.send(Event::TopicLookup { topic, result });
        });
    }

    fn spawn_refresh(&mut self, topics: Vec<String>) {
        if self.refresh_in_flight {
            return;
        }
        self.refresh_in_flight = true;
        let cluster = self.cluster.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(e) = cluster.refresh_metadata(&names).await {
                tracing::debug!(error = %e, "producer metadata refresh failed");
            }
            let _ = events.send(Event::Refreshed);
        });
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::TopicLookup { topic, result } => self.on_lookup(topic, result),
            Event::Refreshed => self.refresh_in_flight = false,
            Event::Identity(result) => self.on_identity(result),
            Event::Produced { batches, result } => self.on_produced(batches, result),
        }
    }

    fn spawn_init(&mut self) {
        self.init_in_flight = true;
        let cluster = self.cluster.clone();
        let events = self.events_tx.clone();
        let timeout = self.config.request_timeout();
        tokio::spawn(async move {
            let result = async {
                let conn = cluster.any_broker().await?;
                let (_, response) = conn
                    .send_with(timeout, |_| {
                        InitProducerIdRequest::default()
                            .with_transactional_id(None)
                            .with_transaction_timeout_ms(60_000)
                            .with_producer_id(ProducerId(-1))
                            .with_producer_epoch(-1)
                    })
                    .await?;
                if response.error_code != 0 {
                    return Err(ClientError::Broker {
                        broker: conn.broker().to_owned(),
                        api: ApiKey::InitProducerId,
                        code: ErrorCode(response.error_code),
                        topic: None,
                        partition: None,
                        message: None,
                    });
                }
                Ok(ProducerIdentity {
                    producer_id: response.producer_id.0,
                    producer_epoch: response.producer_epoch,
                })
            }
            .await;
            let _ = events.send(Event::Identity(result));
        });
    }

    fn on_identity(&mut self, result: Result<ProducerIdentity, ClientError>) {
        self.init_in_flight = false;
        match result {
            Ok(identity) => {
                tracing::debug!(
                    producer_id = identity.producer_id,
                    producer_epoch = identity.producer_epoch,
                    "producer: idempotent identity"
                );
                self.acc.set_identity(Some(identity));
                self.init_backoff.reset();
                self.init_error = None;
            }
            Err(e) => {
                let retriable = client_retriable(&e);
                tracing::debug!(error = %e, retriable, "producer: InitProducerId failed");
                let source = Arc::new(e);
                self.init_error = Some(source.clone());
                self.init_retry_at = Some(Instant::now() + self.init_backoff.next_delay());
                if !retriable {
                    // Not authorized for idempotent writes, ...: no record can
                    // be sent; fail what is queued now rather than at the
                    // delivery timeout.
                    for batch in self.acc.take_all() {
                        let tp = batch.topic_partition().clone();
                        let error = ProduceError::Client {
                            topic: tp.topic,
                            partition: Some(tp.partition),
                            source: source.clone(),
                        };
                        self.fail_records(batch, error);
                    }
                }
            }
        }
    }

    /// The idempotent producer's numbering has a gap (a batch that used
    /// sequence numbers failed for good) or the broker forgot the producer:
    /// stop stamping and take a new producer id before sending more.
    fn reset_identity(&mut self, why: &str) {
        if let Some(id) = self.acc.identity() {
            tracing::debug!(
                producer_id = id.producer_id,
                why,
                "producer: taking a new producer id"
            );
            self.acc.set_identity(None);
        }
    }

    /// Whether a batch carries the current identity's sequence numbers.
    fn stamped_now(&self, batch: &ProducerBatch<Completion>) -> bool {
        match (batch.stamp(), self.acc.identity()) {
            (Some(st), Some(id)) => {
                st.producer_id == id.producer_id && st.producer_epoch == id.producer_epoch
            }
            _ => false,
        }
    }

    fn on_lookup(&mut self, topic: String, result: Result<(), ClientError>) {
        let Some(mut waiting) = self.waiting.remove(&topic) else {
            return;
        };
        waiting.lookup_in_flight = false;
        match result {
            Ok(()) => {
                let ready = self
                    .cluster
                    .with_metadata(|m| m.topic(&topic).is_some_and(|t| !t.partitions.is_empty()));
                if ready {
                    for pending in waiting.records {
                        self.handle_record(pending);
                    }
                } else {
                    // Known but without partitions yet (being created): ask
                    // again after backoff.
                    waiting.retry_at = Some(Instant::now() + waiting.backoff.next_delay());
                    self.waiting.insert(topic, waiting);
                }
            }
            Err(e) if lookup_retriable(&e) => {
                tracing::debug!(topic, error = %e, "producer: topic not available yet");
                waiting.retry_at = Some(Instant::now() + waiting.backoff.next_delay());
                waiting.last_error = Some(Arc::new(e));
                self.waiting.insert(topic, waiting);
            }
            Err(e) => {
                let source = Arc::new(e);
                for pending in waiting.records {
                    let error = ProduceError::Client {
                        topic: topic.clone(),
                        partition: None,
                        source: source.clone(),
                    };
                    self.finish(pending.id, pending.tx, Err(error));
                }
            }
        }
    }

    fn on_produced(
        &mut self,
        batches: Vec<ProducerBatch<Completion>>,
        result: Result<(String, ProduceResponse), ClientError>,
    ) {
        let (broker, response) = match result {
            Ok(r) => r,
            Err(e) => {
                let retriable = client_retriable(&e);
                let source = Arc::new(e);
                if retriable {
                    let topics = batches
                        .iter()
                        .map(|b| b.topic_partition().topic.clone())
                        .collect();
                    self.spawn_refresh(topics);
                }
                for batch in batches {
                    self.last_errors.remove(&batch.seq());
                    let tp = batch.topic_partition().clone();
                    let error = ProduceError::Client {
                        topic: tp.topic.clone(),
                        partition: Some(tp.partition),
                        source: source.clone(),
                    };
                    if retriable {
                        self.retry(batch, error);
                    } else {
                        self.fail_batch(batch, error);
                    }
                }
                return;
            }
        };
        let mut refresh = Vec::new();
        for batch in batches {
            // An earlier attempt's error is superseded by this answer.
            self.last_errors.remove(&batch.seq());
            let tp = batch.topic_partition().clone();
            let answer = response
                .responses
                .iter()
                .filter(|t| t.name.0.as_str() == tp.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == tp.partition);
            let Some(answer) = answer else {
                let error = ProduceError::Client {
                    topic: tp.topic.clone(),
                    partition: Some(tp.partition),
                    source: Arc::new(ClientError::Protocol {
                        broker: broker.clone(),
                        api: ApiKey::Produce,
                        message: format!("no answer for {:?} partition {}", tp.topic, tp.partition),
                    }),
                };
                self.fail_batch(batch, error);
                continue;
            };
            let mut code = ErrorCode(answer.error_code);
            let idempotent = self.stamped_now(&batch);
            if idempotent && code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER {
                // The broker already has this batch (an earlier attempt was
                // written); it does not say where.
                code = ErrorCode::NONE;
            }
            if code.is_ok() {
                let base_offset = answer.base_offset;
                let append_time = answer.log_append_time_ms;
                self.acc.complete(&tp);
                for (i, record) in batch.into_records().into_iter().enumerate() {
                    let metadata = RecordMetadata {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset: if base_offset >= 0 {
                            base_offset + i as i64
                        } else {
                            -1
                        },
                        timestamp: if append_time >= 0 {
                            append_time
                        } else {
                            record.timestamp
                        },
                    };
                    self.finish(record.handle.id, record.handle.tx, Ok(metadata));
                }
                continue;
            }
            let mut message = answer
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            for e in &answer.record_errors {
                if !message.is_empty() {
                    message.push_str("; ");
                }
                message.push_str(&format!(
                    "record {}: {}",
                    e.batch_index,
                    e.batch_index_error_message
                        .as_ref()
                        .map_or("", |m| m.as_str())
                ));
            }
            let error = ProduceError::Broker {
                topic: tp.topic.clone(),
                partition: tp.partition,
                broker: broker.clone(),
                code,
                message: (!message.is_empty()).then_some(message),
            };
            let sequence_lost = code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
                || code == ErrorCode::UNKNOWN_PRODUCER_ID
                || code == ErrorCode::INVALID_PRODUCER_EPOCH;
            if sequence_lost && batch.stamp().is_some() {
                if idempotent {
                    self.reset_identity(code.name());
                }
                self.retry(batch, error);
                continue;
            }
            let too_large =
                code == ErrorCode::MESSAGE_TOO_LARGE || code == ErrorCode::RECORD_LIST_TOO_LARGE;
            if too_large && batch.records().len() > 1 {
                // Java's producer does the same: split and send the halves.
                tracing::debug!(topic = %tp.topic, partition = tp.partition,
                    records = batch.records().len(), "producer: splitting a batch the broker refused as too large");
                let now = Instant::now();
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                let delay = self.backoff_delay(0);
                match self.acc.split(batch, (now + delay).into_std()) {
                    Ok(()) => {}
                    Err(batch) => self.fail_batch(*batch, error),
                }
                continue;
            }
            if code.is_retriable() {
                if self.cluster.note_error(code) {
                    refresh.push(tp.topic.clone());
                }
                self.retry(batch, error);
            } else {
                self.fail_batch(batch, error);
            }
        }
        if !refresh.is_empty() {
            refresh.sort();
            refresh.dedup();
            self.spawn_refresh(refresh);
        }
    }

    /// Puts a batch back for another attempt after backoff; the accumulator
    /// expires it once `delivery.timeout.ms` has passed since its creation.
    fn retry(&mut self, batch: ProducerBatch<Completion>, error: ProduceError) {
        let now = Instant::now();
        let deadline = Instant::from_std(batch.created_at()) + self.config.delivery_timeout();
        if now >= deadline {
            self.acc.complete(batch.topic_partition());
            let timeout = self.delivery_timeout_error(&batch, Some(error));
            self.fail_records(batch, timeout);
            return;
        }
        tracing::debug!(topic = %batch.topic_partition().topic,
            partition = batch.topic_partition().partition, attempts = batch.attempts(),
            %error, "producer: retrying batch");
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        let delay = self.backoff_delay(batch.attempts());
        self.last_errors.insert(batch.seq(), error);
        self.acc.retry(batch, (now + delay).into_std());
    }

    fn backoff_delay(&mut self, attempts: u32) -> Duration {
        self.jitter_seed = self
            .jitter_seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let mut backoff = Backoff::with_seed(
            self.config.retry_backoff(),
            self.config.retry_backoff_max(),
            self.jitter_seed,
        );
        for _ in 0..attempts.min(32) {
            backoff.next_delay();
        }
        backoff.next_delay()
    }

    fn fail_batch(&mut self, batch: ProducerBatch<Completion>, error: ProduceError) {
        self.acc.complete(batch.topic_partition());
        self.fail_records(batch, error);
    }

    fn fail_records(&mut self, batch: ProducerBatch<Completion>, error: ProduceError) {
        self.last_errors.remove(&batch.seq());
        if self.stamped_now(&batch) {
            // Its sequence numbers were handed out but will never be written.
            self.reset_identity("a numbered batch failed for good");
        }
        for record in batch.into_records() {
            self.finish(record.handle.id, record.handle.tx, Err(error.clone()));
        }
    }

    fn delivery_timeout_error(
        &mut self,
        batch: &ProducerBatch<Completion>,
        last: Option<ProduceError>,
    ) -> ProduceError {
        let last = last
            .or_else(|| self.last_errors.remove(&batch.seq()))
            .or_else(|| {
                self.init_error.as_ref().map(|source| ProduceError::Client {
                    topic: batch.topic_partition().topic.clone(),
                    partition: Some(batch.topic_partition().partition),
                    source: source.clone(),
                })
            });
        ProduceError::DeliveryTimeout {
            topic: batch.topic_partition().topic.clone(),
            partition: Some(batch.topic_partition().partition),
            timeout: self.config.delivery_timeout(),
            last: last.map(Box::new),
        }
    }

    fn finish(
        &mut self,
        id: u64,
        tx: oneshot::Sender<Result<RecordMetadata, ProduceError>>,
        result: Result<RecordMetadata, ProduceError>,
    ) {
        self.incomplete.remove(&id);
        let counter = match &result {
            Ok(_) => &self.counters.records_acked,
            Err(_) => &self.counters.records_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // The caller may have dropped its future: the record was still delivered.
        let _ = tx.send(result);
    }

    /// Expires, drains and sends; answers flush and close waiters. Returns
    /// when the loop must wake up next.
    fn pump(&mut self) -> Option<Instant> {
        let now = Instant::now();
        // Waiting topics: expire records past their deadline, retry lookups.
        let delivery_timeout = self.config.delivery_timeout();
        let mut wake: Option<Instant> = None;
        let consider = |wake: &mut Option<Instant>, at: Instant| {
            *wake = Some(wake.map_or(at, |w| w.min(at)));
        };
        let topics: Vec<String> = self.waiting.keys().cloned().collect();
        for topic in topics {
            let Some(mut waiting) = self.waiting.remove(&topic) else {
                continue;
            };
            let (expired, kept): (Vec<_>, Vec<_>) = waiting
                .records
                .into_iter()
                .partition(|p| p.enqueued_at + delivery_timeout <= now);
            waiting.records = kept;
            for pending in expired {
                let waited = now.saturating_duration_since(pending.enqueued_at);
                let error = match &waiting.last_error {
                    Some(e) if e.code() == Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => {
                        ProduceError::UnknownTopic {
                            topic: topic.clone(),
                            waited,
                        }
                    }
                    last => ProduceError::DeliveryTimeout {
                        topic: topic.clone(),
                        partition: None,
                        timeout: delivery_timeout,
                        last: last.as_ref().map(|source| {
                            Box::new(ProduceError::Client {
                                topic: topic.clone(),
                                partition: None,
                                source: source.clone(),
                            })
                        }),
                    },
                };
                self.finish(pending.id, pending.tx, Err(error));
            }
            if waiting.records.is_empty() && !waiting.lookup_in_flight {
                continue;
            }
            if let Some(at) = waiting.retry_at {
                if at <= now && !waiting.lookup_in_flight {
                    waiting.retry_at = None;
                    waiting.lookup_in_flight = true;
                    self.spawn_lookup(topic.clone());
                } else {
                    consider(&mut wake, at);
                }
            }
            for p in &waiting.records {
                consider(&mut wake, p.enqueued_at + delivery_timeout);
            }
            self.waiting.insert(topic, waiting);
        }

        // Queued batches past the delivery timeout.
        for batch in self.acc.expire(now.into_std()) {
            let error = self.delivery_timeout_error(&batch, None);
            self.fail_records(batch, error);
        }

        // Flush waiters whose records all have their result.
        let oldest = self.incomplete.first().copied();
        let (done, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flush_waiters)
            .into_iter()
            .partition(|(upto, _)| oldest.is_none_or(|o| o >= *upto));
        self.flush_waiters = pending;
        for (_, waiter) in done {
            let _ = waiter.send(());
        }
        self.acc
            .set_flushing(!self.flush_waiters.is_empty() || self.closing || self.input_closed);

        // Drain ready batches, one request per leader.
        // The idempotent producer sends nothing until it has a producer id.
        if self.config.idempotence() && self.acc.identity().is_none() {
            if !self.init_in_flight {
                match self.init_retry_at {
                    Some(at) if at > now => consider(&mut wake, at),
                    _ if self.acc.is_empty() => {}
                    _ => {
                        self.init_retry_at = None;
                        self.spawn_init();
                    }
                }
            }
            if let Some(at) = self.acc.next_expiry() {
                consider(&mut wake, Instant::from_std(at));
            }
            return wake;
        }

        // The metadata lock is taken per ready partition, not around the
        // drain: encoding (and compressing) a batch happens outside it.
        let (acc, cluster) = (&mut self.acc, &self.cluster);
        let drained = acc.drain(now.into_std(), |tp| {
            cluster.with_metadata(|m| {
                m.topic(&tp.topic)
                    .and_then(|t| t.partitions.get(&tp.partition))
                    .and_then(|p| p.leader())
            })
        });
        for (batch, source) in drained.failed {
            let topic = batch.topic_partition().topic.clone();
            self.fail_records(batch, ProduceError::Encode { topic, source });
        }
        if !drained.no_leader.is_empty() {
            let mut topics: Vec<String> = drained
                .no_leader
                .iter()
                .map(|tp| tp.topic.clone())
                .collect();
            topics.dedup();
            self.cluster.invalidate_metadata();
            self.spawn_refresh(topics);
        }
        for (node, batches) in drained.by_node {
            self.spawn_produce(node, batches);
        }
        if let Some(at) = self.acc.next_wakeup() {
            consider(&mut wake, Instant::from_std(at));
        }
        wake
    }

    fn spawn_produce(&self, node: i32, batches: Vec<ProducerBatch<Completion>>) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .batches
            .fetch_add(batches.len() as u64, Ordering::Relaxed);
        let cluster = self.cluster.clone();
        let events = self.events_tx.clone();
        let acks = self.config.acks().wire();
        let timeout = self.config.request_timeout();
        let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let request = produce_request(&batches, acks, timeout_ms);
        tokio::spawn(async move {
            let result = async {
                let conn = cluster.broker(node).await?;
                let version = conn.version(ApiKey::Produce)?;
                let response = conn.start(&request, version)?.wait(timeout).await?;
                Ok((conn.broker().to_owned(), response))
            }
            .await;
            let _ = events.send(Event::Produced { batches, result });
        });
    }
}

/// One Produce request carrying one batch per partition.
fn produce_request<T>(batches: &[ProducerBatch<T>], acks: i16, timeout_ms: i32) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for batch in batches {
        let tp = batch.topic_partition();
        let records: Option<Bytes> = batch.encoded().cloned();
        let data = PartitionProduceData::default()
            .with_index(tp.partition)
            .with_records(records);
        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topics)
}

/// Whether a failed request (no answer per partition) is worth sending again.
fn client_retriable(e: &ClientError) -> bool {
    e.is_retriable() || matches!(e, ClientError::UnknownBroker { .. })
}

/// Whether a failed topic lookup is worth repeating.
fn lookup_retriable(e: &ClientError) -> bool {
    client_retriable(e)
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
}
