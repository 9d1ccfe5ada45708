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
