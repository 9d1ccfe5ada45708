//! Import is exact: objects created outside Terraform, in shapes this provider would not write
//! itself, imported with `import {}` blocks and `terraform plan -generate-config-out` (Terraform
//! >= 1.5), then applied: the next plan is empty, and a later change keeps what Azure holds.

use base64::Engine;
use serde_json::{json, Value as Json};

use crate::harness::{
    create_cluster, shared_specs, terraform_at_least, wait_idle, Emulator, Workspace, EXEMPTION_API,
};

const POLICY_API: &str = "api-version=2025-03-01";
const REMEDIATION_API: &str = "api-version=2024-10-01";
const AKS_API: &str = "api-version=2026-04-01";
const ADDON_DINE: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/a8eff44f-8c92-45c3-a3fb-9880802d67a7";

/// A ConstraintTemplate whose keys are in another order than the provider renders them.
const REORDERED_TEMPLATE: &str = r#"spec:
  targets:
    - rego: |
        package k8sownerlabel
        violation[{"msg": msg}] {
          not input.review.object.metadata.labels.owner
          msg := sprintf("%v needs an owner label (%v)", [input.review.object.metadata.name, input.parameters.note])
        }
      target: admission.k8s.gatekeeper.sh
  crd:
    spec:
      validation:
        openAPIV3Schema:
          properties:
            note:
              type: string
      names:
        kind: K8sOwnerLabel
kind: ConstraintTemplate
metadata:
  name: k8sownerlabel
apiVersion: templates.gatekeeper.sh/v1beta1
"#;

fn put(emulator: &Emulator, path: &str, api: &str, body: Json) -> Json {
    let (status, answer) = emulator.arm("PUT", &format!("{path}?{api}"), Some(&body));
    assert!(
        (200..300).contains(&status),
        "PUT {path}: {status} {answer}"
    );
    answer
}

fn get(emulator: &Emulator, path: &str, api: &str) -> Json {
    let (status, answer) = emulator.arm("GET", &format!("{path}?{api}"), None);
    assert_eq!(status, 200, "GET {path}: {answer}");
    answer
}

/// Every object, made through ARM as the portal or another tool would; (address, ID) pairs.
fn seed(emulator: &Emulator) -> Vec<(String, String)> {
    let s = format!("/subscriptions/{}", emulator.subscription_id());
    let cluster = create_cluster(emulator, "aks-rg", "imported");
    let rg = format!("{s}/resourceGroups/aks-rg");
    let definitions = format!("{s}/providers/Microsoft.Authorization/policyDefinitions");

    let definition = format!("{definitions}/portal-definition");
    put(
        emulator,
        &definition,
        POLICY_API,
        json!({"properties": {
            "displayName": "Made in the portal",
            "description": "Clusters must run the policy add-on",
            "mode": "Indexed",
            "metadata": {"category": "Kubernetes", "owner": {"team": "platform"}, "source": "portal"},
            "parameters": {"effect": {
                "type": "String", "allowedValues": ["Audit", "Disabled"], "defaultValue": "Audit",
                "metadata": {"displayName": "Effect", "portalReview": true}
            }},
            "policyRule": {
                "then": {"effect": "[parameters('effect')]"},
                "if": {"equals": "Microsoft.ContainerService/managedClusters", "field": "type"}
            }
        }}),
    );

    // Not what the provider generates: another excludedNamespaces default, no parameter
    // metadata, no namespaces/labelSelector parameters, only managed clusters, and a
    // template parameter with a default.
    let kubernetes = format!("{definitions}/portal-owner-label");
    let content = base64::engine::general_purpose::STANDARD.encode(REORDERED_TEMPLATE);
    put(
        emulator,
        &kubernetes,
        POLICY_API,
        json!({"properties": {
            "displayName": "Pods need an owner label",
            "mode": "Microsoft.Kubernetes.Data",
            "parameters": {
                "effect": {"type": "String", "allowedValues": ["audit", "deny", "disabled"], "defaultValue": "deny"},
                "excludedNamespaces": {"type": "Array", "defaultValue": ["kube-system", "team-system"]},
                "note": {"type": "String", "defaultValue": "see the wiki"}
            },
            "policyRule": {
                "if": {"field": "type", "in": ["Microsoft.ContainerService/managedClusters"]},
                "then": {"effect": "[parameters('effect')]", "details": {
                    "templateInfo": {"sourceType": "Base64Encoded", "content": content},
                    "apiGroups": [""], "kinds": ["Pod"],
                    "excludedNamespaces": "[parameters('excludedNamespaces')]",
                    "values": {"note": "[parameters('note')]"}
                }}
            }
        }}),
    );

    let initiative =
        format!("{s}/providers/Microsoft.Authorization/policySetDefinitions/portal-set");
    put(
        emulator,
        &initiative,
        POLICY_API,
        json!({"properties": {
            "displayName": "Portal set",
            "metadata": {"category": "Kubernetes", "reviewed": 2026},
            "policyDefinitionGroups": [{"name": "labels", "displayName": "Labels"}],
            "policyDefinitions": [
                {"policyDefinitionId": definition, "policyDefinitionReferenceId": "addon",
                 "parameters": {"effect": {"value": "Audit"}}},
                {"policyDefinitionId": kubernetes, "policyDefinitionReferenceId": "owner",
                 "groupNames": ["labels"],
                 "parameters": {"excludedNamespaces": {"value": ["kube-system", "ci"]}}}
            ]
        }}),
    );

    let assignment =
        format!("{rg}/providers/Microsoft.Authorization/policyAssignments/portal-owner");
    put(
        emulator,
        &assignment,
        POLICY_API,
        json!({"properties": {
            "displayName": "Owner labels",
            "description": "assigned by hand",
            "enforcementMode": "DoNotEnforce",
            "metadata": {"assignedBy": "Team B", "ticket": 42},
            "notScopes": [format!("{rg}/providers/Microsoft.ContainerService/managedClusters/legacy")],
            "policyDefinitionId": kubernetes,
            "parameters": {"effect": {"value": "audit"}, "excludedNamespaces": {"value": ["b", "a"]}},
            "nonComplianceMessages": [{"message": "Label your pods"}]
        }}),
    );

    let exemption =
        format!("{rg}/providers/Microsoft.Authorization/policyExemptions/portal-waiver");
    put(
        emulator,
        &exemption,
        EXEMPTION_API,
        json!({"properties": {
            "policyAssignmentId": assignment,
            "exemptionCategory": "Waiver",
            "displayName": "Until the migration",
            "metadata": {"reason": "migration"},
            "expiresOn": "2030-01-01T00:00:00Z"
        }}),
    );

    let dine = format!("{s}/providers/Microsoft.Authorization/policyAssignments/portal-addon");
    put(
        emulator,
        &dine,
        POLICY_API,
        json!({
            "location": "westeurope",
            "identity": {"type": "SystemAssigned"},
            "properties": {"displayName": "Deploy the add-on", "policyDefinitionId": ADDON_DINE}
        }),
    );
    let remediation =
        format!("{s}/providers/Microsoft.PolicyInsights/remediations/portal-remediation");
    put(
        emulator,
        &remediation,
        REMEDIATION_API,
        json!({"properties": {
            "policyAssignmentId": dine,
            "resourceDiscoveryMode": "ExistingNonCompliant"
        }}),
    );

    let mut with_addon = wait_idle(emulator, &cluster);
    with_addon["properties"]["addonProfiles"] =
        json!({"azurepolicy": {"enabled": true, "config": {"version": "v2"}}});
    put(emulator, &cluster, AKS_API, with_addon);
    wait_idle(emulator, &cluster);

    let mut objects = vec![
        ("akspolicy_definition.portal".to_string(), definition),
        (
            "akspolicy_kubernetes_definition.owner".to_string(),
            kubernetes,
        ),
        ("akspolicy_initiative.portal".to_string(), initiative),
        ("akspolicy_assignment.owner".to_string(), assignment),
        ("akspolicy_exemption.waiver".to_string(), exemption),
        ("akspolicy_assignment.addon".to_string(), dine),
        ("akspolicy_remediation.addon".to_string(), remediation),
        ("akspolicy_cluster_addon.imported".to_string(), cluster),
    ];
    objects.extend(builtin_kubernetes_copies(emulator, &definitions));
    objects
}

/// Every Kubernetes (data mode) built-in of ../shared/specs, copied as a custom definition:
/// parameter schemas, template URLs in both the current and the older constraint form.
fn builtin_kubernetes_copies(emulator: &Emulator, definitions: &str) -> Vec<(String, String)> {
    let Some(specs) = shared_specs() else {
        eprintln!("built-in copies skipped: ../shared/specs is not there");
        return Vec::new();
    };
    let dir = specs.join("azure-policy/built-in-policies/policyDefinitions/Kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let Ok(builtin) = serde_json::from_str::<Json>(&text) else {
            continue;
        };
        let p = &builtin["properties"];
        if p["mode"] != "Microsoft.Kubernetes.Data" {
            continue;
        }
        let mut properties = serde_json::Map::new();
        for key in [
            "displayName",
            "description",
            "mode",
            "metadata",
            "parameters",
            "policyRule",
            "version",
        ] {
            if !p[key].is_null() {
                properties.insert(key.into(), p[key].clone());
            }
        }
        let id = format!("{definitions}/builtin-copy-{i}");
        let (status, answer) = emulator.arm(
            "PUT",
            &format!("{id}?{POLICY_API}"),
            Some(&json!({ "properties": properties })),
        );
        if status != 201 {
            // e.g. a `-preview` version, which Azure takes only for built-ins.
            eprintln!("{} not copied: {status} {answer}", file.display());
            continue;
        }
        out.push((format!("akspolicy_kubernetes_definition.builtin_{i}"), id));
    }
    assert!(
        out.len() >= 10,
        "expected the Kubernetes built-ins of {}",
        dir.display()
    );
    out
}

#[test]
fn import_blocks_with_generated_config_plan_clean_for_every_resource_type() {
    let Some(latest) = terraform_at_least(
        (1, 5),
        "import blocks with -generate-config-out (import_blocks_with_generated_config_plan_clean_for_every_resource_type)",
    ) else {
        return;
    };
    let emulator = Emulator::start();
    let objects = seed(&emulator);
    let mut ws = Workspace::new(&emulator);
    ws.use_terraform(latest);
    let imports: String = objects
        .iter()
        .map(|(to, id)| format!("import {{\n  to = {to}\n  id = \"{id}\"\n}}\n"))
        .collect();
    ws.write_config(&format!("provider \"akspolicy\" {{}}\n\n{imports}"));

    let generate = ws.terraform(&[
        "plan",
        "-input=false",
        "-no-color",
        "-generate-config-out=generated.tf",
    ]);
    generate.assert_ok("plan -generate-config-out");
    let generated =
        std::fs::read_to_string(ws.path().join("generated.tf")).expect("generated.tf written");
    for (to, _) in &objects {
        let (kind, name) = to.split_once('.').expect("address");
        assert!(
            generated.contains(&format!("resource \"{kind}\" \"{name}\"")),
            "{to} missing from the generated configuration:\n{generated}"
        );
    }

    let plan = ws.plan();
    assert_eq!(
        plan.code,
        2,
        "imports only, nothing to change:\n{}",
        plan.combined()
    );
    assert!(
        plan.stdout.contains(&format!(
            "{} to import, 0 to add, 0 to change, 0 to destroy",
            objects.len()
        )),
        "the imported objects must need no change:\n{}\n--- generated.tf\n{generated}",
        plan.stdout
    );
    ws.apply().assert_ok("apply the imports");
    ws.assert_empty_plan();

    // A later change writes what Azure held, not what the provider would have generated.
    let kubernetes = &objects[1].1;
    let edited = std::fs::read_to_string(ws.path().join("generated.tf"))
        .expect("generated.tf")
        .replace("Pods need an owner label", "Pods need an owner label (v2)")
        .replace("assigned by hand", "assigned by hand, kept by Terraform");
    std::fs::write(ws.path().join("generated.tf"), edited).expect("edit generated.tf");
    ws.apply().assert_ok("change the display name");
    ws.assert_empty_plan();
    let after = get(&emulator, kubernetes, POLICY_API);
    assert_eq!(
        after["properties"]["displayName"],
        "Pods need an owner label (v2)"
    );
    assert_eq!(
        after["properties"]["parameters"]["excludedNamespaces"]["defaultValue"],
        json!(["kube-system", "team-system"]),
        "{after}"
    );
    assert!(
        after["properties"]["parameters"]
            .get("labelSelector")
            .is_none(),
        "{after}"
    );
    assert_eq!(
        after["properties"]["policyRule"]["if"]["in"],
        json!(["Microsoft.ContainerService/managedClusters"]),
        "{after}"
    );
    let assignment = get(&emulator, &objects[3].1, POLICY_API);
    assert_eq!(
        assignment["properties"]["description"],
        "assigned by hand, kept by Terraform"
    );
    assert_eq!(
        assignment["properties"]["metadata"]["assignedBy"], "Team B",
        "an update keeps the metadata keys state does not show: {assignment}"
    );
    assert_eq!(assignment["properties"]["metadata"]["ticket"], 42);
    let content = after["properties"]["policyRule"]["then"]["details"]["templateInfo"]["content"]
        .as_str()
        .expect("embedded template");
    let yaml = base64::engine::general_purpose::STANDARD
        .decode(content)
        .expect("base64");
    assert_eq!(String::from_utf8_lossy(&yaml), REORDERED_TEMPLATE);

    // A held rule decides the kinds, so `match` cannot silently say otherwise.
    let generated = std::fs::read_to_string(ws.path().join("generated.tf")).expect("generated.tf");
    let at = generated
        .find("resource \"akspolicy_kubernetes_definition\" \"owner\"")
        .expect("owner block");
    let end = generated[at + 1..]
        .find("\nresource ")
        .map_or(generated.len(), |e| at + 1 + e);
    let block = &generated[at..end];
    assert_eq!(
        block.matches("kinds      = [\"Pod\"]").count(),
        1,
        "{block}"
    );
    let edited = block.replace(
        "kinds      = [\"Pod\"]",
        "kinds      = [\"Pod\", \"Service\"]",
    );
    std::fs::write(
        ws.path().join("generated.tf"),
        format!("{}{edited}{}", &generated[..at], &generated[end..]),
    )
    .expect("edit generated.tf");
    let plan = ws.plan();
    plan.assert_error_with(&["match does not agree with policy_rule"]);
}
