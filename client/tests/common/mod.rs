//! Broker addresses for the integration tests, from the environment.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

/// The bootstrap address of broker `kind` (`kafka` or `tansu`). Fails (never
/// skips) with instructions when it is not set.
pub fn bootstrap(kind: &str) -> String {
    let var = format!("KAFEE_{}_BOOTSTRAP", kind.to_uppercase());
    match std::env::var(&var) {
        Ok(addr) if !addr.trim().is_empty() => addr.trim().to_owned(),
        _ => panic!(
            "{var} is not set. Start the broker with `scripts/broker up {kind}` and run \
             `{var}=$(scripts/broker up {kind} | tail -1) cargo test -p kafee-client`"
        ),
    }
}

/// A topic name no other test (or earlier run) uses.
pub fn unique_topic(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "kafee-{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs each scenario `async fn name(addr: &str)` once against each broker,
/// as the tests `kafka::name` and `tansu::name`.
macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(&super::common::bootstrap("kafka")).await;
                }
            )*
        }
        mod tansu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(&super::common::bootstrap("tansu")).await;
                }
            )*
        }
    };
}
