//! `timeouts` blocks on the policy resources, and how many ARM calls a create costs: a create
//! is one existence check and one PUT when no long-running operation is involved (issue #10).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::{Emulator, Workspace};

const PRIVILEGED: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";

/// Request counts by (method, route template), summed over statuses.
type Counts = BTreeMap<(String, String), u64>;

fn counts(emulator: &Emulator) -> Counts {
    let mut out = Counts::new();
    for row in emulator.request_counts() {
        *out.entry((row.method, row.route)).or_default() += row.count;
    }
    out
}

/// Calls of `method` on routes containing `route_part` between two snapshots.
fn calls(before: &Counts, after: &Counts, method: &str, route_part: &str) -> u64 {
    after
        .iter()
        .filter(|((m, r), _)| m == method && r.contains(route_part))
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0))
        .sum()
}

/// Terraform's diagnostics with the box drawing and line wrapping taken out.
fn flattened(text: &str) -> String {
    text.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_create_timeout_bounds_the_wait_for_a_missing_definition() {
    let emulator = Emulator::start();
    let sub = format!("/subscriptions/{}", emulator.subscription_id());
    let ws = Workspace::new(&emulator);
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_assignment" "orphan" {{
  name                 = "orphan"
  scope                = "{sub}"
  policy_definition_id = "{sub}/providers/Microsoft.Authorization/policyDefinitions/never-created"
  timeouts {{
    create = "10s"
  }}
}}
"#
    ));
    let started = Instant::now();
    let run = ws.apply();
    let took = started.elapsed();
    assert_ne!(run.code, 0, "apply should fail:\n{}", run.combined());
    assert!(
        took < Duration::from_secs(60),
        "the 10s create timeout should end the apply well within a minute, took {took:?}"
    );
    let out = flattened(&run.combined());
    assert!(
        out.contains("Timed out creating the policy assignment"),
        "the diagnostic names the timeout:\n{out}"
    );
    assert!(
        out.contains("create timeout of 10s") && out.contains("timeouts { create ="),
        "the diagnostic tells how to raise the limit:\n{out}"
    );
    let listed = ws.terraform(&["state", "list"]);
    assert!(
        listed.stdout.trim().is_empty(),
        "nothing was created, so nothing is tracked: {}",
        listed.stdout
    );
}

fn config(sub: &str, create_timeout: &str) -> String {
    format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_definition" "audit_clusters" {{
  name        = "audit-clusters"
  mode        = "Indexed"
  policy_rule = jsonencode({{
    if   = {{ field = "type", equals = "Microsoft.ContainerService/managedClusters" }}
    then = {{ effect = "audit" }}
  }})
  timeouts {{
    create = "{create_timeout}"
    read   = "2m"
  }}
}}

resource "akspolicy_initiative" "set" {{
  name = "audit-set"
  policy_definition {{
    policy_definition_id = akspolicy_definition.audit_clusters.id
    reference_id         = "clusters"
  }}
  timeouts {{
    update = "{create_timeout}"
  }}
}}

resource "akspolicy_kubernetes_definition" "no_latest" {{
  name = "k8s-no-latest-tag"
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
  timeouts {{
    update = "{create_timeout}"
  }}
}}

resource "akspolicy_assignment" "many" {{
  count                = 3
  name                 = "no-privileged-${{count.index}}"
  scope                = "{sub}"
  policy_definition_id = "{PRIVILEGED}"
  parameters           = {{ effect = "deny", excludedNamespaces = ["kube-system"] }}
  timeouts {{
    create = "{create_timeout}"
    delete = "5m"
  }}
}}

resource "akspolicy_exemption" "first" {{
  name                 = "waiver"
  scope                = "{sub}"
  policy_assignment_id = akspolicy_assignment.many[0].id
  exemption_category   = "Waiver"
  timeouts {{
    create = "{create_timeout}"
  }}
}}
"#
    )
}

#[test]
fn creates_cost_one_check_and_one_put_and_timeouts_never_cause_calls_or_diffs() {
    let emulator = Emulator::start();
    let sub = format!("/subscriptions/{}", emulator.subscription_id());
    let ws = Workspace::new(&emulator);
    ws.write_config(&config(&sub, "5m"));
    let before = counts(&emulator);
    ws.apply().assert_ok("apply");
    let after = counts(&emulator);
    let puts = calls(&before, &after, "PUT", "policyassignments");
    let gets = calls(&before, &after, "GET", "policyassignments");
    println!("apply of 3 assignments: {puts} PUTs and {gets} GETs on the assignment route");
    assert_eq!(puts, 3, "one PUT per assignment");
    assert!(gets <= 3, "at most one GET per assignment, got {gets}");
    let exemption_puts = calls(&before, &after, "PUT", "policyexemptions");
    let exemption_gets = calls(&before, &after, "GET", "policyexemptions");
    assert_eq!(
        (exemption_puts, exemption_gets),
        (1, 1),
        "one check, one PUT"
    );
    ws.assert_empty_plan();

    // A new limit is recorded without calling Azure and without replacing anything.
    ws.write_config(&config(&sub, "7m"));
    let plan = ws.plan();
    let text = flattened(&plan.combined());
    assert!(
        !text.contains("must be replaced") && !text.contains("forces replacement"),
        "a timeouts change never replaces:\n{text}"
    );
    let before = counts(&emulator);
    ws.apply().assert_ok("apply new timeouts");
    let after = counts(&emulator);
    for route in [
        "policyassignments",
        "policyexemptions",
        "policydefinitions",
        "policysetdefinitions",
    ] {
        assert_eq!(
            calls(&before, &after, "PUT", route),
            0,
            "changing only timeouts writes nothing to {route}"
        );
    }
    ws.assert_empty_plan();
}
