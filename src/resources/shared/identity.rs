//! The attributes that name an object at an ARM scope (`<scope>/providers/.../<name>`), read
//! the same way by the generic code that every such resource shares.

use crate::framework::typed::{Knowable, Typed};
use crate::framework::Value;
use crate::typed_object;

typed_object! {
    /// The identifying part of the state, plan or configuration of a resource named by scope
    /// and name (definitions, initiatives, assignments, exemptions). Decoding reads only the
    /// struct's own attributes, so this subset reads any of those resources' values; it is
    /// no resource's `state_type`.
    pub struct Identity {
        pub id: Knowable<String>,
        /// Unknown kept apart from null: a plan may default a scope left out, not one that
        /// is still to be computed.
        pub scope: Knowable<String>,
        pub name: Knowable<String>,
    }
}

impl Identity {
    /// The identifying attributes of `value`; anything but an object (the null prior of a
    /// create) has none.
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
                id: Knowable::Unknown,
                scope: Knowable::Known("/subscriptions/s".into()),
                name: Knowable::Known("x".into()),
            }
        );
        assert_eq!(Identity::of(&Value::Null), Identity::default());
    }
}
