//! The cluster metadata cache: brokers, topics, partitions, leaders and
//! leader epochs.
//!
//! Sans-IO: [`MetadataCache`] is fed Metadata responses and `now`;
//! [`crate::cluster::Cluster`] sends the requests.
//!
//! Invariant: a partition's cached leader epoch never goes backwards. A
//! Metadata response from a broker that lags behind (it has not seen the
//! latest leader election yet) carries an older epoch; its leader for that
//! partition is ignored, as the Java client does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafee_protocol::error::{ConsumerAction, ErrorCode};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;

/// UNKNOWN_TOPIC_OR_PARTITION.
pub(crate) const UNKNOWN_TOPIC_OR_PARTITION: i16 = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0;

/// Whether cached metadata must be refreshed before retrying after `code`:
/// the leader moved or is unknown, or the topic changed under us
/// (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE,
/// FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, NOT_CONTROLLER, ...: every code
/// whose [`ErrorCode::consumer_action`] is
/// [`ConsumerAction::RefreshMetadata`]).
pub fn calls_for_refresh(code: ErrorCode) -> bool {
    code.consumer_action() == ConsumerAction::RefreshMetadata
}

/// One broker as the metadata names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker's node id.
    pub node_id: i32,
    /// Host name to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: i32,
    /// The rack, if the broker has one.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, as a socket address string (`[v6]:port` for IPv6 literals).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id, `-1` while there is none.
    pub leader_id: i32,
    /// The leader epoch, `-1` if the broker does not say.
    pub leader_epoch: i32,
    /// Node ids of the replicas.
    pub replicas: Vec<i32>,
    /// Node ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// The partition's error code (LEADER_NOT_AVAILABLE while electing, ...).
    pub error_code: i16,
}

impl PartitionInfo {
    /// The leader's node id, if the partition has a leader now.
    pub fn leader(&self) -> Option<i32> {
        (self.leader_id >= 0).then_some(self.leader_id)
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic name.
    pub name: String,
    /// The topic id (all zero when the broker does not send one).
    pub topic_id: [u8; 16],
    /// Whether this is an internal topic (`__consumer_offsets`, ...).
    pub is_internal: bool,
    /// The topic's error code (LEADER_NOT_AVAILABLE right after creation, ...).
    pub error_code: i16,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionInfo>,
}

impl TopicInfo {
    /// Whether the topic has no error and every partition has a leader.
    pub fn is_ready(&self) -> bool {
        self.error_code == 0
            && !self.partitions.is_empty()
            && self
                .partitions
                .values()
                .all(|p| p.error_code == 0 && p.leader().is_some())
    }
}

/// What the cache says about one topic after a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicState {
    /// Known, with partitions.
    Known,
    /// The broker does not know it (UNKNOWN_TOPIC_OR_PARTITION).
    Unknown,
    /// The broker answered another error code for it.
    Error(i16),
}

/// Brokers, topics, partitions, leaders and leader epochs of one cluster.
#[derive(Debug, Clone, Default)]
pub struct MetadataCache {
    brokers: BTreeMap<i32, BrokerInfo>,
    topics: BTreeMap<String, TopicInfo>,
    topic_errors: BTreeMap<String, i16>,
    controller_id: Option<i32>,
    cluster_id: Option<String>,
    updated_at: Option<Instant>,
    stale: bool,
}

impl MetadataCache {
    /// An empty cache (it needs a refresh).
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a Metadata response received at `now`.
    ///
    /// Brokers are replaced by the response's list. Each topic in the
    /// response replaces the cached one, except that a partition whose cached
    /// leader epoch is newer than the response's keeps its cached leader.
    /// A topic answered with UNKNOWN_TOPIC_OR_PARTITION is dropped.
    pub fn apply(&mut self, response: &MetadataResponse, now: Instant) {
        if !response.brokers.is_empty() {
            self.brokers = response
                .brokers
                .iter()
                .map(|b| {
                    (
                        b.node_id.0,
                        BrokerInfo {
                            node_id: b.node_id.0,
                            host: b.host.to_string(),
                            port: b.port,
                            rack: b.rack.as_ref().map(|r| r.to_string()),
                        },
                    )
                })
                .collect();
        }
        self.controller_id = (response.controller_id.0 >= 0).then_some(response.controller_id.0);
        if let Some(id) = &response.cluster_id {
            self.cluster_id = Some(id.to_string());
        }
        for topic in &response.topics {
            let Some(name) = &topic.name else { continue };
            let name = name.0.to_string();
            if topic.error_code == UNKNOWN_TOPIC_OR_PARTITION {
                self.topics.remove(&name);
                self.topic_errors.insert(name, topic.error_code);
                continue;
            }
            let old = self.topics.remove(&name);
            let mut partitions = BTreeMap::new();
            for p in &topic.partitions {
                let fresh = PartitionInfo {
                    partition: p.partition_index,
                    leader_id: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                };
                let kept = old
                    .as_ref()
                    .and_then(|t| t.partitions.get(&p.partition_index))
                    .filter(|cached| cached.leader_epoch > fresh.leader_epoch)
                    .cloned();
                if kept.is_some() {
                    tracing::debug!(topic = %name, partition = p.partition_index,
                        "ignoring metadata with an older leader epoch");
                }
                partitions.insert(p.partition_index, kept.unwrap_or(fresh));
            }
            if topic.error_code == 0 {
                self.topic_errors.remove(&name);
            } else {
                self.topic_errors.insert(name.clone(), topic.error_code);
            }
            self.topics.insert(
                name.clone(),
                TopicInfo {
                    name,
                    topic_id: *topic.topic_id.as_bytes(),
                    is_internal: topic.is_internal,
                    error_code: topic.error_code,
                    partitions,
                },
            );
        }
        self.updated_at = Some(now);
        self.stale = false;
    }

    /// Marks the cache for refresh on next use (a connection died, a leader moved).
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Whether the cache must be refreshed: marked stale, never filled, or older than `max_age`.
    pub fn needs_refresh(&self, now: Instant, max_age: Duration) -> bool {
        match self.updated_at {
            None => true,
            Some(at) => self.stale || now.saturating_duration_since(at) >= max_age,
        }
    }

    /// The broker with this node id.
    pub fn broker(&self, node_id: i32) -> Option<&BrokerInfo> {
        self.brokers.get(&node_id)
    }

    /// Every broker, by node id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values()
    }

    /// The controller's node id, if the broker said.
    pub fn controller_id(&self) -> Option<i32> {
        self.controller_id
    }

    /// The cluster id, if the broker said.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// A topic, if known.
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    /// What the last refresh said about a topic; `None` if never asked.
    pub fn topic_state(&self, name: &str) -> Option<TopicState> {
        match (self.topics.get(name), self.topic_errors.get(name)) {
            (_, Some(&UNKNOWN_TOPIC_OR_PARTITION)) => Some(TopicState::Unknown),
            (_, Some(&code)) => Some(TopicState::Error(code)),
            (Some(_), None) => Some(TopicState::Known),
            (None, None) => None,
        }
    }

    /// Names of the topics the cache tracks (refreshed with every request).
    pub fn topic_names(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }

    /// Stops tracking a topic.
    pub fn forget_topic(&mut self, name: &str) {
        self.topics.remove(name);
        self.topic_errors.remove(name);
    }

    /// The partition's leader and leader epoch, if it has a leader.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<(i32, i32)> {
        let p = self.topics.get(topic)?.partitions.get(&partition)?;
        p.leader().map(|l| (l, p.leader_epoch))
    }
}

/// A Metadata request for exactly `topics` (none: brokers only), at
/// `version`, never auto-creating topics.
pub fn metadata_request(version: i16, topics: &[String]) -> MetadataRequest {
    let topics = topics
        .iter()
        .map(|t| {
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
        })
        .collect();
    let request = MetadataRequest::default().with_topics(Some(topics));
    if version >= 4 {
        request.with_allow_auto_topic_creation(false)
    } else {
        request
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::BrokerId;
    use proptest::prelude::*;

    fn partition(index: i32, leader: i32, epoch: i32) -> MetadataResponsePartition {
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(epoch)
    }

    fn response(topic: &str, partitions: Vec<MetadataResponsePartition>) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(9092)])
            .with_controller_id(BrokerId(1))
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))
                .with_partitions(partitions)])
    }

    #[test]
    fn apply_fills_brokers_topics_and_leaders() {
        let mut cache = MetadataCache::new();
        let now = Instant::now();
        assert!(cache.needs_refresh(now, Duration::from_secs(300)));
        cache.apply(
            &response("t", vec![partition(0, 1, 3), partition(1, -1, 3)]),
            now,
        );
        assert_eq!(cache.broker(1).unwrap().addr(), "127.0.0.1:9092");
        assert_eq!(cache.controller_id(), Some(1));
        assert_eq!(cache.leader("t", 0), Some((1, 3)));
        assert_eq!(cache.leader("t", 1), None);
        assert!(!cache.topic("t").unwrap().is_ready());
        assert_eq!(cache.topic_state("t"), Some(TopicState::Known));
        assert!(!cache.needs_refresh(now, Duration::from_secs(300)));
        assert!(cache.needs_refresh(now + Duration::from_secs(300), Duration::from_secs(300)));
        cache.mark_stale();
        assert!(cache.needs_refresh(now, Duration::from_secs(300)));
    }

    #[test]
    fn unknown_topic_is_dropped_and_remembered() {
        let mut cache = MetadataCache::new();
        let now = Instant::now();
        cache.apply(&response("t", vec![partition(0, 1, 0)]), now);
        let mut gone = response("t", vec![]);
        gone.topics[0].error_code = UNKNOWN_TOPIC_OR_PARTITION;
        cache.apply(&gone, now);
        assert!(cache.topic("t").is_none());
        assert_eq!(cache.topic_state("t"), Some(TopicState::Unknown));
    }

    #[test]
    fn a_lagging_broker_cannot_move_the_leader_back() {
        let mut cache = MetadataCache::new();
        let now = Instant::now();
        cache.apply(&response("t", vec![partition(0, 2, 7)]), now);
        cache.apply(&response("t", vec![partition(0, 1, 6)]), now);
        assert_eq!(cache.leader("t", 0), Some((2, 7)));
        cache.apply(&response("t", vec![partition(0, 3, 8)]), now);
        assert_eq!(cache.leader("t", 0), Some((3, 8)));
    }

    #[test]
    fn request_never_auto_creates_and_suits_old_versions() {
        let r = metadata_request(12, &["a".into()]);
        assert!(!r.allow_auto_topic_creation);
        assert_eq!(r.topics.as_ref().unwrap().len(), 1);
        // v3 cannot carry the flag; the default must be left alone to encode.
        let r = metadata_request(3, &[]);
        assert!(r.allow_auto_topic_creation);
        let mut buf = bytes::BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&r, &mut buf, 3).unwrap();
    }

    #[test]
    fn refresh_codes_are_the_leader_and_topic_churn_codes() {
        for code in [3, 5, 6, 74, 75] {
            assert!(calls_for_refresh(ErrorCode(code)), "{code}");
        }
        for code in [0, 1, 7, 15, 16, 22, 27, 36] {
            assert!(!calls_for_refresh(ErrorCode(code)), "{code}");
        }
    }

    proptest! {
        /// Whatever order responses with various epochs arrive in, each
        /// partition ends up with the leader of the highest epoch seen.
        #[test]
        fn cached_epoch_is_the_highest_seen(
            updates in proptest::collection::vec(
                proptest::collection::vec((0i32..5, 0i32..100), 3), 1..40)
        ) {
            let mut cache = MetadataCache::new();
            let now = Instant::now();
            let mut best: BTreeMap<i32, (i32, i32)> = BTreeMap::new();
            for update in updates {
                let before: Vec<_> = (0..3).map(|p| cache.leader("t", p)).collect();
                let parts = update.iter().enumerate()
                    .map(|(p, &(leader, epoch))| partition(p as i32, leader, epoch))
                    .collect();
                cache.apply(&response("t", parts), now);
                for (p, &(leader, epoch)) in update.iter().enumerate() {
                    let p = p as i32;
                    let after = cache.leader("t", p).unwrap().1;
                    prop_assert!(before[p as usize].is_none_or(|(_, b)| after >= b));
                    let e = best.entry(p).or_insert((leader, epoch));
                    if epoch >= e.1 { *e = (leader, epoch); }
                    prop_assert_eq!(cache.leader("t", p), Some(*e));
                }
            }
        }
    }
}
