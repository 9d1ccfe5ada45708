//! Policy exemptions (preview api-versions only; Azure has no stable one).

use std::time::SystemTime;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::filter::ScopeFilter;
use super::policy_definitions::Kind;
use super::resolve_visible;
use super::scope::{related_to_scope, Scope};
use super::with_id;
use super::write::{self, copy_members, write};
use super::{
    check_name, empty, error::ErrorResponse, ok_json, paging, parse_body, system_data, ArmRequest,
};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;
use crate::emulator::store::{Change, StoredResource};
use crate::policy::names;

use crate::policy::definition_body::POLICY_EXEMPTION_TYPE;
const NAMESPACE_TYPE: &str = "microsoft.authorization/policyexemptions";
const CATEGORIES: &[&str] = &["Waiver", "Mitigated"];
const PAGE_SIZE: usize = 50;

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let scope = Scope::existing_below_tenant(state, &req.path.scope, "Policy exemptions")?;
    let method = &req.http.method;
    match req.path.item_name() {
        Some(name) if method == Method::GET => match state.store.get(&item_id(&scope, name))? {
            Some(stored) => Ok(ok_json(&with_id(&stored.body, &stored.id))),
            None => Err(not_found(name)),
        },
        Some(name) if method == Method::PUT => put(state, req, &scope, name),
        Some(name) if method == Method::PATCH => patch(state, req, &scope, name),
        Some(name) if method == Method::DELETE => {
            match state.store.delete(&item_id(&scope, name))? {
                Some(_) => Ok(empty(StatusCode::OK)),
                None => Ok(empty(StatusCode::NO_CONTENT)),
            }
        }
        None if method == Method::GET => list(state, req, &scope),
        _ => Err(ErrorResponse::method_not_allowed(method)),
    }
}

fn item_id(scope: &Scope, name: &str) -> String {
    format!("{}/providers/{POLICY_EXEMPTION_TYPE}/{name}", scope.id)
}

fn not_found(name: &str) -> ErrorResponse {
    ErrorResponse::not_found(
        "PolicyExemptionNotFound",
        format!("The policy exemption '{name}' is not found."),
    )
}

fn put(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Response, ErrorResponse> {
    check_name("policy exemption", name, &names::POLICY_EXEMPTION)?;
    let body: Value = parse_body(req)?;
    let invalid =
        |msg: String| ErrorResponse::bad_request("InvalidCreatePolicyExemptionRequest", msg);
    let assignment_id = body
        .pointer("/properties/policyAssignmentId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(format!(
                "The policy exemption '{name}' must name a 'policyAssignmentId'."
            ))
        })?
        .to_string();
    let category = body
        .pointer("/properties/exemptionCategory")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !CATEGORIES.iter().any(|c| c.eq_ignore_ascii_case(category)) {
        return Err(invalid(format!(
            "The policy exemption '{name}' has an invalid exemption category '{category}'. Allowed values: Waiver, Mitigated."
        )));
    }
    if let Some(expires) = body.pointer("/properties/expiresOn") {
        if !expires.is_null() && expires.as_str().and_then(parse_time).is_none() {
            return Err(invalid(format!(
                "The policy exemption '{name}' has an invalid 'expiresOn' value '{expires}'."
            )));
        }
    }
    let validate_scope = !body
        .pointer("/properties/assignmentScopeValidation")
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("DoNotValidate"));
    let Some(assignment) = state.store.get(&assignment_id)? else {
        return Err(ErrorResponse::bad_request(
            "PolicyAssignmentNotFound",
            format!("The policy assignment '{assignment_id}' is not found."),
        ));
    };
    if validate_scope {
        let assignment_scope = assignment
            .body
            .pointer("/properties/scope")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !Scope::parse(assignment_scope)?.contains(state, &scope.id)? {
            return Err(invalid(format!(
                "The policy exemption '{name}' scope '{}' is not within the scope '{assignment_scope}' of policy assignment '{assignment_id}'.",
                scope.id
            )));
        }
    }
    check_reference_ids(state, &body, &assignment, name)?;
    let id = item_id(scope, name);
    let written = write(state, &id, "exemption", |previous| {
        let mut body = body.clone();
        body["id"] = json!(id);
        body["name"] = json!(name);
        body["type"] = json!(POLICY_EXEMPTION_TYPE);
        if body
            .pointer("/properties/policyDefinitionReferenceIds")
            .is_none()
        {
            body["properties"]["policyDefinitionReferenceIds"] = json!([]);
        }
        body["systemData"] = system_data(req, previous.map(|p| &p.body));
        Ok(Change::put(body))
    })?;
    Ok(written.respond())
}

/// `policyDefinitionReferenceIds` must name members of the assigned initiative (compared
/// case-insensitively); an assignment of a single definition takes none.
fn check_reference_ids(
    state: &AppState,
    body: &Value,
    assignment: &StoredResource,
    name: &str,
) -> Result<(), ErrorResponse> {
    let requested: Vec<&str> = body
        .pointer("/properties/policyDefinitionReferenceIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if requested.is_empty() {
        return Ok(());
    }
    // Azure's code is not in the reference material or the captured examples; this is the
    // name its error enumerations use for a bad reference id.
    let invalid =
        |message: String| ErrorResponse::bad_request("InvalidPolicyDefinitionReferenceId", message);
    let props = &assignment.body["properties"];
    let definition_id = props["policyDefinitionId"].as_str().unwrap_or_default();
    if Kind::of_id(definition_id) != Some(Kind::SetDefinition) {
        return Err(invalid(format!(
            "The policy exemption '{name}' specifies policy definition reference ids, but the policy assignment '{}' does not assign a policy set definition.",
            assignment.id
        )));
    }
    let assignment_scope = Scope::parse(props["scope"].as_str().unwrap_or_default())?;
    let members: Vec<String> = resolve_visible(state, &assignment_scope, definition_id)?
        .map(|set| {
            set["properties"]["policyDefinitions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["policyDefinitionReferenceId"].as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for reference in requested {
        if !members.iter().any(|m| m.eq_ignore_ascii_case(reference)) {
            return Err(invalid(format!(
                "The policy exemption '{name}' references the policy definition reference id '{reference}', which is not a member of the policy set definition '{definition_id}' assigned by '{}'.",
                assignment.id
            )));
        }
    }
    Ok(())
}

fn patch(
    state: &AppState,
    req: &ArmRequest<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Response, ErrorResponse> {
    let id = item_id(scope, name);
    write::patch(
        state,
        req,
        &id,
        "exemption",
        || not_found(name),
        |update, _, body| {
            let patchable = ["resourceSelectors", "assignmentScopeValidation"];
            copy_members(update, body, Some("properties"), &patchable);
            Ok(())
        },
    )
}

fn list(state: &AppState, req: &ArmRequest<'_>, scope: &Scope) -> Result<Response, ErrorResponse> {
    let filter = ScopeFilter::parse(req.http.query_param("$filter"))?;
    let now = SystemTime::now();
    let items = related_to_scope(state, scope, NAMESPACE_TYPE, filter.relation)?
        .into_iter()
        .filter(|r| {
            filter.policy_assignment_id.as_deref().is_none_or(|want| {
                r.body
                    .pointer("/properties/policyAssignmentId")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.eq_ignore_ascii_case(want))
            })
        })
        .filter(|r| {
            !filter.exclude_expired
                || r.body
                    .pointer("/properties/expiresOn")
                    .and_then(Value::as_str)
                    .and_then(parse_time)
                    .is_none_or(|t| t > now)
        })
        .map(|r| with_id(&r.body, &r.id))
        .collect();
    Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
}

/// RFC 3339 with `Z` or a numeric offset (`+00:00`), fractional seconds optional.
fn parse_time(text: &str) -> Option<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')) {
        // Weak parsing ignores zones; ARM writes UTC.
        return Some(t);
    }
    let (base, offset) = text
        .rsplit_once(['+', '-'])
        .filter(|(_, o)| o.contains(':'))?;
    let t = humantime::parse_rfc3339_weak(base).ok()?;
    let (h, m) = offset.split_once(':')?;
    let secs = h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
    let delta = std::time::Duration::from_secs(secs);
    if text[base.len()..].starts_with('+') {
        t.checked_sub(delta)
    } else {
        t.checked_add(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arm_times() {
        let z = parse_time("2026-01-01T00:00:00Z").expect("z");
        let off = parse_time("2026-01-01T01:00:00+01:00").expect("offset");
        assert_eq!(z, off);
        assert!(parse_time("2026-01-01T00:00:00.1234567Z").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
