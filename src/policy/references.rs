//! Which policy parameters a rule or a parameter value refers to through `parameters('x')`.
//!
//! Shared by the provider's plan-time check and the emulator's write-time check so both agree
//! on what counts as a reference. Two ARM rules decide it:
//! - only expressions count: a string that starts with `[` (and not the `[[` escape, which is
//!   a literal `[...`) and ends with `]`;
//! - a DeployIfNotExists rule embeds an ARM deployment template
//!   (`then.details.deployment.properties.template`). Its expressions are evaluated by the
//!   deployment, against the template's own `parameters`, not by Azure Policy, so they never
//!   name policy parameters. The deployment's `parameters` values sit outside the template and
//!   are evaluated by Azure Policy, which is how policy parameters reach the template.

use std::collections::BTreeMap;

use serde_json::Value;

/// Names passed to `parameters(...)` in one string, when the string is an ARM expression.
/// Names are returned as written; ARM compares them case-insensitively.
pub fn expression_parameter_references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(inner) = expression_body(text) else {
        return out;
    };
    let lower = inner.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("parameters") {
        let at = from + found;
        from = at + "parameters".len();
        // `xparameters(` is another function (or part of an identifier).
        let prev = lower[..at].chars().next_back();
        if prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let rest = inner[from..].trim_start();
        let Some(rest) = rest.strip_prefix('(') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('\'') else {
            continue;
        };
        if let Some(end) = rest.find('\'') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// The inside of an ARM expression string, or `None` for a literal.
fn expression_body(text: &str) -> Option<&str> {
    if text.starts_with("[[") {
        return None;
    }
    text.strip_prefix('[')?.strip_suffix(']')
}

/// Policy parameters a policy rule refers to, sorted, each once (first spelling kept).
pub fn policy_rule_parameter_references(rule: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_rule(rule, &[], &mut out);
    dedup_ci(out)
}

/// Parameters that values (e.g. an initiative member's parameter values, or an assignment's)
/// refer to, sorted, each once.
pub fn value_parameter_references(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_all(value, &mut out);
    dedup_ci(out)
}

/// The key path of the embedded deployment template below a rule's root.
const DEPLOYMENT_TEMPLATE: [&str; 5] = ["then", "details", "deployment", "properties", "template"];

fn collect_rule(value: &Value, path: &[&str], out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if is_deployment_template(path, key) {
                    continue;
                }
                let mut next: Vec<&str> = path.to_vec();
                next.push(key);
                collect_rule(child, &next, out);
            }
        }
        Value::Array(items) => {
            // Array elements do not extend the path: the template is never inside an array.
            let mut next: Vec<&str> = path.to_vec();
            next.push("[]");
            items.iter().for_each(|v| collect_rule(v, &next, out));
        }
        Value::String(s) => out.extend(expression_parameter_references(s)),
        _ => {}
    }
}

/// Whether `key` under `path` is `then.details.deployment.properties.template` (ARM property
/// names are case-insensitive).
fn is_deployment_template(path: &[&str], key: &str) -> bool {
    path.len() + 1 == DEPLOYMENT_TEMPLATE.len()
        && path
            .iter()
            .chain(std::iter::once(&key))
            .zip(DEPLOYMENT_TEMPLATE)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

fn collect_all(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| collect_all(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_all(v, out)),
        Value::String(s) => out.extend(expression_parameter_references(s)),
        _ => {}
    }
}

fn dedup_ci(mut names: Vec<String>) -> Vec<String> {
    names.sort_by_key(|n| n.to_ascii_lowercase());
    names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    names
}

/// Referenced names that `declared` does not declare (case-insensitively).
pub fn undeclared<'a, T>(referenced: &'a [String], declared: &BTreeMap<String, T>) -> Vec<&'a str> {
    referenced
        .iter()
        .filter(|r| !declared.keys().any(|d| d.eq_ignore_ascii_case(r)))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_expressions_count() {
        assert_eq!(
            expression_parameter_references("[parameters('effect')]"),
            ["effect"]
        );
        assert_eq!(
            expression_parameter_references("[concat(Parameters( 'A' ), parameters('b'))]"),
            ["A", "b"]
        );
        assert!(expression_parameter_references("[[parameters('x')]").is_empty());
        assert!(expression_parameter_references("parameters('x')").is_empty());
        assert!(expression_parameter_references("Audit").is_empty());
        assert!(expression_parameter_references("[myparameters('x')]").is_empty());
    }

    #[test]
    fn deployment_template_parameters_are_the_template_s_own() {
        let rule = json!({
            "if": {"allOf": [
                {"field": "type", "equals": "Microsoft.ContainerService/managedClusters"},
                {"field": "location", "in": "[parameters('locations')]"}
            ]},
            "then": {
                "effect": "[parameters('effect')]",
                "details": {
                    "type": "Microsoft.ContainerService/managedClusters",
                    "existenceCondition": {"field": "x", "equals": "[parameters('wanted')]"},
                    "deployment": {"Properties": {
                        "mode": "incremental",
                        "Template": {
                            "parameters": {"clusterName": {"type": "string"}},
                            "resources": [{"name": "[parameters('clusterName')]"}]
                        },
                        "parameters": {"clusterName": {"value": "[field('name')]"},
                                       "tier": {"value": "[parameters('tier')]"}}
                    }}
                }
            }
        });
        assert_eq!(
            policy_rule_parameter_references(&rule),
            ["effect", "locations", "tier", "wanted"]
        );
    }

    #[test]
    fn a_template_key_elsewhere_is_not_skipped() {
        let rule = json!({"if": {"field": "type", "equals": "x"},
            "then": {"effect": "modify", "details": {"operations": [
                {"operation": "addOrReplace", "field": "tags.t", "value": "[parameters('tag')]"}
            ], "template": "[parameters('t')]"}}});
        assert_eq!(policy_rule_parameter_references(&rule), ["t", "tag"]);
    }

    #[test]
    fn undeclared_is_case_insensitive() {
        let refs = vec!["Effect".to_string(), "other".to_string()];
        let declared: BTreeMap<String, ()> = [("effect".to_string(), ())].into();
        assert_eq!(undeclared(&refs, &declared), ["other"]);
    }
}
