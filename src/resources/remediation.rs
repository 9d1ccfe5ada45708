//! Resource `akspolicy_remediation`: a remediation task that brings existing non-compliant
//! resources in line with a DeployIfNotExists or Modify assignment (for AKS: turn the Azure
//! Policy add-on on for every cluster in scope). A remediation is a one-shot job, so every
//! input replaces it; `wait_for_completion` makes apply follow it to the end.

use crate::resources::shared::decode::decoded;
use crate::typed_object;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value as Json};

use crate::arm::api_version;
use crate::arm::{ArmClient, ArmError, Method, Scope};
use crate::framework::timeouts::{self, Operation, TimeoutDefaults};
use crate::framework::typed::{Knowable, Typed};
use crate::framework::{
    ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, CallContext, DeleteRequest,
    DeleteResponse, Diagnostic, Diagnostics, ImportRequest, ImportResponse, ModifyPlanRequest,
    ModifyPlanResponse, Number, ReadRequest, ReadResponse, Resource, Schema, Type,
    ValidateConfigRequest, ValidateConfigResponse, Value,
};

use super::provider::Configured;
use super::shared::errors::arm_error_diagnostic;
use super::shared::existence::{check_planned_scope, check_remediable};
use super::shared::schema::{id_attribute, name_attribute, typed_schema};
use crate::policy::names;

const TIMEOUTS: TimeoutDefaults = TimeoutDefaults {
    create: Duration::from_secs(3 * 60 * 60),
    read: Duration::from_secs(5 * 60),
    update: Duration::from_secs(30 * 60),
    delete: Duration::from_secs(30 * 60),
};

const TERMINAL: &[&str] = &["Succeeded", "Failed", "Canceled", "Cancelled", "Complete"];
const DISCOVERY_MODES: &[&str] = &["ExistingNonCompliant", "ReEvaluateCompliance"];

pub struct RemediationResource;

fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "Starts a remediation task for a DeployIfNotExists or Modify policy assignment, \
                 e.g. to turn on the Azure Policy add-on of every AKS cluster in scope. With \
                 `wait_for_completion` apply waits until the task ends and fails with Azure's \
                 status message if it fails. Destroy cancels a running task. The plan fails \
                 when the assignment (or the member `policy_definition_reference_id` names) has \
                 no DeployIfNotExists or Modify effect under its parameter values. The task \
                 deploys as the assignment's managed identity, which needs the roles the \
                 definition names in `roleDefinitionIds` (`grant_remediation_roles = true` on \
                 `akspolicy_assignment` grants them); without them its deployments fail with \
                 `AuthorizationFailed`.",
            )
            .attribute(id_attribute("The remediation's ID."))
            .attribute(name_attribute("The remediation's name.", names::RESOURCE))
            .attribute(
                Attribute::string("scope")
                    .required()
                    .requires_replace()
                    .description("Where to remediate: a management group, subscription, resource group or resource ID.")
                    .validate_with(|v, path, diags| {
                        if let Some(s) = v.as_str() {
                            if let Err(e) = Scope::parse(s) {
                                diags.error_at(path.clone(), "Invalid scope", e.to_string());
                            }
                        }
                    }),
            )
            .attribute(
                Attribute::string("policy_assignment_id")
                    .required()
                    .requires_replace()
                    .description("The assignment whose non-compliant resources are remediated."),
            )
            .attribute(
                Attribute::string("policy_definition_reference_id")
                    .optional()
                    .requires_replace()
                    .description("For an initiative assignment: which member definition to remediate."),
            )
            .attribute(
                Attribute::string("resource_discovery_mode")
                    .default(Value::string("ExistingNonCompliant"))
                    .requires_replace()
                    .description("`ExistingNonCompliant` remediates what the last evaluation found; `ReEvaluateCompliance` evaluates first (not at management-group scope).")
                    .validate_with(|v, path, diags| {
                        if let Some(s) = v.as_str() {
                            if !DISCOVERY_MODES.contains(&s) {
                                diags.error_at(path.clone(), "Invalid resource discovery mode", format!("{s:?} is not one of {}.", DISCOVERY_MODES.join(", ")));
                            }
                        }
                    }),
            )
            .attribute(
                Attribute::new("location_filters", Type::list(Type::String))
                    .optional()
                    .computed()
                    .requires_replace()
                    .description("Only remediate resources in these Azure regions."),
            )
            .attribute(
                Attribute::number("resource_count")
                    .optional()
                    .computed()
                    .requires_replace()
                    .description("The most resources to remediate (1 to 50000)."),
            )
            .attribute(
                Attribute::number("parallel_deployments")
                    .optional()
                    .computed()
                    .requires_replace()
                    .description("How many resources to remediate at once (1 to 30)."),
            )
            .attribute(
                Attribute::number("failure_threshold")
                    .optional()
                    .computed()
                    .requires_replace()
                    .description("Stop when this fraction (0 to 1) of deployments has failed."),
            )
            .attribute(
                Attribute::bool("wait_for_completion")
                    .default(Value::Bool(false))
                    .description("Wait during apply until the task has finished."),
            )
            .attribute(Attribute::string("provisioning_state").computed().description("`Accepted`, `Evaluating`, `Succeeded`, `Failed`, `Canceled`, ... as last read."))
            .attribute(Attribute::string("status_message").computed().description("Azure's status message."))
            .attribute(Attribute::number("total_deployments").computed().description("Deployments the task started."))
            .attribute(Attribute::number("successful_deployments").computed().description("Deployments that succeeded."))
            .attribute(Attribute::number("failed_deployments").computed().description("Deployments that failed."))
            .block(timeouts::block(TIMEOUTS)),
    )
}

fn remediation_path(scope: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.PolicyInsights/remediations/{name}",
        scope.trim_end_matches('/')
    )
}

typed_object! {
    /// The resource's configuration, plan or state. Attributes Azure may fill are `Knowable`:
    /// a plan leaves them unknown.
    pub struct Remediation {
        pub id: Knowable<String>,
        pub name: Option<String>,
        pub scope: Option<String>,
        pub policy_assignment_id: Option<String>,
        pub policy_definition_reference_id: Knowable<String>,
        pub resource_discovery_mode: Option<String>,
        pub location_filters: Knowable<Vec<String>>,
        pub resource_count: Knowable<Number>,
        pub parallel_deployments: Knowable<Number>,
        pub failure_threshold: Knowable<Number>,
        pub wait_for_completion: Option<bool>,
        pub provisioning_state: Knowable<String>,
        pub status_message: Knowable<String>,
        pub total_deployments: Knowable<Number>,
        pub successful_deployments: Knowable<Number>,
        pub failed_deployments: Knowable<Number>,
        pub timeouts: Value,
    }
}

fn body(planned: &Remediation) -> Json {
    let mut props = json!({
        "policyAssignmentId": planned.policy_assignment_id,
        "resourceDiscoveryMode": planned.resource_discovery_mode.as_deref().unwrap_or("ExistingNonCompliant"),
    });
    if let Some(r) = planned.policy_definition_reference_id.known() {
        props["policyDefinitionReferenceId"] = json!(r);
    }
    if let Some(locations) = planned.location_filters.known().filter(|l| !l.is_empty()) {
        props["filters"] = json!({ "locations": locations });
    }
    if let Some(n) = planned.resource_count.known().and_then(Number::as_i64) {
        props["resourceCount"] = json!(n);
    }
    if let Some(n) = planned
        .parallel_deployments
        .known()
        .and_then(Number::as_i64)
    {
        props["parallelDeployments"] = json!(n);
    }
    if let Some(n) = planned.failure_threshold.known() {
        props["failureThreshold"] = json!({ "percentage": n.as_f64() });
    }
    json!({ "properties": props })
}

/// Copies what Azure reports into `state` (everything the user set stays as configured).
fn with_status(state: &Remediation, remote: &Json) -> Remediation {
    let props = remote.get("properties").cloned().unwrap_or(Json::Null);
    let count = |k: &str| {
        Knowable::Known(Number::Int(
            props
                .pointer(&format!("/deploymentStatus/{k}"))
                .and_then(Json::as_i64)
                .unwrap_or(0),
        ))
    };
    let mut s = state.clone();
    if s.id.known().is_none() {
        s.id = remote
            .get("id")
            .and_then(Json::as_str)
            .map(str::to_string)
            .into();
    }
    // Inputs as Azure has them; the user's spelling of an ID wins when it names the same thing.
    let text = |p: &str| props.pointer(p).and_then(Json::as_str).map(str::to_string);
    if let Some(remote_id) = text("/policyAssignmentId") {
        let same = s
            .policy_assignment_id
            .as_deref()
            .is_some_and(|mine| mine.eq_ignore_ascii_case(&remote_id));
        if !same {
            s.policy_assignment_id = Some(remote_id);
        }
    }
    if let Some(r) = text("/policyDefinitionReferenceId").filter(|r| !r.is_empty()) {
        s.policy_definition_reference_id = Knowable::Known(r);
    }
    if let Some(m) = text("/resourceDiscoveryMode") {
        s.resource_discovery_mode = Some(m);
    }
    let locations: Vec<String> = props
        .pointer("/filters/locations")
        .and_then(Json::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    s.location_filters = Knowable::Known(locations);
    let number = |p: &str| match props.pointer(p) {
        Some(Json::Number(n)) if n.is_i64() => {
            Knowable::Known(Number::Int(n.as_i64().unwrap_or_default()))
        }
        Some(Json::Number(n)) => Knowable::Known(Number::Float(n.as_f64().unwrap_or_default())),
        _ => Knowable::Null,
    };
    for (attr, pointer) in [
        (&mut s.resource_count, "/resourceCount"),
        (&mut s.parallel_deployments, "/parallelDeployments"),
        (&mut s.failure_threshold, "/failureThreshold/percentage"),
    ] {
        let remote_value = number(pointer);
        // Keep the configured number when Azure reports the same value in another form.
        if remote_value != *attr {
            *attr = remote_value;
        }
    }
    s.provisioning_state = props
        .get("provisioningState")
        .and_then(Json::as_str)
        .map(str::to_string)
        .into();
    s.status_message = Knowable::Known(
        props
            .get("statusMessage")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string(),
    );
    s.total_deployments = count("totalDeployments");
    s.successful_deployments = count("successfulDeployments");
    s.failed_deployments = count("failedDeployments");
    s
}

fn state_of(remote: &Json) -> &str {
    remote
        .pointer("/properties/provisioningState")
        .and_then(Json::as_str)
        .unwrap_or("Succeeded")
}

/// Polls until the task reaches a terminal state or `limit` passes.
async fn wait_until_done(
    ctx: &CallContext,
    client: &ArmClient,
    path: &str,
    limit: Duration,
) -> Result<Json, Diagnostic> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        let remote: Json = client
            .get(path, api_version::POLICY_INSIGHTS)
            .await
            .map_err(|e| arm_error_diagnostic("Reading the remediation failed", &e))?;
        if TERMINAL.contains(&state_of(&remote)) {
            return Ok(remote);
        }
        if started.elapsed() + delay > limit {
            return Err(Diagnostic::error(
                "Timed out waiting for the remediation",
                format!(
                    "The remediation is still {} after {}s. It keeps running in Azure; raise `timeouts {{ create = ... }}` or set wait_for_completion = false.",
                    state_of(&remote),
                    started.elapsed().as_secs()
                ),
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.cancel.cancelled() => {
                return Err(Diagnostic::error("Interrupted", "Stopped waiting for the remediation; it keeps running in Azure."));
            }
        }
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}

#[async_trait]
impl Resource for RemediationResource {
    typed_schema!("akspolicy_remediation", schema(), Remediation);

    fn validate_config(&self, req: ValidateConfigRequest<'_>, resp: &mut ValidateConfigResponse) {
        let (config, diags) = (req.config, &mut resp.diags);
        let Some(config) = decoded::<Remediation>(config, diags) else {
            return;
        };
        let at_mg = config
            .scope
            .as_deref()
            .and_then(|s| Scope::parse(s).ok())
            .is_some_and(|s| matches!(s, Scope::ManagementGroup(_)));
        if at_mg && config.resource_discovery_mode.as_deref() == Some("ReEvaluateCompliance") {
            diags.error_at(
                AttributePath::attr("resource_discovery_mode"),
                "ReEvaluateCompliance is not available at management-group scope",
                "Azure only re-evaluates compliance for subscription, resource group or resource scopes. Use ExistingNonCompliant, or remediate per subscription.",
            );
        }
        if let Some(n) = config.failure_threshold.known() {
            let f = n.as_f64();
            if !(0.0..=1.0).contains(&f) {
                diags.error_at(
                    AttributePath::attr("failure_threshold"),
                    "Invalid failure threshold",
                    "failure_threshold is a fraction from 0 to 1 (0.1 = 10%).",
                );
            }
        }
    }

    async fn modify_plan(
        &self,
        ctx: &CallContext,
        req: ModifyPlanRequest<'_>,
        change: &mut ModifyPlanResponse,
    ) {
        check_planned_scope(ctx, req, change).await;
        let Some(config) = decoded::<Remediation>(req.config, &mut change.diags) else {
            return;
        };
        // Null on create.
        let same = Remediation::decode(req.prior).is_ok_and(|prior| {
            prior.policy_assignment_id == config.policy_assignment_id
                && prior.policy_definition_reference_id == config.policy_definition_reference_id
        });
        let reference = &config.policy_definition_reference_id;
        let (Some(assignment_id), false, false) = (
            config.policy_assignment_id.as_deref(),
            reference.is_unknown(),
            same,
        ) else {
            return;
        };
        let Ok(configured) = ctx.provider::<Configured>() else {
            return;
        };
        check_remediable(
            &configured.client,
            assignment_id,
            reference.as_deref(),
            &mut change.diags,
        )
        .await;
    }

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        *resp = create_remediation(ctx, req).await;
    }

    async fn read(&self, ctx: &CallContext, req: ReadRequest<'_>, resp: &mut ReadResponse) {
        resp.state = read_remediation(ctx, req.state, &mut resp.diags).await;
    }

    async fn update(&self, _ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        *resp = update_remediation(req);
    }

    async fn delete(&self, ctx: &CallContext, req: DeleteRequest<'_>, resp: &mut DeleteResponse) {
        let (prior, diags) = (req.prior, &mut resp.diags);
        let Some(c) = Configured::from_context(ctx, diags) else {
            return;
        };
        let Some(prior) = decoded::<Remediation>(prior, diags) else {
            return;
        };
        let path = remediation_path(
            prior.scope.as_deref().unwrap_or_default(),
            prior.name.as_deref().unwrap_or_default(),
        );
        let running = match c
            .client
            .get_optional::<Json>(&path, api_version::POLICY_INSIGHTS)
            .await
        {
            Ok(Some(r)) => !TERMINAL.contains(&state_of(&r)),
            Ok(None) => return,
            Err(e) => {
                diags.push(arm_error_diagnostic("Reading the remediation failed", &e));
                return;
            }
        };
        if running {
            let cancel: Result<Json, ArmError> = c
                .client
                .post(
                    &format!("{path}/cancel"),
                    api_version::POLICY_INSIGHTS,
                    None::<&Json>,
                )
                .await;
            if let Err(e) = cancel {
                if !e.is_not_found() {
                    diags.push(arm_error_diagnostic(
                        "Cancelling the remediation failed",
                        &e,
                    ));
                    return;
                }
            }
        }
        if let Err(e) = c.client.delete(&path, api_version::POLICY_INSIGHTS).await {
            diags.push(arm_error_diagnostic("Deleting the remediation failed", &e));
        }
    }

    async fn import(&self, _ctx: &CallContext, req: ImportRequest<'_>, resp: &mut ImportResponse) {
        resp.state = import_remediation(req.id, &mut resp.diags);
    }
}

async fn create_remediation(ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResponse {
    let planned = match Remediation::decode(req.planned) {
        Ok(p) => p,
        Err(e) => return ApplyResponse::failed(e.into()),
    };
    let mut diags = Diagnostics::new();
    let Some(c) = Configured::from_context(ctx, &mut diags) else {
        return ApplyResponse::failed(diags);
    };
    let path = remediation_path(
        planned.scope.as_deref().unwrap_or_default(),
        planned.name.as_deref().unwrap_or_default(),
    );
    // A plain PUT: the client's write helper would wait on provisioningState, which for a
    // remediation means the whole task.
    let created = c
        .client
        .request(
            Method::PUT,
            &path,
            api_version::POLICY_INSIGHTS,
            &[],
            Some(&body(&planned)),
        )
        .await
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json::<Json>());
    let remote = match created {
        Ok(r) => r,
        Err(e) => {
            diags.push(arm_error_diagnostic("Creating the remediation failed", &e));
            return ApplyResponse::failed(diags);
        }
    };
    let mut state = with_status(&planned, &remote);
    if planned.wait_for_completion == Some(true) {
        let limit = timeouts::for_operation(req.planned, Operation::Create, TIMEOUTS);
        match wait_until_done(ctx, &c.client, &path, limit).await {
            Ok(done) => {
                state = with_status(&planned, &done);
                if state_of(&done) == "Failed" {
                    diags.error(
                        "The remediation failed",
                        format!(
                            "Azure reports: {}. The task stays in state; fix the cause and replace it (terraform apply -replace=...).",
                            done.pointer("/properties/statusMessage").and_then(Json::as_str).unwrap_or("no status message")
                        ),
                    );
                }
            }
            Err(d) => diags.push(d),
        }
    }
    // The task exists in Azure whatever happened while waiting: keep it in state.
    ApplyResponse {
        state: Some(state.to_value()),
        diags,
        ..ApplyResponse::default()
    }
}

async fn read_remediation(
    ctx: &CallContext,
    state: &Value,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let c = Configured::from_context(ctx, diags)?;
    let Some(typed) = decoded::<Remediation>(state, diags) else {
        return Some(state.clone());
    };
    let path = remediation_path(
        typed.scope.as_deref().unwrap_or_default(),
        typed.name.as_deref().unwrap_or_default(),
    );
    match c
        .client
        .get_optional::<Json>(&path, api_version::POLICY_INSIGHTS)
        .await
    {
        Ok(Some(remote)) => Some(with_status(&typed, &remote).to_value()),
        Ok(None) => None,
        Err(e) => {
            diags.push(arm_error_diagnostic("Reading the remediation failed", &e));
            Some(state.clone())
        }
    }
}

fn update_remediation(req: ApplyRequest<'_>) -> ApplyResponse {
    // Only wait_for_completion and timeouts change in place; they are not sent to Azure.
    let (mut state, prior) = match (
        Remediation::decode(req.planned),
        Remediation::decode(req.prior),
    ) {
        (Ok(s), Ok(p)) => (s, p),
        (Err(e), _) | (_, Err(e)) => return ApplyResponse::failed(e.into()),
    };
    fn keep<T: Clone>(planned: &mut Knowable<T>, prior: &Knowable<T>) {
        if planned.is_unknown() {
            *planned = prior.clone();
        }
    }
    keep(&mut state.provisioning_state, &prior.provisioning_state);
    keep(&mut state.status_message, &prior.status_message);
    keep(&mut state.total_deployments, &prior.total_deployments);
    keep(
        &mut state.successful_deployments,
        &prior.successful_deployments,
    );
    keep(&mut state.failed_deployments, &prior.failed_deployments);
    ApplyResponse::ok(state.to_value())
}

fn import_remediation(id: &str, diags: &mut Diagnostics) -> Option<Value> {
    let lower = id.to_ascii_lowercase();
    let Some(pos) = lower.rfind("/providers/microsoft.policyinsights/remediations/") else {
        diags.error("Invalid import ID", format!("{id:?} is not a remediation ID (…/providers/Microsoft.PolicyInsights/remediations/NAME)."));
        return None;
    };
    let scope = &id[..pos];
    let name = &id[pos + "/providers/microsoft.policyinsights/remediations/".len()..];
    let stub = Remediation {
        id: Knowable::Known(id.to_string()),
        name: Some(name.to_string()),
        scope: Some(if scope.is_empty() { "/" } else { scope }.to_string()),
        wait_for_completion: Some(false),
        ..Default::default()
    };
    Some(stub.to_value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::shared::testing::validation_of;

    #[test]
    fn body_carries_only_what_is_set() {
        let planned = Remediation {
            policy_assignment_id: Some(
                "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a".into(),
            ),
            resource_discovery_mode: Some("ExistingNonCompliant".into()),
            location_filters: Knowable::Known(vec!["westeurope".into()]),
            failure_threshold: Knowable::Known(Number::Float(0.1)),
            ..Default::default()
        };
        let b = body(&planned);
        assert_eq!(b["properties"]["filters"]["locations"][0], "westeurope");
        assert_eq!(b["properties"]["failureThreshold"]["percentage"], 0.1);
        assert!(b["properties"].get("resourceCount").is_none());
    }

    #[test]
    fn reevaluate_is_rejected_at_management_group_scope() {
        let config = Value::object([
            (
                "scope",
                Value::string("/providers/Microsoft.Management/managementGroups/mg"),
            ),
            (
                "resource_discovery_mode",
                Value::string("ReEvaluateCompliance"),
            ),
        ]);
        assert!(validation_of(&RemediationResource, &config).has_errors());
    }
}
