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
