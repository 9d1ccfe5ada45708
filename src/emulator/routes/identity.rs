//! Sign-in endpoints that are not Entra ID's own: the managed identity endpoint (the IMDS
//! protocol of `169.254.169.254`, served here over the emulator's TLS listener) and the
//! emulator's OIDC issuer, whose tokens the federated application trusts.

use http::{Method, StatusCode};
use serde_json::json;

use super::aad::{issue_access_token, no_store, Principal, TokenVersion};
use crate::emulator::http::{json_response, Request, Response};
use crate::emulator::state::AppState;
use crate::emulator::token::is_arm_audience;

/// Path of the managed identity token endpoint, as on IMDS.
pub(crate) const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// api-versions IMDS answers for identity tokens.
const IMDS_API_VERSIONS: [&str; 4] = ["2018-02-01", "2019-08-01", "2019-11-01", "2021-02-01"];

pub(crate) fn matches(segments: &[String]) -> bool {
    is_imds(segments) || is_issuer(segments)
}

fn is_imds(segments: &[String]) -> bool {
    let expected = ["metadata", "identity", "oauth2", "token"];
    segments.len() == expected.len()
        && segments
            .iter()
            .zip(expected)
            .all(|(s, e)| s.eq_ignore_ascii_case(e))
}

fn is_issuer(segments: &[String]) -> bool {
    segments.first().is_some_and(|s| s == "oidc")
}

pub(crate) fn handle(state: &AppState, req: &Request, segments: &[String]) -> Response {
    if is_imds(segments) {
        return imds_token(state, req);
    }
    let issuer = &state.identities.issuer;
    let rest: Vec<&str> = segments[1..].iter().map(String::as_str).collect();
    match (&req.method, rest.as_slice()) {
        (&Method::GET, [".well-known", "openid-configuration"]) => {
            json_response(StatusCode::OK, &issuer.discovery())
        }
        (&Method::GET, ["keys"]) => json_response(StatusCode::OK, &issuer.jwks()),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "not_found", "error_description": "No such issuer document."}),
        ),
    }
}

/// IMDS's error shape: `{"error", "error_description"}` without Entra ID's trace fields.
fn imds_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = json_response(
        status,
        &json!({"error": error, "error_description": description}),
    );
    no_store(&mut resp);
    resp
}

/// `GET /metadata/identity/oauth2/token?api-version=…&resource=…[&client_id|object_id|msi_res_id=…]`
/// with `Metadata: true`. The machine has one user-assigned identity and no system-assigned
/// one, so a request naming no identity gets that one, as IMDS does.
fn imds_token(state: &AppState, req: &Request) -> Response {
    if req.method != Method::GET {
        return imds_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "The request method is not supported; use GET.",
        );
    }
    // The SSRF guard: IMDS answers only requests that say they meant to reach it, and never
    // ones that came through a proxy.
    if req.header("metadata") != Some("true") || req.header("x-forwarded-for").is_some() {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    match req.query_param("api-version") {
        None | Some("") => {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Required query variable 'api-version' is missing",
            )
        }
        Some(v) if !IMDS_API_VERSIONS.contains(&v) => {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!(
                    "Invalid api-version '{v}'. Supported versions: {}",
                    IMDS_API_VERSIONS.join(", ")
                ),
            )
        }
        Some(_) => {}
    }
    let Some(resource) = req.query_param("resource").filter(|r| !r.is_empty()) else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let managed = &state.identities.managed;
    let selectors = [
        req.query_param("client_id"),
        req.query_param("object_id"),
        req.query_param("principal_id"),
    ];
    let named_other = selectors.iter().flatten().any(|id| {
        !id.eq_ignore_ascii_case(&managed.client_id) && !id.eq_ignore_ascii_case(&managed.object_id)
    }) || req.query_param("msi_res_id").is_some()
        || req.query_param("mi_res_id").is_some();
    if named_other {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Identity not found",
        );
    }
    if !is_arm_audience(resource) {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            &format!("AADSTS500011: The resource principal named {resource} was not found in the tenant named {}. The emulator only issues tokens for Azure Resource Manager.", state.identity.tenant_id),
        );
    }
    let principal = Principal {
        client_id: managed.client_id.clone(),
        object_id: managed.object_id.clone(),
    };
    let issued = match issue_access_token(state, req, &principal, resource, TokenVersion::V1) {
        Ok(issued) => issued,
        Err(_) => {
            return imds_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "There was an error issuing a token.",
            )
        }
    };
    // IMDS reports every number as a string.
    let mut resp = json_response(
        StatusCode::OK,
        &json!({
            "access_token": issued.token,
            "client_id": managed.client_id,
            "expires_in": issued.lifetime.to_string(),
            "expires_on": issued.exp.to_string(),
            "ext_expires_in": issued.lifetime.to_string(),
            "not_before": issued.now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    );
    no_store(&mut resp);
    resp
}
