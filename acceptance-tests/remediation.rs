//! The at-scale add-on story: a DeployIfNotExists assignment with an identity at subscription
//! scope, a remediation that turns the add-on on for every cluster, and compliance before and
//! after — all through Terraform.

use serde_json::json;

use crate::cluster_addon::{create_cluster, wait_idle};
use crate::harness::{shared_specs, Emulator, Workspace};

const ADDON_DINE: &str =
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

fn remediation() -> &'static str {
    r#"
resource "akspolicy_remediation" "addon" {
  name                 = "enable-policy-addon"
  scope                = akspolicy_assignment.addon.scope
  policy_assignment_id = akspolicy_assignment.addon.id
  wait_for_completion  = true
}

data "akspolicy_compliance" "after" {
  policy_assignment_id = akspolicy_assignment.addon.id
  trigger_scan         = true
  depends_on           = [akspolicy_remediation.addon]
}

output "non_compliant_after" { value = data.akspolicy_compliance.after.non_compliant_resources }
output "remediation_state" { value = akspolicy_remediation.addon.provisioning_state }
output "remediated" { value = akspolicy_remediation.addon.successful_deployments }
"#
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
    assert_eq!(run.code, 1, "{}", run.combined());
    assert!(
        run.combined()
            .contains("not available at management-group scope"),
        "{}",
        run.combined()
    );
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

/// Compliance scans started so far (POSTs to triggerEvaluation).
fn scans(emulator: &Emulator) -> u64 {
    let (status, metrics) = emulator.arm("GET", "/_emulator/metrics", None);
    assert_eq!(status, 200, "metrics: {metrics}");
    metrics["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["method"] == "POST")
        .filter(|r| {
            r["route"]
                .as_str()
                .is_some_and(|t| t.ends_with("/triggerevaluation"))
        })
        .filter_map(|r| r["count"].as_u64())
        .sum()
}

#[test]
fn trigger_scan_scans_at_every_plan_unless_a_variable_keeps_it_off() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let ws = Workspace::new(&emulator);
    // The pattern the compliance docs show for CI.
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

variable "scan_compliance" {{
  type    = bool
  default = false
}}

data "akspolicy_compliance" "subscription" {{
  scope        = "/subscriptions/{sub}"
  trigger_scan = var.scan_compliance
}}

output "non_compliant_resources" {{
  value = data.akspolicy_compliance.subscription.non_compliant_resources
}}
"#
    ));
    ws.apply().assert_ok("apply without a scan");
    ws.plan();
    assert_eq!(
        scans(&emulator),
        0,
        "plans and applies without the variable scan nothing"
    );

    let scan_step = ws.terraform(&[
        "apply",
        "-refresh-only",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-var",
        "scan_compliance=true",
    ]);
    scan_step.assert_ok("separate scan step");
    assert_eq!(scans(&emulator), 1);
    // With the variable on, every plan scans again: what the docs warn about.
    ws.terraform(&[
        "plan",
        "-input=false",
        "-no-color",
        "-var",
        "scan_compliance=true",
    ])
    .assert_ok("plan with scan");
    assert_eq!(scans(&emulator), 2);
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
    let Some(specs) = shared_specs() else {
        eprintln!("note: ../shared/specs not found; skipped");
        return;
    };
    let (emulator, mg, clusters) = estate(&specs);
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
    let config = format!(
        "{assignment}{}",
        r#"
resource "akspolicy_remediation" "addon" {
  name                 = "enable-policy-addon"
  scope                = akspolicy_assignment.addon.scope
  policy_assignment_id = akspolicy_assignment.addon.id
  wait_for_completion  = true
}

output "remediated" { value = akspolicy_remediation.addon.successful_deployments }
"#
    );
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
fn estate(specs: &std::path::Path) -> (Emulator, &'static str, Vec<String>) {
    let builtins = specs.join("azure-policy");
    let emulator = Emulator::start_with(&[
        "--builtins",
        builtins.to_str().expect("UTF-8 path"),
        "--subscriptions",
        "2",
    ]);
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
    (emulator, mg, clusters)
}

/// `grant_remediation_roles`: the provider grants the built-in's roles to the assignment's
/// identity at the management group (waiting out Entra ID's replication of the new identity),
/// so the remediation in the same apply turns the add-on on in both subscriptions; the roles
/// are in state, re-granted after drift, found again on import, and removed when turned off
/// and with the assignment.
#[test]
fn grant_remediation_roles_lets_the_builtin_remediate_across_subscriptions() {
    let Some(specs) = shared_specs() else {
        eprintln!("note: ../shared/specs not found; skipped");
        return;
    };
    let (emulator, mg, clusters) = estate(&specs);
    let (status, body) = emulator.arm(
        "POST",
        "/_emulator/faults",
        Some(&json!({"principal_replication_ms": 3000})),
    );
    assert_eq!(status, 200, "{body}");
    let assignment = |grant: bool| {
        format!(
            r#"
resource "akspolicy_assignment" "addon" {{
  name                    = "deploy-policy-addon"
  scope                   = "{mg}"
  policy_definition_id    = "{ADDON_DINE}"
  location                = "westeurope"
  grant_remediation_roles = {grant}
  identity {{
    type = "SystemAssigned"
  }}
}}

output "roles" {{ value = akspolicy_assignment.addon.remediation_role_assignment_ids }}
output "principal" {{ value = akspolicy_assignment.addon.identity[0].principal_id }}
"#
        )
    };
    let remediation = r#"
resource "akspolicy_remediation" "addon" {
  name                 = "enable-policy-addon"
  scope                = akspolicy_assignment.addon.scope
  policy_assignment_id = akspolicy_assignment.addon.id
  wait_for_completion  = true
}

output "remediated" { value = akspolicy_remediation.addon.successful_deployments }
"#;
    let ws = Workspace::new(&emulator);
    ws.write_config(&format!("{}{remediation}", assignment(true)));
    ws.apply().assert_ok("apply with grant_remediation_roles");
    assert_eq!(ws.output("remediated"), 2);
    for id in &clusters {
        let cluster = wait_idle(&emulator, id);
        assert_eq!(
            cluster["properties"]["addonProfiles"]["azurepolicy"]["enabled"], true,
            "{id}: {cluster}"
        );
    }
    let principal = ws.output("principal");
    let roles: Vec<String> = ws
        .output("roles")
        .as_array()
        .expect("role ids")
        .iter()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    assert_eq!(roles.len(), 2, "{roles:?}");
    // The identity was new: ARM answered PrincipalNotFound until Entra ID knew it, and the
    // provider waited instead of failing.
    let (status, metrics) = emulator.arm("GET", "/_emulator/metrics", None);
    assert_eq!(status, 200, "{metrics}");
    let waited = metrics["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| {
            r["method"] == "PUT"
                && r["status"] == 400
                && r["route"].as_str().is_some_and(|route| {
                    route.ends_with("/providers/microsoft.authorization/roleassignments/{}")
                })
        });
    assert!(waited, "no PrincipalNotFound was waited out: {metrics}");
    for id in &roles {
        assert!(
            id.starts_with(&format!(
                "{mg}/providers/Microsoft.Authorization/roleAssignments/"
            )),
            "{id}"
        );
        let (status, ra) = emulator.arm("GET", &format!("{id}?api-version=2022-04-01"), None);
        assert_eq!(status, 200, "{ra}");
        assert_eq!(ra["properties"]["principalId"], principal, "{ra}");
    }
    ws.assert_empty_plan();

    // Drift: a role assignment deleted outside Terraform is planned back and re-granted.
    let (status, _) = emulator.arm(
        "DELETE",
        &format!("{}?api-version=2022-04-01", roles[0]),
        None,
    );
    assert_eq!(status, 200);
    let drift = ws.plan();
    assert_eq!(drift.code, 2, "{}", drift.combined());
    assert!(
        drift.combined().contains("grant_remediation_roles"),
        "{}",
        drift.combined()
    );
    ws.apply().assert_ok("re-grant");
    let (status, _) = emulator.arm("GET", &format!("{}?api-version=2022-04-01", roles[0]), None);
    assert_eq!(status, 200);
    ws.assert_empty_plan();

    // Import finds the roles a previous apply granted.
    let imported = Workspace::new(&emulator);
    let without_outputs = assignment(true);
    let without_outputs = without_outputs
        .split("output \"roles\"")
        .next()
        .unwrap_or_default();
    imported.write_config(without_outputs);
    imported
        .terraform(&[
            "import",
            "-input=false",
            "-no-color",
            "akspolicy_assignment.addon",
            &format!(
                "{mg}/providers/Microsoft.Authorization/policyAssignments/deploy-policy-addon"
            ),
        ])
        .assert_ok("import");
    imported.assert_empty_plan();

    // Turned off: the role assignments go, the assignment stays.
    ws.write_config(&format!("{}{remediation}", assignment(false)));
    ws.apply().assert_ok("grant off");
    assert_eq!(ws.output("roles"), json!([]));
    for id in &roles {
        let (status, _) = emulator.arm("GET", &format!("{id}?api-version=2022-04-01"), None);
        assert_eq!(status, 404, "{id} survived grant_remediation_roles = false");
    }
    ws.assert_empty_plan();

    // On again, then destroyed with the assignment.
    ws.write_config(&format!("{}{remediation}", assignment(true)));
    ws.apply().assert_ok("grant on");
    ws.destroy().assert_ok("destroy");
    for id in &roles {
        let (status, _) = emulator.arm("GET", &format!("{id}?api-version=2022-04-01"), None);
        assert_eq!(status, 404, "{id} survived the assignment");
    }
}

/// A definition whose `roleDefinitionIds` change: the next refresh finds the assignment's
/// grants out of date and plans the update, which grants the new roles and revokes the old.
#[test]
fn grant_remediation_roles_follows_the_definitions_roles() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let contributor =
        "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c";
    let aks_contributor =
        "/providers/Microsoft.Authorization/roleDefinitions/ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8";
    let reader =
        "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7";
    let config = |roles: &[&str]| {
        let roles = roles
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"
resource "akspolicy_definition" "tag" {{
  name         = "cost-tag"
  display_name = "Cost centre tag on clusters"
  mode         = "Indexed"
  policy_rule = jsonencode({{
    if = {{ field = "type", equals = "Microsoft.ContainerService/managedClusters" }}
    then = {{
      effect = "modify"
      details = {{
        roleDefinitionIds = [{roles}]
        operations        = [{{ operation = "addOrReplace", field = "tags['cost']", value = "cc-1" }}]
      }}
    }}
  }})
}}

resource "akspolicy_assignment" "tag" {{
  name                    = "cost-tag"
  scope                   = "/subscriptions/{sub}"
  policy_definition_id    = akspolicy_definition.tag.id
  location                = "westeurope"
  grant_remediation_roles = true
  identity {{
    type = "SystemAssigned"
  }}
}}

output "roles" {{ value = akspolicy_assignment.tag.remediation_role_assignment_ids }}
"#
        )
    };
    let role_of = |id: &str| -> String {
        let (status, ra) = emulator.arm("GET", &format!("{id}?api-version=2022-04-01"), None);
        assert_eq!(status, 200, "{ra}");
        ra["properties"]["roleDefinitionId"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_default()
            .to_string()
    };
    let roles_of = |ws: &Workspace| -> Vec<String> {
        ws.output("roles")
            .as_array()
            .expect("role ids")
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect()
    };
    let ws = Workspace::new(&emulator);
    ws.write_config(&config(&[contributor]));
    ws.apply().assert_ok("apply");
    let first = roles_of(&ws);
    assert_eq!(first.len(), 1);
    assert_eq!(role_of(&first[0]), "b24988ac-6180-42a0-ab88-20f7382dd24c");
    ws.assert_empty_plan();

    ws.write_config(&config(&[aks_contributor, reader]));
    ws.apply().assert_ok("change the definition's roles");
    let follow = ws.plan();
    assert_eq!(follow.code, 2, "{}", follow.combined());
    assert!(
        follow.combined().contains("grant_remediation_roles"),
        "{}",
        follow.combined()
    );
    ws.apply().assert_ok("follow the definition");
    let second = roles_of(&ws);
    let granted: Vec<String> = second.iter().map(|id| role_of(id)).collect();
    assert_eq!(
        granted,
        vec![
            "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8".to_string(),
            "acdd72a7-3385-48ef-bd42-f606fba81ae7".to_string()
        ]
    );
    let (status, _) = emulator.arm("GET", &format!("{}?api-version=2022-04-01", first[0]), None);
    assert_eq!(status, 404, "the role the definition dropped is revoked");
    ws.assert_empty_plan();
    ws.destroy().assert_ok("destroy");
}
