//! Azure Resource Manager surface: authentication, api-version checks, standard response
//! headers, and dispatch to per-resource-type handlers through [`RESOURCE_TYPES`].
//!
//! Adding a resource type = one handler module + one row in [`RESOURCE_TYPES`].

mod deployments;
mod error;
mod filter;
mod managed_clusters;
mod management_groups;
mod operations;
mod paging;
mod path;
mod policy_assignments;
mod policy_definitions;
mod policy_exemptions;
mod policy_states;
mod policy_versions;
mod remediations;
mod resource_groups;
mod role_assignments;
mod scope;
mod subscriptions;
mod tenants;

pub(crate) use error::ArmError;
pub(crate) use managed_clusters::{clusters_under, policy_addon_enabled, settle as settle_cluster};
pub(crate) use path::ArmPath;
pub(crate) use policy_definitions::resolve_visible;
pub(crate) use scope::{stored_of_type, Scope};

use http::{HeaderValue, Method, StatusCode};

use crate::emulator::faults::chance;
use crate::emulator::http::{json_response, Request, Response};
use crate::emulator::observe::{OperationKind, Throttle};
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::token::{Claims, TokenError};
use std::future::Future;

/// api-versions of Microsoft.Authorization policy resources.
pub(crate) const POLICY_API_VERSIONS: &[&str] = &[
    "2021-06-01",
    "2022-06-01",
    "2023-04-01",
    "2024-04-01",
    "2024-05-01",
    "2025-01-01",
    "2025-03-01",
    // What Azure CLI 2.8x (2025-11-01) and azure-mgmt-resource-policy 1.x (2026-06-01) send.
    "2025-11-01",
    "2026-06-01",
];
/// api-versions of policy exemptions (no stable version exists).
pub(crate) const EXEMPTION_API_VERSIONS: &[&str] = &[
    "2020-07-01-preview",
    "2022-07-01-preview",
    "2024-12-01-preview",
    // What Azure CLI 2.8x sends.
    "2026-01-01-preview",
];
/// api-versions of subscription reads.
pub(crate) const SUBSCRIPTION_API_VERSIONS: &[&str] =
    &["2016-06-01", "2020-01-01", "2021-01-01", "2022-12-01"];

/// A request that passed authentication and api-version checks.
pub(crate) struct ArmRequest<'a> {
    pub http: &'a Request,
    pub path: ArmPath,
    pub api_version: String,
    /// The caller's token claims (for `AuthorizationFailed` texts and `systemData`).
    pub principal: Claims,
}

type Handler = fn(&AppState, &ArmRequest<'_>) -> Result<Response, ArmError>;

/// One routable resource type.
pub(crate) struct ResourceTypeSpec {
    /// Lower-case routing key, see [`ArmPath::type_key`].
    pub key: &'static str,
    pub api_versions: &'static [&'static str],
    pub handler: Handler,
}

/// Every resource type the emulator serves.
pub(crate) const RESOURCE_TYPES: &[ResourceTypeSpec] = &[
    ResourceTypeSpec {
        key: "microsoft.resources/subscriptions",
        api_versions: SUBSCRIPTION_API_VERSIONS,
        handler: subscriptions::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/tenants",
        api_versions: SUBSCRIPTION_API_VERSIONS,
        handler: tenants::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/subscriptions/resourcegroups",
        api_versions: resource_groups::API_VERSIONS,
        handler: resource_groups::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/subscriptions/operationresults",
        api_versions: resource_groups::API_VERSIONS,
        handler: resource_groups::handle_operation_result,
    },
    ResourceTypeSpec {
        key: "microsoft.management/operationresults/managementgroups",
        api_versions: management_groups::API_VERSIONS,
        handler: management_groups::handle_operation_result,
    },
    ResourceTypeSpec {
        key: "microsoft.management/managementgroups",
        api_versions: management_groups::API_VERSIONS,
        handler: management_groups::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.management/managementgroups/subscriptions",
        api_versions: management_groups::API_VERSIONS,
        handler: management_groups::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.management/managementgroups/descendants",
        api_versions: management_groups::API_VERSIONS,
        handler: management_groups::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policydefinitions",
        api_versions: POLICY_API_VERSIONS,
        handler: policy_definitions::handle_definitions,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policysetdefinitions",
        api_versions: POLICY_API_VERSIONS,
        handler: policy_definitions::handle_set_definitions,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policydefinitions/versions",
        api_versions: policy_versions::VERSION_API_VERSIONS,
        handler: policy_versions::handle_definition_versions,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policysetdefinitions/versions",
        api_versions: policy_versions::VERSION_API_VERSIONS,
        handler: policy_versions::handle_set_definition_versions,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/listpolicydefinitionversions",
        api_versions: policy_versions::VERSION_API_VERSIONS,
        handler: policy_versions::handle_list_definition_versions,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/listpolicysetdefinitionversions",
        api_versions: policy_versions::VERSION_API_VERSIONS,
        handler: policy_versions::handle_list_set_definition_versions,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policyassignments",
        api_versions: POLICY_API_VERSIONS,
        handler: policy_assignments::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.containerservice/managedclusters",
        api_versions: managed_clusters::API_VERSIONS,
        handler: managed_clusters::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.containerservice/managedclusters/abort",
        api_versions: managed_clusters::ABORT_API_VERSIONS,
        handler: managed_clusters::handle_abort,
    },
    ResourceTypeSpec {
        key: "microsoft.containerservice/locations/operations",
        api_versions: managed_clusters::API_VERSIONS,
        handler: managed_clusters::handle_operation,
    },
    ResourceTypeSpec {
        key: "microsoft.containerservice/locations/operationresults",
        api_versions: managed_clusters::API_VERSIONS,
        handler: managed_clusters::handle_operation,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/remediations",
        api_versions: remediations::API_VERSIONS,
        handler: remediations::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/remediations/cancel",
        api_versions: remediations::API_VERSIONS,
        handler: remediations::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/remediations/listdeployments",
        api_versions: remediations::API_VERSIONS,
        handler: remediations::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/policystates/triggerevaluation",
        api_versions: policy_states::API_VERSIONS,
        handler: policy_states::handle_trigger,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/policystates/summarize",
        api_versions: policy_states::API_VERSIONS,
        handler: policy_states::handle_summarize,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/policystates/queryresults",
        api_versions: policy_states::API_VERSIONS,
        handler: policy_states::handle_query,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/policyevents/queryresults",
        api_versions: policy_states::API_VERSIONS,
        handler: policy_states::handle_events_query,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/asyncoperationresults",
        api_versions: policy_states::API_VERSIONS,
        handler: policy_states::handle_async_result,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/deployments",
        api_versions: deployments::API_VERSIONS,
        handler: deployments::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/deployments/operationstatuses",
        api_versions: deployments::API_VERSIONS,
        handler: deployments::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/roleassignments",
        api_versions: role_assignments::API_VERSIONS,
        handler: role_assignments::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/roledefinitions",
        api_versions: role_assignments::API_VERSIONS,
        handler: role_assignments::handle_definitions,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policyexemptions",
        api_versions: EXEMPTION_API_VERSIONS,
        handler: policy_exemptions::handle,
    },
];

/// Handles an ARM request end to end, always adding ARM's response headers.
pub(crate) fn handle(state: &AppState, req: &Request, segments: &[String]) -> Response {
    let mut resp = match dispatch(state, req, segments) {
        Ok(resp) => resp,
        Err(e) => {
            if e.status.is_server_error() {
                log::error!("{} {}: {}", req.method, req.path, e.message);
            }
            e.into_response()
        }
    };
    add_arm_headers(state, req, &mut resp);
    resp
}

fn dispatch(state: &AppState, req: &Request, segments: &[String]) -> Result<Response, ArmError> {
    let principal = authenticate(state, req)?;
    let api_version = match req.query_param("api-version") {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => return Err(ArmError::missing_api_version()),
    };
    let path = ArmPath::parse(segments).ok_or_else(|| no_provider(&api_version, &req.path))?;
    let key = path.type_key();
    let Some(spec) = RESOURCE_TYPES.iter().find(|s| s.key == key) else {
        return Err(unknown_type(&path, &api_version));
    };
    if !spec.api_versions.contains(&api_version.as_str()) {
        return Err(ArmError::invalid_api_version(
            &api_version,
            &format!("{}/{}", path.namespace, path.type_display()),
            spec.api_versions,
        ));
    }
    let profile = state.fault_profile();
    let kind = OperationKind::of(&req.method);
    let subscription = match segments {
        [s, id, ..] if s.eq_ignore_ascii_case("subscriptions") => id.clone(),
        _ => "tenant".to_string(),
    };
    let mut remaining = None;
    if profile.throttle {
        let taken = state.observer.take(&subscription, &principal.oid, kind);
        if let Throttle::Allowed(left) = taken {
            remaining = Some(RemainingBudget(left));
        }
        if let Throttle::Refused(secs) = taken {
            let mut e = ArmError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "SubscriptionRequestsThrottled",
                format!(
                    "Number of '{}' requests for subscription '{subscription}' actor '{}' exceeded. Please try again after '{secs}' seconds after the additional tokens are available. Refer to https://aka.ms/arm-throttling",
                    kind.label().trim_end_matches('s'),
                    principal.oid
                ),
            );
            e.extra_mut().retry_after = Some(secs);
            e.extra_mut().injected = true;
            return Err(e);
        }
    }
    if profile.authorization_requests_per_minute > 0
        && path
            .namespace
            .eq_ignore_ascii_case("Microsoft.Authorization")
    {
        let limit = profile.authorization_requests_per_minute;
        if let Throttle::Refused(secs) = state.observer.take_provider(
            &path.namespace,
            &principal.oid,
            limit,
            std::time::Duration::from_secs(60),
        ) {
            let mut e = ArmError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ResourceRequestsThrottled",
                format!(
                    "Number of requests for Microsoft.Authorization exceeded the limit of '{limit}' for time interval '00:01:00'. Please try again after '{secs}' seconds."
                ),
            );
            e.extra_mut().retry_after = Some(secs);
            e.extra_mut().injected = true;
            return Err(e);
        }
    }
    if chance(profile.error_rate) {
        let mut e = if chance(0.5) {
            ArmError::internal(
                "Encountered internal server error (injected by the emulator's error_rate).",
            )
        } else {
            ArmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable (injected by the emulator's error_rate).",
            )
        };
        e.extra_mut().retry_after = Some(1);
        e.extra_mut().injected = true;
        return Err(e);
    }
    let key = crate::emulator::store::resource_key(&path.resource_id());
    if req.method == Method::GET
        && path.is_item()
        && profile.consistency_ms > 0
        && state.observer.within_window(
            &key,
            std::time::Duration::from_millis(profile.consistency_ms),
        )
    {
        let mut e = ArmError::not_found(
            "ResourceNotFound",
            format!(
                "The Resource '{}' was not found (eventual consistency window of the emulator).",
                path.resource_id()
            ),
        );
        e.extra_mut().injected = true;
        return Err(e);
    }
    let arm_req = ArmRequest {
        http: req,
        path,
        api_version,
        principal,
    };
    let mut resp = (spec.handler)(state, &arm_req)?;
    if req.method == Method::PUT && resp.status().is_success() {
        state.observer.wrote(&key);
    }
    if let Some(r) = remaining {
        resp.extensions_mut().insert(r);
    }
    Ok(resp)
}

/// A request ARM makes on a caller's behalf inside a deployment: routed like any other, with
/// the caller's claims and the template's api-version, but without throttling or injected
/// faults (the deployment as a whole met those already). Returns the status and JSON body.
pub(crate) fn internal_call(
    state: &AppState,
    on_behalf: &ArmRequest<'_>,
    principal: &Claims,
    method: Method,
    id: &str,
    api_version: &str,
    body: Option<&serde_json::Value>,
) -> Result<(StatusCode, serde_json::Value), ArmError> {
    let segments: Vec<String> = id
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let path = ArmPath::parse(&segments).ok_or_else(|| no_provider(api_version, id))?;
    let key = path.type_key();
    let Some(spec) = RESOURCE_TYPES.iter().find(|s| s.key == key) else {
        return Err(unknown_type(&path, api_version));
    };
    if !spec.api_versions.contains(&api_version) {
        return Err(ArmError::invalid_api_version(
            api_version,
            &format!("{}/{}", path.namespace, path.type_display()),
            spec.api_versions,
        ));
    }
    let http_req = Request {
        method,
        path: id.to_string(),
        query: vec![("api-version".to_string(), api_version.to_string())],
        headers: http::HeaderMap::new(),
        body: body
            .map(|b| bytes::Bytes::from(b.to_string()))
            .unwrap_or_default(),
        base_url: on_behalf.http.base_url.clone(),
    };
    let arm_req = ArmRequest {
        http: &http_req,
        path,
        api_version: api_version.to_string(),
        principal: principal.clone(),
    };
    let resp = (spec.handler)(state, &arm_req)?;
    let status = resp.status();
    let bytes = body_bytes(resp.into_body());
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, value))
}

fn spec_for(id: &str) -> Option<&'static ResourceTypeSpec> {
    let segments: Vec<String> = id
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let key = ArmPath::parse(&segments)?.type_key();
    RESOURCE_TYPES.iter().find(|s| s.key == key)
}

/// The newest api-version the emulator serves for the type of `id`.
pub(crate) fn latest_api_version(id: &str) -> Option<&'static str> {
    spec_for(id).and_then(|s| s.api_versions.iter().max().copied())
}

/// Whether the emulator serves `api_version` for the type of `id`.
pub(crate) fn supports_api_version(id: &str, api_version: &str) -> bool {
    spec_for(id).is_some_and(|s| s.api_versions.contains(&api_version))
}

/// `Namespace/type[/type...]` of a resource id in request casing (for RBAC actions).
pub(crate) fn resource_type_of(id: &str) -> String {
    let segments: Vec<String> = id
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    match ArmPath::parse(&segments) {
        Some(p) if p.namespace == path::RESOURCES_NAMESPACE && p.scope.is_empty() => {
            format!("Microsoft.Resources/{}", p.types.join("/"))
        }
        Some(p) => format!("{}/{}", p.namespace, p.types.join("/")),
        None => String::new(),
    }
}

/// The bytes of a complete in-memory body (every handler answers with one).
fn body_bytes(body: http_body_util::Full<bytes::Bytes>) -> bytes::Bytes {
    use http_body_util::BodyExt;
    let mut fut = std::pin::pin!(body.collect());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(collected)) => collected.to_bytes(),
        _ => bytes::Bytes::new(),
    }
}

/// The namespace exists but not this type → `InvalidResourceType`; otherwise the provider
/// itself is unknown.
fn unknown_type(path: &ArmPath, api_version: &str) -> ArmError {
    let namespace_known = RESOURCE_TYPES.iter().any(|s| {
        s.key
            .split('/')
            .next()
            .is_some_and(|ns| ns.eq_ignore_ascii_case(&path.namespace))
    });
    if namespace_known {
        ArmError::not_found(
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found in the namespace '{}' for api version '{api_version}'.",
                path.type_display(),
                path.namespace
            ),
        )
    } else {
        ArmError::not_found(
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location 'global' and API version '{api_version}' for type '{}'.",
                path.type_display()
            ),
        )
    }
}

fn no_provider(api_version: &str, raw_path: &str) -> ArmError {
    ArmError::not_found(
        "NoRegisteredProviderFound",
        format!("No registered resource provider found for API version '{api_version}' and path '{raw_path}'."),
    )
}

/// Verifies the bearer token, mapping failures to ARM's 401 codes.
pub(crate) fn authenticate(state: &AppState, req: &Request) -> Result<Claims, ArmError> {
    let challenge = |description: &str| {
        format!(
            "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{description}\"",
            req.base_url, state.identity.tenant_id
        )
    };
    let fail = |code: &str, message: String, description: &str| {
        let mut e = ArmError::new(StatusCode::UNAUTHORIZED, code, message);
        e.extra_mut().www_authenticate = Some(challenge(description));
        e
    };
    let Some(header) = req.header("authorization") else {
        return Err(fail(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.".to_string(),
            "The authentication failed because of missing 'Authorization' header.",
        ));
    };
    let token = match header.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        _ => return Err(fail(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format."
                .to_string(),
            "The authentication failed because of an invalid 'Authorization' header.",
        )),
    };
    state.signer.verify_arm(token).map_err(|e| match e {
        TokenError::Expired { exp, now } => {
            // ARM repeats the message as the challenge's error_description.
            let message = format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                format_dotnet_utc(exp),
                format_dotnet_utc(now)
            );
            fail("ExpiredAuthenticationToken", message.clone(), &message)
        }
        TokenError::WrongAudience { aud } => fail(
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'."
            ),
            "The access token has an invalid audience.",
        ),
        TokenError::Malformed | TokenError::BadSignature | TokenError::NotYetValid => fail(
            "InvalidAuthenticationToken",
            "The access token is invalid.".to_string(),
            "The access token is invalid.",
        ),
    })
}

/// Epoch seconds in .NET's invariant general format (`11/28/2026 9:05:03 PM`), which is how
/// ARM writes times into its authentication errors.
fn format_dotnet_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour12, meridiem) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!("{month}/{day}/{year} {hour12}:{minute:02}:{second:02} {meridiem}")
}

/// Tokens left in the caller's bucket while throttling is on, for the rate-limit header.
#[derive(Debug, Clone, Copy)]
struct RemainingBudget(u64);

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
) -> Result<T, ArmError> {
    if req.http.body.is_empty() {
        return Err(ArmError::bad_request(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'The request body is empty.'.",
        ));
    }
    serde_json::from_slice(&req.http.body).map_err(|e| {
        ArmError::bad_request(
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

/// ARM name rule for policy resources: no `<>*%&:\?.+/`, no trailing space.
pub(crate) fn check_policy_name(kind: &str, name: &str) -> Result<(), ArmError> {
    let bad = name.is_empty()
        || name.ends_with(' ')
        || name.chars().any(|c| "<>*%&:\\?.+/".contains(c))
        || name.len() > 128;
    if bad {
        return Err(ArmError::bad_request(
            "InvalidResourceName",
            format!("The {kind} name '{name}' is invalid. Names must not contain '<>*%&:\\?.+/', end with a space, or exceed 128 characters."),
        ));
    }
    Ok(())
}

/// ARM's name rule for resources without a stricter one of their own (remediations): no
/// `<>*%&:\?/+` or control characters, not ending with `.` or a space, at most 260 characters.
pub(crate) fn check_resource_name(kind: &str, name: &str) -> Result<(), ArmError> {
    let bad = name.is_empty()
        || name.ends_with(' ')
        || name.ends_with('.')
        || name
            .chars()
            .any(|c| c.is_control() || "<>*%&:\\?+/".contains(c))
        || name.chars().count() > 260;
    if bad {
        return Err(ArmError::bad_request(
            "InvalidResourceName",
            format!("The {kind} name '{name}' is invalid. Names must not contain '<>*%&:\\?+/' or control characters, end with '.' or a space, or exceed 260 characters."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::format_dotnet_utc;

    #[test]
    fn generic_resource_names() {
        use super::check_resource_name as check;
        assert!(check("remediation", "fix-privileged_1 (retry)").is_ok());
        for bad in [
            "",
            "a/b",
            "a%2Fb",
            "nul\u{0}x",
            "tab\tx",
            "trailing.",
            "trailing ",
            "a?b",
            "a+b",
        ] {
            assert!(check("remediation", bad).is_err(), "{bad:?}");
        }
        assert!(check("remediation", &"x".repeat(260)).is_ok());
        assert!(check("remediation", &"x".repeat(261)).is_err());
    }

    #[test]
    fn dotnet_times_as_arm_prints_them() {
        assert_eq!(format_dotnet_utc(0), "1/1/1970 12:00:00 AM");
        // 2020-08-24T11:21:39Z
        assert_eq!(format_dotnet_utc(1_598_268_099), "8/24/2020 11:21:39 AM");
        // 2024-02-29T13:05:09Z (leap day, afternoon)
        assert_eq!(format_dotnet_utc(1_709_211_909), "2/29/2024 1:05:09 PM");
        // 2026-12-31T12:00:00Z
        assert_eq!(format_dotnet_utc(1_798_718_400), "12/31/2026 12:00:00 PM");
    }
}
