//! `Microsoft.Authorization/roleAssignments` at every scope (PUT/GET/DELETE/list, persisted)
//! and the built-in `roleDefinitions` they name, with ARM's shapes and error codes.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::filter::ScopeRelation;
use super::scope::{related_to_scope, Scope};
use super::write::write;
use super::{
    empty, error::ErrorResponse, now_rfc3339, ok_json, paging, parse_body, status_json, ArmRequest,
};
use crate::emulator::http::Response;
use crate::emulator::rbac::{self, PrincipalLookup, ROLE_ASSIGNMENTS};
use crate::emulator::state::AppState;
use crate::emulator::store::{resource_key, Change};

const PAGE_SIZE: usize = 100;
const TYPE: &str = "Microsoft.Authorization/roleAssignments";

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let scope = Scope::existing(state, &req.path.scope)?;
    let method = &req.http.method;
    match req.path.names.first().cloned() {
        None if method == Method::GET => list(state, req, &scope),
        Some(name) => {
            let id = format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
                scope.id
            );
            match *method {
                Method::GET => match state.store.get(&id)? {
                    Some(stored) => Ok(ok_json(&stored.body)),
                    None => Err(not_found(&name)),
                },
                Method::PUT => put(state, req, &scope, &id, &name),
                Method::DELETE => match state.store.delete(&id)? {
                    Some(stored) => Ok(ok_json(&stored.body)),
                    None => Ok(empty(StatusCode::NO_CONTENT)),
                },
                _ => Err(ErrorResponse::method_not_allowed(method)),
            }
        }
        None => Err(ErrorResponse::method_not_allowed(method)),
    }
}

fn not_found(name: &str) -> ErrorResponse {
    ErrorResponse::not_found(
        "RoleAssignmentNotFound",
        format!("The role assignment '{name}' is not found."),
    )
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

fn put(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    id: &str,
    name: &str,
) -> Result<Response, ErrorResponse> {
    if !is_guid(name) {
        return Err(ErrorResponse::bad_request(
            "InvalidRoleAssignmentId",
            format!("The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."),
        ));
    }
    let request: Value = parse_body(req)?;
    let props = &request["properties"];
    let principal = props["principalId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if principal.is_empty() {
        return Err(ErrorResponse::bad_request(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'Required property 'principalId' not found in JSON.'.",
        ));
    }
    if !is_guid(&principal) {
        return Err(ErrorResponse::bad_request(
            "InvalidPrincipalId",
            format!("The Principal ID '{principal}' is not valid. Principal ID must be a GUID."),
        ));
    }
    let role_id = props["roleDefinitionId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let role_guid = parse_role_definition_id(&role_id).ok_or_else(|| {
        ErrorResponse::bad_request(
            "InvalidRoleDefinitionId",
            format!("The role definition ID '{role_id}' is not valid."),
        )
    })?;
    let role = rbac::builtin_role(&role_guid).ok_or_else(|| {
        ErrorResponse::bad_request(
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{role_guid}' does not exist."),
        )
    })?;
    let principal_type = props["principalType"].as_str().map(str::to_string);
    // ARM asks Entra ID about the principal only when the caller does not say what it is:
    // giving `principalType` is Azure's documented way past the replication delay.
    if principal_type.is_none() {
        match rbac::lookup_principal(state, &principal)? {
            PrincipalLookup::Found => {}
            PrincipalLookup::Replicating | PrincipalLookup::Unknown => {
                return Err(ErrorResponse::bad_request(
                    "PrincipalNotFound",
                    format!(
                        "Principal {} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
                        principal.replace('-', ""),
                        state.identity.tenant_id
                    ),
                ))
            }
        }
    }
    let role_definition_id = rbac::role_definition_id(scope, role.id);
    // One principal holds one role once per scope, whatever the assignment's name.
    for existing in related_to_scope(state, scope, ROLE_ASSIGNMENTS, ScopeRelation::AtExactScope)? {
        let p = &existing.body["properties"];
        let same = p["principalId"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(&principal))
            && p["roleDefinitionId"]
                .as_str()
                .and_then(parse_role_definition_id)
                .is_some_and(|g| g.eq_ignore_ascii_case(role.id));
        if same && resource_key(&existing.id) != resource_key(id) {
            let existing_name = existing
                .id
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .replace('-', "");
            return Err(ErrorResponse::new(
                StatusCode::CONFLICT,
                "RoleAssignmentExists",
                format!("The role assignment already exists. The ID of the existing role assignment is {existing_name}."),
            ));
        }
    }
    let who = req.principal.oid.clone();
    let written = write(state, id, "role assignment", |previous| {
        if let Some(p) = previous {
            let old = &p.body["properties"];
            let changed = !old["principalId"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(&principal))
                || !old["roleDefinitionId"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(&role_definition_id));
            if changed {
                return Err(ErrorResponse::bad_request(
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                ));
            }
            return Ok(Change::Keep);
        }
        let now = now_rfc3339();
        let body = json!({
            "id": id,
            "name": name,
            "type": TYPE,
            "properties": {
                "roleDefinitionId": role_definition_id,
                "principalId": principal,
                "principalType": principal_type.clone().unwrap_or_else(|| "ServicePrincipal".to_string()),
                "scope": scope.id,
                "condition": props.get("condition").cloned().unwrap_or(Value::Null),
                "conditionVersion": props.get("conditionVersion").cloned().unwrap_or(Value::Null),
                "description": props.get("description").cloned().unwrap_or(Value::Null),
                "delegatedManagedIdentityResourceId": null,
                "createdOn": now,
                "updatedOn": now,
                "createdBy": who,
                "updatedBy": who,
            }
        });
        Ok(Change::put(body))
    })?;
    // ARM answers 201 for a new assignment and for a repeated identical PUT alike.
    Ok(status_json(StatusCode::CREATED, &written.stored.body))
}

/// The role GUID of `/providers/Microsoft.Authorization/roleDefinitions/{guid}` or its
/// subscription-qualified form.
fn parse_role_definition_id(id: &str) -> Option<String> {
    let segs: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let tail = match segs.as_slice() {
        [p, ns, t, guid] => (p, ns, t, guid),
        [s, _, p, ns, t, guid] if s.eq_ignore_ascii_case("subscriptions") => (p, ns, t, guid),
        _ => return None,
    };
    let (p, ns, t, guid) = tail;
    let ok = p.eq_ignore_ascii_case("providers")
        && ns.eq_ignore_ascii_case("Microsoft.Authorization")
        && t.eq_ignore_ascii_case("roleDefinitions")
        && is_guid(guid);
    ok.then(|| guid.to_string())
}

/// `$filter`: `atScope()`, `principalId eq '{id}'`, `assignedTo('{id}')`; none lists the
/// assignments at, above and below the scope.
fn list(state: &AppState, req: &ArmRequest<'_>, scope: &Scope) -> Result<Response, ErrorResponse> {
    let filter = req
        .http
        .query_param("$filter")
        .unwrap_or_default()
        .trim()
        .to_string();
    let lower = filter.to_ascii_lowercase();
    let quoted = |prefix: &str| -> Option<String> {
        let i = lower.find(prefix)?;
        let rest = &filter[i + prefix.len()..];
        let rest = rest.trim_start().trim_start_matches('\'');
        Some(rest.split('\'').next().unwrap_or_default().to_string())
    };
    let at_scope = lower.contains("atscope()");
    let principal = quoted("principalid eq").or_else(|| quoted("assignedto("));
    let relation = if at_scope {
        ScopeRelation::AtScope
    } else {
        ScopeRelation::All
    };
    let mut items = Vec::new();
    for stored in related_to_scope(state, scope, ROLE_ASSIGNMENTS, relation)? {
        let p = &stored.body["properties"];
        if let Some(want) = &principal {
            if !p["principalId"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(want))
            {
                continue;
            }
        }
        items.push(stored.body.clone());
    }
    Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
}

/// `roleDefinitions`: GET one built-in role by GUID, or list them (`$filter=roleName eq 'X'`).
pub(crate) fn handle_definitions(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    let scope = Scope::existing(state, &req.path.scope)?;
    if req.http.method != Method::GET {
        // Custom roles are out of the emulator's reach; ARM's answer for a caller without
        // the right to write them is the closest honest one.
        return Err(ErrorResponse::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            "The emulator serves built-in role definitions only; custom roles cannot be written.",
        ));
    }
    match req.path.names.first() {
        Some(guid) => match rbac::builtin_role(guid) {
            Some(role) => Ok(ok_json(&rbac::role_body(role, &scope))),
            None => Err(ErrorResponse::not_found(
                "RoleDefinitionDoesNotExist",
                format!("The specified role definition with ID '{guid}' does not exist."),
            )),
        },
        None => {
            let filter = req.http.query_param("$filter").unwrap_or_default();
            let wanted = filter
                .to_ascii_lowercase()
                .contains("rolename eq")
                .then(|| filter.split('\'').nth(1).unwrap_or_default().to_string());
            let items: Vec<Value> = rbac::BUILTIN_ROLES
                .iter()
                .filter(|r| {
                    wanted
                        .as_deref()
                        .is_none_or(|w| r.name.eq_ignore_ascii_case(w))
                })
                .map(|r| rbac::role_body(r, &scope))
                .collect();
            Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_role_definition_id;

    #[test]
    fn role_definition_ids_in_both_forms() {
        let g = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
        assert_eq!(
            parse_role_definition_id(&format!(
                "/providers/Microsoft.Authorization/roleDefinitions/{g}"
            )),
            Some(g.to_string())
        );
        assert_eq!(
            parse_role_definition_id(&format!(
                "/subscriptions/s/providers/microsoft.authorization/roledefinitions/{g}"
            )),
            Some(g.to_string())
        );
        assert_eq!(parse_role_definition_id("Reader"), None);
        assert_eq!(
            parse_role_definition_id("/providers/Microsoft.Authorization/roleDefinitions/x"),
            None
        );
    }
}
