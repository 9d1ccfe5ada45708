//! Compliance of emulated resources against policy assignments, for policy states and
//! remediations.
//!
//! Evaluation is pluggable through [`ComplianceEvaluator`]: evaluators are asked in order and
//! the first that knows an answer wins; a resource nobody has an opinion on is compliant.
//! [`GatekeeperAudit`] answers for `Microsoft.Kubernetes.Data` definitions from the objects the
//! cluster admitted; [`AddonRule`] for the AKS policy add-on DINE definition. Exempted
//! clusters are reported `Exempt` (counted as compliant).

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::emulator::gatekeeper;
use crate::emulator::routes::arm::{
    clusters_under, policy_addon_enabled, resolve_visible, stored_of_type, ArmError, Scope,
};
use crate::emulator::state::AppState;
use crate::emulator::store::{resource_key, StoredResource};
use crate::policy::effects::{definition_effect, member_values};
use crate::policy::gatekeeper::ConstraintOrigin;

/// Name of the built-in "Deploy Azure Policy Add-on to AKS clusters" definition.
pub(crate) const ADDON_DINE: &str = "a8eff44f-8c92-45c3-a3fb-9880802d67a7";

/// One row of policy state: a resource against one definition of one assignment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolicyStateRow {
    pub resource_id: String,
    pub resource_location: String,
    pub resource_group: String,
    pub subscription_id: String,
    pub assignment_id: String,
    pub assignment_name: String,
    pub assignment_scope: String,
    pub set_definition_id: Option<String>,
    pub definition_id: String,
    pub definition_name: String,
    pub reference_id: Option<String>,
    pub effect: String,
    pub compliant: bool,
    /// An exemption covers this resource (reported `Exempt`, counted as compliant).
    pub exempt: bool,
}

impl PolicyStateRow {
    /// The `queryResults` record.
    pub(crate) fn to_json(&self, context: &str, timestamp: &str) -> Value {
        let set_name = self
            .set_definition_id
            .as_deref()
            .and_then(|s| s.rsplit('/').next())
            .unwrap_or("");
        json!({
            "@odata.id": null,
            "@odata.context": format!("{context}/$entity"),
            "timestamp": timestamp,
            "resourceId": self.resource_id,
            "policyAssignmentId": self.assignment_id,
            "policyDefinitionId": self.definition_id,
            "effectiveParameters": "",
            "isCompliant": self.compliant,
            "subscriptionId": self.subscription_id,
            "resourceType": "Microsoft.ContainerService/managedClusters",
            "resourceLocation": self.resource_location,
            "resourceGroup": self.resource_group,
            "resourceTags": "tbd",
            "policyAssignmentName": self.assignment_name,
            "policyAssignmentOwner": "tbd",
            "policyAssignmentParameters": "",
            "policyAssignmentScope": self.assignment_scope,
            "policyDefinitionName": self.definition_name,
            "policyDefinitionAction": self.effect.to_ascii_lowercase(),
            "policyDefinitionCategory": "tbd",
            "policySetDefinitionId": self.set_definition_id.clone().unwrap_or_default(),
            "policySetDefinitionName": set_name,
            "policySetDefinitionOwner": "",
            "policySetDefinitionCategory": "",
            "policySetDefinitionParameters": "",
            "managementGroupIds": "",
            "policyDefinitionReferenceId": self.reference_id.clone().unwrap_or_default(),
            "complianceState": if self.exempt { "Exempt" } else if self.compliant { "Compliant" } else { "NonCompliant" },
            "policyDefinitionGroupNames": [],
            "policyDefinitionVersion": "",
            "policySetDefinitionVersion": "",
            "policyAssignmentVersion": ""
        })
    }
}

impl PolicyStateRow {
    /// A row for a cluster against one member of an assignment (the assignment's scope is
    /// read from the store; a vanished assignment leaves it empty).
    pub(crate) fn for_cluster(
        state: &AppState,
        cluster: &StoredResource,
        origin: &ConstraintOrigin,
        effect: &str,
        compliant: bool,
    ) -> Result<Self, ArmError> {
        let assignment_scope = state
            .store
            .get(&origin.assignment_id)?
            .and_then(|a| a.body["properties"]["scope"].as_str().map(str::to_string))
            .unwrap_or_default();
        let segs: Vec<&str> = cluster.id.split('/').collect();
        Ok(Self {
            resource_id: cluster.id.clone(),
            resource_location: cluster.body["location"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            resource_group: segs.get(4).copied().unwrap_or_default().to_string(),
            subscription_id: segs.get(2).copied().unwrap_or_default().to_string(),
            assignment_id: origin.assignment_id.clone(),
            assignment_name: origin
                .assignment_id
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            assignment_scope,
            set_definition_id: origin.set_definition_id.clone(),
            definition_id: origin.definition_id.clone(),
            definition_name: origin
                .definition_id
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            reference_id: origin.reference_id.clone(),
            effect: effect.to_string(),
            compliant,
            exempt: false,
        })
    }

    /// The stored part of a policy event record (`@odata` fields are added when queried):
    /// the state record's fields that events share, plus tenant and principal.
    pub(crate) fn to_event_json(
        &self,
        timestamp: &str,
        tenant_id: &str,
        principal_oid: &str,
    ) -> Value {
        let mut record = self.to_json("", timestamp);
        if let Some(fields) = record.as_object_mut() {
            for state_only in [
                "@odata.id",
                "@odata.context",
                "policyDefinitionGroupNames",
                "policyDefinitionVersion",
                "policySetDefinitionVersion",
                "policyAssignmentVersion",
            ] {
                fields.remove(state_only);
            }
            fields.insert("tenantId".into(), json!(tenant_id));
            fields.insert("principalOid".into(), json!(principal_oid));
        }
        record
    }
}

/// What one compliance answer is about: a resource against one definition of one assignment.
pub(crate) struct Subject<'a> {
    pub assignment_id: &'a str,
    pub definition_id: &'a str,
    pub reference_id: Option<&'a str>,
    pub definition: &'a Value,
    pub resource: &'a StoredResource,
}

/// A source of compliance answers.
pub(crate) trait ComplianceEvaluator {
    /// `Some(compliant)` when this evaluator decides the subject.
    fn evaluate(&self, state: &AppState, subject: &Subject<'_>) -> Result<Option<bool>, ArmError>;
}

/// The add-on DINE definition: a cluster is compliant when its policy add-on is enabled.
pub(crate) struct AddonRule;

impl ComplianceEvaluator for AddonRule {
    fn evaluate(&self, _: &AppState, subject: &Subject<'_>) -> Result<Option<bool>, ArmError> {
        let Some(name) = subject.definition["name"].as_str() else {
            return Ok(None);
        };
        Ok(name
            .eq_ignore_ascii_case(ADDON_DINE)
            .then(|| policy_addon_enabled(&subject.resource.body)))
    }
}

/// Kubernetes-mode definitions: Gatekeeper's audit of the objects the cluster admitted. A
/// cluster with the add-on off reports no Kubernetes data, which counts as compliant.
#[derive(Default)]
pub(crate) struct GatekeeperAudit {
    /// Audit per cluster key, computed once per states request.
    audits: RefCell<HashMap<String, Option<HashMap<String, bool>>>>,
}

impl ComplianceEvaluator for GatekeeperAudit {
    fn evaluate(&self, state: &AppState, subject: &Subject<'_>) -> Result<Option<bool>, ArmError> {
        let is_kubernetes = subject.definition["properties"]["mode"]
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case(crate::policy::KUBERNETES_MODE));
        if !is_kubernetes {
            return Ok(None);
        }
        let cluster_key = resource_key(&subject.resource.id);
        if !self.audits.borrow().contains_key(&cluster_key) {
            let audit = gatekeeper::audit_cluster(state, subject.resource)?;
            self.audits.borrow_mut().insert(cluster_key.clone(), audit);
        }
        let audits = self.audits.borrow();
        let violated = audits
            .get(&cluster_key)
            .and_then(|a| a.as_ref())
            .is_some_and(|a| {
                a.get(&gatekeeper::audit_key(
                    subject.assignment_id,
                    subject.definition_id,
                    subject.reference_id,
                ))
                .copied()
                .unwrap_or(false)
            });
        Ok(Some(!violated))
    }
}

/// The evaluators in the order they are asked.
fn evaluators() -> Vec<Box<dyn ComplianceEvaluator>> {
    vec![Box::new(GatekeeperAudit::default()), Box::new(AddonRule)]
}

/// What to compute states for.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatesQuery {
    /// Only this assignment (id, any casing).
    pub assignment_id: Option<String>,
    /// Only this definition or set definition (id, any casing).
    pub definition_id: Option<String>,
}

/// Policy states of every cluster in `scope` against every assignment that covers it.
pub(crate) fn policy_states(
    state: &AppState,
    scope: &Scope,
    query: &StatesQuery,
) -> Result<Vec<PolicyStateRow>, ArmError> {
    let clusters = clusters_under(state, scope)?;
    let evaluators = evaluators();
    /// (member definition id, reference id, body, the values the assignment gives it)
    type Member = (String, Option<String>, Value, Map<String, Value>);
    let mut rows = Vec::new();
    for (_, assignment) in stored_of_type(state, "microsoft.authorization/policyassignments")? {
        if let Some(want) = &query.assignment_id {
            if resource_key(want) != resource_key(&assignment.id) {
                continue;
            }
        }
        let body = &assignment.body;
        let a_scope_id = body["properties"]["scope"].as_str().unwrap_or_default();
        let Ok(a_scope) = Scope::parse(a_scope_id) else {
            continue;
        };
        let def_id = body["properties"]["policyDefinitionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(definition) = resolve_visible(state, &a_scope, &def_id)? else {
            continue;
        };
        let is_set = def_id
            .to_ascii_lowercase()
            .contains("/policysetdefinitions/");
        let supplied = body["properties"]["parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut members: Vec<Member> = Vec::new();
        if is_set {
            for m in member_values(&definition, &supplied) {
                if let Some(mbody) = resolve_visible(state, &a_scope, &m.definition_id)? {
                    members.push((m.definition_id, m.reference_id, mbody, m.values));
                }
            }
        } else {
            members.push((def_id.clone(), None, definition.clone(), supplied));
        }
        if let Some(want) = &query.definition_id {
            let matches_set = resource_key(want) == resource_key(&def_id);
            if !matches_set {
                members.retain(|(mid, _, _, _)| resource_key(mid) == resource_key(want));
            }
        }
        let not_scopes: Vec<String> = body["properties"]["notScopes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for cluster in &clusters {
            if !a_scope.contains(state, &cluster.id)? {
                continue;
            }
            let exemptions = gatekeeper::exemptions_for(state, &cluster.id)?;
            let mut excluded = false;
            for ns in &not_scopes {
                if let Ok(ns_scope) = Scope::parse(ns) {
                    if ns_scope.contains(state, &cluster.id)? {
                        excluded = true;
                    }
                }
            }
            if excluded {
                continue;
            }
            for (mid, rid, mbody, values) in &members {
                let effect = definition_effect(mbody, values).unwrap_or_else(|| "audit".into());
                if effect.eq_ignore_ascii_case("Disabled") {
                    continue;
                }
                let exempt = exemptions
                    .iter()
                    .any(|e| e.covers(&assignment.id, rid.as_deref()));
                let subject = Subject {
                    assignment_id: &assignment.id,
                    definition_id: mid,
                    reference_id: rid.as_deref(),
                    definition: mbody,
                    resource: cluster,
                };
                let mut compliant = true;
                if !exempt {
                    for e in &evaluators {
                        if let Some(answer) = e.evaluate(state, &subject)? {
                            compliant = answer;
                            break;
                        }
                    }
                }
                let segs: Vec<&str> = cluster.id.split('/').collect();
                rows.push(PolicyStateRow {
                    resource_id: cluster.id.clone(),
                    resource_location: cluster.body["location"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    resource_group: segs.get(4).copied().unwrap_or_default().to_string(),
                    subscription_id: segs.get(2).copied().unwrap_or_default().to_string(),
                    assignment_id: assignment.id.clone(),
                    assignment_name: assignment
                        .id
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    assignment_scope: a_scope_id.to_string(),
                    set_definition_id: is_set.then(|| def_id.clone()),
                    definition_id: mid.clone(),
                    definition_name: mid.rsplit('/').next().unwrap_or_default().to_string(),
                    reference_id: rid.clone(),
                    effect,
                    compliant,
                    exempt,
                });
            }
        }
    }
    Ok(rows)
}
