//! AKS managed clusters with ARM's long-running operation shape.
//!
//! Operations are timers, not tasks: a write stores the cluster with a non-terminal
//! `provisioningState` and an operation record with its end time, and every later read
//! "settles" what has finished. That keeps state in the database only, so a restart (or a
//! kill -9) never loses an operation, and no background task races the request handlers.

use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};

use super::scope::{stored_of_type, Scope};
use super::{
    empty, error::ArmError, now_ms, now_rfc3339, ok_json, paging, parse_body, status_json,
    system_data, ArmRequest,
};
use crate::emulator::arm_policy;
use crate::emulator::faults::chance;
use crate::emulator::http::Response;
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::store::{resource_key, Change, StoredResource};

/// api-versions of managedClusters (stable and the previews recent clients send).
pub(crate) const API_VERSIONS: &[&str] = &[
    "2022-09-01",
    "2023-01-01",
    "2023-05-01",
    "2023-08-01",
    "2023-10-01",
    "2024-01-01",
    "2024-02-01",
    "2024-05-01",
    "2024-07-01",
    "2024-08-01",
    "2024-09-01",
    "2024-10-01",
    "2025-01-01",
    "2025-02-01",
    "2025-03-01",
    "2025-04-01",
    "2025-05-01",
    "2025-06-01",
    "2025-07-01",
    "2025-08-01",
    "2025-09-01",
    "2025-10-01",
    "2026-01-01",
    "2026-02-01",
    "2026-03-01",
    "2026-04-01",
    "2026-05-01",
    // Azure CLI 2.8x (`az aks`).
    "2026-06-01",
    "2026-07-01",
    // azure-mgmt-containerservice 41.x default.
    "2026-08-01",
];
/// api-versions with `abort` (AbortLatestOperation is in the stable API since 2023-07-01, so
/// the list above from 2023-08-01 on).
pub(crate) const ABORT_API_VERSIONS: &[&str] = API_VERSIONS.split_at(4).1;
const CLUSTER_TYPE: &str = "Microsoft.ContainerService/managedClusters";
const NAMESPACE_TYPE: &str = "microsoft.containerservice/managedclusters";
const POLICY_ADDON: &str = "azurepolicy";
const PAGE_SIZE: usize = 50;

/// `managedClusters` routes.
pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ArmError> {
    let scope = Scope::from_segments(&req.path.scope)?;
    scope.ensure_exists(state)?;
    let method = &req.http.method;
    match (req.path.types.len(), req.path.item_name()) {
        (1, None) if method == Method::GET => list(state, req, &scope),
        (1, Some(name)) => {
            if !matches!(scope.kind, super::scope::ScopeKind::ResourceGroup { .. }) {
                return Err(ArmError::not_found(
                    "InvalidResourceType",
                    "Managed clusters live in a resource group.",
                ));
            }
            let id = format!("{}/providers/{CLUSTER_TYPE}/{name}", scope.id);
            match *method {
                Method::GET => match settle(state, &id)? {
                    Some(stored) => Ok(with_etag(ok_json(&public(&stored)), &stored)),
                    None => Err(not_found(&id)),
                },
                Method::PUT => put(state, req, &id, name),
                Method::PATCH => patch(state, req, &id),
                Method::DELETE => delete(state, req, &id),
                _ => Err(ArmError::method_not_allowed(method)),
            }
        }
        _ => Err(ArmError::method_not_allowed(method)),
    }
}

/// `.../locations/{loc}/operations/{id}` (Azure-AsyncOperation) and
/// `.../locations/{loc}/operationresults/{id}` (Location).
pub(crate) fn handle_operation(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ArmError> {
    if req.http.method != Method::GET || !req.path.is_item() {
        return Err(ArmError::method_not_allowed(&req.http.method));
    }
    let requested = req.path.resource_id();
    // Both URLs name the same operation record.
    let op_id = {
        let lower = requested.to_ascii_lowercase();
        match lower.rfind("/operationresults/") {
            Some(i) => format!(
                "{}/operations/{}",
                &requested[..i],
                &requested[i + "/operationresults/".len()..]
            ),
            None => requested.clone(),
        }
    };
    let Some(op) = state.store.get(&op_id)? else {
        return Err(ArmError::not_found(
            "NotFound",
            format!(
                "Operation '{}' was not found.",
                req.path.item_name().unwrap_or_default()
            ),
        ));
    };
    let target = op.internal["target"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    settle(state, &target)?;
    let canceled = op.internal["canceled"].as_bool().unwrap_or(false);
    let done = canceled || now_ms() >= op.internal["done_ms"].as_u64().unwrap_or(0);
    let failed = op.internal["fail"].as_bool().unwrap_or(false);
    let is_results = req
        .path
        .types
        .last()
        .is_some_and(|t| t.eq_ignore_ascii_case("operationresults"));
    if is_results {
        if !done {
            let mut resp = empty(StatusCode::ACCEPTED);
            set_header(&mut resp, "location", &absolute(req, &requested));
            set_header(&mut resp, "retry-after", "1");
            return Ok(resp);
        }
        if canceled {
            return Err(canceled_error());
        }
        if failed {
            return Err(ArmError::internal(
                "The operation failed (injected by the emulator's lro_failure_rate).",
            ));
        }
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let mut body = op.body.clone();
    if canceled {
        let error = canceled_error();
        body["status"] = json!("Canceled");
        body["endTime"] = op.internal["end_time"].clone();
        body["error"] = json!({"code": error.code, "message": error.message});
    } else if done {
        body["status"] = json!(if failed { "Failed" } else { "Succeeded" });
        body["endTime"] = op.internal["end_time"].clone();
        body["percentComplete"] = json!(100);
        if failed {
            body["error"] = json!({"code": "InternalOperationError",
                "message": "The operation failed (injected by the emulator's lro_failure_rate)."});
        }
    } else {
        body["status"] = json!("InProgress");
    }
    Ok(ok_json(&body))
}

/// What a canceled operation reports.
fn canceled_error() -> ArmError {
    ArmError::new(
        StatusCode::CONFLICT,
        "OperationCanceled",
        "The operation was canceled by a request to abort the latest operation.",
    )
}

fn not_found(id: &str) -> ArmError {
    let group = id.split('/').nth(4).unwrap_or_default();
    ArmError::not_found(
        "ResourceNotFound",
        format!(
            "The Resource '{}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            super::scope::resource_type_and_name(id)
        ),
    )
}

/// The body clients see: stored body with the id in creator casing and the current eTag.
fn public(stored: &StoredResource) -> Value {
    let mut body = stored.body.clone();
    body["id"] = json!(stored.id);
    body["eTag"] = json!(stored.etag.trim_matches('"'));
    body
}

fn with_etag(mut resp: Response, stored: &StoredResource) -> Response {
    set_header(&mut resp, "etag", &stored.etag);
    resp
}

pub(crate) fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn absolute(req: &ArmRequest<'_>, id: &str) -> String {
    format!("{}{id}?api-version={}", req.http.base_url, req.api_version)
}

/// Applies a finished operation to the cluster (Succeeded, Failed or gone) and returns what
/// is there now.
pub(crate) fn settle(state: &AppState, id: &str) -> Result<Option<StoredResource>, ArmError> {
    let now = now_ms();
    let (_, after) = state.store.modify::<ArmError, _>(id, |current| {
        let Some(current) = current else {
            return Ok(Change::Keep);
        };
        let op = &current.internal["op"];
        let Some(done_ms) = op["done_ms"].as_u64() else {
            return Ok(Change::Keep);
        };
        if now < done_ms {
            return Ok(Change::Keep);
        }
        let failed = op["fail"].as_bool().unwrap_or(false);
        if op["kind"] == "Deleting" && !failed {
            return Ok(Change::Delete);
        }
        let mut body = current.body.clone();
        body["properties"]["provisioningState"] =
            json!(if failed { "Failed" } else { "Succeeded" });
        Ok(Change::Settle {
            body,
            internal: Value::Null,
        })
    })?;
    Ok(after)
}

/// True while an operation on the cluster has not finished.
fn running(stored: &StoredResource) -> bool {
    stored.internal["op"]["done_ms"]
        .as_u64()
        .is_some_and(|done| now_ms() < done)
}

fn busy(stored: &StoredResource) -> ArmError {
    let state = stored.body["properties"]["provisioningState"]
        .as_str()
        .unwrap_or("Updating");
    ArmError::new(
        StatusCode::CONFLICT,
        "OperationNotAllowed",
        format!("Operation is not allowed: Another operation ({state}) is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details"),
    )
}

/// `If-Match` / `If-None-Match` against the current eTag (quotes optional on both sides).
fn check_preconditions(
    req: &ArmRequest<'_>,
    current: Option<&StoredResource>,
) -> Result<(), ArmError> {
    let failed = |message: String| {
        ArmError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            message,
        )
    };
    let etag = current.map(|c| c.etag.trim_matches('"').to_string());
    if let Some(want) = req.http.header("if-match") {
        let want = want.trim().trim_matches('"');
        let ok = match &etag {
            Some(have) => want == "*" || want == have,
            None => false,
        };
        if !ok {
            return Err(failed(format!(
                "Operation failed: the eTag '{want}' in If-Match does not match the current eTag '{}'.",
                etag.unwrap_or_default()
            )));
        }
    }
    if let Some(none) = req.http.header("if-none-match") {
        let none = none.trim().trim_matches('"');
        let clash = match &etag {
            Some(have) => none == "*" || none == have,
            None => false,
        };
        if clash {
            return Err(failed(format!(
                "Operation failed: the resource exists and If-None-Match is '{none}'."
            )));
        }
    }
    Ok(())
}

/// Starts an operation: the record at the Azure-AsyncOperation URL and the cluster's timer.
fn new_operation(
    state: &AppState,
    cluster_id: &str,
    location: &str,
    kind: &str,
) -> Result<(String, Value), ArmError> {
    let profile = state.fault_profile();
    let op_name = new_guid();
    let sub = cluster_id.split('/').nth(2).unwrap_or_default();
    let location = if location.is_empty() {
        "eastus"
    } else {
        location
    };
    let op_id = format!(
        "/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{}/operations/{op_name}",
        location.to_ascii_lowercase()
    );
    let start = now_ms();
    let done_ms = start.saturating_add(profile.lro_ms);
    let fail = chance(profile.lro_failure_rate);
    let end_time = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(done_ms),
    )
    .to_string();
    state.store.modify::<ArmError, _>(&op_id, |_| {
        Ok(Change::Put {
            body: json!({"id": op_id, "name": op_name, "status": "InProgress", "startTime": now_rfc3339()}),
            internal: json!({"target": cluster_id, "done_ms": done_ms, "fail": fail, "end_time": end_time}),
        })
    })?;
    Ok((
        op_id.clone(),
        json!({"kind": kind, "done_ms": done_ms, "fail": fail, "operation": op_name, "op_id": op_id}),
    ))
}

fn put(state: &AppState, req: &ArmRequest<'_>, id: &str, name: &str) -> Result<Response, ArmError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !valid {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!("The value of parameter resourceName '{name}' is invalid. It must be 1-63 letters, digits, '-' or '_', starting and ending with a letter or digit."),
        ));
    }
    let request: Value = parse_body(req)?;
    if !request.is_object() {
        return Err(ArmError::bad_request(
            "InvalidRequestContent",
            "The request body must be a JSON object.",
        ));
    }
    let location = request
        .get("location")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidParameter",
                "The value of parameter location is invalid: location is required.",
            )
        })?
        .to_string();
    // ARM asks policy about the request as sent, before the resource provider sees it:
    // Modify alters the request first, then Deny judges the result.
    let mut request = request;
    let mut proposed = request.clone();
    proposed["type"] = json!(CLUSTER_TYPE);
    for (path, value) in
        arm_policy::write_modifications(state, id, &arm_policy::policy_view(id, &proposed))?
    {
        arm_policy::set_path(&mut request, &path, value);
    }
    let mut proposed = request.clone();
    proposed["type"] = json!(CLUSTER_TYPE);
    arm_policy::check_deny(state, id, &arm_policy::policy_view(id, &proposed), "PUT")?;
    settle(state, id)?;
    let current = state.store.get(id)?;
    check_preconditions(req, current.as_ref())?;
    if let Some(c) = &current {
        if running(c) {
            return Err(busy(c));
        }
        let old = c.body["location"].as_str().unwrap_or_default();
        if !old.eq_ignore_ascii_case(&location) {
            return Err(ArmError::bad_request(
                "BadRequest",
                format!(
                    "Changing property 'location' from '{old}' to '{location}' is not allowed."
                ),
            ));
        }
    }
    let kind = if current.is_some() {
        "Updating"
    } else {
        "Creating"
    };
    let (op_id, op) = new_operation(state, id, &location, kind)?;
    let tenant = state.identity.tenant_id.clone();
    let (before, after) = state.store.modify::<ArmError, _>(id, |previous| {
        // Re-checked inside the write transaction: a concurrent writer may have won.
        if let Some(p) = previous {
            if running(p) {
                return Err(busy(p));
            }
        }
        if let (None, Some(p)) = (&current, previous) {
            return Err(busy(p));
        }
        let body = build_body(
            &request,
            previous.map(|p| &p.body),
            id,
            name,
            &location,
            kind,
            &tenant,
            req,
        );
        Ok(Change::Put {
            body,
            internal: json!({"op": op}),
        })
    })?;
    let stored = after.ok_or_else(|| ArmError::internal("cluster write lost"))?;
    let status = if before.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut resp = with_etag(status_json(status, &public(&stored)), &stored);
    set_header(&mut resp, "azure-asyncoperation", &absolute(req, &op_id));
    set_header(&mut resp, "retry-after", "1");
    Ok(resp)
}

#[allow(clippy::too_many_arguments)] // One call site; a struct would only rename the list.
fn build_body(
    request: &Value,
    previous: Option<&Value>,
    id: &str,
    name: &str,
    location: &str,
    kind: &str,
    tenant: &str,
    req: &ArmRequest<'_>,
) -> Value {
    let mut body = request.clone();
    body["id"] = json!(id);
    body["name"] = json!(name);
    body["type"] = json!(CLUSTER_TYPE);
    body["location"] = json!(location);
    body["systemData"] = system_data(req, previous);
    // AKS always reports a SKU; templates that copy a cluster read it back.
    if !body["sku"].is_object() {
        body["sku"] = json!({"name": "Base", "tier": "Free"});
    }
    if !body["properties"].is_object() {
        body["properties"] = json!({});
    }
    let group = id.split('/').nth(4).unwrap_or_default().to_string();
    let sub = id.split('/').nth(2).unwrap_or_default().to_string();
    let prev_props = previous.map(|p| &p["properties"]);
    let props = body["properties"]
        .as_object_mut()
        .unwrap_or_else(|| unreachable!("set to an object above"));
    props.insert("provisioningState".into(), json!(kind));
    let version = props
        .get("kubernetesVersion")
        .and_then(Value::as_str)
        .unwrap_or("1.33.3")
        .to_string();
    props.insert("kubernetesVersion".into(), json!(version));
    props.insert("currentKubernetesVersion".into(), json!(version));
    let dns_prefix = props
        .get("dnsPrefix")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{name}-dns"));
    props.insert("dnsPrefix".into(), json!(dns_prefix));
    let loc = location.to_ascii_lowercase();
    let suffix = &resource_key(id).len().to_string();
    props
        .entry("fqdn")
        .or_insert_with(|| json!(format!("{dns_prefix}-{suffix}.hcp.{loc}.azmk8s.io")));
    props
        .entry("azurePortalFQDN")
        .or_insert_with(|| json!(format!("{dns_prefix}-{suffix}.portal.hcp.{loc}.azmk8s.io")));
    let node_rg = props
        .get("nodeResourceGroup")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("MC_{group}_{name}_{loc}"));
    props.insert("nodeResourceGroup".into(), json!(node_rg));
    props.entry("maxAgentPools").or_insert(json!(100));
    props.entry("enableRBAC").or_insert(json!(true));
    props.insert("powerState".into(), json!({"code": "Running"}));
    fill_network_defaults(props, &sub, &node_rg);
    if let Some(pools) = props
        .get_mut("agentPoolProfiles")
        .and_then(Value::as_array_mut)
    {
        for pool in pools.iter_mut().filter(|p| p.is_object()) {
            pool["provisioningState"] = json!("Succeeded");
            let pool_version = pool["orchestratorVersion"]
                .as_str()
                .unwrap_or(&version)
                .to_string();
            pool["orchestratorVersion"] = json!(pool_version);
            pool["currentOrchestratorVersion"] = json!(pool_version);
            if pool["count"].is_null() {
                pool["count"] = json!(1);
            }
            pool["powerState"] = json!({"code": "Running"});
            if pool["maxPods"].is_null() {
                pool["maxPods"] = json!(250);
            }
            pool["nodeImageVersion"] = json!("AKSUbuntu-2204gen2containerd-202510.01.0");
            if pool["upgradeSettings"].is_null() {
                pool["upgradeSettings"] = json!({"maxSurge": "10%"});
            }
            pool["eTag"] = json!(new_guid());
        }
    }
    if let Some(addons) = props
        .get_mut("addonProfiles")
        .and_then(Value::as_object_mut)
    {
        let prev_addons = prev_props
            .and_then(|p| p.get("addonProfiles"))
            .and_then(Value::as_object);
        fill_policy_addon(addons, prev_addons, &sub, &node_rg, name);
    }
    // Clusters without a service principal run on managed identities (AKS's default).
    let prev_kubelet = prev_props
        .and_then(|p| p.pointer("/identityProfile/kubeletidentity"))
        .cloned();
    let props = body["properties"]
        .as_object_mut()
        .unwrap_or_else(|| unreachable!("set to an object above"));
    let uses_msi = props
        .get("servicePrincipalProfile")
        .is_none_or(Value::is_null);
    if uses_msi {
        props.insert("servicePrincipalProfile".into(), json!({"clientId": "msi"}));
        if props.get("identityProfile").is_none_or(Value::is_null) {
            let kubelet = prev_kubelet.unwrap_or_else(|| json!({
                "resourceId": format!("/subscriptions/{sub}/resourcegroups/{node_rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool"),
                "clientId": new_guid(),
                "objectId": new_guid(),
            }));
            props.insert(
                "identityProfile".into(),
                json!({"kubeletidentity": kubelet}),
            );
        }
    }
    if uses_msi && body.get("identity").is_none_or(Value::is_null) {
        body["identity"] = json!({"type": "SystemAssigned"});
    }
    // The cluster identity gets ids the way AKS fills them.
    if let Some(identity) = body.get_mut("identity").and_then(Value::as_object_mut) {
        if identity
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("SystemAssigned"))
        {
            let principal = previous
                .and_then(|p| p.pointer("/identity/principalId"))
                .cloned()
                .unwrap_or_else(|| json!(new_guid()));
            identity.insert("principalId".into(), principal);
            identity.insert("tenantId".into(), json!(tenant));
        }
    }
    body
}

/// The network defaults AKS reports when the caller leaves them out (Azure CNI overlay, a
/// standard load balancer with one managed outbound IP).
fn fill_network_defaults(props: &mut Map<String, Value>, sub: &str, node_rg: &str) {
    let net = props.entry("networkProfile").or_insert_with(|| json!({}));
    if !net.is_object() {
        *net = json!({});
    }
    let defaults = [
        ("networkPlugin", json!("azure")),
        ("networkPluginMode", json!("overlay")),
        ("podCidr", json!("10.244.0.0/16")),
        ("serviceCidr", json!("10.0.0.0/16")),
        ("dnsServiceIP", json!("10.0.0.10")),
        ("outboundType", json!("loadBalancer")),
        ("loadBalancerSku", json!("standard")),
        ("ipFamilies", json!(["IPv4"])),
    ];
    for (k, v) in defaults {
        if net[k].is_null() {
            net[k] = v;
        }
    }
    let pod = net["podCidr"].clone();
    let service = net["serviceCidr"].clone();
    if net["podCidrs"].is_null() {
        net["podCidrs"] = json!([pod]);
    }
    if net["serviceCidrs"].is_null() {
        net["serviceCidrs"] = json!([service]);
    }
    if net["loadBalancerSku"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("standard"))
    {
        if !net["loadBalancerProfile"].is_object() {
            net["loadBalancerProfile"] = json!({"managedOutboundIPs": {"count": 1}});
        }
        let lb = &mut net["loadBalancerProfile"];
        if lb["allocatedOutboundPorts"].is_null() {
            lb["allocatedOutboundPorts"] = json!(0);
        }
        if lb["idleTimeoutInMinutes"].is_null() {
            lb["idleTimeoutInMinutes"] = json!(30);
        }
        lb["effectiveOutboundIPs"] = json!([{"id": format!(
            "/subscriptions/{sub}/resourceGroups/{node_rg}/providers/Microsoft.Network/publicIPAddresses/kubernetes-outbound-ip"
        )}]);
    }
}

/// Fills or clears `addonProfiles.azurepolicy.identity`, matching the key case-insensitively
/// and keeping the caller's casing. Ids survive updates while the add-on stays enabled.
fn fill_policy_addon(
    addons: &mut Map<String, Value>,
    previous: Option<&Map<String, Value>>,
    sub: &str,
    node_rg: &str,
    cluster: &str,
) {
    let Some((_, profile)) = addons
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case(POLICY_ADDON))
    else {
        return;
    };
    if !profile.is_object() {
        return;
    }
    let enabled = profile["enabled"].as_bool().unwrap_or(false);
    if !enabled {
        if let Some(obj) = profile.as_object_mut() {
            obj.remove("identity");
        }
        return;
    }
    let prev_identity = previous
        .and_then(|p| p.iter().find(|(k, _)| k.eq_ignore_ascii_case(POLICY_ADDON)))
        .map(|(_, v)| v)
        .filter(|v| v["enabled"].as_bool().unwrap_or(false))
        .and_then(|v| v.get("identity"))
        .filter(|i| i.is_object())
        .cloned();
    let identity = prev_identity.unwrap_or_else(|| {
        json!({
            "resourceId": format!("/subscriptions/{sub}/resourcegroups/{node_rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/azurepolicy-{cluster}"),
            "clientId": new_guid(),
            "objectId": new_guid(),
        })
    });
    profile["identity"] = identity;
}

/// `PATCH {tags}`: the same operation shape as a PUT (200, `provisioningState: Updating`,
/// `Azure-AsyncOperation`); the tags are in place at once, so reads never see them half set.
fn patch(state: &AppState, req: &ArmRequest<'_>, id: &str) -> Result<Response, ArmError> {
    let update: Value = parse_body(req)?;
    settle(state, id)?;
    let Some(current) = state.store.get(id)? else {
        return Err(not_found(id));
    };
    check_preconditions(req, Some(&current))?;
    if running(&current) {
        return Err(busy(&current));
    }
    let mut proposed = current.body.clone();
    if let Some(tags) = update.get("tags") {
        proposed["tags"] = tags.clone();
    }
    arm_policy::check_deny(state, id, &arm_policy::policy_view(id, &proposed), "PATCH")?;
    let location = current.body["location"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (op_id, op) = new_operation(state, id, &location, "Updating")?;
    let (_, after) = state.store.modify::<ArmError, _>(id, |previous| {
        let Some(previous) = previous else {
            return Err(not_found(id));
        };
        check_preconditions(req, Some(previous))?;
        if running(previous) {
            return Err(busy(previous));
        }
        let mut body = previous.body.clone();
        if let Some(tags) = update.get("tags") {
            body["tags"] = tags.clone();
        }
        body["properties"]["provisioningState"] = json!("Updating");
        body["systemData"] = system_data(req, Some(&previous.body));
        Ok(Change::Put {
            body,
            internal: json!({"op": op}),
        })
    })?;
    let stored = after.ok_or_else(|| ArmError::internal("cluster write lost"))?;
    let mut resp = with_etag(ok_json(&public(&stored)), &stored);
    let results = op_id.replacen("/operations/", "/operationresults/", 1);
    set_header(&mut resp, "azure-asyncoperation", &absolute(req, &op_id));
    set_header(&mut resp, "location", &absolute(req, &results));
    set_header(&mut resp, "retry-after", "1");
    Ok(resp)
}

/// `POST .../managedClusters/{name}/abort`: cancels the running operation. The cluster ends
/// `Canceled` (a canceled delete leaves it in place) and so does the operation status.
pub(crate) fn handle_abort(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ArmError> {
    if req.http.method != Method::POST {
        return Err(ArmError::method_not_allowed(&req.http.method));
    }
    let scope = Scope::from_segments(&req.path.scope)?;
    scope.ensure_exists(state)?;
    let name = req.path.names.first().cloned().unwrap_or_default();
    if req.path.names.len() != 1 {
        return Err(ArmError::method_not_allowed(&req.http.method));
    }
    let id = format!("{}/providers/{CLUSTER_TYPE}/{name}", scope.id);
    settle(state, &id)?;
    let mut aborted: Option<Value> = None;
    state.store.modify::<ArmError, _>(&id, |current| {
        let Some(current) = current else {
            return Err(not_found(&id));
        };
        if !running(current) {
            // Checked again inside the transaction: the operation may have just finished.
            return Err(nothing_to_abort(&name));
        }
        aborted = Some(current.internal["op"].clone());
        let mut body = current.body.clone();
        body["properties"]["provisioningState"] = json!("Canceled");
        Ok(Change::Settle {
            body,
            internal: Value::Null,
        })
    })?;
    let op = aborted.unwrap_or_default();
    let op_id = match op["op_id"].as_str() {
        Some(op_id) => op_id.to_string(),
        // Operations started before the id was kept in the timer.
        None => {
            let current = state.store.get(&id)?;
            let location = current
                .as_ref()
                .and_then(|c| c.body["location"].as_str())
                .unwrap_or("eastus")
                .to_ascii_lowercase();
            format!(
                "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{location}/operations/{}",
                id.split('/').nth(2).unwrap_or_default(),
                op["operation"].as_str().unwrap_or_default()
            )
        }
    };
    let end_time = now_rfc3339();
    state.store.modify::<ArmError, _>(&op_id, |record| {
        let Some(record) = record else {
            return Ok(Change::Keep);
        };
        let mut internal = record.internal.clone();
        internal["canceled"] = json!(true);
        internal["end_time"] = json!(end_time);
        Ok(Change::Settle {
            body: record.body.clone(),
            internal,
        })
    })?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn nothing_to_abort(name: &str) -> ArmError {
    ArmError::new(
        StatusCode::CONFLICT,
        "OperationNotAllowed",
        format!("Operation is not allowed: there is no ongoing operation on managed cluster '{name}' to abort; the latest operation has already completed."),
    )
}

fn delete(state: &AppState, req: &ArmRequest<'_>, id: &str) -> Result<Response, ArmError> {
    settle(state, id)?;
    let Some(current) = state.store.get(id)? else {
        return Ok(empty(StatusCode::NO_CONTENT));
    };
    check_preconditions(req, Some(&current))?;
    if running(&current) {
        return Err(busy(&current));
    }
    let location = current.body["location"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (op_id, op) = new_operation(state, id, &location, "Deleting")?;
    state.store.modify::<ArmError, _>(id, |previous| {
        let Some(previous) = previous else {
            return Ok(Change::Keep);
        };
        if running(previous) {
            return Err(busy(previous));
        }
        let mut body = previous.body.clone();
        body["properties"]["provisioningState"] = json!("Deleting");
        Ok(Change::Put {
            body,
            internal: json!({"op": op}),
        })
    })?;
    let mut resp = empty(StatusCode::ACCEPTED);
    let results = op_id.replacen("/operations/", "/operationresults/", 1);
    set_header(&mut resp, "location", &absolute(req, &results));
    set_header(&mut resp, "azure-asyncoperation", &absolute(req, &op_id));
    set_header(&mut resp, "retry-after", "1");
    Ok(resp)
}

fn list(state: &AppState, req: &ArmRequest<'_>, scope: &Scope) -> Result<Response, ArmError> {
    let prefix = format!("{}/", resource_key(&scope.id));
    let mut items = Vec::new();
    for (_, stored) in stored_of_type(state, NAMESPACE_TYPE)? {
        if !resource_key(&stored.id).starts_with(&prefix) {
            continue;
        }
        if let Some(current) = settle(state, &stored.id)? {
            items.push(public(&current));
        }
    }
    Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
}

/// Clusters in (or at) a scope, settled: for compliance summaries.
pub(crate) fn clusters_under(
    state: &AppState,
    scope: &Scope,
) -> Result<Vec<StoredResource>, ArmError> {
    let mut out = Vec::new();
    for (_, stored) in stored_of_type(state, NAMESPACE_TYPE)? {
        if !scope.contains(state, &stored.id)? {
            continue;
        }
        if let Some(current) = settle(state, &stored.id)? {
            out.push(current);
        }
    }
    Ok(out)
}

/// True when the cluster's Azure Policy add-on is enabled.
pub(crate) fn policy_addon_enabled(cluster: &Value) -> bool {
    cluster["properties"]["addonProfiles"]
        .as_object()
        .and_then(|a| a.iter().find(|(k, _)| k.eq_ignore_ascii_case(POLICY_ADDON)))
        .is_some_and(|(_, v)| v["enabled"].as_bool().unwrap_or(false))
}

/// Writes a remediation's property changes to a cluster, as the deployment's PUT would: keys
/// matched case-insensitively (an existing key keeps its casing), missing objects created, and
/// the add-on profile completed by the resource provider as on any PUT.
pub(crate) fn apply_changes(
    state: &AppState,
    id: &str,
    changes: &[(Vec<String>, Option<Value>)],
) -> Result<(), ArmError> {
    state.store.modify::<ArmError, _>(id, |current| {
        let Some(current) = current else {
            return Ok(Change::Keep);
        };
        let mut body = current.body.clone();
        let previous = body["properties"]["addonProfiles"].as_object().cloned();
        for (path, value) in changes {
            arm_policy::set_path(&mut body, path, value.clone());
        }
        let sub = id.split('/').nth(2).unwrap_or_default().to_string();
        let name = id.rsplit('/').next().unwrap_or_default().to_string();
        let node_rg = body["properties"]["nodeResourceGroup"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(addons) = body["properties"]["addonProfiles"].as_object_mut() {
            fill_policy_addon(addons, previous.as_ref(), &sub, &node_rg, &name);
        }
        Ok(Change::Put {
            body,
            internal: current.internal.clone(),
        })
    })?;
    Ok(())
}
