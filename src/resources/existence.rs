//! Plan-time checks that an object a resource refers to can exist when the apply reaches it.
//!
//! A value known at plan was written by the user (or read from an existing object), not
//! computed by another resource of the same apply, so when Azure does not have it now the
//! apply would fail half-way: that fails the plan. The exceptions say so: a custom definition
//! id may be written literally while the same configuration creates it (ordered by
//! `depends_on`), which gets a warning instead, and a caller without read access cannot tell.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use std::time::Duration;

use crate::arm::{retry_while, ArmClient, ArmError, ConsistencyOptions, ResourceId, Scope};
use crate::framework::{AttributePath, Diagnostic, Diagnostics};

use super::parameters::{definition_kind, DefinitionKind, DEFINITIONS_API_VERSION};

const RESOURCE_GROUPS_API: &str = "2021-04-01";
const MANAGEMENT_GROUPS_API: &str = "2021-04-01";
const SUBSCRIPTIONS_API: &str = "2022-12-01";
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
/// that Azure does not have. Scopes below a resource are left to Azure: the resource may be
/// made by another provider in the same apply only if its id is unknown, but its type's read
/// API is not ours to know.
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
            MANAGEMENT_GROUPS_API,
            "Check the group ID (not its display name).",
        ),
        Scope::Subscription(_) => (
            "subscription",
            SUBSCRIPTIONS_API,
            "Check the subscription ID and that the provider's principal can see it.",
        ),
        Scope::ResourceGroup { .. } => (
            "resource group",
            RESOURCE_GROUPS_API,
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
        client.get::<serde_json::Value>(scope.trim_end_matches('/'), api_version)
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
        .get_optional::<serde_json::Value>(&other_id, DEFINITIONS_API_VERSION)
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
