//! The kafee test kit: broker addresses and helpers for integration tests.
//!
//! Integration tests run against real brokers started by `scripts/broker` (Apache Kafka 4.x and Tansu
//! 0.6, both on 127.0.0.1). `scripts/test` starts both, exports their addresses in
//! [`KAFKA_BOOTSTRAP_ENV`] and [`TANSU_BOOTSTRAP_ENV`], and runs `cargo test --workspace`.
//!
//! A test that needs a broker and finds no address **fails** with a message saying how to start one;
//! it never skips.
//!
//! ```no_run
//! use kafee_tests::Broker;
//!
//! for broker in Broker::ALL {
//!     let topic = broker.create_topic("orders", 3);
//!     println!("{broker}: {} has topic {topic}", broker.bootstrap());
//! }
//! ```
#![forbid(unsafe_code)]

pub mod wire;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable holding the Apache Kafka broker's `host:port`.
pub const KAFKA_BOOTSTRAP_ENV: &str = "KAFEE_KAFKA_BOOTSTRAP";
/// Environment variable holding the Tansu broker's `host:port`.
pub const TANSU_BOOTSTRAP_ENV: &str = "KAFEE_TANSU_BOOTSTRAP";

/// A broker the integration tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Broker {
    /// Apache Kafka 4.x, KRaft, single combined node.
    Kafka,
    /// Tansu 0.6, memory storage.
    Tansu,
}

impl Broker {
    /// Every broker, for tests that run a scenario against each.
    pub const ALL: [Broker; 2] = [Broker::Kafka, Broker::Tansu];

    /// The name `scripts/broker` knows it by: `kafka` or `tansu`.
    pub fn name(self) -> &'static str {
        match self {
            Broker::Kafka => "kafka",
            Broker::Tansu => "tansu",
        }
    }

    /// The environment variable that holds its address.
    pub fn env_var(self) -> &'static str {
        match self {
            Broker::Kafka => KAFKA_BOOTSTRAP_ENV,
            Broker::Tansu => TANSU_BOOTSTRAP_ENV,
        }
    }

    /// Its `host:port`, read from [`Broker::env_var`].
    ///
    /// # Panics
    /// When the variable is unset or empty, with a message that says how to start the broker.
    pub fn bootstrap(self) -> String {
        match bootstrap_from(self, std::env::var(self.env_var()).ok()) {
            Ok(address) => address,
            Err(message) => panic!("{message}"),
        }
    }

    /// Creates a topic named [`unique_name`]`(prefix)` with `partitions` partitions (replication
    /// factor 1), waits until every partition has a leader, and returns its name.
    ///
    /// # Panics
    /// When the broker address is missing or the broker refuses or times out.
    pub fn create_topic(self, prefix: &str, partitions: i32) -> String {
        let address = self.bootstrap();
        let topic = unique_name(prefix);
        let result = wire::Connection::connect(&address)
            .and_then(|mut connection| connection.create_topic(&topic, partitions));
        match result {
            Ok(()) => topic,
            Err(err) => {
                panic!("{self}: creating topic {topic} with {partitions} partitions: {err}")
            }
        }
    }

    /// Deletes `topic`.
    ///
    /// # Panics
    /// When the broker address is missing or the broker refuses.
    pub fn delete_topic(self, topic: &str) {
        let address = self.bootstrap();
        let result = wire::Connection::connect(&address)
            .and_then(|mut connection| connection.delete_topic(topic));
        if let Err(err) = result {
            panic!("{self}: deleting topic {topic}: {err}");
        }
    }
}

impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Broker::Kafka => "Apache Kafka",
            Broker::Tansu => "Tansu",
        })
    }
}

/// The Apache Kafka broker's `host:port` from `KAFEE_KAFKA_BOOTSTRAP`.
///
/// # Panics
/// When it is unset, with a message that says how to start the broker.
pub fn kafka_bootstrap() -> String {
    Broker::Kafka.bootstrap()
}

/// The Tansu broker's `host:port` from `KAFEE_TANSU_BOOTSTRAP`.
///
/// # Panics
/// When it is unset, with a message that says how to start the broker.
pub fn tansu_bootstrap() -> String {
    Broker::Tansu.bootstrap()
}

/// The address in `value`, or the message to fail with when there is none.
fn bootstrap_from(broker: Broker, value: Option<String>) -> Result<String, String> {
    match value.map(|v| v.trim().to_owned()) {
        Some(address) if !address.is_empty() => Ok(address),
        _ => Err(format!(
            "{var} is not set: this test needs a running {broker} broker. Either run the whole suite with \
             `scripts/test` (it starts both brokers), or start one with `scripts/broker up {name}` and \
             `export {var}=$(scripts/broker address {name})` before `cargo test`.",
            var = broker.env_var(),
            name = broker.name(),
        )),
    }
}

/// A name no other test, process or earlier run uses: `{prefix}-{pid}-{nanos}-{counter}`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{count}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_address_fails_with_how_to_start_the_broker() {
        for broker in Broker::ALL {
            for value in [None, Some(String::new()), Some("  ".to_owned())] {
                let message = bootstrap_from(broker, value).unwrap_err();
                assert!(message.contains(broker.env_var()), "{message}");
                assert!(message.contains("scripts/test"), "{message}");
                assert!(
                    message.contains(&format!("scripts/broker up {}", broker.name())),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn address_is_taken_trimmed() {
        assert_eq!(
            bootstrap_from(Broker::Kafka, Some(" 127.0.0.1:9092\n".to_owned())).unwrap(),
            "127.0.0.1:9092"
        );
    }

    #[test]
    fn unique_names_differ_within_a_process() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("t-{}-", std::process::id())), "{a}");
        // Topic names allow [a-zA-Z0-9._-] and at most 249 characters.
        assert!(a.len() < 249);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
