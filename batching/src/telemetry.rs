//! Telemetry: `tracing` spans and events named after Kafee's telemetry events,
//! and, behind the `metrics` feature, counters and histograms through the
//! `metrics` crate facade (plug in a Prometheus or StatsD exporter).
//!
//! | event (`event` field) | Kafee event | measurements |
//! | --- | --- | --- |
//! | `kafee.batch.started` | `[:kafee, :batch, :started]` | message_count, bytes |
//! | `kafee.batch.accumulated` | `[:kafee, :batch, :accumulated]` | message_count, total_messages, total_bytes |
//! | `kafee.batch.process_start` | `[:kafee, :batch, :process_start]` | message_count, bytes, ack_strategy |
//! | `kafee.batch.process_end` | `[:kafee, :batch, :process_end]` | duration, message_count, failed_count |
//! | `kafee.batch.process_error` | `[:kafee, :batch, :process_error]` | duration, message_count, error |
//! | `kafee.batch.message_retry` | `[:kafee, :batch, :message_retry]` | offset, retry_count, max_retries |
//! | `kafee.batch.dlq_sent` | `[:kafee, :batch, :dlq_sent]` | offset, duration, retry_count, dlq_topic |
//! | `kafee.batch.dlq_error` | `[:kafee, :batch, :dlq_error]` | offset, duration, retry_count, dlq_topic, error |
//!
//! Every event carries the metadata `topic`, `partition` and `consumer_group`,
//! and is emitted with target `kafee::batch`.
//!
//! Metrics (feature `metrics`), labelled `topic` and `partition`:
//! `kafee_batch_size` (histogram, messages), `kafee_batch_bytes` (histogram),
//! `kafee_batch_duration_seconds` (histogram), `kafee_batch_failed_total`
//! (counter, messages), `kafee_batch_retries_total` (counter),
//! `kafee_dlq_total` (counter), `kafee_dlq_errors_total` (counter),
//! `kafee_consumer_lag` (gauge, messages).
use std::time::Duration;

use crate::config::AckStrategy;

/// Event names, as found in the `event` field.
pub mod events {
    /// A batch received its first message.
    pub const BATCH_STARTED: &str = "kafee.batch.started";
    /// Messages were added to an open batch.
    pub const BATCH_ACCUMULATED: &str = "kafee.batch.accumulated";
    /// The handler was called with a batch.
    pub const PROCESS_START: &str = "kafee.batch.process_start";
    /// The handler returned (possibly with failed messages).
    pub const PROCESS_END: &str = "kafee.batch.process_end";
    /// The handler failed the whole batch or panicked.
    pub const PROCESS_ERROR: &str = "kafee.batch.process_error";
    /// A failed message will be retried.
    pub const MESSAGE_RETRY: &str = "kafee.batch.message_retry";
    /// A message was written to the dead-letter topic.
    pub const DLQ_SENT: &str = "kafee.batch.dlq_sent";
    /// Writing a message to the dead-letter topic failed.
    pub const DLQ_ERROR: &str = "kafee.batch.dlq_error";
}

/// The metadata every event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta<'a> {
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Consumer group id.
    pub consumer_group: &'a str,
}

/// The span a batch is handled in; enter it around the handler call.
pub fn batch_span(
    meta: &Meta<'_>,
    first_offset: i64,
    last_offset: i64,
    generation: i32,
) -> tracing::Span {
    tracing::info_span!(
        target: "kafee::batch",
        "kafee.batch",
        topic = meta.topic,
        partition = meta.partition,
        consumer_group = meta.consumer_group,
        first_offset,
        last_offset,
        generation,
    )
}

/// A batch received its first message(s).
pub fn batch_started(meta: &Meta<'_>, message_count: usize, bytes: usize) {
    tracing::debug!(
        target: "kafee::batch",
        event = events::BATCH_STARTED,
        topic = meta.topic,
        partition = meta.partition,
        consumer_group = meta.consumer_group,
        message_count,
        bytes,
    );
}

/// Messages were added to an open batch.
pub fn batch_accumulated(
    meta: &Meta<'_>,
    message_count: usize,
    total_messages: usize,
    total_bytes: usize,
) {
    tracing::trace!(
        target: "kafee::batch",
        event = events::BATCH_ACCUMULATED,
        topic = meta.topic,
        partition = meta.partition,
        consumer_group = meta.consumer_group,
        message_count,
        total_messages,
        total_bytes,
    );
}

/// The handler is called with a batch.
pub fn process_start(
    meta: &Meta<'_>,
    message_count: usize,
    bytes: usize,
    ack_strategy: AckStrategy,
) {
    tracing::debug!(
        target: "kafee::batch",
        event = events::PROCESS_START,
        topic = meta.topic,
        partition = meta.partition,
        consumer_group = meta.consumer_group,
        message_count,
        bytes,
        ack_strategy = ack_strategy.as_str(),
    );
    #[cfg(feature = "metrics")]
    {
        let labels = labels(meta);
        metrics::histogram!("kafee_batch_size", &labels).record(message_count as f64);
        metrics::histogram!("kafee_batch_bytes", &labels).record(bytes as f64);
    }
}

/// The handler returned; `failed_count` messages failed.
pub fn process_end(meta: &Meta<'_>, duration: Duration, message_count: usize, failed_count: usize) {
    tracing::info!(
        target: "kafee::batch",
        event = events::PROCESS_END,
        topic = meta.topic,
        partition = meta.partition,
        consumer_group = meta.consumer_group,
        duration_us = duration_micros(duration),
        message_count,
        failed_count,
    );
    #[cfg(feature = "metrics")]
    {
        let labels = labels(meta);
        metrics::histogram!("kafee_batch_duration_seconds", &labels).record(duration.as_secs_f64());
        if failed_count > 0 {
            metrics::counter!("kafee_batch_failed_total", &labels).increment(failed_count as u64);
        }
    }
}

/// The handler failed the whole batch (or panicked).
pub fn process_error(meta: &Meta<'_>, duration: Duration, message_count: usize, error: &str) {
    tracing::warn!(
        target: "kafee::batch",
        event = events::PROCESS_ERROR,
        topic = meta.topic,
        partition = meta.partition,
        consumer_group = meta.consumer_group,
        duration_us = duration_micros(duration),
        message_count,
        error,
    );
    #[cfg(feature = "metrics")]
    {
        let labels = labels(meta);
        metrics::histogram!("kafee_batch_duration_seconds", &labels).record(duration.as_secs_f64());
        metrics::counter!("kafee_batch_failed_total", &labels).increment(message_count as u64);
    }
}

/// A retry from `offset` is scheduled after `retry_count` failed attempts.
/// With `exhausted` (no dead-letter topic, attempts used up) it is a warning.
pub fn message_retry(
    meta: &Meta<'_>,
    offset: i64,
    retry_count: u32,
    max_retries: u32,
    exhausted: bool,
) {
    if exhausted {
        tracing::warn!(
            target: "kafee::batch",
            event = events::MESSAGE_RETRY,
            topic = meta.topic,
            partition = meta.partition,
            consumer_group = meta.consumer_group,
            offset,
            retry_count,
            max_retries,
            "retries exhausted and no dead-letter topic: the partition keeps retrying"
        );
    } else {
        tracing::info!(
            target: "kafee::batch",
            event = events::MESSAGE_RETRY,
            topic = meta.topic,
            partition = meta.partition,
            consumer_group = meta.consumer_group,
            offset,
            retry_count,
            max_retries,
        );
    }
    #[cfg(feature = "metrics")]
    metrics::counter!("kafee_batch_retries_total", &labels(meta)).increment(1);
}

/// A message was written to the dead-letter topic and acknowledged.
pub fn dlq_sent(
    meta: &Meta<'_>,
    offset: i64,
    duration: Duration,
    retry_count: u32,
    dlq_topic: &str,
) {
    tracing::warn!(
        target: "kafee::batch",
        event = events::DLQ_SENT,
        topic = meta.topic,
        partition = meta.partition,
        consumer_group = meta.consumer_group,
        offset,
        duration_us = duration_micros(duration),
        retry_count,
        dlq_topic,
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("kafee_dlq_total", &labels(meta)).increment(1);
}

/// Writing a message to the dead-letter topic failed; the source offset is
/// not committed past it.
pub fn dlq_error(
    meta: &Meta<'_>,
    offset: i64,
    duration: Duration,
    retry_count: u32,
    dlq_topic: &str,
    error: &str,
) {
    tracing::error!(
        target: "kafee::batch",
        event = events::DLQ_ERROR,
        topic = meta.topic,
        partition = meta.partition,
        consumer_group = meta.consumer_group,
        offset,
        duration_us = duration_micros(duration),
        retry_count,
        dlq_topic,
        error,
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("kafee_dlq_errors_total", &labels(meta)).increment(1);
}

/// The partition's lag: `high_watermark - committed offset`, in messages.
pub fn consumer_lag(meta: &Meta<'_>, lag: i64) {
    tracing::trace!(
        target: "kafee::batch",
        topic = meta.topic,
        partition = meta.partition,
        consumer_group = meta.consumer_group,
        lag,
    );
    #[cfg(feature = "metrics")]
    metrics::gauge!("kafee_consumer_lag", &labels(meta)).set(lag as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = lag;
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(feature = "metrics")]
fn labels(meta: &Meta<'_>) -> [(&'static str, String); 2] {
    [
        ("topic", meta.topic.to_owned()),
        ("partition", meta.partition.to_string()),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// Records every event's fields as `name=value` strings.
    #[derive(Default, Clone)]
    struct Capture(Arc<Mutex<Vec<Vec<String>>>>);

    struct Fields(Vec<String>);
    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push(format!("{}={:?}", field.name(), value));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push(format!("{}={}", field.name(), value));
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut f = Fields(vec![format!("target={}", event.metadata().target())]);
            event.record(&mut f);
            self.0.lock().unwrap().push(f.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn events_carry_kafee_names_measurements_and_metadata() {
        let capture = Capture::default();
        let meta = Meta {
            topic: "orders",
            partition: 3,
            consumer_group: "g",
        };
        tracing::subscriber::with_default(capture.clone(), || {
            let span = batch_span(&meta, 10, 19, 4);
            let _enter = span.enter();
            batch_started(&meta, 1, 150);
            batch_accumulated(&meta, 9, 10, 1500);
            process_start(&meta, 10, 1500, AckStrategy::AllOrNothing);
            process_end(&meta, Duration::from_millis(12), 10, 2);
            process_error(&meta, Duration::from_millis(1), 10, "db down");
            message_retry(&meta, 10, 1, 3, false);
            message_retry(&meta, 10, 3, 3, true);
            dlq_sent(&meta, 11, Duration::from_millis(3), 3, "orders-dlq");
            dlq_error(
                &meta,
                12,
                Duration::from_millis(3),
                3,
                "orders-dlq",
                "timeout",
            );
            consumer_lag(&meta, 42);
        });
        let events = capture.0.lock().unwrap();
        assert_eq!(events.len(), 10);
        let names: Vec<&str> = events
            .iter()
            .filter_map(|e| e.iter().find_map(|f| f.strip_prefix("event=")))
            .collect();
        assert_eq!(
            names,
            vec![
                events::BATCH_STARTED,
                events::BATCH_ACCUMULATED,
                events::PROCESS_START,
                events::PROCESS_END,
                events::PROCESS_ERROR,
                events::MESSAGE_RETRY,
                events::MESSAGE_RETRY,
                events::DLQ_SENT,
                events::DLQ_ERROR,
            ]
        );
        for e in events.iter() {
            assert!(e.contains(&"target=kafee::batch".to_owned()));
            assert!(e.contains(&"topic=orders".to_owned()), "{e:?}");
            assert!(e.contains(&"partition=3".to_owned()), "{e:?}");
            assert!(e.contains(&"consumer_group=g".to_owned()), "{e:?}");
        }
        let end = &events[3];
        assert!(end.contains(&"duration_us=12000".to_owned()));
        assert!(end.contains(&"failed_count=2".to_owned()));
        assert!(events[4].contains(&"error=db down".to_owned()));
        assert!(events[8].contains(&"dlq_topic=orders-dlq".to_owned()));
        assert!(events[9].contains(&"lag=42".to_owned()));
    }
}

#[cfg(all(test, feature = "metrics"))]
#[allow(clippy::unwrap_used)]
mod metrics_tests {
    use super::*;
    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
        Recorder, SharedString, Unit,
    };
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<String>>>;

    /// Logs every metric update as `name{labels} kind value`.
    struct Handle {
        key: String,
        log: Log,
    }
    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} counter {value}", self.key));
        }
        fn absolute(&self, value: u64) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} counter= {value}", self.key));
        }
    }
    impl GaugeFn for Handle {
        fn increment(&self, value: f64) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} gauge+ {value}", self.key));
        }
        fn decrement(&self, value: f64) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} gauge- {value}", self.key));
        }
        fn set(&self, value: f64) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} gauge {value}", self.key));
        }
    }
    impl HistogramFn for Handle {
        fn record(&self, value: f64) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} histogram {value}", self.key));
        }
    }

    struct Capture(Log);
    impl Capture {
        fn handle(&self, key: &Key) -> Arc<Handle> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            Arc::new(Handle {
                key: format!("{}{{{}}}", key.name(), labels.join(",")),
                log: self.0.clone(),
            })
        }
    }
    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.handle(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.handle(key))
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.handle(key))
        }
    }

    #[test]
    fn metrics_reach_the_installed_recorder() {
        let capture = Capture(Log::default());
        let meta = Meta {
            topic: "orders",
            partition: 3,
            consumer_group: "g",
        };
        metrics::with_local_recorder(&capture, || {
            process_start(&meta, 10, 1500, AckStrategy::BestEffort);
            process_end(&meta, Duration::from_millis(250), 10, 2);
            process_error(&meta, Duration::from_millis(1), 4, "x");
            message_retry(&meta, 10, 1, 3, false);
            dlq_sent(&meta, 11, Duration::from_millis(3), 3, "dlq");
            dlq_error(&meta, 12, Duration::from_millis(3), 3, "dlq", "timeout");
            consumer_lag(&meta, 42);
        });
        let log = capture.0.lock().unwrap().clone();
        let l = "{topic=orders,partition=3}";
        assert_eq!(
            log,
            vec![
                format!("kafee_batch_size{l} histogram 10"),
                format!("kafee_batch_bytes{l} histogram 1500"),
                format!("kafee_batch_duration_seconds{l} histogram 0.25"),
                format!("kafee_batch_failed_total{l} counter 2"),
                format!("kafee_batch_duration_seconds{l} histogram 0.001"),
                format!("kafee_batch_failed_total{l} counter 4"),
                format!("kafee_batch_retries_total{l} counter 1"),
                format!("kafee_dlq_total{l} counter 1"),
                format!("kafee_dlq_errors_total{l} counter 1"),
                format!("kafee_consumer_lag{l} gauge 42"),
            ]
        );
    }
}
