//! The cluster: bootstrap, metadata refresh, one connection per broker, and
//! the coordinator lookup.
//!
//! ```text
//!            connect()                         broker(node) ─────┐
//! bootstrap servers ──► Metadata ──► MetadataCache ◄── refresh ◄─┤ dead connection,
//!     (tried in order)                 │ leaders, epochs         │ NOT_LEADER..., stale age
//!                                      ▼                         │
//!                    pool: node id → Slot { Connection | backoff } ┘
//! ```
//!
//! * Connections are opened lazily, one per node id, and shared by every
//!   caller (they are multiplexed). A dead one is replaced on next use; after a
//!   failed connect the next attempt waits an exponential backoff
//!   (`retry.backoff.ms` doubling to `retry.backoff.max.ms`).
//! * A dead connection, a broker error that calls for it
//!   ([`crate::metadata::calls_for_refresh`]) or `metadata.max.age.ms` marks
//!   the metadata stale; the next lookup refreshes it. Refreshes are single
//!   flight: concurrent callers wait for the one in progress.
//! * Metadata requests never auto-create topics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafee_protocol::error::ErrorCode;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;

use crate::config::ClientConfig;
use crate::conn::{ConnSettings, Connection};
use crate::error::ClientError;
use crate::metadata::{self, MetadataCache, TopicInfo, TopicState, UNKNOWN_TOPIC_OR_PARTITION};
use crate::retry::Backoff;

/// Answers to FindCoordinator that mean "ask again later".
const COORDINATOR_RETRY_CODES: [ErrorCode; 3] = [
    ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode::COORDINATOR_NOT_AVAILABLE,
    ErrorCode::NOT_COORDINATOR,
];

/// How many metadata refreshes a leader lookup tries before giving up.
const LEADER_LOOKUP_ATTEMPTS: u32 = 5;

/// A handle on one Kafka cluster. Cheap to clone; clones share the metadata
/// and the connections.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap_servers", &self.inner.config.bootstrap_servers())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ClientConfig,
    settings: ConnSettings,
    metadata: Mutex<MetadataCache>,
    refresh_lock: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
    pool: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<Slot>>>>,
    bootstrap: tokio::sync::Mutex<Option<Connection>>,
}

struct Slot {
    conn: Option<Connection>,
    backoff: Backoff,
    retry_at: Option<tokio::time::Instant>,
}

impl Cluster {
    /// Connects to the first bootstrap server that answers a Metadata
    /// request; fails with [`ClientError::Bootstrap`] naming every server tried.
    pub async fn connect(config: ClientConfig) -> Result<Cluster, ClientError> {
        let settings = ConnSettings::from(&config);
        let cluster = Cluster {
            inner: Arc::new(Inner {
                config,
                settings,
                metadata: Mutex::new(MetadataCache::new()),
                refresh_lock: tokio::sync::Mutex::new(()),
                refreshes: AtomicU64::new(0),
                pool: Mutex::new(HashMap::new()),
                bootstrap: tokio::sync::Mutex::new(None),
            }),
        };
        cluster.bootstrap().await?;
        Ok(cluster)
    }

    async fn bootstrap(&self) -> Result<(), ClientError> {
        let mut tried = Vec::new();
        let mut last = None;
        for addr in self.inner.config.bootstrap_servers() {
            tried.push(addr.clone());
            let result = match Connection::connect(addr, &self.inner.settings).await {
                Ok(conn) => self.fetch_metadata(&conn, &[]).await.map(|()| conn),
                Err(e) => Err(e),
            };
            match result {
                Ok(conn) => {
                    self.adopt(conn).await;
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(server = %addr, error = %e, "bootstrap server failed");
                    last = Some(e);
                }
            }
        }
        Err(ClientError::Bootstrap {
            tried,
            last: Box::new(last.unwrap_or(ClientError::Timeout {
                what: "bootstrap".into(),
                timeout: Duration::ZERO,
                last: None,
            })),
        })
    }

    /// Keeps a bootstrap connection: pooled under its node id when the
    /// metadata names a broker at the same address, else as the fallback.
    async fn adopt(&self, conn: Connection) {
        let node = self
            .meta()
            .brokers()
            .find(|b| b.addr() == conn.broker())
            .map(|b| b.node_id);
        match node {
            Some(node_id) => {
                let slot = self.slot(node_id);
                let mut slot = slot.lock().await;
                slot.conn = Some(conn);
            }
            None => *self.inner.bootstrap.lock().await = Some(conn),
        }
    }

    fn meta(&self) -> MutexGuard<'_, MetadataCache> {
        // Every critical section is a plain field update: still consistent
        // after a panic elsewhere.
        self.inner
            .metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, node_id: i32) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.entry(node_id)
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Slot {
                    conn: None,
                    backoff: Backoff::new(
                        self.inner.config.retry_backoff(),
                        self.inner.config.retry_backoff_max(),
                    ),
                    retry_at: None,
                }))
            })
            .clone()
    }

    /// The configuration this cluster was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A copy of the metadata cache as it is now.
    pub fn metadata(&self) -> MetadataCache {
        self.meta().clone()
    }

    /// Runs `f` on the metadata cache as it is now, without copying it (the
    /// fetch loop looks up leaders on every plan). `f` must not block.
    pub fn with_metadata<T>(&self, f: impl FnOnce(&MetadataCache) -> T) -> T {
        f(&self.meta())
    }

    /// Marks the metadata for refresh on next use.
    pub fn invalidate_metadata(&self) {
        self.meta().mark_stale();
    }

    /// Tells the cluster a broker answered `code`; marks the metadata stale
    /// when the code calls for a refresh (leader moved, topic unknown, ...).
    /// Returns whether it did.
    pub fn note_error(&self, code: ErrorCode) -> bool {
        let refresh = metadata::calls_for_refresh(code);
        if refresh {
            self.invalidate_metadata();
        }
        refresh
    }

    /// Refreshes the metadata for `topics` plus every topic already cached.
    ///
    /// Single flight: a caller that waited for a refresh made meanwhile, which
    /// covered its topics, returns without sending another.
    pub async fn refresh_metadata(&self, topics: &[&str]) -> Result<(), ClientError> {
        let seen = self.inner.refreshes.load(Ordering::Acquire);
        let _guard = self.inner.refresh_lock.lock().await;
        let names = {
            let meta = self.meta();
            if self.inner.refreshes.load(Ordering::Acquire) != seen
                && !meta.needs_refresh(Instant::now(), self.inner.config.metadata_max_age())
                && topics.iter().all(|t| meta.topic_state(t).is_some())
            {
                return Ok(());
            }
            let mut names = meta.topic_names();
            names.extend(topics.iter().map(|t| (*t).to_owned()));
            names.sort();
            names.dedup();
            names
        };
        let mut last = None;
        for _ in 0..2 {
            let conn = self.any_broker().await?;
            match self.fetch_metadata(&conn, &names).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retriable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ClientError::Timeout {
            what: "metadata refresh".into(),
            timeout: self.inner.config.request_timeout(),
            last: None,
        }))
    }

    async fn fetch_metadata(
        &self,
        conn: &Connection,
        topics: &[String],
    ) -> Result<(), ClientError> {
        // Decoded by kafee's bounded Metadata decoder (array counts checked
        // against the bytes left before anything is allocated), not by
        // kafka-protocol's, which pre-allocates from wire counts.
        let version = conn.version(ApiKey::Metadata)?;
        let request: MetadataRequest = metadata::metadata_request(version, topics);
        let body = conn
            .start(&request, version)?
            .wait_body(self.inner.config.request_timeout())
            .await?;
        let response = kafee_protocol::metadata_response::decode_metadata_response(version, body)
            .map_err(|source| ClientError::Decode {
            broker: conn.broker().to_owned(),
            source,
        })?;
        if response.error_code != 0 {
            return Err(ClientError::Broker {
                broker: conn.broker().to_owned(),
                api: ApiKey::Metadata,
                code: ErrorCode(response.error_code),
                topic: None,
                partition: None,
                message: None,
            });
        }
        self.meta().apply(&response, Instant::now());
        self.inner.refreshes.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    async fn refresh_if_needed(&self, topic: &str) -> Result<(), ClientError> {
        let needed = {
            let meta = self.meta();
            meta.needs_refresh(Instant::now(), self.inner.config.metadata_max_age())
                || meta.topic_state(topic).is_none()
        };
        if needed {
            self.refresh_metadata(&[topic]).await?;
        }
        Ok(())
    }

    /// A topic's metadata, refreshed first when stale or unknown. Fails with
    /// UNKNOWN_TOPIC_OR_PARTITION (as [`ClientError::Broker`]) when the
    /// cluster does not have it.
    pub async fn topic(&self, topic: &str) -> Result<TopicInfo, ClientError> {
        self.refresh_if_needed(topic).await?;
        self.cached_topic(topic)
    }

    fn cached_topic(&self, topic: &str) -> Result<TopicInfo, ClientError> {
        let meta = self.meta();
        match (meta.topic(topic), meta.topic_state(topic)) {
            (Some(info), _) => Ok(info.clone()),
            (None, Some(TopicState::Error(code))) => Err(self.topic_error(code, topic, None)),
            _ => Err(self.topic_error(UNKNOWN_TOPIC_OR_PARTITION, topic, None)),
        }
    }

    fn topic_error(&self, code: i16, topic: &str, partition: Option<i32>) -> ClientError {
        ClientError::Broker {
            broker: "metadata".into(),
            api: ApiKey::Metadata,
            code: ErrorCode(code),
            topic: Some(topic.to_owned()),
            partition,
            message: None,
        }
    }

    /// The leader's node id and leader epoch of a partition, refreshing the
    /// metadata (with backoff, a bounded number of times) while the
    /// partition has no leader.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<(i32, i32), ClientError> {
        let mut backoff = Backoff::new(
            self.inner.config.retry_backoff(),
            self.inner.config.retry_backoff_max(),
        );
        for attempt in 0..LEADER_LOOKUP_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff.next_delay()).await;
                self.invalidate_metadata();
            }
            self.refresh_if_needed(topic).await?;
            let info = self.cached_topic(topic)?;
            let Some(p) = info.partitions.get(&partition) else {
                if info.error_code == 0 && !info.partitions.is_empty() {
                    return Err(self.topic_error(
                        UNKNOWN_TOPIC_OR_PARTITION,
                        topic,
                        Some(partition),
                    ));
                }
                continue;
            };
            if let Some(leader) = p.leader() {
                return Ok((leader, p.leader_epoch));
            }
        }
        Err(ClientError::NoLeader {
            topic: topic.to_owned(),
            partition,
        })
    }

    /// A connection to the partition's leader, and the leader epoch.
    pub async fn leader_connection(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(Connection, i32), ClientError> {
        let (node, epoch) = self.leader(topic, partition).await?;
        Ok((self.broker(node).await?, epoch))
    }

    /// The pooled connection to a broker, opened (or replaced, after backoff)
    /// if there is none alive.
    pub async fn broker(&self, node_id: i32) -> Result<Connection, ClientError> {
        let addr = self.meta().broker(node_id).map(|b| b.addr());
        let addr = match addr {
            Some(addr) => addr,
            None => {
                self.invalidate_metadata();
                self.refresh_metadata(&[]).await?;
                self.meta()
                    .broker(node_id)
                    .map(|b| b.addr())
                    .ok_or(ClientError::UnknownBroker { node_id })?
            }
        };
        self.connect_node(node_id, &addr).await
    }

    async fn connect_node(&self, node_id: i32, addr: &str) -> Result<Connection, ClientError> {
        let slot = self.slot(node_id);
        let mut slot = slot.lock().await;
        if let Some(conn) = &slot.conn {
            if !conn.is_dead() {
                return Ok(conn.clone());
            }
            tracing::debug!(node_id, broker = %conn.broker(), reason = ?conn.dead_reason(),
                "replacing dead connection");
            slot.conn = None;
            self.invalidate_metadata();
        }
        if let Some(at) = slot.retry_at {
            tokio::time::sleep_until(at).await;
        }
        match Connection::connect(addr, &self.inner.settings).await {
            Ok(conn) => {
                slot.backoff.reset();
                slot.retry_at = None;
                slot.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let delay = slot.backoff.next_delay();
                slot.retry_at = Some(tokio::time::Instant::now() + delay);
                self.invalidate_metadata();
                Err(e)
            }
        }
    }

    /// A connection to any broker: a live pooled one if there is one, else the
    /// first broker of the metadata that accepts, else a bootstrap server.
    pub async fn any_broker(&self) -> Result<Connection, ClientError> {
        let slots: Vec<_> = {
            let pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.values().cloned().collect()
        };
        for slot in &slots {
            if let Ok(slot) = slot.try_lock() {
                if let Some(conn) = slot.conn.as_ref().filter(|c| !c.is_dead()) {
                    return Ok(conn.clone());
                }
            }
        }
        {
            let bootstrap = self.inner.bootstrap.lock().await;
            if let Some(conn) = bootstrap.as_ref().filter(|c| !c.is_dead()) {
                return Ok(conn.clone());
            }
        }
        let nodes: Vec<(i32, String)> = self
            .meta()
            .brokers()
            .map(|b| (b.node_id, b.addr()))
            .collect();
        let mut last = None;
        for (node_id, addr) in nodes {
            match self.connect_node(node_id, &addr).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        let mut tried = Vec::new();
        for addr in self.inner.config.bootstrap_servers() {
            tried.push(addr.clone());
            match Connection::connect(addr, &self.inner.settings).await {
                Ok(conn) => {
                    *self.inner.bootstrap.lock().await = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(ClientError::Bootstrap {
            tried,
            last: Box::new(last.unwrap_or(ClientError::UnknownBroker { node_id: -1 })),
        })
    }

    /// A connection to the controller the metadata names (any broker when it
    /// names none; KRaft brokers forward admin requests to the controller).
    pub async fn controller(&self) -> Result<Connection, ClientError> {
        let controller = self.meta().controller_id();
        if let Some(node_id) = controller {
            match self.broker(node_id).await {
                Ok(conn) => return Ok(conn),
                Err(e) => tracing::debug!(node_id, error = %e, "controller unreachable"),
            }
        }
        self.any_broker().await
    }

    /// Finds the coordinator of `group_id` (FindCoordinator, batched
    /// `coordinator_keys` from v4 on, `key` before) and returns its node id and
    /// a connection to it.
    ///
    /// COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR
    /// and dead connections are retried with backoff until the request
    /// timeout has passed; any other error code is returned at once.
    pub async fn coordinator(&self, group_id: &str) -> Result<(i32, Connection), ClientError> {
        let timeout = self.inner.config.request_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff = Backoff::new(
            self.inner.config.retry_backoff(),
            self.inner.config.retry_backoff_max(),
        );
        loop {
            let last = match self.find_coordinator(group_id).await {
                Ok(found) => return Ok(found),
                Err(e) => {
                    let retry = match e.code() {
                        Some(code) => COORDINATOR_RETRY_CODES.contains(&code),
                        None => e.is_retriable(),
                    };
                    if !retry {
                        return Err(e);
                    }
                    e
                }
            };
            let delay = backoff.next_delay();
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(ClientError::Timeout {
                    what: format!("finding the coordinator of group {group_id:?}"),
                    timeout,
                    last: Some(Box::new(last)),
                });
            }
            tracing::debug!(group_id, error = %last, "coordinator not found yet");
            tokio::time::sleep(delay).await;
        }
    }

    async fn find_coordinator(&self, group_id: &str) -> Result<(i32, Connection), ClientError> {
        let conn = self.any_broker().await?;
        let key = StrBytes::from_string(group_id.to_owned());
        let (version, response) = conn
            .send_with(self.inner.config.request_timeout(), |v| {
                let request = FindCoordinatorRequest::default();
                if v >= 4 {
                    request.with_coordinator_keys(vec![key.clone()])
                } else {
                    request.with_key(key.clone())
                }
            })
            .await?;
        let (code, message, node_id, host, port) = if version >= 4 {
            let found = response
                .coordinators
                .iter()
                .find(|c| c.key.as_str() == group_id)
                .ok_or_else(|| ClientError::Protocol {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::FindCoordinator,
                    message: format!("no coordinator entry for group {group_id:?}"),
                })?;
            (
                found.error_code,
                found.error_message.clone(),
                found.node_id.0,
                found.host.clone(),
                found.port,
            )
        } else {
            (
                response.error_code,
                response.error_message.clone(),
                response.node_id.0,
                response.host.clone(),
                response.port,
            )
        };
        if code != 0 {
            return Err(ClientError::Broker {
                broker: conn.broker().to_owned(),
                api: ApiKey::FindCoordinator,
                code: ErrorCode(code),
                topic: None,
                partition: None,
                message: message.map(|m| format!("group {group_id:?}: {m}")),
            });
        }
        let addr = metadata::BrokerInfo {
            node_id,
            host: host.to_string(),
            port,
            rack: None,
        }
        .addr();
        let conn = self.connect_node(node_id, &addr).await?;
        Ok((node_id, conn))
    }
}

#[cfg(test)]
mod tests;
