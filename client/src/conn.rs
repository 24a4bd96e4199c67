//! One multiplexed connection to one broker.
//!
//! A [`Connection`] owns a socket split in two tasks:
//!
//! ```text
//!  callers ──start()──► pending map (correlation id → oneshot) ──► writer task ──► socket
//!                        ▲                                                          │
//!                        └────────── reader task: frame check, split, route ◄───────┘
//! ```
//!
//! * Requests are pipelined: [`Connection::start`] registers the caller, then
//!   queues the encoded frame; nothing waits for the previous response.
//! * The reader task only cuts frames and routes them by correlation id; the
//!   caller decodes its own response (off the reader's path), so a fetch loop can
//!   decode one response while the next is in flight.
//! * A request whose caller stopped waiting (timeout, dropped future) keeps its
//!   pending entry until its late response arrives or the connection dies: the
//!   correlation id stays known, so a late answer is not mistaken for a protocol
//!   violation.
//! * A fatal stream error (end of stream, i/o error, bad frame, unknown
//!   correlation id) *poisons* the connection: every request in flight fails
//!   with the same [`ConnectionError`] (one [`Arc`]), and every later request
//!   fails at once. The owner ([`crate::cluster::Cluster`]) replaces a poisoned
//!   connection on next use, with backoff.
//!
//! **Unknown outcomes.** A request that timed out, or was in flight when the
//! connection died, may or may not have been applied by the broker. For a
//! commit or a produce the outcome is UNKNOWN; callers must not assume either.
//!
//! **Requests without a response.** A Produce with `acks=0` gets no answer
//! from the broker; sending one through this connection would leave its
//! pending entry until the connection closes. kafee's producer uses `acks=all`.
//!
//! ```no_run
//! use std::time::Duration;
//! use kafee_client::conn::{ConnSettings, Connection};
//! use kafee_client::config::ClientConfig;
//! use kafka_protocol::messages::{ApiKey, MetadataRequest};
//!
//! # async fn demo() -> Result<(), kafee_client::error::ClientError> {
//! let config = ClientConfig::builder().bootstrap_servers(["127.0.0.1:9092"]).build()?;
//! let conn = Connection::connect("127.0.0.1:9092", &ConnSettings::from(&config)).await?;
//! let timeout = Duration::from_secs(30);
//!
//! // One request, at the negotiated version:
//! let metadata = conn.send(MetadataRequest::default().with_topics(Some(vec![])), timeout).await?;
//! println!("{} brokers", metadata.brokers.len());
//!
//! // Pipelined: both requests are on the wire before the first answer is read.
//! let v = conn.version(ApiKey::Metadata)?;
//! let first = conn.start(&MetadataRequest::default().with_topics(Some(vec![])), v)?;
//! let second = conn.start(&MetadataRequest::default().with_topics(Some(vec![])), v)?;
//! let (a, b) = (first.wait(timeout).await?, second.wait(timeout).await?);
//! # let _ = (a, b);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafee_protocol::codec::{self, ApiRequest};
use kafee_protocol::error::{DecodeError, ErrorCode, VersionError};
use kafee_protocol::frame;
use kafee_protocol::header::ResponseHeader;
use kafee_protocol::versions::{self, ApiVersionsOutcome, Negotiated};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::config::ClientConfig;
use crate::error::{ClientError, ConnectionError};

/// Bytes reserved in the read buffer when it runs empty.
const READ_CHUNK: usize = 64 * 1024;

/// Settings one connection needs (a subset of [`ClientConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSettings {
    /// `client.id` sent in every request header.
    pub client_id: String,
    /// Largest response frame accepted; a bigger one poisons the connection.
    pub max_frame_bytes: usize,
    /// Timeout of the ApiVersions handshake request.
    pub request_timeout: Duration,
    /// Timeout of TCP connect plus handshake.
    pub connect_timeout: Duration,
}

impl From<&ClientConfig> for ConnSettings {
    fn from(c: &ClientConfig) -> Self {
        ConnSettings {
            client_id: c.client_id().to_owned(),
            max_frame_bytes: c.max_frame_bytes(),
            request_timeout: c.request_timeout(),
            connect_timeout: c.connect_timeout(),
        }
    }
}

type Reply = Result<Bytes, Arc<ConnectionError>>;

/// The state shared by the handles, the reader task and the writer task.
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pending: HashMap<i32, oneshot::Sender<Reply>>,
    poisoned: Option<Arc<ConnectionError>>,
    tasks: Vec<AbortHandle>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every critical section is a single insert/remove/take), so a
        // poisoned mutex is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection dead, fails every pending request with the same
    /// error and stops both tasks. Idempotent: the first cause wins.
    fn poison(&self, cause: ConnectionError) -> Arc<ConnectionError> {
        let (cause, pending, tasks) = {
            let mut st = self.lock();
            if let Some(existing) = &st.poisoned {
                return existing.clone();
            }
            let cause = Arc::new(cause);
            st.poisoned = Some(cause.clone());
            (
                cause,
                std::mem::take(&mut st.pending),
                std::mem::take(&mut st.tasks),
            )
        };
        if !pending.is_empty() {
            tracing::debug!(in_flight = pending.len(), %cause, "connection poisoned");
        }
        for (_, tx) in pending {
            let _ = tx.send(Err(cause.clone()));
        }
        for task in tasks {
            task.abort();
        }
        cause
    }

    /// Hands a whole response frame (header included) to its caller.
    fn route(&self, frame: Bytes) -> Result<(), ConnectionError> {
        let correlation_id = codec::peek_correlation_id(&frame)
            .map_err(|_| ConnectionError::ShortFrame(frame.len()))?;
        let tx = self
            .lock()
            .pending
            .remove(&correlation_id)
            .ok_or(ConnectionError::UnknownCorrelationId(correlation_id))?;
        // The caller may have stopped waiting (timeout): the entry is cleaned up
        // all the same.
        let _ = tx.send(Ok(frame));
        Ok(())
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut rd: R, shared: Arc<Shared>, max_frame: usize) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let cause = loop {
        match frame::split_frame(&mut buf, max_frame) {
            Err(e) => break ConnectionError::Frame(e),
            Ok(Some(body)) => {
                if let Err(e) = shared.route(body) {
                    break e;
                }
            }
            Ok(None) => {
                // The hint is bounded by `max_frame` + 4 (the prefix was checked).
                let needed = frame::read_hint(&buf, max_frame);
                buf.reserve(needed.max(READ_CHUNK));
                match rd.read_buf(&mut buf).await {
                    Ok(0) => break ConnectionError::Closed { partial: buf.len() },
                    Ok(_) => {}
                    Err(e) => break ConnectionError::Io(e),
                }
            }
        }
    };
    shared.poison(cause);
}

async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
) {
    let mut wr = BufWriter::with_capacity(READ_CHUNK, wr);
    while let Some(frame) = rx.recv().await {
        let mut result = wr.write_all(&frame).await;
        // Coalesce whatever else is queued into one flush.
        while result.is_ok() {
            match rx.try_recv() {
                Ok(frame) => result = wr.write_all(&frame).await,
                Err(_) => break,
            }
        }
        if result.is_ok() {
            result = wr.flush().await;
        }
        if let Err(e) = result {
            shared.poison(ConnectionError::Io(e));
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// The socket side of a connection: the pending map, the writer queue and
/// the correlation id counter. Dropping it stops both tasks.
struct Wire {
    broker: Arc<str>,
    client_id: String,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Bytes>,
    next_correlation_id: AtomicI32,
}

impl Drop for Wire {
    fn drop(&mut self) {
        // The last handle is gone: stop both tasks and fail any request still
        // awaited through an `InFlight`.
        self.shared.poison(ConnectionError::Shutdown);
    }
}

impl Wire {
    fn spawn<S>(stream: S, broker: &str, settings: &ConnSettings) -> Wire
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
        });
        let reader = tokio::spawn(read_loop(rd, shared.clone(), settings.max_frame_bytes));
        let writer = tokio::spawn(write_loop(wr, rx, shared.clone()));
        {
            let mut st = shared.lock();
            if st.poisoned.is_some() {
                reader.abort();
                writer.abort();
            } else {
                st.tasks.push(reader.abort_handle());
                st.tasks.push(writer.abort_handle());
            }
        }
        Wire {
            broker: Arc::from(broker),
            client_id: settings.client_id.clone(),
            shared,
            tx,
            next_correlation_id: AtomicI32::new(0),
        }
    }

    fn broker(&self) -> &str {
        &self.broker
    }

    fn dead(&self, api: ApiKey, source: Arc<ConnectionError>) -> ClientError {
        ClientError::Connection {
            broker: self.broker().to_owned(),
            api,
            source,
        }
    }

    fn version_error(&self, source: VersionError) -> ClientError {
        ClientError::Version {
            broker: self.broker().to_owned(),
            source,
        }
    }

    fn decode_error(&self, source: DecodeError) -> ClientError {
        ClientError::Decode {
            broker: self.broker().to_owned(),
            source,
        }
    }

    fn next_correlation_id(&self) -> i32 {
        self.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX
    }

    /// Registers the caller, then queues the encoded frame. Registration
    /// comes first so that a fast answer always finds its caller.
    fn start<R: ApiRequest>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<InFlight<R::Response>, ClientError> {
        let api = R::API_KEY;
        let (tx, rx) = oneshot::channel();
        let correlation_id = {
            let mut st = self.shared.lock();
            if let Some(cause) = &st.poisoned {
                return Err(self.dead(api, cause.clone()));
            }
            let mut id = self.next_correlation_id();
            while st.pending.contains_key(&id) {
                id = self.next_correlation_id();
            }
            st.pending.insert(id, tx);
            id
        };
        let mut frame = BytesMut::new();
        if let Err(e) = codec::encode_request(
            &mut frame,
            correlation_id,
            Some(&self.client_id),
            version,
            request,
        ) {
            self.shared.lock().pending.remove(&correlation_id);
            return Err(ClientError::Encode(e));
        }
        if self.tx.send(frame.freeze()).is_err() {
            // The writer is gone, so the connection is poisoned (or being).
            let cause = self.shared.poison(ConnectionError::Shutdown);
            return Err(self.dead(api, cause));
        }
        Ok(InFlight {
            rx,
            broker: self.broker.clone(),
            api,
            version,
            correlation_id,
            _response: PhantomData,
        })
    }

    /// ApiVersions at [`versions::API_VERSIONS_FIRST`], retried once at the
    /// broker's highest version when it answers UNSUPPORTED_VERSION (see
    /// [`kafee_protocol::versions`]).
    async fn negotiate(&self, timeout: Duration) -> Result<Negotiated, ClientError> {
        let mut version = versions::API_VERSIONS_FIRST;
        for _ in 0..2 {
            let request = versions::api_versions_request(version);
            let frame = self.start(&request, version)?.wait_frame(timeout).await?;
            let (_, response, _) = versions::decode_api_versions_response(version, frame)
                .map_err(|source| self.decode_error(source))?;
            match versions::api_versions_outcome(version, &response)
                .map_err(|source| self.version_error(source))?
            {
                ApiVersionsOutcome::Negotiated(negotiated) => return Ok(negotiated),
                ApiVersionsOutcome::Retry { version: lower } => {
                    tracing::debug!(broker = %self.broker(), from = version, to = lower,
                        "ApiVersions: falling back to the broker's version");
                    version = lower;
                }
            }
        }
        Err(self.version_error(VersionError::ApiVersionsFailed {
            code: ErrorCode::UNSUPPORTED_VERSION,
        }))
    }
}

struct Inner {
    wire: Wire,
    versions: Negotiated,
}

/// A multiplexed connection to one broker, its API versions negotiated.
/// Cheap to clone (all clones share the socket); the socket closes when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.inner.wire.broker)
            .field("dead", &self.is_dead())
            .finish()
    }
}

impl Connection {
    /// Opens a TCP connection to `addr` (`host:port`) and runs the ApiVersions
    /// handshake, all within `settings.connect_timeout`.
    pub async fn connect(addr: &str, settings: &ConnSettings) -> Result<Connection, ClientError> {
        let attempt = async {
            let connect_error = |source| ClientError::Connect {
                broker: addr.to_owned(),
                source,
            };
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(connect_error)?;
            stream.set_nodelay(true).map_err(connect_error)?;
            Connection::handshake(stream, addr, settings).await
        };
        match tokio::time::timeout(settings.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::ConnectTimeout {
                broker: addr.to_owned(),
                timeout: settings.connect_timeout,
            }),
        }
    }

    /// Starts the reader and writer tasks on an already open byte stream and
    /// runs the ApiVersions handshake (timeout: `settings.request_timeout`).
    /// `broker` names the peer in errors. Fails when the broker lacks an API
    /// that kafee requires ([`kafee_protocol::versions::SUPPORTED`]).
    ///
    /// Must be called inside a tokio runtime.
    pub async fn handshake<S>(
        stream: S,
        broker: &str,
        settings: &ConnSettings,
    ) -> Result<Connection, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let wire = Wire::spawn(stream, broker, settings);
        let versions = wire.negotiate(settings.request_timeout).await?;
        Ok(Connection {
            inner: Arc::new(Inner { wire, versions }),
        })
    }

    /// `host:port` of the broker.
    pub fn broker(&self) -> &str {
        self.inner.wire.broker()
    }

    /// The versions negotiated with this broker in the handshake.
    pub fn versions(&self) -> &Negotiated {
        &self.inner.versions
    }

    /// The version that [`Connection::send`] uses for `api`: the highest both
    /// sides speak. The error names the API when there is none.
    pub fn version(&self, api: ApiKey) -> Result<i16, ClientError> {
        self.inner
            .versions
            .version(api)
            .map_err(|source| self.inner.wire.version_error(source))
    }

    /// Whether the connection is dead (it then fails every request at once).
    pub fn is_dead(&self) -> bool {
        self.inner.wire.shared.lock().poisoned.is_some()
    }

    /// What killed the connection, if it is dead.
    pub fn dead_reason(&self) -> Option<Arc<ConnectionError>> {
        self.inner.wire.shared.lock().poisoned.clone()
    }

    /// Requests whose response has not arrived yet, including those whose
    /// caller gave up waiting.
    pub fn in_flight(&self) -> usize {
        self.inner.wire.shared.lock().pending.len()
    }

    /// Sends `request` at the negotiated version (the highest both sides
    /// speak) and waits up to `timeout` for its response.
    ///
    /// The request's content must suit that version; when it depends on the
    /// version use [`Connection::send_with`].
    pub async fn send<R: ApiRequest>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let version = self.version(R::API_KEY)?;
        self.inner
            .wire
            .start(&request, version)?
            .wait(timeout)
            .await
    }

    /// Builds the request for the negotiated version (`build` receives it),
    /// sends it and waits up to `timeout`. Returns the version with the
    /// response.
    pub async fn send_with<R, F>(
        &self,
        timeout: Duration,
        build: F,
    ) -> Result<(i16, R::Response), ClientError>
    where
        R: ApiRequest,
        F: FnOnce(i16) -> R,
    {
        let version = self.version(R::API_KEY)?;
        let request = build(version);
        let response = self
            .inner
            .wire
            .start(&request, version)?
            .wait(timeout)
            .await?;
        Ok((version, response))
    }

    /// Queues `request` at `version` and returns at once; await the response
    /// with [`InFlight::wait`] (or [`InFlight::wait_body`] to decode it
    /// yourself). The request is on its way before this returns, so a caller
    /// can pipeline: start the next fetch, then consume the previous one.
    ///
    /// `version` must lie between kafee's minimum for the API and the
    /// negotiated version; anything else is refused with
    /// [`ClientError::VersionOutOfRange`] before it is sent. (A broker whose
    /// own minimum is above kafee's answers UNSUPPORTED_VERSION.)
    pub fn start<R: ApiRequest>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<InFlight<R::Response>, ClientError> {
        let api = R::API_KEY;
        let negotiated = self.version(api)?;
        let min = versions::supported(api).map_or(negotiated, |s| s.min);
        if version < min || version > negotiated {
            return Err(ClientError::VersionOutOfRange {
                broker: self.broker().to_owned(),
                api,
                version,
                min,
                max: negotiated,
            });
        }
        self.inner.wire.start(request, version)
    }
}

/// A request on its way; await its response with [`InFlight::wait`].
///
/// Dropping it stops waiting; the request stays in flight and its late
/// response is discarded when it arrives.
#[must_use = "a request whose response is not awaited has an unknown outcome"]
pub struct InFlight<Resp> {
    rx: oneshot::Receiver<Reply>,
    broker: Arc<str>,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    _response: PhantomData<fn() -> Resp>,
}

impl<Resp> std::fmt::Debug for InFlight<Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("broker", &self.broker)
            .field("api", &self.api)
            .field("version", &self.version)
            .field("correlation_id", &self.correlation_id)
            .finish()
    }
}

impl<Resp: Decodable + Message> InFlight<Resp> {
    /// The API of the request.
    pub fn api(&self) -> ApiKey {
        self.api
    }

    /// The version the request was sent at (the response is decoded at it).
    pub fn version(&self) -> i16 {
        self.version
    }

    /// The request's correlation id.
    pub fn correlation_id(&self) -> i32 {
        self.correlation_id
    }

    /// Waits up to `timeout` for the response and decodes it.
    pub async fn wait(self, timeout: Duration) -> Result<Resp, ClientError> {
        let (api, version, broker) = (self.api, self.version, self.broker.clone());
        let frame = self.wait_frame(timeout).await?;
        codec::decode_response::<Resp>(api, version, frame)
            .map(|(_, response)| response)
            .map_err(|source| ClientError::Decode {
                broker: broker.to_string(),
                source,
            })
    }

    /// Waits up to `timeout` for the response and returns its body (the
    /// response header already stripped), for callers that decode it
    /// themselves (the fetch loop's zero-copy record batches).
    pub async fn wait_body(self, timeout: Duration) -> Result<Bytes, ClientError> {
        let (api, version, broker) = (self.api, self.version, self.broker.clone());
        let mut frame = self.wait_frame(timeout).await?;
        ResponseHeader::decode(&mut frame, api, version).map_err(|source| ClientError::Decode {
            broker: broker.to_string(),
            source,
        })?;
        Ok(frame)
    }

    /// Waits for the whole response frame body (header included).
    async fn wait_frame(self, timeout: Duration) -> Result<Bytes, ClientError> {
        let reply = match tokio::time::timeout(timeout, self.rx).await {
            Err(_) => {
                return Err(ClientError::RequestTimeout {
                    broker: self.broker.to_string(),
                    api: self.api,
                    correlation_id: self.correlation_id,
                    timeout,
                })
            }
            // The sender is only dropped unsent if the shared state went away
            // with the connection.
            Ok(Err(_)) => Err(Arc::new(ConnectionError::Shutdown)),
            Ok(Ok(reply)) => reply,
        };
        reply.map_err(|source| ClientError::Connection {
            broker: self.broker.to_string(),
            api: self.api,
            source,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
