# Import by the definition's ARM ID (subscription or management group scope).
terraform import akspolicy_definition.require_policy_addon /subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/policyDefinitions/aks-require-policy-addon
