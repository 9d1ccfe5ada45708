//! Timer-backed operation records for the long-running operations whose effect the emulator
//! applies at once (resource group delete, management group create, policy evaluation): the
//! record keeps when the operation "ends", and its status URLs answer "running" until then.
//! Applying the effect first means no reader ever sees a half-applied change; only the
//! protocol (202, `Location`, `Azure-AsyncOperation`, `Retry-After`) is long-running.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::managed_clusters::set_header;
use super::{empty, error::ErrorResponse, now_ms, ArmRequest};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;
use crate::emulator::store::{Change, StoredResource};

/// Stores (or replaces) the record at `id`, ending `lro_ms` from now; `body` is kept for the
/// status responses.
pub(crate) fn start(state: &AppState, id: &str, body: Value) -> Result<(), ErrorResponse> {
    let done_ms = now_ms().saturating_add(state.fault_profile().lro_ms);
    state.store.modify::<ErrorResponse, _>(id, |_| {
        Ok(Change::Put {
            body,
            internal: json!({"done_ms": done_ms}),
        })
    })?;
    Ok(())
}

/// Starts the operation `id` (see [`start`]) and answers the request that began it: 202 for
/// the operation's whole time. `shown` puts the record in the answer and points
/// `Azure-AsyncOperation` at it too, as management group creates do.
pub(crate) fn begin(
    state: &AppState,
    req: &ArmRequest<'_>,
    id: &str,
    record: Value,
    shown: bool,
) -> Result<Response, ErrorResponse> {
    start(state, id, record.clone())?;
    let body = shown.then_some(&record);
    Ok(accepted(req, id, body, shown, state.fault_profile().lro_ms))
}

/// The record at `id`, or `None`.
pub(crate) fn get(state: &AppState, id: &str) -> Result<Option<StoredResource>, ErrorResponse> {
    Ok(state.store.get(id)?)
}

/// `GET` of an operation's own status URL: 202 pointing back at it while the operation
/// runs, then 200; `missing` is the answer for a record that does not exist.
pub(crate) fn poll(
    state: &AppState,
    req: &ArmRequest<'_>,
    missing: ErrorResponse,
) -> Result<Response, ErrorResponse> {
    req.allow_if(req.http.method == Method::GET && req.path.is_item())?;
    let id = req.path.resource_id();
    let op = get(state, &id)?.ok_or(missing)?;
    match remaining_ms(&op) {
        0 => Ok(empty(StatusCode::OK)),
        left => Ok(accepted(req, &id, None, false, left)),
    }
}

/// Milliseconds until the record's operation ends (0 when it has).
pub(crate) fn remaining_ms(op: &StoredResource) -> u64 {
    op.internal["done_ms"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(now_ms())
}

/// `Retry-After` seconds for an operation with `ms` left: at least 1, at most 30.
pub(crate) fn retry_after(ms: u64) -> String {
    ms.div_ceil(1000).clamp(1, 30).to_string()
}

/// The absolute URL of `id` with the request's api-version.
pub(crate) fn url(req: &ArmRequest<'_>, id: &str) -> String {
    format!("{}{id}?api-version={}", req.http.base_url, req.api_version)
}

/// A `202 Accepted` that points at the operation `id` through `Location` (and
/// `Azure-AsyncOperation` when `async_operation`), with `Retry-After`.
pub(crate) fn accepted(
    req: &ArmRequest<'_>,
    id: &str,
    body: Option<&Value>,
    async_operation: bool,
    ms_left: u64,
) -> Response {
    let mut resp = match body {
        Some(b) => super::status_json(StatusCode::ACCEPTED, b),
        None => empty(StatusCode::ACCEPTED),
    };
    let link = url(req, id);
    set_header(&mut resp, "location", &link);
    if async_operation {
        set_header(&mut resp, "azure-asyncoperation", &link);
    }
    set_header(&mut resp, "retry-after", &retry_after(ms_left));
    resp
}

#[cfg(test)]
mod tests {
    use super::retry_after;

    #[test]
    fn retry_after_is_bounded_whole_seconds() {
        for (ms, seconds) in [(0, "1"), (1, "1"), (1500, "2"), (600_000, "30")] {
            assert_eq!(retry_after(ms), seconds, "{ms} ms");
        }
    }
}
