//! Data source `akspolicy_builtin_initiative`: looks up a built-in policy set definition by its
//! name (a GUID) or exact display name, e.g. "Kubernetes cluster pod security baseline standards
//! for Linux-based workloads".

use crate::framework::{Attribute, Block, Schema, Type};
use crate::policy::PolicySetDefinition;
use crate::typed_object;

use super::shared::json::canonical_json;
use super::shared::lookup::{BuiltinLookup, Noun};
use super::shared::validators::azure_name;
use crate::policy::names;

const BUILTINS_PATH: &str = "/providers/Microsoft.Authorization/policySetDefinitions";

pub struct BuiltinInitiativeDataSource;

const NOUN: Noun = Noun {
    full: "initiative",
    short: "initiative",
};

fn computed(name: &str, description: &str) -> Attribute {
    Attribute::string(name).computed().description(description)
}

fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "Looks up a built-in Azure Policy initiative (policy set definition) by `name` or \
                 `display_name` (exactly one). Use its `id` in assignments.",
            )
            .attribute(
                Attribute::string("name")
                    .optional()
                    .computed()
                    .description("The initiative's name, a GUID such as `a8640138-9b0a-4a28-b8cb-1666c838647d`.")
                    .validate_with(azure_name(names::POLICY_DEFINITION)),
            )
            .attribute(
                Attribute::string("display_name")
                    .optional()
                    .computed()
                    .description("The exact display name. Zero or several matches are an error that lists the candidates."),
            )
            .attribute(computed("id", "The initiative's ARM ID."))
            .attribute(computed("description", "The description."))
            .attribute(computed("version", "The initiative's version (x.y.z)."))
            .attribute(
                Attribute::new("versions", Type::list(Type::String))
                    .computed()
                    .description("Every version Azure offers, newest first."),
            )
            .attribute(computed("policy_type", "`BuiltIn` or `Static`."))
            .attribute(computed("category", "The `category` from the metadata."))
            .attribute(computed("metadata", "The metadata as canonical JSON."))
            .attribute(computed("parameters", "The initiative's parameter declarations as canonical JSON."))
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

impl BuiltinLookup for BuiltinInitiativeDataSource {
    const TYPE_NAME: &'static str = "akspolicy_builtin_initiative";
    const NOUN: Noun = NOUN;
    const BUILTINS_PATH: &'static str = BUILTINS_PATH;
    type Body = PolicySetDefinition;
    type State = BuiltinInitiative;

    fn lookup_schema() -> Schema {
        schema()
    }

    fn to_state(found: &PolicySetDefinition) -> BuiltinInitiative {
        to_state(found)
    }
}

typed_object! {
    /// The data source's state.
    pub struct BuiltinInitiative {
        pub id: Option<String>,
        pub name: Option<String>,
        pub display_name: Option<String>,
        pub description: Option<String>,
        pub version: Option<String>,
        pub versions: Vec<String>,
        pub policy_type: Option<String>,
        pub category: Option<String>,
        pub metadata: Option<String>,
        pub parameters: Option<String>,
        pub policy_definitions: Option<String>,
        pub policy_definition_ids: Vec<String>,
        pub policy_definition_groups: Option<String>,
    }
}

fn to_state(s: &PolicySetDefinition) -> BuiltinInitiative {
    let p = &s.properties;
    let json_string = |v: Option<serde_json::Value>| v.as_ref().map(canonical_json);
    BuiltinInitiative {
        id: s.id.clone(),
        name: s.name.clone(),
        display_name: p.display_name.clone(),
        description: p.description.clone(),
        version: p.version.clone(),
        versions: p.versions.clone().unwrap_or_default(),
        policy_type: p.policy_type.clone(),
        category: s.category().map(str::to_string),
        metadata: json_string(p.metadata.clone()),
        parameters: json_string(
            p.parameters
                .as_ref()
                .and_then(|x| serde_json::to_value(x).ok()),
        ),
        policy_definitions: json_string(serde_json::to_value(&p.policy_definitions).ok()),
        policy_definition_ids: p
            .policy_definitions
            .iter()
            .map(|d| d.policy_definition_id.clone())
            .collect(),
        policy_definition_groups: json_string(p.policy_definition_groups.clone()),
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
            pick_by_display_name(all.clone(), "Baseline", &NOUN)
                .unwrap()
                .name
                .as_deref(),
            Some("a")
        );
        let err = pick_by_display_name(all, "baseline", &NOUN).unwrap_err();
        assert!(err.detail.contains("case included"), "{}", err.detail);
        let state = to_state(&set("a", "Baseline"));
        assert_eq!(
            state.policy_definition_ids,
            vec!["/providers/Microsoft.Authorization/policyDefinitions/x".to_string()]
        );
    }
}
