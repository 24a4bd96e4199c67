//! [`GroupConfig`]: the settings of one consumer-group membership.

use std::sync::Arc;
use std::time::Duration;

use super::assignor::{Assignor, RangeAssignor, RoundRobinAssignor};

/// Why a [`GroupConfig`] was rejected by [`GroupConfigBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupConfigError {
    /// `group.id` is empty.
    #[error("group.id must not be empty")]
    EmptyGroupId,
    /// No topic to subscribe to.
    #[error("the subscription must name at least one topic")]
    NoTopics,
    /// `group.instance.id` was set to the empty string.
    #[error("group.instance.id must not be empty when set")]
    EmptyGroupInstanceId,
    /// The heartbeat interval is not below a third of the session timeout.
    #[error(
        "heartbeat.interval.ms ({heartbeat_interval:?}) must be below a third of session.timeout.ms ({session_timeout:?})"
    )]
    HeartbeatTooSlow {
        /// The heartbeat interval.
        heartbeat_interval: Duration,
        /// The session timeout.
        session_timeout: Duration,
    },
    /// A duration that must be positive is zero.
    #[error("{name} must be greater than zero")]
    ZeroDuration {
        /// The Java property name.
        name: &'static str,
    },
    /// A duration does not fit the wire's `i32` milliseconds.
    #[error("{name} ({value:?}) exceeds the protocol's limit of i32::MAX milliseconds")]
    DurationTooLong {
        /// The Java property name.
        name: &'static str,
        /// The value given.
        value: Duration,
    },
    /// `retry.backoff.ms` exceeds `retry.backoff.max.ms`.
    #[error("retry.backoff.ms ({initial:?}) exceeds retry.backoff.max.ms ({max:?})")]
    BackoffAboveMax {
        /// `retry.backoff.ms`.
        initial: Duration,
        /// `retry.backoff.max.ms`.
        max: Duration,
    },
    /// No assignor configured.
    #[error("partition.assignment.strategy must name at least one assignor")]
    NoAssignors,
    /// Two assignors share a name.
    #[error("assignor {name:?} is configured twice")]
    DuplicateAssignor {
        /// The repeated name.
        name: &'static str,
    },
}

/// Settings of one consumer-group membership. Build with [`GroupConfig::builder`].
///
/// ```
/// use std::time::Duration;
/// use kafee_client::group::GroupConfig;
///
/// let config = GroupConfig::builder("payments", ["orders"])
///     .session_timeout(Duration::from_secs(30))
///     .heartbeat_interval(Duration::from_secs(3))
///     .group_instance_id("payments-0")
///     .build()
///     .unwrap();
/// assert_eq!(config.assignors()[0].name(), "range");
/// ```
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub(crate) group_id: String,
    pub(crate) topics: Vec<String>,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) assignors: Vec<Arc<dyn Assignor>>,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
}

impl GroupConfig {
    /// A builder for group `group_id` subscribing to `topics`, with Java's defaults.
    pub fn builder<I, S>(group_id: impl Into<String>, topics: I) -> GroupConfigBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        GroupConfigBuilder {
            config: GroupConfig {
                group_id: group_id.into(),
                topics: topics.into_iter().map(Into::into).collect(),
                session_timeout: Duration::from_secs(45),
                rebalance_timeout: Duration::from_secs(300),
                heartbeat_interval: Duration::from_secs(3),
                group_instance_id: None,
                rack_id: None,
                assignors: vec![Arc::new(RangeAssignor)],
                retry_backoff: Duration::from_millis(100),
                retry_backoff_max: Duration::from_secs(1),
            },
        }
    }

    /// `group.id`.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The subscribed topics, sorted and without duplicates.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// `session.timeout.ms`.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// `max.poll.interval.ms`, sent as JoinGroup's rebalance timeout.
    pub fn rebalance_timeout(&self) -> Duration {
        self.rebalance_timeout
    }

    /// `heartbeat.interval.ms`.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// `group.instance.id` (static membership), if set.
    pub fn group_instance_id(&self) -> Option<&str> {
        self.group_instance_id.as_deref()
    }

    /// `client.rack`, sent in the subscription (version 3), if set.
    pub fn rack_id(&self) -> Option<&str> {
        self.rack_id.as_deref()
    }

    /// `partition.assignment.strategy`, in preference order.
    pub fn assignors(&self) -> &[Arc<dyn Assignor>] {
        &self.assignors
    }

    /// `retry.backoff.ms`: the first retry delay.
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    /// `retry.backoff.max.ms`: the cap of the doubling retry delay.
    pub fn retry_backoff_max(&self) -> Duration {
        self.retry_backoff_max
    }
}

/// Builder of [`GroupConfig`]; every setter takes and returns `self`.
#[derive(Debug, Clone)]
pub struct GroupConfigBuilder {
    config: GroupConfig,
}

impl GroupConfigBuilder {
    /// `session.timeout.ms` (default 45 s): how long the coordinator keeps a
    /// member that sends no heartbeat. Also the client's own watchdog: with no
    /// successful heartbeat for this long the member assumes its partitions lost.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.config.session_timeout = timeout;
        self
    }

    /// `max.poll.interval.ms` (default 300 s), sent as the rebalance timeout:
    /// how long the coordinator waits for members to rejoin, so the upper
    /// bound on the time the revocation listener (the final commit) may take.
    pub fn rebalance_timeout(mut self, timeout: Duration) -> Self {
        self.config.rebalance_timeout = timeout;
        self
    }

    /// `heartbeat.interval.ms` (default 3 s); must stay below a third of the
    /// session timeout so that two lost heartbeats do not cost the membership.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// `group.instance.id` (default unset): static membership. A static member
    /// does not send LeaveGroup on close; the coordinator keeps its partitions
    /// for the session timeout so that a restart within it causes no rebalance.
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.config.group_instance_id = Some(id.into());
        self
    }

    /// `client.rack` (default unset), sent in the subscription for rack-aware assignors.
    pub fn rack_id(mut self, rack: impl Into<String>) -> Self {
        self.config.rack_id = Some(rack.into());
        self
    }

    /// `partition.assignment.strategy` (default `[range]`), in preference
    /// order. All members of a group must share at least one name.
    pub fn assignors(mut self, assignors: Vec<Arc<dyn Assignor>>) -> Self {
        self.config.assignors = assignors;
        self
    }

    /// Both built-in assignors, `range` preferred, as Java's default list
    /// before 3.0 (and librdkafka's `range,roundrobin`).
    pub fn range_and_roundrobin(self) -> Self {
        self.assignors(vec![Arc::new(RangeAssignor), Arc::new(RoundRobinAssignor)])
    }

    /// `retry.backoff.ms` (default 100 ms) and `retry.backoff.max.ms`
    /// (default 1 s): retries wait `initial * 2^n`, capped at `max`.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.retry_backoff = initial;
        self.config.retry_backoff_max = max;
        self
    }

    /// Validates the cross-field rules and returns the configuration.
    pub fn build(mut self) -> Result<GroupConfig, GroupConfigError> {
        let c = &mut self.config;
        if c.group_id.is_empty() {
            return Err(GroupConfigError::EmptyGroupId);
        }
        c.topics.retain(|t| !t.is_empty());
        c.topics.sort();
        c.topics.dedup();
        if c.topics.is_empty() {
            return Err(GroupConfigError::NoTopics);
        }
        if c.group_instance_id.as_deref() == Some("") {
            return Err(GroupConfigError::EmptyGroupInstanceId);
        }
        for (name, value) in [
            ("session.timeout.ms", c.session_timeout),
            ("max.poll.interval.ms", c.rebalance_timeout),
            ("heartbeat.interval.ms", c.heartbeat_interval),
            ("retry.backoff.ms", c.retry_backoff),
        ] {
            if value.is_zero() {
                return Err(GroupConfigError::ZeroDuration { name });
            }
            if value.as_millis() > i32::MAX as u128 {
                return Err(GroupConfigError::DurationTooLong { name, value });
            }
        }
        if c.heartbeat_interval >= c.session_timeout / 3 {
            return Err(GroupConfigError::HeartbeatTooSlow {
                heartbeat_interval: c.heartbeat_interval,
                session_timeout: c.session_timeout,
            });
        }
        if c.retry_backoff > c.retry_backoff_max {
            return Err(GroupConfigError::BackoffAboveMax {
                initial: c.retry_backoff,
                max: c.retry_backoff_max,
            });
        }
        if c.assignors.is_empty() {
            return Err(GroupConfigError::NoAssignors);
        }
        for (i, a) in c.assignors.iter().enumerate() {
            if c.assignors[..i].iter().any(|b| b.name() == a.name()) {
                return Err(GroupConfigError::DuplicateAssignor { name: a.name() });
            }
        }
        Ok(self.config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_javas() {
        let c = GroupConfig::builder("g", ["b", "a", "b"]).build().unwrap();
        assert_eq!(c.topics(), ["a", "b"]);
        assert_eq!(c.session_timeout(), Duration::from_secs(45));
        assert_eq!(c.rebalance_timeout(), Duration::from_secs(300));
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(3));
        assert_eq!(c.retry_backoff(), Duration::from_millis(100));
        assert_eq!(c.retry_backoff_max(), Duration::from_secs(1));
        assert_eq!(c.group_instance_id(), None);
        assert_eq!(c.assignors().len(), 1);
    }

    #[test]
    fn cross_field_rules_are_enforced() {
        let err = GroupConfig::builder("g", ["t"])
            .session_timeout(Duration::from_secs(9))
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "heartbeat.interval.ms (3s) must be below a third of session.timeout.ms (9s)"
        );
        assert_eq!(
            GroupConfig::builder("", ["t"]).build().unwrap_err(),
            GroupConfigError::EmptyGroupId
        );
        assert_eq!(
            GroupConfig::builder("g", Vec::<String>::new())
                .build()
                .unwrap_err(),
            GroupConfigError::NoTopics
        );
        assert_eq!(
            GroupConfig::builder("g", ["t"])
                .group_instance_id("")
                .build()
                .unwrap_err(),
            GroupConfigError::EmptyGroupInstanceId
        );
        assert!(matches!(
            GroupConfig::builder("g", ["t"])
                .retry_backoff(Duration::from_secs(2), Duration::from_secs(1))
                .build(),
            Err(GroupConfigError::BackoffAboveMax { .. })
        ));
        assert_eq!(
            GroupConfig::builder("g", ["t"])
                .assignors(vec![])
                .build()
                .unwrap_err(),
            GroupConfigError::NoAssignors
        );
        assert_eq!(
            GroupConfig::builder("g", ["t"])
                .assignors(vec![Arc::new(RangeAssignor), Arc::new(RangeAssignor)])
                .build()
                .unwrap_err(),
            GroupConfigError::DuplicateAssignor { name: "range" }
        );
        assert_eq!(
            GroupConfig::builder("g", ["t"])
                .rebalance_timeout(Duration::ZERO)
                .build()
                .unwrap_err(),
            GroupConfigError::ZeroDuration {
                name: "max.poll.interval.ms"
            }
        );
        assert!(matches!(
            GroupConfig::builder("g", ["t"])
                .rebalance_timeout(Duration::from_secs(3_000_000))
                .build(),
            Err(GroupConfigError::DurationTooLong { .. })
        ));
    }
}
