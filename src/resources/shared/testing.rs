//! What the resources' unit tests share.

use crate::framework::{
    AttributePath, Diagnostics, Resource, ValidateConfigRequest, ValidateConfigResponse, Value,
};

/// The diagnostics `resource` reports when Terraform validates `config`.
pub fn validation_of(resource: &dyn Resource, config: &Value) -> Diagnostics {
    let mut resp = ValidateConfigResponse::default();
    resource.validate_config(ValidateConfigRequest { config }, &mut resp);
    resp.diags
}

/// The diagnostics `validator` reports for `value` as the attribute `attribute`.
pub fn validator_diags(
    validator: impl Fn(&Value, &AttributePath, &mut Diagnostics),
    attribute: &str,
    value: Value,
) -> Diagnostics {
    let mut d = Diagnostics::new();
    validator(&value, &AttributePath::attr(attribute), &mut d);
    d
}

/// Fails unless the first diagnostic's detail contains `needle`; the message shows them all.
#[track_caller]
pub fn assert_first_detail(d: &Diagnostics, needle: &str) {
    let detail = d.0.first().map(|x| x.detail.as_str()).unwrap_or_default();
    assert!(
        detail.contains(needle),
        "expected {needle:?} in the first diagnostic's detail: {d:?}"
    );
}
