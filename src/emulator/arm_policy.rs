//! ARM-mode Azure Policy in the emulator: which assignment members cover a resource, what
//! `policy::arm_rule` says about the resource, and Deny at PUT/PATCH time.
//!
//! Nothing here knows a definition: every effect comes from the rule and the assignment.
//! Assignments at a management group cover the subscriptions below it (nested groups too)
//! because scope containment walks the management group hierarchy.

use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use crate::emulator::gatekeeper;
use crate::emulator::routes::arm::{
    resolve_visible, settle_cluster, stored_of_type, ErrorResponse, Scope,
};
use crate::emulator::state::AppState;
use crate::emulator::store::StoredResource;
use crate::policy::arm_rule::{self, Effect, Evaluator, Outcome, RelatedQuery, RuleContext};
use crate::policy::constraint::{self as engine, ConstraintOrigin};
use crate::policy::validation::DEFAULT_MODE;

const ASSIGNMENTS: &str = "microsoft.authorization/policyassignments";
/// The type policy rules see for resource groups (ARM's policy type, not the route's).
pub(crate) const RESOURCE_GROUP_TYPE: &str = "Microsoft.Resources/subscriptions/resourceGroups";

/// One definition of one assignment that covers a resource.
pub(crate) struct AssignedMember {
    pub origin: ConstraintOrigin,
    pub assignment: StoredResource,
    pub assignment_scope: String,
    pub definition: Value,
    /// The member's effective parameter values (initiative values flowed through).
    pub values: Map<String, Value>,
    /// The effect an `overrides` entry forces on this member.
    pub forced_effect: Option<String>,
    /// `enforcementMode` is not `DoNotEnforce`.
    pub enforce: bool,
    /// An unexpired exemption covers the resource for this member.
    pub exempt: bool,
}

impl AssignedMember {
    /// The definition's mode (Azure's default when a definition leaves it out).
    pub(crate) fn mode(&self) -> &str {
        self.definition["properties"]["mode"]
            .as_str()
            .unwrap_or(DEFAULT_MODE)
    }

    /// The effect, by name: the override, else the rule's (parameters resolved).
    pub(crate) fn effect_name(&self) -> String {
        if let Some(forced) = &self.forced_effect {
            return forced.clone();
        }
        let rule = &self.definition["properties"]["policyRule"];
        let raw = rule["then"]["effect"].clone();
        let empty = json!({});
        let ctx = RuleContext::default();
        Evaluator::new(&empty, &self.values, &ctx)
            .resolve_operand(&raw)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "Audit".to_string())
    }
}

/// Whether the assignment's `resourceSelectors` let it evaluate `resource` (no selectors: yes;
/// otherwise some selector group whose every selector matches).
fn selected(assignment: &Value, resource: &Value) -> bool {
    let Some(groups) = assignment["properties"]["resourceSelectors"].as_array() else {
        return true;
    };
    if groups.is_empty() {
        return true;
    }
    let location = resource["location"].as_str();
    let rtype = resource["type"].as_str().unwrap_or_default();
    groups.iter().any(|g| {
        g["selectors"].as_array().into_iter().flatten().all(|s| {
            let kind = s["kind"].as_str().unwrap_or_default().to_ascii_lowercase();
            let listed = |key: &str, v: &str| {
                s[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|x| x.eq_ignore_ascii_case(v))
            };
            let pass = |v: &str| {
                if s.get("in").is_some() {
                    listed("in", v)
                } else {
                    !listed("notIn", v)
                }
            };
            match kind.as_str() {
                "resourcelocation" => location.is_some_and(pass),
                "resourcetype" => pass(rtype),
                "resourcewithoutlocation" => {
                    pass(if location.is_none() { "true" } else { "false" })
                }
                _ => true,
            }
        })
    })
}

/// Whether Azure's evaluation cycle has picked up the assignment's latest write.
fn in_effect(assignment: &StoredResource, delay: Duration) -> bool {
    if delay.is_zero() {
        return true;
    }
    humantime::parse_rfc3339_weak(&assignment.updated_at)
        .map(|written| written + delay <= SystemTime::now())
        .unwrap_or(true)
}

/// Every member of every assignment covering `resource_id` (`resource` is its body as policy
/// sees it): assignment scope contains it, no notScope does, resource selectors pass, and
/// the fault profile's `policy_evaluation_ms` has passed since the assignment was written.
pub(crate) fn members_covering(
    state: &AppState,
    resource_id: &str,
    resource: &Value,
) -> Result<Vec<AssignedMember>, ErrorResponse> {
    let exemptions = gatekeeper::exemptions_for(state, resource_id)?;
    let delay = Duration::from_millis(state.fault_profile().policy_evaluation_ms);
    let mut out = Vec::new();
    for (_, assignment) in stored_of_type(state, ASSIGNMENTS)? {
        if !in_effect(&assignment, delay) {
            continue;
        }
        let props = &assignment.body["properties"];
        let scope_id = props["scope"].as_str().unwrap_or_default().to_string();
        let Ok(scope) = Scope::parse(&scope_id) else {
            continue;
        };
        if !scope.contains(state, resource_id)? {
            continue;
        }
        let mut excluded = false;
        for ns in props["notScopes"].as_array().into_iter().flatten() {
            if let Some(Ok(ns)) = ns.as_str().map(Scope::parse) {
                excluded |= ns.contains(state, resource_id)?;
            }
        }
        if excluded || !selected(&assignment.body, resource) {
            continue;
        }
        let enforce = !props["enforcementMode"]
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case("DoNotEnforce"));
        let supplied = props["parameters"].as_object().cloned().unwrap_or_default();
        let def_id = props["policyDefinitionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(definition) = resolve_visible(state, &scope, &def_id)? else {
            continue;
        };
        let is_set = def_id
            .to_ascii_lowercase()
            .contains("/policysetdefinitions/");
        let mut members = Vec::new();
        if is_set {
            let set_values = engine::effective_parameters(
                definition.pointer("/properties/parameters"),
                &supplied,
            );
            for m in definition["properties"]["policyDefinitions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let mid = m["policyDefinitionId"].as_str().unwrap_or_default();
                let Some(body) = resolve_visible(state, &scope, mid)? else {
                    continue;
                };
                let given = engine::member_parameters(m.get("parameters"), &set_values);
                let values =
                    engine::effective_parameters(body.pointer("/properties/parameters"), &given);
                let rid = m["policyDefinitionReferenceId"]
                    .as_str()
                    .map(str::to_string);
                members.push((mid.to_string(), rid, body, values));
            }
        } else {
            let values = engine::effective_parameters(
                definition.pointer("/properties/parameters"),
                &supplied,
            );
            members.push((def_id.clone(), None, definition, values));
        }
        for (mid, rid, body, values) in members {
            let exempt = exemptions
                .iter()
                .any(|e| e.covers(&assignment.id, rid.as_deref()));
            let forced_effect = engine::effect_override(props.get("overrides"), rid.as_deref());
            out.push(AssignedMember {
                origin: ConstraintOrigin {
                    assignment_id: assignment.id.clone(),
                    definition_id: mid,
                    set_definition_id: is_set.then(|| def_id.clone()),
                    reference_id: rid,
                },
                assignment: assignment.clone(),
                assignment_scope: scope_id.clone(),
                definition: body,
                values,
                forced_effect,
                enforce,
                exempt,
            });
        }
    }
    Ok(out)
}

/// The body policy sees for a stored resource: its id, name and ARM policy type filled in.
pub(crate) fn policy_view(id: &str, body: &Value) -> Value {
    let mut view = body.clone();
    if !view.is_object() {
        view = json!({});
    }
    view["id"] = json!(id);
    if view["name"].as_str().is_none() {
        view["name"] = json!(id.rsplit('/').next().unwrap_or_default());
    }
    let segs: Vec<&str> = id.split('/').collect();
    let is_group = segs.len() == 5 && segs[3].eq_ignore_ascii_case("resourceGroups");
    if is_group {
        view["type"] = json!(RESOURCE_GROUP_TYPE);
    }
    view
}

/// `resourceGroup()`, `subscription()` and `policy()` for a resource.
fn context(
    state: &AppState,
    resource_id: &str,
    member: &AssignedMember,
    method: Option<&str>,
) -> Result<RuleContext, ErrorResponse> {
    let segs: Vec<&str> = resource_id.split('/').collect();
    let sub = segs.get(2).copied().unwrap_or_default();
    let resource_group = match segs.get(4) {
        Some(rg)
            if segs
                .get(3)
                .is_some_and(|s| s.eq_ignore_ascii_case("resourceGroups")) =>
        {
            let rg_id = format!("/subscriptions/{sub}/resourceGroups/{rg}");
            state.store.get(&rg_id)?.map(|r| {
                let mut v = r.body.clone();
                v["id"] = json!(r.id);
                v
            })
        }
        _ => None,
    };
    Ok(RuleContext {
        resource_group,
        subscription: Some(json!({
            "id": format!("/subscriptions/{sub}"),
            "subscriptionId": sub,
            "tenantId": state.identity.tenant_id,
            "displayName": sub,
        })),
        policy: Some(json!({
            "assignmentId": member.origin.assignment_id,
            "definitionId": member.origin.definition_id,
            "setDefinitionId": member.origin.set_definition_id.clone().unwrap_or_default(),
            "definitionReferenceId": member.origin.reference_id.clone().unwrap_or_default(),
        })),
        method: method.map(str::to_string),
        now: Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()),
    })
}

/// Candidates for an `…IfNotExists` related-resource query around `resource_id`.
fn related(state: &AppState, resource_id: &str, q: &RelatedQuery) -> Vec<Value> {
    let segs: Vec<&str> = resource_id.split('/').collect();
    let sub = segs
        .get(2)
        .copied()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let rg = q
        .resource_group_name
        .clone()
        .or_else(|| segs.get(4).map(|s| s.to_string()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let within = if q.subscription_scope {
        format!("/subscriptions/{sub}/")
    } else {
        format!("/subscriptions/{sub}/resourcegroups/{rg}/")
    };
    let Ok(found) = stored_of_type(state, &q.resource_type.to_ascii_lowercase()) else {
        return Vec::new();
    };
    found
        .into_iter()
        .filter(|(_, r)| r.id.to_ascii_lowercase().starts_with(&within))
        .filter(|(_, r)| {
            q.name.as_deref().is_none_or(|n| {
                r.id.rsplit('/').next().is_some_and(|last| {
                    last.eq_ignore_ascii_case(n.rsplit('/').next().unwrap_or(n))
                })
            })
        })
        .map(|(_, r)| {
            let current = settle_cluster(state, &r.id).ok().flatten().unwrap_or(r);
            policy_view(&current.id, &current.body)
        })
        .collect()
}

/// What one ARM-mode member says about a resource; `None` when the member is not ARM-mode,
/// its mode does not cover the resource type, or the rule cannot be evaluated (logged: Azure
/// would have refused such a definition).
pub(crate) fn outcome(
    state: &AppState,
    member: &AssignedMember,
    resource_id: &str,
    view: &Value,
    method: Option<&str>,
) -> Result<Option<Outcome>, ErrorResponse> {
    let rtype = view["type"].as_str().unwrap_or_default();
    if !arm_rule::mode_applies(member.mode(), rtype) {
        return Ok(None);
    }
    let ctx = context(state, resource_id, member, method)?;
    let ev = Evaluator::new(view, &member.values, &ctx);
    let rule = &member.definition["properties"]["policyRule"];
    let result = (|| {
        let effect = match &member.forced_effect {
            Some(f) => Effect::parse(f).ok_or_else(|| {
                arm_rule::ArmRuleError::InvalidCondition(format!("override effect '{f}'"))
            })?,
            None => ev.effect(rule)?,
        };
        ev.outcome(rule, effect, &|q| related(state, resource_id, q))
    })();
    match result {
        Ok(o) => Ok(Some(o)),
        Err(e) => {
            log::warn!(
                "policy {} of assignment {} cannot be evaluated for {resource_id}: {e}",
                member.origin.definition_id,
                member.origin.assignment_id
            );
            Ok(None)
        }
    }
}

/// Refuses a write that an enforced, unexempted Deny assignment matches, with ARM's 403
/// `RequestDisallowedByPolicy` and one `PolicyViolation` per denying assignment member.
pub(crate) fn check_deny(
    state: &AppState,
    resource_id: &str,
    view: &Value,
    method: &str,
) -> Result<(), ErrorResponse> {
    let mut violations = Vec::new();
    for m in members_covering(state, resource_id, view)? {
        if !m.enforce || m.exempt {
            continue;
        }
        let Some(o) = outcome(state, &m, resource_id, view, Some(method))? else {
            continue;
        };
        if o.effect == Effect::Deny && o.matched {
            violations.push(m);
        }
    }
    if violations.is_empty() {
        return Ok(());
    }
    let name = view["name"].as_str().unwrap_or_default().to_string();
    let identifiers: Vec<Value> = violations
        .iter()
        .map(|m| {
            let mut entry = json!({
                "policyAssignment": {"name": last(&m.origin.assignment_id), "id": m.origin.assignment_id},
                "policyDefinition": {"name": last(&m.origin.definition_id), "id": m.origin.definition_id,
                    "version": m.definition["properties"]["version"].as_str().unwrap_or("1.0.0")},
            });
            if let Some(set) = &m.origin.set_definition_id {
                entry["policySetDefinition"] = json!({"name": last(set), "id": set});
            }
            entry
        })
        .collect();
    let info: Vec<Value> = violations
        .iter()
        .map(|m| {
            let a = &m.assignment.body["properties"];
            let d = &m.definition["properties"];
            json!({"type": "PolicyViolation", "info": {
                "policyDefinitionDisplayName": d["displayName"].as_str().unwrap_or_default(),
                "policyDefinitionId": m.origin.definition_id,
                "policyDefinitionName": last(&m.origin.definition_id),
                "policyDefinitionVersion": d["version"].as_str().unwrap_or("1.0.0"),
                "policyDefinitionEffect": "deny",
                "policyAssignmentId": m.origin.assignment_id,
                "policyAssignmentName": last(&m.origin.assignment_id),
                "policyAssignmentDisplayName": a["displayName"].as_str().unwrap_or_default(),
                "policyAssignmentScope": m.assignment_scope,
                "policyAssignmentParameters": a["parameters"].as_object().cloned().unwrap_or_default(),
                "policySetDefinitionId": m.origin.set_definition_id.clone().unwrap_or_default(),
                "policySetDefinitionName": m.origin.set_definition_id.as_deref().map(last).unwrap_or_default(),
                "policyDefinitionReferenceId": m.origin.reference_id.clone().unwrap_or_default(),
                "policyExemptionIds": [],
            }})
        })
        .collect();
    let identifiers = serde_json::to_string(&identifiers).unwrap_or_default();
    let mut err = ErrorResponse::new(
        http::StatusCode::FORBIDDEN,
        "RequestDisallowedByPolicy",
        format!("Resource '{name}' was disallowed by policy. Policy identifiers: '{identifiers}'."),
    );
    let extra = err.extra_mut();
    extra.target = Some(name);
    extra.additional_info = info;
    Err(err)
}

fn last(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or_default()
}

/// One property a remediation writes on a resource (`None` removes it).
pub(crate) type PropertyChange = (Vec<String>, Option<Value>);

/// The deployment ARM runs to remediate `member` on a resource: the definition's
/// `details.deployment` with its parameter values evaluated against the resource (policy
/// functions: `field()`, `resourceGroup()`, the assignment's `parameters()`), at the
/// resource's group or, with `deploymentScope: subscription`, its subscription. `None` when
/// the definition has no deployment.
pub(crate) struct RemediationDeployment {
    pub subscription_scope: bool,
    pub request: Value,
}

pub(crate) fn remediation_deployment(
    state: &AppState,
    member: &AssignedMember,
    resource_id: &str,
    view: &Value,
) -> Result<Option<RemediationDeployment>, arm_rule::ArmRuleError> {
    let ctx = context(state, resource_id, member, Some("PUT"))
        .map_err(|e| arm_rule::ArmRuleError::InvalidCondition(e.message))?;
    let ev = Evaluator::new(view, &member.values, &ctx);
    let details = &member.definition["properties"]["policyRule"]["then"]["details"];
    let deployment = &details["deployment"];
    if !deployment.is_object() {
        return Ok(None);
    }
    let mut request = deployment.clone();
    let mut params = Map::new();
    for (k, v) in deployment["properties"]["parameters"]
        .as_object()
        .into_iter()
        .flatten()
    {
        params.insert(
            k.clone(),
            json!({"value": ev.resolve_operand(&v["value"])?}),
        );
    }
    request["properties"]["parameters"] = Value::Object(params);
    let subscription_scope = details["deploymentScope"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("subscription"));
    if let Some(loc) = deployment.get("location") {
        request["location"] = ev.resolve_operand(loc)?;
    } else if subscription_scope {
        request["location"] = view["location"].clone();
    }
    Ok(Some(RemediationDeployment {
        subscription_scope,
        request,
    }))
}

/// The property changes remediating a Modify `member` makes to the resource: its operations
/// (`addOrReplace`, `add`, `remove`) with their conditions. Empty for other effects.
pub(crate) fn remediation_changes(
    state: &AppState,
    member: &AssignedMember,
    resource_id: &str,
    view: &Value,
) -> Result<Vec<PropertyChange>, ErrorResponse> {
    let rtype = view["type"].as_str().unwrap_or_default().to_string();
    let ctx = context(state, resource_id, member, Some("PUT"))?;
    let ev = Evaluator::new(view, &member.values, &ctx);
    let rule = &member.definition["properties"]["policyRule"];
    let details = &rule["then"]["details"];
    let effect = member.effect_name();
    let mut out = Vec::new();
    if effect.eq_ignore_ascii_case("Modify") {
        for op in details["operations"].as_array().into_iter().flatten() {
            let Some(path) = op["field"]
                .as_str()
                .and_then(|f| arm_rule::writable_path(f, &rtype))
            else {
                continue;
            };
            let kind = op["operation"].as_str().unwrap_or_default();
            if let Some(cond) = op.get("condition") {
                let holds = ev
                    .resolve_operand(cond)
                    .ok()
                    .is_some_and(|c| c == json!(true));
                if !holds {
                    continue;
                }
            }
            let field = op["field"].as_str().unwrap_or_default();
            let present = ev.field_value(field).ok().is_some_and(|v| !v.is_null());
            if kind.eq_ignore_ascii_case("add") && present {
                // `add` never replaces an existing value.
                continue;
            }
            if kind.eq_ignore_ascii_case("remove") {
                out.push((path, None));
            } else if let Ok(v) = ev.resolve_operand(&op["value"]) {
                out.push((path, Some(v)));
            }
        }
    }
    Ok(out)
}

/// Writes one property change into a body: keys matched case-insensitively (an existing key
/// keeps its casing), missing objects created.
pub(crate) fn set_path(body: &mut Value, path: &[String], value: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = body;
    for key in parents {
        if !node.is_object() {
            *node = json!({});
        }
        let Some(map) = node.as_object_mut() else {
            return;
        };
        let existing = map.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned();
        node = map
            .entry(existing.unwrap_or_else(|| key.clone()))
            .or_insert_with(|| json!({}));
    }
    if !node.is_object() {
        *node = json!({});
    }
    let Some(map) = node.as_object_mut() else {
        return;
    };
    let existing = map.keys().find(|k| k.eq_ignore_ascii_case(last)).cloned();
    match value {
        Some(v) => {
            map.insert(existing.unwrap_or_else(|| last.clone()), v);
        }
        None => {
            if let Some(k) = existing {
                map.remove(&k);
            }
        }
    }
}

/// The changes enforced Modify assignments make to a write before it reaches the resource
/// provider (Azure evaluates Modify before Deny).
pub(crate) fn write_modifications(
    state: &AppState,
    resource_id: &str,
    view: &Value,
) -> Result<Vec<PropertyChange>, ErrorResponse> {
    let mut out = Vec::new();
    for m in members_covering(state, resource_id, view)? {
        if !m.enforce || m.exempt {
            continue;
        }
        let Some(o) = outcome(state, &m, resource_id, view, Some("PUT"))? else {
            continue;
        };
        if o.effect == Effect::Modify && o.matched && !o.compliant {
            out.extend(remediation_changes(state, &m, resource_id, view)?);
        }
    }
    Ok(out)
}
