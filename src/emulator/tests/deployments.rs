//! Role assignments and role definitions through ARM, deployments through the template
//! engine, and DeployIfNotExists remediation that runs the definition's deployment as the
//! assignment's identity: refused without the roles, done with them, across two
//! subscriptions under one management group.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{error_code, signed_in, Emu};
use super::{ADDON_DINE, AKS_API, INSIGHTS_API, POLICY_API, RESOURCES_API};

const AUTH_API: &str = "api-version=2022-04-01";
const AKS_CONTRIBUTOR: &str = "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8";

async fn two_subscriptions() -> (Emu, String, Vec<String>) {
    let (emu, token, _) = signed_in(|config| {
        config.faults.lro_ms = 90;
        config.subscriptions = 2;
    })
    .await;
    let (_, _, list) = emu
        .get(Some(&token), "/subscriptions?api-version=2022-12-01")
        .await;
    let subs: Vec<String> = list["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["subscriptionId"].as_str().map(str::to_string))
        .collect();
    assert_eq!(subs.len(), 2, "{list}");
    (emu, token, subs)
}

async fn cluster(emu: &Emu, token: &str, sub: &str, name: &str) -> String {
    let (status, body) = emu
        .put_group(token, &format!("/subscriptions/{sub}"), "fleet")
        .await;
    assert!(status.is_success(), "{body}");
    let id = format!("/subscriptions/{sub}/resourceGroups/fleet/providers/Microsoft.ContainerService/managedClusters/{name}");
    let (status, body) = emu.put(token, &format!("{id}?{AKS_API}"), &json!({
        "location": "westeurope",
        "tags": {"team": "a"},
        "properties": {"dnsPrefix": name, "agentPoolProfiles": [{"name": "system", "count": 2, "vmSize": "Standard_B2s", "mode": "System"}],
            "addonProfiles": {"omsagent": {"enabled": false}}}
    })).await;
    assert!(status.is_success(), "{body}");
    id
}

/// Whether a provisioning state is final.
fn settled(body: &Value) -> bool {
    let state = &body["properties"]["provisioningState"];
    state == "Succeeded" || state == "Failed"
}

async fn until_idle(emu: &Emu, token: &str, id: &str) -> Value {
    let url = format!("{id}?{AKS_API}");
    let (_, body) = emu.poll(token, &url, 20, |_, _, body| settled(body)).await;
    assert!(settled(&body), "{id} never settled: {body}");
    body
}

/// Runs remediation `name` of `assignment` at `scope` to its end, which must be `state` with
/// `count` deployments under `counter` (`failedDeployments`, `successfulDeployments`).
async fn remediate(
    emu: &Emu,
    token: &str,
    (scope, name): (&str, &str),
    assignment: &str,
    (state, counter, count): (&str, &str, u64),
) {
    let url =
        format!("{scope}/providers/Microsoft.PolicyInsights/remediations/{name}?{INSIGHTS_API}");
    let body = json!({"properties": {"policyAssignmentId": assignment}});
    let (status, body) = emu.put(token, &url, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, r) = emu.poll(token, &url, 20, |_, _, r| settled(r)).await;
    assert!(settled(&r), "remediation {name} never finished: {r}");
    assert_eq!(r["properties"]["provisioningState"], state, "{r}");
    let counted = &r["properties"]["deploymentStatus"][counter];
    assert_eq!(counted, count, "{r}");
}

#[tokio::test]
async fn role_assignments_have_azures_shapes_and_errors() {
    let (emu, token, subs) = two_subscriptions().await;
    let sub = format!("/subscriptions/{}", subs[0]);
    let role = emu
        .get_ok(
            &token,
            &format!(
            "{sub}/providers/Microsoft.Authorization/roleDefinitions/{AKS_CONTRIBUTOR}?{AUTH_API}"
        ),
        )
        .await;
    assert_eq!(
        role["properties"]["roleName"],
        "Azure Kubernetes Service Contributor Role"
    );
    assert_eq!(role["properties"]["type"], "BuiltInRole");
    assert_eq!(
        role["id"],
        format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{AKS_CONTRIBUTOR}")
    );
    let unknown_role = format!("/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-000000000001?{AUTH_API}");
    emu.not_found(&token, &unknown_role, "RoleDefinitionDoesNotExist")
        .await;
    let (_, _, by_name) = emu.get(Some(&token), &format!("{sub}/providers/Microsoft.Authorization/roleDefinitions?{AUTH_API}&$filter=roleName%20eq%20'Reader'")).await;
    assert_eq!(
        by_name["value"].as_array().map(Vec::len),
        Some(1),
        "{by_name}"
    );

    let ra = |name: &str| {
        format!("{sub}/providers/Microsoft.Authorization/roleAssignments/{name}?{AUTH_API}")
    };
    let name = "5d4c2b1a-0000-4000-8000-000000000001";
    let unknown_principal = "11111111-2222-4333-8444-555555555555";
    let body = |principal: &str, role: &str| {
        json!({"properties": {
        "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
        "principalId": principal}})
    };
    // Entra ID does not know the principal, and the caller did not say what it is.
    let untyped = body(unknown_principal, AKS_CONTRIBUTOR);
    let put = (Method::PUT, ra(name), Some(&untyped));
    emu.expect_error(
        &token,
        (put.0, &put.1, put.2),
        StatusCode::BAD_REQUEST,
        "PrincipalNotFound",
    )
    .await;
    let mut typed = body(unknown_principal, AKS_CONTRIBUTOR);
    typed["properties"]["principalType"] = json!("ServicePrincipal");
    let (status, created) = emu.put(&token, &ra(name), &typed).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["type"], "Microsoft.Authorization/roleAssignments");
    assert_eq!(created["properties"]["scope"], sub);
    assert_eq!(
        created["properties"]["roleDefinitionId"],
        format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{AKS_CONTRIBUTOR}")
    );
    let third = "5d4c2b1a-0000-4000-8000-000000000003";
    let unknown_role = json!({"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-000000000009",
        "principalId": unknown_principal, "principalType": "User"}});
    for (name, body, status, code) in [
        // Same principal and role at the same scope under another name.
        (
            "5d4c2b1a-0000-4000-8000-000000000002",
            typed,
            StatusCode::CONFLICT,
            "RoleAssignmentExists",
        ),
        (
            "not-a-guid",
            body(unknown_principal, AKS_CONTRIBUTOR),
            StatusCode::BAD_REQUEST,
            "InvalidRoleAssignmentId",
        ),
        (
            third,
            body("nobody", AKS_CONTRIBUTOR),
            StatusCode::BAD_REQUEST,
            "InvalidPrincipalId",
        ),
        (
            third,
            unknown_role,
            StatusCode::BAD_REQUEST,
            "RoleDefinitionDoesNotExist",
        ),
    ] {
        let url = ra(name);
        emu.expect_error(&token, (Method::PUT, &url, Some(&body)), status, code)
            .await;
    }
    // Listed at the scope and below it, filtered by principal; persisted; deleted.
    let rg = format!("{sub}/resourceGroups/fleet");
    let (status, _) = emu.put_group(&token, &sub, "fleet").await;
    assert!(status.is_success());
    let (_, _, list) = emu.get(Some(&token), &format!("{rg}/providers/Microsoft.Authorization/roleAssignments?{AUTH_API}&$filter=principalId%20eq%20'{unknown_principal}'")).await;
    assert_eq!(list["value"].as_array().map(Vec::len), Some(1), "{list}");
    emu.get_ok(&token, &ra(name)).await;
    let (status, _) = emu.delete(&token, &ra(name)).await;
    assert_eq!(status, StatusCode::OK);
    emu.not_found(&token, &ra(name), "RoleAssignmentNotFound")
        .await;
    let (status, _) = emu.delete(&token, &ra(name)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn deployments_run_nested_templates_through_arm() {
    let (emu, token, subs) = two_subscriptions().await;
    let id = cluster(&emu, &token, &subs[0], "direct").await;
    until_idle(&emu, &token, &id).await;
    let rg = format!("/subscriptions/{}/resourceGroups/fleet", subs[0]);
    // An outer-scope nested deployment reads the cluster; an inner-scope one writes a tag
    // back from what the first one output.
    let template = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"name": {"type": "string"}, "tag": {"type": "string", "defaultValue": "[toLower('GOLD')]"}},
        "variables": {"read": "[concat('read-', parameters('name'))]"},
        "resources": [
            {"type": "Microsoft.Resources/deployments", "apiVersion": "2021-04-01", "name": "[concat('write-', parameters('name'))]",
             "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"},
                "parameters": {"c": {"value": "[reference(variables('read')).outputs.c.value]"}, "tier": {"value": "[parameters('tag')]"}},
                "template": {"contentVersion": "1.0.0.0", "parameters": {"c": {"type": "object"}, "tier": {"type": "string"}},
                    "resources": [{"type": "Microsoft.ContainerService/managedClusters", "apiVersion": "2024-10-01",
                        "name": "[parameters('c').name]", "location": "[parameters('c').location]",
                        "tags": "[union(parameters('c').tags, createObject('tier', parameters('tier')))]",
                        "properties": "[parameters('c').properties]"}],
                    "outputs": {"tier": {"type": "string", "value": "[parameters('tier')]"}}}}},
            {"type": "Microsoft.Resources/deployments", "apiVersion": "2021-04-01", "name": "[variables('read')]",
             "properties": {"mode": "Incremental", "template": {"contentVersion": "1.0.0.0", "resources": [],
                "outputs": {"c": {"type": "object", "value": "[reference(resourceId('Microsoft.ContainerService/managedClusters', parameters('name')), '2024-10-01', 'Full')]"}}}}}
        ],
        "outputs": {"id": {"type": "string", "value": "[resourceId('Microsoft.ContainerService/managedClusters', parameters('name'))]"}}
    });
    let url = format!("{rg}/providers/Microsoft.Resources/deployments/tagger?{RESOURCES_API}");
    let (status, headers, body) = emu.send(&token, Method::PUT, &url,
        Some(&json!({"properties": {"mode": "Incremental", "template": template, "parameters": {"name": {"value": "direct"}}}}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let op = headers
        .get("azure-asyncoperation")
        .and_then(|v| v.to_str().ok())
        .expect("Azure-AsyncOperation")
        .to_string();
    let (_, last) = emu
        .poll(&token, &op, 20, |_, _, op| op["status"] != "Running")
        .await;
    assert_eq!(last["status"], "Succeeded", "{last}");
    let (_, _, deployment) = emu.get(Some(&token), &url).await;
    assert_eq!(
        deployment["properties"]["provisioningState"], "Succeeded",
        "{deployment}"
    );
    assert_eq!(
        deployment["properties"]["outputs"]["id"]["value"],
        id.as_str()
    );
    let cluster = until_idle(&emu, &token, &id).await;
    assert_eq!(
        cluster["tags"],
        json!({"team": "a", "tier": "gold"}),
        "{cluster}"
    );
    assert_eq!(
        cluster["properties"]["agentPoolProfiles"][0]["count"], 2,
        "{cluster}"
    );
    let (_, _, list) = emu
        .get(
            Some(&token),
            &format!("{rg}/providers/Microsoft.Resources/deployments?{RESOURCES_API}"),
        )
        .await;
    assert_eq!(list["value"].as_array().map(Vec::len), Some(3), "{list}");

    // Template errors are refused up front with ARM's InvalidTemplate.
    let (status, err) = emu
        .put(
            &token,
            &url,
            &json!({"properties": {"mode": "Incremental", "template": template, "parameters": {}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(error_code(&err), "InvalidTemplate");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("'name'"),
        "{err}"
    );
}

#[tokio::test]
async fn dine_remediation_deploys_as_the_identity_only_with_its_roles() {
    let (emu, token, subs) = two_subscriptions().await;
    let mg = "/providers/Microsoft.Management/managementGroups/platform";
    let (status, _) = emu
        .put(
            &token,
            &format!("{mg}?{RESOURCES_API}"),
            &json!({"properties": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut clusters = Vec::new();
    for (i, sub) in subs.iter().enumerate() {
        assert_eq!(emu.move_subscription(&token, mg, sub).await, StatusCode::OK);
        clusters.push(cluster(&emu, &token, sub, &format!("c{i}")).await);
    }
    for id in &clusters {
        until_idle(&emu, &token, id).await;
    }
    let assignment = format!("{mg}/providers/Microsoft.Authorization/policyAssignments/addon");
    let (status, body) = emu
        .put(
            &token,
            &format!("{assignment}?api-version=2025-03-01"),
            &json!({
        "location": "westeurope", "identity": {"type": "SystemAssigned"},
        "properties": {"policyDefinitionId": ADDON_DINE}}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let principal = body["identity"]["principalId"]
        .as_str()
        .expect("principal")
        .to_string();

    // Without roles every deployment fails as Azure's do, and nothing changes.
    let failed = ("Failed", "failedDeployments", 2);
    remediate(&emu, &token, (mg, "without-roles"), &assignment, failed).await;
    let list_url = format!("{mg}/providers/Microsoft.PolicyInsights/remediations/without-roles/listDeployments?{INSIGHTS_API}");
    let (_, deployments) = emu.post(&token, &list_url).await;
    let errors: Vec<String> = deployments["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["error"]["code"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        errors,
        vec!["AuthorizationFailed", "AuthorizationFailed"],
        "{deployments}"
    );
    for id in &clusters {
        let c = until_idle(&emu, &token, id).await;
        assert_ne!(
            c["properties"]["addonProfiles"]["azurepolicy"]["enabled"], true,
            "{c}"
        );
    }

    // The roles the definition names, granted at the management group.
    let (_, _, def) = emu
        .get(Some(&token), &format!("{ADDON_DINE}?{POLICY_API}"))
        .await;
    let roles: Vec<String> = def["properties"]["policyRule"]["then"]["details"]
        ["roleDefinitionIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    assert!(!roles.is_empty());
    for role in &roles {
        let name = uuid::Uuid::new_v4();
        let (status, body) = emu
            .put(
                &token,
                &format!(
                    "{mg}/providers/Microsoft.Authorization/roleAssignments/{name}?{AUTH_API}"
                ),
                &json!({"properties": {"roleDefinitionId": role, "principalId": principal}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let done = ("Succeeded", "successfulDeployments", 2);
    remediate(&emu, &token, (mg, "with-roles"), &assignment, done).await;
    for id in &clusters {
        let c = until_idle(&emu, &token, id).await;
        assert_eq!(
            c["properties"]["addonProfiles"]["azurepolicy"]["enabled"], true,
            "{c}"
        );
        // The deployment copied the cluster back: pools, tags and other add-ons survive.
        assert_eq!(c["properties"]["agentPoolProfiles"][0]["count"], 2, "{c}");
        assert_eq!(c["tags"]["team"], "a", "{c}");
        assert!(
            c["properties"]["addonProfiles"]["omsagent"].is_object(),
            "{c}"
        );
    }
}

#[tokio::test]
async fn subscription_deployments_create_groups_and_deploy_into_them() {
    let (emu, token, subs) = two_subscriptions().await;
    let sub = format!("/subscriptions/{}", subs[1]);
    let url = format!("{sub}/providers/Microsoft.Resources/deployments/landing?{RESOURCES_API}");
    let template = json!({
        "contentVersion": "1.0.0.0",
        "parameters": {"group": {"type": "string"}, "region": {"type": "string", "allowedValues": ["westeurope", "northeurope"]}},
        "resources": [
            {"type": "Microsoft.Resources/resourceGroups", "apiVersion": "2021-04-01", "name": "[parameters('group')]",
             "location": "[parameters('region')]", "tags": {"owner": "[subscription().subscriptionId]"}},
            {"type": "Microsoft.Resources/deployments", "apiVersion": "2021-04-01", "name": "cluster",
             "resourceGroup": "[parameters('group')]", "dependsOn": ["[parameters('group')]"],
             "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"},
                "parameters": {"region": {"value": "[parameters('region')]"}},
                "template": {"contentVersion": "1.0.0.0", "parameters": {"region": {"type": "string"}},
                    "resources": [{"type": "Microsoft.ContainerService/managedClusters", "apiVersion": "2024-10-01",
                        "name": "[concat('aks-', uniqueString(resourceGroup().id))]", "location": "[parameters('region')]",
                        "properties": {"dnsPrefix": "landing"}}],
                    "outputs": {"group": {"type": "string", "value": "[resourceGroup().name]"}}}}}
        ],
        "outputs": {"nested": {"type": "string", "value": "[reference('cluster').outputs.group.value]"}}
    });
    // Subscription deployments need a location, as in ARM.
    let body = json!({"properties": {"mode": "Incremental", "template": template,
        "parameters": {"group": {"value": "landing-rg"}, "region": {"value": "westeurope"}}}});
    let unlocated = (Method::PUT, url.as_str(), Some(&body));
    emu.expect_error(
        &token,
        unlocated,
        StatusCode::BAD_REQUEST,
        "InvalidDeployment",
    )
    .await;
    let mut located = body.clone();
    located["location"] = json!("westeurope");
    located["properties"]["parameters"]["region"] = json!({"value": "eastus"});
    let (status, err) = emu.put(&token, &url, &located).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("allowed value"),
        "{err}"
    );
    located["properties"]["parameters"]["region"] = json!({"value": "westeurope"});
    let (status, created) = emu.put(&token, &url, &located).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, done) = emu
        .poll(&token, &url, 20, |_, _, d| {
            d["properties"]["provisioningState"] != "Running"
        })
        .await;
    assert_eq!(
        done["properties"]["provisioningState"], "Succeeded",
        "{done}"
    );
    assert_eq!(
        done["properties"]["outputs"]["nested"]["value"], "landing-rg",
        "{done}"
    );
    let group = emu
        .get_ok(
            &token,
            &format!("{sub}/resourceGroups/landing-rg?{RESOURCES_API}"),
        )
        .await;
    assert_eq!(group["tags"]["owner"], subs[1].as_str(), "{group}");
    let (_, _, clusters) = emu.get(Some(&token), &format!("{sub}/resourceGroups/landing-rg/providers/Microsoft.ContainerService/managedClusters?{AKS_API}")).await;
    assert_eq!(
        clusters["value"].as_array().map(Vec::len),
        Some(1),
        "{clusters}"
    );
}
