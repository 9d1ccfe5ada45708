//! Azure RBAC as far as the emulator needs it: the built-in role definitions ARM serves at
//! `/providers/Microsoft.Authorization/roleDefinitions/{id}`, the principals Entra ID knows,
//! and whether a principal's role assignments allow an action at a scope.
//!
//! The tenant's own service principal (the emulator's client) stands for the subscription
//! owner and is never refused; every other principal — the managed identities of policy
//! assignments above all — is allowed exactly what its role assignments grant.

use std::time::Duration;

use serde_json::{json, Value};

use crate::emulator::routes::arm::{stored_of_type, ErrorResponse, Scope};
use crate::emulator::state::AppState;
use crate::emulator::store::resource_key;

/// The type key of role assignments in the store.
pub(crate) const ROLE_ASSIGNMENTS: &str = "microsoft.authorization/roleassignments";
const POLICY_ASSIGNMENTS: &str = "microsoft.authorization/policyassignments";

/// One built-in role: its fixed id, name, description and control-plane permissions.
pub(crate) struct BuiltinRole {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
}

/// Built-in roles with the permissions Azure publishes for them: the general ones, the AKS
/// ones, and those the AKS DeployIfNotExists built-ins name in `roleDefinitionIds`.
pub(crate) const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        name: "Owner",
        description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        actions: &["*"],
        not_actions: &[],
    },
    BuiltinRole {
        id: "b24988ac-6180-42a0-ab88-20f7382dd24c",
        name: "Contributor",
        description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ],
    },
    BuiltinRole {
        id: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        name: "Reader",
        description: "View all resources, but does not allow you to make any changes.",
        actions: &["*/read"],
        not_actions: &[],
    },
    BuiltinRole {
        id: "18d7d88d-d35e-4fb5-a5c3-7773c4a72741",
        name: "User Access Administrator",
        description: "Lets you manage user access to Azure resources.",
        actions: &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
        not_actions: &[],
    },
    BuiltinRole {
        id: "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        name: "Role Based Access Control Administrator",
        description: "Manage access to Azure resources by assigning roles using Azure RBAC.",
        actions: &[
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "36243c78-bf99-498c-9df9-86d9f8d28608",
        name: "Resource Policy Contributor",
        description: "Users with rights to create/modify resource policy, create support ticket and read resources/hierarchy.",
        actions: &[
            "*/read",
            "Microsoft.Authorization/policyassignments/*",
            "Microsoft.Authorization/policydefinitions/*",
            "Microsoft.Authorization/policyexemptions/*",
            "Microsoft.Authorization/policysetdefinitions/*",
            "Microsoft.PolicyInsights/*",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8",
        name: "Azure Kubernetes Service Contributor Role",
        description: "Grants access to read and write Azure Kubernetes Service clusters",
        actions: &[
            "Microsoft.ContainerService/managedClusters/read",
            "Microsoft.ContainerService/managedClusters/write",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourcegroups/read",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "18ed5180-3e48-46fd-8541-4ea054d57064",
        name: "Azure Kubernetes Service Policy Add-on Deployment",
        description: "Deploy the Azure Policy add-on on Azure Kubernetes Service clusters",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/subscriptions/operationresults/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Support/*",
            "Microsoft.ContainerService/managedClusters/read",
            "Microsoft.ContainerService/managedClusters/write",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8",
        name: "Azure Kubernetes Service Cluster Admin Role",
        description: "List cluster admin credential action.",
        actions: &[
            "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
            "Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action",
            "Microsoft.ContainerService/managedClusters/read",
            "Microsoft.ContainerService/managedClusters/runcommand/action",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
        name: "Azure Kubernetes Service Cluster User Role",
        description: "List cluster user credential action.",
        actions: &[
            "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
            "Microsoft.ContainerService/managedClusters/read",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
        name: "Azure Kubernetes Service RBAC Cluster Admin",
        description: "Lets you manage all resources in the cluster.",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Resources/subscriptions/operationresults/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "5e93ba01-8f92-4c7a-b12a-801e3df23824",
        name: "Defender Containers Sensor",
        description: "Grants Microsoft Defender for Cloud access to Azure Kubernetes Services",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/subscriptions/resourceGroups/write",
            "Microsoft.Resources/subscriptions/operationresults/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.ContainerService/managedClusters/read",
            "Microsoft.ContainerService/managedClusters/write",
            "Microsoft.OperationalInsights/workspaces/write",
            "Microsoft.OperationalInsights/workspaces/read",
            "Microsoft.OperationalInsights/workspaces/listKeys/action",
            "Microsoft.OperationalInsights/workspaces/sharedkeys/action",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "8bb6f106-b146-4ee6-a3f9-b9c5a96e0ae5",
        name: "Defender Kubernetes Agent Operator",
        description: "Grants Microsoft Defender for Cloud permissions to provision the Kubernetes defender security agent",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/subscriptions/resourceGroups/write",
            "Microsoft.Resources/subscriptions/operationresults/read",
            "Microsoft.Resources/subscriptions/read",
            "Microsoft.KubernetesConfiguration/extensions/write",
            "Microsoft.KubernetesConfiguration/extensions/read",
            "Microsoft.Kubernetes/connectedClusters/Write",
            "Microsoft.Kubernetes/connectedClusters/read",
            "Microsoft.OperationalInsights/workspaces/write",
            "Microsoft.OperationalInsights/workspaces/read",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "92aaf0da-9dab-42b6-94a3-d43ce8d16293",
        name: "Log Analytics Contributor",
        description: "Log Analytics Contributor can read all monitoring data and edit monitoring settings.",
        actions: &[
            "*/read",
            "Microsoft.ClassicCompute/virtualMachines/extensions/*",
            "Microsoft.Compute/virtualMachines/extensions/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Insights/diagnosticSettings/*",
            "Microsoft.OperationalInsights/*",
            "Microsoft.OperationsManagement/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourcegroups/deployments/*",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "749f88d5-cbae-40b8-bcfc-e573ddc772fa",
        name: "Monitoring Contributor",
        description: "Can read all monitoring data and update monitoring settings.",
        actions: &[
            "*/read",
            "Microsoft.Insights/*",
            "Microsoft.OperationalInsights/workspaces/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "fb1c8493-542b-48eb-b624-b4c8fea62acd",
        name: "Security Admin",
        description: "Security Admin Role",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Authorization/policyAssignments/*",
            "Microsoft.Authorization/policyDefinitions/*",
            "Microsoft.Authorization/policyExemptions/*",
            "Microsoft.Authorization/policySetDefinitions/*",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Management/managementGroups/read",
            "Microsoft.operationalInsights/workspaces/*/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Security/*",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
    },
    BuiltinRole {
        id: "f1a07417-d97a-45cb-824c-7a7467783830",
        name: "Managed Identity Operator",
        description: "Read and Assign User Assigned Identity",
        actions: &[
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Support/*",
        ],
        not_actions: &[],
    },
];

/// The built-in role with this id (a bare GUID or any role definition id ending in it).
pub(crate) fn builtin_role(id_or_guid: &str) -> Option<&'static BuiltinRole> {
    let guid = id_or_guid.rsplit('/').next().unwrap_or(id_or_guid);
    BUILTIN_ROLES
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(guid))
}

/// The role definition id ARM reports for a role seen from `scope`: subscription-qualified
/// inside a subscription, tenant-level above one.
pub(crate) fn role_definition_id(scope: &Scope, guid: &str) -> String {
    match scope.subscription() {
        Some(sub) => {
            format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
        }
        None => format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
    }
}

/// A built-in role as ARM returns it from `scope`.
pub(crate) fn role_body(role: &BuiltinRole, scope: &Scope) -> Value {
    json!({
        "id": role_definition_id(scope, role.id),
        "name": role.id,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.name,
            "type": "BuiltInRole",
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [{
                "actions": role.actions,
                "notActions": role.not_actions,
                "dataActions": [],
                "notDataActions": [],
            }],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2025-01-01T00:00:00.0000000Z",
            "createdBy": null,
            "updatedBy": null,
        }
    })
}

/// ARM's action pattern match: case-insensitive, `*` matching any run of characters.
pub(crate) fn action_matches(pattern: &str, action: &str) -> bool {
    crate::policy::arm_rule::like(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

fn role_allows(role: &BuiltinRole, action: &str) -> bool {
    role.actions.iter().any(|a| action_matches(a, action))
        && !role.not_actions.iter().any(|n| action_matches(n, action))
}

/// Whether `principal` may perform `action` on `target` (a scope or resource id): some role
/// assignment of the principal at `target` or a scope above it grants the action.
pub(crate) fn permitted(
    state: &AppState,
    principal: &str,
    action: &str,
    target: &str,
) -> Result<bool, ErrorResponse> {
    if principal.eq_ignore_ascii_case(&state.identity.object_id) {
        return Ok(true);
    }
    let Ok(target_scope) = Scope::parse(target) else {
        return Ok(false);
    };
    let above = target_scope.ancestors(state)?;
    for (at, assignment) in stored_of_type(state, ROLE_ASSIGNMENTS)? {
        let props = &assignment.body["properties"];
        let mine = props["principalId"]
            .as_str()
            .is_some_and(|p| p.eq_ignore_ascii_case(principal));
        if !mine || !above.contains(&resource_key(&at)) {
            continue;
        }
        let role = props["roleDefinitionId"].as_str().and_then(builtin_role);
        if role.is_some_and(|r| role_allows(r, action)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Fails with ARM's `AuthorizationFailed` unless [`permitted`].
pub(crate) fn authorize(
    state: &AppState,
    principal: &str,
    action: &str,
    target: &str,
) -> Result<(), ErrorResponse> {
    if permitted(state, principal, action, target)? {
        return Ok(());
    }
    Err(ErrorResponse::new(
        http::StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client '{principal}' with object id '{principal}' does not have authorization to perform action '{action}' over scope '{target}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ),
    ))
}

/// What Entra ID knows about a principal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrincipalLookup {
    /// Known and replicated: role assignments may name it.
    Found,
    /// Created less than the replication delay ago: Entra ID does not answer for it yet.
    Replicating,
    Unknown,
}

/// Looks a principal up among the tenant's service principal and the managed identities of
/// policy assignments. An identity is visible `principal_replication_ms` after the write that
/// created it, as Entra ID replicates new service principals with a delay.
pub(crate) fn lookup_principal(
    state: &AppState,
    principal: &str,
) -> Result<PrincipalLookup, ErrorResponse> {
    if principal.eq_ignore_ascii_case(&state.identity.object_id) {
        return Ok(PrincipalLookup::Found);
    }
    let delay = Duration::from_millis(state.fault_profile().principal_replication_ms);
    for (_, assignment) in stored_of_type(state, POLICY_ASSIGNMENTS)? {
        if !assignment_principals(&assignment.body)
            .iter()
            .any(|p| p.eq_ignore_ascii_case(principal))
        {
            continue;
        }
        let created = humantime::parse_rfc3339_weak(&assignment.created_at).ok();
        let visible =
            delay.is_zero() || created.is_none_or(|c| c + delay <= std::time::SystemTime::now());
        return Ok(if visible {
            PrincipalLookup::Found
        } else {
            PrincipalLookup::Replicating
        });
    }
    Ok(PrincipalLookup::Unknown)
}

/// The principal ids of a policy assignment's identity (system- or user-assigned).
pub(crate) fn assignment_principals(assignment: &Value) -> Vec<String> {
    let identity = &assignment["identity"];
    let mut out: Vec<String> = identity["principalId"]
        .as_str()
        .map(str::to_string)
        .into_iter()
        .collect();
    for (_, uami) in identity["userAssignedIdentities"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if let Some(p) = uami["principalId"].as_str() {
            out.push(p.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_match_with_wildcards_and_not_actions_subtract() {
        const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
        // Roles are found by GUID or by full id, in any casing.
        const READER: &str =
            "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7";
        const AKS_CONTRIBUTOR: &str = "ED7F3FBD-7B88-4DD4-9017-9ADB7CE333F8";
        let cases = [
            (
                CONTRIBUTOR,
                "Microsoft.ContainerService/managedClusters/write",
                true,
            ),
            (
                CONTRIBUTOR,
                "Microsoft.Authorization/roleAssignments/write",
                false,
            ),
            (
                READER,
                "Microsoft.ContainerService/managedClusters/read",
                true,
            ),
            (
                READER,
                "Microsoft.ContainerService/managedClusters/write",
                false,
            ),
            (
                AKS_CONTRIBUTOR,
                "microsoft.resources/deployments/write",
                true,
            ),
            (
                AKS_CONTRIBUTOR,
                "Microsoft.Storage/storageAccounts/write",
                false,
            ),
        ];
        for (role, action, allowed) in cases {
            let definition = builtin_role(role).expect("role");
            assert_eq!(role_allows(definition, action), allowed, "{role} {action}");
        }
        assert!(builtin_role("00000000-0000-0000-0000-000000000000").is_none());
    }

    #[test]
    fn every_builtin_role_id_is_a_unique_guid() {
        let mut seen = std::collections::BTreeSet::new();
        for r in BUILTIN_ROLES {
            assert!(uuid::Uuid::parse_str(r.id).is_ok(), "{}", r.id);
            assert!(seen.insert(r.id), "duplicate {}", r.id);
        }
    }
}
