//! Type constraints as bytes (`Schema.Attribute.type`, dynamic wrappers, function signatures).

use crate::framework::Type;

use super::WireError;

/// Serialises a type constraint as compact JSON bytes (`"string"`, `["list","string"]`, ...).
pub fn type_to_json_bytes(ty: &Type) -> Vec<u8> {
    // serde_json::Value's Display cannot fail and yields compact JSON.
    ty.to_json().to_string().into_bytes()
}

/// Parses type-constraint JSON bytes.
pub fn type_from_json_bytes(bytes: &[u8]) -> Result<Type, WireError> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| WireError::Type(e.to_string()))?;
    Type::from_json(&json).map_err(|e| WireError::Type(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_types() -> Vec<Type> {
        vec![
            Type::Bool,
            Type::Number,
            Type::String,
            Type::Dynamic,
            Type::list(Type::String),
            Type::set(Type::Number),
            Type::map(Type::Bool),
            Type::object([("a", Type::String), ("b", Type::list(Type::Dynamic))]),
            Type::Tuple(vec![Type::String, Type::Number]),
            Type::object(Vec::<(String, Type)>::new()),
        ]
    }

    #[test]
    fn round_trips() {
        for ty in all_types() {
            let bytes = type_to_json_bytes(&ty);
            assert_eq!(type_from_json_bytes(&bytes).unwrap(), ty, "{ty}");
        }
    }

    #[test]
    fn exact_spellings() {
        assert_eq!(type_to_json_bytes(&Type::String), br#""string""#);
        assert_eq!(
            type_to_json_bytes(&Type::list(Type::String)),
            br#"["list","string"]"#
        );
        assert_eq!(
            type_to_json_bytes(&Type::object([("id", Type::String)])),
            br#"["object",{"id":"string"}]"#
        );
        assert_eq!(
            type_to_json_bytes(&Type::Tuple(vec![Type::Bool])),
            br#"["tuple",["bool"]]"#
        );
    }

    #[test]
    fn malformed_is_error() {
        for bad in [
            &b"nope"[..],
            b"\"strin\"",
            b"[\"list\"]",
            b"[1,2]",
            b"",
            b"{}",
        ] {
            assert!(type_from_json_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
