//! `akspolicy_cluster_addon`, end to end against the emulator's AKS clusters.

use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::harness::{create_cluster, wait_idle, Emulator, Workspace, AKS_API};

fn addon_profile(cluster: &Json) -> Json {
    cluster["properties"]["addonProfiles"]
        .as_object()
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("azurepolicy"))
        })
        .map(|(_, v)| v.clone())
        .unwrap_or(Json::Null)
}

/// Changes the add-on outside Terraform, as someone in the portal would.
fn set_addon_out_of_band(emulator: &Emulator, id: &str, enabled: bool) {
    let mut cluster = wait_idle(emulator, id);
    cluster["properties"]["addonProfiles"]["azurepolicy"] = json!({"enabled": enabled});
    let (status, body) = emulator.arm("PUT", &format!("{id}?{AKS_API}"), Some(&cluster));
    assert!(status == 200 || status == 201, "{status} {body}");
    wait_idle(emulator, id);
}

fn config(cluster_id: &str) -> String {
    format!(
        r#"
resource "akspolicy_cluster_addon" "policy" {{
  cluster_id = "{cluster_id}"
}}

output "object_id" {{ value = akspolicy_cluster_addon.policy.identity[0].object_id }}
output "version" {{ value = akspolicy_cluster_addon.policy.version }}
"#
    )
}

#[test]
fn enables_detects_drift_imports_and_disables_on_destroy() {
    let emulator = Emulator::start();
    let id = create_cluster(&emulator, "aks-rg", "chamber-of-secrets");
    let ws = Workspace::new(&emulator);
    ws.write_config(&config(&id));
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    assert!(ws
        .output("object_id")
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(ws.output("version"), "v2");
    let profile = addon_profile(&wait_idle(&emulator, &id));
    assert_eq!(profile["enabled"], true, "{profile}");
    assert!(profile["identity"]["objectId"].is_string(), "{profile}");

    // Someone turns the add-on off in the portal: plan shows it, apply turns it back on.
    set_addon_out_of_band(&emulator, &id, false);
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    assert!(
        plan.stdout.contains("enabled") && plan.stdout.contains("false -> true"),
        "{}",
        plan.stdout
    );
    ws.apply().assert_ok("apply after drift");
    ws.assert_empty_plan();

    // Import into a fresh workspace gives a state that plans empty against the same config.
    let imported = Workspace::new(&emulator);
    imported.write_config(&config(&id));
    imported
        .terraform(&[
            "import",
            "-input=false",
            "-no-color",
            "akspolicy_cluster_addon.policy",
            &id,
        ])
        .assert_ok("import");
    // `terraform import` records no outputs; a refresh does, without touching resources.
    imported
        .terraform(&["refresh", "-input=false", "-no-color"])
        .assert_ok("refresh");
    imported.assert_empty_plan();

    ws.destroy().assert_ok("destroy");
    let profile = addon_profile(&wait_idle(&emulator, &id));
    assert_eq!(
        profile["enabled"], false,
        "destroy should disable the add-on: {profile}"
    );
}

#[test]
fn concurrent_cluster_change_is_not_lost() {
    let emulator = Emulator::start();
    let id = create_cluster(&emulator, "aks-rg", "busy");
    // Start a tag update (an LRO) just before Terraform writes: the add-on change must wait for
    // it (409) or re-read (412) and keep the tags.
    let (status, body) = emulator.arm(
        "PATCH",
        &format!("{id}?{AKS_API}"),
        Some(&json!({"tags": {"team": "platform"}})),
    );
    assert!(status == 200 || status == 202, "{status} {body}");
    let ws = Workspace::new(&emulator);
    ws.write_config(&config(&id));
    ws.apply().assert_ok("apply");
    let cluster = wait_idle(&emulator, &id);
    assert_eq!(
        cluster["tags"]["team"], "platform",
        "the concurrent tag change was lost: {cluster}"
    );
    assert_eq!(addon_profile(&cluster)["enabled"], true);
    ws.assert_empty_plan();
}

#[test]
fn missing_cluster_is_a_clear_error() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let ws = Workspace::new(&emulator);
    ws.write_config(&config(&format!(
        "/subscriptions/{sub}/resourceGroups/nope/providers/Microsoft.ContainerService/managedClusters/ghost"
    )));
    let run = ws.apply();
    assert_eq!(run.code, 1, "{}", run.combined());
    assert!(
        run.combined().contains("Cluster not found")
            || run.combined().contains("ResourceGroupNotFound"),
        "{}",
        run.combined()
    );
}

#[test]
fn wrong_resource_type_is_rejected_at_plan() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let ws = Workspace::new(&emulator);
    ws.write_config(&config(&format!("/subscriptions/{sub}/resourceGroups/rg")));
    let run = ws.validate();
    run.assert_error_with(&["Invalid cluster ID"]);
}

#[test]
fn deleted_cluster_leaves_state() {
    let emulator = Emulator::start();
    let id = create_cluster(&emulator, "aks-rg", "short-lived");
    let ws = Workspace::new(&emulator);
    ws.write_config(&config(&id));
    ws.apply().assert_ok("apply");
    let (status, body) = emulator.arm("DELETE", &format!("{id}?{AKS_API}"), None);
    assert!(
        status == 200 || status == 202 || status == 204,
        "{status} {body}"
    );
    let started = Instant::now();
    while emulator.arm("GET", &format!("{id}?{AKS_API}"), None).0 != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "cluster delete never finished"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    assert!(plan.stdout.contains("will be created"), "{}", plan.stdout);
    // A plan's refresh is not saved; a refresh is.
    ws.terraform(&["refresh", "-input=false", "-no-color"])
        .assert_ok("refresh");
    let state = ws.terraform(&["state", "list"]);
    assert!(
        state.stdout.trim().is_empty(),
        "the add-on should have left state: {}",
        state.stdout
    );
}

#[test]
fn the_documented_identity_output_survives_the_addon_being_switched_off() {
    let emulator = Emulator::start();
    let id = create_cluster(&emulator, "refresh-rg", "refresh");
    let ws = Workspace::new(&emulator);
    let config = |value: &str| {
        format!(
            r#"
provider "akspolicy" {{}}

resource "akspolicy_cluster_addon" "policy" {{
  cluster_id = "{id}"
}}

output "addon_identity" {{
  value = {value}
}}
"#
        )
    };
    // As docs/resources/cluster_addon.md writes it.
    let documented = "try(akspolicy_cluster_addon.policy.identity[0].object_id, null)";
    ws.write_config(&config(documented));
    ws.apply().assert_ok("apply");
    assert!(ws.output("addon_identity").is_string(), "identity while on");

    set_addon_out_of_band(&emulator, &id, false);
    let refresh = ws.terraform(&[
        "plan",
        "-refresh-only",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
    ]);
    assert_eq!(refresh.code, 2, "{}", refresh.combined());

    // What try() guards against: a bare index into the now empty list.
    ws.write_config(&config(
        "akspolicy_cluster_addon.policy.identity[0].object_id",
    ));
    let bare = ws.terraform(&["plan", "-refresh-only", "-input=false", "-no-color"]);
    bare.assert_error_with(&["Invalid index"]);
}
