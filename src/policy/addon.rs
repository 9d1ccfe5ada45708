//! What the AKS policy add-on installs on a cluster, from the assignments that cover it: each
//! assignment's members (initiatives expanded, set parameters passed down, exemptions and
//! `enforcementMode` applied) and, once the member's template is at hand, its Constraint.
//!
//! Everything here is independent of how assignments, definitions and templates were found:
//! the emulator reads its store, the provider's `akspolicy_admission_review` reads ARM. Which
//! assignments cover the cluster (scope and `notScopes`) is the caller's ARM question.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::{Map, Value as Json};

use super::constraint::{
    build_constraint_with_effect, effect_override, effective_parameters, member_parameters,
    resolve_template, Constraint, ConstraintOrigin, GatekeeperError, TemplateLookup,
};
use super::constraint_template::ConstraintTemplate;
use super::definition_body::PolicyDefinitionProperties;
use super::kubernetes::TemplateInfo;

/// An exemption that applies to the cluster (its scope covers the cluster; not expired).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exemption {
    assignment_id: String,
    reference_ids: Vec<String>,
}

impl Exemption {
    /// From an exemption's `properties`; `None` once `expiresOn` has passed at `now`.
    pub fn from_properties(properties: &Json, now: SystemTime) -> Option<Exemption> {
        let expired = properties
            .get("expiresOn")
            .and_then(Json::as_str)
            .and_then(|t| {
                humantime::parse_rfc3339_weak(t)
                    .or_else(|_| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')))
                    .ok()
            })
            .is_some_and(|t| t <= now);
        if expired {
            return None;
        }
        Some(Exemption {
            assignment_id: properties
                .get("policyAssignmentId")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase(),
            reference_ids: properties
                .get("policyDefinitionReferenceIds")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect(),
        })
    }

    /// Whether it exempts this assignment member (no reference ids = the whole assignment).
    pub fn covers(&self, assignment_id: &str, reference_id: Option<&str>) -> bool {
        if !assignment_id
            .trim_end_matches('/')
            .eq_ignore_ascii_case(self.assignment_id.trim_end_matches('/'))
        {
            return false;
        }
        self.reference_ids.is_empty()
            || reference_id
                .is_some_and(|r| self.reference_ids.iter().any(|x| x.eq_ignore_ascii_case(r)))
    }
}

/// Whether a definition id names an initiative (policy set definition).
pub fn is_set_definition(definition_id: &str) -> bool {
    definition_id
        .to_ascii_lowercase()
        .contains("/policysetdefinitions/")
}

/// The member definition ids of an initiative body, to be looked up before [`members`].
pub fn set_member_ids(set_definition: &Json) -> Vec<String> {
    set_definition
        .pointer("/properties/policyDefinitions")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("policyDefinitionId").and_then(Json::as_str))
        .map(str::to_string)
        .collect()
}

/// Definitions by id (any casing), as the caller found them.
#[derive(Default, Debug, Clone)]
pub struct DefinitionBodies {
    by_key: HashMap<String, Json>,
}

impl DefinitionBodies {
    pub fn insert(&mut self, id: &str, body: Json) {
        self.by_key.insert(key(id), body);
    }

    pub fn get(&self, id: &str) -> Option<&Json> {
        self.by_key.get(&key(id))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_key.contains_key(&key(id))
    }
}

fn key(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

/// One Kubernetes definition an assignment brings to the cluster, with its parameter values.
#[derive(Clone, Debug)]
pub struct AddonMember {
    pub origin: ConstraintOrigin,
    pub properties: PolicyDefinitionProperties,
    pub values: Map<String, Json>,
    /// The effect an assignment override forces on this member.
    pub effect_override: Option<String>,
    /// False under `enforcementMode: DoNotEnforce`.
    pub enforce: bool,
}

impl AddonMember {
    /// Whether the member mutates (`details.mutationInfo`) rather than validates.
    pub fn is_mutation(&self) -> bool {
        self.template_info().is_none() && self.properties.mutation_info().is_some()
    }

    /// The mutator the add-on installs for a mutation member; `Ok(None)` when its effect is
    /// not Mutate or the assignment does not enforce.
    pub fn mutator(
        &self,
        templates: &dyn TemplateLookup,
    ) -> Result<Option<super::mutation::Mutator>, super::mutation::MutationSourceError> {
        let Some(info) = self.properties.mutation_info() else {
            return Ok(None);
        };
        let mutator = super::mutation::resolve_mutator(&info, templates)?;
        let rule = self.properties.policy_rule.clone().unwrap_or(Json::Null);
        Ok(super::mutation::install(
            &rule,
            mutator,
            &self.values,
            self.effect_override.as_deref(),
            self.enforce,
        ))
    }

    /// Where the member's ConstraintTemplate comes from.
    pub fn template_info(&self) -> Option<TemplateInfo> {
        self.properties.template_info()
    }

    /// The Constraint the add-on installs for this member, with its template; `Ok(None)` when
    /// the effect installs none (disabled, mutate).
    pub fn constraint(
        &self,
        templates: &dyn TemplateLookup,
    ) -> Result<Option<(Constraint, ConstraintTemplate)>, GatekeeperError> {
        if self.is_mutation() {
            return Ok(None);
        }
        let info = self.template_info().ok_or(GatekeeperError::NoTemplate)?;
        let template = resolve_template(&info, templates)?;
        let rule = self.properties.policy_rule.clone().unwrap_or(Json::Null);
        Ok(build_constraint_with_effect(
            &rule,
            &template,
            &self.values,
            self.effect_override.as_deref(),
            self.enforce,
            self.origin.clone(),
        )
        .map(|c| (c, template)))
    }
}

/// (member definition id, reference id, body, parameter values) of one assignment member.
type Found<'a> = (String, Option<String>, &'a Json, Map<String, Json>);

/// The Kubernetes members of one assignment that covers the cluster: its definition, or each
/// member of its initiative (members missing from `definitions` are skipped), minus exempted
/// ones. `assignment` is the assignment resource (`id`, `properties`).
pub fn members(
    assignment: &Json,
    definitions: &DefinitionBodies,
    exemptions: &[Exemption],
) -> Vec<AddonMember> {
    let assignment_id = assignment
        .get("id")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let props = assignment.get("properties").unwrap_or(&Json::Null);
    let enforce = !props
        .get("enforcementMode")
        .and_then(Json::as_str)
        .is_some_and(|m| m.eq_ignore_ascii_case("DoNotEnforce"));
    let supplied = props
        .get("parameters")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let def_id = props
        .get("policyDefinitionId")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let Some(definition) = definitions.get(def_id) else {
        return Vec::new();
    };
    let is_set = is_set_definition(def_id);
    let mut found: Vec<Found<'_>> = Vec::new();
    if is_set {
        let set_values =
            effective_parameters(definition.pointer("/properties/parameters"), &supplied);
        for m in definition
            .pointer("/properties/policyDefinitions")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let mid = m
                .get("policyDefinitionId")
                .and_then(Json::as_str)
                .unwrap_or_default();
            let Some(body) = definitions.get(mid) else {
                continue;
            };
            let given = member_parameters(m.get("parameters"), &set_values);
            let values = effective_parameters(body.pointer("/properties/parameters"), &given);
            let rid = m
                .get("policyDefinitionReferenceId")
                .and_then(Json::as_str)
                .map(str::to_string);
            found.push((mid.to_string(), rid, body, values));
        }
    } else {
        let values = effective_parameters(definition.pointer("/properties/parameters"), &supplied);
        found.push((def_id.to_string(), None, definition, values));
    }
    let mut out = Vec::new();
    for (mid, rid, body, values) in found {
        if exemptions
            .iter()
            .any(|e| e.covers(assignment_id, rid.as_deref()))
        {
            continue;
        }
        let Ok(properties) = serde_json::from_value::<PolicyDefinitionProperties>(
            body.get("properties").cloned().unwrap_or(Json::Null),
        ) else {
            continue;
        };
        if properties.template_info().is_none() && properties.mutation_info().is_none() {
            continue;
        }
        let effect_override = effect_override(props.get("overrides"), rid.as_deref());
        out.push(AddonMember {
            origin: ConstraintOrigin {
                assignment_id: assignment_id.to_string(),
                definition_id: mid,
                set_definition_id: is_set.then(|| def_id.to_string()),
                reference_id: rid,
            },
            properties,
            values,
            effect_override,
            enforce,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn k8s_definition(effect_param: bool) -> Json {
        json!({"properties": {
            "mode": "Microsoft.Kubernetes.Data",
            "parameters": {"effect": {"type": "String", "defaultValue": "audit"}},
            "policyRule": {"if": {"field": "type", "equals": "x"}, "then": {
                "effect": if effect_param { "[parameters('effect')]" } else { "deny" },
                "details": {"templateInfo": {"sourceType": "PublicURL", "url": "https://h/t.yaml"}}
            }}
        }})
    }

    #[test]
    fn initiative_members_get_set_parameters_and_exemptions_drop_members() {
        let set_id = "/providers/Microsoft.Authorization/policySetDefinitions/s";
        let a_id = "/providers/Microsoft.Authorization/policyDefinitions/a";
        let b_id = "/providers/Microsoft.Authorization/policyDefinitions/b";
        let mut defs = DefinitionBodies::default();
        defs.insert(
            set_id,
            json!({"properties": {
                "parameters": {"e": {"type": "String", "defaultValue": "deny"}},
                "policyDefinitions": [
                    {"policyDefinitionId": a_id, "policyDefinitionReferenceId": "ra",
                     "parameters": {"effect": {"value": "[parameters('e')]"}}},
                    {"policyDefinitionId": b_id, "policyDefinitionReferenceId": "rb"}
                ]
            }}),
        );
        defs.insert(&a_id.to_uppercase(), k8s_definition(true));
        defs.insert(b_id, k8s_definition(true));
        let assignment = json!({"id": "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/x",
            "properties": {"policyDefinitionId": set_id, "enforcementMode": "DoNotEnforce"}});
        let all = members(&assignment, &defs, &[]);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].values["effect"], json!("deny"));
        assert_eq!(all[1].values["effect"], json!("audit"));
        assert!(!all[0].enforce);
        let exemption = Exemption::from_properties(
            &json!({"policyAssignmentId": "/SUBSCRIPTIONS/s/providers/Microsoft.Authorization/policyAssignments/x",
                    "policyDefinitionReferenceIds": ["RA"]}),
            SystemTime::now(),
        )
        .expect("not expired");
        let left = members(&assignment, &defs, &[exemption]);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].origin.reference_id.as_deref(), Some("rb"));
        let expired = Exemption::from_properties(
            &json!({"policyAssignmentId": "x", "expiresOn": "2001-01-01T00:00:00Z"}),
            SystemTime::now(),
        );
        assert!(expired.is_none());
    }
}
