//! Policy states: `triggerEvaluation` (202 + Location polling), `summarize` and
//! `queryResults` (paged with `@odata.nextLink`), computed by [`crate::emulator::compliance`];
//! and policy events' `queryResults`, which share the scope parsing, `$filter` and paging.

use http::Method;
use serde_json::{json, Value};

use super::filter::RecordFilter;
use super::scope::Scope;
use super::{error::ErrorResponse, now_rfc3339, ok_json, operations, ArmRequest};
use crate::emulator::compliance::{policy_states, PolicyStateRow, StatesQuery};
use crate::emulator::events;
use crate::emulator::http::Response;
use crate::emulator::state::{new_guid, AppState};

const QUERY_PAGE: usize = 100;

/// `POST {sub|rg}/providers/Microsoft.PolicyInsights/policyStates/latest/triggerEvaluation`.
pub(crate) fn handle_trigger(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    let scope = req.action_scope(state)?;
    let Some(sub) = scope.subscription().map(str::to_string) else {
        return Err(ErrorResponse::bad_request(
            "InvalidScope",
            "Evaluations can be triggered for a subscription or a resource group.",
        ));
    };
    // The evaluation itself happens now; its non-compliant results become policy events.
    let rows = policy_states(state, &scope, &StatesQuery::default())?;
    let audited: Vec<PolicyStateRow> = rows
        .into_iter()
        .filter(|r| !r.compliant && !r.exempt)
        .collect();
    events::record(state, &audited, &req.principal.oid)?;
    let op_id = format!(
        "/subscriptions/{sub}/providers/Microsoft.PolicyInsights/asyncOperationResults/{}",
        new_guid()
    );
    operations::begin(state, req, &op_id, json!({"scope": scope.id}), false)
}

/// `GET /subscriptions/{s}/providers/Microsoft.PolicyInsights/asyncOperationResults/{id}`.
pub(crate) fn handle_async_result(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    let missing = ErrorResponse::not_found(
        "AsyncOperationNotFound",
        "The asynchronous operation could not be found.",
    );
    operations::poll(state, req, missing)
}

/// Where states are asked for: a plain scope, or an assignment / (set) definition id that
/// narrows the rows.
fn query_scope(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<(Scope, StatesQuery), ErrorResponse> {
    req.allow_if(req.http.method == Method::POST)?;
    let raw: String = req.path.scope.iter().map(|s| format!("/{s}")).collect();
    let lower = raw.to_ascii_lowercase();
    let mut query = StatesQuery::default();
    let scope_id =
        if let Some(i) = lower.find("/providers/microsoft.authorization/policyassignments/") {
            query.assignment_id = Some(raw.clone());
            raw[..i].to_string()
        } else if let Some(i) = lower
            .find("/providers/microsoft.authorization/policysetdefinitions/")
            .or_else(|| lower.find("/providers/microsoft.authorization/policydefinitions/"))
        {
            query.definition_id = Some(raw.clone());
            raw[..i].to_string()
        } else {
            raw
        };
    let scope = Scope::parse(&scope_id)?;
    scope.ensure_exists(state)?;
    Ok((scope, query))
}

/// The policy states a query asks for.
fn queried_states(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Vec<PolicyStateRow>, ErrorResponse> {
    let (scope, query) = query_scope(state, req)?;
    policy_states(state, &scope, &query)
}

fn context_url(req: &ArmRequest<'_>, what: &str) -> String {
    context_url_of(req, "policyStates", what)
}

/// `{scope}/providers/Microsoft.PolicyInsights/{collection}/$metadata#{what}`.
fn context_url_of(req: &ArmRequest<'_>, collection: &str, what: &str) -> String {
    format!(
        "{}{}/providers/Microsoft.PolicyInsights/{collection}/$metadata#{what}",
        req.http.base_url,
        req.path
            .scope
            .iter()
            .map(|s| format!("/{s}"))
            .collect::<String>()
    )
}

/// `POST .../policyStates/latest/summarize`.
pub(crate) fn handle_summarize(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    let rows = queried_states(state, req)?;
    let query_uri = format!(
        "{}{}/providers/Microsoft.PolicyInsights/policyStates/latest/queryResults?api-version={}&$from={}&$to={}&$filter=ComplianceState eq 'NonCompliant'",
        req.http.base_url,
        req.path.scope.iter().map(|s| format!("/{s}")).collect::<String>(),
        req.api_version,
        now_rfc3339(),
        now_rfc3339()
    );
    let mut assignments: Vec<String> = Vec::new();
    for r in &rows {
        if !assignments
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&r.assignment_id))
        {
            assignments.push(r.assignment_id.clone());
        }
    }
    let per_assignment: Vec<Value> = assignments
        .iter()
        .map(|a| {
            let mine: Vec<&PolicyStateRow> = rows.iter().filter(|r| &r.assignment_id == a).collect();
            let mut definitions: Vec<(String, Option<String>)> = Vec::new();
            for r in &mine {
                let key = (r.definition_id.clone(), r.reference_id.clone());
                if !definitions.contains(&key) {
                    definitions.push(key);
                }
            }
            let defs: Vec<Value> = definitions
                .iter()
                .map(|(d, rid)| {
                    let of_def: Vec<&PolicyStateRow> = mine
                        .iter()
                        .copied()
                        .filter(|r| &r.definition_id == d && &r.reference_id == rid)
                        .collect();
                    json!({
                        "policyDefinitionId": d,
                        "policyDefinitionReferenceId": rid.clone().unwrap_or_default(),
                        "policyDefinitionGroupNames": [],
                        "effect": of_def.first().map(|r| r.effect.to_ascii_lowercase()).unwrap_or_default(),
                        "results": results(&of_def, &query_uri, false),
                    })
                })
                .collect();
            json!({
                "policyAssignmentId": a,
                "policySetDefinitionId": mine.first().and_then(|r| r.set_definition_id.clone()).unwrap_or_default(),
                "results": results(&mine, &query_uri, true),
                "policyDefinitions": defs,
                "policyGroups": [],
            })
        })
        .collect();
    let all: Vec<&PolicyStateRow> = rows.iter().collect();
    let context = context_url(req, "summary");
    Ok(ok_json(&json!({
        "@odata.context": context,
        "@odata.count": 1,
        "value": [{
            "@odata.id": null,
            "@odata.context": format!("{context}/$entity"),
            "results": results(&all, &query_uri, true),
            "policyAssignments": per_assignment,
        }]
    })))
}

/// The `results` block of a summary over some rows.
fn results(rows: &[&PolicyStateRow], query_uri: &str, with_policies: bool) -> Value {
    let mut non_compliant_resources: Vec<&str> = rows
        .iter()
        .filter(|r| !r.compliant)
        .map(|r| r.resource_id.as_str())
        .collect();
    non_compliant_resources.sort_unstable();
    non_compliant_resources.dedup();
    let mut all_resources: Vec<&str> = rows.iter().map(|r| r.resource_id.as_str()).collect();
    all_resources.sort_unstable();
    all_resources.dedup();
    let compliant_resources = all_resources.len() - non_compliant_resources.len();
    let mut policies: Vec<(&str, Option<&str>, bool)> = Vec::new();
    for r in rows {
        let key = (r.definition_id.as_str(), r.reference_id.as_deref());
        match policies.iter_mut().find(|p| (p.0, p.1) == key) {
            Some(p) => p.2 &= r.compliant,
            None => policies.push((key.0, key.1, r.compliant)),
        }
    }
    let non_compliant_policies = policies.iter().filter(|p| !p.2).count();
    let mut out = json!({
        "queryResultsUri": query_uri,
        "nonCompliantResources": non_compliant_resources.len(),
        "resourceDetails": [
            {"complianceState": "compliant", "count": compliant_resources},
            {"complianceState": "noncompliant", "count": non_compliant_resources.len()}
        ],
        "policyGroupDetails": [],
    });
    if with_policies {
        out["nonCompliantPolicies"] = json!(non_compliant_policies);
        out["policyDetails"] = json!([
            {"complianceState": "compliant", "count": policies.len() - non_compliant_policies},
            {"complianceState": "noncompliant", "count": non_compliant_policies}
        ]);
    } else {
        out["nonCompliantPolicies"] = json!(usize::from(non_compliant_policies > 0));
        out["policyDetails"] = json!([]);
    }
    out
}

/// `POST .../policyStates/{latest|default}/queryResults`, paged by `$top` / `$skiptoken`.
pub(crate) fn handle_query(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    let rows = queried_states(state, req)?;
    let filter = RecordFilter::parse(req.http.query_param("$filter"))?;
    let context = context_url(req, "PolicyStates");
    let timestamp = now_rfc3339();
    let records: Vec<Value> = rows
        .iter()
        .map(|r| r.to_json(&context, &timestamp))
        .filter(|r| filter.accepts(r))
        .collect();
    odata_page(req, records, &context)
}

/// `POST {scope}/providers/Microsoft.PolicyInsights/policyEvents/default/queryResults`: the
/// events recorded by evaluations and admission (see `events`), newest first, paged like
/// policy states.
pub(crate) fn handle_events_query(
    state: &AppState,
    req: &ArmRequest<'_>,
) -> Result<Response, ErrorResponse> {
    let resource = req
        .path
        .names
        .last()
        .map(String::as_str)
        .unwrap_or_default();
    if !resource.eq_ignore_ascii_case("default") {
        return Err(ErrorResponse::bad_request(
            "InvalidPolicyEventsResource",
            format!("The policy events resource '{resource}' is invalid. The only supported value is 'default'."),
        ));
    }
    let (scope, query) = query_scope(state, req)?;
    let filter = RecordFilter::parse(req.http.query_param("$filter"))?;
    let context = context_url_of(req, "policyEvents", "PolicyEvents");
    let records: Vec<Value> = events::events_in(state, &scope, &query)?
        .into_iter()
        .filter(|r| filter.accepts(r))
        .map(|mut r| {
            r["@odata.id"] = Value::Null;
            r["@odata.context"] = json!(format!("{context}/$entity"));
            r
        })
        .collect();
    odata_page(req, records, &context)
}

/// One page of a PolicyInsights query: `$top` (default 100) and `$skiptoken`, the next page
/// in `@odata.nextLink` (not ARM's `nextLink`).
fn odata_page(
    req: &ArmRequest<'_>,
    records: Vec<Value>,
    context: &str,
) -> Result<Response, ErrorResponse> {
    let page = match req.http.query_param("$top") {
        Some(t) => t.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ErrorResponse::bad_request(
                "InvalidQueryParameterValue",
                format!("'$top' value '{t}' is invalid."),
            )
        })?,
        None => QUERY_PAGE,
    };
    let offset = req
        .http
        .query_param("$skiptoken")
        .map(|t| t.parse::<usize>())
        .transpose()
        .map_err(|_| ErrorResponse::bad_request("InvalidSkipToken", "The skip token is invalid."))?
        .unwrap_or(0);
    let total = records.len();
    let value: Vec<Value> = records.into_iter().skip(offset).take(page).collect();
    let next = offset + value.len();
    let mut body = json!({"@odata.context": context, "@odata.count": value.len(), "value": value});
    if next < total {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("api-version", &req.api_version);
        for (k, v) in &req.http.query {
            let kept = [
                "$filter", "$top", "$from", "$to", "$orderby", "$select", "$apply",
            ];
            if kept.iter().any(|name| k.eq_ignore_ascii_case(name)) {
                q.append_pair(k, v);
            }
        }
        q.append_pair("$skiptoken", &next.to_string());
        body["@odata.nextLink"] = json!(format!(
            "{}{}?{}",
            req.http.base_url,
            req.http.path,
            q.finish()
        ));
    }
    Ok(ok_json(&body))
}
