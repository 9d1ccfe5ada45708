//! The attributes that name an object at an ARM scope (`<scope>/providers/.../<name>`), read
//! the same way by the generic code that every such resource shares.

use crate::framework::typed::Typed;
use crate::framework::Value;
use crate::typed_object;

typed_object! {
    /// The identifying part of the state, plan or configuration of a resource named by scope
    /// and name (definitions, initiatives, assignments, exemptions). Decoding reads only the
    /// struct's own attributes, so this subset reads any of those resources' values; it is
    /// no resource's `state_type`.
    pub struct Identity {
        pub id: Option<String>,
        pub scope: Option<String>,
        pub name: Option<String>,
    }
}

impl Identity {
    /// The identifying attributes of `value`; unknown ones read as `None`, and anything but an
    /// object (the null prior of a create) has none.
    pub fn of(value: &Value) -> Identity {
        Identity::decode(value).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_the_identifying_attributes() {
        let state = Value::object([
            ("id", Value::Unknown),
            ("scope", Value::string("/subscriptions/s")),
            ("name", Value::string("x")),
            ("display_name", Value::string("X")),
        ]);
        assert_eq!(
            Identity::of(&state),
            Identity {
                id: None,
                scope: Some("/subscriptions/s".into()),
                name: Some("x".into()),
            }
        );
        assert_eq!(Identity::of(&Value::Null), Identity::default());
    }
}
