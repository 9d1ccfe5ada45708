//! Plan-time checks shared by several resources. Each one names the rule Azure applies and
//! how to fix the value, so a mistake fails `terraform plan` instead of an apply.

use crate::framework::{AttributePath, Diagnostics, Value};
use crate::policy::names::NameRule;

/// Validator: a name Azure accepts under `rule` (see [`crate::policy::names`], which the
/// emulator applies too), with the rule in the message so the fix is obvious.
pub fn azure_name(
    rule: NameRule,
) -> impl Fn(&Value, &AttributePath, &mut Diagnostics) + Send + Sync {
    move |value, path, diags| {
        let Some(name) = value.as_str() else { return };
        if let Err(problem) = rule.check(name) {
            diags.error_at(
                path.clone(),
                "Invalid name",
                format!(
                    "{name:?}: {problem}. Azure accepts names with {}.",
                    rule.describe()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::names;
    use crate::resources::shared::testing::validator_diags;

    fn check(name: &str) -> Diagnostics {
        validator_diags(
            azure_name(names::POLICY_DEFINITION),
            "name",
            Value::string(name),
        )
    }

    #[test]
    fn names_follow_azure_rules() {
        assert!(!check("95edb821-ddaf-4404-9732-666045e056b4").has_errors());
        assert!(check("a/b").has_errors());
        assert!(check("trailing ").has_errors());
        assert!(check("").has_errors());
    }
}
