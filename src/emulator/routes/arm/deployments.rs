//! `Microsoft.Resources/deployments` at resource group and subscription scope: PUT runs the
//! template through [`crate::emulator::deploy`] and answers 201 with `Azure-AsyncOperation`,
//! as ARM does; the record reads `Running` until a third of the fault profile's `lro_ms` has
//! passed, then its outcome. GET, list and DELETE (of the record) as ARM has them.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::filter::ScopeRelation;
use super::managed_clusters::set_header;
use super::scope::{related_to_scope, Scope, ScopeKind};
use super::{
    empty, error::ErrorResponse, now_ms, ok_json, paging, parse_body, status_json, ArmRequest,
};
use crate::emulator::deploy::{DeployTarget, Deployer};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;
use crate::emulator::store::StoredResource;

const NAMESPACE_TYPE: &str = "microsoft.resources/deployments";
const PAGE_SIZE: usize = 100;

fn target(scope: &Scope) -> Result<DeployTarget, ErrorResponse> {
    match &scope.kind {
        ScopeKind::Subscription(s) => Ok(DeployTarget {
            subscription: s.clone(),
            resource_group: None,
        }),
        ScopeKind::ResourceGroup {
            subscription,
            group,
        } => Ok(DeployTarget {
            subscription: subscription.clone(),
            resource_group: Some(group.clone()),
        }),
        _ => Err(ErrorResponse::bad_request(
            "InvalidDeploymentScope",
            format!(
                "The emulator runs deployments at subscription and resource group scope, not at '{}'.",
                scope.id
            ),
        )),
    }
}

pub(crate) fn handle(state: &AppState, req: &ArmRequest<'_>) -> Result<Response, ErrorResponse> {
    let scope = Scope::existing(state, &req.path.scope)?;
    let target = target(&scope)?;
    let method = &req.http.method;
    match (req.path.types.len(), req.path.names.first().cloned()) {
        (1, None) if method == Method::GET => {
            let items: Vec<Value> =
                related_to_scope(state, &scope, NAMESPACE_TYPE, ScopeRelation::AtExactScope)?
                    .iter()
                    .map(render)
                    .collect();
            Ok(ok_json(&paging::page(items, req, PAGE_SIZE)?))
        }
        (1, Some(name)) => {
            let id = target.deployment_id(&name);
            match *method {
                Method::GET => match state.store.get(&id)? {
                    Some(stored) => Ok(ok_json(&render(&stored))),
                    None => Err(not_found(&name)),
                },
                Method::PUT => put(state, req, &target, &name),
                Method::DELETE => match state.store.delete(&id)? {
                    Some(_) => Ok(empty(StatusCode::ACCEPTED)),
                    None => Ok(empty(StatusCode::NO_CONTENT)),
                },
                _ => Err(ErrorResponse::method_not_allowed(method)),
            }
        }
        // `.../deployments/{name}/operationStatuses/{id}`: the Azure-AsyncOperation URL.
        (2, Some(name)) if method == Method::GET => {
            let id = target.deployment_id(&name);
            let stored = state.store.get(&id)?.ok_or_else(|| not_found(&name))?;
            let phase = phase(&stored);
            let mut body = json!({"status": phase});
            if phase == "Failed" {
                body["error"] = stored.body["properties"]["error"].clone();
            }
            Ok(ok_json(&body))
        }
        _ => Err(ErrorResponse::method_not_allowed(method)),
    }
}

fn not_found(name: &str) -> ErrorResponse {
    ErrorResponse::not_found(
        "DeploymentNotFound",
        format!("Deployment '{name}' could not be found."),
    )
}

fn put(
    state: &AppState,
    req: &ArmRequest<'_>,
    target: &DeployTarget,
    name: &str,
) -> Result<Response, ErrorResponse> {
    let rule = crate::policy::names::DEPLOYMENT;
    if let Err(crate::policy::names::NameProblem::TooLong { max, .. }) = rule.check(name) {
        return Err(ErrorResponse::bad_request(
            "InvalidDeploymentName",
            format!(
                "The deployment name '{name}' is invalid: it must be at most {max} characters."
            ),
        ));
    }
    super::check_name("deployment", name, &rule)?;
    if let Some(existing) = state.store.get(&target.deployment_id(name))? {
        if phase(&existing) == "Running" {
            return Err(ErrorResponse::new(
                StatusCode::CONFLICT,
                "DeploymentActive",
                format!("The deployment '{name}' is still active; wait for it to finish before redeploying."),
            ));
        }
    }
    let request: Value = parse_body(req)?;
    let deployer = Deployer::new(state, req, None);
    let deployed = deployer
        .deploy(target, name, &request)
        .map_err(|e| e.into_arm())?;
    let stored = state
        .store
        .get(&deployed.id)?
        .ok_or_else(|| ErrorResponse::internal("deployment write lost"))?;
    let mut resp = status_json(StatusCode::CREATED, &render(&stored));
    let op = format!(
        "{}{}/operationStatuses/{}?api-version={}",
        req.http.base_url,
        deployed.id,
        crate::emulator::state::new_guid(),
        req.api_version
    );
    set_header(&mut resp, "azure-asyncoperation", &op);
    set_header(&mut resp, "retry-after", "1");
    Ok(resp)
}

/// `Running` until the record becomes visible, then its stored outcome.
fn phase(stored: &StoredResource) -> String {
    let visible = stored.internal["visible_ms"].as_u64().unwrap_or(0);
    if now_ms() < visible {
        return "Running".to_string();
    }
    stored.body["properties"]["provisioningState"]
        .as_str()
        .unwrap_or("Succeeded")
        .to_string()
}

fn render(stored: &StoredResource) -> Value {
    let mut body = stored.body.clone();
    let phase = phase(stored);
    if phase == "Running" {
        let props = &mut body["properties"];
        props["provisioningState"] = json!("Running");
        if let Some(map) = props.as_object_mut() {
            map.remove("outputs");
            map.remove("error");
        }
    }
    body
}
