//! Lenient reading of the JSON inside policy documents: Azure and Gatekeeper ignore entries of
//! the wrong type, so these do too.

use serde_json::Value as Json;

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
