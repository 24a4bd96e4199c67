//! Client configuration: where the cluster is and how patient to be with it.
//!
//! Build one with [`ClientConfig::builder`]; [`ClientConfigBuilder::build`]
//! checks every field and the rules between fields.
//!
//! ```
//! use std::time::Duration;
//! use kafee_client::config::ClientConfig;
//!
//! let config = ClientConfig::builder()
//!     .bootstrap_servers(["127.0.0.1:9092"])
//!     .client_id("billing")
//!     .request_timeout(Duration::from_secs(10))
//!     .build()
//!     .unwrap();
//! assert_eq!(config.client_id(), "billing");
//! ```

use std::time::Duration;

/// A configuration that [`ClientConfigBuilder::build`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `bootstrap.servers` is empty.
    #[error("bootstrap.servers is empty")]
    NoBootstrapServers,
    /// A bootstrap server is not `host:port`.
    #[error("bootstrap server {0:?} is not host:port with a port in 1..=65535")]
    BadBootstrapServer(String),
    /// The client id is longer than a Kafka string can hold.
    #[error("client.id is {0} bytes long; at most 32767 fit in a request header")]
    ClientIdTooLong(usize),
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// `retry.backoff.ms` exceeds `retry.backoff.max.ms`.
    #[error("retry.backoff.ms ({backoff:?}) exceeds retry.backoff.max.ms ({max:?})")]
    BackoffAboveMax {
        /// `retry.backoff.ms`.
        backoff: Duration,
        /// `retry.backoff.max.ms`.
        max: Duration,
    },
    /// The frame limit is outside `MIN_FRAME_BYTES..=i32::MAX`.
    #[error("max_frame_bytes {0} is outside {min}..={max}", min = MIN_FRAME_BYTES, max = i32::MAX)]
    FrameLimitOutOfRange(usize),
    /// The frame limit does not leave room for a fetch response of
    /// `fetch.max.bytes` (a broker returns at least one whole batch even when
    /// it is larger than the fetch limit, so a smaller frame limit loops forever).
    #[error(
        "max_frame_bytes {max_frame_bytes} must exceed fetch.max.bytes {fetch_max_bytes} plus \
         {overhead} bytes of response overhead"
    )]
    FrameLimitBelowFetchMax {
        /// The frame limit.
        max_frame_bytes: usize,
        /// `fetch.max.bytes`.
        fetch_max_bytes: usize,
        /// The headroom required on top of it.
        overhead: usize,
    },
}

/// The smallest frame limit accepted: 1 MiB.
pub const MIN_FRAME_BYTES: usize = 1 << 20;

/// Headroom above `fetch.max.bytes` that the frame limit must leave for the
/// fetch response's own fields (headers, per-partition fields, aborted
/// transaction lists): 1 MiB.
pub const FETCH_RESPONSE_OVERHEAD: usize = 1 << 20;

/// Settings of the connection layer, shared by every consumer, admin call and
/// producer built on one [`crate::cluster::Cluster`].
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    bootstrap_servers: Vec<String>,
    client_id: String,
    request_timeout: Duration,
    connect_timeout: Duration,
    retry_backoff: Duration,
    retry_backoff_max: Duration,
    metadata_max_age: Duration,
    max_frame_bytes: usize,
}

impl std::fmt::Debug for ClientConfig {
    // Written by hand so that a credential added later is never printed by accident.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry_backoff", &self.retry_backoff)
            .field("retry_backoff_max", &self.retry_backoff_max)
            .field("metadata_max_age", &self.metadata_max_age)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .finish()
    }
}

impl ClientConfig {
    /// A builder with every default filled in and no bootstrap servers.
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// `bootstrap.servers`: the `host:port` list tried in order to learn the cluster.
    pub fn bootstrap_servers(&self) -> &[String] {
        &self.bootstrap_servers
    }

    /// `client.id`: sent in every request header (broker logs and quotas use it).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `request.timeout.ms`: how long a caller waits for one response.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// `socket.connection.setup.timeout.ms`: TCP connect plus the ApiVersions handshake.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// `retry.backoff.ms`: first delay before a retry or a reconnect.
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    /// `retry.backoff.max.ms`: the cap of the exponential backoff.
    pub fn retry_backoff_max(&self) -> Duration {
        self.retry_backoff_max
    }

    /// `metadata.max.age.ms`: cached metadata older than this is refreshed on next use.
    pub fn metadata_max_age(&self) -> Duration {
        self.metadata_max_age
    }

    /// Largest response frame accepted (no Java property; Java bounds it by
    /// `fetch.max.bytes`). A bigger frame poisons the connection.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Checks that a fetch limit (`fetch.max.bytes`) fits in a frame, with
    /// [`FETCH_RESPONSE_OVERHEAD`] to spare. Consumer configs call this in
    /// their own `build()`.
    pub fn check_fetch_max_bytes(&self, fetch_max_bytes: usize) -> Result<(), ConfigError> {
        let needed = fetch_max_bytes.saturating_add(FETCH_RESPONSE_OVERHEAD);
        if self.max_frame_bytes <= needed {
            return Err(ConfigError::FrameLimitBelowFetchMax {
                max_frame_bytes: self.max_frame_bytes,
                fetch_max_bytes,
                overhead: FETCH_RESPONSE_OVERHEAD,
            });
        }
        Ok(())
    }
}

/// Builder for [`ClientConfig`]; each setter takes and returns `self`.
#[derive(Debug, Clone)]
pub struct ClientConfigBuilder {
    config: ClientConfig,
}

impl Default for ClientConfigBuilder {
    fn default() -> Self {
        ClientConfigBuilder {
            config: ClientConfig {
                bootstrap_servers: Vec::new(),
                client_id: "kafee".to_owned(),
                request_timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(10),
                retry_backoff: Duration::from_millis(100),
                retry_backoff_max: Duration::from_secs(1),
                metadata_max_age: Duration::from_secs(300),
                max_frame_bytes: 100 * (1 << 20),
            },
        }
    }
}

impl ClientConfigBuilder {
    /// `bootstrap.servers` (required): `host:port` entries, tried in order.
    /// Only used to learn the cluster; later connections go to the brokers
    /// the metadata names.
    pub fn bootstrap_servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.bootstrap_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// `client.id` (default `kafee`).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.config.client_id = client_id.into();
        self
    }

    /// `request.timeout.ms` (default 30 s). When it expires the caller stops
    /// waiting; a commit or produce whose request timed out has an unknown
    /// outcome. Requests the broker holds on purpose (a Fetch for up to
    /// `fetch.max.wait.ms`, a JoinGroup for up to the rebalance timeout) need
    /// that time added by their caller.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// `socket.connection.setup.timeout.ms` (default 10 s): TCP connect plus
    /// the ApiVersions handshake.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// `retry.backoff.ms` (default 100 ms): the first retry/reconnect delay;
    /// doubles each attempt up to [`Self::retry_backoff_max`], with ±20 % jitter.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.config.retry_backoff = backoff;
        self
    }

    /// `retry.backoff.max.ms` (default 1 s): the backoff cap. Must not be
    /// below `retry.backoff.ms`.
    pub fn retry_backoff_max(mut self, max: Duration) -> Self {
        self.config.retry_backoff_max = max;
        self
    }

    /// `metadata.max.age.ms` (default 5 min).
    pub fn metadata_max_age(mut self, age: Duration) -> Self {
        self.config.metadata_max_age = age;
        self
    }

    /// Largest response frame accepted (default 100 MiB). Must exceed
    /// `fetch.max.bytes` (Java default 50 MiB) plus [`FETCH_RESPONSE_OVERHEAD`]:
    /// see [`ClientConfig::check_fetch_max_bytes`].
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.config.max_frame_bytes = bytes;
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<ClientConfig, ConfigError> {
        let c = self.config;
        if c.bootstrap_servers.is_empty() {
            return Err(ConfigError::NoBootstrapServers);
        }
        for server in &c.bootstrap_servers {
            if split_host_port(server).is_none() {
                return Err(ConfigError::BadBootstrapServer(server.clone()));
            }
        }
        if c.client_id.len() > i16::MAX as usize {
            return Err(ConfigError::ClientIdTooLong(c.client_id.len()));
        }
        for (name, d) in [
            ("request.timeout.ms", c.request_timeout),
            ("socket.connection.setup.timeout.ms", c.connect_timeout),
            ("retry.backoff.ms", c.retry_backoff),
            ("retry.backoff.max.ms", c.retry_backoff_max),
            ("metadata.max.age.ms", c.metadata_max_age),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if c.retry_backoff > c.retry_backoff_max {
            return Err(ConfigError::BackoffAboveMax {
                backoff: c.retry_backoff,
                max: c.retry_backoff_max,
            });
        }
        if c.max_frame_bytes < MIN_FRAME_BYTES || c.max_frame_bytes > i32::MAX as usize {
            return Err(ConfigError::FrameLimitOutOfRange(c.max_frame_bytes));
        }
        Ok(c)
    }
}

/// Splits `host:port` (or `[v6]:port`); `None` unless the port is in 1..=65535
/// and the host is not empty.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> ClientConfigBuilder {
        ClientConfig::builder().bootstrap_servers(["127.0.0.1:9092"])
    }

    #[test]
    fn defaults_match_the_java_client() {
        let c = base().build().unwrap();
        assert_eq!(c.request_timeout(), Duration::from_secs(30));
        assert_eq!(c.retry_backoff(), Duration::from_millis(100));
        assert_eq!(c.retry_backoff_max(), Duration::from_secs(1));
        assert_eq!(c.metadata_max_age(), Duration::from_secs(300));
        assert_eq!(c.connect_timeout(), Duration::from_secs(10));
        // Java's fetch.max.bytes default is 50 MiB; it must fit.
        c.check_fetch_max_bytes(50 << 20).unwrap();
    }

    #[test]
    fn build_rejects_bad_fields_with_their_java_names() {
        let e = ClientConfig::builder().build().unwrap_err();
        assert_eq!(e.to_string(), "bootstrap.servers is empty");
        let e = ClientConfig::builder()
            .bootstrap_servers(["localhost"])
            .build()
            .unwrap_err();
        assert_eq!(e, ConfigError::BadBootstrapServer("localhost".into()));
        let e = base().request_timeout(Duration::ZERO).build().unwrap_err();
        assert_eq!(
            e.to_string(),
            "request.timeout.ms must be greater than zero"
        );
        let e = base()
            .retry_backoff(Duration::from_secs(2))
            .build()
            .unwrap_err();
        assert!(matches!(e, ConfigError::BackoffAboveMax { .. }));
        let e = base().max_frame_bytes(1000).build().unwrap_err();
        assert_eq!(e, ConfigError::FrameLimitOutOfRange(1000));
        let e = base().client_id("x".repeat(40_000)).build().unwrap_err();
        assert_eq!(e, ConfigError::ClientIdTooLong(40_000));
    }

    #[test]
    fn frame_limit_must_exceed_fetch_max_bytes_plus_overhead() {
        let c = base().max_frame_bytes(8 << 20).build().unwrap();
        let e = c.check_fetch_max_bytes(7 << 20).unwrap_err();
        assert!(matches!(e, ConfigError::FrameLimitBelowFetchMax { .. }));
        c.check_fetch_max_bytes(6 << 20).unwrap();
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(split_host_port("a:1"), Some(("a", 1)));
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1", 9092)));
        assert_eq!(split_host_port("a:0"), None);
        assert_eq!(split_host_port(":9092"), None);
        assert_eq!(split_host_port("a:99999"), None);
    }
}
