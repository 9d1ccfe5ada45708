//! Resource `akspolicy_definition`: a custom Azure Policy definition of any mode (e.g. the
//! DeployIfNotExists rules an AKS estate needs beside its Kubernetes policies). The JSON
//! attributes are compared semantically so Azure's formatting never shows as drift.
//!
//! Also home of the helpers both definition resources share (scopes, IDs, JSON reconciliation).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value as Json};

use crate::framework::timeouts;
use crate::framework::typed::Knowable;
use crate::framework::{
    Attribute, AttributePath, Block, CallContext, Diagnostic, Diagnostics, ModifyPlanRequest,
    ModifyPlanResponse, Schema, Value,
};
use crate::policy::references::{policy_rule_parameter_references, undeclared};
use crate::policy::{ParameterDefinition, PolicyDefinition, PolicyDefinitionProperties};

use super::provider::Configured;
use super::shared::definition_api::{
    definition_kind, definition_state, descriptive_attributes, identifying_attributes,
    DefinitionLike,
};
use super::shared::identity::Identity;
use super::shared::json::{canonical_json, json_text};
use super::shared::waits::POLICY_TIMEOUTS;

pub(crate) const DEFINITIONS_SEGMENT: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/";

/// Metadata keys Azure adds on its own; never the user's.
pub(crate) const SYSTEM_METADATA_KEYS: [&str; 4] =
    ["createdBy", "createdOn", "updatedBy", "updatedOn"];

/// Checks a `scope` attribute: a subscription or management group ID.
pub(crate) fn validate_scope(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(scope) = value.as_str() else { return };
    if parse_scope(scope).is_none() {
        diags.error_at(
            path.clone(),
            "Invalid scope",
            format!("{scope:?} is neither `/subscriptions/<subscription id>` nor `/providers/Microsoft.Management/managementGroups/<group id>`."),
        );
    }
}

/// The scope without a trailing slash, if it is a subscription or management group ID.
pub(crate) fn parse_scope(scope: &str) -> Option<String> {
    let trimmed = scope.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').collect();
    let ok = match parts.as_slice() {
        ["", s, id] => s.eq_ignore_ascii_case("subscriptions") && !id.is_empty(),
        ["", p, ns, m, id] => {
            p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Management")
                && m.eq_ignore_ascii_case("managementGroups")
                && !id.is_empty()
        }
        _ => false,
    };
    ok.then(|| trimmed.to_string())
}

/// Checks an `x.y.z` version attribute.
pub(crate) fn validate_version(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(v) = value.as_str() else { return };
    let ok = v.split('.').count() == 3
        && v.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !ok {
        diags.error_at(
            path.clone(),
            "Invalid version",
            format!("{v:?} is not a version of the form x.y.z (e.g. 1.0.0)."),
        );
    }
}

/// Checks that an attribute holds a JSON object.
pub(crate) fn validate_json_object(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(text) = value.as_str() else { return };
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(_)) => {}
        Ok(_) => diags.error_at(path.clone(), "Invalid JSON", "Expected a JSON object."),
        Err(e) => diags.error_at(path.clone(), "Invalid JSON", format!("Not valid JSON: {e}")),
    }
}

/// Splits an ID of the form `<scope><segment><name>` into (scope, name).
pub(crate) fn split_scoped_id(id: &str, segment: &str) -> Option<(String, String)> {
    let lower = id.to_ascii_lowercase();
    let at = lower.find(&segment.to_ascii_lowercase())?;
    let name = &id[at + segment.len()..];
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some((parse_scope(&id[..at])?, name.to_string()))
}

/// Keeps `prior` when it means the same as `fresh`, so Azure's formatting never shows as drift.
pub(crate) fn keep_json(prior: Option<&str>, fresh: Option<&Json>) -> Option<String> {
    match (prior, fresh) {
        (Some(p), Some(f)) if serde_json::from_str::<Json>(p).is_ok_and(|p| &p == f) => {
            Some(p.to_string())
        }
        (_, Some(f)) => Some(canonical_json(f)),
        (_, None) => None,
    }
}

/// The `parameters` attribute from Azure's parameter declarations, kept in `prior`'s
/// spelling when it means the same. Azure's empty declarations read as unset, unless the
/// state had a value.
pub(crate) fn keep_parameters(
    prior: &Knowable<String>,
    declared: Option<&BTreeMap<String, ParameterDefinition>>,
) -> Knowable<String> {
    let declared = declared
        .filter(|m| !m.is_empty() || prior.known().is_some())
        .and_then(|x| serde_json::to_value(x).ok());
    keep_json(prior.as_deref(), declared.as_ref()).into()
}

/// The user's part of Azure's metadata: without system keys, and without keys the provider
/// adds itself (`implied`) when the user did not write them.
pub(crate) fn user_metadata(
    azure: Option<&Json>,
    prior: Option<&str>,
    implied: &[(&str, Json)],
) -> Option<String> {
    let prior_json = prior.and_then(|p| serde_json::from_str::<Json>(p).ok());
    let prior_map = prior_json.as_ref().and_then(Json::as_object);
    let mut m = azure.and_then(Json::as_object).cloned().unwrap_or_default();
    for k in SYSTEM_METADATA_KEYS {
        m.remove(k);
    }
    let user_has = |k: &str| prior_map.is_some_and(|p| p.contains_key(k));
    for (k, v) in implied {
        if !user_has(k) && m.get(*k) == Some(v) {
            m.remove(*k);
        }
    }
    if m.is_empty() && prior_map.is_none_or(|p| p.is_empty()) {
        return prior.map(str::to_string);
    }
    keep_json(prior, Some(&Json::Object(m)))
}

/// The `metadata` attribute of a Kubernetes definition as a JSON object (empty when unset);
/// `None` after reporting that it is not one.
pub(crate) fn metadata_object(
    text: Option<&str>,
    diags: &mut Diagnostics,
) -> Option<Map<String, Json>> {
    match text {
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

/// Metadata keys the provider writes itself into a Kubernetes definition when the user leaves
/// them out.
pub(crate) fn implied_kubernetes_metadata(version: Option<&str>) -> Vec<(&'static str, Json)> {
    let mut out = vec![("category", serde_json::json!("Kubernetes"))];
    if let Some(v) = version {
        out.push(("version", serde_json::json!(v)));
    }
    out
}

/// Plans the provider's subscription as `scope` when the configuration leaves it out, so the
/// ID is known at plan time.
pub(crate) fn plan_default_scope(
    ctx: &CallContext,
    req: ModifyPlanRequest<'_>,
    change: &mut ModifyPlanResponse,
) {
    if Identity::of(&change.planned).scope.is_unknown() && Identity::of(req.config).scope.is_null()
    {
        if let Some(scope) = planned_scope(ctx, req.config) {
            change.planned.set("scope", Value::string(scope));
        }
    }
}

/// The scope from the configuration, else the provider's subscription.
pub(crate) fn planned_scope(ctx: &CallContext, config: &Value) -> Option<String> {
    if let Some(s) = Identity::of(config).scope.as_deref() {
        return parse_scope(s);
    }
    let configured = ctx.provider::<Configured>().ok()?;
    configured
        .client
        .subscription_id()
        .map(|s| format!("/subscriptions/{s}"))
}

/// Reasons Azure would refuse to update `prior` parameters into `new` ones (removed or retyped).
fn breaking_parameter_changes(
    prior: Option<&str>,
    new: &BTreeMap<String, ParameterDefinition>,
) -> Vec<String> {
    let Some(prior) = prior.and_then(|s| serde_json::from_str::<Map<String, Json>>(s).ok()) else {
        return Vec::new();
    };
    let mut reasons = Vec::new();
    for (name, decl) in &prior {
        let prior_type = decl.get("type").and_then(Json::as_str).unwrap_or("");
        match new.get(name) {
            None => reasons.push(format!("parameter {name:?} is removed")),
            Some(p) if !p.parameter_type.eq_ignore_ascii_case(prior_type) => reasons.push(format!(
                "parameter {name:?} changes type from {prior_type} to {}",
                p.parameter_type
            )),
            _ => {}
        }
    }
    reasons
}

/// Plans a replacement, with a warning that says why, when the `new` parameter declarations
/// break the `prior` ones (the prior state's `parameters`): Azure refuses such an update.
/// `path` is the attribute that declares them.
pub(crate) fn replace_on_breaking_parameters(
    change: &mut ModifyPlanResponse,
    prior: Option<&str>,
    new: &BTreeMap<String, ParameterDefinition>,
    path: AttributePath,
) {
    let reasons = breaking_parameter_changes(prior, new);
    if !reasons.is_empty() {
        change.requires_replace.push(path.clone());
        change.diags.push(replacement_warning(&reasons, path));
    }
}

/// The warning that goes with a replacement forced by [`breaking_parameter_changes`].
fn replacement_warning(reasons: &[String], path: AttributePath) -> Diagnostic {
    Diagnostic::warning(
        "Policy definition will be replaced",
        format!(
            "Azure does not allow updating a definition when {}; the definition is deleted and \
             created again, which fails while assignments still use it.",
            reasons.join(" and ")
        ),
    )
    .at(path)
}

pub struct DefinitionResource;

fn schema() -> Schema {
    let identified = identifying_attributes(
        Block::new().description(
            "A custom Azure Policy definition of any mode. `policy_rule`, `parameters` and \
             `metadata` are JSON, compared by meaning rather than by text.",
        ),
        "definition",
        "",
    )
    .attribute(
        Attribute::string("mode")
            .default(Value::string("All"))
            .description("`All`, `Indexed`, or a resource provider mode such as `Microsoft.Kubernetes.Data`. Defaults to `All`."),
    );
    Schema::new(
        descriptive_attributes(
            identified,
            "The definition version, `x.y.z` Azure reports `1.0.0` when none is set.",
        )
        .attribute(
            Attribute::string("policy_rule")
                .required()
                .description("The policy rule (`if`/`then`) as JSON.")
                .validate_with(validate_json_object),
        )
        .attribute(
            Attribute::string("parameters")
                .optional()
                .description("Parameter declarations as JSON.")
                .validate_with(validate_json_object),
        )
        .attribute(
            Attribute::string("metadata")
                .optional()
                .description("Metadata as JSON (e.g. `{\"category\": \"Kubernetes\"}`).")
                .validate_with(validate_json_object),
        )
        .block(timeouts::block(POLICY_TIMEOUTS)),
    )
}

/// The parameters a definition's or initiative's `parameters` JSON declares (`None` when
/// unset); the error names what is wrong with a declaration.
pub(crate) fn parameters_of(
    text: Option<&str>,
) -> Result<Option<BTreeMap<String, ParameterDefinition>>, Diagnostic> {
    match json_text(text) {
        None => Ok(None),
        Some(j) => serde_json::from_value(j).map(Some).map_err(|e| {
            Diagnostic::error(
                "Invalid parameters",
                format!("Each parameter needs at least a `type`: {e}"),
            )
            .at(AttributePath::attr("parameters"))
        }),
    }
}

/// Plans a replacement when an update's `parameters` (the attribute a definition or an
/// initiative declares its parameters in) break the prior state's; see
/// [`replace_on_breaking_parameters`].
pub(crate) fn replace_on_breaking_declarations(
    req: ModifyPlanRequest<'_>,
    change: &mut ModifyPlanResponse,
) {
    let declared = req.config.get("parameters");
    if req.prior.is_null() || declared.is_unknown() {
        return;
    }
    if let Ok(new) = parameters_of(declared.as_str()) {
        replace_on_breaking_parameters(
            change,
            req.prior.get("parameters").as_str(),
            &new.unwrap_or_default(),
            AttributePath::attr("parameters"),
        );
    }
}

definition_state! {
    /// The resource's configuration, plan or state.
    pub struct Definition {
        pub mode: Option<String>,
        pub policy_rule: Knowable<String>,
        pub parameters: Knowable<String>,
        pub timeouts: Value,
    }
}

/// Policy parameters the rule uses that `parameters` does not declare (see
/// [`policy_rule_parameter_references`] for what counts as a use).
fn undeclared_parameters(
    rule: &Json,
    declared: &BTreeMap<String, ParameterDefinition>,
) -> Vec<String> {
    let referenced = policy_rule_parameter_references(rule);
    undeclared(&referenced, declared)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// The definition's own attributes from Azure's definition `d`, reconciled with `prior`. The
/// provider never writes `metadata.version` itself, so Azure's metadata is the user's (an
/// imported copy of a built-in keeps its `version` key): no metadata is implied.
fn reconcile(prior: &Definition, mut state: Definition, d: &PolicyDefinition) -> Definition {
    let p = &d.properties;
    // Modes are case-insensitive in Azure.
    state.mode = match (prior.mode.as_deref(), p.mode.as_deref()) {
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => Some(a.to_string()),
        (_, m) => m.map(str::to_string),
    };
    state.policy_rule = keep_json(prior.policy_rule.as_deref(), p.policy_rule.as_ref()).into();
    state.parameters = keep_parameters(&prior.parameters, p.parameters.as_ref());
    state
}

#[async_trait]
impl DefinitionLike for DefinitionResource {
    definition_kind!(
        "akspolicy_definition",
        PolicyDefinition,
        Definition,
        schema()
    );

    const CHECKED_INPUTS: &'static [&'static str] = &["policy_rule", "parameters"];

    fn check_config(config: &Definition, diags: &mut Diagnostics) {
        let declared = match parameters_of(config.parameters.as_deref()) {
            Ok(p) => p.unwrap_or_default(),
            Err(d) => return diags.push(d),
        };
        if let Some(rule) = json_text(config.policy_rule.as_deref()) {
            let missing = undeclared_parameters(&rule, &declared);
            if !missing.is_empty() {
                diags.error_at(
                    AttributePath::attr("policy_rule"),
                    "Undeclared parameter",
                    format!(
                        "The rule uses parameters({}) but `parameters` does not declare {}.",
                        missing.join(", "),
                        if missing.len() == 1 { "it" } else { "them" }
                    ),
                );
            }
            if rule.get("if").is_none() || rule.get("then").is_none() {
                diags.error_at(
                    AttributePath::attr("policy_rule"),
                    "Incomplete policy rule",
                    "A policy rule needs both `if` and `then`.",
                );
            }
        }
    }

    async fn refine_plan(
        &self,
        _ctx: &CallContext,
        req: ModifyPlanRequest<'_>,
        change: &mut ModifyPlanResponse,
    ) {
        replace_on_breaking_declarations(req, change);
    }

    fn properties_of(
        config: &Definition,
        diags: &mut Diagnostics,
    ) -> Option<PolicyDefinitionProperties> {
        let parameters = parameters_of(config.parameters.as_deref())
            .map_err(|d| diags.push(d))
            .ok()?;
        Some(PolicyDefinitionProperties {
            policy_type: Some("Custom".into()),
            mode: config.mode.clone(),
            display_name: config.display_name.clone(),
            description: config.description.clone(),
            metadata: json_text(config.metadata.as_deref()),
            parameters,
            policy_rule: json_text(config.policy_rule.as_deref()),
            version: config.version.as_deref().map(str::to_string),
            ..Default::default()
        })
    }

    fn reconcile(prior: &Definition, state: Definition, remote: &PolicyDefinition) -> Definition {
        reconcile(prior, state, remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_keeps_the_users_spelling_when_equal() {
        let prior = Some("{ \"b\": 1, \"a\": 2 }");
        assert_eq!(
            keep_json(prior, Some(&json!({"a": 2, "b": 1}))).as_deref(),
            prior
        );
        assert_eq!(
            keep_json(prior, Some(&json!({"a": 3, "b": 1}))).as_deref(),
            Some(r#"{"a":3,"b":1}"#)
        );
    }

    #[test]
    fn undeclared_parameters_are_found() {
        let rule = json!({"if": {"field": "type", "equals": "[parameters('kind')]"},
                          "then": {"effect": "[parameters('effect')]"}});
        let declared: BTreeMap<String, ParameterDefinition> =
            serde_json::from_value(json!({"effect": {"type": "String"}})).unwrap();
        assert_eq!(
            undeclared_parameters(&rule, &declared),
            vec!["kind".to_string()]
        );
    }

    #[test]
    fn breaking_changes_are_reported() {
        let prior = r#"{"a":{"type":"String"},"b":{"type":"Array"}}"#;
        let new: BTreeMap<String, ParameterDefinition> =
            serde_json::from_value(json!({"a": {"type": "Integer"}})).unwrap();
        let reasons = breaking_parameter_changes(Some(prior), &new);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
    }

    #[test]
    fn scopes_and_ids() {
        assert_eq!(
            parse_scope("/subscriptions/s/"),
            Some("/subscriptions/s".into())
        );
        assert!(parse_scope("/resourceGroups/x").is_none());
        assert_eq!(
            split_scoped_id("/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Authorization/policyDefinitions/d", DEFINITIONS_SEGMENT),
            Some(("/providers/Microsoft.Management/managementGroups/mg".into(), "d".into()))
        );
    }
}
