//! The CLI's error type: one line on stderr, a non-zero exit status.

use kafee::client::error::ClientError;

/// Why a command failed. The `Display` text is the one line printed after
/// `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag value that clap's parsers could not reject on their own.
    #[error("{0}")]
    Usage(String),
    /// No bootstrap server answered within the timeout.
    #[error("no broker at {bootstrap} answered: {detail}")]
    Unreachable {
        /// The `--bootstrap` value.
        bootstrap: String,
        /// What went wrong: the last connection error, or the timeout.
        detail: String,
    },
    /// The cluster does not have the topic.
    #[error("topic {0:?} does not exist")]
    MissingTopic(String),
    /// `--partition` beyond the topic's partitions.
    #[error("topic {topic:?} has {partitions} partitions; partition {partition} does not exist")]
    MissingPartition {
        /// The topic.
        topic: String,
        /// Its partition count.
        partitions: usize,
        /// The partition asked for.
        partition: i32,
    },
    /// A client-layer failure (connection, broker error code, timeout).
    #[error("{0}")]
    Client(#[from] ClientError),
    /// Producing failed.
    #[error("producing to {topic:?} failed after {produced} records: {source}")]
    Produce {
        /// The topic.
        topic: String,
        /// Records acknowledged before the failure.
        produced: u64,
        /// The producer's error.
        #[source]
        source: kafee::client::produce::ProduceError,
    },
    /// The consumer failed (group, fetch, commit).
    #[error("{0}")]
    Consumer(String),
    /// Reading stdin or writing stdout failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// The process exit status for this error: 2 for usage errors (like
    /// clap's own), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}
