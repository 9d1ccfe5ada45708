//! `akspolicy_definition` and `akspolicy_initiative`, end to end.

use serde_json::{json, Value as Json};

use crate::harness::{Emulator, Workspace};

fn config(definition_display: &str, initiative_display: &str) -> String {
    format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_definition" "addon" {{
  name         = "aks-require-policy-addon"
  display_name = "{definition_display}"
  mode         = "Indexed"
  metadata     = jsonencode({{ category = "Kubernetes" }})
  parameters = jsonencode({{
    effect = {{ type = "String", allowedValues = ["Audit", "Disabled"], defaultValue = "Audit" }}
  }})
  policy_rule = jsonencode({{
    if   = {{ field = "type", equals = "Microsoft.ContainerService/managedClusters" }}
    then = {{ effect = "[parameters('effect')]" }}
  }})
}}

resource "akspolicy_initiative" "baseline" {{
  name         = "aks-baseline"
  display_name = "{initiative_display}"
  parameters = jsonencode({{
    effect = {{ type = "String", allowedValues = ["Audit", "Disabled"], defaultValue = "Audit" }}
  }})
  policy_definition {{
    policy_definition_id = akspolicy_definition.addon.id
    reference_id         = "addon"
    parameters           = jsonencode({{ effect = "[parameters('effect')]" }})
    group_names          = ["addons"]
  }}
  policy_definition_group {{
    name         = "addons"
    display_name = "Cluster add-ons"
  }}
}}

output "definition_id" {{ value = akspolicy_definition.addon.id }}
output "initiative_id" {{ value = akspolicy_initiative.baseline.id }}
"#
    )
}

fn state_attributes(ws: &Workspace, address: &str) -> Json {
    let run = ws.terraform(&["show", "-json"]);
    run.assert_ok("show");
    let show: Json = serde_json::from_str(&run.stdout).expect("show -json");
    show["values"]["root_module"]["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["address"] == address))
        .map(|r| r["values"].clone())
        .unwrap_or(Json::Null)
}

#[test]
fn definition_and_initiative_lifecycle() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(&config("Require the policy add-on", "AKS baseline"));
    ws.validate().assert_ok("validate");
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();

    ws.write_config(&config(
        "Require the Azure Policy add-on",
        "AKS baseline v2",
    ));
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    assert!(plan.stdout.contains("update in-place"), "{}", plan.stdout);
    ws.apply().assert_ok("update");
    ws.assert_empty_plan();

    let definition_id = ws.output("definition_id").as_str().expect("id").to_string();
    let initiative_id = ws.output("initiative_id").as_str().expect("id").to_string();
    for (address, id) in [
        ("akspolicy_definition.addon", &definition_id),
        ("akspolicy_initiative.baseline", &initiative_id),
    ] {
        let before = state_attributes(&ws, address);
        ws.terraform(&["state", "rm", address])
            .assert_ok("state rm");
        ws.terraform(&["import", "-no-color", address, id])
            .assert_ok("import");
        let after = state_attributes(&ws, address);
        assert_eq!(after, before, "{address} differs after import");
    }
    // `state rm` may drop outputs that referenced the resource; only resource changes count.
    let plan = ws.plan();
    assert!(
        !plan
            .stdout
            .contains("Terraform will perform the following actions"),
        "imported state does not plan empty:\n{}",
        plan.stdout
    );
    ws.apply().assert_ok("refresh outputs");
    ws.assert_empty_plan();

    // Out-of-band change: the plan shows exactly that attribute.
    let (status, mut body) = emulator.arm(
        "GET",
        &format!("{definition_id}?api-version=2025-03-01"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["properties"]["description"] = json!("changed outside Terraform");
    let (status, resp) = emulator.arm(
        "PUT",
        &format!("{definition_id}?api-version=2025-03-01"),
        Some(&json!({"properties": body["properties"]})),
    );
    assert!(status == 200 || status == 201, "{resp}");
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    assert!(
        plan.stdout.contains("changed outside Terraform"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("1 to change"), "{}", plan.stdout);
    ws.apply().assert_ok("revert drift");
    ws.assert_empty_plan();

    ws.destroy().assert_ok("destroy");
}

#[test]
fn initiative_rejects_undeclared_parameters_at_plan() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(&config("x", "y").replace(
        r#"parameters           = jsonencode({ effect = "[parameters('effect')]" })"#,
        r#"parameters           = jsonencode({ effect = "[parameters('missing')]" })"#,
    ));
    let out = ws.validate().combined();
    assert!(out.contains("Undeclared initiative parameter"), "{out}");
}

#[test]
fn looks_up_builtin_initiative_by_display_name_and_name() {
    let Some(specs) = crate::harness::shared_specs() else {
        eprintln!("skipped: ../shared/specs is not present");
        return;
    };
    let builtins = specs.join("azure-policy");
    let emulator = Emulator::start_with(&["--builtins", builtins.to_str().expect("utf-8 path")]);
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
