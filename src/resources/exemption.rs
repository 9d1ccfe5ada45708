//! Resource `akspolicy_exemption`: exempts a scope (management group, subscription, resource
//! group or resource) from a policy assignment, or from some members of an assigned initiative,
//! as a waiver or because the risk is mitigated otherwise, optionally until a date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::arm::{ArmClient, ArmError, ResourceId};
use crate::framework::timeouts::{self, Deadline, Operation};
use crate::framework::{
    ApplyRequest, ApplyResult, Attribute, AttributePath, Block, CallContext, Diagnostic,
    Diagnostics, PlanChange, Resource, Schema, Type, Value,
};
use crate::policy::parameters::closest_name;
use crate::policy::PolicySetDefinition;

use super::existence::check_planned_scope;
use super::parameters::{definition_kind, DefinitionKind};
use super::provider::Configured;
use super::reconcile::{
    arm_scope, ignore_case_only_replacements, json_object_string, keep_equivalent, keep_id_list,
    keep_str_ci, keep_text, metadata_state, metadata_to_arm, same_id, timeouts_only_update,
};
use super::scoped::{PropagationWait, ScopedBody, ScopedKind};
use super::selectors::{
    one_of, resource_selectors_block, resource_selectors_from_value, resource_selectors_to_value,
    ResourceSelector,
};
use super::validators::policy_object_name;
use super::waits::POLICY_TIMEOUTS;

/// Exemptions only exist in preview API versions.
pub const API_VERSION: &str = "2024-12-01-preview";

const KIND: ScopedKind = ScopedKind {
    noun: "policy exemption",
    segment: "/providers/Microsoft.Authorization/policyExemptions/",
    arm_type: "Microsoft.Authorization/policyExemptions",
    api_version: API_VERSION,
    import_hint: ".",
    timeouts: POLICY_TIMEOUTS,
    list_takes_top: false,
};

/// An exemption of a just-created assignment can be refused until ARM sees the assignment.
const ASSIGNMENT_PROPAGATION: PropagationWait = PropagationWait {
    transient: is_assignment_propagation,
    bound: Duration::from_secs(120),
    interval: Duration::from_secs(5),
    waiting_for: "Azure to see the exempted assignment",
};

fn is_assignment_propagation(e: &ArmError) -> bool {
    e.status() == Some(400) && e.code() == Some("PolicyAssignmentNotFound")
}
const ASSIGNMENT_TYPE: &str = "Microsoft.Authorization/policyAssignments";

/// For reading the exempted assignment and its initiative during plan.
const ASSIGNMENT_API_VERSION: &str = "2025-03-01";

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

// ---------------------------------------------------------------------------------------------
// RFC 3339 instants

/// A point in time: seconds since the Unix epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant {
    pub seconds: i64,
    pub nanos: u32,
}

/// Why a timestamp is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an RFC 3339 date-time such as 2027-06-30T00:00:00Z or 2027-06-30T02:00:00+02:00"
)]
pub struct TimestampError(pub String);

fn digits(s: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = s.get(range)?;
    part.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| part.parse().ok())?
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Result<Instant, TimestampError> {
    let err = || TimestampError(s.to_string());
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(err());
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(err());
    }
    let (y, mo, d) = (
        digits(s, 0..4).ok_or_else(err)?,
        digits(s, 5..7).ok_or_else(err)?,
        digits(s, 8..10).ok_or_else(err)?,
    );
    let (h, mi, sec) = (
        digits(s, 11..13).ok_or_else(err)?,
        digits(s, 14..16).ok_or_else(err)?,
        digits(s, 17..19).ok_or_else(err)?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return Err(err());
    }
    let mut rest = &s[19..];
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(err());
        }
        let text = &frac[..n.min(9)];
        let padded = format!("{text:0<9}");
        nanos = padded.parse().map_err(|_| err())?;
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return Err(err());
            }
            let oh = digits(rest, 1..3).ok_or_else(err)?;
            let om = digits(rest, 4..6).ok_or_else(err)?;
            if oh > 23 || om > 59 {
                return Err(err());
            }
            let sign = if rb[0] == b'-' { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
    };
    // A leap second counts as the second before the next minute.
    let sec = sec.min(59);
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Ok(Instant { seconds, nanos })
}

/// The UTC form Azure documents (`yyyy-MM-ddTHH:mm:ss[.fffffff]Z`).
pub fn format_rfc3339_utc(t: Instant) -> String {
    let days = t.seconds.div_euclid(86_400);
    let secs = t.seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    if t.nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{:09}", t.nanos);
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

fn now() -> Instant {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Instant {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos(),
    }
}

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
            .attribute(
                Attribute::string("id")
                    .computed()
                    .use_state_for_unknown()
                    .description("The exemption's ARM ID: `<scope>/providers/Microsoft.Authorization/policyExemptions/<name>`."),
            )
            .attribute(
                Attribute::string("name")
                    .required()
                    .requires_replace()
                    .description("The exemption's name.")
                    .validate_with(policy_object_name),
            )
            .attribute(
                Attribute::string("scope")
                    .required()
                    .requires_replace()
                    .description("What to exempt: `/providers/Microsoft.Management/managementGroups/<mg>`, `/subscriptions/<sub>`, `/subscriptions/<sub>/resourceGroups/<rg>` or a resource ID. It must be at or below the assignment's scope unless `assignment_scope_validation = \"DoNotValidate\"`.")
                    .validate_with(arm_scope),
            )
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
            .attribute(
                Attribute::string("metadata")
                    .optional()
                    .description("Metadata as a JSON object string (`jsonencode({...})`). Only the keys you set are compared; keys Azure writes itself are ignored unless you set them.")
                    .validate_with(json_object_string),
            )
            .block(resource_selectors_block())
            .block(timeouts::block(POLICY_TIMEOUTS)),
    )
}

/// Validator: the id of a policy assignment.
fn assignment_id(value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Some(s) = value.as_str() else { return };
    let ok = ResourceId::parse(s).is_ok_and(|id| id.is_type(ASSIGNMENT_TYPE));
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

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn body_from(v: &Value) -> PolicyExemption {
    let refs = v.get("policy_definition_reference_ids");
    PolicyExemption {
        properties: ExemptionProperties {
            policy_assignment_id: opt_str(v.get("policy_assignment_id")).unwrap_or_default(),
            policy_definition_reference_ids: refs.is_set().then(|| refs.string_elements()),
            exemption_category: opt_str(v.get("exemption_category")).unwrap_or_default(),
            expires_on: v.get("expires_on").as_str().map(|s| {
                parse_rfc3339(s)
                    .map(format_rfc3339_utc)
                    .unwrap_or_else(|_| s.to_string())
            }),
            display_name: opt_str(v.get("display_name")),
            description: opt_str(v.get("description")),
            metadata: metadata_to_arm(v.get("metadata")),
            resource_selectors: resource_selectors_from_value(v.get("resource_selectors")),
            assignment_scope_validation: opt_str(v.get("assignment_scope_validation")),
        },
        ..Default::default()
    }
}

fn is_expired(expires_on: Option<&str>, at: Instant) -> bool {
    expires_on
        .and_then(|s| parse_rfc3339(s).ok())
        .is_some_and(|t| t <= at)
}

fn state_from(remote: &PolicyExemption, prior: &Value) -> Value {
    let p = &remote.properties;
    let remote_id = remote.id.clone().unwrap_or_default();
    let scope = keep_str_ci(prior.get("scope"), KIND.scope_of_id(&remote_id));
    let name = keep_str_ci(prior.get("name"), remote.name.as_deref());
    let id = match (scope.as_str(), name.as_str()) {
        (Some(s), Some(n)) if same_id(&KIND.path(s, n), &remote_id) => {
            keep_str_ci(prior.get("id"), Some(&KIND.path(s, n)))
        }
        _ => keep_str_ci(prior.get("id"), Some(&remote_id)),
    };
    let expires_on = match (prior.get("expires_on").as_str(), p.expires_on.as_deref()) {
        (Some(mine), Some(theirs))
            if parse_rfc3339(mine).ok().is_some()
                && parse_rfc3339(mine).ok() == parse_rfc3339(theirs).ok() =>
        {
            prior.get("expires_on").clone()
        }
        (_, theirs) => Value::opt_string(theirs),
    };
    let scope_validation = match &p.assignment_scope_validation {
        Some(v) => keep_str_ci(prior.get("assignment_scope_validation"), Some(v)),
        // Older API versions and some services do not echo it; it only guards the write.
        None => prior.get("assignment_scope_validation").clone(),
    };
    Value::object([
        ("id", id),
        ("name", name),
        ("scope", scope),
        (
            "policy_assignment_id",
            keep_str_ci(
                prior.get("policy_assignment_id"),
                Some(&p.policy_assignment_id),
            ),
        ),
        (
            "exemption_category",
            keep_str_ci(prior.get("exemption_category"), Some(&p.exemption_category)),
        ),
        (
            "expired",
            Value::Bool(is_expired(p.expires_on.as_deref(), now())),
        ),
        ("expires_on", expires_on),
        (
            "policy_definition_reference_ids",
            keep_id_list(
                prior.get("policy_definition_reference_ids"),
                p.policy_definition_reference_ids
                    .as_deref()
                    .unwrap_or_default(),
            ),
        ),
        ("assignment_scope_validation", scope_validation),
        (
            "display_name",
            keep_text(prior.get("display_name"), p.display_name.as_deref()),
        ),
        (
            "description",
            keep_text(prior.get("description"), p.description.as_deref()),
        ),
        (
            "metadata",
            metadata_state(prior.get("metadata"), p.metadata.as_ref()),
        ),
        (
            "resource_selectors",
            keep_equivalent(
                prior.get("resource_selectors"),
                resource_selectors_to_value(p.resource_selectors.as_deref()),
            ),
        ),
        ("timeouts", prior.get("timeouts").clone()),
    ])
}

/// Checks `policy_definition_reference_ids` against the members of the assigned initiative,
/// when the assignment already exists; anything that cannot be looked up is left to Azure.
async fn check_reference_ids(client: &ArmClient, config: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let refs = config.get("policy_definition_reference_ids");
    let Some(assignment_id) = config.get("policy_assignment_id").as_str() else {
        return diags;
    };
    if !refs.is_set() || !refs.is_wholly_known() || refs.elements().is_empty() {
        return diags;
    }
    let definition_id = match client
        .get_optional::<Json>(assignment_id, ASSIGNMENT_API_VERSION)
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
        .get_optional::<PolicySetDefinition>(&definition_id, ASSIGNMENT_API_VERSION)
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
    for (i, given) in refs.string_elements().iter().enumerate() {
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

async fn write(ctx: &CallContext, req: &ApplyRequest<'_>, op: Operation) -> ApplyResult {
    let deadline = Deadline::start(req.planned, op, POLICY_TIMEOUTS);
    let configured = match ctx.provider::<Configured>() {
        Ok(c) => c,
        Err(d) => return ApplyResult::failed(d),
    };
    KIND.write(
        &configured,
        req.planned,
        &deadline,
        &body_from(req.planned),
        &ASSIGNMENT_PROPAGATION,
        Diagnostics::new(),
        state_from,
    )
    .await
}

#[async_trait]
impl Resource for ExemptionResource {
    fn type_name(&self) -> &'static str {
        "akspolicy_exemption"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn modify_plan(&self, ctx: &CallContext, change: &mut PlanChange<'_>) {
        ignore_case_only_replacements(change, &["scope", "name", "policy_assignment_id"]);
        check_planned_scope(ctx, change).await;
        let refs_changed = change.prior.is_null()
            || change.prior.get("policy_definition_reference_ids")
                != change.config.get("policy_definition_reference_ids")
            || change.prior.get("policy_assignment_id")
                != change.config.get("policy_assignment_id");
        if refs_changed {
            if let Ok(configured) = ctx.provider::<Configured>() {
                let d = check_reference_ids(&configured.client, change.config).await;
                change.diags.extend(d);
            }
        }
        let Some(expires_on) = change.planned.get("expires_on").as_str() else {
            return;
        };
        if is_expired(Some(expires_on), now()) {
            let name = change.planned.get("name").as_str().unwrap_or("?");
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

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResult {
        write(ctx, &req, Operation::Create).await
    }

    async fn read(
        &self,
        ctx: &CallContext,
        state: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Value> {
        KIND.read(ctx, state, diags, state_from).await
    }

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>) -> ApplyResult {
        if let Some(state) = timeouts_only_update(req.prior, req.planned) {
            return ApplyResult::ok(state);
        }
        write(ctx, &req, Operation::Update).await
    }

    async fn delete(&self, ctx: &CallContext, prior: &Value, diags: &mut Diagnostics) {
        KIND.delete(ctx, prior, diags).await
    }

    async fn import(&self, _ctx: &CallContext, id: &str, diags: &mut Diagnostics) -> Option<Value> {
        KIND.import(&schema().block, id, diags)
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
    fn rfc3339_parses_offsets_and_fractions() {
        let z = parse_rfc3339("2027-06-30T00:00:00Z").unwrap();
        let plus2 = parse_rfc3339("2027-06-30T02:00:00+02:00").unwrap();
        assert_eq!(z, plus2);
        assert_eq!(z.seconds, 1_814_313_600);
        let frac = parse_rfc3339("2027-06-30T00:00:00.1075056Z").unwrap();
        assert_eq!(frac.nanos, 107_505_600);
        assert_eq!(format_rfc3339_utc(frac), "2027-06-30T00:00:00.1075056Z");
        assert_eq!(format_rfc3339_utc(plus2), "2027-06-30T00:00:00Z");
        for bad in [
            "2027-06-30",
            "2027-02-30T00:00:00Z",
            "2027-06-30T00:00:00",
            "2027-06-30T25:00:00Z",
            "2027-06-30T00:00:00+0200",
            "tomorrow",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format_rfc3339_utc(parse_rfc3339("1969-12-31T23:59:59Z").unwrap()),
            "1969-12-31T23:59:59Z"
        );
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
        let prior = Value::object([
            (
                "scope",
                Value::string("/subscriptions/s/resourceGroups/legacy"),
            ),
            ("name", Value::string("w")),
            (
                "policy_assignment_id",
                Value::string(
                    "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a",
                ),
            ),
            ("expires_on", Value::string("2020-01-01T01:00:00+01:00")),
        ]);
        let state = state_from(&remote, &prior);
        assert_eq!(state.get("expires_on"), prior.get("expires_on"));
        assert_eq!(
            state.get("policy_assignment_id"),
            prior.get("policy_assignment_id")
        );
        assert_eq!(state.get("expired"), &Value::Bool(true));
        assert_eq!(state.get("metadata"), &Value::Null);
        assert_eq!(
            state.get("id"),
            &Value::string("/subscriptions/s/resourceGroups/legacy/providers/Microsoft.Authorization/policyExemptions/w")
        );
        assert_eq!(state.get("resource_selectors"), &Value::List(vec![]));
    }

    #[test]
    fn body_is_normalized_to_utc() {
        let planned = Value::object([
            (
                "policy_assignment_id",
                Value::string(
                    "/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a",
                ),
            ),
            ("exemption_category", Value::string("Mitigated")),
            ("expires_on", Value::string("2027-06-30T02:00:00+02:00")),
            (
                "policy_definition_reference_ids",
                Value::string_list(["r1"]),
            ),
            ("resource_selectors", Value::List(vec![])),
        ]);
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
