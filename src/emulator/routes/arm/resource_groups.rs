//! Resource groups: `PUT/GET/PATCH/DELETE/HEAD /subscriptions/{s}/resourceGroups/{rg}` and the
//! list. Deleting a group removes everything stored below it, as ARM does.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::scope::resource_group_not_found;
use super::with_id;
use super::write::{copy_members, modify_existing, write};
use super::{empty, error::ErrorResponse, ok_json, operations, paging, parse_body, ArmRequest};
use crate::emulator::arm_policy;
use crate::emulator::http::Response;
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::store::Change;

const PAGE_SIZE: usize = 100;
/// What a resource group PUT or PATCH may set besides the location.
const WRITABLE: &[&str] = &["tags", "managedBy"];

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let sub = req.path.names.first().cloned().unwrap_or_default();
    if state.store.get(&format!("/subscriptions/{sub}"))?.is_none() {
        return Err(ErrorResponse::subscription_not_found(&sub));
    }
    let method = &req.http.method;
    match req.path.item_name() {
        None if method == Method::GET => {
            let items = state
                .store
                .list_children(&format!("/subscriptions/{sub}"), "resourceGroups")?
                .into_iter()
                .map(|r| with_id(&r.body, &r.id))
                .collect();
            Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
        }
        Some(name) => {
            let id = format!("/subscriptions/{sub}/resourceGroups/{name}");
            match *method {
                Method::GET | Method::HEAD => match state.store.get(&id)? {
                    Some(r) if method == Method::GET => Ok(ok_json(&with_id(&r.body, &r.id))),
                    Some(_) => Ok(empty(StatusCode::NO_CONTENT)),
                    None if method == Method::HEAD => Ok(empty(StatusCode::NOT_FOUND)),
                    None => Err(resource_group_not_found(name)),
                },
                Method::PUT => put(state, req, &id, name),
                Method::PATCH => patch(state, req, &id, name),
                Method::DELETE => {
                    // ARM answers 202 + Location. The group and everything below it go at
                    // once; only the Location URL keeps answering 202 until the operation's
                    // time is up (see `operations`).
                    if state.store.delete_tree(&id)? == 0 {
                        return Err(resource_group_not_found(name));
                    }
                    let op_id = format!("/subscriptions/{sub}/operationresults/{}", new_guid());
                    operations::begin(state, req, &op_id, json!({"resourceGroup": id}), false)
                }
                _ => Err(ErrorResponse::method_not_allowed(method)),
            }
        }
        None => Err(ErrorResponse::method_not_allowed(method)),
    }
}

/// `GET /subscriptions/{s}/operationresults/{id}`: the Location of a resource group delete,
/// 202 while it runs, then 200.
pub(crate) fn handle_operation_result(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    let name = req.path.item_name().unwrap_or_default();
    let missing = ErrorResponse::not_found(
        "NotFound",
        format!("The operation '{name}' could not be found."),
    );
    operations::poll(state, req, missing)
}

fn put(
    state: &AppState,
    req: &ArmRequest<'_>,
    id: &str,
    name: &str,
) -> Result<Response, ErrorResponse> {
    let body: Value = parse_body(req)?;
    let valid_name = !name.is_empty()
        && name.len() <= 90
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.()".contains(c));
    if !valid_name {
        return Err(ErrorResponse::bad_request(
            "InvalidResourceGroup",
            format!(
                "The provided resource group name '{name}' has these invalid characters or length."
            ),
        ));
    }
    let Some(location) = body.get("location").and_then(Value::as_str) else {
        return Err(ErrorResponse::bad_request(
            "LocationRequired",
            "The location property is required for this definition.",
        ));
    };
    let location = location.to_string();
    // ARM asks policy before the write reaches the resource provider.
    let mut proposed = json!({"id": id, "name": name, "location": location});
    copy_members(&body, &mut proposed, None, WRITABLE);
    arm_policy::check_deny(state, id, &arm_policy::policy_view(id, &proposed), "PUT")?;
    let written = write(state, id, "resource group", |previous| {
        if let Some(p) = previous {
            let old = p.body.get("location").and_then(Value::as_str).unwrap_or("");
            if !old.eq_ignore_ascii_case(&location) {
                return Err(ErrorResponse::new(
                    StatusCode::CONFLICT,
                    "InvalidResourceGroupLocation",
                    format!("Invalid resource group location '{location}'. The Resource group already exists in location '{old}'."),
                ));
            }
        }
        let mut out = json!({
            "id": id,
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": location,
            "properties": {"provisioningState": "Succeeded"}
        });
        copy_members(&body, &mut out, None, WRITABLE);
        Ok(Change::put(out))
    })?;
    Ok(written.respond())
}

fn patch(
    state: &AppState,
    req: &ArmRequest<'_>,
    id: &str,
    name: &str,
) -> Result<Response, ErrorResponse> {
    let update: Value = parse_body(req)?;
    if let Some(current) = state.store.get(id)? {
        let mut proposed = current.body.clone();
        copy_members(&update, &mut proposed, None, WRITABLE);
        arm_policy::check_deny(state, id, &arm_policy::policy_view(id, &proposed), "PATCH")?;
    }
    let missing = || resource_group_not_found(name);
    let written = modify_existing(state, id, "resource group", missing, |previous| {
        let mut body = previous.body.clone();
        copy_members(&update, &mut body, None, WRITABLE);
        Ok(Change::put(body))
    })?;
    Ok(ok_json(&written.body()))
}
