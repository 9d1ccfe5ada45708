//! Remediations (Microsoft.PolicyInsights) at every scope. Not an ARM LRO: PUT answers
//! `Accepted` at once and the state moves Accepted → Evaluating → Succeeded (or Failed) with
//! time, computed from the stored start time on every read. A finished remediation changes
//! the non-compliant clusters as far as the emulator can run the effect without an ARM
//! template engine: a DeployIfNotExists about the cluster itself sets what its
//! `existenceCondition` asks for (so the AKS add-on DINE turns the add-on on), a Modify runs
//! its operations.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::filter::ScopeRelation;
use super::managed_clusters::{apply_changes, settle as settle_cluster};
use super::scope::{related_to_scope, Scope};
use super::{
    empty, error::ArmError, now_ms, ok_json, paging, parse_body, status_json, system_data,
    ArmRequest,
};
use crate::emulator::arm_policy;
use crate::emulator::compliance::{policy_states, PolicyStateRow, StatesQuery};
use crate::emulator::faults::chance;
use crate::emulator::http::Response;
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::store::resource_key;
use crate::emulator::store::{Change, StoredResource};
use crate::policy::effects::is_remediable;

/// api-versions of remediations.
pub(crate) const API_VERSIONS: &[&str] = &["2019-07-01", "2021-10-01", "2024-10-01"];
const NAMESPACE_TYPE: &str = "microsoft.policyinsights/remediations";
const PAGE_SIZE: usize = 50;

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ArmError> {
    let scope = Scope::from_segments(&req.path.scope)?;
    scope.ensure_exists(state)?;
    let method = &req.http.method;
    let name = req.path.names.first().cloned();
    let id = |name: &str| {
        format!(
            "{}/providers/microsoft.policyinsights/remediations/{name}",
            scope.id
        )
    };
    match (req.path.types.len(), name) {
        (1, None) if method == Method::GET => {
            let mut items = Vec::new();
            for stored in related_to_scope(state, &scope, NAMESPACE_TYPE, ScopeRelation::All)? {
                let stored = advance(state, &stored.id)?.unwrap_or(stored);
                items.push(render(&stored));
            }
            Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
        }
        (1, Some(name)) => match *method {
            Method::GET => match advance(state, &id(&name))? {
                Some(stored) => Ok(ok_json(&render(&stored))),
                None => Err(not_found(&name)),
            },
            Method::PUT => put(state, req, &scope, &id(&name), &name),
            Method::DELETE => match state.store.delete(&id(&name))? {
                Some(stored) => Ok(ok_json(&render(&stored))),
                None => Ok(empty(StatusCode::NO_CONTENT)),
            },
            _ => Err(ArmError::method_not_allowed(method)),
        },
        (2, Some(name)) if method == Method::POST => {
            let action = req.path.types[1].to_ascii_lowercase();
            if action == "listdeployments" {
                if state.store.get(&id(&name))?.is_none() {
                    return Err(not_found(&name));
                }
                return Ok(ok_json(&json!({"value": []})));
            }
            cancel(state, &id(&name), &name)
        }
        _ => Err(ArmError::method_not_allowed(method)),
    }
}

fn not_found(name: &str) -> ArmError {
    ArmError::not_found(
        "RemediationNotFound",
        format!("The remediation '{name}' could not be found."),
    )
}

fn put(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    id: &str,
    name: &str,
) -> Result<Response, ArmError> {
    super::check_resource_name("remediation", name)?;
    let request: Value = parse_body(req)?;
    let assignment_id = request
        .pointer("/properties/policyAssignmentId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidCreateRemediationRequest",
                "The remediation must name a 'policyAssignmentId'.",
            )
        })?
        .to_string();
    let Some(assignment) = state.store.get(&assignment_id)? else {
        return Err(ArmError::bad_request(
            "PolicyAssignmentNotFound",
            format!("The policy assignment '{assignment_id}' could not be found."),
        ));
    };
    let reference = request
        .pointer("/properties/policyDefinitionReferenceId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let assigns_set = assignment
        .body
        .pointer("/properties/policyDefinitionId")
        .and_then(Value::as_str)
        .is_some_and(|d| d.to_ascii_lowercase().contains("/policysetdefinitions/"));
    if assigns_set && reference.is_none() {
        // Azure's wording (observed in responses).
        return Err(ArmError::bad_request(
            "InvalidCreateRemediationRequest",
            format!(
                "The request to create remediation '{name}' is invalid. The policy assignment '{assignment_id}' assigns a policy set definition. Remediations must specify a single policy definition reference ID within the policy set definition."
            ),
        ));
    }
    let rows: Vec<PolicyStateRow> = policy_states(
        state,
        scope,
        &StatesQuery {
            assignment_id: Some(assignment.id.clone()),
            definition_id: None,
        },
    )?
    .into_iter()
    .filter(|r| !r.compliant)
    .filter(|r| {
        reference.as_deref().is_none_or(|want| {
            r.reference_id
                .as_deref()
                .is_some_and(|rid| rid.eq_ignore_ascii_case(want))
        })
    })
    .filter(|r| is_remediable(&r.effect))
    .collect();
    let mut targets = Vec::new();
    for row in &rows {
        targets.push(json!({"id": row.resource_id, "changes": changes_for(state, row)?}));
    }
    let profile = state.fault_profile();
    let (before, after) = state.store.modify::<ArmError, _>(id, |previous| {
        if let Some(p) = previous {
            let current = phase(p);
            if !matches!(current, "Succeeded" | "Failed" | "Canceled") {
                return Err(ArmError::bad_request(
                    "InvalidUpdateRemediationRequest",
                    format!("The remediation '{name}' is in state '{current}' and cannot be updated until it finishes."),
                ));
            }
        }
        let mut body = request.clone();
        body["id"] = json!(id);
        body["name"] = json!(name);
        body["type"] = json!("Microsoft.PolicyInsights/remediations");
        let props = &mut body["properties"];
        if props.get("resourceDiscoveryMode").is_none_or(Value::is_null) {
            props["resourceDiscoveryMode"] = json!("ExistingNonCompliant");
        }
        if props.get("failureThreshold").is_none_or(Value::is_null) {
            props["failureThreshold"] = json!({"percentage": 1});
        }
        props["correlationId"] = json!(new_guid());
        props["statusMessage"] = json!("");
        body["systemData"] = system_data(req, previous.map(|p| &p.body));
        Ok(Change::Put {
            body,
            internal: json!({
                "start_ms": now_ms(),
                "lro_ms": profile.lro_ms,
                "fail": chance(profile.lro_failure_rate),
                "targets": targets,
                "applied": false
            }),
        })
    })?;
    let stored = after.ok_or_else(|| ArmError::internal("remediation write lost"))?;
    let status = if before.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(status_json(status, &render(&stored)))
}

fn cancel(state: &AppState, id: &str, name: &str) -> Result<Response, ArmError> {
    let (_, after) = state.store.modify::<ArmError, _>(id, |previous| {
        let Some(p) = previous else {
            return Err(not_found(name));
        };
        let current = phase(p);
        if matches!(current, "Succeeded" | "Failed" | "Canceled") {
            return Err(ArmError::bad_request(
                "InvalidCancelRemediationRequest",
                format!("The remediation '{name}' is in state '{current}' and cannot be canceled."),
            ));
        }
        let mut internal = p.internal.clone();
        internal["cancel_ms"] = json!(now_ms());
        Ok(Change::Settle {
            body: p.body.clone(),
            internal,
        })
    })?;
    let stored = after.ok_or_else(|| ArmError::internal("remediation write lost"))?;
    Ok(ok_json(&render(&stored)))
}

/// The state now, from the timers.
fn phase(stored: &StoredResource) -> &'static str {
    let i = &stored.internal;
    let now = now_ms();
    let start = i["start_ms"].as_u64().unwrap_or(0);
    let lro = i["lro_ms"].as_u64().unwrap_or(0);
    if let Some(cancel) = i["cancel_ms"].as_u64() {
        return if now >= cancel.saturating_add(lro / 3) {
            "Canceled"
        } else {
            "Cancelling"
        };
    }
    let elapsed = now.saturating_sub(start);
    if elapsed >= lro {
        if i["fail"].as_bool().unwrap_or(false) {
            "Failed"
        } else {
            "Succeeded"
        }
    } else if elapsed >= lro / 3 {
        "Evaluating"
    } else {
        "Accepted"
    }
}

/// The changes remediating `row` makes to its cluster (see the module doc).
fn changes_for(state: &AppState, row: &PolicyStateRow) -> Result<Value, ArmError> {
    let Some(cluster) = settle_cluster(state, &row.resource_id)? else {
        return Ok(json!([]));
    };
    let view = arm_policy::policy_view(&cluster.id, &cluster.body);
    for member in arm_policy::members_covering(state, &cluster.id, &view)? {
        let o = &member.origin;
        let same = resource_key(&o.assignment_id) == resource_key(&row.assignment_id)
            && resource_key(&o.definition_id) == resource_key(&row.definition_id)
            && o.reference_id.as_deref().map(str::to_ascii_lowercase)
                == row.reference_id.as_deref().map(str::to_ascii_lowercase);
        if same {
            let changes = arm_policy::remediation_changes(state, &member, &cluster.id, &view)?;
            return Ok(json!(changes));
        }
    }
    Ok(json!([]))
}

/// Applies a finished DINE remediation to its clusters once, and returns the remediation.
fn advance(state: &AppState, id: &str) -> Result<Option<StoredResource>, ArmError> {
    let Some(stored) = state.store.get(id)? else {
        return Ok(None);
    };
    if phase(&stored) != "Succeeded" || stored.internal["applied"].as_bool().unwrap_or(true) {
        return Ok(Some(stored));
    }
    for target in stored.internal["targets"].as_array().into_iter().flatten() {
        let Some(cluster) = target["id"].as_str() else {
            continue;
        };
        let changes: Vec<arm_policy::PropertyChange> =
            serde_json::from_value(target["changes"].clone()).unwrap_or_default();
        apply_changes(state, cluster, &changes)?;
    }
    let (_, after) = state.store.modify::<ArmError, _>(id, |current| {
        let Some(c) = current else {
            return Ok(Change::Keep);
        };
        let mut internal = c.internal.clone();
        internal["applied"] = json!(true);
        Ok(Change::Settle {
            body: c.body.clone(),
            internal,
        })
    })?;
    Ok(after)
}

/// The response body with the computed state.
fn render(stored: &StoredResource) -> Value {
    let mut body = stored.body.clone();
    body["id"] = json!(stored.id);
    let phase = phase(stored);
    let total = stored.internal["targets"].as_array().map_or(0, Vec::len);
    let (ok, failed) = match phase {
        "Succeeded" => (total, 0),
        "Failed" => (0, total),
        _ => (0, 0),
    };
    let props = &mut body["properties"];
    props["provisioningState"] = json!(phase);
    props["createdOn"] = json!(stored.created_at);
    props["lastUpdatedOn"] = json!(stored.updated_at);
    props["deploymentStatus"] = json!({
        "totalDeployments": total,
        "successfulDeployments": ok,
        "failedDeployments": failed
    });
    props["resourceCount"] = props
        .get("resourceCount")
        .cloned()
        .filter(|v| !v.is_null())
        .unwrap_or(json!(500));
    props["parallelDeployments"] = props
        .get("parallelDeployments")
        .cloned()
        .filter(|v| !v.is_null())
        .unwrap_or(json!(10));
    if phase == "Failed" {
        props["statusMessage"] =
            json!("The remediation failed (injected by the emulator's lro_failure_rate).");
    }
    body
}
