//! Building the body of a custom `Microsoft.Kubernetes.Data` definition from a template and its
//! match, and reading those parts back out of a body Azure returns (for drift detection).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use super::constraint_template::TemplateParameter;
use super::definition_body::{ParameterDefinition, PolicyDefinitionProperties};
use super::json::strings;
use super::kubernetes::{
    custom_definition_properties, declared_parameter, namespace_parameters, TemplateInfo,
    CONNECTED_CLUSTERS, MANAGED_CLUSTERS,
};

/// Namespaces Azure's own definitions exclude by default.
pub const DEFAULT_EXCLUDED_NAMESPACES: [&str; 4] = [
    "kube-system",
    "gatekeeper-system",
    "azure-arc",
    "azure-extensions-usage-system",
];
/// Cluster resource types a Kubernetes definition applies to (AKS and Arc).
pub const CLUSTER_TYPES: [&str; 2] = [CONNECTED_CLUSTERS, MANAGED_CLUSTERS];
/// Definition parameters the provider generates; template parameters may not reuse them.
pub const STANDARD_PARAMETERS: [&str; 4] = [
    "effect",
    "excludedNamespaces",
    "namespaces",
    "labelSelector",
];

/// `apiGroups` + `kinds` of one Gatekeeper match entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindMatch {
    pub api_groups: Vec<String>,
    pub kinds: Vec<String>,
}

/// Where the add-on gets the template from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateSource {
    /// The template YAML itself, sent as `Base64Encoded`.
    Embedded(String),
    /// `PublicURL`.
    Url(String),
}

/// Everything a Kubernetes definition is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesDefinitionSpec {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub version: Option<String>,
    pub metadata: Map<String, Json>,
    pub template: TemplateSource,
    pub template_parameters: Vec<TemplateParameter>,
    pub matches: Vec<KindMatch>,
    pub effects: Vec<String>,
    pub default_effect: String,
}

/// Why a definition cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionBuildError {
    #[error("template parameter {0:?} clashes with a parameter the provider generates (effect, excludedNamespaces, namespaces, labelSelector); rename it")]
    ReservedParameter(String),
    #[error("default_effect {default:?} is not one of effects {effects:?}")]
    DefaultEffect {
        default: String,
        effects: Vec<String>,
    },
    #[error("kinds and api_groups may not contain \"*\"; Azure rejects wildcards there")]
    Wildcard,
    #[error("match needs at least one kind")]
    NoKinds,
}

fn string_list(items: &[String]) -> Json {
    Json::Array(items.iter().map(|s| json!(s)).collect())
}

impl KubernetesDefinitionSpec {
    /// Standard plus template parameters, as Azure declares them.
    pub fn parameters(
        &self,
    ) -> Result<BTreeMap<String, ParameterDefinition>, DefinitionBuildError> {
        let effect = (
            "Effect",
            "'audit' reports violations, 'deny' also blocks admission, 'disabled' turns the policy off.",
        );
        let label_selector = (
            "Kubernetes label selector",
            "Only objects matching this selector are evaluated.",
        );
        let effects = self.effects.iter().map(|e| json!(e)).collect();
        let mut out = BTreeMap::from([
            (
                "effect".to_string(),
                declared_parameter("String", effect, json!(self.default_effect), Some(effects)),
            ),
            (
                "labelSelector".to_string(),
                declared_parameter("Object", label_selector, json!({}), None),
            ),
        ]);
        out.extend(namespace_parameters(
            (
                "Namespaces the policy ignores. System namespaces are always excluded by the add-on.",
                json!(DEFAULT_EXCLUDED_NAMESPACES),
            ),
            ("Namespaces the policy applies to; empty means all.", json!([])),
        ));
        for p in &self.template_parameters {
            if STANDARD_PARAMETERS.contains(&p.name.as_str()) {
                return Err(DefinitionBuildError::ReservedParameter(p.name.clone()));
            }
            let mut metadata = Map::new();
            metadata.insert("displayName".into(), json!(p.name));
            if let Some(d) = &p.description {
                metadata.insert("description".into(), json!(d));
            }
            out.insert(
                p.name.clone(),
                ParameterDefinition {
                    parameter_type: p.parameter_type.as_str().into(),
                    metadata: Some(Json::Object(metadata)),
                    ..Default::default()
                },
            );
        }
        Ok(out)
    }

    /// `policyRule` with the template wired through `details`.
    pub fn policy_rule(&self) -> Result<Json, DefinitionBuildError> {
        check_default_effect(&self.effects, &self.default_effect)?;
        let (api_groups, kinds) = merged_match(&self.matches)?;
        let template_info = match &self.template {
            TemplateSource::Embedded(yaml) => json!({
                "sourceType": "Base64Encoded",
                "content": base64::engine::general_purpose::STANDARD.encode(yaml.as_bytes()),
            }),
            TemplateSource::Url(url) => json!({"sourceType": "PublicURL", "url": url}),
        };
        let mut details = Map::new();
        details.insert("templateInfo".into(), template_info);
        details.insert("apiGroups".into(), string_list(&api_groups));
        details.insert("kinds".into(), string_list(&kinds));
        details.insert(
            "excludedNamespaces".into(),
            json!("[parameters('excludedNamespaces')]"),
        );
        details.insert("namespaces".into(), json!("[parameters('namespaces')]"));
        details.insert(
            "labelSelector".into(),
            json!("[parameters('labelSelector')]"),
        );
        if !self.template_parameters.is_empty() {
            let values: Map<String, Json> = self
                .template_parameters
                .iter()
                .map(|p| (p.name.clone(), json!(format!("[parameters('{}')]", p.name))))
                .collect();
            details.insert("values".into(), Json::Object(values));
        }
        Ok(json!({
            "if": {"field": "type", "in": CLUSTER_TYPES},
            "then": {"effect": "[parameters('effect')]", "details": details}
        }))
    }

    /// The definition's `properties` as PUT to ARM.
    pub fn properties(&self) -> Result<PolicyDefinitionProperties, DefinitionBuildError> {
        Ok(custom_definition_properties(
            self.display_name.clone(),
            self.description.clone(),
            self.version.clone(),
            self.metadata.clone(),
            self.parameters()?,
            self.policy_rule()?,
        ))
    }
}

/// `default_effect` must be one of `effects` (Azure checks a parameter's default against its
/// allowed values).
pub fn check_default_effect(effects: &[String], default: &str) -> Result<(), DefinitionBuildError> {
    if effects.iter().any(|e| e.eq_ignore_ascii_case(default)) {
        return Ok(());
    }
    Err(DefinitionBuildError::DefaultEffect {
        default: default.to_string(),
        effects: effects.to_vec(),
    })
}

/// The `apiGroups` and `kinds` Azure's `details` hold for the match entries: Azure has one list
/// of each, so entries are merged.
pub fn merged_match(
    matches: &[KindMatch],
) -> Result<(Vec<String>, Vec<String>), DefinitionBuildError> {
    let mut api_groups: Vec<String> = Vec::new();
    let mut kinds: Vec<String> = Vec::new();
    for m in matches {
        for g in &m.api_groups {
            if !api_groups.contains(g) {
                api_groups.push(g.clone());
            }
        }
        for k in &m.kinds {
            if !kinds.contains(k) {
                kinds.push(k.clone());
            }
        }
    }
    if kinds.is_empty() {
        return Err(DefinitionBuildError::NoKinds);
    }
    if kinds.iter().chain(api_groups.iter()).any(|s| s == "*") {
        return Err(DefinitionBuildError::Wildcard);
    }
    Ok((api_groups, kinds))
}

/// The user-facing parts of a Kubernetes definition read back from Azure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodedKubernetesDefinition {
    /// Decoded template YAML when embedded.
    pub template_yaml: Option<String>,
    pub template_url: Option<String>,
    pub api_groups: Vec<String>,
    pub kinds: Vec<String>,
    pub effects: Vec<String>,
    pub default_effect: Option<String>,
}

/// Reads the template and match back from a definition body.
pub fn decode(properties: &PolicyDefinitionProperties) -> DecodedKubernetesDefinition {
    let template = properties.template_info();
    let details = properties
        .policy_rule
        .as_ref()
        .and_then(|r| r.pointer("/then/details"));
    let effect = properties.parameters.as_ref().and_then(|p| p.get("effect"));
    DecodedKubernetesDefinition {
        template_yaml: template.as_ref().and_then(TemplateInfo::embedded),
        template_url: template
            .as_ref()
            .and_then(TemplateInfo::url)
            .map(str::to_string),
        api_groups: strings(details.and_then(|d| d.get("apiGroups"))),
        kinds: strings(details.and_then(|d| d.get("kinds"))),
        effects: effect
            .and_then(|e| e.allowed_values.as_ref())
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(str::to_string)
            .collect(),
        default_effect: effect
            .and_then(|e| e.default_value.as_ref())
            .and_then(Json::as_str)
            .map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::constraint_template::AzureParameterType;

    fn spec() -> KubernetesDefinitionSpec {
        KubernetesDefinitionSpec {
            display_name: Some("No latest".into()),
            description: None,
            version: Some("1.0.0".into()),
            metadata: Map::new(),
            template: TemplateSource::Embedded("apiVersion: x\n".into()),
            template_parameters: vec![TemplateParameter {
                name: "exemptImages".into(),
                parameter_type: AzureParameterType::Array,
                description: None,
                schema: json!({"type": "array"}),
            }],
            matches: vec![KindMatch {
                api_groups: vec!["".into()],
                kinds: vec!["Pod".into()],
            }],
            effects: vec!["audit".into(), "deny".into(), "disabled".into()],
            default_effect: "audit".into(),
        }
    }

    #[test]
    fn builds_standard_and_template_parameters() {
        let props = spec().properties().unwrap();
        let params = props.parameters.as_ref().unwrap();
        assert_eq!(params["exemptImages"].parameter_type, "Array");
        assert_eq!(
            params["excludedNamespaces"].default_value,
            Some(json!(DEFAULT_EXCLUDED_NAMESPACES))
        );
        let rule = props.policy_rule.as_ref().unwrap();
        assert_eq!(
            rule["then"]["details"]["values"]["exemptImages"],
            "[parameters('exemptImages')]"
        );
        assert_eq!(rule["then"]["details"]["kinds"], json!(["Pod"]));
        assert_eq!(props.metadata.as_ref().unwrap()["category"], "Kubernetes");
        let decoded = decode(&props);
        assert_eq!(decoded.template_yaml.as_deref(), Some("apiVersion: x\n"));
        assert_eq!(decoded.kinds, vec!["Pod".to_string()]);
        assert_eq!(decoded.default_effect.as_deref(), Some("audit"));
    }

    #[test]
    fn rejects_reserved_names_and_bad_default_effect() {
        let mut s = spec();
        s.template_parameters[0].name = "effect".into();
        assert!(matches!(
            s.parameters(),
            Err(DefinitionBuildError::ReservedParameter(_))
        ));
        let mut s = spec();
        s.default_effect = "mutate".into();
        assert!(s.policy_rule().is_err());
    }
}
