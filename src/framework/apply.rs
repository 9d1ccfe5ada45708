//! The generic apply rules: an update that changes nothing the remote API holds is answered
//! here, once for every resource, and a new state keeps every known planned value.

use super::schema::Block;
use super::timeouts;
use super::value::Value;

/// The planned value with every unknown replaced by the corresponding part of `fresh` (what
/// the remote API returned), so a new state keeps every known planned value exactly, as
/// Terraform demands, and fills in only what was "known after apply".
pub fn fill_unknowns(planned: &Value, fresh: &Value) -> Value {
    match planned {
        Value::Unknown => fresh.clone(),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), fill_unknowns(v, fresh.get(k))))
                .collect(),
        ),
        Value::List(items) => Value::List(fill_elements(items, fresh)),
        Value::Set(items) => Value::Set(fill_elements(items, fresh)),
        other => other.clone(),
    }
}

fn fill_elements(items: &[Value], fresh: &Value) -> Vec<Value> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| fill_unknowns(v, fresh.elements().get(i).unwrap_or(&Value::Null)))
        .collect()
}

/// The new state of an update that changes only top-level attributes or blocks named in
/// `ignored`: everything else in `planned` is either unknown ("known after apply" for computed
/// attributes) or equal to `prior`. `None` when something else changes.
pub fn unchanged_except(prior: &Value, planned: &Value, ignored: &[&str]) -> Option<Value> {
    let (Value::Object(p), Value::Object(n)) = (prior, planned) else {
        return None;
    };
    n.iter()
        .filter(|(k, _)| !ignored.contains(&k.as_str()))
        .all(|(k, v)| same_where_known(v, p.get(k).unwrap_or(&Value::Null)))
        .then(|| fill_unknowns(planned, prior))
}

/// The new state of an update that changes nothing but `timeouts` and what the schema marks
/// `local_only`: such an update needs no call to the remote API, so the server answers it
/// without calling the resource's `update`.
pub fn local_only_update(block: &Block, prior: &Value, planned: &Value) -> Option<Value> {
    let mut ignored = vec![timeouts::BLOCK_NAME];
    ignored.extend(block.local_only_names());
    unchanged_except(prior, planned, &ignored)
}

fn same_where_known(planned: &Value, prior: &Value) -> bool {
    match (planned, prior) {
        (Value::Unknown, _) => true,
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|p| same_where_known(v, p)))
        }
        (Value::List(a), Value::List(b)) | (Value::Set(a), Value::Set(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_where_known(x, y))
        }
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Attribute, NestedBlock};

    fn prior() -> Value {
        Value::object([
            ("id", Value::string("x")),
            ("name", Value::string("n")),
            ("test", Value::List(vec![])),
            ("timeouts", Value::Null),
        ])
    }

    #[test]
    fn only_timeouts_and_local_only_changes_skip_the_update() {
        let block = Block::new()
            .attribute(Attribute::string("id").computed().description("d"))
            .attribute(Attribute::string("name").required().description("d"))
            .block(
                NestedBlock::list(
                    "test",
                    Block::new().attribute(Attribute::string("n").required().description("d")),
                )
                .local_only(),
            );
        let mut planned = prior();
        planned.set("id", Value::Unknown);
        planned.set("timeouts", Value::object([("create", Value::string("1m"))]));
        planned.set(
            "test",
            Value::List(vec![Value::object([("n", Value::string("t"))])]),
        );
        let state = local_only_update(&block, &prior(), &planned).expect("no remote change");
        assert_eq!(state.get("id"), &Value::string("x"));
        assert_eq!(state.get("test"), planned.get("test"));
        assert!(unchanged_except(&prior(), &planned, &[timeouts::BLOCK_NAME]).is_none());
        let mut renamed = planned.clone();
        renamed.set("name", Value::string("m"));
        assert!(local_only_update(&block, &prior(), &renamed).is_none());
        assert!(local_only_update(&block, &Value::Null, &planned).is_none());
    }

    #[test]
    fn fill_unknowns_keeps_known_planned_values() {
        let planned = Value::object([
            ("id", Value::Unknown),
            (
                "list",
                Value::List(vec![Value::Unknown, Value::string("p")]),
            ),
        ]);
        let fresh = Value::object([
            ("id", Value::string("/x")),
            ("list", Value::string_list(["a", "b"])),
        ]);
        let out = fill_unknowns(&planned, &fresh);
        assert_eq!(out.get("id"), &Value::string("/x"));
        assert_eq!(out.get("list"), &Value::string_list(["a", "p"]));
    }
}
