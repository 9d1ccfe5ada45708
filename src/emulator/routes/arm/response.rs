//! What every ARM response carries (request ids, rate-limit headers) and the small builders
//! handlers answer with: JSON bodies, empty bodies, parsed request bodies, `systemData`.

use http::{HeaderValue, Method, StatusCode};

use super::{ArmRequest, ErrorResponse};
use crate::emulator::http::{json_response, Request, Response};
use crate::emulator::state::{new_guid, AppState};

/// Tokens left in the caller's bucket while throttling is on, for the rate-limit header.
#[derive(Debug, Clone, Copy)]
pub(super) struct RemainingBudget(pub(super) u64);

/// Headers ARM puts on every response, success or error.
pub(crate) fn add_arm_headers(state: &AppState, req: &Request, resp: &mut Response) {
    let resp_remaining = resp.extensions().get::<RemainingBudget>().copied();
    let resp_status = resp.status();
    let headers = resp.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("x-ms-request-id", new_guid());
    set(
        "x-ms-correlation-request-id",
        req.header("x-ms-correlation-request-id")
            .map(str::to_string)
            .unwrap_or_else(new_guid),
    );
    if let Some(client_request_id) = req.header("x-ms-client-request-id") {
        set("x-ms-client-request-id", client_request_id.to_string());
    }
    let bucket = match req.method {
        Method::GET | Method::HEAD => "x-ms-ratelimit-remaining-subscription-reads",
        Method::DELETE => "x-ms-ratelimit-remaining-subscription-deletes",
        _ => "x-ms-ratelimit-remaining-subscription-writes",
    };
    let left = match resp_remaining {
        Some(RemainingBudget(n)) => n,
        None if resp_status == StatusCode::TOO_MANY_REQUESTS => 0,
        None => state.remaining_budget(12000),
    };
    set(bucket, left.to_string());
    set("cache-control", "no-cache".to_string());
}

/// A 200 JSON response.
pub(crate) fn ok_json(body: &serde_json::Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// A JSON response with any status.
pub(crate) fn status_json(status: StatusCode, body: &serde_json::Value) -> Response {
    json_response(status, body)
}

/// An empty response (DELETE 200/204, 202 without body).
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// Parses the JSON request body, answering ARM's `InvalidRequestContent` on failure.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    req: &ArmRequest<'_>,
) -> Result<T, ErrorResponse> {
    if req.http.body.is_empty() {
        return Err(ErrorResponse::bad_request(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'The request body is empty.'.",
        ));
    }
    serde_json::from_slice(&req.http.body).map_err(|e| {
        ErrorResponse::bad_request(
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: '{e}'."),
        )
    })
}

pub(crate) use crate::policy::timestamp::now_rfc3339;

/// Milliseconds since the Unix epoch (for timers kept in stored resources).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// `systemData` for a resource created at `created_at` and last written now by the caller.
pub(crate) fn system_data(
    req: &ArmRequest<'_>,
    previous: Option<&serde_json::Value>,
) -> serde_json::Value {
    let now = now_rfc3339();
    let who = req.principal.appid.clone();
    let created = previous.and_then(|p| p.get("systemData")).cloned();
    let (created_by, created_by_type, created_at) = match created {
        Some(c) => (
            c.get("createdBy")
                .cloned()
                .unwrap_or_else(|| serde_json::json!(who)),
            c.get("createdByType")
                .cloned()
                .unwrap_or_else(|| serde_json::json!("Application")),
            c.get("createdAt")
                .cloned()
                .unwrap_or_else(|| serde_json::json!(now)),
        ),
        None => (
            serde_json::json!(who),
            serde_json::json!("Application"),
            serde_json::json!(now),
        ),
    };
    serde_json::json!({
        "createdBy": created_by,
        "createdByType": created_by_type,
        "createdAt": created_at,
        "lastModifiedBy": who,
        "lastModifiedByType": "Application",
        "lastModifiedAt": now,
    })
}

/// The stored body with `id` in its creator's casing (the store keys ids case-insensitively;
/// ARM answers with the spelling the resource was created with).
pub(crate) fn with_id(body: &serde_json::Value, id: &str) -> serde_json::Value {
    let mut body = body.clone();
    body["id"] = serde_json::json!(id);
    body
}
