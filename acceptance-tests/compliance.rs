//! `data.akspolicy_compliance`: the `trigger_scan` switch the compliance docs show for CI.

use crate::harness::{Emulator, Workspace};

/// Compliance scans started so far (POSTs to triggerEvaluation).
fn scans(emulator: &Emulator) -> u64 {
    emulator.requests("POST", None, |route| route.ends_with("/triggerevaluation"))
}

#[test]
fn trigger_scan_scans_at_every_plan_unless_a_variable_keeps_it_off() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let ws = Workspace::new(&emulator);
    // The pattern the compliance docs show for CI.
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{}}

variable "scan_compliance" {{
  type    = bool
  default = false
}}

data "akspolicy_compliance" "subscription" {{
  scope        = "/subscriptions/{sub}"
  trigger_scan = var.scan_compliance
}}

output "non_compliant_resources" {{
  value = data.akspolicy_compliance.subscription.non_compliant_resources
}}
"#
    ));
    ws.apply().assert_ok("apply without a scan");
    ws.plan();
    assert_eq!(
        scans(&emulator),
        0,
        "plans and applies without the variable scan nothing"
    );

    let scan_step = ws.terraform(&[
        "apply",
        "-refresh-only",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-var",
        "scan_compliance=true",
    ]);
    scan_step.assert_ok("separate scan step");
    assert_eq!(scans(&emulator), 1);
    // With the variable on, every plan scans again: what the docs warn about.
    ws.terraform(&[
        "plan",
        "-input=false",
        "-no-color",
        "-var",
        "scan_compliance=true",
    ])
    .assert_ok("plan with scan");
    assert_eq!(scans(&emulator), 2);
}
