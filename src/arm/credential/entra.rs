//! The Entra ID token endpoint: one OAuth2 form POST with transient retries, shared by the
//! client secret, certificate and OIDC credentials.

use super::*;

/// Where the credentials talk to Entra ID.
#[derive(Clone)]
pub(super) struct Authority {
    pub(super) http: reqwest::Client,
    /// With trailing slash.
    pub(super) host: String,
    pub(super) tenant: String,
}

impl Authority {
    pub(super) fn token_url(&self) -> String {
        format!("{}{}/oauth2/v2.0/token", self.host, self.tenant)
    }
}

#[derive(Deserialize)]
pub(super) struct AadTokenResponse {
    pub(super) access_token: String,
    #[serde(default)]
    pub(super) expires_in: Option<NumOrString>,
    #[serde(default)]
    pub(super) expires_on: Option<NumOrString>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum NumOrString {
    Num(u64),
    Str(String),
}

impl NumOrString {
    pub(super) fn as_u64(&self) -> Option<u64> {
        match self {
            NumOrString::Num(n) => Some(*n),
            NumOrString::Str(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct AadError {
    #[serde(default)]
    pub(super) error: String,
    #[serde(default)]
    pub(super) error_description: String,
}

pub(super) fn expiry(
    expires_in: Option<&NumOrString>,
    expires_on: Option<&NumOrString>,
) -> SystemTime {
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
pub(super) async fn request_token(
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
            let tls = crate::arm::error::TlsHint::of(&e);
            let transient = tls.is_none() && (e.is_connect() || e.is_timeout());
            let err = AuthError::Transport {
                flow,
                message: format!(
                    "POST {url}: {}{}",
                    crate::arm::client::describe_reqwest_error(&e),
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

/// `client_assertion_type` of RFC 7523 assertions (certificate and federated).
pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
