//! Data source `akspolicy_compliance`: the compliance summary Azure Policy keeps for a scope or
//! an assignment, optionally after running a fresh evaluation (like
//! `az policy state trigger-scan`).

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::arm::api_version;
use crate::arm::{ResourceId, Scope};
use crate::framework::{
    Attribute, AttributePath, Block, CallContext, DataSource, Diagnostic, Diagnostics,
    ReadDataRequest, ReadDataResponse, Schema, Type, ValidateConfigRequest, ValidateConfigResponse,
    Value,
};

use super::provider::Configured;
use super::shared::errors::arm_error_diagnostic;

pub struct ComplianceDataSource;

fn definition_type() -> Type {
    Type::object([
        ("policy_definition_id", Type::String),
        ("policy_definition_reference_id", Type::String),
        ("effect", Type::String),
        ("non_compliant_resources", Type::Number),
    ])
}

fn assignment_type() -> Type {
    Type::object([
        ("policy_assignment_id", Type::String),
        ("policy_set_definition_id", Type::String),
        ("non_compliant_resources", Type::Number),
        ("non_compliant_policies", Type::Number),
        ("policy_definitions", Type::list(definition_type())),
    ])
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
                Attribute::new("policy_assignments", Type::list(assignment_type()))
                    .computed()
                    .description("Per assignment: its non-compliant counts and per-definition results."),
            ),
    )
}

fn summarize_prefix(config: &Value) -> Option<String> {
    config
        .get("policy_assignment_id")
        .as_str()
        .or_else(|| config.get("scope").as_str())
        .map(|s| s.trim_end_matches('/').to_string())
}

/// The subscription or resource group a scan runs in, for a scope or an assignment.
fn scan_scope(config: &Value) -> Result<String, String> {
    let scope = match config.get("policy_assignment_id").as_str() {
        Some(a) => ResourceId::parse(a).map_err(|e| e.to_string())?.parent,
        None => Scope::parse(config.get("scope").as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?,
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

fn num(v: Option<&Json>) -> Value {
    Value::from(v.and_then(Json::as_i64).unwrap_or(0))
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

fn to_state(config: &Value, id: &str, summary: &Json) -> Value {
    let results = summary.get("results");
    let str_of = |v: &Json, k: &str| Value::string(v.get(k).and_then(Json::as_str).unwrap_or(""));
    let assignments = summary
        .get("policyAssignments")
        .and_then(Json::as_array)
        .map(|items| {
            items
                .iter()
                .map(|a| {
                    let defs = a
                        .get("policyDefinitions")
                        .and_then(Json::as_array)
                        .map(|ds| {
                            ds.iter()
                                .map(|d| {
                                    Value::object([
                                        ("policy_definition_id", str_of(d, "policyDefinitionId")),
                                        (
                                            "policy_definition_reference_id",
                                            str_of(d, "policyDefinitionReferenceId"),
                                        ),
                                        ("effect", str_of(d, "effect")),
                                        (
                                            "non_compliant_resources",
                                            num(d.pointer("/results/nonCompliantResources")),
                                        ),
                                    ])
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    Value::object([
                        ("policy_assignment_id", str_of(a, "policyAssignmentId")),
                        (
                            "policy_set_definition_id",
                            str_of(a, "policySetDefinitionId"),
                        ),
                        (
                            "non_compliant_resources",
                            num(a.pointer("/results/nonCompliantResources")),
                        ),
                        (
                            "non_compliant_policies",
                            num(a.pointer("/results/nonCompliantPolicies")),
                        ),
                        ("policy_definitions", Value::List(defs)),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    Value::object([
        ("id", Value::string(id)),
        ("scope", config.get("scope").clone()),
        (
            "policy_assignment_id",
            config.get("policy_assignment_id").clone(),
        ),
        ("trigger_scan", config.get("trigger_scan").clone()),
        (
            "non_compliant_resources",
            num(results.and_then(|r| r.get("nonCompliantResources"))),
        ),
        (
            "non_compliant_policies",
            num(results.and_then(|r| r.get("nonCompliantPolicies"))),
        ),
        (
            "compliant_resources",
            Value::from(count_state(
                results.and_then(|r| r.get("resourceDetails")),
                "compliant",
            )),
        ),
        ("policy_assignments", Value::List(assignments)),
    ])
}

#[async_trait]
impl DataSource for ComplianceDataSource {
    fn type_name(&self) -> &'static str {
        "akspolicy_compliance"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate_config(&self, req: ValidateConfigRequest<'_>, resp: &mut ValidateConfigResponse) {
        let (config, diags) = (req.config, &mut resp.diags);
        let scope = config.get("scope");
        let assignment = config.get("policy_assignment_id");
        if scope.is_unknown() || assignment.is_unknown() {
            return;
        }
        if scope.is_null() == assignment.is_null() {
            diags.push(
                Diagnostic::error(
                    "Set exactly one of scope or policy_assignment_id",
                    "The summary is either for a scope (management group, subscription, resource group or resource) or for one assignment.",
                )
                .at(AttributePath::attr("scope")),
            );
            return;
        }
        if let Some(s) = scope.as_str() {
            if let Err(e) = Scope::parse(s) {
                diags.error_at(AttributePath::attr("scope"), "Invalid scope", e.to_string());
            }
        }
        if config.get("trigger_scan").as_bool() == Some(true) {
            if let Err(msg) = scan_scope(config) {
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
    let c = ctx
        .provider::<Configured>()
        .map_err(|d| diags.extend(d))
        .ok()?;
    let prefix = summarize_prefix(config)?;
    if config.get("trigger_scan").as_bool() == Some(true) {
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
            Some(to_state(config, &prefix, &summary))
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

    #[test]
    fn summary_maps_counts() {
        let summary = json!({
            "results": {"nonCompliantResources": 3, "nonCompliantPolicies": 1,
                        "resourceDetails": [{"complianceState": "compliant", "count": 5}, {"complianceState": "noncompliant", "count": 3}]},
            "policyAssignments": [{"policyAssignmentId": "/a", "policySetDefinitionId": "",
                "results": {"nonCompliantResources": 3, "nonCompliantPolicies": 1},
                "policyDefinitions": [{"policyDefinitionId": "/d", "effect": "deny", "results": {"nonCompliantResources": 3}}]}]
        });
        let config = Value::object([("scope", Value::string("/subscriptions/s"))]);
        let s = to_state(&config, "/subscriptions/s", &summary);
        assert_eq!(s.get("non_compliant_resources").as_i64(), Some(3));
        assert_eq!(s.get("compliant_resources").as_i64(), Some(5));
        let a = &s.get("policy_assignments").elements()[0];
        assert_eq!(
            a.get("policy_definitions").elements()[0]
                .get("effect")
                .as_str(),
            Some("deny")
        );
    }

    #[test]
    fn scans_run_at_subscription_or_resource_group() {
        let rg = Value::object([("scope", Value::string("/subscriptions/s/resourceGroups/rg"))]);
        assert_eq!(
            scan_scope(&rg).unwrap().to_lowercase(),
            "/subscriptions/s/resourcegroups/rg"
        );
        let mg = Value::object([(
            "scope",
            Value::string("/providers/Microsoft.Management/managementGroups/m"),
        )]);
        assert!(scan_scope(&mg).is_err());
        let assignment = Value::object([(
            "policy_assignment_id",
            Value::string("/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a"),
        )]);
        assert_eq!(scan_scope(&assignment).unwrap(), "/subscriptions/s");
    }
}
