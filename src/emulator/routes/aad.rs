//! Entra ID (Azure AD) endpoints: client-credentials token issuance (v1 and v2), OpenID
//! discovery, JWKS and MSAL's instance discovery.

use std::time::SystemTime;

use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::emulator::http::{json_response, Request, Response};
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::token::{is_arm_audience, now_secs, Claims};

/// Tenant path segments accepted besides the emulator's own tenant id.
const TENANT_ALIASES: [&str; 4] = ["organizations", "common", "adfs", "consumers"];

/// Second path segments that identify an Entra ID request (`/{tenant}/<this>/...`).
const AAD_SEGMENTS: [&str; 4] = ["oauth2", ".well-known", "discovery", "v2.0"];

pub(crate) fn matches(segments: &[String]) -> bool {
    segments.len() >= 2
        && !segments[0].eq_ignore_ascii_case("subscriptions")
        && !segments[0].eq_ignore_ascii_case("providers")
        && AAD_SEGMENTS
            .iter()
            .any(|s| segments[1].eq_ignore_ascii_case(s))
}

/// Which token endpoint flavour was called.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenVersion {
    V1,
    V2,
}

pub(crate) fn handle(state: &AppState, req: &Request, segments: &[String]) -> Response {
    let tenant = segments[0].as_str();
    let rest: Vec<String> = segments[1..]
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    if !tenant_known(state, tenant) {
        return aad_error(
            req,
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    let base = &req.base_url;
    match (&req.method, rest.as_slice()) {
        (&Method::POST, ["oauth2", "v2.0", "token"]) => token(state, req, TokenVersion::V2),
        (&Method::POST, ["oauth2", "token"]) => token(state, req, TokenVersion::V1),
        (&Method::GET, ["v2.0", ".well-known", "openid-configuration"]) => json_response(
            StatusCode::OK,
            &openid_configuration(base, tenant, TokenVersion::V2),
        ),
        (&Method::GET, [".well-known", "openid-configuration"]) => json_response(
            StatusCode::OK,
            &openid_configuration(base, tenant, TokenVersion::V1),
        ),
        (&Method::GET, ["discovery", "v2.0", "keys"]) | (&Method::GET, ["discovery", "keys"]) => {
            json_response(StatusCode::OK, &state.signer.jwks())
        }
        (&Method::GET, ["discovery", "instance"]) => {
            let host = base.trim_start_matches("https://");
            json_response(
                StatusCode::OK,
                &json!({
                    "tenant_discovery_endpoint":
                        format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
                    "api-version": "1.1",
                    "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]
                }),
            )
        }
        _ => aad_error(
            req,
            StatusCode::NOT_FOUND,
            "invalid_request",
            900561,
            "The endpoint does not exist or does not accept this HTTP method.",
        ),
    }
}

fn tenant_known(state: &AppState, tenant: &str) -> bool {
    tenant.eq_ignore_ascii_case(&state.identity.tenant_id)
        || TENANT_ALIASES
            .iter()
            .any(|a| a.eq_ignore_ascii_case(tenant))
}

fn token(state: &AppState, req: &Request, version: TokenVersion) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let missing = |name: &str| {
        aad_error(
            req,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };

    let Some(grant_type) = field("grant_type") else {
        return missing("grant_type");
    };
    if grant_type != "client_credentials" {
        return aad_error(
            req,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'. The emulator only issues tokens for client_credentials."),
        );
    }
    // client_secret_basic: credentials in the Authorization header instead of the form.
    let basic = basic_credentials(req);
    let Some(client_id) = field("client_id").or(basic.as_ref().map(|(id, _)| id.as_str())) else {
        return missing("client_id");
    };
    let identity = &state.identity;
    if !client_id.eq_ignore_ascii_case(&identity.client_id) {
        return aad_error(
            req,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                identity.tenant_id
            ),
        );
    }
    let Some(secret) = field("client_secret").or(basic.as_ref().map(|(_, secret)| secret.as_str()))
    else {
        return aad_error(
            req,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if !constant_time_eq(secret.as_bytes(), identity.client_secret.as_bytes()) {
        // Never echo the presented secret: it may be a real credential sent to the wrong place.
        return aad_error(
            req,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", identity.client_id),
        );
    }

    // v2 takes `scope`; v1 takes `resource`, but MSAL talking to an ADFS-shaped authority
    // sends `scope` to the v1 path, so v1 accepts either.
    let audience = match (version, field("resource")) {
        (TokenVersion::V1, Some(resource)) => resource.to_string(),
        _ => {
            let Some(scope) = field("scope") else {
                return missing(match version {
                    TokenVersion::V1 => "resource",
                    TokenVersion::V2 => "scope",
                });
            };
            // The CLI asks for `https://management.core.windows.net//.default` (double slash), so
            // strip `/.default` and keep the resource exactly as the client spelled it.
            match scope
                .split_whitespace()
                .find_map(|s| s.strip_suffix("/.default"))
            {
                Some(resource) => resource.to_string(),
                None => {
                    return aad_error(
                        req,
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        1002012,
                        &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                    )
                }
            }
        }
    };
    if !is_arm_audience(&audience) {
        return aad_error(
            req,
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!("The resource principal named {audience} was not found in the tenant named {}. The emulator only issues tokens for Azure Resource Manager.", identity.tenant_id),
        );
    }

    let now = now_secs();
    // The fault profile's knob; `apply` keeps it at least 1 s.
    let lifetime = state.fault_profile().token_lifetime_s.max(1);
    let exp = now.saturating_add(lifetime);
    let claims = Claims {
        aud: audience.clone(),
        iss: format!("{}/{}/v2.0", req.base_url, identity.tenant_id),
        iat: now,
        nbf: now,
        exp,
        tid: identity.tenant_id.clone(),
        appid: identity.client_id.clone(),
        azp: identity.client_id.clone(),
        oid: identity.object_id.clone(),
        sub: identity.object_id.clone(),
        idtyp: Some("app".to_string()),
        ver: Some(match version {
            TokenVersion::V1 => "1.0".to_string(),
            TokenVersion::V2 => "2.0".to_string(),
        }),
        uti: Some(new_guid()),
    };
    let access_token = match state.signer.sign(&claims) {
        Ok(t) => t,
        Err(e) => {
            log::error!("signing a token failed: {e}");
            return aad_error(
                req,
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                50000,
                "There was an error issuing a token.",
            );
        }
    };
    let body = match version {
        TokenVersion::V2 => json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }),
        // The v1 endpoint reports numbers as strings, and clients parse them that way.
        TokenVersion::V1 => json!({
            "token_type": "Bearer",
            "expires_in": lifetime.to_string(),
            "ext_expires_in": lifetime.to_string(),
            "expires_on": exp.to_string(),
            "not_before": now.to_string(),
            "resource": audience,
            "access_token": access_token,
        }),
    };
    let mut resp = json_response(StatusCode::OK, &body);
    no_store(&mut resp);
    resp
}

/// `Authorization: Basic base64(id:secret)`. RFC 6749 asks for form-encoding inside, but
/// common clients (curl -u, reqwest) send the raw values, and generated secrets need no escaping.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    use base64::Engine;
    let header = req.header("authorization")?;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn no_store(resp: &mut Response) {
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
}

/// An error in Entra ID's JSON shape.
fn aad_error(req: &Request, status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let trace_id = new_guid();
    let correlation_id = req
        .header("client-request-id")
        .map(str::to_string)
        .unwrap_or_else(new_guid);
    // Entra ID formats this as "2026-01-02 03:04:05Z".
    let timestamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replacen('T', " ", 1);
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("{}/error?code={code}", req.base_url),
    });
    let mut resp = json_response(status, &body);
    no_store(&mut resp);
    resp
}

fn openid_configuration(base: &str, tenant: &str, version: TokenVersion) -> Value {
    let (v, issuer) = match version {
        TokenVersion::V2 => ("/v2.0", format!("{base}/{tenant}/v2.0")),
        TokenVersion::V1 => ("", format!("{base}/{tenant}/")),
    };
    let oauth = match version {
        TokenVersion::V2 => format!("{base}/{tenant}/oauth2/v2.0"),
        TokenVersion::V1 => format!("{base}/{tenant}/oauth2"),
    };
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{oauth}/token"),
        "authorization_endpoint": format!("{oauth}/authorize"),
        "device_authorization_endpoint": format!("{oauth}/devicecode"),
        "end_session_endpoint": format!("{oauth}/logout"),
        "jwks_uri": format!("{base}/{tenant}/discovery{v}/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "azp"],
        "request_uri_parameter_supported": false,
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "tenant_region_scope": null,
        "cloud_instance_name": base.trim_start_matches("https://"),
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    })
}
