//! ARM's answer to a name that breaks Azure's rules. The rules themselves are
//! [`crate::policy::names`], which the provider's plan-time checks apply too.

use super::ErrorResponse;
use crate::policy::names::{NameProblem, NameRule};

/// `InvalidResourceName` unless `name` follows `rule`; `kind` names the object ("policy
/// assignment") as ARM's messages do.
pub(crate) fn check_name(kind: &str, name: &str, rule: &NameRule) -> Result<(), ErrorResponse> {
    rule.check(name)
        .map_err(|problem| name_error(kind, name, rule, &problem))
}

fn name_error(kind: &str, name: &str, rule: &NameRule, problem: &NameProblem) -> ErrorResponse {
    ErrorResponse::bad_request(
        "InvalidResourceName",
        format!(
            "The {kind} name '{name}' is invalid: {problem}. Names must have {}.",
            rule.describe()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::check_name;
    use crate::policy::names::RESOURCE;

    #[test]
    fn generic_resource_names() {
        let check = |name: &str| check_name("remediation", name, &RESOURCE);
        assert!(check("fix-privileged_1 (retry)").is_ok());
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
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&"x".repeat(260)).is_ok());
        assert!(check(&"x".repeat(261)).is_err());
    }
}
