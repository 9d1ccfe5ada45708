//! Data source `akspolicy_builtin_definition`: looks up a built-in Azure Policy definition by
//! its name (a GUID) or by its exact display name, e.g. "Kubernetes cluster should not allow
//! privileged containers".

use base64::Engine as _;

use crate::framework::{Block, Schema};
use crate::policy::{PolicyDefinition, TemplateInfo};

use super::shared::definition_collection::POLICY_DEFINITIONS;
use super::shared::json::canonical_json;
use super::shared::lookup::{computed, lookup_attributes, lookup_state, BuiltinLookup};

pub struct BuiltinDefinitionDataSource;

impl BuiltinLookup for BuiltinDefinitionDataSource {
    const TYPE_NAME: &'static str = "akspolicy_builtin_definition";
    type Body = PolicyDefinition;
    type State = BuiltinDefinition;

    fn lookup_schema() -> Schema {
        let block = Block::new().description(
            "Looks up a built-in Azure Policy definition by `name` or `display_name` (exactly \
             one). Use its `id` in assignments and its `parameters` to see what can be set.",
        );
        Schema::new(
            lookup_attributes(
                block,
                &POLICY_DEFINITIONS,
                "95edb821-ddaf-4404-9732-666045e056b4",
                "Kubernetes cluster should not allow privileged containers",
            )
            .attribute(computed("mode", "The mode, e.g. `Microsoft.Kubernetes.Data` for Kubernetes policies."))
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

    fn to_state(d: &PolicyDefinition) -> BuiltinDefinition {
        let p = &d.properties;
        let (source_type, url, content) = match p.template_info() {
            Some(TemplateInfo::PublicUrl(url)) => (Some("PublicURL"), Some(url), None),
            Some(TemplateInfo::Base64Encoded(encoded)) => (
                Some("Base64Encoded"),
                None,
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            ),
            Some(TemplateInfo::ConstraintTemplateUrl(url)) => (Some("PublicURL"), Some(url), None),
            None => (None, None, None),
        };
        BuiltinDefinition {
            mode: p.mode.clone(),
            policy_rule: p.policy_rule.as_ref().map(canonical_json),
            template_source_type: source_type.map(str::to_string),
            template_url: url,
            template_content: content,
            ..BuiltinDefinition::reported(d)
        }
    }
}

lookup_state! {
    /// The data source's state.
    pub struct BuiltinDefinition {
        pub mode: Option<String>,
        pub policy_rule: Option<String>,
        pub template_source_type: Option<String>,
        pub template_url: Option<String>,
        pub template_content: Option<String>,
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
            pick_by_display_name(all, "Pods must X", &POLICY_DEFINITIONS)
                .unwrap()
                .name
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn ambiguous_display_name_lists_candidates() {
        let all = vec![def("a", "Same", "1.0.0"), def("b", "Same", "2.1.0")];
        let err = pick_by_display_name(all, "Same", &POLICY_DEFINITIONS).unwrap_err();
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
            &POLICY_DEFINITIONS,
        )
        .unwrap_err();
        assert!(err.detail.contains("case included"), "{}", err.detail);
        assert!(err.detail.contains("\"a\""), "{}", err.detail);
    }
}
