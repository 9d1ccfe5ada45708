//! The api-version the provider sends for each kind of ARM resource, in one place: a resource
//! and the plan-time checks that read the same objects must agree, and moving to a newer
//! version is one edit. Each is a version Azure serves for every cloud the provider supports.

/// `Microsoft.Authorization` policy definitions, set definitions (initiatives) and
/// assignments, built-in and custom.
pub const POLICY: &str = "2025-03-01";
/// `Microsoft.Authorization/policyExemptions`: no stable version exists.
pub const POLICY_EXEMPTIONS: &str = "2024-12-01-preview";
/// `Microsoft.PolicyInsights`: remediations, policy states and evaluation triggers.
pub const POLICY_INSIGHTS: &str = "2024-10-01";
/// `Microsoft.ContainerService/managedClusters`.
pub const MANAGED_CLUSTERS: &str = "2026-04-01";
/// `Microsoft.Authorization/roleAssignments`.
pub const ROLE_ASSIGNMENTS: &str = "2022-04-01";
/// `Microsoft.Resources` subscriptions.
pub const SUBSCRIPTIONS: &str = "2022-12-01";
/// `Microsoft.Resources` resource groups.
pub const RESOURCE_GROUPS: &str = "2021-04-01";
/// `Microsoft.Management/managementGroups`.
pub const MANAGEMENT_GROUPS: &str = "2021-04-01";
