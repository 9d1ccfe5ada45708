//! End-to-end tests: the real Terraform CLI drives the freshly built provider against a fresh
//! emulator over HTTPS. Run with `make test` (which installs the pinned Terraform first).
//!
//! Layout: one file per resource and data source, named for its type without `akspolicy_`
//! (`assignment.rs`, `builtin_initiative.rs`, ...), holding the tests whose subject it is; the
//! suites that cut across resources are named for their concern (`reliability.rs`,
//! `import_blocks.rs`, `gatekeeper_corpus.rs`, ...); shared fixtures live in `harness/`.

mod harness;

mod admission;
mod admission_review;
mod arm_policy;
mod assignment;
mod batched_reads;
mod builtin_definition;
mod builtin_initiative;
mod cluster_addon;
mod compliance;
mod credentials;
mod definition;
mod docs;
mod examples;
mod exemption;
mod gatekeeper_corpus;
mod import_blocks;
mod in_use;
mod initiative;
mod kubernetes_definition;
mod kubernetes_mutation;
mod provider_config;
mod release;
mod reliability;
mod remediation;
mod sdk;
mod shift_left;
mod timeouts;
