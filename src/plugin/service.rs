//! The `tfplugin5.Provider` gRPC service: decodes requests with the schemas the framework
//! exposes, calls the protocol-agnostic [`Server`], and encodes the answers.
//!
//! Every RPC answers with an OK status; failures travel as error diagnostics so Terraform
//! shows them against the right resource. Malformed requests (bad msgpack, unknown type
//! names) become diagnostics too, never panics. No lock is held across calls, so `Stop` and
//! concurrent RPCs always get through.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tonic::{Request, Response, Status};

use crate::framework::function::FunctionSignature;
use crate::framework::schema::{Attribute, Block, NestedBlock, NestingMode, Schema};
use crate::framework::server::{ApplyResourceRequest, PlanRequest, Server};
use crate::framework::{AttributePath, Diagnostic, Diagnostics, PathStep, Severity, Type, Value};

use super::proto::tfplugin5 as pb;
use super::proto::tfplugin5::provider_server::Provider;
use super::wire::{self, types::type_to_json_bytes, WireError};

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

    fn functions(&self) -> HashMap<String, pb::Function> {
        self.server
            .function_signatures()
            .map(|(name, signature)| (name.to_string(), function_to_proto(signature)))
            .collect()
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

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

/// Converts framework diagnostics into their wire form.
pub fn diagnostics_to_proto(diags: Diagnostics) -> Vec<pb::Diagnostic> {
    diags.into_iter().map(diagnostic_to_proto).collect()
}

fn diagnostic_to_proto(d: Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Error => pb::diagnostic::Severity::Error,
            Severity::Warning => pb::diagnostic::Severity::Warning,
        } as i32,
        summary: d.summary,
        detail: d.detail,
        attribute: d.attribute.filter(|p| !p.is_root()).map(path_to_proto),
    }
}

/// Converts a framework attribute path into its wire form.
pub fn path_to_proto(path: AttributePath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: path
            .0
            .into_iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    PathStep::Attribute(n) => Selector::AttributeName(n),
                    PathStep::ElementKeyString(k) => Selector::ElementKeyString(k),
                    PathStep::ElementKeyInt(i) => Selector::ElementKeyInt(i),
                }),
            })
            .collect(),
    }
}

/// Converts a framework schema into its wire form.
pub fn schema_to_proto(schema: &Schema) -> pb::Schema {
    pb::Schema {
        version: schema.version,
        block: Some(block_to_proto(&schema.block)),
    }
}

fn block_to_proto(block: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        attributes: block.attributes.iter().map(attribute_to_proto).collect(),
        block_types: block.blocks.iter().map(nested_block_to_proto).collect(),
        description: block.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: block.deprecated,
    }
}

fn attribute_to_proto(a: &Attribute) -> pb::schema::Attribute {
    pb::schema::Attribute {
        name: a.name.clone(),
        r#type: type_to_json_bytes(&a.ty),
        description: a.description.clone(),
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: a.deprecated,
        write_only: false,
    }
}

fn nested_block_to_proto(nb: &NestedBlock) -> pb::schema::NestedBlock {
    use pb::schema::nested_block::NestingMode as Pn;
    pb::schema::NestedBlock {
        type_name: nb.type_name.clone(),
        block: Some(block_to_proto(&nb.block)),
        nesting: match nb.nesting {
            NestingMode::Single => Pn::Single,
            NestingMode::List => Pn::List,
            NestingMode::Set => Pn::Set,
            NestingMode::Map => Pn::Map,
            NestingMode::Group => Pn::Group,
        } as i32,
        min_items: nb.min_items,
        max_items: nb.max_items,
    }
}

fn decode_error(what: &str, type_name: &str, err: &WireError) -> Diagnostics {
    Diagnostic::error(
        "Invalid value received from Terraform",
        format!(
            "The akspolicy provider could not decode the {what} Terraform sent for {type_name:?}: \
             {err}. This is a bug in Terraform or in the provider; please report it."
        ),
    )
    .into()
}

fn encode_error(what: &str, type_name: &str, err: &WireError) -> Diagnostics {
    Diagnostic::error(
        "Provider produced a value it cannot encode",
        format!(
            "The akspolicy provider built a {what} for {type_name:?} that does not fit its own \
             schema: {err}. This is a bug in the provider; please report it."
        ),
    )
    .into()
}

fn decode(
    dv: Option<&pb::DynamicValue>,
    ty: &Type,
    what: &str,
    type_name: &str,
) -> Result<Value, Diagnostics> {
    wire::decode_dynamic_value(dv, ty).map_err(|e| decode_error(what, type_name, &e))
}

/// Encodes `value`; on failure records a diagnostic and returns `None` (Terraform then reads
/// null, which is what we want next to an error).
fn encode(
    value: &Value,
    ty: &Type,
    what: &str,
    type_name: &str,
    diags: &mut Diagnostics,
) -> Option<pb::DynamicValue> {
    match wire::encode_dynamic_value(value, ty) {
        Ok(dv) => Some(dv),
        Err(e) => {
            diags.extend(encode_error(what, type_name, &e));
            None
        }
    }
}

/// A function signature as tfplugin5 declares it. No parameter takes null or unknown values:
/// Terraform then answers those itself (null is an error; unknown gives an unknown result).
fn function_to_proto(signature: &FunctionSignature) -> pb::Function {
    pb::Function {
        parameters: signature
            .parameters
            .iter()
            .map(|p| pb::function::Parameter {
                name: p.name.to_string(),
                r#type: type_to_json_bytes(&p.ty),
                allow_null_value: false,
                allow_unknown_values: false,
                description: p.description.to_string(),
                description_kind: pb::StringKind::Markdown as i32,
            })
            .collect(),
        variadic_parameter: None,
        r#return: Some(pb::function::Return {
            r#type: type_to_json_bytes(&signature.returns),
        }),
        summary: signature.summary.to_string(),
        description: signature.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecation_message: String::new(),
    }
}

fn unsupported(feature: &str, requires: &str) -> Vec<pb::Diagnostic> {
    diagnostics_to_proto(
        Diagnostic::error(
            format!("Unsupported operation: {feature}"),
            format!(
                "akspolicy does not support {feature} (requires {requires}). Remove the \
                 configuration that uses it."
            ),
        )
        .into(),
    )
}

/// Runs a future whose Err is already an answer (diagnostics); flattens it to an answer.
fn answer<T>(r: Result<T, T>) -> RpcResult<T> {
    Ok(Response::new(match r {
        Ok(v) | Err(v) => v,
    }))
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

#[tonic::async_trait]
impl Provider for ProviderService {
    async fn get_metadata(
        &self,
        _request: Request<pb::get_metadata::Request>,
    ) -> RpcResult<pb::get_metadata::Response> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(server_capabilities()),
            diagnostics: Vec::new(),
            data_sources: self
                .server
                .data_source_schemas()
                .map(|(name, _)| pb::get_metadata::DataSourceMetadata {
                    type_name: name.to_string(),
                })
                .collect(),
            resources: self
                .server
                .resource_schemas()
                .map(|(name, _)| pb::get_metadata::ResourceMetadata {
                    type_name: name.to_string(),
                })
                .collect(),
            functions: self
                .server
                .function_signatures()
                .map(|(name, _)| pb::get_metadata::FunctionMetadata {
                    name: name.to_string(),
                })
                .collect(),
            ephemeral_resources: Vec::new(),
        }))
    }

    async fn get_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> RpcResult<pb::get_provider_schema::Response> {
        let response = self.schema_response.get_or_init(|| {
            let resource_schemas: HashMap<String, pb::Schema> = self
                .server
                .resource_schemas()
                .map(|(n, s)| (n.to_string(), schema_to_proto(s)))
                .collect();
            let data_source_schemas: HashMap<String, pb::Schema> = self
                .server
                .data_source_schemas()
                .map(|(n, s)| (n.to_string(), schema_to_proto(s)))
                .collect();
            pb::get_provider_schema::Response {
                provider: Some(schema_to_proto(self.server.provider_schema())),
                resource_schemas,
                data_source_schemas,
                diagnostics: Vec::new(),
                provider_meta: None,
                server_capabilities: Some(server_capabilities()),
                functions: self.functions(),
                ephemeral_resource_schemas: HashMap::new(),
            }
        });
        Ok(Response::new(response.clone()))
    }

    async fn get_resource_identity_schemas(
        &self,
        _request: Request<pb::get_resource_identity_schemas::Request>,
    ) -> RpcResult<pb::get_resource_identity_schemas::Response> {
        // "No identities": an empty map, never an error (it would break every schema load).
        Ok(Response::new(
            pb::get_resource_identity_schemas::Response::default(),
        ))
    }

    async fn get_functions(
        &self,
        _request: Request<pb::get_functions::Request>,
    ) -> RpcResult<pb::get_functions::Response> {
        Ok(Response::new(pb::get_functions::Response {
            functions: self.functions(),
            diagnostics: Vec::new(),
        }))
    }

    async fn prepare_provider_config(
        &self,
        request: Request<pb::prepare_provider_config::Request>,
    ) -> RpcResult<pb::prepare_provider_config::Response> {
        let req = request.into_inner();
        let ty = self.server.provider_schema().implied_type();
        let diags = match decode(
            req.config.as_ref(),
            &ty,
            "provider configuration",
            "provider",
        ) {
            Ok(config) => self.server.validate_provider_config(&config),
            Err(d) => d,
        };
        // Terraform ignores prepared_config beyond decoding it; echoing the input is exact.
        Ok(Response::new(pb::prepare_provider_config::Response {
            prepared_config: req.config,
            diagnostics: diagnostics_to_proto(diags),
        }))
    }

    async fn validate_resource_type_config(
        &self,
        request: Request<pb::validate_resource_type_config::Request>,
    ) -> RpcResult<pb::validate_resource_type_config::Response> {
        let req = request.into_inner();
        let diags = match self
            .resource_type(&req.type_name)
            .and_then(|ty| decode(req.config.as_ref(), &ty, "configuration", &req.type_name))
        {
            Ok(config) => {
                // Validation may evaluate policy tests for seconds: keep the async workers free
                // so Terraform's Stop and other calls are still answered meanwhile.
                let server = self.server.clone();
                let type_name = req.type_name.clone();
                tokio::task::spawn_blocking(move || {
                    server.validate_resource_config(&type_name, &config)
                })
                .await
                .unwrap_or_else(|e| {
                    Diagnostic::error(
                        "Validation failed",
                        format!(
                            "The provider failed while validating {}: {e}",
                            req.type_name
                        ),
                    )
                    .into()
                })
            }
            Err(d) => d,
        };
        Ok(Response::new(pb::validate_resource_type_config::Response {
            diagnostics: diagnostics_to_proto(diags),
        }))
    }

    async fn validate_data_source_config(
        &self,
        request: Request<pb::validate_data_source_config::Request>,
    ) -> RpcResult<pb::validate_data_source_config::Response> {
        let req = request.into_inner();
        let diags = match self
            .data_source_type(&req.type_name)
            .and_then(|ty| decode(req.config.as_ref(), &ty, "configuration", &req.type_name))
        {
            Ok(config) => self
                .server
                .validate_data_source_config(&req.type_name, &config),
            Err(d) => d,
        };
        Ok(Response::new(pb::validate_data_source_config::Response {
            diagnostics: diagnostics_to_proto(diags),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> RpcResult<pb::upgrade_resource_state::Response> {
        let req = request.into_inner();
        let type_name = req.type_name.as_str();
        let result = (|| {
            let ty = self.resource_type(type_name)?;
            let raw = req.raw_state.unwrap_or_default();
            if raw.json.is_empty() {
                if raw.flatmap.is_empty() {
                    // Nothing stored: the object is null.
                    return Ok((Value::Null, ty, Diagnostics::new()));
                }
                return Err(Diagnostic::error(
                    "Unsupported legacy state format",
                    format!(
                        "The stored state of this {type_name} uses the pre-0.12 flatmap \
                         format, which akspolicy never wrote. Remove it from state and import \
                         the object again."
                    ),
                )
                .into());
            }
            let json: serde_json::Value = serde_json::from_slice(&raw.json).map_err(|e| {
                decode_error(
                    "stored state",
                    type_name,
                    &WireError::MalformedJson(e.to_string()),
                )
            })?;
            let upgraded = self
                .server
                .upgrade_resource_state(type_name, req.version, json)?;
            // Stored state may carry attributes a later schema dropped: ignore them.
            let value = wire::json::decode_value(&upgraded, &ty, true)
                .map_err(|e| decode_error("stored state", type_name, &e))?;
            Ok((value, ty, Diagnostics::new()))
        })();
        answer(match result {
            Ok((value, ty, mut diags)) => {
                let upgraded_state = encode(&value, &ty, "state", type_name, &mut diags);
                Ok(pb::upgrade_resource_state::Response {
                    upgraded_state,
                    diagnostics: diagnostics_to_proto(diags),
                })
            }
            Err(diags) => Err(pb::upgrade_resource_state::Response {
                upgraded_state: None,
                diagnostics: diagnostics_to_proto(diags),
            }),
        })
    }

    async fn upgrade_resource_identity(
        &self,
        _request: Request<pb::upgrade_resource_identity::Request>,
    ) -> RpcResult<pb::upgrade_resource_identity::Response> {
        Ok(Response::new(pb::upgrade_resource_identity::Response {
            upgraded_identity: None,
            diagnostics: unsupported(
                "resource identity",
                "an identity schema, which none of its resources declare; Terraform 1.12+",
            ),
        }))
    }

    async fn configure(
        &self,
        request: Request<pb::configure::Request>,
    ) -> RpcResult<pb::configure::Response> {
        let req = request.into_inner();
        let ty = self.server.provider_schema().implied_type();
        let diags = match decode(
            req.config.as_ref(),
            &ty,
            "provider configuration",
            "provider",
        ) {
            Ok(config) => self.server.configure(req.terraform_version, config).await,
            Err(d) => d,
        };
        Ok(Response::new(pb::configure::Response {
            diagnostics: diagnostics_to_proto(diags),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> RpcResult<pb::read_resource::Response> {
        let req = request.into_inner();
        let type_name = req.type_name.clone();
        let decoded = self.resource_type(&type_name).and_then(|ty| {
            let state = decode(req.current_state.as_ref(), &ty, "current state", &type_name)?;
            Ok((ty, state))
        });
        let (ty, state) = match decoded {
            Ok(v) => v,
            Err(diags) => {
                // Echo what Terraform sent so a decode problem never drops the object.
                return Ok(Response::new(pb::read_resource::Response {
                    new_state: req.current_state,
                    diagnostics: diagnostics_to_proto(diags),
                    private: req.private,
                    deferred: None,
                    new_identity: None,
                }));
            }
        };
        let resp = self
            .server
            .read_resource(&type_name, state, req.private)
            .await;
        let mut diags = resp.diagnostics;
        let new_state = encode(&resp.new_state, &ty, "state", &type_name, &mut diags);
        Ok(Response::new(pb::read_resource::Response {
            new_state,
            diagnostics: diagnostics_to_proto(diags),
            private: resp.private,
            deferred: None,
            new_identity: None,
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> RpcResult<pb::plan_resource_change::Response> {
        let req = request.into_inner();
        let type_name = req.type_name.clone();
        let decoded = self.resource_type(&type_name).and_then(|ty| {
            let prior = decode(req.prior_state.as_ref(), &ty, "prior state", &type_name)?;
            let proposed = decode(
                req.proposed_new_state.as_ref(),
                &ty,
                "proposed new state",
                &type_name,
            )?;
            let config = decode(req.config.as_ref(), &ty, "configuration", &type_name)?;
            Ok((ty, prior, proposed, config))
        });
        let (ty, prior_state, proposed_new_state, config) = match decoded {
            Ok(v) => v,
            Err(diags) => {
                return Ok(Response::new(pb::plan_resource_change::Response {
                    planned_state: req.proposed_new_state,
                    planned_private: req.prior_private,
                    diagnostics: diagnostics_to_proto(diags),
                    ..Default::default()
                }))
            }
        };
        let resp = self
            .server
            .plan_resource_change(PlanRequest {
                type_name: type_name.clone(),
                prior_state,
                proposed_new_state,
                config,
                prior_private: req.prior_private,
            })
            .await;
        let mut diags = resp.diagnostics;
        let planned_state = encode(&resp.planned_state, &ty, "plan", &type_name, &mut diags);
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state,
            requires_replace: resp
                .requires_replace
                .into_iter()
                .map(path_to_proto)
                .collect(),
            planned_private: resp.planned_private,
            diagnostics: diagnostics_to_proto(diags),
            legacy_type_system: false,
            deferred: None,
            planned_identity: None,
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> RpcResult<pb::apply_resource_change::Response> {
        let req = request.into_inner();
        let type_name = req.type_name.clone();
        let decoded = self.resource_type(&type_name).and_then(|ty| {
            let prior = decode(req.prior_state.as_ref(), &ty, "prior state", &type_name)?;
            let planned = decode(req.planned_state.as_ref(), &ty, "planned state", &type_name)?;
            let config = decode(req.config.as_ref(), &ty, "configuration", &type_name)?;
            Ok((ty, prior, planned, config))
        });
        let (ty, prior_state, planned_state, config) = match decoded {
            Ok(v) => v,
            Err(diags) => {
                // Keep the prior object in state: nothing was changed remotely.
                return Ok(Response::new(pb::apply_resource_change::Response {
                    new_state: req.prior_state,
                    private: req.planned_private,
                    diagnostics: diagnostics_to_proto(diags),
                    ..Default::default()
                }));
            }
        };
        let resp = self
            .server
            .apply_resource_change(ApplyResourceRequest {
                type_name: type_name.clone(),
                prior_state,
                planned_state,
                config,
                planned_private: req.planned_private,
            })
            .await;
        let mut diags = resp.diagnostics;
        let new_state = encode(&resp.new_state, &ty, "new state", &type_name, &mut diags);
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state,
            private: resp.private,
            diagnostics: diagnostics_to_proto(diags),
            legacy_type_system: false,
            new_identity: None,
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> RpcResult<pb::import_resource_state::Response> {
        let req = request.into_inner();
        if let Err(diags) = self.resource_type(&req.type_name) {
            return Ok(Response::new(pb::import_resource_state::Response {
                diagnostics: diagnostics_to_proto(diags),
                ..Default::default()
            }));
        }
        let resp = self
            .server
            .import_resource_state(&req.type_name, &req.id)
            .await;
        let mut diags = resp.diagnostics;
        let mut imported_resources = Vec::new();
        for item in resp.imported {
            let ty = match self.resource_type(&item.type_name) {
                Ok(ty) => ty,
                Err(d) => {
                    diags.extend(d);
                    continue;
                }
            };
            if let Some(state) = encode(&item.state, &ty, "state", &item.type_name, &mut diags) {
                imported_resources.push(pb::import_resource_state::ImportedResource {
                    type_name: item.type_name,
                    state: Some(state),
                    private: item.private,
                    identity: None,
                });
            }
        }
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources,
            diagnostics: diagnostics_to_proto(diags),
            deferred: None,
        }))
    }

    async fn move_resource_state(
        &self,
        _request: Request<pb::move_resource_state::Request>,
    ) -> RpcResult<pb::move_resource_state::Response> {
        Ok(Response::new(pb::move_resource_state::Response {
            diagnostics: unsupported(
                "moving state into its resources with `moved` blocks across types",
                "the move_resource_state capability, which it does not declare; Terraform 1.8+",
            ),
            ..Default::default()
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> RpcResult<pb::read_data_source::Response> {
        let req = request.into_inner();
        let type_name = req.type_name.clone();
        let decoded = self.data_source_type(&type_name).and_then(|ty| {
            let config = decode(req.config.as_ref(), &ty, "configuration", &type_name)?;
            Ok((ty, config))
        });
        let (ty, config) = match decoded {
            Ok(v) => v,
            Err(diags) => {
                return Ok(Response::new(pb::read_data_source::Response {
                    diagnostics: diagnostics_to_proto(diags),
                    ..Default::default()
                }))
            }
        };
        let (state, mut diags) = self.server.read_data_source(&type_name, config).await;
        let state = encode(&state, &ty, "state", &type_name, &mut diags);
        Ok(Response::new(pb::read_data_source::Response {
            state,
            diagnostics: diagnostics_to_proto(diags),
            deferred: None,
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        _request: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> RpcResult<pb::validate_ephemeral_resource_config::Response> {
        Ok(Response::new(
            pb::validate_ephemeral_resource_config::Response {
                diagnostics: unsupported(
                    "ephemeral resources",
                    "ephemeral resource types, of which it declares none; Terraform 1.10+",
                ),
            },
        ))
    }

    async fn open_ephemeral_resource(
        &self,
        _request: Request<pb::open_ephemeral_resource::Request>,
    ) -> RpcResult<pb::open_ephemeral_resource::Response> {
        Ok(Response::new(pb::open_ephemeral_resource::Response {
            diagnostics: unsupported(
                "ephemeral resources",
                "ephemeral resource types, of which it declares none; Terraform 1.10+",
            ),
            ..Default::default()
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        _request: Request<pb::renew_ephemeral_resource::Request>,
    ) -> RpcResult<pb::renew_ephemeral_resource::Response> {
        Ok(Response::new(pb::renew_ephemeral_resource::Response {
            diagnostics: unsupported(
                "ephemeral resources",
                "ephemeral resource types, of which it declares none; Terraform 1.10+",
            ),
            ..Default::default()
        }))
    }

    async fn close_ephemeral_resource(
        &self,
        _request: Request<pb::close_ephemeral_resource::Request>,
    ) -> RpcResult<pb::close_ephemeral_resource::Response> {
        Ok(Response::new(pb::close_ephemeral_resource::Response {
            diagnostics: unsupported(
                "ephemeral resources",
                "ephemeral resource types, of which it declares none; Terraform 1.10+",
            ),
        }))
    }

    async fn call_function(
        &self,
        request: Request<pb::call_function::Request>,
    ) -> RpcResult<pb::call_function::Response> {
        let request = request.into_inner();
        let failed = |text: String, argument: Option<usize>| {
            Ok(Response::new(pb::call_function::Response {
                result: None,
                error: Some(pb::FunctionError {
                    text,
                    function_argument: argument.map(|a| a as i64),
                }),
            }))
        };
        let Some((function, signature)) = self.server.function(&request.name) else {
            let offered: Vec<&str> = self.server.function_signatures().map(|(n, _)| n).collect();
            let offered = if offered.is_empty() {
                "it declares none".to_string()
            } else {
                format!("it offers {}", offered.join(", "))
            };
            return failed(
                format!(
                    "{} does not support a function {:?} ({offered})",
                    self.server.provider_type_name(),
                    request.name
                ),
                None,
            );
        };
        if request.arguments.len() != signature.parameters.len() {
            return failed(
                format!(
                    "{} takes {} arguments, got {}",
                    request.name,
                    signature.parameters.len(),
                    request.arguments.len()
                ),
                None,
            );
        }
        let mut arguments = Vec::with_capacity(request.arguments.len());
        for (index, (dv, parameter)) in request
            .arguments
            .iter()
            .zip(&signature.parameters)
            .enumerate()
        {
            match wire::decode_dynamic_value(Some(dv), &parameter.ty) {
                Ok(v) => arguments.push(v),
                Err(e) => return failed(format!("{}: {e}", parameter.name), Some(index)),
            }
        }
        match function.call(&arguments) {
            Ok(value) => match wire::encode_dynamic_value(&value, &signature.returns) {
                Ok(result) => Ok(Response::new(pb::call_function::Response {
                    result: Some(result),
                    error: None,
                })),
                Err(e) => failed(format!("encoding the result: {e}"), None),
            },
            Err(e) => failed(e.text, e.argument),
        }
    }

    async fn stop(&self, _request: Request<pb::stop::Request>) -> RpcResult<pb::stop::Response> {
        log::debug!("plugin: Stop received; cancelling in-flight calls");
        self.server.stop();
        Ok(Response::new(pb::stop::Response {
            error: String::new(),
        }))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_convert_step_by_step() {
        use pb::attribute_path::step::Selector;
        let p = AttributePath::attr("rules").index(2).key("k");
        let proto = path_to_proto(p);
        let sel: Vec<_> = proto.steps.into_iter().map(|s| s.selector).collect();
        assert_eq!(
            sel,
            vec![
                Some(Selector::AttributeName("rules".into())),
                Some(Selector::ElementKeyInt(2)),
                Some(Selector::ElementKeyString("k".into())),
            ]
        );
    }

    #[test]
    fn diagnostics_keep_severity_and_drop_root_paths() {
        let mut d = Diagnostics::new();
        d.push(Diagnostic::warning("w", "x"));
        d.push(Diagnostic::error("e", "y").at(AttributePath::attr("a")));
        let out = diagnostics_to_proto(d);
        assert_eq!(out[0].severity, pb::diagnostic::Severity::Warning as i32);
        assert!(out[0].attribute.is_none());
        assert_eq!(out[1].severity, pb::diagnostic::Severity::Error as i32);
        assert!(out[1].attribute.is_some());
    }

    #[test]
    fn schema_always_carries_blocks() {
        let schema = Schema::new(
            Block::new()
                .attribute(Attribute::string("id").computed())
                .block(NestedBlock::list("rule", Block::new())),
        );
        let proto = schema_to_proto(&schema);
        let block = proto.block.expect("block");
        assert_eq!(block.attributes[0].r#type, br#""string""#);
        assert!(block.block_types[0].block.is_some());
        assert_eq!(
            block.block_types[0].nesting,
            pb::schema::nested_block::NestingMode::List as i32
        );
    }
}
