//! The assignment's ARM body, the body a plan writes and the state read back from Azure,
//! keeping the user's form wherever Azure's value means the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::framework::typed::{Knowable, SetOf, Typed};
use crate::framework::{AttributePath, Diagnostic, Diagnostics, Value};
use crate::resources::shared::parameter_values::{
    from_arm, parameters_state, plain_parameters, to_arm,
};
use crate::resources::shared::reconcile::{
    kept_equivalent, kept_id_list, kept_id_set, kept_str_ci, kept_text, metadata_text_state,
    metadata_text_to_arm,
};
use crate::resources::shared::scoped::{Naming, ScopedBody};
use crate::resources::shared::selectors::{
    resource_selectors_from_arm, resource_selectors_to_arm, ResourceSelector, Selector,
    SelectorBlock,
};

use super::schema::{Assignment, IdentityBlock, NonComplianceMessageBlock, OverrideBlock};
use super::KIND;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PolicyAssignment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<AssignmentIdentity>,
    #[serde(default)]
    pub(super) properties: AssignmentProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssignmentProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) metadata: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy_definition_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    definition_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Map<String, Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enforcement_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    non_compliance_messages: Option<Vec<NonComplianceMessage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_selectors: Option<Vec<ResourceSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overrides: Option<Vec<Override>>,
    /// Read-only: the scope with a leading slash.
    #[serde(default, skip_serializing)]
    scope: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NonComplianceMessage {
    #[serde(default)]
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy_definition_reference_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Override {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selectors: Option<Vec<Selector>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssignmentIdentity {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_assigned_identities: Option<BTreeMap<String, Json>>,
}

impl ScopedBody for PolicyAssignment {
    fn id_mut(&mut self) -> &mut Option<String> {
        &mut self.id
    }

    fn is_complete(&self) -> bool {
        self.id.is_some() && self.name.is_some() && self.properties.policy_definition_id.is_some()
    }
}

/// The PUT body for a planned (wholly known apart from computed attributes) state.
pub(super) fn body_from(v: &Assignment) -> Result<PolicyAssignment, Diagnostics> {
    let parameters = plain_parameters(&v.parameters).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error("Parameters not known", format!("parameters: {e}"))
                .at(AttributePath::attr("parameters")),
        )
    })?;
    let messages: Vec<NonComplianceMessage> = v
        .non_compliance_message
        .iter()
        .map(|m| NonComplianceMessage {
            message: m.content.clone().unwrap_or_default(),
            policy_definition_reference_id: m.policy_definition_reference_id.clone(),
        })
        .collect();
    let overrides: Vec<Override> = v
        .overrides
        .iter()
        .map(|o| {
            let selectors: Vec<Selector> = o.selectors.iter().map(Selector::from).collect();
            Override {
                kind: o.kind.as_deref().unwrap_or("policyEffect").to_string(),
                value: o.value.clone().unwrap_or_default(),
                selectors: (!selectors.is_empty()).then_some(selectors),
            }
        })
        .collect();
    let identity = v.identity_block().map(|i| {
        let ids = i.ids();
        AssignmentIdentity {
            kind: i.r#type.as_deref().unwrap_or_default().to_string(),
            principal_id: None,
            tenant_id: None,
            user_assigned_identities: (!ids.is_empty()).then(|| {
                ids.into_iter()
                    .map(|id| (id, Json::Object(Map::new())))
                    .collect()
            }),
        }
    });
    Ok(PolicyAssignment {
        location: v.location.known().cloned(),
        identity,
        properties: AssignmentProperties {
            display_name: v.display_name.clone(),
            description: v.description.clone(),
            metadata: metadata_text_to_arm(v.metadata.as_deref()),
            policy_definition_id: v.policy_definition_id.clone(),
            definition_version: v.definition_version.clone(),
            not_scopes: v.not_scopes.clone(),
            parameters: parameters.as_ref().map(to_arm),
            enforcement_mode: v.enforcement_mode.clone(),
            non_compliance_messages: (!messages.is_empty()).then_some(messages),
            resource_selectors: resource_selectors_to_arm(&v.resource_selectors),
            overrides: (!overrides.is_empty()).then_some(overrides),
            scope: None,
        },
        ..Default::default()
    })
}

fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.replace(' ', "").to_ascii_lowercase();
    norm(a) == norm(b)
}

/// [`state_of`] for the shared read and write paths, which hold states as [`Value`]s.
pub(super) fn state_from(remote: &PolicyAssignment, prior: &Value) -> Value {
    // Anything but an object (never sent for a managed resource) starts from nothing; the
    // schema test rules out every other mismatch.
    let prior = Assignment::decode(prior).unwrap_or_default();
    state_of(remote, &prior).to_value()
}

/// The state for what Azure returned, keeping the prior (user's) form wherever the remote value
/// means the same.
pub(super) fn state_of(remote: &PolicyAssignment, prior: &Assignment) -> Assignment {
    let p = &remote.properties;
    let remote_id = remote.id.clone().unwrap_or_default();
    let naming = Naming {
        scope: prior.scope.as_deref(),
        name: prior.name.as_deref(),
        id: prior.id.as_deref(),
    };
    let (scope, name, id) = KIND.kept_naming(
        naming,
        &remote_id,
        p.scope.as_deref(),
        remote.name.as_deref(),
    );
    let location = match (prior.location.as_deref(), remote.location.as_deref()) {
        (Some(pl), Some(rl)) if same_location(pl, rl) => prior.location.clone(),
        (_, rl) => Knowable::from_option(rl.map(str::to_string)),
    };
    let messages: Vec<NonComplianceMessageBlock> = p
        .non_compliance_messages
        .iter()
        .flatten()
        .map(|m| NonComplianceMessageBlock {
            content: Some(m.message.clone()),
            policy_definition_reference_id: m.policy_definition_reference_id.clone(),
        })
        .collect();
    let overrides: Vec<OverrideBlock> = p
        .overrides
        .iter()
        .flatten()
        .map(|o| OverrideBlock {
            kind: Some(o.kind.clone()),
            value: Some(o.value.clone()),
            selectors: o
                .selectors
                .iter()
                .flatten()
                .map(SelectorBlock::from)
                .collect(),
        })
        .collect();
    let identity = match &remote.identity {
        Some(i) if !i.kind.eq_ignore_ascii_case("None") && !i.kind.is_empty() => {
            let prior_identity = prior.identity_block().cloned().unwrap_or_default();
            let ids: Vec<String> = i
                .user_assigned_identities
                .iter()
                .flat_map(|m| m.keys().cloned())
                .collect();
            let prior_ids = prior_identity
                .identity_ids
                .known()
                .map(|_| prior_identity.ids());
            vec![IdentityBlock {
                r#type: kept_str_ci(prior_identity.r#type.as_deref(), Some(&i.kind)).into(),
                identity_ids: kept_id_set(prior_ids.as_deref(), &ids)
                    .map(|ids| SetOf(ids.into_iter().map(Knowable::Known).collect()))
                    .into(),
                principal_id: i.principal_id.clone().into(),
                tenant_id: i.tenant_id.clone().into(),
            }]
        }
        _ => Vec::new(),
    };
    Assignment {
        id: id.into(),
        name,
        scope,
        policy_definition_id: kept_str_ci(
            prior.policy_definition_id.as_deref(),
            p.policy_definition_id.as_deref(),
        ),
        definition_version: p.definition_version.clone(),
        display_name: kept_text(prior.display_name.as_deref(), p.display_name.as_deref()),
        description: kept_text(prior.description.as_deref(), p.description.as_deref()),
        metadata: metadata_text_state(prior.metadata.as_deref(), p.metadata.as_ref()),
        enforcement_mode: kept_str_ci(
            prior.enforcement_mode.as_deref(),
            Some(p.enforcement_mode.as_deref().unwrap_or("Default")),
        ),
        not_scopes: kept_id_list(
            prior.not_scopes.as_deref(),
            p.not_scopes.as_deref().unwrap_or_default(),
        ),
        parameters: parameters_state(&prior.parameters, &from_arm(p.parameters.as_ref())),
        location,
        non_compliance_message: kept_equivalent(&prior.non_compliance_message, messages),
        overrides: kept_equivalent(&prior.overrides, overrides),
        resource_selectors: kept_equivalent(
            &prior.resource_selectors,
            resource_selectors_from_arm(p.resource_selectors.as_deref()),
        ),
        identity: Knowable::Known(identity),
        grant_remediation_roles: Some(prior.grant_remediation_roles.unwrap_or(false)),
        remediation_role_assignment_ids: Knowable::Known(
            prior
                .remediation_role_assignment_ids
                .known()
                .cloned()
                .unwrap_or_default(),
        ),
        timeouts: prior.timeouts.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Diagnostics;
    use crate::resources::assignment::schema::schema;
    use crate::resources::shared::parameter_values::value_to_json;
    use serde_json::json;

    fn remote() -> PolicyAssignment {
        serde_json::from_value(json!({
            "id": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Authorization/policyAssignments/no-priv",
            "name": "no-priv",
            "properties": {
                "policyDefinitionId": "/providers/microsoft.authorization/policydefinitions/95edb821-ddaf-4404-9732-666045e056b4",
                "definitionVersion": "9.*.*",
                "scope": "/subscriptions/s/resourcegroups/rg",
                "notScopes": [],
                "parameters": {"effect": {"value": "deny"}, "excludedNamespaces": {"value": ["kube-system"]}},
                "enforcementMode": "Default",
                "metadata": {"createdBy": "x", "createdOn": "y"},
                "nonComplianceMessages": [{"message": "No privileged containers."}],
                "instanceId": "i"
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_a_complete_put_answer_stands_in_for_the_read_back() {
        assert!(remote().is_complete());
        // An empty body (null) does not parse; a partial one parses but is not complete.
        assert!(serde_json::from_value::<PolicyAssignment>(Json::Null).is_err());
        let partial: PolicyAssignment =
            serde_json::from_value(json!({"id": "/x", "properties": {}})).unwrap();
        assert!(!partial.is_complete());
    }

    #[test]
    fn import_then_read_plans_like_hcl() {
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/policyAssignments/no-priv";
        let start = KIND
            .import(&schema().block, id, &mut Diagnostics::new())
            .unwrap();
        let state = state_from(&remote(), &start);
        // The state has the schema's shape.
        let typed = Assignment::decode(&state).unwrap();
        assert_eq!(typed.to_value(), state);
        assert_eq!(typed.id.as_deref(), Some(id));
        assert_eq!(
            typed.scope.as_deref(),
            Some("/subscriptions/s/resourceGroups/rg")
        );
        assert_eq!(typed.metadata, None);
        assert_eq!(typed.not_scopes, None);
        assert_eq!(typed.enforcement_mode.as_deref(), Some("Default"));
        assert_eq!(typed.identity, Knowable::Known(vec![]));
        assert_eq!(
            value_to_json(&typed.parameters).unwrap(),
            json!({"effect": "deny", "excludedNamespaces": ["kube-system"]})
        );
        assert_eq!(
            typed.non_compliance_message[0].content.as_deref(),
            Some("No privileged containers.")
        );
    }

    #[test]
    fn read_keeps_user_casing_and_forms() {
        let prior = Assignment {
            id: Knowable::Known("/subscriptions/S/resourceGroups/RG/providers/Microsoft.Authorization/policyAssignments/no-priv".into()),
            scope: Some("/subscriptions/S/resourceGroups/RG".into()),
            name: Some("no-priv".into()),
            policy_definition_id: Some("/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4".into()),
            ..Default::default()
        };
        let state = state_of(&remote(), &prior);
        assert_eq!(state.id, prior.id);
        assert_eq!(state.scope, prior.scope);
        assert_eq!(state.policy_definition_id, prior.policy_definition_id);
    }

    #[test]
    fn body_wraps_parameters_and_identity() {
        let planned = Assignment {
            name: Some("a".into()),
            scope: Some("/subscriptions/s".into()),
            policy_definition_id: Some(
                "/providers/Microsoft.Authorization/policySetDefinitions/x".into(),
            ),
            enforcement_mode: Some("DoNotEnforce".into()),
            location: Knowable::Known("westeurope".into()),
            parameters: Value::object([("effect", Value::string("audit"))]),
            identity: Knowable::Known(vec![IdentityBlock {
                r#type: Knowable::Known("SystemAssigned".into()),
                identity_ids: Knowable::Null,
                principal_id: Knowable::Unknown,
                tenant_id: Knowable::Unknown,
            }]),
            overrides: vec![OverrideBlock {
                kind: Some("policyEffect".into()),
                value: Some("Disabled".into()),
                selectors: vec![SelectorBlock {
                    kind: Some("policyDefinitionReferenceId".into()),
                    r#in: Some(vec!["ref1".into()]),
                    not_in: None,
                }],
            }],
            ..Default::default()
        };
        let body = serde_json::to_value(body_from(&planned).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "location": "westeurope",
                "identity": {"type": "SystemAssigned"},
                "properties": {
                    "policyDefinitionId": "/providers/Microsoft.Authorization/policySetDefinitions/x",
                    "parameters": {"effect": {"value": "audit"}},
                    "enforcementMode": "DoNotEnforce",
                    "overrides": [{"kind": "policyEffect", "value": "Disabled", "selectors": [{"kind": "policyDefinitionReferenceId", "in": ["ref1"]}]}]
                }
            })
        );
    }
}
