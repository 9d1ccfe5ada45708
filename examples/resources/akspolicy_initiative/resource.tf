# An initiative around a built-in Kubernetes policy; custom definitions join the same way
# (policy_definition_id = akspolicy_kubernetes_definition.<name>.id).
data "akspolicy_builtin_definition" "no_privileged" {
  display_name = "Kubernetes cluster should not allow privileged containers"
}

resource "akspolicy_initiative" "aks_baseline" {
  name         = "aks-baseline"
  display_name = "AKS baseline"
  metadata     = jsonencode({ category = "Kubernetes" })

  parameters = jsonencode({
    effect = {
      type          = "String"
      allowedValues = ["Audit", "Deny", "Disabled"]
      defaultValue  = "Audit"
    }
  })

  policy_definition_group {
    name         = "workloads"
    display_name = "Workload hardening"
  }

  policy_definition {
    policy_definition_id = data.akspolicy_builtin_definition.no_privileged.id
    reference_id         = "no-privileged"
    definition_version   = "9.*.*"
    parameters           = jsonencode({ effect = "[parameters('effect')]" })
    group_names          = ["workloads"]
  }
}
