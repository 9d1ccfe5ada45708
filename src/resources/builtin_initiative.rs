//! Data source `akspolicy_builtin_initiative`: looks up a built-in policy set definition by its
//! name (a GUID) or exact display name, e.g. "Kubernetes cluster pod security baseline standards
//! for Linux-based workloads".

use crate::framework::{Attribute, Block, Schema, Type};
use crate::policy::PolicySetDefinition;

use super::shared::definition_collection::POLICY_SET_DEFINITIONS;
use super::shared::json::canonical_json;
use super::shared::lookup::{computed, lookup_attributes, lookup_state, BuiltinLookup};

pub struct BuiltinInitiativeDataSource;

impl BuiltinLookup for BuiltinInitiativeDataSource {
    const TYPE_NAME: &'static str = "akspolicy_builtin_initiative";
    type Body = PolicySetDefinition;
    type State = BuiltinInitiative;

    fn lookup_schema() -> Schema {
        let block = Block::new().description(
            "Looks up a built-in Azure Policy initiative (policy set definition) by `name` or \
             `display_name` (exactly one). Use its `id` in assignments.",
        );
        Schema::new(
            lookup_attributes(
                block,
                &POLICY_SET_DEFINITIONS,
                "a8640138-9b0a-4a28-b8cb-1666c838647d",
                "Kubernetes cluster pod security baseline standards for Linux-based workloads",
            )
            .attribute(computed(
                "policy_definitions",
                "The members (`policyDefinitionId`, `policyDefinitionReferenceId`, `parameters`, `definitionVersion`, `groupNames`) as canonical JSON.",
            ))
            .attribute(
                Attribute::new("policy_definition_ids", Type::list(Type::String))
                    .computed()
                    .description("The member definitions' IDs, in the initiative's order."),
            )
            .attribute(computed(
                "policy_definition_groups",
                "The groups as canonical JSON; null when the initiative has none.",
            )),
        )
    }

    fn to_state(s: &PolicySetDefinition) -> BuiltinInitiative {
        let p = &s.properties;
        BuiltinInitiative {
            policy_definitions: serde_json::to_value(&p.policy_definitions)
                .ok()
                .as_ref()
                .map(canonical_json),
            policy_definition_ids: p
                .policy_definitions
                .iter()
                .map(|d| d.policy_definition_id.clone())
                .collect(),
            policy_definition_groups: p.policy_definition_groups.as_ref().map(canonical_json),
            ..BuiltinInitiative::reported(s)
        }
    }
}

lookup_state! {
    /// The data source's state.
    pub struct BuiltinInitiative {
        pub policy_definitions: Option<String>,
        pub policy_definition_ids: Vec<String>,
        pub policy_definition_groups: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::shared::lookup::pick_by_display_name;

    fn set(name: &str, display: &str) -> PolicySetDefinition {
        serde_json::from_value(serde_json::json!({
            "id": format!("/providers/Microsoft.Authorization/policySetDefinitions/{name}"),
            "name": name,
            "properties": {"displayName": display, "version": "1.0.0", "policyType": "BuiltIn",
                "policyDefinitions": [{"policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/x"}]}
        }))
        .unwrap()
    }

    #[test]
    fn display_name_lookup() {
        let all = vec![set("a", "Baseline"), set("b", "Baseline restricted")];
        assert_eq!(
            pick_by_display_name(all.clone(), "Baseline", &POLICY_SET_DEFINITIONS)
                .unwrap()
                .name
                .as_deref(),
            Some("a")
        );
        let err = pick_by_display_name(all, "baseline", &POLICY_SET_DEFINITIONS).unwrap_err();
        assert!(err.detail.contains("case included"), "{}", err.detail);
        let state = BuiltinInitiativeDataSource::to_state(&set("a", "Baseline"));
        assert_eq!(
            state.policy_definition_ids,
            vec!["/providers/Microsoft.Authorization/policyDefinitions/x".to_string()]
        );
    }
}
