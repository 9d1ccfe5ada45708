//! The `akspolicy` provider: its configuration block and the list of resources and data sources.
//!
//! Every argument can also come from the `ARM_*` environment variable azurerm and azapi users
//! already set; an argument in the block wins over the variable.

use std::sync::Arc;

use async_trait::async_trait;

use crate::arm::{ArmClient, ArmSettings, ClientOptions, ListSnapshots};
use crate::framework::{
    Attribute, AttributePath, Block, ConfigureRequest, ConfigureResponse, DataSource, Diagnostic,
    Diagnostics, Function, Provider, ProviderData, Resource, Schema, Type, ValidateConfigRequest,
    ValidateConfigResponse, Value,
};
use crate::resources::shared::decode::decoded;

use crate::framework::typed::{Typed, TypedError};
use crate::framework::value::Number;
use crate::typed_object;

use super::admission_review::AdmissionReviewDataSource;
use super::assignment::AssignmentResource;
use super::builtin_definition::BuiltinDefinitionDataSource;
use super::builtin_initiative::BuiltinInitiativeDataSource;
use super::cluster_addon::ClusterAddonResource;
use super::compliance::ComplianceDataSource;
use super::definition::DefinitionResource;
use super::evaluate_function::EvaluateFunction;
use super::exemption::ExemptionResource;
use super::initiative::InitiativeResource;
use super::kubernetes_definition::KubernetesDefinitionResource;
use super::kubernetes_mutation::KubernetesMutationResource;
use super::remediation::RemediationResource;
use super::shared::errors::arm_error_diagnostic;
use super::shared::usage::PlanLedger;

/// The provider's type name; every resource and data source name starts with `akspolicy_`.
pub const TYPE_NAME: &str = "akspolicy";

/// What Configure hands every resource: one ARM client per provider instance.
pub struct Configured {
    pub client: ArmClient,
    /// Lists that answer many reads of one collection (see `arm::snapshot`).
    pub snapshots: ListSnapshots,
    /// What this process's plans remove, for checks between resources (see `usage`).
    pub plan_ledger: PlanLedger,
}

impl Configured {
    /// The configured provider, or `None` with the reason added to `diags`.
    pub fn from_context(
        ctx: &crate::framework::CallContext,
        diags: &mut Diagnostics,
    ) -> Option<Arc<Configured>> {
        ctx.provider::<Configured>()
            .map_err(|d| diags.extend(d))
            .ok()
    }
}

pub struct AksPolicyProvider;

/// The provider as the plugin layer serves it.
pub fn provider() -> Arc<dyn Provider> {
    Arc::new(AksPolicyProvider)
}

fn string_arg(name: &str, env: &str, description: &str) -> Attribute {
    Attribute::string(name)
        .optional()
        .description(format!("{description} Can also be set with `{env}`."))
}

fn bool_arg(name: &str, env: &str, description: &str) -> Attribute {
    Attribute::bool(name)
        .optional()
        .description(format!("{description} Can also be set with `{env}`."))
}

fn provider_block() -> Block {
    Block::new()
        .description(
            "The akspolicy provider manages Azure Policy for Azure Kubernetes Service through \
             Azure Resource Manager. It authenticates like the azurerm provider and reads the \
             same `ARM_*` environment variables.",
        )
        .attribute(string_arg(
            "subscription_id",
            "ARM_SUBSCRIPTION_ID",
            "The subscription used when a resource's scope is not given.",
        ))
        .attribute(string_arg(
            "tenant_id",
            "ARM_TENANT_ID",
            "The Microsoft Entra ID tenant to authenticate against.",
        ))
        .attribute(string_arg(
            "client_id",
            "ARM_CLIENT_ID",
            "The application (client) ID of the service principal or managed identity.",
        ))
        .attribute(string_arg(
            "client_id_file_path",
            "ARM_CLIENT_ID_FILE_PATH",
            "A file containing the client ID.",
        ))
        .attribute(
            string_arg(
                "client_secret",
                "ARM_CLIENT_SECRET",
                "The client secret of the service principal.",
            )
            .sensitive(),
        )
        .attribute(string_arg(
            "client_secret_file_path",
            "ARM_CLIENT_SECRET_FILE_PATH",
            "A file containing the client secret.",
        ))
        .attribute(
            string_arg(
                "client_certificate",
                "ARM_CLIENT_CERTIFICATE",
                "A base64-encoded PKCS#12 (PFX) client certificate.",
            )
            .sensitive(),
        )
        .attribute(string_arg(
            "client_certificate_path",
            "ARM_CLIENT_CERTIFICATE_PATH",
            "Path to a PKCS#12 (PFX) or PEM client certificate with its private key.",
        ))
        .attribute(
            string_arg(
                "client_certificate_password",
                "ARM_CLIENT_CERTIFICATE_PASSWORD",
                "The password protecting the client certificate.",
            )
            .sensitive(),
        )
        .attribute(bool_arg(
            "use_oidc",
            "ARM_USE_OIDC",
            "Authenticate with an OpenID Connect token (workload identity federation).",
        ))
        .attribute(
            string_arg("oidc_token", "ARM_OIDC_TOKEN", "The OIDC token to exchange.").sensitive(),
        )
        .attribute(string_arg(
            "oidc_token_file_path",
            "ARM_OIDC_TOKEN_FILE_PATH",
            "A file containing the OIDC token (AKS workload identity's `AZURE_FEDERATED_TOKEN_FILE` is used when set).",
        ))
        .attribute(string_arg(
            "oidc_request_url",
            "ARM_OIDC_REQUEST_URL",
            "The URL from which to request an OIDC token (GitHub Actions' `ACTIONS_ID_TOKEN_REQUEST_URL` is used when set).",
        ))
        .attribute(
            string_arg(
                "oidc_request_token",
                "ARM_OIDC_REQUEST_TOKEN",
                "The bearer token for `oidc_request_url` (GitHub Actions' `ACTIONS_ID_TOKEN_REQUEST_TOKEN` is used when set).",
            )
            .sensitive(),
        )
        .attribute(bool_arg(
            "use_aks_workload_identity",
            "ARM_USE_AKS_WORKLOAD_IDENTITY",
            "Authenticate with AKS workload identity (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`).",
        ))
        .attribute(bool_arg(
            "use_msi",
            "ARM_USE_MSI",
            "Authenticate with a managed identity.",
        ))
        .attribute(string_arg(
            "msi_endpoint",
            "ARM_MSI_ENDPOINT",
            "A custom managed identity endpoint (the instance metadata service is the default).",
        ))
        .attribute(bool_arg(
            "use_cli",
            "ARM_USE_CLI",
            "Allow authentication with the Azure CLI's logged-in account (default `true`).",
        ))
        .attribute(string_arg(
            "environment",
            "ARM_ENVIRONMENT",
            "The cloud: `public` (default), `usgovernment`, `china`, or `custom` (with `resource_manager_endpoint` and `authority_host`).",
        ))
        .attribute(string_arg(
            "metadata_host",
            "ARM_METADATA_HOSTNAME",
            "A host serving `/metadata/endpoints` that describes the cloud; overrides `environment`.",
        ))
        .attribute(string_arg(
            "resource_manager_endpoint",
            "ARM_RESOURCE_MANAGER_ENDPOINT",
            "The Azure Resource Manager endpoint of a `custom` environment.",
        ))
        .attribute(string_arg(
            "resource_manager_audience",
            "ARM_RESOURCE_MANAGER_AUDIENCE",
            "The token audience of a `custom` environment's Resource Manager.",
        ))
        .attribute(string_arg(
            "authority_host",
            "ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST",
            "The Microsoft Entra ID authority of a `custom` environment.",
        ))
        .attribute(string_arg(
            "ca_certificate_file",
            "ARM_CA_CERTIFICATE_FILE",
            "A PEM bundle of extra certificate authorities to trust (a corporate TLS proxy, the akspolicy emulator). `SSL_CERT_FILE` is honoured too.",
        ))
        .attribute(
            Attribute::number("max_retries")
                .optional()
                .description("How often a throttled or failed request is retried (default 3). Can also be set with `ARM_MAX_RETRIES`.")
                .validate_with(|v, path, diags| {
                    if !matches!(v.as_i64(), Some(0..=20)) {
                        diags.error_at(
                            path.clone(),
                            "Invalid max_retries",
                            "max_retries must be a whole number from 0 to 20.",
                        );
                    }
                }),
        )
        .attribute(string_arg(
            "partner_id",
            "ARM_PARTNER_ID",
            "A GUID identifying the partner, added to the User-Agent for Azure's usage attribution.",
        ))
        .attribute(bool_arg(
            "disable_correlation_request_id",
            "ARM_DISABLE_CORRELATION_REQUEST_ID",
            "Do not send one correlation request id for all requests of a Terraform run.",
        ))
}

/// A credential from the provider block. Its `Debug` shows only that it is set, as
/// [`ArmSettings`]' does, so the block's struct can be logged without leaking it.
#[derive(Clone, PartialEq, Default)]
pub struct Secret(String);

impl Secret {
    fn reveal(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<set>")
    }
}

impl Typed for Secret {
    fn ty() -> Type {
        Type::String
    }

    fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError> {
        String::from_value(value, path).map(Secret)
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

typed_object! {
    /// The provider block. Unknown arguments read as unset, so the `ARM_*` variables and the
    /// defaults fill them.
    pub struct ProviderConfig {
        pub subscription_id: Option<String>,
        pub tenant_id: Option<String>,
        pub client_id: Option<String>,
        pub client_id_file_path: Option<String>,
        pub client_secret: Option<Secret>,
        pub client_secret_file_path: Option<String>,
        pub client_certificate: Option<Secret>,
        pub client_certificate_path: Option<String>,
        pub client_certificate_password: Option<Secret>,
        pub use_oidc: Option<bool>,
        pub oidc_token: Option<Secret>,
        pub oidc_token_file_path: Option<String>,
        pub oidc_request_url: Option<String>,
        pub oidc_request_token: Option<Secret>,
        pub use_aks_workload_identity: Option<bool>,
        pub use_msi: Option<bool>,
        pub msi_endpoint: Option<String>,
        pub use_cli: Option<bool>,
        pub environment: Option<String>,
        pub metadata_host: Option<String>,
        pub resource_manager_endpoint: Option<String>,
        pub resource_manager_audience: Option<String>,
        pub authority_host: Option<String>,
        pub ca_certificate_file: Option<String>,
        /// As Terraform sent it: the attribute's validator reports anything but a whole number
        /// from 0 to 20.
        pub max_retries: Option<Number>,
        pub partner_id: Option<String>,
        pub disable_correlation_request_id: Option<bool>,
    }
}

/// Maps the provider block onto the ARM client's settings; unset arguments stay `None` so the
/// environment can fill them.
fn settings_from_config(config: &ProviderConfig) -> ArmSettings {
    let c = config.clone();
    ArmSettings {
        subscription_id: c.subscription_id,
        tenant_id: c.tenant_id,
        client_id: c.client_id,
        client_id_file_path: c.client_id_file_path,
        client_secret: c.client_secret.map(Secret::reveal),
        client_secret_file_path: c.client_secret_file_path,
        client_certificate: c.client_certificate.map(Secret::reveal),
        client_certificate_path: c.client_certificate_path,
        client_certificate_password: c.client_certificate_password.map(Secret::reveal),
        use_oidc: c.use_oidc,
        oidc_token: c.oidc_token.map(Secret::reveal),
        oidc_token_file_path: c.oidc_token_file_path,
        oidc_request_url: c.oidc_request_url,
        oidc_request_token: c.oidc_request_token.map(Secret::reveal),
        use_aks_workload_identity: c.use_aks_workload_identity,
        use_msi: c.use_msi,
        msi_endpoint: c.msi_endpoint,
        use_cli: c.use_cli,
        environment: c.environment,
        metadata_host: c.metadata_host,
        resource_manager_endpoint: c.resource_manager_endpoint,
        resource_manager_audience: c.resource_manager_audience,
        authority_host: c.authority_host,
        ca_certificate_file: c.ca_certificate_file,
        max_retries: c
            .max_retries
            .as_ref()
            .and_then(Number::as_i64)
            .map(|n| n as u32),
        partner_id: c.partner_id,
        disable_correlation_request_id: c.disable_correlation_request_id,
    }
}

#[async_trait]
impl Provider for AksPolicyProvider {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn stop(&self) {
        crate::policy::rego::cancel_evaluations();
    }

    fn schema(&self) -> Schema {
        Schema::new(provider_block())
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![
            Arc::new(AssignmentResource),
            Arc::new(ClusterAddonResource),
            Arc::new(ExemptionResource),
            Arc::new(DefinitionResource),
            Arc::new(InitiativeResource),
            Arc::new(KubernetesDefinitionResource),
            Arc::new(KubernetesMutationResource),
            Arc::new(RemediationResource),
        ]
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        vec![
            Arc::new(AdmissionReviewDataSource),
            Arc::new(BuiltinDefinitionDataSource),
            Arc::new(BuiltinInitiativeDataSource),
            Arc::new(ComplianceDataSource),
        ]
    }

    fn functions(&self) -> Vec<Arc<dyn Function>> {
        vec![Arc::new(EvaluateFunction)]
    }

    fn validate_config(&self, req: ValidateConfigRequest<'_>, resp: &mut ValidateConfigResponse) {
        let diags = &mut resp.diags;
        let Some(config) = decoded::<ProviderConfig>(req.config, diags) else {
            return;
        };
        for insecure in crate::arm::endpoint::insecure_endpoints(&settings_from_config(&config)) {
            diags.push(
                Diagnostic::error("Insecure endpoint", insecure.to_string())
                    .at(AttributePath::attr(insecure.attribute)),
            );
        }
        if let Some(env) = config.environment.as_deref() {
            if !["public", "usgovernment", "china", "custom"].contains(&env) {
                diags.push(
                    Diagnostic::error(
                        "Unknown environment",
                        format!(
                            "environment {env:?} is not one of public, usgovernment, china or \
                             custom."
                        ),
                    )
                    .at(AttributePath::attr("environment")),
                );
            }
        }
    }

    async fn configure(&self, req: ConfigureRequest, resp: &mut ConfigureResponse) {
        match configure(req).await {
            Ok(data) => resp.provider_data = Some(data),
            Err(d) => resp.diags.extend(d),
        }
    }
}

/// The ARM client from the provider block and the `ARM_*` variables.
async fn configure(req: ConfigureRequest) -> Result<ProviderData, Diagnostics> {
    if !req.config.is_wholly_known() {
        // Terraform configures with unknowns when the provider block references resources
        // not created yet. The client is built all the same from what is known (unknown
        // settings read as unset, so `ARM_*` variables and defaults fill them); a later
        // apply configures the provider again with the values known.
        log::debug!("provider configuration has unknown values; unknown settings read as unset");
    }
    let mut settings = settings_from_config(&ProviderConfig::decode(&req.config)?);
    if let Err(e) = settings.fill_from_env(&|k| std::env::var(k).ok()) {
        return Err(Diagnostic::error("Invalid ARM_* environment variable", e.to_string()).into());
    }
    let options = ClientOptions {
        terraform_version: Some(req.terraform_version.clone()),
        ..ClientOptions::default()
    };
    match ArmClient::with_options(settings, options).await {
        Ok(client) => Ok(Arc::new(Configured {
            client,
            snapshots: ListSnapshots::new(),
            plan_ledger: PlanLedger::default(),
        })),
        Err(e) => Err(arm_error_diagnostic("Invalid provider configuration", &e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{ValidateConfigRequest, ValidateConfigResponse};

    #[test]
    fn the_provider_block_debugs_without_its_secrets() {
        let mut config = Value::Object(Default::default());
        config.set("client_secret", Value::string("s3cr3t"));
        let config = ProviderConfig::decode(&config).unwrap();
        assert!(!format!("{config:?}").contains("s3cr3t"));
        assert_eq!(
            settings_from_config(&config).client_secret.as_deref(),
            Some("s3cr3t")
        );
    }

    #[test]
    fn provider_schema_is_valid() {
        provider_block().validate().unwrap();
    }

    #[test]
    fn credential_endpoints_over_plain_http_are_errors_at_their_attribute() {
        let mut config = Value::Object(Default::default());
        config.set(
            "metadata_host",
            Value::string("http://metadata.attacker.example"),
        );
        config.set("oidc_request_url", Value::string("https://token.example/"));
        config.set("msi_endpoint", Value::string("http://169.254.169.254/msi"));
        let mut diags = Diagnostics::new();
        let mut resp = ValidateConfigResponse::default();
        AksPolicyProvider.validate_config(ValidateConfigRequest { config: &config }, &mut resp);
        diags.extend(resp.diags);
        let errors: Vec<_> = diags
            .0
            .iter()
            .filter(|d| d.severity == crate::framework::Severity::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{:?}", diags.0);
        assert_eq!(
            errors[0].attribute,
            Some(AttributePath::attr("metadata_host"))
        );
        assert!(
            errors[0].detail.contains("https://"),
            "{}",
            errors[0].detail
        );
    }
}
