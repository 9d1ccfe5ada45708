//! Azure Resource Manager surface: authentication, api-version checks, standard response
//! headers, and dispatch to per-resource-type handlers through [`RESOURCE_TYPES`].
//!
//! Adding a resource type = one handler module + one row (and its api-versions) in
//! [`RESOURCE_TYPES`].
//!
//! Beside the handler modules: [`resource_types`] is the routing table (types, every
//! api-version list), [`auth`] verifies bearer tokens, [`response`] builds ARM's headers and
//! bodies, [`write`](mod@write) does a PUT's or PATCH's read-decide-write and its answer,
//! [`operations`] keeps the timer-backed long-running operations, [`names`] holds ARM's name
//! rules.

mod auth;
mod names;
mod resource_types;
mod response;

mod deployments;
mod error;
mod filter;
mod managed_clusters;
mod management_groups;
mod operations;
mod paging;
mod path;
mod policy_assignments;
mod policy_definitions;
mod policy_exemptions;
mod policy_states;
mod policy_versions;
mod remediations;
mod resource_groups;
mod role_assignments;
mod scope;
mod subscriptions;
mod tenants;
mod write;

pub(crate) use auth::authenticate;
pub(crate) use error::ErrorResponse;
pub(crate) use managed_clusters::{clusters_under, policy_addon_enabled, settle as settle_cluster};
pub(crate) use names::check_name;
pub(crate) use path::ArmPath;
pub(crate) use policy_definitions::resolve_visible;
pub(crate) use resource_types::{
    latest_api_version, resource_type_of, supports_api_version, RESOURCE_TYPES,
};
pub(crate) use response::{
    add_arm_headers, empty, now_ms, now_rfc3339, ok_json, parse_body, status_json, system_data,
    with_id,
};
pub(crate) use scope::{stored_of_type, Scope};

use http::{Method, StatusCode};

use crate::emulator::faults::chance;
use crate::emulator::http::{Request, Response};
use crate::emulator::observe::{OperationKind, Throttle};
use crate::emulator::state::AppState;
use crate::emulator::token::Claims;
use resource_types::{no_provider, unknown_type, ResourceTypeSpec};
use response::RemainingBudget;
use std::future::Future;

/// A request that passed authentication and api-version checks.
pub(crate) struct ArmRequest<'a> {
    pub http: &'a Request,
    pub path: ArmPath,
    pub api_version: String,
    /// The caller's token claims (for `AuthorizationFailed` texts and `systemData`).
    pub principal: Claims,
}

impl ArmRequest<'_> {
    /// ARM's `MethodNotAllowed` unless `allowed`: its answer for a method, or a path shape, a
    /// resource type does not serve.
    pub(crate) fn allow_if(&self, allowed: bool) -> Result<(), ErrorResponse> {
        if allowed {
            Ok(())
        } else {
            Err(ErrorResponse::method_not_allowed(&self.http.method))
        }
    }

    /// The existing scope a `POST` action (`triggerEvaluation`, `abort`) runs at.
    pub(crate) fn action_scope(&self, state: &AppState) -> Result<Scope, ErrorResponse> {
        self.allow_if(self.http.method == Method::POST)?;
        Scope::existing(state, &self.path.scope)
    }
}

/// Handles an ARM request end to end, always adding ARM's response headers.
pub(crate) fn handle(state: &AppState, req: &Request, segments: &[String]) -> Response {
    let mut resp = match dispatch(state, req, segments) {
        Ok(resp) => resp,
        Err(e) => {
            if e.status.is_server_error() {
                log::error!("{} {}: {}", req.method, req.path, e.message);
            }
            e.into_response()
        }
    };
    add_arm_headers(state, req, &mut resp);
    resp
}

fn dispatch(
    state: &AppState,
    req: &Request,
    segments: &[String],
) -> Result<Response, ErrorResponse> {
    let principal = authenticate(state, req)?;
    let api_version = match req.query_param("api-version") {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => return Err(ErrorResponse::missing_api_version()),
    };
    let path = ArmPath::parse(segments).ok_or_else(|| no_provider(&api_version, &req.path))?;
    let spec = spec_serving(&path, &api_version)?;
    let profile = state.fault_profile();
    let kind = OperationKind::of(&req.method);
    let subscription = match segments {
        [s, id, ..] if s.eq_ignore_ascii_case("subscriptions") => id.clone(),
        _ => "tenant".to_string(),
    };
    let mut remaining = None;
    if profile.throttle {
        let taken = state.observer.take(&subscription, &principal.oid, kind);
        if let Throttle::Allowed(left) = taken {
            remaining = Some(RemainingBudget(left));
        }
        if let Throttle::Refused(secs) = taken {
            let mut e = ErrorResponse::new(
                StatusCode::TOO_MANY_REQUESTS,
                "SubscriptionRequestsThrottled",
                format!(
                    "Number of '{}' requests for subscription '{subscription}' actor '{}' exceeded. Please try again after '{secs}' seconds after the additional tokens are available. Refer to https://aka.ms/arm-throttling",
                    kind.label().trim_end_matches('s'),
                    principal.oid
                ),
            );
            e.extra_mut().retry_after = Some(secs);
            e.extra_mut().injected = true;
            return Err(e);
        }
    }
    if profile.authorization_requests_per_minute > 0
        && path
            .namespace
            .eq_ignore_ascii_case("Microsoft.Authorization")
    {
        let limit = profile.authorization_requests_per_minute;
        if let Throttle::Refused(secs) = state.observer.take_provider(
            &path.namespace,
            &principal.oid,
            limit,
            std::time::Duration::from_secs(60),
        ) {
            let mut e = ErrorResponse::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ResourceRequestsThrottled",
                format!(
                    "Number of requests for Microsoft.Authorization exceeded the limit of '{limit}' for time interval '00:01:00'. Please try again after '{secs}' seconds."
                ),
            );
            e.extra_mut().retry_after = Some(secs);
            e.extra_mut().injected = true;
            return Err(e);
        }
    }
    if chance(profile.error_rate) {
        let mut e = if chance(0.5) {
            ErrorResponse::internal(
                "Encountered internal server error (injected by the emulator's error_rate).",
            )
        } else {
            ErrorResponse::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable (injected by the emulator's error_rate).",
            )
        };
        e.extra_mut().retry_after = Some(1);
        e.extra_mut().injected = true;
        return Err(e);
    }
    let key = crate::emulator::store::resource_key(&path.resource_id());
    if req.method == Method::GET
        && path.is_item()
        && profile.consistency_ms > 0
        && state.observer.within_window(
            &key,
            std::time::Duration::from_millis(profile.consistency_ms),
        )
    {
        let mut e = ErrorResponse::not_found(
            "ResourceNotFound",
            format!(
                "The Resource '{}' was not found (eventual consistency window of the emulator).",
                path.resource_id()
            ),
        );
        e.extra_mut().injected = true;
        return Err(e);
    }
    let arm_req = ArmRequest {
        http: req,
        path,
        api_version,
        principal,
    };
    let mut resp = (spec.handler)(state, &arm_req)?;
    if req.method == Method::PUT && resp.status().is_success() {
        state.observer.wrote(&key);
    }
    if let Some(r) = remaining {
        resp.extensions_mut().insert(r);
    }
    Ok(resp)
}

/// The routing-table row for `path`, or ARM's error for a type it does not know or an
/// api-version the type does not have.
fn spec_serving(
    path: &ArmPath,
    api_version: &str,
) -> Result<&'static ResourceTypeSpec, ErrorResponse> {
    let key = path.type_key();
    let Some(spec) = RESOURCE_TYPES.iter().find(|s| s.key == key) else {
        return Err(unknown_type(path, api_version));
    };
    if !spec.api_versions.contains(&api_version) {
        return Err(ErrorResponse::invalid_api_version(
            api_version,
            &format!("{}/{}", path.namespace, path.type_display()),
            spec.api_versions,
        ));
    }
    Ok(spec)
}

/// A request ARM makes on a caller's behalf inside a deployment: routed like any other, with
/// the caller's claims and the template's api-version, but without throttling or injected
/// faults (the deployment as a whole met those already). Returns the status and JSON body.
pub(crate) fn internal_call(
    state: &AppState,
    on_behalf: &ArmRequest<'_>,
    principal: &Claims,
    method: Method,
    id: &str,
    api_version: &str,
    body: Option<&serde_json::Value>,
) -> Result<(StatusCode, serde_json::Value), ErrorResponse> {
    let path = ArmPath::parse_id(id).ok_or_else(|| no_provider(api_version, id))?;
    let spec = spec_serving(&path, api_version)?;
    let http_req = Request {
        method,
        path: id.to_string(),
        query: vec![("api-version".to_string(), api_version.to_string())],
        headers: http::HeaderMap::new(),
        body: body
            .map(|b| bytes::Bytes::from(b.to_string()))
            .unwrap_or_default(),
        base_url: on_behalf.http.base_url.clone(),
    };
    let arm_req = ArmRequest {
        http: &http_req,
        path,
        api_version: api_version.to_string(),
        principal: principal.clone(),
    };
    let resp = (spec.handler)(state, &arm_req)?;
    let status = resp.status();
    let bytes = body_bytes(resp.into_body());
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, value))
}

/// The bytes of a complete in-memory body (every handler answers with one).
fn body_bytes(body: http_body_util::Full<bytes::Bytes>) -> bytes::Bytes {
    use http_body_util::BodyExt;
    let mut fut = std::pin::pin!(body.collect());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(collected)) => collected.to_bytes(),
        _ => bytes::Bytes::new(),
    }
}
