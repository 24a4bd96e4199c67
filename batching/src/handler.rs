//! The handler a consumer runs: Kafee's `handle_message`, `handle_batch`
//! and `handle_dead_letter`.

use crate::message::{Batch, Message};
use crate::strategy::BatchResult;

/// The error a handler returns for a message.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// What [`Handler::handle_dead_letter`] learns about a dead-lettered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterInfo {
    /// The dead-letter topic.
    pub topic: String,
    /// Where the dead letter was written.
    pub partition: i32,
    /// Its offset in the dead-letter topic.
    pub offset: i64,
    /// Failed handler attempts before it was dead-lettered.
    pub attempts: u32,
    /// The handler's error, as text.
    pub error: String,
    /// The consumer group.
    pub group_id: String,
}

/// A consumer's processing logic.
///
/// In single-message mode the consumer calls [`handle_message`]; in batch
/// mode [`handle_batch`], whose default calls `handle_message` for each
/// message and reports the failures. Implement the one your mode uses. A
/// handler that panics counts as a failed batch (`BatchResult::Err`); the
/// consumer goes on.
///
/// ```
/// use kafee_batching::{Batch, BatchResult, Handler};
///
/// struct Sink;
///
/// #[async_trait::async_trait]
/// impl Handler for Sink {
///     async fn handle_batch(&self, batch: &Batch) -> BatchResult {
///         // write batch.messages() in one transaction ...
///         let _ = batch.len();
///         BatchResult::Ok
///     }
/// }
/// ```
///
/// [`handle_message`]: Handler::handle_message
/// [`handle_batch`]: Handler::handle_batch
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one message. The default fails: a handler in single-message
    /// mode (or relying on the default `handle_batch`) must implement it.
    async fn handle_message(&self, message: &Message) -> Result<(), HandlerError> {
        let _ = message;
        Err("handle_message is not implemented by this handler".into())
    }

    /// Handles a batch. The default calls [`Handler::handle_message`] for
    /// each message in order and reports the failed ones: `Partial` with
    /// their indices, or `Err` with the last error when every message of a
    /// batch failed.
    async fn handle_batch(&self, batch: &Batch) -> BatchResult {
        let mut failed = Vec::new();
        let mut last_error = String::new();
        for (i, message) in batch.messages().iter().enumerate() {
            if let Err(e) = self.handle_message(message).await {
                last_error = e.to_string();
                failed.push(i);
            }
        }
        match failed.len() {
            0 => BatchResult::Ok,
            n if n == batch.len() && n > 1 => BatchResult::Err(last_error),
            1 if batch.len() == 1 => BatchResult::Err(last_error),
            _ => BatchResult::Partial(failed),
        }
    }

    /// Runs after a message was written to the dead-letter topic and the
    /// dead-letter broker acknowledged it. Default: nothing.
    async fn handle_dead_letter(&self, message: &Message, info: &DeadLetterInfo) {
        let _ = (message, info);
    }
}
