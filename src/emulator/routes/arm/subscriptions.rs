//! `GET /subscriptions` and `GET /subscriptions/{id}`.

use http::Method;

use super::{error::ErrorResponse, ok_json, paging, ArmRequest};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;

const PAGE_SIZE: usize = 100;

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    if req.http.method != Method::GET {
        return Err(ErrorResponse::method_not_allowed(&req.http.method));
    }
    // Only `/subscriptions` and `/subscriptions/{id}` exist at this level for now.
    match (req.path.types.len(), req.path.item_name()) {
        (1, None) => {
            let items = state
                .store
                .list_children("", "subscriptions")?
                .into_iter()
                .map(|r| r.body)
                .collect();
            Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
        }
        (1, Some(id)) => match state.store.get(&format!("/subscriptions/{id}"))? {
            Some(sub) => Ok(ok_json(&sub.body)),
            None => Err(ErrorResponse::subscription_not_found(id)),
        },
        _ => Err(ErrorResponse::not_found(
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found.",
                req.path.type_display()
            ),
        )),
    }
}
