//! Managed identity: IMDS, App Service's `IDENTITY_ENDPOINT`, or a custom `msi_endpoint`.
//!
//! Ours, not azure_identity's: its `ManagedIdentityCredential::new` picks the protocol and the
//! endpoint from the process environment (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`,
//! `IDENTITY_SERVER_THUMBPRINT`, `IMDS_ENDPOINT`, `MSI_ENDPOINT`, `MSI_SECRET`) and its options
//! have no endpoint; the credentials that take one (IMDS, App Service) are private to the crate.
//! So a stray variable would change where the provider asks for its identity, and a custom
//! `msi_endpoint` (the emulator's, or a sidecar's) could not be used at all.

use super::*;

/// Managed identity via IMDS, a custom `msi_endpoint`, or App Service's IDENTITY_ENDPOINT.
pub struct ManagedIdentityCredential {
    pub(super) http: reqwest::Client,
    pub(super) endpoint: String,
    /// `X-IDENTITY-HEADER` value for App Service style endpoints.
    pub(super) identity_header: Option<String>,
    pub(super) client_id: Option<String>,
}

pub(super) const MSI_FLOW: &str = "managed identity";
pub(super) const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

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
            let hint = " (is this running on Azure with a managed identity?)";
            let (status, body) = get_answer(MSI_FLOW, req, &shown, hint).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::testutil::{Response, TestServer};

    #[tokio::test]
    async fn managed_identity_endpoint() {
        let server = TestServer::start(|req| {
            assert_eq!(req.header("metadata"), Some("true"));
            req.assert_path_has("resource=https%3A%2F%2Fmanagement.core.windows.net%2F");
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
}
