//! Who still uses a policy definition or initiative. Azure refuses to delete one while an
//! assignment assigns it or (for a definition) an initiative contains it
//! (`InvalidDeletePolicyDefinitionRequest`), so a plan that would delete one looks first.
//!
//! The rule, and why it sits where it does: Terraform plans a definition before the
//! assignments that reference it, and plans removed resources in no particular order, so when
//! a definition is planned nothing tells the provider which of its users this configuration
//! will move or remove. Its own plan therefore only records that it goes away (in the
//! [`PlanLedger`] of this provider process) and warns about every user. The error comes from
//! the plan of an assignment that is *replaced* while the definition it assigns goes away:
//! Terraform destroys that assignment before it deletes the definition, so if anything else
//! still uses the definition, the apply would remove this guardrail and then stop at a delete
//! Azure refuses. That plan fails, naming each other user, before anything is destroyed.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::arm::api_version;
use crate::arm::{ArmClient, ArmError};

const ASSIGNMENTS: &str = "/providers/Microsoft.Authorization/policyAssignments";
const SET_DEFINITIONS: &str = "/providers/Microsoft.Authorization/policySetDefinitions";
const DEFINITIONS_SEGMENT: &str = "/providers/microsoft.authorization/policydefinitions/";

/// The definitions and initiatives that plans in this provider process remove (replace or
/// destroy), by lower-cased ID. Terraform plans a whole configuration in one process.
#[derive(Default)]
pub struct PlanLedger {
    removed: Mutex<BTreeSet<String>>,
}

impl PlanLedger {
    pub fn note_removed(&self, id: &str) {
        self.removed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_ascii_lowercase());
    }

    pub fn is_removed(&self, id: &str) -> bool {
        self.removed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id.to_ascii_lowercase())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKind {
    Assignment,
    Initiative,
}

/// One assignment or initiative that references a definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinitionUser {
    pub kind: UserKind,
    pub id: String,
    pub display_name: Option<String>,
}

impl fmt::Display for DefinitionUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            UserKind::Assignment => "assignment",
            UserKind::Initiative => "initiative",
        };
        match self.display_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => write!(f, "{kind} {name:?} ({})", self.id),
            None => write!(f, "{kind} {}", self.id),
        }
    }
}

/// The bulleted list of `users` for a diagnostic.
pub fn bullet_list(users: &[DefinitionUser]) -> String {
    users
        .iter()
        .map(|u| format!("  - {u}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    id: String,
    #[serde(default)]
    properties: Json,
}

#[derive(Deserialize)]
struct Subscription {
    #[serde(default, rename = "subscriptionId")]
    subscription_id: String,
}

/// The scope part of a definition or initiative ID (everything before `/providers/Microsoft.
/// Authorization/`).
fn scope_of(id: &str) -> &str {
    let lower = id.to_ascii_lowercase();
    match lower.find("/providers/microsoft.authorization/") {
        Some(at) => &id[..at],
        None => "",
    }
}

/// Every assignment that assigns `definition_id` (a definition or an initiative) and, for a
/// definition, every custom initiative that contains it, as far as the principal can see: the
/// definition's scope and below. A management group's list only holds what applies to the
/// group itself, so each visible subscription is listed too; child management groups are not
/// searched (that needs the management group descendants API).
pub async fn users_of(
    client: &ArmClient,
    definition_id: &str,
) -> Result<Vec<DefinitionUser>, ArmError> {
    let scope = scope_of(definition_id);
    let mut scopes = vec![scope.to_string()];
    if scope
        .to_ascii_lowercase()
        .starts_with("/providers/microsoft.management/managementgroups/")
    {
        // A management group list shows the assignments that apply to the group, not those
        // of the subscriptions below it.
        let subs: Vec<Subscription> = client
            .list("/subscriptions", api_version::SUBSCRIPTIONS, &[])
            .await?;
        scopes.extend(
            subs.into_iter()
                .filter(|s| !s.subscription_id.is_empty())
                .map(|s| format!("/subscriptions/{}", s.subscription_id)),
        );
    }
    let filter = format!("policyDefinitionId eq '{definition_id}'");
    let mut users: Vec<DefinitionUser> = Vec::new();
    let mut seen = BTreeSet::new();
    for at in &scopes {
        let listed: Vec<Listed> = client
            .list(
                &format!("{at}{ASSIGNMENTS}"),
                api_version::POLICY,
                &[("$filter", filter.as_str())],
            )
            .await?;
        for a in listed {
            // The filter is the server's; the check keeps a server that ignores it honest.
            let assigns = a
                .properties
                .get("policyDefinitionId")
                .and_then(Json::as_str)
                .is_some_and(|d| d.eq_ignore_ascii_case(definition_id));
            if assigns && seen.insert(a.id.to_ascii_lowercase()) {
                users.push(DefinitionUser {
                    kind: UserKind::Assignment,
                    display_name: display_name(&a.properties),
                    id: a.id,
                });
            }
        }
    }
    if definition_id
        .to_ascii_lowercase()
        .contains(DEFINITIONS_SEGMENT)
    {
        for at in &scopes {
            let sets: Vec<Listed> = client
                .list(
                    &format!("{at}{SET_DEFINITIONS}"),
                    api_version::POLICY,
                    &[("$filter", "policyType eq 'Custom'")],
                )
                .await?;
            for s in sets {
                if contains_member(&s.properties, definition_id)
                    && seen.insert(s.id.to_ascii_lowercase())
                {
                    users.push(DefinitionUser {
                        kind: UserKind::Initiative,
                        display_name: display_name(&s.properties),
                        id: s.id,
                    });
                }
            }
        }
    }
    Ok(users)
}

fn display_name(properties: &Json) -> Option<String> {
    properties
        .get("displayName")
        .and_then(Json::as_str)
        .map(str::to_string)
}

fn contains_member(set_properties: &Json, definition_id: &str) -> bool {
    set_properties
        .get("policyDefinitions")
        .and_then(Json::as_array)
        .is_some_and(|members| {
            members.iter().any(|m| {
                m.get("policyDefinitionId")
                    .and_then(Json::as_str)
                    .is_some_and(|d| d.eq_ignore_ascii_case(definition_id))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scope_is_everything_before_the_policy_namespace() {
        assert_eq!(
            scope_of("/subscriptions/s/providers/Microsoft.Authorization/policyDefinitions/d"),
            "/subscriptions/s"
        );
        assert_eq!(
            scope_of("/providers/Microsoft.Management/managementGroups/m/providers/microsoft.authorization/policySetDefinitions/i"),
            "/providers/Microsoft.Management/managementGroups/m"
        );
    }

    #[test]
    fn set_membership_ignores_case() {
        let props = json!({"policyDefinitions": [
            {"policyDefinitionId": "/subscriptions/S/providers/Microsoft.Authorization/policyDefinitions/D"}
        ]});
        assert!(contains_member(
            &props,
            "/subscriptions/s/providers/microsoft.authorization/policydefinitions/d"
        ));
        assert!(!contains_member(
            &props,
            "/subscriptions/s/providers/microsoft.authorization/policydefinitions/e"
        ));
    }

    #[test]
    fn ledger_compares_ids_case_insensitively() {
        let l = PlanLedger::default();
        l.note_removed("/subscriptions/S/providers/Microsoft.Authorization/policyDefinitions/D");
        assert!(
            l.is_removed("/subscriptions/s/providers/microsoft.authorization/policydefinitions/d")
        );
        assert!(
            !l.is_removed("/subscriptions/s/providers/microsoft.authorization/policydefinitions/e")
        );
    }
}
