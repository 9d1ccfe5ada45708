//! `GET /_templates/{path}`: the stand-in for the public template store
//! (`https://store.policy.core.windows.net/{path}`) that `PublicURL` definitions name. It
//! serves, without a token as the real store does, exactly the templates the emulator's own
//! Gatekeeper resolves for that URL path, so a client that maps the store's host here (the
//! provider's `AKSPOLICY_TEMPLATE_BASE_URL`) sees what the emulated add-on installs.

use bytes::Bytes;
use http::{HeaderValue, Method};
use http_body_util::Full;

use super::arm::ErrorResponse;
use crate::emulator::http::{Request, Response};
use crate::emulator::state::AppState;
use crate::policy::constraint::TemplateLookup;

/// First path segment of the route.
pub(crate) const PREFIX: &str = "_templates";

pub(crate) fn matches(segments: &[String]) -> bool {
    segments.first().is_some_and(|s| s == PREFIX)
}

pub(crate) fn handle(state: &AppState, req: &Request, segments: &[String]) -> Response {
    if req.method != Method::GET {
        return ErrorResponse::method_not_allowed(&req.method).into_response();
    }
    let path = segments[1..].join("/");
    match state.templates.template_for_path(&path) {
        Some(yaml) => {
            let mut resp = http::Response::new(Full::new(Bytes::from(yaml)));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-yaml"),
            );
            resp
        }
        None => ErrorResponse::not_found(
            "BlobNotFound",
            format!("The specified blob does not exist: {path}"),
        )
        .into_response(),
    }
}
