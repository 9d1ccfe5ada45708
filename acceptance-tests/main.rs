//! End-to-end tests: the real Terraform CLI drives the freshly built provider against a fresh
//! emulator over HTTPS. Run with `make test` (which installs the pinned Terraform first).

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
