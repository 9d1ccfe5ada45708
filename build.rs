//! Generates the tfplugin5 and go-plugin gRPC bindings.
//!
//! protoc comes from the `protoc-bin-vendored` crate so a fresh machine without a system
//! protobuf compiler still builds.

use std::error::Error;
use std::path::Path;

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // tonic-prost-build finds protoc through this variable; build scripts are single-threaded.
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(
            &[
                Path::new("proto/tfplugin5.proto"),
                Path::new("proto/plugin.proto"),
            ],
            &[Path::new("proto"), include.as_path()],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
