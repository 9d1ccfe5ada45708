//! The small `$filter` grammar the policy RP accepts on definition lists:
//! `policyType eq 'BuiltIn'`, `category eq 'Kubernetes'`, `atExactScope()`, joined by `and`.
//! PowerShell-style `policyType -eq BuiltIn` is accepted too, because some clients send it.

use super::error::ErrorResponse;

/// A parsed filter; `None` fields do not constrain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DefinitionFilter {
    pub policy_type: Option<String>,
    pub category: Option<String>,
    pub at_exact_scope: bool,
}

impl DefinitionFilter {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, ErrorResponse> {
        let mut filter = Self::default();
        let (raw, clauses) = clauses(raw);
        for clause in &clauses {
            if clause.eq_ignore_ascii_case("atExactScope()") {
                filter.at_exact_scope = true;
                continue;
            }
            let (field, value) = parse_eq(clause).ok_or_else(|| invalid(raw))?;
            if field.eq_ignore_ascii_case("policyType") {
                filter.policy_type = Some(value);
            } else if field.eq_ignore_ascii_case("category") {
                filter.category = Some(value);
            } else {
                return Err(invalid(raw));
            }
        }
        Ok(filter)
    }

    /// True when an item with these properties passes the filter.
    pub(crate) fn accepts(&self, policy_type: &str, category: Option<&str>) -> bool {
        let type_ok = self
            .policy_type
            .as_deref()
            .is_none_or(|want| want.eq_ignore_ascii_case(policy_type));
        let category_ok = self
            .category
            .as_deref()
            .is_none_or(|want| category.is_some_and(|c| c.eq_ignore_ascii_case(want)));
        type_ok && category_ok
    }
}

/// Which assignments or exemptions a list returns, by scope relation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ScopeRelation {
    /// At the scope, above it and below it (the unfiltered list).
    #[default]
    All,
    /// At the scope or above it (`atScope()`).
    AtScope,
    /// Exactly at the scope (`atExactScope()`).
    AtExactScope,
}

/// `$filter` of assignment and exemption lists: `atScope()`, `atExactScope()`,
/// `excludeExpired()`, `policyDefinitionId eq '...'`, `policyAssignmentId eq '...'`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScopeFilter {
    pub relation: ScopeRelation,
    pub exclude_expired: bool,
    pub policy_definition_id: Option<String>,
    pub policy_assignment_id: Option<String>,
}

impl ScopeFilter {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, ErrorResponse> {
        let mut filter = Self::default();
        let (raw, clauses) = clauses(raw);
        let bad = || {
            ErrorResponse::bad_request(
                "InvalidFilterInQueryString",
                format!("The filter '{raw}' is not supported. Supported filters: atScope(), atExactScope(), excludeExpired(), policyDefinitionId eq '{{value}}', policyAssignmentId eq '{{value}}'."),
            )
        };
        for clause in &clauses {
            if clause.eq_ignore_ascii_case("atScope()") {
                filter.relation = ScopeRelation::AtScope;
            } else if clause.eq_ignore_ascii_case("atExactScope()") {
                filter.relation = ScopeRelation::AtExactScope;
            } else if clause.eq_ignore_ascii_case("excludeExpired()") {
                filter.exclude_expired = true;
            } else {
                let (field, value) = parse_eq(clause).ok_or_else(bad)?;
                if field.eq_ignore_ascii_case("policyDefinitionId") {
                    filter.policy_definition_id = Some(value);
                } else if field.eq_ignore_ascii_case("policyAssignmentId") {
                    filter.policy_assignment_id = Some(value);
                } else {
                    return Err(bad());
                }
            }
        }
        Ok(filter)
    }
}

/// `$filter` of PolicyInsights queries (policy states and events): `Field eq 'value'` or
/// `Field ne 'value'` clauses on record fields, joined by `and`. Field names and string values
/// compare case-insensitively; `IsCompliant eq false` compares the JSON literal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecordFilter {
    /// (field, wanted value, true for `eq`).
    clauses: Vec<(String, String, bool)>,
}

impl RecordFilter {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, ErrorResponse> {
        let mut filter = Self::default();
        let (raw, clauses) = clauses(raw);
        for clause in &clauses {
            let (clause, equal) = match negated(clause) {
                Some(rewritten) => (rewritten, false),
                None => (clause.to_string(), true),
            };
            let (field, value) = parse_eq(&clause).ok_or_else(|| {
                ErrorResponse::bad_request(
                    "InvalidFilterInQueryString",
                    format!("The filter '{raw}' is not supported. Supported filters: '<field> eq <value>' and '<field> ne <value>' clauses combined with 'and'."),
                )
            })?;
            filter.clauses.push((field, value, equal));
        }
        Ok(filter)
    }

    /// True when the record (a JSON object) passes every clause.
    pub(crate) fn accepts(&self, record: &serde_json::Value) -> bool {
        self.clauses.iter().all(|(field, want, equal)| {
            let found = record.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(field))
                    .map(|(_, v)| v)
            });
            let matches = found.is_some_and(|v| match v {
                serde_json::Value::String(s) => s.eq_ignore_ascii_case(want),
                other => other.to_string().eq_ignore_ascii_case(want),
            });
            matches == *equal
        })
    }
}

/// `field ne value` rewritten as `field eq value`, or `None` for any other clause.
fn negated(clause: &str) -> Option<String> {
    let mut parts = clause.splitn(3, char::is_whitespace);
    let field = parts.next()?;
    let op = parts.next()?;
    let value = parts.next()?;
    op.eq_ignore_ascii_case("ne")
        .then(|| format!("{field} eq {value}"))
}

fn invalid(raw: &str) -> ErrorResponse {
    ErrorResponse::bad_request(
        "InvalidFilterInQueryString",
        format!("The filter '{raw}' is not supported. Supported filters: policyType eq '{{value}}', category eq '{{value}}', atExactScope(), combined with 'and'."),
    )
}

/// The trimmed filter text and its clauses (none for an absent or blank filter).
fn clauses(raw: Option<&str>) -> (&str, Vec<String>) {
    let raw = raw.map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return (raw, Vec::new());
    }
    let clauses = split_and(raw)
        .iter()
        .map(|c| c.trim().to_string())
        .collect();
    (raw, clauses)
}

/// Splits on the keyword `and` outside quotes, case-insensitively.
fn split_and(raw: &str) -> Vec<String> {
    let mut clauses = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for word in raw.split(' ') {
        if !in_quotes && word.eq_ignore_ascii_case("and") {
            clauses.push(std::mem::take(&mut current));
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        if word.matches('\'').count() % 2 == 1 {
            in_quotes = !in_quotes;
        }
    }
    clauses.push(current);
    clauses
}

/// `field eq 'value'` / `field -eq value` → (field, value).
fn parse_eq(clause: &str) -> Option<(String, String)> {
    let mut parts = clause.splitn(3, char::is_whitespace);
    let field = parts.next()?.trim();
    let op = parts.next()?.trim();
    let value = parts.next()?.trim();
    if !(op.eq_ignore_ascii_case("eq") || op.eq_ignore_ascii_case("-eq")) || field.is_empty() {
        return None;
    }
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
        .unwrap_or(value);
    if value.is_empty() {
        return None;
    }
    Some((field.to_string(), value.replace("''", "'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scope_filters() {
        let f = ScopeFilter::parse(Some("atScope() and excludeExpired()")).expect("parses");
        assert_eq!(f.relation, ScopeRelation::AtScope);
        assert!(f.exclude_expired);
        let f = ScopeFilter::parse(Some(
            "policyDefinitionId eq '/providers/Microsoft.Authorization/policyDefinitions/x'",
        ))
        .expect("parses");
        assert_eq!(
            f.policy_definition_id.as_deref(),
            Some("/providers/Microsoft.Authorization/policyDefinitions/x")
        );
        assert!(ScopeFilter::parse(Some("name eq 'x'")).is_err());
    }

    #[test]
    fn record_filters_compare_fields_case_insensitively() {
        let record = serde_json::json!({"complianceState": "NonCompliant",
            "isCompliant": false, "policyDefinitionAction": "deny"});
        let f = RecordFilter::parse(Some("ComplianceState eq 'noncompliant'")).expect("parses");
        assert!(f.accepts(&record));
        let f = RecordFilter::parse(Some(
            "IsCompliant eq false and PolicyDefinitionAction eq 'deny'",
        ))
        .expect("parses");
        assert!(f.accepts(&record));
        let f = RecordFilter::parse(Some("policyDefinitionAction ne 'deny'")).expect("parses");
        assert!(!f.accepts(&record));
        let f = RecordFilter::parse(Some("resourceType eq 'x'")).expect("parses");
        assert!(!f.accepts(&record), "absent fields never match");
        assert!(RecordFilter::parse(Some("startswith(x)")).is_err());
        assert!(RecordFilter::parse(None).expect("empty").accepts(&record));
    }

    #[test]
    fn parses_supported_forms() {
        let f = DefinitionFilter::parse(Some("policyType eq 'BuiltIn'")).expect("parses");
        assert_eq!(f.policy_type.as_deref(), Some("BuiltIn"));
        let f = DefinitionFilter::parse(Some("policyType -eq BuiltIn")).expect("parses");
        assert_eq!(f.policy_type.as_deref(), Some("BuiltIn"));
        let f = DefinitionFilter::parse(Some(
            "policyType eq 'BuiltIn' and category eq 'Kubernetes Service'",
        ))
        .expect("parses");
        assert_eq!(f.category.as_deref(), Some("Kubernetes Service"));
        assert!(f.accepts("builtin", Some("kubernetes service")));
        assert!(!f.accepts("Custom", Some("Kubernetes Service")));
        assert!(
            DefinitionFilter::parse(Some("atExactScope()"))
                .expect("parses")
                .at_exact_scope
        );
        assert!(DefinitionFilter::parse(Some("displayName eq 'x'")).is_err());
        assert!(DefinitionFilter::parse(Some("policyType gt 'x'")).is_err());
        assert_eq!(
            DefinitionFilter::parse(None).expect("parses"),
            DefinitionFilter::default()
        );
    }
}
