//! `data.akspolicy_builtin_initiative`: lookups by display name and by name in a built-in
//! catalogue loaded from shared/specs, and the member parameter check it enables.

use serde_json::json;

use crate::harness::{Emulator, Workspace};

#[test]
fn looks_up_builtin_initiative_by_display_name_and_name() {
    let Some(emulator) = Emulator::start_with_shared_builtins(&[]) else {
        return;
    };
    let ws = Workspace::new(&emulator);
    ws.write_config(
        r#"
provider "akspolicy" {}

data "akspolicy_builtin_initiative" "baseline" {
  display_name = "Kubernetes cluster pod security baseline standards for Linux-based workloads"
}

data "akspolicy_builtin_initiative" "restricted" {
  name = "42b8ef37-b724-4e24-bbc8-7a7708edfe00"
}

output "baseline_name" { value = data.akspolicy_builtin_initiative.baseline.name }
output "baseline_members" { value = length(data.akspolicy_builtin_initiative.baseline.policy_definition_ids) }
output "restricted_display" { value = data.akspolicy_builtin_initiative.restricted.display_name }
"#,
    );
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    assert_eq!(
        ws.output("baseline_name"),
        json!("a8640138-9b0a-4a28-b8cb-1666c838647d")
    );
    assert_eq!(ws.output("baseline_members"), json!(5));
    assert!(ws
        .output("restricted_display")
        .as_str()
        .is_some_and(|d| d.contains("restricted")));

    // A member parameter the pinned built-in does not declare fails the plan.
    ws.write_config(
        r#"
provider "akspolicy" {}

resource "akspolicy_initiative" "bad" {
  name       = "bad-members"
  parameters = jsonencode({ effect = { type = "String", defaultValue = "Audit" } })
  policy_definition {
    policy_definition_id = "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4"
    definition_version   = "9.*.*"
    parameters           = jsonencode({ effect = "[parameters('effect')]", noSuchParameter = "x" })
  }
}
"#,
    );
    let out = ws.plan().combined();
    assert!(out.contains("Unknown member parameter"), "{out}");
    assert!(out.contains("noSuchParameter"), "{out}");
}
