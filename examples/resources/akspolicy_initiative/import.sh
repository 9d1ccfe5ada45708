# Import by the initiative's ARM ID (subscription or management group scope).
terraform import akspolicy_initiative.aks_baseline /subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/policySetDefinitions/aks-baseline
