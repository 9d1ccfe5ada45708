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

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::emulator::rbac;
use crate::emulator::routes::arm::{internal_call, latest_api_version, ArmError, ArmRequest};
use crate::emulator::state::{new_guid, AppState};
use crate::emulator::store::Change;
use crate::emulator::token::Claims;
use crate::policy::arm_template::{
    bind_parameters, DeploymentScope, TemplateError, TemplateEvaluator, TemplateHost,
};

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

    fn from_arm(e: &ArmError) -> Self {
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

    pub(crate) fn into_arm(self) -> ArmError {
        let mut e = ArmError::new(self.status, &self.code, self.message);
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
        Ok(self.run(target, name, request, None, 0))
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
                    .map_err(|e| DeployError::from_arm(&ArmError::from(e)))?
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
    fn run(
        &self,
        target: &DeployTarget,
        name: &str,
        request: &Value,
        inherited: Option<&Inherited>,
        depth: usize,
    ) -> Deployed {
        let id = target.deployment_id(name);
        let started = std::time::Instant::now();
        let result = self.execute(target, name, request, inherited, depth);
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
        let _ = self.state.store.modify::<ArmError, _>(&id, |_| {
            Ok(Change::Put {
                body: stored_body,
                internal: json!({"visible_ms": visible_ms}),
            })
        });
        Deployed { id, error }
    }

    /// Outputs, written resource ids and the bound parameters (for the record).
    #[allow(clippy::type_complexity)]
    fn execute(
        &self,
        target: &DeployTarget,
        name: &str,
        request: &Value,
        inherited: Option<&Inherited>,
        depth: usize,
    ) -> Result<(Value, Vec<String>, Map<String, Value>), DeployError> {
        if depth > MAX_DEPTH {
            return Err(DeployError::invalid(format!(
                "The deployment '{name}' is nested more than {MAX_DEPTH} levels deep."
            )));
        }
        let props = &request["properties"];
        if props["mode"]
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case("Complete"))
        {
            return Err(DeployError::invalid(
                "The emulator's deployment engine runs Incremental deployments only; 'Complete' mode would delete resources it cannot enumerate.",
            ));
        }
        let template = &props["template"];
        let own_scope = self.scope(target, name)?;
        let host = Siblings::new(self, target);
        let (parameters, variables, scope) = match inherited {
            Some(i) => (i.parameters.clone(), i.variables.clone(), i.scope.clone()),
            None => {
                let supplied = props["parameters"].as_object().cloned().unwrap_or_default();
                let bound = bind_parameters(template, &supplied, &own_scope, &host)
                    .map_err(DeployError::template)?;
                let vars = template["variables"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                (bound, vars, own_scope)
            }
        };
        let ev = TemplateEvaluator::new(parameters.clone(), variables.clone(), &scope, &host);
        let resources: Vec<Value> = match &template["resources"] {
            Value::Array(a) => a.clone(),
            Value::Null => Vec::new(),
            _ => {
                return Err(DeployError::invalid(
                    "The template 'resources' must be an array (symbolic-name resources are not supported).",
                ))
            }
        };
        // Names and ids first: `reference('name')` and `dependsOn` find siblings by them.
        let mut planned = Vec::new();
        for r in &resources {
            if r.get("copy").is_some() {
                return Err(DeployError::invalid(
                    "The emulator's deployment engine does not expand 'copy' loops.",
                ));
            }
            let rtype = ev.evaluate(&r["type"]).map_err(DeployError::template)?;
            let rtype = rtype.as_str().unwrap_or_default().to_string();
            let rname = ev.evaluate(&r["name"]).map_err(DeployError::template)?;
            let rname = rname.as_str().unwrap_or_default().to_string();
            if rtype.is_empty() || rname.is_empty() {
                return Err(DeployError::invalid(
                    "Every template resource needs a 'type' and a 'name'.",
                ));
            }
            let rtarget = self.resource_target(&ev, r, target)?;
            let id = resource_id(&rtarget, &rtype, &rname)?;
            host.declare(&rname, &id);
            planned.push((rtype, rname, rtarget, id));
        }
        let mut done = vec![false; resources.len()];
        let mut written = Vec::new();
        loop {
            let mut progressed = false;
            let mut waiting = 0;
            for i in 0..resources.len() {
                if done[i] {
                    continue;
                }
                let r = &resources[i];
                let (rtype, rname, rtarget, id) = &planned[i];
                let deps_done = r["dependsOn"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| ev.evaluate(d).ok())
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .all(|d| {
                        planned
                            .iter()
                            .enumerate()
                            .all(|(j, (t, n, _, pid))| done[j] || !depends_on_names(&d, t, n, pid))
                    });
                if !deps_done {
                    waiting += 1;
                    continue;
                }
                match self.deploy_resource(&ev, r, rtype, rname, rtarget, id, &scope, depth) {
                    Ok(wrote) => {
                        done[i] = true;
                        progressed = true;
                        host.deployed(rname);
                        written.extend(wrote);
                    }
                    Err(Step::Later) => waiting += 1,
                    Err(Step::Failed(e)) => return Err(e),
                }
            }
            if waiting == 0 {
                break;
            }
            if !progressed {
                return Err(DeployError::invalid(
                    "Deployment template validation failed: the resources' dependencies form a cycle or reference a resource the template does not deploy.",
                ));
            }
        }
        let mut outputs = Map::new();
        for (key, out) in template["outputs"].as_object().into_iter().flatten() {
            let value = ev
                .evaluate(&out["value"])
                .map_err(|e| DeployError::wrap(DeployError::template(e)))?;
            outputs.insert(
                key.clone(),
                json!({"type": out["type"].as_str().unwrap_or("String"), "value": value}),
            );
        }
        let recorded: Map<String, Value> = parameters
            .iter()
            .map(|(k, v)| {
                let kind = template["parameters"][k]["type"]
                    .as_str()
                    .unwrap_or("String");
                (k.clone(), json!({"type": kind, "value": v}))
            })
            .collect();
        Ok((Value::Object(outputs), written, recorded))
    }

    /// Where a template resource goes: its `subscriptionId`/`resourceGroup`, else the
    /// deployment's own place.
    fn resource_target(
        &self,
        ev: &TemplateEvaluator<'_>,
        r: &Value,
        target: &DeployTarget,
    ) -> Result<DeployTarget, DeployError> {
        let text = |key: &str| -> Result<Option<String>, DeployError> {
            match r.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => Ok(ev
                    .evaluate(v)
                    .map_err(DeployError::template)?
                    .as_str()
                    .map(str::to_string)),
            }
        };
        let subscription = text("subscriptionId")?.unwrap_or_else(|| target.subscription.clone());
        let resource_group = match text("resourceGroup")? {
            Some(g) => Some(g),
            None if subscription == target.subscription => target.resource_group.clone(),
            None => None,
        };
        Ok(DeployTarget {
            subscription,
            resource_group,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn deploy_resource(
        &self,
        ev: &TemplateEvaluator<'_>,
        r: &Value,
        rtype: &str,
        rname: &str,
        rtarget: &DeployTarget,
        id: &str,
        scope: &DeploymentScope,
        depth: usize,
    ) -> Result<Vec<String>, Step> {
        if let Some(cond) = r.get("condition") {
            let c = ev.evaluate(cond).map_err(Step::from_template)?;
            if c == json!(false) {
                return Ok(Vec::new());
            }
        }
        let count = self.written.get() + 1;
        if count > MAX_RESOURCES {
            return Err(Step::Failed(DeployError::invalid(format!(
                "The deployment writes more than {MAX_RESOURCES} resources."
            ))));
        }
        self.written.set(count);
        if rtype.eq_ignore_ascii_case("Microsoft.Resources/deployments") {
            let props = &r["properties"];
            let inner = props["expressionEvaluationOptions"]["scope"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("inner"));
            let mut child = json!({"properties": {
                "mode": props["mode"].clone(),
                "template": props["template"].clone(),
            }});
            if let Some(loc) = r.get("location") {
                child["location"] = ev.evaluate(loc).map_err(Step::from_template)?;
            }
            let inherited = if inner {
                let params = ev
                    .evaluate(&props["parameters"])
                    .map_err(Step::from_template)?;
                child["properties"]["parameters"] = params;
                None
            } else {
                Some(Inherited {
                    parameters: ev_parameters(ev),
                    variables: ev_variables(ev),
                    scope: scope.clone(),
                })
            };
            self.authorize("Microsoft.Resources/deployments/write", id)
                .map_err(|e| Step::Failed(DeployError::wrap(e)))?;
            let deployed = self.run(rtarget, rname, &child, inherited.as_ref(), depth + 1);
            if let Some(e) = deployed.error {
                return Err(Step::Failed(DeployError::wrap(e)));
            }
            return Ok(vec![deployed.id]);
        }
        let mut body = Map::new();
        for (k, v) in r.as_object().into_iter().flatten() {
            let skip = [
                "type",
                "apiversion",
                "name",
                "dependson",
                "condition",
                "copy",
                "resourcegroup",
                "subscriptionid",
                "comments",
                "scope",
            ];
            if skip.contains(&k.to_ascii_lowercase().as_str()) {
                continue;
            }
            body.insert(k.clone(), ev.evaluate(v).map_err(Step::from_template)?);
        }
        let api_version = r["apiVersion"].as_str().unwrap_or_default().to_string();
        self.authorize(&format!("{rtype}/write"), id)
            .map_err(|e| Step::Failed(DeployError::wrap(e)))?;
        let api_version = if latest_api_version(id)
            .is_some_and(|_| crate::emulator::routes::arm::supports_api_version(id, &api_version))
        {
            api_version
        } else {
            latest_api_version(id).unwrap_or_default().to_string()
        };
        internal_call(
            self.state,
            self.on_behalf,
            &self.claims,
            Method::PUT,
            id,
            &api_version,
            Some(&Value::Object(body)),
        )
        .map_err(|e| Step::Failed(DeployError::wrap(DeployError::from_arm(&e))))?;
        Ok(vec![id.to_string()])
    }

    /// `reference()` of a resource by id, as the acting principal.
    fn read(
        &self,
        id: &str,
        api_version: Option<&str>,
        full: bool,
    ) -> Result<Value, TemplateError> {
        let lower = id.to_ascii_lowercase();
        let is_deployment = lower.contains(&format!("/providers/{DEPLOYMENTS_TYPE}/"));
        let kind = crate::emulator::routes::arm::resource_type_of(id);
        rbac::authorize(self.state, &self.claims.oid, &format!("{kind}/read"), id)
            .map_err(|e| TemplateError::Resource(e.code, e.message))?;
        let body = if is_deployment {
            self.state
                .store
                .get(id)
                .ok()
                .flatten()
                .map(|s| s.body)
                .ok_or_else(|| {
                    TemplateError::Resource(
                        "DeploymentNotFound".to_string(),
                        format!(
                            "Deployment '{}' could not be found.",
                            id.rsplit('/').next().unwrap_or_default()
                        ),
                    )
                })?
        } else {
            let version = match api_version {
                Some(v) if crate::emulator::routes::arm::supports_api_version(id, v) => {
                    v.to_string()
                }
                _ => latest_api_version(id).unwrap_or_default().to_string(),
            };
            let (_, body) = internal_call(
                self.state,
                self.on_behalf,
                &self.claims,
                Method::GET,
                id,
                &version,
                None,
            )
            .map_err(|e| TemplateError::Resource(e.code, e.message))?;
            body
        };
        Ok(if full {
            body
        } else {
            body["properties"].clone()
        })
    }
}

fn ev_parameters(ev: &TemplateEvaluator<'_>) -> Map<String, Value> {
    ev.parameters().clone()
}

fn ev_variables(ev: &TemplateEvaluator<'_>) -> Map<String, Value> {
    ev.variables().clone()
}

/// One resource's step: done, wait for a sibling, or fail the deployment.
enum Step {
    Later,
    Failed(DeployError),
}

impl Step {
    fn from_template(e: TemplateError) -> Self {
        match e {
            TemplateError::NotYetDeployed(_) => Step::Later,
            other => Step::Failed(DeployError::wrap(DeployError::template(other))),
        }
    }
}

/// Whether a `dependsOn` entry (a name or an id) names this sibling.
fn depends_on_names(entry: &str, rtype: &str, rname: &str, id: &str) -> bool {
    let e = entry.to_ascii_lowercase();
    if e.starts_with('/') {
        return e == id.to_ascii_lowercase();
    }
    let name = rname.to_ascii_lowercase();
    e == name || e == format!("{}/{name}", rtype.to_ascii_lowercase())
}

/// The id of a template resource deployed at `target`.
fn resource_id(target: &DeployTarget, rtype: &str, rname: &str) -> Result<String, DeployError> {
    if rtype.eq_ignore_ascii_case("Microsoft.Resources/resourceGroups") {
        return Ok(format!(
            "/subscriptions/{}/resourceGroups/{rname}",
            target.subscription
        ));
    }
    if rtype.eq_ignore_ascii_case("Microsoft.Resources/deployments") {
        return Ok(target.deployment_id(rname));
    }
    let mut parts = rtype.split('/');
    let namespace = parts.next().unwrap_or_default();
    let types: Vec<&str> = parts.collect();
    let names: Vec<&str> = rname.split('/').collect();
    if types.is_empty() || types.len() != names.len() {
        return Err(DeployError::invalid(format!(
            "The template resource '{rname}' of type '{rtype}' has an incorrect segment length: a nested resource type must have as many segments as its name."
        )));
    }
    let mut id = format!("{}/providers/{namespace}", target.scope_id());
    for (t, n) in types.iter().zip(names) {
        id.push_str(&format!("/{t}/{n}"));
    }
    Ok(id)
}

/// The template's resources by name, for `reference('name')`.
struct Siblings<'d, 'a, 'r> {
    deployer: &'d Deployer<'a, 'r>,
    by_name: RefCell<BTreeMap<String, (String, bool)>>,
}

impl<'d, 'a, 'r> Siblings<'d, 'a, 'r> {
    fn new(deployer: &'d Deployer<'a, 'r>, _target: &DeployTarget) -> Self {
        Self {
            deployer,
            by_name: RefCell::new(BTreeMap::new()),
        }
    }

    fn declare(&self, name: &str, id: &str) {
        self.by_name
            .borrow_mut()
            .insert(name.to_ascii_lowercase(), (id.to_string(), false));
    }

    fn deployed(&self, name: &str) {
        if let Some(entry) = self
            .by_name
            .borrow_mut()
            .get_mut(&name.to_ascii_lowercase())
        {
            entry.1 = true;
        }
    }
}

impl TemplateHost for Siblings<'_, '_, '_> {
    fn reference(
        &self,
        target: &str,
        api_version: Option<&str>,
        full: bool,
    ) -> Result<Value, TemplateError> {
        if target.starts_with('/') {
            // A sibling named by id still has to be deployed first.
            let pending = self
                .by_name
                .borrow()
                .values()
                .any(|(id, done)| !done && id.eq_ignore_ascii_case(target));
            if pending {
                return Err(TemplateError::NotYetDeployed(target.to_string()));
            }
            return self.deployer.read(target, api_version, full);
        }
        let entry = self
            .by_name
            .borrow()
            .get(&target.to_ascii_lowercase())
            .cloned();
        match entry {
            Some((id, true)) => self.deployer.read(&id, api_version, full),
            Some((_, false)) => Err(TemplateError::NotYetDeployed(target.to_string())),
            None => Err(TemplateError::Invalid(format!(
                "The template reference '{target}' is not valid: could not find template resource or resource copy with this name."
            ))),
        }
    }
}
