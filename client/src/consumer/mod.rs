//! A group consumer: [`GroupMember`] driven by a tokio task, the fetch loop,
//! and offset commits, behind one event stream.
//!
//! [`GroupConsumer::next`] yields, in this priority: membership events
//! ([`ConsumerEvent::Revoked`], [`ConsumerEvent::Lost`],
//! [`ConsumerEvent::Assigned`]), then fetched records. Commits go through a
//! [`Committer`] (cloneable), which the driver serialises: at most one
//! OffsetCommit in flight, never cancelled, only for partitions owned in the
//! current generation.
//!
//! Revocation: the driver stops fetching the revoked partitions *before*
//! the [`Revocation`] is handed out (so no record of them passes
//! [`GroupConsumer::next`] afterwards), heartbeats go on while the caller
//! finishes its work and commits, and the member rejoins only after the
//! caller calls [`Revocation::done`] (or drops it).

mod wire;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use kafee_protocol::error::ErrorCode;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub use wire::{CommittedOffset, OffsetToCommit};

use crate::admin::TopicPartition;
use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::fetch::{
    FetchConfig, FetchEvent, Fetched, Fetcher, OffsetReset, PartitionError, Position, ResetTo,
};
use crate::group::{
    Action, CommitOutcome, CommitRefused, Coordinator, GroupConfig, GroupMember, MemberState,
    RequestFailure, RequestId,
};

/// Settings of a [`GroupConsumer`].
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Group membership (group id, topics, timeouts, assignors).
    pub group: GroupConfig,
    /// Fetching (sizes, waits, isolation, offset reset).
    pub fetch: FetchConfig,
    /// How many times a commit is retried (coordinator moved, timeouts)
    /// before [`CommitError::GaveUp`] (default 10).
    pub commit_retries: u32,
}

impl ConsumerConfig {
    /// Group settings with default fetch settings.
    pub fn new(group: GroupConfig) -> Self {
        ConsumerConfig {
            group,
            fetch: FetchConfig::default(),
            commit_retries: 10,
        }
    }
}

/// A partition assigned in this generation, with what the group committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// The committed offset and metadata, if the group has one.
    pub committed: Option<CommittedOffset>,
}

/// What [`GroupConsumer::next`] yields.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConsumerEvent {
    /// Partitions now owned; fetching started at their committed offsets
    /// (or per `auto.offset.reset`).
    Assigned {
        /// The group generation.
        generation_id: i32,
        /// The partitions.
        partitions: Vec<AssignedPartition>,
    },
    /// Partitions being revoked: finish or abandon their work, commit, then
    /// call [`Revocation::done`]. Commits are accepted until then.
    Revoked(Revocation),
    /// The membership was lost: these partitions are no longer ours and must
    /// not be committed. Drop their uncommitted work.
    Lost(Vec<TopicPartition>),
    /// Records of one partition.
    Records(Fetched),
    /// One partition failed (others go on).
    PartitionError(PartitionError),
    /// The consumer stopped: left the group, or a fatal error.
    Stopped(Option<ClientError>),
}

/// A revocation in progress; see [`ConsumerEvent::Revoked`].
#[derive(Debug)]
pub struct Revocation {
    /// The partitions revoked.
    pub partitions: Vec<TopicPartition>,
    /// The generation they were owned in.
    pub generation_id: i32,
    done: Option<mpsc::UnboundedSender<Command>>,
}

impl Revocation {
    /// The caller finished with the revoked partitions; the member rejoins.
    pub fn done(mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(Command::RevokeDone);
        }
    }
}

impl Drop for Revocation {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(Command::RevokeDone);
        }
    }
}

/// Why a commit did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The member is between JoinGroup and SyncGroup, or not in a group.
    #[error("group {group_id}: no commit allowed now ({reason})")]
    NotAllowed {
        /// The group.
        group_id: String,
        /// The member state.
        reason: String,
    },
    /// The group is rebalancing: commit again from the revocation.
    #[error("group {group_id}: rebalance in progress")]
    Rebalancing {
        /// The group.
        group_id: String,
    },
    /// The partitions were lost (generation or member id no longer valid).
    #[error("group {group_id}: membership lost, offsets not committed")]
    MembershipLost {
        /// The group.
        group_id: String,
    },
    /// The broker refused a partition's offset.
    #[error("group {group_id}: commit of {topic}/{partition} failed: {code}")]
    Partition {
        /// The group.
        group_id: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The broker's error.
        code: ErrorCode,
    },
    /// Retried too often (coordinator unavailable, timeouts); the outcome
    /// of the last attempt is unknown.
    #[error("group {group_id}: commit gave up after {attempts} attempts")]
    GaveUp {
        /// The group.
        group_id: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The consumer stopped.
    #[error("the consumer stopped")]
    Stopped,
}

/// Sends commits through the consumer's driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::UnboundedSender<Command>,
}

impl Committer {
    /// Commits `offsets` (only those of partitions owned in the current
    /// generation are sent; others are dropped, P3). Waits for the broker's
    /// answer. An empty list returns at once.
    pub async fn commit(&self, offsets: Vec<OffsetToCommit>) -> Result<(), CommitError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Commit { offsets, reply })
            .map_err(|_| CommitError::Stopped)?;
        rx.await.map_err(|_| CommitError::Stopped)?
    }
}

enum Command {
    Commit {
        offsets: Vec<OffsetToCommit>,
        reply: oneshot::Sender<Result<(), CommitError>>,
    },
    RevokeDone,
    Leave,
}

/// A consumer in a group: membership, fetching and commits.
#[derive(Debug)]
pub struct GroupConsumer {
    fetcher: Fetcher,
    events: mpsc::UnboundedReceiver<ConsumerEvent>,
    commands: mpsc::UnboundedSender<Command>,
    group_id: String,
    stopped: bool,
}

impl GroupConsumer {
    /// Starts the membership driver and the fetch loop. Returns at once;
    /// the first [`ConsumerEvent::Assigned`] follows the first rebalance.
    pub fn start(cluster: Cluster, config: ConsumerConfig) -> GroupConsumer {
        let fetcher = Fetcher::start(cluster.clone(), config.fetch.clone());
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let group_id = config.group.group_id().to_owned();
        let driver = Driver {
            member: GroupMember::new(config.group.clone()),
            link: CoordinatorLink {
                cluster: cluster.clone(),
                slot: Default::default(),
            },
            cluster,
            fetch: fetcher.control(),
            offset_reset: config.fetch.offset_reset,
            commit_retries: config.commit_retries,
            events: events_tx,
            commands_tx: commands.downgrade(),
            handles_gone: false,
            replies_tx: None,
            commits: VecDeque::new(),
            commit_in_flight: None,
            leaving: false,
        };
        tokio::spawn(driver.run(commands_rx));
        GroupConsumer {
            fetcher,
            events,
            commands,
            group_id,
            stopped: false,
        }
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// A handle to commit offsets.
    pub fn committer(&self) -> Committer {
        Committer {
            tx: self.commands.clone(),
        }
    }

    /// Stops fetching `tp` until [`GroupConsumer::resume`] (back-pressure;
    /// heartbeats go on).
    pub fn pause(&self, tp: &TopicPartition) {
        self.fetcher.set_paused(tp, true);
    }

    /// Resumes fetching `tp`.
    pub fn resume(&self, tp: &TopicPartition) {
        self.fetcher.set_paused(tp, false);
    }

    /// Moves `tp` to `offset`: records fetched before are dropped, the next
    /// records start there (retrying a batch seeks back to its first offset).
    pub fn seek(&self, tp: &TopicPartition, offset: i64) -> bool {
        self.fetcher.seek(tp, Position::Offset(offset)).is_some()
    }

    /// The next event; membership events come before records.
    pub async fn next(&mut self) -> ConsumerEvent {
        if self.stopped {
            return ConsumerEvent::Stopped(None);
        }
        let event = tokio::select! {
            biased;
            event = self.events.recv() => event,
            fetched = self.fetcher.next() => match fetched {
                Some(FetchEvent::Records(f)) => Some(ConsumerEvent::Records(f)),
                Some(FetchEvent::PartitionError(e)) => Some(ConsumerEvent::PartitionError(e)),
                None => None,
            },
        };
        let event = event.unwrap_or(ConsumerEvent::Stopped(None));
        if matches!(event, ConsumerEvent::Stopped(_)) {
            self.stopped = true;
        }
        event
    }

    /// Whether `fetched` is still current (its partition not revoked or
    /// sought since); the batch layer checks before handling buffered data.
    pub fn is_current(&self, fetched: &Fetched) -> bool {
        self.fetcher.is_current(fetched)
    }

    /// Leaves the group: revokes what is owned (a [`ConsumerEvent::Revoked`]
    /// follows; commit, then call [`Revocation::done`]), sends LeaveGroup
    /// (dynamic members), then [`ConsumerEvent::Stopped`].
    pub fn leave(&self) {
        let _ = self.commands.send(Command::Leave);
    }
}

/// The member's own connection to its coordinator.
///
/// Kafka answers the requests of one connection in order, one at a time, and
/// parks JoinGroup/SyncGroup until the rebalance completes and Fetch for
/// `fetch.max.wait`. Group requests therefore never share a connection with
/// fetches or with another member (a heartbeat queued behind another
/// member's parked JoinGroup would miss the rebalance: regression test
/// `two_members_split_the_partitions_and_a_leaver_hands_them_over`). Java
/// does the same with a dedicated coordinator node id.
#[derive(Clone)]
struct CoordinatorLink {
    cluster: Cluster,
    slot: std::sync::Arc<tokio::sync::Mutex<Option<(i32, crate::conn::Connection)>>>,
}

impl CoordinatorLink {
    async fn connection(&self, node: Option<i32>) -> Result<crate::conn::Connection, ClientError> {
        let node = node.ok_or(ClientError::UnknownBroker { node_id: -1 })?;
        let mut slot = self.slot.lock().await;
        if let Some((n, conn)) = slot.as_ref() {
            if *n == node && !conn.is_dead() {
                return Ok(conn.clone());
            }
        }
        let addr = match self
            .cluster
            .with_metadata(|m| m.broker(node).map(|b| b.addr()))
        {
            Some(addr) => addr,
            None => {
                self.cluster.refresh_metadata(&[]).await?;
                self.cluster
                    .with_metadata(|m| m.broker(node).map(|b| b.addr()))
                    .ok_or(ClientError::UnknownBroker { node_id: node })?
            }
        };
        let settings = crate::conn::ConnSettings::from(self.cluster.config());
        let conn = crate::conn::Connection::connect(&addr, &settings).await?;
        *slot = Some((node, conn.clone()));
        Ok(conn)
    }
}

#[derive(Debug)]
enum Reply {
    Coordinator(RequestId, Result<Coordinator, ErrorCode>),
    Failed(RequestId, RequestFailure, String),
    Join(RequestId, crate::group::JoinGroupResponse),
    Sync(RequestId, crate::group::SyncGroupResponse),
    Heartbeat(RequestId, ErrorCode),
    Leave(RequestId, ErrorCode),
    Counts(BTreeMap<String, i32>),
    Offsets {
        generation_id: i32,
        partitions: Vec<TopicPartition>,
        result: Result<BTreeMap<TopicPartition, CommittedOffset>, String>,
    },
    Commit {
        request_id: RequestId,
        result: Result<Vec<(TopicPartition, ErrorCode)>, (RequestFailure, String)>,
    },
}

struct PendingCommit {
    offsets: Vec<OffsetToCommit>,
    reply: oneshot::Sender<Result<(), CommitError>>,
    attempts: u32,
}

struct Driver {
    member: GroupMember,
    cluster: Cluster,
    link: CoordinatorLink,
    fetch: crate::fetch::fetcher::FetchControl,
    offset_reset: OffsetReset,
    commit_retries: u32,
    events: mpsc::UnboundedSender<ConsumerEvent>,
    /// Weak, so that dropping every handle closes the command channel (the
    /// member then leaves): regression test
    /// `dropped_consumer_leaves_the_group_and_its_partitions_move`.
    commands_tx: mpsc::WeakUnboundedSender<Command>,
    handles_gone: bool,
    replies_tx: Option<mpsc::UnboundedSender<Reply>>,
    commits: VecDeque<PendingCommit>,
    commit_in_flight: Option<(RequestId, PendingCommit)>,
    leaving: bool,
}

fn failure_of(e: &ClientError) -> RequestFailure {
    match e {
        ClientError::RequestTimeout { .. } => RequestFailure::TimedOut,
        _ => RequestFailure::Disconnected,
    }
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (replies_tx, mut replies) = mpsc::unbounded_channel();
        self.replies_tx = Some(replies_tx);
        loop {
            let now = Instant::now().into_std();
            while let Some(action) = self.member.poll(now) {
                if let Some(stop) = self.act(action) {
                    let _ = self.events.send(ConsumerEvent::Stopped(stop));
                    self.fail_commits();
                    return;
                }
            }
            self.start_commit();
            let deadline = self
                .member
                .next_deadline()
                .map(Instant::from_std)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                reply = replies.recv() => {
                    if let Some(reply) = reply {
                        self.on_reply(reply);
                    }
                }
                command = commands.recv(), if !self.handles_gone => match command {
                    Some(Command::Commit { offsets, reply }) => {
                        self.commits.push_back(PendingCommit { offsets, reply, attempts: 0 });
                    }
                    Some(Command::RevokeDone) => self.member.revoke_done(Instant::now().into_std()),
                    Some(Command::Leave) => {
                        self.leaving = true;
                        self.member.request_leave(Instant::now().into_std());
                    }
                    // Every handle is gone: leave (revocations are answered
                    // at once from now on: nobody is left to finish work).
                    None => {
                        self.handles_gone = true;
                        self.leaving = true;
                        let now = Instant::now().into_std();
                        self.member.request_leave(now);
                        self.member.revoke_done(now);
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    fn fail_commits(&mut self) {
        for c in self.commits.drain(..) {
            let _ = c.reply.send(Err(CommitError::Stopped));
        }
    }

    fn group_id(&self) -> String {
        self.member.config().group_id().to_owned()
    }

    fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = Reply> + Send + 'static,
    {
        if let Some(tx) = self.replies_tx.clone() {
            tokio::spawn(async move {
                let _ = tx.send(f.await);
            });
        }
    }

    fn coordinator_node(&self) -> Option<i32> {
        self.member.coordinator().map(|c| c.node_id)
    }

    /// Executes one action; `Some(reason)` stops the driver.
    fn act(&mut self, action: Action) -> Option<Option<ClientError>> {
        tracing::debug!(group = %self.group_id(), ?action, "group action");
        let cluster = self.cluster.clone();
        let link = self.link.clone();
        let timeout = cluster.config().request_timeout();
        let node = self.coordinator_node();
        match action {
            Action::FindCoordinator(p) => {
                let id = p.request_id;
                self.spawn(async move {
                    match cluster.coordinator(&p.group_id).await {
                        Ok((node_id, conn)) => {
                            let (host, port) = split_addr(conn.broker());
                            Reply::Coordinator(
                                id,
                                Ok(Coordinator {
                                    node_id,
                                    host,
                                    port,
                                }),
                            )
                        }
                        Err(e) => match e.code() {
                            Some(code) => Reply::Coordinator(id, Err(code)),
                            None => Reply::Failed(id, failure_of(&e), e.to_string()),
                        },
                    }
                });
            }
            Action::SendJoinGroup(p) => {
                let id = p.request_id;
                let wait = p.response_timeout();
                self.spawn(async move {
                    let result = async {
                        let conn = link.connection(node).await?;
                        conn.send_with::<JoinGroupRequest, _>(wait, |v| wire::join_group(&p, v))
                            .await
                    }
                    .await;
                    match result {
                        Ok((_, r)) => Reply::Join(id, wire::join_response(r)),
                        Err(e) => Reply::Failed(id, failure_of(&e), e.to_string()),
                    }
                });
            }
            Action::NeedPartitionCounts { topics } => {
                self.spawn(async move {
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    if let Err(e) = cluster.refresh_metadata(&names).await {
                        tracing::warn!(error = %e, "metadata for assignment failed");
                    }
                    let counts = cluster.with_metadata(|m| {
                        topics
                            .iter()
                            .filter_map(|t| {
                                m.topic(t)
                                    .filter(|info| info.is_ready())
                                    .map(|info| (t.clone(), info.partitions.len() as i32))
                            })
                            .collect()
                    });
                    Reply::Counts(counts)
                });
            }
            Action::SendSyncGroup(p) => {
                let id = p.request_id;
                self.spawn(async move {
                    let result = async {
                        let conn = link.connection(node).await?;
                        conn.send_with::<SyncGroupRequest, _>(timeout, |v| wire::sync_group(&p, v))
                            .await
                    }
                    .await;
                    match result {
                        Ok((_, r)) => Reply::Sync(id, wire::sync_response(r)),
                        Err(e) => Reply::Failed(id, failure_of(&e), e.to_string()),
                    }
                });
            }
            Action::SendHeartbeat(p) => {
                let id = p.request_id;
                self.spawn(async move {
                    let result = async {
                        let conn = link.connection(node).await?;
                        conn.send_with::<HeartbeatRequest, _>(timeout, |v| wire::heartbeat(&p, v))
                            .await
                    }
                    .await;
                    match result {
                        Ok((_, r)) => Reply::Heartbeat(id, ErrorCode::from(r.error_code)),
                        Err(e) => Reply::Failed(id, failure_of(&e), e.to_string()),
                    }
                });
            }
            Action::SendLeaveGroup(p) => {
                let id = p.request_id;
                self.spawn(async move {
                    let result = async {
                        let conn = link.connection(node).await?;
                        conn.send_with::<LeaveGroupRequest, _>(timeout, |v| {
                            wire::leave_group(&p, v)
                        })
                        .await
                    }
                    .await;
                    match result {
                        Ok((_, r)) => Reply::Leave(id, ErrorCode::from(r.error_code)),
                        Err(e) => Reply::Failed(id, failure_of(&e), e.to_string()),
                    }
                });
            }
            Action::Revoke(partitions) => {
                for tp in &partitions {
                    self.fetch.revoke(tp);
                }
                let Some(done) = self.commands_tx.upgrade().filter(|_| !self.handles_gone) else {
                    // Nobody is left to finish work: revoked at once.
                    self.member.revoke_done(Instant::now().into_std());
                    return None;
                };
                let revocation = Revocation {
                    partitions,
                    generation_id: self.member.generation_id(),
                    done: Some(done),
                };
                // If nobody listens, the dropped Revocation answers
                // RevokeDone itself.
                let _ = self.events.send(ConsumerEvent::Revoked(revocation));
            }
            Action::Assign(partitions) => {
                tracing::info!(group = %self.group_id(), generation = self.member.generation_id(), ?partitions, "assigned");
            }
            Action::FetchOffsets(partitions) => self.fetch_offsets(partitions),
            Action::Lost(partitions) => {
                for tp in &partitions {
                    self.fetch.revoke(tp);
                }
                let _ = self.events.send(ConsumerEvent::Lost(partitions));
            }
            Action::Fatal(e) => return Some(Some(ClientError::from(e))),
            Action::Closed => return Some(None),
        }
        None
    }

    fn fetch_offsets(&mut self, partitions: Vec<TopicPartition>) {
        let cluster = self.cluster.clone();
        let link = self.link.clone();
        let node = self.coordinator_node();
        let group_id = self.group_id();
        let generation_id = self.member.generation_id();
        let backoff = self.member.config().retry_backoff();
        self.spawn(async move {
            let timeout = cluster.config().request_timeout();
            let mut delay = backoff;
            let mut last = String::new();
            // Retry until known: never start from the reset policy while the
            // committed offset is unknown.
            for _ in 0..30 {
                let attempt = async {
                    let conn = match node {
                        Some(_) => link.connection(node).await?,
                        None => cluster.coordinator(&group_id).await?.1,
                    };
                    conn.send_with::<OffsetFetchRequest, _>(timeout, |v| {
                        wire::offset_fetch(&group_id, &partitions, v)
                    })
                    .await
                }
                .await;
                match attempt.map(|(_, r)| wire::offset_fetch_response(r)) {
                    Ok(Ok(map)) => {
                        let mut out = BTreeMap::new();
                        let mut retry = false;
                        for (tp, v) in map {
                            match v {
                                Ok(Some(c)) => {
                                    out.insert(tp, c);
                                }
                                Ok(None) => {}
                                Err(code) => {
                                    last = format!("{}/{}: {code}", tp.topic, tp.partition);
                                    retry = true;
                                }
                            }
                        }
                        if !retry {
                            return Reply::Offsets {
                                generation_id,
                                partitions,
                                result: Ok(out),
                            };
                        }
                    }
                    Ok(Err(code)) => {
                        last = code.to_string();
                        if code.consumer_action() == kafee_protocol::error::ConsumerAction::Fatal {
                            break;
                        }
                    }
                    Err(e) => last = e.to_string(),
                }
                tracing::debug!(group = %group_id, error = %last, "OffsetFetch retry");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Reply::Offsets {
                generation_id,
                partitions,
                result: Err(last),
            }
        });
    }

    fn on_reply(&mut self, reply: Reply) {
        let now = Instant::now().into_std();
        tracing::debug!(group = %self.group_id(), ?reply, "group reply");
        match reply {
            Reply::Coordinator(id, r) => self.member.on_find_coordinator_response(now, id, r),
            Reply::Failed(id, failure, message) => {
                tracing::debug!(error = %message, "group request failed");
                if let Some((cid, _)) = &self.commit_in_flight {
                    if *cid == id {
                        self.finish_commit_failure(now, id, failure, message);
                        return;
                    }
                }
                self.member.on_request_failed(now, id, failure);
            }
            Reply::Join(id, r) => self.member.on_join_response(now, id, r),
            Reply::Sync(id, r) => self.member.on_sync_response(now, id, r),
            Reply::Heartbeat(id, code) => self.member.on_heartbeat_response(now, id, code),
            Reply::Leave(id, code) => self.member.on_leave_response(now, id, code),
            Reply::Counts(counts) => self.member.on_partition_counts(now, &counts),
            Reply::Offsets {
                generation_id,
                partitions,
                result,
            } => self.on_offsets(generation_id, partitions, result),
            Reply::Commit { request_id, result } => match result {
                Ok(codes) => self.finish_commit(now, request_id, codes),
                Err((failure, message)) => {
                    self.finish_commit_failure(now, request_id, failure, message)
                }
            },
        }
    }

    fn on_offsets(
        &mut self,
        generation_id: i32,
        partitions: Vec<TopicPartition>,
        result: Result<BTreeMap<TopicPartition, CommittedOffset>, String>,
    ) {
        if generation_id != self.member.generation_id()
            || self.member.state() != MemberState::Stable
        {
            // A newer generation fetches its own; a revocation that began
            // meanwhile must not see these partitions come back (P3).
            return;
        }
        let owned: BTreeSet<&TopicPartition> = self.member.owned_partitions().iter().collect();
        let committed = match result {
            Ok(c) => c,
            Err(message) => {
                let _ = self
                    .events
                    .send(ConsumerEvent::Stopped(Some(ClientError::Timeout {
                        what: format!(
                            "fetching committed offsets of group {:?}: {message}",
                            self.group_id()
                        ),
                        timeout: Duration::from_secs(60),
                        last: None,
                    })));
                return;
            }
        };
        let mut assigned = Vec::new();
        let mut positions = Vec::new();
        for tp in partitions {
            if !owned.contains(&tp) {
                continue;
            }
            let c = committed.get(&tp).cloned();
            let position = match (&c, self.offset_reset) {
                (Some(c), _) => Position::Offset(c.offset),
                (None, OffsetReset::Earliest) => Position::Reset(ResetTo::Earliest),
                (None, OffsetReset::Latest) => Position::Reset(ResetTo::Latest),
                (None, OffsetReset::None) => Position::Failed,
            };
            if position == Position::Failed {
                let _ = self.events.send(ConsumerEvent::PartitionError(
                    PartitionError::OffsetOutOfRange {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset: -1,
                    },
                ));
            }
            positions.push((tp.clone(), position));
            assigned.push(AssignedPartition { tp, committed: c });
        }
        // The caller hears of the assignment before any record of it can
        // arrive (records of a partition it does not know are dropped).
        let _ = self.events.send(ConsumerEvent::Assigned {
            generation_id,
            partitions: assigned,
        });
        for (tp, position) in positions {
            self.fetch.assign(tp, position);
        }
    }

    fn start_commit(&mut self) {
        if self.commit_in_flight.is_some() {
            return;
        }
        let Some(mut pending) = self.commits.pop_front() else {
            return;
        };
        let group_id = self.group_id();
        let ctx = match self.member.begin_commit() {
            Ok(ctx) => ctx,
            Err(CommitRefused::InFlight | CommitRefused::CoordinatorUnknown) => {
                self.commits.push_front(pending);
                return;
            }
            Err(CommitRefused::NotAllowed(state)) => {
                let _ = pending.reply.send(Err(CommitError::NotAllowed {
                    group_id,
                    reason: format!("{state:?}"),
                }));
                return;
            }
        };
        // P3: only partitions owned in this generation.
        let owned: BTreeSet<&TopicPartition> = self.member.owned_partitions().iter().collect();
        pending.offsets.retain(|o| {
            let keep = owned.contains(&o.tp);
            if !keep {
                tracing::warn!(topic = %o.tp.topic, partition = o.tp.partition, "commit for a partition not owned: dropped");
            }
            keep
        });
        pending.attempts += 1;
        let offsets = pending.offsets.clone();
        let request_id = ctx.request_id;
        let node = self.coordinator_node();
        let link = self.link.clone();
        let timeout = self.cluster.config().request_timeout();
        self.commit_in_flight = Some((request_id, pending));
        if offsets.is_empty() {
            self.finish_commit(Instant::now().into_std(), request_id, Vec::new());
            return;
        }
        // Never cancelled: the task runs to its answer even if nobody waits.
        self.spawn(async move {
            let result = async {
                let conn = link.connection(node).await?;
                conn.send_with::<OffsetCommitRequest, _>(timeout, |v| {
                    wire::offset_commit(&ctx, &group_id, &offsets, v)
                })
                .await
            }
            .await;
            Reply::Commit {
                request_id,
                result: result
                    .map(|(_, r)| wire::offset_commit_codes(&r))
                    .map_err(|e| (failure_of(&e), e.to_string())),
            }
        });
    }

    fn finish_commit(
        &mut self,
        now: std::time::Instant,
        request_id: RequestId,
        codes: Vec<(TopicPartition, ErrorCode)>,
    ) {
        let Some((id, pending)) = self.commit_in_flight.take() else {
            return;
        };
        if id != request_id {
            self.commit_in_flight = Some((id, pending));
            return;
        }
        let only_codes: Vec<ErrorCode> = codes.iter().map(|(_, c)| *c).collect();
        let outcome = self.member.on_commit_response(now, request_id, &only_codes);
        let group_id = self.group_id();
        let result = match outcome {
            CommitOutcome::Committed => Ok(()),
            CommitOutcome::Retry => {
                if pending.attempts < self.commit_retries {
                    self.commits.push_front(pending);
                    return;
                }
                Err(CommitError::GaveUp {
                    group_id,
                    attempts: pending.attempts,
                })
            }
            CommitOutcome::Rebalancing => Err(CommitError::Rebalancing { group_id }),
            CommitOutcome::MembershipLost => Err(CommitError::MembershipLost { group_id }),
            CommitOutcome::Failed(code) => {
                let (tp, code) = codes
                    .iter()
                    .find(|(_, c)| *c == code)
                    .cloned()
                    .unwrap_or((TopicPartition::new("", -1), code));
                Err(CommitError::Partition {
                    group_id,
                    topic: tp.topic,
                    partition: tp.partition,
                    code,
                })
            }
        };
        let _ = pending.reply.send(result);
    }

    fn finish_commit_failure(
        &mut self,
        now: std::time::Instant,
        request_id: RequestId,
        failure: RequestFailure,
        message: String,
    ) {
        let Some((id, pending)) = self.commit_in_flight.take() else {
            return;
        };
        if id != request_id {
            self.commit_in_flight = Some((id, pending));
            return;
        }
        tracing::warn!(error = %message, "OffsetCommit failed; outcome unknown, retrying");
        self.member.on_request_failed(now, request_id, failure);
        if pending.attempts < self.commit_retries {
            self.commits.push_front(pending);
        } else {
            let attempts = pending.attempts;
            let _ = pending.reply.send(Err(CommitError::GaveUp {
                group_id: self.group_id(),
                attempts,
            }));
        }
    }
}

fn split_addr(addr: &str) -> (String, i32) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(0)),
        None => (addr.to_owned(), 0),
    }
}
