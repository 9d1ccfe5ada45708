//! The provider block: schema, authentication against the emulator, and its errors.

use crate::harness::{Emulator, Workspace, PROVIDER_SOURCE};

const LOOKUP: &str = r#"
data "akspolicy_builtin_definition" "this" {
  name = "95edb821-ddaf-4404-9732-666045e056b4"
}
output "mode" { value = data.akspolicy_builtin_definition.this.mode }
"#;

#[test]
fn providers_schema_json_describes_everything() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config("provider \"akspolicy\" {}\n");
    let run = ws.terraform(&["providers", "schema", "-json"]);
    run.assert_ok("providers schema");
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let ours = &schema["provider_schemas"][format!("registry.terraform.io/{PROVIDER_SOURCE}")];
    let provider_attrs = &ours["provider"]["block"]["attributes"];
    assert_eq!(provider_attrs["client_secret"]["sensitive"], true);
    assert_eq!(provider_attrs["subscription_id"]["optional"], true);
    assert!(provider_attrs["resource_manager_endpoint"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("ARM_RESOURCE_MANAGER_ENDPOINT")));
    let ds = &ours["data_source_schemas"]["akspolicy_builtin_definition"]["block"]["attributes"];
    assert_eq!(ds["display_name"]["optional"], true);
    assert_eq!(ds["policy_rule"]["computed"], true);
    assert_eq!(
        ds["versions"]["type"],
        serde_json::json!(["list", "string"])
    );
}

#[test]
fn provider_block_with_client_secret_and_custom_endpoints() {
    let emulator = Emulator::start();
    let env = &emulator.env;
    // Only the CA trust comes from the environment; everything else is in the block.
    let mut ws = Workspace::with_env(Default::default());
    ws.set_env("SSL_CERT_FILE", &env["SSL_CERT_FILE"]);
    ws.write_config(&format!(
        r#"
provider "akspolicy" {{
  environment               = "custom"
  resource_manager_endpoint = "{}"
  authority_host            = "{}"
  tenant_id                 = "{}"
  subscription_id           = "{}"
  client_id                 = "{}"
  client_secret             = "{}"
  use_cli                   = false
}}
{LOOKUP}"#,
        env["ARM_RESOURCE_MANAGER_ENDPOINT"],
        env["ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST"],
        env["ARM_TENANT_ID"],
        env["ARM_SUBSCRIPTION_ID"],
        env["ARM_CLIENT_ID"],
        env["ARM_CLIENT_SECRET"],
    ));
    ws.apply().assert_ok("apply");
    assert_eq!(ws.output("mode"), "Microsoft.Kubernetes.Data");
    ws.assert_empty_plan();
}

#[test]
fn wrong_client_secret_is_a_clear_auth_error_without_secrets() {
    let emulator = Emulator::start();
    let mut ws = Workspace::new(&emulator);
    let wrong = "definitely-not-the-secret-7f3a";
    ws.set_env("ARM_CLIENT_SECRET", wrong);
    ws.set_env("ARM_USE_CLI", "false");
    ws.write_config(&format!("provider \"akspolicy\" {{}}\n{LOOKUP}"));
    let run = ws.plan();
    let text = run.assert_error_with(&[]);
    assert!(
        text.contains("AADSTS7000215") || text.contains("invalid_client"),
        "{text}"
    );
    assert!(
        !text.contains(wrong),
        "the wrong secret leaked into the output:\n{text}"
    );
    assert!(
        !text.contains(&emulator.env["ARM_CLIENT_SECRET"]),
        "the real secret leaked:\n{text}"
    );
    assert!(
        !text.contains("eyJ"),
        "a token leaked into the output:\n{text}"
    );
}

#[test]
fn custom_environment_without_endpoints_names_the_missing_setting() {
    let emulator = Emulator::start();
    let mut ws = Workspace::new(&emulator);
    // Empty counts as unset, like azurerm; metadata_host would otherwise describe the cloud.
    ws.set_env("ARM_RESOURCE_MANAGER_ENDPOINT", "");
    ws.set_env("ARM_METADATA_HOSTNAME", "");
    ws.write_config(&format!("provider \"akspolicy\" {{}}\n{LOOKUP}"));
    let run = ws.plan();
    run.assert_error_with(&["resource_manager_endpoint"]);
}

#[test]
fn debug_logs_reach_terraform_without_secrets_or_tokens() {
    let emulator = Emulator::start();
    let mut ws = Workspace::new(&emulator);
    ws.set_env("TF_LOG", "DEBUG");
    ws.write_config(&format!("provider \"akspolicy\" {{}}\n{LOOKUP}"));
    let run = ws.plan();
    assert_eq!(run.code, 2, "{}", run.combined());
    let log = run.combined();
    // Terraform relabels every stderr line of the plugin with the plugin's name.
    assert!(
        log.contains("provider.terraform-provider-akspolicy"),
        "provider logs missing from TF_LOG output"
    );
    assert!(
        log.contains("policyDefinitions"),
        "no ARM request was logged:\n{log}"
    );
    assert!(
        !log.contains(&emulator.env["ARM_CLIENT_SECRET"]),
        "client secret in the log"
    );
    assert!(!log.contains("eyJ"), "a bearer token (JWT) is in the log");
}
