//! Plan-time checks shared by several resources. Each one names the rule Azure applies and
//! how to fix the value, so a mistake fails `terraform plan` instead of an apply.

use crate::framework::{AttributePath, Diagnostics, Value};

/// Azure's rule for policy definition, set definition and assignment names: none of
/// `<>*%&:\?.+/`, not empty, and no trailing space.
pub fn policy_object_name(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(name) = value.as_str() else { return };
    const FORBIDDEN: &[char] = &['<', '>', '*', '%', '&', ':', '\\', '?', '.', '+', '/'];
    if name.is_empty() {
        diags.error_at(path.clone(), "Empty name", "The name must not be empty.");
    } else if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        diags.error_at(
            path.clone(),
            "Invalid name",
            format!(
                "{name:?} contains {c:?}. Azure Policy names may not contain any of < > * % & : \\ ? . + /"
            ),
        );
    } else if name.ends_with(' ') {
        diags.error_at(
            path.clone(),
            "Invalid name",
            format!("{name:?} ends with a space, which Azure does not allow."),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> Diagnostics {
        let mut d = Diagnostics::new();
        policy_object_name(&Value::string(name), &AttributePath::attr("name"), &mut d);
        d
    }

    #[test]
    fn names_follow_azure_rules() {
        assert!(!check("95edb821-ddaf-4404-9732-666045e056b4").has_errors());
        assert!(check("a/b").has_errors());
        assert!(check("trailing ").has_errors());
        assert!(check("").has_errors());
    }
}
