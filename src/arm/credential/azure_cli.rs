//! The Azure CLI's signed-in account (`az account get-access-token`), with a timeout and the
//! child killed when the caller gives up.

use super::*;

/// Runs `az account get-access-token`.
pub struct AzureCliCredential {
    program: String,
    tenant: Option<String>,
}

pub(super) const CLI_FLOW: &str = "azure cli";

impl AzureCliCredential {
    pub fn new(tenant: Option<String>) -> Self {
        AzureCliCredential {
            program: "az".into(),
            tenant,
        }
    }

    /// Uses another executable instead of `az` (tests).
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.program = program.into();
        self
    }
}

impl TokenCredential for AzureCliCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            let resource = scope.trim_end_matches(".default");
            let mut cmd = tokio::process::Command::new(&self.program);
            cmd.args([
                "account",
                "get-access-token",
                "--resource",
                resource,
                "-o",
                "json",
            ]);
            if let Some(t) = &self.tenant {
                cmd.args(["--tenant", t]);
            }
            cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
            let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
                .await
                .map_err(|_| AuthError::Transport {
                    flow: CLI_FLOW,
                    message: "az account get-access-token did not finish within 60s".into(),
                })?
                .map_err(|e| AuthError::Config {
                    flow: CLI_FLOW,
                    message: format!(
                        "could not run {:?}: {e} (install the Azure CLI or disable use_cli)",
                        self.program
                    ),
                })?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let first = stderr
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("no output");
                return Err(AuthError::Rejected {
                    flow: CLI_FLOW,
                    code: "az_failed".into(),
                    description: format!("{first} (run `az login`)"),
                });
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct CliToken {
                access_token: String,
                #[serde(default)]
                expires_on: Option<String>,
                #[serde(default, rename = "expires_on")]
                expires_on_epoch: Option<NumOrString>,
            }
            let t: CliToken =
                serde_json::from_slice(&out.stdout).map_err(|e| AuthError::Transport {
                    flow: CLI_FLOW,
                    message: format!("unexpected output from az: {e}"),
                })?;
            let expires_on = match t.expires_on_epoch.as_ref().and_then(NumOrString::as_u64) {
                Some(s) => UNIX_EPOCH + Duration::from_secs(s),
                // Old CLIs give only a local-time string; assume a short life to refresh early.
                None => {
                    let _ = t.expires_on;
                    SystemTime::now() + Duration::from_secs(6 * 60)
                }
            };
            Ok(AccessToken {
                token: t.access_token,
                expires_on,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn azure_cli_via_fake_program() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("akspolicy-az-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("az-good");
        std::fs::write(&good, "#!/bin/sh\necho '{\"accessToken\":\"cli-tok\",\"expires_on\":4102444800,\"tokenType\":\"Bearer\"}'\n").unwrap();
        let bad = dir.join("az-bad");
        std::fs::write(
            &bad,
            "#!/bin/sh\necho 'ERROR: Please run az login to setup account.' >&2\nexit 1\n",
        )
        .unwrap();
        for p in [&good, &bad] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let t = AzureCliCredential::new(None)
            .with_program(good.to_string_lossy())
            .get_token("https://management.core.windows.net/.default")
            .await
            .unwrap();
        assert_eq!(t.token, "cli-tok");
        let e = AzureCliCredential::new(None)
            .with_program(bad.to_string_lossy())
            .get_token("x/.default")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("az login"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
