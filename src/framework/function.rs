//! Provider-defined functions (Terraform 1.8+, `provider::<name>::<function>(...)`): pure
//! computations over their arguments, with no provider configuration and no remote calls.
//! Terraform older than 1.8 never asks for them, so declaring functions changes nothing there.

use super::value::{Type, Value};

/// One parameter of a function's signature.
#[derive(Clone, Debug)]
pub struct FunctionParameter {
    pub name: &'static str,
    pub ty: Type,
    pub description: &'static str,
}

/// A function's signature and documentation.
#[derive(Clone, Debug)]
pub struct FunctionSignature {
    pub parameters: Vec<FunctionParameter>,
    pub returns: Type,
    pub summary: &'static str,
    /// Markdown.
    pub description: String,
}

/// Why a call failed; `argument` (0-based) points Terraform at the offending argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionError {
    pub text: String,
    pub argument: Option<usize>,
}

impl FunctionError {
    pub fn argument(index: usize, text: impl Into<String>) -> FunctionError {
        FunctionError {
            text: text.into(),
            argument: Some(index),
        }
    }
}

pub trait Function: Send + Sync + 'static {
    /// The name after `provider::<provider>::`.
    fn name(&self) -> &'static str;
    fn signature(&self) -> FunctionSignature;
    /// Called with exactly the declared parameters, decoded with their types (never unknown:
    /// Terraform only calls with known arguments unless a parameter allows unknowns).
    fn call(&self, arguments: &[Value]) -> Result<Value, FunctionError>;
}
