//! `akspolicy_kubernetes_definition`, end to end: lifecycle, plan-time `test` blocks and their
//! errors, hostile Rego, the documented examples and management group scope. The shared corpus
//! through the resource's `test` blocks and the admission webhook is in `gatekeeper_corpus.rs`.

use serde_json::{json, Value as Json};

use akspolicy::policy::constraint_template::TemplateSpec;

use crate::harness::{read_text, Emulator, Workspace};

const NO_LATEST_REGO: &str = r#"package k8snolatesttag

violation[{"msg": msg}] {
  c := input.review.object.spec.containers[_]
  endswith(c.image, ":latest")
  not exempt(c.image)
  msg := sprintf("container %v uses the latest tag", [c.name])
}

exempt(image) {
  image == input.parameters.exemptImages[_]
}
"#;

const LATEST_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx:latest\n";

/// A configuration with the Rego in a file beside main.tf, so HCL escaping never gets in the way.
fn k8s_config(ws: &Workspace, rego: &str, display_name: &str, extra: &str) -> String {
    std::fs::write(ws.path().join("policy.rego"), rego).expect("write rego");
    std::fs::write(ws.path().join("pod-latest.yaml"), LATEST_POD).expect("write pod");
    format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_kubernetes_definition" "no_latest" {{
  name         = "k8s-no-latest-tag"
  display_name = "{display_name}"
  template {{
    kind              = "K8sNoLatestTag"
    rego              = file("policy.rego")
    parameters_schema = jsonencode({{ type = "object", properties = {{ exemptImages = {{ type = "array", items = {{ type = "string" }} }} }} }})
  }}
  match {{
    api_groups = [""]
    kinds      = ["Pod"]
  }}
  test {{
    name       = "latest is refused"
    object     = file("pod-latest.yaml")
    violations = "yes"
    message    = "latest"
  }}
  test {{
    name       = "exempt image passes"
    object     = file("pod-latest.yaml")
    parameters = jsonencode({{ exemptImages = ["nginx:latest"] }})
    violations = "no"
  }}
  {extra}
}}

output "id" {{ value = akspolicy_kubernetes_definition.no_latest.id }}
output "rendered" {{ value = akspolicy_kubernetes_definition.no_latest.rendered_template }}
output "parameters" {{ value = akspolicy_kubernetes_definition.no_latest.parameters }}
"#
    )
}

#[test]
fn kubernetes_definition_lifecycle() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(&k8s_config(&ws, NO_LATEST_REGO, "No latest tag", ""));
    ws.validate().assert_ok("validate");
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    let id = ws.output("id").as_str().expect("id").to_string();
    assert!(
        id.ends_with("/providers/Microsoft.Authorization/policyDefinitions/k8s-no-latest-tag"),
        "{id}"
    );
    let rendered = ws.output("rendered");
    assert!(
        rendered
            .as_str()
            .is_some_and(|r| r.contains("name: k8snolatesttag")),
        "{rendered}"
    );
    let params: Json =
        serde_json::from_str(ws.output("parameters").as_str().expect("parameters")).expect("json");
    assert_eq!(params["exemptImages"]["type"], "Array");
    assert_eq!(
        params["excludedNamespaces"]["defaultValue"][0],
        "kube-system"
    );

    // What Azure holds: Base64Encoded template, values wired to parameters.
    let (status, body) = emulator.arm("GET", &format!("{id}?api-version=2025-03-01"), None);
    assert_eq!(status, 200, "{body}");
    let details = &body["properties"]["policyRule"]["then"]["details"];
    assert_eq!(details["templateInfo"]["sourceType"], "Base64Encoded");
    assert_eq!(
        details["values"]["exemptImages"],
        "[parameters('exemptImages')]"
    );
    assert_eq!(body["properties"]["mode"], "Microsoft.Kubernetes.Data");

    // Update in place.
    ws.write_config(&k8s_config(&ws, NO_LATEST_REGO, "No latest tag, ever", ""));
    ws.plan_with_changes(&["update in-place"]);
    ws.apply().assert_ok("update");
    ws.assert_empty_plan();

    // Import into a fresh state: every attribute equal (tests are configuration only).
    let before = ws.state_attributes("akspolicy_kubernetes_definition.no_latest");
    let after = ws.reimport("akspolicy_kubernetes_definition.no_latest", &id);
    for (k, v) in before.as_object().expect("attributes") {
        if k == "test" {
            continue;
        }
        assert_eq!(&after[k], v, "attribute {k} differs after import");
    }
    // The imported state lacks only the test blocks; one apply records them, then the plan is empty.
    ws.apply().assert_ok("apply after import");
    ws.assert_empty_plan();

    // Out-of-band change of the Rego: the plan shows the Rego, not base64.
    let changed_rego = NO_LATEST_REGO.replace("uses the latest tag", "must not use latest");
    let spec = TemplateSpec {
        kind: "K8sNoLatestTag".into(),
        rego: changed_rego,
        libs: vec![],
        parameters_schema: Some(
            json!({"type": "object", "properties": {"exemptImages": {"type": "array", "items": {"type": "string"}}}}),
        ),
    };
    let (yaml, _) = spec.render().expect("render");
    use base64::Engine as _;
    let mut new_body = body.clone();
    new_body["properties"]["policyRule"]["then"]["details"]["templateInfo"]["content"] =
        json!(base64::engine::general_purpose::STANDARD.encode(yaml));
    new_body["properties"]["displayName"] = json!("No latest tag, ever");
    let (status, resp) = emulator.arm(
        "PUT",
        &format!("{id}?api-version=2025-03-01"),
        Some(&json!({"properties": new_body["properties"]})),
    );
    assert!(status == 200 || status == 201, "{resp}");
    let plan = ws.plan_with_changes(&["must not use latest"]);
    assert!(
        !plan.stdout.contains("content"),
        "base64 shown:\n{}",
        plan.stdout
    );
    ws.apply().assert_ok("revert drift");
    ws.assert_empty_plan();

    // Removing a parameter means replacement, with a warning that says why.
    let without_param = k8s_config(&ws, NO_LATEST_REGO, "No latest tag, ever", "")
        .replace(r#"parameters_schema = jsonencode({ type = "object", properties = { exemptImages = { type = "array", items = { type = "string" } } } })"#, "")
        .replace(r#"parameters = jsonencode({ exemptImages = ["nginx:latest"] })"#, "")
        .replace(r#"name       = "exempt image passes""#, r#"name       = "still refused""#)
        .replace(r#"violations = "no""#, r#"violations = "yes""#);
    ws.write_config(&without_param);
    let plan = ws.plan_with_changes(&["must be replaced"]);
    assert!(
        plan.combined().contains("exemptImages"),
        "{}",
        plan.combined()
    );

    ws.destroy().assert_ok("destroy");
    let (status, _) = emulator.arm("GET", &format!("{id}?api-version=2025-03-01"), None);
    assert_eq!(status, 404);
}

#[test]
fn kubernetes_definition_plan_time_errors() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);

    // Invalid Rego: the error names the attribute and the line:column.
    let broken = NO_LATEST_REGO.replace(
        "endswith(c.image, \":latest\")",
        "endswith(c.image, \":latest\"",
    );
    ws.write_config(&k8s_config(&ws, &broken, "x", ""));
    let run = ws.validate();
    assert_ne!(run.code, 0);
    let out = run.combined();
    assert!(out.contains("Invalid Rego"), "{out}");
    assert!(out.contains("rego:"), "{out}");

    // A failing test names the test and the violations.
    let never = NO_LATEST_REGO.replace("not exempt(c.image)", "not exempt(c.image)\n  false");
    ws.write_config(&k8s_config(&ws, &never, "x", ""));
    let out = ws.plan().combined();
    assert!(
        out.contains("Policy test \"latest is refused\" failed"),
        "{out}"
    );
    assert!(out.contains("no violations"), "{out}");

    // Wrong kind/name pairing in a full template.
    let template = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: wrongname\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sRightName\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n        package x\n        violation[{\"msg\": \"m\"}] { false }\n";
    std::fs::write(ws.path().join("template.yaml"), template).expect("write template");
    ws.write_config(
        r#"
provider "akspolicy" {}

resource "akspolicy_kubernetes_definition" "bad" {
  name                = "bad"
  constraint_template = file("template.yaml")
}
"#,
    );
    let out = ws.validate().combined();
    assert!(out.contains("metadata.name is \"wrongname\""), "{out}");
}

/// Independent problems of one resource come in one plan, each on the attribute Terraform
/// highlights: two failing `test` blocks (at their `name`) and a bad `default_effect`.
#[test]
fn kubernetes_definition_reports_every_problem_in_one_plan() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    let never = NO_LATEST_REGO.replace("not exempt(c.image)", "not exempt(c.image)\n  false");
    let extra = r#"default_effect = "mutate"
  test {
    name       = "exactly one violation"
    object     = file("pod-latest.yaml")
    violations = "1"
  }"#;
    ws.write_config(&k8s_config(&ws, &never, "x", extra));
    let run = ws.plan();
    assert_ne!(run.code, 0, "{}", run.combined());
    let out = run.combined();
    for expected in [
        "Policy test \"latest is refused\" failed",
        "Policy test \"exactly one violation\" failed",
        "default_effect \"mutate\" is not one of effects",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // Terraform quotes the line the diagnostic's path leads to: the failing test's name and
    // the default_effect attribute, not the resource's first line.
    for line in [
        r#"name       = "latest is refused""#,
        r#"name       = "exactly one violation""#,
        r#"default_effect = "mutate""#,
    ] {
        assert!(
            out.contains(line),
            "no diagnostic points at {line:?}:\n{out}"
        );
    }
    // The passing test is not reported.
    assert!(
        !out.contains("Policy test \"exempt image passes\""),
        "{out}"
    );
}

/// Rego from a module may be hostile: an endless evaluation ends as an error on the test that
/// ran it, recursion is refused when compiling, and `external_data` answers come from the test.
#[test]
fn kubernetes_definition_hostile_rego_and_external_data() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);

    // A cartesian product of 10^10 elements, only for the test that passes two images.
    let product = NO_LATEST_REGO.replace(
        "not exempt(c.image)",
        "big := [x | count(input.parameters.exemptImages) > 1; x := numbers.range(1, 100000)[_]]\n  count([1 | big[_]; big[_]]) >= 0\n  not exempt(c.image)",
    );
    let extra = "test {\n    name       = \"hostile\"\n    object     = file(\"pod-latest.yaml\")\n    parameters = jsonencode({ exemptImages = [\"a\", \"b\"] })\n    timeout    = \"1s\"\n  }";
    ws.write_config(&k8s_config(&ws, &product, "x", extra));
    let run = ws.plan();
    assert_ne!(run.code, 0);
    // Terraform wraps diagnostics.
    let out = run
        .combined()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(out.contains("Policy test \"hostile\" failed"), "{out}");
    assert!(out.contains("did not finish within 1s"), "{out}");
    assert!(!out.contains("Plugin did not respond"), "{out}");

    // Recursion is refused when compiling, with the line.
    let recursive = NO_LATEST_REGO.replace(
        "exempt(image) {\n  image == input.parameters.exemptImages[_]\n}",
        "exempt(image) {\n  exempt(image)\n}",
    );
    ws.write_config(&k8s_config(&ws, &recursive, "x", ""));
    let out = ws
        .validate()
        .combined()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(out.contains("depends on itself"), "{out}");

    // external_data: answers per test, in Gatekeeper's response shape.
    let signed = NO_LATEST_REGO.replace(
        "not exempt(c.image)",
        "r := external_data({\"provider\": \"ratify\", \"keys\": [c.image]})\n  count(r.errors) > 0\n  not exempt(c.image)",
    );
    let answers = "test {\n    name          = \"signed image passes\"\n    object        = file(\"pod-latest.yaml\")\n    violations    = \"no\"\n    external_data = jsonencode({ ratify = { \"nginx:latest\" = { value = \"ok\" } } })\n  }";
    let unsigned = "test {\n    name          = \"unsigned image\"\n    object        = file(\"pod-latest.yaml\")\n    external_data = jsonencode({ ratify = { \"nginx:latest\" = { error = \"no signature\" } } })\n  }";
    // The k8s_config tests without answers see an unconfigured provider (a system error, no
    // `errors`), so they are dropped here by giving only the two above.
    let config = k8s_config(&ws, &signed, "x", &format!("{answers}\n  {unsigned}"));
    let config = config
        .split("  test {")
        .enumerate()
        .filter(|(i, part)| *i == 0 || part.contains("external_data"))
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join("  test {");
    ws.write_config(&config);
    let run = ws.validate();
    assert_eq!(run.code, 0, "{}", run.combined());
}

/// The documented examples are valid, and the example's own `test` blocks pass.
#[test]
fn documented_examples_validate() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    let root = crate::harness::repo_root().join("examples/resources");
    let mut body = String::from("provider \"akspolicy\" {}\n");
    for name in [
        "akspolicy_kubernetes_definition",
        "akspolicy_initiative",
        "akspolicy_definition",
    ] {
        body.push_str(&read_text(&root.join(name).join("resource.tf")));
    }
    ws.write_config(&body);
    ws.validate().assert_ok("validate examples");
}

/// Management group scope: create, empty plan, import by the MG-scoped ID, destroy.
#[test]
fn kubernetes_definition_at_management_group_scope() {
    let emulator = Emulator::start();
    let (status, body) = emulator.arm(
        "PUT",
        "/providers/Microsoft.Management/managementGroups/platform?api-version=2021-04-01",
        Some(&json!({"properties": {"displayName": "Platform"}})),
    );
    assert!(status == 200 || status == 201 || status == 202, "{body}");
    let ws = Workspace::new(&emulator);
    let config = k8s_config(&ws, NO_LATEST_REGO, "No latest tag", "").replace(
        r#"name         = "k8s-no-latest-tag""#,
        r#"name         = "k8s-no-latest-tag"
  scope        = "/providers/Microsoft.Management/managementGroups/platform""#,
    );
    ws.write_config(&config);
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    let id = ws.output("id").as_str().expect("id").to_string();
    assert!(
        id.starts_with("/providers/Microsoft.Management/managementGroups/platform/providers/Microsoft.Authorization/policyDefinitions/"),
        "{id}"
    );
    let after = ws.reimport("akspolicy_kubernetes_definition.no_latest", &id);
    assert_eq!(
        after["scope"],
        "/providers/Microsoft.Management/managementGroups/platform"
    );
    ws.apply().assert_ok("record tests after import");
    ws.assert_empty_plan();
    ws.destroy().assert_ok("destroy");
}
