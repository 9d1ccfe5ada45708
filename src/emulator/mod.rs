//! `emulator` layer: a local HTTPS stand-in for Azure Resource Manager and the Entra ID token
//! endpoint, used by the provider's acceptance tests and demos. It shares only `policy` with
//! the rest of the crate.
//!
//! # Routes (one TLS listener serves all of them)
//!
//! | path | auth | notes |
//! |---|---|---|
//! | `GET /metadata/endpoints?api-version=2022-09-01\|2019-05-01\|2015-01-01` | none | cloud metadata (object, array, Azure Stack object) |
//! | `POST /{tenant}/oauth2/v2.0/token`, `POST /{tenant}/oauth2/token` | client secret or assertion | client-credentials grant, ES256 JWT for the ARM audiences; the service principal takes its secret, the certificate application an RFC 7523 assertion (`x5t`/`x5t#S256`, RS256/PS256 signature, `iss`=`sub`=client id, `aud` = this token endpoint, `exp`/`nbf` with 5 min skew), the federated application a token of the emulator's issuer (issuer, signature, subject, audience `api://AzureADTokenExchange`, expiry); refusals carry Entra ID's AADSTS codes |
//! | `GET /metadata/identity/oauth2/token` | `Metadata: true` | managed identity (IMDS protocol: `api-version`, `resource`, optional `client_id`/`object_id`): a token for the tenant's one user-assigned identity; env.sh exports it as `AKSPOLICY_EMULATOR_MSI_ENDPOINT` |
//! | `GET /oidc/.well-known/openid-configuration`, `GET /oidc/keys` | none | the emulator's own OIDC issuer (`https://host:port/oidc`, RS256), trusted by the federated application |
//! | `GET /{tenant}[/v2.0]/.well-known/openid-configuration` | none | OpenID discovery |
//! | `GET /{tenant}/discovery[/v2.0]/keys`, `GET /{tenant}/discovery/instance` | none | JWKS, MSAL instance discovery |
//! | `GET /subscriptions[/{id}]`, `GET /tenants` | bearer | `serve --subscriptions N` creates N |
//! | `/subscriptions/{s}/resourceGroups[/{rg}]` | bearer | PUT 201/200, GET, PATCH, HEAD, DELETE 202 + Location (removes everything below at once), list; PUT/PATCH 403 `RequestDisallowedByPolicy` when an `All`-mode Deny matches |
//! | `/subscriptions/{s}/operationresults/{id}` | bearer | resource group delete Location: 202 until the operation time is up, then 200 |
//! | `/providers/Microsoft.Management/managementGroups[/{mg}[/subscriptions/{s}]]` | bearer | PUT 202 + Azure-AsyncOperation/Location with `details.parent.id`; subscription placement; the tenant root group always exists |
//! | `/providers/Microsoft.Management/operationResults/create/managementGroups/{mg}` | bearer | management group create status: 202 `Running`, then 200 `Succeeded` with the group |
//! | `{scope}/providers/Microsoft.Authorization/policyDefinitions[/{name}]` | bearer | tenant (built-in, read-only), MG, subscription; PUT 201 with Azure's validation; `$filter` |
//! | `{scope}/providers/Microsoft.Authorization/policySetDefinitions[/{name}]` | bearer | PUT 201/200; members must exist and be visible |
//! | `{scope}/providers/Microsoft.Authorization/policy[Set]Definitions/{name}/versions[/{x.y.z}]` | bearer | api-version 2023-04-01+; GET/list, PUT 201/200, DELETE 200/204; the definition shows its newest version and lists all in `versions` |
//! | `POST {scope}/providers/Microsoft.Authorization/listPolicy[Set]DefinitionVersions` | bearer | every version at the scope (built-ins at tenant scope) |
//! | `{scope}/providers/Microsoft.Authorization/policyAssignments[/{name}]` | bearer | any scope; PUT 201, PATCH, DELETE 200+body/204; `atScope()`, `atExactScope()`, `policyDefinitionId eq` |
//! | `{scope}/providers/Microsoft.Authorization/policyExemptions[/{name}]` | bearer | preview api-versions; `excludeExpired()`, `policyAssignmentId eq`; `policyDefinitionReferenceIds` must be members of the assigned initiative |
//! | `.../resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters[/{name}]` | bearer | PUT 201/200 and PATCH tags 200 + Azure-AsyncOperation, DELETE 202 + Location, eTag preconditions, 409 while busy; enforced Modify operations applied to a PUT; PUT/PATCH 403 `RequestDisallowedByPolicy` + `PolicyViolation` when an ARM-mode Deny matches |
//! | `POST .../managedClusters/{name}/abort` | bearer | 204; the running operation and the cluster end `Canceled`; 409 `OperationNotAllowed` when nothing runs |
//! | `/subscriptions/{s}/providers/Microsoft.ContainerService/locations/{l}/operations[results]/{id}` | bearer | operation status / Location polling |
//! | `{scope}/providers/Microsoft.PolicyInsights/remediations[/{name}[/cancel\|/listDeployments]]` | bearer | Accepted → Evaluating by time, then each resource remediated as the assignment's identity (DINE: its `deployment` through `deploy`; Modify: its operations), `AuthorizationFailed` without the roles; Succeeded/Failed by `failureThreshold` |
//! | `{scope}/providers/Microsoft.Authorization/roleAssignments[/{guid}]` | bearer | any scope; PUT 201, GET, DELETE 200+body/204, list (`atScope()`, `principalId eq`, `assignedTo()`); 409 `RoleAssignmentExists`, `PrincipalNotFound` (see `rbac`) |
//! | `{scope}/providers/Microsoft.Authorization/roleDefinitions[/{guid}]` | bearer | Azure's built-in roles from `rbac::BUILTIN_ROLES`; `roleName eq` |
//! | `/subscriptions/{s}[/resourceGroups/{rg}]/providers/Microsoft.Resources/deployments[/{name}[/operationStatuses/{id}]]` | bearer | PUT 201 + Azure-AsyncOperation, template run by `deploy` (partial engine, `policy::arm_template`); 400 `InvalidTemplate` up front; `Running` then `Succeeded`/`Failed` + `DeploymentFailed` |
//! | `{scope}/providers/Microsoft.PolicyInsights/policyStates/latest/{triggerEvaluation\|summarize\|queryResults}` | bearer | trigger 202 + Location to `asyncOperationResults/{id}`; `@odata.nextLink` paging |
//! | `POST {scope}/providers/Microsoft.PolicyInsights/policyEvents/default/queryResults` | bearer | events recorded by `triggerEvaluation` (non-compliant results) and by admission (deny/audit), newest first; `$filter`, `$top`, `@odata.nextLink` |
//! | `GET /providers/Microsoft.Management/managementGroups/{mg}/descendants` | bearer | every management group and subscription below `mg`, at any depth |
//! | `GET /_templates/{path}` | none | the public template store's stand-in (`https://store.policy.core.windows.net/{path}`): the ConstraintTemplates the emulator's Gatekeeper resolves for that path; env.sh exports it as `AKSPOLICY_TEMPLATE_BASE_URL` |
//! | `POST /_emulator/admission{clusterId}`, `GET /_emulator/admission{clusterId}` | bearer | the cluster's Gatekeeper: AdmissionReview in/out (validating webhook), or its constraints, admitted objects and audit, see `gatekeeper` |
//! | `GET\|POST /_emulator/faults`, `GET /_emulator/metrics`, `GET /_emulator/state`, `POST /_emulator/reset` | bearer | fault injection (incl. `token_lifetime_s`) and observability, see [`FaultProfile`] |
//!
//! Long-running operations are timers stored with the resource and settled on the next read,
//! so they survive restarts and need no background tasks. Compliance for policy states comes
//! from `compliance`: Kubernetes-mode definitions by auditing the objects each cluster admitted
//! (`gatekeeper`), ARM-mode (`All`/`Indexed`) definitions by evaluating their rules against the
//! resource (`arm_policy` over `policy::arm_rule`; aliases are the table in
//! `src/policy/arm_rule/alias.rs`); exempted resources are reported `Exempt`. No definition is
//! known by id. An assignment takes effect (Deny, states) `policy_evaluation_ms` (fault profile,
//! default 0) after it was written, with no trigger needed.
//!
//! `{tenant}` is the emulator's tenant id or one of `organizations`, `common`, `adfs`,
//! `consumers`. ARM routes need `api-version` (checked per resource type), match namespaces,
//! types and keywords case-insensitively, answer errors in ARM's `{"error": {...}}` shape and
//! always send `x-ms-request-id`, `x-ms-correlation-request-id` and a rate-limit header.
//! New resource types are added as a row in `routes::arm::RESOURCE_TYPES`.
//!
//! # State directory
//!
//! | file | content |
//! |---|---|
//! | `state.redb` | redb database: table `resources` (lower-cased ARM id → body + etag + timestamps), table `settings` (tenant, service principal, default subscription, the further identities' ids and PFX password) |
//! | `ca.pem`, `ca-key.pem` | the emulator's CA (P-256), made on first start |
//! | `server.pem`, `server-key.pem` | server certificate for localhost, 127.0.0.1, ::1 |
//! | `ca-bundle.pem` | system roots + `ca.pem`, for `SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE` |
//! | `token-signing-key.p8` | ES256 key that signs access tokens |
//! | `client-cert.pem`, `client-cert.pfx` | the certificate application's RSA key and self-signed certificate (PEM: certificate + PKCS#8 key; PFX: under `AKSPOLICY_EMULATOR_CERT_PASSWORD`) |
//! | `oidc-issuer-key.p8`, `oidc-token.jwt` | the OIDC issuer's RSA key; a token for the federated credential, rewritten at every start (valid 24 h) |
//! | `emulator.json`, `env.sh` | the ready information of the last start |
//!
//! Built-in definitions are not stored; they are served from the embedded catalogue or from
//! the `--builtins` directory on every start.

mod arm_policy;
mod assertion;
mod catalogue;
pub mod client;
mod compliance;
mod deploy;
mod error;
mod events;
pub mod faults;
mod files;
mod gatekeeper;
mod http;
mod identities;
mod observe;
mod rbac;
mod routes;
mod state;
pub mod store;
mod tls;
mod token;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::EmulatorError;
pub use faults::{FaultPatch, FaultProfile};
pub use http::ConnectionLimits;
pub use store::{Store, StoreError, StoredResource};

use catalogue::Catalogue;
use state::{AppState, Identity, IdentityOverrides};

const DB_FILE: &str = "state.redb";
const ENV_FILE: &str = "env.sh";
/// Enough for a landing zone; a tenant of the emulator is one process's memory.
const MAX_SUBSCRIPTIONS: usize = 1000;
const INFO_FILE: &str = "emulator.json";

/// How the emulator should start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for the database, certificates and ready files; created if missing.
    pub state_dir: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Azure/azure-policy style directory of built-ins; `None` serves the embedded catalogue.
    pub builtins_dir: Option<PathBuf>,
    /// GUID of the default subscription (generated and persisted when `None`).
    pub subscription_id: Option<String>,
    /// How many subscriptions the tenant has (at least 1; more are generated and persisted).
    pub subscriptions: usize,
    /// GUID of the tenant (generated and persisted when `None`).
    pub tenant_id: Option<String>,
    /// Client id of the service principal (generated and persisted when `None`).
    pub client_id: Option<String>,
    /// Client secret of the service principal (generated and persisted when `None`).
    pub client_secret: Option<String>,
    /// Fault injection at start (changeable at runtime through `/_emulator/faults`).
    pub faults: FaultProfile,
    /// Gatekeeper templates for `PublicURL` definitions, keyed by URL path
    /// (`kubernetes/<name>/v<N>/template.yaml`); `None` uses the project's own templates.
    pub templates_dir: Option<PathBuf>,
    /// Timeouts and the connection cap.
    pub limits: ConnectionLimits,
}

impl Config {
    /// Defaults: listen on `127.0.0.1:0`, embedded catalogue, generated identity.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            builtins_dir: None,
            subscription_id: None,
            subscriptions: 1,
            tenant_id: None,
            client_id: None,
            client_secret: None,
            faults: FaultProfile::default(),
            templates_dir: None,
            limits: ConnectionLimits::default(),
        }
    }
}

/// What a client needs to reach the emulator; printed as one JSON line when ready and
/// written to `emulator.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyInfo {
    /// `https://127.0.0.1:PORT/`
    pub arm_endpoint: String,
    /// Authority host for token requests (same origin as ARM).
    pub authority_host: String,
    /// `host:port` for `ARM_METADATA_HOSTNAME`.
    pub metadata_host: String,
    pub tenant_id: String,
    pub subscription_id: String,
    /// Every subscription, the default one (`subscription_id`) first.
    #[serde(default)]
    pub subscription_ids: Vec<String>,
    pub client_id: String,
    pub client_secret: String,
    /// The emulator CA alone.
    pub ca_cert: PathBuf,
    /// System roots plus the emulator CA.
    pub ca_bundle: PathBuf,
    pub env_file: PathBuf,
    pub pid: u32,
    /// Client id of the application whose credential is a certificate.
    #[serde(default)]
    pub certificate_client_id: String,
    /// Its certificate and key as PKCS#12, under `certificate_password`.
    #[serde(default)]
    pub certificate_pfx: PathBuf,
    /// Its certificate and unencrypted PKCS#8 key as PEM.
    #[serde(default)]
    pub certificate_pem: PathBuf,
    #[serde(default)]
    pub certificate_password: String,
    /// Client id of the application with a federated credential trusting the emulator's issuer.
    #[serde(default)]
    pub oidc_client_id: String,
    /// A token of that issuer for that credential (rewritten at every start).
    #[serde(default)]
    pub oidc_token_file: PathBuf,
    /// The managed identity endpoint (IMDS protocol).
    #[serde(default)]
    pub msi_endpoint: String,
    /// Client id of the user-assigned managed identity behind it.
    #[serde(default)]
    pub msi_client_id: String,
}

/// A started emulator. Dropping it without [`RunningEmulator::shutdown`] leaves the server
/// running until the runtime ends.
pub struct RunningEmulator {
    info: ReadyInfo,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    state: Arc<AppState>,
}

impl RunningEmulator {
    /// Connection details.
    pub fn info(&self) -> &ReadyInfo {
        &self.info
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish (bounded), and closes the database.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.server.await {
            log::warn!("server task ended abnormally: {e}");
        }
        // HTTP/2 stream tasks may hold the state for a moment after their connection closed;
        // wait for them so the database file is released when this returns (a restart in the
        // same process would otherwise find it still open).
        let mut state = self.state;
        for _ in 0..500 {
            match Arc::try_unwrap(state) {
                Ok(owned) => {
                    drop(owned);
                    log::info!("emulator stopped");
                    return;
                }
                Err(shared) => {
                    state = shared;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        log::warn!("emulator state still referenced after shutdown");
    }
}

/// Starts the emulator: prepares the state directory, binds, writes `env.sh` and
/// `emulator.json`, and serves in a background task.
pub async fn start(config: Config) -> Result<RunningEmulator, EmulatorError> {
    for (flag, value) in [
        ("subscription id", &config.subscription_id),
        ("tenant id", &config.tenant_id),
        ("client id", &config.client_id),
    ] {
        if let Some(v) = value {
            if uuid::Uuid::parse_str(v).is_err() {
                return Err(EmulatorError::InvalidConfig(format!(
                    "{flag} '{v}' is not a GUID"
                )));
            }
        }
    }
    if !(1..=MAX_SUBSCRIPTIONS).contains(&config.subscriptions) {
        return Err(EmulatorError::InvalidConfig(format!(
            "the number of subscriptions must be from 1 to {MAX_SUBSCRIPTIONS}, not {}",
            config.subscriptions
        )));
    }
    if config.client_secret.as_deref() == Some("") {
        return Err(EmulatorError::InvalidConfig(
            "client secret must not be empty".to_string(),
        ));
    }
    let dir = &config.state_dir;
    create_private_dir(dir)?;
    // Absolute paths in env.sh/emulator.json keep working from any working directory.
    let dir = std::fs::canonicalize(dir).map_err(|source| EmulatorError::Io {
        path: dir.clone(),
        source,
    })?;

    let store = Store::open(&dir.join(DB_FILE))?;
    let identity = Identity::load_or_create(
        &store,
        &IdentityOverrides {
            tenant_id: config.tenant_id.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            subscription_id: config.subscription_id.clone(),
            subscriptions: config.subscriptions,
        },
    )?;
    let tls = tls::load_or_create(&dir)?;
    let signer = token::TokenSigner::load_or_create(&dir)?;
    let catalogue = match &config.builtins_dir {
        Some(builtins) => Catalogue::from_dir(builtins)?,
        None => Catalogue::embedded()?,
    };

    if let Some(warning) = listen_warning(config.listen) {
        log::warn!("{warning}");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let host = url_host(local_addr);
    let base = format!("https://{host}");
    let identities =
        identities::Identities::load_or_create(&store, &dir, &identity.tenant_id, &base)?;

    let info = ReadyInfo {
        arm_endpoint: format!("{base}/"),
        authority_host: format!("{base}/"),
        metadata_host: host,
        tenant_id: identity.tenant_id.clone(),
        subscription_id: identity.subscription_id.clone(),
        subscription_ids: identity.subscription_ids(),
        client_id: identity.client_id.clone(),
        client_secret: identity.client_secret.clone(),
        ca_cert: tls.ca_cert_path.clone(),
        ca_bundle: tls.ca_bundle_path.clone(),
        env_file: dir.join(ENV_FILE),
        pid: std::process::id(),
        certificate_client_id: identities.certificate.client_id.clone(),
        certificate_pfx: identities.certificate.pfx_path.clone(),
        certificate_pem: identities.certificate.pem_path.clone(),
        certificate_password: identities.certificate.password.clone(),
        oidc_client_id: identities.federated.client_id.clone(),
        oidc_token_file: identities.issuer.token_path.clone(),
        msi_endpoint: format!("{base}{}", routes::identity::IMDS_TOKEN_PATH),
        msi_client_id: identities.managed.client_id.clone(),
    };
    write_ready_files(&dir, &info)?;

    let state = Arc::new(AppState::new(
        store,
        signer,
        identity,
        identities,
        catalogue,
        base,
        config.faults.clone(),
        gatekeeper::Templates {
            dir: config.templates_dir.clone(),
        },
    ));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config);
    let server = tokio::spawn(http::serve(
        listener,
        acceptor,
        state.clone(),
        config.limits,
        shutdown_rx,
    ));
    log::info!("emulator listening on {}", info.arm_endpoint);
    Ok(RunningEmulator {
        info,
        local_addr,
        shutdown,
        server,
        state,
    })
}

/// `host:port` for URLs; wildcard binds are advertised as loopback.
fn url_host(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{}", addr.port()),
        IpAddr::V6(v6) => format!("[{v6}]:{}", addr.port()),
    }
}

/// What to tell the user when the emulator would be reachable from other machines.
fn listen_warning(listen: SocketAddr) -> Option<String> {
    (!listen.ip().is_loopback()).then(|| {
        format!(
            "--listen {listen} is not a loopback address: other machines can reach this \
             emulator. It is a test double; its client secret is printed on stdout and its CA \
             is trusted only for localhost, so clients elsewhere cannot verify it anyway. \
             Prefer 127.0.0.1."
        )
    })
}

/// Creates the state directory (and parents) and makes it enterable by its owner only: it
/// holds the CA key, the token signing key and the client secret.
fn create_private_dir(dir: &Path) -> Result<(), EmulatorError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| EmulatorError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        log::info!(
            "state directory {} was accessible to other users (mode {:o}); restricting it to 0700",
            dir.display(),
            mode & 0o777
        );
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

fn write_ready_files(dir: &Path, info: &ReadyInfo) -> Result<(), EmulatorError> {
    let json = serde_json::to_string_pretty(info).unwrap_or_default();
    // Both files carry the client secret.
    files::write_private(&dir.join(INFO_FILE), json.as_bytes())?;
    let bundle = info.ca_bundle.display().to_string();
    let vars = [
        ("ARM_ENVIRONMENT", "custom".to_string()),
        ("ARM_RESOURCE_MANAGER_ENDPOINT", info.arm_endpoint.clone()),
        (
            "ARM_RESOURCE_MANAGER_AUDIENCE",
            "https://management.core.windows.net/".to_string(),
        ),
        (
            "ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST",
            info.authority_host.clone(),
        ),
        ("ARM_METADATA_HOSTNAME", info.metadata_host.clone()),
        ("ARM_TENANT_ID", info.tenant_id.clone()),
        ("ARM_SUBSCRIPTION_ID", info.subscription_id.clone()),
        (
            "AKSPOLICY_EMULATOR_SUBSCRIPTION_IDS",
            info.subscription_ids.join(" "),
        ),
        ("ARM_CLIENT_ID", info.client_id.clone()),
        // The provider downloads PublicURL templates from here instead of the public store.
        (
            "AKSPOLICY_TEMPLATE_BASE_URL",
            format!("{}/_templates", info.arm_endpoint.trim_end_matches('/')),
        ),
        ("ARM_CLIENT_SECRET", info.client_secret.clone()),
        (
            "AKSPOLICY_EMULATOR_CERT_CLIENT_ID",
            info.certificate_client_id.clone(),
        ),
        (
            "AKSPOLICY_EMULATOR_CERT_PFX",
            info.certificate_pfx.display().to_string(),
        ),
        (
            "AKSPOLICY_EMULATOR_CERT_PEM",
            info.certificate_pem.display().to_string(),
        ),
        (
            "AKSPOLICY_EMULATOR_CERT_PASSWORD",
            info.certificate_password.clone(),
        ),
        (
            "AKSPOLICY_EMULATOR_OIDC_CLIENT_ID",
            info.oidc_client_id.clone(),
        ),
        (
            "AKSPOLICY_EMULATOR_OIDC_TOKEN_FILE",
            info.oidc_token_file.display().to_string(),
        ),
        ("AKSPOLICY_EMULATOR_MSI_ENDPOINT", info.msi_endpoint.clone()),
        (
            "AKSPOLICY_EMULATOR_MSI_CLIENT_ID",
            info.msi_client_id.clone(),
        ),
        ("SSL_CERT_FILE", bundle.clone()),
        ("REQUESTS_CA_BUNDLE", bundle.clone()),
        // Distribution curl builds pin their own CA file and ignore SSL_CERT_FILE.
        ("CURL_CA_BUNDLE", bundle),
    ];
    let mut env = String::from(
        "# Written by akspolicy-emulator; source it to point clients at the emulator.\n",
    );
    for (name, value) in vars {
        env.push_str(&format!("export {name}={}\n", shell_quote(&value)));
    }
    files::write_private(&dir.join(ENV_FILE), env.as_bytes())
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}
