//! ARM's rules for resource names.

use super::ArmError;

/// ARM name rule for policy resources: no `<>*%&:\?.+/`, no trailing space.
pub(crate) fn check_policy_name(kind: &str, name: &str) -> Result<(), ArmError> {
    let bad = name.is_empty()
        || name.ends_with(' ')
        || name.chars().any(|c| "<>*%&:\\?.+/".contains(c))
        || name.len() > 128;
    if bad {
        return Err(ArmError::bad_request(
            "InvalidResourceName",
            format!("The {kind} name '{name}' is invalid. Names must not contain '<>*%&:\\?.+/', end with a space, or exceed 128 characters."),
        ));
    }
    Ok(())
}

/// ARM's name rule for resources without a stricter one of their own (remediations): no
/// `<>*%&:\?/+` or control characters, not ending with `.` or a space, at most 260 characters.
pub(crate) fn check_resource_name(kind: &str, name: &str) -> Result<(), ArmError> {
    let bad = name.is_empty()
        || name.ends_with(' ')
        || name.ends_with('.')
        || name
            .chars()
            .any(|c| c.is_control() || "<>*%&:\\?+/".contains(c))
        || name.chars().count() > 260;
    if bad {
        return Err(ArmError::bad_request(
            "InvalidResourceName",
            format!("The {kind} name '{name}' is invalid. Names must not contain '<>*%&:\\?+/' or control characters, end with '.' or a space, or exceed 260 characters."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn generic_resource_names() {
        use super::check_resource_name as check;
        assert!(check("remediation", "fix-privileged_1 (retry)").is_ok());
        for bad in [
            "",
            "a/b",
            "a%2Fb",
            "nul\u{0}x",
            "tab\tx",
            "trailing.",
            "trailing ",
            "a?b",
            "a+b",
        ] {
            assert!(check("remediation", bad).is_err(), "{bad:?}");
        }
        assert!(check("remediation", &"x".repeat(260)).is_ok());
        assert!(check("remediation", &"x".repeat(261)).is_err());
    }
}
