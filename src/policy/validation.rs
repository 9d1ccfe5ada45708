//! The checks Azure Policy applies to definitions and to assignment parameters on write.
//!
//! Shared so the emulator rejects exactly what Azure rejects, and so the provider could check
//! the same rules at plan time. Error codes are Azure's; messages follow Azure's wording where
//! it is known from observed responses.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::definition_body::{ParameterDefinition, PolicyDefinitionProperties};
use super::kubernetes::KUBERNETES_MODE;
use super::references::{policy_rule_parameter_references, undeclared};

/// Parameter types a definition may declare (matched case-insensitively, as Azure does).
pub const PARAMETER_TYPES: &[&str] = &[
    "String", "Array", "Object", "Boolean", "Integer", "Float", "DateTime",
];

/// Modes Azure accepts for custom definitions.
pub const DEFINITION_MODES: &[&str] = &[
    "All",
    "Indexed",
    KUBERNETES_MODE,
    "Microsoft.KeyVault.Data",
    "Microsoft.ContainerService.Data",
    "Microsoft.Network.Data",
    "Microsoft.ManagedHSM.Data",
    "Microsoft.DataFactory.Data",
    "Microsoft.MachineLearningServices.v2.Data",
    "Microsoft.LoadTestService.Data",
];

/// Mode Azure fills in when a definition omits it.
pub const DEFAULT_MODE: &str = "Indexed";

/// A write rejected by Azure Policy; [`PolicyValidationError::code`] is Azure's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyValidationError {
    #[error("{0}")]
    InvalidPolicyRule(String),
    #[error("{0}")]
    InvalidPolicyMode(String),
    #[error("{0}")]
    InvalidParameterDefinition(String),
    #[error("{0}")]
    InvalidParameterUpdate(String),
    #[error("{0}")]
    InvalidSetParameterUpdate(String),
    #[error("{0}")]
    UndefinedParameter(String),
    #[error("{0}")]
    MissingParameter(String),
    #[error("{0}")]
    InvalidParameterValue(String),
}

impl PolicyValidationError {
    /// Azure's error code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPolicyRule(_) => "InvalidPolicyRule",
            Self::InvalidPolicyMode(_) => "InvalidPolicyMode",
            Self::InvalidParameterDefinition(_) => "InvalidPolicyParameters",
            Self::InvalidParameterUpdate(_) => "InvalidPolicyParameterUpdate",
            Self::InvalidSetParameterUpdate(_) => "InvalidPolicySetParameterUpdate",
            Self::UndefinedParameter(_) => "UndefinedPolicyParameter",
            Self::MissingParameter(_) => "MissingPolicyParameter",
            Self::InvalidParameterValue(_) => "InvalidPolicyParameters",
        }
    }
}

type Result<T> = std::result::Result<T, PolicyValidationError>;

/// Checks a custom definition's mode, rule shape, parameters and Kubernetes details.
pub fn validate_definition(name: &str, props: &PolicyDefinitionProperties) -> Result<()> {
    if let Some(mode) = &props.mode {
        if !DEFINITION_MODES
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mode))
        {
            return Err(PolicyValidationError::InvalidPolicyMode(format!(
                "The policy definition '{name}' has an invalid mode '{mode}'. Supported modes: {}.",
                DEFINITION_MODES.join(", ")
            )));
        }
    }
    let rule = props.policy_rule.as_ref().ok_or_else(|| {
        PolicyValidationError::InvalidPolicyRule(format!(
            "The policy definition '{name}' has no policy rule."
        ))
    })?;
    let rule = rule.as_object().ok_or_else(|| {
        PolicyValidationError::InvalidPolicyRule(format!(
            "The policy rule of definition '{name}' must be a JSON object."
        ))
    })?;
    for key in rule.keys() {
        if !key.eq_ignore_ascii_case("if") && !key.eq_ignore_ascii_case("then") {
            return Err(PolicyValidationError::InvalidPolicyRule(format!(
                "Failed to parse policy rule: 'Could not find member '{key}' on object of type 'PolicyRuleDefinition'. Path '{key}'.'."
            )));
        }
    }
    let if_ = get_ci(rule, "if").and_then(Value::as_object);
    if if_.is_none_or(Map::is_empty) {
        return Err(PolicyValidationError::InvalidPolicyRule(format!(
            "The policy definition '{name}' rule is invalid: the 'if' condition must be a non-empty object."
        )));
    }
    let then = get_ci(rule, "then")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            PolicyValidationError::InvalidPolicyRule(format!(
            "The policy definition '{name}' rule is invalid: the 'then' section must be an object."
        ))
        })?;
    let effect = get_ci(then, "effect").and_then(Value::as_str);
    if effect.is_none_or(str::is_empty) {
        return Err(PolicyValidationError::InvalidPolicyRule(format!(
            "The policy definition '{name}' rule is invalid: 'then.effect' must be a non-empty string."
        )));
    }
    if let Some(params) = &props.parameters {
        validate_parameter_definitions(params)?;
    }
    let referenced = policy_rule_parameter_references(&Value::Object(rule.clone()));
    let declared = props.parameters.clone().unwrap_or_default();
    if let Some(missing) = undeclared(&referenced, &declared).first() {
        // Azure's wording (observed in responses), one parameter at a time.
        return Err(PolicyValidationError::InvalidParameterDefinition(format!(
            "A function or parameter in policy '{name}' could not be validated. If using template functions, try following the tips in: https://aka.ms/policy-avoiding-template-failures. The inner exception 'The policy '{name}' has undefined parameter '{missing}' which is used in the policy rule. Please either define it in policy definition or remove the reference in policy rule.'."
        )));
    }
    if props.is_kubernetes() {
        validate_kubernetes_details(name, get_ci(then, "details"))?;
    }
    Ok(())
}

/// Every declared parameter has a known type, and its default and allowed values fit it.
pub fn validate_parameter_definitions(
    params: &BTreeMap<String, ParameterDefinition>,
) -> Result<()> {
    for (name, def) in params {
        if !PARAMETER_TYPES
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&def.parameter_type))
        {
            return Err(PolicyValidationError::InvalidParameterDefinition(format!(
                "The parameter '{name}' has an invalid type '{}'. Supported types: {}.",
                def.parameter_type,
                PARAMETER_TYPES.join(", ")
            )));
        }
        if let Some(allowed) = &def.allowed_values {
            for v in allowed {
                if !value_has_type(v, &def.parameter_type) {
                    return Err(PolicyValidationError::InvalidParameterDefinition(format!(
                        "The allowed value '{v}' of parameter '{name}' does not match its type '{}'.",
                        def.parameter_type
                    )));
                }
            }
        }
        if let Some(default) = &def.default_value {
            check_value(name, def, default).map_err(|e| {
                PolicyValidationError::InvalidParameterDefinition(format!(
                    "The default value of parameter '{name}' is invalid: {e}"
                ))
            })?;
        }
    }
    Ok(())
}

/// A mutation definition's `mutationInfo`: `PublicURL` with `url` or `Base64Encoded` with
/// `content`; it cannot be combined with a template or its kinds.
fn validate_mutation_info(
    name: &str,
    details: &serde_json::Map<String, Value>,
    info: &Value,
) -> Result<()> {
    let bad = |msg: String| PolicyValidationError::InvalidPolicyRule(msg);
    for other in [
        "templateInfo",
        "constraintTemplate",
        "constraint",
        "apiGroups",
        "kinds",
    ] {
        if get_ci(details, other).is_some() {
            return Err(bad(format!(
                "The policy definition '{name}' uses 'mutationInfo', which cannot be combined with '{other}'."
            )));
        }
    }
    validate_source_info(name, "mutationInfo", info)
}

/// A `templateInfo` / `mutationInfo` object: `sourceType` PublicURL (with `url`) or
/// Base64Encoded (with `content`).
fn validate_source_info(name: &str, key: &str, info: &Value) -> Result<()> {
    let bad = |msg: String| PolicyValidationError::InvalidPolicyRule(msg);
    let info = info.as_object().ok_or_else(|| {
        bad(format!(
            "'{key}' of policy definition '{name}' must be an object."
        ))
    })?;
    let source = get_ci(info, "sourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let field = if source.eq_ignore_ascii_case("PublicURL") {
        "url"
    } else if source.eq_ignore_ascii_case("Base64Encoded") {
        "content"
    } else {
        return Err(bad(format!(
            "'{key}.sourceType' of policy definition '{name}' must be 'PublicURL' or 'Base64Encoded', not '{source}'."
        )));
    };
    if get_ci(info, field)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(bad(format!(
            "'{key}' of policy definition '{name}' with sourceType '{source}' requires '{field}'."
        )));
    }
    Ok(())
}

/// `Microsoft.Kubernetes.Data` audit/deny rules need a ConstraintTemplate source and a match.
fn validate_kubernetes_details(name: &str, details: Option<&Value>) -> Result<()> {
    let bad = |msg: String| PolicyValidationError::InvalidPolicyRule(msg);
    let details = details.and_then(Value::as_object).ok_or_else(|| {
        bad(format!(
            "The policy definition '{name}' has mode '{KUBERNETES_MODE}' and requires 'then.details' with 'templateInfo'."
        ))
    })?;
    // Mutation definitions carry a mutation document instead of a template.
    if let Some(info) = get_ci(details, "mutationInfo") {
        return validate_mutation_info(name, details, info);
    }
    let template = get_ci(details, "templateInfo");
    let legacy = get_ci(details, "constraintTemplate");
    match (template, legacy) {
        (Some(_), Some(_)) => {
            return Err(bad(format!(
                "The policy definition '{name}' cannot use both 'templateInfo' and 'constraintTemplate'."
            )))
        }
        (None, Some(_)) => return Ok(()),
        (None, None) => {
            return Err(bad(format!(
                "The policy definition '{name}' has mode '{KUBERNETES_MODE}' and requires 'then.details.templateInfo'."
            )))
        }
        (Some(info), None) => validate_source_info(name, "templateInfo", info)?,
    }
    for list in ["apiGroups", "kinds"] {
        let Some(value) = get_ci(details, list) else {
            return Err(bad(format!(
                "The policy definition '{name}' uses 'templateInfo' and requires 'then.details.{list}'."
            )));
        };
        // A parameter expression is resolved at assignment time.
        if value.as_str().is_some_and(|s| s.starts_with('[')) {
            continue;
        }
        let items = value.as_array().ok_or_else(|| {
            bad(format!(
                "'then.details.{list}' of policy definition '{name}' must be an array."
            ))
        })?;
        if items.iter().any(|v| v.as_str() == Some("*")) {
            return Err(bad(format!(
                "'then.details.{list}' of policy definition '{name}' must not contain '*'; list the {list} explicitly."
            )));
        }
        if list == "kinds" && items.is_empty() {
            return Err(bad(format!(
                "'then.details.kinds' of policy definition '{name}' must not be empty."
            )));
        }
    }
    Ok(())
}

/// Parameters may be added (with a default) but never removed or retyped on update.
pub fn check_parameter_update(
    old: Option<&BTreeMap<String, ParameterDefinition>>,
    new: Option<&BTreeMap<String, ParameterDefinition>>,
    is_set: bool,
) -> Result<()> {
    let empty = BTreeMap::new();
    let old = old.unwrap_or(&empty);
    let new = new.unwrap_or(&empty);
    let wrap = |msg: String| {
        if is_set {
            PolicyValidationError::InvalidSetParameterUpdate(msg)
        } else {
            PolicyValidationError::InvalidParameterUpdate(msg)
        }
    };
    let what = if is_set { "policy set" } else { "policy" };
    if old.len() > new.len() {
        return Err(wrap(format!(
            "The existing {what} has '{}' parameter(s) which is greater than the count of parameter(s) '{}' in the {what} being added. Policy parameters cannot be removed during policy update.",
            old.len(),
            new.len()
        )));
    }
    let missing: Vec<&str> = old
        .keys()
        .filter(|k| !new.keys().any(|n| n.eq_ignore_ascii_case(k)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(wrap(format!(
            "The existing {what} parameter(s) '{}' were not found in the {what} being updated. The parameter names can not be changed.",
            missing.join(",")
        )));
    }
    for (name, old_def) in old {
        let Some(new_def) = lookup_ci(new, name) else {
            continue;
        };
        if !old_def
            .parameter_type
            .eq_ignore_ascii_case(&new_def.parameter_type)
        {
            return Err(wrap(format!(
                "The type of the existing {what} parameter '{name}' is '{}' and cannot be changed to '{}' in the {what} being updated.",
                old_def.parameter_type, new_def.parameter_type
            )));
        }
    }
    Ok(())
}

/// Checks assignment parameter values (`{name: {value}}`) against the definition's declared
/// parameters: no undeclared ones, right types, inside `allowedValues` (case-sensitively), and
/// every parameter without a default given.
pub fn check_assignment_parameters(
    assignment: &str,
    definition_id: &str,
    declared: Option<&BTreeMap<String, ParameterDefinition>>,
    given: Option<&Map<String, Value>>,
) -> Result<()> {
    let empty_decl = BTreeMap::new();
    let declared = declared.unwrap_or(&empty_decl);
    let empty_given = Map::new();
    let given = given.unwrap_or(&empty_given);
    let undefined: Vec<&str> = given
        .keys()
        .filter(|k| lookup_ci(declared, k).is_none())
        .map(String::as_str)
        .collect();
    if !undefined.is_empty() {
        return Err(PolicyValidationError::UndefinedParameter(format!(
            "The policy assignment '{assignment}' has parameter(s) '{}' which are not defined in the policy definition '{definition_id}'.",
            undefined.join(", ")
        )));
    }
    let missing: Vec<&str> = declared
        .iter()
        .filter(|(k, d)| {
            d.default_value.is_none() && !given.keys().any(|g| g.eq_ignore_ascii_case(k))
        })
        .map(|(k, _)| k.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(PolicyValidationError::MissingParameter(format!(
            "The policy assignment '{assignment}' is missing the parameter(s) '{}' as defined in the policy definition '{definition_id}'.",
            missing.join(", ")
        )));
    }
    for (name, wrapper) in given {
        let Some(def) = lookup_ci(declared, name) else {
            continue;
        };
        let value = wrapper.get("value").ok_or_else(|| {
            PolicyValidationError::InvalidParameterValue(format!(
                "The parameter '{name}' of policy assignment '{assignment}' must be given as {{\"value\": ...}}."
            ))
        })?;
        check_value(name, def, value).map_err(|e| {
            PolicyValidationError::InvalidParameterValue(format!(
                "The policy assignment '{assignment}' has an invalid value for parameter '{name}': {e}"
            ))
        })?;
    }
    Ok(())
}

/// The value has the declared type and is one of the allowed values (or, for arrays, made of
/// them). Errors are message fragments.
fn check_value(
    name: &str,
    def: &ParameterDefinition,
    value: &Value,
) -> std::result::Result<(), String> {
    // Expressions are evaluated by Azure at evaluation time, not checked on write.
    if value
        .as_str()
        .is_some_and(|s| s.starts_with('[') && s.ends_with(']'))
        && !def.parameter_type.eq_ignore_ascii_case("String")
    {
        return Ok(());
    }
    if !value_has_type(value, &def.parameter_type) {
        return Err(format!(
            "the value '{value}' is not of the expected type '{}'.",
            def.parameter_type
        ));
    }
    let Some(allowed) = &def.allowed_values else {
        return Ok(());
    };
    if allowed.contains(value) {
        return Ok(());
    }
    if let Some(items) = value.as_array() {
        if let Some(bad) = items.iter().find(|v| !allowed.contains(v)) {
            return Err(format!(
                "the value '{bad}' of parameter '{name}' is not allowed. The allowed values are '{}'.",
                render_list(allowed)
            ));
        }
        return Ok(());
    }
    Err(format!(
        "the value '{value}' is not allowed. The allowed values are '{}'.",
        render_list(allowed)
    ))
}

fn render_list(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when `value` is a JSON value of the declared parameter type.
pub fn value_has_type(value: &Value, parameter_type: &str) -> bool {
    match parameter_type.to_ascii_lowercase().as_str() {
        "string" | "datetime" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "float" => value.is_number(),
        _ => false,
    }
}

fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn lookup_ci<'a, T>(map: &'a BTreeMap<String, T>, key: &str) -> Option<&'a T> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> PolicyDefinitionProperties {
        serde_json::from_value(v).expect("valid properties")
    }

    fn params(v: Value) -> BTreeMap<String, ParameterDefinition> {
        serde_json::from_value(v).expect("valid parameters")
    }

    #[test]
    fn rule_shape_and_mode() {
        let ok = props(
            json!({"mode": "All", "policyRule": {"if": {"field": "type", "equals": "x"}, "then": {"effect": "audit"}}}),
        );
        assert!(validate_definition("d", &ok).is_ok());
        let bad_mode = props(
            json!({"mode": "Everything", "policyRule": {"if": {"a": 1}, "then": {"effect": "audit"}}}),
        );
        assert_eq!(
            validate_definition("d", &bad_mode).map_err(|e| e.code()),
            Err("InvalidPolicyMode")
        );
        let extra = props(
            json!({"mode": "All", "policyRule": {"if": {"a": 1}, "then": {"effect": "audit"}, "properties": {}}}),
        );
        let err = validate_definition("d", &extra).expect_err("rejected");
        assert_eq!(err.code(), "InvalidPolicyRule");
        assert!(err.to_string().contains("PolicyRuleDefinition"));
        let no_effect = props(json!({"mode": "All", "policyRule": {"if": {"a": 1}, "then": {}}}));
        assert!(validate_definition("d", &no_effect).is_err());
        let bad_param = props(
            json!({"mode": "All", "policyRule": {"if": {"a": 1}, "then": {"effect": "audit"}},
            "parameters": {"p": {"type": "Text"}}}),
        );
        assert_eq!(
            validate_definition("d", &bad_param).map_err(|e| e.code()),
            Err("InvalidPolicyParameters")
        );
    }

    #[test]
    fn rule_parameters_must_be_declared_outside_the_deployment_template() {
        let dine = |declared: Value| {
            props(
                json!({"mode": "Indexed", "parameters": declared, "policyRule": {
                "if": {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
                "then": {"effect": "[parameters('effect')]", "details": {
                    "type": "Microsoft.ContainerService/managedClusters",
                    "existenceCondition": {"field": "name", "equals": "[field('name')]"},
                    "deployment": {"properties": {"mode": "incremental",
                        "template": {"parameters": {"clusterName": {"type": "string"}},
                            "resources": [{"name": "[parameters('clusterName')]"}]},
                        "parameters": {"clusterName": {"value": "[field('name')]"}}}}}}}}),
            )
        };
        assert_eq!(
            validate_definition("d", &dine(json!({"effect": {"type": "String"}}))),
            Ok(())
        );
        let err = validate_definition("d", &dine(json!({}))).expect_err("undeclared effect");
        assert_eq!(err.code(), "InvalidPolicyParameters");
        assert!(
            err.to_string().contains("undefined parameter 'effect'"),
            "{err}"
        );
    }

    #[test]
    fn kubernetes_details() {
        let rule = |details: Value| {
            props(json!({"mode": "Microsoft.Kubernetes.Data",
                "policyRule": {"if": {"field": "type", "in": ["Microsoft.ContainerService/managedClusters"]},
                    "then": {"effect": "deny", "details": details}}}))
        };
        let good = rule(
            json!({"templateInfo": {"sourceType": "PublicURL", "url": "https://x/t.yaml"},
            "apiGroups": [""], "kinds": ["Pod"]}),
        );
        assert!(validate_definition("k", &good).is_ok());
        for bad in [
            json!({"apiGroups": [""], "kinds": ["Pod"]}),
            json!({"templateInfo": {"sourceType": "PublicURL"}, "apiGroups": [""], "kinds": ["Pod"]}),
            json!({"templateInfo": {"sourceType": "Base64Encoded", "content": "YQ=="}, "kinds": ["Pod"]}),
            json!({"templateInfo": {"sourceType": "Base64Encoded", "content": "YQ=="}, "apiGroups": [""], "kinds": ["*"]}),
            json!({"templateInfo": {"sourceType": "Base64Encoded", "content": "YQ=="}, "apiGroups": ["*"], "kinds": ["Pod"]}),
        ] {
            assert_eq!(
                validate_definition("k", &rule(bad.clone())).map_err(|e| e.code()),
                Err("InvalidPolicyRule"),
                "{bad}"
            );
        }
    }

    #[test]
    fn parameter_updates() {
        let old = params(json!({"a": {"type": "String"}, "b": {"type": "Integer"}}));
        let removed = params(json!({"a": {"type": "String"}}));
        let err = check_parameter_update(Some(&old), Some(&removed), false).expect_err("removal");
        assert_eq!(err.code(), "InvalidPolicyParameterUpdate");
        assert!(err.to_string().contains("cannot be removed"));
        let renamed = params(json!({"a": {"type": "String"}, "c": {"type": "Integer"}}));
        assert!(check_parameter_update(Some(&old), Some(&renamed), false).is_err());
        let retyped = params(json!({"a": {"type": "String"}, "b": {"type": "String"}}));
        assert!(check_parameter_update(Some(&old), Some(&retyped), false).is_err());
        let added = params(
            json!({"a": {"type": "string"}, "b": {"type": "Integer"}, "c": {"type": "Array", "defaultValue": []}}),
        );
        assert!(check_parameter_update(Some(&old), Some(&added), false).is_ok());
        assert_eq!(
            check_parameter_update(Some(&old), None, true).map_err(|e| e.code()),
            Err("InvalidPolicySetParameterUpdate")
        );
    }

    #[test]
    fn assignment_parameters() {
        let decl = params(json!({
            "effect": {"type": "String", "allowedValues": ["Audit", "Deny"], "defaultValue": "Audit"},
            "images": {"type": "Array"},
            "count": {"type": "Integer", "defaultValue": 1}
        }));
        let given = |v: Value| v.as_object().cloned().expect("object");
        let ok = given(json!({"images": {"value": ["a"]}, "effect": {"value": "Deny"}}));
        assert!(check_assignment_parameters("a", "d", Some(&decl), Some(&ok)).is_ok());
        let case = given(json!({"images": {"value": []}, "effect": {"value": "deny"}}));
        assert_eq!(
            check_assignment_parameters("a", "d", Some(&decl), Some(&case)).map_err(|e| e.code()),
            Err("InvalidPolicyParameters")
        );
        let missing = given(json!({"effect": {"value": "Deny"}}));
        assert_eq!(
            check_assignment_parameters("a", "d", Some(&decl), Some(&missing))
                .map_err(|e| e.code()),
            Err("MissingPolicyParameter")
        );
        let undeclared = given(json!({"images": {"value": []}, "other": {"value": 1}}));
        assert_eq!(
            check_assignment_parameters("a", "d", Some(&decl), Some(&undeclared))
                .map_err(|e| e.code()),
            Err("UndefinedPolicyParameter")
        );
        let wrong_type = given(json!({"images": {"value": "a"}}));
        assert!(check_assignment_parameters("a", "d", Some(&decl), Some(&wrong_type)).is_err());
        let float_for_int = given(json!({"images": {"value": []}, "count": {"value": 1.5}}));
        assert!(check_assignment_parameters("a", "d", Some(&decl), Some(&float_for_int)).is_err());
    }
}
