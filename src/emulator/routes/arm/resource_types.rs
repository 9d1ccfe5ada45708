//! The routing table: every resource type the emulator serves, with its api-versions (all of
//! them here, one list per API) and handler, and the errors ARM gives for a type or provider it
//! does not know.

use super::path::{self, ArmPath};
use super::{
    deployments, managed_clusters, management_groups, policy_assignments, policy_definitions,
    policy_exemptions, policy_states, policy_versions, remediations, resource_groups,
    role_assignments, subscriptions, tenants, ArmRequest, ErrorResponse,
};
use crate::emulator::http::Response;
use crate::emulator::state::AppState;

/// api-versions of Microsoft.Authorization policy resources.
pub(crate) const POLICY_API_VERSIONS: &[&str] = &[
    "2021-06-01",
    "2022-06-01",
    "2023-04-01",
    "2024-04-01",
    "2024-05-01",
    "2025-01-01",
    "2025-03-01",
    // What Azure CLI 2.8x (2025-11-01) and azure-mgmt-resource-policy 1.x (2026-06-01) send.
    "2025-11-01",
    "2026-06-01",
];
/// api-versions of policy exemptions (no stable version exists).
pub(crate) const EXEMPTION_API_VERSIONS: &[&str] = &[
    "2020-07-01-preview",
    "2022-07-01-preview",
    "2024-12-01-preview",
    // What Azure CLI 2.8x sends.
    "2026-01-01-preview",
];
/// api-versions of subscription reads.
pub(crate) const SUBSCRIPTION_API_VERSIONS: &[&str] =
    &["2016-06-01", "2020-01-01", "2021-01-01", "2022-12-01"];
/// api-versions that know definition versions: the policy api-versions from 2023-04-01 on
/// (that list is in date order).
pub(crate) const VERSION_API_VERSIONS: &[&str] = POLICY_API_VERSIONS.split_at(2).1;
/// api-versions of Microsoft.Resources resource groups.
pub(crate) const RESOURCE_GROUP_API_VERSIONS: &[&str] = &[
    "2019-10-01",
    "2020-06-01",
    "2020-10-01",
    "2021-01-01",
    "2021-04-01",
    "2022-09-01",
    "2023-07-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-03-01",
    "2025-04-01",
];
/// api-versions of deployments.
pub(crate) const DEPLOYMENT_API_VERSIONS: &[&str] = &[
    "2019-10-01",
    "2020-06-01",
    "2020-10-01",
    "2021-01-01",
    "2021-04-01",
    "2022-09-01",
    "2023-07-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
    // What azure-mgmt-resource-deployments 2.x sends.
    "2026-06-01",
];
/// api-versions of Microsoft.Management.
pub(crate) const MANAGEMENT_GROUP_API_VERSIONS: &[&str] = &[
    "2020-02-01",
    "2020-05-01",
    "2020-10-01",
    "2021-04-01",
    "2023-04-01",
];
/// api-versions of role assignments and role definitions.
pub(crate) const ROLE_API_VERSIONS: &[&str] = &[
    "2015-07-01",
    "2018-01-01-preview",
    "2018-09-01-preview",
    "2020-04-01-preview",
    "2020-08-01-preview",
    "2020-10-01-preview",
    "2022-01-01-preview",
    "2022-04-01",
    "2022-05-01-preview",
];
/// api-versions of remediations.
pub(crate) const REMEDIATION_API_VERSIONS: &[&str] = &["2019-07-01", "2021-10-01", "2024-10-01"];
/// api-versions of policy states and their async results.
pub(crate) const POLICY_STATES_API_VERSIONS: &[&str] = &[
    "2018-04-04",
    "2019-10-01",
    "2022-04-01",
    "2022-09-01",
    "2023-03-01",
    "2024-10-01",
];
/// api-versions of managedClusters (stable and the previews recent clients send).
pub(crate) const MANAGED_CLUSTER_API_VERSIONS: &[&str] = &[
    "2022-09-01",
    "2023-01-01",
    "2023-05-01",
    "2023-08-01",
    "2023-10-01",
    "2024-01-01",
    "2024-02-01",
    "2024-05-01",
    "2024-07-01",
    "2024-08-01",
    "2024-09-01",
    "2024-10-01",
    "2025-01-01",
    "2025-02-01",
    "2025-03-01",
    "2025-04-01",
    "2025-05-01",
    "2025-06-01",
    "2025-07-01",
    "2025-08-01",
    "2025-09-01",
    "2025-10-01",
    "2026-01-01",
    "2026-02-01",
    "2026-03-01",
    "2026-04-01",
    "2026-05-01",
    // Azure CLI 2.8x (`az aks`).
    "2026-06-01",
    "2026-07-01",
    // azure-mgmt-containerservice 41.x default.
    "2026-08-01",
];
/// api-versions with `abort` (AbortLatestOperation is in the stable API since 2023-07-01, so
/// the list above from 2023-08-01 on).
pub(crate) const ABORT_API_VERSIONS: &[&str] = MANAGED_CLUSTER_API_VERSIONS.split_at(4).1;

type Handler = fn(&AppState, &ArmRequest<'_>) -> Result<Response, ErrorResponse>;

/// One routable resource type.
pub(crate) struct ResourceTypeSpec {
    /// Lower-case routing key, see [`ArmPath::type_key`].
    pub key: &'static str,
    pub api_versions: &'static [&'static str],
    pub handler: Handler,
}

/// Every resource type the emulator serves.
pub(crate) const RESOURCE_TYPES: &[ResourceTypeSpec] = &[
    ResourceTypeSpec {
        key: "microsoft.resources/subscriptions",
        api_versions: SUBSCRIPTION_API_VERSIONS,
        handler: subscriptions::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/tenants",
        api_versions: SUBSCRIPTION_API_VERSIONS,
        handler: tenants::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/subscriptions/resourcegroups",
        api_versions: RESOURCE_GROUP_API_VERSIONS,
        handler: resource_groups::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/subscriptions/operationresults",
        api_versions: RESOURCE_GROUP_API_VERSIONS,
        handler: resource_groups::handle_operation_result,
    },
    ResourceTypeSpec {
        key: "microsoft.management/operationresults/managementgroups",
        api_versions: MANAGEMENT_GROUP_API_VERSIONS,
        handler: management_groups::handle_operation_result,
    },
    ResourceTypeSpec {
        key: "microsoft.management/managementgroups",
        api_versions: MANAGEMENT_GROUP_API_VERSIONS,
        handler: management_groups::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.management/managementgroups/subscriptions",
        api_versions: MANAGEMENT_GROUP_API_VERSIONS,
        handler: management_groups::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.management/managementgroups/descendants",
        api_versions: MANAGEMENT_GROUP_API_VERSIONS,
        handler: management_groups::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policydefinitions",
        api_versions: POLICY_API_VERSIONS,
        handler: policy_definitions::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policysetdefinitions",
        api_versions: POLICY_API_VERSIONS,
        handler: policy_definitions::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policydefinitions/versions",
        api_versions: VERSION_API_VERSIONS,
        handler: policy_versions::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policysetdefinitions/versions",
        api_versions: VERSION_API_VERSIONS,
        handler: policy_versions::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/listpolicydefinitionversions",
        api_versions: VERSION_API_VERSIONS,
        handler: policy_versions::list_all,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/listpolicysetdefinitionversions",
        api_versions: VERSION_API_VERSIONS,
        handler: policy_versions::list_all,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policyassignments",
        api_versions: POLICY_API_VERSIONS,
        handler: policy_assignments::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.containerservice/managedclusters",
        api_versions: MANAGED_CLUSTER_API_VERSIONS,
        handler: managed_clusters::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.containerservice/managedclusters/abort",
        api_versions: ABORT_API_VERSIONS,
        handler: managed_clusters::handle_abort,
    },
    ResourceTypeSpec {
        key: "microsoft.containerservice/locations/operations",
        api_versions: MANAGED_CLUSTER_API_VERSIONS,
        handler: managed_clusters::handle_operation,
    },
    ResourceTypeSpec {
        key: "microsoft.containerservice/locations/operationresults",
        api_versions: MANAGED_CLUSTER_API_VERSIONS,
        handler: managed_clusters::handle_operation,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/remediations",
        api_versions: REMEDIATION_API_VERSIONS,
        handler: remediations::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/remediations/cancel",
        api_versions: REMEDIATION_API_VERSIONS,
        handler: remediations::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/remediations/listdeployments",
        api_versions: REMEDIATION_API_VERSIONS,
        handler: remediations::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/policystates/triggerevaluation",
        api_versions: POLICY_STATES_API_VERSIONS,
        handler: policy_states::handle_trigger,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/policystates/summarize",
        api_versions: POLICY_STATES_API_VERSIONS,
        handler: policy_states::handle_summarize,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/policystates/queryresults",
        api_versions: POLICY_STATES_API_VERSIONS,
        handler: policy_states::handle_query,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/policyevents/queryresults",
        api_versions: POLICY_STATES_API_VERSIONS,
        handler: policy_states::handle_events_query,
    },
    ResourceTypeSpec {
        key: "microsoft.policyinsights/asyncoperationresults",
        api_versions: POLICY_STATES_API_VERSIONS,
        handler: policy_states::handle_async_result,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/deployments",
        api_versions: DEPLOYMENT_API_VERSIONS,
        handler: deployments::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.resources/deployments/operationstatuses",
        api_versions: DEPLOYMENT_API_VERSIONS,
        handler: deployments::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/roleassignments",
        api_versions: ROLE_API_VERSIONS,
        handler: role_assignments::handle,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/roledefinitions",
        api_versions: ROLE_API_VERSIONS,
        handler: role_assignments::handle_definitions,
    },
    ResourceTypeSpec {
        key: "microsoft.authorization/policyexemptions",
        api_versions: EXEMPTION_API_VERSIONS,
        handler: policy_exemptions::handle,
    },
];

fn spec_for(id: &str) -> Option<&'static ResourceTypeSpec> {
    let key = ArmPath::parse_id(id)?.type_key();
    RESOURCE_TYPES.iter().find(|s| s.key == key)
}

/// The newest api-version the emulator serves for the type of `id`.
pub(crate) fn latest_api_version(id: &str) -> Option<&'static str> {
    spec_for(id).and_then(|s| s.api_versions.iter().max().copied())
}

/// Whether the emulator serves `api_version` for the type of `id`.
pub(crate) fn supports_api_version(id: &str, api_version: &str) -> bool {
    spec_for(id).is_some_and(|s| s.api_versions.contains(&api_version))
}

/// `Namespace/type[/type...]` of a resource id in request casing (for RBAC actions).
pub(crate) fn resource_type_of(id: &str) -> String {
    match ArmPath::parse_id(id) {
        Some(p) if p.namespace == path::RESOURCES_NAMESPACE && p.scope.is_empty() => {
            format!("Microsoft.Resources/{}", p.types.join("/"))
        }
        Some(p) => format!("{}/{}", p.namespace, p.types.join("/")),
        None => String::new(),
    }
}

/// The namespace exists but not this type → `InvalidResourceType`; otherwise the provider
/// itself is unknown.
pub(super) fn unknown_type(path: &ArmPath, api_version: &str) -> ErrorResponse {
    let namespace_known = RESOURCE_TYPES.iter().any(|s| {
        s.key
            .split('/')
            .next()
            .is_some_and(|ns| ns.eq_ignore_ascii_case(&path.namespace))
    });
    if namespace_known {
        ErrorResponse::not_found(
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found in the namespace '{}' for api version '{api_version}'.",
                path.type_display(),
                path.namespace
            ),
        )
    } else {
        ErrorResponse::not_found(
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location 'global' and API version '{api_version}' for type '{}'.",
                path.type_display()
            ),
        )
    }
}

pub(super) fn no_provider(api_version: &str, raw_path: &str) -> ErrorResponse {
    ErrorResponse::not_found(
        "NoRegisteredProviderFound",
        format!("No registered resource provider found for API version '{api_version}' and path '{raw_path}'."),
    )
}
