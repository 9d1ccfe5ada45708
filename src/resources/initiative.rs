//! Resource `akspolicy_initiative`: a custom policy set definition at subscription or management
//! group scope. Member parameters are checked at plan time against the initiative's parameters
//! and against the member definitions themselves (built-ins are read once per run).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use crate::arm::api_version;
use crate::framework::timeouts;
use crate::framework::typed::{Knowable, Whole};
use crate::framework::{
    Attribute, AttributePath, Block, CallContext, Diagnostic, Diagnostics, ModifyPlanRequest,
    ModifyPlanResponse, NestedBlock, Schema, Type, Value,
};
use crate::policy::references::value_parameter_references;
use crate::policy::{
    ParameterDefinition, PolicyDefinition, PolicyDefinitionReference, PolicySetDefinition,
    PolicySetDefinitionProperties,
};
use crate::resources::shared::decode::decoded;
use crate::typed_object;

use super::definition::{
    keep_json, keep_parameters, parameters_of, replace_on_breaking_declarations,
    validate_json_object,
};
use super::provider::Configured;
use super::shared::definition_api::{
    definition_kind, definition_state, descriptive_attributes, identifying_attributes,
    DefinitionLike,
};
use super::shared::json::json_text;
use super::shared::waits::POLICY_TIMEOUTS;

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
        descriptive_attributes(
            identifying_attributes(
                Block::new()
                    .description("A custom Azure Policy initiative (policy set definition)."),
                "initiative",
                "",
            ),
            "The initiative version, `x.y.z` Azure reports `1.0.0` when none is set.",
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

definition_state! {
    /// The resource's configuration, plan or state.
    pub struct Initiative {
        pub parameters: Knowable<String>,
        pub policy_definition: Whole<Vec<Member>>,
        pub policy_definition_group: Vec<Group>,
        pub timeouts: Value,
    }
}

typed_object! {
    /// A `policy_definition` block. Its definition ID may be unknown during validation (a
    /// definition created in the same run).
    pub struct Member {
        pub policy_definition_id: Option<String>,
        pub reference_id: Knowable<String>,
        pub parameters: Option<String>,
        pub definition_version: Knowable<String>,
        pub group_names: Option<Vec<String>>,
    }
}

typed_object! {
    /// A `policy_definition_group` block.
    pub struct Group {
        pub name: Option<String>,
        pub display_name: Option<String>,
        pub category: Option<String>,
        pub description: Option<String>,
    }
}

fn declared_parameters(
    config: &Initiative,
) -> Result<BTreeMap<String, ParameterDefinition>, Diagnostic> {
    parameters_of(config.parameters.as_deref()).map(Option::unwrap_or_default)
}

fn member_values(member: &Member) -> Json {
    json_text(member.parameters.as_deref()).unwrap_or(Json::Null)
}

fn member_parameters(member: &Member) -> Option<Map<String, Json>> {
    match member_values(member) {
        Json::Object(m) => Some(
            m.into_iter()
                .map(|(k, v)| (k, json!({"value": v})))
                .collect(),
        ),
        _ => None,
    }
}

fn properties_of(config: &Initiative) -> Result<PolicySetDefinitionProperties, Diagnostic> {
    let parameters = declared_parameters(config)?;
    let members = config
        .policy_definition
        .iter()
        .map(|m| PolicyDefinitionReference {
            policy_definition_id: m.policy_definition_id.clone().unwrap_or_default(),
            policy_definition_reference_id: m.reference_id.as_deref().map(str::to_string),
            parameters: member_parameters(m),
            group_names: m.group_names.clone(),
            definition_version: m.definition_version.as_deref().map(str::to_string),
            ..Default::default()
        })
        .collect();
    let groups: Vec<Json> = config
        .policy_definition_group
        .iter()
        .map(|g| {
            let mut o = Map::new();
            o.insert("name".into(), json!(g.name.as_deref().unwrap_or_default()));
            for (value, key) in [
                (&g.display_name, "displayName"),
                (&g.category, "category"),
                (&g.description, "description"),
            ] {
                if let Some(s) = value {
                    o.insert(key.into(), json!(s));
                }
            }
            Json::Object(o)
        })
        .collect();
    Ok(PolicySetDefinitionProperties {
        policy_type: Some("Custom".into()),
        display_name: config.display_name.clone(),
        description: config.description.clone(),
        metadata: json_text(config.metadata.as_deref()),
        parameters: (!parameters.is_empty() || config.parameters.known().is_some())
            .then_some(parameters),
        policy_definitions: members,
        policy_definition_groups: (!groups.is_empty()).then_some(Json::Array(groups)),
        version: config.version.as_deref().map(str::to_string),
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
        .get_optional::<PolicyDefinition>(id, api_version::POLICY)
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
                    .get_optional::<PolicyDefinition>(
                        &format!("{id}/versions/{v}"),
                        api_version::POLICY,
                    )
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

/// The initiative's own attributes from Azure's set `s`, reconciled with `prior`. The provider
/// never writes `metadata.version` itself, so Azure's metadata is the user's (an imported copy
/// of a built-in keeps its `version` key): no metadata is implied.
fn reconcile(prior: &Initiative, mut state: Initiative, s: &PolicySetDefinition) -> Initiative {
    let p = &s.properties;
    state.parameters = keep_parameters(&prior.parameters, p.parameters.as_ref());
    let members: Vec<Member> = p
        .policy_definitions
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let prior_m = prior.policy_definition.get(i);
            let same_id = |a: &str| {
                prior_m
                    .and_then(|pm| pm.policy_definition_id.as_deref())
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
            let prior_params = prior_m.and_then(|pm| pm.parameters.as_deref());
            let parameters = match &values {
                Some(v)
                    if v.as_object().is_some_and(|o| o.is_empty()) && prior_params.is_none() =>
                {
                    None
                }
                Some(v) => keep_json(prior_params, Some(v)),
                None => None,
            };
            // An empty list Azure echoes stays null when the user left it out.
            let prior_left_groups_out = prior_m.is_some_and(|pm| pm.group_names.is_none());
            let groups = m
                .group_names
                .clone()
                .filter(|g| !(g.is_empty() && prior_left_groups_out));
            Member {
                policy_definition_id: Some(
                    same_id(&m.policy_definition_id)
                        .unwrap_or_else(|| m.policy_definition_id.clone()),
                ),
                reference_id: m.policy_definition_reference_id.clone().into(),
                parameters,
                definition_version: m.definition_version.clone().into(),
                group_names: groups,
            }
        })
        .collect();
    state.policy_definition = Whole::new(members);
    state.policy_definition_group = p
        .policy_definition_groups
        .as_ref()
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|g| {
                    let s = |k: &str| g.get(k).and_then(Json::as_str).map(str::to_string);
                    Group {
                        name: s("name"),
                        display_name: s("displayName"),
                        category: s("category"),
                        description: s("description"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    state
}

#[async_trait]
impl DefinitionLike for InitiativeResource {
    definition_kind!(
        "akspolicy_initiative",
        PolicySetDefinition,
        Initiative,
        schema()
    );

    // Members may reference definitions created in the same run (unknown IDs); their
    // parameter values are usually known and still worth checking.
    const CHECKED_INPUTS: &'static [&'static str] = &["parameters"];

    fn check_config(config: &Initiative, diags: &mut Diagnostics) {
        let declared = match declared_parameters(config) {
            Ok(d) => d,
            Err(d) => return diags.push(d),
        };
        let groups: Vec<&str> = config
            .policy_definition_group
            .iter()
            .filter_map(|g| g.name.as_deref())
            .collect();
        let mut seen_refs = Vec::new();
        for (i, m) in config.policy_definition.iter().enumerate() {
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
            for g in m.group_names.iter().flatten() {
                if !groups.contains(&g.as_str()) {
                    diags.error_at(
                        path.attribute("group_names"),
                        "Unknown group",
                        format!("{g:?} is not the name of a policy_definition_group block."),
                    );
                }
            }
            if let Some(r) = m.reference_id.as_deref() {
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

    async fn refine_plan(
        &self,
        ctx: &CallContext,
        req: ModifyPlanRequest<'_>,
        change: &mut ModifyPlanResponse,
    ) {
        let Some(config) = decoded::<Initiative>(req.config, &mut change.diags) else {
            return;
        };
        if !config.policy_definition.known {
            return;
        }
        // Member parameters must exist in the member definition.
        for (i, m) in config.policy_definition.iter().enumerate() {
            let Some(id) = m.policy_definition_id.as_deref() else {
                continue;
            };
            let Json::Object(values) = member_values(m) else {
                continue;
            };
            if values.is_empty() {
                continue;
            }
            let path = AttributePath::attr("policy_definition").index(i);
            match member_definition(ctx, id, m.definition_version.as_deref()).await {
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
        replace_on_breaking_declarations(req, change);
    }

    fn properties_of(
        planned: &Initiative,
        diags: &mut Diagnostics,
    ) -> Option<PolicySetDefinitionProperties> {
        properties_of(planned).map_err(|d| diags.push(d)).ok()
    }

    fn reconcile(
        prior: &Initiative,
        state: Initiative,
        remote: &PolicySetDefinition,
    ) -> Initiative {
        reconcile(prior, state, remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::typed::Typed;
    use crate::resources::shared::testing::assert_first_detail;
    use crate::resources::shared::testing::validation_of;

    #[test]
    fn version_pins() {
        assert!(version_matches("9.*.*", "9.2.0"));
        assert!(!version_matches("6.*.*", "7.0.0"));
        assert!(version_matches("1.0.0", "1.0.0"));
    }

    #[test]
    fn undeclared_member_parameter_is_an_error() {
        let config = Initiative {
            parameters: Knowable::Known(r#"{"effect":{"type":"String"}}"#.into()),
            policy_definition: Whole::new(vec![Member {
                policy_definition_id: Some(
                    "/providers/Microsoft.Authorization/policyDefinitions/x".into(),
                ),
                parameters: Some(
                    r#"{"effect":"[parameters('effect')]","ns":"[parameters('ns')]"}"#.into(),
                ),
                ..Default::default()
            }]),
            ..Default::default()
        }
        .to_value();
        let d = validation_of(&InitiativeResource, &config);
        assert_eq!(d.0.len(), 1, "{:?}", d.0);
        assert_first_detail(&d, "parameters('ns')");
    }
}
