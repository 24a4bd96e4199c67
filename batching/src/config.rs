//! Batch-processing configuration: [`BatchConfig`] and [`DeadLetterConfig`].
//!
//! Names and defaults follow the Kafee (Elixir) batch-processing guide:
//! `mode` (`:single_message` by default, or `:batch`), `batch: [size: 100,
//! timeout: 1000 ms, max_bytes: 1_048_576]`, `acknowledgment: [strategy:
//! :all_or_nothing, dead_letter_max_retries: 3]`, `processing:
//! [max_in_flight_batches: 3]`. Options the guide lacks (timeout meaning,
//! wire-batch boundaries, backoff, commit interval, deadlines) carry their
//! own documented defaults.
//!
//! ```
//! use std::time::Duration;
//! use kafee_batching::{AckStrategy, BatchConfig, DeadLetterConfig, Mode};
//!
//! let config = BatchConfig::builder()
//!     .mode(Mode::Batch)
//!     .size(500)
//!     .timeout(Duration::from_millis(250))
//!     .ack_strategy(AckStrategy::LastSuccessful)
//!     .dead_letter(DeadLetterConfig::new("orders-dlq").max_retries(5))
//!     .build()
//!     .unwrap();
//! assert_eq!(config.size(), 500);
//! assert_eq!(config.max_attempts(), 5);
//! ```
use std::fmt;
use std::time::Duration;

use crate::accumulator::AccumulatorSettings;
use crate::strategy::Backoff;

/// Default `batch.size`: 100 messages (Kafee).
pub const DEFAULT_SIZE: usize = 100;
/// Default `batch.timeout`: 1000 ms (Kafee).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Default `batch.max_bytes`: 1 MiB (Kafee's 1_048_576).
pub const DEFAULT_MAX_BYTES: usize = 1_048_576;
/// Default `processing.max_in_flight_batches`: 3 (Kafee).
pub const DEFAULT_MAX_IN_FLIGHT_BATCHES: usize = 3;
/// Default `acknowledgment.dead_letter_max_retries`: 3 failed attempts (Kafee).
pub const DEFAULT_DEAD_LETTER_MAX_RETRIES: u32 = 3;
/// Default first retry backoff: 100 ms (Kafee's `retry_backoff_ms`).
pub const DEFAULT_RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Default retry backoff cap: 10 s.
pub const DEFAULT_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Default commit interval: 1 s.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Default revoke deadline: 30 s (well below Kafka's default rebalance
/// timeout, `max.poll.interval.ms` = 300 s).
pub const DEFAULT_REVOKE_DEADLINE: Duration = Duration::from_secs(30);
/// Default shutdown deadline: 30 s.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// Processing mode (Kafee's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// One message at a time, `handle_message` (Kafee's `:single_message`, the
    /// default). Equivalent to a batch size of 1.
    #[default]
    SingleMessage,
    /// Batches, `handle_batch` (Kafee's `:batch`).
    Batch,
}

/// What `batch.timeout` is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeoutFrom {
    /// From the batch's first message (default): no message waits longer than
    /// the timeout before its batch is handed out.
    #[default]
    FirstMessage,
    /// From the previous flush of the partition: batches are handed out at
    /// least every `timeout` while messages arrive. Hazard: after an idle
    /// period the first message is overdue at once and forms a batch of one.
    LastFlush,
}

/// Acknowledgment strategy (Kafee's `acknowledgment.strategy`). What each does
/// is decided in [`crate::strategy::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckStrategy {
    /// Commit only if every message succeeded; otherwise retry the same batch
    /// with backoff; after the maximum attempts dead-letter the failed
    /// messages (or keep retrying and warn without a dead-letter topic).
    #[default]
    AllOrNothing,
    /// Always commit past the batch; failed messages go to the dead-letter
    /// topic when one is configured, and are otherwise skipped (data loss
    /// the user accepted).
    BestEffort,
    /// Commit up to the first failed message and retry from it with backoff.
    LastSuccessful,
}

impl AckStrategy {
    /// Kafee's name: `all_or_nothing`, `best_effort`, `last_successful`.
    pub fn as_str(self) -> &'static str {
        match self {
            AckStrategy::AllOrNothing => "all_or_nothing",
            AckStrategy::BestEffort => "best_effort",
            AckStrategy::LastSuccessful => "last_successful",
        }
    }
}

impl fmt::Display for AckStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Dead-letter topic settings (Kafee's `dead_letter_topic` /
/// `dead_letter_max_retries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterConfig {
    topic: String,
    max_retries: u32,
}

impl DeadLetterConfig {
    /// Dead-letters to `topic`, after [`DEFAULT_DEAD_LETTER_MAX_RETRIES`]
    /// failed attempts.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            max_retries: DEFAULT_DEAD_LETTER_MAX_RETRIES,
        }
    }

    /// Failed attempts of a batch (or, with `last_successful`, of the first
    /// failed message) before its failed messages are dead-lettered. Kafee's
    /// `dead_letter_max_retries`, default 3; at least 1 (the first attempt
    /// counts).
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The dead-letter topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Failed attempts before dead-lettering.
    pub fn max_retries_value(&self) -> u32 {
        self.max_retries
    }
}

/// A configuration rule broken; the message names the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count or byte size that must be positive is 0.
    #[error("{option} must be at least 1")]
    Zero {
        /// The option, as named in the Kafee guide.
        option: &'static str,
    },
    /// A duration that must be positive is zero.
    #[error("{option} must be longer than zero")]
    ZeroDuration {
        /// The option.
        option: &'static str,
    },
    /// A batch option was set while the mode is single-message.
    #[error("{option} is a batch option but mode is single_message: set mode(Mode::Batch)")]
    BatchOptionInSingleMessageMode {
        /// The option.
        option: &'static str,
    },
    /// The first retry backoff exceeds the cap.
    #[error("retry backoff initial {initial:?} exceeds retry backoff max {max:?}")]
    BackoffInitialAboveMax {
        /// Initial backoff.
        initial: Duration,
        /// Cap.
        max: Duration,
    },
    /// The dead-letter topic name is empty.
    #[error("dead_letter topic must not be empty")]
    EmptyDeadLetterTopic,
    /// The revoke deadline does not leave room inside the rebalance timeout.
    #[error("revoke deadline {revoke_deadline:?} must be below the rebalance timeout {rebalance_timeout:?}")]
    RevokeDeadlineNotBelowRebalanceTimeout {
        /// The configured revoke deadline.
        revoke_deadline: Duration,
        /// The group's rebalance timeout.
        rebalance_timeout: Duration,
    },
}

/// Batch-processing configuration. Build with [`BatchConfig::builder`];
/// `BatchConfig::default()` is the validated default (single-message mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    mode: Mode,
    size: usize,
    timeout: Duration,
    max_bytes: usize,
    timeout_from: TimeoutFrom,
    respect_wire_batches: bool,
    ack_strategy: AckStrategy,
    max_in_flight_batches: usize,
    retry_backoff_initial: Duration,
    retry_backoff_max: Duration,
    commit_interval: Duration,
    revoke_deadline: Duration,
    shutdown_deadline: Duration,
    dead_letter: Option<DeadLetterConfig>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            mode: Mode::SingleMessage,
            size: DEFAULT_SIZE,
            timeout: DEFAULT_TIMEOUT,
            max_bytes: DEFAULT_MAX_BYTES,
            timeout_from: TimeoutFrom::FirstMessage,
            respect_wire_batches: false,
            ack_strategy: AckStrategy::AllOrNothing,
            max_in_flight_batches: DEFAULT_MAX_IN_FLIGHT_BATCHES,
            retry_backoff_initial: DEFAULT_RETRY_BACKOFF_INITIAL,
            retry_backoff_max: DEFAULT_RETRY_BACKOFF_MAX,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            revoke_deadline: DEFAULT_REVOKE_DEADLINE,
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
            dead_letter: None,
        }
    }
}

impl BatchConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> BatchConfigBuilder {
        BatchConfigBuilder::default()
    }

    /// Processing mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Effective messages per batch: 1 in single-message mode.
    pub fn size(&self) -> usize {
        match self.mode {
            Mode::SingleMessage => 1,
            Mode::Batch => self.size,
        }
    }
    /// Batch timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Wire bytes per batch.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
    /// What the timeout is measured from.
    pub fn timeout_from(&self) -> TimeoutFrom {
        self.timeout_from
    }
    /// Whether batches close only on producer record-batch boundaries.
    pub fn respect_wire_batches(&self) -> bool {
        self.respect_wire_batches
    }
    /// Acknowledgment strategy.
    pub fn ack_strategy(&self) -> AckStrategy {
        self.ack_strategy
    }
    /// Batches handled at once across partitions.
    pub fn max_in_flight_batches(&self) -> usize {
        self.max_in_flight_batches
    }
    /// Retry backoff schedule.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff::new(self.retry_backoff_initial, self.retry_backoff_max)
    }
    /// Commit interval.
    pub fn commit_interval(&self) -> Duration {
        self.commit_interval
    }
    /// Revoke deadline.
    pub fn revoke_deadline(&self) -> Duration {
        self.revoke_deadline
    }
    /// Shutdown deadline.
    pub fn shutdown_deadline(&self) -> Duration {
        self.shutdown_deadline
    }
    /// Dead-letter settings, if a dead-letter topic is configured.
    pub fn dead_letter(&self) -> Option<&DeadLetterConfig> {
        self.dead_letter.as_ref()
    }
    /// Failed attempts before dead-lettering (or, without a dead-letter
    /// topic, before the partition warns that it keeps retrying).
    pub fn max_attempts(&self) -> u32 {
        self.dead_letter
            .as_ref()
            .map_or(DEFAULT_DEAD_LETTER_MAX_RETRIES, |d| d.max_retries)
    }

    /// The per-partition accumulator's trigger settings.
    pub fn accumulator_settings(&self) -> AccumulatorSettings {
        AccumulatorSettings {
            size: self.size(),
            max_bytes: self.max_bytes,
            timeout: self.timeout,
            timeout_from: self.timeout_from,
            respect_wire_batches: self.respect_wire_batches,
        }
    }

    /// The decision policy for [`crate::strategy::decide`].
    pub fn ack_policy(&self) -> crate::strategy::AckPolicy {
        crate::strategy::AckPolicy {
            strategy: self.ack_strategy,
            max_attempts: self.max_attempts(),
            dead_letter: self.dead_letter.is_some(),
            backoff: self.retry_backoff(),
        }
    }

    /// Checks the revoke deadline against the group's rebalance timeout
    /// (`max.poll.interval.ms` in Java): in-flight batches of a revoked
    /// partition must be finished or abandoned before the group gives up on
    /// this member.
    pub fn check_rebalance_timeout(&self, rebalance_timeout: Duration) -> Result<(), ConfigError> {
        if self.revoke_deadline >= rebalance_timeout {
            return Err(ConfigError::RevokeDeadlineNotBelowRebalanceTimeout {
                revoke_deadline: self.revoke_deadline,
                rebalance_timeout,
            });
        }
        Ok(())
    }
}

/// Builder for [`BatchConfig`]; every setter takes and returns `self`, and
/// [`build`](Self::build) validates the cross-field rules.
#[derive(Debug, Clone, Default)]
pub struct BatchConfigBuilder {
    config: BatchConfig,
    batch_options_set: Option<&'static str>,
}

impl BatchConfigBuilder {
    fn batch_option(&mut self, option: &'static str) {
        self.batch_options_set.get_or_insert(option);
    }

    /// Processing mode. Default [`Mode::SingleMessage`] (Kafee's default).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }
    /// `batch.size`: messages per batch. Default 100. Batch mode only.
    pub fn size(mut self, size: usize) -> Self {
        self.config.size = size;
        self.batch_option("batch.size");
        self
    }
    /// `batch.timeout`: the longest a message waits in an unfinished batch
    /// (see [`timeout_from`](Self::timeout_from)). Default 1000 ms. Batch mode
    /// only. Hazard: a timeout close to the handler's run time leaves little
    /// room for batches to fill.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self.batch_option("batch.timeout");
        self
    }
    /// `batch.max_bytes`: wire bytes per batch, record headers included.
    /// Default 1_048_576. A single larger message forms its own batch. Batch
    /// mode only. Memory held in batches is bounded by about
    /// `max_in_flight_batches x max_bytes` plus the fetch buffer.
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.config.max_bytes = max_bytes;
        self.batch_option("batch.max_bytes");
        self
    }
    /// What the timeout is measured from. Default [`TimeoutFrom::FirstMessage`].
    /// Batch mode only.
    pub fn timeout_from(mut self, timeout_from: TimeoutFrom) -> Self {
        self.config.timeout_from = timeout_from;
        self.batch_option("batch.timeout_from");
        self
    }
    /// Close batches only on producer record-batch boundaries (never split a
    /// wire batch). Default false. Batch mode only. Batches may then exceed
    /// `size` and `max_bytes` by up to one wire batch.
    pub fn respect_wire_batches(mut self, respect: bool) -> Self {
        self.config.respect_wire_batches = respect;
        if respect {
            self.batch_option("batch.respect_wire_batches");
        }
        self
    }
    /// `acknowledgment.strategy`. Default [`AckStrategy::AllOrNothing`].
    pub fn ack_strategy(mut self, strategy: AckStrategy) -> Self {
        self.config.ack_strategy = strategy;
        self
    }
    /// `processing.max_in_flight_batches`: batches handled at once across all
    /// partitions (one at a time per partition). Default 3.
    pub fn max_in_flight_batches(mut self, n: usize) -> Self {
        self.config.max_in_flight_batches = n;
        self
    }
    /// Retry backoff: first delay and cap; each failed attempt doubles the
    /// delay. Default 100 ms and 10 s.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.retry_backoff_initial = initial;
        self.config.retry_backoff_max = max;
        self
    }
    /// Offsets are committed at most this often (and at rebalance and
    /// shutdown). Default 1 s. Hazard: after a crash, up to this much
    /// finished work is handled again.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.config.commit_interval = interval;
        self
    }
    /// How long in-flight batches of revoked partitions may run before they
    /// are abandoned uncommitted. Default 30 s. Must stay below the group's
    /// rebalance timeout ([`BatchConfig::check_rebalance_timeout`]).
    pub fn revoke_deadline(mut self, deadline: Duration) -> Self {
        self.config.revoke_deadline = deadline;
        self
    }
    /// How long shutdown waits for in-flight batches before committing what
    /// finished and leaving. Default 30 s.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.config.shutdown_deadline = deadline;
        self
    }
    /// Dead-letter topic settings. Default: none.
    pub fn dead_letter(mut self, dead_letter: DeadLetterConfig) -> Self {
        self.config.dead_letter = Some(dead_letter);
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<BatchConfig, ConfigError> {
        let c = self.config;
        if c.mode == Mode::SingleMessage {
            if let Some(option) = self.batch_options_set {
                return Err(ConfigError::BatchOptionInSingleMessageMode { option });
            }
        }
        if c.size == 0 {
            return Err(ConfigError::Zero {
                option: "batch.size",
            });
        }
        if c.max_bytes == 0 {
            return Err(ConfigError::Zero {
                option: "batch.max_bytes",
            });
        }
        if c.max_in_flight_batches == 0 {
            return Err(ConfigError::Zero {
                option: "processing.max_in_flight_batches",
            });
        }
        for (option, d) in [
            ("batch.timeout", c.timeout),
            ("retry backoff initial", c.retry_backoff_initial),
            ("commit_interval", c.commit_interval),
            ("revoke_deadline", c.revoke_deadline),
            ("shutdown_deadline", c.shutdown_deadline),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration { option });
            }
        }
        if c.retry_backoff_initial > c.retry_backoff_max {
            return Err(ConfigError::BackoffInitialAboveMax {
                initial: c.retry_backoff_initial,
                max: c.retry_backoff_max,
            });
        }
        if let Some(d) = &c.dead_letter {
            if d.topic.is_empty() {
                return Err(ConfigError::EmptyDeadLetterTopic);
            }
            if d.max_retries == 0 {
                return Err(ConfigError::Zero {
                    option: "dead_letter_max_retries",
                });
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_kafee() {
        let c = BatchConfig::builder().build().unwrap();
        assert_eq!(c, BatchConfig::default());
        assert_eq!(c.mode(), Mode::SingleMessage);
        assert_eq!(c.size(), 1, "single-message mode is size 1");
        let b = BatchConfig::builder().mode(Mode::Batch).build().unwrap();
        assert_eq!(b.size(), 100);
        assert_eq!(b.timeout(), Duration::from_millis(1000));
        assert_eq!(b.max_bytes(), 1_048_576);
        assert_eq!(b.max_in_flight_batches(), 3);
        assert_eq!(b.ack_strategy(), AckStrategy::AllOrNothing);
        assert_eq!(b.max_attempts(), 3);
        assert_eq!(b.timeout_from(), TimeoutFrom::FirstMessage);
        assert!(!b.respect_wire_batches());
        assert!(b.dead_letter().is_none());
        let s = b.accumulator_settings();
        assert_eq!((s.size, s.max_bytes), (100, 1_048_576));
        assert_eq!(AckStrategy::LastSuccessful.to_string(), "last_successful");
    }

    #[test]
    fn batch_option_in_single_message_mode_is_rejected() {
        let err = BatchConfig::builder().size(10).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch.size is a batch option but mode is single_message: set mode(Mode::Batch)"
        );
        let err = BatchConfig::builder()
            .respect_wire_batches(true)
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::BatchOptionInSingleMessageMode {
                option: "batch.respect_wire_batches"
            }
        );
    }

    #[test]
    fn zero_values_are_rejected() {
        let batch = || BatchConfig::builder().mode(Mode::Batch);
        assert_eq!(
            batch().size(0).build().unwrap_err(),
            ConfigError::Zero {
                option: "batch.size"
            }
        );
        assert_eq!(
            batch().max_bytes(0).build().unwrap_err(),
            ConfigError::Zero {
                option: "batch.max_bytes"
            }
        );
        assert_eq!(
            batch()
                .max_in_flight_batches(0)
                .build()
                .unwrap_err()
                .to_string(),
            "processing.max_in_flight_batches must be at least 1"
        );
        assert_eq!(
            batch().timeout(Duration::ZERO).build().unwrap_err(),
            ConfigError::ZeroDuration {
                option: "batch.timeout"
            }
        );
        assert_eq!(
            batch().commit_interval(Duration::ZERO).build().unwrap_err(),
            ConfigError::ZeroDuration {
                option: "commit_interval"
            }
        );
    }

    #[test]
    fn backoff_and_dead_letter_rules() {
        let err = BatchConfig::builder()
            .retry_backoff(Duration::from_secs(5), Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::BackoffInitialAboveMax { .. }));
        let err = BatchConfig::builder()
            .dead_letter(DeadLetterConfig::new(""))
            .build()
            .unwrap_err();
        assert_eq!(err, ConfigError::EmptyDeadLetterTopic);
        let err = BatchConfig::builder()
            .dead_letter(DeadLetterConfig::new("dlq").max_retries(0))
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "dead_letter_max_retries must be at least 1"
        );
        let c = BatchConfig::builder()
            .dead_letter(DeadLetterConfig::new("dlq").max_retries(7))
            .build()
            .unwrap();
        assert_eq!(c.max_attempts(), 7);
        assert_eq!(c.dead_letter().map(DeadLetterConfig::topic), Some("dlq"));
        assert!(c.ack_policy().dead_letter);
    }

    #[test]
    fn revoke_deadline_must_be_below_rebalance_timeout() {
        let c = BatchConfig::builder()
            .revoke_deadline(Duration::from_secs(60))
            .build()
            .unwrap();
        assert!(c.check_rebalance_timeout(Duration::from_secs(300)).is_ok());
        let err = c
            .check_rebalance_timeout(Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::RevokeDeadlineNotBelowRebalanceTimeout { .. }
        ));
    }
}
