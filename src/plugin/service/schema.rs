//! GetMetadata, GetProviderSchema and GetResourceIdentitySchemas: what the provider offers.

use std::collections::HashMap;

use super::convert::schema_to_proto;
use super::{pb, ProviderService};

pub(super) fn metadata(service: &ProviderService) -> pb::get_metadata::Response {
    pb::get_metadata::Response {
        server_capabilities: Some(server_capabilities()),
        diagnostics: Vec::new(),
        data_sources: service
            .server
            .data_source_schemas()
            .map(|(name, _)| pb::get_metadata::DataSourceMetadata {
                type_name: name.to_string(),
            })
            .collect(),
        resources: service
            .server
            .resource_schemas()
            .map(|(name, _)| pb::get_metadata::ResourceMetadata {
                type_name: name.to_string(),
            })
            .collect(),
        functions: service
            .server
            .function_signatures()
            .map(|(name, _)| pb::get_metadata::FunctionMetadata {
                name: name.to_string(),
            })
            .collect(),
        ephemeral_resources: Vec::new(),
    }
}

pub(super) fn provider_schema(service: &ProviderService) -> pb::get_provider_schema::Response {
    let response = service.schema_response.get_or_init(|| {
        let resource_schemas: HashMap<String, pb::Schema> = service
            .server
            .resource_schemas()
            .map(|(n, s)| (n.to_string(), schema_to_proto(s)))
            .collect();
        let data_source_schemas: HashMap<String, pb::Schema> = service
            .server
            .data_source_schemas()
            .map(|(n, s)| (n.to_string(), schema_to_proto(s)))
            .collect();
        pb::get_provider_schema::Response {
            provider: Some(schema_to_proto(service.server.provider_schema())),
            resource_schemas,
            data_source_schemas,
            diagnostics: Vec::new(),
            provider_meta: None,
            server_capabilities: Some(server_capabilities()),
            functions: service.functions(),
            ephemeral_resource_schemas: HashMap::new(),
        }
    });
    response.clone()
}

pub(super) fn identity_schemas() -> pb::get_resource_identity_schemas::Response {
    // "No identities": an empty map, never an error (it would break every schema load).

    pb::get_resource_identity_schemas::Response::default()
}

fn server_capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        // Terraform >= 1.3 then asks before destroying, so a destroy that Azure would refuse
        // half-way (a definition still assigned) is reported in the plan; 1.0.3 ignores it.
        plan_destroy: true,
        get_provider_schema_optional: false,
        move_resource_state: false,
    }
}
