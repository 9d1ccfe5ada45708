//! Workload identity federation: an external OIDC token (static, file, or GitHub Actions'
//! request) fed to azure_identity's `ClientAssertionCredential`, which exchanges it for an ARM
//! token. The GitHub Actions request is ours: azure_identity has no such credential. The token
//! file is ours too rather than azure_identity's `WorkloadIdentityCredential`: that one sends the
//! file's content untrimmed (a file written with a trailing newline gives a malformed
//! assertion) and reads it with blocking I/O; ours trims it and re-reads it on every exchange,
//! as AKS rotates the projected token.

use super::*;

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

/// Where the external token comes from, and the client that requests it.
struct ExternalToken {
    source: OidcSource,
    http: reqwest::Client,
}

pub(super) const OIDC_FLOW: &str = "oidc";

impl AssertionCredential {
    /// Workload identity federation: exchanges an external OIDC token for an ARM token.
    pub(super) fn oidc(authority: Authority, client_id: String, source: OidcSource) -> Self {
        let external = ExternalToken {
            source,
            http: authority.http.clone(),
        };
        Self::new(OIDC_FLOW, authority, client_id, Arc::new(external))
    }
}

impl AssertionSource for ExternalToken {
    fn assertion<'a>(
        &'a self,
        _token_url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<String, AuthError>> + Send + 'a>> {
        Box::pin(self.fetch())
    }
}

impl ExternalToken {
    async fn fetch(&self) -> Result<String, AuthError> {
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
                let shown = crate::arm::error::Redacted(u.as_str()).to_string();
                let request = self
                    .http
                    .get(u)
                    .bearer_auth(token)
                    .header("Accept", "application/json");
                let (status, body) = get_answer(OIDC_FLOW, request, &shown, "").await?;
                #[derive(Deserialize)]
                struct IdToken {
                    value: String,
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::credential::test_support::*;
    use crate::arm::testutil::{Response, TestServer};

    #[tokio::test]
    async fn oidc_github_request_then_exchange() {
        let server = TestServer::start(|req| {
            if req.path.starts_with("/gh") {
                assert_eq!(req.header("authorization"), Some("Bearer gh-req-token"));
                req.assert_path_has("audience=api%3A%2F%2FAzureADTokenExchange");
                return Response::json(200, r#"{"value":"github-jwt"}"#);
            }
            let f = form(&req.body);
            assert_eq!(f["client_assertion"], "github-jwt");
            Response::json(200, r#"{"expires_in":3600,"access_token":"oidc-tok"}"#)
        })
        .await;
        let cred = AssertionCredential::oidc(
            authority(&server),
            "app".into(),
            OidcSource::Request {
                url: format!("{}gh?api=1", server.url()),
                token: "gh-req-token".into(),
            },
        );
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
        let cred = AssertionCredential::oidc(
            authority(&server2),
            "app".into(),
            OidcSource::File(file.to_string_lossy().into_owned()),
        );
        assert_eq!(cred.get_token("s/.default").await.unwrap().token, "wi-tok");
        let _ = std::fs::remove_file(file);
    }
}
