//! What several resources and data sources share: the ARM error boundary, JSON and reconcile
//! rules, the scoped and definition-like CRUD, parameter values, selectors, plan-time
//! existence and usage checks, validators and consistency waits. Nothing in here is a
//! Terraform type of its own.

pub mod decode;
pub mod definition_api;
pub mod definition_collection;
pub mod errors;
pub mod existence;
pub mod identity;
pub mod json;
pub mod lookup;
pub mod parameter_values;
pub mod process_cache;
pub mod reconcile;
pub mod schema;
pub mod scoped;
pub mod selectors;
#[cfg(test)]
pub mod testing;
pub mod usage;
pub mod validators;
pub mod waits;
