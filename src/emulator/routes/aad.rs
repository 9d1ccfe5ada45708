//! Entra ID (Azure AD) endpoints: client-credentials token issuance (v1 and v2), OpenID
//! discovery, JWKS and MSAL's instance discovery.

use std::time::SystemTime;

use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::emulator::assertion::{self, Jwt, Rejection};
use crate::emulator::http::{json_response, Request, Response};
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::token::{is_arm_audience, now_secs, Claims};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How a client proved who it is.
#[derive(Clone, Copy)]
enum Presented<'a> {
    Secret(&'a str),
    Assertion(&'a str),
}

/// The service principal a token is issued to.
pub(crate) struct Principal {
    pub client_id: String,
    pub object_id: String,
}

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
pub(crate) enum TokenVersion {
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
        (&Method::POST, ["oauth2", "v2.0", "token"]) => token(state, req, tenant, TokenVersion::V2),
        (&Method::POST, ["oauth2", "token"]) => token(state, req, tenant, TokenVersion::V1),
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

fn token(state: &AppState, req: &Request, tenant: &str, version: TokenVersion) -> Response {
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
    let secret = field("client_secret").or(basic.as_ref().map(|(_, secret)| secret.as_str()));
    let assertion = field("client_assertion");
    if assertion.is_some() && field("client_assertion_type") != Some(JWT_BEARER) {
        return aad_error(
            req,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: 'client_assertion_type' with the value '{JWT_BEARER}'."),
        );
    }
    let credential = match (secret, assertion) {
        (_, Some(jwt)) => Presented::Assertion(jwt),
        (Some(secret), None) => Presented::Secret(secret),
        (None, None) => {
            return aad_error(
                req,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        }
    };
    let principal = match authenticate_client(state, req, tenant, client_id, credential) {
        Ok(p) => p,
        Err(failure) => return failure.into_response(req),
    };
    let identity = &state.identity;

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

    let issued = match issue_access_token(state, req, &principal, &audience, version) {
        Ok(issued) => issued,
        Err(failure) => return failure.into_response(req),
    };
    let (access_token, now, exp, lifetime) =
        (issued.token, issued.now, issued.exp, issued.lifetime);
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

/// An Entra ID error, rendered into a response by [`AadFailure::into_response`].
pub(crate) struct AadFailure {
    status: StatusCode,
    error: &'static str,
    code: u32,
    text: String,
}

impl AadFailure {
    fn new(status: StatusCode, error: &'static str, code: u32, text: &str) -> Self {
        AadFailure {
            status,
            error,
            code,
            text: text.to_string(),
        }
    }

    pub(crate) fn into_response(self, req: &Request) -> Response {
        aad_error(req, self.status, self.error, self.code, &self.text)
    }
}

/// Finds the application `client_id` names and checks the credential it presented against
/// that application's registered credentials: the tenant's service principal has a secret,
/// the certificate application a certificate, the federated application a federated identity
/// credential. Any other combination fails as Entra ID fails it.
fn authenticate_client(
    state: &AppState,
    req: &Request,
    tenant: &str,
    client_id: &str,
    presented: Presented<'_>,
) -> Result<Principal, AadFailure> {
    let identity = &state.identity;
    let extra = &state.identities;
    let principal = |client_id: &str, object_id: &str| Principal {
        client_id: client_id.to_string(),
        object_id: object_id.to_string(),
    };
    // Never echo the presented secret: it may be a real credential sent to the wrong place.
    let wrong_secret = || {
        AadFailure::new(StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
        )
    };
    let parse = |jwt: &str| {
        Jwt::parse(jwt).ok_or_else(|| {
            AadFailure::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            )
        })
    };
    let now = now_secs();
    if client_id.eq_ignore_ascii_case(&identity.client_id) {
        return match presented {
            Presented::Secret(secret)
                if constant_time_eq(secret.as_bytes(), identity.client_secret.as_bytes()) =>
            {
                Ok(principal(&identity.client_id, &identity.object_id))
            }
            Presented::Secret(_) => Err(wrong_secret()),
            // The application has no certificate or federated credential registered.
            Presented::Assertion(jwt) => {
                let jwt = parse(jwt)?;
                Err(rejection(
                    client_id,
                    &jwt,
                    Rejection::UnknownCertificate {
                        thumbprint: String::new(),
                    },
                ))
            }
        };
    }
    // The certificate and federated applications have no secret: they take assertions only.
    let signed_assertion = |presented: Presented<'_>| match presented {
        Presented::Secret(_) => Err(wrong_secret()),
        Presented::Assertion(jwt) => parse(jwt),
    };
    if client_id.eq_ignore_ascii_case(&extra.certificate.client_id) {
        let app = &extra.certificate;
        let jwt = signed_assertion(presented)?;
        let audiences = assertion_audiences(state, req, tenant);
        return assertion::verify_certificate(app, &jwt, &audiences, now)
            .map(|()| principal(&app.client_id, &app.object_id))
            .map_err(|r| rejection(client_id, &jwt, r));
    }
    if client_id.eq_ignore_ascii_case(&extra.federated.client_id) {
        let app = &extra.federated;
        let jwt = signed_assertion(presented)?;
        // An assertion the application signed itself claims `iss` = its client id: that is
        // a certificate credential, which this application does not have.
        let own = jwt
            .claim_str("iss")
            .is_some_and(|iss| iss.eq_ignore_ascii_case(client_id));
        let checked = if own {
            Err(Rejection::UnknownCertificate {
                thumbprint: String::new(),
            })
        } else {
            assertion::verify_federated(app, &extra.issuer, &jwt, now)
        };
        return checked
            .map(|()| principal(&app.client_id, &app.object_id))
            .map_err(|r| rejection(client_id, &jwt, r));
    }
    Err(AadFailure::new(StatusCode::UNAUTHORIZED,
        "invalid_client",
        700016,
        &format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
            identity.tenant_id
        ),
    ))
}

/// The token endpoint URLs a certificate assertion may name as `aud`: v2, v1 and the v2
/// issuer, under the tenant segment the request used and under the tenant id.
fn assertion_audiences(state: &AppState, req: &Request, tenant: &str) -> Vec<String> {
    let base = req.base_url.trim_end_matches('/');
    let mut tenants = vec![tenant.to_string()];
    if !tenant.eq_ignore_ascii_case(&state.identity.tenant_id) {
        tenants.push(state.identity.tenant_id.clone());
    }
    tenants
        .iter()
        .flat_map(|t| {
            [
                format!("{base}/{t}/oauth2/v2.0/token"),
                format!("{base}/{t}/oauth2/token"),
                format!("{base}/{t}/v2.0"),
            ]
        })
        .collect()
}

/// Entra ID's answer to a refused assertion.
fn rejection(client_id: &str, jwt: &Jwt, why: Rejection) -> AadFailure {
    let federated_hint = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.";
    let time = |secs: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string()
    };
    let own = jwt
        .claim_str("iss")
        .is_some_and(|iss| iss.eq_ignore_ascii_case(client_id));
    let (code, text) = match why {
        Rejection::Malformed => {
            return AadFailure::new(StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            )
        }
        Rejection::UnsupportedAlgorithm(alg) => (
            5002738,
            format!("Invalid JWT token. '{alg}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256, PS256'."),
        ),
        Rejection::UnknownCertificate { thumbprint } => (
            700027,
            format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"),
        ),
        Rejection::BadSignature if own => (
            700027,
            "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]".to_string(),
        ),
        Rejection::BadSignature => (
            50013,
            "Assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]".to_string(),
        ),
        Rejection::UnknownIssuerKey => (
            50013,
            "Assertion failed signature validation. [Reason - The key was not found.]".to_string(),
        ),
        Rejection::WrongClient => (
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.".to_string(),
        ),
        Rejection::WrongAudience { presented, expected } => (
            50013,
            format!("Assertion audience claim does not match the required value. The audience in the assertion was '{presented}' and the expected audience is '{expected}'."),
        ),
        Rejection::OutsideValidity { now, nbf, exp } => (
            700024,
            format!("Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.", time(now), time(nbf), time(exp)),
        ),
        Rejection::UnknownIssuer { issuer } => (
            700211,
            format!("No matching federated identity record found for presented assertion issuer '{issuer}'. {federated_hint}"),
        ),
        Rejection::UnknownSubject { subject } => (
            700213,
            format!("No matching federated identity record found for presented assertion subject '{subject}'. {federated_hint}"),
        ),
        Rejection::UnknownAudience { audience } => (
            700212,
            format!("No matching federated identity record found for presented assertion audience '{audience}'. {federated_hint}"),
        ),
    };
    AadFailure::new(StatusCode::UNAUTHORIZED, "invalid_client", code, &text)
}

/// A signed access token and its validity.
pub(crate) struct IssuedToken {
    pub token: String,
    pub now: u64,
    pub exp: u64,
    pub lifetime: u64,
}

/// Signs an ARM access token for `principal`; the lifetime is the fault profile's.
pub(crate) fn issue_access_token(
    state: &AppState,
    req: &Request,
    principal: &Principal,
    audience: &str,
    version: TokenVersion,
) -> Result<IssuedToken, AadFailure> {
    let identity = &state.identity;
    let now = now_secs();
    // The fault profile's knob; `apply` keeps it at least 1 s.
    let lifetime = state.fault_profile().token_lifetime_s.max(1);
    let exp = now.saturating_add(lifetime);
    let claims = Claims {
        aud: audience.to_string(),
        iss: format!("{}/{}/v2.0", req.base_url, identity.tenant_id),
        iat: now,
        nbf: now,
        exp,
        tid: identity.tenant_id.clone(),
        appid: principal.client_id.clone(),
        azp: principal.client_id.clone(),
        oid: principal.object_id.clone(),
        sub: principal.object_id.clone(),
        idtyp: Some("app".to_string()),
        ver: Some(match version {
            TokenVersion::V1 => "1.0".to_string(),
            TokenVersion::V2 => "2.0".to_string(),
        }),
        uti: Some(new_guid()),
    };
    match state.signer.sign(&claims) {
        Ok(token) => Ok(IssuedToken {
            token,
            now,
            exp,
            lifetime,
        }),
        Err(e) => {
            log::error!("signing a token failed: {e}");
            Err(AadFailure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                50000,
                "There was an error issuing a token.",
            ))
        }
    }
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

pub(crate) fn no_store(resp: &mut Response) {
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
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "private_key_jwt"],
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
