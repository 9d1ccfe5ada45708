//! Policy definitions and policy set definitions. Built-ins come from the catalogue and are
//! visible at tenant, management-group and subscription scope; custom definitions are stored
//! resources (added by a later issue).

use http::Method;

use super::filter::DefinitionFilter;
use super::{error::ArmError, ok_json, paging, ArmRequest};
use crate::emulator::catalogue::{find, CatalogueEntry};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;

/// Deliberately small so every client's paging code runs against the emulator.
const PAGE_SIZE: usize = 4;

/// Which of the two definition kinds a request is about.
#[derive(Clone, Copy)]
enum Kind {
    Definition,
    SetDefinition,
}

impl Kind {
    fn entries(self, state: &AppState) -> &[CatalogueEntry] {
        match self {
            Kind::Definition => &state.catalogue.definitions,
            Kind::SetDefinition => &state.catalogue.set_definitions,
        }
    }

    fn not_found(self, name: &str) -> ArmError {
        match self {
            Kind::Definition => ArmError::not_found(
                "PolicyDefinitionNotFound",
                format!("The policy definition '{name}' could not be found."),
            ),
            Kind::SetDefinition => ArmError::not_found(
                "PolicySetDefinitionNotFound",
                format!("The policy set definition '{name}' could not be found."),
            ),
        }
    }
}

pub(crate) fn handle_definitions(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ArmError> {
    handle(state, req, Kind::Definition)
}

pub(crate) fn handle_set_definitions(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ArmError> {
    handle(state, req, Kind::SetDefinition)
}

fn handle(state: &AppState, req: &ArmRequest<'_>, kind: Kind) -> Result<Response, ArmError> {
    check_scope(state, req)?;
    if req.path.types.len() != 1 {
        return Err(ArmError::not_found(
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found in the namespace '{}'.",
                req.path.type_display(),
                req.path.namespace
            ),
        ));
    }
    if req.http.method != Method::GET {
        return Err(ArmError::method_not_allowed(&req.http.method));
    }
    match req.path.item_name() {
        Some(name) => find(kind.entries(state), name)
            .map(|e| ok_json(&e.body))
            .ok_or_else(|| kind.not_found(name)),
        None => {
            let filter = DefinitionFilter::parse(req.http.query_param("$filter"))?;
            let items = kind
                .entries(state)
                .iter()
                .filter(|e| filter.accepts(&e.policy_type, e.category.as_deref()))
                .map(|e| e.body.clone())
                .collect();
            Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
        }
    }
}

/// Definitions live at tenant, management group or subscription scope only.
fn check_scope(state: &AppState, req: &ArmRequest<'_>) -> Result<(), ArmError> {
    if req.path.scope.is_empty() || req.path.management_group_scope().is_some() {
        return Ok(());
    }
    if let Some(sub) = req.path.subscription_scope() {
        return match state.store.get(&format!("/subscriptions/{sub}"))? {
            Some(_) => Ok(()),
            None => Err(ArmError::subscription_not_found(sub)),
        };
    }
    Err(ArmError::bad_request(
        "InvalidScope",
        format!(
            "Policy definitions can be read at tenant, management group or subscription scope, not at '{}'.",
            req.path.scope_id()
        ),
    ))
}
