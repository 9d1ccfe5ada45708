//! Shift-left on Terraform 1.8+: the `evaluate` provider function, and the examples under
//! examples/shift-left (a workload gated on `akspolicy_admission_review`, a custom policy's
//! `terraform test` suite), run against the emulator. They skip, saying so, when the machine has
//! no new enough Terraform; the rest of the suite covers Terraform 1.0.3, which never sees the
//! function.

use serde_json::json;

use crate::examples::copy_tree;
use crate::harness::{create_cluster, repo_root, terraform_at_least, Emulator, Workspace};

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8snoprivileged
spec:
  crd:
    spec:
      names:
        kind: K8sNoPrivileged
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8snoprivileged
        violation[{"msg": msg}] {
          c := input.review.object.spec.containers[_]
          c.securityContext.privileged
          msg := sprintf("container %v is privileged", [c.name])
        }
"#;

#[test]
fn evaluate_function_returns_violation_messages() {
    let Some(terraform) =
        terraform_at_least((1, 8), "evaluate_function_returns_violation_messages")
    else {
        return;
    };
    let emulator = Emulator::start();
    let mut ws = Workspace::new(&emulator);
    ws.use_terraform(terraform);
    ws.write_config(&format!(
        r#"
locals {{
  template = <<-YAML
{TEMPLATE}
YAML
  pod = {{
    apiVersion = "v1"
    kind       = "Pod"
    metadata   = {{ name = "p" }}
    spec = {{ containers = [{{ name = "app", image = "nginx", securityContext = {{ privileged = true }} }}] }}
  }}
}}

output "violating" {{
  value = provider::akspolicy::evaluate(local.template, yamlencode(local.pod), {{}})
}}

output "clean" {{
  value = provider::akspolicy::evaluate(local.template, yamlencode(merge(local.pod, {{
    spec = {{ containers = [{{ name = "app", image = "nginx" }}] }}
  }})), {{ unused = ["x"], n = 1 }})
}}
"#
    ));
    ws.apply().assert_ok("apply");
    assert_eq!(
        ws.output("violating"),
        json!(["container app is privileged"])
    );
    assert_eq!(ws.output("clean"), json!([]));

    // A bad argument is reported against that argument.
    ws.write_config(
        r#"
output "bad" {
  value = provider::akspolicy::evaluate("kind: Nope", "kind: Pod", {})
}
"#,
    );
    let run = ws.plan();
    assert_ne!(run.code, 0);
    let text = run.combined();
    assert!(text.contains("not a usable ConstraintTemplate"), "{text}");

    // The docs' example plans, and its check passes.
    let example =
        std::fs::read_to_string(repo_root().join("examples/functions/evaluate/function.tf"))
            .expect("function example");
    ws.write_config(&example);
    let run = ws.plan();
    // -detailed-exitcode: 2 = changes planned (the definition), 1 = an error.
    assert_eq!(
        run.code,
        2,
        "plan of the function example:\n{}",
        run.combined()
    );
    assert!(
        !run.combined().contains("Check block assertion failed"),
        "{}",
        run.combined()
    );
}

#[test]
fn gate_example_stops_a_workload_the_cluster_would_deny() {
    let Some(terraform) = terraform_at_least(
        (1, 5),
        "gate_example_stops_a_workload_the_cluster_would_deny",
    ) else {
        return;
    };
    let emulator = Emulator::start();
    let cluster = create_cluster(&emulator, "apps-rg", "prod");
    let rg = format!(
        "/subscriptions/{}/resourceGroups/apps-rg",
        emulator.subscription_id()
    );
    // The platform team's side: the add-on and the privileged-containers built-in, denying.
    let platform = Workspace::new(&emulator);
    platform.write_config(&format!(
        r#"
resource "akspolicy_cluster_addon" "policy" {{
  cluster_id = "{cluster}"
  enabled    = true
}}

resource "akspolicy_assignment" "no_privileged" {{
  name                 = "no-privileged"
  scope                = "{rg}"
  policy_definition_id = "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4"
  parameters = {{
    effect = "Deny"
    source = "All"
  }}
}}
"#
    ));
    platform.apply().assert_ok("platform apply");

    // The application team's side: the example, unchanged.
    let mut ws = Workspace::new(&emulator);
    ws.use_terraform(terraform);
    copy_tree(&repo_root().join("examples/shift-left/gate"), ws.path());
    ws.set_env("TF_VAR_cluster_id", &cluster);
    let deployment = |privileged: bool| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: app\n          image: nginx:1.27\n          securityContext:\n            privileged: {privileged}\n"
        )
    };
    ws.set_env("TF_VAR_manifests", &deployment(true));
    let run = ws.plan();
    assert_ne!(run.code, 0, "{}", run.combined());
    let text = run.combined();
    assert!(text.contains("would deny this workload"), "{text}");
    assert!(
        text.contains("Privileged container is not allowed: app"),
        "{text}"
    );

    ws.set_env("TF_VAR_manifests", &deployment(false));
    ws.apply().assert_ok("apply of the admissible workload");
}

#[test]
fn custom_policy_terraform_test_example_passes() {
    let Some(terraform) = terraform_at_least((1, 8), "custom_policy_terraform_test_example_passes")
    else {
        return;
    };
    let emulator = Emulator::start();
    let cluster = create_cluster(&emulator, "apps-rg", "prod");
    let mut ws = Workspace::new(&emulator);
    ws.use_terraform(terraform);
    copy_tree(
        &repo_root().join("examples/shift-left/custom-policy"),
        ws.path(),
    );
    ws.set_env(
        "TF_VAR_resource_group_id",
        &format!(
            "/subscriptions/{}/resourceGroups/apps-rg",
            emulator.subscription_id()
        ),
    );
    ws.set_env("TF_VAR_cluster_id", &cluster);
    let run = ws.terraform(&["test", "-no-color"]);
    let text = run.combined();
    assert_eq!(run.code, 0, "terraform test failed:\n{text}");
    assert!(text.contains("3 passed, 0 failed"), "{text}");
}
