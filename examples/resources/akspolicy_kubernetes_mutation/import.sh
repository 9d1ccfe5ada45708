# Import by the definition's ARM ID (subscription or management group scope).
terraform import akspolicy_kubernetes_mutation.no_privilege_escalation /subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/policyDefinitions/k8s-no-privilege-escalation-default
