//! End-to-end tests: the real Terraform CLI drives the freshly built provider against a fresh
//! emulator over HTTPS. Run with `make test` (which installs the pinned Terraform first).

mod harness;

mod builtin_definition;
mod docs;
mod examples;
mod provider_config;
mod release;
