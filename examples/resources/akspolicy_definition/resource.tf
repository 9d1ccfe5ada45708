# A custom definition of any mode: here, audit AKS clusters without the Azure Policy add-on.
resource "akspolicy_definition" "require_policy_addon" {
  name         = "aks-require-policy-addon"
  display_name = "AKS clusters must run the Azure Policy add-on"
  mode         = "Indexed"
  version      = "1.0.0"

  metadata = jsonencode({ category = "Kubernetes" })

  parameters = jsonencode({
    effect = {
      type          = "String"
      allowedValues = ["Audit", "Disabled"]
      defaultValue  = "Audit"
    }
  })

  policy_rule = jsonencode({
    if = {
      allOf = [
        { field = "type", equals = "Microsoft.ContainerService/managedClusters" },
        { field = "Microsoft.ContainerService/managedClusters/addonProfiles.azurepolicy.enabled", notEquals = true },
      ]
    }
    then = { effect = "[parameters('effect')]" }
  })
}
