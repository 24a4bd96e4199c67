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

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::config::ClientConfig;
use crate::error::{ClientError, ConnectionError, VersionSpan};

/// The ApiVersions version tried first. A broker that does not know it answers
/// UNSUPPORTED_VERSION with a v0 body naming its own range, and we retry with
/// the highest version both sides know.
pub const API_VERSIONS_PREFERRED: i16 = 3;

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

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

/// The API versions one broker advertised, and what we negotiate from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerVersions {
    ranges: BTreeMap<i16, VersionSpan>,
}

impl BrokerVersions {
    /// Reads the broker's ranges out of an ApiVersions response.
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        let ranges = response
            .api_keys
            .iter()
            .filter(|k| k.min_version <= k.max_version)
            .map(|k| {
                (
                    k.api_key,
                    VersionSpan {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect();
        BrokerVersions { ranges }
    }

    /// The versions kafee can speak for an API.
    pub fn ours(api: ApiKey) -> VersionSpan {
        let r = api.valid_versions();
        VersionSpan {
            min: r.min,
            max: r.max,
        }
    }

    /// The range the broker advertised for an API, `None` if it did not list it.
    pub fn broker_range(&self, api: ApiKey) -> Option<VersionSpan> {
        self.ranges.get(&(api as i16)).copied()
    }

    /// The versions both sides speak, `None` if there are none.
    pub fn negotiated(&self, api: ApiKey) -> Option<VersionSpan> {
        let theirs = self.broker_range(api)?;
        let ours = Self::ours(api);
        let span = VersionSpan {
            min: ours.min.max(theirs.min),
            max: ours.max.min(theirs.max),
        };
        (span.min <= span.max).then_some(span)
    }

    /// The highest version both sides speak.
    pub fn version(&self, api: ApiKey) -> Option<i16> {
        self.negotiated(api).map(|s| s.max)
    }

    /// Every API the broker listed, with its advertised range.
    pub fn iter(&self) -> impl Iterator<Item = (i16, VersionSpan)> + '_ {
        self.ranges.iter().map(|(k, v)| (*k, *v))
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
        let Some(id) = frame.get(..4) else {
            return Err(ConnectionError::ShortFrame(frame.len()));
        };
        let correlation_id = i32::from_be_bytes([id[0], id[1], id[2], id[3]]);
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

/// Outcome of looking at the start of the read buffer.
#[derive(Debug, PartialEq, Eq)]
enum FrameStatus {
    /// More bytes are needed: at least this many more.
    Incomplete(usize),
    /// A whole frame is there; its body (after the 4-byte prefix) has this length.
    Complete(usize),
}

/// Cheap check whether a whole length-prefixed frame has arrived.
fn check_frame(buf: &[u8], max: usize) -> Result<FrameStatus, ConnectionError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(FrameStatus::Incomplete(4 - buf.len()));
    };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let len = usize::try_from(len).map_err(|_| ConnectionError::NegativeFrameLength(len))?;
    if len > max {
        return Err(ConnectionError::FrameTooLarge {
            limit: max,
            actual: len,
        });
    }
    let have = buf.len() - 4;
    if have < len {
        Ok(FrameStatus::Incomplete(len - have))
    } else {
        Ok(FrameStatus::Complete(len))
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut rd: R, shared: Arc<Shared>, max_frame: usize) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let cause = loop {
        match check_frame(&buf, max_frame) {
            Err(e) => break e,
            Ok(FrameStatus::Complete(len)) => {
                let frame = buf.split_to(4 + len).freeze().slice(4..);
                if let Err(e) = shared.route(frame) {
                    break e;
                }
            }
            Ok(FrameStatus::Incomplete(needed)) => {
                // `needed` is bounded by `max_frame` (checked above).
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

struct Inner {
    broker: Arc<str>,
    client_id: Option<StrBytes>,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Bytes>,
    versions: OnceLock<BrokerVersions>,
    next_correlation_id: AtomicI32,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop both tasks and fail any request still
        // awaited through an `InFlight`.
        self.shared.poison(ConnectionError::Shutdown);
    }
}

/// A multiplexed connection to one broker. Cheap to clone (all clones share
/// the socket); the socket closes when the last clone is dropped.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.inner.broker)
            .field("dead", &self.is_dead())
            .finish()
    }
}

impl Connection {
    /// Opens a TCP connection to `addr` (`host:port`) and runs the ApiVersions
    /// handshake, all within `settings.connect_timeout`.
    pub async fn connect(addr: &str, settings: &ConnSettings) -> Result<Connection, ClientError> {
        let attempt = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|source| ClientError::Connect {
                    broker: addr.to_owned(),
                    source,
                })?;
            stream
                .set_nodelay(true)
                .map_err(|source| ClientError::Connect {
                    broker: addr.to_owned(),
                    source,
                })?;
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
    /// runs the ApiVersions handshake. `broker` names the peer in errors.
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
        let conn = Connection::spawn(stream, broker, settings);
        let versions = conn.negotiate(settings.request_timeout).await?;
        let _ = conn.inner.versions.set(versions);
        Ok(conn)
    }

    fn spawn<S>(stream: S, broker: &str, settings: &ConnSettings) -> Connection
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
        Connection {
            inner: Arc::new(Inner {
                broker: Arc::from(broker),
                client_id: Some(StrBytes::from_string(settings.client_id.clone())),
                shared,
                tx,
                versions: OnceLock::new(),
                next_correlation_id: AtomicI32::new(0),
            }),
        }
    }

    /// ApiVersions at [`API_VERSIONS_PREFERRED`], falling back to the
    /// broker's highest version when it answers UNSUPPORTED_VERSION.
    async fn negotiate(&self, timeout: Duration) -> Result<BrokerVersions, ClientError> {
        let api = ApiKey::ApiVersions;
        let ours = BrokerVersions::ours(api);
        let mut version = API_VERSIONS_PREFERRED.min(ours.max);
        loop {
            let mut request = ApiVersionsRequest::default();
            if version >= 3 {
                request = request
                    .with_client_software_name(StrBytes::from_static_str("kafee"))
                    .with_client_software_version(StrBytes::from_static_str(env!(
                        "CARGO_PKG_VERSION"
                    )));
            }
            let body = self
                .start_at(&request, api, version)?
                .wait_body(timeout)
                .await?;
            let response = match ApiVersionsResponse::decode(&mut body.clone(), version) {
                Ok(r) if r.error_code != UNSUPPORTED_VERSION => r,
                first => {
                    // A broker that does not know our version answers with a v0 body.
                    match ApiVersionsResponse::decode(&mut body.clone(), 0) {
                        Ok(r) if r.error_code == UNSUPPORTED_VERSION => r,
                        _ => {
                            return match first {
                                Ok(r) => Ok(r),
                                Err(e) => Err(ClientError::Decode {
                                    broker: self.broker().to_owned(),
                                    api,
                                    version,
                                    message: format!("{e:#}"),
                                }),
                            }
                            .and_then(|r| self.finish_negotiation(r));
                        }
                    }
                }
            };
            if response.error_code != UNSUPPORTED_VERSION {
                return self.finish_negotiation(response);
            }
            let theirs = response
                .api_keys
                .iter()
                .find(|k| k.api_key == api as i16)
                .map(|k| VersionSpan {
                    min: k.min_version,
                    max: k.max_version,
                });
            match theirs {
                Some(t) if t.max < version && t.max >= ours.min && t.max >= t.min => {
                    tracing::debug!(broker = %self.broker(), from = version, to = t.max,
                        "ApiVersions: falling back to the broker's version");
                    version = t.max;
                }
                _ => {
                    return Err(ClientError::UnsupportedVersion {
                        broker: self.broker().to_owned(),
                        api,
                        ours,
                        theirs,
                    })
                }
            }
        }
    }

    fn finish_negotiation(
        &self,
        response: ApiVersionsResponse,
    ) -> Result<BrokerVersions, ClientError> {
        if response.error_code != 0 {
            return Err(ClientError::Broker {
                broker: self.broker().to_owned(),
                api: ApiKey::ApiVersions,
                code: response.error_code,
                topic: None,
                partition: None,
                message: None,
            });
        }
        Ok(BrokerVersions::from_response(&response))
    }

    /// `host:port` of the broker.
    pub fn broker(&self) -> &str {
        &self.inner.broker
    }

    /// The versions the broker advertised in the handshake.
    pub fn versions(&self) -> &BrokerVersions {
        static NONE: OnceLock<BrokerVersions> = OnceLock::new();
        self.inner
            .versions
            .get()
            .unwrap_or_else(|| NONE.get_or_init(BrokerVersions::default))
    }

    /// The version that [`Connection::send`] uses for `api`: the highest both
    /// sides speak. The error names the API when there is none.
    pub fn version(&self, api: ApiKey) -> Result<i16, ClientError> {
        self.versions()
            .version(api)
            .ok_or_else(|| ClientError::UnsupportedVersion {
                broker: self.broker().to_owned(),
                api,
                ours: BrokerVersions::ours(api),
                theirs: self.versions().broker_range(api),
            })
    }

    /// Whether the connection is dead (it then fails every request at once).
    pub fn is_dead(&self) -> bool {
        self.inner.shared.lock().poisoned.is_some()
    }

    /// What killed the connection, if it is dead.
    pub fn dead_reason(&self) -> Option<Arc<ConnectionError>> {
        self.inner.shared.lock().poisoned.clone()
    }

    /// Requests whose response has not arrived yet, including those whose
    /// caller gave up waiting.
    pub fn in_flight(&self) -> usize {
        self.inner.shared.lock().pending.len()
    }

    /// Sends `request` at the highest version both sides speak and waits up to
    /// `timeout` for its response.
    ///
    /// The request's content must suit any version in the negotiated range;
    /// when it depends on the version use [`Connection::send_with`].
    pub async fn send<R: Request>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let api = api_key::<R>()?;
        let version = self.version(api)?;
        self.start_at(&request, api, version)?.wait(timeout).await
    }

    /// Builds the request for the negotiated version (`build` receives it),
    /// sends it and waits. Returns the version with the response.
    pub async fn send_with<R, F>(
        &self,
        timeout: Duration,
        build: F,
    ) -> Result<(i16, R::Response), ClientError>
    where
        R: Request,
        F: FnOnce(i16) -> R,
    {
        let api = api_key::<R>()?;
        let version = self.version(api)?;
        let request = build(version);
        let response = self.start_at(&request, api, version)?.wait(timeout).await?;
        Ok((version, response))
    }

    /// Sends `request` at `version`, which must be in the negotiated range.
    pub async fn send_versioned<R: Request>(
        &self,
        request: R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        self.start(&request, version)?.wait(timeout).await
    }

    /// Queues `request` at `version` (checked against the negotiated range)
    /// and returns at once; await the response with [`InFlight::wait`] (or
    /// [`InFlight::wait_body`] to decode it yourself). Use this to pipeline:
    /// the request is on its way before this returns.
    pub fn start<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<InFlight<R::Response>, ClientError> {
        let api = api_key::<R>()?;
        let span = self
            .versions()
            .negotiated(api)
            .filter(|s| s.min <= version && version <= s.max);
        if span.is_none() {
            return Err(ClientError::UnsupportedVersion {
                broker: self.broker().to_owned(),
                api,
                ours: BrokerVersions::ours(api),
                theirs: self.versions().broker_range(api),
            });
        }
        self.start_at(request, api, version)
    }

    /// Queues a request without checking the negotiated range (the
    /// handshake itself, and callers that already checked).
    fn start_at<R: Request>(
        &self,
        request: &R,
        api: ApiKey,
        version: i16,
    ) -> Result<InFlight<R::Response>, ClientError> {
        let (tx, rx) = oneshot::channel();
        let correlation_id = {
            let mut st = self.inner.shared.lock();
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
        let frame = match self.encode(request, api, version, correlation_id) {
            Ok(frame) => frame,
            Err(e) => {
                self.inner.shared.lock().pending.remove(&correlation_id);
                return Err(e);
            }
        };
        if self.inner.tx.send(frame).is_err() {
            // The writer is gone, so the connection is poisoned (or being).
            let cause = self.inner.shared.poison(ConnectionError::Shutdown);
            return Err(self.dead(api, cause));
        }
        Ok(InFlight {
            rx,
            broker: self.inner.broker.clone(),
            api,
            version,
            correlation_id,
            _response: PhantomData,
        })
    }

    fn next_correlation_id(&self) -> i32 {
        self.inner
            .next_correlation_id
            .fetch_add(1, Ordering::Relaxed)
            & i32::MAX
    }

    fn dead(&self, api: ApiKey, source: Arc<ConnectionError>) -> ClientError {
        ClientError::Connection {
            broker: self.broker().to_owned(),
            api,
            source,
        }
    }

    fn encode<R: Request>(
        &self,
        request: &R,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<Bytes, ClientError> {
        let encode_err = |message: String| ClientError::Encode {
            api,
            version,
            message,
        };
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(self.inner.client_id.clone());
        let header_version = R::header_version(version);
        let size = header
            .compute_size(header_version)
            .and_then(|h| request.compute_size(version).map(|b| h + b))
            .map_err(|e| encode_err(format!("{e:#}")))?;
        let len = i32::try_from(size).map_err(|_| {
            encode_err(format!("request of {size} bytes exceeds the largest frame"))
        })?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.put_i32(len);
        header
            .encode(&mut buf, header_version)
            .and_then(|()| request.encode(&mut buf, version))
            .map_err(|e| encode_err(format!("{e:#}")))?;
        Ok(buf.freeze())
    }
}

fn api_key<R: Request>() -> Result<ApiKey, ClientError> {
    ApiKey::try_from(R::KEY).map_err(|()| ClientError::Encode {
        api: ApiKey::ApiVersions,
        version: -1,
        message: format!("unknown API key {}", R::KEY),
    })
}

/// A request on its way; await its response with [`InFlight::wait`].
///
/// Dropping it stops waiting; the request stays in flight and its late
/// response is discarded.
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

impl<Resp: Decodable + HeaderVersion> InFlight<Resp> {
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
        let mut body = self.wait_body(timeout).await?;
        Resp::decode(&mut body, version).map_err(|e| ClientError::Decode {
            broker: broker.to_string(),
            api,
            version,
            message: format!("{e:#}"),
        })
    }

    /// Waits up to `timeout` for the response and returns its body (the
    /// response header already stripped), for callers that decode it
    /// themselves (the fetch loop's zero-copy record batches).
    pub async fn wait_body(self, timeout: Duration) -> Result<Bytes, ClientError> {
        let reply = match tokio::time::timeout(timeout, self.rx).await {
            Err(_) => {
                return Err(ClientError::RequestTimeout {
                    broker: self.broker.to_string(),
                    api: self.api,
                    correlation_id: self.correlation_id,
                    timeout,
                })
            }
            Ok(Err(_)) => Err(Arc::new(ConnectionError::Shutdown)),
            Ok(Ok(reply)) => reply,
        };
        let mut frame = reply.map_err(|source| ClientError::Connection {
            broker: self.broker.to_string(),
            api: self.api,
            source,
        })?;
        ResponseHeader::decode(&mut frame, Resp::header_version(self.version)).map_err(|e| {
            ClientError::Decode {
                broker: self.broker.to_string(),
                api: self.api,
                version: self.version,
                message: format!("response header: {e:#}"),
            }
        })?;
        Ok(frame)
    }
}

#[cfg(test)]
pub(crate) mod tests;
