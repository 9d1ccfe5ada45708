//! The cluster body the resource provider stores for a PUT: the caller's body with the defaults
//! AKS fills in (network profile, node resource group, the policy add-on's identity).

use serde_json::{json, Map, Value};

use crate::emulator::routes::arm::{system_data, ArmRequest};
use crate::emulator::state::new_guid;
use crate::emulator::store::resource_key;

use super::POLICY_ADDON;
use crate::policy::kubernetes::MANAGED_CLUSTERS;

#[allow(clippy::too_many_arguments)] // One call site; a struct would only rename the list.
pub(super) fn build_body(
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
    body["type"] = json!(MANAGED_CLUSTERS);
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
    let version = string_or(props, "kubernetesVersion", || "1.33.3".to_string());
    props.insert("currentKubernetesVersion".into(), json!(version));
    let dns_prefix = string_or(props, "dnsPrefix", || format!("{name}-dns"));
    let loc = location.to_ascii_lowercase();
    let suffix = &resource_key(id).len().to_string();
    props
        .entry("fqdn")
        .or_insert_with(|| json!(format!("{dns_prefix}-{suffix}.hcp.{loc}.azmk8s.io")));
    props
        .entry("azurePortalFQDN")
        .or_insert_with(|| json!(format!("{dns_prefix}-{suffix}.portal.hcp.{loc}.azmk8s.io")));
    let node_rg = string_or(props, "nodeResourceGroup", || {
        format!("MC_{group}_{name}_{loc}")
    });
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
pub(super) fn fill_policy_addon(
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

/// The string `props[key]` holds, or `default()` written there when it holds none.
fn string_or(
    props: &mut serde_json::Map<String, Value>,
    key: &str,
    default: impl FnOnce() -> String,
) -> String {
    let value = props
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(default);
    props.insert(key.into(), json!(value));
    value
}
