//! `GET /tenants`: the one tenant the service principal belongs to (the Azure CLI lists it at
//! login).

use http::Method;
use serde_json::json;

use super::{error::ErrorResponse, ok_json, paging, ArmRequest};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    if req.http.method != Method::GET {
        return Err(ErrorResponse::method_not_allowed(&req.http.method));
    }
    if req.path.types.len() != 1 || req.path.is_item() {
        return Err(ErrorResponse::not_found(
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found.",
                req.path.type_display()
            ),
        ));
    }
    let tenant_id = &state.identity.tenant_id;
    let tenant = json!({
        "id": format!("/tenants/{tenant_id}"),
        "tenantId": tenant_id,
        "tenantCategory": "Home",
        "tenantType": "AAD",
        "displayName": "akspolicy emulator",
        "defaultDomain": "akspolicy-emulator.onmicrosoft.com",
        "domains": ["akspolicy-emulator.onmicrosoft.com"],
        "countryCode": "US"
    });
    Ok(ok_json(&paging::page(vec![tenant], req, 100)?))
}
