//! Azure's rules for the names of the objects the provider writes, shared so that a plan
//! refuses exactly what Azure (and the emulator) would refuse at apply.

use std::fmt;

/// One naming rule: characters Azure refuses anywhere, and how long a name may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameRule {
    /// Characters that may appear nowhere in the name.
    pub forbidden: &'static str,
    /// Longest name in characters.
    pub max_chars: usize,
    /// Whether a trailing `.` is refused (ARM's general rule; policy names refuse `.` anywhere).
    pub no_trailing_dot: bool,
}

/// Policy definitions and set definitions (initiatives), custom or built-in.
pub const POLICY_DEFINITION: NameRule = NameRule::policy(128);

/// Policy assignments below a management group; see [`MANAGEMENT_GROUP_ASSIGNMENT`].
pub const POLICY_ASSIGNMENT: NameRule = NameRule::policy(64);

/// Policy assignments at a management group: Azure allows 24 characters there.
pub const MANAGEMENT_GROUP_ASSIGNMENT: NameRule = NameRule::policy(24);

/// Policy exemptions.
pub const POLICY_EXEMPTION: NameRule = NameRule::policy(128);

/// ARM's rule for resources without a stricter one of their own (remediations, deployments
/// use [`DEPLOYMENT`]).
pub const RESOURCE: NameRule = NameRule::arm(260);

/// Template deployments.
pub const DEPLOYMENT: NameRule = NameRule::arm(64);

/// Why a name breaks its rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    Forbidden(char),
    ControlCharacter,
    TrailingSpace,
    TrailingDot,
    TooLong { chars: usize, max: usize },
}

impl NameRule {
    /// The `Microsoft.Authorization` policy types refuse `.` anywhere, so a trailing one too.
    const fn policy(max_chars: usize) -> NameRule {
        NameRule {
            forbidden: "<>*%&:\\?.+/",
            max_chars,
            no_trailing_dot: false,
        }
    }

    /// ARM's general rule: `.` is fine inside a name but not at its end.
    const fn arm(max_chars: usize) -> NameRule {
        NameRule {
            forbidden: "<>*%&:\\?+/",
            max_chars,
            no_trailing_dot: true,
        }
    }

    pub fn check(&self, name: &str) -> Result<(), NameProblem> {
        if name.is_empty() {
            return Err(NameProblem::Empty);
        }
        if let Some(c) = name.chars().find(|c| self.forbidden.contains(*c)) {
            return Err(NameProblem::Forbidden(c));
        }
        if name.chars().any(char::is_control) {
            return Err(NameProblem::ControlCharacter);
        }
        if name.ends_with(' ') {
            return Err(NameProblem::TrailingSpace);
        }
        if self.no_trailing_dot && name.ends_with('.') {
            return Err(NameProblem::TrailingDot);
        }
        let chars = name.chars().count();
        if chars > self.max_chars {
            return Err(NameProblem::TooLong {
                chars,
                max: self.max_chars,
            });
        }
        Ok(())
    }

    /// The rule in words, for messages: "none of `<>*%&:\?.+/`, at most 64 characters".
    pub fn describe(&self) -> String {
        let dot = if self.no_trailing_dot {
            ", not ending with `.`"
        } else {
            ""
        };
        format!(
            "none of `{}`, no control characters, not ending with a space{dot}, at most {} \
             characters",
            self.forbidden, self.max_chars
        )
    }
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => write!(f, "the name is empty"),
            NameProblem::Forbidden(c) => write!(f, "the name contains {c:?}"),
            NameProblem::ControlCharacter => write!(f, "the name contains a control character"),
            NameProblem::TrailingSpace => write!(f, "the name ends with a space"),
            NameProblem::TrailingDot => write!(f, "the name ends with '.'"),
            NameProblem::TooLong { chars, max } => {
                write!(f, "the name has {chars} characters, more than {max}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_refuse_what_azure_refuses() {
        assert_eq!(
            POLICY_DEFINITION.check("95edb821-ddaf-4404-9732-666045e056b4"),
            Ok(())
        );
        assert_eq!(
            POLICY_DEFINITION.check("a/b"),
            Err(NameProblem::Forbidden('/'))
        );
        assert_eq!(
            POLICY_DEFINITION.check("v1.2"),
            Err(NameProblem::Forbidden('.'))
        );
        assert_eq!(
            POLICY_DEFINITION.check("trailing "),
            Err(NameProblem::TrailingSpace)
        );
        assert_eq!(POLICY_DEFINITION.check(""), Err(NameProblem::Empty));
        assert_eq!(
            MANAGEMENT_GROUP_ASSIGNMENT.check(&"a".repeat(25)),
            Err(NameProblem::TooLong { chars: 25, max: 24 })
        );
        assert_eq!(POLICY_ASSIGNMENT.check(&"a".repeat(64)), Ok(()));
    }

    #[test]
    fn resource_names_allow_inner_dots_but_not_a_trailing_one() {
        assert_eq!(RESOURCE.check("fix.pods"), Ok(()));
        assert_eq!(RESOURCE.check("fix."), Err(NameProblem::TrailingDot));
        assert_eq!(
            RESOURCE.check("tab\tname"),
            Err(NameProblem::ControlCharacter)
        );
    }
}
