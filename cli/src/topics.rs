//! `kafee topics create|list|delete`.

use std::time::Duration;

use kafee::client::admin::{Admin, CreateTopicsOptions, DeleteTopicsOptions, NewTopic};
use kafee::client::cluster::Cluster;
use kafee::client::error::ClientError;
use kafee::protocol::error::ErrorCode;
use kafka_protocol::messages::MetadataRequest;

use crate::error::CliError;

/// `kafee topics create`: creates `name` and waits until every partition has
/// a leader.
pub async fn create(
    cluster: &Cluster,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
    if_not_exists: bool,
    timeout: Duration,
) -> Result<(), CliError> {
    let mut topic = NewTopic::new(name, partitions, replication_factor);
    for (key, value) in configs {
        topic = topic.config(key.clone(), value.clone());
    }
    let options = CreateTopicsOptions {
        timeout,
        if_not_exists,
    };
    Admin::new(cluster.clone())
        .create_topics(std::slice::from_ref(&topic), options)
        .await?;
    Ok(())
}

/// `kafee topics delete`: deletes `names` and waits until the metadata no
/// longer shows them.
pub async fn delete(
    cluster: &Cluster,
    names: &[String],
    if_exists: bool,
    timeout: Duration,
) -> Result<(), CliError> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let options = DeleteTopicsOptions { timeout, if_exists };
    match Admin::new(cluster.clone())
        .delete_topics(&names, options)
        .await
    {
        Err(ClientError::Broker {
            code,
            topic: Some(topic),
            ..
        }) if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => Err(CliError::MissingTopic(topic)),
        other => Ok(other?),
    }
}

/// One topic as `kafee topics list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The topic name.
    pub name: String,
    /// Its partition count.
    pub partitions: usize,
    /// Whether the broker marks it internal (`__consumer_offsets`).
    pub is_internal: bool,
}

/// Every topic of the cluster, sorted by name: a Metadata request for all
/// topics (the `topics` array null).
pub async fn list(cluster: &Cluster, timeout: Duration) -> Result<Vec<Listed>, CliError> {
    let conn = cluster.any_broker().await?;
    let (_, response) = conn
        .send_with(timeout, |version| {
            let request = MetadataRequest::default().with_topics(None);
            if version >= 4 {
                request.with_allow_auto_topic_creation(false)
            } else {
                request
            }
        })
        .await?;
    let mut topics: Vec<Listed> = response
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| {
            t.name.as_ref().map(|name| Listed {
                name: name.0.to_string(),
                partitions: t.partitions.len(),
                is_internal: t.is_internal,
            })
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

/// Parses a `--config key=value` flag.
pub fn parse_config(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("{text:?} is not key=value")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_flags_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_config("retention.ms=1000").unwrap(),
            ("retention.ms".into(), "1000".into())
        );
        assert_eq!(parse_config("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_config("novalue").is_err());
        assert!(parse_config("=x").is_err());
    }
}
