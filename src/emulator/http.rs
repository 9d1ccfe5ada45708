//! HTTP plumbing: the TLS accept loop and a small owned request type the routes work on.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::state::AppState;

/// Response type of every route.
pub(crate) type Response = http::Response<Full<Bytes>>;

/// Response extension asking the connection layer to cut the body halfway (fault injection).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// What goes on the wire: whole bodies, or a half body followed by an error.
type WireBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// Turns a route response into the wire body, cutting it short when asked to.
fn to_wire(resp: Response) -> http::Response<WireBody> {
    let drop = resp.extensions().get::<DropConnection>().is_some();
    let (mut parts, body) = resp.into_parts();
    if !drop {
        return http::Response::from_parts(parts, body.map_err(|never| match never {}).boxed());
    }
    // The full length is announced, half is sent, then the stream errors: the client sees
    // a connection that died mid-response.
    let bytes = futures_bytes(body);
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(bytes.len().max(1) as u64),
    );
    let frames: Vec<Result<hyper::body::Frame<Bytes>, std::io::Error>> = vec![
        Ok(hyper::body::Frame::data(half)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "connection dropped by fault injection",
        )),
    ];
    let stream = http_body_util::StreamBody::new(tokio_stream::iter(frames));
    http::Response::from_parts(parts, stream.boxed())
}

/// The bytes of a `Full` body (always ready, never fails).
fn futures_bytes(body: Full<Bytes>) -> Bytes {
    use hyper::body::Body as _;
    let mut body = std::pin::pin!(body);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match body.as_mut().poll_frame(&mut cx) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// Request bodies above this are refused with 413, as ARM refuses requests over 4 MB.
pub(crate) const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Bodies of the unauthenticated endpoints (token requests, metadata) are small; a larger
/// one is refused before a token could say who sent it.
const MAX_UNAUTHENTICATED_BODY_BYTES: usize = 64 * 1024;
/// How much of an authenticated client's oversized body is read and dropped so that it sees
/// the 413; beyond this the connection is closed.
const MAX_DISCARDED_BODY_BYTES: usize = 4 * MAX_BODY_BYTES;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause after a failed accept (out of file descriptors and the like).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Bounds on what one client can hold: the emulator may listen where others can reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a request's headers, and again its body; slower clients are disconnected.
    pub read_timeout: Duration,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; further clients wait in the listen backlog until one
    /// closes (at the latest after the timeouts above).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// A fully read request.
pub(crate) struct Request {
    pub method: Method,
    /// Path as sent (still percent-encoded).
    pub path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `https://host:port` as the client addressed us, for absolute links.
    pub base_url: String,
}

impl Request {
    /// First query parameter with this name, compared case-insensitively (`$skipToken` and
    /// `$skiptoken` are the same to ARM).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first path segment that cannot be a resource name once decoded: invalid UTF-8
    /// (which would decode lossily, so distinct names could collide), an encoded `/` or `\`
    /// (which would shift the id's structure) or a control character such as NUL.
    pub fn malformed_segment(&self) -> Option<String> {
        self.path.split('/').find_map(|raw| {
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
            match String::from_utf8(bytes) {
                Err(_) => Some(raw.to_string()),
                Ok(s) if s.chars().any(|c| c == '/' || c == '\\' || c.is_control()) => {
                    Some(raw.to_string())
                }
                Ok(_) => None,
            }
        })
    }

    /// Path segments, percent-decoded, empty ones dropped.
    pub fn segments(&self) -> Vec<String> {
        raw_segments(&self.path)
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect()
    }
}

/// The non-empty `/`-separated segments of a path or resource id, as written.
pub(crate) fn raw_segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// A JSON response with the given status.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = http::Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// Whether an accept error is the machine running out of something (descriptors, buffers,
/// memory) rather than one client's connection failing.
fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOMEM 12 everywhere; ENOBUFS is 105 on Linux, 55 on the BSDs.
    #[cfg(target_os = "linux")]
    const ENOBUFS: i32 = 105;
    #[cfg(not(target_os = "linux"))]
    const ENOBUFS: i32 = 55;
    matches!(e.raw_os_error(), Some(24 | 23 | 12) | Some(ENOBUFS))
}

/// Accepts TLS connections until `shutdown` flips, then drains in-flight connections.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry::default());
    let mut backoff = Duration::ZERO;
    loop {
        tokio::select! {
            // A slot first: at the cap, new clients wait in the kernel's backlog instead of
            // costing a descriptor and a TLS handshake each.
            accepted = async {
                if slots.available_permits() == 0 {
                    // Full: idle connections (or ones still sending their headers) make room,
                    // so parked clients cannot lock out those with work to do.
                    registry.evict_idlest();
                }
                let slot = slots.clone().acquire_owned().await;
                (slot, listener.accept().await)
            } => {
                let (Ok(slot), accepted) = accepted else { break };
                match accepted {
                    Ok((tcp, peer)) => {
                        backoff = Duration::ZERO;
                        let state = state.clone();
                        let acceptor = acceptor.clone();
                        let shutdown = shutdown.clone();
                        let registry = registry.clone();
                        connections.spawn(async move {
                            serve_connection(tcp, peer, acceptor, state, limits, &registry, shutdown)
                                .await;
                            drop(slot);
                        });
                    }
                    Err(e) if is_resource_exhaustion(&e) => {
                        // Spinning would burn a core and flood the log; the condition clears
                        // when connections close, so wait longer each time, up to a bound.
                        backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                        if backoff == MAX_ACCEPT_BACKOFF {
                            log::warn!("accept failed: {e}; retrying every {backoff:?}");
                        } else {
                            log::debug!("accept failed: {e}; retrying in {backoff:?}");
                        }
                        tokio::time::sleep(backoff).await;
                    }
                    // One client's failed connection (reset before accept and the like).
                    Err(e) => log::debug!("accept failed: {e}"),
                }
            }
            _ = shutdown.changed() => break,
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        log::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
        connections.shutdown().await;
    }
}

/// When a connection last moved bytes, and how many of its requests are being handled.
#[derive(Default)]
struct Activity {
    last_ms: std::sync::atomic::AtomicU64,
    in_flight: std::sync::atomic::AtomicUsize,
    epoch: std::sync::OnceLock<std::time::Instant>,
    /// Asks the connection to close (the server is at its connection cap).
    evict: tokio::sync::Notify,
}

/// The served connections' activity, for choosing one to close at the connection cap.
#[derive(Default)]
struct Registry {
    next: std::sync::atomic::AtomicU64,
    connections: std::sync::Mutex<std::collections::HashMap<u64, Arc<Activity>>>,
}

impl Registry {
    fn add(&self, activity: Arc<Activity>) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut map) = self.connections.lock() {
            map.insert(id, activity);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut map) = self.connections.lock() {
            map.remove(&id);
        }
    }

    /// Asks the connection idle the longest, with no request in flight, to close.
    fn evict_idlest(&self) {
        let Ok(mut map) = self.connections.lock() else {
            return;
        };
        let idlest = map
            .iter()
            .filter(|(_, a)| !a.busy())
            .max_by_key(|(_, a)| a.idle_for())
            .map(|(id, _)| *id);
        if let Some(activity) = idlest.and_then(|id| map.remove(&id)) {
            activity.evict.notify_one();
        }
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        let epoch = self.epoch.get_or_init(std::time::Instant::now);
        u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms
            .store(self.now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = self.last_ms.load(std::sync::atomic::Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    fn busy(&self) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0
    }
}

/// Counts a request as in flight for as long as it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> Self {
        activity
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A stream that records every read and write in its [`Activity`].
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    limits: ConnectionLimits,
    registry: &Registry,
    shutdown: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            log::debug!("TLS handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            log::debug!("TLS handshake with {peer} timed out");
            return;
        }
    };
    let activity = Arc::new(Activity::default());
    activity.touch();
    let id = registry.add(activity.clone());
    serve_tls(tls, peer, state, limits, &activity, shutdown).await;
    registry.remove(id);
}

async fn serve_tls(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    state: Arc<AppState>,
    limits: ConnectionLimits,
    activity: &Arc<Activity>,
    mut shutdown: watch::Receiver<bool>,
) {
    let io = Tracked {
        inner: tls,
        activity: activity.clone(),
    };
    let in_flight = activity.clone();
    let read_timeout = limits.read_timeout;
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let guard = InFlight::new(&in_flight);
        async move {
            let resp = handle(state, req, read_timeout).await;
            drop(guard);
            Ok::<_, Infallible>(to_wire(resp))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    builder.http2().timer(hyper_util::rt::TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let tick = (limits.idle_timeout.min(limits.read_timeout) / 4).max(Duration::from_millis(100));
    let mut watchdog = tokio::time::interval(tick);
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    log::debug!("connection from {peer} ended: {e}");
                }
                return;
            }
            _ = shutdown.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                return;
            }
            _ = activity.evict.notified() => {
                log::debug!("closing connection from {peer} to make room for others");
                return;
            }
            _ = watchdog.tick() => {
                // Covers what hyper's own header timeout does not: a client that completes
                // the TLS handshake and then sends nothing, or idles between requests.
                if !activity.busy() && activity.idle_for() >= limits.idle_timeout {
                    log::debug!("closing idle connection from {peer}");
                    return;
                }
            }
        }
    }
}

/// The 413 ARM answers for a request over its size limit.
fn too_large(limit: usize) -> Response {
    let size = if limit.is_multiple_of(1024 * 1024) {
        format!("{} MB", limit / (1024 * 1024))
    } else {
        format!("{} KB", limit / 1024)
    };
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestContentTooLarge",
        &format!("The request content size exceeds the maximum allowed size of {size}."),
    )
}

/// An ARM-shaped error for a request refused before it reaches a route.
fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

async fn handle(
    state: Arc<AppState>,
    req: http::Request<hyper::body::Incoming>,
    read_timeout: Duration,
) -> Response {
    let (parts, body) = req.into_parts();
    let mut request = request_head(&state, parts);
    // The token is checked before a byte of the body is read: an anonymous client must not
    // be able to make the emulator buffer anything.
    if let Some(segment) = request.malformed_segment() {
        log::info!(
            "{} {} -> 400 (malformed segment)",
            request.method,
            request.path
        );
        return refusal(
            StatusCode::BAD_REQUEST,
            "InvalidRequestUri",
            &format!("The request URI segment '{segment}' is invalid: it must be UTF-8 and must not encode '/', '\\' or control characters."),
        );
    }
    let segments = request.segments();
    let needs_token = super::routes::needs_token(&segments);
    if needs_token {
        if let Some(resp) = super::routes::refuse_unauthenticated(&state, &request, &segments) {
            log::info!(
                "{} {} -> {}",
                request.method,
                request.path,
                resp.status().as_u16()
            );
            return resp;
        }
    }
    let limit = if needs_token {
        MAX_BODY_BYTES
    } else {
        MAX_UNAUTHENTICATED_BODY_BYTES
    };
    // An authenticated client's oversized body is read to its end (discarding it, up to a
    // bound) so the client gets the 413 instead of a connection reset mid-upload. Anonymous
    // clients get no such courtesy.
    let discard_up_to = if needs_token {
        MAX_DISCARDED_BODY_BYTES
    } else {
        limit
    };
    let read = tokio::time::timeout(read_timeout, read_body(body, limit, discard_up_to)).await;
    // (log detail, status, ARM code, message) of a body that did not arrive whole.
    let unread = match read {
        Ok(BodyRead::Complete(bytes)) => {
            request.body = bytes;
            None
        }
        Ok(BodyRead::TooLarge) => return too_large(limit),
        Ok(BodyRead::Failed(e)) => Some((
            format!("reading body failed: {e}"),
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content could not be read.",
        )),
        Err(_) => Some((
            format!("body not sent within {read_timeout:?}"),
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            "The request content was not received in time.",
        )),
    };
    if let Some((why, status, code, message)) = unread {
        log::debug!("{} {}: {why}", request.method, request.path);
        return refusal(status, code, message);
    }
    let method = request.method.clone();
    let path = request.path.clone();
    let response = super::routes::route(&state, request).await;
    log::info!("{method} {path} -> {}", response.status().as_u16());
    response
}

/// How reading a request body ended.
enum BodyRead {
    Complete(Bytes),
    /// Over the limit; nothing of it is kept.
    TooLarge,
    Failed(hyper::Error),
}

/// Reads a body of at most `limit` bytes. A longer one is refused at once when its declared
/// length says so or once `discard_up_to` bytes went by; until then it is read and dropped, so
/// that the client, still sending, can read the refusal.
async fn read_body(
    mut body: hyper::body::Incoming,
    limit: usize,
    discard_up_to: usize,
) -> BodyRead {
    use hyper::body::Body as _;
    let declared = body.size_hint().lower();
    if declared > discard_up_to as u64 {
        return BodyRead::TooLarge;
    }
    let mut kept = bytes::BytesMut::new();
    let mut seen: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return BodyRead::Failed(e),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > discard_up_to {
            return BodyRead::TooLarge;
        }
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if !kept.is_empty() {
            kept = bytes::BytesMut::new();
        }
    }
    if seen > limit || declared > limit as u64 {
        BodyRead::TooLarge
    } else {
        BodyRead::Complete(kept.freeze())
    }
}

/// Everything of a request but its body.
fn request_head(state: &AppState, parts: http::request::Parts) -> Request {
    let authority = parts.uri.authority().map(|a| a.to_string()).or_else(|| {
        parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    });
    let base_url = match authority {
        Some(a) if !a.is_empty() => format!("https://{a}"),
        _ => state.fallback_base_url.clone(),
    };
    let query = parts
        .uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    Request {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body: Bytes::new(),
        base_url,
    }
}
