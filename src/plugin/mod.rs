//! `plugin` layer: everything Terraform's plugin protocol needs and nothing of Terraform's
//! semantics (those live in `framework`).
//!
//! * [`serve`]: go-plugin handshake, AutoMTLS, controller/stdio/broker/health services,
//!   reattach (debug) mode, signals, panic hook.
//! * [`service`]: the `tfplugin5.Provider` gRPC service over [`crate::framework::Server`].
//! * [`wire`]: cty msgpack/JSON codecs and type-constraint JSON.
//! * [`logging`]: the stderr `log` backend Terraform understands.

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

/// Entry point for the provider binary: `--debug` serves in reattach mode, otherwise serves
/// Terraform's managed mode. Returns the process exit code.
pub fn run_main(provider: impl FnOnce() -> Arc<dyn Provider>) -> ExitCode {
    serve::install_panic_hook();
    logging::init();
    let debug = std::env::args()
        .skip(1)
        .any(|a| a == "--debug" || a == "-debug");

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
