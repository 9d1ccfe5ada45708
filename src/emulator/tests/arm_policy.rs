//! ARM-mode policy: Deny at write time, states for Audit/…IfNotExists/Modify, and what
//! assignments honour (enforcement mode, notScopes, exemptions, overrides, resource
//! selectors, management groups), next to Kubernetes-mode assignments.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::clusters::fast_emu;
use super::{error_code, Emu};

const AKS_API: &str = "api-version=2026-04-01";
const API: &str = "api-version=2025-03-01";
const INSIGHTS: &str = "api-version=2024-10-01";
const MG_API: &str = "api-version=2021-04-01";
const NO_PRIVILEGE: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";

/// A local-accounts rule written like a built-in, but not one the emulator ships.
fn local_accounts_definition() -> Value {
    json!({"properties": {
        "mode": "Indexed",
        "displayName": "Clusters should have local accounts disabled",
        "parameters": {"effect": {"type": "String", "defaultValue": "Audit",
            "allowedValues": ["Audit", "Deny", "Disabled"]}},
        "policyRule": {
            "if": {"allOf": [
                {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
                {"field": "Microsoft.ContainerService/managedClusters/disableLocalAccounts", "notEquals": true}
            ]},
            "then": {"effect": "[parameters('effect')]"}
        }
    }})
}

/// Modify: the `cost` tag on every cluster, from a parameter (default `cc-1`).
fn cost_tag_definition() -> Value {
    json!({"properties": {
        "mode": "Indexed", "displayName": "Cost centre tag",
        "parameters": {"value": {"type": "String", "defaultValue": "cc-1"}},
        "policyRule": {"if": {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
            "then": {"effect": "modify", "details": {
                "roleDefinitionIds": ["/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"],
                "operations": [{"operation": "addOrReplace", "field": "tags['cost']", "value": "[parameters('value')]"}]}}}}})
}

/// Assignment properties: `definition` with its parameters' defaults.
fn plain(definition: &str) -> Value {
    json!({"policyDefinitionId": definition})
}

/// Assignment properties: `definition` with its `effect` parameter set to Deny.
fn deny_with(definition: &str) -> Value {
    json!({"policyDefinitionId": definition, "parameters": {"effect": {"value": "Deny"}}})
}

async fn put(emu: &Emu, token: &str, url: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, resp) = emu.send(token, Method::PUT, url, Some(&body)).await;
    (status, resp)
}

fn cluster_url(sub: &str, rg: &str, name: &str) -> String {
    format!("{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}?{AKS_API}")
}

/// PUTs a cluster with nothing but a location (westeurope), as a minimal client does.
async fn put_cluster(
    emu: &Emu,
    token: &str,
    sub: &str,
    rg: &str,
    name: &str,
) -> (StatusCode, Value) {
    let body = json!({"location": "westeurope"});
    put(emu, token, &cluster_url(sub, rg, name), body).await
}

async fn define(emu: &Emu, token: &str, sub: &str, name: &str, body: Value) -> String {
    let id = format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/{name}");
    let (status, resp) = put(emu, token, &format!("{id}?{API}"), body).await;
    assert!(status.is_success(), "{resp}");
    id
}

async fn assign(emu: &Emu, token: &str, scope: &str, name: &str, properties: Value) -> String {
    let id = format!("{scope}/providers/Microsoft.Authorization/policyAssignments/{name}");
    let (status, resp) = put(
        emu,
        token,
        &format!("{id}?{API}"),
        json!({"properties": properties}),
    )
    .await;
    assert!(status.is_success(), "{resp}");
    id
}

async fn states(emu: &Emu, token: &str, sub: &str) -> Vec<Value> {
    let url = format!(
        "{sub}/providers/Microsoft.PolicyInsights/policyStates/latest/queryResults?{INSIGHTS}"
    );
    let (status, _, body) = emu.send(token, Method::POST, &url, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["value"].as_array().cloned().unwrap_or_default()
}

fn state_of<'a>(rows: &'a [Value], assignment: &str, cluster: &str) -> Option<&'a str> {
    rows.iter()
        .find(|r| {
            r["policyAssignmentId"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(assignment))
                && r["resourceId"]
                    .as_str()
                    .is_some_and(|c| c.ends_with(&format!("/{cluster}")))
        })
        .and_then(|r| r["complianceState"].as_str())
}

#[tokio::test]
async fn deny_refuses_non_compliant_writes_with_policy_violation_details() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (emu, token, sub) = fast_emu(dir.path(), 100).await;
    let def = define(
        &emu,
        &token,
        &sub,
        "local-accounts",
        local_accounts_definition(),
    )
    .await;
    let assignment = assign(
        &emu,
        &token,
        &sub,
        "no-local",
        json!({
        "policyDefinitionId": def, "displayName": "No local accounts",
        "parameters": {"effect": {"value": "Deny"}}}),
    )
    .await;

    let (status, body) = put_cluster(&emu, &token, &sub, "rg", "bad").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "RequestDisallowedByPolicy");
    assert_eq!(body["error"]["target"], "bad");
    let info = &body["error"]["additionalInfo"][0];
    assert_eq!(info["type"], "PolicyViolation");
    assert_eq!(info["info"]["policyDefinitionId"], def.as_str());
    assert_eq!(info["info"]["policyAssignmentId"], assignment.as_str());
    assert_eq!(
        info["info"]["policyDefinitionDisplayName"],
        "Clusters should have local accounts disabled"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("was disallowed by policy"));
    // Nothing was created.
    let (status, _, _) = emu.get(Some(&token), &cluster_url(&sub, "rg", "bad")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = put(
        &emu,
        &token,
        &cluster_url(&sub, "rg", "good"),
        json!({"location": "westeurope", "properties": {"disableLocalAccounts": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Overrides change the effect without touching the assignment's parameters.
    assign(
        &emu,
        &token,
        &sub,
        "no-local",
        json!({
        "policyDefinitionId": def, "parameters": {"effect": {"value": "Deny"}},
        "overrides": [{"kind": "policyEffect", "value": "Audit"}]}),
    )
    .await;
    let (status, body) = put_cluster(&emu, &token, &sub, "rg", "audited").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rows = states(&emu, &token, &sub).await;
    assert_eq!(
        state_of(&rows, &assignment, "audited"),
        Some("NonCompliant")
    );
    assert_eq!(state_of(&rows, &assignment, "good"), Some("Compliant"));
}

#[tokio::test]
async fn enforcement_mode_not_scopes_exemptions_and_selectors_let_writes_through() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (emu, token, sub) = fast_emu(dir.path(), 100).await;
    let (status, body) = put(
        &emu,
        &token,
        &format!("{sub}/resourceGroups/sandbox?api-version=2021-04-01"),
        json!({"location": "westeurope"}),
    )
    .await;
    assert!(status.is_success(), "{body}");
    let def = define(
        &emu,
        &token,
        &sub,
        "local-accounts",
        local_accounts_definition(),
    )
    .await;

    // DoNotEnforce: admitted, reported non-compliant.
    let soft = assign(
        &emu,
        &token,
        &sub,
        "soft",
        json!({"policyDefinitionId": def,
        "enforcementMode": "DoNotEnforce", "parameters": {"effect": {"value": "Deny"}}}),
    )
    .await;
    let (status, body) = put_cluster(&emu, &token, &sub, "rg", "c1").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rows = states(&emu, &token, &sub).await;
    assert_eq!(state_of(&rows, &soft, "c1"), Some("NonCompliant"));

    // notScopes keep a resource group out of reach.
    let hard = assign(
        &emu,
        &token,
        &sub,
        "hard",
        json!({"policyDefinitionId": def,
        "notScopes": [format!("{sub}/resourceGroups/sandbox")],
        "parameters": {"effect": {"value": "Deny"}}}),
    )
    .await;
    let (status, _) = put_cluster(&emu, &token, &sub, "sandbox", "c2").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = put_cluster(&emu, &token, &sub, "rg", "c3").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // An exemption on the resource group lifts the deny there.
    let exemption =
        format!("{sub}/resourceGroups/rg/providers/Microsoft.Authorization/policyExemptions/ok");
    let (status, body) = put(
        &emu,
        &token,
        &format!("{exemption}?api-version=2022-07-01-preview"),
        json!({"properties": {"policyAssignmentId": hard, "exemptionCategory": "Waiver"}}),
    )
    .await;
    assert!(status.is_success(), "{body}");
    let (status, body) = put_cluster(&emu, &token, &sub, "rg", "c3").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rows = states(&emu, &token, &sub).await;
    assert_eq!(state_of(&rows, &hard, "c3"), Some("Exempt"));
    assert_eq!(
        state_of(&rows, &hard, "c2"),
        None,
        "notScopes leave no state"
    );

    // Resource selectors: only clusters in eastus are evaluated.
    assign(&emu, &token, &sub, "eastonly", json!({"policyDefinitionId": def,
        "notScopes": [format!("{sub}/resourceGroups/rg")],
        "resourceSelectors": [{"name": "east", "selectors": [{"kind": "resourceLocation", "in": ["eastus"]}]}],
        "parameters": {"effect": {"value": "Deny"}}})).await;
    let (status, _) = put_cluster(&emu, &token, &sub, "sandbox", "west").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = put(
        &emu,
        &token,
        &cluster_url(&sub, "sandbox", "east"),
        json!({"location": "eastus"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn management_group_assignments_cover_subscriptions_below() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (emu, token, sub) = fast_emu(dir.path(), 100).await;
    let sub_id = sub.trim_start_matches("/subscriptions/").to_string();
    let top = "/providers/Microsoft.Management/managementGroups/top";
    let child = "/providers/Microsoft.Management/managementGroups/leaf";
    let (status, _) = put(
        &emu,
        &token,
        &format!("{top}?{MG_API}"),
        json!({"properties": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = put(
        &emu,
        &token,
        &format!("{child}?{MG_API}"),
        json!({"properties": {"details": {"parent": {"id": top}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, _) = emu
        .send(
            &token,
            Method::PUT,
            &format!("{child}/subscriptions/{sub_id}?{MG_API}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let def = define(
        &emu,
        &token,
        top,
        "local-accounts",
        local_accounts_definition(),
    )
    .await;
    assign(&emu, &token, top, "everywhere", deny_with(&def)).await;
    let (status, body) = put_cluster(&emu, &token, &sub, "rg", "c1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn resource_group_rules_in_all_mode_deny_and_indexed_mode_skips_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (emu, token, sub) = fast_emu(dir.path(), 100).await;
    let rule = |mode: &str| {
        json!({"properties": {"mode": mode, "displayName": "Groups need an owner tag",
        "policyRule": {"if": {"allOf": [
            {"field": "type", "equals": "Microsoft.Resources/subscriptions/resourceGroups"},
            {"field": "tags['owner']", "exists": false}]}, "then": {"effect": "deny"}}}})
    };
    let indexed = define(&emu, &token, &sub, "owner-indexed", rule("Indexed")).await;
    assign(&emu, &token, &sub, "owner-indexed", plain(&indexed)).await;
    let rg = |name: &str| format!("{sub}/resourceGroups/{name}?api-version=2021-04-01");
    let (status, _) = put(&emu, &token, &rg("free"), json!({"location": "westeurope"})).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "Indexed mode does not evaluate resource groups"
    );
    let all = define(&emu, &token, &sub, "owner-all", rule("All")).await;
    assign(&emu, &token, &sub, "owner-all", plain(&all)).await;
    let (status, body) = put(
        &emu,
        &token,
        &rg("untagged"),
        json!({"location": "westeurope"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "RequestDisallowedByPolicy");
    let (status, _) = put(
        &emu,
        &token,
        &rg("tagged"),
        json!({"location": "westeurope", "tags": {"Owner": "me"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = emu
        .send(
            &token,
            Method::PATCH,
            &rg("tagged"),
            Some(&json!({"tags": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn if_not_exists_and_modify_states_with_kubernetes_mode_alongside() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (emu, token, sub) = fast_emu(dir.path(), 100).await;
    // Clusters from before the assignments: Modify only changes later writes.
    let (status, body) = put_cluster(&emu, &token, &sub, "rg", "plain").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = put(&emu, &token, &cluster_url(&sub, "rg", "tidy"), json!({"location": "westeurope",
        "tags": {"cost": "cc-1"},
        "properties": {"securityProfile": {"imageCleaner": {"enabled": true, "intervalHours": 24}}}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let aine = define(&emu, &token, &sub, "image-cleaner", json!({"properties": {
        "mode": "Indexed", "displayName": "Image Cleaner on",
        "policyRule": {"if": {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
            "then": {"effect": "AuditIfNotExists", "details": {
                "type": "Microsoft.ContainerService/managedClusters", "name": "[field('name')]",
                "existenceCondition": {"field": "Microsoft.ContainerService/managedClusters/securityProfile.imageCleaner.enabled", "equals": "true"}}}}}})).await;
    let modify = define(&emu, &token, &sub, "cost-tag", cost_tag_definition()).await;
    let a_aine = assign(&emu, &token, &sub, "cleaner", plain(&aine)).await;
    let a_modify = assign(&emu, &token, &sub, "cost", plain(&modify)).await;
    let a_k8s = assign(&emu, &token, &sub, "noprivileged", plain(NO_PRIVILEGE)).await;
    let rows = states(&emu, &token, &sub).await;
    assert_eq!(state_of(&rows, &a_aine, "plain"), Some("NonCompliant"));
    assert_eq!(state_of(&rows, &a_aine, "tidy"), Some("Compliant"));
    assert_eq!(state_of(&rows, &a_modify, "plain"), Some("NonCompliant"));
    assert_eq!(state_of(&rows, &a_modify, "tidy"), Some("Compliant"));
    // The Kubernetes-mode assignment reports from Gatekeeper (nothing admitted: compliant).
    assert_eq!(state_of(&rows, &a_k8s, "plain"), Some("Compliant"));
}

#[tokio::test]
async fn new_assignments_take_effect_after_the_evaluation_delay_without_a_trigger() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (emu, token, sub) = fast_emu(dir.path(), 100).await;
    let (status, body) = emu
        .set_faults(&token, json!({"policy_evaluation_ms": 1500}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let def = define(
        &emu,
        &token,
        &sub,
        "local-accounts",
        local_accounts_definition(),
    )
    .await;
    let a = assign(&emu, &token, &sub, "later", deny_with(&def)).await;
    // Within the evaluation cycle the assignment is not in effect yet: no deny, no states.
    let (status, body) = put_cluster(&emu, &token, &sub, "rg", "early").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        state_of(&states(&emu, &token, &sub).await, &a, "early"),
        None
    );
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    assert_eq!(
        state_of(&states(&emu, &token, &sub).await, &a, "early"),
        Some("NonCompliant")
    );
    let (status, body) = put_cluster(&emu, &token, &sub, "rg", "late").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

async fn remediate(emu: &Emu, token: &str, sub: &str, name: &str, assignment: &str) {
    let url = format!("{sub}/providers/Microsoft.PolicyInsights/remediations/{name}?{INSIGHTS}");
    let (status, body) = put(
        emu,
        token,
        &url,
        json!({"properties": {"policyAssignmentId": assignment}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut last = Value::Null;
    let patience = super::Patience::new();
    while patience.lasts() {
        let (_, _, r) = emu.get(Some(token), &url).await;
        if r["properties"]["provisioningState"] == "Succeeded" {
            return;
        }
        last = r;
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let list = url.replace("?", "/listDeployments?");
    let (_, _, deployments) = emu.send(token, Method::POST, &list, None).await;
    panic!("remediation {name} never succeeded: {last} {deployments}");
}

/// Reads the cluster in an outer deployment's parameters and writes it back with Image
/// Cleaner on in an inner-scope nested one.
fn cleaner_deployment() -> Value {
    let write = json!({"type": "Microsoft.ContainerService/managedClusters", "apiVersion": "2024-10-01",
        "name": "[parameters('c').name]", "location": "[parameters('c').location]", "tags": "[if(contains(parameters('c'), 'tags'), parameters('c').tags, json('null'))]",
        "properties": "[union(parameters('c').properties, createObject('securityProfile', createObject('imageCleaner', createObject('enabled', true, 'intervalHours', 24))))]"});
    let nested = json!({"type": "Microsoft.Resources/deployments", "apiVersion": "2021-04-01",
        "name": "[concat('cleaner-', parameters('name'))]",
        "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"},
            "parameters": {"c": {"value": "[reference(resourceId('Microsoft.ContainerService/managedClusters', parameters('name')), '2024-10-01', 'Full')]"}},
            "template": {"contentVersion": "1.0.0.0", "parameters": {"c": {"type": "object"}}, "resources": [write]}}});
    json!({"properties": {"mode": "incremental",
        "parameters": {"name": {"value": "[field('name')]"}},
        "template": {"contentVersion": "1.0.0.0", "parameters": {"name": {"type": "string"}}, "resources": [nested]}}})
}

#[tokio::test]
async fn remediation_runs_what_each_definition_asks_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (emu, token, sub) = fast_emu(dir.path(), 100).await;
    // A cluster from before the assignments: Modify only changes later writes.
    let url = cluster_url(&sub, "rg", "c1");
    let (status, body) = put(&emu, &token, &url, json!({"location": "westeurope"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let dine = define(&emu, &token, &sub, "image-cleaner", json!({"properties": {
        "mode": "Indexed", "displayName": "Deploy Image Cleaner",
        "policyRule": {"if": {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
            "then": {"effect": "DeployIfNotExists", "details": {
                "type": "Microsoft.ContainerService/managedClusters", "name": "[field('name')]",
                "roleDefinitionIds": ["/providers/Microsoft.Authorization/roleDefinitions/ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8"],
                "existenceCondition": {"field": "Microsoft.ContainerService/managedClusters/securityProfile.imageCleaner.enabled", "equals": "true"},
                "deployment": cleaner_deployment()}}}}})).await;
    let modify = define(&emu, &token, &sub, "cost-tag", cost_tag_definition()).await;
    let a_dine = assign(&emu, &token, &sub, "cleaner", plain(&dine)).await;
    let a_modify = assign(
        &emu,
        &token,
        &sub,
        "cost",
        json!({"policyDefinitionId": modify,
        "parameters": {"value": {"value": "cc-42"}}}),
    )
    .await;
    let rows = states(&emu, &token, &sub).await;
    assert_eq!(state_of(&rows, &a_dine, "c1"), Some("NonCompliant"));
    assert_eq!(state_of(&rows, &a_modify, "c1"), Some("NonCompliant"));
    // Both remediate as their assignment's identity, which needs a role allowing the writes.
    for (assignment, definition, parameters) in [
        (&a_dine, &dine, json!({})),
        (&a_modify, &modify, json!({"value": {"value": "cc-42"}})),
    ] {
        let (status, body) = put(
            &emu,
            &token,
            &format!("{assignment}?{API}"),
            json!({
            "location": "westeurope", "identity": {"type": "SystemAssigned"},
            "properties": {"policyDefinitionId": definition, "parameters": parameters}}),
        )
        .await;
        assert!(status.is_success(), "{body}");
        let principal = body["identity"]["principalId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (status, body) = put(&emu, &token,
            &format!("{sub}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01", uuid::Uuid::new_v4()),
            json!({"properties": {"principalId": principal,
                "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"}})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    remediate(&emu, &token, &sub, "fix-cleaner", &a_dine).await;
    remediate(&emu, &token, &sub, "fix-cost", &a_modify).await;
    let (_, _, cluster) = emu.get(Some(&token), &url).await;
    assert_eq!(
        cluster["properties"]["securityProfile"]["imageCleaner"]["enabled"], true,
        "{cluster}"
    );
    assert_eq!(cluster["tags"]["cost"], "cc-42", "{cluster}");
    // Remediating Image Cleaner leaves the policy add-on alone.
    let addon_on = cluster["properties"]["addonProfiles"]["azurepolicy"]["enabled"] == true;
    assert!(!addon_on, "{cluster}");
    let rows = states(&emu, &token, &sub).await;
    assert_eq!(state_of(&rows, &a_dine, "c1"), Some("Compliant"));
    assert_eq!(state_of(&rows, &a_modify, "c1"), Some("Compliant"));
}

/// The local-accounts Deny built-in from Azure/azure-policy (served with `--builtins`), not
/// known to the emulator by id: assigned with Deny, it refuses a cluster with local accounts.
#[tokio::test]
async fn real_local_accounts_builtin_denies_from_the_builtins_directory() {
    let specs =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/specs/azure-policy");
    let file = specs
        .join("built-in-policies/policyDefinitions/Kubernetes/AKS_DisableLocalAccounts_Deny.json");
    let Ok(text) = std::fs::read_to_string(&file) else {
        eprintln!("skipping: {} not present", file.display());
        return;
    };
    let builtin: Value = serde_json::from_str(&text).expect("built-in is JSON");
    let name = builtin["name"].as_str().expect("name").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = crate::emulator::Config::new(dir.path());
    config.builtins_dir = Some(specs);
    config.faults.lro_ms = 100;
    let emu = super::start_config(config).await;
    let token = emu.token().await;
    let sub = format!("/subscriptions/{}", emu.running.info().subscription_id);
    let (status, body) = put(
        &emu,
        &token,
        &format!("{sub}/resourceGroups/rg?api-version=2021-04-01"),
        json!({"location": "westeurope"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let def = format!("/providers/Microsoft.Authorization/policyDefinitions/{name}");
    let a = assign(&emu, &token, &sub, "local", deny_with(&def)).await;
    let (status, body) = put(
        &emu,
        &token,
        &cluster_url(&sub, "rg", "c1"),
        json!({"location": "westeurope", "properties": {"disableLocalAccounts": false}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let info = &body["error"]["additionalInfo"][0]["info"];
    assert_eq!(info["policyDefinitionId"], def.as_str(), "{body}");
    assert_eq!(info["policyAssignmentId"], a.as_str(), "{body}");
    assert_eq!(
        info["policyDefinitionDisplayName"], builtin["properties"]["displayName"],
        "{body}"
    );
    let (status, body) = put(
        &emu,
        &token,
        &cluster_url(&sub, "rg", "c2"),
        json!({"location": "westeurope", "properties": {"disableLocalAccounts": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn modify_alters_the_write_before_deny_judges_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (emu, token, sub) = fast_emu(dir.path(), 100).await;
    let modify = define(&emu, &token, &sub, "local-off", json!({"properties": {
        "mode": "Indexed", "displayName": "Turn local accounts off",
        "policyRule": {"if": {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
            "then": {"effect": "modify", "details": {
                "roleDefinitionIds": ["/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"],
                "operations": [
                    {"operation": "addOrReplace", "field": "Microsoft.ContainerService/managedClusters/disableLocalAccounts", "value": true},
                    {"operation": "add", "field": "tags['owner']", "value": "platform"}]}}}}})).await;
    let deny = define(
        &emu,
        &token,
        &sub,
        "local-accounts",
        local_accounts_definition(),
    )
    .await;
    let a_modify = assign(&emu, &token, &sub, "fix-local", plain(&modify)).await;
    assign(&emu, &token, &sub, "no-local", deny_with(&deny)).await;
    let url = cluster_url(&sub, "rg", "c1");
    let (status, body) = put(
        &emu,
        &token,
        &url,
        json!({"location": "westeurope",
        "tags": {"owner": "team-a"}, "properties": {"disableLocalAccounts": false}}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "Modify ran before Deny: {body}"
    );
    assert_eq!(body["properties"]["disableLocalAccounts"], true, "{body}");
    assert_eq!(
        body["tags"]["owner"], "team-a",
        "add keeps an existing value: {body}"
    );
    let rows = states(&emu, &token, &sub).await;
    assert_eq!(state_of(&rows, &a_modify, "c1"), Some("Compliant"));
}
