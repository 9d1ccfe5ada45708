//! Top-level routing: metadata, the managed identity endpoint, the OIDC issuer, Entra ID and the
//! template store need no token; everything else is ARM.

pub(crate) mod aad;
pub(crate) mod arm;
pub(crate) mod control;
pub(crate) mod identity;
pub(crate) mod metadata;
pub(crate) mod templates;

use std::sync::Arc;

use super::http::{Request, Response};
use super::state::AppState;

/// Whether a request needs a bearer token: everything but metadata, managed identity, the OIDC
/// issuer, Entra ID and the public template store.
pub(crate) fn needs_token(segments: &[String]) -> bool {
    !(metadata::matches(segments)
        || identity::matches(segments)
        || aad::matches(segments)
        || templates::matches(segments))
}

/// The 401 a request without a valid token gets (counted in the metrics like any answer), or
/// `None` when its token is good. Runs before the body is read.
pub(crate) fn refuse_unauthenticated(
    state: &AppState,
    req: &Request,
    segments: &[String],
) -> Option<Response> {
    let error = arm::authenticate(state, req).err()?;
    let mut resp = error.into_response();
    arm::add_arm_headers(state, req, &mut resp);
    let template = super::observe::route_template(segments);
    state
        .observer
        .record(req.method.as_str(), &template, resp.status().as_u16());
    Some(resp)
}

/// Dispatches one request and counts it in the metrics. As ARM does, the emulator finishes a
/// request it has received even when its client goes away: the work and its count run in a
/// task of their own, which a dropped connection does not cancel.
pub(crate) async fn route(state: &Arc<AppState>, req: Request) -> Response {
    let worker = state.clone();
    let (resp, response_delay_ms) =
        match tokio::spawn(async move { serve(&worker, req).await }).await {
            Ok(answer) => answer,
            Err(e) => {
                log::error!("request handler failed: {e}");
                (internal_error(), 0)
            }
        };
    if response_delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(response_delay_ms)).await;
    }
    resp
}

/// The answer to one request, counted in the metrics, and how long to hold it back.
async fn serve(state: &Arc<AppState>, req: Request) -> (Response, u64) {
    let segments = req.segments();
    let template = super::observe::route_template(&segments);
    let method = req.method.clone();
    let (resp, response_delay_ms) = if metadata::matches(&segments) {
        (metadata::handle(state, &req), 0)
    } else if identity::matches(&segments) {
        (identity::handle(state, &req, &segments), 0)
    } else if aad::matches(&segments) {
        (aad::handle(state, &req, &segments), 0)
    } else if templates::matches(&segments) {
        (templates::handle(state, &req, &segments), 0)
    } else if control::matches(&segments) {
        (
            off_async_workers(state, req, segments, control::handle).await,
            0,
        )
    } else {
        let profile = state.fault_profile();
        if profile.latency_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(profile.latency_ms)).await;
        }
        let mut resp = off_async_workers(state, req, segments, arm::handle).await;
        if super::faults::chance(profile.drop_rate) {
            resp.extensions_mut().insert(super::http::DropConnection);
        }
        (resp, profile.response_delay_ms)
    };
    // Counted before the response delay: the request took effect even when its client is gone
    // before the answer arrives.
    state
        .observer
        .record(method.as_str(), &template, resp.status().as_u16());
    (resp, response_delay_ms)
}

type Handler = fn(&AppState, &Request, &[String]) -> Response;

/// Runs a handler on the blocking pool: admission, audit and policy states evaluate Rego for
/// up to seconds, and must not hold up the async workers that serve every other client.
async fn off_async_workers(
    state: &Arc<AppState>,
    req: Request,
    segments: Vec<String>,
    handler: Handler,
) -> Response {
    let state = state.clone();
    match tokio::task::spawn_blocking(move || handler(&state, &req, &segments)).await {
        Ok(resp) => resp,
        Err(e) => {
            log::error!("request handler failed: {e}");
            internal_error()
        }
    }
}

fn internal_error() -> Response {
    super::http::json_response(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        &serde_json::json!({"error": {"code": "InternalServerError",
            "message": "The emulator failed while handling the request."}}),
    )
}
