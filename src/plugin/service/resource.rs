//! The RPCs of a managed resource's lifecycle: validate, upgrade stored state, read, plan,
//! apply and import.

use crate::framework::server::{ApplyResourceRequest, PlanRequest};
use crate::framework::{Diagnostic, Diagnostics, Type, Value};
use crate::plugin::wire::{self, WireError};

use super::convert::{decode, decode_error, diagnostics_to_proto, encode, path_to_proto};
use super::{pb, ProviderService};

pub(super) async fn validate_config(
    service: &ProviderService,
    req: pb::validate_resource_type_config::Request,
) -> pb::validate_resource_type_config::Response {
    let diags = match service
        .resource_type(&req.type_name)
        .and_then(|ty| decode(req.config.as_ref(), &ty, "configuration", &req.type_name))
    {
        Ok(config) => {
            // Validation may evaluate policy tests for seconds: keep the async workers free
            // so Terraform's Stop and other calls are still answered meanwhile.
            let server = service.server.clone();
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
    pb::validate_resource_type_config::Response {
        diagnostics: diagnostics_to_proto(diags),
    }
}

pub(super) fn upgrade_state(
    service: &ProviderService,
    req: pb::upgrade_resource_state::Request,
) -> pb::upgrade_resource_state::Response {
    let type_name = req.type_name.as_str();
    let result = (|| {
        let ty = service.resource_type(type_name)?;
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
        let upgraded = service
            .server
            .upgrade_resource_state(type_name, req.version, json)?;
        // Stored state may carry attributes a later schema dropped: ignore them.
        let value = wire::json::decode_value(&upgraded, &ty, true)
            .map_err(|e| decode_error("stored state", type_name, &e))?;
        Ok((value, ty, Diagnostics::new()))
    })();
    match result {
        Ok((value, ty, mut diags)) => {
            let upgraded_state = encode(&value, &ty, "state", type_name, &mut diags);
            pb::upgrade_resource_state::Response {
                upgraded_state,
                diagnostics: diagnostics_to_proto(diags),
            }
        }
        Err(diags) => pb::upgrade_resource_state::Response {
            upgraded_state: None,
            diagnostics: diagnostics_to_proto(diags),
        },
    }
}

pub(super) async fn read(
    service: &ProviderService,
    req: pb::read_resource::Request,
) -> pb::read_resource::Response {
    let type_name = req.type_name.clone();
    let decoded = service.resource_type(&type_name).and_then(|ty| {
        let state = decode(req.current_state.as_ref(), &ty, "current state", &type_name)?;
        Ok((ty, state))
    });
    let (ty, state) = match decoded {
        Ok(v) => v,
        Err(diags) => {
            // Echo what Terraform sent so a decode problem never drops the object.
            return pb::read_resource::Response {
                new_state: req.current_state,
                diagnostics: diagnostics_to_proto(diags),
                private: req.private,
                deferred: None,
                new_identity: None,
            };
        }
    };
    let resp = service
        .server
        .read_resource(&type_name, state, req.private)
        .await;
    let mut diags = resp.diagnostics;
    let new_state = encode(&resp.new_state, &ty, "state", &type_name, &mut diags);
    pb::read_resource::Response {
        new_state,
        diagnostics: diagnostics_to_proto(diags),
        private: resp.private,
        deferred: None,
        new_identity: None,
    }
}

pub(super) async fn plan(
    service: &ProviderService,
    req: pb::plan_resource_change::Request,
) -> pb::plan_resource_change::Response {
    let type_name = req.type_name.clone();
    let decoded = decode_change(
        service,
        &type_name,
        req.prior_state.as_ref(),
        (req.proposed_new_state.as_ref(), "proposed new state"),
        req.config.as_ref(),
    );
    let (ty, prior_state, proposed_new_state, config) = match decoded {
        Ok(v) => v,
        Err(diags) => {
            return pb::plan_resource_change::Response {
                planned_state: req.proposed_new_state,
                planned_private: req.prior_private,
                diagnostics: diagnostics_to_proto(diags),
                ..Default::default()
            }
        }
    };
    let resp = service
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
    pb::plan_resource_change::Response {
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
    }
}

pub(super) async fn apply(
    service: &ProviderService,
    req: pb::apply_resource_change::Request,
) -> pb::apply_resource_change::Response {
    let type_name = req.type_name.clone();
    let decoded = decode_change(
        service,
        &type_name,
        req.prior_state.as_ref(),
        (req.planned_state.as_ref(), "planned state"),
        req.config.as_ref(),
    );
    let (ty, prior_state, planned_state, config) = match decoded {
        Ok(v) => v,
        Err(diags) => {
            // Keep the prior object in state: nothing was changed remotely.
            return pb::apply_resource_change::Response {
                new_state: req.prior_state,
                private: req.planned_private,
                diagnostics: diagnostics_to_proto(diags),
                ..Default::default()
            };
        }
    };
    let resp = service
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
    pb::apply_resource_change::Response {
        new_state,
        private: resp.private,
        diagnostics: diagnostics_to_proto(diags),
        legacy_type_system: false,
        new_identity: None,
    }
}

pub(super) async fn import(
    service: &ProviderService,
    req: pb::import_resource_state::Request,
) -> pb::import_resource_state::Response {
    if let Err(diags) = service.resource_type(&req.type_name) {
        return pb::import_resource_state::Response {
            diagnostics: diagnostics_to_proto(diags),
            ..Default::default()
        };
    }
    let resp = service
        .server
        .import_resource_state(&req.type_name, &req.id)
        .await;
    let mut diags = resp.diagnostics;
    let mut imported_resources = Vec::new();
    for item in resp.imported {
        let ty = match service.resource_type(&item.type_name) {
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
    pb::import_resource_state::Response {
        imported_resources,
        diagnostics: diagnostics_to_proto(diags),
        deferred: None,
    }
}

/// The three values a plan or an apply carries (prior state, the proposed or planned new
/// state, configuration), decoded with the resource type's schema; the type comes along to
/// encode the answer.
fn decode_change(
    service: &ProviderService,
    type_name: &str,
    prior: Option<&pb::DynamicValue>,
    (new, new_what): (Option<&pb::DynamicValue>, &str),
    config: Option<&pb::DynamicValue>,
) -> Result<(Type, Value, Value, Value), Diagnostics> {
    let ty = service.resource_type(type_name)?;
    let prior = decode(prior, &ty, "prior state", type_name)?;
    let new = decode(new, &ty, new_what, type_name)?;
    let config = decode(config, &ty, "configuration", type_name)?;
    Ok((ty, prior, new, config))
}
