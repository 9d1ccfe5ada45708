//! Every way to sign in, end to end: Terraform plans a configuration that reads ARM with the
//! client secret unset and the Azure CLI off, so only the credential under test can work. The
//! emulator's token endpoint verifies each credential as Entra ID does (see env.sh's
//! `AKSPOLICY_EMULATOR_*` identities).

use std::collections::BTreeMap;

use crate::harness::{repo_root, Emulator, TfRun, Workspace};

const LOOKUP: &str = r#"
provider "akspolicy" {}

data "akspolicy_builtin_definition" "this" {
  name = "95edb821-ddaf-4404-9732-666045e056b4"
}
output "mode" { value = data.akspolicy_builtin_definition.this.mode }
"#;

/// The emulator's environment without any secret, plus `extra`.
fn plan_with(emulator: &Emulator, extra: &[(&str, &str)]) -> TfRun {
    let mut env: BTreeMap<String, String> = emulator.env.clone();
    env.remove("ARM_CLIENT_SECRET");
    env.insert("ARM_USE_CLI".into(), "false".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let ws = Workspace::with_env(env);
    ws.write_config(LOOKUP);
    ws.plan()
}

/// The plan read the definition from ARM: only a signed-in provider gets that far.
fn assert_read_arm(run: &TfRun, how: &str) {
    assert_eq!(run.code, 2, "plan with {how} failed:\n{}", run.combined());
    assert!(
        run.stdout.contains("Microsoft.Kubernetes.Data"),
        "plan with {how} did not read the definition:\n{}",
        run.stdout
    );
}

#[test]
fn client_certificate_pfx_and_pem_sign_in_without_a_secret() {
    let emulator = Emulator::start();
    let env = &emulator.env;
    let client_id = env["AKSPOLICY_EMULATOR_CERT_CLIENT_ID"].as_str();
    let run = plan_with(
        &emulator,
        &[
            ("ARM_CLIENT_ID", client_id),
            (
                "ARM_CLIENT_CERTIFICATE_PATH",
                &env["AKSPOLICY_EMULATOR_CERT_PFX"],
            ),
            (
                "ARM_CLIENT_CERTIFICATE_PASSWORD",
                &env["AKSPOLICY_EMULATOR_CERT_PASSWORD"],
            ),
        ],
    );
    assert_read_arm(&run, "a PFX certificate");
    assert!(!run
        .combined()
        .contains(&env["AKSPOLICY_EMULATOR_CERT_PASSWORD"]));

    let run = plan_with(
        &emulator,
        &[
            ("ARM_CLIENT_ID", client_id),
            (
                "ARM_CLIENT_CERTIFICATE_PATH",
                &env["AKSPOLICY_EMULATOR_CERT_PEM"],
            ),
        ],
    );
    assert_read_arm(&run, "a PEM certificate");

    // The PFX inline, base64-encoded, as CI systems pass it.
    use base64::Engine;
    let pfx = std::fs::read(&env["AKSPOLICY_EMULATOR_CERT_PFX"]).expect("PFX");
    let inline = base64::engine::general_purpose::STANDARD.encode(pfx);
    let run = plan_with(
        &emulator,
        &[
            ("ARM_CLIENT_ID", client_id),
            ("ARM_CLIENT_CERTIFICATE", &inline),
            (
                "ARM_CLIENT_CERTIFICATE_PASSWORD",
                &env["AKSPOLICY_EMULATOR_CERT_PASSWORD"],
            ),
        ],
    );
    assert_read_arm(&run, "an inline PFX certificate");
}

#[test]
fn wrong_certificate_password_or_unregistered_certificate_is_named() {
    let emulator = Emulator::start();
    let env = &emulator.env;
    let pfx = env["AKSPOLICY_EMULATOR_CERT_PFX"].as_str();
    let run = plan_with(
        &emulator,
        &[
            ("ARM_CLIENT_ID", &env["AKSPOLICY_EMULATOR_CERT_CLIENT_ID"]),
            ("ARM_CLIENT_CERTIFICATE_PATH", pfx),
            ("ARM_CLIENT_CERTIFICATE_PASSWORD", "not-the-password-5e1"),
        ],
    );
    let text = run.assert_error_with(&[]);
    // Terraform wraps long diagnostics; compare without line breaks.
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(pfx), "the certificate is not named:\n{text}");
    assert!(flat.contains("client_certificate_password"), "{text}");
    assert!(!text.contains("not-the-password-5e1"), "{text}");

    // A certificate Entra ID does not know for this application: its AADSTS code comes through.
    let foreign = repo_root().join("src/arm/testdata/test-client-cert.pem");
    let run = plan_with(
        &emulator,
        &[
            ("ARM_CLIENT_ID", &env["AKSPOLICY_EMULATOR_CERT_CLIENT_ID"]),
            (
                "ARM_CLIENT_CERTIFICATE_PATH",
                &foreign.display().to_string(),
            ),
        ],
    );
    let text = run.assert_error_with(&[]);
    assert!(text.contains("AADSTS700027"), "{text}");
    assert!(text.contains("client certificate"), "{text}");
}

#[test]
fn oidc_token_file_signs_in_without_a_secret() {
    let emulator = Emulator::start();
    let env = &emulator.env;
    let run = plan_with(
        &emulator,
        &[
            ("ARM_USE_OIDC", "true"),
            ("ARM_CLIENT_ID", &env["AKSPOLICY_EMULATOR_OIDC_CLIENT_ID"]),
            (
                "ARM_OIDC_TOKEN_FILE_PATH",
                &env["AKSPOLICY_EMULATOR_OIDC_TOKEN_FILE"],
            ),
        ],
    );
    assert_read_arm(&run, "an OIDC token file");

    // AKS workload identity: the variables the webhook injects into the pod.
    let mut run_env = vec![
        ("ARM_USE_AKS_WORKLOAD_IDENTITY", "true"),
        ("AZURE_CLIENT_ID", &env["AKSPOLICY_EMULATOR_OIDC_CLIENT_ID"]),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            &env["AKSPOLICY_EMULATOR_OIDC_TOKEN_FILE"],
        ),
    ];
    run_env.push(("ARM_CLIENT_ID", ""));
    let run = plan_with(&emulator, &run_env);
    assert_read_arm(&run, "AKS workload identity");

    // Another application's token file is refused by the federated credential's checks.
    let run = plan_with(
        &emulator,
        &[
            ("ARM_USE_OIDC", "true"),
            ("ARM_CLIENT_ID", &env["AKSPOLICY_EMULATOR_OIDC_CLIENT_ID"]),
            (
                "ARM_OIDC_TOKEN",
                "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2V4YW1wbGUuY29tIn0.c2ln",
            ),
        ],
    );
    run.assert_error_with(&["AADSTS700211"]);
}

#[test]
fn managed_identity_signs_in_without_a_secret() {
    let emulator = Emulator::start();
    let env = &emulator.env;
    let run = plan_with(
        &emulator,
        &[
            ("ARM_USE_MSI", "true"),
            ("ARM_MSI_ENDPOINT", &env["AKSPOLICY_EMULATOR_MSI_ENDPOINT"]),
            ("ARM_CLIENT_ID", &env["AKSPOLICY_EMULATOR_MSI_CLIENT_ID"]),
        ],
    );
    assert_read_arm(&run, "a managed identity");

    // A client id the machine has no identity for.
    let run = plan_with(
        &emulator,
        &[
            ("ARM_USE_MSI", "true"),
            ("ARM_MSI_ENDPOINT", &env["AKSPOLICY_EMULATOR_MSI_ENDPOINT"]),
            ("ARM_CLIENT_ID", &env["AKSPOLICY_EMULATOR_CERT_CLIENT_ID"]),
        ],
    );
    run.assert_error_with(&["Identity not found"]);
}
