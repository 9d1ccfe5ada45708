//! Building the body of a custom `Microsoft.Kubernetes.Data` mutation definition (effect
//! `Mutate`, `details.mutationInfo` carrying the mutator) and reading its parts back from a
//! body Azure returns. The shape follows Azure's built-in mutation definitions: `details` holds
//! only `source`, `mutationInfo`, `namespaces` and `excludedNamespaces`, the three narrowing
//! values being parameters whose defaults the resource sets.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use super::definition_body::{ParameterDefinition, PolicyDefinitionProperties};
use super::json::strings;
use super::kubernetes::{
    custom_definition_properties, declared_parameter, namespace_parameters, TemplateInfo,
};

/// The effects a mutation definition allows, as Azure's built-ins spell them.
pub const MUTATION_EFFECTS: [&str; 2] = ["Mutate", "Disabled"];
/// Mutation runs on AKS only (Azure's mutation built-ins test for managed clusters alone).
use super::kubernetes::MANAGED_CLUSTERS;
/// `source` values (Gatekeeper's `match.source`).
pub const SOURCES: [&str; 3] = ["All", "Generated", "Original"];

/// Everything a mutation definition is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct MutationDefinitionSpec {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub version: Option<String>,
    pub metadata: Map<String, Json>,
    /// The mutator YAML, embedded as `Base64Encoded`.
    pub mutator_yaml: String,
    pub namespaces: Vec<String>,
    pub excluded_namespaces: Vec<String>,
    pub source: String,
    pub default_effect: String,
}

impl MutationDefinitionSpec {
    pub fn parameters(&self) -> BTreeMap<String, ParameterDefinition> {
        let effect = (
            "Effect",
            "'Mutate' changes matching objects at admission; 'Disabled' turns the policy off.",
        );
        let source = (
            "Source",
            "'Original' mutates objects as submitted, 'Generated' only the Pods workloads create (expansion), 'All' both.",
        );
        let choices = |values: &[&str]| Some(values.iter().map(|v| json!(v)).collect());
        let mut out = BTreeMap::from([
            (
                "effect".to_string(),
                declared_parameter(
                    "String",
                    effect,
                    json!(self.default_effect),
                    choices(&MUTATION_EFFECTS),
                ),
            ),
            (
                "source".to_string(),
                declared_parameter("String", source, json!(self.source), choices(&SOURCES)),
            ),
        ]);
        out.extend(namespace_parameters(
            (
                "Namespaces the mutation leaves alone.",
                json!(self.excluded_namespaces),
            ),
            (
                "Namespaces the mutation applies to; empty means all.",
                json!(self.namespaces),
            ),
        ));
        out
    }

    pub fn policy_rule(&self) -> Json {
        json!({
            "if": {"field": "type", "equals": MANAGED_CLUSTERS},
            "then": {
                "effect": "[parameters('effect')]",
                "details": {
                    "source": "[parameters('source')]",
                    "mutationInfo": {
                        "sourceType": "Base64Encoded",
                        "content": base64::engine::general_purpose::STANDARD.encode(self.mutator_yaml.as_bytes()),
                    },
                    "namespaces": "[parameters('namespaces')]",
                    "excludedNamespaces": "[parameters('excludedNamespaces')]",
                }
            }
        })
    }

    /// The definition's `properties` as PUT to ARM.
    pub fn properties(&self) -> PolicyDefinitionProperties {
        custom_definition_properties(
            self.display_name.clone(),
            self.description.clone(),
            self.version.clone(),
            self.metadata.clone(),
            self.parameters(),
            self.policy_rule(),
        )
    }

    /// The `details` values the add-on uses when an assignment keeps the defaults.
    pub fn default_details(&self) -> Map<String, Json> {
        let mut m = Map::new();
        m.insert("namespaces".into(), json!(self.namespaces));
        m.insert("excludedNamespaces".into(), json!(self.excluded_namespaces));
        m.insert("source".into(), json!(self.source));
        m
    }
}

/// The user-facing parts of a mutation definition read back from Azure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodedMutationDefinition {
    /// Decoded mutator YAML when embedded.
    pub mutator_yaml: Option<String>,
    pub mutator_url: Option<String>,
    pub namespaces: Option<Vec<String>>,
    pub excluded_namespaces: Option<Vec<String>>,
    pub source: Option<String>,
    pub default_effect: Option<String>,
}

/// Reads the mutator and the parameter defaults back from a definition body.
pub fn decode(properties: &PolicyDefinitionProperties) -> DecodedMutationDefinition {
    let mutator = properties.mutation_info();
    let default = |name: &str| {
        properties
            .parameters
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(|d| d.default_value.clone())
    };
    // A parameter without an array default stays unset rather than becoming an empty list.
    let array = |v: Option<Json>| v.filter(Json::is_array).map(|a| strings(Some(&a)));
    let text = |v: Option<Json>| v.and_then(|v| v.as_str().map(str::to_string));
    DecodedMutationDefinition {
        mutator_yaml: mutator.as_ref().and_then(TemplateInfo::embedded),
        mutator_url: mutator
            .as_ref()
            .and_then(TemplateInfo::url)
            .map(str::to_string),
        namespaces: array(default("namespaces")),
        excluded_namespaces: array(default("excludedNamespaces")),
        source: text(default("source")),
        default_effect: text(default("effect")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_shape_of_azure_mutation_definitions_and_reads_back() {
        let spec = MutationDefinitionSpec {
            display_name: Some("No escalation".into()),
            description: None,
            version: Some("1.0.0".into()),
            metadata: Map::new(),
            mutator_yaml: "kind: Assign\n".into(),
            namespaces: vec![],
            excluded_namespaces: vec!["kube-system".into()],
            source: "Original".into(),
            default_effect: "Mutate".into(),
        };
        let props = spec.properties();
        let rule = props.policy_rule.as_ref().unwrap();
        let details = &rule["then"]["details"];
        assert_eq!(details["mutationInfo"]["sourceType"], "Base64Encoded");
        let keys: Vec<&String> = details.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            vec!["excludedNamespaces", "mutationInfo", "namespaces", "source"]
        );
        assert!(crate::policy::validation::validate_definition("x", &props).is_ok());
        // What Azure refuses: mutationInfo next to template fields, or without its content.
        let mut with_kinds = props.clone();
        with_kinds.policy_rule.as_mut().unwrap()["then"]["details"]["kinds"] = json!(["Pod"]);
        let err = crate::policy::validation::validate_definition("x", &with_kinds).unwrap_err();
        assert!(err.to_string().contains("'kinds'"), "{err}");
        let mut no_content = props.clone();
        no_content.policy_rule.as_mut().unwrap()["then"]["details"]["mutationInfo"] =
            json!({"sourceType": "Base64Encoded"});
        let err = crate::policy::validation::validate_definition("x", &no_content).unwrap_err();
        assert!(err.to_string().contains("requires 'content'"), "{err}");
        let decoded = decode(&props);
        assert_eq!(decoded.mutator_yaml.as_deref(), Some("kind: Assign\n"));
        assert_eq!(
            decoded.excluded_namespaces,
            Some(vec!["kube-system".into()])
        );
        assert_eq!(decoded.source.as_deref(), Some("Original"));
        assert_eq!(decoded.default_effect.as_deref(), Some("Mutate"));
    }
}
