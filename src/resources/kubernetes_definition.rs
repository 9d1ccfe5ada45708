//! Resource `akspolicy_kubernetes_definition`: a custom Azure Policy definition of mode
//! `Microsoft.Kubernetes.Data` whose Gatekeeper ConstraintTemplate the user writes in Rego.
//! Everything that can be checked without Azure — YAML, template rules, Rego compilation and the
//! user's `test` blocks — is checked at plan time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use crate::framework::timeouts;
use crate::framework::{
    ApplyRequest, ApplyResult, Attribute, AttributePath, Block, CallContext, Diagnostic,
    Diagnostics, NestedBlock, PlanChange, Removal, Resource, Schema, Type, Value,
};
use crate::policy::constraint_template::{
    parse_yaml, parse_yaml_documents, ConstraintTemplate, TemplateError, TemplateSpec,
};
use crate::policy::gatekeeper::{
    self, ActiveConstraint, Constraint, ConstraintOrigin, ConstraintViolation,
    AKS_EXEMPT_NAMESPACES,
};
use crate::policy::kubernetes_definition::{
    check_default_effect, decode, merged_match, DecodedKubernetesDefinition, DefinitionBuildError,
    KindMatch, KubernetesDefinitionSpec, TemplateSource, STANDARD_PARAMETERS,
};
use crate::policy::rego::{self, CompiledRego, RegoError, RegoModule};
use crate::policy::{PolicyDefinition, PolicyDefinitionProperties};

use super::definition::{
    keep_json, plan_default_scope, replace_on_breaking_parameters, user_metadata,
    validate_json_object, validate_version, DEFINITIONS_SEGMENT,
};
use super::definition_api::{identifying_attributes, DefinitionCollection};
use super::existence::check_planned_scope;
use super::json::canonical_json;
use super::reconcile::timeouts_only_update;
use super::waits::POLICY_TIMEOUTS;

const DEFINITIONS: DefinitionCollection = DefinitionCollection {
    noun: "policy definition",
    segment: DEFINITIONS_SEGMENT,
    id_description: "policy definition ID such as /subscriptions/<id>/providers/Microsoft.Authorization/policyDefinitions/<name> or /providers/Microsoft.Management/managementGroups/<id>/providers/Microsoft.Authorization/policyDefinitions/<name>.",
};

const DEFAULT_EFFECTS: [&str; 3] = ["audit", "deny", "disabled"];

pub struct KubernetesDefinitionResource;

fn schema() -> Schema {
    let template = Block::new()
        .description("The parts of the ConstraintTemplate; the provider renders the YAML.")
        .attribute(
            Attribute::string("kind")
                .required()
                .description("The Constraint kind in CamelCase, e.g. `K8sNoLatestTag`. The template is named after its lower-case form."),
        )
        .attribute(
            Attribute::string("rego")
                .required()
                .description("The entry Rego module. It must define `violation`; Rego v0 unless it declares `import rego.v1`."),
        )
        .attribute(
            Attribute::new("libs", Type::list(Type::String))
                .optional()
                .description("Library modules, each `package lib.<name>`."),
        )
        .attribute(
            Attribute::string("parameters_schema")
                .optional()
                .description("The openAPIV3Schema of the constraint parameters, as JSON (`jsonencode({...})`). Each property becomes a definition parameter."),
        );
    let match_block = Block::new()
        .description("Which Kubernetes objects the policy reviews (Gatekeeper's `match.kinds`). Without a `match` block the definition, and its `test` blocks, review only Pods of the core API group (`api_groups = [\"\"]`, `kinds = [\"Pod\"]`); a Deployment is not reviewed unless its kind is listed.")
        .attribute(
            Attribute::new("api_groups", Type::list(Type::String))
                .default(Value::string_list([""]))
                .description("API groups; `\"\"` is the core group. Defaults to `[\"\"]`."),
        )
        .attribute(
            Attribute::new("kinds", Type::list(Type::String))
                .required()
                .description("Kinds, e.g. `[\"Pod\"]`."),
        );
    let test = Block::new()
        .description("A policy unit test evaluated at plan time (gator verify semantics). The object is reviewed as on an AKS cluster with this definition assigned with the test's `parameters`: by the Constraint the policy add-on would install, through the same matching and Rego evaluation as the emulator's admission webhook. So the `match` kinds apply (only core-group Pods without a `match` block), namespaced objects without `metadata.namespace` are in `default`, and the definition's default `excludedNamespaces` apply (`kube-system`, `gatekeeper-system`, `azure-arc`, `azure-extensions-usage-system`): override them in `parameters`, e.g. `excludedNamespaces = []`. Objects in `kube-system`, `gatekeeper-system` and `azure-arc` are never reviewed, whatever the parameters say, as the add-on always leaves them alone. A failing test is reported on its `name`.")
        .attribute(Attribute::string("name").required().description("Names the test in failures."))
        .attribute(
            Attribute::string("object")
                .required()
                .description("The object under review: a YAML manifest (each document reviewed) or an AdmissionReview."),
        )
        .attribute(
            Attribute::string("parameters")
                .optional()
                .description("Definition parameter values as a JSON object of plain values (like an assignment's), e.g. `jsonencode({ exemptImages = [\"x\"] })`. The standard parameters apply too: `excludedNamespaces`, `namespaces`, `labelSelector` (a Kubernetes label selector on the object's labels) and `effect` (when `default_effect` is `disabled`, tests review as `audit` unless they set `effect`). Template parameters left out are absent from the constraint (an assignment would have to give them)."),
        )
        .attribute(
            Attribute::new("inventory", Type::list(Type::String))
                .optional()
                .description("YAML manifests of cluster objects visible as `data.inventory`."),
        )
        .attribute(
            Attribute::string("violations")
                .default(Value::string("yes"))
                .description("`yes` (at least one), `no` (none) or a number (exactly that many). Defaults to `yes`."),
        )
        .attribute(
            Attribute::string("message")
                .optional()
                .description("A regular expression; only violations whose message matches count."),
        )
        .attribute(
            Attribute::string("external_data")
                .optional()
                .validate_with(validate_json_object)
                .description("What Gatekeeper external data providers answer during this test, as JSON: provider name -> key -> answer, where an answer is `{ value = ... }`, `{ error = \"...\" }` or a bare value, e.g. `jsonencode({ \"ratify-provider\" = { \"nginx:1.27\" = { error = \"no signature\" } } })`. `external_data({\"provider\": p, \"keys\": [...]})` then returns Gatekeeper's response (`responses`, `errors`, `system_error`, `status_code`); a provider not listed answers with a `system_error`."),
        )
        .attribute(
            Attribute::string("timeout")
                .optional()
                .description("How long evaluating the policy for one object may take, e.g. `10s`. Defaults to `5s`; an evaluation that runs longer (endless recursion, a huge comprehension) fails the test.")
                .validate_with(validate_duration),
        );
    Schema::new(
        identifying_attributes(
            Block::new()
                .description(
                "A custom Azure Policy definition for Kubernetes (mode `Microsoft.Kubernetes.Data`) \
                 whose Gatekeeper ConstraintTemplate is written in Rego. Templates, Rego and `test` \
                 blocks are checked at plan time.",
            ),
            "definition",
            "Where the definition lives: ",
        )
            .attribute(Attribute::string("display_name").optional().description("The display name."))
            .attribute(Attribute::string("description").optional().description("The description."))
            .attribute(
                Attribute::string("version")
                    .optional()
                    .computed()
                    .description("The definition version, `x.y.z` Azure reports `1.0.0` when none is set.")
                    .validate_with(validate_version),
            )
            .attribute(
                Attribute::string("metadata")
                    .optional()
                    .description("Extra metadata as JSON. `category` defaults to `Kubernetes`."),
            )
            .attribute(
                Attribute::string("constraint_template")
                    .optional()
                    .description("A complete ConstraintTemplate YAML (legacy `rego` or `code[]` form). Exclusive with `template` and `template_url`."),
            )
            .attribute(
                Attribute::string("template_url")
                    .optional()
                    .description("A public URL of the ConstraintTemplate (sent as `PublicURL`). Exclusive with `template` and `constraint_template`; `test` blocks cannot run against it."),
            )
            .attribute(
                Attribute::new("effects", Type::list(Type::String))
                    .default(Value::string_list(DEFAULT_EFFECTS))
                    .description("Effects an assignment may choose. Defaults to `[\"audit\", \"deny\", \"disabled\"]`."),
            )
            .attribute(
                Attribute::string("default_effect")
                    .default(Value::string("audit"))
                    .description("The `effect` parameter's default; one of `effects`. Defaults to `audit`."),
            )
            .attribute(
                Attribute::string("policy_rule")
                    .optional()
                    .computed()
                    .description("The policy rule as Azure holds it (canonical JSON), except that the embedded template's base64 `content` is replaced by a placeholder: the template itself is `rendered_template`. Generated from `match` and the template when not set; set it (as `terraform plan -generate-config-out` does after an import) to keep a rule written elsewhere exactly as it is. It must then agree with `match`."),
            )
            .attribute(
                Attribute::string("parameters")
                    .optional()
                    .computed()
                    .description("The parameter declarations as Azure holds them (canonical JSON). Generated from the template, `effects` and `default_effect` when not set; set it (as `terraform plan -generate-config-out` does after an import) to keep declarations written elsewhere, such as other `excludedNamespaces` defaults, exactly as they are. Its `effect` must then agree with `effects` and `default_effect`."),
            )
            .attribute(
                Attribute::string("rendered_template")
                    .computed()
                    .description("The ConstraintTemplate YAML embedded in the definition; null for `template_url`."),
            )
            .block(NestedBlock::list("template", template).items(0, 1))
            .block(NestedBlock::list("match", match_block))
            .block(NestedBlock::list("test", test))
            .block(timeouts::block(POLICY_TIMEOUTS)),
    )
}

/// A test's `timeout`: a duration such as `10s` (at most an hour).
fn parse_test_timeout(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() && d <= std::time::Duration::from_secs(3600) => Ok(d),
        Ok(_) => Err(format!("{text:?} must be more than zero and at most 1h")),
        Err(e) => Err(format!("{text:?} is not a duration like `10s` ({e})")),
    }
}

fn validate_duration(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(text) = value.as_str() else { return };
    if let Err(e) = parse_test_timeout(text) {
        diags.error_at(path.clone(), "Invalid timeout", e);
    }
}

/// What the configuration says the template is.
struct ResolvedTemplate {
    source: TemplateSource,
    /// None for `template_url`.
    template: Option<ConstraintTemplate>,
    /// The template's Rego, compiled; None for `template_url`.
    compiled: Option<CompiledRego>,
}

fn template_path() -> AttributePath {
    AttributePath::attr("template").index(0)
}

/// Where a module starts inside the template YAML (1-based line of its first non-empty line),
/// so errors can name a line of the file the user edits.
fn module_start_line(yaml: &str, module: &str) -> Option<usize> {
    let first = module.lines().find(|l| !l.trim().is_empty())?.trim();
    yaml.lines()
        .position(|l| l.trim() == first)
        .map(|i| i + 1 - module.lines().take_while(|l| l.trim().is_empty()).count())
}

fn rego_error_diag(
    err: &RegoError,
    template: &ConstraintTemplate,
    yaml: Option<&str>,
) -> Diagnostic {
    let Some(yaml) = yaml else {
        let path = match err.module() {
            Some(RegoModule::Lib(i)) => template_path().attribute("libs").index(i),
            _ => template_path().attribute("rego"),
        };
        return Diagnostic::error("Invalid Rego", err.to_string()).at(path);
    };
    let location = yaml_location(err, template, yaml);
    Diagnostic::error(
        "Invalid Rego",
        format!("In the template's Rego{location}: {err}"),
    )
    .at(AttributePath::attr("constraint_template"))
}

/// ` (line N of the YAML)` for an error with a Rego position, when the template is YAML.
fn yaml_location(err: &RegoError, template: &ConstraintTemplate, yaml: &str) -> String {
    let module_text = match err.module() {
        Some(RegoModule::Lib(i)) => template.rego.libs.get(i).map(String::as_str),
        _ => Some(template.rego.entry.as_str()),
    };
    match (err, module_text.and_then(|m| module_start_line(yaml, m))) {
        (RegoError::Syntax { line, .. } | RegoError::Runtime { line, .. }, Some(start)) => {
            format!(" (line {} of the YAML)", start + *line as usize - 1)
        }
        _ => String::new(),
    }
}

fn template_error_diag(err: &TemplateError, from_block: bool) -> Diagnostic {
    let path = if from_block {
        match err {
            TemplateError::Parameter { .. } => template_path().attribute("parameters_schema"),
            _ => template_path().attribute("kind"),
        }
    } else {
        AttributePath::attr("constraint_template")
    };
    Diagnostic::error("Invalid ConstraintTemplate", err.to_string()).at(path)
}

/// Resolves and checks the template from a wholly known configuration; `None` when an error
/// was reported.
fn resolve_template(config: &Value, diags: &mut Diagnostics) -> Option<ResolvedTemplate> {
    let block = config.get("template").elements().first().cloned();
    let yaml = config
        .get("constraint_template")
        .as_str()
        .map(str::to_string);
    let url = config.get("template_url").as_str().map(str::to_string);
    let count = [block.is_some(), yaml.is_some(), url.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if count != 1 {
        diags.push(Diagnostic::error(
            "Exactly one template source is required",
            "Set exactly one of the `template` block, `constraint_template` or `template_url`.",
        ));
        return None;
    }
    if let Some(url) = url {
        if !url.starts_with("https://") && !url.starts_with("http://") {
            diags.error_at(
                AttributePath::attr("template_url"),
                "Invalid template URL",
                format!("{url:?} is not an http(s) URL."),
            );
            return None;
        }
        if url.starts_with("http://") {
            diags.push(
                Diagnostic::warning(
                    "Template fetched without encryption",
                    format!(
                        "The Azure Policy add-on in each cluster downloads {url:?} over plain \
                         http, so anyone on the path can read or replace the Rego it enforces. \
                         Serve the template over https://."
                    ),
                )
                .at(AttributePath::attr("template_url")),
            );
        }
        return Some(ResolvedTemplate {
            source: TemplateSource::Url(url),
            template: None,
            compiled: None,
        });
    }
    let (rendered, template, from_block) = if let Some(block) = block {
        let schema = match block.get("parameters_schema").as_str() {
            None => None,
            Some(text) => match serde_json::from_str::<Json>(text) {
                Ok(v) => Some(v),
                Err(e) => {
                    diags.error_at(
                        template_path().attribute("parameters_schema"),
                        "Invalid parameters schema",
                        format!("Not valid JSON: {e}"),
                    );
                    return None;
                }
            },
        };
        let spec = TemplateSpec {
            kind: block.get("kind").as_str().unwrap_or_default().to_string(),
            rego: block.get("rego").as_str().unwrap_or_default().to_string(),
            libs: block.get("libs").string_elements(),
            parameters_schema: schema,
        };
        match spec.render() {
            Ok((yaml, template)) => (yaml, template, true),
            Err(e) => {
                diags.push(template_error_diag(&e, true));
                return None;
            }
        }
    } else {
        let text = yaml.unwrap_or_default();
        match ConstraintTemplate::parse(&text) {
            Ok(t) => (text, t, false),
            Err(e) => {
                diags.push(template_error_diag(&e, false));
                return None;
            }
        }
    };
    let compiled = match rego::compile(&template.rego) {
        Ok(c) => c,
        Err(e) => {
            let yaml = (!from_block).then_some(rendered.as_str());
            diags.push(rego_error_diag(&e, &template, yaml));
            return None;
        }
    };
    Some(ResolvedTemplate {
        source: TemplateSource::Embedded(rendered),
        template: Some(template),
        compiled: Some(compiled),
    })
}

fn matches_from(config: &Value) -> Vec<KindMatch> {
    let blocks = config.get("match").elements();
    if blocks.is_empty() {
        return vec![KindMatch {
            api_groups: vec![String::new()],
            kinds: vec!["Pod".to_string()],
        }];
    }
    blocks
        .iter()
        .map(|b| {
            let groups = b.get("api_groups");
            KindMatch {
                api_groups: if groups.is_null() {
                    vec![String::new()]
                } else {
                    groups.string_elements()
                },
                kinds: b.get("kinds").string_elements(),
            }
        })
        .collect()
}

fn string_list_or(config: &Value, name: &str, default: &[&str]) -> Vec<String> {
    let v = config.get(name);
    if v.is_null() {
        default.iter().map(|s| s.to_string()).collect()
    } else {
        v.string_elements()
    }
}

fn build_error_diag(err: &DefinitionBuildError) -> Diagnostic {
    let path = match err {
        DefinitionBuildError::ReservedParameter(_) => AttributePath::attr("template"),
        DefinitionBuildError::DefaultEffect { .. } => AttributePath::attr("default_effect"),
        DefinitionBuildError::Wildcard | DefinitionBuildError::NoKinds => {
            AttributePath::attr("match")
        }
    };
    Diagnostic::error("Invalid Kubernetes policy definition", err.to_string()).at(path)
}

/// What a wholly known configuration (or planned state) yields once checked. Every problem is
/// reported on its own attribute, so one plan shows all of them.
struct CheckedConfig {
    /// The definition, when nothing is wrong with it.
    spec: Option<KubernetesDefinitionSpec>,
    resolved: Option<ResolvedTemplate>,
    /// What `test` blocks run against, when the template and the match are usable.
    policy: Option<Arc<PlannedPolicy>>,
}

fn metadata_from(config: &Value, diags: &mut Diagnostics) -> Option<Map<String, Json>> {
    match config.get("metadata").as_str() {
        None => Some(Map::new()),
        Some(text) => match serde_json::from_str::<Json>(text) {
            Ok(Json::Object(m)) => Some(m),
            _ => {
                diags.error_at(
                    AttributePath::attr("metadata"),
                    "Invalid metadata",
                    "metadata must be a JSON object.",
                );
                None
            }
        },
    }
}

fn check_config(config: &Value, diags: &mut Diagnostics) -> CheckedConfig {
    let resolved = resolve_template(config, diags);
    let metadata = metadata_from(config, diags);
    let template_parameters = match resolved.as_ref().map(|r| r.template.as_ref()) {
        Some(Some(t)) => match t.parameters() {
            Ok(p) => Some(p),
            Err(e) => {
                diags.push(template_error_diag(
                    &e,
                    config.get("template").elements().len() == 1,
                ));
                None
            }
        },
        Some(None) => Some(Vec::new()),
        None => None,
    };
    let matches = matches_from(config);
    let effects = string_list_or(config, "effects", &DEFAULT_EFFECTS);
    let default_effect = config
        .get("default_effect")
        .as_str()
        .unwrap_or("audit")
        .to_string();
    let effect_ok = match check_default_effect(&effects, &default_effect) {
        Ok(()) => true,
        Err(e) => {
            diags.push(build_error_diag(&e));
            false
        }
    };
    let match_ok = match merged_match(&matches) {
        Ok(_) => true,
        Err(e) => {
            diags.push(build_error_diag(&e));
            false
        }
    };
    let mut checked = CheckedConfig {
        spec: None,
        resolved: None,
        policy: None,
    };
    let (Some(mut resolved), Some(template_parameters)) = (resolved, template_parameters) else {
        return checked;
    };
    let spec = KubernetesDefinitionSpec {
        display_name: config.get("display_name").as_str().map(str::to_string),
        description: config.get("description").as_str().map(str::to_string),
        version: config.get("version").as_str().map(str::to_string),
        metadata: metadata.clone().unwrap_or_default(),
        template: resolved.source.clone(),
        template_parameters,
        matches,
        effects,
        default_effect,
    };
    let parameters_ok = match spec.parameters() {
        Ok(_) => true,
        Err(e) => {
            diags.push(build_error_diag(&e));
            false
        }
    };
    if match_ok && parameters_ok {
        if let (Some(template), Some(compiled)) = (&resolved.template, resolved.compiled.take()) {
            // A bad default_effect is reported above; the tests still run, as `audit`.
            let mut tested = spec.clone();
            if !effect_ok {
                tested.default_effect = "audit".into();
                tested.effects = DEFAULT_EFFECTS.iter().map(|e| e.to_string()).collect();
            }
            checked.policy = PlannedPolicy::new(&tested, template.clone(), compiled).map(Arc::new);
        }
    }
    if effect_ok && match_ok && parameters_ok && metadata.is_some() {
        checked.spec = Some(spec);
    }
    checked.resolved = Some(resolved);
    checked
}

/// The definition spec from a wholly known configuration (or planned state).
fn spec_from(
    config: &Value,
    diags: &mut Diagnostics,
) -> Option<(KubernetesDefinitionSpec, ResolvedTemplate)> {
    let checked = check_config(config, diags);
    Some((checked.spec?, checked.resolved?))
}

/// Why one `test` block could not be judged, or how it failed; each names the attribute to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestProblem {
    #[error("object: {0}")]
    Object(String),
    #[error("parameters: {0}")]
    Parameters(String),
    #[error("inventory[{index}]: {message}")]
    Inventory { index: usize, message: String },
    #[error("message: invalid regular expression: {0}")]
    MessagePattern(String),
    #[error("violations must be yes, no or a number, not {0:?}")]
    Violations(String),
    #[error("the policy could not be evaluated: {0}")]
    Evaluation(String),
    /// Evaluating the Rego failed (runtime error, timeout, memory, Stop); `location` names the
    /// line of `constraint_template` when known.
    #[error("the policy could not be evaluated{location}: {error}")]
    Rego { error: RegoError, location: String },
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("external_data {0}")]
    ExternalData(String),
    #[error("expected violations = {expected}{filter}, but {counted} matched; the policy returned {actual}")]
    Unexpected {
        expected: String,
        filter: String,
        counted: usize,
        actual: String,
    },
}

impl TestProblem {
    /// The attribute of test block `index` that Terraform should highlight.
    fn attribute(&self, index: usize) -> AttributePath {
        let test = AttributePath::attr("test").index(index);
        match self {
            TestProblem::Object(_) => test.attribute("object"),
            TestProblem::Parameters(_) => test.attribute("parameters"),
            TestProblem::Inventory { index: i, .. } => test.attribute("inventory").index(*i),
            TestProblem::MessagePattern(_) => test.attribute("message"),
            TestProblem::Violations(_) => test.attribute("violations"),
            // The block itself: its name is what Terraform can point at.
            TestProblem::Timeout(_) => test.attribute("timeout"),
            TestProblem::ExternalData(_) => test.attribute("external_data"),
            TestProblem::Evaluation(_)
            | TestProblem::Rego { .. }
            | TestProblem::Unexpected { .. } => test.attribute("name"),
        }
    }
}

/// The plan-time stand-in for a cluster with this definition assigned: each `test` block's
/// object is reviewed by the constraint the add-on would install from the definition and the
/// test's parameters, through the same engine as the emulator's admission webhook
/// ([`crate::policy::gatekeeper::decide`], with AKS's exempt namespaces).
pub struct PlannedPolicy {
    rule: Json,
    declared: Json,
    template_parameters: Vec<String>,
    template: ConstraintTemplate,
    compiled: CompiledRego,
    /// Constraints by a test's `parameters` text.
    constraints: Mutex<ConstraintCache>,
}

type ConstraintCache = HashMap<Option<String>, Result<Option<Arc<Constraint>>, TestProblem>>;

impl PlannedPolicy {
    fn new(
        spec: &KubernetesDefinitionSpec,
        template: ConstraintTemplate,
        compiled: CompiledRego,
    ) -> Option<PlannedPolicy> {
        let mut rule = spec.policy_rule().ok()?;
        // The template is already compiled; its base64 copy would only be resolved per test.
        if let Some(Json::Object(details)) = rule.pointer_mut("/then/details") {
            details.remove("templateInfo");
        }
        let declared = serde_json::to_value(spec.parameters().ok()?).ok()?;
        Some(PlannedPolicy {
            rule,
            declared,
            template_parameters: spec
                .template_parameters
                .iter()
                .map(|p| p.name.clone())
                .collect(),
            template,
            compiled,
            constraints: Mutex::new(HashMap::new()),
        })
    }

    /// From a wholly known configuration; `Err` carries the problems that keep tests from
    /// running.
    pub fn from_config(config: &Value) -> Result<Arc<PlannedPolicy>, Diagnostics> {
        let mut diags = Diagnostics::new();
        let checked = check_config(config, &mut diags);
        checked.policy.ok_or(diags)
    }

    /// The constraint for a test's `parameters` text; `None` when the effect installs none.
    /// Tests usually share a few parameter sets, so each is built once.
    fn constraint_for(
        &self,
        parameters: Option<&str>,
    ) -> Result<Option<Arc<Constraint>>, TestProblem> {
        let key = parameters.map(str::to_string);
        let mut cache = match self.constraints.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(hit) = cache.get(&key) {
            return hit.clone();
        }
        let built = self.build_constraint(parameters);
        cache.insert(key, built.clone());
        built
    }

    fn build_constraint(
        &self,
        parameters: Option<&str>,
    ) -> Result<Option<Arc<Constraint>>, TestProblem> {
        let supplied = match parameters {
            None => Map::new(),
            Some(text) => match serde_json::from_str::<Json>(text) {
                Ok(Json::Object(m)) => m,
                _ => {
                    return Err(TestProblem::Parameters(
                        "must be a JSON object of parameter values".into(),
                    ))
                }
            },
        };
        let known = |k: &str| {
            self.template_parameters.iter().any(|p| p == k) || STANDARD_PARAMETERS.contains(&k)
        };
        if let Some(unknown) = supplied.keys().find(|k| !known(k)) {
            return Err(TestProblem::Parameters(format!(
                "{unknown:?} is not a parameter of this definition (known: {})",
                self.template_parameters
                    .iter()
                    .map(String::as_str)
                    .chain(STANDARD_PARAMETERS)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // As an assignment passes them: plain values wrapped as `{"value": ...}`.
        let wrapped: Map<String, Json> = supplied
            .iter()
            .map(|(k, v)| (k.clone(), json!({ "value": v })))
            .collect();
        let values = gatekeeper::effective_parameters(Some(&self.declared), &wrapped);
        // Tests describe the policy switched on: a `disabled` default reviews as audit unless
        // the test itself asks for `disabled`.
        let disabled_default = values
            .get("effect")
            .and_then(Json::as_str)
            .is_some_and(|e| e.eq_ignore_ascii_case("disabled"));
        let forced = (disabled_default && !supplied.contains_key("effect")).then_some("audit");
        Ok(gatekeeper::build_constraint_with_effect(
            &self.rule,
            &self.template,
            &values,
            forced,
            true,
            ConstraintOrigin::default(),
        )
        .map(Arc::new))
    }

    /// The violations the object(s) of one `test` block get, as the cluster would report them.
    pub fn review(&self, test: &Value) -> Result<Vec<ConstraintViolation>, TestProblem> {
        let objects = parse_yaml_documents(test.get("object").as_str().unwrap_or_default())
            .map_err(|e| TestProblem::Object(e.to_string()))?;
        if objects.is_empty() {
            return Err(TestProblem::Object("the YAML holds no document".into()));
        }
        let mut inventory_objects = Vec::new();
        for (index, doc) in test.get("inventory").elements().iter().enumerate() {
            let docs = parse_yaml_documents(doc.as_str().unwrap_or_default()).map_err(|e| {
                TestProblem::Inventory {
                    index,
                    message: e.to_string(),
                }
            })?;
            inventory_objects.extend(docs);
        }
        let inventory = rego::inventory_from(&inventory_objects);
        let Some(constraint) = self.constraint_for(test.get("parameters").as_str())? else {
            return Ok(Vec::new());
        };
        let active = [ActiveConstraint {
            constraint: &constraint,
            rego: &self.compiled,
        }];
        let options = eval_options(test)?;
        let mut violations = Vec::new();
        for object in &objects {
            let decision = gatekeeper::decide_with(
                &rego::review_for(object),
                &active,
                &inventory,
                &AKS_EXEMPT_NAMESPACES,
                &options,
            );
            if let Some(error) = decision.rego_errors.into_iter().next() {
                return Err(TestProblem::Rego {
                    error,
                    location: String::new(),
                });
            }
            if !decision.errors.is_empty() {
                return Err(TestProblem::Evaluation(decision.errors.join("; ")));
            }
            violations.extend(decision.violations);
        }
        Ok(violations)
    }
}

/// How one test block evaluates: its timeout and external data answers.
fn eval_options(test: &Value) -> Result<rego::EvalOptions, TestProblem> {
    let mut options = rego::EvalOptions::default();
    if let Some(text) = test.get("timeout").as_str() {
        options.timeout = parse_test_timeout(text).map_err(TestProblem::Timeout)?;
    }
    if let Some(text) = test.get("external_data").as_str() {
        options.external_data = match serde_json::from_str::<Json>(text) {
            Ok(Json::Object(m)) if m.values().all(Json::is_object) => m,
            _ => {
                return Err(TestProblem::ExternalData(
                    "must be a JSON object: provider name -> key -> answer".into(),
                ))
            }
        };
    }
    Ok(options)
}

/// Runs one `test` block: its review, then its assertion.
fn run_test(policy: &PlannedPolicy, test: &Value) -> Result<(), TestProblem> {
    let message = test.get("message").as_str();
    let pattern = message
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| TestProblem::MessagePattern(e.to_string()))?;
    let expected = test.get("violations").as_str().unwrap_or("yes").to_string();
    let wanted = match expected.as_str() {
        "yes" | "no" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| TestProblem::Violations(n.to_string()))?,
        ),
    };
    let violations = policy.review(test)?;
    let counted = violations
        .iter()
        .filter(|v| {
            pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&v.rego_message))
        })
        .count();
    let ok = match (expected.as_str(), wanted) {
        ("yes", _) => counted > 0,
        ("no", _) => counted == 0,
        (_, n) => Some(counted) == n,
    };
    if ok {
        return Ok(());
    }
    let actual = if violations.is_empty() {
        "no violations".to_string()
    } else {
        format!(
            "{} violation(s):\n{}",
            violations.len(),
            violations
                .iter()
                .map(|v| format!("  - {}", v.rego_message))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    Err(TestProblem::Unexpected {
        expected,
        filter: message
            .map(|m| format!(" matching /{m}/"))
            .unwrap_or_default(),
        counted,
        actual,
    })
}

fn run_tests(config: &Value, checked: &CheckedConfig, diags: &mut Diagnostics) {
    let tests = config.get("test").elements();
    if tests.is_empty() {
        return;
    }
    if matches!(
        checked.resolved.as_ref().map(|r| &r.source),
        Some(TemplateSource::Url(_))
    ) {
        diags.push(
            Diagnostic::warning(
                "Tests not run",
                "`test` blocks need the template's Rego; with `template_url` the provider does not fetch it, so the tests were skipped.",
            )
            .at(AttributePath::attr("test")),
        );
        return;
    }
    // Problems that keep the tests from running are already reported.
    let Some(policy) = &checked.policy else {
        return;
    };
    // Runtime errors name the line of the user's YAML when the template is one.
    let yaml = config.get("constraint_template").as_str();
    // All tests on one evaluation thread (bounded stack and memory; Stop ends the wait).
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let batch: Vec<Value> = tests.iter().map(Value::clone).collect();
    let (batch_policy, at) = (policy.clone(), running.clone());
    let outcomes = rego::on_evaluation_thread(move || {
        batch
            .iter()
            .enumerate()
            .map(|(i, test)| {
                at.store(i, std::sync::atomic::Ordering::SeqCst);
                test.is_wholly_known()
                    .then(|| run_test(&batch_policy, test))
            })
            .collect::<Vec<_>>()
    });
    let outcomes = outcomes.unwrap_or_else(|e| {
        // The batch as a whole was stopped: blame the test that was running.
        let at = running.load(std::sync::atomic::Ordering::SeqCst);
        let mut failed: Vec<Option<Result<(), TestProblem>>> = tests.iter().map(|_| None).collect();
        failed[at] = Some(Err(TestProblem::Rego {
            error: e,
            location: String::new(),
        }));
        failed
    });
    for (i, (test, outcome)) in tests.iter().zip(outcomes).enumerate() {
        let Some(outcome) = outcome else {
            continue;
        };
        let name = test.get("name").as_str().unwrap_or("unnamed");
        log::debug!("policy test {name:?}: {outcome:?}");
        if let Err(mut problem) = outcome {
            if let (TestProblem::Rego { error, location }, Some(yaml)) = (&mut problem, yaml) {
                *location = yaml_location(error, &policy.template, yaml);
            }
            diags.push(
                Diagnostic::error(
                    format!("Policy test {name:?} failed"),
                    format!("Test {name:?}: {problem}"),
                )
                .at(problem.attribute(i)),
            );
        }
    }
}

/// Stands in for the embedded template in `policy_rule`: the template is `rendered_template`,
/// and base64 in a plan diff tells nobody anything.
pub const TEMPLATE_CONTENT_PLACEHOLDER: &str = "(base64 of rendered_template)";

/// The rule as exposed in state: as sent, except the embedded template content.
fn exposed_rule(rule: &Json) -> Json {
    let mut rule = rule.clone();
    if let Some(Json::Object(info)) = rule.pointer_mut("/then/details/templateInfo") {
        if info.contains_key("content") {
            info.insert("content".into(), json!(TEMPLATE_CONTENT_PLACEHOLDER));
        }
    }
    rule
}

/// Metadata keys the provider writes itself when the user leaves them out.
fn implied_metadata(version: Option<&str>) -> Vec<(&'static str, Json)> {
    let mut out = vec![("category", json!("Kubernetes"))];
    if let Some(v) = version {
        out.push(("version", json!(v)));
    }
    out
}

fn same_strings(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// The `template` block Azure's template corresponds to, if it is one this provider renders.
fn block_from_template(t: &ConstraintTemplate) -> Value {
    Value::List(vec![Value::object([
        ("kind", Value::string(t.kind.clone())),
        ("rego", Value::string(t.rego.entry.clone())),
        (
            "libs",
            if t.rego.libs.is_empty() {
                Value::Null
            } else {
                Value::string_list(t.rego.libs.clone())
            },
        ),
        (
            "parameters_schema",
            Value::opt_string(t.parameters_schema.as_ref().map(canonical_json)),
        ),
    ])])
}

/// Reconciles the template attributes with what Azure holds, keeping the user's spelling when
/// it means the same.
fn reconcile_template(
    prior: &Value,
    azure_yaml: Option<&str>,
    azure_url: Option<&str>,
    state: &mut Value,
) {
    let prior_block = prior.get("template").elements().first().cloned();
    let prior_yaml = prior
        .get("constraint_template")
        .as_str()
        .map(str::to_string);
    let prior_url = prior.get("template_url").as_str().map(str::to_string);
    state.set("template", Value::List(Vec::new()));
    state.set("constraint_template", Value::Null);
    state.set("template_url", Value::Null);
    if let Some(url) = azure_url {
        state.set("template_url", Value::string(url));
        return;
    }
    let Some(yaml) = azure_yaml else { return };
    let parsed = ConstraintTemplate::parse(yaml).ok();
    if let Some(block) = prior_block {
        let Some(t) = parsed else {
            state.set("constraint_template", Value::string(yaml));
            return;
        };
        let prior_schema = block
            .get("parameters_schema")
            .as_str()
            .and_then(|s| serde_json::from_str::<Json>(s).ok());
        let mut out = block.clone();
        if block.get("kind").as_str() != Some(t.kind.as_str()) {
            out.set("kind", Value::string(t.kind.clone()));
        }
        if block.get("rego").as_str() != Some(t.rego.entry.as_str()) {
            out.set("rego", Value::string(t.rego.entry.clone()));
        }
        if block.get("libs").string_elements() != t.rego.libs {
            out.set(
                "libs",
                if t.rego.libs.is_empty() {
                    Value::Null
                } else {
                    Value::string_list(t.rego.libs.clone())
                },
            );
        }
        if prior_schema != t.parameters_schema {
            out.set(
                "parameters_schema",
                Value::opt_string(t.parameters_schema.as_ref().map(canonical_json)),
            );
        }
        state.set("template", Value::List(vec![out]));
        return;
    }
    if let Some(p) = prior_yaml {
        let same = match (parse_yaml(&p), parse_yaml(yaml)) {
            (Ok(a), Ok(b)) => a == b,
            _ => p == yaml,
        };
        state.set(
            "constraint_template",
            Value::string(if same { p } else { yaml.to_string() }),
        );
        return;
    }
    if prior_url.is_some() || parsed.is_none() {
        state.set("constraint_template", Value::string(yaml));
        return;
    }
    // Import: a template this provider rendered maps back to a `template` block.
    if let Some(t) = parsed {
        let spec = TemplateSpec {
            kind: t.kind.clone(),
            rego: t.rego.entry.clone(),
            libs: t.rego.libs.clone(),
            parameters_schema: t.parameters_schema.clone(),
        };
        if spec.document() == t.document {
            state.set("template", block_from_template(&t));
        } else {
            state.set("constraint_template", Value::string(yaml));
        }
    }
}

/// The new state from Azure's definition, reconciled with `prior` (a previous state, the
/// planned state after apply, or an import stub).
fn state_from(prior: &Value, definition: &PolicyDefinition, scope: &str) -> Value {
    let p = &definition.properties;
    let decoded = decode(p);
    let mut state = prior.clone();
    if !matches!(state, Value::Object(_)) {
        state = Value::Object(Default::default());
    }
    state.set("id", Value::opt_string(definition.id.clone()));
    if let Some(name) = &definition.name {
        state.set("name", Value::string(name.clone()));
    }
    state.set("scope", Value::string(scope));
    state.set("display_name", Value::opt_string(p.display_name.clone()));
    state.set("description", Value::opt_string(p.description.clone()));
    state.set("version", Value::opt_string(p.version.clone()));
    state.set(
        "metadata",
        user_metadata(
            p.metadata.as_ref(),
            prior.get("metadata"),
            &implied_metadata(p.version.as_deref()),
        ),
    );
    reconcile_template(
        prior,
        decoded.template_yaml.as_deref(),
        decoded.template_url.as_deref(),
        &mut state,
    );
    state.set(
        "rendered_template",
        Value::opt_string(decoded.template_yaml.clone()),
    );
    // Match: keep the user's blocks when they select the same kinds.
    let prior_matches = prior.get("match").elements().to_vec();
    let prior_groups: Vec<String> = prior_matches
        .iter()
        .flat_map(|m| m.get("api_groups").string_elements())
        .collect();
    let prior_kinds: Vec<String> = prior_matches
        .iter()
        .flat_map(|m| m.get("kinds").string_elements())
        .collect();
    let default_match =
        decoded.api_groups == [String::new()] && decoded.kinds == ["Pod".to_string()];
    // An import stub has no computed attributes yet; it gets an explicit match block, the
    // form the documentation shows.
    let importing = prior.get("policy_rule").is_null() && prior.get("rendered_template").is_null();
    let keep_match = if prior_matches.is_empty() {
        default_match && !importing
    } else {
        same_strings(&prior_groups, &decoded.api_groups)
            && same_strings(&prior_kinds, &decoded.kinds)
    };
    if decoded.kinds.is_empty() && decoded.api_groups.is_empty() {
        // The older rule form names no kinds (its constraint URL does): nothing to say here.
        state.set("match", Value::List(Vec::new()));
    } else if !keep_match {
        state.set(
            "match",
            Value::List(vec![Value::object([
                ("api_groups", Value::string_list(decoded.api_groups.clone())),
                ("kinds", Value::string_list(decoded.kinds.clone())),
            ])]),
        );
    } else if prior_matches.is_empty() {
        state.set("match", Value::List(Vec::new()));
    }
    let prior_effects = prior.get("effects").string_elements();
    if !(prior.get("effects").is_set() && prior_effects == decoded.effects) {
        state.set("effects", Value::string_list(decoded.effects.clone()));
    }
    state.set(
        "default_effect",
        Value::opt_string(decoded.default_effect.clone()),
    );
    let params = p
        .parameters
        .as_ref()
        .and_then(|x| serde_json::to_value(x).ok());
    state.set(
        "parameters",
        keep_json(prior.get("parameters"), params.as_ref()),
    );
    state.set(
        "policy_rule",
        keep_json(
            prior.get("policy_rule"),
            p.policy_rule.as_ref().map(exposed_rule).as_ref(),
        ),
    );
    if state.get("test").is_null() {
        state.set("test", Value::List(Vec::new()));
    }
    state
}

/// The body's properties: the ones generated from `spec`, with the `parameters` and
/// `policy_rule` that `config` (or a plan) spells out itself taking their place. A held rule
/// keeps the generated `templateInfo`, since the template attributes decide the template.
/// Held JSON that contradicts `match`, `effects` or `default_effect` is refused, because Azure
/// could then hold something other than what those attributes say.
fn properties_as_held(
    config: &Value,
    spec: &KubernetesDefinitionSpec,
) -> Result<PolicyDefinitionProperties, Diagnostics> {
    let mut properties = spec
        .properties()
        .map_err(|e| Diagnostics::from(build_error_diag(&e)))?;
    let generated = decode(&properties);
    let mut diags = Diagnostics::new();
    let held = |name: &str, diags: &mut Diagnostics| -> Option<Json> {
        let text = config.get(name).as_str()?;
        match serde_json::from_str::<Json>(text) {
            Ok(j @ Json::Object(_)) => Some(j),
            _ => {
                diags.error_at(
                    AttributePath::attr(name),
                    format!("Invalid {name}"),
                    format!("{name} must be a JSON object (use jsonencode), or be left out to have it generated."),
                );
                None
            }
        }
    };
    if let Some(params) = held("parameters", &mut diags) {
        match serde_json::from_value(params) {
            Ok(p) => properties.parameters = Some(p),
            Err(e) => diags.error_at(
                AttributePath::attr("parameters"),
                "Invalid parameters",
                format!("parameters must map each name to a declaration with a `type`: {e}"),
            ),
        }
    }
    if let Some(mut rule) = held("policy_rule", &mut diags) {
        // State shows the embedded template as a placeholder; the template attributes fill it.
        let content = "/then/details/templateInfo/content";
        if rule.pointer(content).and_then(Json::as_str) == Some(TEMPLATE_CONTENT_PLACEHOLDER) {
            if let (Some(slot), Some(generated)) = (
                rule.pointer_mut(content),
                properties
                    .policy_rule
                    .as_ref()
                    .and_then(|r| r.pointer(content)),
            ) {
                *slot = generated.clone();
            }
        }
        properties.policy_rule = Some(rule);
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let held = decode(&properties);
    if held.template_yaml != generated.template_yaml || held.template_url != generated.template_url
    {
        diags.error_at(
            AttributePath::attr("policy_rule"),
            "policy_rule does not match the template",
            format!(
                "policy_rule refers to {} but the configuration's template is {}. The template comes from `template`, `constraint_template` or `template_url`; in policy_rule write `then.details.templateInfo` as state shows it (`content` = {TEMPLATE_CONTENT_PLACEHOLDER:?} for an embedded template).",
                describe_template(&held),
                describe_template(&generated),
            ),
        );
    }
    // A rule in the older form (constraint URL, no kinds) leaves the kinds to the constraint.
    let held_selects = !held.kinds.is_empty() || !held.api_groups.is_empty();
    if held_selects
        && !(same_strings(&held.api_groups, &generated.api_groups)
            && same_strings(&held.kinds, &generated.kinds))
    {
        diags.error_at(
            AttributePath::attr("match"),
            "match does not agree with policy_rule",
            format!(
                "policy_rule selects api groups {:?} and kinds {:?}; match says {:?} and {:?}. Change both together.",
                held.api_groups, held.kinds, generated.api_groups, generated.kinds
            ),
        );
    }
    if held.effects != generated.effects || held.default_effect != generated.default_effect {
        diags.error_at(
            AttributePath::attr("effects"),
            "effects do not agree with parameters",
            format!(
                "parameters declares effect values {:?} with default {:?}; effects and default_effect say {:?} and {:?}. Change both together.",
                held.effects, held.default_effect, generated.effects, generated.default_effect
            ),
        );
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(properties)
    }
}

fn describe_template(d: &DecodedKubernetesDefinition) -> String {
    match (&d.template_url, &d.template_yaml) {
        (Some(url), _) => format!("the template at {url}"),
        (None, Some(_)) => "an embedded template".to_string(),
        (None, None) => "no template".to_string(),
    }
}

async fn put(ctx: &CallContext, req: &ApplyRequest<'_>) -> ApplyResult {
    let mut diags = Diagnostics::new();
    let Some((spec, _)) = spec_from(req.planned, &mut diags) else {
        return ApplyResult::failed(diags);
    };
    let properties = match properties_as_held(req.planned, &spec) {
        Ok(p) => p,
        Err(d) => {
            diags.extend(d);
            return ApplyResult::failed(diags);
        }
    };
    let Some(scope) = DEFINITIONS.write_scope(ctx, req, &mut diags) else {
        return ApplyResult::failed(diags);
    };
    let name = req.planned.get("name").as_str().unwrap_or_default();
    let body = PolicyDefinition {
        properties,
        ..Default::default()
    };
    match DEFINITIONS.put(ctx, &scope, name, &body).await {
        Ok(created) => {
            let mut state = state_from(req.planned, &created, &scope);
            // What the user wrote is what was applied; Azure's echo may differ in form only.
            for attr in [
                "template",
                "constraint_template",
                "template_url",
                "match",
                "effects",
                "test",
                "metadata",
            ] {
                state.set(attr, req.planned.get(attr).clone());
            }
            ApplyResult::ok(state)
        }
        Err(d) => ApplyResult::failed(d),
    }
}

#[async_trait]
impl Resource for KubernetesDefinitionResource {
    fn type_name(&self) -> &'static str {
        "akspolicy_kubernetes_definition"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate_config(&self, config: &Value, diags: &mut Diagnostics) {
        // Unknown values (from other resources) are checked again at apply.
        let inputs = [
            "template",
            "constraint_template",
            "template_url",
            "match",
            "effects",
            "default_effect",
            "metadata",
        ];
        if inputs.iter().any(|a| !config.get(a).is_wholly_known()) {
            return;
        }
        let checked = check_config(config, diags);
        run_tests(config, &checked, diags);
    }

    async fn modify_plan(&self, ctx: &CallContext, change: &mut PlanChange<'_>) {
        plan_default_scope(ctx, change);
        // Only a written scope: the default is the provider's own subscription.
        check_planned_scope(ctx, change).await;
        if !change.config.is_wholly_known() {
            return;
        }
        let mut scratch = Diagnostics::new();
        let Some((spec, resolved)) = spec_from(change.config, &mut scratch) else {
            return;
        };
        let properties = match properties_as_held(change.config, &spec) {
            Ok(p) => p,
            Err(d) => {
                // Only the held JSON can fail here: spec_from already built the spec.
                change.diags.extend(d);
                return;
            }
        };
        let (Some(new_params), Some(rule)) = (properties.parameters, properties.policy_rule) else {
            return;
        };
        // Everything Azure will hold is known now: plan it, so diffs show only real changes
        // instead of "(known after apply)" blobs. Held JSON is planned as written.
        if change.config.get("parameters").is_null() {
            if let Ok(params_json) = serde_json::to_value(&new_params) {
                change.planned.set(
                    "parameters",
                    keep_json(change.prior.get("parameters"), Some(&params_json)),
                );
            }
        }
        if change.config.get("policy_rule").is_null() {
            change.planned.set(
                "policy_rule",
                keep_json(change.prior.get("policy_rule"), Some(&exposed_rule(&rule))),
            );
        }
        change.planned.set(
            "rendered_template",
            match &resolved.source {
                TemplateSource::Embedded(yaml) => Value::string(yaml.clone()),
                TemplateSource::Url(_) => Value::Null,
            },
        );
        if change.prior.is_null() {
            return;
        }
        // Azure rejects updates that remove a parameter or change its type.
        let path = if change.config.get("parameters").is_set() {
            AttributePath::attr("parameters")
        } else if !change.config.get("template").elements().is_empty() {
            AttributePath::attr("template")
        } else {
            AttributePath::attr("constraint_template")
        };
        replace_on_breaking_parameters(change, &new_params, path);
    }

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResult {
        put(ctx, &req).await
    }

    async fn read(
        &self,
        ctx: &CallContext,
        state: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        DEFINITIONS.read(ctx, state, diags, state_from).await
    }

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResult {
        // `test` blocks and `timeouts` live only in Terraform; changing them (or recording
        // them after an import) needs no call to Azure.
        let mut unchanged = req.prior.clone();
        unchanged.set("test", req.planned.get("test").clone());
        if let Some(state) = timeouts_only_update(&unchanged, req.planned) {
            return ApplyResult::ok(state);
        }
        put(ctx, &req).await
    }

    async fn check_removal(
        &self,
        ctx: &CallContext,
        prior: &Value,
        removal: Removal,
        diags: &mut Diagnostics,
    ) {
        DEFINITIONS.check_removal(ctx, prior, removal, diags).await
    }

    async fn delete(&self, ctx: &CallContext, prior: &Value, diags: &mut Diagnostics) {
        DEFINITIONS.delete(ctx, prior, diags).await
    }

    async fn import(&self, _ctx: &CallContext, id: &str, diags: &mut Diagnostics) -> Option<Value> {
        DEFINITIONS.import(id, diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGO: &str = r#"package k8snolatesttag

violation[{"msg": msg}] {
  c := input.review.object.spec.containers[_]
  endswith(c.image, ":latest")
  not exempt(c.image)
  msg := sprintf("container %v uses the latest tag", [c.name])
}

exempt(image) {
  image == input.parameters.exemptImages[_]
}
"#;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: app\n    image: nginx:latest\n";

    fn config(tests: Vec<Value>) -> Value {
        Value::object([
            ("name", Value::string("k8s-no-latest")),
            (
                "template",
                Value::List(vec![Value::object([
                    ("kind", Value::string("K8sNoLatestTag")),
                    ("rego", Value::string(REGO)),
                    ("libs", Value::Null),
                    (
                        "parameters_schema",
                        Value::string(
                            r#"{"type":"object","properties":{"exemptImages":{"type":"array","items":{"type":"string"}}}}"#,
                        ),
                    ),
                ])]),
            ),
            ("constraint_template", Value::Null),
            ("template_url", Value::Null),
            ("match", Value::List(vec![])),
            ("effects", Value::Null),
            ("default_effect", Value::Null),
            ("metadata", Value::Null),
            ("test", Value::List(tests)),
        ])
    }

    fn test_block(name: &str, params: Value, violations: &str, message: Value) -> Value {
        Value::object([
            ("name", Value::string(name)),
            ("object", Value::string(POD)),
            ("parameters", params),
            ("inventory", Value::Null),
            ("violations", Value::string(violations)),
            ("message", message),
        ])
    }

    fn validate(config: &Value) -> Diagnostics {
        let mut d = Diagnostics::new();
        KubernetesDefinitionResource.validate_config(config, &mut d);
        d
    }

    #[test]
    fn schema_is_valid() {
        schema().block.validate().unwrap();
    }

    #[test]
    fn plain_http_template_url_is_a_warning() {
        for (url, warned) in [
            ("http://example.com/template.yaml", true),
            ("https://example.com/template.yaml", false),
        ] {
            let mut config = Value::Object(Default::default());
            config.set("template_url", Value::string(url));
            let mut d = Diagnostics::new();
            let resolved = resolve_template(&config, &mut d);
            assert!(resolved.is_some() && !d.has_errors(), "{:?}", d.0);
            let warning =
                d.0.iter()
                    .find(|w| w.summary == "Template fetched without encryption");
            assert_eq!(warning.is_some(), warned, "{url}: {:?}", d.0);
            if let Some(w) = warning {
                assert_eq!(w.attribute, Some(AttributePath::attr("template_url")));
            }
        }
    }

    #[test]
    fn passing_and_failing_tests() {
        let ok = config(vec![
            test_block(
                "latest refused",
                Value::Null,
                "yes",
                Value::string("latest"),
            ),
            test_block(
                "exempt passes",
                Value::string(r#"{"exemptImages":["nginx:latest"]}"#),
                "no",
                Value::Null,
            ),
        ]);
        let d = validate(&ok);
        assert!(!d.has_errors(), "{:?}", d.0);
        let bad = config(vec![test_block("wrong", Value::Null, "no", Value::Null)]);
        let d = validate(&bad);
        assert!(d.has_errors());
        let diag = &d.0[0];
        assert!(diag.summary.contains("wrong"), "{}", diag.summary);
        assert!(
            diag.detail.contains("container app uses the latest tag"),
            "{}",
            diag.detail
        );
    }

    #[test]
    fn every_problem_is_reported_on_its_attribute() {
        let mut c = config(vec![
            test_block("first", Value::Null, "no", Value::Null),
            test_block("fine", Value::Null, "yes", Value::Null),
            test_block("second", Value::Null, "2", Value::Null),
            test_block("bad json", Value::string("[1]"), "yes", Value::Null),
        ]);
        c.set("default_effect", Value::string("mutate"));
        let d = validate(&c);
        let paths: Vec<String> =
            d.0.iter()
                .filter_map(|d| d.attribute.as_ref().map(|p| p.to_string()))
                .collect();
        assert_eq!(
            paths,
            [
                "default_effect",
                "test[0].name",
                "test[2].name",
                "test[3].parameters"
            ],
            "{:?}",
            d.0
        );
    }

    #[test]
    fn parameters_a_test_leaves_out_are_absent() {
        let rego = "package k8sx\n\nviolation[{\"msg\": \"no exemptImages\"}] {\n  not input.parameters.exemptImages\n}\n";
        let mut c = config(vec![
            test_block("absent", Value::Null, "yes", Value::Null),
            test_block(
                "given",
                Value::string(r#"{"exemptImages":[]}"#),
                "no",
                Value::Null,
            ),
        ]);
        let mut block = c.get("template").elements()[0].clone();
        block.set("rego", Value::string(rego));
        block.set("kind", Value::string("K8sX"));
        c.set("template", Value::List(vec![block]));
        let d = validate(&c);
        assert!(!d.has_errors(), "{:?}", d.0);
    }

    #[test]
    fn tests_review_what_the_add_on_reviews() {
        let in_ns =
            |ns: &str| POD.replace("  name: p\n", &format!("  name: p\n  namespace: {ns}\n"));
        let case = |object: String, params: Value, expected: &str| {
            let mut t = test_block("t", params, expected, Value::Null);
            t.set("object", Value::string(object));
            let d = validate(&config(vec![t]));
            assert!(!d.has_errors(), "{:?}", d.0);
        };
        // Azure's default exclusions apply, and can be overridden except for the namespaces
        // the add-on always leaves alone.
        case(in_ns("azure-extensions-usage-system"), Value::Null, "no");
        let none = Value::string(r#"{"excludedNamespaces":[]}"#);
        case(in_ns("azure-extensions-usage-system"), none.clone(), "yes");
        case(in_ns("kube-system"), none.clone(), "no");
        case(in_ns("azure-arc"), none, "no");
        // Without a match block only core-group Pods are reviewed, even when another kind
        // carries the same fields.
        case(
            POD.replace("kind: Pod", "kind: PodTemplate"),
            Value::Null,
            "no",
        );
        case(
            POD.replace("apiVersion: v1", "apiVersion: example.com/v1"),
            Value::Null,
            "no",
        );
        case(POD.to_string(), Value::Null, "yes");
    }

    #[test]
    fn rego_errors_point_at_the_rego_with_position() {
        let mut c = config(vec![]);
        let mut block = c.get("template").elements()[0].clone();
        block.set(
            "rego",
            Value::string("package x\n\nviolation[{\"msg\": m}] {\n  m := \n}\n"),
        );
        c.set("template", Value::List(vec![block]));
        let d = validate(&c);
        let diag =
            d.0.iter()
                .find(|d| d.summary == "Invalid Rego")
                .expect("rego error");
        assert_eq!(
            diag.attribute.as_ref().map(|p| p.to_string()).as_deref(),
            Some("template[0].rego")
        );
        assert!(diag.detail.starts_with("rego:"), "{}", diag.detail);
    }

    fn azure_copy(config: &Value) -> PolicyDefinition {
        let mut d = Diagnostics::new();
        let (spec, _) = spec_from(config, &mut d).expect("valid config");
        PolicyDefinition {
            id: Some("/subscriptions/s/providers/Microsoft.Authorization/policyDefinitions/k8s-no-latest".into()),
            name: Some("k8s-no-latest".into()),
            properties: spec.properties().expect("properties"),
            ..Default::default()
        }
    }

    #[test]
    fn read_keeps_the_users_form_and_maps_drift_back_to_rego() {
        let cfg = config(vec![]);
        let azure = azure_copy(&cfg);
        let state = state_from(&cfg, &azure, "/subscriptions/s");
        assert_eq!(state.get("template"), cfg.get("template"));
        assert!(state
            .get("policy_rule")
            .as_str()
            .is_some_and(|r| r.contains(TEMPLATE_CONTENT_PLACEHOLDER)));

        let mut drifted_cfg = cfg.clone();
        let mut block = cfg.get("template").elements()[0].clone();
        block.set(
            "rego",
            Value::string(REGO.replace("uses the latest tag", "is latest")),
        );
        drifted_cfg.set("template", Value::List(vec![block.clone()]));
        let drifted = azure_copy(&drifted_cfg);
        let again = state_from(&state, &drifted, "/subscriptions/s");
        assert_eq!(
            again.get("template").elements()[0].get("rego"),
            block.get("rego")
        );
        // Only the rendered template changes; the rule exposed in state does not.
        assert_eq!(again.get("policy_rule"), state.get("policy_rule"));
    }

    #[test]
    fn match_and_effect_drift_is_shown_on_those_attributes() {
        let cfg = config(vec![]);
        let state = state_from(&cfg, &azure_copy(&cfg), "/subscriptions/s");
        let mut changed = cfg.clone();
        changed.set(
            "match",
            Value::List(vec![Value::object([
                ("api_groups", Value::string_list(["apps"])),
                ("kinds", Value::string_list(["Deployment"])),
            ])]),
        );
        changed.set("default_effect", Value::string("deny"));
        let again = state_from(&state, &azure_copy(&changed), "/subscriptions/s");
        assert_eq!(again.get("match"), changed.get("match"));
        assert_eq!(again.get("default_effect").as_str(), Some("deny"));
        assert_eq!(again.get("template"), cfg.get("template"));
    }

    #[test]
    fn import_recovers_template_block_and_match() {
        let azure = azure_copy(&config(vec![]));
        let stub = Value::object([
            ("id", Value::string(azure.id.clone().unwrap_or_default())),
            ("name", Value::string("k8s-no-latest")),
            ("scope", Value::string("/subscriptions/s")),
        ]);
        let state = state_from(&stub, &azure, "/subscriptions/s");
        let block = &state.get("template").elements()[0];
        assert_eq!(block.get("kind").as_str(), Some("K8sNoLatestTag"));
        assert_eq!(block.get("rego").as_str(), Some(REGO));
        assert_eq!(
            state.get("match").elements()[0]
                .get("kinds")
                .string_elements(),
            vec!["Pod".to_string()]
        );
        assert_eq!(state.get("default_effect").as_str(), Some("audit"));
    }

    #[test]
    fn rego_errors_in_full_templates_name_the_yaml_line() {
        let yaml = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8sx\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sX\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n        package k8sx\n        violation[{\"msg\": m}] {\n          m := \"a\"\n          1 +* 2\n        }\n";
        let mut c = config(vec![]);
        c.set("template", Value::List(vec![]));
        c.set("constraint_template", Value::string(yaml));
        let d = validate(&c);
        let diag =
            d.0.iter()
                .find(|d| d.summary == "Invalid Rego")
                .expect("rego error");
        assert!(
            diag.detail.contains("line 16 of the YAML"),
            "{}",
            diag.detail
        );
        assert!(diag.detail.contains("rego:4:"), "{}", diag.detail);
    }

    #[test]
    fn runtime_errors_in_tests_name_the_yaml_line() {
        // Two values for one complete rule: an error only once a Pod is reviewed.
        let yaml = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8sx\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sX\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n        package k8sx\n        kind = 1 { input.review.object.kind == \"Pod\" }\n        kind = 2 { input.review.object.kind == \"Pod\" }\n        violation[{\"msg\": m}] {\n          kind > 0\n          m := \"a\"\n        }\n";
        let mut c = config(vec![test_block("pod", Value::Null, "yes", Value::Null)]);
        c.set("template", Value::List(vec![]));
        c.set("constraint_template", Value::string(yaml));
        let d = validate(&c);
        let diag =
            d.0.iter()
                .find(|d| d.summary.contains("Policy test \"pod\" failed"))
                .unwrap_or_else(|| panic!("no test failure in {:?}", d.0));
        assert!(
            diag.detail.contains("of the YAML")
                && diag.detail.contains("evaluation failed at rego:"),
            "{}",
            diag.detail
        );
    }

    #[test]
    fn tests_apply_the_standard_match_parameters() {
        let cases = [
            (r#"{"labelSelector":{"matchLabels":{"team":"a"}}}"#, "no"),
            (r#"{"excludedNamespaces":["default"]}"#, "no"),
            (r#"{"namespaces":["prod"]}"#, "no"),
            (r#"{"namespaces":["def*"]}"#, "yes"),
        ];
        for (params, expected) in cases {
            let c = config(vec![test_block(
                "t",
                Value::string(params),
                expected,
                Value::Null,
            )]);
            let d = validate(&c);
            assert!(!d.has_errors(), "{params}: {:?}", d.0);
        }
    }

    #[test]
    fn v1_syntax_without_import_gets_a_hint() {
        let mut c = config(vec![]);
        let mut block = c.get("template").elements()[0].clone();
        block.set(
            "rego",
            Value::string("package x\n\nviolation contains {\"msg\": \"m\"} if {\n  input.review.object.kind == \"Pod\"\n}\n"),
        );
        c.set("template", Value::List(vec![block]));
        let d = validate(&c);
        let diag =
            d.0.iter()
                .find(|d| d.summary == "Invalid Rego")
                .expect("rego error");
        assert!(diag.detail.contains("import rego.v1"), "{}", diag.detail);
    }

    #[test]
    fn metadata_ignores_what_azure_and_the_provider_add() {
        let azure = json!({"category": "Kubernetes", "createdBy": "x", "version": "1.0.0"});
        assert_eq!(
            user_metadata(Some(&azure), &Value::Null, &implied_metadata(Some("1.0.0"))),
            Value::Null
        );
        let prior = Value::string(r#"{ "owner": "team" }"#);
        let azure = json!({"category": "Kubernetes", "owner": "team", "updatedOn": "t"});
        assert_eq!(
            user_metadata(Some(&azure), &prior, &implied_metadata(None)),
            prior
        );
        let azure = json!({"category": "Kubernetes", "owner": "other"});
        assert_eq!(
            user_metadata(Some(&azure), &prior, &implied_metadata(None)),
            Value::string(r#"{"owner":"other"}"#)
        );
    }
}
