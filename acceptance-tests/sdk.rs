//! The emulator driven by an official client, the Azure SDK for Python
//! (acceptance-tests/sdk/estate.py): Deny at a cluster PUT, DeployIfNotExists remediation at a
//! management group above two subscriptions that fails without the definition's roles and
//! succeeds once they are granted by hand, and a deployment through ARM. Needs the SDK
//! environment from `acceptance-tests/setup/install-python-sdk.sh` (skipped without it).

use std::process::Command;

use crate::harness::{repo_root, shared_specs, Emulator};

#[test]
fn python_sdk_sees_deny_remediation_roles_and_deployments_as_in_azure() {
    let python = repo_root().join(".tools/python-sdk/bin/python");
    if !python.exists() {
        eprintln!("note: .tools/python-sdk missing (acceptance-tests/setup/install-python-sdk.sh); skipped");
        return;
    }
    let Some(specs) = shared_specs() else {
        eprintln!("note: ../shared/specs not found; skipped");
        return;
    };
    let builtins = specs.join("azure-policy");
    let emulator = Emulator::start_with(&[
        "--builtins",
        builtins.to_str().expect("UTF-8 path"),
        "--subscriptions",
        "2",
    ]);
    let out = Command::new(&python)
        .arg(repo_root().join("acceptance-tests/sdk/estate.py"))
        .arg(&builtins)
        .env_clear()
        .envs(&emulator.env)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run the Python SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let seen: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON summary");
    assert_eq!(seen["deny"], "RequestDisallowedByPolicy", "{seen}");
    assert_eq!(
        seen["without_roles"],
        serde_json::json!(["AuthorizationFailed", "AuthorizationFailed"]),
        "{seen}"
    );
    assert_eq!(seen["remediated"], 2, "{seen}");
    assert!(seen["deployment_output"].is_string(), "{seen}");
}
