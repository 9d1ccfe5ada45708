//! Remediations (Microsoft.PolicyInsights) at every scope. Not an ARM LRO: PUT answers
//! `Accepted` at once and the state moves Accepted → Evaluating with time, computed from the
//! stored start time on every read. When the remediation's time is up, it remediates each
//! non-compliant resource it found as the assignment's managed identity, as Azure does: a
//! DeployIfNotExists member's `deployment` runs through the deployment engine (one
//! `PolicyDeployment_…` deployment per resource, failing with `AuthorizationFailed` unless
//! the identity holds the roles it needs), a Modify member's operations are written to the
//! resource (which needs the resource type's write permission). The remediation ends
//! `Failed` when the share of failed deployments reaches `failureThreshold.percentage`
//! (default 1: all of them), else `Succeeded`.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::filter::ScopeRelation;
use super::managed_clusters::{apply_changes, settle as settle_cluster};
use super::scope::{related_to_scope, Scope};
use super::write::{modify_existing, write};
use super::{
    empty, error::ErrorResponse, now_ms, ok_json, paging, parse_body, status_json, system_data,
    ArmRequest,
};
use crate::emulator::arm_policy;
use crate::emulator::compliance::{policy_states, PolicyStateRow, StatesQuery};
use crate::emulator::deploy::{DeployTarget, Deployer};
use crate::emulator::faults::chance;
use crate::emulator::http::Response;
use crate::emulator::rbac;
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::store::resource_key;
use crate::emulator::store::{Change, StoredResource};
use crate::policy::effects::is_remediable;

const NAMESPACE_TYPE: &str = "microsoft.policyinsights/remediations";
const PAGE_SIZE: usize = 50;

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let scope = Scope::existing(state, &req.path.scope)?;
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
                let stored = advance(state, req, &stored.id)?.unwrap_or(stored);
                items.push(render(&stored));
            }
            Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
        }
        (1, Some(name)) => match *method {
            Method::GET => match advance(state, req, &id(&name))? {
                Some(stored) => Ok(ok_json(&render(&stored))),
                None => Err(not_found(&name)),
            },
            Method::PUT => put(state, req, &scope, &id(&name), &name),
            Method::DELETE => match state.store.delete(&id(&name))? {
                Some(stored) => Ok(ok_json(&render(&stored))),
                None => Ok(empty(StatusCode::NO_CONTENT)),
            },
            _ => Err(ErrorResponse::method_not_allowed(method)),
        },
        (2, Some(name)) if method == Method::POST => {
            let action = req.path.types[1].to_ascii_lowercase();
            if action == "listdeployments" {
                let Some(stored) = advance(state, req, &id(&name))? else {
                    return Err(not_found(&name));
                };
                let items: Vec<Value> = stored.internal["results"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                return Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?));
            }
            cancel(state, &id(&name), &name)
        }
        _ => Err(ErrorResponse::method_not_allowed(method)),
    }
}

fn not_found(name: &str) -> ErrorResponse {
    ErrorResponse::not_found(
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
) -> Result<Response, ErrorResponse> {
    super::check_name("remediation", name, &crate::policy::names::RESOURCE)?;
    let request: Value = parse_body(req)?;
    let assignment_id = request
        .pointer("/properties/policyAssignmentId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ErrorResponse::bad_request(
                "InvalidCreateRemediationRequest",
                "The remediation must name a 'policyAssignmentId'.",
            )
        })?
        .to_string();
    let Some(assignment) = state.store.get(&assignment_id)? else {
        return Err(ErrorResponse::bad_request(
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
        return Err(ErrorResponse::bad_request(
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
    let targets: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({"id": row.resource_id, "assignment_id": row.assignment_id,
                "definition_id": row.definition_id, "reference_id": row.reference_id})
        })
        .collect();
    let profile = state.fault_profile();
    let written = write(state, id, "remediation", |previous| {
        if let Some(p) = previous {
            let current = phase(p);
            if !matches!(current, "Succeeded" | "Failed" | "Canceled") {
                return Err(ErrorResponse::bad_request(
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
        if props
            .get("resourceDiscoveryMode")
            .is_none_or(Value::is_null)
        {
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
    // The PUT's own answer is always the accepted task, however long building it took; only
    // later reads see it move on.
    let mut answer = render(&written.stored);
    answer["properties"]["provisioningState"] = json!("Accepted");
    Ok(status_json(written.status(), &answer))
}

fn cancel(state: &AppState, id: &str, name: &str) -> Result<Response, ErrorResponse> {
    let written =
        modify_existing(
            state,
            id,
            "remediation",
            || not_found(name),
            |p| {
                let current = phase(p);
                if matches!(current, "Succeeded" | "Failed" | "Canceled") {
                    return Err(ErrorResponse::bad_request(
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
            },
        )?;
    Ok(ok_json(&render(&written.stored)))
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
            return "Failed";
        }
        let Some(results) = i["results"].as_array() else {
            // Time is up but the deployments have not run yet (the next read runs them).
            return "Evaluating";
        };
        let failed = results.iter().filter(|r| r["status"] == "Failed").count();
        let threshold = stored.body["properties"]["failureThreshold"]["percentage"]
            .as_f64()
            .unwrap_or(1.0);
        if failed > 0 && failed as f64 / results.len() as f64 >= threshold {
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

/// The assignment member a remediation target was found non-compliant for, if it still
/// covers the resource.
fn member_for(
    state: &AppState,
    resource_id: &str,
    view: &Value,
    target: &Value,
) -> Result<Option<arm_policy::AssignedMember>, ErrorResponse> {
    let key = |v: &Value| v.as_str().map(resource_key);
    for member in arm_policy::members_covering(state, resource_id, view)? {
        let o = &member.origin;
        let same = Some(resource_key(&o.assignment_id)) == key(&target["assignment_id"])
            && Some(resource_key(&o.definition_id)) == key(&target["definition_id"])
            && o.reference_id.as_deref().map(str::to_ascii_lowercase)
                == target["reference_id"].as_str().map(str::to_ascii_lowercase);
        if same {
            return Ok(Some(member));
        }
    }
    Ok(None)
}

/// Remediates one resource as `principal`; returns its entry for `listDeployments`.
fn remediate_one(
    state: &AppState,
    req: &ArmRequest<'_>,
    principal: Option<&str>,
    target: &Value,
) -> Result<Value, ErrorResponse> {
    let resource_id = target["id"].as_str().unwrap_or_default().to_string();
    let now = super::now_rfc3339();
    let mut entry = json!({"remediatedResourceId": resource_id, "status": "Failed",
        "createdOn": now, "lastUpdatedOn": now});
    let fail = |mut entry: Value, code: &str, message: String| {
        entry["error"] = json!({"code": code, "message": message});
        Ok(entry)
    };
    let Some(resource) = settle_cluster(state, &resource_id)? else {
        return fail(
            entry,
            "ResourceNotFound",
            format!("The resource '{resource_id}' no longer exists."),
        );
    };
    entry["resourceLocation"] = resource.body["location"].clone();
    let view = arm_policy::policy_view(&resource.id, &resource.body);
    let Some(member) = member_for(state, &resource.id, &view, target)? else {
        return fail(
            entry,
            "PolicyAssignmentNotApplicable",
            format!("The policy assignment no longer covers the resource '{resource_id}'."),
        );
    };
    let Some(principal) = principal else {
        return fail(
            entry,
            "PolicyAssignmentIdentityMissing",
            format!(
                "The policy assignment '{}' has no managed identity to remediate with.",
                member.origin.assignment_id
            ),
        );
    };
    let effect = member.effect_name();
    if effect.eq_ignore_ascii_case("Modify") {
        let rtype = view["type"].as_str().unwrap_or_default();
        if let Err(e) = rbac::authorize(state, principal, &format!("{rtype}/write"), &resource.id) {
            return fail(entry, &e.code, e.message);
        }
        let changes = arm_policy::remediation_changes(state, &member, &resource.id, &view)?;
        apply_changes(state, &resource.id, &changes)?;
        entry["status"] = json!("Succeeded");
        return Ok(entry);
    }
    let deployment = match arm_policy::remediation_deployment(state, &member, &resource.id, &view) {
        Ok(Some(d)) => d,
        Ok(None) => {
            return fail(
                entry,
                "InvalidPolicyDefinition",
                format!(
                    "The policy definition '{}' has no deployment to remediate with.",
                    member.origin.definition_id
                ),
            );
        }
        Err(e) => return fail(entry, "InvalidPolicyParameters", e.to_string()),
    };
    let segs: Vec<&str> = resource.id.split('/').collect();
    let deploy_target = DeployTarget {
        subscription: segs.get(2).copied().unwrap_or_default().to_string(),
        resource_group: (!deployment.subscription_scope)
            .then(|| segs.get(4).copied().unwrap_or_default().to_string()),
    };
    let digits = uuid::Uuid::new_v4().as_u128() % 10u128.pow(19);
    let name = format!("PolicyDeployment_{digits}");
    entry["deploymentId"] = json!(deploy_target.deployment_id(&name));
    let deployer = Deployer::new(state, req, Some(principal));
    match deployer.deploy(&deploy_target, &name, &deployment.request) {
        Ok(deployed) => match deployed.error {
            None => entry["status"] = json!("Succeeded"),
            Some(e) => entry["error"] = e.to_json(),
        },
        Err(e) => entry["error"] = e.to_json(),
    }
    Ok(entry)
}

/// Runs a remediation whose time is up (once: the first read claims it), and returns it.
fn advance(
    state: &AppState,
    req: &ArmRequest<'_>,
    id: &str,
) -> Result<Option<StoredResource>, ErrorResponse> {
    let Some(stored) = state.store.get(id)? else {
        return Ok(None);
    };
    if phase(&stored) != "Evaluating" || stored.internal["claimed"].as_bool().unwrap_or(false) {
        return Ok(Some(stored));
    }
    let now = now_ms();
    let due = stored.internal["start_ms"]
        .as_u64()
        .unwrap_or(0)
        .saturating_add(stored.internal["lro_ms"].as_u64().unwrap_or(0));
    if now < due {
        return Ok(Some(stored));
    }
    let mine = std::cell::Cell::new(false);
    let (_, claimed) = state.store.modify::<ErrorResponse, _>(id, |current| {
        let Some(c) = current else {
            return Ok(Change::Keep);
        };
        if c.internal["claimed"].as_bool().unwrap_or(false) {
            return Ok(Change::Keep);
        }
        let mut internal = c.internal.clone();
        internal["claimed"] = json!(true);
        mine.set(true);
        Ok(Change::Settle {
            body: c.body.clone(),
            internal,
        })
    })?;
    if !mine.get() {
        return Ok(claimed);
    }
    let assignment_id = stored.body["properties"]["policyAssignmentId"]
        .as_str()
        .unwrap_or_default();
    let principal = state
        .store
        .get(assignment_id)?
        .and_then(|a| rbac::assignment_principals(&a.body).into_iter().next());
    let mut results = Vec::new();
    for target in stored.internal["targets"].as_array().into_iter().flatten() {
        results.push(remediate_one(state, req, principal.as_deref(), target)?);
    }
    let (_, after) = state.store.modify::<ErrorResponse, _>(id, |current| {
        let Some(c) = current else {
            return Ok(Change::Keep);
        };
        let mut internal = c.internal.clone();
        internal["results"] = json!(results);
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
    let results = stored.internal["results"].as_array();
    let count =
        |status: &str| results.map_or(0, |r| r.iter().filter(|x| x["status"] == status).count());
    let injected = stored.internal["fail"].as_bool().unwrap_or(false) && phase == "Failed";
    let (ok, failed) = if injected {
        (0, total)
    } else {
        (count("Succeeded"), count("Failed"))
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
    if injected {
        props["statusMessage"] =
            json!("The remediation failed (injected by the emulator's lro_failure_rate).");
    } else if phase == "Failed" {
        props["statusMessage"] = json!(format!(
            "{failed} of {total} remediation deployments failed; list the remediation's deployments for their errors."
        ));
    }
    body
}
