//! Azure clouds: where Resource Manager and Entra ID live and which token audience ARM expects.

use super::error::ArmError;
use super::settings::ArmSettings;
use serde::Deserialize;

/// Endpoints of one Azure cloud. URLs always end with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudConfig {
    /// `public`, `usgovernment`, `china`, `custom` or the metadata document's `name`.
    pub name: String,
    pub resource_manager_endpoint: String,
    pub authority_host: String,
    /// Token audience (scope = audience + `.default`).
    pub audience: String,
}

impl CloudConfig {
    pub fn public() -> Self {
        Self::known(
            "public",
            "https://management.azure.com/",
            "https://login.microsoftonline.com/",
            "https://management.core.windows.net/",
        )
    }

    pub fn us_government() -> Self {
        Self::known(
            "usgovernment",
            "https://management.usgovcloudapi.net/",
            "https://login.microsoftonline.us/",
            "https://management.core.usgovcloudapi.net/",
        )
    }

    pub fn china() -> Self {
        Self::known(
            "china",
            "https://management.chinacloudapi.cn/",
            "https://login.chinacloudapi.cn/",
            "https://management.core.chinacloudapi.cn/",
        )
    }

    fn known(name: &str, arm: &str, authority: &str, audience: &str) -> Self {
        CloudConfig {
            name: name.to_string(),
            resource_manager_endpoint: arm.to_string(),
            authority_host: authority.to_string(),
            audience: audience.to_string(),
        }
    }

    /// OAuth2 scope for ARM tokens (`<audience>/.default`).
    pub fn scope(&self) -> String {
        format!("{}.default", with_slash(&self.audience))
    }

    /// Resolves the cloud from the settings without network access; `metadata_host` needs
    /// [`CloudConfig::resolve`].
    pub fn from_settings(settings: &ArmSettings) -> Result<Self, ArmError> {
        let env = settings
            .environment
            .as_deref()
            .map(|e| e.trim().to_ascii_lowercase())
            .unwrap_or_else(|| "public".to_string());
        let mut cloud = match env.as_str() {
            "public" | "azurecloud" | "azurepubliccloud" => Self::public(),
            "usgovernment" | "azureusgovernment" | "azureusgovernmentcloud" => {
                Self::us_government()
            }
            "china" | "azurechinacloud" => Self::china(),
            "custom" => {
                let arm = settings
                    .resource_manager_endpoint
                    .as_deref()
                    .ok_or_else(|| {
                        missing("resource_manager_endpoint", "ARM_RESOURCE_MANAGER_ENDPOINT")
                    })?;
                let authority = settings.authority_host.as_deref().ok_or_else(|| {
                    missing("authority_host", "ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST")
                })?;
                Self::known(
                    "custom",
                    &with_slash(arm),
                    &with_slash(authority),
                    &Self::public().audience,
                )
            }
            other => {
                return Err(ArmError::Config(format!(
                    "environment {other:?} is unknown; use public, usgovernment, china or custom \
                     (attribute environment / ARM_ENVIRONMENT)"
                )))
            }
        };
        // Explicit endpoints override a named cloud too (azapi allows this).
        if let Some(arm) = &settings.resource_manager_endpoint {
            cloud.resource_manager_endpoint = with_slash(arm);
        }
        if let Some(auth) = &settings.authority_host {
            cloud.authority_host = with_slash(auth);
        }
        if let Some(aud) = &settings.resource_manager_audience {
            cloud.audience = with_slash(aud);
        }
        cloud.validate()?;
        Ok(cloud)
    }

    /// Resolves the cloud, fetching `https://{metadata_host}/metadata/endpoints` when set.
    pub async fn resolve(settings: &ArmSettings, http: &reqwest::Client) -> Result<Self, ArmError> {
        match settings.metadata_host.as_deref() {
            Some(host) => {
                let mut cloud = Self::from_metadata_host(host, http).await?;
                if let Some(aud) = &settings.resource_manager_audience {
                    cloud.audience = with_slash(aud);
                }
                Ok(cloud)
            }
            None => Self::from_settings(settings),
        }
    }

    async fn from_metadata_host(host: &str, http: &reqwest::Client) -> Result<Self, ArmError> {
        let base = super::endpoint::metadata_base(host).map_err(|problem| {
            ArmError::Config(format!("metadata_host (ARM_METADATA_HOSTNAME) {problem}"))
        })?;
        let base = base.as_str().trim_end_matches('/');
        let url = format!("{base}/metadata/endpoints?api-version=2022-09-01");
        log::debug!("fetching cloud metadata from {url}");
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| ArmError::Transport {
                method: "GET".into(),
                url: url.clone(),
                message: super::client::describe_reqwest_error(&e),
                tls: super::error::TlsHint::of(&e),
            })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| ArmError::Transport {
            method: "GET".into(),
            url: url.clone(),
            message: e.to_string(),
            tls: None,
        })?;
        if status != 200 {
            return Err(ArmError::from_response(
                status, &body, "GET", &url, None, None,
            ));
        }
        let doc: MetadataDoc = serde_json::from_slice(&body).map_err(|e| ArmError::Decode {
            method: "GET".into(),
            url: url.clone(),
            message: e.to_string(),
            snippet: super::error::body_snippet(&body),
        })?;
        let audience = doc
            .authentication
            .audiences
            .into_iter()
            .next()
            .ok_or_else(|| ArmError::Config(format!("{url}: authentication.audiences is empty")))?;
        let cloud = CloudConfig {
            name: doc.name.unwrap_or_else(|| "metadata".into()),
            resource_manager_endpoint: with_slash(&doc.resource_manager),
            authority_host: with_slash(&doc.authentication.login_endpoint),
            audience: with_slash(&audience),
        };
        cloud.validate()?;
        Ok(cloud)
    }

    fn validate(&self) -> Result<(), ArmError> {
        for (attr, var, value) in [
            (
                "resource_manager_endpoint",
                "ARM_RESOURCE_MANAGER_ENDPOINT",
                &self.resource_manager_endpoint,
            ),
            (
                "authority_host",
                "ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST",
                &self.authority_host,
            ),
        ] {
            super::endpoint::check_url(value, super::endpoint::PlainHttp::Loopback)
                .map_err(|problem| ArmError::Config(format!("{attr} ({var}) {problem}")))?;
        }
        Ok(())
    }
}

fn missing(attr: &str, var: &str) -> ArmError {
    ArmError::Config(format!(
        "environment = \"custom\" needs {attr}: set it in the provider block or export {var}"
    ))
}

fn with_slash(s: &str) -> String {
    let t = s.trim();
    if t.ends_with('/') {
        t.to_string()
    } else {
        format!("{t}/")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataDoc {
    #[serde(default)]
    name: Option<String>,
    resource_manager: String,
    authentication: MetadataAuth,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataAuth {
    login_endpoint: String,
    #[serde(default)]
    audiences: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_clouds() {
        let c = CloudConfig::from_settings(&ArmSettings::default()).unwrap();
        assert_eq!(c, CloudConfig::public());
        assert_eq!(c.scope(), "https://management.core.windows.net/.default");
        let s = ArmSettings {
            environment: Some("USGovernment".into()),
            ..Default::default()
        };
        assert_eq!(
            CloudConfig::from_settings(&s)
                .unwrap()
                .resource_manager_endpoint,
            "https://management.usgovcloudapi.net/"
        );
        let s = ArmSettings {
            environment: Some("china".into()),
            ..Default::default()
        };
        assert_eq!(
            CloudConfig::from_settings(&s).unwrap().authority_host,
            "https://login.chinacloudapi.cn/"
        );
    }

    #[test]
    fn custom_needs_endpoints_and_names_env_vars() {
        let s = ArmSettings {
            environment: Some("custom".into()),
            ..Default::default()
        };
        let e = CloudConfig::from_settings(&s).unwrap_err().to_string();
        assert!(
            e.contains("resource_manager_endpoint") && e.contains("ARM_RESOURCE_MANAGER_ENDPOINT"),
            "{e}"
        );
        let s = ArmSettings {
            environment: Some("custom".into()),
            resource_manager_endpoint: Some("https://127.0.0.1:8443".into()),
            ..Default::default()
        };
        let e = CloudConfig::from_settings(&s).unwrap_err().to_string();
        assert!(e.contains("ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST"), "{e}");
        let s = ArmSettings {
            environment: Some("custom".into()),
            resource_manager_endpoint: Some("https://127.0.0.1:8443".into()),
            authority_host: Some("https://127.0.0.1:8443".into()),
            resource_manager_audience: Some("https://emu".into()),
            ..Default::default()
        };
        let c = CloudConfig::from_settings(&s).unwrap();
        assert_eq!(c.resource_manager_endpoint, "https://127.0.0.1:8443/");
        assert_eq!(c.scope(), "https://emu/.default");
    }

    #[test]
    fn rejects_plain_http_to_remote_hosts_and_unknown_env() {
        let s = ArmSettings {
            environment: Some("custom".into()),
            resource_manager_endpoint: Some("http://example.com".into()),
            authority_host: Some("https://login".into()),
            ..Default::default()
        };
        assert!(CloudConfig::from_settings(&s)
            .unwrap_err()
            .to_string()
            .contains("https://"));
        let s = ArmSettings {
            environment: Some("mars".into()),
            ..Default::default()
        };
        assert!(CloudConfig::from_settings(&s).is_err());
    }

    #[tokio::test]
    async fn metadata_host_document() {
        let server = crate::arm::testutil::TestServer::start(|req| {
            assert!(req.path.starts_with("/metadata/endpoints?api-version=2022-09-01"));
            crate::arm::testutil::Response::json(
                200,
                r#"{"name":"Emu","resourceManager":"https://127.0.0.1:1/","authentication":{"loginEndpoint":"https://127.0.0.1:2","audiences":["https://management.core.windows.net/","x"]},"suffixes":{}}"#,
            )
        })
        .await;
        let s = ArmSettings {
            metadata_host: Some(server.host()),
            ..Default::default()
        };
        let c = CloudConfig::resolve(&s, &server.http_client())
            .await
            .unwrap();
        assert_eq!(c.name, "Emu");
        assert_eq!(c.resource_manager_endpoint, "https://127.0.0.1:1/");
        assert_eq!(c.authority_host, "https://127.0.0.1:2/");
        assert_eq!(c.audience, "https://management.core.windows.net/");
    }
}
