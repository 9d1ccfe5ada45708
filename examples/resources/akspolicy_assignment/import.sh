# Policy assignments are imported by their ARM ID, at any scope:
terraform import akspolicy_assignment.no_privileged /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/aks-rg/providers/Microsoft.Authorization/policyAssignments/no-privileged
terraform import akspolicy_assignment.pss_baseline /providers/Microsoft.Management/managementGroups/platform/providers/Microsoft.Authorization/policyAssignments/pss-baseline
