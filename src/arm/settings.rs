//! Provider-block options for the ARM client and their `ARM_*` environment fallbacks, named as
//! azurerm / azapi name them so existing CI setups work unchanged.

/// Every provider-block option the ARM layer understands. `None` = not set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ArmSettings {
    pub subscription_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_id_file_path: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file_path: Option<String>,
    /// Base64-encoded PFX or PEM bundle.
    pub client_certificate: Option<String>,
    pub client_certificate_path: Option<String>,
    pub client_certificate_password: Option<String>,
    pub use_oidc: Option<bool>,
    pub oidc_token: Option<String>,
    pub oidc_token_file_path: Option<String>,
    pub oidc_request_url: Option<String>,
    pub oidc_request_token: Option<String>,
    pub use_aks_workload_identity: Option<bool>,
    pub use_msi: Option<bool>,
    pub msi_endpoint: Option<String>,
    pub use_cli: Option<bool>,
    /// `public`, `usgovernment`, `china` or `custom`.
    pub environment: Option<String>,
    pub metadata_host: Option<String>,
    pub resource_manager_endpoint: Option<String>,
    pub resource_manager_audience: Option<String>,
    pub authority_host: Option<String>,
    /// Extra PEM bundle trusted in addition to the system roots.
    pub ca_certificate_file: Option<String>,
    pub max_retries: Option<u32>,
    pub partner_id: Option<String>,
    pub disable_correlation_request_id: Option<bool>,
}

impl std::fmt::Debug for ArmSettings {
    /// Secrets are shown only as set/unset so settings can be logged safely.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("ArmSettings")
            .field("subscription_id", &self.subscription_id)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_id_file_path", &self.client_id_file_path)
            .field("client_secret", &secret(&self.client_secret))
            .field("client_secret_file_path", &self.client_secret_file_path)
            .field("client_certificate", &secret(&self.client_certificate))
            .field("client_certificate_path", &self.client_certificate_path)
            .field(
                "client_certificate_password",
                &secret(&self.client_certificate_password),
            )
            .field("use_oidc", &self.use_oidc)
            .field("oidc_token", &secret(&self.oidc_token))
            .field("oidc_token_file_path", &self.oidc_token_file_path)
            .field("oidc_request_url", &self.oidc_request_url)
            .field("oidc_request_token", &secret(&self.oidc_request_token))
            .field("use_aks_workload_identity", &self.use_aks_workload_identity)
            .field("use_msi", &self.use_msi)
            .field("msi_endpoint", &self.msi_endpoint)
            .field("use_cli", &self.use_cli)
            .field("environment", &self.environment)
            .field("metadata_host", &self.metadata_host)
            .field("resource_manager_endpoint", &self.resource_manager_endpoint)
            .field("resource_manager_audience", &self.resource_manager_audience)
            .field("authority_host", &self.authority_host)
            .field("ca_certificate_file", &self.ca_certificate_file)
            .field("max_retries", &self.max_retries)
            .field("partner_id", &self.partner_id)
            .field(
                "disable_correlation_request_id",
                &self.disable_correlation_request_id,
            )
            .finish()
    }
}

/// One provider attribute with the environment variables that back it (first set one wins).
#[derive(Debug, Clone, Copy)]
pub struct EnvBinding {
    pub attribute: &'static str,
    pub env: &'static [&'static str],
    pub description: &'static str,
}

const fn b(
    attribute: &'static str,
    env: &'static [&'static str],
    description: &'static str,
) -> EnvBinding {
    EnvBinding {
        attribute,
        env,
        description,
    }
}

/// Attribute → environment variable table, shared with the provider schema and docs.
pub const ENV_BINDINGS: &[EnvBinding] = &[
    b("subscription_id", &["ARM_SUBSCRIPTION_ID"], "Subscription ID used for subscription-scoped operations."),
    b("tenant_id", &["ARM_TENANT_ID", "AZURE_TENANT_ID"], "Entra ID tenant ID (AZURE_TENANT_ID only with use_aks_workload_identity)."),
    b("client_id", &["ARM_CLIENT_ID", "AZURE_CLIENT_ID"], "Client (application) ID of the service principal or managed identity (AZURE_CLIENT_ID only with use_aks_workload_identity)."),
    b("client_id_file_path", &["ARM_CLIENT_ID_FILE_PATH"], "Path to a file containing the client ID."),
    b("client_secret", &["ARM_CLIENT_SECRET"], "Client secret of the service principal."),
    b("client_secret_file_path", &["ARM_CLIENT_SECRET_FILE_PATH"], "Path to a file containing the client secret."),
    b("client_certificate", &["ARM_CLIENT_CERTIFICATE"], "Base64-encoded PFX (or PEM) client certificate."),
    b("client_certificate_path", &["ARM_CLIENT_CERTIFICATE_PATH"], "Path to a PEM (certificate + private key) or PFX client certificate."),
    b("client_certificate_password", &["ARM_CLIENT_CERTIFICATE_PASSWORD"], "Password of the PFX client certificate."),
    b("use_oidc", &["ARM_USE_OIDC"], "Authenticate with an OIDC token (workload identity federation)."),
    b("oidc_token", &["ARM_OIDC_TOKEN"], "OIDC ID token to exchange for an access token."),
    b("oidc_token_file_path", &["ARM_OIDC_TOKEN_FILE_PATH", "AZURE_FEDERATED_TOKEN_FILE"], "Path to a file containing the OIDC token (AZURE_FEDERATED_TOKEN_FILE only with use_aks_workload_identity)."),
    b("oidc_request_url", &["ARM_OIDC_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_URL"], "URL to request an OIDC token from (GitHub Actions)."),
    b("oidc_request_token", &["ARM_OIDC_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"], "Bearer token for the OIDC request URL."),
    b("use_aks_workload_identity", &["ARM_USE_AKS_WORKLOAD_IDENTITY"], "Use AKS workload identity (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID)."),
    b("use_msi", &["ARM_USE_MSI"], "Authenticate with a managed identity."),
    b("msi_endpoint", &["ARM_MSI_ENDPOINT"], "Custom managed identity endpoint."),
    b("use_cli", &["ARM_USE_CLI"], "Authenticate with the Azure CLI (default true)."),
    b("environment", &["ARM_ENVIRONMENT"], "Cloud: public, usgovernment, china or custom."),
    b("metadata_host", &["ARM_METADATA_HOSTNAME"], "Host serving /metadata/endpoints for the cloud's endpoints."),
    b("resource_manager_endpoint", &["ARM_RESOURCE_MANAGER_ENDPOINT"], "Resource Manager endpoint for environment = custom."),
    b("resource_manager_audience", &["ARM_RESOURCE_MANAGER_AUDIENCE"], "Token audience for the Resource Manager endpoint."),
    b("authority_host", &["ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST", "AZURE_AUTHORITY_HOST"], "Entra ID authority host (required for environment = custom; AZURE_AUTHORITY_HOST only with use_aks_workload_identity)."),
    b("ca_certificate_file", &["ARM_CA_CERTIFICATE_FILE"], "Extra PEM bundle of CA certificates to trust (in addition to the system roots / SSL_CERT_FILE)."),
    b("max_retries", &["ARM_MAX_RETRIES"], "Maximum retries for throttled or failed requests (default 3)."),
    b("partner_id", &["ARM_PARTNER_ID"], "GUID added to the User-Agent for partner attribution."),
    b("disable_correlation_request_id", &["ARM_DISABLE_CORRELATION_REQUEST_ID"], "Do not send x-ms-correlation-request-id."),
];

/// Error for an environment value that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {var}={value:?} is not a valid {expected}")]
pub struct EnvError {
    pub var: String,
    pub value: String,
    pub expected: &'static str,
}

/// Names of the variables AKS workload identity injects; honoured only with
/// `use_aks_workload_identity`.
pub const AKS_WORKLOAD_IDENTITY_ENV: &[&str] = &[
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
];

fn lookup(
    env: &dyn Fn(&str) -> Option<String>,
    attribute: &str,
    workload_identity: bool,
) -> Option<(String, String)> {
    let binding = ENV_BINDINGS.iter().find(|b| b.attribute == attribute)?;
    binding
        .env
        .iter()
        .filter(|name| workload_identity || !AKS_WORKLOAD_IDENTITY_ENV.contains(name))
        .find_map(|name| {
            env(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name.to_string(), v))
        })
}

fn parse_bool(var: String, value: String) -> Result<bool, EnvError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" => Ok(true),
        "0" | "false" | "f" | "no" => Ok(false),
        _ => Err(EnvError {
            var,
            value,
            expected: "boolean (true/false)",
        }),
    }
}

impl ArmSettings {
    /// Fills every unset option from the environment (block values win). `env` is injectable
    /// for tests; production passes `&|k| std::env::var(k).ok()`.
    pub fn fill_from_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), EnvError> {
        macro_rules! string {
            ($wi:expr; $($f:ident),*) => {$(
                if self.$f.is_none() {
                    self.$f = lookup(env, stringify!($f), $wi).map(|(_, v)| v);
                }
            )*};
        }
        macro_rules! boolean {
            ($wi:expr; $($f:ident),*) => {$(
                if self.$f.is_none() {
                    if let Some((k, v)) = lookup(env, stringify!($f), $wi) {
                        self.$f = Some(parse_bool(k, v)?);
                    }
                }
            )*};
        }
        boolean!(
            false;
            use_oidc,
            use_aks_workload_identity,
            use_msi,
            use_cli,
            disable_correlation_request_id
        );
        // AKS workload identity variables count only when that mode is on, so a stray
        // AZURE_CLIENT_ID from another tool never changes which identity is used.
        let wi = self.use_aks_workload_identity.unwrap_or(false);
        string!(
            wi;
            subscription_id,
            tenant_id,
            client_id,
            client_id_file_path,
            client_secret,
            client_secret_file_path,
            client_certificate,
            client_certificate_path,
            client_certificate_password,
            oidc_token,
            oidc_token_file_path,
            oidc_request_url,
            oidc_request_token,
            msi_endpoint,
            environment,
            metadata_host,
            resource_manager_endpoint,
            resource_manager_audience,
            authority_host,
            ca_certificate_file,
            partner_id
        );
        if self.max_retries.is_none() {
            if let Some((k, v)) = lookup(env, "max_retries", false) {
                self.max_retries = Some(v.trim().parse().map_err(|_| EnvError {
                    var: k,
                    value: v,
                    expected: "non-negative integer",
                })?);
            }
        }
        Ok(())
    }

    /// [`ArmSettings::fill_from_env`] with the process environment.
    pub fn fill_from_process_env(&mut self) -> Result<(), EnvError> {
        self.fill_from_env(&|k| std::env::var(k).ok())
    }

    /// `use_cli` defaults to true like azurerm.
    pub fn cli_enabled(&self) -> bool {
        self.use_cli.unwrap_or(true)
    }

    /// OIDC is on when `use_oidc` or `use_aks_workload_identity` is set.
    pub fn oidc_enabled(&self) -> bool {
        self.use_oidc.unwrap_or(false) || self.use_aks_workload_identity.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn fills_unset_from_env_and_keeps_block_values() {
        let env = env_of(&[
            ("ARM_SUBSCRIPTION_ID", "sub-env"),
            ("ARM_TENANT_ID", "tenant-env"),
            ("ARM_CLIENT_SECRET", "s3cret"),
            ("ARM_USE_OIDC", "true"),
            ("ARM_USE_CLI", "false"),
            ("ARM_MAX_RETRIES", "7"),
            ("ARM_ENVIRONMENT", "custom"),
            ("ARM_RESOURCE_MANAGER_ENDPOINT", "https://127.0.0.1:8443/"),
            (
                "ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST",
                "https://127.0.0.1:8444/",
            ),
            ("ARM_CA_CERTIFICATE_FILE", "/tmp/ca.pem"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://gh/token"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ghtok"),
        ]);
        let mut s = ArmSettings {
            subscription_id: Some("sub-block".into()),
            ..Default::default()
        };
        s.fill_from_env(&env).unwrap();
        assert_eq!(s.subscription_id.as_deref(), Some("sub-block"));
        assert_eq!(s.tenant_id.as_deref(), Some("tenant-env"));
        assert_eq!(s.client_secret.as_deref(), Some("s3cret"));
        assert_eq!(s.use_oidc, Some(true));
        assert!(!s.cli_enabled());
        assert_eq!(s.max_retries, Some(7));
        assert_eq!(s.environment.as_deref(), Some("custom"));
        assert_eq!(s.authority_host.as_deref(), Some("https://127.0.0.1:8444/"));
        assert_eq!(s.ca_certificate_file.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(s.oidc_request_url.as_deref(), Some("https://gh/token"));
        assert_eq!(s.oidc_request_token.as_deref(), Some("ghtok"));
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn arm_names_win_over_aliases_and_aks_workload_identity_vars() {
        let env = env_of(&[
            ("AZURE_CLIENT_ID", "wi-client"),
            ("AZURE_TENANT_ID", "wi-tenant"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("ARM_USE_AKS_WORKLOAD_IDENTITY", "1"),
            ("ARM_TENANT_ID", "arm-tenant"),
        ]);
        let mut s = ArmSettings::default();
        s.fill_from_env(&env).unwrap();
        assert_eq!(s.client_id.as_deref(), Some("wi-client"));
        assert_eq!(s.tenant_id.as_deref(), Some("arm-tenant"));
        assert_eq!(s.oidc_token_file_path.as_deref(), Some("/var/run/token"));
        assert!(s.oidc_enabled());
    }

    #[test]
    fn azure_vars_ignored_without_workload_identity() {
        let env = env_of(&[
            ("AZURE_CLIENT_ID", "stray"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
        ]);
        let mut s = ArmSettings::default();
        s.fill_from_env(&env).unwrap();
        assert_eq!(s.client_id, None);
        assert_eq!(s.oidc_token_file_path, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let mut s = ArmSettings::default();
        let err = s
            .fill_from_env(&env_of(&[("ARM_USE_MSI", "maybe")]))
            .unwrap_err();
        assert_eq!(err.var, "ARM_USE_MSI");
        let err = s
            .fill_from_env(&env_of(&[("ARM_MAX_RETRIES", "-1")]))
            .unwrap_err();
        assert_eq!(err.var, "ARM_MAX_RETRIES");
    }

    #[test]
    fn table_covers_every_attribute_once() {
        let mut names: Vec<_> = ENV_BINDINGS.iter().map(|b| b.attribute).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        assert_eq!(before, 27);
    }
}
