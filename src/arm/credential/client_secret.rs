//! Service principal with a client secret: azure_identity's `ClientSecretCredential`.

use super::*;

/// Service principal with a client secret.
pub struct ClientSecretCredential {
    pub(super) authority: Authority,
    pub(super) client_id: String,
    pub(super) secret: String,
}

impl TokenCredential for ClientSecretCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            let build = |options| {
                azure_identity::ClientSecretCredential::new(
                    &self.authority.tenant,
                    self.client_id.clone(),
                    azure_core::credentials::Secret::new(self.secret.clone()),
                    Some(azure_identity::ClientSecretCredentialOptions {
                        client_options: options,
                    }),
                )
                .map(|c| c as Arc<dyn azure_core::credentials::TokenCredential>)
            };
            sdk_token("client secret", &self.authority, scope, &build).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::credential::test_support::*;
    use crate::arm::testutil::{Response, TestServer};

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
        let token_with = |secret: &str| {
            let credential = ClientSecretCredential {
                authority: authority(&server),
                client_id: "app".into(),
                secret: secret.into(),
            };
            async move {
                credential
                    .get_token("https://management.core.windows.net/.default")
                    .await
            }
        };
        let t = token_with("right-secret").await.unwrap();
        assert_eq!(t.token, "tok-1");
        assert!(t.expires_on > SystemTime::now() + Duration::from_secs(3000));
        assert!(!format!("{t:?}").contains("tok-1"));

        let e = token_with("wrong-secret-value").await.unwrap_err();
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
        let server = TestServer::failing_first(
            1,
            Response::json(503, "busy"),
            Response::json(200, r#"{"expires_in":3600,"access_token":"tok"}"#),
        )
        .await;
        let cred = ClientSecretCredential {
            authority: authority(&server),
            client_id: "app".into(),
            secret: "s".into(),
        };
        assert_eq!(cred.get_token("s/.default").await.unwrap().token, "tok");
        assert_eq!(server.recorded().len(), 2);
    }

    #[tokio::test]
    async fn untrusted_ca_gives_hint() {
        let server = TestServer::answering(Response::json(200, "{}")).await;
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
        let server = TestServer::answering(Response::json(200, "{}")).await;
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
}
