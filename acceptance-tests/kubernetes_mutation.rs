//! `akspolicy_kubernetes_mutation`, end to end: plan-time `test` blocks, the definition Azure
//! holds, import and drift; then on an emulated cluster, mutation at admission before
//! validation, together with built-ins (the one that denies privilege escalation and
//! MutateRunAsNonRootUserPod), seen through `akspolicy-emulator admit -o yaml`.

use std::process::Command;

use serde_json::{json, Value as Json};

use crate::harness::{create_cluster, emulator_binary, Emulator, Workspace};

const NO_ESCALATION: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/1c6e92c9-99f0-4e55-9cf2-0c234dc48f99";
const RUN_AS_USER: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/fe74a23d-79e4-401c-bd0d-fd7a5b35af32";

const MUTATOR: &str = r#"apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: no-privilege-escalation-default
spec:
  applyTo:
    - groups: [""]
      versions: ["v1"]
      kinds: ["Pod"]
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["Pod"]
  location: "spec.containers[name: *].securityContext.allowPrivilegeEscalation"
  parameters:
    pathTests:
      - subPath: "spec.containers[name: *].securityContext.allowPrivilegeEscalation"
        condition: MustNotExist
    assign:
      value: false
"#;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  containers:\n    - name: app\n      image: nginx:1.27\n    - name: debug\n      image: busybox:1.36\n      securityContext:\n        allowPrivilegeEscalation: true\n";

const RIGHT: &str = "spec:\n  containers:\n    - name: debug\n      securityContext:\n        allowPrivilegeEscalation: true\n    - name: app\n      securityContext:\n        allowPrivilegeEscalation: false\n";

const WRONG: &str = "spec:\n  containers:\n    - name: debug\n      securityContext:\n        allowPrivilegeEscalation: false\n";

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
}

fn mutation_config(expect: &str, display_name: &str, extra: &str) -> String {
    format!(
        r#"
resource "akspolicy_kubernetes_mutation" "no_escalation" {{
  name         = "k8s-no-escalation-default"
  display_name = "{display_name}"
  version      = "1.0.0"
  source       = "All"
  mutator      = <<-YAML
{mutator}  YAML

  test {{
    name   = "sets the field where it is missing"
    object = <<-YAML
{pod}    YAML
    expect = <<-YAML
{expect}    YAML
  }}
}}
{extra}"#,
        mutator = indent(MUTATOR),
        pod = indent(POD),
        expect = indent(expect),
    )
}

#[test]
fn mutation_tests_at_plan_and_lifecycle() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);

    // A wrong expectation fails the plan, naming the test and the difference.
    ws.write_config(&mutation_config(WRONG, "No escalation by default", ""));
    let plan = ws.plan();
    assert_eq!(plan.code, 1, "{}", plan.combined());
    let out = plan.combined();
    assert!(
        out.contains("Mutation test \"sets the field where it is missing\" failed"),
        "{out}"
    );
    assert!(
        // Terraform wraps long lines; this part stays on one.
        out.contains("securityContext.allowPrivilegeEscalation is true, expected false"),
        "{out}"
    );
    // An invalid mutator is reported on `mutator`.
    ws.write_config(&mutation_config(RIGHT, "x", "").replace("kind: Assign", "kind: Assignment"));
    let plan = ws.plan();
    plan.assert_error_with(&["Invalid mutator"]);

    // The right one plans and applies; the plan after is empty.
    ws.write_config(&mutation_config(RIGHT, "No escalation by default", ""));
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    let attrs = ws.state_attributes("akspolicy_kubernetes_mutation.no_escalation");
    let id = attrs["id"].as_str().expect("id").to_string();
    let (status, body) = emulator.arm("GET", &format!("{id}?api-version=2023-04-01"), None);
    assert_eq!(status, 200, "{body}");
    let details = &body["properties"]["policyRule"]["then"]["details"];
    assert_eq!(details["mutationInfo"]["sourceType"], "Base64Encoded");
    assert_eq!(details["source"], "[parameters('source')]");
    assert_eq!(
        body["properties"]["parameters"]["effect"]["allowedValues"],
        json!(["Mutate", "Disabled"])
    );
    assert_eq!(
        body["properties"]["parameters"]["source"]["defaultValue"],
        "All"
    );

    // Import into a fresh state: every attribute equal (tests are configuration only).
    let after = ws.reimport("akspolicy_kubernetes_mutation.no_escalation", &id);
    for (k, v) in attrs.as_object().expect("attributes") {
        if k == "test" {
            continue;
        }
        assert_eq!(&after[k], v, "attribute {k} differs after import");
    }
    ws.apply().assert_ok("apply after import");
    ws.assert_empty_plan();

    // Out-of-band change of the mutator: the plan shows the YAML, and apply restores it.
    use base64::Engine as _;
    let mut changed = body.clone();
    changed["properties"]["policyRule"]["then"]["details"]["mutationInfo"]["content"] =
        json!(base64::engine::general_purpose::STANDARD
            .encode(MUTATOR.replace("value: false", "value: true")));
    let (status, resp) = emulator.arm(
        "PUT",
        &format!("{id}?api-version=2023-04-01"),
        Some(&json!({"properties": changed["properties"].clone()})),
    );
    assert!(status == 200 || status == 201, "{resp}");
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    assert!(plan.stdout.contains("value: true"), "{}", plan.stdout);
    ws.apply().assert_ok("restore");
    ws.assert_empty_plan();
    ws.destroy().assert_ok("destroy");
}

/// Runs `akspolicy-emulator admit -o yaml`; (exit code, stdout = stored objects, stderr).
fn admit_yaml(emulator: &Emulator, cluster: &str, manifest: &str) -> (i32, String, String) {
    let file = emulator.state_dir.path().join("mutation-manifest.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    let out = Command::new(emulator_binary())
        .arg("admit")
        .arg("--state-dir")
        .arg(emulator.state_dir.path())
        .args(["--cluster", cluster, "-o", "yaml", "-f"])
        .arg(&file)
        .output()
        .expect("run akspolicy-emulator admit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn stored(stdout: &str) -> Vec<Json> {
    akspolicy::policy::constraint_template::parse_yaml_documents(stdout)
        .expect("admit -o yaml prints YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn mutation_before_validation_on_the_emulated_cluster() {
    let Some(emulator) = Emulator::start_with_shared_builtins(&[]) else {
        return;
    };
    let cluster = create_cluster(&emulator, "aks-rg", "prod");
    let rg = format!(
        "/subscriptions/{}/resourceGroups/aks-rg",
        emulator.subscription_id()
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  containers:\n    - name: app\n      image: nginx:1.27\n      securityContext:\n        runAsUser: 0\n";
    let assignments = |mutate: bool| {
        let custom = if mutate {
            r#"
resource "akspolicy_assignment" "mutate" {
  name                 = "no-escalation-default"
  scope                = "RG"
  policy_definition_id = akspolicy_kubernetes_mutation.no_escalation.id
}
"#
        } else {
            ""
        };
        // The plan-time review of the same Pod, which must agree with the cluster.
        let depends = if mutate {
            ", akspolicy_assignment.mutate"
        } else {
            ""
        };
        let review = format!(
            r#"
data "akspolicy_admission_review" "pod" {{
  cluster_id = "{cluster}"
  manifests  = {pod:?}
  depends_on = [akspolicy_cluster_addon.policy, akspolicy_assignment.deny_escalation, akspolicy_assignment.run_as_user{depends}]
}}

output "review" {{
  value = data.akspolicy_admission_review.pod.results[0]
}}
"#
        );
        let custom = format!("{custom}{review}");
        format!(
            r#"
resource "akspolicy_cluster_addon" "policy" {{
  cluster_id = "{cluster}"
  enabled    = true
}}

resource "akspolicy_assignment" "deny_escalation" {{
  name                 = "deny-escalation"
  scope                = "{rg}"
  policy_definition_id = "{NO_ESCALATION}"
  parameters = {{
    effect = "Deny"
    source = "All"
  }}
}}

resource "akspolicy_assignment" "run_as_user" {{
  name                 = "run-as-user"
  scope                = "{rg}"
  policy_definition_id = "{RUN_AS_USER}"
}}
{custom}"#
        )
        .replace("\"RG\"", &format!("\"{rg}\""))
    };
    let ws = Workspace::new(&emulator);

    // Without the custom mutation, the built-in refuses the Pod (it runs as root, explicitly).
    ws.write_config(&mutation_config(
        RIGHT,
        "No escalation by default",
        &assignments(false),
    ));
    ws.apply().assert_ok("apply");
    let (code, out, err) = admit_yaml(&emulator, &cluster, pod);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("Privilege escalation container is not allowed: app"),
        "{err}"
    );
    let review = ws.output("review");
    assert_eq!(review["allowed"], false, "{review}");
    assert!(
        review["messages"][0]
            .as_str()
            .is_some_and(|m| m.contains("Privilege escalation container is not allowed: app")),
        "{review}"
    );
    // The built-in run-as-user mutator still ran: validation saw its output.
    assert_eq!(
        review["mutations"],
        json!(["Assign/k8sazure-mutate-run-as-user-pod"]),
        "{review}"
    );

    // With it: admitted, stored as mutated, and validation saw the mutated object.
    ws.write_config(&mutation_config(
        RIGHT,
        "No escalation by default",
        &assignments(true),
    ));
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    let (code, out, err) = admit_yaml(&emulator, &cluster, pod);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("pod/web (namespace shop) admitted"), "{err}");
    // The plan-time review agrees, and shows the object the cluster stores.
    let review = ws.output("review");
    assert_eq!(review["allowed"], true, "{review}");
    assert_eq!(
        review["mutations"],
        json!([
            "Assign/k8sazure-mutate-run-as-user-pod",
            "Assign/no-privilege-escalation-default"
        ]),
        "{review}"
    );
    let planned: Json = serde_yaml_ng::from_str(review["mutated_manifest"].as_str().unwrap_or(""))
        .expect("mutated_manifest is YAML");
    assert_eq!(planned, stored(&out)[0], "{review}\n{out}");
    let objects = stored(&out);
    assert_eq!(objects.len(), 1, "{out}");
    let container = &objects[0]["spec"]["containers"][0];
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"], false,
        "{out}"
    );
    // The explicit runAsUser of the container is the user's; the built-in sets the Pod's.
    assert_eq!(container["securityContext"]["runAsUser"], 0, "{out}");
    assert_eq!(
        objects[0]["spec"]["securityContext"]["runAsUser"], 1000,
        "{out}"
    );
    assert!(out.contains("allowPrivilegeEscalation: false"), "{out}");

    // A Deployment: the Pod it creates is mutated (source All) before validation, so it passes;
    // the Deployment itself is stored as written (the mutator applies to Pods).
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n        - name: api\n          image: nginx:1.27\n          securityContext:\n            runAsUser: 0\n";
    let (code, out, err) = admit_yaml(&emulator, &cluster, deployment);
    assert_eq!(code, 0, "{out}{err}");
    let objects = stored(&out);
    assert!(
        objects[0]["spec"]["template"]["spec"]["containers"][0]["securityContext"]
            .get("allowPrivilegeEscalation")
            .is_none(),
        "{out}"
    );

    // The cluster lists the installed mutators, as narrowed by the definitions.
    let (status, listing) = emulator.arm("GET", &format!("/_emulator/admission{cluster}"), None);
    assert_eq!(status, 200, "{listing}");
    let mutators = listing["mutators"].as_array().expect("mutators");
    let names: Vec<&str> = mutators
        .iter()
        .filter_map(|m| m["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "k8sazure-mutate-run-as-user-pod",
            "no-privilege-escalation-default"
        ],
        "{listing}"
    );
    assert_eq!(mutators[1]["spec"]["match"]["source"], "All");
    assert_eq!(
        mutators[1]["spec"]["match"]["excludedNamespaces"],
        json!(["kube-system", "gatekeeper-system", "azure-arc"])
    );
    ws.destroy().assert_ok("destroy");
}
