//! The emulator's own control API under `/_emulator/` (same bearer tokens as ARM):
//! `GET|POST /_emulator/faults`, `GET|PUT /_emulator/evaluation` (Gatekeeper's evaluation
//! deadline and external data providers' answers), `GET /_emulator/metrics`, `GET /_emulator/state`,
//! `POST /_emulator/reset`, and each cluster's Gatekeeper:
//! `POST /_emulator/admission{clusterId}` (an `admission.k8s.io/v1` AdmissionReview in, one
//! out, like a validating webhook) and `GET /_emulator/admission{clusterId}` (constraints,
//! admitted objects, audit results).

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::arm::{authenticate, ErrorResponse};
use crate::emulator::faults::FaultPatch;
use crate::emulator::http::{json_response, Request, Response};
use crate::emulator::state::{subscription_body, AppState, EvaluationSettings};
use crate::emulator::token::Claims;

/// True for `/_emulator/...`.
pub(crate) fn matches(segments: &[String]) -> bool {
    segments.first().is_some_and(|s| s == "_emulator")
}

pub(crate) fn handle(state: &AppState, req: &Request, segments: &[String]) -> Response {
    authenticate(state, req)
        .and_then(|principal| dispatch(state, req, segments, &principal))
        .unwrap_or_else(ErrorResponse::into_response)
}

fn dispatch(
    state: &AppState,
    req: &Request,
    segments: &[String],
    principal: &Claims,
) -> Result<Response, ErrorResponse> {
    let what = segments.get(1).map(String::as_str).unwrap_or_default();
    match (what, &req.method) {
        ("faults", &Method::GET) => Ok(ok(&profile_json(state))),
        ("faults", &Method::POST) => {
            let patch: FaultPatch = parse(req, "fault profile")?;
            let mut guard = write_lock(&state.faults);
            guard
                .apply(&patch)
                .map_err(|e| ErrorResponse::bad_request("InvalidRequestContent", e))?;
            drop(guard);
            log::info!("fault profile now {:?}", state.fault_profile());
            Ok(ok(&profile_json(state)))
        }
        ("evaluation", &Method::GET) => Ok(ok(&evaluation_json(state))),
        ("evaluation", &Method::PUT) => {
            let settings: EvaluationSettings = parse(req, "evaluation settings")?;
            settings
                .validate()
                .map_err(|e| ErrorResponse::bad_request("InvalidRequestContent", e))?;
            *write_lock(&state.evaluation) = settings;
            Ok(ok(&evaluation_json(state)))
        }
        ("metrics", &Method::GET) => Ok(ok(&state.observer.metrics_json())),
        ("state", &Method::GET) => {
            let resources: Vec<Value> = state
                .store
                .list_prefix("")?
                .into_iter()
                .map(|r| {
                    json!({"id": r.id, "etag": r.etag, "createdAt": r.created_at,
                        "updatedAt": r.updated_at, "body": r.body})
                })
                .collect();
            Ok(ok(
                &json!({"faults": profile_json(state), "resources": resources}),
            ))
        }
        ("reset", &Method::POST) => {
            state.store.clear_resources()?;
            let identity = &state.identity;
            state.store.put(
                &format!("/subscriptions/{}", identity.subscription_id),
                subscription_body(&identity.subscription_id, &identity.tenant_id),
            )?;
            state.observer.clear();
            *write_lock(&state.faults) = state.startup_faults.clone();
            *write_lock(&state.evaluation) = Default::default();
            log::info!("state reset");
            Ok(ok(&json!({"reset": true})))
        }
        ("admission", m) if *m == Method::POST || *m == Method::GET => {
            let cluster_id: String = segments[2..].iter().map(|s| format!("/{s}")).collect();
            if *m == Method::GET {
                return Ok(ok(&crate::emulator::gatekeeper::describe(
                    state,
                    &cluster_id,
                )?));
            }
            let review: Value = parse(req, "AdmissionReview")?;
            Ok(ok(&crate::emulator::gatekeeper::admit(
                state,
                &cluster_id,
                &review,
                &principal.oid,
            )?))
        }
        ("faults" | "evaluation" | "metrics" | "state" | "reset" | "admission", m) => {
            Err(ErrorResponse::method_not_allowed(m))
        }
        _ => Err(ErrorResponse::not_found(
            "NotFound",
            format!("No emulator control route '{}'.", req.path),
        )),
    }
}

fn evaluation_json(state: &AppState) -> Value {
    let settings = match state.evaluation.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    serde_json::to_value(settings).unwrap_or(Value::Null)
}

fn profile_json(state: &AppState) -> Value {
    serde_json::to_value(state.fault_profile()).unwrap_or(Value::Null)
}

/// The request body as JSON, or a 400 naming `what` it should have been.
fn parse<T: serde::de::DeserializeOwned>(req: &Request, what: &str) -> Result<T, ErrorResponse> {
    serde_json::from_slice(&req.body).map_err(|e| {
        ErrorResponse::bad_request("InvalidRequestContent", format!("Invalid {what}: {e}"))
    })
}

/// Write access to shared settings, poisoned or not: the control API must stay usable after
/// a handler panicked while holding the lock.
fn write_lock<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}
