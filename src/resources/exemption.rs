//! Resource `akspolicy_exemption`: exempts a scope (management group, subscription, resource
//! group or resource) from a policy assignment, or from some members of an assigned initiative,
//! as a waiver or because the risk is mitigated otherwise, optionally until a date.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::arm::api_version;
use crate::arm::{ArmClient, ResourceId};
use crate::framework::timeouts::{self, Deadline, Operation};
use crate::framework::typed::{Knowable, Typed};
use crate::framework::{
    ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, CallContext, DeleteRequest,
    DeleteResponse, Diagnostic, Diagnostics, ImportRequest, ImportResponse, ModifyPlanRequest,
    ModifyPlanResponse, ReadRequest, ReadResponse, Resource, Schema, Type, Value,
};
use crate::policy::parameters::closest_name;
use crate::policy::timestamp::{format_rfc3339_utc, now, parse_rfc3339, Timestamp};
use crate::policy::PolicySetDefinition;
use crate::typed_object;

use super::provider::Configured;
use super::shared::existence::check_planned_scope;
use super::shared::parameter_values::{definition_kind, DefinitionKind};
use super::shared::reconcile::{
    ignore_case_only_replacements, keep_equivalent, kept_id_list, kept_str_ci, kept_text,
    metadata_text_state, metadata_text_to_arm,
};
use super::shared::schema::{
    id_attribute, metadata_attribute, name_attribute, scope_attribute, typed_schema,
};
use super::shared::scoped::{Naming, PropagationWait, ScopedBody, ScopedKind};
use super::shared::selectors::{
    one_of, resource_selectors_block, resource_selectors_from_value, resource_selectors_to_value,
    ResourceSelector,
};
use super::shared::waits::POLICY_TIMEOUTS;
use crate::policy::definition_body::POLICY_ASSIGNMENT_TYPE;
use crate::policy::names;

const KIND: ScopedKind = ScopedKind {
    noun: "policy exemption",
    segment: "/providers/Microsoft.Authorization/policyExemptions/",
    arm_type: crate::policy::definition_body::POLICY_EXEMPTION_TYPE,
    api_version: api_version::POLICY_EXEMPTIONS,
    import_hint: ".",
    timeouts: POLICY_TIMEOUTS,
    list_takes_top: false,
};

/// An exemption of a just-created assignment can be refused until ARM sees the assignment.
const ASSIGNMENT_PROPAGATION: PropagationWait = PropagationWait {
    not_found_codes: &["PolicyAssignmentNotFound"],
    bound: Duration::from_secs(120),
    waiting_for: "Azure to see the exempted assignment",
};

const CATEGORIES: &[&str] = &["Waiver", "Mitigated"];
const SCOPE_VALIDATIONS: &[&str] = &["Default", "DoNotValidate"];

pub struct ExemptionResource;

// ---------------------------------------------------------------------------------------------
// ARM body

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyExemption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default)]
    properties: ExemptionProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExemptionProperties {
    #[serde(default)]
    policy_assignment_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy_definition_reference_ids: Option<Vec<String>>,
    #[serde(default)]
    exemption_category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_selectors: Option<Vec<ResourceSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    assignment_scope_validation: Option<String>,
}

impl ScopedBody for PolicyExemption {
    fn id_mut(&mut self) -> &mut Option<String> {
        &mut self.id
    }

    fn is_complete(&self) -> bool {
        self.id.is_some()
            && self.name.is_some()
            && !self.properties.policy_assignment_id.is_empty()
            && !self.properties.exemption_category.is_empty()
    }
}

/// Validator: an RFC 3339 date-time.
fn rfc3339(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(s) = value.as_str() else { return };
    if let Err(e) = parse_rfc3339(s) {
        diags.error_at(path.clone(), "Invalid expires_on", e.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Schema

fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "Exempts a scope — a management group, subscription, resource group or a single \
                 resource such as an AKS cluster — from a policy assignment, or from some policies \
                 of an assigned initiative. An exemption that has expired stays in Azure and in \
                 the state (`expired = true`) and each plan warns about it; it is not recreated.",
            )
            .attribute(id_attribute("The exemption's ARM ID: `<scope>/providers/Microsoft.Authorization/policyExemptions/<name>`."))
            .attribute(name_attribute("The exemption's name.", names::POLICY_EXEMPTION))
            .attribute(scope_attribute("What to exempt: `/providers/Microsoft.Management/managementGroups/<mg>`, `/subscriptions/<sub>`, `/subscriptions/<sub>/resourceGroups/<rg>` or a resource ID. It must be at or below the assignment's scope unless `assignment_scope_validation = \"DoNotValidate\"`."))
            .attribute(
                Attribute::string("policy_assignment_id")
                    .required()
                    .requires_replace()
                    .description("The ID of the policy assignment to exempt from, e.g. `akspolicy_assignment.x.id`.")
                    .validate_with(assignment_id),
            )
            .attribute(
                Attribute::string("exemption_category")
                    .required()
                    .description("`Waiver` (the scope is allowed not to comply) or `Mitigated` (the intent is met another way).")
                    .validate_with(|v, p, d| one_of(v, p, d, CATEGORIES, "exemption category")),
            )
            .attribute(
                Attribute::string("expires_on")
                    .optional()
                    .description("When the exemption ends, as an RFC 3339 date-time (e.g. `2027-06-30T00:00:00Z`). Sent to Azure in UTC; any form naming the same instant plans no change. After `terraform import` it reads back in Azure's UTC form (`...Z`).")
                    .validate_with(rfc3339),
            )
            .attribute(
                Attribute::bool("expired")
                    .computed()
                    .description("Whether `expires_on` has passed: the exemption no longer applies, although it still exists."),
            )
            .attribute(
                Attribute::new("policy_definition_reference_ids", Type::list(Type::String))
                    .optional()
                    .description("For an assigned initiative: the reference IDs of the member policies to exempt from (default: all)."),
            )
            .attribute(
                Attribute::string("assignment_scope_validation")
                    .optional()
                    .description("`Default` checks that `scope` is at or below the assignment's scope; `DoNotValidate` skips that check.")
                    .validate_with(|v, p, d| one_of(v, p, d, SCOPE_VALIDATIONS, "assignment scope validation")),
            )
            .attribute(Attribute::string("display_name").optional().description("The display name."))
            .attribute(Attribute::string("description").optional().description("A description, e.g. the reason and the ticket."))
            .attribute(metadata_attribute("Metadata as a JSON object string (`jsonencode({...})`). Only the keys you set are compared; keys Azure writes itself are ignored unless you set them."))
            .block(resource_selectors_block())
            .block(timeouts::block(POLICY_TIMEOUTS)),
    )
}

/// Validator: the id of a policy assignment.
fn assignment_id(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(s) = value.as_str() else { return };
    let ok = ResourceId::parse(s).is_ok_and(|id| id.is_type(POLICY_ASSIGNMENT_TYPE));
    if !ok {
        diags.error_at(
            path.clone(),
            "Invalid policy assignment ID",
            format!(
                "{s:?} is not a policy assignment ID. Expected \
                 <scope>/providers/Microsoft.Authorization/policyAssignments/<name>, e.g. the `id` \
                 of an akspolicy_assignment."
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Terraform value ⇄ ARM body

typed_object! {
    /// The resource's configuration, plan or state.
    pub struct Exemption {
        pub id: Knowable<String>,
        pub name: Option<String>,
        pub scope: Option<String>,
        pub policy_assignment_id: Option<String>,
        pub exemption_category: Option<String>,
        pub expires_on: Option<String>,
        pub expired: Knowable<bool>,
        pub policy_definition_reference_ids: Option<Vec<String>>,
        pub assignment_scope_validation: Option<String>,
        pub display_name: Option<String>,
        pub description: Option<String>,
        pub metadata: Option<String>,
        /// The shared block of [`super::shared::selectors`], which reads it.
        pub resource_selectors: Value,
        pub timeouts: Value,
    }
}

fn body_from(v: &Exemption) -> PolicyExemption {
    PolicyExemption {
        properties: ExemptionProperties {
            policy_assignment_id: v.policy_assignment_id.clone().unwrap_or_default(),
            policy_definition_reference_ids: v.policy_definition_reference_ids.clone(),
            exemption_category: v.exemption_category.clone().unwrap_or_default(),
            expires_on: v.expires_on.as_deref().map(|s| {
                parse_rfc3339(s)
                    .map(format_rfc3339_utc)
                    .unwrap_or_else(|_| s.to_string())
            }),
            display_name: v.display_name.clone(),
            description: v.description.clone(),
            metadata: metadata_text_to_arm(v.metadata.as_deref()),
            resource_selectors: resource_selectors_from_value(&v.resource_selectors),
            assignment_scope_validation: v.assignment_scope_validation.clone(),
        },
        ..Default::default()
    }
}

fn is_expired(expires_on: Option<&str>, at: Timestamp) -> bool {
    expires_on
        .and_then(|s| parse_rfc3339(s).ok())
        .is_some_and(|t| t <= at)
}

fn state_from(remote: &PolicyExemption, prior: &Value) -> Value {
    // Anything but an object (never sent for a managed resource) starts from nothing; the
    // schema test rules out every other mismatch.
    let prior = Exemption::decode(prior).unwrap_or_default();
    state_of(remote, &prior).to_value()
}

fn state_of(remote: &PolicyExemption, prior: &Exemption) -> Exemption {
    let p = &remote.properties;
    let remote_id = remote.id.clone().unwrap_or_default();
    let prior_naming = Naming {
        scope: prior.scope.as_deref(),
        name: prior.name.as_deref(),
        id: prior.id.as_deref(),
    };
    let (scope, name, id) =
        KIND.kept_naming(prior_naming, &remote_id, None, remote.name.as_deref());
    let expires_on = match (prior.expires_on.as_deref(), p.expires_on.as_deref()) {
        (Some(mine), Some(theirs))
            if parse_rfc3339(mine).ok().is_some()
                && parse_rfc3339(mine).ok() == parse_rfc3339(theirs).ok() =>
        {
            prior.expires_on.clone()
        }
        (_, theirs) => theirs.map(str::to_string),
    };
    let scope_validation = match &p.assignment_scope_validation {
        Some(v) => kept_str_ci(prior.assignment_scope_validation.as_deref(), Some(v)),
        // Older API versions and some services do not echo it; it only guards the write.
        None => prior.assignment_scope_validation.clone(),
    };
    Exemption {
        id: id.into(),
        name,
        scope,
        policy_assignment_id: kept_str_ci(
            prior.policy_assignment_id.as_deref(),
            Some(&p.policy_assignment_id),
        ),
        exemption_category: kept_str_ci(
            prior.exemption_category.as_deref(),
            Some(&p.exemption_category),
        ),
        expired: Knowable::Known(is_expired(p.expires_on.as_deref(), now())),
        expires_on,
        policy_definition_reference_ids: kept_id_list(
            prior.policy_definition_reference_ids.as_deref(),
            p.policy_definition_reference_ids
                .as_deref()
                .unwrap_or_default(),
        ),
        assignment_scope_validation: scope_validation,
        display_name: kept_text(prior.display_name.as_deref(), p.display_name.as_deref()),
        description: kept_text(prior.description.as_deref(), p.description.as_deref()),
        metadata: metadata_text_state(prior.metadata.as_deref(), p.metadata.as_ref()),
        resource_selectors: keep_equivalent(
            &prior.resource_selectors,
            resource_selectors_to_value(p.resource_selectors.as_deref()),
        ),
        timeouts: prior.timeouts.clone(),
    }
}

/// Checks `policy_definition_reference_ids` against the members of the assigned initiative,
/// when the assignment already exists; anything that cannot be looked up is left to Azure.
async fn check_reference_ids(client: &ArmClient, config: &Exemption) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let Some(assignment_id) = config.policy_assignment_id.as_deref() else {
        return diags;
    };
    let refs = config
        .policy_definition_reference_ids
        .as_deref()
        .unwrap_or_default();
    if refs.is_empty() {
        return diags;
    }
    let definition_id = match client
        .get_optional::<Json>(assignment_id, api_version::POLICY)
        .await
    {
        Ok(Some(a)) => a
            .pointer("/properties/policyDefinitionId")
            .and_then(Json::as_str)
            .map(str::to_string),
        Ok(None) => None,
        Err(e) => {
            log::debug!("not checking reference ids: reading {assignment_id} failed: {e}");
            None
        }
    };
    let Some(definition_id) = definition_id else {
        return diags;
    };
    let path = AttributePath::attr("policy_definition_reference_ids");
    let is_set = ResourceId::parse(&definition_id)
        .ok()
        .and_then(|id| definition_kind(&id))
        == Some(DefinitionKind::Set);
    if !is_set {
        diags.push(
            Diagnostic::error(
                "Reference IDs need an initiative",
                format!(
                    "The assignment assigns the single policy {definition_id};                      policy_definition_reference_ids only select members of an assigned                      initiative. Remove them to exempt from the whole assignment."
                ),
            )
            .at(path),
        );
        return diags;
    }
    let set = match client
        .get_optional::<PolicySetDefinition>(&definition_id, api_version::POLICY)
        .await
    {
        Ok(Some(set)) => set,
        _ => return diags,
    };
    let members: Vec<&str> = set
        .properties
        .policy_definitions
        .iter()
        .filter_map(|m| m.policy_definition_reference_id.as_deref())
        .collect();
    for (i, given) in refs.iter().enumerate() {
        if members.iter().any(|m| m.eq_ignore_ascii_case(given)) {
            continue;
        }
        let hint = closest_name(given, members.iter().copied())
            .map(|c| format!(" Did you mean {c:?}?"))
            .unwrap_or_default();
        diags.push(
            Diagnostic::error(
                "Unknown policy definition reference ID",
                format!(
                    "The initiative {definition_id} has no member with reference ID {given:?}.\
                     {hint} Its members: {}.",
                    members.join(", ")
                ),
            )
            .at(path.index(i)),
        );
    }
    diags
}

// ---------------------------------------------------------------------------------------------
// CRUD

async fn write(ctx: &CallContext, req: &ApplyRequest<'_>, op: Operation) -> ApplyResponse {
    let deadline = Deadline::start(req.planned, op, POLICY_TIMEOUTS);
    let (configured, planned) = match (ctx.provider::<Configured>(), Exemption::decode(req.planned))
    {
        (Ok(c), Ok(p)) => (c, p),
        (Err(d), _) => return ApplyResponse::failed(d),
        (_, Err(e)) => return ApplyResponse::failed(e.into()),
    };
    KIND.write(
        &configured,
        req.planned,
        &deadline,
        &body_from(&planned),
        &ASSIGNMENT_PROPAGATION,
        Diagnostics::new(),
        state_from,
    )
    .await
}

#[async_trait]
impl Resource for ExemptionResource {
    typed_schema!("akspolicy_exemption", schema(), Exemption);

    async fn modify_plan(
        &self,
        ctx: &CallContext,
        req: ModifyPlanRequest<'_>,
        change: &mut ModifyPlanResponse,
    ) {
        ignore_case_only_replacements(req, change, &["scope", "name", "policy_assignment_id"]);
        check_planned_scope(ctx, req, change).await;
        let (config, planned) = match (
            Exemption::decode(req.config),
            Exemption::decode(&change.planned),
        ) {
            (Ok(c), Ok(p)) => (c, p),
            (Err(e), _) | (_, Err(e)) => return change.diags.extend(e.into()),
        };
        // Null on create.
        let prior = Exemption::decode(req.prior).ok();
        // Unknown values read as `None`: a reference list not known yet is checked at apply.
        let refs_changed = prior.is_none_or(|prior| {
            prior.policy_definition_reference_ids != config.policy_definition_reference_ids
                || prior.policy_assignment_id != config.policy_assignment_id
        });
        if refs_changed {
            if let Ok(configured) = ctx.provider::<Configured>() {
                let d = check_reference_ids(&configured.client, &config).await;
                change.diags.extend(d);
            }
        }
        let Some(expires_on) = planned.expires_on.as_deref() else {
            return;
        };
        if is_expired(Some(expires_on), now()) {
            let name = planned.name.as_deref().unwrap_or("?");
            change.diags.warning_at(
                AttributePath::attr("expires_on"),
                "Policy exemption has expired",
                format!(
                    "Exemption {name:?} expired at {expires_on}: the assignment's policies apply \
                     to its scope again. Azure keeps the expired exemption; set a later \
                     expires_on to extend it, or remove the resource."
                ),
            );
        }
    }

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        *resp = write(ctx, &req, Operation::Create).await;
    }

    async fn read(&self, ctx: &CallContext, req: ReadRequest<'_>, resp: &mut ReadResponse) {
        resp.state = KIND.read(ctx, req.state, &mut resp.diags, state_from).await;
    }

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        *resp = write(ctx, &req, Operation::Update).await;
    }

    async fn delete(&self, ctx: &CallContext, req: DeleteRequest<'_>, resp: &mut DeleteResponse) {
        let (prior, diags) = (req.prior, &mut resp.diags);
        KIND.delete(ctx, prior, diags).await
    }

    async fn import(&self, _ctx: &CallContext, req: ImportRequest<'_>, resp: &mut ImportResponse) {
        resp.state = KIND.import(&schema().block, req.id, &mut resp.diags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_complete_put_answer_stands_in_for_the_read_back() {
        let full: PolicyExemption = serde_json::from_value(json!({
            "id": "/subscriptions/s/providers/Microsoft.Authorization/policyExemptions/w",
            "name": "w",
            "properties": {"policyAssignmentId": "/a", "exemptionCategory": "Waiver"}
        }))
        .unwrap();
        assert!(full.is_complete());
        let partial: PolicyExemption =
            serde_json::from_value(json!({"name": "w", "properties": {}})).unwrap();
        assert!(!partial.is_complete());
    }

    #[test]
    fn read_keeps_same_instant_and_flags_expiry() {
        let remote: PolicyExemption = serde_json::from_value(json!({
            "id": "/subscriptions/s/resourcegroups/legacy/providers/Microsoft.Authorization/policyExemptions/w",
            "name": "w",
            "properties": {
                "policyAssignmentId": "/subscriptions/s/providers/microsoft.authorization/policyassignments/a",
                "exemptionCategory": "Waiver",
                "expiresOn": "2020-01-01T00:00:00Z",
                "metadata": {"createdBy": "x"}
            }
        }))
        .unwrap();
        let prior = Exemption {
            scope: Some("/subscriptions/s/resourceGroups/legacy".into()),
            name: Some("w".into()),
            policy_assignment_id: Some(
                "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a".into(),
            ),
            expires_on: Some("2020-01-01T01:00:00+01:00".into()),
            ..Default::default()
        };
        let state = state_of(&remote, &prior);
        assert_eq!(state.expires_on, prior.expires_on);
        assert_eq!(state.policy_assignment_id, prior.policy_assignment_id);
        assert_eq!(state.expired, Knowable::Known(true));
        assert_eq!(state.metadata, None);
        assert_eq!(
            state.id.as_deref(),
            Some("/subscriptions/s/resourceGroups/legacy/providers/Microsoft.Authorization/policyExemptions/w")
        );
        assert_eq!(state.resource_selectors, Value::List(vec![]));
    }

    #[test]
    fn body_is_normalized_to_utc() {
        let planned = Exemption {
            policy_assignment_id: Some(
                "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a".into(),
            ),
            exemption_category: Some("Mitigated".into()),
            expires_on: Some("2027-06-30T02:00:00+02:00".into()),
            policy_definition_reference_ids: Some(vec!["r1".into()]),
            resource_selectors: Value::List(vec![]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(body_from(&planned)).unwrap(),
            json!({"properties": {
                "policyAssignmentId": "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a",
                "exemptionCategory": "Mitigated",
                "expiresOn": "2027-06-30T00:00:00Z",
                "policyDefinitionReferenceIds": ["r1"]
            }})
        );
    }
}
