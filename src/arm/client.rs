//! `ArmClient`: authenticated ARM requests with retry/throttling, paging and LRO handling.

use super::cloud::CloudConfig;
use super::credential::{credential_from_settings, TokenCache, TokenCredential};
use super::error::{body_snippet, ArmError, Redacted, TlsHint};
use super::lro::{self, LroOptions};
use super::pipeline::{Pipeline, Request, Transport};
use super::settings::ArmSettings;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How failed requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`max_retries`, default 3).
    pub max_retries: u32,
    /// First backoff delay; doubles per retry (default 1 s).
    pub base_delay: Duration,
    /// Backoff cap (default 60 s).
    pub max_delay: Duration,
    /// Longest server-requested `Retry-After` honoured (default 5 min).
    pub max_retry_after: Duration,
    /// Optional budget for one call including all retries.
    pub deadline: Option<Duration>,
    /// Retries of a 429 that says when to come back (`Retry-After`), counted apart from
    /// `max_retries`: ARM throttling is expected under a large parallel apply and waiting it
    /// out is the right answer, not failing the resource (default 12).
    pub max_throttled_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            deadline: None,
            max_throttled_retries: 12,
        }
    }
}

impl RetryPolicy {
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_delay);
        // Jitter in [50%, 100%] spreads retries of parallel Terraform operations.
        let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        exp.mul_f64(0.5 + f64::from(r) / 2000.0)
    }
}

/// Shared environment lookup (injectable for tests).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Options for [`ArmClient::with_options`].
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// `None` = `RetryPolicy::default()`; `settings.max_retries`, when set, overrides its
    /// `max_retries` either way.
    pub retry: Option<RetryPolicy>,
    pub lro: LroOptions,
    /// Overrides the credential chain built from the settings.
    pub credential: Option<Arc<dyn TokenCredential>>,
    /// Env lookup for IDENTITY_ENDPOINT etc.; `None` = process environment.
    pub env: Option<EnvLookup>,
    /// The Terraform version, for the User-Agent (Azure support reads it).
    pub terraform_version: Option<String>,
}

/// A raw ARM response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub method: String,
    pub url: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Decodes the body; an empty body decodes as JSON `null`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ArmError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| ArmError::Decode {
            method: self.method.clone(),
            url: Redacted(&self.url).to_string(),
            message: e.to_string(),
            snippet: body_snippet(&self.body),
        })
    }

    /// `Ok(self)` for 2xx, else the parsed ARM error.
    pub fn error_for_status(self) -> Result<RawResponse, ArmError> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(self.into_error())
        }
    }

    fn into_error(self) -> ArmError {
        let rid = self.header("x-ms-request-id").map(str::to_string);
        let cid = self
            .header("x-ms-correlation-request-id")
            .map(str::to_string);
        ArmError::from_response(
            self.status,
            &self.body,
            &self.method,
            &Redacted(&self.url).to_string(),
            rid,
            cid,
        )
    }
}

/// Authenticated client for one cloud and identity. Cheap to clone.
#[derive(Clone)]
pub struct ArmClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("cloud", &self.inner.cloud)
            .field("subscription_id", &self.inner.subscription_id)
            .field("correlation_id", &self.inner.correlation_id)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    cloud: CloudConfig,
    retry: RetryPolicy,
    lro: LroOptions,
    user_agent: String,
    correlation_id: Option<String>,
    subscription_id: Option<String>,
    pipeline: Pipeline,
}

const MAX_PAGES: usize = 1000;

impl ArmClient {
    /// Builds a client from fully resolved settings (call `fill_from_process_env` first).
    pub async fn new(settings: ArmSettings) -> Result<Self, ArmError> {
        Self::with_options(settings, ClientOptions::default()).await
    }

    pub async fn with_options(
        settings: ArmSettings,
        options: ClientOptions,
    ) -> Result<Self, ArmError> {
        let insecure = super::endpoint::insecure_endpoints(&settings);
        if !insecure.is_empty() {
            let lines: Vec<String> = insecure.iter().map(ToString::to_string).collect();
            return Err(ArmError::Config(lines.join("\n")));
        }
        let http = build_http(settings.ca_certificate_file.as_deref())?;
        let cloud = CloudConfig::resolve(&settings, &http).await?;
        let credential: Arc<dyn TokenCredential> = match options.credential {
            Some(c) => c,
            None => {
                let env = options.env.clone();
                let lookup = move |k: &str| match &env {
                    Some(f) => f(k),
                    None => std::env::var(k).ok(),
                };
                Arc::new(credential_from_settings(
                    &settings,
                    &http,
                    &cloud.authority_host,
                    &lookup,
                )?)
            }
        };
        let mut retry = options.retry.unwrap_or_default();
        if let Some(m) = settings.max_retries {
            retry.max_retries = m;
        }
        let mut user_agent = format!("akspolicy/{} terraform-provider", env!("CARGO_PKG_VERSION"));
        if let Some(v) = options
            .terraform_version
            .as_deref()
            .filter(|v| !v.is_empty())
        {
            user_agent.push_str(&format!(" Terraform/{v}"));
        }
        if let Some(p) = settings.partner_id.as_deref().filter(|p| !p.is_empty()) {
            user_agent.push_str(&format!(" pid-{p}"));
        }
        let correlation_id = if settings.disable_correlation_request_id.unwrap_or(false) {
            None
        } else {
            Some(uuid::Uuid::new_v4().to_string())
        };
        let pipeline = Pipeline::arm(
            &retry,
            TokenCache::new(credential, cloud.scope()),
            Transport {
                http: http.clone(),
                user_agent: user_agent.clone(),
                correlation_id: correlation_id.clone(),
            },
        );
        Ok(ArmClient {
            inner: Arc::new(Inner {
                http,
                cloud,
                retry,
                lro: options.lro,
                user_agent,
                correlation_id,
                subscription_id: settings.subscription_id,
                pipeline,
            }),
        })
    }

    pub fn cloud(&self) -> &CloudConfig {
        &self.inner.cloud
    }

    pub fn subscription_id(&self) -> Option<&str> {
        self.inner.subscription_id.as_deref()
    }

    /// Correlation id sent with every request (for support cases).
    pub fn correlation_id(&self) -> Option<&str> {
        self.inner.correlation_id.as_deref()
    }

    /// Builds `{endpoint}{path}?api-version=..&query..` with proper encoding.
    pub fn url_for(
        &self,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<String, ArmError> {
        let mut url = url::Url::parse(&self.inner.cloud.resource_manager_endpoint)
            .map_err(|e| ArmError::Config(format!("resource manager endpoint: {e}")))?;
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/{}", path.trim_start_matches('/')));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", api_version);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url.to_string())
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
    ) -> Result<T, ArmError> {
        let url = self.url_for(path, api_version, &[])?;
        self.expect_success(Method::GET, &url, None).await?.json()
    }

    /// GET with extra query parameters (`$expand`, ...), encoded properly.
    pub async fn get_with_query<T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ArmError> {
        let url = self.url_for(path, api_version, query)?;
        self.expect_success(Method::GET, &url, None).await?.json()
    }

    /// GET that maps 404 to `Ok(None)`.
    pub async fn get_optional<T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
    ) -> Result<Option<T>, ArmError> {
        match self.get(path, api_version).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// PUT; when the service starts an LRO (202, `Azure-AsyncOperation`, or a non-terminal
    /// `provisioningState` in the body) it polls to the end and returns a fresh GET of the
    /// resource. Use [`ArmClient::request`] to return immediately instead (e.g. remediations).
    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        body: &B,
    ) -> Result<T, ArmError> {
        self.write(Method::PUT, path, api_version, body).await
    }

    /// PATCH; like [`ArmClient::put`].
    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        body: &B,
    ) -> Result<T, ArmError> {
        self.write(Method::PATCH, path, api_version, body).await
    }

    async fn write<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: &B,
    ) -> Result<T, ArmError> {
        let url = self.url_for(path, api_version, &[])?;
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ArmError::Config(format!("encoding request body: {e}")))?;
        let resp = self
            .expect_success(method.clone(), &url, Some(bytes))
            .await?;
        if lro::is_long_running(&resp) {
            lro::wait(self, &resp, &self.inner.lro).await?;
            // final-state-via original-uri for PUT/PATCH.
            return self.expect_success(Method::GET, &url, None).await?.json();
        }
        resp.json()
    }

    /// PUT guarded by `If-Match: <etag>` (optimistic concurrency); follows an LRO like
    /// [`ArmClient::put`]. A 412 means someone else changed the resource since `etag` was read.
    pub async fn put_if_match<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        body: &B,
        etag: Option<&str>,
    ) -> Result<T, ArmError> {
        let url = self.url_for(path, api_version, &[])?;
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ArmError::Config(format!("encoding request body: {e}")))?;
        let headers: Vec<(&str, String)> = etag
            .map(|e| vec![("If-Match", e.to_string())])
            .unwrap_or_default();
        let resp = self
            .send_with_headers(Method::PUT, &url, Some(bytes), &headers)
            .await?
            .error_for_status()?;
        if lro::is_long_running(&resp) {
            lro::wait(self, &resp, &self.inner.lro).await?;
            return self.expect_success(Method::GET, &url, None).await?.json();
        }
        resp.json()
    }

    /// DELETE; 200/202/204 succeed (202 is polled to completion), 404 means already gone.
    pub async fn delete(&self, path: &str, api_version: &str) -> Result<(), ArmError> {
        let url = self.url_for(path, api_version, &[])?;
        match self.expect_success(Method::DELETE, &url, None).await {
            Ok(resp) => {
                if resp.status == 202 || lro::is_long_running(&resp) {
                    match lro::wait(self, &resp, &self.inner.lro).await {
                        Err(e) if e.is_not_found() => {}
                        other => {
                            other?;
                        }
                    }
                }
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// POST an action. A 202 is polled; the result is the final body (`null` when empty).
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        body: Option<&B>,
    ) -> Result<T, ArmError> {
        let url = self.url_for(path, api_version, &[])?;
        let bytes = match body {
            Some(b) => Some(
                serde_json::to_vec(b)
                    .map_err(|e| ArmError::Config(format!("encoding request body: {e}")))?,
            ),
            None => None,
        };
        let resp = self.expect_success(Method::POST, &url, bytes).await?;
        if resp.status == 202 {
            if let Some(fin) = lro::wait(self, &resp, &self.inner.lro).await? {
                return fin.json();
            }
        }
        resp.json()
    }

    /// GETs a collection and follows `nextLink` / `@odata.nextLink` until absent.
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ArmError> {
        #[derive(Deserialize)]
        struct Page<T> {
            #[serde(default = "Vec::new")]
            value: Vec<T>,
            #[serde(default, rename = "nextLink")]
            next_link: Option<String>,
            #[serde(default, rename = "@odata.nextLink")]
            odata_next_link: Option<String>,
        }
        let mut url = self.url_for(path, api_version, query)?;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: Page<T> = self.expect_success(Method::GET, &url, None).await?.json()?;
            out.extend(page.value);
            match page
                .next_link
                .or(page.odata_next_link)
                .filter(|l| !l.is_empty())
            {
                Some(next) => url = next,
                None => return Ok(out),
            }
        }
        Err(ArmError::Decode {
            method: "GET".into(),
            url: Redacted(&url).to_string(),
            message: format!("more than {MAX_PAGES} pages; the nextLink chain does not end"),
            snippet: String::new(),
        })
    }

    /// GETs a public document (e.g. a Gatekeeper template a `PublicURL` definition names) with
    /// this client's TLS settings but never its credentials: the URL is not ARM's. Bounded in
    /// size; one retry on transport errors and 5xx.
    pub async fn fetch_public_text(&self, url: &str, max_bytes: usize) -> Result<String, ArmError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| ArmError::Config(format!("invalid URL {url:?}: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(ArmError::Config(format!(
                "refusing to fetch {url}: only https URLs are fetched"
            )));
        }
        let transport = |e: reqwest::Error| ArmError::Transport {
            method: "GET".into(),
            url: Redacted(url).to_string(),
            tls: TlsHint::of(&e),
            message: e.to_string(),
        };
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let sent = self
                .inner
                .http
                .get(url)
                .header("User-Agent", &self.inner.user_agent)
                .timeout(Duration::from_secs(60))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_server_error() && attempt < 2 => {}
                Ok(r) => break r,
                Err(e) if attempt >= 2 => return Err(transport(e)),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let status = response.status();
        if let Some(len) = response.content_length() {
            if len as usize > max_bytes {
                return Err(ArmError::Config(format!(
                    "GET {url}: {len} bytes is more than the {max_bytes} allowed"
                )));
            }
        }
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ArmError::Config(format!(
                "GET {url}: HTTP {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )));
        }
        if bytes.len() > max_bytes {
            return Err(ArmError::Config(format!(
                "GET {url}: more than the {max_bytes} bytes allowed"
            )));
        }
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ArmError::Config(format!("GET {url}: the body is not UTF-8 text")))
    }

    /// Sends one request through the pipeline and returns any response (errors included).
    /// For operations that need custom status handling.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<RawResponse, ArmError> {
        let url = self.url_for(path, api_version, query)?;
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.send(method, &url, bytes).await
    }

    pub(crate) async fn expect_success(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ArmError> {
        self.send(method, url, body).await?.error_for_status()
    }

    /// Through the pipeline (see [`super::pipeline`]): deadline, retries, throttling, auth,
    /// pacing, logging.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ArmError> {
        self.send_with_headers(method, url, body, &[]).await
    }

    async fn send_with_headers(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        extra_headers: &[(&str, String)],
    ) -> Result<RawResponse, ArmError> {
        self.check_origin(url)?;
        let mut req = Request::new(method, url, body);
        req.headers = extra_headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self.inner.pipeline.send(&req).await
    }

    /// Bearer tokens go only to the configured Resource Manager origin, even when a
    /// `nextLink` or LRO header points elsewhere.
    fn check_origin(&self, url: &str) -> Result<(), ArmError> {
        let target = url::Url::parse(url).map_err(|e| {
            ArmError::Config(format!("invalid URL {:?}: {e}", Redacted(url).to_string()))
        })?;
        let arm = url::Url::parse(&self.inner.cloud.resource_manager_endpoint)
            .map_err(|e| ArmError::Config(format!("resource manager endpoint: {e}")))?;
        if target.origin() != arm.origin() {
            return Err(ArmError::Config(format!(
                "refusing to send credentials to {} (not the Resource Manager endpoint {})",
                target.origin().ascii_serialization(),
                arm.origin().ascii_serialization()
            )));
        }
        Ok(())
    }
}

/// `retry-after-ms`, `x-ms-retry-after-ms` (milliseconds) or `Retry-After` (seconds).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = get(name).and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    get("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn build_http(ca_file: Option<&str>) -> Result<reqwest::Client, ArmError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(true)
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(300));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            ArmError::Config(format!(
                "ca_certificate_file (ARM_CA_CERTIFICATE_FILE) {path}: {e}"
            ))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            ArmError::Config(format!(
                "ca_certificate_file {path} is not a PEM bundle: {e}"
            ))
        })?;
        if certs.is_empty() {
            return Err(ArmError::Config(format!(
                "ca_certificate_file {path} contains no certificates"
            )));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| ArmError::Config(format!("building the HTTP client: {e}")))
}

/// The error with its whole source chain, since reqwest's top-level text is vague.
pub(crate) fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let mut parts = vec![e.without_url_ref()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if parts.last().map(|p| p != &text).unwrap_or(true) {
            parts.push(text);
        }
        src = s.source();
    }
    parts.join(": ")
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        // reqwest appends the URL (with query) to its message; callers add a redacted one.
        let mut s = self.to_string();
        if let Some(u) = self.url() {
            s = s
                .replace(&format!(" for url ({u})"), "")
                .replace(&format!(" ({u})"), "");
        }
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::arm::credential::{AccessToken, TokenFuture};
    use crate::arm::testutil::{Response, TestServer};
    use std::time::{Instant, SystemTime};

    struct Static;
    impl TokenCredential for Static {
        fn get_token<'a>(&'a self, _: &'a str) -> TokenFuture<'a> {
            Box::pin(async {
                Ok(AccessToken {
                    token: "static-token".into(),
                    expires_on: SystemTime::now() + Duration::from_secs(3600),
                })
            })
        }
    }

    pub(crate) fn fast() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(5),
            deadline: None,
            max_throttled_retries: 12,
        }
    }

    pub(crate) async fn client_for(server: &TestServer, retry: RetryPolicy) -> ArmClient {
        let settings = ArmSettings {
            environment: Some("custom".into()),
            resource_manager_endpoint: Some(server.url()),
            authority_host: Some(server.url()),
            ca_certificate_file: Some(server.write_ca_file()),
            subscription_id: Some("sub1".into()),
            ..Default::default()
        };
        ArmClient::with_options(
            settings,
            ClientOptions {
                retry: Some(retry),
                lro: LroOptions::fast_for_tests(),
                credential: Some(Arc::new(Static)),
                env: None,
                terraform_version: None,
            },
        )
        .await
        .unwrap()
    }

    /// Resources run these futures inside tonic handlers, which need `Send`.
    #[allow(dead_code)]
    fn futures_are_send(c: &ArmClient) {
        fn is_send<T: Send>(_: T) {}
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<ArmClient>();
        is_send(c.get::<serde_json::Value>("/x", "1"));
        is_send(c.get_optional::<serde_json::Value>("/x", "1"));
        is_send(c.put::<_, serde_json::Value>("/x", "1", &serde_json::json!({})));
        is_send(c.patch::<_, serde_json::Value>("/x", "1", &serde_json::json!({})));
        is_send(c.list::<serde_json::Value>("/x", "1", &[]));
        is_send(c.delete("/x", "1"));
        is_send(c.post::<serde_json::Value, serde_json::Value>("/x", "1", None));
        is_send(c.request(Method::GET, "/x", "1", &[], None));
        is_send(ArmClient::new(ArmSettings::default()));
    }

    #[tokio::test]
    async fn get_sends_headers_and_decodes() {
        let server = TestServer::start(|req| {
            assert_eq!(req.header("authorization"), Some("Bearer static-token"));
            assert!(req.header("user-agent").unwrap().starts_with("akspolicy/"));
            assert!(req.header("x-ms-correlation-request-id").is_some());
            assert!(req.header("x-ms-client-request-id").is_some());
            Response::json(200, r#"{"name":"x"}"#).with_header("x-ms-request-id", "r1")
        })
        .await;
        let c = client_for(&server, fast()).await;
        let v: serde_json::Value = c
            .get(
                "/providers/Microsoft.Authorization/policyDefinitions/my def",
                "2025-03-01",
            )
            .await
            .unwrap();
        assert_eq!(v["name"], "x");
        let reqs = server.recorded();
        assert_eq!(
            reqs[0].path,
            "/providers/Microsoft.Authorization/policyDefinitions/my%20def?api-version=2025-03-01"
        );
    }

    #[tokio::test]
    async fn correlation_id_can_be_disabled() {
        let server = TestServer::start(|req| {
            assert!(req.header("x-ms-correlation-request-id").is_none());
            Response::json(200, "{}")
        })
        .await;
        let settings = ArmSettings {
            environment: Some("custom".into()),
            resource_manager_endpoint: Some(server.url()),
            authority_host: Some(server.url()),
            ca_certificate_file: Some(server.write_ca_file()),
            disable_correlation_request_id: Some(true),
            ..Default::default()
        };
        let c = ArmClient::with_options(
            settings,
            ClientOptions {
                credential: Some(Arc::new(Static)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(c.correlation_id().is_none());
        let _: serde_json::Value = c.get("/x", "1").await.unwrap();
        assert_eq!(server.recorded().len(), 1);
    }

    #[tokio::test]
    async fn get_optional_maps_404_to_none() {
        let server =
            TestServer::answering(Response::arm_error(404, "PolicyDefinitionNotFound", "nope"))
                .await;
        let c = client_for(&server, fast()).await;
        let v: Option<serde_json::Value> = c.get_optional("/x", "1").await.unwrap();
        let raw = c
            .request(Method::GET, "/x", "1", &[("$expand", "a b")], None)
            .await
            .unwrap();
        assert_eq!(raw.status, 404);
        assert!(raw.error_for_status().unwrap_err().is_not_found());
        assert!(server.recorded()[1]
            .path
            .ends_with("api-version=1&%24expand=a+b"));
        assert!(v.is_none());
        let e = c.get::<serde_json::Value>("/x", "1").await.unwrap_err();
        assert_eq!(e.code(), Some("PolicyDefinitionNotFound"));
    }

    #[tokio::test]
    async fn retries_429_honouring_retry_after_ms_then_succeeds() {
        let slow_down = Response::arm_error(429, "TooManyRequests", "slow down")
            .with_header("retry-after-ms", "150");
        let server = TestServer::failing_first(2, slow_down, Response::json(200, "{}")).await;
        let c = client_for(&server, fast()).await;
        let t = Instant::now();
        let _: serde_json::Value = c.get("/x", "1").await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(server.recorded().len(), 3);
    }

    #[tokio::test]
    async fn retry_after_seconds_and_throttled_after_exhaustion() {
        let server =
            TestServer::answering(Response::json(429, "{}").with_header("Retry-After", "1")).await;
        let mut p = fast();
        p.max_retries = 1;
        p.max_throttled_retries = 0;
        let c = client_for(&server, p).await;
        let t = Instant::now();
        let e = c.get::<serde_json::Value>("/x", "1").await.unwrap_err();
        assert!(t.elapsed() >= Duration::from_secs(1));
        assert!(matches!(e, ArmError::Throttled { attempts: 2, .. }), "{e}");
        assert_eq!(server.recorded().len(), 2);
    }

    #[tokio::test]
    async fn deadline_stops_long_retry_after() {
        let server =
            TestServer::answering(Response::json(429, "{}").with_header("Retry-After", "4")).await;
        let mut p = fast();
        p.deadline = Some(Duration::from_secs(1));
        let c = client_for(&server, p).await;
        let e = c.get::<serde_json::Value>("/x", "1").await.unwrap_err();
        assert!(matches!(e, ArmError::Timeout(_)), "{e}");
    }

    #[tokio::test]
    async fn retries_5xx_for_get_but_not_post() {
        let server = TestServer::failing_first(
            1,
            Response::json(503, "upstream unavailable"),
            Response::json(200, r#"{"ok":true}"#),
        )
        .await;
        let c = client_for(&server, fast()).await;
        let v: serde_json::Value = c.get("/x", "1").await.unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(server.recorded().len(), 2);

        let always =
            TestServer::answering(Response::arm_error(500, "InternalServerError", "boom")).await;
        let c = client_for(&always, fast()).await;
        let e = c
            .post::<_, serde_json::Value>("/x/action", "1", Some(&serde_json::json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(500));
        assert_eq!(
            always.recorded().len(),
            1,
            "POST must not be retried on 500"
        );
        let e = c.get::<serde_json::Value>("/x", "1").await.unwrap_err();
        assert!(e.to_string().contains("InternalServerError"));
        assert_eq!(always.recorded().len(), 1 + 4);
    }

    #[tokio::test]
    async fn list_follows_next_links_with_encoded_filter() {
        let server = TestServer::start(|req| {
            let base = req.base_url();
            if req.path.contains("page=2") {
                Response::json(
                    200,
                    &format!(r#"{{"value":[{{"n":2}}],"@odata.nextLink":"{base}/list?page=3"}}"#),
                )
            } else if req.path.contains("page=3") {
                Response::json(200, r#"{"value":[{"n":3}],"nextLink":null}"#)
            } else {
                req.assert_path_has("%24filter=policyType+eq+%27BuiltIn%27");
                Response::json(
                    200,
                    &format!(r#"{{"value":[{{"n":1}}],"nextLink":"{base}/list?page=2"}}"#),
                )
            }
        })
        .await;
        let c = client_for(&server, fast()).await;
        let items: Vec<serde_json::Value> = c
            .list("/list", "1", &[("$filter", "policyType eq 'BuiltIn'")])
            .await
            .unwrap();
        assert_eq!(
            items
                .iter()
                .map(|v| v["n"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[tokio::test]
    async fn next_link_to_foreign_host_is_refused() {
        let server = TestServer::answering(Response::json(
            200,
            r#"{"value":[],"nextLink":"https://evil.example/steal"}"#,
        ))
        .await;
        let c = client_for(&server, fast()).await;
        let e = c
            .list::<serde_json::Value>("/list", "1", &[])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("refusing"), "{e}");
    }

    #[tokio::test]
    async fn delete_handles_404_and_204() {
        let server = TestServer::start(|req| {
            if req.path.starts_with("/gone") {
                Response::arm_error(404, "NotFound", "x")
            } else {
                Response::empty(204)
            }
        })
        .await;
        let c = client_for(&server, fast()).await;
        c.delete("/gone", "1").await.unwrap();
        c.delete("/there", "1").await.unwrap();
    }

    #[tokio::test]
    async fn untrusted_server_is_transport_error_with_hint() {
        let server = TestServer::answering(Response::json(200, "{}")).await;
        let settings = ArmSettings {
            environment: Some("custom".into()),
            resource_manager_endpoint: Some(server.url()),
            authority_host: Some(server.url()),
            ..Default::default()
        };
        let c = ArmClient::with_options(
            settings,
            ClientOptions {
                retry: Some(fast()),
                credential: Some(Arc::new(Static)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let e = c.get::<serde_json::Value>("/x", "1").await.unwrap_err();
        assert!(e.to_string().contains("ca_certificate_file"), "{e}");
    }

    #[tokio::test]
    async fn end_to_end_metadata_host_like_azurerm() {
        let server = TestServer::start(|req| {
            let base = format!("https://{}/", req.header("host").unwrap_or(""));
            if req.path.starts_with("/metadata/endpoints") {
                return Response::json(
                    200,
                    &format!(
                        r#"{{"name":"Emu","resourceManager":"{base}","authentication":{{"loginEndpoint":"{base}","audiences":["https://emu.audience/"]}}}}"#
                    ),
                );
            }
            if req.path.ends_with("/oauth2/v2.0/token") {
                let f: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(req.body.as_bytes()).into_owned().collect();
                assert_eq!(f["scope"], "https://emu.audience/.default");
                return Response::json(200, r#"{"expires_in":3600,"access_token":"md-token"}"#);
            }
            assert_eq!(req.header("authorization"), Some("Bearer md-token"));
            Response::json(200, r#"{"ok":1}"#)
        })
        .await;
        let settings = ArmSettings {
            metadata_host: Some(server.host()),
            ca_certificate_file: Some(server.write_ca_file()),
            tenant_id: Some("t".into()),
            client_id: Some("app".into()),
            client_secret: Some("s".into()),
            use_cli: Some(false),
            ..Default::default()
        };
        let c = ArmClient::new(settings).await.unwrap();
        assert_eq!(c.cloud().name, "Emu");
        let v: serde_json::Value = c.get("/subscriptions/s", "2022-12-01").await.unwrap();
        assert_eq!(v["ok"], 1);
    }

    #[tokio::test]
    async fn end_to_end_client_secret_against_custom_endpoints_with_extra_ca() {
        let server = TestServer::start(|req| {
            if req.path.ends_with("/oauth2/v2.0/token") {
                let f: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(req.body.as_bytes()).into_owned().collect();
                if f.get("client_secret").map(String::as_str) == Some("the-secret") {
                    return Response::json(200, r#"{"expires_in":3600,"access_token":"emu-token"}"#);
                }
                return Response::json(401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret."}"#);
            }
            assert_eq!(req.header("authorization"), Some("Bearer emu-token"));
            assert!(req.header("user-agent").unwrap().ends_with("pid-1234"));
            Response::json(200, r#"{"id":"/subscriptions/sub1"}"#)
        })
        .await;
        let settings = |secret: &str| ArmSettings {
            environment: Some("custom".into()),
            resource_manager_endpoint: Some(server.url()),
            authority_host: Some(server.url()),
            ca_certificate_file: Some(server.write_ca_file()),
            tenant_id: Some("tenant1".into()),
            client_id: Some("app".into()),
            client_secret: Some(secret.into()),
            use_cli: Some(false),
            partner_id: Some("1234".into()),
            ..Default::default()
        };
        let c = ArmClient::new(settings("the-secret")).await.unwrap();
        let v: serde_json::Value = c.get("/subscriptions/sub1", "2022-12-01").await.unwrap();
        assert_eq!(v["id"], "/subscriptions/sub1");
        let c = ArmClient::new(settings("wrong-secret-xyz")).await.unwrap();
        let e = c
            .get::<serde_json::Value>("/subscriptions/sub1", "2022-12-01")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ArmError::Auth(_)));
        assert!(text.contains("invalid_client"), "{text}");
        assert!(!text.contains("wrong-secret-xyz"), "{text}");
        assert!(!format!("{e:?}").contains("wrong-secret-xyz"));
    }
}
