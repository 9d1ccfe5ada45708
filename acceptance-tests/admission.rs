//! The loop users care about, offline: after `terraform apply` assigns "Kubernetes cluster
//! should not allow privileged containers" (and a custom Rego definition), the emulated
//! cluster's Gatekeeper refuses a privileged Deployment with the policy's message; excluded
//! namespaces, audit, exemptions and the add-on switch behave as on AKS, and compliance
//! reports the violations. Objects go through `akspolicy-emulator admit` like `kubectl apply`.

use std::process::Command;

use serde_json::Value as Json;

use crate::harness::{create_cluster, emulator_binary, Emulator, Workspace};

const PRIVILEGED: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";

fn deployment(namespace: &str, image: &str, privileged: bool) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: app
          image: {image}
          securityContext:
            privileged: {privileged}
"#
    )
}

/// Runs `akspolicy-emulator admit`; (exit code, stdout).
fn admit(emulator: &Emulator, cluster: &str, manifest: &str) -> (i32, String) {
    let file = emulator.state_dir.path().join("manifest.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    let out = Command::new(emulator_binary())
        .arg("admit")
        .arg("--state-dir")
        .arg(emulator.state_dir.path())
        .args(["--cluster", cluster, "-f"])
        .arg(&file)
        .output()
        .expect("run akspolicy-emulator admit");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "admit failed ({code}): {stdout}{stderr}"
    );
    (code, stdout)
}

/// Compliance of one assignment on the cluster, via `summarize` (what the data source reads).
fn non_compliant(emulator: &Emulator, assignment_id: &str) -> u64 {
    let (status, body) = emulator.arm(
        "POST",
        &format!(
            "{assignment_id}/providers/Microsoft.PolicyInsights/policyStates/latest/summarize?api-version=2019-10-01"
        ),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["value"][0]["results"]["nonCompliantResources"]
        .as_u64()
        .unwrap_or_default()
}

struct Knobs<'a> {
    addon: bool,
    effect: &'a str,
    custom_effect: &'a str,
    exempt: bool,
}

fn config(rg: &str, cluster: &str, k: &Knobs<'_>) -> String {
    let exemption = if k.exempt {
        format!(
            r#"
resource "akspolicy_exemption" "cluster" {{
  name                 = "cluster-waiver"
  scope                = "{cluster}"
  policy_assignment_id = akspolicy_assignment.no_privileged.id
  exemption_category   = "Waiver"
}}
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"
resource "akspolicy_cluster_addon" "policy" {{
  cluster_id = "{cluster}"
  enabled    = {addon}
}}

resource "akspolicy_assignment" "no_privileged" {{
  name                 = "no-privileged"
  scope                = "{rg}"
  policy_definition_id = "{PRIVILEGED}"
  parameters = {{
    effect             = "{effect}"
    source             = "All"
    excludedNamespaces = ["kube-system", "gatekeeper-system", "legacy-*"]
  }}
}}

resource "akspolicy_kubernetes_definition" "no_latest" {{
  name         = "k8s-no-latest"
  display_name = "Container images must not use the latest tag"
  template {{
    kind = "K8sNoLatestTag"
    rego = <<-REGO
      package k8snolatesttag

      violation[{{"msg": msg}}] {{
        container := input.review.object.spec.containers[_]
        endswith(container.image, ":latest")
        msg := sprintf("container %v uses the latest tag", [container.name])
      }}
    REGO
  }}
  match {{
    api_groups = [""]
    kinds      = ["Pod"]
  }}
  effects        = ["audit", "deny", "disabled"]
  default_effect = "audit"
}}

resource "akspolicy_assignment" "no_latest" {{
  name                 = "no-latest"
  scope                = "{rg}"
  policy_definition_id = akspolicy_kubernetes_definition.no_latest.id
  parameters = {{
    effect = "{custom_effect}"
  }}
}}
{exemption}
output "no_privileged" {{
  value = akspolicy_assignment.no_privileged.id
}}

output "no_latest" {{
  value = akspolicy_assignment.no_latest.id
}}
"#,
        addon = k.addon,
        effect = k.effect,
        custom_effect = k.custom_effect,
    )
}

fn output(ws: &Workspace, name: &str) -> String {
    match ws.output(name) {
        Json::String(s) => s,
        other => panic!("output {name}: {other}"),
    }
}

#[test]
fn gatekeeper_enforces_assignments_on_admission() {
    let emulator = Emulator::start();
    let cluster = create_cluster(&emulator, "aks-rg", "prod");
    let rg = format!(
        "/subscriptions/{}/resourceGroups/aks-rg",
        emulator.subscription_id()
    );
    let ws = Workspace::new(&emulator);
    let apply = |k: &Knobs<'_>| {
        ws.write_config(&config(&rg, &cluster, k));
        ws.apply().assert_ok("apply");
    };

    // Deny: the privileged Deployment is refused as the Pod it would create.
    apply(&Knobs {
        addon: true,
        effect: "Deny",
        custom_effect: "audit",
        exempt: false,
    });
    let no_privileged = output(&ws, "no_privileged");
    let no_latest = output(&ws, "no_latest");
    let (code, out) = admit(&emulator, &cluster, &deployment("apps", "nginx:1.27", true));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("deployment/web (namespace apps) denied"),
        "{out}"
    );
    assert!(out.contains("[azurepolicy-k8sazurev2noprivilege-"), "{out}");
    assert!(
        out.contains("Privileged container is not allowed: app"),
        "{out}"
    );
    // A compliant workload passes; the same manifest in an excluded namespace too.
    let (code, out) = admit(
        &emulator,
        &cluster,
        &deployment("apps", "nginx:1.27", false),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = admit(
        &emulator,
        &cluster,
        &deployment("legacy-team", "nginx:1.27", true),
    );
    assert_eq!(code, 0, "{out}");
    // Nothing violating was admitted where the policy applies, so the cluster complies.
    assert_eq!(non_compliant(&emulator, &no_privileged), 0);

    // Audit: admitted, and reported non-compliant.
    apply(&Knobs {
        addon: true,
        effect: "Audit",
        custom_effect: "audit",
        exempt: false,
    });
    let (code, out) = admit(
        &emulator,
        &cluster,
        &deployment("apps", "nginx:latest", true),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(non_compliant(&emulator, &no_privileged), 1);
    // The custom definition keeps source Original: it sees Pods only, not the Deployment.
    assert_eq!(non_compliant(&emulator, &no_latest), 0);
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: tools\nspec:\n  containers:\n    - name: tools\n      image: busybox:latest\n";
    let (code, out) = admit(&emulator, &cluster, pod);
    assert_eq!(code, 0, "{out}");
    assert_eq!(non_compliant(&emulator, &no_latest), 1);

    // Custom definition with deny: refused with its own message.
    apply(&Knobs {
        addon: true,
        effect: "Audit",
        custom_effect: "deny",
        exempt: false,
    });
    let pod2 = pod.replace("name: tools\nspec", "name: tools2\nspec");
    let (code, out) = admit(&emulator, &cluster, &pod2);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("container tools uses the latest tag"), "{out}");

    // Exempt: allowed and compliant, even with deny.
    apply(&Knobs {
        addon: true,
        effect: "Deny",
        custom_effect: "audit",
        exempt: true,
    });
    let (code, out) = admit(&emulator, &cluster, &deployment("apps", "nginx:1.27", true));
    assert_eq!(code, 0, "{out}");
    assert_eq!(non_compliant(&emulator, &no_privileged), 0);

    // Add-on off: nothing is enforced.
    apply(&Knobs {
        addon: false,
        effect: "Deny",
        custom_effect: "deny",
        exempt: false,
    });
    let (code, out) = admit(&emulator, &cluster, &deployment("apps", "nginx:1.27", true));
    assert_eq!(code, 0, "{out}");
    let (code, out) = admit(&emulator, &cluster, &pod2);
    assert_eq!(code, 0, "{out}");
}
