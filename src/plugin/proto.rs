//! Generated gRPC bindings (see `build.rs` and `proto/`).

/// Terraform's plugin protocol, major version 5.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod tfplugin5 {
    tonic::include_proto!("tfplugin5");
}

/// hashicorp/go-plugin's side services (controller, stdio, broker).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod goplugin {
    tonic::include_proto!("plugin");
}
