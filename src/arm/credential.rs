//! Token credentials for Entra ID: client secret, client certificate, OIDC / workload identity,
//! managed identity and Azure CLI, plus the azurerm-ordered chain and a per-process token cache.
//!
//! No secret, assertion or token ever enters an error message or a log line.

use super::error::AuthError;
use super::settings::ArmSettings;
use base64::Engine;
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A bearer token and when it expires.
#[derive(Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_on: SystemTime,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// Boxed future returned by [`TokenCredential::get_token`] (keeps the trait object-safe).
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AccessToken, AuthError>> + Send + 'a>>;

/// Something that can obtain an access token for an OAuth2 scope (`<audience>/.default`).
pub trait TokenCredential: Send + Sync {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a>;
}

/// A fixed bearer token (test harnesses, tokens minted elsewhere).
pub struct StaticTokenCredential {
    token: AccessToken,
}

impl StaticTokenCredential {
    /// The token is treated as valid for `lifetime` from now.
    pub fn new(token: impl Into<String>, lifetime: Duration) -> Self {
        StaticTokenCredential {
            token: AccessToken {
                token: token.into(),
                expires_on: SystemTime::now() + lifetime,
            },
        }
    }
}

impl TokenCredential for StaticTokenCredential {
    fn get_token<'a>(&'a self, _scope: &'a str) -> TokenFuture<'a> {
        let t = self.token.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// Where the credentials talk to Entra ID.
#[derive(Clone)]
struct Authority {
    http: reqwest::Client,
    /// With trailing slash.
    host: String,
    tenant: String,
}

impl Authority {
    fn token_url(&self) -> String {
        format!("{}{}/oauth2/v2.0/token", self.host, self.tenant)
    }
}

#[derive(Deserialize)]
struct AadTokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<NumOrString>,
    #[serde(default)]
    expires_on: Option<NumOrString>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    Num(u64),
    Str(String),
}

impl NumOrString {
    fn as_u64(&self) -> Option<u64> {
        match self {
            NumOrString::Num(n) => Some(*n),
            NumOrString::Str(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct AadError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

fn expiry(expires_in: Option<&NumOrString>, expires_on: Option<&NumOrString>) -> SystemTime {
    if let Some(on) = expires_on.and_then(NumOrString::as_u64) {
        return UNIX_EPOCH + Duration::from_secs(on);
    }
    // Without a lifetime assume a short one so the cache refreshes soon.
    let secs = expires_in.and_then(NumOrString::as_u64).unwrap_or(600);
    SystemTime::now() + Duration::from_secs(secs)
}

/// Attempts at the token endpoint; Entra ID has transient 429/5xx like any service.
const TOKEN_ATTEMPTS: u32 = 3;

/// POSTs an OAuth2 form to the v2 token endpoint and parses token or AAD error, retrying
/// transient failures (connect errors, 429, 5xx) a couple of times.
async fn request_token(
    flow: &'static str,
    authority: &Authority,
    form: &[(&str, &str)],
) -> Result<AccessToken, AuthError> {
    let mut attempt = 0;
    loop {
        match request_token_once(flow, authority, form).await {
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
async fn request_token_once(
    flow: &'static str,
    authority: &Authority,
    form: &[(&str, &str)],
) -> Result<AccessToken, (AuthError, bool)> {
    let url = authority.token_url();
    let started = std::time::Instant::now();
    let resp = match authority.http.post(&url).form(form).send().await {
        Ok(r) => r,
        Err(e) => {
            let tls = super::error::TlsHint::of(&e);
            let transient = tls.is_none() && (e.is_connect() || e.is_timeout());
            let err = AuthError::Transport {
                flow,
                message: format!(
                    "POST {url}: {}{}",
                    super::client::describe_reqwest_error(&e),
                    tls.map(|h| format!(" ({})", h.advice()))
                        .unwrap_or_default()
                ),
            };
            return Err((err, transient));
        }
    };
    let status = resp.status().as_u16();
    let transient = status == 429 || status >= 500;
    let body = resp.bytes().await.map_err(|e| {
        (
            AuthError::Transport {
                flow,
                message: format!("POST {url}: reading response: {e}"),
            },
            true,
        )
    })?;
    log::debug!(
        "POST {url} -> {status} ({flow}) in {}ms",
        started.elapsed().as_millis()
    );
    if (200..300).contains(&status) {
        let t: AadTokenResponse = serde_json::from_slice(&body).map_err(|e| {
            (
                AuthError::Transport {
                    flow,
                    message: format!("POST {url}: HTTP {status} without a token response: {e}"),
                },
                false,
            )
        })?;
        return Ok(AccessToken {
            expires_on: expiry(t.expires_in.as_ref(), t.expires_on.as_ref()),
            token: t.access_token,
        });
    }
    let err = match serde_json::from_slice::<AadError>(&body) {
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
        // A non-AAD body is not echoed: it could reflect form fields back.
        _ => AuthError::Transport {
            flow,
            message: format!("POST {url}: HTTP {status} (not an Entra ID error response)"),
        },
    };
    Err((err, transient))
}

fn boxed<'a>(
    f: impl Future<Output = Result<AccessToken, AuthError>> + Send + 'a,
) -> TokenFuture<'a> {
    Box::pin(f)
}

/// Service principal with a client secret.
pub struct ClientSecretCredential {
    authority: Authority,
    client_id: String,
    secret: String,
}

impl TokenCredential for ClientSecretCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            request_token(
                "client secret",
                &self.authority,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.client_id),
                    ("client_secret", &self.secret),
                    ("scope", scope),
                ],
            )
            .await
        })
    }
}

/// Service principal with a certificate: signs an RS256 JWT client assertion.
pub struct ClientCertificateCredential {
    authority: Authority,
    client_id: String,
    key: ring::signature::RsaKeyPair,
    /// base64url(SHA-1(certificate DER)).
    x5t: String,
}

const CERT_FLOW: &str = "client certificate";

impl ClientCertificateCredential {
    /// Parses a PEM bundle holding the certificate and its RSA private key.
    fn from_pem(authority: Authority, client_id: String, pem: &[u8]) -> Result<Self, AuthError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let cfg = |m: String| AuthError::Config {
            flow: CERT_FLOW,
            message: m,
        };
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or_else(|| cfg("no CERTIFICATE block in the client certificate PEM".into()))?
            .map_err(|e| cfg(format!("bad CERTIFICATE block: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
            cfg(format!(
                "no usable private key in the client certificate PEM: {e}"
            ))
        })?;
        let key = match key {
            PrivateKeyDer::Pkcs8(k) => {
                ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
            }
            PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(cfg("the private key must be RSA (PKCS#8 or PKCS#1)".into())),
        }
        .map_err(|e| cfg(format!("unusable RSA private key: {e}")))?;
        Ok(Self::from_parts(authority, client_id, cert.as_ref(), key))
    }

    /// Parses a PKCS#12 (PFX) archive: the first key with its leaf certificate.
    fn from_pfx(
        authority: Authority,
        client_id: String,
        der: &[u8],
        password: &str,
    ) -> Result<Self, AuthError> {
        let cfg = |m: String| AuthError::Config {
            flow: CERT_FLOW,
            message: m,
        };
        let store = p12_keystore::KeyStore::from_pkcs12(
            der,
            password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| {
            cfg(format!(
                "cannot open the PFX client certificate ({e}); check client_certificate_password \
                     (ARM_CLIENT_CERTIFICATE_PASSWORD)"
            ))
        })?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or_else(|| cfg("the PFX holds no private key".into()))?;
        let cert = chain
            .certs()
            .first()
            .ok_or_else(|| cfg("the PFX holds no certificate for its private key".into()))?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(chain.key().as_der())
            .map_err(|e| cfg(format!("the PFX private key is not a usable RSA key: {e}")))?;
        Ok(Self::from_parts(authority, client_id, cert.as_der(), key))
    }

    fn from_parts(
        authority: Authority,
        client_id: String,
        cert_der: &[u8],
        key: ring::signature::RsaKeyPair,
    ) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der);
        ClientCertificateCredential {
            authority,
            client_id,
            key,
            x5t: b64url(digest.as_ref()),
        }
    }

    /// Accepts a PEM bundle (certificate + RSA key) or a PFX archive.
    fn from_bytes(
        authority: Authority,
        client_id: String,
        bytes: &[u8],
        password: Option<&str>,
    ) -> Result<Self, AuthError> {
        if bytes.windows(10).any(|w| w == b"-----BEGIN") {
            return Self::from_pem(authority, client_id, bytes);
        }
        Self::from_pfx(authority, client_id, bytes, password.unwrap_or(""))
    }

    fn assertion(&self) -> Result<String, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t});
        let claims = serde_json::json!({
            "aud": self.authority.token_url(),
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| AuthError::Config {
                flow: CERT_FLOW,
                message: "signing the client assertion failed".into(),
            })?;
        Ok(format!("{signing_input}.{}", b64url(&sig)))
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl TokenCredential for ClientCertificateCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            let assertion = self.assertion()?;
            request_token(
                CERT_FLOW,
                &self.authority,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.client_id),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion),
                    ("scope", scope),
                ],
            )
            .await
        })
    }
}

/// Where an OIDC (federated) token comes from.
pub enum OidcSource {
    Static(String),
    /// Re-read on every exchange: AKS rotates the projected token file.
    File(String),
    /// GitHub Actions / Azure DevOps style: GET `url&audience=...` with a bearer token.
    Request {
        url: String,
        token: String,
    },
}

/// Workload identity federation: exchanges an external OIDC token for an ARM token.
pub struct OidcCredential {
    authority: Authority,
    client_id: String,
    source: OidcSource,
}

const OIDC_FLOW: &str = "oidc";

impl OidcCredential {
    async fn external_token(&self) -> Result<String, AuthError> {
        match &self.source {
            OidcSource::Static(t) => Ok(t.trim().to_string()),
            OidcSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|s| s.trim().to_string())
                .map_err(|e| AuthError::Config {
                    flow: OIDC_FLOW,
                    message: format!("reading the OIDC token file {path}: {e}"),
                }),
            OidcSource::Request { url, token } => {
                let mut u = url::Url::parse(url).map_err(|e| AuthError::Config {
                    flow: OIDC_FLOW,
                    message: format!("oidc_request_url is not a URL: {e}"),
                })?;
                u.query_pairs_mut()
                    .append_pair("audience", "api://AzureADTokenExchange");
                let shown = super::error::Redacted(u.as_str()).to_string();
                let resp = self
                    .authority
                    .http
                    .get(u)
                    .bearer_auth(token)
                    .header("Accept", "application/json")
                    .send()
                    .await
                    .map_err(|e| AuthError::Transport {
                        flow: OIDC_FLOW,
                        message: format!(
                            "GET {shown}: {}",
                            super::client::describe_reqwest_error(&e)
                        ),
                    })?;
                let status = resp.status().as_u16();
                #[derive(Deserialize)]
                struct IdToken {
                    value: String,
                }
                let body = resp.bytes().await.map_err(|e| AuthError::Transport {
                    flow: OIDC_FLOW,
                    message: format!("GET {shown}: {e}"),
                })?;
                if status != 200 {
                    return Err(AuthError::Transport {
                        flow: OIDC_FLOW,
                        message: format!("GET {shown}: HTTP {status} requesting the OIDC token (check oidc_request_token and the workflow's id-token permission)"),
                    });
                }
                serde_json::from_slice::<IdToken>(&body)
                    .map(|t| t.value)
                    .map_err(|_| AuthError::Transport {
                        flow: OIDC_FLOW,
                        message: format!("GET {shown}: response has no \"value\" token"),
                    })
            }
        }
    }
}

impl TokenCredential for OidcCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            let assertion = self.external_token().await?;
            request_token(
                OIDC_FLOW,
                &self.authority,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.client_id),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion),
                    ("scope", scope),
                ],
            )
            .await
        })
    }
}

/// Managed identity via IMDS, a custom `msi_endpoint`, or App Service's IDENTITY_ENDPOINT.
pub struct ManagedIdentityCredential {
    http: reqwest::Client,
    endpoint: String,
    /// `X-IDENTITY-HEADER` value for App Service style endpoints.
    identity_header: Option<String>,
    client_id: Option<String>,
}

const MSI_FLOW: &str = "managed identity";
const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

impl TokenCredential for ManagedIdentityCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            let resource = scope.trim_end_matches(".default");
            let mut u = url::Url::parse(&self.endpoint).map_err(|e| AuthError::Config {
                flow: MSI_FLOW,
                message: format!("msi_endpoint {:?} is not a URL: {e}", self.endpoint),
            })?;
            let api = if self.identity_header.is_some() {
                "2019-08-01"
            } else {
                "2018-02-01"
            };
            u.query_pairs_mut()
                .append_pair("api-version", api)
                .append_pair("resource", resource);
            if let Some(id) = &self.client_id {
                u.query_pairs_mut().append_pair("client_id", id);
            }
            let mut req = self.http.get(u.clone()).timeout(Duration::from_secs(30));
            req = match &self.identity_header {
                Some(h) => req.header("X-IDENTITY-HEADER", h),
                None => req.header("Metadata", "true"),
            };
            let shown = format!("{}{}", u.origin().ascii_serialization(), u.path());
            let resp = req.send().await.map_err(|e| AuthError::Transport {
                flow: MSI_FLOW,
                message: format!(
                    "GET {shown}: {} (is this running on Azure with a managed identity?)",
                    super::client::describe_reqwest_error(&e)
                ),
            })?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| AuthError::Transport {
                flow: MSI_FLOW,
                message: format!("GET {shown}: {e}"),
            })?;
            if status != 200 {
                let detail = serde_json::from_slice::<AadError>(&body)
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.error,
                            e.error_description.lines().next().unwrap_or("")
                        )
                    })
                    .unwrap_or_default();
                return Err(AuthError::Transport {
                    flow: MSI_FLOW,
                    message: format!("GET {shown}: HTTP {status} {detail}"),
                });
            }
            let t: AadTokenResponse =
                serde_json::from_slice(&body).map_err(|e| AuthError::Transport {
                    flow: MSI_FLOW,
                    message: format!("GET {shown}: unexpected response: {e}"),
                })?;
            Ok(AccessToken {
                expires_on: expiry(t.expires_in.as_ref(), t.expires_on.as_ref()),
                token: t.access_token,
            })
        })
    }
}

/// Runs `az account get-access-token`.
pub struct AzureCliCredential {
    program: String,
    tenant: Option<String>,
}

const CLI_FLOW: &str = "azure cli";

impl AzureCliCredential {
    pub fn new(tenant: Option<String>) -> Self {
        AzureCliCredential {
            program: "az".into(),
            tenant,
        }
    }

    /// Uses another executable instead of `az` (tests).
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.program = program.into();
        self
    }
}

impl TokenCredential for AzureCliCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            let resource = scope.trim_end_matches(".default");
            let mut cmd = tokio::process::Command::new(&self.program);
            cmd.args([
                "account",
                "get-access-token",
                "--resource",
                resource,
                "-o",
                "json",
            ]);
            if let Some(t) = &self.tenant {
                cmd.args(["--tenant", t]);
            }
            cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
            let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
                .await
                .map_err(|_| AuthError::Transport {
                    flow: CLI_FLOW,
                    message: "az account get-access-token did not finish within 60s".into(),
                })?
                .map_err(|e| AuthError::Config {
                    flow: CLI_FLOW,
                    message: format!(
                        "could not run {:?}: {e} (install the Azure CLI or disable use_cli)",
                        self.program
                    ),
                })?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let first = stderr
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("no output");
                return Err(AuthError::Rejected {
                    flow: CLI_FLOW,
                    code: "az_failed".into(),
                    description: format!("{first} (run `az login`)"),
                });
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct CliToken {
                access_token: String,
                #[serde(default)]
                expires_on: Option<String>,
                #[serde(default, rename = "expires_on")]
                expires_on_epoch: Option<NumOrString>,
            }
            let t: CliToken =
                serde_json::from_slice(&out.stdout).map_err(|e| AuthError::Transport {
                    flow: CLI_FLOW,
                    message: format!("unexpected output from az: {e}"),
                })?;
            let expires_on = match t.expires_on_epoch.as_ref().and_then(NumOrString::as_u64) {
                Some(s) => UNIX_EPOCH + Duration::from_secs(s),
                // Old CLIs give only a local-time string; assume a short life to refresh early.
                None => {
                    let _ = t.expires_on;
                    SystemTime::now() + Duration::from_secs(6 * 60)
                }
            };
            Ok(AccessToken {
                token: t.access_token,
                expires_on,
            })
        })
    }
}

/// Tries credentials in order, remembering the first that worked.
pub struct ChainedCredential {
    sources: Vec<(String, Arc<dyn TokenCredential>, bool)>,
    winner: AtomicUsize,
}

const NO_WINNER: usize = usize::MAX;

impl ChainedCredential {
    /// `explicit` marks credentials the user configured with material (secret, certificate,
    /// OIDC token): when one fails the chain stops instead of silently acting as another
    /// identity (for example the CLI's logged-in user), like azurerm which uses the first
    /// configured method exclusively.
    pub fn new(sources: Vec<(String, Arc<dyn TokenCredential>, bool)>) -> Self {
        ChainedCredential {
            sources,
            winner: AtomicUsize::new(NO_WINNER),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.sources.iter().map(|(n, _, _)| n.as_str()).collect()
    }
}

impl TokenCredential for ChainedCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            let w = self.winner.load(Ordering::Relaxed);
            if let Some((_, cred, _)) = self.sources.get(w) {
                return cred.get_token(scope).await;
            }
            let mut attempts = Vec::new();
            for (i, (name, cred, explicit)) in self.sources.iter().enumerate() {
                match cred.get_token(scope).await {
                    Ok(t) => {
                        log::debug!("authenticated with {name}");
                        self.winner.store(i, Ordering::Relaxed);
                        return Ok(t);
                    }
                    Err(e) => {
                        log::debug!("credential {name} failed: {e}");
                        attempts.push((name.clone(), e.to_string()));
                        if *explicit {
                            if self.sources.len() == 1 {
                                return Err(e);
                            }
                            break;
                        }
                    }
                }
            }
            Err(AuthError::NoCredential(attempts))
        })
    }
}

fn read_trimmed(flow: &'static str, what: &str, path: &str) -> Result<String, AuthError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| AuthError::Config {
            flow,
            message: format!("reading {what} {path}: {e}"),
        })
}

/// Builds the azurerm-ordered chain (certificate → secret → OIDC → MSI → CLI) from settings,
/// including only the methods that are configured or enabled. Configuration mistakes of a
/// configured method (unreadable file, bad PEM) fail here, before any request.
pub fn credential_from_settings(
    settings: &ArmSettings,
    http: &reqwest::Client,
    authority_host: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ChainedCredential, AuthError> {
    let client_id = match (&settings.client_id, &settings.client_id_file_path) {
        (Some(id), _) => Some(id.trim().to_string()),
        (None, Some(p)) => Some(read_trimmed("settings", "client_id_file_path", p)?),
        (None, None) => None,
    };
    let tenant = settings.tenant_id.clone();
    let authority = |flow: &'static str| -> Result<Authority, AuthError> {
        Ok(Authority {
            http: http.clone(),
            host: authority_host.to_string(),
            tenant: tenant.clone().ok_or_else(|| AuthError::Config {
                flow,
                message: "tenant_id is required (set tenant_id or ARM_TENANT_ID)".into(),
            })?,
        })
    };
    let need_client = |flow: &'static str| -> Result<String, AuthError> {
        client_id.clone().ok_or_else(|| AuthError::Config {
            flow,
            message: "client_id is required (set client_id or ARM_CLIENT_ID)".into(),
        })
    };
    let mut sources: Vec<(String, Arc<dyn TokenCredential>, bool)> = Vec::new();

    // Where the certificate came from, so its errors can name it.
    let cert = match (
        &settings.client_certificate,
        &settings.client_certificate_path,
    ) {
        (Some(b64), _) => Some((
            "client_certificate (ARM_CLIENT_CERTIFICATE)".to_string(),
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| AuthError::Config {
                    flow: CERT_FLOW,
                    message: format!("client_certificate is not valid base64: {e}"),
                })?,
        )),
        (None, Some(p)) => Some((
            format!("client_certificate_path {p}"),
            std::fs::read(p).map_err(|e| AuthError::Config {
                flow: CERT_FLOW,
                message: format!("reading client_certificate_path {p}: {e}"),
            })?,
        )),
        _ => None,
    };
    if let Some((origin, bytes)) = cert {
        let cred = ClientCertificateCredential::from_bytes(
            authority(CERT_FLOW)?,
            need_client(CERT_FLOW)?,
            &bytes,
            settings.client_certificate_password.as_deref(),
        )
        .map_err(|e| match e {
            AuthError::Config { flow, message } => AuthError::Config {
                flow,
                message: format!("{origin}: {message}"),
            },
            other => other,
        })?;
        sources.push((CERT_FLOW.into(), Arc::new(cred), true));
    }

    let secret = match (&settings.client_secret, &settings.client_secret_file_path) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(p)) => Some(read_trimmed("client secret", "client_secret_file_path", p)?),
        _ => None,
    };
    if let Some(secret) = secret {
        sources.push((
            "client secret".into(),
            Arc::new(ClientSecretCredential {
                authority: authority("client secret")?,
                client_id: need_client("client secret")?,
                secret,
            }),
            true,
        ));
    }

    if settings.oidc_enabled() {
        let source = if let Some(t) = &settings.oidc_token {
            OidcSource::Static(t.clone())
        } else if let Some(p) = &settings.oidc_token_file_path {
            OidcSource::File(p.clone())
        } else if let (Some(url), Some(token)) =
            (&settings.oidc_request_url, &settings.oidc_request_token)
        {
            OidcSource::Request {
                url: url.clone(),
                token: token.clone(),
            }
        } else {
            return Err(AuthError::Config {
                flow: OIDC_FLOW,
                message: "use_oidc is set but no token source: set oidc_token, oidc_token_file_path \
                          (ARM_OIDC_TOKEN_FILE_PATH / AZURE_FEDERATED_TOKEN_FILE) or oidc_request_url + \
                          oidc_request_token (ACTIONS_ID_TOKEN_REQUEST_URL / ACTIONS_ID_TOKEN_REQUEST_TOKEN)"
                    .into(),
            });
        };
        sources.push((
            OIDC_FLOW.into(),
            Arc::new(OidcCredential {
                authority: authority(OIDC_FLOW)?,
                client_id: need_client(OIDC_FLOW)?,
                source,
            }),
            true,
        ));
    }

    if settings.use_msi.unwrap_or(false) {
        let (endpoint, identity_header) = match (
            &settings.msi_endpoint,
            env("IDENTITY_ENDPOINT"),
            env("IDENTITY_HEADER"),
        ) {
            (Some(e), _, _) => (e.clone(), None),
            (None, Some(e), Some(h)) => {
                // The identity header is a secret; it goes only where msi_endpoint could.
                super::endpoint::check_url(&e, super::endpoint::PlainHttp::LoopbackOrLinkLocal)
                    .map_err(|problem| AuthError::Config {
                        flow: MSI_FLOW,
                        message: format!("IDENTITY_ENDPOINT {problem}"),
                    })?;
                (e, Some(h))
            }
            _ => (IMDS.to_string(), None),
        };
        sources.push((
            MSI_FLOW.into(),
            Arc::new(ManagedIdentityCredential {
                http: http.clone(),
                endpoint,
                identity_header,
                client_id: client_id.clone(),
            }),
            false,
        ));
    }

    if settings.cli_enabled() {
        sources.push((
            CLI_FLOW.into(),
            Arc::new(AzureCliCredential::new(tenant.clone())),
            false,
        ));
    }
    Ok(ChainedCredential::new(sources))
}

/// Per-client token cache: refreshes 5 minutes before expiry (half-way through the lifetime of
/// tokens shorter than 10 minutes); concurrent callers wait for one refresh instead of each
/// asking Entra ID.
pub struct TokenCache {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    current: tokio::sync::Mutex<Option<CachedToken>>,
}

struct CachedToken {
    token: AccessToken,
    refresh_at: SystemTime,
}

impl CachedToken {
    fn new(token: AccessToken, now: SystemTime) -> Self {
        // A fixed 5-minute margin would make a short-lived token (workload identity
        // exchanges, test endpoints) count as expired on arrival, so every request would
        // fetch a new one.
        let lifetime = token.expires_on.duration_since(now).unwrap_or_default();
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let refresh_at = token.expires_on - margin;
        CachedToken { token, refresh_at }
    }
}

const REFRESH_MARGIN: Duration = Duration::from_secs(300);

impl TokenCache {
    pub fn new(credential: Arc<dyn TokenCredential>, scope: String) -> Self {
        TokenCache {
            credential,
            scope,
            current: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let mut guard = self.current.lock().await;
        if let Some(cached) = guard.as_ref() {
            if SystemTime::now() < cached.refresh_at {
                return Ok(cached.token.clone());
            }
        }
        let fresh = self.credential.get_token(&self.scope).await?;
        *guard = Some(CachedToken::new(fresh.clone(), SystemTime::now()));
        Ok(fresh)
    }

    /// Drops the cached token (after a 401 with it).
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::testutil::{Response, TestServer};
    use std::sync::atomic::AtomicU32;

    fn authority(server: &TestServer) -> Authority {
        Authority {
            http: server.http_client(),
            host: server.url(),
            tenant: "tenant1".into(),
        }
    }

    fn form(body: &str) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect()
    }

    #[tokio::test]
    async fn client_secret_success_and_rejection_never_leaks_secret() {
        let server = TestServer::start(|req| {
            assert_eq!(req.path, "/tenant1/oauth2/v2.0/token");
            let f = form(&req.body);
            assert_eq!(f["grant_type"], "client_credentials");
            assert_eq!(f["scope"], "https://management.core.windows.net/.default");
            if f["client_secret"] == "right-secret" {
                Response::json(200, r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok-1"}"#)
            } else {
                Response::json(401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}"#)
            }
        })
        .await;
        let ok = ClientSecretCredential {
            authority: authority(&server),
            client_id: "app".into(),
            secret: "right-secret".into(),
        };
        let t = ok
            .get_token("https://management.core.windows.net/.default")
            .await
            .unwrap();
        assert_eq!(t.token, "tok-1");
        assert!(t.expires_on > SystemTime::now() + Duration::from_secs(3000));
        assert!(!format!("{t:?}").contains("tok-1"));

        let bad = ClientSecretCredential {
            authority: authority(&server),
            client_id: "app".into(),
            secret: "wrong-secret-value".into(),
        };
        let e = bad
            .get_token("https://management.core.windows.net/.default")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("invalid_client") && text.contains("AADSTS7000215"),
            "{text}"
        );
        assert!(!text.contains("Trace ID"), "{text}");
        assert!(!text.contains("wrong-secret-value"));
    }

    #[tokio::test]
    async fn token_endpoint_5xx_is_retried() {
        let n = Arc::new(AtomicU32::new(0));
        let n2 = n.clone();
        let server = TestServer::start(move |_| {
            if n2.fetch_add(1, Ordering::SeqCst) == 0 {
                Response::json(503, "busy")
            } else {
                Response::json(200, r#"{"expires_in":3600,"access_token":"tok"}"#)
            }
        })
        .await;
        let cred = ClientSecretCredential {
            authority: authority(&server),
            client_id: "app".into(),
            secret: "s".into(),
        };
        assert_eq!(cred.get_token("s/.default").await.unwrap().token, "tok");
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn untrusted_ca_gives_hint() {
        let server = TestServer::start(|_| Response::json(200, "{}")).await;
        let a = Authority {
            http: reqwest::Client::builder().use_rustls_tls().build().unwrap(),
            host: server.url(),
            tenant: "t".into(),
        };
        let cred = ClientSecretCredential {
            authority: a,
            client_id: "app".into(),
            secret: "s3cr3t-value".into(),
        };
        let text = cred.get_token("x/.default").await.unwrap_err().to_string();
        assert!(text.contains("ca_certificate_file"), "{text}");
        assert!(!text.contains("s3cr3t-value"));
    }

    #[tokio::test]
    async fn host_name_mismatch_gets_its_own_hint() {
        let server = TestServer::start(|_| Response::json(200, "{}")).await;
        let cred = ClientSecretCredential {
            authority: Authority {
                // The CA is trusted; the name is not one the certificate lists.
                http: server.http_client_resolving("login.other.test"),
                host: format!("https://login.other.test:{}/", server.port()),
                tenant: "t".into(),
            },
            client_id: "app".into(),
            secret: "s3cr3t-value".into(),
        };
        let text = cred.get_token("x/.default").await.unwrap_err().to_string();
        assert!(text.contains("issued for other host names"), "{text}");
        assert!(!text.contains("ca_certificate_file"), "{text}");
    }

    #[tokio::test]
    async fn client_certificate_signs_verifiable_assertion() {
        let pem = include_bytes!("testdata/test-client-cert.pem");
        let server = TestServer::start(|req| {
            let f = form(&req.body);
            assert_eq!(f["client_assertion_type"], JWT_BEARER);
            Response::json(200, r#"{"expires_in":3600,"access_token":"cert-tok"}"#)
        })
        .await;
        let cred =
            ClientCertificateCredential::from_bytes(authority(&server), "app".into(), pem, None)
                .unwrap();
        let t = cred.get_token("s/.default").await.unwrap();
        assert_eq!(t.token, "cert-tok");
        let reqs = server.recorded();
        let assertion = form(&reqs[0].body)["client_assertion"].clone();
        let parts: Vec<&str> = assertion.split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        let header: serde_json::Value = serde_json::from_slice(&dec(parts[0])).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["x5t"].as_str().unwrap().len(), 27);
        let claims: serde_json::Value = serde_json::from_slice(&dec(parts[1])).unwrap();
        assert_eq!(claims["iss"], "app");
        assert_eq!(
            claims["aud"],
            format!("{}tenant1/oauth2/v2.0/token", server.url())
        );
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            cred.key.public().as_ref().to_vec(),
        );
        public
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &dec(parts[2]),
            )
            .unwrap();
    }

    #[test]
    fn pfx_archives_load_with_password_and_match_pem() {
        let a = || Authority {
            http: reqwest::Client::new(),
            host: "https://x/".into(),
            tenant: "t".into(),
        };
        let pem = ClientCertificateCredential::from_bytes(
            a(),
            "app".into(),
            include_bytes!("testdata/test-client-cert.pem"),
            None,
        )
        .unwrap();
        for pfx in [
            &include_bytes!("testdata/test-client-cert-aes.pfx")[..],
            &include_bytes!("testdata/test-client-cert-legacy.pfx")[..],
        ] {
            let c =
                ClientCertificateCredential::from_bytes(a(), "app".into(), pfx, Some("pfx-pass"))
                    .unwrap();
            assert_eq!(c.x5t, pem.x5t);
            assert_eq!(c.key.public().as_ref(), pem.key.public().as_ref());
            let e = ClientCertificateCredential::from_bytes(a(), "app".into(), pfx, Some("wrong"))
                .err()
                .unwrap();
            assert!(
                e.to_string().contains("ARM_CLIENT_CERTIFICATE_PASSWORD"),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn oidc_github_request_then_exchange() {
        let server = TestServer::start(|req| {
            if req.path.starts_with("/gh") {
                assert_eq!(req.header("authorization"), Some("Bearer gh-req-token"));
                assert!(
                    req.path
                        .contains("audience=api%3A%2F%2FAzureADTokenExchange"),
                    "{}",
                    req.path
                );
                return Response::json(200, r#"{"value":"github-jwt"}"#);
            }
            let f = form(&req.body);
            assert_eq!(f["client_assertion"], "github-jwt");
            Response::json(200, r#"{"expires_in":"3600","access_token":"oidc-tok"}"#)
        })
        .await;
        let cred = OidcCredential {
            authority: authority(&server),
            client_id: "app".into(),
            source: OidcSource::Request {
                url: format!("{}gh?api=1", server.url()),
                token: "gh-req-token".into(),
            },
        };
        assert_eq!(
            cred.get_token("s/.default").await.unwrap().token,
            "oidc-tok"
        );

        let file = std::env::temp_dir().join(format!("akspolicy-oidc-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, "file-jwt\n").unwrap();
        let server2 = TestServer::start(|req| {
            assert_eq!(form(&req.body)["client_assertion"], "file-jwt");
            Response::json(200, r#"{"expires_in":3600,"access_token":"wi-tok"}"#)
        })
        .await;
        let cred = OidcCredential {
            authority: authority(&server2),
            client_id: "app".into(),
            source: OidcSource::File(file.to_string_lossy().into_owned()),
        };
        assert_eq!(cred.get_token("s/.default").await.unwrap().token, "wi-tok");
        let _ = std::fs::remove_file(file);
    }

    #[tokio::test]
    async fn managed_identity_endpoint() {
        let server = TestServer::start(|req| {
            assert_eq!(req.header("metadata"), Some("true"));
            assert!(
                req.path
                    .contains("resource=https%3A%2F%2Fmanagement.core.windows.net%2F"),
                "{}",
                req.path
            );
            Response::json(
                200,
                r#"{"access_token":"msi-tok","expires_on":"4102444800","token_type":"Bearer"}"#,
            )
        })
        .await;
        let cred = ManagedIdentityCredential {
            http: server.http_client(),
            endpoint: format!("{}metadata/identity/oauth2/token", server.url()),
            identity_header: None,
            client_id: None,
        };
        let t = cred
            .get_token("https://management.core.windows.net/.default")
            .await
            .unwrap();
        assert_eq!(t.token, "msi-tok");
        assert_eq!(t.expires_on, UNIX_EPOCH + Duration::from_secs(4102444800));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn azure_cli_via_fake_program() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("akspolicy-az-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("az-good");
        std::fs::write(&good, "#!/bin/sh\necho '{\"accessToken\":\"cli-tok\",\"expires_on\":4102444800,\"tokenType\":\"Bearer\"}'\n").unwrap();
        let bad = dir.join("az-bad");
        std::fs::write(
            &bad,
            "#!/bin/sh\necho 'ERROR: Please run az login to setup account.' >&2\nexit 1\n",
        )
        .unwrap();
        for p in [&good, &bad] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let t = AzureCliCredential::new(None)
            .with_program(good.to_string_lossy())
            .get_token("https://management.core.windows.net/.default")
            .await
            .unwrap();
        assert_eq!(t.token, "cli-tok");
        let e = AzureCliCredential::new(None)
            .with_program(bad.to_string_lossy())
            .get_token("x/.default")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("az login"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    struct Counting(AtomicU32, u64);
    impl TokenCredential for Counting {
        fn get_token<'a>(&'a self, _scope: &'a str) -> TokenFuture<'a> {
            boxed(async move {
                let n = self.0.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(AccessToken {
                    token: format!("t{n}"),
                    expires_on: SystemTime::now() + Duration::from_secs(self.1),
                })
            })
        }
    }

    #[tokio::test]
    async fn cache_shares_one_refresh_and_refreshes_near_expiry() {
        let cred = Arc::new(Counting(AtomicU32::new(0), 3600));
        let cache = Arc::new(TokenCache::new(cred.clone(), "s".into()));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.token().await.unwrap().token })
            })
            .collect();
        for h in handles {
            assert_eq!(h.await.unwrap(), "t0");
        }
        assert_eq!(cred.0.load(Ordering::SeqCst), 1);

        // A 2-minute token is used for its first minute, not refreshed on every call.
        let short = Arc::new(Counting(AtomicU32::new(0), 120));
        let cache = TokenCache::new(short.clone(), "s".into());
        cache.token().await.unwrap();
        cache.token().await.unwrap();
        assert_eq!(short.0.load(Ordering::SeqCst), 1);

        // An already expired token is replaced at once.
        let expired = Arc::new(Counting(AtomicU32::new(0), 0));
        let cache = TokenCache::new(expired.clone(), "s".into());
        cache.token().await.unwrap();
        cache.token().await.unwrap();
        assert_eq!(expired.0.load(Ordering::SeqCst), 2);
    }

    struct Failing(&'static str, bool);
    impl TokenCredential for Failing {
        fn get_token<'a>(&'a self, _scope: &'a str) -> TokenFuture<'a> {
            boxed(async move {
                if self.1 {
                    Err(AuthError::Rejected {
                        flow: "x",
                        code: "invalid_client".into(),
                        description: self.0.into(),
                    })
                } else {
                    Err(AuthError::Transport {
                        flow: "x",
                        message: self.0.into(),
                    })
                }
            })
        }
    }

    #[tokio::test]
    async fn chain_lists_failures_and_stops_on_failed_explicit_credential() {
        let chain = ChainedCredential::new(vec![
            (
                "managed identity".into(),
                Arc::new(Failing("no IMDS", false)),
                false,
            ),
            (
                "azure cli".into(),
                Arc::new(Failing("not logged in", false)),
                false,
            ),
        ]);
        let text = chain.get_token("s").await.unwrap_err().to_string();
        assert!(
            text.contains("managed identity: x: no IMDS")
                && text.contains("azure cli: x: not logged in"),
            "{text}"
        );

        let cli = Arc::new(Counting(AtomicU32::new(0), 3600));
        let chain = ChainedCredential::new(vec![
            (
                "client secret".into(),
                Arc::new(Failing("bad secret", true)),
                true,
            ),
            ("azure cli".into(), cli.clone(), false),
        ]);
        assert!(chain.get_token("s").await.is_err());
        assert_eq!(
            cli.0.load(Ordering::SeqCst),
            0,
            "must not fall back to another identity"
        );
    }

    #[test]
    fn settings_build_chain_in_azurerm_order() {
        let http = reqwest::Client::new();
        let s = ArmSettings {
            tenant_id: Some("t".into()),
            client_id: Some("c".into()),
            client_secret: Some("s".into()),
            use_oidc: Some(true),
            oidc_token: Some("jwt".into()),
            use_msi: Some(true),
            ..Default::default()
        };
        let chain = credential_from_settings(&s, &http, "https://login/", &|_| None).unwrap();
        assert_eq!(
            chain.names(),
            vec!["client secret", "oidc", "managed identity", "azure cli"]
        );
        let s = ArmSettings {
            client_secret: Some("s".into()),
            use_cli: Some(false),
            ..Default::default()
        };
        let e = credential_from_settings(&s, &http, "https://login/", &|_| None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("ARM_TENANT_ID"), "{e}");
    }
}
