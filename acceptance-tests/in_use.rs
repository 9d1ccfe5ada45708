//! Replacing a definition that something outside the configuration still uses: the plan must
//! fail before anything is destroyed (Azure refuses to delete a definition in use, and
//! Terraform would destroy our own assignment of it first).

use serde_json::json;

use crate::harness::{terraform_at_least, Emulator, Workspace};

const API: &str = "api-version=2025-03-01";

fn config(subscription: &str, definition_name: &str) -> String {
    format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_definition" "guard" {{
  name         = "{definition_name}"
  display_name = "Clusters must use Azure Policy"
  mode         = "Indexed"
  policy_rule = jsonencode({{
    if   = {{ field = "type", equals = "Microsoft.ContainerService/managedClusters" }}
    then = {{ effect = "audit" }}
  }})
}}

resource "akspolicy_assignment" "guard" {{
  name                 = "guard"
  scope                = "/subscriptions/{subscription}"
  policy_definition_id = akspolicy_definition.guard.id
}}
"#
    )
}

/// Assigns the definition at a resource group, as another team would, outside Terraform.
fn assign_outside(emulator: &Emulator, definition_id: &str) -> String {
    let sub = emulator.subscription_id();
    let (status, _) = emulator.arm(
        "PUT",
        &format!("/subscriptions/{sub}/resourceGroups/team-b?api-version=2021-04-01"),
        Some(&json!({ "location": "westeurope" })),
    );
    assert!(status < 300, "resource group: {status}");
    let id = format!(
        "/subscriptions/{sub}/resourceGroups/team-b/providers/Microsoft.Authorization/policyAssignments/team-b-guard"
    );
    let (status, body) = emulator.arm(
        "PUT",
        &format!("{id}?{API}"),
        Some(&json!({ "properties": {
            "displayName": "Team B guardrail",
            "policyDefinitionId": definition_id,
        }})),
    );
    assert_eq!(status, 201, "outside assignment: {body}");
    id
}

fn exists(emulator: &Emulator, id: &str) -> bool {
    emulator.arm("GET", &format!("{id}?{API}"), None).0 == 200
}

fn rename_fails_at_plan_and_destroys_nothing(ws: &Workspace, emulator: &Emulator) {
    let sub = emulator.subscription_id();
    ws.write_config(&config(&sub, "guard-v1"));
    ws.apply().assert_ok("apply");
    let definition_id = format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/policyDefinitions/guard-v1"
    );
    let ours =
        format!("/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments/guard");
    let outside = assign_outside(emulator, &definition_id);

    ws.write_config(&config(&sub, "guard-v2"));
    let plan = ws.plan();
    assert_eq!(
        plan.code,
        1,
        "the rename must fail at plan:\n{}",
        plan.combined()
    );
    let text = plan.combined();
    assert!(
        text.contains("Replacing this assignment would leave its scope without the guardrail"),
        "{text}"
    );
    assert!(
        text.contains(&outside),
        "the error names the outside assignment:\n{text}"
    );
    assert!(text.contains("Team B guardrail"), "{text}");
    assert!(
        text.contains("new resource with a new name"),
        "and says what to do:\n{text}"
    );
    assert!(
        text.contains("akspolicy_assignment.guard"),
        "against our assignment:\n{text}"
    );

    let apply = ws.apply();
    assert_ne!(apply.code, 0, "{}", apply.combined());
    for id in [&definition_id, &ours, &outside] {
        assert!(
            exists(emulator, id),
            "{id} must still exist:\n{}",
            apply.combined()
        );
    }

    // Once the other team has moved on, the same rename is an ordinary replacement.
    let (status, _) = emulator.arm("DELETE", &format!("{outside}?{API}"), None);
    assert_eq!(status, 200);
    ws.apply().assert_ok("rename once nothing else uses it");
    ws.assert_empty_plan();
    assert!(!exists(emulator, &definition_id));
    assert!(exists(
        emulator,
        &format!(
            "/subscriptions/{sub}/providers/Microsoft.Authorization/policyDefinitions/guard-v2"
        )
    ));
}

#[test]
fn renaming_a_definition_assigned_outside_terraform_fails_at_plan() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    rename_fails_at_plan_and_destroys_nothing(&ws, &emulator);
}

/// Terraform >= 1.3 plans destroys through the provider (plan_destroy): removing a definition
/// that others use is reported at plan, naming them.
#[test]
fn removing_an_assigned_definition_is_reported_at_plan_with_newer_terraform() {
    let Some(latest) = terraform_at_least(
        (1, 3),
        "destroy plans through the provider (removing_an_assigned_definition_is_reported_at_plan_with_newer_terraform)",
    ) else {
        return;
    };
    let emulator = Emulator::start();
    let mut ws = Workspace::new(&emulator);
    ws.use_terraform(latest.clone());
    let sub = emulator.subscription_id();
    ws.write_config(&config(&sub, "guard-v1"));
    ws.apply().assert_ok("apply");
    let definition_id = format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/policyDefinitions/guard-v1"
    );
    let outside = assign_outside(&emulator, &definition_id);

    ws.write_config("provider \"akspolicy\" {}\n");
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    let text = plan.combined();
    assert!(
        text.contains("The policy definition is still in use"),
        "{text}"
    );
    assert!(text.contains(&outside), "{text}");

    // The rename check runs on the newest Terraform too.
    let emulator = Emulator::start();
    let mut ws = Workspace::new(&emulator);
    ws.use_terraform(latest);
    rename_fails_at_plan_and_destroys_nothing(&ws, &emulator);
}

/// A definition that an initiative outside the configuration contains is in use too (Azure
/// refuses to delete a member of a set).
#[test]
fn renaming_a_definition_another_initiative_contains_fails_at_plan() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    let sub = emulator.subscription_id();
    ws.write_config(&config(&sub, "guard-v1"));
    ws.apply().assert_ok("apply");
    let definition_id = format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/policyDefinitions/guard-v1"
    );
    let set = format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/policySetDefinitions/team-b-baseline"
    );
    let (status, body) = emulator.arm(
        "PUT",
        &format!("{set}?{API}"),
        Some(&json!({ "properties": {
            "displayName": "Team B baseline",
            "policyDefinitions": [{ "policyDefinitionId": definition_id }],
        }})),
    );
    assert!(status < 300, "initiative: {status} {body}");

    ws.write_config(&config(&sub, "guard-v2"));
    let plan = ws.plan();
    let text = plan.assert_error_with(&[]);
    assert!(text.contains("initiative \"Team B baseline\""), "{text}");
    assert!(text.contains(&set), "{text}");
    assert!(exists(&emulator, &definition_id));
}
