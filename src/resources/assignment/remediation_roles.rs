//! `grant_remediation_roles` of `akspolicy_assignment`: what the portal does when it assigns a
//! DeployIfNotExists or Modify policy, and azurerm users write by hand — one role assignment
//! per role definition the definition (or each initiative member) names in
//! `details.roleDefinitionIds`, for the assignment's managed identity, at the assignment's
//! scope. Names are GUIDs derived from the assignment and the role, so a retried or repeated
//! apply finds its own role assignments and never duplicates them.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::arm::api_version;
use crate::arm::consistency::{retry_while, ConsistencyOptions};
use crate::arm::{ArmClient, ArmError};
use crate::framework::timeouts::Deadline;
use crate::policy::arm_template::deterministic_guid;

/// api-version of role assignments.
/// How long a new managed identity may stay unknown to ARM's role assignment API (Entra ID
/// replicates new service principals within minutes).
const REPLICATION_BUDGET: Duration = Duration::from_secs(5 * 60);
const REPLICATION_INTERVAL: Duration = Duration::from_secs(2);

/// The role definition ids the assigned definition declares (an initiative: each member's),
/// in first-seen order without repeats (compared case-insensitively).
pub async fn declared_roles(
    client: &ArmClient,
    definition_id: &str,
) -> Result<Vec<String>, ArmError> {
    let definition: Json = client.get(definition_id, api_version::POLICY).await?;
    let mut members = Vec::new();
    if definition_id
        .to_ascii_lowercase()
        .contains("/policysetdefinitions/")
    {
        for m in definition["properties"]["policyDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(id) = m["policyDefinitionId"].as_str() {
                members.push(client.get::<Json>(id, api_version::POLICY).await?);
            }
        }
    } else {
        members.push(definition);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for m in &members {
        for role in m["properties"]["policyRule"]["then"]["details"]["roleDefinitionIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
        {
            if seen.insert(role.to_ascii_lowercase()) {
                out.push(role.to_string());
            }
        }
    }
    Ok(out)
}

/// The id of the role assignment granting `role` for `assignment_id` at `scope`.
pub fn role_assignment_id(scope: &str, assignment_id: &str, role: &str) -> String {
    let role_guid = role.rsplit('/').next().unwrap_or(role).to_ascii_lowercase();
    let name = deterministic_guid(&[
        "akspolicy-remediation-role".to_string(),
        assignment_id.to_ascii_lowercase(),
        role_guid,
    ]);
    format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
        scope.trim_end_matches('/')
    )
}

/// The principal the assignment remediates as: its system-assigned identity, else its first
/// user-assigned one.
pub async fn principal_of(
    client: &ArmClient,
    assignment_id: &str,
) -> Result<Option<String>, ArmError> {
    let assignment: Json = client.get(assignment_id, api_version::POLICY).await?;
    let identity = &assignment["identity"];
    if let Some(p) = identity["principalId"].as_str() {
        return Ok(Some(p.to_string()));
    }
    Ok(identity["userAssignedIdentities"]
        .as_object()
        .into_iter()
        .flatten()
        .find_map(|(_, u)| u["principalId"].as_str().map(str::to_string)))
}

/// Why the roles could not be brought in line; `granted` is what exists now and belongs in
/// state whatever else failed.
pub struct SyncFailure {
    pub granted: Vec<String>,
    pub error: SyncError,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the assignment has no managed identity to grant roles to; set an `identity` block")]
    NoIdentity,
    #[error("{0}")]
    Arm(#[from] ArmError),
    #[error("the timeout ran out while {0}")]
    Timeout(String),
}

/// Makes the role assignments for `assignment_id` at `scope` those `want` asks for: every
/// declared role granted (`want`), or none; `prior` are the ids state holds. Returns the ids
/// that exist afterwards.
pub async fn sync(
    client: &ArmClient,
    deadline: &Deadline,
    assignment_id: &str,
    scope: &str,
    definition_id: &str,
    want: bool,
    prior: &[String],
) -> Result<Vec<String>, SyncFailure> {
    let mut granted: Vec<String> = prior.to_vec();
    let fail = |granted: &[String], error: SyncError| SyncFailure {
        granted: granted.to_vec(),
        error,
    };
    let desired: Vec<(String, String)> = if want {
        let roles = match deadline.run(declared_roles(client, definition_id)).await {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Err(fail(&granted, e.into())),
            None => {
                return Err(fail(
                    &granted,
                    SyncError::Timeout("reading the definition's roleDefinitionIds".into()),
                ))
            }
        };
        roles
            .into_iter()
            .map(|r| (role_assignment_id(scope, assignment_id, &r), r))
            .collect()
    } else {
        Vec::new()
    };
    let keep: BTreeSet<String> = desired
        .iter()
        .map(|(id, _)| id.to_ascii_lowercase())
        .collect();
    for id in prior {
        if keep.contains(&id.to_ascii_lowercase()) {
            continue;
        }
        match deadline
            .run(client.delete(id, api_version::ROLE_ASSIGNMENTS))
            .await
        {
            Some(Ok(())) => granted.retain(|g| g != id),
            Some(Err(e)) if e.is_not_found() => granted.retain(|g| g != id),
            Some(Err(e)) => return Err(fail(&granted, e.into())),
            None => return Err(fail(&granted, SyncError::Timeout(format!("deleting {id}")))),
        }
    }
    if desired.is_empty() {
        return Ok(granted);
    }
    // A new identity is unknown to ARM until Entra ID has replicated it (400
    // PrincipalNotFound), and a just-written assignment may not read back at once; both clear
    // within minutes, like the other consistency waits.
    let wait = ConsistencyOptions {
        timeout: deadline.cap(REPLICATION_BUDGET),
        interval: REPLICATION_INTERVAL,
    };
    let read_principal = retry_while(
        &wait,
        |e| e.is_not_found(),
        || principal_of(client, assignment_id),
    );
    let principal = match deadline.run(read_principal).await {
        Some(Ok(Some(p))) => p,
        Some(Ok(None)) => return Err(fail(&granted, SyncError::NoIdentity)),
        Some(Err(e)) => return Err(fail(&granted, e.into())),
        None => {
            return Err(fail(
                &granted,
                SyncError::Timeout("reading the assignment's identity".into()),
            ))
        }
    };
    for (id, role) in &desired {
        let body = json!({"properties": {"roleDefinitionId": role, "principalId": principal}});
        let put = retry_while(
            &wait,
            |e| e.status() == Some(400) && e.code() == Some("PrincipalNotFound"),
            || client.put::<Json, Json>(id, api_version::ROLE_ASSIGNMENTS, &body),
        );
        match deadline.run(put).await {
            Some(Ok(_)) => {
                if !granted.iter().any(|g| g.eq_ignore_ascii_case(id)) {
                    granted.push(id.clone());
                }
            }
            // Granted already under another name (by hand, or by the portal): the identity
            // holds the role, and that role assignment is not ours to track or remove.
            Some(Err(e)) if e.status() == Some(409) && e.code() == Some("RoleAssignmentExists") => {
            }
            Some(Err(e)) => return Err(fail(&granted, e.into())),
            None => {
                return Err(fail(
                    &granted,
                    SyncError::Timeout(format!(
                        "waiting for Entra ID to know principal {principal} to grant {role}"
                    )),
                ))
            }
        }
    }
    // In the definition's order, as reads report them.
    let mut ordered: Vec<String> = desired
        .iter()
        .filter(|(id, _)| granted.iter().any(|g| g.eq_ignore_ascii_case(id)))
        .map(|(id, _)| id.clone())
        .collect();
    ordered.extend(
        granted
            .into_iter()
            .filter(|g| !desired.iter().any(|(d, _)| d.eq_ignore_ascii_case(g))),
    );
    Ok(ordered)
}

/// The role assignments `grant_remediation_roles` should hold now, those of them that exist,
/// and whether the identity holds every declared role (some perhaps under other names).
pub struct RoleState {
    pub desired: Vec<String>,
    pub present: Vec<String>,
    pub all_held: bool,
}

/// Reads [`RoleState`] for an assignment (for read: drift and import).
pub async fn current(
    client: &ArmClient,
    assignment_id: &str,
    scope: &str,
    definition_id: &str,
) -> Result<RoleState, ArmError> {
    let roles = declared_roles(client, definition_id).await?;
    let mut state = RoleState {
        desired: Vec::new(),
        present: Vec::new(),
        all_held: !roles.is_empty(),
    };
    let mut missing = Vec::new();
    for role in &roles {
        let id = role_assignment_id(scope, assignment_id, role);
        if client
            .get_optional::<Json>(&id, api_version::ROLE_ASSIGNMENTS)
            .await?
            .is_some()
        {
            state.present.push(id.clone());
        } else {
            missing.push(role.clone());
        }
        state.desired.push(id);
    }
    if missing.is_empty() {
        return Ok(state);
    }
    // A role granted under another name (by hand, before `grant_remediation_roles`) counts
    // as held: ARM would refuse a second one for the same principal, role and scope.
    let held: Vec<Json> = match principal_of(client, assignment_id).await? {
        Some(principal) => {
            let filter = format!("principalId eq '{principal}'");
            client
                .list(
                    &format!(
                        "{}/providers/Microsoft.Authorization/roleAssignments",
                        scope.trim_end_matches('/')
                    ),
                    api_version::ROLE_ASSIGNMENTS,
                    &[("$filter", filter.as_str())],
                )
                .await?
        }
        None => Vec::new(),
    };
    let guid = |r: &str| r.rsplit('/').next().unwrap_or(r).to_ascii_lowercase();
    state.all_held = missing.iter().all(|role| {
        held.iter().any(|h| {
            h["properties"]["roleDefinitionId"]
                .as_str()
                .is_some_and(|d| guid(d) == guid(role))
                && h["properties"]["scope"].as_str().is_some_and(|s| {
                    s.trim_end_matches('/')
                        .eq_ignore_ascii_case(scope.trim_end_matches('/'))
                })
        })
    });
    Ok(state)
}

/// Removes the role assignments state holds (already gone is fine).
pub async fn revoke(client: &ArmClient, ids: &[String]) -> Result<(), ArmError> {
    for id in ids {
        match client.delete(id, api_version::ROLE_ASSIGNMENTS).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::role_assignment_id;

    #[test]
    fn role_assignment_names_are_stable_guids_per_assignment_and_role() {
        let a = role_assignment_id("/subscriptions/s", "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/x",
            "/providers/Microsoft.Authorization/roleDefinitions/ED7F3FBD-7b88-4dd4-9017-9adb7ce333f8");
        let b = role_assignment_id(
            "/subscriptions/s/",
            "/subscriptions/S/providers/microsoft.authorization/policyassignments/X",
            "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8",
        );
        assert_eq!(a, b);
        let name = a.rsplit('/').next().unwrap_or_default();
        assert!(uuid::Uuid::parse_str(name).is_ok(), "{a}");
        let other = role_assignment_id(
            "/subscriptions/s",
            "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/x",
            "18ed5180-3e48-46fd-8541-4ea054d57064",
        );
        assert_ne!(a, other);
    }
}
