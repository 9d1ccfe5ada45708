//! How azure_identity's credentials are wired in.
//!
//! - Every token request goes through the provider's reqwest client ([`Wire`], azure_core's
//!   `HttpClient`), so the CA bundle, rustls and the request timeouts are the ones ARM calls use.
//! - The SDK's retry policy is off; [`sdk_token`] retries transient failures itself, a bounded
//!   number of times, from what it saw on the wire.
//! - Every option is passed explicitly (authority host from our cloud settings, tenant, client
//!   id, token file): azure_identity falls back to `AZURE_AUTHORITY_HOST`, `AZURE_CLIENT_ID`,
//!   `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE` only for options left unset.
//! - Each token request builds a fresh SDK credential: the SDK caches tokens per instance with no
//!   way to drop one, so after ARM answered 401 (token revoked or rotated) a long-lived instance
//!   would hand the same token back. Our [`TokenCache`](super::TokenCache) is the one cache.
//! - Errors are rebuilt from the exchange [`Wire`] recorded: the first line of Entra ID's
//!   message with its error code, the CA hint when trust failed, never a form field.

use super::*;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::http::headers::Headers;
use azure_core::http::{
    AsyncRawResponse, Body, ClientMethodOptions, ClientOptions, HttpClient, Request, RetryOptions,
    Transport,
};
use std::sync::Mutex;

/// What the token endpoint did with the last request, as seen on the wire.
enum Seen {
    Response { status: u16, body: bytes::Bytes },
    Failed { message: String, transient: bool },
}

/// azure_core's `HttpClient` over the provider's reqwest client. It records the last exchange:
/// the SDK turns a non-JSON error body into a decode error without the HTTP status, and keeps
/// Entra ID's `error` code only inside the raw response.
pub(super) struct Wire {
    http: reqwest::Client,
    /// The authority is plain `http://` (loopback only, checked with the other endpoints):
    /// azure_identity accepts only `https://` authority hosts, so it is given the `https://`
    /// spelling and the request goes out as configured.
    plain_http: bool,
    seen: Mutex<Option<Seen>>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wire")
    }
}

impl Wire {
    fn new(http: reqwest::Client, plain_http: bool) -> Self {
        Wire {
            http,
            plain_http,
            seen: Mutex::new(None),
        }
    }

    fn record(&self, seen: Seen) {
        if let Ok(mut slot) = self.seen.lock() {
            *slot = Some(seen);
        }
    }

    fn take(&self) -> Option<Seen> {
        self.seen.lock().ok().and_then(|mut s| s.take())
    }
}

fn sdk_error(kind: azure_core::error::ErrorKind, message: String) -> azure_core::Error {
    azure_core::Error::with_message(kind, message)
}

#[async_trait]
impl HttpClient for Wire {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        use azure_core::error::ErrorKind;
        let mut url = request.url().clone();
        if self.plain_http && url.scheme() == "https" {
            // Infallible for http(s) URLs; the URL stays as it was otherwise.
            let _ = url.set_scheme("http");
        }
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes())
            .map_err(|e| sdk_error(ErrorKind::Other, format!("HTTP method: {e}")))?;
        let mut req = self.http.request(method.clone(), url.as_str());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        let req = match request.body() {
            Body::Bytes(b) => req.body(b.clone()),
            Body::SeekableStream(_) => {
                return Err(sdk_error(
                    ErrorKind::Other,
                    "token requests have no streamed body".into(),
                ))
            }
        };
        let started = std::time::Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let tls = crate::arm::error::TlsHint::of(&e);
                let message = format!(
                    "{method} {shown}: {}{}",
                    crate::arm::client::describe_reqwest_error(&e),
                    tls.map(|h| format!(" ({})", h.advice()))
                        .unwrap_or_default()
                );
                self.record(Seen::Failed {
                    message: message.clone(),
                    transient: tls.is_none() && (e.is_connect() || e.is_timeout()),
                });
                return Err(sdk_error(ErrorKind::Io, message));
            }
        };
        let status = resp.status().as_u16();
        let mut headers = Headers::new();
        for (name, value) in resp.headers() {
            if let Ok(v) = value.to_str() {
                headers.insert(name.as_str().to_string(), v.to_string());
            }
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let message = format!("{method} {shown}: reading response: {e}");
                self.record(Seen::Failed {
                    message: message.clone(),
                    transient: true,
                });
                return Err(sdk_error(ErrorKind::Io, message));
            }
        };
        log::debug!(
            "{method} {shown} -> {status} in {}ms",
            started.elapsed().as_millis()
        );
        self.record(Seen::Response {
            status,
            body: body.clone(),
        });
        Ok(AsyncRawResponse::from_bytes(status.into(), headers, body))
    }
}

impl Authority {
    /// SDK options with nothing left to the environment or to the SDK's own retry policy.
    fn client_options(&self, wire: Arc<Wire>) -> ClientOptions {
        let mut cloud = CustomConfiguration::default();
        let host = self.host.trim_end_matches('/');
        cloud.authority_host = match host.strip_prefix("http://") {
            Some(rest) => format!("https://{rest}"),
            None => host.to_string(),
        };
        ClientOptions {
            transport: Some(Transport::new(wire)),
            retry: RetryOptions::none(),
            cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
            ..Default::default()
        }
    }
}

/// Builds an SDK credential from the options [`sdk_token`] hands it.
pub(super) type Build<'a> = &'a (dyn Fn(ClientOptions) -> azure_core::Result<Arc<dyn azure_core::credentials::TokenCredential>>
         + Send
         + Sync);

/// Attempts at the token endpoint; Entra ID has transient 429/5xx like any service.
const TOKEN_ATTEMPTS: u32 = 3;

/// Gets a token from an azure_identity credential built by `build`, retrying transient
/// failures (connect errors, 429, 5xx) a couple of times.
pub(super) async fn sdk_token(
    flow: &'static str,
    authority: &Authority,
    scope: &str,
    build: Build<'_>,
) -> Result<AccessToken, AuthError> {
    let mut attempt = 0;
    loop {
        match sdk_token_once(flow, authority, scope, build).await {
            Ok(t) => return Ok(t),
            Err((e, true)) if attempt + 1 < TOKEN_ATTEMPTS => {
                log::debug!("{flow}: transient token endpoint failure, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(300 << attempt)).await;
                attempt += 1;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// One token request; the flag says whether the failure is transient.
async fn sdk_token_once(
    flow: &'static str,
    authority: &Authority,
    scope: &str,
    build: Build<'_>,
) -> Result<AccessToken, (AuthError, bool)> {
    let wire = Arc::new(Wire::new(
        authority.http.clone(),
        authority.host.starts_with("http://"),
    ));
    let credential = build(authority.client_options(wire.clone()))
        .map_err(|e| (config_error(flow, e), false))?;
    match credential.get_token(&[scope], None).await {
        Ok(t) => Ok(from_sdk(t)),
        Err(e) => Err(failure(flow, &authority.token_url(), wire.take(), e)),
    }
}

pub(super) fn from_sdk(t: azure_core::credentials::AccessToken) -> AccessToken {
    // Nanoseconds, not whole seconds: the cache renews at half the lifetime of short tokens,
    // and a truncated expiry would shift that by up to half a second.
    let nanos = u64::try_from(t.expires_on.unix_timestamp_nanos()).unwrap_or(0);
    AccessToken {
        token: t.token.secret().to_string(),
        expires_on: UNIX_EPOCH + Duration::from_nanos(nanos),
    }
}

/// Our own error carried through the SDK (an assertion source failed), if there is one.
fn carried(e: azure_core::Error) -> Result<AuthError, azure_core::Error> {
    let mut current = e;
    loop {
        let inner = current.into_inner()?;
        let inner = match inner.downcast::<AuthError>() {
            Ok(ours) => return Ok(*ours),
            Err(other) => other,
        };
        match inner.downcast::<azure_core::Error>() {
            Ok(next) => current = *next,
            Err(other) => {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Other,
                    other.to_string(),
                ))
            }
        }
    }
}

/// The innermost azure_core error's message: the SDK prefixes every error with the credential's
/// type name and appends a troubleshooting link, which say nothing our flow name does not.
pub(super) fn innermost_message(e: &azure_core::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// A credential the SDK refused to build (bad tenant id, unreadable token file, ...).
pub(super) fn config_error(flow: &'static str, e: azure_core::Error) -> AuthError {
    let outer = e.to_string();
    let detail = innermost_message(&e);
    let message = outer.lines().next().unwrap_or("").trim().to_string();
    AuthError::Config {
        flow,
        message: if message.contains(&detail) {
            message
        } else {
            format!("{message}: {detail}")
        },
    }
}

fn failure(
    flow: &'static str,
    url: &str,
    seen: Option<Seen>,
    e: azure_core::Error,
) -> (AuthError, bool) {
    match seen {
        Some(Seen::Failed { message, transient }) => {
            (AuthError::Transport { flow, message }, transient)
        }
        Some(Seen::Response { status, body }) if !(200..300).contains(&status) => {
            let transient = status == 429 || status >= 500;
            (entra_error(flow, url, status, &body), transient)
        }
        Some(Seen::Response { status, .. }) => (
            AuthError::Transport {
                flow,
                message: format!(
                    "POST {url}: HTTP {status} without a token response: {}",
                    innermost_message(&e)
                ),
            },
            false,
        ),
        // Nothing was sent: the assertion source (ours) or the SDK's own checks failed.
        None => match carried(e) {
            Ok(ours) => (ours, false),
            Err(e) => (config_error(flow, e), false),
        },
    }
}

/// Entra ID's OAuth error (code and first line of the description) or, for any other body, just
/// the status: a non-Entra body is not echoed, it could reflect form fields back.
pub(super) fn entra_error(flow: &'static str, url: &str, status: u16, body: &[u8]) -> AuthError {
    match serde_json::from_slice::<AadError>(body) {
        Ok(e) if !e.error.is_empty() => AuthError::Rejected {
            flow,
            code: e.error,
            description: e
                .error_description
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        },
        _ => AuthError::Transport {
            flow,
            message: format!("POST {url}: HTTP {status} (not an Entra ID error response)"),
        },
    }
}

/// Makes a client assertion for a token request to `token_url` (certificate signing, external
/// OIDC tokens).
pub(super) trait AssertionSource: Send + Sync {
    fn assertion<'a>(
        &'a self,
        token_url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<String, AuthError>> + Send + 'a>>;
}

/// Feeds one of our assertion sources to azure_identity's `ClientAssertionCredential`; its
/// failure travels through the SDK as the [`AuthError`] itself.
pub(super) struct Assertion {
    pub(super) source: Arc<dyn AssertionSource>,
    pub(super) token_url: String,
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assertion")
    }
}

#[async_trait]
impl azure_identity::ClientAssertion for Assertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.source.assertion(&self.token_url).await.map_err(|e| {
            let message = e.to_string();
            azure_core::Error::with_error(azure_core::error::ErrorKind::Credential, e, message)
        })
    }
}

/// A client that proves itself with an assertion (a JWT it signs with its certificate, or a
/// federated OIDC token) which azure_identity's `ClientAssertionCredential` exchanges for a
/// token; the `flow` names which in errors.
pub struct AssertionCredential {
    flow: &'static str,
    authority: Authority,
    client_id: String,
    source: Arc<dyn AssertionSource>,
}

impl AssertionCredential {
    pub(super) fn new(
        flow: &'static str,
        authority: Authority,
        client_id: String,
        source: Arc<dyn AssertionSource>,
    ) -> Self {
        AssertionCredential {
            flow,
            authority,
            client_id,
            source,
        }
    }
}

impl TokenCredential for AssertionCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        let Self {
            flow,
            authority,
            client_id,
            source,
        } = self;
        boxed(assertion_token(flow, authority, client_id, source, scope))
    }
}

/// A token from azure_identity's `ClientAssertionCredential` fed by `source`.
pub(super) async fn assertion_token(
    flow: &'static str,
    authority: &Authority,
    client_id: &str,
    source: &Arc<dyn AssertionSource>,
    scope: &str,
) -> Result<AccessToken, AuthError> {
    let build = |options: ClientOptions| {
        azure_identity::ClientAssertionCredential::new(
            authority.tenant.clone(),
            client_id.to_string(),
            Assertion {
                source: source.clone(),
                token_url: authority.token_url(),
            },
            Some(azure_identity::ClientAssertionCredentialOptions {
                client_options: options,
            }),
        )
        .map(|c| c as Arc<dyn azure_core::credentials::TokenCredential>)
    };
    sdk_token(flow, authority, scope, &build).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::credential::test_support::*;
    use crate::arm::testutil::{Response, TestServer};

    const SCOPE: &str = "https://management.core.windows.net//.default";

    /// azure_identity reads these variables for any option left unset; the provider sets every
    /// option, so what they hold must never reach Entra ID.
    #[tokio::test]
    async fn stray_azure_variables_do_not_change_the_identity() {
        use crate::arm::testutil::{fresh_dir, write_file};
        let dir = fresh_dir("akspolicy-stray");
        let stray_file = write_file(&dir, "stray-token", "stray-jwt");
        let our_file = write_file(&dir, "our-token", "our-jwt\n");
        // Set once and never removed: no other test reads them, and all values are foreign.
        for (k, v) in [
            ("AZURE_CLIENT_ID", "stray-client"),
            ("AZURE_TENANT_ID", "stray-tenant"),
            ("AZURE_CLIENT_SECRET", "stray-secret"),
            ("AZURE_AUTHORITY_HOST", "https://stray.invalid"),
            ("AZURE_FEDERATED_TOKEN_FILE", stray_file.to_str().unwrap()),
        ] {
            std::env::set_var(k, v);
        }

        let server = TestServer::answering(Response::json(
            200,
            r#"{"expires_in":3600,"access_token":"tok"}"#,
        ))
        .await;
        let pem = dir.join("cert.pem");
        std::fs::write(&pem, include_bytes!("../testdata/test-client-cert.pem")).unwrap();
        let base = ArmSettings {
            tenant_id: Some("tenant1".into()),
            client_id: Some("app".into()),
            use_cli: Some(false),
            ..Default::default()
        };
        let configured = [
            ArmSettings {
                client_secret: Some("our-secret".into()),
                ..base.clone()
            },
            ArmSettings {
                client_certificate_path: Some(pem.to_string_lossy().into_owned()),
                ..base.clone()
            },
            ArmSettings {
                use_oidc: Some(true),
                oidc_token_file_path: Some(our_file.to_string_lossy().into_owned()),
                ..base.clone()
            },
            ArmSettings {
                use_oidc: Some(true),
                oidc_token: Some("our-static-jwt".into()),
                ..base.clone()
            },
        ];
        for settings in &configured {
            let chain =
                credential_from_settings(settings, &server.http_client(), &server.url(), &|_| None)
                    .unwrap();
            assert_eq!(chain.get_token(SCOPE).await.unwrap().token, "tok");
        }
        let requests = server.recorded();
        assert_eq!(requests.len(), configured.len());
        for req in &requests {
            assert_eq!(req.path, "/tenant1/oauth2/v2.0/token");
            let f = form(&req.body);
            assert_eq!(f["client_id"], "app");
            assert_eq!(f["scope"], SCOPE);
            assert!(!req.body.contains("stray"), "{}", req.body);
        }
        assert_eq!(form(&requests[0].body)["client_secret"], "our-secret");
        assert_eq!(form(&requests[2].body)["client_assertion"], "our-jwt");
        assert_eq!(
            form(&requests[3].body)["client_assertion"],
            "our-static-jwt"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The SDK's retry policy is off: an Entra ID rejection is asked once, a server error a
    /// bounded number of times.
    #[tokio::test]
    async fn token_requests_are_retried_only_by_us_and_boundedly() {
        let server = TestServer::start(|req| {
            if form(&req.body)["client_secret"] == "busy" {
                Response::json(503, "<html>busy</html>")
            } else {
                Response::json(
                    400,
                    r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1","error_codes":[7000215]}"#,
                )
            }
        })
        .await;
        let cred = |secret: &str| ClientSecretCredential {
            authority: authority(&server),
            client_id: "app".into(),
            secret: secret.into(),
        };
        let rejected = cred("wrong")
            .get_token(SCOPE)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(server.recorded().len(), 1);
        assert!(
            rejected.starts_with("client secret: token request rejected (invalid_client): AADSTS7000215: Invalid client secret provided."),
            "{rejected}"
        );
        assert!(
            !rejected.contains("Trace ID") && !rejected.contains("wrong"),
            "{rejected}"
        );

        let busy = cred("busy").get_token(SCOPE).await.unwrap_err().to_string();
        assert_eq!(server.recorded().len(), 1 + TOKEN_ATTEMPTS as usize);
        assert!(
            busy.contains("HTTP 503 (not an Entra ID error response)"),
            "{busy}"
        );
        assert!(!busy.contains("<html>"), "{busy}");
    }

    /// A plain-http loopback authority (accepted by the endpoint checks) still works although
    /// azure_identity itself accepts only https authority hosts.
    #[tokio::test]
    async fn plain_http_loopback_authority_is_used_as_configured() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("scope=") {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"expires_in":3600,"access_token":"plain-tok"}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let cred = ClientSecretCredential {
            authority: Authority {
                http: reqwest::Client::new(),
                host: format!("http://127.0.0.1:{port}/"),
                tenant: "tenant1".into(),
            },
            client_id: "app".into(),
            secret: "s".into(),
        };
        assert_eq!(cred.get_token(SCOPE).await.unwrap().token, "plain-tok");
        let request = served.await.unwrap();
        assert!(
            request.starts_with("POST /tenant1/oauth2/v2.0/token HTTP/1.1"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_failing_assertion_source_keeps_its_own_error() {
        struct Broken;
        impl AssertionSource for Broken {
            fn assertion<'a>(
                &'a self,
                _: &'a str,
            ) -> Pin<Box<dyn Future<Output = Result<String, AuthError>> + Send + 'a>> {
                Box::pin(async {
                    Err(AuthError::Config {
                        flow: OIDC_FLOW,
                        message: "reading the OIDC token file /nope: not found".into(),
                    })
                })
            }
        }
        let server = TestServer::answering(Response::json(200, "{}")).await;
        let source: Arc<dyn AssertionSource> = Arc::new(Broken);
        let e = assertion_token(OIDC_FLOW, &authority(&server), "app", &source, SCOPE)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "oidc: reading the OIDC token file /nope: not found"
        );
        assert!(server.recorded().is_empty());
    }
}
