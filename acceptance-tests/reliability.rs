//! Reliability: apply/update/destroy cycles under each emulator fault profile, an interrupted
//! apply (SIGINT to Terraform), a provider killed mid-apply (SIGKILL), and a corpus of bad
//! input. After every phase Terraform's state and the emulator's resources must match exactly
//! (no orphan in Azure, no phantom in state) and a second plan must be empty. Sizes are small here so `make test` stays quick; `make soak` raises them with
//! `RELIABILITY_N` and `RELIABILITY_CYCLES`.
//!
//! Not covered: failing LROs for assignments (assignments and definitions have no
//! long-running operations; `lro_failure_rate` is still part of the chaos profile so it is
//! exercised wherever an LRO appears).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::harness::{Emulator, TfRun, Workspace};

const PRIVILEGED: &str =
    "/providers/Microsoft.Authorization/policyDefinitions/95edb821-ddaf-4404-9732-666045e056b4";
const POLICY_API: &str = "api-version=2025-03-01";
const ASSIGNMENT_SEGMENT: &str = "/providers/microsoft.authorization/policyassignments/";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How many assignments each cycle manages.
fn size() -> usize {
    env_usize("RELIABILITY_N", 20)
}

/// How many create → update → destroy cycles each profile runs.
fn cycles() -> usize {
    env_usize("RELIABILITY_CYCLES", 1)
}

/// One HTTPS client and one token for the emulator's control API and out-of-band ARM calls:
/// the throttling tests send hundreds of requests and must not pay a handshake per request.
struct Control {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl Control {
    fn new(emulator: &Emulator) -> Control {
        let ca = std::fs::read(emulator.state_dir.path().join("ca.pem")).expect("emulator ca.pem");
        let http = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        Control {
            http,
            base: emulator.env["ARM_RESOURCE_MANAGER_ENDPOINT"]
                .trim_end_matches('/')
                .to_string(),
            token: emulator.token(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Json>) -> (u16, Json) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        match req.send() {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Json::Null))
            }
            // Dropped connections are part of some profiles; the caller only counts statuses.
            Err(_) => (0, Json::Null),
        }
    }

    fn faults(&self, profile: &Json) {
        let (status, body) = self.call("POST", "/_emulator/faults", Some(profile));
        assert_eq!(status, 200, "setting faults {profile}: {body}");
    }

    /// Every fault off (the default profile).
    fn calm(&self) {
        self.faults(
            &json!({"throttle": false, "error_rate": 0.0, "drop_rate": 0.0,
            "latency_ms": 0, "response_delay_ms": 0, "consistency_ms": 0, "lro_failure_rate": 0.0,
            "token_lifetime_s": 3600}),
        );
    }

    /// Lower-cased ids of every policy assignment the emulator holds.
    fn assignment_ids(&self) -> BTreeSet<String> {
        let (status, body) = self.call("GET", "/_emulator/state", None);
        assert_eq!(status, 200, "emulator state: {body}");
        body["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str())
            .map(str::to_ascii_lowercase)
            .filter(|id| id.contains(ASSIGNMENT_SEGMENT))
            .collect()
    }

    /// (method, status) → count for routes that end in a policy assignment.
    fn assignment_requests(&self) -> Vec<(String, u16, u64)> {
        let (status, body) = self.call("GET", "/_emulator/metrics", None);
        assert_eq!(status, 200, "emulator metrics: {body}");
        body["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["route"].as_str().is_some_and(|route| {
                    route.ends_with("/providers/microsoft.authorization/policyassignments/{}")
                })
            })
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or_default().to_string(),
                    r["status"].as_u64().unwrap_or_default() as u16,
                    r["count"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Empties the subscription's ARM bucket of `method` requests (until ARM answers 429), so
    /// even a small apply meets a 429 storm.
    fn drain(&self, sub: &str, method: &str) {
        let path = format!(
            "/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments/drain-bucket?{POLICY_API}"
        );
        for _ in 0..1000 {
            let (status, _) = self.call(method, &path, None);
            if status == 429 {
                return;
            }
        }
        panic!("{method} bucket never ran dry");
    }
}

/// N assignments at subscription scope; `version` changes every display name (an update in
/// place of every resource).
fn config(sub: &str, n: usize, version: usize) -> String {
    format!(
        r#"
provider "akspolicy" {{}}

resource "akspolicy_assignment" "a" {{
  count                = {n}
  name                 = "rel-${{count.index}}"
  scope                = "/subscriptions/{sub}"
  policy_definition_id = "{PRIVILEGED}"
  display_name         = "reliability ${{count.index}} v{version}"
  parameters           = {{ effect = "Audit" }}
}}
"#
    )
}

/// Lower-cased ids of the assignments in Terraform's state (`terraform show -json`).
fn state_ids(ws: &Workspace) -> BTreeSet<String> {
    ws.state_resources()
        .iter()
        .filter(|r| r["type"] == "akspolicy_assignment")
        .filter_map(|r| r["values"]["id"].as_str())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn assert_no_crash(run: &TfRun, what: &str) {
    let out = run.combined();
    for sign in [
        "plugin crashed",
        "panicked",
        "Plugin did not respond",
        "stack backtrace",
    ] {
        assert!(
            !out.contains(sign),
            "{what}: the provider crashed ({sign}):\n{out}"
        );
    }
}

/// Runs `args` until Terraform succeeds (a user re-running a failed apply under a flaky
/// network), at most `attempts` times. Returns how many runs it took.
fn until_ok(ws: &Workspace, args: &[&str], attempts: usize, what: &str) -> usize {
    let mut last = None;
    for attempt in 1..=attempts {
        let run = ws.terraform(args);
        assert_no_crash(&run, what);
        if run.code == 0 {
            return attempt;
        }
        last = Some(run);
    }
    let run = last.expect("at least one attempt ran");
    panic!(
        "{what} did not succeed in {attempts} runs; last:\n{}",
        run.combined()
    );
}

/// With faults off: state and emulator hold exactly the same `expected` assignments, and a
/// plan is empty.
fn assert_consistent(ctl: &Control, ws: &Workspace, expected: usize, what: &str) {
    ctl.calm();
    let in_state = state_ids(ws);
    let in_azure = ctl.assignment_ids();
    let orphans: Vec<_> = in_azure.difference(&in_state).collect();
    let phantoms: Vec<_> = in_state.difference(&in_azure).collect();
    assert!(
        orphans.is_empty() && phantoms.is_empty(),
        "{what}: orphans in Azure {orphans:?}, phantoms in state {phantoms:?}"
    );
    assert_eq!(in_state.len(), expected, "{what}: resources in state");
    ws.assert_empty_plan();
}

const APPLY: &[&str] = &["apply", "-input=false", "-no-color", "-auto-approve"];
const DESTROY: &[&str] = &["destroy", "-input=false", "-no-color", "-auto-approve"];

/// Create → update → destroy under `profile`, checking consistency after each phase.
/// `before_phase` runs right before each Terraform phase (to drain buckets). Returns the
/// emulator's request metrics of the whole run.
fn cycle_under(profile: Json, before_phase: &dyn Fn(&Control, &str, &str)) -> Json {
    let emulator = Emulator::start();
    let ctl = Control::new(&emulator);
    let sub = emulator.subscription_id();
    let ws = Workspace::new(&emulator);
    let n = size();
    let attempts = 5;
    for c in 0..cycles() {
        for (phase, version) in [("create", 2 * c), ("update", 2 * c + 1)] {
            ws.write_config(&config(&sub, n, version));
            ctl.faults(&profile);
            before_phase(&ctl, &sub, phase);
            let runs = until_ok(&ws, APPLY, attempts, phase);
            log_runs(&profile, phase, runs);
            assert_consistent(&ctl, &ws, n, &format!("{profile} cycle {c} {phase}"));
        }
        ctl.faults(&profile);
        before_phase(&ctl, &sub, "destroy");
        let runs = until_ok(&ws, DESTROY, attempts, "destroy");
        log_runs(&profile, "destroy", runs);
        ctl.calm();
        assert!(state_ids(&ws).is_empty(), "{profile}: state after destroy");
        assert!(
            ctl.assignment_ids().is_empty(),
            "{profile}: orphans after destroy: {:?}",
            ctl.assignment_ids()
        );
    }
    ctl.call("GET", "/_emulator/metrics", None).1
}

/// Requests in `metrics` whose route contains `route_part` and whose status is `status`.
fn count_requests(metrics: &Json, route_part: &str, status: u16) -> u64 {
    metrics["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["route"].as_str().is_some_and(|t| t.contains(route_part)))
        .filter(|r| r["status"] == status)
        .filter_map(|r| r["count"].as_u64())
        .sum()
}

fn log_runs(profile: &Json, phase: &str, runs: usize) {
    if runs > 1 {
        eprintln!("reliability {profile}: {phase} needed {runs} terraform runs");
    }
}

fn no_setup(_: &Control, _: &str, _: &str) {}

#[test]
fn random_server_errors() {
    cycle_under(json!({"error_rate": 0.15}), &no_setup);
}

#[test]
fn dropped_connections() {
    cycle_under(json!({"drop_rate": 0.1}), &no_setup);
}

#[test]
fn tokens_expiring_mid_run() {
    // Tokens live 4 s and the provider renews them after 2 s. Every ARM request takes 1.8 s
    // to reach ARM's token check, so a request sent with a 1.8 s old token (still fresh to the
    // provider) meets ARM when the token has expired: ARM answers 401
    // ExpiredAuthenticationToken and the provider must renew the token and repeat the call.
    let metrics = cycle_under(
        json!({"token_lifetime_s": 4, "latency_ms": 1800}),
        &no_setup,
    );
    let tokens = count_requests(&metrics, "oauth2", 200);
    let expired = count_requests(&metrics, "/subscriptions/", 401);
    eprintln!("token expiry: {tokens} tokens issued, {expired} requests met an expired token");
    assert!(
        tokens >= 3,
        "the provider kept one token for the whole run ({tokens} issued)"
    );
    assert!(
        expired > 0,
        "no request met an expired token: the test proved nothing"
    );
}

#[test]
fn throttling_storm() {
    // Start every phase with the relevant ARM bucket empty: the provider meets 429s at once
    // and must pace itself to the refill instead of failing.
    cycle_under(json!({"throttle": true}), &|ctl, sub, phase| {
        ctl.drain(sub, "GET");
        ctl.drain(
            sub,
            if phase == "destroy" {
                "DELETE"
            } else {
                "PATCH"
            },
        );
    });
}

#[test]
fn eventual_consistency_window() {
    cycle_under(json!({"consistency_ms": 1500}), &no_setup);
}

#[test]
fn everything_at_once() {
    cycle_under(
        json!({"error_rate": 0.05, "drop_rate": 0.05, "consistency_ms": 500, "latency_ms": 20,
               "lro_failure_rate": 0.5}),
        &no_setup,
    );
}

/// Waits for `child` at most `limit`; kills it and fails the test when it hangs.
fn wait_bounded(mut child: std::process::Child, limit: Duration, what: &str) -> TfRun {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > limit => {
                // Kill the provider too: it holds Terraform's output pipes open.
                for pid in children_of(child.id()) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect output");
                panic!(
                    "{what} hung for {limit:?}:\n{}",
                    TfRun::from(out).combined()
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{what}: waiting failed: {e}"),
        }
    }
    TfRun::from(child.wait_with_output().expect("collect output"))
}

/// Process ids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .and_then(|p| p.trim().parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// Starts an apply with every ARM request slowed down by `latency_ms` (so it is still running
/// when the test interferes) and returns once Azure holds `created` assignments.
fn slow_apply_until(
    ctl: &Control,
    ws: &Workspace,
    apply: &[&str],
    latency_ms: u64,
    created: usize,
) -> std::process::Child {
    ctl.faults(&json!({ "latency_ms": latency_ms }));
    let child = ws
        .command(apply)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start terraform apply");
    let started = Instant::now();
    while ctl.assignment_ids().len() < created {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the apply created fewer than {created} assignments in a minute"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Successful assignment PUTs so far: (created, all).
fn assignment_puts(ctl: &Control) -> (u64, u64) {
    let requests = ctl.assignment_requests();
    let count = |ok: &dyn Fn(u16) -> bool| -> u64 {
        requests
            .iter()
            .filter(|(m, s, _)| m == "PUT" && ok(*s))
            .map(|(_, _, c)| c)
            .sum()
    };
    (count(&|s| s == 201), count(&|s| (200..300).contains(&s)))
}

#[test]
fn interrupted_apply_saves_state_and_converges() {
    let emulator = Emulator::start();
    let ctl = Control::new(&emulator);
    let sub = emulator.subscription_id();
    let ws = Workspace::new(&emulator);
    let n = size();
    ws.write_config(&config(&sub, n, 0));
    // Two at a time, each create a PUT and a read of 300 ms: once two exist, the rest need
    // seconds, so the interrupt lands mid-apply even on a loaded machine. With Terraform's
    // default of ten, the second wave could start before the signal and finish regardless.
    let apply: Vec<&str> = APPLY.iter().copied().chain(["-parallelism=2"]).collect();
    let child = slow_apply_until(&ctl, &ws, &apply, 300, 2);
    // What a user's Ctrl-C does: Terraform asks the provider to stop (Stop RPC), lets the
    // running operations finish and saves the state.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("send SIGINT");
    assert!(status.success());
    let run = wait_bounded(child, Duration::from_secs(120), "interrupted apply");
    assert_no_crash(&run, "interrupted apply");
    ctl.calm();
    let in_state = state_ids(&ws);
    let in_azure = ctl.assignment_ids();
    assert_eq!(
        in_state,
        in_azure,
        "after the interrupt, state and Azure differ:\n{}",
        run.combined()
    );
    assert!(
        in_state.len() < n || run.code == 0,
        "the interrupt arrived after the apply finished"
    );
    ws.apply().assert_ok("apply after the interrupt");
    assert_consistent(&ctl, &ws, n, "after the interrupt");
    let (created, puts) = assignment_puts(&ctl);
    assert_eq!(puts, n as u64, "every assignment is written exactly once");
    assert!(
        created <= n as u64,
        "{created} creations for {n} assignments"
    );
}

/// One bad configuration: Terraform must answer with an error diagnostic, promptly.
struct BadInput {
    name: &'static str,
    body: String,
}

fn bad_inputs(sub: &str, big_template: &str) -> Vec<BadInput> {
    let scope = format!("/subscriptions/{sub}");
    let assignment = |name: &'static str, attrs: &str| BadInput {
        name,
        body: format!(
            "resource \"akspolicy_assignment\" \"bad\" {{\n  scope = \"{scope}\"\n{attrs}\n}}\n"
        ),
    };
    let definition = |name: &'static str, attrs: &str| BadInput {
        name,
        body: format!("resource \"akspolicy_definition\" \"bad\" {{\n{attrs}\n}}\n"),
    };
    let k8s = |name: &'static str, attrs: &str| {
        BadInput {
        name,
        body: format!(
            "resource \"akspolicy_kubernetes_definition\" \"bad\" {{\n  name = \"bad-k8s\"\n{attrs}\n}}\n"
        ),
    }
    };
    let template = |rego: &str| {
        format!(
            "  template {{\n    kind = \"K8sBad\"\n    rego = <<-REGO\n{rego}\n    REGO\n  }}\n  match {{\n    api_groups = [\"\"]\n    kinds = [\"Pod\"]\n  }}"
        )
    };
    vec![
        assignment(
            "assignment name with forbidden characters",
            &format!("  name = \"bad/name?*\"\n  policy_definition_id = \"{PRIVILEGED}\""),
        ),
        assignment(
            "definition id that is not an ARM id",
            "  name = \"bad-id\"\n  policy_definition_id = \"not-an-arm-id\"",
        ),
        assignment(
            "definition id of the wrong type",
            &format!("  name = \"wrong-type\"\n  policy_definition_id = \"{scope}/resourceGroups/rg\""),
        ),
        // Not here: a definition id that does not exist. Creation then waits up to three
        // minutes for the definition to propagate (by design: it may have just been created),
        // which is too slow for `make test`.
        assignment(
            "parameter of the wrong type (number for a string)",
            &format!("  name = \"p-number\"\n  policy_definition_id = \"{PRIVILEGED}\"\n  parameters = {{ effect = 42 }}"),
        ),
        assignment(
            "parameter outside allowed values",
            &format!("  name = \"p-allowed\"\n  policy_definition_id = \"{PRIVILEGED}\"\n  parameters = {{ effect = \"Explode\" }}"),
        ),
        assignment(
            "parameter of the wrong type (string for an array)",
            &format!("  name = \"p-array\"\n  policy_definition_id = \"{PRIVILEGED}\"\n  parameters = {{ excludedNamespaces = \"kube-system\" }}"),
        ),
        assignment(
            "parameter of the wrong type (object for an array)",
            &format!("  name = \"p-object\"\n  policy_definition_id = \"{PRIVILEGED}\"\n  parameters = {{ excludedNamespaces = {{ a = 1 }} }}"),
        ),
        assignment(
            "parameter the definition does not declare",
            &format!("  name = \"p-unknown\"\n  policy_definition_id = \"{PRIVILEGED}\"\n  parameters = {{ nope = true }}"),
        ),
        assignment(
            "malformed metadata JSON",
            &format!("  name = \"bad-meta\"\n  policy_definition_id = \"{PRIVILEGED}\"\n  metadata = \"{{not json\""),
        ),
        BadInput {
            name: "scope with unicode and no subscription",
            body: format!(
                "resource \"akspolicy_assignment\" \"bad\" {{\n  name = \"ünïcødé-🚀\"\n  scope = \"/subscriptions/ünïcødé-🚀\"\n  policy_definition_id = \"{PRIVILEGED}\"\n}}\n"
            ),
        },
        definition(
            "policy rule that is not JSON",
            "  name = \"bad-rule\"\n  mode = \"Indexed\"\n  policy_rule = \"{ if: nope\"",
        ),
        definition(
            "parameter declaration of an unknown type",
            "  name = \"bad-params\"\n  mode = \"Indexed\"\n  parameters = jsonencode({ effect = { type = \"Banana\" } })\n  policy_rule = jsonencode({ if = { field = \"type\", equals = \"x\" }, then = { effect = \"audit\" } })",
        ),
        definition(
            "unicode definition name with a slash",
            "  name = \"дефиниция/🚀\"\n  mode = \"Indexed\"\n  policy_rule = jsonencode({ if = { field = \"type\", equals = \"x\" }, then = { effect = \"audit\" } })",
        ),
        k8s(
            "invalid Rego",
            &template("      package k8sbad\n      violation[{\"msg\": msg}] {\n        msg := \n      }"),
        ),
        k8s(
            "Rego without a violation rule",
            &template("      package k8sbad\n      allow { true }"),
        ),
        k8s(
            "constraint template that is not YAML",
            "  constraint_template = \"kind: [unclosed\\n  - : : :\"",
        ),
        k8s(
            "constraint template YAML of the wrong shape",
            "  constraint_template = \"apiVersion: v1\\nkind: Pod\\nmetadata:\\n  name: x\\n\"",
        ),
        BadInput {
            name: "a 10 MB constraint template",
            body: format!(
                "resource \"akspolicy_kubernetes_definition\" \"bad\" {{\n  name = \"huge\"\n  constraint_template = file(\"{big_template}\")\n}}\n"
            ),
        },
    ]
}

/// A syntactically valid ConstraintTemplate of about 10 MB (an enormous Rego comment).
fn write_big_template(dir: &std::path::Path) -> String {
    let path = dir.join("big-template.yaml");
    let mut text = String::from(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8shuge\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sHuge\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n        package k8shuge\n",
    );
    let line = format!("        # {}\n", "x".repeat(100));
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&line);
    }
    text.push_str("        violation[{\"msg\": \"no\"}] { false }\n");
    std::fs::write(&path, text).expect("write the big template");
    path.display().to_string()
}

#[test]
fn bad_input_gets_a_diagnostic_never_a_crash() {
    let emulator = Emulator::start();
    let sub = emulator.subscription_id();
    let ws = Workspace::new(&emulator);
    let big = write_big_template(ws.path());
    let mut failures = Vec::new();
    for case in bad_inputs(&sub, &big) {
        ws.write_config(&format!("provider \"akspolicy\" {{}}\n\n{}", case.body));
        let child = ws
            .command(APPLY)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start terraform apply");
        let run = wait_bounded(child, Duration::from_secs(90), case.name);
        assert_no_crash(&run, case.name);
        let out = run.combined();
        if run.code == 0 || !out.contains("Error:") {
            failures.push(format!(
                "{}: exit {} without an error diagnostic:\n{out}",
                case.name, run.code
            ));
            // Leave nothing behind for the next case.
            let _ = ws.destroy();
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The provider processes among Terraform's descendants. Terraform runs itself twice (a
/// crash-reporting parent and the real process), so the providers are grandchildren; they are
/// told apart by their executable, as Terraform's own process is named `terraform` too.
fn provider_pids(terraform: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![terraform];
    while let Some(pid) = queue.pop() {
        for child in children_of(pid) {
            let exe = std::fs::read_link(format!("/proc/{child}/exe")).unwrap_or_default();
            if exe.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .starts_with("terraform-provider-akspolicy")
            }) {
                found.push(child);
            } else {
                queue.push(child);
            }
        }
    }
    found
}

#[test]
fn killed_provider_loses_nothing_and_reapply_converges() {
    let emulator = Emulator::start();
    let ctl = Control::new(&emulator);
    let sub = emulator.subscription_id();
    let ws = Workspace::new(&emulator);
    // ARM answers every request a second after it took effect, so creates finish in waves of
    // Terraform's parallelism (10): the first wave is in state when the second wave's PUTs have
    // created their assignments in Azure, and the kill lands before their answers arrive.
    let n = size();
    ws.write_config(&config(&sub, n, 0));
    ctl.faults(&json!({"response_delay_ms": 1000}));
    let child = slow_apply_until(&ctl, &ws, APPLY, 0, 12.min(n));
    // An OOM kill or a crash: the provider gets no chance to finish its calls or say goodbye.
    let pids = provider_pids(child.id());
    assert!(
        !pids.is_empty(),
        "no provider process under terraform: {:?}",
        children_of(child.id())
            .iter()
            .map(|p| (
                p,
                std::fs::read_link(format!("/proc/{p}/exe")),
                children_of(*p)
            ))
            .collect::<Vec<_>>()
    );
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let run = wait_bounded(
        child,
        Duration::from_secs(120),
        "apply with a killed provider",
    );
    assert_ne!(run.code, 0, "the apply cannot succeed without its provider");
    ctl.calm();

    // What finished before the kill is in state; what was in flight may exist only in Azure.
    let in_state = state_ids(&ws);
    let in_azure = ctl.assignment_ids();
    let phantoms: Vec<_> = in_state.difference(&in_azure).collect();
    assert!(phantoms.is_empty(), "phantoms in state: {phantoms:?}");
    let orphans: Vec<String> = in_azure.difference(&in_state).cloned().collect();
    eprintln!(
        "killed provider: {} assignments in state, {} only in Azure",
        in_state.len(),
        orphans.len()
    );
    assert!(
        !orphans.is_empty(),
        "the kill left no orphan behind, so the recovery went untested:\n{}",
        run.combined()
    );

    // Re-applying must not silently take over or re-create the orphans: each gets a
    // diagnostic with the import command that brings it under management.
    let reapply = ws.terraform(APPLY);
    assert_no_crash(&reapply, "re-apply after the kill");
    let out = reapply.combined();
    assert_ne!(reapply.code, 0, "{out}");
    for id in &orphans {
        let name = id.rsplit('/').next().unwrap_or_default();
        assert!(
            out.contains(&format!("named \"{name}\" already exists")),
            "no diagnostic for orphan {name}:\n{out}"
        );
        assert!(out.contains("terraform import"), "{out}");
        let index = name.trim_start_matches("rel-");
        let azure_id = format!(
            "/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments/{name}"
        );
        ws.terraform(&[
            "import",
            "-input=false",
            "-no-color",
            &format!("akspolicy_assignment.a[{index}]"),
            &azure_id,
        ])
        .assert_ok("import an orphan");
    }
    ws.apply().assert_ok("apply after importing the orphans");
    assert_consistent(&ctl, &ws, n, "after the kill");
    let (created, _) = assignment_puts(&ctl);
    assert_eq!(
        created, n as u64,
        "every assignment is created exactly once"
    );
}

/// The emulator process's resident memory in KiB (Linux `/proc`).
fn resident_kib(pid: u64) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A TLS client for raw requests that trusts only the emulator's CA.
fn raw_tls_config(emulator: &Emulator) -> std::sync::Arc<rustls::ClientConfig> {
    let ca = std::fs::read(emulator.state_dir.path().join("ca.pem")).expect("emulator ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    std::sync::Arc::new(config)
}

type RawTls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// Opens a TLS connection to the emulator and sends `head` (an incomplete request).
fn half_sent(
    config: &std::sync::Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    head: &str,
) -> RawTls {
    use std::io::Write;
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("TLS client");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(head.as_bytes()).expect("send half a request");
    tls.flush().expect("flush");
    tls
}

/// True once the server has closed the connection (EOF, reset, or a final response).
fn closed_by_server(tls: &mut RawTls) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    tls.sock
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("read timeout");
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Clients without a token must not be able to exhaust the emulator (it may listen where
/// others reach it). Loopback only, bounded: 40 anonymous 8 MiB bodies at once raise its
/// memory by less than 64 MB; under 300 half-sent requests a legitimate request is still
/// answered within 3 s; the half-sent ones are closed within 40 s (the read timeout is
/// lowered so the test does not wait for the 20 s default). Bodies over ARM's 4 MB get 413.
#[test]
fn unauthenticated_pressure_is_bounded() {
    const BODY: usize = 8 * 1024 * 1024;
    let emulator = Emulator::start_with(&["--read-timeout-s", "3", "--idle-timeout-s", "5"]);
    let pid = emulator.info["pid"].as_u64().expect("pid");
    let ctl = Control::new(&emulator);
    let sub = emulator.subscription_id();
    let rg_path = format!("/subscriptions/{sub}/resourcegroups/pressure?api-version=2021-04-01");
    assert_eq!(ctl.call("GET", &rg_path, None).0, 404, "warm-up");
    let base = ctl.base.clone();
    let addr: std::net::SocketAddr = base
        .trim_start_matches("https://")
        .parse()
        .expect("emulator listens on an IP address");
    assert!(addr.ip().is_loopback(), "this test stays on loopback");

    // 1. Memory: 40 anonymous 8 MiB bodies at once.
    let before = resident_kib(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(resident_kib(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let body: &'static [u8] = Box::leak(vec![b'x'; BODY].into_boxed_slice());
    let ca = std::fs::read(emulator.state_dir.path().join("ca.pem")).expect("ca.pem");
    let senders: Vec<_> = (0..40)
        .map(|i| {
            let url =
                format!("{base}/subscriptions/{sub}/resourcegroups/anon{i}?api-version=2021-04-01");
            let ca = ca.clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                // A refusal may arrive as 401 or as a connection closed mid-upload.
                match http.put(url).body(body).send() {
                    Ok(resp) => Some(resp.status().as_u16()),
                    Err(_) => None,
                }
            })
        })
        .collect();
    let statuses: Vec<Option<u16>> = senders
        .into_iter()
        .map(|t| t.join().expect("sender"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().expect("sampler");
    let growth_mb = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before)
        / 1024;
    eprintln!("anonymous 8 MiB bodies: statuses {statuses:?}; memory growth {growth_mb} MB");
    assert!(
        statuses.iter().all(|s| matches!(s, None | Some(401))),
        "anonymous writes must be refused: {statuses:?}"
    );
    assert!(growth_mb < 64, "memory grew by {growth_mb} MB");

    // 2. Bodies over ARM's 4 MB limit are refused with ARM's error, even with a token.
    let big = json!({"location": "westeurope", "tags": {"pad": "y".repeat(4 * 1024 * 1024)}});
    let (status, err) = ctl.call("PUT", &rg_path, Some(&big));
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["error"]["code"], "RequestContentTooLarge", "{err}");

    // 3. 300 half-sent requests: headers cut short, and (with a token) bodies cut short.
    let tls = raw_tls_config(&emulator);
    let host = addr.to_string();
    let mut held: Vec<RawTls> = (0..300)
        .map(|i| {
            let head = if i % 2 == 0 {
                format!("PUT /subscriptions/{sub}/resourcegroups/slow{i}?api-version=2021-04-01 HTTP/1.1\r\nHost: {host}\r\nContent-Le")
            } else {
                format!(
                    "PUT /subscriptions/{sub}/resourcegroups/slow{i}?api-version=2021-04-01 HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"location\":",
                    ctl.token
                )
            };
            half_sent(&tls, addr, &head)
        })
        .collect();
    let sent = Instant::now();
    // A new client, so the answer needs a new connection and TLS handshake.
    let fresh = Control::new(&emulator);
    let started = Instant::now();
    let (status, _) = fresh.call("GET", &rg_path, None);
    let answered = started.elapsed();
    assert_eq!(status, 404);
    assert!(
        answered < Duration::from_secs(3),
        "a legitimate request took {answered:?} under 300 half-sent requests"
    );
    while !held.is_empty() && sent.elapsed() < Duration::from_secs(40) {
        held.retain_mut(|c| !closed_by_server(c));
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "legitimate request answered in {answered:?}; half-sent requests closed after {:?}",
        sent.elapsed()
    );
    assert!(
        held.is_empty(),
        "{} half-sent requests still open after 40 s",
        held.len()
    );
    assert_eq!(ctl.call("GET", &rg_path, None).0, 404, "still serving");
    emulator.stop();
}

/// CPU time (user + system) the process has used, in clock ticks.
fn cpu_ticks(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Out of file descriptors, the emulator neither dies nor spins: it backs off, and serves
/// again once descriptors are free. Loopback only; `prlimit` lowers its descriptor limit.
#[test]
fn accept_loop_backs_off_when_out_of_file_descriptors() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("note: prlimit not available; skipped");
        return;
    }
    let emulator = Emulator::start();
    let pid = emulator.info["pid"].as_u64().expect("pid");
    let ctl = Control::new(&emulator);
    let sub = emulator.subscription_id();
    let path = format!("/subscriptions/{sub}/resourcegroups/fd?api-version=2021-04-01");
    assert_eq!(ctl.call("GET", &path, None).0, 404, "warm-up");
    let addr: std::net::SocketAddr = ctl
        .base
        .trim_start_matches("https://")
        .parse()
        .expect("address");
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .expect("fd count");
    let limit = open_fds + 8;
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("prlimit");
    assert!(status.success());

    let held: Vec<std::net::TcpStream> = (0..40)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    let ticks_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(pid).saturating_sub(ticks_before);
    // Clock ticks are usually 100 per second; a spinning accept loop would use ~200 here.
    assert!(
        spent < 50,
        "the emulator used {spent} ticks while out of descriptors"
    );
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the emulator must survive running out of descriptors"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The idle timeout frees the descriptors of connections that never spoke TLS.
        if ctl.call("GET", &path, None).0 == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not serving again after descriptors were freed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    emulator.stop();
}

/// Parked connections cannot lock legitimate clients out: with every connection slot held by
/// idle TLS connections (idle timeout far away), a new client is still answered within 3 s
/// because the idlest connection is closed to make room. Loopback only.
#[test]
fn idle_connections_at_the_cap_make_room() {
    const CAP: usize = 30;
    let emulator = Emulator::start_with(&[
        "--max-connections",
        &CAP.to_string(),
        "--idle-timeout-s",
        "600",
        "--read-timeout-s",
        "600",
    ]);
    let ctl = Control::new(&emulator);
    let sub = emulator.subscription_id();
    let path = format!("/subscriptions/{sub}/resourcegroups/cap?api-version=2021-04-01");
    let addr: std::net::SocketAddr = ctl
        .base
        .trim_start_matches("https://")
        .parse()
        .expect("address");
    let tls = raw_tls_config(&emulator);
    // Completed handshakes that then say nothing, as a client pool or an attacker leaves them.
    let mut parked: Vec<RawTls> = (0..CAP * 2)
        .map(|_| {
            let mut c = half_sent(&tls, addr, "");
            // Drive the handshake to completion without sending a request.
            while c.conn.is_handshaking() {
                if c.conn.complete_io(&mut c.sock).is_err() {
                    break;
                }
            }
            c
        })
        .collect();
    let fresh = Control::new(&emulator);
    let started = Instant::now();
    let (status, _) = fresh.call("GET", &path, None);
    let answered = started.elapsed();
    assert_eq!(status, 404);
    assert!(
        answered < Duration::from_secs(3),
        "with {CAP} idle connections a new client waited {answered:?}"
    );
    parked.retain_mut(|c| !closed_by_server(c));
    eprintln!(
        "answered in {answered:?}; {} of {} parked connections still open",
        parked.len(),
        CAP * 2
    );
    assert!(parked.len() < CAP, "the cap holds");
    emulator.stop();
}
