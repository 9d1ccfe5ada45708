//! `akspolicy_admission_review`: at plan time, what the cluster's add-on would decide for
//! manifests, from the assignments that really apply to it (through ARM, templates from the
//! store URL the built-in names — served by the emulator's `/_templates` stand-in).

use serde_json::Value as Json;

use crate::harness::{create_cluster, Emulator, Workspace};

const PRIVILEGED: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";

fn deployment(name: &str, privileged: bool) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: nginx:1.27
          securityContext:
            privileged: {privileged}
"#
    )
}

fn config(rg: &str, cluster: &str, effect: &str, exempt: bool, not_scope: bool) -> String {
    let manifests = [
        deployment("privileged", true),
        deployment("plain", false),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: apps\ndata: {a: b}\n"
            .to_string(),
    ]
    .join("---\n");
    let exemption = if exempt {
        format!(
            r#"
resource "akspolicy_exemption" "waiver" {{
  name                 = "waiver"
  scope                = "{cluster}"
  policy_assignment_id = akspolicy_assignment.no_privileged.id
  exemption_category   = "Waiver"
}}
"#
        )
    } else {
        String::new()
    };
    let not_scopes = if not_scope {
        format!("not_scopes = [\"{cluster}\"]")
    } else {
        String::new()
    };
    let depends = if exempt {
        "akspolicy_assignment.no_privileged, akspolicy_cluster_addon.policy, akspolicy_exemption.waiver"
    } else {
        "akspolicy_assignment.no_privileged, akspolicy_cluster_addon.policy"
    };
    format!(
        r#"
resource "akspolicy_cluster_addon" "policy" {{
  cluster_id = "{cluster}"
  enabled    = true
}}

resource "akspolicy_assignment" "no_privileged" {{
  name                 = "no-privileged"
  scope                = "{rg}"
  policy_definition_id = "{PRIVILEGED}"
  {not_scopes}
  # The built-in reviews only Pods unless `source = "All"` also reviews the Pods a workload
  # would create.
  parameters = {{
    effect = "{effect}"
    source = "All"
  }}
}}
{exemption}
data "akspolicy_admission_review" "app" {{
  cluster_id = "{cluster}"
  manifests  = <<-YAML
{manifests}
YAML
  depends_on = [{depends}]
}}

output "allowed" {{
  value = data.akspolicy_admission_review.app.allowed
}}

output "results" {{
  value = data.akspolicy_admission_review.app.results
}}
"#
    )
}

#[test]
fn admission_review_reports_what_the_cluster_would_decide() {
    let emulator = Emulator::start();
    let cluster = create_cluster(&emulator, "apps-rg", "prod");
    let rg = format!(
        "/subscriptions/{}/resourceGroups/apps-rg",
        emulator.subscription_id()
    );
    let ws = Workspace::new(&emulator);

    ws.write_config(&config(&rg, &cluster, "Deny", false, false));
    let run = ws.apply();
    run.assert_ok("apply with deny");
    assert_eq!(
        ws.output("allowed"),
        Json::Bool(false),
        "{}",
        run.combined()
    );
    let results = ws.output("results");
    let results = results.as_array().expect("results list");
    assert_eq!(results.len(), 3, "{results:?}");
    let privileged = &results[0];
    assert_eq!(privileged["kind"], "Deployment");
    assert_eq!(privileged["name"], "privileged");
    assert_eq!(privileged["namespace"], "default");
    assert_eq!(privileged["allowed"], false);
    let messages = privileged["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = messages[0].as_str().unwrap_or_default();
    assert!(
        message.starts_with("[azurepolicy-k8sazurev2noprivilege-")
            && message.contains("Privileged container is not allowed: app"),
        "{message}"
    );
    assert!(
        message.contains("[Implied by"),
        "reviewed as its Pod: {message}"
    );
    assert_eq!(results[1]["name"], "plain");
    assert_eq!(results[1]["allowed"], true);
    assert_eq!(results[1]["messages"], serde_json::json!([]));
    // No policy matches a ConfigMap.
    assert_eq!(results[2]["kind"], "ConfigMap");
    assert_eq!(results[2]["namespace"], "apps");
    assert_eq!(results[2]["allowed"], true);
    // The emulated cluster agrees (same engine, same constraints).
    let (status, described) = emulator.arm("GET", &format!("/_emulator/admission{cluster}"), None);
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["constraints"].as_array().map(Vec::len), Some(1));

    // Audit: reported, not denied.
    ws.write_config(&config(&rg, &cluster, "Audit", false, false));
    ws.apply().assert_ok("apply with audit");
    assert_eq!(ws.output("allowed"), Json::Bool(true));
    assert_eq!(ws.output("results")[0]["messages"], serde_json::json!([]));

    // An exemption at the cluster and a notScope naming it both take the policy away.
    ws.write_config(&config(&rg, &cluster, "Deny", true, false));
    ws.apply().assert_ok("apply with exemption");
    assert_eq!(ws.output("allowed"), Json::Bool(true));
    ws.write_config(&config(&rg, &cluster, "Deny", false, true));
    ws.apply().assert_ok("apply with notScope");
    assert_eq!(ws.output("allowed"), Json::Bool(true));
}

#[test]
fn admission_review_rejects_bad_input_with_the_attribute() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    let sub = emulator.subscription_id();
    ws.write_config(&format!(
        r#"
data "akspolicy_admission_review" "bad" {{
  cluster_id = "/subscriptions/{sub}/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a"
  manifests  = "just text"
}}
"#
    ));
    let run = ws.plan();
    assert_ne!(run.code, 0);
    let text = run.combined();
    assert!(text.contains("Invalid cluster_id"), "{text}");
    assert!(
        text.contains("Microsoft.ContainerService/managedClusters"),
        "{text}"
    );
    assert!(text.contains("Invalid manifests"), "{text}");
    assert!(text.contains("document 1"), "{text}");
}

/// An assignment at a management group applies to the clusters below it, except under a
/// notScope naming a management group the cluster's subscription sits in (at any depth).
#[test]
fn admission_review_follows_management_groups_and_their_not_scopes() {
    let emulator = Emulator::start();
    let cluster = create_cluster(&emulator, "apps-rg", "prod");
    let sub = emulator.subscription_id();
    let mg = |name: &str| format!("/providers/Microsoft.Management/managementGroups/{name}");
    for (name, parent) in [
        ("platform", None),
        ("landing", Some("platform")),
        ("corp", Some("landing")),
    ] {
        let mut body = serde_json::json!({"properties": {"displayName": name}});
        if let Some(p) = parent {
            body["properties"]["details"] = serde_json::json!({"parent": {"id": mg(p)}});
        }
        let (status, b) = emulator.arm(
            "PUT",
            &format!("{}?api-version=2021-04-01", mg(name)),
            Some(&body),
        );
        assert!(status == 200 || status == 201 || status == 202, "{b}");
    }
    let (status, b) = emulator.arm(
        "PUT",
        &format!("{}/subscriptions/{sub}?api-version=2021-04-01", mg("corp")),
        None,
    );
    assert!(status == 200 || status == 201, "{b}");
    let ws = Workspace::new(&emulator);
    let config = |not_scopes: &str| {
        format!(
            r#"
resource "akspolicy_cluster_addon" "policy" {{
  cluster_id = "{cluster}"
  enabled    = true
}}

resource "akspolicy_assignment" "no_privileged" {{
  name                 = "no-privileged"
  scope                = "{platform}"
  policy_definition_id = "{PRIVILEGED}"
  not_scopes           = [{not_scopes}]
  parameters = {{
    effect = "Deny"
  }}
}}

data "akspolicy_admission_review" "pod" {{
  cluster_id = "{cluster}"
  manifests  = <<-YAML
    apiVersion: v1
    kind: Pod
    metadata:
      name: p
    spec:
      containers:
        - name: app
          image: nginx:1.27
          securityContext:
            privileged: true
  YAML
  depends_on = [akspolicy_assignment.no_privileged, akspolicy_cluster_addon.policy]
}}

output "allowed" {{
  value = data.akspolicy_admission_review.pod.allowed
}}
"#,
            platform = mg("platform"),
        )
    };
    ws.write_config(&config(""));
    ws.apply().assert_ok("apply at the management group");
    assert_eq!(ws.output("allowed"), Json::Bool(false));
    // `landing` holds `corp`, which holds the subscription.
    ws.write_config(&config(&format!("\"{}\"", mg("landing"))));
    ws.apply()
        .assert_ok("apply with a management group notScope");
    assert_eq!(ws.output("allowed"), Json::Bool(true));
}

/// A template the store does not have leaves that policy out with a warning naming the URL,
/// as the add-on would until the template is available; the read still answers.
#[test]
fn admission_review_warns_about_a_template_it_cannot_download() {
    let emulator = Emulator::start();
    let cluster = create_cluster(&emulator, "apps-rg", "prod");
    let sub = emulator.subscription_id();
    let definition = format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/policyDefinitions/missing-template"
    );
    let (status, b) = emulator.arm(
        "PUT",
        &format!("{definition}?api-version=2025-03-01"),
        Some(&serde_json::json!({"properties": {
            "policyType": "Custom",
            "mode": "Microsoft.Kubernetes.Data",
            "displayName": "Template nobody published",
            "policyRule": {
                "if": {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
                "then": {"effect": "deny", "details": {
                    "templateInfo": {"sourceType": "PublicURL",
                        "url": "https://store.policy.core.windows.net/kubernetes/unpublished/v1/template.yaml"},
                    "apiGroups": [""], "kinds": ["Pod"]
                }}
            }
        }})),
    );
    assert!(status == 200 || status == 201, "{b}");
    let ws = Workspace::new(&emulator);
    ws.write_config(&format!(
        r#"
resource "akspolicy_cluster_addon" "policy" {{
  cluster_id = "{cluster}"
  enabled    = true
}}

resource "akspolicy_assignment" "unpublished" {{
  name                 = "unpublished"
  scope                = "/subscriptions/{sub}"
  policy_definition_id = "{definition}"
}}

data "akspolicy_admission_review" "pod" {{
  cluster_id = "{cluster}"
  manifests  = "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: app, image: nginx}}]}}\n"
  depends_on = [akspolicy_assignment.unpublished, akspolicy_cluster_addon.policy]
}}

output "allowed" {{
  value = data.akspolicy_admission_review.pod.allowed
}}
"#
    ));
    let run = ws.apply();
    run.assert_ok("apply");
    let text = run.combined();
    assert!(text.contains("A policy could not be evaluated"), "{text}");
    assert!(
        text.contains("kubernetes/unpublished/v1/template.yaml"),
        "{text}"
    );
    assert_eq!(ws.output("allowed"), Json::Bool(true));
}
