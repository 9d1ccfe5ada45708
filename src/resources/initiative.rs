//! Resource `akspolicy_initiative`: a custom policy set definition at subscription or management
//! group scope. Member parameters are checked at plan time against the initiative's parameters
//! and against the member definitions themselves (built-ins are read once per run).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use crate::framework::timeouts;
use crate::framework::{
    ApplyRequest, ApplyResult, Attribute, AttributePath, Block, CallContext, Diagnostic,
    Diagnostics, NestedBlock, PlanChange, Removal, Resource, Schema, Type, Value,
};
use crate::policy::references::value_parameter_references;
use crate::policy::{
    ParameterDefinition, PolicyDefinition, PolicyDefinitionReference, PolicySetDefinition,
    PolicySetDefinitionProperties,
};

use super::definition::{
    keep_json, parameters_of, plan_default_scope, replace_on_breaking_parameters, user_metadata,
    validate_json_object, validate_version, API_VERSION,
};
use super::definition_api::{identifying_attributes, DefinitionCollection};
use super::existence::check_planned_scope;
use super::json::json_attribute;
use super::provider::Configured;
use super::reconcile::timeouts_only_update;
use super::waits::POLICY_TIMEOUTS;

const SETS: DefinitionCollection = DefinitionCollection {
    noun: "initiative",
    segment: "/providers/Microsoft.Authorization/policySetDefinitions/",
    id_description: "policy set definition ID such as /subscriptions/<id>/providers/Microsoft.Authorization/policySetDefinitions/<name>.",
};

pub struct InitiativeResource;

fn schema() -> Schema {
    let member = Block::new()
        .description("A member policy definition.")
        .attribute(
            Attribute::string("policy_definition_id")
                .required()
                .description("The member definition's ID (built-in or custom)."),
        )
        .attribute(
            Attribute::string("reference_id")
                .optional()
                .computed()
                .description("The member's reference ID, unique in the initiative; Azure generates one when left out."),
        )
        .attribute(
            Attribute::string("parameters")
                .optional()
                .description("Values for the member's parameters as a JSON object of plain values or expressions, e.g. `jsonencode({ effect = \"[parameters('effect')]\" })`; compared by meaning.")
                .validate_with(validate_json_object),
        )
        .attribute(
            Attribute::string("definition_version")
                .optional()
                .computed()
                .description("Pins the member definition's version, e.g. `9.*.*`. Azure fills `1.*.*` when left out."),
        )
        .attribute(
            Attribute::new("group_names", Type::list(Type::String))
                .optional()
                .description("Names of `policy_definition_group` blocks this member belongs to."),
        );
    let group = Block::new()
        .description("A group of members (e.g. a compliance control).")
        .attribute(
            Attribute::string("name")
                .required()
                .description("The group's name."),
        )
        .attribute(
            Attribute::string("display_name")
                .optional()
                .description("The display name."),
        )
        .attribute(
            Attribute::string("category")
                .optional()
                .description("The category."),
        )
        .attribute(
            Attribute::string("description")
                .optional()
                .description("The description."),
        );
    Schema::new(
        identifying_attributes(
            Block::new().description("A custom Azure Policy initiative (policy set definition)."),
            "initiative",
            "",
        )
        .attribute(
            Attribute::string("display_name")
                .optional()
                .description("The display name."),
        )
        .attribute(
            Attribute::string("description")
                .optional()
                .description("The description."),
        )
        .attribute(
            Attribute::string("version")
                .optional()
                .computed()
                .description(
                    "The initiative version, `x.y.z` Azure reports `1.0.0` when none is set.",
                )
                .validate_with(validate_version),
        )
        .attribute(
            Attribute::string("metadata")
                .optional()
                .description("Metadata as JSON.")
                .validate_with(validate_json_object),
        )
        .attribute(
            Attribute::string("parameters")
                .optional()
                .description("The initiative's parameter declarations as JSON.")
                .validate_with(validate_json_object),
        )
        .block(NestedBlock::list("policy_definition", member).items(1, 0))
        .block(NestedBlock::list("policy_definition_group", group))
        .block(timeouts::block(POLICY_TIMEOUTS)),
    )
}

fn declared_parameters(config: &Value) -> Result<BTreeMap<String, ParameterDefinition>, String> {
    parameters_of(config).map(Option::unwrap_or_default)
}

fn member_values(member: &Value) -> Json {
    json_attribute(member, "parameters").unwrap_or(Json::Null)
}

fn member_parameters(member: &Value) -> Option<Map<String, Json>> {
    match member_values(member) {
        Json::Object(m) => Some(
            m.into_iter()
                .map(|(k, v)| (k, json!({"value": v})))
                .collect(),
        ),
        _ => None,
    }
}

fn properties_of(config: &Value) -> Result<PolicySetDefinitionProperties, Diagnostic> {
    let parameters = declared_parameters(config).map_err(|e| {
        Diagnostic::error(
            "Invalid parameters",
            format!("Each parameter needs at least a `type`: {e}"),
        )
        .at(AttributePath::attr("parameters"))
    })?;
    let members = config
        .get("policy_definition")
        .elements()
        .iter()
        .map(|m| PolicyDefinitionReference {
            policy_definition_id: m
                .get("policy_definition_id")
                .as_str()
                .unwrap_or_default()
                .to_string(),
            policy_definition_reference_id: m.get("reference_id").as_str().map(str::to_string),
            parameters: member_parameters(m),
            group_names: m
                .get("group_names")
                .is_set()
                .then(|| m.get("group_names").string_elements()),
            definition_version: m.get("definition_version").as_str().map(str::to_string),
            ..Default::default()
        })
        .collect();
    let groups: Vec<Json> = config
        .get("policy_definition_group")
        .elements()
        .iter()
        .map(|g| {
            let mut o = Map::new();
            o.insert(
                "name".into(),
                json!(g.get("name").as_str().unwrap_or_default()),
            );
            for (attr, key) in [
                ("display_name", "displayName"),
                ("category", "category"),
                ("description", "description"),
            ] {
                if let Some(s) = g.get(attr).as_str() {
                    o.insert(key.into(), json!(s));
                }
            }
            Json::Object(o)
        })
        .collect();
    Ok(PolicySetDefinitionProperties {
        policy_type: Some("Custom".into()),
        display_name: config.get("display_name").as_str().map(str::to_string),
        description: config.get("description").as_str().map(str::to_string),
        metadata: json_attribute(config, "metadata"),
        parameters: (!parameters.is_empty() || config.get("parameters").is_set())
            .then_some(parameters),
        policy_definitions: members,
        policy_definition_groups: (!groups.is_empty()).then_some(Json::Array(groups)),
        version: config.get("version").as_str().map(str::to_string),
        ..Default::default()
    })
}

/// Built-in definitions read during this run (they cannot change under us).
fn builtin_cache() -> &'static Mutex<HashMap<String, PolicyDefinition>> {
    static CACHE: OnceLock<Mutex<HashMap<String, PolicyDefinition>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn is_builtin(id: &str) -> bool {
    id.to_ascii_lowercase()
        .starts_with("/providers/microsoft.authorization/policydefinitions/")
}

/// Whether `version` satisfies a pin such as `9.*.*` or `1.2.0`.
pub(crate) fn version_matches(pin: &str, version: &str) -> bool {
    let pin_parts: Vec<&str> = pin.split('.').collect();
    let parts: Vec<&str> = version.split('.').collect();
    pin_parts.len() == parts.len()
        && pin_parts
            .iter()
            .zip(&parts)
            .all(|(p, v)| *p == "*" || p == v)
}

async fn member_definition(
    ctx: &CallContext,
    id: &str,
    pin: Option<&str>,
) -> Result<Option<PolicyDefinition>, String> {
    let key = format!("{}@{}", id.to_ascii_lowercase(), pin.unwrap_or(""));
    if is_builtin(id) {
        if let Some(d) = builtin_cache()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(Some(d.clone()));
        }
    }
    let configured = ctx
        .provider::<Configured>()
        .map_err(|_| "provider not configured".to_string())?;
    let current = configured
        .client
        .get_optional::<PolicyDefinition>(id, API_VERSION)
        .await
        .map_err(|e| e.to_string())?;
    let Some(current) = current else {
        return Ok(None);
    };
    let resolved = match (pin, current.properties.version.as_deref()) {
        (Some(pin), Some(v)) if !version_matches(pin, v) => {
            // The pin names an older version; Azure serves each under .../versions/{x.y.z}.
            let versions = current.properties.versions.clone().unwrap_or_default();
            match versions.iter().find(|v| version_matches(pin, v)) {
                Some(v) => configured
                    .client
                    .get_optional::<PolicyDefinition>(&format!("{id}/versions/{v}"), API_VERSION)
                    .await
                    .map_err(|e| e.to_string())?,
                None => {
                    return Err(format!(
                        "no version of {id} matches definition_version {pin:?} (available: {})",
                        versions.join(", ")
                    ))
                }
            }
        }
        _ => Some(current),
    };
    if let (true, Some(d)) = (is_builtin(id), &resolved) {
        builtin_cache()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, d.clone());
    }
    Ok(resolved)
}

fn state_from(prior: &Value, s: &PolicySetDefinition, scope: &str) -> Value {
    let p = &s.properties;
    let mut state = prior.clone();
    if !matches!(state, Value::Object(_)) {
        state = Value::Object(Default::default());
    }
    state.set("id", Value::opt_string(s.id.clone()));
    if let Some(name) = &s.name {
        state.set("name", Value::string(name.clone()));
    }
    state.set("scope", Value::string(scope));
    state.set("display_name", Value::opt_string(p.display_name.clone()));
    state.set("description", Value::opt_string(p.description.clone()));
    state.set("version", Value::opt_string(p.version.clone()));
    state.set(
        "metadata",
        // The provider never writes `metadata.version` itself, so Azure's metadata is the user's
        // (an imported copy of a built-in keeps its `version` key).
        user_metadata(p.metadata.as_ref(), prior.get("metadata"), &[]),
    );
    let params = p
        .parameters
        .as_ref()
        .filter(|m| !m.is_empty() || prior.get("parameters").is_set())
        .and_then(|x| serde_json::to_value(x).ok());
    state.set(
        "parameters",
        keep_json(prior.get("parameters"), params.as_ref()),
    );
    let prior_members = prior.get("policy_definition").elements().to_vec();
    let members: Vec<Value> = p
        .policy_definitions
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let prior_m = prior_members.get(i);
            let same_id = |a: &str| {
                prior_m
                    .and_then(|pm| pm.get("policy_definition_id").as_str())
                    .filter(|p| p.eq_ignore_ascii_case(a))
                    .map(str::to_string)
            };
            let values: Option<Json> = m.parameters.as_ref().map(|ps| {
                Json::Object(
                    ps.iter()
                        .map(|(k, v)| (k.clone(), v.get("value").cloned().unwrap_or(Json::Null)))
                        .collect(),
                )
            });
            let prior_params = prior_m
                .map(|pm| pm.get("parameters").clone())
                .unwrap_or(Value::Null);
            let parameters = match &values {
                Some(v)
                    if v.as_object().is_some_and(|o| o.is_empty()) && prior_params.is_null() =>
                {
                    Value::Null
                }
                Some(v) => keep_json(&prior_params, Some(v)),
                None => Value::Null,
            };
            let groups = match (&m.group_names, prior_m.map(|pm| pm.get("group_names"))) {
                (None, Some(pg)) if pg.is_null() => Value::Null,
                (Some(g), Some(pg)) if g.is_empty() && pg.is_null() => Value::Null,
                (Some(g), _) => Value::string_list(g.clone()),
                (None, _) => Value::Null,
            };
            Value::object([
                (
                    "policy_definition_id",
                    Value::string(
                        same_id(&m.policy_definition_id)
                            .unwrap_or_else(|| m.policy_definition_id.clone()),
                    ),
                ),
                (
                    "reference_id",
                    Value::opt_string(m.policy_definition_reference_id.clone()),
                ),
                ("parameters", parameters),
                (
                    "definition_version",
                    Value::opt_string(m.definition_version.clone()),
                ),
                ("group_names", groups),
            ])
        })
        .collect();
    state.set("policy_definition", Value::List(members));
    let groups: Vec<Value> = p
        .policy_definition_groups
        .as_ref()
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|g| {
                    let s = |k: &str| {
                        Value::opt_string(g.get(k).and_then(Json::as_str).map(str::to_string))
                    };
                    Value::object([
                        ("name", s("name")),
                        ("display_name", s("displayName")),
                        ("category", s("category")),
                        ("description", s("description")),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    state.set("policy_definition_group", Value::List(groups));
    state
}

async fn put(ctx: &CallContext, req: &ApplyRequest<'_>) -> ApplyResult {
    let mut diags = Diagnostics::new();
    let properties = match properties_of(req.planned) {
        Ok(p) => p,
        Err(d) => {
            diags.push(d);
            return ApplyResult::failed(diags);
        }
    };
    let Some(scope) = SETS.write_scope(ctx, req, &mut diags) else {
        return ApplyResult::failed(diags);
    };
    let name = req.planned.get("name").as_str().unwrap_or_default();
    let body = PolicySetDefinition {
        properties,
        ..Default::default()
    };
    match SETS.put(ctx, &scope, name, &body).await {
        Ok(s) => ApplyResult::ok(state_from(req.planned, &s, &scope)),
        Err(d) => ApplyResult::failed(d),
    }
}

#[async_trait]
impl Resource for InitiativeResource {
    fn type_name(&self) -> &'static str {
        "akspolicy_initiative"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate_config(&self, config: &Value, diags: &mut Diagnostics) {
        // Members may reference definitions created in the same run (unknown IDs); their
        // parameter values are usually known and still worth checking.
        if !config.get("parameters").is_wholly_known() {
            return;
        }
        let declared = match declared_parameters(config) {
            Ok(d) => d,
            Err(e) => {
                diags.error_at(
                    AttributePath::attr("parameters"),
                    "Invalid parameters",
                    format!("Each parameter needs at least a `type`: {e}"),
                );
                return;
            }
        };
        let groups: Vec<String> = config
            .get("policy_definition_group")
            .elements()
            .iter()
            .filter_map(|g| g.get("name").as_str().map(str::to_string))
            .collect();
        let mut seen_refs = Vec::new();
        for (i, m) in config
            .get("policy_definition")
            .elements()
            .iter()
            .enumerate()
        {
            let path = AttributePath::attr("policy_definition").index(i);
            for r in value_parameter_references(&member_values(m)) {
                if !declared.keys().any(|d| d.eq_ignore_ascii_case(&r)) {
                    diags.error_at(
                        path.attribute("parameters"),
                        "Undeclared initiative parameter",
                        format!("This member uses parameters('{r}') but the initiative's `parameters` does not declare {r:?}."),
                    );
                }
            }
            for g in m.get("group_names").string_elements() {
                if !groups.contains(&g) {
                    diags.error_at(
                        path.attribute("group_names"),
                        "Unknown group",
                        format!("{g:?} is not the name of a policy_definition_group block."),
                    );
                }
            }
            if let Some(r) = m.get("reference_id").as_str() {
                if seen_refs.contains(&r.to_string()) {
                    diags.error_at(
                        path.attribute("reference_id"),
                        "Duplicate reference ID",
                        format!("{r:?} is used by more than one member."),
                    );
                }
                seen_refs.push(r.to_string());
            }
        }
    }

    async fn modify_plan(&self, ctx: &CallContext, change: &mut PlanChange<'_>) {
        plan_default_scope(ctx, change);
        // Only a written scope: the default is the provider's own subscription.
        check_planned_scope(ctx, change).await;
        if !change.config.get("policy_definition").is_wholly_known() {
            return;
        }
        // Member parameters must exist in the member definition.
        for (i, m) in change
            .config
            .get("policy_definition")
            .elements()
            .iter()
            .enumerate()
        {
            let Some(id) = m.get("policy_definition_id").as_str() else {
                continue;
            };
            let Json::Object(values) = member_values(m) else {
                continue;
            };
            if values.is_empty() {
                continue;
            }
            let path = AttributePath::attr("policy_definition").index(i);
            match member_definition(ctx, id, m.get("definition_version").as_str()).await {
                Ok(Some(d)) => {
                    let declared = d.properties.parameters.unwrap_or_default();
                    for name in values.keys() {
                        if !declared.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                            change.diags.push(
                                Diagnostic::error(
                                    "Unknown member parameter",
                                    format!(
                                        "{id} (version {}) has no parameter {name:?}; it declares: {}.",
                                        d.properties.version.as_deref().unwrap_or("unversioned"),
                                        declared.keys().cloned().collect::<Vec<_>>().join(", ")
                                    ),
                                )
                                .at(path.attribute("parameters")),
                            );
                        }
                    }
                }
                // Created in the same apply, or not visible yet: Azure checks at apply.
                Ok(None) => {}
                Err(e) => change.diags.push(
                    Diagnostic::error("Member definition lookup failed", e)
                        .at(path.attribute("definition_version")),
                ),
            }
        }
        if change.prior.is_null() || !change.config.get("parameters").is_wholly_known() {
            return;
        }
        if let Ok(new) = declared_parameters(change.config) {
            replace_on_breaking_parameters(change, &new, AttributePath::attr("parameters"));
        }
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
        SETS.read(ctx, state, diags, state_from).await
    }

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResult {
        if let Some(state) = timeouts_only_update(req.prior, req.planned) {
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
        SETS.check_removal(ctx, prior, removal, diags).await
    }

    async fn delete(&self, ctx: &CallContext, prior: &Value, diags: &mut Diagnostics) {
        SETS.delete(ctx, prior, diags).await
    }

    async fn import(&self, _ctx: &CallContext, id: &str, diags: &mut Diagnostics) -> Option<Value> {
        SETS.import(id, diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_pins() {
        assert!(version_matches("9.*.*", "9.2.0"));
        assert!(!version_matches("6.*.*", "7.0.0"));
        assert!(version_matches("1.0.0", "1.0.0"));
    }

    #[test]
    fn undeclared_member_parameter_is_an_error() {
        let config = Value::object([
            (
                "parameters",
                Value::string(r#"{"effect":{"type":"String"}}"#),
            ),
            (
                "policy_definition",
                Value::List(vec![Value::object([
                    (
                        "policy_definition_id",
                        Value::string("/providers/Microsoft.Authorization/policyDefinitions/x"),
                    ),
                    ("reference_id", Value::Null),
                    (
                        "parameters",
                        Value::string(
                            r#"{"effect":"[parameters('effect')]","ns":"[parameters('ns')]"}"#,
                        ),
                    ),
                    ("definition_version", Value::Null),
                    ("group_names", Value::Null),
                ])]),
            ),
            ("policy_definition_group", Value::List(vec![])),
        ]);
        let mut d = Diagnostics::new();
        InitiativeResource.validate_config(&config, &mut d);
        assert_eq!(d.0.len(), 1, "{:?}", d.0);
        assert!(d.0[0].detail.contains("parameters('ns')"));
    }
}
