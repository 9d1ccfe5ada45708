//! Protocol-agnostic orchestration of the provider RPCs (terraform-plugin-framework's
//! `fwserver`). The `plugin` layer decodes wire bytes into [`Value`]s with the schemas this
//! server exposes, calls one method per RPC, and encodes the answer; everything Terraform
//! expects semantically happens here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio_util::sync::CancellationToken;

use super::apply::local_only_update;
use super::diag::{AttributePath, Diagnostic, Diagnostics};
use super::function::{Function, FunctionSignature};
use super::plan::plan_resource_change;
use super::private::PrivateState;
use super::resource::{
    ApplyRequest, ApplyResponse, CallContext, CheckRemovalRequest, CheckRemovalResponse,
    ConfigureRequest, ConfigureResponse, DataSource, DeleteRequest, DeleteResponse, ImportRequest,
    ImportResponse, ModifyPlanRequest, ModifyPlanResponse, Provider, ProviderData, ReadDataRequest,
    ReadDataResponse, ReadRequest, ReadResponse, Removal, Resource, UpgradeStateRequest,
    UpgradeStateResponse, ValidateConfigRequest, ValidateConfigResponse,
};
use super::schema::{Block, NestingMode, Schema};
use super::value::Value;

pub struct PlanRequest {
    pub type_name: String,
    pub prior_state: Value,
    pub proposed_new_state: Value,
    pub config: Value,
    pub prior_private: Vec<u8>,
}

pub struct PlanResponse {
    pub planned_state: Value,
    pub requires_replace: Vec<AttributePath>,
    pub planned_private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

pub struct ApplyResourceRequest {
    pub type_name: String,
    pub prior_state: Value,
    pub planned_state: Value,
    pub config: Value,
    pub planned_private: Vec<u8>,
}

pub struct ApplyResourceResponse {
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

pub struct ReadResourceResponse {
    /// Null when the remote object is gone.
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
}

pub struct ImportedResource {
    pub type_name: String,
    pub state: Value,
    pub private: Vec<u8>,
}

pub struct ImportResourceResponse {
    pub imported: Vec<ImportedResource>,
    pub diagnostics: Diagnostics,
}

/// The provider as Terraform sees it through any protocol version.
pub struct Server {
    provider: Arc<dyn Provider>,
    provider_schema: Schema,
    resources: BTreeMap<String, (Arc<dyn Resource>, Schema)>,
    data_sources: BTreeMap<String, (Arc<dyn DataSource>, Schema)>,
    functions: BTreeMap<String, (Arc<dyn Function>, FunctionSignature)>,
    configured: RwLock<Option<ProviderData>>,
    // Replaced after each Stop so later calls are not born cancelled.
    stop: Mutex<CancellationToken>,
}

impl Server {
    pub fn new(provider: Arc<dyn Provider>) -> Server {
        let resources = provider
            .resources()
            .into_iter()
            .map(|r| (r.type_name().to_string(), (r.clone(), r.schema())))
            .collect();
        let data_sources = provider
            .data_sources()
            .into_iter()
            .map(|d| (d.type_name().to_string(), (d.clone(), d.schema())))
            .collect();
        let functions = provider
            .functions()
            .into_iter()
            .map(|f| (f.name().to_string(), (f.clone(), f.signature())))
            .collect();
        Server {
            functions,
            provider_schema: provider.schema(),
            provider,
            resources,
            data_sources,
            configured: RwLock::new(None),
            stop: Mutex::new(CancellationToken::new()),
        }
    }

    pub fn provider_type_name(&self) -> &'static str {
        self.provider.type_name()
    }

    pub fn provider_schema(&self) -> &Schema {
        &self.provider_schema
    }

    pub fn resource_schemas(&self) -> impl Iterator<Item = (&str, &Schema)> {
        self.resources.iter().map(|(k, (_, s))| (k.as_str(), s))
    }

    pub fn data_source_schemas(&self) -> impl Iterator<Item = (&str, &Schema)> {
        self.data_sources.iter().map(|(k, (_, s))| (k.as_str(), s))
    }

    pub fn function_signatures(&self) -> impl Iterator<Item = (&str, &FunctionSignature)> {
        self.functions.iter().map(|(k, (_, s))| (k.as_str(), s))
    }

    pub fn function(&self, name: &str) -> Option<(&Arc<dyn Function>, &FunctionSignature)> {
        self.functions.get(name).map(|(f, s)| (f, s))
    }

    pub fn resource_schema(&self, type_name: &str) -> Option<&Schema> {
        self.resources.get(type_name).map(|(_, s)| s)
    }

    pub fn data_source_schema(&self, type_name: &str) -> Option<&Schema> {
        self.data_sources.get(type_name).map(|(_, s)| s)
    }

    /// The diagnostic for a type name the provider does not declare.
    pub fn unknown_type(kind: &str, type_name: &str) -> Diagnostics {
        Diagnostic::error(
            format!("Unknown {kind} type"),
            format!("The akspolicy provider has no {kind} type named {type_name:?}."),
        )
        .into()
    }

    fn context(&self) -> CallContext {
        let provider_data = self
            .configured
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        let cancel = self
            .stop
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        CallContext {
            provider_data,
            cancel,
            private: PrivateState::default(),
        }
    }

    /// Cancels every call in flight (Terraform's Stop, sent on Ctrl-C).
    pub fn stop(&self) {
        let mut guard = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        guard.cancel();
        self.provider.stop();
        *guard = CancellationToken::new();
    }

    pub fn validate_provider_config(&self, config: &Value) -> Diagnostics {
        validate_config(&self.provider_schema, config, |req, resp| {
            self.provider.validate_config(req, resp)
        })
    }

    pub async fn configure(&self, terraform_version: String, config: Value) -> Diagnostics {
        let mut diags = self.validate_provider_config(&config);
        if diags.has_errors() {
            return diags;
        }
        let mut resp = ConfigureResponse::default();
        self.provider
            .configure(
                ConfigureRequest {
                    terraform_version,
                    config,
                },
                &mut resp,
            )
            .await;
        if let Some(data) = resp.provider_data {
            let mut slot = self.configured.write().unwrap_or_else(|p| p.into_inner());
            *slot = Some(data);
        }
        diags.extend(resp.diags);
        diags
    }

    pub fn validate_resource_config(&self, type_name: &str, config: &Value) -> Diagnostics {
        let Some((resource, schema)) = self.resources.get(type_name) else {
            return Self::unknown_type("resource", type_name);
        };
        validate_config(schema, config, |req, resp| {
            resource.validate_config(req, resp)
        })
    }

    pub fn validate_data_source_config(&self, type_name: &str, config: &Value) -> Diagnostics {
        let Some((data_source, schema)) = self.data_sources.get(type_name) else {
            return Self::unknown_type("data source", type_name);
        };
        validate_config(schema, config, |req, resp| {
            data_source.validate_config(req, resp)
        })
    }

    /// Rewrites a stored state's JSON into the current schema version's JSON. The caller decodes
    /// the result with the current schema (missing attributes become null).
    pub fn upgrade_resource_state(
        &self,
        type_name: &str,
        version: i64,
        raw: serde_json::Value,
    ) -> Result<serde_json::Value, Diagnostics> {
        let Some((resource, schema)) = self.resources.get(type_name) else {
            return Err(Self::unknown_type("resource", type_name));
        };
        if version == schema.version {
            return Ok(raw);
        }
        if version > schema.version {
            return Err(Diagnostic::error(
                "State written by a newer provider",
                format!(
                    "This {type_name} was stored with schema version {version}, but this version \
                     of the akspolicy provider only knows up to version {}. Upgrade the provider.",
                    schema.version
                ),
            )
            .into());
        }
        let mut resp = UpgradeStateResponse::default();
        resource.upgrade_state(
            UpgradeStateRequest {
                from_version: version,
                raw,
            },
            &mut resp,
        );
        match resp.state {
            Some(state) if !resp.diags.has_errors() => Ok(state),
            _ => {
                if !resp.diags.has_errors() {
                    resp.diags.error(
                        "Missing upgraded state",
                        format!(
                            "The {type_name} state upgrade returned nothing. This is a bug in the \
                             provider."
                        ),
                    );
                }
                Err(resp.diags)
            }
        }
    }

    pub async fn read_resource(
        &self,
        type_name: &str,
        current_state: Value,
        private: Vec<u8>,
    ) -> ReadResourceResponse {
        let Some((resource, _)) = self.resources.get(type_name) else {
            return ReadResourceResponse {
                new_state: current_state,
                private,
                diagnostics: Self::unknown_type("resource", type_name),
            };
        };
        if current_state.is_null() {
            return ReadResourceResponse {
                new_state: Value::Null,
                private,
                diagnostics: Diagnostics::new(),
            };
        }
        let ctx = CallContext {
            private: PrivateState::decode(&private),
            ..self.context()
        };
        let mut resp = ReadResponse::default();
        // Reads change nothing remotely, so abandoning one on Stop loses nothing.
        let finished = tokio::select! {
            _ = resource.read(&ctx, ReadRequest { state: &current_state }, &mut resp) => true,
            _ = ctx.cancel.cancelled() => false,
        };
        let ReadResponse {
            state: mut new_state,
            mut diags,
        } = resp;
        if !finished {
            diags.push(interrupted(type_name));
            new_state = Some(current_state.clone());
        }
        ReadResourceResponse {
            // On error keep the prior state: Terraform must not forget an object because a
            // read failed.
            new_state: if diags.has_errors() {
                new_state.unwrap_or(current_state)
            } else {
                new_state.unwrap_or(Value::Null)
            },
            private,
            diagnostics: diags,
        }
    }

    pub async fn plan_resource_change(&self, req: PlanRequest) -> PlanResponse {
        let Some((resource, schema)) = self.resources.get(&req.type_name) else {
            return PlanResponse {
                planned_state: req.proposed_new_state,
                requires_replace: Vec::new(),
                planned_private: req.prior_private,
                diagnostics: Self::unknown_type("resource", &req.type_name),
            };
        };
        let generic = plan_resource_change(
            schema,
            &req.prior_state,
            &req.proposed_new_state,
            &req.config,
        );
        if generic.planned.is_null() {
            // Destroy: nothing to refine, only to check.
            let mut diagnostics = Diagnostics::new();
            if !req.prior_state.is_null() {
                let mut resp = CheckRemovalResponse::default();
                resource
                    .check_removal(
                        &self.context(),
                        CheckRemovalRequest {
                            prior: &req.prior_state,
                            removal: Removal::Destroy,
                        },
                        &mut resp,
                    )
                    .await;
                diagnostics = resp.diags;
            }
            return PlanResponse {
                planned_state: Value::Null,
                requires_replace: Vec::new(),
                planned_private: req.prior_private,
                diagnostics,
            };
        }
        let mut change = ModifyPlanResponse {
            planned: generic.planned,
            requires_replace: generic.requires_replace,
            diags: Diagnostics::new(),
        };
        let ctx = self.context();
        let plan = ModifyPlanRequest {
            prior: &req.prior_state,
            config: &req.config,
        };
        resource.modify_plan(&ctx, plan, &mut change).await;
        let mut requires_replace = change.requires_replace;
        requires_replace.dedup();
        let mut diagnostics = change.diags;
        if !req.prior_state.is_null() && !requires_replace.is_empty() && !diagnostics.has_errors() {
            let mut resp = CheckRemovalResponse::default();
            let removal = CheckRemovalRequest {
                prior: &req.prior_state,
                removal: Removal::Replace,
            };
            resource.check_removal(&ctx, removal, &mut resp).await;
            diagnostics.extend(resp.diags);
        }
        PlanResponse {
            planned_state: change.planned,
            requires_replace,
            planned_private: req.prior_private,
            diagnostics,
        }
    }

    pub async fn apply_resource_change(&self, req: ApplyResourceRequest) -> ApplyResourceResponse {
        let Some((resource, schema)) = self.resources.get(&req.type_name) else {
            return ApplyResourceResponse {
                new_state: req.prior_state,
                private: req.planned_private,
                diagnostics: Self::unknown_type("resource", &req.type_name),
            };
        };
        let ctx = CallContext {
            private: PrivateState::decode(&req.planned_private),
            ..self.context()
        };
        if req.planned_state.is_null() {
            let mut resp = DeleteResponse::default();
            let delete = DeleteRequest {
                prior: &req.prior_state,
            };
            resource.delete(&ctx, delete, &mut resp).await;
            let diags = resp.diags;
            return ApplyResourceResponse {
                // A failed delete keeps the object in state so it is not lost.
                new_state: if diags.has_errors() {
                    req.prior_state
                } else {
                    Value::Null
                },
                private: req.planned_private,
                diagnostics: diags,
            };
        }
        let apply = ApplyRequest {
            prior: &req.prior_state,
            planned: &req.planned_state,
            config: &req.config,
        };
        let creating = req.prior_state.is_null();
        // An update of only what lives in Terraform (`timeouts`, `local_only` attributes and
        // blocks) never reaches the resource.
        let local_only = (!creating)
            .then(|| local_only_update(&schema.block, &req.prior_state, &req.planned_state))
            .flatten();
        let mut resp = ApplyResponse::default();
        match local_only {
            Some(state) => resp = ApplyResponse::ok(state),
            None if creating => resource.create(&ctx, apply, &mut resp).await,
            None => resource.update(&ctx, apply, &mut resp).await,
        }
        let ApplyResponse {
            state,
            mut diags,
            private,
        } = resp;
        let private = match private {
            Some(p) => p.encode(),
            None => req.planned_private,
        };
        let new_state = match state {
            Some(s) => s,
            None if creating => {
                if !diags.has_errors() {
                    diags.error(
                        "Missing resource state after create",
                        format!(
                            "The {} create finished without an error but returned no state. This \
                             is a bug in the provider.",
                            req.type_name
                        ),
                    );
                }
                Value::Null
            }
            // A failed update leaves the prior state: it never claims what Azure does not have.
            None => req.prior_state.clone(),
        };
        if !new_state.is_wholly_known() {
            diags.error(
                "Provider left values unknown after apply",
                format!(
                    "The {} apply returned unknown values. This is a bug in the provider.",
                    req.type_name
                ),
            );
        }
        ApplyResourceResponse {
            new_state,
            private,
            diagnostics: diags,
        }
    }

    pub async fn import_resource_state(&self, type_name: &str, id: &str) -> ImportResourceResponse {
        let Some((resource, _)) = self.resources.get(type_name) else {
            return ImportResourceResponse {
                imported: Vec::new(),
                diagnostics: Self::unknown_type("resource", type_name),
            };
        };
        let ctx = self.context();
        let mut resp = ImportResponse::default();
        resource.import(&ctx, ImportRequest { id }, &mut resp).await;
        let diags = resp.diags;
        let imported = resp
            .state
            .map(|state| ImportedResource {
                type_name: type_name.to_string(),
                state,
                private: Vec::new(),
            })
            .into_iter()
            .collect();
        ImportResourceResponse {
            imported,
            diagnostics: diags,
        }
    }

    pub async fn read_data_source(&self, type_name: &str, config: Value) -> (Value, Diagnostics) {
        let Some((data_source, _)) = self.data_sources.get(type_name) else {
            return (config, Self::unknown_type("data source", type_name));
        };
        let ctx = self.context();
        let mut resp = ReadDataResponse::default();
        let finished = tokio::select! {
            _ = data_source.read(&ctx, ReadDataRequest { config: &config }, &mut resp) => true,
            _ = ctx.cancel.cancelled() => false,
        };
        let ReadDataResponse {
            state: read,
            mut diags,
        } = resp;
        if !finished {
            diags.push(interrupted(type_name));
            return (config, diags);
        }
        match read {
            Some(state) if state.is_wholly_known() => (state, diags),
            Some(_) => {
                diags.error(
                    "Data source left values unknown",
                    format!("{type_name} returned unknown values. This is a bug in the provider."),
                );
                (config, diags)
            }
            None => {
                if !diags.has_errors() {
                    diags.error(
                        "Data source returned nothing",
                        format!("{type_name} produced no result. This is a bug in the provider."),
                    );
                }
                (config, diags)
            }
        }
    }
}

fn interrupted(type_name: &str) -> Diagnostic {
    Diagnostic::error(
        "Interrupted",
        format!("Terraform asked the provider to stop while it was reading {type_name}."),
    )
}

/// The schema's attribute validators, then the checks across attributes that the provider,
/// resource or data source makes itself.
fn validate_config(
    schema: &Schema,
    config: &Value,
    own_checks: impl FnOnce(ValidateConfigRequest<'_>, &mut ValidateConfigResponse),
) -> Diagnostics {
    let mut resp = ValidateConfigResponse::default();
    validate_block(
        &schema.block,
        config,
        &AttributePath::root(),
        &mut resp.diags,
    );
    own_checks(ValidateConfigRequest { config }, &mut resp);
    resp.diags
}

/// Runs attribute validators over known, non-null configuration values, descending into
/// nested blocks.
fn validate_block(block: &Block, config: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    if !config.is_set() {
        return;
    }
    for a in &block.attributes {
        let v = config.get(&a.name);
        if v.is_set() {
            let here = path.attribute(&a.name);
            for check in &a.validators {
                check(v, &here, diags);
            }
        }
    }
    for nb in &block.blocks {
        let v = config.get(&nb.type_name);
        let here = path.attribute(&nb.type_name);
        match nb.nesting {
            NestingMode::Single | NestingMode::Group => validate_block(&nb.block, v, &here, diags),
            NestingMode::List => {
                for (i, item) in v.elements().iter().enumerate() {
                    validate_block(&nb.block, item, &here.index(i), diags);
                }
            }
            // Set elements cannot be addressed, so diagnostics stop at the set itself.
            NestingMode::Set => {
                for item in v.elements() {
                    validate_block(&nb.block, item, &here, diags);
                }
            }
            NestingMode::Map => {
                if let Some(m) = v.entries() {
                    for (k, item) in m {
                        validate_block(&nb.block, item, &here.key(k), diags);
                    }
                }
            }
        }
    }
}
