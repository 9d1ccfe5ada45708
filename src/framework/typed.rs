//! Typed state: a resource declares one Rust struct per object (the resource itself and each
//! nested block) with [`typed_object!`], and converts configuration, plan and state between
//! [`Value`] and that struct instead of looking attributes up by name. A misspelt attribute
//! is then a compile error, and [`conforms`] lets one test hold every struct against its
//! schema.
//!
//! Field types and what they stand for:
//! - `String`, `bool`, `i64`: a value that must be known and set.
//! - `Option<T>`: null — or not wholly known, which reads as `None` too: a value decided only
//!   at apply carries nothing to check or copy yet. Writes `None` as null.
//! - `Knowable<T>`: null, unknown or known, kept apart, for plans that must keep an unknown.
//! - `Vec<T>`: a list (attribute or nested block); null and unknown read as empty. Use
//!   `Option<Vec<T>>` where null and empty differ.
//! - `SetOf<T>`, `BTreeMap<String, T>`: a set, a map.
//! - `Value`: the value as it is (`dynamic` attributes, blocks the framework owns such as
//!   `timeouts`).

use std::collections::BTreeMap;

use super::diag::{AttributePath, Diagnostic, Diagnostics};
use super::value::{Number, Type, Value};

/// A value that does not have the shape its Rust type expects: a provider bug (the schema and
/// the struct disagree), never a user error, since Terraform checks values against the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: expected {expected}, got {got}")]
pub struct TypedError {
    pub path: AttributePath,
    pub expected: String,
    pub got: String,
}

impl From<TypedError> for Diagnostics {
    fn from(e: TypedError) -> Diagnostics {
        Diagnostic::error(
            "Value does not match the resource's schema",
            format!(
                "The provider could not read {}: {e}. This is a bug in the provider; please \
                 report it.",
                if e.path.is_root() {
                    "the object".to_string()
                } else {
                    e.path.to_string()
                }
            ),
        )
        .at(e.path)
        .into()
    }
}

fn mismatch(path: &AttributePath, expected: &str, got: &Value) -> TypedError {
    let kind = got.kind();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let got = match got {
        Value::Null => kind.to_string(),
        Value::Unknown | Value::Dynamic(..) => format!("{article} {kind} value"),
        _ => format!("{article} {kind}"),
    };
    TypedError {
        path: path.clone(),
        expected: expected.to_string(),
        got,
    }
}

/// A Rust type that stands for a Terraform type.
pub trait Typed: Sized {
    /// The Terraform type this Rust type holds; `Dynamic` for [`Value`], which holds any.
    fn ty() -> Type;
    fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError>;
    fn to_value(&self) -> Value;

    /// Reads a whole configuration, plan or state.
    fn decode(value: &Value) -> Result<Self, TypedError> {
        Self::from_value(value, &AttributePath::root())
    }
}

/// Whether `rust` (a struct's [`Typed::ty`]) describes the same values as `schema` (a
/// schema's implied type): the same attributes with the same types, `Dynamic` on the Rust side
/// standing for any. `Err` names the first difference.
pub fn conforms(rust: &Type, schema: &Type, path: &AttributePath) -> Result<(), String> {
    match (rust, schema) {
        (Type::Dynamic, _) => Ok(()),
        (Type::List(a), Type::List(b))
        | (Type::Set(a), Type::Set(b))
        | (Type::Map(a), Type::Map(b)) => conforms(a, b, &path.index(0)),
        (Type::Object(a), Type::Object(b)) => {
            if let Some(extra) = a.keys().find(|k| !b.contains_key(*k)) {
                return Err(format!("{}: not in the schema", path.attribute(extra)));
            }
            if let Some(missing) = b.keys().find(|k| !a.contains_key(*k)) {
                return Err(format!(
                    "{}: missing from the struct",
                    path.attribute(missing)
                ));
            }
            a.iter()
                .try_for_each(|(k, t)| conforms(t, &b[k], &path.attribute(k)))
        }
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: the struct holds {a}, the schema says {b}")),
    }
}

/// Null or unknown kept apart from a known value.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Knowable<T> {
    Unknown,
    #[default]
    Null,
    Known(T),
}

impl<T> Knowable<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Knowable::Known(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Knowable::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Knowable::Unknown)
    }

    /// `Some` as known, `None` as null.
    pub fn from_option(v: Option<T>) -> Knowable<T> {
        v.map_or(Knowable::Null, Knowable::Known)
    }
}

impl<T> From<Option<T>> for Knowable<T> {
    fn from(v: Option<T>) -> Knowable<T> {
        Knowable::from_option(v)
    }
}

impl Knowable<String> {
    pub fn as_deref(&self) -> Option<&str> {
        self.known().map(String::as_str)
    }
}

impl<T: Typed> Typed for Knowable<T> {
    fn ty() -> Type {
        T::ty()
    }

    fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError> {
        Ok(match value {
            Value::Unknown => Knowable::Unknown,
            Value::Null => Knowable::Null,
            v => Knowable::Known(T::from_value(v, path)?),
        })
    }

    fn to_value(&self) -> Value {
        match self {
            Knowable::Unknown => Value::Unknown,
            Knowable::Null => Value::Null,
            Knowable::Known(v) => v.to_value(),
        }
    }
}

/// A value read together with whether it was wholly known, for checks that skip what is not
/// known yet (a `test` block whose object comes from another resource). Writes as `value`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Whole<T> {
    pub value: T,
    /// No unknown anywhere inside when it was read.
    pub known: bool,
}

impl<T> Whole<T> {
    /// A wholly known value.
    pub fn new(value: T) -> Whole<T> {
        Whole { value, known: true }
    }
}

impl<T> std::ops::Deref for Whole<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Typed> Typed for Whole<T> {
    fn ty() -> Type {
        T::ty()
    }

    fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError> {
        Ok(Whole {
            value: T::from_value(value, path)?,
            known: value.is_wholly_known(),
        })
    }

    fn to_value(&self) -> Value {
        self.value.to_value()
    }
}

impl<T: Typed> Typed for Option<T> {
    fn ty() -> Type {
        T::ty()
    }

    fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError> {
        if value.is_null() || !value.is_wholly_known() {
            return Ok(None);
        }
        T::from_value(value, path).map(Some)
    }

    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }
}

impl Typed for Value {
    fn ty() -> Type {
        Type::Dynamic
    }

    fn from_value(value: &Value, _path: &AttributePath) -> Result<Self, TypedError> {
        Ok(value.clone())
    }

    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// A Terraform primitive held in one `Value` variant: its type, what a mismatch names as
/// expected, how to read it out of a value and how to put it back.
macro_rules! primitive_typed {
    ($rust:ty, $ty:ident, $expected:literal, $read:expr, $write:expr) => {
        impl Typed for $rust {
            fn ty() -> Type {
                Type::$ty
            }

            fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError> {
                let read: fn(&Value) -> Option<Self> = $read;
                read(value).ok_or_else(|| mismatch(path, $expected, value))
            }

            fn to_value(&self) -> Value {
                let write: fn(&Self) -> Value = $write;
                write(self)
            }
        }
    };
}

primitive_typed!(
    String,
    String,
    "a string",
    |v| v.as_str().map(str::to_string),
    |s| Value::String(s.clone())
);
primitive_typed!(bool, Bool, "a bool", Value::as_bool, |b| Value::Bool(*b));
primitive_typed!(i64, Number, "a whole number", Value::as_i64, |n| {
    Value::Number(Number::Int(*n))
});

/// A number exactly as Terraform sent it (integer, float or decimal text).
impl Typed for Number {
    fn ty() -> Type {
        Type::Number
    }

    fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError> {
        match value {
            Value::Number(n) => Ok(n.clone()),
            Value::Dynamic(_, v) => Self::from_value(v, path),
            other => Err(mismatch(path, "a number", other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.clone())
    }
}

fn elements_of<T: Typed>(
    value: &Value,
    path: &AttributePath,
    expected: &str,
) -> Result<Vec<T>, TypedError> {
    match value {
        Value::Unknown | Value::Null => Ok(Vec::new()),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| T::from_value(v, &path.index(i)))
            .collect(),
        Value::Dynamic(_, v) => elements_of(v, path, expected),
        other => Err(mismatch(path, expected, other)),
    }
}

impl<T: Typed> Typed for Vec<T> {
    fn ty() -> Type {
        Type::list(T::ty())
    }

    fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError> {
        elements_of(value, path, "a list")
    }

    fn to_value(&self) -> Value {
        Value::List(self.iter().map(T::to_value).collect())
    }
}

/// A set; elements keep the order Terraform sent them in.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SetOf<T>(pub Vec<T>);

impl<T: Typed> Typed for SetOf<T> {
    fn ty() -> Type {
        Type::set(T::ty())
    }

    fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError> {
        elements_of(value, path, "a set").map(SetOf)
    }

    fn to_value(&self) -> Value {
        Value::Set(self.0.iter().map(T::to_value).collect())
    }
}

impl<T: Typed> Typed for BTreeMap<String, T> {
    fn ty() -> Type {
        Type::map(T::ty())
    }

    fn from_value(value: &Value, path: &AttributePath) -> Result<Self, TypedError> {
        match value {
            Value::Unknown | Value::Null => Ok(BTreeMap::new()),
            Value::Map(m) | Value::Object(m) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), T::from_value(v, &path.key(k))?)))
                .collect(),
            Value::Dynamic(_, v) => Self::from_value(v, path),
            other => Err(mismatch(path, "a map", other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Map(
            self.iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        )
    }
}

/// Reads one attribute of an object for [`typed_object!`].
pub fn field<T: Typed>(object: &Value, name: &str, path: &AttributePath) -> Result<T, TypedError> {
    T::from_value(object.get(name), &path.attribute(name))
}

/// The Terraform name of a struct field: the field's name without a raw-identifier prefix, so
/// `r#match` is the attribute `match`.
pub fn attribute_name(field: &str) -> &str {
    field.trim_start_matches("r#")
}

/// Declares a struct whose fields are the attributes (and nested blocks) of one Terraform
/// object, named as in the schema (`r#match` for `match`), and implements [`Typed`] for it.
#[macro_export]
macro_rules! typed_object {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Default)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty ),*
        }

        impl $crate::framework::typed::Typed for $name {
            fn ty() -> $crate::framework::Type {
                $crate::framework::Type::object([
                    $( (
                        $crate::framework::typed::attribute_name(stringify!($field)),
                        <$ty as $crate::framework::typed::Typed>::ty(),
                    ) ),*
                ])
            }

            fn from_value(
                value: &$crate::framework::Value,
                path: &$crate::framework::AttributePath,
            ) -> Result<Self, $crate::framework::typed::TypedError> {
                if !matches!(value, $crate::framework::Value::Object(_)) {
                    return Err($crate::framework::typed::TypedError {
                        path: path.clone(),
                        expected: "an object".to_string(),
                        got: if value.is_unknown() { "an unknown value" } else { "null or another type" }
                            .to_string(),
                    });
                }
                Ok($name {
                    $( $field: $crate::framework::typed::field(
                        value,
                        $crate::framework::typed::attribute_name(stringify!($field)),
                        path,
                    )?, )*
                })
            }

            fn to_value(&self) -> $crate::framework::Value {
                $crate::framework::Value::object([
                    $( (
                        $crate::framework::typed::attribute_name(stringify!($field)),
                        $crate::framework::typed::Typed::to_value(&self.$field),
                    ) ),*
                ])
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    typed_object! {
        struct Rule {
            kinds: Vec<String>,
            note: Option<String>,
        }
    }

    typed_object! {
        struct Thing {
            name: String,
            id: Knowable<String>,
            tags: BTreeMap<String, String>,
            ids: SetOf<String>,
            count: Option<i64>,
            r#match: Vec<Rule>,
            anything: Value,
        }
    }

    fn sample() -> Value {
        Value::object([
            ("name", Value::string("n")),
            ("id", Value::Unknown),
            ("tags", Value::string_map([("a", "b")])),
            ("ids", Value::Set(vec![Value::string("x")])),
            ("count", Value::from(3)),
            (
                "match",
                Value::List(vec![Value::object([
                    ("kinds", Value::string_list(["Pod"])),
                    ("note", Value::Null),
                ])]),
            ),
            (
                "anything",
                Value::Dynamic(Type::Bool, Box::new(Value::Bool(true))),
            ),
        ])
    }

    #[test]
    fn round_trips_keeping_unknown_and_null() {
        let thing = Thing::decode(&sample()).unwrap();
        assert_eq!(thing.id, Knowable::Unknown);
        assert_eq!(thing.r#match[0].kinds, vec!["Pod".to_string()]);
        assert_eq!(thing.to_value(), sample());
    }

    #[test]
    fn mismatch_names_the_path() {
        let mut v = sample();
        v.set(
            "match",
            Value::List(vec![Value::object([("kinds", Value::string("Pod"))])]),
        );
        let err = Thing::decode(&v).unwrap_err();
        assert_eq!(
            err.path,
            AttributePath::attr("match").index(0).attribute("kinds")
        );
    }

    #[test]
    fn struct_type_is_checked_against_a_schema_type() {
        let schema = Type::object([("kinds", Type::list(Type::String)), ("note", Type::String)]);
        assert!(conforms(&Rule::ty(), &schema, &AttributePath::root()).is_ok());
        let other = Type::object([("kinds", Type::list(Type::String))]);
        let err = conforms(&Rule::ty(), &other, &AttributePath::root()).unwrap_err();
        assert!(err.contains("note"), "{err}");
    }
}
