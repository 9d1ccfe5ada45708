//! AKS managed clusters with ARM's long-running operation shape.
//!
//! Operations are timers, not tasks: a write stores the cluster with a non-terminal
//! `provisioningState` and an operation record with its end time, and every later read
//! "settles" what has finished. That keeps state in the database only, so a restart (or a
//! kill -9) never loses an operation, and no background task races the request handlers.
//!
//! [`operation`] holds the operation records (polling, settling, abort), [`body`] the cluster
//! body the resource provider stores (the defaults it fills in).

mod body;
mod operation;

use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::emulator::arm_policy;
use crate::emulator::http::Response;
use crate::emulator::routes::arm::scope::{stored_of_type, Scope};
use crate::emulator::routes::arm::write::{modify_existing, write};
use crate::emulator::routes::arm::{
    empty, error::ErrorResponse, ok_json, paging, parse_body, status_json, system_data, ArmRequest,
};
use crate::emulator::state::AppState;
use crate::emulator::store::{resource_key, Change, StoredResource};

use body::{build_body, fill_policy_addon};
use operation::{busy, new_operation, running};
pub(crate) use operation::{handle_abort, handle_operation, settle};

use crate::policy::kubernetes::MANAGED_CLUSTERS;
const NAMESPACE_TYPE: &str = "microsoft.containerservice/managedclusters";
const POLICY_ADDON: &str = "azurepolicy";
const PAGE_SIZE: usize = 50;

/// `managedClusters` routes.
pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let scope = Scope::existing(state, &req.path.scope)?;
    let method = &req.http.method;
    match (req.path.types.len(), req.path.item_name()) {
        (1, None) if method == Method::GET => list(state, req, &scope),
        (1, Some(name)) => {
            if !matches!(scope.kind, super::scope::ScopeKind::ResourceGroup { .. }) {
                return Err(ErrorResponse::not_found(
                    "InvalidResourceType",
                    "Managed clusters live in a resource group.",
                ));
            }
            let id = format!("{}/providers/{MANAGED_CLUSTERS}/{name}", scope.id);
            match *method {
                Method::GET => match settle(state, &id)? {
                    Some(stored) => Ok(with_etag(ok_json(&public(&stored)), &stored)),
                    None => Err(not_found(&id)),
                },
                Method::PUT => put(state, req, &id, name),
                Method::PATCH => patch(state, req, &id),
                Method::DELETE => delete(state, req, &id),
                _ => Err(ErrorResponse::method_not_allowed(method)),
            }
        }
        _ => Err(ErrorResponse::method_not_allowed(method)),
    }
}

fn not_found(id: &str) -> ErrorResponse {
    let group = id.split('/').nth(4).unwrap_or_default();
    ErrorResponse::not_found(
        "ResourceNotFound",
        format!(
            "The Resource '{}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            super::scope::resource_type_and_name(id)
        ),
    )
}

/// The body clients see: stored body with the id in creator casing and the current eTag.
fn public(stored: &StoredResource) -> Value {
    let mut body = stored.body.clone();
    body["id"] = json!(stored.id);
    body["eTag"] = json!(stored.etag.trim_matches('"'));
    body
}

fn with_etag(mut resp: Response, stored: &StoredResource) -> Response {
    set_header(&mut resp, "etag", &stored.etag);
    resp
}

pub(crate) fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Points the answer to a write at its operation: `Azure-AsyncOperation` (the status URL),
/// with `location` also `Location` (the result URL), and `Retry-After`.
fn link_operation(resp: &mut Response, req: &ArmRequest<'_>, op_id: &str, location: bool) {
    set_header(resp, "azure-asyncoperation", &absolute(req, op_id));
    if location {
        let results = op_id.replacen("/operations/", "/operationresults/", 1);
        set_header(resp, "location", &absolute(req, &results));
    }
    set_header(resp, "retry-after", "1");
}

fn absolute(req: &ArmRequest<'_>, id: &str) -> String {
    format!("{}{id}?api-version={}", req.http.base_url, req.api_version)
}

/// `If-Match` / `If-None-Match` against the current eTag (quotes optional on both sides).
fn check_preconditions(
    req: &ArmRequest<'_>,
    current: Option<&StoredResource>,
) -> Result<(), ErrorResponse> {
    let failed = |message: String| {
        ErrorResponse::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            message,
        )
    };
    let etag = current.map(|c| c.etag.trim_matches('"').to_string());
    if let Some(want) = req.http.header("if-match") {
        let want = want.trim().trim_matches('"');
        let ok = match &etag {
            Some(have) => want == "*" || want == have,
            None => false,
        };
        if !ok {
            return Err(failed(format!(
                "Operation failed: the eTag '{want}' in If-Match does not match the current eTag '{}'.",
                etag.unwrap_or_default()
            )));
        }
    }
    if let Some(none) = req.http.header("if-none-match") {
        let none = none.trim().trim_matches('"');
        let clash = match &etag {
            Some(have) => none == "*" || none == have,
            None => false,
        };
        if clash {
            return Err(failed(format!(
                "Operation failed: the resource exists and If-None-Match is '{none}'."
            )));
        }
    }
    Ok(())
}

fn put(
    state: &AppState,
    req: &ArmRequest<'_>,
    id: &str,
    name: &str,
) -> Result<Response, ErrorResponse> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !valid {
        return Err(ErrorResponse::bad_request(
            "InvalidParameter",
            format!("The value of parameter resourceName '{name}' is invalid. It must be 1-63 letters, digits, '-' or '_', starting and ending with a letter or digit."),
        ));
    }
    let request: Value = parse_body(req)?;
    if !request.is_object() {
        return Err(ErrorResponse::bad_request(
            "InvalidRequestContent",
            "The request body must be a JSON object.",
        ));
    }
    let location = request
        .get("location")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            ErrorResponse::bad_request(
                "InvalidParameter",
                "The value of parameter location is invalid: location is required.",
            )
        })?
        .to_string();
    // ARM asks policy about the request as sent, before the resource provider sees it:
    // Modify alters the request first, then Deny judges the result.
    let mut request = request;
    let mut proposed = request.clone();
    proposed["type"] = json!(MANAGED_CLUSTERS);
    for (path, value) in
        arm_policy::write_modifications(state, id, &arm_policy::policy_view(id, &proposed))?
    {
        arm_policy::set_path(&mut request, &path, value);
    }
    let mut proposed = request.clone();
    proposed["type"] = json!(MANAGED_CLUSTERS);
    arm_policy::check_deny(state, id, &arm_policy::policy_view(id, &proposed), "PUT")?;
    settle(state, id)?;
    let current = state.store.get(id)?;
    check_preconditions(req, current.as_ref())?;
    if let Some(c) = &current {
        if running(c) {
            return Err(busy(c));
        }
        let old = c.body["location"].as_str().unwrap_or_default();
        if !old.eq_ignore_ascii_case(&location) {
            return Err(ErrorResponse::bad_request(
                "BadRequest",
                format!(
                    "Changing property 'location' from '{old}' to '{location}' is not allowed."
                ),
            ));
        }
    }
    let kind = if current.is_some() {
        "Updating"
    } else {
        "Creating"
    };
    let (op_id, op) = new_operation(state, id, &location, kind)?;
    let tenant = state.identity.tenant_id.clone();
    let written = write(state, id, "cluster", |previous| {
        // Re-checked inside the write transaction: a concurrent writer may have won.
        if let Some(p) = previous {
            if running(p) {
                return Err(busy(p));
            }
        }
        if let (None, Some(p)) = (&current, previous) {
            return Err(busy(p));
        }
        let body = build_body(
            &request,
            previous.map(|p| &p.body),
            id,
            name,
            &location,
            kind,
            &tenant,
            req,
        );
        Ok(Change::Put {
            body,
            internal: json!({"op": op}),
        })
    })?;
    let stored = &written.stored;
    let mut resp = with_etag(status_json(written.status(), &public(stored)), stored);
    link_operation(&mut resp, req, &op_id, false);
    Ok(resp)
}

/// `PATCH {tags}`: the same operation shape as a PUT (200, `provisioningState: Updating`,
/// `Azure-AsyncOperation`); the tags are in place at once, so reads never see them half set.
fn patch(state: &AppState, req: &ArmRequest<'_>, id: &str) -> Result<Response, ErrorResponse> {
    let update: Value = parse_body(req)?;
    settle(state, id)?;
    let Some(current) = state.store.get(id)? else {
        return Err(not_found(id));
    };
    check_preconditions(req, Some(&current))?;
    if running(&current) {
        return Err(busy(&current));
    }
    let mut proposed = current.body.clone();
    if let Some(tags) = update.get("tags") {
        proposed["tags"] = tags.clone();
    }
    arm_policy::check_deny(state, id, &arm_policy::policy_view(id, &proposed), "PATCH")?;
    let location = current.body["location"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (op_id, op) = new_operation(state, id, &location, "Updating")?;
    let written = modify_existing(
        state,
        id,
        "cluster",
        || not_found(id),
        |previous| {
            check_preconditions(req, Some(previous))?;
            if running(previous) {
                return Err(busy(previous));
            }
            let mut body = previous.body.clone();
            if let Some(tags) = update.get("tags") {
                body["tags"] = tags.clone();
            }
            body["properties"]["provisioningState"] = json!("Updating");
            body["systemData"] = system_data(req, Some(&previous.body));
            Ok(Change::Put {
                body,
                internal: json!({"op": op}),
            })
        },
    )?;
    let stored = &written.stored;
    let mut resp = with_etag(ok_json(&public(stored)), stored);
    link_operation(&mut resp, req, &op_id, true);
    Ok(resp)
}

fn delete(state: &AppState, req: &ArmRequest<'_>, id: &str) -> Result<Response, ErrorResponse> {
    settle(state, id)?;
    let Some(current) = state.store.get(id)? else {
        return Ok(empty(StatusCode::NO_CONTENT));
    };
    check_preconditions(req, Some(&current))?;
    if running(&current) {
        return Err(busy(&current));
    }
    let location = current.body["location"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (op_id, op) = new_operation(state, id, &location, "Deleting")?;
    state.store.modify::<ErrorResponse, _>(id, |previous| {
        let Some(previous) = previous else {
            return Ok(Change::Keep);
        };
        if running(previous) {
            return Err(busy(previous));
        }
        let mut body = previous.body.clone();
        body["properties"]["provisioningState"] = json!("Deleting");
        Ok(Change::Put {
            body,
            internal: json!({"op": op}),
        })
    })?;
    let mut resp = empty(StatusCode::ACCEPTED);
    link_operation(&mut resp, req, &op_id, true);
    Ok(resp)
}

fn list(state: &AppState, req: &ArmRequest<'_>, scope: &Scope) -> Result<Response, ErrorResponse> {
    let prefix = format!("{}/", resource_key(&scope.id));
    let mut items = Vec::new();
    for (_, stored) in stored_of_type(state, NAMESPACE_TYPE)? {
        if !resource_key(&stored.id).starts_with(&prefix) {
            continue;
        }
        if let Some(current) = settle(state, &stored.id)? {
            items.push(public(&current));
        }
    }
    Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
}

/// Clusters in (or at) a scope, settled: for compliance summaries.
pub(crate) fn clusters_under(
    state: &AppState,
    scope: &Scope,
) -> Result<Vec<StoredResource>, ErrorResponse> {
    let mut out = Vec::new();
    for (_, stored) in stored_of_type(state, NAMESPACE_TYPE)? {
        if !scope.contains(state, &stored.id)? {
            continue;
        }
        if let Some(current) = settle(state, &stored.id)? {
            out.push(current);
        }
    }
    Ok(out)
}

/// True when the cluster's Azure Policy add-on is enabled.
pub(crate) fn policy_addon_enabled(cluster: &Value) -> bool {
    cluster["properties"]["addonProfiles"]
        .as_object()
        .and_then(|a| a.iter().find(|(k, _)| k.eq_ignore_ascii_case(POLICY_ADDON)))
        .is_some_and(|(_, v)| v["enabled"].as_bool().unwrap_or(false))
}

/// Writes a remediation's property changes to a cluster, as the deployment's PUT would: keys
/// matched case-insensitively (an existing key keeps its casing), missing objects created, and
/// the add-on profile completed by the resource provider as on any PUT.
pub(crate) fn apply_changes(
    state: &AppState,
    id: &str,
    changes: &[(Vec<String>, Option<Value>)],
) -> Result<(), ErrorResponse> {
    state.store.modify::<ErrorResponse, _>(id, |current| {
        let Some(current) = current else {
            return Ok(Change::Keep);
        };
        let mut body = current.body.clone();
        let previous = body["properties"]["addonProfiles"].as_object().cloned();
        for (path, value) in changes {
            arm_policy::set_path(&mut body, path, value.clone());
        }
        let sub = id.split('/').nth(2).unwrap_or_default().to_string();
        let name = id.rsplit('/').next().unwrap_or_default().to_string();
        let node_rg = body["properties"]["nodeResourceGroup"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(addons) = body["properties"]["addonProfiles"].as_object_mut() {
            fill_policy_addon(addons, previous.as_ref(), &sub, &node_rg, &name);
        }
        Ok(Change::Put {
            body,
            internal: current.internal.clone(),
        })
    })?;
    Ok(())
}
