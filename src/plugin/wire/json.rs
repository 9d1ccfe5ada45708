//! cty's JSON encoding: the format of stored state (`RawState.json`) and an alternative
//! `DynamicValue` encoding. JSON cannot express unknown values.

use std::collections::BTreeMap;

use serde_json::Value as J;

use crate::framework::{Number, Type, Value};

use super::msgpack::parse_number_text;
use super::{at, check_tuple_len, sequence, Step, WireError};

/// Decodes JSON bytes as a value of type `ty`.
///
/// Attributes missing from an object become null (as cty does for state written by an older
/// schema). With `ignore_undefined`, attributes the type does not know are dropped (what
/// terraform-plugin-framework does for stored state); otherwise they are an error.
pub fn decode(bytes: &[u8], ty: &Type, ignore_undefined: bool) -> Result<Value, WireError> {
    let json: J =
        serde_json::from_slice(bytes).map_err(|e| WireError::MalformedJson(e.to_string()))?;
    decode_value(&json, ty, ignore_undefined)
}

/// Like [`decode`] for an already-parsed JSON document.
pub fn decode_value(json: &J, ty: &Type, ignore_undefined: bool) -> Result<Value, WireError> {
    interpret(json, ty, ignore_undefined, &mut String::new())
}

fn kind(j: &J) -> &'static str {
    match j {
        J::Null => "null",
        J::Bool(_) => "bool",
        J::Number(_) => "number",
        J::String(_) => "string",
        J::Array(_) => "array",
        J::Object(_) => "object",
    }
}

fn json_number(n: &serde_json::Number) -> Number {
    if let Some(i) = n.as_i64() {
        Number::Int(i)
    } else if let Some(u) = n.as_u64() {
        Number::UInt(u)
    } else {
        // serde_json without arbitrary precision yields an f64 here.
        Number::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn interpret(j: &J, ty: &Type, ignore: bool, path: &mut String) -> Result<Value, WireError> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let wrong = |path: &str| WireError::mismatch(path, format!("{ty} required, got {}", kind(j)));
    match ty {
        Type::Dynamic => {
            let obj = j.as_object().ok_or_else(|| {
                WireError::mismatch(path, "dynamic value must be {\"value\", \"type\"}")
            })?;
            let type_json = obj
                .get("type")
                .ok_or_else(|| WireError::mismatch(path, "dynamic value without \"type\""))?;
            let concrete = Type::from_json(type_json).map_err(|e| WireError::Type(e.0))?;
            let inner = obj.get("value").unwrap_or(&J::Null);
            let v = interpret(inner, &concrete, ignore, path)?;
            Ok(Value::Dynamic(concrete, Box::new(v)))
        }
        Type::Bool => match j {
            J::Bool(b) => Ok(Value::Bool(*b)),
            // cty converts string primitives on decode.
            J::String(s) if s == "true" => Ok(Value::Bool(true)),
            J::String(s) if s == "false" => Ok(Value::Bool(false)),
            _ => Err(wrong(path)),
        },
        Type::Number => match j {
            J::Number(n) => Ok(Value::Number(json_number(n))),
            J::String(s) => Ok(Value::Number(parse_number_text(s, path)?)),
            _ => Err(wrong(path)),
        },
        Type::String => match j {
            J::String(s) => Ok(Value::String(s.clone())),
            J::Bool(b) => Ok(Value::String(b.to_string())),
            J::Number(n) => Ok(Value::String(n.to_string())),
            _ => Err(wrong(path)),
        },
        Type::List(elem) | Type::Set(elem) => {
            let items = j.as_array().ok_or_else(|| wrong(path))?;
            let out = items
                .iter()
                .enumerate()
                .map(|(i, item)| at(path, Step::Index(i), |p| interpret(item, elem, ignore, p)))
                .collect::<Result<_, _>>()?;
            Ok(sequence(ty, out))
        }
        Type::Tuple(elems) => {
            let items = j.as_array().ok_or_else(|| wrong(path))?;
            check_tuple_len(path, elems.len(), items.len())?;
            let out = items
                .iter()
                .zip(elems)
                .enumerate()
                .map(|(i, (item, ety))| {
                    at(path, Step::Index(i), |p| interpret(item, ety, ignore, p))
                })
                .collect::<Result<_, _>>()?;
            Ok(Value::Tuple(out))
        }
        Type::Map(elem) => {
            let entries = j.as_object().ok_or_else(|| wrong(path))?;
            let out = entries
                .iter()
                .map(|(k, item)| {
                    let v = at(path, Step::Key(k), |p| interpret(item, elem, ignore, p))?;
                    Ok((k.clone(), v))
                })
                .collect::<Result<_, _>>()?;
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let entries = j.as_object().ok_or_else(|| wrong(path))?;
            if !ignore {
                if let Some(extra) = entries.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(WireError::mismatch(
                        path,
                        format!("unsupported attribute {extra:?}"),
                    ));
                }
            }
            let mut out = BTreeMap::new();
            for (k, aty) in attrs {
                let item = entries.get(k).unwrap_or(&J::Null);
                let v = at(path, Step::Attribute(k), |path| {
                    interpret(item, aty, ignore, path)
                });
                out.insert(k.clone(), v?);
            }
            Ok(Value::Object(out))
        }
    }
}

/// Encodes a wholly known value as cty JSON for type `ty`.
pub fn encode(value: &Value, ty: &Type) -> Result<J, WireError> {
    to_json(value, ty, &mut String::new())
}

fn number_json(n: &Number) -> J {
    match n {
        Number::Int(i) => J::from(*i),
        Number::UInt(u) => J::from(*u),
        Number::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or_else(|| J::String(f.to_string())),
        Number::Decimal(s) => serde_json::from_str::<serde_json::Number>(s)
            .map(J::Number)
            .unwrap_or_else(|_| J::String(s.clone())),
    }
}

fn to_json(value: &Value, ty: &Type, path: &mut String) -> Result<J, WireError> {
    match value {
        Value::Unknown => return Err(WireError::mismatch(path, "JSON cannot encode unknown")),
        Value::Null => return Ok(J::Null),
        _ => {}
    }
    if let Type::Dynamic = ty {
        let Value::Dynamic(concrete, inner) = value else {
            return Err(WireError::mismatch(
                path,
                "dynamic slot holds a value without its type",
            ));
        };
        return Ok(serde_json::json!({
            "value": to_json(inner, concrete, path)?,
            "type": concrete.to_json(),
        }));
    }
    match (ty, value) {
        (_, Value::Dynamic(_, inner)) => to_json(inner, ty, path),
        (Type::Bool, Value::Bool(b)) => Ok(J::Bool(*b)),
        (Type::Number, Value::Number(n)) => Ok(number_json(n)),
        (Type::String, Value::String(s)) => Ok(J::String(s.clone())),
        (Type::List(e) | Type::Set(e), Value::List(items) | Value::Set(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| at(path, Step::Index(i), |path| to_json(v, e, path)))
            .collect::<Result<Vec<_>, _>>()
            .map(J::Array),
        (Type::Tuple(elems), Value::Tuple(items)) if elems.len() == items.len() => items
            .iter()
            .zip(elems)
            .enumerate()
            .map(|(i, (v, t))| at(path, Step::Index(i), |path| to_json(v, t, path)))
            .collect::<Result<Vec<_>, _>>()
            .map(J::Array),
        (Type::Map(e), Value::Map(m)) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                out.insert(
                    k.clone(),
                    at(path, Step::Key(k), |path| to_json(v, e, path))?,
                );
            }
            Ok(J::Object(out))
        }
        (Type::Object(attrs), Value::Object(m)) => {
            let mut out = serde_json::Map::new();
            for (k, t) in attrs {
                let v = m.get(k).unwrap_or(&Value::Null);
                out.insert(
                    k.clone(),
                    at(path, Step::Attribute(k), |path| to_json(v, t, path))?,
                );
            }
            Ok(J::Object(out))
        }
        _ => Err(WireError::mismatch(
            path,
            format!("value does not conform to {ty}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_state_missing_becomes_null_and_extra_is_ignored() {
        let ty = Type::object([("id", Type::String), ("name", Type::String)]);
        let v = decode(br#"{"id":"x","gone":1}"#, &ty, true).unwrap();
        assert_eq!(
            v,
            Value::object([("id", Value::string("x")), ("name", Value::Null)])
        );
        assert!(decode(br#"{"id":"x","gone":1}"#, &ty, false).is_err());
    }

    #[test]
    fn pretty_printed_state_parses() {
        let ty = Type::object([("n", Type::Number), ("tags", Type::map(Type::String))]);
        let v = decode(
            b"{\n  \"n\": 1.5,\n  \"tags\": {\"a\": \"b\"}\n}",
            &ty,
            true,
        )
        .unwrap();
        assert_eq!(v.get("n"), &Value::Number(Number::Float(1.5)));
    }

    #[test]
    fn dynamic_uses_value_and_type() {
        let ty = Type::object([("p", Type::Dynamic)]);
        let v = decode(
            br#"{"p":{"value":["a"],"type":["list","string"]}}"#,
            &ty,
            false,
        )
        .unwrap();
        assert_eq!(
            v.get("p"),
            &Value::Dynamic(
                Type::list(Type::String),
                Box::new(Value::List(vec![Value::string("a")]))
            )
        );
        let back = encode(&v, &ty).unwrap();
        assert_eq!(back["p"]["type"], serde_json::json!(["list", "string"]));
        assert_eq!(
            decode(br#"{"p":null}"#, &ty, false).unwrap().get("p"),
            &Value::Null
        );
    }

    #[test]
    fn round_trip_every_type() {
        let ty = Type::object([
            ("b", Type::Bool),
            ("n", Type::Number),
            ("s", Type::String),
            ("l", Type::list(Type::String)),
            ("set", Type::set(Type::Number)),
            ("m", Type::map(Type::Bool)),
            ("t", Type::Tuple(vec![Type::String, Type::Bool])),
            ("o", Type::object([("x", Type::String)])),
            ("nul", Type::String),
        ]);
        let mut m = BTreeMap::new();
        m.insert("k".to_string(), Value::Bool(true));
        let v = Value::object([
            ("b", Value::Bool(false)),
            ("n", Value::from(-7i64)),
            ("s", Value::string("x")),
            ("l", Value::List(vec![Value::string("a"), Value::Null])),
            ("set", Value::Set(vec![Value::from(1i64)])),
            ("m", Value::Map(m)),
            (
                "t",
                Value::Tuple(vec![Value::string("a"), Value::Bool(true)]),
            ),
            ("o", Value::object([("x", Value::string("y"))])),
            ("nul", Value::Null),
        ]);
        let j = encode(&v, &ty).unwrap();
        let back = decode_value(&j, &ty, false).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn unknown_cannot_be_json() {
        assert!(encode(&Value::Unknown, &Type::String).is_err());
    }

    #[test]
    fn numbers_from_strings_and_big_values() {
        assert_eq!(
            decode(br#""42""#, &Type::Number, false).unwrap(),
            Value::from(42i64)
        );
        assert_eq!(
            decode(b"18446744073709551615", &Type::Number, false).unwrap(),
            Value::Number(Number::UInt(u64::MAX))
        );
        assert!(decode(br#""nope""#, &Type::Number, false).is_err());
    }

    #[test]
    fn malformed_is_error() {
        assert!(decode(b"{", &Type::String, false).is_err());
        assert!(decode(b"[1]", &Type::object([("a", Type::String)]), false).is_err());
        assert!(decode(b"{}", &Type::Dynamic, false).is_err());
    }
}
