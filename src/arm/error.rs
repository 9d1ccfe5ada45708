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
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default, rename = "additionalInfo")]
    pub additional_info: Vec<AdditionalInfo>,
}

/// One entry of an ARM error's `additionalInfo`: a typed payload such as `PolicyViolation`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AdditionalInfo {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub info: serde_json::Value,
}

impl AdditionalInfo {
    /// A one-line description for diagnostics; `None` for kinds that tell a user nothing.
    fn describe(&self) -> Option<String> {
        let text = |key: &str| self.info.get(key).and_then(|v| v.as_str());
        match self.kind.as_str() {
            // Which policy denied the request is the one thing a user needs to act on it.
            "PolicyViolation" => {
                let definition = text("policyDefinitionDisplayName")
                    .or_else(|| text("policyDefinitionName"))
                    .unwrap_or("unknown definition");
                let mut line = format!("denied by policy \"{definition}\"");
                if let Some(a) = text("policyAssignmentId") {
                    line.push_str(&format!(" (assignment {a})"));
                }
                if let Some(r) = text("policyDefinitionReferenceId") {
                    line.push_str(&format!(" member {r}"));
                }
                Some(line)
            }
            "" => None,
            kind => Some(format!("{kind}: {}", compact(&self.info))),
        }
    }
}

/// The JSON as one line, cut to a readable length.
fn compact(value: &serde_json::Value) -> String {
    body_snippet(value.to_string().as_bytes())
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
    pub additional_info: Vec<AdditionalInfo>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub method: String,
    /// Without query string.
    pub url: String,
}

impl fmt::Display for ApiError {
    /// The request, the status and code, the message, then one indented line per detail,
    /// target, additional info and correlation id, and a hint for codes we know the fix of.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: HTTP {}", self.method, self.url, self.status)?;
        if !self.code.is_empty() {
            write!(f, " {}", self.code)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(target) = self.target.as_deref().filter(|t| !t.is_empty()) {
            write!(f, "\n  target: {target}")?;
        }
        for d in &self.details {
            write!(f, "\n  - {}: {}", d.code, d.message)?;
            if let Some(target) = d.target.as_deref().filter(|t| !t.is_empty()) {
                write!(f, " (target: {target})")?;
            }
            for info in d
                .additional_info
                .iter()
                .filter_map(AdditionalInfo::describe)
            {
                write!(f, "\n    {info}")?;
            }
        }
        for info in self
            .additional_info
            .iter()
            .filter_map(AdditionalInfo::describe)
        {
            write!(f, "\n  {info}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, "\n  x-ms-request-id: {id}")?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, "\n  x-ms-correlation-request-id: {id}")?;
        }
        if let Some(h) = api_hint(self.status, &self.code) {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Why a TLS handshake failed, when the fix is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsHint {
    /// The server's certificate chains to no trusted CA.
    UntrustedCa,
    /// The certificate is trusted but issued for other host names.
    NameMismatch,
}

impl TlsHint {
    /// Classifies a failed request; `None` when it was no certificate problem.
    pub fn of(e: &reqwest::Error) -> Option<Self> {
        Self::of_text(&super::client::describe_reqwest_error(e))
    }

    fn of_text(text: &str) -> Option<Self> {
        // rustls names these CertificateError::NotValidForName(Context) and UnknownIssuer.
        if text.contains("not valid for name") || text.contains("NotValidForName") {
            Some(Self::NameMismatch)
        } else if text.contains("UnknownIssuer")
            || text.contains("unknown issuer")
            || text.contains("invalid peer certificate")
        {
            Some(Self::UntrustedCa)
        } else {
            None
        }
    }

    /// What to do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Self::UntrustedCa => {
                "the server certificate is not trusted; set ca_certificate_file \
                 (ARM_CA_CERTIFICATE_FILE) or SSL_CERT_FILE to a PEM bundle with its CA"
            }
            Self::NameMismatch => {
                "the server certificate is trusted but was issued for other host names; use a \
                 host name the certificate lists in the endpoint URL (for the akspolicy emulator: \
                 localhost or 127.0.0.1). Trusting another CA does not help here"
            }
        }
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
    #[error("{method} {url}: {message}{}", .tls.map(|h| format!("\n  hint: {}", h.advice())).unwrap_or_default())]
    Transport {
        method: String,
        url: String,
        message: String,
        /// Set when the TLS handshake failed for a reason with a known fix.
        tls: Option<TlsHint>,
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
        let (code, message, target, details, additional_info) = match parsed {
            Some(e) => (e.code, e.message, e.target, e.details, e.additional_info),
            None => (
                String::new(),
                body_snippet(body),
                None,
                Vec::new(),
                Vec::new(),
            ),
        };
        ArmError::Api(Box::new(ApiError {
            status,
            code,
            message,
            target,
            details,
            additional_info,
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
    #[serde(default, rename = "additionalInfo")]
    additional_info: Vec<AdditionalInfo>,
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
    fn policy_violation_names_the_policy_and_assignment() {
        let e = ArmError::from_response(
            403,
            br#"{"error":{"code":"RequestDisallowedByPolicy","target":"aks1","message":"Resource 'aks1' was disallowed by policy.","additionalInfo":[{"type":"PolicyViolation","info":{"policyDefinitionDisplayName":"No privileged containers","policyAssignmentId":"/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a1","policyDefinitionReferenceId":"priv"}}]}}"#,
            "PUT",
            "https://x/y",
            Some("rid".into()),
            Some("cid".into()),
        );
        let text = e.to_string();
        assert!(text.contains("target: aks1"), "{text}");
        assert!(
            text.contains("denied by policy \"No privileged containers\" (assignment /subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a1) member priv"),
            "{text}"
        );
        assert!(text.contains("x-ms-correlation-request-id: cid"), "{text}");
        assert!(
            text.contains("hint: an Azure Policy deny assignment"),
            "{text}"
        );
    }

    #[test]
    fn unknown_additional_info_is_shown_compactly() {
        let e = api(
            r#"{"error":{"code":"X","message":"m","details":[{"code":"D","message":"d","target":"properties.parameters.effect","additionalInfo":[{"type":"Quota","info":{"limit":5}}]}]}}"#,
            400,
        );
        let text = e.to_string();
        assert!(
            text.contains("  - D: d (target: properties.parameters.effect)"),
            "{text}"
        );
        assert!(text.contains("    Quota: {\"limit\":5}"), "{text}");
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
