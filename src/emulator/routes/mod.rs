//! Top-level routing: metadata and Entra ID endpoints need no token; everything else is ARM.

pub(crate) mod aad;
pub(crate) mod arm;
pub(crate) mod metadata;

use super::http::{Request, Response};
use super::state::AppState;

/// Dispatches one request.
pub(crate) async fn route(state: &AppState, req: Request) -> Response {
    let segments = req.segments();
    if metadata::matches(&segments) {
        return metadata::handle(state, &req);
    }
    if aad::matches(&segments) {
        return aad::handle(state, &req, &segments);
    }
    arm::handle(state, &req, &segments)
}
