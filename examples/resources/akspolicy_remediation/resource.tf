# Turn the Azure Policy add-on on for every cluster a DeployIfNotExists assignment finds.
resource "akspolicy_remediation" "enable_addon" {
  name                 = "enable-policy-addon"
  scope                = "/subscriptions/00000000-0000-0000-0000-000000000000"
  policy_assignment_id = "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/policyAssignments/deploy-policy-addon"
  wait_for_completion  = true

  timeouts {
    create = "2h"
  }
}
