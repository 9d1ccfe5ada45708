//! What the AKS policy add-on does with a `Microsoft.Kubernetes.Data` assignment, as pure
//! functions: resolving `[parameters('x')]` expressions, building the Gatekeeper Constraint the
//! add-on would install (enforcement action, match, parameters, generated name), and turning
//! violations into an admission decision in Gatekeeper's message format. Matching and workload
//! expansion live in [`super::constraint_match`].
//!
//! The emulator's admission and audit feed it assignments and admitted objects; the provider's
//! plan-time `test` blocks feed it the definition being planned. Both call [`decide`].

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use super::arm_rule::expr::evaluate_string;
use super::arm_rule::{ArmRuleError, Evaluator, RuleContext};
use super::constraint_match::string_or_list;
pub use super::constraint_match::{
    is_exempt, review_targets, wildcard_matches, ConstraintMatch, KindSelector, MatchError,
    MatchScope, MatchSource, ReviewTarget, AKS_EXEMPT_NAMESPACES, EXPANSION_NAME,
};
use super::constraint_template::{ConstraintTemplate, TemplateError};
use super::json::{map_strings, object_name};
use super::kubernetes::TemplateInfo;
use super::rego::{CompiledRego, EvalOptions, RegoError};

/// Why a definition could not become a constraint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatekeeperError {
    #[error("the definition names no ConstraintTemplate (templateInfo or constraintTemplate)")]
    NoTemplate,
    #[error("template {url} is not available locally (looked up as {path:?}); pass a template directory holding it")]
    TemplateNotFound { url: String, path: String },
    #[error("templateInfo content is not valid base64 UTF-8")]
    BadBase64,
    #[error("template: {0}")]
    Template(#[from] TemplateError),
    #[error("rego: {0}")]
    Rego(#[from] RegoError),
}

/// Gatekeeper's `spec.enforcementAction`, as the add-on sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnforcementAction {
    /// Refuse admission (effect deny).
    Deny,
    /// Admit with a warning, report in audit (effect audit with `warn: true`).
    Warn,
    /// Only report in audit (effect audit, or any effect under DoNotEnforce).
    Dryrun,
}

impl EnforcementAction {
    /// Spelling in a Constraint.
    pub fn as_str(self) -> &'static str {
        match self {
            EnforcementAction::Deny => "deny",
            EnforcementAction::Warn => "warn",
            EnforcementAction::Dryrun => "dryrun",
        }
    }

    /// The action for an Azure effect; `None` for effects that install no constraint
    /// (disabled, mutate, unknown).
    pub fn from_effect(effect: &str, warn: bool, enforce: bool) -> Option<Self> {
        let action = match effect.to_ascii_lowercase().as_str() {
            "deny" => EnforcementAction::Deny,
            "audit" if warn => EnforcementAction::Warn,
            "audit" => EnforcementAction::Dryrun,
            "warn" => EnforcementAction::Warn,
            _ => return None,
        };
        // DoNotEnforce: "admission requests with violations aren't denied"; audit still runs.
        Some(if enforce {
            action
        } else {
            EnforcementAction::Dryrun
        })
    }
}

/// Where a constraint came from (the add-on's annotations).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConstraintOrigin {
    pub assignment_id: String,
    pub definition_id: String,
    pub set_definition_id: Option<String>,
    pub reference_id: Option<String>,
}

/// A Gatekeeper Constraint as the add-on would install it.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    /// `azurepolicy-<template>-<hash>`.
    pub name: String,
    /// The template's CRD kind.
    pub kind: String,
    pub enforcement_action: EnforcementAction,
    pub matcher: ConstraintMatch,
    pub parameters: Json,
    pub origin: ConstraintOrigin,
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// Resolves ARM template expressions of the forms policy definitions use in `details`:
/// `[parameters('x')]` and `[parameters('x').a.b]`; `[[...` is a literal `[...`. Other strings
/// are literals; arrays and objects are resolved element by element.
pub fn resolve_expressions(value: &Json, parameters: &Map<String, Json>) -> Json {
    map_strings(value, |s| resolve_string(s, parameters))
}

/// A string of a definition's `then` block or an initiative's member values: a template
/// expression is evaluated by the ARM-mode rule engine's expression language (there is no
/// resource here, so `field()` cannot resolve); `[[x` stands for `[x`. A parameter with neither
/// value nor default reads as null, as before Azure refuses such an assignment; an expression
/// that cannot be evaluated stays as written.
fn resolve_string(s: &str, parameters: &Map<String, Json>) -> Json {
    let no_resource = Json::Null;
    let context = RuleContext::default();
    let evaluator = Evaluator::new(&no_resource, parameters, &context);
    match evaluate_string(s, &evaluator) {
        Ok(value) => value,
        Err(ArmRuleError::MissingParameter(_)) => Json::Null,
        Err(_) => json!(s),
    }
}

/// The value of every declared parameter: the supplied one (`{"x": {"value": ..}}` or a plain
/// map of values) or the declared default.
pub fn effective_parameters(
    declared: Option<&Json>,
    supplied: &Map<String, Json>,
) -> Map<String, Json> {
    let mut out = Map::new();
    if let Some(Json::Object(declared)) = declared {
        for (name, spec) in declared {
            if let Some(default) = spec.get("defaultValue") {
                out.insert(name.clone(), default.clone());
            }
        }
    }
    for (name, v) in supplied {
        let value = match v {
            Json::Object(o) if o.contains_key("value") => o["value"].clone(),
            other => other.clone(),
        };
        let key = out
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .cloned()
            .unwrap_or_else(|| name.clone());
        out.insert(key, value);
    }
    out
}

/// The effect an assignment's `overrides` (kind `policyEffect`) force on one member: the first
/// override whose selectors all match the member's reference id (no selectors = every member).
pub fn effect_override(overrides: Option<&Json>, reference_id: Option<&str>) -> Option<String> {
    let overrides = overrides?.as_array()?;
    overrides.iter().find_map(|o| {
        let kind = o.get("kind").and_then(Json::as_str)?;
        if !kind.eq_ignore_ascii_case("policyEffect") {
            return None;
        }
        let selected = o
            .get("selectors")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .all(|s| {
                let about_reference = s
                    .get("kind")
                    .and_then(Json::as_str)
                    .is_some_and(|k| k.eq_ignore_ascii_case("policyDefinitionReferenceId"));
                if !about_reference {
                    return true;
                }
                let listed = |key: &str| {
                    string_or_list(s.get(key))
                        .iter()
                        .any(|r| reference_id.is_some_and(|id| r.eq_ignore_ascii_case(id)))
                };
                if s.get("in").is_some() {
                    listed("in")
                } else {
                    !listed("notIn")
                }
            });
        selected.then(|| o.get("value").and_then(Json::as_str).map(str::to_string))?
    })
}

/// A set member's parameter values: its reference's `parameters` (expressions over the set's
/// parameters) resolved against the set's effective values.
pub fn member_parameters(
    reference_parameters: Option<&Json>,
    set_values: &Map<String, Json>,
) -> Map<String, Json> {
    reference_parameters
        .and_then(Json::as_object)
        .into_iter()
        .flatten()
        .map(|(name, v)| {
            let raw = v.get("value").unwrap_or(&Json::Null);
            (name.clone(), resolve_expressions(raw, set_values))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Templates

/// Looks up ConstraintTemplates the add-on would download from a `PublicURL`.
pub trait TemplateLookup {
    /// The YAML stored for this URL path (e.g. `kubernetes/container-no-privilege/v2/template.yaml`).
    fn template_for_path(&self, path: &str) -> Option<String>;

    /// The YAML a `templateInfo` or `mutationInfo` names: its embedded content, or what this
    /// lookup holds for its URL's path.
    fn yaml_for(&self, info: &TemplateInfo) -> Result<String, Unavailable> {
        match info {
            TemplateInfo::Base64Encoded(_) => info.embedded().ok_or(Unavailable::BadBase64),
            TemplateInfo::PublicUrl(url) | TemplateInfo::ConstraintTemplateUrl(url) => {
                let path = url_path(url);
                self.template_for_path(&path)
                    .ok_or_else(|| Unavailable::NotFound {
                        url: url.clone(),
                        path,
                    })
            }
        }
    }
}

/// Why the YAML a `templateInfo` or `mutationInfo` names cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// Embedded content that is not base64-encoded UTF-8.
    BadBase64,
    /// A URL whose path the lookup does not hold.
    NotFound { url: String, path: String },
}

/// The path part of a template URL: `https://host/a/b.yaml` → `a/b.yaml`.
pub fn url_path(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = without_scheme.split_once('/').map_or("", |(_, p)| p);
    path.split(['?', '#']).next().unwrap_or("").to_string()
}

/// The template a definition's `details` names, parsed.
pub fn resolve_template(
    info: &TemplateInfo,
    lookup: &dyn TemplateLookup,
) -> Result<ConstraintTemplate, GatekeeperError> {
    let yaml = lookup.yaml_for(info).map_err(|missing| match missing {
        Unavailable::BadBase64 => GatekeeperError::BadBase64,
        Unavailable::NotFound { url, path } => GatekeeperError::TemplateNotFound { url, path },
    })?;
    Ok(ConstraintTemplate::parse(&yaml)?)
}

// ---------------------------------------------------------------------------------------------
// Constraints

/// The add-on's constraint name: `azurepolicy-<template name, cut>-<20 hex>`, at most 63
/// characters, stable for one assignment + definition (+ reference).
pub fn constraint_name(template_name: &str, origin: &ConstraintOrigin) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!(
            "{}|{}|{}",
            origin.assignment_id.to_ascii_lowercase(),
            origin.definition_id.to_ascii_lowercase(),
            origin.reference_id.as_deref().unwrap_or("")
        )
        .as_bytes(),
    );
    let hex: String = digest.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let stem: String = template_name.chars().take(30).collect();
    format!("azurepolicy-{}-{hex}", stem.trim_end_matches('-'))
}

/// A label selector given as an object; parameters left empty resolve to null.
/// Builds the Constraint the add-on installs for one definition with these parameter values,
/// or `None` when the effect installs none (disabled, mutate). `enforce` is false under the
/// assignment's `enforcementMode: DoNotEnforce`.
pub fn build_constraint(
    policy_rule: &Json,
    template: &ConstraintTemplate,
    parameters: &Map<String, Json>,
    enforce: bool,
    origin: ConstraintOrigin,
) -> Option<Constraint> {
    build_constraint_with_effect(policy_rule, template, parameters, None, enforce, origin)
}

/// [`build_constraint`] with the effect an assignment override forces, if any.
pub fn build_constraint_with_effect(
    policy_rule: &Json,
    template: &ConstraintTemplate,
    parameters: &Map<String, Json>,
    effect_override: Option<&str>,
    enforce: bool,
    origin: ConstraintOrigin,
) -> Option<Constraint> {
    let then = policy_rule.get("then")?;
    let effect = match effect_override {
        Some(e) => json!(e),
        None => resolve_expressions(then.get("effect").unwrap_or(&json!("audit")), parameters),
    };
    let details = resolve_expressions(then.get("details").unwrap_or(&json!({})), parameters);
    let warn = details.get("warn").and_then(Json::as_bool).unwrap_or(false);
    let action = EnforcementAction::from_effect(effect.as_str().unwrap_or(""), warn, enforce)?;
    let api_groups = string_or_list(details.get("apiGroups"));
    let kinds = string_or_list(details.get("kinds"));
    let kinds = if kinds.is_empty() {
        Vec::new()
    } else {
        vec![KindSelector { api_groups, kinds }]
    };
    // `details` carry Gatekeeper's match fields, except that Azure lists the kinds flat and
    // has no name to match.
    let matcher = ConstraintMatch {
        kinds,
        name: None,
        ..ConstraintMatch::from_document(&details, MatchSource::Original)
    };
    // A value whose parameter has no value (`null`) is left out: Rego then sees the field as
    // absent (`not input.parameters.x` holds), as in a Constraint that never set it.
    let parameters: Map<String, Json> = details
        .get("values")
        .and_then(Json::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let parameters = Json::Object(parameters);
    Some(Constraint {
        name: constraint_name(&template.name, &origin),
        kind: template.kind.clone(),
        enforcement_action: action,
        matcher,
        parameters,
        origin,
    })
}

impl Constraint {
    /// A Constraint resource as written for Gatekeeper (e.g. a gatekeeper-library sample):
    /// `spec.enforcementAction` (default deny; `scoped` is taken as warn), `spec.match`
    /// (`source` defaults to All) and `spec.parameters`.
    pub fn from_document(doc: &Json) -> Constraint {
        let spec = doc.get("spec").unwrap_or(&Json::Null);
        let m = spec.get("match").unwrap_or(&Json::Null);
        let action = match spec.get("enforcementAction").and_then(Json::as_str) {
            Some("dryrun") => EnforcementAction::Dryrun,
            Some("warn") | Some("scoped") => EnforcementAction::Warn,
            _ => EnforcementAction::Deny,
        };
        Constraint {
            name: object_name(doc).unwrap_or("").to_string(),
            kind: doc
                .get("kind")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string(),
            enforcement_action: action,
            matcher: ConstraintMatch::from_document(m, MatchSource::All),
            parameters: spec.get("parameters").cloned().unwrap_or_else(|| json!({})),
            origin: ConstraintOrigin::default(),
        }
    }

    /// The Constraint resource, for display and debugging.
    pub fn document(&self) -> Json {
        let m = self.matcher.document();
        json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": self.kind,
            "metadata": {
                "name": self.name,
                "labels": {"managed-by": "azure-policy-addon"},
                "annotations": {
                    "azure-policy-assignment-id": self.origin.assignment_id,
                    "azure-policy-definition-id": self.origin.definition_id,
                    "azure-policy-definition-reference-id": self.origin.reference_id.clone().unwrap_or_default(),
                    "azure-policy-setdefinition-id": self.origin.set_definition_id.clone().unwrap_or_default(),
                    "constraint-installed-by": "azure-policy-addon",
                }
            },
            "spec": {
                "enforcementAction": self.enforcement_action.as_str(),
                "match": m,
                "parameters": self.parameters,
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Decisions

/// One violation of one constraint.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstraintViolation {
    pub constraint: String,
    pub action: EnforcementAction,
    pub origin: ConstraintOrigin,
    /// Gatekeeper's `[constraint] message` form.
    pub message: String,
    /// The message as the template's Rego wrote it (after `[Implied by ...]` for generated
    /// objects), without the constraint name.
    pub rego_message: String,
}

/// The outcome of reviewing one object against a cluster's constraints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Every violation, whatever its action (what audit reports).
    pub violations: Vec<ConstraintViolation>,
    /// Rego failures, per constraint (Gatekeeper fails open on them).
    pub errors: Vec<String>,
    /// The evaluation errors among `errors`, for callers that map them back to the template.
    pub rego_errors: Vec<RegoError>,
}

impl Decision {
    /// Admission refuses the object when any violation has action deny.
    pub fn allowed(&self) -> bool {
        !self
            .violations
            .iter()
            .any(|v| v.action == EnforcementAction::Deny)
    }

    /// Messages of deny violations, in Gatekeeper's format.
    pub fn denials(&self) -> Vec<String> {
        self.of(EnforcementAction::Deny)
    }

    /// Messages of warn violations (response `warnings`).
    pub fn warnings(&self) -> Vec<String> {
        self.of(EnforcementAction::Warn)
    }

    fn of(&self, action: EnforcementAction) -> Vec<String> {
        self.violations
            .iter()
            .filter(|v| v.action == action)
            .map(|v| v.message.clone())
            .collect()
    }
}

/// A constraint with its compiled template.
pub struct ActiveConstraint<'a> {
    pub constraint: &'a Constraint,
    pub rego: &'a CompiledRego,
}

/// Reviews one admission request (`input.review`) against constraints, expanding workloads.
/// Objects in `exempt_namespaces` (the cluster's own exemptions, [`AKS_EXEMPT_NAMESPACES`] on
/// AKS) are never reviewed. `inventory` is `data.inventory`; its Namespace objects also answer
/// namespaceSelectors.
pub fn decide(
    review: &Json,
    constraints: &[ActiveConstraint<'_>],
    inventory: &Json,
    exempt_namespaces: &[&str],
) -> Decision {
    decide_with(
        review,
        constraints,
        inventory,
        exempt_namespaces,
        &EvalOptions::default(),
    )
}

/// [`decide`] with explicit evaluation limits and external data answers (plan-time tests).
pub fn decide_with(
    review: &Json,
    constraints: &[ActiveConstraint<'_>],
    inventory: &Json,
    exempt_namespaces: &[&str],
    options: &EvalOptions,
) -> Decision {
    if is_exempt(review, exempt_namespaces) {
        return Decision::default();
    }
    decide_targets(&review_targets(review), constraints, inventory, options)
}

/// [`decide`] for targets already expanded (and mutated, see
/// [`super::mutation::mutated_targets`]).
pub fn decide_targets(
    targets: &[ReviewTarget],
    constraints: &[ActiveConstraint<'_>],
    inventory: &Json,
    options: &EvalOptions,
) -> Decision {
    let mut decision = Decision::default();
    for active in constraints {
        let c = active.constraint;
        for target in targets {
            match c.matcher.matches(target, inventory) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    decision.errors.push(format!("[{}] {e}", c.name));
                    continue;
                }
            }
            match active
                .rego
                .evaluate_with(&target.review, &c.parameters, inventory, options)
            {
                Ok(violations) => {
                    for v in violations {
                        let msg = match &target.generated_by {
                            Some(by) => format!("[Implied by {by}] {}", v.msg),
                            None => v.msg,
                        };
                        decision.violations.push(ConstraintViolation {
                            constraint: c.name.clone(),
                            action: c.enforcement_action,
                            origin: c.origin.clone(),
                            message: format!("[{}] {msg}", c.name),
                            rego_message: msg,
                        });
                    }
                }
                Err(e) => {
                    decision.errors.push(format!("[{}] {e}", c.name));
                    decision.rego_errors.push(e);
                }
            }
        }
    }
    decision
}

/// An `admission.k8s.io/v1` AdmissionReview response for a request and a decision, shaped like
/// Gatekeeper's webhook answer (403 with the deny messages joined by newlines).
pub fn admission_response(uid: &Json, decision: &Decision) -> Json {
    let mut response = Map::new();
    response.insert("uid".into(), uid.clone());
    response.insert("allowed".into(), json!(decision.allowed()));
    if !decision.allowed() {
        response.insert(
            "status".into(),
            json!({"code": 403, "reason": "Forbidden", "message": decision.denials().join("\n")}),
        );
    }
    let warnings = decision.warnings();
    if !warnings.is_empty() {
        response.insert("warnings".into(), json!(warnings));
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}

/// An AdmissionReview request for a bare manifest, as the API server would send it for
/// `kubectl apply` (CREATE; namespace defaulted for namespaced kinds).
pub fn admission_request_for(object: &Json, uid: &str) -> Json {
    let bare = super::rego::review_for(object);
    let mut request = bare.as_object().cloned().unwrap_or_default();
    request.insert("uid".into(), json!(uid));
    request.insert("operation".into(), json!("CREATE"));
    request.insert(
        "userInfo".into(),
        json!({"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}),
    );
    let text = |pointer: &str| {
        bare.pointer(pointer)
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (group, version, kind) = (
        text("/kind/group"),
        text("/kind/version"),
        text("/kind/kind"),
    );
    request.insert(
        "resource".into(),
        json!({"group": group, "version": version, "resource": plural(&kind)}),
    );
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// The resource name of a kind (lower-case plural), good enough for admission requests.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// What an audit of many objects found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Audit {
    /// Violations per constraint name (every constraint has an entry).
    pub violations: BTreeMap<String, Vec<ConstraintViolation>>,
    /// Rego failures, as in [`Decision::errors`]; those objects count as compliant.
    pub errors: Vec<String>,
}

/// Violations per constraint name across many objects (audit), with the same exemptions as
/// [`decide`].
pub fn audit(
    objects: &[Json],
    constraints: &[ActiveConstraint<'_>],
    exempt_namespaces: &[&str],
    options: &EvalOptions,
) -> Audit {
    let inventory = super::rego::inventory_from(objects);
    let mut out = Audit::default();
    for a in constraints {
        out.violations.entry(a.constraint.name.clone()).or_default();
    }
    for object in objects {
        let review = super::rego::review_for(object);
        let decision = decide_with(&review, constraints, &inventory, exempt_namespaces, options);
        for v in decision.violations {
            out.violations
                .entry(v.constraint.clone())
                .or_default()
                .push(v);
        }
        out.errors.extend(decision.errors);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8stestnopriv}
spec:
  crd:
    spec:
      names: {kind: K8sTestNoPriv}
      validation:
        openAPIV3Schema:
          type: object
          properties:
            excludedContainers: {type: array, items: {type: string}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8stestnopriv
        violation[{"msg": msg}] {
          c := input.review.object.spec.containers[_]
          c.securityContext.privileged
          not excluded(c.name)
          msg := sprintf("privileged: %v", [c.name])
        }
        excluded(n) { n == input.parameters.excludedContainers[_] }
"#;

    fn rule() -> Json {
        json!({
            "if": {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
            "then": {"effect": "[parameters('effect')]", "details": {
                "source": "[parameters('source')]",
                "warn": "[parameters('warn')]",
                "apiGroups": [""], "kinds": ["Pod"],
                "excludedNamespaces": "[parameters('excludedNamespaces')]",
                "namespaces": "[parameters('namespaces')]",
                "labelSelector": "[parameters('labelSelector')]",
                "values": {"excludedContainers": "[parameters('excludedContainers')]"}
            }}
        })
    }

    fn params(effect: &str, source: &str) -> Map<String, Json> {
        let declared = json!({
            "effect": {"defaultValue": "Audit"},
            "excludedNamespaces": {"defaultValue": ["kube-system", "team-*"]},
            "namespaces": {"defaultValue": []},
            "labelSelector": {"defaultValue": {}},
            "excludedContainers": {"defaultValue": []},
            "source": {"defaultValue": "Original"},
            "warn": {"defaultValue": false},
        });
        let supplied = json!({"effect": {"value": effect}, "source": {"value": source}});
        effective_parameters(Some(&declared), supplied.as_object().unwrap())
    }

    fn deployment(ns: &str) -> Json {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": ns},
               "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "app", "image": "nginx",
                                 "securityContext": {"privileged": true}}]}}}})
    }

    fn constraint(effect: &str, source: &str, enforce: bool) -> Option<Constraint> {
        let t = ConstraintTemplate::parse(TEMPLATE).unwrap();
        build_constraint(
            &rule(),
            &t,
            &params(effect, source),
            enforce,
            ConstraintOrigin {
                assignment_id:
                    "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a".into(),
                definition_id: "/providers/Microsoft.Authorization/policyDefinitions/d".into(),
                ..Default::default()
            },
        )
    }

    fn decide_one(c: &Constraint, object: &Json) -> Decision {
        let t = ConstraintTemplate::parse(TEMPLATE).unwrap();
        let rego = t.compile().unwrap();
        let active = [ActiveConstraint {
            constraint: c,
            rego: &rego,
        }];
        decide(
            &super::super::rego::review_for(object),
            &active,
            &json!({}),
            &AKS_EXEMPT_NAMESPACES,
        )
    }

    #[test]
    fn expressions_resolve_with_fields_and_escapes() {
        let p = json!({"Effect": "Deny", "obj": {"a": [1]}});
        let p = p.as_object().unwrap();
        assert_eq!(
            resolve_expressions(&json!("[parameters('effect')]"), p),
            json!("Deny")
        );
        assert_eq!(
            resolve_expressions(&json!("[parameters('obj').a]"), p),
            json!([1])
        );
        assert_eq!(
            resolve_expressions(&json!("[[literal]"), p),
            json!("[literal]")
        );
        assert_eq!(
            resolve_expressions(&json!({"x": ["plain"]}), p),
            json!({"x": ["plain"]})
        );
        // The whole expression language, not only parameter references.
        assert_eq!(
            resolve_expressions(
                &json!("[concat(toLower(parameters('effect')), '-', string(length(parameters('obj').a)))]"),
                p
            ),
            json!("deny-1")
        );
        assert_eq!(
            resolve_expressions(
                &json!("[if(equals(parameters('effect'), 'Deny'), 'deny', 'dryrun')]"),
                p
            ),
            json!("deny")
        );
        assert_eq!(
            resolve_expressions(&json!("[parameters('nope')]"), p),
            Json::Null
        );
        // Not an expression the language knows: kept as written.
        assert_eq!(
            resolve_expressions(&json!("[noSuchFunction('x')]"), p),
            json!("[noSuchFunction('x')]")
        );
        let members = member_parameters(
            Some(&json!({"effect": {"value": "[parameters('setEffect')]"}})),
            json!({"setEffect": "Audit"}).as_object().unwrap(),
        );
        assert_eq!(members["effect"], "Audit");
    }

    #[test]
    fn constraints_are_built_the_azure_way() {
        let c = constraint("Deny", "Generated", true).unwrap();
        assert_eq!(c.enforcement_action, EnforcementAction::Deny);
        assert!(
            c.name.starts_with("azurepolicy-k8stestnopriv-"),
            "{}",
            c.name
        );
        assert!(c.name.len() <= 63);
        assert_eq!(c.matcher.source, MatchSource::Generated);
        assert_eq!(c.parameters, json!({"excludedContainers": []}));
        assert_eq!(
            constraint("audit", "All", true).unwrap().enforcement_action,
            EnforcementAction::Dryrun
        );
        assert_eq!(
            constraint("Deny", "All", false).unwrap().enforcement_action,
            EnforcementAction::Dryrun
        );
        assert!(constraint("Disabled", "All", true).is_none());
        assert_eq!(c.document()["spec"]["enforcementAction"], "deny");
    }

    #[test]
    fn deployments_are_judged_as_their_pods_only_with_expansion() {
        let generated = constraint("Deny", "Generated", true).unwrap();
        let d = decide_one(&generated, &deployment("apps"));
        assert!(!d.allowed());
        let msg = &d.denials()[0];
        assert!(msg.starts_with(&format!("[{}] ", generated.name)), "{msg}");
        assert!(msg.ends_with("privileged: app"), "{msg}");
        let original = constraint("Deny", "Original", true).unwrap();
        assert!(decide_one(&original, &deployment("apps")).allowed());
        // Excluded by a glob, and by the add-on's own exclusions.
        assert!(decide_one(&generated, &deployment("team-a")).allowed());
        assert!(decide_one(&generated, &deployment("kube-system")).allowed());
        let audit_only = constraint("Audit", "All", true).unwrap();
        let d = decide_one(&audit_only, &deployment("apps"));
        assert!(d.allowed());
        assert_eq!(d.violations.len(), 1);
    }

    #[test]
    fn namespace_selectors_reach_the_constraint_and_fail_open_when_undecidable() {
        let mut rule = rule();
        rule["then"]["details"]["namespaceSelector"] = json!({"matchLabels": {"env": "prod"}});
        let t = ConstraintTemplate::parse(TEMPLATE).unwrap();
        let c = build_constraint(
            &rule,
            &t,
            &params("Deny", "Generated"),
            true,
            ConstraintOrigin::default(),
        )
        .unwrap();
        assert_eq!(
            c.document()["spec"]["match"]["namespaceSelector"]["matchLabels"]["env"],
            "prod"
        );
        let rego = t.compile().unwrap();
        let active = [ActiveConstraint {
            constraint: &c,
            rego: &rego,
        }];
        let review = super::super::rego::review_for(&deployment("shop"));
        let namespaces = |env: &str| {
            super::super::rego::inventory_from(&[json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "shop", "labels": {"env": env}}})])
        };
        let decide_in =
            |inventory: &Json| decide(&review, &active, inventory, &AKS_EXEMPT_NAMESPACES);
        assert!(!decide_in(&namespaces("prod")).allowed());
        assert!(decide_in(&namespaces("dev")).violations.is_empty());
        // Namespace unknown: Gatekeeper cannot match, so nothing is denied and the error shows.
        let unknown = decide_in(&json!({}));
        assert!(unknown.allowed());
        assert_eq!(unknown.errors.len(), 1, "{:?}", unknown.errors);
        assert!(
            unknown.errors[0].contains("\"shop\""),
            "{:?}",
            unknown.errors
        );
    }

    #[test]
    fn responses_follow_the_webhook_contract() {
        let c = constraint("Deny", "All", true).unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "securityContext": {"privileged": true}}]}});
        let request = admission_request_for(&pod, "u1");
        assert_eq!(request["request"]["namespace"], "default");
        assert_eq!(request["request"]["resource"]["resource"], "pods");
        let d = decide_one(&c, &pod);
        let resp = admission_response(&json!("u1"), &d);
        assert_eq!(resp["response"]["allowed"], false);
        assert_eq!(resp["response"]["status"]["code"], 403);
        let mut warn_params = params("Audit", "All");
        warn_params.insert("warn".into(), json!(true));
        let t = ConstraintTemplate::parse(TEMPLATE).unwrap();
        let w =
            build_constraint(&rule(), &t, &warn_params, true, ConstraintOrigin::default()).unwrap();
        let resp = admission_response(&json!("u1"), &decide_one(&w, &pod));
        assert_eq!(resp["response"]["allowed"], true);
        assert_eq!(resp["response"]["warnings"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn effect_overrides_select_members() {
        let o = json!([{"kind": "policyEffect", "value": "Audit",
            "selectors": [{"kind": "policyDefinitionReferenceId", "in": ["HostNetworkPorts"]}]}]);
        assert_eq!(
            effect_override(Some(&o), Some("hostnetworkports")).as_deref(),
            Some("Audit")
        );
        assert_eq!(effect_override(Some(&o), Some("Other")), None);
        let all = json!([{"kind": "policyEffect", "value": "Disabled"}]);
        assert_eq!(
            effect_override(Some(&all), None).as_deref(),
            Some("Disabled")
        );
    }

    #[test]
    fn url_paths() {
        assert_eq!(
            url_path("https://store.policy.core.windows.net/kubernetes/x/v2/template.yaml?sv=1"),
            "kubernetes/x/v2/template.yaml"
        );
    }
}
