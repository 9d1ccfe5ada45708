//! Field names of ARM-mode policy rules resolved to JSON paths in a resource body.
//!
//! Azure serves aliases from each resource provider's manifest; the emulator hosts few
//! resource types, so the aliases it knows are this table. Every entry maps an alias (matched
//! case-insensitively) to a path in the resource's ARM body: dot-separated keys, `[*]` for
//! "every element of this array". The table covers every alias the AKS built-ins in
//! Azure/azure-policy use and the other commonly governed managed cluster properties.
//!
//! An alias of a resource type other than the evaluated resource's resolves to nothing (Azure
//! evaluates it as a missing property); an unknown alias of the evaluated resource's own type
//! is an [`ArmRuleError::UnknownAlias`](super::ArmRuleError::UnknownAlias).

/// Alias prefix of managed clusters.
use crate::policy::kubernetes::MANAGED_CLUSTERS;

/// `(alias without the type prefix, path in the body)` of `Microsoft.ContainerService/managedClusters`.
pub const MANAGED_CLUSTER_ALIASES: &[(&str, &str)] = &[
    ("aadProfile", "properties.aadProfile"),
    ("aadProfile.managed", "properties.aadProfile.managed"),
    (
        "aadProfile.enableAzureRBAC",
        "properties.aadProfile.enableAzureRBAC",
    ),
    (
        "aadProfile.adminGroupObjectIDs",
        "properties.aadProfile.adminGroupObjectIDs",
    ),
    (
        "aadProfile.adminGroupObjectIDs[*]",
        "properties.aadProfile.adminGroupObjectIDs[*]",
    ),
    ("aadProfile.tenantID", "properties.aadProfile.tenantID"),
    ("addonProfiles", "properties.addonProfiles"),
    (
        "addonProfiles.azurePolicy.enabled",
        "properties.addonProfiles.azurepolicy.enabled",
    ),
    (
        "addonProfiles.azurepolicy",
        "properties.addonProfiles.azurepolicy",
    ),
    (
        "addonProfiles.azurepolicy.enabled",
        "properties.addonProfiles.azurepolicy.enabled",
    ),
    (
        "addonProfiles.azurepolicy.config.version",
        "properties.addonProfiles.azurepolicy.config.version",
    ),
    (
        "addonProfiles.httpApplicationRouting.enabled",
        "properties.addonProfiles.httpApplicationRouting.enabled",
    ),
    (
        "addonProfiles.omsagent.enabled",
        "properties.addonProfiles.omsagent.enabled",
    ),
    (
        "addonProfiles.omsagent.config.logAnalyticsWorkspaceResourceID",
        "properties.addonProfiles.omsagent.config.logAnalyticsWorkspaceResourceID",
    ),
    (
        "addonProfiles.azureKeyvaultSecretsProvider.enabled",
        "properties.addonProfiles.azureKeyvaultSecretsProvider.enabled",
    ),
    (
        "addonProfiles.azureKeyvaultSecretsProvider.config.enableSecretRotation",
        "properties.addonProfiles.azureKeyvaultSecretsProvider.config.enableSecretRotation",
    ),
    (
        "addonProfiles.kubeDashboard.enabled",
        "properties.addonProfiles.kubeDashboard.enabled",
    ),
    (
        "addonProfiles.aciConnectorLinux.enabled",
        "properties.addonProfiles.aciConnectorLinux.enabled",
    ),
    (
        "addonProfiles.ingressApplicationGateway.enabled",
        "properties.addonProfiles.ingressApplicationGateway.enabled",
    ),
    (
        "addonProfiles.openServiceMesh.enabled",
        "properties.addonProfiles.openServiceMesh.enabled",
    ),
    ("agentPoolProfiles", "properties.agentPoolProfiles"),
    ("agentPoolProfiles[*]", "properties.agentPoolProfiles[*]"),
    (
        "agentPoolProfiles[*].name",
        "properties.agentPoolProfiles[*].name",
    ),
    (
        "agentPoolProfiles[*].count",
        "properties.agentPoolProfiles[*].count",
    ),
    (
        "agentPoolProfiles[*].vmSize",
        "properties.agentPoolProfiles[*].vmSize",
    ),
    (
        "agentPoolProfiles[*].mode",
        "properties.agentPoolProfiles[*].mode",
    ),
    (
        "agentPoolProfiles[*].type",
        "properties.agentPoolProfiles[*].type",
    ),
    (
        "agentPoolProfiles[*].osType",
        "properties.agentPoolProfiles[*].osType",
    ),
    (
        "agentPoolProfiles[*].osSKU",
        "properties.agentPoolProfiles[*].osSKU",
    ),
    (
        "agentPoolProfiles[*].osDiskType",
        "properties.agentPoolProfiles[*].osDiskType",
    ),
    (
        "agentPoolProfiles[*].osDiskSizeGB",
        "properties.agentPoolProfiles[*].osDiskSizeGB",
    ),
    (
        "agentPoolProfiles[*].kubeletDiskType",
        "properties.agentPoolProfiles[*].kubeletDiskType",
    ),
    (
        "agentPoolProfiles[*].maxPods",
        "properties.agentPoolProfiles[*].maxPods",
    ),
    (
        "agentPoolProfiles[*].minCount",
        "properties.agentPoolProfiles[*].minCount",
    ),
    (
        "agentPoolProfiles[*].maxCount",
        "properties.agentPoolProfiles[*].maxCount",
    ),
    (
        "agentPoolProfiles[*].enableAutoScaling",
        "properties.agentPoolProfiles[*].enableAutoScaling",
    ),
    (
        "agentPoolProfiles[*].enableEncryptionAtHost",
        "properties.agentPoolProfiles[*].enableEncryptionAtHost",
    ),
    (
        "agentPoolProfiles[*].enableFIPS",
        "properties.agentPoolProfiles[*].enableFIPS",
    ),
    (
        "agentPoolProfiles[*].enableNodePublicIP",
        "properties.agentPoolProfiles[*].enableNodePublicIP",
    ),
    (
        "agentPoolProfiles[*].enableUltraSSD",
        "properties.agentPoolProfiles[*].enableUltraSSD",
    ),
    (
        "agentPoolProfiles[*].orchestratorVersion",
        "properties.agentPoolProfiles[*].orchestratorVersion",
    ),
    (
        "agentPoolProfiles[*].availabilityZones",
        "properties.agentPoolProfiles[*].availabilityZones",
    ),
    (
        "agentPoolProfiles[*].availabilityZones[*]",
        "properties.agentPoolProfiles[*].availabilityZones[*]",
    ),
    (
        "agentPoolProfiles[*].nodeTaints",
        "properties.agentPoolProfiles[*].nodeTaints",
    ),
    (
        "agentPoolProfiles[*].nodeTaints[*]",
        "properties.agentPoolProfiles[*].nodeTaints[*]",
    ),
    (
        "agentPoolProfiles[*].nodeLabels",
        "properties.agentPoolProfiles[*].nodeLabels",
    ),
    (
        "agentPoolProfiles[*].vnetSubnetID",
        "properties.agentPoolProfiles[*].vnetSubnetID",
    ),
    (
        "agentPoolProfiles[*].securityProfile.enableSecureBoot",
        "properties.agentPoolProfiles[*].securityProfile.enableSecureBoot",
    ),
    (
        "agentPoolProfiles[*].securityProfile.enableVTPM",
        "properties.agentPoolProfiles[*].securityProfile.enableVTPM",
    ),
    (
        "apiServerAccessProfile",
        "properties.apiServerAccessProfile",
    ),
    (
        "apiServerAccessProfile.enablePrivateCluster",
        "properties.apiServerAccessProfile.enablePrivateCluster",
    ),
    (
        "apiServerAccessProfile.enablePrivateClusterPublicFQDN",
        "properties.apiServerAccessProfile.enablePrivateClusterPublicFQDN",
    ),
    (
        "apiServerAccessProfile.privateDNSZone",
        "properties.apiServerAccessProfile.privateDNSZone",
    ),
    (
        "apiServerAccessProfile.disableRunCommand",
        "properties.apiServerAccessProfile.disableRunCommand",
    ),
    (
        "apiServerAccessProfile.enableVnetIntegration",
        "properties.apiServerAccessProfile.enableVnetIntegration",
    ),
    (
        "apiServerAccessProfile.authorizedIPRanges",
        "properties.apiServerAccessProfile.authorizedIPRanges",
    ),
    (
        "apiServerAccessProfile.authorizedIPRanges[*]",
        "properties.apiServerAccessProfile.authorizedIPRanges[*]",
    ),
    (
        "autoUpgradeProfile.upgradeChannel",
        "properties.autoUpgradeProfile.upgradeChannel",
    ),
    (
        "autoUpgradeProfile.nodeOSUpgradeChannel",
        "properties.autoUpgradeProfile.nodeOSUpgradeChannel",
    ),
    (
        "currentKubernetesVersion",
        "properties.currentKubernetesVersion",
    ),
    ("disableLocalAccounts", "properties.disableLocalAccounts"),
    ("diskEncryptionSetID", "properties.diskEncryptionSetID"),
    ("dnsPrefix", "properties.dnsPrefix"),
    (
        "enablePodSecurityPolicy",
        "properties.enablePodSecurityPolicy",
    ),
    ("enableRBAC", "properties.enableRBAC"),
    ("fqdn", "properties.fqdn"),
    ("kubernetesVersion", "properties.kubernetesVersion"),
    (
        "linuxProfile.adminUsername",
        "properties.linuxProfile.adminUsername",
    ),
    (
        "linuxProfile.ssh.publicKeys[*].keyData",
        "properties.linuxProfile.ssh.publicKeys[*].keyData",
    ),
    (
        "networkProfile.networkPlugin",
        "properties.networkProfile.networkPlugin",
    ),
    (
        "networkProfile.networkPluginMode",
        "properties.networkProfile.networkPluginMode",
    ),
    (
        "networkProfile.networkPolicy",
        "properties.networkProfile.networkPolicy",
    ),
    (
        "networkProfile.networkDataplane",
        "properties.networkProfile.networkDataplane",
    ),
    (
        "networkProfile.outboundType",
        "properties.networkProfile.outboundType",
    ),
    (
        "networkProfile.loadBalancerSku",
        "properties.networkProfile.loadBalancerSku",
    ),
    (
        "networkProfile.podCidr",
        "properties.networkProfile.podCidr",
    ),
    (
        "networkProfile.serviceCidr",
        "properties.networkProfile.serviceCidr",
    ),
    (
        "networkProfile.dnsServiceIP",
        "properties.networkProfile.dnsServiceIP",
    ),
    ("nodeResourceGroup", "properties.nodeResourceGroup"),
    (
        "oidcIssuerProfile.enabled",
        "properties.oidcIssuerProfile.enabled",
    ),
    (
        "podIdentityProfile.enabled",
        "properties.podIdentityProfile.enabled",
    ),
    ("provisioningState", "properties.provisioningState"),
    ("publicNetworkAccess", "properties.publicNetworkAccess"),
    (
        "securityProfile.defender.logAnalyticsWorkspaceResourceId",
        "properties.securityProfile.defender.logAnalyticsWorkspaceResourceId",
    ),
    (
        "securityProfile.defender.securityMonitoring.enabled",
        "properties.securityProfile.defender.securityMonitoring.enabled",
    ),
    (
        "securityProfile.imageCleaner.enabled",
        "properties.securityProfile.imageCleaner.enabled",
    ),
    (
        "securityProfile.imageCleaner.intervalHours",
        "properties.securityProfile.imageCleaner.intervalHours",
    ),
    (
        "securityProfile.workloadIdentity.enabled",
        "properties.securityProfile.workloadIdentity.enabled",
    ),
    (
        "securityProfile.azureKeyVaultKms.enabled",
        "properties.securityProfile.azureKeyVaultKms.enabled",
    ),
    (
        "servicePrincipalProfile.clientId",
        "properties.servicePrincipalProfile.clientId",
    ),
    ("sku.name", "sku.name"),
    ("sku.tier", "sku.tier"),
    (
        "storageProfile.diskCSIDriver.enabled",
        "properties.storageProfile.diskCSIDriver.enabled",
    ),
    (
        "storageProfile.fileCSIDriver.enabled",
        "properties.storageProfile.fileCSIDriver.enabled",
    ),
    (
        "storageProfile.blobCSIDriver.enabled",
        "properties.storageProfile.blobCSIDriver.enabled",
    ),
    (
        "storageProfile.snapshotController.enabled",
        "properties.storageProfile.snapshotController.enabled",
    ),
    (
        "windowsProfile.adminUsername",
        "properties.windowsProfile.adminUsername",
    ),
    (
        "windowsProfile.enableCSIProxy",
        "properties.windowsProfile.enableCSIProxy",
    ),
    (
        "windowsProfile.licenseType",
        "properties.windowsProfile.licenseType",
    ),
    (
        "workloadAutoScalerProfile.keda.enabled",
        "properties.workloadAutoScalerProfile.keda.enabled",
    ),
];

/// Resource types whose aliases the table knows, with their entries.
const TYPES: &[(&str, &[(&str, &str)])] = &[(MANAGED_CLUSTERS, MANAGED_CLUSTER_ALIASES)];

/// Where a `field` reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPath {
    /// A path in the body (`properties.x[*].y`), possibly with `[*]` segments.
    Body(String),
    /// An alias of another resource type: always missing for this resource.
    NotApplicable,
}

/// Resolves a `field` name for a resource of `resource_type`.
///
/// `None` when the name is neither a top-level field nor a known alias of the resource's own
/// type (the caller reports [`super::ArmRuleError::UnknownAlias`]).
pub fn resolve(field: &str, resource_type: &str) -> Option<FieldPath> {
    let lower = field.to_ascii_lowercase();
    match lower.as_str() {
        "name"
        | "fullname"
        | "type"
        | "location"
        | "id"
        | "kind"
        | "tags"
        | "identity.type"
        | "identity.userassignedidentities" => {
            return Some(FieldPath::Body(canonical_top(&lower).to_string()))
        }
        _ => {}
    }
    if let Some(tag) = tag_name(field) {
        return Some(FieldPath::Body(format!("tags.{tag}")));
    }
    for (prefix, table) in TYPES {
        let Some(rest) = strip_prefix_ci(field, prefix).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        if let Some((_, path)) = table.iter().find(|(a, _)| a.eq_ignore_ascii_case(rest)) {
            return Some(FieldPath::Body((*path).to_string()));
        }
        return if prefix.eq_ignore_ascii_case(resource_type) {
            None
        } else {
            Some(FieldPath::NotApplicable)
        };
    }
    // An alias of a type the emulator does not host cannot apply to the evaluated resource,
    // except when the alias names the resource's own type, which the table should know.
    let own_type = strip_prefix_ci(field, resource_type).is_some_and(|r| r.starts_with('/'));
    if field.contains('/') && !own_type {
        Some(FieldPath::NotApplicable)
    } else {
        None
    }
}

fn canonical_top(lower: &str) -> &'static str {
    match lower {
        "name" => "name",
        "fullname" => "name",
        "type" => "type",
        "location" => "location",
        "id" => "id",
        "kind" => "kind",
        "tags" => "tags",
        "identity.type" => "identity.type",
        _ => "identity.userAssignedIdentities",
    }
}

/// `tags['x']`, `tags[x]` or `tags.x` → `x`.
fn tag_name(field: &str) -> Option<&str> {
    let rest = strip_prefix_ci(field, "tags")?;
    if let Some(dotted) = rest.strip_prefix('.') {
        return (!dotted.is_empty()).then_some(dotted);
    }
    let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(inner);
    (!inner.is_empty()).then_some(inner)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A path split into keys and `[*]` markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Every,
}

/// `properties.a[*].b` → `[Key(properties), Key(a), Every, Key(b)]`. Tag names may contain dots,
/// so everything after `tags.` is one key.
pub fn segments(path: &str) -> Vec<Segment> {
    if let Some(tag) = path.strip_prefix("tags.") {
        return vec![Segment::Key("tags".into()), Segment::Key(tag.into())];
    }
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut key = part;
        let mut every = 0;
        while let Some(k) = key.strip_suffix("[*]") {
            key = k;
            every += 1;
        }
        if !key.is_empty() {
            out.push(Segment::Key(key.to_string()));
        }
        out.extend(std::iter::repeat_n(Segment::Every, every));
    }
    out
}
