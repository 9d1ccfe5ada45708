//! Lenient reading of the JSON inside policy documents: Azure and Gatekeeper ignore entries of
//! the wrong type, so these do too.

use serde_json::Value as Json;

/// A Kubernetes object's `metadata.name`, when it is a string.
pub(crate) fn object_name(object: &Json) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Json::as_str)
}

/// A Kubernetes object's `metadata.namespace`, when it is a string.
pub(crate) fn object_namespace(object: &Json) -> Option<&str> {
    object.pointer("/metadata/namespace").and_then(Json::as_str)
}

/// The strings of a JSON array; anything else (missing, not an array, non-string entries)
/// contributes nothing.
pub(crate) fn strings(v: Option<&Json>) -> Vec<String> {
    v.and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .map(str::to_string)
        .collect()
}

/// `value` with every string in it (not object keys) replaced by what `f` makes of it: how
/// definitions, rules and templates evaluate the expressions they hold. The first error stops
/// the walk.
pub(crate) fn try_map_strings<E>(
    value: &Json,
    f: &impl Fn(&str) -> Result<Json, E>,
) -> Result<Json, E> {
    Ok(match value {
        Json::String(s) => f(s)?,
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| try_map_strings(v, f))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), try_map_strings(v, f)?)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// [`try_map_strings`] for an `f` that cannot fail.
pub(crate) fn map_strings(value: &Json, f: impl Fn(&str) -> Json) -> Json {
    match try_map_strings(value, &|s| Ok::<_, std::convert::Infallible>(f(s))) {
        Ok(mapped) => mapped,
        Err(never) => match never {},
    }
}
