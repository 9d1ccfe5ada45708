//! The Azure CLI's signed-in account: azure_identity's `AzureCliCredential` (it runs
//! `az account get-access-token --scope ...` through `/bin/sh`) with our executor, which gives
//! up after a timeout and kills the child when the caller gives up.

use super::*;
use std::ffi::{OsStr, OsString};

/// Runs `az account get-access-token`.
pub struct AzureCliCredential {
    tenant: Option<String>,
    executor: Arc<BoundedExecutor>,
}

pub(super) const CLI_FLOW: &str = "azure cli";

/// How long `az` may take (it may refresh its own tokens over the network).
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// azure_identity's `Executor` with a timeout; `kill_on_drop` ends the child when the timeout
/// or the caller drops the future.
#[derive(Debug)]
struct BoundedExecutor {
    /// Directory searched for `az` before `PATH` (tests).
    search_first: Option<OsString>,
    timeout: Duration,
}

#[async_trait]
impl azure_identity::Executor for BoundedExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<std::process::Output> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // azure_identity runs `az` through `sh -c`: killing the shell alone would leave `az`
        // (and what it started) running, so the child leads its own process group.
        #[cfg(unix)]
        cmd.process_group(0);
        if let Some(dir) = &self.search_first {
            let mut path = dir.clone();
            if let Some(rest) = std::env::var_os("PATH") {
                path.push(":");
                path.push(rest);
            }
            cmd.env("PATH", path);
        }
        let child = cmd.spawn()?;
        let mut group = ProcessGroup(child.id());
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "az account get-access-token did not finish within {:?}",
                        self.timeout
                    ),
                )
            })??;
        group.0 = None;
        Ok(output)
    }
}

/// Kills the process group it names when dropped: on timeout, or when the caller drops the
/// token request. Cleared once the command finished, so a reused id is never signalled.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(id) = self.0.and_then(|id| libc::pid_t::try_from(id).ok()) {
            // SAFETY: kill(2) has no memory effects; a negative pid names the process group
            // the child leads (process_group(0) above).
            unsafe {
                libc::kill(-id, libc::SIGKILL);
            }
        }
    }
}

impl AzureCliCredential {
    pub fn new(tenant: Option<String>) -> Self {
        AzureCliCredential {
            tenant,
            executor: Arc::new(BoundedExecutor {
                search_first: None,
                timeout: CLI_TIMEOUT,
            }),
        }
    }

    /// Looks for `az` in `dir` before `PATH` (tests).
    pub fn with_search_dir(mut self, dir: impl Into<OsString>) -> Self {
        self.executor = Arc::new(BoundedExecutor {
            search_first: Some(dir.into()),
            timeout: self.executor.timeout,
        });
        self
    }

    #[cfg(test)]
    fn with_timeout(mut self, timeout: Duration) -> Self {
        self.executor = Arc::new(BoundedExecutor {
            search_first: self.executor.search_first.clone(),
            timeout,
        });
        self
    }
}

impl TokenCredential for AzureCliCredential {
    fn get_token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        boxed(async move {
            let options = azure_identity::AzureCliCredentialOptions {
                tenant_id: self.tenant.clone(),
                executor: Some(self.executor.clone()),
                ..Default::default()
            };
            let cli = azure_identity::AzureCliCredential::new(Some(options))
                .map_err(|e| config_error(CLI_FLOW, e))?;
            azure_core::credentials::TokenCredential::get_token(&*cli, &[scope], None)
                .await
                .map(from_sdk)
                .map_err(|e| cli_error(&e))
        })
    }
}

/// The SDK reports a failed `az` as its stderr, a missing one as exit status 127, and our
/// timeout as the I/O error the executor returned.
fn cli_error(e: &azure_core::Error) -> AuthError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::TimedOut => AuthError::Transport {
                    flow: CLI_FLOW,
                    message: io.to_string(),
                },
                _ => AuthError::Config {
                    flow: CLI_FLOW,
                    message: format!(
                        "could not run az: {io} (install the Azure CLI or disable use_cli)"
                    ),
                },
            };
        }
        source = s.source();
    }
    let detail = innermost_message(e);
    let innermost_kind = {
        let mut kind = e.kind().clone();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(inner) = s.downcast_ref::<azure_core::Error>() {
                kind = inner.kind().clone();
            }
            source = s.source();
        }
        kind
    };
    match innermost_kind {
        azure_core::error::ErrorKind::DataConversion => AuthError::Transport {
            flow: CLI_FLOW,
            message: format!("unexpected output from az: {detail}"),
        },
        _ if detail.contains("not found on PATH") => AuthError::Config {
            flow: CLI_FLOW,
            message: format!("{detail} (install the Azure CLI or disable use_cli)"),
        },
        _ => AuthError::Rejected {
            flow: CLI_FLOW,
            code: "az_failed".into(),
            description: format!(
                "{} (run `az login`)",
                if detail.is_empty() {
                    "no output"
                } else {
                    &detail
                }
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn azure_cli_via_fake_program() {
        use crate::arm::testutil::{fresh_dir, write_file};
        use std::os::unix::fs::PermissionsExt;
        let dir = fresh_dir("akspolicy-az");
        let good = write_file(&dir, "az-good", "#!/bin/sh\necho '{\"accessToken\":\"cli-tok\",\"expires_on\":4102444800,\"tokenType\":\"Bearer\"}'\n");
        let bad = write_file(
            &dir,
            "az-bad",
            "#!/bin/sh\necho 'ERROR: Please run az login to setup account.' >&2\nexit 1\n",
        );
        for p in [&good, &bad] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let good_dir = dir.join("good");
        let bad_dir = dir.join("bad");
        for (d, script) in [(&good_dir, &good), (&bad_dir, &bad)] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::rename(script, d.join("az")).unwrap();
        }
        let t = AzureCliCredential::new(None)
            .with_search_dir(&good_dir)
            .get_token("https://management.core.windows.net/.default")
            .await
            .unwrap();
        assert_eq!(t.token, "cli-tok");
        let e = AzureCliCredential::new(None)
            .with_search_dir(&bad_dir)
            .get_token("x/.default")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("az login"), "{e}");

        // A hanging az is given up on (and killed) after the timeout.
        let slow_dir = dir.join("slow");
        std::fs::create_dir_all(&slow_dir).unwrap();
        let slow = slow_dir.join("az");
        let pid_file = dir.join("slow.pid");
        std::fs::write(
            &slow,
            format!("#!/bin/sh\necho $$ > {}\nsleep 30\n", pid_file.display()),
        )
        .unwrap();
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = AzureCliCredential::new(None)
            .with_search_dir(&slow_dir)
            .with_timeout(Duration::from_millis(300))
            .get_token("x/.default")
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("az account get-access-token did not finish within 300ms"),
            "{e}"
        );
        // ... together with what it started: az runs under `sh -c`, not as our direct child.
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let gone = || {
            std::fs::read_to_string(&stat)
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true)
        };
        for _ in 0..100 {
            if gone() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            gone(),
            "the timed-out az (pid {}) is still running",
            pid.trim()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
