//! Shared by the batch layer's integration tests: broker addresses and
//! unique names.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kafee_client::admin::{Admin, CreateTopicsOptions, NewTopic};
use kafee_client::cluster::Cluster;
use kafee_client::config::ClientConfig;
use kafee_client::produce::{Producer, ProducerConfig, ProducerRecord};

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

/// A client connected to `addr`.
pub async fn cluster(addr: &str) -> Cluster {
    Cluster::connect(
        ClientConfig::builder()
            .bootstrap_servers([addr])
            .request_timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
    )
    .await
    .unwrap()
}

/// A topic with `per_partition` records `"{p}-{i}"` in each partition.
pub async fn topic(addr: &str, partitions: i32, per_partition: usize) -> (Cluster, String) {
    let cluster = cluster(addr).await;
    let name = unique("t");
    Admin::new(cluster.clone())
        .create_topics(
            &[NewTopic::new(&name, partitions, 1)],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    let producer = Producer::new(cluster.clone(), ProducerConfig::builder().build().unwrap());
    let mut pending = Vec::new();
    for p in 0..partitions {
        for i in 0..per_partition {
            let record = ProducerRecord::new(&name)
                .partition(p)
                .key(Bytes::from(format!("k{i}")))
                .value(Bytes::from(format!("{p}-{i}")))
                .header("h", Some(Bytes::from_static(b"v")));
            pending.push(producer.enqueue(record).unwrap());
        }
    }
    for f in pending {
        f.await.unwrap();
    }
    producer.close().await;
    (cluster, name)
}
