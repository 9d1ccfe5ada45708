//! Turning what Azure returns into Terraform state without perpetual diffs: ARM ids compare
//! case-insensitively, JSON semantically, Azure-managed metadata keys are ignored, and wherever
//! the remote value means the same as the prior one the user's own form is kept.

use serde_json::{Map, Value as Json};

use crate::arm::Scope;
use crate::framework::typed::Typed;
use crate::framework::{AttributePath, Diagnostics, ModifyPlanRequest, ModifyPlanResponse, Value};
use crate::policy::parameters::json_equal;

use super::json::canonical_json;

/// Metadata keys Azure writes itself; they are only compared when the user sets them.
pub const AZURE_MANAGED_METADATA_KEYS: &[&str] = &[
    "assignedBy",
    "createdBy",
    "createdOn",
    "updatedBy",
    "updatedOn",
];

/// ARM ids and scopes are case-insensitive; a trailing slash means nothing.
pub fn same_id(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// The prior string while it equals `remote` ignoring case (ids, enum values Azure re-cases),
/// else `remote`.
pub fn kept_str_ci(prior: Option<&str>, remote: Option<&str>) -> Option<String> {
    match (prior, remote) {
        (Some(p), Some(r)) if same_id(p, r) => Some(p.to_string()),
        (_, r) => r.map(str::to_string),
    }
}

/// An optional free-text property: the remote value, where Azure's empty string and absence
/// both mean "not set" (unless the user wrote the empty string).
pub fn kept_text(prior: Option<&str>, remote: Option<&str>) -> Option<String> {
    match remote {
        Some(r) if r.is_empty() && prior != Some("") => None,
        other => other.map(str::to_string),
    }
}

/// A list of ids: the prior list while equal element-wise ignoring case (null and empty being
/// the same), else the remote list (null when empty).
pub fn kept_id_list(prior: Option<&[String]>, remote: &[String]) -> Option<Vec<String>> {
    let prior_items = prior.unwrap_or_default();
    let same = prior_items.len() == remote.len()
        && prior_items.iter().zip(remote).all(|(p, r)| same_id(p, r));
    if same && (prior.is_some() || remote.is_empty()) {
        return prior.map(<[String]>::to_vec);
    }
    (!remote.is_empty()).then(|| remote.to_vec())
}

/// A set of ids: like [`kept_id_list`] but order-insensitive.
pub fn kept_id_set(prior: Option<&[String]>, remote: &[String]) -> Option<Vec<String>> {
    let prior_items = prior.unwrap_or_default();
    let same = prior_items.len() == remote.len()
        && remote
            .iter()
            .all(|r| prior_items.iter().any(|p| same_id(p, r)));
    if same && (prior.is_some() || remote.is_empty()) {
        return prior.map(<[String]>::to_vec);
    }
    (!remote.is_empty()).then(|| remote.to_vec())
}

/// Structural equality where a null collection equals an empty one (Azure drops empty arrays,
/// Terraform users may write them).
pub fn equivalent(a: &Value, b: &Value) -> bool {
    let empty = |v: &Value| {
        v.is_null() || matches!(v, Value::List(x) | Value::Set(x) | Value::Tuple(x) if x.is_empty())
    };
    match (a, b) {
        (Value::Dynamic(_, a), b) | (b, Value::Dynamic(_, a)) => equivalent(a, b),
        _ if empty(a) && empty(b) => true,
        (Value::List(x) | Value::Set(x), Value::List(y) | Value::Set(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equivalent(x, y))
        }
        (Value::Object(x), Value::Object(y)) => x
            .keys()
            .chain(y.keys())
            .all(|k| equivalent(a.get(k), b.get(k))),
        _ => a == b,
    }
}

/// `prior` while it is [`equivalent`] to `fresh`, else `fresh` (for nested blocks, which
/// Terraform represents as lists that are never null).
pub fn keep_equivalent(prior: &Value, fresh: Value) -> Value {
    if !prior.is_null() && equivalent(prior, &fresh) {
        prior.clone()
    } else {
        fresh
    }
}

/// [`keep_equivalent`] for typed blocks.
pub fn kept_equivalent<T: Typed + Clone>(prior: &T, fresh: T) -> T {
    if equivalent(&prior.to_value(), &fresh.to_value()) {
        prior.clone()
    } else {
        fresh
    }
}

pub use crate::framework::apply::fill_unknowns;

/// Drops planned replacements caused only by letter case (or a trailing slash) in the given
/// top-level id attributes: ARM ids are case-insensitive, so a configuration that spells an id
/// differently from an import or from Azure updates in place instead of recreating.
pub fn ignore_case_only_replacements(
    req: ModifyPlanRequest<'_>,
    change: &mut ModifyPlanResponse,
    attributes: &[&str],
) {
    let prior = req.prior;
    let planned = &change.planned;
    change.requires_replace.retain(|path| {
        let case_only = attributes.iter().any(|name| {
            *path == AttributePath::attr(name)
                && match (prior.get(name).as_str(), planned.get(name).as_str()) {
                    (Some(a), Some(b)) => same_id(a, b),
                    _ => false,
                }
        });
        !case_only
    });
}

/// Validator: a JSON object in a string attribute (`jsonencode({...})`).
pub fn json_object_string(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(s) = value.as_str() else { return };
    match serde_json::from_str::<Json>(s) {
        Ok(Json::Object(_)) => {}
        Ok(_) => diags.error_at(
            path.clone(),
            "Metadata must be a JSON object",
            "Write it with jsonencode({ key = \"value\" }).",
        ),
        Err(e) => diags.error_at(
            path.clone(),
            "Invalid JSON",
            format!("The value is not valid JSON ({e}). Write it with jsonencode({{ ... }})."),
        ),
    }
}

/// Validator: an ARM scope (management group, subscription, resource group or resource).
pub fn arm_scope(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(s) = value.as_str() else { return };
    match Scope::parse(s) {
        Ok(Scope::Tenant) => diags.error_at(
            path.clone(),
            "Invalid scope",
            "The tenant root \"/\" cannot hold policy assignments or exemptions; use the tenant \
             root management group (/providers/Microsoft.Management/managementGroups/<tenant id>) \
             instead.",
        ),
        Ok(_) => {}
        Err(e) => diags.error_at(path.clone(), "Invalid scope", e.to_string()),
    }
}

/// The metadata object to send, parsed from the attribute (`None` when unset or unparseable;
/// the validator reports the latter).
pub fn metadata_text_to_arm(text: Option<&str>) -> Option<Json> {
    text.and_then(|s| serde_json::from_str::<Json>(s).ok())
        .filter(Json::is_object)
}

/// The state for a metadata attribute: the prior string while the keys the user set (and any
/// key that is not Azure-managed) mean the same remotely; else the remote object without
/// Azure-managed keys, as canonical JSON (`None` when nothing is left).
pub fn metadata_text_state(prior: Option<&str>, remote: Option<&Json>) -> Option<String> {
    let empty = Map::new();
    let remote = remote.and_then(Json::as_object).unwrap_or(&empty);
    let prior_object = metadata_text_to_arm(prior);
    let user_keys: Vec<&str> = prior_object
        .as_ref()
        .and_then(Json::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let visible: Map<String, Json> = remote
        .iter()
        .filter(|(k, _)| {
            user_keys.contains(&k.as_str()) || !AZURE_MANAGED_METADATA_KEYS.contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let visible = Json::Object(visible);
    match &prior_object {
        Some(p) if json_equal(p, &visible) => prior.map(str::to_string),
        _ if visible.as_object().is_some_and(Map::is_empty) && prior_object.is_none() => None,
        _ => Some(canonical_json(&visible)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::shared::testing::assert_first_detail;
    use crate::resources::shared::testing::validator_diags;
    use serde_json::json;

    #[test]
    fn ids_keep_user_casing() {
        let prior = "/subscriptions/S/resourceGroups/RG";
        assert_eq!(
            kept_str_ci(Some(prior), Some("/subscriptions/s/resourcegroups/rg")).as_deref(),
            Some(prior)
        );
        assert_eq!(
            kept_str_ci(Some(prior), Some("/subscriptions/s/resourcegroups/other")).as_deref(),
            Some("/subscriptions/s/resourcegroups/other")
        );
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let list = strings(&["/A", "/b"]);
        assert_eq!(
            kept_id_list(Some(&list), &strings(&["/a", "/B"])),
            Some(list.clone())
        );
        assert_eq!(kept_id_list(None, &[]), None);
        assert_eq!(kept_id_list(Some(&[]), &[]), Some(vec![]));
        let set = strings(&["/X", "/y"]);
        assert_eq!(
            kept_id_set(Some(&set), &strings(&["/Y", "/x"])),
            Some(set.clone())
        );
        assert_eq!(kept_id_set(None, &[]), None);
    }

    #[test]
    fn metadata_ignores_azure_keys_unless_user_set() {
        let prior = r#"{ "team": "aks" }"#;
        let remote = json!({"team": "aks", "createdBy": "x", "createdOn": "y"});
        assert_eq!(
            metadata_text_state(Some(prior), Some(&remote)).as_deref(),
            Some(prior)
        );
        let drift = json!({"team": "web", "createdBy": "x"});
        assert_eq!(
            metadata_text_state(Some(prior), Some(&drift)).as_deref(),
            Some(r#"{"team":"web"}"#)
        );
        assert_eq!(
            metadata_text_state(None, Some(&json!({"assignedBy": "me"}))),
            None
        );
        let mine = r#"{"assignedBy":"me"}"#;
        assert_eq!(
            metadata_text_state(Some(mine), Some(&json!({"assignedBy": "someone else"})))
                .as_deref(),
            Some(r#"{"assignedBy":"someone else"}"#)
        );
        assert_eq!(
            metadata_text_state(None, Some(&json!({"extra": 1}))).as_deref(),
            Some(r#"{"extra":1}"#)
        );
    }

    #[test]
    fn case_only_id_changes_do_not_replace() {
        let prior = Value::object([
            ("scope", Value::string("/subscriptions/S/resourceGroups/RG")),
            ("name", Value::string("a")),
        ]);
        let req = ModifyPlanRequest {
            prior: &prior,
            config: &Value::Null,
        };
        let mut change = ModifyPlanResponse {
            planned: Value::object([
                (
                    "scope",
                    Value::string("/subscriptions/s/resourcegroups/rg/"),
                ),
                ("name", Value::string("b")),
            ]),
            requires_replace: vec![AttributePath::attr("scope"), AttributePath::attr("name")],
            diags: Diagnostics::new(),
        };
        ignore_case_only_replacements(req, &mut change, &["scope", "name"]);
        assert_eq!(change.requires_replace, vec![AttributePath::attr("name")]);
    }

    #[test]
    fn null_and_empty_collections_are_equivalent() {
        let a = Value::List(vec![Value::object([("in", Value::Null)])]);
        let b = Value::List(vec![Value::object([("in", Value::List(vec![]))])]);
        assert!(equivalent(&a, &b));
        assert!(!equivalent(
            &Value::string_list(["a"]),
            &Value::string_list(["b"])
        ));
    }

    #[test]
    fn scopes_are_validated_with_accepted_forms() {
        let d = validator_diags(arm_scope, "scope", Value::string("rg-1"));
        assert_first_detail(&d, "accepted forms");
        assert!(validator_diags(arm_scope, "scope", Value::string("/")).has_errors());
        let resource_group = Value::string("/subscriptions/x/resourceGroups/rg");
        assert!(validator_diags(arm_scope, "scope", resource_group).is_empty());
    }
}
