//! Replays every request/response example in `../shared/specs/arm` (Azure's own x-ms-examples)
//! against the emulator and compares status codes and body shapes: field names, JSON types and
//! nesting, not values. Example subscription ids are mapped to the emulator's subscription and
//! the resources the examples presuppose are created first.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{json, Value};

use super::{temporary, Emu};

/// Example file → (method, path template). Order matters: later examples use what earlier
/// ones create.
const EXAMPLES: &[(&str, &str, &str)] = &[
    // Clusters first: the examples' deny assignments (a naming convention) would rightly
    // refuse the example cluster once they exist.
    ("ManagedClustersCreate_Update.json", "PUT", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerService/managedClusters/{resourceName}"),
    ("ManagedClustersGet.json", "GET", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerService/managedClusters/{resourceName}"),
    ("createOrUpdatePolicyDefinition.json", "PUT", "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/policyDefinitions/{policyDefinitionName}"),
    ("createOrUpdatePolicyDefinitionAtManagementGroup.json", "PUT", "/providers/Microsoft.Management/managementGroups/{managementGroupId}/providers/Microsoft.Authorization/policyDefinitions/{policyDefinitionName}"),
    ("getPolicyDefinition.json", "GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/policyDefinitions/{policyDefinitionName}"),
    ("getBuiltinPolicyDefinition.json", "GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/policyDefinitions/{policyDefinitionName}"),
    ("listBuiltInPolicyDefinitions.json", "GET", "/providers/Microsoft.Authorization/policyDefinitions"),
    ("createOrUpdatePolicySetDefinition.json", "PUT", "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/policySetDefinitions/{policySetDefinitionName}"),
    ("getBuiltInPolicySetDefinition.json", "GET", "/providers/Microsoft.Authorization/policySetDefinitions/{policySetDefinitionName}"),
    ("createPolicyAssignment.json", "PUT", "/{scope}/providers/Microsoft.Authorization/policyAssignments/{policyAssignmentName}"),
    ("createPolicyAssignmentWithIdentity.json", "PUT", "/{scope}/providers/Microsoft.Authorization/policyAssignments/{policyAssignmentName}"),
    ("createPolicyAssignmentWithUserAssignedIdentity.json", "PUT", "/{scope}/providers/Microsoft.Authorization/policyAssignments/{policyAssignmentName}"),
    ("getPolicyAssignment.json", "GET", "/{scope}/providers/Microsoft.Authorization/policyAssignments/{policyAssignmentName}"),
    ("updatePolicyAssignmentWithIdentity.json", "PATCH", "/{scope}/providers/Microsoft.Authorization/policyAssignments/{policyAssignmentName}"),
    ("listPolicyAssignments.json", "GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/policyAssignments"),
    ("createOrUpdatePolicyExemption.json", "PUT", "/{scope}/providers/Microsoft.Authorization/policyExemptions/{policyExemptionName}"),
    ("getPolicyExemption.json", "GET", "/{scope}/providers/Microsoft.Authorization/policyExemptions/{policyExemptionName}"),
    ("listPolicyExemptionsForResourceGroup.json", "GET", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Authorization/policyExemptions"),
    ("deletePolicyExemption.json", "DELETE", "/{scope}/providers/Microsoft.Authorization/policyExemptions/{policyExemptionName}"),
    ("Remediations_CreateSubscriptionScope.json", "PUT", "/subscriptions/{subscriptionId}/providers/Microsoft.PolicyInsights/remediations/{remediationName}"),
    ("Remediations_GetSubscriptionScope.json", "GET", "/subscriptions/{subscriptionId}/providers/Microsoft.PolicyInsights/remediations/{remediationName}"),
    ("Remediations_CancelSubscriptionScope.json", "POST", "/subscriptions/{subscriptionId}/providers/Microsoft.PolicyInsights/remediations/{remediationName}/cancel"),
    ("Remediations_DeleteSubscriptionScope.json", "DELETE", "/subscriptions/{subscriptionId}/providers/Microsoft.PolicyInsights/remediations/{remediationName}"),
    ("PolicyStates_TriggerSubscriptionEvaluation.json", "POST", "/subscriptions/{subscriptionId}/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation"),
    ("PolicyStates_TriggerResourceGroupEvaluation.json", "POST", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation"),
    ("deletePolicyAssignment.json", "DELETE", "/{scope}/providers/Microsoft.Authorization/policyAssignments/{policyAssignmentName}"),
    ("deletePolicySetDefinition.json", "DELETE", "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/policySetDefinitions/{policySetDefinitionName}"),
    ("deletePolicyDefinition.json", "DELETE", "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/policyDefinitions/{policyDefinitionName}"),
];

/// Subscription ids used by the examples.
const EXAMPLE_SUBSCRIPTIONS: &[&str] = &[
    "ae640e6b-ba3e-4256-9d62-2993eecfa6f2",
    "35ee058e-5fa0-414c-8145-3ebb8d09b6e2",
    "fffedd8f-ffff-fffd-fffd-fffed2f84852",
    "00000000-0000-0000-0000-000000000000",
];

/// Built-ins the examples name, mapped to built-ins of our catalogue.
const BUILTIN_NAMES: &[(&str, &str)] = &[(
    "1f3afdf9-d0c9-4c3d-847f-89da613e70a8",
    "a8640138-9b0a-4a28-b8cb-1666c838647d",
)];

/// Maps whose keys are user data, compared only as "an object".
const OPEN_MAPS: &[&str] = &[
    "parameters",
    "metadata",
    "policyRule",
    "tags",
    "addonProfiles",
    "userAssignedIdentities",
    "config",
];

fn specs_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/specs/arm");
    dir.is_dir().then_some(dir)
}

fn find_example(root: &Path, name: &str) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|f| f == name) {
                return Some(path);
            }
        }
    }
    None
}

/// Differences in shape between an expected and an actual body, as readable paths.
fn shape_diff(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    let last = path.rsplit('.').next().unwrap_or_default();
    match (expected, actual) {
        (Value::Null, _) => {}
        (Value::Object(e), Value::Object(a)) => {
            if OPEN_MAPS.contains(&last) {
                return;
            }
            for (k, v) in e {
                match a.get(k) {
                    Some(av) => shape_diff(v, av, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k} missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let (Some(ef), Some(af)) = (e.first(), a.first()) {
                shape_diff(ef, af, &format!("{path}[0]"), out);
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_)) => {}
        (e, a) => out.push(format!("{path}: expected {} got {}", kind(e), kind(a))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

async fn seed(emu: &Emu, token: &str, sub: &str) {
    let put = |path: String, body: Value| async move {
        let (status, resp) = emu.put(token, &path, &body).await;
        assert!(status.is_success(), "seeding {path}: {status} {resp}");
    };
    for rg in ["rg1", "demoCluster", "TestResourceGroup", "myResourceGroup"] {
        put(
            format!("{sub}/resourceGroups/{rg}?api-version=2021-04-01"),
            json!({"location": "eastus"}),
        )
        .await;
    }
    put(
        "/providers/Microsoft.Management/managementGroups/MyManagementGroup?api-version=2021-04-01"
            .into(),
        json!({"properties": {"displayName": "My"}}),
    )
    .await;
    let rule = json!({"if": {"field": "type", "equals": "x"}, "then": {"effect": "audit"}});
    put(
        format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/7433c107-6db4-4ad1-b57a-a76dce0154a1?api-version=2025-03-01"),
        json!({"properties": {"mode": "All", "displayName": "Allowed storage SKUs", "description": "Storage SKUs",
            "parameters": {"listOfAllowedSKUs": {"type": "Array"}}, "policyRule": rule}}),
    )
    .await;
    put(
        format!("{sub}/providers/Microsoft.Authorization/policyAssignments/b101830944f246d8a14088c5?api-version=2025-03-01"),
        json!({"location": "eastus", "identity": {"type": "SystemAssigned"},
            "properties": {"policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/a8eff44f-8c92-45c3-a3fb-9880802d67a7",
                "displayName": "Add-on", "description": "Add-on everywhere",
                "parameters": {"effect": {"value": "DeployIfNotExists"}}}}),
    )
    .await;
    put(
        format!("{sub}/providers/Microsoft.PolicyInsights/remediations/myRemediation?api-version=2024-10-01"),
        json!({"properties": {"policyAssignmentId": format!("{sub}/providers/Microsoft.Authorization/policyAssignments/b101830944f246d8a14088c5")}}),
    )
    .await;
}

#[tokio::test]
async fn replays_azure_examples() {
    let Some(root) = specs_dir() else {
        eprintln!("note: ../shared/specs/arm not found; ARM conformance examples skipped");
        return;
    };
    // Long enough that a cancel finds the remediation running; nothing here waits for it.
    let emu = temporary(|config| config.faults.lro_ms = 60_000).await;
    let token = emu.token().await;
    let our_sub = emu.running.info().subscription_id.clone();
    let sub = format!("/subscriptions/{our_sub}");
    seed(&emu, &token, &sub).await;

    let mut failures = Vec::new();
    let mut replayed = 0;
    for (file, method, template) in EXAMPLES {
        let Some(path) = find_example(&root, file) else {
            eprintln!("note: example {file} not present; skipped");
            continue;
        };
        let mut text = std::fs::read_to_string(&path).expect("example readable");
        for example_sub in EXAMPLE_SUBSCRIPTIONS {
            text = text.replace(example_sub, &our_sub);
        }
        for (theirs, ours) in BUILTIN_NAMES {
            text = text.replace(theirs, ours);
        }
        // The CostManagement exemption needs its assignment; the set exists by then.
        if *file == "createOrUpdatePolicyExemption.json" {
            let body = json!({"properties": {"policyDefinitionId": format!("{sub}/providers/Microsoft.Authorization/policySetDefinitions/CostManagement"),
                "parameters": {}}});
            let url = format!("{sub}/providers/Microsoft.Authorization/policyAssignments/CostManagement?api-version=2025-03-01");
            let (status, resp) = emu.put(&token, &url, &body).await;
            assert!(
                status.is_success(),
                "seeding CostManagement assignment: {resp}"
            );
        }
        // The set can only go once nothing assigns it.
        if *file == "deletePolicySetDefinition.json" {
            let url = format!("{sub}/providers/Microsoft.Authorization/policyAssignments/CostManagement?api-version=2025-03-01");
            emu.delete(&token, &url).await;
        }
        let example: Value = serde_json::from_str(&text).expect("example is JSON");
        let params = &example["parameters"];
        let mut url = (*template).to_string();
        let mut query = vec![format!(
            "api-version={}",
            params["api-version"].as_str().unwrap_or_default()
        )];
        if let Some(map) = params.as_object() {
            for (k, v) in map {
                let Some(s) = v.as_str() else { continue };
                if k.starts_with('$') {
                    query.push(format!("{k}={}", super::urlencode(s)));
                } else {
                    url = url.replace(&format!("{{{k}}}"), s.trim_start_matches('/'));
                }
            }
        }
        let url = format!("{url}?{}", query.join("&"));
        let body = params.get("parameters").filter(|p| p.is_object());
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let (status, _, actual) = emu.send(&token, method.clone(), &url, body).await;
        replayed += 1;
        let responses = example["responses"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let Some(expected) = responses.get(status.as_str()) else {
            failures.push(format!(
                "{file}: {method} {url} answered {status} (examples: {:?}): {actual}",
                responses.keys().collect::<Vec<_>>()
            ));
            continue;
        };
        if let Some(expected_body) = expected.get("body") {
            let mut diffs = Vec::new();
            shape_diff(expected_body, &actual, "$", &mut diffs);
            // The Get example describes a different cluster (customer outbound IPs) than the
            // Create example that made ours (managed outbound IPs).
            diffs.retain(|d| {
                !(*file == "ManagedClustersGet.json"
                    && d.contains("loadBalancerProfile.outboundIPs"))
            });
            if !diffs.is_empty() {
                failures.push(format!("{file}: {}", diffs.join("; ")));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} examples differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(replayed >= 20, "only {replayed} examples replayed");
}
