# Exempt one resource group from an assignment until the end of June 2027.
resource "akspolicy_exemption" "legacy_team" {
  name                 = "legacy-team-waiver"
  scope                = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/legacy-rg"
  policy_assignment_id = "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/policyAssignments/no-privileged" # e.g. akspolicy_assignment.no_privileged.id
  exemption_category   = "Waiver"
  expires_on           = "2027-06-30T00:00:00Z"
  description          = "Legacy workloads move to the new cluster by June (TICKET-1234)."
}

# Exempt a cluster from some members of an assigned initiative, because it is protected
# another way.
resource "akspolicy_exemption" "mitigated" {
  name                            = "pss-mitigated"
  scope                           = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/prod"
  policy_assignment_id            = "/providers/Microsoft.Management/managementGroups/platform/providers/Microsoft.Authorization/policyAssignments/pss-baseline"
  policy_definition_reference_ids = ["HostNetworkPorts"]
  exemption_category              = "Mitigated"
  metadata                        = jsonencode({ ticket = "SEC-42" })
}
