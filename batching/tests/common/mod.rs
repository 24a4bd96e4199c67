//! Shared by the batch layer's integration tests: broker addresses and
//! unique names.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

/// The bootstrap address of broker `kind` (`kafka` or `tansu`); fails (never
/// skips) with instructions when it is not set.
pub fn bootstrap(kind: &str) -> String {
    let var = format!("KAFEE_{}_BOOTSTRAP", kind.to_uppercase());
    match std::env::var(&var) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => panic!(
            "{var} is not set: run `scripts/test`, or `export {var}=$(scripts/broker up {kind} | tail -1)`"
        ),
    }
}

/// A topic or group name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "kafee-batch-{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
