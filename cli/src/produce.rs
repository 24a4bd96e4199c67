//! `kafee produce`: lines from stdin, optional `key<TAB>value`.

use std::collections::VecDeque;

use bytes::Bytes;
use kafee::client::cluster::Cluster;
use kafee::client::produce::{
    DeliveryFuture, ProduceError, Producer, ProducerConfig, ProducerRecord,
};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::error::CliError;

/// How many records may wait for their acknowledgment before the reader stops
/// to await the oldest (bounds memory with any input size).
const MAX_PENDING: usize = 10_000;

/// How to turn a line into a record.
#[derive(Debug, Clone)]
pub struct LineFormat {
    /// Split `key<TAB>value` at the first tab (off: the whole line is the value).
    pub keys: bool,
    /// Headers put on every record.
    pub headers: Vec<(String, String)>,
    /// The partition to write to (none: by key hash, or spread when keyless).
    pub partition: Option<i32>,
}

/// Turns one input line (without its line ending) into a record.
pub fn record_for_line(topic: &str, line: &[u8], format: &LineFormat) -> ProducerRecord {
    let mut record = ProducerRecord::new(topic);
    let value = match (format.keys, line.iter().position(|&b| b == b'\t')) {
        (true, Some(tab)) => {
            record = record.key(Bytes::copy_from_slice(&line[..tab]));
            &line[tab + 1..]
        }
        _ => line,
    };
    record = record.value(Bytes::copy_from_slice(value));
    for (key, value) in &format.headers {
        record = record.header(key.clone(), Some(Bytes::from(value.clone())));
    }
    if let Some(partition) = format.partition {
        record = record.partition(partition);
    }
    record
}

/// Strips a trailing `\n` and then a trailing `\r`.
fn trim_line_ending(mut line: &[u8]) -> &[u8] {
    if let Some(rest) = line.strip_suffix(b"\n") {
        line = rest;
    }
    if let Some(rest) = line.strip_suffix(b"\r") {
        line = rest;
    }
    line
}

/// Produces every line of `input` to `topic` and returns how many records the
/// broker acknowledged. Stops at the first failed record.
pub async fn produce_lines<R: AsyncBufRead + Unpin>(
    cluster: &Cluster,
    topic: &str,
    format: &LineFormat,
    mut input: R,
) -> Result<u64, CliError> {
    let producer = Producer::new(cluster.clone(), ProducerConfig::default());
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut acked = 0u64;
    let fail = |acked: u64, source: ProduceError| CliError::Produce {
        topic: topic.to_owned(),
        produced: acked,
        source,
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        let mut record = record_for_line(topic, trim_line_ending(&line), format);
        loop {
            if pending.len() >= MAX_PENDING {
                if let Some(oldest) = pending.pop_front() {
                    oldest.await.map_err(|e| fail(acked, e))?;
                    acked += 1;
                }
            }
            match producer.enqueue(record) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                Err(ProduceError::BufferFull { .. }) if !pending.is_empty() => {
                    // Room comes back as the oldest records complete.
                    record = record_for_line(topic, trim_line_ending(&line), format);
                    if let Some(oldest) = pending.pop_front() {
                        oldest.await.map_err(|e| fail(acked, e))?;
                        acked += 1;
                    }
                }
                Err(e) => return Err(fail(acked, e)),
            }
        }
    }
    producer.flush().await;
    for delivery in pending {
        delivery.await.map_err(|e| fail(acked, e))?;
        acked += 1;
    }
    producer.close().await;
    Ok(acked)
}

/// Parses a `--header key=value` flag.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn format(keys: bool) -> LineFormat {
        LineFormat {
            keys,
            headers: vec![("source".into(), "cli".into())],
            partition: Some(2),
        }
    }

    #[test]
    fn a_tab_splits_key_and_value_once() {
        let record = record_for_line("t", b"k1\tv\twith tab", &format(true));
        assert_eq!(record.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"v\twith tab"[..]));
        assert_eq!(record.partition, Some(2));
        assert_eq!(
            record.headers,
            vec![("source".to_owned(), Some(Bytes::from_static(b"cli")))]
        );
        let unkeyed = record_for_line("t", b"k1\tv", &format(false));
        assert_eq!(unkeyed.key, None);
        assert_eq!(unkeyed.value.as_deref(), Some(&b"k1\tv"[..]));
        let no_tab = record_for_line("t", b"plain", &format(true));
        assert_eq!(no_tab.key, None);
        assert_eq!(no_tab.value.as_deref(), Some(&b"plain"[..]));
    }

    #[test]
    fn line_endings_are_stripped_but_inner_bytes_kept() {
        assert_eq!(trim_line_ending(b"abc\r\n"), b"abc");
        assert_eq!(trim_line_ending(b"abc\n"), b"abc");
        assert_eq!(trim_line_ending(b"abc"), b"abc");
        assert_eq!(trim_line_ending(b"a\rb\n"), b"a\rb");
        assert_eq!(trim_line_ending(b"\n"), b"");
    }

    #[test]
    fn header_flags_need_a_key() {
        assert_eq!(parse_header("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_header("=v").is_err());
        assert!(parse_header("k").is_err());
    }
}
