//! The at-scale add-on story: a DeployIfNotExists assignment with an identity at subscription
//! scope, a remediation that turns the add-on on for every cluster, and compliance before and
//! after — all through Terraform.

use crate::cluster_addon::{create_cluster, wait_idle};
use crate::harness::{Emulator, Workspace};

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
