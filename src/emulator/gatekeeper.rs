//! The emulated AKS policy add-on + Gatekeeper of each cluster: which assignments become
//! constraints on a cluster, the admission webhook (`POST /_emulator/admission{clusterId}`),
//! the objects each cluster admitted, and the audit that feeds policy states.
//!
//! The semantics live in [`crate::policy::constraint`]; this module supplies the emulator's
//! assignments, exemptions, clusters, template directory and a compile cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::emulator::compliance::PolicyStateRow;
use crate::emulator::routes::arm::{
    policy_addon_enabled, resolve_visible, settle_cluster, stored_of_type, ErrorResponse, Scope,
};
use crate::emulator::state::AppState;
use crate::emulator::store::{resource_key, StoredResource};
use crate::policy::addon::{self, Exemption};
use crate::policy::constraint::{self as engine, ActiveConstraint, Constraint, TemplateLookup};
use crate::policy::json::{object_name, object_namespace};
use crate::policy::mutation::{self, Mutator};
use crate::policy::rego::{is_cluster_scoped, review_for, CompiledRego};

/// Our own templates for the built-ins of the embedded catalogue, keyed by store URL path.
const EMBEDDED_TEMPLATES: &[(&str, &str)] = &[
    (
        "kubernetes/container-no-privilege/v2/template.yaml",
        include_str!("templates/kubernetes/container-no-privilege/v2/template.yaml"),
    ),
    (
        "kubernetes/block-host-namespace/v2/template.yaml",
        include_str!("templates/kubernetes/block-host-namespace/v2/template.yaml"),
    ),
    (
        "kubernetes/container-allowed-images/v2/template.yaml",
        include_str!("templates/kubernetes/container-allowed-images/v2/template.yaml"),
    ),
    (
        "kubernetes/container-allowed-capabilities/v2/template.yaml",
        include_str!("templates/kubernetes/container-allowed-capabilities/v2/template.yaml"),
    ),
    (
        "kubernetes/container-no-privilege-escalation/v4/template.yaml",
        include_str!("templates/kubernetes/container-no-privilege-escalation/v4/template.yaml"),
    ),
    (
        "kubernetes/host-network-ports/v2/template.yaml",
        include_str!("templates/kubernetes/host-network-ports/v2/template.yaml"),
    ),
];

/// Our own mutators for the built-in mutation definitions, keyed by store URL path.
const EMBEDDED_MUTATORS: &[(&str, &str)] = &[(
    "kubernetes/mutate-run-as-user-pod/v1/mutation.yaml",
    include_str!("templates/kubernetes/mutate-run-as-user-pod/v1/mutation.yaml"),
)];

/// Where PublicURL templates come from: a directory keyed by URL path, else the embedded ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Templates {
    pub dir: Option<PathBuf>,
}

impl TemplateLookup for Templates {
    fn template_for_path(&self, path: &str) -> Option<String> {
        if let Some(dir) = &self.dir {
            // Only plain relative paths: a URL must not reach outside the directory.
            if !path.split('/').any(|s| s == ".." || s.is_empty()) {
                let candidates = [Some(dir.join(path)), strip_first(dir, path)];
                for file in candidates.iter().flatten() {
                    if let Ok(text) = std::fs::read_to_string(file) {
                        return Some(text);
                    }
                }
            }
        }
        EMBEDDED_TEMPLATES
            .iter()
            .chain(EMBEDDED_MUTATORS)
            .find(|(p, _)| *p == path)
            .map(|(_, t)| t.to_string())
    }
}

/// `kubernetes/x/v2/template.yaml` also found as `DIR/x/v2/template.yaml`.
fn strip_first(dir: &Path, path: &str) -> Option<PathBuf> {
    path.split_once('/').map(|(_, rest)| dir.join(rest))
}

/// The constraints installed on one cluster, with problems that kept some out.
#[derive(Default)]
pub(crate) struct ClusterConstraints {
    pub constraints: Vec<(Constraint, Arc<CompiledRego>)>,
    /// Mutators of the Mutate definitions assigned, as installed (narrowed by the definition).
    pub mutators: Vec<Mutator>,
    /// e.g. a template that is not available locally.
    pub problems: Vec<String>,
}

impl ClusterConstraints {
    fn active(&self) -> Vec<ActiveConstraint<'_>> {
        self.constraints
            .iter()
            .map(|(c, r)| ActiveConstraint {
                constraint: c,
                rego: r,
            })
            .collect()
    }
}

const ASSIGNMENTS: &str = "microsoft.authorization/policyassignments";
const EXEMPTIONS: &str = "microsoft.authorization/policyexemptions";

/// Constraints the add-on would install on `cluster`: every Kubernetes-mode definition of every
/// assignment covering it (initiatives expanded), minus notScopes and exemptions; none while
/// the add-on is off. The add-on semantics are [`crate::policy::addon`]'s; this supplies the
/// store's scopes and definitions.
pub(crate) fn constraints_for(
    state: &AppState,
    cluster: &StoredResource,
) -> Result<ClusterConstraints, ErrorResponse> {
    let mut out = ClusterConstraints::default();
    if !policy_addon_enabled(&cluster.body) {
        return Ok(out);
    }
    let exemptions = exemptions_for(state, &cluster.id)?;
    for (_, assignment) in stored_of_type(state, ASSIGNMENTS)? {
        let props = &assignment.body["properties"];
        let scope_id = props["scope"].as_str().unwrap_or_default();
        let Ok(scope) = Scope::parse(scope_id) else {
            continue;
        };
        if !scope.contains(state, &cluster.id)? {
            continue;
        }
        let mut excluded = false;
        for ns in props["notScopes"].as_array().into_iter().flatten() {
            if let Some(Ok(ns)) = ns.as_str().map(Scope::parse) {
                excluded |= ns.contains(state, &cluster.id)?;
            }
        }
        if excluded {
            continue;
        }
        let def_id = props["policyDefinitionId"].as_str().unwrap_or_default();
        let Some(definition) = resolve_visible(state, &scope, def_id)? else {
            continue;
        };
        let mut definitions = addon::DefinitionBodies::default();
        if addon::is_set_definition(def_id) {
            for mid in addon::set_member_ids(&definition) {
                if let Some(body) = resolve_visible(state, &scope, &mid)? {
                    definitions.insert(&mid, body);
                }
            }
        }
        definitions.insert(def_id, definition);
        let mut body = assignment.body.clone();
        body["id"] = json!(assignment.id);
        for member in addon::members(&body, &definitions, &exemptions) {
            let mid = member.origin.definition_id.clone();
            if member.is_mutation() {
                match member.mutator(&state.templates) {
                    Ok(Some(m)) => out.mutators.push(m),
                    Ok(None) => {}
                    Err(e) => out.problems.push(format!("{mid}: {e}")),
                }
                continue;
            }
            let built = member.constraint(&state.templates).and_then(|c| match c {
                Some((constraint, template)) => state
                    .rego_cache
                    .get(&template)
                    .map(|rego| Some((constraint, rego)))
                    .map_err(engine::GatekeeperError::from),
                None => Ok(None),
            });
            match built {
                Ok(Some(c)) => out.constraints.push(c),
                Ok(None) => {}
                Err(e) => out.problems.push(format!("{mid}: {e}")),
            }
        }
    }
    for p in &out.problems {
        log::warn!("cluster {}: {p}", cluster.id);
    }
    Ok(out)
}

/// Unexpired exemptions whose scope covers the cluster.
pub(crate) fn exemptions_for(
    state: &AppState,
    cluster_id: &str,
) -> Result<Vec<Exemption>, ErrorResponse> {
    let mut out = Vec::new();
    let now = SystemTime::now();
    for (at, e) in stored_of_type(state, EXEMPTIONS)? {
        let Ok(scope) = Scope::parse(&at) else {
            continue;
        };
        if !scope.contains(state, cluster_id)? {
            continue;
        }
        out.extend(Exemption::from_properties(&e.body["properties"], now));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Admitted objects

/// Store id of an admitted object: below the cluster, so deleting the resource group removes it.
fn object_id(cluster_id: &str, object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let group = match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "core",
    };
    let kind = object["kind"].as_str().unwrap_or("Unknown");
    let ns = object_namespace(object).unwrap_or("_cluster");
    let name = object_name(object).unwrap_or("_unnamed");
    format!("{cluster_id}/kubernetesObjects/{group}/{kind}/{ns}/{name}")
}

/// The objects `cluster` admitted and Gatekeeper's audit of them against `constraints`.
fn audit_admitted(
    state: &AppState,
    cluster: &StoredResource,
    constraints: &ClusterConstraints,
) -> Result<(Vec<Value>, engine::Audit), ErrorResponse> {
    let objects = admitted_objects(state, &cluster.id)?;
    let audit = engine::audit(
        &objects,
        &constraints.active(),
        &engine::AKS_EXEMPT_NAMESPACES,
        &state.eval_options(),
    );
    Ok((objects, audit))
}

/// Every object the cluster admitted.
pub(crate) fn admitted_objects(
    state: &AppState,
    cluster_id: &str,
) -> Result<Vec<Value>, ErrorResponse> {
    let prefix = format!("{}/kubernetesobjects/", resource_key(cluster_id));
    Ok(state
        .store
        .list_prefix(&prefix)?
        .into_iter()
        .map(|r| r.body)
        .collect())
}

/// Fills `request.namespace` (and the object's) for namespaced kinds, as the API server does
/// before calling webhooks.
fn default_namespace(request: &mut Value) {
    for key in ["object", "oldObject"] {
        let Some(object) = request.get_mut(key).filter(|o| o.is_object()) else {
            continue;
        };
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        if is_cluster_scoped(&kind) {
            continue;
        }
        if object.pointer("/metadata/namespace").is_none() {
            if !object["metadata"].is_object() {
                object["metadata"] = json!({});
            }
            object["metadata"]["namespace"] = json!("default");
        }
    }
    let namespaced = request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .is_some_and(|k| !is_cluster_scoped(k));
    let missing = request["namespace"].as_str().is_none_or(str::is_empty);
    if namespaced && missing {
        request["namespace"] = json!("default");
    }
}

/// Reviews one AdmissionReview for a cluster, remembers what it admitted, and answers with an
/// AdmissionReview response.
pub(crate) fn admit(
    state: &AppState,
    cluster_id: &str,
    admission_review: &Value,
    principal_oid: &str,
) -> Result<Value, ErrorResponse> {
    let Some(cluster) = settle_cluster(state, cluster_id)? else {
        return Err(ErrorResponse::not_found(
            "ResourceNotFound",
            format!("The managed cluster '{cluster_id}' was not found."),
        ));
    };
    let Some(request) = admission_review.get("request").filter(|r| r.is_object()) else {
        return Err(ErrorResponse::bad_request(
            "InvalidRequestContent",
            "Expected an admission.k8s.io/v1 AdmissionReview with a 'request'.",
        ));
    };
    let mut request = request.clone();
    if request.get("kind").is_none_or(|k| !k.is_object()) {
        // Tolerate hand-written reviews that omit kind: take it from the object.
        let object = request.get("object").cloned().unwrap_or(Value::Null);
        let bare = review_for(&object);
        request["kind"] = bare["kind"].clone();
        request["name"] = bare["name"].clone();
    }
    default_namespace(&mut request);
    let wrapped = json!({"kind": "AdmissionReview", "request": request});
    let review = review_for(&wrapped);
    let constraints = constraints_for(state, &cluster)?;
    let objects = admitted_objects(state, &cluster.id)?;
    let inventory = crate::policy::rego::inventory_from(&objects);
    let original = request.get("object").cloned().unwrap_or(Value::Null);
    let admission = crate::policy::admission::admit(
        &review,
        &constraints.active(),
        &constraints.mutators,
        &inventory,
        &engine::AKS_EXEMPT_NAMESPACES,
        &state.eval_options(),
    );
    if let Some(e) = &admission.mutation_error {
        // The mutating webhook fails open (failurePolicy Ignore): unmutated object.
        log::warn!("cluster {}: {e}", cluster.id);
    }
    if let Some(mutated) = admission.mutated {
        request["object"] = mutated;
    }
    let decision = admission.decision;
    // Gatekeeper's webhook fails open (failurePolicy Ignore) on evaluation errors; say so.
    for e in &decision.errors {
        log::warn!(
            "cluster {}: admission evaluation failed, request admitted (fail-open): {e}",
            cluster.id
        );
    }
    let dry_run = request["dryRun"].as_bool().unwrap_or(false);
    if decision.allowed() && !dry_run {
        remember(state, &cluster.id, &request)?;
    }
    // Every violation is a policy event: denied requests as `deny`, the others as `audit`.
    let mut events = Vec::new();
    for v in &decision.violations {
        let action = match v.action {
            engine::EnforcementAction::Deny => "deny",
            _ => "audit",
        };
        events.push(PolicyStateRow::for_cluster(
            state, &cluster, &v.origin, action, false,
        )?);
    }
    crate::emulator::events::record(state, &events, principal_oid)?;
    let mut answer =
        engine::admission_response(request.get("uid").unwrap_or(&Value::Null), &decision);
    // Beside the AdmissionReview (the API server would only log them): why a constraint could
    // not judge the request, so `admit` can show it.
    if !decision.errors.is_empty() {
        answer["evaluationErrors"] = json!(decision.errors);
    }
    remember_errors(state, &cluster.id, &decision.errors)?;
    let patch = mutation::top_level_patch(&original, &request["object"]);
    if decision.allowed() && original.is_object() && !patch.is_empty() {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&patch).unwrap_or_default());
        answer["response"]["patchType"] = json!("JSONPatch");
        answer["response"]["patch"] = json!(encoded);
    }
    Ok(answer)
}

/// Where the last admission's evaluation errors of a cluster are kept for `describe`.
fn errors_id(cluster_id: &str) -> String {
    format!("{cluster_id}/kubernetesEvaluationErrors/last")
}

fn remember_errors(
    state: &AppState,
    cluster_id: &str,
    errors: &[String],
) -> Result<(), ErrorResponse> {
    if errors.is_empty() {
        return Ok(());
    }
    state
        .store
        .put(&errors_id(cluster_id), json!({"errors": errors}))?;
    Ok(())
}

fn remember(state: &AppState, cluster_id: &str, request: &Value) -> Result<(), ErrorResponse> {
    let operation = request["operation"].as_str().unwrap_or("CREATE");
    if operation.eq_ignore_ascii_case("DELETE") {
        if let Some(old) = request.get("oldObject").filter(|o| o.is_object()) {
            state.store.delete(&object_id(cluster_id, old))?;
        }
        return Ok(());
    }
    if operation.eq_ignore_ascii_case("CONNECT") {
        return Ok(());
    }
    if let Some(object) = request.get("object").filter(|o| o.is_object()) {
        state
            .store
            .put(&object_id(cluster_id, object), object.clone())?;
    }
    Ok(())
}

/// What the cluster looks like to Gatekeeper: constraints, admitted objects, audit results.
pub(crate) fn describe(state: &AppState, cluster_id: &str) -> Result<Value, ErrorResponse> {
    let Some(cluster) = settle_cluster(state, cluster_id)? else {
        return Err(ErrorResponse::not_found(
            "ResourceNotFound",
            format!("The managed cluster '{cluster_id}' was not found."),
        ));
    };
    let constraints = constraints_for(state, &cluster)?;
    let (objects, audit) = audit_admitted(state, &cluster, &constraints)?;
    let last_admission_errors = state
        .store
        .get(&errors_id(&cluster.id))?
        .map(|r| r.body["errors"].clone())
        .unwrap_or_else(|| json!([]));
    let docs: Vec<Value> = constraints
        .constraints
        .iter()
        .map(|(c, _)| {
            let mut doc = c.document();
            let violations: Vec<Value> = audit
                .violations
                .get(&c.name)
                .into_iter()
                .flatten()
                .map(|v| json!({"message": v.message, "enforcementAction": v.action.as_str()}))
                .collect();
            doc["status"] = json!({"totalViolations": violations.len(), "violations": violations});
            doc
        })
        .collect();
    let mutators: Vec<Value> = mutation::sorted(&constraints.mutators)
        .into_iter()
        .map(Mutator::installed_document)
        .collect();
    Ok(json!({
        "cluster": cluster.id,
        "addonEnabled": policy_addon_enabled(&cluster.body),
        "constraints": docs,
        "mutators": mutators,
        "objects": objects,
        "problems": constraints.problems,
        // Evaluation errors fail open: the objects were admitted / count as compliant.
        "auditErrors": audit.errors,
        "admissionErrors": last_admission_errors,
    }))
}

/// Audit of one cluster: per (assignment, definition, reference) key, whether any admitted
/// object violates it. `None` when the add-on is off (no Kubernetes data is reported).
pub(crate) fn audit_cluster(
    state: &AppState,
    cluster: &StoredResource,
) -> Result<Option<HashMap<String, bool>>, ErrorResponse> {
    if !policy_addon_enabled(&cluster.body) {
        return Ok(None);
    }
    let constraints = constraints_for(state, cluster)?;
    let (_, audit) = audit_admitted(state, cluster, &constraints)?;
    let mut out = HashMap::new();
    for (c, _) in &constraints.constraints {
        let violated = audit.violations.get(&c.name).is_some_and(|v| !v.is_empty());
        let key = audit_key(
            &c.origin.assignment_id,
            &c.origin.definition_id,
            c.origin.reference_id.as_deref(),
        );
        let entry = out.entry(key).or_insert(false);
        *entry |= violated;
    }
    Ok(Some(out))
}

/// Key of one assignment member in [`audit_cluster`]'s answer.
pub(crate) fn audit_key(
    assignment_id: &str,
    definition_id: &str,
    reference_id: Option<&str>,
) -> String {
    format!(
        "{}|{}|{}",
        resource_key(assignment_id),
        resource_key(definition_id),
        reference_id.unwrap_or("").to_ascii_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_templates_parse_and_compile() {
        for (path, yaml) in EMBEDDED_TEMPLATES {
            let t = crate::policy::constraint_template::ConstraintTemplate::parse(yaml)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            t.compile().unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let templates = Templates::default();
        assert!(templates
            .template_for_path("kubernetes/container-no-privilege/v2/template.yaml")
            .is_some());
        assert!(templates
            .template_for_path("kubernetes/nope/v1/template.yaml")
            .is_none());
    }

    #[test]
    fn template_directory_is_keyed_by_url_path_and_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = "kubernetes/container-no-privilege/v2/template.yaml";
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, "# mine\n").expect("write");
        std::fs::create_dir_all(dir.path().join("other/v1")).expect("mkdir");
        std::fs::write(dir.path().join("other/v1/template.yaml"), "# short\n").expect("write");
        let templates = Templates {
            dir: Some(dir.path().to_path_buf()),
        };
        assert_eq!(
            templates.template_for_path(path).as_deref(),
            Some("# mine\n")
        );
        // Without the leading `kubernetes/` too, and never outside the directory.
        assert_eq!(
            templates
                .template_for_path("kubernetes/other/v1/template.yaml")
                .as_deref(),
            Some("# short\n")
        );
        assert!(templates.template_for_path("../etc/passwd").is_none());
        // Embedded ones still answer for paths the directory lacks.
        assert!(templates
            .template_for_path("kubernetes/host-network-ports/v2/template.yaml")
            .is_some());
    }

    #[test]
    fn embedded_mutators_parse_and_run_as_user_1000() {
        for (path, yaml) in EMBEDDED_MUTATORS {
            Mutator::parse(yaml).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let m = Mutator::parse(EMBEDDED_MUTATORS[0].1).unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "apps"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
        let out = mutation::mutate(&pod, None, std::slice::from_ref(&m), &json!({}), &[]).unwrap();
        assert_eq!(out.object["spec"]["securityContext"]["runAsUser"], 1000);
        let mut explicit = pod.clone();
        explicit["spec"]["securityContext"] = json!({"runAsUser": 0});
        let out =
            mutation::mutate(&explicit, None, std::slice::from_ref(&m), &json!({}), &[]).unwrap();
        assert_eq!(out.object, explicit);
    }

    #[test]
    fn no_privilege_escalation_template_behaves() {
        let (_, yaml) = EMBEDDED_TEMPLATES
            .iter()
            .find(|(p, _)| p.contains("no-privilege-escalation"))
            .unwrap();
        let t = crate::policy::constraint_template::ConstraintTemplate::parse(yaml).unwrap();
        let pod = |sc: Value, pod_sc: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"securityContext": pod_sc,
                         "containers": [{"name": "app", "image": "nginx", "securityContext": sc}]}})
        };
        let params = json!({"excludedContainers": [], "excludedImages": [], "forcePrivilegeEscalationToBeFalse": false});
        let count = |p: &Value, o: &Value| t.evaluate(p, o, &[]).unwrap().len();
        assert_eq!(count(&params, &pod(json!({}), json!({}))), 1);
        assert_eq!(
            count(
                &params,
                &pod(json!({"allowPrivilegeEscalation": true}), json!({}))
            ),
            1
        );
        assert_eq!(
            count(
                &params,
                &pod(json!({"allowPrivilegeEscalation": false}), json!({}))
            ),
            0
        );
        // Non-root users comply unless the parameter forces the field.
        assert_eq!(
            count(&params, &pod(json!({}), json!({"runAsUser": 1000}))),
            0
        );
        let mut forced = params.clone();
        forced["forcePrivilegeEscalationToBeFalse"] = json!(true);
        assert_eq!(
            count(&forced, &pod(json!({}), json!({"runAsUser": 1000}))),
            1
        );
    }

    #[test]
    fn no_privilege_template_behaves() {
        let t =
            crate::policy::constraint_template::ConstraintTemplate::parse(EMBEDDED_TEMPLATES[0].1)
                .unwrap();
        let pod = |privileged: bool, image: &str| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "app", "image": image,
                    "securityContext": {"privileged": privileged}}]}})
        };
        let params = json!({"excludedContainers": [], "excludedImages": ["registry.local/debug*"]});
        let v = t.evaluate(&params, &pod(true, "nginx"), &[]).unwrap();
        assert_eq!(v.len(), 1);
        assert!(
            v[0].msg
                .starts_with("Privileged container is not allowed: app"),
            "{}",
            v[0].msg
        );
        assert!(t
            .evaluate(&params, &pod(false, "nginx"), &[])
            .unwrap()
            .is_empty());
        assert!(t
            .evaluate(&params, &pod(true, "registry.local/debug:1"), &[])
            .unwrap()
            .is_empty());
    }
}
