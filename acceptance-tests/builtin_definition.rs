//! `akspolicy_builtin_definition`, end to end.

use crate::harness::{Emulator, Workspace};

const NO_PRIVILEGED: &str = "Kubernetes cluster should not allow privileged containers";
const NO_PRIVILEGED_NAME: &str = "95edb821-ddaf-4404-9732-666045e056b4";

fn lookup_config(key: &str, value: &str) -> String {
    format!(
        r#"
provider "akspolicy" {{}}

data "akspolicy_builtin_definition" "this" {{
  {key} = "{value}"
}}

output "id" {{ value = data.akspolicy_builtin_definition.this.id }}
output "name" {{ value = data.akspolicy_builtin_definition.this.name }}
output "display_name" {{ value = data.akspolicy_builtin_definition.this.display_name }}
output "mode" {{ value = data.akspolicy_builtin_definition.this.mode }}
output "version" {{ value = data.akspolicy_builtin_definition.this.version }}
output "category" {{ value = data.akspolicy_builtin_definition.this.category }}
output "template_url" {{ value = data.akspolicy_builtin_definition.this.template_url }}
output "parameter_names" {{ value = sort(keys(jsondecode(data.akspolicy_builtin_definition.this.parameters))) }}
output "effect_default" {{ value = jsondecode(data.akspolicy_builtin_definition.this.parameters).effect.defaultValue }}
"#
    )
}

/// validate → plan → apply → empty plan → destroy, then the outputs a user would read.
fn apply_lookup(ws: &Workspace) -> serde_json::Value {
    ws.validate().assert_ok("validate");
    let plan = ws.plan();
    assert_eq!(
        plan.code,
        2,
        "first plan should show the outputs:\n{}",
        plan.combined()
    );
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    let outputs = ws.outputs();
    ws.destroy().assert_ok("destroy");
    outputs
}

fn value<'a>(outputs: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &outputs[name]["value"]
}

#[test]
fn looks_up_privileged_containers_builtin_from_azure_policy_repository() {
    let Some(emulator) = Emulator::start_with_shared_builtins(&[]) else {
        return;
    };
    let ws = Workspace::new(&emulator);
    ws.write_config(&lookup_config("display_name", NO_PRIVILEGED));
    let out = apply_lookup(&ws);
    assert_eq!(value(&out, "name"), NO_PRIVILEGED_NAME);
    assert_eq!(
        value(&out, "id"),
        &format!("/providers/Microsoft.Authorization/policyDefinitions/{NO_PRIVILEGED_NAME}")
    );
    assert_eq!(value(&out, "mode"), "Microsoft.Kubernetes.Data");
    assert_eq!(value(&out, "version"), "9.2.0");
    assert_eq!(value(&out, "category"), "Kubernetes");
    assert_eq!(value(&out, "effect_default"), "Deny");
    assert_eq!(
        value(&out, "template_url"),
        "https://store.policy.core.windows.net/kubernetes/container-no-privilege/v2/template.yaml"
    );
    let names = value(&out, "parameter_names").as_array().expect("list");
    for p in [
        "effect",
        "excludedNamespaces",
        "namespaces",
        "labelSelector",
        "excludedImages",
    ] {
        assert!(
            names.iter().any(|n| n == p),
            "missing parameter {p} in {names:?}"
        );
    }
}

#[test]
fn looks_up_builtin_by_name_from_own_catalogue() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(&lookup_config("name", NO_PRIVILEGED_NAME));
    let out = apply_lookup(&ws);
    assert_eq!(value(&out, "display_name"), NO_PRIVILEGED);
    assert_eq!(value(&out, "mode"), "Microsoft.Kubernetes.Data");
    assert_eq!(value(&out, "effect_default"), "Deny");
}

#[test]
fn absent_display_name_is_an_error_with_suggestions() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(&lookup_config(
        "display_name",
        "kubernetes cluster should not allow privileged containers",
    ));
    let text = ws
        .plan()
        .assert_error_with(&["No built-in policy definition with this display name"]);
    assert!(
        text.contains(NO_PRIVILEGED_NAME),
        "suggestion missing: {text}"
    );
    assert!(text.contains("display_name"), "attribute not named: {text}");
}

#[test]
fn absent_name_is_an_error() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(&lookup_config(
        "name",
        "00000000-0000-0000-0000-000000000000",
    ));
    ws.plan()
        .assert_error_with(&["Built-in policy definition not found"]);
}

#[test]
fn ambiguous_display_name_lists_every_candidate() {
    // Two built-ins sharing a display name, as happens when Azure keeps a deprecated copy.
    let dir = tempfile::tempdir().expect("temp dir");
    let kube = dir
        .path()
        .join("built-in-policies/policyDefinitions/Kubernetes");
    std::fs::create_dir_all(&kube).expect("mkdir");
    for (name, version) in [
        ("11111111-1111-1111-1111-111111111111", "1.0.0"),
        ("22222222-2222-2222-2222-222222222222", "2.1.0"),
    ] {
        let body = serde_json::json!({
            "id": format!("/providers/Microsoft.Authorization/policyDefinitions/{name}"),
            "name": name,
            "type": "Microsoft.Authorization/policyDefinitions",
            "properties": {
                "displayName": "Twin policy",
                "policyType": "BuiltIn",
                "mode": "All",
                "version": version,
                "metadata": {"category": "Kubernetes", "version": version},
                "parameters": {},
                "policyRule": {"if": {"field": "type", "equals": "x"}, "then": {"effect": "audit"}}
            }
        });
        std::fs::write(kube.join(format!("{name}.json")), body.to_string()).expect("write");
    }
    let emulator = Emulator::start_with(&["--builtins", dir.path().to_str().expect("utf-8")]);
    let ws = Workspace::new(&emulator);
    ws.write_config(&lookup_config("display_name", "Twin policy"));
    let text = ws
        .plan()
        .assert_error_with(&["Several built-in policy definitions"]);
    assert!(
        text.contains("11111111-1111-1111-1111-111111111111") && text.contains("1.0.0"),
        "{text}"
    );
    assert!(
        text.contains("22222222-2222-2222-2222-222222222222") && text.contains("2.1.0"),
        "{text}"
    );
}

#[test]
fn exactly_one_lookup_key_is_required() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(
        r#"
data "akspolicy_builtin_definition" "none" {}
"#,
    );
    ws.validate()
        .assert_error_with(&["Set exactly one of `name`"]);

    ws.write_config(&format!(
        r#"
data "akspolicy_builtin_definition" "both" {{
  name         = "{NO_PRIVILEGED_NAME}"
  display_name = "{NO_PRIVILEGED}"
}}
"#
    ));
    ws.validate()
        .assert_error_with(&["Conflicting lookup keys"]);
}

/// GETs of the built-in definition listing (every page) answered so far.
fn builtin_listing_pages(emulator: &Emulator) -> u64 {
    emulator.requests("GET", Some(200), |route| {
        route == "/providers/microsoft.authorization/policydefinitions"
    })
}

#[test]
fn display_name_lookups_share_one_listing_per_provider_process() {
    let Some(emulator) = Emulator::start_with_shared_builtins(&[]) else {
        return;
    };
    let ws = Workspace::new(&emulator);
    let lookups = |names: &[&str]| -> String {
        let mut out = String::from("provider \"akspolicy\" {}\n");
        for (i, n) in names.iter().enumerate() {
            out.push_str(&format!(
                "data \"akspolicy_builtin_definition\" \"d{i}\" {{\n  display_name = {n:?}\n}}\noutput \"id{i}\" {{ value = data.akspolicy_builtin_definition.d{i}.id }}\n"
            ));
        }
        out
    };
    ws.write_config(&lookups(&[NO_PRIVILEGED]));
    let before = builtin_listing_pages(&emulator);
    assert_eq!(ws.plan().code, 2);
    let one = builtin_listing_pages(&emulator) - before;
    assert!(one > 1, "the listing should take several pages, took {one}");

    ws.write_config(&lookups(&[
        NO_PRIVILEGED,
        "Kubernetes cluster containers should only use allowed images",
        "Kubernetes clusters should be accessible only over HTTPS",
    ]));
    let before = builtin_listing_pages(&emulator);
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    let three = builtin_listing_pages(&emulator) - before;
    eprintln!("listing pages: one lookup {one}, three lookups {three}");
    assert_eq!(three, one, "three lookups should share one listing");
}
