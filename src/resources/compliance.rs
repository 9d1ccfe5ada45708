//! Data source `akspolicy_compliance`: the compliance summary Azure Policy keeps for a scope or
//! an assignment, optionally after running a fresh evaluation (like
//! `az policy state trigger-scan`).

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::arm::api_version;
use crate::arm::{ResourceId, Scope};
use crate::framework::{
    Attribute, AttributePath, Block, CallContext, DataSource, Diagnostics, ReadDataRequest,
    ReadDataResponse, Schema, Type, ValidateConfigRequest, ValidateConfigResponse, Value,
};
use crate::resources::shared::decode::decoded;

use crate::framework::typed::{Knowable, Typed};
use crate::typed_object;

use super::provider::Configured;
use super::shared::errors::arm_error_diagnostic;
use super::shared::schema::typed_schema;

pub struct ComplianceDataSource;

typed_object! {
    /// One definition's result inside an assignment's summary.
    pub struct DefinitionSummary {
        pub policy_definition_id: String,
        pub policy_definition_reference_id: String,
        pub effect: String,
        pub non_compliant_resources: i64,
    }
}

typed_object! {
    /// One assignment's summary.
    pub struct AssignmentSummary {
        pub policy_assignment_id: String,
        pub policy_set_definition_id: String,
        pub non_compliant_resources: i64,
        pub non_compliant_policies: i64,
        pub policy_definitions: Vec<DefinitionSummary>,
    }
}

typed_object! {
    /// The data source's configuration or state. The computed counts are `None` in a
    /// configuration and always set in a state.
    pub struct Compliance {
        pub id: Option<String>,
        /// Unknown kept apart: validation skips what is not known yet.
        pub scope: Knowable<String>,
        pub policy_assignment_id: Knowable<String>,
        pub trigger_scan: Option<bool>,
        pub non_compliant_resources: Option<i64>,
        pub non_compliant_policies: Option<i64>,
        pub compliant_resources: Option<i64>,
        pub policy_assignments: Vec<AssignmentSummary>,
    }
}

fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "Reads the Azure Policy compliance summary of a scope or of one assignment. With \
                 `trigger_scan = true` a new evaluation runs first and the read waits for it, so \
                 the numbers reflect changes just applied.",
            )
            .attribute(Attribute::string("id").computed().description("The scope or assignment the summary is for."))
            .attribute(Attribute::string("scope").optional().description("A management group, subscription, resource group or resource ID."))
            .attribute(Attribute::string("policy_assignment_id").optional().description("Summarize one assignment instead of a scope."))
            .attribute(Attribute::bool("trigger_scan").optional().description("Evaluate compliance before reading (subscription or resource-group scopes; takes minutes in Azure). Data sources are read at every plan, so `true` scans at every plan and apply: in CI set it from a variable that only a separate compliance step turns on (e.g. `trigger_scan = var.scan_compliance` and `terraform apply -refresh-only -var scan_compliance=true`)."))
            .attribute(Attribute::number("non_compliant_resources").computed().description("Resources non-compliant with at least one policy."))
            .attribute(Attribute::number("non_compliant_policies").computed().description("Policies with at least one non-compliant resource."))
            .attribute(Attribute::number("compliant_resources").computed().description("Resources compliant with every policy that applies."))
            .attribute(
                Attribute::new("policy_assignments", Type::list(AssignmentSummary::ty()))
                    .computed()
                    .description("Per assignment: its non-compliant counts and per-definition results."),
            ),
    )
}

fn summarize_prefix(config: &Compliance) -> Option<String> {
    config
        .policy_assignment_id
        .as_deref()
        .or(config.scope.as_deref())
        .map(|s| s.trim_end_matches('/').to_string())
}

/// The subscription or resource group a scan runs in, for a scope or an assignment.
fn scan_scope(config: &Compliance) -> Result<String, String> {
    let scope = match config.policy_assignment_id.as_deref() {
        Some(a) => ResourceId::parse(a).map_err(|e| e.to_string())?.parent,
        None => {
            Scope::parse(config.scope.as_deref().unwrap_or_default()).map_err(|e| e.to_string())?
        }
    };
    let mut s = scope;
    loop {
        match s {
            Scope::Subscription(_) | Scope::ResourceGroup { .. } => return Ok(s.to_string()),
            Scope::Resource(r) => s = r.parent,
            _ => {
                return Err("trigger_scan runs at subscription or resource-group scope; this scope has neither. Scan each subscription instead.".into())
            }
        }
    }
}

fn num(v: Option<&Json>) -> i64 {
    v.and_then(Json::as_i64).unwrap_or(0)
}

fn count_state(details: Option<&Json>, state: &str) -> i64 {
    details
        .and_then(Json::as_array)
        .map(|rows| {
            rows.iter()
                .filter(|r| {
                    r.get("complianceState")
                        .and_then(Json::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case(state))
                })
                .filter_map(|r| r.get("count").and_then(Json::as_i64))
                .sum()
        })
        .unwrap_or(0)
}

fn to_state(config: &Compliance, id: &str, summary: &Json) -> Compliance {
    let results = summary.get("results");
    let str_of = |v: &Json, k: &str| v.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    let definition = |d: &Json| DefinitionSummary {
        policy_definition_id: str_of(d, "policyDefinitionId"),
        policy_definition_reference_id: str_of(d, "policyDefinitionReferenceId"),
        effect: str_of(d, "effect"),
        non_compliant_resources: num(d.pointer("/results/nonCompliantResources")),
    };
    let assignment = |a: &Json| AssignmentSummary {
        policy_assignment_id: str_of(a, "policyAssignmentId"),
        policy_set_definition_id: str_of(a, "policySetDefinitionId"),
        non_compliant_resources: num(a.pointer("/results/nonCompliantResources")),
        non_compliant_policies: num(a.pointer("/results/nonCompliantPolicies")),
        policy_definitions: a
            .get("policyDefinitions")
            .and_then(Json::as_array)
            .map(|ds| ds.iter().map(definition).collect())
            .unwrap_or_default(),
    };
    Compliance {
        id: Some(id.to_string()),
        scope: config.scope.clone(),
        policy_assignment_id: config.policy_assignment_id.clone(),
        trigger_scan: config.trigger_scan,
        non_compliant_resources: Some(num(results.and_then(|r| r.get("nonCompliantResources")))),
        non_compliant_policies: Some(num(results.and_then(|r| r.get("nonCompliantPolicies")))),
        compliant_resources: Some(count_state(
            results.and_then(|r| r.get("resourceDetails")),
            "compliant",
        )),
        policy_assignments: summary
            .get("policyAssignments")
            .and_then(Json::as_array)
            .map(|items| items.iter().map(assignment).collect())
            .unwrap_or_default(),
    }
}

#[async_trait]
impl DataSource for ComplianceDataSource {
    typed_schema!("akspolicy_compliance", schema(), Compliance);

    fn validate_config(&self, req: ValidateConfigRequest<'_>, resp: &mut ValidateConfigResponse) {
        let diags = &mut resp.diags;
        let Some(config) = decoded::<Compliance>(req.config, diags) else {
            return;
        };
        let (scope, assignment) = (&config.scope, &config.policy_assignment_id);
        if scope.is_unknown() || assignment.is_unknown() {
            return;
        }
        if scope.is_null() == assignment.is_null() {
            diags.error_at(
                AttributePath::attr("scope"),
                "Set exactly one of scope or policy_assignment_id",
                "The summary is either for a scope (management group, subscription, resource group or resource) or for one assignment.",
            );
            return;
        }
        if let Some(s) = scope.as_deref() {
            if let Err(e) = Scope::parse(s) {
                diags.error_at(AttributePath::attr("scope"), "Invalid scope", e.to_string());
            }
        }
        if config.trigger_scan == Some(true) {
            if let Err(msg) = scan_scope(&config) {
                diags.error_at(
                    AttributePath::attr("trigger_scan"),
                    "Cannot scan this scope",
                    msg,
                );
            }
        }
    }

    async fn read(&self, ctx: &CallContext, req: ReadDataRequest<'_>, resp: &mut ReadDataResponse) {
        resp.state = read_compliance(ctx, req.config, &mut resp.diags).await;
    }
}

async fn read_compliance(
    ctx: &CallContext,
    config: &Value,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let config = decoded::<Compliance>(config, diags)?;
    let config = &config;
    let c = ctx
        .provider::<Configured>()
        .map_err(|d| diags.extend(d))
        .ok()?;
    let prefix = summarize_prefix(config)?;
    if config.trigger_scan == Some(true) {
        let scope = match scan_scope(config) {
            Ok(s) => s,
            Err(msg) => {
                diags.error_at(
                    AttributePath::attr("trigger_scan"),
                    "Cannot scan this scope",
                    msg,
                );
                return None;
            }
        };
        let path = format!(
            "{scope}/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation"
        );
        let scan: Result<Json, _> = tokio::select! {
            r = c.client.post(&path, api_version::POLICY_INSIGHTS, None::<&Json>) => r,
            _ = ctx.cancel.cancelled() => {
                diags.error("Interrupted", "Stopped waiting for the compliance scan.");
                return None;
            }
        };
        if let Err(e) = scan {
            diags.push(arm_error_diagnostic("The compliance scan failed", &e));
            return None;
        }
    }
    let path = format!("{prefix}/providers/Microsoft.PolicyInsights/policyStates/latest/summarize");
    match c
        .client
        .post::<Json, Json>(&path, api_version::POLICY_INSIGHTS, None)
        .await
    {
        Ok(resp) => {
            let summary = resp
                .get("value")
                .and_then(Json::as_array)
                .and_then(|v| v.first())
                .cloned()
                .unwrap_or(Json::Null);
            Some(to_state(config, &prefix, &summary).to_value())
        }
        Err(e) => {
            diags.push(arm_error_diagnostic(
                "Reading the compliance summary failed",
                &e,
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scoped(scope: &str) -> Compliance {
        Compliance {
            scope: Knowable::Known(scope.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn summary_maps_counts() {
        let summary = json!({
            "results": {"nonCompliantResources": 3, "nonCompliantPolicies": 1,
                        "resourceDetails": [{"complianceState": "compliant", "count": 5}, {"complianceState": "noncompliant", "count": 3}]},
            "policyAssignments": [{"policyAssignmentId": "/a", "policySetDefinitionId": "",
                "results": {"nonCompliantResources": 3, "nonCompliantPolicies": 1},
                "policyDefinitions": [{"policyDefinitionId": "/d", "effect": "deny", "results": {"nonCompliantResources": 3}}]}]
        });
        let config = scoped("/subscriptions/s");
        let s = to_state(&config, "/subscriptions/s", &summary);
        assert_eq!(s.non_compliant_resources, Some(3));
        assert_eq!(s.compliant_resources, Some(5));
        assert_eq!(s.policy_assignments[0].policy_definitions[0].effect, "deny");
        // What Terraform receives decodes back to the same state.
        assert_eq!(Compliance::decode(&s.to_value()), Ok(s));
    }

    #[test]
    fn scans_run_at_subscription_or_resource_group() {
        let rg = scoped("/subscriptions/s/resourceGroups/rg");
        assert_eq!(
            scan_scope(&rg).unwrap().to_lowercase(),
            "/subscriptions/s/resourcegroups/rg"
        );
        let mg = scoped("/providers/Microsoft.Management/managementGroups/m");
        assert!(scan_scope(&mg).is_err());
        let assignment = Compliance {
            policy_assignment_id: Knowable::Known(
                "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a".into(),
            ),
            ..Default::default()
        };
        assert_eq!(scan_scope(&assignment).unwrap(), "/subscriptions/s");
    }
}
