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

/// Writes the `Provider` impl: every RPC answers OK (failures travel as diagnostics in the
/// response), so each handler takes the decoded request and returns the response itself.
/// `|service, request| body` names what the body reads; `_` for what it does not.
macro_rules! provider_rpcs {
    ($($rpc:ident($message:ident) = |$service:tt, $request:tt| $body:expr;)*) => {
        #[tonic::async_trait]
        impl Provider for ProviderService {
            $(
                async fn $rpc(
                    &self,
                    request: Request<pb::$message::Request>,
                ) -> RpcResult<pb::$message::Response> {
                    let ($service, $request) = (self, request.into_inner());
                    Ok(Response::new($body))
                }
            )*
        }
    };
}

provider_rpcs! {
    get_metadata(get_metadata) = |service, _| schema::metadata(service);
    get_schema(get_provider_schema) = |service, _| schema::provider_schema(service);
    get_resource_identity_schemas(get_resource_identity_schemas) = |_, _| schema::identity_schemas();
    prepare_provider_config(prepare_provider_config) = |service, request| provider_config::prepare(service, request);
    configure(configure) = |service, request| provider_config::configure(service, request).await;
    validate_resource_type_config(validate_resource_type_config) = |service, request| resource::validate_config(service, request).await;
    upgrade_resource_state(upgrade_resource_state) = |service, request| resource::upgrade_state(service, request);
    read_resource(read_resource) = |service, request| resource::read(service, request).await;
    plan_resource_change(plan_resource_change) = |service, request| resource::plan(service, request).await;
    apply_resource_change(apply_resource_change) = |service, request| resource::apply(service, request).await;
    import_resource_state(import_resource_state) = |service, request| resource::import(service, request).await;
    validate_data_source_config(validate_data_source_config) = |service, request| data_source::validate_config(service, request);
    read_data_source(read_data_source) = |service, request| data_source::read(service, request).await;
    get_functions(get_functions) = |service, _| function::list(service);
    call_function(call_function) = |service, request| function::call(service, request);
    upgrade_resource_identity(upgrade_resource_identity) = |_, _| unsupported::upgrade_identity();
    move_resource_state(move_resource_state) = |_, _| unsupported::move_state();
    validate_ephemeral_resource_config(validate_ephemeral_resource_config) = |_, _| unsupported::validate_ephemeral();
    open_ephemeral_resource(open_ephemeral_resource) = |_, _| unsupported::open_ephemeral();
    renew_ephemeral_resource(renew_ephemeral_resource) = |_, _| unsupported::renew_ephemeral();
    close_ephemeral_resource(close_ephemeral_resource) = |_, _| unsupported::close_ephemeral();
    stop(stop) = |service, _| {
        log::debug!("plugin: Stop received; cancelling in-flight calls");
        service.server.stop();
        pb::stop::Response { error: String::new() }
    };
}
