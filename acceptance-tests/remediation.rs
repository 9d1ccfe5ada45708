//! The at-scale add-on story: a DeployIfNotExists assignment with an identity at subscription
//! scope, a remediation that turns the add-on on for every cluster, and compliance before and
//! after — all through Terraform.

use serde_json::json;

use crate::harness::{create_cluster, wait_idle, Emulator, Workspace};

pub(crate) const ADDON_DINE: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/a8eff44f-8c92-45c3-a3fb-9880802d67a7";

/// The assignment, and (for the "before" step) a compliance read of it.
fn assignment(sub: &str, with_compliance: bool) -> String {
    let assignment = format!(
        r#"
resource "akspolicy_assignment" "addon" {{
  name                 = "deploy-policy-addon"
  scope                = "/subscriptions/{sub}"
  policy_definition_id = "{ADDON_DINE}"
  location             = "westeurope"
  identity {{
    type = "SystemAssigned"
  }}
}}
"#
    );
    if !with_compliance {
        return assignment;
    }
    format!(
        r#"{assignment}
data "akspolicy_compliance" "addon" {{
  policy_assignment_id = akspolicy_assignment.addon.id
  trigger_scan         = true
  depends_on           = [akspolicy_assignment.addon]
}}

output "non_compliant" {{ value = data.akspolicy_compliance.addon.non_compliant_resources }}
"#
    )
}

/// The remediation of the add-on DINE assignment `addon`, waited for, with the number of
/// deployments it ran.
pub(crate) const ADDON_REMEDIATION: &str = r#"
resource "akspolicy_remediation" "addon" {
  name                 = "enable-policy-addon"
  scope                = akspolicy_assignment.addon.scope
  policy_assignment_id = akspolicy_assignment.addon.id
  wait_for_completion  = true
}

output "remediated" { value = akspolicy_remediation.addon.successful_deployments }
"#;

/// The remediation, and compliance read again once it is done.
fn remediation() -> String {
    format!(
        "{ADDON_REMEDIATION}{}",
        r#"
data "akspolicy_compliance" "after" {
  policy_assignment_id = akspolicy_assignment.addon.id
  trigger_scan         = true
  depends_on           = [akspolicy_remediation.addon]
}

output "non_compliant_after" { value = data.akspolicy_compliance.after.non_compliant_resources }
output "remediation_state" { value = akspolicy_remediation.addon.provisioning_state }
"#
    )
}

#[test]
fn dine_assignment_and_remediation_enable_the_addon_everywhere() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let clusters: Vec<String> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|n| create_cluster(&emulator, "fleet-rg", n))
        .collect();

    let ws = Workspace::new(&emulator);
    ws.write_config(&assignment(&sub, true));
    ws.apply().assert_ok("apply assignment");
    assert_eq!(
        ws.output("non_compliant"),
        3,
        "every cluster lacks the add-on before remediation"
    );
    let assignment_id =
        format!("/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments/deploy-policy-addon");
    grant_definition_roles(&emulator, &assignment_id, &format!("/subscriptions/{sub}"));

    // The "before" read is dropped now: it reads live compliance, which remediation changes.
    ws.write_config(&format!("{}\n{}", assignment(&sub, false), remediation()));
    ws.apply().assert_ok("apply remediation");
    assert_eq!(ws.output("remediation_state"), "Succeeded");
    assert_eq!(ws.output("remediated"), 3);
    assert_eq!(ws.output("non_compliant_after"), 0);
    for id in &clusters {
        let cluster = wait_idle(&emulator, id);
        assert_eq!(
            cluster["properties"]["addonProfiles"]["azurepolicy"]["enabled"], true,
            "{id} was not remediated: {cluster}"
        );
    }
    ws.assert_empty_plan();

    let imported = Workspace::new(&emulator);
    imported.write_config(
        r#"
resource "akspolicy_remediation" "addon" {
  name                 = "enable-policy-addon"
  scope                = "SCOPE"
  policy_assignment_id = "ASSIGNMENT"
}
"#
        .replace("SCOPE", &format!("/subscriptions/{sub}"))
        .replace(
            "ASSIGNMENT",
            &format!("/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments/deploy-policy-addon"),
        )
        .as_str(),
    );
    imported
        .terraform(&[
            "import",
            "-input=false",
            "-no-color",
            "akspolicy_remediation.addon",
            &format!("/subscriptions/{sub}/providers/Microsoft.PolicyInsights/remediations/enable-policy-addon"),
        ])
        .assert_ok("import remediation");
    imported.assert_empty_plan();

    ws.destroy().assert_ok("destroy");
}

#[test]
fn reevaluate_at_management_group_scope_is_rejected_at_plan() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(
        r#"
resource "akspolicy_remediation" "mg" {
  name                    = "mg-remediation"
  scope                   = "/providers/Microsoft.Management/managementGroups/platform"
  policy_assignment_id    = "/providers/Microsoft.Management/managementGroups/platform/providers/Microsoft.Authorization/policyAssignments/x"
  resource_discovery_mode = "ReEvaluateCompliance"
}
"#,
    );
    let run = ws.validate();
    run.assert_error_with(&["not available at management-group scope"]);
}

#[test]
fn remediating_an_assignment_that_cannot_remediate_fails_the_plan() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let ws = Workspace::new(&emulator);
    let assignments = format!(
        r#"
provider "akspolicy" {{}}

# Audit-only built-in.
resource "akspolicy_assignment" "audit" {{
  name                 = "no-privileged"
  scope                = "/subscriptions/{sub}"
  policy_definition_id = "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4"
}}

# A DeployIfNotExists definition switched off by its effect parameter.
resource "akspolicy_assignment" "disabled" {{
  name                 = "addon-disabled"
  scope                = "/subscriptions/{sub}"
  policy_definition_id = "{ADDON_DINE}"
  parameters           = {{ effect = "Disabled" }}
}}

# An initiative without DeployIfNotExists or Modify members.
resource "akspolicy_assignment" "initiative" {{
  name                 = "pss-baseline"
  scope                = "/subscriptions/{sub}"
  policy_definition_id = "/providers/Microsoft.Authorization/policySetDefinitions/a8640138-9b0a-4a28-b8cb-1666c838647d"
}}
"#
    );
    ws.write_config(&assignments);
    ws.apply().assert_ok("apply assignments");

    let remediations: String = [
        ("audit", "audit", ""),
        ("disabled", "disabled", ""),
        ("member", "initiative", "BlockHostNamespace"),
        ("no_member", "initiative", ""),
    ]
    .iter()
    .map(|(r, a, member)| {
        let member = if member.is_empty() {
            String::new()
        } else {
            format!("policy_definition_reference_id = {member:?}")
        };
        format!(
            r#"
resource "akspolicy_remediation" "{r}" {{
  name                 = "fix-{r}"
  scope                = akspolicy_assignment.{a}.scope
  policy_assignment_id = akspolicy_assignment.{a}.id
  {member}
}}
"#
        )
    })
    .collect();
    ws.write_config(&format!("{assignments}\n{remediations}"));
    let plan = ws.plan();
    let out = plan.combined();
    assert_eq!(plan.code, 1, "{out}");
    assert_eq!(
        out.matches("Error: Nothing to remediate").count(),
        3,
        "{out}"
    );
    // Terraform wraps long lines; compare with whitespace squashed.
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "with akspolicy_remediation.audit",
        "is Disabled. Assign a definition",
        "whose member under this assignment has the effect Audit",
        "acts only on DeployIfNotExists or Modify policies",
        "Error: Remediating an initiative needs a member",
        "with akspolicy_remediation.no_member",
        "ContainerNoPrivilege, BlockHostNamespace, HostNetworkPorts",
    ] {
        assert!(
            flat.contains(needle),
            "plan output lacks {needle:?}:\n{out}"
        );
    }
}

/// What azurerm users write by hand: one role assignment per role the assignment's definition
/// names, for the assignment's identity, at `scope`.
pub fn grant_definition_roles(emulator: &Emulator, assignment_id: &str, scope: &str) {
    let token = emulator.token();
    let (status, assignment) = emulator.arm_with(
        &token,
        "GET",
        &format!("{assignment_id}?api-version=2025-03-01"),
        None,
    );
    assert_eq!(status, 200, "{assignment}");
    let principal = assignment["identity"]["principalId"]
        .as_str()
        .expect("the assignment has an identity")
        .to_string();
    let definition_id = assignment["properties"]["policyDefinitionId"]
        .as_str()
        .expect("definition id")
        .to_string();
    let (status, definition) = emulator.arm_with(
        &token,
        "GET",
        &format!("{definition_id}?api-version=2025-03-01"),
        None,
    );
    assert_eq!(status, 200, "{definition}");
    let roles = definition["properties"]["policyRule"]["then"]["details"]["roleDefinitionIds"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!roles.is_empty(), "{definition}");
    for role in &roles {
        let name = uuid::Uuid::new_v4();
        let (status, body) = emulator.arm_with(
            &token,
            "PUT",
            &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"),
            Some(&json!({"properties": {"roleDefinitionId": role, "principalId": principal}})),
        );
        assert_eq!(status, 201, "{body}");
    }
}

/// Issue #18's story end to end: Microsoft's own add-on DINE (from shared/specs, not known to
/// the emulator by id) assigned at a management group above two subscriptions. The
/// remediation's deployments fail as Azure's do while the identity lacks the definition's
/// roles; with them granted, the same remediation turns the add-on on in both subscriptions.
#[test]
fn builtin_addon_dine_at_a_management_group_needs_its_roles_to_remediate() {
    let Some((emulator, mg, clusters)) = estate() else {
        return;
    };
    let assignment = format!(
        r#"
resource "akspolicy_assignment" "addon" {{
  name                 = "deploy-policy-addon"
  scope                = "{mg}"
  policy_definition_id = "{ADDON_DINE}"
  location             = "westeurope"
  identity {{
    type = "SystemAssigned"
  }}
}}
"#
    );
    let ws = Workspace::new(&emulator);
    ws.write_config(&assignment);
    ws.apply().assert_ok("apply assignment");
    let config = format!("{assignment}{ADDON_REMEDIATION}");
    ws.write_config(&config);
    let refused = ws.apply();
    assert_ne!(refused.code, 0, "remediation without roles must fail");
    let text = refused.combined();
    assert!(text.contains("The remediation failed"), "{text}");
    assert!(
        text.contains("2 of 2 remediation deployments failed"),
        "{text}"
    );
    let list = format!("{mg}/providers/Microsoft.PolicyInsights/remediations/enable-policy-addon/listDeployments?api-version=2024-10-01");
    let (status, deployments) = emulator.arm("POST", &list, None);
    assert_eq!(status, 200, "{deployments}");
    for d in deployments["value"].as_array().expect("deployments") {
        assert_eq!(d["error"]["code"], "AuthorizationFailed", "{deployments}");
    }
    for id in &clusters {
        let cluster = wait_idle(&emulator, id);
        assert_ne!(
            cluster["properties"]["addonProfiles"]["azurepolicy"]["enabled"], true,
            "{cluster}"
        );
    }

    let assignment_id =
        format!("{mg}/providers/Microsoft.Authorization/policyAssignments/deploy-policy-addon");
    grant_definition_roles(&emulator, &assignment_id, mg);
    ws.terraform(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-replace=akspolicy_remediation.addon",
    ])
    .assert_ok("remediate with roles");
    assert_eq!(ws.output("remediated"), 2);
    for id in &clusters {
        let cluster = wait_idle(&emulator, id);
        assert_eq!(
            cluster["properties"]["addonProfiles"]["azurepolicy"]["enabled"], true,
            "{id}: {cluster}"
        );
        // The built-in's template copies the cluster back: its pools and tags survive.
        assert_eq!(
            cluster["properties"]["agentPoolProfiles"][0]["count"], 3,
            "{cluster}"
        );
        assert_eq!(cluster["tags"]["env"], "prod", "{cluster}");
    }
    ws.assert_empty_plan();

    // Switching to grant_remediation_roles keeps the hand-made grants: ARM refuses a second
    // role assignment for the same principal, role and scope, and the roles are held.
    let granting = config.replace(
        "  location             = \"westeurope\"\n",
        "  location             = \"westeurope\"\n  grant_remediation_roles = true\n",
    );
    assert_ne!(granting, config);
    ws.write_config(&granting);
    ws.apply()
        .assert_ok("grant_remediation_roles over hand-made grants");
    ws.assert_empty_plan();
}

/// Two subscriptions under one management group, an AKS cluster without the policy add-on in
/// each (three pools' worth of nodes, tagged), and the built-ins from shared/specs.
/// `None` (the test skips) without shared/specs.
pub(crate) fn estate() -> Option<(Emulator, &'static str, Vec<String>)> {
    let emulator = Emulator::start_with_shared_builtins(&["--subscriptions", "2"])?;
    let subs: Vec<String> = emulator.env["AKSPOLICY_EMULATOR_SUBSCRIPTION_IDS"]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(subs.len(), 2);
    let mg = "/providers/Microsoft.Management/managementGroups/aks-platform";
    let mg_api = "api-version=2021-04-01";
    let (status, body) = emulator.arm(
        "PUT",
        &format!("{mg}?{mg_api}"),
        Some(&json!({"properties": {}})),
    );
    assert!(status == 200 || status == 202, "{status} {body}");
    let mut clusters = Vec::new();
    for (i, sub) in subs.iter().enumerate() {
        let (status, body) =
            emulator.arm("PUT", &format!("{mg}/subscriptions/{sub}?{mg_api}"), None);
        assert_eq!(status, 200, "{body}");
        let (status, body) = emulator.arm(
            "PUT",
            &format!("/subscriptions/{sub}/resourcegroups/fleet-{i}?api-version=2021-04-01"),
            Some(&json!({"location": "westeurope"})),
        );
        assert!(status == 200 || status == 201, "{body}");
        let id = format!("/subscriptions/{sub}/resourceGroups/fleet-{i}/providers/Microsoft.ContainerService/managedClusters/aks-{i}");
        let (status, body) = emulator.arm(
            "PUT",
            &format!("{id}?api-version=2026-04-01"),
            Some(&json!({"location": "westeurope", "tags": {"env": "prod"}, "properties": {"dnsPrefix": format!("aks-{i}"),
                "agentPoolProfiles": [{"name": "system", "count": 3, "vmSize": "Standard_D4s_v5", "mode": "System"}]}})),
        );
        assert!(status == 200 || status == 201, "{body}");
        clusters.push(id);
    }
    for id in &clusters {
        wait_idle(&emulator, id);
    }
    Some((emulator, mg, clusters))
}
