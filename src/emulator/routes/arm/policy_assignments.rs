//! Policy assignments at any scope: management group, subscription, resource group or resource.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::filter::ScopeFilter;
use super::policy_definitions::{resolve_visible, validation_error, Kind};
use super::scope::{related_to_scope, Scope, ScopeKind};
use super::with_id;
use super::write::{self, copy_members, write};
use super::{
    check_name, empty, error::ErrorResponse, now_rfc3339, ok_json, paging, parse_body, status_json,
    system_data, ArmRequest,
};
use crate::emulator::http::Response;
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::store::{resource_key, Change};
use crate::policy::names::{self, NameProblem};
use crate::policy::validation::check_assignment_parameters;
use crate::policy::ParameterDefinition;

/// ARM type of assignments.
use crate::policy::definition_body::POLICY_ASSIGNMENT_TYPE;
const NAMESPACE_TYPE: &str = "microsoft.authorization/policyassignments";
const PAGE_SIZE: usize = 50;

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let scope = Scope::existing_below_tenant(state, &req.path.scope, "Policy assignments")?;
    let method = &req.http.method;
    match req.path.item_name() {
        Some(name) if method == Method::GET => get(state, req, &scope, name),
        Some(name) if method == Method::PUT => put(state, req, &scope, name),
        Some(name) if method == Method::PATCH => patch(state, req, &scope, name),
        Some(name) if method == Method::DELETE => delete(state, &scope, name),
        None if method == Method::GET => list(state, req, &scope),
        _ => Err(ErrorResponse::method_not_allowed(method)),
    }
}

fn item_id(scope: &Scope, name: &str) -> String {
    format!("{}/providers/{POLICY_ASSIGNMENT_TYPE}/{name}", scope.id)
}

/// ARM's 404 for a missing assignment.
pub(crate) fn not_found(name: &str) -> ErrorResponse {
    ErrorResponse::not_found(
        "PolicyAssignmentNotFound",
        format!("The policy assignment '{name}' is not found."),
    )
}

fn get(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Response, ErrorResponse> {
    match state.store.get(&item_id(scope, name))? {
        Some(stored) => Ok(ok_json(&expand(
            state,
            req,
            with_id(&stored.body, &stored.id),
        )?)),
        None => Err(not_found(name)),
    }
}

/// `$expand=LatestDefinitionVersion, EffectiveDefinitionVersion`: the assigned definition's
/// version (every definition has one; see `policy_definitions`).
fn expand(state: &AppState, req: &ArmRequest<'_>, mut body: Value) -> Result<Value, ErrorResponse> {
    let wanted = req
        .http
        .query_param("$expand")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !wanted.contains("definitionversion") {
        return Ok(body);
    }
    let scope_id = body["properties"]["scope"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let def_id = body["properties"]["policyDefinitionId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let version = match Scope::parse(&scope_id) {
        Ok(scope) => resolve_visible(state, &scope, &def_id)?
            .and_then(|d| d["properties"]["version"].as_str().map(str::to_string)),
        Err(_) => None,
    }
    .unwrap_or_else(|| "1.0.0".to_string());
    if wanted.contains("latestdefinitionversion") {
        body["properties"]["latestDefinitionVersion"] = json!(version);
    }
    if wanted.contains("effectivedefinitionversion") {
        body["properties"]["effectiveDefinitionVersion"] = json!(version);
    }
    Ok(body)
}

fn put(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Response, ErrorResponse> {
    if matches!(scope.kind, ScopeKind::ManagementGroup(_)) {
        let rule = names::MANAGEMENT_GROUP_ASSIGNMENT;
        if let Err(NameProblem::TooLong { max, .. }) = rule.check(name) {
            // Azure's own code and wording for this one limit.
            return Err(ErrorResponse::bad_request(
                "InvalidPolicyAssignmentName",
                format!(
                    "The policy assignment name '{name}' is invalid. The policy assignment name length must not exceed '{max}' characters."
                ),
            ));
        }
        check_name("policy assignment", name, &rule)?;
    } else {
        check_name("policy assignment", name, &names::POLICY_ASSIGNMENT)?;
    }
    let mut body: Value = parse_body(req)?;
    if !body.is_object() {
        return Err(ErrorResponse::bad_request(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: the body must be a JSON object.",
        ));
    }
    if !body.get("properties").is_some_and(Value::is_object) {
        body["properties"] = json!({});
    }
    let definition_id = body
        .pointer("/properties/policyDefinitionId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ErrorResponse::bad_request(
                "InvalidRequestContent",
                "The request content was invalid: 'properties.policyDefinitionId' is required.",
            )
        })?;
    let kind = Kind::of_id(&definition_id);
    let definition = match kind {
        Some(_) => resolve_visible(state, scope, &definition_id)?,
        None => None,
    };
    let Some(definition) = definition else {
        let code = if kind == Some(Kind::SetDefinition) {
            "PolicySetDefinitionNotFound"
        } else {
            "PolicyDefinitionNotFound"
        };
        let what = if kind == Some(Kind::SetDefinition) {
            "policy set definition"
        } else {
            "policy definition"
        };
        return Err(ErrorResponse::bad_request(
            code,
            format!("The {what} '{definition_id}' could not be found."),
        ));
    };
    let declared: Option<std::collections::BTreeMap<String, ParameterDefinition>> = definition
        .pointer("/properties/parameters")
        .and_then(|p| serde_json::from_value(p.clone()).ok());
    let given: Option<Map<String, Value>> = body
        .pointer("/properties/parameters")
        .and_then(Value::as_object)
        .cloned();
    check_assignment_parameters(name, &definition_id, declared.as_ref(), given.as_ref())
        .map_err(validation_error)?;

    check_identity_location(&body)?;
    if let Some(not_scopes) = body
        .pointer("/properties/notScopes")
        .filter(|v| !v.is_null())
    {
        let list = not_scopes.as_array().ok_or_else(|| {
            ErrorResponse::bad_request(
                "InvalidRequestContent",
                "The request content was invalid: 'properties.notScopes' must be an array.",
            )
        })?;
        for entry in list {
            let text = entry.as_str().unwrap_or_default();
            if !scope.contains(state, text)? || resource_key(text) == resource_key(&scope.id) {
                return Err(ErrorResponse::bad_request(
                    "InvalidNotScopes",
                    format!(
                        "The policy assignment '{name}' has an invalid not scope '{text}'. Not scopes must be child scopes of the assignment scope '{}'.",
                        scope.id
                    ),
                ));
            }
        }
    }

    let id = item_id(scope, name);
    let tenant = state.identity.tenant_id.clone();
    let written = write(state, &id, "assignment", |previous| {
        let previous = previous.map(|p| &p.body);
        let mut body = body.clone();
        body["id"] = json!(id);
        body["name"] = json!(name);
        body["type"] = json!(POLICY_ASSIGNMENT_TYPE);
        let props = &mut body["properties"];
        props["scope"] = json!(scope.id);
        if props.get("notScopes").is_none_or(Value::is_null) {
            props["notScopes"] = json!([]);
        }
        if props.get("enforcementMode").is_none_or(Value::is_null) {
            props["enforcementMode"] = json!("Default");
        }
        if req.api_version.as_str() >= "2023-04-01"
            && props.get("definitionVersion").is_none_or(Value::is_null)
        {
            props["definitionVersion"] = json!("1.*.*");
        }
        props["instanceId"] = previous
            .and_then(|p| p.pointer("/properties/instanceId"))
            .cloned()
            .unwrap_or_else(|| json!(new_guid()));
        let mut metadata = props
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let prev_meta = previous.and_then(|p| p.pointer("/properties/metadata"));
        match prev_meta.and_then(|m| m.get("createdBy")) {
            Some(created_by) => {
                metadata.insert("createdBy".into(), created_by.clone());
                if let Some(on) = prev_meta.and_then(|m| m.get("createdOn")) {
                    metadata.insert("createdOn".into(), on.clone());
                }
                metadata.insert("updatedBy".into(), json!(req.principal.oid));
                metadata.insert("updatedOn".into(), json!(now_rfc3339()));
            }
            None => {
                metadata.insert("createdBy".into(), json!(req.principal.oid));
                metadata.insert("createdOn".into(), json!(now_rfc3339()));
                metadata.insert("updatedBy".into(), Value::Null);
                metadata.insert("updatedOn".into(), Value::Null);
            }
        }
        props["metadata"] = Value::Object(metadata);
        fill_identity(&mut body, previous, &tenant);
        body["systemData"] = system_data(req, previous);
        Ok(Change::put(body))
    })?;
    // Azure answers 201 for an update too.
    Ok(status_json(StatusCode::CREATED, &written.body()))
}

/// A managed identity lives in a region, so an assignment that has one needs a location.
fn check_identity_location(body: &Value) -> Result<(), ErrorResponse> {
    let wants_identity = body
        .pointer("/identity/type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.eq_ignore_ascii_case("None"));
    let has_location = body
        .get("location")
        .and_then(Value::as_str)
        .is_some_and(|l| !l.is_empty());
    if wants_identity && !has_location {
        return Err(ErrorResponse::bad_request(
            "LocationRequired",
            "The location property is required for a policy assignment with a managed identity.",
        ));
    }
    Ok(())
}

/// Fills `identity.principalId`/`tenantId` (kept across updates, as Azure keeps the same
/// system-assigned identity) and user-assigned identities' ids.
fn fill_identity(body: &mut Value, previous: Option<&Value>, tenant: &str) {
    let Some(identity) = body.get_mut("identity").and_then(Value::as_object_mut) else {
        return;
    };
    let kind = identity
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("None")
        .to_string();
    if kind.eq_ignore_ascii_case("SystemAssigned") {
        let principal = previous
            .and_then(|p| p.pointer("/identity/principalId"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(new_guid);
        identity.insert("principalId".into(), json!(principal));
        identity.insert("tenantId".into(), json!(tenant));
    } else if kind.eq_ignore_ascii_case("UserAssigned") {
        if let Some(uamis) = identity
            .get_mut("userAssignedIdentities")
            .and_then(Value::as_object_mut)
        {
            for (_, entry) in uamis.iter_mut() {
                if !entry.is_object() {
                    *entry = json!({});
                }
                if entry.get("principalId").is_none_or(Value::is_null) {
                    entry["principalId"] = json!(new_guid());
                }
                if entry.get("clientId").is_none_or(Value::is_null) {
                    entry["clientId"] = json!(new_guid());
                }
            }
        }
    } else {
        identity.remove("principalId");
        identity.remove("tenantId");
    }
}

/// `PATCH`: location, identity and `properties.resourceSelectors` / `overrides`.
fn patch(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Response, ErrorResponse> {
    let tenant = state.identity.tenant_id.clone();
    let id = item_id(scope, name);
    write::patch(
        state,
        req,
        &id,
        "assignment",
        || not_found(name),
        |update, previous, body| {
            copy_members(update, body, None, &["location", "identity"]);
            let patchable = ["resourceSelectors", "overrides"];
            copy_members(update, body, Some("properties"), &patchable);
            check_identity_location(body)?;
            fill_identity(body, Some(previous), &tenant);
            Ok(())
        },
    )
}

fn delete(state: &AppState, scope: &Scope, name: &str) -> Result<Response, ErrorResponse> {
    match state.store.delete(&item_id(scope, name))? {
        Some(stored) => Ok(ok_json(&with_id(&stored.body, &stored.id))),
        None => Ok(empty(StatusCode::NO_CONTENT)),
    }
}

fn list(state: &AppState, req: &ArmRequest<'_>, scope: &Scope) -> Result<Response, ErrorResponse> {
    let filter = ScopeFilter::parse(req.http.query_param("$filter"))?;
    let mut items = Vec::new();
    for r in related_to_scope(state, scope, NAMESPACE_TYPE, filter.relation)? {
        let matches = filter.policy_definition_id.as_deref().is_none_or(|want| {
            r.body
                .pointer("/properties/policyDefinitionId")
                .and_then(Value::as_str)
                .is_some_and(|d| d.eq_ignore_ascii_case(want))
        });
        if matches {
            items.push(expand(state, req, with_id(&r.body, &r.id))?);
        }
    }
    Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
}
