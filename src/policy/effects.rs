//! The effect a definition has under an assignment, and which effects a remediation can act on.
//!
//! Shared by the provider (a remediation of an assignment that cannot remediate fails the plan)
//! and the emulator (compliance and remediation follow the same effect), so both read
//! `[parameters('effect')]` through the same defaults and initiative member values.

use serde_json::{Map, Value as Json};

use super::constraint::{effective_parameters, resolve_expressions};

/// Effects a remediation task can act on (compared case-insensitively, as Azure does).
pub const REMEDIABLE_EFFECTS: &[&str] = &["DeployIfNotExists", "Modify"];

/// Whether a remediation can act on resources non-compliant under `effect`.
pub fn is_remediable(effect: &str) -> bool {
    REMEDIABLE_EFFECTS
        .iter()
        .any(|e| e.eq_ignore_ascii_case(effect))
}

/// The effect of `definition` (an ARM body) under parameter values `supplied` (plain values
/// or ARM's `{"value": ...}` wrappers), with declared defaults filling the gaps. `None` when it
/// cannot be told without a resource (an expression that does not evaluate to a string over
/// the parameters alone, or a parameter with neither value nor default).
pub fn definition_effect(definition: &Json, supplied: &Map<String, Json>) -> Option<String> {
    let raw = definition.pointer("/properties/policyRule/then/effect")?;
    let values = effective_parameters(definition.pointer("/properties/parameters"), supplied);
    match resolve_expressions(raw, &values) {
        Json::String(s) if !s.starts_with('[') => Some(s),
        _ => None,
    }
}

/// One member of an initiative with the parameter values the assignment gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberValues {
    pub definition_id: String,
    pub reference_id: Option<String>,
    /// Plain values (expressions over the initiative's parameters resolved).
    pub values: Map<String, Json>,
}

/// The members of `set` (an ARM policy set body) with the values an assignment that supplies
/// `supplied` to the initiative passes on to each of them.
pub fn member_values(set: &Json, supplied: &Map<String, Json>) -> Vec<MemberValues> {
    let set_values = effective_parameters(set.pointer("/properties/parameters"), supplied);
    set.pointer("/properties/policyDefinitions")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let definition_id = m.get("policyDefinitionId")?.as_str()?.to_string();
            let reference_id = m
                .get("policyDefinitionReferenceId")
                .and_then(Json::as_str)
                .map(str::to_string);
            let values = m
                .get("parameters")
                .and_then(Json::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let v = v.get("value").unwrap_or(v);
                    (k.clone(), resolve_expressions(v, &set_values))
                })
                .collect();
            Some(MemberValues {
                definition_id,
                reference_id,
                values,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(effect: &str) -> Json {
        json!({"properties": {
            "parameters": {"effect": {"type": "String", "defaultValue": "AuditIfNotExists"}},
            "policyRule": {"if": {"field": "type", "equals": "x"}, "then": {"effect": effect}}}})
    }

    #[test]
    fn effects_follow_values_then_defaults() {
        let d = definition("[parameters('effect')]");
        assert_eq!(
            definition_effect(&d, &Map::new()).as_deref(),
            Some("AuditIfNotExists")
        );
        let given = json!({"Effect": {"value": "DeployIfNotExists"}});
        assert_eq!(
            definition_effect(&d, given.as_object().unwrap()).as_deref(),
            Some("DeployIfNotExists")
        );
        assert_eq!(
            definition_effect(&definition("modify"), &Map::new()).as_deref(),
            Some("modify")
        );
        // Any expression over parameters, through the rule engine's expression language.
        assert_eq!(
            definition_effect(
                &definition("[if(equals(1, 1), 'AuditIfNotExists', 'Disabled')]"),
                &Map::new()
            )
            .as_deref(),
            Some("AuditIfNotExists")
        );
        assert_eq!(
            definition_effect(&definition("[noSuchFunction('x')]"), &Map::new()),
            None
        );
        assert!(is_remediable("deployIfNotExists") && is_remediable("MODIFY"));
        assert!(!is_remediable("Audit"));
    }

    #[test]
    fn initiative_values_reach_members() {
        let set = json!({"properties": {
        "parameters": {"setEffect": {"type": "String", "defaultValue": "Audit"}},
        "policyDefinitions": [
            {"policyDefinitionId": "/d/a", "policyDefinitionReferenceId": "a",
             "parameters": {"effect": {"value": "[parameters('setEffect')]"}}},
            {"policyDefinitionId": "/d/b"}
        ]}});
        let given = json!({"setEffect": "DeployIfNotExists"});
        let members = member_values(&set, given.as_object().unwrap());
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].values["effect"], json!("DeployIfNotExists"));
        assert_eq!(members[0].reference_id.as_deref(), Some("a"));
        assert!(members[1].values.is_empty());
        let defaults = member_values(&set, &Map::new());
        assert_eq!(defaults[0].values["effect"], json!("Audit"));
    }
}
