//! Schema-driven codecs between Terraform's wire encodings and the framework's [`Value`].
//!
//! Terraform sends every object as msgpack (cty's encoding) and stored state as JSON; neither
//! carries types except in `dynamic` slots, so every decode needs the schema's [`Type`].

pub mod json;
pub mod msgpack;
pub mod types;

use crate::framework::{Type, Value};

use super::proto::tfplugin5::DynamicValue;

/// Why wire bytes could not be turned into a value (or back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not well-formed msgpack.
    #[error("malformed msgpack: {0}")]
    Malformed(String),
    /// The bytes are not well-formed JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// Well-formed, but the value does not fit the type at `path`.
    #[error("at {path}: {message}")]
    Mismatch {
        /// Where in the value (e.g. `.rules[0].name`), `(root)` for the whole value.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A type constraint could not be parsed.
    #[error("invalid type constraint: {0}")]
    Type(String),
}

impl WireError {
    pub(crate) fn mismatch(path: &str, message: impl Into<String>) -> WireError {
        WireError::Mismatch {
            path: if path.is_empty() {
                "(root)".to_string()
            } else {
                path.to_string()
            },
            message: message.into(),
        }
    }
}

/// One step down into a value, as error paths show it: `[0]`, `["key"]`, `.attribute`.
pub(crate) enum Step<'a> {
    Index(usize),
    Key(&'a str),
    Attribute(&'a str),
}

/// Runs `f` with `step` appended to the error path, which is restored whatever `f` returns.
pub(crate) fn at<T>(path: &mut String, step: Step<'_>, f: impl FnOnce(&mut String) -> T) -> T {
    use std::fmt::Write as _;
    let len = path.len();
    let _ = match step {
        Step::Index(i) => write!(path, "[{i}]"),
        Step::Key(k) => write!(path, "[{k:?}]"),
        Step::Attribute(name) => write!(path, ".{name}"),
    };
    let r = f(path);
    path.truncate(len);
    r
}

/// A list or a set of `items`, as `ty` says.
pub(crate) fn sequence(ty: &Type, items: Vec<Value>) -> Value {
    if matches!(ty, Type::Set(_)) {
        Value::Set(items)
    } else {
        Value::List(items)
    }
}

/// A tuple value must have exactly as many elements as its type.
pub(crate) fn check_tuple_len(path: &str, expected: usize, got: usize) -> Result<(), WireError> {
    if expected == got {
        return Ok(());
    }
    Err(WireError::mismatch(
        path,
        format!("tuple with {expected} elements required, got {got}"),
    ))
}

/// Decodes a request's `DynamicValue` with `ty`: msgpack if present, else JSON, else null
/// (Terraform's own reading of an empty DynamicValue).
pub fn decode_dynamic_value(dv: Option<&DynamicValue>, ty: &Type) -> Result<Value, WireError> {
    match dv {
        Some(dv) if !dv.msgpack.is_empty() => msgpack::decode(&dv.msgpack, ty),
        Some(dv) if !dv.json.is_empty() => json::decode(&dv.json, ty, false),
        _ => Ok(Value::Null),
    }
}

/// Encodes a response value as a msgpack `DynamicValue`.
pub fn encode_dynamic_value(value: &Value, ty: &Type) -> Result<DynamicValue, WireError> {
    Ok(DynamicValue {
        msgpack: msgpack::encode(value, ty)?,
        json: Vec::new(),
    })
}
