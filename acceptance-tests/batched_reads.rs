//! Batched reads (issue #16): a refresh of many objects of one collection is answered by one
//! paged ARM list instead of one GET per object, while a lone object keeps its GET and drift
//! (an object deleted outside Terraform) still shows.

use std::collections::BTreeMap;

use crate::harness::{create_cluster, Emulator, Workspace};

const PRIVILEGED: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";
const POLICY_API: &str = "api-version=2025-03-01";

/// GET counts by route template, summed over statuses.
fn gets(emulator: &Emulator) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for row in emulator.request_counts() {
        if row.method == "GET" {
            *out.entry(row.route.to_ascii_lowercase()).or_default() += row.count;
        }
    }
    out
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, ends: &str) -> u64 {
    after
        .iter()
        .filter(|(r, _)| r.ends_with(ends))
        .map(|(r, v)| v - before.get(r).copied().unwrap_or(0))
        .sum()
}

#[test]
fn a_refresh_lists_each_collection_once_and_still_sees_drift() {
    let emulator = Emulator::start();
    let sub = format!("/subscriptions/{}", emulator.subscription_id());
    let rg = format!("{sub}/resourceGroups/lone-rg");
    let (status, body) = emulator.arm(
        "PUT",
        &format!("{rg}?api-version=2021-04-01"),
        Some(&serde_json::json!({"location": "westeurope"})),
    );
    assert!(
        status == 200 || status == 201,
        "resource group: {status} {body}"
    );
    let clusters: Vec<String> = (0..3)
        .map(|i| create_cluster(&emulator, "fleet-rg", &format!("aks-{i}")))
        .collect();
    let ws = Workspace::new(&emulator);
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_definition" "tag" {{
  count        = 4
  name         = "require-tag-${{count.index}}"
  display_name = "Require a tag ${{count.index}}"
  mode         = "Indexed"
  policy_rule  = jsonencode({{
    if   = {{ field = "tags.owner", exists = "false" }}
    then = {{ effect = "audit" }}
  }})
}}

resource "akspolicy_assignment" "many" {{
  count                = 12
  name                 = "many-${{count.index}}"
  scope                = "{sub}"
  policy_definition_id = "{PRIVILEGED}"
  parameters           = {{ effect = "Audit" }}
}}

resource "akspolicy_cluster_addon" "fleet" {{
  for_each   = toset({clusters})
  cluster_id = each.value
}}

resource "akspolicy_assignment" "lone" {{
  name                 = "lone"
  scope                = "{rg}"
  policy_definition_id = "{PRIVILEGED}"
  parameters           = {{ effect = "Audit" }}
}}
"#,
        clusters = serde_json::to_string(&clusters).expect("JSON list")
    ));
    ws.apply().assert_ok("apply");

    let before = gets(&emulator);
    ws.assert_empty_plan();
    let after = gets(&emulator);
    let assignment_gets = delta(&before, &after, "/policyassignments/{}");
    let assignment_lists = delta(&before, &after, "/policyassignments");
    let definition_gets = delta(&before, &after, "/policydefinitions/{}");
    let definition_lists = delta(&before, &after, "/policydefinitions");
    let cluster_gets = delta(&before, &after, "/managedclusters/{}");
    let cluster_lists = delta(&before, &after, "/managedclusters");
    // 13 assignments: the lone one and the first of the twelve are GETs, one list answers the
    // other eleven. The definition GETs are the one built-in the assignments' parameters are
    // checked against plus the first custom definition; one list answers the other three.
    assert!(
        assignment_gets <= 2 && assignment_lists == 1,
        "assignments: {assignment_gets} GETs, {assignment_lists} lists (routes: {after:?})"
    );
    assert!(
        definition_gets <= 2 && definition_lists == 1,
        "definitions: {definition_gets} GETs, {definition_lists} lists (routes: {after:?})"
    );

    assert!(
        cluster_gets <= 1 && cluster_lists == 1,
        "clusters: {cluster_gets} GETs, {cluster_lists} lists (routes: {after:?})"
    );

    // Drift: one of the batch deleted outside Terraform is missing from the list, so its own
    // GET meets the 404 and the plan re-creates it.
    let (status, _) = emulator.arm(
        "DELETE",
        &format!("{sub}/providers/Microsoft.Authorization/policyAssignments/many-7?{POLICY_API}"),
        None,
    );
    assert!(status == 200 || status == 204, "DELETE: {status}");
    let run = ws.plan();
    assert_eq!(run.code, 2, "expected changes:\n{}", run.combined());
    assert!(
        run.stdout
            .contains("akspolicy_assignment.many[7] will be created"),
        "{}",
        run.stdout
    );
    ws.destroy().assert_ok("destroy");
}
