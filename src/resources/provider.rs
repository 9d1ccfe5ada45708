//! The `akspolicy` provider: its configuration block and the list of resources and data sources.
//!
//! Every argument can also come from the `ARM_*` environment variable azurerm and azapi users
//! already set; an argument in the block wins over the variable.

use std::sync::Arc;

use async_trait::async_trait;

use crate::arm::{ArmClient, ArmSettings, ClientOptions, ListSnapshots};
use crate::framework::{
    Attribute, AttributePath, Block, ConfigureRequest, ConfigureResponse, DataSource, Diagnostic,
    Diagnostics, Function, Provider, ProviderData, Resource, Schema, ValidateConfigRequest,
    ValidateConfigResponse, Value,
};

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

/// Maps the provider block onto the ARM client's settings; unset arguments stay `None` so the
/// environment can fill them.
fn settings_from_config(config: &Value) -> ArmSettings {
    let s = |name: &str| config.get(name).as_str().map(str::to_string);
    let b = |name: &str| config.get(name).as_bool();
    ArmSettings {
        subscription_id: s("subscription_id"),
        tenant_id: s("tenant_id"),
        client_id: s("client_id"),
        client_id_file_path: s("client_id_file_path"),
        client_secret: s("client_secret"),
        client_secret_file_path: s("client_secret_file_path"),
        client_certificate: s("client_certificate"),
        client_certificate_path: s("client_certificate_path"),
        client_certificate_password: s("client_certificate_password"),
        use_oidc: b("use_oidc"),
        oidc_token: s("oidc_token"),
        oidc_token_file_path: s("oidc_token_file_path"),
        oidc_request_url: s("oidc_request_url"),
        oidc_request_token: s("oidc_request_token"),
        use_aks_workload_identity: b("use_aks_workload_identity"),
        use_msi: b("use_msi"),
        msi_endpoint: s("msi_endpoint"),
        use_cli: b("use_cli"),
        environment: s("environment"),
        metadata_host: s("metadata_host"),
        resource_manager_endpoint: s("resource_manager_endpoint"),
        resource_manager_audience: s("resource_manager_audience"),
        authority_host: s("authority_host"),
        ca_certificate_file: s("ca_certificate_file"),
        max_retries: config.get("max_retries").as_i64().map(|n| n as u32),
        partner_id: s("partner_id"),
        disable_correlation_request_id: b("disable_correlation_request_id"),
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
        let (config, diags) = (req.config, &mut resp.diags);
        for insecure in crate::arm::endpoint::insecure_endpoints(&settings_from_config(config)) {
            diags.push(
                Diagnostic::error("Insecure endpoint", insecure.to_string())
                    .at(AttributePath::attr(insecure.attribute)),
            );
        }
        if let Some(env) = config.get("environment").as_str() {
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
    let mut settings = settings_from_config(&req.config);
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
