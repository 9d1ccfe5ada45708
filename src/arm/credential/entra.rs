//! Where the credentials talk to Entra ID, and the token endpoint's response shapes (read by
//! the managed identity credential and by the errors built from what the SDK saw).

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

/// `client_assertion_type` of RFC 7523 assertions (certificate and federated).
#[cfg(test)]
pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
