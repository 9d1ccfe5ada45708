data "akspolicy_builtin_definition" "no_privileged" {
  display_name = "Kubernetes cluster should not allow privileged containers"
}

# A built-in policy on one resource group, with plain parameter values. Names, types and
# allowed values are checked against the definition during `terraform plan`.
resource "akspolicy_assignment" "no_privileged" {
  name                 = "no-privileged"
  scope                = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/aks-rg"
  policy_definition_id = data.akspolicy_builtin_definition.no_privileged.id
  parameters = {
    effect             = "Deny"
    excludedNamespaces = ["kube-system", "gatekeeper-system"]
  }
  non_compliance_message {
    content = "Privileged containers are not allowed here."
  }
  # Bounds the whole create, including the wait until Azure sees a definition created in the
  # same apply (default 30m).
  timeouts {
    create = "10m"
  }
}

# An initiative at management-group scope (names there are at most 24 characters), with a
# system-assigned identity for remediation; `location` is required with `identity`.
resource "akspolicy_assignment" "pss_baseline" {
  name                 = "pss-baseline"
  scope                = "/providers/Microsoft.Management/managementGroups/platform"
  policy_definition_id = "/providers/Microsoft.Authorization/policySetDefinitions/a8640138-9b0a-4a28-b8cb-1666c838647d"
  enforcement_mode     = "DoNotEnforce" # report only, while teams fix their workloads
  location             = "westeurope"
  identity {
    type = "SystemAssigned"
  }
  # Roll out to one region first; overrides switch single members of the initiative.
  resource_selectors {
    name = "europe-first"
    selectors {
      kind = "resourceLocation"
      in   = ["westeurope", "northeurope"]
    }
  }
  overrides {
    value = "Audit"
    selectors {
      kind = "policyDefinitionReferenceId"
      in   = ["HostNetworkPorts"]
    }
  }
  metadata = jsonencode({ owner = "platform-team" })
}

# A single AKS cluster.
resource "akspolicy_assignment" "cluster" {
  name                 = "no-privileged-prod"
  scope                = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/prod"
  policy_definition_id = data.akspolicy_builtin_definition.no_privileged.id
  parameters           = { effect = "Audit" }
  not_scopes           = []
}

# The Azure Policy add-on on every cluster below a management group: a DeployIfNotExists
# built-in whose remediation runs as the assignment's identity, granted the roles the
# definition names (one role assignment per role, at the management group).
resource "akspolicy_assignment" "policy_addon" {
  name                    = "deploy-policy-addon"
  scope                   = "/providers/Microsoft.Management/managementGroups/platform"
  policy_definition_id    = "/providers/Microsoft.Authorization/policyDefinitions/a8eff44f-8c92-45c3-a3fb-9880802d67a7"
  location                = "westeurope"
  grant_remediation_roles = true
  identity {
    type = "SystemAssigned"
  }
}

# try(): the identity list is empty if the identity was removed outside Terraform, and an
# output must not fail `terraform plan -refresh-only` that reports exactly that.
output "baseline_principal" {
  value = try(akspolicy_assignment.pss_baseline.identity[0].principal_id, null)
}
