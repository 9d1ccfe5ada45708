//! The akspolicy Terraform provider binary. Terraform launches it; run with `--debug` to serve
//! in reattach mode for debugging.

use std::process::ExitCode;

fn main() -> ExitCode {
    akspolicy::plugin::run_main(akspolicy::resources::provider)
}
