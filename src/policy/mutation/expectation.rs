//! Whether a mutated object holds what a `test` block expects.

use serde_json::Value as Json;

use super::location::Segment;
use super::mutator::Mutator;

/// Whether `object` contains `expected`: every field of an expected object is present with a
/// contained value; a list element whose `name` (or the key a location uses) matches is
/// compared with the expected element of that name, other lists element by element in order.
/// Returns the JSON path of the first difference.
pub fn contains(object: &Json, expected: &Json, list_keys: &[String]) -> Result<(), String> {
    contains_at(object, expected, list_keys, "")
}

fn contains_at(actual: &Json, expected: &Json, keys: &[String], at: &str) -> Result<(), String> {
    match (actual, expected) {
        (Json::Object(a), Json::Object(e)) => {
            for (k, ev) in e {
                let path = format!("{at}.{k}");
                let av = a
                    .get(k)
                    .ok_or_else(|| format!("{} is missing", path.trim_start_matches('.')))?;
                contains_at(av, ev, keys, &path)?;
            }
            Ok(())
        }
        (Json::Array(a), Json::Array(e)) => {
            for (i, ev) in e.iter().enumerate() {
                let keyed = keys.iter().find_map(|k| ev.get(k).map(|v| (k.as_str(), v)));
                match keyed {
                    Some((k, kv)) => {
                        let label = kv.as_str().map_or_else(|| kv.to_string(), str::to_string);
                        let path = format!("{at}[{k}: {label}]");
                        let av = a.iter().find(|x| x.get(k) == Some(kv)).ok_or_else(|| {
                            format!("{} is missing", path.trim_start_matches('.'))
                        })?;
                        contains_at(av, ev, keys, &path)?;
                    }
                    None => {
                        let path = format!("{at}[{i}]");
                        let av = a.get(i).ok_or_else(|| {
                            format!("{} is missing", path.trim_start_matches('.'))
                        })?;
                        contains_at(av, ev, keys, &path)?;
                    }
                }
            }
            Ok(())
        }
        (a, e) if a == e => Ok(()),
        (a, e) => Err(format!(
            "{} is {a}, expected {e}",
            if at.is_empty() {
                "the object"
            } else {
                at.trim_start_matches('.')
            }
        )),
    }
}

/// The list keys a set of mutators' locations use (`name` always included), for [`contains`].
pub fn list_keys<'a>(mutators: impl IntoIterator<Item = &'a Mutator>) -> Vec<String> {
    let mut keys = vec!["name".to_string()];
    for m in mutators {
        for s in &m.location.segments {
            if let Segment::ListKey { key, .. } = s {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::mutation::test_support::pod;
    use serde_json::json;

    #[test]
    fn contains_matches_lists_by_key() {
        let object = pod(
            json!([{"name": "a", "image": "x", "securityContext": {"runAsUser": 1}},
                                {"name": "b"}]),
        );
        let keys = vec!["name".to_string()];
        let expect = json!({"spec": {"containers": [{"name": "b"}, {"name": "a", "securityContext": {"runAsUser": 1}}]}});
        assert!(contains(&object, &expect, &keys).is_ok());
        let wrong =
            json!({"spec": {"containers": [{"name": "a", "securityContext": {"runAsUser": 2}}]}});
        assert_eq!(
            contains(&object, &wrong, &keys).unwrap_err(),
            "spec.containers[name: a].securityContext.runAsUser is 1, expected 2"
        );
        let missing = json!({"spec": {"containers": [{"name": "c"}]}});
        assert!(contains(&object, &missing, &keys)
            .unwrap_err()
            .contains("[name: c] is missing"));
    }
}
