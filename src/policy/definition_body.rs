//! Typed ARM bodies for policy definitions and policy set definitions (initiatives).
//!
//! The types model the fields the provider and the emulator reason about; everything else is
//! kept in `extra` maps so that a body read from Azure (or from a built-in file) serialises back
//! unchanged, including fields newer API versions add.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// ARM resource type of a policy definition.
pub const POLICY_DEFINITION_TYPE: &str = "Microsoft.Authorization/policyDefinitions";
/// ARM resource type of a policy set definition.
pub const POLICY_SET_DEFINITION_TYPE: &str = "Microsoft.Authorization/policySetDefinitions";
/// ARM resource type of a policy assignment.
pub const POLICY_ASSIGNMENT_TYPE: &str = "Microsoft.Authorization/policyAssignments";
/// ARM resource type of a policy exemption.
pub const POLICY_EXEMPTION_TYPE: &str = "Microsoft.Authorization/policyExemptions";

/// `policyType` values Azure uses. Kept as a string on the wire because Azure may add values.
pub mod policy_type {
    /// Shipped by Microsoft, read-only.
    pub const BUILT_IN: &str = "BuiltIn";
    /// Written by the customer.
    pub const CUSTOM: &str = "Custom";
    /// Regulatory-compliance controls, read-only.
    pub const STATIC: &str = "Static";
}

/// What ARM wraps around a resource's `properties`: its id, name and type, and top-level fields
/// such as `systemData` that this type does not model (in `extra`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmEnvelope<P> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub properties: P,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A policy definition as ARM returns it (`GET .../policyDefinitions/{name}`).
pub type PolicyDefinition = ArmEnvelope<PolicyDefinitionProperties>;

/// `properties` of a policy definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDefinitionProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
    /// `All`, `Indexed`, or a resource-provider mode such as `Microsoft.Kubernetes.Data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Ordered by name so serialisation is deterministic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, ParameterDefinition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_rule: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of a definition's `parameters` map.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterDefinition {
    /// `String`, `Array`, `Object`, `Boolean`, `Integer`, `Float` or `DateTime`.
    #[serde(rename = "type")]
    pub parameter_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<Value>>,
    /// JSON schema for `Object` parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A policy set definition (initiative) as ARM returns it.
pub type PolicySetDefinition = ArmEnvelope<PolicySetDefinitionProperties>;

/// `properties` of a policy set definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySetDefinitionProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, ParameterDefinition>>,
    #[serde(default)]
    pub policy_definitions: Vec<PolicyDefinitionReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_definition_groups: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One member of a policy set definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDefinitionReference {
    pub policy_definition_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_definition_reference_id: Option<String>,
    /// Parameter name → `{ "value": ... }`, usually expressions over the set's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_version: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PolicyDefinition {
    /// `metadata.category`, the grouping the portal and `$filter=category eq '...'` use.
    pub fn category(&self) -> Option<&str> {
        category_of(self.properties.metadata.as_ref())
    }
}

impl PolicySetDefinition {
    /// `metadata.category` of the set.
    pub fn category(&self) -> Option<&str> {
        category_of(self.properties.metadata.as_ref())
    }
}

fn category_of(metadata: Option<&Value>) -> Option<&str> {
    metadata?.get("category")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_round_trip() {
        let body = json!({
            "id": "/providers/Microsoft.Authorization/policyDefinitions/x",
            "name": "x",
            "type": POLICY_DEFINITION_TYPE,
            "systemData": {"createdBy": "someone"},
            "properties": {
                "policyType": "Custom",
                "mode": "All",
                "displayName": "X",
                "futureField": [1, 2],
                "metadata": {"category": "General"},
                "parameters": {
                    "effect": {"type": "String", "defaultValue": "Audit", "allowedValues": ["Audit"], "futureParamField": true}
                },
                "policyRule": {"if": {"field": "type", "equals": "a"}, "then": {"effect": "audit"}}
            }
        });
        let def: PolicyDefinition = serde_json::from_value(body.clone()).expect("valid body");
        assert_eq!(def.category(), Some("General"));
        assert_eq!(def.properties.mode.as_deref(), Some("All"));
        let params = def
            .properties
            .parameters
            .as_ref()
            .expect("parameters present");
        assert_eq!(params["effect"].parameter_type, "String");
        assert_eq!(serde_json::to_value(&def).expect("serialises"), body);
    }

    #[test]
    fn set_definition_members_parse() {
        let body = json!({
            "name": "s",
            "properties": {
                "displayName": "S",
                "policyDefinitions": [
                    {"policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/a",
                     "policyDefinitionReferenceId": "a1",
                     "parameters": {"effect": {"value": "[parameters('effect')]"}}}
                ]
            }
        });
        let set: PolicySetDefinition = serde_json::from_value(body.clone()).expect("valid body");
        assert_eq!(set.properties.policy_definitions.len(), 1);
        assert_eq!(serde_json::to_value(&set).expect("serialises"), body);
    }
}
