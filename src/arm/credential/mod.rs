//! Token credentials for Entra ID, one file per credential: client secret, client certificate,
//! OIDC / workload identity, managed identity and Azure CLI, plus the azurerm-ordered chain
//! (`from_settings`, `chain`) and a per-process token cache (`cache`). The token requests
//! themselves are azure_identity's (`sdk` wires them to our HTTP client and errors); `entra`
//! holds the authority and the token endpoint's response shapes.
//!
//! No secret, assertion or token ever enters an error message or a log line.

mod azure_cli;
mod cache;
mod chain;
mod client_certificate;
mod client_secret;
mod entra;
mod from_settings;
mod managed_identity;
mod oidc;
mod sdk;

pub use azure_cli::AzureCliCredential;
pub use cache::TokenCache;
pub use chain::ChainedCredential;
pub use client_secret::ClientSecretCredential;
pub use from_settings::credential_from_settings;
pub use managed_identity::ManagedIdentityCredential;
pub use oidc::OidcSource;
pub use sdk::AssertionCredential;

use azure_cli::CLI_FLOW;
use client_certificate::CERT_FLOW;
/// Sends a token source's GET and reads its whole answer (status, body). Errors name the flow
/// and `shown`, the URL without what may be secret; `hint` follows a failure to connect.
async fn get_answer(
    flow: &'static str,
    request: reqwest::RequestBuilder,
    shown: &str,
    hint: &str,
) -> Result<(u16, Vec<u8>), AuthError> {
    let failed = |message: String| AuthError::Transport {
        flow,
        message: format!("GET {shown}: {message}"),
    };
    let resp = request.send().await.map_err(|e| {
        failed(format!(
            "{}{hint}",
            crate::arm::client::describe_reqwest_error(&e)
        ))
    })?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
    Ok((status, body.to_vec()))
}

#[cfg(test)]
use entra::JWT_BEARER;
use entra::{expiry, AadError, AadTokenResponse, Authority};
use managed_identity::{IMDS, MSI_FLOW};
use oidc::OIDC_FLOW;
use sdk::{config_error, from_sdk, innermost_message, sdk_token, AssertionSource};

use super::settings::ArmSettings;
use crate::arm::error::AuthError;
use async_trait::async_trait;
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

fn boxed<'a>(
    f: impl Future<Output = Result<AccessToken, AuthError>> + Send + 'a,
) -> TokenFuture<'a> {
    Box::pin(f)
}

#[cfg(test)]
mod test_support {
    use super::*;
    use crate::arm::testutil::TestServer;
    use std::sync::atomic::AtomicU32;

    pub(super) fn authority(server: &TestServer) -> Authority {
        Authority {
            http: server.http_client(),
            host: server.url(),
            tenant: "tenant1".into(),
        }
    }

    pub(super) fn form(body: &str) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect()
    }

    pub(super) struct Counting(pub(super) AtomicU32, pub(super) u64);
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
}
