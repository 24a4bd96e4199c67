//! The `kafee` command-line tool: a kcat for batch consumption.
//!
//! `kafee consume` runs kafee's batch layer on any topic and prints what the
//! handler saw; `kafee topics` and `kafee produce` manage and fill topics so
//! the demo and users need no other tool. `kafee --help` and
//! `kafee <command> --help` document every flag with its default.
#![forbid(unsafe_code)]

mod connect;
mod consume;
mod duration;
mod error;
mod output;
mod produce;
mod topics;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::connect::ConnectArgs;
use crate::error::CliError;

/// kafee: a kcat for batch consumption. Consume with kafee's batch layer,
/// produce lines from stdin, and manage topics.
#[derive(Debug, Parser)]
#[command(name = "kafee", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list or delete topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Produce the lines of stdin to a topic (`key<TAB>value` or `value` per
    /// line) and print how many records the broker acknowledged.
    Produce(ProduceArgs),
    /// Consume topics with kafee's batch layer and print what the handler
    /// saw: one JSON object per record (default), a line per batch, or only
    /// the totals. Stops gracefully (handles what was handed out, commits,
    /// leaves the group) on `--exit-idle`, `--max-records`, Ctrl-C or SIGTERM.
    Consume(consume::ConsumeArgs),
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create a topic and wait until every partition has a leader.
    Create {
        /// The topic name.
        topic: String,
        /// Number of partitions.
        #[arg(long, short = 'p', default_value_t = 1)]
        partitions: i32,
        /// Replication factor.
        #[arg(long, short = 'r', default_value_t = 1)]
        replication_factor: i16,
        /// A topic config, `key=value` (repeatable), e.g. `retention.ms=60000`.
        #[arg(long = "config", short = 'c', value_parser = topics::parse_config, value_name = "KEY=VALUE")]
        configs: Vec<(String, String)>,
        /// Succeed when the topic already exists (default: an error).
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List the cluster's topics, one name per line.
    List {
        /// Also print each topic's partition count (`name<TAB>partitions`).
        #[arg(long, short = 'l')]
        long: bool,
        /// Include internal topics such as `__consumer_offsets`.
        #[arg(long)]
        internal: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Delete topics and wait until the metadata no longer shows them.
    Delete {
        /// The topic names.
        #[arg(required = true)]
        topics: Vec<String>,
        /// Succeed when a topic does not exist (default: an error).
        #[arg(long)]
        if_exists: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Args)]
struct ProduceArgs {
    /// The topic to produce to (it must exist).
    #[arg(long, short = 't')]
    topic: String,
    /// Write every record to this partition (default: by key hash; keyless
    /// records are spread over the partitions).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Treat each whole line as the value, tabs included (default: split
    /// `key<TAB>value` at the first tab).
    #[arg(long)]
    no_key: bool,
    /// A header put on every record, `key=value` (repeatable).
    #[arg(long = "header", short = 'H', value_parser = produce::parse_header, value_name = "KEY=VALUE")]
    headers: Vec<(String, String)>,
    #[command(flatten)]
    connect: ConnectArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Library logs on stderr only when asked for (`RUST_LOG=kafee_client=debug`).
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`kafee topics list | head -1`): not a failure.
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Prints one line on stdout; a closed stdout is an error (not a panic).
fn line(text: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Topics { command } => run_topics(command).await,
        Command::Produce(args) => run_produce(args).await,
        Command::Consume(args) => consume::run(args).await,
    }
}

async fn run_topics(command: TopicsCommand) -> Result<(), CliError> {
    match command {
        TopicsCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
            connect,
        } => {
            if partitions < 1 {
                return Err(CliError::Usage(format!(
                    "--partitions must be at least 1, not {partitions}"
                )));
            }
            let cluster = connect::connect(&connect.bootstrap, connect.timeout).await?;
            topics::create(
                &cluster,
                &topic,
                partitions,
                replication_factor,
                &configs,
                if_not_exists,
                connect.timeout.max(Duration::from_secs(30)),
            )
            .await?;
            line(format_args!(
                "created topic {topic} ({partitions} partitions)"
            ))?;
            Ok(())
        }
        TopicsCommand::List {
            long,
            internal,
            connect,
        } => {
            let cluster = connect::connect(&connect.bootstrap, connect.timeout).await?;
            for topic in topics::list(&cluster, connect.timeout).await? {
                if topic.is_internal && !internal {
                    continue;
                }
                if long {
                    line(format_args!("{}\t{}", topic.name, topic.partitions))?;
                } else {
                    line(format_args!("{}", topic.name))?;
                }
            }
            Ok(())
        }
        TopicsCommand::Delete {
            topics: names,
            if_exists,
            connect,
        } => {
            let cluster = connect::connect(&connect.bootstrap, connect.timeout).await?;
            topics::delete(
                &cluster,
                &names,
                if_exists,
                connect.timeout.max(Duration::from_secs(30)),
            )
            .await?;
            line(format_args!("deleted {}", names.join(", ")))?;
            Ok(())
        }
    }
}

async fn run_produce(args: ProduceArgs) -> Result<(), CliError> {
    let cluster = connect::connect(&args.connect.bootstrap, args.connect.timeout).await?;
    let partitions = connect::partition_count(&cluster, &args.topic).await?;
    if let Some(partition) = args.partition {
        if partition < 0 || partition as usize >= partitions {
            return Err(CliError::MissingPartition {
                topic: args.topic,
                partitions,
                partition,
            });
        }
    }
    let format = produce::LineFormat {
        keys: !args.no_key,
        headers: args.headers,
        partition: args.partition,
    };
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let produced = produce::produce_lines(&cluster, &args.topic, &format, stdin).await?;
    line(format_args!(
        "produced {produced} records to {}",
        args.topic
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
