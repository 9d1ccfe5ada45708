//! Facts about `Microsoft.Kubernetes.Data` definitions: where their Gatekeeper
//! ConstraintTemplate comes from (`then.details.templateInfo`, or the deprecated
//! `constraintTemplate` URL of the oldest definitions).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use super::definition_body::{ParameterDefinition, PolicyDefinitionProperties};

/// The mode of Azure Policy definitions that carry Gatekeeper templates.
pub const KUBERNETES_MODE: &str = "Microsoft.Kubernetes.Data";
/// ARM type of AKS clusters, the one constant for every rule, alias and body that names it.
pub const MANAGED_CLUSTERS: &str = "Microsoft.ContainerService/managedClusters";
/// ARM type of Arc-enabled Kubernetes clusters.
pub const CONNECTED_CLUSTERS: &str = "Microsoft.Kubernetes/connectedClusters";

/// How a Kubernetes definition supplies its ConstraintTemplate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateInfo {
    /// `templateInfo.sourceType = PublicURL`: fetched by the add-on from `url`.
    PublicUrl(String),
    /// `templateInfo.sourceType = Base64Encoded`: the template itself, base64-encoded.
    Base64Encoded(String),
    /// The deprecated `details.constraintTemplate` URL (with a separate `constraint` URL).
    ConstraintTemplateUrl(String),
}

impl TemplateInfo {
    /// Reads a `{sourceType, url | content}` object (`templateInfo` or `mutationInfo`); `None`
    /// for another source type or when the field it needs is missing.
    fn from_source(info: &Json) -> Option<TemplateInfo> {
        let source = info.get("sourceType").and_then(Json::as_str).unwrap_or("");
        let text = |key: &str| info.get(key).and_then(Json::as_str).map(str::to_string);
        if source.eq_ignore_ascii_case("PublicURL") {
            text("url").map(TemplateInfo::PublicUrl)
        } else if source.eq_ignore_ascii_case("Base64Encoded") {
            text("content").map(TemplateInfo::Base64Encoded)
        } else {
            None
        }
    }

    /// The document a `Base64Encoded` source embeds; `None` for a URL source, or when the
    /// content is not base64 of UTF-8 text.
    pub fn embedded(&self) -> Option<String> {
        use base64::Engine as _;
        let TemplateInfo::Base64Encoded(content) = self else {
            return None;
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content.trim())
            .ok()?;
        String::from_utf8(bytes).ok()
    }

    /// The URL of a `PublicURL` or deprecated `constraintTemplate` source.
    pub fn url(&self) -> Option<&str> {
        match self {
            TemplateInfo::PublicUrl(url) | TemplateInfo::ConstraintTemplateUrl(url) => Some(url),
            TemplateInfo::Base64Encoded(_) => None,
        }
    }
}

/// A parameter the provider declares on a Kubernetes definition it builds, shown in the portal
/// as `display_name` with `description`; `allowed_values` lists its choices, if it has any.
pub(crate) fn declared_parameter(
    parameter_type: &str,
    (display_name, description): (&str, &str),
    default_value: Json,
    allowed_values: Option<Vec<Json>>,
) -> ParameterDefinition {
    ParameterDefinition {
        parameter_type: parameter_type.into(),
        metadata: Some(json!({"displayName": display_name, "description": description})),
        default_value: Some(default_value),
        allowed_values,
        ..Default::default()
    }
}

/// `excludedNamespaces` and `namespaces`, through which an assignment narrows a Kubernetes
/// definition: each with the description of what the definition does there, and its default.
pub(crate) fn namespace_parameters(
    (excluded_description, excluded_default): (&str, Json),
    (included_description, included_default): (&str, Json),
) -> [(String, ParameterDefinition); 2] {
    [
        (
            "excludedNamespaces".to_string(),
            declared_parameter(
                "Array",
                ("Namespace exclusions", excluded_description),
                excluded_default,
                None,
            ),
        ),
        (
            "namespaces".to_string(),
            declared_parameter(
                "Array",
                ("Namespace inclusions", included_description),
                included_default,
                None,
            ),
        ),
    ]
}

/// The `properties` of a custom Kubernetes-mode definition (a template or a mutator alike) as
/// PUT to ARM: `metadata.category` defaults to Kubernetes and `metadata.version` to the
/// definition's version, as on Azure's built-ins.
pub fn custom_definition_properties(
    display_name: Option<String>,
    description: Option<String>,
    version: Option<String>,
    mut metadata: Map<String, Json>,
    parameters: BTreeMap<String, ParameterDefinition>,
    policy_rule: Json,
) -> PolicyDefinitionProperties {
    metadata
        .entry("category".to_string())
        .or_insert_with(|| json!("Kubernetes"));
    if let Some(v) = &version {
        metadata
            .entry("version".to_string())
            .or_insert_with(|| json!(v));
    }
    PolicyDefinitionProperties {
        policy_type: Some("Custom".into()),
        mode: Some(KUBERNETES_MODE.into()),
        display_name,
        description,
        metadata: Some(Json::Object(metadata)),
        parameters: Some(parameters),
        policy_rule: Some(policy_rule),
        version,
        ..Default::default()
    }
}

impl PolicyDefinitionProperties {
    pub fn is_kubernetes(&self) -> bool {
        self.mode
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(KUBERNETES_MODE))
    }

    /// The mutator source of a Kubernetes mutation definition (`details.mutationInfo`, same
    /// shape as `templateInfo`); `None` for other definitions.
    pub fn mutation_info(&self) -> Option<TemplateInfo> {
        if !self.is_kubernetes() {
            return None;
        }
        let info = self
            .policy_rule
            .as_ref()?
            .get("then")?
            .get("details")?
            .get("mutationInfo")?;
        TemplateInfo::from_source(info)
    }

    /// The template source of a Kubernetes definition; `None` for other modes or when the rule
    /// names none.
    pub fn template_info(&self) -> Option<TemplateInfo> {
        if !self.is_kubernetes() {
            return None;
        }
        let details = self.policy_rule.as_ref()?.get("then")?.get("details")?;
        if let Some(info) = details.get("templateInfo") {
            return TemplateInfo::from_source(info);
        }
        details
            .get("constraintTemplate")
            .and_then(Json::as_str)
            .map(|u| TemplateInfo::ConstraintTemplateUrl(u.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(details: Json) -> PolicyDefinitionProperties {
        serde_json::from_value(serde_json::json!({
            "mode": "Microsoft.Kubernetes.Data",
            "policyRule": {"if": {}, "then": {"effect": "audit", "details": details}}
        }))
        .expect("valid properties")
    }

    #[test]
    fn reads_every_template_form() {
        let url = props(
            serde_json::json!({"templateInfo": {"sourceType": "PublicURL", "url": "https://x/t.yaml"}}),
        );
        assert_eq!(
            url.template_info(),
            Some(TemplateInfo::PublicUrl("https://x/t.yaml".into()))
        );
        let b64 = props(
            serde_json::json!({"templateInfo": {"sourceType": "Base64Encoded", "content": "YQ=="}}),
        );
        assert_eq!(
            b64.template_info(),
            Some(TemplateInfo::Base64Encoded("YQ==".into()))
        );
        let old = props(
            serde_json::json!({"constraintTemplate": "https://x/old.yaml", "constraint": "https://x/c.yaml"}),
        );
        assert_eq!(
            old.template_info(),
            Some(TemplateInfo::ConstraintTemplateUrl(
                "https://x/old.yaml".into()
            ))
        );
    }

    #[test]
    fn other_modes_have_no_template() {
        let mut p =
            props(serde_json::json!({"templateInfo": {"sourceType": "PublicURL", "url": "u"}}));
        p.mode = Some("All".into());
        assert_eq!(p.template_info(), None);
    }
}
