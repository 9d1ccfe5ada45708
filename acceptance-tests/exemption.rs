//! `akspolicy_exemption`, end to end: an exemption of one member of an assigned initiative,
//! changed in place, drifted outside Terraform, imported, refused at plan time when it names a
//! member the initiative does not have, and destroyed. The assignment tests exempt at every
//! scope kind; this file follows one exemption through its whole life.

use serde_json::{json, Value as Json};

use crate::definition::config as definition_and_initiative;
use crate::harness::{Emulator, Workspace, EXEMPTION_API};

/// In an offset other than UTC, which names the same instant as Azure's UTC form.
const EXPIRES_ON: &str = "2099-06-30T02:00:00+02:00";

/// The custom definition and initiative of `definition.rs`, assigned at the subscription, and
/// an exemption of the resource group `team-rg` from the initiative's `addon` member.
fn config(sub: &str, category: &str, reference_id: &str) -> String {
    format!(
        r#"{base}
resource "akspolicy_assignment" "baseline" {{
  name                 = "aks-baseline"
  scope                = "/subscriptions/{sub}"
  policy_definition_id = akspolicy_initiative.baseline.id
}}

resource "akspolicy_exemption" "team" {{
  name                            = "team-rg-addon"
  scope                           = "/subscriptions/{sub}/resourceGroups/team-rg"
  policy_assignment_id            = akspolicy_assignment.baseline.id
  exemption_category              = "{category}"
  policy_definition_reference_ids = ["{reference_id}"]
  expires_on                      = "{EXPIRES_ON}"
  display_name                    = "Team cluster without the add-on"
  description                     = "Ticket 4711"
  metadata                        = jsonencode({{ requestedBy = "team" }})
}}

output "exemption_id" {{ value = akspolicy_exemption.team.id }}
output "expired" {{ value = akspolicy_exemption.team.expired }}
"#,
        base = definition_and_initiative("Require the policy add-on", "AKS baseline"),
    )
}

fn exemption_body(emulator: &Emulator, id: &str) -> (u16, Json) {
    emulator.arm("GET", &format!("{id}?{EXEMPTION_API}"), None)
}

#[test]
fn exemption_of_an_initiative_member_lifecycle() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let rg = format!("/subscriptions/{sub}/resourceGroups/team-rg?api-version=2021-04-01");
    let (status, body) = emulator.arm("PUT", &rg, Some(&json!({"location": "westeurope"})));
    assert!(
        (200..300).contains(&status),
        "resource group: {status} {body}"
    );
    let ws = Workspace::new(&emulator);

    // An offset other than UTC names the same instant as Azure's UTC form: no change planned.
    ws.write_config(&config(&sub, "Waiver", "addon"));
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    assert_eq!(ws.output("expired"), json!(false));
    let id = ws
        .output("exemption_id")
        .as_str()
        .expect("exemption id")
        .to_string();
    let (status, body) = exemption_body(&emulator, &id);
    assert_eq!(status, 200, "{body}");
    let props = &body["properties"];
    assert_eq!(props["exemptionCategory"], "Waiver", "{body}");
    assert_eq!(
        props["policyDefinitionReferenceIds"],
        json!(["addon"]),
        "{body}"
    );
    let expires = props["expiresOn"].as_str().unwrap_or_default();
    assert!(expires.starts_with("2099-06-30T00:00:00"), "{body}");
    assert_eq!(props["metadata"]["requestedBy"], "team", "{body}");

    // The category changes in place: the exemption is never gone in between.
    ws.write_config(&config(&sub, "Mitigated", "addon"));
    let plan = ws.plan_with_changes(&["update in-place"]);
    assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    ws.apply().assert_ok("update");
    ws.assert_empty_plan();
    let (_, body) = exemption_body(&emulator, &id);
    assert_eq!(
        body["properties"]["exemptionCategory"], "Mitigated",
        "{body}"
    );

    // A change made outside Terraform shows in the plan, and apply puts it back.
    let mut drifted = body.clone();
    drifted["properties"]["description"] = json!("changed in the portal");
    let (status, resp) = emulator.arm("PUT", &format!("{id}?{EXEMPTION_API}"), Some(&drifted));
    assert!((200..300).contains(&status), "drift: {status} {resp}");
    ws.plan_with_changes(&["changed in the portal"]);
    ws.apply().assert_ok("repair drift");
    let (_, body) = exemption_body(&emulator, &id);
    assert_eq!(body["properties"]["description"], "Ticket 4711", "{body}");

    // Adopted by import, everything matches but the spelling of `expires_on`: import has no
    // configuration to take it from, so it reads back in Azure's UTC form (as documented) and
    // the next apply only writes the configured spelling to the state.
    let imported = ws.reimport("akspolicy_exemption.team", &id);
    assert_eq!(imported["exemption_category"], "Mitigated", "{imported}");
    assert_eq!(
        imported["policy_definition_reference_ids"],
        json!(["addon"])
    );
    assert_eq!(imported["expires_on"], "2099-06-30T00:00:00Z", "{imported}");
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}", plan.combined());
    assert!(
        plan.stdout
            .contains(r#""2099-06-30T00:00:00Z" -> "2099-06-30T02:00:00+02:00""#)
            && plan.stdout.contains("0 to add, 1 to change, 0 to destroy")
            && plan.stdout.contains("(7 unchanged attributes hidden)"),
        "{}",
        plan.stdout
    );
    ws.apply().assert_ok("apply after import");
    ws.assert_no_resource_changes();

    // A member the initiative does not have fails the plan at the attribute, with a hint.
    ws.write_config(&config(&sub, "Mitigated", "adon"));
    ws.plan().assert_error_with(&[
        "Unknown policy definition reference ID",
        "Did you mean \"addon\"?",
        "policy_definition_reference_ids",
    ]);

    ws.write_config(&config(&sub, "Mitigated", "addon"));
    ws.destroy().assert_ok("destroy");
    let (status, body) = exemption_body(&emulator, &id);
    assert_eq!(status, 404, "the exemption is gone after destroy: {body}");
}
