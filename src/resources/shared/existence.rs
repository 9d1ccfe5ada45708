//! Plan-time checks that what a resource refers to exists, and can do what the resource needs,
//! when the apply reaches it.
//!
//! A value known at plan was written by the user (or read from an existing object), not
//! computed by another resource of the same apply, so when Azure does not have it now the
//! apply would fail half-way: that fails the plan. The exceptions say so: a custom definition
//! or an assignment id may be written literally while the same configuration creates it
//! (ordered by `depends_on`), which gets a warning instead, and a caller without read access
//! cannot tell. A remediation of an assignment without a DeployIfNotExists or Modify effect in
//! reach would start a task that can do nothing (or that Azure refuses): that fails too.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value as Json;

use crate::arm::api_version;
use crate::arm::{retry_while, ArmClient, ArmError, ConsistencyOptions, ResourceId, Scope};
use crate::framework::{
    AttributePath, CallContext, Diagnostic, Diagnostics, ModifyPlanRequest, ModifyPlanResponse,
};
use crate::policy::effects::{definition_effect, is_remediable, member_values, MemberValues};

use super::identity::Identity;
use super::lookup::builtin_listing;
use super::parameter_values::{definition_kind, DefinitionKind};
use crate::resources::provider::Configured;

const BUILTIN_DEFINITIONS: &str = "/providers/Microsoft.Authorization/policyDefinitions";

/// How long a 404 of a scope is re-read before the plan fails.
const SCOPE_CONFIRM: Duration = Duration::from_secs(8);
const SCOPE_CONFIRM_INTERVAL: Duration = Duration::from_secs(2);

/// Scopes already seen to exist in this provider process (one Terraform phase), so a plan
/// with many assignments at one scope reads it once. Missing ones are not remembered.
fn seen() -> &'static Mutex<HashSet<String>> {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    SEEN.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Errors when `scope` (known at plan) is a management group, subscription or resource group
/// that Azure does not have. A resource scope (e.g. a cluster) is left to Azure: reading it
/// would need that resource type's own API version.
pub async fn check_scope_exists(
    client: &ArmClient,
    scope: &str,
    path: &AttributePath,
    diags: &mut Diagnostics,
) {
    let Ok(parsed) = Scope::parse(scope) else {
        return;
    };
    let (what, api_version, hint) = match &parsed {
        Scope::ManagementGroup(_) => (
            "management group",
            api_version::MANAGEMENT_GROUPS,
            "Check the group ID (not its display name).",
        ),
        Scope::Subscription(_) => (
            "subscription",
            api_version::SUBSCRIPTIONS,
            "Check the subscription ID and that the provider's principal can see it.",
        ),
        Scope::ResourceGroup { .. } => (
            "resource group",
            api_version::RESOURCE_GROUPS,
            "Check the name, or create the group in this configuration and use its `id` \
             attribute (e.g. azurerm_resource_group.x.id) so the plan knows the order.",
        ),
        Scope::Tenant | Scope::Resource(_) => return,
    };
    let key = format!(
        "{}|{}",
        client.cloud().resource_manager_endpoint,
        scope.trim_end_matches('/').to_ascii_lowercase()
    );
    if seen()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&key)
    {
        return;
    }
    // A scope another tool created moments ago can still 404 on some ARM replicas; a short
    // bounded wait keeps that from failing the plan, and only a real miss pays for it.
    let confirm = ConsistencyOptions {
        timeout: SCOPE_CONFIRM,
        interval: SCOPE_CONFIRM_INTERVAL,
    };
    let read = retry_while(&confirm, ArmError::is_not_found, || {
        client.get::<Json>(scope.trim_end_matches('/'), api_version)
    })
    .await;
    let read = match read {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    };
    match read {
        Ok(Some(_)) => {
            seen().lock().unwrap_or_else(|p| p.into_inner()).insert(key);
        }
        Ok(None) => diags.push(
            Diagnostic::error(
                format!("The {what} does not exist"),
                format!(
                    "Azure has no {what} {scope:?}, so the apply could not create anything \
                     there. {hint}"
                ),
            )
            .at(path.clone()),
        ),
        // Without read access the scope cannot be checked; Azure decides at apply.
        Err(e) => log::debug!("could not read scope {scope} to check it exists: {e}"),
    }
}

/// [`check_scope_exists`] for a resource's `scope` attribute when the plan creates the
/// resource or moves it (an unchanged scope was checked when it was planned).
pub async fn check_planned_scope(
    ctx: &CallContext,
    req: ModifyPlanRequest<'_>,
    change: &mut ModifyPlanResponse,
) {
    let scope = Identity::of(req.config).scope;
    let moved = req.prior.is_null() || Identity::of(req.prior).scope != scope;
    let (true, Some(scope)) = (moved, scope.as_deref()) else {
        return;
    };
    // Validation runs without a client too (terraform validate); then Azure checks at apply.
    let Ok(configured) = ctx.provider::<Configured>() else {
        return;
    };
    check_scope_exists(
        &configured.client,
        scope,
        &AttributePath::attr("scope"),
        &mut change.diags,
    )
    .await;
}

/// What a definition id that Azure does not have (now) means for the plan.
pub async fn missing_definition(
    client: &ArmClient,
    definition_id: &str,
    path: &AttributePath,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let Ok(id) = ResourceId::parse(definition_id) else {
        return diags;
    };
    let Some(kind) = definition_kind(&id) else {
        return diags;
    };
    let (noun, other_noun, other_segment) = match kind {
        DefinitionKind::Policy => (
            "policy definition",
            "initiative (policy set definition)",
            "policySetDefinitions",
        ),
        DefinitionKind::Set => (
            "initiative (policy set definition)",
            "policy definition",
            "policyDefinitions",
        ),
    };
    let name = id.types.first().map(|(_, n)| n.as_str()).unwrap_or("");
    // The same name under the other kind is the common mistake (an initiative's GUID under
    // policyDefinitions/).
    let other_id = format!(
        "{}/providers/Microsoft.Authorization/{other_segment}/{name}",
        id.parent.to_string().trim_end_matches('/')
    );
    let other = match client
        .get_optional::<Json>(&other_id, api_version::POLICY)
        .await
    {
        Ok(found) => found.is_some(),
        Err(e) => {
            log::debug!("could not read {other_id}: {e}");
            false
        }
    };
    let built_in = matches!(id.parent, Scope::Tenant);
    if other {
        diags.push(
            Diagnostic::error(
                format!("Not a {noun}"),
                format!(
                    "{definition_id:?} names no {noun}, but {name:?} is a {other_noun}: use \
                     {other_id:?}."
                ),
            )
            .at(path.clone()),
        );
    } else if built_in {
        diags.push(
            Diagnostic::error(
                format!("No such built-in {noun}"),
                format!(
                    "Azure has no built-in {noun} named {name:?}. Built-in names are GUIDs; \
                     check for a typo, or look it up by title with the \
                     akspolicy_builtin_{} data source and use its `id`.",
                    match kind {
                        DefinitionKind::Policy => "definition",
                        DefinitionKind::Set => "initiative",
                    }
                ),
            )
            .at(path.clone()),
        );
    } else {
        diags.push(
            Diagnostic::warning(
                format!("The {noun} does not exist yet"),
                format!(
                    "Azure has no {noun} {definition_id:?} now, so its parameters cannot be \
                     checked at plan. If this configuration creates it, refer to that \
                     resource's `id` attribute instead of writing the ID, so Terraform orders \
                     the two; otherwise the apply will fail."
                ),
            )
            .at(path.clone()),
        );
    }
    diags
}

/// Errors when a remediation of `assignment_id` could do nothing: the assigned definition's
/// effect (under the assignment's values) is not DeployIfNotExists or Modify, or, for an
/// initiative, no member (or not the member `reference_id` names) has such an effect. Effects
/// that cannot be told without evaluating the rule pass; Azure decides them.
pub async fn check_remediable(
    client: &ArmClient,
    assignment_id: &str,
    reference_id: Option<&str>,
    diags: &mut Diagnostics,
) {
    let at_assignment = AttributePath::attr("policy_assignment_id");
    let assignment = match client
        .get_optional::<Json>(assignment_id, api_version::POLICY)
        .await
    {
        Ok(Some(a)) => a,
        Ok(None) => {
            diags.push(
                Diagnostic::warning(
                    "The policy assignment does not exist yet",
                    format!(
                        "Azure has no policy assignment {assignment_id:?} now, so whether it can \
                         be remediated was not checked. If this configuration creates it, refer \
                         to that resource's `id` attribute so Terraform orders the two; \
                         otherwise the apply will fail."
                    ),
                )
                .at(at_assignment),
            );
            return;
        }
        Err(e) => {
            log::debug!("could not read {assignment_id} to check it can be remediated: {e}");
            return;
        }
    };
    let supplied = assignment
        .pointer("/properties/parameters")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let Some(definition_id) = assignment
        .pointer("/properties/policyDefinitionId")
        .and_then(Json::as_str)
    else {
        return;
    };
    let Some(definition) = read_definition(client, definition_id).await else {
        return;
    };
    let is_set = ResourceId::parse(definition_id)
        .ok()
        .and_then(|id| definition_kind(&id))
        == Some(DefinitionKind::Set);
    let mut members: Vec<MemberValues> = if is_set {
        member_values(&definition, &supplied)
    } else {
        vec![MemberValues {
            definition_id: definition_id.to_string(),
            reference_id: None,
            values: supplied,
        }]
    };
    if is_set && reference_id.is_none() {
        let known: Vec<String> = members
            .iter()
            .filter_map(|m| m.reference_id.clone())
            .collect();
        diags.push(
            Diagnostic::error(
                "Remediating an initiative needs a member",
                format!(
                    "{assignment_id:?} assigns the initiative {definition_id:?}, and Azure \
                     remediates one member of an initiative per task: set \
                     `policy_definition_reference_id` to one of {} (a member with a \
                     DeployIfNotExists or Modify effect), one remediation per member.",
                    known.join(", ")
                ),
            )
            .at(AttributePath::attr("policy_definition_reference_id")),
        );
        return;
    }
    if let (true, Some(wanted)) = (is_set, reference_id) {
        let known: Vec<String> = members
            .iter()
            .filter_map(|m| m.reference_id.clone())
            .collect();
        members.retain(|m| {
            m.reference_id
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(wanted))
        });
        if members.is_empty() {
            diags.push(
                Diagnostic::error(
                    "No such initiative member",
                    format!(
                        "The initiative {definition_id:?} has no member with reference ID \
                         {wanted:?}. Its reference IDs: {}.",
                        known.join(", ")
                    ),
                )
                .at(AttributePath::attr("policy_definition_reference_id")),
            );
            return;
        }
    }
    let mut seen = Vec::new();
    for member in &members {
        let body = if is_set {
            match read_definition(client, &member.definition_id).await {
                Some(b) => b,
                None => return,
            }
        } else {
            definition.clone()
        };
        match definition_effect(&body, &member.values) {
            Some(effect) if is_remediable(&effect) => return,
            Some(effect) => seen.push(effect),
            // Only evaluating the rule would tell; Azure decides.
            None => return,
        }
    }
    seen.sort_by_key(|e| e.to_ascii_lowercase());
    seen.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let what = if is_set {
        format!(
            "the initiative {definition_id:?}, whose {} under this assignment {} {}",
            if members.len() == 1 {
                "member".to_string()
            } else {
                format!("{} members", members.len())
            },
            if seen.len() == 1 {
                "has the effect"
            } else {
                "have the effects"
            },
            seen.join(", ")
        )
    } else {
        format!(
            "{definition_id:?}, whose effect under this assignment is {}",
            seen.join(", ")
        )
    };
    diags.push(
        Diagnostic::error(
            "Nothing to remediate",
            format!(
                "A remediation acts only on DeployIfNotExists or Modify policies, but \
                 {assignment_id:?} assigns {what}. Assign a definition with one of those \
                 effects (or set its effect parameter to one), or drop the remediation."
            ),
        )
        .at(if reference_id.is_some() && is_set {
            AttributePath::attr("policy_definition_reference_id")
        } else {
            at_assignment
        }),
    );
}

/// A definition or initiative body; built-ins come from the process-wide listing (an
/// initiative's members are mostly built-ins: one listing instead of a GET each).
async fn read_definition(client: &ArmClient, id: &str) -> Option<Json> {
    let parsed = ResourceId::parse(id).ok()?;
    let kind = definition_kind(&parsed)?;
    if matches!(parsed.parent, Scope::Tenant) && kind == DefinitionKind::Policy {
        if let Ok(listed) = builtin_listing(client, BUILTIN_DEFINITIONS, api_version::POLICY).await
        {
            let found = listed.iter().find(|d| {
                d.get("id")
                    .and_then(Json::as_str)
                    .is_some_and(|i| i.eq_ignore_ascii_case(id))
            });
            if let Some(found) = found {
                return Some(found.clone());
            }
        }
    }
    match client.get_optional::<Json>(id, api_version::POLICY).await {
        Ok(found) => found,
        Err(e) => {
            log::debug!("could not read {id}: {e}");
            None
        }
    }
}
