//! Connecting to the cluster named by `--bootstrap`, within `--timeout`.

use std::time::Duration;

use clap::Args;
use kafee::client::cluster::Cluster;
use kafee::client::config::ClientConfig;
use kafee::client::error::ClientError;
use kafee::protocol::error::ErrorCode;

use crate::duration::parse_duration;
use crate::error::CliError;

/// Where the cluster is and how long to wait for it.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Bootstrap servers, `host:port[,host:port...]`.
    #[arg(long, short = 'b', env = "KAFEE_BOOTSTRAP", value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// How long to wait for the broker to answer (connect and each request),
    /// e.g. `500ms`, `5s`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// The client id the CLI's connections announce.
pub const CLIENT_ID: &str = "kafee-cli";

/// The `host:port` entries of a comma-separated `--bootstrap` value.
pub fn bootstrap_servers(bootstrap: &str) -> Result<Vec<String>, CliError> {
    let servers: Vec<String> = bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if servers.is_empty() {
        return Err(CliError::Usage("--bootstrap is empty".into()));
    }
    Ok(servers)
}

/// The client configuration for `--bootstrap` and `--timeout`.
pub fn client_config(bootstrap: &str, timeout: Duration) -> Result<ClientConfig, CliError> {
    ClientConfig::builder()
        .bootstrap_servers(bootstrap_servers(bootstrap)?)
        .client_id(CLIENT_ID)
        .request_timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// Connects to the first bootstrap server that answers; fails with
/// [`CliError::Unreachable`] when none does within `timeout`.
pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Cluster, CliError> {
    let config = client_config(bootstrap, timeout)?;
    let unreachable = |detail: String| CliError::Unreachable {
        bootstrap: bootstrap.to_owned(),
        detail,
    };
    match tokio::time::timeout(timeout, Cluster::connect(config)).await {
        Err(_elapsed) => Err(unreachable(format!(
            "no answer within {} (--timeout)",
            crate::duration::display(timeout)
        ))),
        Ok(Err(ClientError::Bootstrap { last, .. })) => Err(unreachable(last.to_string())),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(cluster)) => Ok(cluster),
    }
}

/// The partition count of `topic`; [`CliError::MissingTopic`] when the
/// cluster does not have it.
pub async fn partition_count(cluster: &Cluster, topic: &str) -> Result<usize, CliError> {
    match cluster.topic(topic).await {
        Ok(info) => Ok(info.partitions.len()),
        Err(e) if e.code() == Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => {
            Err(CliError::MissingTopic(topic.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}
