//! ValidateDataSourceConfig and ReadDataSource.

use super::convert::{decode, diagnostics_to_proto, encode};
use super::{pb, ProviderService};

pub(super) fn validate_config(
    service: &ProviderService,
    req: pb::validate_data_source_config::Request,
) -> pb::validate_data_source_config::Response {
    let diags = match service
        .data_source_type(&req.type_name)
        .and_then(|ty| decode(req.config.as_ref(), &ty, "configuration", &req.type_name))
    {
        Ok(config) => service
            .server
            .validate_data_source_config(&req.type_name, &config),
        Err(d) => d,
    };
    pb::validate_data_source_config::Response {
        diagnostics: diagnostics_to_proto(diags),
    }
}

pub(super) async fn read(
    service: &ProviderService,
    req: pb::read_data_source::Request,
) -> pb::read_data_source::Response {
    let type_name = req.type_name.clone();
    let decoded = service.data_source_type(&type_name).and_then(|ty| {
        let config = decode(req.config.as_ref(), &ty, "configuration", &type_name)?;
        Ok((ty, config))
    });
    let (ty, config) = match decoded {
        Ok(v) => v,
        Err(diags) => {
            return pb::read_data_source::Response {
                diagnostics: diagnostics_to_proto(diags),
                ..Default::default()
            }
        }
    };
    let (state, mut diags) = service.server.read_data_source(&type_name, config).await;
    let state = encode(&state, &ty, "state", &type_name, &mut diags);
    pb::read_data_source::Response {
        state,
        diagnostics: diagnostics_to_proto(diags),
        deferred: None,
    }
}
