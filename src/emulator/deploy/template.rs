//! One template run: its resources in dependency order, `reference()` of the resources it
//! deploys, and its outputs.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::policy::arm_template::{
    bind_parameters, TemplateError, TemplateEvaluator, TemplateHost,
};

use super::resource::Step;
use super::{DeployError, DeployTarget, Deployer, DeploymentRun, MAX_DEPTH};

impl Deployer<'_, '_> {
    /// Outputs, written resource ids and the bound parameters (for the record).
    #[allow(clippy::type_complexity)]
    pub(super) fn execute(
        &self,
        run: &DeploymentRun<'_>,
    ) -> Result<(Value, Vec<String>, Map<String, Value>), DeployError> {
        let DeploymentRun {
            target,
            name,
            request,
            inherited,
            depth,
        } = *run;
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
pub(super) struct Siblings<'d, 'a, 'r> {
    deployer: &'d Deployer<'a, 'r>,
    by_name: RefCell<BTreeMap<String, (String, bool)>>,
}

impl<'d, 'a, 'r> Siblings<'d, 'a, 'r> {
    pub(super) fn new(deployer: &'d Deployer<'a, 'r>, _target: &DeployTarget) -> Self {
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
