//! Producer configuration.

use std::time::Duration;

use kafee_protocol::records::Compression;

/// `acks`: how many replicas must have the records before the broker answers.
///
/// There is no `acks=0`: a Produce without a response cannot tell the caller
/// anything, and a dead-letter record must be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// `acks=all` (`-1`): every in-sync replica has the records (at least
    /// `min.insync.replicas` of them). The default and the only setting that
    /// keeps a dead-letter record through the loss of the leader.
    #[default]
    All,
    /// `acks=1`: the leader has written them; they are lost if it dies before
    /// a follower copies them.
    Leader,
}

impl Acks {
    /// The value on the wire (`-1` or `1`).
    pub fn wire(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
        }
    }
}

/// A configuration that [`ProducerConfigBuilder::build`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerConfigError {
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// A byte count that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroBytes(&'static str),
    /// A setting exceeds what the protocol (an i32 of milliseconds or bytes)
    /// or the buffer accounting (a u32 of bytes) can carry.
    #[error("{setting} ({value}) exceeds its limit of {limit}")]
    TooLarge {
        /// The setting.
        setting: &'static str,
        /// Its value (milliseconds for durations).
        value: u128,
        /// The largest accepted value.
        limit: u128,
    },
    /// `batch.size` exceeds `max.request.size` (a full batch could never be sent).
    #[error("batch.size ({batch_size}) exceeds max.request.size ({max_request_size})")]
    BatchAboveRequest {
        /// `batch.size`.
        batch_size: usize,
        /// `max.request.size`.
        max_request_size: usize,
    },
    /// `buffer.memory` is below `max.request.size` (the largest record could
    /// never be buffered).
    #[error("buffer.memory ({buffer_memory}) is below max.request.size ({max_request_size})")]
    BufferBelowRequest {
        /// `buffer.memory`.
        buffer_memory: usize,
        /// `max.request.size`.
        max_request_size: usize,
    },
    /// `delivery.timeout.ms` is below `linger.ms + request.timeout.ms` (Java's
    /// rule: a record must get at least one whole attempt).
    #[error(
        "delivery.timeout.ms ({delivery_timeout:?}) must be at least linger.ms + request.timeout.ms \
         ({linger:?} + {request_timeout:?})"
    )]
    DeliveryBelowLingerPlusRequest {
        /// `delivery.timeout.ms`.
        delivery_timeout: Duration,
        /// `linger.ms`.
        linger: Duration,
        /// `request.timeout.ms`.
        request_timeout: Duration,
    },
    /// `enable.idempotence` with `acks` other than `all`.
    #[error("enable.idempotence requires acks=all")]
    IdempotenceNeedsAcksAll,
    /// `retry.backoff.ms` exceeds `retry.backoff.max.ms`.
    #[error("retry.backoff.ms ({backoff:?}) exceeds retry.backoff.max.ms ({max:?})")]
    BackoffAboveMax {
        /// `retry.backoff.ms`.
        backoff: Duration,
        /// `retry.backoff.max.ms`.
        max: Duration,
    },
}

/// Settings of a [`crate::produce::Producer`]. Build one with
/// [`ProducerConfig::builder`]; [`ProducerConfig::default`] gives the
/// defaults.
///
/// ```
/// use std::time::Duration;
/// use kafee_client::produce::ProducerConfig;
///
/// let config = ProducerConfig::builder()
///     .linger(Duration::from_millis(20))
///     .delivery_timeout(Duration::from_secs(60))
///     .build()
///     .unwrap();
/// assert_eq!(config.batch_size(), 256 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    acks: Acks,
    linger: Duration,
    batch_size: usize,
    max_request_size: usize,
    buffer_memory: usize,
    compression: Compression,
    request_timeout: Duration,
    delivery_timeout: Duration,
    retry_backoff: Duration,
    retry_backoff_max: Duration,
    idempotence: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 256 * 1024,
            max_request_size: 1024 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            compression: Compression::None,
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            idempotence: false,
        }
    }
}

impl ProducerConfig {
    /// A builder with every default filled in.
    pub fn builder() -> ProducerConfigBuilder {
        ProducerConfigBuilder {
            config: ProducerConfig::default(),
        }
    }

    /// `acks` (default [`Acks::All`]).
    pub fn acks(&self) -> Acks {
        self.acks
    }

    /// `linger.ms` (default 5 ms, Java's default since Kafka 4.0): how long a
    /// batch waits for more records before it is sent, unless it fills first
    /// or a flush asks for it.
    pub fn linger(&self) -> Duration {
        self.linger
    }

    /// `batch.size` in bytes (default 256 KiB; Java's is 16 KiB): a batch is
    /// sent as soon as the next record would take it past this size. Larger
    /// than Java's because dead-letter records arrive in bursts (a failed
    /// batch of the consumer) and are often whole payloads. A single record
    /// larger than this gets a batch of its own.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// `max.request.size` in bytes (default 1 MiB, as Java): the largest
    /// Produce request; a record larger than this is refused at once with
    /// [`crate::produce::ProduceError::RecordTooLarge`]. The broker's
    /// `message.max.bytes` (1 MiB by default) must also admit the batch.
    pub fn max_request_size(&self) -> usize {
        self.max_request_size
    }

    /// `buffer.memory` in bytes (default 32 MiB, as Java): records waiting
    /// for their acknowledgement may take this much (estimated, uncompressed).
    /// [`crate::produce::Producer::send`] waits for room;
    /// [`crate::produce::Producer::enqueue`] fails with
    /// [`crate::produce::ProduceError::BufferFull`].
    pub fn buffer_memory(&self) -> usize {
        self.buffer_memory
    }

    /// `compression.type` (default none).
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// `request.timeout.ms` (default 30 s): how long the broker may wait for
    /// the replicas (the request's `timeout_ms`) and how long we wait for
    /// its answer. A request that times out is retried: its outcome is
    /// unknown, so the records may be written twice.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// `delivery.timeout.ms` (default 120 s, as Java): the bound on the time
    /// between handing a record over and its result, retries included. Also
    /// bounds the wait for a topic missing from the metadata.
    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }

    /// `retry.backoff.ms` (default 100 ms): the first delay before retrying a
    /// batch, doubled per attempt up to [`ProducerConfig::retry_backoff_max`].
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    /// `retry.backoff.max.ms` (default 1 s).
    pub fn retry_backoff_max(&self) -> Duration {
        self.retry_backoff_max
    }

    /// `enable.idempotence` (default off; Java's default is on): the producer
    /// takes a producer id (InitProducerId) and numbers its batches per
    /// partition, so the broker drops a batch it already wrote when a retry
    /// resends it after a lost answer. A batch that fails for good leaves a
    /// gap in the numbering; the producer then takes a new producer id.
    /// Needs `acks=all` (checked by [`ProducerConfigBuilder::build`]) and a
    /// broker that grants producer ids (IDEMPOTENT_WRITE permission).
    pub fn idempotence(&self) -> bool {
        self.idempotence
    }
}

/// Builder of [`ProducerConfig`]; [`ProducerConfigBuilder::build`] validates.
#[derive(Debug, Clone)]
pub struct ProducerConfigBuilder {
    config: ProducerConfig,
}

impl ProducerConfigBuilder {
    /// See [`ProducerConfig::acks`].
    pub fn acks(mut self, acks: Acks) -> Self {
        self.config.acks = acks;
        self
    }

    /// See [`ProducerConfig::linger`]. Zero sends at once.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// See [`ProducerConfig::batch_size`].
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.config.batch_size = bytes;
        self
    }

    /// See [`ProducerConfig::max_request_size`].
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.config.max_request_size = bytes;
        self
    }

    /// See [`ProducerConfig::buffer_memory`].
    pub fn buffer_memory(mut self, bytes: usize) -> Self {
        self.config.buffer_memory = bytes;
        self
    }

    /// See [`ProducerConfig::compression`].
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// See [`ProducerConfig::request_timeout`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// See [`ProducerConfig::delivery_timeout`].
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.config.delivery_timeout = timeout;
        self
    }

    /// See [`ProducerConfig::retry_backoff`] and
    /// [`ProducerConfig::retry_backoff_max`].
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.retry_backoff = initial;
        self.config.retry_backoff_max = max;
        self
    }

    /// See [`ProducerConfig::idempotence`].
    pub fn idempotence(mut self, enabled: bool) -> Self {
        self.config.idempotence = enabled;
        self
    }

    /// Checks every field and the rules between them.
    pub fn build(self) -> Result<ProducerConfig, ProducerConfigError> {
        let c = self.config;
        for (name, d) in [
            ("request.timeout.ms", c.request_timeout),
            ("delivery.timeout.ms", c.delivery_timeout),
            ("retry.backoff.ms", c.retry_backoff),
        ] {
            if d.is_zero() {
                return Err(ProducerConfigError::ZeroDuration(name));
            }
        }
        for (name, d) in [
            ("request.timeout.ms", c.request_timeout),
            ("linger.ms", c.linger),
        ] {
            if d.as_millis() > i32::MAX as u128 {
                return Err(ProducerConfigError::TooLarge {
                    setting: name,
                    value: d.as_millis(),
                    limit: i32::MAX as u128,
                });
            }
        }
        for (name, n) in [
            ("batch.size", c.batch_size),
            ("max.request.size", c.max_request_size),
            ("buffer.memory", c.buffer_memory),
        ] {
            if n == 0 {
                return Err(ProducerConfigError::ZeroBytes(name));
            }
        }
        if c.max_request_size > i32::MAX as usize {
            return Err(ProducerConfigError::TooLarge {
                setting: "max.request.size",
                value: c.max_request_size as u128,
                limit: i32::MAX as u128,
            });
        }
        if c.buffer_memory > u32::MAX as usize {
            return Err(ProducerConfigError::TooLarge {
                setting: "buffer.memory",
                value: c.buffer_memory as u128,
                limit: u32::MAX as u128,
            });
        }
        if c.batch_size > c.max_request_size {
            return Err(ProducerConfigError::BatchAboveRequest {
                batch_size: c.batch_size,
                max_request_size: c.max_request_size,
            });
        }
        if c.buffer_memory < c.max_request_size {
            return Err(ProducerConfigError::BufferBelowRequest {
                buffer_memory: c.buffer_memory,
                max_request_size: c.max_request_size,
            });
        }
        if c.delivery_timeout < c.linger.saturating_add(c.request_timeout) {
            return Err(ProducerConfigError::DeliveryBelowLingerPlusRequest {
                delivery_timeout: c.delivery_timeout,
                linger: c.linger,
                request_timeout: c.request_timeout,
            });
        }
        if c.idempotence && c.acks != Acks::All {
            return Err(ProducerConfigError::IdempotenceNeedsAcksAll);
        }
        if c.retry_backoff > c.retry_backoff_max {
            return Err(ProducerConfigError::BackoffAboveMax {
                backoff: c.retry_backoff,
                max: c.retry_backoff_max,
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = ProducerConfig::builder().build().unwrap();
        assert_eq!(c, ProducerConfig::default());
        assert_eq!(c.acks().wire(), -1);
        assert_eq!(c.linger(), Duration::from_millis(5));
        assert_eq!(c.batch_size(), 262_144);
        assert_eq!(c.max_request_size(), 1_048_576);
        assert_eq!(c.delivery_timeout(), Duration::from_secs(120));
        assert_eq!(c.compression(), Compression::None);
    }

    #[test]
    fn cross_field_rules_are_enforced_with_clear_messages() {
        let e = ProducerConfig::builder()
            .request_timeout(Duration::from_secs(30))
            .delivery_timeout(Duration::from_secs(10))
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "delivery.timeout.ms (10s) must be at least linger.ms + request.timeout.ms (5ms + 30s)"
        );
        let e = ProducerConfig::builder()
            .batch_size(2 << 20)
            .build()
            .unwrap_err();
        assert_eq!(
            e,
            ProducerConfigError::BatchAboveRequest {
                batch_size: 2 << 20,
                max_request_size: 1 << 20
            }
        );
        let e = ProducerConfig::builder()
            .buffer_memory(1000)
            .batch_size(100)
            .build()
            .unwrap_err();
        assert!(matches!(e, ProducerConfigError::BufferBelowRequest { .. }));
        let e = ProducerConfig::builder()
            .retry_backoff(Duration::from_secs(2), Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(matches!(e, ProducerConfigError::BackoffAboveMax { .. }));
        let e = ProducerConfig::builder()
            .request_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "request.timeout.ms must be greater than zero"
        );
        let e = ProducerConfig::builder()
            .idempotence(true)
            .acks(Acks::Leader)
            .build()
            .unwrap_err();
        assert_eq!(e.to_string(), "enable.idempotence requires acks=all");
        assert!(ProducerConfig::builder()
            .idempotence(true)
            .build()
            .unwrap()
            .idempotence());
        let e = ProducerConfig::builder().batch_size(0).build().unwrap_err();
        assert_eq!(e, ProducerConfigError::ZeroBytes("batch.size"));
    }
}
