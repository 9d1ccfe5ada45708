//! What the resources' unit tests share.

use crate::framework::{
    Diagnostics, Resource, ValidateConfigRequest, ValidateConfigResponse, Value,
};

/// The diagnostics `resource` reports when Terraform validates `config`.
pub fn validation_of(resource: &dyn Resource, config: &Value) -> Diagnostics {
    let mut resp = ValidateConfigResponse::default();
    resource.validate_config(ValidateConfigRequest { config }, &mut resp);
    resp.diags
}
