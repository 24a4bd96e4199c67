//! What `kafee consume` prints: the jsonl record objects and the summary
//! lines.

use std::fmt::Write as _;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// One record, as the jsonl format prints it.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Key (`None`: null).
    pub key: Option<&'a [u8]>,
    /// Value (`None`: null).
    pub value: Option<&'a [u8]>,
    /// The `batch` field: the sequence number of the handler call.
    pub batch: u64,
}

fn push_json_string(out: &mut String, text: &str) {
    // serde_json's escaping; writing a String cannot fail.
    let _ = write!(out, "{}", serde_json::Value::from(text));
}

/// `"name":"utf8"`, `"name_b64":"..."` or `"name":null`.
fn push_bytes_field(out: &mut String, name: &str, bytes: Option<&[u8]>) {
    match bytes {
        None => {
            let _ = write!(out, "\"{name}\":null");
        }
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => {
                let _ = write!(out, "\"{name}\":");
                push_json_string(out, text);
            }
            Err(_) => {
                let _ = write!(out, "\"{name}_b64\":\"{}\"", BASE64.encode(bytes));
            }
        },
    }
}

/// A header value: a string when UTF-8, `{"b64":"..."}` when not, null
/// when null.
fn push_header_value(out: &mut String, value: Option<&[u8]>) {
    match value {
        None => out.push_str("null"),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => push_json_string(out, text),
            Err(_) => {
                let _ = write!(out, "{{\"b64\":\"{}\"}}", BASE64.encode(bytes));
            }
        },
    }
}

/// One jsonl line (without the newline):
/// `{"topic","partition","offset","timestamp","key","value","headers":[[k,v],...],"batch":N}`,
/// with `key_b64` / `value_b64` (base64) in place of `key` / `value` when
/// the bytes are not UTF-8. Header keys are strings (invalid UTF-8 replaced
/// with U+FFFD); header values are strings, `{"b64":"..."}` or null.
pub fn record_json<'h>(
    record: &RecordView<'_>,
    headers: impl IntoIterator<Item = (&'h [u8], Option<&'h [u8]>)>,
) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("{\"topic\":");
    push_json_string(&mut out, record.topic);
    let _ = write!(
        out,
        ",\"partition\":{},\"offset\":{},\"timestamp\":{},",
        record.partition, record.offset, record.timestamp
    );
    push_bytes_field(&mut out, "key", record.key);
    out.push(',');
    push_bytes_field(&mut out, "value", record.value);
    out.push_str(",\"headers\":[");
    for (i, (key, value)) in headers.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        push_json_string(&mut out, &String::from_utf8_lossy(key));
        out.push(',');
        push_header_value(&mut out, value);
        out.push(']');
    }
    let _ = write!(out, "],\"batch\":{}}}", record.batch);
    out
}

/// A byte count for people: `512 B`, `6.1 KiB`, `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

/// A handler duration for people: `850µs`, `3.2ms`, `1.25s`.
pub fn human_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.1}ms", micros as f64 / 1_000.0)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn view<'a>(key: Option<&'a [u8]>, value: Option<&'a [u8]>) -> RecordView<'a> {
        RecordView {
            topic: "orders",
            partition: 3,
            offset: 42,
            timestamp: 1_700_000_000_000,
            key,
            value,
            batch: 7,
        }
    }

    #[test]
    fn utf8_fields_are_strings_and_the_line_is_valid_json() {
        let line = record_json(
            &view(Some(b"k\"1"), Some("wert \u{e9}\n".as_bytes())),
            [(&b"h"[..], Some(&b"v"[..])), (&b"n"[..], None)],
        );
        assert_eq!(
            line,
            "{\"topic\":\"orders\",\"partition\":3,\"offset\":42,\"timestamp\":1700000000000,\
             \"key\":\"k\\\"1\",\"value\":\"wert \u{e9}\\n\",\"headers\":[[\"h\",\"v\"],[\"n\",null]],\
             \"batch\":7}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["value"], "wert \u{e9}\n");
        assert_eq!(parsed["headers"][1][1], serde_json::Value::Null);
    }

    #[test]
    fn null_stays_null_and_binary_goes_base64() {
        let line = record_json(
            &view(None, Some(&[0xff, 0x00, 0x41])),
            [(&b"bin"[..], Some(&[0xc3, 0x28][..]))],
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["key"], serde_json::Value::Null);
        assert!(parsed.get("value").is_none());
        assert_eq!(parsed["value_b64"], "/wBB");
        assert_eq!(parsed["headers"][0][1]["b64"], "wyg=");
        let empty = record_json(&view(Some(b""), None), []);
        let parsed: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(parsed["key"], "");
        assert_eq!(parsed["value"], serde_json::Value::Null);
        assert_eq!(parsed["headers"], serde_json::json!([]));
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(6246), "6.1 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_duration(Duration::from_micros(850)), "850µs");
        assert_eq!(human_duration(Duration::from_micros(3_200)), "3.2ms");
        assert_eq!(human_duration(Duration::from_millis(1_250)), "1.25s");
    }
}
