//! JSON values exposed as Terraform strings. Azure returns open JSON (policy rules, metadata,
//! parameters) whose key order and whitespace vary between calls and API versions; exposing it
//! in one canonical form keeps plans stable and lets users compare with `jsonencode(...)`.

use serde_json::Value as Json;

/// The JSON in a string attribute of a typed state, if it parses.
pub fn json_text(text: Option<&str>) -> Option<Json> {
    text.and_then(|s| serde_json::from_str(s).ok())
}

/// Compact JSON with object keys sorted at every level.
pub fn canonical_json(value: &Json) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Json, out: &mut String) {
    match value {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let v: Json = serde_json::from_str(r#"{"b":1,"a":{"d":[{"y":1,"x":2}],"c":"s"}}"#).unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"s","d":[{"x":2,"y":1}]},"b":1}"#
        );
    }
}
