//! Data source `akspolicy_builtin_definition`: looks up a built-in Azure Policy definition by
//! its name (a GUID) or by its exact display name, e.g. "Kubernetes cluster should not allow
//! privileged containers".

use base64::Engine as _;

use crate::framework::{Attribute, Block, Schema, Type};
use crate::policy::{PolicyDefinition, TemplateInfo};
use crate::typed_object;

use super::shared::json::canonical_json;
use super::shared::lookup::{BuiltinLookup, Noun};
use super::shared::validators::azure_name;
use crate::policy::names;

const BUILTINS_PATH: &str = "/providers/Microsoft.Authorization/policyDefinitions";

pub struct BuiltinDefinitionDataSource;

const NOUN: Noun = Noun {
    full: "policy definition",
    short: "definition",
};

fn computed(name: &str, description: &str) -> Attribute {
    Attribute::string(name).computed().description(description)
}

fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "Looks up a built-in Azure Policy definition by `name` or `display_name` (exactly \
                 one). Use its `id` in assignments and its `parameters` to see what can be set.",
            )
            .attribute(
                Attribute::string("name")
                    .optional()
                    .computed()
                    .description("The definition's name, a GUID such as `95edb821-ddaf-4404-9732-666045e056b4`.")
                    .validate_with(azure_name(names::POLICY_DEFINITION)),
            )
            .attribute(
                Attribute::string("display_name")
                    .optional()
                    .computed()
                    .description("The exact display name, e.g. `Kubernetes cluster should not allow privileged containers`. Zero or several matches are an error that lists the candidates."),
            )
            .attribute(computed("id", "The definition's ARM ID."))
            .attribute(computed("description", "The definition's description."))
            .attribute(computed("mode", "The mode, e.g. `Microsoft.Kubernetes.Data` for Kubernetes policies."))
            .attribute(computed("version", "The definition's version (x.y.z)."))
            .attribute(
                Attribute::new("versions", Type::list(Type::String))
                    .computed()
                    .description("Every version Azure offers of this definition, newest first."),
            )
            .attribute(computed("policy_type", "`BuiltIn` or `Static`."))
            .attribute(computed("category", "The `category` from the metadata, e.g. `Kubernetes`."))
            .attribute(computed("metadata", "The metadata as canonical JSON (keys sorted)."))
            .attribute(computed("parameters", "The parameter declarations as canonical JSON."))
            .attribute(computed("policy_rule", "The policy rule as canonical JSON."))
            .attribute(computed(
                "template_source_type",
                "For Kubernetes definitions: how the Gatekeeper ConstraintTemplate is supplied (`PublicURL` or `Base64Encoded`); null otherwise.",
            ))
            .attribute(computed(
                "template_url",
                "For Kubernetes definitions whose template is published at a URL: that URL; null otherwise.",
            ))
            .attribute(computed(
                "template_content",
                "For Kubernetes definitions that embed their template: the decoded ConstraintTemplate YAML; null otherwise.",
            )),
    )
}

impl BuiltinLookup for BuiltinDefinitionDataSource {
    const TYPE_NAME: &'static str = "akspolicy_builtin_definition";
    const NOUN: Noun = NOUN;
    const BUILTINS_PATH: &'static str = BUILTINS_PATH;
    type Body = PolicyDefinition;
    type State = BuiltinDefinition;

    fn lookup_schema() -> Schema {
        schema()
    }

    fn to_state(found: &PolicyDefinition) -> BuiltinDefinition {
        to_state(found)
    }
}

typed_object! {
    /// The data source's state.
    pub struct BuiltinDefinition {
        pub id: Option<String>,
        pub name: Option<String>,
        pub display_name: Option<String>,
        pub description: Option<String>,
        pub mode: Option<String>,
        pub version: Option<String>,
        pub versions: Vec<String>,
        pub policy_type: Option<String>,
        pub category: Option<String>,
        pub metadata: Option<String>,
        pub parameters: Option<String>,
        pub policy_rule: Option<String>,
        pub template_source_type: Option<String>,
        pub template_url: Option<String>,
        pub template_content: Option<String>,
    }
}

fn json_string(v: Option<&serde_json::Value>) -> Option<String> {
    v.map(canonical_json)
}

fn to_state(d: &PolicyDefinition) -> BuiltinDefinition {
    let p = &d.properties;
    let template = p.template_info();
    let (source_type, url, content) = match &template {
        Some(TemplateInfo::PublicUrl(url)) => (Some("PublicURL"), Some(url.clone()), None),
        Some(TemplateInfo::Base64Encoded(encoded)) => (
            Some("Base64Encoded"),
            None,
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        ),
        Some(TemplateInfo::ConstraintTemplateUrl(url)) => {
            (Some("PublicURL"), Some(url.clone()), None)
        }
        None => (None, None, None),
    };
    let parameters = p
        .parameters
        .as_ref()
        .and_then(|params| serde_json::to_value(params).ok());
    BuiltinDefinition {
        id: d.id.clone(),
        name: d.name.clone(),
        display_name: p.display_name.clone(),
        description: p.description.clone(),
        mode: p.mode.clone(),
        version: p.version.clone(),
        versions: p.versions.clone().unwrap_or_default(),
        policy_type: p.policy_type.clone(),
        category: d.category().map(str::to_string),
        metadata: json_string(p.metadata.as_ref()),
        parameters: json_string(parameters.as_ref()),
        policy_rule: json_string(p.policy_rule.as_ref()),
        template_source_type: source_type.map(str::to_string),
        template_url: url,
        template_content: content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::shared::lookup::pick_by_display_name;

    fn def(name: &str, display: &str, version: &str) -> PolicyDefinition {
        serde_json::from_value(serde_json::json!({
            "id": format!("/providers/Microsoft.Authorization/policyDefinitions/{name}"),
            "name": name,
            "properties": {"displayName": display, "version": version, "policyType": "BuiltIn"}
        }))
        .unwrap()
    }

    #[test]
    fn exact_display_name_wins() {
        let all = vec![
            def("a", "Pods must X", "1.0.0"),
            def("b", "Pods must X too", "1.0.0"),
        ];
        assert_eq!(
            pick_by_display_name(all, "Pods must X", &NOUN)
                .unwrap()
                .name
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn ambiguous_display_name_lists_candidates() {
        let all = vec![def("a", "Same", "1.0.0"), def("b", "Same", "2.1.0")];
        let err = pick_by_display_name(all, "Same", &NOUN).unwrap_err();
        assert!(
            err.detail.contains("\"a\" (version 1.0.0)"),
            "{}",
            err.detail
        );
        assert!(
            err.detail.contains("\"b\" (version 2.1.0)"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn absent_display_name_suggests_near_matches() {
        let all = vec![def(
            "a",
            "Kubernetes cluster should not allow privileged containers",
            "9.2.0",
        )];
        let err = pick_by_display_name(
            all,
            "kubernetes cluster should not allow privileged containers",
            &NOUN,
        )
        .unwrap_err();
        assert!(err.detail.contains("case included"), "{}", err.detail);
        assert!(err.detail.contains("\"a\""), "{}", err.detail);
    }
}
