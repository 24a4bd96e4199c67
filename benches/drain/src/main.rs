//! Drain benchmark: fill one partition, then drain it from offset 0 with kafee and with peers.
//!
//! Every consumer runs as a child process of a small `measure` wrapper (this binary again), which
//! spawns exactly one child, reaps it and reads `getrusage(RUSAGE_CHILDREN)`: user and system CPU
//! seconds and peak RSS of that child alone, measured the same way for kafee, librdkafka (the
//! `rdkafka` crate's `BaseConsumer`), kcat and franz-go.
//!
//! ```text
//! drain bench --brokers ADDR --value-size 100 --records 2000000 [--rounds 2] [--franz PATH] [--kcat PATH]
//!             [--clients kafee,kafee-1t,rdkafka,rdkafka-tuned,kcat,franz] [--topic T --no-fill]
//!             [--rdkafka-tuned "fetch.queue.backoff.ms=10"] [fetch flags]
//! drain fill --brokers ADDR --topic T --records N --value-size S
//! drain consume-kafee|consume-kafee-1t --brokers ADDR --topic T --records N [fetch flags]
//!       [--kafee-retry-backoff-ms 100]
//! drain consume-rdkafka --brokers ADDR --topic T --records N [fetch flags] [--rdkafka-props k=v,k=v]
//! drain measure [--count-stdout] -- PROGRAM ARGS...
//! ```
//!
//! Fetch flags (same defaults for every client, the Java consumer's):
//! `--fetch-min-bytes 1 --fetch-max-wait-ms 500 --fetch-max-bytes 52428800
//! --max-partition-fetch-bytes 1048576`. CRC checking is on for every client.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type BoxError = Box<dyn Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

/// The fetch settings every client gets.
#[derive(Debug, Clone, Copy)]
struct FetchSettings {
    min_bytes: i32,
    max_wait_ms: u64,
    max_bytes: i32,
    max_partition_bytes: i32,
}

impl FetchSettings {
    fn from_args(args: &Args) -> Result<Self> {
        Ok(FetchSettings {
            min_bytes: args.num("fetch-min-bytes", 1)?,
            max_wait_ms: args.num("fetch-max-wait-ms", 500)?,
            max_bytes: args.num("fetch-max-bytes", 50 * 1024 * 1024)?,
            max_partition_bytes: args.num("max-partition-fetch-bytes", 1024 * 1024)?,
        })
    }

    fn as_flags(&self) -> Vec<String> {
        vec![
            "--fetch-min-bytes".into(),
            self.min_bytes.to_string(),
            "--fetch-max-wait-ms".into(),
            self.max_wait_ms.to_string(),
            "--fetch-max-bytes".into(),
            self.max_bytes.to_string(),
            "--max-partition-fetch-bytes".into(),
            self.max_partition_bytes.to_string(),
        ]
    }

    /// librdkafka property names (rdkafka crate and kcat).
    fn rdkafka_props(&self) -> Vec<(&'static str, String)> {
        vec![
            ("check.crcs", "true".into()),
            ("fetch.min.bytes", self.min_bytes.to_string()),
            ("fetch.wait.max.ms", self.max_wait_ms.to_string()),
            ("fetch.max.bytes", self.max_bytes.to_string()),
            (
                "max.partition.fetch.bytes",
                self.max_partition_bytes.to_string(),
            ),
        ]
    }
}

/// `--key value` flags after a subcommand; `--` ends them.
#[derive(Debug, Default)]
struct Args {
    flags: HashMap<String, String>,
    switches: Vec<String>,
    rest: Vec<String>,
}

impl Args {
    fn parse(raw: &[String], switches: &[&str]) -> Result<Args> {
        let mut args = Args::default();
        let mut i = 0;
        while i < raw.len() {
            let a = &raw[i];
            if a == "--" {
                args.rest = raw[i + 1..].to_vec();
                break;
            }
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}").into());
            };
            if switches.contains(&name) {
                args.switches.push(name.to_string());
                i += 1;
                continue;
            }
            let value = raw
                .get(i + 1)
                .ok_or_else(|| format!("--{name} needs a value"))?;
            args.flags.insert(name.to_string(), value.clone());
            i += 2;
        }
        Ok(args)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    fn req(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required").into())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| format!("--{name} {v:?}: {e}").into()),
        }
    }

    fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = raw.split_first() else {
        eprintln!(
            "usage: drain bench|fill|consume-kafee|consume-kafee-1t|consume-rdkafka|measure ..."
        );
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "bench" => Args::parse(rest, &["no-fill"]).and_then(|a| bench(&a)),
        "fill" => Args::parse(rest, &[]).and_then(|a| fill_cmd(&a)),
        "consume-kafee" => Args::parse(rest, &[]).and_then(|a| consume_kafee(&a, true)),
        "consume-kafee-1t" => Args::parse(rest, &[]).and_then(|a| consume_kafee(&a, false)),
        "consume-rdkafka" => Args::parse(rest, &[]).and_then(|a| consume_rdkafka(&a)),
        "measure" => Args::parse(rest, &["count-stdout"]).and_then(|a| measure(&a)),
        other => Err(format!("unknown subcommand {other:?}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drain {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------------------------------------------- measure

/// Spawns `rest` as the only child, waits for it and prints its resource usage as one line.
///
/// With `--count-stdout` the child's stdout is read through a pipe and its byte count printed
/// (kcat prints the values with `-f '%s'`; the byte count proves it read every record).
fn measure(args: &Args) -> Result<()> {
    let (program, child_args) = args
        .rest
        .split_first()
        .ok_or("measure: no program after --")?;
    let count_stdout = args.switch("count-stdout");
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(child_args)
        .stdout(if count_stdout {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .map_err(|e| format!("spawn {program}: {e}"))?;
    let mut stdout_bytes: u64 = 0;
    if let Some(mut out) = child.stdout.take() {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = out.read(&mut buf)?;
            if n == 0 {
                break;
            }
            stdout_bytes += n as u64;
        }
    }
    let status = child.wait()?;
    let wall = started.elapsed();
    // The child is reaped: RUSAGE_CHILDREN of this process is that one child.
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    println!(
        "MEASURE status={} wall_s={:.6} user_s={:.6} sys_s={:.6} maxrss_kb={} minflt={} nvcsw={} nivcsw={} stdout_bytes={}",
        status.code().unwrap_or(-1),
        wall.as_secs_f64(),
        secs(usage.user_time()),
        secs(usage.system_time()),
        usage.max_rss(),
        usage.minor_page_faults(),
        usage.voluntary_context_switches(),
        usage.involuntary_context_switches(),
        stdout_bytes
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------- fill

fn fill_cmd(args: &Args) -> Result<()> {
    let brokers = args.req("brokers")?;
    let topic = args.req("topic")?;
    let records: u64 = args.num("records", 0)?;
    let value_size: usize = args.num("value-size", 100)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(fill(brokers, topic, records, value_size))
}

/// Creates `topic` (one partition) and produces `records` values of `value_size` bytes with
/// kafee's producer (no compression, no key), then checks the partition's end offset.
async fn fill(brokers: &str, topic: &str, records: u64, value_size: usize) -> Result<()> {
    use kafee_client::admin::{
        Admin, CreateTopicsOptions, IsolationLevel, NewTopic, OffsetSpec, TopicPartition,
    };
    use kafee_client::produce::{ProduceError, Producer, ProducerConfig, ProducerRecord};

    let cluster = connect(brokers).await?;
    let admin = Admin::new(cluster.clone());
    admin
        .create_topics(
            &[NewTopic::new(topic, 1, 1)],
            CreateTopicsOptions::default(),
        )
        .await?;
    let config = ProducerConfig::builder()
        .linger(Duration::from_millis(5))
        .buffer_memory(64 * 1024 * 1024)
        .build()?;
    let batch_size = config.batch_size();
    let producer = Producer::new(cluster.clone(), config);
    let value = bytes::Bytes::from(
        (0..value_size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    );
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for _ in 0..records {
        let mut record = Some(ProducerRecord::new(topic).partition(0).value(value.clone()));
        while let Some(r) = record.take() {
            match producer.enqueue(r.clone()) {
                Ok(delivery) => pending.push_back(delivery),
                Err(ProduceError::BufferFull { .. }) => {
                    // Wait for the oldest deliveries, then try again.
                    record = Some(r);
                    for _ in 0..1024 {
                        match pending.pop_front() {
                            Some(d) => {
                                d.await?;
                            }
                            None => break,
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    producer.flush().await;
    for d in pending {
        d.await?;
    }
    producer.close().await;
    let listed = admin
        .list_offsets(
            &[TopicPartition::new(topic, 0)],
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await?;
    let end = listed
        .into_iter()
        .next()
        .ok_or("list_offsets answered nothing")?
        .result?
        .offset;
    if end != records as i64 {
        return Err(format!("{topic}/0 ends at offset {end}, expected {records}").into());
    }
    eprintln!(
        "filled {topic}/0 with {records} records of {value_size} B in {:.1}s (kafee producer, batch.size {batch_size} B, linger 5 ms, no compression)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn connect(brokers: &str) -> Result<kafee_client::cluster::Cluster> {
    let config = kafee_client::config::ClientConfig::builder()
        .bootstrap_servers([brokers.to_string()])
        .build()?;
    Ok(kafee_client::cluster::Cluster::connect(config).await?)
}

// ------------------------------------------------------------------------------------------ consumers

/// What a consumer child prints as its last line.
fn print_drain(records: u64, value_bytes: u64, started: Instant, first: Option<Instant>) {
    let done = Instant::now();
    let first = first.unwrap_or(done);
    println!(
        "DRAIN records={records} value_bytes={value_bytes} total_s={:.6} first_to_last_s={:.6}",
        (done - started).as_secs_f64(),
        (done - first).as_secs_f64()
    );
}

/// Drains with kafee's `Fetcher` on a multi-thread (`multi`) or current-thread runtime.
fn consume_kafee(args: &Args, multi: bool) -> Result<()> {
    let brokers = args.req("brokers")?.to_string();
    let topic = args.req("topic")?.to_string();
    let records: u64 = args.num("records", 0)?;
    let settings = FetchSettings::from_args(args)?;
    let rt = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        use kafee_client::admin::TopicPartition;
        use kafee_client::fetch::{FetchConfig, FetchEvent, Fetcher, Position};

        let started = Instant::now();
        let cluster = connect(&brokers).await?;
        let connected = started.elapsed();
        let config = FetchConfig {
            min_bytes: settings.min_bytes,
            max_wait: Duration::from_millis(settings.max_wait_ms),
            max_bytes: settings.max_bytes,
            max_partition_bytes: settings.max_partition_bytes,
            verify_crc: true,
            // Diagnosis only: the fetch loop sleeps this long after its first metadata refresh.
            retry_backoff: Duration::from_millis(args.num("kafee-retry-backoff-ms", 100)?),
            ..FetchConfig::default()
        };
        let mut fetcher = Fetcher::start(cluster, config);
        fetcher.assign(TopicPartition::new(topic.clone(), 0), Position::Offset(0));
        let mut count: u64 = 0;
        let mut value_bytes: u64 = 0;
        let mut expected: i64 = 0;
        let mut first = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while count < records {
            let event = tokio::time::timeout_at(deadline, fetcher.next())
                .await
                .map_err(|_| format!("timed out after {count} records"))?
                .ok_or("fetch loop stopped")?;
            match event {
                FetchEvent::Records(fetched) => {
                    if first.is_none() {
                        first = Some(Instant::now());
                        eprintln!(
                            "kafee: connected after {:.3} s, first records after {:.3} s",
                            connected.as_secs_f64(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                    for record in fetched.records() {
                        let record = record?;
                        if record.offset() != expected {
                            return Err(format!(
                                "expected offset {expected}, got {}",
                                record.offset()
                            )
                            .into());
                        }
                        expected += 1;
                        value_bytes += record.value().map_or(0, <[u8]>::len) as u64;
                        count += 1;
                    }
                }
                FetchEvent::PartitionError(e) => return Err(format!("{e:?}").into()),
            }
        }
        print_drain(count, value_bytes, started, first);
        Ok::<(), BoxError>(())
    })
}

/// Drains with librdkafka through the `rdkafka` crate's `BaseConsumer` (manual assignment).
fn consume_rdkafka(args: &Args) -> Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

    let brokers = args.req("brokers")?;
    let topic = args.req("topic")?;
    let records: u64 = args.num("records", 0)?;
    let settings = FetchSettings::from_args(args)?;
    let started = Instant::now();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", "kafee-drain-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in settings.rdkafka_props() {
        config.set(k, v);
    }
    // Extra librdkafka properties, "k=v,k=v" (the `rdkafka-tuned` row).
    if let Some(extra) = args.get("rdkafka-props") {
        for kv in extra.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("--rdkafka-props: {kv:?} is not k=v"))?;
            config.set(k, v);
        }
    }
    let consumer: BaseConsumer = config.create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(0))?;
    consumer.assign(&tpl)?;
    let mut count: u64 = 0;
    let mut value_bytes: u64 = 0;
    let mut expected: i64 = 0;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while count < records {
        if Instant::now() > deadline {
            return Err(format!("timed out after {count} records").into());
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                if first.is_none() {
                    first = Some(Instant::now());
                }
                if message.offset() != expected {
                    return Err(
                        format!("expected offset {expected}, got {}", message.offset()).into(),
                    );
                }
                expected += 1;
                value_bytes += message.payload().map_or(0, <[u8]>::len) as u64;
                count += 1;
            }
        }
    }
    print_drain(count, value_bytes, started, first);
    Ok(())
}

// --------------------------------------------------------------------------------------------- bench

/// One client's measured drain.
#[derive(Debug, Clone)]
struct Run {
    client: String,
    records: u64,
    value_bytes: u64,
    wall_s: f64,
    first_to_last_s: Option<f64>,
    user_s: f64,
    sys_s: f64,
    maxrss_kb: u64,
    minflt: u64,
    csw: u64,
    load1: String,
}

impl Run {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.wall_s
    }
    fn mb_per_s(&self) -> f64 {
        self.value_bytes as f64 / 1e6 / self.wall_s
    }
    fn cpu_per_m(&self) -> f64 {
        (self.user_s + self.sys_s) / (self.records as f64 / 1e6)
    }
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn parse_kv(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `program args` under `measure` and parses its lines.
fn run_client(
    client: &str,
    program: &str,
    args: &[String],
    count_stdout: bool,
    records: u64,
    value_size: u64,
) -> Result<Run> {
    let exe = std::env::current_exe()?;
    let load = load1();
    let mut cmd = Command::new(exe);
    cmd.arg("measure");
    if count_stdout {
        cmd.arg("--count-stdout");
    }
    cmd.arg("--").arg(program).args(args);
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut measure_line = None;
    let mut drain_line = None;
    for line in BufReader::new(out).lines() {
        let line = line?;
        if line.starts_with("MEASURE ") {
            measure_line = Some(parse_kv(&line));
        } else if line.starts_with("DRAIN ") {
            drain_line = Some(parse_kv(&line));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("{client}: measure wrapper failed ({status})").into());
    }
    let m = measure_line.ok_or_else(|| format!("{client}: no MEASURE line"))?;
    let f = |k: &str| -> Result<f64> {
        Ok(m.get(k)
            .ok_or_else(|| format!("{client}: no {k}"))?
            .parse::<f64>()?)
    };
    if m.get("status").map(String::as_str) != Some("0") {
        return Err(format!("{client} exited with status {:?}", m.get("status")).into());
    }
    let (got_records, value_bytes, first_to_last_s) = match &drain_line {
        Some(d) => (
            d.get("records").ok_or("no records")?.parse::<u64>()?,
            d.get("value_bytes")
                .ok_or("no value_bytes")?
                .parse::<u64>()?,
            Some(
                d.get("first_to_last_s")
                    .ok_or("no first_to_last_s")?
                    .parse::<f64>()?,
            ),
        ),
        None => {
            // kcat: its stdout is the concatenated values.
            let bytes = f("stdout_bytes")? as u64;
            (bytes / value_size.max(1), bytes, None)
        }
    };
    if got_records != records || value_bytes != records * value_size {
        return Err(format!(
            "{client} read {got_records} records / {value_bytes} value bytes, expected {records} / {}",
            records * value_size
        )
        .into());
    }
    Ok(Run {
        client: client.to_string(),
        records,
        value_bytes,
        wall_s: f("wall_s")?,
        first_to_last_s,
        user_s: f("user_s")?,
        sys_s: f("sys_s")?,
        maxrss_kb: f("maxrss_kb")? as u64,
        minflt: f("minflt")? as u64,
        csw: (f("nvcsw")? + f("nivcsw")?) as u64,
        load1: load,
    })
}

fn bench(args: &Args) -> Result<()> {
    let brokers = args.req("brokers")?.to_string();
    let records: u64 = args.num("records", 2_000_000)?;
    let value_size: u64 = args.num("value-size", 100)?;
    let rounds: u32 = args.num("rounds", 1)?;
    let settings = FetchSettings::from_args(args)?;
    let franz = args.get("franz").map(str::to_string);
    let kcat = args.get("kcat").unwrap_or("kcat").to_string();
    let rdkafka_tuned = args
        .get("rdkafka-tuned")
        .unwrap_or("fetch.queue.backoff.ms=10")
        .to_string();
    let clients: Vec<String> = args
        .get("clients")
        .unwrap_or("kafee,kafee-1t,rdkafka,rdkafka-tuned,kcat,franz")
        .split(',')
        .map(str::to_string)
        .collect();
    let topic = match args.get("topic") {
        Some(t) => t.to_string(),
        None => format!(
            "drain-{value_size}b-{}",
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs()
        ),
    };
    if !args.switch("no-fill") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(fill(&brokers, &topic, records, value_size as usize))?;
    }
    let exe = std::env::current_exe()?
        .to_str()
        .ok_or("non-UTF-8 executable path")?
        .to_string();
    let common = {
        let mut v = vec![
            "--brokers".to_string(),
            brokers.clone(),
            "--topic".into(),
            topic.clone(),
            "--records".into(),
            records.to_string(),
        ];
        v.extend(settings.as_flags());
        v
    };
    let command_of = |client: &str| -> Result<(String, Vec<String>, bool)> {
        Ok(match client {
            "kafee" | "kafee-1t" | "rdkafka" => {
                let mut a = vec![format!("consume-{client}")];
                a.extend(common.clone());
                (exe.clone(), a, false)
            }
            "rdkafka-tuned" => {
                // librdkafka with its prefetch queue back-off shortened: fetch.queue.backoff.ms
                // (default 1000) postpones the next fetch whenever the local queue is above
                // queued.min.messages / queued.max.messages.kbytes.
                let mut a = vec!["consume-rdkafka".to_string()];
                a.extend(common.clone());
                a.push("--rdkafka-props".into());
                a.push(rdkafka_tuned.clone());
                (exe.clone(), a, false)
            }
            "kcat" => {
                let mut a: Vec<String> = [
                    "-C",
                    "-b",
                    &brokers,
                    "-t",
                    &topic,
                    "-p",
                    "0",
                    "-o",
                    "beginning",
                    "-e",
                    "-q",
                    "-f",
                    "%s",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                a.push("-c".into());
                a.push(records.to_string());
                for (k, v) in settings.rdkafka_props() {
                    a.push("-X".into());
                    a.push(format!("{k}={v}"));
                }
                (kcat.clone(), a, true)
            }
            "franz" => {
                let path = franz.clone().ok_or("--franz PATH is needed for franz")?;
                let a = vec![
                    "-brokers".to_string(),
                    brokers.clone(),
                    "-topic".into(),
                    topic.clone(),
                    "-records".into(),
                    records.to_string(),
                    "-fetch-min-bytes".into(),
                    settings.min_bytes.to_string(),
                    "-fetch-max-wait-ms".into(),
                    settings.max_wait_ms.to_string(),
                    "-fetch-max-bytes".into(),
                    settings.max_bytes.to_string(),
                    "-max-partition-fetch-bytes".into(),
                    settings.max_partition_bytes.to_string(),
                ];
                (path, a, false)
            }
            other => return Err(format!("unknown client {other:?}").into()),
        })
    };

    eprintln!("warming the broker's page cache: one untimed kafee drain of {topic}");
    {
        let (p, a, c) = command_of("kafee")?;
        run_client("warm-up", &p, &a, c, records, value_size)?;
    }

    let mut all: Vec<Vec<Run>> = Vec::new();
    for round in 0..rounds {
        let mut order = clients.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut runs = Vec::new();
        for client in &order {
            let (p, a, c) = command_of(client)?;
            eprintln!("round {}: {client} (load {})", round + 1, load1());
            let run = run_client(client, &p, &a, c, records, value_size)?;
            eprintln!(
                "  {:.0} records/s, {:.2} s, {:.3} CPU s per M records",
                run.records_per_s(),
                run.wall_s,
                run.cpu_per_m()
            );
            runs.push(run);
        }
        // Table rows in the clients' listed order.
        runs.sort_by_key(|r| clients.iter().position(|c| *c == r.client));
        all.push(runs);
    }

    println!(
        "\n### Drain of {records} records x {value_size} B values, topic `{topic}`, one partition, broker {brokers}\n"
    );
    println!(
        "Fetch settings (all clients): fetch.min.bytes={}, fetch.wait.max.ms={}, fetch.max.bytes={}, max.partition.fetch.bytes={}; CRC check on.\n",
        settings.min_bytes, settings.max_wait_ms, settings.max_bytes, settings.max_partition_bytes
    );
    for (i, runs) in all.iter().enumerate() {
        print_table(&format!("Round {}", i + 1), runs);
    }
    if all.len() > 1 {
        print_table(
            &format!(
                "Median of {} rounds (each column its own median; peak RSS the maximum)",
                all.len()
            ),
            &medians(&all),
        );
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Per client, the median of each column over the rounds (peak RSS: the maximum).
fn medians(all: &[Vec<Run>]) -> Vec<Run> {
    let Some(first) = all.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|r0| {
            let runs: Vec<&Run> = all
                .iter()
                .filter_map(|round| round.iter().find(|r| r.client == r0.client))
                .collect();
            let m = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(|r| f(r)).collect());
            Run {
                client: r0.client.clone(),
                records: r0.records,
                value_bytes: r0.value_bytes,
                wall_s: m(&|r| r.wall_s),
                first_to_last_s: r0
                    .first_to_last_s
                    .map(|_| m(&|r| r.first_to_last_s.unwrap_or(0.0))),
                user_s: m(&|r| r.user_s),
                sys_s: m(&|r| r.sys_s),
                maxrss_kb: runs.iter().map(|r| r.maxrss_kb).max().unwrap_or(0),
                minflt: m(&|r| r.minflt as f64) as u64,
                csw: m(&|r| r.csw as f64) as u64,
                load1: "-".into(),
            }
        })
        .collect()
}

fn print_table(title: &str, runs: &[Run]) {
    let kafee = runs.iter().find(|r| r.client == "kafee");
    println!("{title}:\n");
    println!("| client | records/s | MB/s (values) | wall s | drain s (first→last) | CPU s / M records (user+sys) | user s | sys s | peak RSS MiB | minor faults | ctx switches | records/s vs kafee | CPU/record vs kafee | load1 at start |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let (speed, cpu) = match kafee {
            Some(k) => (
                format!("{:.2}x", r.records_per_s() / k.records_per_s()),
                format!("{:.2}x", r.cpu_per_m() / k.cpu_per_m()),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {:.0} | {:.1} | {:.3} | {} | {:.3} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {} |",
            r.client,
            r.records_per_s(),
            r.mb_per_s(),
            r.wall_s,
            r.first_to_last_s
                .map_or("-".to_string(), |s| format!("{s:.3}")),
            r.cpu_per_m(),
            r.user_s,
            r.sys_s,
            r.maxrss_kb as f64 / 1024.0,
            r.minflt,
            r.csw,
            speed,
            cpu,
            r.load1
        );
    }
    if let Some(k) = kafee {
        let peers: Vec<&Run> = runs
            .iter()
            .filter(|r| !r.client.starts_with("kafee"))
            .collect();
        if let Some(fastest) = peers
            .iter()
            .max_by(|a, b| a.records_per_s().total_cmp(&b.records_per_s()))
        {
            println!(
                "\nGoal 1 (kafee at least as fast as the fastest peer, {}): {} ({:.0} vs {:.0} records/s).",
                fastest.client,
                if k.records_per_s() >= fastest.records_per_s() { "met" } else { "NOT met" },
                k.records_per_s(),
                fastest.records_per_s()
            );
        }
        if let Some(rd) = runs.iter().find(|r| r.client == "rdkafka") {
            println!(
                "Goal 2 (kafee CPU per record at most half of librdkafka's): {} ({:.3} vs {:.3} CPU s per M records, ratio {:.2}).",
                if k.cpu_per_m() <= rd.cpu_per_m() / 2.0 { "met" } else { "NOT met" },
                k.cpu_per_m(),
                rd.cpu_per_m(),
                k.cpu_per_m() / rd.cpu_per_m()
            );
        }
    }
    println!();
}
