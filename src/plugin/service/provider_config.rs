//! PrepareProviderConfig and ConfigureProvider: the provider block.

use crate::framework::{Diagnostics, Value};

use super::convert::{decode, diagnostics_to_proto};
use super::{pb, ProviderService};

pub(super) fn prepare(
    service: &ProviderService,
    req: pb::prepare_provider_config::Request,
) -> pb::prepare_provider_config::Response {
    let diags = match decode_config(service, req.config.as_ref()) {
        Ok(config) => service.server.validate_provider_config(&config),
        Err(d) => d,
    };
    // Terraform ignores prepared_config beyond decoding it; echoing the input is exact.
    pb::prepare_provider_config::Response {
        prepared_config: req.config,
        diagnostics: diagnostics_to_proto(diags),
    }
}

pub(super) async fn configure(
    service: &ProviderService,
    req: pb::configure::Request,
) -> pb::configure::Response {
    let diags = match decode_config(service, req.config.as_ref()) {
        Ok(config) => {
            service
                .server
                .configure(req.terraform_version, config)
                .await
        }
        Err(d) => d,
    };
    pb::configure::Response {
        diagnostics: diagnostics_to_proto(diags),
    }
}

/// The provider block as Terraform sent it, decoded with the provider schema.
fn decode_config(
    service: &ProviderService,
    config: Option<&pb::DynamicValue>,
) -> Result<Value, Diagnostics> {
    let ty = service.server.provider_schema().implied_type();
    decode(config, &ty, "provider configuration", "provider")
}
