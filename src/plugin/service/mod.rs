//! The `tfplugin5.Provider` gRPC service: decodes requests with the schemas the framework
//! exposes, calls the protocol-agnostic [`Server`], and encodes the answers.
//!
//! Every RPC answers with an OK status; failures travel as error diagnostics so Terraform
//! shows them against the right resource. Malformed requests (bad msgpack, unknown type
//! names) become diagnostics too, never panics. No lock is held across calls, so `Stop` and
//! concurrent RPCs always get through.
//!
//! One file per group of RPCs: [`schema`] (metadata and schemas), [`provider_config`],
//! [`resource`] (a managed resource's lifecycle), [`data_source`], [`function`], and
//! [`unsupported`] (the protocol features the provider declines with a diagnostic);
//! [`convert`] holds the conversions between framework and wire types that they share.

mod convert;
mod data_source;
mod function;
mod provider_config;
mod resource;
mod schema;
mod unsupported;

use std::sync::{Arc, OnceLock};

use tonic::{Request, Response, Status};

use crate::framework::server::Server;
use crate::framework::{Diagnostics, Schema, Type};

use super::proto::tfplugin5 as pb;
use super::proto::tfplugin5::provider_server::Provider;

pub use convert::{diagnostics_to_proto, path_to_proto, schema_to_proto};

type RpcResult<T> = Result<Response<T>, Status>;

/// Serves one framework [`Server`] over tfplugin5.
#[derive(Clone)]
pub struct ProviderService {
    server: Arc<Server>,
    // Built on first GetSchema: startup stays cheap and repeated calls (reattach mode) are free.
    schema_response: Arc<OnceLock<pb::get_provider_schema::Response>>,
}

impl ProviderService {
    /// Wraps a framework server.
    pub fn new(server: Arc<Server>) -> ProviderService {
        ProviderService {
            server,
            schema_response: Arc::new(OnceLock::new()),
        }
    }

    /// The wrapped framework server.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    fn resource_type(&self, type_name: &str) -> Result<Type, Diagnostics> {
        self.server
            .resource_schema(type_name)
            .map(Schema::implied_type)
            .ok_or_else(|| Server::unknown_type("resource", type_name))
    }

    fn data_source_type(&self, type_name: &str) -> Result<Type, Diagnostics> {
        self.server
            .data_source_schema(type_name)
            .map(Schema::implied_type)
            .ok_or_else(|| Server::unknown_type("data source", type_name))
    }
}

#[tonic::async_trait]
impl Provider for ProviderService {
    async fn get_metadata(
        &self,
        _request: Request<pb::get_metadata::Request>,
    ) -> RpcResult<pb::get_metadata::Response> {
        schema::metadata(self)
    }

    async fn get_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> RpcResult<pb::get_provider_schema::Response> {
        schema::provider_schema(self)
    }

    async fn get_resource_identity_schemas(
        &self,
        _request: Request<pb::get_resource_identity_schemas::Request>,
    ) -> RpcResult<pb::get_resource_identity_schemas::Response> {
        schema::identity_schemas()
    }

    async fn prepare_provider_config(
        &self,
        request: Request<pb::prepare_provider_config::Request>,
    ) -> RpcResult<pb::prepare_provider_config::Response> {
        provider_config::prepare(self, request)
    }

    async fn configure(
        &self,
        request: Request<pb::configure::Request>,
    ) -> RpcResult<pb::configure::Response> {
        provider_config::configure(self, request).await
    }

    async fn validate_resource_type_config(
        &self,
        request: Request<pb::validate_resource_type_config::Request>,
    ) -> RpcResult<pb::validate_resource_type_config::Response> {
        resource::validate_config(self, request).await
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> RpcResult<pb::upgrade_resource_state::Response> {
        resource::upgrade_state(self, request)
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> RpcResult<pb::read_resource::Response> {
        resource::read(self, request).await
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> RpcResult<pb::plan_resource_change::Response> {
        resource::plan(self, request).await
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> RpcResult<pb::apply_resource_change::Response> {
        resource::apply(self, request).await
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> RpcResult<pb::import_resource_state::Response> {
        resource::import(self, request).await
    }

    async fn validate_data_source_config(
        &self,
        request: Request<pb::validate_data_source_config::Request>,
    ) -> RpcResult<pb::validate_data_source_config::Response> {
        data_source::validate_config(self, request)
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> RpcResult<pb::read_data_source::Response> {
        data_source::read(self, request).await
    }

    async fn get_functions(
        &self,
        _request: Request<pb::get_functions::Request>,
    ) -> RpcResult<pb::get_functions::Response> {
        function::list(self)
    }

    async fn call_function(
        &self,
        request: Request<pb::call_function::Request>,
    ) -> RpcResult<pb::call_function::Response> {
        function::call(self, request)
    }

    async fn upgrade_resource_identity(
        &self,
        _request: Request<pb::upgrade_resource_identity::Request>,
    ) -> RpcResult<pb::upgrade_resource_identity::Response> {
        unsupported::upgrade_identity()
    }

    async fn move_resource_state(
        &self,
        _request: Request<pb::move_resource_state::Request>,
    ) -> RpcResult<pb::move_resource_state::Response> {
        unsupported::move_state()
    }

    async fn validate_ephemeral_resource_config(
        &self,
        _request: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> RpcResult<pb::validate_ephemeral_resource_config::Response> {
        unsupported::validate_ephemeral()
    }

    async fn open_ephemeral_resource(
        &self,
        _request: Request<pb::open_ephemeral_resource::Request>,
    ) -> RpcResult<pb::open_ephemeral_resource::Response> {
        unsupported::open_ephemeral()
    }

    async fn renew_ephemeral_resource(
        &self,
        _request: Request<pb::renew_ephemeral_resource::Request>,
    ) -> RpcResult<pb::renew_ephemeral_resource::Response> {
        unsupported::renew_ephemeral()
    }

    async fn close_ephemeral_resource(
        &self,
        _request: Request<pb::close_ephemeral_resource::Request>,
    ) -> RpcResult<pb::close_ephemeral_resource::Response> {
        unsupported::close_ephemeral()
    }
    async fn stop(&self, _request: Request<pb::stop::Request>) -> RpcResult<pb::stop::Response> {
        log::debug!("plugin: Stop received; cancelling in-flight calls");
        self.server.stop();
        Ok(Response::new(pb::stop::Response {
            error: String::new(),
        }))
    }
}
