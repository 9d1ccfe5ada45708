//! Every example the docs embed is valid Terraform, and the quick start applies cleanly.

use std::path::Path;

use crate::harness::{repo_root, Emulator, Workspace};

/// Copies an example directory's .tf files into the workspace (with the provider requirement
/// the snippets leave out) and returns the combined text.
fn load_example(ws: &Workspace, dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).expect("example dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "tf") {
            let text = std::fs::read_to_string(&path).expect("read example");
            all.push_str(&text);
            all.push('\n');
        }
    }
    if all.contains("required_providers") {
        for entry in std::fs::read_dir(dir).expect("example dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "tf") {
                std::fs::copy(&path, ws.path().join(path.file_name().expect("name")))
                    .expect("copy example");
            }
        }
    } else {
        ws.write_config(&all);
    }
    all
}

fn example_dirs() -> Vec<std::path::PathBuf> {
    let root = repo_root().join("examples");
    let mut dirs = vec![root.join("provider"), root.join("quickstart")];
    for group in ["resources", "data-sources"] {
        if let Ok(entries) = std::fs::read_dir(root.join(group)) {
            for e in entries.flatten() {
                dirs.push(e.path());
            }
        }
    }
    dirs.sort();
    dirs
}

#[test]
fn every_example_validates() {
    let emulator = Emulator::start();
    for dir in example_dirs() {
        let ws = Workspace::new(&emulator);
        load_example(&ws, &dir);
        let run = ws.validate();
        assert_eq!(
            run.code,
            0,
            "{} does not validate:\n{}",
            dir.display(),
            run.combined()
        );
    }
}

#[test]
fn quickstart_applies_with_an_empty_plan_after() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    load_example(&ws, &repo_root().join("examples/quickstart"));
    ws.apply().assert_ok("apply");
    ws.assert_empty_plan();
    let out = ws.outputs();
    assert_eq!(out["version"]["value"], "9.2.0");
    assert!(out["parameters"]["value"]["effect"]["allowed_values"]
        .as_array()
        .is_some_and(|v| v.iter().any(|x| x == "Deny")));
    ws.destroy().assert_ok("destroy");
}

/// Resource types examples/modules uses; the test waits for all of them to be registered.
const MODULE_RESOURCES: [&str; 4] = [
    "akspolicy_kubernetes_definition",
    "akspolicy_initiative",
    "akspolicy_assignment",
    "akspolicy_exemption",
];

/// Copies `src` (a directory tree of small text files) into `dst`.
pub(crate) fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read example dir").flatten() {
        let path = entry.path();
        let target = dst.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy example file");
        }
    }
}

/// Creates the resource group and the clusters examples/modules/root assigns to, through ARM
/// (as `az aks create` would).
fn seed_module_clusters(emulator: &Emulator) {
    let rg = format!(
        "/subscriptions/{}/resourceGroups/aks-rg",
        emulator.subscription_id()
    );
    let put = |path: String, body: serde_json::Value| {
        let (status, resp) = emulator.arm("PUT", &path, Some(&body));
        assert!(
            (200..300).contains(&status),
            "seeding PUT {path} answered {status}: {resp}"
        );
    };
    put(
        format!("{rg}?api-version=2021-04-01"),
        serde_json::json!({"location": "westeurope"}),
    );
    for name in ["prod-weu", "prod-neu", "staging"] {
        put(
            format!(
                "{rg}/providers/Microsoft.ContainerService/managedClusters/{name}?api-version=2026-04-01"
            ),
            serde_json::json!({
                "location": "westeurope",
                "properties": {
                    "dnsPrefix": name,
                    "agentPoolProfiles": [{"name": "system", "count": 1, "vmSize": "Standard_B2s", "mode": "System"}],
                    "addonProfiles": {"azurepolicy": {"enabled": true}}
                }
            }),
        );
    }
}

#[test]
fn module_composition_applies_with_an_empty_plan_after() {
    let provider = akspolicy::resources::provider();
    let registered: Vec<&str> = provider.resources().iter().map(|r| r.type_name()).collect();
    let missing: Vec<&str> = MODULE_RESOURCES
        .into_iter()
        .filter(|name| !registered.contains(name))
        .collect();
    if !missing.is_empty() {
        // The module example is written against resources that land on other branches first.
        eprintln!("skipping: examples/modules needs {missing:?}, not registered yet");
        return;
    }

    let emulator = Emulator::start();
    seed_module_clusters(&emulator);
    let ws = Workspace::new(&emulator);
    // Keep the modules/ layout so the root's `source = "../aks-guardrails"` resolves.
    copy_tree(
        &repo_root().join("examples/modules"),
        &ws.path().join("modules"),
    );
    let chdir = "-chdir=modules/root";
    let sub_var = format!("-var=subscription_id={}", emulator.subscription_id());
    // `get` installs the local modules only; `init` would ask the registry for the provider,
    // which dev_overrides replaces.
    ws.terraform(&[chdir, "get", "-no-color"]).assert_ok("get");
    ws.terraform(&[chdir, "validate", "-no-color"])
        .assert_ok("validate");
    // The plan runs the Rego `test` blocks and shows one assignment per cluster.
    let plan = ws.terraform(&[chdir, "plan", "-input=false", "-no-color", &sub_var]);
    plan.assert_ok("plan");
    for address in [
        "module.production.akspolicy_kubernetes_definition.no_latest",
        "module.staging.akspolicy_initiative.guardrails",
        "module.production.akspolicy_assignment.cluster[",
        "module.staging.akspolicy_assignment.cluster[",
        "akspolicy_exemption.prod_weu_batch",
    ] {
        assert!(
            plan.stdout.contains(address),
            "plan does not mention {address}:\n{}",
            plan.combined()
        );
    }
    assert!(
        plan.stdout.contains("Plan: 8 to add"),
        "expected 2 definitions, 2 initiatives, 3 assignments and 1 exemption:\n{}",
        plan.stdout
    );

    let apply = [
        chdir,
        "apply",
        "-input=false",
        "-no-color",
        "-auto-approve",
        &sub_var,
    ];
    ws.terraform(&apply).assert_ok("apply");
    let replan = ws.terraform(&[
        chdir,
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
        &sub_var,
    ]);
    assert_eq!(
        replan.code,
        0,
        "plan after apply is not empty:\n{}",
        replan.combined()
    );
    let out = ws.terraform(&[chdir, "output", "-json"]);
    out.assert_ok("output");
    let outputs: serde_json::Value = serde_json::from_str(&out.stdout).expect("output JSON");
    assert_eq!(
        outputs["production_assignments"]["value"]
            .as_object()
            .map(|m| m.len()),
        Some(2),
        "{outputs}"
    );
    let destroy = [
        chdir,
        "destroy",
        "-input=false",
        "-no-color",
        "-auto-approve",
        &sub_var,
    ];
    ws.terraform(&destroy).assert_ok("destroy");
}

/// The ```terraform blocks of a markdown file.
fn terraform_snippets(markdown: &str) -> Vec<String> {
    let mut snippets = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_start() == "```terraform" => current = Some(String::new()),
            Some(_) if line.trim_start() == "```" => snippets.extend(current.take()),
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    snippets
}

#[test]
fn guide_snippets_parse_and_are_formatted() {
    // The guides are hand-written; `terraform fmt` catches syntax errors and style drift in
    // their HCL without needing a provider (they mix in azurerm resources).
    let guides = repo_root().join("docs/guides");
    let mut checked = 0;
    for entry in std::fs::read_dir(&guides).expect("docs/guides").flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read guide");
        for (i, snippet) in terraform_snippets(&text).into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = dir.path().join("snippet.tf");
            std::fs::write(&file, &snippet).expect("write snippet");
            let out = std::process::Command::new(crate::harness::terraform_binary())
                .args(["fmt", "-check", "-diff", "-no-color"])
                .arg(&file)
                .output()
                .expect("run terraform fmt");
            assert!(
                out.status.success(),
                "{} snippet #{i} is not valid, formatted HCL:\n{}{}\n{snippet}",
                path.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} snippets found in docs/guides"
    );
}

#[test]
fn snippets_are_found_in_markdown() {
    let md = "text\n```terraform\na = 1\n```\n```shell\nls\n```\n```terraform\nb = 2\n```\n";
    assert_eq!(terraform_snippets(md), vec!["a = 1\n", "b = 2\n"]);
}
