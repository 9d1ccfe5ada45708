//! One template resource written through the emulator's ARM routes, or run as a nested
//! deployment, and `reference()` reads as the acting principal.

use http::Method;
use serde_json::{json, Map, Value};

use crate::emulator::rbac;
use crate::emulator::routes::arm::{internal_call, latest_api_version};
use crate::policy::arm_template::{DeploymentScope, TemplateError, TemplateEvaluator};

use super::{
    DeployError, DeployTarget, Deployer, DeploymentRun, Inherited, DEPLOYMENTS_TYPE, MAX_RESOURCES,
};

impl Deployer<'_, '_> {
    /// Where a template resource goes: its `subscriptionId`/`resourceGroup`, else the
    /// deployment's own place.
    pub(super) fn resource_target(
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
    pub(super) fn deploy_resource(
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
            let deployed = self.run(&DeploymentRun {
                target: rtarget,
                name: rname,
                request: &child,
                inherited: inherited.as_ref(),
                depth: depth + 1,
            });
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
    pub(super) fn read(
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
pub(super) enum Step {
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
