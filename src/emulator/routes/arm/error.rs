//! ARM error responses (`{"error": {"code", "message", ...}}`).

use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::emulator::http::{json_response, Response};

/// One ARM error response.
#[derive(Debug, Clone)]
pub(crate) struct ErrorResponse {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Rarely used parts, boxed to keep `Result<_, ErrorResponse>` small.
    pub extra: Option<Box<ErrorResponseExtra>>,
}

/// Optional parts of an ARM error.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorResponseExtra {
    pub target: Option<String>,
    pub details: Vec<Value>,
    pub additional_info: Vec<Value>,
    /// Set on 401s so clients know where to get a token.
    pub www_authenticate: Option<String>,
    /// `Retry-After` seconds (429, 503).
    pub retry_after: Option<u64>,
    /// Produced by fault injection; marked with `x-ms-emulator-injected: true`.
    pub injected: bool,
}

impl ErrorResponse {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            extra: None,
        }
    }

    /// Mutable access to the optional parts, creating them on first use.
    pub(crate) fn extra_mut(&mut self) -> &mut ErrorResponseExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub(crate) fn missing_api_version() -> Self {
        Self::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    }

    pub(crate) fn invalid_api_version(
        given: &str,
        resource_type: &str,
        supported: &[&str],
    ) -> Self {
        Self::bad_request(
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{given}' is invalid for resource type '{resource_type}'. The supported versions are '{}'.",
                supported.join(",")
            ),
        )
    }

    pub(crate) fn method_not_allowed(method: &http::Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The requested resource does not support http method '{method}'."),
        )
    }

    pub(crate) fn subscription_not_found(subscription_id: &str) -> Self {
        Self::not_found(
            "SubscriptionNotFound",
            format!("The subscription '{subscription_id}' could not be found."),
        )
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(extra) = &self.extra {
            if let Some(target) = &extra.target {
                error["target"] = json!(target);
            }
            if !extra.details.is_empty() {
                error["details"] = json!(extra.details);
            }
            if !extra.additional_info.is_empty() {
                error["additionalInfo"] = json!(extra.additional_info);
            }
        }
        json!({ "error": error })
    }

    pub(crate) fn into_response(self) -> Response {
        let mut resp = json_response(self.status, &self.body());
        if let Some(value) = self
            .extra
            .as_ref()
            .and_then(|e| e.www_authenticate.as_deref())
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            resp.headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, value);
        }
        if let Some(extra) = &self.extra {
            if let Some(secs) = extra.retry_after {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(http::header::RETRY_AFTER, v);
                }
            }
            if extra.injected {
                resp.headers_mut()
                    .insert("x-ms-emulator-injected", HeaderValue::from_static("true"));
            }
        }
        resp
    }
}

impl From<crate::emulator::store::StoreError> for ErrorResponse {
    fn from(e: crate::emulator::store::StoreError) -> Self {
        log::error!("state store: {e}");
        Self::internal("The emulator's state store failed; see its log.")
    }
}
