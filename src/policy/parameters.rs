//! Checking the parameter values of a policy assignment against the declarations of its
//! definition or initiative, the way Azure does when the assignment is written: unknown names,
//! missing required values, wrong types and values outside `allowedValues`.
//!
//! The provider runs these checks at plan time (so a typo fails `terraform plan` with a useful
//! hint instead of an apply-time 400) and the emulator runs the same ones on PUT.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value as Json};

use super::definition_body::ParameterDefinition;

/// One way an assignment's parameter values disagree with the declarations.
#[derive(Debug, Clone, PartialEq)]
pub enum ParameterProblem {
    /// A value for a parameter the definition does not declare.
    Unknown {
        name: String,
        /// The declared name closest to `name`, when one is close enough to be a likely typo.
        suggestion: Option<String>,
        /// Every declared name, sorted.
        declared: Vec<String>,
    },
    /// A declared parameter without `defaultValue` that was not given.
    MissingRequired {
        name: String,
        parameter_type: String,
    },
    /// The value's JSON type does not fit the declared parameter type.
    WrongType {
        name: String,
        expected: String,
        found: &'static str,
    },
    /// The value is not among `allowedValues` (compared case-sensitively, as Azure does).
    NotAllowed {
        name: String,
        value: Json,
        allowed: Vec<Json>,
        /// An allowed value that differs from the given one only in letter case.
        case_hint: Option<Json>,
    },
}

impl ParameterProblem {
    /// The parameter the problem is about (for pointing at it in a configuration).
    pub fn name(&self) -> &str {
        match self {
            ParameterProblem::Unknown { name, .. }
            | ParameterProblem::MissingRequired { name, .. }
            | ParameterProblem::WrongType { name, .. }
            | ParameterProblem::NotAllowed { name, .. } => name,
        }
    }

    /// A short title for the problem.
    pub fn summary(&self) -> &'static str {
        match self {
            ParameterProblem::Unknown { .. } => "Unknown policy parameter",
            ParameterProblem::MissingRequired { .. } => "Missing required policy parameter",
            ParameterProblem::WrongType { .. } => "Wrong type for policy parameter",
            ParameterProblem::NotAllowed { .. } => "Policy parameter value not allowed",
        }
    }

    /// Whether a value was given for the parameter (false only for missing ones).
    pub fn is_about_given_value(&self) -> bool {
        !matches!(self, ParameterProblem::MissingRequired { .. })
    }
}

impl fmt::Display for ParameterProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParameterProblem::Unknown {
                name,
                suggestion,
                declared,
            } => {
                write!(f, "The policy definition has no parameter named {name:?}.")?;
                if let Some(s) = suggestion {
                    write!(f, " Did you mean {s:?}?")?;
                }
                if declared.is_empty() {
                    write!(f, " It declares no parameters at all.")
                } else {
                    write!(f, " Declared parameters: {}.", declared.join(", "))
                }
            }
            ParameterProblem::MissingRequired {
                name,
                parameter_type,
            } => write!(
                f,
                "The policy definition requires a value for parameter {name:?} (type \
                 {parameter_type}) because it declares no defaultValue."
            ),
            ParameterProblem::WrongType {
                name,
                expected,
                found,
            } => write!(
                f,
                "Parameter {name:?} is declared as {expected}, but the value given is {found}. \
                 {}",
                type_hint(expected)
            ),
            ParameterProblem::NotAllowed {
                name,
                value,
                allowed,
                case_hint,
            } => {
                let list: Vec<String> = allowed.iter().map(Json::to_string).collect();
                write!(
                    f,
                    "{value} is not an allowed value for parameter {name:?}. Allowed values: {}.",
                    list.join(", ")
                )?;
                if let Some(hint) = case_hint {
                    write!(
                        f,
                        " Azure compares allowed values case-sensitively: did you mean {hint}?"
                    )?;
                }
                Ok(())
            }
        }
    }
}

fn type_hint(expected: &str) -> &'static str {
    match expected.to_ascii_lowercase().as_str() {
        "string" => "Write it as a string, e.g. \"Deny\".",
        "array" => "Write it as a list, e.g. [\"kube-system\"].",
        "object" => "Write it as an object, e.g. { key = \"value\" }.",
        "boolean" => "Write it as true or false (without quotes).",
        "integer" => "Write it as a whole number (without quotes).",
        "float" => "Write it as a number (without quotes).",
        "datetime" => "Write it as an RFC 3339 date-time string, e.g. \"2027-06-30T00:00:00Z\".",
        _ => "",
    }
}

/// Checks `given` (parameter name → plain value, not ARM's `{"value": ...}` wrapper) against
/// `declared`. Names match case-insensitively, as ARM treats them; problems come out in a
/// stable order (by name).
pub fn check_parameters(
    declared: &BTreeMap<String, ParameterDefinition>,
    given: &Map<String, Json>,
) -> Vec<ParameterProblem> {
    let mut problems = Vec::new();
    let declared_names: Vec<String> = declared.keys().cloned().collect();
    let mut given_names: Vec<&String> = given.keys().collect();
    given_names.sort();
    for name in given_names {
        let value = &given[name.as_str()];
        let Some(def) = find_declared(declared, name) else {
            problems.push(ParameterProblem::Unknown {
                name: name.clone(),
                suggestion: closest_name(name, declared_names.iter().map(String::as_str))
                    .map(str::to_string),
                declared: declared_names.clone(),
            });
            continue;
        };
        if value.is_null() {
            // A null value means "use the default" to ARM.
            continue;
        }
        if let Some(found) = type_mismatch(&def.parameter_type, value) {
            problems.push(ParameterProblem::WrongType {
                name: name.clone(),
                expected: def.parameter_type.clone(),
                found,
            });
            continue;
        }
        if let Some(allowed) = &def.allowed_values {
            if !is_allowed(&def.parameter_type, value, allowed) {
                problems.push(ParameterProblem::NotAllowed {
                    name: name.clone(),
                    value: value.clone(),
                    allowed: allowed.clone(),
                    case_hint: case_hint(value, allowed),
                });
            }
        }
    }
    for (name, def) in declared {
        let given_here = given
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && !v.is_null());
        if def.default_value.is_none() && !given_here {
            problems.push(ParameterProblem::MissingRequired {
                name: name.clone(),
                parameter_type: def.parameter_type.clone(),
            });
        }
    }
    problems
}

fn find_declared<'a>(
    declared: &'a BTreeMap<String, ParameterDefinition>,
    name: &str,
) -> Option<&'a ParameterDefinition> {
    declared.get(name).or_else(|| {
        declared
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, d)| d)
    })
}

/// `Some(kind of the value)` when it does not fit the declared ARM parameter type. Unknown
/// declared types are accepted: Azure may add types and must not be second-guessed.
fn type_mismatch(parameter_type: &str, value: &Json) -> Option<&'static str> {
    let ok = match parameter_type.to_ascii_lowercase().as_str() {
        "string" | "datetime" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "boolean" => value.is_boolean(),
        "integer" => value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "float" => value.is_number(),
        _ => true,
    };
    (!ok).then(|| json_kind(value))
}

/// The kind of a JSON value in words, for messages.
pub fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a fractional number",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

fn is_allowed(parameter_type: &str, value: &Json, allowed: &[Json]) -> bool {
    if allowed.iter().any(|a| json_equal(a, value)) {
        return true;
    }
    // For Array parameters Azure lists the permitted elements.
    parameter_type.eq_ignore_ascii_case("array")
        && value.as_array().is_some_and(|items| {
            items
                .iter()
                .all(|item| allowed.iter().any(|a| json_equal(a, item)))
        })
}

fn case_hint(value: &Json, allowed: &[Json]) -> Option<Json> {
    let fold = |v: &Json| -> Option<Json> {
        let s = v.as_str()?;
        allowed
            .iter()
            .find(|a| a.as_str().is_some_and(|a| a.eq_ignore_ascii_case(s)))
            .cloned()
    };
    match value {
        Json::String(_) => fold(value),
        Json::Array(items) => items
            .iter()
            .find(|i| !allowed.iter().any(|a| json_equal(a, i)))
            .and_then(fold),
        _ => None,
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`), as Azure and Terraform treat them.
pub fn json_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// The candidate closest to `name` by edit distance (case-insensitive), when it is close
/// enough to be a plausible typo: at most a third of the longer name's length, or a
/// difference only in letter case.
pub fn closest_name<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .map(|c| (levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (name.chars().count().max(c.chars().count()) / 3).max(1))
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// Edit distance (insertions, deletions, substitutions) between two strings, by characters.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared() -> BTreeMap<String, ParameterDefinition> {
        serde_json::from_value(json!({
            "effect": {"type": "String", "defaultValue": "Deny",
                       "allowedValues": ["audit", "Audit", "deny", "Deny", "disabled", "Disabled"]},
            "excludedNamespaces": {"type": "Array", "defaultValue": ["kube-system"]},
            "source": {"type": "String", "defaultValue": "Original",
                       "allowedValues": ["All", "Generated", "Original"]},
            "warn": {"type": "Boolean", "defaultValue": false},
            "maxReplicas": {"type": "Integer"},
            "labelSelector": {"type": "Object", "defaultValue": {}},
            "locations": {"type": "Array", "defaultValue": [], "allowedValues": ["westeurope", "northeurope"]}
        }))
        .expect("valid declarations")
    }

    fn given(v: Json) -> Map<String, Json> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn valid_values_pass() {
        let p = check_parameters(
            &declared(),
            &given(json!({
                "effect": "deny", "excludedNamespaces": ["kube-system", "x"], "warn": true,
                "maxReplicas": 3, "labelSelector": {"matchLabels": {"a": "b"}},
                "locations": ["westeurope"], "Source": "All"
            })),
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn misspelled_name_suggests_closest() {
        let p = check_parameters(
            &declared(),
            &given(json!({"maxReplicas": 1, "excludedNamespace": ["a"]})),
        );
        assert_eq!(p.len(), 1, "{p:?}");
        let msg = p[0].to_string();
        assert!(msg.contains("Did you mean \"excludedNamespaces\""), "{msg}");
        assert_eq!(p[0].name(), "excludedNamespace");
        let far = check_parameters(&declared(), &given(json!({"maxReplicas": 1, "zzz": 1})));
        assert!(matches!(
            &far[0],
            ParameterProblem::Unknown {
                suggestion: None,
                ..
            }
        ));
    }

    #[test]
    fn missing_required_and_wrong_types() {
        let p = check_parameters(
            &declared(),
            &given(json!({"warn": "true", "excludedNamespaces": "kube-system"})),
        );
        let kinds: Vec<String> = p
            .iter()
            .map(|p| format!("{}:{}", p.summary(), p.name()))
            .collect();
        assert_eq!(
            kinds,
            [
                "Wrong type for policy parameter:excludedNamespaces",
                "Wrong type for policy parameter:warn",
                "Missing required policy parameter:maxReplicas",
            ]
        );
        assert!(p[1].to_string().contains("true or false"));
        let frac = check_parameters(&declared(), &given(json!({"maxReplicas": 1.5})));
        assert!(matches!(frac[0], ParameterProblem::WrongType { .. }));
        let whole = check_parameters(&declared(), &given(json!({"maxReplicas": 2.0})));
        assert!(whole.is_empty());
    }

    #[test]
    fn allowed_values_are_case_sensitive_with_hint() {
        let p = check_parameters(
            &declared(),
            &given(json!({"maxReplicas": 1, "source": "original"})),
        );
        let msg = p[0].to_string();
        assert!(msg.contains("did you mean \"Original\""), "{msg}");
        let p = check_parameters(
            &declared(),
            &given(json!({"maxReplicas": 1, "effect": "Block"})),
        );
        assert!(matches!(
            &p[0],
            ParameterProblem::NotAllowed {
                case_hint: None,
                ..
            }
        ));
        let p = check_parameters(
            &declared(),
            &given(json!({"maxReplicas": 1, "locations": ["westeurope", "WestUS"]})),
        );
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_equal(&json!({"a": [1]}), &json!({"a": [1.0]})));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("effect", "effect"), 0);
        assert_eq!(
            closest_name("EFFECT", ["effect", "source"].into_iter()),
            Some("effect")
        );
    }
}
