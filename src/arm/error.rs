//! Typed errors of the ARM layer: authentication failures, ARM API errors parsed from the
//! `{"error": {...}}` envelope, transport and configuration problems.

use serde::Deserialize;
use std::fmt;

/// Why a token could not be obtained. Messages never contain secrets or tokens.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Entra ID answered with an OAuth error (`error` + first line of `error_description`).
    #[error(
        "{flow}: token request rejected ({code}): {description}{}",
        hint_for_aad(code)
    )]
    Rejected {
        flow: &'static str,
        code: String,
        description: String,
    },
    /// The credential is not configured correctly (missing file, bad certificate, ...).
    #[error("{flow}: {message}")]
    Config { flow: &'static str, message: String },
    /// The token endpoint could not be reached or answered something unusable.
    #[error("{flow}: {message}")]
    Transport { flow: &'static str, message: String },
    /// No configured credential produced a token; one line per attempt.
    #[error("no credential could obtain a token for Azure Resource Manager:\n{}", format_attempts(.0))]
    NoCredential(Vec<(String, String)>),
}

fn format_attempts(attempts: &[(String, String)]) -> String {
    if attempts.is_empty() {
        return "  - no authentication method is configured: set client_secret (ARM_CLIENT_SECRET), \
                client_certificate_path (ARM_CLIENT_CERTIFICATE_PATH), use_oidc (ARM_USE_OIDC), \
                use_msi (ARM_USE_MSI) or use_cli (ARM_USE_CLI)"
            .to_string();
    }
    attempts
        .iter()
        .map(|(name, why)| {
            let first = why.lines().next().unwrap_or("");
            // AuthError texts already start with the flow name.
            if first.starts_with(&format!("{name}: ")) {
                format!("  - {first}")
            } else {
                format!("  - {name}: {first}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn hint_for_aad(code: &str) -> &'static str {
    match code {
        "invalid_client" => {
            " (check client_id/client_secret or the certificate registered on the app)"
        }
        "unauthorized_client" => " (check client_id and that the app exists in tenant_id)",
        "invalid_request" => " (check tenant_id and the authority host)",
        _ => "",
    }
}

/// One entry of an ARM error's `details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub target: Option<String>,
}

/// An ARM error response, parsed from the `{"error": {...}}` envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    /// ARM error code; empty when the body was not an ARM error.
    pub code: String,
    pub message: String,
    pub target: Option<String>,
    pub details: Vec<ErrorDetail>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub method: String,
    /// Without query string.
    pub url: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_api(
            &self.status,
            &self.code,
            &self.message,
            &self.method,
            &self.url,
            &self.request_id,
            &self.details,
        ))
    }
}

/// Errors returned by [`crate::arm::ArmClient`].
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("authentication failed: {0}")]
    Auth(#[from] AuthError),
    /// ARM answered with a non-success status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// Still throttled (429) after every retry.
    #[error("{method} {url}: throttled by Azure Resource Manager (429) after {attempts} attempts; reduce parallelism (terraform -parallelism) or raise max_retries")]
    Throttled {
        method: String,
        url: String,
        attempts: u32,
    },
    /// The request never produced an HTTP response.
    #[error("{method} {url}: {message}{}", if *.untrusted_ca { "\n  hint: the server certificate is not trusted; set ca_certificate_file (ARM_CA_CERTIFICATE_FILE) or SSL_CERT_FILE to a PEM bundle with its CA" } else { "" })]
    Transport {
        method: String,
        url: String,
        message: String,
        untrusted_ca: bool,
    },
    /// The overall deadline (or an LRO's polling budget) ran out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The response body did not have the expected shape.
    #[error(
        "{method} {url}: could not decode the response: {message}; body starts with: {snippet}"
    )]
    Decode {
        method: String,
        url: String,
        message: String,
        snippet: String,
    },
    /// A long-running operation reached `Failed` or `Canceled`.
    #[error("long-running operation ended with status {status}: {code}: {message}")]
    OperationFailed {
        status: String,
        code: String,
        message: String,
    },
    /// Invalid provider configuration (cloud endpoints, CA file, ...).
    #[error("configuration error: {0}")]
    Config(String),
}

#[allow(clippy::too_many_arguments)]
fn format_api(
    status: &u16,
    code: &str,
    message: &str,
    method: &str,
    url: &str,
    request_id: &Option<String>,
    details: &[ErrorDetail],
) -> String {
    let mut s = format!("{method} {url}: HTTP {status}");
    if !code.is_empty() {
        s.push_str(&format!(" {code}"));
    }
    if !message.is_empty() {
        s.push_str(&format!(": {message}"));
    }
    for d in details {
        s.push_str(&format!("\n  - {}: {}", d.code, d.message));
    }
    if let Some(id) = request_id {
        s.push_str(&format!("\n  x-ms-request-id: {id}"));
    }
    if let Some(h) = api_hint(*status, code) {
        s.push_str("\n  hint: ");
        s.push_str(h);
    }
    s
}

fn api_hint(status: u16, code: &str) -> Option<&'static str> {
    Some(match code {
        "AuthorizationFailed" => "the identity lacks an Azure role on this scope (for policy: Resource Policy Contributor; for assignments with identities also User Access Administrator); new role assignments can take minutes to propagate",
        "InvalidAuthenticationToken" | "InvalidAuthenticationTokenAudience" | "InvalidAuthenticationTokenTenant" => "the token was issued for another tenant or audience; check tenant_id, environment and resource_manager_audience",
        "ExpiredAuthenticationToken" => "the access token expired; check the machine clock",
        "MissingSubscriptionRegistration" => "register the resource provider on the subscription (az provider register --namespace <ns>)",
        "SubscriptionNotFound" => "check subscription_id and that the identity can see the subscription",
        "RequestDisallowedByPolicy" => "an Azure Policy deny assignment blocked the request; see the policy identifiers in the message",
        "OperationNotAllowed" if status == 409 => "another operation is in progress on the resource; retry when it finishes",
        _ if status == 401 => "the token was rejected; check tenant_id, environment and resource_manager_audience",
        _ => return None,
    })
}

impl ArmError {
    /// True for HTTP 404 answers (the resource or its parent does not exist).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ArmError::Api(e) if e.status == 404)
    }

    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Api(e) => Some(e.status),
            ArmError::Throttled { .. } => Some(429),
            _ => None,
        }
    }

    /// ARM error code of an API error (`AuthorizationFailed`, `PolicyDefinitionNotFound`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            ArmError::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    /// True for 403 answers, which ARM also gives while new role assignments propagate.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ArmError::Api(e) if e.status == 403)
    }

    /// Builds an `Api` error from a response status and body.
    pub fn from_response(
        status: u16,
        body: &[u8],
        method: &str,
        url: &str,
        request_id: Option<String>,
        correlation_id: Option<String>,
    ) -> ArmError {
        let parsed = parse_error_body(body);
        let (code, message, target, details) = match parsed {
            Some(e) => (e.code, e.message, e.target, e.details),
            None => (String::new(), body_snippet(body), None, Vec::new()),
        };
        ArmError::Api(Box::new(ApiError {
            status,
            code,
            message,
            target,
            details,
            request_id,
            correlation_id,
            method: method.to_string(),
            url: url.to_string(),
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct Envelope {
    error: ErrorBody,
}

/// Parses `{"error":{...}}`, or a bare `{"code","message"}` object; `None` for anything else.
fn parse_error_body(body: &[u8]) -> Option<ErrorBody> {
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        return Some(env.error);
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.code.is_empty() || !b.message.is_empty() => Some(b),
        _ => None,
    }
}

/// First ~300 characters of a body, for messages about unexpected payloads.
pub(crate) fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    let mut out: String = trimmed.chars().take(300).collect();
    if trimmed.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Marker so `ArmError` values print method/url compactly in logs.
pub(crate) struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    /// Drops the query string: it may carry SAS-like tokens in `nextLink`s.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once('?') {
            Some((base, _)) => write!(f, "{base}?…"),
            None => f.write_str(self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(body: &str, status: u16) -> ArmError {
        ArmError::from_response(
            status,
            body.as_bytes(),
            "GET",
            "https://x/y",
            Some("rid".into()),
            None,
        )
    }

    #[test]
    fn parses_envelope_with_details() {
        let e = api(
            r#"{"error":{"code":"InvalidPolicyRule","message":"bad rule","target":"t","details":[{"code":"A","message":"b"}]}}"#,
            400,
        );
        match &e {
            ArmError::Api(a) => {
                assert_eq!(a.code, "InvalidPolicyRule");
                assert_eq!(a.message, "bad rule");
                assert_eq!(a.target.as_deref(), Some("t"));
                assert_eq!(a.details.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = e.to_string();
        assert!(
            text.contains("HTTP 400 InvalidPolicyRule: bad rule"),
            "{text}"
        );
        assert!(text.contains("x-ms-request-id: rid"));
    }

    #[test]
    fn parses_bare_code_message_and_non_json() {
        let e = api(r#"{"code":"ResourceNotFound","message":"gone"}"#, 404);
        assert_eq!(e.code(), Some("ResourceNotFound"));
        assert!(e.is_not_found());
        let e = api("<html>Bad Gateway</html>", 502);
        assert_eq!(e.code(), Some(""));
        assert!(e.to_string().contains("<html>Bad Gateway</html>"));
    }

    #[test]
    fn hints_for_known_codes() {
        let e = api(
            r#"{"error":{"code":"AuthorizationFailed","message":"no"}}"#,
            403,
        );
        assert!(e.to_string().contains("role"));
        assert!(e.is_forbidden());
        let e = api(
            r#"{"error":{"code":"InvalidAuthenticationToken","message":"no"}}"#,
            401,
        );
        assert!(e.to_string().contains("tenant_id"));
    }

    #[test]
    fn no_credential_lists_attempts() {
        let e = AuthError::NoCredential(vec![
            ("client secret".into(), "rejected\nsecond line".into()),
            ("azure cli".into(), "az not found".into()),
        ]);
        let s = e.to_string();
        assert!(s.contains("  - client secret: rejected"));
        assert!(!s.contains("second line"));
        assert!(s.contains("  - azure cli: az not found"));
        let e = AuthError::NoCredential(vec![("oidc".into(), "oidc: file missing".into())]);
        assert!(e.to_string().contains("  - oidc: file missing"));
        assert!(!e.to_string().contains("oidc: oidc"));
    }

    #[test]
    fn redacted_drops_query() {
        assert_eq!(
            Redacted("https://a/b?x=secret").to_string(),
            "https://a/b?…"
        );
    }
}
