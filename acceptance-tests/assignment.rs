//! `akspolicy_assignment` and `akspolicy_exemption`, end to end: one assignment per scope kind
//! (subscription, resource group, management group, AKS cluster) and an exemption, taken
//! through create → empty plan → update in place → empty plan → import → drift → destroy in a
//! single configuration, so the suite stays fast; plus the plan-time parameter checks and
//! `grant_remediation_roles` (in the remediation story's estate of `remediation.rs`).

use serde_json::{json, Value as Json};

use crate::harness::{wait_idle, Emulator, TfRun, Workspace, EXEMPTION_API};
use crate::remediation::{estate, ADDON_DINE, ADDON_REMEDIATION};

const PRIVILEGED: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";
const PSS_BASELINE: &str =
    "/providers/Microsoft.Authorization/policySetDefinitions/a8640138-9b0a-4a28-b8cb-1666c838647d";
const ASSIGNMENTS: &str = "providers/Microsoft.Authorization/policyAssignments";
const EXEMPTIONS: &str = "providers/Microsoft.Authorization/policyExemptions";
const POLICY_API: &str = "api-version=2025-03-01";

/// The ids of what the scenario seeds out of band.
struct Scopes {
    sub: String,
    aks_rg: String,
    legacy_rg: String,
    mg: String,
    cluster: String,
    custom_definition: String,
}

fn seed(emulator: &Emulator, path: &str, body: Json) {
    let (status, resp) = emulator.arm("PUT", path, Some(&body));
    assert!(
        (200..300).contains(&status),
        "seeding PUT {path} answered {status}: {resp}"
    );
}

/// Resource groups, a management group, a cluster and a custom Kubernetes definition, created
/// the way another tool would.
fn seed_scopes(emulator: &Emulator) -> Scopes {
    let sub = format!("/subscriptions/{}", emulator.subscription_id());
    let aks_rg = format!("{sub}/resourceGroups/aks-rg");
    let legacy_rg = format!("{sub}/resourceGroups/legacy-rg");
    // Spelled in lower case, as Azure itself sometimes returns it: the user's form is kept.
    let mg = "/providers/microsoft.management/managementgroups/platform".to_string();
    let cluster = format!("{aks_rg}/providers/Microsoft.ContainerService/managedClusters/prod");
    let custom_definition =
        format!("{sub}/providers/Microsoft.Authorization/policyDefinitions/required-labels");
    for rg in [&aks_rg, &legacy_rg] {
        seed(
            emulator,
            &format!("{rg}?api-version=2021-04-01"),
            json!({"location": "westeurope"}),
        );
    }
    seed(
        emulator,
        &format!("{mg}?api-version=2021-04-01"),
        json!({"properties": {"displayName": "Platform"}}),
    );
    seed(
        emulator,
        &format!("{cluster}?api-version=2026-04-01"),
        json!({
            "location": "westeurope",
            "properties": {
                "dnsPrefix": "prod",
                "agentPoolProfiles": [{"name": "system", "count": 1, "vmSize": "Standard_D2s_v5", "mode": "System"}],
                "addonProfiles": {"azurepolicy": {"enabled": true}}
            }
        }),
    );
    seed(
        emulator,
        &format!("{custom_definition}?{POLICY_API}"),
        json!({"properties": {
            "policyType": "Custom",
            "mode": "Microsoft.Kubernetes.Data",
            "displayName": "Namespaces must carry the required labels",
            "parameters": {
                "labels": {"type": "Array", "metadata": {"displayName": "Required labels"}},
                "effect": {"type": "String", "defaultValue": "Audit",
                           "allowedValues": ["Audit", "Deny", "Disabled"]}
            },
            "policyRule": {
                "if": {"field": "type", "in": ["Microsoft.ContainerService/managedClusters"]},
                "then": {
                    "effect": "[parameters('effect')]",
                    "details": {
                        "templateInfo": {"sourceType": "PublicURL",
                                         "url": "https://example.com/required-labels/template.yaml"},
                        "apiGroups": [""],
                        "kinds": ["Namespace"],
                        "values": {"labels": "[parameters('labels')]"}
                    }
                }
            }
        }}),
    );
    Scopes {
        sub,
        aks_rg,
        legacy_rg,
        mg,
        cluster,
        custom_definition,
    }
}

/// The scenario's configuration; `v2` is the in-place update of every resource.
fn config(s: &Scopes, v2: bool) -> String {
    let pick = |a: &str, b: &str| if v2 { b.to_string() } else { a.to_string() };
    format!(
        r#"
provider "akspolicy" {{}}

data "akspolicy_builtin_definition" "priv" {{
  name = "95edb821-ddaf-4404-9732-666045e056b4"
}}

# Subscription: the Pod Security Standards baseline initiative.
resource "akspolicy_assignment" "sub" {{
  name                 = "pss-baseline"
  scope                = "{sub}"
  policy_definition_id = "{PSS_BASELINE}"
  parameters           = {{ effect = "{sub_effect}" }}
  {sub_extra}
}}

# Expired long ago: kept (not recreated), flagged, and warned about on every plan.
resource "akspolicy_exemption" "expired" {{
  name                 = "expired-waiver"
  scope                = "{legacy_rg}"
  policy_assignment_id = akspolicy_assignment.sub.id
  exemption_category   = "Waiver"
  expires_on           = "2020-01-01T00:00:00Z"
}}

# Resource group: the privileged-containers built-in, denying, with excluded namespaces.
resource "akspolicy_assignment" "rg" {{
  name                 = "no-privileged"
  scope                = "{aks_rg}"
  policy_definition_id = data.akspolicy_builtin_definition.priv.id
  parameters           = {{ effect = "deny", excludedNamespaces = {namespaces} }}
  non_compliance_message {{
    content = "{message}"
  }}
  {rg_extra}
}}

# Management group: identity + location, report-only.
resource "akspolicy_assignment" "mg" {{
  name                 = "pss-mg"
  scope                = "{mg}"
  policy_definition_id = "{PSS_BASELINE}"
  enforcement_mode     = "{mode}"
  location             = "westeurope"
  display_name         = "{mg_display}"
  identity {{
    type = "SystemAssigned"
  }}
}}

# One AKS cluster: a custom Kubernetes definition.
resource "akspolicy_assignment" "cluster" {{
  name                 = "required-labels"
  scope                = "{cluster}"
  policy_definition_id = "{custom}"
  parameters           = {{ labels = ["team", "cost-center"], effect = "{cluster_effect}" }}
  metadata             = jsonencode({{ owner = "{owner}" }})
  location             = "westeurope"
  identity {{
    type         = "UserAssigned"
    identity_ids = ["{aks_rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/policy-remediation"]
  }}
}}

# The baseline's privileged-containers member waived for one resource group.
resource "akspolicy_exemption" "legacy" {{
  name                            = "legacy-waiver"
  scope                           = "{legacy_rg}"
  policy_assignment_id            = akspolicy_assignment.sub.id
  policy_definition_reference_ids = ["ContainerNoPrivilege"]
  exemption_category              = "{category}"
  expires_on                      = "{expires}"
}}

output "principal_id" {{ value = akspolicy_assignment.mg.identity[0].principal_id }}
output "rg_id" {{ value = akspolicy_assignment.rg.id }}
output "expired" {{ value = akspolicy_exemption.expired.expired }}
output "legacy_expired" {{ value = akspolicy_exemption.legacy.expired }}
"#,
        sub = s.sub,
        aks_rg = s.aks_rg,
        mg = s.mg,
        cluster = s.cluster,
        legacy_rg = s.legacy_rg,
        custom = s.custom_definition,
        sub_effect = pick("Audit", "Deny"),
        sub_extra = pick(
            "",
            r#"display_name = "Baseline for every cluster"
  overrides {
    value = "Disabled"
    selectors {
      kind = "policyDefinitionReferenceId"
      in   = ["HostNetworkPorts"]
    }
  }
  resource_selectors {
    name = "europe"
    selectors {
      kind = "resourceLocation"
      in   = ["westeurope", "northeurope"]
    }
  }"#,
        ),
        rg_extra = pick("", &format!("not_scopes = [\"{}\"]", s.cluster)),
        namespaces = pick(
            r#"["kube-system", "gatekeeper-system"]"#,
            r#"["kube-system", "gatekeeper-system", "monitoring"]"#
        ),
        message = pick(
            "Privileged containers are not allowed here.",
            "No privileged containers in aks-rg."
        ),
        mode = pick("DoNotEnforce", "Default"),
        mg_display = pick("Baseline (report only)", "Baseline"),
        cluster_effect = pick("Audit", "Deny"),
        owner = pick("platform", "security"),
        category = pick("Waiver", "Mitigated"),
        // An offset form first (no perpetual diff against Azure's UTC), then Azure's own form
        // so that the import afterwards plans empty.
        expires = pick("2099-06-30T02:00:00+02:00", "2099-07-31T00:00:00Z"),
    )
}

/// Terraform wraps diagnostic text at 78 columns, so needles are matched with whitespace runs
/// collapsed.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn assert_output(what: &str, out: &str, needles: &[&str]) {
    let flat = squash(out);
    for n in needles {
        assert!(
            flat.contains(&squash(n)),
            "{what} output lacks {n:?}:\n{out}"
        );
    }
}

fn assert_plan(run: &TfRun, code: i32, needles: &[&str]) {
    let out = run.combined();
    assert_eq!(run.code, code, "plan exit code:\n{out}");
    assert_output("plan", &out, needles);
}

fn get(emulator: &Emulator, path: &str, api: &str) -> (u16, Json) {
    emulator.arm("GET", &format!("{path}?{api}"), None)
}

/// GET, change, PUT back: a change made outside Terraform.
fn drift(emulator: &Emulator, path: &str, api: &str, change: impl FnOnce(&mut Json)) {
    let (status, mut body) = get(emulator, path, api);
    assert_eq!(status, 200, "GET {path}: {body}");
    change(&mut body);
    let (status, resp) = emulator.arm("PUT", &format!("{path}?{api}"), Some(&body));
    assert!((200..300).contains(&status), "PUT {path}: {status} {resp}");
}

#[test]
fn assignments_and_exemption_at_every_scope() {
    let emulator = Emulator::start();
    let s = seed_scopes(&emulator);
    let ws = Workspace::new(&emulator);

    // Create, then nothing to do.
    ws.write_config(&config(&s, false));
    ws.apply().assert_ok("apply v1");
    let run = ws.plan();
    assert_plan(
        &run,
        0,
        &[
            "Policy exemption has expired",
            "\"expired-waiver\" expired at 2020-01-01T00:00:00Z",
        ],
    );
    assert_eq!(ws.output("expired"), json!(true));
    assert_eq!(ws.output("legacy_expired"), json!(false));

    let rg_assignment = format!("{}/{ASSIGNMENTS}/no-privileged", s.aks_rg);
    let (status, body) = get(&emulator, &rg_assignment, POLICY_API);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["properties"]["parameters"],
        json!({"effect": {"value": "deny"}, "excludedNamespaces": {"value": ["kube-system", "gatekeeper-system"]}}),
        "plain values are sent in ARM's {{\"value\": ...}} form"
    );
    let mg_assignment = format!("{}/{ASSIGNMENTS}/pss-mg", s.mg);
    let (_, body) = get(&emulator, &mg_assignment, POLICY_API);
    assert_eq!(body["properties"]["enforcementMode"], "DoNotEnforce");
    assert_eq!(body["identity"]["type"], "SystemAssigned");
    let principal = ws.output("principal_id");
    assert!(
        principal.as_str().is_some_and(|p| !p.is_empty()),
        "principal_id: {principal}"
    );
    assert_eq!(body["identity"]["principalId"], principal);
    let (_, body) = get(
        &emulator,
        &format!("{}/{ASSIGNMENTS}/required-labels", s.cluster),
        POLICY_API,
    );
    assert_eq!(body["identity"]["type"], "UserAssigned");
    assert!(
        body["identity"]["userAssignedIdentities"]
            .as_object()
            .is_some_and(|m| m.keys().any(|k| k.ends_with("/policy-remediation"))),
        "{body}"
    );

    // Update every resource in place, then nothing to do.
    ws.write_config(&config(&s, true));
    assert_plan(
        &ws.plan(),
        2,
        &["Plan: 0 to add, 5 to change, 0 to destroy."],
    );
    ws.apply().assert_ok("apply v2");
    ws.assert_empty_plan();
    assert_eq!(
        ws.output("principal_id"),
        principal,
        "the identity survives updates"
    );

    // Import every resource into an empty state: the same configuration plans no change.
    let addresses = [
        (
            "akspolicy_assignment.sub",
            format!("{}/{ASSIGNMENTS}/pss-baseline", s.sub),
        ),
        ("akspolicy_assignment.rg", rg_assignment.clone()),
        ("akspolicy_assignment.mg", mg_assignment.clone()),
        (
            "akspolicy_assignment.cluster",
            format!("{}/{ASSIGNMENTS}/required-labels", s.cluster),
        ),
        (
            "akspolicy_exemption.legacy",
            format!("{}/{EXEMPTIONS}/legacy-waiver", s.legacy_rg),
        ),
    ];
    let mut rm = vec!["state", "rm"];
    rm.extend(addresses.iter().map(|(a, _)| *a));
    ws.terraform(&rm).assert_ok("state rm");
    for (address, id) in &addresses {
        ws.terraform(&["import", "-input=false", "-no-color", address, id])
            .assert_ok(&format!("import {address}"));
    }
    // Imports evaluate outputs before every resource is back, leaving some outputs unset;
    // a refresh stores them again (it reads the resources exactly as the plan would).
    ws.terraform(&["refresh", "-input=false", "-no-color"])
        .assert_ok("refresh");
    ws.assert_empty_plan();

    // Changes made outside Terraform show up per attribute.
    let sub_assignment = &addresses[0].1;
    drift(&emulator, sub_assignment, POLICY_API, |b| {
        b["properties"]["parameters"]["effect"]["value"] = json!("Disabled");
    });
    drift(&emulator, &rg_assignment, POLICY_API, |b| {
        b["properties"]["enforcementMode"] = json!("DoNotEnforce");
    });
    drift(&emulator, &mg_assignment, POLICY_API, |b| {
        b["properties"]["displayName"] = json!("Renamed in the portal");
    });
    let exemption = &addresses[4].1;
    drift(&emulator, exemption, EXEMPTION_API, |b| {
        b["properties"]["exemptionCategory"] = json!("Waiver");
    });
    let (status, _) = emulator.arm("DELETE", &format!("{}?{POLICY_API}", addresses[3].1), None);
    assert!(status == 200 || status == 204, "DELETE: {status}");
    assert_plan(
        &ws.plan(),
        2,
        &[
            "\"Disabled\" -> \"Deny\"",
            "\"DoNotEnforce\" -> \"Default\"",
            "\"Renamed in the portal\" -> \"Baseline\"",
            "\"Waiver\" -> \"Mitigated\"",
            "akspolicy_assignment.cluster will be created",
            "Plan: 1 to add, 4 to change, 0 to destroy.",
        ],
    );

    ws.destroy().assert_ok("destroy");
    for (address, id) in &addresses {
        let api = if address.starts_with("akspolicy_exemption") {
            EXEMPTION_API
        } else {
            POLICY_API
        };
        let (status, _) = get(&emulator, id, api);
        assert_eq!(status, 404, "{address} still exists after destroy");
    }
}

#[test]
fn parameter_mistakes_fail_the_plan_with_hints() {
    let emulator = Emulator::start();
    let s = seed_scopes(&emulator);
    let baseline = format!("{}/{ASSIGNMENTS}/pss-baseline", s.sub);
    seed(
        &emulator,
        &format!("{baseline}?{POLICY_API}"),
        json!({"properties": {"policyDefinitionId": PSS_BASELINE}}),
    );
    let ws = Workspace::new(&emulator);
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_exemption" "typo" {{
  name                            = "typo"
  scope                           = "{rg}"
  policy_assignment_id            = "{baseline}"
  policy_definition_reference_ids = ["ContainerNoPrivileged"]
  exemption_category              = "Waiver"
}}

resource "akspolicy_assignment" "misspelled" {{
  name                 = "misspelled"
  scope                = "{rg}"
  policy_definition_id = "{PRIVILEGED}"
  parameters           = {{ effect = "Deny", excludedNamespace = ["kube-system"] }}
}}

resource "akspolicy_assignment" "casing" {{
  name                 = "casing"
  scope                = "{rg}"
  policy_definition_id = "{PRIVILEGED}"
  parameters           = {{ effect = "DENY" }}
}}

resource "akspolicy_assignment" "missing" {{
  name                 = "missing"
  scope                = "{cluster}"
  policy_definition_id = "{custom}"
  parameters           = {{ effect = "Audit" }}
}}

resource "akspolicy_assignment" "wrong_type" {{
  name                 = "wrong-type"
  scope                = "{rg}"
  policy_definition_id = "{PRIVILEGED}"
  parameters           = {{ excludedNamespaces = "kube-system" }}
}}
"#,
        rg = s.aks_rg,
        cluster = s.cluster,
        custom = s.custom_definition,
    ));
    assert_plan(
        &ws.plan(),
        1,
        &[
            "Unknown policy parameter",
            "Did you mean \"excludedNamespaces\"?",
            "Policy parameter value not allowed",
            "case-sensitively: did you mean \"deny\"?",
            "Missing required policy parameter",
            "\"labels\"",
            "Wrong type for policy parameter",
            "declared as Array",
            "Unknown policy definition reference ID",
            "Did you mean \"ContainerNoPrivilege\"?",
            // The diagnostics point at the offending parameter, not the whole resource.
            ": parameters = { effect = \"Deny\", excludedNamespace = [\"kube-system\"] }",
        ],
    );
    let (status, _) = get(
        &emulator,
        &format!("{}/{ASSIGNMENTS}/misspelled", s.aks_rg),
        POLICY_API,
    );
    assert_eq!(status, 404, "nothing was created");

    // A value only known at apply is checked then, with the same message.
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_assignment" "first" {{
  name                 = "first"
  scope                = "{rg}"
  policy_definition_id = "{PRIVILEGED}"
}}

resource "akspolicy_assignment" "later" {{
  name                 = "later"
  scope                = "{rg}"
  policy_definition_id = "{PRIVILEGED}"
  parameters           = {{ effect = akspolicy_assignment.first.id }}
}}
"#,
        rg = s.aks_rg,
    ));
    let run = ws.plan();
    assert_eq!(
        run.code,
        2,
        "names are fine, values unknown:\n{}",
        run.combined()
    );
    let run = ws.apply();
    assert_ne!(run.code, 0, "{}", run.combined());
    assert_output(
        "apply",
        &run.combined(),
        &[
            "Policy parameter value not allowed",
            "for parameter \"effect\"",
        ],
    );

    // Checks that need no Azure: a scope that is not one, a management-group name that is too
    // long, an identity without location.
    ws.write_config(
        r#"
resource "akspolicy_assignment" "bad_scope" {
  name                 = "bad-scope"
  scope                = "aks-rg"
  policy_definition_id = "/providers/Microsoft.Authorization/policyDefinitions/x"
}

resource "akspolicy_assignment" "long_mg_name" {
  name                 = "a-name-longer-than-24-chars"
  scope                = "/providers/Microsoft.Management/managementGroups/platform"
  policy_definition_id = "/providers/Microsoft.Authorization/policyDefinitions/x"
  identity {
    type = "SystemAssigned"
  }
}
"#,
    );
    let run = ws.validate();
    let out = run.combined();
    assert_ne!(run.code, 0, "{out}");
    assert_output(
        "validate",
        &out,
        &["accepted forms", "at most 24", "Missing location"],
    );
}

#[test]
fn a_fresh_assignment_that_404s_briefly_is_waited_for() {
    let faults = tempfile::tempdir().expect("temp dir");
    let profile = faults.path().join("faults.json");
    std::fs::write(&profile, r#"{"consistency_ms": 1500}"#).expect("write fault profile");
    let emulator = Emulator::start_with(&["--faults", profile.to_str().expect("utf-8 path")]);
    let rg = format!(
        "/subscriptions/{}/resourceGroups/aks-rg",
        emulator.subscription_id()
    );
    seed(
        &emulator,
        &format!("{rg}?api-version=2021-04-01"),
        json!({"location": "westeurope"}),
    );
    let ws = Workspace::new(&emulator);
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_assignment" "this" {{
  name                 = "no-privileged"
  scope                = "{rg}"
  policy_definition_id = "{PRIVILEGED}"
  parameters           = {{ effect = "Audit" }}
}}

resource "akspolicy_exemption" "this" {{
  name                 = "waiver"
  scope                = "{rg}"
  policy_assignment_id = akspolicy_assignment.this.id
  exemption_category   = "Waiver"
}}
"#
    ));
    ws.apply().assert_ok("apply with a consistency window");
    ws.assert_empty_plan();
    ws.destroy().assert_ok("destroy");
}

/// GETs of the assignment route that answered 404 so far.
fn assignment_404s(emulator: &Emulator) -> u64 {
    emulator.requests("GET", Some(404), |route| {
        route.ends_with("/policyassignments/{}")
    })
}

#[test]
fn a_deleted_assignment_shows_as_drift_at_once_unless_just_written() {
    let emulator = Emulator::start();
    let sub = format!("/subscriptions/{}", emulator.subscription_id());
    let path = format!("{sub}/{ASSIGNMENTS}/made-elsewhere");
    seed(
        &emulator,
        &format!("{path}?{POLICY_API}"),
        json!({"properties": {"policyDefinitionId": PRIVILEGED,
               "parameters": {"effect": {"value": "Audit"}}}}),
    );
    let ws = Workspace::new(&emulator);
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_assignment" "this" {{
  name                 = "made-elsewhere"
  scope                = "{sub}"
  policy_definition_id = "{PRIVILEGED}"
  parameters           = {{ effect = "Audit" }}
}}
"#
    ));
    ws.terraform(&[
        "import",
        "-input=false",
        "-no-color",
        "akspolicy_assignment.this",
        &path,
    ])
    .assert_ok("import");
    ws.assert_empty_plan();
    // A delete in the portal, then a plan: how many 404s the refresh met.
    let delete_and_plan = || {
        let (status, _) = emulator.arm("DELETE", &format!("{path}?{POLICY_API}"), None);
        assert!(status == 200 || status == 204, "DELETE: {status}");
        let before = assignment_404s(&emulator);
        assert_plan(
            &ws.plan(),
            2,
            &["akspolicy_assignment.this will be created"],
        );
        assignment_404s(&emulator) - before
    };

    // Imported, never written by this provider: a 404 is believed on the first answer.
    let deleted_404s = delete_and_plan();
    assert_eq!(deleted_404s, 1, "an old object's 404 was asked again");

    // Just written by this provider: the 404 may be a replica behind the write, so it is
    // confirmed over a few seconds before the object is dropped from state.
    ws.apply().assert_ok("re-create");
    let deleted_404s = delete_and_plan();
    assert!(
        deleted_404s > 1,
        "a fresh object's 404 was believed at once"
    );
}

#[test]
fn references_that_cannot_exist_fail_the_plan() {
    let emulator = Emulator::start();
    let sub = format!("/subscriptions/{}", emulator.subscription_id());
    let ws = Workspace::new(&emulator);
    let mistyped = PRIVILEGED.replace("95edb821", "95edb812");
    let initiative_as_definition =
        PSS_BASELINE.replace("policySetDefinitions", "policyDefinitions");
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_assignment" "mistyped_builtin" {{
  name                 = "mistyped"
  scope                = "{sub}"
  policy_definition_id = "{mistyped}"
}}

resource "akspolicy_assignment" "initiative_under_definitions" {{
  name                 = "wrong-kind"
  scope                = "{sub}"
  policy_definition_id = "{initiative_as_definition}"
}}

resource "akspolicy_assignment" "missing_mg" {{
  name                 = "missing-mg"
  scope                = "/providers/Microsoft.Management/managementGroups/no-such-group"
  policy_definition_id = "{PRIVILEGED}"
}}

resource "akspolicy_assignment" "missing_rg" {{
  name                 = "missing-rg"
  scope                = "{sub}/resourceGroups/no-such-rg"
  policy_definition_id = "{PRIVILEGED}"
}}

resource "akspolicy_definition" "missing_mg" {{
  name        = "in-missing-group"
  scope       = "/providers/Microsoft.Management/managementGroups/no-such-definition-group"
  mode        = "All"
  policy_rule = jsonencode({{ if = {{ field = "type", equals = "x" }}, then = {{ effect = "audit" }} }})
}}

resource "akspolicy_exemption" "missing_rg" {{
  name                 = "missing-rg"
  scope                = "{sub}/resourceGroups/no-such-exempt-rg"
  policy_assignment_id = "{sub}/{ASSIGNMENTS}/elsewhere"
  exemption_category   = "Waiver"
}}
"#
    ));
    assert_plan(
        &ws.plan(),
        1,
        &[
            "No such built-in policy definition",
            "95edb812",
            "Not a policy definition",
            &format!("use \"{PSS_BASELINE}\""),
            "The management group does not exist",
            "no-such-group",
            "The resource group does not exist",
            "no-such-rg",
            "with akspolicy_exemption.missing_rg",
            "with akspolicy_definition.missing_mg",
            "no-such-definition-group",
            "no-such-exempt-rg",
        ],
    );

    // A custom definition written as a literal ID may be created by the same apply: the plan
    // goes on, but says that nothing about it (e.g. an effect it does not allow) was checked.
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_assignment" "later" {{
  name                 = "later"
  scope                = "{sub}"
  policy_definition_id = "{sub}/providers/Microsoft.Authorization/policyDefinitions/made-later"
  parameters           = {{ effect = "Block" }}
}}
"#
    ));
    assert_plan(
        &ws.plan(),
        2,
        &[
            "Warning: The policy definition does not exist yet",
            "its parameters cannot be checked at plan",
        ],
    );
}

#[test]
fn a_conditional_that_became_a_map_of_strings_is_explained() {
    let emulator = Emulator::start();
    let sub = format!("/subscriptions/{}", emulator.subscription_id());
    let ws = Workspace::new(&emulator);
    let definition = r#"
provider "akspolicy" {}

resource "akspolicy_definition" "replicas" {
  name = "max-replicas"
  mode = "Indexed"
  parameters = jsonencode({
    effect = { type = "String", allowedValues = ["audit", "deny"], defaultValue = "audit" }
    max    = { type = "Integer", defaultValue = 3 }
  })
  policy_rule = jsonencode({
    if   = { field = "type", equals = "Microsoft.ContainerService/managedClusters" }
    then = { effect = "[parameters('effect')]" }
  })
}
"#;
    ws.write_config(definition);
    ws.apply().assert_ok("apply definition");
    ws.write_config(&format!(
        r#"{definition}
variable "strict" {{
  type    = bool
  default = true
}}

resource "akspolicy_assignment" "replicas" {{
  name                 = "max-replicas"
  scope                = "{sub}"
  policy_definition_id = akspolicy_definition.replicas.id
  parameters           = var.strict ? {{ effect = "audit", max = 5 }} : {{ effect = "audit" }}
}}
"#
    ));
    let plan = ws.plan();
    assert_plan(
        &plan,
        1,
        &[
            "Wrong type for policy parameter",
            "Terraform passed the string \"5\"",
            "map of strings",
            "two results of a conditional",
            "max = null",
        ],
    );
    assert!(
        !plan.combined().contains("Write it as a whole number"),
        "{}",
        plan.combined()
    );
}

/// `grant_remediation_roles`: the provider grants the built-in's roles to the assignment's
/// identity at the management group (waiting out Entra ID's replication of the new identity),
/// so the remediation in the same apply turns the add-on on in both subscriptions; the roles
/// are in state, re-granted after drift, found again on import, and removed when turned off
/// and with the assignment.
#[test]
fn grant_remediation_roles_lets_the_builtin_remediate_across_subscriptions() {
    let Some((emulator, mg, clusters)) = estate() else {
        return;
    };
    let (status, body) = emulator.arm(
        "POST",
        "/_emulator/faults",
        Some(&json!({"principal_replication_ms": 3000})),
    );
    assert_eq!(status, 200, "{body}");
    let assignment = |grant: bool| {
        format!(
            r#"
resource "akspolicy_assignment" "addon" {{
  name                    = "deploy-policy-addon"
  scope                   = "{mg}"
  policy_definition_id    = "{ADDON_DINE}"
  location                = "westeurope"
  grant_remediation_roles = {grant}
  identity {{
    type = "SystemAssigned"
  }}
}}

output "roles" {{ value = akspolicy_assignment.addon.remediation_role_assignment_ids }}
output "principal" {{ value = akspolicy_assignment.addon.identity[0].principal_id }}
"#
        )
    };
    let remediation = ADDON_REMEDIATION;
    let ws = Workspace::new(&emulator);
    ws.write_config(&format!("{}{remediation}", assignment(true)));
    ws.apply().assert_ok("apply with grant_remediation_roles");
    assert_eq!(ws.output("remediated"), 2);
    for id in &clusters {
        let cluster = wait_idle(&emulator, id);
        assert_eq!(
            cluster["properties"]["addonProfiles"]["azurepolicy"]["enabled"], true,
            "{id}: {cluster}"
        );
    }
    let principal = ws.output("principal");
    let roles: Vec<String> = ws
        .output("roles")
        .as_array()
        .expect("role ids")
        .iter()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    assert_eq!(roles.len(), 2, "{roles:?}");
    // The identity was new: ARM answered PrincipalNotFound until Entra ID knew it, and the
    // provider waited instead of failing.
    let waited = emulator.requests("PUT", Some(400), |route| {
        route.ends_with("/providers/microsoft.authorization/roleassignments/{}")
    });
    assert!(waited > 0, "no PrincipalNotFound was waited out");
    for id in &roles {
        assert!(
            id.starts_with(&format!(
                "{mg}/providers/Microsoft.Authorization/roleAssignments/"
            )),
            "{id}"
        );
        let (status, ra) = emulator.arm("GET", &format!("{id}?api-version=2022-04-01"), None);
        assert_eq!(status, 200, "{ra}");
        assert_eq!(ra["properties"]["principalId"], principal, "{ra}");
    }
    ws.assert_empty_plan();

    // Drift: a role assignment deleted outside Terraform is planned back and re-granted.
    let (status, _) = emulator.arm(
        "DELETE",
        &format!("{}?api-version=2022-04-01", roles[0]),
        None,
    );
    assert_eq!(status, 200);
    let drift = ws.plan();
    assert_eq!(drift.code, 2, "{}", drift.combined());
    assert!(
        drift.combined().contains("grant_remediation_roles"),
        "{}",
        drift.combined()
    );
    ws.apply().assert_ok("re-grant");
    let (status, _) = emulator.arm("GET", &format!("{}?api-version=2022-04-01", roles[0]), None);
    assert_eq!(status, 200);
    ws.assert_empty_plan();

    // Import finds the roles a previous apply granted.
    let imported = Workspace::new(&emulator);
    let without_outputs = assignment(true);
    let without_outputs = without_outputs
        .split("output \"roles\"")
        .next()
        .unwrap_or_default();
    imported.write_config(without_outputs);
    imported
        .terraform(&[
            "import",
            "-input=false",
            "-no-color",
            "akspolicy_assignment.addon",
            &format!(
                "{mg}/providers/Microsoft.Authorization/policyAssignments/deploy-policy-addon"
            ),
        ])
        .assert_ok("import");
    imported.assert_empty_plan();

    // Turned off: the role assignments go, the assignment stays.
    ws.write_config(&format!("{}{remediation}", assignment(false)));
    ws.apply().assert_ok("grant off");
    assert_eq!(ws.output("roles"), json!([]));
    for id in &roles {
        let (status, _) = emulator.arm("GET", &format!("{id}?api-version=2022-04-01"), None);
        assert_eq!(status, 404, "{id} survived grant_remediation_roles = false");
    }
    ws.assert_empty_plan();

    // On again, then destroyed with the assignment.
    ws.write_config(&format!("{}{remediation}", assignment(true)));
    ws.apply().assert_ok("grant on");
    ws.destroy().assert_ok("destroy");
    for id in &roles {
        let (status, _) = emulator.arm("GET", &format!("{id}?api-version=2022-04-01"), None);
        assert_eq!(status, 404, "{id} survived the assignment");
    }
}

/// A definition whose `roleDefinitionIds` change: the next refresh finds the assignment's
/// grants out of date and plans the update, which grants the new roles and revokes the old.
#[test]
fn grant_remediation_roles_follows_the_definitions_roles() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let contributor =
        "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c";
    let aks_contributor =
        "/providers/Microsoft.Authorization/roleDefinitions/ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8";
    let reader =
        "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7";
    let config = |roles: &[&str]| {
        let roles = roles
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"
resource "akspolicy_definition" "tag" {{
  name         = "cost-tag"
  display_name = "Cost centre tag on clusters"
  mode         = "Indexed"
  policy_rule = jsonencode({{
    if = {{ field = "type", equals = "Microsoft.ContainerService/managedClusters" }}
    then = {{
      effect = "modify"
      details = {{
        roleDefinitionIds = [{roles}]
        operations        = [{{ operation = "addOrReplace", field = "tags['cost']", value = "cc-1" }}]
      }}
    }}
  }})
}}

resource "akspolicy_assignment" "tag" {{
  name                    = "cost-tag"
  scope                   = "/subscriptions/{sub}"
  policy_definition_id    = akspolicy_definition.tag.id
  location                = "westeurope"
  grant_remediation_roles = true
  identity {{
    type = "SystemAssigned"
  }}
}}

output "roles" {{ value = akspolicy_assignment.tag.remediation_role_assignment_ids }}
"#
        )
    };
    let role_of = |id: &str| -> String {
        let (status, ra) = emulator.arm("GET", &format!("{id}?api-version=2022-04-01"), None);
        assert_eq!(status, 200, "{ra}");
        ra["properties"]["roleDefinitionId"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_default()
            .to_string()
    };
    let roles_of = |ws: &Workspace| -> Vec<String> {
        ws.output("roles")
            .as_array()
            .expect("role ids")
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect()
    };
    let ws = Workspace::new(&emulator);
    ws.write_config(&config(&[contributor]));
    ws.apply().assert_ok("apply");
    let first = roles_of(&ws);
    assert_eq!(first.len(), 1);
    assert_eq!(role_of(&first[0]), "b24988ac-6180-42a0-ab88-20f7382dd24c");
    ws.assert_empty_plan();

    ws.write_config(&config(&[aks_contributor, reader]));
    ws.apply().assert_ok("change the definition's roles");
    let follow = ws.plan();
    assert_eq!(follow.code, 2, "{}", follow.combined());
    assert!(
        follow.combined().contains("grant_remediation_roles"),
        "{}",
        follow.combined()
    );
    ws.apply().assert_ok("follow the definition");
    let second = roles_of(&ws);
    let granted: Vec<String> = second.iter().map(|id| role_of(id)).collect();
    assert_eq!(
        granted,
        vec![
            "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8".to_string(),
            "acdd72a7-3385-48ef-bd42-f606fba81ae7".to_string()
        ]
    );
    let (status, _) = emulator.arm("GET", &format!("{}?api-version=2022-04-01", first[0]), None);
    assert_eq!(status, 404, "the role the definition dropped is revoked");
    ws.assert_empty_plan();
    ws.destroy().assert_ok("destroy");
}
