//! PrepareProviderConfig and ConfigureProvider: the provider block.

use tonic::{Request, Response};

use super::convert::{decode, diagnostics_to_proto};
use super::{pb, ProviderService, RpcResult};

pub(super) fn prepare(
    service: &ProviderService,
    request: Request<pb::prepare_provider_config::Request>,
) -> RpcResult<pb::prepare_provider_config::Response> {
    let req = request.into_inner();
    let ty = service.server.provider_schema().implied_type();
    let diags = match decode(
        req.config.as_ref(),
        &ty,
        "provider configuration",
        "provider",
    ) {
        Ok(config) => service.server.validate_provider_config(&config),
        Err(d) => d,
    };
    // Terraform ignores prepared_config beyond decoding it; echoing the input is exact.
    Ok(Response::new(pb::prepare_provider_config::Response {
        prepared_config: req.config,
        diagnostics: diagnostics_to_proto(diags),
    }))
}

pub(super) async fn configure(
    service: &ProviderService,
    request: Request<pb::configure::Request>,
) -> RpcResult<pb::configure::Response> {
    let req = request.into_inner();
    let ty = service.server.provider_schema().implied_type();
    let diags = match decode(
        req.config.as_ref(),
        &ty,
        "provider configuration",
        "provider",
    ) {
        Ok(config) => {
            service
                .server
                .configure(req.terraform_version, config)
                .await
        }
        Err(d) => d,
    };
    Ok(Response::new(pb::configure::Response {
        diagnostics: diagnostics_to_proto(diags),
    }))
}
