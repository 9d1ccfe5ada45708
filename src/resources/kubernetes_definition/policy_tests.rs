//! The `test` blocks: each is reviewed at plan time by the constraint the add-on would install
//! from the definition, through the same engine as the emulator's admission webhook.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value as Json};

use crate::framework::typed::Typed;
use crate::framework::{AttributePath, Diagnostic, Diagnostics, Value};
use crate::policy::constraint::{
    self, ActiveConstraint, Constraint, ConstraintOrigin, ConstraintViolation,
    AKS_EXEMPT_NAMESPACES,
};
use crate::policy::constraint_template::{parse_yaml_documents, ConstraintTemplate};
use crate::policy::kubernetes_body::{
    KubernetesDefinitionSpec, TemplateSource, STANDARD_PARAMETERS,
};
use crate::policy::rego::{self, CompiledRego, RegoError};

use super::schema::{parse_test_timeout, KubernetesDefinition, TestBlock};
use super::template::yaml_location;
use super::{check_config, CheckedConfig};

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
/// ([`crate::policy::constraint::decide`], with AKS's exempt namespaces).
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
    pub(super) fn new(
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
        let config = KubernetesDefinition::decode(config)?;
        let mut diags = Diagnostics::new();
        let checked = check_config(&config, &mut diags);
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
        let values = constraint::effective_parameters(Some(&self.declared), &wrapped);
        // Tests describe the policy switched on: a `disabled` default reviews as audit unless
        // the test itself asks for `disabled`.
        let disabled_default = values
            .get("effect")
            .and_then(Json::as_str)
            .is_some_and(|e| e.eq_ignore_ascii_case("disabled"));
        let forced = (disabled_default && !supplied.contains_key("effect")).then_some("audit");
        Ok(constraint::build_constraint_with_effect(
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
    pub fn review(&self, test: &TestBlock) -> Result<Vec<ConstraintViolation>, TestProblem> {
        let objects = parse_yaml_documents(test.object.as_deref().unwrap_or_default())
            .map_err(|e| TestProblem::Object(e.to_string()))?;
        if objects.is_empty() {
            return Err(TestProblem::Object("the YAML holds no document".into()));
        }
        let mut inventory_objects = Vec::new();
        for (index, doc) in test.inventory.iter().flatten().enumerate() {
            let docs = parse_yaml_documents(doc).map_err(|e| TestProblem::Inventory {
                index,
                message: e.to_string(),
            })?;
            inventory_objects.extend(docs);
        }
        let inventory = rego::inventory_from(&inventory_objects);
        let Some(constraint) = self.constraint_for(test.parameters.as_deref())? else {
            return Ok(Vec::new());
        };
        let active = [ActiveConstraint {
            constraint: &constraint,
            rego: &self.compiled,
        }];
        let options = eval_options(test)?;
        let mut violations = Vec::new();
        for object in &objects {
            let decision = constraint::decide_with(
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
fn eval_options(test: &TestBlock) -> Result<rego::EvalOptions, TestProblem> {
    let mut options = rego::EvalOptions::default();
    if let Some(text) = &test.timeout {
        options.timeout = parse_test_timeout(text).map_err(TestProblem::Timeout)?;
    }
    if let Some(text) = &test.external_data {
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
fn run_test(policy: &PlannedPolicy, test: &TestBlock) -> Result<(), TestProblem> {
    let message = test.message.as_deref();
    let pattern = message
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| TestProblem::MessagePattern(e.to_string()))?;
    let expected = test.violations.as_deref().unwrap_or("yes").to_string();
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

pub(super) fn run_tests(
    config: &KubernetesDefinition,
    checked: &CheckedConfig,
    diags: &mut Diagnostics,
) {
    let tests = &config.test;
    if tests.is_empty() {
        return;
    }
    if matches!(
        checked.resolved.as_ref().map(|r| &r.source),
        Some(TemplateSource::Url(_))
    ) {
        diags.warning_at(
            AttributePath::attr("test"),
            "Tests not run",
            "`test` blocks need the template's Rego; with `template_url` the provider does not fetch it, so the tests were skipped.",
        );
        return;
    }
    // Problems that keep the tests from running are already reported.
    let Some(policy) = &checked.policy else {
        return;
    };
    // Runtime errors name the line of the user's YAML when the template is one.
    let yaml = config.constraint_template.as_deref();
    // All tests on one evaluation thread (bounded stack and memory; Stop ends the wait).
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let batch = tests.clone();
    let (batch_policy, at) = (policy.clone(), running.clone());
    let outcomes = rego::on_evaluation_thread(move || {
        batch
            .iter()
            .enumerate()
            .map(|(i, test)| {
                at.store(i, std::sync::atomic::Ordering::SeqCst);
                test.known.then(|| run_test(&batch_policy, test))
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
        let name = test.name.as_deref().unwrap_or("unnamed");
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
