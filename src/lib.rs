//! akspolicy: a Terraform provider (tfplugin5) that governs AKS with Azure Policy, and a local
//! ARM emulator that the provider, its acceptance tests and `make demo` run against.
//!
//! Layers (every arrow points one way, see docs/architecture.md):
//! `plugin` → `framework` → `resources` → `arm` / `policy`; `emulator` sits beside them and
//! shares only `policy`.

pub mod arm;
pub mod emulator;
pub mod framework;
pub mod plugin;
pub mod policy;
pub mod resources;
