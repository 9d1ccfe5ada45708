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
