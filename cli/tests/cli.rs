//! The `kafee` binary end to end, against Apache Kafka and Tansu
//! (`scripts/broker up kafka|tansu`; `KAFEE_KAFKA_BOOTSTRAP` /
//! `KAFEE_TANSU_BOOTSTRAP`). A missing address fails the test (never skips).
//!
//! Every test runs the built binary as a user would and checks its stdout,
//! stderr and exit status.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `kafee args...` with `stdin`, killing it (and failing) after `limit`.
fn kafee(args: &[&str], stdin: &str, limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafee"))
        .args(args)
        .env_remove("KAFEE_BOOTSTRAP")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            let _ = child.wait();
            panic!(
                "kafee {args:?} still running after {limit:?}; stderr: {}",
                err_reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    Run {
        code: status.code(),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
        elapsed: started.elapsed(),
    }
}

const LIMIT: Duration = Duration::from_secs(120);

fn ok(args: &[&str], stdin: &str) -> Run {
    let run = kafee(args, stdin, LIMIT);
    assert_eq!(run.code, Some(0), "kafee {args:?} failed: {run:?}");
    run
}

/// The bootstrap address of broker `kind`; fails with instructions when unset.
fn bootstrap(kind: &str) -> String {
    let var = format!("KAFEE_{}_BOOTSTRAP", kind.to_uppercase());
    match std::env::var(&var) {
        Ok(addr) if !addr.trim().is_empty() => addr.trim().to_owned(),
        _ => panic!(
            "{var} is not set. Start the broker with `scripts/broker up {kind}` and run \
             `{var}=$(scripts/broker up {kind} | tail -1) cargo test -p kafee-cli`"
        ),
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "kafee-cli-{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn create(addr: &str, topic: &str, partitions: u32) {
    let run = ok(
        &[
            "topics",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
            "--bootstrap",
            addr,
        ],
        "",
    );
    assert_eq!(
        run.stdout.trim(),
        format!("created topic {topic} ({partitions} partitions)")
    );
}

fn produce(addr: &str, topic: &str, lines: &[String], extra: &[&str]) {
    let mut args = vec!["produce", "--topic", topic, "--bootstrap", addr];
    args.extend_from_slice(extra);
    let run = ok(&args, &(lines.join("\n") + "\n"));
    assert_eq!(
        run.stdout.trim(),
        format!("produced {} records to {topic}", lines.len())
    );
}

/// `consume --format jsonl --exit-idle 3s`: the parsed records.
fn consume_jsonl(addr: &str, topic: &str, group: &str, extra: &[&str]) -> (Vec<Value>, Run) {
    let mut args = vec![
        "consume",
        "--bootstrap",
        addr,
        "--topic",
        topic,
        "--group",
        group,
        "--format",
        "jsonl",
        "--exit-idle",
        "3s",
    ];
    args.extend_from_slice(extra);
    let run = ok(&args, "");
    let records = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (records, run)
}

/// Runs one scenario against each broker as its own test.
macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {
        mod kafka {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(&super::bootstrap("kafka"));
                }
            )*
        }
        mod tansu {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(&super::bootstrap("tansu"));
                }
            )*
        }
    };
}

on_both_brokers!(
    produced_lines_come_back_as_jsonl_in_partition_order,
    a_second_run_of_the_group_resumes_after_the_committed_offsets,
    fail_matching_sends_records_to_the_dead_letter_topic,
    topics_create_list_delete_and_their_errors,
    missing_topics_fail_with_one_line_and_status_1,
    max_records_and_summary_format_stop_cleanly,
    sigint_stops_gracefully_and_commits,
);

/// Keyed, keyless, non-ASCII and tab-carrying lines, with a header on every
/// record: each comes back exactly once, with its key, value and header, in
/// offset order within its partition (offsets 0, 1, 2, ...).
fn produced_lines_come_back_as_jsonl_in_partition_order(addr: &str) {
    let topic = unique("roundtrip");
    create(addr, &topic, 3);
    let mut lines: Vec<String> = (0..60)
        .map(|i| match i % 4 {
            0 => format!("key-{i}\tvalue {i}"),
            1 => format!("value only {i}"),
            2 => format!("k\u{e9}y-{i}\tw\u{e4}rt \"{i}\" \u{1f600}"),
            _ => format!("key-{i}\tvalue\twith a tab {i}"),
        })
        .collect();
    lines.push("key-last\t".into());
    produce(addr, &topic, &lines, &["--header", "source=cli-test"]);

    let (records, run) = consume_jsonl(addr, &topic, &unique("g"), &[]);
    assert!(
        run.stderr
            .contains(&format!("total: {} records", lines.len())),
        "{}",
        run.stderr
    );
    let mut expected: Vec<(Value, Value)> = lines
        .iter()
        .map(|l| match l.split_once('\t') {
            Some((k, v)) => (Value::from(k), Value::from(v)),
            None => (Value::Null, Value::from(l.as_str())),
        })
        .collect();
    let mut got: Vec<(Value, Value)> = records
        .iter()
        .map(|r| (r["key"].clone(), r["value"].clone()))
        .collect();
    expected.sort_by_key(|(k, v)| format!("{k}{v}"));
    got.sort_by_key(|(k, v)| format!("{k}{v}"));
    assert_eq!(got, expected);

    let mut offsets: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in &records {
        assert_eq!(r["topic"], Value::from(topic.as_str()));
        assert_eq!(r["headers"], serde_json::json!([["source", "cli-test"]]));
        assert!(r["timestamp"].as_i64().unwrap() > 1_600_000_000_000, "{r}");
        assert!(r["batch"].as_u64().unwrap() >= 1, "{r}");
        offsets
            .entry(r["partition"].as_i64().unwrap())
            .or_default()
            .push(r["offset"].as_i64().unwrap());
    }
    for (partition, offsets) in offsets {
        let want: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, want, "partition {partition}");
    }
}

/// A clean stop commits: the same group started again gets nothing old,
/// only what was produced since.
fn a_second_run_of_the_group_resumes_after_the_committed_offsets(addr: &str) {
    let topic = unique("resume");
    create(addr, &topic, 2);
    let first: Vec<String> = (0..20).map(|i| format!("first {i}")).collect();
    produce(addr, &topic, &first, &[]);
    let group = unique("g");
    let (records, _) = consume_jsonl(addr, &topic, &group, &["--batch-size", "7"]);
    assert_eq!(records.len(), first.len());

    let second: Vec<String> = (0..5).map(|i| format!("second {i}")).collect();
    produce(addr, &topic, &second, &[]);
    let (records, _) = consume_jsonl(addr, &topic, &group, &[]);
    let mut values: Vec<&str> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    values.sort();
    assert_eq!(
        values,
        second.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// Apache Kafka only: Tansu 0.6 answers ListOffsets(latest) with the last
/// record batch's base offset + 1, not the log end offset (5 records produced
/// in one batch: "latest" is 1), so a new group with `--offset-reset latest`
/// there re-reads the tail of the last batch.
mod kafka_only {
    #[test]
    fn offset_reset_latest_skips_what_is_already_there() {
        super::offset_reset_latest_skips_what_is_already_there(&super::bootstrap("kafka"));
    }
}

fn offset_reset_latest_skips_what_is_already_there(addr: &str) {
    let topic = unique("latest");
    create(addr, &topic, 2);
    let lines: Vec<String> = (0..20).map(|i| format!("old {i}")).collect();
    produce(addr, &topic, &lines, &[]);
    let (records, run) = consume_jsonl(
        addr,
        &topic,
        &unique("g-latest"),
        &["--offset-reset", "latest"],
    );
    assert!(records.is_empty(), "{records:?}");
    assert!(run.stderr.contains("total: 0 records"), "{}", run.stderr);
}

/// `--fail-matching` with `best-effort` and a DLQ: the matching records are
/// reported failed and dead-lettered on stderr, and the dead-letter topic
/// holds exactly them, with kafee's headers.
fn fail_matching_sends_records_to_the_dead_letter_topic(addr: &str) {
    let topic = unique("fail");
    let dlq = format!("{topic}-dlq");
    create(addr, &topic, 2);
    create(addr, &dlq, 1);
    let lines: Vec<String> = (0..30)
        .map(|i| {
            if i % 10 == 3 {
                format!("k{i}\tbad order {i}")
            } else {
                format!("k{i}\tgood order {i}")
            }
        })
        .collect();
    produce(addr, &topic, &lines, &[]);
    let (records, run) = consume_jsonl(
        addr,
        &topic,
        &unique("g"),
        &[
            "--ack",
            "best-effort",
            "--dlq-topic",
            &dlq,
            "--dlq-max-retries",
            "1",
            "--fail-matching",
            "^bad",
            "--batch-timeout",
            "200ms",
        ],
    );
    assert!(records.len() >= lines.len(), "{records:?}");
    assert_eq!(
        run.stderr.matches("dead-lettered: ").count(),
        3,
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("failed: "), "{}", run.stderr);
    assert!(run.stderr.contains("3 dead-lettered"), "{}", run.stderr);

    let (dead, _) = consume_jsonl(addr, &dlq, &unique("g-dlq"), &[]);
    let mut values: Vec<&str> = dead.iter().map(|r| r["value"].as_str().unwrap()).collect();
    values.sort();
    assert_eq!(values, vec!["bad order 13", "bad order 23", "bad order 3"]);
    for record in &dead {
        let headers = record["headers"].as_array().unwrap();
        assert!(
            headers
                .iter()
                .any(|h| h[0] == "kafee.dlq.source.topic" && h[1] == topic.as_str()),
            "{record}"
        );
    }
}

fn topics_create_list_delete_and_their_errors(addr: &str) {
    let topic = unique("topics");
    create(addr, &topic, 2);
    let run = ok(&["topics", "list", "--long", "--bootstrap", addr], "");
    assert!(
        run.stdout.lines().any(|l| l == format!("{topic}\t2")),
        "{}",
        run.stdout
    );
    let again = kafee(
        &["topics", "create", &topic, "--bootstrap", addr],
        "",
        LIMIT,
    );
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(
        again.stderr.contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        again.stderr
    );
    assert_eq!(again.stderr.lines().count(), 1, "{}", again.stderr);
    ok(
        &[
            "topics",
            "create",
            &topic,
            "--if-not-exists",
            "--bootstrap",
            addr,
        ],
        "",
    );

    let run = ok(&["topics", "delete", &topic, "--bootstrap", addr], "");
    assert_eq!(run.stdout.trim(), format!("deleted {topic}"));
    let run = ok(&["topics", "list", "--bootstrap", addr], "");
    assert!(!run.stdout.lines().any(|l| l == topic), "{}", run.stdout);
    let again = kafee(
        &["topics", "delete", &topic, "--bootstrap", addr],
        "",
        LIMIT,
    );
    assert_eq!(again.code, Some(1), "{again:?}");
    assert_eq!(
        again.stderr.trim(),
        format!("error: topic {topic:?} does not exist")
    );
    ok(
        &[
            "topics",
            "delete",
            &topic,
            "--if-exists",
            "--bootstrap",
            addr,
        ],
        "",
    );
}

fn missing_topics_fail_with_one_line_and_status_1(addr: &str) {
    let topic = unique("missing");
    let run = kafee(
        &[
            "consume",
            "--bootstrap",
            addr,
            "--topic",
            &topic,
            "--group",
            "g",
            "--exit-idle",
            "1s",
        ],
        "",
        LIMIT,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stderr.trim(),
        format!("error: topic {topic:?} does not exist")
    );
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.elapsed < Duration::from_secs(15), "{run:?}");

    let run = kafee(
        &["produce", "--bootstrap", addr, "--topic", &topic],
        "x\n",
        LIMIT,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stderr.trim(),
        format!("error: topic {topic:?} does not exist")
    );

    // The dead-letter topic must exist too.
    let existing = unique("exists");
    create(addr, &existing, 1);
    let run = kafee(
        &[
            "consume",
            "--bootstrap",
            addr,
            "--topic",
            &existing,
            "--group",
            "g",
            "--dlq-topic",
            &topic,
        ],
        "",
        LIMIT,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stderr.trim(),
        format!("error: topic {topic:?} does not exist")
    );

    // A partition the topic does not have.
    let run = kafee(
        &[
            "produce",
            "--bootstrap",
            addr,
            "--topic",
            &existing,
            "--partition",
            "5",
        ],
        "x\n",
        LIMIT,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("partition 5 does not exist"), "{run:?}");
}

/// `--max-records` stops without waiting for idleness; `--format summary`
/// prints a line per batch and the totals on stdout.
fn max_records_and_summary_format_stop_cleanly(addr: &str) {
    let topic = unique("summary");
    create(addr, &topic, 1);
    let lines: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    produce(addr, &topic, &lines, &["--partition", "0"]);
    let run = ok(
        &[
            "consume",
            "--bootstrap",
            addr,
            "--topic",
            &topic,
            "--group",
            &unique("g"),
            "--format",
            "summary",
            "--batch-size",
            "10",
            "--max-records",
            "20",
        ],
        "",
    );
    let batch_lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("batch "))
        .collect();
    assert!(batch_lines.len() >= 2, "{}", run.stdout);
    assert!(
        batch_lines[0].contains(&format!("{topic}/0 offsets 0..=9 (10 records,")),
        "{}",
        run.stdout
    );
    let totals = run.stdout.lines().last().unwrap();
    assert!(totals.starts_with("total: "), "{}", run.stdout);
    assert!(
        totals.contains("stopped: --max-records 20 reached"),
        "{totals}"
    );

    let run = ok(
        &[
            "consume",
            "--bootstrap",
            addr,
            "--topic",
            &topic,
            "--group",
            &unique("g"),
            "--format",
            "none",
            "--exit-idle",
            "2s",
        ],
        "",
    );
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("total: 50 records"),
        "{}",
        run.stdout
    );
}

/// Ctrl-C (SIGINT) while consuming: exit status 0, the totals say why, and
/// what was handled is committed (the group's next run gets nothing).
fn sigint_stops_gracefully_and_commits(addr: &str) {
    use std::io::BufRead;
    let topic = unique("sigint");
    create(addr, &topic, 2);
    let lines: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    produce(addr, &topic, &lines, &[]);
    let group = unique("g");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafee"))
        .args([
            "consume",
            "--bootstrap",
            addr,
            "--topic",
            &topic,
            "--group",
            &group,
        ])
        .env_remove("KAFEE_BOOTSTRAP")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut count = 0;
        for line in std::io::BufReader::new(stdout).lines() {
            line.unwrap();
            count += 1;
            if count == 40 {
                let _ = seen_tx.send(());
            }
        }
        count
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    if seen_rx.recv_timeout(LIMIT).is_err() {
        child.kill().unwrap();
        panic!(
            "no 40 records within {LIMIT:?}: {}",
            err_reader.join().unwrap()
        );
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            child.kill().unwrap();
            panic!("still running {LIMIT:?} after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = err_reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(reader.join().unwrap(), 40);
    assert!(stderr.contains("total: 40 records"), "{stderr}");
    assert!(stderr.contains("stopped: interrupted"), "{stderr}");

    let (records, _) = consume_jsonl(addr, &topic, &group, &[]);
    assert!(records.is_empty(), "{records:?}");
}

// ---- without a broker --------------------------------------------------------------------

#[test]
fn an_unreachable_broker_fails_fast_with_status_1() {
    for args in [
        vec!["topics", "list", "--bootstrap", "127.0.0.1:1"],
        vec!["produce", "--topic", "t", "--bootstrap", "127.0.0.1:1"],
        vec![
            "consume",
            "--topic",
            "t",
            "--group",
            "g",
            "--bootstrap",
            "127.0.0.1:1",
            "--timeout",
            "3s",
        ],
    ] {
        let run = kafee(&args, "", Duration::from_secs(30));
        assert_eq!(run.code, Some(1), "{args:?}: {run:?}");
        assert!(
            run.stderr
                .starts_with("error: no broker at 127.0.0.1:1 answered"),
            "{args:?}: {run:?}"
        );
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert!(run.elapsed < Duration::from_secs(15), "{run:?}");
    }
}

#[test]
fn bad_arguments_fail_with_status_2_before_connecting() {
    let base = [
        "consume",
        "--bootstrap",
        "127.0.0.1:1",
        "--topic",
        "t",
        "--group",
        "g",
    ];
    for (extra, message) in [
        (vec!["--batch-timeout", "5"], "has no unit"),
        (vec!["--exit-idle", "5d"], "unknown unit"),
        (
            vec!["--mode", "single", "--batch-size", "5"],
            "batch.size is a batch option",
        ),
        (vec!["--batch-size", "0"], "batch.size"),
        (vec!["--dlq-max-retries", "2"], "--dlq-topic"),
        (vec!["--fail-matching", "("], "regex parse error"),
        (vec!["--ack", "sometimes"], "invalid value 'sometimes'"),
        (vec!["--format", "xml"], "invalid value 'xml'"),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(&extra);
        let run = kafee(&args, "", Duration::from_secs(30));
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
    }
    let run = kafee(
        &["consume", "--topic", "t", "--bootstrap", "127.0.0.1:1"],
        "",
        LIMIT,
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--group"), "{run:?}");
    let run = kafee(
        &[
            "topics",
            "create",
            "t",
            "--partitions",
            "0",
            "--bootstrap",
            "127.0.0.1:1",
        ],
        "",
        LIMIT,
    );
    assert_eq!(run.code, Some(2), "{run:?}");
}

#[test]
fn help_documents_every_consume_flag_with_its_default() {
    let run = ok(&["consume", "--help"], "");
    for flag in [
        "--bootstrap",
        "--topic",
        "--group",
        "--mode",
        "--batch-size",
        "--batch-max-bytes",
        "--batch-timeout",
        "--ack",
        "--max-in-flight",
        "--dlq-topic",
        "--dlq-max-retries",
        "--isolation",
        "--offset-reset",
        "--max-records",
        "--exit-idle",
        "--format",
        "--fail-matching",
        "--timeout",
        "--session-timeout",
        "--rebalance-timeout",
    ] {
        assert!(
            run.stdout.contains(flag),
            "{flag} missing from:\n{}",
            run.stdout
        );
    }
    for default in [
        "[default: batch]",
        "[default: 100]",
        "[default: 1048576]",
        "[default: 1s]",
        "[default: all-or-nothing]",
        "[default: 3]",
        "[default: read-uncommitted]",
        "[default: earliest]",
        "[default: jsonl]",
        "[default: 10s]",
        "[default: no limit]",
        "[default: never]",
        "[default: none]",
    ] {
        assert!(
            run.stdout.contains(default),
            "{default} missing from:\n{}",
            run.stdout
        );
    }
}
