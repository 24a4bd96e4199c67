//! The fetch loop: one tokio task that keeps one Fetch in flight per leader.
//!
//! The task plans with [`Cursors`] (shared with the [`Fetcher`] handle under a
//! mutex, so assignment, revocation and pause take effect at once), sends one
//! Fetch per leader, applies each answer and hands the decoded partitions to
//! the caller through a bounded queue. A cursor advances when the answer is
//! applied, so the next request for that leader goes out while the caller is
//! still working on the previous data: one response decoded and ready, the
//! next in flight.
//!
//! Memory is bounded by [`FetchConfig::max_buffered_bytes`]: every handed-out
//! partition holds a semaphore permit for its wire bytes until the caller
//! drops it, and the loop waits for permits before handing out more (one
//! response per leader may sit decoded meanwhile).

use std::collections::{BTreeMap, HashSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafee_protocol::fetch_response::{decode_fetch_response, FetchResponseView};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::FetchConfig;
use super::cursor::{
    Applied, Cursors, FetchedPartition, PartitionAnswer, PartitionError, PlannedPartition,
    Position, ResetTo,
};
use crate::admin::{Admin, OffsetSpec, TopicPartition};
use crate::cluster::Cluster;
use crate::error::ClientError;

/// What the fetch loop hands out.
#[derive(Debug)]
pub enum FetchEvent {
    /// Records of one partition.
    Records(Fetched),
    /// A partition failed (it waits for a seek); other partitions go on.
    PartitionError(PartitionError),
}

/// A fetched partition plus its share of the buffer budget; the budget is
/// released when this is dropped.
#[derive(Debug)]
pub struct Fetched {
    partition: FetchedPartition,
    _permit: OwnedSemaphorePermit,
}

impl Deref for Fetched {
    type Target = FetchedPartition;
    fn deref(&self) -> &FetchedPartition {
        &self.partition
    }
}

struct Shared {
    cursors: Mutex<Cursors>,
    wake: Notify,
}

impl Shared {
    fn cursors(&self) -> MutexGuard<'_, Cursors> {
        // Critical sections are plain field updates: a poisoned lock still
        // holds consistent state.
        self.cursors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Handle on the fetch loop. Dropping it stops the loop.
#[derive(Debug)]
pub struct Fetcher {
    shared: Arc<Shared>,
    events: mpsc::Receiver<FetchEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fetcher {
    /// Starts the fetch loop on `cluster` with no partitions assigned.
    pub fn start(cluster: Cluster, config: FetchConfig) -> Fetcher {
        let budget = Arc::new(Semaphore::new(config.max_buffered_bytes.max(1)));
        let shared = Arc::new(Shared {
            cursors: Mutex::new(Cursors::new(config.clone())),
            wake: Notify::new(),
        });
        let (tx, events) = mpsc::channel(256);
        let task = tokio::spawn(
            Loop {
                admin: Admin::new(cluster.clone()),
                cluster,
                config,
                shared: shared.clone(),
                budget,
                tx,
                in_flight: JoinSet::new(),
                busy: HashSet::new(),
                stale: false,
                rotation: 0,
            }
            .run(),
        );
        Fetcher {
            shared,
            events,
            task,
        }
    }

    /// A cloneable handle that assigns, revokes, seeks and pauses.
    pub fn control(&self) -> FetchControl {
        FetchControl {
            shared: self.shared.clone(),
        }
    }

    /// Starts fetching `tp` at `position`; returns its assignment epoch.
    pub fn assign(&self, tp: TopicPartition, position: Position) -> u64 {
        let epoch = self.shared.cursors().assign(tp, position);
        self.shared.wake.notify_one();
        epoch
    }

    /// Moves `tp` to `position`; data fetched before is stale from now on.
    pub fn seek(&self, tp: &TopicPartition, position: Position) -> Option<u64> {
        let epoch = self.shared.cursors().seek(tp, position);
        self.shared.wake.notify_one();
        epoch
    }

    /// Stops fetching `tp`. From the moment this returns, no data of `tp`
    /// fetched before passes [`Fetcher::is_current`].
    pub fn revoke(&self, tp: &TopicPartition) -> bool {
        self.shared.cursors().revoke(tp)
    }

    /// Pauses (`true`) or resumes fetching `tp`.
    pub fn set_paused(&self, tp: &TopicPartition, paused: bool) {
        self.shared.cursors().set_paused(tp, paused);
        if !paused {
            self.shared.wake.notify_one();
        }
    }

    /// Whether `fetched` belongs to the current assignment of its partition
    /// (not revoked, re-assigned or sought since it was fetched).
    pub fn is_current(&self, fetched: &FetchedPartition) -> bool {
        self.shared.cursors().epoch(&fetched.tp) == Some(fetched.epoch)
    }

    /// The current position of `tp`.
    pub fn position(&self, tp: &TopicPartition) -> Option<Position> {
        self.shared.cursors().position(tp)
    }

    /// The next event: records or a partition error. Records whose
    /// partition was revoked or sought since they were fetched are dropped
    /// here. `None` when the loop stopped.
    pub async fn next(&mut self) -> Option<FetchEvent> {
        loop {
            let event = self.events.recv().await?;
            match &event {
                FetchEvent::Records(f) if !self.is_current(f) => continue,
                _ => return Some(event),
            }
        }
    }

    /// Like [`Fetcher::next`], without waiting.
    pub fn try_next(&mut self) -> Option<FetchEvent> {
        loop {
            let event = self.events.try_recv().ok()?;
            match &event {
                FetchEvent::Records(f) if !self.is_current(f) => continue,
                _ => return Some(event),
            }
        }
    }
}

/// Controls a [`Fetcher`] from another task (the group driver).
#[derive(Debug, Clone)]
pub struct FetchControl {
    shared: Arc<Shared>,
}

impl FetchControl {
    /// See [`Fetcher::assign`].
    pub fn assign(&self, tp: TopicPartition, position: Position) -> u64 {
        let epoch = self.shared.cursors().assign(tp, position);
        self.shared.wake.notify_one();
        epoch
    }

    /// See [`Fetcher::revoke`].
    pub fn revoke(&self, tp: &TopicPartition) -> bool {
        self.shared.cursors().revoke(tp)
    }
}

enum Done {
    Fetch {
        node: i32,
        planned: Vec<PlannedPartition>,
        result: Result<FetchResponseView, ClientError>,
    },
    Reset {
        tp: TopicPartition,
        epoch: u64,
        result: Result<i64, ClientError>,
    },
    Metadata,
}

struct Loop {
    cluster: Cluster,
    admin: Admin,
    config: FetchConfig,
    shared: Arc<Shared>,
    budget: Arc<Semaphore>,
    tx: mpsc::Sender<FetchEvent>,
    in_flight: JoinSet<Done>,
    busy: HashSet<i32>,
    /// A fetch said the cached leaders are wrong: refresh before planning.
    stale: bool,
    /// Rotates the partition order of successive requests.
    rotation: usize,
}

/// Longest the loop sleeps with nothing to do before planning again.
const IDLE_TICK: Duration = Duration::from_millis(250);

impl Loop {
    async fn run(mut self) {
        let mut refreshing = false;
        loop {
            let now = Instant::now();
            let plan = {
                let cluster = &self.cluster;
                let busy = &self.busy;
                let mut cursors = self.shared.cursors();
                cluster.with_metadata(|meta| {
                    cursors.plan(
                        now.into_std(),
                        |tp| meta.leader(&tp.topic, tp.partition),
                        |node| busy.contains(&node),
                    )
                })
            };
            // Refresh when a leader is unknown, or when a fetch said the
            // cached leader is wrong (moved, fenced epoch, broker gone):
            // marking the cache stale is not enough, the plan reads it
            // directly (regression test `broker_restart_mid_consume_loses_nothing`).
            if (!plan.missing_leader.is_empty() || self.stale) && !refreshing {
                refreshing = true;
                self.stale = false;
                let cluster = self.cluster.clone();
                let mut topics: std::collections::BTreeSet<String> = plan
                    .missing_leader
                    .iter()
                    .map(|tp| tp.topic.clone())
                    .collect();
                topics.extend(self.shared.cursors().assigned().map(|tp| tp.topic.clone()));
                let topics: Vec<String> = topics.into_iter().collect();
                let backoff = self.config.retry_backoff;
                self.in_flight.spawn(async move {
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    let settled = match cluster.refresh_metadata(&names).await {
                        Ok(()) => cluster.with_metadata(|m| {
                            names
                                .iter()
                                .all(|t| m.topic(t).is_some_and(|info| info.is_ready()))
                        }),
                        Err(e) => {
                            tracing::warn!(error = %e, "metadata refresh for fetch failed");
                            false
                        }
                    };
                    // Back off only when the refresh did not give every
                    // leader (no refresh storm; no stall at start-up).
                    if !settled {
                        tokio::time::sleep(backoff).await;
                    }
                    Done::Metadata
                });
            }
            for (tp, to, epoch) in plan.resets {
                self.shared.cursors().reset_started(&tp, epoch);
                let admin = self.admin.clone();
                let isolation = self.config.isolation;
                self.in_flight.spawn(async move {
                    let spec = match to {
                        ResetTo::Earliest => OffsetSpec::Earliest,
                        ResetTo::Latest => OffsetSpec::Latest,
                    };
                    let result = match admin
                        .list_offsets(std::slice::from_ref(&tp), spec, isolation)
                        .await
                    {
                        Ok(mut listed) => match listed.pop() {
                            Some(l) => l.result.map(|o| o.offset),
                            None => Err(ClientError::Protocol {
                                broker: String::from("(leader)"),
                                api: kafka_protocol::messages::ApiKey::ListOffsets,
                                message: format!("no answer for {}/{}", tp.topic, tp.partition),
                            }),
                        },
                        Err(e) => Err(e),
                    };
                    Done::Reset { tp, epoch, result }
                });
            }
            for (node, mut planned) in plan.by_leader {
                self.busy.insert(node);
                // Rotate the partition order from request to request so that
                // with a small fetch.max.bytes no partition waits for the
                // others to drain (the broker fills partitions in order).
                if !planned.is_empty() {
                    let n = self.rotation % planned.len();
                    planned.rotate_left(n);
                    self.rotation = self.rotation.wrapping_add(1);
                }
                let cluster = self.cluster.clone();
                let config = self.config.clone();
                self.in_flight.spawn(async move {
                    let result = fetch(&cluster, node, &planned, &config).await;
                    Done::Fetch {
                        node,
                        planned,
                        result,
                    }
                });
            }

            let wakeup = self
                .shared
                .cursors()
                .next_wakeup()
                .map(Instant::from_std)
                .unwrap_or(now + IDLE_TICK)
                .min(now + IDLE_TICK);
            tokio::select! {
                done = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    let done = match done {
                        Some(Ok(Done::Metadata)) => {
                            refreshing = false;
                            continue;
                        }
                        Some(Ok(done)) => done,
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "fetch task failed");
                            continue;
                        }
                        None => continue,
                    };
                    if self.handle(done).await.is_err() {
                        return; // the handle was dropped
                    }
                }
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep_until(wakeup) => {}
            }
        }
    }

    async fn handle(&mut self, done: Done) -> Result<(), ()> {
        let now = Instant::now().into_std();
        match done {
            Done::Metadata => {}
            Done::Reset { tp, epoch, result } => match result {
                Ok(offset) => {
                    tracing::info!(topic = %tp.topic, partition = tp.partition, offset, "offset reset");
                    self.shared.cursors().reset_done(&tp, epoch, offset);
                }
                Err(e) => {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "offset lookup failed");
                    self.shared.cursors().reset_failed(&tp, epoch, now);
                }
            },
            Done::Fetch {
                node,
                planned,
                result,
            } => {
                self.busy.remove(&node);
                let response = match result {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(node, error = %e, "fetch failed");
                        self.cluster.invalidate_metadata();
                        self.stale = true;
                        let mut cursors = self.shared.cursors();
                        for p in &planned {
                            cursors.request_failed(p, now);
                        }
                        return Ok(());
                    }
                };
                let mut answers = answers_by_partition(response);
                let mut out = Vec::new();
                {
                    let mut cursors = self.shared.cursors();
                    for p in &planned {
                        let answer = answers
                            .remove(&(p.tp.topic.as_str().to_owned(), p.tp.partition))
                            .unwrap_or_default();
                        match cursors.apply(p, answer, now) {
                            Applied::Data(f) => out.push(Ok(f)),
                            Applied::Nothing => {}
                            Applied::RefreshMetadata => {
                                self.cluster.invalidate_metadata();
                                self.stale = true;
                            }
                            Applied::Reset { tp, offset, to } => tracing::warn!(
                                topic = %tp.topic, partition = tp.partition, offset, ?to,
                                "fetch offset out of range: resetting (records may be lost)"
                            ),
                            Applied::Error(e) => out.push(Err(e)),
                        }
                    }
                }
                for f in out {
                    let event = match f {
                        Ok(partition) => {
                            let want = u32::try_from(
                                partition
                                    .wire_bytes
                                    .min(self.config.max_buffered_bytes)
                                    .max(1),
                            )
                            .unwrap_or(u32::MAX);
                            let Ok(permit) = self.budget.clone().acquire_many_owned(want).await
                            else {
                                return Err(());
                            };
                            FetchEvent::Records(Fetched {
                                partition,
                                _permit: permit,
                            })
                        }
                        Err(e) => FetchEvent::PartitionError(e),
                    };
                    self.tx.send(event).await.map_err(|_| ())?;
                }
            }
        }
        Ok(())
    }
}

fn answers_by_partition(response: FetchResponseView) -> BTreeMap<(String, i32), PartitionAnswer> {
    let mut map = BTreeMap::new();
    for topic in response.topics {
        let name = topic.name;
        for p in topic.partitions {
            let aborted = p.aborted_transactions.unwrap_or_default();
            map.insert(
                (name.clone(), p.partition_index),
                PartitionAnswer {
                    error_code: if response.error_code != 0 {
                        response.error_code
                    } else {
                        p.error_code
                    },
                    high_watermark: p.high_watermark,
                    last_stable_offset: p.last_stable_offset,
                    aborted_transactions: aborted,
                    records: p.records,
                },
            );
        }
    }
    map
}

async fn fetch(
    cluster: &Cluster,
    node: i32,
    planned: &[PlannedPartition],
    config: &FetchConfig,
) -> Result<FetchResponseView, ClientError> {
    let conn = cluster.broker(node).await?;
    let version = conn.version(kafka_protocol::messages::ApiKey::Fetch)?;
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for p in planned {
        topics.entry(p.tp.topic.as_str()).or_default().push(
            FetchPartition::default()
                .with_partition(p.tp.partition)
                .with_current_leader_epoch(if version >= 9 { p.leader_epoch } else { -1 })
                .with_fetch_offset(p.fetch_offset)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(config.max_partition_bytes),
        );
    }
    let request = FetchRequest::default()
        .with_max_wait_ms(i32::try_from(config.max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.max_bytes)
        .with_isolation_level(config.isolation.wire())
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name.to_owned())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    // The broker may hold the request for max_wait: allow for it.
    let timeout = cluster.config().request_timeout() + config.max_wait;
    // Decoded by kafee's bounded decoder: no allocation from a count the
    // body cannot hold, record sets stay slices of the frame.
    let body = conn.start(&request, version)?.wait_body(timeout).await?;
    decode_fetch_response(version, body).map_err(|source| ClientError::Decode {
        broker: conn.broker().to_owned(),
        source,
    })
}
