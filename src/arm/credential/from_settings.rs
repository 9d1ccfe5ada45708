//! Which credentials the provider settings configure, in azurerm's order.

use super::*;

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
        let cred = AssertionCredential::client_certificate(
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
            Arc::new(AssertionCredential::oidc(
                authority(OIDC_FLOW)?,
                need_client(OIDC_FLOW)?,
                source,
            )),
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
                crate::arm::endpoint::check_url(
                    &e,
                    crate::arm::endpoint::PlainHttp::LoopbackOrLinkLocal,
                )
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

#[cfg(test)]
mod tests {
    use super::*;

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
