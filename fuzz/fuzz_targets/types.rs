// Shared by the value targets: schema types shaped like the provider's own.
use std::collections::BTreeMap;

use akspolicy::framework::Type;

pub fn schema_types() -> Vec<Type> {
    let object = Type::Object(BTreeMap::from([
        ("name".to_string(), Type::String),
        ("count".to_string(), Type::Number),
        ("tags".to_string(), Type::map(Type::String)),
        ("items".to_string(), Type::list(Type::Dynamic)),
    ]));
    vec![
        Type::String,
        Type::Number,
        Type::Bool,
        Type::Dynamic,
        Type::set(Type::String),
        Type::Tuple(vec![Type::String, Type::Bool]),
        object,
    ]
}
