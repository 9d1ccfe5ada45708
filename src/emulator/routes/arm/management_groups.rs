//! Management groups (`/providers/Microsoft.Management/managementGroups/{mg}`) with their
//! parent hierarchy, and subscription placement (`.../managementGroups/{mg}/subscriptions/{s}`).
//! A management group PUT is a long-running operation as in Azure: 202 with `Location` and
//! `Azure-AsyncOperation` pointing at `/providers/Microsoft.Management/operationResults/create/
//! managementGroups/{mg}`, which reports `Running` until the operation's time is up and then
//! `Succeeded` with the group. The group itself is written at once (see `operations`).

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::scope::{management_group_not_found, Scope, MG_PREFIX};
use super::{
    empty, error::ErrorResponse, now_rfc3339, ok_json, operations, paging, parse_body, ArmRequest,
};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;
use crate::emulator::store::{resource_key, Change};

const MG_TYPE: &str = "Microsoft.Management/managementGroups";
const PAGE_SIZE: usize = 100;

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    if !req.path.scope.is_empty() {
        return Err(ErrorResponse::bad_request(
            "InvalidScope",
            "Management groups exist only at tenant scope.",
        ));
    }
    let method = &req.http.method;
    match (req.path.types.len(), req.path.names.as_slice()) {
        (1, []) if method == Method::GET => {
            let items = state
                .store
                .list_prefix(&resource_key(MG_PREFIX))?
                .into_iter()
                .filter(|r| !resource_key(&r.id)[MG_PREFIX.len()..].contains('/'))
                .map(|r| r.body)
                .collect();
            Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
        }
        (1, [name]) => match *method {
            Method::GET => match state.store.get(&mg_id(name))? {
                Some(r) => Ok(ok_json(&r.body)),
                None => Err(management_group_not_found(name)),
            },
            Method::PUT => put(state, req, name),
            Method::DELETE => {
                let children = state
                    .store
                    .list_prefix(&resource_key(MG_PREFIX))?
                    .into_iter()
                    .any(|r| {
                        r.body
                            .pointer("/properties/details/parent/id")
                            .and_then(Value::as_str)
                            .is_some_and(|p| resource_key(p) == resource_key(&mg_id(name)))
                    });
                if children {
                    return Err(ErrorResponse::bad_request(
                        "BadRequest",
                        format!("Management group '{name}' has child management groups; move or delete them first."),
                    ));
                }
                match state.store.delete_tree(&mg_id(name))? {
                    0 => Ok(empty(StatusCode::NO_CONTENT)),
                    _ => Ok(empty(StatusCode::OK)),
                }
            }
            _ => Err(ErrorResponse::method_not_allowed(method)),
        },
        (2, [name]) if req.path.types[1].eq_ignore_ascii_case("descendants") => {
            req.allow_if(*method == Method::GET)?;
            descendants(state, req, name)
        }
        (2, [name, sub]) => placement(state, req, name, sub),
        _ => Err(ErrorResponse::method_not_allowed(method)),
    }
}

fn mg_id(name: &str) -> String {
    format!("{MG_PREFIX}{name}")
}

/// Azure's rule for management group ids: 1 to 90 of letters, digits, `-`, `_`, `.`, `(`,
/// `)`.
fn check_name(name: &str) -> Result<(), ErrorResponse> {
    let valid = !name.is_empty()
        && name.len() <= 90
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ErrorResponse::bad_request(
            "BadRequest",
            format!(
                "The provided management group name '{name}' has invalid characters or length: \
                 use 1 to 90 letters, digits, '-', '_', '.', '(' or ')'."
            ),
        ))
    }
}

fn put(state: &AppState, req: &ArmRequest<'_>, name: &str) -> Result<Response, ErrorResponse> {
    check_name(name)?;
    let body: Value = parse_body(req)?;
    let tenant = state.identity.tenant_id.clone();
    let root = mg_id(&tenant);
    let parent_id = body
        .pointer("/properties/details/parent/id")
        .and_then(Value::as_str)
        .unwrap_or(&root)
        .to_string();
    let parent_name = parent_id.rsplit('/').next().unwrap_or_default().to_string();
    if parent_name.eq_ignore_ascii_case(name) {
        return Err(ErrorResponse::bad_request(
            "BadRequest",
            "A management group cannot be its own parent.",
        ));
    }
    if !parent_name.eq_ignore_ascii_case(&tenant)
        && state.store.get(&mg_id(&parent_name))?.is_none()
    {
        return Err(ErrorResponse::bad_request(
            "ParentNotFound",
            format!("The parent management group '{parent_id}' was not found."),
        ));
    }
    let display = body
        .pointer("/properties/displayName")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_string();
    let id = mg_id(name);
    let who = req.principal.oid.clone();
    let (_, after) = state.store.modify::<ErrorResponse, _>(&id, |previous| {
        let version = previous
            .and_then(|p| p.body.pointer("/properties/details/version"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        Ok(Change::Put {
            body: json!({
                "id": id,
                "type": MG_TYPE,
                "name": name,
                "properties": {
                    "tenantId": tenant,
                    "displayName": display,
                    "details": {
                        "version": version,
                        "updatedTime": now_rfc3339(),
                        "updatedBy": who,
                        "parent": {"id": parent_id, "name": parent_name, "displayName": parent_name}
                    }
                }
            }),
            internal: Value::Null,
        })
    })?;
    let stored = after.ok_or_else(|| ErrorResponse::internal("management group write lost"))?;
    let op_id = operation_id(name);
    let op_body = operation_body(&op_id, "Running", &stored.body["properties"]);
    operations::begin(state, req, &op_id, op_body, true)
}

fn operation_id(name: &str) -> String {
    format!("/providers/Microsoft.Management/operationResults/create/managementGroups/{name}")
}

/// Azure's `AzureAsyncOperationResults` for a management group create.
fn operation_body(op_id: &str, status: &str, properties: &Value) -> Value {
    json!({
        "id": op_id,
        "type": "/providers/Microsoft.Management/operationResults",
        "name": "create",
        "status": status,
        "properties": properties,
    })
}

/// `GET /providers/Microsoft.Management/operationResults/create/managementGroups/{mg}`: 202
/// `Running` while the create runs, then 200 `Succeeded` with the group's properties.
pub(crate) fn handle_operation_result(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    // `.../operationResults/create/managementGroups/{mg}`
    let is_create =
        matches!(req.path.names.as_slice(), [op, _] if op.eq_ignore_ascii_case("create"));
    req.allow_if(req.http.method == Method::GET && is_create)?;
    let name = req.path.names.last().cloned().unwrap_or_default();
    let op_id = req.path.resource_id();
    let Some(op) = operations::get(state, &op_id)? else {
        return Err(ErrorResponse::not_found(
            "NotFound",
            format!("No operation for management group '{name}' was found."),
        ));
    };
    let left = operations::remaining_ms(&op);
    if left > 0 {
        return Ok(operations::accepted(
            req,
            &op_id,
            Some(&op.body),
            true,
            left,
        ));
    }
    let properties = match state.store.get(&mg_id(&name))? {
        Some(mg) => mg.body["properties"].clone(),
        None => op.body["properties"].clone(),
    };
    Ok(ok_json(&operation_body(&op_id, "Succeeded", &properties)))
}

/// `GET .../managementGroups/{mg}/descendants`: every management group and subscription below
/// `mg`, at any depth (what `notScopes` on a management group exclude).
fn descendants(
    state: &AppState,
    req: &ArmRequest<'_>,
    name: &str,
) -> Result<Response, ErrorResponse> {
    let is_tenant_root = name.eq_ignore_ascii_case(&state.identity.tenant_id);
    if !is_tenant_root && state.store.get(&mg_id(name))?.is_none() {
        return Err(management_group_not_found(name));
    }
    let target = resource_key(&mg_id(name));
    let mut items = Vec::new();
    for r in state.store.list_prefix(&resource_key(MG_PREFIX))? {
        let key = resource_key(&r.id);
        if key[MG_PREFIX.len()..].contains('/') || key == target {
            continue;
        }
        let Ok(scope) = Scope::parse(&r.id) else {
            continue;
        };
        if scope.ancestors(state)?.contains(&target) {
            let parent = r.body.pointer("/properties/details/parent/id").cloned();
            items.push(json!({
                "id": r.id, "type": MG_TYPE, "name": r.body["name"],
                "properties": {"displayName": r.body.pointer("/properties/displayName"),
                               "parent": {"id": parent}}
            }));
        }
    }
    for r in state.store.list_prefix("/subscriptions/")? {
        let Some(sub) = r.id.strip_prefix("/subscriptions/") else {
            continue;
        };
        if sub.contains('/') {
            continue;
        }
        let Ok(scope) = Scope::parse(&r.id) else {
            continue;
        };
        if scope.ancestors(state)?.contains(&target) {
            items.push(json!({
                "id": r.id, "type": "/subscriptions", "name": sub,
                "properties": {"displayName": r.body.get("displayName")}
            }));
        }
    }
    Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
}

/// `PUT/GET/DELETE .../managementGroups/{mg}/subscriptions/{sub}`: a subscription sits under
/// one management group at a time.
fn placement(
    state: &AppState,
    req: &ArmRequest<'_>,
    name: &str,
    sub: &str,
) -> Result<Response, ErrorResponse> {
    let id = format!("{}/subscriptions/{sub}", mg_id(name));
    let method = &req.http.method;
    if method == Method::GET {
        return match state.store.get(&id)? {
            Some(r) => Ok(ok_json(&r.body)),
            None => Err(ErrorResponse::not_found(
                "NotFound",
                format!("Subscription '{sub}' is not under management group '{name}'."),
            )),
        };
    }
    if method == Method::DELETE {
        return match state.store.delete(&id)? {
            Some(_) => Ok(empty(StatusCode::OK)),
            None => Ok(empty(StatusCode::NO_CONTENT)),
        };
    }
    if method != Method::PUT {
        return Err(ErrorResponse::method_not_allowed(method));
    }
    if !name.eq_ignore_ascii_case(&state.identity.tenant_id)
        && state.store.get(&mg_id(name))?.is_none()
    {
        return Err(management_group_not_found(name));
    }
    if state.store.get(&format!("/subscriptions/{sub}"))?.is_none() {
        return Err(ErrorResponse::subscription_not_found(sub));
    }
    // Move: drop any other placement first.
    let suffix = format!("/subscriptions/{}", sub.to_ascii_lowercase());
    for other in state.store.list_prefix(&resource_key(MG_PREFIX))? {
        if resource_key(&other.id).ends_with(&suffix) {
            state.store.delete(&other.id)?;
        }
    }
    let stored = state.store.put(
        &id,
        json!({
            "id": id,
            "type": "Microsoft.Management/managementGroups/subscriptions",
            "name": sub,
            "properties": {
                "parent": {"id": mg_id(name)},
                "state": "Active",
                "tenant": state.identity.tenant_id,
                "displayName": "akspolicy emulator subscription"
            }
        }),
    )?;
    Ok(ok_json(&stored.body))
}
