//! The definition's state from what Azure holds, and the body a plan writes.

use serde_json::Value as Json;

use crate::framework::{AttributePath, Diagnostics};
use crate::policy::kubernetes_body::{
    decode, DecodedKubernetesDefinition, KubernetesDefinitionSpec,
};
use crate::policy::{PolicyDefinition, PolicyDefinitionProperties};
use crate::resources::definition::keep_json;

use super::build_error_diag;
use super::schema::{KubernetesDefinition, MatchBlock};
use super::template::{exposed_rule, reconcile_template, TEMPLATE_CONTENT_PLACEHOLDER};

fn same_strings(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// The definition's own attributes from Azure's definition, reconciled with `prior` (a
/// previous state, the planned state after apply, or an import stub).
pub(super) fn reconcile(
    prior: &KubernetesDefinition,
    mut state: KubernetesDefinition,
    definition: &PolicyDefinition,
) -> KubernetesDefinition {
    let p = &definition.properties;
    let decoded = decode(p);
    reconcile_template(
        prior,
        decoded.template_yaml.as_deref(),
        decoded.template_url.as_deref(),
        &mut state,
    );
    state.rendered_template = decoded.template_yaml.clone().into();
    // Match: keep the user's blocks when they select the same kinds.
    let prior_groups: Vec<String> = prior
        .r#match
        .iter()
        .flat_map(|m| m.api_groups.iter().flatten().cloned())
        .collect();
    let prior_kinds: Vec<String> = prior
        .r#match
        .iter()
        .flat_map(|m| m.kinds.iter().cloned())
        .collect();
    let default_match =
        decoded.api_groups == [String::new()] && decoded.kinds == ["Pod".to_string()];
    // An import stub has no computed attributes yet; it gets an explicit match block, the
    // form the documentation shows.
    let importing = prior.policy_rule.is_null() && prior.rendered_template.is_null();
    let keep_match = if prior.r#match.is_empty() {
        default_match && !importing
    } else {
        same_strings(&prior_groups, &decoded.api_groups)
            && same_strings(&prior_kinds, &decoded.kinds)
    };
    if decoded.kinds.is_empty() && decoded.api_groups.is_empty() {
        // The older rule form names no kinds (its constraint URL does): nothing to say here.
        state.r#match = Vec::new();
    } else if !keep_match {
        state.r#match = vec![MatchBlock {
            api_groups: Some(decoded.api_groups.clone()),
            kinds: decoded.kinds.clone(),
        }];
    }
    if prior.effects.as_ref() != Some(&decoded.effects) {
        state.effects = Some(decoded.effects.clone());
    }
    state.default_effect = decoded.default_effect.clone();
    let params = p
        .parameters
        .as_ref()
        .and_then(|x| serde_json::to_value(x).ok());
    state.parameters = keep_json(prior.parameters.as_deref(), params.as_ref()).into();
    state.policy_rule = keep_json(
        prior.policy_rule.as_deref(),
        p.policy_rule.as_ref().map(exposed_rule).as_ref(),
    )
    .into();
    state
}

/// The body's properties: the ones generated from `spec`, with the `parameters` and
/// `policy_rule` that `config` (or a plan) spells out itself taking their place. A held rule
/// keeps the generated `templateInfo`, since the template attributes decide the template.
/// Held JSON that contradicts `match`, `effects` or `default_effect` is refused, because Azure
/// could then hold something other than what those attributes say.
pub(super) fn properties_as_held(
    config: &KubernetesDefinition,
    spec: &KubernetesDefinitionSpec,
) -> Result<PolicyDefinitionProperties, Diagnostics> {
    let mut properties = spec
        .properties()
        .map_err(|e| Diagnostics::from(build_error_diag(&e)))?;
    let generated = decode(&properties);
    let mut diags = Diagnostics::new();
    let held = |name: &str, text: Option<&str>, diags: &mut Diagnostics| -> Option<Json> {
        let text = text?;
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
    if let Some(params) = held("parameters", config.parameters.as_deref(), &mut diags) {
        match serde_json::from_value(params) {
            Ok(p) => properties.parameters = Some(p),
            Err(e) => diags.error_at(
                AttributePath::attr("parameters"),
                "Invalid parameters",
                format!("parameters must map each name to a declaration with a `type`: {e}"),
            ),
        }
    }
    if let Some(mut rule) = held("policy_rule", config.policy_rule.as_deref(), &mut diags) {
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
    let disagreements = [
        (
            held_selects
                && !(same_strings(&held.api_groups, &generated.api_groups)
                    && same_strings(&held.kinds, &generated.kinds)),
            "match",
            "match does not agree with policy_rule",
            format!(
                "policy_rule selects api groups {:?} and kinds {:?}; match says {:?} and {:?}.",
                held.api_groups, held.kinds, generated.api_groups, generated.kinds
            ),
        ),
        (
            held.effects != generated.effects || held.default_effect != generated.default_effect,
            "effects",
            "effects do not agree with parameters",
            format!(
                "parameters declares effect values {:?} with default {:?}; effects and default_effect say {:?} and {:?}.",
                held.effects, held.default_effect, generated.effects, generated.default_effect
            ),
        ),
    ];
    for (disagrees, attribute, summary, detail) in disagreements {
        if disagrees {
            diags.error_at(
                AttributePath::attr(attribute),
                summary,
                format!("{detail} Change both together."),
            );
        }
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
