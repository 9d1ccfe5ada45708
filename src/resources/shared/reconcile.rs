//! Turning what Azure returns into Terraform state without perpetual diffs: ARM ids compare
//! case-insensitively, JSON semantically, Azure-managed metadata keys are ignored, and wherever
//! the remote value means the same as the prior one the user's own form is kept.

use serde_json::{Map, Value as Json};

use crate::arm::Scope;
use crate::framework::apply::unchanged_except;
use crate::framework::timeouts;
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
pub fn keep_str_ci(prior: &Value, remote: Option<&str>) -> Value {
    Value::opt_string(kept_str_ci(prior.as_str(), remote))
}

/// [`keep_str_ci`] for typed state.
pub fn kept_str_ci(prior: Option<&str>, remote: Option<&str>) -> Option<String> {
    match (prior, remote) {
        (Some(p), Some(r)) if same_id(p, r) => Some(p.to_string()),
        (_, r) => r.map(str::to_string),
    }
}

/// An optional free-text property: the remote value, where Azure's empty string and absence
/// both mean "not set" (unless the user wrote the empty string).
pub fn keep_text(prior: &Value, remote: Option<&str>) -> Value {
    Value::opt_string(kept_text(prior.as_str(), remote))
}

/// [`keep_text`] for typed state.
pub fn kept_text(prior: Option<&str>, remote: Option<&str>) -> Option<String> {
    match remote {
        Some(r) if r.is_empty() && prior != Some("") => None,
        other => other.map(str::to_string),
    }
}

/// A list of ids: the prior list while equal element-wise ignoring case (null and empty being
/// the same), else the remote list (null when empty).
pub fn keep_id_list(prior: &Value, remote: &[String]) -> Value {
    let prior = prior.is_set().then(|| prior.string_elements());
    match kept_id_list(prior.as_deref(), remote) {
        Some(items) => Value::string_list(items),
        None => Value::Null,
    }
}

/// [`keep_id_list`] for typed state.
pub fn kept_id_list(prior: Option<&[String]>, remote: &[String]) -> Option<Vec<String>> {
    let prior_items = prior.unwrap_or_default();
    let same = prior_items.len() == remote.len()
        && prior_items.iter().zip(remote).all(|(p, r)| same_id(p, r));
    if same && (prior.is_some() || remote.is_empty()) {
        return prior.map(<[String]>::to_vec);
    }
    (!remote.is_empty()).then(|| remote.to_vec())
}

/// A set of ids: like [`keep_id_list`] but order-insensitive.
pub fn keep_id_set(prior: &Value, remote: &[String]) -> Value {
    let prior_items = prior.string_elements();
    let same = prior_items.len() == remote.len()
        && remote
            .iter()
            .all(|r| prior_items.iter().any(|p| same_id(p, r)));
    if same && (prior.is_set() || remote.is_empty()) {
        return prior.clone();
    }
    if remote.is_empty() {
        Value::Null
    } else {
        Value::Set(remote.iter().map(|s| Value::string(s.clone())).collect())
    }
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

pub use crate::framework::apply::fill_unknowns;

/// The new state of an update that changes only `timeouts`, which needs no call to Azure.
/// The framework's server already answers such updates before calling `update`
/// ([`crate::framework::apply::local_only_update`]).
pub fn timeouts_only_update(prior: &Value, planned: &Value) -> Option<Value> {
    unchanged_except(prior, planned, &[timeouts::BLOCK_NAME])
}

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

/// The metadata object to send, parsed from the attribute (null when unset or unparseable;
/// the validator reports the latter).
pub fn metadata_to_arm(value: &Value) -> Option<Json> {
    metadata_text_to_arm(value.as_str())
}

/// [`metadata_to_arm`] for typed state.
pub fn metadata_text_to_arm(text: Option<&str>) -> Option<Json> {
    text.and_then(|s| serde_json::from_str::<Json>(s).ok())
        .filter(Json::is_object)
}

/// The state for a metadata attribute: the prior string while the keys the user set (and any
/// key that is not Azure-managed) mean the same remotely; else the remote object without
/// Azure-managed keys, as canonical JSON (null when nothing is left).
pub fn metadata_state(prior: &Value, remote: Option<&Json>) -> Value {
    Value::opt_string(metadata_text_state(prior.as_str(), remote))
}

/// [`metadata_state`] for typed state.
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
    use serde_json::json;

    #[test]
    fn ids_keep_user_casing() {
        let prior = Value::string("/subscriptions/S/resourceGroups/RG");
        assert_eq!(
            keep_str_ci(&prior, Some("/subscriptions/s/resourcegroups/rg")),
            prior
        );
        assert_eq!(
            keep_str_ci(&prior, Some("/subscriptions/s/resourcegroups/other")),
            Value::string("/subscriptions/s/resourcegroups/other")
        );
        let list = Value::string_list(["/A", "/b"]);
        assert_eq!(keep_id_list(&list, &["/a".into(), "/B".into()]), list);
        assert_eq!(keep_id_list(&Value::Null, &[]), Value::Null);
        assert_eq!(keep_id_list(&Value::List(vec![]), &[]), Value::List(vec![]));
        let set = Value::Set(vec![Value::string("/X"), Value::string("/y")]);
        assert_eq!(keep_id_set(&set, &["/Y".into(), "/x".into()]), set);
    }

    #[test]
    fn metadata_ignores_azure_keys_unless_user_set() {
        let prior = Value::string(r#"{ "team": "aks" }"#);
        let remote = json!({"team": "aks", "createdBy": "x", "createdOn": "y"});
        assert_eq!(metadata_state(&prior, Some(&remote)), prior);
        let drift = json!({"team": "web", "createdBy": "x"});
        assert_eq!(
            metadata_state(&prior, Some(&drift)),
            Value::string(r#"{"team":"web"}"#)
        );
        assert_eq!(
            metadata_state(&Value::Null, Some(&json!({"assignedBy": "me"}))),
            Value::Null
        );
        let mine = Value::string(r#"{"assignedBy":"me"}"#);
        assert_eq!(
            metadata_state(&mine, Some(&json!({"assignedBy": "someone else"}))),
            Value::string(r#"{"assignedBy":"someone else"}"#)
        );
        assert_eq!(
            metadata_state(&Value::Null, Some(&json!({"extra": 1}))),
            Value::string(r#"{"extra":1}"#)
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
        let mut d = Diagnostics::new();
        arm_scope(
            &Value::string("rg-1"),
            &AttributePath::attr("scope"),
            &mut d,
        );
        assert!(d.0[0].detail.contains("accepted forms"), "{:?}", d);
        let mut d = Diagnostics::new();
        arm_scope(&Value::string("/"), &AttributePath::attr("scope"), &mut d);
        assert!(d.has_errors());
        let mut d = Diagnostics::new();
        arm_scope(
            &Value::string("/subscriptions/x/resourceGroups/rg"),
            &AttributePath::attr("scope"),
            &mut d,
        );
        assert!(d.is_empty());
    }
}
