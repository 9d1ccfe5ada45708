//! Provider code: the provider configuration and one file per resource / data source, each
//! reading top to bottom as schema, mapping to the ARM body, then CRUD.

pub mod admission_review;
pub mod assignment;
pub mod builtin_definition;
pub mod builtin_initiative;
pub mod cluster_addon;
pub mod compliance;
pub mod definition;
pub mod definition_api;
pub mod errors;
pub mod evaluate_function;
pub mod exemption;
pub mod existence;
pub mod initiative;
pub mod json;
pub mod kubernetes_definition;
pub mod kubernetes_mutation;
pub mod lookup;
pub mod parameters;
pub mod provider;
pub mod reconcile;
pub mod remediation;
pub mod remediation_roles;
pub mod scoped;
pub mod selectors;
pub mod usage;
pub mod validators;
pub mod waits;

pub use provider::provider;
