//! The deployment engine behind `Microsoft.Resources/deployments` and DeployIfNotExists
//! remediation: binds a template's parameters, deploys its resources in dependency order
//! (explicit `dependsOn` and the implicit order `reference()` asks for), runs nested
//! deployments with `inner` or `outer` expression scope, and evaluates outputs.
//!
//! Resources are written through the emulator's own ARM routes, so any type the emulator
//! hosts can be deployed and every write meets the same validation and policy (Deny, Modify)
//! as a direct request. The acting principal must hold a role allowing each write and read
//! (see [`crate::emulator::rbac`]); otherwise the deployment fails with `AuthorizationFailed`
//! as Azure's do.
//!
//! [`template`] runs one template (resource order, `reference()` of siblings, outputs);
//! [`resource`] writes one template resource, or runs it as a nested deployment.

mod resource;
mod template;

use template::Siblings;

use std::cell::Cell;

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::emulator::rbac;
use crate::emulator::routes::arm::{ArmRequest, ErrorResponse};
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::store::Change;
use crate::emulator::token::Claims;
use crate::policy::arm_template::{bind_parameters, DeploymentScope, TemplateError};

/// Deepest nesting of deployments (ARM allows far fewer levels in practice).
const MAX_DEPTH: usize = 10;
/// Most resources one deployment tree may write: ARM's per-template limit.
const MAX_RESOURCES: usize = 800;
const DEPLOYMENTS_TYPE: &str = "microsoft.resources/deployments";

/// Where a deployment lives: a subscription, or a resource group in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeployTarget {
    pub subscription: String,
    pub resource_group: Option<String>,
}

impl DeployTarget {
    pub(crate) fn scope_id(&self) -> String {
        match &self.resource_group {
            Some(g) => format!("/subscriptions/{}/resourceGroups/{g}", self.subscription),
            None => format!("/subscriptions/{}", self.subscription),
        }
    }

    pub(crate) fn deployment_id(&self, name: &str) -> String {
        format!(
            "{}/providers/Microsoft.Resources/deployments/{name}",
            self.scope_id()
        )
    }
}

/// Why a deployment failed: ARM's error body (code, message, details) and HTTP status.
#[derive(Debug, Clone)]
pub(crate) struct DeployError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Vec<Value>,
}

impl DeployError {
    fn template(e: TemplateError) -> Self {
        let status = match e {
            TemplateError::Resource(..) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code: e.code().to_string(),
            message: e.to_string(),
            details: Vec::new(),
        }
    }

    fn from_arm(e: &ErrorResponse) -> Self {
        Self {
            status: e.status,
            code: e.code.clone(),
            message: e.message.clone(),
            details: e
                .extra
                .as_ref()
                .map(|x| x.details.clone())
                .unwrap_or_default(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidTemplate".to_string(),
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The `error` object ARM puts on a failed deployment.
    pub(crate) fn to_json(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if !self.details.is_empty() {
            e["details"] = json!(self.details);
        }
        e
    }

    /// ARM's wrapper when a resource (or nested deployment) of the template failed.
    fn wrap(inner: DeployError) -> Self {
        Self {
            status: StatusCode::OK,
            code: "DeploymentFailed".to_string(),
            message: "At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.".to_string(),
            details: vec![inner.to_json()],
        }
    }

    pub(crate) fn into_arm(self) -> ErrorResponse {
        let mut e = ErrorResponse::new(self.status, &self.code, self.message);
        if !self.details.is_empty() {
            e.extra_mut().details = self.details;
        }
        e
    }
}

/// The result of a deployment that got as far as running (its record is stored).
pub(crate) struct Deployed {
    pub id: String,
    pub error: Option<DeployError>,
}

/// Runs deployments as one principal, on behalf of one incoming request.
pub(crate) struct Deployer<'a, 'r> {
    state: &'a AppState,
    on_behalf: &'a ArmRequest<'r>,
    claims: Claims,
    written: Cell<usize>,
}

/// Parameters and variables a nested `outer`-scope deployment evaluates with.
struct Inherited {
    parameters: Map<String, Value>,
    variables: Map<String, Value>,
    scope: DeploymentScope,
}

/// One deployment to run: the one a request asked for, or a deployment resource of a
/// template being deployed (one level deeper than its parent).
struct DeploymentRun<'d> {
    target: &'d DeployTarget,
    name: &'d str,
    request: &'d Value,
    /// The parent's, for a nested deployment evaluated in its `outer` scope.
    inherited: Option<&'d Inherited>,
    depth: usize,
}

impl<'d> DeploymentRun<'d> {
    fn requested(target: &'d DeployTarget, name: &'d str, request: &'d Value) -> Self {
        Self {
            target,
            name,
            request,
            inherited: None,
            depth: 0,
        }
    }
}

impl<'a, 'r> Deployer<'a, 'r> {
    /// Acting as `principal` (an object id); the request's own caller when `None`.
    pub(crate) fn new(
        state: &'a AppState,
        on_behalf: &'a ArmRequest<'r>,
        principal: Option<&str>,
    ) -> Self {
        let mut claims = on_behalf.principal.clone();
        if let Some(p) = principal {
            claims.oid = p.to_string();
            claims.sub = p.to_string();
            claims.appid = p.to_string();
            claims.azp = p.to_string();
        }
        Self {
            state,
            on_behalf,
            claims,
            written: Cell::new(0),
        }
    }

    /// Checks what ARM checks before accepting a deployment (the right to write it, a template
    /// object, its parameters), then runs it and stores its record. `Err` is the synchronous
    /// refusal; a deployment that ran and failed is `Ok` with `error` set.
    pub(crate) fn deploy(
        &self,
        target: &DeployTarget,
        name: &str,
        request: &Value,
    ) -> Result<Deployed, DeployError> {
        let id = target.deployment_id(name);
        self.authorize("Microsoft.Resources/deployments/write", &id)?;
        let props = &request["properties"];
        if props.get("templateLink").is_some_and(|l| !l.is_null()) {
            return Err(DeployError::invalid(
                "The emulator's deployment engine takes inline templates ('properties.template') only; 'templateLink' cannot be fetched.",
            ));
        }
        if !props["template"].is_object() {
            return Err(DeployError::invalid(
                "The request content was invalid: 'properties.template' must be a template object.",
            ));
        }
        if target.resource_group.is_none() && request["location"].as_str().is_none_or(str::is_empty)
        {
            return Err(DeployError {
                status: StatusCode::BAD_REQUEST,
                code: "InvalidDeployment".to_string(),
                message: "The 'location' property must be specified for a deployment at subscription scope.".to_string(),
                details: Vec::new(),
            });
        }
        let scope = self.scope(target, name)?;
        let supplied = props["parameters"].as_object().cloned().unwrap_or_default();
        let host = Siblings::new(self, target);
        bind_parameters(&props["template"], &supplied, &scope, &host)
            .map_err(DeployError::template)?;
        Ok(self.run(&DeploymentRun::requested(target, name, request)))
    }

    fn authorize(&self, action: &str, target: &str) -> Result<(), DeployError> {
        rbac::authorize(self.state, &self.claims.oid, action, target)
            .map_err(|e| DeployError::from_arm(&e))
    }

    fn scope(&self, target: &DeployTarget, name: &str) -> Result<DeploymentScope, DeployError> {
        let resource_group = match &target.resource_group {
            Some(g) => {
                let id = target.scope_id();
                let stored = self
                    .state
                    .store
                    .get(&id)
                    .map_err(|e| DeployError::from_arm(&ErrorResponse::from(e)))?
                    .ok_or_else(|| DeployError {
                        status: StatusCode::NOT_FOUND,
                        code: "ResourceGroupNotFound".to_string(),
                        message: format!("Resource group '{g}' could not be found."),
                        details: Vec::new(),
                    })?;
                let mut body = stored.body.clone();
                body["id"] = json!(stored.id);
                body["name"] = json!(g);
                Some(body)
            }
            None => None,
        };
        Ok(DeploymentScope {
            tenant_id: self.state.identity.tenant_id.clone(),
            subscription_id: target.subscription.clone(),
            resource_group,
            deployment_name: name.to_string(),
        })
    }

    /// Runs one deployment and stores its record (Succeeded or Failed).
    fn run(&self, run: &DeploymentRun<'_>) -> Deployed {
        let DeploymentRun { name, request, .. } = *run;
        let id = run.target.deployment_id(name);
        let started = std::time::Instant::now();
        let result = self.execute(run);
        let props = &request["properties"];
        let (state_name, outputs, resources, error, parameters) = match result {
            Ok((outputs, resources, parameters)) => {
                ("Succeeded", outputs, resources, None, parameters)
            }
            Err(e) => ("Failed", Value::Null, Vec::new(), Some(e), Map::new()),
        };
        let mut body = json!({
            "id": id,
            "name": name,
            "type": "Microsoft.Resources/deployments",
            "properties": {
                "templateHash": crate::policy::arm_template::unique_string(&[props["template"].to_string()]),
                "parameters": parameters,
                "mode": props["mode"].as_str().unwrap_or("Incremental"),
                "provisioningState": state_name,
                "timestamp": crate::emulator::routes::arm::now_rfc3339(),
                "duration": format!("PT{:.3}S", started.elapsed().as_secs_f64()),
                "correlationId": new_guid(),
                "providers": [],
                "dependencies": [],
                "outputResources": resources.iter().map(|r| json!({"id": r})).collect::<Vec<_>>(),
            }
        });
        if let Some(loc) = request["location"].as_str() {
            body["location"] = json!(loc);
        }
        if !outputs.is_null() {
            body["properties"]["outputs"] = outputs;
        }
        if let Some(e) = &error {
            body["properties"]["error"] = e.to_json();
        }
        let visible_ms = crate::emulator::routes::arm::now_ms()
            .saturating_add(self.state.fault_profile().lro_ms / 3);
        let stored_body = body.clone();
        let _ = self.state.store.modify::<ErrorResponse, _>(&id, |_| {
            Ok(Change::Put {
                body: stored_body,
                internal: json!({"visible_ms": visible_ms}),
            })
        });
        Deployed { id, error }
    }
}
