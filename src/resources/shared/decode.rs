//! Decoding Terraform values into a resource's typed state, with the errors turned into
//! diagnostics.

use crate::framework::typed::Typed;
use crate::framework::{Diagnostics, Value};

/// `value` decoded as `T`; `None`, with why in `diags`, when it does not fit `T`.
pub fn decoded<T: Typed>(value: &Value, diags: &mut Diagnostics) -> Option<T> {
    T::decode(value).map_err(|e| diags.extend(e.into())).ok()
}
