//! `akspolicy_definition` and `akspolicy_initiative`, end to end.

use serde_json::{json, Value as Json};

use crate::harness::{Emulator, Workspace};

pub(crate) fn config(definition_display: &str, initiative_display: &str) -> String {
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
    ws.plan_with_changes(&["update in-place"]);
    ws.apply().assert_ok("update");
    ws.assert_empty_plan();

    let definition_id = ws.output("definition_id").as_str().expect("id").to_string();
    let initiative_id = ws.output("initiative_id").as_str().expect("id").to_string();
    for (address, id) in [
        ("akspolicy_definition.addon", &definition_id),
        ("akspolicy_initiative.baseline", &initiative_id),
    ] {
        let before = ws.state_attributes(address);
        let after = ws.reimport(address, id);
        assert_eq!(after, before, "{address} differs after import");
    }
    // `state rm` may drop outputs that referenced the resource; only resource changes count.
    ws.assert_no_resource_changes();
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
    ws.plan_with_changes(&["changed outside Terraform", "1 to change"]);
    ws.apply().assert_ok("revert drift");
    ws.assert_empty_plan();

    ws.destroy().assert_ok("destroy");
}

/// One spec file of a built-in definition, as the round-trip test sees it.
struct BuiltinFile {
    /// Resource key in the configuration (unique across current and historic files).
    key: String,
    /// Path relative to the specs directory.
    relative: String,
    /// What kind of rule it is, so that imports cover every kind without importing all.
    kind: String,
}

/// Every built-in definition file under `specs/azure-policy` (current and `history/`).
fn builtin_definition_files(specs: &std::path::Path) -> Vec<BuiltinFile> {
    let root = specs.join("azure-policy");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(&root)
                .expect("below root")
                .to_string_lossy()
                .to_string();
            if !relative.contains("policyDefinitions/") || !relative.ends_with(".json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read spec");
            let body: Json = serde_json::from_str(&text).expect("spec is JSON");
            let props = &body["properties"];
            let details = &props["policyRule"]["then"]["details"];
            let shape = [
                "deployment",
                "operations",
                "mutationInfo",
                "constraintTemplate",
                "templateInfo",
                "existenceCondition",
            ]
            .into_iter()
            .find(|k| details.get(k).is_some())
            .unwrap_or("plain");
            let stem = path.file_stem().expect("file name").to_string_lossy();
            let key = if relative.starts_with("history/") {
                format!("history-{stem}")
            } else {
                stem.to_string()
            };
            out.push(BuiltinFile {
                key,
                relative,
                kind: format!("{}/{shape}", props["mode"].as_str().unwrap_or("")),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[test]
fn every_builtin_definition_round_trips_as_a_custom_definition() {
    let Some(specs) = crate::harness::shared_specs() else {
        eprintln!("skipped: ../shared/specs is not present");
        return;
    };
    let files = builtin_definition_files(&specs);
    assert!(
        files.len() >= 24,
        "found only {} definition files",
        files.len()
    );
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    let entries: Vec<String> = files
        .iter()
        .map(|f| format!("    {:?} = {:?}", f.key, f.relative))
        .collect();
    // The files are read by Terraform itself, as a user copying a built-in would.
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

locals {{
  specs = {specs:?}
  files = {{
{entries}
  }}
  builtins = {{ for k, f in local.files : k => jsondecode(file("${{local.specs}}/azure-policy/${{f}}")).properties }}
}}

resource "akspolicy_definition" "copy" {{
  for_each     = local.builtins
  name         = "copy-${{each.key}}"
  mode         = each.value.mode
  display_name = each.value.displayName
  description  = each.value.description
  # Custom definitions take plain x.y.z versions; built-ins may say 1.1.0-preview.
  version      = try(regex("^[0-9]+[.][0-9]+[.][0-9]+$", each.value.version), null)
  metadata     = jsonencode(each.value.metadata)
  parameters   = jsonencode(each.value.parameters)
  policy_rule  = jsonencode(each.value.policyRule)
}}

output "ids" {{ value = {{ for k, d in akspolicy_definition.copy : k => d.id }} }}
"#,
        specs = specs.display().to_string(),
        entries = entries.join("\n"),
    ));
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    ws.apply()
        .assert_ok("apply every built-in as a custom definition");
    ws.assert_empty_plan();

    // What Azure holds is what the built-in says (the deployment template unchanged).
    let ids = ws.output("ids");
    for f in &files {
        let id = ids[&f.key].as_str().expect("id output");
        let (status, held) = emulator.arm("GET", &format!("{id}?api-version=2025-03-01"), None);
        assert_eq!(status, 200, "{held}");
        let spec: Json = serde_json::from_str(
            &std::fs::read_to_string(specs.join("azure-policy").join(&f.relative)).expect("spec"),
        )
        .expect("JSON");
        assert_eq!(
            held["properties"]["policyRule"], spec["properties"]["policyRule"],
            "{} policyRule",
            f.key
        );
        assert_eq!(
            held["properties"]["parameters"], spec["properties"]["parameters"],
            "{} parameters",
            f.key
        );
    }

    // One import per kind of rule (mode and details shape) keeps this fast yet covers them all.
    let mut kinds_seen: Vec<&str> = Vec::new();
    for f in &files {
        if kinds_seen.contains(&f.kind.as_str()) {
            continue;
        }
        kinds_seen.push(&f.kind);
        let address = format!("akspolicy_definition.copy[{:?}]", f.key);
        let id = ids[&f.key].as_str().expect("id output");
        let before = ws.state_attributes(&address);
        let after = ws.reimport(&address, id);
        assert_eq!(after, before, "{address} ({}) differs after import", f.kind);
    }
    eprintln!("imported one definition of each kind: {kinds_seen:?}");
    // `state rm` drops the output's element; only resource changes count.
    ws.assert_no_resource_changes();
}

#[test]
fn deploy_if_not_exists_template_parameters_are_not_policy_parameters() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    let config = |declared: &str| {
        format!(
            r#"
provider "akspolicy" {{}}

resource "akspolicy_definition" "dine" {{
  name       = "deploy-tier-tag"
  mode       = "Indexed"
  parameters = jsonencode({{ {declared} }})
  policy_rule = jsonencode({{
    if = {{ field = "type", equals = "Microsoft.ContainerService/managedClusters" }}
    then = {{
      effect = "deployIfNotExists"
      details = {{
        type               = "Microsoft.ContainerService/managedClusters"
        name               = "[field('name')]"
        roleDefinitionIds  = ["/providers/Microsoft.Authorization/roleDefinitions/ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8"]
        existenceCondition = {{ field = "tags['tier']", equals = "[parameters('tier')]" }}
        deployment = {{
          properties = {{
            mode = "incremental"
            template = {{
              "$schema"      = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
              contentVersion = "1.0.0.0"
              parameters     = {{ clusterName = {{ type = "string" }}, tier = {{ type = "string" }} }}
              resources = [{{
                type       = "Microsoft.Resources/tags"
                apiVersion = "2021-04-01"
                name       = "default"
                scope      = "[resourceId('Microsoft.ContainerService/managedClusters', parameters('clusterName'))]"
                properties = {{ tags = {{ tier = "[parameters('tier')]" }} }}
              }}]
            }}
            parameters = {{
              clusterName = {{ value = "[field('name')]" }}
              tier        = {{ value = "[parameters('tier')]" }}
            }}
          }}
        }}
      }}
    }}
  }})
}}
"#
        )
    };
    // `tier` is used by the existence condition and the deployment's parameter values: a
    // policy parameter. `clusterName` is only the template's own.
    ws.write_config(&config(""));
    let out = ws.validate().combined();
    assert!(out.contains("Undeclared parameter"), "{out}");
    assert!(
        out.contains("The rule uses parameters(tier) but `parameters` does not declare it."),
        "{out}"
    );

    ws.write_config(&config(
        r#"tier = { type = "String", defaultValue = "gold" }"#,
    ));
    ws.apply().assert_ok("apply a DeployIfNotExists definition");
    ws.assert_empty_plan();
}
