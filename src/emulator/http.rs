//! HTTP plumbing: the TLS accept loop and a small owned request type the routes work on.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
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

/// Request bodies above this are refused; ARM's own limit for RP payloads is 4 MB.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Path segments, percent-decoded, empty ones dropped.
    pub fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect()
    }
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

/// Accepts TLS connections until `shutdown` flips, then drains in-flight connections.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((tcp, peer)) => {
                        connections.spawn(serve_connection(
                            tcp,
                            peer,
                            acceptor.clone(),
                            state.clone(),
                            shutdown.clone(),
                        ));
                    }
                    Err(e) => {
                        log::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
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

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
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
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(to_wire(handle(state, req).await)) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                log::debug!("connection from {peer} ended: {e}");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(state: Arc<AppState>, req: http::Request<hyper::body::Incoming>) -> Response {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            log::warn!(
                "{} {}: reading body failed: {e}",
                parts.method,
                parts.uri.path()
            );
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({"error": {"code": "RequestBodyTooLarge",
                    "message": "The request body could not be read or is too large."}}),
            );
        }
    };
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
    let request = Request {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body,
        base_url,
    };
    let method = request.method.clone();
    let path = request.path.clone();
    let response = super::routes::route(&state, request).await;
    log::info!("{method} {path} -> {}", response.status().as_u16());
    response
}
