//! Compliance of emulated resources against policy assignments, for policy states and
//! remediations.
//!
//! Evaluation is pluggable through [`ComplianceEvaluator`]: evaluators are asked in order and
//! the first that knows an answer wins; a resource nobody has an opinion on is compliant.
//! [`GatekeeperAudit`] answers for `Microsoft.Kubernetes.Data` definitions from the objects the
//! cluster admitted; [`ArmRule`] for ARM-mode (`All`/`Indexed`) definitions from the cluster
//! resource itself through `policy::arm_rule`. Exempted clusters are reported `Exempt`
//! (counted as compliant).

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{json, Value};

use crate::emulator::arm_policy::{self, AssignedMember};
use crate::emulator::gatekeeper;
use crate::emulator::routes::arm::{clusters_under, ErrorResponse, Scope};
use crate::emulator::state::AppState;
use crate::emulator::store::{resource_key, StoredResource};
use crate::policy::constraint::ConstraintOrigin;

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
    ) -> Result<Self, ErrorResponse> {
        let assignment_scope = state
            .store
            .get(&origin.assignment_id)?
            .and_then(|a| a.body["properties"]["scope"].as_str().map(str::to_string))
            .unwrap_or_default();
        Ok(Self::new(
            cluster,
            origin,
            assignment_scope,
            effect.to_string(),
            compliant,
            false,
        ))
    }

    fn new(
        cluster: &StoredResource,
        origin: &ConstraintOrigin,
        assignment_scope: String,
        effect: String,
        compliant: bool,
        exempt: bool,
    ) -> Self {
        let segs: Vec<&str> = cluster.id.split('/').collect();
        let last = |id: &str| id.rsplit('/').next().unwrap_or_default().to_string();
        Self {
            resource_id: cluster.id.clone(),
            resource_location: cluster.body["location"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            resource_group: segs.get(4).copied().unwrap_or_default().to_string(),
            subscription_id: segs.get(2).copied().unwrap_or_default().to_string(),
            assignment_id: origin.assignment_id.clone(),
            assignment_name: last(&origin.assignment_id),
            assignment_scope,
            set_definition_id: origin.set_definition_id.clone(),
            definition_id: origin.definition_id.clone(),
            definition_name: last(&origin.definition_id),
            reference_id: origin.reference_id.clone(),
            effect,
            compliant,
            exempt,
        }
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
    pub member: &'a AssignedMember,
    pub resource: &'a StoredResource,
}

/// A source of compliance answers.
pub(crate) trait ComplianceEvaluator {
    /// `Some(compliant)` when this evaluator decides the subject.
    fn evaluate(
        &self,
        state: &AppState,
        subject: &Subject<'_>,
    ) -> Result<Option<bool>, ErrorResponse>;
}

/// ARM-mode definitions: the rule (and an `…IfNotExists` existence condition, a Modify
/// effect's operations) evaluated against the resource as stored.
pub(crate) struct ArmRule;

impl ComplianceEvaluator for ArmRule {
    fn evaluate(
        &self,
        state: &AppState,
        subject: &Subject<'_>,
    ) -> Result<Option<bool>, ErrorResponse> {
        let mode = subject.member.mode();
        if !crate::policy::arm_rule::is_arm_mode(mode) {
            return Ok(None);
        }
        let view = arm_policy::policy_view(&subject.resource.id, &subject.resource.body);
        let outcome =
            arm_policy::outcome(state, subject.member, &subject.resource.id, &view, None)?;
        Ok(Some(outcome.is_none_or(|o| o.compliant)))
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
    fn evaluate(
        &self,
        state: &AppState,
        subject: &Subject<'_>,
    ) -> Result<Option<bool>, ErrorResponse> {
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
    vec![Box::new(GatekeeperAudit::default()), Box::new(ArmRule)]
}

/// What to compute states for.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatesQuery {
    /// Only this assignment (id, any casing).
    pub assignment_id: Option<String>,
    /// Only this definition or set definition (id, any casing).
    pub definition_id: Option<String>,
}

/// Policy states of every cluster in `scope` against every assignment member that covers it.
pub(crate) fn policy_states(
    state: &AppState,
    scope: &Scope,
    query: &StatesQuery,
) -> Result<Vec<PolicyStateRow>, ErrorResponse> {
    let clusters = clusters_under(state, scope)?;
    let evaluators = evaluators();
    let mut rows = Vec::new();
    for cluster in &clusters {
        let view = arm_policy::policy_view(&cluster.id, &cluster.body);
        for member in arm_policy::members_covering(state, &cluster.id, &view)? {
            let origin = &member.origin;
            if let Some(want) = &query.assignment_id {
                if resource_key(want) != resource_key(&origin.assignment_id) {
                    continue;
                }
            }
            if let Some(want) = &query.definition_id {
                let of_set = origin
                    .set_definition_id
                    .as_deref()
                    .is_some_and(|s| resource_key(s) == resource_key(want));
                if !of_set && resource_key(&origin.definition_id) != resource_key(want) {
                    continue;
                }
            }
            let effect = member.effect_name();
            if effect.eq_ignore_ascii_case("Disabled") {
                continue;
            }
            let subject = Subject {
                assignment_id: &origin.assignment_id,
                definition_id: &origin.definition_id,
                reference_id: origin.reference_id.as_deref(),
                definition: &member.definition,
                member: &member,
                resource: cluster,
            };
            let mut compliant = true;
            if !member.exempt {
                for e in &evaluators {
                    if let Some(answer) = e.evaluate(state, &subject)? {
                        compliant = answer;
                        break;
                    }
                }
            }
            rows.push(PolicyStateRow::new(
                cluster,
                origin,
                member.assignment_scope.clone(),
                effect,
                compliant,
                member.exempt,
            ));
        }
    }
    Ok(rows)
}
