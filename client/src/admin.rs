//! The admin requests that tests and the CLI need: create and delete topics,
//! list offsets.
//!
//! Brokers create and delete topics asynchronously: a successful CreateTopics
//! answer only means the controller accepted it. [`Admin::create_topics`]
//! therefore waits until the metadata shows every partition with a leader,
//! and [`Admin::delete_topics`] until the metadata no longer knows the topic.

use std::collections::BTreeMap;
use std::time::Duration;

use kafee_protocol::error::ErrorCode;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::metadata::{calls_for_refresh, TopicState};
use crate::retry::Backoff;

/// How many rounds [`Admin::list_offsets`] makes for partitions whose leader
/// moved (each after a metadata refresh).
const LIST_OFFSETS_ATTEMPTS: u32 = 4;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// Number of partitions; `-1` for the broker's `num.partitions`.
    pub partitions: i32,
    /// Replication factor; `-1` for the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and `replication_factor` replicas.
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// Options of [`Admin::create_topics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicsOptions {
    /// Deadline for the whole call: the request and the wait for leaders (default 30 s).
    pub timeout: Duration,
    /// Treat TOPIC_ALREADY_EXISTS as success (default `false`: it is an error).
    pub if_not_exists: bool,
}

impl Default for CreateTopicsOptions {
    fn default() -> Self {
        CreateTopicsOptions {
            timeout: Duration::from_secs(30),
            if_not_exists: false,
        }
    }
}

/// Options of [`Admin::delete_topics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopicsOptions {
    /// Deadline for the whole call: the request and the wait until the
    /// metadata forgets the topics (default 30 s).
    pub timeout: Duration,
    /// Treat UNKNOWN_TOPIC_OR_PARTITION as success (default `false`).
    pub if_exists: bool,
}

impl Default for DeleteTopicsOptions {
    fn default() -> Self {
        DeleteTopicsOptions {
            timeout: Duration::from_secs(30),
            if_exists: false,
        }
    }
}

/// Which offset [`Admin::list_offsets`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark, or the last stable offset under
    /// [`IsolationLevel::ReadCommitted`]).
    Latest,
    /// The earliest offset whose timestamp is at or after this many
    /// milliseconds since the epoch; the log end offset when there is none.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// `isolation.level`: which records a consumer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record, including those of open and aborted transactions (Java default).
    #[default]
    ReadUncommitted,
    /// Only committed records; "latest" is the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    /// The value on the wire (0 or 1).
    pub fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// A topic name and partition index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// An offset answered by [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffset {
    /// The offset.
    pub offset: i64,
    /// The timestamp of the record at that offset, `-1` for earliest/latest.
    pub timestamp: i64,
    /// The leader epoch of that offset, if the broker says (ListOffsets v4+).
    pub leader_epoch: Option<i32>,
}

/// One partition's answer from [`Admin::list_offsets`]: an offset, or this
/// partition's own error (other partitions are not affected).
#[derive(Debug)]
pub struct ListedOffset {
    /// The partition asked about.
    pub topic_partition: TopicPartition,
    /// Its offset, or why there is none.
    pub result: Result<PartitionOffset, ClientError>,
}

/// Admin requests on a [`Cluster`].
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Cluster,
}

impl Admin {
    /// Admin requests over `cluster`'s connections.
    pub fn new(cluster: Cluster) -> Self {
        Admin { cluster }
    }

    /// The cluster this admin talks to.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn backoff(&self) -> Backoff {
        let c = self.cluster.config();
        Backoff::new(c.retry_backoff(), c.retry_backoff_max())
    }

    /// Creates topics, then waits until the metadata shows every partition of
    /// each with a leader.
    ///
    /// Fails on the first topic the broker refuses (the error names it);
    /// TOPIC_ALREADY_EXISTS only when `options.if_not_exists` is off.
    /// NOT_CONTROLLER and other retriable codes are retried until the deadline.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        options: CreateTopicsOptions,
    ) -> Result<(), ClientError> {
        let deadline = Instant::now() + options.timeout;
        let request_timeout = self.cluster.config().request_timeout();
        let mut backoff = self.backoff();
        let mut todo: Vec<&NewTopic> = topics.iter().collect();
        let mut existed = Vec::new();
        while !todo.is_empty() {
            let attempt = async {
                let conn = self.cluster.controller().await?;
                let timeout_ms = clamp_ms(deadline.saturating_duration_since(Instant::now()));
                let (_, response) = conn
                    .send_with(request_timeout, |_| {
                        CreateTopicsRequest::default()
                            .with_topics(todo.iter().map(|t| creatable(t)).collect())
                            .with_timeout_ms(timeout_ms)
                    })
                    .await?;
                Ok::<_, ClientError>((conn.broker().to_owned(), response))
            };
            let (broker, response) = match attempt.await {
                Ok(r) => r,
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    self.cluster.invalidate_metadata();
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut retry = Vec::new();
            for topic in todo {
                let Some(result) = response.topics.iter().find(|r| r.name.0 == *topic.name) else {
                    return Err(ClientError::Protocol {
                        broker,
                        api: ApiKey::CreateTopics,
                        message: format!("no result for topic {:?}", topic.name),
                    });
                };
                let code = ErrorCode(result.error_code);
                if code.is_ok() {
                    continue;
                }
                if code == ErrorCode::TOPIC_ALREADY_EXISTS && options.if_not_exists {
                    existed.push(topic.name.clone());
                    continue;
                }
                let error = ClientError::Broker {
                    broker: broker.clone(),
                    api: ApiKey::CreateTopics,
                    code,
                    topic: Some(topic.name.clone()),
                    partition: None,
                    message: result.error_message.as_ref().map(|m| m.to_string()),
                };
                if code.is_retriable() && Instant::now() < deadline {
                    self.cluster.note_error(code);
                    retry.push(topic);
                } else {
                    return Err(error);
                }
            }
            if !retry.is_empty() {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            todo = retry;
        }
        // Wait for leaders. A topic that already existed may have another
        // partition count; only new topics are held to theirs.
        let expected: BTreeMap<&str, Option<usize>> = topics
            .iter()
            .map(|t| {
                let count = (!existed.contains(&t.name) && t.partitions > 0)
                    .then_some(t.partitions as usize);
                (t.name.as_str(), count)
            })
            .collect();
        self.wait_for_metadata(
            &expected.keys().copied().collect::<Vec<_>>(),
            options.timeout,
            deadline,
            "waiting for the created topics to have leaders",
            |cluster, name| {
                let meta = cluster.metadata();
                meta.topic(name).is_some_and(|t| {
                    t.is_ready()
                        && expected
                            .get(name)
                            .copied()
                            .flatten()
                            .is_none_or(|n| t.partitions.len() == n)
                })
            },
        )
        .await
    }

    /// Deletes topics, then waits until the metadata no longer knows them.
    ///
    /// UNKNOWN_TOPIC_OR_PARTITION is an error unless `options.if_exists`.
    pub async fn delete_topics(
        &self,
        names: &[&str],
        options: DeleteTopicsOptions,
    ) -> Result<(), ClientError> {
        let deadline = Instant::now() + options.timeout;
        let request_timeout = self.cluster.config().request_timeout();
        let mut backoff = self.backoff();
        let mut todo: Vec<&str> = names.to_vec();
        while !todo.is_empty() {
            let attempt = async {
                let conn = self.cluster.controller().await?;
                let timeout_ms = clamp_ms(deadline.saturating_duration_since(Instant::now()));
                let (_, response) = conn
                    .send_with(request_timeout, |_| {
                        DeleteTopicsRequest::default()
                            .with_topic_names(
                                todo.iter()
                                    .map(|n| TopicName(StrBytes::from_string((*n).to_owned())))
                                    .collect(),
                            )
                            .with_timeout_ms(timeout_ms)
                    })
                    .await?;
                Ok::<_, ClientError>((conn.broker().to_owned(), response))
            };
            let (broker, response) = match attempt.await {
                Ok(r) => r,
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    self.cluster.invalidate_metadata();
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut retry = Vec::new();
            for name in todo {
                let Some(result) = response
                    .responses
                    .iter()
                    .find(|r| r.name.as_ref().is_some_and(|n| n.0 == *name))
                else {
                    return Err(ClientError::Protocol {
                        broker,
                        api: ApiKey::DeleteTopics,
                        message: format!("no result for topic {name:?}"),
                    });
                };
                let code = ErrorCode(result.error_code);
                if code.is_ok()
                    || (code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION && options.if_exists)
                {
                    continue;
                }
                let error = ClientError::Broker {
                    broker: broker.clone(),
                    api: ApiKey::DeleteTopics,
                    code,
                    topic: Some(name.to_owned()),
                    partition: None,
                    message: result.error_message.as_ref().map(|m| m.to_string()),
                };
                // UNKNOWN_TOPIC_OR_PARTITION is retriable in Kafka's table but
                // final here: the topic is not there to delete.
                if code.is_retriable()
                    && code != ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                    && Instant::now() < deadline
                {
                    self.cluster.note_error(code);
                    retry.push(name);
                } else {
                    return Err(error);
                }
            }
            if !retry.is_empty() {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            todo = retry;
        }
        self.wait_for_metadata(
            names,
            options.timeout,
            deadline,
            "waiting for the deleted topics to disappear from the metadata",
            |cluster, name| cluster.metadata().topic_state(name) == Some(TopicState::Unknown),
        )
        .await
    }

    /// Refreshes the metadata for `names` until `done` holds for each, with
    /// backoff, until `deadline`.
    async fn wait_for_metadata(
        &self,
        names: &[&str],
        timeout: Duration,
        deadline: Instant,
        what: &str,
        done: impl Fn(&Cluster, &str) -> bool,
    ) -> Result<(), ClientError> {
        let mut backoff = self.backoff();
        loop {
            self.cluster.invalidate_metadata();
            let last = match self.cluster.refresh_metadata(names).await {
                Ok(()) => {
                    let waiting: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|n| !done(&self.cluster, n))
                        .collect();
                    if waiting.is_empty() {
                        return Ok(());
                    }
                    None
                }
                Err(e) if e.is_retriable() => Some(Box::new(e)),
                Err(e) => return Err(e),
            };
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    what: format!("{what} ({})", names.join(", ")),
                    timeout,
                    last,
                });
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Lists an offset of each partition, asking each partition's leader
    /// (one request per leader, sent concurrently).
    ///
    /// Returns one [`ListedOffset`] per partition, in the order given. A
    /// partition whose leader moved is retried after a metadata refresh (a
    /// bounded number of times); any other per-partition error is carried
    /// with that partition. The call itself fails only when no request could
    /// be made at all.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Result<Vec<ListedOffset>, ClientError> {
        let mut results: Vec<Option<Result<PartitionOffset, ClientError>>> =
            partitions.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..partitions.len()).collect();
        let mut backoff = self.backoff();
        for attempt in 0..LIST_OFFSETS_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(backoff.next_delay()).await;
                self.cluster.invalidate_metadata();
            }
            let last_attempt = attempt + 1 == LIST_OFFSETS_ATTEMPTS;
            // Group by leader.
            let mut by_leader: BTreeMap<i32, Vec<(usize, i32)>> = BTreeMap::new();
            let mut retry = Vec::new();
            for &i in &pending {
                let tp = &partitions[i];
                match self.cluster.leader(&tp.topic, tp.partition).await {
                    Ok((leader, epoch)) => by_leader.entry(leader).or_default().push((i, epoch)),
                    Err(e) => {
                        if e.is_retriable() && !last_attempt {
                            retry.push(i);
                        }
                        results[i] = Some(Err(e));
                    }
                }
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (leader, items) in by_leader {
                let cluster = self.cluster.clone();
                let asked: Vec<(usize, TopicPartition, i32)> = items
                    .into_iter()
                    .map(|(i, epoch)| (i, partitions[i].clone(), epoch))
                    .collect();
                tasks.spawn(list_offsets_on(cluster, leader, asked, spec, isolation));
            }
            while let Some(joined) = tasks.join_next().await {
                let Ok(answers) = joined else {
                    // A panicking task lost its partitions: they stay
                    // unanswered and are reported below.
                    continue;
                };
                for (i, result) in answers {
                    let again = match &result {
                        Err(e) => {
                            let refresh = e.code().is_some_and(calls_for_refresh);
                            if refresh {
                                self.cluster.invalidate_metadata();
                            }
                            (refresh || e.is_retriable()) && !last_attempt
                        }
                        Ok(_) => false,
                    };
                    if again {
                        retry.push(i);
                    }
                    results[i] = Some(result);
                }
            }
            pending = retry;
        }
        Ok(partitions
            .iter()
            .zip(results)
            .map(|(tp, result)| ListedOffset {
                topic_partition: tp.clone(),
                result: result.unwrap_or_else(|| {
                    Err(ClientError::Protocol {
                        broker: "leader".into(),
                        api: ApiKey::ListOffsets,
                        message: format!("no answer for {:?} partition {}", tp.topic, tp.partition),
                    })
                }),
            })
            .collect())
    }
}

/// One ListOffsets request to one leader for the partitions it leads.
async fn list_offsets_on(
    cluster: Cluster,
    leader: i32,
    asked: Vec<(usize, TopicPartition, i32)>,
    spec: OffsetSpec,
    isolation: IsolationLevel,
) -> Vec<(usize, Result<PartitionOffset, ClientError>)> {
    let shared_error = |e: &ClientError| clone_error(e);
    let conn = match cluster.broker(leader).await {
        Ok(conn) => conn,
        Err(e) => {
            return asked
                .iter()
                .map(|(i, ..)| (*i, Err(shared_error(&e))))
                .collect()
        }
    };
    let mut topics: BTreeMap<&str, Vec<(i32, i32)>> = BTreeMap::new();
    for (_, tp, epoch) in &asked {
        topics
            .entry(&tp.topic)
            .or_default()
            .push((tp.partition, *epoch));
    }
    let sent = conn
        .send_with(cluster.config().request_timeout(), |v| {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .iter()
                        .map(|(topic, parts)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(StrBytes::from_string((*topic).to_owned())))
                                .with_partitions(
                                    parts
                                        .iter()
                                        .map(|&(p, epoch)| {
                                            let part = ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_timestamp(spec.wire_timestamp());
                                            if v >= 4 {
                                                part.with_current_leader_epoch(epoch)
                                            } else {
                                                part
                                            }
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            if v >= 2 {
                request.with_isolation_level(isolation.wire())
            } else {
                request
            }
        })
        .await;
    let (version, response) = match sent {
        Ok(r) => r,
        Err(e) => {
            return asked
                .iter()
                .map(|(i, ..)| (*i, Err(shared_error(&e))))
                .collect()
        }
    };
    asked
        .into_iter()
        .map(|(i, tp, _)| {
            let found = response
                .topics
                .iter()
                .filter(|t| t.name.0 == *tp.topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == tp.partition);
            let result = match found {
                None => Err(ClientError::Protocol {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::ListOffsets,
                    message: format!("no answer for {:?} partition {}", tp.topic, tp.partition),
                }),
                Some(p) if p.error_code != 0 => Err(ClientError::Broker {
                    broker: conn.broker().to_owned(),
                    api: ApiKey::ListOffsets,
                    code: ErrorCode(p.error_code),
                    topic: Some(tp.topic.clone()),
                    partition: Some(tp.partition),
                    message: None,
                }),
                Some(p) => Ok(PartitionOffset {
                    offset: p.offset,
                    timestamp: p.timestamp,
                    leader_epoch: (version >= 4 && p.leader_epoch >= 0).then_some(p.leader_epoch),
                }),
            };
            (i, result)
        })
        .collect()
}

/// A copy of an error for each partition of a failed request. Errors holding
/// non-clonable sources (i/o errors) are rebuilt with their text.
fn clone_error(e: &ClientError) -> ClientError {
    match e {
        ClientError::Connection {
            broker,
            api,
            source,
        } => ClientError::Connection {
            broker: broker.clone(),
            api: *api,
            source: source.clone(),
        },
        ClientError::RequestTimeout {
            broker,
            api,
            correlation_id,
            timeout,
        } => ClientError::RequestTimeout {
            broker: broker.clone(),
            api: *api,
            correlation_id: *correlation_id,
            timeout: *timeout,
        },
        ClientError::Broker {
            broker,
            api,
            code,
            topic,
            partition,
            message,
        } => ClientError::Broker {
            broker: broker.clone(),
            api: *api,
            code: *code,
            topic: topic.clone(),
            partition: *partition,
            message: message.clone(),
        },
        ClientError::NoLeader { topic, partition } => ClientError::NoLeader {
            topic: topic.clone(),
            partition: *partition,
        },
        ClientError::UnknownBroker { node_id } => ClientError::UnknownBroker { node_id: *node_id },
        other => ClientError::Timeout {
            what: format!("ListOffsets ({other})"),
            timeout: Duration::ZERO,
            last: None,
        },
    }
}

fn creatable(topic: &NewTopic) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
        .with_num_partitions(topic.partitions)
        .with_replication_factor(topic.replication_factor)
        .with_configs(
            topic
                .configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(v.clone())))
                })
                .collect(),
        )
}

fn clamp_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn offset_specs_use_the_wire_sentinels() {
        assert_eq!(OffsetSpec::Earliest.wire_timestamp(), -2);
        assert_eq!(OffsetSpec::Latest.wire_timestamp(), -1);
        assert_eq!(
            OffsetSpec::Timestamp(1_700_000_000_000).wire_timestamp(),
            1_700_000_000_000
        );
        assert_eq!(IsolationLevel::ReadCommitted.wire(), 1);
        assert_eq!(IsolationLevel::default().wire(), 0);
    }

    #[test]
    fn new_topic_carries_configs_to_the_request() {
        let t = NewTopic::new("t", 3, 1).config("cleanup.policy", "compact");
        let c = creatable(&t);
        assert_eq!(c.name.0.as_str(), "t");
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.replication_factor, 1);
        assert_eq!(c.configs[0].name.as_str(), "cleanup.policy");
        assert_eq!(c.configs[0].value.as_deref(), Some("compact"));
    }

    #[test]
    fn cloned_connection_errors_share_their_cause() {
        let source = std::sync::Arc::new(crate::error::ConnectionError::Shutdown);
        let e = ClientError::Connection {
            broker: "b".into(),
            api: ApiKey::ListOffsets,
            source: source.clone(),
        };
        let ClientError::Connection { source: copy, .. } = clone_error(&e) else {
            panic!("not a connection error");
        };
        assert!(std::sync::Arc::ptr_eq(&copy, &source));
    }
}
