//! ARM-mode policy: Deny at write time, states for Audit/…IfNotExists/Modify, and what
//! assignments honour (enforcement mode, notScopes, exemptions, overrides, resource
//! selectors, management groups), next to Kubernetes-mode assignments.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::clusters::fast_emu;
use super::{error_code, Emu};
use super::{AKS_API, INSIGHTS_API, POLICY_API, RESOURCES_API};

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

/// An `effect` IfNotExists rule on clusters whose own Image Cleaner is off; `more` adds to the
/// effect's details (a DeployIfNotExists' deployment and roles).
fn image_cleaner_definition(display: &str, effect: &str, more: Value) -> Value {
    let mut details = json!({
        "type": "Microsoft.ContainerService/managedClusters", "name": "[field('name')]",
        "existenceCondition": {"field": "Microsoft.ContainerService/managedClusters/securityProfile.imageCleaner.enabled", "equals": "true"}});
    if let (Some(details), Some(more)) = (details.as_object_mut(), more.as_object()) {
        details.extend(more.clone());
    }
    json!({"properties": {
        "mode": "Indexed", "displayName": display,
        "policyRule": {"if": {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
            "then": {"effect": effect, "details": details}}}})
}

/// Assignment properties: `definition` with its parameters' defaults.
fn plain(definition: &str) -> Value {
    json!({"policyDefinitionId": definition})
}

/// Assignment properties: `definition` with its `effect` parameter set to Deny.
fn deny_with(definition: &str) -> Value {
    json!({"policyDefinitionId": definition, "parameters": {"effect": {"value": "Deny"}}})
}

fn cluster_url(sub: &str, rg: &str, name: &str) -> String {
    format!("{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}?{AKS_API}")
}

/// One test's view of ARM: a temporary emulator (LROs of 100 ms, resource group `rg`
/// created), a token and the subscription it works in.
struct Arm {
    emu: Emu,
    token: String,
    sub: String,
}

impl Arm {
    async fn start() -> Self {
        let (emu, token, sub) = fast_emu(100).await;
        Self { emu, token, sub }
    }

    async fn put(&self, url: &str, body: Value) -> (StatusCode, Value) {
        self.emu.put(&self.token, url, &body).await
    }

    /// PUTs cluster `name` in resource group `rg` with `body`.
    async fn put_cluster_with(&self, rg: &str, name: &str, body: Value) -> (StatusCode, Value) {
        self.put(&cluster_url(&self.sub, rg, name), body).await
    }

    /// PUTs a cluster with nothing but a location (westeurope), as a minimal client does.
    async fn put_cluster(&self, rg: &str, name: &str) -> (StatusCode, Value) {
        let body = json!({"location": "westeurope"});
        self.put_cluster_with(rg, name, body).await
    }

    async fn define(&self, scope: &str, name: &str, body: Value) -> String {
        let id = format!("{scope}/providers/Microsoft.Authorization/policyDefinitions/{name}");
        let (status, resp) = self.put(&format!("{id}?{POLICY_API}"), body).await;
        assert!(status.is_success(), "{resp}");
        id
    }

    /// The local-accounts rule defined at `scope` as `local-accounts`; its id.
    async fn local_accounts(&self, scope: &str) -> String {
        self.define(scope, "local-accounts", local_accounts_definition())
            .await
    }

    async fn assign(&self, scope: &str, name: &str, properties: Value) -> String {
        let id = format!("{scope}/providers/Microsoft.Authorization/policyAssignments/{name}");
        let body = json!({"properties": properties});
        let (status, resp) = self.put(&format!("{id}?{POLICY_API}"), body).await;
        assert!(status.is_success(), "{resp}");
        id
    }

    /// The subscription's latest policy states.
    async fn states(&self) -> Vec<Value> {
        let url = format!(
            "{}/providers/Microsoft.PolicyInsights/policyStates/latest/queryResults?{INSIGHTS_API}",
            self.sub
        );
        let body = self
            .emu
            .expect(&self.token, Method::POST, &url, None, StatusCode::OK)
            .await;
        body["value"].as_array().cloned().unwrap_or_default()
    }

    /// The compliance state of `cluster` for `assignment` in the latest states.
    async fn state_of(&self, assignment: &str, cluster: &str) -> Option<String> {
        state_of(&self.states().await, assignment, cluster).map(str::to_string)
    }
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
    let arm = Arm::start().await;
    let sub = &arm.sub;
    let def = arm.local_accounts(sub).await;
    let deny = json!({"policyDefinitionId": def, "displayName": "No local accounts",
        "parameters": {"effect": {"value": "Deny"}}});
    let assignment = arm.assign(sub, "no-local", deny).await;

    let (status, body) = arm.put_cluster("rg", "bad").await;
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
    let (status, _, _) = arm
        .emu
        .get(Some(&arm.token), &cluster_url(sub, "rg", "bad"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let local_off = json!({"location": "westeurope", "properties": {"disableLocalAccounts": true}});
    let (status, body) = arm.put_cluster_with("rg", "good", local_off).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Overrides change the effect without touching the assignment's parameters.
    let overridden = json!({
        "policyDefinitionId": def, "parameters": {"effect": {"value": "Deny"}},
        "overrides": [{"kind": "policyEffect", "value": "Audit"}]});
    arm.assign(sub, "no-local", overridden).await;
    let (status, body) = arm.put_cluster("rg", "audited").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rows = arm.states().await;
    assert_eq!(
        state_of(&rows, &assignment, "audited"),
        Some("NonCompliant")
    );
    assert_eq!(state_of(&rows, &assignment, "good"), Some("Compliant"));
}

#[tokio::test]
async fn enforcement_mode_not_scopes_exemptions_and_selectors_let_writes_through() {
    let arm = Arm::start().await;
    let sub = &arm.sub;
    let (status, body) = arm.emu.put_group(&arm.token, sub, "sandbox").await;
    assert!(status.is_success(), "{body}");
    let def = arm.local_accounts(sub).await;

    // DoNotEnforce: admitted, reported non-compliant.
    let soft = json!({"policyDefinitionId": def,
        "enforcementMode": "DoNotEnforce", "parameters": {"effect": {"value": "Deny"}}});
    let soft = arm.assign(sub, "soft", soft).await;
    let (status, body) = arm.put_cluster("rg", "c1").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        arm.state_of(&soft, "c1").await.as_deref(),
        Some("NonCompliant")
    );

    // notScopes keep a resource group out of reach.
    let hard = json!({"policyDefinitionId": def,
        "notScopes": [format!("{sub}/resourceGroups/sandbox")],
        "parameters": {"effect": {"value": "Deny"}}});
    let hard = arm.assign(sub, "hard", hard).await;
    let (status, _) = arm.put_cluster("sandbox", "c2").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = arm.put_cluster("rg", "c3").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // An exemption on the resource group lifts the deny there.
    let exemption =
        format!("{sub}/resourceGroups/rg/providers/Microsoft.Authorization/policyExemptions/ok");
    let waiver = json!({"properties": {"policyAssignmentId": hard, "exemptionCategory": "Waiver"}});
    let (status, body) = arm
        .put(
            &format!("{exemption}?api-version=2022-07-01-preview"),
            waiver,
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, body) = arm.put_cluster("rg", "c3").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rows = arm.states().await;
    assert_eq!(state_of(&rows, &hard, "c3"), Some("Exempt"));
    assert_eq!(
        state_of(&rows, &hard, "c2"),
        None,
        "notScopes leave no state"
    );

    // Resource selectors: only clusters in eastus are evaluated.
    arm.assign(sub, "eastonly", json!({"policyDefinitionId": def,
        "notScopes": [format!("{sub}/resourceGroups/rg")],
        "resourceSelectors": [{"name": "east", "selectors": [{"kind": "resourceLocation", "in": ["eastus"]}]}],
        "parameters": {"effect": {"value": "Deny"}}})).await;
    let (status, _) = arm.put_cluster("sandbox", "west").await;
    assert_eq!(status, StatusCode::CREATED);
    let east = json!({"location": "eastus"});
    let (status, body) = arm.put_cluster_with("sandbox", "east", east).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn management_group_assignments_cover_subscriptions_below() {
    let arm = Arm::start().await;
    let sub_id = arm.sub.trim_start_matches("/subscriptions/").to_string();
    let top = "/providers/Microsoft.Management/managementGroups/top";
    let child = "/providers/Microsoft.Management/managementGroups/leaf";
    let (status, _) = arm
        .put(&format!("{top}?{RESOURCES_API}"), json!({"properties": {}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let below_top = json!({"properties": {"details": {"parent": {"id": top}}}});
    let (status, _) = arm
        .put(&format!("{child}?{RESOURCES_API}"), below_top)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let status = arm.emu.move_subscription(&arm.token, child, &sub_id).await;
    assert_eq!(status, StatusCode::OK);
    let def = arm.local_accounts(top).await;
    arm.assign(top, "everywhere", deny_with(&def)).await;
    let (status, body) = arm.put_cluster("rg", "c1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn resource_group_rules_in_all_mode_deny_and_indexed_mode_skips_them() {
    let arm = Arm::start().await;
    let sub = &arm.sub;
    let rule = |mode: &str| {
        json!({"properties": {"mode": mode, "displayName": "Groups need an owner tag",
        "policyRule": {"if": {"allOf": [
            {"field": "type", "equals": "Microsoft.Resources/subscriptions/resourceGroups"},
            {"field": "tags['owner']", "exists": false}]}, "then": {"effect": "deny"}}}})
    };
    let indexed = arm.define(sub, "owner-indexed", rule("Indexed")).await;
    arm.assign(sub, "owner-indexed", plain(&indexed)).await;
    let rg = |name: &str| format!("{sub}/resourceGroups/{name}?api-version=2021-04-01");
    let (status, _) = arm
        .put(&rg("free"), json!({"location": "westeurope"}))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "Indexed mode does not evaluate resource groups"
    );
    let all = arm.define(sub, "owner-all", rule("All")).await;
    arm.assign(sub, "owner-all", plain(&all)).await;
    let (status, body) = arm
        .put(&rg("untagged"), json!({"location": "westeurope"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "RequestDisallowedByPolicy");
    let owned = json!({"location": "westeurope", "tags": {"Owner": "me"}});
    let (status, _) = arm.put(&rg("tagged"), owned).await;
    assert_eq!(status, StatusCode::CREATED);
    let untag = json!({"tags": {}});
    let (status, _, body) = arm
        .emu
        .send(&arm.token, Method::PATCH, &rg("tagged"), Some(&untag))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn if_not_exists_and_modify_states_with_kubernetes_mode_alongside() {
    let arm = Arm::start().await;
    let sub = &arm.sub;
    // Clusters from before the assignments: Modify only changes later writes.
    let (status, body) = arm.put_cluster("rg", "plain").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = arm.put_cluster_with("rg", "tidy", json!({"location": "westeurope",
        "tags": {"cost": "cc-1"},
        "properties": {"securityProfile": {"imageCleaner": {"enabled": true, "intervalHours": 24}}}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let aine = image_cleaner_definition("Image Cleaner on", "AuditIfNotExists", json!({}));
    let aine = arm.define(sub, "image-cleaner", aine).await;
    let modify = arm.define(sub, "cost-tag", cost_tag_definition()).await;
    let a_aine = arm.assign(sub, "cleaner", plain(&aine)).await;
    let a_modify = arm.assign(sub, "cost", plain(&modify)).await;
    let a_k8s = arm.assign(sub, "noprivileged", plain(NO_PRIVILEGE)).await;
    let rows = arm.states().await;
    assert_eq!(state_of(&rows, &a_aine, "plain"), Some("NonCompliant"));
    assert_eq!(state_of(&rows, &a_aine, "tidy"), Some("Compliant"));
    assert_eq!(state_of(&rows, &a_modify, "plain"), Some("NonCompliant"));
    assert_eq!(state_of(&rows, &a_modify, "tidy"), Some("Compliant"));
    // The Kubernetes-mode assignment reports from Gatekeeper (nothing admitted: compliant).
    assert_eq!(state_of(&rows, &a_k8s, "plain"), Some("Compliant"));
}

#[tokio::test]
async fn new_assignments_take_effect_after_the_evaluation_delay_without_a_trigger() {
    let arm = Arm::start().await;
    let sub = &arm.sub;
    let (status, body) = arm
        .emu
        .set_faults(&arm.token, json!({"policy_evaluation_ms": 1500}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let def = arm.local_accounts(sub).await;
    let a = arm.assign(sub, "later", deny_with(&def)).await;
    // Within the evaluation cycle the assignment is not in effect yet: no deny, no states.
    let (status, body) = arm.put_cluster("rg", "early").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(arm.state_of(&a, "early").await, None);
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    assert_eq!(
        arm.state_of(&a, "early").await.as_deref(),
        Some("NonCompliant")
    );
    let (status, body) = arm.put_cluster("rg", "late").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

impl Arm {
    /// Remediation `name` of `assignment` at the subscription, waited for until it succeeds.
    async fn remediate(&self, name: &str, assignment: &str) {
        let url = format!(
            "{}/providers/Microsoft.PolicyInsights/remediations/{name}?{INSIGHTS_API}",
            self.sub
        );
        let body = json!({"properties": {"policyAssignmentId": assignment}});
        let (status, body) = self.put(&url, body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, last) = self
            .emu
            .poll(&self.token, &url, 30, |_, _, r| {
                r["properties"]["provisioningState"] == "Succeeded"
            })
            .await;
        if last["properties"]["provisioningState"] != "Succeeded" {
            let list = url.replace("?", "/listDeployments?");
            let (_, deployments) = self.emu.post(&self.token, &list).await;
            panic!("remediation {name} never succeeded: {last} {deployments}");
        }
    }
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
    let arm = Arm::start().await;
    let (sub, token) = (&arm.sub, &arm.token);
    // A cluster from before the assignments: Modify only changes later writes.
    let url = cluster_url(sub, "rg", "c1");
    let (status, body) = arm.put_cluster("rg", "c1").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deploy = json!({"deployment": cleaner_deployment(),
        "roleDefinitionIds": ["/providers/Microsoft.Authorization/roleDefinitions/ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8"]});
    let dine = image_cleaner_definition("Deploy Image Cleaner", "DeployIfNotExists", deploy);
    let dine = arm.define(sub, "image-cleaner", dine).await;
    let modify = arm.define(sub, "cost-tag", cost_tag_definition()).await;
    let a_dine = arm.assign(sub, "cleaner", plain(&dine)).await;
    let cc42 = json!({"policyDefinitionId": modify, "parameters": {"value": {"value": "cc-42"}}});
    let a_modify = arm.assign(sub, "cost", cc42).await;
    let rows = arm.states().await;
    assert_eq!(state_of(&rows, &a_dine, "c1"), Some("NonCompliant"));
    assert_eq!(state_of(&rows, &a_modify, "c1"), Some("NonCompliant"));
    // Both remediate as their assignment's identity, which needs a role allowing the writes.
    for (assignment, definition, parameters) in [
        (&a_dine, &dine, json!({})),
        (&a_modify, &modify, json!({"value": {"value": "cc-42"}})),
    ] {
        let (status, body) = arm
            .put(
                &format!("{assignment}?{POLICY_API}"),
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
        let (status, body) = arm.put(
            &format!("{sub}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01", uuid::Uuid::new_v4()),
            json!({"properties": {"principalId": principal,
                "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"}})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    arm.remediate("fix-cleaner", &a_dine).await;
    arm.remediate("fix-cost", &a_modify).await;
    let (_, _, cluster) = arm.emu.get(Some(token), &url).await;
    assert_eq!(
        cluster["properties"]["securityProfile"]["imageCleaner"]["enabled"], true,
        "{cluster}"
    );
    assert_eq!(cluster["tags"]["cost"], "cc-42", "{cluster}");
    // Remediating Image Cleaner leaves the policy add-on alone.
    let addon_on = cluster["properties"]["addonProfiles"]["azurepolicy"]["enabled"] == true;
    assert!(!addon_on, "{cluster}");
    let rows = arm.states().await;
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
    let (emu, token, sub) = super::signed_in(|config| {
        config.builtins_dir = Some(specs);
        config.faults.lro_ms = 100;
    })
    .await;
    let arm = Arm { emu, token, sub };
    let (status, body) = arm.emu.put_group(&arm.token, &arm.sub, "rg").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let def = format!("/providers/Microsoft.Authorization/policyDefinitions/{name}");
    let a = arm.assign(&arm.sub, "local", deny_with(&def)).await;
    let local_on = json!({"location": "westeurope", "properties": {"disableLocalAccounts": false}});
    let (status, body) = arm.put_cluster_with("rg", "c1", local_on).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let info = &body["error"]["additionalInfo"][0]["info"];
    assert_eq!(info["policyDefinitionId"], def.as_str(), "{body}");
    assert_eq!(info["policyAssignmentId"], a.as_str(), "{body}");
    assert_eq!(
        info["policyDefinitionDisplayName"], builtin["properties"]["displayName"],
        "{body}"
    );
    let local_off = json!({"location": "westeurope", "properties": {"disableLocalAccounts": true}});
    let (status, body) = arm.put_cluster_with("rg", "c2", local_off).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn modify_alters_the_write_before_deny_judges_it() {
    let arm = Arm::start().await;
    let sub = &arm.sub;
    let modify = arm.define(sub, "local-off", json!({"properties": {
        "mode": "Indexed", "displayName": "Turn local accounts off",
        "policyRule": {"if": {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
            "then": {"effect": "modify", "details": {
                "roleDefinitionIds": ["/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"],
                "operations": [
                    {"operation": "addOrReplace", "field": "Microsoft.ContainerService/managedClusters/disableLocalAccounts", "value": true},
                    {"operation": "add", "field": "tags['owner']", "value": "platform"}]}}}}})).await;
    let deny = arm.local_accounts(sub).await;
    let a_modify = arm.assign(sub, "fix-local", plain(&modify)).await;
    arm.assign(sub, "no-local", deny_with(&deny)).await;
    let owned_with_local = json!({"location": "westeurope",
        "tags": {"owner": "team-a"}, "properties": {"disableLocalAccounts": false}});
    let (status, body) = arm.put_cluster_with("rg", "c1", owned_with_local).await;
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
    assert_eq!(
        arm.state_of(&a_modify, "c1").await.as_deref(),
        Some("Compliant")
    );
}
