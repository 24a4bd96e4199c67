//! What the examples share: where the broker is, a fresh topic, sample
//! records. Not an example of its own.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafee::client::admin::{Admin, CreateTopicsOptions, NewTopic};
use kafee::client::cluster::Cluster;
use kafee::client::config::ClientConfig;
use kafee::client::produce::{Producer, ProducerConfig, ProducerRecord};

/// The example's error type: anything, printed once by `main`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The broker: `--bootstrap HOST:PORT` or `$KAFEE_BOOTSTRAP`.
pub fn bootstrap() -> Result<String, BoxError> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--bootstrap" {
            return args
                .next()
                .ok_or_else(|| "--bootstrap needs HOST:PORT".into());
        }
    }
    match std::env::var("KAFEE_BOOTSTRAP") {
        Ok(addr) if !addr.trim().is_empty() => Ok(addr.trim().to_owned()),
        _ => Err(
            "no broker: pass --bootstrap HOST:PORT or set KAFEE_BOOTSTRAP \
                  (`scripts/broker up tansu` starts one)"
                .into(),
        ),
    }
}

/// A name no earlier run used: `prefix-<pid>-<nanos>`.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Connects to the cluster.
pub async fn connect(bootstrap: &str) -> Result<Cluster, BoxError> {
    let config = ClientConfig::builder()
        .bootstrap_servers(bootstrap.split(',').map(str::trim))
        .client_id("kafee-example")
        .request_timeout(Duration::from_secs(10))
        .build()?;
    Ok(Cluster::connect(config).await?)
}

/// Creates `topic` with `partitions` partitions (replication factor 1).
pub async fn create_topic(cluster: &Cluster, topic: &str, partitions: i32) -> Result<(), BoxError> {
    Admin::new(cluster.clone())
        .create_topics(
            &[NewTopic::new(topic, partitions, 1)],
            CreateTopicsOptions::default(),
        )
        .await?;
    Ok(())
}

/// Produces `values` to `topic` (key `k-<i % 16>`), waits for every
/// acknowledgment.
pub async fn produce(cluster: &Cluster, topic: &str, values: &[String]) -> Result<(), BoxError> {
    let producer = Producer::new(cluster.clone(), ProducerConfig::default());
    let mut deliveries = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let record = ProducerRecord::new(topic)
            .key(format!("k-{}", i % 16))
            .value(value.clone());
        deliveries.push(producer.enqueue(record)?);
    }
    producer.flush().await;
    for delivery in deliveries {
        delivery.await?;
    }
    producer.close().await;
    Ok(())
}
