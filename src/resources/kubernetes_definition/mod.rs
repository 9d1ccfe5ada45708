//! Resource `akspolicy_kubernetes_definition`: a custom Azure Policy definition of mode
//! `Microsoft.Kubernetes.Data` whose Gatekeeper ConstraintTemplate the user writes in Rego.
//! Everything that can be checked without Azure — YAML, template rules, Rego compilation and the
//! user's `test` blocks — is checked at plan time.
//!
//! - `schema.rs`: the schema and the typed state it decodes into;
//! - `template.rs`: the ConstraintTemplate from the configuration, and back from Azure's copy;
//! - `policy_tests.rs`: the `test` blocks, reviewed at plan time;
//! - `state.rs`: state from Azure's definition, and the body a plan writes;
//! - here: the checks that tie them together, and the CRUD.

mod policy_tests;
mod schema;
mod state;
mod template;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::framework::typed::{Knowable, Typed};
use crate::framework::{
    AttributePath, CallContext, Diagnostic, Diagnostics, ModifyPlanRequest, ModifyPlanResponse,
};
use crate::policy::kubernetes_body::{
    check_default_effect, merged_match, DefinitionBuildError, KindMatch, KubernetesDefinitionSpec,
    TemplateSource,
};
use crate::policy::{PolicyDefinition, PolicyDefinitionProperties};

use super::definition::{
    implied_kubernetes_metadata, keep_json, metadata_object, replace_on_breaking_parameters,
};
use super::shared::definition_api::{definition_kind, DefinitionLike};

pub use policy_tests::{PlannedPolicy, TestProblem};
pub use schema::{KubernetesDefinition, MatchBlock, TemplateBlock, TestBlock};
pub use template::TEMPLATE_CONTENT_PLACEHOLDER;

use policy_tests::run_tests;
use state::properties_as_held;
use template::{exposed_rule, resolve_template, template_error_diag, ResolvedTemplate};

const DEFAULT_EFFECTS: [&str; 3] = ["audit", "deny", "disabled"];

pub struct KubernetesDefinitionResource;

fn matches_from(config: &KubernetesDefinition) -> Vec<KindMatch> {
    if config.r#match.is_empty() {
        return vec![KindMatch {
            api_groups: vec![String::new()],
            kinds: vec!["Pod".to_string()],
        }];
    }
    config
        .r#match
        .iter()
        .map(|b| KindMatch {
            api_groups: b.api_groups.clone().unwrap_or_else(|| vec![String::new()]),
            kinds: b.kinds.clone(),
        })
        .collect()
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

fn check_config(config: &KubernetesDefinition, diags: &mut Diagnostics) -> CheckedConfig {
    let resolved = resolve_template(config, diags);
    let metadata = metadata_object(config.metadata.as_deref(), diags);
    let template_parameters = match resolved.as_ref().map(|r| r.template.as_ref()) {
        Some(Some(t)) => match t.parameters() {
            Ok(p) => Some(p),
            Err(e) => {
                diags.push(template_error_diag(&e, config.template.len() == 1));
                None
            }
        },
        Some(None) => Some(Vec::new()),
        None => None,
    };
    let matches = matches_from(config);
    let effects = config
        .effects
        .clone()
        .unwrap_or_else(|| DEFAULT_EFFECTS.map(str::to_string).to_vec());
    let default_effect = config
        .default_effect
        .clone()
        .unwrap_or_else(|| "audit".to_string());
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
        display_name: config.display_name.clone(),
        description: config.description.clone(),
        version: config.version.as_deref().map(str::to_string),
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
    config: &KubernetesDefinition,
    diags: &mut Diagnostics,
) -> Option<(KubernetesDefinitionSpec, ResolvedTemplate)> {
    let checked = check_config(config, diags);
    Some((checked.spec?, checked.resolved?))
}

#[async_trait]
impl DefinitionLike for KubernetesDefinitionResource {
    definition_kind!(
        "akspolicy_kubernetes_definition",
        PolicyDefinition,
        KubernetesDefinition,
        schema::schema()
    );

    const CHECKED_INPUTS: &'static [&'static str] = &[
        "template",
        "constraint_template",
        "template_url",
        "match",
        "effects",
        "default_effect",
        "metadata",
    ];

    fn check_config(config: &KubernetesDefinition, diags: &mut Diagnostics) {
        let checked = check_config(config, diags);
        run_tests(config, &checked, diags);
    }

    async fn refine_plan(
        &self,
        _ctx: &CallContext,
        req: ModifyPlanRequest<'_>,
        change: &mut ModifyPlanResponse,
    ) {
        if !req.config.is_wholly_known() {
            return;
        }
        // With the configuration known, only computed attributes may be unknown, and those
        // are `Knowable`: the planned state survives decoding unchanged.
        let (config, mut planned) = match (
            KubernetesDefinition::decode(req.config),
            KubernetesDefinition::decode(&change.planned),
        ) {
            (Ok(c), Ok(p)) => (c, p),
            (Err(e), _) | (_, Err(e)) => return change.diags.extend(e.into()),
        };
        // Null on create.
        let prior = KubernetesDefinition::decode(req.prior).unwrap_or_default();
        let mut scratch = Diagnostics::new();
        let Some((spec, resolved)) = spec_from(&config, &mut scratch) else {
            return;
        };
        let properties = match properties_as_held(&config, &spec) {
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
        if config.parameters.is_null() {
            if let Ok(params_json) = serde_json::to_value(&new_params) {
                planned.parameters =
                    keep_json(prior.parameters.as_deref(), Some(&params_json)).into();
            }
        }
        if config.policy_rule.is_null() {
            planned.policy_rule =
                keep_json(prior.policy_rule.as_deref(), Some(&exposed_rule(&rule))).into();
        }
        planned.rendered_template = match &resolved.source {
            TemplateSource::Embedded(yaml) => Knowable::Known(yaml.clone()),
            TemplateSource::Url(_) => Knowable::Null,
        };
        change.planned = planned.to_value();
        if req.prior.is_null() {
            return;
        }
        // Azure rejects updates that remove a parameter or change its type.
        let path = if config.parameters.known().is_some() {
            AttributePath::attr("parameters")
        } else if !config.template.is_empty() {
            AttributePath::attr("template")
        } else {
            AttributePath::attr("constraint_template")
        };
        replace_on_breaking_parameters(change, prior.parameters.as_deref(), &new_params, path);
    }

    const AS_WRITTEN: &'static [&'static str] = &[
        "template",
        "constraint_template",
        "template_url",
        "match",
        "effects",
        "test",
        "metadata",
    ];

    fn properties_of(
        planned: &KubernetesDefinition,
        diags: &mut Diagnostics,
    ) -> Option<PolicyDefinitionProperties> {
        let (spec, _) = spec_from(planned, diags)?;
        properties_as_held(planned, &spec)
            .map_err(|d| diags.extend(d))
            .ok()
    }

    fn implied_metadata(remote: &PolicyDefinition) -> Vec<(&'static str, Json)> {
        implied_kubernetes_metadata(remote.properties.version.as_deref())
    }

    fn reconcile(
        prior: &KubernetesDefinition,
        state: KubernetesDefinition,
        remote: &PolicyDefinition,
    ) -> KubernetesDefinition {
        state::reconcile(prior, state, remote)
    }
}
