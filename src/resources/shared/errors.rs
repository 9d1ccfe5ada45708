//! The one boundary where ARM client errors become Terraform diagnostics.

use crate::arm::ArmError;
use crate::framework::Diagnostic;

/// An error diagnostic whose detail is the ARM error's own message (which names the ARM error
/// code and, where known, the fix). ARM errors never carry secrets or tokens.
pub fn arm_error_diagnostic(summary: &str, err: &ArmError) -> Diagnostic {
    Diagnostic::error(summary, err.to_string())
}
