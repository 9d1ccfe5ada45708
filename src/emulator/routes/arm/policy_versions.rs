//! Policy definition and set definition versions (api-version 2023-04-01 and later):
//! `{scope}/providers/Microsoft.Authorization/policy[Set]Definitions/{name}/versions[/{x.y.z}]`
//! and the `listPolicy[Set]DefinitionVersions` actions.
//!
//! Each version is stored below its definition (`{definition id}/versions/{x.y.z}`), so a
//! definition delete takes its versions along. The definition itself always shows its newest
//! version's content and lists every version in `versions`, newest first, as Azure does.
//! Built-ins have exactly the version the catalogue gives them.

use std::cmp::Reverse;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::policy_definitions::{build_body, definition_scope, item_id, Kind};
use super::scope::{Scope, ScopeKind};
use super::with_id;
use super::write::write;
use super::{empty, error::ErrorResponse, ok_json, paging, system_data, ArmRequest};
use crate::emulator::catalogue::find;
use crate::emulator::http::Response;
use crate::emulator::state::AppState;
use crate::emulator::store::{Change, StoredResource};

const PAGE_SIZE: usize = 50;
/// The list-all actions answer in one page.
const LIST_ALL_PAGE_SIZE: usize = 1000;

/// `x.y.z` with decimal parts, as the `^\d+\.\d+\.\d+$` pattern demands.
pub(crate) fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.');
    let mut next = || -> Option<u64> {
        let p = parts.next()?;
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let v = (next()?, next()?, next()?);
    parts.next().is_none().then_some(v)
}

fn version_type(kind: Kind) -> String {
    format!("{}/versions", kind.type_name())
}

fn version_not_found(kind: Kind, name: &str, version: &str) -> ErrorResponse {
    let (code, what) = match kind {
        Kind::Definition => ("PolicyDefinitionVersionNotFound", "policy definition"),
        Kind::SetDefinition => (
            "PolicySetDefinitionVersionNotFound",
            "policy set definition",
        ),
    };
    ErrorResponse::not_found(
        code,
        format!("The {what} '{name}' version '{version}' could not be found."),
    )
}

fn invalid_version(kind: Kind, version: &str) -> ErrorResponse {
    let code = match kind {
        Kind::Definition => "InvalidPolicyDefinitionVersion",
        Kind::SetDefinition => "InvalidPolicySetDefinitionVersion",
    };
    ErrorResponse::bad_request(
        code,
        format!("The version '{version}' is invalid. A version must have the form 'major.minor.patch' with whole numbers, for example '1.0.0'."),
    )
}

/// The version resource of a definition body (its properties without `versions`).
pub(crate) fn version_body(definition: &Value, definition_id: &str, kind: Kind) -> Value {
    let mut properties = definition["properties"].clone();
    if let Some(p) = properties.as_object_mut() {
        p.remove("versions");
    }
    let version = properties["version"]
        .as_str()
        .unwrap_or("1.0.0")
        .to_string();
    let mut body = json!({
        "id": format!("{definition_id}/versions/{version}"),
        "name": version,
        "type": version_type(kind),
        "properties": properties,
    });
    if let Some(system) = definition.get("systemData").filter(|s| s.is_object()) {
        body["systemData"] = system.clone();
    }
    body
}

/// Stored versions of a definition, newest first.
fn stored_versions(
    state: &AppState,
    definition_id: &str,
) -> Result<Vec<StoredResource>, ErrorResponse> {
    let mut versions = state.store.list_children(definition_id, "versions")?;
    versions.sort_by_key(|v| Reverse(parse_version(v.id.rsplit('/').next().unwrap_or_default())));
    Ok(versions)
}

/// The versions of a definition as clients see them: the stored ones, or (for built-ins and
/// definitions written before versions were recorded) the one its body names.
fn versions_of(
    state: &AppState,
    definition: &Value,
    definition_id: &str,
    kind: Kind,
) -> Result<Vec<Value>, ErrorResponse> {
    let stored = stored_versions(state, definition_id)?;
    if stored.is_empty() {
        return Ok(vec![version_body(definition, definition_id, kind)]);
    }
    Ok(stored
        .into_iter()
        .map(|v| with_id(&v.body, &v.id))
        .collect())
}

/// Records the version a definition PUT carries and brings the definition in line with its
/// versions; returns the definition as stored afterwards.
pub(crate) fn record_put(
    state: &AppState,
    definition: &StoredResource,
    kind: Kind,
) -> Result<StoredResource, ErrorResponse> {
    let body = version_body(&definition.body, &definition.id, kind);
    let id = body["id"].as_str().unwrap_or_default().to_string();
    state.store.put(&id, body)?;
    refresh_definition(state, &definition.id)?
        .ok_or_else(|| ErrorResponse::internal("definition vanished while recording its version"))
}

/// Makes the definition show its newest version and list them all, newest first.
fn refresh_definition(
    state: &AppState,
    definition_id: &str,
) -> Result<Option<StoredResource>, ErrorResponse> {
    let versions = stored_versions(state, definition_id)?;
    let names: Vec<String> = versions
        .iter()
        .filter_map(|v| v.id.rsplit('/').next().map(str::to_string))
        .collect();
    let (_, after) = state
        .store
        .modify::<ErrorResponse, _>(definition_id, |current| {
            let (Some(current), Some(newest)) = (current, versions.first()) else {
                return Ok(Change::Keep);
            };
            let mut body = current.body.clone();
            let mut properties = newest.body["properties"].clone();
            properties["versions"] = json!(names);
            body["properties"] = properties;
            if body == current.body {
                return Ok(Change::Keep);
            }
            Ok(Change::Settle {
                body,
                internal: current.internal.clone(),
            })
        })?;
    Ok(after)
}

/// The definition named by a versions path, with its id in stored casing; `builtin` when it
/// comes from the catalogue.
struct Target {
    id: String,
    body: Value,
    builtin: bool,
}

fn target(
    state: &AppState,
    scope: &Scope,
    kind: Kind,
    name: &str,
) -> Result<Option<Target>, ErrorResponse> {
    if scope.kind != ScopeKind::Tenant {
        if let Some(stored) = state.store.get(&item_id(scope, kind, name))? {
            return Ok(Some(Target {
                id: stored.id.clone(),
                body: with_id(&stored.body, &stored.id),
                builtin: false,
            }));
        }
    }
    Ok(find(kind.entries(state), name).map(|e| Target {
        id: e.body["id"].as_str().unwrap_or_default().to_string(),
        body: e.body.clone(),
        builtin: true,
    }))
}

/// `.../policy[Set]Definitions/{name}/versions[/{x.y.z}]`.
pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let kind = Kind::of_path(&req.path);
    let scope = definition_scope(req)?;
    scope.ensure_exists(state)?;
    let method = &req.http.method;
    let (name, version) = match req.path.names.as_slice() {
        [name] => (name.as_str(), None),
        [name, version] => (name.as_str(), Some(version.as_str())),
        _ => return Err(ErrorResponse::method_not_allowed(method)),
    };
    let Some(target) = target(state, &scope, kind, name)? else {
        return Err(kind.not_found(name));
    };
    match version {
        None if method == Method::GET => {
            let items = versions_of(state, &target.body, &target.id, kind)?;
            Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
        }
        Some(v) if method == Method::GET => versions_of(state, &target.body, &target.id, kind)?
            .into_iter()
            .find(|b| b["name"].as_str() == Some(v))
            .map(|b| ok_json(&b))
            .ok_or_else(|| version_not_found(kind, name, v)),
        Some(v) if method == Method::PUT && !target.builtin => {
            put(state, req, &scope, kind, &target, name, v)
        }
        Some(v) if method == Method::DELETE && !target.builtin => {
            delete(state, kind, &target, name, v)
        }
        _ => Err(ErrorResponse::method_not_allowed(method)),
    }
}

fn put(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    kind: Kind,
    target: &Target,
    name: &str,
    version: &str,
) -> Result<Response, ErrorResponse> {
    if parse_version(version).is_none() {
        return Err(invalid_version(kind, version));
    }
    // Validated exactly like a definition PUT, then keyed by the path's version.
    let mut definition = build_body(state, req, scope, kind, &target.id, name)?;
    if let Some(given) = definition["properties"]["version"].as_str() {
        let explicit = serde_json::from_slice::<Value>(&req.http.body)
            .ok()
            .is_some_and(|b| b.pointer("/properties/version").is_some());
        if explicit && given != version {
            return Err(ErrorResponse::bad_request(
                "InvalidRequestContent",
                format!("The version '{given}' in the request body does not match the version '{version}' in the request path."),
            ));
        }
    }
    definition["properties"]["version"] = json!(version);
    let mut body = version_body(&definition, &target.id, kind);
    let id = format!("{}/versions/{version}", target.id);
    let written = write(state, &id, "version", |previous| {
        body["systemData"] = system_data(req, previous.map(|p| &p.body));
        Ok(Change::put(body.clone()))
    })?;
    // A definition written before versions were recorded keeps its own version too.
    if stored_versions(state, &target.id)?.len() == 1 && written.created {
        let own = version_body(&target.body, &target.id, kind);
        if own["name"].as_str() != Some(version) {
            let own_id = own["id"].as_str().unwrap_or_default().to_string();
            state
                .store
                .modify::<ErrorResponse, _>(&own_id, |existing| {
                    Ok(match existing {
                        Some(_) => Change::Keep,
                        None => Change::put(own.clone()),
                    })
                })?;
        }
    }
    refresh_definition(state, &target.id)?;
    Ok(written.respond())
}

fn delete(
    state: &AppState,
    kind: Kind,
    target: &Target,
    name: &str,
    version: &str,
) -> Result<Response, ErrorResponse> {
    let id = format!("{}/versions/{version}", target.id);
    let stored = stored_versions(state, &target.id)?;
    let exists = stored
        .iter()
        .any(|v| v.id.rsplit('/').next() == Some(version));
    if !exists {
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    if stored.len() == 1 {
        let (code, what) = match kind {
            Kind::Definition => (
                "InvalidDeletePolicyDefinitionVersionRequest",
                "policy definition",
            ),
            Kind::SetDefinition => (
                "InvalidDeletePolicySetDefinitionVersionRequest",
                "policy set definition",
            ),
        };
        return Err(ErrorResponse::bad_request(
            code,
            format!("The version '{version}' is the only version of the {what} '{name}'; delete the {what} instead."),
        ));
    }
    state.store.delete(&id)?;
    refresh_definition(state, &target.id)?;
    Ok(empty(StatusCode::OK))
}

/// `POST {scope}/providers/Microsoft.Authorization/listPolicy[Set]DefinitionVersions`: every
/// version of every definition at the scope (built-ins at tenant scope).
pub(crate) fn list_all(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let kind = Kind::of_path(&req.path);
    req.allow_if(req.http.method == Method::POST && req.path.names.is_empty())?;
    let scope = definition_scope(req)?;
    scope.ensure_exists(state)?;
    let mut items = Vec::new();
    if scope.kind == ScopeKind::Tenant {
        for entry in kind.entries(state) {
            let id = entry.body["id"].as_str().unwrap_or_default();
            items.extend(versions_of(state, &entry.body, id, kind)?);
        }
    } else {
        for stored in state
            .store
            .list_children(&scope.id, &format!("providers/{}", kind.type_name()))?
        {
            items.extend(versions_of(state, &stored.body, &stored.id, kind)?);
        }
    }
    Ok(ok_json(&paging::page(items, req, LIST_ALL_PAGE_SIZE)?))
}

#[cfg(test)]
mod tests {
    use super::super::resource_types::{POLICY_API_VERSIONS, VERSION_API_VERSIONS};
    use super::*;

    #[test]
    fn definition_versions_start_with_2023_04_01() {
        assert!(POLICY_API_VERSIONS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(VERSION_API_VERSIONS.first(), Some(&"2023-04-01"));
        assert_eq!(VERSION_API_VERSIONS.last(), POLICY_API_VERSIONS.last());
    }

    #[test]
    fn versions_follow_the_pattern_and_order_numerically() {
        assert_eq!(parse_version("1.2.3"), Some((1, 2, 3)));
        assert_eq!(parse_version("10.0.0"), Some((10, 0, 0)));
        for bad in ["1.2", "1.2.3.4", "1.*.*", "a.b.c", "1..2", "", "1.2.-3"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
        assert!(parse_version("10.0.0") > parse_version("9.9.9"));
    }

    #[test]
    fn version_body_drops_the_versions_list() {
        let def = json!({"id": "/x/providers/Microsoft.Authorization/policyDefinitions/d",
            "properties": {"version": "2.0.0", "versions": ["2.0.0", "1.0.0"], "mode": "All"},
            "systemData": {"createdBy": "a"}});
        let v = version_body(
            &def,
            "/x/providers/Microsoft.Authorization/policyDefinitions/d",
            Kind::Definition,
        );
        assert_eq!(v["name"], "2.0.0");
        assert_eq!(
            v["type"],
            "Microsoft.Authorization/policyDefinitions/versions"
        );
        assert!(v["properties"].get("versions").is_none());
        assert_eq!(v["systemData"]["createdBy"], "a");
        assert!(v["id"]
            .as_str()
            .is_some_and(|i| i.ends_with("/d/versions/2.0.0")));
    }
}
