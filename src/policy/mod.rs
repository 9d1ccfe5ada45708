//! `policy` layer: the Azure Policy domain shared by the provider and the emulator — typed
//! definition bodies and loading of built-in definitions.

pub mod addon;
pub mod admission;
pub mod builtins;
pub mod definition_body;
pub mod json;
pub mod kubernetes;
pub mod names;
pub mod parameters;
pub mod references;
pub mod timestamp;
pub mod validation;

pub use builtins::{BuiltinCatalogue, BuiltinsError};
pub use definition_body::{
    policy_type, ParameterDefinition, PolicyDefinition, PolicyDefinitionProperties,
    PolicyDefinitionReference, PolicySetDefinition, PolicySetDefinitionProperties,
    POLICY_DEFINITION_TYPE, POLICY_SET_DEFINITION_TYPE,
};
pub use kubernetes::{TemplateInfo, KUBERNETES_MODE};
pub use parameters::{check_parameters, ParameterProblem};
pub mod arm_rule;
pub mod arm_template;
pub mod constraint;
pub mod constraint_match;
pub mod constraint_template;
pub mod effects;
pub mod eval_memory;
pub mod kubernetes_body;
pub mod mutation;
pub mod mutation_definition;
pub mod rego;
