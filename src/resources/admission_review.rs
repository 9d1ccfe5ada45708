//! Data source `akspolicy_admission_review`: would this AKS cluster's policy add-on admit these
//! manifests? It reads what the add-on would install (the assignments that apply at the cluster,
//! initiatives expanded, notScopes, exemptions, enforcement mode, parameters, effects), builds
//! the Constraints and mutators with [`crate::policy::addon`] and puts every document through
//! the shared webhooks ([`crate::policy::admission::admit`]: mutation, then validation) — before
//! any apply reaches the cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::{json, Value as Json};

use crate::arm::api_version;
use crate::arm::{ArmClient, ArmError, ResourceId, Scope};
use crate::framework::{
    Attribute, AttributePath, Block, CallContext, DataSource, Diagnostic, Diagnostics,
    ReadDataRequest, ReadDataResponse, Schema, Type, ValidateConfigRequest, ValidateConfigResponse,
    Value,
};
use crate::policy::addon::{self, DefinitionBodies, Exemption};
use crate::policy::admission;
use crate::policy::constraint::{
    self, url_path, ActiveConstraint, Constraint, TemplateLookup, AKS_EXEMPT_NAMESPACES,
};
use crate::policy::constraint_template::{parse_yaml_documents, to_yaml, CompileCache};
use crate::policy::mutation::{MutationSourceError, Mutator};
use crate::policy::rego::{self, is_cluster_scoped, CompiledRego, EvalOptions};
use crate::policy::TemplateInfo;
use crate::resources::shared::decode::decoded;

use crate::framework::typed::Typed;
use crate::typed_object;

use super::provider::Configured;
use super::shared::errors::arm_error_diagnostic;
use super::shared::schema::typed_schema;
use crate::policy::definition_body::POLICY_ASSIGNMENT_TYPE;
use crate::policy::kubernetes::MANAGED_CLUSTERS;

/// Environment variable that redirects template URLs to another host (keeping their path), e.g.
/// a mirror of the public store in an air-gapped network, or the emulator's `/_templates`.
pub const TEMPLATE_BASE_URL_ENV: &str = "AKSPOLICY_TEMPLATE_BASE_URL";
/// Largest template fetched from a URL.
const MAX_TEMPLATE_BYTES: usize = 2 * 1024 * 1024;
/// Largest `manifests` value reviewed.
const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

pub struct AdmissionReviewDataSource;

typed_object! {
    /// The review of one document.
    pub struct ReviewResult {
        pub kind: String,
        pub namespace: String,
        pub name: String,
        pub allowed: bool,
        pub messages: Vec<String>,
        pub warnings: Vec<String>,
        pub mutations: Vec<String>,
        /// `None` when no mutator changed the document.
        pub mutated_manifest: Option<String>,
    }
}

typed_object! {
    /// The data source's configuration or state; `allowed` and `results` are set only in a
    /// state.
    pub struct AdmissionReview {
        pub cluster_id: Option<String>,
        pub manifests: Option<String>,
        pub allowed: Option<bool>,
        pub results: Vec<ReviewResult>,
    }
}

fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(format!(
                "Answers at plan time whether an AKS cluster's Azure Policy add-on would admit \
                 Kubernetes manifests. It reads the policy assignments that apply at the cluster \
                 (at the cluster, its resource group, subscription and management groups), expands \
                 initiatives, applies `notScopes`, exemptions, `enforcementMode`, parameters and \
                 effect overrides, builds the Gatekeeper Constraints the add-on would install and \
                 reviews each document as the cluster's admission webhooks would: assigned mutation \
                 policies first, then validation of the mutated document (for policies \
                 whose `source` is `All` or `Generated`, a workload also as the Pods it would \
                 create). Templates named by `PublicURL` are downloaded once per \
                 provider process with the provider's TLS settings (`ca_certificate_file`); set \
                 `{TEMPLATE_BASE_URL_ENV}` to fetch them from another host with the same paths \
                 (a mirror, or the emulator's `https://<emulator>/_templates`). Objects already in \
                 the cluster are not known: namespaceSelectors and referential policies see only \
                 the documents given here."
            ))
            .attribute(
                Attribute::string("cluster_id")
                    .required()
                    .description("The AKS cluster's ARM ID (`/subscriptions/.../resourceGroups/.../providers/Microsoft.ContainerService/managedClusters/<name>`)."),
            )
            .attribute(
                Attribute::string("manifests")
                    .required()
                    .description("Kubernetes manifests as multi-document YAML (`---` between documents), e.g. `file(\"app.yaml\")` or `yamlencode(...)`. Namespaced objects without a namespace are reviewed in `default`, as `kubectl apply` would create them."),
            )
            .attribute(
                Attribute::bool("allowed")
                    .computed()
                    .description("True when no document would be denied."),
            )
            .attribute(
                Attribute::new("results", Type::list(ReviewResult::ty()))
                    .computed()
                    .description("One entry per document, in order: `kind`, `namespace` (empty for cluster-scoped kinds), `name`, `allowed`, `messages` (the denials, as Gatekeeper reports them: `[constraint] message`), `warnings` (violations of policies whose effect only warns), `mutations` (the mutators of assigned mutation policies that changed the document, as `Kind/name`, in the order Gatekeeper applies them) and `mutated_manifest` (the document as YAML after those mutators, which is what validation reviews and the cluster stores; null when no mutator changed it). Documents whose kind no policy matches are allowed with no messages."),
            ),
    )
}

#[async_trait]
impl DataSource for AdmissionReviewDataSource {
    typed_schema!("akspolicy_admission_review", schema(), AdmissionReview);

    fn validate_config(&self, req: ValidateConfigRequest<'_>, resp: &mut ValidateConfigResponse) {
        let diags = &mut resp.diags;
        // Unknown values read as `None`: they are checked once known, at read.
        let Some(config) = decoded::<AdmissionReview>(req.config, diags) else {
            return;
        };
        if let Some(id) = config.cluster_id.as_deref() {
            if let Err(e) = cluster_resource_id(id) {
                diags.error_at(AttributePath::attr("cluster_id"), "Invalid cluster_id", e);
            }
        }
        if let Some(text) = config.manifests.as_deref() {
            if let Err(e) = parse_manifests(text) {
                diags.error_at(AttributePath::attr("manifests"), "Invalid manifests", e);
            }
        }
    }

    async fn read(&self, ctx: &CallContext, req: ReadDataRequest<'_>, resp: &mut ReadDataResponse) {
        resp.state = read_admission_review(ctx, req.config, &mut resp.diags).await;
    }
}

async fn read_admission_review(
    ctx: &CallContext,
    config: &Value,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let config = decoded::<AdmissionReview>(config, diags)?;
    let configured = Configured::from_context(ctx, diags)?;
    let cluster_id = config.cluster_id.as_deref().unwrap_or_default();
    let documents = match parse_manifests(config.manifests.as_deref().unwrap_or("")) {
        Ok(d) => d,
        Err(e) => {
            diags.error_at(AttributePath::attr("manifests"), "Invalid manifests", e);
            return None;
        }
    };
    let client = &configured.client;
    let installed = match installed_constraints(client, cluster_id).await {
        Ok(i) => i,
        Err(ReviewError::Arm(summary, e)) => {
            diags.push(arm_error_diagnostic(&summary, &e).at(AttributePath::attr("cluster_id")));
            return None;
        }
        Err(ReviewError::NotACluster(detail)) => {
            diags.error_at(
                AttributePath::attr("cluster_id"),
                "Cluster not found",
                detail,
            );
            return None;
        }
    };
    for problem in &installed.problems {
        diags.push(Diagnostic::warning(
            "A policy could not be evaluated",
            format!(
                "{problem}. The review leaves this policy out, as the add-on would until its \
                 template is available."
            ),
        ));
    }
    if !installed.addon_enabled {
        diags.push(Diagnostic::warning(
            "Azure Policy add-on is off",
            format!(
                "The cluster {cluster_id} does not run the Azure Policy add-on, so it admits \
                 every document; enable it (akspolicy_cluster_addon) for the assignments to \
                 take effect."
            ),
        ));
    }
    let active: Vec<ActiveConstraint<'_>> = installed
        .constraints
        .iter()
        .map(|(c, r)| ActiveConstraint {
            constraint: c,
            rego: r,
        })
        .collect();
    let inventory = rego::inventory_from(&documents);
    let mut results = Vec::new();
    let mut all_allowed = true;
    for document in &documents {
        let admission = admission::admit(
            &rego::review_for(document),
            &active,
            &installed.mutators,
            &inventory,
            &AKS_EXEMPT_NAMESPACES,
            &EvalOptions::default(),
        );
        if let Some(e) = &admission.mutation_error {
            diags.push(Diagnostic::warning(
                "Mutation failed",
                format!(
                    "{e}. Gatekeeper's mutating webhook fails open: the document is \
                     reviewed as written."
                ),
            ));
        }
        let decision = &admission.decision;
        for e in &decision.errors {
            diags.push(Diagnostic::warning(
                "Policy evaluation failed",
                format!("{e}. Gatekeeper fails open on such errors: the document is admitted."),
            ));
        }
        let text = |pointer: &str| {
            document
                .pointer(pointer)
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        all_allowed &= decision.allowed();
        results.push(ReviewResult {
            kind: text("/kind"),
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
            allowed: decision.allowed(),
            messages: decision.denials(),
            warnings: decision.warnings(),
            mutations: admission.applied.clone(),
            mutated_manifest: match admission.mutated.as_ref().map(to_yaml) {
                Some(Ok(yaml)) => Some(yaml),
                _ => None,
            },
        });
    }
    Some(
        AdmissionReview {
            cluster_id: Some(cluster_id.to_string()),
            manifests: config.manifests.clone(),
            allowed: Some(all_allowed),
            results,
        }
        .to_value(),
    )
}

fn cluster_resource_id(id: &str) -> Result<ResourceId, String> {
    let parsed = ResourceId::parse(id).map_err(|e| {
        format!("{e}. Use the cluster's ARM ID, e.g. azurerm_kubernetes_cluster.<name>.id.")
    })?;
    if !parsed.is_type(MANAGED_CLUSTERS) {
        return Err(format!(
            "{id} is a {} ID, not an AKS cluster's ({MANAGED_CLUSTERS}).",
            parsed.resource_type()
        ));
    }
    Ok(parsed)
}

/// The documents of `manifests`, empty ones dropped, namespaced objects without a namespace put
/// in `default` (as `kubectl apply` does).
fn parse_manifests(text: &str) -> Result<Vec<Json>, String> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(format!(
            "manifests is {} bytes; at most {MAX_MANIFEST_BYTES} are reviewed. Split the review \
             into several data sources.",
            text.len()
        ));
    }
    let docs = parse_yaml_documents(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (index, mut doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let kind = doc.get("kind").and_then(Json::as_str).unwrap_or_default();
        if !doc.is_object() || kind.is_empty() {
            return Err(format!(
                "document {} is not a Kubernetes object (it needs `apiVersion`, `kind` and \
                 `metadata`).",
                index + 1
            ));
        }
        if !is_cluster_scoped(kind) && doc.pointer("/metadata/namespace").is_none() {
            if !doc["metadata"].is_object() {
                doc["metadata"] = json!({});
            }
            doc["metadata"]["namespace"] = json!("default");
        }
        out.push(doc);
    }
    Ok(out)
}

enum ReviewError {
    Arm(String, ArmError),
    NotACluster(String),
}

fn arm(summary: &str) -> impl Fn(ArmError) -> ReviewError + '_ {
    move |e| ReviewError::Arm(summary.to_string(), e)
}

/// What the add-on installs on a cluster.
struct Installed {
    addon_enabled: bool,
    constraints: Vec<(Constraint, Arc<CompiledRego>)>,
    mutators: Vec<Mutator>,
    problems: Vec<String>,
}

async fn installed_constraints(
    client: &ArmClient,
    cluster_id: &str,
) -> Result<Installed, ReviewError> {
    let cluster = client
        .get_optional::<Json>(cluster_id, api_version::MANAGED_CLUSTERS)
        .await
        .map_err(arm("Could not read the cluster"))?
        .ok_or_else(|| {
            ReviewError::NotACluster(format!(
                "The AKS cluster {cluster_id} does not exist (or this identity cannot read it)."
            ))
        })?;
    let mut installed = Installed {
        addon_enabled: addon_enabled(&cluster),
        constraints: Vec::new(),
        mutators: Vec::new(),
        problems: Vec::new(),
    };
    if !installed.addon_enabled {
        return Ok(installed);
    }
    let filter = [("$filter", "atScope()")];
    let assignments: Vec<Json> = client
        .list(
            &format!("{cluster_id}/providers/{POLICY_ASSIGNMENT_TYPE}"),
            api_version::POLICY,
            &filter,
        )
        .await
        .map_err(arm(
            "Could not list the policy assignments that apply to the cluster",
        ))?;
    let now = SystemTime::now();
    let exemptions: Vec<Exemption> = client
        .list::<Json>(
            &format!("{cluster_id}/providers/Microsoft.Authorization/policyExemptions"),
            api_version::POLICY_EXEMPTIONS,
            &filter,
        )
        .await
        .map_err(arm(
            "Could not list the policy exemptions that apply to the cluster",
        ))?
        .iter()
        .filter_map(|e| Exemption::from_properties(e.get("properties")?, now))
        .collect();
    let mut definitions = DefinitionBodies::default();
    let mut under_group: HashMap<String, bool> = HashMap::new();
    let mut members = Vec::new();
    for assignment in &assignments {
        let props = assignment.get("properties").unwrap_or(&Json::Null);
        let mut excluded = false;
        for ns in props
            .get("notScopes")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
        {
            excluded |= scope_covers(client, ns, cluster_id, &mut under_group).await?;
        }
        if excluded {
            continue;
        }
        let def_id = props
            .get("policyDefinitionId")
            .and_then(Json::as_str)
            .unwrap_or_default();
        fetch_definition(client, def_id, &mut definitions).await?;
        if addon::is_set_definition(def_id) {
            if let Some(set) = definitions.get(def_id).cloned() {
                for mid in addon::set_member_ids(&set) {
                    fetch_definition(client, &mid, &mut definitions).await?;
                }
            }
        }
        members.extend(addon::members(assignment, &definitions, &exemptions));
    }
    let mut templates = FetchedTemplates::default();
    for member in &members {
        let source = member
            .template_info()
            .or_else(|| member.properties.mutation_info());
        if let Some(TemplateInfo::PublicUrl(url) | TemplateInfo::ConstraintTemplateUrl(url)) =
            source
        {
            if let Err(e) = templates.fetch(client, &url).await {
                installed
                    .problems
                    .push(format!("{}: {e}", member.origin.definition_id));
            }
        }
    }
    for member in members.iter().filter(|m| m.is_mutation()) {
        match member.mutator(&templates) {
            Ok(Some(m)) => installed.mutators.push(m),
            Ok(None) => {}
            // A mutator that failed to download is already reported.
            Err(MutationSourceError::NotFound { .. }) => {}
            Err(e) => installed
                .problems
                .push(format!("{}: {e}", member.origin.definition_id)),
        }
    }
    for member in &members {
        let built = member.constraint(&templates).and_then(|c| match c {
            Some((constraint, template)) => CompileCache::process()
                .get(&template)
                .map(|r| Some((constraint, r)))
                .map_err(constraint::GatekeeperError::from),
            None => Ok(None),
        });
        match built {
            Ok(Some(c)) => installed.constraints.push(c),
            Ok(None) => {}
            // A template that failed to download is already reported.
            Err(constraint::GatekeeperError::TemplateNotFound { .. }) => {}
            Err(e) => installed
                .problems
                .push(format!("{}: {e}", member.origin.definition_id)),
        }
    }
    Ok(installed)
}

fn addon_enabled(cluster: &Json) -> bool {
    cluster
        .pointer("/properties/addonProfiles")
        .and_then(Json::as_object)
        .and_then(|a| {
            a.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("azurepolicy"))
        })
        .is_some_and(|(_, v)| v.get("enabled").and_then(Json::as_bool).unwrap_or(false))
}

async fn fetch_definition(
    client: &ArmClient,
    id: &str,
    definitions: &mut DefinitionBodies,
) -> Result<(), ReviewError> {
    if id.is_empty() || definitions.contains(id) {
        return Ok(());
    }
    // A definition deleted after assigning installs nothing, as on the cluster.
    if let Some(body) = client
        .get_optional::<Json>(id, api_version::POLICY)
        .await
        .map_err(arm("Could not read an assigned policy definition"))?
    {
        definitions.insert(id, body);
    }
    Ok(())
}

/// Whether `scope` (an assignment's notScope) contains the cluster. Resource, resource group and
/// subscription scopes are prefixes of the cluster's ID; a management group contains it when the
/// cluster's subscription is among its descendants.
async fn scope_covers(
    client: &ArmClient,
    scope: &str,
    cluster_id: &str,
    under_group: &mut HashMap<String, bool>,
) -> Result<bool, ReviewError> {
    let scope = scope.trim_end_matches('/');
    match Scope::parse(scope) {
        Ok(Scope::ManagementGroup(group)) => {
            let key = group.to_ascii_lowercase();
            if let Some(known) = under_group.get(&key) {
                return Ok(*known);
            }
            let subscription = Scope::parse(cluster_id)
                .ok()
                .and_then(|s| s.subscription_id().map(str::to_string))
                .unwrap_or_default();
            let descendants: Vec<Json> = client
                .list(
                    &format!(
                        "/providers/Microsoft.Management/managementGroups/{group}/descendants"
                    ),
                    api_version::MANAGEMENT_GROUPS,
                    &[],
                )
                .await
                .map_err(arm(
                    "Could not list a notScope management group's descendants",
                ))?;
            let inside = descendants.iter().any(|d| {
                let is_subscription = d
                    .get("type")
                    .and_then(Json::as_str)
                    .is_some_and(|t| t.to_ascii_lowercase().ends_with("/subscriptions"));
                is_subscription
                    && d.get("name")
                        .and_then(Json::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(&subscription))
            });
            under_group.insert(key, inside);
            Ok(inside)
        }
        Ok(Scope::Tenant) => Ok(true),
        _ => {
            let lower_scope = scope.to_ascii_lowercase();
            let lower_cluster = cluster_id.trim_end_matches('/').to_ascii_lowercase();
            Ok(lower_cluster == lower_scope
                || lower_cluster.starts_with(&format!("{lower_scope}/")))
        }
    }
}

/// Templates downloaded during one read, keyed by URL path as [`TemplateLookup`] asks.
#[derive(Default)]
struct FetchedTemplates {
    by_path: HashMap<String, String>,
}

impl TemplateLookup for FetchedTemplates {
    fn template_for_path(&self, path: &str) -> Option<String> {
        self.by_path.get(path).cloned()
    }
}

/// Templates by URL, per provider process: a template URL names one immutable version.
fn template_cache() -> &'static Mutex<HashMap<String, String>> {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

impl FetchedTemplates {
    async fn fetch(&mut self, client: &ArmClient, url: &str) -> Result<(), String> {
        let path = url_path(url);
        if self.by_path.contains_key(&path) {
            return Ok(());
        }
        let source = template_source(url, std::env::var(TEMPLATE_BASE_URL_ENV).ok().as_deref());
        let cached = lock(template_cache()).get(&source).cloned();
        let text = match cached {
            Some(t) => t,
            None => {
                let t = client
                    .fetch_public_text(&source, MAX_TEMPLATE_BYTES)
                    .await
                    .map_err(|e| format!("could not download its template {source}: {e}"))?;
                lock(template_cache()).insert(source, t.clone());
                t
            }
        };
        self.by_path.insert(path, text);
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Where to download a template URL from: the URL itself, or its path below `base`.
fn template_source(url: &str, base: Option<&str>) -> String {
    match base.map(str::trim).filter(|b| !b.is_empty()) {
        Some(base) => format!("{}/{}", base.trim_end_matches('/'), url_path(url)),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_base_url_keeps_the_path() {
        let url = "https://store.policy.core.windows.net/kubernetes/container-no-privilege/v2/template.yaml";
        assert_eq!(template_source(url, None), url);
        assert_eq!(
            template_source(url, Some("https://127.0.0.1:8443/_templates/")),
            "https://127.0.0.1:8443/_templates/kubernetes/container-no-privilege/v2/template.yaml"
        );
    }

    #[test]
    fn manifests_default_namespace_and_reject_non_objects() {
        let docs = parse_manifests(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n",
        )
        .expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["metadata"]["namespace"], json!("default"));
        assert!(docs[1]["metadata"].get("namespace").is_none());
        let err = parse_manifests("just text").expect_err("not an object");
        assert!(err.contains("document 1"), "{err}");
    }

    #[test]
    fn cluster_id_must_be_a_managed_cluster() {
        assert!(cluster_resource_id(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/c"
        )
        .is_ok());
        let err = cluster_resource_id(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a",
        )
        .expect_err("not a cluster");
        assert!(err.contains("managedClusters"), "{err}");
    }
}
