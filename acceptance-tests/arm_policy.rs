//! ARM-mode policy through Terraform: a custom definition written like a built-in the emulator
//! does not ship (local accounts disabled), assigned with Deny, refuses a non-compliant cluster
//! PUT and admits a compliant one; with `DoNotEnforce` the PUT goes through and the
//! compliance data source reports the cluster non-compliant.

use serde_json::json;

use crate::harness::{cluster_id, small_cluster, wait_idle, Emulator, Workspace, AKS_API};

fn config(sub: &str, enforcement_mode: &str) -> String {
    format!(
        r#"
resource "akspolicy_definition" "local_accounts" {{
  name         = "aks-local-accounts-disabled"
  display_name = "AKS clusters should have local accounts disabled"
  mode         = "Indexed"
  version      = "1.0.0"
  metadata     = jsonencode({{ category = "Kubernetes" }})
  parameters = jsonencode({{
    effect = {{
      type          = "String"
      allowedValues = ["Audit", "Deny", "Disabled"]
      defaultValue  = "Audit"
    }}
  }})
  policy_rule = jsonencode({{
    if = {{
      allOf = [
        {{ field = "type", equals = "Microsoft.ContainerService/managedClusters" }},
        {{ field = "Microsoft.ContainerService/managedClusters/disableLocalAccounts", notEquals = true }},
      ]
    }}
    then = {{ effect = "[parameters('effect')]" }}
  }})
}}

resource "akspolicy_assignment" "local_accounts" {{
  name                 = "no-local-accounts"
  scope                = "/subscriptions/{sub}"
  policy_definition_id = akspolicy_definition.local_accounts.id
  enforcement_mode     = "{enforcement_mode}"
  parameters           = {{ effect = "Deny" }}
}}
"#
    )
}

fn compliance() -> &'static str {
    r#"
data "akspolicy_compliance" "local_accounts" {
  policy_assignment_id = akspolicy_assignment.local_accounts.id
  trigger_scan         = true
}

output "non_compliant" { value = data.akspolicy_compliance.local_accounts.non_compliant_resources }
"#
}

fn put_cluster(
    emulator: &Emulator,
    rg: &str,
    name: &str,
    disable_local: bool,
) -> (u16, serde_json::Value, String) {
    let id = cluster_id(&emulator.subscription_id(), rg, name);
    let mut body = small_cluster(name);
    body["properties"]["disableLocalAccounts"] = json!(disable_local);
    let (status, body) = emulator.arm("PUT", &format!("{id}?{AKS_API}"), Some(&body));
    (status, body, id)
}

#[test]
fn custom_arm_mode_deny_refuses_and_do_not_enforce_reports() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let (status, body) = emulator.arm(
        "PUT",
        &format!("/subscriptions/{sub}/resourcegroups/aks-rg?api-version=2021-04-01"),
        Some(&json!({"location": "westeurope"})),
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    let ws = Workspace::new(&emulator);
    ws.write_config(&config(&sub, "Default"));
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();

    let (status, body, _) = put_cluster(&emulator, "aks-rg", "local-on", false);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "RequestDisallowedByPolicy", "{body}");
    let violation = &body["error"]["additionalInfo"][0];
    assert_eq!(violation["type"], "PolicyViolation", "{body}");
    assert!(
        violation["info"]["policyAssignmentId"]
            .as_str()
            .is_some_and(|a| a.ends_with("/policyAssignments/no-local-accounts")),
        "{body}"
    );
    assert!(
        violation["info"]["policyDefinitionId"]
            .as_str()
            .is_some_and(|d| d.ends_with("/policyDefinitions/aks-local-accounts-disabled")),
        "{body}"
    );
    let (status, body, id) = put_cluster(&emulator, "aks-rg", "local-off", true);
    assert!(status == 200 || status == 201, "{status} {body}");
    wait_idle(&emulator, &id);

    // Report only: the same cluster is admitted, and compliance says what Deny would have done.
    ws.write_config(&format!("{}{}", config(&sub, "DoNotEnforce"), compliance()));
    ws.apply().assert_ok("apply DoNotEnforce");
    let (status, body, id) = put_cluster(&emulator, "aks-rg", "local-on", false);
    assert!(status == 200 || status == 201, "{status} {body}");
    wait_idle(&emulator, &id);
    ws.apply().assert_ok("refresh compliance");
    assert_eq!(ws.output("non_compliant"), 1);
}
