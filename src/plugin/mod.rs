//! `plugin` layer: everything Terraform's plugin protocol needs and nothing of Terraform's
//! semantics (those live in `framework`).
//!
//! * [`automtls`]: the TLS server configuration that admits only Terraform's client certificate.
//! * [`serve`]: go-plugin handshake, AutoMTLS, controller/stdio/broker/health services,
//!   reattach (debug) mode, signals, panic hook.
//! * [`service`]: the `tfplugin5.Provider` gRPC service over [`crate::framework::Server`].
//! * [`wire`]: cty msgpack/JSON codecs and type-constraint JSON.
//! * [`logging`]: the stderr `log` backend Terraform understands.

pub mod automtls;
pub mod logging;
pub mod proto;
pub mod serve;
pub mod service;
pub mod wire;

use std::process::ExitCode;
use std::sync::Arc;

pub use serve::{
    reattach_json, serve, serve_debug, serve_reattach, ReattachHandle, ServeError,
    MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE,
};
pub use service::ProviderService;

use crate::framework::{Provider, Server};

/// The provider's source address Terraform configurations use.
pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/akspolicy/akspolicy";

/// Builds the gRPC service for a provider.
pub fn provider_service(provider: Arc<dyn Provider>) -> ProviderService {
    ProviderService::new(Arc::new(Server::new(provider)))
}

/// The provider's release version (from Cargo.toml), as `--version` and the User-Agent report it.
pub const PROVIDER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `--version` prints: the binary, its version and the plugin protocol it speaks.
pub fn version_line() -> String {
    format!("terraform-provider-akspolicy {PROVIDER_VERSION} (tfplugin5)")
}

/// Whether the command line asks only for the version (`--version`, `-version`, `version`).
fn wants_version(args: &[String]) -> bool {
    args.iter()
        .any(|a| a == "--version" || a == "-version" || a == "-v" || a == "version")
}

/// Entry point for the provider binary: `--version` prints the version, `--debug` serves in
/// reattach mode, otherwise serves Terraform's managed mode. Returns the process exit code.
pub fn run_main(provider: impl FnOnce() -> Arc<dyn Provider>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Answer before the cookie check: packagers and users run this by hand to see what they have.
    if wants_version(&args) {
        println!("{}", version_line());
        return ExitCode::SUCCESS;
    }
    serve::install_panic_hook();
    logging::init();
    let debug = args.iter().any(|a| a == "--debug" || a == "-debug");

    // Refuse early, before building a runtime, when run by hand without --debug.
    if !debug {
        let cookie = std::env::var(MAGIC_COOKIE_KEY).ok();
        let versions = std::env::var("PLUGIN_PROTOCOL_VERSIONS").ok();
        if let Err(e) = serve::check_environment(cookie.as_deref(), versions.as_deref()) {
            eprintln!("{e}");
            if matches!(e, ServeError::NotLaunchedByTerraform) {
                eprintln!(
                    "\nakspolicy is a Terraform provider: Terraform starts it when a configuration \
                     uses the akspolicy provider. To run it by hand for debugging, start it with \
                     --debug and follow the TF_REATTACH_PROVIDERS instructions it prints."
                );
            }
            return ExitCode::from(1);
        }
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("[ERROR] failed to start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let service = provider_service(provider());
    let result = runtime.block_on(async move {
        if debug {
            serve_debug(service, PROVIDER_ADDRESS).await
        } else {
            serve(service).await
        }
    });
    // Do not wait for stray tasks (a stuck Azure call) once the host told us to go.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_flag_is_recognised_in_its_usual_spellings() {
        for flag in ["--version", "-version", "-v", "version"] {
            assert!(wants_version(&[flag.to_string()]), "{flag}");
        }
        assert!(!wants_version(&["--debug".to_string()]));
        assert!(!wants_version(&[]));
    }

    #[test]
    fn version_line_names_binary_version_and_protocol() {
        assert_eq!(
            version_line(),
            format!(
                "terraform-provider-akspolicy {} (tfplugin5)",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
